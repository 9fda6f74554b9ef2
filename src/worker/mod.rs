//! One worker thread: a `mio::Poll`, its own listening socket, its client connections, its backend
//! connections, its buffers and its timers. Nothing here is shared with other workers except the
//! backend pool (read without a lock to pick) and the control channel.
//!
//! Poll tokens are typed ([`Tok`], `token.rs`: client connections, backend connections, the
//! listeners, the waker) and so are timer keys ([`TimerKey`](crate::timer::TimerKey), `timer.rs`).
//!
//! The loop: wait for events (or the next timer), hand each to its connection, accept new
//! connections in batches (admit: the connection cap and the per-address limit; open: its
//! transport and its `Connection`), expire timers, obey control messages. Connections are driven by
//! `Connection::run`; anything that ends one comes back here as `Err(Close(reason))` and the
//! connection is dropped, which closes its socket, and counted by its reason.
//!
//! This file: [`spawn`], the worker's state (`Core`) and its loop. The rest of `Core` is in
//! `accept.rs` (accept, admit, open; the listeners), `conns.rs` (running connections, the queue
//! for backend slots, the close), `timers.rs` (deadlines and housekeeping) and `control.rs`
//! ([`Control`] messages, the drain).

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Waker};
use slab::Slab;

use crate::buffer::BufPool;
use crate::connection::{Close, Connection};
use crate::context::{Settings, Waiting};
use crate::stats::{CloseReason, WorkerStats};
use crate::timer::{Entry, Timers};
use crate::token::Tok;
use crate::upstream::Upstreams;

mod accept;
mod conns;
mod control;
mod timers;

use accept::{KeyBits, Listener};
pub use control::{Control, ControlPort};

/// Connections accepted per wake-up before the worker serves the others again.
const ACCEPT_BATCH: usize = 64;
/// Free buffers a worker keeps for reuse; more than this are freed.
const KEEP_BUFFERS: usize = 4;

/// What every worker is started with.
pub struct Shared {
    /// The pools and the routes to them (the same registry across reloads).
    pub pools: Arc<crate::pools::Pools>,
    pub settings: Settings,
    pub max_connections: usize,
    pub buffer_size: usize,
    pub backend_keepalive: usize,
    /// Idle backend connections one worker may keep in all (see `lib::descriptor_budget`).
    pub idle_budget: usize,
    pub backend_keepalive_timeout: Duration,
    /// Clients arrive over TLS, with this configuration (its certificates can be swapped live).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The proxy's access log (the same one across reloads).
    pub access_log: Arc<crate::access_log::AccessLog>,
    /// Open connections per client address, shared by every worker (`max_connections_per_ip`);
    /// the same map across reloads.
    pub per_ip: Arc<crate::per_ip::PerIp>,
    /// `ssl.redirect_http_port`: connections accepted on the redirect listener are answered
    /// `308` to this TLS port (see `redirect.rs`).
    pub redirect_to: Option<u16>,
}

/// The other end of a worker: send it control messages, wait for it.
pub struct WorkerHandle {
    port: ControlPort,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<WorkerStats>,
}

impl WorkerHandle {
    pub fn port(&self) -> ControlPort {
        self.port.clone()
    }

    pub fn send(&self, msg: Control) {
        self.port.send(msg);
    }

