//! The process's pools and the routes to them: which [`Balancer`] a request goes to.
//!
//! A [`Table`] is an immutable view, published like a balancer's pool: the pools by index (the
//! first is `default`, the top-level keys), each with what a stream reads of its keys
//! ([`PoolSettings`]), the routes (`route.rs`) and the requests each route sent. [`Pools`]
//! publishes the current table under a generation number; a worker keeps its own `Arc<Table>` and
//! its own [`Picker`](crate::balancer::Picker) per pool in its [`View`] (`view.rs`), and takes a
//! new table up when the generation moves (once per poll round): routing takes no lock.
//!
//! A pool keeps its index for the process's life: a reload that keeps a pool (by name) keeps its
//! index and its balancer (ids, counters, sticky table, pooled connections); a new pool gets an
//! index never used before; a removed pool leaves a hole. So a stream that noted its pool's
//! index before a reload still finds that pool after it, or nothing (and no other pool).
//!
//! Neighbours: `lib.rs` builds the first table and `admin/reload.rs` the next ones, from the
//! config; the stream routes through [`View::router`] and picks through [`View::choose`]; the
//! admin API, health checks and DNS refresh read [`Pools::current`]. A worker's view and its
//! router are in `view.rs`, the unit tests in `tests.rs`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, RwLock};

use crate::balancer::{Balancer, Common};
use crate::config::{self, HashKey, PoolConfig, RouteConfig, StickyMode};
use crate::http::request::KeySource;
use crate::limits::{Buckets, RouteScope, Scopes};
use crate::route::{RouteSpec, Routes};

#[cfg(test)]
mod tests;
mod view;

pub use view::{TableRouter, View};

/// What a stream reads of its pool's keys, worked out once per pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// `retries`, `hash_key`, `queue_timeout`, ...
    pub balance: config::Balance,
    /// `connect_timeout`, `backend_timeout`.
    pub upstream: config::Upstream,
    /// Sticky sessions by cookie: its name (`None`: not in cookie mode), whether it is removed
    /// before the request goes on, and its `Max-Age`.
    pub sticky_cookie: Option<String>,
    pub strip_sticky_cookie: bool,
    pub sticky_max_age: u64,
    /// `rate_limit`, `rate_limit_exempt` (`crate::limits`).
    pub rate_limit: config::RateLimits,
}

impl PoolSettings {
    pub fn from_pool(pool: &PoolConfig) -> PoolSettings {
        let sticky = &pool.sticky;
        PoolSettings {
            balance: pool.balance.clone(),
            upstream: pool.upstream.clone(),
            sticky_cookie: (sticky.enabled && sticky.mode == StickyMode::Cookie)
                .then(|| sticky.cookie_name.clone()),
            strip_sticky_cookie: sticky.cookie_strip,
            sticky_max_age: sticky.ttl.as_secs(),
            rate_limit: pool.rate_limit.clone(),
        }
    }

    /// Where the pool's `consistent-hash` key comes from.
    fn key(&self) -> KeySource<'_> {
        match &self.balance.hash_key {
            HashKey::ClientIp => KeySource::ClientIp,
            HashKey::Header(name) => KeySource::Header(name.as_bytes()),
            HashKey::Cookie(name) => KeySource::Cookie(name.as_bytes()),
        }
    }
}

/// One pool of the table.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: Arc<str>,
    pub balancer: Arc<Balancer>,
    pub settings: Arc<PoolSettings>,
}

/// Requests per route, each worker counting in its own cells (one writer per cell: a load and a
/// store, no locked instruction, no cache line shared with another worker's counts but at the
/// edges).
#[derive(Debug)]
struct Hits {
    stride: usize,
    cells: Box<[AtomicU64]>,
}

