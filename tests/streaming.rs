//! Streaming tests: bodies far larger than any buffer cross the proxy exactly (1 GiB down, 1 GiB
//! up with Content-Length, 1 GiB up chunked) while the proxy's memory stays bounded; a slow reader
//! stops the backend's writer (back-pressure) instead of growing a buffer; a backend that never
//! completes the TCP handshake gets 504 after `connect_timeout`; a client that leaves while its
//! request is at the backend frees the backend connection at once.
//!
//! The 1 GiB tests run the real `ferrule` binary as a child process, so its peak resident memory
//! (`VmHWM` in `/proc/<pid>/status`) belongs to the proxy alone. Bodies are never stored: both
//! ends generate or verify a deterministic pattern block by block.
//!
//! Everything runs on 127.0.0.1; every wait is bounded; the child process is stopped by its PID.

use crate::common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::tls::report_rate;
use common::*;
use serde_json::json;
use socket2::{Domain, Socket, Type};

// ----------------------------------------------------------------------------- the pattern

/// Bodies are made of 64 KiB blocks; the backend writes one block per `write` call.
const BLOCK: usize = 64 * 1024;

/// The deterministic body every test sends and checks.
///
/// Block `i` is a 64 KiB pseudo-random base block rotated by a pseudo-random offset derived from
/// `i`, with `i` itself stamped over its first 8 bytes. So every block differs from its
/// neighbours: a lost, duplicated or reordered block, or a single lost or inserted byte (which
/// shifts everything after it), makes the bytes differ from what is expected. Making a block is
/// two `memcpy`s, cheap even in a debug build.
struct Pattern {
    /// The base block, twice in a row, so every rotation is one contiguous slice.
    doubled: Vec<u8>,
}

impl Pattern {
    fn new() -> Pattern {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut base = Vec::with_capacity(BLOCK);
        while base.len() < BLOCK {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            base.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        let mut doubled = base.clone();
        doubled.extend_from_slice(&base);
        Pattern { doubled }
    }

    /// Writes block `index` into `out` (which is `BLOCK` long).
    fn block(&self, index: u64, out: &mut [u8]) {
        let rotation = (splitmix64(index) % BLOCK as u64) as usize;
        out.copy_from_slice(&self.doubled[rotation..rotation + BLOCK]);
        out[..8].copy_from_slice(&index.to_le_bytes());
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An order-sensitive checksum (FNV-1a over little-endian u64 words, then the tail bytes).
fn fold(mut h: u64, bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let words = bytes.chunks_exact(8);
    let tail = words.remainder();
    for w in words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(a)).wrapping_mul(PRIME);
    }
    for &b in tail {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    }
    h
}

const FOLD_SEED: u64 = 0xcbf2_9ce4_8422_2325;

/// Writes the first `len` bytes of the pattern to `w` in `BLOCK`-sized writes; returns the
/// checksum of what was written. `on_block` runs after each block was accepted.
fn write_pattern<W: Write>(w: &mut W, len: u64, mut on_block: impl FnMut(u64)) -> io::Result<u64> {
    let pattern = Pattern::new();
    let mut block = vec![0u8; BLOCK];
    let mut sum = FOLD_SEED;
    let mut sent = 0u64;
    let mut index = 0u64;
    while sent < len {
        pattern.block(index, &mut block);
        let n = (len - sent).min(BLOCK as u64) as usize;
        w.write_all(&block[..n])?;
        sum = fold(sum, &block[..n]);
        sent += n as u64;
        index += 1;
        on_block(n as u64);
    }
    Ok(sum)
}

/// Checks bytes against the pattern as they arrive, in pieces of any size, without storing more
/// than one block. Also folds the received bytes into a checksum.
struct Verifier {
    pattern: Pattern,
    expected: Vec<u8>,
    /// The block being received.
    got: Vec<u8>,
    filled: usize,
    index: u64,
    /// Bytes checked so far (whole blocks).
    checked: u64,
    checksum: u64,
}

impl Verifier {
    fn new() -> Verifier {
        Verifier {
            pattern: Pattern::new(),
            expected: vec![0u8; BLOCK],
            got: vec![0u8; BLOCK],
            filled: 0,
            index: 0,
            checked: 0,
            checksum: FOLD_SEED,
        }
    }

    /// Bytes received so far.
    fn received(&self) -> u64 {
        self.checked + self.filled as u64
    }

