//! Builders for the commands vtpm sends, and parsers for their answers.

use crate::consts::*;
use crate::{cc, CommandBuilder, Header, Reader, ResponseCode, WireError, HEADER_SIZE};

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

/// A TPML_PCR_SELECTION with one bank and the given PCRs (3-byte bitmap).
fn pcr_selection(b: CommandBuilder, hash: u16, pcrs: &[u8]) -> CommandBuilder {
    let mut bitmap = [0u8; 3];
    for &p in pcrs.iter().filter(|&&p| p < 24) {
        bitmap[usize::from(p / 8)] |= 1 << (p % 8);
    }
    b.u32(1).u16(hash).u8(3).bytes(&bitmap)
}

/// TPM2_PCR_Read of `pcrs` in bank `hash`.
pub fn pcr_read(hash: u16, pcrs: &[u8]) -> Vec<u8> {
    pcr_selection(CommandBuilder::no_sessions(cc::PCR_READ), hash, pcrs).finish()
}

/// TPM2_PCR_Extend of PCR `pcr` with one SHA-256 digest, empty password.
pub fn pcr_extend_sha256(pcr: u32, digest: &[u8; 32]) -> Vec<u8> {
    CommandBuilder::with_sessions(cc::PCR_EXTEND)
        .u32(pcr)
        .password_session(&[])
        .u32(1)
        .u16(TPM_ALG_SHA256)
        .bytes(digest)
        .finish()
}

/// TPM2_PCR_Reset of PCR `pcr`, empty password.
pub fn pcr_reset(pcr: u32) -> Vec<u8> {
    CommandBuilder::with_sessions(cc::PCR_RESET)
        .u32(pcr)
        .password_session(&[])
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

/// A parsed response: its header and the bytes after it.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    /// The response header.
    pub header: Header,
    /// Everything after the header (for a session response: parameterSize,
    /// parameters and the session area).
    pub body: &'a [u8],
}

impl<'a> Response<'a> {
    /// Parses a whole response; its size field must match the bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let header = Header::parse_exact(bytes)?;
        Ok(Self {
            header,
            body: &bytes[HEADER_SIZE..],
        })
    }

    /// The response code.
    pub fn rc(&self) -> ResponseCode {
        self.header.response_code()
    }

    /// The body, or the response code as an error when it is not success.
    pub fn success_body(&self) -> Result<&'a [u8], WireError> {
        if self.rc().is_success() {
            Ok(self.body)
        } else {
            Err(WireError::Tpm(self.rc()))
        }
    }
}

/// The random bytes of a TPM2_GetRandom response.
pub fn parse_get_random(bytes: &[u8]) -> Result<Vec<u8>, WireError> {
    let mut r = Reader::new(Response::parse(bytes)?.success_body()?);
    let out = r.tpm2b()?.to_vec();
    r.finish()?;
    Ok(out)
}

/// A parsed TPM2_PCR_Read response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrReadOutput {
    /// pcrUpdateCounter.
    pub update_counter: u32,
    /// The selection the TPM actually read: (hash, bitmap).
    pub selection: Vec<(u16, Vec<u8>)>,
    /// The digests, in selection order.
    pub digests: Vec<Vec<u8>>,
}

/// Parses a TPM2_PCR_Read response.
pub fn parse_pcr_read(bytes: &[u8]) -> Result<PcrReadOutput, WireError> {
    let mut r = Reader::new(Response::parse(bytes)?.success_body()?);
    let update_counter = r.u32()?;
    let banks = r.u32()?;
    let mut selection = Vec::new();
    for _ in 0..banks.min(16) {
        let hash = r.u16()?;
        let n = r.u8()?;
        selection.push((hash, r.bytes(usize::from(n))?.to_vec()));
    }
    let count = r.u32()?;
    let mut digests = Vec::new();
    for _ in 0..count.min(64) {
        digests.push(r.tpm2b()?.to_vec());
    }
    r.finish()?;
    Ok(PcrReadOutput {
        update_counter,
        selection,
        digests,
    })
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

    #[test]
    fn known_good_bytes() {
        assert_eq!(
            startup(TPM_SU_CLEAR),
            [0x80, 0x01, 0, 0, 0, 0x0C, 0, 0, 0x01, 0x44, 0, 0]
        );
        assert_eq!(
            pcr_read(TPM_ALG_SHA256, &[0]),
            [0x80, 0x01, 0, 0, 0, 0x14, 0, 0, 0x01, 0x7E, 0, 0, 0, 1, 0, 0x0B, 3, 1, 0, 0]
        );
        let ext = pcr_extend_sha256(16, &[0xAA; 32]);
        assert_eq!(ext.len(), 10 + 4 + 4 + 9 + 4 + 2 + 32);
        assert_eq!(&ext[0..2], &[0x80, 0x02]);
        assert_eq!(&ext[14..27], &[0, 0, 0, 9, 0x40, 0, 0, 9, 0, 0, 0, 0, 0]);
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
        let err = crate::error_response(ResponseCode::INITIALIZE);
        assert_eq!(
            parse_get_random(&err),
            Err(WireError::Tpm(ResponseCode::INITIALIZE))
        );
    }

    #[test]
    fn pcr_read_response_parses() {
        let mut resp = CommandBuilder::no_sessions(0)
            .u32(7)
            .u32(1)
            .u16(TPM_ALG_SHA256)
            .u8(3)
            .bytes(&[1, 0, 0])
            .u32(1)
            .tpm2b(&[0x11; 32])
            .finish();
        resp[0..2].copy_from_slice(&TPM_ST_NO_SESSIONS.to_be_bytes());
        let out = parse_pcr_read(&resp).unwrap();
        assert_eq!(out.update_counter, 7);
        assert_eq!(out.digests, vec![vec![0x11; 32]]);
        assert_eq!(resp.len(), 62);
    }
}
