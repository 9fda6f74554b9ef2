//! The response-head parser and rewriter (`http::response::rewrite`), answering a request whose
//! method, version, keep-alive, upgrade and sticky cookie come from the first input byte.
//!
//! Invariants: no panic; an accepted head is rewritten into one complete HTTP/1.1 head that
//! httparse reads back whole; the decisions hold together (a close-delimited or de-chunked body
//! never keeps the client connection; `Connection: close` is written exactly when it does not
//! stay open; a bodiless answer has no framing; a final response has a `Date`, and HSTS when the
//! first input byte's top bit asks for it); re-reading the rewritten head gives the same
//! framing whenever the body goes on verbatim, so the client finds the end where ferrule does.
#![no_main]

use ferrule::http::request;
use ferrule::http::response::{self, Answering, Relay, SetCookie};
use ferrule::http::{Added, Framing, Method, MAX_HEADERS};
use libfuzzer_sys::fuzz_target;

const DATE: &[u8; 29] = b"Sun, 06 Nov 1994 08:49:37 GMT";
const HSTS: &[u8; 38] = b"Strict-Transport-Security: max-age=1\r\n";

fuzz_target!(|data: &[u8]| {
    let Some((&opts, input)) = data.split_first() else {
        return;
    };
    let ex = Answering {
        method: match opts & 3 {
            0 => Method::Get,
            1 => Method::Head,
            2 => Method::Post,
            _ => Method::Other,
        },
        http10: opts & 4 != 0,
        keep_alive: opts & 8 != 0,
        upgrade: opts & 16 != 0,
        set_cookie: (opts & 32 != 0).then_some(SetCookie {
            name: b"FERRULE_BACKEND",
            id: u64::from(opts).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            max_age: 3600,
            secure: opts & 64 != 0,
        }),
        max_headers: ferrule::http::DEFAULT_MAX_HEADERS,
        added: Added {
            date: DATE,
            hsts: (opts & 128 != 0).then_some(HSTS.as_slice()),
        },
    };
    // as the session does: the head ends at the first empty line
    let Ok(Some(end)) = request::find_head_end(input, 0) else {
        return;
    };
    let head = &input[..end];
    let mut out = Vec::new();
    let Ok((r, len)) = response::rewrite(head, &ex, &mut out) else {
        return;
    };
    assert_eq!(len, end);
    assert!((100..=999).contains(&r.status));

    let mut fields = [httparse::EMPTY_HEADER; 256];
    let mut parsed = httparse::Response::new(&mut fields);
    match parsed.parse(&out) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, out.len()),
        other => panic!(
            "rewritten head does not parse: {other:?}: {:?}",
            String::from_utf8_lossy(&out)
        ),
    }
    assert_eq!(parsed.version, Some(1));
    assert_eq!(parsed.code, Some(r.status));

    let bodiless =
        r.interim || r.switching || r.status == 204 || r.status == 304 || ex.method == Method::Head;
    assert_eq!(bodiless, r.framing == Framing::None, "{r:?}");
    if r.switching {
        assert!(ex.upgrade && !r.keep_client && !r.reusable);
    }
    if r.framing == Framing::UntilClose || r.relay == Relay::Dechunk {
        assert!(!r.keep_client, "{r:?}");
    }
    if r.relay == Relay::Dechunk {
        assert!(ex.http10 && r.framing == Framing::Chunked);
    }
    if r.keep_client && !r.interim {
        assert!(ex.keep_alive);
    }
    // a final response has one `Date` (the backend's, or ferrule's), an interim one none
    // added by ferrule; the same for HSTS when it is on
    let count = |name: &str| {
        parsed
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
    };
    if !r.interim && !r.switching {
        assert!(count("date") >= 1, "{:?}", String::from_utf8_lossy(&out));
        if ex.added.hsts.is_some() {
            assert!(count("strict-transport-security") >= 1);
        }
    }
    let says_close = parsed.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("connection") && h.value.eq_ignore_ascii_case(b"close")
    });
    if !r.interim && !r.switching {
        assert_eq!(
            says_close,
            !r.keep_client,
            "{:?}",
            String::from_utf8_lossy(&out)
        );
    }

    // the client reading the rewritten head frames the body the same way (when it gets the body
    // as the backend sent it; an HTTP/1.0 client gets neither chunks nor their field)
    // (not past the most fields ferrule reads in a head: the sticky cookie may be one more)
    if r.relay == Relay::Verbatim && !ex.http10 && parsed.headers.len() <= MAX_HEADERS {
        // ferrule may add a field (`Connection: close`) to a head already at the backend's
        // limit: the re-reader has room for the most a head may have
        let same = Answering {
            set_cookie: None,
            max_headers: MAX_HEADERS,
            ..ex
        };
        let mut again = Vec::new();
        match response::rewrite(&out, &same, &mut again) {
            Ok((r2, len2)) => {
                assert_eq!(len2, out.len());
                assert_eq!(r2.framing, r.framing, "{:?}", String::from_utf8_lossy(&out));
                assert_eq!(r2.status, r.status);
            }
            Err(e) => panic!(
                "ferrule refuses its own response head: {e:?}: {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
});
