//! A small op language that writes an HTTP/2 client's byte stream (the `h2_session` target):
//! each op is a byte (which op, low 4 bits) and the bytes it reads after it, and emits one or a
//! few frames that are valid or nearly so, so that the fuzzer gets past the frame layer into the
//! streams. The stream starts with the client preface (RFC 9113 §3.4).
//!
//! | op | emits |
//! |---|---|
//! | 0 | SETTINGS (or an ACK): up to 3 parameters, identifiers and values from boundary tables |
//! | 1 | HEADERS opening a request: method, pseudo-headers (some left out, duplicated, reordered, `:protocol`), extra fields from a table, each in one HPACK representation (our encoder's literal, incremental indexing, never indexed, an index into the dynamic table); END_STREAM, PADDED, PRIORITY; the block in one frame or split over CONTINUATIONs, or left open |
//! | 2 | DATA on a stream: length, END_STREAM, padding |
//! | 3 | WINDOW_UPDATE on the connection or a stream |
//! | 4 | RST_STREAM |
//! | 5 | PING (or an ACK) |
//! | 6 | GOAWAY |
//! | 7 | CONTINUATION of one field |
//! | 8 | PRIORITY (of the right length or not) |
//! | 9 | raw bytes, copied from the input |
//! | 10 | a frame of an unknown type |
//! | 11 | trailers: HEADERS with END_STREAM on the last stream |
//! | 12 | a POST with `content-length` and its body in two DATA frames |
//! | 13 | WINDOW_UPDATE on the connection and the last stream, large |
//! | 14 | SETTINGS_INITIAL_WINDOW_SIZE small, SETTINGS_MAX_FRAME_SIZE |
//! | 15 | a whole GET |
// the op table above is what matters; not every target reads every helper
#![allow(dead_code)]

use ferrule::connection::h2::frame::{flag, kind, HEADER_LEN, PREFACE};
use ferrule::connection::h2::hpack::Encoder;

/// SETTINGS identifiers an op picks from (0x7 is unknown).
const SETTING_IDS: [u16; 10] = [0x1, 0x2, 0x3, 0x4, 0x5, 0x6, 0x8, 0x9, 0x7, 0x4];
/// SETTINGS values an op picks from: the boundaries of every parameter.
const SETTING_VALUES: [u32; 16] = [
    0,
    1,
    2,
    100,
    4096,
    16_383,
    16_384,
    16_385,
    65_535,
    65_536,
    1 << 20,
    (1 << 24) - 1,
    1 << 24,
    (1 << 31) - 1,
    1 << 31,
    u32::MAX,
];
/// WINDOW_UPDATE increments an op picks from.
const INCREMENTS: [u32; 8] = [0, 1, 1000, 65_535, 1 << 16, 1 << 20, (1 << 31) - 1, 1 << 30];
const METHODS: [&[u8]; 8] = [
    b"GET", b"POST", b"HEAD", b"CONNECT", b"PUT", b"OPTIONS", b"DELETE", b"get",
];
/// Fields a request may carry besides its pseudo-headers (the connection-specific ones make it
/// malformed; `cookie` may come split).
const FIELDS: [(&[u8], &[u8]); 16] = [
    (b"content-length", b"0"),
    (b"content-length", b"5"),
    (b"content-length", b"100"),
    (b"te", b"trailers"),
    (b"te", b"gzip"),
    (b"connection", b"close"),
    (b"cookie", b"a=1"),
    (b"cookie", b"FERRULE_BACKEND=0123456789abcdef"),
    (b"host", b"other.example"),
    (b"accept", b"*/*"),
    (b"transfer-encoding", b"chunked"),
    (b"upgrade", b"websocket"),
    (b"sec-websocket-version", b"13"),
    (b"x-request-id", b"abc"),
    (b"X-Upper", b"1"),
    (b"x-empty", b""),
];

