//! Tests of the HTTP/2 ↔ HTTP/1.1 conversions: the heads written, each RFC 9113 §8 rule that
//! makes a request malformed, ferrule's own request parser accepting what is written, and the
//! response side read back through the HPACK decoder.

use super::*;
use crate::connection::h2::hpack::{Decoder, Encoder, HeaderList};
use crate::http::Method;

fn list(fields: &[(&str, &str)]) -> HeaderList {
    let mut l = HeaderList::new(16_384);
    for (n, v) in fields {
        l.push(n.as_bytes(), v.as_bytes());
    }
    l
}

fn opts(end_stream: bool) -> RequestOptions {
    RequestOptions {
        end_stream,
        connect_protocol: true,
        max_headers: 100,
        nonce: *b"0123456789abcdef",
    }
}

fn convert(fields: &[(&str, &str)], end_stream: bool) -> Result<(Request, String), Refused> {
    let mut out = Vec::new();
    let r = request(&list(fields), &opts(end_stream), &mut out)?;
    assert_eq!(r.head_len, out.len());
    Ok((r, String::from_utf8(out).unwrap()))
}

fn malformed(fields: &[(&str, &str)], end_stream: bool) -> &'static str {
    match convert(fields, end_stream) {
        Err(Refused::Malformed(why)) => why,
        other => panic!("{fields:?} not malformed: {other:?}"),
    }
}

const GET: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":authority", "example.com"),
    (":path", "/a?b=1"),
];

fn with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    GET.iter().chain(extra).copied().collect()
}

/// ferrule's HTTP/1.1 request parser takes the head as any other.
fn accepted_by_ferrule(head: &str) -> crate::http::request::RequestHead {
    use crate::http::request::{rewrite, ClientInfo, KeySource, Limits};
    let limits = Limits {
        max_head: 16_384,
        max_uri: 8192,
        max_headers: 100,
        max_body: 0,
    };
    let trusted = crate::client_ip::TrustedProxies::default();
    let router = crate::http::request::OnePool(crate::http::request::Routed {
        pool: 0,
        route: None,
        strip: 0,
        key: KeySource::ClientIp,
        limit_key: KeySource::ClientIp,
        sticky_cookie: None,
        strip_sticky_cookie: false,
    });
    let client = ClientInfo {
        ip: "127.0.0.1".parse().unwrap(),
        tls: true,
        router: &router,
        trusted: &trusted,
        request_id: None,
    };
    let mut out = Vec::new();
    let (parsed, len) = rewrite(head.as_bytes(), &limits, &client, &mut out)
        .unwrap()
        .unwrap();
    assert_eq!(len, head.len());
    parsed
}

#[test]
fn a_get_becomes_a_request_line_and_host() {
    let (r, head) = convert(&with(&[("user-agent", "h2load"), ("accept", "*/*")]), true).unwrap();
    assert_eq!(
        head,
        "GET /a?b=1 HTTP/1.1\r\nhost: example.com\r\nuser-agent: h2load\r\naccept: */*\r\n\r\n"
    );
    assert_eq!(r.method, Method::Get);
    assert!(!r.chunked && !r.extended_connect && r.content_length.is_none());
    let h = accepted_by_ferrule(&head);
    assert_eq!(h.method, Method::Get);
    assert_eq!(h.framing, crate::http::Framing::None);
}

#[test]
fn a_body_without_length_goes_chunked_and_a_length_is_kept() {
    let post = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/up"),
        (":authority", "h:8080"),
    ];
    let (r, head) = convert(&post, false).unwrap();
    assert!(r.chunked);
    assert!(
        head.ends_with("transfer-encoding: chunked\r\n\r\n"),
        "{head}"
    );
    assert_eq!(
        accepted_by_ferrule(&head).framing,
        crate::http::Framing::Chunked
    );
    let mut with_len = post.to_vec();
    with_len.push(("content-length", "5"));
    let (r, head) = convert(&with_len, false).unwrap();
    assert!(!r.chunked);
    assert_eq!(r.content_length, Some(5));
    assert!(!head.contains("transfer-encoding"));
    assert_eq!(
        accepted_by_ferrule(&head).framing,
        crate::http::Framing::Length(5)
    );
    // no body at all: neither
    let (r, head) = convert(&post, true).unwrap();
    assert!(!r.chunked && !head.contains("transfer-encoding"));
}

#[test]
fn cookies_are_joined_into_one_field() {
    let (_, head) = convert(
        &with(&[
            ("cookie", "a=1"),
            ("x-y", "z"),
            ("cookie", "b=2"),
            ("cookie", "c=3"),
        ]),
        true,
    )
    .unwrap();
    assert!(
        head.ends_with("host: example.com\r\ncookie: a=1; b=2; c=3\r\nx-y: z\r\n\r\n"),
        "{head}"
    );
    assert_eq!(head.matches("cookie").count(), 1);
}

