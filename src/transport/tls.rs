//! The TLS half of [`Transport`](super::Transport): a TCP socket under a rustls connection, read
//! and written with the same outcomes as a plain socket ([`Got`], [`Io`]).
//!
//! Reads let rustls read the socket (`read_tls`), decrypt (`process_new_packets`), and copy the
//! plaintext into the caller's [`Buf`]; records rustls must send on its own (handshake flights,
//! alerts, key updates) are flushed as soon as they appear. Writes hand plaintext to rustls, which
//! encrypts it into its outgoing queue (bounded: [`TLS_BUFFER_LIMIT`](super::TLS_BUFFER_LIMIT), so
//! back-pressure holds), then flush. A peer that ends the TCP stream without `close_notify` has
//! not ended the TLS stream: [`Tls::closed_cleanly`] tells the two apart (a close-delimited body
//! cut that way is truncated, RFC 8446 §6.1).

use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;
use rustls::Connection;

use super::{failure, Got, Io, Outcome};
use crate::buffer::Buf;

/// Socket reads per [`Tls::read_into`] before it reports what it has. Reads that bring no
/// plaintext do not stop early: rustls reads at most ~4 KiB at a time, so this many reads is
/// ~256 KiB of records; a peer that sends that much without a byte of application data (or
/// handshake progress) is refused, rather than left readable with no event to come.
const TLS_READS: usize = 64;

