//! The HTTP/2 connection: the frame loop that turns a client connection's bytes into streams,
//! runs each [`Stream`] with its own [`Client`](super::client::Client), and writes their frames.
//!
//! One round ([`H2::run`]): write what waits for the socket; read the socket and handle every
//! whole frame (a request's HEADERS starts a stream: its header list becomes an HTTP/1.1 head in
//! a fresh buffer that the stream starts from, so every check, the rewrite, the balancing and the
//! retries are the HTTP/1.1 ones; DATA goes into the stream's request pipe; SETTINGS, PING and
//! WINDOW_UPDATE are answered or applied); run the streams that may have work; give flow-control
//! credit back for what the streams let go of. A stream that finishes sends END_STREAM; one that
//! fails resets (RST_STREAM), never the connection. A connection error sends GOAWAY and closes.
//!
//! Limits (each counted per connection, see [`Limits`]): concurrent streams (more are refused
//! with REFUSED_STREAM), streams over the connection's life (then GOAWAY: the client reconnects),
//! resets the client sends before an answer and resets we must send (Rapid Reset, MadeYouReset),
//! SETTINGS, PING, empty DATA and WINDOW_UPDATE frames per second (floods; WINDOW_UPDATEs that
//! acknowledge DATA we sent are not counted, see `count_window_update`); the header
//! block and its decoded size are bounded by the frame layer and HPACK (CONTINUATION floods,
//! HPACK bombs). Each ends in GOAWAY ENHANCE_YOUR_CALM.
//!
//! Memory: per stream its `Stream` (two pipes of at most `buffer_size`, taken only while bytes
//! wait) and its [`Flow`]; per connection the input buffer, the output (at most
//! [`OUT_LIMIT`](super::client::OUT_LIMIT) plus one frame), the HPACK table and one header list.
//! The client can make us hold no more request bytes than the windows we give it.
//!
//! What each frame from the client does is in `conn/input.rs`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use slab::Slab;

use super::client::{Client, Flow, Out, Resp};
use super::convert::{self, BodyLength, Refused, RequestOptions};
use super::flow::{RecvWindow, SendWindow};
use super::frame::{self, Frame, Parsed, Setting};
use super::hpack::{Decoder, Encoder, HeaderList};
use super::{ErrorCode, H2Error};
use crate::buffer::Buf;
use crate::context::{Ctx, H2Limits as Limits};
use crate::http::errors::Status;
use crate::stats::CloseReason;
use crate::stream::{Close, Opening, Outcome, Started, Step, Stream};
use crate::transport::{Got, Io, Side, Transport};

mod input;

/// The stream window we give each stream: what its request pipe holds with room to spare for
/// the chunk framing and the head (so a delivery always fits). The protocol's default, so that
/// the client's view and ours agree before and after our SETTINGS.
const STREAM_WINDOW: u32 = frame::DEFAULT_WINDOW;
/// The connection window: every stream's at once, for the few busy ones.
const CONN_WINDOW: u32 = 1024 * 1024;
/// The header table size we announce (RFC 7541's default).
const HEADER_TABLE: u32 = 4096;
/// Frames gathered in `out` past this go out before the streams are done for now (`run`).
const FLUSH_AT: usize = 16 * 1024;
/// How long the rates below are counted over.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// A count over a one-second window.
#[derive(Debug, Default, Clone, Copy)]
struct Rate {
    since: Option<Instant>,
    count: u32,
}

impl Rate {
    /// Counts one event at `now`; true when the count in the current window passes `max`.
    fn over(&mut self, now: Instant, max: u32) -> bool {
        match self.since {
            Some(t) if now.saturating_duration_since(t) < RATE_WINDOW => {}
            _ => {
                self.since = Some(now);
                self.count = 0;
            }
        }
        self.count = self.count.saturating_add(1);
        self.count > max
    }
}

/// Who a new stream's client is: the connection's peer and, over TLS, what its handshake
/// agreed (the access log's `sni` and `tls`).
#[derive(Clone, Copy)]
struct Origin<'a> {
    ip: IpAddr,
    sni: Option<&'a str>,
    tls: Option<rustls::ProtocolVersion>,
}

/// One stream of the connection.
struct Entry {
    stream: Stream,
    flow: Flow,
}

