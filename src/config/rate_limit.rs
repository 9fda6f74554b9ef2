//! The value of `rate_limit` (top level, per pool, per route): `false`, or the object
//! `{"requests_per_second": 50, "burst": 100, "key": "client_ip"}` ([`RateLimit`], read by the
//! `keys!` group below, so an unknown sub-key is `rate_limit.brust: unknown key (did you mean
//! "burst"?)`), and what a route says ([`RouteLimit`]). The keys that carry it
//! (`rate_limit`, `rate_limit_exempt`, `rate_limit_max_keys`) are in `groups.rs`; the limits
//! themselves are `crate::limits`.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use super::de::expected;
use super::error::{invalid, ConfigError};
use super::key::{self, keys, Key, Plain};
use super::values::{HashKey, Int};

/// The largest `burst`.
const MAX_BURST: u64 = 1_000_000;

keys! {
    /// A rate limit: a token bucket per key, `requests_per_second` refilled, `burst` deep.
    pub struct RateLimit / RateLimitFile {
        /// `requests_per_second`, required: a number from 0.001 to 1000000 (fractions allowed:
        /// 0.5 is one request every two seconds).
        requests_per_second: PerSecond = PerSecond(1.0);
        /// `burst`, default `requests_per_second` rounded up: requests a key may make at once
        /// (1 to 1000000).
        burst: Int<u32, 1, MAX_BURST> => u32 = requests_per_second.default_burst();
        /// `key`, default `client_ip`: `client_ip`, `header:NAME` or `cookie:NAME` (a request
        /// without that header or cookie is keyed by its client address).
        key: LimitKey => HashKey = HashKey::ClientIp;
    }
}

/// `requests_per_second`: a number from 0.001 to 1,000,000. Never NaN, hence `Eq`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "Value")]
pub struct PerSecond(f64);

impl Eq for PerSecond {}

impl PerSecond {
    const MIN: f64 = 0.001;
    const MAX: f64 = 1_000_000.0;

    pub fn get(self) -> f64 {
        self.0
    }

    /// The rate rounded up (at least 1): the default burst.
    fn default_burst(self) -> u32 {
        self.0.ceil().clamp(1.0, MAX_BURST as f64) as u32
    }
}

impl TryFrom<Value> for PerSecond {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        let Some(n) = value.as_f64() else {
            return Err(expected("a number", &value));
        };
        if n < Self::MIN {
            Err(format!(
                "must be at least {} (a request every 1000 s)",
                Self::MIN
            ))
        } else if n > Self::MAX {
            Err("must be at most 1000000".into())
        } else {
            Ok(PerSecond(n))
        }
    }
}

impl Serialize for PerSecond {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.fract() == 0.0 {
            serializer.serialize_u64(self.0 as u64)
        } else {
            serializer.serialize_f64(self.0)
        }
    }
}

impl Plain for PerSecond {
    type Value = PerSecond;

    fn value(self) -> PerSecond {
        self
    }

    fn file(value: &PerSecond) -> PerSecond {
        *value
    }
}

/// `key`: what a bucket is kept for, as `hash_key` spells it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub(super) struct LimitKey(HashKey);

impl TryFrom<String> for LimitKey {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        HashKey::try_from(text.clone()).map(LimitKey).map_err(|_| {
            format!(
                "{text:?} is not a rate limit key (expected \"client_ip\", \"header:NAME\" or \
                 \"cookie:NAME\", NAME a field or cookie name)"
            )
        })
    }
}

impl From<LimitKey> for String {
    fn from(key: LimitKey) -> String {
        key.0.into()
    }
}

impl Plain for LimitKey {
    type Value = HashKey;

    fn value(self) -> HashKey {
        self.0
    }

    fn file(value: &HashKey) -> Self {
        LimitKey(value.clone())
    }
}

/// `rate_limit` as a top-level or pool key: `false` (none), or the object. Its effective value
/// is `None` for none; written back as `false` then, so that a pool without a limit stays
/// without one under a top level that has one.
#[derive(Debug)]
pub(super) enum RateLimitSetting {
    Off,
    On(RateLimitFile),
}

impl Key for RateLimitSetting {
    type Value = Option<RateLimit>;

    fn read(value: &Value, at: &str) -> Result<Self, ConfigError> {
        match value {
            Value::Bool(false) => Ok(RateLimitSetting::Off),
            Value::Object(_) => <RateLimitFile as Key>::read(value, at).map(RateLimitSetting::On),
            other => Err(invalid(
                at,
                expected(
                    "an object such as {\"requests_per_second\": 50} or false",
                    other,
                ),
            )),
        }
    }

    fn check(&self, at: &str) -> Result<(), ConfigError> {
        let RateLimitSetting::On(file) = self else {
            return Ok(());
        };
        if file.requests_per_second.is_none() {
            return Err(invalid(
                &key::join(at, "requests_per_second"),
                "missing (a rate limit needs its rate)",
            ));
        }
        <RateLimitFile as Key>::check(file, at)
    }

    fn value(self) -> Option<RateLimit> {
        match self {
            RateLimitSetting::Off => None,
            RateLimitSetting::On(file) => Some(file.resolve(None)),
        }
    }

    fn write(value: &Option<RateLimit>) -> Option<Value> {
        match value {
            None => Some(Value::Bool(false)),
            Some(limit) => <RateLimitFile as Key>::write(limit),
        }
    }
}

/// A route's `rate_limit`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RouteLimit {
    /// Absent: the pool's limit, if it has one (and its bucket: the routes that take the
    /// pool's share it).
    #[default]
    Pool,
    /// `null` or `false`: none.
    Off,
    /// Its own, with its own buckets.
    Own(RateLimit),
}

/// Reads `routes[i].rate_limit` from the route's object `map` at path `at` (the route's).
pub(super) fn route_limit(map: &Map<String, Value>, at: &str) -> Result<RouteLimit, ConfigError> {
    let at = key::join(at, "rate_limit");
    match map.get("rate_limit") {
        None => Ok(RouteLimit::Pool),
        Some(Value::Null | Value::Bool(false)) => Ok(RouteLimit::Off),
        Some(value) => {
            let setting = RateLimitSetting::read(value, &at)?;
            setting.check(&at)?;
            Ok(setting.value().map_or(RouteLimit::Off, RouteLimit::Own))
        }
    }
}

/// A route's `rate_limit` in the file's form (`None`: left out, the pool's).
pub(super) fn route_limit_value(limit: &RouteLimit) -> Option<Value> {
    match limit {
        RouteLimit::Pool => None,
        RouteLimit::Off => Some(Value::Bool(false)),
        RouteLimit::Own(limit) => <RateLimitFile as Key>::write(limit),
    }
}
