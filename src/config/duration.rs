//! Durations: the `"1m30s"` strings of config.json, [`parse_duration`] and [`format_duration`],
//! and [`Dur`], the bounded duration value the file layer reads.
//!
//! The parser is hand-written on purpose, not humantime: its errors quote the input and say what
//! is wrong and how to write it (`"1.5s" is fractional (use whole numbers, e.g. "1s500ms" for
//! 1.5s)`, `"10" has no unit (use ms, s, m or h)`), where humantime reports a position or a
//! generic kind, and humantime accepts units (days, weeks, months, ...) and spellings this format
//! does not want. [`format_duration`] writes what [`parse_duration`] reads, so a serialised config
//! parses back.

use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::de::expected;

/// A duration key: a string such as `"30s"`, at most `MAX_SECS` seconds, and greater than zero
/// unless `ZERO` (where `"0s"` means "off").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Value")]
pub(super) struct Dur<const MAX_SECS: u64, const ZERO: bool = false>(Duration);

/// Timeouts and intervals: at most a day.
pub(super) type Timeout = Dur<{ 24 * 60 * 60 }>;

/// `sticky_session_ttl`: at most thirty days.
pub(super) type Lifetime = Dur<{ 30 * 24 * 60 * 60 }>;

/// An interval that `"0s"` turns off: at most a day.
pub(super) type Interval = Dur<{ 24 * 60 * 60 }, true>;

impl<const MAX_SECS: u64, const ZERO: bool> Dur<MAX_SECS, ZERO> {
    /// Wraps an effective value to serialise it (it was checked when it was read).
    pub(super) fn new(duration: Duration) -> Self {
        Dur(duration)
    }

    pub(super) fn get(self) -> Duration {
        self.0
    }
}

/// The value is taken as JSON, not as a string, so that a bare number gets a hint.
impl<const MAX_SECS: u64, const ZERO: bool> TryFrom<Value> for Dur<MAX_SECS, ZERO> {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        let duration = match &value {
            Value::String(s) => parse_duration(s)?,
            Value::Number(n) if n.is_u64() => {
                return Err(format!(
                    "durations are strings with a unit: write \"{n}s\", not {n}"
                ))
            }
            other => return Err(expected("a duration string such as \"30s\"", other)),
        };
        let max = Duration::from_secs(MAX_SECS);
        if duration.is_zero() && !ZERO {
            Err("must be greater than zero".to_owned())
        } else if duration > max {
            Err(format!("must be at most {}", format_duration(max)))
        } else {
            Ok(Dur(duration))
        }
    }
}

/// Written in the form [`parse_duration`] reads back.
impl<const MAX_SECS: u64, const ZERO: bool> Serialize for Dur<MAX_SECS, ZERO> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(self.0))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

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
}
