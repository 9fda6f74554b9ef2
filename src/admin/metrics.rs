//! `GET /stats` (JSON: totals and per worker) and `GET /metrics` (the Prometheus text format,
//! version 0.0.4).
//!
//! Both read counters only: the workers' and backends' relaxed atomics, and each backend's last
//! health check (under its `health` mutex, which the request path never takes). Metric names:
//! counters end in `_total`, times are in seconds; per backend the labels are `backend` (its URL),
//! `id` and `pool` (its pool's name); per pool `pool`; per route `route` and `pool`. Backends
//! removed and still draining are included until their last request ends.

use std::fmt::{Display, Write as _};
use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::{backends, Admin, ApiError, Call};
use crate::balancer::{Backend, State};
use crate::httpd::message::Response;
use crate::stats::{CloseReason, WorkerStats, LATENCY_BOUNDS_MS};

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn classes(counts: [u64; 5]) -> Value {
    let map: serde_json::Map<String, Value> = CLASSES
        .iter()
        .zip(counts)
        .map(|(c, n)| ((*c).to_owned(), json!(n)))
        .collect();
    Value::Object(map)
}

/// The figures of a set of workers, summed.
#[derive(Default)]
struct Totals {
    open: u64,
    accepted: u64,
    accept_errors: u64,
    per_ip_refused: u64,
    rate_limited: u64,
    responses: [u64; 5],
    bytes_in: u64,
    bytes_out: u64,
    handshakes: u64,
    tls_failures: u64,
    /// Connections closed, by reason (`CloseReason::ALL`'s order).
    closed: [u64; CloseReason::ALL.len()],
}

impl Totals {
    fn of<'a>(workers: impl IntoIterator<Item = &'a WorkerStats>) -> Totals {
        let mut t = Totals::default();
        for w in workers {
            let (bytes_in, bytes_out) = w.bytes();
            t.open += w.open();
            t.accepted += w.total_accepted();
            t.accept_errors += w.accept_errors();
            t.per_ip_refused += w.per_ip_refusals();
            t.rate_limited += w.rate_limited_requests();
            for (sum, n) in t.responses.iter_mut().zip(w.responses()) {
                *sum += n;
            }
            t.bytes_in += bytes_in;
            t.bytes_out += bytes_out;
            t.handshakes += w.tls_handshakes();
            t.tls_failures += w.tls_failures();
            for (sum, n) in t.closed.iter_mut().zip(w.closed_by_reason()) {
                *sum += n;
            }
        }
        t
    }

    /// The JSON fields (the names `/stats` has always had first).
    fn json(&self) -> serde_json::Map<String, Value> {
        let v = json!({
            "open_connections": self.open,
            "accepted_connections": self.accepted,
            "accept_errors": self.accept_errors,
            "per_ip_refused": self.per_ip_refused,
            "rate_limited": self.rate_limited,
            "responses": classes(self.responses),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "tls_handshakes": self.handshakes,
            "tls_handshake_failures": self.tls_failures,
            "closed": CloseReason::ALL
                .iter()
                .zip(self.closed)
                .map(|(r, n)| (r.name().to_owned(), Value::from(n)))
                .collect::<serde_json::Map<_, _>>(),
        });
        match v {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        }
    }
}

pub(super) fn stats(admin: &Admin, _: &Call<'_>) -> Result<Response, ApiError> {
    let workers: Vec<Value> = admin
        .state
        .workers
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let mut map = Totals::of([&**w]).json();
            // `accepted` is the per-worker name since the first version
            map.insert("worker".into(), json!(i));
            map.insert("accepted".into(), json!(w.total_accepted()));
            Value::Object(map)
        })
        .collect();
    let mut body = Totals::of(admin.state.workers.iter().map(|w| &**w)).json();
    let backends = backends::all(admin);
    let requests: u64 = backends.iter().map(|(_, b, _)| b.total_requests()).sum();
    body.insert("backend_requests".into(), json!(requests));
    body.insert(
        "access_log_dropped".into(),
        json!(admin.state.live.access_log().dropped()),
    );
    body.insert("workers".into(), Value::Array(workers));
    Ok(Response::json(200, &Value::Object(body)))
}

