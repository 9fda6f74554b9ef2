//! Where a stream's request goes: the backend choice (sticky binding, strategy, `max_conns`
//! queue), the connection lent to it (an idle pooled one, or a new connect), and what a failed
//! attempt leads to: a retry elsewhere when that is safe (RFC 9112 §9.3.1.1) and the pool's
//! retry budget allows it (`balancer/budget.rs`), else a status.

use std::time::Instant;

use super::{Client, Close, Phase, Run, Step, Stream, UpKey};
use crate::balancer::{Ask, Choice};
use crate::context::Ctx;
use crate::health::passive;
use crate::http::errors::Status;
use crate::stats::CloseReason;

/// How a backend attempt failed, which decides whether it may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
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

impl Stream {
    /// Picks a backend and lends the stream a connection to it: an idle one, or a new one.
    pub(super) fn start_upstream<C: Client>(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: &C,
        deadline: &mut Instant,
        exclude: Option<u64>,
    ) -> Run {
        let owner = ctx.owner();
        let ask = Ask {
            key: u64::from(self.ex.key),
            client: self.ex.client,
            cookie: (self.ex.cookie != 0).then_some(self.ex.cookie),
            exclude,
            now: ctx.now,
        };
        let (backend, set_cookie) = match ctx.pools.choose(self.pool, &ask) {
            Choice::Backend {
                backend,
                set_cookie,
            } if backend.try_begin_request() => (backend, set_cookie),
            // every candidate is at its max_conns (or filled up since the pick): wait for a slot
            Choice::Backend { .. } | Choice::Full => return Ok(self.enqueue(ctx, deadline)),
            Choice::None => return self.fail(ctx, client, deadline, Status::ServiceUnavailable),
        };
        self.ex.set_cookie = set_cookie;
        self.ex.sent_ms = crate::timer::clock_ms(ctx.now) as u32;
        if let Some(e) = self.log.as_mut() {
            e.backend = Some(backend.addr);
            e.upstream_started = Some(ctx.now);
            e.upstream_ended = None;
        }
        if self.ex.needs_host && !self.set_host(&backend.authority) {
            backend.end_request();
            return self.fail(ctx, client, deadline, Status::HeaderFieldsTooLarge);
        }
        if let Some(key) = ctx.upstreams.take_idle(backend.id, owner) {
            self.upstream = UpKey::new(key);
            self.phase = Phase::Exchange;
            *deadline = ctx.now + self.pool(ctx).upstream.backend_timeout;
            return Ok(Step::Progress);
        }
        let backend = std::sync::Arc::clone(backend);
        match ctx
            .upstreams
            .connect(ctx.registry, &backend, owner, ctx.now)
        {
            Ok(key) => {
                self.upstream = UpKey::new(key);
                self.phase = Phase::Connect;
                *deadline = ctx.now + self.pool(ctx).upstream.connect_timeout;
                Ok(Step::Progress)
            }
            Err(e) if crate::upstream::is_local_error(&e) => {
                // out of descriptors, memory or local ports: ferrule's trouble, not the backend's
                backend.end_request();
                crate::upstream::local_trouble(&e);
                self.fail(ctx, client, deadline, Status::ServiceUnavailable)
            }
            Err(_) => {
                if let Some(balancer) = ctx.pools.balancer(self.pool) {
                    passive::failed(balancer, &backend, ctx.now);
                }
                backend.end_request();
                self.retry_or_fail(ctx, client, deadline, Failure::Connect, backend.id)
            }
        }
    }

    /// No backend slot is free: wait in the worker's queue, in arrival order, until one frees
    /// (the worker runs [`Stream::dequeue`]) or `queue_timeout` passes (503).
    fn enqueue(&mut self, ctx: &mut Ctx<'_>, deadline: &mut Instant) -> Step {
        if self.phase != Phase::Queued {
            self.phase = Phase::Queued;
            *deadline = ctx.now + self.pool(ctx).balance.queue_timeout;
            ctx.queue.push_back(crate::context::Waiting {
                key: ctx.key,
                id: ctx.id,
                slot: ctx.slot,
            });
            ctx.pools.slots().enqueued(ctx.queued);
        }
        Step::Waiting
    }

    /// While queued: a client that leaves ends it (nothing is read meanwhile: back-pressure).
    pub(super) fn queued<C: Client>(&mut self, client: &C) -> Run {
        if client.side().hup {
            return Err(Close(CloseReason::ClientClosed));
        }
        Ok(Step::Waiting)
    }

    /// Queued, and a slot may have freed: try again. True when the request left the queue (it
    /// got a backend, or an answer); false when it still waits, at the front.
    pub fn dequeue<C: Client>(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: &C,
        deadline: &mut Instant,
    ) -> Result<bool, Close> {
        if self.phase != Phase::Queued {
            return Ok(true);
        }
        self.start_upstream(ctx, client, deadline, None)?;
        Ok(self.phase != Phase::Queued)
    }

