//! The exchange: what a session does to the bytes between a client and a backend, in memory.
//!
//! `Session` (`session.rs`) is bound to mio sockets, the worker's connection pool and the
//! balancer, so this target does not run it: it drives the same layers the same way, with a model
//! of the session's byte handling (its ReadHead, frame_request, process_response, frame_response,
//! fail and finish_exchange steps, copied in shape): client bytes arrive in pieces into a pooled
//! `Buf`, heads are found incrementally, checked, rewritten and put back in place
//! (`Buf::replace_front`, `replace_at`), a missing `Host` is written in as `set_host` does, request
//! and response bodies are framed with `Body` (de-chunked for HTTP/1.0 clients with
//! `Buf::remove`), interim responses are relayed or dropped, refusals become canned responses, and
//! keep-alive and pipelining carry on to the next request. Retries, timers, TLS and the tunnel
//! after a 101 are not modelled.
//!
//! Input: `opts`, buffer size, client piece size, backend piece size, a 16-bit client length,
//! then the client's bytes and the backend's bytes.
//!
//! Invariants: no panic; buffers keep their capacity (and hold at most it plus the headroom a
//! rewritten head may use) and at most two are taken; the model
//! terminates; every request read is answered or the connection closed; and, read by independent
//! parsers (httparse and a lenient chunked decoder): the backend receives exactly the requests
//! ferrule forwarded, each whole, with nothing after them that it could take for another request;
//! the client receives one response per request answered, each within its framing, nothing more.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use ferrule::buffer::{Buf, BufPool};
use ferrule::client_ip::TrustedProxies;
use ferrule::http::errors::{self, Status};
use ferrule::http::request::{self, ClientInfo, KeySource, Limits, Reject};
use ferrule::http::response::{self, Relay};
use ferrule::http::{Body, Framing, Method, Step};
use libfuzzer_sys::fuzz_target;

#[path = "../common/wire.rs"]
mod wire;
use wire::{body_end, forwarded_framing, framing_of};

/// The `Date` every response gets (the worker's clock in the proxy).
const DATE: &[u8; 29] = b"Sun, 06 Nov 1994 08:49:37 GMT";

/// A source of bytes handed over in pieces.
struct Feed<'a> {
    bytes: &'a [u8],
    pos: usize,
    piece: usize,
}

impl Feed<'_> {
    fn eof(&self) -> bool {
        self.pos == self.bytes.len()
    }

    /// Moves the next piece into `buf` (what fits). Returns the bytes moved.
    fn give(&mut self, buf: &mut Buf) -> usize {
        let end = (self.pos + self.piece).min(self.bytes.len());
        let n = buf.push(&self.bytes[self.pos..end]);
        self.pos += n;
        n
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Idle between requests when the client input ran out.
    Idle,
    /// The connection was closed.
    Closed,
}

struct Model<'a> {
    pool: BufPool,
    cap: usize,
    limits: Limits,
    client: ClientInfo<'a>,
    c: Feed<'a>,
    b: Feed<'a>,
    req: Option<Buf>,
    resp: Option<Buf>,
    scratch: Vec<u8>,
    /// What went to the backend, and to the client.
    to_backend: Vec<u8>,
    to_client: Vec<u8>,
    /// Methods of the requests forwarded, and of those answered (in order).
    forwarded: Vec<Method>,
    answered: Vec<Method>,
}

