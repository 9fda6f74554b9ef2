//! Unit tests of the pools: indexes kept across publishes, backend ids, unmatched requests,
//! route counts, rate-limit scopes, a worker's view and its router.

use super::*;
use crate::balancer::tests::cfg;
use crate::balancer::{Ask, Choice};
use crate::http::request::Router;

fn pool_of(ports: &[u16]) -> PoolConfig {
    PoolConfig {
        backends: ports.iter().map(|&p| cfg(p, 1)).collect(),
        ..PoolConfig::default()
    }
}

fn route(name: &str, host: Option<&str>, prefix: Option<&str>, pool: &str) -> RouteConfig {
    RouteConfig {
        name: name.into(),
        host: host.map(Into::into),
        path_prefix: prefix.map(Into::into),
        pool: pool.into(),
        strip_prefix: false,
        rate_limit: config::RouteLimit::Pool,
    }
}

fn members(common: &Common, names: &[(&str, &[u16])]) -> Vec<Member> {
    names
        .iter()
        .map(|(n, ports)| member(common, n, &pool_of(ports), Vec::new()))
        .collect()
}

fn ask() -> Ask {
    Ask {
        key: 1,
        client: 1,
        cookie: None,
        exclude: None,
        now: std::time::Instant::now(),
    }
}

#[test]
fn a_pool_keeps_its_index_across_publishes_and_a_new_one_never_takes_a_removed_ones() {
    let common = Common::default();
    let default = member(&common, "default", &pool_of(&[1]), Vec::new());
    let first = members(&common, &[("a", &[2]), ("b", &[3])]);
    let b = first[1].clone();
    let pools = Pools::new(common.clone(), 1, default.clone(), first, &[], true, 64);
    let t = pools.current();
    assert_eq!(t.index_of("a"), Some(1));
    assert_eq!(t.index_of("b"), Some(2));
    let c = members(&common, &[("c", &[4])]).remove(0);
    let gone = pools.publish(default, vec![c, b], &[], true);
    assert_eq!(gone.iter().map(|m| &*m.name).collect::<Vec<_>>(), ["a"]);
    let t = pools.current();
    assert_eq!(t.index_of("b"), Some(2), "b keeps its index");
    assert_eq!(t.index_of("c"), Some(3), "c gets an index never used");
    assert!(t.member(1).is_none(), "a's index is a hole");
}

