//! Accepting: each listener in batches until `WouldBlock`, admission (the connection cap and
//! `max_connections_per_ip`), and opening an admitted connection (registered, wrapped in its
//! transport, run at once). Also the worker's listening sockets ([`Listener`]) and the per-key bits
//! ([`KeyBits`]) that remember which connections were counted per address or came in on the
//! redirect listener.
//!
//! Neighbours: the run loop and `spawn` in `mod.rs`; running connections in `conns.rs`; timers
//! in `timers.rs`; control messages and the drain in `control.rs`.

use std::io;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Interest, Registry};

use super::{Core, ACCEPT_BATCH};
use crate::connection::Connection;
use crate::timer::TimerKey;
use crate::token::{Tok, MAX_KEY};
use crate::transport::Transport;

/// How long accepting pauses after the process ran out of file descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

impl Core {
    /// Accepts from every listener until each says `WouldBlock` (at most `ACCEPT_BATCH` from
    /// each per wake-up: `accept_pending` stays set when one had more).
    pub(super) fn accept(&mut self, registry: &Registry) {
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
}

/// One bit per slab key.
#[derive(Default)]
pub(super) struct KeyBits(Vec<u64>);

impl KeyBits {
    pub(super) fn set(&mut self, key: usize, on: bool) {
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

    pub(super) fn get(&self, key: usize) -> bool {
        let (word, bit) = (key / 64, key % 64);
        self.0.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    /// Whether `key`'s bit was set; clears it.
    pub(super) fn take(&mut self, key: usize) -> bool {
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
pub(super) struct Listener {
    pub(super) sock: TcpListener,
    /// The https redirect listener (`ssl.redirect_http_port`), not the proxy's.
    pub(super) redirect: bool,
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
