//! One `mock-backend` connection: a blocking socket on its own thread, its input buffer, reading
//! request heads (with `httparse`), bodies and chunks, and writing responses (`Content-Length`
//! framed; `/bytes/N` streamed from a static pattern), keep-alive and pipelining, then a lingering
//! close.
//!
//! Neighbours: `main.rs` (accepting), `args.rs` ([`Settings`]), `request.rs` (what a parsed head
//! says, and the small parsers).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::args::Settings;
use crate::request::{interpret, parse_chunk_size, reason, Framing, Request, Route};

/// Connections idle (or stalled mid-request) this long are closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// A client that does not read its response for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long to drain unread input after the last response before closing.
const LINGER: Duration = Duration::from_millis(500);
const INITIAL_BUF: usize = 8 * 1024;
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;
const MAX_LINE: usize = 4 * 1024;
const MAX_ECHO: u64 = 64 * 1024 * 1024;
/// Bodies up to this size are copied behind the head so the response goes out in one write.
const INLINE_BODY: usize = 64 * 1024;

const PATTERN_LEN: usize = 64 * 1024;

/// Lines of 63 letters and a newline; `/bytes/N` and `--body-size` bodies repeat it.
static PATTERN: [u8; PATTERN_LEN] = make_pattern();

const fn make_pattern() -> [u8; PATTERN_LEN] {
    let mut p = [0u8; PATTERN_LEN];
    let mut i = 0;
    while i < PATTERN_LEN {
        p[i] = if i % 64 == 63 {
            b'\n'
        } else {
            b'a' + (i % 64 % 26) as u8
        };
        i += 1;
    }
    p
}

/// How a request ended a connection early.
pub(crate) enum Fail {
    /// The peer went away, timed out or an I/O error happened: just drop the connection.
    Closed,
    /// Answer with this status and message, then close.
    Reply(u16, &'static str),
}

impl From<io::Error> for Fail {
    fn from(_: io::Error) -> Self {
        Fail::Closed
    }
}

const BAD_CHUNKED: Fail = Fail::Reply(400, "malformed chunked body\n");
const ECHO_TOO_LARGE: Fail = Fail::Reply(413, "request body too large to echo\n");

/// A response body.
#[derive(Clone, Copy)]
enum Body {
    Static(&'static [u8]),
    /// `hello from backend :PORT\n`
    Text,
    /// The request body read into `Conn::echo`.
    Echo,
    /// N bytes of `PATTERN`.
    Pattern(u64),
}

struct Conn<'a> {
    stream: TcpStream,
    settings: &'a Settings,
    /// Input buffer; `buf[start..end]` is received but not yet consumed.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Output buffer for response heads (and small bodies).
    out: Vec<u8>,
    /// The request body when echoing.
    echo: Vec<u8>,
    default_text: Vec<u8>,
    backend_header: Vec<u8>,
}

pub(crate) fn serve(stream: TcpStream, port: u16, settings: &Settings) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut conn = Conn {
        stream,
        settings,
        buf: vec![0; INITIAL_BUF],
        start: 0,
        end: 0,
        out: Vec::with_capacity(1024),
        echo: Vec::new(),
        default_text: format!("hello from backend :{port}\n").into_bytes(),
        backend_header: format!("X-Backend: {port}\r\n").into_bytes(),
    };
    match conn.run() {
        Ok(()) => conn.close(),
        Err(Fail::Reply(status, msg)) => {
            if conn
                .write_response(
                    status,
                    Body::Static(msg.as_bytes()),
                    false,
                    "Connection: close\r\n",
                )
                .is_ok()
            {
                conn.close();
            }
        }
        Err(Fail::Closed) => {}
    }
}

