//! The HTTP/1.1 wire as the tests see it, byte by byte: ONE head reader ([`read_head`]) and ONE
//! head parser ([`Head`]) for every client and backend of the tests, where a head ends in a
//! buffer ([`head_end`]), a raw client over a plain socket ([`Client`]), and responses read in
//! any framing ([`read_response`]: Content-Length, chunked with trailers, close-delimited,
//! bodiless).
//!
//! Nothing here is lenient on purpose: a head that never ends, a status line that is not
//! HTTP/1.x, a chunk size that is not hex are errors, so a proxy that sends them fails its test.
//! Every socket a [`Client`] opens has read and write timeouts ([`IO_TIMEOUT`]).
//!
//! Neighbours: `backend.rs` reads requests with the same reader and parser, `proxy.rs` starts
//! the proxies these clients talk to, `tls.rs` has the TLS client.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use super::IO_TIMEOUT;

// ----------------------------------------------------------------------------- heads

/// The longest head [`read_head`] reads before it gives up.
const MAX_HEAD: usize = 1 << 20;

/// Reads one head (start line, fields, the empty line) from `r`, line by line: nothing after the
/// head is taken from `r` (a `BufReader` keeps what it read ahead; one of capacity 1 reads no
/// byte past the head). Empty lines before it are skipped (RFC 9112 §2.2). EOF before its end is
/// `UnexpectedEof`; a head over 1 MiB is `InvalidData`.
pub fn read_head<R: BufRead>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    // bounded: by MAX_HEAD, or the stream's end
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a whole head",
            ));
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" || line == b"\n" {
            if head.len() == line.len() {
                head.clear(); // an empty line before the head
                continue;
            }
            return Ok(head);
        }
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
        }
    }
}

/// Where the head at the start of `buf` ends (just after its empty line), once `buf` holds all
/// of it: for the backends that keep every byte they receive, and so read into a buffer.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    find(buf, b"\r\n\r\n").map(|i| i + 4)
}

/// Where `needle` first occurs in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

/// A head, parsed: its text, its start line, and its fields (names as sent, values trimmed).
/// Bytes after the head's empty line are ignored, so a whole answer may be given.
#[derive(Debug, Clone)]
pub struct Head {
    /// The head as received (lossy UTF-8), up to and with its empty line.
    pub text: String,
    /// The request line or the status line.
    pub start: String,
    pub fields: Vec<(String, String)>,
}

impl Head {
    pub fn parse(bytes: &[u8]) -> Head {
        let bytes = &bytes[..head_end(bytes).unwrap_or(bytes.len())];
        let text = String::from_utf8_lossy(bytes).into_owned();
        let (start, rest) = text.split_once("\r\n").unwrap_or((&text, ""));
        Head {
            start: start.to_string(),
            fields: parse_fields(rest.as_bytes()),
            text: text.clone(),
        }
    }

    /// [`read_head`], then [`Head::parse`]: the body (of any size) is left in `r`.
    pub fn read<R: BufRead>(r: &mut R) -> io::Result<Head> {
        read_head(r).map(|bytes| Head::parse(&bytes))
    }

    /// The first value of field `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        field_value(&self.fields, name)
    }

    /// A request line's method.
    pub fn method(&self) -> &str {
        self.start.split(' ').next().unwrap_or("")
    }

    /// A request line's target.
    pub fn target(&self) -> &str {
        self.start.split(' ').nth(1).unwrap_or("")
    }

    /// A status line's version (`1` for HTTP/1.1, `0` for HTTP/1.0) and status; an error for
    /// anything else.
    pub fn status_line(&self) -> io::Result<(u8, u16)> {
        let bad = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {:?}", self.start),
            )
        };
        let mut parts = self.start.splitn(3, ' ');
        let version = match parts.next() {
            Some("HTTP/1.1") => 1,
            Some("HTTP/1.0") => 0,
            _ => return Err(bad()),
        };
        let status = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        Ok((version, status))
    }

    /// A status line's status; 0 when the start line is not one.
    pub fn status(&self) -> u16 {
        self.status_line().map_or(0, |(_, status)| status)
    }

    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }

    /// The last transfer coding is `chunked`.
    pub fn chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().ends_with("chunked"))
    }
}

