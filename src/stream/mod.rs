//! A stream: one request and its response, from the moment its head is whole to the moment the
//! last byte of its response is handed to the client. It owns the request side (the rewritten
//! head, the body's framing, what is kept to replay it), the backend choice and the connection
//! lent to it, the retries, the response side (head rewrite, framing, interim responses) and the
//! access-log record.
//!
//! ```text
//!   start ──> [Queued →] Connect ──connected──> Exchange ──101──> Tunnel
//!               (idle connection found: straight to Exchange)   │
//!   refused or failed: a status of ferrule's own ──> Exchange ───┴──> Finished / Close(reason)
//! ```
//!
//! A stream never touches the client socket. Its connection's codec hands it the request bytes
//! (`start` takes the buffer holding a whole HTTP/1.1 head) and presents the client to it as a
//! [`Client`]: an [`End`] that reads request bytes and takes response bytes. HTTP/1.1
//! (`connection/h1.rs`) reads and writes the socket on the stream's behalf, bytes verbatim. An
//! HTTP/2 codec plugs in at the same two places: it writes the request it decoded from HEADERS as
//! an HTTP/1.1 head into a buffer and calls `start` with it (so the same checks and rewrite
//! apply), moves DATA payloads into the stream's request pipe as its `read`, and frames what the
//! stream `write`s (the HTTP/1.1 response head it parses and HPACK-encodes, the body as DATA
//! within the stream's window: a window at 0 is a `writable: false` side, back-pressure as for a
//! full socket). One connection then holds many streams, each with its own upstream; the
//! exchange logic stays here, once.
//!
//! Files: this one the state, the run loop, deadlines and the one place failures become a status
//! ([`Stream::fail`]); `request.rs` the request side; `response.rs` the response side;
//! `backend.rs` choosing a backend, connecting, retries; `relay.rs` the pipes both directions
//! (and the tunnel) move bytes through.

mod backend;
mod relay;
mod request;
mod response;

use std::time::Instant;

use crate::access_log::Entry;
use crate::context::Ctx;
use crate::http::errors::{self, Status};
use crate::http::request::RequestHead;
use crate::http::response::Relay;
use crate::http::{Body, Framing, Method};
use crate::stats::CloseReason;

pub use relay::{relay, Broke, End, Moved, Pipe, Socket};
pub use request::{Opening, Started};

/// Rounds of a loop per wake-up, so one busy stream cannot starve the others.
pub const MAX_ROUNDS: usize = 16;
/// Interim (1xx) responses accepted before a final one; more is a 502.
const MAX_INTERIM: u8 = 16;

/// The client side of a stream, as its connection's codec presents it: request bytes come from
/// its reads, response bytes go to its writes.
pub trait Client: End {
    /// The response was cut short after it began: the client must see a cut, not a complete
    /// response (HTTP/1.1: the connection closes with a reset; HTTP/2: the stream is reset).
    fn cut(&mut self);
    /// The server name the client asked for, over TLS (for the access log).
    fn sni(&self) -> Option<&str>;
    /// The TLS version of the client connection, once negotiated.
    fn tls_version(&self) -> Option<rustls::ProtocolVersion>;
    /// The client can send no more request bytes until the stream lets go of some (HTTP/2: its
    /// flow-control window is spent). A stream holding its request for a replay then gives the
    /// replay up, as it does when its buffer is full, rather than wait for ever.
    fn starved(&self) -> bool {
        false
    }
    /// The client speaks HTTP/2 (the access log says `HTTP/2.0`).
    fn http2(&self) -> bool {
        false
    }
}

/// The connection must close, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close(pub CloseReason);

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Bytes moved or the state advanced: there may be more to do.
    Progress,
    /// Nothing more until readiness or a deadline.
    Waiting,
}

impl Step {
    #[inline]
    pub fn from(moved: bool) -> Step {
        if moved {
            Step::Progress
        } else {
            Step::Waiting
        }
    }

    #[inline]
    pub fn moved(self) -> bool {
        self == Step::Progress
    }
}

impl std::ops::BitOr for Step {
    type Output = Step;
    #[inline]
    fn bitor(self, other: Step) -> Step {
        Step::from(self.moved() || other.moved())
    }
}

impl std::ops::BitOrAssign for Step {
    #[inline]
    fn bitor_assign(&mut self, other: Step) {
        *self = *self | other;
    }
}

pub(crate) type Run = Result<Step, Close>;

