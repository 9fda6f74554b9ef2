//! `backends[]`: the effective entry ([`BackendConfig`], [`BackendTls`]), the entry as read
//! ([`BackendFile`]), its URL ([`BackendUrl`], `http[s]://host[:port][/]`, checked as it is
//! read), the duplicate check, the name resolution that makes [`BackendConfig`]s (at load, so no
//! worker ever blocks on DNS), and the addresses a backend may not have
//! ([`check_backend_addr`]).
//! [`backend_from_json`] does the same for one entry on its own (the admin API's
//! `POST /backends`, on the admin thread).

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize, Serializer};

use serde_json::Value;

use super::de;
use super::error::{invalid, ConfigError};
use super::values::{check_file, FilePath, Int};

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

/// The TLS settings of a backend that has no entry in its pool's `backend_tls`.
pub(super) static NO_BACKEND_TLS: BackendTls = BackendTls {
    ca_file: None,
    tls_skip_verify: false,
};

/// `weight`: 1 to 10000.
pub(super) type Weight = Int<u32, 1, 10_000>;

/// One `backends[]` entry as written. Every key may be absent or `null`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct BackendFile {
    /// Required (checked in [`specs`], to name it with its own message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<BackendUrl>,
    pub weight: Option<Weight>,
    /// Requests in flight at most (0: no limit); absent, the top-level `max_conns`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_conns: Option<Int<u32, 0, 1_000_000>>,
    /// Only for https:// (a warning otherwise); the file must exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<FilePath>,
    pub tls_skip_verify: Option<bool>,
}

impl BackendFile {
    /// The file form of an effective backend, to serialise it.
    pub(super) fn of(backend: &BackendConfig, tls: &BackendTls) -> BackendFile {
        BackendFile {
            url: Some(BackendUrl {
                text: backend.url.clone(),
                target: Target {
                    scheme: backend.scheme,
                    host: backend.host.clone(),
                    port: backend.port,
                },
            }),
            weight: Some(Int::new(backend.weight)),
            max_conns: backend.max_conns.map(Int::new),
            ca_file: tls.ca_file.clone().map(FilePath::new),
            tls_skip_verify: Some(tls.tls_skip_verify),
        }
    }
}

/// A backend URL: the text as written and what it points at.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct BackendUrl {
    text: String,
    target: Target,
}

impl TryFrom<String> for BackendUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let target = parse_backend_url(&text)?;
        Ok(BackendUrl { text, target })
    }
}

impl Serialize for BackendUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// What a backend URL points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
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

/// A `backends[]` entry, checked but not yet resolved.
pub(super) struct BackendSpec {
    /// Its index in `backends`, for messages.
    index: usize,
    /// The path of its `url`, for messages (`backends[2].url`).
    field: String,
    url: BackendUrl,
    weight: u32,
    max_conns: Option<u32>,
}

/// Checks the entries that need each other or a message of their own (a missing `url`, the same
/// backend twice) and splits them into what is resolved later and their TLS settings. `at` is
/// the path of the object `backends` is in (empty at the top level).
pub(super) fn specs(
    files: Vec<BackendFile>,
    at: &str,
) -> Result<(Vec<BackendSpec>, Vec<BackendTls>), ConfigError> {
    let mut specs: Vec<BackendSpec> = Vec::with_capacity(files.len());
    let mut tls = Vec::with_capacity(files.len());
    for (index, file) in files.into_iter().enumerate() {
        let url_field = super::key::join(at, &format!("backends[{index}].url"));
        let url = file
            .url
            .ok_or_else(|| invalid(&url_field, "missing (every backend needs a url)"))?;
        if let Some(earlier) = specs.iter().find(|s| s.url.target.same_as(&url.target)) {
            let problem = format!(
                "{:?} is the same backend as backends[{}] ({:?})",
                url.text, earlier.index, earlier.url.text
            );
            return Err(invalid(&url_field, problem));
        }
        specs.push(BackendSpec {
            index,
            field: url_field,
            url,
            weight: file.weight.map_or(1, Int::get),
            max_conns: file.max_conns.map(Int::get),
        });
        tls.push(BackendTls {
            ca_file: file.ca_file.map(FilePath::into_string),
            tls_skip_verify: file.tls_skip_verify.unwrap_or(false),
        });
    }
    Ok((specs, tls))
}

