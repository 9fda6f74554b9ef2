//! `GET /` and `GET /dashboard`: the live dashboard, one self-contained page.
//!
//! The page is `dashboard/page.html` with `dashboard/page.css` and `dashboard/page.js` put inline
//! (all three compiled into the binary with `include_str!`; nothing else is loaded, so it works
//! offline). It holds no data: its script polls `GET /backends` and `GET /stats` every second and
//! acts through the same REST API as any client (drain, disable, enable, weight, add, remove,
//! reload), asking for the `admin_token` on its first 401 and sending it as `Authorization:
//! Bearer`. So the page itself is served without the token.
//!
//! It is sent with a strict Content-Security-Policy: nothing is allowed by default, the inline
//! style and script only by their SHA-256 (computed here once, from the very text put in the
//! page), fetches only to this origin, images only as `data:` (the empty favicon). With
//! `X-Content-Type-Options: nosniff`, and `Cache-Control: no-store` as every admin answer.

use std::sync::OnceLock;

use super::{Admin, ApiError, Call};
use crate::httpd::message::Response;

const HTML: &str = include_str!("dashboard/page.html");
const CSS: &str = include_str!("dashboard/page.css");
const JS: &str = include_str!("dashboard/page.js");

/// Where `page.html` takes the style and the script.
const STYLE_SLOT: &str = "/*{{style}}*/";
const SCRIPT_SLOT: &str = "/*{{script}}*/";

/// The page as served, and its policy.
struct Page {
    html: String,
    csp: String,
}

fn built() -> &'static Page {
    static PAGE: OnceLock<Page> = OnceLock::new();
    PAGE.get_or_init(|| Page {
        html: HTML
            .replacen(STYLE_SLOT, CSS, 1)
            .replacen(SCRIPT_SLOT, JS, 1),
        csp: format!(
            "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; \
             connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'",
            base64(&sha256(JS.as_bytes())),
            base64(&sha256(CSS.as_bytes())),
        ),
    })
}

pub(super) fn page(_: &Admin, _: &Call<'_>) -> Result<Response, ApiError> {
    let page = built();
    Ok(
        Response::text(200, "text/html; charset=utf-8", page.html.clone())
            .with_header("Content-Security-Policy", page.csp.clone())
            .with_header("X-Content-Type-Options", "nosniff".into())
            .with_header("Referrer-Policy", "no-referrer".into())
            .with_header("X-Frame-Options", "DENY".into()),
    )
}

/// SHA-256 (FIPS 180-4) of `data`: for the policy's hashes, once per process.
fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// Standard base64 with padding, as CSP hashes are written (and PEM bodies, in the TLS tests).
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha256_and_base64_match_known_answers() {
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // two blocks, and the length field's edge (56 bytes)
        assert_eq!(
            hex(&sha256(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        let million = vec![b'a'; 1_000_000];
        assert_eq!(
            hex(&sha256(&million)),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(
            base64(&sha256(b"")),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn the_page_has_its_style_and_script_inline_and_nothing_from_elsewhere() {
        assert!(HTML.contains(STYLE_SLOT) && HTML.contains(SCRIPT_SLOT));
        let page = built();
        assert!(!page.html.contains("{{"), "every slot filled");
        // exactly one inline block of each, holding exactly the hashed text
        assert_eq!(page.html.matches("<script").count(), 1);
        assert_eq!(page.html.matches("<style").count(), 1);
        assert!(page.html.contains(&format!("<script>{JS}</script>")));
        assert!(page.html.contains(&format!("<style>{CSS}</style>")));
        assert!(!JS.contains("</script") && !CSS.contains("</style"));
        // nothing loaded from elsewhere; nothing the policy would refuse (inline handlers and
        // style attributes); no way for API text to become markup
        assert_eq!(HTML.matches("href=").count(), 1, "only the empty favicon");
        assert!(HTML.contains("href=\"data:,\""));
        for banned in [" src=", "style=\"", "@import", "url("] {
            assert!(!page.html.contains(banned), "{banned:?} in the page");
        }
        let handler = HTML.split_whitespace().any(|w| {
            w.strip_prefix("on")
                .and_then(|rest| rest.split_once('='))
                .is_some_and(|(name, _)| name.bytes().all(|b| b.is_ascii_lowercase()))
        });
        assert!(!handler, "an inline event handler in the page");
        for banned in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "Function(",
        ] {
            assert!(!JS.contains(banned), "{banned:?} in the script");
        }
        assert!(page
            .csp
            .starts_with("default-src 'none'; script-src 'sha256-"));
    }
}
