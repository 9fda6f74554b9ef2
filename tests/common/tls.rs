//! TLS helpers for the integration tests (`tests/tls.rs`):
//!
//! - a test CA and server certificates made with rcgen at test time, written as PEM files into a
//!   temporary directory that is removed afterwards (no key is ever committed);
//! - a blocking rustls client ([`TlsClient`]) over a `std::net::TcpStream` with timeouts, with
//!   client configs restricted to chosen TLS versions, verifying against a test CA or accepting
//!   any certificate (to look at which one a server sent);
//! - backends: an HTTPS backend ([`TlsBackend`], a rustls server, thread per connection,
//!   recording requests like [`Backend`](super::Backend)), a plain backend that streams and
//!   verifies a deterministic byte pattern ([`PatternBackend`]), and a WebSocket-style upgrade
//!   backend ([`UpgradeBackend`]);
//! - `ferrule --check` run as a child ([`run_check`]);
//! - the fixtures of `tests/tls.rs`: a [`Pki`] (CA, certificate and files), proxies terminating
//!   TLS in-process and as a child, admin calls, closing a TLS client politely.
//!
//! Temporary directories are `super::TempDir`, heads are read with `wire.rs`'s reader, memory
//! bounds are `memory.rs`'s.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    SerialNumber,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned,
    SupportedProtocolVersion,
};
use serde_json::{json, Value};

use super::{
    is_health_probe, ok_response, path_text, read_response, serve, AcceptLoop, Backend, ChildGuard,
    Client, Head, Proxy, ProxyProcess, Record, Reply, Response, Seen, TempDir, HEALTH_PROBE_ANSWER,
    IO_TIMEOUT, MIB,
};

/// TLS 1.3 only, TLS 1.2 only, and both.
pub const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
pub const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
pub const ANY_VERSION: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The crypto provider of every test config: aws-lc-rs, like ferrule's.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

// ----------------------------------------------------------------------------- certificates

/// A test certificate authority, made with rcgen.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A server certificate issued by a [`TestCa`], with its key.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

/// Where an [`Issued`] certificate and its key were written.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    /// `{"cert_file": …, "key_file": …}`, an `ssl.certificates[]` entry.
    pub fn json(&self) -> Value {
        json!({"cert_file": path_text(&self.cert), "key_file": path_text(&self.key)})
    }

    /// The `ssl` block serving this certificate alone.
    pub fn ssl(&self) -> Value {
        json!({
            "enabled": true,
            "cert_file": path_text(&self.cert),
            "key_file": path_text(&self.key),
        })
    }
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A root store trusting this CA alone.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.der().clone()).expect("CA as a root");
        roots
    }

    /// A server certificate for `names` (DNS names or IP addresses), valid now.
    pub fn issue(&self, names: &[&str]) -> Issued {
        self.issue_with(names, |_| {})
    }

    /// Like [`TestCa::issue`], with `edit` applied to the parameters (validity, serial, …).
    pub fn issue_with(&self, names: &[&str], edit: impl FnOnce(&mut CertificateParams)) -> Issued {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("certificate params");
        params
            .distinguished_name
            .push(DnType::CommonName, "ferrule tls test");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        edit(&mut params);
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign the certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

/// Sets the certificate's serial number.
pub fn serial(n: u64) -> impl FnOnce(&mut CertificateParams) {
    move |p| p.serial_number = Some(SerialNumber::from(n))
}

impl Issued {
    /// Writes `STEM.crt` and `STEM.key` into `dir`.
    pub fn write(&self, dir: &TempDir, stem: &str) -> CertFiles {
        CertFiles {
            cert: dir.write(&format!("{stem}.crt"), &self.cert_pem),
            key: dir.write(&format!("{stem}.key"), &self.key_pem),
        }
    }

    /// A rustls server config presenting this certificate (ALPN `http/1.1`, any TLS version).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("key PEM");
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.der.clone()], key)
            .expect("server config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// The DNS and IP subjectAltNames of a certificate, for messages.
pub fn san_names(der: &[u8]) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("an X.509 certificate");
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => (*d).to_owned(),
            other => format!("{other}"),
        })
        .collect()
}

// ----------------------------------------------------------------------------- the client

