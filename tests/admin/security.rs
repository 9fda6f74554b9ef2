//! Who may drive the admin API, and what it may be made to do (README, *Admin API*, *Security*):
//! the `Host` allow-list (DNS rebinding), other origins (CSRF), JSON-only bodies, slower answers
//! to wrong tokens, backends that would loop into ferrule or reach link-local addresses, files
//! named through the API, duplicates by address (409), keys given twice, ids beyond u64. The
//! browser's side of the CSRF fix is in `tests/dashboard.rs`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::common::tls::{TestCa, TlsBackend};
use super::common::{path_text, Backend, Client, Proxy, Response, TempDir};
use super::{error_message, json_of, quiet_proxy, send, Api};

/// `POST /backends` with `body` as is and exactly these `headers` (plus `Content-Length`).
fn post(admin: SocketAddr, headers: &[(&str, &str)], body: &str) -> Response {
    send(admin, "POST", "/backends", headers, Some(body.as_bytes()))
}

fn json_type() -> (&'static str, &'static str) {
    ("Content-Type", "application/json")
}

fn ids(api: &Api) -> Vec<u64> {
    api.get("/backends")["backends"]
        .as_array()
        .map(|l| l.iter().filter_map(|b| b["id"].as_u64()).collect())
        .unwrap_or_default()
}

// Proves the Host allow-list (DNS rebinding): a Host that is not localhost, a loopback address
// or admin_bind (with or without the admin port) gets 421 with the error shape, before the
// token, the routing and the body are looked at; the issue's request (Host evil.example, a
// text/plain body) adds nothing; no Host on HTTP/1.1 is a 400; admin_allowed_hosts adds names.
#[test]
fn the_host_is_checked_before_anything_else() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let proxy = quiet_proxy(&[a.addr], json!({}));
    let api = Api::of(&proxy);
    let port = api.addr.port();
    let add = json!({"url": format!("http://{}", b.addr), "weight": 10000}).to_string();

    let evil = format!("evil.example:{port}");
    let r = post(
        api.addr,
        &[("Host", evil.as_str()), ("Content-Type", "text/plain")],
        &add,
    );
    assert_eq!(r.status, 421, "{}", r.text());
    assert!(error_message(&json_of(&r)).starts_with("host: \"evil.example:"));
    let r = post(api.addr, &[("Host", evil.as_str()), json_type()], &add);
    assert_eq!(r.status, 421);
    for (method, path) in [
        ("GET", "/backends"),
        ("GET", "/config"),
        ("GET", "/nope"),
        ("DELETE", "/backends/0"),
        ("GET", "/"),
    ] {
        let r = send(api.addr, method, path, &[("Host", evil.as_str())], None);
        assert_eq!(r.status, 421, "{method} {path}: {}", r.text());
    }
    for host in [
        format!("localhost:{}", port.wrapping_add(1)),
        "127.1".to_owned(),
        format!("{}.nip.io:{port}", "127.0.0.1"),
        format!("localhost.evil.example:{port}"),
    ] {
        let r = send(
            api.addr,
            "GET",
            "/backends",
            &[("Host", host.as_str())],
            None,
        );
        assert_eq!(r.status, 421, "{host}");
    }
    let ok = [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".to_owned(),
        format!("[::1]:{port}"),
        format!("127.0.0.9:{port}"),
    ];
    for host in &ok {
        let r = send(
            api.addr,
            "GET",
            "/backends",
            &[("Host", host.as_str())],
            None,
        );
        assert_eq!(r.status, 200, "{host}: {}", r.text());
    }
    let mut c = Client::connect(api.addr);
    c.send(b"GET /backends HTTP/1.1\r\nConnection: close\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 400);
    assert!(error_message(&json_of(&r)).starts_with("host: missing"));
    let mut c = Client::connect(api.addr);
    c.send(b"GET /health HTTP/1.0\r\n\r\n");
    assert_eq!(c.response().status, 200, "HTTP/1.0 may leave Host out");
    assert_eq!(ids(&api), [0], "nothing was added");

    // before the token too; and admin_allowed_hosts
    let guarded = quiet_proxy(
        &[a.addr],
        json!({"admin_token": "0123456789abcdef", "admin_allowed_hosts": ["admin.example"]}),
    );
    let g = guarded.admin();
    let r = send(g, "GET", "/backends", &[("Host", evil.as_str())], None);
    assert_eq!(r.status, 421, "not 401: the Host first");
    let named = format!("admin.example:{}", g.port());
    let auth = ("Authorization", "Bearer 0123456789abcdef");
    assert_eq!(
        send(
            g,
            "GET",
            "/backends",
            &[("Host", named.as_str()), auth],
            None
        )
        .status,
        200
    );
    assert_eq!(
        send(
            g,
            "GET",
            "/backends",
            &[("Host", "ADMIN.example"), auth],
            None
        )
        .status,
        200
    );
}

