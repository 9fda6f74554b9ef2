//! Sticky sessions: which backend a client stays on.
//!
//! - `ip` mode: [`StickyTable`], client (the 64-bit hash of its address, or of its IPv6 network:
//!   `client_ip::client_key`, then `hash_ip`) → backend id, shared by every worker (a client's
//!   connections land on different workers: `SO_REUSEPORT` hashes the 4-tuple). It is split into
//!   [`SHARDS`] shards, each behind its own mutex, so workers rarely meet on one lock; a lookup is
//!   one uncontended lock and a few probes. Entries expire `ttl` after their last use (a use
//!   refreshes them, at most once a second so the hot path does not write every time).
//!
//!   Each shard is an open-addressing table of its own (linear probing, deletion by backward
//!   shift, no tombstones) with twice as many slots as the shard may hold, so it is never more
//!   than half full and a probe sequence stays short. A slot is 16 bytes (the client's hash, 0
//!   meaning empty; the backend id and the last use, 32 bits each), so an entry costs 32 bytes:
//!   the default 100,000 entries take ~3.2 MB, reserved as zeroed memory at start (the pages are
//!   touched as entries arrive). Where a client lands is keyed with a random per-process seed, so
//!   no one can choose addresses that pile up in one probe sequence.
//!
//!   The table is bounded, and eviction is O(1) (sampled, as Redis evicts): binding a new client
//!   in a full shard looks at up to [`SAMPLES`] entries found within [`SAMPLE_SLOTS`] slots of a
//!   random place and evicts the least recently used of them, or the first expired one. It never
//!   scans the shard. Recently used entries survive: an entry is only evicted when every other
//!   sampled one was used more recently. The workers' housekeeping also sweeps expired entries
//!   away, [`SWEEP_SLOTS`] slots of a few shards at a time, so that no sweep holds a lock for long.
//! - `cookie` mode needs no table: the cookie names the backend, by a value derived from the
//!   backend's key (its URL; for a URL with a host name, which may stand for several backends,
//!   the URL and the address: see `Backend::key`), the same in every process and after restarts
//!   and never the address in clear, which ferrule sets in a cookie and reads back. That value,
//!   plain (`cookie_id`) or keyed with `sticky_cookie_secret` (`CookieKey`), is made in
//!   `src/hash.rs`; the pool (`pool.rs`) gives each backend its value and the picker
//!   (`picker.rs`) looks the cookie up.

use std::time::Instant;

use parking_lot::Mutex;

use crate::hash::mix;

/// Shards of the table (a power of two).
pub const SHARDS: usize = 64;

/// Entries an eviction compares (Redis samples 5 by default; more come closer to true LRU, and
/// they are next to one another: 16 entries are about 32 slots, 8 cache lines).
pub const SAMPLES: usize = 16;

/// Slots an eviction walks, at most, to find its samples (half of them are full, on average, in
/// a full shard).
pub const SAMPLE_SLOTS: usize = 64;

/// Slots one sweep looks at in each shard it visits.
pub const SWEEP_SLOTS: usize = 1024;

/// A slot: `[client, backend << 32 | last use]`; client 0 is an empty slot.
type Slot = [u64; 2];

const EMPTY: Slot = [0, 0];

/// One shard: `slots.len()` is twice the entries it may hold (and at least 2).
#[derive(Debug)]
struct Shard {
    slots: Vec<Slot>,
    len: usize,
    /// Where the next sweep of this shard starts.
    sweep_at: usize,
}

/// Client address → backend, with a TTL, bounded.
#[derive(Debug)]
pub struct StickyTable {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    ttl_secs: u32,
    epoch: Instant,
    /// Keys where a client lands in its shard, and where an eviction samples.
    seed: u64,
}

/// The backend and last use held in a slot.
fn unpack(slot: &Slot) -> (u32, u32) {
    ((slot[1] >> 32) as u32, slot[1] as u32)
}

