//! Live reload (`SIGHUP`, `POST /reload`) and the DNS refresh that shares its pool changes.
//!
//! A reload re-reads the file given at start and checks it whole first, as `--check` does (the
//! config, then every backend's TLS settings, then the certificates): a file with a fault is
//! refused with that one-line error and nothing changes. Then, in place and without closing a
//! connection:
//! - backends are matched by URL and address ([`Pool::sync`](crate::balancer::Pool::sync)):
//!   kept ones keep their id, counters, state and pooled connections and take the file's weight
//!   and `max_conns`; the ones gone drain as `DELETE` does; new ones get new ids;
//! - strategy and policy (sticky sessions, passive health, `fail_open`) are published with the
//!   pool; the sticky table is kept when its settings did not change;
//! - the workers get new settings (timeouts, limits, keep-alive) for what they do from then on;
//! - the health and DNS threads restart when their settings changed; the certificates are read
//!   again; `admin_token` applies to the next request.
//!
//! The keys that need a restart (`port`, `bind`, `workers`, `admin_port`, `admin_bind`,
//! `buffer_size`, `ssl.enabled`, `ssl.redirect_http_port`, `upgrade_socket`,
//! `shutdown_timeout`, `ipv6_client_prefix`) keep their running values, and the answer and the log say so. Changes
//! made through the admin API since the last load are replaced by the file (the file wins:
//! backends added by hand go, backends deleted by hand come back, weights return to the file's)
//! and the answer lists each one it replaced; states set by hand (`disabled`, `draining`) of
//! backends that stay are kept.
//!
//! The backends' CA files (`backends[].ca_file`, `backend_ca_file`) are read again, into a fresh
//! client TLS cache ([`ClientConfigs::renewed`](crate::tls::ClientConfigs::renewed)): a CA file
//! that changed gets a new client config, and the backends that use it are replaced (new ids;
//! their pooled connections, made under the old CA, drain); a file that no longer loads refuses
//! the reload. The checks between keys run again once the restart-only keys have their running
//! values back (a `max_request_head` must fit the running `buffer_size`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde_json::{json, Map, Value};

use super::{Admin, AdminState, ApiError, Call};
use crate::balancer::{Backend, Balancer, Policy, Pool, Sticky, Synced};
use crate::config::{BackendConfig, Config, PoolConfig};
use crate::dns::{DnsHandle, Hosts, Refresh};
use crate::health::{HealthHandle, HealthSettings};
use crate::httpd::message::Response;
use crate::pools::Pools;
use crate::worker::{Control, ControlPort, Shared};

/// What a reload changes besides the pool and the config.
pub struct Live {
    /// The config file (`None`: started from a `Config` value, nothing to reload).
    pub path: Option<PathBuf>,
    /// What the workers run with now.
    pub shared: Mutex<Arc<Shared>>,
    /// The open-file limit in force (the descriptor budget is derived again from it).
    pub fd_limit: u64,
    /// The active health checks, one thread per pool that has them, by pool name.
    pub health: Mutex<Vec<(String, HealthHandle)>>,
    pub dns: Mutex<Option<DnsHandle>>,
}

impl Live {
    pub fn new(path: Option<PathBuf>, shared: Arc<Shared>, fd_limit: u64) -> Live {
        Live {
            path,
            shared: Mutex::new(shared),
            fd_limit,
            health: Mutex::new(Vec::new()),
            dns: Mutex::new(None),
        }
    }

    /// The access log (one for the proxy's life; a reload changes its target and format).
    pub fn access_log(&self) -> Arc<crate::access_log::AccessLog> {
        Arc::clone(&self.shared.lock().access_log)
    }

    /// Keeps `checks` as pool `pool`'s health checks (stopping the ones it had).
    pub fn set_health(&self, pool: &str, checks: HealthHandle) {
        let mut health = self.health.lock();
        health.retain(|(name, _)| name != pool);
        health.push((pool.to_owned(), checks));
    }

    /// Stops pool `pool`'s health checks, if it has them.
    fn stop_health(&self, pool: &str) {
        let stopped: Vec<_> = {
            let mut health = self.health.lock();
            let (stop, keep) = std::mem::take(&mut *health)
                .into_iter()
                .partition(|(name, _)| name == pool);
            *health = keep;
            stop
        };
        for (_, mut h) in stopped {
            h.stop();
        }
    }

