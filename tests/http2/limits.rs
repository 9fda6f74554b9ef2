//! The limits of issue 23, each driven as an attack, each ending in what RFC 9113 and the issue
//! say, and each with another client served meanwhile (a connection opened before the attack
//! gets its answers during and after it):
//!
//! - Rapid Reset (CVE-2023-44487): streams opened and reset faster than 100 a second get GOAWAY
//!   ENHANCE_YOUR_CALM, and the backend requests of those that got that far are cancelled (the
//!   backend sees their connections end);
//! - CONTINUATION flood (CVE-2024-27316) and an HPACK bomb: the field block and its decoded size
//!   are bounded: GOAWAY ENHANCE_YOUR_CALM long before the flood is read, and the proxy's peak
//!   memory does not grow with the flood (measured on the `ferrule` binary);
//! - SETTINGS, PING, empty-DATA and WINDOW_UPDATE floods, and stream errors provoked by the
//!   client (MadeYouReset): GOAWAY ENHANCE_YOUR_CALM;
//! - more streams than SETTINGS_MAX_CONCURRENT_STREAMS (128): REFUSED_STREAM, and a new stream
//!   is accepted once one finished; after `http2_max_requests` streams on a connection, GOAWAY
//!   NO_ERROR;
//! - a client that never opens its window: the stream is reset after `send_timeout`, while the
//!   other streams of the same connection are served.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::both_modes;
use crate::common::h2::{
    code, data, encode_field, encode_index, encode_indexed_literal, flag, frame, kind, ping,
    proxy_process, rst_stream, settings_frame, window_update, EchoBackend, HoldBackend, Mode,
    Setup, Wire,
};
use crate::common::tls::PatternBackend;

/// The bystander: a connection opened before the attack, answered before and after it.
fn bystander(s: &Setup) -> Wire {
    let mut w = s.wire();
    let r = w.get("/ok/before");
    assert_eq!((r.status(), r.text().as_str()), (200, "ok"), "{r:?}");
    w
}

#[track_caller]
fn still_served(w: &mut Wire, what: &str) {
    let r = w.get("/ok/after");
    assert_eq!(
        (r.status(), r.text().as_str()),
        (200, "ok"),
        "{what}: the bystander's next request: {r:?}"
    );
}

/// Reads until GOAWAY `want` or the close: a flood's GOAWAY may be lost to the reset a close
/// with unread bytes causes, but when a GOAWAY comes it must say `want`.
#[track_caller]
fn ended_with(w: &mut Wire, want: u32, what: &str) {
    w.wait(|w| w.goaway.is_some());
    assert_eq!(
        w.goaway.map(|g| g.1),
        Some(want),
        "{what}: GOAWAY {:?} (closed {})",
        w.goaway,
        w.closed
    );
    assert!(w.wait_closed(), "{what}: the connection closes");
}

/// Rapid Reset: ten requests reach the backend, then 300 streams are opened and reset at once.
fn rapid_reset(mode: Mode) {
    let hold = HoldBackend::start();
    let s = Setup::start(mode, &[hold.addr], json!({}));
    let mut other = bystander(&s);
    let mut w = s.wire();
    let mut held = Vec::new();
    for i in 0..10 {
        held.push(w.start("GET", &format!("/held/{i}"), &[], None));
    }
    let mut arrived: Vec<String> = (0..10).map(|_| hold.arrival()).collect();
    let mut burst = Vec::new();
    for id in &held {
        burst.extend(rst_stream(*id, code::CANCEL));
    }
    for i in 0..300 {
        let id = w.next_id();
        let path = format!("/reset/{i}");
        let block = crate::common::h2::encode(&w.request_fields("GET", &path, &[]));
        burst.extend(frame(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            id,
            &block,
        ));
        burst.extend(rst_stream(id, code::CANCEL));
    }
    w.try_send(&burst);
    ended_with(&mut w, code::ENHANCE_YOUR_CALM, "300 streams reset at once");
    still_served(&mut other, "Rapid Reset");
    // every request that reached the backend ends: the ten held, and any of the reset ones
    arrived.extend(hold.arrivals.try_iter());
    let mut ended = Vec::new();
    // bounded: one end per arrival, each waited for at most 40 s
    while ended.len() < arrived.len() {
        ended.push(hold.end());
        arrived.extend(hold.arrivals.try_iter());
    }
    assert!(
        ended.iter().all(|e| !e.ends_with("not ended")),
        "every backend request was cancelled: {ended:?}"
    );
    for i in 0..10 {
        assert!(
            ended.contains(&format!("/held/{i}")),
            "/held/{i} cancelled: {ended:?}"
        );
    }
    eprintln!("{mode:?}: {} backend requests cancelled", ended.len());
}