#[test]
fn host_without_authority_and_te_trailers_pass() {
    let fields = [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        ("host", "example.org"),
        ("te", "trailers"),
    ];
    let (_, head) = convert(&fields, true).unwrap();
    assert_eq!(
        head,
        "GET / HTTP/1.1\r\nhost: example.org\r\nte: trailers\r\n\r\n"
    );
    // the same host as :authority is dropped, not doubled
    let (_, head) = convert(&with(&[("host", "EXAMPLE.com")]), true).unwrap();
    assert_eq!(head.matches("host").count(), 1);
    // OPTIONS *
    let fields = [(":method", "OPTIONS"), (":scheme", "http"), (":path", "*")];
    let (_, head) = convert(&fields, true).unwrap();
    assert!(head.starts_with("OPTIONS * HTTP/1.1\r\n"));
}

#[test]
fn malformed_requests_are_stream_protocol_errors() {
    let m = |extra: &[(&'static str, &'static str)]| malformed(&with(extra), true);
    m(&[("Content-Type", "x")]);
    m(&[("bad name", "x")]);
    for f in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ] {
        let why = malformed(&with(&[(f, "x")]), true);
        assert_eq!(why, "connection-specific field", "{f}");
    }
    assert_eq!(m(&[("te", "gzip")]), "te other than trailers");
    assert_eq!(m(&[("te", "trailers, deflate")]), "te other than trailers");
    m(&[("x", "a\r\nevil: 1")]);
    m(&[("x", "a\nb")]);
    m(&[("x", "a\0b")]);
    // other controls: the HTTP/1.1 side refuses them (the fuzzer found a \x05)
    m(&[("x", "a\x05b")]);
    m(&[("x", "a\x7fb")]);
    m(&[("x", " leading")]);
    m(&[("x", "trailing\t")]);
    m(&[("host", "other.example")]);
    m(&[("content-length", "abc")]);
    m(&[("content-length", "5"), ("content-length", "6")]);
    // END_STREAM on the HEADERS, but a length
    assert_eq!(m(&[("content-length", "5")]), "content-length with no DATA");
    // pseudo-headers: after a regular field, unknown, a response's, twice, missing
    let late = [
        (":method", "GET"),
        ("x", "1"),
        (":path", "/"),
        (":scheme", "http"),
    ];
    assert_eq!(
        malformed(&late, true),
        "pseudo-header after a regular field"
    );
    m(&[(":status", "200")]);
    m(&[(":foo", "x")]);
    m(&[(":method", "GET")]);
    malformed(&[(":scheme", "http"), (":path", "/")], true);
    malformed(&[(":method", "GET"), (":path", "/")], true);
    malformed(&[(":method", "GET"), (":scheme", "http")], true);
    malformed(
        &[(":method", "GET"), (":scheme", "http"), (":path", "")],
        true,
    );
    malformed(
        &[(":method", "GET"), (":scheme", "http"), (":path", "a")],
        true,
    );
    malformed(
        &[(":method", "GET"), (":scheme", "http"), (":path", "*")],
        true,
    );
    malformed(
        &[(":method", "GET"), (":scheme", "http"), (":path", "/a b")],
        true,
    );
    malformed(
        &[(":method", "G T"), (":scheme", "http"), (":path", "/")],
        true,
    );
    malformed(
        &[(":method", "GET"), (":scheme", "1x"), (":path", "/")],
        true,
    );
    let userinfo = [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "user@example.com"),
    ];
    assert_eq!(malformed(&userinfo, true), "bad :authority");
    // CONNECT: only :authority; :protocol only with CONNECT and the setting
    malformed(
        &[
            (":method", "CONNECT"),
            (":authority", "h:443"),
            (":path", "/"),
        ],
        true,
    );
    malformed(&[(":method", "CONNECT")], true);
    m(&[(":protocol", "websocket")]);
    let err = Refused::Malformed("x").stream_error(5).unwrap();
    assert_eq!(err.code(), crate::connection::h2::ErrorCode::ProtocolError);
    assert!(!err.is_connection());
    assert_eq!(Refused::TooLarge.stream_error(5), None);
}

#[test]
fn plain_connect_keeps_its_authority() {
    let (r, head) = convert(&[(":method", "CONNECT"), (":authority", "h:443")], false).unwrap();
    assert_eq!(head, "CONNECT h:443 HTTP/1.1\r\nhost: h:443\r\n\r\n");
    assert!(!r.chunked && !r.extended_connect);
    assert_eq!(r.method, Method::Connect);
}