    /// Stops the health and DNS threads (at shutdown).
    pub fn stop_threads(&self) {
        let health = std::mem::take(&mut *self.health.lock());
        for (_, mut h) in health {
            h.stop();
        }
        if let Some(mut d) = self.dns.lock().take() {
            d.stop();
        }
    }
}

pub(super) fn post(admin: &Admin, _: &Call<'_>) -> Result<Response, ApiError> {
    match reload(admin) {
        Ok(report) => Ok(Response::json(200, &report)),
        Err(e) => {
            let status = if admin.state.live.path.is_none() {
                409
            } else {
                400
            };
            Err(ApiError::new(status, e))
        }
    }
}

/// Re-reads and applies the config file; the report, or the one-line reason nothing changed.
pub(super) fn reload(admin: &Admin) -> Result<Value, String> {
    let _one = admin.reloading.lock();
    let state = &admin.state;
    let Some(path) = &state.live.path else {
        return Err(
            "config: there is no file to reload (the proxy was started without one)".into(),
        );
    };
    let result = apply(state, path);
    match &result {
        Ok(report) => log::info!(
            "config reloaded from {}: {}",
            path.display(),
            summary(report)
        ),
        Err(e) => log::warn!("config reload refused, the running config stays: {e}"),
    }
    result
}

fn apply(state: &AdminState, path: &std::path::Path) -> Result<Value, String> {
    let at = |e: String| format!("{}: {e}", path.display());
    // everything that can fail, first
    let mut new = Config::load(path).map_err(|e| at(e.to_string()))?;
    // The restart-only keys never change while running (reloads take turns), so they can be
    // read before the lock below. With their running values back, the keys must agree again:
    // a `max_request_head` that fits the file's `buffer_size` may not fit the running one.
    let restart = keep_restart_only(&state.config.read(), &mut new);
    new.check_related_fields()
        .map_err(|e| at(with_kept(e.to_string(), &restart)))?;
    // every CA file read again: a rotated CA takes effect, one that no longer loads refuses
    let client_configs = state.client_configs.renewed();
    let backend_tls = crate::backend_tls(&new, &client_configs).map_err(at)?;
    // The config stays write-locked from here until it is replaced, so that the DNS refresh
    // (which takes the config, then the pool, in that order too) cannot slip a change based on
    // the old config in between. Nothing below can fail but the certificates.
    let mut running = state.config.write();
    let old = running.clone();
    let mut warnings: Vec<String> = new.warnings();
    if let (Some(tls), true) = (&state.tls, new.ssl.enabled) {
        let pairs = crate::cert_pairs(&new);
        warnings.extend(tls.reload(&pairs).map_err(|e| at(format!("ssl: {e}")))?);
    }

    // the pools: the file wins over run-time changes (the report says which it replaces)
    let pools = sync_pools(state, &old, &new, backend_tls);
    state.client_configs.adopt(client_configs);

    // the workers' settings
    let shared = {
        let mut current = state.live.shared.lock();
        let budget = crate::descriptor_budget(state.live.fd_limit, &new);
        let mut next = crate::shared_for(
            &new,
            Arc::clone(&state.pools),
            current.tls.clone(),
            budget.idle_per_worker,
            Arc::clone(&current.access_log),
            // the counts of open connections carry over: they are released as those close
            Arc::clone(&current.per_ip),
        );
        // the redirect listener and its TLS port need a restart to change
        next.redirect_to = current.redirect_to;
        let shared = Arc::new(next);
        *current = Arc::clone(&shared);
        shared
    };
    for port in &state.ports {
        port.send(Control::Reconfigure(Arc::clone(&shared)));
    }
    let mut changes = key_changes(&old, &new);
    *running = new.clone();
    drop(running);

    // logging: the access log's target and format, the level (unless RUST_LOG says otherwise)
    let (was, now) = (&old.logging, &new.logging);
    if (&was.access_log, was.access_log_format) != (&now.access_log, now.access_log_format) {
        if let Err(e) = state
            .live
            .access_log()
            .configure(&now.access_log, now.access_log_format)
        {
            let w = format!("access_log: {e}: lines go on to {:?}", was.access_log);
            log::warn!("{w}");
            warnings.push(w);
        }
    }
    crate::logging::set_level(now.level.filter());

    // the threads, once the config is unlocked (stopping the DNS thread waits for its round,
    // which may need the config)
    warnings.extend(restart_health(state, &old, &new, &pools.gone));
    if old.dns != new.dns {
        if let Some(mut d) = state.live.dns.lock().take() {
            d.stop();
        }
    }
    // also when the file now has a name and had none
    if state.live.dns.lock().is_none() {
        if let Err(e) = start_dns(state) {
            let w =
                format!("dns: cannot start the refresh thread ({e}): names stay as resolved now");
            log::error!("{w}");
            warnings.push(w);
        }
    }
    changes.retain(|c| {
        !["backends", "pools", "routes"]
            .iter()
            .any(|k| c.starts_with(k))
    });
    Ok(json!({
        "changes": changes,
        "backends": pools.default,
        "pools": {
            "added": pools.added,
            "removed": pools.gone.iter().map(|m| &*m.name).collect::<Vec<_>>(),
            "changed": pools.changed,
        },
        "routes": new.routes.len(),
        "restart_required": restart,
        "replaced_runtime_changes": pools.replaced,
        "warnings": warnings,
    }))
}

