//! The worker's timers: a connection's deadline armed in the timer wheel (and re-armed only when
//! it moved before its slot), what fires (a connection's deadline, the end of an accept pause,
//! the drain deadline), and the housekeeping sweep once a second.
//!
//! Neighbours: the run loop and `spawn` in `mod.rs`; accepting in `accept.rs`; running
//! connections in `conns.rs`; control messages and the drain in `control.rs`.

use std::time::Duration;

use mio::Registry;

use super::{contain, Core};
use crate::balancer::Sticky;
use crate::timer::{Entry, TimerKey};

/// How often housekeeping runs (idle backend connections expire, freed memory is returned).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl Core {
    /// Arms the connection's timer if its deadline moved before the slot it is armed in.
    pub(super) fn arm(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.armed == u64::MAX || self.timers.slot_of(c.deadline) < c.armed {
            let timer = TimerKey::Conn {
                key: key as u32,
                id: c.id,
            };
            c.armed = self.timers.arm(timer, c.deadline);
        }
        self.arm_sweep();
    }

    /// Housekeeping once a second while there is anything to keep: idle backend connections to
    /// expire, freed buffer memory to return (also after the last connection left).
    fn arm_sweep(&mut self) {
        let work =
            self.upstreams.idle_count() > 0 || !self.conns.is_empty() || self.bufs.needs_trim();
        if !self.sweep_armed && work {
            self.sweep_armed = true;
            self.timers.arm(TimerKey::Sweep, self.now + SWEEP_EVERY);
        }
    }

    pub(super) fn expire(&mut self, registry: &Registry) {
        if self.timers.is_empty() {
            return;
        }
        let mut due = std::mem::take(&mut self.due);
        self.timers.expire(self.now, &mut due);
        for entry in due.drain(..) {
            match entry.key {
                TimerKey::Sweep => self.sweep(),
                TimerKey::Drain => {} // the loop checks the drain deadline
                TimerKey::Resume => {
                    self.accept_paused = false;
                    self.accept_pending = true;
                }
                TimerKey::Conn { key, id } => self.conn_timer(registry, key as usize, id, entry),
            }
        }
        self.due = due;
    }

    /// Housekeeping: idle backend connections expire, freed memory is returned, backends taken
    /// down passively are tried again, ejections that are over end, the retry budget notes the
    /// pools' traffic, a few shards of the sticky table are swept.
    fn sweep(&mut self) {
        self.upstreams
            .expire_idle(self.now, self.shared.backend_keepalive_timeout);
        self.bufs.trim();
        self.pools.refresh(&self.shared.pools);
        // bounded: the pools of the table
        for (_, pool) in self.pools.table().members() {
            crate::health::passive::revive(&pool.balancer, self.now);
            crate::health::outlier::sweep(&pool.balancer, self.now);
            pool.balancer.sample_budget(self.now);
            if let Some(Sticky::Ip(table)) = &pool.balancer.policy().sticky {
                // a few shards a second per worker: the whole table within seconds
                table.sweep(self.sticky_sweep, 8, self.now);
            }
        }
        self.sticky_sweep = self.sticky_sweep.wrapping_add(8);
        self.sweep_armed = false;
        self.arm_sweep();
    }

    fn conn_timer(&mut self, registry: &Registry, key: usize, id: u32, entry: Entry) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.id != id || c.armed != entry.slot {
            return; // stale: the connection was re-armed elsewhere, or this is another one
        }
        c.armed = u64::MAX;
        if c.deadline > now {
            self.arm(key);
            return;
        }
        let (Some(conn), mut ctx) = self.ctx(registry, key) else {
            return;
        };
        let result = contain(|| conn.timed_out(&mut ctx));
        self.after_run(registry, key, id, result);
    }
}
