//! Message body framing (RFC 9112 §6–7): where a body ends.
//!
//! [`Body`] is fed the bytes that follow a head and tells, step by step, which of them are payload,
//! which are framing (chunk-size lines, chunk CRLFs, trailers) and when the message is complete.
//! It never buffers: a chunked body of any size streams through with constant state. The session
//! (`session.rs`) forwards what a step covers verbatim, or, when it de-chunks for an HTTP/1.0
//! client, forwards only the payload.
//!
//! The chunked grammar is enforced strictly, because a proxy that reads a chunked body differently
//! from its backend is a request-smuggling vector: a chunk-size line is `1*HEXDIG [ext] CRLF`,
//! bare LF or CR, control characters, an oversized size, an over-long line or trailer section are
//! all errors.

/// How a message body is delimited, decided from the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the sender closes the connection (responses only).
    UntilClose,
}

/// A body that is not framed correctly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Malformed chunk-size line, missing CRLF after chunk data, or bad trailer.
    BadChunk,
    /// Chunk-size line or trailer section longer than allowed.
    TooLong,
}

/// One step of progress over the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The next `n` bytes are payload.
    Payload(usize),
    /// The next `n` bytes are framing (chunk-size line, CRLF, trailers).
    Framing(usize),
    /// More input is needed (the input was empty).
    Blocked,
    /// The message is complete; nothing consumed.
    Done,
}

/// Longest chunk-size line (digits and extensions) accepted.
const MAX_CHUNK_LINE: u32 = 4096;
/// Longest trailer section accepted.
const MAX_TRAILERS: u32 = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading the hex digits of a chunk size; `digits` read so far.
    Size { digits: u8 },
    /// After the digits: optional whitespace before `;` (`ext` false) or inside extensions.
    Ext { ext: bool },
    /// CR seen at the end of the chunk-size line.
    SizeLf,
    /// Payload bytes of the current chunk remain.
    Data,
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line, or of the final empty line.
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine,
    /// CR seen at the end of a trailer line.
    TrailerLf,
    /// CR seen of the final empty line.
    EndLf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Done,
    Length(u64),
    UntilClose,
    Chunked {
        at: Chunk,
        /// Current chunk size while reading it, then payload bytes left in it.
        size: u64,
        /// Bytes of the current chunk-size line.
        line: u32,
        /// Bytes of the trailer section so far.
        trailers: u32,
        /// Payload bytes so far, saturating (`max_body_size`; it fits in the padding).
        payload: u32,
    },
}

/// Progress through one message body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Body {
    state: State,
}

impl Default for Body {
    fn default() -> Body {
        Body { state: State::Done }
    }
}

impl Body {
    pub fn new(framing: Framing) -> Body {
        let state = match framing {
            Framing::None | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::UntilClose => State::UntilClose,
            Framing::Chunked => State::Chunked {
                at: Chunk::Size { digits: 0 },
                size: 0,
                line: 0,
                trailers: 0,
                payload: 0,
            },
        };
        Body { state }
    }

    /// The message is complete.
    #[inline]
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The body ends only when the sender closes.
    #[inline]
    pub fn until_close(&self) -> bool {
        self.state == State::UntilClose
    }

    /// Payload bytes of a chunked body so far (saturating at 4 GiB; 0 for other framings, whose
    /// length is known from the head).
    pub fn chunked_payload(&self) -> u64 {
        match self.state {
            State::Chunked { payload, .. } => u64::from(payload),
            _ => 0,
        }
    }

    /// A chunked body's last chunk has been read: what comes now is its trailer section (and the
    /// empty line that ends it), which a `Framing` step reports.
    pub fn in_trailers(&self) -> bool {
        matches!(
            self.state,
            State::Chunked {
                at: Chunk::TrailerStart | Chunk::TrailerLine | Chunk::TrailerLf | Chunk::EndLf,
                ..
            }
        )
    }

    /// Marks a close-delimited body complete (the sender closed).
    pub fn finish_at_close(&mut self) {
        if self.state == State::UntilClose {
            self.state = State::Done;
        }
    }

    /// Classifies the next bytes of `input`.
    pub fn step(&mut self, input: &[u8]) -> Result<Step, BodyError> {
        match &mut self.state {
            State::Done => Ok(Step::Done),
            _ if input.is_empty() => Ok(Step::Blocked),
            State::Length(left) => {
                let n = (*left).min(input.len() as u64);
                *left -= n;
                if *left == 0 {
                    self.state = State::Done;
                }
                Ok(Step::Payload(n as usize))
            }
            State::UntilClose => Ok(Step::Payload(input.len())),
            State::Chunked {
                at: at @ Chunk::Data,
                size,
                payload,
                ..
            } => {
                let n = (*size).min(input.len() as u64);
                *size -= n;
                *payload = payload.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
                if *size == 0 {
                    *at = Chunk::DataCr;
                }
                Ok(Step::Payload(n as usize))
            }
            State::Chunked { .. } => self.chunk_framing(input),
        }
    }

