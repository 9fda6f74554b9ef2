//! Backends by name: each address a name resolves to is a backend of its own, and the pool
//! follows the name as it changes (every `dns_refresh`).
//!
//! No real DNS: the name (under `.invalid`, which ferrule never sends to DNS) is pinned in a
//! `hosts_file` the test rewrites, and the backends listen
//! on loopback addresses of their own (all of 127.0.0.0/8 is the loopback on Linux), on one port,
//! as the pods behind a headless service would.

use crate::common;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::{admin_get_at, served_by, Backend, Client, TempDir};
use serde_json::{json, Value};

/// Three backends `127.0.0.{2,3,4}:PORT` on one port (the port is retried a few times if one of
/// the three addresses has it taken).
fn backends_on_one_port() -> (u16, Vec<Backend>) {
    for _ in 0..20 {
        let first = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
        let port = first.local_addr().expect("addr").port();
        let others: Vec<_> = ["127.0.0.3", "127.0.0.4"]
            .iter()
            .map(|ip| TcpListener::bind((*ip, port)))
            .collect();
        if others.iter().all(Result::is_ok) {
            let mut list = vec![Backend::start_on(first, "two")];
            for (l, name) in others.into_iter().zip(["three", "four"]) {
                list.push(Backend::start_on(l.expect("bound"), name));
            }
            return (port, list);
        }
    }
    panic!("no port free on 127.0.0.2, .3 and .4 in 20 tries");
}

/// A config in front of `backends` (JSON entries) with `workers` workers, names looked up in
/// `hosts` and again every 100 ms, no health checks (the test backends count every request).
fn dns_config(hosts: &Path, workers: usize, backends: Value) -> Value {
    json!({
        "port": 0,
        "admin_port": 0,
        "bind": "127.0.0.1",
        "workers": workers,
        "health_check_method": "none",
        "dns_refresh": "100ms",
        "hosts_file": hosts.to_str().expect("utf-8 path"),
        "backends": backends,
    })
}

fn pin(hosts: &Path, ips: &[&str]) {
    let text: String = ips.iter().map(|ip| format!("{ip} app.invalid\n")).collect();
    // written whole, then renamed: the refresh never reads half a file
    let tmp = hosts.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write hosts");
    std::fs::rename(&tmp, hosts).expect("rename hosts");
}