impl Hits {
    fn new(routes: usize, workers: usize) -> Hits {
        // whole cache lines per worker
        let stride = routes.div_ceil(8) * 8;
        Hits {
            stride,
            cells: (0..stride * workers.max(1))
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    fn count(&self, worker: usize, route: usize) {
        if let Some(c) = self.cells.get(worker * self.stride + route) {
            c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        }
    }

    fn total(&self, route: usize) -> u64 {
        if route >= self.stride {
            return 0;
        }
        self.cells
            .iter()
            .skip(route)
            .step_by(self.stride)
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Starts `route` at `count` (a route a reload kept keeps its count), on worker 0's cell.
    fn carry(&self, route: usize, count: u64) {
        if let Some(c) = self.cells.get(route) {
            c.store(count, Ordering::Relaxed);
        }
    }
}

/// A route as the table lists it.
#[derive(Debug, Clone)]
pub struct RouteInfo<'a> {
    pub name: &'a str,
    pub spec: &'a RouteSpec,
    /// The pool's name.
    pub pool: &'a str,
    /// Requests it sent to its pool since it was loaded (or since the first load that had it).
    pub requests: u64,
}

/// Where a request goes: its pool, the route that chose it (`None`: the default pool, no route
/// matched), and the bytes of the path to strip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub pool: usize,
    pub route: Option<usize>,
    pub strip: usize,
}

/// The pools and routes as published at one time.
#[derive(Debug)]
pub struct Table {
    generation: u64,
    default: Member,
    /// By index; `members[0]` is `default`; a removed pool is `None`.
    members: Vec<Option<Member>>,
    routes: Routes,
    route_names: Vec<Arc<str>>,
    /// Unmatched requests go to `default` (else 404).
    default_serves: bool,
    hits: Hits,
    /// The rate limits of the pools and routes, and the process's buckets.
    limits: Scopes,
}

/// A generation number no table had before.
fn next_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Table {
    /// The table of `default` and `others` (by name; a name already in `prev` keeps its
    /// index), routed by `routes` (whose pool names must be among them: the config checked),
    /// rate-limited over `buckets`.
    fn build(
        prev: Option<&Table>,
        default: Member,
        others: Vec<Member>,
        routes: &[RouteConfig],
        default_serves: bool,
        workers: usize,
        buckets: Arc<Buckets>,
    ) -> Table {
        let mut members: Vec<Option<Member>> = vec![None; prev.map_or(1, |p| p.members.len())];
        if let Some(first) = members.first_mut() {
            *first = Some(default.clone());
        }
        for m in others {
            let kept = prev.and_then(|p| p.index_of(&m.name)).filter(|&i| i > 0);
            match kept {
                Some(i) => {
                    if let Some(slot) = members.get_mut(i) {
                        *slot = Some(m);
                    }
                }
                None => members.push(Some(m)),
            }
        }
        let index_of = |name: &str| {
            members
                .iter()
                .position(|m| m.as_ref().is_some_and(|m| &*m.name == name))
        };
        let mut specs = Vec::with_capacity(routes.len());
        let mut route_names = Vec::with_capacity(routes.len());
        let mut route_scopes = Vec::with_capacity(routes.len());
        for r in routes {
            let Some(pool) = index_of(&r.pool) else {
                log::error!("route {}: no pool named {:?} (skipped)", r.name, r.pool);
                continue;
            };
            specs.push(RouteSpec {
                host: r.host.clone(),
                path_prefix: r.path_prefix.clone(),
                pool,
                strip_prefix: r.strip_prefix,
            });
            route_names.push(Arc::from(r.name.as_str()));
            route_scopes.push(RouteScope {
                name: &r.name,
                pool,
                limit: &r.rate_limit,
            });
        }
        let pool_scopes: Vec<_> = members
            .iter()
            .map(|m| m.as_ref().map(|m| (&*m.name, &m.settings.rate_limit)))
            .collect();
        let limits = Scopes::build(
            prev.map(|p| &p.limits),
            buckets,
            &pool_scopes,
            &route_scopes,
            workers,
        );
        let hits = Hits::new(specs.len(), workers);
        if let Some(prev) = prev {
            for (i, name) in route_names.iter().enumerate() {
                if let Some(was) = prev.route_names.iter().position(|n| n == name) {
                    hits.carry(i, prev.hits.total(was));
                }
            }
        }
        Table {
            generation: next_generation(),
            default,
            members,
            routes: Routes::new(specs),
            route_names,
            default_serves,
            hits,
            limits,
        }
    }

    /// The rate limits and their counts.
    pub fn limits(&self) -> &Scopes {
        &self.limits
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The pool the top-level keys make.
    pub fn default(&self) -> &Member {
        &self.default
    }

    pub fn member(&self, pool: usize) -> Option<&Member> {
        self.members.get(pool).and_then(Option::as_ref)
    }

    /// Every pool, `default` first, with its index.
    pub fn members(&self) -> impl Iterator<Item = (usize, &Member)> {
        self.members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.as_ref().map(|m| (i, m)))
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.members()
            .find(|(_, m)| &*m.name == name)
            .map(|(i, _)| i)
    }

    /// The pool named `name`.
    pub fn by_name(&self, name: &str) -> Option<&Member> {
        self.members()
            .find(|(_, m)| &*m.name == name)
            .map(|(_, m)| m)
    }

    /// The pool holding the backend with this id, and the backend.
    pub fn find_backend(&self, id: u64) -> Option<(&Member, Arc<crate::balancer::Backend>)> {
        self.members()
            .find_map(|(_, m)| m.balancer.current().get(id).cloned().map(|b| (m, b)))
    }

    /// Unmatched requests go to the default pool (else 404).
    pub fn default_serves(&self) -> bool {
        self.default_serves
    }

    /// Where a request for `host` (port and all) and `path` (before `?`) goes; `None`: 404.
    pub fn find(&self, host: &[u8], path: &[u8]) -> Option<Target> {
        match self.routes.find(host, path) {
            Some(m) => Some(Target {
                pool: m.pool,
                route: Some(m.route),
                strip: m.strip,
            }),
            None => self.default_serves.then_some(Target {
                pool: 0,
                route: None,
                strip: 0,
            }),
        }
    }

    /// The routes in file order, with their counts.
    pub fn routes(&self) -> impl Iterator<Item = RouteInfo<'_>> {
        self.routes
            .specs()
            .iter()
            .zip(&self.route_names)
            .enumerate()
            .map(|(i, (spec, name))| RouteInfo {
                name,
                spec,
                pool: self.member(spec.pool).map_or("", |m| &m.name),
                requests: self.hits.total(i),
            })
    }
}