    /// Consumes framing bytes until payload starts, the message ends or the input runs out.
    fn chunk_framing(&mut self, input: &[u8]) -> Result<Step, BodyError> {
        let State::Chunked {
            mut at,
            mut size,
            mut line,
            mut trailers,
            payload,
        } = self.state
        else {
            return Ok(Step::Blocked);
        };
        let mut used = 0;
        let mut done = false;
        for &b in input {
            used += 1;
            if matches!(at, Chunk::Size { .. } | Chunk::Ext { .. } | Chunk::SizeLf) {
                line += 1;
                if line > MAX_CHUNK_LINE {
                    return Err(BodyError::TooLong);
                }
            } else if matches!(
                at,
                Chunk::TrailerStart | Chunk::TrailerLine | Chunk::TrailerLf | Chunk::EndLf
            ) {
                trailers += 1;
                if trailers > MAX_TRAILERS {
                    return Err(BodyError::TooLong);
                }
            }
            at = match at {
                Chunk::Size { digits } => match hex_value(b) {
                    Some(v) => {
                        if digits >= 16 {
                            return Err(BodyError::BadChunk);
                        }
                        size = (size << 4) | v;
                        Chunk::Size { digits: digits + 1 }
                    }
                    None if digits == 0 => return Err(BodyError::BadChunk),
                    None => match b {
                        b'\r' => Chunk::SizeLf,
                        b';' => Chunk::Ext { ext: true },
                        b' ' | b'\t' => Chunk::Ext { ext: false },
                        _ => return Err(BodyError::BadChunk),
                    },
                },
                Chunk::Ext { ext } => match b {
                    b'\r' if ext => Chunk::SizeLf,
                    b';' => Chunk::Ext { ext: true },
                    b' ' | b'\t' => Chunk::Ext { ext },
                    _ if ext && is_field_char(b) => Chunk::Ext { ext },
                    _ => return Err(BodyError::BadChunk),
                },
                Chunk::SizeLf => {
                    if b != b'\n' {
                        return Err(BodyError::BadChunk);
                    }
                    line = 0;
                    if size == 0 {
                        // the step ends with the last chunk's line: the trailer section comes
                        // in steps of its own (`in_trailers`), so that a reader keeping the
                        // trailers (HTTP/2's final HEADERS) can tell them from the framing
                        at = Chunk::TrailerStart;
                        break;
                    } else {
                        at = Chunk::Data;
                        break;
                    }
                }
                Chunk::Data => unreachable_data(),
                Chunk::DataCr if b == b'\r' => Chunk::DataLf,
                Chunk::DataLf if b == b'\n' => Chunk::Size { digits: 0 },
                Chunk::DataCr | Chunk::DataLf => return Err(BodyError::BadChunk),
                Chunk::TrailerStart => match b {
                    b'\r' => Chunk::EndLf,
                    // obs-fold, or a line with no field name
                    b' ' | b'\t' | b':' => return Err(BodyError::BadChunk),
                    _ if is_field_char(b) => Chunk::TrailerLine,
                    _ => return Err(BodyError::BadChunk),
                },
                Chunk::TrailerLine => match b {
                    b'\r' => Chunk::TrailerLf,
                    b' ' | b'\t' => Chunk::TrailerLine,
                    _ if is_field_char(b) => Chunk::TrailerLine,
                    _ => return Err(BodyError::BadChunk),
                },
                Chunk::TrailerLf if b == b'\n' => Chunk::TrailerStart,
                Chunk::EndLf if b == b'\n' => {
                    done = true;
                    break;
                }
                Chunk::TrailerLf | Chunk::EndLf => return Err(BodyError::BadChunk),
            };
        }
        self.state = if done {
            State::Done
        } else {
            State::Chunked {
                at,
                size,
                line,
                trailers,
                payload,
            }
        };
        Ok(Step::Framing(used))
    }
}

/// `Chunk::Data` is handled by `step` before `chunk_framing` is called, and `chunk_framing`
/// stops as soon as it enters `Data`.
#[cold]
fn unreachable_data() -> Chunk {
    Chunk::Data
}

