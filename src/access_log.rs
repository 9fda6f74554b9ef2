//! The access log: the record a worker fills for each request ([`Entry`]), the two line formats
//! (`combined` and `json`, with their escaping), and the writer thread.
//!
//! A worker never waits on output and never allocates for a record in steady state: it takes an
//! [`Entry`] from a free list (entries come back from the writer once written), copies the raw
//! request fields into it (method, target, `Host`, `Referer`, `User-Agent`, request id, SNI),
//! fills in the numbers as the exchange runs, and hands it to the writer through a bounded
//! channel with `try_send`. When the channel is full the line is dropped and counted
//! ([`AccessLog::dropped`], in `/stats` and `/metrics`). All formatting and escaping happen on the
//! writer thread, which batches lines into one `write` while more are queued.
//!
//! Client-controlled text is escaped so that a line can never be split or forged: in `combined`
//! every `"`, `\`, control byte and non-ASCII byte becomes `\xHH` (as nginx does), so the line is
//! plain ASCII; in `json` strings get JSON's escapes (`\"`, `\\`, `\u00HH` for control
//! characters), valid UTF-8 stays as it is and bytes that are not UTF-8 become U+FFFD.
//!
//! The file is opened for appending; [`AccessLog::reopen`] (on `SIGUSR1` and `POST
//! /reopen-logs`) opens it again by name, for logrotate. A failing write is reported once, its
//! lines counted as dropped, and the file reopened and tried again at most once a second until it
//! works; it is never fatal. A reload changes the target and format in place
//! ([`AccessLog::configure`]).

use std::fs::File;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::config::{AccessLogFormat, AccessLogTarget};
use crate::http::date::Civil;

/// Lines waiting for the writer before new ones are dropped.
const QUEUE: usize = 8192;
/// Written entries kept for the workers to reuse (beyond this they are freed).
const FREE: usize = 4096;
/// A field longer than this is cut (a request target is already limited by `max_uri_length`).
const FIELD_MAX: usize = 4096;
/// The writer writes once this much is batched, or when nothing more is queued.
const BATCH: usize = 64 * 1024;
/// While lines come, the writer takes them this often (see `Writer::run`).
const TICK: Duration = Duration::from_millis(10);
/// Ticks without a line after which the writer blocks until the next one.
const IDLE_TICKS: u32 = 10;
/// A failing file is reopened and tried again at most this often.
const RETRY: Duration = Duration::from_secs(1);

/// The text fields of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    Method,
    Target,
    Host,
    Referer,
    UserAgent,
    RequestId,
    Sni,
    /// The name of the pool the request was routed to.
    Pool,
}

const TEXTS: usize = 8;

/// What a line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A request (or a request head that was refused).
    Request,
    /// A client's TLS handshake failed or timed out: the connection closed without a request.
    TlsHandshakeFailed,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Event::Request => "request",
            Event::TlsHandshakeFailed => "tls_handshake_failed",
        }
    }
}

/// One line's worth of facts, filled by a worker. Reused: [`Entry::reset`] keeps the text
/// buffer's memory.
#[derive(Debug, Clone)]
pub struct Entry {
    text: Vec<u8>,
    /// `(start, end)` in `text` of each [`Text`] field; `(0, 0)`: absent.
    spans: [(u32, u32); TEXTS],
    pub event: Event,
    pub peer: IpAddr,
    pub http10: bool,
    /// The request came over HTTP/2 (then `http10` is false).
    pub http2: bool,
    /// The status sent to the client (0: none was).
    pub status: u16,
    /// When the request head was complete (or the event happened).
    pub started: Instant,
    /// When the exchange ended.
    pub ended: Instant,
    /// When the request went to the backend of the last attempt, and when its whole response
    /// was in (`None`: no backend was reached, or it never finished).
    pub upstream_started: Option<Instant>,
    pub upstream_ended: Option<Instant>,
    pub backend: Option<SocketAddr>,
    /// Bytes read from and written to the client for this exchange (TLS: plaintext).
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Of `bytes_out`, the response head's bytes (the rest is the body).
    pub head_out: u64,
    /// The client connection's TLS version (`TLSv1.3`), when TLS.
    pub tls: Option<&'static str>,
    /// The connection closed before the exchange finished, and why.
    pub close: Option<crate::stats::CloseReason>,
}

