//! The request side of a stream: a whole head checked and rewritten in place, its body framed
//! as it arrives and relayed to the backend, and what is kept so it can be sent again after a
//! failure (`replay`).

use std::net::IpAddr;
use std::time::Instant;

use super::{Client, Close, Exchange, Phase, Run, Step, Stream};
use crate::access_log::{self, Text};
use crate::buffer::Buf;
use crate::context::Ctx;
use crate::http::errors::Status;
use crate::http::request::{self, ClientInfo, Reject};
use crate::http::{Body, BodyError, Framing, Method, Step as BodyStep};
use crate::stats::CloseReason;
use crate::stream::relay::Broke;
use crate::transport::Got;

/// Where a request comes from, as its connection knows it.
#[derive(Debug, Clone, Copy)]
pub struct Opening {
    /// The client's address (the socket peer, or the PROXY protocol source).
    pub peer: IpAddr,
    /// When the head's first byte arrived (the request's time starts there, as nginx's
    /// `$request_time`).
    pub began: Instant,
    /// The request came over HTTP/2 (the access log says `HTTP/2.0`).
    pub http2: bool,
}

/// What `start` found in a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// A request, on its way.
    Request,
    /// Only empty lines, which may precede a request (RFC 9112 §2.2): the codec drops them.
    Blank,
}

impl Stream {
    /// While the stream is idle, the buffer where an HTTP/1.1 codec gathers the next request head
    /// (and where bytes read past a finished request wait): the request starts in place, with
    /// no copy. An HTTP/2 codec would fill it with the head it decoded.
    pub fn inbox(&mut self) -> &mut Option<Buf> {
        &mut self.req.buf
    }

    /// Bytes in the inbox (while idle), or held by the request pipe (while a request is under
    /// way: what was read and not yet let go of).
    pub fn inbox_len(&self) -> usize {
        self.req.len()
    }

    /// Request bytes delivered by a codec that decodes them itself (HTTP/2 DATA): appended to
    /// the request pipe, whose buffer is taken from the pool if the stream holds none. Returns how
    /// many fit (a codec gives a stream no more than the window it announced, which is no more than
    /// the pipe's room). The client's next `read` reports them, so they are framed and relayed as
    /// if read from a socket.
    pub fn deliver(&mut self, bufs: &mut crate::buffer::BufPool, data: &[u8]) -> usize {
        let buf = self.req.buf.get_or_insert_with(|| bufs.get());
        let n = buf.push(data);
        bufs.put_if_empty(&mut self.req.buf);
        n
    }

    /// Room left in the request pipe for delivered bytes.
    pub fn request_room(&self) -> usize {
        self.req
            .buf
            .as_ref()
            .map_or(usize::MAX, |b| b.capacity().saturating_sub(b.len()))
    }

