//! A worker's timers: a hashed timing wheel of lazy entries.
//!
//! Every connection has one deadline (the one its current phase, or its stream's, imposes, see
//! `connection/`); moving it is a field write on the connection, not a wheel operation. The wheel
//! only holds an entry ([`TimerKey::Conn`]) in the slot where the connection was last *armed*;
//! when that slot comes due the worker looks at the connection: past its deadline, it times out;
//! otherwise it is armed again at its current deadline. A connection is re-armed early only when
//! its deadline moves before its armed slot, which happens at most once per tick per connection.
//! Stale entries (the connection closed, or was armed elsewhere since) are recognised and skipped
//! by the worker.
//!
//! Slots are `TICK` wide; an entry never fires before its deadline and at most about one tick
//! after it. Deadlines beyond the wheel's horizon land in its last slot and are re-armed when it
//! comes due. A bitmap of non-empty slots gives the poll timeout without scanning the wheel.
//!
//! The process's clock helpers live here too: [`clock_ms`] (a monotonic millisecond count,
//! for passive health's windows and backend response times) and [`clock_us`] (the same clock in
//! microseconds, for the rate limits), [`epoch_ms`] (the wall clock, for
//! the health record) and [`millis`].

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// `d` in whole milliseconds, saturating at `u64::MAX`.
#[inline]
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since this process started (its first look at this clock): the clock of passive
/// health and of backend response times.
pub fn clock_ms(now: Instant) -> u64 {
    millis(now.saturating_duration_since(origin()))
}

/// Microseconds on the same clock as [`clock_ms`]: the rate limits' (`crate::limits`).
pub fn clock_us(now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(origin()).as_micros()).unwrap_or(u64::MAX)
}

/// The process clock's zero: the first look at it.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Milliseconds since the Unix epoch, now (0 for a clock set before it).
pub fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

/// Width of one slot.
pub const TICK: Duration = Duration::from_millis(16);
const TICK_MS: u64 = 16;
/// Number of slots (a power of two); the horizon is `SLOTS * TICK`, about 65 s.
const SLOTS: usize = 4096;
const WORDS: usize = SLOTS / 64;

/// What a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKey {
    /// The connection with this slab key and id (the id tells it from a later connection in the
    /// same slot).
    Conn { key: u32, id: u32 },
    /// The worker's housekeeping (idle backend connections, buffers, the sticky table).
    Sweep,
    /// The drain's deadline.
    Drain,
    /// Accepting resumes after running out of descriptors.
    Resume,
}

/// One armed timer: what it is for, and which slot it sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub key: TimerKey,
    pub slot: u64,
}

pub struct Timers {
    origin: Instant,
    /// The next slot to process: every slot before it has been processed.
    cursor: u64,
    slots: Vec<Vec<Entry>>,
    nonempty: [u64; WORDS],
    len: usize,
}

impl Timers {
    pub fn new(now: Instant) -> Timers {
        Timers {
            origin: now,
            cursor: 0,
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            nonempty: [0; WORDS],
            len: 0,
        }
    }

