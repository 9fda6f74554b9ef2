//! The file layer: config.json as serde reads and writes it ([`ConfigFile`], [`SslFile`],
//! [`CertificateFile`]; `backends[]` is in `backend.rs`), the validated value types its keys use,
//! and the two conversions with the effective [`Config`]: [`ConfigFile::into_config`] (defaults
//! applied) and `From<Config>` (to serialise). The keys' meanings and defaults are documented on
//! the effective fields in `mod.rs`.
//!
//! Every key is an `Option` in a `#[serde(default)]` struct: absent and `null` both read as
//! `None`, and the default is applied in `into_config`, beside the other keys' defaults. Values
//! are checked as they are read, by their type: [`Int`] (a range), [`Dur`], [`Ip`],
//! [`HealthCheckPath`], [`FilePath`], [`BackendUrl`](super::backend::BackendUrl), [`Strategy`]
//! and [`HealthCheckMethod`] (their names). The number-taking types are `try_from = "Value"` rather
//! than `u64` or `String` so that their errors can say what was found instead (`expected an
//! integer, found the string "8080"`, `write "10s", not 10`).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::admin::{networks, AllowedHost, Token};
use super::backend::{self, BackendFile, BackendSpec};
use super::de::expected;
use super::duration::{Dur, Interval, Lifetime, Timeout};
use super::{
    default_workers, invalid, AccessLogFormat, AccessLogTarget, CertificateFiles, Config,
    ConfigError, HashKey, HealthCheckMethod, Hsts, LogLevel, SslConfig, StatusSet, StickyMode,
    Strategy, NO_BACKEND_TLS,
};

/// Upper bound of `buffer_size`, and so of `max_request_head`.
const MAX_BUFFER_SIZE: u64 = 16 * 1024 * 1024;

/// A listening port: 0 (pick a free one, for tests) to 65535.
type ListenPort = Int<u16, 0, 65_535>;
/// A port that cannot be 0 ("any free port"): 1 to 65535.
type Port = Int<u16, 1, 65_535>;
/// A buffer size or limit in bytes: at least `MIN`, at most 16 MiB.
type Bytes<const MIN: u64> = Int<usize, MIN, MAX_BUFFER_SIZE>;

/// config.json as written. The order of the fields is the order in which an unknown key's
/// message lists the known keys (the README table's order, each new key beside its kin).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct ConfigFile {
    port: Option<ListenPort>,
    admin_port: Option<ListenPort>,
    bind: Option<Ip>,
    admin_bind: Option<Ip>,
    workers: Option<Int<usize, 1, 1024>>,
    strategy: Option<Strategy>,
    hash_key: Option<HashKey>,
    trusted_proxies: Option<Vec<String>>,
    proxy_protocol: Option<bool>,
    ipv6_client_prefix: Option<Int<u8, 1, 128>>,
    backends: Option<Vec<BackendFile>>,
    allowed_backend_networks: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend_ca_file: Option<FilePath>,
    dns_refresh: Option<Interval>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hosts_file: Option<FilePath>,
    backend_timeout: Option<Timeout>,
    connect_timeout: Option<Timeout>,
    client_header_timeout: Option<Timeout>,
    client_body_timeout: Option<Timeout>,
    send_timeout: Option<Timeout>,
    keepalive_timeout: Option<Timeout>,
    tunnel_timeout: Option<Timeout>,
    tls_handshake_timeout: Option<Timeout>,
    backend_keepalive: Option<Int<usize, 0, 100_000>>,
    backend_keepalive_timeout: Option<Timeout>,
    retries: Option<Int<u32, 0, 10>>,
    max_request_head: Option<Bytes<1024>>,
    max_uri_length: Option<Bytes<256>>,
    max_connections: Option<Int<usize, 1, 1_000_000>>,
    max_connections_per_ip: Option<Int<u32, 0, 1_000_000>>,
    max_header_count: Option<Int<usize, 1, { crate::http::MAX_HEADERS as u64 }>>,
    max_body_size: Option<Int<u64, 0, 4_000_000_000>>,
    max_conns: Option<Int<u32, 0, 1_000_000>>,
    queue_timeout: Option<Timeout>,
    buffer_size: Option<Bytes<4096>>,
    shutdown_timeout: Option<Timeout>,
    upgrade_socket: Option<UpgradeSocket>,
    health_check_frequency: Option<Interval>,
    health_check_method: Option<HealthCheckMethod>,
    health_check_path: Option<HealthCheckPath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health_check_timeout: Option<Timeout>,
    health_check_expect: Option<StatusSet>,
    health_check_rise: Option<Int<u32, 1, 100>>,
    health_check_fall: Option<Int<u32, 1, 100>>,
    max_fails: Option<Int<u32, 0, 1000>>,
    fail_timeout: Option<Timeout>,
    fail_open: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_token: Option<Token>,
    admin_allowed_hosts: Option<Vec<AllowedHost>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_files_dir: Option<FilePath>,
    enable_sticky_sessions: Option<bool>,
    sticky_session_ttl: Option<Lifetime>,
    sticky_mode: Option<StickyMode>,
    sticky_max_entries: Option<Int<usize, 1, 10_000_000>>,
    sticky_cookie_name: Option<CookieName>,
    sticky_cookie_strip: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sticky_cookie_secret: Option<CookieSecret>,
    log_level: Option<LogLevel>,
    access_log: Option<AccessLogFile>,
    access_log_format: Option<AccessLogFormat>,
    request_id: Option<bool>,
    ssl: Option<SslFile>,
}

