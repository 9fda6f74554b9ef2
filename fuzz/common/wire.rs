//! Independent readers of HTTP/1.1 message framing, shared by the fuzz targets (each includes
//! this file with `#[path]`): what a peer that never saw ferrule's code would make of the bytes.
// every target uses its own part
#![allow(dead_code)]

use ferrule::http::Framing;

/// A lenient chunked decoder: the payload of the chunked message at the start of `input` and the
/// message's length (trailers included), if all of it is there.
pub fn dechunk(input: &[u8]) -> Option<(Vec<u8>, usize)> {
    let line = |pos: usize| -> Option<usize> {
        input
            .get(pos..)?
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|i| pos + i)
    };
    let mut payload = Vec::new();
    let mut pos = 0;
    loop {
        let eol = line(pos)?;
        let digits: Vec<u8> = input[pos..eol]
            .iter()
            .copied()
            .take_while(u8::is_ascii_hexdigit)
            .collect();
        let size = u64::from_str_radix(std::str::from_utf8(&digits).ok()?, 16).ok()?;
        pos = eol + 2;
        if size == 0 {
            break;
        }
        let end = pos.checked_add(usize::try_from(size).ok()?)?;
        if input.get(end..end.checked_add(2)?)? != b"\r\n" {
            return None;
        }
        payload.extend_from_slice(&input[pos..end]);
        pos = end + 2;
    }
    // trailers, up to the empty line
    loop {
        let eol = line(pos)?;
        let empty = eol == pos;
        pos = eol + 2;
        if empty {
            return Some((payload, pos));
        }
    }
}

/// How an independent reader frames a message body from its fields.
pub fn framing_of(fields: &[httparse::Header<'_>], request: bool) -> Framing {
    let te = fields
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        // a coding's parameters (`chunked;x=1`) do not change which coding it is
        .map(|c| c.split(|&b| b == b';').next().unwrap_or(c))
        .map(|c| String::from_utf8_lossy(c).trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .collect::<Vec<_>>();
    if !te.is_empty() {
        return if te.last().map(String::as_str) == Some("chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        };
    }
    let cl = fields
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.split(',').next()?.trim().parse::<u64>().ok())
                .expect("a Content-Length ferrule sent is a number")
        })
        .next();
    match cl {
        Some(n) => Framing::Length(n),
        None if request => Framing::None,
        None => Framing::UntilClose,
    }
}

/// Reads a body of `framing` at `pos`: its end, or `None` when the stream ends inside it.
pub fn body_end(stream: &[u8], pos: usize, framing: Framing) -> Option<usize> {
    match framing {
        Framing::None => Some(pos),
        Framing::Length(n) => {
            let end = pos.checked_add(usize::try_from(n).ok()?)?;
            (end <= stream.len()).then_some(end)
        }
        Framing::Chunked => dechunk(&stream[pos..]).map(|(_, n)| pos + n),
        Framing::UntilClose => Some(stream.len()),
    }
}

/// What a backend must be able to rely on in request `i` ferrule forwarded: HTTP/1.1, a `Host`,
/// a body with an end. Returns how its body is framed.
pub fn forwarded_framing(req: &httparse::Request<'_, '_>, i: usize) -> Framing {
    assert_eq!(req.version, Some(1), "request {i} is not HTTP/1.1");
    assert!(
        req.headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("host")),
        "request {i} without Host"
    );
    let framing = framing_of(req.headers, true);
    assert_ne!(
        framing,
        Framing::UntilClose,
        "request {i}: a body without an end"
    );
    framing
}
