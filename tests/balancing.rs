//! Load balancing, end to end: real sockets through a running ferrule (2 workers unless a test
//! says otherwise) to real backends, which say who they are (`X-Backend`). What it proves:
//!
//! - `weighted-round-robin` is one schedule for the whole proxy: weights 5:3:2 split every ten
//!   requests exactly 5/3/2 though each comes on a new connection (so on either worker), and a
//!   thousand requests from parallel clients, on new and kept-alive connections, split 50/30/20 %
//!   within 2 points; plain `round-robin` never sends two of three consecutive requests to the
//!   same backend.
//! - A weight changed through `Balancer::update` applies from the very next request, interleaved
//!   (no backend takes more than two turns in a row), cycle after cycle.
//! - `least-conn` and `p2c` send nothing new to a backend holding requests while others are free.
//! - `random` with weights 3:1 splits 2,000 requests 75/25 % within 4 points.
//! - `consistent-hash`: a key (`header:NAME`, `cookie:NAME`, or the client address when the
//!   request has neither) always reaches the same backend, whichever connection and worker it
//!   comes on; two ferrule processes with the same backends agree on every key; removing a
//!   backend moves only the keys it had.
//! - Sticky sessions by address hold across workers, and move (once, for good) when the backend is
//!   disabled; by cookie: the cookie's exact form, routing by it on any worker and in another
//!   process, replacement of unknown and malformed ones, the backend's own cookies untouched,
//!   stripping, `Secure` over TLS; with `sticky_cookie_secret`, the same cookies from every
//!   instance that shares the secret, other ones under another secret or none, and the plain
//!   (computable) value of a backend not honoured.
//! - `max_conns`: never more requests in flight at a backend than its limit, across workers; the
//!   others wait and go in arrival order (a worker's queue) as slots free, a slot freed on one
//!   worker reaching a request waiting on the other; a wait ends at `queue_timeout` with `503`
//!   and `Retry-After`, not before; a client that leaves the queue loses its turn to nobody.
//! - No available backend is a `503`; `fail_open` serves from backends that are all marked down,
//!   but never from disabled ones.
//!
//! - A waiting request takes a backend that becomes available or is added, and a slot another
//!   worker frees while it is being queued (a lost wake-up, looked for by a bounded stress loop).
//!   These three found bugs, since fixed.
//!
//! Every wait is bounded, and waits on a signal (a backend reporting an arrival, a response, a
//! round trip through the proxy) rather than on the clock, except where the clock is the subject
//! (`queue_timeout`, and the lost wake-up's timing offsets).

use crate::common;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

use common::tls::{pki, tls_proxy, ANY_VERSION};
use common::*;
use serde_json::{json, Value};

// ----------------------------------------------------------------------------- helpers

/// A config of `workers` workers in front of `backends` (address and weight), with `extra`.
fn config(workers: usize, backends: &[(SocketAddr, u32)], extra: Value) -> Value {
    let list: Vec<Value> = backends
        .iter()
        .map(|(a, w)| json!({"url": format!("http://{a}"), "weight": w}))
        .collect();
    let mut cfg = json!({
        "port": 0,
        "admin_port": 0,
        "bind": "127.0.0.1",
        "workers": workers,
        "backends": list,
    });
    if let (Some(map), Value::Object(more)) = (cfg.as_object_mut(), extra) {
        map.extend(more);
    }
    cfg
}

fn proxy_of(cfg: &Value) -> Proxy {
    Proxy::from_json(&cfg.to_string())
}

/// `GET path` with `fields` (each line ending in CRLF) on a new connection, closed after.
fn get_new(addr: SocketAddr, path: &str, fields: &str) -> Response {
    let mut c = Client::connect(addr);
    get_closing(&mut c, path, fields)
}

/// `GET path` with `fields`, asking the proxy to close `c` after the response.
fn get_closing(c: &mut Client, path: &str, fields: &str) -> Response {
    c.send(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n{fields}Connection: close\r\n\r\n")
            .as_bytes(),
    );
    c.response()
}

/// `GET path` with `fields` on `c`, which stays open.
fn get_on(c: &mut Client, path: &str, fields: &str) -> Response {
    c.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n{fields}\r\n").as_bytes());
    c.response()
}

/// Who served `r`, after checking it is a 200.
#[track_caller]
fn ok_from(r: &Response) -> String {
    assert_eq!(r.status, 200, "{r:?}");
    served_by(r)
}

/// How many of `served` went to each of `names`, in that order.
fn tally(served: &[String], names: &[&str]) -> Vec<usize> {
    names
        .iter()
        .map(|n| served.iter().filter(|s| s.as_str() == *n).count())
        .collect()
}

/// The pool id of the backend at `addr`.
fn id_of(proxy: &Proxy, addr: SocketAddr) -> u64 {
    proxy
        .handle
        .balancer()
        .current()
        .backends()
        .iter()
        .find(|b| b.addr == addr)
        .unwrap_or_else(|| panic!("{addr} is not in the pool"))
        .id
}

/// Marks the backend at `addr` enabled or not (its flag, in place: no new pool).
fn set_enabled(proxy: &Proxy, addr: SocketAddr, enabled: bool) {
    let id = id_of(proxy, addr);
    let pool = proxy.handle.balancer().current();
    pool.get(id).expect("in the pool").set_enabled(enabled);
}

/// The longest run of one backend in `served`.
fn longest_run(served: &[String]) -> usize {
    let mut best = 0;
    let mut run = 0;
    for (i, s) in served.iter().enumerate() {
        run = if i > 0 && served[i - 1] == *s {
            run + 1
        } else {
            1
        };
        best = best.max(run);
    }
    best
}

/// Asserts that every worker accepted at least one connection between `before` and now.
#[track_caller]
fn assert_every_worker_served(proxy: &Proxy, before: &[u64]) {
    let after = accepted_per_worker(proxy.admin());
    assert_eq!(after.len(), before.len());
    assert!(
        after.iter().zip(before).all(|(a, b)| a > b),
        "a worker got none of the connections: accepted {before:?} before, {after:?} after"
    );
}

