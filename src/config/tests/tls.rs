//! The keys the TLS work uses: `tls_handshake_timeout`, `backend_ca_file`, `ssl.certificates`,
//! `ssl.redirect_http_port`, `ssl.hsts`, `backends[].ca_file` and `backends[].tls_skip_verify`.

use serde_json::json;

use super::*;

const MISSING_FILE: &str = "/nonexistent/ferrule/file.pem";

// ---- tls_handshake_timeout ----

#[test]
fn tls_handshake_timeout_is_a_timeout() {
    assert_eq!(parse("{}").timeouts.tls_handshake, secs(10));
    assert_eq!(
        parse(r#"{"tls_handshake_timeout": "2s500ms"}"#)
            .timeouts
            .tls_handshake,
        ms(2500)
    );
    rejects(
        r#"{"tls_handshake_timeout": 5}"#,
        "tls_handshake_timeout: durations are strings with a unit: write \"5s\", not 5",
    );
}

// ---- backend_ca_file ----

#[test]
fn backend_ca_file_must_be_a_regular_file() {
    assert_eq!(parse("{}").pool.upstream.ca_file, None);
    let config = parse(&json!({ "backend_ca_file": EXISTING_FILE }).to_string());
    assert_eq!(config.pool.upstream.ca_file.as_deref(), Some(EXISTING_FILE));

    rejects_starting(
        &json!({ "backend_ca_file": MISSING_FILE }).to_string(),
        &format!("backend_ca_file: cannot open {MISSING_FILE:?}: "),
    );
    let dir = env!("CARGO_MANIFEST_DIR");
    rejects(
        &json!({ "backend_ca_file": dir }).to_string(),
        &format!("backend_ca_file: {dir:?} is a directory"),
    );
    rejects(
        r#"{"backend_ca_file": "/dev/null"}"#,
        "backend_ca_file: \"/dev/null\" is not a regular file",
    );
    rejects(
        r#"{"backend_ca_file": ""}"#,
        "backend_ca_file: must not be empty (the path of a file)",
    );
    rejects(
        r#"{"backend_ca_file": 1}"#,
        "backend_ca_file: expected a string, found the number 1",
    );
}

// ---- ssl.certificates ----

#[test]
fn certificates_alone_are_enough_with_ssl_enabled() {
    let ssl = parse(
        &json!({"ssl": {"enabled": true, "certificates": [
            {"cert_file": EXISTING_FILE, "key_file": EXISTING_FILE},
        ]}})
        .to_string(),
    )
    .ssl;
    assert_eq!(
        ssl.certificates,
        [CertificateFiles {
            cert_file: EXISTING_FILE.into(),
            key_file: EXISTING_FILE.into(),
        }]
    );
    assert_eq!(
        ssl.cert_key_pairs().collect::<Vec<_>>(),
        [(EXISTING_FILE, EXISTING_FILE)]
    );
}

#[test]
fn cert_key_pairs_lists_the_single_form_first() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let lock = &format!("{dir}/Cargo.lock");
    let readme = &format!("{dir}/README.md");
    let ssl = parse(
        &json!({"ssl": {"enabled": true, "cert_file": EXISTING_FILE, "key_file": EXISTING_FILE,
        "certificates": [
            {"cert_file": lock, "key_file": lock},
            {"key_file": readme, "cert_file": readme},
        ]}})
        .to_string(),
    )
    .ssl;
    assert_eq!(
        ssl.cert_key_pairs().collect::<Vec<_>>(),
        [
            (EXISTING_FILE, EXISTING_FILE),
            (lock.as_str(), lock.as_str()),
            (readme.as_str(), readme.as_str()),
        ]
    );
    assert_eq!(parse("{}").ssl.cert_key_pairs().count(), 0);
}

#[test]
fn ssl_enabled_still_needs_a_certificate() {
    rejects(
        r#"{"ssl": {"enabled": true, "certificates": []}}"#,
        "ssl.cert_file: required when ssl.enabled is true",
    );
    // With certificates, the single form is optional, but not half of it.
    let pair = json!({"cert_file": EXISTING_FILE, "key_file": EXISTING_FILE});
    rejects(
        &json!({"ssl": {"enabled": true, "cert_file": EXISTING_FILE, "certificates": [pair]}})
            .to_string(),
        "ssl.key_file: required when ssl.cert_file is set",
    );
    rejects(
        &json!({"ssl": {"enabled": true, "key_file": EXISTING_FILE, "certificates": [pair]}})
            .to_string(),
        "ssl.cert_file: required when ssl.key_file is set",
    );
}

