//! One client connection: the state machine that reads requests, forwards them to a backend and
//! relays the responses, with bounded buffers and one deadline at a time.
//!
//! ```text
//!            ┌──────────────── keep-alive ────────────────┐
//!            v                                            │
//!   accept → [ProxyHeader →] ReadHead ──head──> [Queued →] Connect ──connected──> Exchange ──101──> Tunnel
//!                            │  (idle conn found: straight to Exchange)            │
//!                            └── bad head: 4xx ──> Drain ──> close  <──────────────┘ (Connection: close, errors)
//! ```
//!
//! | phase    | what happens                                                      | deadline               |
//! |----------|-------------------------------------------------------------------|------------------------|
//! | ProxyHeader | `proxy_protocol`: the PROXY header, peeked until whole, then consumed | `client_header_timeout` |
//! | ReadHead | (over TLS, the handshake first, driven by the reads) read until a whole head is buffered, check and rewrite it, pick a backend | `tls_handshake_timeout` during the handshake, `keepalive_timeout` while idle, then `client_header_timeout` from the first byte |
//! | Queued   | every candidate backend is at its `max_conns`: wait in the worker's queue | `queue_timeout` (then 503) |
//! | Connect  | non-blocking TCP connect to the backend                           | `connect_timeout`      |
//! | Exchange | request body → backend, response ← backend, both streamed         | `client_body_timeout` while the request body is due, then `backend_timeout`, `send_timeout` while only writes are left; each restarts on progress |
//! | Tunnel   | bytes both ways after `101 Switching Protocols`                   | `tunnel_timeout`, restarts on progress |
//! | Drain    | our side is shut; unread client bytes are discarded so the last response is not lost to a reset | `LINGER` |
//!
//! The client and backend connections are [`Transport`]s: plain sockets or rustls connections,
//! the same code either way (`transport.rs`).
//!
//! Two buffers carry the bytes: `req` (client → backend) and `resp` (backend → client). Each is
//! taken from the worker's pool when bytes arrive and given back as soon as it is empty, so an idle
//! connection holds none. A full buffer stops reads on the side that fills it (back-pressure);
//! readiness is remembered in user space (`readable`/`writable` flags), as the poll is
//! edge-triggered, and a short read or write clears it.
//!
//! The request bytes stay in `req` after they are written (`req_sent` marks them) until the
//! backend starts answering, so a request that found a dead pooled connection can be sent again
//! to another backend; see `upstream_failed` for when that is allowed. Every failure becomes a
//! status in one place, [`Session::fail`]; once a response has started, a failure can only close
//! the connection.

use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use mio::Registry;

use crate::access_log::{self, AccessLog, Entry, Event, RequestIds, Text};
use crate::balancer::{Ask, Balancer, Choice, Picker};
use crate::buffer::{Buf, BufPool};
use crate::config::HashKey;
use crate::http::errors::{self, Status};
use crate::http::request::{self, ClientInfo, KeySource, Limits, Reject, RequestHead};
use crate::http::response::{self, Relay};
use crate::http::{Body, BodyError, Framing, Method, Step};
use crate::stats::WorkerStats;
use crate::transport::{Got, Io, Transport};
use crate::upstream::Upstreams;

/// How long a closing connection waits for the client to stop sending.
pub const LINGER: Duration = Duration::from_secs(5);
/// Rounds of the pipe loop per wake-up, so one busy connection cannot starve the others.
const MAX_ROUNDS: usize = 16;
/// Interim (1xx) responses accepted before a final one; more is a 502.
const MAX_INTERIM: u8 = 16;

/// What a worker's sessions need to know, fixed at start.
#[derive(Debug, Clone)]
pub struct Settings {
    pub limits: Limits,
    /// Clients arrive over TLS (sets `X-Forwarded-Proto`).
    pub tls: bool,
    pub retries: u32,
    pub client_header_timeout: Duration,
    pub client_body_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub connect_timeout: Duration,
    pub backend_timeout: Duration,
    pub send_timeout: Duration,
    pub tunnel_timeout: Duration,
    /// A client's TLS handshake must finish within this.
    pub tls_handshake_timeout: Duration,
    /// What `consistent-hash` hashes.
    pub hash_key: HashKey,
    /// Sticky sessions by cookie: its name (`None`: not in cookie mode), whether it is removed
    /// before the request goes on, and its `Max-Age`.
    pub sticky_cookie: Option<String>,
    pub strip_sticky_cookie: bool,
    pub sticky_max_age: u64,
    /// How long a request may wait for a backend slot (`max_conns`) before a 503.
    pub queue_timeout: Duration,
    /// Whose `X-Forwarded-For` (and PROXY protocol header) is believed.
    pub trusted_proxies: crate::client_ip::TrustedProxies,
    /// Connections start with a PROXY protocol header.
    pub proxy_protocol: bool,
    /// Requests without `X-Request-Id` get one.
    pub request_id: bool,
    /// Client connections one address may hold at once, over all workers (0: no limit; not
    /// applied with `proxy_protocol`).
    pub max_connections_per_ip: u32,
    /// The `Strict-Transport-Security` line added to every final response (`ssl.hsts`, over
    /// TLS only; see `http::Added`).
    pub hsts: Option<Box<[u8]>>,
}

/// The worker's state a session works with while it runs.
pub struct Ctx<'a> {
    pub registry: &'a Registry,
    pub upstreams: &'a mut Upstreams,
    pub bufs: &'a mut BufPool,
    /// Scratch space for rewritten heads.
    pub scratch: &'a mut Vec<u8>,
    pub balancer: &'a Balancer,
    pub picker: &'a mut Picker,
    pub cfg: &'a Settings,
    pub now: Instant,
    /// The `Date` of responses: the worker's clock, refreshed once per poll round.
    pub date: &'a [u8; crate::http::date::IMF_FIXDATE_LEN],
    /// The worker is shutting down: no more keep-alive.
    pub draining: bool,
    /// This session's key in the worker's slab.
    pub key: usize,
    pub stats: &'a WorkerStats,
    /// Sessions waiting for a backend slot, in arrival order `(key, id)`, and their count as the
    /// other workers see it.
    pub queue: &'a mut std::collections::VecDeque<(usize, u32)>,
    pub queued: &'a std::sync::atomic::AtomicUsize,
    pub access_log: &'a AccessLog,
    /// Where new request ids come from.
    pub ids: &'a mut RequestIds,
}

/// How a run ended, when the session goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// Waiting for readiness or a timer.
    Idle,
    /// Stopped at the round cap with work left: run again soon.
    More,
}

/// The session is over; the worker drops it (see [`Session::release`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close;

type Run = Result<bool, Close>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `proxy_protocol`: reading the PROXY protocol header that comes before anything else.
    ProxyHeader,
    ReadHead,
    /// Waiting in the worker's queue for a backend slot (`max_conns`).
    Queued,
    Connect,
    Exchange,
    Tunnel,
    Drain,
}

/// How a backend attempt failed, which decides whether it may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The connection could not be made: nothing was sent.
    Connect,
    /// The connection was not made within `connect_timeout`: nothing was sent.
    ConnectTimeout,
    /// No response byte came back (reset or closed): the request may have been received.
    NoResponse,
    /// The response was malformed or cut short.
    BadResponse,
    /// The backend did not answer in time.
    Timeout,
}

