//! Flow control (RFC 9113 §5.2, §6.9): the windows of a connection and of each of its streams,
//! both ways.
//!
//! - [`SendWindow`]: how many DATA bytes we may still send to the client. WINDOW_UPDATE grows
//!   it (past 2^31-1 is FLOW_CONTROL_ERROR: a stream error on a stream, a connection error on
//!   the connection, §6.9.1); a change of the client's `SETTINGS_INITIAL_WINDOW_SIZE` moves every
//!   stream window by the difference, possibly below zero (§6.9.2; past 2^31-1 is a connection
//!   error). [`sendable`] is what one DATA frame may carry. A stream whose window (or the
//!   connection's) is at 0 stops reading its backend: back-pressure, as a full socket is.
//! - [`RecvWindow`]: how many bytes the client may still send us, and when to give it more.
//!   DATA past the window is FLOW_CONTROL_ERROR (§6.9.1). Credit goes back only for bytes that
//!   left our buffers (`release`), and only in batches: a WINDOW_UPDATE is due once at least
//!   half the target window can be given back, not one per DATA frame.
//!
//! Memory bound this implies: what a client can make us hold for a stream is at most its
//! receive window's `target` (the `SETTINGS_INITIAL_WINDOW_SIZE` we announce; 65,535 for the
//! streams opened before the client saw our SETTINGS, see [`RecvWindow::adjust`]), and for the
//! connection at most the connection window's target, whatever the number of streams. So a
//! stream's window target must not exceed what its request buffer holds, or the connection would
//! have to stop reading for one stream and hold up the others.

use super::error::{ErrorCode, H2Error};
use super::frame::MAX_WINDOW;

fn overflow(stream: u32) -> H2Error {
    let why = "flow-control window over 2^31-1";
    if stream == 0 {
        H2Error::conn(ErrorCode::FlowControlError, why)
    } else {
        H2Error::stream(stream, ErrorCode::FlowControlError, why)
    }
}

/// Our send window on a stream (or on the connection: stream 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendWindow {
    /// May be negative after the client lowered `SETTINGS_INITIAL_WINDOW_SIZE` (§6.9.2).
    window: i64,
}

impl SendWindow {
    /// A window of `initial` bytes (at most 2^31-1, as SETTINGS parsing guarantees).
    pub fn new(initial: u32) -> SendWindow {
        SendWindow {
            window: i64::from(initial.min(MAX_WINDOW)),
        }
    }

    /// The window, negative when the client took back more than was left.
    pub fn get(&self) -> i64 {
        self.window
    }

    /// Bytes we may send now.
    pub fn available(&self) -> usize {
        usize::try_from(self.window).unwrap_or(0)
    }

    /// `n` bytes of DATA were sent (at most [`available`](Self::available)).
    pub fn spend(&mut self, n: usize) {
        self.window -= i64::try_from(n).unwrap_or(i64::MAX).min(self.window.max(0));
    }

    /// A WINDOW_UPDATE for `stream` (0: the connection) of `increment` (1..=2^31-1, as frame
    /// parsing guarantees).
    pub fn grow(&mut self, increment: u32, stream: u32) -> Result<(), H2Error> {
        let w = self.window + i64::from(increment);
        if w > i64::from(MAX_WINDOW) {
            return Err(overflow(stream));
        }
        self.window = w;
        Ok(())
    }

    /// The client's `SETTINGS_INITIAL_WINDOW_SIZE` went from `old` to `new`: every stream window
    /// moves by the difference (§6.9.2). Past 2^31-1 is a connection error.
    pub fn adjust(&mut self, old: u32, new: u32) -> Result<(), H2Error> {
        let w = self.window + i64::from(new) - i64::from(old);
        if w > i64::from(MAX_WINDOW) {
            return Err(overflow(0));
        }
        self.window = w;
        Ok(())
    }
}

/// What one DATA frame may carry: `want` bytes, within both windows and the client's
/// `SETTINGS_MAX_FRAME_SIZE`.
pub fn sendable(conn: &SendWindow, stream: &SendWindow, max_frame_size: u32, want: usize) -> usize {
    want.min(conn.available())
        .min(stream.available())
        .min(max_frame_size as usize)
}