impl Entry {
    /// Runs `f` on the stream with its [`Client`] (its flow, the connection's output and what
    /// the TLS handshake said), `ctx.slot` set to the stream's slot and its deadline lent out;
    /// the deadline `f` leaves is the stream's.
    fn drive<'c, R>(
        &mut self,
        ctx: &mut Ctx<'c>,
        slot: usize,
        out: &mut Out,
        (sni, tls): (Option<&str>, Option<rustls::ProtocolVersion>),
        f: impl FnOnce(&mut Stream, &mut Ctx<'c>, &mut Client<'_>, &mut Instant) -> R,
    ) -> R {
        ctx.slot = slot as u32;
        let mut client = Client {
            flow: &mut self.flow,
            out,
            sni,
            tls,
        };
        let mut deadline = client.flow.deadline;
        let result = f(&mut self.stream, ctx, &mut client, &mut deadline);
        self.flow.deadline = deadline;
        ctx.slot = 0;
        result
    }
}

/// How the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the client's preface.
    Preface,
    Open,
    /// We sent GOAWAY (drain, a limit, or the client's GOAWAY): streams up to `last` finish,
    /// no new one starts; the connection closes when none is left.
    GoingAway {
        last: u32,
    },
    /// A connection error: GOAWAY is queued; close once it is written.
    Failed,
}

/// The HTTP/2 side of a client connection.
pub struct H2 {
    input: Option<Buf>,
    out: Out,
    state: State,
    block: frame::Block,
    decoder: Decoder,
    list: HeaderList,
    streams: Slab<Entry>,
    /// Highest client stream id seen.
    last_id: u32,
    /// The client's first SETTINGS, which completes its preface (§3.4), came.
    settings_seen: bool,
    /// Our receive window on the connection.
    recv: RecvWindow,
    /// The client's SETTINGS_INITIAL_WINDOW_SIZE.
    peer_window: u32,
    limits: Limits,
    opened: u32,
    resets: Rate,
    emitted: u32,
    control: Rate,
    /// WINDOW_UPDATEs taken as acknowledgements of our DATA (see `count_window_update`).
    window_updates: u64,
    /// A deadline of the connection itself (idle: `keepalive_timeout`; none while streams run).
    idle_deadline: Option<Instant>,
}

/// What a run of the connection came to.
pub enum Ran {
    /// Waiting for readiness or a deadline.
    Idle,
    /// Stopped at the round cap with work left.
    More,
}

fn settings_ours(limits: &Limits, max_head: usize) -> [Setting; 6] {
    [
        Setting::HeaderTableSize(HEADER_TABLE),
        Setting::EnablePush(false),
        Setting::MaxConcurrentStreams(limits.max_concurrent),
        Setting::InitialWindowSize(STREAM_WINDOW),
        Setting::MaxHeaderListSize(u32::try_from(max_head).unwrap_or(u32::MAX)),
        Setting::EnableConnectProtocol(true),
    ]
}

impl H2 {
    /// A new HTTP/2 connection: our SETTINGS (and the connection window beyond its first 64 KiB)
    /// go out first; the client's preface is expected next. `input` holds what was read already
    /// (h2c: the preface itself).
    pub fn new(
        input: Option<Buf>,
        limits: Limits,
        max_head: usize,
        now: Instant,
        keepalive: Duration,
    ) -> H2 {
        let mut out = Out {
            bytes: Vec::with_capacity(256),
            at: 0,
            send: SendWindow::new(frame::DEFAULT_WINDOW),
            encoder: Encoder::new(),
            block: Vec::new(),
            max_frame: frame::DEFAULT_MAX_FRAME_SIZE,
            data_frames: 0,
        };
        frame::settings(&mut out.bytes, &settings_ours(&limits, max_head));
        let mut recv = RecvWindow::new(frame::DEFAULT_WINDOW, CONN_WINDOW);
        if let Some(increment) = recv.update() {
            out.put(&frame::window_update(0, increment));
        }
        H2 {
            input,
            out,
            state: State::Preface,
            block: frame::Block::default(),
            decoder: Decoder::new(HEADER_TABLE as usize),
            list: HeaderList::new(max_head),
            streams: Slab::new(),
            last_id: 0,
            settings_seen: false,
            recv,
            peer_window: frame::DEFAULT_WINDOW,
            limits,
            opened: 0,
            resets: Rate::default(),
            emitted: 0,
            control: Rate::default(),
            window_updates: 0,
            idle_deadline: Some(now + keepalive),
        }
    }

