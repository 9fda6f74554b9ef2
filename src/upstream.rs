//! A worker's connections to backends: the ones lent to streams and the idle keep-alive ones.
//!
//! Every backend connection lives in one slab for its whole life and keeps the same poll token,
//! so lending it to a stream or putting it back in the idle pool is bookkeeping, never a
//! re-registration. Idle connections are kept per backend, newest last: reuse takes the most
//! recently used one (the least likely to have been closed by the backend), and expiry takes the
//! oldest first. A connection goes idle only when it is known clean (nothing unread, no close seen);
//! an idle connection that then turns readable was closed (or spoken to out of turn) by its
//! backend and is dropped.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry};
use slab::Slab;

use crate::balancer::Backend;
use crate::transport::{Side, Transport};

/// Which stream a backend connection is lent to: its client connection's key in the worker's slab
/// and the stream's slot in that connection (always 0 for HTTP/1.1, one stream at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub conn: usize,
    pub slot: u32,
}

/// One connection to a backend.
pub struct Upstream {
    pub transport: Transport,
    pub backend: Arc<Backend>,
    /// Readiness seen and not yet used up (edge-triggered: kept in user space), and whether the
    /// backend's stream ended or ours was shut (a tunnel).
    pub side: Side,
    /// The TCP connect has completed.
    pub connected: bool,
    /// This connection has carried a request before (it came from the idle pool).
    pub reused: bool,
    /// The stream it is lent to, `None` while idle.
    pub owner: Option<Owner>,
    /// When it went idle.
    pub idle_since: Instant,
}

/// A connect that failed on ferrule's side (out of file descriptors, memory, buffers or local
/// ports), which says nothing about the backend: the request gets 503, the backend is not blamed.
pub fn is_local_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
    )
}

/// Set while backend connects fail for local reasons: the first failure of an episode is logged,
/// and the first success after it.
static LOCAL_TROUBLE: AtomicBool = AtomicBool::new(false);

/// A backend connect failed with a local error: logged once per episode.
pub fn local_trouble(e: &io::Error) {
    if !LOCAL_TROUBLE.swap(true, Ordering::Relaxed) {
        log::warn!("cannot open backend connections: {e}; answering 503 until it recovers");
    }
}

/// A backend connect went through: ends an episode of local trouble. One relaxed load when
/// there is none.
#[inline]
fn local_trouble_over() {
    if LOCAL_TROUBLE.load(Ordering::Relaxed) && LOCAL_TROUBLE.swap(false, Ordering::Relaxed) {
        log::info!("backend connections can be opened again");
    }
}

struct IdleList {
    backend: u64,
    keys: VecDeque<usize>,
}

pub struct Upstreams {
    conns: Slab<Upstream>,
    idle: Vec<IdleList>,
    /// Idle connections kept per backend.
    max_idle: usize,
    /// Idle connections kept in all (this worker's share of the descriptor budget, `lib.rs`).
    max_idle_total: usize,
    idle_count: usize,
    /// Opens in-memory connections in place of TCP ones (the whole-connection fuzz target).
    #[cfg(feature = "mem-io")]
    pub mem_connect: Option<MemConnect>,
}

/// Makes the next in-memory connection to a backend.
#[cfg(feature = "mem-io")]
pub type MemConnect = Box<dyn FnMut(&Backend) -> io::Result<Transport> + Send>;

impl Upstreams {
    pub fn new(max_idle: usize, max_idle_total: usize) -> Upstreams {
        Upstreams {
            conns: Slab::new(),
            idle: Vec::new(),
            max_idle,
            max_idle_total,
            idle_count: 0,
            #[cfg(feature = "mem-io")]
            mem_connect: None,
        }
    }

    /// New limits (a reload); idle connections over them go as they expire.
    pub fn set_limits(&mut self, max_idle: usize, max_idle_total: usize) {
        self.max_idle = max_idle;
        self.max_idle_total = max_idle_total;
    }

    #[inline]
    pub fn get_mut(&mut self, key: usize) -> Option<&mut Upstream> {
        self.conns.get_mut(key)
    }

    /// Idle connections held.
    pub fn idle_count(&self) -> usize {
        self.idle_count
    }

    /// Lends the most recently idle connection to `backend`, if any.
    pub fn take_idle(&mut self, backend: u64, owner: Owner) -> Option<usize> {
        let list = self.idle.iter_mut().find(|l| l.backend == backend)?;
        let key = list.keys.pop_back()?;
        self.idle_count -= 1;
        let up = self.conns.get_mut(key)?;
        up.owner = Some(owner);
        Some(key)
    }

