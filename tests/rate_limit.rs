//! Rate limits (issue 24, `rate_limit`): a token bucket per key shared by every worker, 429 with
//! `Retry-After` over it, the request never reaching a backend and the connection staying usable.
//!
//! Real backends on 127.0.0.1:0 that count what reaches them, a proxy in this process with 2
//! workers, and clients from several loopback addresses (127.0.0.2, 127.0.0.3, ...: the socket
//! is bound before it connects). The rates are chosen so that a test waits for time only where
//! the refill is what it shows, and never longer than the rate says.

use std::net::{IpAddr, Ipv4Addr};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::h2::{Mode, Setup};
use crate::common::tls::run_check;
use crate::common::{admin_get_at, Backend, Client, Proxy, Response, TempDir};
use serde_json::{json, Value};

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A proxy (2 workers, no health checks) in front of `backend`, `extra` merged in.
fn start(backend: &Backend, extra: Value) -> Proxy {
    let mut cfg = json!({"health_check_method": "none"});
    if let (Some(map), Value::Object(more)) = (cfg.as_object_mut(), extra) {
        map.extend(more);
    }
    Proxy::start(&[backend.addr], cfg)
}

/// One keep-alive request on `c` for `target`, with `extra` header lines.
fn request(c: &mut Client, target: &str, extra: &str) -> Response {
    c.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n{extra}\r\n").as_bytes());
    c.response()
}

/// The statuses of `n` requests for `target` from `from`, each on a connection of its own.
fn statuses(proxy: &Proxy, from: IpAddr, target: &str, extra: &str, n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| {
            let mut c = Client::connect_from(proxy.addr(), from);
            request(&mut c, target, extra).status
        })
        .collect()
}

fn retry_after(r: &Response) -> u64 {
    r.header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no whole Retry-After: {r:?}"))
}

/// Asserts that `r` is the 429 of ferrule's own, with a `Retry-After` of 1 to `most` seconds,
/// and that it leaves the connection open.
#[track_caller]
fn assert_limited(r: &Response, most: u64) {
    assert_eq!(r.status, 429, "{r:?}");
    let secs = retry_after(r);
    assert!((1..=most).contains(&secs), "Retry-After {secs}");
    assert!(r.text().contains("too many requests"), "{}", r.text());
    assert!(!r.closes(), "the connection stays: {r:?}");
}