/// A client config: ALPN `http/1.1`, only `versions`, trusting `roots`. Each config has its own
/// resumption cache: a second connection with the same config may resume, one with a new config
/// never does.
pub fn client_config(
    roots: RootCertStore,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A client config that accepts any server certificate (the handshake signature is still
/// checked), to see which certificate a server presents for a name it does not carry.
/// `sni`: whether the client sends the server name.
pub fn any_cert_client_config(sni: bool) -> Arc<ClientConfig> {
    // ferrule's own skip-verify configuration (`tls_skip_verify`), with SNI on or off
    let skip = ferrule::tls::client_config(None, true).expect("a skip-verify client config");
    let mut config = ClientConfig::clone(&skip);
    config.enable_sni = sni;
    Arc::new(config)
}

pub type ClientStream = StreamOwned<ClientConnection, TcpStream>;

/// A TCP connection with read and write timeouts of `timeout`, no Nagle.
pub fn tcp_connect(addr: SocketAddr, timeout: Duration) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(timeout)).expect("read timeout");
    s.set_write_timeout(Some(timeout)).expect("write timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// An HTTP/1.1 client over one blocking rustls connection.
pub struct TlsClient {
    pub reader: BufReader<ClientStream>,
}

impl TlsClient {
    /// Connects to `addr` and completes the handshake for server name `name` (a DNS name or an
    /// IP address); panics if it fails.
    pub fn connect(addr: SocketAddr, config: &Arc<ClientConfig>, name: &str) -> TlsClient {
        TlsClient::try_connect(addr, config, name)
            .unwrap_or_else(|e| panic!("TLS handshake with {addr} as {name:?}: {e}"))
    }

    /// Like [`TlsClient::connect`], on a socket made by the caller (socket options set).
    pub fn over(sock: TcpStream, config: &Arc<ClientConfig>, name: &str) -> io::Result<TlsClient> {
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let conn = ClientConnection::new(Arc::clone(config), server_name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut stream = StreamOwned::new(conn, sock);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(TlsClient {
            reader: BufReader::with_capacity(64 * 1024, stream),
        })
    }

    pub fn try_connect(
        addr: SocketAddr,
        config: &Arc<ClientConfig>,
        name: &str,
    ) -> io::Result<TlsClient> {
        TlsClient::over(tcp_connect(addr, IO_TIMEOUT), config, name)
    }

    pub fn conn(&self) -> &ClientConnection {
        &self.reader.get_ref().conn
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.reader.get_ref().sock
    }

    /// The leaf certificate the server presented.
    pub fn peer_cert(&self) -> CertificateDer<'static> {
        self.conn()
            .peer_certificates()
            .and_then(|c| c.first())
            .expect("the server presented a certificate")
            .clone()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        let s = self.reader.get_mut();
        s.write_all(bytes).expect("send over TLS");
        s.flush().expect("flush over TLS");
    }

    pub fn try_response(&mut self) -> io::Result<Response> {
        read_response(&mut self.reader, false)
    }

    pub fn response(&mut self) -> Response {
        self.try_response().expect("a response over TLS")
    }

    /// `GET path` (keep-alive) and its response.
    pub fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
        self.response()
    }

    /// True when the server ended the connection (close_notify, EOF or reset) within the read
    /// timeout.
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.reader.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
        }
    }
}

// ----------------------------------------------------------------------------- requests

/// Reads one request (head, and a Content-Length body) from any stream.
fn read_seen<R: BufRead>(r: &mut R, conn: usize) -> io::Result<Seen> {
    let mut seen = Seen::new(Head::read(r)?, conn);
    if let Some(n) = seen.header("content-length") {
        let n: usize = n.parse().map_err(|_| io::ErrorKind::InvalidData)?;
        seen.body.resize(n, 0);
        r.read_exact(&mut seen.body)?;
        seen.raw_body = seen.body.clone();
    }
    Ok(seen)
}

// ----------------------------------------------------------------------------- HTTPS backend

/// An HTTPS backend on 127.0.0.1:0: a rustls server (any TLS version, ALPN `http/1.1`), thread
/// per connection, keep-alive. It answers every request `200` with `X-Backend: tls` and body
/// `tls backend saw TARGET`, and records it in `record` like [`Backend`](super::Backend) does
/// (health probes answered and left out). `accepted` counts TCP connections, `handshakes` the
/// TLS handshakes that completed.
pub struct TlsBackend {
    pub addr: SocketAddr,
    pub record: Arc<Record>,
    pub accepted: Arc<AtomicUsize>,
    pub handshakes: Arc<AtomicUsize>,
    /// Serves until the backend is dropped.
    _accepting: AcceptLoop,
}

