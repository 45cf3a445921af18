//! Response codes the simulator needs beyond `vtpm_wire::ResponseCode`'s
//! named set, and helpers that attach a parameter, handle or session number.

use vtpm_wire::ResponseCode;

/// The result of a command step: a TPM response code on failure.
pub(crate) type TpmResult<T> = Result<T, ResponseCode>;

/// TPM_RC_KEY_SIZE (format 1).
pub(crate) const KEY_SIZE: ResponseCode = ResponseCode(0x087);
/// TPM_RC_MODE (format 1).
pub(crate) const MODE: ResponseCode = ResponseCode(0x089);
/// TPM_RC_TICKET (format 1).
pub(crate) const TICKET: ResponseCode = ResponseCode(0x08C);
/// TPM_RC_NONCE (format 1).
pub(crate) const NONCE: ResponseCode = ResponseCode(0x08F);
/// TPM_RC_SYMMETRIC (format 1).
pub(crate) const SYMMETRIC: ResponseCode = ResponseCode(0x096);
/// TPM_RC_TAG (format 1): a structure tag is wrong.
pub(crate) const TAG: ResponseCode = ResponseCode(0x097);
/// TPM_RC_RESERVED_BITS (format 1).
pub(crate) const RESERVED_BITS: ResponseCode = ResponseCode(0x0A1);
/// TPM_RC_BINDING (format 1): public and sensitive areas do not match.
pub(crate) const BINDING: ResponseCode = ResponseCode(0x0A5);
/// TPM_RC_REFERENCE_H0 (warning): the first handle references an object
/// that is not loaded; H1..H6 follow.
pub(crate) const REFERENCE_H0: ResponseCode = ResponseCode(0x910);
/// TPM_RC_REFERENCE_S0 (warning): the first session references a session
/// that is not loaded; S1..S6 follow.
pub(crate) const REFERENCE_S0: ResponseCode = ResponseCode(0x918);

/// Bits that hold a parameter, handle or session number of a format-1 code.
const NUMBER_BITS: u32 = 0xF40;

fn numbered(rc: ResponseCode) -> bool {
    !rc.is_format1() || rc.0 & NUMBER_BITS != 0
}

/// Ties a format-1 code to parameter `n`; other codes and codes that already
/// carry a number are returned unchanged.
pub(crate) fn at_parameter(rc: ResponseCode, n: u8) -> ResponseCode {
    if numbered(rc) {
        rc
    } else {
        rc.with_parameter(n)
    }
}

/// Ties a format-1 code to handle `n` (1-based).
pub(crate) fn at_handle(rc: ResponseCode, n: u8) -> ResponseCode {
    if numbered(rc) {
        rc
    } else {
        rc.with_handle(n)
    }
}

/// Ties a format-1 code to session `n` (1-based).
pub(crate) fn at_session(rc: ResponseCode, n: u8) -> ResponseCode {
    if numbered(rc) {
        rc
    } else {
        ResponseCode(rc.0 | 0x800 | (u32::from(n & 0x7) << 8))
    }
}

/// Extension trait: `result.param(n)` instead of `map_err(|rc| at_parameter(rc, n))`.
pub(crate) trait AtNumber<T> {
    fn param(self, n: u8) -> TpmResult<T>;
    fn handle(self, n: u8) -> TpmResult<T>;
    fn session(self, n: u8) -> TpmResult<T>;
}

impl<T> AtNumber<T> for TpmResult<T> {
    fn param(self, n: u8) -> TpmResult<T> {
        self.map_err(|rc| at_parameter(rc, n))
    }
    fn handle(self, n: u8) -> TpmResult<T> {
        self.map_err(|rc| at_handle(rc, n))
    }
    fn session(self, n: u8) -> TpmResult<T> {
        self.map_err(|rc| at_session(rc, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_attach_once_and_only_to_format1() {
        assert_eq!(at_parameter(ResponseCode::SIZE, 1).0, 0x1D5);
        assert_eq!(at_handle(ResponseCode::VALUE, 1).0, 0x184);
        assert_eq!(at_session(ResponseCode::AUTH_FAIL, 1).0, 0x98E);
        assert_eq!(at_session(ResponseCode::BAD_AUTH, 2).0, 0xAA2);
        let once = at_parameter(ResponseCode::SIZE, 2);
        assert_eq!(at_parameter(once, 3), once);
        assert_eq!(
            at_parameter(ResponseCode::INITIALIZE, 1),
            ResponseCode::INITIALIZE
        );
        assert_eq!(at_handle(REFERENCE_H0, 1), REFERENCE_H0);
    }
}
