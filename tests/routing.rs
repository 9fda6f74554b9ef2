//! Routing (issue 22): several pools behind one ferrule, chosen per request by host and path.
//!
//! Real backends on 127.0.0.1:0, each named, so a response says which pool answered it; the
//! proxy runs in this process (routes and pools are read back from its table where a test needs
//! more than the responses). Covers each matching rule and its precedence, `strip_prefix`, 404
//! and 503, per-pool strategy, stickiness and health, and a reload of pools and routes under
//! traffic with no failed request.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{dead_addr, served_by, Backend, Client, Proxy, Response, TempDir};
use serde_json::{json, Value};

fn url(addr: SocketAddr) -> Value {
    json!({"url": format!("http://{addr}")})
}

/// A config: ports 0, 2 workers, no health checks unless `extra` says so, `default` the top-level
/// backends, and `extra` (pools, routes, ...) merged in.
fn config(default: &[SocketAddr], extra: Value) -> Value {
    let mut cfg = json!({
        "port": 0,
        "admin_port": 0,
        "bind": "127.0.0.1",
        "workers": 2,
        "health_check_method": "none",
        "access_log": false,
        "backends": default.iter().map(|a| url(*a)).collect::<Vec<_>>(),
    });
    if let (Some(map), Value::Object(more)) = (cfg.as_object_mut(), extra) {
        map.extend(more);
    }
    cfg
}

fn start(cfg: &Value) -> Proxy {
    Proxy::from_json(&cfg.to_string())
}

/// `GET target` with `Host: host` on a fresh connection.
fn get(proxy: &Proxy, host: &str, target: &str) -> Response {
    get_with(proxy, host, target, "")
}

fn get_with(proxy: &Proxy, host: &str, target: &str, extra: &str) -> Response {
    let mut c = proxy.connect();
    c.send(
        format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")
            .as_bytes(),
    );
    c.response()
}

/// Who answered `GET target` for `host`, and the target the backend saw.
fn routed(proxy: &Proxy, host: &str, target: &str, backends: &[&Backend]) -> (String, String) {
    let r = get(proxy, host, target);
    assert_eq!(r.status, 200, "{host}{target}: {r:?}");
    let name = served_by(&r);
    let backend = backends
        .iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("no backend named {name}"));
    let seen = backend.record.requests();
    let last = seen.last().map(|s| s.target.clone()).unwrap_or_default();
    (name, last)
}

#[test]
fn host_beats_wildcard_beats_any_host_and_the_longest_prefix_wins_in_each() {
    let names = [
        "default",
        "exact",
        "exact_static",
        "wild",
        "wild_deep",
        "any_v2",
    ];
    let backends: Vec<Backend> = names.iter().map(|n| Backend::start(n)).collect();
    let by = |n: &str| backends.iter().find(|b| b.name == n).map(|b| b.addr);
    let pools: serde_json::Map<String, Value> = names[1..]
        .iter()
        .map(|n| (n.to_string(), json!({"backends": [url(by(n).unwrap())]})))
        .collect();
    // listed in an order that is not the precedence: the file order must not matter
    let routes = json!([
        {"path_prefix": "/v2", "pool": "any_v2"},
        {"host": "*.example.com", "pool": "wild"},
        {"host": "*.deep.example.com", "pool": "wild_deep"},
        {"host": "API.example.com", "path_prefix": "/static/", "pool": "exact_static"},
        {"host": "api.example.com", "pool": "exact"},
    ]);
    let proxy = start(&config(
        &[by("default").unwrap()],
        json!({"pools": pools, "routes": routes}),
    ));
    let refs: Vec<&Backend> = backends.iter().collect();
    let cases = [
        // exact host (any case, port ignored), then its longest prefix
        ("api.example.com", "/x", "exact"),
        ("Api.Example.Com:8080", "/static/a.css", "exact_static"),
        // a prefix ending in / matches below it only; the exact host's / route takes the rest
        ("api.example.com", "/static", "exact"),
        // an exact host beats a path-only route even with a longer prefix
        ("api.example.com", "/v2/x", "exact"),
        // wildcards: one label or more, the longest suffix wins
        ("www.example.com", "/", "wild"),
        ("a.b.example.com", "/v2/x", "wild"),
        ("x.deep.example.com", "/", "wild_deep"),
        // the bare suffix is not under the wildcard
        ("example.com", "/v2/y", "any_v2"),
        // a prefix matches at a / boundary or at the end of the path
        ("other.test", "/v2", "any_v2"),
        ("other.test", "/v2?q=1", "any_v2"),
        ("other.test", "/v2x", "default"),
        ("other.test", "/", "default"),
    ];
    for (host, target, want) in cases {
        let (got, _) = routed(&proxy, host, target, &refs);
        assert_eq!(got, want, "{host} {target}");
    }
}

