//! Control messages into a worker: [`Control`] (shutdown, a backend gone, a reload), sent through
//! a [`ControlPort`] (the worker's channel and its `mio::Waker`), and what the worker does with
//! them: `Core::control` on a wake-up, and the drain that a shutdown starts.
//!
//! Neighbours: the run loop and `spawn` in `mod.rs`; accepting in `accept.rs`; running
//! connections in `conns.rs`; timers and housekeeping in `timers.rs`.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;
use mio::{Registry, Waker};

use super::{Core, Shared};
use crate::connection::DRAIN_IDLE_GRACE;
use crate::timer::TimerKey;

/// Messages to a worker.
#[derive(Clone)]
pub enum Control {
    /// Stop accepting, finish the requests in flight, exit; force-close at `deadline`.
    Shutdown { deadline: Instant },
    /// A backend left the pool: close its idle connections.
    BackendRemoved(u64),
    /// A reload: new settings (timeouts, limits, keep-alive) for the requests from now on.
    Reconfigure(Arc<Shared>),
}

/// Where control messages to one worker go: its channel and its waker. Cheap to clone (the admin
/// API keeps one per worker).
#[derive(Clone)]
pub struct ControlPort {
    pub(super) tx: Sender<Control>,
    pub(super) waker: Arc<Waker>,
}

impl ControlPort {
    pub fn send(&self, msg: Control) {
        if self.tx.send(msg).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

impl Core {
    pub(super) fn control(&mut self, registry: &Registry) {
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Control::Shutdown { deadline } => self.start_drain(registry, deadline),
                Control::BackendRemoved(id) => self.upstreams.drop_backend(id),
                Control::Reconfigure(shared) => {
                    self.upstreams
                        .set_limits(shared.backend_keepalive, shared.idle_budget);
                    self.shared = shared;
                }
            }
        }
    }

    /// Stops accepting (closing this worker's listeners: without a successor holding the same
    /// sockets, new connections are refused at once). Idle keep-alive connections get a short
    /// grace ([`DRAIN_IDLE_GRACE`]): a request that arrives meanwhile is served with
    /// `Connection: close`, like every response during the drain; the rest close after their
    /// response, and whatever is left at `deadline` is closed.
    fn start_drain(&mut self, registry: &Registry, deadline: Instant) {
        if self.draining.is_some() {
            return;
        }
        self.draining = Some(deadline);
        for mut l in self.listeners.drain(..) {
            let _ = registry.deregister(&mut l.sock);
        }
        self.accept_pending = false;
        self.timers.arm(TimerKey::Drain, deadline);
        let grace = DRAIN_IDLE_GRACE.min(self.shared.settings.timeouts.keepalive);
        let until = (self.now + grace).min(deadline);
        let now = self.now;
        let idle: Vec<(usize, u32)> = self
            .conns
            .iter_mut()
            .filter_map(|(k, c)| c.close_idle_by(until, now).then_some((k, c.id)))
            .collect();
        for (key, id) in idle {
            self.arm(key);
            // run once: an HTTP/2 connection has a GOAWAY to write
            self.pending.push((key, id));
        }
        self.upstreams.clear_idle();
    }
}
