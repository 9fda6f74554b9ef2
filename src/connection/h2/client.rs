//! One HTTP/2 stream as its [`Stream`](crate::stream::Stream) sees the client: the same
//! [`Client`] face HTTP/1.1 gives it, over frames.
//!
//! - Request bytes: the connection's frame loop delivers each DATA payload into the stream's
//!   request pipe as it arrives (`Stream::deliver`); `read` reports them, wrapped in one chunk
//!   when the body goes to the backend chunked (a body without `content-length`), so the stream
//!   frames and relays them as bytes read from a socket. The end of the request is in-band (the
//!   length, or the last chunk), never an end of the client's side: a client that ended its
//!   stream still waits for its answer. Only a tunnel (extended CONNECT) sees END_STREAM as the
//!   client's end.
//! - Response bytes: `write` takes the HTTP/1.1 response the stream writes (its head as ferrule
//!   rewrote it, then the body as it came) and turns it into frames on the connection's output:
//!   the head into HEADERS (HPACK, `convert::response`), the body into DATA within the stream's
//!   and the connection's send windows, a chunked body's payload without its framing and its
//!   trailers into a final HEADERS. A window at 0, or an output already full, is a side that is
//!   not writable: the stream stops reading its backend (back-pressure), and the others go on.
//! - A cut response (`cut`) resets the stream.

use std::io;
use std::time::Instant;

use super::convert::{self, Answering, BodyLength};
use super::flow::{self, RecvWindow, SendWindow};
use super::frame;
use super::hpack::Encoder;
use super::ErrorCode;
use crate::buffer::Buf;
use crate::http::{Body, Framing, Step};
use crate::stream::End;
use crate::transport::{Got, Io, Side};

/// Frames waiting for the socket beyond which streams stop writing (until the socket takes
/// them): the output's share of a connection's bounded memory.
pub(super) const OUT_LIMIT: usize = 128 * 1024;

/// The connection's output, and what every stream's writes need of the connection.
pub(super) struct Out {
    /// Frames not yet written to the socket, from `at`.
    pub bytes: Vec<u8>,
    pub at: usize,
    /// The connection's send window.
    pub send: SendWindow,
    pub encoder: Encoder,
    /// Scratch for one field block.
    pub block: Vec<u8>,
    /// The client's `SETTINGS_MAX_FRAME_SIZE`.
    pub max_frame: u32,
    /// DATA frames with a payload written: each one the client may acknowledge with
    /// WINDOW_UPDATEs, which are then no flood.
    pub data_frames: u64,
}

impl Out {
    /// Bytes waiting for the socket.
    pub fn pending(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }

    /// Room before the output is full.
    pub fn room(&self) -> usize {
        OUT_LIMIT.saturating_sub(self.pending())
    }

    /// Appends a control frame (a few bytes: never refused for room).
    pub fn put(&mut self, frame: &[u8]) {
        self.bytes.extend_from_slice(frame);
    }

    /// The socket took `n` bytes.
    pub fn wrote(&mut self, n: usize) {
        self.at += n;
        if self.at >= self.bytes.len() {
            self.bytes.clear();
            self.at = 0;
        }
    }
}

/// Where the response to a stream stands.
#[derive(Debug)]
pub(super) enum Resp {
    /// The next bytes are a response head (the first, or the one after an interim response).
    Head,
    /// The body, framed as the head said: a length or close-delimited body goes out as it is,
    /// a chunked one (`chunked`) loses its framing.
    Body { body: Body, chunked: bool },
    /// Everything was sent, END_STREAM included.
    Done,
}

/// What the connection keeps for one stream besides its [`Stream`](crate::stream::Stream).
pub(super) struct Flow {
    pub id: u32,
    pub side: Side,
    /// DATA payload delivered into the stream's request pipe and not yet reported by a read.
    pub fresh: usize,
    /// The client sent END_STREAM.
    pub ended: bool,
    /// The request body's end went to the stream (the last chunk; nothing for a length body).
    pub terminated: bool,
    /// The request body goes to the backend chunked.
    pub chunked: bool,
    /// The request's trailer section, delivered with the last chunk.
    pub trailers: Option<Vec<u8>>,
    /// An extended CONNECT: after its 200, bytes go both ways and END_STREAM is a half-close.
    pub tunnel: bool,
    pub length: BodyLength,
    pub send: SendWindow,
    pub recv: RecvWindow,
    /// The request pipe's length when credit was last counted.
    pub pipe_seen: usize,
    pub deadline: Instant,
    pub answering: Answering,
    pub resp: Resp,
    /// The response's trailer section, gathered from a chunked body.
    pub resp_trailers: Vec<u8>,
    /// The stream must be reset with this code (and then forgotten).
    pub reset: Option<ErrorCode>,
}

