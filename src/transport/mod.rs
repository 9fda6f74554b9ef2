//! One read/write/shutdown face over a plain TCP socket or a rustls connection, for both ends of a
//! proxied exchange: the client side (`rustls::ServerConnection`, TLS termination, owned by a
//! [`Connection`](crate::connection::Connection)) and the backend side
//! (`rustls::ClientConnection`, `https://` backends, owned by an
//! [`Upstream`](crate::upstream::Upstream)). Nothing above this module asks which one it has; the
//! configurations come from `tls/`. `tls.rs` holds the rustls half, `mem.rs` an in-memory peer for
//! the fuzz targets (feature `mem-io`).
//!
//! Plain reads go straight from the socket into the caller's [`Buf`] (one `recv(2)`).
//!
//! Edge-triggered readiness: the poll reports a socket once per change, so each end keeps its
//! readiness in user space, in a [`Side`], and only clears it when a read or write says the socket
//! is drained or full. Over TLS, bytes can wait inside rustls after the socket is drained:
//! decrypted plaintext that did not fit the `Buf` (a read then reports `short: false`, so the
//! caller reads again once it has room), and encrypted records not yet written
//! ([`Transport::wants_flush`]: flushed whenever the socket is writable, and before a half-close or
//! close).
//!
//! Every socket error goes through one classifier, [`failure`]: `WouldBlock` ends a loop,
//! `Interrupted` retries, anything else (a reset included) fails with its `io::Error`, which
//! reaches the logs.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

use crate::buffer::{Buf, Fill};

#[cfg(feature = "mem-io")]
pub mod mem;
mod tls;

pub use tls::Tls;

/// Encrypted bytes (and, before the handshake ends, plaintext) rustls may queue for one
/// connection before a write is refused: the TLS share of a connection's bounded memory.
pub const TLS_BUFFER_LIMIT: usize = 64 * 1024;

/// The outcome of one read into a [`Buf`].
#[derive(Debug)]
pub enum Got {
    /// `n` bytes; `short`: the socket is drained and nothing waits in the transport, so the next
    /// bytes come with a new event.
    Bytes { n: usize, short: bool },
    /// The buffer is full: nothing read.
    Full,
    /// Nothing to read now.
    Blocked,
    /// The peer closed its side.
    Eof,
    /// The connection failed: a reset, or a TLS error (its details in [`Transport::tls_error`]).
    Failed(io::Error),
}

/// The outcome of one write or flush.
#[derive(Debug)]
pub enum Io {
    Done(usize),
    Blocked,
    Eof,
    Failed(io::Error),
}

/// What a socket error means for the loop that met it.
pub enum Outcome {
    /// `WouldBlock`: nothing more now; wait for readiness.
    Blocked,
    /// `Interrupted`: try the same call again.
    Retry,
    /// The connection failed (resets included).
    Failed(io::Error),
}

/// The one place socket errors are classified.
#[inline]
pub fn failure(e: io::Error) -> Outcome {
    match e.kind() {
        io::ErrorKind::WouldBlock => Outcome::Blocked,
        io::ErrorKind::Interrupted => Outcome::Retry,
        _ => Outcome::Failed(e),
    }
}

/// Readiness of one end of a connection, kept in user space (the poll is edge-triggered: a flag
/// an event set stays until a read or write says the socket is drained or full), and where that
/// end stands. The same type for the client and the backend side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Side {
    pub readable: bool,
    pub writable: bool,
    /// The poll reported the peer's side closed (or the socket failed): read until EOF, short
    /// reads included (no later event would announce the end).
    pub hup: bool,
    /// The peer's end of the stream was read.
    pub eof: bool,
    /// Our write side is shut.
    pub shut: bool,
}

impl Side {
    /// Both directions ready: a fresh connection, whose first bytes are usually there already.
    pub const FRESH: Side = Side {
        readable: true,
        writable: true,
        hup: false,
        eof: false,
        shut: false,
    };

