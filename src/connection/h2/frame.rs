//! HTTP/2 frames (RFC 9113 §4, §6): the connection preface (§3.4), the 9-byte frame header
//! (§4.1), and every frame type a client may send, parsed from a byte slice; and the frames a
//! server sends, written without allocation (fixed-size frames as arrays, the rest appended to a
//! [`Sink`]: a growing `Vec<u8>` or the worker's fixed [`Buf`]).
//!
//! [`parse`] reads one frame from the front of what the connection has buffered and checks what
//! the frame alone can tell (the connection's state machine checks the rest):
//!
//! | rule | error |
//! |---|---|
//! | length over our `SETTINGS_MAX_FRAME_SIZE` (§4.2) | connection FRAME_SIZE_ERROR, from the header alone |
//! | a frame too short for its fixed fields, padding length or priority (§4.2) | connection FRAME_SIZE_ERROR |
//! | padding as long as the payload or longer (§6.1, §6.2) | connection PROTOCOL_ERROR |
//! | DATA, HEADERS, PRIORITY, RST_STREAM, CONTINUATION on stream 0; SETTINGS, PING, GOAWAY on another (§6) | connection PROTOCOL_ERROR |
//! | PRIORITY not 5 bytes (§6.3) | stream FRAME_SIZE_ERROR |
//! | RST_STREAM not 4, PING not 8, WINDOW_UPDATE not 4, SETTINGS not a multiple of 6, SETTINGS ACK not empty (§6.4, §6.5, §6.7, §6.9) | connection FRAME_SIZE_ERROR |
//! | a stream depending on itself (§5.3.1): PRIORITY | stream PROTOCOL_ERROR |
//! | the same in HEADERS | connection PROTOCOL_ERROR (its field block is not decoded, so the HPACK state could not follow: §5.4.1 lets a stream error end the connection) |
//! | WINDOW_UPDATE increment 0 (§6.9) | stream PROTOCOL_ERROR, or connection on stream 0 |
//! | SETTINGS_ENABLE_PUSH, _ENABLE_CONNECT_PROTOCOL or _NO_RFC7540_PRIORITIES not 0/1, _MAX_FRAME_SIZE outside 2^14..2^24-1 (§6.5.2) | connection PROTOCOL_ERROR |
//! | SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1 (§6.5.2) | connection FLOW_CONTROL_ERROR |
//! | PUSH_PROMISE from a client (§8.4) | connection PROTOCOL_ERROR |
//! | an unknown frame type (§4.1, §5.5) | none: [`Frame::Unknown`], to be skipped |
//!
//! A stream error comes back as [`Parsed::Reset`] with the frame's length, so the loop skips the
//! frame and resets the stream; a connection error is `Err`. Nothing is copied: payloads borrow
//! from the input.
//!
//! [`Block`] gathers a field block over HEADERS and its CONTINUATIONs (§6.10) within a byte
//! bound, so a CONTINUATION flood ends the connection instead of growing a buffer.

use super::error::{ErrorCode, H2Error};
use crate::buffer::Buf;

/// What a client sends first (§3.4), before its SETTINGS.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The frame header's size (§4.1).
pub const HEADER_LEN: usize = 9;
/// `SETTINGS_MAX_FRAME_SIZE` until a peer says otherwise, and its least value (§6.5.2).
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
/// The largest `SETTINGS_MAX_FRAME_SIZE` (§6.5.2).
pub const MAX_FRAME_SIZE_LIMIT: u32 = (1 << 24) - 1;
/// The largest flow-control window (§6.9.1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;
/// `SETTINGS_INITIAL_WINDOW_SIZE` until a peer says otherwise (§6.5.2), also the connection's.
pub const DEFAULT_WINDOW: u32 = 65_535;
/// `SETTINGS_HEADER_TABLE_SIZE` until a peer says otherwise (§6.5.2).
pub const DEFAULT_HEADER_TABLE_SIZE: u32 = 4096;

/// Frame types (§6).
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags (§6).
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// A frame header (§4.1). The reserved bit of the stream identifier is dropped on reading and
/// written as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Payload length (24 bits).
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    /// Stream identifier (31 bits).
    pub stream: u32,
}

