//! Many streams on one connection, and ordinary HTTP/2 clients:
//!
//! - 200 streams through Python's `h2` (its own frames, flow control and HPACK), as many at once
//!   as our SETTINGS_MAX_CONCURRENT_STREAMS (128) allows, more as they finish, with request
//!   bodies of 0, 1 KiB and 1 MiB that the backend echoes: every answer byte-exact, none reset;
//!   the client raised its stream window and frame size, which the server follows;
//! - curl (`--http2-prior-knowledge`, or `--http2` over TLS) and nghttp (Debian's
//!   `nghttp2-client`) uploading and downloading bodies with and without a length, byte-exact,
//!   several requests multiplexed on one connection, and a request head sent in CONTINUATION
//!   frames.

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;

use crate::both_modes;
use crate::common::accepted_per_worker;
use crate::common::h2::{run_bounded, run_py, EchoBackend, Mode, Setup};
use crate::common::tls::pattern_fill;
use crate::common::{path_text, TempDir};

/// 200 streams, 128 at a time, bodies both ways byte-exact (Python's h2).
fn two_hundred_streams(mode: Mode) {
    let echo = EchoBackend::start();
    let s = Setup::start(mode, &[echo.addr], json!({}));
    let out = run_py(
        &s,
        "concurrent",
        &[
            "--streams",
            "200",
            "--sizes",
            "0,1024,1048576",
            "--timeout",
            "150",
        ],
        Duration::from_secs(180),
    );
    assert_eq!(out["errors"], json!([]), "{out}");
    assert_eq!(out["server_max_concurrent"], json!(128), "{out}");
    assert_eq!(out["ok"], json!(200), "{out}");
    assert_eq!(
        out["max_open"],
        json!(128),
        "128 streams open at once: {out}"
    );
    assert_eq!(out["goaway"], json!(null), "{out}");
    // 66 bodies of 1 MiB, 67 of 1 KiB, each way
    let bytes = 66 * (1 << 20) + 67 * 1024;
    assert_eq!(out["bytes_up"], json!(bytes), "{out}");
    assert_eq!(out["bytes_down"], json!(bytes), "{out}");
    assert_eq!(echo.requests(), 200);
    eprintln!(
        "{mode:?}: the backend held at most {} requests at once",
        echo.max_in_flight.load(Ordering::SeqCst)
    );
}

/// `n` bytes of the test pattern.
fn pattern(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    pattern_fill(0, &mut v);
    v
}

/// curl as an ordinary client: a body with a length and one without (stdin, no
/// `content-length`: chunked to the backend), each echoed byte-exact, over HTTP/2; and (over
/// TLS) ten URLs multiplexed on one connection.
fn curl_client(mode: Mode) {
    let echo = EchoBackend::start();
    let s = Setup::start(mode, &[echo.addr], json!({}));
    let dir = TempDir::new(&format!("curl-{mode:?}"));
    let body = pattern(3 << 20);
    let file = dir.write("up.bin", &body);

    let mut cmd = Command::new("curl");
    cmd.args(s.curl_args())
        .args(["--write-out", "\n%{http_version} %{http_code}"])
        .arg("--data-binary")
        .arg(format!("@{}", path_text(&file)))
        .arg(s.url("/echo/length"));
    let out = run_bounded(cmd, None, Duration::from_secs(90));
    assert_eq!(out.code, Some(0), "curl: {}", out.stderr);
    let (got, tail) = out.stdout.split_at(out.stdout.len() - "\n2 200".len());
    assert_eq!(tail, b"\n2 200", "HTTP/2, 200");
    assert!(
        got == body.as_slice(),
        "3 MiB echoed byte-exact ({} bytes back)",
        got.len()
    );

    let mut cmd = Command::new("curl");
    cmd.args(s.curl_args())
        .args(["--upload-file", "-"])
        .arg(s.url("/echo/chunked"));
    let odd = pattern((1 << 20) + 5);
    let out = run_bounded(cmd, Some(odd.clone()), Duration::from_secs(90));
    assert_eq!(out.code, Some(0), "curl -T -: {}", out.stderr);
    assert!(
        out.stdout == odd,
        "a body without a length, echoed ({} bytes back)",
        out.stdout.len()
    );

    if mode == Mode::H2c {
        // curl 7.88 (Debian 12's) fails a second stream on a reused prior-knowledge connection
        // ("Error in the HTTP2 framing layer" before it sends it: curl/curl#10634, fixed in
        // 8.0); nghttp_client multiplexes over h2c instead
        return;
    }
    let before: u64 = accepted_per_worker(s.proxy.admin()).iter().sum();
    let requests = echo.requests();
    let mut cmd = Command::new("curl");
    cmd.args(s.curl_args())
        .args(["--parallel", "--parallel-max", "10", "--data-binary", "ten"])
        .args(["--write-out", "%{http_version}\n"]);
    for i in 0..10 {
        cmd.arg(s.url(&format!("/echo/{i}")));
    }
    let out = run_bounded(cmd, None, Duration::from_secs(60));
    assert_eq!(out.code, Some(0), "curl --parallel: {}", out.stderr);
    assert_eq!(echo.requests() - requests, 10);
    let text = out.text();
    assert_eq!(text.matches("ten").count(), 10, "ten answers: {text}");
    assert_eq!(text.matches("2\n").count(), 10, "each over HTTP/2: {text}");
    let after: u64 = accepted_per_worker(s.proxy.admin()).iter().sum();
    assert_eq!(after - before, 1, "the ten requests shared one connection");
}

/// nghttp as an ordinary client: uploads with and without `content-length`, echoed
/// byte-exact; a request head large enough to need CONTINUATION frames (`--continuation`);
/// one URL requested 30 times on one connection.
fn nghttp_client(mode: Mode) {
    let echo = EchoBackend::start();
    // nghttp's --continuation head is larger than the default 16 KiB
    let s = Setup::start(mode, &[echo.addr], json!({"max_request_head": 65536}));
    let dir = TempDir::new(&format!("nghttp-{mode:?}"));
    let body = pattern((2 << 20) + 3);
    let file = dir.write("up.bin", &body);

    for extra in [&[][..], &["--no-content-length"][..]] {
        let mut cmd = Command::new("nghttp");
        cmd.args(["--timeout", "60"])
            .args(extra)
            .arg("--data")
            .arg(&file)
            .arg(s.url("/echo"));
        let out = run_bounded(cmd, None, Duration::from_secs(90));
        assert_eq!(out.code, Some(0), "nghttp {extra:?}: {}", out.stderr);
        assert!(
            out.stdout == body,
            "nghttp {extra:?}: echoed byte-exact ({} bytes back)",
            out.stdout.len()
        );
    }

    let mut cmd = Command::new("nghttp");
    cmd.args(["--timeout", "60", "--continuation", "--stat"])
        .arg(s.url("/continued"));
    let out = run_bounded(cmd, None, Duration::from_secs(60));
    assert_eq!(out.code, Some(0), "nghttp --continuation: {}", out.stderr);
    assert!(out.text().contains("200"), "{}", out.text());

    let before = echo.requests();
    let mut cmd = Command::new("nghttp");
    cmd.args([
        "--timeout",
        "60",
        "--multiply",
        "30",
        "--null-out",
        "--stat",
    ])
    .arg(s.url("/many"));
    let out = run_bounded(cmd, None, Duration::from_secs(60));
    assert_eq!(out.code, Some(0), "nghttp -m 30: {}", out.stderr);
    assert_eq!(echo.requests() - before, 30, "{}", out.text());
}

both_modes!(two_hundred_streams, curl_client, nghttp_client);