    fn feed(&mut self, mut data: &[u8]) -> Result<(), String> {
        while !data.is_empty() {
            let n = data.len().min(BLOCK - self.filled);
            self.got[self.filled..self.filled + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == BLOCK {
                self.check_block()?;
            }
        }
        Ok(())
    }

    fn check_block(&mut self) -> Result<(), String> {
        let len = self.filled;
        self.pattern.block(self.index, &mut self.expected);
        let (got, expected) = (&self.got[..len], &self.expected[..len]);
        if got != expected {
            let at = got
                .iter()
                .zip(expected)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(format!(
                "body byte {} (block {}, offset {at}) is {:#04x}, expected {:#04x}",
                self.checked + at as u64,
                self.index,
                got[at],
                expected[at],
            ));
        }
        self.checksum = fold(self.checksum, got);
        self.checked += len as u64;
        self.index += 1;
        self.filled = 0;
        Ok(())
    }

    /// Checks the last, partial block; returns (bytes, checksum).
    fn finish(&mut self) -> Result<(u64, u64), String> {
        if self.filled > 0 {
            self.check_block()?;
        }
        Ok((self.checked, self.checksum))
    }
}

/// Reads exactly `len` body bytes from `r` into `v`, in reads as large as `r`'s buffer.
fn verify_from<R: BufRead>(r: &mut R, len: u64, v: &mut Verifier) -> Result<(), String> {
    let mut left = len;
    while left > 0 {
        let buf = r.fill_buf().map_err(|e| {
            format!(
                "reading the body after {} of {len} bytes: {e}",
                v.received()
            )
        })?;
        if buf.is_empty() {
            return Err(format!(
                "connection closed after {} of {len} body bytes",
                v.received()
            ));
        }
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        v.feed(&buf[..n])?;
        r.consume(n);
        left -= n as u64;
    }
    Ok(())
}

// Proves the pattern checks themselves work: a lost byte, a duplicated or reordered block, a
// flipped bit all fail verification, and the checksum depends on the order of the bytes.
#[test]
fn verifier_detects_loss_duplication_and_reordering() {
    let pattern = Pattern::new();
    let blocks: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            let mut b = vec![0u8; BLOCK];
            pattern.block(i, &mut b);
            b
        })
        .collect();
    let verify = |stream: &[u8]| -> Result<(u64, u64), String> {
        let mut v = Verifier::new();
        for piece in stream.chunks(1000) {
            v.feed(piece)?;
        }
        v.finish()
    };
    let good = blocks.concat();
    assert_eq!(
        verify(&good),
        Ok((4 * BLOCK as u64, fold(FOLD_SEED, &good)))
    );
    let mut written = Vec::new();
    let sum = write_pattern(&mut written, good.len() as u64 - 3, |_| {}).expect("write");
    assert_eq!(written, good[..good.len() - 3]);
    assert_eq!(verify(&written), Ok((written.len() as u64, sum)));

    let mut lost = good.clone();
    lost.remove(BLOCK + 12_345);
    assert!(verify(&lost).unwrap_err().contains("block 1"));
    let duplicated = [&blocks[0], &blocks[1], &blocks[1], &blocks[2]]
        .map(|b| b.as_slice())
        .concat();
    assert!(verify(&duplicated).unwrap_err().contains("block 2"));
    let swapped = [&blocks[0], &blocks[2], &blocks[1], &blocks[3]]
        .map(|b| b.as_slice())
        .concat();
    assert!(verify(&swapped).unwrap_err().contains("block 1"));
    assert_ne!(fold(FOLD_SEED, &swapped), fold(FOLD_SEED, &good));
    let mut flipped = good.clone();
    flipped[3 * BLOCK + 999] ^= 0x10;
    let error = verify(&flipped).unwrap_err();
    assert!(
        error.contains(&format!("body byte {}", 3 * BLOCK + 999)),
        "{error}"
    );
}

// ----------------------------------------------------------------------------- HTTP bits

/// Reads a small response body (Content-Length or chunked) whole.
fn read_small_body<R: BufRead>(r: &mut R, head: &Head) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if head.chunked() {
        let mut d = Dechunker::new();
        d.read_body(r, |piece| {
            body.extend_from_slice(piece);
            Ok(())
        })?;
    } else if let Some(n) = head.content_length() {
        body.resize(usize::try_from(n).expect("small body"), 0);
        r.read_exact(&mut body)?;
    }
    Ok(body)
}

/// An incremental reader of a chunked body: hands the data to a callback piece by piece, never
/// holding more than the reader's buffer.
struct Dechunker {
    line: Vec<u8>,
}

impl Dechunker {
    fn new() -> Dechunker {
        Dechunker { line: Vec::new() }
    }

