//! What `mock-backend` keeps of a request head ([`Request`]: framing, keep-alive, `Expect`, the
//! [`Route`]), worked out by [`interpret`], and the small parsers and tables: the route from the
//! target, clamped numbers, chunk sizes, reason phrases.
//!
//! Neighbours: `conn.rs` (reads the head and acts on this), `main.rs`, `args.rs`.

use crate::conn::Fail;
use crate::{MAX_BYTES, MAX_DELAY_MS};

#[derive(Clone, Copy)]
pub(crate) enum Framing {
    Empty,
    Length(u64),
    Chunked,
}

#[derive(Clone, Copy)]
pub(crate) enum Route {
    Health,
    Echo,
    Status(u16),
    Delay(u64),
    Bytes(u64),
    Default,
    Invalid(&'static str),
}

/// What the server keeps of a parsed request head.
pub(crate) struct Request {
    pub(crate) head_only: bool,
    pub(crate) http10: bool,
    pub(crate) keep_alive: bool,
    pub(crate) expect_continue: bool,
    pub(crate) framing: Framing,
    pub(crate) route: Route,
}

/// Extracts framing, connection handling and route from a complete request head.
pub(crate) fn interpret(req: &httparse::Request) -> Result<Request, Fail> {
    const BAD_LENGTH: Fail = Fail::Reply(400, "invalid Content-Length\n");
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive = false;
    let mut expect_continue = false;
    for header in req.headers.iter() {
        let name = header.name;
        let value = header.value.trim_ascii();
        if name.eq_ignore_ascii_case("content-length") {
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Err(BAD_LENGTH);
            }
            let n = std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(BAD_LENGTH)?;
            if content_length.is_some_and(|previous| previous != n) {
                return Err(BAD_LENGTH);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // The final coding is the last one listed; it must be chunked.
            if let Some(last) = tokens(value).last() {
                chunked = last.eq_ignore_ascii_case(b"chunked");
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in tokens(value) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        }
    }
    let framing = if transfer_encoding {
        if content_length.is_some() || !chunked {
            return Err(Fail::Reply(400, "unsupported Transfer-Encoding\n"));
        }
        Framing::Chunked
    } else {
        match content_length {
            None | Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
        }
    };
    let http10 = req.version != Some(1);
    Ok(Request {
        head_only: req.method == Some("HEAD"),
        http10,
        keep_alive: !close && (!http10 || keep_alive),
        expect_continue,
        framing,
        route: route(req.path.unwrap_or("/")),
    })
}

/// The non-empty, trimmed elements of a comma-separated header value.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

fn route(target: &str) -> Route {
    let mut path = target;
    // Absolute form (`GET http://host/path`): keep the path.
    if let Some(rest) = path
        .strip_prefix("http://")
        .or_else(|| path.strip_prefix("https://"))
    {
        path = rest.find('/').map_or("/", |i| &rest[i..]);
    }
    let path = path.split(['?', '#']).next().unwrap_or_default();
    match path {
        "/health" => Route::Health,
        "/echo" => Route::Echo,
        _ => {
            if let Some(code) = path.strip_prefix("/status/") {
                match code.parse::<u16>() {
                    Ok(code) if (200..=599).contains(&code) => Route::Status(code),
                    _ => Route::Invalid("/status/NNN needs a status in 200-599\n"),
                }
            } else if let Some(ms) = path.strip_prefix("/delay/") {
                match parse_clamped(ms, MAX_DELAY_MS) {
                    Some(ms) => Route::Delay(ms),
                    None => Route::Invalid("/delay/MS needs a number of milliseconds\n"),
                }
            } else if let Some(n) = path.strip_prefix("/bytes/") {
                match parse_clamped(n, MAX_BYTES) {
                    Some(n) => Route::Bytes(n),
                    None => Route::Invalid("/bytes/N needs a number of bytes\n"),
                }
            } else {
                Route::Default
            }
        }
    }
}

/// A decimal number, clamped to `max`; `None` unless `s` is all digits.
fn parse_clamped(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u64>().unwrap_or(u64::MAX).min(max))
}

/// The size in a chunk-size line (`1a;ext=1`), or `None` when malformed.
pub(crate) fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let digits = line[..end].trim_ascii_end();
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        n = n * 16 + u64::from(char::from(d).to_digit(16)?);
    }
    Some(n)
}

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => match status / 100 {
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            _ => "Server Error",
        },
    }
}