/// Prometheus text, one metric family at a time.
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family with one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// A family with one sample per backend.
    fn per_backend(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        list: &[Labelled<'_>],
        value: impl Fn(&Backend) -> u64,
    ) {
        self.family(name, kind, help);
        for b in list {
            self.sample(name, &b.labels(), value(b.backend));
        }
    }
}

/// A label value: `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Labelled<'a> {
    backend: &'a Backend,
    id: String,
    pool: &'a str,
}

impl Labelled<'_> {
    fn labels(&self) -> [(&str, &str); 3] {
        [
            ("backend", self.backend.url.as_str()),
            ("id", self.id.as_str()),
            ("pool", self.pool),
        ]
    }
}

/// Milliseconds as seconds, for Prometheus.
fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

pub(super) fn prometheus(admin: &Admin, _: &Call<'_>) -> Result<Response, ApiError> {
    let mut t = Text(String::with_capacity(16 * 1024));
    let workers = &admin.state.workers;
    let totals = Totals::of(workers.iter().map(|w| &**w));
    process(&mut t, admin);
    clients(&mut t, admin, &totals);

    let all = backends::all(admin);
    pools(&mut t, admin);
    let list: Vec<Labelled<'_>> = all
        .iter()
        .map(|(pool, b, _)| Labelled {
            backend: b,
            id: b.id.to_string(),
            pool,
        })
        .collect();
    backend_counters(&mut t, &list);
    health_checks(&mut t, &list);
    latency(&mut t, &list);
    Ok(Response::text(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        t.0,
    ))
}

