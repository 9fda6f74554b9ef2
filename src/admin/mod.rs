//! The admin API: JSON over HTTP/1.1 on `admin_bind:admin_port`, on its own threads (never a
//! worker's), reading the live pool and counters and changing the pool.
//!
//! Files: `crate::httpd` is the HTTP server (1 MiB bodies, timeouts, bounded connections; its
//! header says why it is not `tiny_http`) and `httpd/message.rs` its heads and answers (the https
//! redirect listener shares them); this file the routes, the screening of each head (in
//! [`Admin::gate`]'s order), the token check and the error shape; `guard.rs` what a request must
//! show before its token is looked at (the `Host` allow-list, its origin, a JSON body type) and
//! the slowing of wrong tokens; `backends.rs` the `/backends` endpoints and the drain of
//! removed backends; `metrics.rs` `/stats` and the Prometheus `/metrics`; `dashboard.rs` the
//! HTML dashboard at `/` and `/dashboard` (open: the page holds no data, it asks for the token
//! and sends it to the JSON endpoints); `openapi.rs` the
//! OpenAPI document of all of it (`tests/admin.rs` calls every operation it lists and checks the
//! router serves nothing else).
//!
//! Every answer is JSON but `/metrics`; every error is `{"error": "<field or part>: <problem>"}`
//! with a 4xx status: 400 bad input (no `Host` on HTTP/1.1 too), 401 no or wrong token (with
//! `WWW-Authenticate: Bearer`), 403 a browser request from another origin, 404 unknown path or
//! backend, 405 a method the path does not take (with `Allow`), 409 the same backend again, 413
//! a body over 1 MiB, 415 a body that is not `application/json`, 421 a `Host` the API does not
//! answer to. The pool is changed only through `Balancer::update`, which serialises writers.

mod backends;
pub(crate) mod dashboard;
mod guard;
mod metrics;
mod openapi;
mod pools;
mod reload;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::{json, Value};

use crate::balancer::Balancer;
use crate::config::Config;
pub use crate::httpd::message::MAX_BODY;
use crate::httpd::message::{Head, Response};
use crate::httpd::Server;
pub use crate::httpd::MAX_CONNECTIONS;
use crate::pools::Pools;
use crate::stats::WorkerStats;
use crate::tls::{ClientConfigs, ServerTls};
use crate::worker::ControlPort;

pub use self::backends::backend_json;
pub use self::reload::Live;

/// What the admin API reads and changes.
pub struct AdminState {
    /// The pools and routes.
    pub pools: Arc<Pools>,
    /// Each worker's counters, by worker index.
    pub workers: Vec<Arc<WorkerStats>>,
    /// Each worker's control port: removed backends are announced there (`BackendRemoved`).
    pub ports: Vec<ControlPort>,
    /// TLS termination (`None`: plain HTTP); its certificate files are the config's `ssl` ones.
    pub tls: Option<Arc<ServerTls>>,
    /// The configuration in force (as loaded, then as reloaded, with the backends DNS found):
    /// `GET /config`, `admin_token`, and what backends added later inherit (`backend_ca_file`,
    /// `max_conns`).
    pub config: Arc<RwLock<Config>>,
    /// The TLS client configurations built at start (a backend added later reads its CA file
    /// afresh: see `backends.rs`).
    pub client_configs: ClientConfigs,
    /// The address the proxy accepts clients on, as bound (its port picked when `port` is 0): a
    /// backend added there would loop.
    pub proxy_addr: SocketAddr,
    /// What a reload changes besides the pool: the workers' settings, the health and DNS threads.
    pub live: Live,
}

impl AdminState {
    /// The `default` pool's balancer (`/backends`).
    pub fn balancer(&self) -> Arc<Balancer> {
        self.pools.default_balancer()
    }
}

/// The running admin API (and the health and DNS threads, which a reload restarts).
pub struct AdminHandle {
    server: Server,
    admin: Arc<Admin>,
}