/// A cookie name (an RFC 6265 token: no spaces, `=`, `;` or quotes).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub(super) struct CookieName(String);

impl TryFrom<String> for CookieName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if token {
            Ok(CookieName(name))
        } else {
            Err(format!(
                "{name:?} is not a cookie name (letters, digits and !#$%&'*+-.^_`|~ only)"
            ))
        }
    }
}

/// `sticky_cookie_secret`: at least [`MIN_SECRET_LEN`](crate::hash::MIN_SECRET_LEN)
/// characters (a short one could be found by trying), no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub(super) struct CookieSecret(String);

impl TryFrom<String> for CookieSecret {
    type Error = String;

    fn try_from(secret: String) -> Result<Self, String> {
        let min = crate::hash::MIN_SECRET_LEN;
        let n = secret.chars().count();
        if n < min {
            Err(format!(
                "must be at least {min} characters (it has {n}): a short secret can be guessed"
            ))
        } else if secret.chars().any(char::is_control) {
            Err("must not contain control characters".into())
        } else {
            Ok(CookieSecret(secret))
        }
    }
}

/// The `ssl` block as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct SslFile {
    enabled: Option<bool>,
    /// A path; `""` (the default) is "not given". Checked, with the other files, once every key
    /// has been read (see `Config::check_files`).
    cert_file: Option<String>,
    key_file: Option<String>,
    certificates: Option<Vec<CertificateFile>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redirect_http_port: Option<Port>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hsts: Option<HstsFile>,
}

/// `ssl.hsts` as written; `null` or absent: off.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct HstsFile {
    max_age: Option<HstsMaxAge>,
    include_subdomains: Option<bool>,
}

/// `ssl.hsts.max_age`: at most two years (browsers cap it there, or lower); zero allowed.
type HstsMaxAge = Dur<{ 2 * 365 * 24 * 60 * 60 }, true>;

impl HstsFile {
    fn into_hsts(self) -> Result<Hsts, ConfigError> {
        let max_age = self.max_age.map_or(Hsts::DEFAULT_MAX_AGE, Dur::get);
        if max_age.subsec_nanos() != 0 {
            let problem = "must be whole seconds (HSTS counts in seconds)";
            return Err(invalid("ssl.hsts.max_age", problem));
        }
        Ok(Hsts {
            max_age,
            include_subdomains: self.include_subdomains.unwrap_or(false),
        })
    }
}

/// One `ssl.certificates[]` entry as written: both keys are required (checked in
/// `into_ssl_config`, to name the missing one).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct CertificateFile {
    cert_file: Option<FilePath>,
    key_file: Option<FilePath>,
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