/// `127.0.0.n`: a client address of its own for each `n`.
fn local(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// Runs `clients` threads, each making `per_client` requests through `addr` on connections that
/// carry 1, 2, 3, 5 or 7 requests in turn (so new and kept-alive ones mix); returns who served
/// each request.
fn parallel_requests(addr: SocketAddr, clients: usize, per_client: usize) -> Vec<String> {
    const LENGTHS: [usize; 5] = [1, 2, 3, 5, 7];
    let threads: Vec<_> = (0..clients)
        .map(|t| {
            thread::spawn(move || {
                let mut served = Vec::with_capacity(per_client);
                let mut turn = t;
                while served.len() < per_client {
                    let n = LENGTHS[turn % LENGTHS.len()].min(per_client - served.len());
                    turn += 1;
                    let mut c = Client::connect(addr);
                    for _ in 0..n {
                        served.push(ok_from(&get_on(&mut c, "/", "")));
                    }
                }
                served
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().expect("client thread"))
        .collect()
}

/// Asserts that `got` of `total` is `want` % give or take `points`.
#[track_caller]
fn assert_share(what: &str, got: usize, total: usize, want: f64, points: f64) {
    let share = got as f64 * 100.0 / total as f64;
    assert!(
        (share - want).abs() <= points,
        "{what}: {share:.1} % ({got} of {total}), expected {want} % ± {points}"
    );
}

// ----------------------------------------------------------------------------- round-robin

#[test]
fn weighted_round_robin_splits_exactly_by_weight_across_workers() {
    let [a, b, c] = ["a", "b", "c"].map(Backend::start);
    let proxy = proxy_of(&config(
        2,
        &[(a.addr, 5), (b.addr, 3), (c.addr, 2)],
        json!({"strategy": "weighted-round-robin"}),
    ));
    let before = accepted_per_worker(proxy.admin());
    // requests one after another, each on a new connection, so on either worker: any ten in a
    // row split exactly 5/3/2 (schedules of their own per worker would not, a cycle split
    // between the two being two partial cycles)
    let served: Vec<String> = (0..200).map(|_| ok_from(&proxy.get("/"))).collect();
    for (i, ten) in served.windows(10).enumerate() {
        assert_eq!(
            tally(ten, &["a", "b", "c"]),
            [5, 3, 2],
            "requests {i}..{}: {ten:?}",
            i + 10
        );
    }
    assert_every_worker_served(&proxy, &before);

    // a thousand more from four clients at once, on new and kept-alive connections
    let served = parallel_requests(proxy.addr(), 4, 250);
    let counts = tally(&served, &["a", "b", "c"]);
    assert_eq!(counts.iter().sum::<usize>(), 1000, "{counts:?}");
    for (name, (&got, want)) in ["a", "b", "c"]
        .iter()
        .zip(counts.iter().zip([50.0, 30.0, 20.0]))
    {
        assert_share(name, got, 1000, want, 2.0);
    }
    // and the backends counted the same
    let at = [&a, &b, &c].map(|x| x.record.count());
    assert_eq!(at.iter().sum::<usize>(), 1200, "{at:?}");
}

#[test]
fn round_robin_sends_any_three_consecutive_requests_to_three_backends() {
    let [a, b, c] = ["a", "b", "c"].map(Backend::start);
    let proxy = Proxy::start(
        &[a.addr, b.addr, c.addr],
        json!({"strategy": "round-robin"}),
    );
    let mut kept = proxy.connect();
    let served: Vec<String> = (0..60)
        .map(|i| {
            // a kept-alive connection (on one worker) and new ones (on either), interleaved
            let r = if i % 3 == 0 {
                get_on(&mut kept, "/", "")
            } else {
                proxy.get("/")
            };
            ok_from(&r)
        })
        .collect();
    for (i, w) in served.windows(3).enumerate() {
        let distinct: HashSet<&String> = w.iter().collect();
        assert_eq!(distinct.len(), 3, "requests {i}..{}: {w:?}", i + 3);
    }
}

#[test]
fn a_weight_change_applies_from_the_next_request_without_a_burst() {
    let [a, b, c] = ["a", "b", "c"].map(Backend::start);
    let proxy = proxy_of(&config(
        2,
        &[(a.addr, 1), (b.addr, 1), (c.addr, 1)],
        json!({"strategy": "weighted-round-robin"}),
    ));
    let ids = [&a, &b, &c].map(|x| id_of(&proxy, x.addr));
    let names = ["a", "b", "c"];
    let run = |n: usize| -> Vec<String> { (0..n).map(|_| ok_from(&proxy.get("/"))).collect() };
    // part of a 1:1:1 cycle, then the weights change mid-cycle
    let first = run(4);
    assert_eq!(tally(&first, &names).iter().max(), Some(&2), "{first:?}");

    let changes: [[u32; 3]; 3] = [[5, 3, 2], [5, 3, 5], [1, 3, 5]];
    for weights in changes {
        let changed = proxy.handle.balancer().update(|pool| {
            ids.iter()
                .zip(weights)
                .all(|(&id, w)| pool.set_weight(id, w))
        });
        assert!(changed);
        let cycle: usize = weights.iter().map(|&w| w as usize).sum();
        let served = run(3 * cycle);
        // from the first request after the change, every cycle splits by the new weights...
        for (k, window) in served.chunks(cycle).enumerate() {
            let want: Vec<usize> = weights.iter().map(|&w| w as usize).collect();
            assert_eq!(
                tally(window, &names),
                want,
                "weights {weights:?}, cycle {k} after the change: {window:?}"
            );
        }
        // ...interleaved: nobody takes more than two turns in a row
        assert!(
            longest_run(&served) <= 2,
            "weights {weights:?}: a burst in {served:?}"
        );
    }
}

// ----------------------------------------------------------------------------- least-conn, p2c

/// With `HELD` requests in flight at a backend that holds them, `strategy` sends every new
/// request, from parallel clients on new and kept-alive connections, to the two free backends.
fn new_requests_avoid_a_backend_holding_requests(strategy: &str) {
    const HELD: usize = 8;
    const CLIENTS: usize = 4; // fewer than HELD: the free backends never look as busy
    let slow = GatedBackend::start("slow");
    let fast = [Backend::start("fast1"), Backend::start("fast2")];
    let proxy = Proxy::start(
        &[slow.addr(), fast[0].addr, fast[1].addr],
        json!({"strategy": strategy}),
    );
    // put HELD requests on the slow backend: for the moment it is the only one enabled
    for f in &fast {
        set_enabled(&proxy, f.addr, false);
    }
    let held: Vec<Client> = (0..HELD)
        .map(|i| {
            let mut c = proxy.connect();
            c.send(
                format!("GET /held{i} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            c
        })
        .collect();
    for _ in 0..HELD {
        slow.next_arrival();
    }
    assert_eq!(slow.in_flight(), HELD);
    assert_eq!(active_connections(&proxy, slow.addr()), HELD as u64);
    for f in &fast {
        set_enabled(&proxy, f.addr, true);
    }

    let served = parallel_requests(proxy.addr(), CLIENTS, 40);
    let counts = tally(&served, &["slow", "fast1", "fast2"]);
    assert_eq!(counts[0], 0, "{strategy}: {counts:?}");
    assert_eq!(slow.backend.record.count(), HELD, "{strategy}");
    assert_eq!(slow.unreported_arrival(), None, "{strategy}");
    // both free backends took a fair part
    for (name, &n) in ["fast1", "fast2"].iter().zip(&counts[1..]) {
        assert!(n >= 40, "{strategy}: {name} took {n} of 160: {counts:?}");
    }

    slow.open();
    for (i, mut c) in held.into_iter().enumerate() {
        let r = c.response();
        assert_eq!((r.status, r.text()), (200, format!("answer to /held{i}")));
    }
}

#[test]
fn least_conn_steers_new_requests_around_a_backend_holding_requests() {
    new_requests_avoid_a_backend_holding_requests("least-conn");
}

#[test]
fn p2c_steers_new_requests_around_a_backend_holding_requests() {
    new_requests_avoid_a_backend_holding_requests("p2c");
}

// ----------------------------------------------------------------------------- random

#[test]
fn random_splits_by_weight() {
    let [a, b] = ["a", "b"].map(Backend::start);
    let proxy = proxy_of(&config(
        2,
        &[(a.addr, 3), (b.addr, 1)],
        json!({"strategy": "random"}),
    ));
    let before = accepted_per_worker(proxy.admin());
    let served = parallel_requests(proxy.addr(), 4, 500);
    assert_every_worker_served(&proxy, &before);
    let counts = tally(&served, &["a", "b"]);
    assert_eq!(counts.iter().sum::<usize>(), 2000);
    assert_share("a", counts[0], 2000, 75.0, 4.0);
    assert_share("b", counts[1], 2000, 25.0, 4.0);
}

// ----------------------------------------------------------------------------- consistent-hash

const USERS: usize = 200;

fn user(u: usize) -> String {
    format!("user-{u:03}")
}

/// Who serves each of `USERS` users at `addr`, identified by `fields(user)`: one request per
/// user on a new connection, then one on each of a few kept-alive connections; panics if a user
/// reaches two backends.
fn owners(addr: SocketAddr, fields: impl Fn(&str) -> String) -> Vec<String> {
    let first: Vec<String> = (0..USERS)
        .map(|u| ok_from(&get_new(addr, "/", &fields(&user(u)))))
        .collect();
    let mut kept: Vec<Client> = (0..5).map(|_| Client::connect(addr)).collect();
    for u in 0..USERS {
        let c = &mut kept[u % 5];
        let again = ok_from(&get_on(c, "/", &fields(&user(u))));
        assert_eq!(again, first[u], "{} reached two backends", user(u));
    }
    first
}

fn x_user(name: &str) -> String {
    format!("X-User: {name}\r\n")
}

/// Each of `names` owns at least a twentieth of `owners` (an even spread over four gives each a
/// quarter; the backends' ports, and so the table, change from run to run).
#[track_caller]
fn assert_spread(owners: &[String], names: &[&str]) {
    let counts = tally(owners, names);
    assert!(
        counts.iter().all(|&n| n >= owners.len() / 20),
        "keys are not spread over the backends: {counts:?}"
    );
}

fn four_backends() -> [Backend; 4] {
    ["a", "b", "c", "d"].map(Backend::start)
}

fn hash_config(backends: &[Backend], hash_key: &str, extra: Value) -> Value {
    let list: Vec<(SocketAddr, u32)> = backends.iter().map(|b| (b.addr, 1)).collect();
    let mut cfg = config(
        2,
        &list,
        json!({"strategy": "consistent-hash", "hash_key": hash_key}),
    );
    if let (Some(map), Value::Object(more)) = (cfg.as_object_mut(), extra) {
        map.extend(more);
    }
    cfg
}

#[test]
fn consistent_hash_by_header_keeps_each_user_on_one_backend_on_every_worker() {
    let backends = four_backends();
    let proxy = proxy_of(&hash_config(&backends, "header:X-User", json!({})));
    let before = accepted_per_worker(proxy.admin());
    let first = owners(proxy.addr(), x_user);
    // and again, in another order, all on new connections
    for u in (0..USERS).rev() {
        let r = get_new(proxy.addr(), "/", &x_user(&user(u)));
        assert_eq!(ok_from(&r), first[u], "{} moved", user(u));
    }
    assert_every_worker_served(&proxy, &before);
    assert_spread(&first, &["a", "b", "c", "d"]);
}

#[test]
fn consistent_hash_agrees_between_two_processes_with_the_same_backends() {
    let backends = four_backends();
    let cfg = hash_config(&backends, "header:X-User", json!({}));
    let one = ProxyProcess::start(cfg.clone(), "hash-one");
    let two = ProxyProcess::start(cfg.clone(), "hash-two");
    let at_one = owners(one.addr(), x_user);
    let at_two = owners(two.addr(), x_user);
    for u in 0..USERS {
        assert_eq!(
            at_one[u],
            at_two[u],
            "the processes disagree on {}",
            user(u)
        );
    }
    assert_spread(&at_one, &["a", "b", "c", "d"]);
    // an in-process proxy with that config agrees too
    let here = proxy_of(&cfg);
    assert_eq!(owners(here.addr(), x_user), at_one);
}

#[test]
fn removing_a_backend_moves_only_its_users() {
    let backends = four_backends();
    let proxy = proxy_of(&hash_config(&backends, "header:X-User", json!({})));
    let before = owners(proxy.addr(), x_user);
    let gone = &backends[1];
    let had = before.iter().filter(|o| **o == gone.name).count();
    assert!(had > 0, "{} owned no user: {before:?}", gone.name);
    let id = id_of(&proxy, gone.addr);
    let removed = proxy.handle.balancer().update(|pool| pool.remove(id));
    assert!(removed.is_some());
    let requests_then = gone.record.count();

    let after = owners(proxy.addr(), x_user);
    let mut moved = 0;
    for u in 0..USERS {
        if before[u] == gone.name {
            assert_ne!(
                after[u],
                gone.name,
                "{} still reaches the removed backend",
                user(u)
            );
            moved += 1;
        } else {
            assert_eq!(
                after[u],
                before[u],
                "{} moved between two backends that stay",
                user(u)
            );
        }
    }
    assert_eq!(moved, had);
    assert_eq!(
        gone.record.count(),
        requests_then,
        "the removed backend got requests"
    );
    // its users went to more than one of the others
    let went: HashSet<&String> = (0..USERS)
        .filter(|&u| before[u] == gone.name)
        .map(|u| &after[u])
        .collect();
    assert!(
        had < 4 || went.len() > 1,
        "all of its users went to {went:?}"
    );
}

#[test]
fn consistent_hash_by_cookie_keeps_each_user_on_one_backend() {
    let backends = four_backends();
    let proxy = proxy_of(&hash_config(&backends, "cookie:uid", json!({})));
    // the cookie among others, which do not count
    let first = owners(proxy.addr(), |u| {
        format!("Cookie: theme=dark; uid={u}; seen=1\r\n")
    });
    // other cookies, another field, another place in it: the same backend
    for (u, owner) in first.iter().enumerate() {
        let fields = format!("Cookie: lang=en\r\nCookie: n={u}; uid={}\r\n", user(u));
        let r = get_new(proxy.addr(), "/", &fields);
        assert_eq!(&ok_from(&r), owner, "{} moved", user(u));
    }
    assert_spread(&first, &["a", "b", "c", "d"]);
}

#[test]
fn without_the_key_consistent_hash_falls_back_to_the_client_address() {
    let backends = four_backends();
    let by_header = proxy_of(&hash_config(&backends, "header:X-User", json!({})));
    let by_ip = proxy_of(&hash_config(&backends, "client_ip", json!({})));
    let before = accepted_per_worker(by_header.admin());
    // 127.0.0.1, on new connections (both workers) and a kept-alive one: always one backend
    let mut kept = by_header.connect();
    let home = ok_from(&get_on(&mut kept, "/", ""));
    for i in 0..40 {
        let r = if i % 4 == 0 {
            get_on(&mut kept, "/", "")
        } else {
            by_header.get("/")
        };
        assert_eq!(ok_from(&r), home, "request {i} from 127.0.0.1 moved");
    }
    assert_every_worker_served(&by_header, &before);
    // many client addresses: each keeps its backend, they spread, and a proxy hashing
    // `client_ip` sends each to the same backend
    let mut seen = Vec::new();
    for n in 10..90u8 {
        let ip = local(n);
        let mut owner = None;
        for proxy in [&by_header, &by_ip, &by_header] {
            let mut c = Client::connect_from(proxy.addr(), ip);
            let got = ok_from(&get_closing(&mut c, "/", ""));
            assert_eq!(owner.get_or_insert_with(|| got.clone()), &got, "{ip} moved");
        }
        seen.push(owner.expect("served"));
    }
    assert_spread(&seen, &["a", "b", "c", "d"]);
}

// ----------------------------------------------------------------------------- sticky: ip

#[test]
fn sticky_by_address_holds_across_workers_and_moves_once_when_the_backend_goes() {
    let [a, b, c] = ["a", "b", "c"].map(Backend::start);
    let all = [&a, &b, &c];
    let proxy = Proxy::start(
        &[a.addr, b.addr, c.addr],
        json!({"strategy": "round-robin", "enable_sticky_sessions": true, "sticky_mode": "ip"}),
    );
    let before = accepted_per_worker(proxy.admin());
    let home = ok_from(&proxy.get("/"));
    for i in 0..50 {
        assert_eq!(ok_from(&proxy.get("/")), home, "connection {i} moved");
    }
    assert_every_worker_served(&proxy, &before);
    // other addresses get backends of their own (round-robin), and keep them
    let pins: Vec<String> = (2..8u8)
        .map(|n| {
            let first = ok_from(&get_closing(
                &mut Client::connect_from(proxy.addr(), local(n)),
                "/",
                "",
            ));
            for _ in 0..5 {
                let again = get_closing(&mut Client::connect_from(proxy.addr(), local(n)), "/", "");
                assert_eq!(ok_from(&again), first, "127.0.0.{n} moved");
            }
            first
        })
        .collect();
    assert!(
        pins.iter().collect::<HashSet<_>>().len() > 1,
        "every address pinned to one backend: {pins:?}"
    );

    // the backend goes: 127.0.0.1 moves to another one, and stays there
    let home_backend = all.iter().find(|x| x.name == home).expect("a backend");
    set_enabled(&proxy, home_backend.addr, false);
    let new_home = ok_from(&proxy.get("/"));
    assert_ne!(new_home, home);
    for i in 0..50 {
        assert_eq!(
            ok_from(&proxy.get("/")),
            new_home,
            "connection {i} after the move"
        );
    }
    // ...even once the old one is back
    set_enabled(&proxy, home_backend.addr, true);
    for i in 0..20 {
        assert_eq!(
            ok_from(&proxy.get("/")),
            new_home,
            "connection {i} after the return"
        );
    }
    // the others were not moved (those pinned to the disabled backend apart)
    for (n, pin) in (2..8u8).zip(&pins) {
        let now = get_closing(&mut Client::connect_from(proxy.addr(), local(n)), "/", "");
        if *pin != home {
            assert_eq!(&ok_from(&now), pin, "127.0.0.{n} moved");
        }
    }
}

// ----------------------------------------------------------------------------- sticky: cookie

const TTL_SECS: u64 = 600;

fn cookie_config(backends: &[SocketAddr], extra: Value) -> Value {
    let list: Vec<(SocketAddr, u32)> = backends.iter().map(|&a| (a, 1)).collect();
    let mut cfg = config(
        2,
        &list,
        json!({
            "strategy": "round-robin",
            "enable_sticky_sessions": true,
            "sticky_mode": "cookie",
            "sticky_session_ttl": "10m",
        }),
    );
    if let (Some(map), Value::Object(more)) = (cfg.as_object_mut(), extra) {
        map.extend(more);
    }
    cfg
}

/// The value of the `FERRULE_BACKEND` cookie that `r` sets, after checking the whole field:
/// `FERRULE_BACKEND=<16 hex digits>; Path=/; HttpOnly; SameSite=Lax; Max-Age=<ttl>`, then
/// `; Secure` when `secure`.
#[track_caller]
fn sticky_cookie_set(r: &Response, secure: bool) -> String {
    let ours: Vec<&str> = r
        .headers_named("set-cookie")
        .into_iter()
        .filter(|v| v.starts_with("FERRULE_BACKEND="))
        .collect();
    assert_eq!(ours.len(), 1, "one sticky Set-Cookie in {r:?}");
    let field = ours[0];
    let value = &field["FERRULE_BACKEND=".len()..];
    let (id, attrs) = value.split_once(';').unwrap_or((value, ""));
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "not 16 hex digits: {field:?}"
    );
    let mut want = format!(" Path=/; HttpOnly; SameSite=Lax; Max-Age={TTL_SECS}");
    if secure {
        want.push_str("; Secure");
    }
    assert_eq!(attrs, want, "in {field:?}");
    id.to_string()
}

/// `r` sets no sticky cookie.
#[track_caller]
fn no_sticky_cookie_set(r: &Response) {
    let ours: Vec<&str> = r
        .headers_named("set-cookie")
        .into_iter()
        .filter(|v| v.contains("FERRULE_BACKEND"))
        .collect();
    assert!(ours.is_empty(), "{ours:?} in {r:?}");
}

/// The sticky cookie of every backend: `name → value`, from first requests (round-robin gives
/// each backend one of the first three).
fn cookies_of(addr: SocketAddr, names: &[&str]) -> HashMap<String, String> {
    let mut cookies = HashMap::new();
    for _ in 0..names.len() {
        let r = get_new(addr, "/", "");
        let value = sticky_cookie_set(&r, false);
        cookies.insert(ok_from(&r), value);
    }
    assert_eq!(cookies.len(), names.len(), "{cookies:?}");
    let distinct: HashSet<&String> = cookies.values().collect();
    assert_eq!(
        distinct.len(),
        names.len(),
        "two backends share a cookie: {cookies:?}"
    );
    cookies
}

#[test]
fn sticky_cookie_has_its_form_and_routes_on_every_worker() {
    let [a, b, c] = ["a", "b", "c"].map(Backend::start);
    let proxy = proxy_of(&cookie_config(&[a.addr, b.addr, c.addr], json!({})));
    let cookies = cookies_of(proxy.addr(), &["a", "b", "c"]);
    let before = accepted_per_worker(proxy.admin());
    for (name, value) in &cookies {
        let field = format!("Cookie: FERRULE_BACKEND={value}\r\n");
        let mut kept = proxy.connect();
        for i in 0..30 {
            let r = if i % 3 == 0 {
                get_on(&mut kept, "/", &field)
            } else {
                get_new(proxy.addr(), "/", &field)
            };
            assert_eq!(&ok_from(&r), name, "request {i} with {name}'s cookie");
            // the cookie is right: not set again
            no_sticky_cookie_set(&r);
        }
    }
    assert_every_worker_served(&proxy, &before);
    // not stripped unless asked: the backend sees it
    let last = c.record.requests().pop().expect("c was asked");
    assert_eq!(
        last.header("cookie"),
        Some(format!("FERRULE_BACKEND={}", cookies["c"]).as_str())
    );
}

#[test]
fn a_sticky_cookie_means_the_same_backend_in_another_process() {
    let [a, b, c] = ["a", "b", "c"].map(Backend::start);
    let cfg = cookie_config(&[a.addr, b.addr, c.addr], json!({}));
    let here = proxy_of(&cfg);
    let other = ProxyProcess::start(cfg, "sticky-other");
    let cookies = cookies_of(here.addr(), &["a", "b", "c"]);
    for (name, value) in &cookies {
        let field = format!("Cookie: FERRULE_BACKEND={value}\r\n");
        for i in 0..6 {
            let r = get_new(other.addr(), "/", &field);
            assert_eq!(&ok_from(&r), name, "request {i} to the other process");
            no_sticky_cookie_set(&r);
        }
    }
    // and the other process hands out the same cookies
    assert_eq!(cookies_of(other.addr(), &["a", "b", "c"]), cookies);
}

#[test]
fn unknown_or_malformed_sticky_cookies_are_replaced_and_the_request_served() {
    let [a, b, c] = ["a", "b", "c"].map(Backend::start);
    let proxy = proxy_of(&cookie_config(&[a.addr, b.addr, c.addr], json!({})));
    let cookies = cookies_of(proxy.addr(), &["a", "b", "c"]);
    let names: HashMap<&String, &String> = cookies.iter().map(|(n, v)| (v, n)).collect();
    let bad = [
        "0000000000000000",     // well-formed, names no backend
        "ffffffffffffffff",     // likewise
        "0123",                 // too short
        "0123456789abcdef0",    // too long
        "zzzzzzzzzzzzzzzz",     // not hex
        "\"0123456789abcdef\"", // quoted
        "",                     // empty
    ];
    for value in bad {
        let r = get_new(
            proxy.addr(),
            "/",
            &format!("Cookie: FERRULE_BACKEND={value}\r\n"),
        );
        let served = ok_from(&r);
        // replaced by the cookie of the backend that served it
        let new = sticky_cookie_set(&r, false);
        assert_eq!(names.get(&new), Some(&&served), "after {value:?}");
        let again = get_new(
            proxy.addr(),
            "/",
            &format!("Cookie: FERRULE_BACKEND={new}\r\n"),
        );
        assert_eq!(ok_from(&again), served);
        no_sticky_cookie_set(&again);
    }
}

const SECRET: &str = "a shared sticky secret, 40 characters...";

#[test]
fn instances_that_share_a_sticky_cookie_secret_hand_out_the_same_cookies() {
    let [a, b, c] = ["a", "b", "c"].map(Backend::start);
    let backends = [a.addr, b.addr, c.addr];
    let names = ["a", "b", "c"];
    let keyed = cookie_config(&backends, json!({"sticky_cookie_secret": SECRET}));
    let here = proxy_of(&keyed);
    let there = proxy_of(&keyed);
    let cookies = cookies_of(here.addr(), &names);
    assert_eq!(cookies_of(there.addr(), &names), cookies);
    // and route by them, on the other instance too
    for (name, value) in &cookies {
        let field = format!("Cookie: FERRULE_BACKEND={value}\r\n");
        for _ in 0..4 {
            let r = get_new(there.addr(), "/", &field);
            assert_eq!(&ok_from(&r), name);
            no_sticky_cookie_set(&r);
        }
    }
    // another secret, or none: every value differs
    let other = proxy_of(&cookie_config(
        &backends,
        json!({"sticky_cookie_secret": "another secret of some length"}),
    ));
    let plain = proxy_of(&cookie_config(&backends, json!({})));
    for other in [
        cookies_of(other.addr(), &names),
        cookies_of(plain.addr(), &names),
    ] {
        for name in names {
            assert_ne!(other[name], cookies[name], "{name}");
        }
    }
    // GET /config does not show it
    let shown = here.admin_get("/config");
    assert_eq!(shown["sticky_cookie_secret"], "<redacted>");
}

#[test]
fn with_a_secret_the_plain_cookie_value_names_no_backend() {
    let [a, b, c] = ["a", "b", "c"].map(Backend::start);
    let backends = [a.addr, b.addr, c.addr];
    let names = ["a", "b", "c"];
    // what a client can compute for each backend: the value without a secret
    let plain = cookies_of(
        proxy_of(&cookie_config(&backends, json!({}))).addr(),
        &names,
    );
    let proxy = proxy_of(&cookie_config(
        &backends,
        json!({"sticky_cookie_secret": SECRET}),
    ));
    let keyed = cookies_of(proxy.addr(), &names);
    let forged = &plain["c"];
    let mut served = HashSet::new();
    for i in 0..6 {
        let r = get_new(
            proxy.addr(),
            "/",
            &format!("Cookie: FERRULE_BACKEND={forged}\r\n"),
        );
        // not honoured: the strategy chose, and the cookie was replaced by the real one
        let name = ok_from(&r);
        assert_eq!(sticky_cookie_set(&r, false), keyed[&name], "request {i}");
        served.insert(name);
    }
    assert_eq!(
        served.len(),
        3,
        "round-robin, not the forged cookie's backend: {served:?}"
    );
}

/// A backend whose answers set cookies of their own.
fn cookie_setting_backend(name: &str) -> Backend {
    let n = name.to_string();
    Backend::with_handler(name, move |_, _| {
        let body = format!("backend {n}");
        let head = format!(
            "HTTP/1.1 200 OK\r\nX-Backend: {n}\r\nSet-Cookie: session=abc123; Path=/app; HttpOnly\r\n\
             Content-Length: {}\r\nSet-Cookie: theme=dark\r\n\r\n",
            body.len()
        );
        Reply::Bytes([head.into_bytes(), body.into_bytes()].concat())
    })
}

#[test]
fn a_backends_own_set_cookie_passes_untouched() {
    let [a, b] = ["a", "b"].map(cookie_setting_backend);
    let proxy = proxy_of(&cookie_config(&[a.addr, b.addr], json!({})));
    let theirs = ["session=abc123; Path=/app; HttpOnly", "theme=dark"];
    let first = get_new(proxy.addr(), "/", "");
    let value = sticky_cookie_set(&first, false);
    let others: Vec<&str> = first
        .headers_named("set-cookie")
        .into_iter()
        .filter(|v| !v.starts_with("FERRULE_BACKEND="))
        .collect();
    assert_eq!(others, theirs, "{first:?}");
    let again = get_new(
        proxy.addr(),
        "/",
        &format!("Cookie: FERRULE_BACKEND={value}\r\n"),
    );
    assert_eq!(ok_from(&again), ok_from(&first));
    assert_eq!(again.headers_named("set-cookie"), theirs, "{again:?}");
}

#[test]
fn a_stripped_sticky_cookie_still_routes_and_the_others_stay() {
    let [a, b, c] = ["a", "b", "c"].map(Backend::start);
    let all = [&a, &b, &c];
    let proxy = proxy_of(&cookie_config(
        &[a.addr, b.addr, c.addr],
        json!({"sticky_cookie_strip": true}),
    ));
    let cookies = cookies_of(proxy.addr(), &["a", "b", "c"]);
    let value = &cookies["b"];
    let cases: [(String, Vec<&str>); 5] = [
        (
            format!("Cookie: x=1; FERRULE_BACKEND={value}; y=2\r\n"),
            vec!["x=1; y=2"],
        ),
        (format!("Cookie: FERRULE_BACKEND={value}\r\n"), vec![]),
        (
            format!("Cookie: x=1\r\nCookie: FERRULE_BACKEND={value};y=2\r\n"),
            vec!["x=1", "y=2"],
        ),
        (
            format!(
                "Cookie: XFERRULE_BACKEND=keep; FERRULE_BACKEND={value}; FERRULE_BACKEND2=k\r\n"
            ),
            vec!["XFERRULE_BACKEND=keep; FERRULE_BACKEND2=k"],
        ),
        (
            format!("Cookie: a=b\r\nCookie: FERRULE_BACKEND={value}\r\n"),
            vec!["a=b"],
        ),
    ];
    for (fields, want) in &cases {
        let r = get_new(proxy.addr(), "/", fields);
        assert_eq!(ok_from(&r), "b", "routed by the cookie: {fields:?}");
        let seen = b.record.requests().pop().expect("b was asked");
        assert_eq!(&seen.headers_named("cookie"), want, "sent {fields:?}");
    }
    // a malformed one is stripped too, and replaced
    let r = get_new(
        proxy.addr(),
        "/",
        "Cookie: keep=1; FERRULE_BACKEND=oops\r\n",
    );
    let served = ok_from(&r);
    sticky_cookie_set(&r, false);
    let at = all.iter().find(|x| x.name == served).expect("a backend");
    let seen = at.record.requests().pop().expect("asked");
    assert_eq!(seen.headers_named("cookie"), ["keep=1"]);
    // no backend ever saw the sticky cookie
    for x in all {
        for seen in x.record.requests() {
            assert!(
                !seen.head.contains(" FERRULE_BACKEND="),
                "{} saw {:?}",
                x.name,
                seen.head
            );
            assert!(
                !seen.head.contains(":FERRULE_BACKEND="),
                "{} saw {:?}",
                x.name,
                seen.head
            );
            assert!(
                !seen.head.contains(";FERRULE_BACKEND="),
                "{} saw {:?}",
                x.name,
                seen.head
            );
        }
    }
}

#[test]
fn over_tls_the_sticky_cookie_is_secure() {
    let [a, b] = ["a", "b"].map(Backend::start);
    let pki = pki("sticky-tls");
    let proxy = tls_proxy(
        &[a.addr, b.addr],
        pki.files.ssl(),
        json!({
            "strategy": "round-robin",
            "enable_sticky_sessions": true,
            "sticky_mode": "cookie",
            "sticky_session_ttl": "10m",
        }),
    );
    let mut client = pki.connect(proxy.addr());
    let first = client.get("/");
    let value = sticky_cookie_set(&first, true);
    let home = ok_from(&first);
    let client_config = pki.client(ANY_VERSION);
    for i in 0..6 {
        let mut c = common::tls::TlsClient::connect(proxy.addr(), &client_config, "localhost");
        c.send(
            format!("GET / HTTP/1.1\r\nHost: localhost\r\nCookie: FERRULE_BACKEND={value}\r\n\r\n")
                .as_bytes(),
        );
        let r = c.response();
        assert_eq!(ok_from(&r), home, "request {i}");
        no_sticky_cookie_set(&r);
    }
}

// ----------------------------------------------------------------------------- max_conns

/// `GET /NAME` sent on a new connection (response not read).
fn send_new(addr: SocketAddr, name: &str) -> Client {
    let mut c = Client::connect(addr);
    c.send(format!("GET /{name} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes());
    c
}

#[test]
fn max_conns_holds_the_rest_back_and_lets_them_go_in_arrival_order() {
    const LIMIT: usize = 2;
    const REQUESTS: usize = 6;
    let gated = GatedBackend::start("limited");
    // one worker, so that "arrival order" is one queue's order and can be set up exactly
    let proxy = proxy_of(&json!({
        "port": 0, "admin_port": 0, "bind": "127.0.0.1", "workers": 1,
        "backends": [{"url": format!("http://{}", gated.addr()), "max_conns": LIMIT}],
        "queue_timeout": "30s",
    }));
    let mut clients = Vec::new();
    for i in 0..REQUESTS {
        clients.push(send_new(proxy.addr(), &format!("r{i}")));
        if i < LIMIT {
            assert_eq!(gated.next_arrival(), format!("/r{i}"));
        } else {
            // the proxy has read it, found no slot and queued it, before the next one comes
            worker_round_trip(proxy.addr());
        }
    }
    assert_eq!(
        gated.unreported_arrival(),
        None,
        "more than {LIMIT} reached the backend"
    );
    assert_eq!(gated.in_flight(), LIMIT);
    // one answer at a time: each frees a slot, which goes to the next in arrival order
    for i in LIMIT..REQUESTS {
        gated.release(1);
        assert_eq!(
            gated.next_arrival(),
            format!("/r{i}"),
            "the slot went out of turn"
        );
        assert_eq!(gated.unreported_arrival(), None);
        assert!(
            gated.max_in_flight() <= LIMIT,
            "{} in flight",
            gated.max_in_flight()
        );
    }
    gated.release(LIMIT);
    for (i, mut c) in clients.into_iter().enumerate() {
        let r = c.response();
        assert_eq!((r.status, r.text()), (200, format!("answer to /r{i}")));
    }
    assert_eq!(gated.max_in_flight(), LIMIT);
    assert_eq!(gated.backend.record.count(), REQUESTS);
}

#[test]
fn max_conns_holds_across_workers_and_a_freed_slot_wakes_the_other_worker() {
    const LIMIT: usize = 2;
    const REQUESTS: usize = 16;
    let gated = GatedBackend::start("limited");
    // the global default this time, with two workers
    let proxy = Proxy::start(
        &[gated.addr()],
        json!({"max_conns": LIMIT, "queue_timeout": "30s"}),
    );
    let before = accepted_per_worker(proxy.admin());
    let clients: Vec<Client> = (0..REQUESTS)
        .map(|i| send_new(proxy.addr(), &format!("r{i}")))
        .collect();
    let mut arrived: HashSet<String> = (0..LIMIT).map(|_| gated.next_arrival()).collect();
    assert_every_worker_served(&proxy, &before);
    // a slot freed on either worker must reach a request queued on either: each answer lets
    // exactly one more in, well before any queue_timeout
    for _ in LIMIT..REQUESTS {
        assert_eq!(gated.in_flight(), LIMIT);
        gated.release(1);
        assert!(arrived.insert(gated.next_arrival()));
        assert!(
            gated.max_in_flight() <= LIMIT,
            "{} in flight",
            gated.max_in_flight()
        );
    }
    gated.release(LIMIT);
    for (i, mut c) in clients.into_iter().enumerate() {
        let r = c.response();
        assert_eq!((r.status, r.text()), (200, format!("answer to /r{i}")));
    }
    assert_eq!(arrived.len(), REQUESTS);
    assert_eq!(gated.max_in_flight(), LIMIT);
}

#[test]
fn a_request_waiting_past_queue_timeout_gets_503_with_retry_after() {
    const TIMEOUT: Duration = Duration::from_millis(300);
    let gated = GatedBackend::start("limited");
    let proxy = proxy_of(&json!({
        "port": 0, "admin_port": 0, "bind": "127.0.0.1", "workers": 2,
        "backends": [{"url": format!("http://{}", gated.addr()), "max_conns": 1}],
        "queue_timeout": "300ms",
    }));
    let mut holder = send_new(proxy.addr(), "held");
    assert_eq!(gated.next_arrival(), "/held");
    // three more, at once, on new connections: each waits, then gets its 503
    let waiters: Vec<_> = (0..3)
        .map(|i| {
            let addr = proxy.addr();
            thread::spawn(move || {
                let start = Instant::now();
                let mut c = send_new(addr, &format!("w{i}"));
                let r = c.response();
                (r, start.elapsed())
            })
        })
        .collect();
    for w in waiters {
        let (r, waited) = w.join().expect("waiter");
        assert_eq!(r.status, 503, "{r:?}");
        assert!(r.header("retry-after").is_some(), "no Retry-After: {r:?}");
        assert!(
            waited >= TIMEOUT.mul_f64(0.9),
            "answered after {waited:?}, before the {TIMEOUT:?} queue_timeout"
        );
        assert!(
            waited < TIMEOUT + Duration::from_secs(2),
            "answered only after {waited:?} (queue_timeout {TIMEOUT:?})"
        );
    }
    // none of them reached the backend, and the one in flight was not disturbed
    assert_eq!(gated.unreported_arrival(), None);
    gated.release(1);
    let r = holder.response();
    assert_eq!((r.status, r.text()), (200, "answer to /held".to_string()));
    assert_eq!(gated.backend.record.count(), 1);
}

/// Polls the admin API (nothing else tells) until the proxy holds `n` client connections;
/// panics after 3 s.
#[track_caller]
fn wait_for_open_connections(proxy: &Proxy, n: u64) {
    let limit = Instant::now() + Duration::from_secs(3);
    loop {
        let open = admin_get_at(proxy.admin(), "/stats")["open_connections"]
            .as_u64()
            .expect("open_connections");
        if open == n {
            return;
        }
        assert!(
            Instant::now() < limit,
            "{open} client connections open, not {n}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_client_that_leaves_the_queue_is_dropped_from_it() {
    let gated = GatedBackend::start("limited");
    let proxy = proxy_of(&json!({
        "port": 0, "admin_port": 0, "bind": "127.0.0.1", "workers": 1,
        "backends": [{"url": format!("http://{}", gated.addr()), "max_conns": 1}],
        "queue_timeout": "30s",
    }));
    let mut first = send_new(proxy.addr(), "first");
    assert_eq!(gated.next_arrival(), "/first");
    let leaver = send_new(proxy.addr(), "leaver");
    worker_round_trip(proxy.addr());
    let mut stayer = send_new(proxy.addr(), "stayer");
    worker_round_trip(proxy.addr());
    // the first in line leaves: its connection is closed at once, while no slot has freed
    // (not when its turn would come, nor at queue_timeout); the round trips' own connections
    // close too, leaving `first` and `stayer`
    drop(leaver);
    wait_for_open_connections(&proxy, 2);
    assert_eq!(gated.in_flight(), 1);
    // the slot goes to the next one still there, then to a newcomer
    gated.release(1);
    assert_eq!(gated.next_arrival(), "/stayer");
    let r = first.response();
    assert_eq!((r.status, r.text()), (200, "answer to /first".to_string()));
    let mut later = send_new(proxy.addr(), "later");
    gated.release(1);
    assert_eq!(gated.next_arrival(), "/later");
    let r = stayer.response();
    assert_eq!((r.status, r.text()), (200, "answer to /stayer".to_string()));
    gated.release(1);
    let r = later.response();
    assert_eq!((r.status, r.text()), (200, "answer to /later".to_string()));
    let targets: Vec<String> = gated
        .backend
        .record
        .requests()
        .into_iter()
        .map(|s| s.target)
        .collect();
    assert_eq!(targets, ["/first", "/stayer", "/later"]);
}

/// A one-worker proxy in front of `gated` and `other`, each with `max_conns: 1`, `other`
/// disabled; `gated` holds one request and a second waits in the queue (proved by a round trip).
/// Returns the proxy, the holder and the waiter, and when the waiter was sent.
fn one_waiting(gated: &GatedBackend, other: &Backend) -> (Proxy, Client, Client, Instant) {
    let proxy = proxy_of(&config(
        1,
        &[(gated.addr(), 1), (other.addr, 1)],
        json!({"max_conns": 1, "queue_timeout": "4s"}),
    ));
    set_enabled(&proxy, other.addr, false);
    let holder = send_new(proxy.addr(), "held");
    assert_eq!(gated.next_arrival(), "/held");
    let sent = Instant::now();
    let waiter = send_new(proxy.addr(), "waiter");
    worker_round_trip(proxy.addr());
    assert_eq!(gated.unreported_arrival(), None);
    (proxy, holder, waiter, sent)
}

/// The waiter is served by `other` within a second of being sent (its queue_timeout is 4 s).
#[track_caller]
fn assert_served_soon(waiter: &mut Client, sent: Instant, other: &Backend) {
    let r = waiter.response();
    let waited = sent.elapsed();
    assert_eq!(
        (r.status, r.header("x-backend")),
        (200, Some(other.name.as_str())),
        "after {waited:?}: {r:?}"
    );
    assert!(
        waited < Duration::from_secs(1),
        "served only after {waited:?}"
    );
}

#[test]
fn a_waiting_request_takes_a_backend_that_becomes_available() {
    let gated = GatedBackend::start("held");
    let other = Backend::start("other");
    let (proxy, _holder, mut waiter, sent) = one_waiting(&gated, &other);
    set_enabled(&proxy, other.addr, true);
    assert_served_soon(&mut waiter, sent, &other);
}

#[test]
fn a_waiting_request_takes_a_backend_added_meanwhile() {
    let gated = GatedBackend::start("held");
    let other = Backend::start("other");
    let (proxy, _holder, mut waiter, sent) = one_waiting(&gated, &other);
    // the disabled one leaves, and comes back as a new backend
    let old = id_of(&proxy, other.addr);
    let added = proxy.handle.balancer().update(|pool| {
        pool.remove(old);
        pool.add(
            &ferrule::config::BackendConfig {
                url: format!("http://{}", other.addr),
                scheme: ferrule::config::Scheme::Http,
                host: other.addr.ip().to_string(),
                port: other.addr.port(),
                addr: other.addr,
                weight: 1,
                max_conns: None,
            },
            None,
        )
    });
    assert!(added.is_enabled() && added.is_healthy());
    assert_served_soon(&mut waiter, sent, &other);
}

/// Which worker accepted the last connection: the one whose count went up since `before`.
fn worker_that_accepted(proxy: &Proxy, before: &[u64]) -> usize {
    let after = accepted_per_worker(proxy.admin());
    after
        .iter()
        .zip(before)
        .position(|(a, b)| a > b)
        .expect("a worker accepted it")
}

#[test]
fn a_slot_freed_while_a_request_is_being_queued_is_not_lost() {
    const ROUNDS: usize = 30_000;
    const BUDGET: Duration = Duration::from_secs(10);
    const IDLE: u16 = 300;
    let backend = Backend::start("only");
    // Before it in the pool, IDLE disabled backends (never contacted): they only lengthen the
    // scans between a worker's check for room and its registration in the queue, which widens
    // the window (with `only` alone it shows too, less often).
    let mut list: Vec<(SocketAddr, u32)> = (0..IDLE)
        .map(|i| (SocketAddr::from(([127, 0, 0, 1], 1 + i)), 1))
        .collect();
    list.push((backend.addr, 1));
    let proxy = proxy_of(&config(
        2,
        &list,
        json!({"max_conns": 1, "queue_timeout": "1s"}),
    ));
    for &(addr, _) in &list[..IDLE as usize] {
        set_enabled(&proxy, addr, false);
    }
    // two kept-alive connections, on different workers
    let before = accepted_per_worker(proxy.admin());
    let mut x = proxy.connect();
    assert_eq!(ok_from(&get_on(&mut x, "/", "")), "only");
    let x_worker = worker_that_accepted(&proxy, &before);
    let y = loop {
        let before = accepted_per_worker(proxy.admin());
        let mut y = proxy.connect();
        assert_eq!(ok_from(&get_on(&mut y, "/", "")), "only");
        if worker_that_accepted(&proxy, &before) != x_worker {
            break y;
        }
    };
    // How long a request takes here, alone.
    let mut alone: Vec<Duration> = (0..200)
        .map(|_| {
            let sent = Instant::now();
            ok_from(&get_on(&mut x, "/", ""));
            sent.elapsed()
        })
        .collect();
    alone.sort();
    let span = (alone[alone.len() / 2].as_nanos() as u64 * 3 / 2).max(1);
    // Rounds: both send at once, y a little later (0 to 1.5 times that, a different offset each
    // round), so that y's request meets the end of x's at every point of it in turn. A request
    // of the two that is not answered 200 (but 503 after queue_timeout) waited for a slot that
    // had been freed: nothing else holds the backend. The rounds stop at the first such one.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let deadline = Instant::now() + BUDGET;
    let run = |mut c: Client, late_by: Option<u64>| {
        let (barrier, stop) = (barrier.clone(), stop.clone());
        thread::spawn(move || {
            for round in 0..ROUNDS {
                barrier.wait();
                if let Some(step) = late_by {
                    let until = Instant::now() + Duration::from_nanos((round as u64 * step) % span);
                    while Instant::now() < until {
                        std::hint::spin_loop();
                    }
                }
                let sent = Instant::now();
                let r = get_on(&mut c, "/", "");
                let waited = sent.elapsed();
                if r.status != 200 || Instant::now() > deadline {
                    stop.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                barrier.wait();
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    return (r.status != 200).then_some((round, r.status, waited));
                }
            }
            None
        })
    };
    let tx = run(x, None);
    let ty = run(y, Some(7919));
    let lost: Vec<_> = [tx, ty]
        .into_iter()
        .filter_map(|t| t.join().expect("client thread"))
        .collect();
    assert!(
        lost.is_empty(),
        "(round, status, waited) of requests that waited out queue_timeout although the \
         backend was free: {lost:?}"
    );
}

// ----------------------------------------------------------------------------- no backend

#[test]
fn no_available_backend_is_a_503() {
    let [a, b] = ["a", "b"].map(Backend::start);
    // a long queue_timeout: with no candidate at all, nothing is worth waiting for
    let proxy = Proxy::start(&[a.addr, b.addr], json!({"queue_timeout": "10s"}));
    let assert_503 = |why: &str| {
        for _ in 0..4 {
            let sent = Instant::now();
            let r = proxy.get("/");
            assert!(
                sent.elapsed() < Duration::from_secs(2),
                "{why}: answered after {:?}",
                sent.elapsed()
            );
            assert_eq!(r.status, 503, "{why}: {r:?}");
            assert!(
                r.header("retry-after").is_some(),
                "{why}: no Retry-After: {r:?}"
            );
        }
    };
    let pool = proxy.handle.balancer().current();
    // all disabled
    for x in [&a, &b] {
        pool.get(id_of(&proxy, x.addr))
            .expect("in the pool")
            .set_enabled(false);
    }
    assert_503("all disabled");
    // all down (fail_open is off)
    for x in [&a, &b] {
        let backend = pool.get(id_of(&proxy, x.addr)).expect("in the pool");
        backend.set_enabled(true);
        backend.set_healthy(false);
    }
    assert_503("all unhealthy");
    // none at all
    let ids = [&a, &b].map(|x| id_of(&proxy, x.addr));
    let emptied = proxy
        .handle
        .balancer()
        .update(|p| ids.iter().all(|&id| p.remove(id).is_some()));
    assert!(emptied);
    assert_503("an empty pool");
    assert_eq!(a.record.count() + b.record.count(), 0);
}

#[test]
fn fail_open_serves_from_backends_all_marked_down_but_not_from_disabled_ones() {
    let [a, b, c] = ["a", "b", "c"].map(Backend::start);
    let proxy = Proxy::start(&[a.addr, b.addr, c.addr], json!({"fail_open": true}));
    let pool = proxy.handle.balancer().current();
    for x in [&a, &b, &c] {
        pool.get(id_of(&proxy, x.addr))
            .expect("in the pool")
            .set_healthy(false);
    }
    let served: Vec<String> = (0..30).map(|_| ok_from(&proxy.get("/"))).collect();
    let counts = tally(&served, &["a", "b", "c"]);
    assert!(
        counts.iter().all(|&n| n > 0),
        "not spread over the enabled ones: {counts:?}"
    );
    // a disabled backend is out even then
    pool.get(id_of(&proxy, c.addr))
        .expect("in the pool")
        .set_enabled(false);
    let served: Vec<String> = (0..30).map(|_| ok_from(&proxy.get("/"))).collect();
    let counts = tally(&served, &["a", "b", "c"]);
    assert!(
        counts[0] > 0 && counts[1] > 0 && counts[2] == 0,
        "{counts:?}"
    );
    // and with every backend disabled there is nothing to fail open to
    for x in [&a, &b] {
        pool.get(id_of(&proxy, x.addr))
            .expect("in the pool")
            .set_enabled(false);
    }
    let r = proxy.get("/");
    assert_eq!(r.status, 503, "{r:?}");
    // a healthy one is preferred again at once
    let back = pool.get(id_of(&proxy, b.addr)).expect("in the pool");
    back.set_enabled(true);
    back.set_healthy(true);
    pool.get(id_of(&proxy, a.addr))
        .expect("in the pool")
        .set_enabled(true);
    for _ in 0..10 {
        assert_eq!(ok_from(&proxy.get("/")), "b");
    }
}
