//! The process's pools and the routes to them: which [`Balancer`] a request goes to.
//!
//! A [`Table`] is an immutable view, published like a balancer's pool: the pools by index (the
//! first is `default`, the top-level keys), each with what a stream reads of its keys
//! ([`PoolSettings`]), the routes (`route.rs`) and the requests each route sent. [`Pools`]
//! publishes the current table under a generation number; a worker keeps its own `Arc<Table>` and
//! its own [`Picker`] per pool in its [`View`], and takes a new table up when the generation
//! moves (once per poll round): routing takes no lock.
//!
//! A pool keeps its index for the process's life: a reload that keeps a pool (by name) keeps its
//! index and its balancer (ids, counters, sticky table, pooled connections); a new pool gets an
//! index never used before; a removed pool leaves a hole. So a stream that noted its pool's
//! index before a reload still finds that pool after it, or nothing (and no other pool).
//!
//! Neighbours: `lib.rs` builds the first table and `admin/reload.rs` the next ones, from the
//! config; the stream routes through [`View::router`] and picks through [`View::choose`]; the
//! admin API, health checks and DNS refresh read [`Pools::current`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, RwLock};

use crate::balancer::{Ask, Balancer, Choice, Common, Picker, Slots};
use crate::config::{self, HashKey, PoolConfig, RouteConfig, StickyMode};
use crate::http::request::{KeySource, Routed, Router};
use crate::limits::{Buckets, RouteScope, Scopes};
use crate::route::{RouteSpec, Routes};

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

/// A worker's view of the pools: the table it routes with, and its picker per pool.
pub struct View {
    table: Arc<Table>,
    pickers: Vec<Option<Picker>>,
    slots: Arc<Slots>,
    worker: usize,
}

impl View {
    pub fn new(pools: &Pools, worker: usize) -> View {
        let mut view = View {
            table: pools.current(),
            pickers: Vec::new(),
            slots: Arc::clone(&pools.common.slots),
            worker,
        };
        view.fit();
        view
    }

    /// Takes the published table up if it changed (one atomic load when it did not).
    #[inline]
    pub fn refresh(&mut self, pools: &Pools) {
        if pools.generation() != self.table.generation {
            self.table = pools.current();
            self.fit();
        }
    }

    /// A picker for every pool of the table, none for the holes.
    fn fit(&mut self) {
        let worker = self.worker;
        self.pickers.resize_with(self.table.members.len(), || None);
        for (picker, member) in self.pickers.iter_mut().zip(&self.table.members) {
            match member {
                Some(m) if picker.is_none() => *picker = Some(Picker::new(&m.balancer, worker)),
                Some(_) => {}
                None => *picker = None,
            }
        }
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The keys of pool `pool`; the default pool's when it is gone (a reload removed it while
    /// one of its requests was in flight).
    pub fn settings(&self, pool: u16) -> &PoolSettings {
        match self.table.member(usize::from(pool)) {
            Some(m) => &m.settings,
            None => &self.table.default.settings,
        }
    }

    /// The balancer of pool `pool`, if the table still has it.
    pub fn balancer(&self, pool: u16) -> Option<&Balancer> {
        self.table.member(usize::from(pool)).map(|m| &*m.balancer)
    }

    /// The policy of pool `pool` as this worker's picker last took it up (no lock); none if the
    /// pool is gone.
    #[inline]
    pub fn policy(&self, pool: u16) -> Option<&crate::balancer::Policy> {
        match self.pickers.get(usize::from(pool)) {
            Some(Some(picker)) => Some(picker.pool().policy()),
            _ => None,
        }
    }

    /// A backend of pool `pool` for `ask` ([`Picker::choose`]); none if the pool is gone.
    pub fn choose(&mut self, pool: u16, ask: &Ask) -> Choice<'_> {
        let pool = usize::from(pool);
        match (self.table.member(pool), self.pickers.get_mut(pool)) {
            (Some(m), Some(Some(picker))) => picker.choose(&m.balancer, ask),
            _ => Choice::None,
        }
    }

