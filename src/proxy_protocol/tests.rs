//! Unit and property tests of the PROXY protocol parser.

use super::*;

/// A header, and the source and destination it carries (`None`: the connection's own).
type Case = (Vec<u8>, Option<(&'static str, &'static str)>);

fn v2(ver_cmd: u8, family: u8, block: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.extend_from_slice(&[ver_cmd, family]);
    h.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
    h.extend_from_slice(block);
    h
}

fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut t = vec![kind];
    t.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
    t.extend_from_slice(value);
    t
}

const V4_BLOCK: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 0x04, 0x57, 0x08, 0xae];

fn v6_block() -> Vec<u8> {
    let mut b = "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets().to_vec();
    b.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    b.extend_from_slice(&[0x01, 0xbb, 0xff, 0xff]);
    b
}

/// A v2 PROXY header over TCP/IPv4 whose TLVs include a correct CRC32C.
fn v2_with_crc() -> Vec<u8> {
    let mut block = V4_BLOCK.to_vec();
    block.extend(tlv(0x01, b"h2"));
    block.extend(tlv(TLV_CRC32C, &[0; 4]));
    let mut h = v2(0x21, 0x11, &block);
    let at = h.len() - 4;
    let crc = crc32c_zeroed(&h, at).unwrap();
    h[at..].copy_from_slice(&crc.to_be_bytes());
    h
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn done(buf: &[u8]) -> Header {
    match parse(buf) {
        Ok(Parsed::Done(h)) => h,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
    }
}

/// Every valid header, with the addresses it carries.
fn valid() -> Vec<Case> {
    let ip4 = Some(("1.2.3.4:1111", "5.6.7.8:2222"));
    let ip6 = Some(("[2001:db8::1]:443", "[::1]:65535"));
    let max6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    let mut with_tlvs = V4_BLOCK.to_vec();
    for t in [
        tlv(0x01, b"h2"),
        tlv(0x02, b"example.com"),
        tlv(0x04, b""),
        tlv(0xea, b"vpce"),
    ] {
        with_tlvs.extend(t);
    }
    let mut full = V4_BLOCK.to_vec();
    full.extend(tlv(0x04, &[0xaa; V2_MAX_BLOCK - 12 - 3]));
    vec![
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n".to_vec(), ip4),
        (b"PROXY TCP6 2001:db8::1 ::1 443 65535\r\n".to_vec(), ip6),
        (
            b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n".to_vec(),
            Some(("0.0.0.0:0", "255.255.255.255:65535")),
        ),
        (
            b"PROXY TCP6 ::ffff:1.2.3.4 ABCD::EF 1 2\r\n".to_vec(),
            Some(("[::ffff:1.2.3.4]:1", "[abcd::ef]:2")),
        ),
        (b"PROXY UNKNOWN\r\n".to_vec(), None),
        (
            format!("PROXY UNKNOWN {max6} {max6} 65535 65535\r\n").into_bytes(),
            None,
        ),
        (b"PROXY UNKNOWN whatever\tat all\r\n".to_vec(), None),
        (v2(0x21, 0x11, &V4_BLOCK), ip4),
        (v2(0x21, 0x21, &v6_block()), ip6),
        (v2(0x21, 0x11, &with_tlvs), ip4),
        (v2(0x21, 0x11, &full), ip4),
        (v2_with_crc(), ip4),
        (v2(0x20, 0x00, b""), None),
        (v2(0x20, 0x11, &V4_BLOCK), None),
        (v2(0x20, 0x00, b"junk that LOCAL ignores"), None),
        (v2(0x21, 0x00, b"anything"), None),
        (v2(0x21, 0x12, &V4_BLOCK), None),
        (v2(0x21, 0x22, &v6_block()), None),
        (v2(0x21, 0x10, b"no layout"), None),
        (v2(0x21, 0x31, &[b'/'; 216]), None),
        (v2(0x21, 0x32, &[0; 220][..216]), None),
    ]
}

#[test]
fn every_valid_form_is_accepted() {
    for (h, addresses) in valid() {
        let mut buf = h.clone();
        buf.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let got = done(&buf);
        assert_eq!(got.consumed, h.len(), "{:?}", String::from_utf8_lossy(&h));
        let want = addresses.map(|(s, d)| Addresses {
            source: sa(s),
            destination: sa(d),
        });
        assert_eq!(got.addresses, want, "{:?}", String::from_utf8_lossy(&h));
        assert_eq!(got.source(), want.map(|a| a.source));
        assert_eq!(got.destination(), want.map(|a| a.destination));
        let version = if h.starts_with(b"PROXY") {
            Version::V1
        } else {
            Version::V2
        };
        assert_eq!(got.version, version);
        assert!(looks_like_proxy_protocol(&h));
        assert!(h.len() <= MAX_HEADER_LEN);
    }
}

#[test]
fn the_longest_v1_line_is_107_bytes() {
    let (h, _) = &valid()[5];
    assert_eq!(h.len(), V1_MAX_LEN);
    let long = b"PROXY UNKNOWN ".iter().chain([b'x'; 92].iter()).copied();
    let mut long: Vec<u8> = long.collect();
    assert_eq!(parse(&long[..V1_MAX_LEN - 1]), Ok(Parsed::Incomplete));
    long.extend_from_slice(b"\r\n");
    assert_eq!(long.len(), V1_MAX_LEN + 1);
    assert_eq!(parse(&long), Err(Error::V1LineTooLong));
    assert_eq!(parse(&long[..V1_MAX_LEN]), Err(Error::V1LineTooLong));
}

#[test]
fn every_prefix_of_a_valid_header_is_incomplete() {
    for (h, _) in valid() {
        for n in 0..h.len() {
            assert_eq!(
                parse(&h[..n]),
                Ok(Parsed::Incomplete),
                "{:?}",
                String::from_utf8_lossy(&h[..n])
            );
        }
    }
}

#[test]
fn crc32c_matches_the_check_value() {
    let data = b"123456789";
    let crc = !data.iter().fold(!0u32, |c, &b| crc32c_byte(c, b));
    assert_eq!(crc, 0xe306_9283);
}

#[test]
fn malformed_v1_lines_are_refused() {
    use Error::*;
    let cases: &[(&[u8], Error)] = &[
        (b"GET / HTTP/1.1\r\n", BadSignature),
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            BadSignature,
        ),
        (b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", BadSignature),
        (b"PROXY\r\n", BadSignature),
        (b"PROXYTCP4", BadSignature),
        (b" PROXY TCP4", BadSignature),
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", V1BadProtocol),
        (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", V1BadProtocol),
        (b"PROXY UNKNOWNX\r\n", V1BadProtocol),
        (b"PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n", V1BadProtocol),
        (b"PROXY UDP4", V1BadProtocol),
        (b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", V1Spacing),
        (b"PROXY \r\n", V1Spacing),
        (b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", V1Spacing),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n", V1Spacing),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", V1Spacing),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ", V1Spacing),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", V1TrailingField),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", V1MissingField),
        (b"PROXY TCP4\r\n", V1MissingField),
        (b"PROXY TCP6 ::1\r\n", V1MissingField),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", V1LineEnding),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", V1LineEnding),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", V1LineEnding),
        (b"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n", V1LineEnding),
        (b"PROXY UNKNOWN a\rb\r\n", V1LineEnding),
        (b"PROXY UNKNOWN\n", V1LineEnding),
        (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", V1BadAddress),
        (b"PROXY TCP4 1.2.3.4 5.6.7.008 1 2\r\n", V1BadAddress),
        (b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", V1BadAddress),
        (b"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", V1BadAddress),
        (b"PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n", V1BadAddress),
        (b"PROXY TCP4 1111.2.3.4", V1BadAddress),
        (b"PROXY TCP4 1.2.3.4.", V1BadAddress),
        (b"PROXY TCP4 1..", V1BadAddress),
        (b"PROXY TCP4 .1", V1BadAddress),
        (b"PROXY TCP4 1.256", V1BadAddress),
        (b"PROXY TCP4 1.2.03", V1BadAddress),
        (b"PROXY TCP4 1.2.3.4 05", V1BadAddress),
        (b"PROXY TCP4 ::1", V1BadAddress),
        (b"PROXY TCP4 1.2.3.4  ", V1Spacing),
        (b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n", V1BadAddress),
        (b"PROXY TCP4 1.2.3.4\x00 5.6.7.8 1 2\r\n", V1BadAddress),
        (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", V1BadAddress),
        (b"PROXY TCP6 ::1%eth0 ::1 1 2\r\n", V1BadAddress),
        (b"PROXY TCP6 [::1] ::1 1 2\r\n", V1BadAddress),
        (b"PROXY TCP6 1::2::3 ::1 1 2\r\n", V1BadAddress),
        (b"PROXY TCP6 00001:: ::1 1 2\r\n", V1BadAddress),
        (b"PROXY TCP6 ::1 ::g", V1BadAddress),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", V1BadPort),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n", V1BadPort),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", V1BadPort),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", V1BadPort),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 0x10 2\r\n", V1BadPort),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2a\r\n", V1BadPort),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", V1PortOutOfRange),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", V1PortOutOfRange),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 123456", V1PortOutOfRange),
        (
            &[
                b'P', b'R', b'O', b'X', b'Y', b' ', b'U', b'N', b'K', b'N', b'O', b'W', b'N', b' ',
                b'a',
            ]
            .repeat(8),
            V1LineTooLong,
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            parse(input),
            Err(*want),
            "{:?}",
            String::from_utf8_lossy(input)
        );
        assert!(!want.to_string().is_empty());
    }
}

