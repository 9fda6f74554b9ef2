//! HTTP/2 helpers for the integration tests (`tests/http2.rs`):
//!
//! - [`Wire`]: a hand-written HTTP/2 client over one connection, plain (h2c with prior knowledge)
//!   or TLS (ALPN `h2`), that sends any frame, well-formed or not, and reads what the server
//!   sends into per-stream [`Resp`]s, the GOAWAY and the close. Request field blocks are
//!   encoded here (HPACK literals without indexing, no Huffman: RFC 7541 §6.2.2, written from
//!   the RFC, nothing of ferrule's); response blocks are decoded with ferrule's own decoder, so
//!   the tests that drive Python's `h2` (`tests/http2/h2client.py`, whose `hpack` decodes
//!   independently) cross-check it.
//! - [`Setup`]: an in-process proxy serving h2c or TLS, with the test CA's file for the clients.
//! - [`run_bounded`]: a child process (curl, nghttp, python3) with a time limit, killed by its
//!   PID past it, its output captured.
//!
//! Every read has a timeout ([`IO_TIMEOUT`] unless a test sets a shorter one).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ferrule::connection::h2::hpack::{Decoder, HeaderList};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use serde_json::{json, Value};

use super::tls::{merged, provider, CertFiles, TestCa};
use super::{
    ok_response, read_request, ChildGuard, Proxy, ProxyProcess, HEALTH_PROBE_ANSWER, IO_TIMEOUT,
};
use super::{path_text, TempDir};

/// Error codes (RFC 9113 §7).
pub mod code {
    #![allow(dead_code)] // the whole table, as the RFC lists it
    pub const NO_ERROR: u32 = 0x0;
    pub const PROTOCOL_ERROR: u32 = 0x1;
    pub const INTERNAL_ERROR: u32 = 0x2;
    pub const FLOW_CONTROL_ERROR: u32 = 0x3;
    pub const STREAM_CLOSED: u32 = 0x5;
    pub const FRAME_SIZE_ERROR: u32 = 0x6;
    pub const REFUSED_STREAM: u32 = 0x7;
    pub const CANCEL: u32 = 0x8;
    pub const COMPRESSION_ERROR: u32 = 0x9;
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;
}

/// Frame types (RFC 9113 §6).
pub mod kind {
    #![allow(dead_code)] // the whole table, as the RFC lists it
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

/// Frame flags.
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// Settings identifiers (RFC 9113 §6.5.2, RFC 8441 §3).
pub mod setting {
    #![allow(dead_code)] // the whole table, as the RFC lists it
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
    pub const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
}

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One frame as read from the server.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff
}

/// The bytes of one frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut v = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    v.extend_from_slice(&stream.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

pub fn settings_frame(params: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, v) in params {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(kind::SETTINGS, 0, 0, &p)
}

pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(kind::WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(kind::RST_STREAM, 0, stream, &code.to_be_bytes())
}

pub fn ping(data: [u8; 8]) -> Vec<u8> {
    frame(kind::PING, 0, 0, &data)
}

pub fn data(stream: u32, payload: &[u8], end_stream: bool) -> Vec<u8> {
    let flags = if end_stream { flag::END_STREAM } else { 0 };
    frame(kind::DATA, flags, stream, payload)
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), the prefix's other bits `first`.
fn hpack_int(first: u8, n: u32, mut v: usize, out: &mut Vec<u8>) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

fn hpack_string(s: &[u8], out: &mut Vec<u8>) {
    hpack_int(0, 7, s.len(), out);
    out.extend_from_slice(s);
}

/// A field block of literals without indexing, new names, no Huffman (RFC 7541 §6.2.2): names
/// and values go as given (uppercase and all), so a test can send what a client library would
/// refuse to.
pub fn encode(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in fields {
        encode_field(n.as_bytes(), v.as_bytes(), &mut out);
    }
    out
}

/// One literal without indexing, new name.
pub fn encode_field(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.push(0x00);
    hpack_string(name, out);
    hpack_string(value, out);
}

/// One literal *with* incremental indexing, new name (RFC 7541 §6.2.1): enters the dynamic
/// table.
pub fn encode_indexed_literal(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.push(0x40);
    hpack_string(name, out);
    hpack_string(value, out);
}