/// Writes the client's bytes from the ops in `input`.
pub struct Gen<'a> {
    input: &'a [u8],
    at: usize,
    pub out: Vec<u8>,
    /// The highest stream id a request was opened on.
    pub last: u32,
    encoder: Encoder,
}

impl<'a> Gen<'a> {
    pub fn new(input: &'a [u8]) -> Gen<'a> {
        Gen {
            input,
            at: 0,
            out: PREFACE.to_vec(),
            last: 0,
            encoder: Encoder::new(),
        }
    }

    /// The client's bytes: the preface, then every op's frames.
    pub fn run(mut self) -> Vec<u8> {
        // bounded: every op reads at least its own byte
        while self.at < self.input.len() {
            let op = self.byte();
            self.op(op);
        }
        self.out
    }

    /// Opens the next stream (1, 3, 5, ...).
    fn next_id(&mut self) -> u32 {
        self.last = if self.last == 0 { 1 } else { self.last + 2 };
        self.last
    }

    fn byte(&mut self) -> u8 {
        let b = self.input.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        let len = payload.len().min((1 << 24) - 1) as u32;
        let l = len.to_be_bytes();
        let s = stream.to_be_bytes();
        self.out
            .extend_from_slice(&[l[1], l[2], l[3], kind, flags, s[0], s[1], s[2], s[3]]);
        self.out.extend_from_slice(&payload[..len as usize]);
    }

    /// A stream id: the last request's (0), the one before (1), one from the next byte (2), the
    /// connection (3).
    fn stream(&mut self, choice: u8) -> u32 {
        match choice & 3 {
            0 => self.last.max(1),
            1 => self.last.saturating_sub(2).max(1),
            2 => u32::from(self.byte()),
            _ => 0,
        }
    }

    fn op(&mut self, op: u8) {
        match op & 15 {
            0 => {
                let f = self.byte();
                if f & 1 != 0 {
                    self.frame(kind::SETTINGS, flag::ACK, 0, &[]);
                    return;
                }
                let mut payload = Vec::new();
                for _ in 0..(f >> 1) & 3 {
                    let id = SETTING_IDS[usize::from(self.byte()) % SETTING_IDS.len()];
                    let value = SETTING_VALUES[usize::from(self.byte()) % SETTING_VALUES.len()];
                    payload.extend_from_slice(&id.to_be_bytes());
                    payload.extend_from_slice(&value.to_be_bytes());
                }
                self.frame(kind::SETTINGS, 0, 0, &payload);
            }
            1 => self.request(),
            2 => {
                let f = self.byte();
                let stream = self.stream(f >> 2);
                let n = usize::from(self.byte()) * if f & 16 != 0 { 64 } else { 4 };
                self.data(stream, n, f & 1 != 0, f & 2 != 0);
            }
            3 => {
                let f = self.byte();
                let stream = if f & 1 != 0 { 0 } else { self.stream(f >> 1) };
                let inc = INCREMENTS[usize::from(f >> 3) % INCREMENTS.len()];
                self.frame(kind::WINDOW_UPDATE, 0, stream, &inc.to_be_bytes());
            }
            4 => {
                let f = self.byte();
                let stream = self.stream(f);
                self.frame(
                    kind::RST_STREAM,
                    0,
                    stream,
                    &u32::from(f >> 2).to_be_bytes(),
                );
            }
            5 => {
                let f = self.byte();
                let ack = if f & 1 != 0 { flag::ACK } else { 0 };
                self.frame(kind::PING, ack, 0, &[f; 8]);
            }
            6 => {
                let f = self.byte();
                let last = if f & 1 != 0 {
                    self.last
                } else {
                    u32::from(f >> 1)
                };
                let mut payload = last.to_be_bytes().to_vec();
                payload.extend_from_slice(&u32::from(f >> 4).to_be_bytes());
                self.frame(kind::GOAWAY, 0, 0, &payload);
            }
            7 => {
                let f = self.byte();
                let stream = self.stream(f);
                let (name, value) = FIELDS[usize::from(f >> 2) % FIELDS.len()];
                let mut block = Vec::new();
                self.encoder.field(name, value, &mut block);
                let end = if f & 0x80 != 0 { flag::END_HEADERS } else { 0 };
                self.frame(kind::CONTINUATION, end, stream, &block);
            }
            8 => {
                let f = self.byte();
                let stream = self.stream(f);
                let dep = u32::from(self.byte());
                let mut payload = dep.to_be_bytes().to_vec();
                payload.push(f);
                if f & 4 != 0 {
                    payload.pop();
                }
                self.frame(kind::PRIORITY, 0, stream, &payload);
            }
            9 => {
                let n = usize::from(self.byte() % 32);
                let end = (self.at + n).min(self.input.len());
                let raw = self.input[self.at.min(end)..end].to_vec();
                self.at = end;
                self.out.extend_from_slice(&raw);
            }
            10 => {
                let f = self.byte();
                let stream = self.stream(f);
                self.frame(0x20 | (f >> 4), f, stream, &[f; 3]);
            }
            11 => {
                let f = self.byte();
                let stream = self.stream(f);
                let mut block = Vec::new();
                if f & 4 != 0 {
                    // a pseudo-header in trailers: malformed
                    self.encoder.field(b":path", b"/", &mut block);
                }
                self.encoder.field(b"x-trailer", b"1", &mut block);
                let end = if f & 8 != 0 { 0 } else { flag::END_STREAM };
                self.frame(kind::HEADERS, end | flag::END_HEADERS, stream, &block);
            }
            12 => {
                let f = self.byte();
                let n = usize::from(f) * 8;
                self.next_id();
                let mut block = Vec::new();
                self.pseudo(b"POST", 0, &mut block);
                self.encoder
                    .field(b"content-length", n.to_string().as_bytes(), &mut block);
                self.frame(kind::HEADERS, flag::END_HEADERS, self.last, &block);
                self.data(self.last, n / 2, false, false);
                self.data(self.last, n - n / 2, f & 1 == 0, false);
            }
            13 => {
                let inc = (1u32 << 30).to_be_bytes();
                self.frame(kind::WINDOW_UPDATE, 0, 0, &inc);
                let last = self.last.max(1);
                self.frame(kind::WINDOW_UPDATE, 0, last, &inc);
            }
            14 => {
                let f = self.byte();
                let mut payload = Vec::new();
                payload.extend_from_slice(&0x4u16.to_be_bytes());
                payload.extend_from_slice(&u32::from(f).to_be_bytes());
                if f & 1 != 0 {
                    payload.extend_from_slice(&0x5u16.to_be_bytes());
                    payload.extend_from_slice(&(16_384u32 << (f >> 6)).to_be_bytes());
                }
                self.frame(kind::SETTINGS, 0, 0, &payload);
            }
            _ => {
                self.next_id();
                let mut block = Vec::new();
                self.pseudo(b"GET", 0, &mut block);
                self.frame(
                    kind::HEADERS,
                    flag::END_HEADERS | flag::END_STREAM,
                    self.last,
                    &block,
                );
            }
        }
    }

    /// DATA of `n` bytes on `stream`.
    fn data(&mut self, stream: u32, n: usize, end: bool, padded: bool) {
        let mut payload = Vec::with_capacity(n + 8);
        let mut flags = if end { flag::END_STREAM } else { 0 };
        if padded {
            flags |= flag::PADDED;
            payload.push(3);
        }
        payload.extend((0..n).map(|i| b'a' + (i % 26) as u8));
        if padded {
            payload.extend_from_slice(&[0; 3]);
        }
        self.frame(kind::DATA, flags, stream, &payload);
    }

    /// The pseudo-headers of a request, `m` saying which to leave out, duplicate or reorder.
    fn pseudo(&mut self, method: &[u8], m: u8, block: &mut Vec<u8>) {
        self.encoder.begin(block);
        if m & 16 != 0 {
            self.encoder.field(b"accept", b"*/*", block);
        }
        self.encoder.field(b":method", method, block);
        if m & 1 == 0 {
            self.encoder.field(b":scheme", b"http", block);
        }
        if m & 2 == 0 {
            self.encoder.field(b":authority", b"example.com", block);
        }
        if m & 4 == 0 {
            let path: &[u8] = if m & 128 != 0 { b"*" } else { b"/p?q=1" };
            self.encoder.field(b":path", path, block);
        }
        if m & 8 != 0 {
            self.encoder.field(b":protocol", b"websocket", block);
        }
        if m & 64 != 0 {
            self.encoder.field(b":path", b"/again", block);
        }
    }

    /// A HEADERS op: a new request, or a block on another stream.
    fn request(&mut self) {
        let f = self.byte();
        let m = self.byte();
        let method = METHODS[usize::from(self.byte()) % METHODS.len()];
        let stream = match (f >> 5) & 3 {
            0 => self.next_id(),
            1 => self.last.max(1),
            2 => u32::from(self.byte()),
            _ => {
                // one skipped
                self.next_id();
                self.next_id()
            }
        };
        let mut block = Vec::new();
        if f & 0x80 != 0 {
            // a table size update first (a size over ours is a COMPRESSION_ERROR)
            block.push(0x20 | (self.byte() & 0x1f));
        }
        self.pseudo(method, m, &mut block);
        let extra = self.byte();
        for _ in 0..extra & 7 {
            let pick = self.byte();
            let (name, value) = FIELDS[usize::from(pick) % FIELDS.len()];
            match pick >> 4 {
                0..=9 => self.encoder.field(name, value, &mut block),
                10..=12 => {
                    // literal with incremental indexing, new name, raw strings
                    block.push(0x40);
                    string(&mut block, name);
                    string(&mut block, value);
                }
                13 | 14 => {
                    // never indexed
                    block.push(0x10);
                    string(&mut block, name);
                    string(&mut block, value);
                }
                _ => block.push(0x80 | (62 + (pick & 3))),
            }
        }
        let mut flags = 0;
        if f & 1 != 0 {
            flags |= flag::END_STREAM;
        }
        let mut payload = Vec::new();
        if f & 8 != 0 {
            flags |= flag::PADDED;
            payload.push(f >> 5);
        }
        if f & 16 != 0 {
            flags |= flag::PRIORITY;
            payload.extend_from_slice(&u32::from(extra >> 3).to_be_bytes());
            payload.push(16);
        }
        // split over CONTINUATIONs (f & 2), the last one left out (f & 4)
        let (first, rest) = if f & 2 != 0 {
            block.split_at(block.len() / 2)
        } else {
            (&block[..], &[][..])
        };
        payload.extend_from_slice(first);
        if f & 8 != 0 {
            payload.extend(std::iter::repeat_n(0, usize::from(f >> 5)));
        }
        if f & 2 == 0 {
            flags |= flag::END_HEADERS;
        }
        self.frame(kind::HEADERS, flags, stream, &payload);
        if f & 2 != 0 && f & 4 == 0 {
            let rest = rest.to_vec();
            self.frame(kind::CONTINUATION, flag::END_HEADERS, stream, &rest);
        }
    }
}

/// An HPACK string literal, not Huffman-coded (RFC 7541 §5.2), its length a 7-bit prefix integer.
fn string(out: &mut Vec<u8>, s: &[u8]) {
    let mut n = s.len();
    if n < 127 {
        out.push(n as u8);
    } else {
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128) as u8 | 128);
            n /= 128;
        }
        out.push(n as u8);
    }
    out.extend_from_slice(s);
}

/// A frame header's bytes (for callers that build frames by hand).
pub fn head(len: usize, kind: u8, flags: u8, stream: u32) -> [u8; HEADER_LEN] {
    let l = (len as u32).to_be_bytes();
    let s = stream.to_be_bytes();
    [l[1], l[2], l[3], kind, flags, s[0], s[1], s[2], s[3]]
}
