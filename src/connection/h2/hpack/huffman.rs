//! The Huffman code of HPACK (RFC 7541 §5.2, Appendix B).
//!
//! The code is canonical: codes of one length are consecutive and follow the symbol order, and
//! each length's first code follows from the counts of the shorter ones. So the 257 code lengths
//! of Appendix B are all that is stored ([`LENGTHS`]); the codes and the decoding tables are
//! computed from them at compile time. A unit test checks the result against the RFC's examples
//! (Appendix C.4 and C.6), whose strings cover most printable symbols.
//!
//! Decoding reads a 32-bit window and finds the code length as the first length whose limit
//! (the first code past that length, left-aligned) is above the window: a handful of
//! comparisons per symbol, no per-bit loop and no allocation beyond the output. Padding is
//! checked as §5.2 says: at most 7 bits, all ones (the start of EOS), and EOS itself is an error.

/// Code lengths in bits of the symbols 0..=255 and of EOS (256), from RFC 7541 Appendix B.
const LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, //
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, //
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, //
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, //
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, //
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, //
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, //
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, //
    30,
];

const EOS: u16 = 256;
const MAX_LEN: usize = 30;

struct Tables {
    /// The code of each symbol, right-aligned.
    codes: [u32; 257],
    /// First code of each length.
    first: [u32; MAX_LEN + 1],
    /// Index in `symbols` of the first symbol of each length.
    offset: [u16; MAX_LEN + 1],
    /// The first code past each length, left-aligned in 32 bits (a u64: the last is 2^32).
    limit: [u64; MAX_LEN + 1],
    /// Symbols ordered by (length, symbol): the order of their codes.
    symbols: [u16; 257],
}

// evaluated at compile time (`TABLES`): an index out of range fails the build, not a request
#[allow(clippy::indexing_slicing)]
const fn build() -> Tables {
    let mut count = [0u32; MAX_LEN + 1];
    let mut s = 0;
    while s < 257 {
        count[LENGTHS[s] as usize] += 1;
        s += 1;
    }
    let mut t = Tables {
        codes: [0; 257],
        first: [0; MAX_LEN + 1],
        offset: [0; MAX_LEN + 1],
        limit: [0; MAX_LEN + 1],
        symbols: [0; 257],
    };
    let mut code = 0u32;
    let mut at = 0u16;
    let mut len = 1;
    while len <= MAX_LEN {
        code = (code + count[len - 1]) << 1;
        t.first[len] = code;
        t.offset[len] = at;
        t.limit[len] = ((code + count[len]) as u64) << (32 - len);
        let mut s = 0;
        let mut next = code;
        while s < 257 {
            if LENGTHS[s] as usize == len {
                t.codes[s] = next;
                t.symbols[at as usize] = s as u16;
                next += 1;
                at += 1;
            }
            s += 1;
        }
        len += 1;
    }
    t
}

static TABLES: Tables = build();

/// What is wrong with a Huffman-coded string (§5.2): all COMPRESSION_ERROR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HuffmanError {
    /// The EOS symbol inside the string.
    Eos,
    /// More than 7 bits of padding, or padding that is not the start of EOS.
    Padding,
}

#[inline]
fn low_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Decodes `src` and appends the octets to `out` (at most `src.len() * 8 / 5` of them).
pub fn decode(src: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    let t = &TABLES;
    let mut input = src.iter();
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    // bounded: every round consumes at least 5 bits of `src`, or ends
    loop {
        while bits <= 56 {
            let Some(&b) = input.next() else { break };
            acc = (acc << 8) | u64::from(b);
            bits += 8;
        }
        if bits == 0 {
            return Ok(());
        }
        // the next 32 bits, padded with ones past the end of the input
        let window = if bits >= 32 {
            (acc >> (bits - 32)) & 0xffff_ffff
        } else {
            ((acc << (32 - bits)) | low_mask(32 - bits)) & 0xffff_ffff
        };
        let mut len = 5;
        // bounded: at most 26 lengths; limit[30] is 2^32, above every window
        while len < MAX_LEN && window >= t.limit.get(len).copied().unwrap_or(u64::MAX) {
            len += 1;
        }
        if len as u32 > bits {
            // the input ends inside a code: that is the padding
            if bits > 7 || acc & low_mask(bits) != low_mask(bits) {
                return Err(HuffmanError::Padding);
            }
            return Ok(());
        }
        let code = (window >> (32 - len)) as u32;
        let first = t.first.get(len).copied().unwrap_or(0);
        let offset = t.offset.get(len).copied().unwrap_or(0);
        let index = usize::from(offset) + code.wrapping_sub(first) as usize;
        match t.symbols.get(index).copied() {
            Some(EOS) | None => return Err(HuffmanError::Eos),
            Some(sym) => out.push(sym as u8),
        }
        bits -= len as u32;
        acc &= low_mask(bits);
    }
}