/// An indexed field (RFC 7541 §6.1): 62 is the newest dynamic table entry.
pub fn encode_index(index: usize, out: &mut Vec<u8>) {
    hpack_int(0x80, 7, index, out);
}

/// What the server sent on one stream.
#[derive(Default, Clone)]
pub struct Resp {
    /// Every field block, decoded, in order (interim heads, the final head, trailers).
    pub blocks: Vec<Vec<(String, String)>>,
    pub body: Vec<u8>,
    pub data_frames: usize,
    /// END_STREAM came.
    pub ended: bool,
    /// RST_STREAM came, with this code.
    pub reset: Option<u32>,
}

impl std::fmt::Debug for Resp {
    /// The body as its length and first bytes: a failed assertion stays readable.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = &self.body[..self.body.len().min(64)];
        f.debug_struct("Resp")
            .field("blocks", &self.blocks)
            .field("body_len", &self.body.len())
            .field("body_start", &String::from_utf8_lossy(head))
            .field("data_frames", &self.data_frames)
            .field("ended", &self.ended)
            .field("reset", &self.reset)
            .finish()
    }
}

impl Resp {
    fn status_of(block: &[(String, String)]) -> Option<u16> {
        block
            .iter()
            .find(|(n, _)| n == ":status")
            .and_then(|(_, v)| v.parse().ok())
    }

    /// The final status (the first non-1xx head).
    pub fn status(&self) -> u16 {
        self.blocks
            .iter()
            .filter_map(|b| Self::status_of(b))
            .find(|s| *s >= 200)
            .unwrap_or(0)
    }

    /// The statuses of the interim (1xx) heads.
    pub fn interim(&self) -> Vec<u16> {
        self.blocks
            .iter()
            .filter_map(|b| Self::status_of(b))
            .filter(|s| *s < 200)
            .collect()
    }

