//! Micro-benchmarks of the data path's pure functions, through ferrule's public API: request head
//! scan + rewrite, response head rewrite, chunked body framing, one balancer pick, one route
//! lookup, one access-log line, and the whole per-request work outside the sockets (`request`:
//! every feature off, and the common ones on), and one rate-limit check.
//!
//! ```text
//! cargo bench --bench hot_path -- --warm-up-time 1 --measurement-time 2
//! cargo bench --bench hot_path -- chunked          # one group only (a name filter)
//! ```
//!
//! The sockets, the worker loop and the session state machine are measured end to end by
//! `stress/load.sh` and `../shared/bench/compare.sh`; this file isolates the CPU cost of the
//! parsing/rewriting/selection steps every request goes through (see `stress/README.md`).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use ferrule::balancer::{Ask, Balancer, Choice, Picker, Policy, Pool, WorkerPick};
use ferrule::config::{BackendConfig, Config, Scheme, StickyMode, Strategy};
use ferrule::hash::hash_ip;
use ferrule::http::request::{self, ClientInfo, KeySource, Limits};
use ferrule::http::response::{self, Answering};
use ferrule::http::{Body, Framing, Method, Step};
use ferrule::route::{RouteSpec, Routes};

/// A browser-like GET: 10 header fields, ~400 bytes.
const REQUEST: &[u8] = b"GET /api/v1/products/12345?ref=home&lang=en HTTP/1.1\r\n\
Host: shop.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Referer: https://shop.example.com/\r\n\
Cookie: session=4f9a2c7e1b; theme=dark\r\n\
Connection: keep-alive\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Cache-Control: max-age=0\r\n\
\r\n";

/// A typical backend response head (nginx-like, keep-alive, Content-Length framed).
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: nginx/1.22.1\r\n\
Date: Tue, 25 Nov 2026 10:00:00 GMT\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Length: 6120\r\n\
Connection: keep-alive\r\n\
Cache-Control: private, max-age=60\r\n\
ETag: \"6745b2c0-17e8\"\r\n\
Vary: Accept-Encoding\r\n\
X-Backend: 18482\r\n\
\r\n";

const LIMITS: Limits = Limits {
    max_head: 16 * 1024,
    max_uri: 8 * 1024,
    max_headers: ferrule::http::DEFAULT_MAX_HEADERS,
    max_body: 0,
};

fn heads(c: &mut Criterion) {
    let router = ferrule::http::request::OnePool(ferrule::http::request::Routed {
        pool: 0,
        route: None,
        strip: 0,
        key: KeySource::ClientIp,
        limit_key: KeySource::ClientIp,
        sticky_cookie: None,
        strip_sticky_cookie: false,
    });
    let client = ClientInfo {
        ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 17)),
        tls: false,
        router: &router,
        trusted: &ferrule::client_ip::TrustedProxies::EMPTY,
        // as a default config runs: the request has no id, so one is added
        request_id: Some(b"4f1c2e9a0b7d6c5e8a9b0c1d2e3f4a5b"),
    };
    let mut out = Vec::with_capacity(1024);

    // Sanity: the inputs are what the benchmark claims they are.
    let end = request::find_head_end(REQUEST, 0)
        .ok()
        .flatten()
        .expect("complete request head");
    assert_eq!(end, REQUEST.len());
    request::rewrite(REQUEST, &LIMITS, &client, &mut out)
        .ok()
        .flatten()
        .expect("request head rewrites");

    let mut group = c.benchmark_group("request_head");
    group.throughput(Throughput::Bytes(REQUEST.len() as u64));
    group.bench_function("find_head_end", |b| {
        b.iter(|| request::find_head_end(black_box(REQUEST), 0))
    });
    group.bench_function("find_head_end+rewrite", |b| {
        b.iter(|| {
            let buf = black_box(REQUEST);
            let end = match request::find_head_end(buf, 0) {
                Ok(Some(end)) => end,
                _ => unreachable!("head is complete"),
            };
            let parsed = request::rewrite(&buf[..end], &LIMITS, &client, &mut out);
            black_box(&out);
            parsed
        })
    });
    group.finish();

    let date = ferrule::http::date::HttpDate::now();
    let ex = Answering {
        method: Method::Get,
        http10: false,
        keep_alive: true,
        upgrade: false,
        set_cookie: None,
        max_headers: ferrule::http::DEFAULT_MAX_HEADERS,
        added: ferrule::http::Added {
            date: date.text(),
            hsts: None,
        },
    };
    response::rewrite(RESPONSE, &ex, &mut out).expect("response head rewrites");

    let mut group = c.benchmark_group("response_head");
    group.throughput(Throughput::Bytes(RESPONSE.len() as u64));
    group.bench_function("find_head_end+rewrite", |b| {
        b.iter(|| {
            let buf = black_box(RESPONSE);
            let end = match request::find_head_end(buf, 0) {
                Ok(Some(end)) => end,
                _ => unreachable!("head is complete"),
            };
            let parsed = response::rewrite(&buf[..end], &ex, &mut out);
            black_box(&out);
            parsed
        })
    });
    group.finish();
}

