//! One health probe: a non-blocking connect to a backend and, for the `http` method, one
//! `GET health_check_path` over the backend's own transport (plain, or rustls with the backend's
//! `ClientTls`, so a probe verifies certificates exactly as traffic does), up to the status line.
//!
//! A [`Probe`] is a small state machine driven by the health thread's poll (`mod.rs` owns the
//! poll, the schedule and the deadlines; this file never looks at the clock): `Connecting` →
//! (`tcp`: done) → `Sending` → `Receiving` → done. Each [`Probe::drive`] runs until the socket
//! would block or the probe has its outcome, so edge-triggered readiness never strands it.
//! Reading is bounded by the buffer it was given ([`READ_LIMIT`]): the status line is all a probe
//! wants, and a peer that sends more than that without one is "not HTTP".
//!
//! Failure reasons are plain words, the same ones the log and the admin API show:
//! `connection refused`, `connection reset`, `connection closed`, `status 503`, `not HTTP`, and
//! the TLS reasons of `tls::handshake_failure_reason`. (`timed out` is the scheduler's.)

use std::io;
use std::sync::Arc;

use mio::net::TcpStream;

use crate::balancer::Backend;
use crate::buffer::Buf;
use crate::config::StatusSet;
use crate::tls::handshake_failure_reason;
use crate::transport::{Got, Io, Transport};

/// Bytes of a response a probe reads at most (the size of its buffer): a status line and then
/// some. Past it without a complete status line, the answer is "not HTTP".
pub const READ_LIMIT: usize = 1024;

/// What a probe found: `Ok` alive, `Err(reason)` dead.
pub type Outcome = Result<(), String>;

/// The request of an `http` probe of `backend`: `GET path` with the backend's own authority as
/// `Host`, ferrule's probe `User-Agent`, and `Connection: close` (a probe uses its connection
/// once).
pub fn request(path: &str, backend: &Backend) -> Arc<[u8]> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ferrule-health\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n",
        backend.authority
    )
    .into_bytes()
    .into()
}

/// What a probe does once connected.
pub enum Kind {
    /// Nothing: the connect was the check.
    Tcp,
    /// Send `request` (see [`request`]) and judge the status line against `expect`.
    Http {
        request: Arc<[u8]>,
        expect: Arc<StatusSet>,
        buf: Buf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Sending,
    Receiving,
}

/// One probe in flight.
pub struct Probe {
    transport: Transport,
    kind: Kind,
    phase: Phase,
    /// Request bytes already handed to the transport.
    sent: usize,
}

impl Probe {
    /// Starts a non-blocking connect to `backend` (over TLS with its `ClientTls` for an `http`
    /// probe of an `https://` backend). An error is the probe's failure reason.
    pub fn connect(backend: &Backend, kind: Kind) -> Result<Probe, String> {
        let sock = TcpStream::connect(backend.addr).map_err(|e| io_reason(&e))?;
        let _ = sock.set_nodelay(true);
        let transport = match (&kind, &backend.tls) {
            (Kind::Http { .. }, Some(tls)) => {
                Transport::client(sock, &tls.config, tls.name.clone())
                    .map_err(|e| handshake_failure_reason(&e))?
            }
            _ => Transport::Plain(sock),
        };
        Ok(Probe {
            transport,
            kind,
            phase: Phase::Connecting,
            sent: 0,
        })
    }

    /// The connection, for the poll registration.
    pub fn source(&mut self) -> &mut Transport {
        &mut self.transport
    }

    /// The probe's buffer back, for the pool (an `http` probe's, once it is over).
    pub fn into_buf(self) -> Option<Buf> {
        match self.kind {
            Kind::Http { buf, .. } => Some(buf),
            Kind::Tcp => None,
        }
    }