    /// The final head's fields.
    pub fn head(&self) -> &[(String, String)] {
        self.blocks
            .iter()
            .find(|b| Self::status_of(b).is_some_and(|s| s >= 200))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The final head's first field `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The trailers: a block after the final head, without `:status`.
    pub fn trailers(&self) -> Option<&[(String, String)]> {
        let last = self.blocks.last()?;
        (self.blocks.len() > 1 && Self::status_of(last).is_none()).then_some(last.as_slice())
    }

    pub fn done(&self) -> bool {
        self.ended || self.reset.is_some()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// h2c (prior knowledge on the plain port) or TLS with ALPN `h2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    H2c,
    Tls,
}

trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

/// A hand-driven HTTP/2 client connection.
pub struct Wire {
    io: Box<dyn Io>,
    tcp: TcpStream,
    pub mode: Mode,
    input: Vec<u8>,
    decoder: Decoder,
    list: HeaderList,
    /// An open field block (HEADERS without END_HEADERS) and its stream.
    block: Option<(u32, Vec<u8>, bool)>,
    pub streams: HashMap<u32, Resp>,
    /// The server's SETTINGS, as received (in order).
    pub settings: Vec<(u16, u32)>,
    /// The first GOAWAY: (last stream id, code).
    pub goaway: Option<(u32, u32)>,
    /// Every GOAWAY, in order.
    pub goaways: Vec<(u32, u32)>,
    /// The server ended the connection (EOF or reset).
    pub closed: bool,
    /// PING ACK payloads received.
    pub pongs: Vec<[u8; 8]>,
    /// Give credit back for DATA received (else the windows stay as the server spends them).
    pub auto_window: bool,
    /// Acknowledge the server's SETTINGS (off while a test holds a field block open, where any
    /// other frame is a protocol error).
    pub auto_settings_ack: bool,
    /// Credit owed on the connection, sent once it passes half a MiB.
    conn_owed: usize,
    /// What we may still send: on the connection, and per stream beyond the server's initial
    /// window (`window_of`).
    conn_send: i64,
    stream_send: HashMap<u32, i64>,
    next_id: u32,
    pub frames_seen: usize,
}

/// A client config for ALPN `h2` only, trusting `ca`.
pub fn h2_client_config(ca: &TestCa) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(ca.roots())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

impl Wire {
    /// A connection with nothing sent yet (over TLS: the handshake done, `h2` agreed).
    pub fn connect(mode: Mode, addr: SocketAddr, tls: Option<&Arc<ClientConfig>>) -> Wire {
        let tcp = TcpStream::connect(addr).expect("connect to the proxy");
        tcp.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        tcp.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        tcp.set_nodelay(true).expect("nodelay");
        let io: Box<dyn Io> = match mode {
            Mode::H2c => Box::new(tcp.try_clone().expect("clone")),
            Mode::Tls => {
                let config = tls.expect("a TLS client config");
                let name = ServerName::try_from("localhost").expect("name");
                let conn = ClientConnection::new(Arc::clone(config), name).expect("client");
                let mut s = StreamOwned::new(conn, tcp.try_clone().expect("clone"));
                while s.conn.is_handshaking() {
                    s.conn.complete_io(&mut s.sock).expect("TLS handshake");
                }
                assert_eq!(s.conn.alpn_protocol(), Some(&b"h2"[..]), "ALPN chose h2");
                Box::new(s)
            }
        };
        Wire {
            io,
            tcp,
            mode,
            input: Vec::new(),
            decoder: Decoder::new(4096),
            list: HeaderList::new(1 << 20),
            block: None,
            streams: HashMap::new(),
            settings: Vec::new(),
            goaway: None,
            goaways: Vec::new(),
            closed: false,
            pongs: Vec::new(),
            auto_window: true,
            auto_settings_ack: true,
            conn_owed: 0,
            conn_send: 65_535,
            stream_send: HashMap::new(),
            next_id: 1,
            frames_seen: 0,
        }
    }

    /// A connection that sent the preface and `settings`, and a connection WINDOW_UPDATE that
    /// makes its window 16 MiB.
    pub fn open_with(
        mode: Mode,
        addr: SocketAddr,
        tls: Option<&Arc<ClientConfig>>,
        settings: &[(u16, u32)],
    ) -> Wire {
        let mut w = Wire::connect(mode, addr, tls);
        let mut first = PREFACE.to_vec();
        first.extend(settings_frame(settings));
        first.extend(window_update(0, (16 << 20) - 65_535));
        w.send(&first);
        w
    }

    /// Sets the read timeout of the socket.
    pub fn set_timeout(&self, t: Duration) {
        self.tcp.set_read_timeout(Some(t)).expect("timeout");
    }

    /// Writes bytes; false when the server no longer takes them (closed or reset).
    pub fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.io.write_all(bytes).is_ok() && self.io.flush().is_ok()
    }

    #[track_caller]
    pub fn send(&mut self, bytes: &[u8]) {
        assert!(self.try_send(bytes), "the server took the bytes");
    }

    /// Every byte the server sends until it closes (or a read times out), unparsed.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let mut got = std::mem::take(&mut self.input);
        let mut buf = [0u8; 4096];
        // bounded: reads time out
        while let Ok(n) = self.io.read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        self.closed = true;
        got
    }