    fn read_line<R: BufRead>(&mut self, r: &mut R) -> io::Result<&str> {
        self.line.clear();
        if r.read_until(b'\n', &mut self.line)? == 0 || !self.line.ends_with(b"\n") {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "chunked body cut short",
            ));
        }
        std::str::from_utf8(&self.line)
            .map(|s| s.trim_end_matches(['\r', '\n']))
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "chunk line not UTF-8"))
    }

    /// Reads the whole chunked body (trailers included) from `r`, passing the data to `each`.
    fn read_body<R: BufRead>(
        &mut self,
        r: &mut R,
        mut each: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        loop {
            let line = self.read_line(r)?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size line {line:?}"),
                )
            })?;
            if size == 0 {
                // trailer section, up to the empty line
                while !self.read_line(r)?.is_empty() {}
                return Ok(());
            }
            let mut left = size;
            while left > 0 {
                let buf = r.fill_buf()?;
                if buf.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "chunk data cut short",
                    ));
                }
                let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                each(&buf[..n])?;
                r.consume(n);
                left -= n as u64;
            }
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
            if &crlf != b"\r\n" {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("chunk data not followed by CRLF but {crlf:?}"),
                ));
            }
        }
    }
}

// ----------------------------------------------------------------------------- the backend

/// A backend that streams the pattern and verifies uploads, thread per connection, keep-alive:
/// - `GET /big/N`: 200, `Content-Length: N`, N bytes of the pattern in `BLOCK`-sized writes;
///   `written` counts the bytes the kernel has accepted;
/// - `POST /up` (Content-Length or chunked): reads and verifies the body as it arrives; answers
///   200 with `bytes=N checksum=HEX`, or 422 with what was wrong;
/// - anything else: 200 `ok`.
struct PatternBackend {
    addr: SocketAddr,
    written: Arc<AtomicU64>,
    /// Serves until the backend is dropped.
    _accepting: AcceptLoop,
}

impl PatternBackend {
    fn start() -> PatternBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let written = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&written);
        let accepting = serve(listener, move |stream| {
            let _ = serve_pattern(stream, &counter);
        });
        PatternBackend {
            addr: accepting.addr,
            written,
            _accepting: accepting,
        }
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }
}

fn respond(w: &mut TcpStream, status: &str, body: &str) -> io::Result<()> {
    let text = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    w.write_all(text.as_bytes())
}

fn serve_pattern(stream: TcpStream, written: &AtomicU64) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::with_capacity(1 << 20, stream);
    loop {
        let head = Head::read(&mut r)?;
        let mut parts = head.start.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        if let Some(n) = target.strip_prefix("/big/") {
            let len: u64 = n.parse().map_err(|_| io::ErrorKind::InvalidInput)?;
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
            w.write_all(head.as_bytes())?;
            write_pattern(&mut w, len, |n| {
                written.fetch_add(n, Ordering::SeqCst);
            })?;
        } else if method == "POST" && target == "/up" {
            let mut v = Verifier::new();
            let read = if head.chunked() {
                Dechunker::new()
                    .read_body(&mut r, |piece| {
                        v.feed(piece)
                            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
                    })
                    .map_err(|e| format!("after {} body bytes: {e}", v.received()))
            } else if let Some(len) = head.content_length() {
                verify_from(&mut r, len, &mut v)
            } else {
                Err("no body framing".to_string())
            };
            match read.and_then(|()| v.finish()) {
                Ok((bytes, sum)) => respond(
                    &mut w,
                    "200 OK",
                    &format!("bytes={bytes} checksum={sum:016x}"),
                )?,
                Err(e) => {
                    respond(&mut w, "422 Unprocessable Content", &e)?;
                    return Ok(());
                }
            }
        } else {
            respond(&mut w, "200 OK", "ok")?;
        }
    }
}

// ----------------------------------------------------------------------------- the proxy binary

/// The `ferrule` binary as a child process with one worker in front of `backend` (see
/// [`ProxyProcess::start`]).
fn proxy_process(backend: SocketAddr, name: &str) -> ProxyProcess {
    ProxyProcess::start(
        json!({
            "workers": 1,
            "backends": [{"url": format!("http://{backend}"), "weight": 1}],
        }),
        name,
    )
}

/// A client connection with read and write timeouts, so a stuck proxy fails the test.
fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the proxy");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
    s
}

// ----------------------------------------------------------------------------- 1 GiB