/// The addresses of the backends of `url` that take requests, sorted.
fn live_addrs(admin: SocketAddr, url: &str) -> Vec<String> {
    let list = admin_get_at(admin, "/backends");
    let mut addrs: Vec<String> = list["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .filter(|b| b["url"] == url && b["state"] == "up")
        .filter_map(|b| b["addr"].as_str().map(str::to_owned))
        .collect();
    addrs.sort();
    addrs
}

/// Waits (bounded: 10 s) until the live addresses of `url` are `want`.
fn wait_for_addrs(admin: SocketAddr, url: &str, want: &[String]) {
    let limit = Instant::now() + Duration::from_secs(10);
    loop {
        let now = live_addrs(admin, url);
        if now == want {
            return;
        }
        assert!(
            Instant::now() < limit,
            "backends of {url}: {now:?}, want {want:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn who_serves(proxy: SocketAddr, n: usize) -> Vec<String> {
    let mut names: Vec<String> = (0..n)
        .map(|_| {
            let mut c = Client::connect(proxy);
            c.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            let r = c.response();
            assert_eq!(r.status, 200, "{r:?}");
            served_by(&r)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn a_name_going_from_one_address_to_two_to_one_is_followed() {
    let (port, _backends) = backends_on_one_port();
    let dir = TempDir::new("dns-follow");
    let hosts = dir.join("hosts");
    pin(&hosts, &["127.0.0.2"]);
    let url = format!("http://app.invalid:{port}");
    let cfg = dns_config(&hosts, 2, json!([{"url": url}]));
    let config = ferrule::Config::from_json_str(&cfg.to_string()).expect("valid");
    assert_eq!(config.pool.backends.len(), 1);
    let proxy = ferrule::start(&config).expect("starts");
    let admin = proxy.admin_addr();
    let at = |ip: &str| format!("{ip}:{port}");
    assert_eq!(who_serves(proxy.local_addr(), 4), ["two"]);

    pin(&hosts, &["127.0.0.3", "127.0.0.2"]);
    wait_for_addrs(admin, &url, &[at("127.0.0.2"), at("127.0.0.3")]);
    assert_eq!(who_serves(proxy.local_addr(), 8), ["three", "two"]);

    pin(&hosts, &["127.0.0.4"]);
    wait_for_addrs(admin, &url, &[at("127.0.0.4")]);
    assert_eq!(who_serves(proxy.local_addr(), 6), ["four"]);
    // the running config follows what DNS said (a reload compares against it)
    let shown = admin_get_at(admin, "/config");
    assert_eq!(
        shown["backends"].as_array().map(Vec::len),
        Some(1),
        "{shown}"
    );
}

#[test]
fn every_address_of_a_name_is_a_backend_from_the_start_and_a_failed_lookup_keeps_them() {
    let (port, _backends) = backends_on_one_port();
    let dir = TempDir::new("dns-keep");
    let hosts = dir.join("hosts");
    pin(&hosts, &["127.0.0.2", "127.0.0.3"]);
    let url = format!("http://app.invalid:{port}");
    let cfg = dns_config(&hosts, 1, json!([{"url": url, "weight": 2}]));
    let config = ferrule::Config::from_json_str(&cfg.to_string()).expect("valid");
    assert_eq!(config.pool.backends.len(), 2, "one backend per address");
    assert!(config.pool.backends.iter().all(|b| b.weight == 2));
    let proxy = ferrule::start(&config).expect("starts");
    let both = [format!("127.0.0.2:{port}"), format!("127.0.0.3:{port}")];
    assert_eq!(live_addrs(proxy.admin_addr(), &url), both);

    // the name stops resolving (the file no longer has it, and a name under .invalid is refused
    // without asking DNS): the last addresses stay
    std::fs::write(&hosts, "127.0.0.9 other.test\n").expect("write hosts");
    let limit = Instant::now() + Duration::from_millis(600);
    while Instant::now() < limit {
        assert_eq!(live_addrs(proxy.admin_addr(), &url), both);
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(who_serves(proxy.local_addr(), 6), ["three", "two"]);
    // and the refresh went on meanwhile: once the name resolves again, the pool follows it
    pin(&hosts, &["127.0.0.4"]);
    wait_for_addrs(proxy.admin_addr(), &url, &[format!("127.0.0.4:{port}")]);
}

#[test]
fn dns_refresh_and_hosts_file_are_checked() {
    let bad = json!({"backends": [{"url": "http://127.0.0.1:1"}], "dns_refresh": "often"});
    let e = ferrule::Config::from_json_str(&bad.to_string())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("dns_refresh"), "{e}");
    let missing =
        json!({"backends": [{"url": "http://127.0.0.1:1"}], "hosts_file": "/nonexistent/hosts"});
    let e = ferrule::Config::from_json_str(&missing.to_string())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("hosts_file"), "{e}");
}

#[test]
fn a_reload_that_brings_the_first_name_starts_the_refresh() {
    let (port, _backends) = backends_on_one_port();
    let plain = Backend::start("plain");
    let dir = TempDir::new("dns-reload");
    let hosts = dir.join("hosts");
    pin(&hosts, &["127.0.0.2"]);
    let path = dir.join("config.json");
    let base = dns_config(
        &hosts,
        1,
        json!([{"url": format!("http://{}", plain.addr)}]),
    );
    std::fs::write(&path, base.to_string()).expect("write config");
    let config = ferrule::Config::load(&path).expect("valid");
    let proxy = ferrule::start_file(&config, Some(path.clone())).expect("starts");
    let url = format!("http://app.invalid:{port}");
    let mut with_name = base.clone();
    with_name["backends"] = json!([{"url": url}]);
    std::fs::write(&path, with_name.to_string()).expect("write config");
    let mut c = Client::connect(proxy.admin_addr());
    c.send(b"POST /reload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!(c.response().status, 200);
    assert_eq!(who_serves(proxy.local_addr(), 3), ["two"]);
    pin(&hosts, &["127.0.0.3"]);
    wait_for_addrs(proxy.admin_addr(), &url, &[format!("127.0.0.3:{port}")]);
    assert_eq!(who_serves(proxy.local_addr(), 3), ["three"]);
}