impl Flow {
    pub fn new(id: u32, send_window: u32, recv_window: u32, deadline: Instant) -> Flow {
        Flow {
            id,
            side: Side {
                readable: true,
                writable: true,
                ..Side::default()
            },
            fresh: 0,
            ended: false,
            terminated: false,
            chunked: false,
            trailers: None,
            tunnel: false,
            length: BodyLength::new(None),
            send: SendWindow::new(send_window),
            recv: RecvWindow::new(recv_window, recv_window),
            pipe_seen: 0,
            deadline,
            answering: Answering {
                method: crate::http::Method::Get,
                extended_connect: false,
            },
            resp: Resp::Head,
            resp_trailers: Vec::new(),
            reset: None,
        }
    }

    /// The client sent the request's end (END_STREAM): the stream reads it as one.
    pub fn end_request(&mut self) {
        self.ended = true;
        self.side.readable = true;
    }

    /// The client can send no more request bytes until the stream lets go of some: its window is
    /// spent and what it sent sits in the request pipe.
    pub fn starved(&self) -> bool {
        self.recv.get() <= 0 && self.recv.held() > 0
    }
}

/// A stream's client: its flow state and the connection's output.
pub(super) struct Client<'a> {
    pub flow: &'a mut Flow,
    pub out: &'a mut Out,
    pub sni: Option<&'a str>,
    pub tls: Option<rustls::ProtocolVersion>,
}

impl Client<'_> {
    fn refuse(&mut self, code: ErrorCode, why: &'static str) -> Io {
        log::debug!("HTTP/2 stream {}: {why}", self.flow.id);
        self.flow.reset = Some(code);
        Io::Failed(io::Error::other(why))
    }

    /// A response head (interim or final) at the front of `data`.
    fn head(&mut self, data: &[u8]) -> Io {
        self.out.block.clear();
        let r = match convert::response(
            data,
            &self.flow.answering,
            &mut self.out.encoder,
            &mut self.out.block,
        ) {
            Ok(r) => r,
            Err(convert::Invalid(why)) => return self.refuse(ErrorCode::InternalError, why),
        };
        // no body, or an empty `content-length` one: END_STREAM on the HEADERS
        let empty = r.content_length == Some(0) && !r.chunked && !r.tunnel;
        let end = (r.no_body || empty) && !r.interim;
        frame::headers(
            &mut self.out.bytes,
            self.flow.id,
            &self.out.block,
            end,
            self.out.max_frame,
        );
        if r.interim {
            return Io::Done(r.head_len);
        }
        self.flow.resp = if end {
            Resp::Done
        } else if r.chunked {
            Resp::Body {
                body: Body::new(Framing::Chunked),
                chunked: true,
            }
        } else {
            let framing = match (r.content_length, r.tunnel) {
                (Some(n), false) => Framing::Length(n),
                _ => Framing::UntilClose,
            };
            Resp::Body {
                body: Body::new(framing),
                chunked: false,
            }
        };
        if r.tunnel {
            self.flow.tunnel = true;
        }
        Io::Done(r.head_len)
    }

    /// What one DATA frame may carry now; 0 makes the side not writable.
    fn budget(&mut self, want: usize) -> usize {
        let n = flow::sendable(&self.out.send, &self.flow.send, self.out.max_frame, want)
            .min(self.out.room().saturating_sub(frame::HEADER_LEN));
        if n == 0 && want > 0 {
            self.flow.side.writable = false;
        }
        n
    }

    fn data_frame(&mut self, payload: &[u8], end: bool) {
        frame::data(&mut self.out.bytes, self.flow.id, payload, end);
        if !payload.is_empty() {
            self.out.data_frames = self.out.data_frames.saturating_add(1);
        }
        self.out.send.spend(payload.len());
        self.flow.send.spend(payload.len());
    }

    /// Body bytes, framed as the head said.
    fn body(&mut self, data: &[u8]) -> Io {
        let Resp::Body { mut body, chunked } = std::mem::replace(&mut self.flow.resp, Resp::Done)
        else {
            return Io::Done(data.len());
        };
        let result = if chunked {
            self.chunked(&mut body, data)
        } else {
            let n = self.budget(data.len());
            match data.get(..n) {
                Some(payload) if n > 0 => {
                    // the last bytes of a `content-length` body carry END_STREAM themselves:
                    // no empty DATA frame (and often no second write) after them
                    let n = match body.step(payload) {
                        Ok(Step::Payload(k)) => k,
                        _ => n,
                    };
                    let end = body.is_done();
                    self.data_frame(payload.get(..n).unwrap_or(payload), end);
                    if end {
                        return Io::Done(n); // `resp` stays Done
                    }
                    Io::Done(n)
                }
                _ => Io::Blocked,
            }
        };
        self.flow.resp = Resp::Body { body, chunked };
        result
    }

    /// A chunked body: its payload goes out as DATA, its framing is dropped, its trailers are
    /// kept for the final HEADERS.
    fn chunked(&mut self, body: &mut Body, data: &[u8]) -> Io {
        let mut consumed = 0;
        // bounded: every step consumes bytes or stops
        while let Some(rest) = data.get(consumed..).filter(|r| !r.is_empty()) {
            let in_trailers = body.in_trailers();
            let budget = if in_trailers {
                rest.len()
            } else {
                self.budget(rest.len())
            };
            if budget == 0 {
                break;
            }
            let slice = rest.get(..budget).unwrap_or(rest);
            match body.step(slice) {
                Ok(Step::Payload(n)) => {
                    if let Some(payload) = slice.get(..n) {
                        self.data_frame(payload, false);
                    }
                    consumed += n;
                }
                Ok(Step::Framing(n)) => {
                    if in_trailers {
                        self.flow
                            .resp_trailers
                            .extend_from_slice(slice.get(..n).unwrap_or_default());
                    }
                    consumed += n;
                }
                Ok(Step::Blocked | Step::Done) => break,
                Err(_) => return self.refuse(ErrorCode::InternalError, "bad chunked body"),
            }
        }
        if consumed == 0 {
            Io::Blocked
        } else {
            Io::Done(consumed)
        }
    }
}

