//! The HTTP/1.1 codec: one stream at a time, in order. It gathers a request head in the idle
//! stream's inbox (the buffer the request then lives in: no copy), hands the whole head to the
//! stream, presents the client socket to the stream as its [`Client`](crate::stream::Client)
//! (reads and writes go to the socket as they are: HTTP/1.1 on both sides), and after the
//! response decides between keep-alive (a pipelined request already buffered is served at once)
//! and closing. Closing lingers (`Drain`): our side is shut and whatever the client still sends
//! is discarded, so its last response is not lost to a reset.

use super::{Codec, Connection, Phase, DRAIN_IDLE_GRACE, LINGER};
use crate::buffer::Buf;
use crate::context::Ctx;
use crate::http::errors::Status;
use crate::http::request::{self, Reject};
use crate::stats::CloseReason;
use crate::stream::{Close, Finish, Opening, Outcome, Socket, Started, Step, MAX_ROUNDS};
use crate::transport::{Got, Side, Transport};

/// The client socket as an HTTP/1.1 stream sees it: its bytes, as they are.
pub(super) struct Client<'a> {
    transport: &'a mut Transport,
    side: &'a mut Side,
}

impl<'a> Client<'a> {
    pub(super) fn new(transport: &'a mut Transport, side: &'a mut Side) -> Client<'a> {
        Client { transport, side }
    }
}

impl Socket for Client<'_> {
    #[inline]
    fn transport(&self) -> &Transport {
        self.transport
    }

    #[inline]
    fn readiness(&self) -> Side {
        *self.side
    }

    #[inline]
    fn parts(&mut self) -> (&mut Transport, &mut Side) {
        (self.transport, self.side)
    }
}

impl crate::stream::Client for Client<'_> {
    fn cut(&mut self) {
        self.transport.reset_on_close();
    }

    fn sni(&self) -> Option<&str> {
        self.transport.sni()
    }

    fn tls_version(&self) -> Option<rustls::ProtocolVersion> {
        self.transport.tls_version()
    }
}

/// What the inbox holds of a request head.
enum Head {
    Nothing,
    /// Part of one, good so far.
    Partial,
    /// A whole one, ending at this offset.
    Whole(usize),
    /// One that can never be good.
    Refused(Status),
    /// Not HTTP/1.1 at all: the HTTP/2 preface (h2c with prior knowledge).
    H2,
}

impl Connection {
    /// ReadHead: read until a whole head is in the inbox, and start its stream.
    pub(super) fn read_head(&mut self, ctx: &mut Ctx<'_>) -> Result<Step, Close> {
        let mut step = Step::Waiting;
        // bounded: each round either reads bytes or returns
        for _ in 0..MAX_ROUNDS {
            match self.look_for_head(ctx) {
                Head::Nothing | Head::Partial => {}
                Head::Whole(end) => {
                    if self.start_stream(ctx, end)? == Started::Request {
                        return Ok(Step::Progress);
                    }
                    // only empty lines, which may precede a request (RFC 9112 §2.2): drop them
                    // and look again
                    self.drop_inbox_front(end, ctx);
                    step = Step::Progress;
                    continue;
                }
                Head::Refused(status) => return self.reject(ctx, status),
                Head::H2 => {
                    let input = self.codec.inbox().and_then(Option::take);
                    self.become_h2(ctx, input);
                    return Ok(Step::Progress);
                }
            }
            if self.side.eof {
                // the client is gone; a partial head will never complete
                return Err(Close(CloseReason::ClientClosed));
            }
            let n = self.read_inbox(ctx)?;
            if n == 0 {
                if self.side.eof {
                    continue;
                }
                // nothing came: an idle connection holds no buffer
                if let Some(inbox) = self.codec.inbox() {
                    ctx.bufs.put_if_empty(inbox);
                }
                break;
            }
            step = Step::Progress;
        }
        Ok(step)
    }

