//! Signing and verification: Sign, SignDigest, VerifySignature and
//! VerifyDigestSignature (ML-DSA and HashML-DSA keys, v1.85).

use vtpm_wire::consts::{
    TPM_ALG_NULL, TPM_RH_NULL, TPM_ST_DIGEST_VERIFIED, TPM_ST_HASHCHECK, TPM_ST_MESSAGE_VERIFIED,
    TPM_ST_VERIFIED,
};
use vtpm_wire::structures::{Signature, VerifiedTicket};
use vtpm_wire::{cc, CommandBuilder, WireError};

use crate::response::{bad, read_digest, split};

/// A NULL TPMT_TK_HASHCHECK: the caller vouches for the digest (enough for
/// unrestricted keys).
fn null_hashcheck(b: CommandBuilder) -> CommandBuilder {
    b.u16(TPM_ST_HASHCHECK).u32(TPM_RH_NULL).tpm2b(&[])
}

/// TPM2_Sign of `digest` with the key's own scheme (inScheme TPM_ALG_NULL)
/// and a NULL hash-check ticket. For a HashML-DSA key `digest` is PH(M); for
/// an ML-DSA key it is signed as the message itself.
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

/// TPM2_VerifySignature of `signature` over `digest`.
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