#[test]
fn extended_connect_becomes_a_websocket_upgrade() {
    let ws = [
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "https"),
        (":path", "/chat"),
        (":authority", "example.com"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-protocol", "chat"),
        ("sec-websocket-key", "client-sent-one"),
    ];
    let (r, head) = convert(&ws, false).unwrap();
    assert!(r.extended_connect && !r.chunked);
    assert_eq!(r.method, Method::Get);
    assert_eq!(
        head,
        "GET /chat HTTP/1.1\r\nhost: example.com\r\nsec-websocket-version: 13\r\n\
         sec-websocket-protocol: chat\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n\r\n"
    );
    let h = accepted_by_ferrule(&head);
    assert!(h.upgrade);
    // without the client's version, 13 is added
    let (_, head) = convert(&ws[..5], false).unwrap();
    assert!(head.contains("sec-websocket-version: 13\r\n"));
    // without our setting, :protocol is malformed
    let mut o = opts(false);
    o.connect_protocol = false;
    assert!(matches!(
        request(&list(&ws), &o, &mut Vec::new()),
        Err(Refused::Malformed(_))
    ));
}

#[test]
fn base64_of_the_nonce() {
    assert_eq!(&request::base64_16(&[0; 16]), b"AAAAAAAAAAAAAAAAAAAAAA==");
    assert_eq!(
        &request::base64_16(&[0xff; 16]),
        b"/////////////////////w=="
    );
}

#[test]
fn too_large_is_431() {
    // over max_header_count
    let many: Vec<(String, String)> = (0..101).map(|i| (format!("x-{i}"), "v".into())).collect();
    let mut l = list(GET);
    for (n, v) in &many {
        l.push(n.as_bytes(), v.as_bytes());
    }
    assert_eq!(
        request(&l, &opts(true), &mut Vec::new()),
        Err(Refused::TooLarge)
    );
    // a list the decoder flagged
    let mut l = HeaderList::new(40);
    l.push(b":method", b"GET");
    l.push(b":path", b"/");
    assert!(l.too_large());
    assert_eq!(
        request(&l, &opts(true), &mut Vec::new()),
        Err(Refused::TooLarge)
    );
    // more than the buffer holds
    let mut pool = crate::buffer::BufPool::new(64, 1);
    let mut buf = pool.get();
    let big = "v".repeat(100);
    let l = list(&with(&[("x", big.as_str())]));
    assert_eq!(request(&l, &opts(true), &mut buf), Err(Refused::TooLarge));
    let mut buf = pool.get();
    let l = list(GET);
    let r = request(&l, &opts(true), &mut buf).unwrap();
    assert_eq!(buf.bytes().len(), r.head_len);
}

#[test]
fn request_trailers_end_the_chunked_body() {
    let mut out = Vec::new();
    request_trailers(&list(&[("x-sum", "abc")]), &mut out).unwrap();
    assert_eq!(out, b"0\r\nx-sum: abc\r\n\r\n");
    let mut out = Vec::new();
    request_trailers(&list(&[]), &mut out).unwrap();
    assert_eq!(out, LAST_CHUNK);
    for bad in [
        (":path", "/"),
        ("Upper", "x"),
        ("content-length", "1"),
        ("x", "a\nb"),
    ] {
        assert!(matches!(
            request_trailers(&list(&[bad]), &mut Vec::new()),
            Err(Refused::Malformed(_))
        ));
    }
}

#[test]
fn body_length_against_content_length() {
    let mut b = BodyLength::new(Some(10));
    b.data(4, false).unwrap();
    b.data(6, false).unwrap();
    b.data(0, true).unwrap();
    let mut b = BodyLength::new(Some(10));
    assert!(b.data(11, false).is_err());
    let mut b = BodyLength::new(Some(10));
    assert!(b.data(9, true).is_err());
    let mut b = BodyLength::new(None);
    b.data(1 << 40, true).unwrap();
    assert_eq!(b.seen(), 1 << 40);
}

#[test]
fn chunks() {
    for (n, want) in [
        (1, "1\r\n"),
        (15, "f\r\n"),
        (16, "10\r\n"),
        (16_384, "4000\r\n"),
        (usize::MAX, "ffffffffffffffff\r\n"),
    ] {
        assert_eq!(chunk_head(n).as_bytes(), want.as_bytes());
    }
    let mut out = Vec::new();
    assert!(chunk(&mut out, b""));
    assert!(out.is_empty());
    assert!(chunk(&mut out, b"hello"));
    assert_eq!(out, b"5\r\nhello\r\n");
}

