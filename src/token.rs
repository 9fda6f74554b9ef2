//! A worker's poll tokens, typed: which socket an event is for. The numbering (client connection
//! `k` even, backend connection `k` odd, listeners and the waker at the top of the token space)
//! lives here and nowhere else.

use mio::Token;

/// What a poll event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tok {
    /// The client connection with this key in the worker's slab.
    Client(usize),
    /// The backend connection with this key in the worker's `Upstreams`.
    Upstream(usize),
    /// The worker's listener with this index (usually one; several after a handover from a
    /// process with more workers).
    Listener(usize),
    /// The worker's `mio::Waker`: control messages, or a backend slot freed.
    Waker,
}

/// Listener `i` is `LISTENERS + i`, far above any connection's token (keys stay below
/// [`MAX_KEY`]).
const LISTENERS: usize = usize::MAX / 2;
const WAKER: usize = usize::MAX - 2;
/// Connection keys stay below this (a slab key must fit a `u32` timer key too).
pub const MAX_KEY: usize = (u32::MAX - 16) as usize;

impl Tok {
    #[inline]
    pub fn token(self) -> Token {
        Token(match self {
            Tok::Client(k) => k * 2,
            Tok::Upstream(k) => k * 2 + 1,
            Tok::Listener(i) => LISTENERS + i,
            Tok::Waker => WAKER,
        })
    }

    #[inline]
    pub fn of(token: Token) -> Tok {
        match token.0 {
            WAKER => Tok::Waker,
            t if t >= LISTENERS => Tok::Listener(t - LISTENERS),
            t if t % 2 == 0 => Tok::Client(t / 2),
            t => Tok::Upstream(t / 2),
        }
    }
}

/// The token of backend connection `key` (what `Upstreams` registers with).
pub fn upstream(key: usize) -> Token {
    Tok::Upstream(key).token()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_reads_back_as_what_it_was_made_from() {
        for tok in [
            Tok::Client(0),
            Tok::Client(7),
            Tok::Upstream(0),
            Tok::Upstream(MAX_KEY),
            Tok::Client(MAX_KEY),
            Tok::Listener(0),
            Tok::Listener(3),
            Tok::Waker,
        ] {
            assert_eq!(Tok::of(tok.token()), tok);
        }
    }
}
