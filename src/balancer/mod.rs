//! The backend pool and how a backend is chosen for a request.
//!
//! A [`Pool`] is an immutable view: the backends (each an `Arc<Backend>` whose state and
//! counters are atomics, each on its own cache line), the strategy, and what the strategy
//! precomputes (`Selector`: the round-robin schedule, the cumulative weights, the Maglev table).
//! The [`Balancer`] publishes the current one; a change of membership, weight or strategy (admin
//! API, reload) builds a new `Pool` and publishes it under a new generation number. A worker keeps
//! its own `Arc<Pool>` in its [`Picker`] and looks only at the generation, one relaxed load of a
//! line written only when the pool changes: picking takes no lock. Health and enabled flags change
//! in place, on the backend's atomics, and need no new pool.
//!
//! One file per strategy, each with its tests: `round_robin.rs` (smooth weighted, one schedule
//! for the whole proxy), `least_conn.rs`, `p2c.rs`, `random.rs`, `maglev.rs` (consistent
//! hashing); `hash.rs` is the fixed hash and the per-worker random generator they share;
//! `sticky.rs` keeps clients on their backend (by address, or by a cookie naming it, whose value
//! `cookie.rs` makes).
//!
//! [`Picker::choose`] is the whole decision for one request: the sticky binding if it holds, else
//! the strategy (then the client is bound to what it chose), `Full` when every candidate is at its
//! `max_conns` (the request waits in its worker's queue), and, when no backend is healthy,
//! `fail_open` sends to the enabled ones anyway.

mod cookie;
mod hash;
mod least_conn;
mod maglev;
mod p2c;
mod random;
mod round_robin;
pub mod sticky;

pub use hash::{hash as stable_hash, hash_ip};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, RwLock};

use crate::config::{BackendConfig, PoolConfig, Scheme, StickyMode, Strategy};
use crate::transport::ClientTls;

/// Pool generations come from one process-wide counter, so a worker can never mistake a new
/// pool (built by a reload, say) for the one it holds.
static EPOCH: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    EPOCH.fetch_add(1, Ordering::Relaxed) + 1
}

/// How requests stay with a backend and what happens when none is healthy. It travels with the
/// pool (a reload publishes a new one; the sticky table is kept when its settings are unchanged).
#[derive(Debug, Default)]
pub struct Policy {
    /// Sticky sessions, by address (a table) or by cookie (`None` when off).
    pub sticky: Option<Sticky>,
    /// `sticky_cookie_secret`: the sticky cookie's value is a MAC with this key (else a fixed
    /// hash). The pool gives every backend its value from it.
    pub cookie_key: Option<Arc<sticky::CookieKey>>,
    /// With every backend down, send to the enabled ones anyway.
    pub fail_open: bool,
    /// Passive health: `max_fails` failures (0: off) within `fail_timeout` take a backend down.
    pub max_fails: u32,
    pub fail_timeout_ms: u64,
    /// Active checks run (they bring a backend taken down passively back up); without them, it
    /// is tried again `fail_timeout` after it went down.
    pub active_checks: bool,
}

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
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Down => "down",
            State::Draining => "draining",
            State::Disabled => "disabled",
        }
    }
}

/// Milliseconds since this process started: the clock of passive health.
pub fn clock_ms(now: Instant) -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(now.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
}

#[derive(Debug)]
pub enum Sticky {
    Ip(Arc<sticky::StickyTable>),
    Cookie,
}

impl Policy {
    /// A pool's policy, from its sticky, passive health and active health keys.
    pub fn from_pool(pool: &PoolConfig) -> Policy {
        let s = &pool.sticky;
        let sticky = s.enabled.then(|| match s.mode {
            StickyMode::Ip => Sticky::Ip(Arc::new(sticky::StickyTable::new(
                s.max_entries,
                s.ttl.as_secs(),
            ))),
            StickyMode::Cookie => Sticky::Cookie,
        });
        Policy {
            sticky,
            cookie_key: s
                .cookie_secret
                .as_deref()
                .map(|s| Arc::new(sticky::CookieKey::new(s))),
            fail_open: pool.balance.fail_open,
            max_fails: pool.passive.max_fails,
            fail_timeout_ms: u64::try_from(pool.passive.fail_timeout.as_millis())
                .unwrap_or(u64::MAX),
            active_checks: pool.health.active(),
        }
    }
}

