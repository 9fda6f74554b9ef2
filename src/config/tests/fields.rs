//! Every top-level key: types, ranges, defaults, unknown keys.

use super::*;

/// Every top-level key, in the order an unknown key's message lists them: the groups' order
/// (`groups.rs`), `backends` first among the pool's keys, `ssl` last.
const TOP_LEVEL_KEYS: &str = "port, admin_port, bind, admin_bind, workers, max_connections, \
     max_connections_per_ip, shutdown_timeout, upgrade_socket, trusted_proxies, proxy_protocol, \
     ipv6_client_prefix, backends, strategy, hash_key, max_conns, queue_timeout, retries, \
     fail_open, backend_timeout, connect_timeout, backend_ca_file, health_check_frequency, \
     health_check_method, health_check_path, health_check_timeout, health_check_expect, \
     health_check_rise, health_check_fall, max_fails, fail_timeout, enable_sticky_sessions, \
     sticky_session_ttl, sticky_mode, sticky_max_entries, sticky_cookie_name, sticky_cookie_strip, \
     sticky_cookie_secret, slow_start, retry_budget, outlier_detection, rate_limit, \
     rate_limit_exempt, client_header_timeout, client_body_timeout, send_timeout, \
     keepalive_timeout, tunnel_timeout, tls_handshake_timeout, buffer_size, max_request_head, \
     max_uri_length, max_header_count, max_body_size, backend_keepalive, \
     backend_keepalive_timeout, dns_refresh, hosts_file, admin_token, admin_allowed_hosts, \
     admin_files_dir, allowed_backend_networks, log_level, access_log, access_log_format, \
     request_id, http2, http2_max_concurrent_streams, http2_max_requests, rate_limit_max_keys, \
     pools, routes, ssl";

#[test]
fn duration_fields_name_the_field() {
    rejects(
        r#"{"health_check_frequency": "10"}"#,
        "health_check_frequency: \"10\" has no unit (use ms, s, m or h)",
    );
    rejects(
        r#"{"health_check_frequency": 10}"#,
        "health_check_frequency: durations are strings with a unit: write \"10s\", not 10",
    );
    rejects(
        r#"{"backend_timeout": 1.5}"#,
        "backend_timeout: expected a duration string such as \"30s\", found the number 1.5",
    );
    rejects(
        r#"{"send_timeout": true}"#,
        "send_timeout: expected a duration string such as \"30s\", found true",
    );
}

#[test]
fn every_duration_must_be_positive_and_bounded() {
    let timeouts = [
        "backend_timeout",
        "health_check_timeout",
        "fail_timeout",
        "queue_timeout",
        "connect_timeout",
        "client_header_timeout",
        "client_body_timeout",
        "send_timeout",
        "keepalive_timeout",
        "tunnel_timeout",
        "tls_handshake_timeout",
        "backend_keepalive_timeout",
        "shutdown_timeout",
    ];
    for key in timeouts {
        rejects(
            &format!(r#"{{"{key}": "0ms"}}"#),
            &format!("{key}: must be greater than zero"),
        );
        rejects(
            &format!(r#"{{"{key}": "24h1ms"}}"#),
            &format!("{key}: must be at most 24h"),
        );
        let config = parse(&format!(r#"{{"{key}": "24h"}}"#));
        assert_eq!(format!("{config:?}").matches("86400s").count(), 1, "{key}");
    }
    rejects(
        r#"{"sticky_session_ttl": "0s"}"#,
        "sticky_session_ttl: must be greater than zero",
    );
    rejects(
        r#"{"sticky_session_ttl": "721h"}"#,
        "sticky_session_ttl: must be at most 720h",
    );
    assert_eq!(
        parse(r#"{"sticky_session_ttl": "720h"}"#).pool.sticky.ttl,
        secs(30 * 24 * 3600)
    );
}

#[test]
fn durations_are_read_into_their_fields() {
    let config = parse(
        r#"{"health_check_frequency": "2s", "backend_timeout": "500ms",
            "connect_timeout": "1s", "client_header_timeout": "2s",
            "client_body_timeout": "3s", "send_timeout": "4s", "keepalive_timeout": "5s",
            "tunnel_timeout": "6s", "backend_keepalive_timeout": "7s", "tls_handshake_timeout": "9s",
            "shutdown_timeout": "8s", "sticky_session_ttl": "1m30s"}"#,
    );
    assert_eq!(config.pool.health.frequency, secs(2));
    assert_eq!(config.pool.upstream.backend_timeout, ms(500));
    assert_eq!(config.pool.upstream.connect_timeout, secs(1));
    assert_eq!(config.timeouts.client_header, secs(2));
    assert_eq!(config.timeouts.client_body, secs(3));
    assert_eq!(config.timeouts.send, secs(4));
    assert_eq!(config.timeouts.keepalive, secs(5));
    assert_eq!(config.timeouts.tunnel, secs(6));
    assert_eq!(config.timeouts.tls_handshake, secs(9));
    assert_eq!(config.keepalive.timeout, secs(7));
    assert_eq!(config.process.shutdown_timeout, secs(8));
    assert_eq!(config.pool.sticky.ttl, secs(90));
}

// ---- whole documents ----

#[test]
fn empty_object_gives_every_default() {
    assert_eq!(parse("{}"), defaults());
    assert_eq!(parse(" {\n} \n"), defaults());
}

#[test]
fn null_means_default() {
    let keys = [
        "port",
        "admin_port",
        "bind",
        "admin_bind",
        "workers",
        "strategy",
        "backends",
        "backend_ca_file",
        "health_check_frequency",
        "health_check_method",
        "health_check_path",
        "backend_timeout",
        "connect_timeout",
        "client_header_timeout",
        "client_body_timeout",
        "send_timeout",
        "keepalive_timeout",
        "tunnel_timeout",
        "tls_handshake_timeout",
        "backend_keepalive_timeout",
        "backend_keepalive",
        "retries",
        "max_request_head",
        "max_uri_length",
        "max_connections",
        "max_connections_per_ip",
        "max_header_count",
        "max_body_size",
        "buffer_size",
        "shutdown_timeout",
        "enable_sticky_sessions",
        "sticky_session_ttl",
        "ssl",
    ];
    let fields: Vec<String> = keys.iter().map(|k| format!("{k:?}: null")).collect();
    assert_eq!(parse(&format!("{{{}}}", fields.join(", "))), defaults());
    let ssl = r#"{"ssl": {"enabled": null, "cert_file": null, "key_file": null,
                         "certificates": null, "redirect_http_port": null}}"#;
    assert_eq!(parse(ssl), defaults());
    let config = parse(
        r#"{"backends": [{"url": "http://127.0.0.1", "weight": null, "ca_file": null,
                          "tls_skip_verify": null}]}"#,
    );
    assert_eq!(config.pool.backends[0].weight, 1);
    assert_eq!(config.pool.backend_tls, [BackendTls::default()]);
}