impl Entry {
    pub fn new(now: Instant) -> Entry {
        Entry {
            text: Vec::with_capacity(256),
            spans: [(0, 0); TEXTS],
            event: Event::Request,
            peer: IpAddr::from([0, 0, 0, 0]),
            http10: false,
            http2: false,
            status: 0,
            started: now,
            ended: now,
            upstream_started: None,
            upstream_ended: None,
            backend: None,
            bytes_in: 0,
            bytes_out: 0,
            head_out: 0,
            tls: None,
            close: None,
        }
    }

    /// Forgets everything but the text buffer's memory.
    pub fn reset(&mut self, peer: IpAddr, now: Instant) {
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        *self = Entry {
            text,
            peer,
            ..Entry::new(now)
        };
    }

    /// Sets a text field (at most `FIELD_MAX` bytes of it). Each field is set at most once.
    pub fn set(&mut self, field: Text, value: &[u8]) {
        let value = value.get(..FIELD_MAX).unwrap_or(value);
        let start = self.text.len();
        self.text.extend_from_slice(value);
        if let (Ok(s), Ok(e)) = (u32::try_from(start), u32::try_from(self.text.len())) {
            self.spans[field as usize] = (s, e);
        }
    }

    /// A text field, `None` when it was not set.
    pub fn get(&self, field: Text) -> Option<&[u8]> {
        let (s, e) = self.spans[field as usize];
        (e > s)
            .then(|| self.text.get(s as usize..e as usize))
            .flatten()
    }
}

/// Messages to the writer thread.
enum Msg {
    Line(Box<Entry>),
    Configure(Output, AccessLogFormat),
    Reopen(Sender<Result<(), String>>),
    Flush(Sender<()>),
    Stop,
}

/// The access log of one proxy: what workers use to log, and the writer thread behind it.
pub struct AccessLog {
    enabled: AtomicBool,
    tx: Sender<Msg>,
    free: Receiver<Box<Entry>>,
    free_tx: Sender<Box<Entry>>,
    dropped: Arc<AtomicU64>,
    thread: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

impl AccessLog {
    /// Opens `target` and starts the writer thread.
    pub fn start(target: &AccessLogTarget, format: AccessLogFormat) -> io::Result<Arc<AccessLog>> {
        let output = Output::open(target)?;
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let (free_tx, free) = crossbeam_channel::bounded(FREE);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut writer = Writer {
            output,
            format,
            free: free_tx.clone(),
            dropped: Arc::clone(&dropped),
            failing: None,
            clock: Clock::new(),
            stamp: Stamp::new(),
            batch: Vec::with_capacity(BATCH + 4096),
            tail: Tail::default(),
        };
        let thread = std::thread::Builder::new()
            .name("ferrule-access".into())
            .spawn(move || writer.run(&rx))?;
        Ok(Arc::new(AccessLog {
            enabled: AtomicBool::new(*target != AccessLogTarget::Off),
            tx,
            free,
            free_tx,
            dropped,
            thread: parking_lot::Mutex::new(Some(thread)),
        }))
    }

    /// Whether requests are logged at all.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// An entry to fill for a request of `peer`, or `None` when the log is off. Reuses a written
    /// entry when one is free, so steady traffic allocates nothing.
    pub fn entry(&self, peer: IpAddr, now: Instant) -> Option<Box<Entry>> {
        if !self.enabled() {
            return None;
        }
        Some(match self.free.try_recv() {
            Ok(mut e) => {
                e.reset(peer, now);
                e
            }
            Err(_) => {
                let mut e = Box::new(Entry::new(now));
                e.peer = peer;
                e
            }
        })
    }

