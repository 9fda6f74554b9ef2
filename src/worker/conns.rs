//! Running the worker's connections: the [`Ctx`] a connection runs with, the events of client and
//! backend sockets, a run and what follows it (re-arm, run again, close), the connections that
//! stopped at their round cap, the queue of streams waiting for a backend slot (`max_conns`), and
//! the close, which releases what the connection held and counts its reason.
//!
//! Neighbours: the run loop and `spawn` in `mod.rs`; accepting in `accept.rs`; timers and
//! housekeeping in `timers.rs`; control messages and the drain in `control.rs`.

use mio::Registry;

use super::{contain, Core, Ready, ACCEPT_BATCH};
use crate::connection::{Close, Connection, Ran};
use crate::context::{Ctx, Waiting};
use crate::stats::CloseReason;

impl Core {
    pub(super) fn ctx<'a>(
        &'a mut self,
        registry: &'a Registry,
        key: usize,
    ) -> (Option<&'a mut Connection>, Ctx<'a>) {
        let conn = self.conns.get_mut(key).map(|b| &mut **b);
        let ctx = Ctx {
            registry,
            upstreams: &mut self.upstreams,
            bufs: &mut self.bufs,
            scratch: &mut self.scratch,
            pools: &mut self.pools,
            cfg: &self.shared.settings,
            now: self.now,
            date: self.date.text(),
            draining: self.draining.is_some(),
            key,
            id: conn.as_ref().map_or(0, |c| c.id),
            slot: 0,
            redirect: self.shared.redirect_to.filter(|_| self.redirects.get(key)),
            stats: &self.stats,
            queue: &mut self.queue,
            queued: &self.queued,
            access_log: &mut self.log,
            ids: &mut self.ids,
            gathering: self.gathering,
            deferred: false,
            woken: None,
        };
        (conn, ctx)
    }

    pub(super) fn client_event(&mut self, registry: &Registry, key: usize, ready: Ready) {
        if let Some(c) = self.conns.get_mut(key) {
            c.client_ready(ready.readable, ready.writable, ready.hup);
            self.drive(registry, key);
        }
    }

    pub(super) fn upstream_event(&mut self, registry: &Registry, key: usize, ready: Ready) {
        let Some(up) = self.upstreams.get_mut(key) else {
            return;
        };
        match up.owner {
            Some(owner) => {
                up.side.ready(ready.readable, ready.writable, ready.hup);
                self.drive_woken(registry, owner.conn, Some(owner.slot));
            }
            None => {
                if ready.hup || (ready.readable && !up.transport.absorb_idle()) {
                    // an idle connection the backend closed (or spoke on out of turn); over TLS a
                    // session ticket or key update leaves it clean
                    self.upstreams.close_idle(key);
                } else {
                    up.side.writable |= ready.writable;
                }
            }
        }
    }

    /// Runs a connection after an event, then re-arms its timer or drops it.
    pub(super) fn drive(&mut self, registry: &Registry, key: usize) {
        self.drive_woken(registry, key, None);
    }

    /// `drive`, after an event of the backend connection of the stream in `woken` (see
    /// `Ctx::woken`).
    fn drive_woken(&mut self, registry: &Registry, key: usize, woken: Option<u32>) {
        let queued = self.queue.len();
        let (Some(conn), mut ctx) = self.ctx(registry, key) else {
            return;
        };
        ctx.woken = woken;
        let id = conn.id;
        let result = contain(|| conn.run(&mut ctx));
        if ctx.deferred {
            self.deferred.push((key, id));
        }
        self.after_run(registry, key, id, result);
        if self.queue.len() > queued {
            // just queued: look once more, in case a slot freed while it was being queued (the
            // worker that freed it may not have seen it waiting yet)
            self.queue_again = true;
        }
    }

    pub(super) fn after_run(
        &mut self,
        registry: &Registry,
        key: usize,
        id: u32,
        result: Result<Ran, Close>,
    ) {
        match result {
            Ok(Ran::Idle) => self.arm(key),
            Ok(Ran::More) => {
                self.arm(key);
                self.pending.push((key, id));
            }
            Err(Close(reason)) => self.close(registry, key, reason),
        }
    }

    /// Writes the requests held for the end of the round (see `Ctx::deferred`): a bare push of
    /// the request's bytes; a stream that moved on meanwhile, or whose write failed, runs whole.
    pub(super) fn push_deferred(&mut self, registry: &Registry) {
        if self.deferred.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.deferred);
        for (key, id) in batch.drain(..) {
            let (Some(conn), mut ctx) = self.ctx(registry, key) else {
                continue;
            };
            if conn.id != id {
                continue;
            }
            match contain(|| Ok(conn.push_deferred(&mut ctx))) {
                Ok(true) => {}
                Ok(false) => self.drive(registry, key),
                Err(Close(reason)) => self.close(registry, key, reason),
            }
        }
        if self.deferred.is_empty() {
            // keep the allocation for next time
            self.deferred = batch;
        }
    }

    /// Runs the connections that stopped at their round cap, once each.
    pub(super) fn run_pending(&mut self, registry: &Registry) {
        if self.pending.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.pending);
        for (key, id) in batch.drain(..) {
            if self.conns.get(key).is_some_and(|c| c.id == id) {
                self.drive(registry, key);
            }
        }
        if self.pending.is_empty() {
            // keep the allocation for next time
            self.pending = batch;
        }
    }

    /// Gives freed backend slots to queued streams, in arrival order: at most `ACCEPT_BATCH` a
    /// wake-up (`queue_again` brings the worker back at once for the rest), stopping at the first
    /// that still finds no slot.
    pub(super) fn run_queue(&mut self, registry: &Registry) {
        self.queue_again = false;
        for _ in 0..ACCEPT_BATCH {
            let Some(&Waiting { key, id, slot }) = self.queue.front() else {
                return;
            };
            let live = self
                .conns
                .get(key)
                .is_some_and(|c| c.id == id && c.is_queued(slot));
            if !live {
                // closed, timed out or served meanwhile
                self.pop_queue();
                continue;
            }
            let (Some(conn), mut ctx) = self.ctx(registry, key) else {
                self.pop_queue();
                continue;
            };
            let mut left = false;
            let result = contain(|| {
                left = conn.dequeue(&mut ctx, slot)?;
                Ok(Ran::Idle)
            });
            match result {
                Ok(_) if !left => return, // no slot yet: it stays at the front
                Ok(ran) => {
                    self.pop_queue();
                    self.after_run(registry, key, id, Ok(ran));
                    self.drive(registry, key);
                }
                Err(close) => {
                    self.pop_queue();
                    self.after_run(registry, key, id, Err(close));
                }
            }
        }
        self.queue_again = !self.queue.is_empty();
    }

    fn pop_queue(&mut self) {
        if self.queue.pop_front().is_some() {
            self.pools.slots().dequeued(&self.queued);
        }
    }

    pub(super) fn close(&mut self, registry: &Registry, key: usize, reason: CloseReason) {
        let (Some(conn), mut ctx) = self.ctx(registry, key) else {
            return;
        };
        conn.release(&mut ctx, reason);
        // `peer` is still the socket's: a counted connection read no PROXY header
        let peer = conn.peer();
        if self.per_ip_counted.take(key) {
            self.shared.per_ip.release(peer);
        }
        self.redirects.take(key);
        self.conns.remove(key);
        self.stats.closed(reason);
        if self.accept_paused && self.conns.len() < self.shared.max_connections {
            self.accept_paused = false;
            self.accept_pending = true;
        }
    }
}