#[test]
fn full_example_config() {
    let config = parse(
        r#"{
            "port": 8080,
            "admin_port": 8081,
            "strategy": "weighted-round-robin",
            "backends": [
                {"url": "http://localhost:8082", "weight": 5},
                {"url": "http://localhost:8083", "weight": 3},
                {"url": "http://localhost:8084", "weight": 2}
            ],
            "health_check_frequency": "10s",
            "health_check_method": "http",
            "health_check_path": "/health",
            "backend_timeout": "60s",
            "enable_sticky_sessions": false,
            "sticky_session_ttl": "1h",
            "ssl": {"enabled": false, "cert_file": "certs/cert.pem", "key_file": "certs/key.pem"}
        }"#,
    );
    // "localhost" is resolved by the system; it must be a loopback address on the right port.
    let mut expected_backends = Vec::new();
    for (backend, (port, weight)) in
        config
            .pool
            .backends
            .iter()
            .zip([(8082, 5), (8083, 3), (8084, 2)])
    {
        assert!(backend.addr.ip().is_loopback(), "{backend:?}");
        assert_eq!(backend.addr.port(), port);
        expected_backends.push(BackendConfig {
            url: format!("http://localhost:{port}"),
            scheme: Scheme::Http,
            host: "localhost".into(),
            port,
            addr: backend.addr,
            weight,
            max_conns: None,
        });
    }
    let mut expected = defaults();
    expected.pool.balance.strategy = Strategy::WeightedRoundRobin;
    expected.pool.backends = expected_backends;
    expected.pool.backend_tls = vec![BackendTls::default(); 3];
    expected.ssl = SslConfig {
        enabled: false,
        cert_file: "certs/cert.pem".into(),
        key_file: "certs/key.pem".into(),
        certificates: Vec::new(),
        redirect_http_port: None,
        hsts: None,
    };
    assert_eq!(config, expected);
}

