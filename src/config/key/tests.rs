//! Tests of what `keys!` makes of a group: defaults from the keys above, inheritance (what a pool
//! takes from the top level), `null` as absent, the file form of every group read back equal,
//! unknown keys, the alphabetical order of the faults, and the README's table against the keys.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::super::groups::*;
use super::super::pool::{PoolConfig, PoolFile};
use super::super::values::{FilePath, Int};
use super::super::{Config, ConfigFile};
use super::*;

keys! {
    /// A group for the tests.
    pub struct Demo / DemoFile {
        /// `size`, default 10.
        size: Int<usize, 1, 100> => usize = 10;
        /// `half`, default half of `size`.
        half: Int<usize, 1, 100> => usize = size / 2;
        /// `demo_name`, default none.
        name as "demo_name": Option<FilePath> => Option<String> = None;
    }
}

/// `value` read as the group `F` at path `at`.
fn read<F: Key>(value: Value) -> Result<F, String> {
    F::read(&value, "demo").map_err(|e| e.to_string())
}

fn demo(value: Value, inherit: Option<&Demo>) -> Demo {
    read::<DemoFile>(value).expect("valid").resolve(inherit)
}

#[test]
fn a_default_may_use_the_keys_declared_above_it() {
    let d = demo(json!({}), None);
    assert_eq!((d.size, d.half, d.name), (10, 5, None));
    assert_eq!(demo(json!({"size": 40}), None).half, 20);
    assert_eq!(demo(json!({"size": 40, "half": 3}), None).half, 3);
    // the same in a real group: a smaller buffer lowers the limits that must fit in it
    let limits = read::<LimitsFile>(json!({"buffer_size": 4096}))
        .expect("valid")
        .resolve(None);
    assert_eq!(
        (limits.max_request_head, limits.max_uri_length),
        (4096, 4096)
    );
}

#[test]
fn a_key_left_out_takes_the_inherited_value_and_one_given_overrides_it() {
    let parent = demo(json!({"size": 40, "half": 7, "demo_name": "p"}), None);
    let child = demo(json!({"half": 9}), Some(&parent));
    assert_eq!(
        (child.size, child.half, child.name.as_deref()),
        (40, 9, Some("p"))
    );
    // null is "absent": inherited too
    let child = demo(json!({"size": null, "demo_name": null}), Some(&parent));
    assert_eq!(child, parent);
    // an inherited value wins over a default computed from the keys given
    let child = demo(json!({"size": 60}), Some(&parent));
    assert_eq!((child.size, child.half), (60, 7));
    // without a parent, every key left out takes its default
    let alone = demo(json!({"half": 9}), None);
    assert_eq!((alone.size, alone.half, alone.name), (10, 9, None));
}