/// The request being served and what is known of its response.
#[derive(Debug, Clone, Copy)]
struct Exchange {
    method: Method,
    http10: bool,
    /// The client asked to keep the connection.
    keep_alive: bool,
    upgrade: bool,
    /// Attempts made so far (the first included).
    attempts: u8,
    /// Interim (1xx) responses received.
    interims: u8,
    /// The request's balancing key (`hash_key`'s value, or the client address), 32 bits of its
    /// hash: plenty for a lookup table, and an idle session stays within its size.
    key: u32,
    /// The backend the request's sticky cookie names (0: none).
    cookie: u64,
    /// The hash of the client's address (from `X-Forwarded-For` of a trusted proxy, the PROXY
    /// protocol, or the socket): sticky sessions by address and the default hash key.
    client: u64,
    /// The response sets the sticky cookie (the request had none, or one for another backend).
    set_cookie: bool,
    /// When the request went to its backend (`clock_ms`, wrapping), for the response time.
    sent_ms: u32,
    /// The request came without `Host` (HTTP/1.0): ferrule writes the chosen backend's authority,
    /// at every attempt.
    needs_host: bool,
    /// Length of the `Host` line ferrule wrote for the last attempt (0: none yet).
    host_line: u16,
    /// The whole request so far is still in `req`, so it can be sent again.
    replay: bool,
    /// The final response head has been received and queued for the client.
    committed: bool,
    /// Every byte of the response has been received.
    resp_done: bool,
    /// The client connection stays open after this exchange.
    keep_client: bool,
    /// The backend connection may be reused after this exchange.
    reusable: bool,
    relay: Relay,
}

impl Exchange {
    fn new(head: RequestHead) -> Exchange {
        Exchange {
            method: head.method,
            http10: head.http10,
            keep_alive: head.keep_alive,
            upgrade: head.upgrade,
            attempts: 1,
            interims: 0,
            key: 0,
            cookie: 0,
            client: 0,
            set_cookie: false,
            sent_ms: 0,
            needs_host: head.needs_host,
            host_line: 0,
            replay: true,
            committed: false,
            resp_done: false,
            keep_client: false,
            reusable: false,
            relay: Relay::Verbatim,
        }
    }

    fn idle() -> Exchange {
        Exchange::new(RequestHead {
            method: Method::Get,
            http10: false,
            framing: Framing::None,
            keep_alive: false,
            upgrade: false,
            needs_host: false,
            key: None,
            sticky: None,
            client: None,
        })
    }
}

/// A key in the worker's `Upstreams`, in 4 bytes with its `None` (keeps an idle session small;
/// a worker holds far fewer than 4 billion backend connections).
#[derive(Debug, Clone, Copy)]
struct UpKey(std::num::NonZeroU32);

impl UpKey {
    fn new(key: usize) -> Option<UpKey> {
        u32::try_from(key)
            .ok()
            .and_then(|k| k.checked_add(1))
            .and_then(std::num::NonZeroU32::new)
            .map(UpKey)
    }

    fn get(self) -> usize {
        self.0.get() as usize - 1
    }
}

pub struct Session {
    client: Transport,
    peer: IpAddr,
    /// Unique per worker: tells this session from a later one in the same slab slot.
    pub id: u32,
    /// The timer slot this session is armed in (`u64::MAX`: none).
    pub armed: u64,
    pub deadline: Instant,
    phase: Phase,
    c_readable: bool,
    c_writable: bool,
    /// The poll reported the client's read side closed: read until EOF, short reads included.
    c_hup: bool,
    /// The client sent FIN.
    c_eof: bool,
    /// Tunnel: our write side towards the client / the backend is shut.
    c_shut: bool,
    u_shut: bool,
    /// Tunnel: the backend sent FIN.
    u_eof: bool,
    /// ReadHead: bytes of a head have arrived (the header timeout runs).
    head_started: bool,
    /// ReadHead: a line end was seen, so the request line is complete.
    head_line_seen: bool,
    /// The client's TLS handshake is under way (its own deadline runs).
    handshaking: bool,

    req: Option<Buf>,
    /// Bytes at the front of `req` already written to the backend.
    req_sent: usize,
    /// Bytes at the front of `req` framed and ready for the backend.
    req_ready: usize,
    /// Bytes already searched for the end of a head (u32: buffers are far below 4 GiB): of the
    /// request's in `req` during ReadHead, of the response's in `resp` during Exchange. One field
    /// for both, since each phase resets it as it starts: it keeps an idle session small.
    scan: u32,
    req_body: Body,

    resp: Option<Buf>,
    /// Bytes at the front of `resp` framed and ready for the client.
    resp_ready: usize,
    resp_body: Body,

    /// The backend connection's key in the worker's `Upstreams`.
    upstream: Option<UpKey>,
    ex: Exchange,
    /// The access log record of the request under way (`None`: the log is off, or no request).
    log: Option<Box<Entry>>,
}

impl Session {
    pub fn new(client: Transport, peer: IpAddr, id: u32, now: Instant, cfg: &Settings) -> Session {
        let handshaking = client.is_handshaking();
        let first_deadline = if handshaking && !cfg.proxy_protocol {
            cfg.tls_handshake_timeout
        } else {
            cfg.client_header_timeout
        };
        Session {
            client,
            peer,
            id,
            armed: u64::MAX,
            deadline: now + first_deadline,
            phase: if cfg.proxy_protocol {
                Phase::ProxyHeader
            } else {
                Phase::ReadHead
            },
            // a fresh connection usually has its request waiting: try reading at once
            c_readable: true,
            c_writable: true,
            c_hup: false,
            c_eof: false,
            c_shut: false,
            u_shut: false,
            u_eof: false,
            head_started: false,
            head_line_seen: false,
            handshaking,
            req: None,
            req_sent: 0,
            req_ready: 0,
            scan: 0,
            req_body: Body::default(),
            resp: None,
            resp_ready: 0,
            resp_body: Body::default(),
            upstream: None,
            ex: Exchange::idle(),
            log: None,
        }
    }

    pub fn is_queued(&self) -> bool {
        self.phase == Phase::Queued
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The client's address (the socket peer, or the PROXY protocol source once read).
    pub fn peer(&self) -> IpAddr {
        self.peer
    }

    /// Idle between requests: nothing buffered, nothing in flight.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::ReadHead && self.req.as_ref().is_none_or(Buf::is_empty)
    }

    /// On drain: an idle keep-alive connection (its TLS handshake done, no byte of a next
    /// request read) is closed by `until` unless a request arrives first. Returns whether its
    /// deadline moved (the worker re-arms its timer). A request that arrives in time is served
    /// with `Connection: close` (`ctx.draining`).
    pub fn close_idle_by(&mut self, until: Instant) -> bool {
        if !self.is_idle() || self.handshaking || self.head_started || self.deadline <= until {
            return false;
        }
        self.deadline = until;
        true
    }

    /// Readiness reported by the poll for the client socket. `hup`: the peer closed its side
    /// (or the socket failed), so reads must go on until they say so.
    pub fn client_ready(&mut self, readable: bool, writable: bool, hup: bool) {
        self.c_readable |= readable || hup;
        self.c_writable |= writable;
        self.c_hup |= hup;
    }

    /// Gives back everything the session holds; called once, when the worker drops it.
    pub fn release(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(key) = self.upstream.take().map(UpKey::get) {
            if let Some(up) = ctx.upstreams.get_mut(key) {
                up.backend.end_request();
            }
            ctx.upstreams.close(key);
        }
        if let Some(b) = self.req.take() {
            ctx.bufs.put(b);
        }
        if let Some(b) = self.resp.take() {
            ctx.bufs.put(b);
        }
        if let Some(mut e) = self.log.take() {
            // the connection ends with the exchange unfinished: as nginx, 499 when nothing was
            // answered (the client left, or the connection failed)
            if e.status == 0 {
                e.status = 499;
            }
            e.ended = ctx.now;
            ctx.access_log.submit(e);
        }
    }

    /// Logs a connection-level event of its own line (the log's `event` field).
    fn log_event(&self, ctx: &Ctx<'_>, event: Event) {
        if let Some(mut e) = ctx.access_log.entry(self.peer, ctx.now) {
            e.event = event;
            if let Some(sni) = self.client.sni() {
                e.set(Text::Sni, sni.as_bytes());
            }
            ctx.access_log.submit(e);
        }
    }

