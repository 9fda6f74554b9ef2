//! What an admin request must show before anything else is looked at (see `mod.rs`'s `screen`,
//! which runs these in this order, each before the token and the routing):
//!
//! 1. [`check_host`]: a `Host` this API answers to: `localhost`, a loopback address,
//!    `admin_bind`, or a name of `admin_allowed_hosts`, each with or without the admin port.
//!    A page whose name was rebound to 127.0.0.1 (DNS rebinding) sends its own name: 421. No
//!    `Host` on HTTP/1.1, several, or a malformed one: 400, as RFC 9112 §3.2 asks.
//! 2. [`check_origin`]: a browser's `Origin` must be this API's own (`http://` and the `Host`),
//!    and `Sec-Fetch-Site` must be `same-origin` or `none` (typed by the user): a page of another
//!    origin (another port of 127.0.0.1 is the same *site*, not the same origin) gets 403 (CSRF).
//!    The dashboard page itself (`GET /`, `GET /dashboard`) may be opened from a link anywhere:
//!    it holds no data, and its own requests are same-origin.
//! 3. the token (`mod.rs`), with [`Throttle`]: a wrong token from an address that sent wrong
//!    ones lately is answered later and later, so a token cannot be guessed at wire speed.
//! 4. [`check_content_type`]: a request with a body must say `Content-Type: application/json`
//!    (415 otherwise): a cross-origin page can send a `text/plain` body without asking the
//!    browser's permission (no preflight), but not a JSON one.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::ApiError;
use crate::httpd::message::Head;

/// Who the admin API answers to: its bound address and `admin_allowed_hosts`.
pub(super) struct Allowed<'a> {
    pub bind: IpAddr,
    /// The admin port as bound (the one picked when `admin_port` is 0).
    pub port: u16,
    pub hosts: &'a [String],
}

/// A host as a `Host` field or an `Origin` names it.
#[derive(Debug, PartialEq, Eq)]
enum HostName {
    Ip(IpAddr),
    /// Lowercase, without a final dot.
    Name(String),
}

/// `host[:port]` or `[ipv6][:port]`: the host and the port if given; `None` when malformed.
fn split_authority(text: &str) -> Option<(HostName, Option<u16>)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let ip = inside.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (HostName::Ip(IpAddr::V6(ip)), port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        let name_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !name_ok {
            return None;
        }
        let host = match host.parse::<std::net::Ipv4Addr>() {
            Ok(ip) => HostName::Ip(IpAddr::V4(ip)),
            Err(_) => {
                let name = host.strip_suffix('.').unwrap_or(host);
                HostName::Name(name.to_ascii_lowercase())
            }
        };
        (host, port)
    };
    let port = match port {
        None => None,
        Some(p) if (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse().ok()?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

impl Allowed<'_> {
    fn allows(&self, host: &HostName, port: Option<u16>) -> bool {
        if port.is_some_and(|p| p != self.port) {
            return false;
        }
        match host {
            HostName::Name(name) => name == "localhost" || self.hosts.iter().any(|h| h == name),
            HostName::Ip(ip) => {
                let ip = ip.to_canonical();
                ip.is_loopback()
                    || (!self.bind.is_unspecified() && ip == self.bind.to_canonical())
                    || self
                        .hosts
                        .iter()
                        .any(|h| h.parse::<IpAddr>().is_ok_and(|a| a.to_canonical() == ip))
            }
        }
    }
}

/// The request's `Host` (see the header): `Ok(None)` for an HTTP/1.0 request without one.
pub(super) fn check_host<'h>(
    head: &'h Head,
    allowed: &Allowed,
) -> Result<Option<&'h str>, ApiError> {
    let mut fields = head.all("host");
    let host = fields.next();
    if fields.next().is_some() {
        return Err(ApiError::bad("host: given more than once"));
    }
    let host = match host.map(str::trim) {
        Some(h) if !h.is_empty() => h,
        _ if head.version == 0 => return Ok(None),
        _ => {
            return Err(ApiError::bad(
                "host: missing (HTTP/1.1 requests must name the host)",
            ))
        }
    };
    let refuse = || {
        ApiError::new(
            421,
            format!(
                "host: {host:?} is not a name this admin API answers to (localhost, a loopback \
                 address, admin_bind, or one of admin_allowed_hosts, with or without port {})",
                allowed.port
            ),
        )
    };
    let Some((name, port)) = split_authority(host) else {
        return Err(ApiError::bad(format!(
            "host: {host:?} is not a host[:port]"
        )));
    };
    if !allowed.allows(&name, port) {
        return Err(refuse());
    }
    // an absolute-form target names the host too, and wins over the field (RFC 9112 §3.2.2)
    if let Some((scheme, rest)) = head.target.split_once("://") {
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        let named = split_authority(authority);
        let ok = scheme.eq_ignore_ascii_case("http")
            && named.is_some_and(|(name, port)| allowed.allows(&name, port));
        if !ok {
            return Err(ApiError::new(
                421,
                format!(
                    "request target: {:?} is not this admin API",
                    head.target.get(..200).unwrap_or(&head.target)
                ),
            ));
        }
    }
    Ok(Some(host))
}

