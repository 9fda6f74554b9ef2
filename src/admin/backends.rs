//! The backend operations of a pool: list, show, add, remove, switch on and off, reweigh. They
//! serve `/backends` (the `default` pool's, as in the original) and `/pools/{name}/backends`
//! (pool `name`'s) alike: [`Scope::of`] tells which pool a call acts on from its route.
//!
//! Adding reads the body with the config file's own rules (`config::backend_from_json`), resolves
//! the host here, on an admin thread, refuses an address of ferrule's own or a link-local one
//! (`config::check_backend_addr`), a `ca_file` outside the allowed directories ([`confined`]),
//! and the same scheme and address as a backend in the same pool (409); it gives an `https://`
//! backend its TLS client settings as at start (the pool's `backend_ca_file`), its CA file read
//! afresh; the new backend takes the next id (ids are never reused, and unique across pools).
//! Removing takes the backend
//! out of the pool at once (no new request goes to it), tells every worker to close its idle
//! connections to it, and keeps it in [`Admin::draining`] (listed as `draining`) until its last
//! request in flight ends; then the workers are told again, for connections that went idle during
//! the drain. Changes of membership and weight go through `Balancer::update`; states are flags on
//! the backend itself. An id that belongs to another pool answers 404 with a pointer to it
//! ([`elsewhere`]).
//!
//! Besides its state and counters, an entry carries what the dashboard (`dashboard.rs`) draws:
//! the recent health checks (`health_history`), the response-time histogram (`latency`) and
//! whether it was removed and is draining its last requests (`removed`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::{json_object, Admin, ApiError, Call};
use crate::balancer::{Backend, Balancer, State};
use crate::config::describe;
use crate::config::{self, BackendConfig, BackendTls, Config, Scheme};
use crate::httpd::message::Response;
use crate::stats::LATENCY_BOUNDS_MS;
use crate::worker::Control;

/// A backend of pool `pool` as the admin API shows it; `removed`: taken out of the pool, its
/// last requests still in flight (listed until they end); `slow_start_ms`: the pool's
/// `slow_start`, to show a ramp under way.
pub fn backend_json(b: &Backend, pool: &str, removed: bool, slow_start_ms: u64) -> Value {
    let state = b.state();
    let now_ms = crate::timer::clock_ms(std::time::Instant::now());
    let slow_start = b.ramp_per_mille(slow_start_ms, now_ms).map(|share| {
        let since = b.back_since().unwrap_or(now_ms);
        json!({
            "share_percent": share / 10,
            "remaining_ms": (since + slow_start_ms).saturating_sub(now_ms),
        })
    });
    let ejected_remaining_ms = b.ejected_until().map(|t| t.saturating_sub(now_ms));
    let (last_check, last_error, history) = {
        let health = b.health.lock();
        let history: Vec<Value> = health
            .history
            .iter()
            .map(|&(ms, ok)| json!({"time_ms": ms, "ok": ok}))
            .collect();
        (health.last_check, health.last_error.clone(), history)
    };
    let in_flight = b.active_requests();
    let (buckets, sum_ms) = b.requests.latency.snapshot();
    json!({
        "id": b.id,
        "pool": pool,
        "url": b.url,
        "addr": b.addr.to_string(),
        "weight": b.weight(),
        "max_conns": b.max_conns(),
        "state": state.name(),
        // the original's name: taking new requests
        "alive": state == State::Up,
        "healthy": b.is_healthy(),
        "enabled": b.is_enabled(),
        // requests in flight on this backend now; `active_connections` is the original's name
        "in_flight": in_flight,
        "active_connections": in_flight,
        "total_requests": b.total_requests(),
        "failures": b.failures.load(std::sync::atomic::Ordering::Relaxed),
        // slow start under way: the share of its weight's requests it takes now, and for how
        // long still (null: none)
        "slow_start": slow_start,
        // outlier detection: ejections ever, and what is left of the current one (null: none)
        "ejections": b.ejections(),
        "ejected_remaining_ms": ejected_remaining_ms,
        "last_check": last_check.map(|(ms, ok)| json!({
            "time": rfc3339(ms),
            "time_ms": ms,
            "ok": ok,
        })),
        "last_error": last_error,
        "removed": removed,
        // the latest active checks, oldest first (at most `HealthInfo::HISTORY`)
        "health_history": history,
        // response times: counts per bucket (not cumulative; the last is above every bound)
        "latency": {
            "bounds_ms": LATENCY_BOUNDS_MS,
            "buckets": buckets,
            "sum_ms": sum_ms,
        },
    })
}

