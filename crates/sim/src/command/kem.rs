//! Encapsulate and Decapsulate with ML-KEM keys (v1.85).

use vtpm_wire::consts::{TPMA_OBJECT_DECRYPT, TPMA_OBJECT_RESTRICTED};
use vtpm_wire::ResponseCode;

use crate::dispatch::{object, Command, Reply};
use crate::object::{Kind, Object, Secret};
use crate::pq::MlKem;
use crate::rc::{AtNumber, TpmResult};
use crate::unmarshal::Out;
use crate::Sim;
use vtpm_wire::structures::MlKemParameterSet;
use zeroize::Zeroizing;

/// Largest ML-KEM ciphertext (ML-KEM-1024): the bound of TPM2B_KEM_CIPHERTEXT.
const MAX_CIPHERTEXT: usize = MlKemParameterSet::MlKem1024.ciphertext_size();

/// The ML-KEM key `handle` names: TPM_RC_KEY for another type.
fn any_kem_key(sim: &Sim, handle: u32) -> TpmResult<(&Object, MlKemParameterSet)> {
    let object = object(sim, handle).ok_or(ResponseCode::HANDLE.with_handle(1))?;
    let Kind::MlKem { set, .. } = object.public.kind else {
        return Err(ResponseCode::KEY.with_handle(1));
    };
    Ok((object, set))
}

/// An ML-KEM key that may decapsulate: TPM_RC_ATTRIBUTES unless it is an
/// unrestricted decryption key.
fn kem_key(sim: &Sim, handle: u32) -> TpmResult<(&Object, MlKemParameterSet)> {
    let (object, set) = any_kem_key(sim, handle)?;
    if object.public.has(TPMA_OBJECT_RESTRICTED) || !object.public.has(TPMA_OBJECT_DECRYPT) {
        return Err(ResponseCode::ATTRIBUTES.with_handle(1));
    }
    Ok((object, set))
}

/// TPM2_Encapsulate: a fresh shared secret and its ciphertext for the key.
/// Any ML-KEM key will do: "The TPM does not verify the objectAttributes
/// of the key" (Part 3 §14.10.1), since encapsulation uses only the public
/// key, which anyone could use off the TPM.
pub(crate) fn encapsulate(
    sim: &mut Sim,
    cmd: &mut Command<'_>,
    reply: &mut Reply,
) -> TpmResult<()> {
    cmd.params.done()?;
    let (key, set) = any_kem_key(sim, cmd.handles[0])?;
    let public_key = key.public.unique.clone();
    let randomness = Zeroizing::new(sim.rng.array::<32>());
    let (shared_secret, ciphertext) = set
        .encapsulate(&public_key, &randomness)
        .ok_or(ResponseCode::FAILURE)?;
    reply.params.put_tpm2b(&shared_secret);
    reply.params.put_tpm2b(&ciphertext);
    Ok(())
}

/// TPM2_Decapsulate: the shared secret of a ciphertext made for the key. A
/// ciphertext of the wrong length is TPM_RC_SIZE for parameter 1; a
/// corrupted one yields FIPS 203's implicit-rejection secret, as the
/// standard requires.
pub(crate) fn decapsulate(
    sim: &mut Sim,
    cmd: &mut Command<'_>,
    reply: &mut Reply,
) -> TpmResult<()> {
    let ciphertext = cmd.params.tpm2b(MAX_CIPHERTEXT).param(1)?;
    cmd.params.done()?;
    let (key, set) = kem_key(sim, cmd.handles[0])?;
    let Some(Secret::MlKem(seed)) = key.sensitive.as_ref().map(|s| &s.secret) else {
        return Err(ResponseCode::KEY.with_handle(1));
    };
    if ciphertext.len() != set.ciphertext_size() {
        return Err(ResponseCode::SIZE.with_parameter(1));
    }
    let shared_secret = set
        .decapsulate(seed, ciphertext)
        .ok_or(ResponseCode::SIZE.with_parameter(1))?;
    reply.params.put_tpm2b(&shared_secret);
    Ok(())
}
