//! Frames in: what each frame the client sends does to the connection and its streams (a
//! request's HEADERS starts a stream, DATA feeds its request pipe, trailers end it; SETTINGS,
//! PING, WINDOW_UPDATE, RST_STREAM, GOAWAY), with the per-second counts of control frames that
//! bound floods. `conn.rs` holds the connection, the round that reads and writes, and the
//! streams' runs.

use super::*;

impl H2 {
    /// One frame.
    pub(super) fn frame(
        &mut self,
        ctx: &mut Ctx<'_>,
        f: Frame<'_>,
        peer: Origin<'_>,
    ) -> Result<(), H2Error> {
        if let Frame::Continuation { .. } = f {
        } else {
            self.block.check_other()?;
        }
        match f {
            Frame::Data {
                stream,
                data,
                end_stream,
                flow_len,
            } => self.data(ctx, stream, data, end_stream, flow_len),
            Frame::Headers {
                stream,
                block,
                end_stream,
                end_headers,
                ..
            } => {
                let max = ctx.cfg.limits.max_head.max(4096) * 2;
                let gathered = self
                    .block
                    .headers(stream, block, end_stream, end_headers, max)?;
                let done = decode(&mut self.decoder, &mut self.list, gathered)?;
                self.block_done(ctx, done, peer)
            }
            Frame::Continuation {
                stream,
                block,
                end_headers,
            } => {
                let max = ctx.cfg.limits.max_head.max(4096) * 2;
                let gathered = self.block.continuation(stream, block, end_headers, max)?;
                let done = decode(&mut self.decoder, &mut self.list, gathered)?;
                self.block_done(ctx, done, peer)
            }
            Frame::Priority { stream, priority } => {
                if priority.dependency == stream {
                    return Err(H2Error::stream(
                        stream,
                        ErrorCode::ProtocolError,
                        "stream depends on itself",
                    ));
                }
                Ok(())
            }
            Frame::RstStream { stream, .. } => self.rst_stream(ctx, stream),
            Frame::Settings { ack, params } => {
                if ack {
                    return Ok(());
                }
                self.count_control(ctx.now)?;
                for p in params.iter() {
                    self.setting(p)?;
                }
                self.out.put(&frame::settings_ack());
                Ok(())
            }
            Frame::Ping { ack, data } => {
                if !ack {
                    self.count_control(ctx.now)?;
                    self.out.put(&frame::ping_ack(data));
                }
                Ok(())
            }
            Frame::GoAway { .. } => {
                // the client will open no more streams: finish those under way
                if let State::Open = self.state {
                    self.state = State::GoingAway { last: self.last_id };
                }
                Ok(())
            }
            Frame::WindowUpdate { stream, increment } => {
                self.window_update(ctx.now, stream, increment)
            }
            Frame::Unknown { .. } => Ok(()),
        }
    }

    /// The client reset a stream: it is forgotten (counted: resets too fast end the connection).
    fn rst_stream(&mut self, ctx: &mut Ctx<'_>, stream: u32) -> Result<(), H2Error> {
        if stream > self.last_id {
            return Err(H2Error::conn(
                ErrorCode::ProtocolError,
                "RST_STREAM on an idle stream",
            ));
        }
        if let Some(slot) = self.slot_of(stream) {
            if self.resets.over(ctx.now, self.limits.resets_per_second) {
                return Err(H2Error::conn(
                    ErrorCode::EnhanceYourCalm,
                    "streams reset too fast",
                ));
            }
            self.forget(ctx, slot, CloseReason::ClientClosed);
        }
        Ok(())
    }

    /// Credit for the connection (`stream` 0: every stream may write again) or one stream.
    fn window_update(&mut self, now: Instant, stream: u32, increment: u32) -> Result<(), H2Error> {
        self.count_window_update(now)?;
        if stream == 0 {
            self.out.send.grow(increment, 0)?;
            for (_, e) in self.streams.iter_mut() {
                e.flow.side.writable = true;
            }
            return Ok(());
        }
        if let Some(slot) = self.slot_of(stream) {
            if let Some(e) = self.streams.get_mut(slot) {
                e.flow.send.grow(increment, stream)?;
                e.flow.side.writable = true;
            }
        } else if stream > self.last_id {
            return Err(H2Error::conn(
                ErrorCode::ProtocolError,
                "WINDOW_UPDATE on an idle stream",
            ));
        }
        Ok(())
    }

    /// A field block gathered whole (`Some((stream, end_stream))`): a new request, or the
    /// trailers of an open one.
    fn block_done(
        &mut self,
        ctx: &mut Ctx<'_>,
        done: Option<(u32, bool)>,
        peer: Origin<'_>,
    ) -> Result<(), H2Error> {
        let Some((id, end_stream)) = done else {
            return Ok(());
        };
        if let Some(slot) = self.slot_of(id) {
            return self.trailers(slot, id, end_stream);
        }
        self.admit(ctx, id)?;
        self.start(ctx, id, end_stream, peer)
    }

