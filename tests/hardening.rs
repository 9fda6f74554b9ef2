//! Hardening: hostile input in both directions, limits, exhaustion, slow and idle floods, a
//! worker's death and garbage for the admin API, each proven over real sockets.
//!
//! - `requests`: what clients send that ferrule refuses (or normalises), with its status: fields,
//!   request lines, `Host` forms, absolute-form targets;
//! - `responses`: what backends send that ferrule does not relay (502) or normalises;
//! - `limits`: `max_body_size`, `max_header_count`, `max_connections_per_ip`;
//! - `floods`: the descriptor limit (no spinning; a backend connect without a descriptor is a
//!   503), slowloris and idle connections by the thousand beside a normal client, buffer memory
//!   given back as a load drops, a worker's panic (the process exits);
//! - `admin_garbage`: the admin port fed garbage keeps serving.
//!
//! Helpers every module uses are here; `tests/common/` has the shared ones.

use crate::common;

mod admin_garbage;
mod floods;
mod limits;
mod requests;
mod responses;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{head_end, serve, AcceptLoop, Proxy, Response};
use serde_json::{json, Value};

/// A proxy with no active health checks and no passive marking, so that a backend that answers
/// badly stays in the pool and every case sees the same backend.
pub fn quiet_proxy(backends: &[SocketAddr], extra: Value) -> Proxy {
    let mut cfg = json!({
        "health_check_frequency": "0s",
        "max_fails": 0,
        "retries": 0,
        "backend_timeout": "3s",
    });
    if let (Some(map), Value::Object(more)) = (cfg.as_object_mut(), extra) {
        map.extend(more);
    }
    Proxy::start(backends, cfg)
}

/// A backend that reads each request head (and nothing more), answers it with `answer` and
/// closes; every byte it received, per connection, is kept in `seen`.
pub struct RawBackend {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Serves until the backend is dropped.
    _accepting: AcceptLoop,
}

impl RawBackend {
    pub fn answering(answer: &[u8]) -> RawBackend {
        RawBackend::start(Some(answer.to_vec()))
    }

    /// One that never answers: it reads and keeps what it is sent until the peer closes.
    pub fn sink() -> RawBackend {
        RawBackend::start(None)
    }

    fn start(answer: Option<Vec<u8>>) -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let accepting = serve(listener, move |mut s| {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let index = {
                let mut all = record.lock().expect("lock");
                all.push(Vec::new());
                all.len() - 1
            };
            let mut buf = [0u8; 8192];
            loop {
                let n = match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let mut all = record.lock().expect("lock");
                let got = &mut all[index];
                got.extend_from_slice(&buf[..n]);
                if let (Some(a), true) = (&answer, head_end(got).is_some()) {
                    drop(all);
                    let _ = s.write_all(a);
                    let _ = s.shutdown(std::net::Shutdown::Write);
                    // read on until the proxy closes, so that our close is a FIN
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                    }
                    return;
                }
            }
        });
        RawBackend {
            addr: accepting.addr,
            seen,
            _accepting: accepting,
        }
    }

    /// Every byte received, all connections together.
    pub fn bytes(&self) -> Vec<u8> {
        self.seen.lock().expect("lock").concat()
    }
}

/// Sends `request` on a fresh connection; the response and whether the connection closed after.
pub fn exchange(proxy: &Proxy, request: &[u8]) -> (Response, bool) {
    let mut c = proxy.connect();
    c.send(request);
    let shown = String::from_utf8_lossy(request).into_owned();
    let r = c
        .try_response()
        .unwrap_or_else(|e| panic!("no response to {shown:?}: {e}"));
    let closed = c.is_closed();
    (r, closed)
}

/// A raw connection with short timeouts.
pub fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}
