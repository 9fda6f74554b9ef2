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

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use ferrule::access_log::{AccessLog, RequestIds};
use ferrule::balancer::{Balancer, Policy};
use ferrule::pools::{PoolSettings, Pools, View};
use ferrule::buffer::BufPool;
use ferrule::config::{AccessLogFormat, AccessLogTarget};
use ferrule::connection::{Close, Connection as Session, Ran};
use ferrule::context::{Ctx, Settings};
use ferrule::http::Framing;
use ferrule::stats::CloseReason;
use ferrule::stats::WorkerStats;
use ferrule::transport::mem::{Conn, Pipe};
use ferrule::transport::Transport;
use ferrule::upstream::Upstreams;
use ferrule::{Config, Pool};
use libfuzzer_sys::fuzz_target;
use parking_lot::Mutex;

#[path = "../common/wire.rs"]
mod wire;
use wire::{body_end, forwarded_framing, framing_of};

/// Separates the client's bytes, the schedule and the backend scripts.
const SEP: &[u8] = b"\x00\xff\x00\xff";

/// Separates a backend script's turns: the answers to its first request, its second, ...
const TURN: &[u8] = b"\x00\xfe\x00\xfe";

/// Room a peer gives when it is not holding ferrule's writes back.
const PLENTY: usize = 1 << 20;

/// The configs an input picks from (bit `k` of the index turns option `k` on): PROXY protocol
/// from a trusted proxy, sticky cookie (stripped), request ids, 2 retries, 4 KiB buffers, a
/// 64-byte body limit, a second backend (round-robin between them).
fn configs() -> &'static [(Config, Settings)] {
    static CONFIGS: OnceLock<Vec<(Config, Settings)>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        (0..128u32)
            .map(|opts| {
                let on = |bit: u32| opts & (1 << bit) != 0;
                let mut json = String::from(
                    r#"{"access_log": false, "health_check_frequency": "0s", "workers": 1,
                        "max_fails": 2"#,
                );
                json += if on(6) {
                    r#", "backends": [{"url": "http://127.0.0.1:9"}, {"url": "http://127.0.0.1:10"}]"#
                } else {
                    r#", "backends": [{"url": "http://127.0.0.1:9"}]"#
                };
                if on(0) {
                    json += r#", "proxy_protocol": true, "trusted_proxies": ["192.0.2.0/24"]"#;
                }
                if on(1) {
                    json += r#", "enable_sticky_sessions": true, "sticky_mode": "cookie",
                               "sticky_cookie_strip": true"#;
                }
                if on(2) {
                    json += r#", "request_id": true"#;
                }
                json += if on(3) {
                    r#", "retries": 2"#
                } else {
                    r#", "retries": 0"#
                };
                json += if on(4) {
                    r#", "buffer_size": 4096"#
                } else {
                    r#", "buffer_size": 16384"#
                };
                if on(5) {
                    json += r#", "max_body_size": 64"#;
                }
                json.push('}');
                let config = Config::from_json_str(&json)
                    .unwrap_or_else(|e| panic!("fuzz config {opts}: {e}: {json}"));
                let settings = Settings::from_config(&config);
                (config, settings)
            })
            .collect()
    })
}

/// `SESSION_DUMP=1`: print what the session did and what each side received.
fn dump() -> bool {
    static DUMP: OnceLock<bool> = OnceLock::new();
    *DUMP.get_or_init(|| std::env::var_os("SESSION_DUMP").is_some())
}

fn access_log() -> &'static AccessLog {
    static LOG: OnceLock<Arc<AccessLog>> = OnceLock::new();
    LOG.get_or_init(|| {
        AccessLog::start(&AccessLogTarget::Off, AccessLogFormat::Combined).expect("an access log")
    })
}

/// The backend side: scripts not yet connected, and every connection opened.
#[derive(Default)]
struct Backends {
    scripts: VecDeque<Vec<u8>>,
    piece: usize,
    opened: Vec<Conn>,
    /// Where each opened connection's turns end in its script.
    turns: Vec<Vec<usize>>,
    /// Connections the poll has reported since they opened.
    announced: usize,
}

impl Backends {
    /// Connection `i` sends up to `n` more bytes, within the turns it has been asked for: the
    /// first at once (a backend may answer early), each next one after another request head.
    fn send(&self, i: usize, n: usize) {
        let (Some(conn), Some(ends)) = (self.opened.get(i), self.turns.get(i)) else {
            return;
        };
        let mut p = conn.lock();
        if p.eof {
            return;
        }
        let heads = p.written.windows(4).filter(|w| w == b"\r\n\r\n").count();
        let turn = heads.saturating_sub(1).min(ends.len().saturating_sub(1));
        let end = ends.get(turn).copied().unwrap_or(0);
        let n = n.min(end.saturating_sub(p.sent));
        p.send(n);
    }

