//! The driver of a whole client connection over in-memory transports (`transport::mem`, the
//! library's `mem-io` feature), shared by the `session` (HTTP/1.1) and `h2_session` (HTTP/2)
//! targets (each includes this file with `#[path]`, next to `wire.rs`): the worker's loop in
//! small.
//!
//! A [`World`] holds the real client `Connection`, the client's script, the backend connections
//! its streams open through the `Upstreams` connect hook (one script each, in turns: the answer
//! to its first request, to its second, ...; its first byte: connect pending, refused, small
//! room) and the worker's state a connection borrows (`Ctx`). A schedule byte is one event (a
//! side sends a piece or makes room, a connect completes, a side closes or resets, the deadline
//! passes, the worker drains); each is reported the way `worker/` reports readiness and the
//! connection runs until it is idle. [`World::settle`] then delivers everything, closes both
//! sides and lets deadlines pass until the connection closes, within a bound; [`World::release`]
//! releases it as the worker does and checks that nothing is left held.
// every target uses its own part
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use ferrule::access_log::{AccessLog, Local, RequestIds};
use ferrule::balancer::{Balancer, Policy};
use ferrule::buffer::BufPool;
use ferrule::config::{AccessLogFormat, AccessLogTarget};
use ferrule::connection::{Close, Connection as Session, Ran, DRAIN_IDLE_GRACE};
use ferrule::context::{Ctx, Settings};
use ferrule::pools::{PoolSettings, Pools, View};
use ferrule::stats::{CloseReason, WorkerStats};
use ferrule::transport::mem::{Conn, Pipe};
use ferrule::transport::Transport;
use ferrule::upstream::Upstreams;
use ferrule::{Config, Pool};
use parking_lot::Mutex;

use crate::wire::{body_end, forwarded_framing};

/// Separates the client's bytes, the schedule and the backend scripts.
pub const SEP: &[u8] = b"\x00\xff\x00\xff";

/// Separates a backend script's turns: the answers to its first request, its second, ...
pub const TURN: &[u8] = b"\x00\xfe\x00\xfe";

/// Room a peer gives when it is not holding ferrule's writes back.
pub const PLENTY: usize = 1 << 20;

/// The options a config is built from.
#[derive(Debug, Default, Clone, Copy)]
pub struct Opts {
    /// PROXY protocol from a trusted proxy (192.0.2.0/24).
    pub proxy_protocol: bool,
    /// A sticky cookie, stripped before the backend.
    pub sticky: bool,
    pub request_id: bool,
    /// 2 retries (else none).
    pub retries: bool,
    /// 4 KiB buffers (else 16 KiB).
    pub small_buffers: bool,
    /// `max_body_size` 64.
    pub body_limit: bool,
    /// A second backend, round-robin between the two.
    pub two_backends: bool,
}

/// The config and settings for `o` (one backend at 127.0.0.1:9, no health checks, no access
/// log, `max_fails` 2).
pub fn build_config(o: Opts) -> (Config, Settings) {
    let mut json = String::from(
        r#"{"access_log": false, "health_check_frequency": "0s", "workers": 1,
            "max_fails": 2"#,
    );
    json += if o.two_backends {
        r#", "backends": [{"url": "http://127.0.0.1:9"}, {"url": "http://127.0.0.1:10"}]"#
    } else {
        r#", "backends": [{"url": "http://127.0.0.1:9"}]"#
    };
    if o.proxy_protocol {
        json += r#", "proxy_protocol": true, "trusted_proxies": ["192.0.2.0/24"]"#;
    }
    if o.sticky {
        json += r#", "enable_sticky_sessions": true, "sticky_mode": "cookie",
                   "sticky_cookie_strip": true"#;
    }
    if o.request_id {
        json += r#", "request_id": true"#;
    }
    json += if o.retries {
        r#", "retries": 2"#
    } else {
        r#", "retries": 0"#
    };
    json += if o.small_buffers {
        r#", "buffer_size": 4096"#
    } else {
        r#", "buffer_size": 16384"#
    };
    if o.body_limit {
        json += r#", "max_body_size": 64"#;
    }
    json.push('}');
    let config =
        Config::from_json_str(&json).unwrap_or_else(|e| panic!("fuzz config {o:?}: {e}: {json}"));
    let settings = Settings::from_config(&config);
    (config, settings)
}

