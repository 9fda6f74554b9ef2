//! Traffic control, black-box: slow start (a returning backend's share grows), outlier ejection
//! (a 5xx-only backend is ejected, comes back, and a second ejection lasts longer; the pool
//! keeps a backend), and the retry budget (retries stop at the budget while a backend fails).
//! Each runs 2 workers with clients on several loopback addresses (127.0.0.2, ...), so the
//! shared state is shared across workers.
//!
//! Waits are for the admin API to report a state (polled, bounded), never fixed sleeps; the
//! bounds on shares are derived from the time the requests actually took.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::admin::send;
use crate::common::{backend_entry, dead_addr, served_by, Backend, Client, Proxy, Reply};

/// Client addresses the tests spread their connections over.
const CLIENTS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(127, 0, 0, 2),
    Ipv4Addr::new(127, 0, 0, 3),
    Ipv4Addr::new(127, 0, 0, 4),
    Ipv4Addr::new(127, 0, 0, 5),
];

/// Keep-alive connections from each of [`CLIENTS`].
fn clients(proxy: &Proxy) -> Vec<Client> {
    CLIENTS
        .iter()
        .map(|&ip| Client::connect_from(proxy.addr(), IpAddr::V4(ip)))
        .collect()
}

/// Keep-alive connections from `n` addresses, 127.0.0.2 on.
fn many_clients(proxy: &Proxy, n: u8) -> Vec<Client> {
    (0..n)
        .map(|i| Client::connect_from(proxy.addr(), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i))))
        .collect()
}

/// `n` GETs spread over `clients` in turn: the status and the `X-Backend` of each.
fn spread(clients: &mut [Client], n: usize) -> Vec<(u16, String)> {
    (0..n)
        .map(|i| {
            let len = clients.len();
            let c = &mut clients[i % len];
            c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
            let r = c.response();
            // a response of ferrule's own (502) names no backend
            let by = if r.status == 200 {
                served_by(&r)
            } else {
                r.header("x-backend").unwrap_or("").to_owned()
            };
            (r.status, by)
        })
        .collect()
}

/// The admin API's entry for the backend at `addr`.
fn entry(proxy: &Proxy, addr: SocketAddr) -> Value {
    backend_entry(&proxy.admin_get("/backends"), addr)
}

/// Polls the backend's entry (every 20 ms, at most `limit`) until `done` holds; returns it.
fn wait_entry(
    proxy: &Proxy,
    addr: SocketAddr,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let e = entry(proxy, addr);
        if done(&e) {
            return e;
        }
        assert!(start.elapsed() < limit, "not reached within {limit:?}: {e}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn patch(proxy: &Proxy, id: u64, body: Value) {
    let text = body.to_string();
    let r = send(
        proxy.admin(),
        "PATCH",
        &format!("/backends/{id}"),
        &[("Content-Type", "application/json")],
        Some(text.as_bytes()),
    );
    assert_eq!(r.status, 200, "PATCH {body}: {}", r.text());
}

/// The value of the metrics line that starts with `line_start` and contains `also`.
fn metric(proxy: &Proxy, line_start: &str, also: &str) -> u64 {
    let r = send(proxy.admin(), "GET", "/metrics", &[], None);
    let text = r.text();
    text.lines()
        .find(|l| l.starts_with(line_start) && l.contains(also))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in the metrics"))
}

/// No active checks, passive health off: only what the test does changes a backend's state.
fn quiet() -> Value {
    json!({"health_check_method": "none", "max_fails": 0})
}

fn merged(mut base: Value, more: Value) -> Value {
    if let (Some(map), Value::Object(more)) = (base.as_object_mut(), more) {
        map.extend(more);
    }
    base
}

// ----------------------------------------------------------------------------- slow start

#[test]
fn a_returning_backends_share_starts_low_and_reaches_its_weight_after_slow_start() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    const SLOW_START: Duration = Duration::from_secs(4);
    let proxy = Proxy::start(
        &[a.addr, b.addr],
        merged(quiet(), json!({"slow_start": "4s"})),
    );
    let mut cs = clients(&proxy);
    // at the start nothing ramps: an even split
    let before = spread(&mut cs, 100);
    assert_eq!(before.iter().filter(|(_, by)| by == "b").count(), 50);

    let id = entry(&proxy, b.addr)["id"].as_u64().unwrap_or(0);
    patch(&proxy, id, json!({"state": "disabled"}));
    patch(&proxy, id, json!({"state": "up"}));
    let back = Instant::now();
    let e = entry(&proxy, b.addr);
    let share = e["slow_start"]["share_percent"].as_u64();
    assert!(share.is_some_and(|s| (10..50).contains(&s)), "{e}");

    let early = spread(&mut cs, 200);
    let took = back.elapsed();
    assert!(early.iter().all(|(s, _)| *s == 200));
    let to_b = early.iter().filter(|(_, by)| by == "b").count();
    // it took at most p = 10 % + 90 % of the time gone of the turns it was offered; a turn it
    // lets go is taken by a, and the next turn is b's again, so its part of the requests is at
    // most p / (1 + p) (a half at full weight): bound that, with room for chance
    let p = 0.1 + 0.9 * (took.as_secs_f64() / SLOW_START.as_secs_f64()).min(1.0);
    let bound = (200.0 * p / (1.0 + p) * 1.5) as usize + 10;
    assert!(
        to_b <= bound && to_b < 100,
        "b took {to_b} of 200 within {took:?} of coming back (bound {bound})"
    );

    // the ramp ends (the admin API shows none), then b takes its full half
    wait_entry(&proxy, b.addr, SLOW_START * 3, |e| {
        e["slow_start"].is_null()
    });
    assert!(back.elapsed() >= SLOW_START.saturating_sub(Duration::from_millis(50)));
    let late = spread(&mut cs, 200);
    let to_b = late.iter().filter(|(_, by)| by == "b").count();
    assert!(
        (90..=110).contains(&to_b),
        "b took {to_b} of 200 after its slow start"
    );
}

