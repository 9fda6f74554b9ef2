//! The admin API end to end, on real sockets (ferrule in-process on port 0, real backends):
//!
//! - here: every read endpoint and its shape (`/health`, `/backends`, `/backends/{id}`, `/stats`,
//!   `/config`), the token;
//! - `admin/input.rs`: every kind of bad input (JSON, keys, values, ids, methods, paths, sizes,
//!   HTTP framing) answered with a 4xx and the one error shape, and changing nothing;
//! - `admin/pool.rs`: changing the pool (add, delete and drain, status, state, weight), under
//!   load and from concurrent admin calls;
//! - `admin/security.rs`: who may drive the API (the `Host` allow-list, other origins, JSON-only
//!   bodies, slower answers to wrong tokens) and what it may be made to do (no backend at
//!   ferrule's own or link-local addresses, files only from allowed directories, 409 for the
//!   same backend by address, keys given twice refused);
//! - `admin/docs.rs`: `/openapi.json` walked against the live router, `/metrics` through
//!   `promtool check metrics` (skipped, with a message, only where promtool is not installed:
//!   `.ci/run` installs it with `apt-get install -y prometheus`).

use crate::common;
mod docs;
mod input;
mod pool;
mod security;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{Backend, Client, Proxy, Response};

// ----------------------------------------------------------------------------- helpers

/// One request to the admin API at `admin` on a fresh connection (`Connection: close`), with
/// `Host: <admin>` (unless `headers` have a `Host`), `headers` and, when given, a body with its
/// `Content-Length` (and no `Content-Type` unless `headers` have one).
pub fn send(
    admin: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {admin}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    let mut c = Client::connect(admin);
    c.send(&bytes);
    c.response_to(method)
}

/// The admin API of a proxy, with the token it is called with.
#[derive(Clone)]
pub struct Api {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

impl Api {
    pub fn of(proxy: &Proxy) -> Api {
        Api {
            addr: proxy.admin(),
            token: None,
        }
    }

    /// `method path` with `body` (raw bytes, sent as `application/json`) and the token, if any.
    pub fn raw(&self, method: &str, path: &str, body: Option<&[u8]>) -> Response {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        send(self.addr, method, path, &headers, body)
    }

    /// `method path` with a JSON body; the answer must be JSON.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let r = self.raw(method, path, bytes.as_deref());
        (r.status, json_of(&r))
    }

    /// `GET path`, which must answer 200.
    pub fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// The backend with this id in `GET /backends`, if listed.
    pub fn listed(&self, id: u64) -> Option<Value> {
        self.get("/backends")["backends"]
            .as_array()
            .and_then(|list| list.iter().find(|b| b["id"] == id).cloned())
    }

    /// `POST /backends {"url": "http://ADDR"}` (plus `more`); returns the new id.
    pub fn add(&self, addr: SocketAddr, more: Value) -> u64 {
        let mut body = json!({"url": format!("http://{addr}")});
        if let (Some(map), Value::Object(more)) = (body.as_object_mut(), more) {
            map.extend(more);
        }
        let (status, entry) = self.call("POST", "/backends", Some(body));
        assert_eq!(status, 201, "POST /backends: {entry}");
        entry["id"].as_u64().expect("the new backend's id")
    }
}

/// The body of `r` as JSON, served as JSON.
pub fn json_of(r: &Response) -> Value {
    assert!(
        r.header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        "not served as JSON: {r:?}"
    );
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

/// The message of an error answer, which must be exactly `{"error": "<message>"}`.
pub fn error_message(body: &Value) -> String {
    let object = body.as_object().expect("an error is a JSON object");
    assert_eq!(object.len(), 1, "an error has one key: {body}");
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {body}"))
        .to_owned()
}

/// Polls `cond` every 20 ms until it holds; panics after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A proxy in front of `backends` without active health checks (nothing but the test changes
/// a backend's state).
pub fn quiet_proxy(backends: &[SocketAddr], extra: Value) -> Proxy {
    let mut config = json!({"health_check_method": "none"});
    if let (Some(map), Value::Object(more)) = (config.as_object_mut(), extra) {
        map.extend(more);
    }
    Proxy::start(backends, config)
}

// ----------------------------------------------------------------------------- reading

// Proves the read endpoints answer JSON of the documented shape: /health, /backends (every
// field, both names of the in-flight count), /backends/{id}, /config (the loaded config in the
// file's form).
#[test]
fn read_endpoints_answer_json() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let proxy = quiet_proxy(&[a.addr, b.addr], json!({"strategy": "least-conn"}));
    let api = Api::of(&proxy);
    assert_eq!(api.get("/health"), json!({"status": "ok"}));

    let list = api.get("/backends");
    assert_eq!(list["strategy"], "least-conn");
    let entries = list["backends"].as_array().expect("a list");
    let ids: Vec<u64> = entries.iter().filter_map(|e| e["id"].as_u64()).collect();
    assert_eq!(ids, vec![0, 1], "config backends are 0, 1… in file order");
    let first = &entries[0];
    assert_eq!(first["url"], format!("http://{}", a.addr));
    for (key, want) in [
        ("weight", json!(1)),
        ("state", json!("up")),
        ("alive", json!(true)),
        ("healthy", json!(true)),
        ("enabled", json!(true)),
        ("in_flight", json!(0)),
        ("active_connections", json!(0)),
        ("total_requests", json!(0)),
        ("failures", json!(0)),
        ("max_conns", json!(0)),
        ("last_check", Value::Null),
        ("last_error", Value::Null),
    ] {
        assert_eq!(first[key], want, "{key} in {first}");
    }
    assert_eq!(&api.get("/backends/1"), &entries[1]);
    assert_eq!(
        api.get("/backends/1/"),
        entries[1],
        "a trailing slash is the same path"
    );

    let config = api.get("/config");
    assert_eq!(config["strategy"], "least-conn");
    assert_eq!(config["backends"][1]["url"], format!("http://{}", b.addr));
    assert_eq!(config["health_check_method"], "none");
    // every default filled in, health_check_timeout's too (the smaller of backend_timeout and
    // the interval)
    assert_eq!(config["health_check_timeout"], "10s", "{config}");
    assert_eq!(config["admin_allowed_hosts"], json!([]));
    assert_eq!(config["allowed_backend_networks"], json!([]));
    assert_eq!(
        first["addr"],
        a.addr.to_string(),
        "addr: where it is reached"
    );
    assert!(
        config.get("admin_token").is_none_or(Value::is_null),
        "{config}"
    );
}