/// `SESSION_DUMP=1`: print what the connection did and what each side received.
pub fn dump() -> bool {
    static DUMP: OnceLock<bool> = OnceLock::new();
    *DUMP.get_or_init(|| std::env::var_os("SESSION_DUMP").is_some())
}

fn access_log() -> &'static Arc<AccessLog> {
    static LOG: OnceLock<Arc<AccessLog>> = OnceLock::new();
    LOG.get_or_init(|| {
        AccessLog::start(&AccessLogTarget::Off, AccessLogFormat::Combined).expect("an access log")
    })
}

/// A piece size from its byte (0: 64 KiB).
pub fn piece(b: u8) -> usize {
    if b == 0 {
        1 << 16
    } else {
        usize::from(b)
    }
}

/// The backend side: scripts not yet connected, and every connection opened.
#[derive(Default)]
pub struct Backends {
    scripts: VecDeque<Vec<u8>>,
    piece: usize,
    pub opened: Vec<Conn>,
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

/// The worker's state a connection borrows.
pub struct Harness {
    pub upstreams: Upstreams,
    pub bufs: BufPool,
    scratch: Vec<u8>,
    /// The pool, as a worker sees it (one pool, no routes).
    pub view: View,
    stats: WorkerStats,
    queue: VecDeque<ferrule::context::Waiting>,
    queued: AtomicUsize,
    ids: RequestIds,
    log: Local,
    poll: mio::Poll,
    pub now: Instant,
    /// The worker is shutting down: requests are served with `Connection: close`.
    pub draining: bool,
    backends: Arc<Mutex<Backends>>,
    /// Buffers the connection may hold at once.
    max_bufs: usize,
    /// The run is an event's, inside the worker's poll round (`Ctx::gathering`).
    gathering: bool,
    /// Events of backend connections since the last run, and the slot of the stream that owns
    /// the last one: a run after one such event is for that stream (`Ctx::woken`).
    woken_events: u32,
    woken: Option<u32>,
}

impl Harness {
    /// Calls `f` with the context the worker would give the connection.
    fn with_ctx<T>(&mut self, settings: &Settings, f: impl FnOnce(&mut Ctx<'_>) -> T) -> T {
        let mut ctx = Ctx {
            gathering: self.gathering,
            deferred: false,
            woken: None,
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
            access_log: &mut self.log,
            ids: &mut self.ids,
        };
        f(&mut ctx)
    }

    pub fn opened(&self) -> Vec<Conn> {
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
        if let Some(owner) = up.owner {
            up.side.ready(readable, writable, hup);
            self.woken_events += 1;
            self.woken = Some(owner.slot);
        } else if hup || (readable && !up.transport.absorb_idle()) {
            self.upstreams.close_idle(key);
        } else {
            up.side.writable |= writable;
        }
    }

    /// What the worker would give the next run as `Ctx::woken`: the stream whose backend
    /// connection had the one event since the last run (after several, the worker would have
    /// run the connection for each; a run for all of them stands in).
    fn take_woken(&mut self) -> Option<u32> {
        let woken = self.woken.take().filter(|_| self.woken_events == 1);
        self.woken_events = 0;
        woken
    }

    fn check_bounds(&self) {
        assert!(
            self.bufs.in_use() <= self.max_bufs,
            "{} buffers, {} at most",
            self.bufs.in_use(),
            self.max_bufs
        );
    }
}

/// A client connection, its backends and the worker around them.
pub struct World {
    pub h: Harness,
    pub s: Session,
    pub client: Conn,
    pub settings: &'static Settings,
    keepalive_timeout: std::time::Duration,
    /// The connection closed.
    pub closed: bool,
}

impl World {
    /// A connection from 192.0.2.7 whose client will send `client_bytes` (`c_piece` bytes a read
    /// at most, `c_room`: how much it takes, 16 bytes a unit, 0 for plenty), with `scripts` for
    /// the backend connections (`b_piece` bytes a read); the connection may hold `max_bufs`
    /// buffers at once. It runs once, as the worker runs a connection just accepted.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &Config,
        settings: &'static Settings,
        client_bytes: &[u8],
        (c_piece, b_piece, c_room): (u8, u8, u8),
        scripts: &[&[u8]],
        draining: bool,
        max_bufs: usize,
    ) -> World {
        let backends = Arc::new(Mutex::new(Backends {
            scripts: scripts.iter().map(|s| s.to_vec()).collect(),
            piece: piece(b_piece),
            ..Backends::default()
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
        let h = Harness {
            upstreams,
            bufs: BufPool::new(config.limits.buffer_size, 2),
            scratch: Vec::new(),
            view,
            stats: WorkerStats::default(),
            queue: VecDeque::new(),
            queued: AtomicUsize::new(0),
            ids: RequestIds::new(),
            log: Local::new(Arc::clone(access_log())),
            poll: mio::Poll::new().expect("a poll"),
            now: Instant::now(),
            draining,
            backends,
            max_bufs,
            gathering: false,
            woken_events: 0,
            woken: None,
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
        let s = Session::new(
            Transport::Mem(Arc::clone(&client)),
            peer,
            1,
            h.now,
            settings,
            false,
        );
        let mut w = World {
            h,
            s,
            client,
            settings,
            keepalive_timeout: config.keepalive.timeout,
            closed: false,
        };
        w.closed = w.drive(false);
        w
    }

    /// Runs the connection until it is idle (`Ran::More` is run again, as the worker does);
    /// with `timeout`, its deadline passes first. `true` when it closed.
    fn drive(&mut self, timeout: bool) -> bool {
        let (h, s, settings) = (&mut self.h, &mut self.s, self.settings);
        if timeout {
            h.now = h.now.max(s.deadline);
            if h.with_ctx(settings, |ctx| s.timed_out(ctx)).is_err() {
                return true;
            }
        }
        // A connection that reads what waits in pieces of a byte takes a run for every 16 of
        // them (`MAX_ROUNDS`): the bound grows with what is left to read, so only a connection
        // that keeps running without reading anything trips it.
        let unread = {
            let waiting = |c: &Conn| {
                let p = c.lock();
                p.sent.saturating_sub(p.read)
            };
            let backends: usize = h.opened().iter().map(waiting).sum();
            waiting(&self.client) + backends
        };
        for round in 0..10_000 + unread {
            h.check_bounds();
            // the first run is the event's, inside the worker's poll round (`Ctx::gathering`);
            // a run again after `Ran::More` is the worker's after the round
            h.gathering = round == 0;
            let woken = h.take_woken();
            let (mut r, deferred) = h.with_ctx(settings, |ctx| {
                ctx.woken = woken;
                let r = s.run(ctx);
                (r, ctx.deferred)
            });
            h.gathering = false;
            if deferred && r.is_ok() {
                // the round's end: the request held for it goes to its backend (the worker's
                // `push_deferred`), or the connection runs whole
                if !h.with_ctx(settings, |ctx| s.push_deferred(ctx)) {
                    r = Ok(Ran::More);
                }
            }
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
        panic!("the connection never went idle");
    }

    /// One schedule event (op in the low 3 bits, its argument above): the client sends a piece
    /// (0) or makes room (1); a backend connection (one of the last four opened) sends a piece
    /// (2), makes room (3), completes its connect (4), closes or resets (5); the client closes
    /// or resets (6); the deadline passes (7), after idle backend connections expire (bit 3);
    /// with `drains` and bit 4, the worker drains instead (`close_idle_by`, as on SIGTERM).
    pub fn event(&mut self, b: u8, drains: bool) {
        if self.closed {
            return;
        }
        let (op, arg) = (b & 7, usize::from(b >> 3));
        let opened = self.h.opened();
        let index = opened.len().checked_sub(1 + arg % 4);
        let pick = index.map(|i| &opened[i]);
        let b_piece = self.h.backends.lock().piece;
        let c_piece = self.client.lock().piece;
        if let (2, Some(i)) = (op, index) {
            self.h.backends.lock().send(i, b_piece);
        }
        let mut timeout = false;
        match op {
            0 => {
                self.client.lock().send(c_piece.saturating_mul(arg + 1));
                self.s.client_ready(true, false, false);
            }
            1 => {
                self.client.lock().room += (arg + 1) * 64;
                self.s.client_ready(false, true, false);
            }
            2..=5 => {
                let Some(conn) = pick else { return };
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
                self.h.upstream_event(&conn.clone(), r, w, hup);
            }
            6 => {
                {
                    let mut p = self.client.lock();
                    if arg & 16 != 0 {
                        p.reset = true;
                    } else {
                        let n = p.script.len();
                        p.send(n);
                        p.eof = true;
                    }
                }
                self.s.client_ready(true, true, true);
            }
            _ if drains && arg & 2 != 0 => {
                // the worker's drain: every connection is told, then run
                self.h.draining = true;
                let now = self.h.now;
                if self.s.close_idle_by(now + DRAIN_IDLE_GRACE, now) && dump() {
                    eprintln!("drain: deadline moved");
                }
            }
            _ => {
                if arg & 1 != 0 {
                    self.h
                        .upstreams
                        .expire_idle(self.h.now, self.keepalive_timeout);
                }
                timeout = true;
            }
        }
        self.closed = self.drive(timeout);
    }

    /// A measure of what has moved: bytes sent, read and written on every connection.
    fn progress(&self) -> usize {
        let b = self.h.backends.lock();
        b.opened
            .iter()
            .chain(std::iter::once(&self.client))
            .map(|c| {
                let p = c.lock();
                p.sent + p.read + p.written.len()
            })
            .sum::<usize>()
            + b.opened.len()
    }

    /// Both sides send everything left and make room for everything; the backends close when
    /// `backends_close`, the client when `client_closes`.
    fn deliver_all(&mut self, backends_close: bool, client_closes: bool) {
        {
            let mut p = self.client.lock();
            let n = p.script.len();
            p.send(n);
            p.eof |= client_closes;
            p.room = PLENTY;
        }
        self.s.client_ready(true, true, client_closes);
        for (i, conn) in self.h.opened().into_iter().enumerate() {
            self.h.backends.lock().send(i, usize::MAX);
            {
                let mut p = conn.lock();
                p.eof |= backends_close;
                p.connecting = false;
                p.room = PLENTY;
            }
            self.h.upstream_event(&conn, true, true, backends_close);
        }
    }

    /// The rest: everything is delivered, for as long as that moves anything; then the backends
    /// close, then the client, then deadlines pass. The connection must close within `bound`
    /// rounds.
    pub fn settle(&mut self, bound: usize) {
        let mut level = 0;
        for round in 0.. {
            if self.closed {
                break;
            }
            assert!(
                round < bound,
                "the connection did not close in {bound} rounds"
            );
            let before = self.progress();
            self.deliver_all(level >= 1, level >= 2);
            self.closed = self.drive(level >= 3);
            if self.progress() == before {
                level += 1;
            }
        }
    }

    /// The worker releases the connection; nothing may be left held: no buffer, no request
    /// counted on a backend, no backend connection lent.
    pub fn release(&mut self) {
        let (h, s, settings) = (&mut self.h, &mut self.s, self.settings);
        h.with_ctx(settings, |ctx| s.release(ctx, CloseReason::Done));
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
                String::from_utf8_lossy(&self.client.lock().written)
            );
        }
    }

    /// Every backend connection received whole requests (see [`backend_reads`]).
    pub fn check_backends(&self) {
        for conn in &self.h.opened() {
            let p = conn.lock();
            let tunnel = p.script.windows(4).any(|w| w == b" 101");
            backend_reads(&p.written, tunnel);
        }
    }
}

/// A backend connection's view: whole requests (the last maybe cut short), nothing after them
/// unless the connection became a tunnel.
pub fn backend_reads(stream: &[u8], tunnel: bool) {
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

pub fn split<'a>(mut data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    while let Some(at) = data.windows(sep.len()).position(|w| w == sep) {
        parts.push(&data[..at]);
        data = &data[at + sep.len()..];
    }
    parts.push(data);
    parts
}