    /// The next client stream id (1, 3, 5, …).
    pub fn next_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 2;
        id
    }

    /// The pseudo-headers of a request for `path`, then `extra`.
    pub fn request_fields<'a>(
        &self,
        method: &'a str,
        path: &'a str,
        extra: &[(&'a str, &'a str)],
    ) -> Vec<(&'a str, &'a str)> {
        let scheme = match self.mode {
            Mode::H2c => "http",
            Mode::Tls => "https",
        };
        let mut f = vec![
            (":method", method),
            (":scheme", scheme),
            (":authority", "localhost"),
            (":path", path),
        ];
        f.extend_from_slice(extra);
        f
    }

    /// HEADERS (split into CONTINUATIONs past 16 KiB) with `fields` on `id`.
    pub fn headers(&mut self, id: u32, fields: &[(&str, &str)], end_stream: bool) {
        let block = encode(fields);
        self.send_block(id, &block, end_stream);
    }

    /// A field block on `id`, as HEADERS and CONTINUATIONs of at most 16 KiB.
    pub fn send_block(&mut self, id: u32, block: &[u8], end_stream: bool) {
        let mut chunks = block.chunks(16_384).peekable();
        let mut out = Vec::new();
        let mut first = true;
        if block.is_empty() {
            let flags = flag::END_HEADERS | if end_stream { flag::END_STREAM } else { 0 };
            out.extend(frame(kind::HEADERS, flags, id, &[]));
        }
        while let Some(chunk) = chunks.next() {
            let mut flags = if chunks.peek().is_none() {
                flag::END_HEADERS
            } else {
                0
            };
            let k = if first {
                if end_stream {
                    flags |= flag::END_STREAM;
                }
                kind::HEADERS
            } else {
                kind::CONTINUATION
            };
            first = false;
            out.extend(frame(k, flags, id, chunk));
        }
        self.send(&out);
    }

    /// Sends a request (a new stream) and returns its id; `body`: DATA after the head (none:
    /// END_STREAM on the HEADERS).
    pub fn start(
        &mut self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> u32 {
        let id = self.next_id();
        let fields = self.request_fields(method, path, extra);
        self.headers(id, &fields, body.is_none());
        if let Some(body) = body {
            self.send_data(id, body, true);
        }
        id
    }

    /// DATA on `id` in frames of at most 16 KiB (the caller minds the windows; what is sent is
    /// counted against them).
    pub fn send_data(&mut self, id: u32, body: &[u8], end_stream: bool) {
        self.conn_send -= body.len() as i64;
        *self.stream_send.entry(id).or_insert(0) -= body.len() as i64;
        let mut out = Vec::new();
        if body.is_empty() {
            out.extend(data(id, &[], end_stream));
        }
        let mut chunks = body.chunks(16_384).peekable();
        while let Some(chunk) = chunks.next() {
            out.extend(data(id, chunk, end_stream && chunks.peek().is_none()));
        }
        self.send(&out);
    }

    /// The server's SETTINGS_INITIAL_WINDOW_SIZE, as received so far.
    fn initial_window(&self) -> i64 {
        self.settings
            .iter()
            .rev()
            .find(|(id, _)| *id == setting::INITIAL_WINDOW_SIZE)
            .map_or(65_535, |(_, v)| i64::from(*v))
    }

    /// What the connection may still send (its window, as the server's WINDOW_UPDATEs made it).
    pub fn conn_window(&self) -> i64 {
        self.conn_send
    }

    /// What stream `id` may still send (both windows).
    pub fn send_window(&self, id: u32) -> i64 {
        let stream = self.initial_window() + self.stream_send.get(&id).copied().unwrap_or(0);
        stream.min(self.conn_send)
    }

    /// DATA on `id`, within the server's flow-control windows: reads frames (WINDOW_UPDATEs)
    /// while they are spent. False if the stream or the connection ended first.
    pub fn send_data_flow(&mut self, id: u32, body: &[u8], end_stream: bool) -> bool {
        let mut at = 0;
        // bounded: every round sends bytes, or reads a frame (reads time out)
        while at < body.len() || (end_stream && at == 0 && body.is_empty()) {
            if self.streams.get(&id).is_some_and(|r| r.reset.is_some()) {
                return false;
            }
            let room = usize::try_from(self.send_window(id)).unwrap_or(0);
            let n = room.min(16_384).min(body.len() - at);
            if n == 0 && !body.is_empty() {
                if self.closed || !self.pump() {
                    return false;
                }
                continue;
            }
            let last = at + n == body.len();
            if !self.try_send(&data(id, &body[at..at + n], end_stream && last)) {
                return false;
            }
            self.conn_send -= n as i64;
            *self.stream_send.entry(id).or_insert(0) -= n as i64;
            at += n;
            if body.is_empty() {
                break;
            }
        }
        true
    }

    /// A request and its whole response.
    #[track_caller]
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Resp {
        let id = self.start(method, path, extra, body);
        self.response(id)
    }

    /// `GET path` and its whole response.
    #[track_caller]
    pub fn get(&mut self, path: &str) -> Resp {
        self.request("GET", path, &[], None)
    }

    /// Reads until stream `id` ended or was reset; panics if the connection ends first.
    #[track_caller]
    pub fn response(&mut self, id: u32) -> Resp {
        let done = self.wait(|w| w.streams.get(&id).is_some_and(Resp::done));
        assert!(
            done,
            "stream {id} got no whole answer: {:?}; goaway {:?}, closed {}",
            self.streams.get(&id),
            self.goaway,
            self.closed
        );
        self.streams.get(&id).cloned().unwrap_or_default()
    }

    /// Reads until stream `id` is reset (even one that had ended: a frame sent after its end);
    /// returns the code, or `None` if none came before the connection ended or a read timed
    /// out.
    pub fn wait_reset(&mut self, id: u32) -> Option<u32> {
        self.wait(|w| w.streams.get(&id).is_some_and(|r| r.reset.is_some()));
        self.streams.get(&id).and_then(|r| r.reset)
    }

    /// Reads frames until `cond` holds (true) or the connection ends or a read times out
    /// (false).
    pub fn wait(&mut self, mut cond: impl FnMut(&Wire) -> bool) -> bool {
        // bounded: every round reads a frame, and reads time out
        loop {
            if cond(self) {
                return true;
            }
            if self.closed || !self.pump() {
                return cond(self);
            }
        }
    }

    /// Reads until the server's GOAWAY (or the end); returns (last stream id, code).
    pub fn wait_goaway(&mut self) -> Option<(u32, u32)> {
        self.wait(|w| w.goaway.is_some());
        self.goaway
    }

    /// Reads until the server closes the connection; true if it did before a read timed out.
    pub fn wait_closed(&mut self) -> bool {
        self.wait(|w| w.closed)
    }

    /// A PING round trip: the server is alive and has handled every frame sent before it.
    pub fn ping_pong(&mut self) -> bool {
        let data = *b"pingpong";
        if !self.try_send(&ping(data)) {
            return false;
        }
        let before = self.pongs.iter().filter(|p| **p == data).count();
        self.wait(|w| w.pongs.iter().filter(|p| **p == data).count() > before)
    }

    /// Reads one frame (from what is buffered, or the socket) and takes note of it; false when
    /// the connection ended or a read timed out.
    pub fn pump(&mut self) -> bool {
        let Some(f) = self.read_frame() else {
            return false;
        };
        self.frames_seen += 1;
        self.note(f);
        true
    }

    fn fill(&mut self) -> io::Result<bool> {
        let mut buf = [0u8; 65_536];
        match self.io.read(&mut buf) {
            Ok(0) => {
                self.closed = true;
                Ok(false)
            }
            Ok(n) => {
                self.input.extend_from_slice(&buf[..n]);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(e)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(_) => {
                self.closed = true;
                Ok(false)
            }
        }
    }

    /// The next whole frame; `None` when the connection ended or a read timed out.
    pub fn read_frame(&mut self) -> Option<Frame> {
        // bounded: every round reads bytes or returns
        loop {
            if self.input.len() >= 9 {
                let len = (usize::from(self.input[0]) << 16)
                    | (usize::from(self.input[1]) << 8)
                    | usize::from(self.input[2]);
                if self.input.len() >= 9 + len {
                    let f = Frame {
                        kind: self.input[3],
                        flags: self.input[4],
                        stream: be32(&self.input[5..9]),
                        payload: self.input[9..9 + len].to_vec(),
                    };
                    self.input.drain(..9 + len);
                    return Some(f);
                }
            }
            match self.fill() {
                Ok(true) => {}
                Ok(false) | Err(_) => return None,
            }
        }
    }

    fn decode_block(&mut self, block: &[u8]) -> Vec<(String, String)> {
        self.decoder
            .decode(block, &mut self.list)
            .unwrap_or_else(|e| panic!("the server's field block does not decode: {e:?}"));
        self.list
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    fn note(&mut self, f: Frame) {
        match f.kind {
            kind::SETTINGS if f.flags & flag::ACK == 0 => {
                for p in f.payload.chunks(6) {
                    if p.len() == 6 {
                        let id = u16::from_be_bytes([p[0], p[1]]);
                        self.settings
                            .push((id, u32::from_be_bytes([p[2], p[3], p[4], p[5]])));
                    }
                }
                if self.auto_settings_ack {
                    let _ = self.try_send(&frame(kind::SETTINGS, flag::ACK, 0, &[]));
                }
            }
            kind::PING if f.flags & flag::ACK != 0 => {
                if let Ok(p) = <[u8; 8]>::try_from(f.payload.as_slice()) {
                    self.pongs.push(p);
                }
            }
            kind::GOAWAY if f.payload.len() >= 8 => {
                let g = (be32(&f.payload[0..4]), be32(&f.payload[4..8]));
                self.goaway.get_or_insert(g);
                self.goaways.push(g);
            }
            kind::WINDOW_UPDATE if f.payload.len() == 4 => {
                let inc = i64::from(be32(&f.payload));
                if f.stream == 0 {
                    self.conn_send += inc;
                } else {
                    *self.stream_send.entry(f.stream).or_insert(0) += inc;
                }
            }
            kind::RST_STREAM if f.payload.len() == 4 => {
                self.streams.entry(f.stream).or_default().reset = Some(be32(&f.payload));
            }
            kind::HEADERS | kind::CONTINUATION => self.note_block(&f),
            kind::DATA => self.note_data(&f),
            _ => {}
        }
    }

    fn note_block(&mut self, f: &Frame) {
        let mut fragment = f.payload.as_slice();
        if f.kind == kind::HEADERS {
            if f.flags & flag::PADDED != 0 {
                let pad = usize::from(fragment[0]);
                fragment = &fragment[1..fragment.len() - pad];
            }
            if f.flags & flag::PRIORITY != 0 {
                fragment = &fragment[5..];
            }
            self.block = Some((f.stream, fragment.to_vec(), f.flags & flag::END_STREAM != 0));
        } else if let Some((_, bytes, _)) = self.block.as_mut() {
            bytes.extend_from_slice(fragment);
        }
        if f.flags & flag::END_HEADERS != 0 {
            if let Some((id, bytes, end)) = self.block.take() {
                let fields = self.decode_block(&bytes);
                let r = self.streams.entry(id).or_default();
                r.blocks.push(fields);
                r.ended |= end;
            }
        }
    }

    fn note_data(&mut self, f: &Frame) {
        let mut payload = f.payload.as_slice();
        if f.flags & flag::PADDED != 0 {
            let pad = usize::from(payload[0]);
            payload = &payload[1..payload.len() - pad];
        }
        let r = self.streams.entry(f.stream).or_default();
        r.body.extend_from_slice(payload);
        r.data_frames += 1;
        let ended = f.flags & flag::END_STREAM != 0;
        r.ended |= ended;
        if self.auto_window && !f.payload.is_empty() {
            let mut out = Vec::new();
            if !ended {
                out.extend(window_update(f.stream, f.payload.len() as u32));
            }
            self.conn_owed += f.payload.len();
            if self.conn_owed >= 512 * 1024 {
                out.extend(window_update(0, self.conn_owed as u32));
                self.conn_owed = 0;
            }
            if !out.is_empty() {
                let _ = self.try_send(&out);
            }
        }
    }
}

/// An in-process proxy speaking HTTP/2 over `mode`, with what its clients need.
pub struct Setup {
    pub proxy: Proxy,
    pub mode: Mode,
    /// Over TLS: the test CA, and its PEM file for curl, nghttp and Python.
    pub ca: Option<TestCa>,
    pub ca_file: Option<PathBuf>,
    pub tls: Option<Arc<ClientConfig>>,
    _dir: Option<TempDir>,
}

impl Setup {
    /// A proxy (2 workers) in front of `backends`, `extra` merged into its config; over TLS it
    /// serves a certificate of the test CA for `localhost` and `127.0.0.1`.
    pub fn start(mode: Mode, backends: &[SocketAddr], extra: Value) -> Setup {
        match mode {
            Mode::H2c => Setup {
                proxy: Proxy::start(backends, extra),
                mode,
                ca: None,
                ca_file: None,
                tls: None,
                _dir: None,
            },
            Mode::Tls => {
                static DIRS: AtomicUsize = AtomicUsize::new(0);
                let dir = TempDir::new(&format!("http2-{}", DIRS.fetch_add(1, Ordering::SeqCst)));
                let ca = TestCa::new("ferrule http2 test CA");
                let files: CertFiles = ca.issue(&["localhost", "127.0.0.1"]).write(&dir, "server");
                let ca_file = dir.write("ca.pem", ca.pem());
                let proxy = Proxy::start(backends, merged(json!({"ssl": files.ssl()}), extra));
                let tls = h2_client_config(&ca);
                Setup {
                    proxy,
                    mode,
                    ca: Some(ca),
                    ca_file: Some(ca_file),
                    tls: Some(tls),
                    _dir: Some(dir),
                }
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.proxy.addr()
    }

    /// A new client connection: preface, empty SETTINGS, a 16 MiB connection window.
    pub fn wire(&self) -> Wire {
        self.wire_with(&[])
    }

    pub fn wire_with(&self, settings: &[(u16, u32)]) -> Wire {
        Wire::open_with(self.mode, self.addr(), self.tls.as_ref(), settings)
    }

    /// A connection with nothing sent yet.
    pub fn raw(&self) -> Wire {
        Wire::connect(self.mode, self.addr(), self.tls.as_ref())
    }

    /// The URL of `path` on the proxy.
    pub fn url(&self, path: &str) -> String {
        match self.mode {
            Mode::H2c => format!("http://{}{path}", self.addr()),
            Mode::Tls => format!("https://localhost:{}{path}", self.addr().port()),
        }
    }

    /// curl's arguments to reach the proxy over HTTP/2 in this mode (prior knowledge, or TLS
    /// with the test CA; `localhost` pinned to 127.0.0.1).
    pub fn curl_args(&self) -> Vec<String> {
        let mut a = vec![
            "--silent".to_owned(),
            "--show-error".to_owned(),
            "--max-time".to_owned(),
            "60".to_owned(),
        ];
        match self.mode {
            Mode::H2c => a.push("--http2-prior-knowledge".to_owned()),
            Mode::Tls => {
                a.push("--http2".to_owned());
                a.push("--cacert".to_owned());
                a.push(path_text(self.ca_file.as_ref().expect("CA file")));
                a.push("--resolve".to_owned());
                a.push(format!("localhost:{}:127.0.0.1", self.addr().port()));
            }
        }
        a
    }

    /// The arguments of `tests/http2/h2client.py` that say where the proxy is.
    pub fn py_args(&self) -> Vec<String> {
        let mut a = vec!["--port".to_owned(), self.addr().port().to_string()];
        if let Some(ca) = &self.ca_file {
            a.push("--tls".to_owned());
            a.push(path_text(ca));
        }
        a
    }
}

/// A proxy child process (one worker) in front of `backend`, over `mode`, with what a client
/// needs to reach it. Over TLS, the directory of its certificate comes first: bound first by
/// `let (_dir, proxy, tls) = ...`, it is dropped (removed) after the process.
pub fn proxy_process(
    mode: Mode,
    backend: SocketAddr,
    extra: Value,
    name: &str,
) -> (Option<TempDir>, ProxyProcess, Option<Arc<ClientConfig>>) {
    let base = json!({"workers": 1, "backends": [{"url": format!("http://{backend}")}]});
    match mode {
        Mode::H2c => (None, ProxyProcess::start(merged(base, extra), name), None),
        Mode::Tls => {
            let dir = TempDir::new(name);
            let ca = TestCa::new("ferrule http2 limits CA");
            let files = ca.issue(&["localhost"]).write(&dir, "server");
            let cfg = merged(merged(base, json!({"ssl": files.ssl()})), extra);
            (
                Some(dir),
                ProxyProcess::start(cfg, name),
                Some(h2_client_config(&ca)),
            )
        }
    }
}

/// What a child process did.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs `cmd` with `stdin` fed to it, for at most `limit`: past it the child is killed (by its
/// PID) and the test fails.
#[track_caller]
pub fn run_bounded(mut cmd: Command, stdin: Option<Vec<u8>>, limit: Duration) -> Output {
    let program = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let mut child = ChildGuard(child);
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.0.stdin.take()) {
        thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let mut out = child.0.stdout.take().expect("stdout");
    let mut err = child.0.stderr.take().expect("stderr");
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = child.wait_for(limit);
    let Some(status) = status else {
        drop(child); // killed by its PID
        panic!(
            "{program} still ran after {:?}; stderr: {}",
            started.elapsed(),
            err.join().unwrap_or_default()
        );
    };
    Output {
        code: status.code(),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// `tests/http2/h2client.py SCENARIO` with the proxy's arguments and `args`, bounded by
/// `limit`: its last line of output, parsed as JSON.
#[track_caller]
pub fn run_py(setup: &Setup, scenario: &str, args: &[&str], limit: Duration) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/http2/h2client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(scenario)
        .args(setup.py_args())
        .args(args);
    let out = run_bounded(cmd, None, limit);
    let text = out.text();
    let last = text.lines().last().unwrap_or("");
    serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "h2client.py {scenario}: not JSON ({e}): exit {:?}\nstdout: {text}\nstderr: {}",
            out.code, out.stderr
        )
    })
}

/// A backend on 127.0.0.1:0 that answers every request `200` with its body echoed
/// (`Content-Length`), keeping nothing of it; it counts requests and the most it held at once.
pub struct EchoBackend {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    pub max_in_flight: Arc<AtomicUsize>,
}

impl EchoBackend {
    pub fn start() -> EchoBackend {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let b = EchoBackend {
            addr: listener.local_addr().expect("addr"),
            requests: Arc::default(),
            in_flight: Arc::default(),
            max_in_flight: Arc::default(),
        };
        let (requests, in_flight, max) = (
            Arc::clone(&b.requests),
            Arc::clone(&b.in_flight),
            Arc::clone(&b.max_in_flight),
        );
        thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(s) = s else { break };
                let (requests, in_flight, max) = (
                    Arc::clone(&requests),
                    Arc::clone(&in_flight),
                    Arc::clone(&max),
                );
                thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
                    let Ok(mut w) = s.try_clone() else { return };
                    let mut r = io::BufReader::with_capacity(1 << 20, s);
                    // bounded: one request per round, until the connection ends
                    loop {
                        let Ok(seen) = read_request(&mut r, 0) else {
                            return;
                        };
                        if seen.is_health_probe() {
                            if w.write_all(HEALTH_PROBE_ANSWER).is_err() {
                                return;
                            }
                            continue;
                        }
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(now, Ordering::SeqCst);
                        requests.fetch_add(1, Ordering::SeqCst);
                        let answer = ok_response("echo", &seen.body);
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        if w.write_all(&answer).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        b
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A backend that never answers (but requests for `/ok…`, answered `200` `ok` at once, keep-alive):
/// each request reports its target on arrival, then the backend waits for the proxy to end the
/// connection and reports that too (the request was cancelled). It waits at most 30 s, and then
/// reports `"<target> not ended"`.
pub struct HoldBackend {
    pub addr: SocketAddr,
    pub arrivals: mpsc::Receiver<String>,
    pub ends: mpsc::Receiver<String>,
}

impl HoldBackend {
    /// Waits for the next request to arrive (10 s at most) and returns its target.
    #[track_caller]
    pub fn arrival(&self) -> String {
        self.arrivals
            .recv_timeout(IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("no request reached the hold backend: {e:?}"))
    }

    /// Waits for a held request to end (40 s at most) and returns its target (`" not ended"`
    /// appended if the proxy kept it for 30 s).
    #[track_caller]
    pub fn end(&self) -> String {
        self.ends
            .recv_timeout(Duration::from_secs(40))
            .unwrap_or_else(|e| panic!("no held request ended: {e:?}"))
    }

    pub fn start() -> HoldBackend {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (arrived, arrivals) = mpsc::channel::<String>();
        let (ended, ends) = mpsc::channel::<String>();
        let (arrived, ended) = (Arc::new(Mutex::new(arrived)), Arc::new(Mutex::new(ended)));
        thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(s) = s else { break };
                let (arrived, ended) = (Arc::clone(&arrived), Arc::clone(&ended));
                thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                    let Ok(mut w) = s.try_clone() else { return };
                    let mut r = io::BufReader::new(s);
                    let seen = loop {
                        let Ok(seen) = read_request(&mut r, 0) else {
                            return;
                        };
                        let answer = if seen.is_health_probe() {
                            HEALTH_PROBE_ANSWER.to_vec()
                        } else if seen.target.starts_with("/ok") {
                            ok_response("hold", b"ok")
                        } else {
                            break seen;
                        };
                        if w.write_all(&answer).is_err() {
                            return;
                        }
                    };
                    let _ = arrived.lock().map(|tx| tx.send(seen.target.clone()));
                    let mut buf = [0u8; 4096];
                    let how = loop {
                        match r.get_mut().read(&mut buf) {
                            Ok(0) => break "",
                            Ok(_) => {}
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                                ) =>
                            {
                                break " not ended"
                            }
                            Err(_) => break "",
                        }
                    };
                    let _ = ended
                        .lock()
                        .map(|tx| tx.send(format!("{}{how}", seen.target)));
                });
            }
        });
        HoldBackend {
            addr,
            arrivals,
            ends,
        }
    }
}
