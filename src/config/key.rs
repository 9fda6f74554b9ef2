//! One definition per key: the [`Key`] trait (what a key's file type reads, checks and writes,
//! and the effective value it gives) and the [`keys!`] macro, which turns one declaration per
//! group of keys (`groups.rs`) into everything the file needs:
//!
//! ```text
//! keys! {
//!     /// Active health checks (per pool).
//!     pub struct Health / HealthFile {
//!         /// `health_check_frequency`, default 10s: ...
//!         frequency as "health_check_frequency": Interval => Duration = secs(10);
//!         /// `health_check_method`, default `http`: ...
//!         method as "health_check_method": HealthCheckMethod = HealthCheckMethod::Http;
//!         /// `health_check_rise`, default 2: ...
//!         rise as "health_check_rise": Int<u32, 1, 100> => u32 = 2;
//!     }
//! }
//! ```
//!
//! A key is its field name, its config.json name when that differs (`as "..."`), its file type
//! (which checks the value as it is read: `Int<u32, 1, 100>`, `Timeout`, `bool`, `Strategy`, ...;
//! `Option<T>` for a key whose effective value may be "none"), after `=>` its effective type
//! when that is another (the compiler holds it to the file type's [`Key::Value`]), and its
//! default, an expression of the effective type that may use the keys declared above it in the
//! same group (`max_request_head` defaults to `buffer_size.min(16_384)`). From that the macro
//! makes:
//! - the effective struct (`Health`: each field of the effective type, with the key's doc), its
//!   `KEYS` (config.json names, in declared order), `write` (the file form, into a JSON map; an
//!   optional key that is `None` is left out) and `Default`;
//! - the file-side partial struct (`HealthFile`: `Option<File>` per key, `None` when absent or
//!   `null`), with `read` (one key, its value checked by its type; `None` when the key is not the
//!   group's) and `check` (the checks within an entry or list, once every key is read), which
//!   make it a [`Group`], and `resolve(self, inherit)`: each key given takes its value, each
//!   absent one `inherit`'s (what a pool inherits from the top level) or else its default;
//! - `Key` for the partial struct, so that a group can be a key of another, read as a nested
//!   object (`ssl.hsts`).
//!
//! [`read_object`] reads a JSON object into a [`Group`]: one group's partial struct, or several
//! (a pool, the top level: `pool.rs`, `mod.rs`).
//!
//! Value types that serde reads implement [`Plain`] (their effective value and back); `Key`
//! follows for them, the error path (`trusted_proxies[2]`) coming from serde.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::de::{self, expected, key_text, unknown_key};
use super::error::{invalid, ConfigError};

/// A file type: how one key is read from config.json (its value checked), what it gives, and how
/// the effective value is written back.
pub(super) trait Key: Sized {
    /// The effective value (`Duration` for a `Timeout`, `u32` for an `Int<u32, ..>`).
    type Value;

    /// Reads the key's value (never `null`: that is "absent"); `at` is the key's path
    /// (`ssl.hsts.max_age`), which messages start with.
    fn read(value: &Value, at: &str) -> Result<Self, ConfigError>;

    /// The checks within an entry or list (a certificate without its key), which run once every
    /// key has been read.
    fn check(&self, _at: &str) -> Result<(), ConfigError> {
        Ok(())
    }

    fn value(self) -> Self::Value;

    /// The file form of an effective value; `None` leaves the key out.
    fn write(value: &Self::Value) -> Option<Value>;
}

/// A value type serde reads and writes (every leaf key's): its effective value and back.
pub(super) trait Plain: DeserializeOwned + Serialize {
    type Value;

    /// As [`Key::check`].
    fn check(&self, _at: &str) -> Result<(), ConfigError> {
        Ok(())
    }

    fn value(self) -> Self::Value;

    /// The file form of an effective value (it was checked when it was read).
    fn file(value: &Self::Value) -> Self;
}

impl<T: Plain> Key for T {
    type Value = <T as Plain>::Value;

    fn read(value: &Value, at: &str) -> Result<Self, ConfigError> {
        from_serde(value, at)
    }

    fn check(&self, at: &str) -> Result<(), ConfigError> {
        Plain::check(self, at)
    }

    fn value(self) -> Self::Value {
        Plain::value(self)
    }