#[test]
fn every_certificate_needs_both_files() {
    let pair = json!({"cert_file": EXISTING_FILE, "key_file": EXISTING_FILE});
    // Checked with TLS off too: the entry is malformed, not merely unused.
    rejects(
        &json!({"ssl": {"certificates": [pair, {"cert_file": EXISTING_FILE}]}}).to_string(),
        "ssl.certificates[1].key_file: missing (every certificate needs a cert_file and a \
         key_file)",
    );
    rejects(
        &json!({"ssl": {"certificates": [{"key_file": EXISTING_FILE, "cert_file": null}]}})
            .to_string(),
        "ssl.certificates[0].cert_file: missing (every certificate needs a cert_file and a \
         key_file)",
    );
    rejects(
        r#"{"ssl": {"certificates": [{"cert_file": "", "key_file": "k.pem"}]}}"#,
        "ssl.certificates[0].cert_file: must not be empty (the path of a file)",
    );
    rejects(
        r#"{"ssl": {"certificates": [{"cert": "c.pem"}]}}"#,
        "ssl.certificates[0].cert: unknown key (expected one of: cert_file, key_file)",
    );
    rejects(
        r#"{"ssl": {"certificates": [{"key_fle": "k.pem"}]}}"#,
        "ssl.certificates[0].key_fle: unknown key (did you mean \"key_file\"?)",
    );
    rejects(
        r#"{"ssl": {"certificates": {"cert_file": "c.pem"}}}"#,
        "ssl.certificates: expected an array, found an object",
    );
    rejects(
        r#"{"ssl": {"certificates": ["c.pem"]}}"#,
        "ssl.certificates[0]: expected an object, found the string \"c.pem\"",
    );
}

#[test]
fn certificate_files_must_open_when_ssl_is_enabled() {
    let pair = json!({"cert_file": EXISTING_FILE, "key_file": EXISTING_FILE});
    let bad = json!({"cert_file": EXISTING_FILE, "key_file": MISSING_FILE});
    rejects_starting(
        &json!({"ssl": {"enabled": true, "certificates": [pair, bad]}}).to_string(),
        &format!("ssl.certificates[1].key_file: cannot open {MISSING_FILE:?}: "),
    );
    let bad = json!({"cert_file": env!("CARGO_MANIFEST_DIR"), "key_file": EXISTING_FILE});
    rejects(
        &json!({"ssl": {"enabled": true, "certificates": [bad]}}).to_string(),
        &format!(
            "ssl.certificates[0].cert_file: {:?} is a directory",
            env!("CARGO_MANIFEST_DIR")
        ),
    );
    // Disabled, the files are not looked at.
    let bad = json!({"cert_file": MISSING_FILE, "key_file": MISSING_FILE});
    let ssl = parse(&json!({"ssl": {"certificates": [bad]}}).to_string()).ssl;
    assert_eq!(ssl.certificates[0].key_file, MISSING_FILE);
}

// ---- ssl.redirect_http_port ----

