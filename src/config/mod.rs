//! `config.json`: the typed configuration, its defaults, and its validation.
//!
//! The file is read once at start (and later on reload) by `main.rs`; `lib.rs::start` takes a
//! validated [`Config`]. Nothing here runs on a worker thread: backend host names are resolved here,
//! at load time, so no worker ever blocks on DNS.
//!
//! Two layers. The file layer (`file.rs`, `backend.rs`) is config.json as serde reads it:
//! `#[derive(Deserialize)]` structs with `deny_unknown_fields`, every key an `Option` (absent and
//! `null` both mean "the default"), each value checked by its type as it is read. The effective
//! layer (this file) is what the rest of the crate uses: plain `u16`, `Duration`, `IpAddr`, every
//! default applied, backends resolved. [`Config::from_json_str`] goes from one to the other;
//! `Serialize` on [`Config`] goes back, writing the file form so that the output parses again.
//!
//! Every error is one line, `<field path>: <problem>`. serde's own messages are not used: `de.rs`
//! deserializes through an adapter whose error type words them (see its header). Kept by hand,
//! because serde has nothing better: the duration parser (`duration.rs`, its header says why), the
//! backend URL parser (`backend.rs`: a URL crate would accept paths, user info and schemes this
//! format refuses, and its messages would not name the fault), the checks that need more than
//! one value (`checks.rs`), the unknown-key suggestion and the refusal of a key given twice
//! (`de.rs`: `serde_json` keeps the last of them).
//!
//! Files: `de.rs` serde plumbing and messages; `file.rs` the file layer and its value types
//! (`admin.rs` those of the keys that guard the admin API);
//! `backend.rs` backends (entry, URL, duplicates, resolution); `duration.rs` durations;
//! `checks.rs` checks between keys, on files, and the warnings; `tests/` the whole-document
//! tests.
//!
//! How to add a key:
//! 1. a field on [`Config`] (or [`SslConfig`], ...) with a doc comment naming the key and its
//!    default;
//! 2. the same key on `ConfigFile` (or `SslFile`, ...) in `file.rs` as `Option<T>`, where `T`
//!    checks the value (`Int<u32, 1, 100>`, `Timeout`, `bool`, a new `try_from` newtype); its
//!    place among the fields is its place in an unknown key's "expected one of" list;
//! 3. its line in `ConfigFile::into_config` (`key: key.map_or(DEFAULT, Int::get)`) and in
//!    `From<Config> for ConfigFile`: both destructure every field, so the compiler points there;
//! 4. in `checks.rs`, a check in `check_related_fields` if it must agree with another key, a
//!    line in [`Config::warnings`] if some values are allowed but probably not meant; and tests.
//!
//! The unknown-key list needs no edit: serde hands over each struct's field names.

mod admin;
mod backend;
mod checks;
mod de;
pub use de::{describe, parse_json, JsonError};
mod duration;
mod file;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::backend::{backend_from_json, URL_MAX_LENGTH, URL_PATTERN};
pub use self::checks::check_backend_addr;
pub use self::duration::{format_duration, parse_duration};
use self::file::ConfigFile;

/// Load-balancing strategy (`strategy` in config.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Strategy {
    /// `round-robin`: smooth weighted round-robin (equal weights give plain round-robin).
    RoundRobin,
    /// `weighted-round-robin`: the same smooth weighted algorithm, named for the original spec.
    WeightedRoundRobin,
    /// `least-conn`: fewest in-flight requests relative to weight, ties broken round-robin.
    LeastConn,
    /// `p2c`: the power of two random choices on in-flight requests relative to weight.
    P2c,
    /// `random`: weighted random.
    Random,
    /// `consistent-hash`: Maglev hashing of `hash_key`.
    ConsistentHash,
}

impl Strategy {
    /// Every strategy, in the order error messages list them.
    pub const ALL: [Strategy; 6] = [
        Strategy::RoundRobin,
        Strategy::WeightedRoundRobin,
        Strategy::LeastConn,
        Strategy::P2c,
        Strategy::Random,
        Strategy::ConsistentHash,
    ];