/// What a reload did to the pools.
struct PoolsSynced {
    /// The `default` pool's backends: `{added, removed, changed}`.
    default: Value,
    /// The pools the file adds.
    added: Vec<String>,
    /// The pools the file no longer has (their backends drain).
    gone: Vec<crate::pools::Member>,
    /// Per pool besides `default` that stays: `{added, removed, changed}` of its backends.
    changed: Map<String, Value>,
    /// The run-time changes the file replaced.
    replaced: Vec<String>,
}

/// Makes the pools what `new` says (by name: a pool that stays keeps its balancer, its
/// backends matched as [`Pool::sync`] does) and publishes them with `new`'s routes. `tls` is
/// each pool's backends' TLS settings, in [`Config::all_pools`] order.
fn sync_pools(
    state: &AdminState,
    old: &Config,
    new: &Config,
    tls: Vec<Vec<Option<crate::transport::ClientTls>>>,
) -> PoolsSynced {
    let table = state.pools.current();
    let mut out = PoolsSynced {
        default: Value::Null,
        added: Vec::new(),
        gone: Vec::new(),
        changed: Map::new(),
        replaced: Vec::new(),
    };
    let mut members = Vec::with_capacity(new.pools.len() + 1);
    let mut tls = tls.into_iter();
    // bounded: the file's pools
    for (name, pool) in new.all_pools() {
        let tls = tls.next().unwrap_or_default();
        let running = table.by_name(name);
        let was = old.all_pools().find(|(n, _)| *n == name).map(|(_, p)| p);
        let (Some(running), Some(was)) = (running, was) else {
            members.push(crate::pools::member(state.pools.common(), name, pool, tls));
            out.added.push(name.to_owned());
            log::info!("pool {name} added ({} backends)", pool.backends.len());
            continue;
        };
        let balancer = &running.balancer;
        let label = |text: String| match name {
            crate::config::DEFAULT_POOL => text,
            _ => format!("pool {name}: {text}"),
        };
        out.replaced.extend(
            runtime_changes(was, &balancer.current())
                .into_iter()
                .map(label),
        );
        let wanted: Vec<_> = pool.backends.iter().cloned().zip(tls).collect();
        let policy = policy_for(was, pool, &balancer.policy());
        let balance = &pool.balance;
        let synced = balancer.update(|p| {
            p.set_default_max_conns(balance.max_conns);
            let synced = p.sync(|_| true, &wanted);
            if p.strategy() != balance.strategy {
                p.set_strategy(balance.strategy);
            }
            p.set_policy(Arc::new(policy));
            synced
        });
        retire(balancer, &state.ports, &synced);
        let report = json!({
            "added": synced.added.iter().map(|b| described(b)).collect::<Vec<_>>(),
            "removed": synced.removed.iter().map(|b| described(b)).collect::<Vec<_>>(),
            "changed": synced.changed,
        });
        if name == crate::config::DEFAULT_POOL {
            out.default = report;
        } else {
            out.changed.insert(name.to_owned(), report);
        }
        members.push(crate::pools::Member {
            name: Arc::clone(&running.name),
            balancer: Arc::clone(balancer),
            settings: Arc::new(crate::pools::PoolSettings::from_pool(pool)),
        });
    }
    let mut members = members.into_iter();
    let Some(default) = members.next() else {
        return out; // all_pools always yields `default` first
    };
    out.gone = state.pools.publish(
        default,
        members.collect(),
        &new.routes,
        new.default_serves(),
    );
    for pool in &out.gone {
        let backends = pool.balancer.current();
        let in_flight: u64 = backends
            .backends()
            .iter()
            .map(|b| b.active_requests() as u64)
            .sum();
        log::info!(
            "pool {} removed: its {} backends drain ({in_flight} requests in flight)",
            pool.name,
            backends.backends().len()
        );
        for b in backends.backends() {
            for port in &state.ports {
                port.send(Control::BackendRemoved(b.id));
            }
        }
    }
    out
}

