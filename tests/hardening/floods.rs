//! Exhaustion and floods, against the `ferrule` binary as a child process (its descriptors are
//! its own): at the descriptor limit the accept loop pauses instead of spinning, and serves again
//! once descriptors free; a thousand slowloris clients and thousands of idle ones do not starve a
//! normal client; a worker that panics takes the process down with exit code 70; a backend
//! connect that finds no descriptor is a 503 that is not the backend's fault, logged once, and
//! service recovers; buffer memory follows a load that drops in steps instead of staying at its
//! peak.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::raw;
use crate::common::{
    backend_entry, line_channel, wait_for_line, Backend, ChildGuard, Client, ProxyProcess, TempDir,
    IO_TIMEOUT,
};

/// `ferrule` on `config` (written to `dir`, which must outlive the process; ports picked by the
/// kernel, health checks off), through `bash -c` with `shell` run first (say, `ulimit -n 64`) and
/// `env` set; its stderr lines, and its port once it listens (`None` if it exited first).
fn spawn(
    dir: &TempDir,
    config: Value,
    shell: &str,
    env: &[(&str, &str)],
) -> (ChildGuard, mpsc::Receiver<String>, Option<SocketAddr>) {
    let mut cfg = json!({"port": 0, "admin_port": 0, "bind": "127.0.0.1",
                         "health_check_frequency": "0s"});
    if let (Some(map), Value::Object(more)) = (cfg.as_object_mut(), config) {
        map.extend(more);
    }
    let path = dir.write("config.json", cfg.to_string());
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!("{shell} && exec \"$0\" \"$1\""))
        .arg(env!("CARGO_BIN_EXE_ferrule"))
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = ChildGuard(cmd.spawn().expect("spawn ferrule"));
    let lines = line_channel(child.0.stderr.take().expect("stderr"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut addr = None;
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if let Some((_, rest)) = line.split_once("listening on http://") {
            addr = rest.split_whitespace().next().and_then(|a| a.parse().ok());
            break;
        }
    }
    (child, lines, addr)
}

/// CPU time (user + system, all threads) of process `pid` so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // the fields after the command name (which is in parentheses and may hold spaces)
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(100);
    Duration::from_millis(ticks * 1000 / hz)
}

// Proves that at the descriptor limit (RLIMIT_NOFILE 64) the accept loop neither spins nor dies:
// with connections waiting that cannot be accepted, ferrule logs the failure once and uses well
// under a third of a core; once the clients go, it serves again.
#[test]
fn at_the_descriptor_limit_accept_pauses_and_service_resumes() {
    let a = Backend::start("a");
    let backends = json!([{"url": format!("http://{}", a.addr)}]);
    let dir = TempDir::new("fd-limit");
    let (child, lines, addr) = spawn(
        &dir,
        json!({"workers": 2, "backends": backends}),
        "ulimit -n 64",
        &[],
    );
    let addr = addr.expect("ferrule listens with 64 descriptors");
    let pid = child.pid();
    // more connections than descriptors: the kernel queues them, ferrule takes what it can
    let held: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(addr).expect("connect (queued by the kernel)"))
        .collect();
    wait_for_line(&lines, "accept failed", Duration::from_secs(10));
    let (cpu0, t0) = (cpu_time(pid), Instant::now());
    thread::sleep(Duration::from_secs(1));
    let (cpu, wall) = (cpu_time(pid) - cpu0, t0.elapsed());
    let share = cpu.as_secs_f64() / wall.as_secs_f64();
    eprintln!(
        "at the descriptor limit: {cpu:?} of CPU in {wall:?} ({:.1}%)",
        share * 100.0
    );
    assert!(
        share < 0.3,
        "the accept loop spins: {:.0}% of a core",
        share * 100.0
    );
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let served = TcpStream::connect(addr).ok().and_then(|s| {
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            let mut c = Client {
                reader: std::io::BufReader::new(s),
            };
            c.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            c.try_response().ok()
        });
        if served.is_some_and(|r| r.status == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "service never resumed");
        thread::sleep(Duration::from_millis(50));
    }
}

/// This process's soft limit of open files.
fn fd_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(1024)
}

