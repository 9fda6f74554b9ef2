//! The admin server's messages: a request [`Head`] (parsed with `httparse`; its body framing
//! strict: one `Content-Length` of digits, or `chunked` alone and never with a length) and a
//! [`Response`] (JSON, or text for `/metrics`), with the one error shape.

use serde_json::{json, Value};

use crate::http::framing::Framing;

/// Largest request body accepted (1 MiB); a larger one gets 413.
pub const MAX_BODY: usize = 1 << 20;
const MAX_HEADERS: usize = 64;

/// A request head.
#[derive(Debug)]
pub struct Head {
    pub method: String,
    /// The path without the query, trailing `/` removed (but for `/` itself).
    pub path: String,
    /// The request target as sent (path and query).
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// The client's address (set by the server once parsed; `None` when unknown).
    pub peer: Option<std::net::SocketAddr>,
    headers: Vec<(String, String)>,
}

impl Head {
    /// Parses a head at the start of `buf`: the head and its length, `None` while incomplete,
    /// or the answer to a malformed one.
    pub fn parse(buf: &[u8]) -> Result<Option<(Head, usize)>, Response> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut fields);
        let used = match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Response::error(431, "more than 64 header fields"));
            }
            Err(e) => return Err(Response::error(400, &format!("malformed request: {e}"))),
        };
        let headers = req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let path = path_of(req.path.unwrap_or_default()).ok_or_else(|| {
            Response::error(400, "request target: expected a path such as /backends")
        })?;
        let head = Head {
            method: req.method.unwrap_or_default().to_owned(),
            path,
            target: req.path.unwrap_or_default().to_owned(),
            version: req.version.unwrap_or(1),
            peer: None,
            headers,
        };
        Ok(Some((head, used)))
    }

    /// The first field named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every field named `name` (any case), in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn keep_alive(&self) -> bool {
        let tokens = || {
            self.all("connection")
                .flat_map(|v| v.split(','))
                .map(str::trim)
        };
        if self.version == 0 {
            tokens().any(|t| t.eq_ignore_ascii_case("keep-alive"))
        } else {
            !tokens().any(|t| t.eq_ignore_ascii_case("close"))
        }
    }

    /// How the body is framed: `Content-Length` (digits only, one value), `chunked` (HTTP/1.1
    /// only, not with a length), or none.
    pub fn framing(&self) -> Result<Framing, Response> {
        let te: Vec<&str> = self.all("transfer-encoding").collect();
        let cl: Vec<&str> = self.all("content-length").collect();
        if !te.is_empty() {
            if !cl.is_empty() {
                return Err(Response::error(
                    400,
                    "content-length: not allowed with transfer-encoding",
                ));
            }
            let chunked =
                matches!(te.as_slice(), [one] if one.trim().eq_ignore_ascii_case("chunked"));
            if !chunked || self.version == 0 {
                return Err(Response::error(
                    501,
                    "transfer-encoding: only chunked (HTTP/1.1) is supported",
                ));
            }
            return Ok(Framing::Chunked);
        }
        match cl.as_slice() {
            [] => Ok(Framing::None),
            [one] => {
                let text = one.trim();
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Response::error(400, "content-length: not a number"));
                }
                // more digits than u64 holds is over the limit too
                Ok(Framing::Length(text.parse().unwrap_or(u64::MAX)))
            }
            _ => Err(Response::error(400, "content-length: given more than once")),
        }
    }
}

/// A response: JSON unless said otherwise.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// `value` as JSON, with a final newline.
    pub fn json(status: u16, value: &Value) -> Response {
        let mut body = value.to_string().into_bytes();
        body.push(b'\n');
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body,
        }
    }

    /// The one error shape: `{"error": "..."}`.
    pub fn error(status: u16, message: &str) -> Response {
        Response::json(status, &json!({ "error": message }))
    }

    pub fn text(status: u16, content_type: &'static str, body: String) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into_bytes(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }

    /// The response on the wire, with `Date`; `keep` false adds `Connection: close`; `is_head`
    /// leaves the body out (its length stays).
    pub fn to_bytes(&self, keep: bool, is_head: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        // RFC 9110 §6.6.1; the admin server is not a hot path: the clock is read per answer
        let date = crate::http::date::imf_fixdate(crate::http::date::unix_now());
        out.push_str("Date: ");
        out.push_str(&String::from_utf8_lossy(&date));
        out.push_str("\r\n");
        for (name, value) in &self.headers {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(value);
            out.push_str("\r\n");
        }
        if !keep {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !is_head {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

/// 413, for a body over [`MAX_BODY`].
pub fn too_large() -> Response {
    Response::error(413, &format!("body: larger than {MAX_BODY} bytes (1 MiB)"))
}

/// The path of a request target (origin form, or absolute form): without the query, without a
/// trailing `/`. `None` for anything else (`*`, an authority).
fn path_of(target: &str) -> Option<String> {
    let path = if target.starts_with('/') {
        target
    } else {
        let (_, rest) = target.split_once("://")?;
        rest.find('/').map_or("/", |i| &rest[i..])
    };
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let trimmed = path.trim_end_matches('/');
    Some(if trimmed.is_empty() { "/" } else { trimmed }.to_owned())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lose_their_query_and_trailing_slash() {
        assert_eq!(path_of("/backends/?x=1").as_deref(), Some("/backends"));
        assert_eq!(path_of("/").as_deref(), Some("/"));
        assert_eq!(path_of("//").as_deref(), Some("/"));
        assert_eq!(path_of("http://h:1/stats").as_deref(), Some("/stats"));
        assert_eq!(path_of("http://h:1").as_deref(), Some("/"));
        assert_eq!(path_of("*"), None);
    }

    fn head(version: u8, fields: &[(&str, &str)]) -> Head {
        Head {
            method: "POST".into(),
            path: "/".into(),
            target: "/".into(),
            version,
            peer: None,
            headers: fields
                .iter()
                .map(|(n, v)| ((*n).into(), (*v).into()))
                .collect(),
        }
    }

    #[test]
    fn framing_is_strict() {
        let f = |fields: &[(&str, &str)]| head(1, fields).framing().map_err(|r| r.status);
        assert_eq!(f(&[]), Ok(Framing::None));
        assert_eq!(f(&[("Content-Length", "12")]), Ok(Framing::Length(12)));
        assert_eq!(
            f(&[("content-length", "99999999999999999999999")]),
            Ok(Framing::Length(u64::MAX))
        );
        assert_eq!(f(&[("Content-Length", "-1")]), Err(400));
        assert_eq!(
            f(&[("Content-Length", "1"), ("Content-Length", "1")]),
            Err(400)
        );
        assert_eq!(f(&[("Transfer-Encoding", "chunked")]), Ok(Framing::Chunked));
        assert_eq!(f(&[("Transfer-Encoding", "gzip, chunked")]), Err(501));
        let both = [("Transfer-Encoding", "chunked"), ("Content-Length", "3")];
        assert_eq!(f(&both), Err(400));
        let old = head(0, &[("Transfer-Encoding", "chunked")]);
        assert_eq!(old.framing().map_err(|r| r.status), Err(501));
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection() {
        assert!(head(1, &[]).keep_alive());
        assert!(!head(1, &[("Connection", "foo, Close")]).keep_alive());
        assert!(!head(0, &[]).keep_alive());
        assert!(head(0, &[("Connection", "keep-alive")]).keep_alive());
    }
}