    /// The name config.json and the admin API use (`round-robin`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round-robin",
            Strategy::WeightedRoundRobin => "weighted-round-robin",
            Strategy::LeastConn => "least-conn",
            Strategy::P2c => "p2c",
            Strategy::Random => "random",
            Strategy::ConsistentHash => "consistent-hash",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<String> for Strategy {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        let names = Strategy::ALL.map(Strategy::name);
        Strategy::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                format!(
                    "unknown strategy {name:?} (expected {})",
                    de::or_list(&names)
                )
            })
    }
}

impl From<Strategy> for &'static str {
    fn from(strategy: Strategy) -> Self {
        strategy.name()
    }
}

/// What `consistent-hash` hashes (`hash_key`): `"client_ip"` (default), `"header:NAME"` or
/// `"cookie:NAME"`; a request without that header or cookie falls back to its client address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum HashKey {
    ClientIp,
    Header(String),
    Cookie(String),
}

impl TryFrom<String> for HashKey {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let token = |name: &str| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        if text == "client_ip" {
            return Ok(HashKey::ClientIp);
        }
        let parsed = match text.split_once(':') {
            Some(("header", name)) if token(name) => Some(HashKey::Header(name.to_owned())),
            Some(("cookie", name)) if token(name) => Some(HashKey::Cookie(name.to_owned())),
            _ => None,
        };
        parsed.ok_or_else(|| {
            format!(
                "{text:?} is not a hash key (expected \"client_ip\", \"header:NAME\" or \"cookie:NAME\", \
                 NAME a field or cookie name)"
            )
        })
    }
}

impl From<HashKey> for String {
    fn from(key: HashKey) -> String {
        match key {
            HashKey::ClientIp => "client_ip".into(),
            HashKey::Header(name) => format!("header:{name}"),
            HashKey::Cookie(name) => format!("cookie:{name}"),
        }
    }
}

/// How a client is recognised for sticky sessions (`sticky_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum StickyMode {
    /// `ip`: by client address, in a table shared by the workers.
    Ip,
    /// `cookie`: by a cookie ferrule sets, naming the backend.
    Cookie,
}

impl StickyMode {
    pub fn name(self) -> &'static str {
        match self {
            StickyMode::Ip => "ip",
            StickyMode::Cookie => "cookie",
        }
    }
}

impl TryFrom<String> for StickyMode {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "ip" => Ok(StickyMode::Ip),
            "cookie" => Ok(StickyMode::Cookie),
            _ => Err(format!(
                "unknown sticky mode {name:?} (expected ip or cookie)"
            )),
        }
    }
}

impl From<StickyMode> for &'static str {
    fn from(mode: StickyMode) -> Self {
        mode.name()
    }
}

/// Where the access log goes (`access_log`): `false`, `"stdout"` (the default), `"stderr"` or a
/// file path (appended to, created if missing; reopened on `SIGUSR1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Off,
    Stdout,
    Stderr,
    File(String),
}

/// How access log lines are written (`access_log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum AccessLogFormat {
    /// `combined`: Apache/nginx combined, then the backend, the upstream and the total time.
    Combined,
    /// `json`: one object per line, with the request id, bytes each way, TLS version and SNI.
    Json,
}

impl AccessLogFormat {
    pub fn name(self) -> &'static str {
        match self {
            AccessLogFormat::Combined => "combined",
            AccessLogFormat::Json => "json",
        }
    }
}

impl TryFrom<String> for AccessLogFormat {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "combined" => Ok(AccessLogFormat::Combined),
            "json" => Ok(AccessLogFormat::Json),
            _ => Err(format!(
                "unknown access log format {name:?} (expected combined or json)"
            )),
        }
    }
}

impl From<AccessLogFormat> for &'static str {
    fn from(format: AccessLogFormat) -> Self {
        format.name()
    }
}