#[test]
fn strip_prefix_removes_the_matched_prefix_and_keeps_a_leading_slash() {
    let (default, api) = (Backend::start("default"), Backend::start("api"));
    let routes = json!([
        {"path_prefix": "/v2", "pool": "api", "strip_prefix": true},
        {"path_prefix": "/api/", "pool": "api", "strip_prefix": true},
        {"path_prefix": "/keep/", "pool": "api"},
    ]);
    let proxy = start(&config(
        &[default.addr],
        json!({"pools": {"api": {"backends": [url(api.addr)]}}, "routes": routes}),
    ));
    let refs = [&default, &api];
    let cases = [
        ("/v2/users?id=1", "/users?id=1"),
        ("/v2", "/"),
        ("/v2?x", "/?x"),
        ("/api/", "/"),
        ("/api/a/b", "/a/b"),
        ("/keep/it", "/keep/it"),
    ];
    for (target, want) in cases {
        let (got, seen) = routed(&proxy, "h.test", target, &refs);
        assert_eq!((got.as_str(), seen.as_str()), ("api", want), "{target}");
    }
}

#[test]
fn no_route_and_no_default_pool_is_404_and_a_pool_with_no_backend_is_503() {
    let api = Backend::start("api");
    let cfg = config(
        &[],
        json!({
            "pools": {
                "api": {"backends": [url(api.addr)]},
                "empty": {"backends": []},
            },
            "routes": [
                {"host": "api.test", "pool": "api"},
                {"host": "empty.test", "pool": "empty"},
            ],
        }),
    );
    let proxy = start(&cfg);
    assert_eq!(served_by(&get(&proxy, "api.test", "/")), "api");
    let r = get(&proxy, "nowhere.test", "/x");
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.text().lines().count(), 1, "a one-line body: {r:?}");
    assert_eq!(get(&proxy, "empty.test", "/").status, 503);
    // the connection that got the 404 does not hold up others
    assert_eq!(served_by(&get(&proxy, "api.test", "/")), "api");
}

#[test]
fn each_pool_balances_with_its_own_strategy_and_stickiness() {
    let d = [Backend::start("d1"), Backend::start("d2")];
    let s = [Backend::start("s1"), Backend::start("s2")];
    let cfg = config(
        &[d[0].addr, d[1].addr],
        json!({
            "strategy": "round-robin",
            "pools": {"shop": {
                "backends": [url(s[0].addr), url(s[1].addr)],
                "enable_sticky_sessions": true,
                "sticky_mode": "cookie",
            }},
            "routes": [{"host": "shop.test", "pool": "shop"}],
        }),
    );
    let proxy = start(&cfg);
    // default: round robin, no cookie
    let mut seen = Vec::new();
    for _ in 0..4 {
        let r = get(&proxy, "www.test", "/");
        assert!(r.header("set-cookie").is_none(), "{r:?}");
        seen.push(served_by(&r));
    }
    assert!(
        seen.contains(&"d1".into()) && seen.contains(&"d2".into()),
        "{seen:?}"
    );
    // shop: a cookie of its own name, and every request with it goes to the same backend
    let first = get(&proxy, "shop.test", "/");
    let cookie = first
        .header("set-cookie")
        .unwrap_or_else(|| panic!("shop sets its sticky cookie: {first:?}"))
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    let (name, _) = cookie.split_once('=').expect("name=value");
    assert!(
        name.ends_with("shop"),
        "the pool's own cookie name: {cookie}"
    );
    let owner = served_by(&first);
    for _ in 0..6 {
        let r = get_with(&proxy, "shop.test", "/", &format!("Cookie: {cookie}\r\n"));
        assert_eq!(served_by(&r), owner);
    }
    // the shop's cookie means nothing to the default pool
    let mut seen = Vec::new();
    for _ in 0..4 {
        let r = get_with(&proxy, "www.test", "/", &format!("Cookie: {cookie}\r\n"));
        seen.push(served_by(&r));
    }
    assert!(
        seen.contains(&"d1".into()) && seen.contains(&"d2".into()),
        "{seen:?}"
    );
}

