//! One client connection: its [`Transport`] (plain or rustls), its readiness ([`Side`]), the
//! protocol codec that turns its bytes into streams (HTTP/1.1 today, `h1.rs`), keep-alive, and
//! the deadlines of the connection itself. What happens to a request lives in its
//! [`Stream`](crate::stream::Stream); the connection only reads its heads and hands them over.
//!
//! ```text
//!            ┌──────────────── keep-alive ─────────────────┐
//!            v                                             │
//!   accept → [ProxyHeader →] ReadHead ──whole head──> Stream (the stream's own phases) ──> Drain ──> close
//!                            │  (TLS handshake first)                              Close(reason)
//!                            └── bad head: 4xx (a stream answering it) ──────────────────┘
//! ```
//!
//! | phase       | what happens                                                      | deadline               |
//! |-------------|-------------------------------------------------------------------|------------------------|
//! | ProxyHeader | `proxy_protocol`: the PROXY header, peeked until whole, then consumed | `client_header_timeout` |
//! | ReadHead    | (over TLS, the handshake first, driven by the reads) read until a whole head is buffered | `tls_handshake_timeout` during the handshake, `keepalive_timeout` while idle, then `client_header_timeout` from the first byte |
//! | Stream      | the stream runs: Queued, Connect, Exchange, Tunnel (`stream/`)     | the stream's phase's   |
//! | Drain       | our side is shut; unread client bytes are discarded so the last response is not lost to a reset | `LINGER` |
//!
//! HTTP/1.1 drives one stream at a time, kept inline (an idle connection costs its `Connection`
//! and nothing else). An HTTP/2 codec would sit beside `h1.rs`: after the preface (or ALPN `h2`)
//! the connection's phase becomes its frame loop, which holds a table of streams, each run as
//! `h1.rs` runs its one, with a [`Client`](crate::stream::Client) that moves DATA into the
//! stream and frames what the stream writes.
//!
//! Every close carries a [`CloseReason`]: the worker counts it, and the access log names it
//! for a request the close cut.

mod h1;
network_input_mod! { pub mod h2; }
mod open;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::access_log::{Event, Text};
use crate::context::{Ctx, Settings};
use crate::stats::CloseReason;
use crate::stream::{Step, Stream, MAX_ROUNDS};
use crate::transport::{Io, Side, Transport};

pub use crate::stream::Close;

/// How long a closing connection waits for the client to stop sending.
pub const LINGER: Duration = Duration::from_secs(5);
/// On drain, an idle keep-alive connection is closed after this (or its keep-alive timeout, if
/// sooner) unless a request arrives; one that does is served with `Connection: close`. Closing at
/// once would race with a client whose next request is already on the wire.
pub const DRAIN_IDLE_GRACE: Duration = Duration::from_secs(1);

/// How a run ended, when the connection goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// Waiting for readiness or a timer.
    Idle,
    /// Stopped at the round cap with work left: run again soon.
    More,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `proxy_protocol`: reading the PROXY protocol header that comes before anything else.
    ProxyHeader,
    /// The client's TLS handshake, driven by the reads (its own deadline runs).
    Handshake,
    /// Between requests: reading the next head. `started`: bytes of it arrived (the header
    /// timeout runs); `line_seen`: a line end was seen, so the request line is complete.
    ReadHead { started: bool, line_seen: bool },
    /// A stream holds the request.
    Stream,
    /// Closing: our side shut, what the client still sends discarded.
    Drain,
    /// HTTP/2 (ALPN `h2`, or the preface on the plain port): the frame loop drives the
    /// connection's streams (`h2/conn.rs`). Once it has written its last GOAWAY, the connection
    /// goes to `Drain`, as an HTTP/1.1 one does after its last response.
    H2,
}

impl Phase {
    /// Waiting for the first byte of a head.
    pub const IDLE: Phase = Phase::ReadHead {
        started: false,
        line_seen: false,
    };
}

pub struct Connection {
    client: Transport,
    /// Unique per worker: tells this connection from a later one in the same slab slot.
    pub id: u32,
    /// The timer slot this connection is armed in (`u64::MAX`: none).
    pub armed: u64,
    pub deadline: Instant,
    peer: IpAddr,
    side: Side,
    phase: Phase,
    /// ReadHead: bytes already searched for the end of the head.
    scan: u32,
    codec: Codec,
}

/// What turns the connection's bytes into streams. HTTP/1.1 keeps its one stream inline (an idle
/// connection costs nothing more); HTTP/2's frame loop and stream table are boxed (the enum is no
/// bigger than the stream).
enum Codec {
    H1(Stream),
    H2(Box<h2::H2>),
}

impl Codec {
    /// HTTP/1.1's inbox: the idle stream's buffer where the next head gathers (`None` over
    /// HTTP/2).
    fn inbox(&mut self) -> Option<&mut Option<crate::buffer::Buf>> {
        match self {
            Codec::H1(stream) => Some(stream.inbox()),
            Codec::H2(_) => None,
        }
    }
}