    /// Hands a filled entry to the writer; never blocks. A full queue drops (and counts) it.
    pub fn submit(&self, entry: Box<Entry>) {
        match self.tx.try_send(Msg::Line(entry)) {
            Ok(()) => {}
            Err(TrySendError::Full(Msg::Line(e)) | TrySendError::Disconnected(Msg::Line(e))) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                let _ = self.free_tx.try_send(e);
            }
            Err(_) => {}
        }
    }

    /// Lines not written since start: the queue was full, or the output failed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Switches to `target` and `format` (a reload). The new file is opened here, so an error
    /// leaves the old output in place.
    pub fn configure(&self, target: &AccessLogTarget, format: AccessLogFormat) -> io::Result<()> {
        let output = Output::open(target)?;
        self.enabled
            .store(*target != AccessLogTarget::Off, Ordering::Relaxed);
        self.tx
            .send_timeout(Msg::Configure(output, format), Duration::from_secs(5))
            .map_err(|_| io::Error::other("the access log writer does not answer"))
    }

    /// Opens the file again by its name (after logrotate moved it). Waits for the writer's
    /// answer (what is queued before is written to the old file).
    pub fn reopen(&self) -> Result<(), String> {
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        self.tx
            .send_timeout(Msg::Reopen(done_tx), Duration::from_secs(5))
            .map_err(|_| "the access log writer does not answer".to_string())?;
        done_rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| "the access log writer does not answer".to_string())?
    }

    /// Waits (at most about a second) until everything queued so far is written.
    pub fn flush(&self) {
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        if self
            .tx
            .send_timeout(Msg::Flush(done_tx), Duration::from_secs(1))
            .is_ok()
        {
            let _ = done_rx.recv_timeout(Duration::from_secs(1));
        }
    }

    /// Writes what is queued and stops the writer thread (the proxy stops).
    pub fn stop(&self) {
        let _ = self.tx.send_timeout(Msg::Stop, Duration::from_secs(1));
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

/// Where lines go.
enum Output {
    Off,
    Stdout,
    Stderr,
    File {
        path: String,
        file: Option<File>,
    },
    /// Unit tests: a writer that fails on demand.
    #[cfg(test)]
    Test(Box<dyn Write + Send>),
}

impl Output {
    fn open(target: &AccessLogTarget) -> io::Result<Output> {
        Ok(match target {
            AccessLogTarget::Off => Output::Off,
            AccessLogTarget::Stdout => Output::Stdout,
            AccessLogTarget::Stderr => Output::Stderr,
            AccessLogTarget::File(path) => Output::File {
                file: Some(open_file(path)?),
                path: path.clone(),
            },
        })
    }

    fn name(&self) -> &str {
        match self {
            Output::Off => "off",
            #[cfg(test)]
            Output::Test(_) => "test",
            Output::Stdout => "stdout",
            Output::Stderr => "stderr",
            Output::File { path, .. } => path,
        }
    }

    /// Writes whole lines; `tail` remembers a line a failed write left half written.
    fn write_all(&mut self, bytes: &[u8], tail: &mut Tail) -> io::Result<()> {
        match self {
            Output::Off => Ok(()),
            #[cfg(test)]
            Output::Test(w) => tail.write(w, bytes),
            Output::Stdout => tail.write(&mut io::stdout().lock(), bytes),
            Output::Stderr => tail.write(&mut io::stderr().lock(), bytes),
            Output::File { file: Some(f), .. } => tail.write(f, bytes),
            Output::File { path, file: None } => {
                let mut f = open_file(path)?;
                tail.reopened(&f);
                let written = tail.write(&mut f, bytes);
                *self = Output::File {
                    path: std::mem::take(path),
                    file: Some(f),
                };
                written
            }
        }
    }

    fn reopen(&mut self, tail: &mut Tail) -> io::Result<()> {
        if let Output::File { path, file } = self {
            let f = open_file(path)?;
            tail.reopened(&f);
            *file = Some(f);
        }
        Ok(())
    }
}

/// Where the output stands after the last write: at the start of a line, or in the middle of
/// one that a failed write (a full disk, say) left half written. The next batch then starts
/// with a line end of its own, so that its first line is never glued to the broken one; the
/// broken line stays as it is (its entry counted as dropped with its batch).
#[derive(Debug, Default)]
struct Tail {
    mid_line: bool,
}

impl Tail {
    /// Writes `bytes` (whole lines) to `out`, after a line end when the last write broke off
    /// mid-line. On an error, remembers whether what did get written ends mid-line.
    fn write(&mut self, out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
        if self.mid_line {
            // bounded: one byte; Interrupted retries as write_all does
            out.write_all(b"\n")?;
            self.mid_line = false;
        }
        let mut done = 0;
        // bounded: each round writes at least one byte or ends (Interrupted: a signal; retried)
        while let Some(rest) = bytes.get(done..).filter(|r| !r.is_empty()) {
            match out.write(rest) {
                Ok(0) => return Err(self.broke(bytes, done, io::ErrorKind::WriteZero.into())),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.broke(bytes, done, e)),
            }
        }
        out.flush()
    }

    /// A write of `bytes` failed after `done` of them: is the output now mid-line?
    fn broke(&mut self, bytes: &[u8], done: usize, error: io::Error) -> io::Error {
        self.mid_line = done > 0 && bytes.get(done - 1) != Some(&b'\n');
        error
    }

    /// The file was opened again by name: a new, empty file (rotated meanwhile) starts clean.
    fn reopened(&mut self, file: &File) {
        if file.metadata().is_ok_and(|m| m.len() == 0) {
            self.mid_line = false;
        }
    }
}

