//! Live reload: `POST /reload` and `SIGHUP` re-read the config file and apply it in place.
//!
//! Every test writes its config to a file of its own, starts ferrule from that file (in this
//! process, or as the binary for `SIGHUP`), rewrites the file and reloads. Under traffic: no
//! request fails while backends come and go and weights and strategy change.
//!
//! Backends by name, which the pool follows as they resolve anew (`dns_refresh`), are in `dns`.

use crate::common;

mod dns;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{admin_get_at, served_by, Backend, Client, ProxyProcess, TempDir};
use serde_json::{json, Value};

/// A proxy started from `path`, as `ferrule path` would be.
fn start_from(path: &Path) -> ferrule::Handle {
    let config = ferrule::Config::load(path).expect("test config is valid");
    ferrule::start_file(&config, Some(path.to_path_buf())).expect("proxy starts")
}

/// A config with `backends` (`(addr, weight)`), ports 0, 2 workers, no health checks (the test
/// backends count every request), and `extra` merged in.
fn config(backends: &[(SocketAddr, u32)], extra: Value) -> Value {
    let list: Vec<Value> = backends
        .iter()
        .map(|(a, w)| json!({"url": format!("http://{a}"), "weight": w}))
        .collect();
    let mut cfg = json!({
        "port": 0,
        "admin_port": 0,
        "bind": "127.0.0.1",
        "workers": 2,
        "health_check_method": "none",
        "backends": list,
    });
    if let (Some(map), Value::Object(more)) = (cfg.as_object_mut(), extra) {
        map.extend(more);
    }
    cfg
}

fn write(path: &Path, cfg: &Value) {
    std::fs::write(path, cfg.to_string()).expect("write config");
}

/// `cfg` as `config.json` in a fresh temporary directory (removed when dropped: keep it until the
/// proxy reading the file is gone); its path.
fn config_file(name: &str, cfg: &Value) -> (TempDir, PathBuf) {
    let dir = TempDir::new(name);
    let path = dir.join("config.json");
    write(&path, cfg);
    (dir, path)
}