impl TlsBackend {
    pub fn start(config: Arc<ServerConfig>) -> TlsBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the TLS backend");
        let record = Arc::new(Record::default());
        let accepted = Arc::new(AtomicUsize::new(0));
        let handshakes = Arc::new(AtomicUsize::new(0));
        let (rec, acc, shakes) = (
            Arc::clone(&record),
            Arc::clone(&accepted),
            Arc::clone(&handshakes),
        );
        let accepting = serve(listener, move |stream| {
            acc.fetch_add(1, Ordering::SeqCst);
            let _ = serve_tls(stream, Arc::clone(&config), &rec, &shakes);
        });
        TlsBackend {
            addr: accepting.addr,
            record,
            accepted,
            handshakes,
            _accepting: accepting,
        }
    }

    /// TCP connections accepted.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// TLS handshakes completed.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }

    /// `https://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

fn serve_tls(
    sock: TcpStream,
    config: Arc<ServerConfig>,
    record: &Record,
    handshakes: &AtomicUsize,
) -> io::Result<()> {
    sock.set_read_timeout(Some(Duration::from_secs(60)))?;
    sock.set_write_timeout(Some(Duration::from_secs(30)))?;
    sock.set_nodelay(true)?;
    let conn = ServerConnection::new(config).map_err(io::Error::other)?;
    let mut stream = StreamOwned::new(conn, sock);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    handshakes.fetch_add(1, Ordering::SeqCst);
    let mut r = BufReader::new(stream);
    let mut conn: Option<usize> = None;
    loop {
        let mut seen = read_seen(&mut r, usize::MAX)?;
        if is_health_probe(&seen.headers) {
            record.health_probes.fetch_add(1, Ordering::SeqCst);
            r.get_mut().write_all(HEALTH_PROBE_ANSWER)?;
            r.get_mut().flush()?;
            continue;
        }
        seen.conn = *conn.get_or_insert_with(|| record.connections.fetch_add(1, Ordering::SeqCst));
        let body = format!("tls backend saw {}", seen.target);
        if let Ok(mut list) = record.requests.lock() {
            list.push(seen);
        }
        let answer = format!(
            "HTTP/1.1 200 OK\r\nX-Backend: tls\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        r.get_mut().write_all(answer.as_bytes())?;
        r.get_mut().flush()?;
    }
}

// ----------------------------------------------------------------------------- the pattern

/// Bodies are written in blocks of this size.
pub const BLOCK: usize = 64 * 1024;

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `out` with the pattern's bytes from `offset` on. The 8-byte word at `8 * i` is
/// `splitmix64(i)`: every word differs from every other, so a lost, inserted, duplicated or
/// reordered byte or block shows as a mismatch at (or right after) the place it happened.
pub fn pattern_fill(offset: u64, out: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < out.len() {
        let word = splitmix64(pos / 8).to_le_bytes();
        let start = (pos % 8) as usize;
        let n = (8 - start).min(out.len() - i);
        out[i..i + n].copy_from_slice(&word[start..start + n]);
        i += n;
        pos += n as u64;
    }
}

/// Writes the first `len` bytes of the pattern to `w`, one [`BLOCK`] per `write_all`;
/// `on_block` runs after each block was accepted, with its length.
pub fn write_pattern<W: Write>(
    w: &mut W,
    len: u64,
    mut on_block: impl FnMut(u64),
) -> io::Result<()> {
    let mut block = vec![0u8; BLOCK];
    let mut sent = 0u64;
    while sent < len {
        let n = (len - sent).min(BLOCK as u64) as usize;
        pattern_fill(sent, &mut block[..n]);
        w.write_all(&block[..n])?;
        sent += n as u64;
        on_block(n as u64);
    }
    Ok(())
}

/// Checks bytes against the pattern as they arrive, in pieces of any size, holding no more than
/// the piece.
#[derive(Default)]
pub struct PatternCheck {
    /// Bytes checked so far.
    pub offset: u64,
    expected: Vec<u8>,
}

impl PatternCheck {
    pub fn new() -> PatternCheck {
        PatternCheck::default()
    }

    pub fn feed(&mut self, data: &[u8]) -> Result<(), String> {
        self.expected.resize(data.len(), 0);
        pattern_fill(self.offset, &mut self.expected);
        if let Some(at) = data.iter().zip(&self.expected).position(|(a, b)| a != b) {
            return Err(format!(
                "body byte {} is {:#04x}, expected {:#04x}",
                self.offset + at as u64,
                data[at],
                self.expected[at]
            ));
        }
        self.offset += data.len() as u64;
        Ok(())
    }

    /// Reads exactly `len` more bytes from `r` (in reads of up to 256 KiB), checking them.
    pub fn read_from<R: Read>(&mut self, r: &mut R, len: u64) -> Result<(), String> {
        let mut buf = vec![0u8; 256 * 1024];
        self.read_in_pieces(r, len, &mut buf, |_| {})
    }

    /// Reads exactly `len` more bytes from `r` in reads of at most `buf.len()` bytes, checking
    /// them; `after_read` runs after every read with the bytes checked so far.
    pub fn read_in_pieces<R: Read>(
        &mut self,
        r: &mut R,
        len: u64,
        buf: &mut [u8],
        mut after_read: impl FnMut(u64),
    ) -> Result<(), String> {
        let end = self.offset + len;
        while self.offset < end {
            let want = buf
                .len()
                .min(usize::try_from(end - self.offset).unwrap_or(usize::MAX));
            let n = match r.read(&mut buf[..want]) {
                Ok(0) => return Err(format!("the stream ended after {} bytes", self.offset)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("reading after {} bytes: {e}", self.offset)),
            };
            self.feed(&buf[..n])?;
            after_read(self.offset);
        }
        Ok(())
    }
}

// ----------------------------------------------------------------------------- pattern backend

/// A plain HTTP/1.1 backend, thread per connection, keep-alive:
/// - `GET /big/N`: `200`, `Content-Length: N`, N bytes of the pattern in [`BLOCK`] writes;
///   `written` counts the bytes the kernel has taken;
/// - `POST /up` with `Content-Length`: checks the body against the pattern as it arrives and
///   answers `200` `bytes=N`, or `422` saying what was wrong;
/// - anything else: `200` `ok`.
pub struct PatternBackend {
    pub addr: SocketAddr,
    pub written: Arc<AtomicU64>,
    /// Serves until the backend is dropped.
    _accepting: AcceptLoop,
}

impl PatternBackend {
    pub fn start() -> PatternBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the pattern backend");
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

    pub fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }
}

