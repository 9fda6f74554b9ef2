//! GOAWAY on drain (`Handle::shutdown`, what SIGTERM does): every HTTP/2 connection gets GOAWAY
//! NO_ERROR with the last stream id it took; the streams in flight finish (their request bodies
//! still flow in, their answers out), a stream opened after the GOAWAY is refused, and the
//! connection closes once they are done; an idle connection closes at once. A stream that
//! cannot finish within `shutdown_timeout` is cut when it passes.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::both_modes;
use crate::common::h2::{code, HoldBackend, Mode, Setup};
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

both_modes!(goaway_on_drain, drain_deadline);
