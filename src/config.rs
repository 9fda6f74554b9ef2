//! `config.json`: the typed configuration, its defaults, and its validation.
//!
//! The file is read once at start (and later on reload) by `main.rs`; `lib.rs::start` takes a
//! validated [`Config`]. Nothing here runs on a worker thread: backend host names are resolved here,
//! at load time, so no worker ever blocks on DNS.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

/// Load-balancing strategy (`strategy` in config.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `round-robin`: smooth weighted round-robin (equal weights give plain round-robin).
    RoundRobin,
    /// `weighted-round-robin`: the same smooth weighted algorithm, named for the original spec.
    WeightedRoundRobin,
    /// `least-conn`: fewest in-flight requests, ties broken by weight then round-robin.
    LeastConn,
}

impl Strategy {
    /// Every strategy, in the order error messages list them.
    pub const ALL: [Strategy; 3] = [
        Strategy::RoundRobin,
        Strategy::WeightedRoundRobin,
        Strategy::LeastConn,
    ];

    /// The name config.json and the admin API use (`round-robin`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round-robin",
            Strategy::WeightedRoundRobin => "weighted-round-robin",
            Strategy::LeastConn => "least-conn",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Active health check kind (`health_check_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheckMethod {
    Http,
    Tcp,
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
}

/// `ssl` block: TLS termination on the client side.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SslConfig {
    pub enabled: bool,
    pub cert_file: String,
    pub key_file: String,
}

/// The whole configuration, every field with its default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// `health_check_frequency`, default 10s.
    pub health_check_frequency: Duration,
    /// `health_check_method`, default `http`.
    pub health_check_method: HealthCheckMethod,
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
    /// `buffer_size`, default 131072 bytes: each direction of a busy connection buffers at most this.
    pub buffer_size: usize,
    /// `shutdown_timeout`, default 30s: how long a graceful shutdown lets requests finish.
    pub shutdown_timeout: Duration,
    pub enable_sticky_sessions: bool,
    /// `sticky_session_ttl`, default 1h.
    pub sticky_session_ttl: Duration,
    pub ssl: SslConfig,
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

/// The longest any timeout may be.
const ONE_DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest a sticky session may live.
const THIRTY_DAYS: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Upper bound of `buffer_size`, and so of `max_request_head`.
const MAX_BUFFER_SIZE: u64 = 16 * 1024 * 1024;

const HEALTH_CHECK_METHODS: &[(&str, HealthCheckMethod)] = &[
    ("http", HealthCheckMethod::Http),
    ("tcp", HealthCheckMethod::Tcp),
];

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
    /// Checks run cheapest first: types and ranges, unknown keys, limits that relate two fields,
    /// then the TLS files are opened, and last the backend host names are resolved.
    pub fn from_json_str(text: &str) -> Result<Config, ConfigError> {
        let root: Value = serde_json::from_str(text).map_err(ConfigError::Json)?;
        let mut f = Fields::new(String::new(), &root)?;

        let backends = backend_specs(&mut f)?;
        // A smaller buffer_size lowers the defaults of the limits that must fit inside it.
        let buffer_size = f.int("buffer_size", 4096..=MAX_BUFFER_SIZE, 131072)?;
        let max_request_head = f
            .opt_int("max_request_head", 1024..=MAX_BUFFER_SIZE)?
            .unwrap_or(buffer_size.min(16384));
        let max_uri_length = f
            .opt_int("max_uri_length", 256..=MAX_BUFFER_SIZE)?
            .unwrap_or(max_request_head.min(8192));
        let mut config = Config {
            port: f.int("port", 0..=65535, 8080)?,
            admin_port: f.int("admin_port", 0..=65535, 8081)?,
            bind: f.ip("bind", IpAddr::V4(Ipv4Addr::UNSPECIFIED))?,
            admin_bind: f.ip("admin_bind", IpAddr::V4(Ipv4Addr::LOCALHOST))?,
            workers: f.int("workers", 1..=1024, default_workers())?,
            strategy: f.choice(
                "strategy",
                "strategy",
                &Strategy::ALL.map(|s| (s.name(), s)),
                Strategy::RoundRobin,
            )?,
            backends: Vec::new(), // resolved last, below
            health_check_frequency: f.duration("health_check_frequency", 10, ONE_DAY)?,
            health_check_method: f.choice(
                "health_check_method",
                "method",
                HEALTH_CHECK_METHODS,
                HealthCheckMethod::Http,
            )?,
            health_check_path: f.health_check_path("health_check_path")?,
            backend_timeout: f.duration("backend_timeout", 60, ONE_DAY)?,
            connect_timeout: f.duration("connect_timeout", 60, ONE_DAY)?,
            client_header_timeout: f.duration("client_header_timeout", 60, ONE_DAY)?,
            client_body_timeout: f.duration("client_body_timeout", 60, ONE_DAY)?,
            send_timeout: f.duration("send_timeout", 60, ONE_DAY)?,
            keepalive_timeout: f.duration("keepalive_timeout", 75, ONE_DAY)?,
            tunnel_timeout: f.duration("tunnel_timeout", 60, ONE_DAY)?,
            backend_keepalive_timeout: f.duration("backend_keepalive_timeout", 60, ONE_DAY)?,
            backend_keepalive: f.int("backend_keepalive", 0..=100_000, 1024)?,
            retries: f.int("retries", 0..=10, 2)?,
            max_request_head,
            max_uri_length,
            max_connections: f.int("max_connections", 1..=1_000_000, 16384)?,
            buffer_size,
            shutdown_timeout: f.duration("shutdown_timeout", 30, ONE_DAY)?,
            enable_sticky_sessions: f.bool("enable_sticky_sessions", false)?,
            sticky_session_ttl: f.duration("sticky_session_ttl", 60 * 60, THIRTY_DAYS)?,
            ssl: ssl_config(&mut f)?,
        };
        f.finish()?;
        config.check_related_fields()?;
        check_ssl_files(&config.ssl)?;
        config.backends = resolve_backends(backends)?;
        Ok(config)
    }

    /// Things that are allowed but probably not meant, one line each, for the log at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.backends.is_empty() {
            warnings.push("no backends configured: every request will get 503".to_owned());
        }
        for (i, backend) in self.backends.iter().enumerate() {
            if listens_on(backend.addr, self.bind, self.port) {
                warnings.push(format!(
                    "backends[{i}] ({:?}) is this proxy's own address: requests to it would loop",
                    backend.url
                ));
            }
            if listens_on(backend.addr, self.admin_bind, self.admin_port) {
                warnings.push(format!(
                    "backends[{i}] ({:?}) is the admin API's address",
                    backend.url
                ));
            }
            if let Some(j) = self.backends[..i]
                .iter()
                .position(|b| b.addr == backend.addr)
            {
                warnings.push(format!(
                    "backends[{i}] ({:?}) resolves to the same address as backends[{j}] ({}): \
                     that server gets both their shares",
                    backend.url, backend.addr
                ));
            }
        }
        if !self.admin_bind.is_loopback() {
            warnings.push(format!(
                "admin_bind is {} (not loopback): anyone who can reach port {} can change the \
                 backend pool",
                self.admin_bind, self.admin_port
            ));
        }
        if self.health_check_method == HealthCheckMethod::Tcp && self.health_check_path != "/health"
        {
            warnings
                .push("health_check_path is not used when health_check_method is \"tcp\"".into());
        }
        if self.max_connections < self.workers {
            warnings.push(format!(
                "max_connections ({}) is below workers ({}): some workers will accept no connections",
                self.max_connections, self.workers
            ));
        }
        let cores = default_workers();
        if self.workers > cores {
            warnings.push(format!(
                "workers ({}) exceeds the {cores} CPU cores available: workers will compete for them",
                self.workers
            ));
        }
        warnings
    }

    /// Checks between fields, run once every field has been read.
    fn check_related_fields(&self) -> Result<(), ConfigError> {
        if self.admin_port == self.port && self.port != 0 {
            let problem = format!("must differ from port ({})", self.port);
            return Err(invalid("admin_port", problem));
        }
        if self.max_request_head > self.buffer_size {
            let problem = format!("must not exceed buffer_size ({})", self.buffer_size);
            return Err(invalid("max_request_head", problem));
        }
        if self.max_uri_length > self.max_request_head {
            let problem = format!(
                "must not exceed max_request_head ({})",
                self.max_request_head
            );
            return Err(invalid("max_uri_length", problem));
        }
        Ok(())
    }
}

/// One worker per CPU core the process may use (1 if unknown), within the `workers` range.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(1024))
}

/// Whether a listener bound to `bind:port` would accept a connection to `addr`.
fn listens_on(addr: SocketAddr, bind: IpAddr, port: u16) -> bool {
    let ip = addr.ip();
    port != 0
        && addr.port() == port
        && (ip == bind || (ip.is_loopback() && (bind.is_unspecified() || bind.is_loopback())))
}

/// Walks one JSON object: typed getters read a key (a missing key or `null` gives the default) and
/// remember it, and [`Fields::finish`] rejects any key that no getter asked for.
struct Fields<'a> {
    /// Path of this object: empty at the top level, else like `ssl` or `backends[2]`.
    path: String,
    map: &'a Map<String, Value>,
    known: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    fn new(path: String, value: &'a Value) -> Result<Self, ConfigError> {
        match value {
            Value::Object(map) => Ok(Fields {
                path,
                map,
                known: Vec::new(),
            }),
            other if path.is_empty() => Err(invalid(
                "",
                format!("config must be a JSON object, found {}", describe(other)),
            )),
            other => Err(invalid(&path, expected("an object", other))),
        }
    }

    /// The path of `key` in this object, for messages.
    fn path_of(&self, key: &str) -> String {
        let key = if !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            key.to_owned()
        } else {
            format!("{key:?}")
        };
        if self.path.is_empty() {
            key
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn invalid(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        invalid(&self.path_of(key), problem)
    }

    /// The value of `key`, or `None` when it is absent or `null`.
    fn take(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.push(key);
        self.map.get(key).filter(|value| !value.is_null())
    }

    fn bool(&mut self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.take(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.invalid(key, expected("true or false", other))),
        }
    }

    fn string(&mut self, key: &'static str) -> Result<Option<&'a str>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.invalid(key, expected("a string", other))),
        }
    }

    fn opt_int<T: TryFrom<u64>>(
        &mut self,
        key: &'static str,
        range: RangeInclusive<u64>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        let n = integer_in(value, &range).map_err(|problem| self.invalid(key, problem))?;
        let n = T::try_from(n).map_err(|_| self.invalid(key, "is too large for this platform"))?;
        Ok(Some(n))
    }

    fn int<T: TryFrom<u64>>(
        &mut self,
        key: &'static str,
        range: RangeInclusive<u64>,
        default: T,
    ) -> Result<T, ConfigError> {
        Ok(self.opt_int(key, range)?.unwrap_or(default))
    }

    /// A duration string, greater than zero and at most `max`; `default_secs` when absent.
    fn duration(
        &mut self,
        key: &'static str,
        default_secs: u64,
        max: Duration,
    ) -> Result<Duration, ConfigError> {
        let duration = match self.take(key) {
            None => return Ok(Duration::from_secs(default_secs)),
            Some(Value::String(s)) => parse_duration(s).map_err(|p| self.invalid(key, p))?,
            Some(Value::Number(n)) if n.is_u64() => {
                let problem = format!("durations are strings with a unit: write \"{n}s\", not {n}");
                return Err(self.invalid(key, problem));
            }
            Some(other) => {
                let problem = expected("a duration string such as \"30s\"", other);
                return Err(self.invalid(key, problem));
            }
        };
        if duration.is_zero() {
            Err(self.invalid(key, "must be greater than zero"))
        } else if duration > max {
            Err(self.invalid(key, format!("must be at most {}", format_duration(max))))
        } else {
            Ok(duration)
        }
    }

    fn ip(&mut self, key: &'static str, default: IpAddr) -> Result<IpAddr, ConfigError> {
        match self.string(key)? {
            None => Ok(default),
            Some(s) => s.parse().map_err(|_| {
                let problem = format!("{s:?} is not an IP address (such as \"0.0.0.0\" or \"::\")");
                self.invalid(key, problem)
            }),
        }
    }

    /// One of the named `options`; `what` names the kind in the error (`unknown strategy "x"`).
    fn choice<T: Copy>(
        &mut self,
        key: &'static str,
        what: &str,
        options: &[(&str, T)],
        default: T,
    ) -> Result<T, ConfigError> {
        let Some(name) = self.string(key)? else {
            return Ok(default);
        };
        match options.iter().find(|(option, _)| *option == name) {
            Some((_, value)) => Ok(*value),
            None => {
                let names: Vec<&str> = options.iter().map(|(option, _)| *option).collect();
                let problem = format!("unknown {what} {name:?} (expected {})", or_list(&names));
                Err(self.invalid(key, problem))
            }
        }
    }

    fn health_check_path(&mut self, key: &'static str) -> Result<String, ConfigError> {
        let Some(path) = self.string(key)? else {
            return Ok("/health".to_owned());
        };
        if !path.starts_with('/') {
            Err(self.invalid(key, format!("{path:?} must start with \"/\"")))
        } else if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            let problem = format!("{path:?} must not contain spaces or control characters");
            Err(self.invalid(key, problem))
        } else {
            Ok(path.to_owned())
        }
    }

    /// The nested object at `key`, if present.
    fn object(&mut self, key: &'static str) -> Result<Option<Fields<'a>>, ConfigError> {
        match self.take(key) {
            None => Ok(None),
            Some(value) => Fields::new(self.path_of(key), value).map(Some),
        }
    }

    /// The array at `key` (empty when absent), with its path.
    fn array(&mut self, key: &'static str) -> Result<(String, &'a [Value]), ConfigError> {
        let path = self.path_of(key);
        match self.take(key) {
            None => Ok((path, &[])),
            Some(Value::Array(items)) => Ok((path, items)),
            Some(other) => Err(invalid(&path, expected("an array", other))),
        }
    }

    /// Rejects the first key that no getter read.
    fn finish(self) -> Result<(), ConfigError> {
        let unknown = self
            .map
            .keys()
            .find(|key| !self.known.iter().any(|known| known == key));
        match unknown {
            None => Ok(()),
            Some(key) => Err(self.invalid(key, unknown_key(key, &self.known))),
        }
    }
}

/// The problem text for an unknown key: a close known key if there is one, else all of them.
fn unknown_key(key: &str, known: &[&str]) -> String {
    let closest = known
        .iter()
        .map(|candidate| (edit_distance(key, candidate), candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance);
    match closest {
        Some((_, candidate)) => format!("unknown key (did you mean {candidate:?}?)"),
        None => format!("unknown key (expected one of: {})", known.join(", ")),
    }
}

/// Levenshtein distance, counted in chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    // `row[j]` is the distance between the part of `a` seen so far and `b[..j]`.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = i;
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// `expected <what>, found <the value>`.
fn expected(what: &str, found: &Value) -> String {
    format!("expected {what}, found {}", describe(found))
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// A JSON integer within `range`.
fn integer_in(value: &Value, range: &RangeInclusive<u64>) -> Result<u64, String> {
    let (min, max) = (*range.start(), *range.end());
    let Value::Number(number) = value else {
        return Err(expected("an integer", value));
    };
    if let Some(n) = number.as_u64() {
        if n < min {
            Err(format!("must be at least {min}"))
        } else if n > max {
            Err(format!("must be at most {max}"))
        } else {
            Ok(n)
        }
    } else if number.is_i64() {
        Err(format!("must be at least {min}"))
    } else {
        // A float: written with a fraction or exponent, or an integer too large for 64 bits.
        match number.as_f64() {
            Some(x) if x.fract() == 0.0 && x < 0.0 => Err(format!("must be at least {min}")),
            Some(x) if x.fract() == 0.0 && x > u64::MAX as f64 => {
                Err(format!("must be at most {max}"))
            }
            _ => Err(expected("an integer", value)),
        }
    }
}

/// Parses a duration: one or more `<integer><unit>` parts, units `ms`, `s`, `m` and `h`, such as
/// `"500ms"`, `"30s"`, `"1m30s"` or `"1h"`. Surrounding whitespace is ignored. Zero is accepted
/// here (callers that need more check it). The error text quotes the input and says what is wrong.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const UNITS: &str = "use ms, s, m or h";
    let text = s.trim();
    if text.is_empty() {
        return Err("empty duration (write e.g. \"30s\", \"500ms\" or \"1m30s\")".to_owned());
    }
    let mut total_ms: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let (digits, after_digits) = split_prefix(rest, |c| c.is_ascii_digit());
        let (unit, after_unit) = split_prefix(after_digits, |c| c.is_ascii_alphabetic());
        if digits.is_empty() {
            return Err(match rest.chars().next() {
                Some('-') => format!("{text:?} is negative"),
                _ if !unit.is_empty() => format!("{text:?} has no number before {unit:?}"),
                _ => unexpected_char(text, rest),
            });
        }
        if unit.is_empty() {
            return Err(if after_digits.starts_with('.') {
                format!("{text:?} is fractional (use whole numbers, e.g. \"1s500ms\" for 1.5s)")
            } else if !after_digits.is_empty() {
                unexpected_char(text, after_digits)
            } else if digits == text {
                format!("{text:?} has no unit ({UNITS})")
            } else {
                format!("{text:?}: {digits:?} has no unit ({UNITS})")
            });
        }
        let unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60 * 1000,
            "h" => 60 * 60 * 1000,
            _ => return Err(format!("{text:?} has an unknown unit {unit:?} ({UNITS})")),
        };
        total_ms = digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit_ms))
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| format!("{text:?} is too large"))?;
        rest = after_unit;
    }
    Ok(Duration::from_millis(total_ms))
}

fn split_prefix(s: &str, matches: impl Fn(char) -> bool) -> (&str, &str) {
    s.split_at(s.find(|c: char| !matches(c)).unwrap_or(s.len()))
}

/// The error for the first character of `rest`, which is part of `text`.
fn unexpected_char(text: &str, rest: &str) -> String {
    match rest.chars().next() {
        Some(c) if c.is_whitespace() => format!("{text:?} contains a space (write e.g. \"1m30s\")"),
        Some(c) => format!("{text:?} has an unexpected {c:?}"),
        None => format!("{text:?} ends unexpectedly"),
    }
}

/// Formats a duration for logs in the form [`parse_duration`] reads: `1h`, `1m30s`, `500ms`, `0s`.
/// Below a millisecond it shows `us` or `ns`; otherwise it drops any part below a millisecond.
pub fn format_duration(d: Duration) -> String {
    let total_ms = d.as_millis();
    if total_ms == 0 {
        return match (d.as_micros(), d.as_nanos()) {
            (_, 0) => "0s".to_owned(),
            (0, ns) => format!("{ns}ns"),
            (us, _) => format!("{us}us"),
        };
    }
    let parts = [
        (total_ms / 3_600_000, "h"),
        (total_ms / 60_000 % 60, "m"),
        (total_ms / 1000 % 60, "s"),
        (total_ms % 1000, "ms"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect()
}

/// A `backends[]` entry, checked but not yet resolved.
struct BackendSpec {
    /// Path of its `url` field, for the resolution error.
    url_field: String,
    url: String,
    target: Target,
    weight: u32,
}

/// What a backend URL points at.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    scheme: Scheme,
    /// Without the brackets of an IPv6 literal.
    host: String,
    port: u16,
}

impl Target {
    /// Same scheme, port and host (names compared without case, IP literals by value).
    fn same_as(&self, other: &Target) -> bool {
        let same_host = match (self.host.parse::<IpAddr>(), other.host.parse::<IpAddr>()) {
            (Ok(a), Ok(b)) => a == b,
            _ => self.host.eq_ignore_ascii_case(&other.host),
        };
        self.scheme == other.scheme && self.port == other.port && same_host
    }
}

fn backend_specs(f: &mut Fields) -> Result<Vec<BackendSpec>, ConfigError> {
    let (path, items) = f.array("backends")?;
    let mut specs: Vec<BackendSpec> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let spec = backend_spec(format!("{path}[{i}]"), item)?;
        if let Some(j) = specs.iter().position(|s| s.target.same_as(&spec.target)) {
            let problem = format!(
                "{:?} is the same backend as backends[{j}] ({:?})",
                spec.url, specs[j].url
            );
            return Err(invalid(&spec.url_field, problem));
        }
        specs.push(spec);
    }
    Ok(specs)
}

fn backend_spec(path: String, value: &Value) -> Result<BackendSpec, ConfigError> {
    let mut f = Fields::new(path, value)?;
    let url_field = f.path_of("url");
    let url = f.string("url")?;
    let weight = f.int("weight", 1..=10_000, 1)?;
    f.finish()?;
    let url = url.ok_or_else(|| invalid(&url_field, "missing (every backend needs a url)"))?;
    let target = parse_backend_url(url).map_err(|problem| invalid(&url_field, problem))?;
    Ok(BackendSpec {
        url_field,
        url: url.to_owned(),
        target,
        weight,
    })
}

/// `http[s]://host[:port][/]`: the host a name, an IPv4 address or a bracketed IPv6 address.
fn parse_backend_url(url: &str) -> Result<Target, String> {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, rest)) if s.eq_ignore_ascii_case("http") => (Scheme::Http, rest),
        Some((s, rest)) if s.eq_ignore_ascii_case("https") => (Scheme::Https, rest),
        Some((s, _)) => {
            return Err(format!(
                "{url:?} has unsupported scheme {s:?} (use http:// or https://)"
            ))
        }
        None => return Err(format!("{url:?} must start with http:// or https://")),
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    if !tail.is_empty() && tail != "/" {
        return Err(format!(
            "{url:?}: paths are not supported (found {tail:?}; only a trailing \"/\" is allowed)"
        ));
    }
    if authority.contains('@') {
        return Err("user info (user@host) in backend URLs is not supported".to_owned());
    }
    let (host, port) =
        split_host_port(authority).map_err(|problem| format!("{url:?}: {problem}"))?;
    let port = match port {
        None => match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        },
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port > 0 && p.bytes().all(|b| b.is_ascii_digit()) => port,
            _ => return Err(format!("{url:?}: invalid port {p:?} (expected 1 to 65535)")),
        },
    };
    Ok(Target {
        scheme,
        host: host.to_owned(),
        port,
    })
}

