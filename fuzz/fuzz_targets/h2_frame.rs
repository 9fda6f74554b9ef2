//! The HTTP/2 frame parser (`connection::h2::frame::parse`) over a byte stream of frames, as the
//! connection's loop reads them, with our `SETTINGS_MAX_FRAME_SIZE` from the first two bytes;
//! field blocks go through the bounded HEADERS/CONTINUATION gatherer (`frame::Block`).
//!
//! Invariants: no panic; `Need { total }` asks for more than is there and never more than one
//! frame header plus the maximum frame size, and every shorter prefix is `Need` too; a frame is
//! read from exactly its own bytes (what follows does not change it); a stream error names the
//! frame's stream, which is not 0; errors carry the RFC 9113 codes the frame rules name;
//! frames ferrule writes (DATA, HEADERS+CONTINUATION, SETTINGS, PING ACK, WINDOW_UPDATE,
//! RST_STREAM, GOAWAY) read back as what was written; a gathered field block is the
//! concatenation of its fragments and never longer than the bound.
#![no_main]

use ferrule::connection::h2::error::{ErrorCode, H2Error};
use ferrule::connection::h2::frame::{
    self, Block, Frame, Gathered, Head, Parsed, DEFAULT_MAX_FRAME_SIZE, HEADER_LEN,
};
use libfuzzer_sys::fuzz_target;

const BLOCK_MAX: usize = 4096;

fn one(bytes: &[u8], max: u32) -> Frame<'_> {
    match frame::parse(bytes, max) {
        Ok(Parsed::Frame { frame, len }) => {
            assert_eq!(len, bytes.len());
            frame
        }
        other => panic!("a frame ferrule wrote did not read back: {other:?}"),
    }
}