impl Head {
    /// Reads a header from the first 9 bytes of `b`, if there are 9.
    #[inline]
    pub fn read(b: &[u8]) -> Option<Head> {
        let h: &[u8; HEADER_LEN] = b.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Head {
            len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & MAX_WINDOW,
        })
    }

    /// The header's 9 bytes (`len` over 24 bits and `stream` over 31 are cut to them).
    #[inline]
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let l = self.len.to_be_bytes();
        let s = (self.stream & MAX_WINDOW).to_be_bytes();
        [
            l[1], l[2], l[3], self.kind, self.flags, s[0], s[1], s[2], s[3],
        ]
    }

    #[inline]
    fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

/// A PRIORITY frame's fields, also carried by HEADERS with the PRIORITY flag (§5.3.2,
/// deprecated by RFC 9113 but still parsed). ferrule does not act on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    pub dependency: u32,
    pub exclusive: bool,
    /// The weight on the wire (the weight minus one).
    pub weight: u8,
}

impl Priority {
    fn read(b: [u8; 5]) -> Priority {
        let dep = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        Priority {
            dependency: dep & MAX_WINDOW,
            exclusive: dep & !MAX_WINDOW != 0,
            weight: b[4],
        }
    }
}

/// A SETTINGS parameter (§6.5.2, RFC 8441 §3, RFC 9218 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    HeaderTableSize(u32),
    EnablePush(bool),
    MaxConcurrentStreams(u32),
    InitialWindowSize(u32),
    MaxFrameSize(u32),
    MaxHeaderListSize(u32),
    EnableConnectProtocol(bool),
    NoRfc7540Priorities(bool),
    /// An identifier this list does not know: ignored (§6.5.2).
    Unknown(u16, u32),
}

impl Setting {
    /// The parameter's identifier and value on the wire.
    pub fn wire(self) -> (u16, u32) {
        match self {
            Setting::HeaderTableSize(v) => (0x1, v),
            Setting::EnablePush(b) => (0x2, b.into()),
            Setting::MaxConcurrentStreams(v) => (0x3, v),
            Setting::InitialWindowSize(v) => (0x4, v),
            Setting::MaxFrameSize(v) => (0x5, v),
            Setting::MaxHeaderListSize(v) => (0x6, v),
            Setting::EnableConnectProtocol(b) => (0x8, b.into()),
            Setting::NoRfc7540Priorities(b) => (0x9, b.into()),
            Setting::Unknown(id, v) => (id, v),
        }
    }

    /// Checks a parameter's value (§6.5.2).
    fn check(id: u16, value: u32) -> Result<Setting, H2Error> {
        let flag = |what| match value {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(H2Error::conn(ErrorCode::ProtocolError, what)),
        };
        Ok(match id {
            0x1 => Setting::HeaderTableSize(value),
            0x2 => Setting::EnablePush(flag("SETTINGS_ENABLE_PUSH not 0 or 1")?),
            0x3 => Setting::MaxConcurrentStreams(value),
            0x4 if value > MAX_WINDOW => {
                return Err(H2Error::conn(
                    ErrorCode::FlowControlError,
                    "SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1",
                ))
            }
            0x4 => Setting::InitialWindowSize(value),
            0x5 if !(DEFAULT_MAX_FRAME_SIZE..=MAX_FRAME_SIZE_LIMIT).contains(&value) => {
                return Err(H2Error::conn(
                    ErrorCode::ProtocolError,
                    "SETTINGS_MAX_FRAME_SIZE outside 2^14..2^24-1",
                ))
            }
            0x5 => Setting::MaxFrameSize(value),
            0x6 => Setting::MaxHeaderListSize(value),
            0x8 => {
                Setting::EnableConnectProtocol(flag("SETTINGS_ENABLE_CONNECT_PROTOCOL not 0 or 1")?)
            }
            0x9 => Setting::NoRfc7540Priorities(flag("SETTINGS_NO_RFC7540_PRIORITIES not 0 or 1")?),
            _ => Setting::Unknown(id, value),
        })
    }
}

