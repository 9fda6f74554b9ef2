//! Sticky sessions: which backend a client stays on.
//!
//! - `ip` mode: [`StickyTable`], client address (its 64-bit hash, `hash_ip`) → backend id, shared
//!   by every worker (a client's
//!   connections land on different workers: `SO_REUSEPORT` hashes the 4-tuple). It is split into
//!   [`SHARDS`] shards, each behind its own mutex, so workers rarely meet on one lock; a lookup is
//!   one uncontended lock and a hash-map probe. Entries expire `ttl` after their last use (a use
//!   refreshes them, at most once a second so the hot path does not write every time) and are
//!   swept off the hot path by the workers' housekeeping, a few shards at a time. The table is
//!   bounded: a full shard evicts its least recently used entry. Memory: about 32 bytes an entry
//!   (the address's hash, the id and the time, 24 bytes, in a hashbrown table at up to 7/8 load,
//!   plus a control byte), so the default 100,000 entries take ~3 MB at most.
//! - `cookie` mode needs no table: [`cookie_id`] is an opaque id derived from the backend's key
//!   (its URL; for a URL with a host name, which may stand for several backends, the URL and the
//!   address: see `Backend::key`), the same in every process and after restarts and never the
//!   address in clear, which ferrule sets in a cookie and reads back.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;

use super::hash::hash;

/// Shards of the table (a power of two).
pub const SHARDS: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Entry {
    backend: u64,
    /// Seconds since the table was made, at the last use.
    used: u32,
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<u64, Entry>,
}

/// Client address → backend, with a TTL, bounded.
#[derive(Debug)]
pub struct StickyTable {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    ttl_secs: u32,
    epoch: Instant,
}

impl StickyTable {
    /// A table of at most about `max_entries` bindings that expire `ttl_secs` after last use.
    pub fn new(max_entries: usize, ttl_secs: u64) -> StickyTable {
        StickyTable {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: max_entries.div_ceil(SHARDS).max(1),
            ttl_secs: u32::try_from(ttl_secs).unwrap_or(u32::MAX).max(1),
            epoch: Instant::now(),
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
        let ip = client;
        let t = self.now(now);
        let mut shard = self.shard(ip).lock();
        let entry = shard.map.get_mut(&ip)?;
        if t.saturating_sub(entry.used) >= self.ttl_secs {
            shard.map.remove(&ip);
            return None;
        }
        if entry.used != t {
            entry.used = t;
        }
        Some(entry.backend)
    }

    /// Binds `ip` to `backend` (replacing any binding). A full shard first drops its expired
    /// entries, then its least recently used one.
    pub fn bind(&self, client: u64, backend: u64, now: Instant) {
        let ip = client;
        let t = self.now(now);
        let mut shard = self.shard(ip).lock();
        if shard.map.len() >= self.per_shard && !shard.map.contains_key(&ip) {
            let ttl = self.ttl_secs;
            shard.map.retain(|_, e| t.saturating_sub(e.used) < ttl);
            if shard.map.len() >= self.per_shard {
                let oldest = shard
                    .map
                    .iter()
                    .min_by_key(|(_, e)| e.used)
                    .map(|(ip, _)| *ip);
                if let Some(oldest) = oldest {
                    shard.map.remove(&oldest);
                }
            }
        }
        shard.map.insert(ip, Entry { backend, used: t });
    }

    /// Drops the expired entries of `count` shards, starting at shard `from` (housekeeping calls
    /// it with a moving `from`, so the whole table is swept every few seconds).
    pub fn sweep(&self, from: usize, count: usize, now: Instant) {
        let t = self.now(now);
        let ttl = self.ttl_secs;
        for k in 0..count.min(SHARDS) {
            let mut shard = self.shards[(from + k) % SHARDS].lock();
            shard.map.retain(|_, e| t.saturating_sub(e.used) < ttl);
        }
    }

    /// Bindings held (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The sticky-cookie value naming the backend at `url`: 16 hex digits of a fixed hash of the URL.
pub fn cookie_id(url: &str) -> u64 {
    hash(0x57_1c_c0, url.as_bytes())
}

/// Parses a sticky-cookie value back (16 hex digits); `None` for anything else.
pub fn parse_cookie_id(value: &[u8]) -> Option<u64> {
    if value.len() != 16 {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    u64::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(n: u32) -> u64 {
        super::super::hash_ip(std::net::IpAddr::from(n.to_be_bytes()))
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

    #[test]
    fn cookie_ids_are_fixed_per_url_and_round_trip() {
        let a = cookie_id("http://10.0.0.1:8080");
        assert_eq!(a, cookie_id("http://10.0.0.1:8080"));
        assert_ne!(a, cookie_id("http://10.0.0.2:8080"));
        let text = format!("{a:016x}");
        assert_eq!(parse_cookie_id(text.as_bytes()), Some(a));
        assert!(!text.contains("10.0.0.1"));
        assert_eq!(parse_cookie_id(b"123"), None);
        assert_eq!(parse_cookie_id(b"zzzzzzzzzzzzzzzz"), None);
    }
}