#[test]
fn health_checks_run_per_pool_with_the_pools_own_settings() {
    let (d, a) = (Backend::start("d"), Backend::start("a"));
    let dead = dead_addr();
    let cfg = config(
        &[d.addr],
        json!({
            "pools": {"api": {
                "backends": [url(a.addr), url(dead.addr)],
                "health_check_method": "http",
                "health_check_path": "/healthz",
                "health_check_frequency": "100ms",
                "health_check_fall": 1,
            }},
            "routes": [{"path_prefix": "/api/", "pool": "api"}],
        }),
    );
    let proxy = start(&cfg);
    let api = proxy.handle.pools().current();
    let api = api.by_name("api").expect("pool api").balancer.current();
    let dead_backend = api
        .backends()
        .iter()
        .find(|b| b.addr == dead.addr)
        .cloned()
        .expect("the dead backend");
    // bounded: 10 s for the checker to take it down
    let limit = Instant::now() + Duration::from_secs(10);
    while dead_backend.is_healthy() {
        assert!(Instant::now() < limit, "api's dead backend never went down");
        thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..6 {
        assert_eq!(served_by(&get(&proxy, "h", "/api/x")), "a");
    }
    assert!(a.record.health_probes() > 0, "api's backends are probed");
    assert_eq!(d.record.health_probes(), 0, "default has checks off");
    let default = proxy.handle.balancer().current();
    assert!(default.backends().iter().all(|b| b.is_healthy()));
}

// ----------------------------------------------------------------------------- reload

/// Requests through the proxy from `threads` clients, each to its `(host, target)` in turn,
/// until stopped; every failure is kept.
struct Traffic {
    stop: Arc<AtomicBool>,
    served: Arc<Mutex<Vec<(Instant, String, String)>>>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(addr: SocketAddr, requests: &[(&str, &str)], threads: usize) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let requests: Vec<(String, String)> = requests
            .iter()
            .map(|(h, t)| (h.to_string(), t.to_string()))
            .collect();
        let threads = (0..threads)
            .map(|_| {
                let (stop, served, failures) = (
                    Arc::clone(&stop),
                    Arc::clone(&served),
                    Arc::clone(&failures),
                );
                let requests = requests.clone();
                thread::spawn(move || {
                    // bounded: at most 30 s or 100,000 requests
                    let limit = Instant::now() + Duration::from_secs(30);
                    let mut client = Client::connect(addr);
                    for n in 0..100_000usize {
                        if stop.load(Ordering::Relaxed) || Instant::now() > limit {
                            return;
                        }
                        let (host, target) = &requests[n % requests.len()];
                        let last = n % 20 == 19;
                        let close = if last { "Connection: close\r\n" } else { "" };
                        let sent = Instant::now();
                        client.send(
                            format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{close}\r\n")
                                .as_bytes(),
                        );
                        match client.try_response() {
                            Ok(r) if r.status == 200 => {
                                let name = served_by(&r);
                                served.lock().unwrap().push((sent, host.clone(), name));
                            }
                            Ok(r) => failures
                                .lock()
                                .unwrap()
                                .push(format!("{host}{target}: status {}", r.status)),
                            Err(e) => failures.lock().unwrap().push(format!("error {e}")),
                        }
                        if last {
                            client = Client::connect(addr);
                        }
                    }
                })
            })
            .collect();
        Traffic {
            stop,
            served,
            failures,
            threads,
        }
    }

    fn wait_for(&self, n: usize) {
        let target = self.served.lock().unwrap().len() + n;
        let limit = Instant::now() + Duration::from_secs(15);
        while self.served.lock().unwrap().len() < target {
            assert!(Instant::now() < limit, "traffic stalled");
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Who served each host's requests sent after `since`.
    fn served_since(&self, since: Instant) -> Vec<(String, String)> {
        self.served
            .lock()
            .unwrap()
            .iter()
            .filter(|(sent, _, _)| *sent > since)
            .map(|(_, host, name)| (host.clone(), name.clone()))
            .collect()
    }

    fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("traffic thread");
        }
        let failures = self.failures.lock().unwrap().clone();
        failures
    }
}

