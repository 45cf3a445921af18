//! The command handlers, one module per group, and the structures they share.

pub(crate) mod basic;
pub(crate) mod capability;
pub(crate) mod kem;
pub(crate) mod object;
pub(crate) mod pcr;
pub(crate) mod sequence;
pub(crate) mod signature;

use vtpm_wire::consts::{TPM_RH_ENDORSEMENT, TPM_RH_NULL, TPM_RH_OWNER, TPM_RH_PLATFORM};
use vtpm_wire::ResponseCode;

use crate::crypto::HashAlg;
use crate::pcr::{BANKS, PCR_COUNT, PCR_SELECT_SIZE};
use crate::rc::TpmResult;
use crate::unmarshal::{In, Out};
use crate::Sim;

/// Number of implemented hash algorithms (HASH_COUNT): the most banks a
/// TPML_PCR_SELECTION or digests a TPML_DIGEST_VALUES may list.
pub(crate) const HASH_COUNT: usize = HashAlg::ALL.len();

/// One TPMS_PCR_SELECTION.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PcrSelection {
    pub(crate) hash: HashAlg,
    pub(crate) bitmap: [u8; PCR_SELECT_SIZE],
}

impl PcrSelection {
    pub(crate) fn selected(&self) -> impl Iterator<Item = usize> + '_ {
        (0..PCR_COUNT).filter(|&i| self.bitmap[i / 8] & (1 << (i % 8)) != 0)
    }

    /// True when the bank is allocated (SHA-256 or SHA-384).
    pub(crate) fn allocated(&self) -> bool {
        BANKS.contains(&self.hash)
    }
}

/// Reads a TPML_PCR_SELECTION.
pub(crate) fn read_pcr_selection(r: &mut In<'_>) -> TpmResult<Vec<PcrSelection>> {
    let count = r.u32()? as usize;
    if count > HASH_COUNT {
        return Err(ResponseCode::SIZE);
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let hash = HashAlg::from_alg(r.u16()?).ok_or(ResponseCode::HASH)?;
        let size = usize::from(r.u8()?);
        if size != PCR_SELECT_SIZE {
            // Below TPM_PT_PCR_SELECT_MIN or above what 24 PCRs need.
            return Err(ResponseCode::VALUE);
        }
        let mut bitmap = [0u8; PCR_SELECT_SIZE];
        bitmap.copy_from_slice(r.bytes(PCR_SELECT_SIZE)?);
        out.push(PcrSelection { hash, bitmap });
    }
    Ok(out)
}

/// Writes a TPML_PCR_SELECTION.
pub(crate) fn write_pcr_selection(out: &mut Vec<u8>, selection: &[PcrSelection]) {
    out.put_u32(selection.len() as u32);
    for s in selection {
        out.put_u16(s.hash.alg());
        out.put_u8(PCR_SELECT_SIZE as u8);
        out.extend_from_slice(&s.bitmap);
    }
}

/// TPMI_RH_HIERARCHY+: true for owner, endorsement, platform and NULL.
pub(crate) fn is_hierarchy(handle: u32) -> bool {
    matches!(
        handle,
        TPM_RH_OWNER | TPM_RH_ENDORSEMENT | TPM_RH_PLATFORM | TPM_RH_NULL
    )
}

/// The context-integrity hash (CONTEXT_INTEGRITY_HASH_ALG of the reference
/// implementation) that keys every ticket HMAC (Part 1 Eq. 5), whatever
/// the nameAlg of the key or object the ticket is about.
pub(crate) const TICKET_HASH: HashAlg = HashAlg::Sha256;

/// A TPMT_TK_HASHCHECK from a command.
pub(crate) struct HashCheck<'a> {
    hierarchy: u32,
    digest: &'a [u8],
}

/// Reads a TPMT_TK_HASHCHECK: a wrong tag is TPM_RC_TAG, a bad hierarchy
/// TPM_RC_VALUE.
pub(crate) fn read_hashcheck<'a>(r: &mut In<'a>) -> TpmResult<HashCheck<'a>> {
    if r.u16()? != vtpm_wire::consts::TPM_ST_HASHCHECK {
        return Err(ResponseCode::TAG);
    }
    let hierarchy = r.u32()?;
    if !is_hierarchy(hierarchy) {
        return Err(ResponseCode::VALUE);
    }
    let digest = r.tpm2b(crate::object::MAX_DIGEST)?;
    Ok(HashCheck { hierarchy, digest })
}

impl HashCheck<'_> {
    /// True when the ticket proves that the TPM itself hashed a message to
    /// `digest`: HMAC(proof, TPM_ST_HASHCHECK ‖ digest). No command here
    /// makes such tickets, so only tickets from an earlier state of the same
    /// TPM could pass; a NULL ticket never does.
    pub(crate) fn vouches_for(&self, sim: &Sim, digest: &[u8]) -> bool {
        if self.hierarchy == TPM_RH_NULL || self.digest.is_empty() {
            return false;
        }
        let expected = TICKET_HASH.hmac(
            &sim.proof(self.hierarchy),
            &[&vtpm_wire::consts::TPM_ST_HASHCHECK.to_be_bytes(), digest],
        );
        crate::crypto::secrets_equal(&expected, self.digest)
    }
}
