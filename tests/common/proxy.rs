//! The proxy under test, in this process or as a child:
//!
//! - [`Proxy`]: `ferrule::start` in-process on 127.0.0.1:0 (2 workers unless the test says
//!   otherwise), stopped when dropped; admin calls ([`admin_get_at`]);
//! - [`ProxyProcess`]: the `ferrule` binary as a child process on port 0, its real ports read
//!   from its log, its config in a temporary directory of its own, killed (by its PID) when
//!   dropped. Tests that need a process of their own (its memory, its descriptors, signals, its
//!   exit) use it: the test binary is one process for every test;
//! - [`ChildGuard`], [`line_channel`], [`wait_for_line`]: any child process and its output;
//! - readiness without sleeps: [`wait_until_released`], [`accepted_per_worker`],
//!   [`worker_round_trip`].
//!
//! The clients are in `wire.rs`, the backends in `backend.rs`, TLS proxies in `tls.rs`.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{backend_entry, memory_of, Client, Memory, Response, TempDir};

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
    /// Its config's directory; a field, so removed after `Drop` has killed the process.
    dir: TempDir,
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

        let dir = TempDir::new(name);
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
        memory_of(self.pid())
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        self.child.kill();
    }
}

/// The admin API's `active_connections` of the backend at `addr`.
pub fn active_connections(proxy: &Proxy, addr: SocketAddr) -> u64 {
    let entry = backend_entry(&proxy.admin_get("/backends"), addr);
    entry["active_connections"]
        .as_u64()
        .unwrap_or_else(|| panic!("no active_connections in {entry}"))
}

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