/// A chunked body carrying `payload` bytes in chunks of `chunk` bytes, then the last chunk.
fn chunked_body(payload: usize, chunk: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(payload + payload / chunk * 8 + 5);
    let mut left = payload;
    while left > 0 {
        let n = left.min(chunk);
        body.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        body.resize(body.len() + n, b'x');
        body.extend_from_slice(b"\r\n");
        left -= n;
    }
    body.extend_from_slice(b"0\r\n\r\n");
    body
}

/// Steps a chunked decoder over the whole of `body`, as the session does with a full buffer.
/// Returns the payload byte count.
fn decode(body: &[u8]) -> usize {
    let mut state = Body::new(Framing::Chunked);
    let mut at = 0;
    let mut payload = 0;
    loop {
        match state.step(&body[at..]) {
            Ok(Step::Payload(n)) => {
                payload += n;
                at += n;
            }
            Ok(Step::Framing(n)) => at += n,
            Ok(Step::Done) => return payload,
            Ok(Step::Blocked) | Err(_) => unreachable!("body is complete and well-formed"),
        }
    }
}

fn chunked(c: &mut Criterion) {
    const PAYLOAD: usize = 64 * 1024;
    let mut group = c.benchmark_group("chunked_64k");
    for chunk in [4096, 16] {
        let body = chunked_body(PAYLOAD, chunk);
        assert_eq!(decode(&body), PAYLOAD);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("chunks", chunk), &body, |b, body| {
            b.iter(|| decode(black_box(body)))
        });
    }
    group.finish();
}

fn backends(weights: &[u32]) -> Vec<BackendConfig> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &weight)| {
            let port = 18482 + (i % 40_000) as u16;
            BackendConfig {
                url: format!("http://127.0.0.1:{port}"),
                scheme: Scheme::Http,
                host: "127.0.0.1".into(),
                port,
                addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                weight,
                max_conns: None,
            }
        })
        .collect()
}

fn balancer(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    // every strategy at 3, 100 and 1,000 backends (weights 1..=5, so weighted cases are weighted)
    let mut cases = Vec::new();
    for strategy in Strategy::ALL {
        if strategy == Strategy::WeightedRoundRobin {
            continue; // the same code as round-robin
        }
        for n in [3usize, 100, 1000] {
            let weights: Vec<u32> = (0..n).map(|i| 1 + (i % 5) as u32).collect();
            cases.push((format!("{strategy}/{n}"), strategy, weights));
        }
    }
    for (name, strategy, weights) in cases {
        let pool = Pool::new(strategy, &backends(&weights));
        // Least-conn with requests in flight, so the comparison is not all ties.
        for (i, b) in pool.backends().iter().enumerate() {
            for _ in 0..i {
                b.begin_request();
            }
        }
        let mut state = WorkerPick::new(0);
        assert!(pool.pick(&mut state, 1, None).is_some());
        let mut key = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                key = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
                pool.pick(&mut state, black_box(key), None).map(|b| b.id)
            })
        });
    }
    group.finish();
}

/// The whole decision for one request (`Picker::choose`): round robin over 3 backends without
/// stickiness, with the sticky table (`ip`: a lookup, and a bind for a client it has not seen,
/// here 10,000 clients in turn) and with the sticky cookie (a map lookup).
fn choose(c: &mut Criterion) {
    let mut group = c.benchmark_group("choose");
    let modes: [(&str, Option<StickyMode>); 3] = [
        ("plain", None),
        ("sticky-ip", Some(StickyMode::Ip)),
        ("sticky-cookie", Some(StickyMode::Cookie)),
    ];
    for (name, mode) in modes {
        let mut config = Config::from_json_str(r#"{"backends": []}"#).expect("config");
        config.pool.sticky.enabled = mode.is_some();
        if let Some(mode) = mode {
            config.pool.sticky.mode = mode;
        }
        let pool = Pool::new(Strategy::RoundRobin, &backends(&[1, 1, 1]));
        let cookie = pool.backends()[1].cookie_id();
        let balancer = Balancer::with_policy(pool, Policy::from_pool(&config.pool));
        let mut picker = Picker::new(&balancer, 0);
        let now = std::time::Instant::now();
        let mut client = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                client = (client + 1) % 10_000;
                let ask = Ask {
                    key: client,
                    client: hash_ip(IpAddr::V4(Ipv4Addr::from(client as u32))),
                    cookie: Some(cookie),
                    exclude: None,
                    now,
                };
                match picker.choose(&balancer, black_box(&ask)) {
                    Choice::Backend { backend, .. } => backend.id,
                    _ => u64::MAX,
                }
            })
        });
    }
    group.finish();
}