fn write(path: &Path, cfg: &Value) {
    std::fs::write(path, cfg.to_string()).expect("write config");
}

fn post_reload(admin: SocketAddr) -> (u16, Value) {
    let mut c = Client::connect(admin);
    c.send(
        format!(
            "POST /reload HTTP/1.1\r\nHost: {admin}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    let r = c.response();
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

#[test]
fn a_reload_adds_changes_and_removes_pools_and_routes_under_traffic_with_no_failed_request() {
    let d = Backend::start("d");
    let (a1, a2) = (Backend::start("a1"), Backend::start("a2"));
    let old = Backend::start("old");
    let s = Backend::start("s");
    let before = config(
        &[d.addr],
        json!({
            "pools": {
                "api": {"backends": [url(a1.addr)]},
                "legacy": {"backends": [url(old.addr)]},
            },
            "routes": [
                {"host": "api.test", "pool": "api"},
                {"host": "legacy.test", "pool": "legacy"},
            ],
        }),
    );
    let dir = TempDir::new("routing-reload");
    let path = dir.join("config.json");
    write(&path, &before);
    let loaded = ferrule::Config::load(&path).expect("valid");
    let proxy = ferrule::start_file(&loaded, Some(path.clone())).expect("starts");
    let api_pool = proxy
        .pools()
        .current()
        .by_name("api")
        .map(|m| Arc::clone(&m.balancer));
    let requests = [
        ("api.test", "/a"),
        ("www.test", "/d"),
        ("static.test", "/s"),
    ];
    let started = Instant::now();
    let traffic = Traffic::start(proxy.local_addr(), &requests, 4);
    traffic.wait_for(300);
    let first = traffic.served_since(started);
    assert!(
        first.contains(&("api.test".into(), "a1".into())),
        "{first:?}"
    );
    assert!(
        first.contains(&("static.test".into(), "d".into())),
        "default: {first:?}"
    );

    // api gains a backend and a strategy, legacy goes, static comes with its route
    let after = config(
        &[d.addr],
        json!({
            "pools": {
                "api": {"backends": [url(a1.addr), url(a2.addr)], "strategy": "least-conn"},
                "static": {"backends": [url(s.addr)]},
            },
            "routes": [
                {"host": "api.test", "pool": "api"},
                {"host": "static.test", "pool": "static"},
            ],
        }),
    );
    write(&path, &after);
    let (status, report) = post_reload(proxy.admin_addr());
    let reloaded = Instant::now();
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["pools"]["added"], json!(["static"]), "{report}");
    assert_eq!(report["pools"]["removed"], json!(["legacy"]), "{report}");
    assert!(
        report["pools"]["changed"]["api"]["added"]
            .to_string()
            .contains(&a2.addr.to_string()),
        "{report}"
    );
    traffic.wait_for(1500);
    let now = traffic.served_since(reloaded);
    let failures = traffic.stop();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    let served = |host: &str, name: &str| now.contains(&(host.into(), name.into()));
    assert!(served("static.test", "s"), "the new route: {now:?}");
    assert!(
        !served("static.test", "d"),
        "no longer the default's: {now:?}"
    );
    assert!(
        served("api.test", "a1") && served("api.test", "a2"),
        "{now:?}"
    );
    // the pool that stayed kept its balancer (ids, counters)
    let api_now = proxy
        .pools()
        .current()
        .by_name("api")
        .map(|m| Arc::clone(&m.balancer));
    assert!(matches!((api_pool, api_now), (Some(x), Some(y)) if Arc::ptr_eq(&x, &y)));
    // and the removed pool's host now falls to the default pool
    let mut c = Client::connect(proxy.local_addr());
    c.send(b"GET / HTTP/1.1\r\nHost: legacy.test\r\nConnection: close\r\n\r\n");
    assert_eq!(served_by(&c.response()), "d");
    let _ = old;
}

#[test]
fn a_config_without_pools_and_routes_behaves_as_before() {
    // the repository's config.json, as a newcomer runs it
    let seed = ferrule::Config::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config.json"
    )))
    .expect("config.json is valid");
    assert!(seed.pools.is_empty() && seed.routes.is_empty());
    assert!(seed.default_serves());
    // every host and path goes to the one pool, as before routing existed
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let proxy = start(&config(
        &[a.addr, b.addr],
        json!({"strategy": "round-robin"}),
    ));
    let mut seen = Vec::new();
    for (host, target) in [
        ("x", "/"),
        ("y.example.com", "/v2/x"),
        ("localhost", "/static/"),
    ] {
        for _ in 0..2 {
            let r = get(&proxy, host, target);
            assert_eq!(r.status, 200, "{r:?}");
            seen.push(served_by(&r));
        }
    }
    assert!(
        seen.contains(&"a".into()) && seen.contains(&"b".into()),
        "{seen:?}"
    );
    assert!(proxy.handle.pools().current().routes().next().is_none());
}

