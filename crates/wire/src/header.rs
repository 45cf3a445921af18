//! The 10-byte header that starts every TPM 2.0 command and response.

use crate::{ResponseCode, WireError};

/// Size of a command or response header.
pub const HEADER_SIZE: usize = 10;

/// A parsed command or response header: `tag u16 | size u32 | code u32`.
///
/// For a command `code` is the command code; for a response it is the
/// response code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// TPM_ST_NO_SESSIONS or TPM_ST_SESSIONS.
    pub tag: u16,
    /// Size of the whole command or response, header included.
    pub size: u32,
    /// Command code or response code.
    pub code: u32,
}

impl Header {
    /// Parses the first 10 bytes. Only the length of `bytes` is checked, not
    /// the size field; see [`Header::parse_exact`].
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let b = bytes.get(..HEADER_SIZE).ok_or(WireError::Truncated {
            offset: 0,
            needed: HEADER_SIZE,
            available: bytes.len(),
        })?;
        Ok(Self {
            tag: u16::from_be_bytes([b[0], b[1]]),
            size: u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
            code: u32::from_be_bytes([b[6], b[7], b[8], b[9]]),
        })
    }

    /// Reads only the size field of a header from its first 6 bytes.
    pub fn peek_size(bytes: &[u8]) -> Option<u32> {
        let b = bytes.get(2..6)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Parses a header and checks that its size field matches `bytes.len()`
    /// and its tag is a TPM 2.0 tag.
    pub fn parse_exact(bytes: &[u8]) -> Result<Self, WireError> {
        let h = Self::parse(bytes)?;
        if (h.size as usize) < HEADER_SIZE {
            return Err(WireError::SizeBelowHeader(h.size));
        }
        if h.size as usize != bytes.len() {
            return Err(WireError::SizeMismatch {
                declared: h.size,
                actual: bytes.len(),
            });
        }
        if h.tag != crate::consts::TPM_ST_NO_SESSIONS && h.tag != crate::consts::TPM_ST_SESSIONS {
            return Err(WireError::BadTag(h.tag));
        }
        Ok(h)
    }

    /// The header's code read as a response code.
    pub fn response_code(&self) -> ResponseCode {
        ResponseCode(self.code)
    }

    /// The 10 bytes of this header.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        out[0..2].copy_from_slice(&self.tag.to_be_bytes());
        out[2..6].copy_from_slice(&self.size.to_be_bytes());
        out[6..10].copy_from_slice(&self.code.to_be_bytes());
        out
    }
}

/// The 10-byte error response a TPM sends for `rc`.
pub fn error_response(rc: ResponseCode) -> [u8; HEADER_SIZE] {
    Header {
        tag: crate::consts::TPM_ST_NO_SESSIONS,
        size: HEADER_SIZE as u32,
        code: rc.0,
    }
    .to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_startup_answer_parses() {
        let h = Header::parse_exact(&[0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0, 0]).unwrap();
        assert_eq!(h.size, 10);
        assert!(h.response_code().is_success());
    }

    #[test]
    fn lying_headers_are_errors() {
        assert!(matches!(
            Header::parse(&[0x80, 0x01, 0]),
            Err(WireError::Truncated { .. })
        ));
        assert_eq!(
            Header::parse_exact(&[0x80, 0x01, 0, 0, 0, 0x0B, 0, 0, 0, 0]),
            Err(WireError::SizeMismatch {
                declared: 11,
                actual: 10
            })
        );
        assert_eq!(
            Header::parse_exact(&[0x80, 0x01, 0, 0, 0, 0x04, 0, 0, 0, 0]),
            Err(WireError::SizeBelowHeader(4))
        );
        assert_eq!(
            Header::parse_exact(&[0x00, 0xC1, 0, 0, 0, 0x0A, 0, 0, 0, 0]),
            Err(WireError::BadTag(0xC1))
        );
    }

    #[test]
    fn error_response_is_ten_bytes() {
        assert_eq!(
            error_response(ResponseCode::COMMAND_SIZE),
            [0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0x01, 0x42]
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = Header::parse(&bytes);
            let _ = Header::parse_exact(&bytes);
            let _ = Header::peek_size(&bytes);
        }

        #[test]
        fn round_trip(tag: u16, size: u32, code: u32) {
            let h = Header { tag, size, code };
            prop_assert_eq!(Header::parse(&h.to_bytes()).unwrap(), h);
        }
    }
}