fn decode(block: &[u8]) -> Vec<(String, String)> {
    let mut d = Decoder::new(4096);
    let mut l = HeaderList::new(1 << 16);
    d.decode(block, &mut l).unwrap();
    l.iter()
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

const GET_ANS: Answering = Answering {
    method: Method::Get,
    extended_connect: false,
};

fn convert_response(
    head: &str,
    ans: &Answering,
) -> Result<(Response, Vec<(String, String)>), Invalid> {
    let mut enc = Encoder::new();
    let mut block = Vec::new();
    let r = response(head.as_bytes(), ans, &mut enc, &mut block)?;
    Ok((r, decode(&block)))
}

#[test]
fn a_response_loses_its_hop_by_hop_fields() {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive, X-Hop\r\n\
                Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nX-Hop: 1\r\n\
                Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nUpgrade: h2c\r\nX-End: e\r\n\r\nbody";
    let (r, fields) = convert_response(head, &GET_ANS).unwrap();
    assert_eq!(
        fields,
        pairs(&[
            (":status", "200"),
            ("content-type", "text/plain"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("x-end", "e"),
        ])
    );
    assert_eq!(r.head_len, head.len() - 4);
    assert!(!r.interim && !r.no_body && !r.tunnel);
    assert_eq!(r.content_length, None);
}

#[test]
fn bodiless_and_interim_responses() {
    let (r, f) = convert_response(
        "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
        &GET_ANS,
    )
    .unwrap();
    assert!(r.no_body && !r.interim);
    assert_eq!(f, pairs(&[(":status", "204")]));
    let (r, f) = convert_response(
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
        &GET_ANS,
    )
    .unwrap();
    assert!(r.no_body);
    assert_eq!(r.content_length, Some(7));
    assert_eq!(f, pairs(&[(":status", "304"), ("content-length", "7")]));
    let head_ans = Answering {
        method: Method::Head,
        extended_connect: false,
    };
    let (r, _) =
        convert_response("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", &head_ans).unwrap();
    assert!(r.no_body);
    assert_eq!(r.content_length, Some(9));
    for code in [100, 103] {
        let head = format!("HTTP/1.1 {code} Whatever\r\nLink: </a>; rel=preload\r\n\r\n");
        let (r, f) = convert_response(&head, &GET_ANS).unwrap();
        assert!(r.interim && r.no_body && r.status == code);
        assert_eq!(f[0], (":status".into(), code.to_string()));
    }
    let (r, _) =
        convert_response("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", &GET_ANS).unwrap();
    assert_eq!(r.content_length, Some(12));
}

#[test]
fn switching_protocols_only_for_an_extended_connect() {
    let head = "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
                Sec-WebSocket-Accept: abc=\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
    assert!(convert_response(head, &GET_ANS).is_err());
    let ws = Answering {
        method: Method::Get,
        extended_connect: true,
    };
    let (r, f) = convert_response(head, &ws).unwrap();
    assert!(r.tunnel && !r.no_body && !r.interim && r.status == 200);
    assert_eq!(
        f,
        pairs(&[(":status", "200"), ("sec-websocket-protocol", "chat")])
    );
    // a 2xx that did not switch would tell the client its tunnel is open
    assert!(convert_response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &ws).is_err());
    // a refusal passes as it is
    let (r, _) =
        convert_response("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", &ws).unwrap();
    assert!(!r.tunnel && r.status == 403);
}

#[test]
fn bad_responses_are_invalid_and_leave_the_encoder_alone() {
    let mut enc = Encoder::new();
    let mut block = Vec::new();
    for bad in [
        "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n",
        "HTTP/1.1 200 OK\r\n",
        "garbage\r\n\r\n",
    ] {
        assert!(
            response(bad.as_bytes(), &GET_ANS, &mut enc, &mut block).is_err(),
            "{bad:?}"
        );
        assert!(block.is_empty());
    }
    // the size update is still due
    response(b"HTTP/1.1 200 OK\r\n\r\n", &GET_ANS, &mut enc, &mut block).unwrap();
    assert_eq!(block, [0x20, 0x88]);
}

#[test]
fn response_trailers_become_a_field_block() {
    let mut enc = Encoder::new();
    let mut block = Vec::new();
    let n = response_trailers(
        b"X-Sum: abc\r\nContent-Length: 5\r\nGrpc-Status: 0\r\n\r\n",
        &mut enc,
        &mut block,
    )
    .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        decode(&block),
        pairs(&[("x-sum", "abc"), ("grpc-status", "0")])
    );
    let mut block = Vec::new();
    assert_eq!(response_trailers(b"\r\n", &mut enc, &mut block), Ok(0));
    assert!(block.is_empty());
    assert!(response_trailers(b"X: 1\r\n", &mut enc, &mut block).is_err());
}