    /// Readiness reported by the poll.
    #[inline]
    pub fn ready(&mut self, readable: bool, writable: bool, hup: bool) {
        self.readable |= readable || hup;
        self.writable |= writable;
        self.hup |= hup;
    }

    /// What a read says about readiness: a short read drained the socket (the next bytes come
    /// with a new event, unless the peer already closed), `Blocked` likewise, `Eof` is the end.
    #[inline]
    pub fn after_read(&mut self, got: &Got) {
        match got {
            Got::Bytes { short: true, .. } if !self.hup => self.readable = false,
            Got::Blocked => self.readable = false,
            Got::Eof => self.eof = true,
            Got::Bytes { .. } | Got::Full | Got::Failed(_) => {}
        }
    }

    /// What a write of `wanted` bytes says: a short write or `Blocked` means the socket is full.
    #[inline]
    pub fn after_write(&mut self, io: &Io, wanted: usize) {
        match io {
            Io::Done(n) if *n < wanted => self.writable = false,
            Io::Blocked => self.writable = false,
            Io::Done(_) | Io::Eof | Io::Failed(_) => {}
        }
    }
}

/// How ferrule speaks TLS to one `https://` backend: the client configuration (trust, ALPN,
/// resumption) and the name its certificate must carry.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
}

/// A client or backend connection.
pub enum Transport {
    Plain(TcpStream),
    Tls(Box<Tls>),
    /// No socket: a peer in memory (the fuzz targets).
    #[cfg(feature = "mem-io")]
    Mem(mem::Conn),
}

impl Transport {
    /// A client connection on a TLS listener.
    pub fn server(sock: TcpStream, config: &Arc<ServerConfig>) -> Result<Transport, rustls::Error> {
        let conn = ServerConnection::new(Arc::clone(config))?;
        Ok(Transport::Tls(Box::new(Tls::new(sock, conn.into()))))
    }