impl End for Client<'_> {
    fn side(&self) -> Side {
        self.flow.side
    }

    /// Reports the DATA delivered since the last read (already in `buf`: the stream's request
    /// pipe), wrapped in one chunk for a chunked body, and the body's end once the client ended
    /// its stream.
    fn read(&mut self, buf: &mut Buf) -> Got {
        let mut n = 0;
        let delivered = self.flow.fresh;
        if self.flow.fresh > 0 {
            let fresh = std::mem::take(&mut self.flow.fresh);
            n += fresh;
            if self.flow.chunked {
                let head = convert::chunk_head(fresh);
                let at = buf.len().saturating_sub(fresh);
                if buf.replace_at(at, 0, head.as_bytes()) {
                    n += head.as_bytes().len();
                }
                n += buf.push(convert::CHUNK_END);
            }
        }
        if self.flow.ended && !self.flow.terminated && self.flow.fresh == 0 {
            self.flow.terminated = true;
            if self.flow.chunked {
                match self.flow.trailers.take() {
                    Some(section) => {
                        n += buf.push(b"0\r\n");
                        n += buf.push(&section);
                    }
                    None => n += buf.push(convert::LAST_CHUNK),
                }
            }
        }
        self.flow.side.readable = false;
        // the framing added here sits in the pipe too: counted, so that its leaving is not
        // taken for DATA let go of
        self.flow.pipe_seen += n.saturating_sub(delivered);
        if n > 0 {
            Got::Bytes { n, short: true }
        } else if self.flow.tunnel && self.flow.ended {
            self.flow.side.eof = true;
            Got::Eof
        } else {
            Got::Blocked
        }
    }

    fn write(&mut self, data: &[u8]) -> Io {
        if self.out.room() < frame::HEADER_LEN * 2 {
            self.flow.side.writable = false;
            return Io::Blocked;
        }
        match self.flow.resp {
            Resp::Head => self.head(data),
            Resp::Body { .. } => self.body(data),
            Resp::Done => Io::Done(data.len()),
        }
    }

    fn wants_flush(&self) -> bool {
        false
    }

    fn flush(&mut self) -> Io {
        Io::Done(0)
    }

    /// A tunnel's end towards the client: END_STREAM.
    fn shutdown_write(&mut self) {
        if !matches!(self.flow.resp, Resp::Done) {
            frame::data(&mut self.out.bytes, self.flow.id, &[], true);
            self.flow.resp = Resp::Done;
        }
        self.flow.side.shut = true;
    }
}

impl crate::stream::Client for Client<'_> {
    fn cut(&mut self) {
        self.flow.reset = Some(ErrorCode::InternalError);
    }

    fn sni(&self) -> Option<&str> {
        self.sni
    }

    fn tls_version(&self) -> Option<rustls::ProtocolVersion> {
        self.tls
    }

    fn starved(&self) -> bool {
        self.flow.starved()
    }

    fn http2(&self) -> bool {
        true
    }
}