/// The level of ferrule's own log (`log_level`): `off`, `error`, `warn`, `info`, `debug` or
/// `trace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "&'static str")]
pub struct LogLevel(pub log::LevelFilter);

impl TryFrom<String> for LogLevel {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        name.parse::<log::LevelFilter>().map(LogLevel).map_err(|_| {
            format!("unknown log level {name:?} (expected off, error, warn, info, debug or trace)")
        })
    }
}

impl From<LogLevel> for &'static str {
    fn from(level: LogLevel) -> Self {
        match level.0 {
            log::LevelFilter::Off => "off",
            log::LevelFilter::Error => "error",
            log::LevelFilter::Warn => "warn",
            log::LevelFilter::Info => "info",
            log::LevelFilter::Debug => "debug",
            log::LevelFilter::Trace => "trace",
        }
    }
}

/// Statuses a health check accepts (`health_check_expect`): a comma-separated list of codes
/// (`200`), ranges (`200-299`) and classes (`2xx`); default `"2xx,3xx"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct StatusSet {
    text: String,
    ranges: Vec<(u16, u16)>,
}

impl StatusSet {
    pub fn contains(&self, status: u16) -> bool {
        self.ranges
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&status))
    }
}

impl Default for StatusSet {
    fn default() -> Self {
        StatusSet {
            text: "2xx,3xx".into(),
            ranges: vec![(200, 299), (300, 399)],
        }
    }
}

impl TryFrom<String> for StatusSet {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bad = || {
            format!(
                "{text:?} is not a status list (codes, ranges and classes such as \"200,204\", \
                 \"200-299\" or \"2xx,3xx\", 100 to 599)"
            )
        };
        let code = |s: &str| {
            s.parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c) && s.len() == 3)
        };
        let mut ranges = Vec::new();
        for part in text.split(',').map(str::trim) {
            let range = if let Some(class) = part.strip_suffix("xx") {
                match class {
                    "1" | "2" | "3" | "4" | "5" => {
                        let c: u16 = class.parse().map_err(|_| bad())?;
                        (c * 100, c * 100 + 99)
                    }
                    _ => return Err(bad()),
                }
            } else if let Some((lo, hi)) = part.split_once('-') {
                match (code(lo.trim()), code(hi.trim())) {
                    (Some(lo), Some(hi)) if lo <= hi => (lo, hi),
                    _ => return Err(bad()),
                }
            } else {
                let c = code(part).ok_or_else(bad)?;
                (c, c)
            };
            ranges.push(range);
        }
        Ok(StatusSet { text, ranges })
    }
}

impl From<StatusSet> for String {
    fn from(set: StatusSet) -> String {
        set.text
    }
}

/// Active health check kind (`health_check_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum HealthCheckMethod {
    Http,
    Tcp,
    /// No active checks (passive ones still run).
    None,
}

impl HealthCheckMethod {
    /// Every method, in the order error messages list them.
    pub const ALL: [HealthCheckMethod; 3] = [
        HealthCheckMethod::Http,
        HealthCheckMethod::Tcp,
        HealthCheckMethod::None,
    ];

    /// The name config.json uses (`http`, `tcp`).
    pub fn name(self) -> &'static str {
        match self {
            HealthCheckMethod::Http => "http",
            HealthCheckMethod::Tcp => "tcp",
            HealthCheckMethod::None => "none",
        }
    }
}

impl fmt::Display for HealthCheckMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<String> for HealthCheckMethod {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        let names = HealthCheckMethod::ALL.map(HealthCheckMethod::name);
        HealthCheckMethod::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| format!("unknown method {name:?} (expected {})", de::or_list(&names)))
    }
}

impl From<HealthCheckMethod> for &'static str {
    fn from(method: HealthCheckMethod) -> Self {
        method.name()
    }
}