/// Splits `host[:port]` or `[ipv6][:port]`; the host comes back without brackets.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or("the IPv6 address has no closing \"]\"")?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(format!("{host:?} is not an IPv6 address"));
        }
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(format!("unexpected {after:?} after \"]\"")),
            },
        };
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if port.is_some_and(|port| port.contains(':')) {
        Err("IPv6 addresses must be in brackets, as in http://[::1]:8080".to_owned())
    } else if host.is_empty() {
        Err("no host".to_owned())
    } else if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        Err(format!("invalid host {host:?}"))
    } else {
        Ok((host, port))
    }
}

fn resolve_backends(specs: Vec<BackendSpec>) -> Result<Vec<BackendConfig>, ConfigError> {
    specs
        .into_iter()
        .map(|spec| {
            let Target { scheme, host, port } = spec.target;
            let addr = resolve(&host, port).map_err(|reason| {
                invalid(
                    &spec.url_field,
                    format!("cannot resolve {host:?}: {reason}"),
                )
            })?;
            Ok(BackendConfig {
                url: spec.url,
                scheme,
                host,
                port,
                addr,
                weight: spec.weight,
            })
        })
        .collect()
}

/// Resolves `host:port`, preferring the first IPv4 address.
fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    // RFC 6761 §6.4: resolvers should answer names under "invalid" negatively at once, without
    // asking DNS (so a typo'd or placeholder backend fails fast, and tests stay off the network).
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    if name == "invalid" || name.ends_with(".invalid") {
        return Err("the \".invalid\" domain never resolves (RFC 6761)".to_owned());
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .collect();
    addrs
        .iter()
        .find(|addr| addr.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| "no addresses found".to_owned())
}