#[test]
fn a_pool_takes_what_it_leaves_out_from_the_top_level() {
    let top = Config::from_json_str(
        r#"{"strategy": "least-conn", "retries": 5, "backend_timeout": "3s",
            "health_check_path": "/ready", "health_check_rise": 4, "max_fails": 7,
            "enable_sticky_sessions": true, "sticky_cookie_name": "top",
            "backends": [{"url": "http://127.0.0.1:9000"}]}"#,
    )
    .expect("valid");
    let given = json!({"strategy": "p2c", "health_check_rise": 1, "sticky_cookie_name": "api"});
    let mut file = PoolFile::default();
    read_object(&given, "pools.api", &mut file).expect("valid");
    let (pool, specs) = PoolConfig::resolve(file, Some(&top.pool), "pools.api").expect("valid");
    assert!(
        specs.is_empty() && pool.backends.is_empty(),
        "backends are a pool's own"
    );
    assert_eq!(pool.balance.strategy, crate::config::Strategy::P2c);
    assert_eq!(pool.balance.retries, 5);
    assert_eq!(pool.upstream.backend_timeout, Duration::from_secs(3));
    assert_eq!((pool.health.path.as_str(), pool.health.rise), ("/ready", 1));
    assert_eq!(pool.passive.max_fails, 7);
    assert!(pool.sticky.enabled);
    assert_eq!(pool.sticky.cookie_name, "api");
    // the same keys without a parent: the defaults
    let mut file = PoolFile::default();
    read_object(&given, "", &mut file).expect("valid");
    let (alone, _) = PoolConfig::resolve(file, None, "").expect("valid");
    assert_eq!(alone.balance.retries, 2);
    assert_eq!(alone.health.path, "/health");
    // a pool's faults are named by its path
    let mut file = PoolFile::default();
    let bad = read_object(&json!({"retries": 11}), "pools.api", &mut file);
    assert_eq!(
        bad.map_err(|e| e.to_string()),
        Err("pools.api.retries: must be at most 10".into())
    );
    let mut file = PoolFile::default();
    read_object(
        &json!({"backends": [{"weight": 2}]}),
        "pools.api",
        &mut file,
    )
    .expect("read");
    let missing = PoolConfig::resolve(file, Some(&top.pool), "pools.api").map(|_| ());
    assert_eq!(
        missing.map_err(|e| e.to_string()),
        Err("pools.api.backends[0].url: missing (every backend needs a url)".into())
    );
}

#[test]
fn an_optional_key_that_is_none_is_left_out_of_the_file_form() {
    let mut out = Map::new();
    demo(json!({"size": 40}), None).write(&mut out);
    assert_eq!(Value::Object(out), json!({"size": 40, "half": 20}));
    let mut out = Map::new();
    demo(json!({"demo_name": "n"}), None).write(&mut out);
    assert_eq!(out["demo_name"], "n");
}

/// A file removed when dropped, even by a test that fails.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Every key set to a value other than its default, and the hosts file it names (keep it while
/// the config is read back).
fn everything() -> (TempFile, Config) {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let hosts_file = std::env::temp_dir().join(format!("ferrule-key-tests-{}", std::process::id()));
    std::fs::write(&hosts_file, "127.0.0.1 a.example\n").expect("a temporary file");
    let hosts = hosts_file.to_string_lossy().into_owned();
    let hosts_file = TempFile(hosts_file);
    let mut keys = json!({
        "port": 9000, "admin_port": 9001, "bind": "127.0.0.1", "admin_bind": "::1",
        "workers": 1000, "max_connections": 100, "max_connections_per_ip": 5,
        "shutdown_timeout": "5s", "upgrade_socket": "/tmp/x.sock",
        "trusted_proxies": ["10.0.0.0/8", "::1"], "proxy_protocol": true,
        "ipv6_client_prefix": 48,
        "strategy": "consistent-hash", "hash_key": "header:X-User", "max_conns": 9,
        "queue_timeout": "2s", "retries": 0, "fail_open": true,
        "backend_timeout": "7s", "connect_timeout": "1s", "backend_ca_file": file,
        "health_check_frequency": "0s", "health_check_method": "tcp",
        "health_check_path": "/ping", "health_check_timeout": "3s",
        "health_check_expect": "200,204", "health_check_rise": 5, "health_check_fall": 6,
        "max_fails": 0, "fail_timeout": "1m",
    });
    let more = json!({
        "enable_sticky_sessions": true, "sticky_session_ttl": "2h", "sticky_mode": "cookie",
        "sticky_max_entries": 10, "sticky_cookie_name": "srv", "sticky_cookie_strip": true,
        "sticky_cookie_secret": "0123456789abcdef!",
        "client_header_timeout": "1s", "client_body_timeout": "2s", "send_timeout": "3s",
        "keepalive_timeout": "4s", "tunnel_timeout": "5s", "tls_handshake_timeout": "6s",
        "buffer_size": 8192, "max_request_head": 4096, "max_uri_length": 1024,
        "max_header_count": 50, "max_body_size": 1000,
        "backend_keepalive": 7, "backend_keepalive_timeout": "8s",
        "dns_refresh": "0s", "hosts_file": hosts,
        "admin_token": "0123456789abcdef", "admin_allowed_hosts": ["admin.example"],
        "admin_files_dir": "/srv", "allowed_backend_networks": ["169.254.0.0/16"],
        "log_level": "debug", "access_log": false, "access_log_format": "json",
        "request_id": false,
        "backends": [{"url": "https://127.0.0.1:9443", "weight": 2, "max_conns": 1,
                      "ca_file": file, "tls_skip_verify": true}],
        "ssl": {"enabled": true, "cert_file": file, "key_file": file,
                "certificates": [{"cert_file": file, "key_file": file}],
                "redirect_http_port": 80, "hsts": {"max_age": "1h", "include_subdomains": true}},
    });
    let routing = json!({
        "slow_start": "20s", "retry_budget": 50,
        "outlier_detection": {"consecutive_5xx": 2, "base_ejection": "1m", "max_ejected_percent": 40},
        "http2": false, "http2_max_concurrent_streams": 7, "http2_max_requests": 0,
        "rate_limit": {"requests_per_second": 0.5, "burst": 2, "key": "header:X-Key"},
        "rate_limit_exempt": ["10.0.0.0/8"], "rate_limit_max_keys": 128,
        "pools": {"api": {"backends": [{"url": "http://127.0.0.1:9002"}], "strategy": "p2c",
                          "sticky_cookie_secret": "fedcba9876543210!"},
                  "static": {"backends": [], "sticky_cookie_name": "st", "outlier_detection": false}},
        "routes": [{"host": "API.example.com", "pool": "api"},
                   {"host": "*.example.com", "path_prefix": "/s/", "pool": "static",
                    "strip_prefix": true, "name": "statics"}],
    });
    for more in [more, routing] {
        if let (Value::Object(keys), Value::Object(more)) = (&mut keys, more) {
            keys.extend(more);
        }
    }
    let config = Config::from_json_str(&keys.to_string()).unwrap_or_else(|e| panic!("{e}"));
    (hosts_file, config)
}

