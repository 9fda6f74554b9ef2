//! In-memory connections (feature `mem-io`, for the `session` fuzz target): a [`Transport`] whose
//! peer is a script of bytes held by whoever drives the session, so the real state machine runs
//! with no socket at all. Never part of a release build.
//!
//! The driver decides what the peer has sent so far (`sent`), when it closes or resets, and how
//! much it will take before ferrule's writes block (`room`); ferrule's reads and writes see exactly
//! that, with a socket's outcomes (`Blocked` when nothing is there, a short read when the sent
//! bytes are used up, `Eof` after a close, `Failed` after a reset).
//!
//! [`Transport`]: super::Transport

use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Got, Io};
use crate::buffer::Buf;

/// Both directions of one in-memory connection, as its peer sees them.
#[derive(Debug, Default)]
pub struct Pipe {
    /// Everything the peer will send.
    pub script: Vec<u8>,
    /// How much of `script` the peer has sent so far.
    pub sent: usize,
    /// How much of it ferrule has read.
    pub read: usize,
    /// The most one read hands over (at least 1).
    pub piece: usize,
    /// The peer closed its side after what it sent.
    pub eof: bool,
    /// The connection failed: reads and writes fail, a connect is refused.
    pub reset: bool,
    /// The connect has not completed yet (a backend connection).
    pub connecting: bool,
    /// What ferrule wrote.
    pub written: Vec<u8>,
    /// Bytes the peer takes before ferrule's writes block.
    pub room: usize,
    /// ferrule shut its side (a FIN).
    pub shut: bool,
    /// ferrule asked for a reset on close (linger 0).
    pub abort: bool,
}

/// One end of a [`Pipe`]: the transport's, and the driver's clone of it.
pub type Conn = Arc<Mutex<Pipe>>;

impl Pipe {
    /// A peer that will send `script`, `piece` bytes a read at most, and takes `room` bytes.
    pub fn new(script: Vec<u8>, piece: usize, room: usize) -> Conn {
        Arc::new(Mutex::new(Pipe {
            script,
            piece: piece.max(1),
            room,
            ..Pipe::default()
        }))
    }

    /// Sent and not yet read.
    fn waiting(&self) -> &[u8] {
        let end = self.sent.min(self.script.len());
        self.script.get(self.read..end).unwrap_or(&[])
    }

    /// The peer sends up to `n` more bytes of its script; returns how many.
    pub fn send(&mut self, n: usize) -> usize {
        let before = self.sent;
        self.sent = self.sent.saturating_add(n).min(self.script.len());
        self.sent - before
    }

    /// All of the script has been sent.
    pub fn all_sent(&self) -> bool {
        self.sent >= self.script.len()
    }

    /// Bytes sent that ferrule has not read.
    pub fn unread(&self) -> usize {
        self.waiting().len()
    }
}

pub(super) fn read_into(conn: &Conn, buf: &mut Buf) -> Got {
    let mut p = conn.lock();
    if p.reset {
        return Got::Failed(io::ErrorKind::ConnectionReset.into());
    }
    if buf.is_full() {
        return Got::Full;
    }
    let piece = p.piece;
    let waiting = p.waiting();
    if waiting.is_empty() {
        return if p.eof { Got::Eof } else { Got::Blocked };
    }
    let n = buf.push(&waiting[..waiting.len().min(piece)]);
    p.read += n;
    Got::Bytes {
        n,
        short: p.waiting().is_empty(),
    }
}

pub(super) fn read_raw(conn: &Conn, out: &mut [u8], consume: bool) -> io::Result<usize> {
    let mut p = conn.lock();
    if p.reset {
        return Err(io::ErrorKind::ConnectionReset.into());
    }
    let piece = p.piece;
    let waiting = p.waiting();
    if waiting.is_empty() {
        return if p.eof {
            Ok(0)
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        };
    }
    // a peek sees everything that arrived, a read takes a piece at most
    let n = if consume {
        waiting.len().min(piece).min(out.len())
    } else {
        waiting.len().min(out.len())
    };
    out[..n].copy_from_slice(&waiting[..n]);
    if consume {
        p.read += n;
    }
    Ok(n)
}

pub(super) fn write(conn: &Conn, data: &[u8]) -> Io {
    let mut p = conn.lock();
    if p.reset || p.shut {
        return Io::Failed(io::ErrorKind::ConnectionReset.into());
    }
    let n = data.len().min(p.room);
    if n == 0 {
        return if data.is_empty() {
            Io::Done(0)
        } else {
            Io::Blocked
        };
    }
    p.written.extend_from_slice(&data[..n]);
    p.room -= n;
    Io::Done(n)
}

pub(super) fn discard(conn: &Conn) -> Got {
    let mut p = conn.lock();
    if p.reset {
        return Got::Failed(io::ErrorKind::ConnectionReset.into());
    }
    let n = p.unread();
    if n == 0 {
        return if p.eof { Got::Eof } else { Got::Blocked };
    }
    p.read += n;
    Got::Bytes { n, short: true }
}

pub(super) fn connect_state(conn: &Conn) -> io::Result<bool> {
    let p = conn.lock();
    if p.reset {
        return Err(io::ErrorKind::ConnectionRefused.into());
    }
    Ok(!p.connecting)
}

pub(super) fn nothing_to_read(conn: &Conn) -> bool {
    let p = conn.lock();
    p.unread() == 0 && !p.eof && !p.reset
}