/// The parameters of a SETTINGS frame, already checked by [`parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params<'a>(&'a [u8]);

impl<'a> Params<'a> {
    /// The parameters in order (§6.5.3: processed in the order they appear).
    pub fn iter(&self) -> impl Iterator<Item = Setting> + 'a {
        // bounded: a frame's payload is at most SETTINGS_MAX_FRAME_SIZE bytes
        self.0.chunks_exact(6).map(|p| {
            let (id, value) = param(p);
            // checked when the frame was parsed; an error cannot recur
            Setting::check(id, value).unwrap_or(Setting::Unknown(id, value))
        })
    }

    /// How many parameters it holds.
    pub fn len(&self) -> usize {
        self.0.len() / 6
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn param(p: &[u8]) -> (u16, u32) {
    match *p {
        [a, b, c, d, e, f] => (u16::from_be_bytes([a, b]), u32::from_be_bytes([c, d, e, f])),
        _ => (0, 0),
    }
}

/// One frame, borrowing its payload from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Data {
        stream: u32,
        /// The payload without its padding.
        data: &'a [u8],
        end_stream: bool,
        /// What the frame counts against the flow-control windows: its whole payload, padding
        /// included (§6.1).
        flow_len: u32,
    },
    Headers {
        stream: u32,
        /// The field block fragment, without padding and priority.
        block: &'a [u8],
        end_stream: bool,
        end_headers: bool,
        priority: Option<Priority>,
    },
    Priority {
        stream: u32,
        priority: Priority,
    },
    RstStream {
        stream: u32,
        /// The error code as sent (unknown codes included, see [`ErrorCode::from_u32`]).
        code: u32,
    },
    Settings {
        ack: bool,
        params: Params<'a>,
    },
    Ping {
        ack: bool,
        data: [u8; 8],
    },
    GoAway {
        last_stream: u32,
        code: u32,
        debug: &'a [u8],
    },
    WindowUpdate {
        stream: u32,
        increment: u32,
    },
    Continuation {
        stream: u32,
        block: &'a [u8],
        end_headers: bool,
    },
    /// A type this list does not know (an extension): to be ignored (§5.5), unless it comes in
    /// the middle of a field block (§6.10: the loop's rule).
    Unknown {
        kind: u8,
        stream: u32,
    },
}

/// What [`parse`] found at the front of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// Not a whole frame yet: `total` bytes make it whole (9 while the header is incomplete).
    Need { total: usize },
    /// A frame, `len` bytes of input (header included).
    Frame { frame: Frame<'a>, len: usize },
    /// A whole frame that costs its stream a reset (`error` is an [`H2Error::Stream`]): skip its
    /// `len` bytes and reset the stream.
    Reset { error: H2Error, len: usize },
}

const fn conn(code: ErrorCode, why: &'static str) -> H2Error {
    H2Error::conn(code, why)
}

/// Reads the frame at the front of `buf`. `max_frame_size` is the `SETTINGS_MAX_FRAME_SIZE` we
/// announced (and the peer acknowledged): a longer frame is refused from its header alone, so no
/// more than `HEADER_LEN + max_frame_size` bytes ever need buffering.
pub fn parse(buf: &[u8], max_frame_size: u32) -> Result<Parsed<'_>, H2Error> {
    let Some(head) = Head::read(buf) else {
        return Ok(Parsed::Need { total: HEADER_LEN });
    };
    if head.len > max_frame_size {
        return Err(conn(
            ErrorCode::FrameSizeError,
            "frame over SETTINGS_MAX_FRAME_SIZE",
        ));
    }
    // fits: len < 2^24
    let total = HEADER_LEN + head.len as usize;
    let Some(payload) = buf.get(HEADER_LEN..total) else {
        // the header alone can already tell some errors; the payload is needed for the rest
        early_checks(&head)?;
        return Ok(Parsed::Need { total });
    };
    early_checks(&head)?;
    Ok(match payload_frame(&head, payload)? {
        Ok(frame) => Parsed::Frame { frame, len: total },
        Err(error) => Parsed::Reset { error, len: total },
    })
}

