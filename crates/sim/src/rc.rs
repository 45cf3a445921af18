//! Helpers that attach a parameter, handle or session number to a response
//! code (the codes themselves are `vtpm_wire::ResponseCode`'s).

use vtpm_wire::ResponseCode;

/// The result of a command step: a TPM response code on failure.
pub(crate) type TpmResult<T> = Result<T, ResponseCode>;

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
        assert_eq!(
            at_handle(ResponseCode::REFERENCE_H0, 1),
            ResponseCode::REFERENCE_H0
        );
    }
}