    /// Counts a request of `client` that `route` sent to `pool` against its rate limit, if it
    /// has one (see [`Scopes::admit`]): the seconds to wait when it is over.
    ///
    /// The time is read afresh (a vDSO clock read, no system call), not the worker's time of
    /// its poll round: a worker delayed in a round would otherwise count a request at a time
    /// before one another worker already counted, and find a budget spent that is not.
    #[inline]
    pub fn over_limit(
        &self,
        pool: u16,
        route: Option<u16>,
        client: std::net::IpAddr,
        client_hash: u64,
        key: Option<u64>,
    ) -> Option<u64> {
        let route = route.map(usize::from);
        self.table.limits.of(usize::from(pool), route)?;
        let now = crate::timer::clock_us(std::time::Instant::now());
        let limits = &self.table.limits;
        limits.admit(
            self.worker,
            usize::from(pool),
            route,
            client,
            client_hash,
            key,
            now,
        )
    }

    /// Who to tell when this worker queues for a backend slot.
    pub fn slots(&self) -> &Slots {
        &self.slots
    }

    /// The router a request's rewrite asks.
    pub fn router(&self) -> TableRouter<'_> {
        TableRouter {
            table: &self.table,
            worker: self.worker,
        }
    }
}

/// Routes requests by a table, counting each route's requests under the worker's index.
pub struct TableRouter<'a> {
    table: &'a Table,
    worker: usize,
}