// Proves 1,000 slowloris connections (a head trickled a byte every 200 ms) and up to 10,000
// idle ones (as many as this process's descriptor limit allows, less a margin; said in the
// output) do not starve a normal client: each of its requests, on a fresh connection, is
// answered within a second.
#[test]
fn slowloris_and_idle_floods_do_not_starve_a_normal_client() {
    let a = Backend::start("a");
    let proxy = ProxyProcess::start(
        json!({
            "workers": 2,
            "health_check_frequency": "0s",
            "client_header_timeout": "60s",
            "backends": [{"url": format!("http://{}", a.addr)}],
        }),
        "floods",
    );
    let addr = proxy.addr();
    let room = fd_limit().saturating_sub(3000);
    let slow_n = 1000.min(room / 2);
    let idle_n = 10_000.min(room - slow_n);
    eprintln!(
        "{slow_n} slowloris and {idle_n} idle connections (fd limit {})",
        fd_limit()
    );
    let mut slow: Vec<TcpStream> = (0..slow_n)
        .map(|_| {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: ")
                .expect("send");
            s
        })
        .collect();
    let idle: Vec<TcpStream> = (0..idle_n)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let trickle = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for s in &mut slow {
                    let _ = s.write_all(b"x");
                }
                thread::sleep(Duration::from_millis(200));
            }
            slow.len()
        })
    };
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let mut c = Client::connect(addr);
        c.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert_eq!(c.response().status, 200);
        worst = worst.max(started.elapsed());
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = trickle.join();
    eprintln!("slowest normal request among the flood: {worst:?}");
    assert!(
        worst < Duration::from_secs(1),
        "a normal client waited {worst:?}"
    );
    let open = proxy.memory();
    eprintln!(
        "ferrule RSS with {} connections: {} KiB",
        slow_n + idle_n,
        open.current / 1024
    );
    drop(idle);
}

// Proves a worker that panics (the documented test hook makes worker 1 panic as it starts) ends
// the process with exit code 70 and a log line, instead of leaving a proxy with a worker less.
#[test]
fn a_worker_panic_ends_the_process_with_code_70() {
    let a = Backend::start("a");
    let backends = json!([{"url": format!("http://{}", a.addr)}]);
    let dir = TempDir::new("worker-panic");
    let (mut child, lines, _) = spawn(
        &dir,
        json!({"workers": 2, "backends": backends}),
        "true",
        &[("FERRULE_TEST_WORKER_PANIC", "1")],
    );
    let status = child
        .wait_for(Duration::from_secs(10))
        .expect("ferrule exits");
    assert_eq!(status.code(), Some(70), "{status:?}");
    let seen: Vec<String> = lines.try_iter().collect();
    assert!(
        seen.iter().any(|l| l.contains("worker 1 died")),
        "the death is logged: {seen:?}"
    );
}

// ----------------------------------------------------------------------------- descriptors

/// A ferrule child process started under `ulimit -n limit`, on ports it picked itself.
struct Limited {
    child: ChildGuard,
    addr: SocketAddr,
    admin: SocketAddr,
    stderr: mpsc::Receiver<String>,
    /// Its config's directory; after `child`, so removed once the process is killed.
    _dir: TempDir,
}

fn port_in(line: &str, after: &str) -> u16 {
    let rest = &line[line.find(after).expect("address in the line") + after.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("a port")
}

fn start_limited(limit: u32, backend: SocketAddr) -> Limited {
    let dir = TempDir::new("fd-limit");
    let path = dir.join("config.json");
    let config = json!({
        "port": 0, "admin_port": 0, "bind": "127.0.0.1", "workers": 1,
        "backend_keepalive": 0, "retries": 0,
        // no active probes: a probe's socket, open for a moment, would take the descriptor a
        // client or backend connection counts on
        "health_check_method": "none",
        "backends": [{"url": format!("http://{backend}")}],
    });
    std::fs::write(&path, config.to_string()).expect("write config");
    // `ulimit -n` in sh sets the hard limit too, so ferrule cannot raise it
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" \"$1\""))
        .arg(env!("CARGO_BIN_EXE_ferrule"))
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferrule");
    let mut child = ChildGuard(child);
    let stderr = line_channel(child.0.stderr.take().expect("stderr"));
    let listening = wait_for_line(&stderr, "listening on", Duration::from_secs(10));
    let admin = wait_for_line(&stderr, "admin API on", Duration::from_secs(10));
    Limited {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port_in(&listening, "127.0.0.1:"))),
        admin: SocketAddr::from(([127, 0, 0, 1], port_in(&admin, "127.0.0.1:"))),
        stderr,
        _dir: dir,
    }
}

/// A keep-alive client that has had one answer (200, or the 503 of a backend connect that found
/// no descriptor): it holds one descriptor in the proxy. `None` when no answer came `within`: the
/// proxy could not accept it (out of descriptors), and it waits in the accept queue.
fn answered_client(addr: SocketAddr, within: Duration) -> Option<(Client, u16)> {
    let mut c = Client::connect(addr);
    c.stream().set_read_timeout(Some(within)).ok()?;
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.try_response().ok()?;
    assert!(
        r.status == 200 || r.status == 503,
        "{} {}",
        r.status,
        r.text()
    );
    c.stream().set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    Some((c, r.status))
}

