//! The v1.85 signature sequences (Part 3 §17.5, §17.6, §20.3, §20.6) for
//! ML-DSA and HashML-DSA keys, TPM2_SequenceUpdate on them, and
//! TPM2_TestParms.
//!
//! | key | sign sequence | verify sequence |
//! |---|---|---|
//! | ML-DSA | one-shot: the whole message in SignSequenceComplete's buffer; SequenceUpdate answers TPM_RC_ONE_SHOT_SIGNATURE | SequenceUpdate collects M |
//! | HashML-DSA | SequenceUpdate (and the final buffer) collect M | SequenceUpdate collects M |
//!
//! A sequence keeps its message (at most [`MAX_SEQUENCE_MESSAGE`] bytes)
//! rather than a hash state, so that it is plain data the state blob can
//! carry across a save and restore (live migration in the middle of a
//! sequence).

use vtpm_wire::consts::{TPMA_OBJECT_RESTRICTED, TPM_ST_MESSAGE_VERIFIED};
use vtpm_wire::ResponseCode;
use zeroize::Zeroizing;

use super::signature::{
    check_signature_kind, read_signature, signing_key, verify_and_answer, verifying_key, Verified,
};
use crate::dispatch::{object, Command, Reply};
use crate::object::{trim_auth, Kind, MAX_DIGEST};
use crate::pq::{mldsa_mu, MlDsaMessage, MLDSA_MAX_CONTEXT, MLDSA_MU_SIZE};
use crate::rc::{AtNumber, TpmResult};
use crate::Sim;

/// Number of signature sequences that may be open at once; one more
/// answers TPM_RC_OBJECT_MEMORY.
pub const SEQUENCE_SLOTS: usize = 3;
/// The handle of sequence slot 0 (a transient handle, as the reference
/// implementation gives sequence objects, above the object slots).
pub const SEQUENCE_FIRST: u32 = 0x8000_0100;
/// The largest TPM2B_SIGNATURE_HINT accepted. A hint carries EdDSA's R;
/// for the ML-DSA keys here it must be empty (Part 2 Table 221).
const MAX_HINT: usize = 256;
/// TPM2B_MAX_BUFFER's bound (MAX_DIGEST_BUFFER of the reference).
const MAX_BUFFER: usize = 1024;
/// TPM_GENERATED_VALUE: a restricted key never signs a message that starts
/// with it (it could pass for a TPM-made attestation).
const TPM_GENERATED: [u8; 4] = [0xFF, 0x54, 0x43, 0x47];

/// The most message bytes a sequence collects through SequenceUpdate; more
/// is TPM_RC_SIZE for the buffer. It bounds what a guest can make the
/// simulator hold: [`SEQUENCE_SLOTS`] times this.
pub const MAX_SEQUENCE_MESSAGE: usize = 16 * 1024;

/// An open TPM2_SignSequenceStart / TPM2_VerifySequenceStart sequence.
pub(crate) struct Sequence {
    pub(crate) verify: bool,
    /// A pure ML-DSA sign sequence: no SequenceUpdate.
    pub(crate) one_shot: bool,
    /// The key the sequence was started with: Complete must name it again.
    pub(crate) key_handle: u32,
    pub(crate) key_name: Vec<u8>,
    /// The sequence's authValue (the TPM2B_AUTH of the start command).
    pub(crate) auth: Zeroizing<Vec<u8>>,
    pub(crate) context: Vec<u8>,
    /// The message so far (wiped when dropped: it may be confidential).
    pub(crate) message: Zeroizing<Vec<u8>>,
}

impl Sequence {
    /// Whether a sequence restored from a blob is within the bounds the
    /// commands keep.
    pub(crate) fn is_well_formed(&self) -> bool {
        self.auth.len() <= MAX_DIGEST
            && self.context.len() <= MLDSA_MAX_CONTEXT
            && self.message.len() <= MAX_SEQUENCE_MESSAGE
            && self.key_name.len() <= 2 + MAX_DIGEST
            && !(self.one_shot && (self.verify || !self.message.is_empty()))
    }
}

