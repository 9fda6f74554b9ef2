//! Shared helpers for the integration tests: start ferrule in-process on 127.0.0.1:0 or as a child
//! process (the `ferrule` binary, also on port 0, its real ports read from its log), start real
//! backends on 127.0.0.1:0, and talk raw HTTP/1.1 over plain sockets so every byte is visible.
//!
//! Every blocking read has a timeout, so a broken proxy fails a test instead of hanging it; every
//! child process is stopped by its PID.
//!
//! Test backends answer ferrule's active health checks (requests with `User-Agent:
//! ferrule-health`, see [`is_health_probe`]) with `200` and leave them out of what they record, so
//! counts of requests and connections at a backend are the proxy's traffic only.

#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use socket2::{Domain, Socket, Type};

pub mod h2;
pub mod tls;

/// How long any single read in a test may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The `User-Agent` of ferrule's active health checks (`GET health_check_path`).
pub const HEALTH_CHECK_USER_AGENT: &str = "ferrule-health";

/// Whether header fields `fields` are those of one of ferrule's health probes: the `User-Agent`
/// is `ferrule-health` (or `ferrule-health/VERSION`). The path is not looked at, since it is
/// configurable (`health_check_path`).
pub fn is_health_probe(fields: &[(String, String)]) -> bool {
    field_value(fields, "user-agent").is_some_and(|ua| {
        ua.eq_ignore_ascii_case(HEALTH_CHECK_USER_AGENT)
            || ua
                .get(..HEALTH_CHECK_USER_AGENT.len() + 1)
                .is_some_and(|p| p.eq_ignore_ascii_case("ferrule-health/"))
    })
}

/// Like [`is_health_probe`], for a raw request head (request line, fields, empty line).
pub fn head_is_health_probe(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let fields = text.split_once("\r\n").map_or("", |(_, rest)| rest);
    is_health_probe(&parse_fields(fields.as_bytes()))
}

/// The answer test backends give a health probe: `200`, keep-alive.
pub const HEALTH_PROBE_ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";

// ----------------------------------------------------------------------------- the proxy

/// A ferrule instance running in this process.
pub struct Proxy {
    pub handle: ferrule::Handle,
}

impl Proxy {
    /// Starts ferrule in front of `backends` (as `http://ADDR`), with 2 workers, ports 0 and
    /// `extra` merged into the config.
    pub fn start(backends: &[SocketAddr], extra: Value) -> Proxy {
        let list: Vec<Value> = backends
            .iter()
            .map(|a| json!({"url": format!("http://{a}"), "weight": 1}))
            .collect();
        let mut cfg = json!({
            "port": 0,
            "admin_port": 0,
            "bind": "127.0.0.1",
            "workers": 2,
            "backends": list,
        });
        if let (Some(map), Value::Object(more)) = (cfg.as_object_mut(), extra) {
            for (k, v) in more {
                map.insert(k, v);
            }
        }
        Proxy::from_json(&cfg.to_string())
    }

    /// A proxy from config text; without an `access_log` key the access log is off (in-process
    /// proxies would write it into the test harness's output).
    pub fn from_json(text: &str) -> Proxy {
        let mut value: Value = serde_json::from_str(text).expect("test config is JSON");
        if let Some(map) = value.as_object_mut() {
            map.entry("access_log").or_insert(Value::Bool(false));
        }
        let config =
            ferrule::Config::from_json_str(&value.to_string()).expect("test config is valid");
        let handle = ferrule::start(&config).expect("proxy starts");
        Proxy { handle }
    }

    pub fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    pub fn admin(&self) -> SocketAddr {
        self.handle.admin_addr()
    }

    /// A new raw client connection to the proxy.
    pub fn connect(&self) -> Client {
        Client::connect(self.addr())
    }