    fn count_control(&mut self, now: Instant) -> Result<(), H2Error> {
        if self.control.over(now, self.limits.control_per_second) {
            return Err(H2Error::conn(
                ErrorCode::EnhanceYourCalm,
                "too many control frames",
            ));
        }
        Ok(())
    }

    /// A WINDOW_UPDATE (any stream). A client acknowledges the DATA it reads with them, as
    /// often as it likes: one for its stream and one for the connection per DATA frame we sent,
    /// and one per stream it opened (to widen that stream's window), are what a client does, and
    /// free; only WINDOW_UPDATEs beyond those count with the control frames (a flood). A
    /// per-second count alone would cut off a client with the protocol's default 64 KiB
    /// connection window (an update every 32 KiB, as nghttp2 and Python's h2 send them) as soon
    /// as it downloads faster than 6 MiB/s.
    fn count_window_update(&mut self, now: Instant) -> Result<(), H2Error> {
        let earned = self
            .out
            .data_frames
            .saturating_mul(2)
            .saturating_add(u64::from(self.opened));
        if self.window_updates < earned {
            self.window_updates += 1;
            return Ok(());
        }
        self.count_control(now)
    }

    fn setting(&mut self, s: Setting) -> Result<(), H2Error> {
        match s {
            Setting::InitialWindowSize(v) => {
                let old = self.peer_window;
                self.peer_window = v;
                for (_, e) in self.streams.iter_mut() {
                    e.flow.send.adjust(old, v)?;
                    e.flow.side.writable = true;
                }
            }
            Setting::MaxFrameSize(v) => self.out.max_frame = v,
            Setting::HeaderTableSize(_) => self.out.encoder.peer_table_size(),
            _ => {}
        }
        Ok(())
    }

    /// DATA for `id`.
    fn data(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: u32,
        data: &[u8],
        end_stream: bool,
        flow_len: u32,
    ) -> Result<(), H2Error> {
        self.recv.receive(flow_len, 0)?;
        let Some(slot) = self.slot_of(id) else {
            // credit back at once: nothing is held
            self.recv.release(flow_len as usize);
            return Err(if id > self.last_id {
                H2Error::conn(ErrorCode::ProtocolError, "DATA on an idle stream")
            } else {
                H2Error::stream(id, ErrorCode::StreamClosed, "DATA on a closed stream")
            });
        };
        if data.is_empty() && !end_stream {
            self.count_control(ctx.now)?;
        }
        let Some(e) = self.streams.get_mut(slot) else {
            return Ok(());
        };
        if e.flow.ended {
            self.recv.release(flow_len as usize);
            return Err(H2Error::stream(
                id,
                ErrorCode::StreamClosed,
                "DATA after END_STREAM",
            ));
        }
        if let Err(past) = e.flow.recv.receive(flow_len, id) {
            // the frame counted against the connection window (§6.9) and is discarded: its
            // credit comes back, or every such stream error would shrink the window for good
            self.recv.release(flow_len as usize);
            return Err(past);
        }
        if let Err(Refused::Malformed(why)) = e.flow.length.data(data.len(), end_stream) {
            return Err(H2Error::stream(id, ErrorCode::ProtocolError, why));
        }
        let padding = flow_len as usize - data.len();
        e.flow.recv.release(padding);
        self.recv.release(padding);
        if !data.is_empty() {
            if e.stream.deliver(ctx.bufs, data) < data.len() {
                return Err(H2Error::stream(
                    id,
                    ErrorCode::InternalError,
                    "request pipe full",
                ));
            }
            e.flow.fresh += data.len();
            e.flow.pipe_seen += data.len();
            e.flow.side.readable = true;
        }
        if end_stream {
            e.flow.end_request();
        }
        Ok(())
    }

    /// A new stream's HEADERS: its id must be new, and there must be room for it.
    fn admit(&mut self, ctx: &Ctx<'_>, id: u32) -> Result<(), H2Error> {
        if id % 2 == 0 || id <= self.last_id {
            return Err(H2Error::conn(
                ErrorCode::ProtocolError,
                "HEADERS on a stream id not new",
            ));
        }
        self.last_id = id;
        if let State::GoingAway { last } = self.state {
            if id > last {
                return Err(H2Error::stream(id, ErrorCode::RefusedStream, "going away"));
            }
        }
        if self.streams.len() >= self.limits.max_concurrent as usize {
            return Err(H2Error::stream(
                id,
                ErrorCode::RefusedStream,
                "too many concurrent streams",
            ));
        }
        self.opened = self.opened.saturating_add(1);
        if self.opened >= self.limits.max_streams {
            // this one is served; the client opens a new connection for more
            self.go_away(ctx.now, ctx.cfg.timeouts.keepalive);
        }
        Ok(())
    }