impl Connection {
    /// A client connection just accepted; `redirect`: on the https redirect listener (plain
    /// HTTP, no PROXY header even with `proxy_protocol`).
    pub fn new(
        client: Transport,
        peer: IpAddr,
        id: u32,
        now: Instant,
        cfg: &Settings,
        redirect: bool,
    ) -> Self {
        let handshaking = client.is_handshaking();
        let proxy_header = cfg.identity.proxy_protocol && !redirect;
        let first_deadline = if handshaking && !proxy_header {
            cfg.timeouts.tls_handshake
        } else {
            cfg.timeouts.client_header
        };
        Connection {
            client,
            id,
            armed: u64::MAX,
            deadline: now + first_deadline,
            peer,
            // a fresh connection usually has its request waiting: try reading at once
            side: Side::FRESH,
            phase: if proxy_header {
                Phase::ProxyHeader
            } else if handshaking {
                Phase::Handshake
            } else {
                Phase::IDLE
            },
            scan: 0,
            codec: Codec::H1(Stream::new()),
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Its stream in `slot` waits in the worker's queue for a backend slot.
    pub fn is_queued(&self, slot: u32) -> bool {
        match &self.codec {
            Codec::H1(stream) => {
                self.phase == Phase::Stream && stream.phase() == crate::stream::Phase::Queued
            }
            Codec::H2(h2) => h2.is_queued(slot),
        }
    }

    /// The client's address (the socket peer, or the PROXY protocol source once read).
    pub fn peer(&self) -> IpAddr {
        self.peer
    }

    /// Idle between requests: no byte of a next head read, nothing in flight.
    pub fn is_idle(&self) -> bool {
        match &self.codec {
            Codec::H1(stream) => self.phase == Phase::IDLE && stream.inbox_len() == 0,
            Codec::H2(h2) => h2.streams() == 0,
        }
    }

    /// On drain: an idle HTTP/1.1 keep-alive connection (its TLS handshake done, no byte of a
    /// next request read) is closed by `until` unless a request arrives first; a request that
    /// arrives in time is served with `Connection: close` (`ctx.draining`). An HTTP/2
    /// connection sends GOAWAY with its last stream id, finishes the streams under way and
    /// closes. Returns whether its deadline moved (the worker re-arms its timer, and runs it: a
    /// GOAWAY waits to be written).
    pub fn close_idle_by(&mut self, until: Instant, now: Instant) -> bool {
        if let (Phase::H2, Codec::H2(h2)) = (self.phase, &mut self.codec) {
            h2.go_away(now, until.saturating_duration_since(now));
            if let Some(d) = h2.deadline() {
                self.deadline = d;
            }
            return true;
        }
        if !self.is_idle() || self.deadline <= until {
            return false;
        }
        self.deadline = until;
        true
    }

    /// Readiness reported by the poll for the client socket. `hup`: the peer closed its side
    /// (or the socket failed), so reads must go on until they say so.
    pub fn client_ready(&mut self, readable: bool, writable: bool, hup: bool) {
        self.side.ready(readable, writable, hup);
    }

    /// Gives back everything the connection holds; called once, when the worker drops it for
    /// `reason`.
    pub fn release(&mut self, ctx: &mut Ctx<'_>, reason: CloseReason) {
        match &mut self.codec {
            Codec::H1(stream) => stream.release(ctx, reason),
            Codec::H2(h2) => h2.release(ctx, reason),
        }
    }

    /// Logs a connection-level event of its own line (the log's `event` field).
    fn log_event(&self, ctx: &mut Ctx<'_>, event: Event) {
        if let Some(mut e) = ctx.access_log.entry(self.peer, ctx.now) {
            e.event = event;
            if let Some(sni) = self.client.sni() {
                e.set(Text::Sni, sni.as_bytes());
            }
            ctx.access_log.submit(e);
        }
    }

    /// Drives the connection as far as readiness allows, for at most `MAX_ROUNDS` rounds so one
    /// busy connection cannot starve the others. Returns `More` when it stopped at that cap with
    /// work left: no new event will say so (readiness is edge-triggered), so the worker runs it
    /// again after serving the others.
    pub fn run(&mut self, ctx: &mut Ctx<'_>) -> Result<Ran, Close> {
        if let (Phase::H2, Codec::H2(h2)) = (self.phase, &mut self.codec) {
            let ran = match h2.run(ctx, &mut self.client, &mut self.side, self.peer) {
                Ok(ran) => ran,
                Err(Close(CloseReason::Done)) if !self.side.eof => {
                    // the GOAWAY is written: linger as HTTP/1.1 does, so that client bytes we
                    // never read (a flood cut short) do not turn the close into a reset that
                    // takes the GOAWAY, and its error code, with it
                    h2.release(ctx, CloseReason::Done);
                    self.start_drain(ctx);
                    return self.run(ctx);
                }
                Err(e) => return Err(e),
            };
            if let Some(d) = h2.deadline() {
                self.deadline = d;
            }
            return Ok(match ran {
                h2::Ran::Idle => Ran::Idle,
                h2::Ran::More => Ran::More,
            });
        }
        let mut any = false;
        let mut ran = Ran::More;
        for _ in 0..MAX_ROUNDS {
            // TLS records waiting for the client socket go out whatever the phase
            let flushed = self.flush_client()?;
            let step = match self.phase {
                Phase::ProxyHeader => self.proxy_header(ctx)?,
                Phase::Handshake => self.handshake(ctx)?,
                Phase::ReadHead { .. } => self.read_head(ctx)?,
                Phase::Stream => self.run_stream(ctx)?,
                Phase::Drain => self.drain()?,
                // the connection became HTTP/2 in this round: the frame loop takes it
                Phase::H2 => return self.run(ctx),
            } | flushed;
            any |= step.moved();
            if !step.moved() {
                ran = Ran::Idle;
                break;
            }
        }
        if let (true, Phase::Stream, Codec::H1(stream)) = (any, self.phase, &self.codec) {
            stream.touch(ctx, &mut self.deadline);
        }
        Ok(ran)
    }

    /// See [`Stream::push_deferred`].
    pub fn push_deferred(&mut self, ctx: &mut Ctx<'_>) -> bool {
        match (self.phase, &mut self.codec) {
            (Phase::Stream, Codec::H1(stream)) => stream.push_deferred(ctx),
            _ => false,
        }
    }

    /// The deadline passed: decide what that means in this phase.
    pub fn timed_out(&mut self, ctx: &mut Ctx<'_>) -> Result<Ran, Close> {
        match self.phase {
            Phase::ProxyHeader => return Err(Close(CloseReason::ProxyHeader)),
            Phase::Handshake => {
                ctx.stats.tls_failed();
                self.log_event(ctx, Event::TlsHandshakeFailed);
                return Err(Close(CloseReason::TlsHandshake));
            }
            Phase::ReadHead { started: false, .. } if ctx.draining => {
                // the drain's idle grace is over, but a request may have come in just now (its
                // event not yet seen): read before closing, and serve what came; a close with
                // nothing unread is a FIN, never a reset
                self.side.readable = true;
                let ran = self.run(ctx)?;
                if self.is_idle() {
                    return Err(Close(CloseReason::Idle));
                }
                return Ok(ran);
            }
            Phase::ReadHead { started: false, .. } => return Err(Close(CloseReason::Idle)),
            Phase::ReadHead { started: true, .. } => {
                self.reject(ctx, crate::http::errors::Status::RequestTimeout)?;
            }
            Phase::Stream => {
                if let Codec::H1(stream) = &mut self.codec {
                    let mut client = h1::Client::new(&mut self.client, &mut self.side);
                    stream.timed_out(ctx, &mut client, &mut self.deadline)?;
                }
            }
            Phase::Drain => return Err(Close(CloseReason::Linger)),
            Phase::H2 => {
                if let Codec::H2(h2) = &mut self.codec {
                    h2.timed_out(ctx, &self.client)?;
                }
            }
        }
        self.run(ctx)
    }

    /// Its stream in `slot` is queued and a backend slot may have freed: try again. True when it
    /// left the queue (it got a backend, or an answer); false when it still waits, at the front.
    pub fn dequeue(&mut self, ctx: &mut Ctx<'_>, slot: u32) -> Result<bool, Close> {
        match &mut self.codec {
            Codec::H1(stream) => {
                let client = h1::Client::new(&mut self.client, &mut self.side);
                stream.dequeue(ctx, &client, &mut self.deadline)
            }
            Codec::H2(h2) => h2.dequeue(ctx, slot),
        }
    }

    /// Becomes an HTTP/2 connection; `input`: what was read already (h2c: the preface).
    fn become_h2(&mut self, ctx: &Ctx<'_>, input: Option<crate::buffer::Buf>) {
        let h2 = h2::H2::new(
            input,
            ctx.cfg.h2,
            ctx.cfg.limits.max_head,
            ctx.now,
            ctx.cfg.timeouts.keepalive,
        );
        self.codec = Codec::H2(Box::new(h2));
        self.phase = Phase::H2;
        self.side.readable = true;
    }

    /// Writes TLS records waiting for the client socket.
    fn flush_client(&mut self) -> Result<Step, Close> {
        if !self.side.writable || !self.client.wants_flush() {
            return Ok(Step::Waiting);
        }
        match self.client.flush() {
            Io::Done(_) => Ok(Step::Progress),
            Io::Blocked => {
                self.side.writable = false;
                Ok(Step::Waiting)
            }
            Io::Eof => Err(Close(CloseReason::ClientClosed)),
            Io::Failed(_) => Err(Close(CloseReason::ClientError)),
        }
    }
}

#[cfg(test)]
mod tests {
    /// An idle keep-alive connection costs its `Connection` and nothing else (buffers are
    /// returned when empty); the idle-memory target (0.5 KB per connection) depends on it
    /// staying small.
    #[test]
    fn connection_stays_small() {
        // 264 costs what 256 does: glibc gives both a 272-byte chunk
        let size = std::mem::size_of::<super::Connection>();
        assert!(size <= 264, "{size}");
    }
}