    /// `GET path` on a fresh connection; returns the response.
    pub fn get(&self, path: &str) -> Response {
        let mut c = self.connect();
        c.send(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        c.response()
    }

    /// `GET path` on the admin API, parsed as JSON.
    pub fn admin_get(&self, path: &str) -> Value {
        admin_get_at(self.admin(), path)
    }
}

/// `GET path` on the admin API at `admin`, parsed as JSON.
pub fn admin_get_at(admin: SocketAddr, path: &str) -> Value {
    let mut c = Client::connect(admin);
    c.send(format!("GET {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n").as_bytes());
    let r = c.response();
    assert_eq!(r.status, 200, "admin GET {path}: {r:?}");
    serde_json::from_slice(&r.body).expect("admin answers JSON")
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

    pub fn shutdown_write(&self) {
        let _ = self.stream().shutdown(Shutdown::Write);
    }
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub version: u8,
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

fn read_head<R: BufRead>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a head",
            ));
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" || line == b"\n" {
            if head.len() == line.len() {
                head.clear(); // tolerate a leading empty line
                continue;
            }
            return Ok(head);
        }
        if head.len() > 1 << 20 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
        }
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

fn parse_fields(lines: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(lines)
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// Reads a response from `r`; interim (1xx) responses are returned like any other.
pub fn read_response<R: BufRead>(r: &mut R, head_request: bool) -> io::Result<Response> {
    let head = read_head(r)?;
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = match parts.next() {
        Some("HTTP/1.1") => 1,
        Some("HTTP/1.0") => 0,
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {other:?}"),
            ))
        }
    };
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status"))?;
    let rest: Vec<&str> = lines.collect();
    let headers = parse_fields(rest.join("\r\n").as_bytes());
    let mut resp = Response {
        status,
        version,
        headers,
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

// ----------------------------------------------------------------------------- backends

/// What a backend saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The head exactly as received.
    pub head: String,
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// The raw bytes of the body as received (chunk framing included).
    pub raw_body: Vec<u8>,
    /// Which connection (0-based, in the order of their first request that is not a health probe)
    /// carried it.
    pub conn: usize,
}

impl Seen {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        field_value(&self.headers, name)
    }

    /// Every value of header `name`, in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        field_values(&self.headers, name)
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// One of ferrule's active health checks (see [`is_health_probe`]).
    pub fn is_health_probe(&self) -> bool {
        is_health_probe(&self.headers)
    }
}

/// Shared record of what a [`Backend`] received, **health probes excluded**.
///
/// ferrule's active health checks (`GET health_check_path` with `User-Agent: ferrule-health`, see
/// [`is_health_probe`]) come at any time, on connections of their own. A backend answers each
/// `200` without running its handler and records it only in `health_probes`: `requests` holds
/// every other request, and `connections` counts only connections that carried at least one of
/// them. So exact counts (`count() == 100`, `connections() == 1`, `requests()[0]`) are the
/// proxy's traffic alone, whether or not health checks run.
#[derive(Default)]
pub struct Record {
    /// Connections that carried a request that is not a health probe.
    pub connections: AtomicUsize,
    /// Every request that is not a health probe, in arrival order.
    pub requests: Mutex<Vec<Seen>>,
    /// Health probes answered (and not recorded in `requests`).
    pub health_probes: AtomicUsize,
}

impl Record {
    /// Connections that carried a request that is not a health probe.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Every request except health probes, in arrival order.
    pub fn requests(&self) -> Vec<Seen> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// How many requests (health probes excluded) arrived.
    pub fn count(&self) -> usize {
        self.requests.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// How many health probes were answered.
    pub fn health_probes(&self) -> usize {
        self.health_probes.load(Ordering::SeqCst)
    }
}

/// How a [`Backend`] answers one request (health probes never reach it).
pub type Handler = dyn Fn(&Seen, &mut TcpStream) -> Reply + Send + Sync;

/// What the backend does after a handler ran.
pub enum Reply {
    /// Write these bytes and keep the connection for the next request.
    Bytes(Vec<u8>),
    /// Write these bytes and close.
    Close(Vec<u8>),
    /// The handler wrote (or did not write) everything itself; keep the connection.
    Handled,
    /// Close without writing anything.
    Drop,
}

/// A real HTTP/1.1 backend on 127.0.0.1:0, thread per connection, recording every request but
/// health probes (which it answers `200` itself; see [`Record`]).
pub struct Backend {
    pub addr: SocketAddr,
    pub record: Arc<Record>,
    pub name: String,
}

impl Backend {
    /// A backend that answers `200` with body `backend NAME` (or echoes the request body for
    /// `/echo`), `X-Backend: NAME`, keep-alive.
    pub fn start(name: &str) -> Backend {
        let n = name.to_string();
        Backend::with_handler(name, move |req, _| {
            let body = if req.target.starts_with("/echo") {
                req.body.clone()
            } else {
                format!("backend {n}").into_bytes()
            };
            Reply::Bytes(ok_response(&n, &body))
        })
    }

