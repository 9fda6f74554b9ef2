//! Passive health and the retries that go with it, over real sockets on 127.0.0.1:
//!
//! - a GET whose fresh backend connection closes before any response byte is retried on another
//!   backend (the client gets the other's answer); a POST never is (502);
//! - `max_fails` failures within `fail_timeout` take a backend down at once (no new connection
//!   reaches it), and without active checks it is tried again `fail_timeout` later;
//! - `fail_open` serves from down backends rather than answer 503.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// A backend that reads each request and closes without a byte of answer.
fn dropping_backend() -> Backend {
    Backend::with_handler("drop", |_, _| Reply::Drop)
}

fn post(proxy: &Proxy) -> Response {
    let mut c = proxy.connect();
    c.send(b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi");
    c.response()
}

#[test]
fn a_get_on_a_fresh_connection_that_closes_unanswered_is_retried_but_a_post_is_not() {
    let bad = dropping_backend();
    let good = Backend::start("good");
    let proxy = Proxy::start(
        &[bad.addr, good.addr],
        json!({"workers": 1, "retries": 1, "max_fails": 0, "health_check_method": "none",
               "backend_keepalive": 0}),
    );
    for _ in 0..4 {
        let r = proxy.get("/g");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-backend"), Some("good"));
    }
    assert!(
        bad.record.count() >= 1,
        "some GETs went to the dropping backend first"
    );
    let before = good.record.count();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(post(&proxy).status);
    }
    // round-robin: the POSTs that hit the dropping backend get 502, never a second try
    assert!(statuses.contains(&502), "{statuses:?}");
    let posts_at_good = good.record.count() - before;
    assert_eq!(
        posts_at_good,
        statuses.iter().filter(|&&s| s == 200).count(),
        "a failed POST was replayed"
    );
}

#[test]
fn max_fails_take_a_backend_down_and_it_is_tried_again_after_fail_timeout() {
    let bad = dropping_backend();
    let good = Backend::start("good");
    let proxy = Proxy::start(
        &[bad.addr, good.addr],
        json!({"workers": 1, "retries": 1, "max_fails": 2, "fail_timeout": "1s",
               "health_check_method": "none", "backend_keepalive": 0}),
    );
    // every request is answered (retried on the good backend) while the bad one fails twice
    for _ in 0..6 {
        assert_eq!(proxy.get("/x").status, 200);
    }
    assert_eq!(bad.record.connections(), 2, "down after max_fails");
    let listed = backend_entry(&proxy.admin_get("/backends"), bad.addr);
    assert_eq!(listed["healthy"], false, "{listed}");
    let down_at = Instant::now();
    for _ in 0..10 {
        assert_eq!(proxy.get("/y").status, 200);
    }
    assert_eq!(bad.record.connections(), 2, "no request while it is down");
    // without active checks, it is tried again fail_timeout after it went down
    let deadline = Instant::now() + Duration::from_secs(5);
    while bad.record.connections() == 2 && Instant::now() < deadline {
        assert_eq!(proxy.get("/z").status, 200);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(bad.record.connections() > 2, "never tried again");
    assert!(
        down_at.elapsed() >= Duration::from_millis(900),
        "tried again after {:?}, before fail_timeout",
        down_at.elapsed()
    );
}

#[test]
fn fail_open_serves_from_down_backends() {
    let only = Backend::start("only");
    for (fail_open, want) in [(false, 503), (true, 200)] {
        let proxy = Proxy::start(
            &[only.addr],
            json!({"fail_open": fail_open, "health_check_method": "none"}),
        );
        for b in proxy.handle.balancer().current().backends() {
            b.set_healthy(false);
        }
        assert_eq!(proxy.get("/").status, want, "fail_open {fail_open}");
    }
}