/// The pool a call acts on: `/backends...` the `default` pool, `/pools/{name}/backends...` pool
/// `name`; and where the id is among the call's parameters.
pub(super) struct Scope {
    pub name: Arc<str>,
    pub balancer: Arc<Balancer>,
    /// The index of `{id}` among the call's parameters.
    id_at: usize,
}

impl Scope {
    /// A backend of this pool as the admin API shows it ([`backend_json`]).
    fn json(&self, b: &Backend, removed: bool) -> Value {
        backend_json(b, &self.name, removed, self.balancer.policy().slow_start_ms)
    }
}

impl Scope {
    pub fn of(admin: &Admin, call: &Call<'_>) -> Result<Scope, ApiError> {
        let table = admin.state.pools.current();
        if !call.route.starts_with("/pools/") {
            let m = table.default();
            return Ok(Scope {
                name: Arc::clone(&m.name),
                balancer: Arc::clone(&m.balancer),
                id_at: 0,
            });
        }
        let name = call.param(0);
        let m = table.by_name(name).ok_or_else(|| no_pool(name))?;
        Ok(Scope {
            name: Arc::clone(&m.name),
            balancer: Arc::clone(&m.balancer),
            id_at: 1,
        })
    }

    fn id(&self, call: &Call<'_>) -> Result<u64, ApiError> {
        parse_id(call.param(self.id_at))
    }

    /// Its backends, then its removed ones still draining, each with whether it was removed.
    pub fn listed(&self) -> Vec<(Arc<Backend>, bool)> {
        let pool = self.balancer.current();
        let kept = pool.backends().iter().map(|b| (Arc::clone(b), false));
        let retired = self.balancer.retired().into_iter();
        kept.chain(retired.map(|b| (b, true))).collect()
    }
}

/// `404 {"error": "no pool named \"x\""}`.
pub(super) fn no_pool(name: &str) -> ApiError {
    ApiError::new(404, format!("no pool named {name:?}"))
}

/// Where the admin API shows backend `id` of pool `pool`: `/backends/{id}` for `default`,
/// `/pools/{pool}/backends/{id}` for the others.
pub(super) fn location(pool: &str, id: u64) -> String {
    if pool == crate::config::DEFAULT_POOL {
        format!("/backends/{id}")
    } else {
        format!("/pools/{pool}/backends/{id}")
    }
}

/// Every backend of every pool, `default` first (each pool's, then its removed ones still
/// draining): its pool's name, the backend, whether it was removed.
pub(super) fn all(admin: &Admin) -> Vec<(Arc<str>, Arc<Backend>, bool)> {
    prune_draining(admin);
    let table = admin.state.pools.current();
    let mut out = Vec::new();
    for (_, m) in table.members() {
        let scope = Scope {
            name: Arc::clone(&m.name),
            balancer: Arc::clone(&m.balancer),
            id_at: 0,
        };
        out.extend(
            scope
                .listed()
                .into_iter()
                .map(|(b, removed)| (Arc::clone(&m.name), b, removed)),
        );
    }
    out
}

