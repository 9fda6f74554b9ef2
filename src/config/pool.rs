//! What one pool carries: its backends and the groups of keys that may differ from pool to pool
//! ([`Balance`], [`Upstream`], [`Health`], [`Passive`], [`Sticky`], [`Traffic`],
//! [`RateLimits`]). The top level of config.json is the first pool; [`PoolConfig::resolve`] is
//! how every pool is built, a key it leaves out taken from the pool it inherits from (the top
//! level's, for the pools routing adds), or else its default. Its backends are its own: never
//! inherited.

use std::time::Duration;

use serde_json::{Map, Value};

use super::backend::{self, BackendConfig, BackendFile, BackendSpec, BackendTls, NO_BACKEND_TLS};
use super::error::ConfigError;
use super::groups::{
    Balance, BalanceFile, Health, HealthFile, Passive, PassiveFile, RateLimits, RateLimitsFile,
    Sticky, StickyFile, Traffic, TrafficFile, Upstream, UpstreamFile,
};
use super::key::{self, Group};

/// A pool, every key resolved. The backends are resolved last, once everything else is valid.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolConfig {
    /// `backends`, each host name resolved (a name with several addresses is a backend per
    /// address, in file order).
    pub backends: Vec<BackendConfig>,
    /// TLS settings of `backends[i]` at index `i` (see [`PoolConfig::tls_of_backend`]). They sit
    /// beside `backends` rather than in [`BackendConfig`] because the balancer's tests and the
    /// hot-path bench spell out `BackendConfig`'s fields; moving them in is a later, small edit.
    pub backend_tls: Vec<BackendTls>,
    pub balance: Balance,
    pub upstream: Upstream,
    pub health: Health,
    pub passive: Passive,
    pub sticky: Sticky,
    pub traffic: Traffic,
    pub rate_limit: RateLimits,
}

/// A pool as config.json gives it.
#[derive(Debug, Default)]
pub(super) struct PoolFile {
    backends: Option<Vec<BackendFile>>,
    balance: BalanceFile,
    upstream: UpstreamFile,
    health: HealthFile,
    passive: PassiveFile,
    sticky: StickyFile,
    traffic: TrafficFile,
    rate_limit: RateLimitsFile,
}

impl PoolFile {
    fn groups(&self) -> [&dyn Group; 7] {
        [
            &self.balance,
            &self.upstream,
            &self.health,
            &self.passive,
            &self.sticky,
            &self.traffic,
            &self.rate_limit,
        ]
    }
}

impl Group for PoolFile {
    fn read(&mut self, key: &str, value: &Value, at: &str) -> Option<Result<(), ConfigError>> {
        if key == "backends" {
            let read = match value {
                Value::Null => Ok(None),
                _ => key::from_serde(value, &key::join(at, key)).map(Some),
            };
            return Some(read.map(|backends| self.backends = backends));
        }
        let groups: [&mut dyn Group; 7] = [
            &mut self.balance,
            &mut self.upstream,
            &mut self.health,
            &mut self.passive,
            &mut self.sticky,
            &mut self.traffic,
            &mut self.rate_limit,
        ];
        groups.into_iter().find_map(|g| g.read(key, value, at))
    }

    fn check(&self, at: &str) -> Result<(), ConfigError> {
        self.groups().into_iter().try_for_each(|g| g.check(at))
    }

    fn keys(&self, out: &mut Vec<&'static str>) {
        out.push("backends");
        for group in self.groups() {
            group.keys(out);
        }
    }
}

impl PoolConfig {
    /// Builds a pool from what the file gives at `at` (empty at the top level): the checks within
    /// entries (a backend without `url` or listed twice, then those of the groups' keys), then
    /// every key, a key left out taken from `inherit` or else its default. The backends come
    /// back to be resolved (`backend::resolve_backends`), once everything else is valid.
    pub(super) fn resolve(
        file: PoolFile,
        inherit: Option<&PoolConfig>,
        at: &str,
    ) -> Result<(PoolConfig, Vec<BackendSpec>), ConfigError> {
        file.check(at)?;
        let PoolFile {
            backends,
            balance,
            upstream,
            health,
            passive,
            sticky,
            traffic,
            rate_limit,
        } = file;
        let (specs, backend_tls) = backend::specs(backends.unwrap_or_default(), at)?;
        let pool = PoolConfig {
            backends: Vec::new(), // resolved last, once everything else is valid
            backend_tls,
            balance: balance.resolve(inherit.map(|p| &p.balance)),
            upstream: upstream.resolve(inherit.map(|p| &p.upstream)),
            health: health.resolve(inherit.map(|p| &p.health)),
            passive: passive.resolve(inherit.map(|p| &p.passive)),
            sticky: sticky.resolve(inherit.map(|p| &p.sticky)),
            traffic: traffic.resolve(inherit.map(|p| &p.traffic)),
            rate_limit: rate_limit.resolve(inherit.map(|p| &p.rate_limit)),
        };
        Ok((pool, specs))
    }

    /// Writes the pool in the file's form.
    pub(super) fn write(&self, out: &mut Map<String, Value>) {
        // a name that resolved to several addresses is several backends, but one entry
        let backends: Vec<BackendFile> = self
            .backends
            .iter()
            .enumerate()
            .filter(|(i, b)| !self.backends[..*i].iter().any(|e| e.url == b.url))
            .map(|(i, b)| BackendFile::of(b, self.tls_of_backend(i)))
            .collect();
        if let Ok(backends) = serde_json::to_value(backends) {
            out.insert("backends".into(), backends);
        }
        self.balance.write(out);
        self.upstream.write(out);
        self.health.write(out);
        self.passive.write(out);
        self.sticky.write(out);
        self.traffic.write(out);
        self.rate_limit.write(out);
    }

    /// How long a health probe may take: `health_check_timeout`, or the smaller of
    /// `backend_timeout` and the interval.
    pub fn health_timeout(&self) -> Duration {
        let backend = self.upstream.backend_timeout;
        self.health.timeout.unwrap_or_else(|| {
            if self.health.frequency.is_zero() {
                backend
            } else {
                backend.min(self.health.frequency)
            }
        })
    }

    /// The TLS settings of `backends[index]`: its entry in [`PoolConfig::backend_tls`], or the
    /// defaults for a backend without one (one added after load).
    pub fn tls_of_backend(&self, index: usize) -> &BackendTls {
        self.backend_tls.get(index).unwrap_or(&NO_BACKEND_TLS)
    }
}
