//! The value of the sticky cookie (`sticky_mode: "cookie"`): 16 hex digits that name a backend.
//!
//! Without `sticky_cookie_secret` it is [`cookie_id`], a fixed hash of the backend's key (its
//! URL; for a URL with a host name, the URL and the address: see `Backend::key`): the same in
//! every process and after restarts, and never the address in clear. Anyone can compute it, so a
//! client can choose its backend by sending the cookie of another one, as with HAProxy's and
//! nginx's sticky cookies.
//!
//! With a secret, it is a keyed MAC of the same key ([`CookieKey::id`]: HMAC-SHA256, from
//! aws-lc-rs, the library rustls already uses for TLS, truncated to 64 bits): still the same in
//! every process that shares the secret, but a client without the secret cannot compute the value
//! of a backend it was not sent to (a guess is right once in 2^64), and a value made without the
//! secret names no backend (it is replaced, as an unknown one is).
//!
//! The pool stores each backend's value (`Pool::rebuild`, from its policy's key), and
//! `sticky.rs` re-exports these names for the request parser.

use aws_lc_rs::hmac;

use super::hash::hash;

/// Shortest `sticky_cookie_secret` (characters): the config's rule.
pub use crate::config::MIN_SECRET_LEN;

/// What a MAC'd value is a MAC of: this, then the backend's key.
const DOMAIN: &[u8] = b"ferrule sticky cookie v1\0";

/// The sticky-cookie value naming the backend whose key is `key`, without a secret: 16 hex digits
/// of a fixed hash of it.
pub fn cookie_id(key: &str) -> u64 {
    hash(0x57_1c_c0, key.as_bytes())
}

/// Parses a sticky-cookie value back (16 hex digits); `None` for anything else.
pub fn parse_cookie_id(value: &[u8]) -> Option<u64> {
    if value.len() != 16 {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    u64::from_str_radix(text, 16).ok()
}

/// The MAC key made from `sticky_cookie_secret`.
pub struct CookieKey(hmac::Key);

impl CookieKey {
    pub fn new(secret: &str) -> CookieKey {
        CookieKey(hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()))
    }

    /// The sticky-cookie value naming the backend whose key is `key`: the first 64 bits of
    /// HMAC-SHA256(secret, [`DOMAIN`] ‖ key).
    pub fn id(&self, key: &str) -> u64 {
        let mut mac = hmac::Context::with_key(&self.0);
        mac.update(DOMAIN);
        mac.update(key.as_bytes());
        let tag = mac.sign();
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag.as_ref()[..8]);
        u64::from_be_bytes(first)
    }
}

impl std::fmt::Debug for CookieKey {
    /// Never the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(<redacted>)")
    }
}

/// The value for the backend whose key is `key`: MAC'd with `secret` when there is one.
pub fn value_for(secret: Option<&CookieKey>, key: &str) -> u64 {
    match secret {
        Some(secret) => secret.id(key),
        None => cookie_id(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_ids_are_fixed_per_url_and_round_trip() {
        let a = cookie_id("http://10.0.0.1:8080");
        assert_eq!(a, cookie_id("http://10.0.0.1:8080"));
        assert_ne!(a, cookie_id("http://10.0.0.2:8080"));
        let text = format!("{a:016x}");
        assert_eq!(parse_cookie_id(text.as_bytes()), Some(a));
        assert!(!text.contains("10.0.0.1"));
        assert_eq!(parse_cookie_id(b"123"), None);
        assert_eq!(parse_cookie_id(b"zzzzzzzzzzzzzzzz"), None);
    }

    #[test]
    fn keyed_ids_depend_on_the_secret_and_the_backend() {
        let url = "http://10.0.0.1:8080";
        let one = CookieKey::new("0123456789abcdef-one");
        let again = CookieKey::new("0123456789abcdef-one");
        let two = CookieKey::new("0123456789abcdef-two");
        assert_eq!(
            one.id(url),
            again.id(url),
            "the same secret: the same value"
        );
        assert_ne!(one.id(url), two.id(url));
        assert_ne!(one.id(url), one.id("http://10.0.0.2:8080"));
        assert_ne!(one.id(url), cookie_id(url), "not the unkeyed value");
        assert_eq!(value_for(Some(&one), url), one.id(url));
        assert_eq!(value_for(None, url), cookie_id(url));
        // HMAC-SHA256 itself (RFC 4231 test case 2, key "Jefe"), to pin what the value is
        let jefe = CookieKey(hmac::Key::new(hmac::HMAC_SHA256, b"Jefe"));
        let tag = hmac::sign(&jefe.0, b"what do ya want for nothing?");
        assert_eq!(
            tag.as_ref()[..8],
            [0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e]
        );
        assert!(!format!("{one:?}").contains("0123456789"));
    }

    #[test]
    fn the_pool_values_each_backend_under_its_policys_key() {
        use super::super::tests::cfg;
        use super::super::{Ask, Balancer, Choice, Picker, Policy, Pool, Sticky};
        use crate::config::Strategy;
        use std::sync::Arc;

        let pool = Pool::new(Strategy::RoundRobin, &[cfg(1, 1), cfg(2, 1)]);
        // no key: the fixed hash
        for b in pool.backends() {
            assert_eq!(b.cookie_id(), cookie_id(&b.key));
        }
        let policy = |secret: &str| Policy {
            sticky: Some(Sticky::Cookie),
            cookie_key: Some(Arc::new(CookieKey::new(secret))),
            ..Policy::default()
        };
        let balancer = Balancer::with_policy(pool, policy("0123456789abcdef-one"));
        let one = CookieKey::new("0123456789abcdef-one");
        let second = Arc::clone(&balancer.current().backends()[1]);
        assert_eq!(second.cookie_id(), one.id(&second.key));
        let mut picker = Picker::new(&balancer, 0);
        // (backend id, set_cookie) for a request with this cookie value
        let mut choose = |balancer: &Balancer, cookie: u64| {
            let ask = Ask {
                key: 0,
                client: 0,
                cookie: Some(cookie),
                exclude: None,
                now: std::time::Instant::now(),
            };
            match picker.choose(balancer, &ask) {
                Choice::Backend {
                    backend,
                    set_cookie,
                } => (backend.id, set_cookie),
                _ => (u64::MAX, false),
            }
        };
        // the keyed value routes, and is not set again; the plain one is replaced
        for _ in 0..4 {
            assert_eq!(choose(&balancer, one.id(&second.key)), (second.id, false));
        }
        let plain = cookie_id(&second.key);
        assert!(
            (0..4).all(|_| choose(&balancer, plain).1),
            "plain values are replaced"
        );
        // a new key (a reload) values every backend again
        balancer.update(|p| p.set_policy(Arc::new(policy("0123456789abcdef-two"))));
        let two = CookieKey::new("0123456789abcdef-two");
        assert_eq!(second.cookie_id(), two.id(&second.key));
        assert_eq!(choose(&balancer, two.id(&second.key)), (second.id, false));
        assert!(choose(&balancer, one.id(&second.key)).1);
    }
}
