//! Changing the pool through the admin API: backends added at run time (plain and https) get
//! traffic and the next ids; a deleted one takes no new request while its slow one finishes (202,
//! listed as draining, then gone) and its idle pooled connections are closed; status and state
//! switches and weights take effect; none of it loses a request under load; concurrent admin
//! writes keep the pool consistent.

use std::collections::BTreeSet;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::common::tls::{TestCa, TlsBackend};
use super::common::{
    ok_response, path_text, read_request, serve, slow_backend, AcceptLoop, Backend, Client, TempDir,
};
use super::{error_message, quiet_proxy, wait_until, Api};

/// Sends `n` requests to the proxy on one keep-alive connection; returns the backends' names.
fn spread(proxy: &super::Proxy, n: usize) -> Vec<String> {
    let mut c = proxy.connect();
    (0..n)
        .map(|i| {
            c.send(format!("GET /spread/{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
            let r = c.response();
            assert_eq!(r.status, 200, "request {i}: {r:?}");
            r.header("x-backend").unwrap_or_default().to_owned()
        })
        .collect()
}

fn count(names: &[String], name: &str) -> usize {
    names.iter().filter(|n| *n == name).count()
}

// Proves a backend added with POST gets 201, Location and the next id, takes traffic at once,
// and that ids are never reused: removed and added again, it gets a new one.
#[test]
fn added_backend_takes_traffic_and_ids_are_never_reused() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let dir = TempDir::new("admin-warnings");
    let files = path_text(&dir.path);
    let proxy = quiet_proxy(&[a.addr], json!({"admin_files_dir": files}));
    let api = Api::of(&proxy);
    let body = json!({"url": format!("http://{}", b.addr), "weight": 1, "max_conns": 50});
    let r = api.raw("POST", "/backends", Some(body.to_string().as_bytes()));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("location"), Some("/backends/1"));
    let entry = super::json_of(&r);
    assert_eq!(
        (entry["id"].clone(), entry["state"].clone()),
        (json!(1), json!("up"))
    );
    assert_eq!(entry["max_conns"], 50);
    assert_eq!(entry["warnings"], json!([]));
    assert_eq!(api.get("/backends/1")["url"], format!("http://{}", b.addr));
    let names = spread(&proxy, 20);
    assert_eq!(
        (count(&names, "a"), count(&names, "b")),
        (10, 10),
        "{names:?}"
    );

    assert_eq!(api.call("DELETE", "/backends/1", None).0, 200);
    assert!(spread(&proxy, 6).iter().all(|n| n == "a"));
    // a config file's warnings come back with the answer
    let ca = dir.write("ca.pem", "not used");
    let body = json!({"url": format!("http://{}", b.addr), "ca_file": path_text(&ca)});
    let (status, entry) = api.call("POST", "/backends", Some(body));
    assert_eq!(status, 201, "{entry}");
    assert_eq!(entry["id"], 2, "the next id, not 1 again");
    assert_eq!(
        entry["warnings"],
        json!(["this backend: ca_file is not used: the backend's URL is http://"])
    );
    let ids: Vec<u64> = api.get("/backends")["backends"]
        .as_array()
        .map(|l| l.iter().filter_map(|b| b["id"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(ids, vec![0, 2]);
    assert!(count(&spread(&proxy, 10), "b") > 0);
}

// Proves an https backend added at run time gets its TLS client settings as at start: with its
// ca_file it is served over TLS; without (the built-in roots do not know the test CA) it is
// added but its requests get 502 and never reach it.
#[test]
fn https_backend_added_at_run_time_speaks_tls() {
    let dir = TempDir::new("admin-https");
    let ca = TestCa::new("admin test CA");
    let ca_file = dir.write("ca.pem", ca.pem());
    let trusted = TlsBackend::start(ca.issue(&["127.0.0.1"]).server_config());
    let proxy = quiet_proxy(&[], json!({"admin_files_dir": path_text(&dir.path)}));
    let api = Api::of(&proxy);
    let body = json!({"url": trusted.url(), "ca_file": path_text(&ca_file)});
    let (status, entry) = api.call("POST", "/backends", Some(body));
    assert_eq!(status, 201, "{entry}");
    let r = proxy.get("/over-tls");
    assert_eq!(
        (r.status, r.text()),
        (200, "tls backend saw /over-tls".to_owned())
    );
    assert!(trusted.handshakes() >= 1);

    let untrusted = TlsBackend::start(ca.issue(&["127.0.0.1"]).server_config());
    let (status, entry) = api.call("POST", "/backends", Some(json!({"url": untrusted.url()})));
    assert_eq!(status, 201, "{entry}");
    let patch = json!({"state": "disabled"});
    assert_eq!(api.call("PATCH", "/backends/0", Some(patch)).0, 200);
    assert_eq!(proxy.get("/refused").status, 502);
    assert_eq!(
        untrusted.record.count(),
        0,
        "nothing reached the unverified backend"
    );
}

// Proves DELETE takes a backend out at once while its slow request finishes: 202 with the
// request counted, listed (and shown) as draining, no new request reaches it, the slow one gets
// its answer, then it is gone (404). Changing it meanwhile is refused.
#[test]
fn deleted_backend_drains_its_slow_request_and_takes_no_new_one() {
    let (slow, arrived) = slow_backend("slow");
    let fast = Backend::start("fast");
    let proxy = quiet_proxy(&[slow.addr, fast.addr], json!({}));
    let api = Api::of(&proxy);
    let off = json!({"state": "disabled"});
    assert_eq!(api.call("PATCH", "/backends/1", Some(off)).0, 200);
    let addr = proxy.addr();
    let pending = thread::spawn(move || {
        let mut c = Client::connect(addr);
        c.send(b"GET /slow HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        c.response()
    });
    arrived
        .recv_timeout(Duration::from_secs(5))
        .expect("the slow request reached the slow backend");
    let on = json!({"state": "up"});
    assert_eq!(api.call("PATCH", "/backends/1", Some(on)).0, 200);

    let started = Instant::now();
    let (status, body) = api.call("DELETE", "/backends/0", None);
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["in_flight"], 1);
    assert_eq!(body["draining"], true);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at once"
    );
    let listed = api.listed(0).expect("listed while it drains");
    assert_eq!(
        (listed["state"].clone(), listed["in_flight"].clone()),
        (json!("draining"), json!(1))
    );
    assert_eq!(api.get("/backends/0")["state"], "draining");
    let (status, body) = api.call("PATCH", "/backends/0", Some(json!({"weight": 2})));
    assert_eq!(status, 404);
    assert!(error_message(&body).contains("was removed"), "{body}");
    for i in 0..10 {
        let r = proxy.get(&format!("/after/{i}"));
        assert_eq!(
            (r.status, r.text()),
            (200, "backend fast".to_owned()),
            "request {i}"
        );
    }
    assert_eq!(
        slow.record.count(),
        1,
        "no new request reached the removed backend"
    );

    let r = pending.join().expect("the slow client");
    assert_eq!((r.status, r.text()), (200, "answer to /slow".to_owned()));
    wait_until(
        Duration::from_secs(3),
        "the drained backend leaves the list",
        || api.listed(0).is_none(),
    );
    assert_eq!(api.call("GET", "/backends/0", None).0, 404);
    assert_eq!(api.call("DELETE", "/backends/0", None).0, 404);
}

/// A backend that counts the connections it had and those that closed.
struct Counting {
    addr: SocketAddr,
    opened: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    /// Serves until the backend is dropped.
    _accepting: AcceptLoop,
}

fn counting_backend() -> Counting {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (opened, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (o, c) = (Arc::clone(&opened), Arc::clone(&closed));
    let accepting = serve(listener, move |stream| {
        o.fetch_add(1, Ordering::SeqCst);
        let Ok(mut writer) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        while read_request(&mut reader, 0).is_ok() {
            if writer
                .write_all(&ok_response("counting", b"counted"))
                .is_err()
            {
                break;
            }
        }
        c.fetch_add(1, Ordering::SeqCst);
    });
    Counting {
        addr: accepting.addr,
        opened,
        closed,
        _accepting: accepting,
    }
}

// Proves DELETE makes every worker close its idle pooled connections to the backend at once.
#[test]
fn delete_closes_idle_pooled_connections() {
    let backend = counting_backend();
    let proxy = quiet_proxy(&[backend.addr], json!({}));
    let api = Api::of(&proxy);
    for _ in 0..3 {
        let names = spread(&proxy, 3);
        assert_eq!(names, vec!["counting"; 3]);
    }
    let opened = backend.opened.load(Ordering::SeqCst);
    assert!(opened >= 1);
    assert_eq!(
        backend.closed.load(Ordering::SeqCst),
        0,
        "pooled, not closed"
    );
    assert_eq!(api.call("DELETE", "/backends/0", None).0, 200);
    wait_until(Duration::from_secs(3), "idle connections closed", || {
        backend.closed.load(Ordering::SeqCst) == opened
    });
}

// Proves PUT …/status and PATCH state and weight take effect on the traffic at once.
#[test]
fn status_state_and_weight_changes_take_effect() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let proxy = quiet_proxy(&[a.addr, b.addr], json!({}));
    let api = Api::of(&proxy);
    let put = |alive: bool| api.call("PUT", "/backends/1/status", Some(json!({"alive": alive})));
    let patch = |body: Value| api.call("PATCH", "/backends/1", Some(body));

    let (status, entry) = put(false);
    assert_eq!(status, 200, "{entry}");
    let shown = (&entry["state"], &entry["alive"], &entry["enabled"]);
    assert_eq!(shown, (&json!("disabled"), &json!(false), &json!(false)));
    assert_eq!(count(&spread(&proxy, 8), "b"), 0);
    let (_, entry) = put(true);
    assert_eq!(
        (&entry["state"], &entry["alive"]),
        (&json!("up"), &json!(true))
    );
    assert_eq!(count(&spread(&proxy, 8), "b"), 4);

    for (state, takes) in [
        ("draining", false),
        ("up", true),
        ("disabled", false),
        ("up", true),
    ] {
        let (status, entry) = patch(json!({"state": state}));
        assert_eq!(
            (status, entry["state"].as_str()),
            (200, Some(state)),
            "{entry}"
        );
        let got = count(&spread(&proxy, 8), "b");
        assert_eq!(got > 0, takes, "{state}: b got {got} of 8");
    }
    let (status, entry) = patch(json!({"weight": 3, "state": "up"}));
    assert_eq!((status, entry["weight"].clone()), (200, json!(3)));
    let names = spread(&proxy, 40);
    assert_eq!(
        (count(&names, "a"), count(&names, "b")),
        (10, 30),
        "{names:?}"
    );
    assert_eq!(api.get("/backends/1")["weight"], 3);
}

// Proves no request is lost while backends are reweighed, drained, switched off and on,
// removed and added back under load: every response of four looping clients is a 200.
#[test]
fn pool_changes_under_load_lose_no_request() {
    let backends: Vec<Backend> = ["a", "b", "c"].iter().map(|n| Backend::start(n)).collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let proxy = quiet_proxy(&addrs, json!({}));
    let api = Api::of(&proxy);
    let stop = Arc::new(AtomicBool::new(false));
    let bad = Arc::new(Mutex::new(Vec::<String>::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let addr = proxy.addr();
    let clients: Vec<_> = (0..4)
        .map(|t| {
            let (stop, bad, sent) = (Arc::clone(&stop), Arc::clone(&bad), Arc::clone(&sent));
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                for i in 0..3000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if i % 25 == 24 {
                        c = Client::connect(addr);
                    }
                    c.send(format!("GET /load/{t}/{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
                    sent.fetch_add(1, Ordering::Relaxed);
                    match c.try_response() {
                        Ok(r) if r.status == 200 => {}
                        Ok(r) => bad
                            .lock()
                            .expect("lock")
                            .push(format!("{t}/{i}: {}", r.status)),
                        Err(e) => {
                            bad.lock().expect("lock").push(format!("{t}/{i}: {e}"));
                            c = Client::connect(addr);
                        }
                    }
                }
            })
        })
        .collect();
    let mut c_id = 2;
    for round in 0..10u64 {
        let ok = |r: (u16, Value)| assert!(matches!(r.0, 200 | 202), "round {round}: {}", r.1);
        ok(api.call(
            "PATCH",
            "/backends/0",
            Some(json!({"weight": round % 4 + 1})),
        ));
        ok(api.call("PATCH", "/backends/1", Some(json!({"state": "draining"}))));
        thread::sleep(Duration::from_millis(20));
        ok(api.call(
            "PATCH",
            "/backends/1",
            Some(json!({"state": "up", "weight": 2})),
        ));
        ok(api.call("PUT", "/backends/0/status", Some(json!({"alive": false}))));
        thread::sleep(Duration::from_millis(20));
        ok(api.call("PUT", "/backends/0/status", Some(json!({"alive": true}))));
        ok(api.call("DELETE", &format!("/backends/{c_id}"), None));
        thread::sleep(Duration::from_millis(20));
        c_id = api.add(addrs[2], json!({"weight": round % 3 + 1}));
    }
    stop.store(true, Ordering::Relaxed);
    for t in clients {
        t.join().expect("a client thread");
    }
    let bad = bad.lock().expect("lock").clone();
    let sent = sent.load(Ordering::Relaxed);
    assert!(
        bad.is_empty(),
        "{} of {sent} requests failed: {bad:?}",
        bad.len()
    );
    assert!(sent >= 200, "only {sent} requests were sent");
    let served: usize = backends.iter().map(|b| b.record.count()).sum();
    assert_eq!(served, sent, "every request reached a backend once");
    assert_eq!(c_id, 12, "ids 2, 3, … 12: the next each time");
}

// Proves concurrent admin writes keep the pool consistent: ids unique and consecutive, the
// same backend added twice at once is added once, and the listing is what the calls did.
#[test]
fn concurrent_admin_writes_keep_the_pool_consistent() {
    let proxy = quiet_proxy(&[], json!({}));
    let api = Api::of(&proxy);
    let workers: Vec<_> = (0..4u16)
        .map(|t| {
            let api = api.clone();
            thread::spawn(move || {
                let mut kept = Vec::new();
                let mut all = Vec::new();
                for i in 0..6u16 {
                    let addr = SocketAddr::from(([127, 0, 0, 1], 20_000 + t * 100 + i));
                    let id = api.add(addr, json!({}));
                    all.push(id);
                    if i % 2 == 0 {
                        let (status, body) = api.call("DELETE", &format!("/backends/{id}"), None);
                        assert_eq!(status, 200, "{body}");
                    } else {
                        kept.push(id);
                    }
                }
                (kept, all)
            })
        })
        .collect();
    let same = json!({"url": "http://127.0.0.1:1"});
    let twins: Vec<_> = (0..2)
        .map(|_| {
            let (api, same) = (api.clone(), same.clone());
            thread::spawn(move || api.call("POST", "/backends", Some(same)))
        })
        .collect();
    let mut kept = BTreeSet::new();
    let mut all = Vec::new();
    for w in workers {
        let (k, a) = w.join().expect("a writer");
        kept.extend(k);
        all.extend(a);
    }
    let mut statuses: Vec<u16> = Vec::new();
    for t in twins {
        let (status, body) = t.join().expect("a twin");
        if status == 201 {
            kept.insert(body["id"].as_u64().expect("id"));
            all.push(body["id"].as_u64().expect("id"));
        } else {
            assert!(
                error_message(&body).contains("is the same backend as"),
                "{body}"
            );
        }
        statuses.push(status);
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        vec![201, 409],
        "one of the twins is added, the other is a conflict"
    );
    all.sort_unstable();
    assert_eq!(
        all,
        (0..25).collect::<Vec<u64>>(),
        "ids unique and consecutive"
    );
    let listed: BTreeSet<u64> = api.get("/backends")["backends"]
        .as_array()
        .map(|l| l.iter().filter_map(|b| b["id"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(listed, kept);
    assert_eq!(
        api.add(SocketAddr::from(([127, 0, 0, 1], 2)), json!({})),
        25
    );
}