    /// Trailers of a request (a HEADERS on an open stream: it must end it).
    fn trailers(&mut self, slot: usize, id: u32, end_stream: bool) -> Result<(), H2Error> {
        let Some(e) = self.streams.get_mut(slot) else {
            return Ok(());
        };
        if !end_stream || e.flow.ended {
            return Err(H2Error::stream(
                id,
                ErrorCode::ProtocolError,
                "HEADERS in the middle of a request",
            ));
        }
        if let Err(Refused::Malformed(why)) = e.flow.length.data(0, true) {
            return Err(H2Error::stream(id, ErrorCode::ProtocolError, why));
        }
        if e.flow.chunked {
            let mut section = Vec::new();
            if convert::request_trailers(&self.list, &mut section).is_ok() {
                e.flow.trailers = Some(section);
            }
        }
        e.flow.end_request();
        Ok(())
    }

    /// A new stream from the decoded header list.
    fn start(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: u32,
        end_stream: bool,
        peer: Origin<'_>,
    ) -> Result<(), H2Error> {
        // the request id generator's bytes: unique per worker, unpredictable enough for a
        // WebSocket key (RFC 6455 §4.1 asks for a nonce, not a secret)
        let mut id_hex = [0u8; 32];
        ctx.ids.next(&mut id_hex);
        let mut nonce = [0u8; 16];
        nonce.copy_from_slice(&id_hex[16..]);
        let opts = RequestOptions {
            end_stream,
            connect_protocol: true,
            max_headers: ctx.cfg.limits.max_headers,
            nonce,
        };
        let mut head = ctx.bufs.get();
        let converted = convert::request(&self.list, &opts, &mut head);
        let deadline = ctx.now + ctx.cfg.timeouts.client_header;
        let mut flow = Flow::new(id, self.peer_window, STREAM_WINDOW, deadline);
        flow.ended = end_stream;
        let mut stream = Stream::new();
        let started = match converted {
            Ok(req) => {
                flow.chunked = req.chunked;
                flow.terminated = end_stream && !req.chunked;
                flow.length = BodyLength::new(req.content_length);
                flow.answering = convert::Answering {
                    method: req.method,
                    extended_connect: req.extended_connect,
                };
                flow.tunnel = req.extended_connect;
                *stream.inbox() = Some(head);
                Some(req.head_len)
            }
            Err(Refused::TooLarge) => {
                ctx.bufs.put(head);
                None
            }
            Err(Refused::Malformed(why)) => {
                ctx.bufs.put(head);
                return Err(H2Error::stream(id, ErrorCode::ProtocolError, why));
            }
        };
        flow.pipe_seen = stream.inbox_len();
        let entry = self.streams.vacant_entry();
        let slot = entry.key();
        let e = entry.insert(Entry { stream, flow });
        ctx.slot = slot as u32;
        let mut deadline = e.flow.deadline;
        let mut client = Client {
            flow: &mut e.flow,
            out: &mut self.out,
            sni: peer.sni,
            tls: peer.tls,
        };
        let from = Opening {
            peer: peer.ip,
            began: ctx.now,
            http2: true,
        };
        let result = match started {
            Some(end) => e
                .stream
                .start(ctx, &mut client, &mut deadline, end, from)
                .map(|s| s == Started::Request),
            None => e
                .stream
                .reject(
                    ctx,
                    &client,
                    &mut deadline,
                    Status::HeaderFieldsTooLarge,
                    peer.ip,
                )
                .map(|_| true),
        };
        e.flow.deadline = deadline;
        ctx.slot = 0;
        self.idle_deadline = None;
        if result.is_err() {
            self.finish_stream(ctx, slot, false);
        }
        Ok(())
    }
}

/// Decodes a field block once it is whole: `Some((stream, end_stream))`, or `None` while
/// CONTINUATION frames must follow. Every block is decoded, refused or not: the HPACK state must
/// follow the client's.
fn decode(
    decoder: &mut Decoder,
    list: &mut HeaderList,
    gathered: frame::Gathered<'_>,
) -> Result<Option<(u32, bool)>, H2Error> {
    match gathered {
        frame::Gathered::Open => Ok(None),
        frame::Gathered::Done {
            stream,
            block,
            end_stream,
        } => {
            decoder.decode(block, list)?;
            Ok(Some((stream, end_stream)))
        }
    }
}