    /// Streams under way.
    pub fn streams(&self) -> usize {
        self.streams.len()
    }

    /// The earliest deadline: a stream's, or the connection's own.
    pub fn deadline(&self) -> Option<Instant> {
        self.streams
            .iter()
            .map(|(_, e)| e.flow.deadline)
            .chain(self.idle_deadline)
            .min()
    }

    /// Frames wait for the socket.
    pub fn wants_write(&self) -> bool {
        self.out.pending() > 0
    }

    /// The drain: GOAWAY with the last stream id; streams under way finish, none starts.
    pub fn go_away(&mut self, now: Instant, keepalive: Duration) {
        if matches!(self.state, State::Open | State::Preface) {
            self.state = State::GoingAway { last: self.last_id };
            self.out
                .put(&frame::goaway(self.last_id, ErrorCode::NoError));
            if self.streams.is_empty() {
                self.idle_deadline = Some(now + keepalive.min(Duration::from_secs(1)));
            }
        }
    }

    /// A connection error: GOAWAY with its code, then the connection closes.
    fn fail(&mut self, code: ErrorCode, why: &str) {
        if self.state != State::Failed {
            log::debug!("HTTP/2 connection error {code}: {why}");
            // §6.8: the last stream id never grows; streams past a GOAWAY were refused
            let last = match self.state {
                State::GoingAway { last } => last,
                _ => self.last_id,
            };
            self.out.put(&frame::goaway(last, code));
            self.state = State::Failed;
        }
    }

    /// Gives back every stream's resources (the connection closes for `reason`).
    pub fn release(&mut self, ctx: &mut Ctx<'_>, reason: CloseReason) {
        for (slot, e) in self.streams.iter_mut() {
            ctx.slot = slot as u32;
            e.stream.release(ctx, reason);
        }
        self.streams.clear();
        ctx.slot = 0;
        ctx.bufs.put_slot(&mut self.input);
    }

    /// Drives the connection as far as readiness allows.
    pub fn run(
        &mut self,
        ctx: &mut Ctx<'_>,
        t: &mut Transport,
        side: &mut Side,
        peer: IpAddr,
    ) -> Result<Ran, Close> {
        let mut ran = Ran::More;
        // After an event of one stream's backend connection, that stream alone runs, as long
        // as nothing else moves: input from the client (frames, window updates) or a write that
        // made room for streams waiting on it may concern any stream, and then all run.
        let mut only = ctx.woken.map(|slot| slot as usize);
        // bounded: a fixed number of rounds per wake-up, as for HTTP/1.1
        for _ in 0..crate::stream::MAX_ROUNDS {
            let mut moved = self.read(ctx, t, side, peer)?;
            if moved {
                only = None;
            }
            moved |= self.run_streams(ctx, t, only);
            // Frames gather in `out` while the streams move, and go out together once they are
            // done for now (or `out` holds a good part of a window): a response's HEADERS and
            // DATA, and the responses of several streams, share one TLS record and one write.
            if !moved && ctx.gathering && self.out.pending() > 0 && self.out.pending() < FLUSH_AT {
                // more of this round's events may bring more answers: write them all at once
                // when the worker runs the connection again, after the round's last event
                return Ok(Ran::More);
            }
            if !moved || self.out.pending() >= FLUSH_AT {
                let wrote = self.flush(t, side)?;
                if wrote {
                    only = None;
                }
                moved |= wrote;
            }
            if self.state == State::Failed && !self.wants_write() {
                return Err(Close(CloseReason::Done));
            }
            if let State::GoingAway { .. } = self.state {
                if self.streams.is_empty() && !self.wants_write() {
                    return Err(Close(CloseReason::Done));
                }
            }
            if !moved {
                ran = Ran::Idle;
                break;
            }
        }
        if matches!(ran, Ran::More) {
            // out of rounds with frames still gathered
            self.flush(t, side)?;
        }
        if self.streams.is_empty() && self.idle_deadline.is_none() {
            self.idle_deadline = Some(ctx.now + ctx.cfg.timeouts.keepalive);
        }
        Ok(ran)
    }

