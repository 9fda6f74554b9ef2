//! The backend pool and how a backend is chosen for a request.
//!
//! A [`Pool`] is an immutable view: the backends (each an `Arc<Backend>` whose state and
//! counters are atomics, each on its own cache line), the strategy, and what the strategy
//! precomputes. The [`Balancer`] (this file) publishes the current one; a change of membership,
//! weight or strategy (admin API, reload, DNS) edits a copy and publishes it under a new
//! generation number. A worker keeps its own `Arc<Pool>` in its [`Picker`] and looks only at the
//! generation: picking takes no lock. Health and enabled flags change in place, on the backend's
//! atomics, and need no new pool. The balancer also keeps the backends taken out of the pool
//! while their last requests finish (retired).
//!
//! The files:
//! - `backend.rs`: one [`Backend`], its state and counters, its health record ([`HealthInfo`]);
//! - `pool.rs`: the [`Pool`], its [`Policy`] (sticky sessions, `fail_open`, passive health's
//!   keys), the strategies' precomputed tables, and how a pool changes ([`Pool::sync`]);
//! - `picker.rs`: the per-request decision ([`Picker::choose`]: [`Ask`] → [`Choice`]) and
//!   [`Pool::pick`];
//! - `budget.rs`: the pool's retry budget ([`RetryBudget`]);
//! - `slots.rs`: waking the workers whose requests wait for a `max_conns` slot ([`Slots`]);
//! - one file per strategy, each with its tests: `round_robin.rs` (smooth weighted, one schedule
//!   for the whole proxy), `least_conn.rs`, `p2c.rs`, `random.rs`, `maglev.rs` (consistent
//!   hashing), and `rng.rs`, the per-worker random generator two of them draw from;
//! - `sticky.rs`: the table that keeps clients on their backend by address (by cookie, the
//!   cookie's value names the backend: `crate::hash` makes it).
//!
//! Neighbours: the fixed hashes and cookie values are `src/hash.rs` (ground floor); passive
//! health (`max_fails` within `fail_timeout`) is `health/passive.rs`, the active checks the rest
//! of `health/`; the stream asks the picker (`stream/backend.rs`); the admin API, reload and DNS
//! change the pool through [`Balancer::update`].

mod backend;
pub mod budget;
mod least_conn;
mod maglev;
mod p2c;
mod picker;
mod pool;
mod random;
mod rng;
mod round_robin;
mod slots;
pub mod sticky;

pub use backend::{Backend, HealthInfo, State, Traffic};
pub use budget::RetryBudget;
pub use picker::{Ask, Choice, Picker, WorkerPick};
pub use pool::{Common, OutlierPolicy, Policy, Pool, Sticky, Synced};
pub use slots::Slots;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, RwLock};

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
    /// `retry_budget`'s counts (`budget.rs`), kept with the balancer across reloads.
    pub budget: RetryBudget,
    /// Serialises ejections (`health/outlier.rs`), so two workers cannot both take the last
    /// place `max_ejected_percent` leaves.
    pub(crate) ejecting: Mutex<()>,
}

impl Balancer {
    pub fn new(pool: Pool) -> Balancer {
        Balancer::with_policy(pool, Policy::default())
    }

    pub fn with_policy(mut pool: Pool, policy: Policy) -> Balancer {
        pool.set_policy(Arc::new(policy));
        Balancer {
            generation: CachePadded::new(AtomicU64::new(pool.generation)),
            slots: Arc::clone(pool.slots()),
            current: RwLock::new(Arc::new(pool)),
            writer: Mutex::new(()),
            retired: Mutex::new(Vec::new()),
            budget: RetryBudget::default(),
            ejecting: Mutex::new(()),
        }
    }

    /// The policy of the current pool.
    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.current.read().policy)
    }

    /// May a request of this pool be retried now? `retry_budget` decides (and counts it); a
    /// pool without one always may. Called on a failure's path only: it reads the policy and
    /// the backends' counters under the pool's lock.
    pub fn retry_allowed(&self, now: std::time::Instant) -> bool {
        let pool = self.current();
        let Some(percent) = pool.policy().retry_budget else {
            return true;
        };
        let attempts = pool.backends().iter().map(|b| b.total_requests()).sum();
        let sec = crate::timer::clock_ms(now) / 1000;
        self.budget.try_retry(percent, sec, attempts)
    }

    /// Housekeeping, once a second: notes the pool's attempts for the retry budget's window.
    pub fn sample_budget(&self, now: std::time::Instant) {
        let pool = self.current();
        if pool.policy().retry_budget.is_some() {
            let attempts = pool.backends().iter().map(|b| b.total_requests()).sum();
            self.budget
                .sample(crate::timer::clock_ms(now) / 1000, attempts);
        }
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

    /// The same, to share with the pools made after this one.
    pub fn shared_slots(&self) -> &Arc<Slots> {
        &self.slots
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{BackendConfig, Scheme, Strategy};
    use std::net::SocketAddr;

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
}