    /// The exchange is over: its access log line goes to the writer.
    fn log_done(&mut self, ctx: &Ctx<'_>) {
        if let Some(mut e) = self.log.take() {
            // bytes read past this request belong to the next one
            let extra = self
                .req
                .as_ref()
                .map_or(0, |b| b.len().saturating_sub(self.req_ready));
            e.bytes_in = e.bytes_in.saturating_sub(extra as u64);
            e.ended = ctx.now;
            ctx.access_log.submit(e);
        }
    }

    /// Drives the session as far as readiness allows, for at most `MAX_ROUNDS` rounds so one busy
    /// connection cannot starve the others. Returns `More` when it stopped at that cap with work
    /// left: no new event will say so (readiness is edge-triggered), so the worker runs it again
    /// after serving the others.
    pub fn run(&mut self, ctx: &mut Ctx<'_>) -> Result<Ran, Close> {
        let mut any = false;
        let mut ran = Ran::More;
        for _ in 0..MAX_ROUNDS {
            // TLS records waiting for the client socket go out whatever the phase
            let flushed = self.flush_client()?;
            let progress = match self.phase {
                Phase::ProxyHeader => self.proxy_header(ctx)?,
                Phase::ReadHead => self.read_head(ctx)?,
                Phase::Queued => self.queued()?,
                Phase::Connect => self.connect_done(ctx)?,
                Phase::Exchange => self.exchange(ctx)?,
                Phase::Tunnel => self.tunnel(ctx)?,
                Phase::Drain => self.drain()?,
            } || flushed;
            any |= progress;
            if !progress {
                ran = Ran::Idle;
                break;
            }
        }
        if any {
            self.touch(ctx);
        }
        Ok(ran)
    }

    /// The deadline passed: decide what that means in this phase.
    pub fn timed_out(&mut self, ctx: &mut Ctx<'_>) -> Result<Ran, Close> {
        match self.phase {
            Phase::ProxyHeader => return Err(Close),
            Phase::ReadHead if self.handshaking => {
                ctx.stats.tls_failed();
                self.log_event(ctx, Event::TlsHandshakeFailed);
                return Err(Close);
            }
            Phase::ReadHead if !self.head_started => return Err(Close),
            Phase::ReadHead => {
                self.reject(ctx, Status::RequestTimeout)?;
            }
            Phase::Queued => {
                // no slot freed in time
                self.fail(ctx, Status::ServiceUnavailable)?;
            }
            Phase::Connect => {
                self.upstream_failed(ctx, Failure::ConnectTimeout)?;
            }
            Phase::Exchange => {
                if self.ex.committed {
                    return Err(Close);
                }
                // waiting on the backend (for its answer, or to take the request body we hold)
                // is its failure; waiting on the client for the body is the client's
                let backend_stuck = self.req_body.is_done() || self.req_sent < self.req_ready;
                if self.upstream.is_some() && backend_stuck {
                    self.upstream_failed(ctx, Failure::Timeout)?;
                } else {
                    self.fail(ctx, Status::RequestTimeout)?;
                }
            }
            Phase::Tunnel | Phase::Drain => return Err(Close),
        }
        self.run(ctx)
    }

    /// Progress was made: restart the idle-style deadline of the current phase.
    fn touch(&mut self, ctx: &Ctx<'_>) {
        let cfg = ctx.cfg;
        let timeout = match self.phase {
            Phase::Exchange => {
                if !self.req_body.is_done() {
                    cfg.client_body_timeout
                } else if !self.ex.resp_done {
                    cfg.backend_timeout
                } else {
                    cfg.send_timeout
                }
            }
            Phase::Tunnel => cfg.tunnel_timeout,
            // ReadHead, Connect and Drain deadlines are set when they start
            Phase::ProxyHeader
            | Phase::ReadHead
            | Phase::Queued
            | Phase::Connect
            | Phase::Drain => return,
        };
        self.deadline = ctx.now + timeout;
    }

    // ----------------------------------------------------------------- client I/O

    /// Writes TLS records waiting for the client socket. Returns whether any went out.
    fn flush_client(&mut self) -> Run {
        if !self.c_writable || !self.client.wants_flush() {
            return Ok(false);
        }
        match self.client.flush() {
            Io::Done(_) => Ok(true),
            Io::Blocked => {
                self.c_writable = false;
                Ok(false)
            }
            Io::Eof | Io::Failed => Err(Close),
        }
    }

    /// While the TLS handshake runs: reads (which drive it), notes when it is done, counts it,
    /// and answers a plain HTTP request sent to the TLS port.
    fn handshake(&mut self, ctx: &mut Ctx<'_>) -> Result<(), Close> {
        if !self.handshaking {
            return Ok(());
        }
        if self.c_readable {
            let buf = self.req.get_or_insert_with(|| ctx.bufs.get());
            let got = self.client.read_into(buf);
            if buf.is_empty() {
                if let Some(b) = self.req.take() {
                    ctx.bufs.put(b);
                }
            }
            match got {
                Got::Bytes { short, .. } => {
                    if short && !self.c_hup {
                        self.c_readable = false;
                    }
                }
                Got::Full => {}
                Got::Blocked => self.c_readable = false,
                Got::Eof => {
                    self.c_eof = true;
                    ctx.stats.tls_failed();
                    self.log_event(ctx, Event::TlsHandshakeFailed);
                    return Err(Close);
                }
                Got::Failed => {
                    ctx.stats.tls_failed();
                    self.log_event(ctx, Event::TlsHandshakeFailed);
                    if self.client.spoke_plain_http() {
                        // as nginx does: say so, in plain HTTP, and close
                        errors::plain_http_to_tls_port(ctx.date, ctx.scratch);
                        self.client.write_raw(ctx.scratch);
                    }
                    return Err(Close);
                }
            }
        }
        if !self.client.is_handshaking() {
            self.handshaking = false;
            ctx.stats.tls_handshake();
            if !self.head_started {
                self.deadline = ctx.now + ctx.cfg.client_header_timeout;
            }
        }
        Ok(())
    }

    /// Reads from the client into `req`. Returns bytes read (0: blocked or no room).
    fn read_client(&mut self, bufs: &mut BufPool, stats: &WorkerStats) -> Result<usize, Close> {
        if !self.c_readable || self.c_eof {
            return Ok(0);
        }
        let buf = self.req.get_or_insert_with(|| bufs.get());
        let got = self.client.read_into(buf);
        if buf.is_empty() {
            // nothing came: a waiting session holds no buffer
            if let Some(b) = self.req.take() {
                bufs.put(b);
            }
        }
        match got {
            Got::Bytes { n, short } => {
                stats.bytes_in(n);
                if let Some(e) = self.log.as_mut() {
                    e.bytes_in += n as u64;
                }
                // a short read drained the socket: the next bytes come with a new event (unless
                // the peer already closed, which no later event would announce)
                if short && !self.c_hup {
                    self.c_readable = false;
                }
                Ok(n)
            }
            Got::Full => Ok(0),
            Got::Blocked => {
                self.c_readable = false;
                Ok(0)
            }
            Got::Eof => {
                self.c_eof = true;
                Ok(0)
            }
            Got::Failed => Err(Close),
        }
    }

    /// Writes framed response bytes to the client. Returns whether any were written.
    fn write_client(&mut self, bufs: &mut BufPool, stats: &WorkerStats) -> Run {
        if !self.c_writable || self.resp_ready == 0 {
            return Ok(false);
        }
        let Some(buf) = self.resp.as_mut() else {
            return Ok(false);
        };
        let data = &buf.bytes()[..self.resp_ready];
        match self.client.write(data) {
            Io::Done(n) => {
                stats.bytes_out(n);
                if let Some(e) = self.log.as_mut() {
                    e.bytes_out += n as u64;
                }
                if n < data.len() {
                    self.c_writable = false;
                }
                buf.consume(n);
                self.resp_ready -= n;
                if buf.is_empty() {
                    if let Some(b) = self.resp.take() {
                        bufs.put(b);
                    }
                }
                Ok(true)
            }
            Io::Blocked => {
                self.c_writable = false;
                Ok(false)
            }
            Io::Eof | Io::Failed => Err(Close),
        }
    }

