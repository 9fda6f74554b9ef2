//! Bytes one way: a [`Pipe`] between two [`End`]s, and [`relay`], which moves them. The exchange
//! and the tunnel use the same two halves ([`Pipe::pull`] and [`Pipe::push`]): the request side
//! of an exchange frames its body between them, the response side parses heads between them, the
//! tunnel only passes bytes on.
//!
//! An [`End`] is either a backend connection ([`Upstream`]) or the client as its connection's
//! codec presents it to the stream: the relay never knows which socket, if any, is underneath.
//! A plain socket with its readiness (a backend connection, an HTTP/1.1 client) is a [`Socket`],
//! whose `End` is written once here; an HTTP/2 stream's client (`connection/h2/client.rs`) is an
//! `End` of its own, over the connection's frames.

use std::io;

use crate::buffer::{Buf, BufPool};
use crate::transport::{Got, Io, Side, Transport};
use crate::upstream::Upstream;

/// One end of a stream's pipes.
pub trait End {
    /// Its readiness, and where its stream stands (EOF read, our side shut).
    fn side(&self) -> Side;
    /// Reads what is there into `buf`, and notes what the read says of readiness.
    fn read(&mut self, buf: &mut Buf) -> Got;
    /// Writes some of `data` (`Done(n)` may be short), and notes what the write says.
    fn write(&mut self, data: &[u8]) -> Io;
    /// TLS records (a handshake flight, a `close_notify`) wait for the socket.
    fn wants_flush(&self) -> bool;
    /// Writes those records; `Blocked` clears writability.
    fn flush(&mut self) -> Io;
    /// No more bytes from us: a FIN (or its equivalent); the side is marked shut.
    fn shutdown_write(&mut self);
}

/// A socket and its readiness: what both sockets a stream may hold (a backend connection, and
/// an HTTP/1.1 client as its codec lends it) are to the relay. Each gives access to its parts;
/// the reads and writes over them are written once, in the [`End`] of every `Socket`.
pub trait Socket {
    fn transport(&self) -> &Transport;
    fn readiness(&self) -> Side;
    fn parts(&mut self) -> (&mut Transport, &mut Side);
}

impl<S: Socket> End for S {
    #[inline]
    fn side(&self) -> Side {
        self.readiness()
    }

    #[inline]
    fn read(&mut self, buf: &mut Buf) -> Got {
        let (transport, side) = self.parts();
        let got = transport.read_into(buf);
        side.after_read(&got);
        got
    }

    #[inline]
    fn write(&mut self, data: &[u8]) -> Io {
        let (transport, side) = self.parts();
        let io = transport.write(data);
        side.after_write(&io, data.len());
        io
    }

    #[inline]
    fn wants_flush(&self) -> bool {
        self.transport().wants_flush()
    }

    fn flush(&mut self) -> Io {
        let (transport, side) = self.parts();
        let io = transport.flush();
        if matches!(io, Io::Blocked) {
            side.writable = false;
        }
        io
    }

    fn shutdown_write(&mut self) {
        let (transport, side) = self.parts();
        transport.shutdown_write();
        side.shut = true;
    }
}

impl Socket for Upstream {
    #[inline]
    fn transport(&self) -> &Transport {
        &self.transport
    }

    #[inline]
    fn readiness(&self) -> Side {
        self.side
    }

    #[inline]
    fn parts(&mut self) -> (&mut Transport, &mut Side) {
        (&mut self.transport, &mut self.side)
    }
}

/// Bytes on their way from one end to the other, in one buffer taken from the worker's pool
/// when bytes arrive and given back as soon as it is empty.
///
/// `buf[..sent]` went out already and is kept only while a request may still be replayed
/// elsewhere; `buf[..ready]` is framed and may go; the rest waits for framing.
#[derive(Default)]
pub struct Pipe {
    pub buf: Option<Buf>,
    // u32: buffers are far below 4 GiB (config caps them), and an idle connection stays small
    sent: u32,
    ready: u32,
}

/// How a relay stopped short.
#[derive(Debug)]
pub enum Broke<E = std::convert::Infallible> {
    /// Reading the far end failed.
    From(io::Error),
    /// Writing (or flushing) the near end failed.
    To(io::Error),
    /// The bytes did not frame (what the framing step said).
    Frame(E),
}

impl Broke {
    /// The same failure of a pipe's half, as a relay with a framing step reports it.
    fn widen<E>(self) -> Broke<E> {
        match self {
            Broke::From(e) => Broke::From(e),
            Broke::To(e) => Broke::To(e),
            Broke::Frame(never) => match never {},
        }
    }
}

