//! HTTP/2 to clients (RFC 9113): the pure pieces the connection's frame loop is built from. No
//! socket, clock or buffer pool is touched here: bytes and settings in, decisions and bytes out.
//!
//! - `error.rs`: the RFC 9113 §7 error codes, and whether an error ends the connection (§5.4.1)
//!   or only a stream (§5.4.2).
//! - `frame.rs`: the connection preface (§3.4), the frame header (§4.1) and every frame type
//!   (§6): parsed from a byte slice with the size, stream-id, padding and value rules checked,
//!   and written without allocation.
//! - `flow.rs`: flow-control windows (§5.2, §6.9) on the send side, and a receive side that
//!   batches WINDOW_UPDATEs.
//! - `hpack/`: header compression (RFC 7541), ferrule's own (see its header for why): a decoder
//!   bounded by the dynamic table size and the decoded header list size, and an encoder for
//!   response heads.
//! - `convert/`: HTTP/2 ↔ HTTP/1.1 (§8): a decoded request header list becomes the HTTP/1.1 head
//!   a [`Stream`](crate::stream::Stream) starts from, a backend's response head becomes a header
//!   block, and request bodies go to the backend chunked when they have no length.
//!
//! Memory these pieces imply, per connection: the HPACK decoder's dynamic table (at most twice
//! the `SETTINGS_HEADER_TABLE_SIZE` we announce, 8 KiB for the default 4 KiB, plus 24 bytes per
//! entry), one decoded header list at a time (bounded by `max_request_head`, see
//! `hpack::HeaderList`), the encoder's output block (a response head, bounded by what the stream's
//! buffer holds); the flow-control state is a few integers per stream. The bytes a stream can have
//! in flight from the client are bounded by the window we give it (`flow.rs`).
// Network input reaches every line here: clippy forbids indexing, slicing, unwrap and panics
// outside the tests (the policy is `network_input_mod!`, in lib.rs).

mod client;
mod conn;
pub mod convert;
pub mod error;
pub mod flow;
pub mod frame;
pub mod hpack;

pub use conn::{Ran, H2};
pub use error::{ErrorCode, H2Error};