    // ----------------------------------------------------------------- ProxyHeader

    /// Reads the PROXY protocol header (v1 or v2) in front of the connection's first bytes, from
    /// the socket itself (before TLS): peeked until whole, then exactly its bytes consumed, so
    /// that what follows stays for TLS or HTTP. A peer that is not a trusted proxy, a header that
    /// does not parse or a connection that ends first is closed; the header's source address
    /// becomes the client's.
    fn proxy_header(&mut self, ctx: &mut Ctx<'_>) -> Run {
        use crate::proxy_protocol::{self, Parsed, MAX_HEADER_LEN};
        if !ctx.cfg.trusted_proxies.contains(self.peer) {
            log::debug!(
                "PROXY protocol: {} is not a trusted proxy: closed",
                self.peer
            );
            return Err(Close);
        }
        if !self.c_readable {
            return Ok(false);
        }
        let mut head = [0u8; MAX_HEADER_LEN];
        let n = match self.client.read_raw(&mut head, false) {
            Ok(0) => return Err(Close),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.c_readable = false;
                return Ok(false);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(_) => return Err(Close),
        };
        match proxy_protocol::parse(&head[..n]) {
            Ok(Parsed::Incomplete) if n < head.len() && !self.c_hup => {
                // the rest comes with a later event (peeked bytes stay in the socket)
                self.c_readable = false;
                Ok(false)
            }
            Ok(Parsed::Incomplete) => Err(Close),
            Ok(Parsed::Done(header)) => {
                let mut taken = 0;
                // bounded: the bytes were peeked, so they are there
                for _ in 0..8 {
                    match self
                        .client
                        .read_raw(&mut head[taken..header.consumed], true)
                    {
                        Ok(0) | Err(_) => break,
                        Ok(k) => taken += k,
                    }
                    if taken == header.consumed {
                        break;
                    }
                }
                if taken != header.consumed {
                    return Err(Close);
                }
                if let Some(source) = header.source() {
                    self.peer = source.ip();
                }
                self.phase = Phase::ReadHead;
                if self.handshaking {
                    self.deadline = ctx.now + ctx.cfg.tls_handshake_timeout;
                }
                Ok(true)
            }
            Err(e) => {
                log::debug!("PROXY protocol from {}: {e}: closed", self.peer);
                Err(Close)
            }
        }
    }

    // ----------------------------------------------------------------- ReadHead

    fn read_head(&mut self, ctx: &mut Ctx<'_>) -> Run {
        if self.handshaking {
            self.handshake(ctx)?;
            if self.handshaking {
                // still readable: the handshake has more to read now
                return Ok(self.c_readable);
            }
        }
        let mut progress = false;
        // bounded: each round either reads bytes or returns
        for _ in 0..MAX_ROUNDS {
            if let Some(buf) = self.req.as_ref().filter(|b| !b.is_empty()) {
                if !self.head_started {
                    self.head_started = true;
                    self.deadline = ctx.now + ctx.cfg.client_header_timeout;
                }
                let bytes = buf.bytes();
                match request::find_head_end(bytes, self.scan as usize) {
                    Err(Reject(status)) => return self.reject(ctx, status),
                    Ok(Some(end)) => {
                        if self.start_request(ctx, end)? {
                            return Ok(true);
                        }
                        // only empty lines, which may precede a request (RFC 9112 §2.2): drop
                        // them and look again
                        self.consume_request_bytes(end, ctx.bufs);
                        progress = true;
                        continue;
                    }
                    Ok(None) => {
                        // the request line is complete once a line end was seen; only the new
                        // bytes are searched, so a head trickled in byte by byte costs linear time
                        if !self.head_line_seen {
                            self.head_line_seen =
                                request::request_line_complete(bytes, self.scan as usize);
                            if self.head_line_seen {
                                // once per request, on a head that came in pieces: a request
                                // line that can never parse (HTTP/0.9's `GET /`) is answered
                                // now, not when the header timeout ends the wait
                                if let Err(Reject(status)) = request::check_request_line(bytes) {
                                    return self.reject(ctx, status);
                                }
                            }
                        }
                        self.scan = bytes.len() as u32;
                        let limits = &ctx.cfg.limits;
                        if let Err(Reject(status)) =
                            request::check_partial(bytes.len(), self.head_line_seen, limits)
                        {
                            return self.reject(ctx, status);
                        }
                    }
                }
            }
            if self.c_eof {
                // the client is gone; a partial head will never complete
                return Err(Close);
            }
            let n = self.read_client(ctx.bufs, ctx.stats)?;
            if n == 0 {
                if self.c_eof {
                    continue;
                }
                if self.req.as_ref().is_some_and(Buf::is_empty) {
                    // nothing came: an idle connection holds no buffer
                    if let Some(b) = self.req.take() {
                        ctx.bufs.put(b);
                    }
                }
                break;
            }
            progress = true;
        }
        Ok(progress)
    }

    /// Drops `n` bytes from the front of `req` (before any request is in it) and restarts the
    /// search for a head.
    fn consume_request_bytes(&mut self, n: usize, bufs: &mut BufPool) {
        if let Some(buf) = self.req.as_mut() {
            buf.consume(n.min(buf.len()));
            if buf.is_empty() {
                if let Some(b) = self.req.take() {
                    bufs.put(b);
                }
            }
        }
        self.scan = 0;
        self.head_line_seen = false;
    }

    /// A whole head is in `req[..end]`: check it, rewrite it and send it on its way. Returns
    /// false when the head held only empty lines.
    fn start_request(&mut self, ctx: &mut Ctx<'_>, end: usize) -> Result<bool, Close> {
        let Some(buf) = self.req.as_mut() else {
            return Ok(false);
        };
        let client = ClientInfo {
            ip: self.peer,
            tls: ctx.cfg.tls,
            key: match &ctx.cfg.hash_key {
                HashKey::ClientIp => KeySource::ClientIp,
                HashKey::Header(name) => KeySource::Header(name.as_bytes()),
                HashKey::Cookie(name) => KeySource::Cookie(name.as_bytes()),
            },
            sticky_cookie: ctx.cfg.sticky_cookie.as_deref().map(str::as_bytes),
            strip_sticky_cookie: ctx.cfg.strip_sticky_cookie,
            trusted: &ctx.cfg.trusted_proxies,
            request_id: None,
        };
        let mut id = [0u8; 32];
        if ctx.cfg.request_id {
            ctx.ids.next(&mut id);
        }
        let client = ClientInfo {
            request_id: ctx.cfg.request_id.then_some(&id[..]),
            ..client
        };
        let (head, len, seen) =
            match request::rewrite_seen(&buf.bytes()[..end], &ctx.cfg.limits, &client, ctx.scratch)
            {
                Ok(Some(parsed)) => parsed,
                Ok(None) => return Ok(false),
                Err(Reject(status)) => return self.reject(ctx, status),
            };
        if let Some(old) = self.log.take() {
            ctx.access_log.submit(old);
        }
        // the request's time starts at its first byte, as nginx's $request_time does: the head's
        // deadline was set then, `client_header_timeout` after it
        let began = self
            .deadline
            .checked_sub(ctx.cfg.client_header_timeout)
            .filter(|at| self.head_started && *at <= ctx.now)
            .unwrap_or(ctx.now);
        self.log = ctx
            .access_log
            .entry(head.client.unwrap_or(self.peer), ctx.now)
            .map(|mut e| {
                e.started = began;
                e.set(Text::Method, seen.method);
                e.set(Text::Target, seen.target);
                e.set(Text::Host, seen.host);
                if let Some(v) = seen.referer {
                    e.set(Text::Referer, v);
                }
                if let Some(v) = seen.user_agent {
                    e.set(Text::UserAgent, v);
                }
                if let Some(v) = seen.request_id {
                    e.set(Text::RequestId, v);
                }
                if let Some(sni) = self.client.sni() {
                    e.set(Text::Sni, sni.as_bytes());
                }
                e.tls = self.client.tls_version().map(access_log::tls_name);
                e.http10 = head.http10;
                // the head and whatever followed it so far (`log_done` takes off what belongs
                // to a next request)
                e.bytes_in = buf.len() as u64;
                e
            });
        if !buf.replace_front(len, ctx.scratch) {
            return self.reject(ctx, Status::HeaderFieldsTooLarge);
        }
        self.req_ready = ctx.scratch.len();
        self.req_sent = 0;
        self.scan = 0;
        self.head_started = false;
        self.head_line_seen = false;
        self.req_body = Body::new(head.framing);
        self.ex = Exchange::new(head);
        let client = crate::balancer::hash_ip(head.client.unwrap_or(self.peer));
        self.ex.client = client;
        self.ex.key = (head.key.unwrap_or(client) >> 32) as u32;
        self.ex.cookie = head.sticky.unwrap_or(0);
        self.ex.replay = ctx.cfg.retries > 0;
        if let Some(status) = self.frame_request(ctx.cfg.limits.max_body) {
            return self.reject(ctx, status);
        }
        self.start_upstream(ctx, None)?;
        Ok(true)
    }

