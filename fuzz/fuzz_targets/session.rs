//! The real client connection: `Connection` (`src/connection/`) and its streams (`src/stream/`)
//! driven through their whole state machines, with in-memory connections (`transport::mem`,
//! feature `mem-io`) in place of sockets. (The target keeps its first name, `session`, so its
//! corpus carries on.)
//!
//! A client connection and the backend connections its streams open (through the `Upstreams`
//! connect hook) are scripts of bytes; a schedule decides what happens when: the client sends a
//! piece or makes room for ferrule's writes, a backend does, a connect completes, either side
//! closes or resets, the connection's deadline passes. Each event is reported to the connection
//! the way the worker reports readiness, and it runs until it is idle. When the schedule runs
//! out, everything left is delivered, both sides close, and deadlines pass until the connection
//! closes; the worker then releases it. Every phase is reachable: PROXY header, head, connect,
//! exchange with retries and replay, interim responses, the tunnel after a 101, drain.
//!
//! The driver (readiness, schedule, settling, release) is `fuzz/common/harness.rs`, shared with
//! `h2_session`.
//!
//! Input: options (which of 128 configs: PROXY protocol, sticky cookie, request id, retries,
//! buffer size, body limit, second backend; and whether the worker is draining), client piece
//! size, backend piece size, client room; then, separated by `SEP`: the client's bytes, the
//! schedule, and one script per backend connection (its first byte: connect pending, refused,
//! small room; its turns separated by `TURN`).
//!
//! Invariants: no panic; the connection closes within a bound; at most two buffers are taken, none
//! after release; no request is left counted on a backend, no connection lent; read by
//! independent parsers (httparse and a lenient chunked decoder), every backend connection
//! receives whole HTTP/1.1 requests with a `Host` (the last maybe cut short) and nothing after
//! them, unless it answered 101; the client receives responses within their framing, nothing
//! after them, and no more than the heads it sent (plus one refusal).
#![no_main]

use std::sync::OnceLock;

use ferrule::context::Settings;
use ferrule::http::Framing;
use ferrule::Config;
use libfuzzer_sys::fuzz_target;

#[path = "../common/wire.rs"]
mod wire;
use wire::{body_end, framing_of};

#[path = "../common/harness.rs"]
mod harness;
use harness::{build_config, split, Opts, World, SEP};

/// The configs an input picks from (bit `k` of the index turns option `k` on): PROXY protocol
/// from a trusted proxy, sticky cookie (stripped), request ids, 2 retries, 4 KiB buffers, a
/// 64-byte body limit, a second backend (round-robin between them).
fn configs() -> &'static [(Config, Settings)] {
    static CONFIGS: OnceLock<Vec<(Config, Settings)>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        (0..128u32)
            .map(|opts| {
                let on = |bit: u32| opts & (1 << bit) != 0;
                let (mut config, _) = build_config(Opts {
                    proxy_protocol: on(0),
                    sticky: on(1),
                    request_id: on(2),
                    retries: on(3),
                    small_buffers: on(4),
                    body_limit: on(5),
                    two_backends: on(6),
                });
                // HTTP/1.1 only: a client opening with the HTTP/2 preface would be h2c, which
                // `h2_session` covers (this target's client reads HTTP/1.1 responses)
                config.http2.enabled = false;
                let settings = Settings::from_config(&config);
                (config, settings)
            })
            .collect()
    })
}

/// The client's view: responses (interim ones before a final one), each within its framing; the
/// last may be cut short; nothing after them. Returns the final responses read. With `head`
/// (some request may have been a HEAD, whose response has no body) only the first head is read.
/// `blocked`: the client took no more (its room ran out, or it reset), so a head may be cut
/// short; otherwise ferrule writes every head whole.
fn client_reads(stream: &[u8], head: bool, blocked: bool) -> usize {
    let mut pos = 0;
    let mut finals = 0;
    while pos < stream.len() {
        let mut fields = [httparse::EMPTY_HEADER; 128];
        let mut resp = httparse::Response::new(&mut fields);
        let n = match resp.parse(&stream[pos..]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if blocked => return finals,
            other => panic!(
                "response {finals}: the client cannot read the head: {other:?}: {:?}",
                String::from_utf8_lossy(&stream[pos..stream.len().min(pos + 600)])
            ),
        };
        assert_eq!(resp.version, Some(1), "response {finals} is not HTTP/1.1");
        let status = resp.code.unwrap_or(0);
        if (100..200).contains(&status) && status != 101 {
            pos += n;
            continue;
        }
        finals += 1;
        if status == 101 || head {
            return finals;
        }
        let framing = if status == 204 || status == 304 {
            Framing::None
        } else {
            framing_of(resp.headers, false)
        };
        match body_end(stream, pos + n, framing) {
            Some(end) => pos = end,
            None => return finals,
        }
        if framing == Framing::UntilClose {
            break;
        }
    }
    assert_eq!(
        pos,
        stream.len(),
        "the client gets more than the responses framed: {:?}",
        String::from_utf8_lossy(&stream[pos..stream.len().min(pos + 600)])
    );
    finals
}

/// Heads in `bytes` at most: every head ends in an empty line.
fn heads_in(bytes: &[u8]) -> usize {
    bytes.windows(2).filter(|w| w == b"\n\n").count()
        + bytes.windows(3).filter(|w| w == b"\n\r\n").count()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 || data.len() > 64 * 1024 {
        return;
    }
    let (opts, c_piece, b_piece, c_room) = (data[0], data[1], data[2], data[3]);
    let parts = split(&data[4..], SEP);
    let client_bytes = parts[0];
    let schedule = parts.get(1).copied().unwrap_or(&[]);
    let (config, settings) = &configs()[usize::from(opts & 127)];
    let scripts = parts.get(2..).unwrap_or(&[]);
    let mut w = World::new(
        config,
        settings,
        client_bytes,
        (c_piece, b_piece, c_room),
        scripts,
        opts & 128 != 0,
        2,
    );
    // the schedule: one event a byte
    for &b in schedule {
        w.event(b, false);
    }
    w.settle(64 + heads_in(client_bytes) * 4);
    w.release();
    w.check_backends();
    let p = w.client.lock();
    let head = client_bytes.windows(4).any(|w| w == b"HEAD");
    let finals = client_reads(&p.written, head, p.room == 0 || p.reset);
    assert!(
        finals <= heads_in(client_bytes) + 1,
        "{finals} responses to {} heads at most",
        heads_in(client_bytes)
    );
});
