//! The small HTTP/1.1 server of the admin API and the https redirect listener (not a data path:
//! the proxy's own traffic goes through the workers): std sockets, a thread per connection (at most
//! [`MAX_CONNECTIONS`]), heads and answers as in `message.rs`, bodies through the proxy's own
//! framing (`http::framing`).
//!
//! Why not `tiny_http`: it drains an unread request body when the request is dropped, into a
//! buffer the size of the body's declared length, so one `Content-Length: 100000000000` (no
//! token needed) made the allocation fail and aborted the whole proxy; and it cannot refuse a
//! body without reading it. Here nothing is read before the [`App`] has screened the head (the
//! token, the path, the method), a body over [`MAX_BODY`] is refused from its `Content-Length`
//! alone (or as soon as a chunked one passes the limit), and after such an answer the connection
//! is closed with at most [`LINGER_BYTES`] more read (so the client sees the answer rather than a
//! reset).
//!
//! Every read and write has a timeout, and a whole request a deadline; every loop is bounded
//! (bytes, requests per connection, or the stop flag).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

pub mod message;

use self::message::{too_large, Head, Response, MAX_BODY};
use crate::http::framing::{Body, Framing, Step};

/// Chunked framing (size lines, CRLFs, trailers) allowed on top of the payload.
const MAX_FRAMING: usize = 64 * 1024;
/// Largest request head (request line and fields).
const MAX_HEAD: usize = 16 * 1024;
/// Connections served at once; more are answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 64;
const MAX_REQUESTS_PER_CONNECTION: usize = 1000;
/// Longest wait for a read or write to make progress (an idle keep-alive connection closes).
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// A request (its head and body, and the idle wait before it) must arrive whole within this.
const REQUEST_TIME: Duration = Duration::from_secs(30);
/// How often [`App::tick`] runs.
const TICK: Duration = Duration::from_millis(250);
/// After an answer to a request whose body was not read: what is read (and dropped) at most
/// before the close, and for how long.
const LINGER_BYTES: usize = 64 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(1);

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);

/// What the server serves.
pub trait App: Send + Sync + 'static {
    /// Looks at a head before its body is read: an answer here (a missing token, an unknown path
    /// or method) is sent without reading the body.
    fn screen(&self, head: &Head) -> Option<Response>;
    /// Answers a request, its body read whole.
    fn handle(&self, head: &Head, body: &[u8]) -> Response;
    /// Runs every [`TICK`] or so on the accept thread.
    fn tick(&self);
}

/// A running server: [`Server::stop`] (or a drop) stops accepting.
pub struct Server {
    addr: SocketAddr,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `addr` and serves `app` on a thread named `name`.
    pub fn start<A: App>(addr: SocketAddr, app: Arc<A>, name: &str) -> io::Result<Server> {
        Server::on_listener(bind(addr)?, app, name)
    }