#[test]
fn redirect_http_port() {
    assert_eq!(parse("{}").ssl.redirect_http_port, None);
    let config = parse(r#"{"ssl": {"redirect_http_port": 80}}"#);
    assert_eq!(config.ssl.redirect_http_port, Some(80));
    rejects(
        r#"{"ssl": {"redirect_http_port": 0}}"#,
        "ssl.redirect_http_port: must be at least 1",
    );
    rejects(
        r#"{"ssl": {"redirect_http_port": 65536}}"#,
        "ssl.redirect_http_port: must be at most 65535",
    );
    rejects(
        r#"{"ssl": {"redirect_http_port": "80"}}"#,
        "ssl.redirect_http_port: expected an integer, found the string \"80\"",
    );
    rejects(
        r#"{"ssl": {"redirect_http_port": 8080}}"#,
        "ssl.redirect_http_port: must differ from port (8080)",
    );
    rejects(
        r#"{"port": 443, "admin_port": 9000, "ssl": {"redirect_http_port": 9000}}"#,
        "ssl.redirect_http_port: must differ from admin_port (9000)",
    );
    // Port 0 (a free port, for tests) never collides.
    let config = parse(r#"{"port": 0, "admin_port": 0, "ssl": {"redirect_http_port": 1}}"#);
    assert_eq!(config.ssl.redirect_http_port, Some(1));
}

// ---- ssl.hsts ----

#[test]
fn hsts_is_off_unless_given_and_has_defaults() {
    assert_eq!(parse("{}").ssl.hsts, None);
    assert_eq!(parse(r#"{"ssl": {"hsts": null}}"#).ssl.hsts, None);
    assert_eq!(
        parse(r#"{"ssl": {"hsts": {}}}"#).ssl.hsts,
        Some(Hsts {
            max_age: secs(31_536_000),
            include_subdomains: false,
        })
    );
    assert_eq!(
        parse(r#"{"ssl": {"hsts": {"max_age": "1h", "include_subdomains": true}}}"#)
            .ssl
            .hsts,
        Some(Hsts {
            max_age: secs(3600),
            include_subdomains: true,
        })
    );
    // zero is how a site withdraws the policy
    let off = parse(r#"{"ssl": {"hsts": {"max_age": "0s"}}}"#).ssl.hsts;
    assert_eq!(off.map(|h| h.max_age), Some(secs(0)));
}

#[test]
fn hsts_values_are_checked() {
    rejects(
        r#"{"ssl": {"hsts": {"max_age": 31536000}}}"#,
        "ssl.hsts.max_age: durations are strings with a unit: write \"31536000s\", not 31536000",
    );
    rejects(
        r#"{"ssl": {"hsts": {"max_age": "17521h"}}}"#,
        "ssl.hsts.max_age: must be at most 17520h",
    );
    rejects(
        r#"{"ssl": {"hsts": {"max_age": "1s500ms"}}}"#,
        "ssl.hsts.max_age: must be whole seconds (HSTS counts in seconds)",
    );
    rejects(
        r#"{"ssl": {"hsts": {"include_subdomains": "yes"}}}"#,
        "ssl.hsts.include_subdomains: expected true or false, found the string \"yes\"",
    );
    rejects(
        r#"{"ssl": {"hsts": {"preload": true}}}"#,
        "ssl.hsts.preload: unknown key (expected one of: max_age, include_subdomains)",
    );
    rejects(
        r#"{"ssl": {"hsts": true}}"#,
        "ssl.hsts: expected an object, found true",
    );
}

#[test]
fn hsts_without_tls_is_a_warning() {
    let config = parse(r#"{"backends": [{"url": "http://127.0.0.1:1"}], "ssl": {"hsts": {}}}"#);
    assert_eq!(
        config.warnings(),
        ["ssl.hsts is not used when ssl.enabled is false"]
    );
}

// ---- backends[].ca_file, backends[].tls_skip_verify ----

#[test]
fn backend_tls_settings_are_read_per_backend() {
    let config = parse(
        &json!({"backends": [
            {"url": "https://127.0.0.1:9443", "ca_file": EXISTING_FILE},
            {"url": "https://127.0.0.1:9444", "tls_skip_verify": true},
            {"url": "https://127.0.0.1:9445"},
        ]})
        .to_string(),
    );
    assert_eq!(
        config.pool.backend_tls,
        [
            BackendTls {
                ca_file: Some(EXISTING_FILE.into()),
                tls_skip_verify: false,
            },
            BackendTls {
                ca_file: None,
                tls_skip_verify: true,
            },
            BackendTls::default(),
        ]
    );
    assert_eq!(config.pool.tls_of_backend(1), &config.pool.backend_tls[1]);
    assert_eq!(config.pool.tls_of_backend(3), &BackendTls::default());
}

#[test]
fn backend_tls_errors() {
    rejects_starting(
        &json!({"backends": [
            {"url": "https://127.0.0.1:9443"},
            {"url": "https://127.0.0.1:9444", "ca_file": MISSING_FILE},
        ]})
        .to_string(),
        &format!("backends[1].ca_file: cannot open {MISSING_FILE:?}: "),
    );
    rejects(
        r#"{"backends": [{"url": "https://127.0.0.1", "ca_file": ""}]}"#,
        "backends[0].ca_file: must not be empty (the path of a file)",
    );
    rejects(
        r#"{"backends": [{"url": "https://127.0.0.1", "tls_skip_verify": "yes"}]}"#,
        "backends[0].tls_skip_verify: expected true or false, found the string \"yes\"",
    );
    rejects(
        r#"{"backends": [{"url": "https://127.0.0.1", "tls_skip_verfy": true}]}"#,
        "backends[0].tls_skip_verfy: unknown key (did you mean \"tls_skip_verify\"?)",
    );
}

#[test]
fn backend_tls_warnings() {
    let config = parse(
        &json!({"workers": 1, "backends": [
            {"url": "http://127.0.0.1:9001", "ca_file": EXISTING_FILE, "tls_skip_verify": true},
            {"url": "https://127.0.0.1:9002", "tls_skip_verify": true},
            {"url": "https://127.0.0.1:9003", "tls_skip_verify": true, "ca_file": EXISTING_FILE},
            {"url": "https://127.0.0.1:9004", "ca_file": EXISTING_FILE},
            {"url": "http://127.0.0.1:9005", "tls_skip_verify": false},
        ]})
        .to_string(),
    );
    assert_eq!(
        config.warnings(),
        [
            "backends[0]: ca_file is not used: the backend's URL is http://",
            "backends[0]: tls_skip_verify is not used: the backend's URL is http://",
            "backends[1]: tls_skip_verify is on: the backend's certificate is not verified",
            "backends[2]: tls_skip_verify is on: the backend's certificate is not verified",
            "backends[2]: ca_file is not used when tls_skip_verify is on",
        ]
    );
}

#[test]
fn redirect_without_tls_is_a_warning() {
    let config = parse(
        r#"{"workers": 1, "backends": [{"url": "http://127.0.0.1:9001"}],
            "ssl": {"redirect_http_port": 80}}"#,
    );
    assert_eq!(
        config.warnings(),
        ["ssl.redirect_http_port is not used when ssl.enabled is false"]
    );
}

// ---- serialisation ----

#[test]
fn the_tls_keys_serialise_and_parse_back() {
    let config = parse(
        &json!({
            "tls_handshake_timeout": "1m5s",
            "backend_ca_file": EXISTING_FILE,
            "backends": [
                {"url": "https://127.0.0.1:9443", "ca_file": EXISTING_FILE, "weight": 2},
                {"url": "https://127.0.0.1:9444", "tls_skip_verify": true},
            ],
            "ssl": {"enabled": true, "cert_file": EXISTING_FILE, "key_file": EXISTING_FILE,
                    "certificates": [{"cert_file": EXISTING_FILE, "key_file": EXISTING_FILE}],
                    "redirect_http_port": 80,
                    "hsts": {"max_age": "12h", "include_subdomains": true}},
        })
        .to_string(),
    );
    let value = serde_json::to_value(&config).unwrap();
    assert_eq!(value["tls_handshake_timeout"], "1m5s");
    assert_eq!(value["backend_ca_file"], EXISTING_FILE);
    assert_eq!(
        value["backends"],
        json!([
            {"url": "https://127.0.0.1:9443", "weight": 2, "ca_file": EXISTING_FILE,
             "tls_skip_verify": false},
            {"url": "https://127.0.0.1:9444", "weight": 1, "tls_skip_verify": true},
        ])
    );
    assert_eq!(value["ssl"]["redirect_http_port"], 80);
    assert_eq!(
        value["ssl"]["hsts"],
        json!({"max_age": "12h", "include_subdomains": true})
    );
    assert_eq!(
        value["ssl"]["certificates"],
        json!([{"cert_file": EXISTING_FILE, "key_file": EXISTING_FILE}])
    );
    assert_eq!(parse(&value.to_string()), config);
    // Keys with no value are left out rather than written as null.
    let value = serde_json::to_value(parse("{}")).unwrap();
    assert!(value.get("backend_ca_file").is_none());
    assert!(value["ssl"].get("redirect_http_port").is_none());
}
