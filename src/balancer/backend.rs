//! One backend server: what it is (URL, address, TLS, the key consistent hashing and the sticky
//! cookie know it by), its state (health flag, what the admin API set, its `max_conns`) and its
//! live counters (requests in flight, requests and response times, failures), all atomics, the
//! hot ones on cache lines of their own; and its health-check record ([`HealthInfo`]).
//!
//! Neighbours: the pool (`pool.rs`) holds `Arc<Backend>`s and changes what needs a new pool
//! (weight, cookie value); the strategies read [`eligible`] and the counters; a slot freed or a
//! backend that becomes a candidate again tells `slots.rs`. Who flips the health flag: the
//! health thread (`health/schedule.rs`) and passive health (`health/passive.rs`, which also
//! keeps its failure window here, [`Passive`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use super::slots::Slots;
use crate::config::{BackendConfig, Scheme};
use crate::transport::ClientTls;

/// A backend's state, as the admin API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Healthy and enabled: takes new requests.
    Up,
    /// Failed its health checks (or too many requests): takes none until it recovers.
    Down,
    /// Taking no new requests; the ones in flight finish (`DELETE`, or `PATCH` to `draining`).
    Draining,
    /// Switched off by hand (`PATCH` to `disabled`, or `PUT …/status {"alive": false}`).
    Disabled,
    /// Answered `consecutive_5xx` 5xx responses in a row: out for a while
    /// (`health/outlier.rs`).
    Ejected,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::Draining => "draining",
            State::Disabled => "disabled",
            State::Ejected => "ejected",
        }
    }
}

/// Healthy, enabled, below its `max_conns` and not `exclude`: a candidate for a new request.
#[inline]
pub fn eligible(b: &Backend, exclude: Option<u64>) -> bool {
    b.is_available() && b.has_room() && Some(b.id) != exclude
}

/// One backend server and its live counters.
#[derive(Debug)]
pub struct Backend {
    /// Unique for the life of the process (never reused after a removal).
    pub id: u64,
    pub url: String,
    /// What consistent hashing and the sticky cookie know it by: its URL, and for a host name
    /// (which may stand for several backends, see `crate::dns`) the address too.
    pub key: String,
    pub scheme: Scheme,
    pub host: String,
    /// `host[:port]` as written in the URL, for a `Host` field when a request has none.
    pub authority: String,
    pub addr: SocketAddr,
    /// For the weighted strategies, at least 1. Changing it takes a new pool (the strategies'
    /// tables are built from it when one is published): see [`Backend::set_weight`].
    weight: AtomicU32,
    /// `https://` backends: how to speak TLS to it.
    pub tls: Option<ClientTls>,
    /// Requests in flight at most, across all workers (0: no limit); a reload may change it.
    max_conns: AtomicU32,
    /// What the sticky cookie holds for this backend (`hash::cookie_id` of its key, or its MAC
    /// with the policy's `cookie_key`): set by the pool when it is rebuilt, read with
    /// [`Backend::cookie_id`].
    cookie_id: AtomicU64,
    /// Who to tell when a slot frees (with a `max_conns`) or the backend becomes a candidate.
    slots: Arc<Slots>,
    healthy: AtomicBool,
    /// What the admin API set: 0 enabled, 1 disabled, 2 draining.
    admin: AtomicU8,
    /// Passive health's failure window (`health/passive.rs`).
    pub(crate) passive: Passive,
    /// Outlier ejection's record (`health/outlier.rs`); `ejected_until` is read by every pick.
    pub(crate) outlier: Outlier,
    /// When it last became a candidate again (ms of `timer::clock_ms`; 0: not since the start,
    /// or its slow start is over): the start of its slow start.
    back_since: AtomicU64,
    /// Requests in flight on this backend right now.
    pub active: CachePadded<AtomicUsize>,
    /// Requests sent to this backend, ever, and their response times: bumped together, so they
    /// share a cache line.
    pub requests: CachePadded<Traffic>,
    /// Failed attempts (connect errors, resets, invalid responses, timeouts).
    pub failures: CachePadded<AtomicU64>,
    /// What the health checks know of it: written by the health thread (and by the workers'
    /// passive marking when it flips), read by the admin API. Never locked on the request path.
    pub health: Mutex<HealthInfo>,
}

