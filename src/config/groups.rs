//! Every key of config.json, once: its field, its name in the file, its type (which checks it)
//! and its default, grouped as the rest of the crate uses them (see `key.rs` for what
//! [`keys!`] makes of a group). The order of the groups, and of the keys in each, is the order in
//! which an unknown key's message lists them (with `backends` and `ssl`, which are read by
//! their own code: `pool.rs`, and the [`SslConfig`] group as a nested object).
//!
//! A pool (`pool.rs`) is made of the groups [`Balance`], [`Upstream`], [`Health`], [`Passive`],
//! [`Sticky`], [`Traffic`] and [`RateLimits`], and its backends: what each pool will carry once
//! there are several, every key
//! a pool leaves out taken from the top level.
//!
//! Below the groups, the defaults that take more than an expression: `workers` (the CPU cores)
//! and `upgrade_socket` (a path from `bind` and `port`).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::admin::{AllowedHost, Token};
use super::duration::{Interval, Lifetime, Timeout};
use super::key::{keys, Switch};
use super::names::{AccessLogFormat, HealthCheckMethod, LogLevel, StickyMode, Strategy};
use super::rate_limit::{RateLimit, RateLimitSetting};
use super::values::{
    AccessLogFile, AccessLogTarget, Bytes, CertificateFile, CertificateFiles, CookieName,
    CookieSecret, FilePath, HashKey, HealthCheckPath, HstsMaxAge, Int, Ip, ListenPort, Network,
    Port, StatusSet, Trusted, UpgradeSocket, MAX_HEADER_COUNT, MAX_SOCKET_PATH,
};
use crate::client_ip::{Cidr, TrustedProxies, DEFAULT_IPV6_CLIENT_PREFIX};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

