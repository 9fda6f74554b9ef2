//! Process-wide counters read by the admin API: per worker (connections) here, per backend in
//! `balancer::Backend`. Workers only ever add to their own; readers sum.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::balancer::Padded;

/// One worker's connection counters, each on its own cache line.
#[derive(Debug, Default)]
pub struct WorkerStats {
    accepted: Padded<AtomicU64>,
    closed: Padded<AtomicU64>,
    accept_errors: Padded<AtomicU64>,
}

impl WorkerStats {
    #[inline]
    pub fn accepted(&self) {
        self.accepted.0.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn closed(&self) {
        self.closed.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn accept_error(&self) {
        self.accept_errors.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn accept_errors(&self) -> u64 {
        self.accept_errors.0.load(Ordering::Relaxed)
    }

    /// Connections accepted since start.
    pub fn total_accepted(&self) -> u64 {
        self.accepted.0.load(Ordering::Relaxed)
    }

    /// Client connections open now.
    pub fn open(&self) -> u64 {
        let closed = self.closed.0.load(Ordering::Relaxed);
        self.total_accepted().saturating_sub(closed)
    }
}
