//! Tests of the HPACK decoder and encoder: RFC 7541 Appendix C (integers, single fields, and the
//! three request and response sequences with and without Huffman coding, with the dynamic table
//! after each block), the error cases of §4.2, §5 and §6, and the size bounds.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn fields(list: &HeaderList) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| {
            (
                String::from_utf8(n.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn table(d: &Decoder) -> Vec<(String, String)> {
    (0..d.table.len())
        .map(|i| {
            let (n, v) = d.table.get(i).unwrap();
            (
                String::from_utf8(n.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect()
}

fn code(r: Result<(), H2Error>) -> ErrorCode {
    r.unwrap_err().code()
}

#[test]
fn c1_integers() {
    assert_eq!(integer(&[0b0000_1010], 5).unwrap(), (10, 1));
    assert_eq!(
        integer(&[0b0001_1111, 0b1001_1010, 0b0000_1010], 5).unwrap(),
        (1337, 3)
    );
    assert_eq!(integer(&[42], 8).unwrap(), (42, 1));
    for (v, n) in [
        (10, 5),
        (1337, 5),
        (42, 8),
        (30, 5),
        (31, 5),
        (127, 7),
        (1 << 20, 4),
    ] {
        let mut out = Vec::new();
        put_integer(&mut out, v, n, 0);
        assert_eq!(integer(&out, n).unwrap(), (v, out.len()));
    }
    let mut out = Vec::new();
    put_integer(&mut out, 1337, 5, 0);
    assert_eq!(out, [0x1f, 0x9a, 0x0a]);
    // truncated, and too long
    assert!(integer(&[0x1f], 5).is_err());
    assert!(integer(&[0x1f, 0x80], 5).is_err());
    assert!(integer(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 5).is_err());
    assert!(integer(&[], 5).is_err());
}

#[test]
fn c2_single_fields() {
    let mut d = Decoder::new(4096);
    let mut l = HeaderList::new(16_384);
    // C.2.1 literal with indexing
    let b = hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
    d.decode(&b, &mut l).unwrap();
    assert_eq!(fields(&l), pairs(&[("custom-key", "custom-header")]));
    assert_eq!(d.table_size(), 55);
    // C.2.2 literal without indexing
    let mut d = Decoder::new(4096);
    d.decode(&hex("040c 2f73 616d 706c 652f 7061 7468"), &mut l)
        .unwrap();
    assert_eq!(fields(&l), pairs(&[(":path", "/sample/path")]));
    assert_eq!(d.table_size(), 0);
    // C.2.3 never indexed
    d.decode(&hex("1008 7061 7373 776f 7264 0673 6563 7265 74"), &mut l)
        .unwrap();
    assert_eq!(fields(&l), pairs(&[("password", "secret")]));
    assert_eq!(d.table_size(), 0);
    // C.2.4 indexed
    d.decode(&hex("82"), &mut l).unwrap();
    assert_eq!(fields(&l), pairs(&[(":method", "GET")]));
}

type Step<'a> = (
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a [(&'a str, &'a str)],
    usize,
);

fn sequence(table_size: usize, steps: &[Step<'_>]) {
    let mut d = Decoder::new(4096);
    d.table.set_max_size(table_size);
    let mut l = HeaderList::new(16_384);
    for (i, (block, want, want_table, size)) in steps.iter().enumerate() {
        d.decode(&hex(block), &mut l).unwrap();
        assert_eq!(fields(&l), pairs(want), "block {i}");
        assert_eq!(table(&d), pairs(want_table), "table after block {i}");
        assert_eq!(d.table_size(), *size, "table size after block {i}");
        assert_eq!(
            l.size(),
            want.iter()
                .map(|(n, v)| n.len() + v.len() + 32)
                .sum::<usize>()
        );
    }
}

const REQ1: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
];
const REQ2: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
    ("cache-control", "no-cache"),
];
const REQ3: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "www.example.com"),
    ("custom-key", "custom-value"),
];
const REQ_T1: &[(&str, &str)] = &[(":authority", "www.example.com")];
const REQ_T2: &[(&str, &str)] = &[
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];
const REQ_T3: &[(&str, &str)] = &[
    ("custom-key", "custom-value"),
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];

#[test]
fn c3_requests_without_huffman() {
    sequence(
        4096,
        &[
            (
                "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                REQ1,
                REQ_T1,
                57,
            ),
            ("8286 84be 5808 6e6f 2d63 6163 6865", REQ2, REQ_T2, 110),
            (
                "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
                REQ3,
                REQ_T3,
                164,
            ),
        ],
    );
}

#[test]
fn c4_requests_with_huffman() {
    sequence(
        4096,
        &[
            (
                "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
                REQ1,
                REQ_T1,
                57,
            ),
            ("8286 84be 5886 a8eb 1064 9cbf", REQ2, REQ_T2, 110),
            (
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
                REQ3,
                REQ_T3,
                164,
            ),
        ],
    );
}

const DATE1: &str = "Mon, 21 Oct 2013 20:13:21 GMT";
const DATE2: &str = "Mon, 21 Oct 2013 20:13:22 GMT";
const LOC: &str = "https://www.example.com";
const COOKIE: &str = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const RESP1: &[(&str, &str)] = &[
    (":status", "302"),
    ("cache-control", "private"),
    ("date", DATE1),
    ("location", LOC),
];
const RESP2: &[(&str, &str)] = &[
    (":status", "307"),
    ("cache-control", "private"),
    ("date", DATE1),
    ("location", LOC),
];
const RESP3: &[(&str, &str)] = &[
    (":status", "200"),
    ("cache-control", "private"),
    ("date", DATE2),
    ("location", LOC),
    ("content-encoding", "gzip"),
    ("set-cookie", COOKIE),
];
const RESP_T1: &[(&str, &str)] = &[
    ("location", LOC),
    ("date", DATE1),
    ("cache-control", "private"),
    (":status", "302"),
];
const RESP_T2: &[(&str, &str)] = &[
    (":status", "307"),
    ("location", LOC),
    ("date", DATE1),
    ("cache-control", "private"),
];
const RESP_T3: &[(&str, &str)] = &[
    ("set-cookie", COOKIE),
    ("content-encoding", "gzip"),
    ("date", DATE2),
];

#[test]
fn c5_responses_without_huffman_evicting() {
    sequence(
        256,
        &[
            (
                "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
                 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
                 6c65 2e63 6f6d",
                RESP1,
                RESP_T1,
                222,
            ),
            ("4803 3330 37c1 c0bf", RESP2, RESP_T2, 222),
            (
                "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
                 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
                 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
                 3d31",
                RESP3,
                RESP_T3,
                215,
            ),
        ],
    );
}

#[test]
fn c6_responses_with_huffman_evicting() {
    sequence(
        256,
        &[
            (
                "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
                 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
                RESP1,
                RESP_T1,
                222,
            ),
            ("4883 640e ffc1 c0bf", RESP2, RESP_T2, 222),
            (
                "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
                 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
                 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
                RESP3,
                RESP_T3,
                215,
            ),
        ],
    );
}

#[test]
fn malformed_blocks_are_compression_errors() {
    let bad: &[&[u8]] = &[
        &[0x80],                                     // index 0
        &[0xbe],                                     // index 62, empty dynamic table
        &[0xff, 0x80, 0x80],                         // truncated integer
        &[0x3f],                                     // size update, truncated integer
        &[0x40, 0x01, b'a'],                         // literal: the value is missing
        &[0x40, 0x05, b'a'],                         // string longer than the block
        &[0x00, 0x81, 0x00, 0x00],                   // Huffman padding of zeros
        &[0x00, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00], // EOS in a Huffman string
        &[0x3f, 0xe2, 0x1f],                         // size update to 4097 > 4096
        &[0x82, 0x20],                               // size update after a field
        &[0x20, 0x20, 0x20, 0x82],                   // three size updates
        &[0x0f, 0x2f, 0x00, 0x00], // literal name index 62 with an empty dynamic table
    ];
    for b in bad {
        let mut d = Decoder::new(4096);
        let mut l = HeaderList::new(16_384);
        assert_eq!(
            code(d.decode(b, &mut l)),
            ErrorCode::CompressionError,
            "{b:02x?}"
        );
    }
    // two updates at the start are fine, and the table shrinks
    let mut d = Decoder::new(4096);
    let mut l = HeaderList::new(16_384);
    d.decode(&hex("4001 6101 62"), &mut l).unwrap();
    assert_eq!(d.table_size(), 34);
    d.decode(&[0x20, 0x3f, 0x01, 0x82], &mut l).unwrap();
    assert_eq!(d.table_size(), 0);
    assert_eq!(fields(&l), pairs(&[(":method", "GET")]));
}

#[test]
fn a_list_over_its_limit_is_flagged_and_the_table_kept_in_step() {
    let mut d = Decoder::new(4096);
    // limit: two small fields (each 32 + len)
    let mut l = HeaderList::new(60);
    // :method GET (42), then a literal with indexing x: y (34), then :path / (38)
    let block = hex("82 4001 7801 79 84");
    d.decode(&block, &mut l).unwrap();
    assert!(l.too_large());
    assert_eq!(fields(&l), pairs(&[(":method", "GET")]));
    assert_eq!(l.size(), 42 + 34 + 38);
    // the indexed literal still went into the table: the next block can use it
    let mut l = HeaderList::new(16_384);
    d.decode(&[0xbe], &mut l).unwrap();
    assert_eq!(fields(&l), pairs(&[("x", "y")]));
    assert!(!l.too_large());
    // clearing resets the flag
    l.clear();
    assert!(!l.too_large() && l.is_empty() && l.size() == 0);
}

#[test]
fn an_hpack_bomb_ends_the_connection() {
    // one 4000-byte entry, then one-byte references to it: each decodes to 4 KB
    let mut d = Decoder::new(4096);
    let mut block = vec![0x40, 0x01, b'x', 0x7f];
    let mut rest = Vec::new();
    put_integer(&mut rest, 4000, 7, 0);
    block.extend_from_slice(&rest[1..]);
    block.extend_from_slice(&[b'v'; 4000]);
    block.extend(std::iter::repeat_n(0xbe, 1000));
    let mut l = HeaderList::new(8192);
    assert_eq!(code(d.decode(&block, &mut l)), ErrorCode::EnhanceYourCalm);
    // the bound is 4 times the limit, at least 64 KiB: 16 references are within it
    let mut d = Decoder::new(4096);
    block.truncate(block.len() - 1000 + 15);
    let mut l = HeaderList::new(8192);
    d.decode(&block, &mut l).unwrap();
    assert!(l.too_large());
    assert_eq!(l.len(), 2);
}

fn round_trip(status: u16, f: &[(&[u8], &[u8])]) -> Vec<(String, String)> {
    let mut e = Encoder::new();
    let mut out = Vec::new();
    e.begin(&mut out);
    e.status(status, &mut out);
    for (n, v) in f {
        e.field(n, v, &mut out);
    }
    let mut d = Decoder::new(4096);
    let mut l = HeaderList::new(1 << 20);
    d.decode(&out, &mut l).unwrap();
    assert_eq!(d.table_size(), 0);
    fields(&l)
}

#[test]
fn encoder_round_trips_and_lowercases_names() {
    let got = round_trip(
        200,
        &[
            (b"Content-Type", b"text/html; charset=utf-8"),
            (b"X-Custom-Thing", b"Value With Caps"),
            (b"Set-Cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
            (b"content-length", b"0"),
            (b"x-empty", b""),
        ],
    );
    assert_eq!(
        got,
        pairs(&[
            (":status", "200"),
            ("content-type", "text/html; charset=utf-8"),
            ("x-custom-thing", "Value With Caps"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("content-length", "0"),
            ("x-empty", ""),
        ])
    );
    for s in [
        100, 103, 200, 201, 204, 206, 302, 304, 400, 404, 431, 500, 502, 599,
    ] {
        assert_eq!(round_trip(s, &[]), pairs(&[(":status", &s.to_string())]));
    }
}

#[test]
fn encoder_output_is_compact() {
    let mut e = Encoder::new();
    let mut out = Vec::new();
    e.begin(&mut out);
    e.status(200, &mut out);
    // the size update to 0, then index 8
    assert_eq!(out, [0x20, 0x88]);
    out.clear();
    e.begin(&mut out);
    e.status(404, &mut out);
    e.field(b"content-length", b"0", &mut out);
    // no second size update; content-length is static index 28: 0000 1111 + 13, then "0"
    assert_eq!(out, [0x8d, 0x0f, 0x0d, 0x01, b'0']);
    e.peer_table_size();
    out.clear();
    e.begin(&mut out);
    assert_eq!(out, [0x20]);
    // a set-cookie is never indexed (0001 prefix)
    out.clear();
    e.field(b"set-cookie", b"", &mut out);
    assert_eq!(out, [0x1f, 0x28, 0x00]);
}

#[test]
fn a_value_seen_before_under_a_static_name_is_encoded_the_same() {
    // the memo of the last value per static name gives the very bytes a fresh coding gives
    let mut memo = Encoder::new();
    let fields: [(&[u8], &[u8]); 7] = [
        (b"content-type", b"text/plain"),
        (b"date", b"Sun, 06 Dec 2026 19:00:00 GMT"),
        (b"content-type", b"text/plain"),
        (b"date", b"Sun, 06 Dec 2026 19:00:01 GMT"),
        (b"content-type", b""),
        (b"content-type", b""),
        (b"x-backend", b"a"),
    ];
    for (name, value) in fields {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        memo.field(name, value, &mut a);
        Encoder::new().field(name, value, &mut b);
        assert_eq!(a, b, "{:?}", String::from_utf8_lossy(value));
    }
}
