//! Active health checks (`src/health/`) on real sockets: tcp and http checks take a failing
//! backend down after `health_check_fall` checks and bring it back after `health_check_rise`;
//! traffic follows; `health_check_expect`, `none` and a `0s` interval are honoured; probes carry
//! the configured path, `Host` and `User-Agent: ferrule-health`; a backend that hangs fails by
//! timeout without delaying the others' checks; an `https://` backend is probed over TLS and a
//! wrong CA takes it down; backends added to the pool are checked, removed ones forgotten.
//!
//! The backends here answer probes themselves (with a status the test can change) instead of
//! `common::Backend`'s fixed `200`. Nothing signals a change of health, so waits poll the admin
//! API (or the pool) every 10 ms, each bounded by a limit that says how long it may take.
//!
//! Passive health (failures seen in traffic, and the retries that go with them) is in `passive`.

use crate::common;

mod passive;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ferrule::balancer::HealthInfo;
use serde_json::{json, Value};

/// Slack on top of what a change of health should take, for a loaded machine.
const MARGIN: Duration = Duration::from_secs(3);

// ----------------------------------------------------------------------------- backends

/// A plain-HTTP backend that answers health probes with a status the test sets (`0`: reads the
/// probe and never answers) and anything else with `200`, keep-alive. It records every probe's
/// head and arrival time, and counts the other requests.
struct ProbeBackend {
    addr: SocketAddr,
    url: String,
    status: Arc<AtomicU16>,
    probes: Arc<Mutex<Vec<(Instant, String)>>>,
    traffic: Arc<AtomicUsize>,
    /// Serves until the backend is dropped.
    _accepting: AcceptLoop,
}

impl ProbeBackend {
    fn start(status: u16) -> ProbeBackend {
        ProbeBackend::on(TcpListener::bind("127.0.0.1:0").expect("bind"), status)
    }

    fn on(listener: TcpListener, status: u16) -> ProbeBackend {
        let status = Arc::new(AtomicU16::new(status));
        let probes: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let traffic: Arc<AtomicUsize> = Arc::default();
        let (st, pr, tr) = (
            Arc::clone(&status),
            Arc::clone(&probes),
            Arc::clone(&traffic),
        );
        let accepting = common::serve(listener, move |stream| serve(stream, &st, &pr, &tr));
        let addr = accepting.addr;
        ProbeBackend {
            addr,
            url: format!("http://{addr}"),
            status,
            probes,
            traffic,
            _accepting: accepting,
        }
    }

    fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn probe_count(&self) -> usize {
        self.probes.lock().map_or(0, |p| p.len())
    }

    fn probe_heads(&self) -> Vec<String> {
        self.probes
            .lock()
            .map(|p| p.iter().map(|(_, h)| h.clone()).collect())
            .unwrap_or_default()
    }

    fn traffic(&self) -> usize {
        self.traffic.load(Ordering::SeqCst)
    }

    fn entry(&self) -> Value {
        json!({"url": self.url})
    }
}

fn serve(
    stream: TcpStream,
    status: &AtomicU16,
    probes: &Mutex<Vec<(Instant, String)>>,
    traffic: &AtomicUsize,
) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    // one request head at a time (no body: neither probes nor the tests' requests have one)
    while let Ok(head) = Head::read(&mut reader).map(|h| h.text) {
        if !head_is_health_probe(head.as_bytes()) {
            traffic.fetch_add(1, Ordering::SeqCst);
            let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            if writer.write_all(ok).is_err() {
                return;
            }
            continue;
        }
        if let Ok(mut p) = probes.lock() {
            p.push((Instant::now(), head));
        }
        match status.load(Ordering::SeqCst) {
            // hang: read on, until the prober gives up and closes
            0 => continue,
            code => {
                let answer = format!(
                    "HTTP/1.1 {code} Whatever\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = writer.write_all(answer.as_bytes());
                return;
            }
        }
    }
}

// ----------------------------------------------------------------------------- the proxy

/// A proxy (one worker, round-robin) in front of `backends` (config entries), `extra` merged in.
fn proxy(backends: Vec<Value>, extra: Value) -> Proxy {
    let mut cfg = json!({
        "port": 0,
        "admin_port": 0,
        "bind": "127.0.0.1",
        "workers": 1,
        "strategy": "round-robin",
        "backends": backends,
    });
    if let (Some(map), Value::Object(more)) = (cfg.as_object_mut(), extra) {
        map.extend(more);
    }
    Proxy::from_json(&cfg.to_string())
}

