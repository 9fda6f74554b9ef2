//! Unit tests of the access log's formats, escaping, clock and request ids, and of its output
//! after failed writes.

use super::format::iso_second;
use super::*;

fn entry() -> Entry {
    let start = Instant::now();
    let mut e = Entry::new(start);
    e.peer = "192.0.2.7".parse().unwrap();
    e.set(Text::Method, b"GET");
    e.set(Text::Target, b"/index.html?q=1");
    e.set(Text::Host, b"example.com");
    e.set(Text::Referer, b"https://ref.example/");
    e.set(Text::UserAgent, b"curl/8.5");
    e.set(Text::RequestId, b"0123456789abcdef0123456789abcdef");
    e.status = 200;
    e.bytes_in = 80;
    e.bytes_out = 150;
    e.head_out = 100;
    e.backend = Some("127.0.0.1:9001".parse().unwrap());
    e.upstream_started = Some(start + Duration::from_millis(1));
    e.upstream_ended = Some(start + Duration::from_millis(13));
    e.ended = start + Duration::from_millis(1234);
    e
}

/// 2026-12-02 12:39:41.123 UTC
const WALL: u64 = 1_796_215_181_123;

fn line(f: fn(&Entry, &Stamp, &mut Vec<u8>), e: &Entry) -> String {
    let mut out = Vec::new();
    let mut at = Stamp::new();
    at.set(WALL);
    f(e, &at, &mut out);
    String::from_utf8(out).expect("a line is UTF-8")
}

#[test]
fn combined_is_nginx_combined_then_backend_times_and_id() {
    assert_eq!(
        line(combined, &entry()),
        "192.0.2.7 - - [02/Dec/2026:12:39:41 +0000] \"GET /index.html?q=1 HTTP/1.1\" 200 50 \
         \"https://ref.example/\" \"curl/8.5\" 127.0.0.1:9001 0.012 1.234 \
         \"0123456789abcdef0123456789abcdef\"\n"
    );
}

#[test]
fn an_http2_request_is_logged_as_http_2_0() {
    let mut e = entry();
    e.http2 = true;
    assert!(line(combined, &e).contains("\"GET /index.html?q=1 HTTP/2.0\" 200"));
    let v: serde_json::Value = serde_json::from_str(&line(json, &e)).expect("valid JSON");
    assert_eq!(v["protocol"], "HTTP/2.0");
}

#[test]
fn combined_without_request_fields_uses_dashes() {
    let mut e = Entry::new(Instant::now());
    e.peer = "::1".parse().unwrap();
    e.status = 408;
    e.http10 = true;
    assert_eq!(
        line(combined, &e),
        "::1 - - [02/Dec/2026:12:39:41 +0000] \"-\" 408 0 \"-\" \"-\" - - 0.000 \"-\"\n"
    );
    e.event = Event::TlsHandshakeFailed;
    e.status = 0;
    assert!(line(combined, &e)
        .ends_with("\"-\" 000 0 \"-\" \"-\" - - 0.000 \"-\" tls_handshake_failed\n"));
}

#[test]
fn json_has_every_field_and_parses() {
    let mut e = entry();
    e.tls = Some("TLSv1.3");
    e.set(Text::Sni, b"example.com");
    let text = line(json, &e);
    assert!(text.ends_with("}\n"));
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(v["time"], "2026-12-02T12:39:41.123Z");
    assert_eq!(v["event"], "request");
    assert_eq!(v["client"], "192.0.2.7");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["target"], "/index.html?q=1");
    assert_eq!(v["protocol"], "HTTP/1.1");
    assert_eq!(v["host"], "example.com");
    assert_eq!(v["status"], 200);
    assert_eq!(v["bytes_in"], 80);
    assert_eq!(v["bytes_out"], 150);
    assert_eq!(v["body_bytes_out"], 50);
    assert_eq!(v["referer"], "https://ref.example/");
    assert_eq!(v["user_agent"], "curl/8.5");
    assert_eq!(v["request_id"], "0123456789abcdef0123456789abcdef");
    assert_eq!(v["backend"], "127.0.0.1:9001");
    assert_eq!(v["upstream_time"], 0.012);
    assert_eq!(v["total_time"], 1.234);
    assert_eq!(v["tls"], "TLSv1.3");
    assert_eq!(v["sni"], "example.com");
}