impl ConfigFile {
    /// The effective values, every default applied, and the backends still to be resolved.
    /// The checks here are those that need more than one value: a missing `url`, a backend
    /// listed twice. (The destructuring names every key, so a new one cannot be forgotten.)
    pub(super) fn into_config(self) -> Result<(Config, Vec<BackendSpec>), ConfigError> {
        let ConfigFile {
            port,
            admin_port,
            bind,
            admin_bind,
            workers,
            strategy,
            hash_key,
            trusted_proxies,
            proxy_protocol,
            ipv6_client_prefix,
            backends,
            allowed_backend_networks,
            backend_ca_file,
            dns_refresh,
            hosts_file,
            backend_timeout,
            connect_timeout,
            client_header_timeout,
            client_body_timeout,
            send_timeout,
            keepalive_timeout,
            tunnel_timeout,
            tls_handshake_timeout,
            backend_keepalive,
            backend_keepalive_timeout,
            retries,
            max_request_head,
            max_uri_length,
            max_connections,
            max_connections_per_ip,
            max_header_count,
            max_body_size,
            max_conns,
            queue_timeout,
            buffer_size,
            shutdown_timeout,
            upgrade_socket,
            health_check_frequency,
            health_check_method,
            health_check_path,
            health_check_timeout,
            health_check_expect,
            health_check_rise,
            health_check_fall,
            max_fails,
            fail_timeout,
            fail_open,
            admin_token,
            admin_allowed_hosts,
            admin_files_dir,
            enable_sticky_sessions,
            sticky_session_ttl,
            sticky_mode,
            sticky_max_entries,
            sticky_cookie_name,
            sticky_cookie_strip,
            sticky_cookie_secret,
            log_level,
            access_log,
            access_log_format,
            request_id,
            ssl,
        } = self;
        let (specs, backend_tls) = backend::specs(backends.unwrap_or_default())?;
        // A smaller buffer_size lowers the defaults of the limits that must fit inside it.
        let buffer_size = buffer_size.map_or(131_072, Int::get);
        let max_request_head = max_request_head.map_or(buffer_size.min(16_384), Int::get);
        let max_uri_length = max_uri_length.map_or(max_request_head.min(8192), Int::get);
        let port = port.map_or(8080, Int::get);
        let bind = bind.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), Ip::get);
        let config = Config {
            port,
            admin_port: admin_port.map_or(8081, Int::get),
            bind,
            admin_bind: admin_bind.map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), Ip::get),
            workers: workers.map_or_else(default_workers, Int::get),
            strategy: strategy.unwrap_or(Strategy::RoundRobin),
            backends: Vec::new(), // resolved last, once everything else is valid
            backend_tls,
            backend_ca_file: backend_ca_file.map(FilePath::into_string),
            dns_refresh: dns_refresh.map_or(secs(30), Dur::get),
            hosts_file: hosts_file.map(FilePath::into_string),
            health_check_frequency: health_check_frequency.map_or(secs(10), Dur::get),
            health_check_method: health_check_method.unwrap_or(HealthCheckMethod::Http),
            health_check_path: health_check_path.map_or_else(|| "/health".into(), |p| p.0),
            health_check_timeout: health_check_timeout.map(Dur::get),
            health_check_expect: health_check_expect.unwrap_or_default(),
            health_check_rise: health_check_rise.map_or(2, Int::get),
            health_check_fall: health_check_fall.map_or(3, Int::get),
            max_fails: max_fails.map_or(3, Int::get),
            fail_timeout: fail_timeout.map_or(secs(10), Dur::get),
            fail_open: fail_open.unwrap_or(false),
            admin_token: admin_token.map(|t| t.0),
            admin_allowed_hosts: admin_allowed_hosts
                .unwrap_or_default()
                .into_iter()
                .map(|h| h.0)
                .collect(),
            admin_files_dir: admin_files_dir.map(FilePath::into_string),
            allowed_backend_networks: networks(allowed_backend_networks.unwrap_or_default())?,
            backend_timeout: backend_timeout.map_or(secs(60), Dur::get),
            connect_timeout: connect_timeout.map_or(secs(60), Dur::get),
            client_header_timeout: client_header_timeout.map_or(secs(60), Dur::get),
            client_body_timeout: client_body_timeout.map_or(secs(60), Dur::get),
            send_timeout: send_timeout.map_or(secs(60), Dur::get),
            keepalive_timeout: keepalive_timeout.map_or(secs(75), Dur::get),
            tunnel_timeout: tunnel_timeout.map_or(secs(60), Dur::get),
            tls_handshake_timeout: tls_handshake_timeout.map_or(secs(10), Dur::get),
            backend_keepalive_timeout: backend_keepalive_timeout.map_or(secs(60), Dur::get),
            backend_keepalive: backend_keepalive.map_or(1024, Int::get),
            retries: retries.map_or(2, Int::get),
            max_request_head,
            max_uri_length,
            max_connections: max_connections.map_or(16_384, Int::get),
            max_connections_per_ip: max_connections_per_ip.map_or(0, Int::get),
            max_header_count: max_header_count.map_or(crate::http::DEFAULT_MAX_HEADERS, Int::get),
            max_body_size: max_body_size.map_or(0, Int::get),
            buffer_size,
            shutdown_timeout: shutdown_timeout.map_or(secs(30), Dur::get),
            upgrade_socket: match upgrade_socket {
                None => super::default_upgrade_socket(bind, port),
                Some(UpgradeSocket(path)) => path,
            },
            enable_sticky_sessions: enable_sticky_sessions.unwrap_or(false),
            sticky_session_ttl: sticky_session_ttl.map_or(secs(60 * 60), Dur::get),
            sticky_mode: sticky_mode.unwrap_or(StickyMode::Ip),
            sticky_max_entries: sticky_max_entries.map_or(100_000, Int::get),
            sticky_cookie_name: sticky_cookie_name
                .map_or_else(|| "FERRULE_BACKEND".into(), |n| n.0),
            sticky_cookie_strip: sticky_cookie_strip.unwrap_or(false),
            sticky_cookie_secret: sticky_cookie_secret.map(|s| s.0),
            hash_key: hash_key.unwrap_or(HashKey::ClientIp),
            trusted_proxies: crate::client_ip::TrustedProxies::parse(
                trusted_proxies.unwrap_or_default(),
            )
            .map_err(|(i, e)| invalid(&format!("trusted_proxies[{i}]"), e.to_string()))?,
            proxy_protocol: proxy_protocol.unwrap_or(false),
            ipv6_client_prefix: ipv6_client_prefix
                .map_or(crate::client_ip::DEFAULT_IPV6_CLIENT_PREFIX, Int::get),
            max_conns: max_conns.map_or(0, Int::get),
            queue_timeout: queue_timeout.map_or(secs(5), Dur::get),
            log_level: log_level.unwrap_or(LogLevel(log::LevelFilter::Info)),
            access_log: access_log.map_or(AccessLogTarget::Stdout, |a| a.0),
            access_log_format: access_log_format.unwrap_or(AccessLogFormat::Combined),
            request_id: request_id.unwrap_or(true),
            ssl: ssl.unwrap_or_default().into_ssl_config()?,
        };
        Ok((config, specs))
    }
}