    /// Writes what waits for the socket.
    fn flush(&mut self, t: &mut Transport, side: &mut Side) -> Result<bool, Close> {
        let mut moved = false;
        // bounded: each round writes bytes or stops
        for _ in 0..16 {
            if !side.writable {
                break;
            }
            if t.wants_flush() {
                match t.flush() {
                    Io::Done(_) => {}
                    Io::Blocked => {
                        side.writable = false;
                        break;
                    }
                    Io::Eof => return Err(Close(CloseReason::ClientClosed)),
                    Io::Failed(_) => return Err(Close(CloseReason::ClientError)),
                }
            }
            let Some(pending) = self.out.bytes.get(self.out.at..).filter(|p| !p.is_empty()) else {
                break;
            };
            let io = t.write(pending);
            side.after_write(&io, pending.len());
            match io {
                Io::Done(n) => {
                    self.out.wrote(n);
                    moved = true;
                }
                Io::Blocked => break,
                Io::Eof => return Err(Close(CloseReason::ClientClosed)),
                Io::Failed(_) => return Err(Close(CloseReason::ClientError)),
            }
        }
        if self.out.pending() == 0 && self.out.bytes.capacity() > 64 * 1024 {
            self.out.bytes = Vec::new();
        }
        Ok(moved)
    }

    /// Reads the socket and handles every whole frame.
    fn read(
        &mut self,
        ctx: &mut Ctx<'_>,
        t: &mut Transport,
        side: &mut Side,
        peer: IpAddr,
    ) -> Result<bool, Close> {
        let mut moved = false;
        if side.readable && !side.eof && self.state != State::Failed {
            let buf = self.input.get_or_insert_with(|| ctx.bufs.get());
            let got = t.read_into(buf);
            side.after_read(&got);
            match got {
                Got::Bytes { n, .. } => {
                    ctx.stats.bytes_in(n);
                    moved = n > 0;
                }
                Got::Full | Got::Blocked => {}
                Got::Eof => {}
                Got::Failed(_) => return Err(Close(CloseReason::ClientError)),
            }
        }
        let origin = Origin {
            ip: peer,
            sni: t.sni(),
            tls: t.tls_version(),
        };
        moved |= self.frames(ctx, origin);
        ctx.bufs.put_if_empty(&mut self.input);
        if side.eof && self.state != State::Failed {
            // the client closed its side: the streams can no longer be answered
            return Err(Close(CloseReason::ClientClosed));
        }
        Ok(moved)
    }

    /// Handles the whole frames in the input.
    fn frames(&mut self, ctx: &mut Ctx<'_>, peer: Origin<'_>) -> bool {
        let mut moved = false;
        let mut input = self.input.take();
        // bounded: each round consumes a frame or stops
        while let Some(buf) = input.as_mut().filter(|b| !b.is_empty()) {
            if self.state == State::Failed {
                break;
            }
            if self.state == State::Preface {
                let bytes = buf.bytes();
                let n = bytes.len().min(frame::PREFACE.len());
                if bytes.get(..n) != frame::PREFACE.get(..n) {
                    self.fail(ErrorCode::ProtocolError, "no client preface");
                    break;
                }
                if n < frame::PREFACE.len() {
                    break;
                }
                buf.consume(n);
                self.state = State::Open;
                moved = true;
                continue;
            }
            if !self.settings_seen {
                // §3.4: the preface ends with a SETTINGS frame (not an ACK); anything else first
                // is an invalid preface
                if let Some(head) = frame::Head::read(buf.bytes()) {
                    if head.kind != frame::kind::SETTINGS || head.flags & frame::flag::ACK != 0 {
                        self.fail(ErrorCode::ProtocolError, "no SETTINGS after the preface");
                        break;
                    }
                    self.settings_seen = true;
                }
            }
            let parsed = match frame::parse(buf.bytes(), frame::DEFAULT_MAX_FRAME_SIZE) {
                Ok(p) => p,
                Err(e) => {
                    self.fail(e.code(), e.why());
                    break;
                }
            };
            let len = match parsed {
                Parsed::Need { .. } => break,
                Parsed::Reset { error, len } => {
                    let kind = frame::Head::read(buf.bytes()).map_or(0, |h| h.kind);
                    match error {
                        // §5.1: on an idle stream only HEADERS and PRIORITY may come, and an
                        // idle stream gets no RST_STREAM (§6.4): a WINDOW_UPDATE of 0 there is
                        // a frame on an idle stream (PRIORITY keeps its stream error, §6.3)
                        H2Error::Stream { id, .. }
                            if id > self.last_id && kind != frame::kind::PRIORITY =>
                        {
                            self.fail(ErrorCode::ProtocolError, "a frame on an idle stream");
                            break;
                        }
                        _ => self.stream_error(ctx, error),
                    }
                    len
                }
                Parsed::Frame { frame, len } => {
                    if let Err(e) = self.frame(ctx, frame, peer) {
                        match e {
                            H2Error::Connection { code, why } => self.fail(code, why),
                            H2Error::Stream { .. } => self.stream_error(ctx, e),
                        }
                    }
                    len
                }
            };
            buf.consume(len);
            moved = true;
        }
        self.input = input;
        moved
    }