    /// Goes as far as the socket allows: `None` while the probe waits for the socket, its
    /// outcome once it has one.
    pub fn drive(&mut self) -> Option<Outcome> {
        if self.phase == Phase::Connecting {
            match self.transport.connect_state() {
                Ok(false) => return None,
                Ok(true) => {}
                Err(e) => return Some(Err(io_reason(&e))),
            }
            if matches!(self.kind, Kind::Tcp) {
                return Some(Ok(()));
            }
            self.phase = Phase::Sending;
        }
        let Kind::Http {
            request,
            expect,
            buf,
        } = &mut self.kind
        else {
            return Some(Ok(()));
        };
        if self.phase == Phase::Sending {
            // bounded: every round hands over at least one byte, or stops
            for _ in 0..=request.len() {
                let Some(rest) = request.get(self.sent..).filter(|r| !r.is_empty()) else {
                    break;
                };
                match self.transport.write(rest) {
                    Io::Done(n) => self.sent += n,
                    Io::Blocked => return None,
                    Io::Eof => return Some(Err(closed(&self.transport))),
                    Io::Failed(e) => return Some(Err(failed(&self.transport, &e))),
                }
            }
            if self.sent < request.len() {
                return None;
            }
            self.phase = Phase::Receiving;
        }
        // TLS: handshake flights and the encrypted request, as the socket takes them
        if self.transport.wants_flush() {
            match self.transport.flush() {
                Io::Failed(e) => return Some(Err(failed(&self.transport, &e))),
                Io::Eof => return Some(Err(closed(&self.transport))),
                Io::Done(_) | Io::Blocked => {}
            }
        }
        // bounded: every round but the last adds at least one byte to a buffer of READ_LIMIT
        for _ in 0..=buf.capacity() {
            match self.transport.read_into(buf) {
                Got::Bytes { .. } => match parse_status_line(buf.bytes()) {
                    StatusLine::Status(code) => return Some(judge(code, expect)),
                    StatusLine::NotHttp => return Some(Err("not HTTP".into())),
                    StatusLine::Partial if buf.is_full() => return Some(Err("not HTTP".into())),
                    StatusLine::Partial => {}
                },
                Got::Full => return Some(Err("not HTTP".into())),
                Got::Blocked => return None,
                Got::Eof => return Some(Err(closed(&self.transport))),
                Got::Failed(e) => return Some(Err(failed(&self.transport, &e))),
            }
        }
        None
    }

    /// Ends the probe politely: a TLS `close_notify` (best effort) before the socket closes.
    pub fn close(&mut self) {
        if self.transport.is_tls() && self.phase != Phase::Connecting {
            self.transport.shutdown_write();
        }
    }
}

/// `Ok` when `code` is one of the expected statuses, else `status CODE`.
pub fn judge(code: u16, expect: &StatusSet) -> Outcome {
    if expect.contains(code) {
        Ok(())
    } else {
        Err(format!("status {code}"))
    }
}

/// What the first bytes of a response say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusLine {
    /// Not a complete status line yet.
    Partial,
    /// A well-formed `HTTP/1.x NNN reason` line (what follows it does not matter).
    Status(u16),
    /// Not an HTTP/1.x response.
    NotHttp,
}

/// Parses the status line at the start of `bytes` with httparse. Only the status line counts:
/// a probe judges by the status, so the fields after it (even malformed, or too many to parse)
/// are not read.
pub fn parse_status_line(bytes: &[u8]) -> StatusLine {
    let mut fields = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut fields);
    let parsed = response.parse(bytes);
    // httparse fills version, code and reason as it goes: a reason means the line was complete
    match (response.code, response.reason, parsed) {
        (Some(code), Some(_), _) => StatusLine::Status(code),
        (_, _, Ok(httparse::Status::Partial)) => StatusLine::Partial,
        _ => StatusLine::NotHttp,
    }
}

/// The peer closed the connection before a status line.
fn closed(transport: &Transport) -> String {
    if transport.is_handshaking() {
        "connection closed during the TLS handshake".into()
    } else {
        "connection closed".into()
    }
}

/// The connection failed: its TLS reason, or the socket's.
fn failed(transport: &Transport, error: &io::Error) -> String {
    match transport.tls_error() {
        Some(e) => handshake_failure_reason(e),
        None => io_reason(error),
    }
}

