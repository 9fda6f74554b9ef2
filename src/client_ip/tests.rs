//! Unit tests of CIDR lists and the X-Forwarded-For walk.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn trusted(list: &[&str]) -> TrustedProxies {
    TrustedProxies::parse(list).unwrap()
}

/// The client for `peer` and these `X-Forwarded-For` fields, trusting `list`.
fn client(peer: &str, fields: &[&str], list: &[&str]) -> IpAddr {
    let values = fields.iter().map(|f| f.as_bytes());
    client_from_forwarded_for(ip(peer), values, &trusted(list))
}

#[test]
fn cidrs_parse_and_display() {
    for (text, shown) in [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("192.168.1.7", "192.168.1.7/32"),
        ("192.168.1.7/32", "192.168.1.7/32"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("::1/128", "::1/128"),
        ("::1", "::1/128"),
        ("fd00::/8", "fd00::/8"),
        ("::/0", "::/0"),
        ("2001:DB8::/32", "2001:db8::/32"),
        ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ("::ffff:192.168.1.7", "192.168.1.7/32"),
        ("::ffff:0.0.0.0/96", "0.0.0.0/0"),
    ] {
        let c: Cidr = text.parse().unwrap();
        assert_eq!(c.to_string(), shown, "{text}");
        assert_eq!(c.to_string().parse::<Cidr>(), Ok(c), "{text}");
        assert!(c.contains(c.network()));
    }
    let c: Cidr = "10.0.0.0/8".parse().unwrap();
    assert_eq!((c.network(), c.prefix_len()), (ip("10.0.0.0"), 8));
}

#[test]
fn bad_cidrs_are_refused() {
    use CidrError::*;
    let host_bits = |s: &str| HostBitsSet {
        network: s.parse().unwrap(),
    };
    for (text, want) in [
        ("", BadAddress),
        ("/8", BadAddress),
        ("10.0.0/8", BadAddress),
        ("010.0.0.0/8", BadAddress),
        ("1.2.3.4:80", BadAddress),
        ("[::1]/128", BadAddress),
        ("fe80::1%eth0/64", BadAddress),
        (" 10.0.0.0/8", BadAddress),
        ("10.0.0.0 /8", BadAddress),
        ("localhost", BadAddress),
        ("10.0.0.0/", BadPrefix),
        ("10.0.0.0/+8", BadPrefix),
        ("10.0.0.0/-1", BadPrefix),
        ("10.0.0.0/08", BadPrefix),
        ("10.0.0.0/8 ", BadPrefix),
        ("10.0.0.0/8/8", BadPrefix),
        ("10.0.0.0/1000", BadPrefix),
        (
            "10.0.0.0/33",
            PrefixOutOfRange {
                prefix: 33,
                max: 32,
            },
        ),
        (
            "10.0.0.0/255",
            PrefixOutOfRange {
                prefix: 255,
                max: 32,
            },
        ),
        (
            "10.0.0.0/999",
            PrefixOutOfRange {
                prefix: 999,
                max: 32,
            },
        ),
        (
            "::/129",
            PrefixOutOfRange {
                prefix: 129,
                max: 128,
            },
        ),
        (
            "::ffff:10.0.0.0/129",
            PrefixOutOfRange {
                prefix: 129,
                max: 128,
            },
        ),
        ("10.1.0.0/8", host_bits("10.0.0.0/8")),
        ("192.168.1.7/24", host_bits("192.168.1.0/24")),
        ("1.2.3.4/0", host_bits("0.0.0.0/0")),
        ("fd00::1/8", host_bits("fd00::/8")),
        ("::ffff:10.1.0.0/104", host_bits("10.0.0.0/8")),
    ] {
        assert_eq!(text.parse::<Cidr>(), Err(want), "{text:?}");
        assert!(!want.to_string().is_empty());
    }
    let bad = TrustedProxies::parse(["10.0.0.0/8", "::1", "nope"]);
    assert_eq!(bad, Err((2, BadAddress)));
}

#[test]
fn membership() {
    let t = trusted(&["10.0.0.0/8", "192.168.1.7", "::1/128", "fd00::/8"]);
    for yes in [
        "10.0.0.0",
        "10.255.255.255",
        "192.168.1.7",
        "::1",
        "fd00::1",
        "fdff::",
    ] {
        assert!(t.contains(ip(yes)), "{yes}");
    }
    for no in [
        "11.0.0.0",
        "9.255.255.255",
        "192.168.1.8",
        "::2",
        "fe00::",
        "fc00::",
    ] {
        assert!(!t.contains(ip(no)), "{no}");
    }
    // IPv4-mapped addresses are their IPv4 address, for IPv4 networks.
    assert!(t.contains(ip("::ffff:10.1.2.3")));
    assert!(t.contains(ip("::ffff:192.168.1.7")));
    assert!(!t.contains(ip("::ffff:11.1.2.3")));
    // ...but the IPv4-compatible form (::a.b.c.d) is plain IPv6.
    assert!(!t.contains(ip("::10.1.2.3")));
    let mapped = trusted(&["::ffff:10.0.0.0/104"]);
    assert!(mapped.contains(ip("10.9.9.9")) && mapped.contains(ip("::ffff:10.9.9.9")));
    // IPv6 networks never hold IPv4 clients, and the other way round.
    let all6 = trusted(&["::/0"]);
    assert!(all6.contains(ip("2001:db8::1")) && !all6.contains(ip("1.2.3.4")));
    assert!(!all6.contains(ip("::ffff:1.2.3.4")));
    let all4 = trusted(&["0.0.0.0/0"]);
    assert!(all4.contains(ip("1.2.3.4")) && !all4.contains(ip("::1")));
    assert!(all4.contains(ip("::ffff:1.2.3.4")));
    let odd = trusted(&["10.128.0.0/9", "2001:db8:8000::/33"]);
    assert!(odd.contains(ip("10.128.0.1")) && !odd.contains(ip("10.127.255.255")));
    assert!(odd.contains(ip("2001:db8:8000::")) && !odd.contains(ip("2001:db8:7fff::")));
    assert!(TrustedProxies::default().is_empty());
    assert!(!TrustedProxies::default().contains(ip("127.0.0.1")));
    assert_eq!(t.cidrs().len(), 4);
    let collected: TrustedProxies = t.cidrs().iter().copied().collect();
    assert_eq!(collected, TrustedProxies::new(t.cidrs().to_vec()));
}

const LB: &[&str] = &["10.0.0.0/8"];

#[test]
fn an_untrusted_peer_is_the_client() {
    assert_eq!(client("1.2.3.4", &["5.6.7.8"], LB), ip("1.2.3.4"));
    assert_eq!(client("1.2.3.4", &["5.6.7.8"], &[]), ip("1.2.3.4"));
    assert_eq!(client("10.0.0.1", &["5.6.7.8"], &[]), ip("10.0.0.1"));
}

#[test]
fn right_most_untrusted_wins() {
    assert_eq!(client("10.0.0.1", &[], LB), ip("10.0.0.1"));
    assert_eq!(client("10.0.0.1", &["1.2.3.4"], LB), ip("1.2.3.4"));
    assert_eq!(
        client("10.0.0.1", &["1.2.3.4, 10.0.0.2"], LB),
        ip("1.2.3.4")
    );
    // A client cannot spoof by writing addresses on the left.
    assert_eq!(
        client("10.0.0.1", &["6.6.6.6, 1.2.3.4, 10.0.0.2"], LB),
        ip("1.2.3.4")
    );
    assert_eq!(
        client("10.0.0.1", &["10.0.0.9, 1.2.3.4"], LB),
        ip("1.2.3.4")
    );
    // All trusted: the left-most.
    assert_eq!(
        client("10.0.0.1", &["10.0.0.3, 10.0.0.2"], LB),
        ip("10.0.0.3")
    );
    // Fields join in order.
    assert_eq!(
        client("10.0.0.1", &["1.1.1.1", "2.2.2.2, 10.0.0.2"], LB),
        ip("2.2.2.2")
    );
    assert_eq!(
        client("10.0.0.1", &["1.1.1.1", "10.0.0.2"], LB),
        ip("1.1.1.1")
    );
    assert_eq!(
        client("10.0.0.1", &["1.1.1.1, 10.0.0.3", "10.0.0.2"], LB),
        ip("1.1.1.1")
    );
}

#[test]
fn spaces_and_empty_elements() {
    let c = |fields: &[&str]| client("10.0.0.1", fields, LB);
    assert_eq!(c(&[" 1.2.3.4 ,\t10.0.0.2\t"]), ip("1.2.3.4"));
    assert_eq!(c(&["1.2.3.4,10.0.0.2"]), ip("1.2.3.4"));
    assert_eq!(c(&["", "1.2.3.4,,", " , 10.0.0.2", ""]), ip("1.2.3.4"));
    assert_eq!(c(&[",", " ", ""]), ip("10.0.0.1"));
    assert_eq!(c(&["10.0.0.3,,10.0.0.2,"]), ip("10.0.0.3"));
    // Inner white space is not trimmed away: the entry is garbage.
    assert_eq!(c(&["1.2.3.4 5.6.7.8"]), ip("10.0.0.1"));
}

#[test]
fn garbage_stops_the_walk() {
    let c = |fields: &[&str]| client("10.0.0.1", fields, LB);
    for bad in [
        "unknown",
        "1.2.3.4:5678",
        "[::1]:80",
        "[2001:db8::1]",
        "fe80::1%eth0",
        "01.2.3.4",
        "_hidden",
        "1.2.3",
        "1.2.3.4/32",
        "\"1.2.3.4\"",
    ] {
        assert_eq!(c(&[bad]), ip("10.0.0.1"), "{bad}");
        assert_eq!(c(&[&format!("5.5.5.5, {bad}")]), ip("10.0.0.1"), "{bad}");
        // The last good entry to its right is the client, trusted or not.
        assert_eq!(
            c(&[&format!("5.5.5.5, {bad}, 10.0.0.2")]),
            ip("10.0.0.2"),
            "{bad}"
        );
        assert_eq!(
            c(&[&format!("{bad}, 1.2.3.4, 10.0.0.2")]),
            ip("1.2.3.4"),
            "{bad}"
        );
    }
    let values: [&[u8]; 2] = [b"1.2.3.4", b"\xff\xfe, 10.0.0.2"];
    assert_eq!(
        client_from_forwarded_for(ip("10.0.0.1"), values, &trusted(LB)),
        ip("10.0.0.2")
    );
    let long = format!("{}1", "0:".repeat(40));
    assert_eq!(c(&[&long]), ip("10.0.0.1"));
}

#[test]
fn ipv6_and_mapped_addresses() {
    let t = &["::1", "fd00::/8", "10.0.0.0/8"];
    assert_eq!(
        client("::1", &["2001:db8::1, fd00::5"], t),
        ip("2001:db8::1")
    );
    assert_eq!(client("::1", &["fd00::7, fd00::5"], t), ip("fd00::7"));
    assert_eq!(client("fd00::1", &["1.2.3.4, 10.0.0.2"], t), ip("1.2.3.4"));
    // A dual-stack socket's view of an IPv4 balancer.
    assert_eq!(client("::ffff:10.0.0.1", &["1.2.3.4"], t), ip("1.2.3.4"));
    assert_eq!(
        client("::ffff:1.2.3.4", &["5.6.7.8"], t),
        ip("::ffff:1.2.3.4")
    );
    // Mapped entries are trusted as their IPv4 address, and returned as written.
    assert_eq!(
        client("10.0.0.1", &["::ffff:1.2.3.4, ::ffff:10.0.0.2"], t),
        ip("::ffff:1.2.3.4")
    );
    assert_eq!(client("::1", &["2001:DB8::1"], t), ip("2001:db8::1"));
}

#[test]
fn many_fields() {
    let mut fields: Vec<String> = vec!["6.6.6.6, 1.2.3.4".to_owned()];
    fields.extend((0..1000).map(|i| format!("10.0.{}.{}", i / 250, i % 250)));
    let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
    assert_eq!(client("10.0.0.1", &refs, LB), ip("1.2.3.4"));
    let joined = refs[1..].join(",");
    assert_eq!(client("10.0.0.1", &[&joined], LB), ip("10.0.0.0"));
    assert_eq!(client("10.0.0.1", &[&joined, "9.9.9.9"], LB), ip("9.9.9.9"));
}

#[test]
fn takes_any_double_ended_source() {
    let t = trusted(LB);
    let peer = ip("10.0.0.1");
    assert_eq!(
        client_from_forwarded_for(peer, std::iter::empty(), &t),
        peer
    );
    assert_eq!(
        client_from_forwarded_for(peer, Some(&b"1.2.3.4"[..]), &t),
        ip("1.2.3.4")
    );
    let headers: [(&str, &[u8]); 3] = [
        ("x-forwarded-for", b"1.2.3.4"),
        ("host", b"example.com"),
        ("X-Forwarded-For", b"10.0.0.2"),
    ];
    let xff = headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("x-forwarded-for"))
        .map(|(_, value)| *value);
    assert_eq!(client_from_forwarded_for(peer, xff, &t), ip("1.2.3.4"));
}