/// Rules the header alone decides: stream 0 or not, fixed lengths, PUSH_PROMISE.
fn early_checks(h: &Head) -> Result<(), H2Error> {
    use ErrorCode::{FrameSizeError, ProtocolError};
    match h.kind {
        kind::DATA | kind::HEADERS | kind::PRIORITY | kind::RST_STREAM | kind::CONTINUATION
            if h.stream == 0 =>
        {
            Err(conn(ProtocolError, "stream frame on stream 0"))
        }
        kind::SETTINGS | kind::PING | kind::GOAWAY if h.stream != 0 => {
            Err(conn(ProtocolError, "connection frame on a stream"))
        }
        kind::PUSH_PROMISE => Err(conn(ProtocolError, "PUSH_PROMISE from a client")),
        kind::RST_STREAM if h.len != 4 => Err(conn(FrameSizeError, "RST_STREAM not 4 bytes")),
        kind::PING if h.len != 8 => Err(conn(FrameSizeError, "PING not 8 bytes")),
        kind::WINDOW_UPDATE if h.len != 4 => Err(conn(FrameSizeError, "WINDOW_UPDATE not 4 bytes")),
        kind::GOAWAY if h.len < 8 => Err(conn(FrameSizeError, "GOAWAY shorter than 8 bytes")),
        kind::SETTINGS if h.has(flag::ACK) && h.len != 0 => {
            Err(conn(FrameSizeError, "SETTINGS ACK with a payload"))
        }
        kind::SETTINGS if h.len % 6 != 0 => {
            Err(conn(FrameSizeError, "SETTINGS not a multiple of 6 bytes"))
        }
        _ => Ok(()),
    }
}

fn array<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0; N];
    if let Some(src) = b.get(..N) {
        a.copy_from_slice(src);
    }
    a
}

/// Splits a payload into `N` fixed bytes and the rest without its padding (§6.1, §6.2): the pad
/// length octet comes first when PADDED, then the fixed fields, and the padding is at the back.
fn unpad<'a, const N: usize>(h: &Head, payload: &'a [u8]) -> Result<([u8; N], &'a [u8]), H2Error> {
    let (pad, rest) = if h.has(flag::PADDED) {
        match payload.split_first() {
            Some((&pad, rest)) => (usize::from(pad), rest),
            None => {
                return Err(conn(
                    ErrorCode::FrameSizeError,
                    "padded frame without a pad length",
                ))
            }
        }
    } else {
        (0, payload)
    };
    let Some((fixed, rest)) = rest.split_first_chunk::<N>() else {
        return Err(conn(
            ErrorCode::FrameSizeError,
            "frame too short for its fields",
        ));
    };
    // padding as long as what is left, or longer, is a PROTOCOL_ERROR
    match rest.len().checked_sub(pad) {
        Some(keep) => Ok((*fixed, rest.get(..keep).unwrap_or_default())),
        None => Err(conn(
            ErrorCode::ProtocolError,
            "padding longer than the payload",
        )),
    }
}

