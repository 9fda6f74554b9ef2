//! A backend's HTTP/1.1 response head converted for an HTTP/2 client
//! (`connection::h2::convert::response`), answering a request whose method and extended-CONNECT
//! flag come from the first byte; also the rest of the input as a chunked body's trailer section
//! (`convert::response_trailers`).
//!
//! Invariants: no panic; an accepted head gives a field block that our decoder reads back with
//! `:status` first (3 digits, the head's status but 200 for a tunnel), then the head's fields in
//! order minus the connection-specific ones, with lowercase names and the same (trimmed) values;
//! a tunnel only for a 101 to an extended CONNECT, interim only for other 1xx, bodiless for 1xx,
//! 204, 304 and HEAD; no `content-length` for 1xx and 204; a refused head writes nothing.
#![no_main]

use ferrule::connection::h2::convert::{response, response_trailers, Answering};
use ferrule::connection::h2::hpack::{Decoder, Encoder, HeaderList};
use ferrule::http::{request, Method};
use libfuzzer_sys::fuzz_target;

const HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "sec-websocket-accept",
];

fn decode(block: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut d = Decoder::new(4096);
    let mut l = HeaderList::new(usize::MAX);
    d.decode(block, &mut l).expect("our own block decodes");
    l.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&o, input)) = data.split_first() else {
        return;
    };
    let ans = Answering {
        method: match o & 3 {
            0 => Method::Get,
            1 => Method::Head,
            2 => Method::Post,
            _ => Method::Connect,
        },
        extended_connect: o & 4 != 0,
    };
    let mut enc = Encoder::new();
    let mut block = Vec::new();

    if o & 8 != 0 {
        match response_trailers(input, &mut enc, &mut block) {
            Ok(0) => assert!(block.is_empty()),
            Ok(n) => {
                let fields = decode(&block);
                assert_eq!(fields.len(), n);
                for (name, _) in &fields {
                    assert!(!name.iter().any(u8::is_ascii_uppercase));
                    // trailers keep sec-websocket-accept: only a tunnel's head drops it
                    assert!(!HOP[..6].iter().any(|h| h.as_bytes() == name.as_slice()));
                }
            }
            Err(_) => assert!(block.is_empty()),
        }
        return;
    }

    let Ok(Some(end)) = request::find_head_end(input, 0) else {
        return;
    };
    let head = &input[..end];
    let Ok(r) = response(head, &ans, &mut enc, &mut block) else {
        assert!(block.is_empty());
        return;
    };
    assert_eq!(r.head_len, end);
    let mut storage = [httparse::EMPTY_HEADER; 256];
    let mut parsed = httparse::Response::new(&mut storage);
    assert_eq!(parsed.parse(head), Ok(httparse::Status::Complete(end)));
    let code = parsed.code.unwrap();
    assert_eq!(r.tunnel, code == 101);
    assert!(!r.tunnel || ans.extended_connect);
    assert_eq!(r.status, if r.tunnel { 200 } else { code });
    assert_eq!(r.interim, (100..200).contains(&code) && code != 101);
    assert_eq!(
        r.no_body,
        r.interim || code == 204 || code == 304 || ans.method == Method::Head
    );

    let fields = decode(&block);
    let (status, rest) = fields.split_first().expect(":status first");
    assert_eq!(status.0, b":status");
    assert_eq!(status.1, r.status.to_string().as_bytes());
    let connection_named: Vec<String> = parsed
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(|t| String::from_utf8_lossy(t).trim().to_ascii_lowercase())
        .collect();
    let expected: Vec<(Vec<u8>, Vec<u8>)> = parsed
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value))
        .filter(|(n, _)| !HOP[..6].contains(&n.as_str()))
        .filter(|(n, _)| !(r.tunnel && n == "sec-websocket-accept"))
        .filter(|(n, _)| !((r.interim || code == 204) && n == "content-length"))
        .filter(|(n, _)| !connection_named.contains(n))
        .map(|(n, v)| {
            let v = ferrule::http::headers::trim(v);
            (n.into_bytes(), v.to_vec())
        })
        .collect();
    assert_eq!(rest, expected.as_slice());
});