/// What a request brings to the choice of its backend.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    /// The hash `consistent-hash` looks up (`hash_key`'s value, or the client address).
    pub key: u64,
    /// The hash of the client's address ([`hash_ip`]; sticky `ip` mode).
    pub client: u64,
    /// The backend the sticky cookie named, if the request carried a well-formed one.
    pub cookie: Option<u64>,
    /// A backend that just failed this request: avoided unless it is the only one.
    pub exclude: Option<u64>,
    pub now: Instant,
}

/// Wakes the workers whose queues wait for a backend slot (`max_conns`) when one frees up. A
/// worker registers its waker and its count of queued requests; a backend with a limit calls
/// [`Slots::freed`] when a request on it ends, which costs one relaxed load while nobody waits.
#[derive(Debug, Default)]
pub struct Slots {
    /// Requests waiting in all the queues.
    waiting: CachePadded<AtomicUsize>,
    workers: RwLock<Vec<(Arc<mio::Waker>, Arc<AtomicUsize>)>>,
}

impl Slots {
    /// Worker registration: its waker, and the count of requests in its queue.
    pub fn register(&self, waker: Arc<mio::Waker>, queued: Arc<AtomicUsize>) {
        self.workers.write().push((waker, queued));
    }

    /// One request more (or less) waits in `queued`'s queue. `SeqCst`, with the `SeqCst` end of a
    /// request and load in [`Slots::freed`]: either the worker queueing sees the slot the other
    /// freed (it tries once more right after queueing), or the other sees it waiting and wakes it.
    pub fn enqueued(&self, queued: &AtomicUsize) {
        queued.fetch_add(1, Ordering::SeqCst);
        self.waiting.fetch_add(1, Ordering::SeqCst);
    }

    pub fn dequeued(&self, queued: &AtomicUsize) {
        queued.fetch_sub(1, Ordering::SeqCst);
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    /// A slot freed on a backend with a limit, or a backend became a candidate (added, enabled,
    /// healthy again): wake every worker with requests waiting. One load while nobody waits.
    #[inline]
    pub fn freed(&self) {
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        for (waker, queued) in self.workers.read().iter() {
            if queued.load(Ordering::Relaxed) > 0 {
                let _ = waker.wake();
            }
        }
    }
}

/// The outcome of [`Picker::choose`].
#[derive(Debug)]
pub enum Choice<'a> {
    /// This backend; `set_cookie`: the response must (re)set the sticky cookie.
    Backend {
        backend: &'a Arc<Backend>,
        set_cookie: bool,
    },
    /// Every candidate is at its `max_conns`: wait for a slot.
    Full,
    /// No backend is available.
    None,
}

/// The published pool, shared by every thread.
#[derive(Debug)]
pub struct Balancer {
    current: RwLock<Arc<Pool>>,
    /// The slot notifier every pool published here shares.
    slots: Arc<Slots>,
    /// The generation of `current`: what workers compare their copy against.
    generation: CachePadded<AtomicU64>,
    /// Serialises writers, so two concurrent changes cannot lose one another.
    writer: Mutex<()>,
    /// Backends taken out of the pool (admin `DELETE`, a reload, DNS) that still had requests in
    /// flight: listed as draining until the last one ends.
    retired: Mutex<Vec<Arc<Backend>>>,
}

impl Balancer {
    pub fn new(pool: Pool) -> Balancer {
        Balancer::with_policy(pool, Policy::default())
    }

    pub fn with_policy(mut pool: Pool, policy: Policy) -> Balancer {
        pool.set_policy(Arc::new(policy));
        Balancer {
            generation: CachePadded::new(AtomicU64::new(pool.generation)),
            slots: Arc::clone(&pool.slots),
            current: RwLock::new(Arc::new(pool)),
            writer: Mutex::new(()),
            retired: Mutex::new(Vec::new()),
        }
    }

