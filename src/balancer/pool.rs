//! The pool: an immutable view of the backends, the strategy, and what the strategy precomputes
//! ([`Selector`]: the round-robin schedule, the cumulative weights, the Maglev table), with the
//! [`Policy`] that travels with it (sticky sessions, `fail_open`, passive health's keys). Every
//! change of membership, weight, strategy or policy rebuilds the tables and takes a new
//! generation; [`Pool::sync`] makes a pool match a wanted list of backends (reload, DNS).
//!
//! Neighbours: the balancer (`mod.rs`) publishes pools and edits copies of them; the per-request
//! decision that reads these tables (`Pool::pick`, `Picker::choose`) is `picker.rs`; each
//! strategy's table is built in its own file (`round_robin.rs`, `random.rs`, `maglev.rs`); the
//! backends are `backend.rs`; the sticky table is `sticky.rs` and the cookie values come from
//! `crate::hash`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::backend::Backend;
use super::slots::Slots;
use super::sticky::StickyTable;
use super::{maglev, random, round_robin};
use crate::config::{BackendConfig, PoolConfig, StickyMode, Strategy};
use crate::hash::CookieKey;
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
    pub cookie_key: Option<Arc<CookieKey>>,
    /// With every backend down, send to the enabled ones anyway.
    pub fail_open: bool,
    /// Passive health (`health/passive.rs`): `max_fails` failures (0: off) within
    /// `fail_timeout` take a backend down.
    pub max_fails: u32,
    pub fail_timeout_ms: u64,
    /// Active checks run (they bring a backend taken down passively back up); without them, it
    /// is tried again `fail_timeout` after it went down.
    pub active_checks: bool,
    /// `slow_start`, in ms (0: off): a backend back since less than this gets a share that
    /// grows from 10 % to its weight's (`Pool::pick`).
    pub slow_start_ms: u64,
    /// `retry_budget` (percent; `balancer/budget.rs`). `None`: no budget (the tests' pools).
    pub retry_budget: Option<u32>,
    /// `outlier_detection` (`health/outlier.rs`); `None`: off.
    pub outlier: Option<OutlierPolicy>,
}

/// `outlier_detection`'s keys, in the units the workers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierPolicy {
    pub consecutive_5xx: u32,
    pub base_ejection_ms: u64,
    pub max_ejected_percent: u32,
}

#[derive(Debug)]
pub enum Sticky {
    Ip(Arc<StickyTable>),
    Cookie,
}

impl Policy {
    /// A pool's policy, from its sticky, passive health and active health keys.
    pub fn from_pool(pool: &PoolConfig) -> Policy {
        let s = &pool.sticky;
        let sticky = s.enabled.then(|| match s.mode {
            StickyMode::Ip => {
                Sticky::Ip(Arc::new(StickyTable::new(s.max_entries, s.ttl.as_secs())))
            }
            StickyMode::Cookie => Sticky::Cookie,
        });
        Policy {
            sticky,
            cookie_key: s
                .cookie_secret
                .as_deref()
                .map(|s| Arc::new(CookieKey::new(s))),
            fail_open: pool.balance.fail_open,
            max_fails: pool.passive.max_fails,
            fail_timeout_ms: crate::timer::millis(pool.passive.fail_timeout),
            active_checks: pool.health.active(),
            slow_start_ms: crate::timer::millis(pool.traffic.slow_start),
            retry_budget: Some(pool.traffic.retry_budget),
            outlier: pool
                .traffic
                .outlier_detection
                .as_ref()
                .map(|o| OutlierPolicy {
                    consecutive_5xx: o.consecutive_5xx,
                    base_ejection_ms: crate::timer::millis(o.base_ejection),
                    max_ejected_percent: o.max_ejected_percent,
                }),
        }
    }
}

