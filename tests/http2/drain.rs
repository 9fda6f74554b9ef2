//! GOAWAY on drain (`Handle::shutdown`, what SIGTERM does): every HTTP/2 connection gets GOAWAY
//! NO_ERROR with the last stream id it took; the streams in flight finish (their request bodies
//! still flow in, their answers out), a stream opened after the GOAWAY is refused, and the
//! connection closes once they are done; an idle connection closes at once. A stream that
//! cannot finish within `shutdown_timeout` is cut when it passes. Also: an idle connection
//! follows `keepalive_timeout`, and a reload keeps connections open.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::both_modes;
use crate::common::h2::{code, frame, proxy_process, HoldBackend, Mode, Setup, Wire};
use crate::common::tls::admin_post;
use crate::common::GatedBackend;

fn goaway_on_drain(mode: Mode) {
    let gated = GatedBackend::start("gated");
    let s = Setup::start(mode, &[gated.addr()], json!({"shutdown_timeout": "20s"}));
    let mut idle = s.wire();
    assert!(idle.ping_pong());
    let mut w = s.wire();
    let mut ids: Vec<u32> = ["/a", "/b", "/c"]
        .iter()
        .map(|p| w.start("GET", p, &[], None))
        .collect();
    // a POST whose body is half sent when the drain begins
    let post = w.next_id();
    let fields = w.request_fields("POST", "/d", &[("content-length", "10")]);
    w.headers(post, &fields, false);
    w.send_data(post, b"12345", false);
    ids.push(post);
    let mut arrived: Vec<String> = (0..3).map(|_| gated.next_arrival()).collect();
    assert!(w.ping_pong(), "the streams are under way");

    s.proxy.handle.shutdown();
    assert_eq!(
        w.wait_goaway(),
        Some((post, code::NO_ERROR)),
        "GOAWAY NO_ERROR with the last stream id"
    );
    let late = w.start("GET", "/late", &[], None);
    assert_eq!(
        w.wait_reset(late),
        Some(code::REFUSED_STREAM),
        "a stream after GOAWAY"
    );
    w.send_data(post, b"67890", true);
    arrived.push(gated.next_arrival());
    arrived.sort();
    assert_eq!(arrived, ["/a", "/b", "/c", "/d"]);
    gated.open();
    for (id, path) in ids.iter().zip(["/a", "/b", "/c", "/d"]) {
        let r = w.response(*id);
        assert_eq!(r.status(), 200, "{path}: {r:?}");
        assert_eq!(r.text(), format!("answer to {path}"));
    }
    assert!(
        w.wait_closed(),
        "the connection closes once its streams are done"
    );
    assert_eq!(
        idle.wait_goaway(),
        Some((0, code::NO_ERROR)),
        "the idle connection"
    );
    assert!(idle.wait_closed(), "the idle connection closes");
    assert!(
        gated.unreported_arrival().is_none(),
        "the refused stream never reached the backend"
    );
}

/// A connection error after the drain's GOAWAY: the second GOAWAY names no later stream than the
/// first (RFC 9113 §6.8: the last stream id never grows), although the client opened (and was
/// refused) a stream past it in between.
fn goaway_last_id_never_grows(mode: Mode) {
    let gated = GatedBackend::start("gated");
    let s = Setup::start(mode, &[gated.addr()], json!({"shutdown_timeout": "20s"}));
    let mut w = s.wire();
    let id = w.start("GET", "/a", &[], None);
    assert_eq!(gated.next_arrival(), "/a");
    s.proxy.handle.shutdown();
    assert_eq!(w.wait_goaway(), Some((id, code::NO_ERROR)));
    let late = w.start("GET", "/late", &[], None);
    assert_eq!(w.wait_reset(late), Some(code::REFUSED_STREAM));
    // a PING of 7 bytes: a connection error (FRAME_SIZE_ERROR)
    w.send(&frame(6, 0, 0, b"1234567"));
    assert!(w.wait(|w| w.goaways.len() >= 2), "{:?}", w.goaways);
    assert_eq!(
        w.goaways[1],
        (id, code::FRAME_SIZE_ERROR),
        "the second GOAWAY keeps the first's last stream id: {:?}",
        w.goaways
    );
    gated.open();
}

/// `shutdown_timeout` (1 s) passes with a stream still waiting for its backend: the connection
/// is closed and the backend request cancelled.
fn drain_deadline(mode: Mode) {
    let hold = HoldBackend::start();
    let s = Setup::start(mode, &[hold.addr], json!({"shutdown_timeout": "1s"}));
    let mut w = s.wire();
    let id = w.start("GET", "/forever", &[], None);
    assert_eq!(hold.arrival(), "/forever");
    let started = Instant::now();
    s.proxy.handle.shutdown();
    assert_eq!(w.wait_goaway(), Some((id, code::NO_ERROR)));
    assert!(w.wait_closed(), "closed when shutdown_timeout passes");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(8),
        "closed after shutdown_timeout (1 s), not {took:?}"
    );
    let r = w.streams.get(&id);
    assert!(r.is_none_or(|r| !r.ended), "no complete answer: {r:?}");
    assert_eq!(hold.end(), "/forever", "the backend request is cancelled");
}

/// An idle HTTP/2 connection follows `keepalive_timeout` (1 s): GOAWAY NO_ERROR with the last
/// stream it served, then the close.
fn idle_connection_times_out(mode: Mode) {
    let b = crate::common::Backend::start("a");
    let s = Setup::start(mode, &[b.addr], json!({"keepalive_timeout": "1s"}));
    let mut w = s.wire();
    assert_eq!(w.get("/one").status(), 200);
    let idle_since = Instant::now();
    assert_eq!(w.wait_goaway(), Some((1, code::NO_ERROR)));
    assert!(w.wait_closed());
    let idle = idle_since.elapsed();
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(8),
        "closed after keepalive_timeout (1 s), not {idle:?}"
    );
}

/// A reload (`POST /reload`) keeps HTTP/2 connections open: the same connection serves on.
fn reload_keeps_connections(mode: Mode) {
    let b = crate::common::Backend::start("a");
    let (_dir, proxy, tls) = proxy_process(mode, b.addr, json!({}), &format!("h2-reload-{mode:?}"));
    let mut w = Wire::open_with(mode, proxy.addr(), tls.as_ref(), &[]);
    assert_eq!(w.get("/before").status(), 200);
    let (status, answer) = admin_post(proxy.admin_addr(), "/reload");
    assert_eq!(status, 200, "{answer}");
    let r = w.get("/after");
    assert_eq!(
        r.status(),
        200,
        "the connection serves on after the reload: {r:?}"
    );
    assert!(w.goaway.is_none(), "{:?}", w.goaway);
}

both_modes!(
    goaway_on_drain,
    goaway_last_id_never_grows,
    drain_deadline,
    idle_connection_times_out,
    reload_keeps_connections,
);
