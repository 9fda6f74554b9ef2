//! A worker's side of the pools: its [`View`] (the table it routes with, taken up when the
//! generation moves, and its own [`Picker`] per pool) and the [`TableRouter`] a request's rewrite
//! asks (it counts each route's requests under the worker's index).
//!
//! Neighbours: the table, its publishing and the pool settings in `mod.rs`; the unit tests in
//! `tests.rs`.

use std::sync::Arc;

use super::{PoolSettings, Pools, Table};
use crate::balancer::{Ask, Balancer, Choice, Picker, Slots};
use crate::http::request::{KeySource, Routed, Router};

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
