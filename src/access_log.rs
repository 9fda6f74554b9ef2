//! The access log: the record a worker fills for each request ([`Entry`]), the worker's side of
//! the log ([`Local`]) and the writer thread; the two line formats (`combined` and `json`, with
//! their escaping) are in `format.rs`.
//!
//! A worker never waits on output, never allocates for a record in steady state, and hands lines
//! to the writer in batches: its [`Local`] keeps a free list of [`Entry`]s; a stream takes one,
//! copies the raw request fields into it (method, target, `Host`, `Referer`, `User-Agent`,
//! request id, SNI) and fills in the numbers as the exchange runs. At its end the worker formats
//! the line into its own buffer and takes the entry back. The buffer goes to the writer through a
//! bounded channel (`try_send`) once it holds `HAND_OVER` bytes, or at the end of the first poll
//! round `LINGER` after its oldest line (the worker's poll wakes for it), or when the worker
//! stops. When the channel is full the batch is dropped and its lines counted
//! ([`AccessLog::dropped`], in `/stats` and `/metrics`). Nothing of a line crosses threads but
//! its formatted bytes, and a worker makes one channel operation per batch, not per line. The
//! writer joins what the workers hand over into one `write` while more is queued.
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
//! ([`AccessLog::configure`]): a line takes the format of the moment it is formatted, and the
//! target of the moment its batch is written.

use std::fs::File;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TrySendError};

pub use self::format::{combined, escape_clf, escape_json, json, tls_name, Stamp};
use crate::config::{AccessLogFormat, AccessLogTarget};

/// Batches waiting for the writer before new ones are dropped: about a megabyte of lines.
const QUEUE: usize = 64;
/// A worker hands its lines over once it has formatted this much...
const HAND_OVER: usize = 16 * 1024;
/// ... or at the end of the first poll round this long after the oldest of them.
const LINGER: Duration = Duration::from_millis(50);
/// Emptied batch buffers kept for the workers to reuse (beyond this they are freed).
const FREE_BUFS: usize = 64;
/// Entries a worker keeps for reuse (one per exchange in flight; beyond this they are freed).
const FREE_ENTRIES: usize = 1024;
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
    /// A worker's batch: formatted lines, and how many.
    Lines(Vec<u8>, u64),
    Configure(Output),
    Reopen(Sender<Result<(), String>>),
    Flush(Sender<()>),
    Stop,
}

/// The access log of one proxy: what workers hand their lines to, and the writer thread behind
/// it. Workers log through their [`Local`].
pub struct AccessLog {
    enabled: AtomicBool,
    /// The [`AccessLogFormat`] lines are formatted in (`Combined as u8` or `Json as u8`).
    format: AtomicU8,
    tx: Sender<Msg>,
    /// Batch buffers the writer emptied, for the workers.
    bufs: Receiver<Vec<u8>>,
    dropped: Arc<AtomicU64>,
    thread: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

impl AccessLog {
    /// Opens `target` and starts the writer thread.
    pub fn start(target: &AccessLogTarget, format: AccessLogFormat) -> io::Result<Arc<AccessLog>> {
        let output = Output::open(target)?;
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        let (bufs_tx, bufs) = crossbeam_channel::bounded(FREE_BUFS);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut writer = Writer {
            output,
            bufs: bufs_tx,
            dropped: Arc::clone(&dropped),
            failing: None,
            batch: Vec::with_capacity(BATCH + HAND_OVER),
            tail: Tail::default(),
        };
        let thread = std::thread::Builder::new()
            .name("ferrule-access".into())
            .spawn(move || writer.run(&rx))?;
        Ok(Arc::new(AccessLog {
            enabled: AtomicBool::new(*target != AccessLogTarget::Off),
            format: AtomicU8::new(format as u8),
            tx,
            bufs,
            dropped,
            thread: parking_lot::Mutex::new(Some(thread)),
        }))
    }

    /// Whether requests are logged at all.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    fn format(&self) -> AccessLogFormat {
        if self.format.load(Ordering::Relaxed) == AccessLogFormat::Json as u8 {
            AccessLogFormat::Json
        } else {
            AccessLogFormat::Combined
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
        self.format.store(format as u8, Ordering::Relaxed);
        self.tx
            .send_timeout(Msg::Configure(output), Duration::from_secs(5))
            .map_err(|_| io::Error::other("the access log writer does not answer"))
    }

    /// Opens the file again by its name (after logrotate moved it). Waits for the writer's
    /// answer (what was handed over before is written to the old file).
    pub fn reopen(&self) -> Result<(), String> {
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        self.tx
            .send_timeout(Msg::Reopen(done_tx), Duration::from_secs(5))
            .map_err(|_| "the access log writer does not answer".to_string())?;
        done_rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| "the access log writer does not answer".to_string())?
    }

    /// Waits (at most about a second) until everything handed over so far is written.
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

