//! Rate limits (`rate_limit`): which limit a request falls under, its key, and the verdict.
//!
//! A limit belongs to a *scope*: a pool (its `rate_limit`, which the routes to it without one of
//! their own share, as does a request no route took) or a route with its own. [`Scopes`] holds
//! the limits of one published table of pools and routes (`pools/` builds it with the table,
//! and a worker reads it through its `View`), the process's one [`Buckets`] table (handed from
//! table to table, so a reload keeps every bucket), and the 429s counted per scope, each worker
//! in its own cells.
//!
//! A request's key is its client's hash (the address ferrule works out, IPv6 grouped by
//! `ipv6_client_prefix`), or the hash of the header or cookie the limit names (read with the
//! head: `http/request.rs`), or its client's when the request has no such header or cookie (so
//! leaving it out is no way around the limit). The key is mixed with a seed of the scope's name,
//! so two scopes' buckets are apart, and a reload that keeps a scope keeps its buckets. A client
//! inside the pool's `rate_limit_exempt` is never counted.
//!
//! Files: `buckets.rs` the lock-free table and GCRA.

mod buckets;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use self::buckets::{Buckets, Rate, Verdict};
use crate::client_ip::Cidr;
use crate::config::{HashKey, RateLimit, RateLimits, RouteLimit};
use crate::http::request::KeySource;

/// A limit as its scope applies it.
#[derive(Debug)]
pub struct Limit {
    rate: Rate,
    /// Mixed into every key: the scope's own buckets.
    seed: u64,
    key: HashKey,
    exempt: Box<[Cidr]>,
}

impl Limit {
    /// `limit` for the scope named `scope` (`pool:api`, `route:v2`), `exempt` its pool's.
    pub fn new(scope: &str, limit: &RateLimit, exempt: &[Cidr]) -> Limit {
        Limit {
            rate: Rate::new(limit.requests_per_second.get(), limit.burst),
            seed: crate::hash::stable_hash(0x7261_7465, scope.as_bytes()),
            key: limit.key.clone(),
            exempt: exempt.into(),
        }
    }

    /// What the request head must be read for.
    pub fn key(&self) -> KeySource<'_> {
        match &self.key {
            HashKey::ClientIp => KeySource::ClientIp,
            HashKey::Header(name) => KeySource::Header(name.as_bytes()),
            HashKey::Cookie(name) => KeySource::Cookie(name.as_bytes()),
        }
    }

    /// Counts a request from `client` (whose hash is `client_hash`; `key`: the hash of the
    /// header or cookie the limit names, if the request has it) at `now` (µs, `clock_us`).
    pub fn check(
        &self,
        buckets: &Buckets,
        client: IpAddr,
        client_hash: u64,
        key: Option<u64>,
        now: u64,
    ) -> Verdict {
        if self.exempt.iter().any(|c| c.contains(client)) {
            return Verdict::Allowed;
        }
        let hash = crate::hash::mix(key.unwrap_or(client_hash) ^ self.seed);
        buckets.check(hash, now, self.rate)
    }
}

/// Whole seconds to tell a refused client to wait (`Retry-After`): rounded up, at least 1.
pub fn retry_after(wait_us: u64) -> u64 {
    wait_us.div_ceil(1_000_000).max(1)
}

/// 429s per scope, each worker counting in its own cells (one writer per cell: a load and a
/// store, no locked instruction).
#[derive(Debug)]
struct Counts {
    stride: usize,
    cells: Box<[AtomicU64]>,
}

