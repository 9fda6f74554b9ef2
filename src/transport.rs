//! One read/write/shutdown face over a plain TCP socket or a rustls connection, for both ends of a
//! session: the client side (`rustls::ServerConnection`, TLS termination) and the backend side
//! (`rustls::ClientConnection`, `https://` backends). `session.rs` and `http/` never ask which one
//! they have; the configurations come from `tls.rs`.
//!
//! Plain reads go straight from the socket into the session's [`Buf`] (one `recv(2)`). TLS reads
//! let rustls read the socket (`read_tls`), decrypt (`process_new_packets`), and copy the
//! plaintext into the `Buf`; records rustls must send on its own (handshake flights, alerts, key
//! updates) are flushed as soon as they appear. Writes hand plaintext to rustls, which encrypts it
//! into its outgoing queue (bounded: [`TLS_BUFFER_LIMIT`], so back-pressure holds), then flush.
//!
//! Edge-triggered readiness: the poll reports a socket once per change, so the session keeps
//! readiness in user space and only clears it when a read or write says the socket is drained or
//! full. Over TLS, bytes can wait inside rustls after the socket is drained: decrypted plaintext
//! that did not fit the `Buf` (a read then reports `short: false`, so the session reads again once
//! it has room), and encrypted records not yet written ([`Transport::wants_flush`]: the session
//! flushes them whenever the socket is writable, and before it half-closes or closes).

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

use crate::buffer::{Buf, Fill};

#[cfg(feature = "mem-io")]
pub mod mem;

/// Encrypted bytes (and, before the handshake ends, plaintext) rustls may queue for one
/// connection before a write is refused: the TLS share of a connection's bounded memory.
pub const TLS_BUFFER_LIMIT: usize = 64 * 1024;
/// Socket reads per [`Transport::read_into`] over TLS before it reports what it has. Reads
/// that bring no plaintext do not stop early: rustls reads at most ~4 KiB at a time, so this many
/// reads is ~256 KiB of records; a peer that sends that much without a byte of application data
/// (or handshake progress) is refused, rather than left readable with no event to come.
const TLS_READS: usize = 64;

/// The outcome of one read into a [`Buf`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// The connection failed (reset, or a TLS error: see [`Transport::tls_error`]).
    Failed,
}

/// The outcome of one write or flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    Done(usize),
    Blocked,
    Eof,
    Failed,
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

/// A TCP socket under a rustls connection.
pub struct Tls {
    sock: TcpStream,
    conn: Connection,
    /// No byte has been read yet (a client speaking plain HTTP to the TLS port shows in it).
    first: bool,
    /// The first bytes looked like a plain HTTP request, not a TLS record.
    plain_http: bool,
    /// Our side is shut (close_notify queued); the socket's write side closes once it is flushed.
    shut: bool,
    /// The socket's write side has been shut.
    sock_shut: bool,
    /// The peer sent `close_notify`: once its plaintext is read, the stream has ended.
    peer_closed: bool,
    error: Option<rustls::Error>,
}

/// Reads the socket for rustls, noting whether the read drained it.
struct Reading<'a> {
    sock: &'a TcpStream,
    /// The last read returned fewer bytes than asked (or would block): the socket is drained.
    short: bool,
    first: &'a mut bool,
    plain_http: &'a mut bool,
}

impl Read for Reading<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = (&*self.sock).read(buf);
        match &result {
            Ok(n) => {
                self.short = *n < buf.len();
                if *self.first && *n > 0 {
                    *self.first = false;
                    // a TLS connection starts with a handshake record (22); a plain request with
                    // the letters of its method
                    *self.plain_http = buf[0].is_ascii_uppercase();
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.short = true,
            Err(_) => {}
        }
        result
    }
}

impl Transport {
    /// A client connection on a TLS listener.
    pub fn server(sock: TcpStream, config: &Arc<ServerConfig>) -> Result<Transport, rustls::Error> {
        let conn = ServerConnection::new(Arc::clone(config))?;
        Ok(Transport::tls(sock, conn.into()))
    }