/// Opens an access log file for appending, creating it (mode 0640 less the umask) if needed: as
/// the config's check that it opens does (the one definition is the config's).
pub use crate::config::open_access_log as open_file;

/// The writer thread's state.
struct Writer {
    output: Output,
    format: AccessLogFormat,
    free: Sender<Box<Entry>>,
    dropped: Arc<AtomicU64>,
    /// The output fails (reported once): when it was last tried.
    failing: Option<Instant>,
    clock: Clock,
    stamp: Stamp,
    batch: Vec<u8>,
    tail: Tail,
}

impl Writer {
    /// Idle, the writer blocks in `recv` (one wake-up when traffic starts); busy, it takes what
    /// is queued every `TICK` and never waits in `recv`, so a worker's `try_send` never has a
    /// sleeping thread to wake: no system call per line on the worker.
    fn run(&mut self, rx: &Receiver<Msg>) {
        let mut lines = 0u64;
        'idle: loop {
            let Ok(first) = rx.recv() else {
                break;
            };
            let mut msg = Some(first);
            let mut quiet = 0;
            loop {
                let mut got = 0;
                // bounded: at most a queue's worth per tick
                while let Some(m) = msg.take().or_else(|| rx.try_recv().ok()) {
                    got += 1;
                    if !self.handle(m, &mut lines) {
                        return;
                    }
                    if got >= QUEUE {
                        break;
                    }
                }
                self.write_batch(&mut lines);
                if got == 0 {
                    quiet += 1;
                    if quiet >= IDLE_TICKS {
                        continue 'idle;
                    }
                } else {
                    quiet = 0;
                }
                std::thread::sleep(TICK);
            }
        }
        self.write_batch(&mut lines);
    }

    /// One message; false when it says stop (everything before is written).
    fn handle(&mut self, msg: Msg, lines: &mut u64) -> bool {
        match msg {
            Msg::Line(entry) => {
                self.format_line(&entry);
                *lines += 1;
                let _ = self.free.try_send(entry);
                if self.batch.len() >= BATCH {
                    self.write_batch(lines);
                }
            }
            Msg::Configure(output, format) => {
                self.write_batch(lines);
                if output.name() != self.output.name() {
                    // a broken line in the old target is no concern of the new one
                    self.tail = Tail::default();
                }
                self.output = output;
                self.format = format;
                self.failing = None;
            }
            Msg::Reopen(done) => {
                self.write_batch(lines);
                let result = self
                    .output
                    .reopen(&mut self.tail)
                    .map_err(|e| format!("cannot reopen access log {}: {e}", self.output.name()));
                if result.is_ok() {
                    self.failing = None;
                }
                let _ = done.send(result);
            }
            Msg::Flush(done) => {
                self.write_batch(lines);
                let _ = done.send(());
            }
            Msg::Stop => {
                self.write_batch(lines);
                return false;
            }
        }
        true
    }

    fn format_line(&mut self, e: &Entry) {
        self.stamp.set(self.clock.wall(e.ended));
        match self.format {
            AccessLogFormat::Combined => combined(e, &self.stamp, &mut self.batch),
            AccessLogFormat::Json => json(e, &self.stamp, &mut self.batch),
        }
    }

    /// Writes the batch of `lines` lines; on failure counts them as dropped, reports the first
    /// failure of an episode, and lets go of the file so that a later batch opens it again (at
    /// most once per `RETRY`; batches meanwhile are dropped and counted).
    fn write_batch(&mut self, lines: &mut u64) {
        if self.batch.is_empty() {
            return;
        }
        let now = Instant::now();
        let wait = self
            .failing
            .is_some_and(|last| now.duration_since(last) < RETRY);
        let result = if wait {
            Err(None)
        } else {
            self.output
                .write_all(&self.batch, &mut self.tail)
                .map_err(Some)
        };
        match result {
            Ok(()) => {
                if self.failing.take().is_some() {
                    log::info!("access log {} is written again", self.output.name());
                }
            }
            Err(error) => {
                self.dropped.fetch_add(*lines, Ordering::Relaxed);
                if let Some(e) = error {
                    if self.failing.is_none() {
                        log::warn!(
                            "cannot write access log {}: {e}; its lines are dropped and counted until it can be written again",
                            self.output.name()
                        );
                    }
                    self.failing = Some(now);
                    if let Output::File { file, .. } = &mut self.output {
                        *file = None;
                    }
                }
            }
        }
        self.batch.clear();
        *lines = 0;
    }
}