keys! {
    /// The process and its listeners (all but `max_connections*` need a restart to change).
    pub struct Process / ProcessFile {
        /// `port`, default 8080: the client-facing port (0 picks a free port, for tests).
        port: ListenPort => u16 = 8080;
        /// `admin_port`, default 8081: the admin API's port (0 picks a free port).
        admin_port: ListenPort => u16 = 8081;
        /// `bind`, default `0.0.0.0`: the address the proxy listens on.
        bind: Ip => IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        /// `admin_bind`, default `127.0.0.1`: the address the admin API listens on.
        admin_bind: Ip => IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        /// `workers`, default one per CPU core: worker threads.
        workers: Int<usize, 1, 1024> => usize = default_workers();
        /// `max_connections`, default 16384: client connections held at once (split over
        /// workers).
        max_connections: Int<usize, 1, 1_000_000> => usize = 16_384;
        /// `max_connections_per_ip`, default 0 (no limit): client connections one address may
        /// hold at once, over all workers; more are closed at accept (and counted). Not applied
        /// with `proxy_protocol` (the socket peer is then the proxy in front).
        max_connections_per_ip: Int<u32, 0, 1_000_000> => u32 = 0;
        /// `shutdown_timeout`, default 30s: how long a graceful shutdown lets requests finish.
        shutdown_timeout: Timeout => Duration = secs(30);
        /// `upgrade_socket`, default `ferrule-<bind>-<port>.sock` in [`default_upgrade_dir`]
        /// (none when `port` is 0): the unix socket over which a new ferrule takes this one's
        /// listening sockets (`handover.rs`); `false` or `""`: none.
        upgrade_socket: UpgradeSocket => Option<String> = default_upgrade_socket(bind, port);
    }

    /// Who the client is.
    pub struct Identity / IdentityFile {
        /// `trusted_proxies`, default `[]`: CIDRs (or addresses) whose `X-Forwarded-For` and
        /// PROXY protocol headers are believed; everyone else's address is the socket's peer.
        trusted_proxies: Trusted => TrustedProxies = TrustedProxies::default();
        /// `proxy_protocol`, default false: every connection starts with a PROXY protocol header
        /// (v1 or v2) from a trusted balancer in front; one without a valid header is closed.
        proxy_protocol: bool = false;
        /// `ipv6_client_prefix`, default 64 (1 to 128): an IPv6 client is its network of this
        /// prefix length for `max_connections_per_ip`, sticky sessions by address and the
        /// `client_ip` hash key (`client_ip::client_key`); IPv4 clients are their address. Needs
        /// a restart.
        ipv6_client_prefix: Int<u8, 1, 128> => u8 = DEFAULT_IPV6_CLIENT_PREFIX;
    }

    /// How a pool balances (per pool).
    pub struct Balance / BalanceFile {
        /// `strategy`, default `round-robin`.
        strategy: Strategy = Strategy::RoundRobin;
        /// `hash_key`, default `client_ip`: what `consistent-hash` hashes.
        hash_key: HashKey = HashKey::ClientIp;
        /// `max_conns`, default 0 (no limit): requests in flight at most per backend, across all
        /// workers, for backends without their own `max_conns`.
        max_conns: Int<u32, 0, 1_000_000> => u32 = 0;
        /// `queue_timeout`, default 5s: how long a request waits for a slot when every candidate
        /// backend is at its `max_conns` (then 503).
        queue_timeout: Timeout => Duration = secs(5);
        /// `retries`, default 2: further backends tried when a request could not be delivered.
        retries: Int<u32, 0, 10> => u32 = 2;
        /// `fail_open`, default false: when every backend is down, send to all of them rather
        /// than answer 503.
        fail_open: bool = false;
    }

    /// The connections to a pool's backends (per pool).
    pub struct Upstream / UpstreamFile {
        /// `backend_timeout`, default 60s: longest wait for the backend's response head, and
        /// longest silence between two reads of its body.
        backend_timeout: Timeout => Duration = secs(60);
        /// `connect_timeout`, default 60s (nginx's): a slower backend TCP connect fails (and is
        /// retried).
        connect_timeout: Timeout => Duration = secs(60);
        /// `backend_ca_file`, default none: PEM file of the CA certificates that `https://`
        /// backends' certificates are verified against (a backend's own `ca_file` replaces it).
        /// When given, it must be a regular file at load.
        ca_file as "backend_ca_file": Option<FilePath> => Option<String> = None;
    }

    /// Active health checks (per pool).
    pub struct Health / HealthFile {
        /// `health_check_frequency`, default 10s: the interval of the checks; `"0s"` turns them
        /// off.
        frequency as "health_check_frequency": Interval => Duration = secs(10);
        /// `health_check_method`, default `http`: `http`, `tcp` or `none` (no active checks).
        method as "health_check_method": HealthCheckMethod = HealthCheckMethod::Http;
        /// `health_check_path`, default `/health` (for the http method).
        path as "health_check_path": HealthCheckPath => String = "/health".to_owned();
        /// `health_check_timeout`, default the smaller of `backend_timeout` and the interval: a
        /// probe that takes longer fails. See `PoolConfig::health_timeout`.
        timeout as "health_check_timeout": Option<Timeout> => Option<Duration> = None;
        /// `health_check_expect`, default `2xx,3xx`: statuses an http check accepts.
        expect as "health_check_expect": StatusSet = StatusSet::default();
        /// `health_check_rise`, default 2: consecutive successes that bring a backend up.
        rise as "health_check_rise": Int<u32, 1, 100> => u32 = 2;
        /// `health_check_fall`, default 3: consecutive failures that take it down.
        fall as "health_check_fall": Int<u32, 1, 100> => u32 = 3;
    }

    /// Passive health: failures the workers see (per pool).
    pub struct Passive / PassiveFile {
        /// `max_fails`, default 3 (0: passive checks off): failures seen by the workers (connect
        /// errors, resets, timeouts) within `fail_timeout` that take a backend down at once.
        max_fails: Int<u32, 0, 1000> => u32 = 3;
        /// `fail_timeout`, default 10s: the window of `max_fails`, and, without active checks,
        /// how long a backend taken down by them stays down before it is tried again.
        fail_timeout: Timeout => Duration = secs(10);
    }

    /// Sticky sessions (per pool).
    pub struct Sticky / StickyFile {
        /// `enable_sticky_sessions`, default false: a client keeps reaching the same backend.
        enabled as "enable_sticky_sessions": bool = false;
        /// `sticky_session_ttl`, default 1h: a binding unused this long expires.
        ttl as "sticky_session_ttl": Lifetime => Duration = secs(60 * 60);
        /// `sticky_mode`, default `ip`.
        mode as "sticky_mode": StickyMode = StickyMode::Ip;
        /// `sticky_max_entries`, default 100000: bindings kept in `ip` mode (oldest evicted
        /// first).
        max_entries as "sticky_max_entries": Int<usize, 1, 10_000_000> => usize = 100_000;
        /// `sticky_cookie_name`, default `FERRULE_BACKEND`.
        cookie_name as "sticky_cookie_name": CookieName => String = "FERRULE_BACKEND".to_owned();
        /// `sticky_cookie_strip`, default false: remove the cookie before the request goes on.
        cookie_strip as "sticky_cookie_strip": bool = false;
        /// `sticky_cookie_secret`, default none: the cookie's value is then a MAC of the backend
        /// under this key (at least 16 characters), which clients cannot compute; without it, a
        /// fixed hash anyone can. Redacted in `GET /config`.
        cookie_secret as "sticky_cookie_secret": Option<CookieSecret> => Option<String> = None;
    }

    /// Traffic control (per pool): slow start, the retry budget, outlier ejection (see
    /// `health/outlier.rs` and `balancer/budget.rs`).
    pub struct Traffic / TrafficFile {
        /// `slow_start`, default `"0s"` (off): a backend that comes back (health, passive
        /// recovery, enabled, added, or back from an ejection) gets a share of its pool's
        /// requests that grows from 10 % to its full weight over this, as HAProxy's `slowstart`.
        /// Not for `consistent-hash`, nor for sticky bindings.
        slow_start: Interval => Duration = Duration::ZERO;
        /// `retry_budget`, default 20 (percent, 0 to 100): retries may add at most this share
        /// of the pool's requests over the last 10 seconds (at least 3 a second); a request the
        /// budget keeps from retrying gets the error it would have got without retries.
        retry_budget: Int<u32, 0, 100> => u32 = 20;
        /// `outlier_detection`, default none (`false` turns off what a pool would inherit):
        /// backends answering 5xx in a row are ejected for a while (see [`Outlier`]).
        outlier_detection: Switch<OutlierFile> => Option<Outlier> = None;
    }

    /// `outlier_detection`: `{"consecutive_5xx": 5, "base_ejection": "30s",
    /// "max_ejected_percent": 10}` (each optional).
    pub struct Outlier / OutlierFile {
        /// `outlier_detection.consecutive_5xx`, default 5 (1 to 1000): 5xx responses in a row
        /// that eject a backend.
        consecutive_5xx: Int<u32, 1, 1000> => u32 = 5;
        /// `outlier_detection.base_ejection`, default 30s: an ejection lasts this times the
        /// backend's ejections so far (the first 1x, the next 2x, ...), at most 5 minutes (or
        /// this, when longer).
        base_ejection: Timeout => Duration = secs(30);
        /// `outlier_detection.max_ejected_percent`, default 10 (0 to 100): at most this share of
        /// the pool's backends is ejected at once (at least one may always be), and never the
        /// last one that is available.
        max_ejected_percent: Int<u32, 0, 100> => u32 = 10;
    }

    /// The client side's timeouts.
    pub struct Timeouts / TimeoutsFile {
        /// `client_header_timeout`, default 60s: a request head must arrive whole within this
        /// (slowloris).
        client_header as "client_header_timeout": Timeout => Duration = secs(60);
        /// `client_body_timeout`, default 60s: longest silence between two reads of a request
        /// body.
        client_body as "client_body_timeout": Timeout => Duration = secs(60);
        /// `send_timeout`, default 60s: longest time a write to a client or backend may make no
        /// progress.
        send as "send_timeout": Timeout => Duration = secs(60);
        /// `keepalive_timeout`, default 75s: an idle client keep-alive connection is closed
        /// after this.
        keepalive as "keepalive_timeout": Timeout => Duration = secs(75);
        /// `tunnel_timeout`, default 60s: an upgraded (WebSocket) tunnel idle in both directions
        /// closes.
        tunnel as "tunnel_timeout": Timeout => Duration = secs(60);
        /// `tls_handshake_timeout`, default 10s (at most 24h, like every timeout): a client or
        /// backend TLS handshake must complete within this.
        tls_handshake as "tls_handshake_timeout": Timeout => Duration = secs(10);
    }

    /// Sizes and limits of a connection and its requests.
    pub struct Limits / LimitsFile {
        /// `buffer_size`, default 131072 bytes: each direction of a busy connection buffers at
        /// most this.
        buffer_size: Bytes<4096> => usize = 131_072;
        /// `max_request_head`, default 16384 bytes (or `buffer_size`, when smaller): a larger
        /// request head gets 431.
        max_request_head: Bytes<1024> => usize = buffer_size.min(16_384);
        /// `max_uri_length`, default 8192 bytes (or `max_request_head`, when smaller): a longer
        /// request target gets 414.
        max_uri_length: Bytes<256> => usize = max_request_head.min(8192);
        /// `max_header_count`, default 100 (at most 256): a request head with more fields gets
        /// 431, a response head with more is a 502.
        max_header_count: Int<usize, 1, MAX_HEADER_COUNT> => usize = 100;
        /// `max_body_size`, default 0 (no limit): a request body larger than this many bytes gets
        /// 413 (a `Content-Length` before anything is forwarded; a chunked body when it grows
        /// past it).
        max_body_size: Int<u64, 0, 4_000_000_000> => u64 = 0;
    }

    /// The worker's idle connections to backends.
    pub struct Keepalive / KeepaliveFile {
        /// `backend_keepalive`, default 1024: idle connections kept per backend per worker.
        connections as "backend_keepalive": Int<usize, 0, 100_000> => usize = 1024;
        /// `backend_keepalive_timeout`, default 60s: an idle pooled backend connection is closed
        /// after this.
        timeout as "backend_keepalive_timeout": Timeout => Duration = secs(60);
    }

    /// Backend names (see `crate::dns`).
    pub struct Dns / DnsFile {
        /// `dns_refresh`, default 30s: how often backend host names are looked up again (0: only
        /// at load).
        refresh as "dns_refresh": Interval => Duration = secs(30);
        /// `hosts_file`, default none: an `/etc/hosts`-format file consulted before the system
        /// resolver for backend names (read at load; it must exist).
        hosts_file: Option<FilePath> => Option<String> = None;
    }

    /// What guards the admin API, and what it may do.
    pub struct Admin / AdminFile {
        /// `admin_token`, default none: when set, every admin request but `GET /health` needs
        /// `Authorization: Bearer <token>`. At least 16 characters; required when `admin_bind`
        /// is not a loopback address.
        token as "admin_token": Option<Token> => Option<String> = None;
        /// `admin_allowed_hosts`, default `[]`: the names (or addresses) besides `localhost`, the
        /// loopback addresses and `admin_bind` that an admin request's `Host` may carry (with or
        /// without the admin port); any other `Host` is refused (DNS rebinding). Lowercase, IP
        /// addresses in their canonical form, without brackets.
        allowed_hosts as "admin_allowed_hosts": Vec<AllowedHost> => Vec<String> = Vec::new();
        /// `admin_files_dir`, default none: a directory under which the admin API may name files
        /// (`ca_file` of `POST /backends`), besides the config file's own directory.
        files_dir as "admin_files_dir": Option<FilePath> => Option<String> = None;
        /// `allowed_backend_networks`, default `[]`: CIDRs where a backend may be although its
        /// address is link-local (169.254.0.0/16, fe80::/10: cloud metadata endpoints live
        /// there), which is otherwise refused, in config.json and through the admin API.
        allowed_backend_networks: Vec<Network> => Vec<Cidr> = Vec::new();
    }

    /// ferrule's own log and the access log.
    pub struct Logging / LoggingFile {
        /// `log_level`, default `info` (`RUST_LOG`, when set, wins): the level of ferrule's own
        /// log.
        level as "log_level": LogLevel = LogLevel::Info;
        /// `access_log`, default `"stdout"`: where a line per request goes (`false`: nowhere).
        access_log: AccessLogFile => AccessLogTarget = AccessLogTarget::Stdout;
        /// `access_log_format`, default `combined`.
        access_log_format: AccessLogFormat = AccessLogFormat::Combined;
        /// `request_id`, default true: a request without `X-Request-Id` gets one (a request that
        /// has one keeps it); either way it is logged with the request.
        request_id: bool = true;
    }

    /// HTTP/2 to clients (need a restart to change).
    pub struct Http2 / Http2File {
        /// `http2`, default true: offer HTTP/2: ALPN `h2` (before `http/1.1`) on the TLS port,
        /// and a connection that opens with the HTTP/2 preface on the plain port (h2c with prior
        /// knowledge). `false`: HTTP/1.1 only.
        enabled as "http2": bool = true;
        /// `http2_max_concurrent_streams`, default 128 (1 to 1000): streams one HTTP/2 connection
        /// may have open at once; more are refused (REFUSED_STREAM), and announced in SETTINGS.
        max_concurrent_streams as "http2_max_concurrent_streams": Int<u32, 1, 1000> => u32 = 128;
        /// `http2_max_requests`, default 100000 (0: no limit): streams one HTTP/2 connection
        /// serves over its life; the last is answered with GOAWAY NO_ERROR naming it, and the
        /// client opens a new connection for more (nginx's `keepalive_requests`, HAProxy's
        /// `tune.h2.fe.max-total-streams`). A connection's life stays bounded, and with it what
        /// it may spend of the budgets kept per connection; a busy client's connections move
        /// between workers.
        max_requests as "http2_max_requests": Int<u32, 0, 1_000_000_000> => u32 = 100_000;
    }

    /// Rate limits (per pool; `rate_limit` per route too: `routes.rs`). See `crate::limits`.
    pub struct RateLimits / RateLimitsFile {
        /// `rate_limit`, default none: `{"requests_per_second": 50, "burst": 100, "key":
        /// "client_ip"}` (`rate_limit.rs`), a token bucket per key shared by the workers; a
        /// request over it gets 429. `false`: none (in a pool, whatever the top level has).
        limit as "rate_limit": RateLimitSetting => Option<RateLimit> = None;
        /// `rate_limit_exempt`, default `[]`: CIDRs whose clients are never limited.
        exempt as "rate_limit_exempt": Vec<Network> => Vec<Cidr> = Vec::new();
    }

    /// The rate limits' table (top level only; needs a restart).
    pub struct RateLimitTable / RateLimitTableFile {
        /// `rate_limit_max_keys`, default 65536 (64 to 16777216, rounded up to a power of
        /// two): keys the table of buckets holds at once, 8 bytes each; past it the oldest go.
        max_keys as "rate_limit_max_keys": Int<usize, 64, 16_777_216> => usize = 65_536;
    }

    /// The `ssl` object: TLS termination on the client side.
    pub struct SslConfig / SslFile {
        /// `ssl.enabled`, default `false`: with `true`, at least one certificate and key are
        /// required (`cert_file`/`key_file` or `certificates`), and every file named must open.
        enabled: bool = false;
        /// `ssl.cert_file`, default `""` (none): PEM certificate chain, the first certificate.
        /// Checked, with the other files, once every key has been read (`Config::check_files`).
        cert_file: String = String::new();
        /// `ssl.key_file`, default `""` (none): PEM private key of `cert_file`.
        key_file: String = String::new();
        /// `ssl.certificates`, default `[]`: more certificates, each `{"cert_file": ...,
        /// "key_file": ...}` with both keys required. See [`SslConfig::cert_key_pairs`] for the
        /// order.
        certificates: Vec<CertificateFile> => Vec<CertificateFiles> = Vec::new();
        /// `ssl.redirect_http_port`, default none: a plain-HTTP port (1-65535, not `port` nor
        /// `admin_port`) whose requests are redirected to https.
        redirect_http_port: Option<Port> => Option<u16> = None;
        /// `ssl.hsts`, default none (off): `Strict-Transport-Security` on every response over
        /// TLS that has none from its backend.
        hsts: Option<HstsFile> => Option<Hsts> = None;
    }

    /// `ssl.hsts`: `{"max_age": "8760h", "include_subdomains": false}` (both optional).
    pub struct Hsts / HstsFile {
        /// `ssl.hsts.max_age`, default `"8760h"` (a year, the HSTS preload list's minimum):
        /// whole seconds, at most two years; `"0s"` tells browsers to forget the policy.
        max_age: HstsMaxAge => Duration = Hsts::DEFAULT_MAX_AGE;
        /// `ssl.hsts.include_subdomains`, default `false`: the policy covers every subdomain too.
        include_subdomains: bool = false;
    }
}

