//! One worker thread: a `mio::Poll`, its own listening socket, its client connections, its backend
//! connections, its buffers and its timers. Nothing here is shared with other workers except the
//! backend pool (read without a lock to pick) and the control channel.
//!
//! Poll tokens are typed ([`Tok`], `token.rs`: client connections, backend connections, the
//! listeners, the waker) and so are timer keys ([`TimerKey`], `timer.rs`).
//!
//! The loop: wait for events (or the next timer), hand each to its connection, accept new
//! connections in batches (admit: the connection cap and the per-address limit; open: its
//! transport and its `Connection`), expire timers, obey control messages. Connections are driven by
//! `Connection::run`; anything that ends one comes back here as `Err(Close(reason))` and the
//! connection is dropped, which closes its socket, and counted by its reason.

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Registry, Waker};
use slab::Slab;

use crate::balancer::Sticky;
use crate::buffer::BufPool;
use crate::connection::{Close, Connection, Ran, DRAIN_IDLE_GRACE};
use crate::context::{Ctx, Settings, Waiting};
use crate::stats::{CloseReason, WorkerStats};
use crate::timer::{Entry, TimerKey, Timers};
use crate::token::{Tok, MAX_KEY};
use crate::transport::Transport;
use crate::upstream::Upstreams;

/// Connections accepted per wake-up before the worker serves the others again.
const ACCEPT_BATCH: usize = 64;
/// How often housekeeping runs (idle backend connections expire, freed memory is returned).
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Free buffers a worker keeps for reuse; more than this are freed.
const KEEP_BUFFERS: usize = 4;
/// How long accepting pauses after the process ran out of file descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Messages to a worker.
#[derive(Clone)]
pub enum Control {
    /// Stop accepting, finish the requests in flight, exit; force-close at `deadline`.
    Shutdown { deadline: Instant },
    /// A backend left the pool: close its idle connections.
    BackendRemoved(u64),
    /// A reload: new settings (timeouts, limits, keep-alive) for the requests from now on.
    Reconfigure(Arc<Shared>),
}

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

/// Where control messages to one worker go: its channel and its waker. Cheap to clone (the admin
/// API keeps one per worker).
#[derive(Clone)]
pub struct ControlPort {
    tx: Sender<Control>,
    waker: Arc<Waker>,
}

impl ControlPort {
    pub fn send(&self, msg: Control) {
        if self.tx.send(msg).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// The other end of a worker: send it control messages, wait for it.
pub struct WorkerHandle {
    tx: Sender<Control>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<WorkerStats>,
}

impl WorkerHandle {
    pub fn port(&self) -> ControlPort {
        ControlPort {
            tx: self.tx.clone(),
            waker: Arc::clone(&self.waker),
        }
    }

    pub fn send(&self, msg: Control) {
        if self.tx.send(msg).is_ok() {
            let _ = self.waker.wake();
        }
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
        tx,
        waker,
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
                core.timers.timeout(Instant::now())
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
            // write it once, in `run_pending` (each asked to be run again)
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
            core.run_pending(registry);
            if core.queue_again {
                core.run_queue(registry);
            }
            core.expire(registry);
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
fn contain(step: impl FnOnce() -> Result<Ran, Close>) -> Result<Ran, Close> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)) {
        Ok(result) => result,
        Err(_) => {
            log::error!("a connection panicked and was closed (a bug: please report it)");
            Err(Close(CloseReason::Panic))
        }
    }
}

impl Core {
    fn ctx<'a>(
        &'a mut self,
        registry: &'a Registry,
        key: usize,
    ) -> (Option<&'a mut Connection>, Ctx<'a>) {
        let conn = self.conns.get_mut(key).map(|b| &mut **b);
        let ctx = Ctx {
            registry,
            upstreams: &mut self.upstreams,
            bufs: &mut self.bufs,
            scratch: &mut self.scratch,
            pools: &mut self.pools,
            cfg: &self.shared.settings,
            now: self.now,
            date: self.date.text(),
            draining: self.draining.is_some(),
            key,
            id: conn.as_ref().map_or(0, |c| c.id),
            slot: 0,
            redirect: self.shared.redirect_to.filter(|_| self.redirects.get(key)),
            stats: &self.stats,
            queue: &mut self.queue,
            queued: &self.queued,
            access_log: &self.shared.access_log,
            ids: &mut self.ids,
            gathering: self.gathering,
        };
        (conn, ctx)
    }

    fn client_event(&mut self, registry: &Registry, key: usize, ready: Ready) {
        if let Some(c) = self.conns.get_mut(key) {
            c.client_ready(ready.readable, ready.writable, ready.hup);
            self.drive(registry, key);
        }
    }

