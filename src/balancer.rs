//! The backend pool and how a backend is chosen for a request.
//!
//! A [`Pool`] is an immutable view: the backends (each an `Arc<Backend>` whose state and
//! counters are atomics, each on its own cache line) and the strategy. The [`Balancer`] publishes
//! the current one; a change of membership, weight or strategy (admin API, reload) builds a new
//! `Pool` and publishes it under a new generation number. A worker keeps its own `Arc<Pool>` in
//! its [`Picker`] and looks only at the generation, one relaxed load of a line that is written
//! only when the pool changes: picking takes no lock and writes no shared memory but the chosen
//! backend's counters. Health and enabled flags change in place, on the backend's atomics, and
//! need no new pool.
//!
//! Selection state that changes per request (the smooth weighted round-robin weights, the cursor
//! that breaks least-connection ties) is per worker, in [`PickState`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, RwLock};

use crate::config::{BackendConfig, Scheme, Strategy};
use crate::transport::ClientTls;

/// Pool generations come from one process-wide counter, so a worker's [`PickState`] can never
/// mistake a new pool (built by a reload, say) for the one it was computed against.
static EPOCH: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    EPOCH.fetch_add(1, Ordering::Relaxed) + 1
}

/// The published pool, shared by every thread.
#[derive(Debug)]
pub struct Balancer {
    current: RwLock<Arc<Pool>>,
    /// The generation of `current`: what workers compare their copy against.
    generation: CachePadded<AtomicU64>,
    /// Serialises writers, so two concurrent changes cannot lose one another.
    writer: Mutex<()>,
}