fn metrics(proxy: &Proxy) -> String {
    let mut a = Client::connect(proxy.admin());
    a.send(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    a.response().text()
}

// Proves: a client over its budget gets 429 with Retry-After on every one of its connections
// (spread over both workers: one bucket for all), while another address is served; no 429
// reaches the backend; and the connection that got a 429 serves its next request.
#[test]
fn a_limited_client_gets_429s_on_every_connection_while_another_address_is_served() {
    let backend = Backend::start("a");
    // one request every 10 s, 4 at once: nothing refills during the test
    let proxy = start(
        &backend,
        json!({"rate_limit": {"requests_per_second": 0.1, "burst": 4},
               "routes": [{"path_prefix": "/free", "pool": "default", "rate_limit": null}]}),
    );
    // four connections from 127.0.0.2, a request each, then a second on each
    let mut conns: Vec<Client> = (0..4)
        .map(|_| Client::connect_from(proxy.addr(), ip(2)))
        .collect();
    for c in &mut conns {
        assert_eq!(request(c, "/", "").status, 200);
    }
    for c in &mut conns {
        assert_limited(&request(c, "/", ""), 10);
    }
    // a new connection is no way around it
    assert_eq!(statuses(&proxy, ip(2), "/", "", 2), [429, 429]);
    // another address has its own budget
    assert_eq!(
        statuses(&proxy, ip(3), "/", "", 5),
        [200, 200, 200, 200, 429]
    );
    assert_eq!(backend.record.count(), 8, "no 429 reached the backend");
    // the connection that got a 429 serves its next request (a route without a limit)
    let c = &mut conns[0];
    assert_eq!(request(c, "/free/x", "").status, 200);
    assert_limited(&request(c, "/", ""), 10);
    assert_eq!(backend.record.count(), 9);
    // a 429 to a request with a body read whole keeps the connection too
    c.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    assert_limited(&c.response(), 10);
    assert_eq!(request(c, "/free/y", "").status, 200);
    assert_eq!(backend.record.count(), 10);
}

// Proves: the budget refills at its rate and no faster. At 20 requests a second (one every 50
// ms) with a burst of 5, a client asking all the time for a measured time E gets at most
// 5 + E/50ms + 1 and at least 5 + E/50ms - 2 answers; and a refused one is told 1 s.
#[test]
fn the_budget_refills_at_its_rate() {
    let backend = Backend::start("a");
    let proxy = start(
        &backend,
        json!({"rate_limit": {"requests_per_second": 20, "burst": 5}}),
    );
    let mut c = Client::connect_from(proxy.addr(), ip(4));
    let began = Instant::now();
    for _ in 0..5 {
        assert_eq!(request(&mut c, "/", "").status, 200);
    }
    let r = request(&mut c, "/", "");
    if began.elapsed() < Duration::from_millis(50) {
        assert_limited(&r, 1);
    }
    let mut allowed = 5 + u64::from(r.status == 200);
    // ask every 5 ms for 600 ms (a wait for time to pass: the refill is what is measured)
    // bounded: 600 ms
    while began.elapsed() < Duration::from_millis(600) {
        match request(&mut c, "/", "") {
            r if r.status == 200 => allowed += 1,
            r => assert_limited(&r, 1),
        }
        thread::sleep(Duration::from_millis(5));
    }
    let elapsed = began.elapsed().as_millis() as u64;
    let most = 5 + elapsed / 50 + 1;
    let least = 5 + elapsed / 50 - 2;
    assert!(
        (least..=most).contains(&allowed),
        "{allowed} allowed in {elapsed} ms"
    );
    assert_eq!(backend.record.count() as u64, allowed);
}

// Proves: `header:` and `cookie:` keys keep a bucket per value; a request without the header or
// cookie is keyed by its address, so leaving it out does not escape the limit.
#[test]
fn header_and_cookie_keys_have_a_bucket_per_value_and_fall_back_to_the_address() {
    let backend = Backend::start("a");
    let proxy = start(
        &backend,
        json!({"rate_limit": {"requests_per_second": 0.1, "burst": 2, "key": "header:X-Api-Key"},
               "routes": [{"path_prefix": "/c", "pool": "default",
                           "rate_limit": {"requests_per_second": 0.1, "burst": 2,
                                          "key": "cookie:sid"}}]}),
    );
    let from = ip(5);
    let key_a = "X-Api-Key: a\r\n";
    assert_eq!(statuses(&proxy, from, "/", key_a, 3), [200, 200, 429]);
    assert_eq!(
        statuses(&proxy, from, "/", "X-Api-Key: b\r\n", 3),
        [200, 200, 429]
    );
    // from another address, key a is still spent: the key is the header, not the address
    assert_eq!(statuses(&proxy, ip(6), "/", key_a, 1), [429]);
    // no header: the address's own bucket
    assert_eq!(statuses(&proxy, from, "/", "", 3), [200, 200, 429]);
    let sid = |v: &str| format!("Cookie: theme=dark; sid={v}\r\n");
    assert_eq!(statuses(&proxy, from, "/c", &sid("1"), 3), [200, 200, 429]);
    assert_eq!(statuses(&proxy, from, "/c", &sid("2"), 3), [200, 200, 429]);
    assert_eq!(statuses(&proxy, from, "/c", "", 3), [200, 200, 429]);
    assert_eq!(backend.record.count(), 12);
}

// Proves: `rate_limit_exempt` addresses are never limited; a route's `null` turns the limit off
// and its own limit has its own budget; a pool's `false` turns the top level's off.
#[test]
fn exempt_addresses_a_routes_null_or_own_limit_and_a_pools_false() {
    let backend = Backend::start("a");
    let other = Backend::start("open");
    let proxy = start(
        &backend,
        json!({"rate_limit": {"requests_per_second": 0.1, "burst": 1},
               "rate_limit_exempt": ["127.0.0.8/30"],
               "pools": {"open": {"backends": [{"url": format!("http://{}", other.addr)}],
                                  "rate_limit": false}},
               "routes": [{"path_prefix": "/open", "pool": "open"},
                          {"path_prefix": "/free", "pool": "default", "rate_limit": null},
                          {"path_prefix": "/own", "pool": "default",
                           "rate_limit": {"requests_per_second": 0.1, "burst": 3}},
                          {"path_prefix": "/shared", "pool": "default"}]}),
    );
    let from = ip(7);
    assert_eq!(statuses(&proxy, from, "/", "", 2), [200, 429]);
    // a route without its own limit shares its pool's bucket
    assert_eq!(statuses(&proxy, from, "/shared", "", 1), [429]);
    assert_eq!(statuses(&proxy, from, "/free", "", 4), [200; 4]);
    assert_eq!(statuses(&proxy, from, "/open", "", 4), [200; 4]);
    assert_eq!(statuses(&proxy, from, "/own", "", 4), [200, 200, 200, 429]);
    // 127.0.0.9 is inside 127.0.0.8/30
    assert_eq!(statuses(&proxy, ip(9), "/", "", 4), [200; 4]);
    assert_eq!(statuses(&proxy, ip(9), "/own", "", 4), [200; 4]);
    assert_eq!(backend.record.count(), 1 + 4 + 3 + 8);
    assert_eq!(other.record.count(), 4);
}

// Proves: over HTTP/2 the 429 is the same stream answer, with Retry-After, the request never
// reaches the backend, and the connection goes on serving streams.
#[test]
fn over_http2_a_stream_gets_the_429_and_the_connection_goes_on() {
    let backend = Backend::start("a");
    let setup = Setup::start(
        Mode::H2c,
        &[backend.addr],
        json!({"health_check_method": "none",
               "rate_limit": {"requests_per_second": 0.1, "burst": 2},
               "routes": [{"path_prefix": "/free", "pool": "default", "rate_limit": false}]}),
    );
    let mut w = setup.wire();
    assert_eq!(w.get("/").status(), 200);
    assert_eq!(w.get("/").status(), 200);
    let r = w.get("/");
    assert_eq!(r.status(), 429);
    let secs: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=10).contains(&secs), "{secs}");
    assert!(r.text().contains("too many requests"));
    assert_eq!(w.get("/free").status(), 200, "the connection goes on");
    assert_eq!(w.get("/").status(), 429);
    assert_eq!(backend.record.count(), 3);
    // HTTP/1.1 from the same address shares the bucket
    let mut c = Client::connect(setup.addr());
    assert_eq!(request(&mut c, "/", "").status, 429);
}