/// The sequence slot a handle names, if it is a sequence handle.
pub(crate) fn sequence_slot(handle: u32) -> Option<usize> {
    let slot = handle.checked_sub(SEQUENCE_FIRST)? as usize;
    (slot < SEQUENCE_SLOTS).then_some(slot)
}

/// The open sequence `handle` names.
pub(crate) fn sequence(sim: &Sim, handle: u32) -> Option<&Sequence> {
    sim.sequences.get(sequence_slot(handle)?)?.as_ref()
}

fn open(sim: &mut Sim, sequence: Sequence) -> TpmResult<u32> {
    let slot = sim
        .sequences
        .iter()
        .position(Option::is_none)
        .ok_or(ResponseCode::OBJECT_MEMORY)?;
    sim.sequences[slot] = Some(sequence);
    Ok(SEQUENCE_FIRST + slot as u32)
}

/// The common part of both start commands, after their parameters.
fn start(
    sim: &mut Sim,
    key_handle: u32,
    auth: &[u8],
    context: &[u8],
    verify: bool,
    context_param: u8,
) -> TpmResult<u32> {
    let key = if verify {
        verifying_key(sim, key_handle)?.0
    } else {
        signing_key(sim, key_handle)?.0
    };
    let one_shot = match &key.public.kind {
        Kind::MlDsa { .. } => !verify,
        Kind::HashMlDsa { .. } => false,
        _ => return Err(ResponseCode::KEY.with_handle(1)),
    };
    if context.len() > MLDSA_MAX_CONTEXT {
        return Err(ResponseCode::SIZE.with_parameter(context_param));
    }
    let sequence = Sequence {
        verify,
        one_shot,
        key_handle,
        key_name: key.name.clone(),
        auth: trim_auth(auth),
        context: context.to_vec(),
        message: Zeroizing::new(Vec::new()),
    };
    open(sim, sequence)
}

/// TPM2_SignSequenceStart (Part 3 Table 89): `keyHandle | auth | context →
/// sequenceHandle`. The key needs no authorization here; it is authorized
/// again at SignSequenceComplete.
pub(crate) fn sign_sequence_start(
    sim: &mut Sim,
    cmd: &mut Command<'_>,
    reply: &mut Reply,
) -> TpmResult<()> {
    let p = &mut cmd.params;
    let auth = p.tpm2b(MAX_DIGEST).param(1)?;
    let context = p.tpm2b(MLDSA_MAX_CONTEXT).param(2)?;
    p.done()?;
    let (auth, context) = (auth.to_vec(), context.to_vec());
    reply.handle = Some(start(sim, cmd.handles[0], &auth, &context, false, 2)?);
    Ok(())
}

/// TPM2_VerifySequenceStart (Part 3 Table 87): `keyHandle | auth | hint |
/// context → sequenceHandle`.
pub(crate) fn verify_sequence_start(
    sim: &mut Sim,
    cmd: &mut Command<'_>,
    reply: &mut Reply,
) -> TpmResult<()> {
    let p = &mut cmd.params;
    let auth = p.tpm2b(MAX_DIGEST).param(1)?;
    let hint = p.tpm2b(MAX_HINT).param(2)?;
    let context = p.tpm2b(MLDSA_MAX_CONTEXT).param(3)?;
    p.done()?;
    // Only EdDSA has a hint; for ML-DSA the buffer is empty (Part 2 T221).
    if !hint.is_empty() {
        return Err(ResponseCode::SIZE.with_parameter(2));
    }
    let (auth, context) = (auth.to_vec(), context.to_vec());
    reply.handle = Some(start(sim, cmd.handles[0], &auth, &context, true, 3)?);
    Ok(())
}