/// A one-line summary of a reload report, for the log.
fn summary(report: &Value) -> String {
    let count = |v: &Value| v.as_array().map_or(0, Vec::len);
    let b = &report["backends"];
    let mut text = format!(
        "{} settings changed, backends +{} -{} ~{}",
        count(&report["changes"]),
        count(&b["added"]),
        count(&b["removed"]),
        count(&b["changed"]),
    );
    for r in report["restart_required"].as_array().into_iter().flatten() {
        text.push_str(&format!("; {}", r.as_str().unwrap_or_default()));
    }
    for r in report["replaced_runtime_changes"]
        .as_array()
        .into_iter()
        .flatten()
    {
        text.push_str(&format!("; replaced: {}", r.as_str().unwrap_or_default()));
    }
    text
}

fn described(b: &Backend) -> String {
    format!("{} {} ({})", b.id, b.url, b.addr)
}

/// Puts the running values back into the keys that only a restart can change, and describes
/// each that differed.
fn keep_restart_only(old: &Config, new: &mut Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut keep = |key: &str, was: String, wanted: String| {
        if was != wanted {
            out.push(format!(
                "{key}: {wanted} needs a restart (still {was} until then)"
            ));
        }
    };
    let (was, now) = (&old.process, &mut new.process);
    keep("port", was.port.to_string(), now.port.to_string());
    keep("bind", was.bind.to_string(), now.bind.to_string());
    keep("workers", was.workers.to_string(), now.workers.to_string());
    keep(
        "admin_port",
        was.admin_port.to_string(),
        now.admin_port.to_string(),
    );
    keep(
        "admin_bind",
        was.admin_bind.to_string(),
        now.admin_bind.to_string(),
    );
    keep(
        "buffer_size",
        old.limits.buffer_size.to_string(),
        new.limits.buffer_size.to_string(),
    );
    keep(
        "ssl.enabled",
        old.ssl.enabled.to_string(),
        new.ssl.enabled.to_string(),
    );
    keep(
        "ssl.redirect_http_port",
        format!("{:?}", old.ssl.redirect_http_port),
        format!("{:?}", new.ssl.redirect_http_port),
    );
    keep(
        "upgrade_socket",
        format!("{:?}", old.process.upgrade_socket),
        format!("{:?}", new.process.upgrade_socket),
    );
    keep(
        "shutdown_timeout",
        crate::config::format_duration(old.process.shutdown_timeout),
        crate::config::format_duration(new.process.shutdown_timeout),
    );
    // the per-IP counts are keyed by it: a release must find what its acquire counted
    keep(
        "ipv6_client_prefix",
        old.identity.ipv6_client_prefix.to_string(),
        new.identity.ipv6_client_prefix.to_string(),
    );
    new.identity.ipv6_client_prefix = old.identity.ipv6_client_prefix;
    // the table of buckets is made once; a reload keeps it, and every bucket in it
    keep(
        "rate_limit_max_keys",
        old.rate_limit_table.max_keys.to_string(),
        new.rate_limit_table.max_keys.to_string(),
    );
    new.rate_limit_table = old.rate_limit_table.clone();
    let (was, now) = (&old.process, &mut new.process);
    now.upgrade_socket = was.upgrade_socket.clone();
    now.shutdown_timeout = was.shutdown_timeout;
    now.port = was.port;
    now.bind = was.bind;
    now.workers = was.workers;
    now.admin_port = was.admin_port;
    now.admin_bind = was.admin_bind;
    new.limits.buffer_size = old.limits.buffer_size;
    new.ssl.enabled = old.ssl.enabled;
    new.ssl.redirect_http_port = old.ssl.redirect_http_port;
    out
}

/// `error` (a check between keys that failed once the restart-only keys got their running
/// values back), naming those keys when some were kept.
fn with_kept(error: String, restart: &[String]) -> String {
    let kept: Vec<&str> = restart.iter().filter_map(|r| r.split(':').next()).collect();
    if kept.is_empty() {
        return error;
    }
    format!(
        "{error} (the running value stays until a restart for {})",
        kept.join(", ")
    )
}