// Proves: 429s are counted in /stats (`rate_limited`, in total and per worker), in
// `ferrule_rate_limited_total{pool,route}` (route "" for requests no route took) and in the
// access log (status 429).
#[test]
fn refusals_are_counted_in_stats_metrics_and_the_access_log() {
    let backend = Backend::start("a");
    let dir = TempDir::new("rate-limit-log");
    let log = dir.join("access.log");
    let proxy = start(
        &backend,
        json!({"rate_limit": {"requests_per_second": 0.1, "burst": 1},
               "access_log": log.to_string_lossy(), "access_log_format": "json",
               "routes": [{"path_prefix": "/api", "pool": "default", "name": "api",
                           "rate_limit": {"requests_per_second": 0.1, "burst": 2}}]}),
    );
    let from = ip(10);
    assert_eq!(statuses(&proxy, from, "/api", "", 4), [200, 200, 429, 429]);
    assert_eq!(statuses(&proxy, from, "/", "", 2), [200, 429]);
    let stats = admin_get_at(proxy.admin(), "/stats");
    assert_eq!(stats["rate_limited"], 3, "{stats}");
    let per_worker: u64 = stats["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| w["rate_limited"].as_u64().expect("a count"))
        .sum();
    assert_eq!(per_worker, 3);
    assert_eq!(stats["responses"]["4xx"], 3);
    let text = metrics(&proxy);
    for line in [
        "ferrule_rate_limited_total{pool=\"default\",route=\"api\"} 2",
        "ferrule_rate_limited_total{pool=\"default\",route=\"\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    // the access log has each request, the 429s with their status
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines: Vec<Value> = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        // bounded: 10 s
        if lines.len() >= 6 || Instant::now() >= deadline {
            break lines;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let limited: Vec<&Value> = lines.iter().filter(|l| l["status"] == 429).collect();
    assert_eq!(limited.len(), 3, "{lines:#?}");
    assert!(
        limited.iter().all(|l| l["client"] == "127.0.0.10"),
        "{limited:#?}"
    );
}

// Proves: `--check` names the field at fault, on one line, and exits 1.
#[test]
fn check_names_the_rate_limit_field_at_fault() {
    let dir = TempDir::new("rate-limit-check");
    let cases = [
        (
            json!({"rate_limit": {"requests_per_second": 5, "burst": 0}}),
            "rate_limit.burst: must be at least 1",
        ),
        (
            json!({"pools": {"api": {"rate_limit": {"brust": 3}}}}),
            "pools.api.rate_limit.brust: unknown key (did you mean \"burst\"?)",
        ),
        (
            json!({"pools": {"api": {}}, "routes": [{"pool": "api"},
                   {"path_prefix": "/x", "pool": "api", "rate_limit": {"requests_per_second": 0}}]}),
            "routes[1].rate_limit.requests_per_second: must be at least 0.001 (a request every \
             1000 s)",
        ),
        (
            json!({"rate_limit_exempt": ["10.0.0.0/8", "nope"]}),
            "rate_limit_exempt[1]: ",
        ),
    ];
    for (i, (config, message)) in cases.iter().enumerate() {
        let out = run_check(&dir, &format!("bad{i}"), config);
        assert_eq!(out.code, Some(1), "{config}: {out:?}");
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{:?}", out.stderr);
        assert!(lines[0].contains(message), "{config}: {:?}", out.stderr);
    }
    let good = json!({"port": 0, "backends": [], "rate_limit": {"requests_per_second": 0.5},
                      "rate_limit_exempt": ["10.0.0.0/8"], "rate_limit_max_keys": 1000});
    let out = run_check(&dir, "good", &good);
    assert_eq!(out.code, Some(0), "{out:?}");
}