#[test]
fn backend_ids_are_unique_across_pools_and_find_backend_names_the_pool() {
    let common = Common::default();
    let default = member(&common, "default", &pool_of(&[1, 2]), Vec::new());
    let others = members(&common, &[("api", &[3, 4])]);
    let pools = Pools::new(common, 1, default, others, &[], true, 64);
    let t = pools.current();
    let mut ids: Vec<u64> = t
        .members()
        .flat_map(|(_, m)| m.balancer.current().backends().to_vec())
        .map(|b| b.id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    let api = t.by_name("api").map(|m| m.balancer.current());
    let id = api
        .as_ref()
        .and_then(|p| p.backends().first())
        .map(|b| b.id);
    let found = id.and_then(|id| t.find_backend(id));
    assert_eq!(
        found.map(|(m, b)| (&*m.name, b.addr.port())),
        Some(("api", 3))
    );
}

#[test]
fn unmatched_requests_go_to_default_only_when_it_serves() {
    let common = Common::default();
    let default = member(&common, "default", &pool_of(&[1]), Vec::new());
    let others = members(&common, &[("api", &[2])]);
    let routes = [route("api", Some("api.example"), None, "api")];
    let pools = Pools::new(
        common,
        1,
        default.clone(),
        others.clone(),
        &routes,
        false,
        64,
    );
    let t = pools.current();
    assert_eq!(t.find(b"api.example:8080", b"/x").map(|m| m.pool), Some(1));
    assert_eq!(t.find(b"other.example", b"/x"), None);
    pools.publish(default, others, &routes, true);
    let t = pools.current();
    let found = t.find(b"other.example", b"/x");
    assert_eq!(found.map(|m| (m.pool, m.route)), Some((0, None)));
}

#[test]
fn route_counts_add_up_over_workers_and_survive_a_publish_that_keeps_the_route() {
    let common = Common::default();
    let default = member(&common, "default", &pool_of(&[1]), Vec::new());
    let others = members(&common, &[("api", &[2])]);
    let routes = [
        route("api", Some("api.example"), None, "api"),
        route("v2", None, Some("/v2"), "api"),
    ];
    let pools = Pools::new(
        common,
        2,
        default.clone(),
        others.clone(),
        &routes,
        true,
        64,
    );
    for worker in 0..2 {
        let view = View::new(&pools, worker);
        let router = view.router();
        for _ in 0..3 {
            assert!(router.route(b"api.example", b"/").is_some());
        }
        assert!(router.route(b"x.example", b"/v2/a").is_some());
        assert!(router.route(b"x.example", b"/v3").is_some(), "default");
    }
    let counts = |t: &Table| {
        t.routes()
            .map(|r| (r.name.to_owned(), r.requests))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        counts(&pools.current()),
        [("api".into(), 6), ("v2".into(), 2)]
    );
    // a reload drops v2 and adds v3: api keeps its count
    let next = [
        route("api", Some("api.example"), None, "api"),
        route("v3", None, Some("/v3"), "api"),
    ];
    pools.publish(default, others, &next, true);
    assert_eq!(
        counts(&pools.current()),
        [("api".into(), 6), ("v3".into(), 0)]
    );
}

#[test]
fn rate_limits_by_scope_kept_across_a_publish_and_counted() {
    let common = Common::default();
    let text = r#"{"rate_limit": {"requests_per_second": 0.1, "burst": 1}}"#;
    let keys = config::Config::from_json_str(text)
        .expect("valid")
        .pool
        .rate_limit;
    let limit = keys.limit.clone().expect("a limit");
    let limited = PoolConfig {
        rate_limit: keys,
        ..pool_of(&[1])
    };
    let default = member(&common, "default", &limited, Vec::new());
    let routes = [
        route("shared", None, Some("/s"), "default"),
        RouteConfig {
            rate_limit: config::RouteLimit::Own(limit),
            ..route("own", None, Some("/own"), "default")
        },
        RouteConfig {
            rate_limit: config::RouteLimit::Off,
            ..route("off", None, Some("/off"), "default")
        },
    ];
    let pools = Pools::new(common, 2, default.clone(), Vec::new(), &routes, true, 64);
    let view = View::new(&pools, 0);
    let ip: std::net::IpAddr = "192.0.2.1".parse().expect("ip");
    assert_eq!(view.over_limit(0, None, ip, 7, None), None);
    // a route without its own limit shares its pool's bucket; one with its own has its own
    assert_eq!(view.over_limit(0, Some(0), ip, 7, None), Some(10));
    assert_eq!(view.over_limit(0, Some(1), ip, 7, None), None);
    for _ in 0..3 {
        assert_eq!(view.over_limit(0, Some(2), ip, 7, None), None, "off");
    }
    // another client, and a header's value in place of the client's hash
    assert_eq!(view.over_limit(0, None, ip, 8, None), None);
    assert_eq!(view.over_limit(0, None, ip, 7, Some(9)), None);
    assert!(view.over_limit(0, None, ip, 9, Some(9)).is_some());
    // a publish keeps the buckets, and the counts of the routes it keeps
    pools.publish(default, Vec::new(), &routes, true);
    let view = View::new(&pools, 1);
    assert!(view.over_limit(0, None, ip, 7, None).is_some());
    assert!(view.over_limit(0, Some(1), ip, 7, None).is_some());
    let t = pools.current();
    let limits = t.limits();
    let counts: Vec<u64> = [Some(0), Some(1), Some(2), None]
        .map(|r| limits.refused(r))
        .to_vec();
    assert_eq!(counts, [1, 1, 0, 2]);
    assert!(limits.limits(Some(0)) && limits.limits(None) && !limits.limits(Some(2)));
}

#[test]
fn a_view_follows_the_table_and_a_removed_pool_picks_nothing() {
    let common = Common::default();
    let default = member(&common, "default", &pool_of(&[1]), Vec::new());
    let others = members(&common, &[("api", &[2])]);
    let pools = Pools::new(common, 1, default.clone(), others, &[], true, 64);
    let mut view = View::new(&pools, 0);
    assert!(
        matches!(view.choose(1, &ask()), Choice::Backend { backend, .. } if backend.addr.port() == 2)
    );
    pools.publish(default, Vec::new(), &[], true);
    view.refresh(&pools);
    assert!(matches!(view.choose(1, &ask()), Choice::None));
    assert!(view.balancer(1).is_none());
    // its requests still in flight read the default pool's keys
    assert_eq!(view.settings(1), &*view.table().default().settings);
    assert!(
        matches!(view.choose(0, &ask()), Choice::Backend { backend, .. } if backend.addr.port() == 1)
    );
}

#[test]
fn the_router_hands_over_the_matched_pools_own_keys() {
    let common = Common::default();
    let default = member(&common, "default", &pool_of(&[1]), Vec::new());
    let mut api = pool_of(&[2]);
    api.sticky.enabled = true;
    api.sticky.mode = StickyMode::Cookie;
    api.sticky.cookie_name = "API_STICKY".into();
    api.balance.hash_key = HashKey::Header("X-User".into());
    let others = vec![member(&common, "api", &api, Vec::new())];
    let routes = [RouteConfig {
        strip_prefix: true,
        ..route("api", None, Some("/api"), "api")
    }];
    let pools = Pools::new(common, 1, default, others, &routes, true, 64);
    let view = View::new(&pools, 0);
    let router = view.router();
    let r = router.route(b"h", b"/api/users");
    assert_eq!(r.map(|r| (r.pool, r.route, r.strip)), Some((1, Some(0), 4)));
    assert_eq!(r.and_then(|r| r.sticky_cookie), Some(&b"API_STICKY"[..]));
    assert_eq!(r.map(|r| r.key), Some(KeySource::Header(b"X-User")));
    let d = router.route(b"h", b"/other");
    assert_eq!(
        d.map(|r| (r.pool, r.route, r.sticky_cookie)),
        Some((0, None, None))
    );
}
