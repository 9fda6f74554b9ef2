//! The value types of the keys that guard the admin API: `admin_token` ([`Token`]) and
//! `admin_allowed_hosts` ([`AllowedHost`]) (`allowed_backend_networks` is a list of
//! `values::Network`). Declared in the `Admin` group like any other key; the checks that use them
//! are in `checks.rs` and `crate::admin`.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::key::Plain;
use super::values::newtype_value;

/// The shortest `admin_token`: 16 characters.
const MIN_TOKEN: usize = 16;

/// `admin_token`: at least [`MIN_TOKEN`] characters, no whitespace or control characters (it
/// travels in a header).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub(super) struct Token(String);

impl TryFrom<String> for Token {
    type Error = String;

    fn try_from(token: String) -> Result<Self, String> {
        if token.is_empty() {
            Err("must not be empty (leave the key out for no token)".into())
        } else if token.bytes().any(|b| !b.is_ascii_graphic()) {
            Err("must be printable ASCII without spaces".into())
        } else if token.len() < MIN_TOKEN {
            Err(format!(
                "must be at least {MIN_TOKEN} characters (it has {}): a short token can be guessed",
                token.len()
            ))
        } else {
            Ok(Token(token))
        }
    }
}

/// One `admin_allowed_hosts` entry: a host name or an IP address, without a port (the admin
/// port is allowed with or without it). Held lowercase; an address in its canonical form, an
/// IPv6 one without brackets.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub(super) struct AllowedHost(String);

newtype_value!(Token => String, AllowedHost => String);

impl TryFrom<String> for AllowedHost {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bare = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(&text);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(AllowedHost(ip.to_string()));
        }
        let name = text.strip_suffix('.').unwrap_or(&text).to_ascii_lowercase();
        if name.contains(':') {
            return Err(format!(
                "{text:?}: give the name without a port (the admin port is allowed with or without it)"
            ));
        }
        let label_ok = |l: &str| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(format!(
                "{text:?} is not a host name or IP address (letters, digits, '-', '_' and dots)"
            ));
        }
        Ok(AllowedHost(name))
    }
}