    fn write(value: &Self::Value) -> Option<Value> {
        serde_json::to_value(T::file(value)).ok()
    }
}

/// A key whose effective value may be "none": absent (or `null`) gives `None` when that is its
/// default, and `None` is written by leaving the key out.
impl<K: Key> Key for Option<K> {
    type Value = Option<K::Value>;

    fn read(value: &Value, at: &str) -> Result<Self, ConfigError> {
        K::read(value, at).map(Some)
    }

    fn check(&self, at: &str) -> Result<(), ConfigError> {
        self.as_ref().map_or(Ok(()), |k| k.check(at))
    }

    fn value(self) -> Self::Value {
        self.map(K::value)
    }

    fn write(value: &Self::Value) -> Option<Value> {
        value.as_ref().and_then(K::write)
    }
}

/// A key that is an object of settings, or `false` for "none" (`outlier_detection`): unlike
/// `null`, which is "absent" (a pool then inherits the top level's), `false` turns it off.
/// `None` is written as `false`, so a pool that turned it off reads back the same.
#[derive(Debug)]
pub(super) enum Switch<K> {
    Off,
    On(K),
}

impl<K: Key> Key for Switch<K> {
    type Value = Option<K::Value>;

    fn read(value: &Value, at: &str) -> Result<Self, ConfigError> {
        match value {
            Value::Bool(false) => Ok(Switch::Off),
            Value::Object(_) => K::read(value, at).map(Switch::On),
            _ => Err(invalid(at, expected("an object or false", value))),
        }
    }

    fn check(&self, at: &str) -> Result<(), ConfigError> {
        match self {
            Switch::Off => Ok(()),
            Switch::On(k) => k.check(at),
        }
    }

    fn value(self) -> Self::Value {
        match self {
            Switch::Off => None,
            Switch::On(k) => Some(k.value()),
        }
    }

    fn write(value: &Self::Value) -> Option<Value> {
        match value {
            None => Some(Value::Bool(false)),
            Some(v) => K::write(v),
        }
    }
}

/// What [`read_object`] reads keys into: a group's partial struct, or several (the top level).
pub(super) trait Group {
    /// Reads `key` if it is one of this group's (`None`: it is not); `at` is the path of the
    /// object it is in (empty at the top level).
    fn read(&mut self, key: &str, value: &Value, at: &str) -> Option<Result<(), ConfigError>>;

    /// The checks within an entry or list ([`Key::check`] of each key given), once every key has
    /// been read.
    fn check(&self, at: &str) -> Result<(), ConfigError>;

