//! The response side of a stream: what the backend sends is read into the response pipe, its
//! heads parsed and rewritten for the client (interim 1xx ones passed on, the final one
//! committing the stream), its body framed (de-chunked for an HTTP/1.0 client), and the end told
//! apart from a cut.

use std::time::Instant;

use super::backend::Failure;
use super::{Client, Close, Phase, Run, Step, Stream, MAX_INTERIM, MAX_ROUNDS};
use crate::context::Ctx;
use crate::health::{outlier, passive};
use crate::http::request;
use crate::http::response::{self, Relay};
use crate::http::{Body, Step as BodyStep};
use crate::stats::CloseReason;
use crate::stream::relay::Broke;
use crate::transport::Got;

/// How reading a response head ended.
enum Head {
    /// Heads (and body bytes) processed as far as they go.
    Read,
    /// The backend's answer cannot be relayed: a 502 if nothing went out yet.
    Bad,
}

impl Stream {
    /// Response side of the exchange: read the backend, parse heads, frame the body.
    pub(super) fn backend_to_client<C: Client>(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: &mut C,
        deadline: &mut Instant,
    ) -> Run {
        let Some(up) = self.upstream.and_then(|k| ctx.upstreams.get_mut(k.get())) else {
            return Ok(Step::Waiting);
        };
        if !up.side.readable {
            return Ok(Step::Waiting);
        }
        match self.resp.pull(up, ctx.bufs) {
            Ok(Got::Bytes { .. }) => {}
            Ok(Got::Eof) => return self.backend_closed(ctx, client, deadline, false),
            Ok(_) => return Ok(Step::Waiting),
            Err(Broke::From(_) | Broke::To(_)) => {
                if let Some(error) = up.transport.tls_error() {
                    log::warn!(
                        "backend {}: TLS failed: {}",
                        up.backend.url,
                        crate::tls::handshake_failure_reason(error)
                    );
                    if up.transport.is_handshaking() {
                        // nothing reached the backend's application: as safe to retry as a
                        // connection that could not be made
                        return self.upstream_failed(ctx, client, deadline, Failure::Connect);
                    }
                }
                return self.backend_closed(ctx, client, deadline, true);
            }
            Err(Broke::Frame(never)) => match never {},
        }
        if self.ex.replay {
            // the backend is answering: the request will not be sent again
            self.stop_replay(ctx);
        }
        match self.process_response(ctx)? {
            Head::Read => Ok(Step::Progress),
            Head::Bad => self.upstream_failed(ctx, client, deadline, Failure::BadResponse),
        }
    }