/// Resolves every backend's host name, in order; the first that fails is the error. A name
/// with several addresses becomes one backend per address (its TLS settings repeated beside
/// each, `tls` being parallel to `specs`).
pub(super) fn resolve_backends(
    specs: Vec<BackendSpec>,
    tls: Vec<BackendTls>,
    hosts: Option<&crate::dns::Hosts>,
) -> Result<(Vec<BackendConfig>, Vec<BackendTls>), ConfigError> {
    let mut backends = Vec::with_capacity(specs.len());
    let mut settings = Vec::with_capacity(specs.len());
    for (mut spec, tls) in specs.into_iter().zip(tls) {
        let field = std::mem::take(&mut spec.field);
        for backend in resolve_spec(spec, &field, hosts)? {
            backends.push(backend);
            settings.push(tls.clone());
        }
    }
    Ok((backends, settings))
}

/// Resolves one backend's host name (every address); `field` names its URL in the message.
fn resolve_spec(
    spec: BackendSpec,
    field: &str,
    hosts: Option<&crate::dns::Hosts>,
) -> Result<Vec<BackendConfig>, ConfigError> {
    let Target { scheme, host, port } = spec.url.target;
    let addrs = crate::dns::resolve_all(&host, port, hosts)
        .map_err(|reason| invalid(field, format!("cannot resolve {host:?}: {reason}")))?;
    Ok(addrs
        .into_iter()
        .map(|addr| BackendConfig {
            url: spec.url.text.clone(),
            scheme,
            host: host.clone(),
            port,
            addr,
            weight: spec.weight,
            max_conns: spec.max_conns,
        })
        .collect())
}

/// One `backends[]` entry given on its own as JSON (the admin API's `POST /backends`): the same
/// keys, types, checks and messages as in config.json, its `ca_file` opened, its host resolved
/// (this blocks: never call it on a worker). Messages name the entry's own keys (`url`,
/// `weight`, ...). Whether the same backend is already there is the caller's to check (the admin
/// API compares the address resolved here, and the scheme).
pub fn backend_from_json(value: &Value) -> Result<(BackendConfig, BackendTls), ConfigError> {
    if !value.is_object() {
        let problem = format!(
            "a backend must be a JSON object, found {}",
            de::describe(value)
        );
        return Err(invalid("", problem));
    }
    let file: BackendFile = de::from_value(value.clone())
        .map_err(|(field, problem)| ConfigError::Invalid { field, problem })?;
    if file.url.is_none() {
        return Err(invalid("url", "missing (every backend needs a url)"));
    }
    let (mut specs, mut tls) = specs(vec![file], "")?;
    let (Some(spec), Some(tls)) = (specs.pop(), tls.pop()) else {
        return Err(invalid("", "no backend"));
    };
    if let Some(file) = &tls.ca_file {
        check_file("ca_file", file)?;
    }
    // added by hand: its first address (names given to the admin API are not refreshed)
    let first = resolve_spec(spec, "url", None)?.into_iter().next();
    let backend = first.ok_or_else(|| invalid("url", "no addresses found"))?;
    Ok((backend, tls))
}

/// Why a backend at `addr` (its URL `url`) must not be added, if it must not: it is one of
/// `own`, ferrule's listeners (named, with their bound addresses), and requests to it would loop
/// back into ferrule; or it is link-local (169.254.0.0/16, fe80::/10: where cloud metadata
/// endpoints answer) and no network of `allowed` holds it. Loopback backends are allowed: they
/// are the common lab setup.
pub fn check_backend_addr(
    url: &str,
    addr: SocketAddr,
    own: &[(&str, SocketAddr)],
    allowed: &[crate::client_ip::Cidr],
) -> Result<(), String> {
    if let Some((what, at)) = own.iter().find(|(_, at)| reaches(addr, *at)) {
        return Err(format!(
            "{url:?} ({addr}) is ferrule's own {what} listener ({at}): requests to it would \
             loop back into ferrule"
        ));
    }
    let ip = addr.ip().to_canonical();
    if is_link_local(ip) && !allowed.iter().any(|net| net.contains(ip)) {
        return Err(format!(
            "{url:?} is at {ip}, a link-local address (cloud metadata endpoints answer there); \
             list its network in allowed_backend_networks to allow it"
        ));
    }
    Ok(())
}