impl AdminHandle {
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Re-reads the config file and applies it (`SIGHUP`; `POST /reload` does the same): what
    /// changed, or why nothing did. See `admin/reload.rs`.
    pub fn reload(&self) -> Result<Value, String> {
        reload::reload(&self.admin)
    }

    /// Something another thread can reload with (the `SIGHUP` thread).
    pub fn reloader(&self) -> Reloader {
        Reloader(Arc::clone(&self.admin))
    }

    /// The active health checks of pool `pool`, started after the admin API (a reload
    /// restarts them).
    pub fn set_health(&self, pool: &str, checks: crate::health::HealthHandle) {
        self.admin.state.live.set_health(pool, checks);
    }

    /// Stops the health and DNS threads, then the admin API (and waits for them).
    pub fn stop(&mut self) {
        self.admin.state.live.stop_threads();
        self.server.stop();
    }
}

/// Starts the admin API on `addr` (see [`start_on`]).
pub fn start(addr: SocketAddr, state: AdminState) -> io::Result<AdminHandle> {
    start_on(crate::httpd::bind(addr)?, state)
}

/// Starts the admin API on a bound listener (this process's, or one handed over), and the DNS
/// refresh when the config has names to refresh.
pub fn start_on(listener: std::net::TcpListener, state: AdminState) -> io::Result<AdminHandle> {
    let admin = Arc::new(Admin {
        own_addr: listener.local_addr()?,
        state,
        started: std::time::SystemTime::now(),
        reloading: parking_lot::Mutex::new(()),
        throttle: guard::Throttle::default(),
    });
    reload::start_dns(&admin.state)?;
    let server = Server::on_listener(listener, Arc::clone(&admin), "ferrule-admin")?;
    Ok(AdminHandle { server, admin })
}

/// Reloads the config (see [`AdminHandle::reload`]); cheap to clone.
#[derive(Clone)]
pub struct Reloader(Arc<Admin>);

impl Reloader {
    pub fn reload(&self) -> Result<Value, String> {
        reload::reload(&self.0)
    }
}

/// The admin API's own state around [`AdminState`].
struct Admin {
    state: AdminState,
    /// The admin API's own address, as bound.
    own_addr: SocketAddr,
    started: std::time::SystemTime,
    /// One reload at a time.
    reloading: parking_lot::Mutex<()>,
    /// Recent wrong tokens by client address.
    throttle: guard::Throttle,
}

/// A failed request: its status, message, extra headers and extra fields of its body (besides
/// `error`: the pointer to a backend's pool, say).
#[derive(Debug)]
struct ApiError {
    status: u16,
    message: String,
    headers: Vec<(&'static str, String)>,
    fields: Vec<(&'static str, Value)>,
}

impl ApiError {
    fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            headers: Vec::new(),
            fields: Vec::new(),
        }
    }

    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }

    fn into_response(self) -> Response {
        let mut r = if self.fields.is_empty() {
            Response::error(self.status, &self.message)
        } else {
            let mut body = serde_json::Map::new();
            body.insert("error".into(), Value::String(self.message));
            body.extend(self.fields.into_iter().map(|(k, v)| (k.to_owned(), v)));
            Response::json(self.status, &Value::Object(body))
        };
        r.headers = self.headers;
        r
    }
}

/// One request as a handler sees it.
struct Call<'a> {
    /// The route's pattern (`/pools/{name}/backends/{id}`).
    route: &'static str,
    body: &'a [u8],
    /// The `{…}` segments of the route's path, in order.
    params: Vec<&'a str>,
}

impl Call<'_> {
    fn param(&self, i: usize) -> &str {
        self.params.get(i).copied().unwrap_or_default()
    }
}

type Handler = fn(&Admin, &Call<'_>) -> Result<Response, ApiError>;

/// A path (`{id}` matches one segment) and the methods it takes.
struct Route {
    path: &'static str,
    ops: &'static [(&'static str, Handler)],
}

