//! `pools` and `routes`: the pools besides `default` (the top level's), and the rules that send
//! a request to one of them by its host and path (`crate::route` does the matching).
//!
//! A pool is an object of the keys a pool takes (`pool.rs`); a key it leaves out comes from the
//! top level, except its backends (its own, never inherited) and `sticky_cookie_name`, which
//! defaults to `<the top level's cookie name>_<pool name>` so that two pools never overwrite each
//! other's cookie in a browser. Pools are read in name order (the order of the file does not
//! matter, as for every other key).
//!
//! A route is `{"host"?, "path_prefix"?, "pool", "strip_prefix"?, "name"?, "rate_limit"?}`
//! (`rate_limit.rs` reads the last). What is checked here,
//! each fault naming the route by its index: the pool exists (with a suggestion), the host is a
//! name, an address or `*.` plus a name (stored lowercase), the prefix is a path, a
//! `strip_prefix` has something to strip, no two routes have the same host and prefix, no two
//! the same name, and there are at most [`MAX_ROUTES`].

use serde_json::{Map, Value};

use super::backend::BackendSpec;
use super::de::{self, edit_distance, expected};
use super::error::{invalid, ConfigError};
use super::key;
use super::pool::{PoolConfig, PoolFile};
use super::{Config, NamedPool, RouteConfig, DEFAULT_POOL};

/// Most routes a config may have: the lookup does not slow down with more (see `route.rs`), but
/// a file with more is more likely generated wrong than meant.
pub const MAX_ROUTES: usize = 10_000;
/// Longest `path_prefix`, in bytes.
pub const MAX_PREFIX: usize = 1024;
/// Longest pool name.
const MAX_POOL_NAME: usize = 64;
/// The keys of a route, in the order an unknown key's message lists them.
const ROUTE_KEYS: [&str; 6] = [
    "host",
    "path_prefix",
    "pool",
    "strip_prefix",
    "name",
    "rate_limit",
];

/// `pools` and `routes` as the file gives them, read once the top-level pool is known.
#[derive(Debug, Default)]
pub(super) struct RoutingFile {
    pub pools: Option<Value>,
    pub routes: Option<Value>,
}

/// The pools, each with its backends still to resolve, and the routes.
pub(super) type Routing = (Vec<(NamedPool, Vec<BackendSpec>)>, Vec<RouteConfig>);

impl RoutingFile {
    /// Reads `pools` or `routes` (kept as given until [`RoutingFile::resolve`]).
    pub fn read(&mut self, key: &str, value: &Value) -> Option<Result<(), ConfigError>> {
        let slot = match key {
            "pools" => &mut self.pools,
            "routes" => &mut self.routes,
            _ => return None,
        };
        *slot = (!value.is_null()).then(|| value.clone());
        Some(Ok(()))
    }

    /// Every pool, built over `top` (the top-level pool), then every route checked against them.
    pub fn resolve(self, top: &PoolConfig) -> Result<Routing, ConfigError> {
        let pools = match &self.pools {
            None => Vec::new(),
            Some(Value::Object(map)) => pools(map, top)?,
            Some(other) => return Err(invalid("pools", expected("an object", other))),
        };
        let routes = match &self.routes {
            None => Vec::new(),
            Some(Value::Array(list)) => routes(list, &pools)?,
            Some(other) => return Err(invalid("routes", expected("an array", other))),
        };
        Ok((pools, routes))
    }
}

fn pools(
    map: &Map<String, Value>,
    top: &PoolConfig,
) -> Result<Vec<(NamedPool, Vec<BackendSpec>)>, ConfigError> {
    let mut names: Vec<&String> = map.keys().collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let at = format!("pools.{}", de::key_text(name));
        check_pool_name(name).map_err(|problem| invalid(&at, problem))?;
        let value = &map[name];
        let mut file = PoolFile::default();
        key::read_object(value, &at, &mut file)?;
        let (mut pool, specs) = PoolConfig::resolve(file, Some(top), &at)?;
        let own_cookie = value
            .get("sticky_cookie_name")
            .is_some_and(|v| !v.is_null());
        if !own_cookie {
            pool.sticky.cookie_name = format!("{}_{name}", top.sticky.cookie_name);
        }
        let named = NamedPool {
            name: name.clone(),
            pool,
        };
        out.push((named, specs));
    }
    Ok(out)
}

