//! HPACK decoding of arbitrary field blocks (`connection::h2::hpack::Decoder`, one context over
//! several blocks, as on a connection) and each decoded list converted into an HTTP/1.1 request
//! head (`connection::h2::convert::request`). The first byte picks the options (END_STREAM, the
//! extended CONNECT setting, a small or large list limit, max_header_count, a 256-byte head
//! buffer or a growing one); then blocks follow, each behind a 2-byte length.
//!
//! Invariants: no panic; a decoding error ends the connection (COMPRESSION_ERROR, or
//! ENHANCE_YOUR_CALM past the hard bound, never before the decoded size passed it) and nothing
//! else comes after it; the fields kept are within the list's limit, and a list past it is
//! flagged; every decoded field re-encodes (our encoder) and decodes back the same, names
//! lowercased; an accepted request is one whole HTTP/1.1 head that httparse reads with exactly
//! the written length, whose request line carries `:method` (GET for an extended CONNECT) and
//! `:path`, with one `host` when there is an `:authority`, at most one `cookie`, no
//! connection-specific field but the upgrade of an extended CONNECT, `transfer-encoding:
//! chunked` exactly when the result says so, no more fields than `max_header_count`; a 431 only
//! when the list was flagged, the fields are too many, or the buffer too small.
#![no_main]

use ferrule::connection::h2::convert::{request, Refused, RequestOptions};
use ferrule::connection::h2::error::ErrorCode;
use ferrule::connection::h2::hpack::{Decoder, Encoder, HeaderList, HARD_FACTOR, HARD_FLOOR};
use libfuzzer_sys::fuzz_target;

fn check_round_trip(list: &HeaderList) {
    let mut enc = Encoder::new();
    let mut block = Vec::new();
    enc.begin(&mut block);
    for (n, v) in list.iter() {
        enc.field(n, v, &mut block);
    }
    let mut d = Decoder::new(4096);
    let mut back = HeaderList::new(usize::MAX);
    d.decode(&block, &mut back).expect("our own block decodes");
    assert_eq!(back.len(), list.len());
    for ((n1, v1), (n2, v2)) in list.iter().zip(back.iter()) {
        assert_eq!(n1.to_ascii_lowercase(), n2);
        assert_eq!(v1, v2);
    }
}

fn check_head(
    list: &HeaderList,
    opts: &RequestOptions,
    head: &[u8],
    r: &ferrule::connection::h2::convert::Request,
) {
    assert_eq!(head.len(), r.head_len);
    let mut fields = [httparse::EMPTY_HEADER; 512];
    let mut req = httparse::Request::new(&mut fields);
    let status = req.parse(head).expect("a converted head parses");
    assert_eq!(status, httparse::Status::Complete(head.len()));
    let get = |name: &[u8]| list.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
    let method = req.method.unwrap().as_bytes();
    if r.extended_connect {
        assert_eq!(method, b"GET");
    } else {
        assert_eq!(Some(method), get(b":method"));
    }
    let target = req.path.unwrap().as_bytes();
    assert_eq!(Some(target), get(b":path").or(get(b":authority")));
    let count = |name: &str| {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
    };
    if let Some(a) = get(b":authority") {
        assert_eq!(count("host"), 1);
        let host = req.headers.iter().find(|h| h.name == "host").unwrap();
        assert_eq!(host.value, a);
    }
    assert!(count("cookie") <= 1);
    assert!(req.headers.len() <= opts.max_headers);
    assert_eq!(count("transfer-encoding"), usize::from(r.chunked));
    assert_eq!(count("connection"), usize::from(r.extended_connect));
    assert_eq!(count("upgrade"), usize::from(r.extended_connect));
    for f in ["keep-alive", "proxy-connection"] {
        assert_eq!(count(f), 0);
    }
    for h in req.headers.iter() {
        assert!(!h.value.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n')));
        assert!(!h.name.bytes().any(|b| b.is_ascii_uppercase()));
    }
    if r.chunked {
        assert!(r.content_length.is_none() && !opts.end_stream);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&o, mut rest)) = data.split_first() else {
        return;
    };
    let opts = RequestOptions {
        end_stream: o & 1 != 0,
        connect_protocol: o & 2 != 0,
        max_headers: if o & 4 != 0 { 8 } else { 100 },
        nonce: [o; 16],
    };
    let limit = if o & 8 != 0 { 200 } else { 16_384 };
    let small_buffer = o & 16 != 0;
    let table = if o & 32 != 0 { 256 } else { 4096 };
    let mut decoder = Decoder::new(table);
    let mut list = HeaderList::new(limit);
    let mut pool = ferrule::buffer::BufPool::new(256, 1);
    // bounded: every round consumes at least the 2-byte length
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_le_bytes(*len)).min(tail.len());
        let (block, tail) = tail.split_at(len);
        rest = tail;
        if let Err(e) = decoder.decode(block, &mut list) {
            assert!(e.is_connection());
            match e.code() {
                ErrorCode::CompressionError => {}
                ErrorCode::EnhanceYourCalm => {
                    assert!(list.size() > limit.saturating_mul(HARD_FACTOR).max(HARD_FLOOR));
                }
                c => panic!("HPACK error {c}"),
            }
            return;
        }
        assert!(decoder.table_size() <= table);
        let kept: usize = list.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
        assert!(kept <= limit && kept <= list.size());
        assert_eq!(list.too_large(), list.size() > limit);
        if !list.too_large() {
            assert_eq!(kept, list.size());
        }
        check_round_trip(&list);

        let mut head = Vec::new();
        let result = if small_buffer {
            let mut buf = pool.get();
            let r = request(&list, &opts, &mut buf);
            head.extend_from_slice(buf.bytes());
            pool.put(buf);
            r
        } else {
            request(&list, &opts, &mut head)
        };
        match result {
            Ok(r) => check_head(&list, &opts, &head, &r),
            Err(Refused::TooLarge) => assert!(
                list.too_large() || small_buffer || list.len() + 4 > opts.max_headers,
                "431 for a list within its limits"
            ),
            Err(Refused::Malformed(_)) => {}
        }
    }
});