    fn upstream_event(&mut self, registry: &Registry, key: usize, ready: Ready) {
        let Some(up) = self.upstreams.get_mut(key) else {
            return;
        };
        match up.owner {
            Some(owner) => {
                up.side.ready(ready.readable, ready.writable, ready.hup);
                self.drive(registry, owner.conn);
            }
            None => {
                if ready.hup || (ready.readable && !up.transport.absorb_idle()) {
                    // an idle connection the backend closed (or spoke on out of turn); over TLS a
                    // session ticket or key update leaves it clean
                    self.upstreams.close_idle(key);
                } else {
                    up.side.writable |= ready.writable;
                }
            }
        }
    }

    /// Runs a connection after an event, then re-arms its timer or drops it.
    fn drive(&mut self, registry: &Registry, key: usize) {
        let queued = self.queue.len();
        let (Some(conn), mut ctx) = self.ctx(registry, key) else {
            return;
        };
        let id = conn.id;
        let result = contain(|| conn.run(&mut ctx));
        self.after_run(registry, key, id, result);
        if self.queue.len() > queued {
            // just queued: look once more, in case a slot freed while it was being queued (the
            // worker that freed it may not have seen it waiting yet)
            self.queue_again = true;
        }
    }

    fn after_run(&mut self, registry: &Registry, key: usize, id: u32, result: Result<Ran, Close>) {
        match result {
            Ok(Ran::Idle) => self.arm(key),
            Ok(Ran::More) => {
                self.arm(key);
                self.pending.push((key, id));
            }
            Err(Close(reason)) => self.close(registry, key, reason),
        }
    }