    /// A stream error: RST_STREAM, and the stream (if any) is forgotten.
    fn stream_error(&mut self, ctx: &mut Ctx<'_>, e: H2Error) {
        let H2Error::Stream { id, code, why } = e else {
            return;
        };
        log::debug!("HTTP/2 stream {id}: {code}: {why}");
        self.emitted = self.emitted.saturating_add(1);
        if self.emitted > self.limits.emitted_resets {
            self.fail(ErrorCode::EnhanceYourCalm, "too many stream errors");
            return;
        }
        self.out.put(&frame::rst_stream(id, code));
        if let Some(slot) = self.slot_of(id) {
            self.forget(ctx, slot, CloseReason::ClientError);
        }
    }

    fn slot_of(&self, id: u32) -> Option<usize> {
        self.streams
            .iter()
            .find(|(_, e)| e.flow.id == id)
            .map(|(slot, _)| slot)
    }

    /// Ends a stream without an answer (reset either way): its backend request is cancelled.
    fn forget(&mut self, ctx: &mut Ctx<'_>, slot: usize, reason: CloseReason) {
        if let Some(mut e) = self.streams.try_remove(slot) {
            ctx.slot = slot as u32;
            e.stream.release(ctx, reason);
            ctx.slot = 0;
            let held = usize::try_from(e.flow.recv.held()).unwrap_or(usize::MAX);
            self.recv.release(held);
        }
    }

    /// Runs every stream once (`only`: the stream in that slot); true when any moved.
    fn run_streams(&mut self, ctx: &mut Ctx<'_>, t: &Transport, only: Option<usize>) -> bool {
        let mut moved = false;
        let sni = t.sni();
        let tls = t.tls_version();
        let slots = match only {
            Some(slot) => slot..slot.saturating_add(1),
            None => 0..self.streams.capacity(),
        };
        // bounded: the slab's capacity (at most the concurrent-streams limit, plus a few)
        for slot in slots {
            if self.streams.contains(slot) {
                moved |= self.run_stream(ctx, slot, sni, tls);
            }
        }
        moved
    }

    fn run_stream(
        &mut self,
        ctx: &mut Ctx<'_>,
        slot: usize,
        sni: Option<&str>,
        tls: Option<rustls::ProtocolVersion>,
    ) -> bool {
        let Some(e) = self.streams.get_mut(slot) else {
            return false;
        };
        let (result, moved_any) = e.drive(
            ctx,
            slot,
            &mut self.out,
            (sni, tls),
            |stream, ctx, client, deadline| {
                let result = stream.run(ctx, client, deadline);
                let moved_any = matches!(
                    result,
                    Ok(Outcome::Step(Step::Progress) | Outcome::Finished(_))
                );
                if moved_any {
                    stream.touch(ctx, deadline);
                }
                (result, moved_any)
            },
        );
        let reset = e.flow.reset;
        match result {
            Ok(Outcome::Finished(_)) => {
                self.finish_stream(ctx, slot, true);
                return true;
            }
            Ok(Outcome::Step(_)) if reset.is_none() => {}
            Ok(Outcome::Step(_)) | Err(_) => {
                self.finish_stream(ctx, slot, false);
                return true;
            }
        }
        self.credit(slot);
        moved_any
    }

    /// Gives the client credit for what a stream let go of.
    fn credit(&mut self, slot: usize) {
        let Some(e) = self.streams.get_mut(slot) else {
            return;
        };
        let now = e.stream.inbox_len();
        if now < e.flow.pipe_seen {
            let left = e.flow.pipe_seen - now;
            e.flow.recv.release(left);
            self.recv.release(left);
        }
        e.flow.pipe_seen = now;
        if !e.flow.ended {
            if let Some(increment) = e.flow.recv.update() {
                self.out.put(&frame::window_update(e.flow.id, increment));
            }
        }
        if let Some(increment) = self.recv.update() {
            self.out.put(&frame::window_update(0, increment));
        }
    }

