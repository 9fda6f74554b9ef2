//! What a connection and its streams work with: [`Settings`], fixed when the workers start (and
//! replaced whole by a reload), and [`Ctx`], the worker's state lent to one connection while it
//! runs. `worker/conns.rs` builds a `Ctx` per run; `connection/` and `stream/` only read and write
//! through it, so neither knows the worker.

use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use mio::Registry;

use crate::access_log::{Local, RequestIds};
use crate::buffer::BufPool;
use crate::config::{self, Config};
use crate::http::request::Limits;
use crate::pools::View;
use crate::stats::WorkerStats;
use crate::upstream::Upstreams;

/// HTTP/2 to clients: whether it is offered, and the limits of one connection against abuse
/// (each ends in GOAWAY ENHANCE_YOUR_CALM but the first two).
#[derive(Debug, Clone, Copy)]
pub struct H2Limits {
    /// `http2`: ALPN `h2` on the TLS port, the preface (h2c) on the plain one.
    pub enabled: bool,
    /// `http2_max_concurrent_streams`: open streams at once; more are refused (REFUSED_STREAM).
    pub max_concurrent: u32,
    /// `http2_max_requests`: streams over the connection's life; then GOAWAY NO_ERROR and the
    /// client opens another (`u32::MAX`: no limit; a client runs out of stream ids first).
    pub max_streams: u32,
    /// Resets the client sends per second (Rapid Reset, CVE-2023-44487).
    pub resets_per_second: u32,
    /// Resets we must send because of the client's frames, over the connection's life
    /// (MadeYouReset, CVE-2025-8671).
    pub emitted_resets: u32,
    /// SETTINGS, PING, empty DATA and connection WINDOW_UPDATE frames per second
    /// (CVE-2019-9512, -9515, -9518).
    pub control_per_second: u32,
}

impl Default for H2Limits {
    fn default() -> H2Limits {
        H2Limits {
            enabled: true,
            max_concurrent: 128,
            max_streams: 100_000,
            resets_per_second: 100,
            emitted_resets: 500,
            control_per_second: 200,
        }
    }
}

/// What a worker's connections need to know, fixed at start: the config's groups they read, and
/// what is worked out from the config once rather than per request. What differs from pool to
/// pool is the pool's (`pools::PoolSettings`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub limits: Limits,
    /// Clients arrive over TLS (sets `X-Forwarded-Proto`).
    pub tls: bool,
    /// The client side's timeouts (`client_header_timeout`, ..., `tls_handshake_timeout`).
    pub timeouts: config::Timeouts,
    /// Who the client is (`trusted_proxies`, `proxy_protocol`, `ipv6_client_prefix`).
    pub identity: config::Identity,
    /// Requests without `X-Request-Id` get one.
    pub request_id: bool,
    /// Client connections one address may hold at once, over all workers (0: no limit; not
    /// applied with `proxy_protocol`).
    pub max_connections_per_ip: u32,
    /// The `Strict-Transport-Security` line added to every final response (`ssl.hsts`, over
    /// TLS only; see `http::Added`).
    pub hsts: Option<Box<[u8]>>,
    /// HTTP/2 to clients.
    pub h2: H2Limits,
}

// The parsers' arrays hold as many fields as `max_header_count` allows.
const _: () = assert!(config::MAX_HEADER_COUNT <= crate::http::MAX_HEADERS as u64);

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        Settings {
            limits: Limits {
                max_head: c.limits.max_request_head,
                max_uri: c.limits.max_uri_length,
                max_headers: c.limits.max_header_count,
                max_body: c.limits.max_body_size,
            },
            tls: c.ssl.enabled,
            timeouts: c.timeouts.clone(),
            identity: c.identity.clone(),
            request_id: c.logging.request_id,
            max_connections_per_ip: c.process.max_connections_per_ip,
            hsts: c.ssl.hsts.as_ref().filter(|_| c.ssl.enabled).map(|h| {
                crate::http::headers::hsts_line(h.max_age.as_secs(), h.include_subdomains)
                    .into_boxed_slice()
            }),
            h2: H2Limits {
                enabled: c.http2.enabled,
                max_concurrent: c.http2.max_concurrent_streams,
                max_streams: match c.http2.max_requests {
                    0 => u32::MAX,
                    n => n,
                },
                ..H2Limits::default()
            },
        }
    }
}

/// A stream waiting in the worker's queue for a backend slot (`max_conns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    /// Its connection's key in the worker's slab, and that connection's id (a later connection
    /// in the same slot is another one).
    pub key: usize,
    pub id: u32,
    /// The stream's slot in its connection.
    pub slot: u32,
}

impl Ctx<'_> {
    /// The stream running now, as a backend connection lent to it names it.
    pub fn owner(&self) -> crate::upstream::Owner {
        crate::upstream::Owner {
            conn: self.key,
            slot: self.slot,
        }
    }
}

/// What ferrule adds to every response it sends: `Date` (when the backend sent none) and, over
/// TLS with `ssl.hsts`, `Strict-Transport-Security`. (A function of the two fields, not a method
/// of `Ctx`, so that `ctx.scratch` stays free to write into.)
pub fn added<'a>(
    date: &'a [u8; crate::http::date::IMF_FIXDATE_LEN],
    cfg: &'a Settings,
) -> crate::http::Added<'a> {
    crate::http::Added {
        date,
        hsts: cfg.hsts.as_deref(),
    }
}

/// The worker's state a connection (and its streams) works with while it runs.
pub struct Ctx<'a> {
    pub registry: &'a Registry,
    pub upstreams: &'a mut Upstreams,
    pub bufs: &'a mut BufPool,
    /// Scratch space for rewritten heads.
    pub scratch: &'a mut Vec<u8>,
    /// The pools and routes as this worker sees them, with its pickers.
    pub pools: &'a mut View,
    pub cfg: &'a Settings,
    pub now: Instant,
    /// The `Date` of responses: the worker's clock, refreshed once per poll round.
    pub date: &'a [u8; crate::http::date::IMF_FIXDATE_LEN],
    /// The worker is shutting down: no more keep-alive.
    pub draining: bool,
    /// The connection's key in the worker's slab, and its id (which tells it from a later
    /// connection in the same slot).
    pub key: usize,
    pub id: u32,
    /// The slot of the stream running now in its connection (HTTP/1.1: always 0).
    pub slot: u32,
    /// The connection came in on the https redirect listener: its requests are answered `308`
    /// to this TLS port.
    pub redirect: Option<u16>,
    pub stats: &'a WorkerStats,
    /// Streams waiting for a backend slot, in arrival order, and their count as the other workers
    /// see it.
    pub queue: &'a mut VecDeque<Waiting>,
    pub queued: &'a AtomicUsize,
    /// The worker's side of the access log.
    pub access_log: &'a mut Local,
    /// Where new request ids come from.
    pub ids: &'a mut RequestIds,
    /// The worker is handling a poll round's events, and runs the connections that ask
    /// ([`crate::connection::h2`]'s gathered frames) once more after the last of them: what a
    /// connection would write now may wait for that run, so that several streams' answers
    /// share one write.
    pub gathering: bool,
    /// Set by an HTTP/1.1 stream that held its request's first write to the backend while
    /// `gathering`: the worker pushes it after the round's last event (HAProxy's order: every
    /// receive of a round before the sends that wake the backends, which otherwise preempt the
    /// worker in the middle of its round).
    pub deferred: bool,
    /// The run follows an event of this stream's backend connection alone: an HTTP/2
    /// connection runs just that stream, unless its client side moves too.
    pub woken: Option<u32>,
}