/// `id` is not in `scope`'s pool: a 404 that points to the pool that has it (`pool`,
/// `location` and a `Location` header), or a plain 404 when no pool has it.
fn elsewhere(admin: &Admin, scope: &Scope, id: u64) -> ApiError {
    let table = admin.state.pools.current();
    let found = table.members().find(|(_, m)| {
        m.name != scope.name
            && (m.balancer.current().get(id).is_some()
                || m.balancer.retired().iter().any(|b| b.id == id))
    });
    let Some((_, m)) = found else {
        return not_found(id);
    };
    let at = location(&m.name, id);
    let mut e = ApiError::new(
        404,
        format!(
            "id: backend {id} is not in pool {:?} but in pool {:?} (see {at})",
            scope.name, m.name
        ),
    );
    e.fields.push(("pool", Value::String(m.name.to_string())));
    e.fields.push(("location", Value::String(at.clone())));
    e.headers.push(("Location", at));
    e
}

pub(super) fn list(admin: &Admin, call: &Call<'_>) -> Result<Response, ApiError> {
    let scope = Scope::of(admin, call)?;
    prune_draining(admin);
    let list: Vec<Value> = scope
        .listed()
        .iter()
        .map(|(b, removed)| scope.json(b, *removed))
        .collect();
    let strategy = scope.balancer.current().strategy().name();
    Ok(Response::json(
        200,
        &json!({"pool": &*scope.name, "strategy": strategy, "backends": list}),
    ))
}

pub(super) fn get(admin: &Admin, call: &Call<'_>) -> Result<Response, ApiError> {
    let scope = Scope::of(admin, call)?;
    let id = scope.id(call)?;
    prune_draining(admin);
    let (b, removed) = scope
        .listed()
        .into_iter()
        .find(|(b, _)| b.id == id)
        .ok_or_else(|| elsewhere(admin, &scope, id))?;
    Ok(Response::json(200, &scope.json(&b, removed)))
}

pub(super) fn add(admin: &Admin, call: &Call<'_>) -> Result<Response, ApiError> {
    let scope = Scope::of(admin, call)?;
    let mut body = json_object(call.body)?;
    if let Some(Value::String(path)) = body.get("ca_file") {
        let real = confined(admin, path)?;
        body.insert("ca_file".into(), Value::String(real));
    }
    // validation and name resolution, outside any lock
    let (cfg, tls) = config::backend_from_json(&Value::Object(body))
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let config = admin.state.config.read().clone();
    // the pool's own keys (`backend_ca_file`, `max_conns`), as its config entry gives them
    let pool_config = config
        .all_pools()
        .find(|(name, _)| *name == &*scope.name)
        .map(|(_, pool)| pool.clone())
        .ok_or_else(|| no_pool(&scope.name))?;
    let mut own = vec![
        ("proxy", admin.state.proxy_addr),
        ("admin API", admin.own_addr),
    ];
    own.extend(
        config
            .own_listeners()
            .into_iter()
            .filter(|(what, _)| *what == "redirect"),
    );
    config::check_backend_addr(
        &cfg.url,
        cfg.addr,
        &own,
        &config.admin.allowed_backend_networks,
    )
    .map_err(|problem| ApiError::bad(format!("url: {problem}")))?;
    // the CA file as it is now (a fresh cache: a rotated CA is read again, not the one cached
    // under the same path at start)
    let fresh = crate::tls::ClientConfigs::new();
    let pool_at = crate::pool_prefix(&scope.name);
    let client_tls = crate::client_tls_of(&pool_config, &pool_at, &cfg, &tls, &fresh, "")
        .map_err(ApiError::bad)?;
    let warnings = warnings(&scope, &config, pool_config, &cfg, &tls);
    let added = scope.balancer.update(|pool| {
        // checked under the writer lock: another request may have added it meanwhile
        match pool.backends().iter().find(|b| same_target(b, &cfg)) {
            Some(b) => Err(ApiError::new(
                409,
                format!(
                    "url: {:?} is the same backend as backend {} ({:?}) of pool {:?}: both reach {} over {}",
                    cfg.url,
                    b.id,
                    b.url,
                    scope.name,
                    cfg.addr,
                    scheme_name(cfg.scheme)
                ),
            )),
            None => Ok(pool.add(&cfg, client_tls)),
        }
    })?;
    log::info!(
        "admin: backend {} added to pool {}: {} (weight {})",
        added.id,
        scope.name,
        added.url,
        added.weight()
    );
    for w in &warnings {
        log::warn!("backend {}: {w}", added.id);
    }
    let mut entry = scope.json(&added, false);
    if let Value::Object(map) = &mut entry {
        map.insert("warnings".into(), json!(warnings));
    }
    Ok(Response::json(201, &entry).with_header("Location", location(&scope.name, added.id)))
}