#[test]
fn every_field_is_read() {
    let config = parse(
        r#"{"port": 9000, "admin_port": 9001, "bind": "::", "admin_bind": "::1",
            "workers": 3, "strategy": "least-conn", "health_check_method": "tcp",
            "health_check_path": "/ping", "backend_keepalive": 0, "retries": 10,
            "buffer_size": 65536, "max_request_head": 32768, "max_uri_length": 4096,
            "max_connections": 100, "enable_sticky_sessions": true}"#,
    );
    assert_eq!(config.process.port, 9000);
    assert_eq!(config.process.admin_port, 9001);
    assert_eq!(config.process.bind, "::".parse::<IpAddr>().unwrap());
    assert_eq!(config.process.admin_bind, "::1".parse::<IpAddr>().unwrap());
    assert_eq!(config.process.workers, 3);
    assert_eq!(config.pool.balance.strategy, Strategy::LeastConn);
    assert_eq!(config.pool.health.method, HealthCheckMethod::Tcp);
    assert_eq!(config.pool.health.path, "/ping");
    assert_eq!(config.keepalive.connections, 0);
    assert_eq!(config.pool.balance.retries, 10);
    assert_eq!(config.limits.buffer_size, 65536);
    assert_eq!(config.limits.max_request_head, 32768);
    assert_eq!(config.limits.max_uri_length, 4096);
    assert_eq!(config.process.max_connections, 100);
    assert!(config.pool.sticky.enabled);
    assert_eq!(
        parse(r#"{"strategy": "round-robin"}"#)
            .pool
            .balance
            .strategy,
        Strategy::RoundRobin
    );
}

#[test]
fn malformed_json_shows_line_and_column() {
    rejects(
        "{\n  \"port\": 8080\n  \"bind\": \"0.0.0.0\"\n}",
        "config is not valid JSON: expected `,` or `}` at line 3 column 3",
    );
    rejects_starting(
        "",
        "config is not valid JSON: EOF while parsing a value at line 1",
    );
}

#[test]
fn top_level_must_be_an_object() {
    rejects("[]", "config must be a JSON object, found an array");
    rejects("42", "config must be a JSON object, found the number 42");
    rejects("null", "config must be a JSON object, found null");
}

// ---- unknown keys and types ----

#[test]
fn unknown_keys_are_named_with_their_path() {
    rejects(
        r#"{"ssl": {"enabled": false, "cert": "x"}}"#,
        "ssl.cert: unknown key (expected one of: enabled, cert_file, key_file, certificates, \
         redirect_http_port, hsts)",
    );
    rejects(
        r#"{"backends": [{"url": "http://127.0.0.1:1"}, {"url": "http://127.0.0.1:2", "wieght": 2}]}"#,
        "backends[1].wieght: unknown key (did you mean \"weight\"?)",
    );
    rejects(
        r#"{"backends": [{"url": "http://127.0.0.1:1", "path": "/x"}]}"#,
        "backends[0].path: unknown key (expected one of: url, weight, max_conns, ca_file, \
         tls_skip_verify)",
    );
    rejects(
        r#"{"prot": 80}"#,
        "prot: unknown key (did you mean \"port\"?)",
    );
    // The known keys are listed in the groups' order (`groups.rs`), the README's order.
    rejects(
        r#"{"ssl_enabled": true}"#,
        &format!("ssl_enabled: unknown key (expected one of: {TOP_LEVEL_KEYS})"),
    );
    rejects(
        r#"{"a key\n": 1}"#,
        &format!("\"a key\\n\": unknown key (expected one of: {TOP_LEVEL_KEYS})"),
    );
}

#[test]
fn unknown_keys_are_reported_before_checks_between_fields() {
    // The typo, not the mismatch it causes, is what the user needs to see.
    rejects(
        r#"{"bufer_size": 65536, "max_request_head": 32768}"#,
        "bufer_size: unknown key (did you mean \"buffer_size\"?)",
    );
    rejects(
        r#"{"ssl": {"enabled": true, "cert": "a.pem", "key_file": "b.pem"}}"#,
        "ssl.cert: unknown key (expected one of: enabled, cert_file, key_file, certificates, \
         redirect_http_port, hsts)",
    );
}

