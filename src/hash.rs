//! Fixed hashes, on the ground floor (this file imports nothing of the crate): the request parser
//! (`http/`), the balancer, the per-IP limits and the health thread's jitter all use them.
//!
//! - [`stable_hash`]: a small, fixed 64-bit hash, the same on every machine, in every process and
//!   across restarts (unlike `std`'s randomly keyed `DefaultHasher`), so that two ferrule
//!   instances with the same config send a key to the same backend and a sticky cookie names the
//!   same backend everywhere. FNV-1a over the bytes, then the SplitMix64 finaliser ([`mix`]) so
//!   that nearby inputs (ports that differ by one, addresses in one subnet) spread over the whole
//!   range. Not for secrets.
//! - [`hash_ip`]: the key of a client address (sticky `ip` mode, the per-IP limits).
//! - The sticky cookie's value (`sticky_mode: "cookie"`): 16 hex digits that name a backend.
//!   Without `sticky_cookie_secret` it is [`cookie_id`], a fixed hash of the backend's key (its
//!   URL; for a URL with a host name, the URL and the address: see `balancer::Backend::key`): the
//!   same in every process and after restarts, and never the address in clear. Anyone can compute
//!   it, so a client can choose its backend by sending the cookie of another one, as with
//!   HAProxy's and nginx's sticky cookies. With a secret, it is a keyed MAC of the same key
//!   ([`CookieKey::id`]: HMAC-SHA256, from aws-lc-rs, the library rustls already uses for TLS,
//!   truncated to 64 bits): still the same in every process that shares the secret, but a client
//!   without the secret cannot compute the value of a backend it was not sent to (a guess is
//!   right once in 2^64), and a value made without the secret names no backend (it is replaced,
//!   as an unknown one is).
//!
//! Neighbours: the pool stores each backend's cookie value (`balancer/pool.rs`, from its policy's
//! key), the request parser reads it back ([`parse_cookie_id`], `http/request.rs`), and the
//! balancer's per-worker random generator (`balancer/rng.rs`) is seeded through [`mix`].

use aws_lc_rs::hmac;

/// The hash of `bytes`, seeded with `seed` (different seeds give independent hashes).
#[inline]
pub fn stable_hash(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// SplitMix64's finaliser: every input bit affects every output bit.
#[inline]
pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The hash of a client address (its bytes; an IPv4-mapped IPv6 address hashes as the IPv4 one).
pub fn hash_ip(ip: std::net::IpAddr) -> u64 {
    match ip {
        std::net::IpAddr::V4(v4) => stable_hash(0, &v4.octets()),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => stable_hash(0, &v4.octets()),
            None => stable_hash(0, &v6.octets()),
        },
    }
}

/// Shortest `sticky_cookie_secret` (characters): 16 random characters are ~100 bits or more.
pub const MIN_SECRET_LEN: usize = 16;

/// What a MAC'd cookie value is a MAC of: this, then the backend's key.
const DOMAIN: &[u8] = b"ferrule sticky cookie v1\0";

/// The sticky-cookie value naming the backend whose key is `key`, without a secret: 16 hex digits
/// of a fixed hash of it.
pub fn cookie_id(key: &str) -> u64 {
    stable_hash(0x57_1c_c0, key.as_bytes())
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
    /// HMAC-SHA256(secret, `DOMAIN` ‖ key).
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

/// The sticky-cookie value for the backend whose key is `key`: MAC'd with `secret` when there is
/// one.
pub fn cookie_value(secret: Option<&CookieKey>, key: &str) -> u64 {
    match secret {
        Some(secret) => secret.id(key),
        None => cookie_id(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_values_never_change() {
        // these values are part of the contract: cookies and consistent hashing depend on them
        assert_eq!(stable_hash(0, b""), mix(0xcbf2_9ce4_8422_2325));
        assert_eq!(
            stable_hash(0, b"http://127.0.0.1:8082"),
            stable_hash(0, b"http://127.0.0.1:8082")
        );
        assert_ne!(
            stable_hash(0, b"http://127.0.0.1:8082"),
            stable_hash(0, b"http://127.0.0.1:8083")
        );
        assert_ne!(stable_hash(1, b"x"), stable_hash(2, b"x"));
        let v4: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        let mapped: std::net::IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(hash_ip(v4), hash_ip(mapped));
    }

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
        assert_eq!(cookie_value(Some(&one), url), one.id(url));
        assert_eq!(cookie_value(None, url), cookie_id(url));
        // HMAC-SHA256 itself (RFC 4231 test case 2, key "Jefe"), to pin what the value is
        let jefe = CookieKey(hmac::Key::new(hmac::HMAC_SHA256, b"Jefe"));
        let tag = hmac::sign(&jefe.0, b"what do ya want for nothing?");
        assert_eq!(
            tag.as_ref()[..8],
            [0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e]
        );
        assert!(!format!("{one:?}").contains("0123456789"));
    }
}