    pub fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

/// The environment variable that makes a worker panic as it starts (its value: the worker's
/// index), so that the tests can see what a worker's death does to the process. A test hook: read
/// once per worker at spawn, never on the data path.
pub const TEST_PANIC_ENV: &str = "FERRULE_TEST_WORKER_PANIC";

/// Starts worker `index` accepting on `listeners` (one, or several after a handover), and on
/// `redirect` (`ssl.redirect_http_port`: every worker accepts from its own descriptor of that one
/// socket, and answers its connections `308`). A panic that escapes its loop (connections' own are
/// contained, see [`contain`]) or a poll that fails is logged and its index sent on `died`: the
/// process must not go on with a worker less (`main.rs` exits).
pub fn spawn(
    index: usize,
    listeners: Vec<std::net::TcpListener>,
    redirect: Option<std::net::TcpListener>,
    shared: Arc<Shared>,
    died: Sender<usize>,
) -> io::Result<WorkerHandle> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), Tok::Waker.token())?);
    let mut mio_listeners = Vec::with_capacity(listeners.len() + 1);
    let all = listeners
        .into_iter()
        .map(|l| (l, false))
        .chain(redirect.map(|l| (l, true)));
    for (i, (l, redirect)) in all.enumerate() {
        let mut sock = TcpListener::from_std(l);
        poll.registry()
            .register(&mut sock, Tok::Listener(i).token(), Interest::READABLE)?;
        mio_listeners.push(Listener { sock, redirect });
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    let stats = Arc::new(WorkerStats::default());
    let now = Instant::now();
    let pools = crate::pools::View::new(&shared.pools, index);
    let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    pools
        .slots()
        .register(Arc::clone(&waker), Arc::clone(&queued));
    let core = Core {
        conns: Slab::with_capacity(256),
        upstreams: Upstreams::new(shared.backend_keepalive, shared.idle_budget),
        bufs: BufPool::new(shared.buffer_size, KEEP_BUFFERS),
        scratch: Vec::with_capacity(shared.buffer_size),
        pools,
        timers: Timers::new(now),
        due: Vec::new(),
        pending: Vec::new(),
        gathering: false,
        deferred: Vec::new(),
        queue: std::collections::VecDeque::new(),
        queued: Arc::clone(&queued),
        queue_again: false,
        sticky_sweep: index * 8,
        listeners: mio_listeners,
        accept_pending: true,
        accept_paused: false,
        sweep_armed: false,
        draining: None,
        next_id: 0,
        ids: crate::access_log::RequestIds::new(),
        log: crate::access_log::Local::new(Arc::clone(&shared.access_log)),
        per_ip_counted: KeyBits::default(),
        redirects: KeyBits::default(),
        now,
        date: crate::http::date::HttpDate::now(),
        stats: Arc::clone(&stats),
        rx,
        shared,
    };
    let mut worker = Worker {
        poll,
        events: Events::with_capacity(256),
        core,
    };
    let test_panic = std::env::var(TEST_PANIC_ENV).is_ok_and(|v| v == index.to_string());
    let thread = std::thread::Builder::new()
        .name(format!("ferrule-worker-{index}"))
        .spawn(move || {
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if test_panic {
                    panic!("{TEST_PANIC_ENV} asked worker {index} to panic");
                }
                worker.run()
            }));
            match ran {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    log::error!("worker {index}: its event loop failed ({e}): its connections are lost");
                    let _ = died.try_send(index);
                }
                Err(_) => {
                    log::error!(
                        "worker {index} panicked (a bug: please report it): its connections are lost"
                    );
                    let _ = died.try_send(index);
                }
            }
        })?;
    Ok(WorkerHandle {
        port: ControlPort { tx, waker },
        thread: Some(thread),
        stats,
    })
}

/// Readiness of one socket, from one poll event.
#[derive(Debug, Clone, Copy)]
struct Ready {
    readable: bool,
    writable: bool,
    /// The peer closed its side, or the socket failed.
    hup: bool,
}

struct Worker {
    poll: Poll,
    events: Events,
    core: Core,
}