/// Scheme of a backend URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// One `backends[]` entry, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConfig {
    /// The URL as written in the file (`http://127.0.0.1:8082`).
    pub url: String,
    pub scheme: Scheme,
    /// Host as written (used for TLS SNI and the health check's `Host`).
    pub host: String,
    pub port: u16,
    /// The address the host resolved to at load time.
    pub addr: SocketAddr,
    /// Weight for the weighted strategies, at least 1.
    pub weight: u32,
    /// `backends[i].max_conns`: requests in flight at most on this backend, across all workers
    /// (0: no limit); absent, the top-level `max_conns`.
    pub max_conns: Option<u32>,
}

/// TLS to one backend: `backends[i].ca_file` and `backends[i].tls_skip_verify`. Both only
/// matter for an `https://` backend; on an `http://` one they are a warning.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BackendTls {
    /// `backends[i].ca_file`, default none: PEM file of the CA certificates this backend's
    /// certificate is verified against, in place of `backend_ca_file`. Must exist at load.
    pub ca_file: Option<String>,
    /// `backends[i].tls_skip_verify`, default `false`: `true` accepts any certificate from this
    /// backend (tests, self-signed labs). Always a warning.
    pub tls_skip_verify: bool,
}

/// The TLS settings of a backend that has no entry in [`Config::backend_tls`].
static NO_BACKEND_TLS: BackendTls = BackendTls {
    ca_file: None,
    tls_skip_verify: false,
};

/// `ssl` block: TLS termination on the client side.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SslConfig {
    /// `ssl.enabled`, default `false`: with `true`, at least one certificate and key are
    /// required (`cert_file`/`key_file` or `certificates`), and every file named must open.
    pub enabled: bool,
    /// `ssl.cert_file`, default `""` (none): PEM certificate chain, the first certificate.
    pub cert_file: String,
    /// `ssl.key_file`, default `""` (none): PEM private key of `cert_file`.
    pub key_file: String,
    /// `ssl.certificates`, default `[]`: more certificates, each `{"cert_file": ..., "key_file":
    /// ...}` with both keys required. See [`SslConfig::cert_key_pairs`] for the order.
    pub certificates: Vec<CertificateFiles>,
    /// `ssl.redirect_http_port`, default none: a plain-HTTP port (1-65535, not `port` nor
    /// `admin_port`) whose requests are redirected to https.
    pub redirect_http_port: Option<u16>,
    /// `ssl.hsts`, default none (off): `Strict-Transport-Security` on every response over TLS
    /// that has none from its backend.
    pub hsts: Option<Hsts>,
}

/// `ssl.hsts`: `{"max_age": "8760h", "include_subdomains": false}` (both optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hsts {
    /// `ssl.hsts.max_age`, default `"8760h"` (a year, the HSTS preload list's minimum): whole
    /// seconds, at most two years; `"0s"` tells browsers to forget the policy.
    pub max_age: Duration,
    /// `ssl.hsts.include_subdomains`, default `false`: the policy covers every subdomain too.
    pub include_subdomains: bool,
}

impl Hsts {
    /// Default `max_age`: 365 days.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(365 * 24 * 60 * 60);
}

/// One `ssl.certificates[]` entry: a PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert_file: String,
    pub key_file: String,
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