/// Our receive window on a stream (or on the connection: stream 0), and the WINDOW_UPDATE policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvWindow {
    /// What the client may still send before our next WINDOW_UPDATE (as the client sees it).
    window: i64,
    /// Bytes received and not yet released (still in our buffers).
    held: u64,
    /// The window we keep giving the client.
    target: u32,
}

impl RecvWindow {
    /// The client starts with a window of `initial` bytes (65,535 for the connection, §6.9.2;
    /// our `SETTINGS_INITIAL_WINDOW_SIZE` for a stream), and we keep it at `target` (at most
    /// 2^31-1). A connection window with a target above 65,535 has an update due at once.
    pub fn new(initial: u32, target: u32) -> RecvWindow {
        RecvWindow {
            window: i64::from(initial.min(MAX_WINDOW)),
            held: 0,
            target: target.min(MAX_WINDOW),
        }
    }

    /// What the client may still send.
    pub fn get(&self) -> i64 {
        self.window
    }

    /// Bytes received and not released.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// A DATA frame of `flow_len` bytes (padding included) arrived on `stream`.
    pub fn receive(&mut self, flow_len: u32, stream: u32) -> Result<(), H2Error> {
        let n = i64::from(flow_len);
        if n > self.window {
            let why = "DATA past the flow-control window";
            return Err(if stream == 0 {
                H2Error::conn(ErrorCode::FlowControlError, why)
            } else {
                H2Error::stream(stream, ErrorCode::FlowControlError, why)
            });
        }
        self.window -= n;
        self.held += u64::from(flow_len);
        Ok(())
    }

    /// `n` bytes left our buffers (forwarded, or padding and discarded data at once).
    pub fn release(&mut self, n: usize) {
        self.held = self.held.saturating_sub(n as u64);
    }

    /// The increment of a WINDOW_UPDATE to send now, if one is due: the credit we can give back
    /// (target minus what the client may send minus what we hold) once it reaches half the
    /// target. The window is taken as updated.
    pub fn update(&mut self) -> Option<u32> {
        let held = i64::try_from(self.held).unwrap_or(i64::MAX);
        let credit = i64::from(self.target) - self.window - held;
        let threshold = i64::from((self.target / 2).max(1));
        if credit < threshold {
            return None;
        }
        self.window += credit;
        u32::try_from(credit).ok()
    }

    /// Our `SETTINGS_INITIAL_WINDOW_SIZE` took effect (the client acknowledged it): a stream
    /// opened before moves from the `old` window to the `new` one, as the client moves it
    /// (§6.9.2), and keeps `new` as its target.
    pub fn adjust(&mut self, old: u32, new: u32) {
        self.window += i64::from(new) - i64::from(old);
        self.target = new.min(MAX_WINDOW);
    }

