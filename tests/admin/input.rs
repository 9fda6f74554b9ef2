//! Bad input to the admin API: every kind (bodies, keys, values, ids, methods, paths, sizes,
//! HTTP framing) gets a 4xx with the one error shape naming the field, changes nothing and
//! leaves the proxy serving; bodies over 1 MiB are refused without being read.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::common::{Backend, Client};
use super::{error_message, json_of, quiet_proxy, send, wait_until, Api};

/// A bad request: method, path, body, the status and the start of the message it gets.
type Case<'a> = (&'a str, &'a str, Option<Vec<u8>>, u16, String);

// Proves every kind of bad input gets a 4xx with the one error shape naming the field, and
// leaves the pool as it was: bodies (not JSON, not an object, unknown keys, bad values, a host
// that does not resolve, the same backend twice), ids, methods (405 with Allow) and paths.
#[test]
fn bad_input_is_a_4xx_naming_the_field_and_changes_nothing() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let proxy = quiet_proxy(&[a.addr, b.addr], json!({}));
    let api = Api::of(&proxy);
    let before = api.get("/backends");
    let url_a = format!("http://{}", a.addr);
    let raw = |body: &str| Some(body.as_bytes().to_vec());
    let json = |v: Value| Some(v.to_string().into_bytes());
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/backends",
            raw("{\"url\": "),
            400,
            "body: not valid JSON".into(),
        ),
        ("POST", "/backends", raw(""), 400, "body: empty".into()),
        (
            "POST",
            "/backends",
            raw("[1]"),
            400,
            "body: expected a JSON object, found an array".into(),
        ),
        (
            "POST",
            "/backends",
            json(json!({"url": "http://127.0.0.1:9", "wieght": 2})),
            400,
            "wieght: unknown key (did you mean \"weight\"?)".into(),
        ),
        (
            "POST",
            "/backends",
            json(json!({"weight": 2})),
            400,
            "url: missing".into(),
        ),
        (
            "POST",
            "/backends",
            json(json!({"url": "ftp://127.0.0.1:9"})),
            400,
            "url: \"ftp://127.0.0.1:9\" has unsupported scheme".into(),
        ),
        (
            "POST",
            "/backends",
            json(json!({"url": "http://127.0.0.1:9/api"})),
            400,
            "url: \"http://127.0.0.1:9/api\": paths are not supported".into(),
        ),
        (
            "POST",
            "/backends",
            json(json!({"url": "http://127.0.0.1:0"})),
            400,
            "url: ".into(),
        ),
        (
            "POST",
            "/backends",
            json(json!({"url": "http://127.0.0.1:9", "weight": 0})),
            400,
            "weight: must be at least 1".into(),
        ),
        (
            "POST",
            "/backends",
            json(json!({"url": "http://127.0.0.1:9", "weight": "2"})),
            400,
            "weight: expected an integer".into(),
        ),
        (
            "POST",
            "/backends",
            json(json!({"url": "http://no-such-host.invalid:80"})),
            400,
            "url: cannot resolve \"no-such-host.invalid\"".into(),
        ),
        (
            "POST",
            "/backends",
            json(json!({"url": format!("{url_a}/")})),
            409,
            format!("url: \"{url_a}/\" is the same backend as backend 0 ({url_a:?})"),
        ),
        (
            "POST",
            "/backends",
            json(json!({"url": "https://127.0.0.1:9", "ca_file": "/no/such/ca.pem"})),
            400,
            "ca_file: \"/no/such/ca.pem\" is refused: files named through the admin API must be"
                .into(),
        ),
        (
            "PATCH",
            "/backends/1",
            json(json!({"weight": 0})),
            400,
            "weight: must be at least 1".into(),
        ),
        (
            "PATCH",
            "/backends/1",
            json(json!({"weight": 10001})),
            400,
            "weight: must be at most 10000".into(),
        ),
        (
            "PATCH",
            "/backends/1",
            json(json!({"state": "down"})),
            400,
            "state: \"down\" is set by health checks only".into(),
        ),
        (
            "PATCH",
            "/backends/1",
            json(json!({"state": "off"})),
            400,
            "state: expected \"up\", \"draining\" or \"disabled\", found the string \"off\"".into(),
        ),
        (
            "PATCH",
            "/backends/1",
            json(json!({"weight": 2, "colour": "red"})),
            400,
            "colour: unknown key (expected one of: weight, state)".into(),
        ),
        (
            "PATCH",
            "/backends/1",
            json(json!({})),
            400,
            "body: nothing to change".into(),
        ),
        (
            "PUT",
            "/backends/1/status",
            json(json!({})),
            400,
            "alive: missing".into(),
        ),
        (
            "PUT",
            "/backends/1/status",
            json(json!({"alive": "yes"})),
            400,
            "alive: expected true or false, found the string \"yes\"".into(),
        ),
        (
            "PUT",
            "/backends/1/status",
            json(json!({"alive": true, "x": 1})),
            400,
            "x: unknown key (expected one of: alive)".into(),
        ),
        (
            "GET",
            "/backends/7",
            None,
            404,
            "id: no backend with id 7".into(),
        ),
        (
            "PATCH",
            "/backends/7",
            json(json!({"weight": 2})),
            404,
            "id: no backend with id 7".into(),
        ),
        (
            "DELETE",
            "/backends/7",
            None,
            404,
            "id: no backend with id 7".into(),
        ),
        (
            "PUT",
            "/backends/7/status",
            json(json!({"alive": true})),
            404,
            "id: no backend with id 7".into(),
        ),
        (
            "GET",
            "/backends/first",
            None,
            404,
            "id: \"first\" is not a backend id".into(),
        ),
        (
            "GET",
            "/backends/-1",
            None,
            404,
            "is not a backend id".into(),
        ),
        ("GET", "/nope", None, 404, "/nope: no such endpoint".into()),
        (
            "GET",
            "/dashboard/x",
            None,
            404,
            "/dashboard/x: no such endpoint".into(),
        ),
        (
            "POST",
            "/",
            None,
            405,
            "method: POST / is not served (allowed: GET)".into(),
        ),
        (
            "GET",
            "/backends/0/nope",
            None,
            404,
            "no such endpoint".into(),
        ),
        (
            "POST",
            "/backends/0",
            None,
            405,
            "method: POST /backends/{id} is not served".into(),
        ),
        (
            "DELETE",
            "/backends",
            None,
            405,
            "method: DELETE /backends is not served".into(),
        ),
        (
            "GET",
            "/backends/0/status",
            None,
            405,
            "method: GET /backends/{id}/status".into(),
        ),
        (
            "GET",
            "/reload-certs",
            None,
            405,
            "method: GET /reload-certs".into(),
        ),
        ("POST", "/health", None, 405, "method: POST /health".into()),
    ];
    for (method, path, body, status, says) in cases {
        let r = api.raw(method, path, body.as_deref());
        let answer = json_of(&r);
        assert_eq!(r.status, status, "{method} {path}: {answer}");
        let message = error_message(&answer);
        assert!(
            message.starts_with(&says) || (says.len() < 25 && message.contains(&says)),
            "{method} {path}: {message:?} should say {says:?}"
        );
        if status == 405 {
            let allow = r
                .header("allow")
                .unwrap_or_else(|| panic!("405 without Allow: {r:?}"));
            let want = match path {
                "/backends/0" => "GET, PATCH, DELETE",
                "/backends" => "GET, POST",
                "/backends/0/status" => "PUT",
                "/health" | "/" => "GET",
                _ => "POST",
            };
            assert_eq!(allow, want, "{method} {path}");
        }
    }
    assert_eq!(api.get("/backends"), before, "nothing changed");
    assert_eq!(proxy.get("/").status, 200, "still serving");
}