/// The whole configuration, every field with its default applied.
///
/// `Serialize` writes the file form (durations as `"1m30s"`, backends as `{"url", "weight"}`),
/// which [`Config::from_json_str`] reads back to an equal `Config`: for reload diffs and, through
/// [`Config::redacted`], for showing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "ConfigFile")]
pub struct Config {
    /// Client-facing port (`port`, default 8080; 0 picks a free port, for tests).
    pub port: u16,
    /// Admin API port (`admin_port`, default 8081; 0 picks a free port).
    pub admin_port: u16,
    /// Address the proxy listens on (`bind`, default `0.0.0.0`).
    pub bind: IpAddr,
    /// Address the admin API listens on (`admin_bind`, default `127.0.0.1`).
    pub admin_bind: IpAddr,
    /// Worker threads (`workers`, default: one per CPU core).
    pub workers: usize,
    pub strategy: Strategy,
    pub backends: Vec<BackendConfig>,
    /// TLS settings of `backends[i]` at index `i` (see [`Config::tls_of_backend`]). They sit
    /// beside `backends` rather than in [`BackendConfig`] because the balancer's tests and the
    /// hot-path bench spell out `BackendConfig`'s fields; moving them in is a later, small edit.
    pub backend_tls: Vec<BackendTls>,
    /// `backend_ca_file`, default none: PEM file of the CA certificates that `https://` backends'
    /// certificates are verified against (a backend's own `ca_file` replaces it). When given, it
    /// must be a regular file at load.
    pub backend_ca_file: Option<String>,
    /// `dns_refresh`, default 30s: how often backend host names are looked up again (0: only at
    /// load). See `crate::dns`.
    pub dns_refresh: Duration,
    /// `hosts_file`, default none: an `/etc/hosts`-format file consulted before the system
    /// resolver for backend names (read at load; it must exist).
    pub hosts_file: Option<String>,
    /// `health_check_frequency`, default 10s.
    pub health_check_frequency: Duration,
    /// `health_check_method`, default `http`: `http`, `tcp` or `none` (no active checks).
    pub health_check_method: HealthCheckMethod,
    /// `health_check_timeout`, default the smaller of `backend_timeout` and the interval: a probe
    /// that takes longer fails. See [`Config::health_check_timeout`].
    pub health_check_timeout: Option<Duration>,
    /// `health_check_expect`, default `2xx,3xx`: statuses an http check accepts.
    pub health_check_expect: StatusSet,
    /// `health_check_rise`, default 2: consecutive successes that bring a backend up.
    pub health_check_rise: u32,
    /// `health_check_fall`, default 3: consecutive failures that take it down.
    pub health_check_fall: u32,
    /// `max_fails`, default 3 (0: passive checks off): failures seen by the workers (connect
    /// errors, resets, timeouts) within `fail_timeout` that take a backend down at once.
    pub max_fails: u32,
    /// `fail_timeout`, default 10s: the window of `max_fails`, and, without active checks, how
    /// long a backend taken down by them stays down before it is tried again.
    pub fail_timeout: Duration,
    /// `fail_open`, default false: when every backend is down, send to all of them rather than
    /// answer 503.
    pub fail_open: bool,
    /// `admin_token`, default none: when set, every admin request but `GET /health` needs
    /// `Authorization: Bearer <token>`. At least 16 characters; required when `admin_bind` is
    /// not a loopback address.
    pub admin_token: Option<String>,
    /// `admin_allowed_hosts`, default `[]`: the names (or addresses) besides `localhost`, the
    /// loopback addresses and `admin_bind` that an admin request's `Host` may carry (with or
    /// without the admin port); any other `Host` is refused (DNS rebinding). Lowercase, IP
    /// addresses in their canonical form, without brackets.
    pub admin_allowed_hosts: Vec<String>,
    /// `admin_files_dir`, default none: a directory under which the admin API may name files
    /// (`ca_file` of `POST /backends`), besides the config file's own directory.
    pub admin_files_dir: Option<String>,
    /// `allowed_backend_networks`, default `[]`: CIDRs where a backend may be although its
    /// address is link-local (169.254.0.0/16, fe80::/10: cloud metadata endpoints live there),
    /// which is otherwise refused, in config.json and through the admin API.
    pub allowed_backend_networks: Vec<crate::client_ip::Cidr>,
    /// `health_check_path`, default `/health` (for the http method).
    pub health_check_path: String,
    /// `backend_timeout`, default 60s: longest wait for the backend's response head, and longest
    /// silence between two reads of its body.
    pub backend_timeout: Duration,
    /// `connect_timeout`, default 60s (nginx's): a slower backend TCP connect fails (and is retried).
    pub connect_timeout: Duration,
    /// `client_header_timeout`, default 60s: a request head must arrive whole within this (slowloris).
    pub client_header_timeout: Duration,
    /// `client_body_timeout`, default 60s: longest silence between two reads of a request body.
    pub client_body_timeout: Duration,
    /// `send_timeout`, default 60s: longest time a write to a client or backend may make no progress.
    pub send_timeout: Duration,
    /// `keepalive_timeout`, default 75s: an idle client keep-alive connection is closed after this.
    pub keepalive_timeout: Duration,
    /// `tunnel_timeout`, default 60s: an upgraded (WebSocket) tunnel idle in both directions closes.
    pub tunnel_timeout: Duration,
    /// `tls_handshake_timeout`, default 10s (at most 24h, like every timeout): a client or backend
    /// TLS handshake must complete within this.
    pub tls_handshake_timeout: Duration,
    /// `backend_keepalive_timeout`, default 60s: an idle pooled backend connection is closed after this.
    pub backend_keepalive_timeout: Duration,
    /// `backend_keepalive`, default 1024: idle connections kept per backend per worker.
    pub backend_keepalive: usize,
    /// `retries`, default 2: further backends tried when a request could not be delivered.
    pub retries: u32,
    /// `max_request_head`, default 16384 bytes: a larger request head gets 431.
    pub max_request_head: usize,
    /// `max_uri_length`, default 8192 bytes: a longer request target gets 414.
    pub max_uri_length: usize,
    /// `max_connections`, default 16384: client connections held at once (split over workers).
    pub max_connections: usize,
    /// `max_connections_per_ip`, default 0 (no limit): client connections one address may hold at
    /// once, over all workers; more are closed at accept (and counted). Not applied with
    /// `proxy_protocol` (the socket peer is then the proxy in front).
    pub max_connections_per_ip: u32,
    /// `max_header_count`, default 100 (at most 256): a request head with more fields gets 431,
    /// a response head with more is a 502.
    pub max_header_count: usize,
    /// `max_body_size`, default 0 (no limit): a request body larger than this many bytes gets 413
    /// (a `Content-Length` before anything is forwarded; a chunked body when it grows past it).
    pub max_body_size: u64,
    /// `buffer_size`, default 131072 bytes: each direction of a busy connection buffers at most this.
    pub buffer_size: usize,
    /// `shutdown_timeout`, default 30s: how long a graceful shutdown lets requests finish.
    pub shutdown_timeout: Duration,
    /// `upgrade_socket`, default `ferrule-<bind>-<port>.sock` in [`default_upgrade_dir`] (none
    /// when `port` is 0): the unix socket over which a new ferrule takes this one's listening
    /// sockets (`handover.rs`); `false` or `""`: none.
    pub upgrade_socket: Option<String>,
    /// `hash_key`, default `client_ip`: what `consistent-hash` hashes.
    pub hash_key: HashKey,
    /// `trusted_proxies`, default `[]`: CIDRs (or addresses) whose `X-Forwarded-For` and PROXY
    /// protocol headers are believed; everyone else's address is the socket's peer.
    pub trusted_proxies: crate::client_ip::TrustedProxies,
    /// `proxy_protocol`, default false: every connection starts with a PROXY protocol header (v1
    /// or v2) from a trusted balancer in front; one without a valid header is closed.
    pub proxy_protocol: bool,
    /// `ipv6_client_prefix`, default 64 (1 to 128): an IPv6 client is its network of this prefix
    /// length for `max_connections_per_ip`, sticky sessions by address and the `client_ip` hash
    /// key (`client_ip::client_key`); IPv4 clients are their address. Needs a restart.
    pub ipv6_client_prefix: u8,
    /// `max_conns`, default 0 (no limit): requests in flight at most per backend, across all
    /// workers, for backends without their own `max_conns`.
    pub max_conns: u32,
    /// `queue_timeout`, default 5s: how long a request waits for a slot when every candidate
    /// backend is at its `max_conns` (then 503).
    pub queue_timeout: Duration,
    /// `enable_sticky_sessions`, default false: a client keeps reaching the same backend.
    pub enable_sticky_sessions: bool,
    /// `sticky_session_ttl`, default 1h: a binding unused this long expires.
    pub sticky_session_ttl: Duration,
    /// `sticky_mode`, default `ip`.
    pub sticky_mode: StickyMode,
    /// `sticky_max_entries`, default 100000: bindings kept in `ip` mode (oldest evicted first).
    pub sticky_max_entries: usize,
    /// `sticky_cookie_name`, default `FERRULE_BACKEND`.
    pub sticky_cookie_name: String,
    /// `sticky_cookie_strip`, default false: remove the cookie before the request goes on.
    pub sticky_cookie_strip: bool,
    /// `sticky_cookie_secret`, default none: the cookie's value is then a MAC of the backend
    /// under this key (at least 16 characters), which clients cannot compute; without it, a fixed
    /// hash anyone can. Redacted in `GET /config`.
    pub sticky_cookie_secret: Option<String>,
    /// `log_level`, default `info` (`RUST_LOG`, when set, wins): the level of ferrule's own log.
    pub log_level: LogLevel,
    /// `access_log`, default `"stdout"`: where a line per request goes (`false`: nowhere).
    pub access_log: AccessLogTarget,
    /// `access_log_format`, default `combined`.
    pub access_log_format: AccessLogFormat,
    /// `request_id`, default true: a request without `X-Request-Id` gets one (a request that
    /// has one keeps it); either way it is logged with the request.
    pub request_id: bool,
    pub ssl: SslConfig,
}