/// Passive health's record of a backend, kept by `health::passive`: the start of the current
/// failure window and the failures in it (ms of `timer::clock_ms`, 0: none), and when failures
/// took it down (0: they did not). A backend found healthy again starts afresh.
#[derive(Debug, Default)]
pub struct Passive {
    pub(crate) window_start: AtomicU64,
    pub(crate) fails: AtomicU32,
    pub(crate) down_since: AtomicU64,
}

impl Passive {
    /// Forgets the window and the time it went down.
    pub(crate) fn reset(&self) {
        self.down_since.store(0, Ordering::Relaxed);
        self.window_start.store(0, Ordering::Relaxed);
    }
}

/// Outlier ejection's record of a backend, kept by `health::outlier`: 5xx responses in a row,
/// the end of the current ejection (ms of `timer::clock_ms`; 0: not ejected), the ejections
/// that count toward the next one's length, and when that count last went down (or the backend
/// last came back).
#[derive(Debug, Default)]
pub struct Outlier {
    pub(crate) consecutive_5xx: AtomicU32,
    pub(crate) ejected_until: AtomicU64,
    pub(crate) ejections: AtomicU32,
    pub(crate) calm_since: AtomicU64,
    /// Ejections ever (the metric).
    pub(crate) total: AtomicU64,
}

/// A backend's request count and response times (see [`Backend::requests`]).
#[derive(Debug, Default)]
pub struct Traffic {
    pub count: AtomicU64,
    pub latency: crate::stats::Latency,
}

/// The health-check record of one backend.
#[derive(Debug, Clone, Default)]
pub struct HealthInfo {
    /// The last probe: when (milliseconds since the Unix epoch) and whether it passed.
    pub last_check: Option<(u64, bool)>,
    /// Why the last failed probe (or passive marking) failed, e.g. `connection refused`.
    pub last_error: Option<String>,
    /// Consecutive probe results of the same kind, for rise and fall.
    pub successes: u32,
    pub failures: u32,
    /// The latest probe results, oldest first, at most [`HealthInfo::HISTORY`] (for the
    /// dashboard).
    pub history: std::collections::VecDeque<(u64, bool)>,
}

impl HealthInfo {
    pub const HISTORY: usize = 60;

    /// Records a probe result at `at_ms`; returns the consecutive count of its kind.
    pub fn record(&mut self, at_ms: u64, ok: bool, error: Option<String>) -> u32 {
        self.last_check = Some((at_ms, ok));
        if self.history.len() == Self::HISTORY {
            self.history.pop_front();
        }
        self.history.push_back((at_ms, ok));
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            self.successes
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            self.last_error = error;
            self.failures
        }
    }
}

impl Backend {
    pub fn new(
        id: u64,
        cfg: &BackendConfig,
        tls: Option<ClientTls>,
        default_max_conns: u32,
        slots: &Arc<Slots>,
    ) -> Backend {
        let max_conns = cfg.max_conns.unwrap_or(default_max_conns);
        let key = if crate::dns::is_name(&cfg.host) {
            format!("{}#{}", cfg.url, cfg.addr)
        } else {
            cfg.url.clone()
        };
        Backend {
            tls,
            max_conns: AtomicU32::new(max_conns),
            slots: Arc::clone(slots),
            cookie_id: AtomicU64::new(crate::hash::cookie_id(&key)),
            key,
            id,
            url: cfg.url.clone(),
            authority: authority(&cfg.url),
            scheme: cfg.scheme,
            host: cfg.host.clone(),
            addr: cfg.addr,
            weight: AtomicU32::new(cfg.weight.max(1)),
            healthy: AtomicBool::new(true),
            admin: AtomicU8::new(ADMIN_ENABLED),
            passive: Passive::default(),
            outlier: Outlier::default(),
            back_since: AtomicU64::new(0),
            active: CachePadded::default(),
            requests: CachePadded::default(),
            failures: CachePadded::default(),
            health: Mutex::new(HealthInfo::default()),
        }
    }