impl Model<'_> {
    fn check_bounds(&self) {
        for b in [&self.req, &self.resp].into_iter().flatten() {
            // a rewritten head larger than the one it replaces may use the headroom too
            assert!(b.capacity() == self.cap, "capacity {}", b.capacity());
            assert!(
                b.len() <= b.capacity() + ferrule::buffer::HEADROOM,
                "{} bytes held",
                b.len()
            );
        }
        assert!(self.pool.in_use() <= 2, "{} buffers", self.pool.in_use());
    }

    fn give_back(&mut self) {
        for b in [self.req.take(), self.resp.take()].into_iter().flatten() {
            self.pool.put(b);
        }
    }

    /// `Session::fail`: a canned answer, queued behind what is already framed for the client.
    fn answer(&mut self, status: Status, method: Method, keep: bool) -> bool {
        let added = ferrule::http::Added {
            date: DATE,
            hsts: None,
        };
        errors::canned(
            status,
            keep,
            method == Method::Head,
            &added,
            &mut self.scratch,
        );
        self.to_client.extend_from_slice(&self.scratch);
        self.answered.push(method);
        keep
    }

    /// `Session::reject`: a refused head; the connection closes after the answer.
    fn reject(&mut self, status: Status) -> End {
        let head = self
            .req
            .as_ref()
            .is_some_and(|b| request::is_head_request(b.bytes()));
        self.answer(status, if head { Method::Head } else { Method::Get }, false);
        End::Closed
    }

    /// Serves requests until the client input runs out or the connection closes.
    fn run(&mut self) -> End {
        // bounded: every request consumes at least the bytes of its head
        for _ in 0..self.c.bytes.len() + 1 {
            self.check_bounds();
            match self.read_head() {
                Ok(Some(end)) => {
                    if let Some(end) = self.start_request(end) {
                        return end;
                    }
                }
                Ok(None) => return End::Idle,
                Err(end) => return end,
            }
        }
        panic!("the model did not terminate");
    }

    /// ReadHead: returns the head's end once a whole head is in `req`.
    fn read_head(&mut self) -> Result<Option<usize>, End> {
        let mut scan = 0;
        let mut line_seen = false;
        loop {
            if let Some(buf) = self.req.as_ref().filter(|b| !b.is_empty()) {
                let bytes = buf.bytes();
                match request::find_head_end(bytes, scan) {
                    Err(Reject(status)) => return Err(self.reject(status)),
                    Ok(Some(end)) => return Ok(Some(end)),
                    Ok(None) => {
                        line_seen |= bytes[scan..].contains(&b'\n');
                        scan = bytes.len();
                        if let Err(Reject(status)) =
                            request::check_partial(bytes.len(), line_seen, &self.limits)
                        {
                            return Err(self.reject(status));
                        }
                        assert!(!buf.is_full(), "a full buffer holds no head and no refusal");
                    }
                }
            }
            if self.c.eof() {
                // a partial head never completes: closed without an answer; none is owed
                return if self.req.as_ref().is_none_or(Buf::is_empty) {
                    Ok(None)
                } else {
                    Err(End::Closed)
                };
            }
            let buf = self.req.get_or_insert_with(|| self.pool.get());
            let n = self.c.give(buf);
            assert!(n > 0, "no room for the head");
        }
    }

    /// A whole head is in `req[..end]`: rewrite it, forward the request, relay the response.
    /// Returns how the connection ended, or `None` to go on with the next request.
    fn start_request(&mut self, end: usize) -> Option<End> {
        let buf = self.req.as_mut()?;
        let (head, len) = match request::rewrite(
            &buf.bytes()[..end],
            &self.limits,
            &self.client,
            &mut self.scratch,
        ) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => {
                // only empty lines: dropped
                buf.consume(end);
                if buf.is_empty() {
                    let b = self.req.take()?;
                    self.pool.put(b);
                }
                return None;
            }
            Err(Reject(status)) => return Some(self.reject(status)),
        };
        assert_eq!(len, end);
        if !buf.replace_front(len, &self.scratch) {
            return Some(self.reject(Status::HeaderFieldsTooLarge));
        }
        let mut req_ready = self.scratch.len();
        if head.needs_host {
            // `Session::set_host`: before the final empty line of the rewritten head
            let line = b"Host: backend.example:8080\r\n";
            let at = req_ready - 2;
            if !buf.replace_at(at, 0, line) {
                return Some(self.reject(Status::HeaderFieldsTooLarge));
            }
            req_ready += line.len();
        }
        let mut req_body = Body::new(head.framing);
        // forward the head and whatever of the body is here (`frame_request`)
        let mut sent_head = false;
        let mut resp_ready = 0;
        let mut resp_scan = 0;
        let mut committed = false;
        let mut resp_done = false;
        let mut keep_client = false;
        let mut relay = Relay::Verbatim;
        let mut resp_body = Body::default();
        let mut interims = 0;
        // bounded: each round moves a piece of input, or ends
        for _ in 0..(self.c.bytes.len() + self.b.bytes.len()) * 2 + 8 {
            self.check_bounds();
            // client → backend
            if let Some(buf) = self.req.as_mut() {
                let bytes = buf.bytes();
                while req_ready < bytes.len() {
                    match req_body.step(&bytes[req_ready..]) {
                        Ok(Step::Payload(n) | Step::Framing(n)) => req_ready += n,
                        Ok(Step::Blocked | Step::Done) => break,
                        Err(_) => {
                            // `body_error`: 400 if nothing went to the client yet, else close
                            if committed {
                                return Some(End::Closed);
                            }
                            if let Some(b) = self.req.take() {
                                self.pool.put(b);
                            }
                            self.answer(Status::BadRequest, head.method, false);
                            return Some(End::Closed);
                        }
                    }
                }
                if !sent_head || req_ready > 0 {
                    if !sent_head {
                        self.forwarded.push(head.method);
                        sent_head = true;
                    }
                    // sent at once (the model has no replay: nothing is sent twice)
                    self.to_backend.extend_from_slice(&buf.bytes()[..req_ready]);
                    buf.consume(req_ready);
                    req_ready = 0;
                }
                if buf.is_empty() {
                    if let Some(b) = self.req.take() {
                        self.pool.put(b);
                    }
                }
            }
            if !req_body.is_done() && !self.c.eof() {
                let buf = self.req.get_or_insert_with(|| self.pool.get());
                self.c.give(buf);
            }

            // backend → client
            if !resp_done {
                if self.b.eof() {
                    // `backend_closed`
                    if !committed {
                        self.give_back_resp(resp_ready);
                        self.answer(Status::BadGateway, head.method, false);
                        return Some(End::Closed);
                    }
                    if resp_body.until_close() {
                        resp_body.finish_at_close();
                        resp_done = true;
                        keep_client = false;
                    } else {
                        // cut short: the client sees the connection end
                        self.give_back_resp(resp_ready);
                        return Some(End::Closed);
                    }
                } else {
                    let buf = self.resp.get_or_insert_with(|| self.pool.get());
                    self.b.give(buf);
                }
            }
            // `process_response`
            let mut round = 0;
            while !committed {
                round += 1;
                if round > 17 || interims > 16 {
                    self.give_back_resp(resp_ready);
                    self.answer(Status::BadGateway, head.method, false);
                    return Some(End::Closed);
                }
                let Some(buf) = self.resp.as_mut() else {
                    break;
                };
                let unframed = &buf.bytes()[resp_ready..];
                let end = match request::find_head_end(unframed, resp_scan) {
                    Ok(Some(end)) => end,
                    Ok(None) if buf.is_full() => {
                        self.give_back_resp(resp_ready);
                        self.answer(Status::BadGateway, head.method, false);
                        return Some(End::Closed);
                    }
                    Ok(None) => {
                        resp_scan = unframed.len();
                        break;
                    }
                    Err(_) => {
                        self.give_back_resp(resp_ready);
                        self.answer(Status::BadGateway, head.method, false);
                        return Some(End::Closed);
                    }
                };
                let ex = response::Answering {
                    method: head.method,
                    http10: head.http10,
                    keep_alive: head.keep_alive && req_body.is_done(),
                    upgrade: head.upgrade,
                    set_cookie: None,
                    max_headers: ferrule::http::DEFAULT_MAX_HEADERS,
                    added: ferrule::http::Added {
                        date: DATE,
                        hsts: None,
                    },
                };
                let Ok((r, len)) = response::rewrite(&unframed[..end], &ex, &mut self.scratch)
                else {
                    self.give_back_resp(resp_ready);
                    self.answer(Status::BadGateway, head.method, false);
                    return Some(End::Closed);
                };
                resp_scan = 0;
                if r.interim {
                    interims += 1;
                }
                if r.interim && head.http10 {
                    buf.remove(resp_ready, len);
                    continue;
                }
                if !buf.replace_at(resp_ready, len, &self.scratch) {
                    self.give_back_resp(resp_ready);
                    self.answer(Status::BadGateway, head.method, false);
                    return Some(End::Closed);
                }
                resp_ready += self.scratch.len();
                if r.interim {
                    continue;
                }
                if r.switching {
                    // the tunnel is not modelled: the head goes out, then the connection ends
                    self.flush_client(&mut resp_ready);
                    self.answered.push(head.method);
                    return Some(End::Closed);
                }
                committed = true;
                self.answered.push(head.method);
                keep_client = r.keep_client;
                relay = r.relay;
                resp_body = Body::new(r.framing);
            }
            // `frame_response`
            if committed && !resp_done {
                if let Some(buf) = self.resp.as_mut() {
                    let dechunk = relay == Relay::Dechunk;
                    let bytes = buf.bytes_mut();
                    let len = bytes.len();
                    let (mut r, mut w) = (resp_ready, resp_ready);
                    while r < len {
                        match resp_body.step(&bytes[r..]) {
                            Ok(Step::Payload(n)) => {
                                if dechunk && w != r {
                                    bytes.copy_within(r..r + n, w);
                                }
                                r += n;
                                w += n;
                            }
                            Ok(Step::Framing(n)) => {
                                r += n;
                                if !dechunk {
                                    w += n;
                                }
                            }
                            Ok(Step::Blocked | Step::Done) => break,
                            Err(_) => {
                                // what is framed goes out, then the connection closes
                                self.flush_client(&mut w.min(resp_ready));
                                return Some(End::Closed);
                            }
                        }
                    }
                    if w < r {
                        buf.remove(w, r - w);
                    }
                    resp_ready = w;
                    if resp_body.is_done() {
                        resp_done = true;
                        let extra = buf.len() - resp_ready;
                        buf.truncate_back(extra);
                    }
                }
            }
            self.flush_client(&mut resp_ready);
            if resp_done && resp_ready == 0 {
                // `finish_exchange`
                if let Some(b) = self.resp.take() {
                    self.pool.put(b);
                }
                if !req_body.is_done() || !keep_client {
                    return Some(End::Closed);
                }
                return None;
            }
        }
        // out of input with the exchange still open: a timeout ends it
        if !committed {
            self.give_back_resp(resp_ready);
            self.answer(Status::GatewayTimeout, head.method, false);
        }
        Some(End::Closed)
    }

    /// Writes what is framed for the client.
    fn flush_client(&mut self, ready: &mut usize) {
        if let Some(buf) = self.resp.as_mut() {
            self.to_client.extend_from_slice(&buf.bytes()[..*ready]);
            buf.consume(*ready);
            *ready = 0;
            if buf.is_empty() {
                if let Some(b) = self.resp.take() {
                    self.pool.put(b);
                }
            }
        }
    }

    /// `fail`: interim responses already framed stay; the rest of what the backend sent goes.
    fn give_back_resp(&mut self, ready: usize) {
        let mut ready = ready;
        self.flush_client(&mut ready);
        if let Some(b) = self.resp.take() {
            self.pool.put(b);
        }
    }
}