/// The admin API's `healthy` for the backend with this URL.
fn healthy(proxy: &Proxy, url: &str) -> bool {
    let all = proxy.admin_get("/backends");
    all["backends"]
        .as_array()
        .and_then(|list| list.iter().find(|b| b["url"] == url))
        .and_then(|b| b["healthy"].as_bool())
        .unwrap_or_else(|| panic!("no healthy flag for {url} in {all}"))
}

/// The health record of the backend with this URL.
fn record(proxy: &Proxy, url: &str) -> HealthInfo {
    let pool = proxy.handle.balancer().current();
    let backend = pool
        .backends()
        .iter()
        .find(|b| b.url == url)
        .unwrap_or_else(|| panic!("{url} is in the pool"));
    let info = backend.health.lock().clone();
    info
}

/// Polls `cond` every 10 ms until it holds; returns how long that took. Panics after `limit`.
fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if cond() {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Sends `n` requests through the proxy; each must get `200`.
fn send(proxy: &Proxy, n: usize) {
    for i in 0..n {
        let r = proxy.get(&format!("/req/{i}"));
        assert_eq!(r.status, 200, "request {i}: {r:?}");
    }
}

// ----------------------------------------------------------------------------- tests

#[test]
fn tcp_check_takes_a_refusing_backend_down_and_brings_it_back_once_it_listens() {
    let interval = Duration::from_millis(100);
    let (fall, rise) = (2u32, 2u32);
    // bound but not listening: connects are refused until it listens
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    socket.bind(&any.into()).expect("bind");
    let addr = socket
        .local_addr()
        .expect("addr")
        .as_socket()
        .expect("inet");
    let url = format!("http://{addr}");
    let other = ProbeBackend::start(200);
    let p = proxy(
        vec![json!({"url": url}), other.entry()],
        json!({
            "health_check_method": "tcp",
            "health_check_frequency": "100ms",
            "health_check_timeout": "1s",
            "health_check_fall": fall,
            "health_check_rise": rise,
        }),
    );
    assert!(healthy(&p, &url), "backends start up");

    let limit = interval * (fall + 1) + MARGIN;
    wait_until(limit, "the refusing backend goes down", || {
        !healthy(&p, &url)
    });
    let info = record(&p, &url);
    assert!(info.failures >= fall, "{info:?}");
    assert_eq!(info.last_error.as_deref(), Some("connection refused"));
    // tcp checks send no request
    assert_eq!(other.probe_count(), 0);
    assert!(healthy(&p, &other.url));

    socket.listen(128).expect("listen");
    let back = ProbeBackend::on(socket.into(), 200);
    let limit = interval * (rise + 1) + MARGIN;
    wait_until(limit, "the backend comes up again", || healthy(&p, &url));
    assert!(record(&p, &url).successes >= rise);
    // and traffic reaches it again
    send(&p, 4);
    assert!(back.traffic() >= 1, "round-robin sends it its share");
    assert_eq!(back.probe_count(), 0, "tcp checks send no request");
}

#[test]
fn http_check_takes_a_failing_backend_down_traffic_avoids_it_then_returns_to_it() {
    let interval = Duration::from_millis(100);
    let (fall, rise) = (2u32, 2u32);
    let steady = ProbeBackend::start(200);
    let flaky = ProbeBackend::start(200);
    let p = proxy(
        vec![steady.entry(), flaky.entry()],
        json!({
            "health_check_frequency": "100ms",
            "health_check_timeout": "1s",
            "health_check_fall": fall,
            "health_check_rise": rise,
        }),
    );
    send(&p, 4);
    assert_eq!((steady.traffic(), flaky.traffic()), (2, 2));
    wait_until(MARGIN, "a first probe", || flaky.probe_count() >= 1);

    flaky.set_status(503);
    let limit = interval * (fall + 1) + MARGIN;
    wait_until(limit, "the 503 backend goes down", || {
        !healthy(&p, &flaky.url)
    });
    let info = record(&p, &flaky.url);
    assert_eq!(info.last_error.as_deref(), Some("status 503"));
    assert!(info.failures >= fall, "{info:?}");
    assert!(healthy(&p, &steady.url));

    // no request reaches the down backend
    let before = (steady.traffic(), flaky.traffic());
    send(&p, 10);
    assert_eq!(
        (steady.traffic(), flaky.traffic()),
        (before.0 + 10, before.1)
    );

    flaky.set_status(200);
    let limit = interval * (rise + 1) + MARGIN;
    wait_until(limit, "the backend comes up again", || {
        healthy(&p, &flaky.url)
    });
    let before = flaky.traffic();
    send(&p, 10);
    assert!(flaky.traffic() >= before + 4, "traffic returns to it");
}

#[test]
fn expect_200_only_fails_a_204() {
    let ok = ProbeBackend::start(200);
    let no_content = ProbeBackend::start(204);
    let p = proxy(
        vec![ok.entry(), no_content.entry()],
        json!({
            "health_check_frequency": "100ms",
            "health_check_expect": "200",
            "health_check_fall": 1,
        }),
    );
    wait_until(MARGIN, "the 204 backend goes down", || {
        !healthy(&p, &no_content.url)
    });
    assert_eq!(
        record(&p, &no_content.url).last_error.as_deref(),
        Some("status 204")
    );
    wait_until(MARGIN, "three passed checks of the 200 backend", || {
        record(&p, &ok.url).successes >= 3
    });
    assert!(healthy(&p, &ok.url));
}

#[test]
fn method_none_and_a_zero_interval_send_no_probes() {
    let for_none = Backend::start("none");
    let for_zero = Backend::start("zero");
    let control = Backend::start("control");
    let _none = Proxy::start(
        &[for_none.addr],
        json!({"health_check_method": "none", "health_check_frequency": "100ms"}),
    );
    let _zero = Proxy::start(&[for_zero.addr], json!({"health_check_frequency": "0s"}));
    let _control = Proxy::start(&[control.addr], json!({"health_check_frequency": "100ms"}));
    // the control proxy's checks show the time that passed: five rounds of it
    wait_until(MARGIN, "the control backend is probed", || {
        control.record.health_probes() >= 5
    });
    assert_eq!(for_none.record.health_probes(), 0);
    assert_eq!(for_zero.record.health_probes(), 0);
}

#[test]
fn probes_carry_the_agent_the_configured_path_and_the_host() {
    let b = ProbeBackend::start(200);
    let _p = proxy(
        vec![b.entry()],
        json!({"health_check_frequency": "100ms", "health_check_path": "/custom/ready"}),
    );
    wait_until(MARGIN, "two probes", || b.probe_count() >= 2);
    assert_eq!(b.traffic(), 0, "a probe is not traffic");
    for head in b.probe_heads() {
        let lines: Vec<&str> = head.split("\r\n").collect();
        assert_eq!(lines[0], "GET /custom/ready HTTP/1.1", "{head}");
        let field = |name: &str| {
            lines
                .iter()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_owned())
        };
        assert_eq!(field("host"), Some(b.addr.to_string()), "{head}");
        assert_eq!(
            field("user-agent").as_deref(),
            Some("ferrule-health"),
            "{head}"
        );
        assert_eq!(field("connection").as_deref(), Some("close"), "{head}");
    }
}