// Proves a 1 GiB Content-Length response reaches the client byte for byte (no loss, duplication
// or reordering) and the proxy streams it: its peak RSS stays far below the body size.
#[test]
fn one_gigabyte_download_is_exact_with_bounded_memory() {
    let backend = PatternBackend::start();
    let proxy = proxy_process(backend.addr, "download");
    let before = proxy.memory();

    let started = Instant::now();
    let mut stream = connect(proxy.addr());
    stream
        .write_all(
            format!("GET /big/{GIB} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .expect("send the request");
    let mut r = BufReader::with_capacity(1 << 20, stream);
    let head = Head::read(&mut r).expect("response head");
    assert_eq!(head.status(), 200, "{}", head.start);
    assert_eq!(head.content_length(), Some(GIB), "{:?}", head.fields);
    let mut v = Verifier::new();
    if let Err(e) = verify_from(&mut r, GIB, &mut v) {
        panic!("{e}");
    }
    let (bytes, _) = v.finish().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bytes, GIB);
    // Connection: close was asked for: nothing follows the body.
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{} bytes after the body", rest.len());
    report_rate("download", bytes, started);

    assert_bounded_memory(before, proxy.memory());
}

/// POSTs `len` bytes of the pattern to `/up` on `addr` (chunked or with Content-Length) and checks
/// the backend's verdict: exactly `len` bytes, the same checksum the client computed.
fn upload(addr: SocketAddr, len: u64, chunked: bool) {
    let started = Instant::now();
    let mut stream = connect(addr);
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {len}")
    };
    stream
        .write_all(format!("POST /up HTTP/1.1\r\nHost: test\r\n{framing}\r\n\r\n").as_bytes())
        .expect("send the head");
    let sent = if chunked {
        let mut w = ChunkWriter {
            inner: &mut stream,
            frame: Vec::with_capacity(BLOCK + 16),
        };
        let sum = write_pattern(&mut w, len, |_| {});
        sum.and_then(|sum| stream.write_all(b"0\r\n\r\n").map(|()| sum))
    } else {
        write_pattern(&mut stream, len, |_| {})
    };
    let mut r = BufReader::new(stream);
    let sum = match sent {
        Ok(sum) => sum,
        Err(e) => {
            // the proxy may have answered early: show what it said
            let answer = Head::read(&mut r)
                .map(|h| h.start)
                .unwrap_or_else(|e| e.to_string());
            panic!("sending the body failed: {e}; the proxy answered {answer:?}");
        }
    };
    let head = Head::read(&mut r).expect("response head");
    let body = read_small_body(&mut r, &head).expect("response body");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(head.status(), 200, "{}: {body}", head.start);
    assert_eq!(body, format!("bytes={len} checksum={sum:016x}"));
    report_rate(
        if chunked { "chunked upload" } else { "upload" },
        len,
        started,
    );
}

/// Frames each `write` as one chunk, in a single `write_all` on the socket.
struct ChunkWriter<'a> {
    inner: &'a mut TcpStream,
    frame: Vec<u8>,
}

impl Write for ChunkWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.frame.clear();
        self.frame
            .extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        self.frame.extend_from_slice(data);
        self.frame.extend_from_slice(b"\r\n");
        self.inner.write_all(&self.frame)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

// Proves a 1 GiB Content-Length request body reaches the backend byte for byte, and the proxy
// streams it: its peak RSS stays far below the body size.
#[test]
fn one_gigabyte_upload_is_exact_with_bounded_memory() {
    let backend = PatternBackend::start();
    let proxy = proxy_process(backend.addr, "upload");
    let before = proxy.memory();
    upload(proxy.addr(), GIB, false);
    assert_bounded_memory(before, proxy.memory());
}

// Proves a 1 GiB chunked request body (64 KiB chunks) reaches the backend byte for byte, de-chunked
// by the backend, and the proxy streams it with bounded memory.
#[test]
fn one_gigabyte_chunked_upload() {
    let backend = PatternBackend::start();
    let proxy = proxy_process(backend.addr, "chunked-upload");
    let before = proxy.memory();
    upload(proxy.addr(), GIB, true);
    assert_bounded_memory(before, proxy.memory());
}

// ----------------------------------------------------------------------------- back-pressure

