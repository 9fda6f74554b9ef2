//! A whole HTTP/2 connection: the real client `Connection` (`src/connection/`) speaking h2c
//! (the client's bytes start with the preface), its frame loop (`connection/h2/`) and its streams
//! (`src/stream/`) with their backend connections, all over in-memory connections
//! (`transport::mem`, feature `mem-io`), driven as the `session` target drives HTTP/1.1 (the
//! driver is `fuzz/common/harness.rs`: readiness, the schedule, settling, release).
//!
//! Input: options (which of 128 configs: request ids, retries, 4 KiB buffers, a body limit, a
//! second backend, small HTTP/2 limits, a sticky cookie; and whether the worker drains from the
//! start), client piece size, backend piece size, client room; then, separated by `SEP`: the
//! client's ops (`fuzz/common/h2_ops.rs`: each emits a frame or a few, mostly valid, with HPACK
//! blocks from our encoder or by hand), the schedule (one event a byte, the worker's drain
//! among them), and one script per backend connection as for `session`.
//!
//! Invariants: no panic; the connection closes within a bound once everything is delivered, both
//! sides close and deadlines pass; at most one buffer for the input and two per stream allowed,
//! none after release; no request left counted on a backend, no connection lent; every backend
//! connection receives whole HTTP/1.1 requests with a `Host` (the last maybe cut short); the
//! client receives a well-formed HTTP/2 frame stream, read back with the library's frame parser
//! and HPACK decoder: no preface, SETTINGS first and only once, every frame within the largest
//! `SETTINGS_MAX_FRAME_SIZE` the client announced, field blocks whole (CONTINUATIONs in a row)
//! that decode to a response (`:status` first, lowercase names, no connection-specific field) or
//! trailers (with END_STREAM), DATA only after a final response and never beyond the windows the
//! client granted (the connection's and the stream's), nothing on a stream after its END_STREAM
//! but RST_STREAM or WINDOW_UPDATE, nothing but RST_STREAM after a RST_STREAM (but the reset of a
//! PRIORITY on a stream still idle, which RFC 9113 §6.3 asks for), frames only on
//! streams the client opened, SETTINGS ACKs and PING ACKs (with the client's payloads) no more
//! than the client asked for; GOAWAY's last stream id never grows, and no response starts on a
//! stream past it.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use ferrule::connection::h2::frame::{
    self, Block, Frame, Gathered, Parsed, Setting, DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW,
};
use ferrule::connection::h2::hpack::{Decoder, HeaderList};
use ferrule::connection::h2::H2Error;
use ferrule::context::Settings;
use ferrule::Config;
use libfuzzer_sys::fuzz_target;

#[path = "../common/wire.rs"]
mod wire;

#[path = "../common/harness.rs"]
mod harness;
use harness::{build_config, split, Opts, World, SEP};

#[path = "../common/h2_ops.rs"]
mod h2_ops;

/// The configs an input picks from (bit `k` of the index turns option `k` on): request ids, 2
/// retries, 4 KiB buffers, a 64-byte body limit, a second backend, small HTTP/2 limits (2
/// concurrent streams, 5 over the connection's life, 3 resets a second, 4 resets sent, 6 control
/// frames a second), a sticky cookie.
fn configs() -> &'static [(Config, Settings)] {
    static CONFIGS: OnceLock<Vec<(Config, Settings)>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        (0..128u32)
            .map(|opts| {
                let on = |bit: u32| opts & (1 << bit) != 0;
                let (config, mut settings) = build_config(Opts {
                    request_id: on(0),
                    retries: on(1),
                    small_buffers: on(2),
                    body_limit: on(3),
                    two_backends: on(4),
                    sticky: on(6),
                    ..Opts::default()
                });
                if on(5) {
                    settings.h2.max_concurrent = 2;
                    settings.h2.max_streams = 5;
                    settings.h2.resets_per_second = 3;
                    settings.h2.emitted_resets = 4;
                    settings.h2.control_per_second = 6;
                }
                (config, settings)
            })
            .collect()
    })
}