// Proves a request with a body must be JSON: text/plain (what a page sends without a
// preflight), a form, no Content-Type get 415 and change nothing; application/json with a
// charset is fine.
#[test]
fn bodies_must_be_application_json() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let proxy = quiet_proxy(&[a.addr], json!({}));
    let api = Api::of(&proxy);
    let add = json!({"url": format!("http://{}", b.addr)}).to_string();
    for content_type in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        None,
    ] {
        let headers: Vec<(&str, &str)> =
            content_type.iter().map(|t| ("Content-Type", *t)).collect();
        let r = post(api.addr, &headers, &add);
        assert_eq!(r.status, 415, "{content_type:?}: {}", r.text());
        assert!(error_message(&json_of(&r)).starts_with("content-type: "));
        let weight = json!({"weight": 7}).to_string();
        let r = send(
            api.addr,
            "PATCH",
            "/backends/0",
            &headers,
            Some(weight.as_bytes()),
        );
        assert_eq!(r.status, 415, "PATCH with {content_type:?}");
        let alive = json!({"alive": false}).to_string();
        let r = send(
            api.addr,
            "PUT",
            "/backends/0/status",
            &headers,
            Some(alive.as_bytes()),
        );
        assert_eq!(r.status, 415, "PUT with {content_type:?}");
    }
    let zero = api.get("/backends/0");
    assert_eq!(
        (zero["weight"].clone(), zero["state"].clone()),
        (json!(1), json!("up"))
    );
    assert_eq!(ids(&api), [0], "nothing was added");
    let r = post(
        api.addr,
        &[("Content-Type", "Application/JSON; charset=utf-8")],
        &add,
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

// Proves a browser request from another origin is refused (CSRF): an Origin of another host,
// port or scheme, `null`, or Sec-Fetch-Site cross-site or same-site get 403 and change nothing;
// the admin's own origin and a request without those headers (curl) pass; the dashboard page
// itself may be opened from a link.
#[test]
fn other_origins_are_refused() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let proxy = quiet_proxy(&[a.addr], json!({}));
    let api = Api::of(&proxy);
    let port = api.addr.port();
    let add = json!({"url": format!("http://{}", b.addr)}).to_string();
    let own = format!("http://127.0.0.1:{port}");
    let others = [
        format!("http://127.0.0.5:{port}"),
        "http://127.0.0.1:3000".to_owned(),
        format!("https://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
        "null".to_owned(),
    ];
    for origin in &others {
        let r = post(api.addr, &[("Origin", origin.as_str()), json_type()], &add);
        assert_eq!(r.status, 403, "{origin}: {}", r.text());
        assert!(error_message(&json_of(&r)).starts_with("origin: "));
        let r = send(
            api.addr,
            "GET",
            "/backends",
            &[("Origin", origin.as_str())],
            None,
        );
        assert_eq!(r.status, 403, "GET with {origin}");
    }
    for site in ["cross-site", "same-site"] {
        let r = post(api.addr, &[("Sec-Fetch-Site", site), json_type()], &add);
        assert_eq!(r.status, 403, "{site}");
        assert!(error_message(&json_of(&r)).starts_with("sec-fetch-site: "));
    }
    assert_eq!(ids(&api), [0], "nothing was added");
    let page = send(
        api.addr,
        "GET",
        "/",
        &[("Sec-Fetch-Site", "cross-site")],
        None,
    );
    assert_eq!(page.status, 200, "the page opens from a link");
    let r = post(
        api.addr,
        &[
            ("Origin", own.as_str()),
            ("Sec-Fetch-Site", "same-origin"),
            json_type(),
        ],
        &add,
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

/// Sends `GET /stats` with `token` from `from`; the status and how long the answer took.
fn timed_get(admin: SocketAddr, from: IpAddr, token: &str) -> (u16, Duration) {
    let started = Instant::now();
    let mut c = Client::connect_from(admin, from);
    c.send(
        format!(
            "GET /stats HTTP/1.1\r\nHost: {admin}\r\nAuthorization: Bearer {token}\r\n\
             Connection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    let status = c.response().status;
    (status, started.elapsed())
}

// Proves wrong tokens from one address are answered later and later (the first two at once,
// then 250 ms, 500 ms, 1 s...), while another address, and the right token, are answered at
// once: a token cannot be guessed at wire speed, and nobody else waits for the guesser.
#[test]
fn wrong_tokens_are_answered_more_slowly() {
    let token = "0123456789abcdef-token";
    let proxy = quiet_proxy(&[], json!({"admin_token": token}));
    let admin = proxy.admin();
    let guesser: IpAddr = [127, 0, 0, 11].into();
    let other: IpAddr = [127, 0, 0, 12].into();
    let mut took = Vec::new();
    for i in 0..5 {
        let (status, t) = timed_get(admin, guesser, &format!("wrong-guess-number-{i}"));
        assert_eq!(status, 401);
        took.push(t);
    }
    assert!(took[0] < Duration::from_millis(200), "{took:?}");
    assert!(
        took[4] >= Duration::from_millis(900),
        "the fifth waits a second: {took:?}"
    );
    assert!(took[4] > took[3] && took[3] > took[2], "{took:?}");
    let (status, t) = timed_get(admin, other, "wrong-from-elsewhere");
    assert_eq!(status, 401);
    assert!(t < Duration::from_millis(200), "another address: {t:?}");
    let (status, t) = timed_get(admin, guesser, token);
    assert_eq!(status, 200);
    assert!(t < Duration::from_millis(200), "the right token: {t:?}");
    // and that forgets the guesses
    let (status, t) = timed_get(admin, guesser, "wrong-again");
    assert_eq!(status, 401);
    assert!(t < Duration::from_millis(200), "{t:?}");
}

// Proves POST /backends never makes ferrule proxy to itself: its proxy and admin addresses (the
// ports picked at start), also as 0.0.0.0, are refused with the field named; so is a
// link-local address (cloud metadata) unless allowed_backend_networks lists it; loopback
// backends stay allowed. Nothing is sent to the link-local address (no health checks, no
// traffic).
#[test]
fn backends_that_loop_or_reach_link_local_addresses_are_refused() {
    let a = Backend::start("a");
    let proxy = quiet_proxy(&[a.addr], json!({}));
    let api = Api::of(&proxy);
    let (proxy_port, admin_port) = (proxy.addr().port(), api.addr.port());
    for (url, says) in [
        (
            format!("http://127.0.0.1:{proxy_port}"),
            "own proxy listener",
        ),
        (format!("http://0.0.0.0:{proxy_port}"), "own proxy listener"),
        (
            format!("http://127.0.0.1:{admin_port}"),
            "own admin API listener",
        ),
        (
            format!("https://127.0.0.1:{admin_port}/"),
            "own admin API listener",
        ),
        ("http://169.254.169.254".to_owned(), "a link-local address"),
        ("http://[fe80::1]:80".to_owned(), "a link-local address"),
    ] {
        let (status, body) = api.call("POST", "/backends", Some(json!({"url": url})));
        assert_eq!(status, 400, "{url}: {body}");
        let message = error_message(&body);
        assert!(
            message.starts_with(&format!("url: {url:?}")) && message.contains(says),
            "{url}: {message}"
        );
    }
    assert_eq!(ids(&api), [0]);
    // another port of the same address is another server
    let b = Backend::start("b");
    assert_eq!(api.add(b.addr, json!({})), 1);

    let allowing = quiet_proxy(
        &[],
        json!({"allowed_backend_networks": ["169.254.169.254/32"]}),
    );
    let api = Api::of(&allowing);
    let (status, body) = api.call(
        "POST",
        "/backends",
        Some(json!({"url": "http://169.254.169.254", "weight": 1})),
    );
    assert_eq!(status, 201, "{body}");
    // disabled at once: never contacted
    assert_eq!(
        api.call("PATCH", "/backends/0", Some(json!({"state": "disabled"})))
            .0,
        200
    );
    let (status, _) = api.call(
        "POST",
        "/backends",
        Some(json!({"url": "http://169.254.169.253"})),
    );
    assert_eq!(status, 400, "only the network listed");
}

// Proves the duplicate check compares the scheme and the resolved address, not the URL's text:
// localhost, 127.0.0.1 with a trailing slash, an upper-case scheme are the backend already
// there (409, naming it); a legacy numeric host (127.1, 0x7f.1, 2130706433, 0177.0.0.1) is
// refused (400); the same address over https is another backend.
#[test]
fn the_same_backend_by_address_is_a_conflict() {
    let a = Backend::start("a");
    let proxy = quiet_proxy(&[a.addr], json!({}));
    let api = Api::of(&proxy);
    let port = a.addr.port();
    for url in [
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{port}/"),
        format!("HTTP://127.0.0.1:{port}"),
    ] {
        let (status, body) = api.call("POST", "/backends", Some(json!({"url": url})));
        assert_eq!(status, 409, "{url}: {body}");
        let message = error_message(&body);
        assert!(
            message.starts_with(&format!("url: {url:?} is the same backend as backend 0")),
            "{message}"
        );
    }
    for host in ["127.1", "0x7f.1", "2130706433", "0177.0.0.1"] {
        let url = format!("http://{host}:{port}");
        let (status, body) = api.call("POST", "/backends", Some(json!({"url": url})));
        assert_eq!(status, 400, "{url}: {body}");
        assert!(
            error_message(&body).contains("is a numeric host but not an IPv4 address"),
            "{body}"
        );
    }
    assert_eq!(ids(&api), [0]);
    let (status, body) = api.call(
        "POST",
        "/backends",
        Some(json!({"url": format!("https://127.0.0.1:{port}")})),
    );
    assert_eq!(status, 201, "another scheme: {body}");
}

// Proves a key given twice in a body is refused, at any depth, naming the key; and that an id
// too large for 64 bits is an unknown id (404), not a malformed one.
#[test]
fn duplicate_keys_and_huge_ids() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let proxy = quiet_proxy(&[a.addr], json!({}));
    let api = Api::of(&proxy);
    let url = format!("http://{}", b.addr);
    let twice = format!(r#"{{"url": "http://127.0.0.1:9", "url": "{url}"}}"#);
    let r = api.raw("POST", "/backends", Some(twice.as_bytes()));
    assert_eq!(r.status, 400);
    assert_eq!(
        error_message(&json_of(&r)),
        "url: given more than once (each key may appear once)"
    );
    let r = api.raw(
        "PATCH",
        "/backends/0",
        Some(br#"{"weight": 2, "weight": 3}"#),
    );
    assert_eq!(r.status, 400);
    assert!(error_message(&json_of(&r)).starts_with("weight: given more than once"));
    assert_eq!(ids(&api), [0]);
    assert_eq!(api.get("/backends/0")["weight"], 1);

    for id in ["18446744073709551616", "99999999999999999999999999"] {
        let (status, body) = api.call("GET", &format!("/backends/{id}"), None);
        assert_eq!(status, 404);
        assert_eq!(error_message(&body), format!("id: no backend with id {id}"));
    }
}

/// A proxy started from `dir/config.json` (so its directory is where API files may be).
fn proxy_in(dir: &Path, config: Value) -> Proxy {
    let path = dir.join("config.json");
    let mut config = config;
    if let Some(map) = config.as_object_mut() {
        for (k, v) in [
            ("port", json!(0)),
            ("admin_port", json!(0)),
            ("bind", json!("127.0.0.1")),
            ("workers", json!(1)),
            ("access_log", json!(false)),
            ("health_check_method", json!("none")),
        ] {
            map.entry(k).or_insert(v);
        }
    }
    std::fs::write(&path, config.to_string()).expect("write the config");
    let loaded = ferrule::Config::load(&path).expect("test config is valid");
    let handle = ferrule::start_file(&loaded, Some(path)).expect("proxy starts");
    Proxy { handle }
}

// Proves a ca_file given through the API must resolve to a file under the config file's
// directory or admin_files_dir: a path outside, a `..` out of it and a symlink inside pointing
// out are refused with one message, the same whether the file exists or not; inside, it is
// used, read afresh each time: a CA rotated in place is picked up by the next backend added.
#[test]
fn api_files_stay_under_the_allowed_directories_and_are_read_afresh() {
    let conf = TempDir::new("api-files-conf");
    let extra = TempDir::new("api-files-extra");
    let outside = TempDir::new("api-files-outside");
    let old_ca = TestCa::new("admin CA before rotation");
    let new_ca = TestCa::new("admin CA after rotation");
    let ca_path = conf.write("ca.pem", old_ca.pem());
    let secret = outside.write("secret.pem", new_ca.pem());
    let extra_ca = extra.write("extra.pem", new_ca.pem());
    std::os::unix::fs::symlink(&secret, conf.join("link.pem")).expect("a symlink");
    let proxy = proxy_in(
        &conf.path,
        json!({"admin_files_dir": path_text(&extra.path)}),
    );
    let api = Api::of(&proxy);
    let old_backend = TlsBackend::start(old_ca.issue(&["127.0.0.1"]).server_config());
    let new_backend = TlsBackend::start(new_ca.issue(&["127.0.0.1"]).server_config());

    let refused = |ca: String| {
        let body = json!({"url": new_backend.url(), "ca_file": ca});
        let (status, answer) = api.call("POST", "/backends", Some(body));
        assert_eq!(status, 400, "{ca}: {answer}");
        let message = error_message(&answer);
        assert!(message.starts_with("ca_file: "), "{message}");
        assert!(message.contains("is refused: files named through the admin API must be under"));
        // says nothing of the file: the message is the same with its name taken out
        message.replace(&ca, "<path>")
    };
    let messages = [
        refused(path_text(&secret)),
        refused(path_text(&outside.join("no-such.pem"))),
        refused(format!(
            "{}/../{}/secret.pem",
            conf.path.display(),
            dir_name(&outside.path)
        )),
        refused(path_text(&conf.join("link.pem"))),
        refused(path_text(&conf.join("missing.pem"))),
        refused("/etc/passwd".to_owned()),
    ];
    assert!(messages.iter().all(|m| *m == messages[0]), "{messages:#?}");
    assert!(!messages[0].contains("BEGIN") && !messages[0].contains("No such file"));
    assert!(api.get("/backends")["backends"]
        .as_array()
        .is_some_and(Vec::is_empty));

    // under the config's directory: used
    let body = json!({"url": old_backend.url(), "ca_file": path_text(&ca_path)});
    let (status, answer) = api.call("POST", "/backends", Some(body));
    assert_eq!(status, 201, "{answer}");
    assert_eq!(proxy.get("/before-rotation").status, 200);
    // the CA rotated in place: the next backend added with that file trusts the new one
    std::fs::write(&ca_path, new_ca.pem()).expect("rotate the CA");
    assert_eq!(
        api.call("PATCH", "/backends/0", Some(json!({"state": "disabled"})))
            .0,
        200
    );
    let body = json!({"url": new_backend.url(), "ca_file": path_text(&ca_path)});
    let (status, answer) = api.call("POST", "/backends", Some(body));
    assert_eq!(status, 201, "{answer}");
    let r = proxy.get("/after-rotation");
    assert_eq!(
        (r.status, r.text()),
        (200, "tls backend saw /after-rotation".to_owned()),
        "the rotated CA was read"
    );
    // under admin_files_dir: used too
    let third = TlsBackend::start(new_ca.issue(&["127.0.0.1"]).server_config());
    let body = json!({"url": third.url(), "ca_file": path_text(&extra_ca)});
    assert_eq!(api.call("POST", "/backends", Some(body)).0, 201);
}

fn dir_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .expect("a UTF-8 name")
        .to_owned()
}
