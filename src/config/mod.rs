//! `config.json`: the typed configuration, its defaults, and its validation.
//!
//! The file is read once at start (and later on reload) by `main.rs`; `lib.rs::start` takes a
//! validated [`Config`]. Nothing here runs on a worker thread: backend host names are resolved here,
//! at load time, so no worker ever blocks on DNS.
//!
//! Every key is defined once, in `groups.rs`: its field, its name in the file, its type (which
//! checks the value as it is read) and its default. The `keys!` macro (`key.rs`) makes of each
//! group the effective struct the rest of the crate uses (plain `u16`, `Duration`, `IpAddr`,
//! every default applied), the file-side partial struct (each key an `Option`: absent and `null`
//! both mean "the default"), the reading, the inheritance (a pool takes what it leaves out from
//! the top level) and the writing. [`Config`] is those groups: the process and its listeners,
//! the client's identity, the pool ([`PoolConfig`]: backends, balancing, upstream, health,
//! passive health, sticky sessions: what each pool will carry once there are several), the
//! client timeouts, the limits, the backend keep-alive, DNS, the admin API, logging and `ssl`.
//! [`Config::from_json_str`] goes from the file to it; `Serialize` on [`Config`] goes back,
//! writing the file form so that the output parses again.
//!
//! Every error is one line, `<field path>: <problem>`. serde's own messages are not used: `de.rs`
//! deserializes each value through an adapter whose error type words them (see its header). Kept
//! by hand, because serde has nothing better: the duration parser (`duration.rs`, its header says
//! why), the backend URL parser (`backend.rs`: a URL crate would accept paths, user info and
//! schemes this format refuses, and its messages would not name the fault), the checks that need
//! more than one value (`checks.rs`), the unknown-key suggestion and the refusal of a key given
//! twice (`de.rs`: `serde_json` keeps the last of them).
//!
//! Files: `groups.rs` every key (and the defaults that take more than an expression); `key.rs`
//! the `Key` trait and the `keys!` macro; `values.rs` the value types (`admin.rs` those of the
//! keys that guard the admin API, `duration.rs` durations, `names.rs` the keys whose value is one
//! of a few names); `pool.rs` a pool; `backend.rs` backends (entry, URL, duplicates, resolution,
//! the addresses a backend may not have); `checks.rs` checks between keys, on files, and the
//! warnings; `de.rs` serde plumbing and messages; `error.rs` the error; `tests/` the
//! whole-document tests, `key/tests.rs` those of the macro.
//!
//! How to add a key:
//! 1. one line in its group in `groups.rs`, under a doc comment naming the key and its default:
//!    `field as "key": Type => Effective = default;`. `as "key"` when the key's name is not the
//!    field's; `Type` the value type that checks it (`Int<u32, 1, 100>`, `Timeout`, `bool`,
//!    `Option<FilePath>`, or a new type in `values.rs` with its `Plain` impl); `=> Effective`
//!    the field's type when it is not `Type` itself (`u32`, `Duration`, `Option<String>`); the
//!    default may use the keys above it in the group. Its place in the group is its place in an
//!    unknown key's "expected one of" list. Reading, the default, a pool's inheritance and the
//!    file form follow from that line;
//! 2. if it must agree with another key, a check in `check_related_fields` (`checks.rs`), and a
//!    line in [`Config::warnings`] if some values are allowed but probably not meant; its row in
//!    the README's table (a test holds the table to the keys); and tests.

mod admin;
mod backend;
mod checks;
mod de;
mod duration;
mod error;
mod groups;
mod key;
mod names;
mod pool;
mod rate_limit;
mod routes;
#[cfg(test)]
mod tests;
mod values;

use std::path::Path;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

pub use self::backend::{
    backend_from_json, check_backend_addr, BackendConfig, BackendTls, Scheme, URL_MAX_LENGTH,
    URL_PATTERN,
};
pub use self::de::{describe, parse_json, JsonError};
pub use self::duration::{format_duration, parse_duration};
pub use self::error::ConfigError;
pub use self::groups::{
    default_upgrade_dir, Admin, Balance, Dns, Health, Hsts, Http2, Identity, Keepalive, Limits,
    Logging, Outlier, Passive, Process, RateLimitTable, RateLimits, SslConfig, Sticky, Timeouts,
    Traffic, Upstream,
};
pub use self::names::{AccessLogFormat, HealthCheckMethod, LogLevel, StickyMode, Strategy};
pub use self::pool::PoolConfig;
pub use self::rate_limit::{PerSecond, RateLimit, RouteLimit};
pub use self::values::{
    open_access_log, AccessLogTarget, CertificateFiles, HashKey, StatusSet, MAX_HEADER_COUNT,
};