    /// Advances `req_ready` over the request body bytes in `req`. Returns the status to answer
    /// when the body is malformed (400) or grows past `max_body` (413; 0: no limit). A
    /// `Content-Length` body was checked against the limit with its head; a chunked one is counted
    /// here, so the excess is never forwarded.
    fn frame_request(&mut self, max_body: u64) -> Option<Status> {
        let buf = self.req.as_ref()?;
        let bytes = buf.bytes();
        // bounded: every step consumes bytes or stops
        while let Some(rest) = bytes.get(self.req_ready..).filter(|r| !r.is_empty()) {
            match self.req_body.step(rest) {
                Ok(Step::Payload(n)) => {
                    if max_body > 0 && self.req_body.chunked_payload() > max_body {
                        return Some(Status::PayloadTooLarge);
                    }
                    self.req_ready += n;
                }
                Ok(Step::Framing(n)) => self.req_ready += n,
                Ok(Step::Blocked | Step::Done) => break,
                Err(BodyError::BadChunk | BodyError::TooLong) => return Some(Status::BadRequest),
            }
        }
        None
    }

    /// A request head was refused: answer with `status` and close.
    fn reject(&mut self, ctx: &mut Ctx<'_>, status: Status) -> Run {
        self.ex = Exchange::idle();
        if self
            .req
            .as_ref()
            .is_some_and(|b| request::is_head_request(b.bytes()))
        {
            // the head could not be parsed, but its method could: HEAD gets no body
            self.ex.method = Method::Head;
        }
        self.req_body = Body::new(Framing::UntilClose); // whatever follows is never read as a request
        self.fail(ctx, status)
    }

    // ----------------------------------------------------------------- choosing a backend

    /// Picks a backend and lends the session a connection to it: an idle one, or a new one.
    fn start_upstream(&mut self, ctx: &mut Ctx<'_>, exclude: Option<u64>) -> Run {
        let ask = Ask {
            key: u64::from(self.ex.key),
            client: self.ex.client,
            cookie: (self.ex.cookie != 0).then_some(self.ex.cookie),
            exclude,
            now: ctx.now,
        };
        let (backend, set_cookie) = match ctx.picker.choose(ctx.balancer, &ask) {
            Choice::Backend {
                backend,
                set_cookie,
            } if backend.try_begin_request() => (backend, set_cookie),
            // every candidate is at its max_conns (or filled up since the pick): wait for a slot
            Choice::Backend { .. } | Choice::Full => return self.enqueue(ctx),
            Choice::None => return self.fail(ctx, Status::ServiceUnavailable),
        };
        self.ex.set_cookie = set_cookie;
        self.ex.sent_ms = crate::balancer::clock_ms(ctx.now) as u32;
        if let Some(e) = self.log.as_mut() {
            e.backend = Some(backend.addr);
            e.upstream_started = Some(ctx.now);
            e.upstream_ended = None;
        }
        if self.ex.needs_host && !self.set_host(&backend.authority) {
            backend.end_request();
            return self.fail(ctx, Status::HeaderFieldsTooLarge);
        }
        if let Some(key) = ctx.upstreams.take_idle(backend.id, ctx.key) {
            self.upstream = UpKey::new(key);
            self.phase = Phase::Exchange;
            self.deadline = ctx.now + ctx.cfg.backend_timeout;
            return Ok(true);
        }
        let backend = std::sync::Arc::clone(backend);
        match ctx
            .upstreams
            .connect(ctx.registry, &backend, ctx.key, ctx.now)
        {
            Ok(key) => {
                self.upstream = UpKey::new(key);
                self.phase = Phase::Connect;
                self.deadline = ctx.now + ctx.cfg.connect_timeout;
                Ok(true)
            }
            Err(e) if crate::upstream::is_local_error(&e) => {
                // out of descriptors, memory or local ports: ferrule's trouble, not the backend's
                backend.end_request();
                crate::upstream::local_trouble(&e);
                self.fail(ctx, Status::ServiceUnavailable)
            }
            Err(_) => {
                ctx.balancer.failed(&backend, ctx.now);
                backend.end_request();
                self.retry_or_fail(ctx, Failure::Connect, backend.id)
            }
        }
    }

    /// No backend slot is free: wait in the worker's queue, in arrival order, until one frees
    /// (the worker runs [`Session::dequeue`]) or `queue_timeout` passes (503).
    fn enqueue(&mut self, ctx: &mut Ctx<'_>) -> Run {
        if self.phase != Phase::Queued {
            self.phase = Phase::Queued;
            self.deadline = ctx.now + ctx.cfg.queue_timeout;
            ctx.queue.push_back((ctx.key, self.id));
            ctx.balancer.slots().enqueued(ctx.queued);
        }
        Ok(false)
    }

    /// While queued: a client that leaves ends it (nothing is read meanwhile: back-pressure).
    fn queued(&mut self) -> Run {
        if self.c_hup {
            return Err(Close);
        }
        Ok(false)
    }

    /// Queued, and a slot may have freed: try again. True when the request left the queue
    /// (it got a backend, or an answer); false when it still waits, at the front.
    pub fn dequeue(&mut self, ctx: &mut Ctx<'_>) -> Result<bool, Close> {
        if self.phase != Phase::Queued {
            return Ok(true);
        }
        self.start_upstream(ctx, None)?;
        Ok(self.phase != Phase::Queued)
    }

    /// Writes `Host: authority` into a request head that came without one (HTTP/1.0), before its
    /// final empty line, replacing the line written for an earlier attempt at another backend.
    /// Returns false when it does not fit.
    fn set_host(&mut self, authority: &str) -> bool {
        let old = usize::from(self.ex.host_line);
        let Some(buf) = self.req.as_mut() else {
            return false;
        };
        let mut line = Vec::with_capacity(authority.len() + 8);
        line.extend_from_slice(b"Host: ");
        line.extend_from_slice(authority.as_bytes());
        line.extend_from_slice(b"\r\n");
        let Ok(new_len) = u16::try_from(line.len()) else {
            return false;
        };
        // the rewritten head at the front of `req` ends with the first empty line (a retry only
        // happens while the whole request is still there, from its first byte)
        let Ok(Some(head_len)) = request::find_head_end(buf.bytes(), 0) else {
            return false;
        };
        let Some(at) = head_len.checked_sub(2 + old) else {
            return false;
        };
        if !buf.replace_at(at, old, &line) {
            return false;
        }
        self.req_ready = self.req_ready - old + line.len();
        self.ex.host_line = new_len;
        true
    }