#[test]
fn hanging_backends_time_out_without_delaying_the_others_checks() {
    let interval = Duration::from_millis(200);
    let hanging: Vec<ProbeBackend> = (0..20).map(|_| ProbeBackend::start(0)).collect();
    let alive = ProbeBackend::start(200);
    let mut entries: Vec<Value> = hanging.iter().map(ProbeBackend::entry).collect();
    entries.push(alive.entry());
    let p = proxy(
        entries,
        json!({
            "health_check_frequency": "200ms",
            "health_check_timeout": "100ms",
            "health_check_fall": 2,
        }),
    );
    wait_until(MARGIN, "a first probe of the live backend", || {
        alive.probe_count() >= 1
    });
    // ten more rounds' worth of checks of the live backend in about ten intervals: the twenty
    // probes that hang each round do not hold it up (one after the other, they would take 2 s
    // a round)
    let from = alive.probe_count();
    let took = wait_until(interval * 10 + MARGIN, "ten more checks", || {
        alive.probe_count() >= from + 10
    });
    assert!(
        took >= interval * 8,
        "one check a round, not more: {took:?}"
    );
    for h in &hanging {
        wait_until(MARGIN, "a hanging backend goes down", || {
            !healthy(&p, &h.url)
        });
        let info = record(&p, &h.url);
        assert_eq!(info.last_error.as_deref(), Some("timed out"), "{}", h.url);
        assert!(h.probe_count() >= 2, "{}", h.url);
    }
    assert!(healthy(&p, &alive.url));
    let info = record(&p, &alive.url);
    assert!(info.successes >= 10 && info.failures == 0, "{info:?}");
}