/// A browser's request from another origin is refused (403): `Origin` other than
/// `http://<Host>`, or `Sec-Fetch-Site` other than `same-origin` and `none`. Requests without
/// either (curl, scripts) pass: they are not sent by a page.
pub(super) fn check_origin(head: &Head, host: Option<&str>) -> Result<(), ApiError> {
    if let Some(site) = head.header("sec-fetch-site").map(str::trim) {
        if !site.eq_ignore_ascii_case("same-origin") && !site.eq_ignore_ascii_case("none") {
            return Err(ApiError::new(
                403,
                format!(
                    "sec-fetch-site: {:?}: the admin API takes browser requests from its own \
                     pages only",
                    site.get(..40).unwrap_or(site)
                ),
            ));
        }
    }
    let Some(origin) = head.header("origin").map(str::trim) else {
        return Ok(());
    };
    let same = host.is_some_and(|host| same_origin(origin, host));
    if same {
        return Ok(());
    }
    Err(ApiError::new(
        403,
        format!(
            "origin: {:?} is not this admin API's origin (http://{}): requests from other \
             pages are refused",
            origin.get(..200).unwrap_or(origin),
            host.unwrap_or("<no host>")
        ),
    ))
}

/// `origin` (`http://host[:port]`) is the origin of a request to `host` (a `Host` field) over
/// plain HTTP: the same host and the same port (80 when not given).
fn same_origin(origin: &str, host: &str) -> bool {
    let Some(authority) = origin
        .split_once("://")
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("http"))
        .map(|(_, rest)| rest)
    else {
        return false;
    };
    match (split_authority(authority), split_authority(host)) {
        (Some((a, pa)), Some((b, pb))) => {
            let same_host = match (&a, &b) {
                (HostName::Ip(x), HostName::Ip(y)) => x.to_canonical() == y.to_canonical(),
                _ => a == b,
            };
            same_host && pa.unwrap_or(80) == pb.unwrap_or(80)
        }
        _ => false,
    }
}

/// A request with a body must carry one `Content-Type` whose media type is `application/json`
/// (parameters such as `charset=utf-8` allowed); 415 otherwise.
pub(super) fn check_content_type(head: &Head) -> Result<(), ApiError> {
    let mut fields = head.all("content-type");
    let (first, second) = (fields.next(), fields.next());
    let media = first.and_then(|v| v.split(';').next()).map(str::trim);
    match (media, second) {
        (Some(m), None) if m.eq_ignore_ascii_case("application/json") => Ok(()),
        (_, Some(_)) => Err(ApiError::new(415, "content-type: given more than once")),
        (None, None) => Err(ApiError::new(
            415,
            "content-type: missing (a request body must be JSON: send Content-Type: application/json)",
        )),
        (Some(m), None) => Err(ApiError::new(
            415,
            format!(
                "content-type: {:?} is not accepted (a request body must be JSON: send \
                 Content-Type: application/json)",
                m.get(..100).unwrap_or(m)
            ),
        )),
    }
}

/// Wrong tokens answered at once from one address before the delays start.
const FREE_FAILURES: u32 = 2;
/// The first delay; each further wrong token doubles it, up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(4);
/// A count of wrong tokens is forgotten after this long without one.
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most (about 40 bytes each).
const MAX_TRACKED: usize = 4096;

/// Recent wrong tokens per client address (an IPv6 client by its /64), for [`Throttle::failed`].
#[derive(Default)]
pub(super) struct Throttle {
    table: Mutex<HashMap<IpAddr, Strikes>>,
}

#[derive(Clone, Copy)]
struct Strikes {
    count: u32,
    last: Instant,
}

/// An address as the throttle counts it: IPv4 as is, IPv6 by its /64 (one host holds a /64).
fn key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// How long the answer to the `count`th recent wrong token waits.
fn delay_for(count: u32) -> Duration {
    match count.checked_sub(FREE_FAILURES + 1) {
        None => Duration::ZERO,
        Some(n) => FIRST_DELAY.saturating_mul(1u32 << n.min(16)).min(MAX_DELAY),
    }
}