#[test]
fn malformed_v2_headers_are_refused() {
    use Error::*;
    let mut sig = V2_SIGNATURE.to_vec();
    sig[11] = b'X';
    let short_tlv = [&V4_BLOCK[..], &[0x01, 0x00]].concat();
    let long_tlv = [&V4_BLOCK[..], &tlv(0x01, b"h2")[..4]].concat();
    let mut bad_crc = v2_with_crc();
    *bad_crc.last_mut().unwrap() ^= 1;
    let mut tampered = v2_with_crc();
    tampered[16] ^= 1;
    let crc_len = [&V4_BLOCK[..], &tlv(TLV_CRC32C, &[0; 3])].concat();
    let cases: Vec<(Vec<u8>, Error)> = vec![
        (sig, BadSignature),
        (
            b"\r\n\r\n\0\r\nQUIT\x0a\x21".to_vec()[..5]
                .iter()
                .chain(b"X")
                .copied()
                .collect(),
            BadSignature,
        ),
        (v2(0x11, 0x11, &V4_BLOCK), V2BadVersion(1)),
        (v2(0x31, 0x11, &V4_BLOCK)[..13].to_vec(), V2BadVersion(3)),
        (v2(0x22, 0x11, &V4_BLOCK)[..13].to_vec(), V2BadCommand(2)),
        (v2(0x2f, 0x11, &V4_BLOCK), V2BadCommand(15)),
        (v2(0x21, 0x41, &V4_BLOCK)[..14].to_vec(), V2BadFamily(0x41)),
        (v2(0x21, 0x13, &V4_BLOCK), V2BadFamily(0x13)),
        (v2(0x20, 0xff, b""), V2BadFamily(0xff)),
        (
            v2(0x21, 0x11, &[0; V2_MAX_BLOCK + 1])[..16].to_vec(),
            V2TooLong(V2_MAX_BLOCK + 1),
        ),
        (v2(0x20, 0x00, &[0; 65535])[..16].to_vec(), V2TooLong(65535)),
        (
            v2(0x21, 0x11, &V4_BLOCK[..11]),
            V2AddressTooShort {
                family: 0x11,
                len: 11,
            },
        ),
        (
            v2(0x21, 0x21, &V4_BLOCK),
            V2AddressTooShort {
                family: 0x21,
                len: 12,
            },
        ),
        (
            v2(0x21, 0x12, b""),
            V2AddressTooShort {
                family: 0x12,
                len: 0,
            },
        ),
        (
            v2(0x21, 0x31, &[0; 100]),
            V2AddressTooShort {
                family: 0x31,
                len: 100,
            },
        ),
        (v2(0x21, 0x11, &short_tlv), V2BadTlv),
        (v2(0x21, 0x11, &long_tlv), V2BadTlv),
        (v2(0x21, 0x11, &[&V4_BLOCK[..], &[0x04]].concat()), V2BadTlv),
        (bad_crc, V2BadChecksum),
        (tampered, V2BadChecksum),
        (v2(0x21, 0x11, &crc_len), V2BadChecksum),
    ];
    for (input, want) in cases {
        assert_eq!(parse(&input), Err(want), "{input:x?}");
        assert!(!want.to_string().is_empty());
    }
}

