//! `GET /` and `GET /dashboard`: the live dashboard, one self-contained page.
//!
//! The page is `dashboard/page.html` with `dashboard/page.css` and `dashboard/page.js` put inline
//! (all three compiled into the binary with `include_str!`; nothing else is loaded, so it works
//! offline). It holds no data: its script polls `GET /pools`, each pool's backends (`GET
//! /backends` for `default`, `GET /pools/{name}/backends` for the others) and `GET /stats` every
//! second, shows the backends grouped by pool (with a pool filter), and acts through the same
//! REST API as any client, on the backend's own pool (drain, disable, enable, weight, add,
//! remove, reload), asking for the `admin_token` on its first 401 and sending it as `Authorization:
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

/// SHA-256, from aws-lc-rs (rustls' crypto provider, already linked in).
fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Standard base64 with padding, as CSP hashes are written (and PEM bodies, in the TLS tests).
pub(crate) fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
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
