//! `mock-backend`: a small HTTP/1.1 origin server for ferrule demos, the stress script and manual
//! tests. It does not use the ferrule library: only std, `httparse`, `socket2` and `ctrlc`.
//!
//! ```text
//! mock-backend [OPTIONS] PORT [PORT...]
//! cargo run --release --bin mock-backend -- 8082 8083 8084
//! cargo run --release --bin mock-backend -- --delay 200 --status 503 8085
//! ```
//!
//! Each PORT is served on `--bind ADDR` (default 127.0.0.1) and announced with one line,
//! `mock-backend listening on 127.0.0.1:8082`. Options:
//!
//! - `--delay MS`: sleep MS milliseconds before each response (not /health), to play a slow backend.
//! - `--status CODE`: answer every request except /health with CODE, to play a failing backend.
//! - `--body-size N`: the default body is N bytes instead of `hello from backend :PORT\n`.
//! - `--body-delay MS`: send each response's head, sleep MS milliseconds, then its body (so a
//!   proxy has relayed the head well before the response ends: `stress/handover.sh -d`).
//! - `--bind ADDR`: the IP address to listen on.
//!
//! Routes (any method; HEAD gets the same head without a body):
//!
//! - `/health`: 200 `ok\n`, always (ignores `--status` and `--delay`).
//! - `/echo`: the request body echoed back (Content-Length or chunked; at most 64 MiB).
//! - `/status/NNN`: status NNN (200-599) with the default body.
//! - `/delay/MS`: sleep MS milliseconds (at most 60000), then the default body.
//! - `/bytes/N`: N bytes (at most 1 GiB), streamed from a static buffer.
//! - anything else: the default body.
//!
//! Every response is `Content-Length` framed (except 204/304, which have no body), has
//! `Content-Type: text/plain`, and names the port that served it with `X-Backend: PORT`.
//!
//! Connections: one thread per connection (64 KiB stack, at most 10000 at once), blocking I/O with
//! TCP_NODELAY, keep-alive (HTTP/1.1 by default, HTTP/1.0 with `Connection: keep-alive`),
//! pipelined requests answered in order, `Expect: 100-continue` honoured, request bodies always
//! read fully, an idle read timeout of 120 s. Malformed requests get 400 (431 for an oversized head)
//! and the connection is closed. Ctrl+C or SIGTERM prints `mock-backend: stopping` and exits 0.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const USAGE: &str = "\
mock-backend: a small HTTP/1.1 backend for ferrule demos and tests

Usage: mock-backend [OPTIONS] PORT [PORT...]

Options:
  --bind ADDR       IP address to listen on (default 127.0.0.1)
  --delay MS        sleep MS milliseconds before each response, except /health (max 60000)
  --status CODE     answer every request except /health with CODE (200-599)
  --body-size N     default body of N bytes instead of \"hello from backend :PORT\\n\" (max 1 GiB)
  --body-delay MS   send the head, sleep MS milliseconds, then the body (max 60000)
  -h, --help        print this help

Routes (any method; HEAD gets the head only):
  /health           200 \"ok\\n\", always
  /echo             the request body, echoed back
  /status/NNN       status NNN (200-599)
  /delay/MS         sleep MS milliseconds (max 60000), then answer
  /bytes/N          N bytes (max 1 GiB)
  anything else     the default body
Every response carries \"X-Backend: PORT\".
";

/// Stack size of connection threads; buffers live on the heap.
const CONN_STACK: usize = 64 * 1024;
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
const MAX_BYTES: u64 = 1 << 30;
const MAX_DELAY_MS: u64 = 60_000;
const MAX_CONNS: usize = 10_000;
/// Bodies up to this size are copied behind the head so the response goes out in one write.
const INLINE_BODY: usize = 64 * 1024;
const BACKLOG: i32 = 1024;

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

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

struct Options {
    bind: IpAddr,
    ports: Vec<u16>,
    settings: Settings,
}

/// What every connection thread needs to know.
struct Settings {
    delay_ms: u64,
    status: Option<u16>,
    body_size: Option<u64>,
    /// `--body-delay`: milliseconds between a response's head and its body.
    body_delay_ms: u64,
}

/// Parses the arguments (without the program name). `Ok(None)` means `--help`.
fn parse_args(args: &[String]) -> Result<Option<Options>, String> {
    let mut opts = Options {
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        ports: Vec::new(),
        settings: Settings {
            delay_ms: 0,
            status: None,
            body_size: None,
            body_delay_ms: 0,
        },
    };
    let mut only_ports = false;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        i += 1;
        if only_ports || !arg.starts_with('-') {
            let port: u16 = arg.parse().map_err(|_| format!("invalid port '{arg}'"))?;
            if port != 0 && opts.ports.contains(&port) {
                return Err(format!("port {port} given twice"));
            }
            opts.ports.push(port);
            continue;
        }
        match arg {
            "--" => {
                only_ports = true;
                continue;
            }
            "-h" | "--help" => return Ok(None),
            _ => {}
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (arg, None),
        };
        if !matches!(
            name,
            "--bind" | "--delay" | "--status" | "--body-size" | "--body-delay"
        ) {
            return Err(format!("unknown option '{name}'"));
        }
        let value = match inline {
            Some(value) => value,
            None => {
                let value = args
                    .get(i)
                    .ok_or_else(|| format!("option {name} needs a value"))?;
                i += 1;
                value.as_str()
            }
        };
        match name {
            "--bind" => {
                opts.bind = value
                    .parse()
                    .map_err(|_| format!("--bind: '{value}' is not an IP address"))?;
            }
            "--delay" => opts.settings.delay_ms = parse_number(name, value, MAX_DELAY_MS)?,
            "--body-size" => opts.settings.body_size = Some(parse_number(name, value, MAX_BYTES)?),
            "--body-delay" => {
                opts.settings.body_delay_ms = parse_number(name, value, MAX_DELAY_MS)?;
            }
            _ => {
                let code = parse_number(name, value, 599)?;
                if code < 200 {
                    return Err(format!("{name}: '{value}' is not a status in 200-599"));
                }
                opts.settings.status = Some(code as u16);
            }
        }
    }
    if opts.ports.is_empty() {
        return Err("no PORT given".to_string());
    }
    Ok(Some(opts))
}

