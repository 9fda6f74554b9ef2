//! The value types of the keys: each checks a value as it is read (its type, its range, its
//! form) and says what it gives ([`Plain`]): [`Int`] (a range), [`Ip`], [`HealthCheckPath`],
//! [`UpgradeSocket`], [`AccessLogFile`], [`FilePath`], [`CookieName`], [`CookieSecret`],
//! [`HashKey`], [`StatusSet`], [`Network`] lists, `ssl.certificates` and `ssl.hsts.max_age`;
//! and [`check_file`], whether a path a key names opens (run once every key has been read).
//! Durations are in `duration.rs`, the enums in `names.rs`, the admin keys' types in `admin.rs`,
//! `backends[]` in `backend.rs`.
//!
//! The number-taking types are `try_from = "Value"` rather than `u64` or `String` so that their
//! errors can say what was found instead (`expected an integer, found the string "8080"`,
//! `write "10s", not 10`).

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::de::expected;
use super::duration::{format_duration, Dur};
use super::error::{invalid, ConfigError};
use super::key::Plain;
use super::names::{AccessLogFormat, HealthCheckMethod, LogLevel, StickyMode, Strategy};
use crate::client_ip::{Cidr, TrustedProxies};

/// Upper bound of `buffer_size`, and so of `max_request_head`.
const MAX_BUFFER_SIZE: u64 = 16 * 1024 * 1024;

/// The most header fields a head may have (`max_header_count`'s upper bound). `context.rs`
/// checks at compile time that the parsers' arrays (`http::MAX_HEADERS`) hold that many.
pub const MAX_HEADER_COUNT: u64 = 256;

/// A listening port: 0 (pick a free one, for tests) to 65535.
pub(super) type ListenPort = Int<u16, 0, 65_535>;
/// A port that cannot be 0 ("any free port"): 1 to 65535.
pub(super) type Port = Int<u16, 1, 65_535>;
/// A buffer size or limit in bytes: at least `MIN`, at most 16 MiB.
pub(super) type Bytes<const MIN: u64> = Int<usize, MIN, MAX_BUFFER_SIZE>;

/// A key that is its own effective value.
macro_rules! as_is {
    ($($t:ty),+) => {$(
        impl Plain for $t {
            type Value = $t;

            fn value(self) -> $t {
                self
            }

            fn file(value: &$t) -> $t {
                value.clone()
            }
        }
    )+};
}
as_is!(
    bool,
    String,
    Strategy,
    StickyMode,
    AccessLogFormat,
    HealthCheckMethod,
    LogLevel
);
as_is!(HashKey, StatusSet);

/// A newtype over its effective value (`Ip(IpAddr)`): the value is the field, and a list of them
/// (`admin_allowed_hosts`) is a list of values.
macro_rules! newtype_value {
    ($($t:ident => $v:ty),+ $(,)?) => {$(
        impl Plain for $t {
            type Value = $v;

            fn value(self) -> $v {
                self.0
            }

            fn file(value: &$v) -> $t {
                $t(Clone::clone(value))
            }
        }

        impl Plain for Vec<$t> {
            type Value = Vec<$v>;

            fn value(self) -> Vec<$v> {
                self.into_iter().map(|x| x.0).collect()
            }

            fn file(value: &Vec<$v>) -> Self {
                value.iter().cloned().map($t).collect()
            }
        }
    )+};
}
pub(super) use newtype_value;
newtype_value!(
    Ip => IpAddr,
    HealthCheckPath => String,
    UpgradeSocket => Option<String>,
    AccessLogFile => AccessLogTarget,
    FilePath => String,
    CookieName => String,
    CookieSecret => String,
    Network => Cidr,
    HstsMaxAge => Duration,
);

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

impl<T, const MIN: u64, const MAX: u64> Plain for Int<T, MIN, MAX>
where
    T: TryFrom<u64> + Serialize + Copy + 'static,
{
    type Value = T;

    fn value(self) -> T {
        self.0
    }

    fn file(value: &T) -> Self {
        Int(*value)
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

impl<const MAX_SECS: u64, const ZERO: bool> Plain for Dur<MAX_SECS, ZERO> {
    type Value = Duration;

    fn value(self) -> Duration {
        self.get()
    }

    fn file(value: &Duration) -> Self {
        Dur::new(*value)
    }
}

/// `bind`, `admin_bind`: an IP address, without a port.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct Ip(IpAddr);

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
#[derive(Debug, Clone, Deserialize, Serialize)]
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

/// Where the access log goes (`access_log`): `false`, `"stdout"` (the default), `"stderr"` or a
/// file path (appended to, created if missing; reopened on `SIGUSR1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Off,
    Stdout,
    Stderr,
    File(String),
}

/// Opens an access log file as the proxy does: for appending, created (mode 0640 less the umask)
/// if missing. The config's check that the file opens and the access log writer both use it.
pub fn open_access_log(path: &str) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
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
#[derive(Debug, Clone, Deserialize, Serialize)]
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

/// A name made of RFC 9110 token characters (a cookie or header field name).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A cookie name (an RFC 6265 token: no spaces, `=`, `;` or quotes).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub(super) struct CookieName(String);

impl TryFrom<String> for CookieName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        if is_token(&name) {
            Ok(CookieName(name))
        } else {
            Err(format!(
                "{name:?} is not a cookie name (letters, digits and !#$%&'*+-.^_`|~ only)"
            ))
        }
    }
}