/// The default `upgrade_socket` for `bind`:`port`: `ferrule-<bind>-<port>.sock` in
/// [`default_upgrade_dir`], none for port 0 (a free port picked by the kernel: no two processes
/// would agree on it), nor when that path would not fit a `sockaddr_un`.
fn default_upgrade_socket(bind: IpAddr, port: u16) -> Option<String> {
    let dir = default_upgrade_dir(
        std::env::var_os("XDG_RUNTIME_DIR").as_deref(),
        // SAFETY: getuid has no preconditions and cannot fail.
        unsafe { libc::getuid() },
        &std::env::temp_dir(),
    );
    upgrade_socket_in(&dir, bind, port)
}

/// `ferrule-<bind>-<port>.sock` in `dir` (none for port 0, or a path too long for a unix socket).
fn upgrade_socket_in(dir: &Path, bind: IpAddr, port: u16) -> Option<String> {
    let name = match bind {
        IpAddr::V4(ip) => format!("ferrule-{ip}-{port}.sock"),
        IpAddr::V6(ip) => format!("ferrule-[{ip}]-{port}.sock"),
    };
    let path = dir.join(name).to_string_lossy().into_owned();
    (port != 0 && path.len() <= file::MAX_SOCKET_PATH).then_some(path)
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

/// Why a configuration could not be loaded. Its `Display` is one line, naming the field at fault.
#[derive(Debug)]
pub enum ConfigError {
    /// The config file could not be read.
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The text is not well-formed JSON (the message carries the line and column).
    Json(serde_json::Error),
    /// A value is wrong. `field` is its path, such as `backends[1].url` or `ssl.enabled`; it is
    /// empty when the problem is the document as a whole.
    Invalid { field: String, problem: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => {
                write!(f, "cannot read config file {path:?}: {source}")
            }
            ConfigError::Json(error) => write!(f, "config is not valid JSON: {error}"),
            ConfigError::Invalid { field, problem } if field.is_empty() => f.write_str(problem),
            ConfigError::Invalid { field, problem } => write!(f, "{field}: {problem}"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            ConfigError::Json(error) => Some(error),
            ConfigError::Invalid { .. } => None,
        }
    }
}

fn invalid(field: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

/// What [`Config::redacted`] puts in place of a secret.
pub const REDACTED: &str = "<redacted>";

impl Config {
    /// Reads and validates a config file (see [`Config::from_json_str`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_json_str(&text)
    }

    /// Parses and validates config.json text, applying the defaults.
    ///
    /// Checks run cheapest first: the JSON text (a key given twice in an object is refused
    /// there), each value's type and range as it is read (an unknown key is one of these), then
    /// those within an entry or list (a backend without `url` or listed twice, a certificate
    /// without its key), then those between keys, then the files named are opened, and last the
    /// backend host names are resolved and their addresses checked (none of ferrule's own
    /// listeners, none link-local unless allowed). When a document has several
    /// faults, the one reported is the first in that order, and within the first step the first
    /// in key order (keys are read in alphabetical order).
    pub fn from_json_str(text: &str) -> Result<Config, ConfigError> {
        let root = de::parse_json(text.as_bytes()).map_err(|e| match e {
            JsonError::Syntax(e) => ConfigError::Json(e),
            JsonError::Duplicate(field) => invalid(&field, JsonError::DUPLICATE),
        })?;
        if !root.is_object() {
            let problem = format!(
                "config must be a JSON object, found {}",
                de::describe(&root)
            );
            return Err(invalid("", problem));
        }
        let file: ConfigFile = de::from_value(root)
            .map_err(|(field, problem)| ConfigError::Invalid { field, problem })?;
        let (mut config, backends) = file.into_config()?;
        config.check_related_fields()?;
        config.check_files()?;
        let hosts = match &config.hosts_file {
            Some(path) => {
                Some(crate::dns::Hosts::load(path).map_err(|e| invalid("hosts_file", e))?)
            }
            None => None,
        };
        let tls = std::mem::take(&mut config.backend_tls);
        (config.backends, config.backend_tls) =
            backend::resolve_backends(backends, tls, hosts.as_ref())?;
        config.check_backend_addresses()?;
        Ok(config)
    }

    /// A copy fit to show (`GET /config`): every secret (`admin_token`, `sticky_cookie_secret`)
    /// replaced by [`REDACTED`].
    /// Certificate and key file *paths* are not secrets; a new key that holds one (a key password)
    /// must be blanked here too, with a test that it is.
    pub fn redacted(&self) -> Config {
        let mut shown = self.clone();
        if shown.admin_token.is_some() {
            shown.admin_token = Some(REDACTED.into());
        }
        if shown.sticky_cookie_secret.is_some() {
            shown.sticky_cookie_secret = Some(REDACTED.into());
        }
        shown
    }

    /// How long a health probe may take: `health_check_timeout`, or the smaller of
    /// `backend_timeout` and the interval.
    pub fn health_check_timeout(&self) -> Duration {
        self.health_check_timeout.unwrap_or_else(|| {
            if self.health_check_frequency.is_zero() {
                self.backend_timeout
            } else {
                self.backend_timeout.min(self.health_check_frequency)
            }
        })
    }

    /// Active health checks run (a method other than `none`, a non-zero interval).
    pub fn active_checks(&self) -> bool {
        self.health_check_method != HealthCheckMethod::None
            && !self.health_check_frequency.is_zero()
    }

    /// The TLS settings of `backends[index]`: its entry in [`Config::backend_tls`], or the
    /// defaults for a backend without one (one added after load).
    pub fn tls_of_backend(&self, index: usize) -> &BackendTls {
        self.backend_tls.get(index).unwrap_or(&NO_BACKEND_TLS)
    }

    /// The hosts file, read again (`None` without one); a reload or refresh uses the file as it is
    /// now.
    pub fn hosts(&self) -> Result<Option<crate::dns::Hosts>, ConfigError> {
        match &self.hosts_file {
            Some(path) => crate::dns::Hosts::load(path)
                .map(Some)
                .map_err(|e| invalid("hosts_file", e)),
            None => Ok(None),
        }
    }
}

/// One worker per CPU core the process may use (1 if unknown), within the `workers` range.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(1024))
}