    /// Phase Connect: the socket reported readiness; see whether the connect succeeded.
    fn connect_done(&mut self, ctx: &mut Ctx<'_>) -> Run {
        let Some(up) = self.upstream.and_then(|k| ctx.upstreams.get_mut(k.get())) else {
            return self.fail(ctx, Status::BadGateway);
        };
        if !up.writable && !up.readable {
            return Ok(false);
        }
        let ok = match up.transport.connect_state() {
            Ok(true) => true,
            Ok(false) => {
                // spurious wake-up: still connecting
                up.writable = false;
                up.readable = false;
                return Ok(false);
            }
            Err(_) => false,
        };
        if !ok {
            return self.upstream_failed(ctx, Failure::Connect);
        }
        up.connected = true;
        self.phase = Phase::Exchange;
        self.deadline = ctx.now + ctx.cfg.backend_timeout;
        Ok(true)
    }

    /// The backend attempt failed: retry elsewhere when that is safe, else answer with a status.
    fn upstream_failed(&mut self, ctx: &mut Ctx<'_>, failure: Failure) -> Run {
        let Some(key) = self.upstream.take().map(UpKey::get) else {
            return self.fail(ctx, Status::BadGateway);
        };
        let backend = match ctx.upstreams.get_mut(key) {
            Some(up) => {
                ctx.balancer.failed(&up.backend, ctx.now);
                up.backend.end_request();
                up.backend.id
            }
            None => 0,
        };
        ctx.upstreams.close(key);
        self.retry_or_fail(ctx, failure, backend)
    }

    fn retry_or_fail(&mut self, ctx: &mut Ctx<'_>, failure: Failure, backend: u64) -> Run {
        if self.ex.committed {
            return Err(Close);
        }
        // RFC 9112 §9.3.1.1: a request that may have been received is replayed only when it is
        // idempotent: after a pooled connection turned out dead, or a fresh one closed or reset
        // before any response byte (as nginx's proxy_next_upstream and HAProxy's retry-on do).
        let safe = match failure {
            Failure::Connect | Failure::ConnectTimeout => true,
            Failure::NoResponse => self.ex.method.is_idempotent(),
            Failure::BadResponse | Failure::Timeout => false,
        };
        if safe && self.ex.replay && u32::from(self.ex.attempts) <= ctx.cfg.retries {
            self.ex.attempts += 1;
            self.req_sent = 0;
            self.discard_response(ctx.bufs);
            return self.start_upstream(ctx, Some(backend));
        }
        let status = match failure {
            Failure::Timeout | Failure::ConnectTimeout => Status::GatewayTimeout,
            Failure::Connect | Failure::NoResponse | Failure::BadResponse => Status::BadGateway,
        };
        self.fail(ctx, status)
    }

    // ----------------------------------------------------------------- Exchange

    fn exchange(&mut self, ctx: &mut Ctx<'_>) -> Run {
        let mut progress = false;
        progress |= self.client_to_backend(ctx)?;
        if self.phase != Phase::Exchange {
            return Ok(true);
        }
        progress |= self.backend_to_client(ctx)?;
        if self.phase != Phase::Exchange {
            return Ok(true);
        }
        if self.ex.resp_done && self.upstream.is_some() {
            // the whole response is here: the backend connection can serve someone else while
            // the client reads it
            self.release_upstream(ctx);
        }
        progress |= self.write_client(ctx.bufs, ctx.stats)?;
        if self.ex.resp_done && self.resp_ready == 0 {
            self.finish_exchange(ctx)?;
            return Ok(true);
        }
        Ok(progress)
    }

    /// Request side: read the client, frame the body, write to the backend.
    fn client_to_backend(&mut self, ctx: &mut Ctx<'_>) -> Run {
        let mut progress = false;
        // Read while there is room, also past the request (pipelined requests wait in `req`),
        // so that a client that goes away is noticed.
        if self.c_readable && !self.c_eof {
            if self.ex.replay && self.req.as_ref().is_some_and(Buf::is_full) {
                // the request outgrew the buffer: it can no longer be sent twice
                self.stop_replay(ctx.bufs);
            }
            let n = self.read_client(ctx.bufs, ctx.stats)?;
            if n > 0 {
                progress = true;
                if let Some(status) = self.frame_request(ctx.cfg.limits.max_body) {
                    return self.body_error(ctx, status);
                }
            }
        }
        if self.c_eof {
            let pipelined = self.req.as_ref().map_or(0, Buf::len) > self.req_ready;
            if !self.req_body.is_done() || (!self.ex.resp_done && !pipelined) {
                // the client left mid-request or while waiting: abandon the exchange
                return Err(Close);
            }
        }
        let Some(key) = self.upstream.map(UpKey::get) else {
            return Ok(progress);
        };
        let Some(up) = ctx.upstreams.get_mut(key) else {
            return Ok(progress);
        };
        let failure = if self.req_sent == 0 {
            Failure::Connect
        } else {
            Failure::NoResponse
        };
        if up.writable && up.transport.wants_flush() {
            // TLS records (the handshake, the request) still waiting for the socket
            match up.transport.flush() {
                Io::Done(_) => progress = true,
                Io::Blocked => up.writable = false,
                Io::Eof | Io::Failed => return self.upstream_failed(ctx, failure),
            }
        }
        if !up.writable || self.req_sent >= self.req_ready {
            return Ok(progress);
        }
        let Some(buf) = self.req.as_mut() else {
            return Ok(progress);
        };
        match up
            .transport
            .write(&buf.bytes()[self.req_sent..self.req_ready])
        {
            Io::Done(n) => {
                if self.req_sent + n < self.req_ready {
                    up.writable = false;
                }
                self.req_sent += n;
                progress = true;
                if !self.ex.replay {
                    self.stop_replay(ctx.bufs);
                }
            }
            Io::Blocked => up.writable = false,
            Io::Eof | Io::Failed => return self.upstream_failed(ctx, failure),
        }
        Ok(progress)
    }

    /// Drops request bytes already sent: from now on the request cannot be replayed.
    fn stop_replay(&mut self, bufs: &mut BufPool) {
        self.ex.replay = false;
        if self.req_sent == 0 {
            return;
        }
        if let Some(buf) = self.req.as_mut() {
            buf.consume(self.req_sent);
            self.req_ready -= self.req_sent;
            self.req_sent = 0;
            if buf.is_empty() {
                if let Some(b) = self.req.take() {
                    bufs.put(b);
                }
            }
        }
    }

    /// The request body was malformed after the head went out.
    fn body_error(&mut self, ctx: &mut Ctx<'_>, status: Status) -> Run {
        if let Some(key) = self.upstream.take().map(UpKey::get) {
            if let Some(up) = ctx.upstreams.get_mut(key) {
                up.backend.end_request();
            }
            ctx.upstreams.close(key);
        }
        self.req_body = Body::new(Framing::UntilClose);
        self.ex.keep_alive = false;
        self.fail(ctx, status)
    }

    /// Response side: read the backend, parse heads, frame the body.
    fn backend_to_client(&mut self, ctx: &mut Ctx<'_>) -> Run {
        let Some(key) = self.upstream.map(UpKey::get) else {
            return Ok(false);
        };
        let Some(up) = ctx.upstreams.get_mut(key) else {
            return Ok(false);
        };
        if !up.readable {
            return Ok(false);
        }
        let buf = self.resp.get_or_insert_with(|| ctx.bufs.get());
        let got = up.transport.read_into(buf);
        if buf.is_empty() {
            // nothing came: a waiting session holds no buffer
            if let Some(b) = self.resp.take() {
                ctx.bufs.put(b);
            }
        }
        match got {
            Got::Bytes { short, .. } => {
                if short && !up.hup {
                    up.readable = false;
                }
            }
            Got::Full => return Ok(false),
            Got::Blocked => {
                up.readable = false;
                return Ok(false);
            }
            Got::Eof => return self.backend_closed(ctx, false),
            Got::Failed => {
                if let Some(error) = up.transport.tls_error() {
                    log::warn!(
                        "backend {}: TLS failed: {}",
                        up.backend.url,
                        crate::tls::handshake_failure_reason(error)
                    );
                    if up.transport.is_handshaking() {
                        // nothing reached the backend's application: as safe to retry as a
                        // connection that could not be made
                        return self.upstream_failed(ctx, Failure::Connect);
                    }
                }
                return self.backend_closed(ctx, true);
            }
        }
        if self.ex.replay {
            // the backend is answering: the request will not be sent again
            self.stop_replay(ctx.bufs);
        }
        self.process_response(ctx)?;
        Ok(true)
    }