impl SslFile {
    fn into_ssl_config(self) -> Result<SslConfig, ConfigError> {
        let SslFile {
            enabled,
            cert_file,
            key_file,
            certificates,
            redirect_http_port,
            hsts,
        } = self;
        let certificates = certificates
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, entry)| {
                let path = |key: &str| format!("ssl.certificates[{i}].{key}");
                let missing = "missing (every certificate needs a cert_file and a key_file)";
                Ok(CertificateFiles {
                    cert_file: entry
                        .cert_file
                        .ok_or_else(|| invalid(&path("cert_file"), missing))?
                        .into_string(),
                    key_file: entry
                        .key_file
                        .ok_or_else(|| invalid(&path("key_file"), missing))?
                        .into_string(),
                })
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(SslConfig {
            enabled: enabled.unwrap_or(false),
            cert_file: cert_file.unwrap_or_default(),
            key_file: key_file.unwrap_or_default(),
            certificates,
            redirect_http_port: redirect_http_port.map(Int::get),
            hsts: hsts.map(HstsFile::into_hsts).transpose()?,
        })
    }
}

/// The file form of an effective config: every key written out, so that the text parses back
/// to the same config. Secrets would be redacted in [`Config::redacted`], not here.
impl From<Config> for ConfigFile {
    fn from(config: Config) -> Self {
        let Config {
            port,
            admin_port,
            bind,
            admin_bind,
            workers,
            strategy,
            backends,
            backend_tls,
            backend_ca_file,
            dns_refresh,
            hosts_file,
            health_check_frequency,
            health_check_method,
            health_check_path,
            health_check_timeout,
            health_check_expect,
            health_check_rise,
            health_check_fall,
            max_fails,
            fail_timeout,
            fail_open,
            admin_token,
            admin_allowed_hosts,
            admin_files_dir,
            allowed_backend_networks,
            backend_timeout,
            connect_timeout,
            client_header_timeout,
            client_body_timeout,
            send_timeout,
            keepalive_timeout,
            tunnel_timeout,
            tls_handshake_timeout,
            backend_keepalive_timeout,
            backend_keepalive,
            retries,
            max_request_head,
            max_uri_length,
            max_connections,
            max_connections_per_ip,
            max_header_count,
            max_body_size,
            buffer_size,
            shutdown_timeout,
            upgrade_socket,
            hash_key,
            trusted_proxies,
            proxy_protocol,
            ipv6_client_prefix,
            max_conns,
            queue_timeout,
            enable_sticky_sessions,
            sticky_session_ttl,
            sticky_mode,
            sticky_max_entries,
            sticky_cookie_name,
            sticky_cookie_strip,
            sticky_cookie_secret,
            log_level,
            access_log,
            access_log_format,
            request_id,
            ssl,
        } = config;
        ConfigFile {
            port: Some(Int(port)),
            admin_port: Some(Int(admin_port)),
            bind: Some(Ip(bind)),
            admin_bind: Some(Ip(admin_bind)),
            workers: Some(Int(workers)),
            strategy: Some(strategy),
            hash_key: Some(hash_key),
            trusted_proxies: Some(
                trusted_proxies
                    .cidrs()
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            ),
            proxy_protocol: Some(proxy_protocol),
            ipv6_client_prefix: Some(Int(ipv6_client_prefix)),
            allowed_backend_networks: Some(
                allowed_backend_networks
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            ),
            // a name that resolved to several addresses is several backends, but one entry
            backends: Some(
                backends
                    .iter()
                    .enumerate()
                    .filter(|(i, b)| !backends[..*i].iter().any(|e| e.url == b.url))
                    .map(|(i, b)| BackendFile::of(b, backend_tls.get(i).unwrap_or(&NO_BACKEND_TLS)))
                    .collect(),
            ),
            backend_ca_file: backend_ca_file.map(FilePath),
            dns_refresh: Some(Dur::new(dns_refresh)),
            hosts_file: hosts_file.map(FilePath),
            backend_timeout: Some(Dur::new(backend_timeout)),
            connect_timeout: Some(Dur::new(connect_timeout)),
            client_header_timeout: Some(Dur::new(client_header_timeout)),
            client_body_timeout: Some(Dur::new(client_body_timeout)),
            send_timeout: Some(Dur::new(send_timeout)),
            keepalive_timeout: Some(Dur::new(keepalive_timeout)),
            tunnel_timeout: Some(Dur::new(tunnel_timeout)),
            tls_handshake_timeout: Some(Dur::new(tls_handshake_timeout)),
            backend_keepalive: Some(Int(backend_keepalive)),
            backend_keepalive_timeout: Some(Dur::new(backend_keepalive_timeout)),
            retries: Some(Int(retries)),
            max_request_head: Some(Int(max_request_head)),
            max_uri_length: Some(Int(max_uri_length)),
            max_connections: Some(Int(max_connections)),
            max_connections_per_ip: Some(Int(max_connections_per_ip)),
            max_header_count: Some(Int(max_header_count)),
            max_body_size: Some(Int(max_body_size)),
            max_conns: Some(Int(max_conns)),
            queue_timeout: Some(Dur::new(queue_timeout)),
            buffer_size: Some(Int(buffer_size)),
            shutdown_timeout: Some(Dur::new(shutdown_timeout)),
            upgrade_socket: Some(UpgradeSocket(upgrade_socket)),
            health_check_frequency: Some(Dur::new(health_check_frequency)),
            health_check_method: Some(health_check_method),
            health_check_path: Some(HealthCheckPath(health_check_path)),
            health_check_timeout: health_check_timeout.map(Dur::new),
            health_check_expect: Some(health_check_expect),
            health_check_rise: Some(Int(health_check_rise)),
            health_check_fall: Some(Int(health_check_fall)),
            max_fails: Some(Int(max_fails)),
            fail_timeout: Some(Dur::new(fail_timeout)),
            fail_open: Some(fail_open),
            admin_token: admin_token.map(Token),
            admin_allowed_hosts: Some(admin_allowed_hosts.into_iter().map(AllowedHost).collect()),
            admin_files_dir: admin_files_dir.map(FilePath),
            enable_sticky_sessions: Some(enable_sticky_sessions),
            sticky_session_ttl: Some(Dur::new(sticky_session_ttl)),
            sticky_mode: Some(sticky_mode),
            sticky_max_entries: Some(Int(sticky_max_entries)),
            sticky_cookie_name: Some(CookieName(sticky_cookie_name)),
            sticky_cookie_strip: Some(sticky_cookie_strip),
            sticky_cookie_secret: sticky_cookie_secret.map(CookieSecret),
            log_level: Some(log_level),
            access_log: Some(AccessLogFile(access_log)),
            access_log_format: Some(access_log_format),
            request_id: Some(request_id),
            ssl: Some(SslFile {
                enabled: Some(ssl.enabled),
                cert_file: Some(ssl.cert_file),
                key_file: Some(ssl.key_file),
                certificates: Some(
                    ssl.certificates
                        .into_iter()
                        .map(|c| CertificateFile {
                            cert_file: Some(FilePath(c.cert_file)),
                            key_file: Some(FilePath(c.key_file)),
                        })
                        .collect(),
                ),
                redirect_http_port: ssl.redirect_http_port.map(Int),
                hsts: ssl.hsts.map(|h| HstsFile {
                    max_age: Some(Dur::new(h.max_age)),
                    include_subdomains: Some(h.include_subdomains),
                }),
            }),
        }
    }
}