    /// A backend whose responses come from `handler`.
    pub fn with_handler<F>(name: &str, handler: F) -> Backend
    where
        F: Fn(&Seen, &mut TcpStream) -> Reply + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        Backend::on(listener, name, handler)
    }

    /// A [`Backend::start`] one listening on `listener` (bound where the test needs it).
    pub fn start_on(listener: TcpListener, name: &str) -> Backend {
        let n = name.to_string();
        Backend::on(listener, name, move |_, _| {
            Reply::Bytes(ok_response(&n, format!("backend {n}").as_bytes()))
        })
    }

    /// A [`Backend::with_handler`] one listening on `listener` (bound where the test needs it).
    pub fn on<F>(listener: TcpListener, name: &str, handler: F) -> Backend
    where
        F: Fn(&Seen, &mut TcpStream) -> Reply + Send + Sync + 'static,
    {
        let addr = listener.local_addr().expect("addr");
        let record = Arc::new(Record::default());
        let rec = Arc::clone(&record);
        let handler: Arc<Handler> = Arc::new(handler);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let rec = Arc::clone(&rec);
                let handler = Arc::clone(&handler);
                thread::spawn(move || serve_conn(stream, &rec, &*handler));
            }
        });
        Backend {
            addr,
            record,
            name: name.to_string(),
        }
    }
}

