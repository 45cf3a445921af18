//! PCR_Read, PCR_Extend and PCR_Reset.

use vtpm_wire::consts::TPM_ALG_SHA256;
use vtpm_wire::{cc, CommandBuilder, Reader, WireError};

use crate::response::Response;

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

#[cfg(test)]
mod tests {
    use super::*;
    use vtpm_wire::consts::TPM_ST_NO_SESSIONS;

    #[test]
    fn pcr_commands_have_their_known_bytes() {
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