fn answer(w: &mut TcpStream, status: &str, body: &str) -> io::Result<()> {
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
        let head = Seen::new(Head::read(&mut r)?, 0);
        if is_health_probe(&head.headers) {
            w.write_all(HEALTH_PROBE_ANSWER)?;
        } else if let Some(n) = head.target.strip_prefix("/big/") {
            let len: u64 = n.parse().map_err(|_| io::ErrorKind::InvalidInput)?;
            w.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").as_bytes())?;
            write_pattern(&mut w, len, |n| {
                written.fetch_add(n, Ordering::SeqCst);
            })?;
        } else if head.method == "POST" && head.target == "/up" {
            let len: Option<u64> = head.header("content-length").and_then(|v| v.parse().ok());
            let mut check = PatternCheck::new();
            let verdict = match len {
                Some(len) => check.read_from(&mut r, len).map(|()| len),
                None => Err("no Content-Length".to_owned()),
            };
            match verdict {
                Ok(len) => answer(&mut w, "200 OK", &format!("bytes={len}"))?,
                Err(e) => {
                    answer(&mut w, "422 Unprocessable Content", &e)?;
                    return Ok(());
                }
            }
        } else {
            answer(&mut w, "200 OK", "ok")?;
        }
    }
}

// ----------------------------------------------------------------------------- upgrade backend

/// What the [`UpgradeBackend`] sends first once it switched protocols.
pub const UPGRADE_GREETING: &[u8] = b"hello from the backend\n";