/// TPM2_SequenceUpdate on a signature sequence. (Hash and HMAC sequences do
/// not exist here: any other handle is not a sequence.)
pub(crate) fn sequence_update(
    sim: &mut Sim,
    cmd: &mut Command<'_>,
    _reply: &mut Reply,
) -> TpmResult<()> {
    let p = &mut cmd.params;
    let buffer = p.tpm2b(MAX_BUFFER).param(1)?;
    p.done()?;
    let slot = sequence_slot(cmd.handles[0]).ok_or(ResponseCode::MODE.with_handle(1))?;
    let sequence = sim.sequences[slot]
        .as_mut()
        .ok_or(ResponseCode::MODE.with_handle(1))?;
    // FIPS 204 pure ML-DSA signing needs the whole message at once in the
    // TPM's view of v1.85: its sign sequences are one-shot.
    if sequence.one_shot {
        return Err(ResponseCode::ONE_SHOT_SIGNATURE);
    }
    if sequence.message.len() + buffer.len() > MAX_SEQUENCE_MESSAGE {
        return Err(ResponseCode::SIZE.with_parameter(1));
    }
    // Grown in place only within a wiped buffer: reserve the bound once.
    if sequence.message.capacity() < MAX_SEQUENCE_MESSAGE {
        let mut grown = Zeroizing::new(Vec::with_capacity(MAX_SEQUENCE_MESSAGE));
        grown.extend_from_slice(&sequence.message);
        sequence.message = grown;
    }
    sequence.message.extend_from_slice(buffer);
    Ok(())
}

/// Takes the sequence `handle` (checked by dispatch) out of its slot when
/// it is of the right direction and was started with `key_handle`.
fn finish_check(sim: &Sim, handle: u32, key_handle: u32, verify: bool) -> TpmResult<()> {
    let sequence = sequence(sim, handle).ok_or(ResponseCode::MODE.with_handle(1))?;
    if sequence.verify != verify {
        return Err(ResponseCode::MODE.with_handle(1));
    }
    let key = object(sim, key_handle).ok_or(ResponseCode::HANDLE.with_handle(2))?;
    if sequence.key_handle != key_handle || sequence.key_name != key.name {
        return Err(ResponseCode::SIGN_CONTEXT_KEY.with_handle(2));
    }
    Ok(())
}

fn take(sim: &mut Sim, handle: u32) -> TpmResult<Sequence> {
    sequence_slot(handle)
        .and_then(|slot| sim.sequences[slot].take())
        .ok_or(ResponseCode::MODE.with_handle(1))
}

/// μ of a sequence whose message ends with `buffer`, for the key `kind`
/// with public key `pk`.
fn finish_mu(
    sequence: &Sequence,
    kind: &Kind,
    pk: &[u8],
    buffer: &[u8],
) -> TpmResult<[u8; MLDSA_MU_SIZE]> {
    match kind {
        Kind::HashMlDsa { hash, .. } => {
            let digest = hash.digest(&[&sequence.message, buffer]);
            mldsa_mu(
                pk,
                &MlDsaMessage::PreHashed {
                    context: &sequence.context,
                    hash: *hash,
                    digest: &digest,
                },
            )
        }
        _ => {
            let mut message =
                Zeroizing::new(Vec::with_capacity(sequence.message.len() + buffer.len()));
            message.extend_from_slice(&sequence.message);
            message.extend_from_slice(buffer);
            mldsa_mu(
                pk,
                &MlDsaMessage::Pure {
                    context: &sequence.context,
                    message: &message,
                },
            )
        }
    }
    .ok_or(ResponseCode::FAILURE)
}