/// A file named through the API (`ca_file`): it must resolve, symlinks followed, to a regular
/// file under the config file's directory or under `admin_files_dir`; its resolved path is used
/// from then on. Anything else is refused with one message, which says nothing of whether the
/// file exists or what it holds.
fn confined(admin: &Admin, path: &str) -> Result<String, ApiError> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Some(file) = &admin.state.live.path {
        let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
        roots.push(dir.map_or_else(|| PathBuf::from("."), Path::to_path_buf));
    }
    if let Some(dir) = &admin.state.config.read().admin.files_dir {
        roots.push(PathBuf::from(dir));
    }
    let refused = || {
        let under = if roots.is_empty() {
            "nowhere: the proxy was started without a config file and admin_files_dir is not set"
                .to_owned()
        } else {
            let dirs: Vec<String> = roots.iter().map(|r| format!("{}", r.display())).collect();
            format!(
                "under {} (the config file's directory, or admin_files_dir)",
                dirs.join(" or ")
            )
        };
        ApiError::bad(format!(
            "ca_file: {path:?} is refused: files named through the admin API must be {under}"
        ))
    };
    let real = std::fs::canonicalize(path).map_err(|_| refused())?;
    let inside = roots
        .iter()
        .filter_map(|root| std::fs::canonicalize(root).ok())
        .any(|root| real.starts_with(root));
    if !inside || !real.is_file() {
        return Err(refused());
    }
    real.into_os_string().into_string().map_err(|_| refused())
}

fn scheme_name(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    }
}

pub(super) fn delete(admin: &Admin, call: &Call<'_>) -> Result<Response, ApiError> {
    let scope = Scope::of(admin, call)?;
    let id = scope.id(call)?;
    let removed = scope.balancer.update(|pool| {
        let b = Arc::clone(pool.get(id)?);
        // no new request from a worker still holding the old pool either
        b.set_draining();
        pool.remove(id)
    });
    let Some(b) = removed else {
        return Err(missing(admin, &scope, id));
    };
    for port in &admin.state.ports {
        port.send(Control::BackendRemoved(id));
    }
    let in_flight = b.active_requests();
    log::info!(
        "admin: backend {id} removed from pool {}: {} ({in_flight} requests in flight)",
        scope.name,
        b.url
    );
    let body = json!({"id": id, "url": b.url, "in_flight": in_flight, "draining": in_flight > 0});
    if in_flight == 0 {
        return Ok(Response::json(200, &body));
    }
    scope.balancer.retire(b);
    Ok(Response::json(202, &body))
}

/// Forgets the retired backends whose last request ended (see [`crate::Balancer::retire`]), and
/// tells the workers again to close idle connections to them.
pub(super) fn prune_draining(admin: &Admin) {
    let table = admin.state.pools.current();
    // bounded: the pools of the table
    for (_, m) in table.members() {
        for b in m.balancer.prune_retired() {
            for port in &admin.state.ports {
                port.send(Control::BackendRemoved(b.id));
            }
            log::info!("admin: backend {} drained: {}", b.id, b.url);
        }
    }
}

/// The states `PATCH` may set.
#[derive(Debug, Clone, Copy)]
enum Wanted {
    Up,
    Draining,
    Disabled,
}

impl Wanted {
    fn name(self) -> &'static str {
        match self {
            Wanted::Up => "up",
            Wanted::Draining => "draining",
            Wanted::Disabled => "disabled",
        }
    }
}