    /// Serves `app` on `std_listener` (bound here, or handed over by an old process).
    pub fn on_listener<A: App>(
        std_listener: std::net::TcpListener,
        app: Arc<A>,
        name: &str,
    ) -> io::Result<Server> {
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let mut listener = TcpListener::from_std(std_listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || accept_loop(poll, &listener, &app, &flag))?;
        Ok(Server {
            addr,
            waker,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for the accept thread; connections being served finish their
    /// request and close.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A listening socket for [`Server::on_listener`] (`SO_REUSEADDR`, as std sets it).
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr)
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop<A: App>(
    mut poll: Poll,
    listener: &TcpListener,
    app: &Arc<A>,
    stop: &Arc<AtomicBool>,
) {
    let live = Arc::new(AtomicUsize::new(0));
    let mut events = Events::with_capacity(4);
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = poll.poll(&mut events, Some(TICK)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            log::error!("admin API: poll failed, no longer serving: {e}");
            return;
        }
        if events.iter().any(|e| e.token() == WAKER) {
            return;
        }
        // edge-triggered: accept until the queue is empty (a batch left over is taken at the
        // next tick)
        for _ in 0..MAX_CONNECTIONS {
            match listener.accept() {
                Ok((stream, _)) => spawn_connection(stream.into(), app, stop, &live),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::debug!("admin API: accept failed: {e}");
                    break;
                }
            }
        }
        // a handler that panicked is answered 500 by the connection; one here is caught too
        if catch_unwind(AssertUnwindSafe(|| app.tick())).is_err() {
            log::error!("admin API: housekeeping panicked");
        }
    }
}

/// Counts a connection as live for as long as it is held.
struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn spawn_connection<A: App>(
    stream: TcpStream,
    app: &Arc<A>,
    stop: &Arc<AtomicBool>,
    live: &Arc<AtomicUsize>,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    if live.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
        live.fetch_sub(1, Ordering::Relaxed);
        let mut conn = Conn::new(stream);
        let _ = conn.stream.set_write_timeout(Some(LINGER_TIME));
        let busy = Response::error(503, "too many admin connections at once; try again");
        let _ = conn.send(&busy.with_header("Retry-After", "1".into()), false, false);
        return;
    }
    let guard = Live(Arc::clone(live));
    let app = Arc::clone(app);
    let stop = Arc::clone(stop);
    let spawned = std::thread::Builder::new()
        .name("ferrule-admin-conn".into())
        .spawn(move || {
            let _guard = guard;
            serve(Conn::new(stream), &*app, &stop);
        });
    if let Err(e) = spawned {
        log::warn!("admin API: cannot start a connection thread: {e}");
    }
}

/// Why a head could not be read.
enum HeadError {
    /// The peer closed or timed out (nothing to answer).
    Gone,
    /// Answer this and close.
    Answer(Response),
}

/// Why a body could not be read.
enum BodyError {
    Gone,
    Answer(Response),
}

struct Conn {
    stream: TcpStream,
    /// The client's address, for [`Head::peer`].
    peer: Option<SocketAddr>,
    /// Bytes read and not yet used: `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
    /// When the request being read must be whole (a client sending a byte now and then does
    /// not hold a connection for ever).
    deadline: Instant,
}