/// The frame in `payload`; the inner `Err` is a stream error.
fn payload_frame<'a>(h: &Head, payload: &'a [u8]) -> Result<Result<Frame<'a>, H2Error>, H2Error> {
    let stream = h.stream;
    let frame = match h.kind {
        kind::DATA => Frame::Data {
            stream,
            data: unpad::<0>(h, payload)?.1,
            end_stream: h.has(flag::END_STREAM),
            flow_len: h.len,
        },
        kind::HEADERS => {
            let (block, priority) = if h.has(flag::PRIORITY) {
                let (p, block) = unpad::<5>(h, payload)?;
                let p = Priority::read(p);
                if p.dependency == stream {
                    return Err(conn(
                        ErrorCode::ProtocolError,
                        "HEADERS depends on its own stream",
                    ));
                }
                (block, Some(p))
            } else {
                (unpad::<0>(h, payload)?.1, None)
            };
            Frame::Headers {
                stream,
                block,
                end_stream: h.has(flag::END_STREAM),
                end_headers: h.has(flag::END_HEADERS),
                priority,
            }
        }
        kind::PRIORITY => {
            let Ok(p) = <[u8; 5]>::try_from(payload) else {
                return Ok(Err(H2Error::stream(
                    stream,
                    ErrorCode::FrameSizeError,
                    "PRIORITY not 5 bytes",
                )));
            };
            let priority = Priority::read(p);
            if priority.dependency == stream {
                return Ok(Err(H2Error::stream(
                    stream,
                    ErrorCode::ProtocolError,
                    "PRIORITY depends on its own stream",
                )));
            }
            Frame::Priority { stream, priority }
        }
        kind::RST_STREAM => Frame::RstStream {
            stream,
            code: u32::from_be_bytes(array(payload)),
        },
        kind::SETTINGS => {
            // bounded: payload length / 6 parameters
            for p in payload.chunks_exact(6) {
                let (id, value) = param(p);
                Setting::check(id, value)?;
            }
            Frame::Settings {
                ack: h.has(flag::ACK),
                params: Params(payload),
            }
        }
        kind::PING => Frame::Ping {
            ack: h.has(flag::ACK),
            data: array(payload),
        },
        kind::GOAWAY => Frame::GoAway {
            last_stream: u32::from_be_bytes(array(payload)) & MAX_WINDOW,
            code: u32::from_be_bytes(array(payload.get(4..).unwrap_or_default())),
            debug: payload.get(8..).unwrap_or_default(),
        },
        kind::WINDOW_UPDATE => {
            let increment = u32::from_be_bytes(array(payload)) & MAX_WINDOW;
            if increment == 0 {
                let why = "WINDOW_UPDATE increment 0";
                if stream == 0 {
                    return Err(conn(ErrorCode::ProtocolError, why));
                }
                return Ok(Err(H2Error::stream(stream, ErrorCode::ProtocolError, why)));
            }
            Frame::WindowUpdate { stream, increment }
        }
        kind::CONTINUATION => Frame::Continuation {
            stream,
            block: payload,
            end_headers: h.has(flag::END_HEADERS),
        },
        kind => Frame::Unknown { kind, stream },
    };
    Ok(Ok(frame))
}

/// Where frames are written.
pub trait Sink {
    /// Appends `bytes`; false when they did not all fit (a [`Buf`] then holds part of them: check
    /// [`Sink::room`] first).
    fn put(&mut self, bytes: &[u8]) -> bool;
    /// Bytes that still fit.
    fn room(&self) -> usize;
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) -> bool {
        self.extend_from_slice(bytes);
        true
    }

    #[inline]
    fn room(&self) -> usize {
        usize::MAX
    }
}

impl Sink for Buf {
    #[inline]
    fn put(&mut self, bytes: &[u8]) -> bool {
        self.push(bytes) == bytes.len()
    }

    #[inline]
    fn room(&self) -> usize {
        self.capacity().saturating_sub(self.len())
    }
}

/// A DATA frame's header, for a payload of `len` bytes written after it.
#[inline]
pub fn data_head(stream: u32, len: usize, end_stream: bool) -> [u8; HEADER_LEN] {
    Head {
        len: len as u32,
        kind: kind::DATA,
        flags: if end_stream { flag::END_STREAM } else { 0 },
        stream,
    }
    .encode()
}

/// Appends a DATA frame (`data` at most the peer's `SETTINGS_MAX_FRAME_SIZE` long).
pub fn data<S: Sink + ?Sized>(out: &mut S, stream: u32, data: &[u8], end_stream: bool) -> bool {
    out.put(&data_head(stream, data.len(), end_stream)) && out.put(data)
}

/// A SETTINGS frame acknowledging the peer's (§6.5.3).
pub fn settings_ack() -> [u8; HEADER_LEN] {
    Head {
        len: 0,
        kind: kind::SETTINGS,
        flags: flag::ACK,
        stream: 0,
    }
    .encode()
}

/// Bytes of a SETTINGS frame with `n` parameters.
pub const fn settings_len(n: usize) -> usize {
    HEADER_LEN + 6 * n
}