    /// The policy of the current pool.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.current.read().policy)
    }

    /// Keeps `backend`, just taken out of the pool, listed until its requests in flight end.
    pub fn retire(&self, backend: Arc<Backend>) {
        if backend.active_requests() > 0 {
            self.retired.lock().push(backend);
        }
    }

    /// The retired backends still draining.
    pub fn retired(&self) -> Vec<Arc<Backend>> {
        self.retired.lock().clone()
    }

    /// Forgets the retired backends whose last request ended, and returns them.
    pub fn prune_retired(&self) -> Vec<Arc<Backend>> {
        let mut retired = self.retired.lock();
        if retired.is_empty() {
            return Vec::new();
        }
        let (done, still): (Vec<_>, Vec<_>) =
            retired.drain(..).partition(|b| b.active_requests() == 0);
        *retired = still;
        done
    }

    /// Who to tell when a backend slot frees; workers register with it.
    pub fn slots(&self) -> &Slots {
        &self.slots
    }

    /// A request failed on `backend` (connect error, reset, timeout): passive health counts it,
    /// and `max_fails` of them within `fail_timeout` take the backend down at once. Returns true
    /// when this failure took it down.
    pub fn failed(&self, backend: &Backend, now: Instant) -> bool {
        backend.record_failure();
        let p = self.policy();
        if p.max_fails == 0 || !backend.is_healthy() {
            return false;
        }
        let now_ms = clock_ms(now).max(1);
        let start = backend.fail_window.load(Ordering::Relaxed);
        let count = if start == 0 || now_ms.saturating_sub(start) > p.fail_timeout_ms {
            backend.fail_window.store(now_ms, Ordering::Relaxed);
            backend.fails.store(1, Ordering::Relaxed);
            1
        } else {
            backend.fails.fetch_add(1, Ordering::Relaxed) + 1
        };
        if count < p.max_fails || !backend.healthy.swap(false, Ordering::Relaxed) {
            return false;
        }
        backend.down_since.store(now_ms, Ordering::Relaxed);
        log::warn!(
            "{} is down: {count} failed requests within {} ms{}",
            backend.url,
            p.fail_timeout_ms,
            if p.active_checks {
                " (health checks bring it back)"
            } else {
                ""
            }
        );
        true
    }

    /// Without active checks, backends taken down by failures are tried again `fail_timeout`
    /// after: called by the workers' housekeeping, once a second.
    pub fn revive(&self, now: Instant) {
        let p = self.policy();
        if p.active_checks || p.max_fails == 0 {
            return;
        }
        let now_ms = clock_ms(now);
        for b in self.current().backends() {
            let since = b.down_since.load(Ordering::Relaxed);
            if !b.is_healthy() && since != 0 && now_ms.saturating_sub(since) >= p.fail_timeout_ms {
                b.down_since.store(0, Ordering::Relaxed);
                b.fail_window.store(0, Ordering::Relaxed);
                if !b.healthy.swap(true, Ordering::Relaxed) {
                    log::info!(
                        "{} is tried again ({} ms after it went down)",
                        b.url,
                        p.fail_timeout_ms
                    );
                }
            }
        }
    }

    /// The pool as it is now.
    pub fn current(&self) -> Arc<Pool> {
        Arc::clone(&self.current.read())
    }

    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Changes the pool: `change` edits a copy, whose strategy tables are then rebuilt and which
    /// is published (workers take it up at their next pick). Returns what `change` returned.
    pub fn update<R>(&self, change: impl FnOnce(&mut Pool) -> R) -> R {
        let _writer = self.writer.lock();
        let mut pool = Pool::clone(&self.current.read());
        let result = change(&mut pool);
        pool.rebuild();
        let generation = pool.generation;
        *self.current.write() = Arc::new(pool);
        self.generation.store(generation, Ordering::Release);
        // a backend added, or room made: requests waiting for a slot may find one now
        self.slots.freed();
        result
    }
}