impl<'a> Router<'a> for TableRouter<'a> {
    fn route(&self, host: &[u8], path: &[u8]) -> Option<Routed<'a>> {
        let table: &'a Table = self.table;
        let target = table.find(host, path)?;
        let member = table.member(target.pool)?;
        if let Some(route) = target.route {
            table.hits.count(self.worker, route);
        }
        let settings: &'a PoolSettings = &member.settings;
        Some(Routed {
            pool: u16::try_from(target.pool).ok()?,
            route: target.route.and_then(|r| u16::try_from(r).ok()),
            strip: target.strip,
            key: settings.key(),
            limit_key: table
                .limits
                .of(target.pool, target.route)
                .map_or(KeySource::ClientIp, |l| l.key()),
            sticky_cookie: settings.sticky_cookie.as_deref().map(str::as_bytes),
            strip_sticky_cookie: settings.strip_sticky_cookie,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::tests::cfg;
    use crate::balancer::Ask;

    fn pool_of(ports: &[u16]) -> PoolConfig {
        PoolConfig {
            backends: ports.iter().map(|&p| cfg(p, 1)).collect(),
            ..PoolConfig::default()
        }
    }

    fn route(name: &str, host: Option<&str>, prefix: Option<&str>, pool: &str) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            host: host.map(Into::into),
            path_prefix: prefix.map(Into::into),
            pool: pool.into(),
            strip_prefix: false,
            rate_limit: config::RouteLimit::Pool,
        }
    }

    fn members(common: &Common, names: &[(&str, &[u16])]) -> Vec<Member> {
        names
            .iter()
            .map(|(n, ports)| member(common, n, &pool_of(ports), Vec::new()))
            .collect()
    }

    fn ask() -> Ask {
        Ask {
            key: 1,
            client: 1,
            cookie: None,
            exclude: None,
            now: std::time::Instant::now(),
        }
    }

    #[test]
    fn a_pool_keeps_its_index_across_publishes_and_a_new_one_never_takes_a_removed_ones() {
        let common = Common::default();
        let default = member(&common, "default", &pool_of(&[1]), Vec::new());
        let first = members(&common, &[("a", &[2]), ("b", &[3])]);
        let b = first[1].clone();
        let pools = Pools::new(common.clone(), 1, default.clone(), first, &[], true, 64);
        let t = pools.current();
        assert_eq!(t.index_of("a"), Some(1));
        assert_eq!(t.index_of("b"), Some(2));
        let c = members(&common, &[("c", &[4])]).remove(0);
        let gone = pools.publish(default, vec![c, b], &[], true);
        assert_eq!(gone.iter().map(|m| &*m.name).collect::<Vec<_>>(), ["a"]);
        let t = pools.current();
        assert_eq!(t.index_of("b"), Some(2), "b keeps its index");
        assert_eq!(t.index_of("c"), Some(3), "c gets an index never used");
        assert!(t.member(1).is_none(), "a's index is a hole");
    }

    #[test]
    fn backend_ids_are_unique_across_pools_and_find_backend_names_the_pool() {
        let common = Common::default();
        let default = member(&common, "default", &pool_of(&[1, 2]), Vec::new());
        let others = members(&common, &[("api", &[3, 4])]);
        let pools = Pools::new(common, 1, default, others, &[], true, 64);
        let t = pools.current();
        let mut ids: Vec<u64> = t
            .members()
            .flat_map(|(_, m)| m.balancer.current().backends().to_vec())
            .map(|b| b.id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 4);
        let api = t.by_name("api").map(|m| m.balancer.current());
        let id = api
            .as_ref()
            .and_then(|p| p.backends().first())
            .map(|b| b.id);
        let found = id.and_then(|id| t.find_backend(id));
        assert_eq!(
            found.map(|(m, b)| (&*m.name, b.addr.port())),
            Some(("api", 3))
        );
    }

    #[test]
    fn unmatched_requests_go_to_default_only_when_it_serves() {
        let common = Common::default();
        let default = member(&common, "default", &pool_of(&[1]), Vec::new());
        let others = members(&common, &[("api", &[2])]);
        let routes = [route("api", Some("api.example"), None, "api")];
        let pools = Pools::new(
            common,
            1,
            default.clone(),
            others.clone(),
            &routes,
            false,
            64,
        );
        let t = pools.current();
        assert_eq!(t.find(b"api.example:8080", b"/x").map(|m| m.pool), Some(1));
        assert_eq!(t.find(b"other.example", b"/x"), None);
        pools.publish(default, others, &routes, true);
        let t = pools.current();
        let found = t.find(b"other.example", b"/x");
        assert_eq!(found.map(|m| (m.pool, m.route)), Some((0, None)));
    }

    #[test]
    fn route_counts_add_up_over_workers_and_survive_a_publish_that_keeps_the_route() {
        let common = Common::default();
        let default = member(&common, "default", &pool_of(&[1]), Vec::new());
        let others = members(&common, &[("api", &[2])]);
        let routes = [
            route("api", Some("api.example"), None, "api"),
            route("v2", None, Some("/v2"), "api"),
        ];
        let pools = Pools::new(
            common,
            2,
            default.clone(),
            others.clone(),
            &routes,
            true,
            64,
        );
        for worker in 0..2 {
            let view = View::new(&pools, worker);
            let router = view.router();
            for _ in 0..3 {
                assert!(router.route(b"api.example", b"/").is_some());
            }
            assert!(router.route(b"x.example", b"/v2/a").is_some());
            assert!(router.route(b"x.example", b"/v3").is_some(), "default");
        }
        let counts = |t: &Table| {
            t.routes()
                .map(|r| (r.name.to_owned(), r.requests))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            counts(&pools.current()),
            [("api".into(), 6), ("v2".into(), 2)]
        );
        // a reload drops v2 and adds v3: api keeps its count
        let next = [
            route("api", Some("api.example"), None, "api"),
            route("v3", None, Some("/v3"), "api"),
        ];
        pools.publish(default, others, &next, true);
        assert_eq!(
            counts(&pools.current()),
            [("api".into(), 6), ("v3".into(), 0)]
        );
    }

    #[test]
    fn rate_limits_by_scope_kept_across_a_publish_and_counted() {
        let common = Common::default();
        let text = r#"{"rate_limit": {"requests_per_second": 0.1, "burst": 1}}"#;
        let keys = config::Config::from_json_str(text)
            .expect("valid")
            .pool
            .rate_limit;
        let limit = keys.limit.clone().expect("a limit");
        let limited = PoolConfig {
            rate_limit: keys,
            ..pool_of(&[1])
        };
        let default = member(&common, "default", &limited, Vec::new());
        let routes = [
            route("shared", None, Some("/s"), "default"),
            RouteConfig {
                rate_limit: config::RouteLimit::Own(limit),
                ..route("own", None, Some("/own"), "default")
            },
            RouteConfig {
                rate_limit: config::RouteLimit::Off,
                ..route("off", None, Some("/off"), "default")
            },
        ];
        let pools = Pools::new(common, 2, default.clone(), Vec::new(), &routes, true, 64);
        let view = View::new(&pools, 0);
        let ip: std::net::IpAddr = "192.0.2.1".parse().expect("ip");
        assert_eq!(view.over_limit(0, None, ip, 7, None), None);
        // a route without its own limit shares its pool's bucket; one with its own has its own
        assert_eq!(view.over_limit(0, Some(0), ip, 7, None), Some(10));
        assert_eq!(view.over_limit(0, Some(1), ip, 7, None), None);
        for _ in 0..3 {
            assert_eq!(view.over_limit(0, Some(2), ip, 7, None), None, "off");
        }
        // another client, and a header's value in place of the client's hash
        assert_eq!(view.over_limit(0, None, ip, 8, None), None);
        assert_eq!(view.over_limit(0, None, ip, 7, Some(9)), None);
        assert!(view.over_limit(0, None, ip, 9, Some(9)).is_some());
        // a publish keeps the buckets, and the counts of the routes it keeps
        pools.publish(default, Vec::new(), &routes, true);
        let view = View::new(&pools, 1);
        assert!(view.over_limit(0, None, ip, 7, None).is_some());
        assert!(view.over_limit(0, Some(1), ip, 7, None).is_some());
        let t = pools.current();
        let limits = t.limits();
        let counts: Vec<u64> = [Some(0), Some(1), Some(2), None]
            .map(|r| limits.refused(r))
            .to_vec();
        assert_eq!(counts, [1, 1, 0, 2]);
        assert!(limits.limits(Some(0)) && limits.limits(None) && !limits.limits(Some(2)));
    }

    #[test]
    fn a_view_follows_the_table_and_a_removed_pool_picks_nothing() {
        let common = Common::default();
        let default = member(&common, "default", &pool_of(&[1]), Vec::new());
        let others = members(&common, &[("api", &[2])]);
        let pools = Pools::new(common, 1, default.clone(), others, &[], true, 64);
        let mut view = View::new(&pools, 0);
        assert!(
            matches!(view.choose(1, &ask()), Choice::Backend { backend, .. } if backend.addr.port() == 2)
        );
        pools.publish(default, Vec::new(), &[], true);
        view.refresh(&pools);
        assert!(matches!(view.choose(1, &ask()), Choice::None));
        assert!(view.balancer(1).is_none());
        // its requests still in flight read the default pool's keys
        assert_eq!(view.settings(1), &*view.table().default().settings);
        assert!(
            matches!(view.choose(0, &ask()), Choice::Backend { backend, .. } if backend.addr.port() == 1)
        );
    }

    #[test]
    fn the_router_hands_over_the_matched_pools_own_keys() {
        let common = Common::default();
        let default = member(&common, "default", &pool_of(&[1]), Vec::new());
        let mut api = pool_of(&[2]);
        api.sticky.enabled = true;
        api.sticky.mode = StickyMode::Cookie;
        api.sticky.cookie_name = "API_STICKY".into();
        api.balance.hash_key = HashKey::Header("X-User".into());
        let others = vec![member(&common, "api", &api, Vec::new())];
        let routes = [RouteConfig {
            strip_prefix: true,
            ..route("api", None, Some("/api"), "api")
        }];
        let pools = Pools::new(common, 1, default, others, &routes, true, 64);
        let view = View::new(&pools, 0);
        let router = view.router();
        let r = router.route(b"h", b"/api/users");
        assert_eq!(r.map(|r| (r.pool, r.route, r.strip)), Some((1, Some(0), 4)));
        assert_eq!(r.and_then(|r| r.sticky_cookie), Some(&b"API_STICKY"[..]));
        assert_eq!(r.map(|r| r.key), Some(KeySource::Header(b"X-User")));
        let d = router.route(b"h", b"/other");
        assert_eq!(
            d.map(|r| (r.pool, r.route, r.sticky_cookie)),
            Some((0, None, None))
        );
    }
}