fn pack(client: u64, backend: u32, used: u32) -> Slot {
    [client, u64::from(backend) << 32 | u64::from(used)]
}

/// A random seed for this process (std's hash map keys come from the operating system).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x57_1c_c1);
    h.finish()
}

impl Shard {
    fn new(slots: usize) -> Shard {
        Shard {
            // zeroed memory (all slots empty): the allocator maps it lazily
            slots: vec![EMPTY; slots],
            len: 0,
            sweep_at: 0,
        }
    }

    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// `client`'s home slot (`x` is its keyed hash): `x` scaled to the table (no modulo).
    #[inline]
    fn home(&self, x: u64) -> usize {
        ((u128::from(x) * self.slots.len() as u128) >> 64) as usize
    }

    /// The slot holding `client` (`Ok`), or the empty slot where it would go (`Err`), and the
    /// slots looked at.
    fn find(&self, client: u64, seed: u64) -> (Result<usize, usize>, usize) {
        let mut i = self.home(mix(client ^ seed));
        // bounded: the table is at most half full, so an empty slot ends the walk; `slots.len()`
        // steps visit every slot
        for n in 1..=self.slots.len() {
            match self.slots[i][0] {
                0 => return (Err(i), n),
                c if c == client => return (Ok(i), n),
                _ => i = self.next(i),
            }
        }
        (Err(usize::MAX), self.slots.len())
    }

    /// Empties slot `i`, moving back the entries after it that its removal leaves out of reach
    /// of their home (backward-shift deletion). Returns the slots looked at.
    fn remove(&mut self, i: usize, seed: u64) -> usize {
        let mut hole = i;
        let mut j = self.next(i);
        let mut n = 1;
        // bounded: stops at the first empty slot, and there is one (at most half are full)
        while n < self.slots.len() {
            n += 1;
            let client = self.slots[j][0];
            if client == 0 {
                break;
            }
            let home = self.home(mix(client ^ seed));
            // the entry at j may fill the hole unless its home lies in (hole, j], cyclically
            let reachable = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !reachable {
                self.slots[hole] = self.slots[j];
                hole = j;
            }
            j = self.next(j);
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
        n
    }

    /// The entry to evict for `client`: the first expired one, else the least recently used,
    /// among the first [`SAMPLES`] entries within [`SAMPLE_SLOTS`] slots of a place that only
    /// `client` and the seed decide. Returns it (if the walk met any entry) and the slots looked
    /// at.
    fn victim(&self, client: u64, seed: u64, now: u32, ttl: u32) -> (Option<usize>, usize) {
        let mut i = self.home(mix(client.rotate_left(32) ^ seed ^ 0x5a_17_e5));
        let mut best: Option<(usize, u32)> = None;
        let mut sampled = 0;
        let walk = SAMPLE_SLOTS.min(self.slots.len());
        // bounded: at most `walk` slots
        for n in 1..=walk {
            if self.slots[i][0] != 0 {
                let (_, used) = unpack(&self.slots[i]);
                if now.saturating_sub(used) >= ttl {
                    return (Some(i), n);
                }
                if best.is_none_or(|(_, b)| used < b) {
                    best = Some((i, used));
                }
                sampled += 1;
                if sampled == SAMPLES {
                    return (best.map(|(i, _)| i), n);
                }
            }
            i = self.next(i);
        }
        (best.map(|(i, _)| i), walk)
    }
}

impl StickyTable {
    /// A table of at most about `max_entries` bindings that expire `ttl_secs` after last use.
    pub fn new(max_entries: usize, ttl_secs: u64) -> StickyTable {
        StickyTable::with_seed(max_entries, ttl_secs, random_seed())
    }

