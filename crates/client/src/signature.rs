//! Signing and verification (ML-DSA and HashML-DSA keys, v1.85): the
//! sign and verify sequences, SignDigest and VerifyDigestSignature, and
//! the classic Sign and VerifySignature (which v1.85 TPMs refuse for
//! ML-DSA keys).

use vtpm_wire::consts::TPM_RS_PW;
use vtpm_wire::consts::{
    TPM_ALG_NULL, TPM_RH_NULL, TPM_ST_DIGEST_VERIFIED, TPM_ST_HASHCHECK, TPM_ST_MESSAGE_VERIFIED,
    TPM_ST_VERIFIED,
};
use vtpm_wire::structures::{Signature, VerifiedTicket};
use vtpm_wire::{cc, CommandBuilder, WireError};

use crate::response::{bad, read_digest, split, Split};

/// A NULL TPMT_TK_HASHCHECK: the caller vouches for the digest (enough for
/// unrestricted keys).
fn null_hashcheck(b: CommandBuilder) -> CommandBuilder {
    b.u16(TPM_ST_HASHCHECK).u32(TPM_RH_NULL).tpm2b(&[])
}

/// TPM2_Sign of `digest` with the key's own scheme (inScheme TPM_ALG_NULL)
/// and a NULL hash-check ticket. v1.85 does not support TPM2_Sign for
/// ML-DSA and HashML-DSA keys (a v1.85 TPM answers TPM_RC_SCHEME for
/// parameter 2): sign messages with [`sign_sequence_start`] and
/// [`sign_sequence_complete`], digests and external μ with [`sign_digest`].
pub fn sign(key: u32, key_auth: &[u8], digest: &[u8]) -> Vec<u8> {
    let b = CommandBuilder::with_sessions(cc::SIGN)
        .u32(key)
        .password_session(key_auth)
        .tpm2b(digest)
        .u16(TPM_ALG_NULL);
    null_hashcheck(b).finish()
}

/// TPM2_SignDigest (v1.85) with a NULL hash-check ticket. For an ML-DSA key
/// with allowExternalMu, `digest` is the 64-byte μ and `context` must be
/// empty; for a HashML-DSA key it is PH(M) and `context` the FIPS 204
/// context string (at most 255 bytes).
pub fn sign_digest(key: u32, key_auth: &[u8], context: &[u8], digest: &[u8]) -> Vec<u8> {
    let b = CommandBuilder::with_sessions(cc::SIGN_DIGEST)
        .u32(key)
        .password_session(key_auth)
        .tpm2b(context)
        .tpm2b(digest);
    null_hashcheck(b).finish()
}

/// TPM2_VerifySignature of `signature` over `digest`. Like TPM2_Sign, not
/// supported for ML-DSA and HashML-DSA keys in v1.85 (TPM_RC_SCHEME for
/// parameter 2): use the verify sequence or [`verify_digest_signature`].
pub fn verify_signature(key: u32, digest: &[u8], signature: &Signature) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::VERIFY_SIGNATURE)
        .u32(key)
        .tpm2b(digest)
        .bytes(&signature.to_bytes())
        .finish()
}

/// TPM2_VerifyDigestSignature (v1.85) of `signature` over `digest` (μ or
/// PH(M), as for [`sign_digest`]) with `context`.
pub fn verify_digest_signature(
    key: u32,
    context: &[u8],
    digest: &[u8],
    signature: &Signature,
) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::VERIFY_DIGEST_SIGNATURE)
        .u32(key)
        .tpm2b(context)
        .tpm2b(digest)
        .bytes(&signature.to_bytes())
        .finish()
}

/// The signature of a TPM2_Sign or TPM2_SignDigest response.
pub fn parse_sign(bytes: &[u8]) -> Result<Signature, WireError> {
    let mut r = split(bytes, false)?.parameters;
    let signature = Signature::read(&mut r)?;
    r.finish()?;
    Ok(signature)
}

/// The ticket of a TPM2_VerifySignature or TPM2_VerifyDigestSignature response.
pub fn parse_verify(bytes: &[u8]) -> Result<VerifiedTicket, WireError> {
    let mut r = split(bytes, false)?.parameters;
    let tag = r.u16()?;
    let hierarchy = r.u32()?;
    let metadata = match tag {
        // A NULL ticket is `<tag, TPM_RH_NULL, 0x0000>`: shipped v1.85 TPMs
        // leave out its metadata, others may write it; both parse.
        TPM_ST_DIGEST_VERIFIED if hierarchy == TPM_RH_NULL && r.remaining() == 2 => None,
        TPM_ST_DIGEST_VERIFIED => Some(r.u16()?),
        TPM_ST_VERIFIED | TPM_ST_MESSAGE_VERIFIED => None,
        other => return Err(bad("ticket tag", other)),
    };
    let hmac = read_digest(&mut r)?;
    r.finish()?;
    Ok(VerifiedTicket {
        tag,
        hierarchy,
        metadata,
        hmac,
    })
}

