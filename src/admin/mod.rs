//! The admin API: JSON over HTTP/1.1 on `admin_bind:admin_port`, on its own threads (never a
//! worker's), reading the live pool and counters and changing the pool.
//!
//! Files: `crate::httpd` is the HTTP server (1 MiB bodies, timeouts, bounded connections; its
//! header says why it is not `tiny_http`) and `httpd/message.rs` its heads and answers (the https
//! redirect listener shares them); this file the routes,
//! the token check and the error shape; `backends.rs` the `/backends` endpoints and the drain of
//! removed backends; `metrics.rs` `/stats` and the Prometheus `/metrics`; `dashboard.rs` the
//! HTML dashboard at `/` and `/dashboard` (open: the page holds no data, it asks for the token
//! and sends it to the JSON endpoints); `openapi.rs` the
//! OpenAPI document of all of it (`tests/admin.rs` calls every operation it lists and checks the
//! router serves nothing else).
//!
//! Every answer is JSON but `/metrics`; every error is `{"error": "<field or part>: <problem>"}`
//! with a 4xx status: 400 bad input, 401 no or wrong token (with `WWW-Authenticate: Bearer`), 404
//! unknown path or backend, 405 a method the path does not take (with `Allow`), 413 a body over
//! 1 MiB. The pool is changed only through `Balancer::update`, which serialises writers.

mod backends;
pub(crate) mod dashboard;
mod metrics;
mod openapi;
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
use crate::stats::WorkerStats;
use crate::tls::{ClientConfigs, ServerTls};
use crate::worker::ControlPort;

pub use self::backends::backend_json;
pub use self::reload::Live;

/// What the admin API reads and changes.
pub struct AdminState {
    pub balancer: Arc<Balancer>,
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
    /// The TLS client configurations built at start, shared with backends added later (so they
    /// share session resumption with the backends that have the same CA).
    pub client_configs: ClientConfigs,
    /// What a reload changes besides the pool: the workers' settings, the health and DNS threads.
    pub live: Live,
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

    /// The active health checks, started after the admin API (a reload restarts them).
    pub fn set_health(&self, checks: crate::health::HealthHandle) {
        *self.admin.state.live.health.lock() = Some(checks);
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
        state,
        started: std::time::SystemTime::now(),
        reloading: parking_lot::Mutex::new(()),
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
    started: std::time::SystemTime,
    /// One reload at a time.
    reloading: parking_lot::Mutex<()>,
}

/// A failed request: its status, message and extra fields.
#[derive(Debug)]
struct ApiError {
    status: u16,
    message: String,
    headers: Vec<(&'static str, String)>,
}

impl ApiError {
    fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }

    fn into_response(self) -> Response {
        let mut r = Response::error(self.status, &self.message);
        r.headers = self.headers;
        r
    }
}

/// One request as a handler sees it.
struct Call<'a> {
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
    fn screen(&self, head: &Head) -> Option<Response> {
        // the dashboard page carries no data: it asks for the token and sends it itself
        let open =
            head.method == "GET" && matches!(head.path.as_str(), "/health" | "/" | "/dashboard");
        if !open {
            if let Err(e) = self.authorize(head) {
                return Some(e.into_response());
            }
        }
        let Some((route, _)) = find_route(&head.path) else {
            let message = format!(
                "{}: no such endpoint (GET /openapi.json lists them)",
                head.path
            );
            return Some(Response::error(404, &message));
        };
        if route.ops.iter().any(|(m, _)| *m == head.method) {
            return None;
        }
        let allow: Vec<&str> = route.ops.iter().map(|(m, _)| *m).collect();
        let message = format!(
            "method: {} {} is not served (allowed: {})",
            head.method,
            route.path,
            allow.join(", ")
        );
        Some(Response::error(405, &message).with_header("Allow", allow.join(", ")))
    }

    fn handle(&self, head: &Head, body: &[u8]) -> Response {
        let found = find_route(&head.path).and_then(|(route, params)| {
            let op = route.ops.iter().find(|(m, _)| *m == head.method)?;
            Some((op.1, params))
        });
        let Some((handler, params)) = found else {
            return Response::error(404, &format!("{}: no such endpoint", head.path));
        };
        handler(self, &Call { body, params }).unwrap_or_else(ApiError::into_response)
    }

    fn tick(&self) {
        backends::prune_draining(self);
    }
}

impl Admin {
    /// With an `admin_token`: the request must carry `Authorization: Bearer <token>` (but
    /// `GET /health` and the dashboard page).
    fn authorize(&self, head: &Head) -> Result<(), ApiError> {
        // read each time: a reload may set, change or remove it
        let token = self.state.config.read().admin_token.clone();
        let Some(token) = token.map(String::into_bytes) else {
            return Ok(());
        };
        let given = head.header("authorization").and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
        let (message, challenge) = match given {
            Some(given) if same_secret(given.as_bytes(), &token) => return Ok(()),
            Some(_) => (
                "authorization: the bearer token is not the admin_token",
                "Bearer realm=\"ferrule admin\", error=\"invalid_token\"",
            ),
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

fn config(admin: &Admin, _: &Call<'_>) -> Result<Response, ApiError> {
    let shown = serde_json::to_value(admin.state.config.read().redacted())
        .map_err(|e| ApiError::new(500, format!("config: cannot be shown: {e}")))?;
    Ok(Response::json(200, &shown))
}

fn openapi(_: &Admin, _: &Call<'_>) -> Result<Response, ApiError> {
    Ok(Response::json(200, &openapi::document()))
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

/// The body as a JSON object.
fn json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad("body: empty (expected a JSON object)"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::bad(format!(
            "body: expected a JSON object, found {}",
            crate::config::describe(&other)
        ))),
        Err(e) => Err(ApiError::bad(format!("body: not valid JSON: {e}"))),
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
