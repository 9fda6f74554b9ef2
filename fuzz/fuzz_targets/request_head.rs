//! The request-head parser and rewriter: `find_head_end` fed in arbitrary pieces (as the session
//! feeds it, searching only the new bytes), `check_partial`, then `rewrite` with client settings
//! drawn from the first input byte.
//!
//! Invariants: no panic; the incremental search finds what a one-shot search finds; a head that is
//! accepted is rewritten into a complete HTTP/1.1 head that ends where the rewrite says, and that
//! parses again (with httparse and with ferrule itself) to the same framing, so the backend finds
//! the request's end where ferrule does; at most one framing field goes on.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrule::client_ip::TrustedProxies;
use ferrule::http::request::{self, ClientInfo, KeySource, Limits, Reject};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&opts, rest)) = data.split_first() else {
        return;
    };
    let Some((&cut, input)) = rest.split_first() else {
        return;
    };
    let limits = if opts & 0x40 != 0 {
        Limits {
            max_head: 256,
            max_uri: 64,
            max_headers: ferrule::http::DEFAULT_MAX_HEADERS,
            max_body: 0,
        }
    } else {
        Limits {
            max_head: 16384,
            max_uri: 8192,
            max_headers: ferrule::http::DEFAULT_MAX_HEADERS,
            max_body: 0,
        }
    };
    let trusted = if opts & 0x20 != 0 {
        TrustedProxies::parse(["10.0.0.0/8", "::1/128"]).unwrap()
    } else {
        TrustedProxies::EMPTY
    };
    let router = ferrule::http::request::OnePool(ferrule::http::request::Routed {
        pool: 0,
        route: None,
        strip: 0,
        key: match (opts >> 2) & 3 {
            0 => KeySource::ClientIp,
            1 => KeySource::Header(b"X-User"),
            _ => KeySource::Cookie(b"sid"),
        },
        // the rate limit's key: another source than the hash key's, when the byte says so
        limit_key: match (opts >> 6) & 1 {
            0 => KeySource::ClientIp,
            _ => KeySource::Header(b"X-Api-Key"),
        },
        sticky_cookie: (opts & 0x10 != 0).then_some(&b"FERRULE_BACKEND"[..]),
        strip_sticky_cookie: opts & 0x80 != 0,
    });
    let client = ClientInfo {
        ip: if opts & 1 != 0 {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))
        },
        tls: opts & 2 != 0,
        router: &router,
        trusted: &trusted,
        request_id: Some(b"0123456789abcdef0123456789abcdef"),
    };

    // one-shot search, then the session's incremental one (pieces of `cut` bytes)
    let whole = request::find_head_end(input, 0);
    let piece = usize::from(cut).max(1);
    let mut scan = 0;
    let mut avail = piece.min(input.len());
    let incremental = loop {
        match request::find_head_end(&input[..avail], scan) {
            Ok(None) if avail < input.len() => {
                scan = avail;
                avail = (avail + piece).min(input.len());
            }
            other => break other,
        }
    };
    assert_eq!(whole, incremental, "the incremental search disagrees");
    let Ok(Some(end)) = whole else {
        if let Ok(None) = whole {
            let line = input.contains(&b'\n');
            let _ = request::check_partial(input.len(), line, &limits);
        }
        return;
    };
    assert!(end <= input.len() && end >= 2);
    let head = &input[..end];

    let mut out = Vec::new();
    let (req, len) = match request::rewrite(head, &limits, &client, &mut out) {
        Ok(Some(parsed)) => parsed,
        Ok(None) | Err(Reject(_)) => return,
    };
    assert_eq!(len, end, "the rewrite ended the head elsewhere");
    assert!(
        out.ends_with(b"\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );
    if req.needs_host {
        // the session writes the backend's authority (`set_host`) before the final empty line
        out.truncate(out.len() - 2);
        out.extend_from_slice(b"Host: backend:80\r\n\r\n");
    }

    // the backend's view: httparse reads one complete head, exactly `out`
    let mut fields = [httparse::EMPTY_HEADER; 256];
    let mut parsed = httparse::Request::new(&mut fields);
    match parsed.parse(&out) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, out.len()),
        other => panic!(
            "forwarded head does not parse: {other:?}: {:?}",
            String::from_utf8_lossy(&out)
        ),
    }
    assert_eq!(parsed.version, Some(1), "not sent as HTTP/1.1");
    let framing_fields = parsed
        .headers
        .iter()
        .filter(|h| {
            h.name.eq_ignore_ascii_case("content-length")
                || h.name.eq_ignore_ascii_case("transfer-encoding")
        })
        .count();
    assert!(framing_fields <= 1, "{:?}", String::from_utf8_lossy(&out));

    // ferrule reading its own output (as a chained ferrule would) frames it the same way
    let big = Limits {
        max_head: usize::MAX,
        max_uri: usize::MAX,
        // the forwarded head has ferrule's own fields on top of the client's: a chained ferrule
        // needs room for them (up to the most a head may have)
        max_headers: ferrule::http::MAX_HEADERS,
        max_body: 0,
    };
    if parsed.headers.len() > ferrule::http::MAX_HEADERS {
        // ferrule's own fields took it past the most a head may have: a chained ferrule answers
        // 431, as it would to a client sending that many
        return;
    }
    let mut again = Vec::new();
    match request::rewrite(&out, &big, &client, &mut again) {
        Ok(Some((req2, len2))) => {
            assert_eq!(len2, out.len());
            assert_eq!(
                req2.framing,
                req.framing,
                "{:?}",
                String::from_utf8_lossy(&out)
            );
            assert_eq!(req2.method, req.method);
            assert_eq!(req2.upgrade, req.upgrade);
        }
        other => panic!(
            "the forwarded head is refused by ferrule itself: {other:?}: {:?}",
            String::from_utf8_lossy(&out)
        ),
    }
});