/// The first value of field `name` (case-insensitive) in `fields`.
pub fn field_value<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Every value of field `name` (case-insensitive) in `fields`, in order.
pub fn field_values<'a>(fields: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    fields
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The fields in the lines of a head after its start line (`Name: value`, CRLF-separated).
pub fn parse_fields(lines: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(lines)
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

// ----------------------------------------------------------------------------- responses

/// Reads a response from `r`; interim (1xx) responses are returned like any other.
pub fn read_response<R: BufRead>(r: &mut R, head_request: bool) -> io::Result<Response> {
    let head = Head::read(r)?;
    let (_, status) = head.status_line()?;
    let mut resp = Response {
        status,
        headers: head.fields,
        body: Vec::new(),
        chunked: false,
        close_delimited: false,
        trailers: Vec::new(),
    };
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(resp);
    }
    let te = resp
        .header("transfer-encoding")
        .map(|v| v.to_ascii_lowercase());
    if te.as_deref().is_some_and(|v| v.ends_with("chunked")) {
        resp.chunked = true;
        loop {
            let mut line = Vec::new();
            r.read_until(b'\n', &mut line)?;
            let s = String::from_utf8_lossy(&line);
            let size_str = s.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_str, 16).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, format!("bad chunk size {s:?}"))
            })?;
            if size == 0 {
                let mut trailers = Vec::new();
                loop {
                    let mut t = Vec::new();
                    r.read_until(b'\n', &mut t)?;
                    if t == b"\r\n" || t.is_empty() {
                        break;
                    }
                    trailers.extend_from_slice(&t);
                }
                resp.trailers = parse_fields(&trailers);
                break;
            }
            let start = resp.body.len();
            resp.body.resize(start + size, 0);
            r.read_exact(&mut resp.body[start..])?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        }
    } else if let Some(cl) = resp.header("content-length") {
        let n: usize = cl
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))?;
        resp.body.resize(n, 0);
        r.read_exact(&mut resp.body)?;
    } else {
        resp.close_delimited = true;
        r.read_to_end(&mut resp.body)?;
    }
    Ok(resp)
}

// ----------------------------------------------------------------------------- raw sockets

/// A raw client socket to `addr`: reads time out after `timeout`, writes after [`IO_TIMEOUT`].
pub fn raw_connect(addr: SocketAddr, timeout: Duration) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(timeout)).expect("timeout");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Reads from `s` into `got` until `done(got)` holds; panics on EOF, error or timeout.
pub fn read_until(s: &mut TcpStream, got: &mut Vec<u8>, done: impl Fn(&[u8]) -> bool) {
    let mut buf = [0u8; 4096];
    // bounded: by the socket's read timeout, or its end
    while !done(got) {
        match s.read(&mut buf) {
            Ok(0) => panic!(
                "EOF before the expected bytes; got {:?}",
                String::from_utf8_lossy(got)
            ),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "{e} before the expected bytes; got {:?}",
                String::from_utf8_lossy(got)
            ),
        }
    }
}

// ----------------------------------------------------------------------------- the client

/// A raw HTTP/1.1 client over one TCP connection.
pub struct Client {
    pub reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        Client {
            reader: BufReader::new(s),
        }
    }

    /// A new connection to `addr` from the local address `from` (its port picked by the
    /// kernel). On Linux all of 127.0.0.0/8 is the loopback, so one test can be many clients,
    /// each with an address of its own (`127.0.0.2`, `127.0.0.3`, ...).
    pub fn connect_from(addr: SocketAddr, from: std::net::IpAddr) -> Client {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).expect("socket");
        socket
            .bind(&SocketAddr::new(from, 0).into())
            .unwrap_or_else(|e| panic!("bind the client to {from}: {e}"));
        socket.connect(&addr.into()).expect("connect");
        let s: TcpStream = socket.into();
        s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        Client {
            reader: BufReader::new(s),
        }
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("send");
    }

    /// Reads one response (any framing) for a request with method `method`.
    pub fn response_to(&mut self, method: &str) -> Response {
        read_response(&mut self.reader, method == "HEAD").expect("a response")
    }

    /// Reads one response to a non-HEAD request.
    pub fn response(&mut self) -> Response {
        self.response_to("GET")
    }

    /// Reads one response, or the error that prevented it (EOF, reset, timeout).
    pub fn try_response(&mut self) -> io::Result<Response> {
        read_response(&mut self.reader, false)
    }

    /// True when the server closed the connection (EOF, or reset) within the read timeout.
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.reader.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
        }
    }

    /// Reads everything until the server closes.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        let _ = self.reader.read_to_end(&mut v);
        v
    }
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// The body was chunked on the wire.
    pub chunked: bool,
    /// The body was delimited by the connection closing.
    pub close_delimited: bool,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        field_value(&self.headers, name)
    }

    /// Every value of header `name`, in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        field_values(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `Connection: close` was announced.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.to_ascii_lowercase().contains("close"))
    }
}
