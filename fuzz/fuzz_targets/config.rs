//! The config loader, `Config::from_json_str`: on arbitrary text (first byte even), and on the
//! repository's `config.json` changed by a list of structured edits (first byte odd: each edit
//! sets a known key, top-level, in `ssl` or in a backend entry, to a value from a pool of
//! boundary cases, or removes it).
//!
//! Invariants: no panic (whatever the text); every error displays; an accepted config serialises
//! to the file form that loads back to an equal `Config`; the settings the workers take from it
//! can be made. Built with `--cfg fuzzing`, host names resolve without DNS (`dns.rs`).
#![no_main]

use ferrule::Config;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const BASE: &str = include_str!("../../config.json");

const KEYS: &[&str] = &[
    "port",
    "admin_port",
    "bind",
    "admin_bind",
    "workers",
    "strategy",
    "hash_key",
    "trusted_proxies",
    "proxy_protocol",
    "ipv6_client_prefix",
    "backends",
    "backend_ca_file",
    "dns_refresh",
    "hosts_file",
    "backend_timeout",
    "connect_timeout",
    "client_header_timeout",
    "client_body_timeout",
    "send_timeout",
    "keepalive_timeout",
    "tunnel_timeout",
    "tls_handshake_timeout",
    "backend_keepalive",
    "backend_keepalive_timeout",
    "retries",
    "max_request_head",
    "max_uri_length",
    "max_connections",
    "max_conns",
    "queue_timeout",
    "buffer_size",
    "shutdown_timeout",
    "upgrade_socket",
    "health_check_frequency",
    "health_check_method",
    "health_check_path",
    "health_check_timeout",
    "health_check_expect",
    "health_check_rise",
    "health_check_fall",
    "max_fails",
    "fail_timeout",
    "fail_open",
    "admin_token",
    "enable_sticky_sessions",
    "sticky_session_ttl",
    "sticky_mode",
    "sticky_max_entries",
    "sticky_cookie_name",
    "sticky_cookie_strip",
    "sticky_cookie_secret",
    "ssl",
    "unknown_key",
];
const SSL_KEYS: &[&str] = &[
    "enabled",
    "cert_file",
    "key_file",
    "certificates",
    "redirect_http_port",
];
const BACKEND_KEYS: &[&str] = &[
    "url",
    "weight",
    "max_conns",
    "ca_file",
    "tls_skip_verify",
    "x",
];

fn value(i: u8) -> Value {
    match i % 48 {
        0 => json!(null),
        1 => json!(true),
        2 => json!(false),
        3 => json!(0),
        4 => json!(1),
        5 => json!(-1),
        6 => json!(65535),
        7 => json!(65536),
        8 => json!(u64::MAX),
        9 => json!(1.5),
        10 => json!(""),
        11 => json!("0s"),
        12 => json!("10s"),
        13 => json!("1h30m"),
        14 => json!("999999999999h"),
        15 => json!("-1s"),
        16 => json!("1ms"),
        17 => json!("abc"),
        18 => json!("http://127.0.0.1:1"),
        19 => json!("https://[::1]:443/"),
        20 => json!("http://localhost"),
        21 => json!("ftp://x"),
        22 => json!("round-robin"),
        23 => json!("consistent-hash"),
        24 => json!("header:X-User"),
        25 => json!("cookie:sid"),
        26 => json!("cookie"),
        27 => json!("ip"),
        28 => json!("200-399"),
        29 => json!("tcp"),
        30 => json!("/health"),
        31 => json!("certs/cert.pem"),
        32 => json!("/nonexistent"),
        33 => json!("/"),
        34 => json!("0.0.0.0"),
        35 => json!("::"),
        36 => json!("10.0.0.0/8"),
        37 => json!(["10.0.0.0/8", "::1"]),
        38 => json!([]),
        39 => json!({}),
        40 => json!([{ "url": "http://127.0.0.2:80" }]),
        41 => json!([{ "url": "http://127.0.0.1:80" }, { "url": "http://127.0.0.1:80" }]),
        42 => json!([{ "cert_file": "certs/cert.pem", "key_file": "certs/key.pem" }]),
        43 => json!({ "enabled": true }),
        44 => json!(4096),
        45 => json!(1 << 31),
        46 => json!("\u{0}"),
        _ => json!("x".repeat(300)),
    }
}

/// Applies edits of three bytes: where, which key, which value (odd `where` removes).
fn edit(doc: &mut Value, ops: &[u8]) {
    for op in ops.chunks_exact(3) {
        let (place, key, val) = (op[0], op[1], op[2]);
        let target = match place % 3 {
            0 => Some((doc.as_object_mut(), KEYS[usize::from(key) % KEYS.len()])),
            1 => Some((
                doc.get_mut("ssl").and_then(Value::as_object_mut),
                SSL_KEYS[usize::from(key) % SSL_KEYS.len()],
            )),
            _ => {
                let n = usize::from(place / 3) % 4;
                Some((
                    doc.get_mut("backends")
                        .and_then(|b| b.get_mut(n))
                        .and_then(Value::as_object_mut),
                    BACKEND_KEYS[usize::from(key) % BACKEND_KEYS.len()],
                ))
            }
        };
        if let Some((Some(obj), key)) = target {
            if val & 0x80 != 0 && val & 0x40 != 0 {
                obj.remove(key);
            } else {
                obj.insert(key.to_owned(), value(val));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = if mode & 1 == 0 {
        match std::str::from_utf8(rest) {
            Ok(t) => t.to_owned(),
            Err(_) => return,
        }
    } else {
        let mut doc: Value = serde_json::from_str(BASE).expect("config.json is JSON");
        edit(&mut doc, rest);
        doc.to_string()
    };
    match Config::from_json_str(&text) {
        Ok(config) => {
            let shown = serde_json::to_string(&config).expect("a config serialises");
            let again = Config::from_json_str(&shown)
                .unwrap_or_else(|e| panic!("its own file form is refused: {e}: {shown}"));
            assert_eq!(again, config, "{shown}");
            let _ = serde_json::to_string(&config.redacted());
            let _ = ferrule::context::Settings::from_config(&config);
            let _ = ferrule::descriptor_budget(1024, &config);
            let _ = config.pool.health_timeout();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