#[inline]
fn hex_value(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

/// Visible ASCII or obs-text: what may appear in a field value or chunk extension.
#[inline]
fn is_field_char(b: u8) -> bool {
    b > 0x20 && b != 0x7f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `piece` bytes; returns (payload, framing bytes, done, rest).
    fn run(
        framing: Framing,
        input: &[u8],
        piece: usize,
    ) -> Result<(Vec<u8>, usize, bool, usize), BodyError> {
        let mut body = Body::new(framing);
        let mut payload = Vec::new();
        let mut framing_bytes = 0;
        let mut pos = 0;
        let mut avail = piece.min(input.len());
        for _ in 0..100_000 {
            match body.step(&input[pos..avail])? {
                Step::Payload(n) => {
                    payload.extend_from_slice(&input[pos..pos + n]);
                    pos += n;
                }
                Step::Framing(n) => {
                    framing_bytes += n;
                    pos += n;
                }
                Step::Blocked => {
                    if avail == input.len() {
                        break;
                    }
                    avail = (avail + piece).min(input.len());
                }
                Step::Done => break,
            }
        }
        Ok((payload, framing_bytes, body.is_done(), input.len() - pos))
    }

    #[test]
    fn length_body_stops_at_the_end() {
        let (p, f, done, rest) = run(Framing::Length(5), b"helloGET /", 3).unwrap();
        assert_eq!(p, b"hello");
        assert_eq!(f, 0);
        assert!(done);
        assert_eq!(rest, 5);
        assert!(Body::new(Framing::Length(0)).is_done());
        assert!(Body::new(Framing::None).is_done());
    }

    #[test]
    fn chunked_any_split_gives_the_same_result() {
        let msg =
            b"5;name=\"v\"\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for piece in 1..msg.len() {
            let (p, f, done, rest) = run(Framing::Chunked, msg, piece).unwrap();
            assert_eq!(p, b"helloabcdefghijklmnopqrstuvwxyz", "piece {piece}");
            assert!(done);
            assert_eq!(rest, 4);
            assert_eq!(f + p.len() + rest, msg.len());
        }
    }

    #[test]
    fn chunked_without_trailers_and_with_whitespace_before_extension() {
        let (p, _, done, rest) = run(Framing::Chunked, b"3 ;x\r\nabc\r\n0\r\n\r\n", 64).unwrap();
        assert_eq!(p, b"abc");
        assert!(done);
        assert_eq!(rest, 0);
    }

    #[test]
    fn chunked_incomplete_is_not_done() {
        let (p, _, done, _) = run(Framing::Chunked, b"5\r\nhel", 64).unwrap();
        assert_eq!(p, b"hel");
        assert!(!done);
        let (_, _, done, _) = run(Framing::Chunked, b"0\r\n\r", 64).unwrap();
        assert!(!done);
    }

    #[test]
    fn malformed_chunks_are_rejected() {
        let bad: &[&[u8]] = &[
            b"\r\n",                         // no digits
            b"x\r\n",                        // not hex
            b"-1\r\n",                       // sign
            b"5\nhello\r\n0\r\n\r\n",        // bare LF after size
            b"5\rhello",                     // bare CR
            b"5 \r\n",                       // whitespace without extension
            b"5 x\r\n",                      // junk after size
            b"5\r\nhelloX\r\n",              // data not followed by CRLF
            b"5\r\nhello\n0\r\n\r\n",        // bare LF after data
            b"10000000000000000\r\n",        // 17 digits: overflow
            b"0\r\n\r\r",                    // bad end
            b"0\r\n folded\r\n\r\n",         // obs-fold in trailers
            b"0\r\nX: a\nY: b\r\n\r\n",      // bare LF in trailers
            b"3;a\x01b\r\nabc\r\n0\r\n\r\n", // control char in extension
        ];
        for input in bad {
            assert_eq!(
                run(Framing::Chunked, input, 64),
                Err(BodyError::BadChunk),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn oversized_lines_are_rejected() {
        let mut line = b"1;".to_vec();
        line.extend(std::iter::repeat_n(b'a', 5000));
        assert_eq!(run(Framing::Chunked, &line, 4096), Err(BodyError::TooLong));
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..2000 {
            trailers.extend_from_slice(b"X-Trailer: value\r\n");
        }
        assert_eq!(
            run(Framing::Chunked, &trailers, 4096),
            Err(BodyError::TooLong)
        );
    }

    #[test]
    fn the_trailer_section_comes_in_steps_of_its_own() {
        let mut body = Body::new(Framing::Chunked);
        let input = b"5\r\nhello\r\n0\r\nX-Sum: abc\r\n\r\n";
        assert_eq!(body.step(input).unwrap(), Step::Framing(3));
        assert_eq!(body.step(&input[3..]).unwrap(), Step::Payload(5));
        // the CRLF after the data and the last chunk's line, not a byte more
        assert_eq!(body.step(&input[8..]).unwrap(), Step::Framing(5));
        assert!(body.in_trailers());
        assert_eq!(body.step(&input[13..]).unwrap(), Step::Framing(14));
        assert!(body.is_done());
        // without trailers: the empty line alone
        let mut body = Body::new(Framing::Chunked);
        assert_eq!(body.step(b"0\r\n\r\n").unwrap(), Step::Framing(3));
        assert!(body.in_trailers());
        assert_eq!(body.step(b"\r\n").unwrap(), Step::Framing(2));
        assert!(body.is_done());
    }

    #[test]
    fn largest_chunk_size_is_accepted() {
        let mut body = Body::new(Framing::Chunked);
        assert_eq!(
            body.step(b"FFFFFFFFFFFFFFFF\r\nab").unwrap(),
            Step::Framing(18)
        );
        assert_eq!(body.step(b"ab").unwrap(), Step::Payload(2));
        assert!(!body.is_done());
    }

    #[test]
    fn until_close_ends_only_when_told() {
        let mut body = Body::new(Framing::UntilClose);
        assert_eq!(body.step(b"abc").unwrap(), Step::Payload(3));
        assert_eq!(body.step(b"").unwrap(), Step::Blocked);
        assert!(body.until_close());
        body.finish_at_close();
        assert!(body.is_done());
    }
}