/// `sticky_cookie_secret`: at least [`MIN_SECRET_LEN`](crate::hash::MIN_SECRET_LEN) characters
/// (a short one could be found by trying), no control characters.
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
        if text == "client_ip" {
            return Ok(HashKey::ClientIp);
        }
        let parsed = match text.split_once(':') {
            Some(("header", name)) if is_token(name) => Some(HashKey::Header(name.to_owned())),
            Some(("cookie", name)) if is_token(name) => Some(HashKey::Cookie(name.to_owned())),
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

/// One entry of a list of networks (`trusted_proxies`, `allowed_backend_networks`): a CIDR or a
/// bare address; an error names the entry (`trusted_proxies[2]: ...`). Written back with its
/// prefix (`192.168.1.7/32`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub(super) struct Network(Cidr);

impl TryFrom<String> for Network {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
            .map(Network)
            .map_err(|e: crate::client_ip::CidrError| e.to_string())
    }
}

impl From<Network> for String {
    fn from(network: Network) -> String {
        network.0.to_string()
    }
}

/// `trusted_proxies`: networks, as the client address code holds them.
#[derive(Debug, Deserialize, Serialize)]
#[serde(transparent)]
pub(super) struct Trusted(Vec<Network>);

impl Plain for Trusted {
    type Value = TrustedProxies;

    fn value(self) -> TrustedProxies {
        TrustedProxies::new(self.0.value())
    }

    fn file(value: &TrustedProxies) -> Self {
        Trusted(value.cidrs().iter().cloned().map(Network).collect())
    }
}

/// One `ssl.certificates[]` entry: a PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert_file: String,
    pub key_file: String,
}

/// One `ssl.certificates[]` entry as written: both keys are required (checked once every key
/// has been read, to name the missing one).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct CertificateFile {
    cert_file: Option<FilePath>,
    key_file: Option<FilePath>,
}

impl Plain for Vec<CertificateFile> {
    type Value = Vec<CertificateFiles>;

    fn check(&self, at: &str) -> Result<(), ConfigError> {
        let missing = "missing (every certificate needs a cert_file and a key_file)";
        for (i, entry) in self.iter().enumerate() {
            for (key, file) in [
                ("cert_file", &entry.cert_file),
                ("key_file", &entry.key_file),
            ] {
                if file.is_none() {
                    return Err(invalid(&format!("{at}[{i}].{key}"), missing));
                }
            }
        }
        Ok(())
    }

    fn value(self) -> Vec<CertificateFiles> {
        let path = |file: Option<FilePath>| file.map(FilePath::into_string).unwrap_or_default();
        self.into_iter()
            .map(|entry| CertificateFiles {
                cert_file: path(entry.cert_file),
                key_file: path(entry.key_file),
            })
            .collect()
    }

    fn file(value: &Vec<CertificateFiles>) -> Self {
        let path = |p: &String| Some(FilePath(p.clone()));
        value
            .iter()
            .map(|c| CertificateFile {
                cert_file: path(&c.cert_file),
                key_file: path(&c.key_file),
            })
            .collect()
    }
}

/// `ssl.hsts.max_age`: whole seconds (HSTS counts in seconds), at most two years (browsers cap it
/// there, or lower); zero allowed.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "Value")]
pub(super) struct HstsMaxAge(Duration);

impl TryFrom<Value> for HstsMaxAge {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        let max_age = Dur::<{ 2 * 365 * 24 * 60 * 60 }, true>::try_from(value)?.get();
        if max_age.subsec_nanos() != 0 {
            return Err("must be whole seconds (HSTS counts in seconds)".into());
        }
        Ok(HstsMaxAge(max_age))
    }
}

impl Serialize for HstsMaxAge {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(self.0))
    }
}

/// `file` must be a regular file that opens. (A FIFO or a device is refused before it is opened:
/// opening a FIFO would block the load.)
pub(super) fn check_file(field: &str, file: &str) -> Result<(), ConfigError> {
    let cannot_open = |e: std::io::Error| invalid(field, format!("cannot open {file:?}: {e}"));
    let meta = std::fs::metadata(file).map_err(cannot_open)?;
    if meta.is_dir() {
        return Err(invalid(field, format!("{file:?} is a directory")));
    }
    if !meta.is_file() {
        return Err(invalid(field, format!("{file:?} is not a regular file")));
    }
    std::fs::File::open(file).map_err(cannot_open)?;
    Ok(())
}