// Proves GET /stats keeps its first names and adds responses by class, bytes each way and TLS
// counts, per worker and in total, and that they follow the traffic.
#[test]
fn stats_count_responses_and_bytes_per_worker_and_in_total() {
    let a = Backend::start("a");
    let proxy = quiet_proxy(&[a.addr], json!({}));
    let api = Api::of(&proxy);
    for i in 0..6 {
        assert_eq!(proxy.get(&format!("/s{i}")).status, 200);
    }
    assert_eq!(proxy.get("/\u{1}bad").status, 400);
    // a connection's counters land when it closes: wait for all seven
    wait_until(Duration::from_secs(5), "seven connections closed", || {
        api.get("/stats")["open_connections"] == 0
    });
    let stats = api.get("/stats");
    assert_eq!(stats["accepted_connections"], 7, "{stats}");
    assert_eq!(stats["backend_requests"], 6, "{stats}");
    assert_eq!(stats["responses"]["2xx"], 6, "{stats}");
    assert_eq!(stats["responses"]["4xx"], 1, "{stats}");
    assert_eq!(stats["responses"]["5xx"], 0, "{stats}");
    assert!(stats["bytes_in"].as_u64().unwrap_or(0) > 6 * 30, "{stats}");
    assert!(stats["bytes_out"].as_u64().unwrap_or(0) > 6 * 60, "{stats}");
    assert_eq!(stats["tls_handshakes"], 0);
    assert_eq!(stats["tls_handshake_failures"], 0);
    let workers = stats["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 2);
    for key in [
        "accepted",
        "accepted_connections",
        "bytes_in",
        "bytes_out",
        "open_connections",
    ] {
        let sum: u64 = workers.iter().filter_map(|w| w[key].as_u64()).sum();
        let total = if key == "accepted" {
            "accepted_connections"
        } else {
            key
        };
        assert_eq!(Some(sum), stats[total].as_u64(), "{key} adds up: {stats}");
    }
    let two: u64 = workers
        .iter()
        .filter_map(|w| w["responses"]["2xx"].as_u64())
        .sum();
    assert_eq!(two, 6);
    assert_eq!(workers[1]["worker"], 1);
}

// ----------------------------------------------------------------------------- the token

// Proves that with admin_token set every request but GET /health needs the bearer token: 401
// (WWW-Authenticate: Bearer, the error shape) without it or with another, before anything else
// is looked at (the path, the body's size); 200 with it; /config shows it redacted.
#[test]
fn the_token_is_required_when_set() {
    let a = Backend::start("a");
    let proxy = quiet_proxy(&[a.addr], json!({"admin_token": "s3cret-token-0123456789"}));
    let admin = proxy.admin();
    let get = |path: &str, auth: Option<&str>| {
        let headers: Vec<(&str, &str)> = auth.iter().map(|v| ("Authorization", *v)).collect();
        send(admin, "GET", path, &headers, None)
    };
    for path in [
        "/backends",
        "/backends/0",
        "/stats",
        "/metrics",
        "/config",
        "/openapi.json",
        "/nope",
    ] {
        for auth in [
            None,
            Some("Bearer s3cret-token-012345678m"),
            Some("Bearer s3cret-token-0123456782"),
            Some("Basic czNjcmV0LXRva2VuLTAxMjM0NTY3ODk="),
            Some("s3cret-token-0123456789"),
        ] {
            let r = get(path, auth);
            assert_eq!(r.status, 401, "{path} with {auth:?}");
            let challenge = r.header("www-authenticate").unwrap_or_default();
            assert!(challenge.starts_with("Bearer"), "{path}: {r:?}");
            assert!(error_message(&json_of(&r)).starts_with("authorization: "));
        }
    }
    assert!(get("/stats", Some("Bearer nope"))
        .header("www-authenticate")
        .is_some_and(|c| c.contains("invalid_token")));
    for auth in [
        "Bearer s3cret-token-0123456789",
        "bearer s3cret-token-0123456789",
        "Bearer   s3cret-token-0123456789 ",
    ] {
        assert_eq!(get("/stats", Some(auth)).status, 200, "{auth}");
    }
    assert_eq!(get("/health", None).status, 200, "GET /health is open");
    assert_eq!(
        send(admin, "POST", "/health", &[], None).status,
        401,
        "only GET /health is open"
    );
    // refused before the body is looked at
    let mut c = Client::connect(admin);
    c.send(b"POST /backends HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000000000\r\n\r\n");
    assert_eq!(c.response().status, 401);

    let api = Api {
        addr: admin,
        token: Some("s3cret-token-0123456789".into()),
    };
    assert_eq!(api.get("/config")["admin_token"], "<redacted>");
    let b = Backend::start("b");
    assert_eq!(api.add(b.addr, json!({})), 1);
    let r = send(admin, "DELETE", "/backends/1", &[], None);
    assert_eq!(r.status, 401);
    assert!(api.listed(1).is_some(), "a refused request changes nothing");
}