/// A CONTINUATION flood (64 MiB of field block that never ends) and HPACK bombs: GOAWAY
/// ENHANCE_YOUR_CALM after a bounded part of the flood; the peak RSS of the proxy grows by
/// less than 16 MiB; a block decoding past `max_request_head` but within the hard bound is a
/// 431 on its stream; another client is served meanwhile.
fn header_floods(mode: Mode) {
    let hold = HoldBackend::start();
    let (_dir, proxy, tls) =
        proxy_process(mode, hold.addr, json!({}), &format!("h2-floods-{mode:?}"));
    let open = || Wire::open_with(mode, proxy.addr(), tls.as_ref(), &[]);
    let mut other = open();
    assert_eq!(other.get("/ok/before").status(), 200);
    let before = proxy.memory();

    // CONTINUATION flood
    let mut w = open();
    let mut first = Vec::new();
    encode_field(b":method", b"GET", &mut first);
    w.send(&frame(kind::HEADERS, flag::END_STREAM, 1, &first));
    let chunk: Vec<u8> = (0..64)
        .flat_map(|_| frame(kind::CONTINUATION, 0, 1, &[0x41; 16_384]))
        .collect();
    let mut sent = 0usize;
    let total = 64usize << 20;
    let mut goaway_after = None;
    // bounded: 64 writes of 1 MiB at most, each bounded by the write timeout
    while sent < total && w.try_send(&chunk) {
        sent += chunk.len();
        // what came meanwhile (a GOAWAY, say), without waiting
        w.set_timeout(Duration::from_millis(1));
        while goaway_after.is_none() && w.pump() {
            if w.goaway.is_some() {
                goaway_after = Some(sent);
            }
        }
        w.set_timeout(Duration::from_secs(10));
    }
    ended_with(&mut w, code::ENHANCE_YOUR_CALM, "CONTINUATION flood");
    let goaway_after = goaway_after.unwrap_or(sent);
    eprintln!("{mode:?}: GOAWAY after {goaway_after} bytes of the flood written ({sent} in all)");
    assert!(
        goaway_after <= 16 << 20,
        "the flood is cut once its block passes the bound, not after {goaway_after} bytes"
    );

    // empty CONTINUATION frames: no bytes, all the frames you like
    let mut w = open();
    w.auto_settings_ack = false;
    w.send(&frame(kind::HEADERS, flag::END_STREAM, 1, &first));
    let empty: Vec<u8> = (0..10_000)
        .flat_map(|_| frame(kind::CONTINUATION, 0, 1, &[]))
        .collect();
    let mut rounds = 0;
    // bounded: 100 writes of 90 KB at most
    while rounds < 100 && w.try_send(&empty) {
        rounds += 1;
    }
    ended_with(&mut w, code::ENHANCE_YOUR_CALM, "empty CONTINUATION flood");

    // HPACK: a 4,000-byte entry, then blocks of references to it
    let mut w = open();
    let big = vec![b'b'; 4000];
    let fields = w.request_fields("GET", "/ok/table", &[]);
    let mut block = crate::common::h2::encode(&fields);
    encode_indexed_literal(b"x-big", &big, &mut block);
    w.send_block(1, &block, true);
    assert_eq!(w.response(1).status(), 200, "the entry is in the table");
    // 5 references: 20 KB decoded, over max_request_head (16 KiB): 431
    let mut block = crate::common::h2::encode(&w.request_fields("GET", "/ok/five", &[]));
    for _ in 0..5 {
        encode_index(62, &mut block);
    }
    w.send_block(3, &block, true);
    let r = w.response(3);
    assert_eq!(
        r.status(),
        431,
        "a header list over max_request_head: {r:?}"
    );
    // 16,000 references: 64 MB decoded from 16 KB
    let mut block = crate::common::h2::encode(&w.request_fields("GET", "/ok/bomb", &[]));
    for _ in 0..16_000 {
        encode_index(62, &mut block);
    }
    w.send_block(5, &block, true);
    ended_with(&mut w, code::ENHANCE_YOUR_CALM, "HPACK bomb");

    let r = other.get("/ok/after");
    assert_eq!(r.status(), 200, "the bystander: {r:?}");
    let after = proxy.memory();
    eprintln!(
        "{mode:?}: proxy peak RSS {:.1} MiB before the floods, {:.1} MiB after",
        before.peak as f64 / 1048576.0,
        after.peak as f64 / 1048576.0
    );
    assert!(
        after.peak - before.peak < 16 << 20,
        "the floods grew the proxy's peak RSS by {} bytes",
        after.peak - before.peak
    );
}

