//! The PROXY protocol parser (`proxy_protocol::parse`), v1 and v2. The first input byte picks the
//! form: the bytes as they are, or behind the v1 prefix, or behind the v2 signature (so the
//! fuzzer spends its time past the signature checks).
//!
//! Invariants: no panic; `Done` consumes no more than it was given, and the same header parses
//! from exactly its own bytes; every proper prefix of an accepted header is `Incomplete` (never an
//! error: a header is refused only when no more bytes could make it valid), and so is every
//! prefix of an `Incomplete` input; a buffer of `MAX_HEADER_LEN` bytes is never `Incomplete`; a
//! relayed address pair has one family.
#![no_main]

use ferrule::proxy_protocol::{self, Parsed, Version, MAX_HEADER_LEN, V1_MAX_LEN};
use libfuzzer_sys::fuzz_target;

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut input = Vec::with_capacity(rest.len() + 12);
    match mode % 4 {
        1 => input.extend_from_slice(b"PROXY "),
        2 | 3 => input.extend_from_slice(V2_SIGNATURE),
        _ => {}
    }
    input.extend_from_slice(rest);
    let input = &input[..input.len().min(MAX_HEADER_LEN + 64)];

    let result = proxy_protocol::parse(input);
    if let Err(e) = &result {
        let _ = e.to_string();
    }
    let _ = proxy_protocol::looks_like_proxy_protocol(input);
    match result {
        Ok(Parsed::Done(h)) => {
            assert!(h.consumed <= input.len() && h.consumed > 0);
            if h.version == Version::V1 {
                assert!(h.consumed <= V1_MAX_LEN);
                assert!(input[..h.consumed].ends_with(b"\r\n"));
            } else {
                assert!(h.consumed <= MAX_HEADER_LEN);
            }
            if let Some(a) = h.addresses {
                assert_eq!(a.source.is_ipv4(), a.destination.is_ipv4());
            }
            assert_eq!(
                proxy_protocol::parse(&input[..h.consumed]),
                Ok(Parsed::Done(h))
            );
            for n in 0..h.consumed {
                assert_eq!(
                    proxy_protocol::parse(&input[..n]),
                    Ok(Parsed::Incomplete),
                    "a prefix of {n} of an accepted header"
                );
            }
        }
        Ok(Parsed::Incomplete) => {
            assert!(
                input.len() < MAX_HEADER_LEN,
                "a full buffer is still incomplete"
            );
            for n in 0..input.len() {
                assert_eq!(
                    proxy_protocol::parse(&input[..n]),
                    Ok(Parsed::Incomplete),
                    "a prefix of {n} of an incomplete header"
                );
            }
        }
        Err(_) => {}
    }
});