    /// Starts a non-blocking connect to `backend` for the stream `owner`.
    pub fn connect(
        &mut self,
        registry: &Registry,
        backend: &Arc<Backend>,
        owner: Owner,
        now: Instant,
    ) -> io::Result<usize> {
        let mut transport = self.open(backend)?;
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        registry.register(
            &mut transport,
            crate::token::upstream(key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        entry.insert(Upstream {
            transport,
            backend: Arc::clone(backend),
            side: Side::default(),
            connected: false,
            reused: false,
            owner: Some(owner),
            idle_since: now,
        });
        local_trouble_over();
        Ok(key)
    }

    fn open(&mut self, backend: &Backend) -> io::Result<Transport> {
        #[cfg(feature = "mem-io")]
        if let Some(connect) = &mut self.mem_connect {
            return connect(backend);
        }
        let stream = TcpStream::connect(backend.addr)?;
        stream.set_nodelay(true)?;
        match &backend.tls {
            None => Ok(Transport::Plain(stream)),
            Some(tls) => {
                Transport::client(stream, &tls.config, tls.name.clone()).map_err(io::Error::other)
            }
        }
    }

    /// Takes back a connection from its stream: into the idle pool when `reusable`, clean and
    /// there is room, closed otherwise. Clean means the backend has not closed its side and sent
    /// nothing more: its readiness was seen drained, or a peek finds nothing to read.
    pub fn release(&mut self, key: usize, reusable: bool, now: Instant) {
        let Some(up) = self.conns.get_mut(key) else {
            return;
        };
        let clean = reusable
            && up.connected
            && !up.side.hup
            && !up.side.eof
            && up.backend.is_enabled() // a draining or removed backend keeps no idle connection
            && (!up.side.readable || up.transport.nothing_to_read());
        let backend = up.backend.id;
        let room = self
            .idle
            .iter()
            .find(|l| l.backend == backend)
            .is_none_or(|l| l.keys.len() < self.max_idle);
        if !clean || !room || self.max_idle == 0 || self.idle_count >= self.max_idle_total {
            self.conns.remove(key);
            return;
        }
        up.owner = None;
        up.reused = true;
        up.side.readable = false;
        up.idle_since = now;
        match self.idle.iter_mut().find(|l| l.backend == backend) {
            Some(list) => list.keys.push_back(key),
            None => self.idle.push(IdleList {
                backend,
                keys: VecDeque::from([key]),
            }),
        }
        self.idle_count += 1;
    }

    /// Closes a connection lent to a stream (dropping the stream closes the socket, which also
    /// takes it out of the poll set).
    pub fn close(&mut self, key: usize) {
        self.conns.try_remove(key);
    }

    /// An event on an idle connection: the backend closed it, or sent bytes nobody asked for.
    /// Either way it cannot be reused.
    pub fn close_idle(&mut self, key: usize) {
        let Some(up) = self.conns.get(key) else {
            return;
        };
        let backend = up.backend.id;
        if let Some(list) = self.idle.iter_mut().find(|l| l.backend == backend) {
            if let Some(pos) = list.keys.iter().position(|&k| k == key) {
                list.keys.remove(pos);
                self.idle_count -= 1;
            }
        }
        self.conns.remove(key);
    }

    /// Closes idle connections idle for longer than `timeout`.
    pub fn expire_idle(&mut self, now: Instant, timeout: Duration) {
        for list in &mut self.idle {
            while let Some(&key) = list.keys.front() {
                let expired = self
                    .conns
                    .get(key)
                    .is_none_or(|up| now.saturating_duration_since(up.idle_since) >= timeout);
                if !expired {
                    break;
                }
                list.keys.pop_front();
                self.idle_count -= 1;
                self.conns.try_remove(key);
            }
        }
        self.idle.retain(|l| !l.keys.is_empty());
    }

    /// Closes every idle connection to `backend` (it was removed from the pool).
    pub fn drop_backend(&mut self, backend: u64) {
        if let Some(i) = self.idle.iter().position(|l| l.backend == backend) {
            let list = self.idle.swap_remove(i);
            self.idle_count -= list.keys.len();
            for key in list.keys {
                self.conns.try_remove(key);
            }
        }
    }

    /// Closes every idle connection.
    pub fn clear_idle(&mut self) {
        for list in self.idle.drain(..) {
            for key in list.keys {
                self.conns.try_remove(key);
            }
        }
        self.idle_count = 0;
    }
}
