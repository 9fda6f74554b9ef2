//! The ssl files, loading, warnings, error display, serialisation.

use super::super::de::edit_distance;
use super::*;

// ---- ssl ----

#[test]
fn ssl_enabled_needs_both_files() {
    rejects(
        r#"{"ssl": {"enabled": true}}"#,
        "ssl.cert_file: required when ssl.enabled is true",
    );
    let json = serde_json::json!({"ssl": {"enabled": true, "cert_file": EXISTING_FILE}});
    rejects(
        &json.to_string(),
        "ssl.key_file: required when ssl.enabled is true",
    );
    let json =
        serde_json::json!({"ssl": {"enabled": true, "cert_file": EXISTING_FILE, "key_file": ""}});
    rejects(
        &json.to_string(),
        "ssl.key_file: required when ssl.enabled is true",
    );
}

#[test]
fn ssl_files_must_open() {
    rejects_starting(
        r#"{"ssl": {"enabled": true, "cert_file": "/nonexistent/ferrule/cert.pem", "key_file": "/nonexistent/ferrule/key.pem"}}"#,
        "ssl.cert_file: cannot open \"/nonexistent/ferrule/cert.pem\": ",
    );
    let json = serde_json::json!({"ssl": {
        "enabled": true, "cert_file": EXISTING_FILE, "key_file": "/nonexistent/ferrule/key.pem"
    }});
    rejects_starting(
        &json.to_string(),
        "ssl.key_file: cannot open \"/nonexistent/ferrule/key.pem\": ",
    );
    let dir = env!("CARGO_MANIFEST_DIR");
    let json =
        serde_json::json!({"ssl": {"enabled": true, "cert_file": dir, "key_file": EXISTING_FILE}});
    rejects(
        &json.to_string(),
        &format!("ssl.cert_file: {dir:?} is a directory"),
    );
}

#[test]
fn ssl_enabled_with_readable_files() {
    let json = serde_json::json!({"ssl": {
        "enabled": true, "cert_file": EXISTING_FILE, "key_file": EXISTING_FILE
    }});
    let ssl = parse(&json.to_string()).ssl;
    assert_eq!(
        ssl,
        SslConfig {
            enabled: true,
            cert_file: EXISTING_FILE.into(),
            key_file: EXISTING_FILE.into(),
            certificates: Vec::new(),
            redirect_http_port: None,
            hsts: None,
        }
    );
    // Disabled, the files are not looked at.
    let config = parse(r#"{"ssl": {"enabled": false, "cert_file": "/nonexistent/cert.pem"}}"#);
    assert_eq!(config.ssl.cert_file, "/nonexistent/cert.pem");
}

// ---- files ----

#[test]
fn load_reads_a_file() {
    let path =
        std::env::temp_dir().join(format!("ferrule-config-test-{}.json", std::process::id()));
    std::fs::write(&path, r#"{"port": 9090, "admin_port": 9091}"#).unwrap();
    let loaded = Config::load(&path);
    std::fs::remove_file(&path).unwrap();
    let config = loaded.unwrap();
    assert_eq!(
        (config.process.port, config.process.admin_port),
        (9090, 9091)
    );
}

#[test]
fn load_names_the_unreadable_file() {
    let error = Config::load(Path::new("/nonexistent/ferrule/x.json")).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
    let message = error.to_string();
    assert!(
        message.starts_with("cannot read config file \"/nonexistent/ferrule/x.json\": "),
        "{message}"
    );
    assert!(std::error::Error::source(&error).is_some());
}

// ---- warnings ----

#[test]
fn warnings() {
    assert_eq!(
        parse("{}").warnings(),
        ["no backends configured: every request will get 503"]
    );
    assert_eq!(
        parse(r#"{"workers": 1, "backends": [{"url": "http://127.0.0.1:8082"}]}"#).warnings(),
        Vec::<String>::new()
    );

    let config = parse(
        r#"{"workers": 1, "health_check_method": "tcp", "health_check_path": "/ping",
            "backends": [{"url": "http://127.0.0.1:8082"}]}"#,
    );
    assert_eq!(
        config.warnings(),
        ["health_check_path is not used when health_check_method is \"tcp\""]
    );

    let mut config = parse(r#"{"workers": 1, "max_connections": 1}"#);
    let mut same = backend("http://127.0.0.1:9000");
    config.pool.backends.push(same.clone());
    same.url = "http://localhost:9000".into();
    config.pool.backends.push(same);
    config.process.workers = 2;
    let warnings = config.warnings();
    assert_eq!(
        warnings[0],
        "backends[1] (\"http://localhost:9000\") resolves to the same address as backends[0] \
         (127.0.0.1:9000): that server gets both their shares"
    );
    assert_eq!(
        warnings[1],
        "max_connections (1) is below workers (2): some workers will accept no connections"
    );

    config.process.workers = 1025;
    assert!(config
        .warnings()
        .iter()
        .any(|w| w.starts_with("workers (1025) exceeds the ")));
}

#[test]
fn error_display_is_one_line_for_each_variant() {
    let read = ConfigError::Read {
        path: "x.json".into(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    };
    assert!(read
        .to_string()
        .starts_with("cannot read config file \"x.json\": "));
    let field = invalid("backends[2].weight", "must be at least 1");
    assert_eq!(field.to_string(), "backends[2].weight: must be at least 1");
    assert!(std::error::Error::source(&field).is_none());
}

#[test]
fn edit_distances() {
    assert_eq!(edit_distance("", ""), 0);
    assert_eq!(edit_distance("port", "port"), 0);
    assert_eq!(edit_distance("prot", "port"), 2);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("wieght", "weight"), 2);
}

// ---- serialisation ----

#[test]
fn serialises_to_the_file_form_and_parses_back() {
    let config = parse(
        r#"{"port": 9000, "admin_port": 9001, "bind": "::", "admin_bind": "::1", "workers": 3,
            "strategy": "least-conn", "health_check_method": "tcp", "health_check_path": "/ping",
            "health_check_frequency": "2s", "backend_timeout": "500ms", "keepalive_timeout": "1m30s",
            "sticky_session_ttl": "720h", "enable_sticky_sessions": true, "retries": 0,
            "buffer_size": 65536, "max_request_head": 32768, "max_uri_length": 4096,
            "backends": [{"url": "http://127.0.0.1:9100", "weight": 3},
                         {"url": "https://[::1]/"}],
            "ssl": {"enabled": false, "cert_file": "certs/cert.pem"}}"#,
    );
    let value = serde_json::to_value(&config).unwrap();
    assert_eq!(value["keepalive_timeout"], "1m30s");
    assert_eq!(value["backend_timeout"], "500ms");
    assert_eq!(value["sticky_session_ttl"], "720h");
    assert_eq!(value["bind"], "::");
    assert_eq!(value["strategy"], "least-conn");
    assert_eq!(value["backends"][0]["url"], "http://127.0.0.1:9100");
    assert_eq!(value["backends"][0]["weight"], 3);
    assert_eq!(value["backends"][1]["url"], "https://[::1]/");
    assert_eq!(value["ssl"]["cert_file"], "certs/cert.pem");
    assert_eq!(parse(&value.to_string()), config);

    // Every default, written out, reads back the same.
    let text = serde_json::to_string(&parse("{}")).unwrap();
    assert_eq!(parse(&text), defaults());
}

#[test]
fn redacted_keeps_everything_until_a_key_holds_a_secret() {
    let config = parse(r#"{"backends": [{"url": "http://127.0.0.1:9100"}]}"#);
    assert_eq!(config.redacted(), config);
}
