//! PCR_Read, PCR_Extend and PCR_Reset.

use vtpm_wire::consts::TPM_RH_NULL;
use vtpm_wire::ResponseCode;

use super::{read_pcr_selection, write_pcr_selection, PcrSelection, HASH_COUNT};
use crate::crypto::HashAlg;
use crate::dispatch::{Command, Reply};
use crate::pcr::{PCR_ATTRIBUTES, PCR_RESET_LOCALITY_4, PCR_SELECT_SIZE};
use crate::rc::{AtNumber, TpmResult};
use crate::unmarshal::Out;
use crate::Sim;

/// A TPML_DIGEST holds at most eight digests.
const MAX_DIGESTS_PER_READ: usize = 8;

/// TPM2_PCR_Read: up to eight values in selection order; PCRs not read
/// (unallocated banks, or beyond eight) are cleared from the returned
/// selection.
pub(crate) fn pcr_read(sim: &mut Sim, cmd: &mut Command<'_>, reply: &mut Reply) -> TpmResult<()> {
    let selection = read_pcr_selection(&mut cmd.params).param(1)?;
    cmd.params.done()?;
    let mut read = Vec::with_capacity(selection.len());
    let mut digests: Vec<&[u8]> = Vec::new();
    for s in &selection {
        let mut out = PcrSelection {
            hash: s.hash,
            bitmap: [0; PCR_SELECT_SIZE],
        };
        if s.allocated() {
            for index in s.selected() {
                if digests.len() == MAX_DIGESTS_PER_READ {
                    break;
                }
                if let Some(value) = sim.pcrs.value(s.hash, index) {
                    digests.push(value);
                    out.bitmap[index / 8] |= 1 << (index % 8);
                }
            }
        }
        read.push(out);
    }
    let p = &mut reply.params;
    p.put_u32(sim.pcrs.update_counter);
    write_pcr_selection(p, &read);
    p.put_u32(digests.len() as u32);
    for d in digests {
        p.put_tpm2b(d);
    }
    Ok(())
}

/// TPM2_PCR_Extend with a TPML_DIGEST_VALUES. TPM_RH_NULL extends nothing;
/// a PCR that may not be extended from this locality is TPM_RC_LOCALITY.
pub(crate) fn pcr_extend(
    sim: &mut Sim,
    cmd: &mut Command<'_>,
    _reply: &mut Reply,
) -> TpmResult<()> {
    let p = &mut cmd.params;
    let count = p.u32().param(1)? as usize;
    if count > HASH_COUNT {
        return Err(ResponseCode::SIZE.with_parameter(1));
    }
    let mut digests = Vec::with_capacity(count);
    for _ in 0..count {
        let hash =
            HashAlg::from_alg(p.u16().param(1)?).ok_or(ResponseCode::HASH.with_parameter(1))?;
        let digest = p.bytes(hash.size()).param(1)?;
        digests.push((hash, digest));
    }
    p.done()?;
    let handle = cmd.handles[0];
    if handle == TPM_RH_NULL {
        return Ok(());
    }
    let index = handle as usize;
    let allowed = PCR_ATTRIBUTES
        .get(index)
        .is_some_and(|a| a.extend & (1 << cmd.locality) != 0);
    if !allowed {
        return Err(ResponseCode::LOCALITY);
    }
    // Changing a PCR that Shutdown(STATE) saved makes that record stale:
    // the next Startup is a TPM Reset (libtpms clears its orderly state).
    if PCR_ATTRIBUTES[index].saved {
        sim.saved_pcrs = None;
    }
    for (hash, digest) in digests {
        sim.pcrs.extend(index, hash, digest);
    }
    Ok(())
}

/// TPM2_PCR_Reset: only PCRs whose reset attribute includes this locality,
/// and never at locality 4.
pub(crate) fn pcr_reset(sim: &mut Sim, cmd: &mut Command<'_>, _reply: &mut Reply) -> TpmResult<()> {
    cmd.params.done()?;
    let index = cmd.handles[0] as usize;
    let allowed = (cmd.locality != 4 || PCR_RESET_LOCALITY_4)
        && PCR_ATTRIBUTES
            .get(index)
            .is_some_and(|a| a.reset & (1 << cmd.locality) != 0);
    if !allowed {
        return Err(ResponseCode::LOCALITY);
    }
    sim.pcrs.reset(index);
    sim.pcrs.count_change(index);
    Ok(())
}
