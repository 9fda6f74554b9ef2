//! HTTP/2 errors (RFC 9113 §5.4, §7): the error codes, and an error that says whether it ends
//! the whole connection (GOAWAY, §5.4.1) or only one stream (RST_STREAM, §5.4.2). Every check in
//! `frame.rs`, `flow.rs`, `hpack/` and `convert/` answers with one of these, with a short static
//! reason for the log and the tests.

use std::fmt;

/// An RFC 9113 §7 error code. Codes a peer sends that this list does not know are kept as their
/// number where they are read (RST_STREAM, GOAWAY); §7 says to treat them as `InternalError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ErrorCode {
    NoError = 0x0,
    ProtocolError = 0x1,
    InternalError = 0x2,
    FlowControlError = 0x3,
    SettingsTimeout = 0x4,
    StreamClosed = 0x5,
    FrameSizeError = 0x6,
    RefusedStream = 0x7,
    Cancel = 0x8,
    CompressionError = 0x9,
    ConnectError = 0xa,
    EnhanceYourCalm = 0xb,
    InadequateSecurity = 0xc,
    Http11Required = 0xd,
}

impl ErrorCode {
    /// The code on the wire.
    #[inline]
    pub fn to_u32(self) -> u32 {
        self as u32
    }

    /// A known code, or `None` (§7: an unknown code is treated as `InternalError`).
    pub fn from_u32(n: u32) -> Option<ErrorCode> {
        use ErrorCode::*;
        Some(match n {
            0x0 => NoError,
            0x1 => ProtocolError,
            0x2 => InternalError,
            0x3 => FlowControlError,
            0x4 => SettingsTimeout,
            0x5 => StreamClosed,
            0x6 => FrameSizeError,
            0x7 => RefusedStream,
            0x8 => Cancel,
            0x9 => CompressionError,
            0xa => ConnectError,
            0xb => EnhanceYourCalm,
            0xc => InadequateSecurity,
            0xd => Http11Required,
            _ => return None,
        })
    }

    /// The name RFC 9113 gives it.
    pub fn name(self) -> &'static str {
        use ErrorCode::*;
        match self {
            NoError => "NO_ERROR",
            ProtocolError => "PROTOCOL_ERROR",
            InternalError => "INTERNAL_ERROR",
            FlowControlError => "FLOW_CONTROL_ERROR",
            SettingsTimeout => "SETTINGS_TIMEOUT",
            StreamClosed => "STREAM_CLOSED",
            FrameSizeError => "FRAME_SIZE_ERROR",
            RefusedStream => "REFUSED_STREAM",
            Cancel => "CANCEL",
            CompressionError => "COMPRESSION_ERROR",
            ConnectError => "CONNECT_ERROR",
            EnhanceYourCalm => "ENHANCE_YOUR_CALM",
            InadequateSecurity => "INADEQUATE_SECURITY",
            Http11Required => "HTTP_1_1_REQUIRED",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a protocol violation costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H2Error {
    /// The connection ends: GOAWAY with `code`, then close (§5.4.1).
    Connection { code: ErrorCode, why: &'static str },
    /// Stream `id` ends: RST_STREAM with `code` (§5.4.2); the connection goes on.
    Stream {
        id: u32,
        code: ErrorCode,
        why: &'static str,
    },
}

impl H2Error {
    #[inline]
    pub const fn conn(code: ErrorCode, why: &'static str) -> H2Error {
        H2Error::Connection { code, why }
    }

    #[inline]
    pub const fn stream(id: u32, code: ErrorCode, why: &'static str) -> H2Error {
        H2Error::Stream { id, code, why }
    }

    /// The error code to send.
    pub fn code(&self) -> ErrorCode {
        match *self {
            H2Error::Connection { code, .. } | H2Error::Stream { code, .. } => code,
        }
    }

    /// True when the whole connection must end.
    pub fn is_connection(&self) -> bool {
        matches!(self, H2Error::Connection { .. })
    }

    /// The reason, for the log.
    pub fn why(&self) -> &'static str {
        match *self {
            H2Error::Connection { why, .. } | H2Error::Stream { why, .. } => why,
        }
    }
}

impl fmt::Display for H2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            H2Error::Connection { code, why } => write!(f, "connection error {code}: {why}"),
            H2Error::Stream { id, code, why } => write!(f, "stream {id} error {code}: {why}"),
        }
    }
}

impl std::error::Error for H2Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for n in 0..=0xd {
            let code = ErrorCode::from_u32(n).unwrap();
            assert_eq!(code.to_u32(), n);
        }
        assert_eq!(ErrorCode::from_u32(0xe), None);
        assert_eq!(ErrorCode::EnhanceYourCalm.name(), "ENHANCE_YOUR_CALM");
        let e = H2Error::stream(3, ErrorCode::ProtocolError, "te other than trailers");
        assert!(!e.is_connection());
        assert_eq!(
            e.to_string(),
            "stream 3 error PROTOCOL_ERROR: te other than trailers"
        );
    }
}