/// The published table, shared by every thread.
#[derive(Debug)]
pub struct Pools {
    current: RwLock<Arc<Table>>,
    generation: CachePadded<AtomicU64>,
    /// Serialises writers (reloads, DNS).
    writer: Mutex<()>,
    common: Common,
    workers: usize,
}

impl Pools {
    /// The pools of a process with `workers` workers. `common` is what every pool's backends
    /// share (ids, slot wake-ups): the balancers given here and later were made with it.
    /// `rate_limit_keys`: the entries of the rate limits' table, for the process's life.
    pub fn new(
        common: Common,
        workers: usize,
        default: Member,
        others: Vec<Member>,
        routes: &[RouteConfig],
        default_serves: bool,
        rate_limit_keys: usize,
    ) -> Pools {
        let buckets = Arc::new(Buckets::new(rate_limit_keys));
        let table = Table::build(
            None,
            default,
            others,
            routes,
            default_serves,
            workers,
            buckets,
        );
        Pools {
            generation: CachePadded::new(AtomicU64::new(table.generation)),
            current: RwLock::new(Arc::new(table)),
            writer: Mutex::new(()),
            common,
            workers,
        }
    }

    /// A process of one pool (the tests' and the bench's).
    pub fn single(balancer: Arc<Balancer>, settings: PoolSettings, workers: usize) -> Pools {
        let common = Common {
            ids: Arc::default(),
            slots: Arc::clone(balancer.shared_slots()),
        };
        let default = Member {
            name: config::DEFAULT_POOL.into(),
            balancer,
            settings: Arc::new(settings),
        };
        let keys = config::RateLimitTable::default().max_keys;
        Pools::new(common, workers, default, Vec::new(), &[], true, keys)
    }

    pub fn common(&self) -> &Common {
        &self.common
    }

    /// The table as it is now.
    pub fn current(&self) -> Arc<Table> {
        Arc::clone(&self.current.read())
    }

    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The default pool's balancer.
    pub fn default_balancer(&self) -> Arc<Balancer> {
        Arc::clone(&self.current.read().default.balancer)
    }

    /// Publishes a new table: `default` and `others` (a name the current table has keeps its
    /// index), routed by `routes`. Returns the pools the new table no longer has.
    pub fn publish(
        &self,
        default: Member,
        others: Vec<Member>,
        routes: &[RouteConfig],
        default_serves: bool,
    ) -> Vec<Member> {
        let _writer = self.writer.lock();
        let prev = self.current();
        let table = Table::build(
            Some(&prev),
            default,
            others,
            routes,
            default_serves,
            self.workers,
            Arc::clone(prev.limits.buckets()),
        );
        let gone = prev
            .members()
            .filter(|(_, m)| table.by_name(&m.name).is_none())
            .map(|(_, m)| m.clone())
            .collect();
        let generation = table.generation;
        *self.current.write() = Arc::new(table);
        self.generation.store(generation, Ordering::Release);
        // a pool added: requests waiting for a slot may find one now
        self.common.slots.freed();
        gone
    }
}
/// A new pool named `name` from its keys, its backends sharing `common`; `tls` is each backend's
/// TLS settings, by index (see `lib::backend_tls`).
pub fn member(
    common: &Common,
    name: &str,
    pool: &PoolConfig,
    tls: Vec<Option<crate::transport::ClientTls>>,
) -> Member {
    let backends = crate::balancer::Pool::sharing(
        common,
        pool.balance.strategy,
        &pool.backends,
        pool.balance.max_conns,
        |i, _| tls.get(i).cloned().flatten(),
    );
    Member {
        name: name.into(),
        balancer: Arc::new(Balancer::with_policy(
            backends,
            crate::balancer::Policy::from_pool(pool),
        )),
        settings: Arc::new(PoolSettings::from_pool(pool)),
    }
}
