//! The responses ferrule writes itself, when it refuses a request or cannot get an answer from a
//! backend: a status line, a short plain-text body (none for `HEAD`), and whether the connection
//! stays open. Every status ferrule can send is a [`Status`] variant, so there is no fallback for
//! an unknown code; the session decides which status a failure maps to, in one place
//! (`Session::fail`).

use super::date::IMF_FIXDATE_LEN;
use super::headers::put_u64;
use super::Added;

/// A status ferrule answers with itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    BadRequest,
    /// No route takes the request (routing: no match and no `default` pool).
    NotFound,
    RequestTimeout,
    UriTooLong,
    HeaderFieldsTooLarge,
    PayloadTooLarge,
    /// Over a rate limit (`crate::limits`): see [`too_many_requests`] for its `Retry-After`.
    TooManyRequests,
    NotImplemented,
    BadGateway,
    ServiceUnavailable,
    GatewayTimeout,
    VersionNotSupported,
}

impl Status {
    /// Every status, for tests and documentation.
    pub const ALL: [Status; 12] = [
        Status::BadRequest,
        Status::NotFound,
        Status::RequestTimeout,
        Status::UriTooLong,
        Status::HeaderFieldsTooLarge,
        Status::PayloadTooLarge,
        Status::TooManyRequests,
        Status::NotImplemented,
        Status::BadGateway,
        Status::ServiceUnavailable,
        Status::GatewayTimeout,
        Status::VersionNotSupported,
    ];

    pub fn code(self) -> u16 {
        match self {
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::RequestTimeout => 408,
            Status::UriTooLong => 414,
            Status::HeaderFieldsTooLarge => 431,
            Status::PayloadTooLarge => 413,
            Status::TooManyRequests => 429,
            Status::NotImplemented => 501,
            Status::BadGateway => 502,
            Status::ServiceUnavailable => 503,
            Status::GatewayTimeout => 504,
            Status::VersionNotSupported => 505,
        }
    }

    /// A server-side failure (5xx): the client did nothing wrong, so its connection may stay.
    pub fn is_server_error(self) -> bool {
        self.code() >= 500
    }

    /// Reason phrase and body text.
    fn text(self) -> (&'static str, &'static str) {
        match self {
            Status::BadRequest => ("Bad Request", "bad request\n"),
            Status::NotFound => ("Not Found", "not found: no route for this host and path\n"),
            Status::RequestTimeout => ("Request Timeout", "request timeout\n"),
            Status::UriTooLong => ("URI Too Long", "request target too long\n"),
            Status::HeaderFieldsTooLarge => (
                "Request Header Fields Too Large",
                "request head too large\n",
            ),
            Status::PayloadTooLarge => ("Content Too Large", "request body too large\n"),
            Status::TooManyRequests => (
                "Too Many Requests",
                "too many requests: over the rate limit, retry later\n",
            ),
            Status::NotImplemented => ("Not Implemented", "not implemented\n"),
            Status::BadGateway => (
                "Bad Gateway",
                "bad gateway: the backend could not be reached or answered badly\n",
            ),
            Status::ServiceUnavailable => (
                "Service Unavailable",
                "service unavailable: no backend is available\n",
            ),
            Status::GatewayTimeout => (
                "Gateway Timeout",
                "gateway timeout: the backend did not answer in time\n",
            ),
            Status::VersionNotSupported => {
                ("HTTP Version Not Supported", "HTTP version not supported\n")
            }
        }
    }
}

/// The answer to a client that speaks plain HTTP to the TLS port (as nginx gives it), written on
/// the bare socket before it is closed, into `out` (cleared first). It carries `Date` but never
/// `Strict-Transport-Security`, which means nothing over plain HTTP (RFC 6797 §7.2).
pub fn plain_http_to_tls_port(date: &[u8; IMF_FIXDATE_LEN], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 400 Bad Request\r\nDate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(
        b"\r\nContent-Type: text/plain\r\nContent-Length: 48\r\nConnection: close\r\n\r\n\
The plain HTTP request was sent to HTTPS port.\r\n",
    );
}

/// Writes the whole response for `status` into `out` (cleared first), with the fields of
/// `added` (`Date`, and HSTS over TLS). `head`: the request was `HEAD`, so the response
/// announces its body's length but carries none (RFC 9110 §9.3.2).
pub fn canned(status: Status, keep_alive: bool, head: bool, added: &Added<'_>, out: &mut Vec<u8>) {
    let retry = matches!(status, Status::ServiceUnavailable | Status::TooManyRequests);
    write(status, retry.then_some(1), keep_alive, head, added, out);
}