/// 169.254.0.0/16 and fe80::/10.
fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// Whether a connection to `addr` would reach a listener bound to `listener`: the same port, and
/// the same address, or any address of this host when the listener is bound to all of them
/// (`0.0.0.0`, `::`, which on Linux takes IPv4 too). A connection to `0.0.0.0` or `::` reaches
/// this host.
fn reaches(addr: SocketAddr, listener: SocketAddr) -> bool {
    let (ip, bind) = (addr.ip().to_canonical(), listener.ip().to_canonical());
    listener.port() != 0
        && addr.port() == listener.port()
        && (ip == bind || ip.is_unspecified() || (bind.is_unspecified() && is_local(ip)))
}

/// An address of this host: loopback, or one a socket can be bound to (the kernel knows its own
/// addresses; a UDP bind sends nothing).
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// A backend URL as a regular expression (ECMA-262, for the OpenAPI schema): every text it
/// matches, at most [`URL_MAX_LENGTH`] long, passes [`parse_backend_url`] (a test holds it to
/// that). It is narrower than the parser: a dotted-quad IPv4 address, a bracketed IPv6 one in
/// hexadecimal groups, or a name whose last label starts with a letter or `_`; a port of 1 to
/// 65535 without leading zeros.
pub const URL_PATTERN: &str = concat!(
    "^[Hh][Tt][Tt][Pp][Ss]?://(",
    // IPv4
    "((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])",
    // a name
    "|([A-Za-z0-9_-]{1,63}\\.)*[A-Za-z_][A-Za-z0-9_-]{0,62}",
    // IPv6
    "|\\[(",
    "([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}",
    "|([0-9A-Fa-f]{1,4}:){1,7}:",
    "|([0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}",
    "|([0-9A-Fa-f]{1,4}:){1,5}(:[0-9A-Fa-f]{1,4}){1,2}",
    "|([0-9A-Fa-f]{1,4}:){1,4}(:[0-9A-Fa-f]{1,4}){1,3}",
    "|([0-9A-Fa-f]{1,4}:){1,3}(:[0-9A-Fa-f]{1,4}){1,4}",
    "|([0-9A-Fa-f]{1,4}:){1,2}(:[0-9A-Fa-f]{1,4}){1,5}",
    "|[0-9A-Fa-f]{1,4}:(:[0-9A-Fa-f]{1,4}){1,6}",
    "|:((:[0-9A-Fa-f]{1,4}){1,7}|:)",
    ")\\]",
    ")(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?/?$",
);

/// The longest URL [`URL_PATTERN`] describes: `http://` and a name of 253 characters.
pub const URL_MAX_LENGTH: usize = 7 + MAX_HOST;

/// `http[s]://host[:port][/]`: the host a name, an IPv4 address or a bracketed IPv6 address.
pub(super) fn parse_backend_url(url: &str) -> Result<Target, String> {
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
    if !authority.starts_with('[') {
        check_host_name(host).map_err(|problem| format!("{url:?}: {problem}"))?;
    }
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

/// The longest host name (DNS: 253 characters, each label at most 63).
const MAX_HOST: usize = 253;
const MAX_LABEL: usize = 63;

/// A host that is not an IPv6 literal: a dotted-quad IPv4 address, or a name whose labels are
/// 1 to 63 characters (a final dot allowed), at most 253 in all. A host whose last label is a
/// number (`127.1`, `0x7f.1`, `2130706433`, `0177.0.0.1`) but that is not a dotted quad of
/// decimals is refused: resolvers, browsers and curl read those legacy forms as IPv4 addresses,
/// each in its own way, so the address meant is not clear (and a check by address is fooled).
fn check_host_name(host: &str) -> Result<(), String> {
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(());
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let last = name.rsplit('.').next().unwrap_or_default();
    let hex = |l: &str| {
        l.strip_prefix("0x")
            .or_else(|| l.strip_prefix("0X"))
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    if !last.is_empty() && (last.bytes().all(|b| b.is_ascii_digit()) || hex(last)) {
        return Err(format!(
            "{host:?} is a numeric host but not an IPv4 address of four decimal numbers \
             (write it as such, e.g. 127.0.0.1: forms such as 127.1, 0x7f.1, 2130706433 or \
             0177.0.0.1 are read differently by different programs)"
        ));
    }
    if name.len() > MAX_HOST {
        return Err(format!(
            "the host name is {} characters long (at most {MAX_HOST})",
            name.len()
        ));
    }
    match name
        .split('.')
        .find(|l| l.is_empty() || l.len() > MAX_LABEL)
    {
        Some("") => Err(format!("{host:?} has an empty label (\"..\")")),
        Some(label) => Err(format!(
            "the label {label:?} is {} characters long (at most {MAX_LABEL})",
            label.len()
        )),
        None => Ok(()),
    }
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
