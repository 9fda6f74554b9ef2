//! Reload reads the backend CA files again (a rotated CA takes effect; a file that no longer
//! loads refuses the reload and the running config goes on), and checks the keys against each
//! other again once the restart-only keys have their running values back.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;

use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::{json, Value};

use crate::common::tls::{admin_post, TestCa};
use crate::common::{admin_get_at, Client, IO_TIMEOUT};
use crate::common::{path_text, TempDir};

/// An HTTPS backend whose certificate can be swapped: each connection is served with the
/// config in force when it was accepted (a new config also has a new session cache, so nothing
/// made under the old certificate resumes). Answers `200 ok` to every request, keep-alive.
struct RotatingBackend {
    addr: SocketAddr,
    config: Arc<Mutex<Arc<ServerConfig>>>,
}

impl RotatingBackend {
    fn start(config: Arc<ServerConfig>) -> RotatingBackend {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let config = Arc::new(Mutex::new(config));
        let current = Arc::clone(&config);
        thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(sock) = sock else { break };
                let config = Arc::clone(&current.lock().expect("config"));
                thread::spawn(move || serve(sock, config));
            }
        });
        RotatingBackend { addr, config }
    }

    fn rotate(&self, config: Arc<ServerConfig>) {
        *self.config.lock().expect("config") = config;
    }
}

fn serve(sock: TcpStream, config: Arc<ServerConfig>) {
    let _ = sock.set_read_timeout(Some(IO_TIMEOUT));
    let Ok(conn) = ServerConnection::new(config) else {
        return;
    };
    let mut stream = BufReader::new(StreamOwned::new(conn, sock));
    loop {
        // a request head, then the answer (the tests send no bodies)
        let mut line = String::new();
        loop {
            line.clear();
            match stream.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => {}
            }
        }
        let s = stream.get_mut();
        if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .and_then(|()| s.flush())
            .is_err()
        {
            return;
        }
    }
}

/// ferrule started from `path`, as `ferrule path` would be.
fn start_from(path: &Path) -> ferrule::Handle {
    let config = ferrule::Config::load(path).expect("test config is valid");
    ferrule::start_file(&config, Some(path.to_path_buf())).expect("proxy starts")
}

fn write(path: &Path, config: &Value) {
    std::fs::write(path, config.to_string()).expect("write the config");
}

/// The status of `GET /` through the proxy, on a new connection.
fn status(proxy: SocketAddr) -> u16 {
    let mut c = Client::connect(proxy);
    c.send(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    c.response().status
}

/// One https backend at `addr` verified with `ca_file`; no pooled connections (each request
/// makes a handshake), no health checks, no passive marking.
fn https_config(addr: SocketAddr, ca_file: &Path) -> Value {
    json!({
        "port": 0,
        "admin_port": 0,
        "bind": "127.0.0.1",
        "workers": 1,
        "access_log": false,
        "health_check_method": "none",
        "max_fails": 0,
        "backend_keepalive": 0,
        "backends": [{"url": format!("https://{addr}"), "ca_file": path_text(ca_file)}],
    })
}

#[test]
fn a_rotated_backend_ca_takes_effect_on_reload() {
    let dir = TempDir::new("rotated-ca");
    let ca1 = TestCa::new("backend CA 1");
    let ca_file = dir.write("backend-ca.pem", ca1.pem());
    let backend = RotatingBackend::start(ca1.issue(&["127.0.0.1"]).server_config());
    let path = dir.join("config.json");
    write(&path, &https_config(backend.addr, &ca_file));
    let proxy = start_from(&path);
    assert_eq!(status(proxy.local_addr()), 200);

    // the backend moves to a certificate from CA 2, and the CA file to CA 2
    let ca2 = TestCa::new("backend CA 2");
    backend.rotate(ca2.issue(&["127.0.0.1"]).server_config());
    std::fs::write(&ca_file, ca2.pem()).expect("rotate the CA file");
    assert_eq!(status(proxy.local_addr()), 502, "CA 1 does not trust it");

    let (code, report) = admin_post(proxy.admin_addr(), "/reload");
    assert_eq!(code, 200, "{report}");
    for i in 0..3 {
        assert_eq!(
            status(proxy.local_addr()),
            200,
            "request {i} after the reload"
        );
    }
}

#[test]
fn a_ca_file_that_no_longer_loads_refuses_the_reload() {
    let dir = TempDir::new("garbage-ca");
    let ca = TestCa::new("backend CA");
    let ca_file = dir.write("backend-ca.pem", ca.pem());
    let backend = RotatingBackend::start(ca.issue(&["127.0.0.1"]).server_config());
    let path = dir.join("config.json");
    write(&path, &https_config(backend.addr, &ca_file));
    let proxy = start_from(&path);
    assert_eq!(status(proxy.local_addr()), 200);

    std::fs::write(&ca_file, "not a certificate\n").expect("spoil the CA file");
    let (code, answer) = admin_post(proxy.admin_addr(), "/reload");
    assert_eq!(code, 400, "{answer}");
    let error = answer["error"].as_str().expect("an error");
    assert!(
        error.contains("backends[0].ca_file") && error.contains("backend-ca.pem"),
        "{error}"
    );
    assert!(!error.contains('\n'), "one line: {error:?}");
    // the running config, and its CA, go on
    for i in 0..3 {
        assert_eq!(
            status(proxy.local_addr()),
            200,
            "request {i} after the refusal"
        );
    }
}

#[test]
fn reload_checks_the_keys_again_with_the_running_restart_only_values() {
    let dir = TempDir::new("reload-checks");
    let path = dir.join("config.json");
    let base = json!({
        "port": 0,
        "admin_port": 0,
        "bind": "127.0.0.1",
        "workers": 1,
        "access_log": false,
        "health_check_method": "none",
        "buffer_size": 8192,
        "max_request_head": 8192,
        "max_uri_length": 4096,
    });
    write(&path, &base);
    let proxy = start_from(&path);

    // buffer_size needs a restart (it stays 8192), and the head no longer fits in it
    let mut bigger = base.clone();
    bigger["buffer_size"] = json!(65536);
    bigger["max_request_head"] = json!(16384);
    write(&path, &bigger);
    let (code, answer) = admin_post(proxy.admin_addr(), "/reload");
    assert_eq!(code, 400, "{answer}");
    let error = answer["error"].as_str().expect("an error");
    assert!(
        error.contains("max_request_head: must not exceed buffer_size (8192)")
            && error.contains("buffer_size"),
        "{error}"
    );
    assert!(!error.contains('\n'), "one line: {error:?}");
    let running = admin_get_at(proxy.admin_addr(), "/config");
    assert_eq!(running["max_request_head"], 8192, "{running}");

    // what fits the running buffer applies, with buffer_size reported as needing a restart
    bigger["max_request_head"] = json!(8192);
    write(&path, &bigger);
    let (code, answer) = admin_post(proxy.admin_addr(), "/reload");
    assert_eq!(code, 200, "{answer}");
    assert!(answer["restart_required"][0]
        .as_str()
        .is_some_and(|r| r.starts_with("buffer_size")));
}
