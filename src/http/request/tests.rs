//! Tests of the request head: its checks, the rewrite, and the route the rewrite asks for.

mod unit {
    use super::super::*;
    use std::net::Ipv4Addr;

    const LIMITS: Limits = Limits {
        max_head: 16384,
        max_uri: 8192,
        max_headers: crate::http::DEFAULT_MAX_HEADERS,
        max_body: 0,
    };
    const ROUTER: OnePool<'static> = OnePool(Routed {
        pool: 0,
        route: None,
        strip: 0,
        key: KeySource::ClientIp,
        limit_key: KeySource::ClientIp,
        sticky_cookie: None,
        strip_sticky_cookie: false,
    });
    const CLIENT: ClientInfo = ClientInfo {
        ip: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
        tls: false,
        router: &ROUTER,
        trusted: &crate::client_ip::TrustedProxies::EMPTY,
        request_id: None,
    };

    fn go(head: &str) -> Result<(RequestHead, String), Reject> {
        let bytes = head.as_bytes();
        let end = find_head_end(bytes, 0)?.expect("complete head");
        let mut out = Vec::new();
        let (req, len) = rewrite(&bytes[..end], &LIMITS, &CLIENT, &mut out)?.expect("request");
        assert_eq!(len, end);
        Ok((req, String::from_utf8(out).expect("utf8")))
    }

    #[test]
    fn simple_get_is_rewritten() {
        let (req, out) =
            go("GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n").unwrap();
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.framing, Framing::None);
        assert!(req.keep_alive && !req.http10 && !req.upgrade);
        assert_eq!(
            out,
            "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\
             X-Forwarded-For: 10.1.2.3\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: example.com\r\n\r\n"
        );
    }

    #[test]
    fn request_id_is_added_when_absent_and_kept_when_present_and_seen() {
        let client = ClientInfo {
            request_id: Some(b"0123456789abcdef0123456789abcdef"),
            ..CLIENT
        };
        let mut out = Vec::new();
        let head = b"GET /p HTTP/1.1\r\nHost: h\r\nUser-Agent:  ua/1 \r\nReferer: r\r\n\r\n";
        let (_, _, seen) = rewrite_seen(head, &LIMITS, &client, &mut out)
            .unwrap()
            .unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.ends_with(
                "X-Forwarded-Host: h\r\nX-Request-Id: 0123456789abcdef0123456789abcdef\r\n\r\n"
            ),
            "{text}"
        );
        assert_eq!(
            (seen.method, seen.target, seen.host),
            (&b"GET"[..], &b"/p"[..], &b"h"[..])
        );
        assert_eq!(seen.user_agent, Some(&b"ua/1"[..]));
        assert_eq!(seen.referer, Some(&b"r"[..]));
        assert_eq!(
            seen.request_id,
            Some(&b"0123456789abcdef0123456789abcdef"[..])
        );

        let head = b"GET / HTTP/1.1\r\nx-request-id: mine\r\nHost: h\r\n\r\n";
        let (_, _, seen) = rewrite_seen(head, &LIMITS, &client, &mut out)
            .unwrap()
            .unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text.matches("equest-id").count() + text.matches("equest-Id").count(),
            1
        );
        assert!(text.contains("\r\nx-request-id: mine\r\n"), "{text}");
        assert_eq!(seen.request_id, Some(&b"mine"[..]));

        // off: nothing added
        let (_, out) = go("GET / HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert!(!out.to_ascii_lowercase().contains("x-request-id"), "{out}");
    }

    #[test]
    fn hop_by_hop_fields_are_removed() {
        let (_, out) = go("POST / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n\
             Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers, deflate\r\nTrailer: X-T\r\n\
             Upgrade: h2c\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nContent-Length: 3\r\nKeep: me\r\n\r\n")
        .unwrap();
        assert_eq!(
            out,
            "POST / HTTP/1.1\r\nHost: h\r\nTE: trailers\r\nKeep: me\r\nContent-Length: 3\r\n\
             X-Forwarded-For: 10.1.2.3\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n\r\n"
        );
    }

    #[test]
    fn forwarded_for_is_appended() {
        let (_, out) = go("GET / HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\nHost: h\r\nx-forwarded-for: 2.2.2.2, 3.3.3.3\r\n\r\n")
            .unwrap();
        assert!(
            out.contains("\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 10.1.2.3\r\nHost: h\r\n")
        );
        assert_eq!(out.matches("orwarded-For").count(), 1);
    }

    #[test]
    fn upgrade_is_kept_when_asked_for() {
        let (req, out) =
            go("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
                .unwrap();
        assert!(req.upgrade);
        assert!(out.contains("Upgrade: websocket\r\n"));
        assert!(out.contains("Connection: upgrade\r\n"));
    }

    #[test]
    fn http10_keep_alive_only_when_asked() {
        let (req, _) = go("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(req.http10 && !req.keep_alive);
        let (req, out) = go("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
        assert!(req.http10 && req.keep_alive);
        assert!(out.starts_with("GET / HTTP/1.1\r\n"));
        let (req, _) = go("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").unwrap();
        assert!(!req.keep_alive);
    }

    #[test]
    fn framing_is_decided_and_normalised() {
        let (req, out) =
            go("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n")
                .unwrap();
        assert_eq!(req.framing, Framing::Length(5));
        assert_eq!(out.matches("Content-Length").count(), 1);
        let (req, out) =
            go("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n").unwrap();
        assert_eq!(req.framing, Framing::Chunked);
        assert!(out.contains("Transfer-Encoding: chunked\r\n"));
        let (req, out) = go("GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n").unwrap();
        assert!(!req.needs_host);
        assert!(out.contains("Expect: 100-continue\r\n"));
        let (req, out) = go("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(req.needs_host && !out.contains("Host"));
        let (_, out) = go("GET / HTTP/1.1\r\nHost: h\r\nConnection: Host\r\n\r\n").unwrap();
        assert!(
            out.contains("\r\nHost: h\r\n"),
            "Connection cannot remove Host: {out}"
        );
    }

    #[test]
    fn smuggling_probes_are_refused() {
        let cases: &[(&str, u16)] = &[
            ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -5\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: h\r\nX-Fold: a\r\n b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            ("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
            ("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 501),
            ("GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        ];
        for (head, status) in cases {
            assert_eq!(
                go(head).map(|_| ()).map_err(|r| r.0.code()),
                Err(*status),
                "{head:?}"
            );
        }
    }

    #[test]
    fn request_line_errors_get_their_status() {
        let cases: &[(&str, u16)] = &[
            // a space inside the target: a malformed line, not a version problem
            ("GET /a b c HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400),
            ("GET / http/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET / HTTP/1\r\nHost: h\r\n\r\n", 400),
            ("GET / HTTP/11\r\nHost: h\r\n\r\n", 400),
            ("GET / HTTP/1.1.1\r\nHost: h\r\n\r\n", 400),
            ("GET /\r\nHost: h\r\n\r\n", 400),
            ("GET\r\nHost: h\r\n\r\n", 400),
            ("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            // well-formed, but a version ferrule does not speak
            ("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
            ("GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505),
            ("GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505),
            ("\r\nGET / HTTP/3.0\r\nHost: h\r\n\r\n", 505),
            // targets that are neither origin- nor absolute-form
            ("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET a/b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET h:80 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET http://u@h/x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
            ("GET http://h/x#f HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        ];
        for (head, status) in cases {
            assert_eq!(
                go(head).map(|_| ()).map_err(|r| r.0.code()),
                Err(*status),
                "{head:?}"
            );
        }
        let (_, out) = go("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert!(out.starts_with("OPTIONS * HTTP/1.1\r\n"), "{out}");
    }

    #[test]
    fn host_values_are_one_authority() {
        for host in [
            "a@b",
            "a?b",
            "a#b",
            "a/b",
            "a\\b",
            "a,b",
            "a b",
            "a\x7fb",
            "caf\u{e9}",
        ] {
            let head = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            assert_eq!(
                go(&head).map(|_| ()),
                Err(Reject(Status::BadRequest)),
                "{host:?}"
            );
        }
        for host in [
            "example.com",
            "example.com:8080",
            "[::1]:80",
            "a-b_c.d~e",
            "xn--caf-dma",
            "",
        ] {
            let head = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            assert!(go(&head).is_ok(), "{host:?}");
        }
    }

    #[test]
    fn absolute_form_authority_replaces_host() {
        let (req, out) = go(
            "GET http://Target.example:81/p?q=1 HTTP/1.1\r\nAccept: */*\r\nHost: other\r\nX: y\r\n\r\n",
        )
        .unwrap();
        assert!(!req.needs_host);
        assert_eq!(
            out,
            "GET /p?q=1 HTTP/1.1\r\nAccept: */*\r\nHost: Target.example:81\r\nX: y\r\n\
             X-Forwarded-For: 10.1.2.3\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: Target.example:81\r\n\r\n"
        );
        // no path: "/"; a query straight after the authority keeps it
        let (_, out) = go("GET HTTPS://t HTTP/1.1\r\nHost: o\r\n\r\n").unwrap();
        assert!(out.starts_with("GET / HTTP/1.1\r\nHost: t\r\n"), "{out}");
        let (_, out) = go("GET http://t?x HTTP/1.1\r\nHost: o\r\n\r\n").unwrap();
        assert!(out.starts_with("GET /?x HTTP/1.1\r\nHost: t\r\n"), "{out}");
        // HTTP/1.0 without Host: the target's authority becomes the Host
        let (req, out) = go("GET http://t/a HTTP/1.0\r\n\r\n").unwrap();
        assert!(!req.needs_host);
        assert!(out.starts_with("GET /a HTTP/1.1\r\nHost: t\r\n"), "{out}");
        assert_eq!(out.matches("\nHost: t\r\n").count(), 1, "{out}");
        // still exactly one Host field required of HTTP/1.1
        assert!(go("GET http://t/ HTTP/1.1\r\n\r\n").is_err());
        assert!(go("GET http://t/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").is_err());
    }

    #[test]
    fn head_requests_are_recognised_before_parsing() {
        assert!(is_head_request(b"HEAD / HTTP/1.1\r\nHo"));
        assert!(is_head_request(b"\r\n\r\nHEAD /x"));
        assert!(!is_head_request(b"HEADER / HTTP/1.1"));
        assert!(!is_head_request(b"GET / HTTP/1.1"));
        assert!(!is_head_request(b"HEA"));
    }

    #[test]
    fn bare_lf_and_partial_heads() {
        assert_eq!(
            find_head_end(b"GET / HTTP/1.1\nHost: h\r\n\r\n", 0),
            Err(Reject(Status::BadRequest))
        );
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: h\r\n", 0), Ok(None));
        let head = b"GET / HTTP/1.1\r\nHost: h\r\n\r\nBODY";
        // searching again from any earlier point finds the same end
        for from in 0..27 {
            assert_eq!(find_head_end(head, from), Ok(Some(27)), "from {from}");
        }
        assert_eq!(
            find_head_end(b"GET", 10),
            Ok(None),
            "a stale position past the end"
        );
    }

    #[test]
    fn limits() {
        let small = Limits {
            max_head: 64,
            max_uri: 16,
            ..LIMITS
        };
        assert_eq!(check_partial(26, true, &small), Ok(()));
        // a request line still open past the longest target: 414
        assert_eq!(
            check_partial(80, false, &small),
            Err(Reject(Status::UriTooLong))
        );
        assert_eq!(check_partial(40, false, &small), Ok(()));
        // whole lines past the head limit: 431
        assert_eq!(
            check_partial(88, true, &small),
            Err(Reject(Status::HeaderFieldsTooLarge))
        );
        let mut out = Vec::new();
        let target = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(20));
        assert_eq!(
            rewrite(target.as_bytes(), &small, &CLIENT, &mut out),
            Err(Reject(Status::UriTooLong))
        );
        let fields = format!(
            "GET / HTTP/1.1\r\nHost: h\r\n{}\r\n",
            "X: y\r\n".repeat(120)
        );
        assert_eq!(
            rewrite(fields.as_bytes(), &LIMITS, &CLIENT, &mut out),
            Err(Reject(Status::HeaderFieldsTooLarge))
        );
    }

    #[test]
    fn request_lines_are_checked_before_the_head_is_whole() {
        for ok in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: h\r\nX-Lo",
            b"\r\nPOST /a?b HTTP/1.0\r\n",
            b"OPTIONS * HTTP/1.1\r\nHo",
        ] {
            assert_eq!(check_request_line(ok), Ok(()), "{ok:?}");
        }
        for (bad, status) in [
            (&b"GET /\r\n"[..], Status::BadRequest),
            (b"GET / HTTP/1.1 x\r\nHost: h\r\n", Status::BadRequest),
            (b"G\x01T / HTTP/1.1\r\n", Status::BadRequest),
            (b"GET / HTTP/2.0\r\n", Status::VersionNotSupported),
        ] {
            assert_eq!(check_request_line(bad), Err(Reject(status)), "{bad:?}");
        }
    }

    #[test]
    fn field_count_and_body_size_limits() {
        let tight = Limits {
            max_headers: 3,
            max_body: 10,
            ..LIMITS
        };
        let mut out = Vec::new();
        let three = b"POST / HTTP/1.1\r\nHost: h\r\nA: 1\r\nContent-Length: 10\r\n\r\n";
        assert!(rewrite(three, &tight, &CLIENT, &mut out).is_ok());
        let four = b"POST / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nContent-Length: 1\r\n\r\n";
        assert_eq!(
            rewrite(four, &tight, &CLIENT, &mut out),
            Err(Reject(Status::HeaderFieldsTooLarge))
        );
        let big = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n";
        assert_eq!(
            rewrite(big, &tight, &CLIENT, &mut out),
            Err(Reject(Status::PayloadTooLarge))
        );
        // more fields than the parser has room for: 431 too
        let many = format!(
            "GET / HTTP/1.1\r\nHost: h\r\n{}\r\n",
            "X: y\r\n".repeat(crate::http::MAX_HEADERS + 1)
        );
        let roomy = Limits {
            max_head: 1 << 20,
            max_headers: crate::http::MAX_HEADERS,
            ..LIMITS
        };
        assert_eq!(
            rewrite(many.as_bytes(), &roomy, &CLIENT, &mut out),
            Err(Reject(Status::HeaderFieldsTooLarge))
        );
    }

    #[test]
    fn empty_lines_do_not_complete_the_request_line() {
        // a lone CRLF before the request line is not the request line: a 0.9 line after it must
        // still be checked (and answered at once), a long target still gets 414
        assert!(!request_line_complete(b"\r\n", 0));
        assert!(!request_line_complete(b"\r\n\r\nGET /", 2));
        assert!(request_line_complete(b"\r\nGET /\r\n", 2));
        assert!(request_line_complete(b"GET / HTTP/1.1\r\nHo", 5));
        assert!(!request_line_complete(b"GET / HTTP/1.1\r\nHo", 17));
        assert!(!request_line_complete(b"\r", 0));
        assert_eq!(
            check_request_line(b"\r\nGET /\r\n"),
            Err(Reject(Status::BadRequest))
        );
    }

    #[test]
    fn leading_empty_lines_are_skipped() {
        let mut out = Vec::new();
        assert_eq!(rewrite(b"\r\n\r\n", &LIMITS, &CLIENT, &mut out), Ok(None));
        let head = b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let (_, len) = rewrite(head, &LIMITS, &CLIENT, &mut out).unwrap().unwrap();
        assert_eq!(len, head.len());
    }
}

mod routing {
    use super::super::*;

    /// A router that sends `/v2/...` to pool 1 stripping `/v2`, `static.example` to pool 2 with
    /// a header key and a sticky cookie, and nothing else anywhere (404).
    struct Two;

    impl<'a> Router<'a> for Two {
        fn route(&self, host: &[u8], path: &[u8]) -> Option<Routed<'a>> {
            let base = Routed {
                pool: 0,
                route: None,
                strip: 0,
                key: KeySource::ClientIp,
                limit_key: KeySource::ClientIp,
                sticky_cookie: None,
                strip_sticky_cookie: false,
            };
            if path.starts_with(b"/v2") {
                return Some(Routed {
                    pool: 1,
                    route: Some(0),
                    strip: 3,
                    ..base
                });
            }
            (host == b"static.example").then_some(Routed {
                pool: 2,
                route: Some(1),
                key: KeySource::Header(b"X-User"),
                limit_key: KeySource::Cookie(b"sid"),
                sticky_cookie: Some(b"S"),
                strip_sticky_cookie: true,
                ..base
            })
        }
    }

    fn route(head: &[u8]) -> Result<(RequestHead, String), Reject> {
        let client = ClientInfo {
            ip: IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 2, 3)),
            tls: false,
            router: &Two,
            trusted: &crate::client_ip::TrustedProxies::EMPTY,
            request_id: None,
        };
        let limits = Limits {
            max_head: 16 * 1024,
            max_uri: 8 * 1024,
            max_headers: 100,
            max_body: 0,
        };
        let mut out = Vec::new();
        let (h, _) = rewrite(head, &limits, &client, &mut out)?.expect("a whole head");
        Ok((h, String::from_utf8(out).expect("text")))
    }

    #[test]
    fn the_router_picks_the_pool_and_the_target_loses_the_prefix() {
        let (h, out) = route(b"GET /v2/users?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!((h.pool, h.route), (1, Some(0)));
        assert!(out.starts_with("GET /users?x=1 HTTP/1.1\r\n"), "{out}");
        // the whole path matched: `/` goes on, with the query
        let (_, out) = route(b"GET /v2?q HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert!(out.starts_with("GET /?q HTTP/1.1\r\n"), "{out}");
        // absolute-form: its path is routed and stripped the same way
        let (h, out) = route(b"GET http://a/v2/x HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(h.pool, 1);
        assert!(out.starts_with("GET /x HTTP/1.1\r\n"), "{out}");
    }

    #[test]
    fn the_pools_key_and_sticky_cookie_are_read_after_routing() {
        let (h, out) = route(
            b"GET /a HTTP/1.1\r\nHost: static.example\r\nX-User: u1\r\nCookie: a=1; S=00000000000000ff\r\n\r\n",
        )
        .unwrap();
        assert_eq!(h.pool, 2);
        assert_eq!(h.key, Some(crate::hash::stable_hash(0, b"u1")));
        assert!(h.sticky.is_some());
        assert!(out.contains("\r\nCookie: a=1\r\n"), "stripped: {out}");
        assert!(out.starts_with("GET /a HTTP/1.1\r\n"), "{out}");
    }

    #[test]
    fn the_rate_limits_key_is_read_besides_the_hash_key() {
        let (h, _) = route(
            b"GET /a HTTP/1.1\r\nHost: static.example\r\nX-User: u1\r\nCookie: a=1; sid=s9\r\n\r\n",
        )
        .unwrap();
        assert_eq!(h.key, Some(crate::hash::stable_hash(0, b"u1")));
        assert_eq!(h.limit_key, Some(crate::hash::stable_hash(0, b"s9")));
        // without the cookie: none (the client's address keys the limit)
        let (h, _) =
            route(b"GET /a HTTP/1.1\r\nHost: static.example\r\nCookie: a=1\r\n\r\n").unwrap();
        assert_eq!(h.limit_key, None);
        // a route whose limit keys on the address reads nothing
        let (h, _) = route(b"GET /v2 HTTP/1.1\r\nHost: a\r\nCookie: sid=s9\r\n\r\n").unwrap();
        assert_eq!(h.limit_key, None);
    }

    #[test]
    fn no_route_is_404() {
        assert_eq!(
            route(b"GET /x HTTP/1.1\r\nHost: other\r\n\r\n").unwrap_err(),
            Reject(Status::NotFound)
        );
    }

    /// The table of host bytes says what the grammar's list says, for every byte.
    #[test]
    fn valid_host_takes_exactly_the_bytes_of_a_host() {
        let grammar = |b: u8| {
            b.is_ascii_alphanumeric() || b"-._~%!$&'()*+;=:[]".contains(&b)
        };
        for b in 0..=255u8 {
            assert_eq!(valid_host(&[b]), grammar(b), "byte {b:#04x}");
            assert_eq!(valid_host(&[b'a', b, b'z']), grammar(b), "byte {b:#04x}");
        }
        assert!(valid_host(b""));
        assert!(valid_host(b"[::1]:8080"));
        assert!(!valid_host(b"a,b"));
        assert!(!valid_host(b"user@host"));
    }
}