#[test]
fn diagnostics_hint() {
    assert!(looks_like_proxy_protocol(b"PROXY TCP4 1.2"));
    assert!(looks_like_proxy_protocol(V2_SIGNATURE));
    assert!(!looks_like_proxy_protocol(b"PROXY / HTTP/1.1\r\n"));
    assert!(!looks_like_proxy_protocol(b"GET / HTTP/1.1\r\n"));
    assert!(!looks_like_proxy_protocol(b"PROX"));
}

fn header_strategy() -> impl proptest::strategy::Strategy<Value = (Vec<u8>, Addresses)> {
    use proptest::prelude::*;
    let ip = prop_oneof![
        any::<[u8; 4]>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<[u8; 16]>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ];
    (
        ip,
        any::<[u8; 16]>(),
        any::<u16>(),
        any::<u16>(),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(src, dst, sport, dport, text, tlv_value)| {
            let dst = match src {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(dst[0], dst[1], dst[2], dst[3])),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(dst)),
            };
            let a = Addresses {
                source: SocketAddr::new(src, sport),
                destination: SocketAddr::new(dst, dport),
            };
            let h = match (text, src, dst) {
                (true, IpAddr::V4(s), IpAddr::V4(d)) => {
                    format!("PROXY TCP4 {s} {d} {sport} {dport}\r\n").into_bytes()
                }
                (true, IpAddr::V6(s), IpAddr::V6(d)) => {
                    format!("PROXY TCP6 {s} {d} {sport} {dport}\r\n").into_bytes()
                }
                (_, IpAddr::V4(s), IpAddr::V4(d)) => {
                    let block = [
                        &s.octets()[..],
                        &d.octets(),
                        &sport.to_be_bytes(),
                        &dport.to_be_bytes(),
                        &tlv(0xe0, &tlv_value),
                    ]
                    .concat();
                    v2(0x21, 0x11, &block)
                }
                (_, s, d) => {
                    let (IpAddr::V6(s), IpAddr::V6(d)) = (s, d) else {
                        unreachable!()
                    };
                    let block = [
                        &s.octets()[..],
                        &d.octets(),
                        &sport.to_be_bytes(),
                        &dport.to_be_bytes(),
                        &tlv(0xe0, &tlv_value),
                    ]
                    .concat();
                    v2(0x21, 0x21, &block)
                }
            };
            (h, a)
        })
}