fn parse_number(name: &str, value: &str, max: u64) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        Ok(_) => Err(format!("{name}: '{value}' is above the maximum of {max}")),
        Err(_) => Err(format!("{name}: '{value}' is not a number")),
    }
}

// ---------------------------------------------------------------------------------------------
// Listening
// ---------------------------------------------------------------------------------------------

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            let _ = io::stdout().write_all(USAGE.as_bytes());
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("mock-backend: {msg} (try --help)");
            return ExitCode::from(2);
        }
    };

    if let Err(e) = ctrlc::set_handler(|| {
        let _ = writeln!(io::stdout(), "mock-backend: stopping");
        std::process::exit(0);
    }) {
        eprintln!("mock-backend: warning: cannot install the signal handler: {e}");
    }

    // Bind every port before serving any, so a busy port fails the whole start.
    let mut listeners = Vec::with_capacity(opts.ports.len());
    for &port in &opts.ports {
        let addr = SocketAddr::new(opts.bind, port);
        match listen(addr) {
            Ok(listener) => listeners.push(listener),
            Err(e) => {
                eprintln!("mock-backend: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }

    let settings = Arc::new(opts.settings);
    let active = Arc::new(AtomicUsize::new(0));
    let mut acceptors = Vec::with_capacity(listeners.len());
    for listener in listeners {
        let local = match listener.local_addr() {
            Ok(local) => local,
            Err(e) => {
                eprintln!("mock-backend: cannot read the listening address: {e}");
                return ExitCode::FAILURE;
            }
        };
        let _ = writeln!(io::stdout(), "mock-backend listening on {local}");
        let settings = Arc::clone(&settings);
        let active = Arc::clone(&active);
        let spawned = thread::Builder::new()
            .name(format!("accept-{}", local.port()))
            .spawn(move || accept_loop(&listener, local.port(), &settings, &active));
        match spawned {
            Ok(handle) => acceptors.push(handle),
            Err(e) => {
                eprintln!("mock-backend: cannot start the accept thread for {local}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    // The accept loops never end; Ctrl+C / SIGTERM exits the process from the handler.
    for handle in acceptors {
        let _ = handle.join();
    }
    ExitCode::SUCCESS
}

/// A listening socket with SO_REUSEADDR and a backlog large enough for wrk's connection burst.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Decrements the live connection count when the connection thread ends (or never starts).
struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn accept_loop(
    listener: &TcpListener,
    port: u16,
    settings: &Arc<Settings>,
    active: &Arc<AtomicUsize>,
) {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) => {
                if !matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) {
                    // Typically EMFILE: back off instead of spinning.
                    eprintln!("mock-backend: accept on port {port}: {e}");
                    thread::sleep(Duration::from_millis(50));
                }
                continue;
            }
        };
        if active.fetch_add(1, Ordering::Relaxed) >= MAX_CONNS {
            active.fetch_sub(1, Ordering::Relaxed);
            continue; // drops (closes) the stream
        }
        let guard = ActiveGuard(Arc::clone(active));
        let settings = Arc::clone(settings);
        let spawned = thread::Builder::new()
            .stack_size(CONN_STACK)
            .spawn(move || {
                let _guard = guard;
                serve(stream, port, &settings);
            });
        if let Err(e) = spawned {
            eprintln!("mock-backend: cannot start a connection thread: {e}");
            thread::sleep(Duration::from_millis(50));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One connection
// ---------------------------------------------------------------------------------------------

/// How a request ended a connection early.
enum Fail {
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

#[derive(Clone, Copy)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
}

#[derive(Clone, Copy)]
enum Route {
    Health,
    Echo,
    Status(u16),
    Delay(u64),
    Bytes(u64),
    Default,
    Invalid(&'static str),
}

/// What the server keeps of a parsed request head.
struct Request {
    head_only: bool,
    http10: bool,
    keep_alive: bool,
    expect_continue: bool,
    framing: Framing,
    route: Route,
}

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

fn serve(stream: TcpStream, port: u16, settings: &Settings) {
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

// ---------------------------------------------------------------------------------------------
// Parsing helpers
// ---------------------------------------------------------------------------------------------

/// Extracts framing, connection handling and route from a complete request head.
fn interpret(req: &httparse::Request) -> Result<Request, Fail> {
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
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
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

fn reason(status: u16) -> &'static str {
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
