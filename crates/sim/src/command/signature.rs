//! Sign, SignDigest, VerifySignature and VerifyDigestSignature with ML-DSA
//! and HashML-DSA keys.
//!
//! How each command forms the ML-DSA message representative μ:
//!
//! | command | ML-DSA key | HashML-DSA key |
//! |---|---|---|
//! | SignDigest / VerifyDigestSignature | `digest` is μ itself (needs allowExternalMu; context must be empty) | `digest` is PH(M) with `context` |
//! | Sign / VerifySignature | not supported (v1.85 Part 3 Table 115): TPM_RC_SCHEME for parameter 2 | the same |
//!
//! Messages are signed and verified with the sequence commands
//! (`sequence.rs`).

use vtpm_wire::consts::{TPMA_OBJECT_RESTRICTED, TPMA_OBJECT_SIGN, TPM_ST_DIGEST_VERIFIED};
use vtpm_wire::consts::{TPM_ALG_HASH_MLDSA, TPM_ALG_MLDSA, TPM_ALG_NULL, TPM_RH_NULL};
use vtpm_wire::ResponseCode;

use super::{read_hashcheck, HashCheck, TICKET_HASH};
use crate::crypto::HashAlg;
use crate::dispatch::{object, Command, Reply};
use crate::object::{Kind, Object, Secret, MAX_DIGEST};
use crate::pq::{mldsa_mu, MlDsa, MlDsaMessage, MLDSA_MAX_CONTEXT, MLDSA_MU_SIZE, MLDSA_SEED_SIZE};
use crate::rc::{AtNumber, TpmResult};
use crate::unmarshal::{In, Out};
use crate::Sim;
use vtpm_wire::structures::MlDsaParameterSet;
use zeroize::Zeroizing;

/// Largest ML-DSA signature (ML-DSA-87): the bound of TPM2B_SIGNATURE_MLDSA.
const MAX_MLDSA_SIGNATURE: usize = MlDsaParameterSet::MlDsa87.signature_size();

/// A TPMT_SIG_SCHEME. v1.85 gives ML-DSA and HashML-DSA no member of
/// TPMU_SIG_SCHEME, and RSA, ECC and HMAC schemes cannot apply to any key
/// here, so TPM_ALG_NULL (the key's own scheme) is the only one read;
/// every other algorithm is TPM_RC_SCHEME, as an unknown
/// TPMI_ALG_SIG_SCHEME is.
fn read_null_scheme(r: &mut In<'_>) -> TpmResult<()> {
    match r.u16()? {
        TPM_ALG_NULL => Ok(()),
        _ => Err(ResponseCode::SCHEME),
    }
}

/// A TPMT_SIGNATURE: its algorithm, pre-hash (HashML-DSA) and bytes.
pub(super) struct SignatureIn<'a> {
    algorithm: u16,
    hash: Option<HashAlg>,
    bytes: &'a [u8],
}

pub(super) fn read_signature<'a>(r: &mut In<'a>) -> TpmResult<SignatureIn<'a>> {
    let algorithm = r.u16()?;
    let hash = match algorithm {
        TPM_ALG_MLDSA => None,
        TPM_ALG_HASH_MLDSA => Some(HashAlg::from_alg(r.u16()?).ok_or(ResponseCode::HASH)?),
        _ => return Err(ResponseCode::SCHEME),
    };
    let bytes = r.tpm2b(MAX_MLDSA_SIGNATURE)?;
    Ok(SignatureIn {
        algorithm,
        hash,
        bytes,
    })
}

/// What signing needs once the object table is no longer borrowed: the
/// parameter set, the seed (wiped when dropped) and the key's type.
pub(super) struct Signer {
    set: MlDsaParameterSet,
    xi: Zeroizing<[u8; MLDSA_SEED_SIZE]>,
    kind: Kind,
}

impl Signer {
    /// The tail of TPM2_SignDigest and TPM2_SignSequenceComplete: sign `mu` (a cancel
    /// request stops it with TPM_RC_CANCELED) and answer the TPMT_SIGNATURE.
    pub(super) fn sign_and_answer(
        self,
        sim: &mut Sim,
        mu: &[u8; MLDSA_MU_SIZE],
        reply: &mut Reply,
    ) -> TpmResult<()> {
        let signature = self.set.sign_mu(
            &self.xi,
            mu,
            &mut sim.rng,
            &mut sim.signing_keys,
            &sim.cancel,
        )?;
        write_signature(&mut reply.params, &self.kind, &signature);
        Ok(())
    }
}

/// A loaded ML-DSA or HashML-DSA key able to sign: TPM_RC_KEY for handle 1
/// otherwise.
pub(super) fn signing_key(sim: &Sim, handle: u32) -> TpmResult<(&Object, Signer)> {
    let object = object(sim, handle).ok_or(ResponseCode::HANDLE.with_handle(1))?;
    let set = object.public.kind.mldsa_set();
    match (set, &object.sensitive) {
        (Some(set), Some(s)) if object.public.has(TPMA_OBJECT_SIGN) => match &s.secret {
            Secret::MlDsa(xi) => Ok((
                object,
                Signer {
                    set,
                    xi: Zeroizing::new(*xi),
                    kind: object.public.kind.clone(),
                },
            )),
            _ => Err(ResponseCode::KEY.with_handle(1)),
        },
        _ => Err(ResponseCode::KEY.with_handle(1)),
    }
}

