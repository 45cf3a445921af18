//! Startup, Shutdown, SelfTest, GetRandom and GetCapability.

use vtpm_wire::consts::TPM_CAP_TPM_PROPERTIES;
use vtpm_wire::{cc, CommandBuilder, Reader, WireError};

use crate::response::Response;

/// TPM2_Startup(`su`).
pub fn startup(su: u16) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::STARTUP).u16(su).finish()
}

/// TPM2_Shutdown(`su`).
pub fn shutdown(su: u16) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::SHUTDOWN).u16(su).finish()
}

/// TPM2_SelfTest(fullTest).
pub fn self_test(full: bool) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::SELF_TEST)
        .u8(u8::from(full))
        .finish()
}

/// TPM2_GetRandom(`bytes`).
pub fn get_random(bytes: u16) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::GET_RANDOM)
        .u16(bytes)
        .finish()
}

/// TPM2_GetCapability(`capability`, `property`, `count`).
pub fn get_capability(capability: u32, property: u32, count: u32) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::GET_CAPABILITY)
        .u32(capability)
        .u32(property)
        .u32(count)
        .finish()
}

/// A command of exactly `size` bytes: GetRandom padded with trailing zero
/// bytes. A TPM that receives every byte answers TPM_RC_SIZE (trailing
/// bytes); a truncated one answers TPM_RC_COMMAND_SIZE.
pub fn padded_get_random(size: usize) -> Vec<u8> {
    let mut cmd = get_random(8);
    if size > cmd.len() {
        cmd.resize(size, 0);
        let n = size as u32;
        cmd[2..6].copy_from_slice(&n.to_be_bytes());
    }
    cmd
}

/// The random bytes of a TPM2_GetRandom response.
pub fn parse_get_random(bytes: &[u8]) -> Result<Vec<u8>, WireError> {
    let mut r = Reader::new(Response::parse(bytes)?.success_body()?);
    let out = r.tpm2b()?.to_vec();
    r.finish()?;
    Ok(out)
}

/// The (property, value) pairs of a GetCapability(TPM_CAP_TPM_PROPERTIES) response.
pub fn parse_tpm_properties(bytes: &[u8]) -> Result<Vec<(u32, u32)>, WireError> {
    let mut r = Reader::new(Response::parse(bytes)?.success_body()?);
    let _more = r.u8()?;
    let cap = r.u32()?;
    if cap != TPM_CAP_TPM_PROPERTIES {
        return Err(WireError::BadValue {
            field: "capability",
            value: u64::from(cap),
        });
    }
    let count = r.u32()?;
    let mut out = Vec::new();
    for _ in 0..count.min(256) {
        out.push((r.u32()?, r.u32()?));
    }
    r.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vtpm_wire::consts::TPM_SU_CLEAR;
    use vtpm_wire::{Header, ResponseCode};

    #[test]
    fn startup_has_its_known_bytes() {
        assert_eq!(
            startup(TPM_SU_CLEAR),
            [0x80, 0x01, 0, 0, 0, 0x0C, 0, 0, 0x01, 0x44, 0, 0]
        );
    }

    #[test]
    fn padded_command_has_exact_size() {
        let c = padded_get_random(4096);
        assert_eq!(c.len(), 4096);
        assert_eq!(Header::parse_exact(&c).unwrap().size, 4096);
    }

    #[test]
    fn get_random_response_parses_and_rejects_lies() {
        let ok = [0x80, 0x01, 0, 0, 0, 0x0E, 0, 0, 0, 0, 0, 2, 0xAB, 0xCD];
        assert_eq!(parse_get_random(&ok).unwrap(), vec![0xAB, 0xCD]);
        let short = [0x80, 0x01, 0, 0, 0, 0x0E, 0, 0, 0, 0, 0, 3, 0xAB, 0xCD];
        assert!(matches!(
            parse_get_random(&short),
            Err(WireError::Truncated { .. })
        ));
        let err = vtpm_wire::error_response(ResponseCode::INITIALIZE);
        assert_eq!(
            parse_get_random(&err),
            Err(WireError::Tpm(ResponseCode::INITIALIZE))
        );
    }
}