    /// Parses response heads and frames the body bytes in `resp`.
    fn process_response(&mut self, ctx: &mut Ctx<'_>) -> Result<(), Close> {
        let cookie_id = self
            .upstream
            .and_then(|k| ctx.upstreams.get_mut(k.get()))
            .map_or(0, |up| up.backend.cookie_id);
        // bounded: a few interim (1xx) responses may precede the final one
        for round in 0..=MAX_ROUNDS {
            if self.ex.committed || self.phase != Phase::Exchange {
                break;
            }
            if round == MAX_ROUNDS || self.ex.interims > MAX_INTERIM {
                // a backend that sends interim responses without end
                return self.bad_response(ctx);
            }
            let Some(buf) = self.resp.as_mut() else {
                return Ok(());
            };
            let unframed = &buf.bytes()[self.resp_ready..];
            let end = match request::find_head_end(unframed, self.scan as usize) {
                Ok(Some(end)) => end,
                Ok(None) if buf.is_full() => return self.bad_response(ctx),
                Ok(None) => {
                    self.scan = unframed.len() as u32;
                    return Ok(());
                }
                Err(_) => return self.bad_response(ctx),
            };
            let ex = response::Answering {
                method: self.ex.method,
                http10: self.ex.http10,
                // an answer that comes before the whole request body did ends the connection
                keep_alive: self.ex.keep_alive && !ctx.draining && self.req_body.is_done(),
                upgrade: self.ex.upgrade,
                max_headers: ctx.cfg.limits.max_headers,
                set_cookie: match (&ctx.cfg.sticky_cookie, self.ex.set_cookie) {
                    (Some(name), true) => Some(response::SetCookie {
                        name: name.as_bytes(),
                        id: cookie_id,
                        max_age: ctx.cfg.sticky_max_age,
                        secure: ctx.cfg.tls,
                    }),
                    _ => None,
                },
                added: crate::http::Added {
                    date: ctx.date,
                    hsts: ctx.cfg.hsts.as_deref(),
                },
            };
            let Ok((head, len)) = response::rewrite(&unframed[..end], &ex, ctx.scratch) else {
                return self.bad_response(ctx);
            };
            self.scan = 0;
            if head.interim {
                self.ex.interims = self.ex.interims.saturating_add(1);
            }
            if head.interim && self.ex.http10 {
                // HTTP/1.0 clients do not get interim responses
                buf.remove(self.resp_ready, len);
                continue;
            }
            if !buf.replace_at(self.resp_ready, len, ctx.scratch) {
                return self.bad_response(ctx);
            }
            self.resp_ready += ctx.scratch.len();
            if let Some(e) = self.log.as_mut() {
                e.head_out += ctx.scratch.len() as u64;
                e.status = head.status;
            }
            if head.interim {
                continue;
            }
            self.ex.committed = true;
            ctx.stats.response(head.status);
            if let Some(up) = self.upstream.and_then(|k| ctx.upstreams.get_mut(k.get())) {
                let ms = (crate::balancer::clock_ms(ctx.now) as u32).wrapping_sub(self.ex.sent_ms);
                up.backend.answered_in(u64::from(ms));
            }
            self.ex.keep_client = head.keep_client;
            self.ex.reusable = head.reusable;
            self.ex.relay = head.relay;
            self.resp_body = Body::new(head.framing);
            if head.switching {
                self.start_tunnel();
                return Ok(());
            }
        }
        if self.ex.committed && self.phase == Phase::Exchange {
            self.frame_response()?;
        }
        Ok(())
    }

    /// Advances `resp_ready` over body bytes; de-chunks for HTTP/1.0 clients.
    fn frame_response(&mut self) -> Result<(), Close> {
        let Some(buf) = self.resp.as_mut() else {
            return Ok(());
        };
        let dechunk = self.ex.relay == Relay::Dechunk;
        let bytes = buf.bytes_mut();
        let len = bytes.len();
        let (mut r, mut w) = (self.resp_ready, self.resp_ready);
        // bounded: every step consumes bytes or stops
        while r < len {
            match self.resp_body.step(&bytes[r..]) {
                Ok(Step::Payload(n)) => {
                    if dechunk && w != r {
                        bytes.copy_within(r..r + n, w);
                    }
                    r += n;
                    w += n;
                }
                Ok(Step::Framing(n)) => {
                    r += n;
                    if !dechunk {
                        w += n;
                    }
                }
                Ok(Step::Blocked | Step::Done) => break,
                // bytes already went out: nothing to do but close after what is framed
                Err(_) => return Err(Close),
            }
        }
        if w < r {
            buf.remove(w, r - w);
        }
        self.resp_ready = w;
        if self.resp_body.is_done() {
            self.ex.resp_done = true;
            let extra = buf.len() - self.resp_ready;
            if extra > 0 {
                // bytes after the end of the response: the backend is out of step
                buf.truncate_back(extra);
                self.ex.reusable = false;
            }
        }
        Ok(())
    }

    /// The backend closed or reset the connection.
    /// `reset`: the connection failed (e.g. ECONNRESET) rather than ended with a FIN.
    fn backend_closed(&mut self, ctx: &mut Ctx<'_>, reset: bool) -> Run {
        if !self.ex.committed {
            let nothing = self
                .resp
                .as_ref()
                .is_none_or(|b| b.len() == self.resp_ready);
            let failure = if nothing && self.resp_ready == 0 {
                Failure::NoResponse
            } else {
                Failure::BadResponse
            };
            return self.upstream_failed(ctx, failure);
        }
        if self.resp_body.until_close() && !reset {
            self.resp_body.finish_at_close();
            self.ex.resp_done = true;
            self.ex.reusable = false;
            self.ex.keep_client = false;
            return Ok(true);
        }
        if let Some(key) = self.upstream.map(UpKey::get) {
            if let Some(up) = ctx.upstreams.get_mut(key) {
                ctx.balancer.failed(&up.backend, ctx.now);
            }
        }
        // Cut short after the response started: the client can only learn by the connection
        // ending. A length or chunked body shows the truncation by itself; a close-delimited one
        // would look complete after a FIN, so the client gets a reset instead.
        if self.resp_body.until_close() {
            self.client.reset_on_close();
        }
        Err(Close)
    }

    /// The response cannot be relayed: 502 if nothing went out yet.
    fn bad_response(&mut self, ctx: &mut Ctx<'_>) -> Result<(), Close> {
        self.upstream_failed(ctx, Failure::BadResponse).map(|_| ())
    }

    /// Forgets whatever the backend sent for this attempt.
    fn discard_response(&mut self, bufs: &mut BufPool) {
        if let Some(b) = self.resp.take() {
            bufs.put(b);
        }
        self.resp_ready = 0;
        self.scan = 0;
    }