    /// Searches the inbox for the end of a head, checking a head still coming as far as it goes
    /// (a head that can never be good is refused at once).
    fn look_for_head(&mut self, ctx: &Ctx<'_>) -> Head {
        let scan = self.scan as usize;
        let Phase::ReadHead { started, line_seen } = &mut self.phase else {
            return Head::Nothing;
        };
        let Some(bytes) = self
            .codec
            .inbox()
            .and_then(|inbox| inbox.as_ref())
            .filter(|b| !b.is_empty())
            .map(Buf::bytes)
        else {
            return Head::Nothing;
        };
        if ctx.cfg.h2.enabled && !*started && ctx.redirect.is_none() {
            // h2c with prior knowledge (RFC 9113 §3.3): the preface instead of a request
            let preface = super::h2::frame::PREFACE;
            let n = bytes.len().min(preface.len());
            if bytes.get(..n) == preface.get(..n) {
                return if n == preface.len() {
                    Head::H2
                } else {
                    Head::Partial
                };
            }
        }
        if !*started {
            *started = true;
            self.deadline = ctx.now + ctx.cfg.timeouts.client_header;
        }
        match request::find_head_end(bytes, scan) {
            Ok(Some(end)) => Head::Whole(end),
            Err(Reject(status)) => Head::Refused(status),
            Ok(None) => {
                // the request line is complete once a line end was seen; only the new bytes are
                // searched, so a head trickled in byte by byte costs linear time
                if !*line_seen {
                    *line_seen = request::request_line_complete(bytes, scan);
                    if *line_seen {
                        // once per request, on a head that came in pieces: a request line that
                        // can never parse (HTTP/0.9's `GET /`) is answered now, not when the
                        // header timeout ends the wait
                        if let Err(Reject(status)) = request::check_request_line(bytes) {
                            return Head::Refused(status);
                        }
                    }
                }
                self.scan = bytes.len() as u32;
                match request::check_partial(bytes.len(), *line_seen, &ctx.cfg.limits) {
                    Ok(()) => Head::Partial,
                    Err(Reject(status)) => Head::Refused(status),
                }
            }
        }
    }

    /// Reads the client into the inbox. Returns the bytes read (0: blocked, no room, or EOF).
    fn read_inbox(&mut self, ctx: &mut Ctx<'_>) -> Result<usize, Close> {
        if !self.side.readable || self.side.eof {
            return Ok(0);
        }
        let Some(inbox) = self.codec.inbox() else {
            return Ok(0);
        };
        let buf = inbox.get_or_insert_with(|| ctx.bufs.get());
        let got = self.client.read_into(buf);
        ctx.bufs.put_if_empty(inbox);
        self.side.after_read(&got);
        match got {
            Got::Bytes { n, .. } => {
                ctx.stats.bytes_in(n);
                Ok(n)
            }
            Got::Full | Got::Blocked | Got::Eof => Ok(0),
            Got::Failed(_) => Err(Close(CloseReason::ClientError)),
        }
    }

    /// Drops `n` bytes from the front of the inbox (before any request is in it) and restarts
    /// the search for a head.
    fn drop_inbox_front(&mut self, n: usize, ctx: &mut Ctx<'_>) {
        if let Some(inbox) = self.codec.inbox() {
            if let Some(buf) = inbox.as_mut() {
                buf.consume(n.min(buf.len()));
            }
            ctx.bufs.put_if_empty(inbox);
        }
        self.scan = 0;
        if let Phase::ReadHead { line_seen, .. } = &mut self.phase {
            *line_seen = false;
        }
    }

    /// A whole head is in the inbox, `..end`: its stream starts (on the https redirect listener,
    /// it is answered at once, see `redirect.rs`).
    fn start_stream(&mut self, ctx: &mut Ctx<'_>, end: usize) -> Result<Started, Close> {
        let Codec::H1(stream) = &mut self.codec else {
            return Ok(Started::Blank);
        };
        if let Some(https_port) = ctx.redirect {
            let head = stream
                .inbox()
                .as_ref()
                .and_then(|b| b.bytes().get(..end))
                .unwrap_or_default();
            let status = crate::redirect::answer(head, https_port, ctx.date, ctx.scratch);
            stream.answer(ctx, &mut self.deadline, status, self.peer, end)?;
            self.phase = Phase::Stream;
            self.scan = 0;
            return Ok(Started::Request);
        }
        // the request's time starts at its first byte, as nginx's $request_time does: the
        // head's deadline was set then, `client_header_timeout` after it
        let started = matches!(self.phase, Phase::ReadHead { started: true, .. });
        let began = self
            .deadline
            .checked_sub(ctx.cfg.timeouts.client_header)
            .filter(|at| started && *at <= ctx.now)
            .unwrap_or(ctx.now);
        let from = Opening {
            peer: self.peer,
            began,
            http2: false,
        };
        let mut client = Client::new(&mut self.client, &mut self.side);
        let started = stream.start(ctx, &mut client, &mut self.deadline, end, from)?;
        if started == Started::Request {
            self.phase = Phase::Stream;
            self.scan = 0;
        }
        Ok(started)
    }