    /// Connect: the socket reported readiness; see whether the connect succeeded.
    pub(super) fn connect_done<C: Client>(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: &C,
        deadline: &mut Instant,
    ) -> Run {
        let Some(up) = self.upstream.and_then(|k| ctx.upstreams.get_mut(k.get())) else {
            return self.fail(ctx, client, deadline, Status::BadGateway);
        };
        if !up.side.writable && !up.side.readable {
            return Ok(Step::Waiting);
        }
        match up.transport.connect_state() {
            Ok(true) => {}
            Ok(false) => {
                // spurious wake-up: still connecting
                up.side.writable = false;
                up.side.readable = false;
                return Ok(Step::Waiting);
            }
            Err(_) => return self.upstream_failed(ctx, client, deadline, Failure::Connect),
        }
        up.connected = true;
        self.phase = Phase::Exchange;
        *deadline = ctx.now + self.pool(ctx).upstream.backend_timeout;
        Ok(Step::Progress)
    }

    /// The backend attempt failed: retry elsewhere when that is safe, else answer with a status.
    pub(super) fn upstream_failed<C: Client>(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: &C,
        deadline: &mut Instant,
        failure: Failure,
    ) -> Run {
        let Some(key) = self.upstream.take().map(UpKey::get) else {
            return self.fail(ctx, client, deadline, Status::BadGateway);
        };
        let backend = match ctx.upstreams.get_mut(key) {
            Some(up) => {
                if let Some(balancer) = ctx.pools.balancer(self.pool) {
                    passive::failed(balancer, &up.backend, ctx.now);
                }
                up.backend.end_request();
                up.backend.id
            }
            None => 0,
        };
        ctx.upstreams.close(key);
        self.retry_or_fail(ctx, client, deadline, failure, backend)
    }

    fn retry_or_fail<C: Client>(
        &mut self,
        ctx: &mut Ctx<'_>,
        client: &C,
        deadline: &mut Instant,
        failure: Failure,
        backend: u64,
    ) -> Run {
        if self.ex.committed {
            return Err(Close(CloseReason::BackendFailed));
        }
        // RFC 9112 §9.3.1.1: a request that may have been received is replayed only when it is
        // idempotent: after a pooled connection turned out dead, or a fresh one closed or reset
        // before any response byte (as nginx's proxy_next_upstream and HAProxy's retry-on do).
        let safe = match failure {
            Failure::Connect | Failure::ConnectTimeout => true,
            Failure::NoResponse => self.ex.method.is_idempotent(),
            Failure::BadResponse | Failure::Timeout => false,
        };
        // `retry_budget`: asked last, as only a retry that would happen counts against it
        if safe
            && self.ex.replay
            && u32::from(self.ex.attempts) <= self.pool(ctx).balance.retries
            && ctx
                .pools
                .balancer(self.pool)
                .is_none_or(|b| b.retry_allowed(ctx.now))
        {
            self.ex.attempts += 1;
            self.req.set_sent(0);
            self.discard_response(ctx);
            return self.start_upstream(ctx, client, deadline, Some(backend));
        }
        let status = match failure {
            Failure::Timeout | Failure::ConnectTimeout => Status::GatewayTimeout,
            Failure::Connect | Failure::NoResponse | Failure::BadResponse => Status::BadGateway,
        };
        self.fail(ctx, client, deadline, status)
    }

    /// The exchange no longer needs its backend connection: give it back to the idle pool when
    /// the exchange left it clean (the whole request sent, the whole response read, keep-alive on
    /// both ends), else close it.
    pub(super) fn release_upstream(&mut self, ctx: &mut Ctx<'_>) {
        let Some(key) = self.upstream.take().map(UpKey::get) else {
            return;
        };
        if let Some(up) = ctx.upstreams.get_mut(key) {
            up.backend.end_request();
        }
        if let Some(e) = self.log.as_mut() {
            e.upstream_ended = Some(ctx.now);
        }
        let request_done = self.req_body.is_done() && self.req.sent() == self.req.ready();
        ctx.upstreams
            .release(key, self.ex.reusable && request_done, ctx.now);
    }

    /// Ends the request on its backend and closes the connection lent to it, if any: the one
    /// way out of an exchange that did not finish.
    pub(super) fn drop_upstream(&mut self, ctx: &mut Ctx<'_>) {
        if let Some(key) = self.upstream.take().map(UpKey::get) {
            if let Some(up) = ctx.upstreams.get_mut(key) {
                up.backend.end_request();
            }
            ctx.upstreams.close(key);
        }
    }
}
