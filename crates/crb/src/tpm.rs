//! The few TPM 2.0 wire facts the device needs (spec-notes §1): a header
//! is `tag u16 | size u32 | code u32`, big-endian. Kept here so the device
//! model depends on no TPM library.

/// Bytes of a command or response header.
pub(crate) const HEADER_SIZE: usize = 10;

/// The size field of a header (whole command or response, header
/// included), if `bytes` reach that far.
pub(crate) fn declared_size(bytes: &[u8]) -> Option<usize> {
    let b = bytes.get(2..6)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// The answer to a command the device refuses itself: TPM_ST_NO_SESSIONS,
/// 10 bytes, TPM_RC_COMMAND_SIZE (0x142).
pub(crate) const COMMAND_SIZE_RESPONSE: [u8; HEADER_SIZE] =
    [0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0x01, 0x42];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_well_formed_ten_byte_error_response() {
        assert_eq!(
            declared_size(&COMMAND_SIZE_RESPONSE),
            Some(COMMAND_SIZE_RESPONSE.len())
        );
        assert_eq!(declared_size(&[0x80, 0x01, 0, 0, 0x01]), None);
    }
}
