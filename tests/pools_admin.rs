//! The admin API, metrics and access log with several pools (issue 22), end to end on real
//! sockets (ferrule in-process on port 0, real backends, each named so a response says who
//! answered it):
//! - `/pools`, `/pools/{name}`, and every backend operation under `/pools/{name}/backends` on a
//!   second pool (list, add, the 409 within the pool, weight, status, drain, delete), each
//!   followed by real requests;
//! - `/backends/{id}` of another pool's backend: 404 with a pointer to it, nothing changed;
//! - `/routes` and `ferrule_route_requests_total` counting real requests; the `pool` label of
//!   every per-backend series and the per-pool gauges;
//! - the access log naming the pool, in both formats;
//! - the token and the origin check on every new path.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{served_by, Backend, Client, Proxy, Response, TempDir};
use serde_json::{json, Value};

fn url(addr: SocketAddr) -> Value {
    json!({"url": format!("http://{addr}")})
}

/// ports 0, 2 workers, no health checks, the `default` pool of `default`, the pool `api` of
/// `api` (round-robin) routed by `Host: api.test` (route `api-host`) and by `/v2` (route `v2`,
/// stripped); `extra` merged in.
fn two_pools(default: &[SocketAddr], api: &[SocketAddr], extra: Value) -> Proxy {
    let mut cfg = json!({
        "port": 0,
        "admin_port": 0,
        "bind": "127.0.0.1",
        "workers": 2,
        "health_check_method": "none",
        "backends": default.iter().map(|a| url(*a)).collect::<Vec<_>>(),
        "pools": {
            "api": {
                "backends": api.iter().map(|a| url(*a)).collect::<Vec<_>>(),
                "strategy": "round-robin",
            },
        },
        "routes": [
            {"name": "api-host", "host": "api.test", "pool": "api"},
            {"name": "v2", "path_prefix": "/v2", "pool": "api", "strip_prefix": true},
        ],
    });
    if let (Some(map), Value::Object(more)) = (cfg.as_object_mut(), extra) {
        map.extend(more);
    }
    Proxy::from_json(&cfg.to_string())
}