/// Turns the workers' monotonic instants into wall-clock time (one reading, taken at start).
struct Clock {
    instant: Instant,
    system: SystemTime,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            instant: Instant::now(),
            system: SystemTime::now(),
        }
    }

    /// Milliseconds since the Unix epoch at `at`.
    fn wall(&self, at: Instant) -> u64 {
        let base = self
            .system
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        match at.checked_duration_since(self.instant) {
            Some(d) => base.saturating_add(d.as_millis() as u64),
            None => base.saturating_sub(self.instant.duration_since(at).as_millis() as u64),
        }
    }
}

// ------------------------------------------------------------------------------ formats

/// `remote - - [time] "request" status body_bytes "referer" "user_agent" backend upstream_time
/// total_time "request_id"`: nginx's combined, then the backend address (`-`: none), the
/// upstream response time and the total time in seconds, and the request id; then `pool=NAME`
/// (the pool the request was routed to; absent when none was), the event when not a request,
/// and `close=REASON`.
pub fn combined(e: &Entry, at: &Stamp, out: &mut Vec<u8>) {
    put_ip(e.peer, out);
    out.extend_from_slice(b" - - [");
    out.extend_from_slice(&at.clf);
    out.extend_from_slice(b"] \"");
    match (e.event, e.get(Text::Method)) {
        (Event::TlsHandshakeFailed, _) | (Event::Request, None) => out.extend_from_slice(b"-"),
        (Event::Request, Some(method)) => {
            escape_clf(method, out);
            out.push(b' ');
            escape_clf(e.get(Text::Target).unwrap_or(b"-"), out);
            out.extend_from_slice(protocol(e).1);
        }
    }
    out.extend_from_slice(b"\" ");
    put_status(e.status, out);
    out.push(b' ');
    put_num(e.bytes_out.saturating_sub(e.head_out), out);
    out.extend_from_slice(b" \"");
    quoted_or_dash(e.get(Text::Referer), out);
    out.extend_from_slice(b"\" \"");
    quoted_or_dash(e.get(Text::UserAgent), out);
    out.extend_from_slice(b"\" ");
    match e.backend {
        Some(addr) => {
            put_addr(addr, out);
            out.push(b' ');
        }
        None => out.extend_from_slice(b"- "),
    }
    match upstream_time(e) {
        Some(d) => seconds(d, out),
        None => out.push(b'-'),
    }
    out.push(b' ');
    seconds(e.ended.saturating_duration_since(e.started), out);
    out.extend_from_slice(b" \"");
    quoted_or_dash(e.get(Text::RequestId), out);
    out.push(b'"');
    if let Some(pool) = e.get(Text::Pool) {
        out.extend_from_slice(b" pool=");
        escape_clf(pool, out);
    }
    if e.event != Event::Request {
        out.push(b' ');
        out.extend_from_slice(e.event.name().as_bytes());
    }
    if let Some(reason) = e.close {
        out.extend_from_slice(b" close=");
        out.extend_from_slice(reason.name().as_bytes());
    }
    out.push(b'\n');
}

