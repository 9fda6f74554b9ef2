//! The responses ferrule writes itself, when it refuses a request or cannot get an answer from a
//! backend: a status line, a short plain-text body, and whether the connection stays open. The
//! session decides which status a failure maps to, in one place (`Session::fail`).

use super::headers::put_u64;

/// Reason phrase and body text for a status ferrule sends.
fn text(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("Bad Request", "bad request\n"),
        408 => ("Request Timeout", "request timeout\n"),
        414 => ("URI Too Long", "request target too long\n"),
        431 => (
            "Request Header Fields Too Large",
            "request head too large\n",
        ),
        501 => ("Not Implemented", "not implemented\n"),
        502 => (
            "Bad Gateway",
            "bad gateway: the backend could not be reached or answered badly\n",
        ),
        503 => (
            "Service Unavailable",
            "service unavailable: no backend is available\n",
        ),
        504 => (
            "Gateway Timeout",
            "gateway timeout: the backend did not answer in time\n",
        ),
        505 => ("HTTP Version Not Supported", "HTTP version not supported\n"),
        _ => ("Internal Server Error", "internal error\n"),
    }
}

/// Writes the whole response for `status` into `out` (cleared first).
pub fn canned(status: u16, keep_alive: bool, out: &mut Vec<u8>) {
    let (reason, body) = text(status);
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    put_u64(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: text/plain\r\nContent-Length: ");
    put_u64(out, body.len() as u64);
    if status == 503 {
        out.extend_from_slice(b"\r\nRetry-After: 1");
    }
    out.extend_from_slice(if keep_alive {
        b"\r\n\r\n".as_slice()
    } else {
        b"\r\nConnection: close\r\n\r\n".as_slice()
    });
    out.extend_from_slice(body.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_responses_are_well_formed() {
        let mut out = Vec::new();
        for status in [400, 408, 414, 431, 501, 502, 503, 504, 505] {
            for keep in [true, false] {
                canned(status, keep, &mut out);
                let mut fields = [httparse::EMPTY_HEADER; 8];
                let mut resp = httparse::Response::new(&mut fields);
                let len = resp.parse(&out).unwrap().unwrap();
                assert_eq!(resp.code, Some(status));
                let cl = resp
                    .headers
                    .iter()
                    .find(|h| h.name == "Content-Length")
                    .unwrap();
                let n: usize = std::str::from_utf8(cl.value).unwrap().parse().unwrap();
                assert_eq!(len + n, out.len());
                let closes = resp.headers.iter().any(|h| h.name == "Connection");
                assert_eq!(closes, !keep);
                assert_eq!(
                    resp.headers.iter().any(|h| h.name == "Retry-After"),
                    status == 503
                );
            }
        }
    }
}