impl Conn<'_> {
    /// Answers requests until one asks to close (`Ok`) or something goes wrong (`Err`).
    fn run(&mut self) -> Result<(), Fail> {
        loop {
            let Some(req) = self.read_request()? else {
                return Err(Fail::Closed);
            };
            let echo = matches!(req.route, Route::Echo);
            if let (true, Framing::Length(n)) = (echo, req.framing) {
                if n > MAX_ECHO {
                    return Err(ECHO_TOO_LARGE);
                }
            }
            if req.expect_continue && !req.http10 && !matches!(req.framing, Framing::Empty) {
                self.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            }
            self.echo.clear();
            match req.framing {
                Framing::Empty => {}
                Framing::Length(n) => self.read_body(n, echo)?,
                Framing::Chunked => self.read_chunked(echo)?,
            }
            self.respond(&req)?;
            if self.echo.capacity() > 1 << 20 {
                self.echo = Vec::new();
            }
            if !req.keep_alive {
                return Ok(());
            }
        }
    }

    /// Reads more input into `buf[end..]`, compacting or growing the buffer when it is full.
    /// Returns 0 at end of stream.
    fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                let len = (self.buf.len() * 2).min(MAX_HEAD);
                if len <= self.buf.len() {
                    return Err(io::Error::other("input buffer full"));
                }
                self.buf.resize(len, 0);
            }
        }
        loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads and parses the next request head. `Ok(None)`: the client closed between requests.
    fn read_request(&mut self) -> Result<Option<Request>, Fail> {
        loop {
            if self.start < self.end {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut req = httparse::Request::new(&mut headers);
                match req.parse(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete(len)) => {
                        let request = interpret(&req)?;
                        self.start += len;
                        return Ok(Some(request));
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.end - self.start >= MAX_HEAD {
                            return Err(Fail::Reply(431, "request head too large\n"));
                        }
                    }
                    Err(httparse::Error::TooManyHeaders) => {
                        return Err(Fail::Reply(431, "too many header fields\n"));
                    }
                    Err(_) => return Err(Fail::Reply(400, "malformed request\n")),
                }
            }
            let buffered = self.end - self.start;
            if self.fill()? == 0 {
                return if buffered == 0 {
                    Ok(None)
                } else {
                    Err(Fail::Closed)
                };
            }
        }
    }

    /// Consumes `n` body bytes, appending them to `echo` when `keep`.
    fn read_body(&mut self, mut n: u64, keep: bool) -> Result<(), Fail> {
        while n > 0 {
            if self.start == self.end && self.fill()? == 0 {
                return Err(Fail::Closed);
            }
            let take = (self.end - self.start).min(usize::try_from(n).unwrap_or(usize::MAX));
            if keep {
                if (self.echo.len() + take) as u64 > MAX_ECHO {
                    return Err(ECHO_TOO_LARGE);
                }
                self.echo
                    .extend_from_slice(&self.buf[self.start..self.start + take]);
            }
            self.start += take;
            n -= take as u64;
        }
        Ok(())
    }

    /// Consumes a chunked body (chunks, last chunk, trailer section).
    fn read_chunked(&mut self, keep: bool) -> Result<(), Fail> {
        loop {
            let (a, b) = self.read_line()?;
            let size = parse_chunk_size(&self.buf[a..b]).ok_or(BAD_CHUNKED)?;
            if size == 0 {
                break;
            }
            if keep && self.echo.len() as u64 + size > MAX_ECHO {
                return Err(ECHO_TOO_LARGE);
            }
            self.read_body(size, keep)?;
            let (a, b) = self.read_line()?;
            if a != b {
                return Err(BAD_CHUNKED);
            }
        }
        loop {
            let (a, b) = self.read_line()?;
            if a == b {
                return Ok(());
            }
        }
    }

    /// Consumes one line and returns its bounds in `buf`, without the CRLF (or bare LF).
    /// The bounds stay valid until the next read from the socket.
    fn read_line(&mut self) -> Result<(usize, usize), Fail> {
        loop {
            let pending = &self.buf[self.start..self.end];
            if let Some(i) = pending.iter().position(|&b| b == b'\n') {
                let a = self.start;
                let mut b = a + i;
                self.start = b + 1;
                if b > a && self.buf[b - 1] == b'\r' {
                    b -= 1;
                }
                return Ok((a, b));
            }
            if pending.len() > MAX_LINE {
                return Err(BAD_CHUNKED);
            }
            if self.fill()? == 0 {
                return Err(Fail::Closed);
            }
        }
    }

    /// Picks status and body for a request whose body has been read, and sends the response.
    fn respond(&mut self, req: &Request) -> io::Result<()> {
        let settings = self.settings;
        let default_body = match settings.body_size {
            Some(n) => Body::Pattern(n),
            None => Body::Text,
        };
        let mut delay = settings.delay_ms;
        let (mut status, body) = match req.route {
            Route::Health => {
                delay = 0;
                (200, Body::Static(b"ok\n"))
            }
            Route::Echo => (200, Body::Echo),
            Route::Status(code) => (code, default_body),
            Route::Delay(ms) => {
                delay = delay.saturating_add(ms);
                (200, default_body)
            }
            Route::Bytes(n) => (200, Body::Pattern(n)),
            Route::Default => (200, default_body),
            Route::Invalid(msg) => (400, Body::Static(msg.as_bytes())),
        };
        if let Some(forced) = settings.status {
            if !matches!(req.route, Route::Health) {
                status = forced;
            }
        }
        if delay > 0 {
            thread::sleep(Duration::from_millis(delay));
        }
        let connection = if !req.keep_alive {
            "Connection: close\r\n"
        } else if req.http10 {
            "Connection: keep-alive\r\n"
        } else {
            ""
        };
        self.write_response(status, body, req.head_only, connection)
    }

    /// Writes head and body, in one write when the body is small.
    fn write_response(
        &mut self,
        status: u16,
        body: Body,
        head_only: bool,
        connection: &str,
    ) -> io::Result<()> {
        let bodiless = status == 204 || status == 304;
        let (slice, len): (&[u8], u64) = match body {
            Body::Static(s) => (s, s.len() as u64),
            Body::Text => (&self.default_text, self.default_text.len() as u64),
            Body::Echo => (&self.echo, self.echo.len() as u64),
            Body::Pattern(n) => (&[], n),
        };
        self.out.clear();
        write!(self.out, "HTTP/1.1 {status} {}\r\n", reason(status))?;
        if !bodiless {
            write!(
                self.out,
                "Content-Type: text/plain\r\nContent-Length: {len}\r\n"
            )?;
        }
        self.out.extend_from_slice(&self.backend_header);
        self.out.extend_from_slice(connection.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        if bodiless || head_only {
            return self.stream.write_all(&self.out);
        }
        if self.settings.body_delay_ms > 0 && len > 0 {
            // the head alone, then the body after a pause
            self.stream.write_all(&self.out)?;
            self.out.clear();
            thread::sleep(Duration::from_millis(self.settings.body_delay_ms));
        }
        if let Body::Pattern(n) = body {
            let mut left = n;
            let first = left.min(PATTERN_LEN as u64) as usize;
            self.out.extend_from_slice(&PATTERN[..first]);
            left -= first as u64;
            self.stream.write_all(&self.out)?;
            while left > 0 {
                let k = left.min(PATTERN_LEN as u64) as usize;
                self.stream.write_all(&PATTERN[..k])?;
                left -= k as u64;
            }
            Ok(())
        } else if slice.len() <= INLINE_BODY {
            self.out.extend_from_slice(slice);
            self.stream.write_all(&self.out)
        } else {
            self.stream.write_all(&self.out)?;
            self.stream.write_all(slice)
        }
    }

    /// Closes after the last response: half-close, then drain input briefly so unread request
    /// bytes do not make the kernel reset the connection before the client reads the response.
    fn close(mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        let _ = self.stream.set_read_timeout(Some(LINGER));
        let deadline = Instant::now() + LINGER;
        let mut drained = 0;
        while let Ok(n) = self.stream.read(&mut self.buf) {
            drained += n;
            if n == 0 || drained > 1 << 20 || Instant::now() >= deadline {
                break;
            }
        }
    }
}