    /// A whole head is at the front of the inbox, `..end`: check it, rewrite it, and send it on
    /// its way (a refused head is answered here, with its status).
    pub fn start<C: Client>(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: &mut C,
        deadline: &mut Instant,
        end: usize,
        from: Opening,
    ) -> Result<Started, Close> {
        let Some(buf) = self.req.buf.as_mut() else {
            return Ok(Started::Blank);
        };
        let cfg = ctx.cfg;
        let mut id = [0u8; 32];
        if cfg.request_id {
            ctx.ids.next(&mut id);
        }
        let router = ctx.pools.router();
        let info = ClientInfo {
            ip: from.peer,
            tls: cfg.tls,
            router: &router,
            trusted: &cfg.identity.trusted_proxies,
            request_id: cfg.request_id.then_some(&id[..]),
        };
        let Some(head_bytes) = buf.bytes().get(..end) else {
            return Ok(Started::Blank);
        };
        let (head, len, seen) =
            match request::rewrite_seen(head_bytes, &cfg.limits, &info, ctx.scratch) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => return Ok(Started::Blank),
                Err(Reject(status)) => {
                    self.reject(ctx, client, deadline, status, from.peer)?;
                    return Ok(Started::Request);
                }
            };
        self.log = ctx
            .access_log
            .entry(head.client.unwrap_or(from.peer), ctx.now)
            .map(|mut e| {
                e.started = from.began;
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
                if let Some(sni) = client.sni() {
                    e.set(Text::Sni, sni.as_bytes());
                }
                if let Some(pool) = ctx.pools.table().member(usize::from(head.pool)) {
                    e.set(Text::Pool, pool.name.as_bytes());
                }
                e.tls = client.tls_version().map(access_log::tls_name);
                e.http10 = head.http10;
                e.http2 = from.http2;
                // the head and whatever followed it so far (`log_done` takes off what belongs
                // to a next request)
                e.bytes_in = buf.len() as u64;
                e
            });
        if !buf.replace_front(len, ctx.scratch) {
            self.reject(
                ctx,
                client,
                deadline,
                Status::HeaderFieldsTooLarge,
                from.peer,
            )?;
            return Ok(Started::Request);
        }
        self.req.set_ready(ctx.scratch.len());
        self.req.set_sent(0);
        self.req_body = Body::new(head.framing);
        self.ex = Exchange::new(&head);
        self.pool = head.pool;
        let hashed = crate::hash::hash_ip(crate::client_ip::client_key(
            head.client.unwrap_or(from.peer),
            cfg.identity.ipv6_client_prefix,
        ));
        self.ex.client = hashed;
        self.ex.key = (head.key.unwrap_or(hashed) >> 32) as u32;
        self.ex.cookie = head.sticky.unwrap_or(0);
        self.ex.replay = ctx.pools.settings(self.pool).balance.retries > 0;
        self.phase = Phase::Exchange;
        if let Some(status) = self.frame_request(cfg.limits.max_body) {
            self.reject(ctx, client, deadline, status, from.peer)?;
            return Ok(Started::Request);
        }
        let over = ctx.pools.over_limit(
            self.pool,
            head.route,
            head.client.unwrap_or(from.peer),
            hashed,
            head.limit_key,
        );
        if let Some(retry_after) = over {
            self.over_limit(ctx, client, deadline, retry_after)?;
            return Ok(Started::Request);
        }
        self.start_upstream(ctx, client, deadline, None)?;
        Ok(Started::Request)
    }

    /// The request is over its rate limit: 429 with `Retry-After: retry_after` (seconds), and it
    /// never goes to a backend. The connection stays when the request was read whole (its body
    /// is not read for nothing).
    fn over_limit<C: Client>(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: &C,
        deadline: &mut Instant,
        retry_after: u64,
    ) -> Run {
        ctx.stats.rate_limited();
        let keep =
            self.ex.keep_alive && self.req_body.is_done() && !ctx.draining && !client.side().eof;
        let head = self.ex.method == Method::Head;
        let added = crate::context::added(ctx.date, ctx.cfg);
        crate::http::errors::too_many_requests(retry_after, keep, head, &added, ctx.scratch);
        self.send_own(ctx, deadline, Status::TooManyRequests.code(), keep)
    }

    /// A request head was refused (or never came whole): answer with `status`, then the
    /// connection closes without reading on. `peer` names the client in the access log when the
    /// head did not get as far as a record.
    pub fn reject<C: Client>(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: &C,
        deadline: &mut Instant,
        status: Status,
        peer: IpAddr,
    ) -> Run {
        self.ex = Exchange::idle();
        if self
            .req
            .buf
            .as_ref()
            .is_some_and(|b| request::is_head_request(b.bytes()))
        {
            // the head could not be parsed, but its method could: HEAD gets no body
            self.ex.method = Method::Head;
        }
        // whatever follows is never read as a request
        self.req_body = Body::new(Framing::UntilClose);
        self.req.set_sent(0);
        self.req.set_ready(0);
        if self.log.is_none() {
            // a head refused before it was parsed, or a timeout waiting for it
            self.log = ctx.access_log.entry(peer, ctx.now);
            if let Some(e) = self.log.as_mut() {
                e.http2 = client.http2();
            }
        }
        self.fail(ctx, client, deadline, status)
    }

    /// Advances the request pipe's `ready` over the body bytes in it. Returns the status to
    /// answer when the body is malformed (400) or grows past `max_body` (413; 0: no limit). A
    /// `Content-Length` body was checked against the limit with its head; a chunked one is
    /// counted here, so the excess is never forwarded.
    fn frame_request(&mut self, max_body: u64) -> Option<Status> {
        let buf = self.req.buf.as_ref()?;
        let bytes = buf.bytes();
        let mut ready = self.req.ready();
        let mut refused = None;
        // bounded: every step consumes bytes or stops
        while let Some(rest) = bytes.get(ready..).filter(|r| !r.is_empty()) {
            match self.req_body.step(rest) {
                Ok(BodyStep::Payload(n)) => {
                    if max_body > 0 && self.req_body.chunked_payload() > max_body {
                        refused = Some(Status::PayloadTooLarge);
                        break;
                    }
                    ready += n;
                }
                Ok(BodyStep::Framing(n)) => ready += n,
                Ok(BodyStep::Blocked | BodyStep::Done) => break,
                Err(BodyError::BadChunk | BodyError::TooLong) => {
                    refused = Some(Status::BadRequest);
                    break;
                }
            }
        }
        self.req.set_ready(ready);
        refused
    }

    /// Request side of the exchange: read the client, frame the body, write to the backend.
    pub(super) fn client_to_backend<C: Client>(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: &mut C,
        deadline: &mut Instant,
    ) -> Run {
        let mut step = Step::Waiting;
        let side = client.side();
        // Read while there is room, also past the request (pipelined requests wait in the pipe),
        // so that a client that goes away is noticed.
        if self.ex.replay && client.starved() {
            // the request outgrew the client's window: it can no longer be sent twice
            self.stop_replay(ctx);
        }
        if side.readable && !side.eof {
            if self.ex.replay && self.req.buf.as_ref().is_some_and(Buf::is_full) {
                // the request outgrew the buffer: it can no longer be sent twice
                self.stop_replay(ctx);
            }
            match self.req.pull(client, ctx.bufs) {
                Ok(Got::Bytes { n, .. }) if n > 0 => {
                    step = Step::Progress;
                    ctx.stats.bytes_in(n);
                    if let Some(e) = self.log.as_mut() {
                        e.bytes_in += n as u64;
                    }
                    if let Some(status) = self.frame_request(ctx.cfg.limits.max_body) {
                        self.abandon_body();
                        return self.fail(ctx, client, deadline, status);
                    }
                }
                Ok(_) => {}
                Err(_) => return Err(Close(CloseReason::ClientError)),
            }
        }
        if client.side().eof {
            let pipelined = self.req.len() > self.req.ready();
            if !self.req_body.is_done() || (!self.ex.resp_done && !pipelined) {
                // the client left mid-request or while waiting: abandon the exchange
                return Err(Close(CloseReason::ClientClosed));
            }
        }
        let Some(up) = self.upstream.and_then(|k| ctx.upstreams.get_mut(k.get())) else {
            return Ok(step);
        };
        // any byte handed to the transport may have reached the backend
        let failure = if self.req.sent() == 0 {
            super::backend::Failure::Connect
        } else {
            super::backend::Failure::NoResponse
        };
        let flushing = up.side.writable && up.transport.wants_flush();
        let whole = self.req_body.is_done() && self.req.sent() == 0;
        if ctx.gathering && whole && !flushing && !client.http2() {
            // a request read whole goes to the backend after the round's last event (see
            // `Ctx::deferred`); one still arriving goes now, for its push is what makes room to
            // read the rest; HTTP/2 streams write within their connection's run
            ctx.deferred = true;
            return Ok(step);
        }
        match self.req.push(up, self.ex.replay, ctx.bufs) {
            Ok(n) => {
                if n > 0 || flushing {
                    step = Step::Progress;
                }
                Ok(step)
            }
            Err(Broke::To(_) | Broke::From(_)) => {
                self.upstream_failed(ctx, client, deadline, failure)
            }
            Err(Broke::Frame(never)) => match never {},
        }
    }

    /// Drops request bytes already sent: from now on the request cannot be replayed.
    pub(super) fn stop_replay(&mut self, ctx: &mut Ctx<'_>) {
        self.ex.replay = false;
        self.req.drop_sent(ctx.bufs);
    }

    /// The request body was malformed after the head went out: nothing more of it is read as a
    /// body, and the connection closes after the answer ([`fail`](Self::fail) gives it and lets
    /// the upstream go).
    fn abandon_body(&mut self) {
        self.req_body = Body::new(Framing::UntilClose);
        self.ex.keep_alive = false;
    }

    /// Writes `Host: authority` into a request head that came without one (HTTP/1.0), before
    /// its final empty line, replacing the line written for an earlier attempt at another
    /// backend. Returns false when it does not fit.
    pub(super) fn set_host(&mut self, authority: &str) -> bool {
        let old = usize::from(self.ex.host_line);
        let Some(buf) = self.req.buf.as_mut() else {
            return false;
        };
        let mut line = Vec::with_capacity(authority.len() + 8);
        line.extend_from_slice(b"Host: ");
        line.extend_from_slice(authority.as_bytes());
        line.extend_from_slice(b"\r\n");
        let Ok(new_len) = u16::try_from(line.len()) else {
            return false;
        };
        // the rewritten head at the front of the pipe ends with the first empty line (a retry
        // only happens while the whole request is still there, from its first byte)
        let Ok(Some(head_len)) = request::find_head_end(buf.bytes(), 0) else {
            return false;
        };
        let Some(at) = head_len.checked_sub(2 + old) else {
            return false;
        };
        if !buf.replace_at(at, old, &line) {
            return false;
        }
        self.req.set_ready(self.req.ready() - old + line.len());
        self.ex.host_line = new_len;
        true
    }
}
