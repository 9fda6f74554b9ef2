//! `pools` and `routes`: inheritance into a pool, the derived cookie names, every check on a
//! route (each message exact), the warnings and the round trip.

use super::*;

const API: &str = r#""api": {"backends": [{"url": "http://127.0.0.1:9000"}]}"#;

/// A config with the pool `api` and the given routes (JSON text of the list).
fn with_routes(routes: &str) -> String {
    format!(r#"{{"pools": {{{API}}}, "routes": {routes}}}"#)
}

#[test]
fn a_pool_takes_what_it_leaves_out_from_the_top_level() {
    let c = parse(
        r#"{"strategy": "least-conn", "retries": 5, "backend_timeout": "3s",
            "backends": [{"url": "http://127.0.0.1:8000"}],
            "pools": {"api": {"backends": [{"url": "http://127.0.0.1:9000"}], "retries": 1},
                      "empty": {}}}"#,
    );
    let api = &c.pools.iter().find(|p| p.name == "api").expect("api").pool;
    assert_eq!(api.balance.strategy, Strategy::LeastConn, "inherited");
    assert_eq!(api.upstream.backend_timeout, secs(3), "inherited");
    assert_eq!(api.balance.retries, 1, "its own value wins");
    assert_eq!(api.backends.len(), 1);
    assert_eq!(api.backends[0].port, 9000);
    let empty = &c
        .pools
        .iter()
        .find(|p| p.name == "empty")
        .expect("empty")
        .pool;
    assert!(empty.backends.is_empty(), "backends are never inherited");
    // pools come in name order, after default
    let names: Vec<&str> = c.all_pools().map(|(n, _)| n).collect();
    assert_eq!(names, ["default", "api", "empty"]);
}

#[test]
fn each_pool_has_its_own_cookie_name_unless_it_sets_one() {
    let c = parse(
        r#"{"sticky_cookie_name": "SRV",
            "pools": {"a": {}, "b": {"sticky_cookie_name": "mine"}, "c": {"sticky_cookie_name": null}}}"#,
    );
    let names: Vec<&str> = c
        .pools
        .iter()
        .map(|p| p.pool.sticky.cookie_name.as_str())
        .collect();
    assert_eq!(names, ["SRV_a", "mine", "SRV_c"]);
    assert_eq!(c.pool.sticky.cookie_name, "SRV");
    let d = parse(r#"{"pools": {"x.y-z_1": {}}}"#);
    assert_eq!(
        d.pools[0].pool.sticky.cookie_name,
        "FERRULE_BACKEND_x.y-z_1"
    );
}

#[test]
fn faults_inside_a_pool_name_the_pool() {
    rejects(
        r#"{"pools": {"api": {"strategy": "fastest"}}}"#,
        "pools.api.strategy: unknown strategy \"fastest\" (expected round-robin, \
         weighted-round-robin, least-conn, p2c, random or consistent-hash)",
    );
    rejects(
        r#"{"pools": {"api": {"backends": [{"url": "ftp://x"}]}}}"#,
        "pools.api.backends[0].url: \"ftp://x\" has unsupported scheme \"ftp\" (use http:// or \
         https://)",
    );
    rejects(
        r#"{"pools": {"api": {"stratgy": "p2c"}}}"#,
        "pools.api.stratgy: unknown key (did you mean \"strategy\"?)",
    );
    rejects(
        r#"{"pools": {"default": {}}}"#,
        "pools.default: the top-level backends are the pool named \"default\"",
    );
    rejects(
        r#"{"pools": {"a b": {}}}"#,
        "pools.\"a b\": \"a b\" is not a pool name (1 to 64 letters, digits, '_', '-' or '.')",
    );
    rejects(
        r#"{"pools": []}"#,
        "pools: expected an object, found an array",
    );
    rejects(
        r#"{"pools": {"a": 1}}"#,
        "pools.a: expected an object, found the number 1",
    );
}