impl Throttle {
    /// Counts a wrong token from `peer`; how long its 401 should wait. The wait is the
    /// connection's own (the caller sleeps, holding no lock): other clients are not slowed.
    pub(super) fn failed(&self, peer: SocketAddr) -> Duration {
        self.failed_at(peer.ip(), Instant::now())
    }

    fn failed_at(&self, ip: IpAddr, now: Instant) -> Duration {
        let mut table = self.table.lock();
        let ip = key(ip);
        if !table.contains_key(&ip) && table.len() >= MAX_TRACKED {
            table.retain(|_, s| now.saturating_duration_since(s.last) < WINDOW);
            if table.len() >= MAX_TRACKED {
                let oldest = table.iter().min_by_key(|(_, s)| s.last).map(|(ip, _)| *ip);
                if let Some(oldest) = oldest {
                    table.remove(&oldest);
                }
            }
        }
        let strikes = table.entry(ip).or_insert(Strikes {
            count: 0,
            last: now,
        });
        if now.saturating_duration_since(strikes.last) >= WINDOW {
            strikes.count = 0;
        }
        strikes.count = strikes.count.saturating_add(1);
        strikes.last = now;
        delay_for(strikes.count)
    }

    /// The right token from `peer`: its count is forgotten.
    pub(super) fn succeeded(&self, peer: SocketAddr) {
        let mut table = self.table.lock();
        if !table.is_empty() {
            table.remove(&key(peer.ip()));
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.table.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(target: &str, fields: &[(&str, &str)]) -> Head {
        let mut text = format!("POST {target} HTTP/1.1\r\n");
        for (n, v) in fields {
            text.push_str(&format!("{n}: {v}\r\n"));
        }
        text.push_str("\r\n");
        match Head::parse(text.as_bytes()) {
            Ok(Some((head, _))) => head,
            _ => panic!("{text:?} does not parse"),
        }
    }

    const ALLOWED: Allowed<'static> = Allowed {
        bind: IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
        port: 8081,
        hosts: &[],
    };

    fn host_status(host: &str, allowed: &Allowed) -> Option<u16> {
        check_host(&head("/stats", &[("Host", host)]), allowed)
            .err()
            .map(|e| e.status)
    }

    #[test]
    fn hosts_are_checked_against_the_allow_list() {
        for ok in [
            "localhost",
            "LOCALHOST:8081",
            "localhost.",
            "127.0.0.1",
            "127.0.0.1:8081",
            "127.3.4.5:8081",
            "[::1]",
            "[::1]:8081",
            "[::ffff:127.0.0.1]:8081",
        ] {
            assert_eq!(host_status(ok, &ALLOWED), None, "{ok}");
        }
        for (bad, status) in [
            ("evil.example", 421),
            ("evil.example:8081", 421),
            ("localhost:8082", 421),
            ("127.0.0.1:80", 421),
            ("127.1:8081", 421),
            ("2130706433", 421),
            ("10.0.0.5:8081", 421),
            ("localhost.evil.example", 421),
            ("[::2]:8081", 421),
            ("::1", 400),
            ("a b", 400),
            ("localhost:", 400),
            ("localhost:99999", 400),
            ("[::1", 400),
        ] {
            assert_eq!(host_status(bad, &ALLOWED), Some(status), "{bad}");
        }
        let listed = ["admin.internal".to_owned(), "10.0.0.5".to_owned()];
        let wide = Allowed {
            bind: "192.168.1.4".parse().unwrap_or(ALLOWED.bind),
            port: 8081,
            hosts: &listed,
        };
        for ok in [
            "admin.internal",
            "Admin.Internal:8081",
            "10.0.0.5:8081",
            "192.168.1.4:8081",
        ] {
            assert_eq!(host_status(ok, &wide), None, "{ok}");
        }
        assert_eq!(host_status("admin.internal:8080", &wide), Some(421));
        let any = Allowed {
            bind: "0.0.0.0".parse().unwrap_or(ALLOWED.bind),
            ..ALLOWED
        };
        assert_eq!(host_status("0.0.0.0:8081", &any), Some(421));
    }

    #[test]
    fn host_is_required_once_on_http_1_1_and_absolute_targets_are_checked() {
        let none = head("/stats", &[]);
        assert_eq!(
            check_host(&none, &ALLOWED).err().map(|e| e.status),
            Some(400)
        );
        let two = head("/stats", &[("Host", "localhost"), ("Host", "localhost")]);
        assert_eq!(
            check_host(&two, &ALLOWED).err().map(|e| e.status),
            Some(400)
        );
        let Ok(Some((old, _))) = Head::parse(b"GET /stats HTTP/1.0\r\n\r\n") else {
            panic!("an HTTP/1.0 head");
        };
        assert!(matches!(check_host(&old, &ALLOWED), Ok(None)));
        let absolute = head("http://evil.example:8081/stats", &[("Host", "localhost")]);
        assert_eq!(
            check_host(&absolute, &ALLOWED).err().map(|e| e.status),
            Some(421)
        );
        let own = head("http://127.0.0.1:8081/stats", &[("Host", "localhost")]);
        assert!(check_host(&own, &ALLOWED).is_ok());
    }

    #[test]
    fn other_origins_and_sites_are_refused() {
        let status = |fields: &[(&str, &str)], host: Option<&str>| {
            check_origin(&head("/backends", fields), host)
                .err()
                .map(|e| e.status)
        };
        let host = Some("127.0.0.1:8081");
        assert_eq!(status(&[], host), None, "no browser headers: curl");
        assert_eq!(status(&[("Origin", "http://127.0.0.1:8081")], host), None);
        assert_eq!(status(&[("Origin", "HTTP://127.0.0.1:8081")], host), None);
        assert_eq!(status(&[("Sec-Fetch-Site", "same-origin")], host), None);
        assert_eq!(status(&[("Sec-Fetch-Site", "none")], host), None);
        assert_eq!(
            status(&[("Origin", "http://localhost")], Some("localhost:80")),
            None
        );
        for (fields, why) in [
            (vec![("Origin", "http://127.0.0.5:8081")], "another host"),
            (vec![("Origin", "http://127.0.0.1:3000")], "another port"),
            (vec![("Origin", "https://127.0.0.1:8081")], "another scheme"),
            (vec![("Origin", "null")], "an opaque origin"),
            (vec![("Sec-Fetch-Site", "cross-site")], "cross-site"),
            (
                vec![("Sec-Fetch-Site", "same-site")],
                "same site, other origin",
            ),
            (
                vec![
                    ("Origin", "http://127.0.0.1:8081"),
                    ("Sec-Fetch-Site", "cross-site"),
                ],
                "either is enough",
            ),
        ] {
            assert_eq!(status(&fields, host), Some(403), "{why}");
        }
        assert_eq!(
            status(&[("Origin", "http://127.0.0.1:8081")], None),
            Some(403),
            "no Host to compare with"
        );
    }

    #[test]
    fn bodies_must_be_declared_json() {
        let status = |fields: &[(&str, &str)]| {
            check_content_type(&head("/backends", fields))
                .err()
                .map(|e| e.status)
        };
        assert_eq!(status(&[("Content-Type", "application/json")]), None);
        assert_eq!(
            status(&[("Content-Type", "Application/JSON; charset=utf-8")]),
            None
        );
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json-patch+json",
            "",
        ] {
            assert_eq!(status(&[("Content-Type", bad)]), Some(415), "{bad:?}");
        }
        assert_eq!(status(&[]), Some(415));
        let two = [
            ("Content-Type", "application/json"),
            ("Content-Type", "text/plain"),
        ];
        assert_eq!(status(&two), Some(415));
    }

