//! The health thread's loop (see `mod.rs` for the rules it follows): the [`Checker`] owns the
//! poll, the backends it checks (by id, taken from the published pool at each round or when the
//! pool's generation moves), the probes in flight (a slab; the key is the poll token) and their
//! deadline queue, and applies each probe's outcome to the backend (`HealthInfo::record`, the
//! rise/fall rule of `mod.rs`, the flag, the log lines). One probe is `probe.rs`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::probe::{self, Kind, Outcome, Probe};
use super::{judge, HealthSettings, WAKER};
use crate::balancer::{Backend, Balancer, Pool};
use crate::buffer::BufPool;
use crate::config::{HealthCheckMethod, StatusSet};
use crate::hash::stable_hash;
use crate::timer::epoch_ms;

/// Buffers the thread keeps for probes between rounds.
const KEEP_BUFFERS: usize = 64;
/// The most a probe's start is moved by jitter.
const MAX_JITTER: Duration = Duration::from_millis(50);

/// `whole * i / n`, without overflow.
fn fraction(whole: Duration, i: usize, n: usize) -> Duration {
    let nanos = whole.as_nanos() * i as u128 / n.max(1) as u128;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// A backend the thread checks.
struct Target {
    backend: Arc<Backend>,
    /// The `http` request, built once (its `Host` is the backend's).
    request: Arc<[u8]>,
    /// The slab key of its probe in flight.
    probe: Option<usize>,
}

/// A probe in flight and whose it is.
struct InFlight {
    probe: Probe,
    backend: u64,
    /// Tells this probe apart from a later one under the same slab key (in the deadline queue).
    serial: u64,
}

pub(super) struct Checker {
    poll: Poll,
    balancer: Arc<Balancer>,
    settings: HealthSettings,
    expect: Arc<StatusSet>,
    stop: Arc<AtomicBool>,
    /// By backend id.
    targets: HashMap<u64, Target>,
    /// The generation of the pool `targets` was taken from.
    generation: u64,
    probes: Slab<InFlight>,
    /// `(deadline, slab key, serial)` in start order, hence in deadline order.
    deadlines: VecDeque<(Instant, usize, u64)>,
    serial: u64,
    /// This round: backend ids in pool order, when it began, and the next one to start.
    round: Vec<u64>,
    round_start: Instant,
    next: usize,
    /// Rounds begun (it varies the jitter from one round to the next).
    rounds: u64,
    /// Seeds the jitter apart from another proxy's with the same backends.
    seed: u64,
    bufs: BufPool,
}

impl Checker {
    pub(super) fn new(
        poll: Poll,
        balancer: Arc<Balancer>,
        settings: HealthSettings,
        stop: Arc<AtomicBool>,
    ) -> Checker {
        static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nth = STARTED.fetch_add(1, Ordering::Relaxed);
        let seed = stable_hash(
            u64::from(std::process::id()) ^ nth,
            &epoch_ms().to_le_bytes(),
        );
        Checker {
            poll,
            expect: Arc::new(settings.check.expect.clone()),
            settings,
            stop,
            targets: HashMap::new(),
            generation: 0,
            probes: Slab::new(),
            deadlines: VecDeque::new(),
            serial: 0,
            round: Vec::new(),
            round_start: Instant::now(),
            next: 0,
            rounds: 0,
            seed,
            bufs: BufPool::new(probe::READ_LIMIT, KEEP_BUFFERS),
            balancer,
        }
    }

    pub(super) fn run(&mut self) {
        log::debug!(
            "health checks: {} every {:?}, timeout {:?}, rise {}, fall {}",
            self.settings.check.method,
            self.settings.check.frequency,
            self.settings.timeout,
            self.settings.check.rise,
            self.settings.check.fall
        );
        let mut events = Events::with_capacity(256);
        self.begin_round(Instant::now());
        // runs until stopped: each pass is one poll, whose wait ends at the next due probe,
        // deadline or round
        while !self.stop.load(Ordering::Acquire) {
            let now = Instant::now();
            if self.balancer.generation() != self.generation {
                let _ = self.sync();
            }
            self.start_due(now);
            if now >= self.round_start + self.settings.check.frequency {
                // a thread that fell a whole round behind starts afresh from now
                let next = self.round_start + self.settings.check.frequency;
                self.begin_round(if now >= next + self.settings.check.frequency {
                    now
                } else {
                    next
                });
                self.start_due(now);
            }
            self.expire(now);
            let wait = self.next_wake().saturating_duration_since(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("health checks stop: poll failed: {e}");
                    return;
                }
            }
            for event in events.iter() {
                if event.token() != WAKER {
                    self.drive(event.token().0);
                }
            }
        }
    }

    /// Takes up the published pool: new backends get a target (checked from the next round),
    /// removed ones are dropped with their probe.
    fn sync(&mut self) -> Arc<Pool> {
        let pool = self.balancer.current();
        self.generation = pool.generation();
        let ids: HashSet<u64> = pool.backends().iter().map(|b| b.id).collect();
        let gone: Vec<u64> = self
            .targets
            .keys()
            .copied()
            .filter(|id| !ids.contains(id))
            .collect();
        for id in gone {
            if let Some(key) = self.targets.remove(&id).and_then(|t| t.probe) {
                self.cancel(key);
            }
        }
        for b in pool.backends() {
            self.targets.entry(b.id).or_insert_with(|| Target {
                request: probe::request(&self.settings.check.path, b),
                backend: Arc::clone(b),
                probe: None,
            });
        }
        pool
    }

    /// A new round from `at`: every backend of the pool, in pool order.
    fn begin_round(&mut self, at: Instant) {
        let pool = self.sync();
        self.round.clear();
        self.round.extend(pool.backends().iter().map(|b| b.id));
        self.round_start = at;
        self.next = 0;
        self.rounds += 1;
    }

    /// When backend `i` of this round is due: `i/n` of the interval, plus its jitter (under a
    /// quarter of its slot, so the order holds).
    fn due(&self, i: usize) -> Instant {
        let n = self.round.len().max(1);
        let slot = fraction(self.settings.check.frequency, 1, n);
        let span = (slot / 4).min(MAX_JITTER).as_nanos().max(1);
        let id = self.round.get(i).copied().unwrap_or(0);
        let draw = stable_hash(self.seed ^ self.rounds, &id.to_le_bytes());
        let jitter = Duration::from_nanos(u64::try_from(u128::from(draw) % span).unwrap_or(0));
        self.round_start + fraction(self.settings.check.frequency, i, n) + jitter
    }

    /// Starts the probes of this round that are due at `now`.
    fn start_due(&mut self, now: Instant) {
        while self.next < self.round.len() && self.due(self.next) <= now {
            let id = self.round[self.next];
            self.next += 1;
            self.start_probe(id, now);
        }
    }

    fn start_probe(&mut self, id: u64, now: Instant) {
        let Some(target) = self.targets.get(&id) else {
            return; // removed since the round began
        };
        if target.probe.is_some() {
            log::debug!(
                "Health check: {} skipped: its last check still runs",
                target.backend.url
            );
            return;
        }
        let backend = Arc::clone(&target.backend);
        let kind = match self.settings.check.method {
            HealthCheckMethod::Tcp => Kind::Tcp,
            _ => Kind::Http {
                request: Arc::clone(&target.request),
                expect: Arc::clone(&self.expect),
                buf: self.bufs.get(),
            },
        };
        let mut probe = match Probe::connect(&backend, kind) {
            Ok(probe) => probe,
            Err(reason) => return self.conclude(&backend, Err(reason)),
        };
        let entry = self.probes.vacant_entry();
        let key = entry.key();
        let registered = self.poll.registry().register(
            probe.source(),
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        );
        if let Err(e) = registered {
            if let Some(buf) = probe.into_buf() {
                self.bufs.put(buf);
            }
            return self.conclude(&backend, Err(format!("cannot poll its socket: {e}")));
        }
        self.serial += 1;
        entry.insert(InFlight {
            probe,
            backend: id,
            serial: self.serial,
        });
        self.deadlines
            .push_back((now + self.settings.timeout, key, self.serial));
        if let Some(t) = self.targets.get_mut(&id) {
            t.probe = Some(key);
        }
    }

    /// The socket of probe `key` is ready: drive it, and conclude it if it is over.
    fn drive(&mut self, key: usize) {
        let Some(flight) = self.probes.get_mut(key) else {
            return;
        };
        if let Some(outcome) = flight.probe.drive() {
            self.finish(key, outcome);
        }
    }

    /// Fails with `timed out` every probe whose deadline has come.
    fn expire(&mut self, now: Instant) {
        while let Some(&(deadline, key, serial)) = self.deadlines.front() {
            let live = self.probes.get(key).is_some_and(|f| f.serial == serial);
            if live && deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if live {
                self.finish(key, Err("timed out".into()));
            }
        }
    }

    /// The next moment something is due: a probe's start, a deadline, the next round.
    fn next_wake(&self) -> Instant {
        let mut at = self.round_start + self.settings.check.frequency;
        if self.next < self.round.len() {
            at = at.min(self.due(self.next));
        }
        if let Some(&(deadline, _, _)) = self.deadlines.front() {
            at = at.min(deadline);
        }
        at
    }

    /// Removes probe `key` from the poll and the slab; its buffer goes back to the pool.
    fn remove(&mut self, key: usize) -> Option<InFlight> {
        let mut flight = self.probes.try_remove(key)?;
        flight.probe.close();
        let _ = self.poll.registry().deregister(flight.probe.source());
        Some(flight)
    }

    fn cancel(&mut self, key: usize) {
        if let Some(buf) = self.remove(key).and_then(|f| f.probe.into_buf()) {
            self.bufs.put(buf);
        }
    }

    /// Probe `key` is over with `outcome`.
    fn finish(&mut self, key: usize, outcome: Outcome) {
        let Some(flight) = self.remove(key) else {
            return;
        };
        if let Some(buf) = flight.probe.into_buf() {
            self.bufs.put(buf);
        }
        let Some(target) = self.targets.get_mut(&flight.backend) else {
            return;
        };
        target.probe = None;
        let backend = Arc::clone(&target.backend);
        self.conclude(&backend, outcome);
        if self.probes.is_empty() {
            self.bufs.trim();
        }
    }

    /// Records a probe's outcome and applies the rise/fall rule.
    fn conclude(&self, backend: &Backend, outcome: Outcome) {
        let ok = outcome.is_ok();
        match &outcome {
            Ok(()) => log::debug!("Health check: {} is alive", backend.url),
            Err(reason) => log::debug!("Health check: {} is dead: {reason}", backend.url),
        }
        let mut health = backend.health.lock();
        let consecutive = health.record(epoch_ms(), ok, outcome.err());
        let (rise, fall) = (self.settings.check.rise, self.settings.check.fall);
        match judge(backend.is_healthy(), ok, consecutive, rise, fall) {
            Some(true) => {
                backend.set_healthy(true);
                log::info!("{} is up again ({consecutive} checks)", backend.url);
            }
            Some(false) => {
                backend.set_healthy(false);
                let reason = health.last_error.as_deref().unwrap_or("failed");
                log::info!("{} is down: {reason} ({consecutive} checks)", backend.url);
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn probes_are_spread_over_the_interval() {
        let whole = Duration::from_secs(10);
        assert_eq!(fraction(whole, 0, 4), Duration::ZERO);
        assert_eq!(fraction(whole, 1, 4), Duration::from_millis(2500));
        assert_eq!(fraction(whole, 3, 4), Duration::from_millis(7500));
        assert_eq!(
            fraction(Duration::MAX, 5, 4),
            Duration::from_nanos(u64::MAX)
        );
    }

    #[test]
    fn each_backend_is_due_in_its_own_slot_of_the_round() {
        let cfg = Config::from_json_str(r#"{"health_check_frequency": "1s"}"#).expect("valid");
        let backends: Vec<_> = (1..=4).map(|p| crate::balancer::tests::cfg(p, 1)).collect();
        let balancer = Arc::new(Balancer::new(Pool::new(
            cfg.pool.balance.strategy,
            &backends,
        )));
        let poll = Poll::new().expect("a poll");
        let settings = HealthSettings::from_pool(&cfg.pool);
        let stop = Arc::new(AtomicBool::new(false));
        let mut checker = Checker::new(poll, balancer, settings, stop);
        let start = Instant::now();
        for _ in 0..3 {
            checker.begin_round(start);
            assert_eq!(checker.round, [0, 1, 2, 3]);
            for i in 0..4 {
                let offset = checker.due(i) - start;
                let slot = Duration::from_millis(250) * i as u32;
                assert!(offset >= slot, "{i}: {offset:?}");
                // the jitter: under a quarter of the slot, at most MAX_JITTER
                assert!(offset < slot + MAX_JITTER, "{i}: {offset:?}");
            }
        }
    }
}