/// The route lookup (`route::Routes::find`) among 1, 10 and 1,000 routes, the request matching
/// the last route of the file: by host (each route its own host and a path prefix), and by path
/// prefix alone (every route a prefix of any host).
fn routes(c: &mut Criterion) {
    let mut group = c.benchmark_group("route");
    for n in [1usize, 10, 1000] {
        let by_host: Vec<RouteSpec> = (0..n)
            .map(|i| RouteSpec {
                host: Some(format!("svc{i}.example.com")),
                path_prefix: Some(format!("/api/v{}/", i % 5)),
                pool: i % 7,
                strip_prefix: false,
            })
            .collect();
        let by_path: Vec<RouteSpec> = (0..n)
            .map(|i| RouteSpec {
                host: None,
                path_prefix: Some(format!("/svc{i}/")),
                pool: i % 7,
                strip_prefix: true,
            })
            .collect();
        let host = format!("svc{}.example.com:8080", n - 1);
        let path = format!("/api/v{}/users/42", (n - 1) % 5);
        let table = Routes::new(by_host);
        group.bench_function(BenchmarkId::new("host", n), |b| {
            b.iter(|| table.find(black_box(host.as_bytes()), black_box(path.as_bytes())))
        });
        let path = format!("/svc{}/users/42", n - 1);
        let table = Routes::new(by_path);
        group.bench_function(BenchmarkId::new("path", n), |b| {
            b.iter(|| table.find(black_box(b"example.com"), black_box(path.as_bytes())))
        });
    }
    group.finish();
}

/// One rate-limit check (`limits::Limit::check` on the shared table of buckets), the request
/// allowed: one client over and over (its way found first), and 4,096 clients in turn in a table of
/// 65,536 keys (a way found among the four of its set, cold in cache more often).
fn rate_limit(c: &mut Criterion) {
    use ferrule::config::{HashKey, RateLimit};
    use ferrule::limits::{Buckets, Limit};
    let config = Config::from_json_str(r#"{"rate_limit": {"requests_per_second": 1000000}}"#)
        .expect("valid");
    let limit: RateLimit = config.pool.rate_limit.limit.expect("a limit");
    assert_eq!(limit.key, HashKey::ClientIp);
    let limit = Limit::new("pool:default", &limit, &[]);
    let buckets = Buckets::new(65_536);
    let client = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let mut group = c.benchmark_group("rate_limit");
    group.throughput(Throughput::Elements(1));
    // a million a second: a check a microsecond apart is always allowed
    let mut now = 1_000_000u64;
    group.bench_function("one_client", |b| {
        b.iter(|| {
            now += 1;
            limit.check(
                &buckets,
                black_box(client),
                black_box(0x1234_5678_9abc),
                None,
                now,
            )
        })
    });
    let hashes: Vec<u64> = (0..4096u64)
        .map(|i| ferrule::hash::hash_ip(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32))))
        .collect();
    let mut i = 0usize;
    group.bench_function("4096_clients", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            now += 1;
            limit.check(&buckets, black_box(client), black_box(hashes[i]), None, now)
        })
    });
    group.finish();
}

/// One access-log line in each format, as the writer thread formats it (the time text moves
/// every 20 lines, as under ~50k requests/s it does each millisecond).
fn access_log_line(c: &mut Criterion) {
    use ferrule::access_log::{combined, json, Entry, Stamp, Text};
    use std::time::{Duration, Instant};
    let start = Instant::now();
    let mut e = Entry::new(start);
    e.peer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    e.set(Text::Method, b"GET");
    e.set(Text::Target, b"/api/v1/products/12345?ref=home&lang=en");
    e.set(Text::Host, b"shop.example.com");
    e.set(Text::Referer, b"https://shop.example.com/");
    e.set(
        Text::UserAgent,
        b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    );
    e.set(Text::RequestId, b"0123456789abcdef0123456789abcdef");
    e.status = 200;
    e.bytes_out = 1_500;
    e.head_out = 200;
    e.backend = Some(SocketAddr::from(([127, 0, 0, 1], 9001)));
    e.upstream_started = Some(start + Duration::from_micros(40));
    e.upstream_ended = Some(start + Duration::from_micros(900));
    e.ended = start + Duration::from_millis(1);
    let mut group = c.benchmark_group("access_log");
    group.throughput(Throughput::Elements(1));
    for (name, format) in [
        ("combined", combined as fn(&Entry, &Stamp, &mut Vec<u8>)),
        ("json", json),
    ] {
        let mut at = Stamp::new();
        let mut out = Vec::with_capacity(1 << 16);
        let mut wall = 1_796_215_181_123u64;
        let mut n = 0u32;
        group.bench_function(name, |b| {
            b.iter(|| {
                n = n.wrapping_add(1);
                if n % 20 == 0 {
                    wall += 1;
                }
                at.set(wall);
                out.clear();
                format(black_box(&e), &at, &mut out);
                out.len()
            })
        });
    }
    group.finish();
}