    /// A connection to an `https://` backend, verified against `name`.
    pub fn client(
        sock: TcpStream,
        config: &Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<Transport, rustls::Error> {
        let conn = ClientConnection::new(Arc::clone(config), name)?;
        Ok(Transport::tls(sock, conn.into()))
    }

    fn tls(sock: TcpStream, mut conn: Connection) -> Transport {
        conn.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        Transport::Tls(Box::new(Tls {
            sock,
            conn,
            first: true,
            plain_http: false,
            shut: false,
            sock_shut: false,
            peer_closed: false,
            error: None,
        }))
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
        match self {
            #[cfg(feature = "mem-io")]
            Transport::Mem(_) => false,
            Transport::Plain(_) => false,
            Transport::Tls(t) => t.conn.is_handshaking(),
        }
    }

    /// The TLS error that failed the connection, if one did.
    pub fn tls_error(&self) -> Option<&rustls::Error> {
        match self {
            #[cfg(feature = "mem-io")]
            Transport::Mem(_) => None,
            Transport::Plain(_) => None,
            Transport::Tls(t) => t.error.as_ref(),
        }
    }

    /// The peer spoke plain HTTP to a TLS listener.
    pub fn spoke_plain_http(&self) -> bool {
        matches!(self, Transport::Tls(t) if t.plain_http)
    }

    /// The negotiated TLS version, once the handshake is done.
    pub fn tls_version(&self) -> Option<rustls::ProtocolVersion> {
        match self {
            #[cfg(feature = "mem-io")]
            Transport::Mem(_) => None,
            Transport::Plain(_) => None,
            Transport::Tls(t) => t.conn.protocol_version(),
        }
    }

    /// The server name the client asked for (SNI), on a server-side TLS connection.
    pub fn sni(&self) -> Option<&str> {
        match self {
            Transport::Tls(t) => match &t.conn {
                Connection::Server(c) => c.server_name(),
                Connection::Client(_) => None,
            },
            #[cfg(feature = "mem-io")]
            Transport::Mem(_) => None,
            Transport::Plain(_) => None,
        }
    }

    /// Reads what is available into the room at the tail of `buf`.
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
                loop {
                    return match (&*s).read(&mut sink) {
                        Ok(0) => Got::Eof,
                        Ok(n) => Got::Bytes {
                            n,
                            short: n < sink.len(),
                        },
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Got::Blocked,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => Got::Failed,
                    };
                }
            }
            Transport::Tls(t) => {
                let got = match t.pump_once() {
                    Ok(Pumped::Read { short }) => Got::Bytes { n: 1, short },
                    Ok(Pumped::Blocked) => Got::Blocked,
                    Ok(Pumped::Eof) => Got::Eof,
                    Err(()) => Got::Failed,
                };
                // bounded: each round consumes a chunk
                for _ in 0..64 {
                    let mut reader = t.conn.reader();
                    let len = match std::io::BufRead::fill_buf(&mut reader) {
                        Ok(chunk) if !chunk.is_empty() => chunk.len(),
                        _ => break,
                    };
                    std::io::BufRead::consume(&mut reader, len);
                }
                if t.peer_closed {
                    return Got::Eof;
                }
                got
            }
        }
    }

    /// Writes some of `data`; `Done(n)` may be short. Over TLS, `n` bytes were taken by rustls
    /// and some of their records may still wait for the socket ([`Transport::wants_flush`]).
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
            #[cfg(feature = "mem-io")]
            Transport::Mem(_) => false,
            Transport::Plain(_) => false,
            Transport::Tls(t) => t.conn.wants_write() || (t.shut && !t.sock_shut),
        }
    }

    /// Writes waiting records to the socket: `Done` when nothing is left, `Blocked` when the
    /// socket is full.
    pub fn flush(&mut self) -> Io {
        match self {
            #[cfg(feature = "mem-io")]
            Transport::Mem(_) => Io::Done(0),
            Transport::Plain(_) => Io::Done(0),
            Transport::Tls(t) => t.flush(),
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
            Transport::Tls(t) => {
                if !t.shut {
                    t.shut = true;
                    t.conn.send_close_notify();
                }
                let _ = t.flush();
            }
        }
    }

    /// A backend connection resting in the idle pool turned readable: over TLS that may be a
    /// post-handshake message (TLS 1.3 session tickets can arrive after the first response) that
    /// leaves it reusable. True when it is still clean: nothing came but TLS housekeeping.
    pub fn absorb_idle(&mut self) -> bool {
        match self {
            #[cfg(feature = "mem-io")]
            Transport::Mem(_) => false,
            Transport::Plain(_) => false,
            Transport::Tls(t) => t.absorb(),
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
                #[cfg(feature = "mem-io")]
                Transport::Mem(_) => true,
                Transport::Plain(_) => true,
                Transport::Tls(t) => t.conn.process_new_packets().is_ok_and(|state| {
                    state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed()
                }),
            }
    }
}