/// A loaded key able to verify: a non-signing key is TPM_RC_ATTRIBUTES for
/// handle 1.
pub(super) fn verifying_key(sim: &Sim, handle: u32) -> TpmResult<(&Object, MlDsaParameterSet)> {
    let object = object(sim, handle).ok_or(ResponseCode::HANDLE.with_handle(1))?;
    match object.public.kind.mldsa_set() {
        Some(set) if object.public.has(TPMA_OBJECT_SIGN) => Ok((object, set)),
        _ => Err(ResponseCode::ATTRIBUTES.with_handle(1)),
    }
}

/// A restricted key signs only digests the TPM itself produced.
fn check_restriction(
    sim: &Sim,
    key: &Object,
    ticket: &HashCheck<'_>,
    digest: &[u8],
    ticket_param: u8,
) -> TpmResult<()> {
    if key.public.has(TPMA_OBJECT_RESTRICTED) && !ticket.vouches_for(sim, digest) {
        return Err(ResponseCode::TICKET.with_parameter(ticket_param));
    }
    Ok(())
}

fn write_signature(out: &mut Vec<u8>, kind: &Kind, signature: &[u8]) {
    match kind {
        Kind::HashMlDsa { hash, .. } => {
            out.put_u16(TPM_ALG_HASH_MLDSA);
            out.put_u16(hash.alg());
        }
        _ => out.put_u16(TPM_ALG_MLDSA),
    }
    out.put_tpm2b(signature);
}

/// TPM2_Sign. v1.85 does not support it for ML-DSA and HashML-DSA keys
/// (Part 3 Table 115): no TPMT_SIG_SCHEME selects them, so once the
/// parameters and the key pass their checks the answer is TPM_RC_SCHEME for
/// inScheme, as the reference code's CryptSelectSignScheme fails. Every
/// signing key this TPM holds is one of them.
pub(crate) fn sign(sim: &mut Sim, cmd: &mut Command<'_>, _reply: &mut Reply) -> TpmResult<()> {
    let p = &mut cmd.params;
    p.tpm2b(MAX_DIGEST).param(1)?;
    read_null_scheme(p).param(2)?;
    read_hashcheck(p).param(3)?;
    p.done()?;
    signing_key(sim, cmd.handles[0])?;
    Err(ResponseCode::SCHEME.with_parameter(2))
}

/// TPM2_SignDigest (v1.85): `context | digest | validation`.
pub(crate) fn sign_digest(
    sim: &mut Sim,
    cmd: &mut Command<'_>,
    reply: &mut Reply,
) -> TpmResult<()> {
    let p = &mut cmd.params;
    let context = p.tpm2b(MLDSA_MAX_CONTEXT).param(1)?;
    let digest = p.tpm2b(MAX_DIGEST).param(2)?;
    let ticket = read_hashcheck(p).param(3)?;
    p.done()?;
    let (key, signer) = signing_key(sim, cmd.handles[0])?;
    let mu = digest_mu(&signer.kind, &key.public.unique, context, digest)?.0;
    check_restriction(sim, key, &ticket, digest, 3)?;
    signer.sign_and_answer(sim, &mu, reply)
}

/// μ for SignDigest / VerifyDigestSignature, and the hash algorithm the
/// ticket names: TPM_ALG_NULL for an external μ, the pre-hash otherwise.
fn digest_mu(
    kind: &Kind,
    public_key: &[u8],
    context: &[u8],
    digest: &[u8],
) -> TpmResult<([u8; MLDSA_MU_SIZE], u16)> {
    match kind {
        Kind::MlDsa { external_mu, .. } => {
            // The shipped v1.85 implementations (wolfTPM 4.1) answer
            // TPM_RC_ATTRIBUTES here, not TPM_RC_EXT_MU (spec-notes §5.1).
            if !external_mu {
                return Err(ResponseCode::ATTRIBUTES.with_handle(1));
            }
            // μ already binds the context, so a context here means nothing.
            if !context.is_empty() {
                return Err(ResponseCode::VALUE.with_parameter(1));
            }
            let mu = digest
                .try_into()
                .map_err(|_| ResponseCode::SIZE.with_parameter(2))?;
            // External-μ tickets carry TPM_ALG_NULL as metadata, as shipped
            // v1.85 implementations write them (spec-notes §5.1).
            Ok((mu, TPM_ALG_NULL))
        }
        Kind::HashMlDsa { hash, .. } => {
            if digest.len() != hash.size() {
                return Err(ResponseCode::SIZE.with_parameter(2));
            }
            let message = MlDsaMessage::PreHashed {
                context,
                hash: *hash,
                digest,
            };
            let mu = mldsa_mu(public_key, &message).ok_or(ResponseCode::SIZE.with_parameter(1))?;
            Ok((mu, hash.alg()))
        }
        _ => Err(ResponseCode::KEY.with_handle(1)),
    }
}

