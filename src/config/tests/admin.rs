//! What keeps the admin API and the backends safe: the token and where the API may listen,
//! `admin_allowed_hosts`, keys given twice, numeric hosts, and the addresses a backend may not
//! have (ferrule's own listeners, link-local ones).

use super::*;

#[test]
fn a_non_loopback_admin_bind_needs_a_token() {
    rejects(
        r#"{"admin_bind": "0.0.0.0"}"#,
        "admin_bind: 0.0.0.0 is not a loopback address, so admin_token is required (without \
         it, anyone who can reach port 8081 could change the backend pool)",
    );
    rejects_starting(
        r#"{"admin_bind": "10.1.2.3", "admin_port": 9001}"#,
        "admin_bind: 10.1.2.3 is not a loopback address, so admin_token is required (without \
         it, anyone who can reach port 9001",
    );
    rejects_starting(
        r#"{"admin_bind": "::"}"#,
        "admin_bind: :: is not a loopback",
    );
    for loopback in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
        let config = parse(&format!(r#"{{"admin_bind": "{loopback}"}}"#));
        assert!(config.admin.token.is_none(), "{loopback}");
    }
    let config = parse(r#"{"admin_bind": "0.0.0.0", "admin_token": "0123456789abcdef"}"#);
    assert_eq!(config.process.admin_bind, IpAddr::from([0, 0, 0, 0]));
}

#[test]
fn the_token_has_at_least_16_characters() {
    rejects(
        r#"{"admin_token": "s3cret"}"#,
        "admin_token: must be at least 16 characters (it has 6): a short token can be guessed",
    );
    rejects_starting(
        r#"{"admin_token": "0123456789abcde"}"#,
        "admin_token: must be at least 16 characters (it has 15)",
    );
    let config = parse(r#"{"admin_token": "0123456789abcdef"}"#);
    assert_eq!(config.admin.token.as_deref(), Some("0123456789abcdef"));
}

#[test]
fn allowed_hosts_are_names_or_addresses_without_a_port() {
    let config = parse(
        r#"{"admin_allowed_hosts": ["Admin.Example.", "10.0.0.5", "[2001:DB8::1]", "::1", "lb_1"]}"#,
    );
    assert_eq!(
        config.admin.allowed_hosts,
        ["admin.example", "10.0.0.5", "2001:db8::1", "::1", "lb_1"]
    );
    assert!(parse("{}").admin.allowed_hosts.is_empty());
    rejects(
        r#"{"admin_allowed_hosts": ["ok.example", "admin.example:8081"]}"#,
        "admin_allowed_hosts[1]: \"admin.example:8081\": give the name without a port (the \
         admin port is allowed with or without it)",
    );
    for bad in ["", "a b", "*.example", "a..b", "évil"] {
        let message = error(&format!(r#"{{"admin_allowed_hosts": [{bad:?}]}}"#));
        assert!(
            message.starts_with("admin_allowed_hosts[0]: ")
                && message.contains("is not a host name or IP address"),
            "{bad:?}: {message}"
        );
    }
    rejects(
        r#"{"admin_allowed_hosts": "admin.example"}"#,
        "admin_allowed_hosts: expected an array, found the string \"admin.example\"",
    );
    // written back and read again
    let text = serde_json::to_string(&config).unwrap();
    assert_eq!(Config::from_json_str(&text).unwrap(), config);
}

#[test]
fn admin_files_dir_and_allowed_networks_are_read_and_written_back() {
    let config = parse(
        r#"{"admin_files_dir": "/etc/ferrule/ca", "allowed_backend_networks": ["169.254.10.0/24", "fe80::/10"]}"#,
    );
    assert_eq!(config.admin.files_dir.as_deref(), Some("/etc/ferrule/ca"));
    let nets: Vec<String> = config
        .admin
        .allowed_backend_networks
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(nets, ["169.254.10.0/24", "fe80::/10"]);
    let text = serde_json::to_string(&config).unwrap();
    assert_eq!(Config::from_json_str(&text).unwrap(), config);
    rejects(
        r#"{"admin_files_dir": ""}"#,
        "admin_files_dir: must not be empty (the path of a file)",
    );
    let message = error(r#"{"allowed_backend_networks": ["10.0.0.0/8", "169.254.1.0/16"]}"#);
    assert!(
        message.starts_with("allowed_backend_networks[1]: ") && message.contains("169.254.0.0/16"),
        "{message}"
    );
}

#[test]
fn a_key_given_twice_is_refused_at_any_depth() {
    rejects(
        r#"{"port": 8080, "port": 9090}"#,
        "port: given more than once (each key may appear once)",
    );
    rejects(
        r#"{"ssl": {"enabled": false, "enabled": true}}"#,
        "ssl.enabled: given more than once (each key may appear once)",
    );
    rejects(
        r#"{"backends": [{"url": "http://127.0.0.1:1"},
                        {"url": "http://127.0.0.1:2", "weight": 1, "url": "http://127.0.0.1:3"}]}"#,
        "backends[1].url: given more than once (each key may appear once)",
    );
    rejects(
        r#"{"ssl": {"certificates": [{"cert_file": "a", "key_file": "b", "key_file": "c"}]}}"#,
        "ssl.certificates[0].key_file: given more than once (each key may appear once)",
    );
    rejects(
        r#"{"a key": 1, "a key": 2}"#,
        "\"a key\": given more than once (each key may appear once)",
    );
    // the same key in two objects is no duplicate; syntax errors keep serde_json's position
    let config = parse(
        r#"{"backends": [{"url": "http://127.0.0.1:1", "weight": 2},
                         {"url": "http://127.0.0.1:2", "weight": 3}]}"#,
    );
    assert_eq!(config.pool.backends.len(), 2);
    rejects_starting(r#"{"port": 80,}"#, "config is not valid JSON: ");
    rejects_starting(
        r#"{"port": 80} x"#,
        "config is not valid JSON: trailing characters",
    );
}

#[test]
fn the_strict_parser_reads_what_serde_json_reads() {
    let text = r#"{"a": [1, -2, 3.5, 1e300, 18446744073709551615, true, null, "\u00e9\n"],
                   "b": {"c": {}, "d": []}, "e": ""}"#;
    let strict = parse_json(text.as_bytes()).unwrap_or_else(|e| panic!("{e:?}"));
    let plain: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(strict, plain);
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    assert!(matches!(
        parse_json(deep.as_bytes()),
        Err(JsonError::Syntax(_))
    ));
}

#[test]
fn numeric_hosts_must_be_dotted_quads() {
    for url in [
        "http://127.1:8082",
        "http://0x7f.1:8082",
        "http://0X7F000001",
        "http://2130706433:8082",
        "http://0177.0.0.1:8082",
        "http://127.0.0.01",
        "http://127.0.0.1.:8082",
        "http://a.b.0x1f",
        "http://256.0.0.1",
    ] {
        let message = error(&backends(&[url]));
        assert!(
            message.starts_with(&format!("backends[0].url: {url:?}: "))
                && message.contains("is a numeric host but not an IPv4 address of four decimal"),
            "{url}: {message}"
        );
    }
    assert_eq!(backend("http://127.0.0.1:8082").addr.port(), 8082);
    for shape_ok in [
        "http://a1.example",
        "http://1a.example",
        "http://x.0xg",
        "http://deadbeef",
    ] {
        assert!(
            crate::config::backend::parse_backend_url(shape_ok).is_ok(),
            "{shape_ok}"
        );
    }
}

#[test]
fn host_names_have_dns_lengths() {
    let label = "a".repeat(63);
    let long = format!("{label}.{label}.{label}.{}", "b".repeat(61));
    assert_eq!(long.len(), 253);
    assert!(crate::config::backend::parse_backend_url(&format!("http://{long}")).is_ok());
    let message = error(&backends(&[&format!("http://{long}b")]));
    assert!(
        message.ends_with("the host name is 254 characters long (at most 253)"),
        "{message}"
    );
    let message = error(&backends(&[&format!("http://{label}a.example")]));
    assert!(
        message.contains("is 64 characters long (at most 63)"),
        "{message}"
    );
    let message = error(&backends(&["http://a..example"]));
    assert!(
        message.ends_with("\"a..example\" has an empty label (\"..\")"),
        "{message}"
    );
}

#[test]
fn a_backend_may_not_be_one_of_ferrules_own_listeners() {
    rejects(
        r#"{"port": 18080, "backends": [{"url": "http://127.0.0.1:18080"}]}"#,
        "backends[0].url: \"http://127.0.0.1:18080\" (127.0.0.1:18080) is ferrule's own proxy \
         listener (0.0.0.0:18080): requests to it would loop back into ferrule",
    );
    rejects_starting(
        r#"{"admin_port": 18081, "backends": [{"url": "http://127.0.0.1:9"}, {"url": "http://localhost:18081"}]}"#,
        "backends[1].url: \"http://localhost:18081\" (",
    );
    let message =
        error(r#"{"admin_port": 18081, "backends": [{"url": "http://localhost:18081"}]}"#);
    assert!(
        message.contains("is ferrule's own admin API listener (127.0.0.1:18081)"),
        "{message}"
    );
    // every address of the host reaches a listener on 0.0.0.0: [::1], 0.0.0.0, 127.0.0.2 too
    for url in [
        "http://[::1]:18080",
        "http://0.0.0.0:18080",
        "http://127.0.0.2:18080",
    ] {
        let message = error(&format!(
            r#"{{"port": 18080, "backends": [{{"url": "{url}"}}]}}"#
        ));
        assert!(message.contains("own proxy listener"), "{url}: {message}");
    }
    // a listener on one address takes only that address
    let config = parse(
        r#"{"bind": "127.0.0.1", "port": 18080,
            "backends": [{"url": "http://127.0.0.2:18080"}, {"url": "http://127.0.0.1:18082"}]}"#,
    );
    assert_eq!(config.pool.backends.len(), 2);
    // port 0 is picked at start: the admin API checks those (tests/admin)
    parse(r#"{"port": 0, "backends": [{"url": "http://127.0.0.1:8080"}]}"#);

    let mut config = defaults();
    config.ssl.redirect_http_port = Some(18000);
    assert_eq!(
        config.own_listeners().len(),
        2,
        "no redirect listener without TLS"
    );
    config.ssl.enabled = true;
    let own = config.own_listeners();
    assert_eq!(own[2], ("redirect", "0.0.0.0:18000".parse().unwrap()));
    let problem = check_backend_addr("u", "127.0.0.1:18000".parse().unwrap(), &own, &[]);
    assert!(problem.is_err_and(|p| p.contains("own redirect listener")));
}

#[test]
fn link_local_backends_need_an_allowed_network() {
    for (url, ip) in [
        ("http://169.254.169.254", "169.254.169.254"),
        ("http://169.254.1.2:8080", "169.254.1.2"),
        ("http://[fe80::1]:8080", "fe80::1"),
        ("http://[::ffff:169.254.169.254]", "169.254.169.254"),
    ] {
        rejects(
            &backends(&[url]),
            &format!(
                "backends[0].url: {url:?} is at {ip}, a link-local address (cloud metadata \
                 endpoints answer there); list its network in allowed_backend_networks to \
                 allow it"
            ),
        );
    }
    let config = parse(
        r#"{"allowed_backend_networks": ["169.254.169.254/32", "fe80::/64"],
            "backends": [{"url": "http://169.254.169.254"}, {"url": "http://[fe80::1]:8080"}]}"#,
    );
    assert_eq!(config.pool.backends.len(), 2);
    rejects_starting(
        r#"{"allowed_backend_networks": ["169.254.169.254/32"],
            "backends": [{"url": "http://169.254.169.253"}]}"#,
        "backends[0].url: \"http://169.254.169.253\" is at 169.254.169.253, a link-local",
    );
    // loopback stays allowed: the common lab case
    assert!(backend("http://127.0.0.1:9").addr.ip().is_loopback());
}

// Proves the OpenAPI schema of `url` is no wider than the parser: every text its pattern
// matches, within its length limit, is a URL the parser takes (its shape; resolving is another
// matter).
proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]
    #[test]
    fn the_url_pattern_is_within_what_the_parser_takes(url in url_strategy()) {
        proptest::prop_assume!(url.len() <= URL_MAX_LENGTH);
        let parsed = crate::config::backend::parse_backend_url(&url);
        proptest::prop_assert!(parsed.is_ok(), "{url:?}: {parsed:?}");
    }
}

fn url_strategy() -> impl proptest::strategy::Strategy<Value = String> {
    // the generator takes no anchors: the pattern is matched whole anyway
    let body = URL_PATTERN
        .strip_prefix('^')
        .and_then(|p| p.strip_suffix('$'))
        .unwrap_or(URL_PATTERN);
    proptest::string::string_regex(body).unwrap_or_else(|e| panic!("{e}"))
}