/// An integer key within `MIN..=MAX`, held as `T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Value", bound(deserialize = "T: TryFrom<u64>"))]
pub(super) struct Int<T, const MIN: u64, const MAX: u64>(T);

impl<T: Copy, const MIN: u64, const MAX: u64> Int<T, MIN, MAX> {
    /// Wraps an effective value to serialise it (it was checked when it was read).
    pub(super) fn new(value: T) -> Self {
        Int(value)
    }

    pub(super) fn get(self) -> T {
        self.0
    }
}

impl<T: TryFrom<u64>, const MIN: u64, const MAX: u64> TryFrom<Value> for Int<T, MIN, MAX> {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        let n = integer_in(&value, MIN, MAX)?;
        T::try_from(n)
            .map(Int)
            .map_err(|_| "is too large for this platform".to_owned())
    }
}

impl<T: Serialize, const MIN: u64, const MAX: u64> Serialize for Int<T, MIN, MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// A JSON integer within `min..=max`. A number out of range says which bound it broke, even when
/// serde_json had to read it as a float (`-1e30`, `1e30`); any other float, integral or not
/// (`8080.0`, `1.5`), is not an integer.
fn integer_in(value: &Value, min: u64, max: u64) -> Result<u64, String> {
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

/// `bind`, `admin_bind`: an IP address, without a port.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct Ip(IpAddr);

impl Ip {
    fn get(self) -> IpAddr {
        self.0
    }
}

impl TryFrom<String> for Ip {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
            .map(Ip)
            .map_err(|_| format!("{s:?} is not an IP address (such as \"0.0.0.0\" or \"::\")"))
    }
}

