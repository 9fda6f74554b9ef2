//! `GET /pools`, `GET /pools/{name}` and `GET /routes`: the pools and routes of the published
//! table (`crate::pools::Table`) as the admin API shows them.
//!
//! The backend operations under `/pools/{name}/backends` are `backends.rs`'s (the same handlers
//! as `/backends`, their pool taken from the path). A pool's entry: its name, its strategy, its
//! backends counted by state (`size` the backends in the pool; `removed` the ones taken out and
//! still draining their last requests, which `states` does not count), the routes to it (by
//! name, in file order), whether it is the `default` pool and whether requests no route matches
//! go to it. `GET /routes` lists every route in file order with its request count (kept across
//! reloads that keep the route's name).

use serde_json::{json, Value};

use super::backends::{backend_json, no_pool, prune_draining};
use super::{Admin, ApiError, Call};
use crate::balancer::State;
use crate::httpd::message::Response;
use crate::pools::{Member, Table};

/// A pool's entry of `GET /pools`.
fn summary(table: &Table, index: usize, m: &Member) -> serde_json::Map<String, Value> {
    let pool = m.balancer.current();
    let mut states = [0u64; 5];
    let order = [
        State::Up,
        State::Down,
        State::Draining,
        State::Disabled,
        State::Ejected,
    ];
    for b in pool.backends() {
        let now = b.state();
        if let Some(i) = order.iter().position(|s| *s == now) {
            states[i] += 1;
        }
    }
    let by_state: serde_json::Map<String, Value> = order
        .iter()
        .zip(states)
        .map(|(s, n)| (s.name().to_owned(), json!(n)))
        .collect();
    let routes: Vec<&str> = table
        .routes()
        .filter(|r| r.pool == &*m.name)
        .map(|r| r.name)
        .collect();
    let is_default = index == 0;
    let v = json!({
        "name": &*m.name,
        "default": is_default,
        "serves_unmatched": is_default && table.default_serves(),
        "strategy": pool.strategy().name(),
        "size": pool.backends().len(),
        "states": by_state,
        "removed": m.balancer.retired().len(),
        "routes": routes,
        // the retry budget's counts: retries it allowed and refused
        "retries": m.balancer.budget.retries(),
        "retries_refused": m.balancer.budget.refused(),
    });
    match v {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

pub(super) fn list(admin: &Admin, _: &Call<'_>) -> Result<Response, ApiError> {
    prune_draining(admin);
    let table = admin.state.pools.current();
    let pools: Vec<Value> = table
        .members()
        .map(|(i, m)| Value::Object(summary(&table, i, m)))
        .collect();
    Ok(Response::json(200, &json!({"pools": pools})))
}

/// One pool: its entry, plus its backends as `/pools/{name}/backends` lists them.
pub(super) fn get(admin: &Admin, call: &Call<'_>) -> Result<Response, ApiError> {
    prune_draining(admin);
    let name = call.param(0);
    let table = admin.state.pools.current();
    let (i, m) = table
        .members()
        .find(|(_, m)| &*m.name == name)
        .ok_or_else(|| no_pool(name))?;
    let mut entry = summary(&table, i, m);
    let kept = m.balancer.current();
    let retired = m.balancer.retired();
    let slow_start = kept.policy().slow_start_ms;
    let list: Vec<Value> = kept
        .backends()
        .iter()
        .map(|b| backend_json(b, &m.name, false, slow_start))
        .chain(
            retired
                .iter()
                .map(|b| backend_json(b, &m.name, true, slow_start)),
        )
        .collect();
    entry.insert("backends".into(), Value::Array(list));
    Ok(Response::json(200, &Value::Object(entry)))
}

/// Every route in file order, and whether requests no route matches go to `default`.
pub(super) fn routes(admin: &Admin, _: &Call<'_>) -> Result<Response, ApiError> {
    let table = admin.state.pools.current();
    let routes: Vec<Value> = table
        .routes()
        .map(|r| {
            json!({
                "name": r.name,
                "host": r.spec.host,
                "path_prefix": r.spec.path_prefix,
                "pool": r.pool,
                "strip_prefix": r.spec.strip_prefix,
                "requests": r.requests,
            })
        })
        .collect();
    Ok(Response::json(
        200,
        &json!({"routes": routes, "unmatched_to_default": table.default_serves()}),
    ))
}