/// What the client's frames allow the server, read from the client's bytes with the parser
/// ferrule reads them with (so past a connection error, where ferrule stops reading, nothing is
/// counted: every bound here is at least what ferrule saw).
#[derive(Default, Debug)]
struct Grants {
    max_frame: u32,
    max_initial_window: u64,
    conn_window: u64,
    stream_window: HashMap<u32, u64>,
    settings: usize,
    pings: Vec<[u8; 8]>,
    /// Stream ids of the client's HEADERS.
    opened: Vec<u32>,
    /// Streams a PRIORITY with a stream error came for while they were idle: RFC 9113 §6.3
    /// makes that a RST_STREAM, which may precede the stream's own HEADERS.
    idle_resets: Vec<u32>,
    frames: usize,
}

fn grants(client: &[u8]) -> Grants {
    let mut g = Grants {
        max_frame: DEFAULT_MAX_FRAME_SIZE,
        max_initial_window: u64::from(DEFAULT_WINDOW),
        conn_window: u64::from(DEFAULT_WINDOW),
        ..Grants::default()
    };
    let mut pos = frame::PREFACE.len();
    // bounded: each round consumes a frame or stops
    while pos < client.len() {
        let len = match frame::parse(&client[pos..], DEFAULT_MAX_FRAME_SIZE) {
            Ok(Parsed::Frame { frame, len }) => {
                g.frames += 1;
                match frame {
                    Frame::Settings { ack: false, params } => {
                        g.settings += 1;
                        for p in params.iter() {
                            match p {
                                Setting::MaxFrameSize(v) => g.max_frame = g.max_frame.max(v),
                                Setting::InitialWindowSize(v) => {
                                    g.max_initial_window = g.max_initial_window.max(u64::from(v))
                                }
                                _ => {}
                            }
                        }
                    }
                    Frame::Ping { ack: false, data } => g.pings.push(data),
                    Frame::WindowUpdate {
                        stream: 0,
                        increment,
                    } => g.conn_window += u64::from(increment),
                    Frame::WindowUpdate { stream, increment } => {
                        *g.stream_window.entry(stream).or_default() += u64::from(increment)
                    }
                    Frame::Headers { stream, .. } => g.opened.push(stream),
                    _ => {}
                }
                len
            }
            Ok(Parsed::Reset { len, error }) => {
                let kind = frame::Head::read(&client[pos..]).map_or(0, |h| h.kind);
                if let (frame::kind::PRIORITY, H2Error::Stream { id, .. }) = (kind, error) {
                    if g.opened.iter().all(|&o| o < id) {
                        g.idle_resets.push(id);
                    }
                }
                len
            }
            Ok(Parsed::Need { .. }) | Err(_) => break,
        };
        pos += len;
    }
    g
}

/// Where one stream stands in what the server sent.
#[derive(Default, Debug, Clone, Copy)]
struct Sent {
    /// A final response head came.
    final_head: bool,
    /// END_STREAM came.
    ended: bool,
    /// RST_STREAM came.
    reset: bool,
    data: u64,
}

const CONNECTION_SPECIFIC: [&[u8]; 5] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
];