fn check_pool_name(name: &str) -> Result<(), String> {
    if name == DEFAULT_POOL {
        return Err("the top-level backends are the pool named \"default\"".into());
    }
    let valid = !name.is_empty()
        && name.len() <= MAX_POOL_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a pool name (1 to {MAX_POOL_NAME} letters, digits, '_', '-' or '.')"
        ))
    }
}

fn routes(
    list: &[Value],
    pools: &[(NamedPool, Vec<BackendSpec>)],
) -> Result<Vec<RouteConfig>, ConfigError> {
    if list.len() > MAX_ROUTES {
        let problem = format!("{} routes; at most {MAX_ROUTES} are allowed", list.len());
        return Err(invalid("routes", problem));
    }
    let names: Vec<&str> = std::iter::once(DEFAULT_POOL)
        .chain(pools.iter().map(|(p, _)| p.name.as_str()))
        .collect();
    let mut out: Vec<RouteConfig> = Vec::with_capacity(list.len());
    for (i, value) in list.iter().enumerate() {
        let at = format!("routes[{i}]");
        let route = route(value, &at, &names)?;
        let same = |r: &RouteConfig| {
            r.host == route.host
                && r.path_prefix.as_deref().unwrap_or("/")
                    == route.path_prefix.as_deref().unwrap_or("/")
        };
        if let Some(j) = out.iter().position(same) {
            return Err(invalid(
                &at,
                format!("the same host and path_prefix as routes[{j}]"),
            ));
        }
        if let Some(j) = out.iter().position(|r| r.name == route.name) {
            let problem = format!("{:?} is also routes[{j}]'s name", route.name);
            return Err(invalid(&format!("{at}.name"), problem));
        }
        out.push(route);
    }
    Ok(out)
}

/// One route, its own keys checked.
fn route(value: &Value, at: &str, pools: &[&str]) -> Result<RouteConfig, ConfigError> {
    let Value::Object(map) = value else {
        return Err(invalid(at, expected("an object", value)));
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    if let Some(unknown) = keys.iter().find(|k| !ROUTE_KEYS.contains(&k.as_str())) {
        let path = key::join(at, &de::key_text(unknown));
        return Err(invalid(&path, de::unknown_key(unknown, &ROUTE_KEYS)));
    }
    let text = |key: &str| -> Result<Option<&str>, ConfigError> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(invalid(&key::join(at, key), expected("a string", other))),
        }
    };
    let host = text("host")?
        .map(|h| check_host(h).map_err(|p| invalid(&key::join(at, "host"), p)))
        .transpose()?;
    let path_prefix = text("path_prefix")?
        .map(|p| check_prefix(p).map_err(|e| invalid(&key::join(at, "path_prefix"), e)))
        .transpose()?;
    let pool = match text("pool")? {
        Some(p) if pools.contains(&p) => p.to_owned(),
        Some(p) => {
            let problem = format!("no pool named {p:?}{}", suggestion(p, pools));
            return Err(invalid(&key::join(at, "pool"), problem));
        }
        None => {
            return Err(invalid(
                &key::join(at, "pool"),
                "missing (every route needs a pool)",
            ))
        }
    };
    let strip_prefix = match map.get("strip_prefix") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            let problem = expected("true or false", other);
            return Err(invalid(&key::join(at, "strip_prefix"), problem));
        }
    };
    if strip_prefix && path_prefix.as_deref().is_none_or(|p| p == "/") {
        let problem = "there is no path_prefix to strip (set one, or leave strip_prefix out)";
        return Err(invalid(&key::join(at, "strip_prefix"), problem));
    }
    let name = match text("name")? {
        Some("") => return Err(invalid(&key::join(at, "name"), "must not be empty")),
        Some(n) if n.len() > 256 || n.chars().any(char::is_control) => {
            let problem = "at most 256 characters, none of them control characters";
            return Err(invalid(&key::join(at, "name"), problem));
        }
        Some(n) => n.to_owned(),
        None => format!(
            "{}{}",
            host.as_deref().unwrap_or("*"),
            path_prefix.as_deref().unwrap_or("/")
        ),
    };
    let rate_limit = super::rate_limit::route_limit(map, at)?;
    Ok(RouteConfig {
        name,
        host,
        path_prefix,
        pool,
        strip_prefix,
        rate_limit,
    })
}