/// Everything the router serves. `openapi.rs` documents each of these (and a test holds it to
/// that): add a route there too.
static ROUTES: &[Route] = &[
    Route {
        path: "/",
        ops: &[("GET", dashboard::page)],
    },
    Route {
        path: "/dashboard",
        ops: &[("GET", dashboard::page)],
    },
    Route {
        path: "/health",
        ops: &[("GET", health)],
    },
    Route {
        path: "/backends",
        ops: &[("GET", backends::list), ("POST", backends::add)],
    },
    Route {
        path: "/backends/{id}",
        ops: &[
            ("GET", backends::get),
            ("PATCH", backends::patch),
            ("DELETE", backends::delete),
        ],
    },
    Route {
        path: "/backends/{id}/status",
        ops: &[("PUT", backends::put_status)],
    },
    Route {
        path: "/pools",
        ops: &[("GET", pools::list)],
    },
    Route {
        path: "/pools/{name}",
        ops: &[("GET", pools::get)],
    },
    Route {
        path: "/pools/{name}/backends",
        ops: &[("GET", backends::list), ("POST", backends::add)],
    },
    Route {
        path: "/pools/{name}/backends/{id}",
        ops: &[
            ("GET", backends::get),
            ("PATCH", backends::patch),
            ("DELETE", backends::delete),
        ],
    },
    Route {
        path: "/pools/{name}/backends/{id}/status",
        ops: &[("PUT", backends::put_status)],
    },
    Route {
        path: "/routes",
        ops: &[("GET", pools::routes)],
    },
    Route {
        path: "/stats",
        ops: &[("GET", metrics::stats)],
    },
    Route {
        path: "/metrics",
        ops: &[("GET", metrics::prometheus)],
    },
    Route {
        path: "/config",
        ops: &[("GET", config)],
    },
    Route {
        path: "/openapi.json",
        ops: &[("GET", openapi)],
    },
    Route {
        path: "/reload-certs",
        ops: &[("POST", reload_certs)],
    },
    Route {
        path: "/reload",
        ops: &[("POST", reload::post)],
    },
    Route {
        path: "/reopen-logs",
        ops: &[("POST", reopen_logs)],
    },
];

/// Every `(method, path)` the router serves, paths as the OpenAPI document writes them.
pub fn routes() -> Vec<(&'static str, &'static str)> {
    ROUTES
        .iter()
        .flat_map(|r| r.ops.iter().map(|(m, _)| (*m, r.path)))
        .collect()
}

/// The route whose pattern `path` matches, and its `{…}` segments.
fn find_route(path: &str) -> Option<(&'static Route, Vec<&str>)> {
    ROUTES.iter().find_map(|route| {
        let mut params = Vec::new();
        let mut want = route.path.split('/');
        let mut have = path.split('/');
        loop {
            match (want.next(), have.next()) {
                (None, None) => return Some((route, params)),
                (Some(w), Some(h)) if w.starts_with('{') && !h.is_empty() => params.push(h),
                (Some(w), Some(h)) if w == h => {}
                _ => return None,
            }
        }
    })
}

impl crate::httpd::App for Admin {
    /// In this order (see `guard.rs`): the `Host`, the `Origin`, the token, the route and the
    /// method, the body's `Content-Type`; the first that fails is the answer.
    fn screen(&self, head: &Head) -> Option<Response> {
        self.gate(head).err().map(ApiError::into_response)
    }

    fn handle(&self, head: &Head, body: &[u8]) -> Response {
        let found = find_route(&head.path).and_then(|(route, params)| {
            let op = route.ops.iter().find(|(m, _)| *m == head.method)?;
            Some((op.1, route.path, params))
        });
        let Some((handler, route, params)) = found else {
            return Response::error(404, &format!("{}: no such endpoint", head.path));
        };
        let call = Call {
            route,
            body,
            params,
        };
        handler(self, &call).unwrap_or_else(ApiError::into_response)
    }

    fn tick(&self) {
        backends::prune_draining(self);
    }
}