/// A decoded response block on a stream.
fn check_block(id: u32, list: &HeaderList, end_stream: bool, st: &mut Sent) {
    let fields: Vec<(&[u8], &[u8])> = list.iter().collect();
    for (name, _) in &fields {
        assert!(
            !name.iter().any(u8::is_ascii_uppercase),
            "stream {id}: an uppercase field name {:?}",
            String::from_utf8_lossy(name)
        );
        assert!(
            !CONNECTION_SPECIFIC.contains(name),
            "stream {id}: a connection-specific field {:?}",
            String::from_utf8_lossy(name)
        );
    }
    let pseudo = fields.iter().filter(|(n, _)| n.starts_with(b":")).count();
    if st.final_head {
        // trailers
        assert!(end_stream, "stream {id}: trailers without END_STREAM");
        assert_eq!(pseudo, 0, "stream {id}: a pseudo-header in trailers");
        return;
    }
    let Some((b":status", status)) = fields.first().copied() else {
        panic!("stream {id}: a response without :status first: {fields:?}");
    };
    assert_eq!(pseudo, 1, "stream {id}: pseudo-headers besides :status");
    let code: u16 = std::str::from_utf8(status)
        .ok()
        .filter(|s| s.len() == 3)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("stream {id}: :status {status:?}"));
    // RFC 9110 §15 calls 600-999 invalid but in use: a backend's is passed on, as over HTTP/1.1
    assert!(code >= 100, "stream {id}: :status {code}");
    if code < 200 {
        assert!(
            !end_stream,
            "stream {id}: an interim response ends the stream"
        );
    } else {
        st.final_head = true;
    }
}