/// Appends a SETTINGS frame with `params` (at most a few: ours).
pub fn settings<S: Sink + ?Sized>(out: &mut S, params: &[Setting]) -> bool {
    let head = Head {
        len: (params.len() * 6) as u32,
        kind: kind::SETTINGS,
        flags: 0,
        stream: 0,
    };
    let mut ok = out.put(&head.encode());
    // bounded: our own few parameters
    for p in params {
        let (id, value) = p.wire();
        let (i, v) = (id.to_be_bytes(), value.to_be_bytes());
        ok &= out.put(&[i[0], i[1], v[0], v[1], v[2], v[3]]);
    }
    ok
}

/// The answer to a PING (§6.7): the same 8 bytes, with ACK.
pub fn ping_ack(data: [u8; 8]) -> [u8; HEADER_LEN + 8] {
    let mut f = [0; HEADER_LEN + 8];
    let head = Head {
        len: 8,
        kind: kind::PING,
        flags: flag::ACK,
        stream: 0,
    };
    f[..HEADER_LEN].copy_from_slice(&head.encode());
    f[HEADER_LEN..].copy_from_slice(&data);
    f
}

fn with_word(kind: u8, stream: u32, word: u32) -> [u8; HEADER_LEN + 4] {
    let mut f = [0; HEADER_LEN + 4];
    let head = Head {
        len: 4,
        kind,
        flags: 0,
        stream,
    };
    f[..HEADER_LEN].copy_from_slice(&head.encode());
    f[HEADER_LEN..].copy_from_slice(&word.to_be_bytes());
    f
}

/// A WINDOW_UPDATE (§6.9) for `stream` (0: the connection); `increment` is 1..=2^31-1.
pub fn window_update(stream: u32, increment: u32) -> [u8; HEADER_LEN + 4] {
    with_word(kind::WINDOW_UPDATE, stream, increment & MAX_WINDOW)
}

/// An RST_STREAM (§6.4).
pub fn rst_stream(stream: u32, code: ErrorCode) -> [u8; HEADER_LEN + 4] {
    with_word(kind::RST_STREAM, stream, code.to_u32())
}

/// A GOAWAY (§6.8) without debug data.
pub fn goaway(last_stream: u32, code: ErrorCode) -> [u8; HEADER_LEN + 8] {
    let mut f = [0; HEADER_LEN + 8];
    let head = Head {
        len: 8,
        kind: kind::GOAWAY,
        flags: 0,
        stream: 0,
    };
    f[..HEADER_LEN].copy_from_slice(&head.encode());
    f[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&(last_stream & MAX_WINDOW).to_be_bytes());
    f[HEADER_LEN + 4..].copy_from_slice(&code.to_u32().to_be_bytes());
    f
}

/// Bytes of a field block of `block_len` bytes once framed as HEADERS and CONTINUATIONs of at
/// most `max_frame_size` bytes each.
pub fn headers_len(block_len: usize, max_frame_size: u32) -> usize {
    let max = (max_frame_size as usize).max(1);
    let frames = block_len.div_ceil(max).max(1);
    block_len + frames * HEADER_LEN
}

/// Appends a field block as HEADERS, followed by CONTINUATIONs when it is longer than the peer's
/// `max_frame_size` (§4.3: nothing may come between them, so they are written together).
pub fn headers<S: Sink + ?Sized>(
    out: &mut S,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame_size: u32,
) -> bool {
    let max = (max_frame_size as usize).max(1);
    let mut chunks = block.chunks(max).peekable();
    let mut kind = kind::HEADERS;
    let mut flags = if end_stream { flag::END_STREAM } else { 0 };
    let mut ok = true;
    // bounded: block.len() / max_frame_size + 1 frames
    loop {
        let chunk = chunks.next().unwrap_or_default();
        let last = chunks.peek().is_none();
        if last {
            flags |= flag::END_HEADERS;
        }
        let head = Head {
            len: chunk.len() as u32,
            kind,
            flags,
            stream,
        };
        ok &= out.put(&head.encode()) && out.put(chunk);
        if last {
            return ok;
        }
        kind = kind::CONTINUATION;
        flags = 0;
    }
}

mod block;
pub use self::block::{max_continuations, Block, Gathered};

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