/// One admin API call: status and JSON body.
fn admin(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut c = Client::connect(addr);
    c.send(
        format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let r = c.response();
    let value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {}", r.text()));
    (r.status, value)
}

fn reload(handle: &ferrule::Handle) -> (u16, Value) {
    admin(handle.admin_addr(), "POST", "/reload", None)
}

/// Requests through the proxy from `threads` clients (keep-alive, a new connection every 20
/// requests) until stopped; counts who served what and every failure.
struct Traffic {
    stop: Arc<AtomicBool>,
    /// When each request was sent, and who answered it.
    seen: Arc<Mutex<Vec<(Instant, String)>>>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(addr: SocketAddr, threads: usize) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..threads)
            .map(|_| {
                let (stop, seen, failures) =
                    (Arc::clone(&stop), Arc::clone(&seen), Arc::clone(&failures));
                thread::spawn(move || {
                    // bounded: at most 30 s or 200,000 requests, whichever comes first
                    let limit = Instant::now() + Duration::from_secs(30);
                    let mut client = Client::connect(addr);
                    for n in 0..200_000u32 {
                        if stop.load(Ordering::Relaxed) || Instant::now() > limit {
                            return;
                        }
                        let last = n % 20 == 19;
                        let close = if last { "Connection: close\r\n" } else { "" };
                        let sent = Instant::now();
                        client.send(
                            format!("GET /n{n} HTTP/1.1\r\nHost: t\r\n{close}\r\n").as_bytes(),
                        );
                        match client.try_response() {
                            Ok(r) if r.status == 200 => {
                                seen.lock().unwrap().push((sent, served_by(&r)));
                            }
                            Ok(r) => failures
                                .lock()
                                .unwrap()
                                .push(format!("status {}", r.status)),
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
            seen,
            failures,
            threads,
        }
    }

    /// Waits until at least `n` more responses came back (bounded: 10 s).
    fn wait_for(&self, n: usize) {
        let target = self.seen.lock().unwrap().len() + n;
        let limit = Instant::now() + Duration::from_secs(10);
        while self.seen.lock().unwrap().len() < target {
            assert!(Instant::now() < limit, "traffic stalled");
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The responses since the last call to requests sent after `since`, by backend.
    fn take(&self, since: Instant) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for (sent, name) in self.seen.lock().unwrap().drain(..) {
            if sent > since {
                *counts.entry(name).or_insert(0) += 1;
            }
        }
        counts
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

#[test]
fn reload_under_traffic_changes_backends_weights_and_strategy_with_no_failed_request() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let (_dir, path) = config_file(
        "under-traffic",
        &config(&[(a.addr, 1), (b.addr, 1)], json!({})),
    );
    let proxy = start_from(&path);
    let before = admin_get_at(proxy.admin_addr(), "/backends");
    let id_of = |list: &Value, addr: SocketAddr| -> u64 {
        common::backend_entry(list, addr)["id"]
            .as_u64()
            .expect("id")
    };
    let b_id = id_of(&before, b.addr);

    let started = Instant::now();
    let traffic = Traffic::start(proxy.local_addr(), 4);
    traffic.wait_for(400);
    let first = traffic.take(started);
    assert!(
        first.contains_key("a") && first.contains_key("b"),
        "{first:?}"
    );

    // a leaves, c joins with weight 3, b stays (weight 1): weighted round robin
    write(
        &path,
        &config(
            &[(b.addr, 1), (c.addr, 3)],
            json!({"strategy": "weighted-round-robin"}),
        ),
    );
    let (status, report) = reload(&proxy);
    let reloaded = Instant::now();
    assert_eq!(status, 200, "{report}");
    let added = report["backends"]["added"].to_string();
    let removed = report["backends"]["removed"].to_string();
    assert!(added.contains(&c.addr.to_string()), "{report}");
    assert!(removed.contains(&a.addr.to_string()), "{report}");
    assert!(
        report["changes"].to_string().contains("strategy"),
        "{report}"
    );

    // requests sent before the reload returned may still have gone to a: counted from then on
    traffic.wait_for(2000);
    let after = traffic.take(reloaded);
    let failures = traffic.stop();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(!after.contains_key("a"), "a was removed: {after:?}");
    let (nb, nc) = (after["b"] as f64, after["c"] as f64);
    let ratio = nc / nb;
    assert!(
        (2.5..3.5).contains(&ratio),
        "c:b should be 3:1, got {after:?}"
    );

    // b was kept: the same id, its counters carried on
    let now = admin_get_at(proxy.admin_addr(), "/backends");
    assert_eq!(id_of(&now, b.addr), b_id);
    let kept = common::backend_entry(&now, b.addr);
    assert!(
        kept["total_requests"].as_u64().unwrap_or(0) >= first["b"] as u64,
        "{kept}"
    );
}

#[test]
fn an_invalid_config_is_refused_whole_and_the_running_one_stays() {
    let a = Backend::start("a");
    let (_dir, path) = config_file("invalid", &config(&[(a.addr, 1)], json!({})));
    let proxy = start_from(&path);
    let shown = admin_get_at(proxy.admin_addr(), "/config");

    // a valid new backend, and a bad timeout: nothing of it may apply
    let b = Backend::start("b");
    write(
        &path,
        &config(
            &[(a.addr, 1), (b.addr, 1)],
            json!({"backend_timeout": "soon"}),
        ),
    );
    let (status, answer) = reload(&proxy);
    assert_eq!(status, 400, "{answer}");
    let error = answer["error"].as_str().expect("an error message");
    assert!(error.contains("backend_timeout"), "{error}");
    assert!(!error.contains('\n'), "one line: {error}");
    assert_eq!(admin_get_at(proxy.admin_addr(), "/config"), shown);
    let list = admin_get_at(proxy.admin_addr(), "/backends");
    assert_eq!(list["backends"].as_array().map(Vec::len), Some(1), "{list}");
    for _ in 0..4 {
        let mut c = Client::connect(proxy.local_addr());
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert_eq!(served_by(&c.response()), "a");
    }

    // not JSON at all: refused the same way
    std::fs::write(&path, "{\"port\": ").expect("write");
    let (status, answer) = reload(&proxy);
    assert_eq!(status, 400, "{answer}");
}

#[test]
fn settings_that_need_a_restart_are_reported_and_the_rest_applies() {
    let a = Backend::start("a");
    let (_dir, path) = config_file("restart-only", &config(&[(a.addr, 1)], json!({})));
    let proxy = start_from(&path);
    write(
        &path,
        &config(
            &[(a.addr, 1)],
            json!({"workers": 3, "buffer_size": 65536, "keepalive_timeout": "5s",
                   "ipv6_client_prefix": 48}),
        ),
    );
    let (status, report) = reload(&proxy);
    assert_eq!(status, 200, "{report}");
    let restart = report["restart_required"].to_string();
    assert!(
        restart.contains("workers")
            && restart.contains("buffer_size")
            && restart.contains("ipv6_client_prefix: 48 needs a restart (still 64 until then)"),
        "{report}"
    );
    let shown = admin_get_at(proxy.admin_addr(), "/config");
    assert_eq!(shown["workers"], 2, "still the running value");
    assert_eq!(shown["ipv6_client_prefix"], 64, "still the running value");
    assert_eq!(
        shown["keepalive_timeout"], "5s",
        "the rest applies: {shown}"
    );
    assert!(
        report["changes"].to_string().contains("keepalive_timeout"),
        "{report}"
    );
}

#[test]
fn the_file_wins_over_run_time_changes_and_says_which_it_replaced() {
    let (a, b, extra) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("x"),
    );
    let (_dir, path) = config_file("runtime", &config(&[(a.addr, 1), (b.addr, 1)], json!({})));
    let proxy = start_from(&path);
    let admin_addr = proxy.admin_addr();
    let list = admin_get_at(admin_addr, "/backends");
    let a_id = common::backend_entry(&list, a.addr)["id"]
        .as_u64()
        .expect("id");
    let b_id = common::backend_entry(&list, b.addr)["id"]
        .as_u64()
        .expect("id");
    let url = format!("http://{}", extra.addr);
    assert_eq!(
        admin(admin_addr, "POST", "/backends", Some(json!({"url": url}))).0,
        201
    );
    let (s, _) = admin(
        admin_addr,
        "PATCH",
        &format!("/backends/{a_id}"),
        Some(json!({"weight": 7})),
    );
    assert_eq!(s, 200);
    assert!(admin(admin_addr, "DELETE", &format!("/backends/{b_id}"), None).0 < 300);
    let (s, _) = admin(
        admin_addr,
        "PATCH",
        &format!("/backends/{a_id}"),
        Some(json!({"state": "disabled"})),
    );
    assert_eq!(s, 200);

    // the file is unchanged: a reload puts its backends and weights back
    let (status, report) = reload(&proxy);
    assert_eq!(status, 200, "{report}");
    let replaced = report["replaced_runtime_changes"].to_string();
    assert!(replaced.contains(&extra.addr.to_string()), "{report}");
    assert!(replaced.contains("weight"), "{report}");
    assert!(replaced.contains(&b.addr.to_string()), "{report}");
    let list = admin_get_at(admin_addr, "/backends");
    let urls: Vec<&str> = list["backends"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|e| e["state"] != "draining")
        .filter_map(|e| e["url"].as_str())
        .collect();
    assert_eq!(urls.len(), 2, "{list}");
    assert!(!urls.contains(&url.as_str()), "{list}");
    let a_now = common::backend_entry(&list, a.addr);
    assert_eq!(a_now["id"].as_u64(), Some(a_id), "kept");
    assert_eq!(a_now["weight"], 1, "the file's weight");
    assert_eq!(a_now["state"], "disabled", "a state set by hand stays");
}

#[test]
fn a_token_set_by_a_reload_applies_to_the_next_request() {
    let a = Backend::start("a");
    let (_dir, path) = config_file("token", &config(&[(a.addr, 1)], json!({})));
    let proxy = start_from(&path);
    write(
        &path,
        &config(
            &[(a.addr, 1)],
            json!({"admin_token": "s3cret-0123456789abc"}),
        ),
    );
    assert_eq!(reload(&proxy).0, 200);
    let (status, _) = admin(proxy.admin_addr(), "GET", "/backends", None);
    assert_eq!(status, 401, "the new token is required");
}

#[test]
fn sighup_reloads_the_file_the_binary_was_started_with() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let mut proxy = ProxyProcess::start(config(&[(a.addr, 1)], json!({})), "reload-sighup");
    let path = proxy.config_path();
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    cfg["backends"] = json!([{"url": format!("http://{}", b.addr)}]);
    write(&path, &cfg);
    let status = std::process::Command::new("kill")
        .args(["-HUP", &proxy.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
    proxy.wait_for_log("config reloaded", Duration::from_secs(10));
    let mut c = Client::connect(proxy.addr());
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(served_by(&c.response()), "b");
    // a broken file on SIGHUP: refused, logged, still serving
    std::fs::write(&path, "[]").expect("write");
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &proxy.pid().to_string()])
        .status();
    proxy.wait_for_log("config reload refused", Duration::from_secs(10));
    let mut c = Client::connect(proxy.addr());
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(served_by(&c.response()), "b");
    proxy.terminate();
    assert!(proxy
        .wait_for(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
}

#[test]
fn a_proxy_started_without_a_file_has_nothing_to_reload() {
    let a = Backend::start("a");
    let proxy = common::Proxy::start(&[a.addr], json!({}));
    let (status, answer) = admin(proxy.admin(), "POST", "/reload", None);
    assert_eq!(status, 409, "{answer}");
}

#[test]
fn new_limits_reach_the_workers() {
    let a = Backend::start("a");
    let (_dir, path) = config_file("limits", &config(&[(a.addr, 1)], json!({})));
    let proxy = start_from(&path);
    let long = format!("/{}", "x".repeat(1000));
    let status_of = |target: &str| {
        let mut c = Client::connect(proxy.local_addr());
        c.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes());
        c.response().status
    };
    assert_eq!(status_of(&long), 200);
    write(
        &path,
        &config(&[(a.addr, 1)], json!({"max_uri_length": 512})),
    );
    assert_eq!(reload(&proxy).0, 200);
    // the workers took the new settings (Control::Reconfigure), not only GET /config
    assert_eq!(status_of(&long), 414);
    assert_eq!(status_of("/short"), 200);
}

#[test]
fn turning_active_checks_off_brings_backends_they_took_down_back() {
    let a = Backend::start("a");
    let dead = common::dead_addr();
    let checks = json!({
        "health_check_method": "tcp",
        "health_check_frequency": "100ms",
        "health_check_fall": 1,
        "max_fails": 0,
    });
    let (_dir, path) = config_file(
        "checks-off",
        &config(&[(a.addr, 1), (dead.addr, 1)], checks),
    );
    let proxy = start_from(&path);
    let state_of = |addr: SocketAddr| {
        let list = admin_get_at(proxy.admin_addr(), "/backends");
        common::backend_entry(&list, addr)["state"].clone()
    };
    let limit = Instant::now() + Duration::from_secs(10);
    while state_of(dead.addr) != "down" {
        assert!(
            Instant::now() < limit,
            "the dead backend was never marked down"
        );
        thread::sleep(Duration::from_millis(20));
    }
    write(
        &path,
        &config(&[(a.addr, 1), (dead.addr, 1)], json!({"max_fails": 0})),
    );
    let (status, report) = reload(&proxy);
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        state_of(dead.addr),
        "up",
        "nothing would ever bring it back"
    );
}