/// One JSON object per line: the combined fields by name, plus the request id, bytes each way,
/// the pool, TLS version and SNI (when TLS) and the event.
pub fn json(e: &Entry, at: &Stamp, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"time\":\"");
    out.extend_from_slice(&at.iso);
    put_digits3(at.milli, out);
    out.extend_from_slice(b"Z\",\"event\":\"");
    out.extend_from_slice(e.event.name().as_bytes());
    out.extend_from_slice(b"\",\"client\":\"");
    put_ip(e.peer, out);
    out.push(b'"');
    let text = |out: &mut Vec<u8>, key: &str, field: Text| {
        if let Some(v) = e.get(field) {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":\"");
            escape_json(v, out);
            out.push(b'"');
        }
    };
    text(out, "method", Text::Method);
    text(out, "target", Text::Target);
    if e.event == Event::Request && e.get(Text::Method).is_some() {
        out.extend_from_slice(protocol(e).0);
    }
    text(out, "host", Text::Host);
    out.extend_from_slice(b",\"status\":");
    put_num(e.status, out);
    out.extend_from_slice(b",\"bytes_in\":");
    put_num(e.bytes_in, out);
    out.extend_from_slice(b",\"bytes_out\":");
    put_num(e.bytes_out, out);
    out.extend_from_slice(b",\"body_bytes_out\":");
    put_num(e.bytes_out.saturating_sub(e.head_out), out);
    text(out, "referer", Text::Referer);
    text(out, "user_agent", Text::UserAgent);
    text(out, "request_id", Text::RequestId);
    text(out, "pool", Text::Pool);
    if let Some(addr) = e.backend {
        out.extend_from_slice(b",\"backend\":\"");
        put_addr(addr, out);
        out.push(b'"');
    }
    if let Some(d) = upstream_time(e) {
        out.extend_from_slice(b",\"upstream_time\":");
        seconds(d, out);
    }
    out.extend_from_slice(b",\"total_time\":");
    seconds(e.ended.saturating_duration_since(e.started), out);
    if let Some(v) = e.tls {
        out.extend_from_slice(b",\"tls\":\"");
        out.extend_from_slice(v.as_bytes());
        out.push(b'"');
    }
    text(out, "sni", Text::Sni);
    if let Some(reason) = e.close {
        out.extend_from_slice(b",\"close\":\"");
        out.extend_from_slice(reason.name().as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"}\n");
}

/// The request's protocol as the `json` format writes it (a key and its value) and as the
/// request line of `combined` ends.
fn protocol(e: &Entry) -> (&'static [u8], &'static [u8]) {
    if e.http2 {
        (b",\"protocol\":\"HTTP/2.0\"", b" HTTP/2.0")
    } else if e.http10 {
        (b",\"protocol\":\"HTTP/1.0\"", b" HTTP/1.0")
    } else {
        (b",\"protocol\":\"HTTP/1.1\"", b" HTTP/1.1")
    }
}

/// `TLSv1.3`, `TLSv1.2`: a TLS version as the logs of nginx and HAProxy name it.
pub fn tls_name(v: rustls::ProtocolVersion) -> &'static str {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
        _ => "TLS",
    }
}