use self::backend::BackendSpec;
use self::error::invalid;
use self::groups::{
    AdminFile, DnsFile, Http2File, IdentityFile, KeepaliveFile, LimitsFile, LoggingFile,
    ProcessFile, RateLimitTableFile, SslFile, TimeoutsFile,
};
use self::key::{Group, Key};
use self::pool::PoolFile;
use self::routes::RoutingFile;
pub use self::routes::{MAX_PREFIX, MAX_ROUTES};

/// The whole configuration, every key with its default applied, in its groups.
///
/// `Serialize` writes the file form (durations as `"1m30s"`, backends as `{"url", "weight"}`),
/// which [`Config::from_json_str`] reads back to an equal `Config`: for reload diffs and, through
/// [`Config::redacted`], for showing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The process and its listeners: `port`, `bind`, `workers`, `max_connections`, ...
    pub process: Process,
    /// Who the client is: `trusted_proxies`, `proxy_protocol`, `ipv6_client_prefix`.
    pub identity: Identity,
    /// The pool: `backends`, and every key a pool carries (`strategy`, the sticky keys, the
    /// health checks, ...).
    pub pool: PoolConfig,
    /// The client side's timeouts: `client_header_timeout`, `keepalive_timeout`, ...
    pub timeouts: Timeouts,
    /// `buffer_size` and the limits on a request.
    pub limits: Limits,
    /// The worker's idle backend connections: `backend_keepalive`, `backend_keepalive_timeout`.
    pub keepalive: Keepalive,
    /// `dns_refresh`, `hosts_file`.
    pub dns: Dns,
    /// `admin_token`, `admin_allowed_hosts`, `admin_files_dir`, `allowed_backend_networks`.
    pub admin: Admin,
    /// `log_level` and the access log.
    pub logging: Logging,
    /// `http2`, `http2_max_concurrent_streams`, `http2_max_requests`.
    pub http2: Http2,
    /// `rate_limit_max_keys`.
    pub rate_limit_table: RateLimitTable,
    pub ssl: SslConfig,
    /// `pools`: the pools besides `default`, by name.
    pub pools: Vec<NamedPool>,
    /// `routes`, in file order.
    pub routes: Vec<RouteConfig>,
}

/// The name of the pool the top-level keys make.
pub const DEFAULT_POOL: &str = "default";

/// A pool of `pools`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPool {
    pub name: String,
    pub pool: PoolConfig,
}

/// A route of `routes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    pub name: String,
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub pool: String,
    pub strip_prefix: bool,
    /// `rate_limit`: the pool's (absent), none (`null`, `false`) or its own.
    pub rate_limit: RouteLimit,
}

impl Config {
    /// Unmatched requests go to the default pool: there are no routes, or the top-level
    /// `backends` list is not empty. Otherwise they get 404.
    pub fn default_serves(&self) -> bool {
        self.routes.is_empty() || !self.pool.backends.is_empty()
    }

    /// `("default", the top-level pool)`, then every pool of `pools`, in order.
    pub fn all_pools(&self) -> impl Iterator<Item = (&str, &PoolConfig)> {
        std::iter::once((DEFAULT_POOL, &self.pool))
            .chain(self.pools.iter().map(|p| (p.name.as_str(), &p.pool)))
    }
}

/// config.json as read: every group's keys that are there.
#[derive(Debug, Default)]
struct ConfigFile {
    process: ProcessFile,
    identity: IdentityFile,
    pool: PoolFile,
    timeouts: TimeoutsFile,
    limits: LimitsFile,
    keepalive: KeepaliveFile,
    dns: DnsFile,
    admin: AdminFile,
    logging: LoggingFile,
    http2: Http2File,
    rate_limit_table: RateLimitTableFile,
    ssl: Option<SslFile>,
    routing: RoutingFile,
}

impl ConfigFile {
    /// The groups besides the pool and `ssl`, in the order of the unknown-key list.
    fn groups(&self) -> [&dyn Group; 10] {
        [
            &self.process,
            &self.identity,
            &self.timeouts,
            &self.limits,
            &self.keepalive,
            &self.dns,
            &self.admin,
            &self.logging,
            &self.http2,
            &self.rate_limit_table,
        ]
    }

