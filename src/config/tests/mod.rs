//! Unit tests of whole config documents, shared helpers here: `fields.rs` every top-level key
//! (types, ranges, defaults, unknown keys), `backends.rs` `backends[]`, `admin.rs` what keeps
//! the admin API and the backends safe (token, allowed hosts, duplicate keys, numeric hosts,
//! addresses), `files.rs` the ssl files, loading, warnings and serialisation, `tls.rs` the keys
//! the TLS work uses. The expected messages are the spec.

use std::net::IpAddr;
use std::time::Duration;

use super::*;

mod admin;
mod backends;
mod fields;
mod files;
mod rate_limit;
mod routing;
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
    config.pool.backends.remove(0)
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
        process: Process {
            port: 8080,
            admin_port: 8081,
            bind: "0.0.0.0".parse().unwrap(),
            admin_bind: "127.0.0.1".parse().unwrap(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get().min(1024)),
            max_connections: 16384,
            max_connections_per_ip: 0,
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
        },
        identity: Identity {
            trusted_proxies: crate::client_ip::TrustedProxies::default(),
            proxy_protocol: false,
            ipv6_client_prefix: 64,
        },
        pool: PoolConfig {
            backends: Vec::new(),
            backend_tls: Vec::new(),
            balance: Balance {
                strategy: Strategy::RoundRobin,
                hash_key: HashKey::ClientIp,
                max_conns: 0,
                queue_timeout: secs(5),
                retries: 2,
                fail_open: false,
            },
            upstream: Upstream {
                backend_timeout: secs(60),
                connect_timeout: secs(60),
                ca_file: None,
            },
            health: Health {
                frequency: secs(10),
                method: HealthCheckMethod::Http,
                path: "/health".into(),
                timeout: None,
                expect: StatusSet::default(),
                rise: 2,
                fall: 3,
            },
            passive: Passive {
                max_fails: 3,
                fail_timeout: secs(10),
            },
            sticky: Sticky {
                enabled: false,
                ttl: secs(3600),
                mode: StickyMode::Ip,
                max_entries: 100_000,
                cookie_name: "FERRULE_BACKEND".into(),
                cookie_strip: false,
                cookie_secret: None,
            },
            traffic: Traffic {
                slow_start: Duration::ZERO,
                retry_budget: 20,
                outlier_detection: None,
            },
            rate_limit: RateLimits {
                limit: None,
                exempt: Vec::new(),
            },
        },
        timeouts: Timeouts {
            client_header: secs(60),
            client_body: secs(60),
            send: secs(60),
            keepalive: secs(75),
            tunnel: secs(60),
            tls_handshake: secs(10),
        },
        limits: Limits {
            buffer_size: 131072,
            max_request_head: 16384,
            max_uri_length: 8192,
            max_header_count: 100,
            max_body_size: 0,
        },
        keepalive: Keepalive {
            connections: 1024,
            timeout: secs(60),
        },
        dns: Dns {
            refresh: secs(30),
            hosts_file: None,
        },
        admin: Admin {
            token: None,
            allowed_hosts: Vec::new(),
            files_dir: None,
            allowed_backend_networks: Vec::new(),
        },
        logging: Logging {
            level: LogLevel::Info,
            access_log: AccessLogTarget::Stdout,
            access_log_format: AccessLogFormat::Combined,
            request_id: true,
        },
        http2: Http2 {
            enabled: true,
            max_concurrent_streams: 128,
            max_requests: 100_000,
        },
        rate_limit_table: RateLimitTable { max_keys: 65_536 },
        ssl: SslConfig {
            enabled: false,
            cert_file: String::new(),
            key_file: String::new(),
            certificates: Vec::new(),
            redirect_http_port: None,
            hsts: None,
        },
        pools: Vec::new(),
        routes: Vec::new(),
    }
}

/// A file that exists wherever the tests run.
const EXISTING_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
