//! The responses ferrule writes itself, when it refuses a request or cannot get an answer from a
//! backend: a status line, a short plain-text body (none for `HEAD`), and whether the connection
//! stays open. Every status ferrule can send is a [`Status`] variant, so there is no fallback for
//! an unknown code; the session decides which status a failure maps to, in one place
//! (`Session::fail`).

use super::headers::put_u64;

/// A status ferrule answers with itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    BadRequest,
    RequestTimeout,
    UriTooLong,
    HeaderFieldsTooLarge,
    PayloadTooLarge,
    NotImplemented,
    BadGateway,
    ServiceUnavailable,
    GatewayTimeout,
    VersionNotSupported,
}

impl Status {
    /// Every status, for tests and documentation.
    pub const ALL: [Status; 10] = [
        Status::BadRequest,
        Status::RequestTimeout,
        Status::UriTooLong,
        Status::HeaderFieldsTooLarge,
        Status::PayloadTooLarge,
        Status::NotImplemented,
        Status::BadGateway,
        Status::ServiceUnavailable,
        Status::GatewayTimeout,
        Status::VersionNotSupported,
    ];

    pub fn code(self) -> u16 {
        match self {
            Status::BadRequest => 400,
            Status::RequestTimeout => 408,
            Status::UriTooLong => 414,
            Status::HeaderFieldsTooLarge => 431,
            Status::PayloadTooLarge => 413,
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
            Status::RequestTimeout => ("Request Timeout", "request timeout\n"),
            Status::UriTooLong => ("URI Too Long", "request target too long\n"),
            Status::HeaderFieldsTooLarge => (
                "Request Header Fields Too Large",
                "request head too large\n",
            ),
            Status::PayloadTooLarge => ("Content Too Large", "request body too large\n"),
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
/// the bare socket before it is closed.
pub const PLAIN_HTTP_TO_TLS_PORT: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain\r\nContent-Length: 48\r\nConnection: close\r\n\r\n\
The plain HTTP request was sent to HTTPS port.\r\n";

/// Writes the whole response for `status` into `out` (cleared first). `head`: the request was
/// `HEAD`, so the response announces its body's length but carries none (RFC 9110 §9.3.2).
pub fn canned(status: Status, keep_alive: bool, head: bool, out: &mut Vec<u8>) {
    let (reason, body) = status.text();
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    put_u64(out, u64::from(status.code()));
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: text/plain\r\nContent-Length: ");
    put_u64(out, body.len() as u64);
    if status == Status::ServiceUnavailable {
        out.extend_from_slice(b"\r\nRetry-After: 1");
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

    #[test]
    fn plain_http_answer_is_well_formed() {
        let mut fields = [httparse::EMPTY_HEADER; 8];
        let mut resp = httparse::Response::new(&mut fields);
        let len = resp.parse(PLAIN_HTTP_TO_TLS_PORT).unwrap().unwrap();
        assert_eq!(resp.code, Some(400));
        assert_eq!(PLAIN_HTTP_TO_TLS_PORT.len() - len, 48);
    }

    #[test]
    fn canned_responses_are_well_formed() {
        let mut out = Vec::new();
        for status in Status::ALL {
            for keep in [true, false] {
                for head in [false, true] {
                    canned(status, keep, head, &mut out);
                    let mut fields = [httparse::EMPTY_HEADER; 8];
                    let mut resp = httparse::Response::new(&mut fields);
                    let len = resp.parse(&out).unwrap().unwrap();
                    assert_eq!(resp.code, Some(status.code()));
                    let cl = resp
                        .headers
                        .iter()
                        .find(|h| h.name == "Content-Length")
                        .unwrap();
                    let n: usize = std::str::from_utf8(cl.value).unwrap().parse().unwrap();
                    assert!(n > 0);
                    // HEAD: the length of the body a GET would get, and no body
                    assert_eq!(out.len(), if head { len } else { len + n });
                    let closes = resp.headers.iter().any(|h| h.name == "Connection");
                    assert_eq!(closes, !keep);
                    assert_eq!(
                        resp.headers.iter().any(|h| h.name == "Retry-After"),
                        status.code() == 503
                    );
                }
            }
        }
    }
}