/// A socket error in plain words: `connection refused`, `host unreachable`, … (the OS's own
/// message, without its error number, when there is no better one).
pub fn io_reason(e: &io::Error) -> String {
    use io::ErrorKind as K;
    let known = match e.kind() {
        K::ConnectionRefused => "connection refused",
        K::ConnectionReset => "connection reset",
        K::ConnectionAborted => "connection aborted",
        K::TimedOut => "timed out",
        K::HostUnreachable => "host unreachable",
        K::NetworkUnreachable => "network unreachable",
        K::AddrNotAvailable => "address not available",
        K::BrokenPipe | K::UnexpectedEof => "connection closed",
        _ => "",
    };
    if !known.is_empty() {
        return known.into();
    }
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "socket error".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_complete_status_line_is_enough() {
        assert_eq!(
            parse_status_line(b"HTTP/1.1 200 OK\r\n"),
            StatusLine::Status(200)
        );
        assert_eq!(
            parse_status_line(b"HTTP/1.0 503 Service Unavailable\r\nContent-Le"),
            StatusLine::Status(503)
        );
        let full = b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n";
        assert_eq!(parse_status_line(full), StatusLine::Status(204));
        // no reason phrase is still a well-formed line
        assert_eq!(
            parse_status_line(b"HTTP/1.1 302\r\nLocation: /\r\n"),
            StatusLine::Status(302)
        );
    }

    #[test]
    fn fields_after_the_status_line_do_not_matter() {
        let many: Vec<u8> = std::iter::once(&b"HTTP/1.1 200 OK\r\n"[..])
            .chain(std::iter::repeat_n(&b"X-A: b\r\n"[..], 40))
            .flatten()
            .copied()
            .collect();
        assert_eq!(parse_status_line(&many), StatusLine::Status(200));
        assert_eq!(
            parse_status_line(b"HTTP/1.1 200 OK\r\nbad field\r\n\r\n"),
            StatusLine::Status(200)
        );
    }

    #[test]
    fn a_line_cut_short_waits_for_more() {
        for cut in [
            &b""[..],
            b"H",
            b"HTTP/1.",
            b"HTTP/1.1 ",
            b"HTTP/1.1 20",
            b"HTTP/1.1 200",
            b"HTTP/1.1 200 O",
            b"HTTP/1.1 200 OK\r",
        ] {
            assert_eq!(parse_status_line(cut), StatusLine::Partial, "{cut:?}");
        }
    }

    #[test]
    fn anything_else_is_not_http() {
        for junk in [
            &b"SSH-2.0-OpenSSH_9.6\r\n"[..],
            b"\x16\x03\x01\x00\xa5\x01\x00",
            b"HTTP/2 200\r\n",
            b"HTTP/1.1 2000 OK\r\n",
            b"HTTP/1.1 abc OK\r\n",
            b"<html>hello</html>",
            b"GET / HTTP/1.1\r\n",
        ] {
            assert_eq!(parse_status_line(junk), StatusLine::NotHttp, "{junk:?}");
        }
    }

    #[test]
    fn the_status_is_judged_against_the_expected_set() {
        let default = StatusSet::default();
        assert_eq!(judge(200, &default), Ok(()));
        assert_eq!(judge(301, &default), Ok(()));
        assert_eq!(judge(503, &default), Err("status 503".into()));
        let only_200 = StatusSet::try_from("200".to_owned()).expect("a status list");
        assert_eq!(judge(200, &only_200), Ok(()));
        assert_eq!(judge(204, &only_200), Err("status 204".into()));
    }

    #[test]
    fn socket_errors_read_as_plain_words() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(io_reason(&refused), "connection refused");
        let os = io::Error::from_raw_os_error(libc::EHOSTUNREACH);
        assert_eq!(io_reason(&os), "host unreachable");
        let other = io::Error::other("Something odd");
        assert_eq!(io_reason(&other), "something odd");
    }

    #[test]
    fn the_request_names_the_path_the_host_and_the_agent() {
        let cfg = crate::balancer::tests::cfg(8083, 1);
        let backend = Backend::new(0, &cfg, None, 0, &Default::default());
        let text = String::from_utf8(request("/ready", &backend).to_vec()).expect("ascii");
        assert!(text.starts_with("GET /ready HTTP/1.1\r\n"), "{text}");
        assert!(text.contains("\r\nHost: 127.0.0.1:8083\r\n"), "{text}");
        assert!(
            text.contains("\r\nUser-Agent: ferrule-health\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }
}
