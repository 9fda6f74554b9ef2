//! Process-wide counters read by the admin API: per worker here (connections, why they closed,
//! requests by status class, bytes, TLS handshakes), per backend in `balancer::Backend` (requests,
//! failures, the response-time histogram). Workers only ever add to their own with relaxed atomics;
//! readers sum. [`CloseReason`] names why a client connection ended: it goes to the access log and
//! to `ferrule_connections_closed_total{reason}`.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

/// One worker's counters. Only that worker writes them, so they share one padded block: the
/// block is apart from every other worker's (no false sharing), and the admin thread's reads are
/// rare.
#[derive(Debug, Default)]
pub struct WorkerStats(CachePadded<Counters>);

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    /// Connections closed, by [`CloseReason`] (its index).
    closed: [AtomicU64; CloseReason::ALL.len()],
    accept_errors: AtomicU64,
    /// Connections closed at accept: their address held `max_connections_per_ip` already.
    per_ip_refused: AtomicU64,
    /// Requests answered 429: over their rate limit (`crate::limits`).
    rate_limited: AtomicU64,
    /// TLS handshakes completed, and failed (errors, timeouts, plain HTTP, peers leaving).
    tls_handshakes: AtomicU64,
    tls_failures: AtomicU64,
    /// Responses sent to clients by status class (1xx interim ones not counted), index 0 = 1xx.
    classes: [AtomicU64; 5],
    /// Bytes read from clients and written to them.
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl WorkerStats {
    #[inline]
    pub fn accepted(&self) {
        self.0.accepted.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub fn closed(&self, reason: CloseReason) {
        self.0.closed[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Connections closed so far, by reason (in [`CloseReason::ALL`]'s order).
    pub fn closed_by_reason(&self) -> [u64; CloseReason::ALL.len()] {
        std::array::from_fn(|i| self.0.closed[i].load(Ordering::Relaxed))
    }

    pub fn accept_error(&self) {
        self.0.accept_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn accept_errors(&self) -> u64 {
        self.0.accept_errors.load(Ordering::Relaxed)
    }

    pub fn per_ip_refused(&self) {
        self.0.per_ip_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn per_ip_refusals(&self) -> u64 {
        self.0.per_ip_refused.load(Ordering::Relaxed)
    }

    pub fn rate_limited(&self) {
        self.0.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered 429 (over a rate limit) so far.
    pub fn rate_limited_requests(&self) -> u64 {
        self.0.rate_limited.load(Ordering::Relaxed)
    }

    #[inline]
    pub fn tls_handshake(&self) {
        self.0.tls_handshakes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn tls_failed(&self) {
        self.0.tls_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn tls_handshakes(&self) -> u64 {
        self.0.tls_handshakes.load(Ordering::Relaxed)
    }

    pub fn tls_failures(&self) -> u64 {
        self.0.tls_failures.load(Ordering::Relaxed)
    }

    /// A final response with `status` went (or is going) to a client.
    #[inline]
    pub fn response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.0.classes[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Responses by status class: `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub fn responses(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.0.classes[i].load(Ordering::Relaxed))
    }

    #[inline]
    pub fn bytes_in(&self, n: usize) {
        self.0.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    #[inline]
    pub fn bytes_out(&self, n: usize) {
        self.0.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Bytes read from clients and written to them, so far.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.0.bytes_in.load(Ordering::Relaxed),
            self.0.bytes_out.load(Ordering::Relaxed),
        )
    }

    /// Connections accepted since start.
    pub fn total_accepted(&self) -> u64 {
        self.0.accepted.load(Ordering::Relaxed)
    }

    /// Client connections open now.
    pub fn open(&self) -> u64 {
        let closed: u64 = self.closed_by_reason().iter().sum();
        self.total_accepted().saturating_sub(closed)
    }
}

/// Why a client connection ended. Every close has one: it reaches the access log (of the request
/// it cut, if any) and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The last exchange ended and the connection was not kept (`Connection: close`, HTTP/1.0,
    /// a close-delimited response, a refused request, or the drain).
    Done,
    /// An idle keep-alive connection reached `keepalive_timeout` (or the drain's grace).
    Idle,
    /// The client closed its side: between requests, or while a request was under way.
    ClientClosed,
    /// The client connection failed: a reset, or another socket error.
    ClientError,
    /// The client's TLS handshake failed or timed out.
    TlsHandshake,
    /// `proxy_protocol`: no valid PROXY header, or one from a peer that is not a trusted proxy.
    ProxyHeader,
    /// The backend failed after the response had started (reset, bad framing, cut short): the
    /// only honest answer left is to close.
    BackendFailed,
    /// A deadline passed after the response had started (`backend_timeout`, `send_timeout`,
    /// `client_body_timeout`).
    Timeout,
    /// A tunnel (an upgraded connection) ended: both sides closed, or `tunnel_timeout`.
    TunnelEnded,
    /// A closing connection's linger ran out before the client closed.
    Linger,
    /// Still open when the drain's `shutdown_timeout` ended.
    Shutdown,
    /// A bug: the connection's code panicked (logged), and only that connection was closed.
    Panic,
}

impl CloseReason {
    pub const ALL: [CloseReason; 12] = [
        CloseReason::Done,
        CloseReason::Idle,
        CloseReason::ClientClosed,
        CloseReason::ClientError,
        CloseReason::TlsHandshake,
        CloseReason::ProxyHeader,
        CloseReason::BackendFailed,
        CloseReason::Timeout,
        CloseReason::TunnelEnded,
        CloseReason::Linger,
        CloseReason::Shutdown,
        CloseReason::Panic,
    ];

    /// The name in the access log and the metric's `reason` label.
    pub fn name(self) -> &'static str {
        match self {
            CloseReason::Done => "done",
            CloseReason::Idle => "idle",
            CloseReason::ClientClosed => "client_closed",
            CloseReason::ClientError => "client_error",
            CloseReason::TlsHandshake => "tls_handshake",
            CloseReason::ProxyHeader => "proxy_header",
            CloseReason::BackendFailed => "backend_failed",
            CloseReason::Timeout => "timeout",
            CloseReason::TunnelEnded => "tunnel_ended",
            CloseReason::Linger => "linger",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Panic => "panic",
        }
    }
}

/// Upper bounds of the response-time histogram buckets, in milliseconds (the last bucket is
/// everything above the last bound). Prometheus's usual ladder, trimmed.
pub const LATENCY_BOUNDS_MS: [u64; 10] = [1, 2, 5, 10, 25, 50, 100, 250, 1000, 5000];

/// One backend's response times (from the request going out to its response head coming back):
/// a histogram of [`LATENCY_BOUNDS_MS`] plus the sum. Written by every worker, so it lives beside
/// the request counter it is bumped with (the same cache line moves once).
#[derive(Debug, Default)]
pub struct Latency {
    buckets: [AtomicU64; LATENCY_BOUNDS_MS.len() + 1],
    sum_ms: AtomicU64,
}

impl Latency {
    #[inline]
    pub fn record(&self, ms: u64) {
        let i = LATENCY_BOUNDS_MS.partition_point(|&b| b < ms);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// The count of each bucket (not cumulative; the last is above every bound) and the sum.
    pub fn snapshot(&self) -> ([u64; LATENCY_BOUNDS_MS.len() + 1], u64) {
        (
            std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            self.sum_ms.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_counted_by_class_and_latencies_bucketed() {
        let s = WorkerStats::default();
        for status in [200, 204, 304, 404, 502, 503, 100] {
            s.response(status);
        }
        assert_eq!(s.responses(), [1, 2, 1, 1, 2]);
        let l = Latency::default();
        for ms in [0, 1, 2, 3, 6000] {
            l.record(ms);
        }
        let (buckets, sum) = l.snapshot();
        assert_eq!(&buckets[..3], &[2, 1, 1]);
        assert_eq!(buckets[10], 1);
        assert_eq!(sum, 6006);
    }

    #[test]
    fn closes_are_counted_by_reason_and_every_reason_is_at_its_index() {
        for (i, r) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{}", r.name());
        }
        let s = WorkerStats::default();
        s.accepted();
        s.accepted();
        s.closed(CloseReason::Idle);
        assert_eq!(s.open(), 1);
        assert_eq!(s.closed_by_reason()[CloseReason::Idle as usize], 1);
    }
}
