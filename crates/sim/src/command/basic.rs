//! Startup, Shutdown, SelfTest and GetRandom.

use vtpm_wire::consts::{TPM_SU_CLEAR, TPM_SU_STATE};
use vtpm_wire::ResponseCode;

use crate::dispatch::{Command, Reply};
use crate::pcr::Pcrs;
use crate::rc::{AtNumber, TpmResult};
use crate::unmarshal::Out;
use crate::Sim;

/// Largest GetRandom answer: a TPM2B_DIGEST of the largest hash.
const MAX_RANDOM: usize = 64;

/// TPM2_Startup. CLEAR after Shutdown(STATE) is a TPM Restart, CLEAR
/// otherwise a TPM Reset (a new NULL seed); STATE after Shutdown(STATE) is a
/// TPM Resume, and without it TPM_RC_VALUE.
pub(crate) fn startup(sim: &mut Sim, cmd: &mut Command<'_>, _reply: &mut Reply) -> TpmResult<()> {
    let su = cmd.params.u16().param(1)?;
    cmd.params.done()?;
    match su {
        TPM_SU_CLEAR => {
            if sim.saved_pcrs.take().is_none() {
                sim.null_seed = sim.rng.array();
            }
            sim.pcrs = Pcrs::after_reset(cmd.locality);
            sim.platform_auth.clear();
        }
        TPM_SU_STATE => {
            let saved = sim
                .saved_pcrs
                .take()
                .ok_or(ResponseCode::VALUE.with_parameter(1))?;
            sim.pcrs = Pcrs::resume(&saved, cmd.locality);
        }
        _ => return Err(ResponseCode::VALUE.with_parameter(1)),
    }
    for slot in &mut sim.objects {
        *slot = None;
    }
    sim.started = true;
    Ok(())
}

/// TPM2_Shutdown: STATE records the PCRs for a later Startup(STATE); CLEAR
/// forgets such a record.
pub(crate) fn shutdown(sim: &mut Sim, cmd: &mut Command<'_>, _reply: &mut Reply) -> TpmResult<()> {
    let su = cmd.params.u16().param(1)?;
    cmd.params.done()?;
    match su {
        TPM_SU_CLEAR => sim.saved_pcrs = None,
        TPM_SU_STATE => sim.saved_pcrs = Some(sim.pcrs.clone()),
        _ => return Err(ResponseCode::VALUE.with_parameter(1)),
    }
    Ok(())
}

/// TPM2_SelfTest: every algorithm is always tested, so this succeeds.
pub(crate) fn self_test(
    _sim: &mut Sim,
    cmd: &mut Command<'_>,
    _reply: &mut Reply,
) -> TpmResult<()> {
    cmd.params.yes_no().param(1)?;
    cmd.params.done()
}

/// TPM2_GetRandom: at most 64 bytes, as a TPM with SHA-512 answers.
pub(crate) fn get_random(sim: &mut Sim, cmd: &mut Command<'_>, reply: &mut Reply) -> TpmResult<()> {
    let requested = usize::from(cmd.params.u16().param(1)?);
    cmd.params.done()?;
    let bytes = sim.rng.bytes(requested.min(MAX_RANDOM));
    reply.params.put_tpm2b(&bytes);
    Ok(())
}