    /// The value of the sticky cookie that names this backend.
    #[inline]
    pub fn cookie_id(&self) -> u64 {
        self.cookie_id.load(Ordering::Relaxed)
    }

    /// Sets the sticky cookie's value (the pool, when it is rebuilt).
    pub(super) fn set_cookie_id(&self, id: u64) {
        self.cookie_id.store(id, Ordering::Relaxed);
    }

    #[inline]
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// Sets the weight (at least 1). Only the pool calls it: the strategies' tables must be
    /// rebuilt after.
    pub(super) fn set_weight(&self, weight: u32) {
        self.weight.store(weight.max(1), Ordering::Relaxed);
    }

    /// Healthy, enabled and not ejected: eligible for new requests.
    #[inline]
    pub fn is_available(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
            && self.admin.load(Ordering::Relaxed) == ADMIN_ENABLED
            && self.outlier.ejected_until.load(Ordering::Relaxed) == 0
    }

    /// Ejected by outlier detection (until a time the workers' housekeeping watches).
    pub fn is_ejected(&self) -> bool {
        self.outlier.ejected_until.load(Ordering::Relaxed) != 0
    }

    /// When the current ejection ends (ms of `timer::clock_ms`), if ejected.
    pub fn ejected_until(&self) -> Option<u64> {
        Some(self.outlier.ejected_until.load(Ordering::Relaxed)).filter(|&t| t != 0)
    }

    /// Times outlier detection ejected it.
    pub fn ejections(&self) -> u64 {
        self.outlier.total.load(Ordering::Relaxed)
    }

    /// Ends the ejection that lasts until `until` (a compare-and-swap: of two workers sweeping,
    /// one brings it back): it comes back under slow start, and waiting requests may take it.
    pub(crate) fn end_ejection(&self, until: u64) -> bool {
        let ended = self
            .outlier
            .ejected_until
            .compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if ended {
            self.came_back();
            self.slots.freed();
        }
        ended
    }

    /// It became a candidate again now: its slow start begins (`Pool::pick` reads it).
    pub fn came_back(&self) {
        let now = crate::timer::clock_ms(std::time::Instant::now()).max(1);
        self.back_since.store(now, Ordering::Relaxed);
    }

    /// The start of its slow start (ms of `timer::clock_ms`), if one may be under way.
    #[inline]
    pub fn back_since(&self) -> Option<u64> {
        Some(self.back_since.load(Ordering::Relaxed)).filter(|&t| t != 0)
    }

    /// Its share of its turns while its slow start of `slow_start_ms` is under way at `now_ms`
    /// (ms of `timer::clock_ms`), per mille: 100 at first, growing to 1000; `None` once over
    /// (or with no slow start).
    #[inline]
    pub fn ramp_per_mille(&self, slow_start_ms: u64, now_ms: u64) -> Option<u64> {
        let since = self.back_since()?;
        let elapsed = now_ms.saturating_sub(since);
        (elapsed < slow_start_ms).then(|| 100 + 900 * elapsed / slow_start_ms)
    }