/// How a stream's run ended, when its connection goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Step(Step),
    /// The whole response was written: the stream is over.
    Finished(Finish),
}

/// What the connection needs to know of a finished stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finish {
    /// The response allows the connection to serve another request.
    pub keep_client: bool,
    /// The request was read whole; if not, the rest must never be read as a request.
    pub request_read: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No request.
    Idle,
    /// Waiting in the worker's queue for a backend slot (`max_conns`).
    Queued,
    Connect,
    Exchange,
    Tunnel,
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
    /// hash: plenty for a lookup table, and an idle connection stays within its size.
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
    /// The whole request so far is still in the request pipe, so it can be sent again.
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
    fn new(head: &RequestHead) -> Exchange {
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
        Exchange::new(&RequestHead {
            method: Method::Get,
            http10: false,
            framing: Framing::None,
            keep_alive: false,
            upgrade: false,
            needs_host: false,
            key: None,
            limit_key: None,
            sticky: None,
            client: None,
            pool: 0,
            route: None,
        })
    }
}

/// A key in the worker's `Upstreams`, in 4 bytes with its `None` (keeps an idle connection
/// small; a worker holds far fewer than 4 billion backend connections).
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

pub struct Stream {
    phase: Phase,
    /// Bytes already searched for the end of the response head (u32: buffers are far below
    /// 4 GiB).
    scan: u32,
    /// The backend connection's key in the worker's `Upstreams`.
    upstream: Option<UpKey>,
    /// The pool that takes the request under way (its index in the worker's `pools::View`).
    pool: u16,
    /// Request bytes, client → backend: the rewritten head, then the body (with HTTP/1.1,
    /// pipelined requests may follow it: they go back to the connection at the end).
    req: Pipe,
    req_body: Body,
    /// Response bytes, backend → client.
    resp: Pipe,
    resp_body: Body,
    ex: Exchange,
    /// The access log record of the request under way (`None`: the log is off, or no request).
    log: Option<Box<Entry>>,
}

impl Default for Stream {
    fn default() -> Stream {
        Stream::new()
    }
}