/// The process: its version, when it started, its workers.
fn process(t: &mut Text, admin: &Admin) {
    t.family(
        "ferrule_build_info",
        "gauge",
        "Always 1; the version is a label.",
    );
    t.sample(
        "ferrule_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    let started = admin
        .started
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    t.single(
        "process_start_time_seconds",
        "gauge",
        "When the proxy started, in seconds since the Unix epoch.",
        format!("{started:.3}"),
    );
    t.single(
        "ferrule_workers",
        "gauge",
        "Worker threads.",
        admin.state.workers.len(),
    );
}

/// The clients' side: connections, responses, bytes, TLS handshakes, the access log.
fn clients(t: &mut Text, admin: &Admin, totals: &Totals) {
    t.single(
        "ferrule_connections_open",
        "gauge",
        "Client connections open now.",
        totals.open,
    );
    t.single(
        "ferrule_connections_accepted_total",
        "counter",
        "Client connections accepted.",
        totals.accepted,
    );
    t.family(
        "ferrule_connections_closed_total",
        "counter",
        "Client connections closed, by why they closed.",
    );
    for (reason, n) in CloseReason::ALL.iter().zip(totals.closed) {
        t.sample(
            "ferrule_connections_closed_total",
            &[("reason", reason.name())],
            n,
        );
    }
    t.single(
        "ferrule_accept_errors_total",
        "counter",
        "Failed accepts (out of descriptors, say).",
        totals.accept_errors,
    );
    t.single(
        "ferrule_per_ip_refused_total",
        "counter",
        "Connections closed at accept: their address held max_connections_per_ip already.",
        totals.per_ip_refused,
    );
    t.family(
        "ferrule_responses_total",
        "counter",
        "Responses sent to clients, by status class (interim 1xx not counted).",
    );
    for (class, n) in CLASSES.iter().zip(totals.responses) {
        t.sample("ferrule_responses_total", &[("class", class)], n);
    }
    t.single(
        "ferrule_received_bytes_total",
        "counter",
        "Bytes read from clients.",
        totals.bytes_in,
    );
    t.single(
        "ferrule_sent_bytes_total",
        "counter",
        "Bytes written to clients.",
        totals.bytes_out,
    );
    t.single(
        "ferrule_tls_handshakes_total",
        "counter",
        "Client TLS handshakes completed.",
        totals.handshakes,
    );
    t.single(
        "ferrule_tls_handshake_failures_total",
        "counter",
        "Client TLS handshakes that failed.",
        totals.tls_failures,
    );
    t.single(
        "ferrule_access_log_dropped_total",
        "counter",
        "Access log lines not written: the writer's queue was full, or the output failed.",
        admin.state.live.access_log().dropped(),
    );
}

/// Each backend's counters and state.
fn backend_counters(t: &mut Text, list: &[Labelled<'_>]) {
    t.per_backend(
        "ferrule_backend_requests_total",
        "counter",
        "Requests sent to the backend (retries included).",
        list,
        Backend::total_requests,
    );
    t.per_backend(
        "ferrule_backend_failures_total",
        "counter",
        "Failed attempts on the backend (connect errors, resets, invalid responses, timeouts).",
        list,
        |b| b.failures.load(Ordering::Relaxed),
    );
    t.per_backend(
        "ferrule_backend_in_flight",
        "gauge",
        "Requests in flight on the backend now.",
        list,
        |b| b.active_requests() as u64,
    );
    t.per_backend(
        "ferrule_backend_ejections_total",
        "counter",
        "Times outlier detection ejected the backend.",
        list,
        Backend::ejections,
    );
    t.per_backend(
        "ferrule_backend_weight",
        "gauge",
        "The backend's weight.",
        list,
        |b| u64::from(b.weight()),
    );
    t.per_backend(
        "ferrule_backend_up",
        "gauge",
        "1 when the backend takes new requests (state up).",
        list,
        |b| u64::from(b.state() == State::Up),
    );
    t.family(
        "ferrule_backend_state",
        "gauge",
        "1 for the backend's state (up, down, draining, disabled, ejected), 0 for the others.",
    );
    for b in list {
        let now = b.backend.state();
        for state in [
            State::Up,
            State::Down,
            State::Draining,
            State::Disabled,
            State::Ejected,
        ] {
            let [backend, id, pool] = b.labels();
            t.sample(
                "ferrule_backend_state",
                &[backend, id, pool, ("state", state.name())],
                u64::from(now == state),
            );
        }
    }
}

/// The pools' sizes and the routes' request counts.
fn pools(t: &mut Text, admin: &Admin) {
    let table = admin.state.pools.current();
    let members: Vec<_> = table.members().map(|(_, m)| m).collect();
    let pools: Vec<_> = members.iter().map(|m| m.balancer.current()).collect();
    t.single(
        "ferrule_backends",
        "gauge",
        "Backends in all pools (removed ones still draining not counted).",
        pools.iter().map(|p| p.backends().len()).sum::<usize>(),
    );
    t.family(
        "ferrule_pool_backends",
        "gauge",
        "Backends in the pool (removed ones still draining not counted).",
    );
    for (m, p) in members.iter().zip(&pools) {
        let n = p.backends().len();
        t.sample("ferrule_pool_backends", &[("pool", &m.name)], n);
    }
    t.family(
        "ferrule_pool_backends_up",
        "gauge",
        "Backends of the pool that take new requests (state up).",
    );
    for (m, p) in members.iter().zip(&pools) {
        let up = p.backends().iter().filter(|b| b.state() == State::Up);
        t.sample("ferrule_pool_backends_up", &[("pool", &m.name)], up.count());
    }
    t.family(
        "ferrule_pool_retries_total",
        "counter",
        "Retries the pool's retry budget allowed.",
    );
    for m in &members {
        let n = m.balancer.budget.retries();
        t.sample("ferrule_pool_retries_total", &[("pool", &m.name)], n);
    }
    t.family(
        "ferrule_pool_retries_refused_total",
        "counter",
        "Retries the pool's retry budget refused (the request got the error it would have got \
         without retries).",
    );
    for m in &members {
        let n = m.balancer.budget.refused();
        t.sample(
            "ferrule_pool_retries_refused_total",
            &[("pool", &m.name)],
            n,
        );
    }
    t.family(
        "ferrule_route_requests_total",
        "counter",
        "Requests a route sent to its pool (since the first load that had the route).",
    );
    for r in table.routes() {
        t.sample(
            "ferrule_route_requests_total",
            &[("route", r.name), ("pool", r.pool)],
            r.requests,
        );
    }
    rate_limited(t, &table);
}

/// `ferrule_rate_limited_total{pool,route}`: a row per route under a rate limit (or that was),
/// and one with `route=""` for the requests no route took.
fn rate_limited(t: &mut Text, table: &crate::pools::Table) {
    const NAME: &str = "ferrule_rate_limited_total";
    t.family(
        NAME,
        "counter",
        "Requests answered 429: over their rate limit.",
    );
    let limits = table.limits();
    for (i, r) in table.routes().enumerate() {
        let n = limits.refused(Some(i));
        if n > 0 || limits.limits(Some(i)) {
            t.sample(NAME, &[("pool", r.pool), ("route", r.name)], n);
        }
    }
    let n = limits.refused(None);
    if n > 0 || limits.limits(None) {
        t.sample(NAME, &[("pool", &table.default().name), ("route", "")], n);
    }
}

/// The last active health check of each backend that has had one.
fn health_checks(t: &mut Text, list: &[Labelled<'_>]) {
    let checks: Vec<(usize, u64, bool, u32)> = list
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            let h = b.backend.health.lock();
            h.last_check.map(|(ms, ok)| (i, ms, ok, h.failures))
        })
        .collect();
    let rows = |t: &mut Text, name: &str, value: &dyn Fn(u64, bool, u32) -> String| {
        for &(i, ms, ok, fails) in &checks {
            if let Some(b) = list.get(i) {
                t.sample(name, &b.labels(), value(ms, ok, fails));
            }
        }
    };
    t.family(
        "ferrule_backend_health_check_ok",
        "gauge",
        "1 when the last health check passed, 0 when it failed (absent before the first).",
    );
    rows(t, "ferrule_backend_health_check_ok", &|_, ok, _| {
        u8::from(ok).to_string()
    });
    t.family(
        "ferrule_backend_health_check_timestamp_seconds",
        "gauge",
        "When the last health check ran, in seconds since the Unix epoch.",
    );
    rows(
        t,
        "ferrule_backend_health_check_timestamp_seconds",
        &|ms, _, _| format!("{:.3}", seconds(ms)),
    );
    t.family(
        "ferrule_backend_health_check_consecutive_failures",
        "gauge",
        "Health checks failed in a row, up to now.",
    );
    rows(
        t,
        "ferrule_backend_health_check_consecutive_failures",
        &|_, _, fails| fails.to_string(),
    );
}

/// `ferrule_backend_response_seconds`: from the request going out to the response head.
fn latency(t: &mut Text, list: &[Labelled<'_>]) {
    const NAME: &str = "ferrule_backend_response_seconds";
    t.family(
        NAME,
        "histogram",
        "Backend response time: from the request going out to its response head coming back.",
    );
    let bounds: Vec<String> = LATENCY_BOUNDS_MS
        .iter()
        .map(|&ms| seconds(ms).to_string())
        .collect();
    for b in list {
        let (buckets, sum_ms) = b.backend.requests.latency.snapshot();
        let [backend, id, pool] = b.labels();
        let mut cumulative = 0u64;
        for (i, n) in buckets.iter().enumerate() {
            cumulative += n;
            let le = bounds.get(i).map_or("+Inf", String::as_str);
            t.sample(
                &format!("{NAME}_bucket"),
                &[backend, id, pool, ("le", le)],
                cumulative,
            );
        }
        t.sample(
            &format!("{NAME}_sum"),
            &[backend, id, pool],
            seconds(sum_ms),
        );
        t.sample(&format!("{NAME}_count"), &[backend, id, pool], cumulative);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
        let mut t = Text(String::new());
        t.sample("m", &[("a", "1"), ("b", "\"")], 2.5);
        assert_eq!(t.0, "m{a=\"1\",b=\"\\\"\"} 2.5\n");
    }
}
