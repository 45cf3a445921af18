//! Startup, Shutdown, SelfTest and GetRandom.

use vtpm_wire::consts::{TPM_SU_CLEAR, TPM_SU_STATE};
use vtpm_wire::ResponseCode;

use crate::dispatch::{Command, Reply};
use crate::pcr::Pcrs;
use crate::rc::{AtNumber, TpmResult};
use crate::unmarshal::Out;
use crate::Sim;

/// The localities TPM2_Startup is accepted from (PC Client: 0, or 3 for a
/// platform whose H-CRTM starts the TPM there).
const STARTUP_LOCALITIES: [u8; 2] = [0, 3];

/// Largest GetRandom answer: a TPM2B_DIGEST of the largest hash.
const MAX_RANDOM: usize = 64;

/// TPM2_Startup. CLEAR after Shutdown(STATE) is a TPM Restart, CLEAR
/// otherwise a TPM Reset (a new NULL seed); STATE after Shutdown(STATE) is a
/// TPM Resume, and without it TPM_RC_VALUE.
///
/// The locality rules are libtpms' (and the reference code's, which follow
/// the PC Client profile): Startup is accepted from locality 0 or 3 only,
/// anything else is TPM_RC_LOCALITY once the parameters have been read; a
/// Resume must come from the locality class (3 or not) of the start-up it
/// resumes, or it is TPM_RC_LOCALITY and the saved state stays for a later
/// Startup. No _TPM_Hash_* sequence is needed before either.
pub(crate) fn startup(sim: &mut Sim, cmd: &mut Command<'_>, _reply: &mut Reply) -> TpmResult<()> {
    let su = read_su(cmd)?;
    if !STARTUP_LOCALITIES.contains(&cmd.locality) {
        return Err(ResponseCode::LOCALITY);
    }
    match su {
        TPM_SU_STATE => {
            let saved = sim
                .saved_pcrs
                .as_ref()
                .ok_or(ResponseCode::VALUE.with_parameter(1))?;
            if saved.startup_locality3 != (cmd.locality == 3) {
                return Err(ResponseCode::LOCALITY);
            }
            sim.pcrs = Pcrs::resume(saved, cmd.locality);
            sim.saved_pcrs = None;
        }
        _ => {
            let mut pcrs = Pcrs::after_reset(cmd.locality);
            match sim.saved_pcrs.take() {
                // A TPM Restart keeps pcrUpdateCounter.
                Some(saved) => pcrs.update_counter = saved.update_counter,
                None => sim.null_seed = sim.rng.array(),
            }
            pcrs.count_startup_changes(false);
            sim.pcrs = pcrs;
            sim.platform_auth.clear();
        }
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
    match read_su(cmd)? {
        TPM_SU_STATE => sim.saved_pcrs = Some(sim.pcrs.clone()),
        _ => sim.saved_pcrs = None,
    }
    Ok(())
}

/// The one TPM_SU parameter of Startup and Shutdown: a value other than
/// CLEAR or STATE is TPM_RC_VALUE as it is unmarshalled, before any bytes
/// left over are TPM_RC_SIZE.
fn read_su(cmd: &mut Command<'_>) -> TpmResult<u16> {
    let su = cmd.params.u16().param(1)?;
    if su != TPM_SU_CLEAR && su != TPM_SU_STATE {
        return Err(ResponseCode::VALUE.with_parameter(1));
    }
    cmd.params.done()?;
    Ok(su)
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

/// TPM2_StirRandom: `inData` (a TPM2B_SENSITIVE_DATA, at most 128 bytes)
/// goes into the random generator's state. Firmware sends it before boot
/// (SeaBIOS does, and gives up on a TPM that refuses it).
pub(crate) fn stir_random(
    sim: &mut Sim,
    cmd: &mut Command<'_>,
    _reply: &mut Reply,
) -> TpmResult<()> {
    let in_data = cmd.params.tpm2b(MAX_SENSITIVE_DATA).param(1)?;
    cmd.params.done()?;
    sim.rng.stir(in_data);
    Ok(())
}

/// MAX_SYM_DATA, the largest TPM2B_SENSITIVE_DATA.
const MAX_SENSITIVE_DATA: usize = 128;

/// TPM2_GetRandom: at most 64 bytes, as a TPM with SHA-512 answers.
pub(crate) fn get_random(sim: &mut Sim, cmd: &mut Command<'_>, reply: &mut Reply) -> TpmResult<()> {
    let requested = usize::from(cmd.params.u16().param(1)?);
    cmd.params.done()?;
    let bytes = sim.rng.bytes(requested.min(MAX_RANDOM));
    reply.params.put_tpm2b(&bytes);
    Ok(())
}