impl Stream {
    pub fn new() -> Stream {
        Stream {
            phase: Phase::Idle,
            scan: 0,
            upstream: None,
            pool: 0,
            req: Pipe::default(),
            req_body: Body::default(),
            resp: Pipe::default(),
            resp_body: Body::default(),
            ex: Exchange::idle(),
            log: None,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Holds a request (in whatever phase).
    pub fn is_active(&self) -> bool {
        self.phase != Phase::Idle
    }

    /// Drives the stream as far as readiness allows. `deadline` is its connection's, which the
    /// stream moves as its phases require.
    pub fn run<C: Client>(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: &mut C,
        deadline: &mut Instant,
    ) -> Result<Outcome, Close> {
        let step = match self.phase {
            Phase::Idle => Step::Waiting,
            Phase::Queued => self.queued(client)?,
            Phase::Connect => self.connect_done(ctx, client, deadline)?,
            Phase::Exchange => self.exchange(ctx, client, deadline)?,
            Phase::Tunnel => self.tunnel(ctx, client)?,
        };
        if self.phase == Phase::Exchange && self.ex.resp_done && self.resp.ready() == 0 {
            return Ok(Outcome::Finished(self.finish(ctx)));
        }
        Ok(Outcome::Step(step))
    }

    /// The keys of the stream's pool.
    fn pool<'c>(&self, ctx: &'c Ctx<'_>) -> &'c crate::pools::PoolSettings {
        ctx.pools.settings(self.pool)
    }

    /// Progress was made: restart the idle-style deadline of the current phase (the others are
    /// set when their phase starts).
    pub fn touch(&self, ctx: &Ctx<'_>, deadline: &mut Instant) {
        let cfg = ctx.cfg;
        let timeout = match self.phase {
            Phase::Exchange if !self.req_body.is_done() => cfg.timeouts.client_body,
            // response bytes wait for a client that does not take them (a full socket, an
            // HTTP/2 window at 0): the backend is not read meanwhile, so it is the write to the
            // client that makes no progress
            Phase::Exchange if self.ex.committed && self.resp.unsent() > 0 => cfg.timeouts.send,
            Phase::Exchange if !self.ex.resp_done => self.pool(ctx).upstream.backend_timeout,
            Phase::Exchange => cfg.timeouts.send,
            Phase::Tunnel => cfg.timeouts.tunnel,
            Phase::Idle | Phase::Queued | Phase::Connect => return,
        };
        *deadline = ctx.now + timeout;
    }

    /// The deadline passed: decide what that means in this phase.
    pub fn timed_out<C: Client>(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: &mut C,
        deadline: &mut Instant,
    ) -> Run {
        match self.phase {
            Phase::Idle => Ok(Step::Waiting),
            // no slot freed in time
            Phase::Queued => self.fail(ctx, client, deadline, Status::ServiceUnavailable),
            Phase::Connect => {
                self.upstream_failed(ctx, client, deadline, backend::Failure::ConnectTimeout)
            }
            Phase::Exchange if self.ex.committed => Err(Close(CloseReason::Timeout)),
            Phase::Exchange => {
                // waiting on the backend (for its answer, or to take the request body we hold)
                // is its failure; waiting on the client for the body is the client's
                let backend_stuck = self.req_body.is_done() || self.req.unsent() > 0;
                if self.upstream.is_some() && backend_stuck {
                    self.upstream_failed(ctx, client, deadline, backend::Failure::Timeout)
                } else {
                    self.fail(ctx, client, deadline, Status::RequestTimeout)
                }
            }
            Phase::Tunnel => Err(Close(CloseReason::TunnelEnded)),
        }
    }

    /// Answers the current request with a status of ferrule's own (the one place a failure
    /// becomes a status). Once a response has started, a failure can only close the connection.
    pub fn fail<C: Client>(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: &C,
        deadline: &mut Instant,
        status: Status,
    ) -> Run {
        self.drop_upstream(ctx);
        if self.ex.committed {
            return Err(Close(CloseReason::BackendFailed));
        }
        // Interim responses already queued (possibly half written) stay, whole, in front of ours;
        // whatever else the backend sent goes.
        self.resp.drop_unframed();
        self.scan = 0;
        // keep the connection only when the request was read whole and the client wants it
        let keep = self.ex.keep_alive
            && self.req_body.is_done()
            && status.is_server_error()
            && !ctx.draining
            && !client.side().eof;
        let head = self.ex.method == Method::Head;
        let added = crate::context::added(ctx.date, ctx.cfg);
        errors::canned(status, keep, head, &added, ctx.scratch);
        self.send_own(ctx, deadline, status.code(), keep)
    }

    /// Queues the response of ferrule's own in `ctx.scratch` (status `code`) as the whole answer
    /// to the current request; `keep`: the connection may serve another request after it.
    fn send_own(
        &mut self,
        ctx: &mut Ctx<'_>,
        deadline: &mut Instant,
        code: u16,
        keep: bool,
    ) -> Run {
        if let Some(e) = self.log.as_mut() {
            e.status = code;
            e.head_out += crate::http::request::find_head_end(ctx.scratch, 0)
                .ok()
                .flatten()
                .unwrap_or(ctx.scratch.len()) as u64;
        }
        let buf = self.resp.buf.get_or_insert_with(|| ctx.bufs.get());
        if buf.push(ctx.scratch) < ctx.scratch.len() {
            return Err(Close(CloseReason::Done));
        }
        self.resp.set_ready(self.resp.ready() + ctx.scratch.len());
        self.ex.committed = true;
        ctx.stats.response(code);
        self.ex.resp_done = true;
        self.ex.keep_client = keep;
        self.ex.reusable = false;
        self.phase = Phase::Exchange;
        *deadline = ctx.now + ctx.cfg.timeouts.send;
        Ok(Step::Progress)
    }

    /// Answers the request head at the front of the inbox, `..end`, with the response of
    /// ferrule's own in `ctx.scratch` (status `code`), without reading on: the https redirect
    /// listener's `308`. The connection closes after it.
    pub fn answer(
        &mut self,
        ctx: &mut Ctx<'_>,
        deadline: &mut Instant,
        code: u16,
        peer: std::net::IpAddr,
        end: usize,
    ) -> Run {
        self.ex = Exchange::idle();
        // whatever follows is never read as a request
        self.req_body = Body::new(Framing::UntilClose);
        self.req.set_sent(0);
        self.req.set_ready(0);
        if self.log.is_none() {
            self.log = ctx.access_log.entry(peer, ctx.now);
        }
        let head = self.req.buf.as_ref().and_then(|b| b.bytes().get(..end));
        if let (Some(e), Some((method, target, host))) = (
            self.log.as_mut(),
            head.and_then(crate::redirect::request_line),
        ) {
            e.set(crate::access_log::Text::Method, method);
            e.set(crate::access_log::Text::Target, target);
            e.set(crate::access_log::Text::Host, host);
        }
        self.send_own(ctx, deadline, code, false)
    }

    /// Exchange: the request body to the backend, the response to the client.
    fn exchange<C: Client>(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: &mut C,
        deadline: &mut Instant,
    ) -> Run {
        let mut step = self.client_to_backend(ctx, client, deadline)?;
        if self.phase != Phase::Exchange {
            return Ok(Step::Progress);
        }
        step |= self.backend_to_client(ctx, client, deadline)?;
        if self.phase != Phase::Exchange {
            return Ok(Step::Progress);
        }
        if self.ex.resp_done && self.upstream.is_some() {
            // the whole response is here: the backend connection can serve someone else while
            // the client reads it
            self.release_upstream(ctx);
        }
        step |= self.write_client(ctx, client)?;
        Ok(step)
    }

    /// The write `client_to_backend` held for the end of the round; `false` when the stream must
    /// run whole instead (it moved on, or the write failed).
    pub fn push_deferred(&mut self, ctx: &mut Ctx<'_>) -> bool {
        if self.phase != Phase::Exchange {
            return false;
        }
        let Some(up) = self.upstream.and_then(|k| ctx.upstreams.get_mut(k.get())) else {
            return false;
        };
        self.req.push(up, self.ex.replay, ctx.bufs).is_ok()
    }

    /// Writes framed response bytes to the client.
    fn write_client<C: Client>(&mut self, ctx: &mut Ctx<'_>, client: &mut C) -> Run {
        match self.resp.push(client, false, ctx.bufs) {
            Ok(0) => Ok(Step::Waiting),
            Ok(n) => {
                ctx.stats.bytes_out(n);
                if let Some(e) = self.log.as_mut() {
                    e.bytes_out += n as u64;
                }
                Ok(Step::Progress)
            }
            Err(_) => Err(Close(CloseReason::ClientError)),
        }
    }

    /// The response is complete and written: the stream gives back what it holds but the request
    /// bytes that follow this request (HTTP/1.1 pipelining), and goes idle.
    fn finish(&mut self, ctx: &mut Ctx<'_>) -> Finish {
        self.release_upstream(ctx);
        self.log_done(ctx);
        let finish = Finish {
            keep_client: self.ex.keep_client,
            request_read: self.req_body.is_done(),
        };
        if finish.request_read {
            // drop this request's bytes; a pipelined request may follow them
            self.req.drop_framed();
            ctx.bufs.put_if_empty(&mut self.req.buf);
        } else {
            // the rest of the request body was never read: none of it is a request
            ctx.bufs.put_slot(&mut self.req.buf);
        }
        self.req.set_sent(0);
        self.req.set_ready(0);
        self.resp.clear(ctx.bufs);
        self.ex = Exchange::idle();
        self.phase = Phase::Idle;
        self.scan = 0;
        finish
    }

    /// Takes the request bytes a finished stream left (pipelined requests), for the connection.
    pub fn take_leftover(&mut self) -> Option<crate::buffer::Buf> {
        debug_assert!(self.phase == Phase::Idle);
        self.req.buf.take()
    }

    /// The exchange is over: its access log line goes to the writer.
    fn log_done(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(mut e) = self.log.take() {
            // bytes read past this request belong to the next one
            let extra = self.req.len().saturating_sub(self.req.ready());
            e.bytes_in = e.bytes_in.saturating_sub(extra as u64);
            e.ended = ctx.now;
            ctx.access_log.submit(e);
        }
    }

    /// Gives back everything the stream holds; its connection is closing for `reason`.
    pub fn release(&mut self, ctx: &mut Ctx<'_>, reason: CloseReason) {
        self.drop_upstream(ctx);
        self.req.clear(ctx.bufs);
        self.resp.clear(ctx.bufs);
        if let Some(mut e) = self.log.take() {
            // the connection ends with the exchange unfinished: as nginx, 499 when nothing was
            // answered (the client left, or the connection failed)
            if e.status == 0 {
                e.status = 499;
            }
            e.close = Some(reason);
            e.ended = ctx.now;
            ctx.access_log.submit(e);
        }
        self.phase = Phase::Idle;
    }
}

#[cfg(test)]
mod tests {
    /// An idle stream is part of every idle HTTP/1.1 connection: its size is part of the
    /// idle-memory target.
    #[test]
    fn stream_stays_small() {
        let size = std::mem::size_of::<super::Stream>();
        assert!(size <= 192, "{size}");
    }
}