#[test]
fn consistent_hashing_is_not_slowed() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let proxy = Proxy::start(
        &[a.addr, b.addr],
        merged(
            quiet(),
            json!({"slow_start": "1h", "strategy": "consistent-hash"}),
        ),
    );
    // 16 addresses: both backends have some of them (but with a chance of 2 in 65,536)
    let mut cs = many_clients(&proxy, 16);
    let first: Vec<String> = spread(&mut cs, 32).into_iter().map(|(_, by)| by).collect();
    assert!(first.iter().any(|by| by == "b"), "{first:?}");
    let id = entry(&proxy, b.addr)["id"].as_u64().unwrap_or(0);
    patch(&proxy, id, json!({"state": "disabled"}));
    patch(&proxy, id, json!({"state": "up"}));
    // every client goes where it went before: b is not held back by its ramp
    let again: Vec<String> = spread(&mut cs, 32).into_iter().map(|(_, by)| by).collect();
    assert_eq!(first, again);
}

// ----------------------------------------------------------------------------- outlier ejection

/// A backend that answers every request 500.
fn failing(name: &str) -> Backend {
    let n = name.to_string();
    Backend::with_handler(name, move |_, _| {
        Reply::Bytes(
            format!(
                "HTTP/1.1 500 Internal Server Error\r\nX-Backend: {n}\r\nContent-Length: 0\r\n\r\n"
            )
            .into_bytes(),
        )
    })
}