impl Pipe {
    /// Bytes held (sent, ready and unframed).
    #[inline]
    pub fn len(&self) -> usize {
        self.buf.as_ref().map_or(0, Buf::len)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes at the front already written.
    #[inline]
    pub fn sent(&self) -> usize {
        self.sent as usize
    }

    /// Bytes at the front framed and ready to go (sent ones included).
    #[inline]
    pub fn ready(&self) -> usize {
        self.ready as usize
    }

    #[inline]
    pub fn set_sent(&mut self, n: usize) {
        self.sent = u32::try_from(n).unwrap_or(u32::MAX);
    }

    #[inline]
    pub fn set_ready(&mut self, n: usize) {
        self.ready = u32::try_from(n).unwrap_or(u32::MAX);
    }

    /// Framed bytes not yet written.
    #[inline]
    pub fn unsent(&self) -> usize {
        self.ready.saturating_sub(self.sent) as usize
    }

    /// Reads `from` into the pipe when it is readable and has not ended (else `Blocked`); a
    /// failed read is `Broke::From`.
    pub fn pull(&mut self, from: &mut impl End, bufs: &mut BufPool) -> Result<Got, Broke> {
        let side = from.side();
        if !side.readable || side.eof {
            return Ok(Got::Blocked);
        }
        let buf = self.buf.get_or_insert_with(|| bufs.get());
        let got = from.read(buf);
        // nothing came: whoever waits holds no buffer
        bufs.put_if_empty(&mut self.buf);
        match got {
            Got::Failed(e) => Err(Broke::From(e)),
            got => Ok(got),
        }
    }

    /// Flushes `to`'s waiting records, then writes the framed bytes not yet sent. `keep`: the
    /// bytes written stay (a request that may be replayed); otherwise they are dropped at once,
    /// and an emptied buffer goes back to the pool. Returns the bytes written, or that the write
    /// side failed.
    pub fn push(
        &mut self,
        to: &mut impl End,
        keep: bool,
        bufs: &mut BufPool,
    ) -> Result<usize, Broke> {
        if !to.side().writable {
            return Ok(0);
        }
        if to.wants_flush() {
            match to.flush() {
                Io::Done(_) | Io::Blocked => {}
                Io::Eof => return Err(Broke::To(io::ErrorKind::WriteZero.into())),
                Io::Failed(e) => return Err(Broke::To(e)),
            }
        }
        if !to.side().writable || self.sent >= self.ready {
            return Ok(0);
        }
        let (sent, ready) = (self.sent(), self.ready());
        let Some(buf) = self.buf.as_mut() else {
            return Ok(0);
        };
        let Some(data) = buf.bytes().get(sent..ready) else {
            return Ok(0);
        };
        match to.write(data) {
            Io::Done(n) => {
                self.set_sent(self.sent() + n);
                if !keep {
                    self.drop_sent(bufs);
                }
                Ok(n)
            }
            Io::Blocked => Ok(0),
            Io::Eof => Err(Broke::To(io::ErrorKind::WriteZero.into())),
            Io::Failed(e) => Err(Broke::To(e)),
        }
    }

    /// Forgets the bytes already written (the request can no longer be replayed); an emptied
    /// buffer goes back to the pool.
    pub fn drop_sent(&mut self, bufs: &mut BufPool) {
        if self.sent == 0 {
            return;
        }
        let sent = self.sent();
        if let Some(buf) = self.buf.as_mut() {
            buf.consume(sent);
        }
        self.ready = self.ready.saturating_sub(self.sent);
        self.sent = 0;
        bufs.put_if_empty(&mut self.buf);
    }

    /// Drops the bytes not yet framed (what a backend sent after what is kept).
    pub fn drop_unframed(&mut self) {
        let ready = self.ready();
        if let Some(buf) = self.buf.as_mut() {
            buf.truncate_back(buf.len().saturating_sub(ready));
        }
    }

    /// Drops the framed bytes (a request served: what follows it is the next one) and starts
    /// over at the front.
    pub fn drop_framed(&mut self) {
        let ready = self.ready();
        if let Some(buf) = self.buf.as_mut() {
            buf.consume(ready);
        }
        self.sent = 0;
        self.ready = 0;
    }

    /// Empties the pipe and gives its buffer back.
    pub fn clear(&mut self, bufs: &mut BufPool) {
        bufs.put_slot(&mut self.buf);
        self.sent = 0;
        self.ready = 0;
    }
}

/// What one [`relay`] moved.
#[derive(Debug, Clone, Copy, Default)]
pub struct Moved {
    pub read: usize,
    pub written: usize,
}

/// Moves bytes one way: reads `from` into `pipe`, lets `frame` mark how much of what came may go
/// on (it runs only when bytes came), then writes that to `to`. `keep`: see [`Pipe::push`].
pub fn relay<E>(
    from: &mut impl End,
    to: &mut impl End,
    pipe: &mut Pipe,
    keep: bool,
    bufs: &mut BufPool,
    frame: impl FnOnce(&mut Pipe) -> Result<(), E>,
) -> Result<Moved, Broke<E>> {
    let read = match pipe.pull(from, bufs).map_err(Broke::widen)? {
        Got::Bytes { n, .. } => n,
        _ => 0,
    };
    if read > 0 {
        frame(pipe).map_err(Broke::Frame)?;
    }
    let written = pipe.push(to, keep, bufs).map_err(Broke::widen)?;
    Ok(Moved { read, written })
}