/// Checks that a signature's algorithm fits the key: TPM_RC_SCHEME for the
/// signature parameter otherwise.
pub(super) fn check_signature_kind(
    kind: &Kind,
    signature: &SignatureIn<'_>,
    param: u8,
) -> TpmResult<()> {
    let fits = match kind {
        Kind::MlDsa { .. } => signature.algorithm == TPM_ALG_MLDSA,
        Kind::HashMlDsa { hash, .. } => signature.hash == Some(*hash),
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(ResponseCode::SCHEME.with_parameter(param))
    }
}

/// The ticket HMAC: HMAC(proof, tag ‖ digest ‖ keyName [‖ metadata]), or a
/// NULL ticket for a key in the NULL hierarchy.
fn write_verified_ticket(
    sim: &Sim,
    out: &mut Vec<u8>,
    key: &Object,
    tag: u16,
    digest: &[u8],
    metadata: Option<u16>,
) {
    out.put_u16(tag);
    if key.hierarchy == TPM_RH_NULL {
        // `<tag, TPM_RH_NULL, 0x0000>`: a NULL ticket carries no metadata,
        // whatever its tag, as the shipped v1.85 implementations write it
        // (spec-notes §5.1); clients here parse both forms.
        out.put_u32(TPM_RH_NULL);
        out.put_tpm2b(&[]);
        return;
    }
    out.put_u32(key.hierarchy);
    let tag_bytes = tag.to_be_bytes();
    let metadata_bytes = metadata.map(u16::to_be_bytes);
    let mut parts: Vec<&[u8]> = vec![&tag_bytes, digest, &key.name];
    if let Some(m) = &metadata_bytes {
        parts.push(m);
    }
    // Part 1 Eq. 5: the context-integrity hash, not the key's nameAlg.
    let hmac = TICKET_HASH.hmac(&sim.proof(key.hierarchy), &parts);
    if let Some(alg) = metadata {
        out.put_u16(alg);
    }
    out.put_tpm2b(&hmac);
}

/// What a verification ticket vouches for.
pub(super) struct Verified<'a> {
    pub(super) tag: u16,
    pub(super) digest: &'a [u8],
    /// The v1.85 metadata of a TPM_ST_DIGEST_VERIFIED ticket.
    pub(super) metadata: Option<u16>,
}

/// The tail of both verify commands: check `signature`, which is parameter
/// `param`, over `mu`, then answer the ticket.
pub(super) fn verify_and_answer(
    sim: &Sim,
    key: &Object,
    set: MlDsaParameterSet,
    mu: &[u8; MLDSA_MU_SIZE],
    (signature, param): (&SignatureIn<'_>, u8),
    verified: &Verified<'_>,
    reply: &mut Reply,
) -> TpmResult<()> {
    if signature.bytes.len() != set.signature_size()
        || !set.verify_mu(&key.public.unique, mu, signature.bytes)
    {
        return Err(ResponseCode::SIGNATURE.with_parameter(param));
    }
    write_verified_ticket(
        sim,
        &mut reply.params,
        key,
        verified.tag,
        verified.digest,
        verified.metadata,
    );
    Ok(())
}

/// TPM2_VerifySignature. Not supported for ML-DSA and HashML-DSA keys in
/// v1.85 (Part 3 Table 115): the signature parses, the key must be a
/// signing key (TPM_RC_ATTRIBUTES for handle 1), and then the answer is
/// TPM_RC_SCHEME for the signature, as the reference code's
/// CryptValidateSignature has no case for them.
pub(crate) fn verify_signature(
    sim: &mut Sim,
    cmd: &mut Command<'_>,
    _reply: &mut Reply,
) -> TpmResult<()> {
    let p = &mut cmd.params;
    p.tpm2b(MAX_DIGEST).param(1)?;
    read_signature(p).param(2)?;
    p.done()?;
    verifying_key(sim, cmd.handles[0])?;
    Err(ResponseCode::SCHEME.with_parameter(2))
}

/// TPM2_VerifyDigestSignature (v1.85): `context | digest | signature`,
/// answered with a TPM_ST_DIGEST_VERIFIED ticket.
pub(crate) fn verify_digest_signature(
    sim: &mut Sim,
    cmd: &mut Command<'_>,
    reply: &mut Reply,
) -> TpmResult<()> {
    let p = &mut cmd.params;
    let context = p.tpm2b(MLDSA_MAX_CONTEXT).param(1)?;
    let digest = p.tpm2b(MAX_DIGEST).param(2)?;
    let signature = read_signature(p).param(3)?;
    p.done()?;
    let (key, set) = verifying_key(sim, cmd.handles[0])?;
    let (mu, metadata) = digest_mu(&key.public.kind, &key.public.unique, context, digest)?;
    check_signature_kind(&key.public.kind, &signature, 3)?;
    let verified = Verified {
        tag: TPM_ST_DIGEST_VERIFIED,
        digest,
        metadata: Some(metadata),
    };
    verify_and_answer(sim, key, set, &mu, (&signature, 3), &verified, reply)
}