    /// The next connection: the next script, or a refused connect when none is left.
    fn open(&mut self) -> Conn {
        let script = self.scripts.pop_front();
        let flags = script
            .as_ref()
            .and_then(|s| s.first().copied())
            .unwrap_or(2);
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for turn in split(
            script.as_deref().and_then(|s| s.get(1..)).unwrap_or(&[]),
            TURN,
        ) {
            bytes.extend_from_slice(turn);
            ends.push(bytes.len());
        }
        let room = if flags & 4 != 0 {
            (usize::from(flags >> 3) + 1) * 16
        } else {
            PLENTY
        };
        let conn = Pipe::new(bytes, self.piece, room);
        {
            let mut p = conn.lock();
            p.connecting = flags & 1 != 0;
            p.reset = flags & 2 != 0;
        }
        self.opened.push(Arc::clone(&conn));
        self.turns.push(ends);
        conn
    }
}

/// The upstream keys whose transport is `conn`.
fn key_of(upstreams: &mut Upstreams, conn: &Conn, bound: usize) -> Option<usize> {
    (0..bound).find(|&k| {
        upstreams
            .get_mut(k)
            .is_some_and(|up| matches!(&up.transport, Transport::Mem(c) if Arc::ptr_eq(c, conn)))
    })
}

struct Harness {
    upstreams: Upstreams,
    bufs: BufPool,
    scratch: Vec<u8>,
    /// The pool, as a worker sees it (one pool, no routes).
    view: View,
    stats: WorkerStats,
    queue: VecDeque<ferrule::context::Waiting>,
    queued: AtomicUsize,
    ids: RequestIds,
    poll: mio::Poll,
    now: Instant,
    /// The worker is shutting down: requests are served with `Connection: close`.
    draining: bool,
    backends: Arc<Mutex<Backends>>,
}

impl Harness {
    /// Calls `f` with the context the worker would give the session.
    fn with_ctx<T>(&mut self, settings: &Settings, f: impl FnOnce(&mut Ctx<'_>) -> T) -> T {
        let mut ctx = Ctx {
            registry: self.poll.registry(),
            upstreams: &mut self.upstreams,
            bufs: &mut self.bufs,
            scratch: &mut self.scratch,
            pools: &mut self.view,
            cfg: settings,
            now: self.now,
            date: b"Sun, 06 Nov 1994 08:49:37 GMT",
            draining: self.draining,
            key: 0,
            id: 1,
            slot: 0,
            redirect: None,
            stats: &self.stats,
            queue: &mut self.queue,
            queued: &self.queued,
            access_log: access_log(),
            ids: &mut self.ids,
        };
        f(&mut ctx)
    }

    fn opened(&self) -> Vec<Conn> {
        self.backends.lock().opened.clone()
    }

    /// Reports readiness on a backend connection as the worker does (`upstream_event`).
    fn upstream_event(&mut self, conn: &Conn, readable: bool, writable: bool, hup: bool) {
        let bound = self.backends.lock().opened.len();
        let Some(key) = key_of(&mut self.upstreams, conn, bound) else {
            return; // closed already
        };
        let Some(up) = self.upstreams.get_mut(key) else {
            return;
        };
        if up.owner.is_some() {
            up.side.ready(readable, writable, hup);
        } else if hup || (readable && !up.transport.absorb_idle()) {
            self.upstreams.close_idle(key);
        } else {
            up.side.writable |= writable;
        }
    }

    fn check_bounds(&self) {
        assert!(self.bufs.in_use() <= 2, "{} buffers", self.bufs.in_use());
    }
}

/// Runs the session until it is idle (`Ran::More` is run again, as the worker does). `true`
/// when it closed.
fn drive(h: &mut Harness, s: &mut Session, settings: &Settings, timeout: bool) -> bool {
    if timeout {
        h.now = h.now.max(s.deadline);
        if h.with_ctx(settings, |ctx| s.timed_out(ctx)).is_err() {
            return true;
        }
    }
    for _ in 0..10_000 {
        h.check_bounds();
        let r = h.with_ctx(settings, |ctx| s.run(ctx));
        if dump() {
            eprintln!("ran {r:?} now {:?}", s.phase());
        }
        match r {
            Ok(Ran::Idle) => {
                // a connection just opened: the poll reports it at once (writable when
                // connected, an error when refused), as epoll does on registration
                let fresh = {
                    let mut b = h.backends.lock();
                    let (from, to) = (b.announced, b.opened.len());
                    b.announced = to;
                    b.opened[from..].to_vec()
                };
                if fresh.is_empty() {
                    return false;
                }
                for conn in fresh {
                    let (connecting, reset) = {
                        let p = conn.lock();
                        (p.connecting, p.reset)
                    };
                    if reset {
                        h.upstream_event(&conn, true, true, true);
                    } else if !connecting {
                        h.upstream_event(&conn, false, true, false);
                    }
                }
            }
            Ok(Ran::More) => {}
            Err(Close(_)) => return true,
        }
    }
    panic!("the session never went idle");
}

/// A backend connection's view: whole requests (the last maybe cut short), nothing after them
/// unless the connection became a tunnel.
fn backend_reads(stream: &[u8], tunnel: bool) {
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let mut fields = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut fields);
        let n = match req.parse(&stream[pos..]) {
            Ok(httparse::Status::Complete(n)) => n,
            // cut short: ferrule gave up on the exchange (a timeout) while sending it
            Ok(httparse::Status::Partial) => return,
            _ if tunnel && i > 0 => return,
            other => panic!(
                "request {i}: the backend cannot read the head: {other:?}: {:?}",
                String::from_utf8_lossy(&stream[pos..stream.len().min(pos + 600)])
            ),
        };
        let framing = forwarded_framing(&req, i);
        match body_end(stream, pos + n, framing) {
            Some(end) => pos = end,
            // cut short: the client stopped sending, or ferrule gave up on the exchange; only the
            // last request may be
            None => return,
        }
        if tunnel {
            return;
        }
        i += 1;
    }
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