/// What a strategy precomputes from the pool (built once per published pool, behind an `Arc`, so
/// the size of the round-robin counter's padding does not matter). Read by `Pool::pick`
/// (`picker.rs`).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(super) enum Selector {
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
    pub(super) backends: Vec<Arc<Backend>>,
    strategy: Strategy,
    pub(super) selector: Arc<Selector>,
    /// The default `max_conns` of backends added later, and the notifier they share.
    max_conns: u32,
    slots: Arc<Slots>,
    /// Position of each backend by id, and by sticky-cookie id.
    pub(super) by_id: Arc<HashMap<u64, usize>>,
    pub(super) by_cookie: Arc<HashMap<u64, usize>>,
    /// Sticky sessions and passive health (set by `Balancer::with_policy`, or a reload).
    pub(super) policy: Arc<Policy>,
    /// Changes whenever the pool does.
    pub(super) generation: u64,
    /// Where new backends' ids come from: one counter for every pool of the process, so that an
    /// id names one backend whatever its pool (the admin API's `/backends/{id}`).
    ids: Arc<AtomicU64>,
}

/// What the pools of one process share: backend ids and the `max_conns` wake-ups (a worker
/// registers once, whatever pool its queued requests wait for).
#[derive(Debug, Clone, Default)]
pub struct Common {
    pub ids: Arc<AtomicU64>,
    pub slots: Arc<Slots>,
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
        Pool::sharing(&Common::default(), strategy, backends, max_conns, tls)
    }

    /// [`Pool::with_tls`] for one pool among several: its backends take their ids from, and
    /// tell freed slots to, what the pools share.
    pub fn sharing(
        common: &Common,
        strategy: Strategy,
        backends: &[BackendConfig],
        max_conns: u32,
        tls: impl Fn(usize, &BackendConfig) -> Option<ClientTls>,
    ) -> Pool {
        let slots = Arc::clone(&common.slots);
        let ids = Arc::clone(&common.ids);
        let backends: Vec<Arc<Backend>> = backends
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let id = ids.fetch_add(1, Ordering::Relaxed);
                Arc::new(Backend::new(id, b, tls(i, b), max_conns, &slots))
            })
            .collect();
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
            ids,
        };
        pool.rebuild();
        pool
    }

    /// Builds the strategy's tables afresh, gives every backend its sticky-cookie value (under
    /// the policy's key: a reload may change it), and takes a new generation.
    pub(super) fn rebuild(&mut self) {
        self.selector = Arc::new(Selector::build(self.strategy, &self.backends));
        let secret = self.policy.cookie_key.as_deref();
        for b in &self.backends {
            b.set_cookie_id(crate::hash::cookie_value(secret, &b.key));
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

    /// A new backend with the next id (not in the pool yet).
    fn make(&mut self, cfg: &BackendConfig, tls: Option<ClientTls>) -> Arc<Backend> {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let backend = Backend::new(id, cfg, tls, self.max_conns, &self.slots);
        // added to a running pool: under slow start, if the pool has one
        backend.came_back();
        Arc::new(backend)
    }

    /// Adds a backend (the next id); returns it.
    pub fn add(&mut self, cfg: &BackendConfig, tls: Option<ClientTls>) -> Arc<Backend> {
        let backend = self.make(cfg, tls);
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
        b.set_weight(weight);
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
                    self.keep(&b, cfg, &mut synced.changed);
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
                let backend = self.make(cfg, tls.clone());
                self.backends.push(Arc::clone(&backend));
                synced.added.push(backend);
            }
        }
        self.rebuild();
        synced
    }

    /// A backend [`Pool::sync`] keeps takes the wanted weight and `max_conns`; the changes are
    /// described in `changed`.
    fn keep(&self, b: &Backend, cfg: &BackendConfig, changed: &mut Vec<String>) {
        let weight = cfg.weight.max(1);
        if b.weight() != weight {
            changed.push(format!(
                "backend {} ({}) weight {} -> {weight}",
                b.id,
                b.url,
                b.weight()
            ));
            b.set_weight(weight);
        }
        let max = cfg.max_conns.unwrap_or(self.max_conns);
        if b.max_conns() != max {
            changed.push(format!(
                "backend {} ({}) max_conns {} -> {max}",
                b.id,
                b.url,
                b.max_conns()
            ));
            b.set_max_conns(max);
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
mod tests {
    use super::super::tests::{cfg, picks, pool};
    use super::super::Balancer;
    use super::*;

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