    /// Answers the current request with a status of ferrule's own.
    pub fn fail(&mut self, ctx: &mut Ctx<'_>, status: Status) -> Run {
        if let Some(key) = self.upstream.take().map(UpKey::get) {
            if let Some(up) = ctx.upstreams.get_mut(key) {
                up.backend.end_request();
            }
            ctx.upstreams.close(key);
        }
        if self.ex.committed {
            return Err(Close);
        }
        // Interim responses already queued (possibly half written) stay, whole, in front of ours;
        // whatever else the backend sent goes.
        if let Some(buf) = self.resp.as_mut() {
            buf.truncate_back(buf.len() - self.resp_ready);
        }
        self.scan = 0;
        // keep the connection only when the request was read whole and the client wants it
        let keep = self.ex.keep_alive
            && self.req_body.is_done()
            && status.is_server_error()
            && !ctx.draining
            && !self.c_eof;
        let head = self.ex.method == Method::Head;
        let added = crate::http::Added {
            date: ctx.date,
            hsts: ctx.cfg.hsts.as_deref(),
        };
        errors::canned(status, keep, head, &added, ctx.scratch);
        if self.log.is_none() {
            // a head refused before it was parsed, or a timeout waiting for it
            self.log = ctx.access_log.entry(self.peer, ctx.now);
        }
        if let Some(e) = self.log.as_mut() {
            e.status = status.code();
            e.head_out += request::find_head_end(ctx.scratch, 0)
                .ok()
                .flatten()
                .unwrap_or(ctx.scratch.len()) as u64;
        }
        let buf = self.resp.get_or_insert_with(|| ctx.bufs.get());
        if buf.push(ctx.scratch) < ctx.scratch.len() {
            return Err(Close);
        }
        self.resp_ready += ctx.scratch.len();
        self.ex.committed = true;
        ctx.stats.response(status.code());
        self.ex.resp_done = true;
        self.ex.keep_client = keep;
        self.ex.reusable = false;
        self.phase = Phase::Exchange;
        self.deadline = ctx.now + ctx.cfg.send_timeout;
        Ok(true)
    }

    /// The response is complete and written: keep the connection for the next request, or close.
    /// Gives the backend connection back: to the idle pool when the exchange left it clean (the
    /// whole request sent, the whole response read, keep-alive on both ends), else closed.
    fn release_upstream(&mut self, ctx: &mut Ctx<'_>) {
        let Some(key) = self.upstream.take().map(UpKey::get) else {
            return;
        };
        if let Some(up) = ctx.upstreams.get_mut(key) {
            up.backend.end_request();
        }
        if let Some(e) = self.log.as_mut() {
            e.upstream_ended = Some(ctx.now);
        }
        let request_done = self.req_body.is_done() && self.req_sent == self.req_ready;
        ctx.upstreams
            .release(key, self.ex.reusable && request_done, ctx.now);
    }

    fn finish_exchange(&mut self, ctx: &mut Ctx<'_>) -> Result<(), Close> {
        self.release_upstream(ctx);
        self.log_done(ctx);
        if !self.req_body.is_done() {
            // the rest of the request body was never read: do not read it as a request
            return self.start_drain(ctx);
        }
        // drop this request's bytes; a pipelined request may follow them
        if let Some(buf) = self.req.as_mut() {
            buf.consume(self.req_ready.min(buf.len()));
            if buf.is_empty() {
                if let Some(b) = self.req.take() {
                    ctx.bufs.put(b);
                }
            }
        }
        self.req_ready = 0;
        self.req_sent = 0;
        let pending = self.req.is_some();
        if !self.ex.keep_client || ctx.draining || (self.c_eof && !pending) {
            // over TLS the close goes through Drain too: close_notify, and records still queued
            let tls_close = self.client.wants_flush() || (self.client.is_tls() && !self.c_eof);
            return if pending || self.c_readable || tls_close {
                self.start_drain(ctx)
            } else {
                Err(Close)
            };
        }
        self.ex = Exchange::idle();
        self.phase = Phase::ReadHead;
        self.head_started = false;
        self.head_line_seen = false;
        self.scan = 0;
        self.deadline = ctx.now + ctx.cfg.keepalive_timeout;
        Ok(())
    }

    // ----------------------------------------------------------------- Tunnel and Drain

    fn start_tunnel(&mut self) {
        self.phase = Phase::Tunnel;
        // whatever follows the heads already belongs to the new protocol
        self.req_ready = self.req.as_ref().map_or(0, Buf::len);
        self.resp_ready = self.resp.as_ref().map_or(0, Buf::len);
        self.ex.replay = false;
    }

    fn tunnel(&mut self, ctx: &mut Ctx<'_>) -> Run {
        let Some(key) = self.upstream.map(UpKey::get) else {
            return Err(Close);
        };
        let mut progress = false;
        // client → backend
        if self.read_client(ctx.bufs, ctx.stats)? > 0 {
            progress = true;
        }
        self.req_ready = self.req.as_ref().map_or(0, Buf::len);
        let Some(up) = ctx.upstreams.get_mut(key) else {
            return Err(Close);
        };
        if up.writable && up.transport.wants_flush() {
            match up.transport.flush() {
                Io::Done(_) => progress = true,
                Io::Blocked => up.writable = false,
                Io::Eof | Io::Failed => return Err(Close),
            }
        }
        if up.writable && self.req_ready > self.req_sent {
            if let Some(buf) = self.req.as_mut() {
                match up
                    .transport
                    .write(&buf.bytes()[self.req_sent..self.req_ready])
                {
                    Io::Done(n) => {
                        if n < self.req_ready - self.req_sent {
                            up.writable = false;
                        }
                        self.req_sent += n;
                        progress = true;
                    }
                    Io::Blocked => up.writable = false,
                    Io::Eof | Io::Failed => return Err(Close),
                }
            }
        }
        if self.req_sent > 0 {
            self.stop_replay(ctx.bufs);
        }
        if self.c_eof && self.req_ready == 0 && !self.u_shut {
            up.transport.shutdown_write();
            self.u_shut = true;
        }
        // backend → client
        if up.readable && !self.u_eof {
            let buf = self.resp.get_or_insert_with(|| ctx.bufs.get());
            match up.transport.read_into(buf) {
                Got::Bytes { short, .. } => {
                    if short && !up.hup {
                        up.readable = false;
                    }
                    progress = true;
                }
                Got::Full => {}
                Got::Blocked => up.readable = false,
                Got::Eof => self.u_eof = true,
                Got::Failed => return Err(Close),
            }
        }
        self.resp_ready = self.resp.as_ref().map_or(0, Buf::len);
        progress |= self.write_client(ctx.bufs, ctx.stats)?;
        if self.resp_ready == 0 {
            if let Some(b) = self.resp.take() {
                ctx.bufs.put(b);
            }
            if self.u_eof && !self.c_shut {
                self.client.shutdown_write();
                self.c_shut = true;
            }
        }
        if self.c_shut && self.u_shut && !self.client.wants_flush() {
            return Err(Close);
        }
        Ok(progress)
    }

    /// Shuts our side and discards what the client still sends, until it closes or `LINGER`.
    fn start_drain(&mut self, ctx: &mut Ctx<'_>) -> Result<(), Close> {
        self.client.shutdown_write();
        if let Some(b) = self.req.take() {
            ctx.bufs.put(b);
        }
        self.phase = Phase::Drain;
        self.deadline = ctx.now + LINGER;
        Ok(())
    }

    fn drain(&mut self) -> Run {
        for _ in 0..MAX_ROUNDS {
            if self.c_eof && !self.client.wants_flush() {
                // the client has gone and everything for it is out
                return Err(Close);
            }
            if !self.c_readable {
                return Ok(false);
            }
            match self.client.discard() {
                Got::Bytes { short, .. } => {
                    if short && !self.c_hup {
                        self.c_readable = false;
                    }
                }
                Got::Full => {}
                Got::Blocked => self.c_readable = false,
                Got::Eof if self.client.wants_flush() => {
                    // half-closed: the rest of our records may still reach it
                    self.c_eof = true;
                    self.c_readable = false;
                }
                Got::Eof | Got::Failed => return Err(Close),
            }
        }
        // still readable after the cap: more to discard
        Ok(self.c_readable)
    }
}

#[cfg(test)]
mod tests {
    /// An idle keep-alive connection costs its `Session` and nothing else (buffers are returned
    /// when empty); the idle-memory target (0.5 KB per connection) depends on it staying small.
    #[test]
    fn session_stays_small() {
        // 264 costs what 256 does: glibc gives both a 272-byte chunk
        assert!(
            std::mem::size_of::<super::Session>() <= 264,
            "{}",
            std::mem::size_of::<super::Session>()
        );
    }
}