// Proves running out of file descriptors on a backend connect is a 503 that is not counted
// against the backend, logged once for the episode, and recovers once descriptors free.
#[test]
fn out_of_descriptors_on_a_backend_connect_is_503_and_not_the_backends_fault() {
    let backend = Backend::start("b");
    let proxy = start_limited(48, backend.addr);
    // fill the proxy's descriptor table with idle keep-alive clients, until one is left waiting
    // in the accept queue: from then on the proxy has no descriptor to spare
    let mut held = Vec::new();
    let mut refused = 0;
    while let Some((c, status)) = answered_client(proxy.addr, Duration::from_millis(500)) {
        refused += usize::from(status == 503);
        held.push(c);
        assert!(held.len() < 100, "the descriptor limit was never reached");
    }
    // a request on a connection already accepted needs a backend connection: none can be opened
    let c = held.last_mut().expect("some clients were served");
    c.send(b"GET /again HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        refused <= 1,
        "{refused} clients got 503 before the limit was reached"
    );
    wait_for_line(
        &proxy.stderr,
        "cannot open backend connections",
        Duration::from_secs(5),
    );
    // free descriptors: service resumes, and the backend was never blamed
    held.clear();
    let mut fresh = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while fresh.is_none() && Instant::now() < deadline {
        fresh = answered_client(proxy.addr, Duration::from_secs(2)).filter(|(_, s)| *s == 200);
    }
    assert!(fresh.is_some(), "service did not resume");
    wait_for_line(
        &proxy.stderr,
        "backend connections can be opened again",
        Duration::from_secs(5),
    );
    let mut admin = Client::connect(proxy.admin);
    admin.send(b"GET /backends HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let list: serde_json::Value = serde_json::from_slice(&admin.response().body).expect("json");
    let entry = backend_entry(&list, backend.addr);
    assert_eq!(entry["failures"], 0, "{entry}");
    // one warning for the whole episode
    let more: Vec<String> = proxy.stderr.try_iter().collect();
    assert!(
        !more
            .iter()
            .any(|l| l.contains("cannot open backend connections")),
        "{more:?}"
    );
    proxy.child.terminate();
}

// ----------------------------------------------------------------------------- memory

/// Waits (bounded) until `ok(rss)` holds for the proxy's resident memory; returns the last value.
fn rss_until(proxy: &ProxyProcess, within: Duration, ok: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let rss = proxy.memory().current;
        if ok(rss) || Instant::now() >= deadline {
            return rss;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Clients that each hold a request buffer in the proxy: a 15,000-byte head that never ends.
/// (Kernel socket buffers cannot absorb it, unlike a large response, which a loopback send buffer
/// of several MB swallows whole.)
fn partial_heads(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut head = b"GET / HTTP/1.1\r\nHost: t\r\nX-Pad: ".to_vec();
    head.resize(15_000, b'a');
    (0..n)
        .map(|_| {
            let mut s = raw(addr);
            s.write_all(&head).expect("send");
            s
        })
        .collect()
}

// Proves buffer memory follows a load that drops in steps (600 busy connections, then 200, then
// none), instead of staying at its peak.
#[test]
fn buffer_memory_follows_a_load_that_drops_in_steps() {
    let backend = Backend::start("b");
    let proxy = ProxyProcess::start(
        json!({"workers": 1, "backends": [{"url": format!("http://{}", backend.addr)}]}),
        "memory-steps",
    );
    let base = proxy.memory().current;
    let mut clients = partial_heads(proxy.addr(), 600);
    // each held head touches at least two pages of its buffer; then wait for the growth to settle
    let grown_enough = rss_until(&proxy, Duration::from_secs(15), |rss| {
        rss >= base + 600 * 8192
    });
    assert!(
        grown_enough >= base + 600 * 8192,
        "600 busy connections should hold ~600 buffers: base {base}, now {grown_enough}"
    );
    let mut peak = grown_enough;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        let now = proxy.memory().current;
        if now <= peak {
            break;
        }
        peak = now;
    }
    let grown = peak - base;
    // down to 200 busy: within seconds, most of what the 400 freed buffers held goes back to the
    // system (the allocator keeps a page here and there, so ask for half of their share; a pool
    // that keeps its peak gives back nothing)
    clients.truncate(200);
    let step = rss_until(&proxy, Duration::from_secs(15), |rss| {
        rss <= peak - grown / 3
    });
    assert!(
        step <= peak - grown / 3,
        "memory stayed near its peak: base {base}, peak {peak}, now {step}"
    );
    // down to none: back near where it started
    clients.clear();
    let idle = rss_until(&proxy, Duration::from_secs(15), |rss| {
        rss <= base + grown / 4
    });
    assert!(
        idle <= base + grown / 4,
        "memory stayed up once idle: base {base}, peak {peak}, now {idle}"
    );
}