impl Serialize for Ip {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// `health_check_path`: starts with `/`, no spaces or control characters.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct HealthCheckPath(String);

impl TryFrom<String> for HealthCheckPath {
    type Error = String;

    fn try_from(path: String) -> Result<Self, String> {
        if !path.starts_with('/') {
            Err(format!("{path:?} must start with \"/\""))
        } else if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Err(format!(
                "{path:?} must not contain spaces or control characters"
            ))
        } else {
            Ok(HealthCheckPath(path))
        }
    }
}

impl Serialize for HealthCheckPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// `upgrade_socket`: the path of a unix socket (at most 107 bytes, the size of `sun_path`), or
/// `false` or `""` for none. Written back as the path, or `false`.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "Value")]
pub(super) struct UpgradeSocket(Option<String>);

/// The longest path a `sockaddr_un` holds (its 108 bytes, less the terminating NUL).
pub(super) const MAX_SOCKET_PATH: usize = 107;

impl TryFrom<Value> for UpgradeSocket {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        match value {
            Value::Bool(false) => Ok(UpgradeSocket(None)),
            Value::String(s) if s.is_empty() => Ok(UpgradeSocket(None)),
            Value::String(s) if s.len() > MAX_SOCKET_PATH => Err(format!(
                "the path is {} bytes; a unix socket path is at most {MAX_SOCKET_PATH}",
                s.len()
            )),
            Value::String(s) if s.contains('\0') => Err("the path contains a NUL byte".into()),
            Value::String(s) => Ok(UpgradeSocket(Some(s))),
            other => Err(expected("a unix socket path, or false for none", &other)),
        }
    }
}