/// Floods of frames that cost us work and ask nothing (RFC 9113 §10.5): 300 SETTINGS, 300
/// PINGs, 300 empty DATA frames, 300 WINDOW_UPDATEs on the connection or on a stream, all in
/// one second; and 600 malformed requests, each a stream error we must send (MadeYouReset):
/// GOAWAY ENHANCE_YOUR_CALM.
fn control_floods(mode: Mode) {
    let hold = HoldBackend::start();
    let s = Setup::start(mode, &[hold.addr], json!({}));
    let mut other = bystander(&s);
    let floods: Vec<(&str, Vec<u8>)> = vec![
        ("SETTINGS", settings_frame(&[])),
        ("PING", ping(*b"flooding")),
        ("connection WINDOW_UPDATE", window_update(0, 1)),
    ];
    for (what, one) in floods {
        let mut w = s.wire();
        let burst: Vec<u8> = (0..300).flat_map(|_| one.clone()).collect();
        w.try_send(&burst);
        ended_with(&mut w, code::ENHANCE_YOUR_CALM, what);
        still_served(&mut other, what);
    }
    for what in ["empty DATA", "stream WINDOW_UPDATE"] {
        let mut w = s.wire();
        let id = w.next_id();
        let fields = w.request_fields("POST", "/held", &[]);
        w.headers(id, &fields, false);
        let one = if what == "empty DATA" {
            data(id, &[], false)
        } else {
            window_update(id, 1)
        };
        let burst: Vec<u8> = (0..300).flat_map(|_| one.clone()).collect();
        w.try_send(&burst);
        ended_with(&mut w, code::ENHANCE_YOUR_CALM, what);
        still_served(&mut other, what);
    }
    let mut w = s.wire();
    let mut burst = Vec::new();
    for _ in 0..600 {
        let id = w.next_id();
        let block = crate::common::h2::encode(&w.request_fields("GET", "/", &[("te", "gzip")]));
        burst.extend(frame(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            id,
            &block,
        ));
    }
    w.try_send(&burst);
    ended_with(&mut w, code::ENHANCE_YOUR_CALM, "600 malformed requests");
    let resets = w
        .streams
        .values()
        .filter(|r| r.reset == Some(code::PROTOCOL_ERROR))
        .count();
    assert!(
        resets >= 100,
        "the first ones were reset one by one ({resets})"
    );
    still_served(&mut other, "MadeYouReset");
}

/// SETTINGS_MAX_CONCURRENT_STREAMS: 128 streams held at the backend, the 129th refused with
/// REFUSED_STREAM (never reaching the backend), and once one of them ends, a new one is taken.
fn refused_stream(mode: Mode) {
    let hold = HoldBackend::start();
    let s = Setup::start(mode, &[hold.addr], json!({}));
    let mut other = bystander(&s);
    let mut w = s.wire();
    assert!(w.ping_pong());
    assert!(
        w.settings.contains(&(3, 128)),
        "SETTINGS_MAX_CONCURRENT_STREAMS 128: {:?}",
        w.settings
    );
    let ids: Vec<u32> = (0..128)
        .map(|i| w.start("GET", &format!("/held/{i}"), &[], None))
        .collect();
    for _ in 0..128 {
        hold.arrival();
    }
    let extra = w.start("GET", "/held/extra", &[], None);
    assert_eq!(
        w.wait_reset(extra),
        Some(code::REFUSED_STREAM),
        "the 129th stream"
    );
    assert!(w.goaway.is_none(), "{:?}", w.goaway);
    still_served(&mut other, "128 streams held");
    // one ends: room for one more
    w.send(&rst_stream(ids[0], code::CANCEL));
    assert_eq!(hold.end(), "/held/0");
    let next = w.start("GET", "/held/next", &[], None);
    assert_eq!(
        hold.arrival(),
        "/held/next",
        "a stream is taken once one ended"
    );
    assert!(w.streams.get(&next).is_none_or(|r| r.reset.is_none()));
    assert!(
        hold.arrivals.try_recv().is_err(),
        "the refused stream never reached the backend"
    );
}

