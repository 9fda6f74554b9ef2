//! The test backends: real HTTP/1.1 servers on 127.0.0.1:0, thread per connection, that record
//! what they receive.
//!
//! - [`Backend`]: answers `200` with its name (`X-Backend`, [`served_by`]) or what a handler
//!   says ([`Reply`]), and records every request ([`Record`], [`Seen`]);
//! - [`slow_backend`] (answers `GET /slow` after 5 s) and [`GatedBackend`] (holds every request
//!   until the test lets it go, counting how many it holds);
//! - [`dead_addr`]: an address that refuses connections for as long as the test holds it;
//! - [`backend_entry`]: a backend's entry in the admin API's `GET /backends`.
//!
//! They answer ferrule's active health checks (requests with `User-Agent: ferrule-health`, see
//! [`is_health_probe`]) with `200` and leave them out of what they record, so counts of requests
//! and connections at a backend are the proxy's traffic only. Requests are read with the one head
//! reader of `wire.rs`; the HTTPS and byte-pattern backends are in `tls.rs`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use socket2::{Domain, Socket, Type};

use super::{field_value, field_values, Head, Response, IO_TIMEOUT};

// ----------------------------------------------------------------------------- accept loops

/// A listener's accept loop, on a thread of its own, that hands each connection to a thread of
/// its own. Dropping it ends the loop and closes the listener (the threads of connections still
/// open end with them), so a test's backends end with the test: the suite is one process, where
/// every listener and thread left behind would add up, test after test.
///
/// Every test backend listens through one of these ([`serve`]).
pub struct AcceptLoop {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

/// Accepts connections on `listener`, each handled by `each` on a thread of its own, until the
/// returned [`AcceptLoop`] is dropped.
pub fn serve<F>(listener: TcpListener, each: F) -> AcceptLoop
where
    F: Fn(TcpStream) + Send + Sync + 'static,
{
    let addr = listener.local_addr().expect("addr");
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let each = Arc::new(each);
    let thread = thread::spawn(move || {
        // bounded: by the stop, which the drop follows with a connection of its own
        for stream in listener.incoming() {
            if stopped.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { break };
            let each = Arc::clone(&each);
            thread::spawn(move || each(stream));
        }
    });
    AcceptLoop {
        addr,
        stop,
        thread: Some(thread),
    }
}

impl Drop for AcceptLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wakes the accept; refused if the loop already ended, which is as good
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ----------------------------------------------------------------------------- health probes

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
    is_health_probe(&Head::parse(head).fields)
}

/// The answer test backends give a health probe: `200`, keep-alive.
pub const HEALTH_PROBE_ANSWER: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";

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
    /// A request with head `head` (its body not read yet), on connection `conn`.
    pub fn new(head: Head, conn: usize) -> Seen {
        Seen {
            method: head.method().to_string(),
            target: head.target().to_string(),
            head: head.text,
            headers: head.fields,
            body: Vec::new(),
            raw_body: Vec::new(),
            conn,
        }
    }

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
    /// Serves until the backend is dropped.
    _accepting: AcceptLoop,
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
        let record = Arc::new(Record::default());
        let rec = Arc::clone(&record);
        let accepting = serve(listener, move |stream| serve_conn(stream, &rec, &handler));
        Backend {
            addr: accepting.addr,
            record,
            name: name.to_string(),
            _accepting: accepting,
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
    let mut seen = Seen::new(Head::read(r)?, conn);
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

/// How long [`slow_backend`] takes to answer `GET /slow`.
pub const SLOW_BACKEND_DELAY: Duration = Duration::from_secs(5);

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

// ----------------------------------------------------------------------------- who answered

/// Which test backend served `r`: the `X-Backend` every test backend puts on its answers.
#[track_caller]
pub fn served_by(r: &Response) -> String {
    r.header("x-backend")
        .unwrap_or_else(|| panic!("no X-Backend: not a backend's answer: {r:?}"))
        .to_string()
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
