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
pub mod h2;
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
    stream: Stream,
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
            stream: Stream::new(),
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Its stream waits in the worker's queue for a backend slot.
    pub fn is_queued(&self) -> bool {
        self.phase == Phase::Stream && self.stream.phase() == crate::stream::Phase::Queued
    }

    /// The client's address (the socket peer, or the PROXY protocol source once read).
    pub fn peer(&self) -> IpAddr {
        self.peer
    }

    /// Idle between requests: no byte of a next head read, nothing in flight.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::IDLE && self.stream.inbox_len() == 0
    }

    /// On drain: an idle keep-alive connection (its TLS handshake done, no byte of a next
    /// request read) is closed by `until` unless a request arrives first. Returns whether its
    /// deadline moved (the worker re-arms its timer). A request that arrives in time is served
    /// with `Connection: close` (`ctx.draining`).
    pub fn close_idle_by(&mut self, until: Instant) -> bool {
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
        self.stream.release(ctx, reason);
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

    /// Drives the connection as far as readiness allows, for at most `MAX_ROUNDS` rounds so one
    /// busy connection cannot starve the others. Returns `More` when it stopped at that cap with
    /// work left: no new event will say so (readiness is edge-triggered), so the worker runs it
    /// again after serving the others.
    pub fn run(&mut self, ctx: &mut Ctx<'_>) -> Result<Ran, Close> {
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
            } | flushed;
            any |= step.moved();
            if !step.moved() {
                ran = Ran::Idle;
                break;
            }
        }
        if any && self.phase == Phase::Stream {
            self.stream.touch(ctx, &mut self.deadline);
        }
        Ok(ran)
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
                let mut client = h1::Client::new(&mut self.client, &mut self.side);
                self.stream
                    .timed_out(ctx, &mut client, &mut self.deadline)?;
            }
            Phase::Drain => return Err(Close(CloseReason::Linger)),
        }
        self.run(ctx)
    }

    /// Its stream is queued and a backend slot may have freed: try again. True when it left the
    /// queue (it got a backend, or an answer); false when it still waits, at the front.
    pub fn dequeue(&mut self, ctx: &mut Ctx<'_>) -> Result<bool, Close> {
        let client = h1::Client::new(&mut self.client, &mut self.side);
        self.stream.dequeue(ctx, &client, &mut self.deadline)
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
