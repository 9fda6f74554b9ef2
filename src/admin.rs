//! The admin API: a `tiny_http` server on its own thread (`admin_bind:admin_port`), JSON over
//! HTTP, reading the live pool and counters.
//!
//! Endpoints so far, read-only: `GET /backends` (each backend with its live counters) and
//! `GET /stats` (connections per worker, totals). They take the pool's read lock only long enough
//! to copy the counters out.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use serde_json::{json, Value};

use crate::balancer::{Backend, Balancer};
use crate::stats::WorkerStats;
use crate::tls::{CertPair, ServerTls};

/// What the admin API reads.
pub struct AdminState {
    pub balancer: Arc<Balancer>,
    pub workers: Vec<Arc<WorkerStats>>,
    /// TLS termination and the certificate files it reloads from (`None`: plain HTTP).
    pub tls: Option<(Arc<ServerTls>, Vec<CertPair>)>,
}

pub struct AdminHandle {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl AdminHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits for its thread.
    pub fn stop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for AdminHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the admin server on `addr`.
pub fn start(addr: SocketAddr, state: AdminState) -> io::Result<AdminHandle> {
    let server = tiny_http::Server::http(addr).map_err(|e| io::Error::other(e.to_string()))?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| io::Error::other("admin server has no IP address"))?;
    let server = Arc::new(server);
    let srv = Arc::clone(&server);
    let thread = std::thread::Builder::new()
        .name("ferrule-admin".into())
        .spawn(move || serve(&srv, &state))?;
    Ok(AdminHandle {
        server,
        thread: Some(thread),
        addr,
    })
}

fn serve(server: &tiny_http::Server, state: &AdminState) {
    for request in server.incoming_requests() {
        let (status, body) = route(request.method(), request.url(), state);
        let mut response =
            tiny_http::Response::from_string(body.to_string()).with_status_code(status);
        if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
        {
            response.add_header(h);
        }
        let _ = request.respond(response);
    }
}

fn route(method: &tiny_http::Method, url: &str, state: &AdminState) -> (u16, Value) {
    let path = url.split('?').next().unwrap_or(url);
    match (method, path.trim_end_matches('/')) {
        (tiny_http::Method::Get, "/backends") => (200, backends(state)),
        (tiny_http::Method::Get, "/stats") => (200, stats(state)),
        (tiny_http::Method::Post, "/reload-certs") => reload_certs(state),
        (_, "/backends" | "/stats" | "/reload-certs") => {
            (405, json!({"error": "method not allowed"}))
        }
        _ => (404, json!({"error": "not found"})),
    }
}

pub fn backend_json(b: &Backend) -> Value {
    json!({
        "id": b.id,
        "url": b.url,
        "weight": b.weight(),
        "healthy": b.is_healthy(),
        "enabled": b.is_enabled(),
        // requests in flight on this backend now; `active_connections` is the original's name
        "in_flight": b.active_requests(),
        "active_connections": b.active_requests(),
        "total_requests": b.total_requests(),
        "failures": b.failures.load(std::sync::atomic::Ordering::Relaxed),
    })
}

fn backends(state: &AdminState) -> Value {
    let pool = state.balancer.current();
    let list: Vec<Value> = pool.backends().iter().map(|b| backend_json(b)).collect();
    json!({ "strategy": pool.strategy().name(), "backends": list })
}

/// Re-reads every certificate and key file: new handshakes use them, open connections keep
/// theirs. A file that does not load is refused with its error, and the old certificates stay.
fn reload_certs(state: &AdminState) -> (u16, Value) {
    let Some((tls, pairs)) = &state.tls else {
        return (
            409,
            json!({"error": "ssl.enabled is false: there are no certificates to reload"}),
        );
    };
    match tls.reload(pairs) {
        Ok(warnings) => {
            log::info!("certificates reloaded ({} files)", pairs.len() * 2);
            for w in &warnings {
                log::warn!("{w}");
            }
            (
                200,
                json!({"reloaded": pairs.len(), "names": tls.names(), "warnings": warnings}),
            )
        }
        Err(e) => {
            log::warn!("certificate reload refused, the old certificates stay: {e}");
            (400, json!({"error": e.to_string()}))
        }
    }
}

fn stats(state: &AdminState) -> Value {
    let workers: Vec<Value> = state
        .workers
        .iter()
        .map(|w| json!({"open_connections": w.open(), "accepted": w.total_accepted()}))
        .collect();
    let open: u64 = state.workers.iter().map(|w| w.open()).sum();
    let accepted: u64 = state.workers.iter().map(|w| w.total_accepted()).sum();
    let pool = state.balancer.current();
    let requests: u64 = pool.backends().iter().map(|b| b.total_requests()).sum();
    let handshakes: u64 = state.workers.iter().map(|w| w.tls_handshakes()).sum();
    let tls_failures: u64 = state.workers.iter().map(|w| w.tls_failures()).sum();
    json!({
        "open_connections": open,
        "accepted_connections": accepted,
        "backend_requests": requests,
        "tls_handshakes": handshakes,
        "tls_handshake_failures": tls_failures,
        "workers": workers,
    })
}