    /// Entries in the wheel (stale ones included).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn ms_since_origin(&self, at: Instant) -> u64 {
        millis(at.saturating_duration_since(self.origin))
    }

    /// The slot a deadline `at` would be armed in.
    pub fn slot_of(&self, at: Instant) -> u64 {
        let wanted = self.ms_since_origin(at) / TICK_MS;
        wanted.clamp(self.cursor, self.cursor + SLOTS as u64 - 1)
    }

    /// Arms `key` to come due no earlier than `at`; returns the slot it went into.
    pub fn arm(&mut self, key: TimerKey, at: Instant) -> u64 {
        let slot = self.slot_of(at);
        let i = (slot as usize) & (SLOTS - 1);
        self.slots[i].push(Entry { key, slot });
        self.nonempty[i / 64] |= 1 << (i % 64);
        self.len += 1;
        slot
    }

    /// Moves every entry whose slot has fully passed at `now` into `due`.
    pub fn expire(&mut self, now: Instant, due: &mut Vec<Entry>) {
        let end = self.ms_since_origin(now) / TICK_MS; // slots before `end` are over
        if end <= self.cursor {
            return;
        }
        let from = self.cursor.max(end.saturating_sub(SLOTS as u64));
        for slot in from..end {
            if self.is_empty() {
                break;
            }
            let i = (slot as usize) & (SLOTS - 1);
            if self.nonempty[i / 64] & (1 << (i % 64)) == 0 {
                continue;
            }
            self.nonempty[i / 64] &= !(1 << (i % 64));
            self.len -= self.slots[i].len();
            // entries carry the slot they were armed in: after a stall longer than the wheel, a
            // physical slot holds entries of several laps, and each must be recognised as live
            due.append(&mut self.slots[i]);
        }
        self.cursor = end;
    }

    /// How long the worker may sleep before the next slot comes due; `None` with no entries.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        if self.is_empty() {
            return None;
        }
        let start = (self.cursor as usize) & (SLOTS - 1);
        // scan the bitmap from the cursor, wrapping once
        let mut distance = None;
        for step in 0..=WORDS {
            let w = (start / 64 + step) % WORDS;
            let mut bits = self.nonempty[w];
            if step == 0 {
                bits &= !0u64 << (start % 64);
            } else if step == WORDS {
                bits &= !(!0u64 << (start % 64));
            }
            if bits != 0 {
                let i = w * 64 + bits.trailing_zeros() as usize;
                distance = Some((i + SLOTS - start) % SLOTS);
                break;
            }
        }
        let slot = self.cursor + distance.unwrap_or(0) as u64;
        // a slot is over at the start of the next one
        let due = self.origin + Duration::from_millis((slot + 1) * TICK_MS);
        Some(due.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_after_deadline_not_before() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0);
        let at = t0 + Duration::from_millis(100);
        let slot = t.arm(TimerKey::Conn { key: 1, id: 7 }, at);
        let mut due = Vec::new();
        t.expire(t0 + Duration::from_millis(99), &mut due);
        assert!(due.is_empty());
        let wait = t.timeout(t0 + Duration::from_millis(99)).unwrap();
        assert!(wait <= TICK + Duration::from_millis(1), "{wait:?}");
        t.expire(at + TICK, &mut due);
        assert_eq!(
            due,
            vec![Entry {
                key: TimerKey::Conn { key: 1, id: 7 },
                slot
            }]
        );
        assert!(t.is_empty());
        assert_eq!(t.timeout(at + TICK), None);
    }

    #[test]
    fn timeout_points_at_the_earliest_slot() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0);
        t.arm(
            TimerKey::Conn { key: 1, id: 1 },
            t0 + Duration::from_secs(30),
        );
        t.arm(
            TimerKey::Conn { key: 2, id: 2 },
            t0 + Duration::from_secs(3),
        );
        let wait = t.timeout(t0).unwrap();
        assert!(
            wait >= Duration::from_secs(3) && wait <= Duration::from_secs(3) + TICK,
            "{wait:?}"
        );
    }

    #[test]
    fn far_deadlines_are_clamped_to_the_horizon() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0);
        let slot = t.arm(
            TimerKey::Conn { key: 1, id: 1 },
            t0 + Duration::from_secs(3600),
        );
        assert_eq!(slot, SLOTS as u64 - 1);
        let mut due = Vec::new();
        t.expire(t0 + Duration::from_secs(120), &mut due);
        assert_eq!(due.len(), 1);
    }

    #[test]
    fn past_deadlines_fire_on_the_next_expire() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0);
        let mut due = Vec::new();
        t.expire(t0 + Duration::from_secs(1), &mut due);
        t.arm(TimerKey::Conn { key: 3, id: 3 }, t0);
        assert!(t.timeout(t0 + Duration::from_secs(1)).unwrap() <= TICK);
        t.expire(t0 + Duration::from_secs(1) + TICK, &mut due);
        assert_eq!(due.len(), 1);
    }

    #[test]
    fn entries_keep_their_slot_across_a_long_stall() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0);
        let armed = t.arm(
            TimerKey::Conn { key: 9, id: 9 },
            t0 + Duration::from_secs(5),
        );
        let mut due = Vec::new();
        // the worker did not run for longer than the whole wheel
        t.expire(t0 + Duration::from_secs(140), &mut due);
        assert_eq!(
            due,
            vec![Entry {
                key: TimerKey::Conn { key: 9, id: 9 },
                slot: armed
            }]
        );
    }

    #[test]
    fn wraps_around_the_wheel() {
        let t0 = Instant::now();
        let mut t = Timers::new(t0);
        let mut due = Vec::new();
        let mut now = t0;
        for round in 0..3 * SLOTS as u32 / 512 {
            t.arm(
                TimerKey::Conn {
                    key: round,
                    id: round,
                },
                now + Duration::from_millis(500),
            );
            now += Duration::from_millis(512 * TICK_MS);
            t.expire(now, &mut due);
            assert_eq!(due.len(), round as usize + 1);
        }
    }
}
