//! Tests of `frame.rs`: every frame type parsed and written, and each rule of RFC 9113 §4 and §6
//! with the error code the RFC names.

use super::*;
use ErrorCode::*;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = Head {
        len: payload.len() as u32,
        kind,
        flags,
        stream,
    }
    .encode()
    .to_vec();
    f.extend_from_slice(payload);
    f
}

fn one(bytes: &[u8]) -> Frame<'_> {
    match parse(bytes, DEFAULT_MAX_FRAME_SIZE) {
        Ok(Parsed::Frame { frame, len }) => {
            assert_eq!(len, bytes.len());
            frame
        }
        other => panic!("not a frame: {other:?}"),
    }
}

fn conn_err(bytes: &[u8]) -> ErrorCode {
    match parse(bytes, DEFAULT_MAX_FRAME_SIZE) {
        Err(H2Error::Connection { code, .. }) => code,
        other => panic!("not a connection error: {other:?}"),
    }
}

fn stream_err(bytes: &[u8]) -> (u32, ErrorCode) {
    match parse(bytes, DEFAULT_MAX_FRAME_SIZE) {
        Ok(Parsed::Reset {
            error: H2Error::Stream { id, code, .. },
            len,
        }) => {
            assert_eq!(len, bytes.len());
            (id, code)
        }
        other => panic!("not a stream error: {other:?}"),
    }
}

