//! `ssl.redirect_http_port`: the answer of the plain-HTTP listener that sends clients to https.
//! The workers accept on it like on the proxy's port (the same non-blocking path, with
//! `max_connections_per_ip` and the header timeout: idle connections cost a worker nothing and
//! never keep a new client waiting), and once a request head is whole, its connection's codec
//! answers with what [`answer`] writes and closes. Pure: bytes in, bytes out.
//!
//! Every request gets `308 Permanent Redirect` to the same target on https:
//! `https://<host>[:<TLS port>]<target>`, the port left out when it is 443. 308 (not 301) keeps the
//! method and body of a POST, and no body is ever read. A request without a usable `Host` gets
//! 400. The answer carries `Date`, never `Strict-Transport-Security` (a plain-HTTP answer must
//! not, RFC 6797 §7.2).

use crate::http::date::IMF_FIXDATE_LEN;
use crate::http::request;

/// Writes the answer to the request head `head` into `out` (cleared first): a 308 to
/// `https_port`, or a 400. Returns its status.
pub fn answer(
    head: &[u8],
    https_port: u16,
    date: &[u8; IMF_FIXDATE_LEN],
    out: &mut Vec<u8>,
) -> u16 {
    let mut storage = request::HEADERS;
    let (req, parsed) = request::parse(head, &mut storage);
    let host = match parsed {
        Ok(httparse::Status::Complete(_)) => {
            let mut hosts = req
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("host"));
            match (hosts.next(), hosts.next()) {
                (Some(h), None) => std::str::from_utf8(h.value).ok().and_then(host_name),
                _ => None,
            }
        }
        _ => None,
    };
    out.clear();
    let (status, reason, body) = match host {
        Some(name) => {
            let target = req.path.unwrap_or("/");
            let location = location(name, https_port, target);
            (308, "Permanent Redirect", Some(location))
        }
        None => (400, "Bad Request", None),
    };
    out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\nDate: ").as_bytes());
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\nContent-Type: text/plain\r\n");
    let text = match &body {
        Some(location) => {
            out.extend_from_slice(format!("Location: {location}\r\n").as_bytes());
            format!("{location}\n")
        }
        None => "bad request: no usable Host\n".to_owned(),
    };
    out.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        )
        .as_bytes(),
    );
    status
}

/// The method, target and `Host` of a request head, for the access log (`None` when it does not
/// parse).
pub fn request_line(head: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let mut storage = request::HEADERS;
    let (req, parsed) = request::parse(head, &mut storage);
    if !matches!(parsed, Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let host = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .map_or(&b""[..], |h| h.value);
    Some((req.method?.as_bytes(), req.path?.as_bytes(), host))
}

/// The host part of a `Host` value (its port dropped), if it is a plain name, IPv4 address or
/// bracketed IPv6 address: nothing that could steer the redirect elsewhere (`@`, `/`, spaces).
fn host_name(host: &str) -> Option<&str> {
    let host = host.trim();
    let name = if host.starts_with('[') {
        host.get(..=host.find(']')?)?
    } else {
        host.split(':').next()?
    };
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '[' | ']' | ':'));
    ok.then_some(name)
}

fn location(host: &str, https_port: u16, target: &str) -> String {
    let target = if target.starts_with('/') { target } else { "/" };
    if https_port == 443 {
        format!("https://{host}{target}")
    } else {
        format!("https://{host}:{https_port}{target}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(location("a.example", 443, "/x?y"), "https://a.example/x?y");
        assert_eq!(location("a.example", 8443, "/"), "https://a.example:8443/");
        assert_eq!(location("[::1]", 8443, "*"), "https://[::1]:8443/");
    }

    #[test]
    fn host_names() {
        assert_eq!(host_name("a.example:80"), Some("a.example"));
        assert_eq!(host_name("[::1]:80"), Some("[::1]"));
        assert_eq!(host_name("10.0.0.1"), Some("10.0.0.1"));
        assert_eq!(host_name("evil.com/x"), None);
        assert_eq!(host_name("a@b"), None);
        assert_eq!(host_name(""), None);
    }

    #[test]
    fn answers_308_with_date_and_location_or_400() {
        let date = b"Sun, 06 Dec 2026 12:00:00 GMT";
        let mut out = Vec::new();
        let status = answer(
            b"GET /p?q HTTP/1.1\r\nHost: a.example:80\r\n\r\n",
            8443,
            date,
            &mut out,
        );
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(status, 308, "{text}");
        assert!(
            text.starts_with("HTTP/1.1 308 Permanent Redirect\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nLocation: https://a.example:8443/p?q\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nDate: Sun, 06 Dec 2026 12:00:00 GMT\r\n"),
            "{text}"
        );
        assert!(
            !text.to_ascii_lowercase().contains("strict-transport"),
            "{text}"
        );
        for head in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n",
        ] {
            assert_eq!(answer(head, 443, date, &mut out), 400);
        }
    }
}