#[test]
fn client_keys_group_ipv6_by_prefix_and_keep_ipv4() {
    // IPv4, and IPv4-mapped IPv6, are the IPv4 address whatever the prefix
    for prefix in [1, 48, 64, 128] {
        assert_eq!(client_key(ip("10.1.2.3"), prefix), ip("10.1.2.3"));
        assert_eq!(client_key(ip("::ffff:10.1.2.3"), prefix), ip("10.1.2.3"));
    }
    // the default /64: the interface identifier goes, the network stays
    let p = DEFAULT_IPV6_CLIENT_PREFIX;
    assert_eq!(p, 64);
    let a = client_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), p);
    assert_eq!(a, ip("2001:db8:1:2::"));
    assert_eq!(client_key(ip("2001:db8:1:2::1"), p), a);
    assert_eq!(client_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), p), a);
    assert_ne!(client_key(ip("2001:db8:1:3::1"), p), a);
    // other prefixes, byte-aligned or not
    assert_eq!(client_key(ip("2001:db8:1:2::1"), 48), ip("2001:db8:1::"));
    assert_eq!(
        client_key(ip("2001:db8:1:ffff::1"), 56),
        ip("2001:db8:1:ff00::")
    );
    assert_eq!(client_key(ip("2001:db8:1:2::1"), 60), ip("2001:db8:1::"));
    assert_eq!(
        client_key(ip("2001:db8:1:1f::1"), 60),
        ip("2001:db8:1:10::")
    );
    assert_eq!(client_key(ip("ffff::1"), 1), ip("8000::"));
    assert_eq!(client_key(ip("7fff::1"), 1), ip("::"));
    // 128 (or more) keeps the address whole; 0 makes one client of all IPv6
    assert_eq!(client_key(ip("2001:db8::5"), 128), ip("2001:db8::5"));
    assert_eq!(client_key(ip("2001:db8::5"), 200), ip("2001:db8::5"));
    assert_eq!(client_key(ip("2001:db8::5"), 0), ip("::"));
    // loopback and link-local follow the same rule
    assert_eq!(client_key(ip("::1"), 64), ip("::"));
    assert_eq!(client_key(ip("fe80::1:2"), 64), ip("fe80::"));
}
