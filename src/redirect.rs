//! `ssl.redirect_http_port`: a plain-HTTP listener, on its own `tiny_http` thread (never a worker),
//! that answers every request with `308 Permanent Redirect` to the same target on https:
//! `https://<host>[:<TLS port>]<target>`, the port left out when it is 443. 308 (not 301) keeps
//! the method and body of a POST. A request without a usable `Host` gets 400.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

pub struct RedirectHandle {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl RedirectHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RedirectHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the redirecting listener on `addr`, pointing at TLS port `https_port`.
pub fn start(addr: SocketAddr, https_port: u16) -> io::Result<RedirectHandle> {
    let server = tiny_http::Server::http(addr).map_err(|e| io::Error::other(e.to_string()))?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| io::Error::other("redirect listener has no IP address"))?;
    let server = Arc::new(server);
    let srv = Arc::clone(&server);
    let thread = std::thread::Builder::new()
        .name("ferrule-redirect".into())
        .spawn(move || {
            for request in srv.incoming_requests() {
                let host = request
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Host"))
                    .map(|h| h.value.as_str().to_owned());
                let response = match host.as_deref().and_then(host_name) {
                    Some(name) => {
                        let location = location(name, https_port, request.url());
                        let mut r = tiny_http::Response::from_string(format!("{location}\n"))
                            .with_status_code(308);
                        if let Ok(h) = tiny_http::Header::from_bytes(&b"Location"[..], location) {
                            r.add_header(h);
                        }
                        r
                    }
                    None => tiny_http::Response::from_string("bad request: no usable Host\n")
                        .with_status_code(400),
                };
                let _ = request.respond(response);
            }
        })?;
    Ok(RedirectHandle {
        server,
        thread: Some(thread),
        addr,
    })
}

/// The host part of a `Host` value (its port dropped), if it is a plain name, IPv4 address or
/// bracketed IPv6 address: nothing that could steer the redirect elsewhere (`@`, `/`, spaces).
fn host_name(host: &str) -> Option<&str> {
    let host = host.trim();
    let name = if host.starts_with('[') {
        &host[..=host.find(']')?]
    } else {
        host.split(':').next()?
    };
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '[' | ']' | ':'));
    ok.then_some(name)
}

fn location(host: &str, https_port: u16, target: &str) -> String {
    let target = if target.starts_with('/') { target } else { "/" };
    if https_port == 443 {
        format!("https://{host}{target}")
    } else {
        format!("https://{host}:{https_port}{target}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(location("a.example", 443, "/x?y"), "https://a.example/x?y");
        assert_eq!(location("a.example", 8443, "/"), "https://a.example:8443/");
        assert_eq!(location("[::1]", 8443, "*"), "https://[::1]:8443/");
    }

    #[test]
    fn host_names() {
        assert_eq!(host_name("a.example:80"), Some("a.example"));
        assert_eq!(host_name("[::1]:80"), Some("[::1]"));
        assert_eq!(host_name("10.0.0.1"), Some("10.0.0.1"));
        assert_eq!(host_name("evil.com/x"), None);
        assert_eq!(host_name("a@b"), None);
        assert_eq!(host_name(""), None);
    }
}