    /// Runs the connections that stopped at their round cap, once each.
    fn run_pending(&mut self, registry: &Registry) {
        if self.pending.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.pending);
        for (key, id) in batch.drain(..) {
            if self.conns.get(key).is_some_and(|c| c.id == id) {
                self.drive(registry, key);
            }
        }
        if self.pending.is_empty() {
            // keep the allocation for next time
            self.pending = batch;
        }
    }

    /// Gives freed backend slots to queued streams, in arrival order: at most `ACCEPT_BATCH` a
    /// wake-up (`queue_again` brings the worker back at once for the rest), stopping at the first
    /// that still finds no slot.
    fn run_queue(&mut self, registry: &Registry) {
        self.queue_again = false;
        for _ in 0..ACCEPT_BATCH {
            let Some(&Waiting { key, id, slot }) = self.queue.front() else {
                return;
            };
            let live = self
                .conns
                .get(key)
                .is_some_and(|c| c.id == id && c.is_queued(slot));
            if !live {
                // closed, timed out or served meanwhile
                self.pop_queue();
                continue;
            }
            let (Some(conn), mut ctx) = self.ctx(registry, key) else {
                self.pop_queue();
                continue;
            };
            let mut left = false;
            let result = contain(|| {
                left = conn.dequeue(&mut ctx, slot)?;
                Ok(Ran::Idle)
            });
            match result {
                Ok(_) if !left => return, // no slot yet: it stays at the front
                Ok(ran) => {
                    self.pop_queue();
                    self.after_run(registry, key, id, Ok(ran));
                    self.drive(registry, key);
                }
                Err(close) => {
                    self.pop_queue();
                    self.after_run(registry, key, id, Err(close));
                }
            }
        }
        self.queue_again = !self.queue.is_empty();
    }

    fn pop_queue(&mut self) {
        if self.queue.pop_front().is_some() {
            self.pools.slots().dequeued(&self.queued);
        }
    }

    /// Arms the connection's timer if its deadline moved before the slot it is armed in.
    fn arm(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.armed == u64::MAX || self.timers.slot_of(c.deadline) < c.armed {
            let timer = TimerKey::Conn {
                key: key as u32,
                id: c.id,
            };
            c.armed = self.timers.arm(timer, c.deadline);
        }
        self.arm_sweep();
    }

    /// Housekeeping once a second while there is anything to keep: idle backend connections to
    /// expire, freed buffer memory to return (also after the last connection left).
    fn arm_sweep(&mut self) {
        let work =
            self.upstreams.idle_count() > 0 || !self.conns.is_empty() || self.bufs.needs_trim();
        if !self.sweep_armed && work {
            self.sweep_armed = true;
            self.timers.arm(TimerKey::Sweep, self.now + SWEEP_EVERY);
        }
    }

    fn close(&mut self, registry: &Registry, key: usize, reason: CloseReason) {
        let (Some(conn), mut ctx) = self.ctx(registry, key) else {
            return;
        };
        conn.release(&mut ctx, reason);
        // `peer` is still the socket's: a counted connection read no PROXY header
        let peer = conn.peer();
        if self.per_ip_counted.take(key) {
            self.shared.per_ip.release(peer);
        }
        self.redirects.take(key);
        self.conns.remove(key);
        self.stats.closed(reason);
        if self.accept_paused && self.conns.len() < self.shared.max_connections {
            self.accept_paused = false;
            self.accept_pending = true;
        }
    }

    /// Accepts from every listener until each says `WouldBlock` (at most `ACCEPT_BATCH` from
    /// each per wake-up: `accept_pending` stays set when one had more).
    fn accept(&mut self, registry: &Registry) {
        let mut more = false;
        for i in 0..self.listeners.len() {
            match self.accept_from(registry, i) {
                Accepted::Drained => {}
                Accepted::More => more = true,
                Accepted::Stop => return,
            }
        }
        self.accept_pending = more;
    }

    fn accept_from(&mut self, registry: &Registry, index: usize) -> Accepted {
        for _ in 0..ACCEPT_BATCH {
            if self.conns.len() >= self.shared.max_connections {
                self.accept_paused = true;
                return Accepted::Stop;
            }
            let Some(listener) = self.listeners.get(index) else {
                return Accepted::Drained;
            };
            let redirect = listener.redirect;
            match listener.sock.accept() {
                Ok((stream, addr)) => {
                    if let Some(counted) = self.admit(addr.ip(), redirect) {
                        self.open(registry, stream, addr.ip(), counted, redirect);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Accepted::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // out of file descriptors or memory: stop for a moment instead of spinning
                    if self.stats.accept_errors() == 0 {
                        log::warn!("accept failed: {e}; pausing accepts briefly");
                    }
                    self.stats.accept_error();
                    self.accept_paused = true;
                    self.timers.arm(TimerKey::Resume, self.now + ACCEPT_PAUSE);
                    return Accepted::Stop;
                }
            }
        }
        Accepted::More
    }

    /// Whether a connection from `ip` may stay: `max_connections_per_ip` (counted over every
    /// worker; not with `proxy_protocol`, where the socket peer is the balancer). `None`: refused
    /// (the stream is dropped, which closes it); `Some(counted)`: admitted, and whether it was
    /// counted against the limit (so its close releases it).
    fn admit(&mut self, ip: std::net::IpAddr, redirect: bool) -> Option<bool> {
        let settings = &self.shared.settings;
        let limit = settings.max_connections_per_ip;
        let counted = limit > 0 && (redirect || !settings.identity.proxy_protocol);
        if counted && !self.shared.per_ip.try_acquire(ip, limit) {
            // one address holds its share already: closed at once (dropped)
            self.stats.per_ip_refused();
            return None;
        }
        Some(counted)
    }

    /// Opens an admitted connection: registers its socket, wraps it (TLS when the listener
    /// terminates TLS; a redirect listener's are plain) and runs it at once (its request is
    /// usually there already).
    fn open(
        &mut self,
        registry: &Registry,
        mut stream: mio::net::TcpStream,
        ip: std::net::IpAddr,
        counted: bool,
        redirect: bool,
    ) {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let registered = key < MAX_KEY
            && registry
                .register(
                    &mut stream,
                    Tok::Client(key).token(),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_ok();
        let transport = match (&self.shared.tls, registered) {
            (_, false) => None,
            (Some(config), true) if !redirect => Transport::server(stream, config).ok(),
            (_, true) => Some(Transport::Plain(stream)),
        };
        let Some(transport) = transport else {
            if counted {
                self.shared.per_ip.release(ip);
            }
            return;
        };
        self.next_id = self.next_id.wrapping_add(1);
        let conn = Connection::new(
            transport,
            ip,
            self.next_id,
            self.now,
            &self.shared.settings,
            redirect,
        );
        self.per_ip_counted.set(key, counted);
        self.redirects.set(key, redirect);
        entry.insert(Box::new(conn));
        self.stats.accepted();
        self.drive(registry, key);
    }

    fn expire(&mut self, registry: &Registry) {
        if self.timers.is_empty() {
            return;
        }
        let mut due = std::mem::take(&mut self.due);
        self.timers.expire(self.now, &mut due);
        for entry in due.drain(..) {
            match entry.key {
                TimerKey::Sweep => self.sweep(),
                TimerKey::Drain => {} // the loop checks the drain deadline
                TimerKey::Resume => {
                    self.accept_paused = false;
                    self.accept_pending = true;
                }
                TimerKey::Conn { key, id } => self.conn_timer(registry, key as usize, id, entry),
            }
        }
        self.due = due;
    }

    /// Housekeeping: idle backend connections expire, freed memory is returned, backends taken
    /// down passively are tried again, ejections that are over end, the retry budget notes the
    /// pools' traffic, a few shards of the sticky table are swept.
    fn sweep(&mut self) {
        self.upstreams
            .expire_idle(self.now, self.shared.backend_keepalive_timeout);
        self.bufs.trim();
        self.pools.refresh(&self.shared.pools);
        // bounded: the pools of the table
        for (_, pool) in self.pools.table().members() {
            crate::health::passive::revive(&pool.balancer, self.now);
            crate::health::outlier::sweep(&pool.balancer, self.now);
            pool.balancer.sample_budget(self.now);
            if let Some(Sticky::Ip(table)) = &pool.balancer.policy().sticky {
                // a few shards a second per worker: the whole table within seconds
                table.sweep(self.sticky_sweep, 8, self.now);
            }
        }
        self.sticky_sweep = self.sticky_sweep.wrapping_add(8);
        self.sweep_armed = false;
        self.arm_sweep();
    }

    fn conn_timer(&mut self, registry: &Registry, key: usize, id: u32, entry: Entry) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.id != id || c.armed != entry.slot {
            return; // stale: the connection was re-armed elsewhere, or this is another one
        }
        c.armed = u64::MAX;
        if c.deadline > now {
            self.arm(key);
            return;
        }
        let (Some(conn), mut ctx) = self.ctx(registry, key) else {
            return;
        };
        let result = contain(|| conn.timed_out(&mut ctx));
        self.after_run(registry, key, id, result);
    }

    fn control(&mut self, registry: &Registry) {
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Control::Shutdown { deadline } => self.start_drain(registry, deadline),
                Control::BackendRemoved(id) => self.upstreams.drop_backend(id),
                Control::Reconfigure(shared) => {
                    self.upstreams
                        .set_limits(shared.backend_keepalive, shared.idle_budget);
                    self.shared = shared;
                }
            }
        }
    }

    /// Stops accepting (closing this worker's listeners: without a successor holding the same
    /// sockets, new connections are refused at once). Idle keep-alive connections get a short
    /// grace ([`DRAIN_IDLE_GRACE`]): a request that arrives meanwhile is served with
    /// `Connection: close`, like every response during the drain; the rest close after their
    /// response, and whatever is left at `deadline` is closed.
    fn start_drain(&mut self, registry: &Registry, deadline: Instant) {
        if self.draining.is_some() {
            return;
        }
        self.draining = Some(deadline);
        for mut l in self.listeners.drain(..) {
            let _ = registry.deregister(&mut l.sock);
        }
        self.accept_pending = false;
        self.timers.arm(TimerKey::Drain, deadline);
        let grace = DRAIN_IDLE_GRACE.min(self.shared.settings.timeouts.keepalive);
        let until = (self.now + grace).min(deadline);
        let now = self.now;
        let idle: Vec<(usize, u32)> = self
            .conns
            .iter_mut()
            .filter_map(|(k, c)| c.close_idle_by(until, now).then_some((k, c.id)))
            .collect();
        for (key, id) in idle {
            self.arm(key);
            // run once: an HTTP/2 connection has a GOAWAY to write
            self.pending.push((key, id));
        }
        self.upstreams.clear_idle();
    }
}