    /// A head is refused before its stream could start (or never came whole): the idle stream
    /// answers it with `status`, and the connection closes after.
    pub(super) fn reject(&mut self, ctx: &mut Ctx<'_>, status: Status) -> Result<Step, Close> {
        let Codec::H1(stream) = &mut self.codec else {
            return Err(Close(CloseReason::Done));
        };
        let client = Client::new(&mut self.client, &mut self.side);
        let step = stream.reject(ctx, &client, &mut self.deadline, status, self.peer)?;
        self.phase = Phase::Stream;
        Ok(step)
    }

    /// Stream: runs it; once its response is written, keep-alive or close.
    pub(super) fn run_stream(&mut self, ctx: &mut Ctx<'_>) -> Result<Step, Close> {
        let Codec::H1(stream) = &mut self.codec else {
            return Ok(Step::Waiting);
        };
        let mut client = Client::new(&mut self.client, &mut self.side);
        match stream.run(ctx, &mut client, &mut self.deadline)? {
            Outcome::Step(step) => Ok(step),
            Outcome::Finished(finish) => {
                self.finished(ctx, finish)?;
                Ok(Step::Progress)
            }
        }
    }

    /// The response is complete and written: keep the connection for the next request, or close.
    fn finished(&mut self, ctx: &mut Ctx<'_>, finish: Finish) -> Result<(), Close> {
        if !finish.request_read {
            // the rest of the request body was never read: do not read it as a request
            self.start_drain(ctx);
            return Ok(());
        }
        let pending = self.codec.inbox().is_some_and(|inbox| inbox.is_some());
        // During a drain, a client whose response head went out before it began was promised
        // keep-alive and may have sent its next request already: it keeps the connection for the
        // drain's idle grace, and that request is served with `Connection: close` (every head
        // rewritten during the drain says close, so those responses close as before).
        if !finish.keep_client || (self.side.eof && !pending) {
            // over TLS the close goes through Drain too: close_notify, and records still queued
            let tls_close = self.client.wants_flush() || (self.client.is_tls() && !self.side.eof);
            if pending || self.side.readable || tls_close {
                self.start_drain(ctx);
                return Ok(());
            }
            return Err(Close(CloseReason::Done));
        }
        self.phase = Phase::IDLE;
        self.scan = 0;
        let idle = if ctx.draining {
            ctx.cfg.timeouts.keepalive.min(DRAIN_IDLE_GRACE)
        } else {
            ctx.cfg.timeouts.keepalive
        };
        self.deadline = ctx.now + idle;
        Ok(())
    }

    /// Shuts our side and discards what the client still sends, until it closes or `LINGER`.
    pub(super) fn start_drain(&mut self, ctx: &mut Ctx<'_>) {
        self.client.shutdown_write();
        self.side.shut = true;
        if let Some(inbox) = self.codec.inbox() {
            ctx.bufs.put_slot(inbox);
        }
        self.phase = Phase::Drain;
        self.deadline = ctx.now + LINGER;
    }

    pub(super) fn drain(&mut self) -> Result<Step, Close> {
        for _ in 0..MAX_ROUNDS {
            if self.side.eof && !self.client.wants_flush() {
                // the client has gone and everything for it is out
                return Err(Close(CloseReason::Done));
            }
            if !self.side.readable {
                return Ok(Step::Waiting);
            }
            match self.client.discard() {
                got @ (Got::Bytes { .. } | Got::Blocked | Got::Full) => self.side.after_read(&got),
                Got::Eof if self.client.wants_flush() => {
                    // half-closed: the rest of our records may still reach it
                    self.side.eof = true;
                    self.side.readable = false;
                }
                Got::Eof => return Err(Close(CloseReason::Done)),
                Got::Failed(_) => return Err(Close(CloseReason::ClientError)),
            }
        }
        // still readable after the cap: more to discard
        Ok(Step::from(self.side.readable))
    }
}