    #[test]
    fn wrong_tokens_are_answered_later_and_later_per_address() {
        let t = Throttle::default();
        let now = Instant::now();
        let a: IpAddr = "127.0.0.1".parse().unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let delays: Vec<u128> = (0..9).map(|_| t.failed_at(a, now).as_millis()).collect();
        assert_eq!(delays, [0, 0, 250, 500, 1000, 2000, 4000, 4000, 4000]);
        let b: IpAddr = "127.0.0.2".parse().unwrap_or(a);
        assert_eq!(t.failed_at(b, now), Duration::ZERO, "another address");
        // forgotten after a quiet minute, and on success
        assert_eq!(t.failed_at(a, now + WINDOW), Duration::ZERO);
        t.succeeded(SocketAddr::new(b, 1));
        assert_eq!(t.tracked(), 1);
        // an IPv6 /64 is one client
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap_or(a);
        for i in 0..3 {
            t.failed_at(v6(&format!("2001:db8::{i}")), now);
        }
        assert_eq!(t.failed_at(v6("2001:db8::ffff"), now).as_millis(), 500);
    }

    #[test]
    fn the_throttle_table_is_bounded() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 100) {
            t.failed_at(IpAddr::from((0x0a00_0000 + i).to_be_bytes()), now);
        }
        assert_eq!(t.tracked(), MAX_TRACKED);
    }
}