/// One bit per slab key.
#[derive(Default)]
struct KeyBits(Vec<u64>);

impl KeyBits {
    fn set(&mut self, key: usize, on: bool) {
        let (word, bit) = (key / 64, key % 64);
        if self.0.len() <= word {
            if !on {
                return;
            }
            self.0.resize(word + 1, 0);
        }
        if let Some(w) = self.0.get_mut(word) {
            if on {
                *w |= 1 << bit;
            } else {
                *w &= !(1 << bit);
            }
        }
    }

    fn get(&self, key: usize) -> bool {
        let (word, bit) = (key / 64, key % 64);
        self.0.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    /// Whether `key`'s bit was set; clears it.
    fn take(&mut self, key: usize) -> bool {
        let (word, bit) = (key / 64, key % 64);
        let Some(w) = self.0.get_mut(word) else {
            return false;
        };
        let was = *w & (1 << bit) != 0;
        *w &= !(1 << bit);
        was
    }
}

/// One of the worker's listening sockets.
struct Listener {
    sock: TcpListener,
    /// The https redirect listener (`ssl.redirect_http_port`), not the proxy's.
    redirect: bool,
}

/// How one listener's accept batch ended.
enum Accepted {
    /// `WouldBlock`: nothing more queued.
    Drained,
    /// The batch was used up with connections maybe left.
    More,
    /// Accepting paused (the connection cap, or out of descriptors).
    Stop,
}