impl Serialize for UpgradeSocket {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(path) => serializer.serialize_str(path),
            None => serializer.serialize_bool(false),
        }
    }
}

/// `access_log`: `false` (none), `"stdout"`, `"stderr"` or a file path. Written back the same way.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "Value")]
pub(super) struct AccessLogFile(AccessLogTarget);

impl TryFrom<Value> for AccessLogFile {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        let target = match value {
            Value::Bool(false) => AccessLogTarget::Off,
            Value::String(s) if s == "stdout" => AccessLogTarget::Stdout,
            Value::String(s) if s == "stderr" => AccessLogTarget::Stderr,
            Value::String(s) if s.is_empty() => {
                return Err("must not be empty (false for no access log)".into())
            }
            Value::String(s) if s.contains('\0') => {
                return Err("the path contains a NUL byte".into())
            }
            Value::String(s) => AccessLogTarget::File(s),
            other => {
                return Err(expected(
                    "false, \"stdout\", \"stderr\" or a file path",
                    &other,
                ))
            }
        };
        Ok(AccessLogFile(target))
    }
}

impl Serialize for AccessLogFile {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            AccessLogTarget::Off => serializer.serialize_bool(false),
            AccessLogTarget::Stdout => serializer.serialize_str("stdout"),
            AccessLogTarget::Stderr => serializer.serialize_str("stderr"),
            AccessLogTarget::File(path) => serializer.serialize_str(path),
        }
    }
}

/// A file path key (`backend_ca_file`, `ca_file`, `certificates[].cert_file`, ...): not empty.
/// Whether the file opens is checked later, with the other files (`Config::check_files`).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct FilePath(String);

impl FilePath {
    pub(super) fn new(path: String) -> Self {
        FilePath(path)
    }

    pub(super) fn into_string(self) -> String {
        self.0
    }
}

impl TryFrom<String> for FilePath {
    type Error = String;

    fn try_from(path: String) -> Result<Self, String> {
        if path.is_empty() {
            Err("must not be empty (the path of a file)".to_owned())
        } else {
            Ok(FilePath(path))
        }
    }
}

impl Serialize for FilePath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}