struct Core {
    conns: Slab<Box<Connection>>,
    upstreams: Upstreams,
    bufs: BufPool,
    scratch: Vec<u8>,
    /// The pools and routes as this worker sees them, and its picker per pool.
    pools: crate::pools::View,
    timers: Timers,
    due: Vec<Entry>,
    /// Connections that stopped at their round cap with work left, `(key, id)`: run again after
    /// the events at hand (no new event would wake them).
    pending: Vec<(usize, u32)>,
    /// Handling a poll round's events (see `Ctx::gathering`).
    gathering: bool,
    /// Connections whose request's first write waits for the end of the round.
    deferred: Vec<(usize, u32)>,
    /// Connections whose stream waits for a backend slot (`max_conns`), in arrival order
    /// `(key, id)`, and how many, as the other workers see it (they wake this one when a slot
    /// frees).
    queue: std::collections::VecDeque<Waiting>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
    /// The queue stopped at its per-wake bound: run it again soon.
    queue_again: bool,
    /// The next sticky-table shard this worker's housekeeping sweeps.
    sticky_sweep: usize,
    /// Empty once draining.
    listeners: Vec<Listener>,
    /// A listener may have connections waiting (edge-triggered: remembered here).
    accept_pending: bool,
    /// Accepting stopped at the connection cap; resumes when a connection closes.
    accept_paused: bool,
    sweep_armed: bool,
    /// Shutting down: the deadline for force-closing.
    draining: Option<Instant>,
    next_id: u32,
    ids: crate::access_log::RequestIds,
    /// The access log lines this worker formatted, until they are handed to the writer.
    log: crate::access_log::Local,
    /// The connections (by slab key) counted against `max_connections_per_ip`, released at
    /// close. Kept here, a bit each, rather than in `Connection`, whose size is the idle-memory
    /// target.
    per_ip_counted: KeyBits,
    /// The connections (by slab key) accepted on the redirect listener.
    redirects: KeyBits,
    now: Instant,
    /// The `Date` of responses, formatted again when the second changes (see `http::date`).
    date: crate::http::date::HttpDate,
    stats: Arc<WorkerStats>,
    rx: Receiver<Control>,
    shared: Arc<Shared>,
}

impl Worker {
    /// The event loop, until the worker has drained; an error is a poll that failed for good (the
    /// worker is dead, and the process must not go on without it).
    fn run(&mut self) -> io::Result<()> {
        let mut failed = None;
        loop {
            let core = &mut self.core;
            let accepting =
                core.accept_pending && !core.accept_paused && !core.listeners.is_empty();
            let timeout = if accepting || !core.pending.is_empty() || core.queue_again {
                Some(Duration::ZERO)
            } else {
                let now = Instant::now();
                match (core.timers.timeout(now), core.log.due_in(now)) {
                    (Some(t), Some(l)) => Some(t.min(l)),
                    (t, l) => t.or(l),
                }
            };
            if let Err(e) = self.poll.poll(&mut self.events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                failed = Some(e);
                break;
            }
            let registry = self.poll.registry();
            core.now = Instant::now();
            core.date.refresh();
            core.pools.refresh(&core.shared.pools);
            // HTTP/2 connections gather what their streams answer over the round's events and
            // write it once, in `run_pending` (each asked to be run again); HTTP/1.1 requests go
            // to their backends in `push_deferred`, after the round's last event
            core.gathering = true;
            for event in self.events.iter() {
                let ready = Ready {
                    readable: event.is_readable(),
                    writable: event.is_writable() || event.is_write_closed() || event.is_error(),
                    hup: event.is_read_closed() || event.is_error(),
                };
                match Tok::of(event.token()) {
                    Tok::Waker => {
                        core.control(registry);
                        core.queue_again = true;
                    }
                    Tok::Listener(_) => core.accept_pending = true,
                    Tok::Client(key) => core.client_event(registry, key, ready),
                    Tok::Upstream(key) => core.upstream_event(registry, key, ready),
                }
            }
            if core.accept_pending && !core.accept_paused {
                core.accept(registry);
            }
            core.gathering = false;
            core.push_deferred(registry);
            core.run_pending(registry);
            if core.queue_again {
                core.run_queue(registry);
            }
            core.expire(registry);
            core.log.round_end(core.now);
            if let Some(deadline) = core.draining {
                if core.conns.is_empty() || core.now >= deadline {
                    break;
                }
            }
        }
        let core = &mut self.core;
        let keys: Vec<usize> = core.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            core.close(self.poll.registry(), key, CloseReason::Shutdown);
        }
        core.upstreams.clear_idle();
        failed.map_or(Ok(()), Err)
    }
}

/// Runs a connection step; a panic (a bug) ends that connection, never the worker and the
/// thousands of other connections it serves.
fn contain<T>(step: impl FnOnce() -> Result<T, Close>) -> Result<T, Close> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)) {
        Ok(result) => result,
        Err(_) => {
            log::error!("a connection panicked and was closed (a bug: please report it)");
            Err(Close(CloseReason::Panic))
        }
    }
}