    /// A stream is over: `answered` (its response went out whole: END_STREAM unless sent), or
    /// not (reset).
    fn finish_stream(&mut self, ctx: &mut Ctx<'_>, slot: usize, answered: bool) {
        let Some(mut e) = self.streams.try_remove(slot) else {
            return;
        };
        match (answered, e.flow.reset) {
            (true, None) => {
                if !matches!(e.flow.resp, Resp::Done) {
                    self.end_response(&mut e.flow);
                }
                if !e.flow.ended {
                    // the answer came before the whole request: the rest is not wanted
                    self.out
                        .put(&frame::rst_stream(e.flow.id, ErrorCode::NoError));
                }
            }
            (_, code) => {
                self.out.put(&frame::rst_stream(
                    e.flow.id,
                    code.unwrap_or(ErrorCode::InternalError),
                ));
            }
        }
        ctx.slot = slot as u32;
        e.stream.release(ctx, CloseReason::ClientClosed);
        ctx.slot = 0;
        let held = usize::try_from(e.flow.recv.held()).unwrap_or(usize::MAX);
        self.recv.release(held);
        if self.streams.is_empty() {
            self.idle_deadline = Some(match self.state {
                State::GoingAway { .. } => ctx.now,
                _ => ctx.now + ctx.cfg.timeouts.keepalive,
            });
        }
    }

    /// END_STREAM, with the response's trailers when a chunked body had some.
    fn end_response(&mut self, flow: &mut Flow) {
        let section = std::mem::take(&mut flow.resp_trailers);
        self.out.block.clear();
        let fields = if section.len() > 2 {
            convert::response_trailers(&section, &mut self.out.encoder, &mut self.out.block)
                .unwrap_or(0)
        } else {
            0
        };
        if fields > 0 {
            frame::headers(
                &mut self.out.bytes,
                flow.id,
                &self.out.block,
                true,
                self.out.max_frame,
            );
        } else {
            frame::data(&mut self.out.bytes, flow.id, &[], true);
        }
        flow.resp = Resp::Done;
    }

    /// A deadline passed: the streams past theirs time out; an idle connection goes away.
    pub fn timed_out(&mut self, ctx: &mut Ctx<'_>, t: &Transport) -> Result<(), Close> {
        let now = ctx.now;
        if self.idle_deadline.is_some_and(|d| d <= now) && self.streams.is_empty() {
            if let State::GoingAway { .. } | State::Failed = self.state {
                return Err(Close(CloseReason::Idle));
            }
            self.go_away(now, Duration::ZERO);
            self.idle_deadline = Some(now + Duration::from_secs(1));
            return Ok(());
        }
        let sni = t.sni();
        let tls = t.tls_version();
        // bounded: the slab's capacity
        for slot in 0..self.streams.capacity() {
            let Some(e) = self
                .streams
                .get_mut(slot)
                .filter(|e| e.flow.deadline <= now)
            else {
                continue;
            };
            let result = e.drive(ctx, slot, &mut self.out, (sni, tls), |s, ctx, c, d| {
                s.timed_out(ctx, c, d)
            });
            if result.is_err() || e.flow.reset.is_some() {
                if e.flow.reset.is_none() {
                    e.flow.reset = Some(ErrorCode::Cancel);
                }
                self.finish_stream(ctx, slot, false);
            }
        }
        Ok(())
    }

    /// A queued stream may get its backend now.
    pub fn dequeue(&mut self, ctx: &mut Ctx<'_>, slot: u32) -> Result<bool, Close> {
        let Some(e) = self.streams.get_mut(slot as usize) else {
            return Ok(true);
        };
        let left = e.drive(
            ctx,
            slot as usize,
            &mut self.out,
            (None, None),
            |s, ctx, c, d| s.dequeue(ctx, c, d),
        );
        match left {
            Ok(left) => Ok(left),
            Err(_) => {
                self.finish_stream(ctx, slot as usize, false);
                Ok(true)
            }
        }
    }

    /// The stream in `slot` is queued.
    pub fn is_queued(&self, slot: u32) -> bool {
        self.streams
            .get(slot as usize)
            .is_some_and(|e| e.stream.phase() == crate::stream::Phase::Queued)
    }
}