    /// Writes what is queued and stops the writer thread (the proxy stops, after its workers).
    pub fn stop(&self) {
        let _ = self.tx.send_timeout(Msg::Stop, Duration::from_secs(1));
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

/// A worker's side of the access log: its free entries, and the lines it formatted that the
/// writer has not had yet. Dropping it (the worker stops) hands those over.
pub struct Local {
    log: Arc<AccessLog>,
    /// Boxed: a stream holds its entry as an `Option<Box<Entry>>` (a pointer, not the record,
    /// in every idle stream), and the box goes back and forth whole.
    #[allow(clippy::vec_box)]
    free: Vec<Box<Entry>>,
    batch: Vec<u8>,
    /// Lines in `batch`, and when they are due: `LINGER` after the oldest of them ended.
    lines: u64,
    due: Option<Instant>,
    clock: Clock,
    /// The last instant turned into wall-clock milliseconds: a round's lines end at the same
    /// instant (the worker's clock moves once a poll round).
    memo: (Instant, u64),
    stamp: Stamp,
}

impl Local {
    pub fn new(log: Arc<AccessLog>) -> Local {
        let clock = Clock::new();
        Local {
            log,
            free: Vec::new(),
            batch: Vec::new(),
            lines: 0,
            due: None,
            memo: (clock.instant, clock.base_ms),
            clock,
            stamp: Stamp::new(),
        }
    }

    /// An entry to fill for a request of `peer`, or `None` when the log is off. Reuses a logged
    /// entry when one is free, so steady traffic allocates nothing.
    pub fn entry(&mut self, peer: IpAddr, now: Instant) -> Option<Box<Entry>> {
        if !self.log.enabled() {
            return None;
        }
        Some(match self.free.pop() {
            Some(mut e) => {
                e.reset(peer, now);
                e
            }
            None => {
                let mut e = Box::new(Entry::new(now));
                e.peer = peer;
                e
            }
        })
    }

    /// Logs a filled entry: formats its line into the batch (handed over once big enough) and
    /// keeps the entry for reuse.
    pub fn submit(&mut self, entry: Box<Entry>) {
        if self.batch.capacity() == 0 {
            self.batch = self
                .log
                .bufs
                .try_recv()
                .unwrap_or_else(|_| Vec::with_capacity(HAND_OVER + 4096));
        }
        if self.memo.0 != entry.ended {
            self.memo = (entry.ended, self.clock.wall(entry.ended));
        }
        self.stamp.set(self.memo.1);
        match self.log.format() {
            AccessLogFormat::Combined => combined(&entry, &self.stamp, &mut self.batch),
            AccessLogFormat::Json => json(&entry, &self.stamp, &mut self.batch),
        }
        self.lines += 1;
        if self.due.is_none() {
            self.due = entry.ended.checked_add(LINGER);
        }
        if self.free.len() < FREE_ENTRIES {
            self.free.push(entry);
        }
        if self.batch.len() >= HAND_OVER {
            self.hand_over();
        }
    }

    /// How long the worker may sleep before lines it holds are due (`None`: it holds none).
    pub fn due_in(&self, now: Instant) -> Option<Duration> {
        self.due.map(|t| t.saturating_duration_since(now))
    }

    /// The end of a poll round: hands the lines over when the oldest has waited `LINGER`.
    pub fn round_end(&mut self, now: Instant) {
        if self.due.is_some_and(|t| now >= t) {
            self.hand_over();
        }
    }

    /// Gives the formatted lines to the writer (never blocks: a full queue drops and counts
    /// them).
    pub fn hand_over(&mut self) {
        self.due = None;
        let lines = std::mem::take(&mut self.lines);
        if lines == 0 {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        match self.log.tx.try_send(Msg::Lines(batch, lines)) {
            Ok(()) => {}
            Err(TrySendError::Full(msg) | TrySendError::Disconnected(msg)) => {
                self.log.dropped.fetch_add(lines, Ordering::Relaxed);
                if let Msg::Lines(mut batch, _) = msg {
                    batch.clear();
                    self.batch = batch;
                }
            }
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        self.hand_over();
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
    /// Where emptied batch buffers go back to the workers.
    bufs: Sender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
    /// The output fails (reported once): when it was last tried.
    failing: Option<Instant>,
    batch: Vec<u8>,
    tail: Tail,
}

impl Writer {
    /// Idle, the writer blocks in `recv` (one wake-up when traffic starts); busy, it takes what
    /// is queued every `TICK` and never waits in `recv`, so a worker's `try_send` of a batch
    /// seldom has a sleeping thread to wake (a system call on the worker).
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
            Msg::Lines(mut text, n) => {
                self.batch.extend_from_slice(&text);
                *lines += n;
                text.clear();
                let _ = self.bufs.try_send(text);
                if self.batch.len() >= BATCH {
                    self.write_batch(lines);
                }
            }
            Msg::Configure(output) => {
                self.write_batch(lines);
                if output.name() != self.output.name() {
                    // a broken line in the old target is no concern of the new one
                    self.tail = Tail::default();
                }
                self.output = output;
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
    /// Milliseconds since the Unix epoch at `instant`.
    base_ms: u64,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            instant: Instant::now(),
            base_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64,
        }
    }

    /// Milliseconds since the Unix epoch at `at`.
    fn wall(&self, at: Instant) -> u64 {
        match at.checked_duration_since(self.instant) {
            Some(d) => self.base_ms.saturating_add(d.as_millis() as u64),
            None => self
                .base_ms
                .saturating_sub(self.instant.duration_since(at).as_millis() as u64),
        }
    }
}

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
        let bytes = hi.to_be_bytes().into_iter().chain(lo.to_be_bytes());
        for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
            pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
        }
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds::new()
    }
}

/// Each byte's two lowercase hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let digits = b"0123456789abcdef";
    let mut table = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = [digits[i >> 4], digits[i & 15]];
        i += 1;
    }
    table
};

/// splitmix64's finaliser: a bijection on u64.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

mod format;
#[cfg(test)]
mod tests;