#[test]
fn json_leaves_out_what_is_absent() {
    let mut e = Entry::new(Instant::now());
    e.event = Event::TlsHandshakeFailed;
    let v: serde_json::Value = serde_json::from_str(&line(json, &e)).expect("valid JSON");
    assert_eq!(v["event"], "tls_handshake_failed");
    for key in [
        "method",
        "target",
        "protocol",
        "backend",
        "upstream_time",
        "tls",
        "sni",
    ] {
        assert!(v.get(key).is_none(), "{key} in {v}");
    }
}

/// What a client controls: quotes, backslashes, CR/LF (a forged second line), NUL, DEL and bytes
/// that are not UTF-8.
const HOSTILE: &[u8] =
    b"/a\"b\\c\r\n127.0.0.1 - - [forged] \"GET / HTTP/1.1\" 200\x00\x7f\xff\xc3(\xe2\x82\xac";

#[test]
fn combined_escapes_client_text_to_one_ascii_line() {
    let mut e = entry();
    e.set(Text::Target, HOSTILE);
    e.set(Text::UserAgent, HOSTILE);
    e.set(Text::Referer, b"\"");
    let text = line(combined, &e);
    assert_eq!(text.matches('\n').count(), 1, "{text}");
    assert!(text.is_ascii(), "{text}");
    assert!(
        text.contains("\"GET /a\\x22b\\x5Cc\\x0D\\x0A127.0.0.1 - - [forged] \\x22GET / HTTP/1.1\\x22 200\\x00\\x7F\\xFF\\xC3(\\xE2\\x82\\xAC HTTP/1.1\""),
        "{text}"
    );
    assert!(text.contains(" \"\\x22\" "), "{text}");
    // the quotes that delimit fields are exactly the format's own: 2 each for request, referer,
    // user agent and request id
    assert_eq!(text.matches('"').count(), 8, "{text}");
}

#[test]
fn json_escapes_client_text_and_stays_valid() {
    let mut e = entry();
    e.set(Text::Target, HOSTILE);
    e.set(Text::UserAgent, "é \u{2028} ok".as_bytes());
    let text = line(json, &e);
    assert_eq!(text.matches('\n').count(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(
        v["target"],
        "/a\"b\\c\r\n127.0.0.1 - - [forged] \"GET / HTTP/1.1\" 200\u{0}\u{7f}\u{fffd}\u{fffd}(€"
    );
    assert_eq!(v["user_agent"], "é \u{2028} ok");
    assert!(
        text.contains("\\u0000") && text.contains("\\u007F"),
        "{text}"
    );
}

#[test]
fn escape_json_handles_truncated_sequences() {
    for input in [&b"\xe2\x82"[..], b"\xf0", b"a\xc3", b"\xc3\xa9\xe9"] {
        let mut out = b"\"".to_vec();
        escape_json(input, &mut out);
        out.push(b'"');
        let s: String = serde_json::from_slice(&out).expect("valid JSON string");
        assert!(s.contains('\u{fffd}'), "{input:?} gave {s:?}");
    }
}

#[test]
fn long_fields_are_cut() {
    let mut e = Entry::new(Instant::now());
    e.set(Text::UserAgent, &vec![b'a'; FIELD_MAX * 3]);
    assert_eq!(e.get(Text::UserAgent).map(<[u8]>::len), Some(FIELD_MAX));
}

#[test]
fn reset_keeps_the_buffer_and_forgets_the_rest() {
    let mut e = entry();
    let cap = e.text.capacity();
    let now = Instant::now();
    e.reset("10.0.0.1".parse().unwrap(), now);
    assert_eq!(e.text.capacity(), cap);
    assert!(e.get(Text::Method).is_none());
    assert_eq!(e.status, 0);
    assert_eq!(e.backend, None);
    assert_eq!(e.peer, "10.0.0.1".parse::<IpAddr>().unwrap());
}

#[test]
fn iso_seconds() {
    // the calendar itself is tested in http/date.rs
    let mut out = Vec::new();
    iso_second(951_782_400_000 + 86_399_999, &mut out);
    assert_eq!(out, b"2000-02-29T23:59:59.");
}

#[test]
fn the_stamp_follows_every_second_and_millisecond() {
    let mut at = Stamp::new();
    let mut e = entry();
    e.peer = "2001:db8::1".parse().unwrap();
    e.backend = Some("[::1]:8080".parse().unwrap());
    e.status = 99;
    for (wall, clf, iso) in [
        (
            WALL,
            "02/Dec/2026:12:39:41 +0000",
            "2026-12-02T12:39:41.123Z",
        ),
        (
            WALL + 5,
            "02/Dec/2026:12:39:41 +0000",
            "2026-12-02T12:39:41.128Z",
        ),
        (
            WALL + 877,
            "02/Dec/2026:12:39:42 +0000",
            "2026-12-02T12:39:42.000Z",
        ),
        (
            WALL - 1,
            "02/Dec/2026:12:39:41 +0000",
            "2026-12-02T12:39:41.122Z",
        ),
    ] {
        at.set(wall);
        let mut out = Vec::new();
        combined(&e, &at, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(&format!("2001:db8::1 - - [{clf}] ")),
            "{text}"
        );
        assert!(text.contains(" 099 50 "), "{text}");
        assert!(text.contains(" [::1]:8080 0.012 1.234 "), "{text}");
        let mut out = Vec::new();
        json(&e, &at, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["time"], iso);
        assert_eq!(v["client"], "2001:db8::1");
        assert_eq!(v["backend"], "[::1]:8080");
        assert_eq!(v["total_time"], 1.234);
    }
}

#[test]
fn request_ids_are_hex_and_distinct() {
    let mut ids = RequestIds::new();
    let mut other = RequestIds::new();
    let mut seen = std::collections::HashSet::new();
    let mut id = [0u8; 32];
    for _ in 0..10_000 {
        ids.next(&mut id);
        assert!(id
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)));
        assert!(seen.insert(id));
        other.next(&mut id);
        assert!(seen.insert(id), "two generators gave the same id");
    }
    // no shared prefix: consecutive ids differ in their first half too
    let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
    ids.next(&mut a);
    ids.next(&mut b);
    assert_ne!(a[..16], b[..16]);
}