/// Writes what ferrule can write of `f` and checks it reads back the same.
fn write_back(f: &Frame<'_>, max: u32) {
    match *f {
        Frame::Data {
            stream,
            data,
            end_stream,
            ..
        } => {
            let mut out = Vec::new();
            assert!(frame::data(&mut out, stream, data, end_stream));
            assert_eq!(
                one(&out, max),
                Frame::Data {
                    stream,
                    data,
                    end_stream,
                    flow_len: data.len() as u32
                }
            );
        }
        Frame::Headers {
            stream,
            block,
            end_stream,
            ..
        } => {
            // split at a small frame size: HEADERS and CONTINUATIONs, gathered back whole
            let mut out = Vec::new();
            assert!(frame::headers(&mut out, stream, block, end_stream, 7));
            assert_eq!(out.len(), frame::headers_len(block.len(), 7));
            let mut b = Block::default();
            let mut at = 0;
            let mut got = None;
            while at < out.len() {
                let Ok(Parsed::Frame { frame, len }) = frame::parse(&out[at..], 7) else {
                    panic!("written HEADERS did not read back")
                };
                at += len;
                let g = match frame {
                    Frame::Headers {
                        stream,
                        block,
                        end_stream,
                        end_headers,
                        ..
                    } => b.headers(stream, block, end_stream, end_headers, usize::MAX),
                    Frame::Continuation {
                        stream,
                        block,
                        end_headers,
                    } => b.continuation(stream, block, end_headers, usize::MAX),
                    other => panic!("{other:?} in a written field block"),
                };
                if let Gathered::Done {
                    stream: s,
                    block: whole,
                    end_stream: e,
                } = g.unwrap()
                {
                    assert!(got.is_none());
                    got = Some((s, whole.to_vec(), e));
                }
            }
            assert_eq!(got, Some((stream, block.to_vec(), end_stream)));
        }
        Frame::Settings { ack: false, params } => {
            let list: Vec<_> = params.iter().collect();
            let mut out = Vec::new();
            assert!(frame::settings(&mut out, &list));
            let Frame::Settings { ack: false, params } = one(&out, max) else {
                panic!()
            };
            assert_eq!(params.iter().collect::<Vec<_>>(), list);
        }
        Frame::Ping { data, .. } => {
            assert_eq!(
                one(&frame::ping_ack(data), max),
                Frame::Ping { ack: true, data }
            );
        }
        Frame::WindowUpdate { stream, increment } => {
            assert_eq!(
                one(&frame::window_update(stream, increment), max),
                Frame::WindowUpdate { stream, increment }
            );
        }
        Frame::RstStream { stream, code } => {
            if let Some(c) = ErrorCode::from_u32(code) {
                assert_eq!(
                    one(&frame::rst_stream(stream, c), max),
                    Frame::RstStream { stream, code }
                );
            }
        }
        Frame::GoAway {
            last_stream, code, ..
        } => {
            if let Some(c) = ErrorCode::from_u32(code) {
                assert_eq!(
                    one(&frame::goaway(last_stream, c), max),
                    Frame::GoAway {
                        last_stream,
                        code,
                        debug: &[]
                    }
                );
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((size, mut input)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max = DEFAULT_MAX_FRAME_SIZE + u32::from(u16::from_le_bytes(*size) & 0x3fff);
    let mut block = Block::default();
    // bounded: every round consumes a frame or stops
    loop {
        let parsed = frame::parse(input, max);
        match parsed {
            Ok(Parsed::Need { total }) => {
                assert!(total > input.len());
                assert!(total <= HEADER_LEN + max as usize);
                if input.len() >= HEADER_LEN {
                    assert_eq!(total, HEADER_LEN + Head::read(input).unwrap().len as usize);
                }
                for n in 0..input.len() {
                    assert!(matches!(
                        frame::parse(&input[..n], max),
                        Ok(Parsed::Need { .. })
                    ));
                }
                return;
            }
            Err(e) => {
                assert!(e.is_connection());
                assert!(matches!(
                    e.code(),
                    ErrorCode::ProtocolError
                        | ErrorCode::FrameSizeError
                        | ErrorCode::FlowControlError
                ));
                let _ = e.to_string();
                return;
            }
            Ok(Parsed::Reset { error, len }) => {
                let H2Error::Stream { id, code, .. } = error else {
                    panic!("a reset that is not a stream error")
                };
                let head = Head::read(input).unwrap();
                assert_eq!(id, head.stream);
                assert_ne!(id, 0);
                assert!(matches!(
                    code,
                    ErrorCode::ProtocolError | ErrorCode::FrameSizeError
                ));
                assert_eq!(len, HEADER_LEN + head.len as usize);
                assert_eq!(frame::parse(&input[..len], max), parsed);
                input = &input[len..];
            }
            Ok(Parsed::Frame { frame: f, len }) => {
                assert!(len >= HEADER_LEN && len <= input.len());
                assert_eq!(frame::parse(&input[..len], max), parsed);
                for n in [0, len / 2, len - 1] {
                    assert!(matches!(
                        frame::parse(&input[..n], max),
                        Ok(Parsed::Need { .. })
                    ));
                }
                write_back(&f, max);
                // the loop's field block rules, as the connection applies them
                let gathered = match f {
                    Frame::Headers {
                        stream,
                        block: frag,
                        end_stream,
                        end_headers,
                        ..
                    } => Some(block.headers(stream, frag, end_stream, end_headers, BLOCK_MAX)),
                    Frame::Continuation {
                        stream,
                        block: frag,
                        end_headers,
                    } => Some(block.continuation(stream, frag, end_headers, BLOCK_MAX)),
                    _ => block.check_other().err().map(Err),
                };
                match gathered {
                    Some(Ok(Gathered::Done { block: b, .. })) => assert!(b.len() <= BLOCK_MAX),
                    Some(Ok(Gathered::Open)) | None => {}
                    Some(Err(e)) => {
                        assert!(e.is_connection());
                        return;
                    }
                }
                input = &input[len..];
            }
        }
    }
});