/// The file form of `value`, read back as `F`, is `value`.
fn round_trip<F: Key>(value: &F::Value)
where
    F::Value: PartialEq + std::fmt::Debug,
{
    let written = F::write(value).expect("written");
    let back = F::read(&written, "x").unwrap_or_else(|e| panic!("{written}: {e}"));
    assert_eq!(&back.value(), value, "{written}");
}

#[test]
fn every_group_is_written_in_a_form_that_reads_back_equal() {
    let (_hosts, c) = everything();
    assert_ne!(c.process, Process::default());
    round_trip::<ProcessFile>(&c.process);
    round_trip::<IdentityFile>(&c.identity);
    round_trip::<BalanceFile>(&c.pool.balance);
    round_trip::<UpstreamFile>(&c.pool.upstream);
    round_trip::<HealthFile>(&c.pool.health);
    round_trip::<PassiveFile>(&c.pool.passive);
    round_trip::<StickyFile>(&c.pool.sticky);
    round_trip::<TrafficFile>(&c.pool.traffic);
    round_trip::<OutlierFile>(c.pool.traffic.outlier_detection.as_ref().expect("outlier"));
    round_trip::<TimeoutsFile>(&c.timeouts);
    round_trip::<LimitsFile>(&c.limits);
    round_trip::<KeepaliveFile>(&c.keepalive);
    round_trip::<DnsFile>(&c.dns);
    round_trip::<AdminFile>(&c.admin);
    round_trip::<LoggingFile>(&c.logging);
    round_trip::<Http2File>(&c.http2);
    round_trip::<RateLimitsFile>(&c.pool.rate_limit);
    round_trip::<RateLimitTableFile>(&c.rate_limit_table);
    round_trip::<SslFile>(&c.ssl);
    round_trip::<HstsFile>(c.ssl.hsts.as_ref().expect("hsts"));
    // and so does the whole, where no key has its default
    let text = serde_json::to_string(&c).expect("serialises");
    assert_eq!(Config::from_json_str(&text).expect("reads back"), c);
    let defaults = serde_json::to_value(Config::from_json_str("{}").expect("valid")).expect("ok");
    let written = serde_json::to_value(&c).expect("serialises");
    for (key, value) in written.as_object().expect("an object") {
        assert_ne!(Some(value), defaults.get(key), "{key} has its default");
    }
}