fn split<'a>(mut data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    while let Some(at) = data.windows(sep.len()).position(|w| w == sep) {
        parts.push(&data[..at]);
        data = &data[at + sep.len()..];
    }
    parts.push(data);
    parts
}

/// A measure of what has moved: bytes sent, read and written on every connection.
fn progress(h: &Harness, client: &Conn) -> usize {
    let b = h.backends.lock();
    b.opened
        .iter()
        .chain(std::iter::once(client))
        .map(|c| {
            let p = c.lock();
            p.sent + p.read + p.written.len()
        })
        .sum::<usize>()
        + b.opened.len()
}

/// Both sides send everything left and make room for everything; the backends close when
/// `backends_close`, the client when `client_closes`.
fn deliver_all(
    h: &mut Harness,
    s: &mut Session,
    client: &Conn,
    backends_close: bool,
    client_closes: bool,
) {
    {
        let mut p = client.lock();
        let n = p.script.len();
        p.send(n);
        p.eof |= client_closes;
        p.room = PLENTY;
    }
    s.client_ready(true, true, client_closes);
    for (i, conn) in h.opened().into_iter().enumerate() {
        h.backends.lock().send(i, usize::MAX);
        {
            let mut p = conn.lock();
            p.eof |= backends_close;
            p.connecting = false;
            p.room = PLENTY;
        }
        h.upstream_event(&conn, true, true, backends_close);
    }
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
    let piece = |b: u8| if b == 0 { 1 << 16 } else { usize::from(b) };

    let backends = Arc::new(Mutex::new(Backends {
        scripts: parts.iter().skip(2).map(|s| s.to_vec()).collect(),
        piece: piece(b_piece),
        opened: Vec::new(),
        turns: Vec::new(),
        announced: 0,
    }));
    let mut upstreams = Upstreams::new(config.keepalive.connections, 64);
    let hook = Arc::clone(&backends);
    upstreams.mem_connect = Some(Box::new(move |_backend| {
        Ok(Transport::Mem(hook.lock().open()))
    }));
    let balancer = Balancer::with_policy(
        Pool::new(config.pool.balance.strategy, &config.pool.backends),
        Policy::from_pool(&config.pool),
    );
    let pools = Pools::single(Arc::new(balancer), PoolSettings::from_pool(&config.pool), 1);
    let view = View::new(&pools, 0);
    let mut h = Harness {
        upstreams,
        bufs: BufPool::new(config.limits.buffer_size, 2),
        scratch: Vec::new(),
        view,
        stats: WorkerStats::default(),
        queue: VecDeque::new(),
        queued: AtomicUsize::new(0),
        ids: RequestIds::new(),
        poll: mio::Poll::new().expect("a poll"),
        now: Instant::now(),
        draining: opts & 128 != 0,
        backends,
    };

    let client = Pipe::new(
        client_bytes.to_vec(),
        piece(c_piece),
        if c_room == 0 {
            PLENTY
        } else {
            usize::from(c_room) * 16
        },
    );
    let peer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let mut s = Session::new(
        Transport::Mem(Arc::clone(&client)),
        peer,
        1,
        h.now,
        settings,
        false,
    );

    // the schedule: one event a byte
    let mut closed = drive(&mut h, &mut s, settings, false);
    for &b in schedule {
        if closed {
            break;
        }
        let (op, arg) = (b & 7, usize::from(b >> 3));
        let opened = h.opened();
        let index = opened.len().checked_sub(1 + arg % 4);
        let pick = index.map(|i| &opened[i]);
        if let (2, Some(i)) = (op, index) {
            h.backends.lock().send(i, piece(b_piece));
        }
        let mut timeout = false;
        match op {
            0 => {
                client.lock().send(piece(c_piece).saturating_mul(arg + 1));
                s.client_ready(true, false, false);
            }
            1 => {
                client.lock().room += (arg + 1) * 64;
                s.client_ready(false, true, false);
            }
            2..=5 => {
                let Some(conn) = pick else { continue };
                let (r, w, hup) = {
                    let mut p = conn.lock();
                    match op {
                        2 => (true, false, false),
                        3 => {
                            p.room += (arg + 1) * 64;
                            (false, true, false)
                        }
                        4 => {
                            p.connecting = false;
                            (false, true, false)
                        }
                        _ => {
                            if arg & 16 != 0 {
                                p.reset = true;
                            } else {
                                p.eof = true;
                            }
                            (true, true, true)
                        }
                    }
                };
                h.upstream_event(&conn.clone(), r, w, hup);
            }
            6 => {
                {
                    let mut p = client.lock();
                    if arg & 16 != 0 {
                        p.reset = true;
                    } else {
                        let n = p.script.len();
                        p.send(n);
                        p.eof = true;
                    }
                }
                s.client_ready(true, true, true);
            }
            _ => {
                if arg & 1 != 0 {
                    h.upstreams
                        .expire_idle(h.now, config.keepalive.timeout);
                }
                timeout = true;
            }
        }
        closed = drive(&mut h, &mut s, settings, timeout);
    }

    // the rest: everything is delivered, for as long as that moves anything; then the backends
    // close, then the client, then deadlines pass
    let bound = 64 + heads_in(client_bytes) * 4;
    let mut level = 0;
    for round in 0.. {
        if closed {
            break;
        }
        assert!(round < bound, "the session did not close in {bound} rounds");
        let before = progress(&h, &client);
        deliver_all(&mut h, &mut s, &client, level >= 1, level >= 2);
        closed = drive(&mut h, &mut s, settings, level >= 3);
        if progress(&h, &client) == before {
            level += 1;
        }
    }
    h.with_ctx(settings, |ctx| s.release(ctx, CloseReason::Done));
    drop(s);

    assert_eq!(h.bufs.in_use(), 0, "buffers kept after release");
    for b in h.view.table().default().balancer.current().backends() {
        assert_eq!(
            b.active_requests(),
            0,
            "a request left counted on {}",
            b.addr
        );
    }
    let opened = h.opened();
    for k in 0..opened.len() {
        if let Some(up) = h.upstreams.get_mut(k) {
            assert!(up.owner.is_none(), "connection {k} still lent");
        }
    }
    if dump() {
        for (i, conn) in opened.iter().enumerate() {
            eprintln!(
                "backend {i} got {:?}",
                String::from_utf8_lossy(&conn.lock().written)
            );
        }
        eprintln!(
            "client got {:?}",
            String::from_utf8_lossy(&client.lock().written)
        );
    }
    for conn in &opened {
        let p = conn.lock();
        let tunnel = p.script.windows(4).any(|w| w == b" 101");
        backend_reads(&p.written, tunnel);
    }
    let p = client.lock();
    let head = client_bytes.windows(4).any(|w| w == b"HEAD");
    let finals = client_reads(&p.written, head, p.room == 0 || p.reset);
    assert!(
        finals <= heads_in(client_bytes) + 1,
        "{finals} responses to {} heads at most",
        heads_in(client_bytes)
    );
});