impl Counts {
    fn new(rows: usize, workers: usize) -> Counts {
        let stride = rows.div_ceil(8) * 8;
        Counts {
            stride,
            cells: (0..stride * workers.max(1))
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    fn count(&self, worker: usize, row: usize) {
        if let Some(c) = self.cells.get(worker * self.stride + row) {
            c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        }
    }

    fn total(&self, row: usize) -> u64 {
        if row >= self.stride {
            return 0;
        }
        self.cells
            .iter()
            .skip(row)
            .step_by(self.stride)
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    fn carry(&self, row: usize, count: u64) {
        if let Some(c) = self.cells.get(row) {
            c.store(count, Ordering::Relaxed);
        }
    }
}

/// A route as [`Scopes::build`] needs it: its name, its pool's index and its `rate_limit`.
pub struct RouteScope<'a> {
    pub name: &'a str,
    pub pool: usize,
    pub limit: &'a RouteLimit,
}

/// The limits of one table of pools and routes (see the module header).
#[derive(Debug)]
pub struct Scopes {
    buckets: Arc<Buckets>,
    /// By pool index (`None`: no limit, or a hole).
    pools: Vec<Option<Arc<Limit>>>,
    /// By route index: the route's own, its pool's, or none.
    routes: Vec<Option<Arc<Limit>>>,
    /// 429s by route index, then one row for the requests no route took.
    counts: Counts,
    /// The name of each route (for carrying counts over a reload).
    names: Vec<Arc<str>>,
}

impl Scopes {
    /// The limits of `pools` (by index: name and keys; `None` for a hole) and `routes`, over
    /// `buckets`, for `workers` workers; a route `prev` had by name keeps its count.
    pub fn build(
        prev: Option<&Scopes>,
        buckets: Arc<Buckets>,
        pools: &[Option<(&str, &RateLimits)>],
        routes: &[RouteScope<'_>],
        workers: usize,
    ) -> Scopes {
        let pool_limits: Vec<Option<Arc<Limit>>> = pools
            .iter()
            .map(|p| {
                let (name, keys) = (*p)?;
                let limit = keys.limit.as_ref()?;
                Some(Arc::new(Limit::new(
                    &format!("pool:{name}"),
                    limit,
                    &keys.exempt,
                )))
            })
            .collect();
        let route_limits = routes
            .iter()
            .map(|r| match r.limit {
                RouteLimit::Pool => pool_limits.get(r.pool).cloned().flatten(),
                RouteLimit::Off => None,
                RouteLimit::Own(limit) => {
                    let exempt = pools
                        .get(r.pool)
                        .copied()
                        .flatten()
                        .map_or(&[][..], |(_, keys)| &keys.exempt[..]);
                    Some(Arc::new(Limit::new(
                        &format!("route:{}", r.name),
                        limit,
                        exempt,
                    )))
                }
            })
            .collect();
        let names: Vec<Arc<str>> = routes.iter().map(|r| Arc::from(r.name)).collect();
        let counts = Counts::new(routes.len() + 1, workers);
        if let Some(prev) = prev {
            for (i, name) in names.iter().enumerate() {
                if let Some(was) = prev.names.iter().position(|n| n == name) {
                    counts.carry(i, prev.counts.total(was));
                }
            }
            counts.carry(routes.len(), prev.counts.total(prev.names.len()));
        }
        Scopes {
            buckets,
            pools: pool_limits,
            routes: route_limits,
            counts,
            names,
        }
    }

    /// The table of buckets (the next table's too).
    pub fn buckets(&self) -> &Arc<Buckets> {
        &self.buckets
    }

    /// The limit of a request that `route` (`None`: no route) sent to `pool`.
    #[inline]
    pub fn of(&self, pool: usize, route: Option<usize>) -> Option<&Limit> {
        match route {
            Some(r) => self.routes.get(r)?.as_deref(),
            None => self.pools.get(pool)?.as_deref(),
        }
    }

    /// Counts a request against the limit of its scope (see [`Limit::check`]). Returns the
    /// seconds to wait (`Retry-After`) when it is over, and counts the refusal under `worker`.
    #[allow(clippy::too_many_arguments)]
    pub fn admit(
        &self,
        worker: usize,
        pool: usize,
        route: Option<usize>,
        client: IpAddr,
        client_hash: u64,
        key: Option<u64>,
        now: u64,
    ) -> Option<u64> {
        let limit = self.of(pool, route)?;
        match limit.check(&self.buckets, client, client_hash, key, now) {
            Verdict::Allowed => None,
            Verdict::Refused { wait_us } => {
                self.counts.count(worker, route.unwrap_or(self.names.len()));
                Some(retry_after(wait_us))
            }
        }
    }

    /// 429s of route `route` (`None`: of the requests no route took) since it was loaded (or
    /// since the first load that had it).
    pub fn refused(&self, route: Option<usize>) -> u64 {
        self.counts.total(route.unwrap_or(self.names.len()))
    }

    /// Whether a limit applies to the requests of `route` (`None`: no route, the default
    /// pool's).
    pub fn limits(&self, route: Option<usize>) -> bool {
        self.of(0, route).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        assert_eq!(retry_after(1), 1);
        assert_eq!(retry_after(999_999), 1);
        assert_eq!(retry_after(1_000_000), 1);
        assert_eq!(retry_after(1_000_001), 2);
        assert_eq!(retry_after(0), 1);
    }
}
