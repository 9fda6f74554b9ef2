//! HTTP/2 to clients (issue 23), end to end on real sockets at 127.0.0.1, each test over h2c
//! (prior knowledge on the plain port) and over TLS with ALPN `h2`:
//!
//! - `errors`: protocol errors, each answered with the code RFC 9113 names (bad preface, frames
//!   on idle and closed streams, frame sizes, pseudo-header rules, padding, flow control);
//! - `streams`: 200 streams on one connection, 128 at once, bodies of 0, 1 KiB and 1 MiB both
//!   ways, byte-exact (Python's `h2`), and curl and nghttp as ordinary clients;
//! - `limits`: Rapid Reset, CONTINUATION floods, HPACK bombs, control-frame floods, the
//!   concurrent-stream cap, a client that never opens its window; another client is served
//!   meanwhile every time;
//! - `drain`: GOAWAY with the last stream id on shutdown, the streams in flight finish;
//! - `features`: what every HTTP/1.1 request gets, per stream (balancing, stickiness with split
//!   cookies, queueing, retries, forwarding headers, 431, the access log);
//! - `conversion`: HTTP/2 ↔ HTTP/1.1 (request bodies with and without a length, bodiless and
//!   interim answers, chunked answers and trailers, hop-by-hop fields) and WebSocket over
//!   HTTP/2 (RFC 8441).
//!
//! The clients: `crate::common::h2::Wire` (frames by hand), `tests/http2/h2client.py` (Python's `h2`),
//! `curl` and `nghttp` (Debian's `nghttp2-client`), all bounded in time.

mod conversion;
mod drain;
mod errors;
mod features;
mod limits;
mod streams;

/// Two tests of a `fn(Mode)`: `NAME::h2c` and `NAME::tls`.
#[macro_export]
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn h2c() {
                    super::$name($crate::common::h2::Mode::H2c);
                }
                #[test]
                fn tls() {
                    super::$name($crate::common::h2::Mode::Tls);
                }
            }
        )*
    };
}