/// A plain backend that answers a request with `101 Switching Protocols` (`Upgrade:
/// websocket`), sends [`UPGRADE_GREETING`], then echoes every byte back. The request heads it
/// upgraded come out of `heads`.
pub struct UpgradeBackend {
    pub addr: SocketAddr,
    pub heads: mpsc::Receiver<String>,
    /// Serves until the backend is dropped.
    _accepting: AcceptLoop,
}

impl UpgradeBackend {
    pub fn start() -> UpgradeBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the upgrade backend");
        let (tx, heads) = mpsc::channel();
        let accepting = serve(listener, move |stream| {
            let _ = upgrade_conn(stream, &tx);
        });
        UpgradeBackend {
            addr: accepting.addr,
            heads,
            _accepting: accepting,
        }
    }
}

fn upgrade_conn(stream: TcpStream, heads: &mpsc::Sender<String>) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    let head = loop {
        let head = Seen::new(Head::read(&mut r)?, 0);
        if !is_health_probe(&head.headers) {
            break head;
        }
        w.write_all(HEALTH_PROBE_ANSWER)?;
    };
    let _ = heads.send(head.head);
    w.write_all(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    )?;
    w.write_all(UPGRADE_GREETING)?;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            let _ = w.shutdown(Shutdown::Write);
            return Ok(());
        }
        let n = buf.len();
        w.write_all(buf)?;
        r.consume(n);
    }
}

// ----------------------------------------------------------------------------- ferrule --check

/// What `ferrule --check CONFIG` did.
#[derive(Debug)]
pub struct CheckOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Writes `config` to `dir/NAME.json` and runs `ferrule --check` on it (killed if it has not
/// exited within 10 s).
pub fn run_check(dir: &TempDir, name: &str, config: &Value) -> CheckOutput {
    let path = dir.write(&format!("{name}.json"), config.to_string());
    let child = Command::new(env!("CARGO_BIN_EXE_ferrule"))
        .arg("--check")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ferrule --check");
    let mut child = ChildGuard(child);
    let mut out = child.0.stdout.take().expect("stdout");
    let mut err = child.0.stderr.take().expect("stderr");
    let out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = child.wait_for(Duration::from_secs(10)).unwrap_or_else(|| {
        panic!(
            "ferrule --check {} did not exit within 10 s",
            path.display()
        )
    });
    CheckOutput {
        code: status.code(),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

// ----------------------------------------------------------------------------- fixtures

/// A test CA and a server certificate for `localhost` and `127.0.0.1`, written into a
/// temporary directory.
pub struct Pki {
    /// Holds the files; removed when dropped.
    _dir: TempDir,
    pub ca: TestCa,
    pub leaf: Issued,
    pub files: CertFiles,
}

pub fn pki(name: &str) -> Pki {
    let dir = TempDir::new(name);
    let ca = TestCa::new("ferrule test CA");
    let leaf = ca.issue(&["localhost", "127.0.0.1"]);
    let files = leaf.write(&dir, "server");
    Pki {
        _dir: dir,
        ca,
        leaf,
        files,
    }
}

impl Pki {
    /// A new client config trusting the test CA (its own resumption cache).
    pub fn client(&self, versions: &[&'static SupportedProtocolVersion]) -> Arc<ClientConfig> {
        client_config(self.ca.roots(), versions)
    }

    /// A fresh client connection to `addr` as `localhost` (never resumed).
    pub fn connect(&self, addr: SocketAddr) -> TlsClient {
        TlsClient::connect(addr, &self.client(ANY_VERSION), "localhost")
    }
}

/// `base` with the keys of `extra` set.
pub fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(map), Value::Object(more)) = (base.as_object_mut(), extra) {
        map.extend(more);
    }
    base
}

/// An in-process proxy (2 workers) with `ssl` as its `ssl` block, in front of `backends`.
pub fn tls_proxy(backends: &[SocketAddr], ssl: Value, extra: Value) -> Proxy {
    Proxy::start(backends, merged(json!({ "ssl": ssl }), extra))
}

/// The `ferrule` binary, one worker, terminating TLS in front of plain `backend`.
pub fn tls_proxy_process(backend: SocketAddr, files: &CertFiles, name: &str) -> ProxyProcess {
    ProxyProcess::start(
        json!({
            "workers": 1,
            "backends": [{"url": format!("http://{backend}")}],
            "ssl": files.ssl(),
        }),
        name,
    )
}

/// A backend answering `answer to TARGET`, or echoing the body for `/echo…`.
pub fn target_backend() -> Backend {
    Backend::with_handler("target", |req, _| {
        let body = if req.target.starts_with("/echo") {
            req.body.clone()
        } else {
            format!("answer to {}", req.target).into_bytes()
        };
        Reply::Bytes(ok_response("target", &body))
    })
}

/// `POST path` on the admin API: the status and the JSON answer.
pub fn admin_post(admin: SocketAddr, path: &str) -> (u16, Value) {
    let mut c = Client::connect(admin);
    c.send(
        format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    let r = c.response();
    let body = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("admin POST {path}: not JSON ({e}): {}", r.text()));
    (r.status, body)
}

/// `tls_handshakes` and `tls_handshake_failures` from `/stats`.
pub fn tls_counters(proxy: &Proxy) -> (u64, u64) {
    let stats = proxy.admin_get("/stats");
    let get = |k: &str| {
        stats[k]
            .as_u64()
            .unwrap_or_else(|| panic!("no {k} in {stats}"))
    };
    (get("tls_handshakes"), get("tls_handshake_failures"))
}

/// Reads from `s` until the peer ends the connection (EOF or reset), ignoring what comes (a TLS
/// alert, say); returns the bytes seen. Panics if it is still open after `limit`.
pub fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Vec<u8> {
    s.set_read_timeout(Some(limit)).expect("read timeout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return seen,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the connection is still open after {limit:?} (got {seen:?})")
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return seen, // reset: closed too
        }
    }
}

