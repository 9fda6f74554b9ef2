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
//!
//! The code: this file reads the command line's result, binds and accepts (a thread per
//! connection); `args.rs` parses the command line (`--help`'s text, the options); `conn.rs` serves
//! one connection (reading requests, bodies and chunks, writing responses); `request.rs` turns a
//! parsed head into what the connection needs (framing, keep-alive, the route) and holds the
//! small parsers.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

mod args;
mod conn;
mod request;

use args::{parse_args, Settings, USAGE};
use conn::serve;

/// Stack size of connection threads; buffers live on the heap.
const CONN_STACK: usize = 64 * 1024;
const MAX_CONNS: usize = 10_000;
const BACKLOG: i32 = 1024;
/// The largest `--body-size` and `/bytes/N`.
const MAX_BYTES: u64 = 1 << 30;
/// The longest `--delay`, `--body-delay` and `/delay/MS`.
const MAX_DELAY_MS: u64 = 60_000;

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