/// ` (did you mean "api"?)` for the nearest name within two edits, else nothing.
fn suggestion(given: &str, names: &[&str]) -> String {
    names
        .iter()
        .map(|n| (edit_distance(given, n), n))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map_or_else(String::new, |(_, n)| format!(" (did you mean {n:?}?)"))
}

/// A route's host: a name, an IPv4 address, a bracketed IPv6 address, or `*.` and a name.
/// Returned lowercase.
fn check_host(host: &str) -> Result<String, String> {
    let lower = host.to_ascii_lowercase();
    if let Some(inner) = lower.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match inner.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok(lower),
            Err(_) => Err(format!("{host:?} is not an IPv6 address in brackets")),
        };
    }
    let name = lower.strip_prefix("*.").unwrap_or(&lower);
    if name.contains('*') {
        return Err(format!(
            "{host:?}: a wildcard is \"*.\" and a name, as in \"*.example.com\""
        ));
    }
    if host.contains(':') || host.contains('/') {
        return Err(format!(
            "{host:?} is not a host name (no scheme, port or path: the port is ignored when \
             matching)"
        ));
    }
    if !is_name(name) {
        return Err(format!(
            "{host:?} is not a host name (letters, digits, '-' and '.', labels of 1 to 63)"
        ));
    }
    Ok(lower)
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A `path_prefix`: starts with `/`, no query, fragment, space or control byte.
fn check_prefix(prefix: &str) -> Result<String, String> {
    if !prefix.starts_with('/') {
        return Err(format!("{prefix:?} must start with \"/\""));
    }
    if prefix.len() > MAX_PREFIX {
        return Err(format!("longer than {MAX_PREFIX} bytes"));
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| matches!(c, '?' | '#' | ' ') || c.is_control())
    {
        return Err(format!(
            "{prefix:?} holds {c:?}: a prefix is matched against the path, which has no query, \
             fragment, space or control character"
        ));
    }
    Ok(prefix.to_owned())
}

impl Config {
    /// `pools` in the file's form (every key written, so that the text reads back the same).
    pub(super) fn write_routing(&self, out: &mut Map<String, Value>) {
        if !self.pools.is_empty() {
            let mut pools = Map::new();
            for p in &self.pools {
                let mut pool = Map::new();
                p.pool.write(&mut pool);
                pools.insert(p.name.clone(), Value::Object(pool));
            }
            out.insert("pools".into(), Value::Object(pools));
        }
        if !self.routes.is_empty() {
            let routes = self.routes.iter().map(route_value).collect();
            out.insert("routes".into(), Value::Array(routes));
        }
    }

    /// Warnings about pools and routes.
    pub(super) fn routing_warnings(&self, warnings: &mut Vec<String>) {
        for p in &self.pools {
            if !self.routes.iter().any(|r| r.pool == p.name) {
                warnings.push(format!(
                    "pools.{}: no route sends requests to it",
                    de::key_text(&p.name)
                ));
            }
            if p.pool.backends.is_empty() {
                warnings.push(format!(
                    "pools.{}: no backends configured: its requests will get 503",
                    de::key_text(&p.name)
                ));
            }
        }
    }
}

fn route_value(r: &RouteConfig) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), Value::String(r.name.clone()));
    if let Some(h) = &r.host {
        m.insert("host".into(), Value::String(h.clone()));
    }
    if let Some(p) = &r.path_prefix {
        m.insert("path_prefix".into(), Value::String(p.clone()));
    }
    m.insert("pool".into(), Value::String(r.pool.clone()));
    m.insert("strip_prefix".into(), Value::Bool(r.strip_prefix));
    if let Some(limit) = super::rate_limit::route_limit_value(&r.rate_limit) {
        m.insert("rate_limit".into(), limit);
    }
    Value::Object(m)
}
