//! The body framing decoder (`http::Body`), chunked above all, fed in arbitrary splits.
//!
//! Invariants: it terminates (every step consumes bytes or stops; a bounded number of steps);
//! payload and framing steps account for exactly the bytes consumed; the outcome (payload bytes,
//! bytes consumed, done, error) does not depend on how the input was split; a length body never
//! yields more than its length; a chunked body that completes yields exactly the payload an
//! independent (lenient) decoder reads from the same bytes, so never more body bytes than framed.
#![no_main]

use ferrule::http::{Body, BodyError, Framing, Step};
use libfuzzer_sys::fuzz_target;

#[path = "../common/wire.rs"]
mod wire;

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    payload: Vec<u8>,
    consumed: usize,
    done: bool,
    error: Option<BodyError>,
}

/// Feeds `input` to a fresh decoder, `cuts` saying how many more bytes become available each time
/// the decoder is blocked (cycled; 0 counts as 1).
fn run(framing: Framing, input: &[u8], cuts: &[u8]) -> Outcome {
    let mut body = Body::new(framing);
    let mut payload = Vec::new();
    let mut pos = 0;
    let mut cut = 0;
    let next = |cut: &mut usize| {
        let n = cuts
            .get(*cut % cuts.len().max(1))
            .map_or(input.len(), |&c| usize::from(c).max(1));
        *cut += 1;
        n
    };
    let mut avail = next(&mut cut).min(input.len());
    let mut error = None;
    // each round consumes a byte, makes a byte available, or stops
    for _ in 0..=4 * input.len() + 4 {
        match body.step(&input[pos..avail]) {
            Ok(Step::Payload(n)) => {
                assert!(
                    n > 0 && pos + n <= avail,
                    "payload step of {n} at {pos}/{avail}"
                );
                payload.extend_from_slice(&input[pos..pos + n]);
                pos += n;
            }
            Ok(Step::Framing(n)) => {
                assert!(
                    n > 0 && pos + n <= avail,
                    "framing step of {n} at {pos}/{avail}"
                );
                pos += n;
            }
            Ok(Step::Blocked) => {
                assert_eq!(pos, avail, "blocked with input left");
                if avail == input.len() {
                    break;
                }
                avail = (avail + next(&mut cut)).min(input.len());
            }
            Ok(Step::Done) => {
                assert!(body.is_done());
                break;
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
        if body.is_done() {
            // the next step must say so, consuming nothing
            assert_eq!(body.step(&input[pos..avail]), Ok(Step::Done));
            break;
        }
    }
    // the loop bound was not what stopped it
    assert!(
        error.is_some() || body.is_done() || pos == input.len(),
        "did not terminate: {pos}/{}",
        input.len()
    );
    Outcome {
        payload,
        // on an error, where the framing step that failed began depends on the split
        consumed: if error.is_some() { 0 } else { pos },
        done: body.is_done(),
        error,
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (mode, rest) = (data[0], &data[1..]);
    let ncuts = usize::from(rest[0] & 7).min(rest.len() - 1);
    let (cuts, input) = rest[1..].split_at(ncuts);
    let framing = match mode % 8 {
        0 => Framing::Length(u64::from(mode)),
        1 => Framing::UntilClose,
        2 => Framing::None,
        3 => Framing::Length(u64::MAX),
        _ => Framing::Chunked,
    };

    let split = run(framing, input, cuts);
    let whole = run(framing, input, &[]);
    let bytewise = run(framing, input, &[1]);
    assert_eq!(split, whole, "the outcome depends on the split");
    assert_eq!(
        bytewise, whole,
        "the outcome depends on the split (byte by byte)"
    );

    match framing {
        Framing::None => assert!(whole.done && whole.consumed == 0 && whole.payload.is_empty()),
        Framing::Length(n) => {
            assert!(whole.payload.len() as u64 <= n);
            assert_eq!(whole.consumed, whole.payload.len());
            assert_eq!(whole.done, whole.payload.len() as u64 == n);
        }
        Framing::UntilClose => {
            assert_eq!(whole.payload, input);
            assert!(!whole.done);
        }
        Framing::Chunked => {
            assert!(whole.error.is_some() || whole.payload.len() <= whole.consumed);
            if whole.done {
                let (payload, len) = wire::dechunk(input).expect("accepted, but not chunked");
                assert_eq!(len, whole.consumed, "the message ends elsewhere");
                assert_eq!(payload, whole.payload, "another payload");
            }
        }
    }
});