    /// Parses response heads and frames the body bytes in the response pipe.
    fn process_response(&mut self, ctx: &mut Ctx<'_>) -> Result<Head, Close> {
        let cookie_id = self
            .upstream
            .and_then(|k| ctx.upstreams.get_mut(k.get()))
            .map_or(0, |up| up.backend.cookie_id());
        // bounded: a few interim (1xx) responses may precede the final one
        for round in 0..=MAX_ROUNDS {
            if self.ex.committed || self.phase != Phase::Exchange {
                break;
            }
            if round == MAX_ROUNDS || self.ex.interims > MAX_INTERIM {
                // a backend that sends interim responses without end
                return Ok(Head::Bad);
            }
            let ready = self.resp.ready();
            let Some(buf) = self.resp.buf.as_mut() else {
                return Ok(Head::Read);
            };
            let Some(unframed) = buf.bytes().get(ready..) else {
                return Ok(Head::Bad);
            };
            let end = match request::find_head_end(unframed, self.scan as usize) {
                Ok(Some(end)) => end,
                Ok(None) if buf.is_full() => return Ok(Head::Bad),
                Ok(None) => {
                    self.scan = unframed.len() as u32;
                    return Ok(Head::Read);
                }
                Err(_) => return Ok(Head::Bad),
            };
            let answering = response::Answering {
                method: self.ex.method,
                http10: self.ex.http10,
                // an answer that comes before the whole request body did ends the connection
                keep_alive: self.ex.keep_alive && !ctx.draining && self.req_body.is_done(),
                upgrade: self.ex.upgrade,
                max_headers: ctx.cfg.limits.max_headers,
                set_cookie: match (
                    &ctx.pools.settings(self.pool).sticky_cookie,
                    self.ex.set_cookie,
                ) {
                    (Some(name), true) => Some(response::SetCookie {
                        name: name.as_bytes(),
                        id: cookie_id,
                        max_age: ctx.pools.settings(self.pool).sticky_max_age,
                        secure: ctx.cfg.tls,
                    }),
                    _ => None,
                },
                added: crate::context::added(ctx.date, ctx.cfg),
            };
            let Some(head_bytes) = unframed.get(..end) else {
                return Ok(Head::Bad);
            };
            let Ok((head, len)) = response::rewrite(head_bytes, &answering, ctx.scratch) else {
                return Ok(Head::Bad);
            };
            self.scan = 0;
            if head.interim {
                self.ex.interims = self.ex.interims.saturating_add(1);
            }
            if head.interim && self.ex.http10 {
                // HTTP/1.0 clients do not get interim responses
                buf.remove(ready, len);
                continue;
            }
            if !buf.replace_at(ready, len, ctx.scratch) {
                return Ok(Head::Bad);
            }
            self.resp.set_ready(self.resp.ready() + ctx.scratch.len());
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
                let ms = (crate::timer::clock_ms(ctx.now) as u32).wrapping_sub(self.ex.sent_ms);
                up.backend.answered_in(u64::from(ms));
                let outlier = ctx.pools.policy(self.pool).and_then(|p| p.outlier);
                if let Some(policy) = outlier {
                    if outlier::answered(&policy, &up.backend, head.status) {
                        if let Some(balancer) = ctx.pools.balancer(self.pool) {
                            outlier::eject(balancer, &up.backend, &policy, ctx.now);
                        }
                    }
                }
            }
            self.ex.keep_client = head.keep_client;
            self.ex.reusable = head.reusable;
            self.ex.relay = head.relay;
            self.resp_body = Body::new(head.framing);
            if head.switching {
                self.start_tunnel();
                return Ok(Head::Read);
            }
        }
        if self.ex.committed && self.phase == Phase::Exchange {
            self.frame_response()?;
        }
        Ok(Head::Read)
    }

    /// Advances the response pipe's `ready` over body bytes; de-chunks for HTTP/1.0 clients.
    fn frame_response(&mut self) -> Result<(), Close> {
        let ready = self.resp.ready();
        let Some(buf) = self.resp.buf.as_mut() else {
            return Ok(());
        };
        let dechunk = self.ex.relay == Relay::Dechunk;
        let bytes = buf.bytes_mut();
        let (mut r, mut w) = (ready, ready);
        // bounded: every step consumes bytes or stops
        while let Some(rest) = bytes.get(r..).filter(|rest| !rest.is_empty()) {
            match self.resp_body.step(rest) {
                Ok(BodyStep::Payload(n)) => {
                    if dechunk && w != r {
                        bytes.copy_within(r..r + n, w);
                    }
                    r += n;
                    w += n;
                }
                Ok(BodyStep::Framing(n)) => {
                    r += n;
                    if !dechunk {
                        w += n;
                    }
                }
                Ok(BodyStep::Blocked | BodyStep::Done) => break,
                // bytes already went out: nothing to do but close after what is framed
                Err(_) => return Err(Close(CloseReason::BackendFailed)),
            }
        }
        if w < r {
            buf.remove(w, r - w);
        }
        if self.resp_body.is_done() {
            self.ex.resp_done = true;
            let extra = buf.len().saturating_sub(w);
            if extra > 0 {
                // bytes after the end of the response: the backend is out of step
                buf.truncate_back(extra);
                self.ex.reusable = false;
            }
        }
        self.resp.set_ready(w);
        Ok(())
    }

    /// The backend closed or reset the connection. `reset`: the connection failed (a reset, a
    /// TLS error) rather than ended.
    fn backend_closed<C: Client>(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: &mut C,
        deadline: &mut Instant,
        reset: bool,
    ) -> Run {
        if !self.ex.committed {
            let nothing = self.resp.len() == self.resp.ready();
            let failure = if nothing && self.resp.ready() == 0 {
                Failure::NoResponse
            } else {
                Failure::BadResponse
            };
            return self.upstream_failed(ctx, client, deadline, failure);
        }
        // Over TLS a FIN without `close_notify` did not end the stream: the body was cut there.
        let clean = !reset
            && self
                .upstream
                .and_then(|k| ctx.upstreams.get_mut(k.get()))
                .is_none_or(|up| up.transport.closed_cleanly());
        if self.resp_body.until_close() && clean {
            self.resp_body.finish_at_close();
            self.ex.resp_done = true;
            self.ex.reusable = false;
            self.ex.keep_client = false;
            return Ok(Step::Progress);
        }
        if let Some(up) = self.upstream.and_then(|k| ctx.upstreams.get_mut(k.get())) {
            if let Some(balancer) = ctx.pools.balancer(self.pool) {
                passive::failed(balancer, &up.backend, ctx.now);
            }
        }
        // Cut short after the response started: the client can only learn by the connection
        // ending. A length or chunked body shows the truncation by itself; a close-delimited one
        // would look complete after a plain end, so the client sees a cut instead.
        if self.resp_body.until_close() {
            client.cut();
        }
        Err(Close(CloseReason::BackendFailed))
    }

    /// Forgets whatever the backend sent for this attempt.
    pub(super) fn discard_response(&mut self, ctx: &mut Ctx<'_>) {
        self.resp.clear(ctx.bufs);
        self.scan = 0;
    }

    /// `101 Switching Protocols`: from now on bytes go both ways unframed.
    fn start_tunnel(&mut self) {
        self.phase = Phase::Tunnel;
        // whatever follows the heads already belongs to the new protocol
        self.req.set_ready(self.req.len());
        self.resp.set_ready(self.resp.len());
        self.ex.replay = false;
    }

    /// Tunnel: bytes both ways, each direction half-closed when its source ends, until both are.
    pub(super) fn tunnel<C: Client>(&mut self, ctx: &mut Ctx<'_>, client: &mut C) -> Run {
        let Some(up) = self.upstream.and_then(|k| ctx.upstreams.get_mut(k.get())) else {
            return Err(Close(CloseReason::TunnelEnded));
        };
        let unframed = |pipe: &mut super::Pipe| -> Result<(), std::convert::Infallible> {
            pipe.set_ready(pipe.len());
            Ok(())
        };
        // client → backend
        let up_moved = match super::relay(client, up, &mut self.req, false, ctx.bufs, unframed) {
            Ok(moved) => moved,
            Err(Broke::From(_)) => return Err(Close(CloseReason::ClientError)),
            Err(Broke::To(_)) => return Err(Close(CloseReason::BackendFailed)),
            Err(Broke::Frame(never)) => match never {},
        };
        ctx.stats.bytes_in(up_moved.read);
        if client.side().eof && self.req.ready() == 0 && !up.side.shut {
            super::End::shutdown_write(up);
        }
        // backend → client
        let down_moved = match super::relay(up, client, &mut self.resp, false, ctx.bufs, unframed) {
            Ok(moved) => moved,
            Err(Broke::From(_)) => return Err(Close(CloseReason::BackendFailed)),
            Err(Broke::To(_)) => return Err(Close(CloseReason::ClientError)),
            Err(Broke::Frame(never)) => match never {},
        };
        ctx.stats.bytes_out(down_moved.written);
        if let Some(e) = self.log.as_mut() {
            e.bytes_in += up_moved.read as u64;
            e.bytes_out += down_moved.written as u64;
        }
        if self.resp.ready() == 0 && up.side.eof && !client.side().shut {
            client.shutdown_write();
        }
        if client.side().shut && up.side.shut && !client.wants_flush() {
            return Err(Close(CloseReason::TunnelEnded));
        }
        let moved = up_moved.read + up_moved.written + down_moved.read + down_moved.written;
        Ok(Step::from(moved > 0))
    }
}