/// The top-level keys whose value changed, as `key: old -> new` (secrets redacted).
fn key_changes(old: &Config, new: &Config) -> Vec<String> {
    let as_map = |c: &Config| match serde_json::to_value(c.redacted()) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let (was, now) = (as_map(old), as_map(new));
    let mut out = Vec::new();
    for (key, value) in &now {
        let before = was.get(key).unwrap_or(&Value::Null);
        if before != value {
            out.push(format!("{key}: {before} -> {value}"));
        }
    }
    for key in was.keys().filter(|k| !now.contains_key(*k)) {
        out.push(format!("{key}: {} -> null", was[key]));
    }
    out
}

/// What the admin API changed in the pool since the config was last loaded, as a reload that
/// puts the file's backends back will describe it.
fn runtime_changes(old: &PoolConfig, pool: &Pool) -> Vec<String> {
    let mut out = Vec::new();
    let from_file = |b: &Backend| {
        old.backends
            .iter()
            .find(|c| c.url == b.url && c.addr == b.addr)
    };
    for b in pool.backends() {
        match from_file(b) {
            None => out.push(format!(
                "backend {} ({}) was added through the admin API",
                b.id, b.url
            )),
            Some(c) if c.weight.max(1) != b.weight() => out.push(format!(
                "backend {} ({}) had its weight set to {} through the admin API (the file said {})",
                b.id,
                b.url,
                b.weight(),
                c.weight
            )),
            Some(_) => {}
        }
    }
    for c in &old.backends {
        let present = pool
            .backends()
            .iter()
            .any(|b| b.url == c.url && b.addr == c.addr);
        if !present {
            out.push(format!(
                "backend {} ({}) was removed through the admin API",
                c.url, c.addr
            ));
        }
    }
    out
}

/// The new policy; the sticky table carries over when the sticky settings did not change.
fn policy_for(old: &PoolConfig, new: &PoolConfig, running: &Policy) -> Policy {
    let mut policy = Policy::from_pool(new);
    let (was, now) = (&old.sticky, &new.sticky);
    let same_sticky = was.enabled == now.enabled
        && was.mode == now.mode
        && was.max_entries == now.max_entries
        && was.ttl == now.ttl;
    if same_sticky {
        if let (Some(Sticky::Ip(table)), Some(Sticky::Ip(_))) = (&running.sticky, &policy.sticky) {
            policy.sticky = Some(Sticky::Ip(Arc::clone(table)));
        }
    }
    policy
}

/// Announces backends that left the pool to the workers (they close idle connections to them)
/// and keeps the ones with requests in flight listed as draining.
fn retire(balancer: &Balancer, ports: &[ControlPort], synced: &Synced) {
    for b in &synced.removed {
        for port in ports {
            port.send(Control::BackendRemoved(b.id));
        }
        log::info!(
            "backend {} removed: {} ({}) ({} requests in flight)",
            b.id,
            b.url,
            b.addr,
            b.active_requests()
        );
        balancer.retire(Arc::clone(b));
    }
    for b in &synced.added {
        log::info!(
            "backend {} added: {} ({}) (weight {})",
            b.id,
            b.url,
            b.addr,
            b.weight()
        );
    }
    for c in &synced.changed {
        log::info!("{c}");
    }
}

/// Restarts the health checks of each pool whose settings changed (or that is new) and stops
/// those of the pools gone; the warnings of checks that could not start. A pool whose active
/// checks are off from now on has the backends they had taken down up again (passive
/// detection, when on, takes over).
fn restart_health(
    state: &AdminState,
    old: &Config,
    new: &Config,
    gone: &[crate::pools::Member],
) -> Vec<String> {
    let mut warnings = Vec::new();
    for pool in gone {
        state.live.stop_health(&pool.name);
    }
    let table = state.pools.current();
    // bounded: the file's pools
    for (name, pool) in new.all_pools() {
        let settings = HealthSettings::from_pool(pool);
        let was = old
            .all_pools()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| HealthSettings::from_pool(p));
        let Some(member) = table.by_name(name) else {
            continue;
        };
        let running = state.live.health.lock().iter().any(|(n, _)| n == name);
        if was.as_ref() == Some(&settings) && running == settings.active() {
            continue;
        }
        state.live.stop_health(name);
        if !settings.active() {
            for b in member.balancer.current().backends() {
                if !b.is_healthy() {
                    b.set_healthy(true);
                    log::info!("{} is up again: active health checks are off", b.url);
                }
            }
            continue;
        }
        match crate::health::start(Arc::clone(&member.balancer), settings) {
            Ok(h) => state.live.set_health(name, h),
            Err(e) => {
                let w = format!("cannot restart the health checks of pool {name}: {e}");
                log::error!("{w}");
                warnings.push(w);
            }
        }
    }
    warnings
}