/// The whole per-request work of a worker outside the sockets, for one keep-alive GET: the
/// request head found and rewritten (the route decided inside), the backend chosen, the response
/// head rewritten, and the outlier count kept. `off`: every feature off (no request id, no
/// stickiness, no slow start, no outlier detection); `common`: what a typical config turns on (a
/// request id added, sticky cookies read and set, a slow start and outlier detection configured
/// that are not under way). A user-space regression on the request path shows here in seconds.
fn request_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("request");
    group.throughput(Throughput::Elements(1));
    for (name, common) in [("off", false), ("common", true)] {
        let mut config = Config::from_json_str(r#"{"backends": []}"#).expect("config");
        if common {
            config.pool.sticky.enabled = true;
            config.pool.sticky.mode = StickyMode::Cookie;
            config.pool.traffic.slow_start = std::time::Duration::from_secs(30);
            config.pool.traffic.outlier_detection = Some(ferrule::config::Outlier {
                consecutive_5xx: 5,
                base_ejection: std::time::Duration::from_secs(30),
                max_ejected_percent: 10,
            });
        }
        let policy = Policy::from_pool(&config.pool);
        let outlier = policy.outlier;
        let pool = Pool::new(Strategy::RoundRobin, &backends(&[1, 1, 1]));
        let balancer = Balancer::with_policy(pool, policy);
        let mut picker = Picker::new(&balancer, 0);
        let cookie_name: &[u8] = b"FERRULE_BACKEND";
        let router = ferrule::http::request::OnePool(ferrule::http::request::Routed {
            pool: 0,
            route: None,
            strip: 0,
            key: KeySource::ClientIp,
            limit_key: KeySource::ClientIp,
            sticky_cookie: common.then_some(cookie_name),
            strip_sticky_cookie: false,
        });
        let client = ClientInfo {
            ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 17)),
            tls: false,
            router: &router,
            trusted: &ferrule::client_ip::TrustedProxies::EMPTY,
            request_id: common.then_some(b"4f1c2e9a0b7d6c5e8a9b0c1d2e3f4a5b".as_slice()),
        };
        let date = ferrule::http::date::HttpDate::now();
        let now = std::time::Instant::now();
        let mut out = Vec::with_capacity(1024);
        let mut out_resp = Vec::with_capacity(1024);
        group.bench_function(name, |b| {
            b.iter(|| {
                let buf = black_box(REQUEST);
                let Ok(Some(end)) = request::find_head_end(buf, 0) else {
                    unreachable!("head is complete")
                };
                let Ok(Some((head, _))) = request::rewrite(&buf[..end], &LIMITS, &client, &mut out)
                else {
                    unreachable!("head rewrites")
                };
                let client_hash = hash_ip(client.ip);
                let ask = Ask {
                    key: head.key.unwrap_or(client_hash),
                    client: client_hash,
                    cookie: head.sticky,
                    exclude: None,
                    now,
                };
                let (backend, set_cookie) = match picker.choose(&balancer, &ask) {
                    Choice::Backend {
                        backend,
                        set_cookie,
                    } => (backend, set_cookie),
                    _ => unreachable!("a backend is up"),
                };
                let ex = Answering {
                    method: head.method,
                    http10: head.http10,
                    keep_alive: head.keep_alive,
                    upgrade: false,
                    set_cookie: (common && set_cookie).then(|| response::SetCookie {
                        name: cookie_name,
                        id: backend.cookie_id(),
                        max_age: 3600,
                        secure: false,
                    }),
                    max_headers: ferrule::http::DEFAULT_MAX_HEADERS,
                    added: ferrule::http::Added {
                        date: date.text(),
                        hsts: None,
                    },
                };
                let resp = black_box(RESPONSE);
                let Ok(Some(end)) = request::find_head_end(resp, 0) else {
                    unreachable!("head is complete")
                };
                let answered = response::rewrite(&resp[..end], &ex, &mut out_resp);
                if let (Some(p), Ok((h, _))) = (&outlier, &answered) {
                    ferrule::health::outlier::answered(p, backend, h.status);
                }
                black_box((&out, &out_resp));
                backend.id
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    heads,
    chunked,
    balancer,
    choose,
    routes,
    rate_limit,
    access_log_line,
    request_path
);
criterion_main!(benches);