/// A worker's own selection state: its random generator and its tie-breaking cursor.
#[derive(Debug, Clone)]
pub struct WorkerPick {
    rng: hash::Rng,
    cursor: usize,
}

impl WorkerPick {
    /// The state of worker `index`: a generator seeded apart from the others', a cursor that
    /// starts elsewhere.
    pub fn new(index: usize) -> WorkerPick {
        WorkerPick {
            rng: hash::Rng::new(0x5eed ^ (index as u64).wrapping_mul(0x9e37_79b9)),
            cursor: index,
        }
    }
}

/// A worker's view of the pool and its selection state.
#[derive(Debug)]
pub struct Picker {
    pool: Arc<Pool>,
    state: WorkerPick,
}

impl Picker {
    /// The picker of worker `index`.
    pub fn new(balancer: &Balancer, index: usize) -> Picker {
        Picker {
            pool: balancer.current(),
            state: WorkerPick::new(index),
        }
    }

    /// Chooses a backend (see [`Pool::pick`]), after taking up a newer pool if one was published.
    #[inline]
    pub fn pick(
        &mut self,
        balancer: &Balancer,
        key: u64,
        exclude: Option<u64>,
    ) -> Option<&Arc<Backend>> {
        if balancer.generation() != self.pool.generation {
            self.pool = balancer.current();
        }
        self.pool.pick(&mut self.state, key, exclude)
    }

    /// The pool this worker picks from.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The backend for a request: its sticky binding when that backend is available, else the
    /// strategy's choice (and the client is bound to it).
    pub fn choose(&mut self, balancer: &Balancer, ask: &Ask) -> Choice<'_> {
        if balancer.generation() != self.pool.generation {
            self.pool = balancer.current();
        }
        let pool = &self.pool;
        let sticky = pool.policy.sticky.as_ref();
        if ask.exclude.is_none() {
            let bound = match sticky {
                Some(Sticky::Ip(table)) => table
                    .get(ask.client, ask.now)
                    .and_then(|id| pool.by_id.get(&id)),
                Some(Sticky::Cookie) => ask.cookie.and_then(|c| pool.by_cookie.get(&c)),
                None => None,
            };
            if let Some(b) = bound.and_then(|&i| pool.backends.get(i)) {
                if eligible(b, None) {
                    return Choice::Backend {
                        backend: b,
                        set_cookie: false,
                    };
                }
            }
        }
        match pool.pick(&mut self.state, ask.key, ask.exclude) {
            Some(backend) => {
                let set_cookie = match sticky {
                    Some(Sticky::Ip(table)) => {
                        table.bind(ask.client, backend.id, ask.now);
                        false
                    }
                    Some(Sticky::Cookie) => ask.cookie != Some(backend.cookie_id()),
                    None => false,
                };
                Choice::Backend {
                    backend,
                    set_cookie,
                }
            }
            None if pool.backends.iter().any(|b| b.is_available()) => Choice::Full,
            None if pool.policy.fail_open => {
                // every backend is down: try the enabled ones anyway, in turn
                let n = pool.backends.len();
                let start = self.state.cursor;
                self.state.cursor = self.state.cursor.wrapping_add(1);
                (0..n)
                    .map(|k| &pool.backends[(start + k) % n])
                    .find(|b| b.is_enabled())
                    .map_or(Choice::None, |backend| Choice::Backend {
                        backend,
                        set_cookie: false,
                    })
            }
            None => Choice::None,
        }
    }
}