impl Hsts {
    /// Default `max_age`: 365 days.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(365 * 24 * 60 * 60);
}

impl Health {
    /// Active health checks run (a method other than `none`, a non-zero interval).
    pub fn active(&self) -> bool {
        self.method != HealthCheckMethod::None && !self.frequency.is_zero()
    }
}

impl SslConfig {
    /// Every certificate with its key, as `(cert_file, key_file)`, in order: `cert_file` and
    /// `key_file` first when either is set (with `enabled`, validation makes sure both are),
    /// then `certificates`.
    pub fn cert_key_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        let single = !self.cert_file.is_empty() || !self.key_file.is_empty();
        let first = single.then_some((self.cert_file.as_str(), self.key_file.as_str()));
        first.into_iter().chain(
            self.certificates
                .iter()
                .map(|c| (c.cert_file.as_str(), c.key_file.as_str())),
        )
    }
}

/// The default `upgrade_socket` for `bind`:`port`: `ferrule-<bind>-<port>.sock` in
/// [`default_upgrade_dir`], none for port 0 (a free port picked by the kernel: no two processes
/// would agree on it), nor when that path would not fit a `sockaddr_un`.
pub(super) fn default_upgrade_socket(bind: IpAddr, port: u16) -> Option<String> {
    let dir = default_upgrade_dir(
        std::env::var_os("XDG_RUNTIME_DIR").as_deref(),
        // SAFETY: getuid has no preconditions and cannot fail.
        unsafe { libc::getuid() },
        &std::env::temp_dir(),
    );
    upgrade_socket_in(&dir, bind, port)
}