impl Balancer {
    pub fn new(pool: Pool) -> Balancer {
        Balancer {
            generation: CachePadded::new(AtomicU64::new(pool.generation)),
            current: RwLock::new(Arc::new(pool)),
            writer: Mutex::new(()),
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

    /// Changes the pool: `change` edits a copy, which is then published (workers pick it up at
    /// their next pick). Returns what `change` returned.
    pub fn update<R>(&self, change: impl FnOnce(&mut Pool) -> R) -> R {
        let _writer = self.writer.lock();
        let mut pool = Pool::clone(&self.current.read());
        let result = change(&mut pool);
        pool.generation = next_generation();
        let generation = pool.generation;
        *self.current.write() = Arc::new(pool);
        self.generation.store(generation, Ordering::Release);
        result
    }
}

/// A worker's view of the pool and its selection state.
#[derive(Debug)]
pub struct Picker {
    pool: Arc<Pool>,
    state: PickState,
}

impl Picker {
    /// The picker of worker `index` of `workers`.
    pub fn new(balancer: &Balancer, index: usize, workers: usize) -> Picker {
        let pool = balancer.current();
        let state = PickState::for_worker(index, workers, &pool);
        Picker { pool, state }
    }

    /// Chooses a backend (see [`Pool::pick`]), after taking up a newer pool if one was published.
    #[inline]
    pub fn pick(&mut self, balancer: &Balancer, exclude: Option<u64>) -> Option<&Arc<Backend>> {
        if balancer.generation() != self.pool.generation {
            self.pool = balancer.current();
        }
        self.pool.pick(&mut self.state, exclude)
    }
}

/// One backend server and its live counters.
#[derive(Debug)]
pub struct Backend {
    /// Unique for the life of the process (never reused after a removal).
    pub id: u64,
    pub url: String,
    pub scheme: Scheme,
    pub host: String,
    /// `host[:port]` as written in the URL, for a `Host` field when a request has none.
    pub authority: String,
    pub addr: SocketAddr,
    pub weight: u32,
    /// `https://` backends: how to speak TLS to it.
    pub tls: Option<ClientTls>,
    healthy: AtomicBool,
    enabled: AtomicBool,
    /// Requests in flight on this backend right now.
    pub active: CachePadded<AtomicUsize>,
    /// Requests sent to this backend, ever.
    pub requests: CachePadded<AtomicU64>,
    /// Failed attempts (connect errors, resets, invalid responses, timeouts).
    pub failures: CachePadded<AtomicU64>,
}

impl Backend {
    pub fn new(id: u64, cfg: &BackendConfig, tls: Option<ClientTls>) -> Backend {
        Backend {
            tls,
            id,
            url: cfg.url.clone(),
            authority: authority(&cfg.url),
            scheme: cfg.scheme,
            host: cfg.host.clone(),
            addr: cfg.addr,
            weight: cfg.weight.max(1),
            healthy: AtomicBool::new(true),
            enabled: AtomicBool::new(true),
            active: CachePadded::default(),
            requests: CachePadded::default(),
            failures: CachePadded::default(),
        }
    }

    /// Healthy and enabled: eligible for new requests.
    #[inline]
    pub fn is_available(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && self.enabled.load(Ordering::Relaxed)
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    /// A request starts on this backend.
    #[inline]
    pub fn begin_request(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// A request on this backend ended, whatever the outcome.
    #[inline]
    pub fn end_request(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn active_requests(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

/// The authority part of a validated backend URL (`http://host:port/` → `host:port`).
fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.trim_end_matches('/').to_owned()
}

/// The set of backends and the strategy that chooses among them.
#[derive(Debug, Clone)]
pub struct Pool {
    backends: Vec<Arc<Backend>>,
    strategy: Strategy,
    /// Changes whenever membership changes, so workers reset their [`PickState`].
    generation: u64,
    next_id: u64,
}

/// A worker's own selection state.
#[derive(Debug, Default)]
pub struct PickState {
    generation: u64,
    /// Where this worker starts in the smooth round-robin sequence: workers start spread over it,
    /// not all on the first backend.
    skew: usize,
    /// Smooth weighted round-robin: current weight of each backend, by position.
    current: Vec<i64>,
    /// Where the next tie-break scan starts.
    cursor: usize,
}

impl PickState {
    /// The state of worker `index` of `workers`: it starts `index / workers` of the way through a
    /// round-robin cycle.
    pub fn for_worker(index: usize, workers: usize, pool: &Pool) -> PickState {
        let cycle: usize = pool.backends.iter().map(|b| b.weight as usize).sum();
        PickState {
            skew: index * cycle / workers.max(1),
            ..PickState::default()
        }
    }
}

impl Pool {
    /// A pool of plain-HTTP backends (`https://` ones get no TLS settings: see [`Pool::with_tls`]).
    pub fn new(strategy: Strategy, backends: &[BackendConfig]) -> Pool {
        Pool::with_tls(strategy, backends, |_, _| None)
    }

    /// A pool whose backends get their TLS settings from `tls`.
    pub fn with_tls(
        strategy: Strategy,
        backends: &[BackendConfig],
        tls: impl Fn(usize, &BackendConfig) -> Option<ClientTls>,
    ) -> Pool {
        let mut pool = Pool {
            backends: Vec::with_capacity(backends.len()),
            strategy,
            generation: next_generation(),
            next_id: 1,
        };
        for (i, b) in backends.iter().enumerate() {
            pool.add(b, tls(i, b));
        }
        pool
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

    /// Adds a backend; returns it.
    pub fn add(&mut self, cfg: &BackendConfig, tls: Option<ClientTls>) -> Arc<Backend> {
        let backend = Arc::new(Backend::new(self.next_id, cfg, tls));
        self.next_id += 1;
        self.generation = next_generation();
        self.backends.push(Arc::clone(&backend));
        backend
    }

    /// Removes the backend with this id; returns it if it was there.
    pub fn remove(&mut self, id: u64) -> Option<Arc<Backend>> {
        let pos = self.backends.iter().position(|b| b.id == id)?;
        self.generation = next_generation();
        Some(self.backends.remove(pos))
    }

    /// Chooses a backend for a request, skipping `exclude` (a backend that just failed) unless it
    /// is the only one available. `None` when no backend is available.
    pub fn pick(&self, state: &mut PickState, exclude: Option<u64>) -> Option<&Arc<Backend>> {
        if state.generation != self.generation || state.current.len() != self.backends.len() {
            self.reset(state);
        }
        let chosen = match self.strategy {
            Strategy::RoundRobin | Strategy::WeightedRoundRobin => {
                self.smooth_weighted(state, exclude)
            }
            Strategy::LeastConn => self.least_conn(state, exclude),
        };
        match chosen {
            Some(i) => Some(&self.backends[i]),
            None if exclude.is_some() => self.pick(state, None),
            None => None,
        }
    }

    /// Fresh selection state for this pool, advanced by the worker's skew.
    fn reset(&self, state: &mut PickState) {
        state.generation = self.generation;
        state.current.clear();
        state.current.resize(self.backends.len(), 0);
        state.cursor = state.skew % self.backends.len().max(1);
        if matches!(
            self.strategy,
            Strategy::RoundRobin | Strategy::WeightedRoundRobin
        ) {
            for _ in 0..state.skew {
                self.smooth_weighted(state, None);
            }
        }
    }

    /// nginx's smooth weighted round-robin: every eligible backend gains its weight, the one with
    /// the most is chosen and loses the total. Equal weights give plain round-robin.
    fn smooth_weighted(&self, state: &mut PickState, exclude: Option<u64>) -> Option<usize> {
        let mut total: i64 = 0;
        let mut best: Option<usize> = None;
        for (i, b) in self.backends.iter().enumerate() {
            if !b.is_available() || Some(b.id) == exclude {
                continue;
            }
            let w = i64::from(b.weight);
            state.current[i] += w;
            total += w;
            if best.is_none_or(|j| state.current[i] > state.current[j]) {
                best = Some(i);
            }
        }
        let i = best?;
        state.current[i] -= total;
        Some(i)
    }

    /// Fewest requests in flight relative to weight (`active / weight`, compared without
    /// division); ties go round-robin.
    fn least_conn(&self, state: &mut PickState, exclude: Option<u64>) -> Option<usize> {
        let n = self.backends.len();
        let mut best: Option<(usize, u64, u64)> = None;
        for k in 0..n {
            let i = (state.cursor + k) % n;
            let b = &self.backends[i];
            if !b.is_available() || Some(b.id) == exclude {
                continue;
            }
            let active = b.active_requests() as u64;
            let weight = u64::from(b.weight);
            let better = match best {
                None => true,
                Some((_, a, w)) => active * w < a * weight,
            };
            if better {
                best = Some((i, active, weight));
            }
        }
        let (i, _, _) = best?;
        state.cursor = (i + 1) % n.max(1);
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(port: u16, weight: u32) -> BackendConfig {
        BackendConfig {
            url: format!("http://127.0.0.1:{port}"),
            scheme: Scheme::Http,
            host: "127.0.0.1".into(),
            port,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            weight,
        }
    }

    fn picks(pool: &Pool, n: usize) -> Vec<u16> {
        let mut st = PickState::default();
        (0..n)
            .map(|_| pool.pick(&mut st, None).map(|b| b.addr.port()).unwrap_or(0))
            .collect()
    }

    #[test]
    fn round_robin_cycles() {
        let pool = Pool::new(Strategy::RoundRobin, &[cfg(1, 1), cfg(2, 1), cfg(3, 1)]);
        assert_eq!(picks(&pool, 6), vec![1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn smooth_weighted_is_smooth_and_proportional() {
        let pool = Pool::new(
            Strategy::WeightedRoundRobin,
            &[cfg(1, 5), cfg(2, 1), cfg(3, 1)],
        );
        // nginx's documented sequence for weights 5, 1, 1
        assert_eq!(picks(&pool, 7), vec![1, 1, 2, 1, 3, 1, 1]);
        let pool = Pool::new(
            Strategy::WeightedRoundRobin,
            &[cfg(1, 5), cfg(2, 3), cfg(3, 2)],
        );
        let seq = picks(&pool, 1000);
        let count = |p| seq.iter().filter(|&&x| x == p).count();
        assert_eq!((count(1), count(2), count(3)), (500, 300, 200));
    }

    #[test]
    fn unavailable_backends_are_skipped() {
        let pool = Pool::new(Strategy::RoundRobin, &[cfg(1, 1), cfg(2, 1), cfg(3, 1)]);
        pool.backends()[1].set_healthy(false);
        pool.backends()[2].set_enabled(false);
        assert_eq!(picks(&pool, 3), vec![1, 1, 1]);
        pool.backends()[0].set_healthy(false);
        assert_eq!(picks(&pool, 1), vec![0]);
    }

    #[test]
    fn exclude_prefers_another_backend_but_falls_back() {
        let pool = Pool::new(Strategy::RoundRobin, &[cfg(1, 1), cfg(2, 1)]);
        let mut st = PickState::default();
        let first = pool.backends()[0].id;
        for _ in 0..4 {
            assert_eq!(pool.pick(&mut st, Some(first)).unwrap().addr.port(), 2);
        }
        pool.backends()[1].set_enabled(false);
        assert_eq!(pool.pick(&mut st, Some(first)).unwrap().addr.port(), 1);
    }

    #[test]
    fn least_conn_prefers_idle_and_respects_weight() {
        let pool = Pool::new(Strategy::LeastConn, &[cfg(1, 1), cfg(2, 1), cfg(3, 2)]);
        let b = pool.backends();
        b[0].begin_request();
        b[1].begin_request();
        b[1].begin_request();
        b[2].begin_request();
        b[2].begin_request();
        let mut st = PickState::default();
        // active/weight: 1/1, 2/1, 2/2 -> tie between 1 and 3, broken round-robin
        let first = pool.pick(&mut st, None).unwrap().addr.port();
        let second = pool.pick(&mut st, None).unwrap().addr.port();
        assert_ne!(first, second);
        assert!([1, 3].contains(&first) && [1, 3].contains(&second));
        b[0].end_request();
        assert_eq!(pool.pick(&mut st, None).unwrap().addr.port(), 1);
    }

    #[test]
    fn a_stale_state_never_indexes_a_replaced_pool() {
        let big = Pool::new(Strategy::RoundRobin, &[cfg(1, 1), cfg(2, 1), cfg(3, 1)]);
        let mut st = PickState::default();
        for _ in 0..3 {
            big.pick(&mut st, None);
        }
        // a new pool, as a reload builds it: a generation of its own, whatever its length
        let small = Pool::new(Strategy::RoundRobin, &[cfg(4, 1)]);
        assert_ne!(small.generation, big.generation);
        assert_eq!(small.pick(&mut st, None).unwrap().addr.port(), 4);
        let other = Pool::new(Strategy::LeastConn, &[cfg(5, 1), cfg(6, 1)]);
        assert!(other.pick(&mut st, None).is_some());
    }

    #[test]
    fn workers_start_spread_over_the_cycle() {
        let pool = Pool::new(
            Strategy::WeightedRoundRobin,
            &[cfg(1, 1), cfg(2, 1), cfg(3, 1)],
        );
        let firsts: Vec<u16> = (0..3)
            .map(|i| {
                let mut st = PickState::for_worker(i, 3, &pool);
                pool.pick(&mut st, None).unwrap().addr.port()
            })
            .collect();
        assert_eq!(firsts, vec![1, 2, 3]);
        let pool = Pool::new(Strategy::LeastConn, &[cfg(1, 1), cfg(2, 1)]);
        let mut a = PickState::for_worker(0, 2, &pool);
        let mut b = PickState::for_worker(1, 2, &pool);
        let (x, y) = (
            pool.pick(&mut a, None).unwrap().id,
            pool.pick(&mut b, None).unwrap().id,
        );
        assert_ne!(
            x, y,
            "idle ties go to different backends from different workers"
        );
    }

    #[test]
    fn pickers_take_up_a_published_pool_at_their_next_pick() {
        let balancer = Balancer::new(Pool::new(Strategy::RoundRobin, &[cfg(1, 1)]));
        let mut picker = Picker::new(&balancer, 0, 1);
        assert_eq!(picker.pick(&balancer, None).unwrap().addr.port(), 1);
        let before = balancer.generation();
        let added = balancer.update(|pool| {
            let gone = pool.backends()[0].id;
            pool.remove(gone);
            pool.add(&cfg(2, 1), None).id
        });
        assert_ne!(balancer.generation(), before);
        let picked = picker.pick(&balancer, None).unwrap();
        assert_eq!((picked.id, picked.addr.port()), (added, 2));
        // the old pool is untouched for whoever still holds it
        assert_eq!(balancer.current().backends().len(), 1);
    }

    #[test]
    fn membership_changes_reset_state() {
        let mut pool = Pool::new(Strategy::RoundRobin, &[cfg(1, 1), cfg(2, 1)]);
        let mut st = PickState::default();
        assert_eq!(pool.pick(&mut st, None).unwrap().addr.port(), 1);
        let removed = pool.remove(pool.backends()[0].id).unwrap();
        assert_eq!(removed.addr.port(), 1);
        pool.add(&cfg(3, 1), None);
        let ids: Vec<u64> = pool.backends().iter().map(|b| b.id).collect();
        assert_eq!(ids, vec![2, 3]);
        assert_eq!(pool.pick(&mut st, None).unwrap().addr.port(), 2);
        assert_eq!(pool.pick(&mut st, None).unwrap().addr.port(), 3);
    }
}
