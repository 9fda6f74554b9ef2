//! `ssl.redirect_http_port`: a plain-HTTP listener, on the small server of its own thread
//! (`httpd`, never a worker), that answers every request with `308 Permanent Redirect` to the same
//! target on https: `https://<host>[:<TLS port>]<target>`, the port left out when it is 443. 308
//! (not 301) keeps the method and body of a POST, and no body is ever read. A request without a
//! usable `Host` gets 400.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::httpd::message::{Head, Response};
use crate::httpd::{App, Server};

pub struct RedirectHandle {
    server: Server,
}

impl RedirectHandle {
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn stop(&mut self) {
        self.server.stop();
    }
}

struct Redirect {
    https_port: u16,
}

impl App for Redirect {
    /// Every answer is decided by the head alone: the body is never read.
    fn screen(&self, head: &Head) -> Option<Response> {
        Some(match head.header("host").and_then(host_name) {
            Some(name) => {
                let location = location(name, self.https_port, &head.target);
                Response::text(308, "text/plain", format!("{location}\n"))
                    .with_header("Location", location)
            }
            None => Response::text(400, "text/plain", "bad request: no usable Host\n".into()),
        })
    }

    fn handle(&self, head: &Head, _body: &[u8]) -> Response {
        self.screen(head)
            .unwrap_or_else(|| Response::text(400, "text/plain", "bad request\n".into()))
    }

    fn tick(&self) {}
}

/// Starts the redirecting listener on `addr`, pointing at TLS port `https_port`.
pub fn start(addr: SocketAddr, https_port: u16) -> io::Result<RedirectHandle> {
    start_on(crate::httpd::bind(addr)?, https_port)
}

/// The same on a bound listener (this process's, or one handed over).
pub fn start_on(listener: std::net::TcpListener, https_port: u16) -> io::Result<RedirectHandle> {
    let server = Server::on_listener(
        listener,
        Arc::new(Redirect { https_port }),
        "ferrule-redirect",
    )?;
    Ok(RedirectHandle { server })
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