    /// Keep the window at `target` from now on (for the connection window).
    pub fn set_target(&mut self, target: u32) {
        self.target = target.min(MAX_WINDOW);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_window_spends_grows_and_overflows() {
        let mut w = SendWindow::new(65_535);
        assert_eq!(w.available(), 65_535);
        w.spend(65_535);
        assert_eq!(w.available(), 0);
        w.grow(10, 1).unwrap();
        assert_eq!(w.available(), 10);
        // 2^31-1 is the most; one more is FLOW_CONTROL_ERROR, on the stream or the connection
        let mut w = SendWindow::new(MAX_WINDOW - 5);
        w.grow(5, 3).unwrap();
        assert_eq!(w.get(), i64::from(MAX_WINDOW));
        let e = w.grow(1, 3).unwrap_err();
        assert_eq!(e, H2Error::stream(3, ErrorCode::FlowControlError, e.why()));
        let e = w.grow(1, 0).unwrap_err();
        assert!(e.is_connection() && e.code() == ErrorCode::FlowControlError);
        // unchanged by a refused update
        assert_eq!(w.get(), i64::from(MAX_WINDOW));
    }

    #[test]
    fn initial_window_changes_move_streams_below_zero_and_back() {
        let mut w = SendWindow::new(65_535);
        w.spend(60_000);
        // the client lowers SETTINGS_INITIAL_WINDOW_SIZE to 1000: 5535 - 64535 < 0
        w.adjust(65_535, 1000).unwrap();
        assert_eq!(w.get(), 5535 - 64_535);
        assert_eq!(w.available(), 0);
        w.grow(60_000, 1).unwrap();
        assert_eq!(w.get(), 1000);
        // raising it so far that a window passes 2^31-1: a connection error
        w.grow(10, 1).unwrap();
        let e = w.adjust(1000, MAX_WINDOW).unwrap_err();
        assert!(e.is_connection() && e.code() == ErrorCode::FlowControlError);
    }

    #[test]
    fn sendable_is_the_least_of_both_windows_and_the_frame_size() {
        let conn = SendWindow::new(100_000);
        let stream = SendWindow::new(50_000);
        assert_eq!(sendable(&conn, &stream, 16_384, 1 << 20), 16_384);
        assert_eq!(sendable(&conn, &stream, 1 << 20, 1 << 20), 50_000);
        assert_eq!(sendable(&conn, &stream, 16_384, 7), 7);
        let mut zero = SendWindow::new(10);
        zero.spend(10);
        assert_eq!(sendable(&conn, &zero, 16_384, 7), 0);
    }

    #[test]
    fn receive_past_the_window_is_an_error() {
        let mut r = RecvWindow::new(100, 100);
        r.receive(60, 1).unwrap();
        r.receive(40, 1).unwrap();
        let e = r.receive(1, 1).unwrap_err();
        assert_eq!(e.code(), ErrorCode::FlowControlError);
        assert!(!e.is_connection());
        let mut c = RecvWindow::new(10, 10);
        assert!(c.receive(11, 0).unwrap_err().is_connection());
    }

    #[test]
    fn updates_are_batched_and_only_for_released_bytes() {
        let mut r = RecvWindow::new(65_535, 65_535);
        assert_eq!(r.update(), None);
        // 100 frames of 400 bytes, each released at once: one update, once half the window is
        // free again (82 frames)
        let mut updates = Vec::new();
        for _ in 0..100 {
            r.receive(400, 1).unwrap();
            r.release(400);
            if let Some(n) = r.update() {
                updates.push(n);
            }
        }
        assert_eq!(updates, [32_800]);
        assert_eq!(r.get(), 65_535 - 400 * 18);
        // bytes still held earn no credit: the client's window stays shut while they wait
        let mut r = RecvWindow::new(1000, 1000);
        r.receive(1000, 1).unwrap();
        assert_eq!(r.update(), None);
        r.release(400);
        assert_eq!(r.update(), None);
        r.release(100);
        assert_eq!(r.update(), Some(500));
        assert_eq!(r.get(), 500);
        assert_eq!(r.held(), 500);
        // never more in flight and held together than the target
        r.release(500);
        assert_eq!(r.update(), Some(500));
        assert_eq!(r.get(), 1000);
    }

    #[test]
    fn a_connection_target_above_the_default_is_given_at_once() {
        let mut c = RecvWindow::new(65_535, 1 << 20);
        assert_eq!(c.update(), Some((1 << 20) - 65_535));
        assert_eq!(c.get(), 1 << 20);
        assert_eq!(c.update(), None);
    }

    #[test]
    fn our_initial_window_taking_effect_moves_early_streams() {
        // a stream opened before the client saw our SETTINGS (16 KiB) started at 65,535
        let mut r = RecvWindow::new(65_535, 65_535);
        r.receive(20_000, 1).unwrap();
        r.adjust(65_535, 16_384);
        assert_eq!(r.get(), 45_535 - 49_151);
        assert!(r.receive(1, 1).is_err());
        r.release(20_000);
        assert_eq!(r.update(), Some(16_384 + 3616));
        assert_eq!(r.get(), 16_384);
    }
}