impl Admin {
    /// What [`crate::httpd::App::screen`] checks, in order.
    fn gate(&self, head: &Head) -> Result<(), ApiError> {
        let host = {
            let config = self.state.config.read();
            let allowed = guard::Allowed {
                bind: self.own_addr.ip(),
                port: self.own_addr.port(),
                hosts: &config.admin.allowed_hosts,
            };
            guard::check_host(head, &allowed)?
        };
        let get = head.method == "GET" || head.method == "HEAD";
        // the dashboard page carries no data (it asks for the token and sends it itself), and
        // may be opened from a link on another site
        let page = get && matches!(head.path.as_str(), "/" | "/dashboard");
        if !page {
            guard::check_origin(head, host)?;
        }
        if !(page || head.method == "GET" && head.path == "/health") {
            self.authorize(head)?;
        }
        let Some((route, _)) = find_route(&head.path) else {
            return Err(ApiError::new(
                404,
                format!(
                    "{}: no such endpoint (GET /openapi.json lists them)",
                    head.path
                ),
            ));
        };
        if !route.ops.iter().any(|(m, _)| *m == head.method) {
            let allow: Vec<&str> = route.ops.iter().map(|(m, _)| *m).collect();
            let mut e = ApiError::new(
                405,
                format!(
                    "method: {} {} is not served (allowed: {})",
                    head.method,
                    route.path,
                    allow.join(", ")
                ),
            );
            e.headers.push(("Allow", allow.join(", ")));
            return Err(e);
        }
        let has_body = !matches!(
            head.framing(),
            Ok(crate::http::framing::Framing::None | crate::http::framing::Framing::Length(0))
        );
        if has_body {
            guard::check_content_type(head)?;
        }
        Ok(())
    }

    /// With an `admin_token`: the request must carry `Authorization: Bearer <token>` (but
    /// `GET /health` and the dashboard page). A wrong token is answered later the more wrong
    /// ones its address sent lately (`guard::Throttle`).
    fn authorize(&self, head: &Head) -> Result<(), ApiError> {
        // read each time: a reload may set, change or remove it
        let token = self.state.config.read().admin.token.clone();
        let Some(token) = token.map(String::into_bytes) else {
            return Ok(());
        };
        let given = head.header("authorization").and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
        let (message, challenge) = match given {
            Some(given) if same_secret(given.as_bytes(), &token) => {
                if let Some(peer) = head.peer {
                    self.throttle.succeeded(peer);
                }
                return Ok(());
            }
            Some(_) => {
                if let Some(peer) = head.peer {
                    // on this connection's own thread, holding no lock
                    std::thread::sleep(self.throttle.failed(peer));
                }
                (
                    "authorization: the bearer token is not the admin_token",
                    "Bearer realm=\"ferrule admin\", error=\"invalid_token\"",
                )
            }
            None => (
                "authorization: missing (send Authorization: Bearer <admin_token>)",
                "Bearer realm=\"ferrule admin\"",
            ),
        };
        let mut e = ApiError::new(401, message);
        e.headers.push(("WWW-Authenticate", challenge.to_owned()));
        Err(e)
    }
}

/// Compares a presented token with the secret in time that depends only on the presented
/// token's length: not on where they differ, nor on the secret's length.
fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    if secret.is_empty() {
        return false;
    }
    let mut diff = u8::from(given.len() != secret.len());
    for (i, &b) in given.iter().enumerate() {
        diff |= b ^ secret[i % secret.len()];
    }
    std::hint::black_box(diff) == 0
}

fn health(_: &Admin, _: &Call<'_>) -> Result<Response, ApiError> {
    Ok(Response::json(200, &json!({"status": "ok"})))
}

/// The config in force in the file's form; `health_check_timeout`, whose default is computed
/// from two other keys, shown with its effective value.
fn config(admin: &Admin, _: &Call<'_>) -> Result<Response, ApiError> {
    let config = admin.state.config.read();
    let mut shown = serde_json::to_value(config.redacted())
        .map_err(|e| ApiError::new(500, format!("config: cannot be shown: {e}")))?;
    if let Value::Object(map) = &mut shown {
        let timeout = crate::config::format_duration(config.pool.health_timeout());
        map.insert("health_check_timeout".into(), Value::String(timeout));
    }
    Ok(Response::json(200, &shown))
}