/// Bytes `src` takes Huffman-coded (ASCII-lowercased first when `lowercase`).
pub fn encoded_len(src: &[u8], lowercase: bool) -> usize {
    let bits: usize = src
        .iter()
        .map(|&b| if lowercase { b.to_ascii_lowercase() } else { b })
        .map(|b| usize::from(LENGTHS.get(usize::from(b)).copied().unwrap_or(30)))
        .sum();
    bits.div_ceil(8)
}

/// Appends `src` Huffman-coded (ASCII-lowercased first when `lowercase`), padded with the start
/// of EOS.
pub fn encode(src: &[u8], lowercase: bool, out: &mut Vec<u8>) {
    let t = &TABLES;
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    // bounded: one round per byte of `src`
    for &b in src {
        let b = if lowercase { b.to_ascii_lowercase() } else { b };
        let i = usize::from(b);
        let len = u32::from(LENGTHS.get(i).copied().unwrap_or(0));
        let code = t.codes.get(i).copied().unwrap_or(0);
        // fewer than 8 bits wait in `acc`: 8 + 30 fit
        acc = (acc << len) | u64::from(code);
        bits += len;
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= low_mask(bits);
    }
    if bits > 0 {
        out.push(((acc << (8 - bits)) | low_mask(8 - bits)) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_code_is_canonical_and_complete() {
        let t = &TABLES;
        // a few codes straight from Appendix B
        assert_eq!((t.codes[b'0' as usize], LENGTHS[b'0' as usize]), (0x0, 5));
        assert_eq!((t.codes[b' ' as usize], LENGTHS[b' ' as usize]), (0x14, 6));
        assert_eq!((t.codes[b'A' as usize], LENGTHS[b'A' as usize]), (0x21, 6));
        assert_eq!((t.codes[0], LENGTHS[0]), (0x1ff8, 13));
        assert_eq!((t.codes[255], LENGTHS[255]), (0x3ffffee, 26));
        assert_eq!((t.codes[256], LENGTHS[256]), (0x3fffffff, 30));
        // Kraft: the code fills the whole space, so every bit string decodes or is a prefix
        let kraft: u64 = LENGTHS.iter().map(|&l| 1u64 << (30 - l)).sum();
        assert_eq!(kraft, 1 << 30);
        assert_eq!(t.limit[30], 1 << 32);
    }

    // RFC 7541 Appendix C.4 and C.6: the Huffman-coded strings of the examples.
    const VECTORS: &[(&str, &str)] = &[
        ("www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"),
        ("no-cache", "a8eb 1064 9cbf"),
        ("custom-key", "25a8 49e9 5ba9 7d7f"),
        ("custom-value", "25a8 49e9 5bb8 e8b4 bf"),
        ("302", "6402"),
        ("private", "aec3 771a 4b"),
        (
            "Mon, 21 Oct 2013 20:13:21 GMT",
            "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff",
        ),
        ("https://www.example.com", "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3"),
        ("307", "640e ff"),
        (
            "Mon, 21 Oct 2013 20:13:22 GMT",
            "d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff",
        ),
        ("gzip", "9bd9 ab"),
        (
            "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
            "94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
        ),
    ];

    #[test]
    fn rfc_7541_examples_both_ways() {
        for (plain, coded) in VECTORS {
            let coded = hex(coded);
            let mut out = Vec::new();
            encode(plain.as_bytes(), false, &mut out);
            assert_eq!(out, coded, "encoding {plain}");
            assert_eq!(encoded_len(plain.as_bytes(), false), coded.len());
            let mut back = Vec::new();
            decode(&coded, &mut back).unwrap();
            assert_eq!(back, plain.as_bytes());
        }
    }

    #[test]
    fn every_octet_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        for s in [&all[..], &all[100..101], b"", &[0, 255, 10, 13, 22]] {
            let mut coded = Vec::new();
            encode(s, false, &mut coded);
            assert_eq!(coded.len(), encoded_len(s, false));
            let mut back = Vec::new();
            decode(&coded, &mut back).unwrap();
            assert_eq!(back, s);
        }
        let mut lower = Vec::new();
        encode(b"Content-Type", true, &mut lower);
        let mut back = Vec::new();
        decode(&lower, &mut back).unwrap();
        assert_eq!(back, b"content-type");
    }

    #[test]
    fn padding_and_eos_are_checked() {
        // 'a' (00011, 5 bits) padded with 3 ones: valid
        let mut out = Vec::new();
        assert_eq!(decode(&[0b0001_1111], &mut out), Ok(()));
        assert_eq!(out, b"a");
        // padded with zeros: not the start of EOS
        assert_eq!(
            decode(&[0b0001_1000], &mut Vec::new()),
            Err(HuffmanError::Padding)
        );
        // a whole byte of ones is 8 bits of padding
        assert_eq!(
            decode(&[0b0001_1111, 0xff], &mut Vec::new()),
            Err(HuffmanError::Padding)
        );
        assert_eq!(decode(&[0xff], &mut Vec::new()), Err(HuffmanError::Padding));
        // EOS (30 ones) coded in the string
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff], &mut Vec::new()),
            Err(HuffmanError::Eos)
        );
        assert_eq!(decode(&[], &mut Vec::new()), Ok(()));
    }
}