    /// The effective config, the backends still to be resolved. The checks here are those
    /// within an entry or list: a backend without `url` or listed twice, a certificate without
    /// its key.
    fn resolve(mut self) -> Result<(Config, Vec<Vec<BackendSpec>>), ConfigError> {
        let (pool, specs) = PoolConfig::resolve(std::mem::take(&mut self.pool), None, "")?;
        self.groups().into_iter().try_for_each(|g| g.check(""))?;
        self.ssl.check("ssl")?;
        let (named, routes) = std::mem::take(&mut self.routing).resolve(&pool)?;
        let mut all_specs = vec![specs];
        let mut pools = Vec::with_capacity(named.len());
        for (p, specs) in named {
            pools.push(p);
            all_specs.push(specs);
        }
        let config = Config {
            process: self.process.resolve(None),
            identity: self.identity.resolve(None),
            pool,
            timeouts: self.timeouts.resolve(None),
            limits: self.limits.resolve(None),
            keepalive: self.keepalive.resolve(None),
            dns: self.dns.resolve(None),
            admin: self.admin.resolve(None),
            logging: self.logging.resolve(None),
            http2: self.http2.resolve(None),
            rate_limit_table: self.rate_limit_table.resolve(None),
            ssl: self.ssl.map_or_else(SslConfig::default, SslFile::value),
            pools,
            routes,
        };
        Ok((config, all_specs))
    }
}

impl Group for ConfigFile {
    fn read(&mut self, key: &str, value: &Value, at: &str) -> Option<Result<(), ConfigError>> {
        if key == "ssl" {
            return Some(key::read_into(&mut self.ssl, value, &key::join(at, key)));
        }
        if let Some(read) = self.routing.read(key, value) {
            return Some(read);
        }
        let groups: [&mut dyn Group; 11] = [
            &mut self.process,
            &mut self.identity,
            &mut self.pool,
            &mut self.timeouts,
            &mut self.limits,
            &mut self.keepalive,
            &mut self.dns,
            &mut self.admin,
            &mut self.logging,
            &mut self.http2,
            &mut self.rate_limit_table,
        ];
        groups.into_iter().find_map(|g| g.read(key, value, at))
    }

    fn check(&self, at: &str) -> Result<(), ConfigError> {
        self.pool.check(at)?;
        self.groups().into_iter().try_for_each(|g| g.check(at))?;
        self.ssl.check(&key::join(at, "ssl"))
    }

    fn keys(&self, out: &mut Vec<&'static str>) {
        let [process, identity, rest @ ..] = self.groups();
        process.keys(out);
        identity.keys(out);
        self.pool.keys(out);
        for group in rest {
            group.keys(out);
        }
        out.extend(["pools", "routes", "ssl"]);
    }
}

impl Config {
    /// Writes every key in the file's form.
    fn write(&self, out: &mut Map<String, Value>) {
        self.process.write(out);
        self.identity.write(out);
        self.pool.write(out);
        self.timeouts.write(out);
        self.limits.write(out);
        self.keepalive.write(out);
        self.dns.write(out);
        self.admin.write(out);
        self.logging.write(out);
        self.http2.write(out);
        self.rate_limit_table.write(out);
        self.write_routing(out);
        if let Some(ssl) = SslFile::write(&self.ssl) {
            out.insert("ssl".into(), ssl);
        }
    }
}

/// The file form: every key written out, so that the text parses back to the same config.
/// Secrets would be redacted in [`Config::redacted`], not here.
impl Serialize for Config {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = Map::new();
        self.write(&mut out);
        out.serialize(serializer)
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
        let mut file = ConfigFile::default();
        key::read_object(&root, "", &mut file)?;
        let (mut config, specs) = file.resolve()?;
        config.check_related_fields()?;
        config.check_files()?;
        let hosts = config.dns.hosts()?;
        let pools =
            std::iter::once(&mut config.pool).chain(config.pools.iter_mut().map(|p| &mut p.pool));
        for (pool, specs) in pools.zip(specs) {
            let tls = std::mem::take(&mut pool.backend_tls);
            (pool.backends, pool.backend_tls) =
                backend::resolve_backends(specs, tls, hosts.as_ref())?;
        }
        config.check_backend_addresses()?;
        Ok(config)
    }

    /// A copy fit to show (`GET /config`): every secret (`admin_token`, `sticky_cookie_secret`)
    /// replaced by [`REDACTED`].
    /// Certificate and key file *paths* are not secrets; a new key that holds one (a key password)
    /// must be blanked here too, with a test that it is.
    pub fn redacted(&self) -> Config {
        let mut shown = self.clone();
        let pools = shown
            .pools
            .iter_mut()
            .map(|p| &mut p.pool.sticky.cookie_secret);
        let secrets = [&mut shown.admin.token, &mut shown.pool.sticky.cookie_secret];
        for secret in secrets.into_iter().chain(pools) {
            if secret.is_some() {
                *secret = Some(REDACTED.into());
            }
        }
        shown
    }
}

impl Dns {
    /// The hosts file, read again (`None` without one); a reload or refresh uses the file as it
    /// is now.
    pub fn hosts(&self) -> Result<Option<crate::dns::Hosts>, ConfigError> {
        match &self.hosts_file {
            Some(path) => crate::dns::Hosts::load(path)
                .map(Some)
                .map_err(|e| invalid("hosts_file", e)),
            None => Ok(None),
        }
    }
}