/// A client that reads the first 64 KiB of a 16 MiB answer and never opens its window again:
/// its stream is reset when `send_timeout` (1 s) passes without progress; meanwhile another
/// stream of the same connection, and another connection, are answered.
fn window_never_opened(mode: Mode) {
    let pattern = PatternBackend::start();
    let s = Setup::start(mode, &[pattern.addr], json!({"send_timeout": "1s"}));
    let mut other = s.wire();
    let mut w = s.wire();
    w.auto_window = false;
    let started = Instant::now();
    let id = w.start("GET", "/big/16777216", &[], None);
    assert!(
        w.wait(|w| w.streams.get(&id).is_some_and(|r| r.body.len() >= 65_535)),
        "the first window's worth arrives"
    );
    let r = w.get("/small");
    assert_eq!(
        (r.status(), r.text().as_str()),
        (200, "ok"),
        "a stream beside the stalled one"
    );
    let r = other.get("/other");
    assert_eq!(r.status(), 200, "another connection: {r:?}");
    let reset = w.wait_reset(id);
    let waited = started.elapsed();
    assert!(
        reset.is_some(),
        "the stalled stream is reset: {:?}",
        w.streams.get(&id)
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(8),
        "reset after send_timeout (1 s), not {waited:?}"
    );
    assert_eq!(
        w.streams[&id].body.len(),
        65_535,
        "nothing past the window was sent"
    );
    assert!(
        w.ping_pong() && w.goaway.is_none(),
        "the connection serves on"
    );
    let r = w.get("/small");
    assert_eq!(r.status(), 200, "{r:?}");
}

/// The cap on streams per connection (`http2_max_requests`, here 300): the 300th stream is
/// served, with a GOAWAY NO_ERROR naming it as the last, so the client opens a new connection
/// for more; one more stream on the old connection is not served, the connection closes once
/// its streams are done, and a new one is served.
fn streams_per_connection_cap(mode: Mode) {
    let echo = EchoBackend::start();
    let s = Setup::start(mode, &[echo.addr], json!({"http2_max_requests": 300}));
    let mut w = s.wire();
    let mut answered = 0;
    // bounded: 3 batches of 100 streams
    for batch in 0..3 {
        let mut burst = Vec::new();
        let mut ids = Vec::new();
        for _ in 0..100 {
            let id = w.next_id();
            let block = crate::common::h2::encode(&w.request_fields("GET", "/n", &[]));
            burst.extend(frame(
                kind::HEADERS,
                flag::END_HEADERS | flag::END_STREAM,
                id,
                &block,
            ));
            ids.push(id);
        }
        w.send(&burst);
        for id in ids {
            let r = w.response(id);
            assert_eq!(r.status(), 200, "batch {batch}, stream {id}: {r:?}");
            answered += 1;
        }
        w.streams.clear();
        if batch < 2 {
            assert!(
                w.goaway.is_none(),
                "GOAWAY after {answered} streams: {:?}",
                w.goaway
            );
        }
    }
    assert_eq!(
        w.wait_goaway(),
        Some((599, code::NO_ERROR)),
        "after 300 streams"
    );
    // a stream past the last: refused if the connection still reads, else never read
    let more = w.start("GET", "/more", &[], None);
    assert!(w.wait_closed(), "the connection closes");
    let r = w.streams.get(&more);
    assert!(
        r.is_none_or(|r| r.reset == Some(code::REFUSED_STREAM) && r.blocks.is_empty()),
        "a stream past the last is not served: {r:?}"
    );
    assert_eq!(
        s.wire().get("/fresh").status(),
        200,
        "a new connection is served"
    );
}

/// `http2_max_requests: 0` lifts the cap: 500 streams on a connection, and no GOAWAY.
fn no_cap_on_streams_per_connection(mode: Mode) {
    let echo = EchoBackend::start();
    let s = Setup::start(mode, &[echo.addr], json!({"http2_max_requests": 0}));
    let mut w = s.wire();
    // bounded: 5 batches of 100 streams
    for batch in 0..5 {
        let mut ids = Vec::new();
        for _ in 0..100 {
            ids.push(w.start("GET", "/n", &[], None));
        }
        for id in ids {
            let r = w.response(id);
            assert_eq!(r.status(), 200, "batch {batch}, stream {id}: {r:?}");
        }
        w.streams.clear();
        assert!(w.goaway.is_none(), "GOAWAY: {:?}", w.goaway);
    }
    assert_eq!(w.get("/last").status(), 200);
    assert!(w.goaway.is_none(), "GOAWAY: {:?}", w.goaway);
}

both_modes!(
    streams_per_connection_cap,
    no_cap_on_streams_per_connection,
    rapid_reset,
    header_floods,
    control_floods,
    refused_stream,
    window_never_opened,
);