fn upstream_time(e: &Entry) -> Option<Duration> {
    let start = e.upstream_started?;
    Some(
        e.upstream_ended
            .unwrap_or(e.ended)
            .saturating_duration_since(start),
    )
}

fn quoted_or_dash(v: Option<&[u8]>, out: &mut Vec<u8>) {
    match v {
        Some(v) => escape_clf(v, out),
        None => out.push(b'-'),
    }
}

/// `1.234`: seconds with milliseconds.
fn seconds(d: Duration, out: &mut Vec<u8>) {
    put_num(d.as_secs(), out);
    out.push(b'.');
    put_digits3(d.subsec_millis() as u16, out);
}

/// A number in decimal (the writer formats millions of them: no `fmt` machinery).
fn put_num(n: impl itoa::Integer, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `n` (below 1000) as three digits, zero-padded.
fn put_digits3(n: u16, out: &mut Vec<u8>) {
    let n = n % 1000;
    out.extend_from_slice(&[
        b'0' + (n / 100) as u8,
        b'0' + (n / 10 % 10) as u8,
        b'0' + (n % 10) as u8,
    ]);
}

/// A status as nginx logs it: three digits (`000` when there was none).
fn put_status(status: u16, out: &mut Vec<u8>) {
    if status < 1000 {
        put_digits3(status, out);
    } else {
        put_num(status, out);
    }
}

/// An address as `Display` writes it; IPv4 (nearly every line) without the `fmt` machinery.
fn put_ip(ip: IpAddr, out: &mut Vec<u8>) {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            put_num(a, out);
            for n in [b, c, d] {
                out.push(b'.');
                put_num(n, out);
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

fn put_addr(addr: SocketAddr, out: &mut Vec<u8>) {
    match addr {
        SocketAddr::V4(a) => {
            put_ip(IpAddr::V4(*a.ip()), out);
            out.push(b':');
            put_num(a.port(), out);
        }
        SocketAddr::V6(a) => {
            let _ = write!(out, "{a}");
        }
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// nginx's escaping of logged variables: `"`, `\`, control and non-ASCII bytes become `\xHH`.
pub fn escape_clf(mut v: &[u8], out: &mut Vec<u8>) {
    let plain = |b: &u8| *b != b'"' && *b != b'\\' && (0x20..0x7f).contains(b);
    // bounded: each round consumes a run of plain bytes and one escaped byte
    loop {
        let run = v.iter().take_while(|b| plain(b)).count();
        let (good, rest) = v.split_at(run);
        out.extend_from_slice(good);
        let Some((&b, tail)) = rest.split_first() else {
            return;
        };
        out.extend_from_slice(&[
            b'\\',
            b'x',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 15)],
        ]);
        v = tail;
    }
}

/// A JSON string's contents: `"` and `\` escaped, control characters as `\u00HH`, valid UTF-8 as
/// it is, and each byte that is not UTF-8 as U+FFFD.
pub fn escape_json(mut v: &[u8], out: &mut Vec<u8>) {
    // bounded: every round consumes at least one byte, or ends
    while !v.is_empty() {
        match std::str::from_utf8(v) {
            Ok(s) => {
                json_str(s, out);
                return;
            }
            Err(e) => {
                let (good, bad) = v.split_at(e.valid_up_to());
                if let Ok(s) = std::str::from_utf8(good) {
                    json_str(s, out);
                }
                out.extend_from_slice("\u{fffd}".as_bytes());
                let skip = e.error_len().unwrap_or(bad.len()).max(1);
                v = bad.get(skip..).unwrap_or_default();
            }
        }
    }
}

/// `s` escaped for a JSON string: runs that need no escape are copied whole.
fn json_str(s: &str, out: &mut Vec<u8>) {
    let mut rest = s;
    // bounded: each round consumes a plain run and one character
    loop {
        let run = rest
            .bytes()
            .take_while(|&b| b != b'"' && b != b'\\' && b >= 0x20 && b != 0x7f)
            .count();
        // `run` ends before an ASCII byte or at the end, so it is a char boundary
        let (good, tail) = rest.split_at(run);
        out.extend_from_slice(good.as_bytes());
        let mut chars = tail.chars();
        let Some(c) = chars.next() else {
            return;
        };
        json_char(c, out);
        rest = chars.as_str();
    }
}

fn json_char(c: char, out: &mut Vec<u8>) {
    match c {
        '"' => out.extend_from_slice(b"\\\""),
        '\\' => out.extend_from_slice(b"\\\\"),
        '\n' => out.extend_from_slice(b"\\n"),
        '\r' => out.extend_from_slice(b"\\r"),
        '\t' => out.extend_from_slice(b"\\t"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let b = c as u8;
            out.extend_from_slice(b"\\u00");
            out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
        c => {
            let mut utf8 = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        }
    }
}

/// The civil time of `wall_ms` (milliseconds since the Unix epoch).
fn parts(wall_ms: u64) -> Civil {
    Civil::of(i64::try_from(wall_ms / 1000).unwrap_or(i64::MAX))
}

/// `02/Dec/2026:12:39:41 +0000` (always UTC).
fn clf_time(wall_ms: u64, out: &mut Vec<u8>) {
    let p = parts(wall_ms);
    let month = p.month_name();
    let _ = write!(
        out,
        "{:02}/{month}/{}:{:02}:{:02}:{:02} +0000",
        p.day, p.year, p.hour, p.minute, p.second
    );
}

/// `2026-12-02T12:39:41.` (the milliseconds and `Z` follow).
fn iso_second(wall_ms: u64, out: &mut Vec<u8>) {
    let p = parts(wall_ms);
    let _ = write!(
        out,
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}.",
        p.year, p.month, p.day, p.hour, p.minute, p.second
    );
}

/// A line's time in both formats' text; the text changes once a second, so it is formatted
/// once a second, not once a line.
pub struct Stamp {
    second: u64,
    milli: u16,
    /// `02/Dec/2026:12:39:41 +0000`
    clf: Vec<u8>,
    /// `2026-12-02T12:39:41.`
    iso: Vec<u8>,
}

impl Stamp {
    pub fn new() -> Stamp {
        Stamp {
            second: u64::MAX,
            milli: 0,
            clf: Vec::with_capacity(32),
            iso: Vec::with_capacity(32),
        }
    }

    /// Moves to `wall_ms` (milliseconds since the Unix epoch).
    pub fn set(&mut self, wall_ms: u64) {
        self.milli = (wall_ms % 1000) as u16;
        let second = wall_ms / 1000;
        if second != self.second {
            self.second = second;
            self.clf.clear();
            clf_time(wall_ms, &mut self.clf);
            self.iso.clear();
            iso_second(wall_ms, &mut self.iso);
        }
    }
}

impl Default for Stamp {
    fn default() -> Self {
        Stamp::new()
    }
}

// ------------------------------------------------------------------------------ request ids

/// Request ids of one worker: 32 hex digits that look random, unique in the worker (a counter
/// through a bijective mix) and, with the random seed, across workers and processes.
pub struct RequestIds {
    seed: u64,
    next: u64,
}

impl RequestIds {
    pub fn new() -> RequestIds {
        use std::hash::{BuildHasher, Hasher};
        // a fresh random key per RandomState: a different seed per worker and process
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(u64::from(std::process::id()));
        RequestIds {
            seed: h.finish(),
            next: 0,
        }
    }

    /// The next id, written into `out`.
    pub fn next(&mut self, out: &mut [u8; 32]) {
        self.next = self.next.wrapping_add(1);
        // `lo` is a bijection of the counter (unique within the generator); `hi` mixes the seed
        // with it, so that no two ids share a visible prefix and generators do not collide
        let lo = mix(self.next ^ self.seed.rotate_left(32));
        let hi = mix(self.seed ^ lo);
        for (i, byte) in out.iter_mut().enumerate() {
            let word = if i < 16 { hi } else { lo };
            let shift = 60 - 4 * (i % 16);
            *byte = b"0123456789abcdef"[((word >> shift) & 15) as usize];
        }
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds::new()
    }
}

/// splitmix64's finaliser: a bijection on u64.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