/// Registered with the poll through the socket underneath; an in-memory connection has nothing
/// to register.
impl mio::event::Source for Transport {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        self.socket_mut()
            .map_or(Ok(()), |s| s.register(registry, token, interests))
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        self.socket_mut()
            .map_or(Ok(()), |s| s.reregister(registry, token, interests))
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        self.socket_mut().map_or(Ok(()), |s| s.deregister(registry))
    }
}

fn read_plain(s: &TcpStream, buf: &mut Buf) -> Got {
    loop {
        return match buf.fill_from(s.as_raw_fd()) {
            Ok(Fill::Full) => Got::Full,
            Ok(Fill::Read { n: 0, .. }) => Got::Eof,
            Ok(Fill::Read { n, room }) => Got::Bytes { n, short: n < room },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Got::Blocked,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => Got::Failed,
        };
    }
}

fn write_plain(mut s: &TcpStream, data: &[u8]) -> Io {
    loop {
        return match s.write(data) {
            Ok(0) => Io::Failed,
            Ok(n) => Io::Done(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Io::Blocked,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => Io::Failed,
        };
    }
}

/// What one round of socket reading gave rustls.
enum Pumped {
    /// Records were read and processed (`short`: the socket is drained).
    Read { short: bool },
    /// The socket had nothing.
    Blocked,
    /// The socket reached its end.
    Eof,
}

impl Tls {
    /// Reads the socket once into rustls and processes what came.
    fn pump_once(&mut self) -> Result<Pumped, ()> {
        let mut rd = Reading {
            sock: &self.sock,
            short: false,
            first: &mut self.first,
            plain_http: &mut self.plain_http,
        };
        let read = loop {
            match self.conn.read_tls(&mut rd) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let short = rd.short;
        let pumped = match read {
            Ok(0) => Pumped::Eof,
            Ok(_) => Pumped::Read { short },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Pumped::Blocked,
            // rustls's plaintext buffer is full: the caller drains it first, so this is not
            // reached in practice; treat it as "nothing read"
            Err(e) if e.kind() == io::ErrorKind::Other => Pumped::Blocked,
            Err(_) => return Err(()),
        };
        match self.conn.process_new_packets() {
            Ok(state) => self.peer_closed |= state.peer_has_closed(),
            Err(e) => {
                self.error = Some(e);
                if !self.plain_http {
                    // send the alert rustls queued, best effort (a plain-HTTP client gets a plain
                    // answer from the session instead)
                    let _ = self.flush();
                }
                return Err(());
            }
        }
        if self.conn.wants_write() {
            // handshake flights, alerts, key updates: out at once, or when the socket is writable
            let _ = self.flush();
        }
        Ok(pumped)
    }

    /// Reads and processes until the socket would block (bounded), for a connection at rest:
    /// true when it stays clean (no plaintext, no close, no error).
    fn absorb(&mut self) -> bool {
        for _ in 0..TLS_READS {
            match self.pump_once() {
                Ok(Pumped::Read { short: false }) => continue,
                Ok(Pumped::Read { short: true } | Pumped::Blocked) => break,
                Ok(Pumped::Eof) | Err(()) => return false,
            }
        }
        self.conn
            .process_new_packets()
            .is_ok_and(|state| state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed())
    }

    /// Moves decrypted plaintext into `buf`; returns the bytes moved and whether more waits.
    fn drain_plaintext(&mut self, buf: &mut Buf) -> (usize, bool) {
        let mut moved = 0;
        // bounded: each round moves a chunk or stops
        for _ in 0..64 {
            let mut reader = self.conn.reader();
            let chunk = match std::io::BufRead::fill_buf(&mut reader) {
                Ok(chunk) if !chunk.is_empty() => chunk,
                _ => return (moved, false),
            };
            let n = buf.push(chunk);
            std::io::BufRead::consume(&mut reader, n);
            moved += n;
            if n == 0 {
                return (moved, true);
            }
        }
        (moved, true)
    }

    fn read_into(&mut self, buf: &mut Buf) -> Got {
        if buf.is_full() {
            return Got::Full;
        }
        if self.peer_closed {
            let (n, _) = self.drain_plaintext(buf);
            return if n > 0 {
                Got::Bytes { n, short: false }
            } else {
                Got::Eof
            };
        }
        let mut moved = 0;
        for _ in 0..TLS_READS {
            let (n, more) = self.drain_plaintext(buf);
            moved += n;
            if more {
                // the buffer filled with plaintext still waiting: not drained
                return Got::Bytes {
                    n: moved,
                    short: false,
                };
            }
            let pumped = match self.pump_once() {
                Ok(p) => p,
                Err(()) => return Got::Failed,
            };
            match pumped {
                Pumped::Read { short } => {
                    let (n, more) = self.drain_plaintext(buf);
                    moved += n;
                    if self.peer_closed && !more {
                        // close_notify: what came before it is delivered, then the end
                        return if moved > 0 {
                            Got::Bytes {
                                n: moved,
                                short: false,
                            }
                        } else {
                            Got::Eof
                        };
                    }
                    if more || (!short && !buf.is_full()) {
                        continue;
                    }
                    if moved > 0 {
                        return Got::Bytes { n: moved, short };
                    }
                    if short {
                        return Got::Blocked;
                    }
                }
                Pumped::Blocked => {
                    return if moved > 0 {
                        Got::Bytes {
                            n: moved,
                            short: true,
                        }
                    } else {
                        Got::Blocked
                    };
                }
                Pumped::Eof => {
                    let (n, _) = self.drain_plaintext(buf);
                    moved += n;
                    return if moved > 0 {
                        // the end shows on the next read
                        Got::Bytes {
                            n: moved,
                            short: false,
                        }
                    } else {
                        Got::Eof
                    };
                }
            }
        }
        if moved > 0 {
            Got::Bytes {
                n: moved,
                short: false,
            }
        } else if self.conn.is_handshaking() {
            // a long handshake flight still arriving: not drained, so report it as read (the
            // handshake's caller keeps reading while readable)
            Got::Bytes { n: 0, short: false }
        } else {
            Got::Failed
        }
    }

    /// Hands `data` to rustls and flushes, until all is taken or the socket is full: a short
    /// `Done` means the socket is full, as for a plain socket (the session's readiness rule).
    fn write(&mut self, data: &[u8]) -> Io {
        if self.shut {
            return Io::Failed;
        }
        let mut taken = 0;
        // bounded: each round hands over up to TLS_BUFFER_LIMIT bytes or stops
        for _ in 0..16 {
            match self.flush() {
                Io::Failed | Io::Eof => return Io::Failed,
                Io::Blocked => break,
                Io::Done(_) if taken == data.len() => break,
                Io::Done(_) => {}
            }
            match self.conn.writer().write(&data[taken..]) {
                Ok(0) => break,
                Ok(n) => taken += n,
                Err(_) => return Io::Failed,
            }
        }
        if taken == 0 {
            Io::Blocked
        } else {
            Io::Done(taken)
        }
    }

    fn flush(&mut self) -> Io {
        let mut written = 0;
        // bounded: each round writes bytes or stops
        for _ in 0..64 {
            if !self.conn.wants_write() {
                break;
            }
            match self.conn.write_tls(&mut &self.sock) {
                Ok(0) => return Io::Failed,
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Io::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Io::Failed,
            }
        }
        if self.conn.wants_write() {
            return Io::Blocked;
        }
        if self.shut && !self.sock_shut {
            self.sock_shut = true;
            let _ = self.sock.shutdown(Shutdown::Write);
        }
        Io::Done(written)
    }
}