    /// [`StickyTable::new`] with a given seed (tests, for runs that repeat exactly).
    pub fn with_seed(max_entries: usize, ttl_secs: u64, seed: u64) -> StickyTable {
        let per_shard = max_entries.div_ceil(SHARDS).max(1);
        StickyTable {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(Shard::new(per_shard.saturating_mul(2))))
                .collect(),
            per_shard,
            ttl_secs: u32::try_from(ttl_secs).unwrap_or(u32::MAX).max(1),
            epoch: Instant::now(),
            seed,
        }
    }

    fn now(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.epoch).as_secs()).unwrap_or(u32::MAX)
    }

    fn shard(&self, client: u64) -> &Mutex<Shard> {
        // the low bits: the high ones pick the consistent-hash entry
        &self.shards[(client as usize) & (SHARDS - 1)]
    }

    /// The backend `client` (the hash of its address) is bound to, if the binding has not
    /// expired; refreshes it.
    pub fn get(&self, client: u64, now: Instant) -> Option<u64> {
        // 0 marks an empty slot: that one hash shares a binding with 1
        let client = client.max(1);
        let t = self.now(now);
        let mut shard = self.shard(client).lock();
        let (Ok(i), _) = shard.find(client, self.seed) else {
            return None;
        };
        let (backend, used) = unpack(&shard.slots[i]);
        if t.saturating_sub(used) >= self.ttl_secs {
            shard.remove(i, self.seed);
            return None;
        }
        if used != t {
            shard.slots[i] = pack(client, backend, t);
        }
        Some(u64::from(backend))
    }

    /// Binds `client` to `backend` (replacing any binding). In a full shard, a new client first
    /// evicts one entry (see the module header): never a scan.
    pub fn bind(&self, client: u64, backend: u64, now: Instant) {
        self.bind_counting(client, backend, now);
    }

    /// [`StickyTable::bind`], returning the slots it looked at (what the tests measure).
    fn bind_counting(&self, client: u64, backend: u64, now: Instant) -> usize {
        // ids count up from 0 over the life of the process; one past 32 bits (four billion
        // backends added) is simply not bound
        let Ok(backend) = u32::try_from(backend) else {
            return 0;
        };
        let client = client.max(1);
        let t = self.now(now);
        let mut guard = self.shard(client).lock();
        let shard = &mut *guard;
        let (found, mut cost) = shard.find(client, self.seed);
        let slot = match found {
            Ok(i) => i,
            Err(i) if shard.len < self.per_shard => i,
            Err(_) => {
                let (victim, looked) = shard.victim(client, self.seed, t, self.ttl_secs);
                cost += looked;
                // a full shard whose walk met no entry (it cannot, in practice): not bound
                let Some(victim) = victim else {
                    return cost;
                };
                cost += shard.remove(victim, self.seed);
                // the removal may have moved entries: look again for the place
                let (found, looked) = shard.find(client, self.seed);
                cost += looked;
                match found {
                    Ok(i) | Err(i) => i,
                }
            }
        };
        if let Some(entry) = shard.slots.get_mut(slot) {
            if entry[0] == 0 {
                shard.len += 1;
            }
            *entry = pack(client, backend, t);
        }
        cost
    }

    /// Drops the expired entries among [`SWEEP_SLOTS`] slots of each of `count` shards,
    /// starting at shard `from` (housekeeping calls it with a moving `from`; each shard keeps its
    /// own place, so repeated calls cover it all).
    pub fn sweep(&self, from: usize, count: usize, now: Instant) {
        let t = self.now(now);
        let ttl = self.ttl_secs;
        for k in 0..count.min(SHARDS) {
            let mut shard = self.shards[(from + k) % SHARDS].lock();
            let mut i = shard.sweep_at.min(shard.slots.len() - 1);
            let limit = SWEEP_SLOTS.min(shard.slots.len());
            let mut passed = 0;
            // bounded: each turn moves on (`limit` times) or removes an entry (then slot i is
            // looked at again, as an entry may have moved into it), at most once per entry
            while passed < limit {
                let slot = shard.slots[i];
                if slot[0] != 0 && t.saturating_sub(unpack(&slot).1) >= ttl {
                    shard.remove(i, self.seed);
                } else {
                    i = shard.next(i);
                    passed += 1;
                }
            }
            shard.sweep_at = i;
        }
    }

    /// Bindings held (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(n: u32) -> u64 {
        crate::hash::hash_ip(std::net::IpAddr::from(n.to_be_bytes()))
    }

    #[test]
    fn bindings_expire_ttl_after_their_last_use() {
        let table = StickyTable::new(100, 10);
        let t0 = Instant::now();
        table.bind(ip(1), 7, t0);
        assert_eq!(table.get(ip(1), t0 + Duration::from_secs(9)), Some(7));
        // used at 9 s: lives until 19 s
        assert_eq!(table.get(ip(1), t0 + Duration::from_secs(18)), Some(7));
        assert_eq!(table.get(ip(1), t0 + Duration::from_secs(29)), None);
        assert!(table.is_empty());
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_least_recently_used() {
        let table = StickyTable::new(SHARDS * 4, 3600);
        let t0 = Instant::now();
        for n in 0..10_000 {
            table.bind(
                ip(n),
                u64::from(n),
                t0 + Duration::from_secs(u64::from(n / 100)),
            );
        }
        assert!(table.len() <= SHARDS * 4, "{}", table.len());
        // the newest survive
        assert_eq!(
            table.get(ip(9_999), t0 + Duration::from_secs(100)),
            Some(9_999)
        );
    }

    /// Client hashes that all land in shard 0.
    fn in_shard_0(n: u64) -> u64 {
        mix(n) & !(SHARDS as u64 - 1) | SHARDS as u64
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_full_shard_evicts_old_entries_not_recently_used_ones() {
        const PER_SHARD: u64 = 1000;
        let table = StickyTable::with_seed(SHARDS * PER_SHARD as usize, 3600, 7);
        let t0 = Instant::now();
        // shard 0 full of entries bound at 0 s
        for n in 0..PER_SHARD {
            table.bind(in_shard_0(n), n, t0);
        }
        assert_eq!(table.len(), PER_SHARD as usize);
        // a tenth of them are used again at 10 s
        let recent: Vec<u64> = (0..PER_SHARD).step_by(10).collect();
        for &n in &recent {
            assert_eq!(table.get(in_shard_0(n), t0 + secs(10)), Some(n));
        }
        // a quarter more clients come at 20 s: the shard stays at its bound
        let new = PER_SHARD..PER_SHARD + PER_SHARD / 4;
        for n in new.clone() {
            table.bind(in_shard_0(n), n, t0 + secs(20));
            assert_eq!(table.len(), PER_SHARD as usize, "after {n}");
        }
        let at = t0 + secs(21);
        let kept = |ns: &mut dyn Iterator<Item = u64>| {
            ns.filter(|&n| table.get(in_shard_0(n), at) == Some(n))
                .count()
        };
        // every new client and every recently used one is there (eviction compares 16 entries,
        // so it takes one of those only when all 16 are: never, here); the evicted were old
        assert_eq!(kept(&mut new.clone()), new.clone().count());
        assert_eq!(kept(&mut recent.iter().copied()), recent.len());
        let old = (0..PER_SHARD).filter(|n| n % 10 != 0);
        assert_eq!(kept(&mut old.clone()), old.count() - new.count());
    }

    #[test]
    fn expired_entries_go_before_live_ones() {
        let table = StickyTable::with_seed(SHARDS * 100, 10, 3);
        let t0 = Instant::now();
        for n in 0..50 {
            table.bind(in_shard_0(n), n, t0);
        }
        for n in 50..100 {
            table.bind(in_shard_0(n), n, t0 + secs(8));
        }
        // at 12 s the first 50 have expired: 25 newcomers replace those. Sampling makes it
        // likely, not certain: a live entry goes only when none of the 16 sampled had expired,
        // which is rare while a quarter or more have
        for n in 100..125 {
            table.bind(in_shard_0(n), n, t0 + secs(12));
            assert_eq!(table.len(), 100);
        }
        let at = t0 + secs(13);
        let live = (50..100)
            .filter(|&n| table.get(in_shard_0(n), at) == Some(n))
            .count();
        assert!(live >= 49, "{live} of 50 live entries kept");
        for n in 100..125 {
            assert_eq!(table.get(in_shard_0(n), at), Some(n), "{n}");
        }
    }

    #[test]
    fn inserting_costs_the_same_in_a_small_and_a_large_table() {
        // slots looked at per new client in a full shard (each one evicts), in a shard of 16
        // entries and one of 16,384: the old table scanned the whole shard for each
        let cost = |per_shard: u64| {
            let table = StickyTable::with_seed(SHARDS * per_shard as usize, 3600, 11);
            let t0 = Instant::now();
            for n in 0..per_shard {
                table.bind(in_shard_0(n), n, t0);
            }
            let (mut total, mut most) = (0, 0);
            for n in per_shard..per_shard + 10_000 {
                let c = table.bind_counting(in_shard_0(n), n, t0 + secs(1 + n / 100));
                total += c;
                most = most.max(c);
            }
            assert_eq!(table.len(), per_shard as usize);
            (total / 10_000, most)
        };
        let (small, small_most) = cost(16);
        let (large, large_most) = cost(16_384);
        // about 2.5 slots to miss, ~32 to sample 16 entries, a few to remove and to place
        assert!(small <= 64 && large <= 64, "mean {small} and {large} slots");
        assert!(large <= small * 3 / 2, "mean {small} and {large} slots");
        assert!(
            small_most <= 2 * SAMPLE_SLOTS && large_most <= 2 * SAMPLE_SLOTS + 64,
            "at most {small_most} and {large_most} slots"
        );
    }

    #[test]
    fn the_table_agrees_with_a_map() {
        // random binds, lookups, expiries and sweeps against a plain map with the same rules,
        // in shards that never fill (so nothing is evicted): deletion keeps every entry reachable
        use std::collections::HashMap;
        let table = StickyTable::with_seed(SHARDS * 400, 5, 5);
        let mut model: HashMap<u64, (u64, u64)> = HashMap::new();
        let mut rng = super::super::rng::Rng::new(42);
        let t0 = Instant::now();
        let mut t = 0;
        for step in 0..200_000u32 {
            let client = in_shard_0(rng.below(300));
            match rng.below(100) {
                0..=39 => {
                    let backend = rng.below(1000);
                    table.bind(client, backend, t0 + secs(t));
                    model.insert(client, (backend, t));
                }
                40..=97 => {
                    let want = match model.get_mut(&client) {
                        Some((_, used)) if t - *used >= 5 => {
                            model.remove(&client);
                            None
                        }
                        Some((backend, used)) => {
                            *used = t;
                            Some(*backend)
                        }
                        None => None,
                    };
                    assert_eq!(table.get(client, t0 + secs(t)), want, "step {step}");
                }
                98 => t += 1,
                _ => {
                    table.sweep(0, SHARDS, t0 + secs(t));
                    model.retain(|_, (_, used)| t - *used < 5);
                    assert_eq!(table.len(), model.len(), "step {step}");
                }
            }
        }
        assert!(table.len() > 100, "{}", table.len());
    }

    #[test]
    fn sweeping_drops_expired_entries() {
        let table = StickyTable::new(1000, 5);
        let t0 = Instant::now();
        for n in 0..500 {
            table.bind(ip(n), 1, t0);
        }
        table.sweep(0, SHARDS, t0 + Duration::from_secs(4));
        assert_eq!(table.len(), 500);
        table.sweep(0, SHARDS, t0 + Duration::from_secs(6));
        assert_eq!(table.len(), 0);
    }
}
