//! Process-wide counters read by the admin API: per worker (connections) here, per backend in
//! `balancer::Backend`. Workers only ever add to their own; readers sum.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

/// One worker's connection counters, each on its own cache line (`CachePadded`: 128 bytes on
/// x86-64, where the prefetcher pulls lines in pairs).
#[derive(Debug, Default)]
pub struct WorkerStats {
    accepted: CachePadded<AtomicU64>,
    closed: CachePadded<AtomicU64>,
    accept_errors: CachePadded<AtomicU64>,
    /// TLS handshakes completed, and failed (errors, timeouts, plain HTTP, peers leaving).
    tls_handshakes: CachePadded<AtomicU64>,
    tls_failures: CachePadded<AtomicU64>,
}

impl WorkerStats {
    #[inline]
    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn closed(&self) {
        self.closed.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn tls_handshake(&self) {
        self.tls_handshakes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn tls_failed(&self) {
        self.tls_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn tls_handshakes(&self) -> u64 {
        self.tls_handshakes.load(Ordering::Relaxed)
    }

    pub fn tls_failures(&self) -> u64 {
        self.tls_failures.load(Ordering::Relaxed)
    }

    pub fn accept_error(&self) {
        self.accept_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn accept_errors(&self) -> u64 {
        self.accept_errors.load(Ordering::Relaxed)
    }

    /// Connections accepted since start.
    pub fn total_accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Client connections open now.
    pub fn open(&self) -> u64 {
        let closed = self.closed.load(Ordering::Relaxed);
        self.total_accepted().saturating_sub(closed)
    }
}
