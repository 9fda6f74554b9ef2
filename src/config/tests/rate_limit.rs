//! `rate_limit` (top level, per pool, per route), `rate_limit_exempt` and `rate_limit_max_keys`:
//! defaults, inheritance, `false` and `null`, every check (each message exact) and the round trip.

use super::*;

const API: &str = r#""api": {"backends": [{"url": "http://127.0.0.1:9000"}]}"#;

fn limit(rps: f64, burst: u32, key: HashKey) -> Option<RateLimit> {
    let text = serde_json::json!({"requests_per_second": rps, "burst": burst});
    let mut c = parse(&format!(r#"{{"rate_limit": {text}}}"#));
    if let Some(l) = c.pool.rate_limit.limit.as_mut() {
        l.key = key;
    }
    c.pool.rate_limit.limit
}

#[test]
fn off_by_default_and_read_with_its_defaults() {
    let c = parse("{}");
    assert_eq!(c.pool.rate_limit.limit, None);
    assert!(c.pool.rate_limit.exempt.is_empty());
    assert_eq!(c.rate_limit_table.max_keys, 65_536);
    let c = parse(r#"{"rate_limit": {"requests_per_second": 2.5}}"#);
    let l = c.pool.rate_limit.limit.expect("a limit");
    assert_eq!(l.requests_per_second.get(), 2.5);
    assert_eq!(l.burst, 3, "the rate rounded up");
    assert_eq!(l.key, HashKey::ClientIp);
    let c = parse(
        r#"{"rate_limit": {"requests_per_second": 50, "burst": 100, "key": "header:X-Api-Key"},
            "rate_limit_exempt": ["10.0.0.0/8", "::1"], "rate_limit_max_keys": 1000}"#,
    );
    let l = c.pool.rate_limit.limit.expect("a limit");
    assert_eq!((l.burst, l.key), (100, HashKey::Header("X-Api-Key".into())));
    assert_eq!(c.pool.rate_limit.exempt.len(), 2);
    assert_eq!(c.rate_limit_table.max_keys, 1000);
    let c = parse(r#"{"rate_limit": {"requests_per_second": 1, "key": "cookie:sid"}}"#);
    assert_eq!(
        c.pool.rate_limit.limit.map(|l| l.key),
        Some(HashKey::Cookie("sid".into()))
    );
    assert_eq!(
        parse(r#"{"rate_limit": false}"#).pool.rate_limit.limit,
        None
    );
}

#[test]
fn a_pool_inherits_the_limit_unless_it_sets_its_own_or_false() {
    let c = parse(&format!(
        r#"{{"rate_limit": {{"requests_per_second": 10}}, "rate_limit_exempt": ["10.0.0.0/8"],
            "pools": {{{API}, "own": {{"rate_limit": {{"requests_per_second": 1}}}},
                       "off": {{"rate_limit": false}}, "same": {{"rate_limit": null}}}}}}"#
    ));
    let pool = |name: &str| &c.pools.iter().find(|p| p.name == name).expect(name).pool;
    assert_eq!(
        pool("api").rate_limit.limit,
        limit(10.0, 10, HashKey::ClientIp)
    );
    assert_eq!(pool("api").rate_limit.exempt.len(), 1, "inherited");
    assert_eq!(
        pool("own").rate_limit.limit,
        limit(1.0, 1, HashKey::ClientIp)
    );
    assert_eq!(pool("off").rate_limit.limit, None);
    assert_eq!(
        pool("same").rate_limit.limit,
        limit(10.0, 10, HashKey::ClientIp),
        "null is absent"
    );
}

#[test]
fn a_route_has_its_pools_limit_its_own_or_none() {
    let c = parse(&format!(
        r#"{{"pools": {{{API}}}, "routes": [
            {{"path_prefix": "/a", "pool": "api"}},
            {{"path_prefix": "/b", "pool": "api", "rate_limit": {{"requests_per_second": 0.5}}}},
            {{"path_prefix": "/c", "pool": "api", "rate_limit": null}},
            {{"path_prefix": "/d", "pool": "api", "rate_limit": false}}]}}"#
    ));
    let limits: Vec<&RouteLimit> = c.routes.iter().map(|r| &r.rate_limit).collect();
    let own = limit(0.5, 1, HashKey::ClientIp).map(RouteLimit::Own);
    assert_eq!(
        limits,
        [
            &RouteLimit::Pool,
            own.as_ref().expect("own"),
            &RouteLimit::Off,
            &RouteLimit::Off
        ]
    );
}