/// `ferrule-<bind>-<port>.sock` in `dir` (none for port 0, or a path too long for a unix socket).
pub(super) fn upgrade_socket_in(dir: &Path, bind: IpAddr, port: u16) -> Option<String> {
    let name = match bind {
        IpAddr::V4(ip) => format!("ferrule-{ip}-{port}.sock"),
        IpAddr::V6(ip) => format!("ferrule-[{ip}]-{port}.sock"),
    };
    let path = dir.join(name).to_string_lossy().into_owned();
    (port != 0 && path.len() <= MAX_SOCKET_PATH).then_some(path)
}

/// The directory of the default upgrade socket, one only its user can enter:
/// `$XDG_RUNTIME_DIR` (set by the login session: mode 0700, the user's own), else `/run/ferrule`
/// for root, else `<temp dir>/ferrule-<uid>` (created mode 0700 at start). `handover.rs` refuses
/// a directory that someone else created.
pub fn default_upgrade_dir(
    xdg_runtime_dir: Option<&std::ffi::OsStr>,
    uid: u32,
    temp_dir: &Path,
) -> PathBuf {
    match xdg_runtime_dir {
        // the spec asks for an absolute path; anything else is ignored
        Some(dir) if Path::new(dir).is_absolute() => PathBuf::from(dir),
        _ if uid == 0 => PathBuf::from("/run/ferrule"),
        _ => temp_dir.join(format!("ferrule-{uid}")),
    }
}

/// One worker per CPU core the process may use (1 if unknown), within the `workers` range.
pub(super) fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(1024))
}