// Proves bodies over 1 MiB get 413 at once, without the server reading them: from the
// Content-Length alone (even one that would not fit in memory: tiny_http aborted the process on
// it), and from a chunked body as it passes the limit; a body of just under 1 MiB is read.
#[test]
fn bodies_over_1_mib_get_413_without_being_read() {
    let a = Backend::start("a");
    let proxy = quiet_proxy(&[a.addr], json!({}));
    let api = Api::of(&proxy);
    for length in ["2000000", "100000000000", "99999999999999999999999"] {
        let mut c = Client::connect(api.addr);
        let started = Instant::now();
        c.send(
            format!(
                "POST /backends HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{\"url\""
            )
            .as_bytes(),
        );
        let r = c.response();
        assert_eq!(r.status, 413, "{length}: {r:?}");
        assert!(error_message(&json_of(&r)).starts_with("body: larger than 1048576 bytes"));
        assert!(r.closes(), "{length}: the connection is closed");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{length}: answered at once"
        );
    }
    // chunked: 1 MiB in 64 KiB chunks, then one byte more (all of it is read: no reset)
    let mut c = Client::connect(api.addr);
    c.send(b"POST /backends HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
    for _ in 0..16 {
        c.send(chunk.as_bytes());
    }
    c.send(b"1\r\nx\r\n");
    let r = c.response();
    assert_eq!(r.status, 413, "{r:?}");
    // just under the limit: read, then refused for what it says
    let padding = "x".repeat((1 << 20) - 40);
    let body = format!("{{\"url\": \"http://127.0.0.1:9\", \"p\": \"{padding}\"}}");
    assert!(body.len() < 1 << 20);
    let (status, answer) = api.call(
        "POST",
        "/backends",
        Some(serde_json::from_str(&body).expect("json")),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(error_message(&answer).starts_with("p: unknown key"));
    assert_eq!(api.get("/health")["status"], "ok", "the proxy is alive");
    assert_eq!(proxy.get("/").status, 200);
}

// Proves malformed HTTP gets a 4xx (JSON) and a close, and well-formed keep-alive and pipelined
// requests, HTTP/1.0 and `Expect: 100-continue` are served.
#[test]
fn http_framing_is_strict_and_keep_alive_works() {
    let a = Backend::start("a");
    let proxy = quiet_proxy(&[a.addr], json!({}));
    let api = Api::of(&proxy);
    let answer = |bytes: &[u8]| {
        let mut c = Client::connect(api.addr);
        c.send(bytes);
        let r = c.response();
        (r.status, c.is_closed())
    };
    assert_eq!(
        answer(b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n"),
        (400, true)
    );
    assert_eq!(answer(b"\x16\x03\x01\x00\xa5garbage\r\n\r\n"), (400, true));
    let long = format!("GET /health HTTP/1.1\r\nX: {}\r\n\r\n", "y".repeat(20_000));
    assert_eq!(answer(long.as_bytes()).0, 431);
    assert_eq!(
        answer(b"POST /backends HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n").0,
        501
    );
    assert_eq!(
        answer(b"POST /backends HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").0,
        400
    );
    assert_eq!(
        answer(b"POST /backends HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").0,
        400
    );

    // keep-alive, two pipelined in one write, then HTTP/1.0 (closes)
    let mut c = Client::connect(api.addr);
    c.send(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\nGET /backends/0 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let (first, second) = (c.response(), c.response());
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(json_of(&second)["id"], 0);
    c.send(b"GET /health HTTP/1.0\r\n\r\n");
    assert_eq!(c.response().status, 200);
    assert!(c.is_closed(), "HTTP/1.0 without keep-alive closes");

    // 100-continue: the interim answer, then the body is read
    let b = Backend::start("b");
    let body = format!("{{\"url\": \"http://{}\"}}", b.addr);
    let mut c = Client::connect(api.addr);
    c.send(format!("POST /backends HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
    assert_eq!(c.response().status, 100);
    c.send(body.as_bytes());
    let r = c.response();
    assert_eq!(r.status, 201, "{}", r.text());
    // a chunked body is read too
    let mut c = Client::connect(api.addr);
    c.send(b"PATCH /backends/1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"wei\r\n8\r\nght\": 4}\r\n0\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, json_of(&r)["weight"].clone()), (200, json!(4)));
}

// Proves the admin server holds at most MAX_CONNECTIONS connections at once: one more is
// answered 503 (the error shape, Retry-After) and closed, and once they go it serves again.
#[test]
fn connections_beyond_the_limit_get_503() {
    let proxy = quiet_proxy(&[], json!({}));
    let api = Api::of(&proxy);
    let held: Vec<Client> = (0..ferrule::admin::MAX_CONNECTIONS)
        .map(|_| Client::connect(api.addr))
        .collect();
    let probe = || send(api.addr, "GET", "/health", &[], None);
    wait_until(Duration::from_secs(5), "the limit is reached", || {
        probe().status == 503
    });
    let r = probe();
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(error_message(&json_of(&r)).starts_with("too many admin connections"));
    drop(held);
    wait_until(Duration::from_secs(5), "served again", || {
        probe().status == 200
    });
}