fn start() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    prop_oneof![
        Just(Vec::new()),
        Just(b"PROXY ".to_vec()),
        Just(b"PROXY TCP4 ".to_vec()),
        Just(b"PROXY TCP6 ".to_vec()),
        Just(V2_SIGNATURE.to_vec()),
        Just([&V2_SIGNATURE[..], &[0x21, 0x11, 0x00, 0x0c]].concat()),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Arbitrary input (often starting like a header) never panics, `Done` never claims more
    /// than it was given, an error on a prefix stays an error, and a buffer of
    /// `MAX_HEADER_LEN` bytes is never `Incomplete`.
    #[test]
    fn random_bytes_never_panic(
        start in start(),
        tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        cut in 0usize..400,
    ) {
        let buf = [start, tail].concat();
        match parse(&buf) {
            Ok(Parsed::Done(h)) => proptest::prop_assert!(h.consumed <= buf.len()),
            Ok(Parsed::Incomplete) | Err(_) => {}
        }
        if parse(&buf[..cut.min(buf.len())]).is_err() {
            proptest::prop_assert!(parse(&buf).is_err());
        }
        let mut long = buf.clone();
        long.resize(MAX_HEADER_LEN, b'7');
        proptest::prop_assert_ne!(parse(&long), Ok(Parsed::Incomplete));
    }

    /// A valid header followed by anything is consumed exactly, with its addresses.
    #[test]
    fn a_header_then_anything_consumes_the_header(
        (header, addresses) in header_strategy(),
        tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
    ) {
        let buf = [&header[..], &tail].concat();
        let got = done(&buf);
        proptest::prop_assert_eq!(got.consumed, header.len());
        proptest::prop_assert_eq!(got.addresses, Some(addresses));
    }
}