fn openapi(admin: &Admin, _: &Call<'_>) -> Result<Response, ApiError> {
    let token = admin.state.config.read().admin.token.is_some();
    Ok(Response::json(200, &openapi::document(token)))
}

/// Re-reads every certificate and key file: new handshakes use them, open connections keep
/// theirs. A file that does not load is refused with its error, and the old certificates stay.
fn reload_certs(admin: &Admin, _: &Call<'_>) -> Result<Response, ApiError> {
    let Some(tls) = &admin.state.tls else {
        return Err(ApiError::new(
            409,
            "ssl.enabled is false: there are no certificates to reload",
        ));
    };
    // not in the middle of a reload, which may be loading other files
    let _one = admin.reloading.lock();
    let pairs = crate::cert_pairs(&admin.state.config.read());
    match tls.reload(&pairs) {
        Ok(warnings) => {
            log::info!("certificates reloaded ({} files)", pairs.len() * 2);
            for w in &warnings {
                log::warn!("{w}");
            }
            let body = json!({"reloaded": pairs.len(), "names": tls.names(), "warnings": warnings});
            Ok(Response::json(200, &body))
        }
        Err(e) => {
            log::warn!("certificate reload refused, the old certificates stay: {e}");
            Err(ApiError::bad(e.to_string()))
        }
    }
}

/// Opens the access log file again by its name (as `SIGUSR1` does), for logrotate.
fn reopen_logs(admin: &Admin, _: &Call<'_>) -> Result<Response, ApiError> {
    let log = admin.state.live.access_log();
    match log.reopen() {
        Ok(()) => {
            log::info!("access log reopened");
            Ok(Response::json(200, &json!({"reopened": true})))
        }
        Err(e) => {
            log::warn!("{e}");
            Err(ApiError::new(500, e))
        }
    }
}

/// The body as a JSON object (a key given twice, at any depth, is refused).
fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    use crate::config::JsonError;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad("body: empty (expected a JSON object)"));
    }
    match crate::config::parse_json(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::bad(format!(
            "body: expected a JSON object, found {}",
            crate::config::describe(&other)
        ))),
        Err(JsonError::Duplicate(key)) => {
            Err(ApiError::bad(format!("{key}: {}", JsonError::DUPLICATE)))
        }
        Err(JsonError::Syntax(e)) => Err(ApiError::bad(format!("body: not valid JSON: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_whole_segments() {
        fn path(p: &str) -> Option<(&'static str, Vec<&str>)> {
            find_route(p).map(|(r, params)| (r.path, params))
        }
        assert_eq!(path("/backends"), Some(("/backends", vec![])));
        assert_eq!(path("/backends/7"), Some(("/backends/{id}", vec!["7"])));
        assert_eq!(
            path("/backends/x/status"),
            Some(("/backends/{id}/status", vec!["x"]))
        );
        assert_eq!(path("/backends/7/other"), None);
        assert_eq!(path("/backendsx"), None);
        assert_eq!(path("/"), Some(("/", vec![])));
        assert_eq!(path("/dashboard"), Some(("/dashboard", vec![])));
        assert_eq!(path("/dashboardx"), None);
        assert_eq!(path("/pools"), Some(("/pools", vec![])));
        assert_eq!(path("/pools/api"), Some(("/pools/{name}", vec!["api"])));
        assert_eq!(
            path("/pools/api/backends/7/status"),
            Some(("/pools/{name}/backends/{id}/status", vec!["api", "7"]))
        );
        assert_eq!(path("/pools//backends"), None);
        assert_eq!(path("/routes"), Some(("/routes", vec![])));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
        assert!(!same_secret(b"s3cretx", b"s3cret"));
        assert!(!same_secret(b"s3crez", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
        // the secret repeated is not the secret
        assert!(!same_secret(b"abab", b"ab"));
        assert!(!same_secret(b"", b""));
    }
}