#[test]
fn wrong_types_name_the_expected_type() {
    rejects(
        r#"{"port": "8080"}"#,
        "port: expected an integer, found the string \"8080\"",
    );
    rejects(
        r#"{"port": 8080.0}"#,
        "port: expected an integer, found the number 8080.0",
    );
    rejects(
        r#"{"workers": 1.5}"#,
        "workers: expected an integer, found the number 1.5",
    );
    rejects(
        r#"{"retries": [1]}"#,
        "retries: expected an integer, found an array",
    );
    rejects(
        r#"{"bind": 0}"#,
        "bind: expected a string, found the number 0",
    );
    rejects(
        r#"{"strategy": {}}"#,
        "strategy: expected a string, found an object",
    );
    rejects(
        r#"{"enable_sticky_sessions": "yes"}"#,
        "enable_sticky_sessions: expected true or false, found the string \"yes\"",
    );
    rejects(r#"{"ssl": true}"#, "ssl: expected an object, found true");
    rejects(
        r#"{"ssl": {"enabled": "true"}}"#,
        "ssl.enabled: expected true or false, found the string \"true\"",
    );
    rejects(
        r#"{"ssl": {"cert_file": 1}}"#,
        "ssl.cert_file: expected a string, found the number 1",
    );
    rejects(
        r#"{"backends": {}}"#,
        "backends: expected an array, found an object",
    );
    rejects(
        r#"{"backends": ["http://127.0.0.1"]}"#,
        "backends[0]: expected an object, found the string \"http://127.0.0.1\"",
    );
    rejects(
        r#"{"backends": [{"url": 8082}]}"#,
        "backends[0].url: expected a string, found the number 8082",
    );
    rejects(
        r#"{"backends": [{"url": "http://127.0.0.1", "weight": "5"}]}"#,
        "backends[0].weight: expected an integer, found the string \"5\"",
    );
}

// ---- ranges and choices ----

#[test]
fn integer_ranges() {
    let cases = [
        (r#"{"port": 65536}"#, "port: must be at most 65535"),
        (r#"{"port": -1}"#, "port: must be at least 0"),
        (r#"{"port": 1e30}"#, "port: must be at most 65535"),
        (r#"{"port": -1e30}"#, "port: must be at least 0"),
        (
            r#"{"admin_port": 70000}"#,
            "admin_port: must be at most 65535",
        ),
        (r#"{"workers": 0}"#, "workers: must be at least 1"),
        (r#"{"workers": 1025}"#, "workers: must be at most 1024"),
        (
            r#"{"backend_keepalive": 100001}"#,
            "backend_keepalive: must be at most 100000",
        ),
        (
            r#"{"backend_keepalive": -1}"#,
            "backend_keepalive: must be at least 0",
        ),
        (r#"{"retries": 11}"#, "retries: must be at most 10"),
        (
            r#"{"buffer_size": 4095}"#,
            "buffer_size: must be at least 4096",
        ),
        (
            r#"{"buffer_size": 16777217}"#,
            "buffer_size: must be at most 16777216",
        ),
        (
            r#"{"max_request_head": 1023}"#,
            "max_request_head: must be at least 1024",
        ),
        (
            r#"{"buffer_size": 16384, "max_request_head": 16385}"#,
            "max_request_head: must not exceed buffer_size (16384)",
        ),
        (
            r#"{"max_uri_length": 255}"#,
            "max_uri_length: must be at least 256",
        ),
        (
            r#"{"max_uri_length": 16385}"#,
            "max_uri_length: must not exceed max_request_head (16384)",
        ),
        (
            r#"{"max_request_head": 2048, "max_uri_length": 4096}"#,
            "max_uri_length: must not exceed max_request_head (2048)",
        ),
        (
            r#"{"max_connections": 0}"#,
            "max_connections: must be at least 1",
        ),
        (
            r#"{"max_connections": 1000001}"#,
            "max_connections: must be at most 1000000",
        ),
        (
            r#"{"max_header_count": 0}"#,
            "max_header_count: must be at least 1",
        ),
        (
            r#"{"max_header_count": 257}"#,
            "max_header_count: must be at most 256",
        ),
        (
            r#"{"max_body_size": -1}"#,
            "max_body_size: must be at least 0",
        ),
        (
            r#"{"backends": [{"url": "http://127.0.0.1", "weight": 10001}]}"#,
            "backends[0].weight: must be at most 10000",
        ),
    ];
    for (json, message) in cases {
        rejects(json, message);
    }
    rejects(
        &backends(&[
            "http://127.0.0.1:1",
            "http://127.0.0.1:2",
            "http://127.0.0.1:3",
        ])
        .replace(
            r#""http://127.0.0.1:3"}"#,
            r#""http://127.0.0.1:3", "weight": 0}"#,
        ),
        "backends[2].weight: must be at least 1",
    );
}

#[test]
fn range_edges_are_accepted() {
    let config = parse(
        r#"{"port": 65535, "admin_port": 0, "workers": 1024, "backend_keepalive": 100000,
            "retries": 0, "buffer_size": 16777216, "max_request_head": 16777216,
            "max_uri_length": 256, "max_connections": 1000000}"#,
    );
    assert_eq!(
        (
            config.process.port,
            config.process.admin_port,
            config.process.workers
        ),
        (65535, 0, 1024)
    );
    let config = parse(r#"{"buffer_size": 4096, "max_request_head": 1024, "workers": 1}"#);
    assert_eq!(
        (config.limits.max_request_head, config.limits.max_uri_length),
        (1024, 1024)
    );
}

#[test]
fn a_small_buffer_lowers_the_default_limits() {
    let config = parse(r#"{"buffer_size": 4096}"#);
    assert_eq!(config.limits.max_request_head, 4096);
    assert_eq!(config.limits.max_uri_length, 4096);
}

#[test]
fn ports_must_differ_unless_both_zero() {
    rejects(
        r#"{"admin_port": 8080}"#,
        "admin_port: must differ from port (8080)",
    );
    rejects(
        r#"{"port": 9000, "admin_port": 9000}"#,
        "admin_port: must differ from port (9000)",
    );
    let config = parse(r#"{"port": 0, "admin_port": 0}"#);
    assert_eq!((config.process.port, config.process.admin_port), (0, 0));
}

#[test]
fn bind_addresses() {
    rejects(
        r#"{"bind": "localhost"}"#,
        "bind: \"localhost\" is not an IP address (such as \"0.0.0.0\" or \"::\")",
    );
    rejects(
        r#"{"admin_bind": "127.0.0.1:8081"}"#,
        "admin_bind: \"127.0.0.1:8081\" is not an IP address (such as \"0.0.0.0\" or \"::\")",
    );
}

#[test]
fn strategies_and_methods() {
    rejects(
        r#"{"strategy": "fastest"}"#,
        "strategy: unknown strategy \"fastest\" (expected round-robin, weighted-round-robin, \
         least-conn, p2c, random or consistent-hash)",
    );
    for name in [
        "round-robin",
        "weighted-round-robin",
        "least-conn",
        "p2c",
        "random",
    ] {
        assert_eq!(
            parse(&format!(r#"{{"strategy": "{name}"}}"#))
                .pool
                .balance
                .strategy
                .name(),
            name
        );
    }
    assert_eq!(
        parse(r#"{"strategy": "consistent-hash"}"#)
            .pool
            .balance
            .strategy,
        Strategy::ConsistentHash
    );
    rejects(
        r#"{"health_check_method": "icmp"}"#,
        "health_check_method: unknown method \"icmp\" (expected http, tcp or none)",
    );
}

#[test]
fn health_check_path() {
    rejects(
        r#"{"health_check_path": "health"}"#,
        "health_check_path: \"health\" must start with \"/\"",
    );
    rejects(
        r#"{"health_check_path": "/a b"}"#,
        "health_check_path: \"/a b\" must not contain spaces or control characters",
    );
    assert_eq!(parse(r#"{"health_check_path": "/"}"#).pool.health.path, "/");
}

#[test]
fn balancing_keys() {
    assert_eq!(parse("{}").pool.balance.hash_key, HashKey::ClientIp);
    assert_eq!(
        parse(r#"{"hash_key": "header:X-User"}"#)
            .pool
            .balance
            .hash_key,
        HashKey::Header("X-User".into())
    );
    assert_eq!(
        parse(r#"{"hash_key": "cookie:sid"}"#).pool.balance.hash_key,
        HashKey::Cookie("sid".into())
    );
    for bad in ["ip", "header:", "cookie:a b", "query:x", "header:a:b"] {
        let message = error(&format!(r#"{{"hash_key": "{bad}"}}"#));
        assert!(
            message.starts_with(&format!("hash_key: \"{bad}\" is not a hash key")),
            "{message}"
        );
    }
    let config = parse(
        r#"{"max_conns": 10, "queue_timeout": "2s",
            "backends": [{"url": "http://127.0.0.1:1", "max_conns": 3}, {"url": "http://127.0.0.1:2"}]}"#,
    );
    assert_eq!(
        (
            config.pool.balance.max_conns,
            config.pool.balance.queue_timeout
        ),
        (10, secs(2))
    );
    assert_eq!(config.pool.backends[0].max_conns, Some(3));
    assert_eq!(config.pool.backends[1].max_conns, None);
    rejects(r#"{"max_conns": -1}"#, "max_conns: must be at least 0");
}

#[test]
fn sticky_settings() {
    let config = parse(
        r#"{"enable_sticky_sessions": true, "sticky_mode": "cookie", "sticky_max_entries": 10,
            "sticky_cookie_name": "srv", "sticky_cookie_strip": true}"#,
    );
    assert_eq!(config.pool.sticky.mode, StickyMode::Cookie);
    assert_eq!(config.pool.sticky.max_entries, 10);
    assert_eq!(config.pool.sticky.cookie_name, "srv");
    assert!(config.pool.sticky.cookie_strip);
    rejects(
        r#"{"sticky_mode": "url"}"#,
        "sticky_mode: unknown sticky mode \"url\" (expected ip or cookie)",
    );
    rejects(
        r#"{"sticky_cookie_name": "a=b"}"#,
        "sticky_cookie_name: \"a=b\" is not a cookie name (letters, digits and !#$%&'*+-.^_`|~ only)",
    );
    rejects(
        r#"{"sticky_max_entries": 0}"#,
        "sticky_max_entries: must be at least 1",
    );
}

#[test]
fn health_check_settings() {
    let config = parse("{}");
    assert!(config.pool.health.active());
    assert_eq!(config.pool.health_timeout(), secs(10));
    let config = parse(r#"{"health_check_frequency": "0s", "backend_timeout": "3s"}"#);
    assert!(!config.pool.health.active());
    assert_eq!(config.pool.health.frequency, Duration::ZERO);
    assert_eq!(config.pool.health_timeout(), secs(3));
    assert!(!parse(r#"{"health_check_method": "none"}"#)
        .pool
        .health
        .active());
    let config = parse(
        r#"{"health_check_timeout": "2s", "health_check_expect": "200, 204-206,5xx",
            "health_check_rise": 1, "health_check_fall": 5, "max_fails": 0,
            "fail_timeout": "30s", "fail_open": true}"#,
    );
    assert_eq!(config.pool.health_timeout(), secs(2));
    let expect = &config.pool.health.expect;
    assert!(expect.contains(200) && expect.contains(205) && expect.contains(503));
    assert!(!expect.contains(201) && !expect.contains(404));
    assert_eq!(
        (
            config.pool.health.rise,
            config.pool.health.fall,
            config.pool.passive.max_fails
        ),
        (1, 5, 0)
    );
    assert!(config.pool.balance.fail_open);
    assert!(StatusSet::default().contains(302) && !StatusSet::default().contains(404));
    for bad in ["", "2x", "600", "299-200", "20", "abc", "2xx;3xx"] {
        let message = error(&format!(r#"{{"health_check_expect": "{bad}"}}"#));
        assert!(message.starts_with("health_check_expect: "), "{message}");
    }
    rejects(
        r#"{"health_check_rise": 0}"#,
        "health_check_rise: must be at least 1",
    );
    rejects(
        r#"{"health_check_method": "icmp"}"#,
        "health_check_method: unknown method \"icmp\" (expected http, tcp or none)",
    );
}

#[test]
fn admin_token_is_checked_and_redacted() {
    let config = parse(r#"{"admin_token": "s3cret-s3cret-s3cret"}"#);
    assert_eq!(config.admin.token.as_deref(), Some("s3cret-s3cret-s3cret"));
    let shown = serde_json::to_value(config.redacted()).unwrap();
    assert_eq!(shown["admin_token"], REDACTED);
    assert!(!shown.to_string().contains("s3cret"));
    rejects(
        r#"{"admin_token": ""}"#,
        "admin_token: must not be empty (leave the key out for no token)",
    );
    rejects(
        r#"{"admin_token": "a b"}"#,
        "admin_token: must be printable ASCII without spaces",
    );
}

#[test]
fn sticky_cookie_secret_is_checked_and_redacted() {
    assert_eq!(parse("{}").pool.sticky.cookie_secret, None);
    let secret = "a sticky secret, 31 characters";
    let config = parse(&format!(r#"{{"sticky_cookie_secret": "{secret}"}}"#));
    assert_eq!(config.pool.sticky.cookie_secret.as_deref(), Some(secret));
    let shown = serde_json::to_value(config.redacted()).unwrap();
    assert_eq!(shown["sticky_cookie_secret"], REDACTED);
    assert!(!shown.to_string().contains("sticky secret"));
    // written back whole (the config file form, not /config)
    let text = serde_json::to_string(&config).unwrap();
    assert_eq!(
        Config::from_json_str(&text)
            .unwrap()
            .pool
            .sticky
            .cookie_secret,
        config.pool.sticky.cookie_secret
    );
    assert!(!serde_json::to_string(&parse("{}"))
        .unwrap()
        .contains("sticky_cookie_secret"));
    assert_eq!(
        parse(r#"{"sticky_cookie_secret": "0123456789abcdef"}"#)
            .pool
            .sticky
            .cookie_secret
            .as_deref(),
        Some("0123456789abcdef")
    );
    rejects(
        r#"{"sticky_cookie_secret": "0123456789abcde"}"#,
        "sticky_cookie_secret: must be at least 16 characters (it has 15): a short secret can be \
         guessed",
    );
    rejects(
        r#"{"sticky_cookie_secret": ""}"#,
        "sticky_cookie_secret: must be at least 16 characters (it has 0): a short secret can be \
         guessed",
    );
    rejects(
        r#"{"sticky_cookie_secret": "0123456789abcdef\n"}"#,
        "sticky_cookie_secret: must not contain control characters",
    );
    rejects(
        r#"{"sticky_cookie_secret": 1234567890123456}"#,
        "sticky_cookie_secret: expected a string, found the number 1234567890123456",
    );
}

#[test]
fn ipv6_client_prefix_is_read_checked_and_written_back() {
    assert_eq!(parse("{}").identity.ipv6_client_prefix, 64);
    for n in [1u8, 48, 56, 64, 128] {
        let config = parse(&format!(r#"{{"ipv6_client_prefix": {n}}}"#));
        assert_eq!(config.identity.ipv6_client_prefix, n);
        let text = serde_json::to_string(&config).unwrap();
        assert_eq!(
            Config::from_json_str(&text)
                .unwrap()
                .identity
                .ipv6_client_prefix,
            n
        );
    }
    rejects(
        r#"{"ipv6_client_prefix": 0}"#,
        "ipv6_client_prefix: must be at least 1",
    );
    rejects(
        r#"{"ipv6_client_prefix": 129}"#,
        "ipv6_client_prefix: must be at most 128",
    );
    rejects(
        r#"{"ipv6_client_prefix": "64"}"#,
        "ipv6_client_prefix: expected an integer, found the string \"64\"",
    );
    rejects(
        r#"{"ipv6_client_prefix": 64.5}"#,
        "ipv6_client_prefix: expected an integer, found the number 64.5",
    );
}

#[test]
fn client_identity_settings() {
    let config = parse(
        r#"{"trusted_proxies": ["10.0.0.0/8", "192.168.1.7", "::1/128"], "proxy_protocol": true}"#,
    );
    assert!(config.identity.proxy_protocol);
    assert!(config
        .identity
        .trusted_proxies
        .contains("10.2.3.4".parse().unwrap()));
    assert!(config
        .identity
        .trusted_proxies
        .contains("192.168.1.7".parse().unwrap()));
    assert!(!config
        .identity
        .trusted_proxies
        .contains("192.168.1.8".parse().unwrap()));
    let message = error(r#"{"trusted_proxies": ["10.0.0.0/8", "10.1.0.0/8"]}"#);
    assert!(message.starts_with("trusted_proxies[1]: "), "{message}");
    let message = error(r#"{"trusted_proxies": ["nope"]}"#);
    assert!(message.starts_with("trusted_proxies[0]: "), "{message}");
    assert!(parse(r#"{"proxy_protocol": true}"#)
        .warnings()
        .iter()
        .any(|w| w.starts_with("proxy_protocol is on but trusted_proxies is empty")));
    // serialised and read back to the same list
    let text = serde_json::to_string(&config).unwrap();
    assert_eq!(
        Config::from_json_str(&text)
            .unwrap()
            .identity
            .trusted_proxies,
        config.identity.trusted_proxies
    );
}

#[test]
fn upgrade_socket_defaults_from_the_bind_address_and_port_and_can_be_turned_off() {
    let dir = super::super::default_upgrade_dir(
        std::env::var_os("XDG_RUNTIME_DIR").as_deref(),
        // SAFETY: getuid has no preconditions and cannot fail.
        unsafe { libc::getuid() },
        &std::env::temp_dir(),
    );
    let derived = |name: &str| dir.join(name).to_string_lossy().into_owned();
    assert_eq!(
        parse("{}").process.upgrade_socket,
        Some(derived("ferrule-0.0.0.0-8080.sock"))
    );
    assert_eq!(
        parse(r#"{"port": 9000, "bind": "127.0.0.2"}"#)
            .process
            .upgrade_socket,
        Some(derived("ferrule-127.0.0.2-9000.sock"))
    );
    assert_eq!(
        parse(r#"{"port": 9000, "bind": "::1"}"#)
            .process
            .upgrade_socket,
        Some(derived("ferrule-[::1]-9000.sock"))
    );
    // port 0 is a free port picked by the kernel: no successor could find it
    assert_eq!(parse(r#"{"port": 0}"#).process.upgrade_socket, None);
    assert_eq!(
        parse(r#"{"upgrade_socket": false}"#).process.upgrade_socket,
        None
    );
    assert_eq!(
        parse(r#"{"upgrade_socket": ""}"#).process.upgrade_socket,
        None
    );
    let config = parse(r#"{"port": 0, "upgrade_socket": "/run/ferrule/up.sock"}"#);
    assert_eq!(
        config.process.upgrade_socket.as_deref(),
        Some("/run/ferrule/up.sock")
    );
    rejects(
        r#"{"upgrade_socket": true}"#,
        "upgrade_socket: expected a unix socket path, or false for none, found true",
    );
    rejects(
        r#"{"upgrade_socket": 8}"#,
        "upgrade_socket: expected a unix socket path, or false for none, found the number 8",
    );
    let long = format!(r#"{{"upgrade_socket": "/{}"}}"#, "x".repeat(107));
    rejects(
        &long,
        "upgrade_socket: the path is 108 bytes; a unix socket path is at most 107",
    );
    // serialised and read back: the path, or false
    for config in [config, parse(r#"{"upgrade_socket": false}"#)] {
        let text = serde_json::to_string(&config).unwrap();
        assert_eq!(Config::from_json_str(&text).unwrap(), config);
    }
}

// Proves where the default upgrade socket goes: `$XDG_RUNTIME_DIR` when set (and absolute), else
// `/run/ferrule` for root, else a per-user directory under the temp directory; its name holds
// the bind address and the port, and a path too long for a unix socket is no default at all.
#[test]
fn the_default_upgrade_socket_lives_in_a_directory_of_its_user() {
    use std::ffi::OsStr;
    use std::path::{Path, PathBuf};
    let tmp = Path::new("/tmp");
    let dir = super::super::default_upgrade_dir;
    assert_eq!(
        dir(Some(OsStr::new("/run/user/1000")), 1000, tmp),
        PathBuf::from("/run/user/1000")
    );
    assert_eq!(
        dir(Some(OsStr::new("/run/user/0")), 0, tmp),
        PathBuf::from("/run/user/0")
    );
    assert_eq!(dir(None, 0, tmp), PathBuf::from("/run/ferrule"));
    assert_eq!(dir(None, 1000, tmp), PathBuf::from("/tmp/ferrule-1000"));
    // a relative XDG_RUNTIME_DIR is invalid (the spec): ignored
    assert_eq!(
        dir(Some(OsStr::new("run/me")), 1000, tmp),
        PathBuf::from("/tmp/ferrule-1000")
    );
    assert_eq!(
        dir(Some(OsStr::new("")), 1000, tmp),
        PathBuf::from("/tmp/ferrule-1000")
    );

    let socket = super::super::groups::upgrade_socket_in;
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    assert_eq!(
        socket(Path::new("/run/ferrule"), ip("127.0.0.1"), 8080).as_deref(),
        Some("/run/ferrule/ferrule-127.0.0.1-8080.sock")
    );
    assert_eq!(
        socket(Path::new("/tmp/ferrule-1000"), ip("::"), 443).as_deref(),
        Some("/tmp/ferrule-1000/ferrule-[::]-443.sock")
    );
    assert_eq!(socket(Path::new("/run/ferrule"), ip("127.0.0.1"), 0), None);
    let deep = format!("/{}", "d".repeat(90));
    assert_eq!(socket(Path::new(&deep), ip("127.0.0.1"), 8080), None);
}

#[test]
fn traffic_control_keys_name_the_field() {
    rejects(
        r#"{"retry_budget": 101}"#,
        "retry_budget: must be at most 100",
    );
    rejects(
        r#"{"slow_start": "5"}"#,
        "slow_start: \"5\" has no unit (use ms, s, m or h)",
    );
    rejects(
        r#"{"outlier_detection": {"consecutive_5xx": 0}}"#,
        "outlier_detection.consecutive_5xx: must be at least 1",
    );
    rejects(
        r#"{"outlier_detection": true}"#,
        "outlier_detection: expected an object or false, found true",
    );
    rejects(
        r#"{"outlier_detection": {"base": "1s"}}"#,
        "outlier_detection.base: unknown key (expected one of: consecutive_5xx, base_ejection, \
         max_ejected_percent)",
    );
    rejects(
        r#"{"pools": {"api": {"backends": [], "outlier_detection": {"max_ejected_percent": 120}}}}"#,
        "pools.api.outlier_detection.max_ejected_percent: must be at most 100",
    );
}

#[test]
fn traffic_control_defaults_and_a_pool_that_turns_ejection_off() {
    let c = parse(r#"{}"#);
    assert_eq!(c.pool.traffic.slow_start, Duration::ZERO);
    assert_eq!(c.pool.traffic.retry_budget, 20);
    assert_eq!(c.pool.traffic.outlier_detection, None);
    let c = parse(
        r#"{"outlier_detection": {"consecutive_5xx": 7}, "slow_start": "30s",
            "pools": {"a": {"backends": []}, "b": {"backends": [], "outlier_detection": false}}}"#,
    );
    let top = c.pool.traffic.outlier_detection.clone();
    assert_eq!(
        top,
        Some(Outlier {
            consecutive_5xx: 7,
            base_ejection: Duration::from_secs(30),
            max_ejected_percent: 10,
        })
    );
    let pool = |name: &str| {
        c.pools
            .iter()
            .find(|p| p.name == name)
            .map(|p| &p.pool.traffic)
    };
    assert_eq!(
        pool("a").map(|t| t.outlier_detection.clone()),
        Some(top),
        "inherited"
    );
    assert_eq!(
        pool("a").map(|t| t.slow_start),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        pool("b").map(|t| t.outlier_detection.clone()),
        Some(None),
        "turned off"
    );
}

#[test]
fn http2_max_requests_is_a_count_with_zero_for_no_limit() {
    assert_eq!(defaults().http2.max_requests, 100_000);
    assert_eq!(parse(r#"{"http2_max_requests": 0}"#).http2.max_requests, 0);
    assert_eq!(
        parse(r#"{"http2_max_requests": 300}"#).http2.max_requests,
        300
    );
    rejects_starting(
        r#"{"http2_max_requests": 2000000000}"#,
        "http2_max_requests: ",
    );
    rejects_starting(r#"{"http2_max_requests": -1}"#, "http2_max_requests: ");
    rejects_starting(r#"{"http2_max_requests": "many"}"#, "http2_max_requests: ");
}