pub(super) fn patch(admin: &Admin, call: &Call<'_>) -> Result<Response, ApiError> {
    let scope = Scope::of(admin, call)?;
    let id = scope.id(call)?;
    let body = json_object(call.body)?;
    check_keys(&body, &["weight", "state"])?;
    let weight = body.get("weight").map(weight_of).transpose()?;
    let state = body.get("state").map(state_of).transpose()?;
    if weight.is_none() && state.is_none() {
        return Err(ApiError::bad(
            "body: nothing to change (give weight, state or both)",
        ));
    }
    // under the pool's writer lock, like a DELETE: a backend being removed is never switched
    // back on
    let b = change(admin, &scope, id, |pool, b| {
        if let Some(w) = weight {
            pool.set_weight(id, w);
        }
        match state {
            Some(Wanted::Up) => {
                b.set_enabled(true);
                b.set_healthy(true);
            }
            Some(Wanted::Draining) => b.set_draining(),
            Some(Wanted::Disabled) => b.set_enabled(false),
            None => {}
        }
    })?;
    let what: Vec<String> = weight
        .map(|w| format!("weight {w}"))
        .into_iter()
        .chain(state.map(|s| format!("state {}", s.name())))
        .collect();
    log::info!(
        "admin: backend {id} of pool {}: {}",
        scope.name,
        what.join(", ")
    );
    Ok(Response::json(200, &scope.json(&b, false)))
}

/// `{"alive": false}` disables the backend; `{"alive": true}` enables it and marks it healthy.
pub(super) fn put_status(admin: &Admin, call: &Call<'_>) -> Result<Response, ApiError> {
    let scope = Scope::of(admin, call)?;
    let id = scope.id(call)?;
    let body = json_object(call.body)?;
    check_keys(&body, &["alive"])?;
    let alive = match body.get("alive") {
        Some(Value::Bool(alive)) => *alive,
        Some(other) => {
            let found = describe(other);
            return Err(ApiError::bad(format!(
                "alive: expected true or false, found {found}"
            )));
        }
        None => return Err(ApiError::bad("alive: missing (true or false)")),
    };
    let b = change(admin, &scope, id, |_, b| {
        b.set_enabled(alive);
        if alive {
            b.set_healthy(true);
        }
    })?;
    log::info!(
        "admin: backend {id} of pool {} {}",
        scope.name,
        if alive { "enabled" } else { "disabled" }
    );
    Ok(Response::json(200, &scope.json(&b, false)))
}

/// Applies `edit` to the backend `id` of `scope`'s pool through `Balancer::update` (serialised
/// with every other change); a removed one (draining or gone) is not found.
fn change(
    admin: &Admin,
    scope: &Scope,
    id: u64,
    edit: impl FnOnce(&mut crate::balancer::Pool, &Backend),
) -> Result<Arc<Backend>, ApiError> {
    let changed = scope.balancer.update(|pool| {
        let b = Arc::clone(pool.get(id)?);
        edit(pool, &b);
        Some(b)
    });
    changed.ok_or_else(|| missing(admin, scope, id))
}

/// Backend `id` is not (or no longer) in `scope`'s pool: removed and draining, in another pool,
/// or nowhere.
fn missing(admin: &Admin, scope: &Scope, id: u64) -> ApiError {
    if scope.balancer.retired().iter().any(|b| b.id == id) {
        ApiError::new(
            404,
            format!("id: backend {id} was removed (it is draining its last requests)"),
        )
    } else {
        elsewhere(admin, scope, id)
    }
}

fn parse_id(text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>().map_err(|_| {
        // digits beyond u64: a number, but no backend has it
        let message = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            format!("id: no backend with id {}", text.get(..40).unwrap_or(text))
        } else {
            format!("id: {text:?} is not a backend id (ids are numbers)")
        };
        ApiError::new(404, message)
    })
}

fn not_found(id: u64) -> ApiError {
    ApiError::new(404, format!("id: no backend with id {id}"))
}