/// Reads back what the client received: see the header.
fn client_reads(written: &[u8], g: &Grants, blocked: bool) {
    let mut pos = 0;
    let mut first = true;
    let mut block = Block::default();
    let mut decoder = Decoder::new(frame::DEFAULT_HEADER_TABLE_SIZE as usize);
    let mut list = HeaderList::new(usize::MAX);
    let mut streams: HashMap<u32, Sent> = HashMap::new();
    let mut conn_data = 0u64;
    let (mut settings_acks, mut ping_acks) = (0, 0);
    let mut goaway: Option<u32> = None;
    let max_opened = g.opened.iter().copied().max().unwrap_or(0);
    let mut idle_resets = g.idle_resets.clone();
    let known = |id: u32| id % 2 == 1 && g.opened.contains(&id);
    // bounded: each round consumes a frame or stops
    while pos < written.len() {
        let (f, len) = match frame::parse(&written[pos..], g.max_frame) {
            Ok(Parsed::Frame { frame, len }) => (frame, len),
            Ok(Parsed::Need { .. }) if blocked => return,
            other => panic!(
                "frame at {pos}: the client cannot read it: {other:?} ({:?})",
                &written[pos..written.len().min(pos + 40)]
            ),
        };
        pos += len;
        if first {
            assert!(
                matches!(f, Frame::Settings { ack: false, .. }),
                "the server does not start with SETTINGS: {f:?}"
            );
            first = false;
            continue;
        }
        if !matches!(f, Frame::Continuation { .. }) {
            assert!(
                block.check_other().is_ok(),
                "a field block interrupted by {f:?}"
            );
        }
        let gathered = match f {
            Frame::Headers {
                stream,
                block: b,
                end_stream,
                end_headers,
                ..
            } => block.headers(stream, b, end_stream, end_headers, usize::MAX),
            Frame::Continuation {
                stream,
                block: b,
                end_headers,
            } => block.continuation(stream, b, end_headers, usize::MAX),
            _ => Ok(Gathered::Open),
        };
        match gathered {
            Ok(Gathered::Done {
                stream,
                block: b,
                end_stream,
            }) => {
                assert!(known(stream), "a response on stream {stream}, never opened");
                let st = streams.entry(stream).or_default();
                assert!(
                    !st.ended && !st.reset,
                    "HEADERS on stream {stream} after it ended: {st:?}"
                );
                if !st.final_head {
                    if let Some(last) = goaway {
                        assert!(stream <= last, "a response on {stream} past GOAWAY {last}");
                    }
                }
                decoder.decode(b, &mut list).unwrap_or_else(|e| {
                    panic!("stream {stream}: a block that does not decode: {e:?}")
                });
                check_block(stream, &list, end_stream, st);
                st.ended |= end_stream;
            }
            Ok(Gathered::Open) => {}
            Err(e) => panic!("a field block the client cannot gather: {e:?}"),
        }
        match f {
            Frame::Settings { ack, .. } => {
                assert!(ack, "a second SETTINGS from the server");
                settings_acks += 1;
                assert!(
                    settings_acks <= g.settings,
                    "{settings_acks} SETTINGS ACKs to {} SETTINGS",
                    g.settings
                );
            }
            Frame::Ping { ack, data } => {
                assert!(ack, "a PING from the server");
                assert!(g.pings.contains(&data), "a PING ACK to no PING: {data:?}");
                ping_acks += 1;
                assert!(ping_acks <= g.pings.len(), "more PING ACKs than PINGs");
            }
            Frame::Data {
                stream,
                data,
                end_stream,
                flow_len,
            } => {
                assert!(known(stream), "DATA on stream {stream}, never opened");
                assert_eq!(flow_len as usize, data.len(), "padded DATA");
                let st = streams.entry(stream).or_default();
                assert!(
                    st.final_head && !st.ended && !st.reset,
                    "DATA on stream {stream} out of place: {st:?}"
                );
                st.data += data.len() as u64;
                st.ended |= end_stream;
                conn_data += data.len() as u64;
                let window =
                    g.max_initial_window + g.stream_window.get(&stream).copied().unwrap_or(0);
                assert!(
                    st.data <= window,
                    "stream {stream}: {} bytes of DATA, the client granted {window} at most",
                    st.data
                );
                assert!(
                    conn_data <= g.conn_window,
                    "{conn_data} bytes of DATA, the client granted {} at most",
                    g.conn_window
                );
            }
            Frame::RstStream { stream, .. } => {
                let st = streams.entry(stream).or_default();
                let untouched = !st.final_head && !st.ended && st.data == 0;
                match idle_resets.iter().position(|&id| id == stream) {
                    // the reset of a PRIORITY on the stream while it was idle
                    Some(i) if untouched => {
                        idle_resets.swap_remove(i);
                    }
                    _ => st.reset = true,
                }
            }
            Frame::WindowUpdate { stream, .. } => {
                if stream != 0 {
                    assert!(
                        known(stream),
                        "WINDOW_UPDATE on stream {stream}, never opened"
                    );
                    let st = streams.entry(stream).or_default();
                    assert!(
                        !st.reset,
                        "WINDOW_UPDATE on stream {stream} after RST_STREAM"
                    );
                }
            }
            Frame::GoAway { last_stream, .. } => {
                assert!(
                    last_stream <= max_opened,
                    "GOAWAY names stream {last_stream}, past any the client opened"
                );
                if let Some(last) = goaway {
                    assert!(
                        last_stream <= last,
                        "GOAWAY's last stream id grew from {last} to {last_stream}"
                    );
                }
                goaway = Some(last_stream);
            }
            Frame::Headers { .. } | Frame::Continuation { .. } => {}
            Frame::Priority { .. } | Frame::Unknown { .. } => {
                panic!("the server sent {f:?}")
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 || data.len() > 64 * 1024 {
        return;
    }
    let (opts, c_piece, b_piece, c_room) = (data[0], data[1], data[2], data[3]);
    let parts = split(&data[4..], SEP);
    let client_bytes = h2_ops::Gen::new(parts[0]).run();
    let schedule = parts.get(1).copied().unwrap_or(&[]);
    let (config, settings) = &configs()[usize::from(opts & 127)];
    let scripts = parts.get(2..).unwrap_or(&[]);
    let g = grants(&client_bytes);
    let max_bufs = 1 + 2 * settings.h2.max_concurrent as usize;
    let mut w = World::new(
        config,
        settings,
        &client_bytes,
        (c_piece, b_piece, c_room),
        scripts,
        opts & 128 != 0,
        max_bufs,
    );
    if opts & 128 != 0 {
        // drained from the start: the worker tells the connection once it is HTTP/2
        w.event(7 | 2 << 3, true);
    }
    for &b in schedule {
        w.event(b, true);
    }
    w.settle(64 + 8 * g.frames);
    w.release();
    w.check_backends();
    let p = w.client.lock();
    client_reads(&p.written, &g, p.room == 0 || p.reset);
});
