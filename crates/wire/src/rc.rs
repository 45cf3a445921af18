//! TPM 2.0 response codes.

use std::fmt;

/// A TPM_RC value with a readable name.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseCode(pub u32);

impl ResponseCode {
    /// TPM_RC_SUCCESS.
    pub const SUCCESS: Self = Self(0x000);
    /// TPM_RC_BAD_TAG.
    pub const BAD_TAG: Self = Self(0x01E);
    /// TPM_RC_INITIALIZE: Startup has not been sent yet.
    pub const INITIALIZE: Self = Self(0x100);
    /// TPM_RC_FAILURE: the TPM is in failure mode (or not initialised).
    pub const FAILURE: Self = Self(0x101);
    /// TPM_RC_DISABLED.
    pub const DISABLED: Self = Self(0x120);
    /// TPM_RC_AUTH_MISSING.
    pub const AUTH_MISSING: Self = Self(0x125);
    /// TPM_RC_AUTH_UNAVAILABLE.
    pub const AUTH_UNAVAILABLE: Self = Self(0x12F);
    /// TPM_RC_COMMAND_SIZE: the header size disagrees with the bytes, or exceeds the buffer.
    pub const COMMAND_SIZE: Self = Self(0x142);
    /// TPM_RC_COMMAND_CODE: unknown command.
    pub const COMMAND_CODE: Self = Self(0x143);
    /// TPM_RC_AUTHSIZE.
    pub const AUTHSIZE: Self = Self(0x144);
    /// TPM_RC_AUTH_CONTEXT.
    pub const AUTH_CONTEXT: Self = Self(0x145);
    /// TPM_RC_VALUE (format 1).
    pub const VALUE: Self = Self(0x084);
    /// TPM_RC_HANDLE (format 1).
    pub const HANDLE: Self = Self(0x08B);
    /// TPM_RC_INTEGRITY (format 1).
    pub const INTEGRITY: Self = Self(0x09F);
    /// TPM_RC_SIZE (format 1).
    pub const SIZE: Self = Self(0x095);
    /// TPM_RC_INSUFFICIENT (format 1).
    pub const INSUFFICIENT: Self = Self(0x09A);
    /// TPM_RC_SIGNATURE (format 1).
    pub const SIGNATURE: Self = Self(0x09B);
    /// TPM_RC_BAD_AUTH (format 1).
    pub const BAD_AUTH: Self = Self(0x0A2);
    /// TPM_RC_AUTH_FAIL (format 1).
    pub const AUTH_FAIL: Self = Self(0x08E);
    /// TPM_RC_KEY (format 1).
    pub const KEY: Self = Self(0x09C);
    /// TPM_RC_SCHEME (format 1).
    pub const SCHEME: Self = Self(0x092);
    /// TPM_RC_HASH (format 1).
    pub const HASH: Self = Self(0x083);
    /// TPM_RC_ATTRIBUTES (format 1).
    pub const ATTRIBUTES: Self = Self(0x082);
    /// TPM_RC_TYPE (format 1).
    pub const TYPE: Self = Self(0x08A);
    /// TPM_RC_PARMS (v1.85): the parameter set is not supported.
    pub const PARMS: Self = Self(0x0AA);
    /// TPM_RC_EXT_MU (v1.85): the key does not allow an external μ.
    pub const EXT_MU: Self = Self(0x0AB);
    /// TPM_RC_ONE_SHOT_SIGNATURE (v1.85): the whole message must arrive in one buffer.
    pub const ONE_SHOT_SIGNATURE: Self = Self(0x0AC);
    /// TPM_RC_SIGN_CONTEXT_KEY (v1.85): a sequence finished with another key.
    pub const SIGN_CONTEXT_KEY: Self = Self(0x0AD);
    /// TPM_RC_KEY_SIZE (format 1).
    pub const KEY_SIZE: Self = Self(0x087);
    /// TPM_RC_MODE (format 1).
    pub const MODE: Self = Self(0x089);
    /// TPM_RC_TICKET (format 1).
    pub const TICKET: Self = Self(0x08C);
    /// TPM_RC_NONCE (format 1).
    pub const NONCE: Self = Self(0x08F);
    /// TPM_RC_SYMMETRIC (format 1).
    pub const SYMMETRIC: Self = Self(0x096);
    /// TPM_RC_TAG (format 1): a structure tag is wrong.
    pub const TAG: Self = Self(0x097);
    /// TPM_RC_RESERVED_BITS (format 1).
    pub const RESERVED_BITS: Self = Self(0x0A1);
    /// TPM_RC_BINDING (format 1): public and sensitive areas do not match.
    pub const BINDING: Self = Self(0x0A5);
    /// TPM_RC_REFERENCE_H0 (warning): the first handle references an object
    /// that is not loaded; H1..H6 follow.
    pub const REFERENCE_H0: Self = Self(0x910);
    /// TPM_RC_REFERENCE_S0 (warning): the first session references a session
    /// that is not loaded; S1..S6 follow.
    pub const REFERENCE_S0: Self = Self(0x918);
    /// TPM_RC_LOCALITY.
    pub const LOCALITY: Self = Self(0x907);
    /// TPM_RC_OBJECT_MEMORY.
    pub const OBJECT_MEMORY: Self = Self(0x902);
    /// TPM_RC_CANCELED.
    pub const CANCELED: Self = Self(0x909);
    /// TPM_RC_RETRY.
    pub const RETRY: Self = Self(0x922);