#[test]
fn preface_is_the_rfc_string() {
    assert_eq!(PREFACE, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    assert_eq!(PREFACE.len(), 24);
}

#[test]
fn header_round_trip_drops_the_reserved_bit() {
    let h = Head {
        len: 0x12_3456,
        kind: 7,
        flags: 0xab,
        stream: 0x7fff_fffe,
    };
    let bytes = h.encode();
    assert_eq!(bytes, [0x12, 0x34, 0x56, 7, 0xab, 0x7f, 0xff, 0xff, 0xfe]);
    assert_eq!(Head::read(&bytes), Some(h));
    let mut r = bytes;
    r[5] |= 0x80;
    assert_eq!(Head::read(&r).unwrap().stream, 0x7fff_fffe);
    assert_eq!(Head::read(&bytes[..8]), None);
}

#[test]
fn incomplete_frames_say_how_much_they_need() {
    let f = frame(kind::DATA, 0, 1, b"hello");
    for n in 0..f.len() {
        let want = if n < HEADER_LEN { HEADER_LEN } else { f.len() };
        assert_eq!(
            parse(&f[..n], DEFAULT_MAX_FRAME_SIZE),
            Ok(Parsed::Need { total: want })
        );
    }
    // a second frame behind the first is left alone
    let mut two = f.clone();
    two.extend_from_slice(&frame(kind::PING, 0, 0, &[0; 8]));
    assert!(matches!(
        parse(&two, DEFAULT_MAX_FRAME_SIZE),
        Ok(Parsed::Frame { len: 14, .. })
    ));
}

#[test]
fn too_large_is_refused_from_the_header_alone() {
    let head = Head {
        len: DEFAULT_MAX_FRAME_SIZE + 1,
        kind: kind::DATA,
        flags: 0,
        stream: 1,
    }
    .encode();
    assert_eq!(conn_err(&head), FrameSizeError);
    let big = frame(kind::DATA, 0, 1, &vec![0; 20_000]);
    assert!(matches!(parse(&big, 20_000), Ok(Parsed::Frame { .. })));
    // unknown types are bound by the size too
    let head = Head {
        len: DEFAULT_MAX_FRAME_SIZE + 1,
        kind: 0x42,
        flags: 0,
        stream: 0,
    };
    assert_eq!(conn_err(&head.encode()), FrameSizeError);
}

#[test]
fn data_with_and_without_padding() {
    assert_eq!(
        one(&frame(kind::DATA, flag::END_STREAM, 3, b"abc")),
        Frame::Data {
            stream: 3,
            data: b"abc",
            end_stream: true,
            flow_len: 3
        }
    );
    // pad length 2, "ab", two bytes of padding: five bytes count against the window
    assert_eq!(
        one(&frame(kind::DATA, flag::PADDED, 3, &[2, b'a', b'b', 0, 0])),
        Frame::Data {
            stream: 3,
            data: b"ab",
            end_stream: false,
            flow_len: 5
        }
    );
    // all padding
    assert_eq!(
        one(&frame(kind::DATA, flag::PADDED, 3, &[1, 0])),
        Frame::Data {
            stream: 3,
            data: b"",
            end_stream: false,
            flow_len: 2
        }
    );
    // padding as long as the payload, or longer: PROTOCOL_ERROR (§6.1)
    assert_eq!(
        conn_err(&frame(kind::DATA, flag::PADDED, 3, &[2, 0])),
        ProtocolError
    );
    assert_eq!(
        conn_err(&frame(kind::DATA, flag::PADDED, 3, &[9, 1, 2])),
        ProtocolError
    );
    // PADDED with no room for the pad length
    assert_eq!(
        conn_err(&frame(kind::DATA, flag::PADDED, 3, &[])),
        FrameSizeError
    );
    assert_eq!(conn_err(&frame(kind::DATA, 0, 0, b"x")), ProtocolError);
}

#[test]
fn headers_with_priority_and_padding() {
    let f = frame(
        kind::HEADERS,
        flag::END_HEADERS | flag::END_STREAM,
        1,
        &[0x82, 0x84],
    );
    assert_eq!(
        one(&f),
        Frame::Headers {
            stream: 1,
            block: &[0x82, 0x84],
            end_stream: true,
            end_headers: true,
            priority: None
        }
    );
    // padded (1 byte) and with priority: exclusive on stream 3, weight 15
    let payload = [1, 0x80, 0, 0, 3, 15, 0x82, 0];
    let f = frame(kind::HEADERS, flag::PADDED | flag::PRIORITY, 5, &payload);
    assert_eq!(
        one(&f),
        Frame::Headers {
            stream: 5,
            block: &[0x82],
            end_stream: false,
            end_headers: false,
            priority: Some(Priority {
                dependency: 3,
                exclusive: true,
                weight: 15
            })
        }
    );
    // padding reaching into the priority fields
    let f = frame(
        kind::HEADERS,
        flag::PADDED | flag::PRIORITY,
        5,
        &[3, 0, 0, 0, 3],
    );
    assert_eq!(conn_err(&f), FrameSizeError);
    let f = frame(kind::HEADERS, flag::PADDED, 5, &[4, 1, 2, 3]);
    assert_eq!(conn_err(&f), ProtocolError);
    // room for the priority, but the padding eats into it
    let f = frame(
        kind::HEADERS,
        flag::PADDED | flag::PRIORITY,
        5,
        &[1, 0, 0, 0, 3, 0],
    );
    assert_eq!(conn_err(&f), ProtocolError);
    // depending on itself
    let f = frame(kind::HEADERS, flag::PRIORITY, 5, &[0, 0, 0, 5, 0]);
    assert_eq!(conn_err(&f), ProtocolError);
    assert_eq!(
        conn_err(&frame(kind::HEADERS, 0, 0, &[0x82])),
        ProtocolError
    );
}

#[test]
fn priority_frame() {
    assert_eq!(
        one(&frame(kind::PRIORITY, 0, 7, &[0, 0, 0, 1, 200])),
        Frame::Priority {
            stream: 7,
            priority: Priority {
                dependency: 1,
                exclusive: false,
                weight: 200
            }
        }
    );
    // wrong length: a stream error (§6.3)
    assert_eq!(
        stream_err(&frame(kind::PRIORITY, 0, 7, &[0, 0, 0, 1])),
        (7, FrameSizeError)
    );
    assert_eq!(
        stream_err(&frame(kind::PRIORITY, 0, 7, &[0; 6])),
        (7, FrameSizeError)
    );
    assert_eq!(
        stream_err(&frame(kind::PRIORITY, 0, 7, &[0, 0, 0, 7, 1])),
        (7, ProtocolError)
    );
    assert_eq!(
        conn_err(&frame(kind::PRIORITY, 0, 0, &[0; 5])),
        ProtocolError
    );
}

#[test]
fn rst_stream_frame() {
    assert_eq!(
        one(&frame(kind::RST_STREAM, 0, 9, &[0, 0, 0, 8])),
        Frame::RstStream { stream: 9, code: 8 }
    );
    assert_eq!(
        one(&frame(kind::RST_STREAM, 0, 9, &[0, 0, 1, 0])),
        Frame::RstStream {
            stream: 9,
            code: 256
        }
    );
    assert_eq!(
        conn_err(&frame(kind::RST_STREAM, 0, 9, &[0; 3])),
        FrameSizeError
    );
    assert_eq!(
        conn_err(&frame(kind::RST_STREAM, 0, 0, &[0; 4])),
        ProtocolError
    );
}

#[test]
fn settings_frame_and_values() {
    let mut p = Vec::new();
    for (id, v) in [
        (1u16, 0u32),
        (2, 0),
        (3, 100),
        (4, MAX_WINDOW),
        (5, 16_384),
        (6, 8192),
    ] {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    p.extend_from_slice(&[0, 0x8, 0, 0, 0, 1, 0xf0, 0x0d, 0, 0, 0, 9]);
    let f = frame(kind::SETTINGS, 0, 0, &p);
    let Frame::Settings { ack: false, params } = one(&f) else {
        panic!()
    };
    assert_eq!(params.len(), 8);
    let got: Vec<_> = params.iter().collect();
    assert_eq!(
        got,
        [
            Setting::HeaderTableSize(0),
            Setting::EnablePush(false),
            Setting::MaxConcurrentStreams(100),
            Setting::InitialWindowSize(MAX_WINDOW),
            Setting::MaxFrameSize(16_384),
            Setting::MaxHeaderListSize(8192),
            Setting::EnableConnectProtocol(true),
            Setting::Unknown(0xf00d, 9),
        ]
    );
    // written back the same
    let mut out = Vec::new();
    assert!(settings(&mut out, &got));
    assert_eq!(out, f);
    assert_eq!(out.len(), settings_len(8));

    assert_eq!(
        one(&frame(kind::SETTINGS, flag::ACK, 0, &[])),
        Frame::Settings {
            ack: true,
            params: Params(&[])
        }
    );
    assert_eq!(
        settings_ack().to_vec(),
        frame(kind::SETTINGS, flag::ACK, 0, &[])
    );

    let bad = |id: u16, v: u32| {
        let mut p = id.to_be_bytes().to_vec();
        p.extend_from_slice(&v.to_be_bytes());
        conn_err(&frame(kind::SETTINGS, 0, 0, &p))
    };
    assert_eq!(bad(2, 2), ProtocolError);
    assert_eq!(bad(4, MAX_WINDOW + 1), FlowControlError);
    assert_eq!(bad(5, 16_383), ProtocolError);
    assert_eq!(bad(5, MAX_FRAME_SIZE_LIMIT + 1), ProtocolError);
    assert_eq!(bad(8, 7), ProtocolError);
    assert_eq!(bad(9, 2), ProtocolError);
    assert_eq!(
        conn_err(&frame(kind::SETTINGS, 0, 0, &[0; 5])),
        FrameSizeError
    );
    assert_eq!(
        conn_err(&frame(kind::SETTINGS, flag::ACK, 0, &[0; 6])),
        FrameSizeError
    );
    assert_eq!(conn_err(&frame(kind::SETTINGS, 0, 1, &[])), ProtocolError);
}

#[test]
fn push_promise_from_a_client_is_refused() {
    assert_eq!(
        conn_err(&frame(
            kind::PUSH_PROMISE,
            flag::END_HEADERS,
            1,
            &[0, 0, 0, 2, 0x82]
        )),
        ProtocolError
    );
}

#[test]
fn ping_frame() {
    let data = *b"12345678";
    assert_eq!(
        one(&frame(kind::PING, 0, 0, &data)),
        Frame::Ping { ack: false, data }
    );
    let ack = ping_ack(data);
    assert_eq!(ack.to_vec(), frame(kind::PING, flag::ACK, 0, &data));
    assert_eq!(one(&ack), Frame::Ping { ack: true, data });
    assert_eq!(conn_err(&frame(kind::PING, 0, 0, &[0; 7])), FrameSizeError);
    assert_eq!(conn_err(&frame(kind::PING, 0, 0, &[0; 9])), FrameSizeError);
    assert_eq!(conn_err(&frame(kind::PING, 0, 1, &[0; 8])), ProtocolError);
}

#[test]
fn goaway_frame() {
    let f = frame(
        kind::GOAWAY,
        0,
        0,
        &[0x80, 0, 0, 5, 0, 0, 0, 0xb, b'h', b'i'],
    );
    assert_eq!(
        one(&f),
        Frame::GoAway {
            last_stream: 5,
            code: 0xb,
            debug: b"hi"
        }
    );
    let g = goaway(5, EnhanceYourCalm);
    assert_eq!(
        g.to_vec(),
        frame(kind::GOAWAY, 0, 0, &[0, 0, 0, 5, 0, 0, 0, 0xb])
    );
    assert_eq!(
        conn_err(&frame(kind::GOAWAY, 0, 0, &[0; 7])),
        FrameSizeError
    );
    assert_eq!(conn_err(&frame(kind::GOAWAY, 0, 3, &[0; 8])), ProtocolError);
}

#[test]
fn window_update_frame() {
    assert_eq!(
        one(&frame(kind::WINDOW_UPDATE, 0, 0, &[0x80, 0, 1, 0])),
        Frame::WindowUpdate {
            stream: 0,
            increment: 256
        }
    );
    let w = window_update(3, 1000);
    assert_eq!(
        one(&w),
        Frame::WindowUpdate {
            stream: 3,
            increment: 1000
        }
    );
    // increment 0: a stream error on a stream, a connection error on the connection (§6.9)
    assert_eq!(
        stream_err(&frame(kind::WINDOW_UPDATE, 0, 3, &[0; 4])),
        (3, ProtocolError)
    );
    assert_eq!(
        conn_err(&frame(kind::WINDOW_UPDATE, 0, 0, &[0x80, 0, 0, 0])),
        ProtocolError
    );
    assert_eq!(
        conn_err(&frame(kind::WINDOW_UPDATE, 0, 3, &[0; 5])),
        FrameSizeError
    );
    assert_eq!(
        conn_err(&frame(kind::WINDOW_UPDATE, 0, 3, &[0; 3])),
        FrameSizeError
    );
}

#[test]
fn continuation_and_unknown_frames() {
    assert_eq!(
        one(&frame(kind::CONTINUATION, flag::END_HEADERS, 3, b"xy")),
        Frame::Continuation {
            stream: 3,
            block: b"xy",
            end_headers: true
        }
    );
    assert_eq!(
        conn_err(&frame(kind::CONTINUATION, 0, 0, b"xy")),
        ProtocolError
    );
    assert_eq!(
        one(&frame(0xfa, 0xff, 0, b"whatever")),
        Frame::Unknown {
            kind: 0xfa,
            stream: 0
        }
    );
}

#[test]
fn rst_stream_and_data_written() {
    assert_eq!(
        one(&rst_stream(7, Cancel)),
        Frame::RstStream {
            stream: 7,
            code: Cancel.to_u32()
        }
    );
    let mut out = Vec::new();
    assert!(data(&mut out, 1, b"body", true));
    assert_eq!(out, frame(kind::DATA, flag::END_STREAM, 1, b"body"));
}

#[test]
fn headers_are_split_into_continuations() {
    let block: Vec<u8> = (0..40).collect();
    let mut out = Vec::new();
    assert!(headers(&mut out, 3, &block, true, 16));
    assert_eq!(out.len(), headers_len(40, 16));
    let mut at = 0;
    let mut got = Vec::new();
    let mut kinds = Vec::new();
    while at < out.len() {
        let Ok(Parsed::Frame { frame, len }) = parse(&out[at..], 16) else {
            panic!()
        };
        at += len;
        match frame {
            Frame::Headers {
                block,
                end_stream,
                end_headers,
                ..
            } => {
                assert!(end_stream && !end_headers);
                got.extend_from_slice(block);
                kinds.push(kind::HEADERS);
            }
            Frame::Continuation {
                block, end_headers, ..
            } => {
                assert_eq!(end_headers, got.len() + block.len() == 40);
                got.extend_from_slice(block);
                kinds.push(kind::CONTINUATION);
            }
            f => panic!("{f:?}"),
        }
    }
    assert_eq!(got, block);
    assert_eq!(kinds.len(), 3);
    // an empty block is one HEADERS
    let mut out = Vec::new();
    assert!(headers(&mut out, 1, &[], false, 16));
    assert_eq!(out, frame(kind::HEADERS, flag::END_HEADERS, 1, &[]));
    assert_eq!(headers_len(0, 16), HEADER_LEN);
}

#[test]
fn block_gathers_continuations_within_a_bound() {
    let mut b = Block::default();
    // whole at once: borrowed
    assert_eq!(
        b.headers(1, b"abc", true, true, 10),
        Ok(Gathered::Done {
            stream: 1,
            block: b"abc",
            end_stream: true
        })
    );
    assert!(!b.is_open());
    assert_eq!(b.headers(3, b"ab", false, false, 10), Ok(Gathered::Open));
    assert!(b.is_open());
    assert!(b.check_other().is_err());
    assert_eq!(b.continuation(3, b"cd", false, 10), Ok(Gathered::Open));
    assert_eq!(
        b.continuation(3, b"ef", true, 10),
        Ok(Gathered::Done {
            stream: 3,
            block: b"abcdef",
            end_stream: false
        })
    );
    assert!(b.check_other().is_ok());
    // a CONTINUATION with no block open, or on another stream
    let err = |r: Result<Gathered<'_>, H2Error>| r.unwrap_err().code();
    assert_eq!(err(b.continuation(3, b"x", true, 10)), ProtocolError);
    assert_eq!(b.headers(5, b"ab", false, false, 10), Ok(Gathered::Open));
    assert_eq!(err(b.continuation(7, b"x", true, 10)), ProtocolError);
    assert_eq!(err(b.headers(9, b"x", false, true, 10)), ProtocolError);
    // the flood: more than the bound ends the connection
    let mut b = Block::default();
    assert_eq!(b.headers(1, &[0; 6], false, false, 10), Ok(Gathered::Open));
    assert_eq!(err(b.continuation(1, &[0; 5], false, 10)), EnhanceYourCalm);
    assert_eq!(
        err(Block::default().headers(1, &[0; 11], false, true, 10)),
        EnhanceYourCalm
    );
    // empty CONTINUATIONs add no bytes: their number is bounded
    let mut b = Block::default();
    assert_eq!(b.headers(1, b"ab", false, false, 2048), Ok(Gathered::Open));
    for _ in 0..max_continuations(2048) {
        assert_eq!(b.continuation(1, &[], false, 2048), Ok(Gathered::Open));
    }
    assert_eq!(err(b.continuation(1, &[], false, 2048)), EnhanceYourCalm);
    // a new block counts afresh
    let mut b = Block::default();
    for round in 0..2 {
        let id = 1 + 2 * round;
        assert_eq!(b.headers(id, b"ab", false, false, 2048), Ok(Gathered::Open));
        for _ in 0..max_continuations(2048) - 1 {
            assert_eq!(b.continuation(id, &[], false, 2048), Ok(Gathered::Open));
        }
        assert!(b.continuation(id, b"cd", true, 2048).is_ok());
    }
}