#[test]
fn a_5xx_only_backend_is_ejected_comes_back_and_a_second_ejection_lasts_longer() {
    let bad = failing("bad");
    let good = Backend::start("good");
    let proxy = Proxy::start(
        &[bad.addr, good.addr],
        merged(
            quiet(),
            // 2 s: an ejection count is forgotten one `base_ejection` after the return, and the
            // second ejection must come before that (a 1 s base left a loaded machine too little)
            json!({"outlier_detection": {"consecutive_5xx": 3, "base_ejection": "2s",
                                         "max_ejected_percent": 50}}),
        ),
    );
    let mut cs = clients(&proxy);
    // round-robin: every other request reaches bad; its third 500 in a row ejects it
    let seen = spread(&mut cs, 6);
    assert_eq!(
        seen.iter().filter(|(s, _)| *s == 500).count(),
        3,
        "{seen:?}"
    );
    let e = entry(&proxy, bad.addr);
    assert_eq!(e["state"], "ejected", "{e}");
    assert_eq!(e["ejections"], 1);
    let left = e["ejected_remaining_ms"].as_u64().unwrap_or(0);
    assert!((1..=2_000).contains(&left), "{e}");
    let url = format!("http://{}", bad.addr);
    assert_eq!(metric(&proxy, "ferrule_backend_ejections_total{", &url), 1);
    // while it is out, everything goes to good
    let during = spread(&mut cs, 20);
    assert!(
        during.iter().all(|(s, by)| *s == 200 && by == "good"),
        "{during:?}"
    );

    // it comes back by itself
    let back = wait_entry(&proxy, bad.addr, Duration::from_secs(8), |e| {
        e["state"] == "up"
    });
    assert!(back["ejected_remaining_ms"].is_null());
    let seen = spread(&mut cs, 6);
    assert_eq!(
        seen.iter().filter(|(s, _)| *s == 500).count(),
        3,
        "{seen:?}"
    );
    let e = entry(&proxy, bad.addr);
    assert_eq!(
        (&e["state"], &e["ejections"]),
        (&json!("ejected"), &json!(2)),
        "{e}"
    );
    let left = e["ejected_remaining_ms"].as_u64().unwrap_or(0);
    assert!(
        left > 2_000 && left <= 4_000,
        "the second ejection lasts twice as long: {e}"
    );
    let pool = proxy.admin_get("/pools/default");
    assert_eq!(pool["states"]["ejected"], 1, "{pool}");
}

#[test]
fn ejection_never_takes_more_than_max_ejected_percent_nor_the_last_backend() {
    let one = failing("one");
    let two = failing("two");
    let proxy = Proxy::start(
        &[one.addr, two.addr],
        merged(
            quiet(),
            json!({"outlier_detection": {"consecutive_5xx": 2, "base_ejection": "1m",
                                         "max_ejected_percent": 100}}),
        ),
    );
    let mut cs = clients(&proxy);
    let seen = spread(&mut cs, 30);
    // both fail; one is ejected, the other is the last one available and stays
    assert!(seen.iter().all(|(s, _)| *s == 500), "{seen:?}");
    let states: Vec<Value> = [one.addr, two.addr]
        .iter()
        .map(|&a| entry(&proxy, a)["state"].clone())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "ejected").count(),
        1,
        "{states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == "up").count(),
        1,
        "{states:?}"
    );
}

// ----------------------------------------------------------------------------- retry budget

/// 200 GETs over the clients, half of them first sent to a backend that refuses connections
/// (round-robin): how many came back 502, and the pool's retry counts.
fn against_a_dead_backend(budget: Option<u32>) -> (usize, u64, u64) {
    let dead = dead_addr();
    let good = Backend::start("good");
    let mut extra = merged(quiet(), json!({"retries": 1}));
    if let Some(b) = budget {
        extra = merged(extra, json!({"retry_budget": b}));
    }
    let proxy = Proxy::start(&[dead.addr, good.addr], extra);
    let mut cs = clients(&proxy);
    let seen = spread(&mut cs, 200);
    let failed = seen.iter().filter(|(s, _)| *s == 502).count();
    assert!(seen.iter().all(|(s, _)| *s == 200 || *s == 502), "{seen:?}");
    let pool = proxy.admin_get("/pools/default");
    let retries = pool["retries"].as_u64().unwrap_or(u64::MAX);
    let refused = pool["retries_refused"].as_u64().unwrap_or(u64::MAX);
    assert_eq!(
        metric(
            &proxy,
            "ferrule_pool_retries_refused_total{pool=\"default\"}",
            ""
        ),
        refused
    );
    (failed, retries, refused)
}

#[test]
fn retries_stop_at_the_budget_while_a_backend_fails() {
    // 20 % (the default) of ~200 requests: about 40 retries (the floor is 30 in 10 s); the
    // other requests that met the dead backend first get the 502 they would get without retries
    let (failed, retries, refused) = against_a_dead_backend(None);
    assert!((30..=50).contains(&retries), "{retries} retries");
    assert_eq!(failed as u64, refused, "each refused retry is a 502");
    assert!(failed >= 40, "{failed} failed");
    // a budget of 100 % lets every one of them retry
    let (failed, retries, refused) = against_a_dead_backend(Some(100));
    assert_eq!((failed, refused), (0, 0));
    assert!(retries >= 95, "{retries} retries");
}