// Proves a client that stops reading stops the backend's writer (the proxy does not read ahead
// without bound), and that the body is still exact once the client reads again.
#[test]
fn slow_reader_applies_back_pressure() {
    const LEN: u64 = 256 * MIB;
    let backend = PatternBackend::start();
    let proxy = Proxy::start(&[backend.addr], json!({}));

    let mut stream = connect(proxy.addr());
    stream
        .write_all(format!("GET /big/{LEN} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .expect("send the request");
    let mut r = BufReader::with_capacity(64 * 1024, stream);
    let head = Head::read(&mut r).expect("response head");
    assert_eq!(head.status(), 200, "{}", head.start);
    assert_eq!(head.content_length(), Some(LEN));
    let mut v = Verifier::new();
    verify_from(&mut r, MIB, &mut v).unwrap_or_else(|e| panic!("{e}"));

    // The client stops reading. The backend's writes must stall once the kernel's socket
    // buffers (backend → proxy, proxy → client) and ferrule's two buffers are full.
    let limit = Instant::now() + Duration::from_secs(5);
    let mut last = backend.written();
    let mut stable_since = Instant::now();
    while stable_since.elapsed() < Duration::from_millis(500) {
        assert!(
            Instant::now() < limit,
            "the backend kept writing for 5 s while the client read nothing ({} bytes written)",
            backend.written()
        );
        thread::sleep(Duration::from_millis(20));
        let now = backend.written();
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
    }
    eprintln!(
        "backend stalled after {:.1} MiB with the client at 1 MiB",
        last as f64 / MIB as f64
    );
    // The kernel may hold a few MiB per socket (tcp_wmem / tcp_rmem autotuning); ferrule adds
    // 2 x 129 KiB. 32 MiB is far above that and far below the 256 MiB a reading-ahead proxy would
    // have pulled in.
    assert!(
        last < 32 * MIB,
        "the backend wrote {last} bytes while the client read 1 MiB"
    );

    // The client reads again: the rest arrives, exact.
    verify_from(&mut r, LEN - MIB, &mut v).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.finish().unwrap_or_else(|e| panic!("{e}")).0, LEN);
    assert_eq!(backend.written(), LEN);
}

// ----------------------------------------------------------------------------- connect timeout

// Proves a backend whose TCP handshake never completes gets 504 once connect_timeout has passed
// (and not before). The backend is a loopback listener with a backlog of 0 that never accepts:
// once its accept queue holds one connection the kernel drops further SYNs, so a connect hangs.
#[test]
fn connect_timeout_gives_504() {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    listener.bind(&any.into()).expect("bind");
    listener.listen(0).expect("listen(0)");
    let addr = listener
        .local_addr()
        .expect("local addr")
        .as_socket()
        .expect("an inet address");

    // Fill the accept queue until a connect hangs (Linux lets backlog + 1 connections in).
    let mut fillers = Vec::new();
    let mut hangs = false;
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => fillers.push(s),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                hangs = true;
                break;
            }
            Err(e) => panic!("connect to the full listener failed with {e} instead of hanging"),
        }
    }
    assert!(
        hangs,
        "{} connects to a listen(0) socket all completed: this kernel does not make a connect \
         hang, so the test cannot run here",
        fillers.len()
    );

    let proxy = Proxy::start(
        &[addr],
        json!({"connect_timeout": "300ms", "retries": 0, "health_check_frequency": "1h"}),
    );
    let started = Instant::now();
    let mut c = proxy.connect();
    c.stream()
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("read timeout");
    c.send(b"GET /never HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let r = c
        .try_response()
        .unwrap_or_else(|e| panic!("no response within 3 s: {e}"));
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(
        took >= Duration::from_millis(300),
        "504 after {took:?}, before connect_timeout (300 ms) ran out"
    );
    assert!(took < Duration::from_secs(3), "504 only after {took:?}");
    eprintln!("504 after {took:?} (connect_timeout 300 ms)");
    drop(fillers);
}

// ----------------------------------------------------------------------------- client leaves

// Proves a client that closes its connection while its request waits for a (slow) backend frees
// the backend connection at once, not when the backend finally answers, and that the proxy goes
// on serving others.
#[test]
fn client_disconnect_while_waiting_releases_backend_connection() {
    let (backend, arrived) = slow_backend("slow");
    let proxy = Proxy::start(&[backend.addr], json!({}));

    let mut c = proxy.connect();
    c.send(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n");
    arrived
        .recv_timeout(Duration::from_secs(5))
        .expect("the request reached the backend");
    assert_eq!(active_connections(&proxy, backend.addr), 1);

    // The client gives up and closes its socket while the backend is still working.
    let _ = c.stream().shutdown(Shutdown::Both);
    drop(c);
    let released = wait_until_released(&proxy, backend.addr, Instant::now());
    eprintln!("backend connection released {released:?} after the client closed");
    // The backend answers 5 s after it got the request; releasing only then is too late. 3 s
    // leaves a loaded machine plenty of room and still tells "at once" from "with the answer".
    assert!(
        released < Duration::from_secs(3),
        "the backend connection was released {released:?} after the client closed \
         (the backend answers after {SLOW_BACKEND_DELAY:?})"
    );

    let r = proxy.get("/after");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "answer to /after");
}
