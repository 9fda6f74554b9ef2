//! The field-block gatherer: a HEADERS frame and the CONTINUATIONs after it, put together into
//! one bounded block (§4.3, §6.10) before HPACK decodes it.

use super::*;

/// A field block gathered from HEADERS and the CONTINUATIONs after it (§4.3, §6.10), bounded:
/// more than `max` bytes of block ends the connection (a CONTINUATION flood, CVE-2024-27316)
/// before they are kept, and so do more CONTINUATION frames than [`max_continuations`] allows
/// (empty ones add no bytes, so the byte bound alone would let a flood of them run for ever). It
/// keeps its allocation between blocks.
#[derive(Debug, Default)]
pub struct Block {
    bytes: Vec<u8>,
    /// The stream whose block is open (0: none).
    stream: u32,
    /// The HEADERS that opened it had END_STREAM.
    end_stream: bool,
    /// CONTINUATION frames of the open block.
    continuations: usize,
}

/// Most CONTINUATION frames one field block of at most `max` bytes may take: one per KiB of the
/// bound, and 16 more. A client writes its fragments as large as its frames (16 KiB at least),
/// so a block within the bound needs a few; a flood of small or empty ones is cut short.
pub const fn max_continuations(max: usize) -> usize {
    max / 1024 + 16
}

/// What [`Block::headers`] and [`Block::continuation`] leave.
#[derive(Debug, PartialEq, Eq)]
pub enum Gathered<'a> {
    /// More CONTINUATION frames must follow on the stream.
    Open,
    /// The whole field block of `stream`.
    Done {
        stream: u32,
        block: &'a [u8],
        end_stream: bool,
    },
}

impl Block {
    /// A field block is open: only a CONTINUATION of its stream may come next (§6.10).
    pub fn is_open(&self) -> bool {
        self.stream != 0
    }

    /// Starts a block from a HEADERS frame. With END_HEADERS the fragment is the whole block and
    /// is not copied.
    pub fn headers<'a>(
        &'a mut self,
        stream: u32,
        fragment: &'a [u8],
        end_stream: bool,
        end_headers: bool,
        max: usize,
    ) -> Result<Gathered<'a>, H2Error> {
        if self.is_open() {
            return Err(conn(
                ErrorCode::ProtocolError,
                "HEADERS inside a field block",
            ));
        }
        if fragment.len() > max {
            return Err(conn(ErrorCode::EnhanceYourCalm, "field block too large"));
        }
        if end_headers {
            return Ok(Gathered::Done {
                stream,
                block: fragment,
                end_stream,
            });
        }
        self.bytes.clear();
        self.bytes.extend_from_slice(fragment);
        self.stream = stream;
        self.end_stream = end_stream;
        self.continuations = 0;
        Ok(Gathered::Open)
    }

    /// Adds a CONTINUATION frame's fragment.
    pub fn continuation(
        &mut self,
        stream: u32,
        fragment: &[u8],
        end_headers: bool,
        max: usize,
    ) -> Result<Gathered<'_>, H2Error> {
        if !self.is_open() || stream != self.stream {
            return Err(conn(
                ErrorCode::ProtocolError,
                "CONTINUATION without its HEADERS",
            ));
        }
        if self.bytes.len().saturating_add(fragment.len()) > max {
            return Err(conn(ErrorCode::EnhanceYourCalm, "field block too large"));
        }
        self.continuations += 1;
        if self.continuations > max_continuations(max) {
            return Err(conn(
                ErrorCode::EnhanceYourCalm,
                "too many CONTINUATION frames",
            ));
        }
        self.bytes.extend_from_slice(fragment);
        if !end_headers {
            return Ok(Gathered::Open);
        }
        let stream = std::mem::take(&mut self.stream);
        Ok(Gathered::Done {
            stream,
            block: &self.bytes,
            end_stream: self.end_stream,
        })
    }

    /// Checks a frame that is not a CONTINUATION against an open block (§6.10: a connection
    /// error).
    pub fn check_other(&self) -> Result<(), H2Error> {
        if self.is_open() {
            return Err(conn(ErrorCode::ProtocolError, "frame inside a field block"));
        }
        Ok(())
    }

    /// Gives back the memory of a large block (call when the connection goes idle).
    pub fn shrink(&mut self) {
        if !self.is_open() {
            self.bytes = Vec::new();
        }
    }
}