pub fn report_rate(what: &str, bytes: u64, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{what}: {bytes} bytes in {secs:.2} s ({:.0} MiB/s)",
        bytes as f64 / MIB as f64 / secs
    );
}

/// A client upgraded to a tunnel through a TLS proxy in front of an [`UpgradeBackend`], the
/// backend's greeting read.
pub fn tls_tunnel(pki: &Pki, proxy: &Proxy) -> TlsClient {
    let mut c = pki.connect(proxy.addr());
    c.send(
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    );
    assert_eq!(c.response().status, 101);
    let mut greeting = vec![0u8; UPGRADE_GREETING.len()];
    c.reader.read_exact(&mut greeting).expect("greeting");
    c
}

/// Sends a TLS `close_notify` alert on `c`, then (if `fin`) a TCP FIN right after it: the way
/// TLS clients close (rustls, OpenSSL's `SSL_shutdown` then `close`, browsers).
pub fn close_politely(c: &mut TlsClient, fin: bool) {
    let s = c.reader.get_mut();
    s.conn.send_close_notify();
    s.flush().expect("send close_notify");
    if fin {
        c.tcp()
            .shutdown(std::net::Shutdown::Write)
            .expect("half-close");
    }
}

/// Polls `/stats` (nothing else signals it) until `open_connections` is `want`; false if it is
/// not within `limit`.
pub fn open_connections_become(proxy: &Proxy, want: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if proxy.admin_get("/stats")["open_connections"] == want {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A config serving `cert` and `key` (JSON paths), ports 0.
pub fn ssl_config(cert: &Path, key: &Path) -> Value {
    json!({
        "port": 0,
        "admin_port": 0,
        "bind": "127.0.0.1",
        "workers": 1,
        "backends": [{"url": "http://127.0.0.1:1"}],
        "ssl": {"enabled": true, "cert_file": path_text(cert), "key_file": path_text(key)},
    })
}

/// `ferrule::start` on `config`: the error it fails with.
pub fn start_error(config: &ferrule::Config) -> String {
    match ferrule::start(config) {
        Ok(_) => panic!("ferrule::start accepted the configuration"),
        Err(e) => e.to_string(),
    }
}

/// A proxy (plain HTTP to clients, one worker) in front of one `https://` backend described by
/// `backend` (url and TLS keys), with `extra` merged.
pub fn proxy_to(backend: Value, extra: Value) -> Proxy {
    let config = merged(
        json!({
            "port": 0,
            "admin_port": 0,
            "bind": "127.0.0.1",
            "workers": 1,
            "backends": [backend],
        }),
        extra,
    );
    Proxy::from_json(&config.to_string())
}