    /// True for TPM_RC_SUCCESS.
    pub fn is_success(self) -> bool {
        self.0 == 0
    }

    /// True when bit 7 marks a format-1 code (which may carry a parameter,
    /// handle or session number).
    pub fn is_format1(self) -> bool {
        self.0 & 0x080 != 0
    }

    /// The code without the parameter/handle/session number of a format-1 code.
    pub fn base(self) -> Self {
        if self.is_format1() {
            Self(self.0 & 0x0BF)
        } else {
            self
        }
    }

    /// A format-1 code tied to parameter `n` (1-based), as the TPM reports it.
    pub fn with_parameter(self, n: u8) -> Self {
        Self(self.0 | 0x040 | (u32::from(n & 0xF) << 8))
    }

    /// A format-1 code tied to handle `n` (1-based).
    pub fn with_handle(self, n: u8) -> Self {
        Self(self.0 | (u32::from(n & 0x7) << 8))
    }

    /// A format-1 code tied to session `n` (1-based) of the authorization area.
    pub fn with_session(self, n: u8) -> Self {
        Self(self.0 | 0x800 | (u32::from(n & 0x7) << 8))
    }

    /// The symbolic name of the base code, or `None` for a code this crate does not name.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.base() {
            Self::SUCCESS => "TPM_RC_SUCCESS",
            Self::BAD_TAG => "TPM_RC_BAD_TAG",
            Self::INITIALIZE => "TPM_RC_INITIALIZE",
            Self::FAILURE => "TPM_RC_FAILURE",
            Self::DISABLED => "TPM_RC_DISABLED",
            Self::AUTH_MISSING => "TPM_RC_AUTH_MISSING",
            Self::AUTH_UNAVAILABLE => "TPM_RC_AUTH_UNAVAILABLE",
            Self::COMMAND_SIZE => "TPM_RC_COMMAND_SIZE",
            Self::COMMAND_CODE => "TPM_RC_COMMAND_CODE",
            Self::AUTHSIZE => "TPM_RC_AUTHSIZE",
            Self::AUTH_CONTEXT => "TPM_RC_AUTH_CONTEXT",
            Self::VALUE => "TPM_RC_VALUE",
            Self::HANDLE => "TPM_RC_HANDLE",
            Self::INTEGRITY => "TPM_RC_INTEGRITY",
            Self::SIZE => "TPM_RC_SIZE",
            Self::INSUFFICIENT => "TPM_RC_INSUFFICIENT",
            Self::SIGNATURE => "TPM_RC_SIGNATURE",
            Self::BAD_AUTH => "TPM_RC_BAD_AUTH",
            Self::AUTH_FAIL => "TPM_RC_AUTH_FAIL",
            Self::KEY => "TPM_RC_KEY",
            Self::SCHEME => "TPM_RC_SCHEME",
            Self::HASH => "TPM_RC_HASH",
            Self::ATTRIBUTES => "TPM_RC_ATTRIBUTES",
            Self::TYPE => "TPM_RC_TYPE",
            Self::LOCALITY => "TPM_RC_LOCALITY",
            Self::OBJECT_MEMORY => "TPM_RC_OBJECT_MEMORY",
            Self::CANCELED => "TPM_RC_CANCELED",
            Self::RETRY => "TPM_RC_RETRY",
            Self::KEY_SIZE => "TPM_RC_KEY_SIZE",
            Self::MODE => "TPM_RC_MODE",
            Self::TICKET => "TPM_RC_TICKET",
            Self::NONCE => "TPM_RC_NONCE",
            Self::SYMMETRIC => "TPM_RC_SYMMETRIC",
            Self::TAG => "TPM_RC_TAG",
            Self::RESERVED_BITS => "TPM_RC_RESERVED_BITS",
            Self::BINDING => "TPM_RC_BINDING",
            Self::REFERENCE_H0 => "TPM_RC_REFERENCE_H0",
            Self::REFERENCE_S0 => "TPM_RC_REFERENCE_S0",
            Self::PARMS => "TPM_RC_PARMS",
            Self::EXT_MU => "TPM_RC_EXT_MU",
            Self::ONE_SHOT_SIGNATURE => "TPM_RC_ONE_SHOT_SIGNATURE",
            Self::SIGN_CONTEXT_KEY => "TPM_RC_SIGN_CONTEXT_KEY",
            _ => return None,
        })
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({:#05x})", self.0),
            None => write!(f, "{:#05x}", self.0),
        }
    }
}

impl fmt::Debug for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<u32> for ResponseCode {
    fn from(v: u32) -> Self {
        Self(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format1_parameter_codes_keep_their_base() {
        let rc = ResponseCode::VALUE.with_parameter(1);
        assert_eq!(rc.0, 0x1C4);
        assert_eq!(rc.base(), ResponseCode::VALUE);
        assert_eq!(rc.to_string(), "TPM_RC_VALUE (0x1c4)");
        assert_eq!(
            ResponseCode::COMMAND_SIZE.base(),
            ResponseCode::COMMAND_SIZE
        );
        assert_eq!(ResponseCode(0x095).to_string(), "TPM_RC_SIZE (0x095)");
    }

    #[test]
    fn format1_session_and_handle_codes_carry_their_number() {
        assert_eq!(ResponseCode::AUTH_FAIL.with_session(1).0, 0x98E);
        assert_eq!(
            ResponseCode::AUTH_FAIL.with_session(1).base(),
            ResponseCode::AUTH_FAIL
        );
        assert_eq!(ResponseCode::HANDLE.with_handle(1).0, 0x18B);
    }
}