    /// A connection to an `https://` backend, verified against `name`.
    pub fn client(
        sock: TcpStream,
        config: &Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<Transport, rustls::Error> {
        let conn = ClientConnection::new(Arc::clone(config), name)?;
        Ok(Transport::Tls(Box::new(Tls::new(sock, conn.into()))))
    }

    /// The TCP socket underneath, if there is one.
    fn socket(&self) -> Option<&TcpStream> {
        match self {
            Transport::Plain(s) => Some(s),
            Transport::Tls(t) => Some(&t.sock),
            #[cfg(feature = "mem-io")]
            Transport::Mem(_) => None,
        }
    }

    fn socket_mut(&mut self) -> Option<&mut TcpStream> {
        match self {
            Transport::Plain(s) => Some(s),
            Transport::Tls(t) => Some(&mut t.sock),
            #[cfg(feature = "mem-io")]
            Transport::Mem(_) => None,
        }
    }

    /// Where a non-blocking connect stands: `Ok(true)` connected, `Ok(false)` still connecting
    /// (a spurious wake-up), the error when it failed.
    pub fn connect_state(&self) -> io::Result<bool> {
        #[cfg(feature = "mem-io")]
        if let Transport::Mem(c) = self {
            return mem::connect_state(c);
        }
        let Some(sock) = self.socket() else {
            return Ok(true);
        };
        if let Some(e) = sock.take_error()? {
            return Err(e);
        }
        match sock.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads the bytes on the socket itself, under any TLS (the PROXY protocol header that comes
    /// before the handshake). `consume: false` peeks: the bytes stay.
    pub fn read_raw(&mut self, out: &mut [u8], consume: bool) -> io::Result<usize> {
        match self {
            Transport::Plain(s) if consume => (&*s).read(out),
            Transport::Tls(t) if consume => (&t.sock).read(out),
            Transport::Plain(s) => s.peek(out),
            Transport::Tls(t) => t.sock.peek(out),
            #[cfg(feature = "mem-io")]
            Transport::Mem(c) => mem::read_raw(c, out, consume),
        }
    }

    /// Writes `data` to the socket itself, under any TLS: the plain answer to a client that
    /// spoke plain HTTP to the TLS port. Best effort.
    pub fn write_raw(&mut self, data: &[u8]) {
        match self {
            Transport::Plain(s) => drop((&*s).write(data)),
            Transport::Tls(t) => drop((&t.sock).write(data)),
            #[cfg(feature = "mem-io")]
            Transport::Mem(c) => drop(mem::write(c, data)),
        }
    }

    /// Closing will send a reset, not a FIN (linger 0): how a client learns that a
    /// close-delimited response was cut short.
    pub fn reset_on_close(&self) {
        #[cfg(feature = "mem-io")]
        if let Transport::Mem(c) = self {
            c.lock().abort = true;
        }
        if let Some(sock) = self.socket() {
            let _ = socket2::SockRef::from(sock).set_linger(Some(std::time::Duration::ZERO));
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// The TLS handshake has not finished (always false for a plain socket).
    pub fn is_handshaking(&self) -> bool {
        matches!(self, Transport::Tls(t) if t.conn.is_handshaking())
    }

    /// The TLS error that failed the connection, if one did.
    pub fn tls_error(&self) -> Option<&rustls::Error> {
        match self {
            Transport::Tls(t) => t.error.as_ref(),
            _ => None,
        }
    }

    /// The peer spoke plain HTTP to a TLS listener.
    pub fn spoke_plain_http(&self) -> bool {
        matches!(self, Transport::Tls(t) if t.plain_http)
    }

    /// The peer's end of the stream was a real end: over TLS a `close_notify`, not just a TCP FIN
    /// (which an attacker on the path can forge, and which cuts a close-delimited body short
    /// without saying so). Always true for a plain socket, where a FIN is all there is.
    pub fn closed_cleanly(&self) -> bool {
        match self {
            Transport::Tls(t) => t.closed_cleanly(),
            _ => true,
        }
    }

    /// The negotiated TLS version, once the handshake is done.
    pub fn tls_version(&self) -> Option<rustls::ProtocolVersion> {
        match self {
            Transport::Tls(t) => t.conn.protocol_version(),
            _ => None,
        }
    }

    /// The application protocol ALPN chose (`h2`, `http/1.1`), once the handshake is done.
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            Transport::Tls(t) => t.conn.alpn_protocol(),
            _ => None,
        }
    }

    /// The server name the client asked for (SNI), on a server-side TLS connection.
    pub fn sni(&self) -> Option<&str> {
        match self {
            Transport::Tls(t) => match &t.conn {
                Connection::Server(c) => c.server_name(),
                Connection::Client(_) => None,
            },
            _ => None,
        }
    }

    /// Reads what is available into the room at the tail of `buf`.
    #[inline]
    pub fn read_into(&mut self, buf: &mut Buf) -> Got {
        match self {
            Transport::Plain(s) => read_plain(s, buf),
            Transport::Tls(t) => t.read_into(buf),
            #[cfg(feature = "mem-io")]
            Transport::Mem(c) => mem::read_into(c, buf),
        }
    }

    /// Reads and throws away what the peer sends (a closing connection lingering, so that its
    /// last response is not lost to a reset). `Bytes` counts what was discarded.
    pub fn discard(&mut self) -> Got {
        match self {
            #[cfg(feature = "mem-io")]
            Transport::Mem(c) => mem::discard(c),
            Transport::Plain(s) => {
                let mut sink = [0u8; 4096];
                // bounded: `Interrupted` is retried a few times at most
                for _ in 0..8 {
                    match (&*s).read(&mut sink) {
                        Ok(0) => return Got::Eof,
                        Ok(n) => {
                            return Got::Bytes {
                                n,
                                short: n < sink.len(),
                            }
                        }
                        Err(e) => match failure(e) {
                            Outcome::Blocked => return Got::Blocked,
                            Outcome::Retry => {}
                            Outcome::Failed(e) => return Got::Failed(e),
                        },
                    }
                }
                Got::Blocked
            }
            Transport::Tls(t) => t.discard(),
        }
    }

    /// Writes some of `data`; `Done(n)` may be short. Over TLS, `n` bytes were taken by rustls
    /// and some of their records may still wait for the socket ([`Transport::wants_flush`]).
    #[inline]
    pub fn write(&mut self, data: &[u8]) -> Io {
        match self {
            Transport::Plain(s) => write_plain(s, data),
            Transport::Tls(t) => t.write(data),
            #[cfg(feature = "mem-io")]
            Transport::Mem(c) => mem::write(c, data),
        }
    }

    /// Encrypted records wait for the socket to take them.
    #[inline]
    pub fn wants_flush(&self) -> bool {
        match self {
            Transport::Tls(t) => t.conn.wants_write() || (t.shut && !t.sock_shut),
            _ => false,
        }
    }

    /// Writes waiting records to the socket: `Done` when nothing is left, `Blocked` when the
    /// socket is full.
    pub fn flush(&mut self) -> Io {
        match self {
            Transport::Tls(t) => t.flush(),
            _ => Io::Done(0),
        }
    }

    /// Ends our direction: a FIN (after a `close_notify` and whatever waits before it, over TLS).
    /// Over TLS the FIN may wait for [`Transport::flush`] to finish.
    pub fn shutdown_write(&mut self) {
        match self {
            #[cfg(feature = "mem-io")]
            Transport::Mem(c) => c.lock().shut = true,
            Transport::Plain(s) => {
                let _ = s.shutdown(Shutdown::Write);
            }
            Transport::Tls(t) => t.shutdown_write(),
        }
    }

    /// A backend connection resting in the idle pool turned readable: over TLS that may be a
    /// post-handshake message (TLS 1.3 session tickets can arrive after the first response) that
    /// leaves it reusable. True when it is still clean: nothing came but TLS housekeeping.
    pub fn absorb_idle(&mut self) -> bool {
        match self {
            Transport::Tls(t) => t.absorb(),
            _ => false,
        }
    }

    /// Nothing waits to be read and the peer has not closed: a non-blocking peek at the socket,
    /// and over TLS no plaintext or close held inside rustls either.
    pub fn nothing_to_read(&mut self) -> bool {
        #[cfg(feature = "mem-io")]
        if let Transport::Mem(c) = self {
            return mem::nothing_to_read(c);
        }
        let mut byte = [0u8; 1];
        let socket_empty = matches!(
            self.read_raw(&mut byte, false),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        );
        socket_empty
            && match self {
                Transport::Tls(t) => t.nothing_held(),
                _ => true,
            }
    }
}

/// Registered with the poll through the socket underneath; an in-memory connection has nothing
/// to register.
impl mio::event::Source for Transport {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.socket_mut().map_or(Ok(()), |s| s.register(r, t, i))
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.socket_mut().map_or(Ok(()), |s| s.reregister(r, t, i))
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        self.socket_mut().map_or(Ok(()), |s| s.deregister(r))
    }
}

fn read_plain(s: &TcpStream, buf: &mut Buf) -> Got {
    // bounded: `Interrupted` is retried a few times at most
    for _ in 0..8 {
        match buf.fill_from(s.as_raw_fd()) {
            Ok(Fill::Full) => return Got::Full,
            Ok(Fill::Read { n: 0, .. }) => return Got::Eof,
            Ok(Fill::Read { n, room }) => return Got::Bytes { n, short: n < room },
            Err(e) => match failure(e) {
                Outcome::Blocked => return Got::Blocked,
                Outcome::Retry => {}
                Outcome::Failed(e) => return Got::Failed(e),
            },
        }
    }
    Got::Blocked
}

fn write_plain(mut s: &TcpStream, data: &[u8]) -> Io {
    // bounded: `Interrupted` is retried a few times at most
    for _ in 0..8 {
        match s.write(data) {
            Ok(0) => return Io::Failed(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => return Io::Done(n),
            Err(e) => match failure(e) {
                Outcome::Blocked => return Io::Blocked,
                Outcome::Retry => {}
                Outcome::Failed(e) => return Io::Failed(e),
            },
        }
    }
    Io::Blocked
}

#[cfg(test)]
mod tests;