/// [`canned`] 429, with `Retry-After: retry_after` (whole seconds).
pub fn too_many_requests(
    retry_after: u64,
    keep_alive: bool,
    head: bool,
    added: &Added<'_>,
    out: &mut Vec<u8>,
) {
    let status = Status::TooManyRequests;
    write(status, Some(retry_after), keep_alive, head, added, out);
}

fn write(
    status: Status,
    retry_after: Option<u64>,
    keep_alive: bool,
    head: bool,
    added: &Added<'_>,
    out: &mut Vec<u8>,
) {
    let (reason, body) = status.text();
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    put_u64(out, u64::from(status.code()));
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    added.write(false, false, out);
    out.extend_from_slice(b"Content-Type: text/plain\r\nContent-Length: ");
    put_u64(out, body.len() as u64);
    if let Some(secs) = retry_after {
        out.extend_from_slice(b"\r\nRetry-After: ");
        put_u64(out, secs);
    }
    out.extend_from_slice(if keep_alive {
        b"\r\n\r\n".as_slice()
    } else {
        b"\r\nConnection: close\r\n\r\n".as_slice()
    });
    if !head {
        out.extend_from_slice(body.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &[u8; IMF_FIXDATE_LEN] = b"Sun, 06 Nov 1994 08:49:37 GMT";

    fn field<'a>(resp: &httparse::Response<'_, 'a>, name: &str) -> Option<&'a [u8]> {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    #[test]
    fn a_429_says_when_to_retry() {
        let added = Added {
            date: DATE,
            hsts: None,
        };
        let mut out = Vec::new();
        too_many_requests(17, true, false, &added, &mut out);
        let mut fields = [httparse::EMPTY_HEADER; 8];
        let mut resp = httparse::Response::new(&mut fields);
        let len = resp.parse(&out).unwrap().unwrap();
        assert_eq!(resp.code, Some(429));
        assert_eq!(field(&resp, "Retry-After"), Some(b"17".as_slice()));
        assert_eq!(field(&resp, "Connection"), None);
        assert!(out[len..].starts_with(b"too many requests"));
    }

    #[test]
    fn plain_http_answer_is_well_formed() {
        let mut out = Vec::new();
        plain_http_to_tls_port(DATE, &mut out);
        let mut fields = [httparse::EMPTY_HEADER; 8];
        let mut resp = httparse::Response::new(&mut fields);
        let len = resp.parse(&out).unwrap().unwrap();
        assert_eq!(resp.code, Some(400));
        assert_eq!(out.len() - len, 48);
        assert_eq!(field(&resp, "Date"), Some(DATE.as_slice()));
        assert_eq!(field(&resp, "Strict-Transport-Security"), None);
    }

    #[test]
    fn canned_responses_are_well_formed() {
        let hsts = b"Strict-Transport-Security: max-age=60\r\n";
        let mut out = Vec::new();
        for status in Status::ALL {
            for keep in [true, false] {
                for head in [false, true] {
                    for hsts in [None, Some(hsts.as_slice())] {
                        let added = Added { date: DATE, hsts };
                        canned(status, keep, head, &added, &mut out);
                        let mut fields = [httparse::EMPTY_HEADER; 8];
                        let mut resp = httparse::Response::new(&mut fields);
                        let len = resp.parse(&out).unwrap().unwrap();
                        assert_eq!(resp.code, Some(status.code()));
                        let cl = field(&resp, "Content-Length").unwrap();
                        let n: usize = std::str::from_utf8(cl).unwrap().parse().unwrap();
                        assert!(n > 0);
                        // HEAD: the length of the body a GET would get, and no body
                        assert_eq!(out.len(), if head { len } else { len + n });
                        assert_eq!(field(&resp, "Connection").is_some(), !keep);
                        let retry = field(&resp, "Retry-After");
                        let retries = matches!(status.code(), 503 | 429);
                        assert_eq!(retry, retries.then_some(b"1".as_slice()));
                        assert_eq!(field(&resp, "Date"), Some(DATE.as_slice()));
                        let sts = field(&resp, "Strict-Transport-Security");
                        assert_eq!(sts, hsts.map(|_| b"max-age=60".as_slice()));
                    }
                }
            }
        }
    }
}