/// A TCP socket under a rustls connection.
pub struct Tls {
    pub(super) sock: TcpStream,
    pub(super) conn: Connection,
    /// No byte has been read yet (a client speaking plain HTTP to the TLS port shows in it).
    first: bool,
    /// The first bytes looked like a plain HTTP request, not a TLS record.
    pub(super) plain_http: bool,
    /// Our side is shut (close_notify queued); the socket's write side closes once it is flushed.
    pub(super) shut: bool,
    /// The socket's write side has been shut.
    pub(super) sock_shut: bool,
    /// The peer sent `close_notify`: once its plaintext is read, the stream has ended.
    peer_closed: bool,
    pub(super) error: Option<rustls::Error>,
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
                    *self.plain_http = buf.first().is_some_and(u8::is_ascii_uppercase);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.short = true,
            Err(_) => {}
        }
        result
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
    pub(super) fn new(sock: TcpStream, mut conn: Connection) -> Tls {
        conn.set_buffer_limit(Some(super::TLS_BUFFER_LIMIT));
        Tls {
            sock,
            conn,
            first: true,
            plain_http: false,
            shut: false,
            sock_shut: false,
            peer_closed: false,
            error: None,
        }
    }

    /// The peer ended the TLS stream with `close_notify` (not just a TCP FIN).
    pub(super) fn closed_cleanly(&self) -> bool {
        self.peer_closed
    }

    /// The error a failed read reports: the TLS error's kind, or the socket's.
    fn tls_failure(&self) -> io::Error {
        io::Error::from(io::ErrorKind::InvalidData)
    }

    /// Reads the socket once into rustls and processes what came.
    fn pump_once(&mut self) -> Result<Pumped, io::Error> {
        let mut rd = Reading {
            sock: &self.sock,
            short: false,
            first: &mut self.first,
            plain_http: &mut self.plain_http,
        };
        // bounded: `Interrupted` is retried a few times at most
        let mut read = Ok(0);
        for _ in 0..8 {
            read = self.conn.read_tls(&mut rd);
            if !matches!(&read, Err(e) if e.kind() == io::ErrorKind::Interrupted) {
                break;
            }
        }
        let short = rd.short;
        let pumped = match read {
            Ok(0) => Pumped::Eof,
            Ok(_) => Pumped::Read { short },
            // rustls's plaintext buffer is full: the caller drains it first, so this is not
            // reached in practice; treat it as "nothing read"
            Err(e) if e.kind() == io::ErrorKind::Other => Pumped::Blocked,
            Err(e) => match failure(e) {
                Outcome::Blocked | Outcome::Retry => Pumped::Blocked,
                Outcome::Failed(e) => return Err(e),
            },
        };
        match self.conn.process_new_packets() {
            Ok(state) => self.peer_closed |= state.peer_has_closed(),
            Err(e) => {
                self.error = Some(e);
                if !self.plain_http {
                    // send the alert rustls queued, best effort (a plain-HTTP client gets a plain
                    // answer from the connection instead)
                    let _ = self.flush();
                }
                return Err(self.tls_failure());
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
    pub(super) fn absorb(&mut self) -> bool {
        for _ in 0..TLS_READS {
            match self.pump_once() {
                Ok(Pumped::Read { short: false }) => continue,
                Ok(Pumped::Read { short: true } | Pumped::Blocked) => break,
                Ok(Pumped::Eof) | Err(_) => return false,
            }
        }
        self.nothing_held()
    }

    /// No plaintext or close waits inside rustls.
    pub(super) fn nothing_held(&mut self) -> bool {
        self.conn
            .process_new_packets()
            .is_ok_and(|state| state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed())
    }

    /// Moves decrypted plaintext into `buf` (or drops it, with no `buf`); returns the bytes
    /// moved and whether more waits.
    fn drain_plaintext(&mut self, mut buf: Option<&mut Buf>) -> (usize, bool) {
        let mut moved = 0;
        // bounded: each round moves a chunk or stops
        for _ in 0..64 {
            let mut reader = self.conn.reader();
            let chunk = match std::io::BufRead::fill_buf(&mut reader) {
                Ok(chunk) if !chunk.is_empty() => chunk,
                _ => return (moved, false),
            };
            let n = match buf.as_deref_mut() {
                Some(buf) => buf.push(chunk),
                None => chunk.len(),
            };
            std::io::BufRead::consume(&mut reader, n);
            moved += n;
            if n == 0 {
                return (moved, true);
            }
        }
        (moved, true)
    }

    /// Reads and throws away what the peer sends (see `Transport::discard`).
    pub(super) fn discard(&mut self) -> Got {
        let got = match self.pump_once() {
            Ok(Pumped::Read { short }) => Got::Bytes { n: 1, short },
            Ok(Pumped::Blocked) => Got::Blocked,
            Ok(Pumped::Eof) => Got::Eof,
            Err(e) => Got::Failed(e),
        };
        self.drain_plaintext(None);
        if self.peer_closed {
            return Got::Eof;
        }
        got
    }

    pub(super) fn read_into(&mut self, buf: &mut Buf) -> Got {
        if buf.is_full() {
            return Got::Full;
        }
        if self.peer_closed {
            let (n, _) = self.drain_plaintext(Some(buf));
            return moved_or(n, false, Got::Eof);
        }
        let mut moved = 0;
        for _ in 0..TLS_READS {
            let (n, more) = self.drain_plaintext(Some(buf));
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
                Err(e) => return Got::Failed(e),
            };
            match pumped {
                Pumped::Read { short } => {
                    let (n, more) = self.drain_plaintext(Some(buf));
                    moved += n;
                    if self.peer_closed && !more {
                        // close_notify: what came before it is delivered, then the end
                        return moved_or(moved, false, Got::Eof);
                    }
                    if more || (!short && !buf.is_full()) {
                        continue;
                    }
                    if moved > 0 || short {
                        return moved_or(moved, short, Got::Blocked);
                    }
                }
                Pumped::Blocked => return moved_or(moved, true, Got::Blocked),
                Pumped::Eof => {
                    let (n, _) = self.drain_plaintext(Some(buf));
                    moved += n;
                    // when bytes came, the end shows on the next read
                    return moved_or(moved, false, Got::Eof);
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
            Got::Failed(io::Error::from(io::ErrorKind::InvalidData))
        }
    }

    /// Hands `data` to rustls and flushes, until all is taken or the socket is full: a short
    /// `Done` means the socket is full, as for a plain socket (the connection's readiness rule).
    /// Bytes rustls took count as written even when a flush after them fails: they may have
    /// reached the peer (a request that is not idempotent must not be sent twice); the failure
    /// shows at the next write or flush.
    pub(super) fn write(&mut self, data: &[u8]) -> Io {
        if self.shut {
            return Io::Failed(io::Error::from(io::ErrorKind::BrokenPipe));
        }
        let mut taken = 0;
        // bounded: each round hands over up to TLS_BUFFER_LIMIT bytes or stops
        for _ in 0..16 {
            match self.flush() {
                Io::Failed(_) | Io::Eof if taken > 0 => break,
                Io::Failed(e) => return Io::Failed(e),
                Io::Eof => return Io::Eof,
                Io::Blocked => break,
                Io::Done(_) if taken == data.len() => break,
                Io::Done(_) => {}
            }
            match self
                .conn
                .writer()
                .write(data.get(taken..).unwrap_or_default())
            {
                Ok(0) => break,
                Ok(n) => taken += n,
                Err(e) if taken > 0 => {
                    drop(e);
                    break;
                }
                Err(e) => return Io::Failed(e),
            }
        }
        if taken == 0 {
            Io::Blocked
        } else {
            Io::Done(taken)
        }
    }

    pub(super) fn flush(&mut self) -> Io {
        let mut written = 0;
        // bounded: each round writes bytes or stops
        for _ in 0..64 {
            if !self.conn.wants_write() {
                break;
            }
            match self.conn.write_tls(&mut &self.sock) {
                Ok(0) => return Io::Failed(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => written += n,
                Err(e) => match failure(e) {
                    Outcome::Blocked => return Io::Blocked,
                    Outcome::Retry => {}
                    Outcome::Failed(e) => return Io::Failed(e),
                },
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

    /// Ends our direction: `close_notify`, then the FIN once the records are out.
    pub(super) fn shutdown_write(&mut self) {
        if !self.shut {
            self.shut = true;
            self.conn.send_close_notify();
        }
        let _ = self.flush();
    }
}

/// A read's result: the `moved` plaintext bytes (`short` when the socket is drained), or `none`
/// when there were none.
fn moved_or(moved: usize, short: bool, none: Got) -> Got {
    if moved > 0 {
        Got::Bytes { n: moved, short }
    } else {
        none
    }
}