#[test]
fn backends_added_to_the_pool_are_checked_and_removed_ones_forgotten() {
    let first = ProbeBackend::start(200);
    let added = ProbeBackend::start(200);
    let p = proxy(
        vec![first.entry()],
        json!({"health_check_frequency": "100ms"}),
    );
    wait_until(MARGIN, "the first backend is probed", || {
        first.probe_count() >= 1
    });
    let cfg = ferrule::config::BackendConfig {
        url: added.url.clone(),
        scheme: ferrule::config::Scheme::Http,
        host: "127.0.0.1".into(),
        port: added.addr.port(),
        addr: added.addr,
        weight: 1,
        max_conns: None,
    };
    let balancer = p.handle.balancer();
    balancer.update(|pool| pool.add(&cfg, None));
    wait_until(MARGIN, "the added backend is probed", || {
        added.probe_count() >= 2
    });
    let first_id = balancer.current().backends()[0].id;
    balancer.update(|pool| pool.remove(first_id));
    let before = first.probe_count();
    let from = added.probe_count();
    wait_until(MARGIN, "three more checks of the one left", || {
        added.probe_count() >= from + 3
    });
    // at most the probe that was already under way when it was removed
    assert!(
        first.probe_count() <= before + 1,
        "the removed backend is still probed"
    );
}

// ----------------------------------------------------------------------------- TLS

/// A test certificate authority.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA cert");
        Ca { cert, key }
    }
}

/// An HTTPS backend with a certificate for 127.0.0.1 from `ca`: answers probes `200` and
/// records their heads.
struct TlsBackend {
    url: String,
    heads: Arc<Mutex<Vec<String>>>,
    /// Serves until the backend is dropped.
    _accepting: AcceptLoop,
}

impl TlsBackend {
    fn start(ca: &Ca) -> TlsBackend {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &ca.cert, &ca.key).expect("sign");
        let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = Arc::clone(&heads);
        let accepting = common::serve(listener, move |stream| {
            let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
            let Ok(conn) = rustls::ServerConnection::new(Arc::clone(&config)) else {
                return;
            };
            let mut tls = BufReader::new(rustls::StreamOwned::new(conn, stream));
            // a failed handshake ends here, with no head
            let Ok(head) = Head::read(&mut tls).map(|h| h.text) else {
                return;
            };
            if let Ok(mut s) = seen.lock() {
                s.push(head);
            }
            let tls = tls.get_mut();
            let _ =
                tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            tls.conn.send_close_notify();
            let _ = tls.flush();
            let _ = tls.read(&mut [0u8; 64]);
        });
        TlsBackend {
            url: format!("https://{}", accepting.addr),
            heads,
            _accepting: accepting,
        }
    }

    fn probes(&self) -> Vec<String> {
        self.heads.lock().map(|h| h.clone()).unwrap_or_default()
    }
}

#[test]
fn https_backends_are_probed_over_tls_and_a_wrong_ca_takes_one_down() {
    let dir = TempDir::new("https-probes");
    let ca = Ca::new("health test CA");
    let stranger = Ca::new("another CA");
    let ca_file = dir.join("ca.pem");
    let stranger_file = dir.join("stranger.pem");
    std::fs::write(&ca_file, ca.cert.pem()).expect("write CA");
    std::fs::write(&stranger_file, stranger.cert.pem()).expect("write CA");
    let trusted = TlsBackend::start(&ca);
    let mistrusted = TlsBackend::start(&ca);
    let p = proxy(
        vec![
            json!({"url": trusted.url, "ca_file": ca_file}),
            json!({"url": mistrusted.url, "ca_file": stranger_file}),
        ],
        json!({
            "health_check_frequency": "100ms",
            "health_check_timeout": "1s",
            "health_check_fall": 2,
        }),
    );
    wait_until(MARGIN, "the wrong CA takes a backend down", || {
        !healthy(&p, &mistrusted.url)
    });
    let info = record(&p, &mistrusted.url);
    let reason = info.last_error.unwrap_or_default();
    assert!(reason.contains("unknown issuer"), "{reason}");
    assert!(
        mistrusted.probes().is_empty(),
        "no request without a handshake"
    );

    wait_until(MARGIN, "three probes over TLS", || {
        trusted.probes().len() >= 3
    });
    let head = &trusted.probes()[0];
    assert!(head.starts_with("GET /health HTTP/1.1\r\n"), "{head}");
    assert!(head_is_health_probe(head.as_bytes()), "{head}");
    assert!(healthy(&p, &trusted.url));
    let info = record(&p, &trusted.url);
    assert_eq!(info.failures, 0, "{info:?}");
}