/// `GET target` with `Host: host` on a fresh connection.
fn get(proxy: &Proxy, host: &str, target: &str) -> Response {
    let mut c = proxy.connect();
    c.send(
        format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    c.response()
}

/// Who answered `GET /` for `Host: host` (which must be a 200).
fn who(proxy: &Proxy, host: &str) -> String {
    let r = get(proxy, host, "/");
    assert_eq!(r.status, 200, "{host}: {r:?}");
    served_by(&r)
}

/// One admin request on a fresh connection: `headers` added, `body` sent as JSON.
fn send(
    admin: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Response {
    let body = body.map(|b| b.to_string());
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = &body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(body.as_deref().unwrap_or_default());
    let mut c = Client::connect(admin);
    c.send(head.as_bytes());
    c.response_to(method)
}

/// `method path` on the admin API: the status and the JSON body.
fn call(proxy: &Proxy, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let r = send(proxy.admin(), method, path, &[], body);
    let v = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{path}: not JSON: {e}"));
    (r.status, v)
}

fn admin_get(proxy: &Proxy, path: &str) -> Value {
    let (status, v) = call(proxy, "GET", path, None);
    assert_eq!(status, 200, "GET {path}: {v}");
    v
}

/// The ids of a backend list (`{"backends": [...]}`), with their urls.
fn listed(v: &Value) -> Vec<(u64, String)> {
    v["backends"]
        .as_array()
        .unwrap_or_else(|| panic!("no backends in {v}"))
        .iter()
        .map(|b| {
            (
                b["id"].as_u64().unwrap_or(u64::MAX),
                b["url"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn id_of(proxy: &Proxy, path: &str, addr: SocketAddr) -> u64 {
    let want = format!("http://{addr}");
    listed(&admin_get(proxy, path))
        .into_iter()
        .find(|(_, u)| *u == want)
        .map(|(id, _)| id)
        .unwrap_or_else(|| panic!("{addr} not in {path}"))
}

/// Polls `cond` every 20 ms until it holds; panics after 10 s.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// Proves /pools and /pools/{name} show every pool (default first, with the routes to it, its
// strategy, its backends counted by state, which one takes unmatched requests), and that an
// unknown pool is 404 with the one error shape on every path under /pools.
#[test]
fn pools_are_listed_with_their_routes_states_and_backends() {
    let d = Backend::start("d");
    let a1 = Backend::start("a1");
    let a2 = Backend::start("a2");
    let proxy = two_pools(&[d.addr], &[a1.addr, a2.addr], json!({}));
    let pools = admin_get(&proxy, "/pools");
    let list = pools["pools"].as_array().expect("pools");
    assert_eq!(list.len(), 2, "{pools}");
    let (default, api) = (&list[0], &list[1]);
    assert_eq!(default["name"], "default");
    assert_eq!(default["default"], true);
    assert_eq!(default["serves_unmatched"], true);
    assert_eq!(default["size"], 1);
    assert_eq!(default["routes"], json!([]));
    assert_eq!(api["name"], "api");
    assert_eq!(api["default"], false);
    assert_eq!(api["serves_unmatched"], false);
    assert_eq!(api["strategy"], "round-robin");
    assert_eq!(api["size"], 2);
    assert_eq!(
        api["states"],
        json!({"up": 2, "down": 0, "draining": 0, "disabled": 0, "ejected": 0})
    );
    assert_eq!(api["removed"], 0);
    assert_eq!(api["routes"], json!(["api-host", "v2"]));

    let one = admin_get(&proxy, "/pools/api");
    assert_eq!(one["name"], "api");
    let urls: Vec<String> = listed(&one).into_iter().map(|(_, u)| u).collect();
    assert_eq!(
        urls,
        [format!("http://{}", a1.addr), format!("http://{}", a2.addr)]
    );
    assert!(one["backends"]
        .as_array()
        .is_some_and(|l| l.iter().all(|b| b["pool"] == "api")));
    // /backends is the default pool's, and says so
    let plain = admin_get(&proxy, "/backends");
    assert_eq!(plain["pool"], "default");
    assert_eq!(listed(&plain).len(), 1);
    assert_eq!(
        listed(&plain),
        listed(&admin_get(&proxy, "/pools/default/backends"))
    );

    for (method, path) in [
        ("GET", "/pools/apj"),
        ("GET", "/pools/apj/backends"),
        ("GET", "/pools/apj/backends/0"),
        ("DELETE", "/pools/apj/backends/0"),
    ] {
        let (status, body) = call(&proxy, method, path, None);
        assert_eq!(status, 404, "{method} {path}");
        assert_eq!(body, json!({"error": "no pool named \"apj\""}), "{path}");
    }
    let (status, body) = call(&proxy, "POST", "/pools/apj/backends", Some(url(a1.addr)));
    assert_eq!(
        (status, body),
        (404, json!({"error": "no pool named \"apj\""}))
    );
}

// Proves every backend operation works on a second pool and acts on that pool only: an added
// backend takes that pool's traffic (and not the default pool's), the same address again in the
// pool is 409 but is welcome in another pool, weight and status take effect, and a deleted
// backend stops taking requests.
#[test]
fn backend_operations_act_on_the_named_pool() {
    let d = Backend::start("d");
    let a1 = Backend::start("a1");
    let a2 = Backend::start("a2");
    let proxy = two_pools(&[d.addr], &[a1.addr], json!({}));
    let r = send(
        proxy.admin(),
        "POST",
        "/pools/api/backends",
        &[],
        Some(url(a2.addr)),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let added: Value = serde_json::from_slice(&r.body).expect("json");
    let id = added["id"].as_u64().expect("id");
    assert_eq!(added["pool"], "api");
    assert_eq!(
        r.header("location"),
        Some(format!("/pools/api/backends/{id}").as_str())
    );
    // in the api pool only
    assert_eq!(id_of(&proxy, "/pools/api/backends", a2.addr), id);
    assert_eq!(listed(&admin_get(&proxy, "/backends")).len(), 1);
    let seen: Vec<String> = (0..4).map(|_| who(&proxy, "api.test")).collect();
    assert!(seen.contains(&"a2".to_owned()), "{seen:?}");
    assert!(seen.contains(&"a1".to_owned()), "{seen:?}");
    assert!((0..4).all(|_| who(&proxy, "other.test") == "d"));

    // the same backend again: 409 in its pool, but another pool may have it
    let (status, body) = call(&proxy, "POST", "/pools/api/backends", Some(url(a2.addr)));
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("pool \"api\"")),
        "{body}"
    );
    let (status, body) = call(&proxy, "POST", "/backends", Some(url(a2.addr)));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["pool"], "default");

    // weight
    let path = format!("/pools/api/backends/{id}");
    let (status, body) = call(&proxy, "PATCH", &path, Some(json!({"weight": 7})));
    assert_eq!((status, &body["weight"]), (200, &json!(7)), "{body}");
    assert_eq!(admin_get(&proxy, &path)["weight"], 7);

    // status off: the api pool's traffic goes to a1 only; on again
    let (status, body) = call(
        &proxy,
        "PUT",
        &format!("{path}/status"),
        Some(json!({"alive": false})),
    );
    assert_eq!(
        (status, &body["state"]),
        (200, &json!("disabled")),
        "{body}"
    );
    assert_eq!(
        admin_get(&proxy, "/pools")["pools"][1]["states"]["disabled"],
        1
    );
    assert!((0..4).all(|_| who(&proxy, "api.test") == "a1"));
    let (status, _) = call(
        &proxy,
        "PUT",
        &format!("{path}/status"),
        Some(json!({"alive": true})),
    );
    assert_eq!(status, 200);

    // drain: no new request
    let (status, body) = call(&proxy, "PATCH", &path, Some(json!({"state": "draining"})));
    assert_eq!(
        (status, &body["state"]),
        (200, &json!("draining")),
        "{body}"
    );
    assert!((0..4).all(|_| who(&proxy, "api.test") == "a1"));
    let (status, _) = call(&proxy, "PATCH", &path, Some(json!({"state": "up"})));
    assert_eq!(status, 200);
    let seen: Vec<String> = (0..4).map(|_| who(&proxy, "api.test")).collect();
    assert!(seen.contains(&"a2".to_owned()), "up again: {seen:?}");

    // delete: gone from the pool, no new request
    let (status, body) = call(&proxy, "DELETE", &path, None);
    assert!(status == 200 || status == 202, "{status} {body}");
    assert_eq!(body["id"], id);
    wait_until("the deleted backend is forgotten", || {
        call(&proxy, "GET", &path, None).0 == 404
    });
    assert!(listed(&admin_get(&proxy, "/pools/api/backends"))
        .iter()
        .all(|(i, _)| *i != id));
    let before = a2.record.count();
    assert!((0..4).all(|_| who(&proxy, "api.test") == "a1"));
    assert_eq!(a2.record.count(), before);
    // the default pool's a2 is untouched
    assert!(listed(&admin_get(&proxy, "/backends"))
        .iter()
        .any(|(_, u)| *u == format!("http://{}", a2.addr)));
}

// Proves /backends/{id} of a backend of another pool answers 404 with a pointer to it (its pool,
// its location, a Location header), for every method, changing nothing; and the same the other
// way, from /pools/api/backends to the default pool's backend.
#[test]
fn another_pools_backend_is_a_404_that_points_to_it() {
    let d = Backend::start("d");
    let a1 = Backend::start("a1");
    let proxy = two_pools(&[d.addr], &[a1.addr], json!({}));
    let api_id = id_of(&proxy, "/pools/api/backends", a1.addr);
    let default_id = id_of(&proxy, "/backends", d.addr);
    assert_ne!(api_id, default_id, "ids are unique across pools");
    let at = format!("/pools/api/backends/{api_id}");
    for (method, suffix, body) in [
        ("GET", "", None),
        ("PATCH", "", Some(json!({"weight": 9}))),
        ("PUT", "/status", Some(json!({"alive": false}))),
        ("DELETE", "", None),
    ] {
        let path = format!("/backends/{api_id}{suffix}");
        let r = send(proxy.admin(), method, &path, &[], body);
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text());
        assert_eq!(r.header("location"), Some(at.as_str()), "{method} {path}");
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v["pool"], "api", "{v}");
        assert_eq!(v["location"], at, "{v}");
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("id: backend ")),
            "{v}"
        );
    }
    // nothing changed
    let b = admin_get(&proxy, &at);
    assert_eq!((&b["weight"], &b["state"]), (&json!(1), &json!("up")));
    assert_eq!(who(&proxy, "api.test"), "a1");
    // and from the other side
    let r = send(
        proxy.admin(),
        "GET",
        &format!("/pools/api/backends/{default_id}"),
        &[],
        None,
    );
    assert_eq!(r.status, 404);
    let back = format!("/backends/{default_id}");
    assert_eq!(r.header("location"), Some(back.as_str()));
    // an id no pool has: the plain 404
    let (status, body) = call(&proxy, "GET", "/backends/999999", None);
    assert_eq!(
        (status, body),
        (404, json!({"error": "id: no backend with id 999999"}))
    );
}

/// The samples of a Prometheus text: `name{labels}` → value.
fn samples(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

// Proves /routes lists every route in file order with the requests it sent (counted from real
// requests; unmatched ones counted nowhere), that /metrics has the same counts in
// ferrule_route_requests_total, a pool label on every per-backend series and the per-pool
// gauges.
#[test]
fn routes_and_metrics_count_real_requests_per_route_and_pool() {
    let d = Backend::start("d");
    let a1 = Backend::start("a1");
    let proxy = two_pools(&[d.addr], &[a1.addr], json!({}));
    for _ in 0..3 {
        assert_eq!(who(&proxy, "api.test"), "a1");
    }
    for _ in 0..2 {
        let r = get(&proxy, "other.test", "/v2/x");
        assert_eq!(served_by(&r), "a1");
    }
    assert_eq!(who(&proxy, "other.test"), "d");
    let routes = admin_get(&proxy, "/routes");
    assert_eq!(
        routes,
        json!({
            "routes": [
                {"name": "api-host", "host": "api.test", "path_prefix": null, "pool": "api",
                 "strip_prefix": false, "requests": 3},
                {"name": "v2", "host": null, "path_prefix": "/v2", "pool": "api",
                 "strip_prefix": true, "requests": 2},
            ],
            "unmatched_to_default": true,
        })
    );
    let r = send(proxy.admin(), "GET", "/metrics", &[], None);
    assert_eq!(r.status, 200);
    let text = r.text();
    let s = samples(&text);
    let value = |k: &str| *s.get(k).unwrap_or_else(|| panic!("no {k} in\n{text}"));
    assert_eq!(
        value("ferrule_route_requests_total{route=\"api-host\",pool=\"api\"}"),
        3.0
    );
    assert_eq!(
        value("ferrule_route_requests_total{route=\"v2\",pool=\"api\"}"),
        2.0
    );
    let api_id = id_of(&proxy, "/pools/api/backends", a1.addr);
    let d_id = id_of(&proxy, "/backends", d.addr);
    let a_labels = format!(
        "backend=\"http://{}\",id=\"{api_id}\",pool=\"api\"",
        a1.addr
    );
    let d_labels = format!(
        "backend=\"http://{}\",id=\"{d_id}\",pool=\"default\"",
        d.addr
    );
    assert_eq!(
        value(&format!("ferrule_backend_requests_total{{{a_labels}}}")),
        5.0
    );
    assert_eq!(
        value(&format!("ferrule_backend_requests_total{{{d_labels}}}")),
        1.0
    );
    assert_eq!(
        value(&format!("ferrule_backend_state{{{a_labels},state=\"up\"}}")),
        1.0
    );
    assert_eq!(
        value(&format!(
            "ferrule_backend_response_seconds_count{{{a_labels}}}"
        )),
        5.0
    );
    // every per-backend series has a pool
    for line in text.lines().filter(|l| l.starts_with("ferrule_backend_")) {
        assert!(line.contains(",pool=\""), "{line}");
    }
    assert_eq!(value("ferrule_pool_backends{pool=\"api\"}"), 1.0);
    assert_eq!(value("ferrule_pool_backends{pool=\"default\"}"), 1.0);
    assert_eq!(value("ferrule_backends"), 2.0);
    let off = json!({"state": "disabled"});
    let (status, _) = call(
        &proxy,
        "PATCH",
        &format!("/pools/api/backends/{api_id}"),
        Some(off),
    );
    assert_eq!(status, 200);
    let now = samples(&send(proxy.admin(), "GET", "/metrics", &[], None).text());
    assert_eq!(
        now.get("ferrule_pool_backends_up{pool=\"api\"}"),
        Some(&0.0)
    );
    assert_eq!(
        now.get("ferrule_pool_backends_up{pool=\"default\"}"),
        Some(&1.0)
    );
}

/// The lines of the log at `path` once it has at least `n` (the writer writes a moment after
/// the response).
fn lines_at_least(path: &Path, n: usize) -> Vec<String> {
    let mut lines = Vec::new();
    wait_until("the access log lines", || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        lines = text.lines().map(str::to_owned).collect();
        lines.len() >= n
    });
    lines
}

// Proves both access log formats name the pool a request was routed to (combined: pool=NAME;
// json: "pool"), and name none for a request no route took (404, no default pool).
#[test]
fn the_access_log_names_the_pool_in_both_formats() {
    let d = Backend::start("d");
    let a1 = Backend::start("a1");
    for format in ["combined", "json"] {
        let dir = TempDir::new(&format!("pools-admin-log-{format}"));
        let path = dir.join("access.log");
        let proxy = two_pools(
            &[d.addr],
            &[a1.addr],
            json!({"access_log": path.to_string_lossy(), "access_log_format": format, "workers": 1}),
        );
        assert_eq!(who(&proxy, "api.test"), "a1");
        assert_eq!(who(&proxy, "other.test"), "d");
        let lines = lines_at_least(&path, 2);
        if format == "combined" {
            assert!(lines[0].ends_with(" pool=api"), "{}", lines[0]);
            assert!(lines[1].ends_with(" pool=default"), "{}", lines[1]);
        } else {
            let pools: Vec<Value> = lines
                .iter()
                .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line")["pool"].clone())
                .collect();
            assert_eq!(pools, [json!("api"), json!("default")]);
        }
    }
    // no default pool: an unmatched request is a 404 routed nowhere, logged without a pool
    let dir = TempDir::new("pools-admin-log-unmatched");
    let path = dir.join("access.log");
    let cfg = json!({
        "port": 0, "admin_port": 0, "bind": "127.0.0.1", "workers": 1,
        "health_check_method": "none", "backends": [],
        "access_log": path.to_string_lossy(),
        "pools": {"api": {"backends": [url(a1.addr)]}},
        "routes": [{"host": "api.test", "pool": "api"}],
    });
    let proxy = Proxy::from_json(&cfg.to_string());
    assert_eq!(get(&proxy, "other.test", "/").status, 404);
    assert_eq!(who(&proxy, "api.test"), "a1");
    let lines = lines_at_least(&path, 2);
    assert!(!lines[0].contains("pool="), "{}", lines[0]);
    assert!(lines[1].ends_with(" pool=api"), "{}", lines[1]);
    assert_eq!(admin_get(&proxy, "/routes")["unmatched_to_default"], false);
    assert_eq!(
        admin_get(&proxy, "/pools")["pools"][0]["serves_unmatched"],
        false
    );
}

// Proves the new paths are guarded like every other: no token or a wrong one is 401 (and
// changes nothing), a browser request from another origin is 403, the right token works.
#[test]
fn the_token_and_the_origin_check_guard_every_pool_path() {
    let d = Backend::start("d");
    let a1 = Backend::start("a1");
    let a2 = Backend::start("a2");
    let token = "pools-token-0123456789";
    let proxy = two_pools(&[d.addr], &[a1.addr], json!({"admin_token": token}));
    let admin = proxy.admin();
    let bearer = format!("Bearer {token}");
    let ok = [("Authorization", bearer.as_str())];
    let r = send(admin, "GET", "/pools/api/backends", &ok, None);
    assert_eq!(r.status, 200, "{}", r.text());
    let list: Value = serde_json::from_slice(&r.body).expect("json");
    let api_id = listed(&list)[0].0;
    let calls: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/pools".into(), None),
        ("GET", "/pools/api".into(), None),
        ("GET", "/routes".into(), None),
        ("GET", "/pools/api/backends".into(), None),
        ("POST", "/pools/api/backends".into(), Some(url(a2.addr))),
        ("GET", format!("/pools/api/backends/{api_id}"), None),
        (
            "PATCH",
            format!("/pools/api/backends/{api_id}"),
            Some(json!({"weight": 5})),
        ),
        (
            "PUT",
            format!("/pools/api/backends/{api_id}/status"),
            Some(json!({"alive": false})),
        ),
        ("DELETE", format!("/pools/api/backends/{api_id}"), None),
    ];
    let wrong = [("Authorization", "Bearer not-the-token")];
    let other_origin = [
        ("Authorization", bearer.as_str()),
        ("Origin", "http://evil.example"),
    ];
    for (method, path, body) in &calls {
        for (headers, want) in [(&[][..], 401), (&wrong[..], 401), (&other_origin[..], 403)] {
            let r = send(admin, method, path, headers, body.clone());
            assert_eq!(r.status, want, "{method} {path} {headers:?}: {}", r.text());
            let v: Value = serde_json::from_slice(&r.body).expect("json");
            assert!(v["error"].is_string(), "{v}");
        }
        // the right token forgets the wrong one (wrong tokens in a row are answered slower)
        assert_eq!(send(admin, "GET", "/routes", &ok, None).status, 200);
    }
    // nothing changed
    let r = send(admin, "GET", "/pools/api", &ok, None);
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(v["size"], 1, "{v}");
    assert_eq!(v["backends"][0]["weight"], 1, "{v}");
    assert_eq!(v["backends"][0]["state"], "up", "{v}");
    // with the token, each works
    for (method, path, body) in &calls {
        let r = send(admin, method, path, &ok, body.clone());
        assert!(
            (200..=202).contains(&r.status),
            "{method} {path}: {} {}",
            r.status,
            r.text()
        );
    }
}