    /// The config.json names of its keys, in declared order.
    fn keys(&self, out: &mut Vec<&'static str>);
}

/// Reads the object `value` (at path `at`) into `group`: its keys in alphabetical order, so that
/// the fault reported is the first in key order whatever the order in the file; a key the group
/// does not take is an unknown key, with a suggestion or the list of known keys.
pub(super) fn read_object(
    value: &Value,
    at: &str,
    group: &mut dyn Group,
) -> Result<(), ConfigError> {
    let Value::Object(map) = value else {
        return Err(invalid(at, expected("an object", value)));
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        if group.read(key, &map[key], at).transpose()?.is_none() {
            let mut known = Vec::new();
            group.keys(&mut known);
            let path = join(at, &key_text(key));
            return Err(invalid(&path, unknown_key(key, &known)));
        }
    }
    Ok(())
}

/// Reads one key into its slot: `null` is "absent".
pub(super) fn read_into<K: Key>(
    slot: &mut Option<K>,
    value: &Value,
    at: &str,
) -> Result<(), ConfigError> {
    *slot = if value.is_null() {
        None
    } else {
        Some(K::read(value, at)?)
    };
    Ok(())
}

/// Reads a value at path `at` with serde (its type checks it); an error names the path within
/// the value too (`trusted_proxies[2]`, `backends[0].url`).
pub(super) fn from_serde<T: DeserializeOwned>(value: &Value, at: &str) -> Result<T, ConfigError> {
    de::from_value(value.clone()).map_err(|(path, problem)| invalid(&below(at, &path), problem))
}

/// The path of `key` in the object at `at`: `ssl.enabled`, or `port` at the top level.
pub(super) fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

/// A path serde found inside the value at `at` (`[2]`, `[0].url`, or nothing).
fn below(at: &str, path: &str) -> String {
    if path.is_empty() || path.starts_with('[') {
        format!("{at}{path}")
    } else {
        join(at, path)
    }
}

/// Declares groups of keys (see the module header).
macro_rules! keys {
    ($(
        $(#[$meta:meta])*
        pub struct $Group:ident / $File:ident {
            $(
                $(#[$doc:meta])*
                $field:ident $(as $name:literal)? : $Type:ty $(=> $Value:ty)? = $default:expr;
            )+
        }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $Group {
            $( $(#[$doc])* pub $field: keys!(@value $Type $(=> $Value)?), )+
        }

        #[doc = concat!("[`", stringify!($Group), "`] as config.json gives it: each key that is \
                         there (`None`: absent or `null`).")]
        #[derive(Debug, Default)]
        pub struct $File {
            $( $field: Option<$Type>, )+
        }

        impl $Group {
            /// The config.json names of the keys, in declared order.
            pub const KEYS: &'static [&'static str] = &[$( keys!(@name $field $($name)?) ),+];

            /// Writes the keys in the file's form (an optional key that is `None` is left out).
            pub(super) fn write(&self, out: &mut serde_json::Map<String, serde_json::Value>) {
                $(
                    let value = <$Type as $crate::config::key::Key>::write(&self.$field);
                    if let Some(value) = value {
                        out.insert(keys!(@name $field $($name)?).to_owned(), value);
                    }
                )+
            }
        }

        impl Default for $Group {
            /// Every key's default.
            fn default() -> Self {
                $File::default().resolve(None)
            }
        }

        impl $File {
            /// The effective values: each key given takes its value, each absent one
            /// `inherit`'s, or else its default.
            pub(super) fn resolve(self, inherit: Option<&$Group>) -> $Group {
                $(
                    let $field: keys!(@value $Type $(=> $Value)?) = match self.$field {
                        Some(value) => $crate::config::key::Key::value(value),
                        None => match inherit {
                            Some(from) => from.$field.clone(),
                            None => $default,
                        },
                    };
                )+
                $Group { $($field),+ }
            }
        }

        impl $crate::config::key::Group for $File {
            fn read(
                &mut self,
                key: &str,
                value: &serde_json::Value,
                at: &str,
            ) -> Option<Result<(), $crate::config::error::ConfigError>> {
                $(
                    if key == keys!(@name $field $($name)?) {
                        let path = $crate::config::key::join(at, key);
                        return Some($crate::config::key::read_into(&mut self.$field, value, &path));
                    }
                )+
                None
            }

            fn check(&self, at: &str) -> Result<(), $crate::config::error::ConfigError> {
                $(
                    if let Some(value) = &self.$field {
                        let path = $crate::config::key::join(at, keys!(@name $field $($name)?));
                        $crate::config::key::Key::check(value, &path)?;
                    }
                )+
                Ok(())
            }

            fn keys(&self, out: &mut Vec<&'static str>) {
                out.extend_from_slice($Group::KEYS);
            }
        }

        /// The group as a nested object (`ssl`, `ssl.hsts`).
        impl $crate::config::key::Key for $File {
            type Value = $Group;

            fn read(
                value: &serde_json::Value,
                at: &str,
            ) -> Result<Self, $crate::config::error::ConfigError> {
                let mut file = $File::default();
                $crate::config::key::read_object(value, at, &mut file)?;
                Ok(file)
            }

            fn check(&self, at: &str) -> Result<(), $crate::config::error::ConfigError> {
                <$File as $crate::config::key::Group>::check(self, at)
            }

            fn value(self) -> $Group {
                self.resolve(None)
            }

            fn write(value: &$Group) -> Option<serde_json::Value> {
                let mut out = serde_json::Map::new();
                value.write(&mut out);
                Some(serde_json::Value::Object(out))
            }
        }
    )*};
    (@name $field:ident) => { stringify!($field) };
    (@name $field:ident $name:literal) => { $name };
    (@value $Type:ty) => { $Type };
    (@value $Type:ty => $Value:ty) => { $Value };
}
pub(super) use keys;

#[cfg(test)]
mod tests;