/// An authorization area of one password session per entry of `passwords`
/// (at most three, as a command carries).
fn password_sessions(mut b: CommandBuilder, passwords: &[&[u8]]) -> CommandBuilder {
    let size: usize = passwords
        .iter()
        .map(|p| 4 + 2 + 1 + 2 + p.len().min(usize::from(u16::MAX)))
        .sum();
    b = b.u32(size as u32);
    for password in passwords {
        b = b.u32(TPM_RS_PW).tpm2b(&[]).u8(0).tpm2b(password);
    }
    b
}

/// TPM2_SignSequenceStart (v1.85, Part 3 Table 89): opens a sign sequence
/// on `key` (no authorization yet) whose own password is `sequence_auth`;
/// `context` is the FIPS 204 context string (at most 255 bytes).
pub fn sign_sequence_start(key: u32, sequence_auth: &[u8], context: &[u8]) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::SIGN_SEQUENCE_START)
        .u32(key)
        .tpm2b(sequence_auth)
        .tpm2b(context)
        .finish()
}

/// TPM2_VerifySequenceStart (v1.85, Part 3 Table 87): opens a verify
/// sequence on `key`; `hint` is empty for ML-DSA (it carries EdDSA's R).
pub fn verify_sequence_start(
    key: u32,
    sequence_auth: &[u8],
    hint: &[u8],
    context: &[u8],
) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::VERIFY_SEQUENCE_START)
        .u32(key)
        .tpm2b(sequence_auth)
        .tpm2b(hint)
        .tpm2b(context)
        .finish()
}

/// TPM2_SequenceUpdate of a sequence with the next part of the message
/// (at most 1024 bytes, TPM2B_MAX_BUFFER).
pub fn sequence_update(sequence: u32, sequence_auth: &[u8], data: &[u8]) -> Vec<u8> {
    CommandBuilder::with_sessions(cc::SEQUENCE_UPDATE)
        .u32(sequence)
        .password_session(sequence_auth)
        .tpm2b(data)
        .finish()
}

/// TPM2_SignSequenceComplete (v1.85, Part 3 Table 124): the last part of
/// the message (for pure ML-DSA, the whole message), signed with `key`,
/// the key the sequence was started with. Both handles are authorized.
pub fn sign_sequence_complete(
    sequence: u32,
    sequence_auth: &[u8],
    key: u32,
    key_auth: &[u8],
    buffer: &[u8],
) -> Vec<u8> {
    let b = CommandBuilder::with_sessions(cc::SIGN_SEQUENCE_COMPLETE)
        .u32(sequence)
        .u32(key);
    password_sessions(b, &[sequence_auth, key_auth])
        .tpm2b(buffer)
        .finish()
}

/// TPM2_VerifySequenceComplete (v1.85, Part 3 Table 118): checks
/// `signature` over the message the sequence received; the answer is a
/// TPM_ST_MESSAGE_VERIFIED ticket ([`parse_verify`]).
pub fn verify_sequence_complete(
    sequence: u32,
    sequence_auth: &[u8],
    key: u32,
    signature: &Signature,
) -> Vec<u8> {
    let b = CommandBuilder::with_sessions(cc::VERIFY_SEQUENCE_COMPLETE)
        .u32(sequence)
        .u32(key);
    password_sessions(b, &[sequence_auth])
        .bytes(&signature.to_bytes())
        .finish()
}

/// The sequence handle of a TPM2_SignSequenceStart or
/// TPM2_VerifySequenceStart response.
pub fn parse_sequence_start(bytes: &[u8]) -> Result<u32, WireError> {
    let Split { handle, parameters } = split(bytes, true)?;
    parameters.finish()?;
    Ok(handle.unwrap_or_default())
}

/// TPM2_TestParms of a TPMT_PUBLIC_PARMS: `type_alg` and its parameter
/// bytes (e.g. an ML-DSA parameter set and allowExternalMu). Answered with
/// an empty success ([`crate::parse_empty`]) when the TPM supports them.
pub fn test_parms(type_alg: u16, parameters: &[u8]) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::TEST_PARMS)
        .u16(type_alg)
        .bytes(parameters)
        .finish()
}