fn ssl_config(f: &mut Fields) -> Result<SslConfig, ConfigError> {
    let Some(mut ssl) = f.object("ssl")? else {
        return Ok(SslConfig::default());
    };
    let config = SslConfig {
        enabled: ssl.bool("enabled", false)?,
        cert_file: ssl.string("cert_file")?.unwrap_or_default().to_owned(),
        key_file: ssl.string("key_file")?.unwrap_or_default().to_owned(),
    };
    ssl.finish()?;
    Ok(config)
}

/// With TLS on, both files must be named and openable (their contents are `tls.rs`'s business).
fn check_ssl_files(ssl: &SslConfig) -> Result<(), ConfigError> {
    if !ssl.enabled {
        return Ok(());
    }
    for (field, file) in [
        ("ssl.cert_file", &ssl.cert_file),
        ("ssl.key_file", &ssl.key_file),
    ] {
        if file.is_empty() {
            return Err(invalid(field, "required when ssl.enabled is true"));
        }
        let opened = std::fs::File::open(file).and_then(|f| f.metadata());
        match opened {
            Err(e) => return Err(invalid(field, format!("cannot open {file:?}: {e}"))),
            Ok(meta) if meta.is_dir() => {
                return Err(invalid(field, format!("{file:?} is a directory")))
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Config {
        Config::from_json_str(json).unwrap_or_else(|e| panic!("{json} was rejected: {e}"))
    }

    fn error(json: &str) -> String {
        match Config::from_json_str(json) {
            Ok(_) => panic!("{json} was accepted"),
            Err(e) => {
                let message = e.to_string();
                assert!(!message.contains('\n'), "not one line: {message}");
                message
            }
        }
    }

    /// Asserts that `json` is rejected with exactly `message`.
    #[track_caller]
    fn rejects(json: &str, message: &str) {
        assert_eq!(error(json), message, "for {json}");
    }

    /// Asserts that `json` is rejected with a message starting with `prefix` (the rest comes from
    /// the operating system).
    #[track_caller]
    fn rejects_starting(json: &str, prefix: &str) {
        let message = error(json);
        assert!(message.starts_with(prefix), "for {json}: {message}");
    }

    fn backends(urls: &[&str]) -> String {
        let entries: Vec<String> = urls.iter().map(|u| format!("{{\"url\": {u:?}}}")).collect();
        format!("{{\"backends\": [{}]}}", entries.join(", "))
    }

    fn backend(url: &str) -> BackendConfig {
        let mut config = parse(&backends(&[url]));
        config.backends.remove(0)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Every default, written out independently of the parser.
    fn defaults() -> Config {
        Config {
            port: 8080,
            admin_port: 8081,
            bind: "0.0.0.0".parse().unwrap(),
            admin_bind: "127.0.0.1".parse().unwrap(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get().min(1024)),
            strategy: Strategy::RoundRobin,
            backends: Vec::new(),
            health_check_frequency: secs(10),
            health_check_method: HealthCheckMethod::Http,
            health_check_path: "/health".into(),
            backend_timeout: secs(60),
            connect_timeout: secs(60),
            client_header_timeout: secs(60),
            client_body_timeout: secs(60),
            send_timeout: secs(60),
            keepalive_timeout: secs(75),
            tunnel_timeout: secs(60),
            backend_keepalive_timeout: secs(60),
            backend_keepalive: 1024,
            retries: 2,
            max_request_head: 16384,
            max_uri_length: 8192,
            max_connections: 16384,
            buffer_size: 131072,
            shutdown_timeout: secs(30),
            enable_sticky_sessions: false,
            sticky_session_ttl: secs(3600),
            ssl: SslConfig {
                enabled: false,
                cert_file: String::new(),
                key_file: String::new(),
            },
        }
    }

    /// A file that exists wherever the tests run.
    const EXISTING_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");

    // ---- durations ----

    #[test]
    fn durations_in_every_unit_and_combination() {
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("30s"), Ok(secs(30)));
        assert_eq!(parse_duration("1m"), Ok(secs(60)));
        assert_eq!(parse_duration("1h"), Ok(secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(secs(90)));
        assert_eq!(parse_duration("1h2m3s4ms"), Ok(ms(3_723_004)));
        assert_eq!(parse_duration("  10s\t"), Ok(secs(10)));
        assert_eq!(parse_duration("010s"), Ok(secs(10)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("30s1m"), Ok(secs(90)));
    }

    #[test]
    fn duration_errors_say_what_is_wrong() {
        let cases = [
            (
                "",
                "empty duration (write e.g. \"30s\", \"500ms\" or \"1m30s\")",
            ),
            (
                "   ",
                "empty duration (write e.g. \"30s\", \"500ms\" or \"1m30s\")",
            ),
            ("10", "\"10\" has no unit (use ms, s, m or h)"),
            ("1m30", "\"1m30\": \"30\" has no unit (use ms, s, m or h)"),
            ("5d", "\"5d\" has an unknown unit \"d\" (use ms, s, m or h)"),
            ("5S", "\"5S\" has an unknown unit \"S\" (use ms, s, m or h)"),
            (
                "5us",
                "\"5us\" has an unknown unit \"us\" (use ms, s, m or h)",
            ),
            ("-5s", "\"-5s\" is negative"),
            (
                "1.5s",
                "\"1.5s\" is fractional (use whole numbers, e.g. \"1s500ms\" for 1.5s)",
            ),
            ("s", "\"s\" has no number before \"s\""),
            (
                "1m 30s",
                "\"1m 30s\" contains a space (write e.g. \"1m30s\")",
            ),
            ("+5s", "\"+5s\" has an unexpected '+'"),
            ("5s!", "\"5s!\" has an unexpected '!'"),
            (
                "99999999999999999999ms",
                "\"99999999999999999999ms\" is too large",
            ),
            ("5124095576030432h", "\"5124095576030432h\" is too large"),
            (
                "18446744073709551615ms1ms",
                "\"18446744073709551615ms1ms\" is too large",
            ),
        ];
        for (input, message) in cases {
            assert_eq!(
                parse_duration(input),
                Err(message.to_owned()),
                "for {input:?}"
            );
        }
    }

    #[test]
    fn durations_format_for_logs_and_parse_back() {
        let cases = [
            (ms(500), "500ms"),
            (secs(90), "1m30s"),
            (secs(3600), "1h"),
            (ms(3_723_004), "1h2m3s4ms"),
            (secs(30 * 24 * 3600), "720h"),
            (Duration::ZERO, "0s"),
        ];
        for (duration, text) in cases {
            assert_eq!(format_duration(duration), text);
            assert_eq!(parse_duration(text), Ok(duration));
        }
        assert_eq!(format_duration(Duration::from_micros(1500)), "1ms");
        assert_eq!(format_duration(Duration::from_micros(250)), "250us");
        assert_eq!(format_duration(Duration::from_nanos(7)), "7ns");
    }

    #[test]
    fn duration_fields_name_the_field() {
        rejects(
            r#"{"health_check_frequency": "10"}"#,
            "health_check_frequency: \"10\" has no unit (use ms, s, m or h)",
        );
        rejects(
            r#"{"health_check_frequency": 10}"#,
            "health_check_frequency: durations are strings with a unit: write \"10s\", not 10",
        );
        rejects(
            r#"{"backend_timeout": 1.5}"#,
            "backend_timeout: expected a duration string such as \"30s\", found the number 1.5",
        );
        rejects(
            r#"{"send_timeout": true}"#,
            "send_timeout: expected a duration string such as \"30s\", found true",
        );
    }

    #[test]
    fn every_duration_must_be_positive_and_bounded() {
        let timeouts = [
            "health_check_frequency",
            "backend_timeout",
            "connect_timeout",
            "client_header_timeout",
            "client_body_timeout",
            "send_timeout",
            "keepalive_timeout",
            "tunnel_timeout",
            "backend_keepalive_timeout",
            "shutdown_timeout",
        ];
        for key in timeouts {
            rejects(
                &format!(r#"{{"{key}": "0ms"}}"#),
                &format!("{key}: must be greater than zero"),
            );
            rejects(
                &format!(r#"{{"{key}": "24h1ms"}}"#),
                &format!("{key}: must be at most 24h"),
            );
            let config = parse(&format!(r#"{{"{key}": "24h"}}"#));
            assert_eq!(format!("{config:?}").matches("86400s").count(), 1, "{key}");
        }
        rejects(
            r#"{"sticky_session_ttl": "0s"}"#,
            "sticky_session_ttl: must be greater than zero",
        );
        rejects(
            r#"{"sticky_session_ttl": "721h"}"#,
            "sticky_session_ttl: must be at most 720h",
        );
        assert_eq!(
            parse(r#"{"sticky_session_ttl": "720h"}"#).sticky_session_ttl,
            secs(30 * 24 * 3600)
        );
    }

    #[test]
    fn durations_are_read_into_their_fields() {
        let config = parse(
            r#"{"health_check_frequency": "2s", "backend_timeout": "500ms",
                "connect_timeout": "1s", "client_header_timeout": "2s",
                "client_body_timeout": "3s", "send_timeout": "4s", "keepalive_timeout": "5s",
                "tunnel_timeout": "6s", "backend_keepalive_timeout": "7s",
                "shutdown_timeout": "8s", "sticky_session_ttl": "1m30s"}"#,
        );
        assert_eq!(config.health_check_frequency, secs(2));
        assert_eq!(config.backend_timeout, ms(500));
        assert_eq!(config.connect_timeout, secs(1));
        assert_eq!(config.client_header_timeout, secs(2));
        assert_eq!(config.client_body_timeout, secs(3));
        assert_eq!(config.send_timeout, secs(4));
        assert_eq!(config.keepalive_timeout, secs(5));
        assert_eq!(config.tunnel_timeout, secs(6));
        assert_eq!(config.backend_keepalive_timeout, secs(7));
        assert_eq!(config.shutdown_timeout, secs(8));
        assert_eq!(config.sticky_session_ttl, secs(90));
    }

    // ---- whole documents ----

    #[test]
    fn empty_object_gives_every_default() {
        assert_eq!(parse("{}"), defaults());
        assert_eq!(parse(" {\n} \n"), defaults());
    }

    #[test]
    fn null_means_default() {
        let keys = [
            "port",
            "admin_port",
            "bind",
            "admin_bind",
            "workers",
            "strategy",
            "backends",
            "health_check_frequency",
            "health_check_method",
            "health_check_path",
            "backend_timeout",
            "connect_timeout",
            "client_header_timeout",
            "client_body_timeout",
            "send_timeout",
            "keepalive_timeout",
            "tunnel_timeout",
            "backend_keepalive_timeout",
            "backend_keepalive",
            "retries",
            "max_request_head",
            "max_uri_length",
            "max_connections",
            "buffer_size",
            "shutdown_timeout",
            "enable_sticky_sessions",
            "sticky_session_ttl",
            "ssl",
        ];
        let fields: Vec<String> = keys.iter().map(|k| format!("{k:?}: null")).collect();
        assert_eq!(parse(&format!("{{{}}}", fields.join(", "))), defaults());
        let ssl = r#"{"ssl": {"enabled": null, "cert_file": null, "key_file": null}}"#;
        assert_eq!(parse(ssl), defaults());
        assert_eq!(
            parse(r#"{"backends": [{"url": "http://127.0.0.1", "weight": null}]}"#).backends[0]
                .weight,
            1
        );
    }

    #[test]
    fn full_example_config() {
        let config = parse(
            r#"{
                "port": 8080,
                "admin_port": 8081,
                "strategy": "weighted-round-robin",
                "backends": [
                    {"url": "http://localhost:8082", "weight": 5},
                    {"url": "http://localhost:8083", "weight": 3},
                    {"url": "http://localhost:8084", "weight": 2}
                ],
                "health_check_frequency": "10s",
                "health_check_method": "http",
                "health_check_path": "/health",
                "backend_timeout": "60s",
                "enable_sticky_sessions": false,
                "sticky_session_ttl": "1h",
                "ssl": {"enabled": false, "cert_file": "certs/cert.pem", "key_file": "certs/key.pem"}
            }"#,
        );
        // "localhost" is resolved by the system; it must be a loopback address on the right port.
        let mut expected_backends = Vec::new();
        for (backend, (port, weight)) in
            config
                .backends
                .iter()
                .zip([(8082, 5), (8083, 3), (8084, 2)])
        {
            assert!(backend.addr.ip().is_loopback(), "{backend:?}");
            assert_eq!(backend.addr.port(), port);
            expected_backends.push(BackendConfig {
                url: format!("http://localhost:{port}"),
                scheme: Scheme::Http,
                host: "localhost".into(),
                port,
                addr: backend.addr,
                weight,
            });
        }
        let expected = Config {
            strategy: Strategy::WeightedRoundRobin,
            backends: expected_backends,
            ssl: SslConfig {
                enabled: false,
                cert_file: "certs/cert.pem".into(),
                key_file: "certs/key.pem".into(),
            },
            ..defaults()
        };
        assert_eq!(config, expected);
    }

    #[test]
    fn every_field_is_read() {
        let config = parse(
            r#"{"port": 9000, "admin_port": 9001, "bind": "::", "admin_bind": "::1",
                "workers": 3, "strategy": "least-conn", "health_check_method": "tcp",
                "health_check_path": "/ping", "backend_keepalive": 0, "retries": 10,
                "buffer_size": 65536, "max_request_head": 32768, "max_uri_length": 4096,
                "max_connections": 100, "enable_sticky_sessions": true}"#,
        );
        assert_eq!(config.port, 9000);
        assert_eq!(config.admin_port, 9001);
        assert_eq!(config.bind, "::".parse::<IpAddr>().unwrap());
        assert_eq!(config.admin_bind, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(config.workers, 3);
        assert_eq!(config.strategy, Strategy::LeastConn);
        assert_eq!(config.health_check_method, HealthCheckMethod::Tcp);
        assert_eq!(config.health_check_path, "/ping");
        assert_eq!(config.backend_keepalive, 0);
        assert_eq!(config.retries, 10);
        assert_eq!(config.buffer_size, 65536);
        assert_eq!(config.max_request_head, 32768);
        assert_eq!(config.max_uri_length, 4096);
        assert_eq!(config.max_connections, 100);
        assert!(config.enable_sticky_sessions);
        assert_eq!(
            parse(r#"{"strategy": "round-robin"}"#).strategy,
            Strategy::RoundRobin
        );
    }

    #[test]
    fn malformed_json_shows_line_and_column() {
        rejects(
            "{\n  \"port\": 8080\n  \"bind\": \"0.0.0.0\"\n}",
            "config is not valid JSON: expected `,` or `}` at line 3 column 3",
        );
        rejects_starting(
            "",
            "config is not valid JSON: EOF while parsing a value at line 1",
        );
    }

    #[test]
    fn top_level_must_be_an_object() {
        rejects("[]", "config must be a JSON object, found an array");
        rejects("42", "config must be a JSON object, found the number 42");
        rejects("null", "config must be a JSON object, found null");
    }

    // ---- unknown keys and types ----

    #[test]
    fn unknown_keys_are_named_with_their_path() {
        rejects(
            r#"{"ssl": {"enabled": false, "cert": "x"}}"#,
            "ssl.cert: unknown key (expected one of: enabled, cert_file, key_file)",
        );
        rejects(
            r#"{"backends": [{"url": "http://127.0.0.1:1"}, {"url": "http://127.0.0.1:2", "wieght": 2}]}"#,
            "backends[1].wieght: unknown key (did you mean \"weight\"?)",
        );
        rejects(
            r#"{"backends": [{"url": "http://127.0.0.1:1", "path": "/x"}]}"#,
            "backends[0].path: unknown key (expected one of: url, weight)",
        );
        rejects(
            r#"{"prot": 80}"#,
            "prot: unknown key (did you mean \"port\"?)",
        );
        rejects(
            r#"{"ssl_enabled": true}"#,
            "ssl_enabled: unknown key (expected one of: backends, buffer_size, \
             max_request_head, max_uri_length, port, admin_port, bind, admin_bind, workers, \
             strategy, health_check_frequency, health_check_method, health_check_path, \
             backend_timeout, connect_timeout, client_header_timeout, client_body_timeout, \
             send_timeout, keepalive_timeout, tunnel_timeout, backend_keepalive_timeout, \
             backend_keepalive, retries, max_connections, shutdown_timeout, \
             enable_sticky_sessions, sticky_session_ttl, ssl)",
        );
        rejects(
            r#"{"a key\n": 1}"#,
            "\"a key\\n\": unknown key (expected one of: backends, buffer_size, \
             max_request_head, max_uri_length, port, admin_port, bind, admin_bind, workers, \
             strategy, health_check_frequency, health_check_method, health_check_path, \
             backend_timeout, connect_timeout, client_header_timeout, client_body_timeout, \
             send_timeout, keepalive_timeout, tunnel_timeout, backend_keepalive_timeout, \
             backend_keepalive, retries, max_connections, shutdown_timeout, \
             enable_sticky_sessions, sticky_session_ttl, ssl)",
        );
    }

    #[test]
    fn unknown_keys_are_reported_before_checks_between_fields() {
        // The typo, not the mismatch it causes, is what the user needs to see.
        rejects(
            r#"{"bufer_size": 65536, "max_request_head": 32768}"#,
            "bufer_size: unknown key (did you mean \"buffer_size\"?)",
        );
        rejects(
            r#"{"ssl": {"enabled": true, "cert": "a.pem", "key_file": "b.pem"}}"#,
            "ssl.cert: unknown key (expected one of: enabled, cert_file, key_file)",
        );
    }

    #[test]
    fn wrong_types_name_the_expected_type() {
        rejects(
            r#"{"port": "8080"}"#,
            "port: expected an integer, found the string \"8080\"",
        );
        rejects(
            r#"{"port": 8080.0}"#,
            "port: expected an integer, found the number 8080.0",
        );
        rejects(
            r#"{"workers": 1.5}"#,
            "workers: expected an integer, found the number 1.5",
        );
        rejects(
            r#"{"retries": [1]}"#,
            "retries: expected an integer, found an array",
        );
        rejects(
            r#"{"bind": 0}"#,
            "bind: expected a string, found the number 0",
        );
        rejects(
            r#"{"strategy": {}}"#,
            "strategy: expected a string, found an object",
        );
        rejects(
            r#"{"enable_sticky_sessions": "yes"}"#,
            "enable_sticky_sessions: expected true or false, found the string \"yes\"",
        );
        rejects(r#"{"ssl": true}"#, "ssl: expected an object, found true");
        rejects(
            r#"{"ssl": {"enabled": "true"}}"#,
            "ssl.enabled: expected true or false, found the string \"true\"",
        );
        rejects(
            r#"{"ssl": {"cert_file": 1}}"#,
            "ssl.cert_file: expected a string, found the number 1",
        );
        rejects(
            r#"{"backends": {}}"#,
            "backends: expected an array, found an object",
        );
        rejects(
            r#"{"backends": ["http://127.0.0.1"]}"#,
            "backends[0]: expected an object, found the string \"http://127.0.0.1\"",
        );
        rejects(
            r#"{"backends": [{"url": 8082}]}"#,
            "backends[0].url: expected a string, found the number 8082",
        );
        rejects(
            r#"{"backends": [{"url": "http://127.0.0.1", "weight": "5"}]}"#,
            "backends[0].weight: expected an integer, found the string \"5\"",
        );
    }

    // ---- ranges and choices ----

    #[test]
    fn integer_ranges() {
        let cases = [
            (r#"{"port": 65536}"#, "port: must be at most 65535"),
            (r#"{"port": -1}"#, "port: must be at least 0"),
            (r#"{"port": 1e30}"#, "port: must be at most 65535"),
            (r#"{"port": -1e30}"#, "port: must be at least 0"),
            (
                r#"{"admin_port": 70000}"#,
                "admin_port: must be at most 65535",
            ),
            (r#"{"workers": 0}"#, "workers: must be at least 1"),
            (r#"{"workers": 1025}"#, "workers: must be at most 1024"),
            (
                r#"{"backend_keepalive": 100001}"#,
                "backend_keepalive: must be at most 100000",
            ),
            (
                r#"{"backend_keepalive": -1}"#,
                "backend_keepalive: must be at least 0",
            ),
            (r#"{"retries": 11}"#, "retries: must be at most 10"),
            (
                r#"{"buffer_size": 4095}"#,
                "buffer_size: must be at least 4096",
            ),
            (
                r#"{"buffer_size": 16777217}"#,
                "buffer_size: must be at most 16777216",
            ),
            (
                r#"{"max_request_head": 1023}"#,
                "max_request_head: must be at least 1024",
            ),
            (
                r#"{"buffer_size": 16384, "max_request_head": 16385}"#,
                "max_request_head: must not exceed buffer_size (16384)",
            ),
            (
                r#"{"max_uri_length": 255}"#,
                "max_uri_length: must be at least 256",
            ),
            (
                r#"{"max_uri_length": 16385}"#,
                "max_uri_length: must not exceed max_request_head (16384)",
            ),
            (
                r#"{"max_request_head": 2048, "max_uri_length": 4096}"#,
                "max_uri_length: must not exceed max_request_head (2048)",
            ),
            (
                r#"{"max_connections": 0}"#,
                "max_connections: must be at least 1",
            ),
            (
                r#"{"max_connections": 1000001}"#,
                "max_connections: must be at most 1000000",
            ),
            (
                r#"{"backends": [{"url": "http://127.0.0.1", "weight": 10001}]}"#,
                "backends[0].weight: must be at most 10000",
            ),
        ];
        for (json, message) in cases {
            rejects(json, message);
        }
        rejects(
            &backends(&[
                "http://127.0.0.1:1",
                "http://127.0.0.1:2",
                "http://127.0.0.1:3",
            ])
            .replace(
                r#""http://127.0.0.1:3"}"#,
                r#""http://127.0.0.1:3", "weight": 0}"#,
            ),
            "backends[2].weight: must be at least 1",
        );
    }

    #[test]
    fn range_edges_are_accepted() {
        let config = parse(
            r#"{"port": 65535, "admin_port": 0, "workers": 1024, "backend_keepalive": 100000,
                "retries": 0, "buffer_size": 16777216, "max_request_head": 16777216,
                "max_uri_length": 256, "max_connections": 1000000}"#,
        );
        assert_eq!(
            (config.port, config.admin_port, config.workers),
            (65535, 0, 1024)
        );
        let config = parse(r#"{"buffer_size": 4096, "max_request_head": 1024, "workers": 1}"#);
        assert_eq!(
            (config.max_request_head, config.max_uri_length),
            (1024, 1024)
        );
    }

    #[test]
    fn a_small_buffer_lowers_the_default_limits() {
        let config = parse(r#"{"buffer_size": 4096}"#);
        assert_eq!(config.max_request_head, 4096);
        assert_eq!(config.max_uri_length, 4096);
    }

    #[test]
    fn ports_must_differ_unless_both_zero() {
        rejects(
            r#"{"admin_port": 8080}"#,
            "admin_port: must differ from port (8080)",
        );
        rejects(
            r#"{"port": 9000, "admin_port": 9000}"#,
            "admin_port: must differ from port (9000)",
        );
        let config = parse(r#"{"port": 0, "admin_port": 0}"#);
        assert_eq!((config.port, config.admin_port), (0, 0));
    }

    #[test]
    fn bind_addresses() {
        rejects(
            r#"{"bind": "localhost"}"#,
            "bind: \"localhost\" is not an IP address (such as \"0.0.0.0\" or \"::\")",
        );
        rejects(
            r#"{"admin_bind": "127.0.0.1:8081"}"#,
            "admin_bind: \"127.0.0.1:8081\" is not an IP address (such as \"0.0.0.0\" or \"::\")",
        );
    }

    #[test]
    fn strategies_and_methods() {
        rejects(
            r#"{"strategy": "fastest"}"#,
            "strategy: unknown strategy \"fastest\" (expected round-robin, weighted-round-robin \
             or least-conn)",
        );
        rejects(
            r#"{"health_check_method": "icmp"}"#,
            "health_check_method: unknown method \"icmp\" (expected http or tcp)",
        );
    }

    #[test]
    fn health_check_path() {
        rejects(
            r#"{"health_check_path": "health"}"#,
            "health_check_path: \"health\" must start with \"/\"",
        );
        rejects(
            r#"{"health_check_path": "/a b"}"#,
            "health_check_path: \"/a b\" must not contain spaces or control characters",
        );
        assert_eq!(
            parse(r#"{"health_check_path": "/"}"#).health_check_path,
            "/"
        );
    }

    // ---- backends ----

    #[test]
    fn backend_urls_are_split_and_resolved() {
        let b = backend("http://127.0.0.1:8082");
        assert_eq!(
            b,
            BackendConfig {
                url: "http://127.0.0.1:8082".into(),
                scheme: Scheme::Http,
                host: "127.0.0.1".into(),
                port: 8082,
                addr: "127.0.0.1:8082".parse().unwrap(),
                weight: 1,
            }
        );
        let b = backend("http://127.0.0.1");
        assert_eq!((b.port, b.addr), (80, "127.0.0.1:80".parse().unwrap()));
        let b = backend("https://127.0.0.1/");
        assert_eq!(
            (b.scheme, b.port, b.url.as_str()),
            (Scheme::Https, 443, "https://127.0.0.1/")
        );
        let b = backend("HTTPS://127.0.0.1:8443");
        assert_eq!((b.scheme, b.port), (Scheme::Https, 8443));
        let b = backend("http://[::1]:8082");
        assert_eq!((b.host.as_str(), b.port), ("::1", 8082));
        assert_eq!(b.addr, "[::1]:8082".parse().unwrap());
        let b = backend("https://[::1]");
        assert_eq!((b.host.as_str(), b.port), ("::1", 443));
        let b = backend("http://localhost:8082");
        assert!(b.addr.ip().is_loopback());
        assert_eq!((b.host.as_str(), b.addr.port()), ("localhost", 8082));
    }

    #[test]
    fn backend_url_errors() {
        let cases = [
            (
                "localhost:8082",
                "\"localhost:8082\" must start with http:// or https://",
            ),
            (
                "ftp://127.0.0.1",
                "\"ftp://127.0.0.1\" has unsupported scheme \"ftp\" (use http:// or https://)",
            ),
            (
                "http://127.0.0.1/api",
                "\"http://127.0.0.1/api\": paths are not supported (found \"/api\"; only a \
                 trailing \"/\" is allowed)",
            ),
            (
                "http://127.0.0.1?x=1",
                "\"http://127.0.0.1?x=1\": paths are not supported (found \"?x=1\"; only a \
                 trailing \"/\" is allowed)",
            ),
            (
                "http://127.0.0.1/#top",
                "\"http://127.0.0.1/#top\": paths are not supported (found \"/#top\"; only a \
                 trailing \"/\" is allowed)",
            ),
            (
                "http://user:secret@127.0.0.1",
                "user info (user@host) in backend URLs is not supported",
            ),
            ("http://", "\"http://\": no host"),
            ("http://:8082", "\"http://:8082\": no host"),
            ("http://a b", "\"http://a b\": invalid host \"a b\""),
            (
                "http://127.0.0.1:",
                "\"http://127.0.0.1:\": invalid port \"\" (expected 1 to 65535)",
            ),
            (
                "http://127.0.0.1:0",
                "\"http://127.0.0.1:0\": invalid port \"0\" (expected 1 to 65535)",
            ),
            (
                "http://127.0.0.1:65536",
                "\"http://127.0.0.1:65536\": invalid port \"65536\" (expected 1 to 65535)",
            ),
            (
                "http://127.0.0.1:+80",
                "\"http://127.0.0.1:+80\": invalid port \"+80\" (expected 1 to 65535)",
            ),
            (
                "http://::1:8082",
                "\"http://::1:8082\": IPv6 addresses must be in brackets, as in http://[::1]:8080",
            ),
            (
                "http://[::1",
                "\"http://[::1\": the IPv6 address has no closing \"]\"",
            ),
            (
                "http://[zz]:80",
                "\"http://[zz]:80\": \"zz\" is not an IPv6 address",
            ),
            (
                "http://[::1]8080",
                "\"http://[::1]8080\": unexpected \"8080\" after \"]\"",
            ),
        ];
        for (url, message) in cases {
            rejects(&backends(&[url]), &format!("backends[0].url: {message}"));
        }
        rejects(
            r#"{"backends": [{"weight": 2}]}"#,
            "backends[0].url: missing (every backend needs a url)",
        );
    }

    #[test]
    fn duplicate_backends_name_both_indexes() {
        rejects(
            &backends(&[
                "http://127.0.0.1:8082",
                "http://127.0.0.1:8083",
                "http://127.0.0.1:8082/",
            ]),
            "backends[2].url: \"http://127.0.0.1:8082/\" is the same backend as backends[0] \
             (\"http://127.0.0.1:8082\")",
        );
        rejects(
            &backends(&["http://LOCALHOST", "http://localhost:80"]),
            "backends[1].url: \"http://localhost:80\" is the same backend as backends[0] \
             (\"http://LOCALHOST\")",
        );
        rejects(
            &backends(&["http://[::1]:81", "http://[0:0:0:0:0:0:0:1]:81"]),
            "backends[1].url: \"http://[0:0:0:0:0:0:0:1]:81\" is the same backend as backends[0] \
             (\"http://[::1]:81\")",
        );
        // A different scheme or port is a different backend.
        let config = parse(&backends(&[
            "http://127.0.0.1:8443",
            "https://127.0.0.1:8443",
            "http://127.0.0.1",
        ]));
        assert_eq!(config.backends.len(), 3);
    }

    #[test]
    fn unresolvable_backend_host() {
        rejects(
            &backends(&["http://127.0.0.1:8082", "http://nohost.invalid:8082"]),
            "backends[1].url: cannot resolve \"nohost.invalid\": the \".invalid\" domain never \
             resolves (RFC 6761)",
        );
        rejects_starting(
            &backends(&["https://NoHost.Invalid."]),
            "backends[0].url: cannot resolve \"NoHost.Invalid.\": ",
        );
    }

    #[test]
    fn backend_names_are_resolved_only_once_everything_else_is_valid() {
        rejects(
            r#"{"backends": [{"url": "http://nohost.invalid"}], "port": "x"}"#,
            "port: expected an integer, found the string \"x\"",
        );
    }

    // ---- ssl ----

    #[test]
    fn ssl_enabled_needs_both_files() {
        rejects(
            r#"{"ssl": {"enabled": true}}"#,
            "ssl.cert_file: required when ssl.enabled is true",
        );
        let json = serde_json::json!({"ssl": {"enabled": true, "cert_file": EXISTING_FILE}});
        rejects(
            &json.to_string(),
            "ssl.key_file: required when ssl.enabled is true",
        );
        let json = serde_json::json!({"ssl": {"enabled": true, "cert_file": EXISTING_FILE, "key_file": ""}});
        rejects(
            &json.to_string(),
            "ssl.key_file: required when ssl.enabled is true",
        );
    }

    #[test]
    fn ssl_files_must_open() {
        rejects_starting(
            r#"{"ssl": {"enabled": true, "cert_file": "/nonexistent/ferrule/cert.pem", "key_file": "/nonexistent/ferrule/key.pem"}}"#,
            "ssl.cert_file: cannot open \"/nonexistent/ferrule/cert.pem\": ",
        );
        let json = serde_json::json!({"ssl": {
            "enabled": true, "cert_file": EXISTING_FILE, "key_file": "/nonexistent/ferrule/key.pem"
        }});
        rejects_starting(
            &json.to_string(),
            "ssl.key_file: cannot open \"/nonexistent/ferrule/key.pem\": ",
        );
        let dir = env!("CARGO_MANIFEST_DIR");
        let json = serde_json::json!({"ssl": {"enabled": true, "cert_file": dir, "key_file": EXISTING_FILE}});
        rejects(
            &json.to_string(),
            &format!("ssl.cert_file: {dir:?} is a directory"),
        );
    }

    #[test]
    fn ssl_enabled_with_readable_files() {
        let json = serde_json::json!({"ssl": {
            "enabled": true, "cert_file": EXISTING_FILE, "key_file": EXISTING_FILE
        }});
        let ssl = parse(&json.to_string()).ssl;
        assert_eq!(
            ssl,
            SslConfig {
                enabled: true,
                cert_file: EXISTING_FILE.into(),
                key_file: EXISTING_FILE.into(),
            }
        );
        // Disabled, the files are not looked at.
        let config = parse(r#"{"ssl": {"enabled": false, "cert_file": "/nonexistent/cert.pem"}}"#);
        assert_eq!(config.ssl.cert_file, "/nonexistent/cert.pem");
    }

    // ---- files ----

    #[test]
    fn load_reads_a_file() {
        let path =
            std::env::temp_dir().join(format!("ferrule-config-test-{}.json", std::process::id()));
        std::fs::write(&path, r#"{"port": 9090, "admin_port": 9091}"#).unwrap();
        let loaded = Config::load(&path);
        std::fs::remove_file(&path).unwrap();
        let config = loaded.unwrap();
        assert_eq!((config.port, config.admin_port), (9090, 9091));
    }

    #[test]
    fn load_names_the_unreadable_file() {
        let error = Config::load(Path::new("/nonexistent/ferrule/x.json")).unwrap_err();
        assert!(matches!(error, ConfigError::Read { .. }));
        let message = error.to_string();
        assert!(
            message.starts_with("cannot read config file \"/nonexistent/ferrule/x.json\": "),
            "{message}"
        );
        assert!(std::error::Error::source(&error).is_some());
    }

    // ---- warnings ----

    #[test]
    fn warnings() {
        assert_eq!(
            parse("{}").warnings(),
            ["no backends configured: every request will get 503"]
        );
        assert_eq!(
            parse(r#"{"workers": 1, "backends": [{"url": "http://127.0.0.1:8082"}]}"#).warnings(),
            Vec::<String>::new()
        );

        let config = parse(
            r#"{"workers": 1, "admin_bind": "0.0.0.0", "health_check_method": "tcp",
                "health_check_path": "/ping",
                "backends": [{"url": "http://127.0.0.1:8080"}, {"url": "http://127.0.0.1:8081"}]}"#,
        );
        assert_eq!(
            config.warnings(),
            [
                "backends[0] (\"http://127.0.0.1:8080\") is this proxy's own address: requests to \
                 it would loop",
                "backends[1] (\"http://127.0.0.1:8081\") is the admin API's address",
                "admin_bind is 0.0.0.0 (not loopback): anyone who can reach port 8081 can change \
                 the backend pool",
                "health_check_path is not used when health_check_method is \"tcp\"",
            ]
        );

        let mut config = parse(r#"{"workers": 1, "max_connections": 1}"#);
        let mut same = backend("http://127.0.0.1:9000");
        config.backends.push(same.clone());
        same.url = "http://localhost:9000".into();
        config.backends.push(same);
        config.workers = 2;
        let warnings = config.warnings();
        assert_eq!(
            warnings[0],
            "backends[1] (\"http://localhost:9000\") resolves to the same address as backends[0] \
             (127.0.0.1:9000): that server gets both their shares"
        );
        assert_eq!(
            warnings[1],
            "max_connections (1) is below workers (2): some workers will accept no connections"
        );

        config.workers = 1025;
        assert!(config
            .warnings()
            .iter()
            .any(|w| w.starts_with("workers (1025) exceeds the ")));
    }

    #[test]
    fn error_display_is_one_line_for_each_variant() {
        let read = ConfigError::Read {
            path: "x.json".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(read
            .to_string()
            .starts_with("cannot read config file \"x.json\": "));
        let field = invalid("backends[2].weight", "must be at least 1");
        assert_eq!(field.to_string(), "backends[2].weight: must be at least 1");
        assert!(std::error::Error::source(&field).is_none());
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("port", "port"), 0);
        assert_eq!(edit_distance("prot", "port"), 2);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("wieght", "weight"), 2);
    }
}