    /// Its slow start is over: picks stop looking at the clock for it.
    pub(crate) fn ramp_done(&self, since: u64) {
        let _ = self
            .back_since
            .compare_exchange(since, 0, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Sets the health flag (health checks); returns what it was. Healthy, it forgets the passive
    /// failure window, and a backend that was down wakes the requests waiting for a slot.
    pub fn set_healthy(&self, healthy: bool) -> bool {
        if healthy {
            self.passive.reset();
        }
        let was = self.healthy.swap(healthy, Ordering::SeqCst);
        if healthy && !was {
            // a candidate again: requests waiting for a slot may take it
            self.came_back();
            self.slots.freed();
        }
        was
    }

    /// Sets the bare health flag, nothing else; returns what it was. Passive health's own flips
    /// (`health/passive.rs`), which keep their window themselves.
    pub(crate) fn swap_healthy(&self, healthy: bool) -> bool {
        let was = self.healthy.swap(healthy, Ordering::Relaxed);
        if healthy && !was {
            self.came_back();
        }
        was
    }

    /// Neither disabled nor draining.
    pub fn is_enabled(&self) -> bool {
        self.admin.load(Ordering::Relaxed) == ADMIN_ENABLED
    }

    pub fn set_enabled(&self, enabled: bool) {
        let v = if enabled {
            ADMIN_ENABLED
        } else {
            ADMIN_DISABLED
        };
        let was = self.admin.swap(v, Ordering::SeqCst);
        if enabled && was != ADMIN_ENABLED {
            self.came_back();
        }
        if enabled {
            self.slots.freed();
        }
    }

    /// Takes no new requests; those in flight finish.
    pub fn set_draining(&self) {
        self.admin.store(ADMIN_DRAINING, Ordering::Relaxed);
    }

    pub fn state(&self) -> State {
        match self.admin.load(Ordering::Relaxed) {
            ADMIN_DRAINING => State::Draining,
            ADMIN_DISABLED => State::Disabled,
            _ if !self.is_healthy() => State::Down,
            _ if self.is_ejected() => State::Ejected,
            _ => State::Up,
        }
    }

    /// Below its `max_conns` (always, without one).
    #[inline]
    pub fn has_room(&self) -> bool {
        let max = self.max_conns();
        max == 0 || self.active.load(Ordering::SeqCst) < max as usize
    }

    /// A request starts on this backend.
    #[inline]
    pub fn begin_request(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.requests.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests sent to this backend, ever (retries included).
    pub fn total_requests(&self) -> u64 {
        self.requests.count.load(Ordering::Relaxed)
    }

    /// A response head came back `ms` milliseconds after the request went out.
    #[inline]
    pub fn answered_in(&self, ms: u64) {
        self.requests.latency.record(ms);
    }

    /// A request starts on this backend if it has room (two workers may both have seen the last
    /// slot free: the one that comes second backs off). False: it is at its `max_conns`.
    #[inline]
    pub fn try_begin_request(&self) -> bool {
        let before = self.active.fetch_add(1, Ordering::SeqCst);
        let max = self.max_conns();
        if max != 0 && before >= max as usize {
            self.active.fetch_sub(1, Ordering::SeqCst);
            self.slots.freed();
            return false;
        }
        self.requests.count.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// A request on this backend ended, whatever the outcome.
    #[inline]
    pub fn end_request(&self) {
        if self.max_conns() == 0 {
            self.active.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.active.fetch_sub(1, Ordering::SeqCst);
            self.slots.freed();
        }
    }

    /// Requests in flight at most (0: no limit).
    #[inline]
    pub fn max_conns(&self) -> u32 {
        self.max_conns.load(Ordering::Relaxed)
    }

    /// Changes the limit (a reload); requests waiting for a slot look again.
    pub fn set_max_conns(&self, max: u32) {
        self.max_conns.store(max, Ordering::Relaxed);
        self.slots.freed();
    }

    #[inline]
    pub fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn active_requests(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

const ADMIN_ENABLED: u8 = 0;
const ADMIN_DISABLED: u8 = 1;
const ADMIN_DRAINING: u8 = 2;

/// The authority part of a validated backend URL (`http://host:port/` → `host:port`).
fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.trim_end_matches('/').to_owned()
}