/// The backend's view: the requests in `stream`. Every one is whole but maybe the last (the
/// client stopped sending), and nothing follows them.
fn backend_reads(stream: &[u8], forwarded: &[Method]) {
    let mut pos = 0;
    for (i, &method) in forwarded.iter().enumerate() {
        let last = i + 1 == forwarded.len();
        let mut fields = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut fields);
        let n = match req.parse(&stream[pos..]) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!(
                "request {i}: the backend cannot read the head: {other:?}: {:?}",
                String::from_utf8_lossy(&stream[pos..])
            ),
        };
        assert_eq!(
            Method::from_bytes(req.method.unwrap_or("").as_bytes()),
            method
        );
        let framing = forwarded_framing(&req, i);
        match body_end(stream, pos + n, framing) {
            Some(end) => pos = end,
            None => {
                assert!(last, "request {i} cut short, yet another request follows");
                return;
            }
        }
    }
    assert_eq!(
        pos,
        stream.len(),
        "the backend sees more than the requests forwarded: {:?}",
        String::from_utf8_lossy(&stream[pos..])
    );
}

/// The client's view: one final response per request answered (after any interim ones), each
/// within its framing; the last may be cut short (the connection closed); nothing follows.
fn client_reads(stream: &[u8], answered: &[Method], http10: bool) {
    let mut pos = 0;
    for (i, &method) in answered.iter().enumerate() {
        let last = i + 1 == answered.len();
        let (n, framing, status) = loop {
            let mut fields = [httparse::EMPTY_HEADER; 128];
            let mut resp = httparse::Response::new(&mut fields);
            let n = match resp.parse(&stream[pos..]) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) if last && pos == stream.len() => return,
                other => panic!(
                    "response {i}: the client cannot read the head: {other:?}: {:?}",
                    String::from_utf8_lossy(&stream[pos..])
                ),
            };
            let status = resp.code.unwrap_or(0);
            if (100..200).contains(&status) && status != 101 {
                assert!(!http10, "an interim response to an HTTP/1.0 client");
                pos += n;
                continue;
            }
            let bodiless =
                method == Method::Head || status == 204 || status == 304 || status == 101;
            let framing = if bodiless {
                Framing::None
            } else {
                framing_of(resp.headers, false)
            };
            if http10 {
                assert!(
                    !resp
                        .headers
                        .iter()
                        .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding")),
                    "a transfer coding to an HTTP/1.0 client"
                );
            }
            break (n, framing, status);
        };
        if status == 101 {
            return;
        }
        match body_end(stream, pos + n, framing) {
            Some(end) => pos = end,
            None => {
                assert!(last, "response {i} cut short, yet another follows");
                return;
            }
        }
        if framing == Framing::UntilClose {
            assert!(last, "a close-delimited response, yet another follows");
        }
    }
    assert_eq!(
        pos,
        stream.len(),
        "the client gets more than the responses framed: {:?}",
        String::from_utf8_lossy(&stream[pos..])
    );
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let (opts, size, c_piece, b_piece) = (data[0], data[1], data[2], data[3]);
    let c_len = usize::from(u16::from_be_bytes([data[4], data[5]]));
    let rest = &data[6..];
    let (client_bytes, backend_bytes) = rest.split_at(c_len.min(rest.len()));
    // small buffers find the edges sooner; config allows 4 KiB and up
    let cap = 512 + usize::from(size) * 64;
    let limits = Limits {
        max_head: cap.min(16384) - if opts & 0x40 != 0 { cap / 2 } else { 0 },
        max_uri: cap / 2,
        max_headers: ferrule::http::DEFAULT_MAX_HEADERS,
        max_body: 0,
    };
    let trusted = TrustedProxies::EMPTY;
    let router = ferrule::http::request::OnePool(ferrule::http::request::Routed {
        pool: 0,
        route: None,
        strip: 0,
        key: KeySource::ClientIp,
        sticky_cookie: (opts & 0x10 != 0).then_some(&b"FERRULE_BACKEND"[..]),
        strip_sticky_cookie: opts & 0x80 != 0,
    });
    let client = ClientInfo {
        ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        tls: opts & 2 != 0,
        router: &router,
        trusted: &trusted,
        request_id: Some(b"0123456789abcdef0123456789abcdef"),
    };
    let mut m = Model {
        pool: BufPool::new(cap, 2),
        cap,
        limits,
        client,
        c: Feed {
            bytes: client_bytes,
            pos: 0,
            piece: usize::from(c_piece).max(1),
        },
        b: Feed {
            bytes: backend_bytes,
            pos: 0,
            piece: usize::from(b_piece).max(1),
        },
        req: None,
        resp: None,
        scratch: Vec::new(),
        to_backend: Vec::new(),
        to_client: Vec::new(),
        forwarded: Vec::new(),
        answered: Vec::new(),
    };
    let end = m.run();
    m.check_bounds();
    m.give_back();
    assert_eq!(m.pool.in_use(), 0);
    assert!(m.answered.len() <= m.forwarded.len() + 1);
    if end == End::Idle {
        assert_eq!(
            m.answered.len(),
            m.forwarded.len(),
            "a request left unanswered"
        );
    }
    if std::env::var_os("EXCHANGE_DUMP").is_some() {
        eprintln!(
            "answered {:?}\nto_client {:?}",
            m.answered,
            String::from_utf8_lossy(&m.to_client[..m.to_client.len().min(500)])
        );
    }
    backend_reads(&m.to_backend, &m.forwarded);
    // the client's HTTP version only matters for the check of what HTTP/1.0 gets; it is the same
    // for every request of a fuzz input only by chance, so it is not checked here
    client_reads(&m.to_client, &m.answered, false);
});
