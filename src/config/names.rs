//! The keys whose value is one of a few names: [`Strategy`], [`StickyMode`], [`AccessLogFormat`],
//! [`HealthCheckMethod`] and [`LogLevel`]. Each is declared once with [`names!`]: the enum, its
//! `ALL`, `name()`, `Display`, and the serde pair (`TryFrom<String>` with the message
//! `unknown <what> "x" (expected a, b or c)`, `From<T> for &'static str`) that config.json and the
//! admin API read and write.

use std::fmt;

use super::de::or_list;

/// Declares enums whose values are names: `pub enum E ("what") { Variant = "name", ... }`; with
/// `("what", any case)` a name is recognised whatever its case (it is still written as given).
macro_rules! names {
    ($(
        $(#[$meta:meta])*
        pub enum $Enum:ident ($what:literal $(, any $case:ident)?) {
            $( $(#[$vmeta:meta])* $Variant:ident = $name:literal, )+
        }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
        #[serde(try_from = "String", into = "&'static str")]
        pub enum $Enum {
            $( $(#[$vmeta])* $Variant, )+
        }

        impl $Enum {
            /// Every value, in the order error messages list them.
            pub const ALL: [$Enum; [$($name),+].len()] = [$($Enum::$Variant),+];

            /// The name config.json and the admin API use.
            pub fn name(self) -> &'static str {
                match self {
                    $( $Enum::$Variant => $name, )+
                }
            }
        }

        impl fmt::Display for $Enum {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl TryFrom<String> for $Enum {
            type Error = String;

            fn try_from(name: String) -> Result<Self, String> {
                $Enum::ALL
                    .into_iter()
                    .find(|v| names!(@same $($case)? v.name(), name.as_str()))
                    .ok_or_else(|| {
                        let names = $Enum::ALL.map($Enum::name);
                        format!("unknown {} {name:?} (expected {})", $what, or_list(&names))
                    })
            }
        }

        impl From<$Enum> for &'static str {
            fn from(value: $Enum) -> Self {
                value.name()
            }
        }
    )*};
    (@same case $a:expr, $b:expr) => { $a.eq_ignore_ascii_case($b) };
    (@same $a:expr, $b:expr) => { $a == $b };
}

names! {
    /// Load-balancing strategy (`strategy` in config.json).
    pub enum Strategy ("strategy") {
        /// `round-robin`: smooth weighted round-robin (equal weights give plain round-robin).
        RoundRobin = "round-robin",
        /// `weighted-round-robin`: the same smooth weighted algorithm, named for the original
        /// spec.
        WeightedRoundRobin = "weighted-round-robin",
        /// `least-conn`: fewest in-flight requests relative to weight, ties broken round-robin.
        LeastConn = "least-conn",
        /// `p2c`: the power of two random choices on in-flight requests relative to weight.
        P2c = "p2c",
        /// `random`: weighted random.
        Random = "random",
        /// `consistent-hash`: Maglev hashing of `hash_key`.
        ConsistentHash = "consistent-hash",
    }

    /// How a client is recognised for sticky sessions (`sticky_mode`).
    pub enum StickyMode ("sticky mode") {
        /// `ip`: by client address, in a table shared by the workers.
        Ip = "ip",
        /// `cookie`: by a cookie ferrule sets, naming the backend.
        Cookie = "cookie",
    }

    /// How access log lines are written (`access_log_format`).
    pub enum AccessLogFormat ("access log format") {
        /// `combined`: Apache/nginx combined, then the backend, the upstream and the total time.
        Combined = "combined",
        /// `json`: one object per line, with the request id, bytes each way, TLS version and SNI.
        Json = "json",
    }

    /// Active health check kind (`health_check_method`).
    pub enum HealthCheckMethod ("method") {
        /// `http`: `GET health_check_path`.
        Http = "http",
        /// `tcp`: a connect.
        Tcp = "tcp",
        /// `none`: no active checks (passive ones still run).
        None = "none",
    }

    /// The level of ferrule's own log (`log_level`), in any case (as `log` reads it).
    pub enum LogLevel ("log level", any case) {
        Off = "off",
        Error = "error",
        Warn = "warn",
        Info = "info",
        Debug = "debug",
        Trace = "trace",
    }
}

impl LogLevel {
    /// The level as the `log` crate filters it.
    pub fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Off => log::LevelFilter::Off,
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_unknown_names_list_every_one() {
        for s in Strategy::ALL {
            assert_eq!(Strategy::try_from(s.name().to_owned()), Ok(s));
            assert_eq!(s.to_string(), s.name());
        }
        assert_eq!(
            StickyMode::try_from("url".to_owned()),
            Err("unknown sticky mode \"url\" (expected ip or cookie)".to_owned())
        );
        assert_eq!(
            AccessLogFormat::try_from("apache".to_owned()),
            Err("unknown access log format \"apache\" (expected combined or json)".to_owned())
        );
        assert_eq!(
            HealthCheckMethod::try_from("Http".to_owned()),
            Err("unknown method \"Http\" (expected http, tcp or none)".to_owned())
        );
        // as `log` reads a level: in any case
        assert_eq!(LogLevel::try_from("WARN".to_owned()), Ok(LogLevel::Warn));
        assert_eq!(<&str>::from(LogLevel::Warn), "warn");
        assert_eq!(
            LogLevel::try_from("loud".to_owned()),
            Err(
                "unknown log level \"loud\" (expected off, error, warn, info, debug or trace)"
                    .to_owned()
            )
        );
        for level in LogLevel::ALL {
            assert_eq!(level.name().parse(), Ok(level.filter()));
        }
    }
}