/// A directory removed (with everything in it) when dropped, even by a test that fails.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `access.log` in a fresh directory of its own, and that directory: keep it until the log
/// writing there is stopped.
fn temp_path(name: &str) -> (TempDir, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("ferrule-access-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("access.log");
    (TempDir(dir), path)
}

/// A combined log to `access.log` in a fresh directory: the directory (removed when dropped),
/// the file's path and target, the log, and a worker's side of it.
fn file_log(
    name: &str,
) -> (
    TempDir,
    std::path::PathBuf,
    AccessLogTarget,
    Arc<AccessLog>,
    Local,
) {
    let (dir, path) = temp_path(name);
    let target = AccessLogTarget::File(path.to_string_lossy().into_owned());
    let log = AccessLog::start(&target, AccessLogFormat::Combined).unwrap();
    let local = Local::new(Arc::clone(&log));
    (dir, path, target, log, local)
}

/// Logs `target` through a worker's side of `log` and waits until the writer wrote it.
fn log_line(log: &Arc<AccessLog>, local: &mut Local, target: &[u8], status: u16) {
    let mut e = local
        .entry("127.0.0.1".parse().unwrap(), Instant::now())
        .expect("enabled");
    e.set(Text::Method, b"GET");
    e.set(Text::Target, target);
    e.status = status;
    local.submit(e);
    local.hand_over();
    log.flush();
}

#[test]
fn writer_writes_reopens_and_reconfigures() {
    let (_dir, path, target, log, mut local) = file_log("reopen");
    log_line(&log, &mut local, b"/first", 204);
    // logrotate: move the file away, reopen, and the next line goes to a new file
    let rotated = path.with_extension("1");
    std::fs::rename(&path, &rotated).unwrap();
    log.reopen().unwrap();
    log_line(&log, &mut local, b"/second", 200);
    let old = std::fs::read_to_string(&rotated).unwrap();
    let new = std::fs::read_to_string(&path).unwrap();
    assert!(old.contains("\"GET /first HTTP/1.1\" 204"), "{old}");
    assert!(new.contains("/second") && !new.contains("/first"), "{new}");
    // to JSON, then off
    log.configure(&target, AccessLogFormat::Json).unwrap();
    log_line(&log, &mut local, b"/third", 200);
    let last = std::fs::read_to_string(&path).unwrap();
    let json_line = last.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(json_line).expect("a JSON line");
    assert_eq!(v["target"], "/third");
    log.configure(&AccessLogTarget::Off, AccessLogFormat::Json)
        .unwrap();
    assert!(!log.enabled());
    assert!(local
        .entry("127.0.0.1".parse().unwrap(), Instant::now())
        .is_none());
    assert_eq!(log.dropped(), 0);
    drop(local);
    log.stop();
}

#[test]
fn a_file_that_cannot_be_opened_is_an_error_at_start() {
    let (_dir, log) = temp_path("missing");
    let path = log.join("no-such-dir").join("access.log");
    let target = AccessLogTarget::File(path.to_string_lossy().into_owned());
    assert!(AccessLog::start(&target, AccessLogFormat::Combined).is_err());
}

#[test]
fn entries_are_reused() {
    let (_dir, path, _, log, mut local) = file_log("reuse");
    let now = Instant::now();
    let mut e = local.entry("127.0.0.1".parse().unwrap(), now).unwrap();
    e.set(Text::UserAgent, &[b'u'; 1000]);
    let addr = &*e as *const Entry as usize;
    local.submit(e);
    let again = local.entry("127.0.0.1".parse().unwrap(), now).unwrap();
    assert_eq!(
        &*again as *const Entry as usize, addr,
        "a logged entry comes back"
    );
    assert!(again.text.capacity() >= 1000);
    assert!(again.get(Text::UserAgent).is_none());
    drop(local);
    log.stop();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
}

#[test]
fn a_worker_hands_lines_over_in_batches_when_big_enough_or_old_enough() {
    let (_dir, path, _, log, mut local) = file_log("batches");
    let written = || {
        log.flush();
        std::fs::read_to_string(&path).unwrap().lines().count()
    };
    let start = Instant::now();
    let line = |local: &mut Local, ended: Instant| {
        let mut e = local.entry("127.0.0.1".parse().unwrap(), start).unwrap();
        e.set(Text::Method, b"GET");
        e.set(Text::Target, &[b'x'; 1000]);
        e.ended = ended;
        local.submit(e);
    };
    // nothing held: nothing due
    assert_eq!(local.due_in(start), None);
    line(&mut local, start);
    assert_eq!(local.due_in(start), Some(LINGER));
    // a round that ends before the oldest line has waited LINGER keeps it
    local.round_end(start + LINGER / 2);
    assert_eq!(written(), 0);
    assert_eq!(local.due_in(start + LINGER / 2), Some(LINGER / 2));
    // one at LINGER hands it over
    local.round_end(start + LINGER);
    assert_eq!(written(), 1);
    assert_eq!(local.due_in(start + LINGER), None);
    // HAND_OVER bytes go at once, whatever their age: lines of ~1,100 bytes, in one batch
    let mut n = 0;
    while local.due_in(start).is_some() || n == 0 {
        assert!(n <= HAND_OVER / 1000, "{n} lines and still held");
        line(&mut local, start);
        n += 1;
        if n < HAND_OVER / 1200 {
            assert_eq!(written(), 1, "handed over after {n} lines");
        }
    }
    assert_eq!(written(), 1 + n);
    // what a worker holds when it stops is written
    line(&mut local, start);
    drop(local);
    assert_eq!(written(), 2 + n);
    assert_eq!(log.dropped(), 0);
    log.stop();
}

/// A disk that takes `room` more bytes (a write past it is cut short, the next one fails with
/// ENOSPC), and what it holds.
#[derive(Clone, Default)]
struct Disk {
    held: Arc<parking_lot::Mutex<Vec<u8>>>,
    room: Arc<parking_lot::Mutex<usize>>,
}

impl Disk {
    fn with_room(room: usize) -> Disk {
        let d = Disk::default();
        d.set_room(room);
        d
    }

    fn set_room(&self, room: usize) {
        *self.room.lock() = room;
    }

    fn text(&self) -> String {
        String::from_utf8(self.held.lock().clone()).unwrap()
    }
}

impl Write for Disk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut room = self.room.lock();
        if *room == 0 {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let n = buf.len().min(*room);
        *room -= n;
        self.held.lock().extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn after_a_write_cut_short_the_next_line_starts_on_a_line_of_its_own() {
    let disk = Disk::with_room(13);
    let mut out = disk.clone();
    let mut tail = Tail::default();
    // cut in the middle of the second line
    assert!(tail.write(&mut out, b"line one\nline two\n").is_err());
    assert_eq!(disk.text(), "line one\nline");
    // still full: nothing more, not even the line end
    assert!(tail.write(&mut out, b"line three\n").is_err());
    disk.set_room(usize::MAX);
    tail.write(&mut out, b"line four\n").unwrap();
    tail.write(&mut out, b"line five\n").unwrap();
    assert_eq!(disk.text(), "line one\nline\nline four\nline five\n");

    // cut exactly at a line end, or before anything was written: no empty line
    for (room, held) in [(9, "line one\n"), (0, "")] {
        let disk = Disk::with_room(room);
        let mut out = disk.clone();
        let mut tail = Tail::default();
        assert!(tail.write(&mut out, b"line one\nline two\n").is_err());
        disk.set_room(usize::MAX);
        tail.write(&mut out, b"line three\n").unwrap();
        assert_eq!(disk.text(), format!("{held}line three\n"));
    }
}

#[test]
fn a_file_opened_again_empty_starts_clean() {
    let (_dir, path) = temp_path("tail");
    std::fs::write(&path, "half a li").unwrap();
    let mut tail = Tail { mid_line: true };
    tail.reopened(&open_file(path.to_str().unwrap()).unwrap());
    assert!(tail.mid_line, "the same file, still ending mid-line");
    std::fs::remove_file(&path).unwrap();
    tail.reopened(&open_file(path.to_str().unwrap()).unwrap());
    assert!(!tail.mid_line, "a new file after rotation");
}

#[test]
fn the_writer_never_glues_a_line_to_a_broken_one() {
    let disk = Disk::with_room(30);
    let (bufs, _keep) = crossbeam_channel::bounded(FREE_BUFS);
    let mut writer = Writer {
        output: Output::Test(Box::new(disk.clone())),
        bufs,
        dropped: Arc::new(AtomicU64::new(0)),
        failing: None,
        batch: Vec::new(),
        tail: Tail::default(),
    };
    let mut lines = 0;
    for target in ["/a", "/b"] {
        let mut e = entry();
        e.set(Text::Target, target.as_bytes());
        writer.handle(Msg::Lines(line(combined, &e).into_bytes(), 1), &mut lines);
    }
    writer.write_batch(&mut lines);
    assert_eq!(writer.dropped.load(Ordering::Relaxed), 2);
    assert_eq!(disk.text().len(), 30);
    // the disk has room again and the retry is due
    disk.set_room(usize::MAX);
    writer.failing = writer.failing.and_then(|t| t.checked_sub(RETRY));
    let mut e = entry();
    e.set(Text::Target, b"/c");
    writer.handle(Msg::Lines(line(combined, &e).into_bytes(), 1), &mut lines);
    writer.write_batch(&mut lines);
    let text = disk.text();
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(got.len(), 2, "{text}");
    assert_eq!(got[0].len(), 30);
    assert!(got[1].starts_with("192.0.2.7 - - ["), "{text}");
    assert!(got[1].contains("\"GET /c HTTP/1.1\" 200"), "{text}");
    assert!(text.ends_with('\n'));
}

#[test]
fn an_http2_request_says_so_in_both_formats() {
    let mut e = entry();
    e.http2 = true;
    assert!(line(combined, &e).contains("\"GET /index.html?q=1 HTTP/2.0\""));
    let v: serde_json::Value = serde_json::from_str(&line(json, &e)).expect("valid JSON");
    assert_eq!(v["protocol"], "HTTP/2.0");
}

#[test]
fn a_cut_exchange_names_its_close_reason_in_both_formats() {
    let mut e = entry();
    e.close = Some(crate::stats::CloseReason::BackendFailed);
    assert!(line(combined, &e).ends_with("\" close=backend_failed\n"));
    let v: serde_json::Value = serde_json::from_str(&line(json, &e)).expect("valid JSON");
    assert_eq!(v["close"], "backend_failed");
}

#[test]
fn both_formats_name_the_pool_when_the_request_was_routed() {
    let mut e = entry();
    e.set(Text::Pool, b"api");
    e.close = Some(crate::stats::CloseReason::ClientClosed);
    assert!(
        line(combined, &e)
            .ends_with("\"0123456789abcdef0123456789abcdef\" pool=api close=client_closed\n"),
        "{}",
        line(combined, &e)
    );
    let v: serde_json::Value = serde_json::from_str(&line(json, &e)).expect("valid JSON");
    assert_eq!(v["pool"], "api");
    // not routed (a refused head, no matching route): no pool
    let plain = entry();
    assert!(!line(combined, &plain).contains("pool="));
    let v: serde_json::Value = serde_json::from_str(&line(json, &plain)).expect("valid JSON");
    assert!(v.get("pool").is_none());
}

/// The one-byte-at-a-time statement of `escape_clf`, which the word-at-a-time scan must match.
fn escape_clf_bytewise(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in v {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            out.extend_from_slice(format!("\\x{b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out
}

/// `escape_clf` of `v` is what the bytewise statement writes (`what` says where `v`'s bytes to
/// escape are, for the failure).
fn escapes_as_bytewise(v: &[u8], what: impl Fn() -> String) {
    let mut out = Vec::new();
    escape_clf(v, &mut out);
    assert_eq!(out, escape_clf_bytewise(v), "{}", what());
}

#[test]
fn escape_clf_finds_every_byte_to_escape_at_every_place_in_a_word() {
    // each of the 256 bytes, alone at each position of plain fields 1 to 19 bytes long, so that
    // it falls in the first word, the second, and the tail after the last whole word
    for len in 1..20 {
        for at in 0..len {
            for b in 0..=255u8 {
                let mut v = vec![b'a'; len];
                v[at] = b;
                escapes_as_bytewise(&v, || format!("byte {b:#04x} at {at} of {len}"));
            }
        }
    }
    // two bytes to escape (or one, and a plain byte at a range's edge) at every pair of places:
    // the scan stops at the first, whatever the borrows of the word tests do after it
    let second = [0x00, 0x01, 0x1f, 0x20, b'"', b'\\', 0x7e, 0x7f, 0x80, 0xff];
    for len in 2..18 {
        for at in 0..len {
            for next in at + 1..len {
                for b in 0..=255u8 {
                    for &c in &second {
                        let mut v = vec![b'a'; len];
                        v[at] = b;
                        v[next] = c;
                        escapes_as_bytewise(&v, || {
                            format!("{b:#04x} at {at}, {c:#04x} at {next}, of {len}")
                        });
                    }
                }
            }
        }
    }
    // plain bytes next to the edges of the ranges, and runs of bytes to escape
    escapes_as_bytewise(b" !#~[]{}\x1f\x20\x7e\x7f\x80\xff\"\\\"\\", || {
        "edges".into()
    });
}

#[test]
fn client_addresses_are_written_as_display_writes_them() {
    for ip in [
        "0.0.0.0",
        "255.255.255.255",
        "10.0.100.9",
        "127.0.0.1",
        "99.100.9.10",
        "::1",
        "2001:db8::8:800:200c:417a",
    ] {
        let mut e = entry();
        e.peer = ip.parse().unwrap();
        let text = line(combined, &e);
        assert!(text.starts_with(&format!("{ip} - - [")), "{text}");
    }
    // every octet value, in every place
    for n in 0..=255u8 {
        let ip = std::net::Ipv4Addr::new(n, 255 - n, n / 2, n.wrapping_mul(7));
        let mut out = Vec::new();
        crate::http::headers::put_ip(&mut out, ip.into());
        assert_eq!(out, ip.to_string().as_bytes());
    }
}

#[test]
fn times_are_seconds_with_milliseconds_below_and_above_ten_seconds() {
    for (ms, text) in [
        (0, "0.000"),
        (7, "0.007"),
        (9_999, "9.999"),
        (10_000, "10.000"),
        (12_345, "12.345"),
        (3_600_050, "3600.050"),
    ] {
        let mut e = entry();
        e.upstream_started = None;
        e.ended = e.started + Duration::from_millis(ms);
        let line = line(combined, &e);
        assert!(line.contains(&format!(" - {text} \"")), "{line}");
    }
}