/// `200 OK` with `X-Backend` and a Content-Length body.
pub fn ok_response(name: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 200 OK\r\nX-Backend: {name}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

fn serve_conn(stream: TcpStream, rec: &Record, handler: &Handler) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    // numbered at its first request that is not a health probe
    let mut conn: Option<usize> = None;
    loop {
        let Ok(mut seen) = read_request(&mut reader, conn.unwrap_or(usize::MAX)) else {
            return;
        };
        if seen.is_health_probe() {
            rec.health_probes.fetch_add(1, Ordering::SeqCst);
            if writer.write_all(HEALTH_PROBE_ANSWER).is_err() {
                return;
            }
            continue;
        }
        seen.conn = *conn.get_or_insert_with(|| rec.connections.fetch_add(1, Ordering::SeqCst));
        if let Ok(mut r) = rec.requests.lock() {
            r.push(seen.clone());
        }
        match handler(&seen, &mut writer) {
            Reply::Bytes(b) => {
                if writer.write_all(&b).is_err() {
                    return;
                }
            }
            Reply::Close(b) => {
                let _ = writer.write_all(&b);
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            Reply::Handled => {}
            Reply::Drop => {
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// Reads one request (head and body, any framing) the way a strict backend would.
pub fn read_request(r: &mut BufReader<TcpStream>, conn: usize) -> io::Result<Seen> {
    let head = read_head(r)?;
    let text = String::from_utf8_lossy(&head).into_owned();
    let (line, rest) = text.split_once("\r\n").unwrap_or((&text, ""));
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let headers = parse_fields(rest.as_bytes());
    let mut seen = Seen {
        head: text.clone(),
        method,
        target,
        headers,
        body: Vec::new(),
        raw_body: Vec::new(),
        conn,
    };
    let chunked = seen
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        loop {
            let mut line = Vec::new();
            r.read_until(b'\n', &mut line)?;
            seen.raw_body.extend_from_slice(&line);
            let s = String::from_utf8_lossy(&line);
            let size = usize::from_str_radix(s.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk"))?;
            if size == 0 {
                loop {
                    let mut t = Vec::new();
                    r.read_until(b'\n', &mut t)?;
                    seen.raw_body.extend_from_slice(&t);
                    if t == b"\r\n" || t.is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut data = vec![0u8; size + 2];
            r.read_exact(&mut data)?;
            seen.raw_body.extend_from_slice(&data);
            seen.body.extend_from_slice(&data[..size]);
        }
    } else if let Some(cl) = seen.header("content-length") {
        let n: usize = cl
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad length"))?;
        if seen
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        {
            r.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        seen.body.resize(n, 0);
        r.read_exact(&mut seen.body)?;
        seen.raw_body = seen.body.clone();
    }
    Ok(seen)
}

/// An address where connections are refused for as long as this value lives: a socket bound to
/// it that never listens (a SYN to it gets a reset). Holding the port bound keeps anyone else
/// from taking it meanwhile, which a port that was merely free once would not.
///
/// Keep it alive for the whole test: `let dead = dead_addr();` and pass `dead.addr`, not
/// `dead_addr().addr` (the temporary, and with it the guarantee, would be gone at once).
#[must_use = "the address is refused only while the DeadAddr lives"]
pub struct DeadAddr {
    pub addr: SocketAddr,
    _socket: Socket,
}

/// A fresh [`DeadAddr`] on 127.0.0.1.
pub fn dead_addr() -> DeadAddr {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    socket.bind(&any.into()).expect("bind");
    let addr = socket
        .local_addr()
        .expect("local addr")
        .as_socket()
        .expect("an inet address");
    // bound, never listening: connects to it are refused
    DeadAddr {
        addr,
        _socket: socket,
    }
}

/// The admin API's entry for the backend at `addr` in a `GET /backends` answer.
pub fn backend_entry(backends: &Value, addr: SocketAddr) -> Value {
    let url = format!("http://{addr}");
    backends["backends"]
        .as_array()
        .expect("\"backends\" is an array")
        .iter()
        .find(|b| b["url"] == url.as_str())
        .unwrap_or_else(|| panic!("{url} is listed in {backends}"))
        .clone()
}

// ----------------------------------------------------------------------------- child processes

/// `N` distinct ports that were free a moment ago (the listeners are dropped before returning).
///
/// Racy by nature: between this call and the moment the port is bound again, anything else on
/// the machine (another test, say) may take it, and the start fails. Use it only when a test must
/// know a port number before a process starts (a port given on a command line, two processes on
/// one port); everywhere else bind port 0 and ask, as [`Proxy`] and [`ProxyProcess`] do. The
/// window is a few milliseconds and the kernel hands out ports for port 0 in no simple order, so
/// a collision is rare, but possible.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    let mut ports = [0u16; N];
    for (p, l) in ports.iter_mut().zip(&listeners) {
        *p = l.local_addr().expect("addr").port();
    }
    ports
}

/// A fresh, empty temporary directory for this test binary and `name`.
pub fn fresh_temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ferrule-{}-{}-{name}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A child process that is killed (by its PID) if the test ends while it still runs.
pub struct ChildGuard(pub Child);

impl ChildGuard {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits up to `limit` for the child to exit; `None` if it is still running.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM to the child's PID.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", self.pid());
    }

    /// Kills the child (SIGKILL to its PID) and reaps it, if it still runs.
    fn kill(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Lines of a child's output stream, read on a thread so the child never blocks on a full pipe.
pub fn line_channel<R: Read + Send + 'static>(stream: R) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (up to `limit`) for a line containing `needle`; returns it, or panics with what was seen.
pub fn wait_for_line(rx: &mpsc::Receiver<String>, needle: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(line) => seen.push(line),
            Err(e) => panic!("no line containing {needle:?} ({e:?}); saw {seen:?}"),
        }
    }
}

/// The `ferrule` binary running as a child process, killed (by its PID) when dropped.
pub struct ProxyProcess {
    child: ChildGuard,
    /// The port it serves clients on (from its "listening on" line).
    pub port: u16,
    /// The port of its admin API (from its "admin API on" line).
    pub admin_port: u16,
    /// The line it logged when it began listening.
    pub listening: String,
    dir: PathBuf,
    /// Its stderr lines; kept open so the child never blocks on a full pipe.
    stderr: mpsc::Receiver<String>,
}

/// The address in a log line `... MARKER SCHEME://ADDR ...`, e.g. `listening on
/// http://127.0.0.1:PORT with N workers`.
fn logged_addr(line: &str, marker: &str) -> SocketAddr {
    line.split_once(marker)
        .and_then(|(_, rest)| rest.trim_start().split_once("://"))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address after {marker:?} in {line:?}"))
}

impl ProxyProcess {
    /// Runs `ferrule config.json`, with `config` written to a fresh temporary directory named
    /// after `name`. `port` and `admin_port` (`0`: the kernel picks free ones) and `bind`
    /// (`127.0.0.1`) are filled in where `config` does not set them. Returns once ferrule has
    /// logged both "listening on http://ADDR" and "admin API on http://ADDR" (within 10 s; both
    /// come before it serves), with the ports read from those lines.
    pub fn start(config: Value, name: &str) -> ProxyProcess {
        let mut cfg = json!({
            "port": 0,
            "admin_port": 0,
            "bind": "127.0.0.1",
        });
        if let (Some(map), Value::Object(given)) = (cfg.as_object_mut(), config) {
            map.extend(given);
        }
        let port_of = |key: &str| -> u16 {
            cfg[key]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or_else(|| panic!("{key} is a port number in {cfg}"))
        };
        let (asked_port, asked_admin_port) = (port_of("port"), port_of("admin_port"));

        let dir = fresh_temp_dir(name);
        let path = dir.join("config.json");
        std::fs::write(&path, cfg.to_string()).expect("write config");
        let child = Command::new(env!("CARGO_BIN_EXE_ferrule"))
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ferrule");
        let mut child = ChildGuard(child);
        let stderr = line_channel(child.0.stderr.take().expect("stderr"));
        // built before the wait, so a proxy that never listens is still killed and cleaned up
        let mut proxy = ProxyProcess {
            child,
            port: 0,
            admin_port: 0,
            listening: String::new(),
            dir,
            stderr,
        };
        let limit = Instant::now() + Duration::from_secs(10);
        let left = || limit.saturating_duration_since(Instant::now());
        proxy.listening = wait_for_line(&proxy.stderr, "listening on", left());
        let admin_line = wait_for_line(&proxy.stderr, "admin API on", left());
        proxy.port = logged_addr(&proxy.listening, "listening on").port();
        proxy.admin_port = logged_addr(&admin_line, "admin API on").port();
        for (what, asked, got) in [
            ("port", asked_port, proxy.port),
            ("admin_port", asked_admin_port, proxy.admin_port),
        ] {
            assert!(
                got != 0 && (asked == 0 || asked == got),
                "{what} {asked} in the config, {got} in the log"
            );
        }
        proxy
    }

    /// Where it serves clients.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Where its admin API is.
    pub fn admin_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.admin_port))
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// The config file it was started with (a test may rewrite it and reload).
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// Sends SIGTERM to the proxy's PID.
    pub fn terminate(&self) {
        self.child.terminate();
    }

    /// Waits up to `limit` for the proxy to exit; `None` if it is still running.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.child.wait_for(limit)
    }

    /// The lines of the proxy's log that arrived since the last wait (without waiting).
    pub fn log_so_far(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    /// Waits (up to `limit`) for a line of the proxy's log containing `needle` and returns it;
    /// panics with the lines seen meanwhile. Lines are read once: a line seen here, or skipped
    /// by an earlier wait, is not seen again.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> String {
        wait_for_line(&self.stderr, needle, limit)
    }

    /// Peak and current resident memory of the proxy process.
    pub fn memory(&self) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .map(|kib| kib * 1024)
                .unwrap_or_else(|| panic!("no {name} in /proc/<pid>/status"))
        };
        Memory {
            peak: field("VmHWM:"),
            current: field("VmRSS:"),
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        self.child.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A process's resident memory, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// `VmHWM`: the peak resident set size so far, in bytes.
    pub peak: u64,
    /// `VmRSS`: the resident set size now, in bytes.
    pub current: u64,
}

/// The admin API's `active_connections` of the backend at `addr`.
pub fn active_connections(proxy: &Proxy, addr: SocketAddr) -> u64 {
    let entry = backend_entry(&proxy.admin_get("/backends"), addr);
    entry["active_connections"]
        .as_u64()
        .unwrap_or_else(|| panic!("no active_connections in {entry}"))
}

/// How long [`slow_backend`] takes to answer `GET /slow`.
pub const SLOW_BACKEND_DELAY: Duration = Duration::from_secs(5);

/// How long [`wait_until_released`] waits before it fails the test: well below
/// [`SLOW_BACKEND_DELAY`], so a release that only came with the slow backend's answer never
/// counts as a release.
pub const RELEASE_LIMIT: Duration = Duration::from_secs(4);

/// Polls the admin API (nothing else signals it) until the backend at `addr` has no request in
/// flight; returns how long that took after `since`. Panics after [`RELEASE_LIMIT`].
pub fn wait_until_released(proxy: &Proxy, addr: SocketAddr, since: std::time::Instant) -> Duration {
    let limit = since + RELEASE_LIMIT;
    loop {
        let n = active_connections(proxy, addr);
        if n == 0 {
            return since.elapsed();
        }
        assert!(
            std::time::Instant::now() < limit,
            "active_connections still {n} {RELEASE_LIMIT:?} later"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// A backend that, for `GET /slow`, reports on the returned channel that the request arrived and
/// then takes [`SLOW_BACKEND_DELAY`] (5 s) to answer; every answer's body is `answer to TARGET`.
///
/// The delay is long on purpose: a test asserting that something happens "at once, not when the
/// backend answers" checks for well under it (under 3 s, say), which a loaded CI machine meets
/// with room to spare, while a proxy that waits for the answer cannot.
pub fn slow_backend(name: &str) -> (Backend, std::sync::mpsc::Receiver<()>) {
    let (arrived_tx, arrived) = std::sync::mpsc::channel::<()>();
    let arrived_tx = Mutex::new(arrived_tx);
    let backend = Backend::with_handler(name, move |req, _| {
        if req.target == "/slow" {
            if let Ok(tx) = arrived_tx.lock() {
                let _ = tx.send(());
            }
            thread::sleep(SLOW_BACKEND_DELAY);
        }
        Reply::Bytes(ok_response(
            "slow",
            format!("answer to {}", req.target).as_bytes(),
        ))
    });
    (backend, arrived)
}

// ----------------------------------------------------------------------------- balancing

/// Which test backend served `r`: the `X-Backend` every test backend puts on its answers.
#[track_caller]
pub fn served_by(r: &Response) -> String {
    r.header("x-backend")
        .unwrap_or_else(|| panic!("no X-Backend: not a backend's answer: {r:?}"))
        .to_string()
}

impl Client {
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
}

/// Each worker's count of accepted connections (`GET /stats`, `workers[i].accepted`), in
/// worker order.
pub fn accepted_per_worker(admin: SocketAddr) -> Vec<u64> {
    let stats = admin_get_at(admin, "/stats");
    stats["workers"]
        .as_array()
        .unwrap_or_else(|| panic!("no \"workers\" array in {stats}"))
        .iter()
        .map(|w| {
            w["accepted"]
                .as_u64()
                .unwrap_or_else(|| panic!("no accepted count in {w}"))
        })
        .collect()
}

/// A round trip through a proxy that has ONE worker, on a request the proxy answers by itself
/// (an HTTP/1.1 request without `Host`: 400, no backend involved, so it never waits in a
/// queue). When it returns, that worker has handled everything sent to it before the call:
/// connections, request bytes, closes. (On the loopback a write is in the receiving socket when
/// it returns, so that socket's readiness is reported before this connection's, and a worker
/// handles the events of one poll before it accepts, and earlier polls before later ones.)
///
/// This is the readiness signal for what the proxy does not announce, such as "the request is
/// now waiting in the queue". With several workers it proves nothing: the probe may land on
/// another one.
pub fn worker_round_trip(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    c.send(b"GET /round-trip HTTP/1.1\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 400, "the round-trip probe: {r:?}");
}

/// How long a request held by a [`GatedBackend`] waits for a permit before it is answered anyway,
/// so that no backend thread outlives a failed test for long.
pub const GATE_LIMIT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Gate {
    /// Permits not yet taken, and whether the gate is open for good.
    permits: Mutex<(usize, bool)>,
    changed: std::sync::Condvar,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Gate {
    /// Blocks until a permit is free (and takes it), the gate opens, or [`GATE_LIMIT`].
    fn pass(&self) {
        let deadline = Instant::now() + GATE_LIMIT;
        let mut p = self.permits.lock().expect("gate lock");
        loop {
            if p.1 {
                return;
            }
            if p.0 > 0 {
                p.0 -= 1;
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            p = self.changed.wait_timeout(p, left).expect("gate lock").0;
        }
    }
}

/// A backend that holds every request until the test lets it go: each request reports its
/// target on arrival ([`GatedBackend::next_arrival`]), then waits for a permit
/// ([`GatedBackend::release`]) or for the gate to open ([`GatedBackend::open`]), and is answered
/// `200`, `X-Backend: NAME`, body `answer to TARGET`. It counts its own concurrency: a request is
/// in flight from its arrival until just before its answer is written (so the next request on a
/// freed slot can never overlap it in the count). Dropping it opens the gate.
pub struct GatedBackend {
    pub backend: Backend,
    gate: Arc<Gate>,
    arrivals: mpsc::Receiver<String>,
}

impl GatedBackend {
    pub fn start(name: &str) -> GatedBackend {
        let gate = Arc::new(Gate::default());
        let (tx, arrivals) = mpsc::channel::<String>();
        let tx = Mutex::new(tx);
        let g = Arc::clone(&gate);
        let n = name.to_string();
        let backend = Backend::with_handler(name, move |req, _| {
            let now = g.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            g.max_in_flight.fetch_max(now, Ordering::SeqCst);
            if let Ok(tx) = tx.lock() {
                let _ = tx.send(req.target.clone());
            }
            g.pass();
            g.in_flight.fetch_sub(1, Ordering::SeqCst);
            Reply::Bytes(ok_response(
                &n,
                format!("answer to {}", req.target).as_bytes(),
            ))
        });
        GatedBackend {
            backend,
            gate,
            arrivals,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.backend.addr
    }

    /// Lets `n` held (or future) requests be answered.
    pub fn release(&self, n: usize) {
        self.gate.permits.lock().expect("gate lock").0 += n;
        self.gate.changed.notify_all();
    }

    /// Lets every request through, now and from now on.
    pub fn open(&self) {
        if let Ok(mut p) = self.gate.permits.lock() {
            p.1 = true;
        }
        self.gate.changed.notify_all();
    }

    /// The target of the next request to arrive; panics if none comes within [`IO_TIMEOUT`].
    #[track_caller]
    pub fn next_arrival(&self) -> String {
        self.arrivals
            .recv_timeout(IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("no request reached the gated backend: {e:?}"))
    }

    /// The target of a request that arrived and was not yet reported, if any (does not wait).
    pub fn unreported_arrival(&self) -> Option<String> {
        self.arrivals.try_recv().ok()
    }

    /// Requests it holds right now.
    pub fn in_flight(&self) -> usize {
        self.gate.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests it ever held at once.
    pub fn max_in_flight(&self) -> usize {
        self.gate.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for GatedBackend {
    fn drop(&mut self) {
        self.open();
    }
}