/// Healthy, enabled, below its `max_conns` and not `exclude`: a candidate for a new request.
#[inline]
fn eligible(b: &Backend, exclude: Option<u64>) -> bool {
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
    /// tables are built from it when one is published).
    weight: AtomicU32,
    /// `https://` backends: how to speak TLS to it.
    pub tls: Option<ClientTls>,
    /// Requests in flight at most, across all workers (0: no limit); a reload may change it.
    max_conns: AtomicU32,
    /// What the sticky cookie holds for this backend ([`sticky::cookie_id`] of its key, or its
    /// MAC with the policy's `cookie_key`): set by the pool ([`Pool::rebuild`]), read with
    /// [`Backend::cookie_id`].
    cookie_id: AtomicU64,
    /// Who to tell when a slot frees (with a `max_conns`) or the backend becomes a candidate.
    slots: Arc<Slots>,
    healthy: AtomicBool,
    /// What the admin API set: 0 enabled, 1 disabled, 2 draining.
    admin: std::sync::atomic::AtomicU8,
    /// Passive health: the start of the current failure window and the failures in it (ms of
    /// [`clock_ms`], 0: none), and when failures took it down (0: they did not).
    fail_window: AtomicU64,
    fails: AtomicU32,
    down_since: AtomicU64,
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
            cookie_id: AtomicU64::new(sticky::cookie_id(&key)),
            key,
            id,
            url: cfg.url.clone(),
            authority: authority(&cfg.url),
            scheme: cfg.scheme,
            host: cfg.host.clone(),
            addr: cfg.addr,
            weight: AtomicU32::new(cfg.weight.max(1)),
            healthy: AtomicBool::new(true),
            admin: std::sync::atomic::AtomicU8::new(ADMIN_ENABLED),
            fail_window: AtomicU64::new(0),
            fails: AtomicU32::new(0),
            down_since: AtomicU64::new(0),
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

    #[inline]
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// Healthy and enabled: eligible for new requests.
    #[inline]
    pub fn is_available(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && self.admin.load(Ordering::Relaxed) == ADMIN_ENABLED
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Sets the health flag (health checks); returns what it was.
    pub fn set_healthy(&self, healthy: bool) -> bool {
        if healthy {
            self.down_since.store(0, Ordering::Relaxed);
            self.fail_window.store(0, Ordering::Relaxed);
        }
        let was = self.healthy.swap(healthy, Ordering::SeqCst);
        if healthy && !was {
            // a candidate again: requests waiting for a slot may take it
            self.slots.freed();
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
        self.admin.store(v, Ordering::SeqCst);
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

/// What a strategy precomputes from the pool (built once per published pool, behind an `Arc`, so
/// the size of the round-robin counter's padding does not matter).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Selector {
    RoundRobin(round_robin::Schedule),
    LeastConn,
    P2c,
    Random(random::Weights),
    ConsistentHash(maglev::Table),
}

impl Selector {
    fn build(strategy: Strategy, backends: &[Arc<Backend>]) -> Selector {
        let weights: Vec<u32> = backends.iter().map(|b| b.weight()).collect();
        match strategy {
            Strategy::RoundRobin | Strategy::WeightedRoundRobin => {
                Selector::RoundRobin(round_robin::Schedule::build(&weights))
            }
            Strategy::LeastConn => Selector::LeastConn,
            Strategy::P2c => Selector::P2c,
            Strategy::Random => Selector::Random(random::Weights::build(&weights)),
            Strategy::ConsistentHash => {
                let names: Vec<&str> = backends.iter().map(|b| b.key.as_str()).collect();
                Selector::ConsistentHash(maglev::Table::build(&names, &weights))
            }
        }
    }
}

/// The set of backends and the strategy that chooses among them.
#[derive(Debug, Clone)]
pub struct Pool {
    backends: Vec<Arc<Backend>>,
    strategy: Strategy,
    selector: Arc<Selector>,
    /// The default `max_conns` of backends added later, and the notifier they share.
    max_conns: u32,
    slots: Arc<Slots>,
    /// Position of each backend by id, and by sticky-cookie id.
    by_id: Arc<HashMap<u64, usize>>,
    by_cookie: Arc<HashMap<u64, usize>>,
    /// Sticky sessions and passive health (set by [`Balancer::with_policy`], or a reload).
    policy: Arc<Policy>,
    /// Changes whenever the pool does.
    generation: u64,
    next_id: u64,
}

impl Pool {
    /// A pool of plain-HTTP backends (`https://` ones get no TLS settings: see [`Pool::with_tls`]).
    pub fn new(strategy: Strategy, backends: &[BackendConfig]) -> Pool {
        Pool::with_tls(strategy, backends, 0, |_, _| None)
    }

    /// A pool whose backends get their TLS settings from `tls`, and `max_conns` unless they set
    /// their own. Ids are 0, 1, 2… in order.
    pub fn with_tls(
        strategy: Strategy,
        backends: &[BackendConfig],
        max_conns: u32,
        tls: impl Fn(usize, &BackendConfig) -> Option<ClientTls>,
    ) -> Pool {
        let slots = Arc::new(Slots::default());
        let backends: Vec<Arc<Backend>> = backends
            .iter()
            .enumerate()
            .map(|(i, b)| Arc::new(Backend::new(i as u64, b, tls(i, b), max_conns, &slots)))
            .collect();
        let next_id = backends.len() as u64;
        let mut pool = Pool {
            max_conns,
            slots,
            selector: Arc::new(Selector::LeastConn),
            by_id: Arc::default(),
            by_cookie: Arc::default(),
            backends,
            strategy,
            policy: Arc::default(),
            generation: 0,
            next_id,
        };
        pool.rebuild();
        pool
    }

    /// Builds the strategy's tables afresh, gives every backend its sticky-cookie value (under
    /// the policy's key: a reload may change it), and takes a new generation.
    fn rebuild(&mut self) {
        self.selector = Arc::new(Selector::build(self.strategy, &self.backends));
        let secret = self.policy.cookie_key.as_deref();
        for b in &self.backends {
            let id = cookie::value_for(secret, &b.key);
            b.cookie_id.store(id, Ordering::Relaxed);
        }
        let positions = self.backends.iter().enumerate();
        self.by_id = Arc::new(positions.clone().map(|(i, b)| (b.id, i)).collect());
        self.by_cookie = Arc::new(positions.map(|(i, b)| (b.cookie_id(), i)).collect());
        self.generation = next_generation();
    }

    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Who to tell when a backend slot frees (workers register with it).
    pub fn slots(&self) -> &Arc<Slots> {
        &self.slots
    }

    /// The backend with this id.
    pub fn get(&self, id: u64) -> Option<&Arc<Backend>> {
        self.by_id.get(&id).and_then(|&i| self.backends.get(i))
    }

    /// Adds a backend (the next id); returns it.
    pub fn add(&mut self, cfg: &BackendConfig, tls: Option<ClientTls>) -> Arc<Backend> {
        let backend = Arc::new(Backend::new(
            self.next_id,
            cfg,
            tls,
            self.max_conns,
            &self.slots,
        ));
        self.next_id += 1;
        self.backends.push(Arc::clone(&backend));
        self.rebuild();
        backend
    }

    /// Removes the backend with this id; returns it if it was there.
    pub fn remove(&mut self, id: u64) -> Option<Arc<Backend>> {
        let pos = self.backends.iter().position(|b| b.id == id)?;
        let removed = self.backends.remove(pos);
        self.rebuild();
        Some(removed)
    }

    /// Changes a backend's weight; returns false when there is no such backend.
    pub fn set_weight(&mut self, id: u64, weight: u32) -> bool {
        let Some(b) = self.backends.iter().find(|b| b.id == id) else {
            return false;
        };
        b.weight.store(weight.max(1), Ordering::Relaxed);
        self.rebuild();
        true
    }

    pub fn set_strategy(&mut self, strategy: Strategy) {
        self.strategy = strategy;
        self.rebuild();
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Replaces the policy (a reload).
    pub fn set_policy(&mut self, policy: Arc<Policy>) {
        self.policy = policy;
        self.rebuild();
    }

    /// The default `max_conns` of backends added from now on.
    pub fn set_default_max_conns(&mut self, max: u32) {
        self.max_conns = max;
    }

    /// Makes the backends that `in_scope` selects match `wanted`, in place: a backend with the
    /// same URL and address as a wanted one is kept (id, counters, state and pooled connections)
    /// with the wanted weight and `max_conns`; the others in scope leave (returned, set draining,
    /// for the caller to announce and retire), the wanted ones missing are added. A kept backend
    /// whose TLS settings changed is replaced (its `ClientTls` is fixed). One rebuild at the end.
    pub fn sync(
        &mut self,
        in_scope: impl Fn(&Backend) -> bool,
        wanted: &[(BackendConfig, Option<ClientTls>)],
    ) -> Synced {
        let mut synced = Synced::default();
        let mut kept = vec![false; wanted.len()];
        let mut stay = Vec::with_capacity(self.backends.len());
        for b in std::mem::take(&mut self.backends) {
            if !in_scope(&b) {
                stay.push(b);
                continue;
            }
            let found = wanted.iter().enumerate().find(|(i, (cfg, tls))| {
                !kept[*i] && cfg.url == b.url && cfg.addr == b.addr && same_tls(tls, &b.tls)
            });
            match found {
                Some((i, (cfg, _))) => {
                    kept[i] = true;
                    let weight = cfg.weight.max(1);
                    if b.weight() != weight {
                        synced.changed.push(format!(
                            "backend {} ({}) weight {} -> {weight}",
                            b.id,
                            b.url,
                            b.weight()
                        ));
                        b.weight.store(weight, Ordering::Relaxed);
                    }
                    let max = cfg.max_conns.unwrap_or(self.max_conns);
                    if b.max_conns() != max {
                        synced.changed.push(format!(
                            "backend {} ({}) max_conns {} -> {max}",
                            b.id,
                            b.url,
                            b.max_conns()
                        ));
                        b.set_max_conns(max);
                    }
                    stay.push(b);
                }
                None => {
                    b.set_draining();
                    synced.removed.push(b);
                }
            }
        }
        self.backends = stay;
        for (i, (cfg, tls)) in wanted.iter().enumerate() {
            if !kept[i] {
                let backend = Arc::new(Backend::new(
                    self.next_id,
                    cfg,
                    tls.clone(),
                    self.max_conns,
                    &self.slots,
                ));
                self.next_id += 1;
                self.backends.push(Arc::clone(&backend));
                synced.added.push(backend);
            }
        }
        self.rebuild();
        synced
    }

    /// Chooses a backend for a request, skipping `exclude` (a backend that just failed) unless it
    /// is the only one available. `key` is the request's hash for `consistent-hash` (ignored by
    /// the other strategies). `None` when no backend is available.
    pub fn pick(
        &self,
        state: &mut WorkerPick,
        key: u64,
        exclude: Option<u64>,
    ) -> Option<&Arc<Backend>> {
        let b = &self.backends;
        let chosen = match &*self.selector {
            Selector::RoundRobin(schedule) => schedule.pick(b, exclude),
            Selector::LeastConn => least_conn::pick(b, &mut state.cursor, exclude),
            Selector::P2c => p2c::pick(b, &mut state.rng, &mut state.cursor, exclude),
            Selector::Random(weights) => weights.pick(b, &mut state.rng, exclude),
            Selector::ConsistentHash(table) => table.pick(b, key, exclude),
        };
        match chosen {
            Some(i) => b.get(i),
            None if exclude.is_some() => self.pick(state, key, None),
            None => None,
        }
    }
}

/// What [`Pool::sync`] did.
#[derive(Debug, Default)]
pub struct Synced {
    pub added: Vec<Arc<Backend>>,
    pub removed: Vec<Arc<Backend>>,
    /// Kept backends whose weight or `max_conns` changed, described.
    pub changed: Vec<String>,
}

impl Synced {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The same TLS to a backend: the same client configuration (they are shared, by CA and
/// verification setting) and the same name.
fn same_tls(a: &Option<ClientTls>, b: &Option<ClientTls>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(&a.config, &b.config) && a.name == b.name,
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn cfg(port: u16, weight: u32) -> BackendConfig {
        BackendConfig {
            url: format!("http://127.0.0.1:{port}"),
            scheme: Scheme::Http,
            host: "127.0.0.1".into(),
            port,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            weight,
            max_conns: None,
        }
    }

    /// A pool of backends on ports `1..=weights.len()` with these weights.
    pub fn pool(strategy: Strategy, weights: &[u32]) -> Pool {
        let cfgs: Vec<BackendConfig> = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| cfg(i as u16 + 1, w))
            .collect();
        Pool::new(strategy, &cfgs)
    }

    /// The ports of `n` picks by one worker.
    pub fn picks(pool: &Pool, n: usize) -> Vec<u16> {
        let mut st = WorkerPick::new(0);
        (0..n)
            .map(|k| {
                pool.pick(&mut st, k as u64, None)
                    .map_or(0, |b| b.addr.port())
            })
            .collect()
    }

    #[test]
    fn ids_follow_the_file_order_from_zero_and_are_never_reused() {
        let mut p = pool(Strategy::RoundRobin, &[1, 1, 1]);
        let ids: Vec<u64> = p.backends().iter().map(|b| b.id).collect();
        assert_eq!(ids, vec![0, 1, 2]);
        p.remove(1);
        assert_eq!(p.add(&cfg(9, 1), None).id, 3);
        let ids: Vec<u64> = p.backends().iter().map(|b| b.id).collect();
        assert_eq!(ids, vec![0, 2, 3]);
    }

    #[test]
    fn unavailable_backends_are_never_picked_by_any_strategy() {
        for strategy in Strategy::ALL {
            let p = pool(strategy, &[1, 1, 1]);
            p.backends()[1].set_healthy(false);
            p.backends()[2].set_enabled(false);
            assert!(picks(&p, 50).iter().all(|&port| port == 1), "{strategy}");
            p.backends()[0].set_healthy(false);
            assert_eq!(picks(&p, 3), vec![0, 0, 0], "{strategy}: none available");
        }
    }

    #[test]
    fn exclude_prefers_another_backend_but_falls_back() {
        for strategy in Strategy::ALL {
            let p = pool(strategy, &[1, 1]);
            let mut st = WorkerPick::new(0);
            let first = p.backends()[0].id;
            for k in 0..20 {
                let b = p.pick(&mut st, k, Some(first)).unwrap();
                assert_eq!(b.addr.port(), 2, "{strategy}");
            }
            p.backends()[1].set_enabled(false);
            assert_eq!(p.pick(&mut st, 0, Some(first)).unwrap().addr.port(), 1);
        }
    }

    #[test]
    fn a_stale_state_never_indexes_a_replaced_pool() {
        for strategy in Strategy::ALL {
            let big = pool(strategy, &[1, 1, 1, 1, 1]);
            let mut st = WorkerPick::new(3);
            for k in 0..10 {
                big.pick(&mut st, k, None);
            }
            let small = pool(strategy, &[1]);
            assert_ne!(small.generation, big.generation);
            assert_eq!(small.pick(&mut st, 99, None).unwrap().addr.port(), 1);
        }
    }

    #[test]
    fn pickers_take_up_a_published_pool_at_their_next_pick() {
        let balancer = Balancer::new(pool(Strategy::RoundRobin, &[1]));
        let mut picker = Picker::new(&balancer, 0);
        assert_eq!(picker.pick(&balancer, 0, None).unwrap().addr.port(), 1);
        let before = balancer.generation();
        let added = balancer.update(|pool| {
            let gone = pool.backends()[0].id;
            pool.remove(gone);
            pool.add(&cfg(2, 1), None).id
        });
        assert_ne!(balancer.generation(), before);
        let picked = picker.pick(&balancer, 0, None).unwrap();
        assert_eq!((picked.id, picked.addr.port()), (added, 2));
        assert_eq!(balancer.current().backends().len(), 1);
    }

    #[test]
    fn weight_and_strategy_changes_take_effect_in_a_new_pool() {
        let balancer = Balancer::new(pool(Strategy::RoundRobin, &[1, 1]));
        balancer.update(|p| p.set_weight(0, 3));
        let seq = picks(&balancer.current(), 8);
        assert_eq!(seq.iter().filter(|&&p| p == 1).count(), 6, "{seq:?}");
        balancer.update(|p| p.set_strategy(Strategy::LeastConn));
        assert_eq!(balancer.current().strategy(), Strategy::LeastConn);
        assert!(!balancer.update(|p| p.set_weight(42, 1)));
    }
}