#[test]
fn a_route_names_a_pool_that_exists() {
    rejects(
        &with_routes(r#"[{"pool": "api"}, {"path_prefix": "/x", "pool": "apj"}]"#),
        "routes[1].pool: no pool named \"apj\" (did you mean \"api\"?)",
    );
    rejects(
        &with_routes(r#"[{"pool": "zzzzzz"}]"#),
        "routes[0].pool: no pool named \"zzzzzz\"",
    );
    rejects(
        &with_routes(r#"[{"host": "a.test"}]"#),
        "routes[0].pool: missing (every route needs a pool)",
    );
    // default is always a pool
    let c = parse(&with_routes(
        r#"[{"path_prefix": "/d", "pool": "default"}]"#,
    ));
    assert_eq!(c.routes[0].pool, "default");
}

#[test]
fn hosts_are_names_addresses_or_star_dot_names() {
    for bad in ["*example.com", "a.*.com", "*", "*.*.com"] {
        rejects(
            &with_routes(&format!(r#"[{{"host": "{bad}", "pool": "api"}}]"#)),
            &format!("routes[0].host: \"{bad}\": a wildcard is \"*.\" and a name, as in \"*.example.com\""),
        );
    }
    rejects(
        &with_routes(r#"[{"host": "api.test:8080", "pool": "api"}]"#),
        "routes[0].host: \"api.test:8080\" is not a host name (no scheme, port or path: the port \
         is ignored when matching)",
    );
    rejects(
        &with_routes(r#"[{"host": "a..b", "pool": "api"}]"#),
        "routes[0].host: \"a..b\" is not a host name (letters, digits, '-' and '.', labels of 1 to 63)",
    );
    rejects(
        &with_routes(r#"[{"host": "[::g]", "pool": "api"}]"#),
        "routes[0].host: \"[::g]\" is not an IPv6 address in brackets",
    );
    rejects(
        &with_routes(r#"[{"host": 5, "pool": "api"}]"#),
        "routes[0].host: expected a string, found the number 5",
    );
    let c = parse(&with_routes(
        r#"[{"host": "API.Example.COM", "pool": "api"}, {"host": "*.Example.com", "pool": "api"},
            {"host": "10.0.0.1", "pool": "api"}, {"host": "[::1]", "pool": "api"}]"#,
    ));
    let hosts: Vec<_> = c.routes.iter().map(|r| r.host.as_deref()).collect();
    assert_eq!(
        hosts,
        [
            Some("api.example.com"),
            Some("*.example.com"),
            Some("10.0.0.1"),
            Some("[::1]")
        ]
    );
}

#[test]
fn prefixes_are_paths_and_strip_needs_one() {
    rejects(
        &with_routes(r#"[{"path_prefix": "v2/", "pool": "api"}]"#),
        "routes[0].path_prefix: \"v2/\" must start with \"/\"",
    );
    rejects(
        &with_routes(r#"[{"path_prefix": "/a?b", "pool": "api"}]"#),
        "routes[0].path_prefix: \"/a?b\" holds '?': a prefix is matched against the path, which \
         has no query, fragment, space or control character",
    );
    let long = format!("/{}", "a".repeat(MAX_PREFIX));
    rejects(
        &with_routes(&format!(r#"[{{"path_prefix": "{long}", "pool": "api"}}]"#)),
        "routes[0].path_prefix: longer than 1024 bytes",
    );
    for no_prefix in [r#""pool": "api""#, r#""path_prefix": "/", "pool": "api""#] {
        rejects(
            &with_routes(&format!(r#"[{{{no_prefix}, "strip_prefix": true}}]"#)),
            "routes[0].strip_prefix: there is no path_prefix to strip (set one, or leave \
             strip_prefix out)",
        );
    }
    rejects(
        &with_routes(r#"[{"path_prefix": "/v2", "pool": "api", "strip_prefix": "yes"}]"#),
        "routes[0].strip_prefix: expected true or false, found the string \"yes\"",
    );
}

#[test]
fn duplicates_unknown_keys_and_the_cap() {
    rejects(
        &with_routes(
            r#"[{"host": "a.test", "pool": "api"}, {"host": "b.test", "pool": "api"},
                {"host": "A.test", "path_prefix": "/", "pool": "default"}]"#,
        ),
        "routes[2]: the same host and path_prefix as routes[0]",
    );
    rejects(
        &with_routes(
            r#"[{"host": "a.test", "pool": "api", "name": "x"},
                {"host": "b.test", "pool": "api", "name": "x"}]"#,
        ),
        "routes[1].name: \"x\" is also routes[0]'s name",
    );
    rejects(
        &with_routes(r#"[{"hots": "a.test", "pool": "api"}]"#),
        "routes[0].hots: unknown key (did you mean \"host\"?)",
    );
    rejects(
        &with_routes("{}"),
        "routes: expected an array, found an object",
    );
    let many: Vec<String> = (0..=MAX_ROUTES)
        .map(|i| format!(r#"{{"path_prefix": "/{i}", "pool": "api"}}"#))
        .collect();
    rejects(
        &with_routes(&format!("[{}]", many.join(","))),
        "routes: 10001 routes; at most 10000 are allowed",
    );
}

#[test]
fn names_are_derived_from_host_and_prefix() {
    let c = parse(&with_routes(
        r#"[{"host": "api.test", "pool": "api"}, {"host": "*.test", "path_prefix": "/s/", "pool": "api"},
            {"path_prefix": "/v2/", "pool": "api", "strip_prefix": true}, {"pool": "default", "name": "rest"}]"#,
    ));
    let names: Vec<&str> = c.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["api.test/", "*.test/s/", "*/v2/", "rest"]);
    assert!(c.routes[2].strip_prefix);
}

#[test]
fn unused_and_empty_pools_are_warnings() {
    let c = parse(
        r#"{"backends": [{"url": "http://127.0.0.1:8000"}],
            "pools": {"api": {"backends": [{"url": "http://127.0.0.1:9000"}]}, "idle": {}},
            "routes": [{"host": "api.test", "pool": "api"}]}"#,
    );
    let w = c.warnings();
    assert!(
        w.contains(&"pools.idle: no route sends requests to it".to_owned()),
        "{w:?}"
    );
    assert!(
        w.contains(&"pools.idle: no backends configured: its requests will get 503".to_owned()),
        "{w:?}"
    );
    assert!(!w.iter().any(|l| l.starts_with("pools.api")), "{w:?}");
    // routes and no top-level backends: unmatched requests get 404, which is meant
    let c = parse(&with_routes(r#"[{"host": "api.test", "pool": "api"}]"#));
    assert!(!c.default_serves());
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
}

#[test]
fn pools_and_routes_read_back_equal_and_secrets_are_redacted() {
    let c = parse(
        r#"{"pools": {"api": {"backends": [{"url": "http://127.0.0.1:9000", "weight": 3}],
                              "sticky_cookie_secret": "0123456789abcdefgh"}},
            "routes": [{"host": "*.test", "path_prefix": "/a", "pool": "api", "strip_prefix": true}]}"#,
    );
    let text = serde_json::to_string(&c).expect("serialises");
    assert_eq!(parse(&text), c, "{text}");
    let shown = c.redacted();
    assert_eq!(
        shown.pools[0].pool.sticky.cookie_secret.as_deref(),
        Some(REDACTED)
    );
    // without pools and routes, neither is written
    let plain = serde_json::to_value(parse("{}")).expect("serialises");
    assert!(plain.get("pools").is_none() && plain.get("routes").is_none());
}

#[test]
fn a_backend_of_a_pool_is_checked_like_the_top_levels() {
    rejects(
        r#"{"pools": {"api": {"backends": [{"url": "http://169.254.169.254"}]}}}"#,
        &error(r#"{"backends": [{"url": "http://169.254.169.254"}]}"#).replacen(
            "backends",
            "pools.api.backends",
            1,
        ),
    );
    rejects(
        r#"{"pools": {"api": {"backends": [{"url": "http://127.0.0.1:1"}, {"url": "http://127.0.0.1:1/"}]}}}"#,
        "pools.api.backends[1].url: \"http://127.0.0.1:1/\" is the same backend as backends[0] \
         (\"http://127.0.0.1:1\")",
    );
}
