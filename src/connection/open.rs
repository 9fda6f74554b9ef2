//! How a client connection opens, before its first request: the PROXY protocol header a trusted
//! balancer sends first (`proxy_protocol`), and the TLS handshake (driven by the reads of
//! `ReadHead`, within `tls_handshake_timeout`).

use std::io;

use super::{Connection, Phase};
use crate::access_log::Event;
use crate::context::Ctx;
use crate::http::errors;
use crate::stats::CloseReason;
use crate::stream::{Close, Step};
use crate::transport::{failure, Got, Outcome};

impl Connection {
    /// Reads the PROXY protocol header (v1 or v2) in front of the connection's first bytes, from
    /// the socket itself (before TLS): peeked until whole, then exactly its bytes consumed, so
    /// that what follows stays for TLS or HTTP. A peer that is not a trusted proxy, a header that
    /// does not parse or a connection that ends first is closed; the header's source address
    /// becomes the client's.
    pub(super) fn proxy_header(&mut self, ctx: &mut Ctx<'_>) -> Result<Step, Close> {
        use crate::proxy_protocol::{self, Parsed, MAX_HEADER_LEN};
        let refused = Err(Close(CloseReason::ProxyHeader));
        if !ctx.cfg.identity.trusted_proxies.contains(self.peer) {
            log::debug!(
                "PROXY protocol: {} is not a trusted proxy: closed",
                self.peer
            );
            return refused;
        }
        if !self.side.readable {
            return Ok(Step::Waiting);
        }
        let mut head = [0u8; MAX_HEADER_LEN];
        let n = match self.client.read_raw(&mut head, false) {
            Ok(0) => return refused,
            Ok(n) => n,
            Err(e) => match failure(e) {
                Outcome::Blocked => {
                    self.side.readable = false;
                    return Ok(Step::Waiting);
                }
                Outcome::Retry => return Ok(Step::Progress),
                Outcome::Failed(_) => return refused,
            },
        };
        match proxy_protocol::parse(head.get(..n).unwrap_or_default()) {
            Ok(Parsed::Incomplete) if n < head.len() && !self.side.hup => {
                // the rest comes with a later event (peeked bytes stay in the socket)
                self.side.readable = false;
                Ok(Step::Waiting)
            }
            Ok(Parsed::Incomplete) => refused,
            Ok(Parsed::Done(header)) => {
                if !self.take_exactly(&mut head, header.consumed) {
                    return refused;
                }
                if let Some(source) = header.source() {
                    self.peer = source.ip();
                }
                if self.client.is_handshaking() {
                    self.phase = Phase::Handshake;
                    self.deadline = ctx.now + ctx.cfg.timeouts.tls_handshake;
                } else {
                    self.phase = Phase::IDLE;
                }
                Ok(Step::Progress)
            }
            Err(e) => {
                log::debug!("PROXY protocol from {}: {e}: closed", self.peer);
                refused
            }
        }
    }

    /// Consumes exactly `len` bytes that were peeked (so they are there) from the socket.
    fn take_exactly(&mut self, scratch: &mut [u8], len: usize) -> bool {
        let mut taken = 0;
        // bounded: the bytes were peeked, so they are there
        for _ in 0..8 {
            let Some(room) = scratch.get_mut(taken..len) else {
                return false;
            };
            match self.client.read_raw(room, true) {
                Ok(0) | Err(_) => break,
                Ok(k) => taken += k,
            }
            if taken == len {
                break;
            }
        }
        taken == len
    }

    /// Handshake: reads (which drive it), notes when it is done, counts it, and answers a plain
    /// HTTP request sent to the TLS port. Plaintext that came with the handshake's last records
    /// waits in the inbox for `ReadHead`.
    pub(super) fn handshake(&mut self, ctx: &mut Ctx<'_>) -> Result<Step, Close> {
        if let (true, Some(inbox)) = (self.side.readable, self.codec.inbox()) {
            let buf = inbox.get_or_insert_with(|| ctx.bufs.get());
            let got = self.client.read_into(buf);
            ctx.bufs.put_if_empty(inbox);
            self.side.after_read(&got);
            match got {
                Got::Bytes { .. } | Got::Full | Got::Blocked => {}
                Got::Eof => return Err(self.handshake_failed(ctx, None)),
                Got::Failed(e) => return Err(self.handshake_failed(ctx, Some(e))),
            }
        }
        if self.client.is_handshaking() {
            // still readable: the handshake has more to read now
            return Ok(Step::from(self.side.readable));
        }
        ctx.stats.tls_handshake();
        self.phase = Phase::IDLE;
        self.deadline = ctx.now + ctx.cfg.timeouts.client_header;
        if self.client.alpn() == Some(b"h2") {
            // ALPN chose HTTP/2: what came with the handshake is the preface
            let input = self.codec.inbox().and_then(Option::take);
            self.become_h2(ctx, input);
        }
        Ok(Step::Progress)
    }

    /// The handshake failed (`error`: how the connection failed; none: the client left): count
    /// and log it; a client that spoke plain HTTP to the TLS port is told so, in plain HTTP.
    fn handshake_failed(&mut self, ctx: &mut Ctx<'_>, error: Option<io::Error>) -> Close {
        ctx.stats.tls_failed();
        self.log_event(ctx, Event::TlsHandshakeFailed);
        if error.is_some() && self.client.spoke_plain_http() {
            // as nginx does: say so, in plain HTTP, and close
            let mut answer = Vec::new();
            errors::plain_http_to_tls_port(ctx.date, &mut answer);
            self.client.write_raw(&answer);
        }
        Close(CloseReason::TlsHandshake)
    }
}