/// Starts the DNS refresh if the config asks for one and has names to refresh.
pub(super) fn start_dns(state: &AdminState) -> std::io::Result<()> {
    let config = state.config.read();
    let names = config
        .all_pools()
        .flat_map(|(_, p)| &p.backends)
        .any(|b| crate::dns::is_name(&b.host));
    if config.dns.refresh.is_zero() || !names {
        return Ok(());
    }
    let refresh = Arc::new(Names {
        config: Arc::clone(&state.config),
        pools: Arc::clone(&state.pools),
        ports: state.ports.clone(),
    });
    let handle = crate::dns::start(refresh, config.dns.refresh)?;
    *state.live.dns.lock() = Some(handle);
    Ok(())
}

/// The DNS refresh's view of the proxy: the names in the running config, and the pools.
struct Names {
    config: Arc<RwLock<Config>>,
    pools: Arc<Pools>,
    ports: Vec<ControlPort>,
}

impl Refresh for Names {
    fn names(&self) -> (Vec<(String, String, u16)>, Option<Hosts>) {
        let config = self.config.read();
        let mut names: Vec<(String, String, u16)> = Vec::new();
        for b in config.all_pools().flat_map(|(_, p)| &p.backends) {
            if crate::dns::is_name(&b.host) && !names.iter().any(|(url, _, _)| *url == b.url) {
                names.push((b.url.clone(), b.host.clone(), b.port));
            }
        }
        let hosts = match config.dns.hosts() {
            Ok(hosts) => hosts,
            Err(e) => {
                log::warn!("dns: {e}; looking names up without it");
                None
            }
        };
        (names, hosts)
    }

    fn apply(&self, url: &str, addrs: &[SocketAddr]) {
        let mut config = self.config.write();
        let table = self.pools.current();
        let config = &mut *config;
        // bounded: the pools (a URL may be in several)
        let pools = std::iter::once((crate::config::DEFAULT_POOL, &mut config.pool)).chain(
            config
                .pools
                .iter_mut()
                .map(|p| (p.name.as_str(), &mut p.pool)),
        );
        for (name, pool) in pools {
            if let Some(member) = table.by_name(name) {
                self.apply_to(&member.balancer, pool, url, addrs);
            }
        }
    }
}

impl Names {
    /// `url` now resolves to `addrs`: its backends in `balancer` (whose keys are `config`) follow.
    fn apply_to(
        &self,
        balancer: &Arc<Balancer>,
        config: &mut PoolConfig,
        url: &str,
        addrs: &[SocketAddr],
    ) {
        let Some(first) = config.backends.iter().position(|b| b.url == url) else {
            return; // not in this pool, or a reload took it out meanwhile
        };
        let now: Vec<SocketAddr> = config
            .backends
            .iter()
            .filter(|b| b.url == url)
            .map(|b| b.addr)
            .collect();
        let mut sorted = now.clone();
        sorted.sort();
        if sorted == addrs {
            return;
        }
        let template: BackendConfig = config.backends[first].clone();
        let tls_settings = config.tls_of_backend(first).clone();
        // the TLS to this URL is the same whatever the address: take a sibling's
        let pool = balancer.current();
        let Some(sibling) = pool.backends().iter().find(|b| b.url == url) else {
            return; // removed by hand: the admin API's change stands until a reload
        };
        let tls = sibling.tls.clone();
        let wanted: Vec<_> = addrs
            .iter()
            .map(|&addr| {
                let mut cfg = template.clone();
                cfg.addr = addr;
                (cfg, tls.clone())
            })
            .collect();
        log::info!(
            "dns: {} now resolves to {}",
            template.host,
            addrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let synced = balancer.update(|pool| pool.sync(|b| b.url == url, &wanted));
        retire(balancer, &self.ports, &synced);
        // the running config follows, so that a reload compares against what is live
        let mut backends = Vec::with_capacity(config.backends.len());
        let mut tls_list = Vec::with_capacity(config.backends.len());
        for (i, b) in config.backends.iter().enumerate() {
            if i == first {
                for (cfg, _) in &wanted {
                    backends.push(cfg.clone());
                    tls_list.push(tls_settings.clone());
                }
            }
            if b.url != url {
                backends.push(b.clone());
                tls_list.push(config.tls_of_backend(i).clone());
            }
        }
        config.backends = backends;
        config.backend_tls = tls_list;
    }
}