#[test]
fn unknown_keys_at_the_top_level_and_in_nested_objects() {
    let error = |text: &str| {
        Config::from_json_str(text)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        error(r#"{"stratgy": "p2c"}"#),
        Err("stratgy: unknown key (did you mean \"strategy\"?)".into())
    );
    assert_eq!(
        error(r#"{"health_check_rize": 2}"#),
        Err("health_check_rize: unknown key (did you mean \"health_check_rise\"?)".into())
    );
    assert_eq!(
        error(r#"{"ssl": {"enabeld": true}}"#),
        Err("ssl.enabeld: unknown key (did you mean \"enabled\"?)".into())
    );
    assert_eq!(
        error(r#"{"ssl": {"hsts": {"max-age": "1h"}}}"#),
        Err("ssl.hsts.max-age: unknown key (did you mean \"max_age\"?)".into())
    );
    let mut file = HstsFile::default();
    let nested = read_object(&json!({"x y": 1}), "ssl.hsts", &mut file);
    assert_eq!(
        nested.map_err(|e| e.to_string()),
        Err("ssl.hsts.\"x y\": unknown key (expected one of: max_age, include_subdomains)".into())
    );
}

#[test]
fn the_fault_reported_is_the_first_in_key_order_whatever_the_order_in_the_file() {
    let error = |text: &str| {
        Config::from_json_str(text)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let port = Err("admin_port: expected an integer, found the string \"x\"".to_owned());
    assert_eq!(error(r#"{"workers": 0, "admin_port": "x"}"#), port);
    assert_eq!(error(r#"{"admin_port": "x", "workers": 0}"#), port);
    // an unknown key is one of these faults, in its place
    assert_eq!(
        error(r#"{"zzz": 1, "access_log": 3}"#),
        Err(
            "access_log: expected false, \"stdout\", \"stderr\" or a file path, found the number 3"
                .into()
        )
    );
    assert_eq!(
        error(r#"{"backend_timeout": "1s", "aaa": 1, "workers": 0}"#),
        Err("aaa: unknown key (expected one of: ".to_owned() + &top_level_keys().join(", ") + ")")
    );
    // and within a nested object
    assert_eq!(
        error(r#"{"ssl": {"redirect_http_port": 0, "enabled": "yes"}}"#),
        Err("ssl.enabled: expected true or false, found the string \"yes\"".into())
    );
}

fn top_level_keys() -> Vec<&'static str> {
    let mut keys = Vec::new();
    ConfigFile::default().keys(&mut keys);
    keys
}

#[test]
fn no_key_belongs_to_two_groups() {
    let keys = top_level_keys();
    let unique: HashSet<_> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "{keys:?}");
}

#[test]
fn the_readme_documents_every_key() {
    // the names in the first cell of each row of the README's tables
    let readme = include_str!("../../../README.md");
    let documented: HashSet<&str> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|row| row.split(" |").next())
        .flat_map(|cell| cell.split('`').step_by(2))
        .collect();
    let mut missing: Vec<String> = top_level_keys()
        .into_iter()
        .filter(|k| *k != "ssl")
        .map(|k| k.to_owned())
        .chain(SslConfig::KEYS.iter().map(|k| format!("ssl.{k}")))
        .chain(Hsts::KEYS.iter().map(|k| format!("ssl.hsts.{k}")))
        .filter(|k| !documented.contains(k.as_str()))
        .collect();
    missing.sort();
    assert!(missing.is_empty(), "not in the README's table: {missing:?}");
}