/// Every key of `body` is one of `known`.
fn check_keys(body: &Map<String, Value>, known: &[&str]) -> Result<(), ApiError> {
    match body.keys().find(|k| !known.contains(&k.as_str())) {
        Some(key) => Err(ApiError::bad(format!(
            "{key}: unknown key (expected one of: {})",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// `weight`: an integer from 1 to 10000, as in the config file.
fn weight_of(value: &Value) -> Result<u32, ApiError> {
    let Some(n) = value.as_u64() else {
        let problem = match value {
            Value::Number(n) if n.is_i64() => "must be at least 1".to_owned(),
            other => format!("expected an integer, found {}", describe(other)),
        };
        return Err(ApiError::bad(format!("weight: {problem}")));
    };
    match n {
        0 => Err(ApiError::bad("weight: must be at least 1")),
        1..=10_000 => Ok(n as u32),
        _ => Err(ApiError::bad("weight: must be at most 10000")),
    }
}

fn state_of(value: &Value) -> Result<Wanted, ApiError> {
    match value.as_str() {
        Some("up") => Ok(Wanted::Up),
        Some("draining") => Ok(Wanted::Draining),
        Some("disabled") => Ok(Wanted::Disabled),
        Some("down") => Err(ApiError::bad(
            "state: \"down\" is set by health checks only (expected \"up\", \"draining\" or \"disabled\")",
        )),
        _ => Err(ApiError::bad(format!(
            "state: expected \"up\", \"draining\" or \"disabled\", found {}",
            describe(value)
        ))),
    }
}

/// The same backend: the same scheme and the same address (`http://localhost:8082` and
/// `http://127.0.0.1:8082` are one), whatever the URLs' text.
fn same_target(b: &Backend, cfg: &BackendConfig) -> bool {
    b.scheme == cfg.scheme && b.addr == cfg.addr
}

/// What the config file would warn about this entry of a pool with `pool`'s keys (unused TLS
/// keys), and a backend of the pool already at the same address over another scheme.
fn warnings(
    scope: &Scope,
    config: &Config,
    pool: crate::config::PoolConfig,
    cfg: &BackendConfig,
    tls: &BackendTls,
) -> Vec<String> {
    let mut alone = config.clone();
    alone.pool = pool;
    alone.pools.clear();
    alone.routes.clear();
    alone.pool.backends = vec![cfg.clone()];
    alone.pool.backend_tls = vec![tls.clone()];
    let mut out: Vec<String> = alone
        .warnings()
        .into_iter()
        .filter_map(|w| {
            w.strip_prefix("backends[0]")
                .map(|rest| format!("this backend{rest}"))
        })
        .collect();
    for b in scope.balancer.current().backends() {
        if b.addr == cfg.addr {
            out.push(format!(
                "resolves to the same address as backend {} ({}): that server gets both their shares",
                b.id, b.url
            ));
        }
    }
    out
}

/// Milliseconds since the Unix epoch as RFC 3339 in UTC (`2026-12-02T10:20:30.123Z`).
pub(super) fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let rem = secs % 86_400;
    let (year, month, day) = crate::http::date::civil(i64::try_from(secs / 86_400).unwrap_or(0));
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn weights_and_states_are_checked_with_the_field_named() {
        assert_eq!(weight_of(&json!(5)).ok(), Some(5));
        for (bad, says) in [
            (json!(0), "weight: must be at least 1"),
            (json!(-3), "weight: must be at least 1"),
            (json!(10_001), "weight: must be at most 10000"),
            (
                json!("2"),
                "weight: expected an integer, found the string \"2\"",
            ),
            (
                json!(1.5),
                "weight: expected an integer, found the number 1.5",
            ),
        ] {
            assert_eq!(weight_of(&bad).err().map(|e| e.message), Some(says.into()));
        }
        assert!(matches!(state_of(&json!("draining")), Ok(Wanted::Draining)));
        let e = state_of(&json!("down")).err().map(|e| e.message);
        assert!(e.is_some_and(|m| m.starts_with("state: \"down\" is set by health checks")));
    }
}
