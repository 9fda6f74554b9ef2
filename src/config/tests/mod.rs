//! Unit tests of whole config documents, shared helpers here: `fields.rs` every top-level key
//! (types, ranges, defaults, unknown keys), `backends.rs` `backends[]`, `admin.rs` what keeps
//! the admin API and the backends safe (token, allowed hosts, duplicate keys, numeric hosts,
//! addresses), `files.rs` the ssl files, loading, warnings and serialisation, `tls.rs` the keys
//! the TLS work uses. The expected messages are the spec.

use super::*;

mod admin;
mod backends;
mod fields;
mod files;
mod tls;

fn parse(json: &str) -> Config {
    Config::from_json_str(json).unwrap_or_else(|e| panic!("{json} was rejected: {e}"))
}

fn error(json: &str) -> String {
    match Config::from_json_str(json) {
        Ok(_) => panic!("{json} was accepted"),
        Err(e) => {
            let message = e.to_string();
            assert!(!message.contains('\n'), "not one line: {message}");
            message
        }
    }
}

/// Asserts that `json` is rejected with exactly `message`.
#[track_caller]
fn rejects(json: &str, message: &str) {
    assert_eq!(error(json), message, "for {json}");
}

/// Asserts that `json` is rejected with a message starting with `prefix` (the rest comes from
/// the operating system).
#[track_caller]
fn rejects_starting(json: &str, prefix: &str) {
    let message = error(json);
    assert!(message.starts_with(prefix), "for {json}: {message}");
}

fn backends(urls: &[&str]) -> String {
    let entries: Vec<String> = urls.iter().map(|u| format!("{{\"url\": {u:?}}}")).collect();
    format!("{{\"backends\": [{}]}}", entries.join(", "))
}

fn backend(url: &str) -> BackendConfig {
    let mut config = parse(&backends(&[url]));
    config.backends.remove(0)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Every default, written out independently of the parser.
fn defaults() -> Config {
    Config {
        port: 8080,
        admin_port: 8081,
        bind: "0.0.0.0".parse().unwrap(),
        admin_bind: "127.0.0.1".parse().unwrap(),
        workers: std::thread::available_parallelism().map_or(1, |n| n.get().min(1024)),
        strategy: Strategy::RoundRobin,
        backends: Vec::new(),
        backend_tls: Vec::new(),
        backend_ca_file: None,
        dns_refresh: secs(30),
        hosts_file: None,
        health_check_frequency: secs(10),
        health_check_method: HealthCheckMethod::Http,
        health_check_path: "/health".into(),
        health_check_timeout: None,
        health_check_expect: StatusSet::default(),
        health_check_rise: 2,
        health_check_fall: 3,
        max_fails: 3,
        fail_timeout: secs(10),
        fail_open: false,
        admin_token: None,
        admin_allowed_hosts: Vec::new(),
        admin_files_dir: None,
        allowed_backend_networks: Vec::new(),
        backend_timeout: secs(60),
        connect_timeout: secs(60),
        client_header_timeout: secs(60),
        client_body_timeout: secs(60),
        send_timeout: secs(60),
        keepalive_timeout: secs(75),
        tunnel_timeout: secs(60),
        tls_handshake_timeout: secs(10),
        backend_keepalive_timeout: secs(60),
        backend_keepalive: 1024,
        retries: 2,
        max_request_head: 16384,
        max_uri_length: 8192,
        max_connections: 16384,
        max_connections_per_ip: 0,
        max_header_count: 100,
        max_body_size: 0,
        buffer_size: 131072,
        shutdown_timeout: secs(30),
        upgrade_socket: Some(
            super::default_upgrade_dir(
                std::env::var_os("XDG_RUNTIME_DIR").as_deref(),
                // SAFETY: getuid has no preconditions and cannot fail.
                unsafe { libc::getuid() },
                &std::env::temp_dir(),
            )
            .join("ferrule-0.0.0.0-8080.sock")
            .to_string_lossy()
            .into_owned(),
        ),
        hash_key: HashKey::ClientIp,
        trusted_proxies: crate::client_ip::TrustedProxies::default(),
        proxy_protocol: false,
        ipv6_client_prefix: 64,
        max_conns: 0,
        queue_timeout: secs(5),
        enable_sticky_sessions: false,
        sticky_session_ttl: secs(3600),
        sticky_mode: StickyMode::Ip,
        sticky_max_entries: 100_000,
        sticky_cookie_name: "FERRULE_BACKEND".into(),
        sticky_cookie_strip: false,
        sticky_cookie_secret: None,
        log_level: LogLevel(log::LevelFilter::Info),
        access_log: AccessLogTarget::Stdout,
        access_log_format: AccessLogFormat::Combined,
        request_id: true,
        ssl: SslConfig {
            enabled: false,
            cert_file: String::new(),
            key_file: String::new(),
            certificates: Vec::new(),
            redirect_http_port: None,
            hsts: None,
        },
    }
}

/// A file that exists wherever the tests run.
const EXISTING_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