fn serve(mut conn: Conn, app: &dyn App, stop: &AtomicBool) {
    for served in 1..=MAX_REQUESTS_PER_CONNECTION {
        conn.deadline = Instant::now() + REQUEST_TIME;
        let head = match conn.read_head() {
            Ok(Some(head)) => head,
            Ok(None) | Err(HeadError::Gone) => return,
            Err(HeadError::Answer(r)) => return conn.close_with(&r, false),
        };
        let is_head = head.method == "HEAD";
        let keep = head.keep_alive() && served < MAX_REQUESTS_PER_CONNECTION;
        let framing = match head.framing() {
            Ok(f) => f,
            Err(r) => return conn.close_with(&r, is_head),
        };
        let has_body = !matches!(framing, Framing::None | Framing::Length(0));
        if let Some(r) = app.screen(&head) {
            if has_body {
                return conn.close_with(&r, is_head);
            }
            if conn.send(&r, keep, is_head).is_err() || !keep {
                return;
            }
            continue;
        }
        if let Framing::Length(n) = framing {
            if n > MAX_BODY as u64 {
                return conn.close_with(&too_large(), is_head);
            }
        }
        let continues = head
            .header("expect")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
        if has_body
            && continues
            && conn
                .stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .is_err()
        {
            return;
        }
        let body = match conn.read_body(framing) {
            Ok(body) => body,
            Err(BodyError::Gone) => return,
            Err(BodyError::Answer(r)) => return conn.close_with(&r, is_head),
        };
        let response =
            catch_unwind(AssertUnwindSafe(|| app.handle(&head, &body))).unwrap_or_else(|_| {
                log::error!("admin API: {} {} panicked", head.method, head.path);
                Response::error(500, "internal error (logged)")
            });
        let keep = keep && !stop.load(Ordering::Relaxed);
        if conn.send(&response, keep, is_head).is_err() || !keep {
            return;
        }
    }
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            peer: stream.peer_addr().ok(),
            stream,
            buf: Vec::with_capacity(4096),
            start: 0,
            deadline: Instant::now() + REQUEST_TIME,
        }
    }

    fn buffered(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    /// Reads more bytes into the buffer; false at the end of the stream, on an error, or past
    /// the request's deadline.
    fn fill(&mut self) -> bool {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero()
            || self
                .stream
                .set_read_timeout(Some(left.min(IO_TIMEOUT)))
                .is_err()
        {
            return false;
        }
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next head; `None` when the peer closed between requests.
    fn read_head(&mut self) -> Result<Option<Head>, HeadError> {
        // each turn reads at least one byte, and the head is at most MAX_HEAD of them
        for _ in 0..=MAX_HEAD {
            if !self.buffered().is_empty() {
                if let Some(head) = self.parse_head()? {
                    return Ok(Some(head));
                }
                if self.buffered().len() >= MAX_HEAD {
                    let r = Response::error(431, "request head larger than 16 KiB");
                    return Err(HeadError::Answer(r));
                }
            }
            let empty = self.buffered().is_empty();
            if !self.fill() {
                return if empty {
                    Ok(None)
                } else {
                    Err(HeadError::Gone)
                };
            }
        }
        Err(HeadError::Answer(Response::error(
            431,
            "request head larger than 16 KiB",
        )))
    }

    fn parse_head(&mut self) -> Result<Option<Head>, HeadError> {
        match Head::parse(self.buffered()) {
            Ok(Some((mut head, used))) => {
                self.start += used;
                head.peer = self.peer;
                Ok(Some(head))
            }
            Ok(None) => Ok(None),
            Err(r) => Err(HeadError::Answer(r)),
        }
    }

    /// The payload of a body framed by `framing`, at most [`MAX_BODY`] bytes.
    fn read_body(&mut self, framing: Framing) -> Result<Vec<u8>, BodyError> {
        let mut body = Body::new(framing);
        let mut payload = Vec::new();
        let mut framing_bytes = 0usize;
        // each turn uses or reads at least one byte; the payload and the framing are bounded
        for _ in 0..2 * (MAX_BODY + MAX_FRAMING) + 2 {
            if body.is_done() {
                return Ok(payload);
            }
            if self.buffered().is_empty() && !self.fill() {
                return Err(BodyError::Gone);
            }
            let step = body.step(self.buffered()).map_err(|_| {
                BodyError::Answer(Response::error(400, "body: malformed chunked framing"))
            })?;
            match step {
                Step::Payload(n) => {
                    if payload.len() + n > MAX_BODY {
                        return Err(BodyError::Answer(too_large()));
                    }
                    payload.extend_from_slice(&self.buffered()[..n]);
                    self.start += n;
                }
                Step::Framing(n) => {
                    framing_bytes += n;
                    if framing_bytes > MAX_FRAMING {
                        return Err(BodyError::Answer(too_large()));
                    }
                    self.start += n;
                }
                Step::Blocked | Step::Done => {}
            }
        }
        Err(BodyError::Answer(too_large()))
    }

    /// Writes `r`; `keep` false adds `Connection: close`; `is_head` leaves the body out.
    fn send(&mut self, r: &Response, keep: bool, is_head: bool) -> io::Result<()> {
        self.stream.write_all(&r.to_bytes(keep, is_head))?;
        self.stream.flush()
    }

    /// Answers `r` and closes without reading the rest of the request: the write side is shut
    /// first, then a little more is read (and dropped) so that the close does not reset the
    /// connection under the answer.
    fn close_with(mut self, r: &Response, is_head: bool) {
        if self.send(r, false, is_head).is_err() {
            return;
        }
        let _ = self.stream.shutdown(Shutdown::Write);
        let _ = self.stream.set_read_timeout(Some(LINGER_TIME / 4));
        let deadline = Instant::now() + LINGER_TIME;
        let mut left = LINGER_BYTES;
        let mut chunk = [0u8; 4096];
        while left > 0 && Instant::now() < deadline {
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    }
}