/// `ferrule --check FILE`: its exit code, stdout and stderr.
fn check(text: &str) -> (Option<i32>, String, String) {
    let dir = TempDir::new("routing-check");
    let path = dir.join("config.json");
    std::fs::write(&path, text).expect("write the config");
    // `--check` reads, validates and exits: it starts no listener
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrule"))
        .arg("--check")
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run ferrule --check");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status.code(), text(out.stdout), text(out.stderr))
}

// Proves `--check` names a bad route by its index, with a suggestion, on one line and exit 1;
// and that a good file's verdict counts the pools and routes, with the unused pool a warning.
#[test]
fn check_names_a_bad_route_by_its_index_and_warns_about_an_unused_pool() {
    let pools = r#""pools": {"api": {"backends": [{"url": "http://127.0.0.1:9000"}]},
                             "idle": {"backends": [{"url": "http://127.0.0.1:9001"}]}}"#;
    let bad = format!(
        r#"{{"port": 18090, "admin_port": 18091, {pools},
            "routes": [{{"host": "api.test", "pool": "api"}}, {{"path_prefix": "/v2/", "pool": "apj"}}]}}"#
    );
    let (code, stdout, stderr) = check(&bad);
    assert_eq!(code, Some(1), "stdout: {stdout:?}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr:?}");
    assert!(
        lines[0].ends_with("routes[1].pool: no pool named \"apj\" (did you mean \"api\"?)"),
        "{stderr:?}"
    );

    let good = format!(
        r#"{{"port": 18090, "admin_port": 18091, "backends": [{{"url": "http://127.0.0.1:9002"}}],
            {pools}, "routes": [{{"host": "api.test", "pool": "api"}}]}}"#
    );
    let (code, stdout, stderr) = check(&good);
    assert_eq!(code, Some(0), "stderr: {stderr:?}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].ends_with(
            "is valid (1 backend, strategy round-robin, port 18090, 2 more pools, 1 route)"
        ),
        "{stdout:?}"
    );
    assert!(
        lines.contains(&"ferrule: warning: pools.idle: no route sends requests to it"),
        "{stdout:?}"
    );
}