#[test]
fn each_fault_names_its_field() {
    rejects(
        r#"{"rate_limit": {"burst": 3}}"#,
        "rate_limit.requests_per_second: missing (a rate limit needs its rate)",
    );
    rejects(
        r#"{"rate_limit": {"requests_per_second": 0}}"#,
        "rate_limit.requests_per_second: must be at least 0.001 (a request every 1000 s)",
    );
    rejects(
        r#"{"rate_limit": {"requests_per_second": 1000001}}"#,
        "rate_limit.requests_per_second: must be at most 1000000",
    );
    rejects(
        r#"{"rate_limit": {"requests_per_second": "50"}}"#,
        "rate_limit.requests_per_second: expected a number, found the string \"50\"",
    );
    rejects(
        r#"{"rate_limit": {"requests_per_second": 5, "burst": 0}}"#,
        "rate_limit.burst: must be at least 1",
    );
    rejects(
        r#"{"rate_limit": {"requests_per_second": 5, "burst": 1.5}}"#,
        "rate_limit.burst: expected an integer, found the number 1.5",
    );
    rejects(
        r#"{"rate_limit": {"requests_per_second": 5, "key": "ip"}}"#,
        "rate_limit.key: \"ip\" is not a rate limit key (expected \"client_ip\", \
         \"header:NAME\" or \"cookie:NAME\", NAME a field or cookie name)",
    );
    rejects(
        r#"{"rate_limit": {"requests_per_second": 5, "brust": 9}}"#,
        "rate_limit.brust: unknown key (did you mean \"burst\"?)",
    );
    rejects(
        r#"{"rate_limit": {"requests_per_second": 5, "period": "1m"}}"#,
        "rate_limit.period: unknown key (expected one of: requests_per_second, burst, key)",
    );
    rejects(
        r#"{"rate_limit": true}"#,
        "rate_limit: expected an object such as {\"requests_per_second\": 50} or false, \
         found true",
    );
    rejects(
        r#"{"rate_limit_exempt": ["10.0.0.0/33"]}"#,
        "rate_limit_exempt[0]: prefix length 33 is above 32",
    );
    rejects(
        r#"{"rate_limit_max_keys": 10}"#,
        "rate_limit_max_keys: must be at least 64",
    );
    rejects(
        r#"{"rate_limit_max_keys": 20000000}"#,
        "rate_limit_max_keys: must be at most 16777216",
    );
    rejects(
        &format!(r#"{{"pools": {{{API}, "b": {{"rate_limit": {{"burst": 2}}}}}}}}"#),
        "pools.b.rate_limit.requests_per_second: missing (a rate limit needs its rate)",
    );
    rejects(
        &format!(
            r#"{{"pools": {{{API}}}, "routes": [{{"pool": "api"}},
                {{"path_prefix": "/x", "pool": "api", "rate_limit": {{"requests_per_second": -1}}}}]}}"#
        ),
        "routes[1].rate_limit.requests_per_second: must be at least 0.001 (a request every \
         1000 s)",
    );
    rejects(
        &format!(
            r#"{{"pools": {{{API}}}, "routes": [{{"pool": "api", "rate_limit": {{"requests_per_second": 1, "kye": "client_ip"}}}}]}}"#
        ),
        "routes[0].rate_limit.kye: unknown key (did you mean \"key\"?)",
    );
    rejects(
        &format!(r#"{{"pools": {{{API}}}, "routes": [{{"pool": "api", "rate_limit": 5}}]}}"#),
        "routes[0].rate_limit: expected an object such as {\"requests_per_second\": 50} or \
         false, found the number 5",
    );
}

#[test]
fn the_file_form_reads_back_the_same() {
    let c = parse(&format!(
        r#"{{"rate_limit": {{"requests_per_second": 0.25, "burst": 4, "key": "cookie:sid"}},
            "rate_limit_exempt": ["192.168.0.0/16"], "rate_limit_max_keys": 4096,
            "pools": {{{API}, "off": {{"rate_limit": false}}}},
            "routes": [{{"path_prefix": "/a", "pool": "api"}},
                       {{"path_prefix": "/b", "pool": "api", "rate_limit": false}},
                       {{"path_prefix": "/c", "pool": "off",
                         "rate_limit": {{"requests_per_second": 3}}}}]}}"#
    ));
    let text = serde_json::to_string(&c).expect("serialises");
    assert_eq!(parse(&text), c, "{text}");
    let value: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        value["rate_limit"],
        serde_json::json!({"requests_per_second": 0.25, "burst": 4, "key": "cookie:sid"})
    );
    assert_eq!(
        value["pools"]["off"]["rate_limit"],
        serde_json::json!(false)
    );
    assert_eq!(value["routes"][1]["rate_limit"], serde_json::json!(false));
    assert_eq!(
        value["routes"][2]["rate_limit"],
        serde_json::json!({"requests_per_second": 3, "burst": 3, "key": "client_ip"})
    );
    assert!(value["routes"][0].get("rate_limit").is_none());
    // none at the top level is written false
    let plain = serde_json::to_value(parse("{}")).expect("serialises");
    assert_eq!(plain["rate_limit"], serde_json::json!(false));
}