/// TPM2_SignSequenceComplete (Part 3 Table 124): `@sequenceHandle,
/// @keyHandle | buffer → signature`. The sequence ends when it succeeds.
pub(crate) fn sign_sequence_complete(
    sim: &mut Sim,
    cmd: &mut Command<'_>,
    reply: &mut Reply,
) -> TpmResult<()> {
    let p = &mut cmd.params;
    let buffer = p.tpm2b(MAX_BUFFER).param(1)?;
    p.done()?;
    let [seq_handle, key_handle] = cmd.handles;
    finish_check(sim, seq_handle, key_handle, false)?;
    let (key, signer) = signing_key(sim, key_handle).map_err(renumber_key)?;
    let restricted = key.public.has(TPMA_OBJECT_RESTRICTED);
    let (kind, pk) = (key.public.kind.clone(), key.public.unique.clone());
    let sequence = sequence(sim, seq_handle).ok_or(ResponseCode::MODE.with_handle(1))?;
    let mut prefix = sequence
        .message
        .iter()
        .chain(buffer)
        .take(TPM_GENERATED.len());
    if restricted && prefix.by_ref().copied().eq(TPM_GENERATED) {
        return Err(ResponseCode::VALUE.with_parameter(1));
    }
    let mu = finish_mu(sequence, &kind, &pk, buffer)?;
    take(sim, seq_handle)?;
    signer.sign_and_answer(sim, &mu, reply)
}

/// The key checks of signature.rs speak of handle 1; here the key is
/// handle 2.
fn renumber_key(rc: ResponseCode) -> ResponseCode {
    if rc.is_format1() && rc.0 & 0xF40 == 0x100 {
        ResponseCode((rc.0 & !0xF00) | 0x200)
    } else {
        rc
    }
}

/// TPM2_VerifySequenceComplete (Part 3 Table 118): `@sequenceHandle,
/// keyHandle | signature → validation`, a TPM_ST_MESSAGE_VERIFIED ticket.
/// The sequence ends when the signature verifies.
pub(crate) fn verify_sequence_complete(
    sim: &mut Sim,
    cmd: &mut Command<'_>,
    reply: &mut Reply,
) -> TpmResult<()> {
    let p = &mut cmd.params;
    let signature = read_signature(p).param(1)?;
    p.done()?;
    let [seq_handle, key_handle] = cmd.handles;
    finish_check(sim, seq_handle, key_handle, true)?;
    let (key, set) = verifying_key(sim, key_handle).map_err(renumber_key)?;
    check_signature_kind(&key.public.kind, &signature, 1)?;
    let sequence = sequence(sim, seq_handle).ok_or(ResponseCode::MODE.with_handle(1))?;
    let mu = finish_mu(sequence, &key.public.kind, &key.public.unique, &[])?;
    let verified = Verified {
        tag: TPM_ST_MESSAGE_VERIFIED,
        digest: &mu,
        metadata: None,
    };
    verify_and_answer(sim, key, set, &mu, (&signature, 1), &verified, reply)?;
    // A refused signature leaves the sequence open: a failed command
    // changes nothing.
    take(sim, seq_handle)?;
    Ok(())
}

/// TPM2_TestParms: `TPMT_PUBLIC_PARMS` (type | parameters). Success when
/// an object of these parameters could be created here; otherwise what
/// CreatePrimary would answer for them (TPM_RC_PARMS for an unknown
/// parameter set, TPM_RC_HASH, TPM_RC_SYMMETRIC, TPM_RC_KEY_SIZE, ...),
/// for parameter 1.
pub(crate) fn test_parms(
    _sim: &mut Sim,
    cmd: &mut Command<'_>,
    _reply: &mut Reply,
) -> TpmResult<()> {
    let p = &mut cmd.params;
    let type_alg = p.u16().param(1)?;
    if !matches!(
        type_alg,
        vtpm_wire::consts::TPM_ALG_MLDSA
            | vtpm_wire::consts::TPM_ALG_HASH_MLDSA
            | vtpm_wire::consts::TPM_ALG_MLKEM
            | vtpm_wire::consts::TPM_ALG_SYMCIPHER
    ) {
        return Err(ResponseCode::TYPE.with_parameter(1));
    }
    Kind::read_parameters(type_alg, p).param(1)?;
    p.done()?;
    Ok(())
}
