//! ML-DSA and HashML-DSA signatures made by the simulator verify under an
//! independent implementation (the `fips204` crate), with the public key
//! read back from the simulator; signatures made by `fips204` verify in the
//! simulator. Corrupting a signature or a public key breaks verification.

mod common;

use common::{exec, flush, primary, rc, started};
use fips204::traits::{KeyGen, SerDes, Signer, Verifier};
use fips204::{ml_dsa_44, ml_dsa_65, ml_dsa_87, pre_hash};
use sha2::{Digest, Sha256, Sha384, Sha512};
use shake::{ExtendableOutput, Shake256, Update, XofReader};
use vtpm_client as client;
use vtpm_sim::Sim;
use vtpm_wire::consts::{TPM_ALG_SHA256, TPM_ALG_SHA384, TPM_ALG_SHA512, TPM_RH_OWNER};
use vtpm_wire::consts::{TPM_ALG_SHAKE256, TPM_ST_DIGEST_VERIFIED, TPM_ST_VERIFIED};
use vtpm_wire::structures::{MlDsaParameterSet, PublicArea, Signature};
use vtpm_wire::ResponseCode;

/// Verifies with fips204: pure ML-DSA over `message` with `ctx`, or
/// HashML-DSA over `digest` with `ctx` and the pre-hash `oid`.
fn fips_verify(
    set: MlDsaParameterSet,
    pk: &[u8],
    sig: &[u8],
    ctx: &[u8],
    msg: &[u8],
    oid: Option<&[u8]>,
) -> bool {
    macro_rules! run {
        ($m:ident) => {{
            let Ok(pk) = <[u8; $m::PK_LEN]>::try_from(pk) else {
                return false;
            };
            let Ok(sig) = <[u8; $m::SIG_LEN]>::try_from(sig) else {
                return false;
            };
            let Ok(pk) = $m::PublicKey::try_from_bytes(pk) else {
                return false;
            };
            match oid {
                None => pk.verify(msg, &sig, ctx),
                Some(oid) => pk.hash_verify(msg, &sig, ctx, oid),
            }
        }};
    }
    match set {
        MlDsaParameterSet::MlDsa44 => run!(ml_dsa_44),
        MlDsaParameterSet::MlDsa65 => run!(ml_dsa_65),
        MlDsaParameterSet::MlDsa87 => run!(ml_dsa_87),
    }
}

/// Asserts that fips204 accepts the signature and rejects a corrupted
/// signature and a corrupted public key.
fn assert_independently_valid(
    set: MlDsaParameterSet,
    pk: &[u8],
    sig: &[u8],
    ctx: &[u8],
    msg: &[u8],
    oid: Option<&[u8]>,
) {
    assert_eq!(pk.len(), set.public_key_size());
    assert_eq!(sig.len(), set.signature_size());
    assert!(
        fips_verify(set, pk, sig, ctx, msg, oid),
        "{set:?}: fips204 rejects the sim's signature"
    );
    let mut bad_sig = sig.to_vec();
    bad_sig[sig.len() / 3] ^= 0x01;
    assert!(
        !fips_verify(set, pk, &bad_sig, ctx, msg, oid),
        "{set:?}: corrupted signature accepted"
    );
    let mut bad_pk = pk.to_vec();
    bad_pk[pk.len() / 2] ^= 0x01;
    assert!(
        !fips_verify(set, &bad_pk, sig, ctx, msg, oid),
        "{set:?}: corrupted public key accepted"
    );
}

/// FIPS 204 external μ, computed here without the simulator.
fn external_mu(pk: &[u8], ctx: &[u8], message: &[u8]) -> Vec<u8> {
    let mut tr = [0u8; 64];
    let mut h = Shake256::default();
    h.update(pk);
    h.finalize_xof().read(&mut tr);
    let mut h = Shake256::default();
    h.update(&tr);
    h.update(&[0, ctx.len() as u8]);
    h.update(ctx);
    h.update(message);
    let mut mu = vec![0u8; 64];
    h.finalize_xof().read(&mut mu);
    mu
}

fn read_public_key(sim: &mut Sim, handle: u32) -> Vec<u8> {
    let out = client::parse_read_public(&exec(sim, &client::read_public(handle))).unwrap();
    out.public.public_key().to_vec()
}

#[test]
fn sign_with_mldsa_verifies_independently_for_every_set() {
    let mut sim = started();
    for set in MlDsaParameterSet::ALL {
        let key = primary(&mut sim, &PublicArea::mldsa(set), b"");
        let pk = read_public_key(&mut sim, key.handle);
        assert_eq!(
            pk,
            key.public.public_key(),
            "ReadPublic and CreatePrimary agree"
        );
        let digest = Sha256::digest(b"a message for TPM2_Sign");
        let sig =
            client::parse_sign(&exec(&mut sim, &client::sign(key.handle, b"", &digest))).unwrap();
        assert!(matches!(sig, Signature::MlDsa(_)));
        // Pure ML-DSA of the digest bytes as the message, empty context.
        assert_independently_valid(set, &pk, sig.bytes(), b"", &digest, None);

        let ticket = client::parse_verify(&exec(
            &mut sim,
            &client::verify_signature(key.handle, &digest, &sig),
        ))
        .unwrap();
        assert_eq!(ticket.tag, TPM_ST_VERIFIED);
        assert_eq!(ticket.hierarchy, TPM_RH_OWNER);
        assert_eq!(ticket.hmac.len(), 32);
        let mut bad = sig.bytes().to_vec();
        bad[100] ^= 0x80;
        let response = exec(
            &mut sim,
            &client::verify_signature(key.handle, &digest, &Signature::MlDsa(bad)),
        );
        assert_eq!(rc(&response), ResponseCode::SIGNATURE.with_parameter(2));
        flush(&mut sim, key.handle);
    }
}

#[test]
fn sign_digest_with_external_mu_verifies_independently_for_every_set() {
    let mut sim = started();
    for set in MlDsaParameterSet::ALL {
        let key = primary(&mut sim, &PublicArea::mldsa(set).with_external_mu(), b"k");
        let pk = key.public.public_key().to_vec();
        let message = b"the message itself never reaches the TPM";
        let ctx = b"vtpm context";
        let mu = external_mu(&pk, ctx, message);
        let sig = client::parse_sign(&exec(
            &mut sim,
            &client::sign_digest(key.handle, b"k", b"", &mu),
        ))
        .unwrap();
        assert_independently_valid(set, &pk, sig.bytes(), ctx, message, None);

        let ticket = client::parse_verify(&exec(
            &mut sim,
            &client::verify_digest_signature(key.handle, b"", &mu, &sig),
        ))
        .unwrap();
        assert_eq!(ticket.tag, TPM_ST_DIGEST_VERIFIED);
        assert_eq!(ticket.metadata, Some(TPM_ALG_SHAKE256));
        let mut other_mu = mu.clone();
        other_mu[0] ^= 1;
        let response = exec(
            &mut sim,
            &client::verify_digest_signature(key.handle, b"", &other_mu, &sig),
        );
        assert_eq!(rc(&response), ResponseCode::SIGNATURE.with_parameter(3));
        flush(&mut sim, key.handle);
    }
}

#[test]
fn hash_mldsa_signatures_verify_independently_for_every_set_and_hash() {
    let mut sim = started();
    let hashes: [(u16, Vec<u8>, [u8; 11]); 3] = [
        (
            TPM_ALG_SHA256,
            Sha256::digest(b"m").to_vec(),
            pre_hash::SHA2_256,
        ),
        (
            TPM_ALG_SHA384,
            Sha384::digest(b"m").to_vec(),
            pre_hash::SHA2_384,
        ),
        (
            TPM_ALG_SHA512,
            Sha512::digest(b"m").to_vec(),
            pre_hash::SHA2_512,
        ),
    ];
    for (i, set) in MlDsaParameterSet::ALL.into_iter().enumerate() {
        let (hash_alg, digest, oid) = &hashes[i];
        let key = primary(&mut sim, &PublicArea::hash_mldsa(set, *hash_alg), b"");
        let pk = read_public_key(&mut sim, key.handle);

        // TPM2_SignDigest with a context string.
        let ctx = b"ctx";
        let sig = client::parse_sign(&exec(
            &mut sim,
            &client::sign_digest(key.handle, b"", ctx, digest),
        ))
        .unwrap();
        assert_eq!(
            sig,
            Signature::HashMlDsa {
                hash_alg: *hash_alg,
                signature: sig.bytes().to_vec()
            }
        );
        assert_independently_valid(set, &pk, sig.bytes(), ctx, digest, Some(oid));
        let ticket = client::parse_verify(&exec(
            &mut sim,
            &client::verify_digest_signature(key.handle, ctx, digest, &sig),
        ))
        .unwrap();
        assert_eq!(ticket.metadata, Some(*hash_alg));
        let response = exec(
            &mut sim,
            &client::verify_digest_signature(key.handle, b"other", digest, &sig),
        );
        assert_eq!(
            rc(&response),
            ResponseCode::SIGNATURE.with_parameter(3),
            "the context is bound"
        );

        // TPM2_Sign: the digest is PH(M) with an empty context.
        let sig =
            client::parse_sign(&exec(&mut sim, &client::sign(key.handle, b"", digest))).unwrap();
        assert_independently_valid(set, &pk, sig.bytes(), b"", digest, Some(oid));
        client::parse_verify(&exec(
            &mut sim,
            &client::verify_signature(key.handle, digest, &sig),
        ))
        .unwrap();
        flush(&mut sim, key.handle);
    }
}

#[test]
fn signatures_from_fips204_verify_in_the_sim_through_load_external() {
    let mut sim = started();
    macro_rules! check {
        ($m:ident, $set:expr) => {{
            let (pk, sk) = $m::KG::keygen_from_seed(&[0x42; 32]);
            let pk_bytes = pk.into_bytes();
            let area = PublicArea::mldsa($set)
                .with_external_mu()
                .with_unique(&pk_bytes);
            let loaded = client::parse_load(&exec(
                &mut sim,
                &client::load_external_public(&area.to_bytes(), vtpm_wire::consts::TPM_RH_NULL),
            ))
            .unwrap();
            let message = [9u8; 32];
            let sig = sk.try_sign_with_seed(&[1; 32], &message, b"").unwrap();
            let sig = Signature::MlDsa(sig.to_vec());
            let ticket = client::parse_verify(&exec(
                &mut sim,
                &client::verify_signature(loaded.handle, &message, &sig),
            ))
            .unwrap();
            assert_eq!(ticket.hierarchy, vtpm_wire::consts::TPM_RH_NULL);
            assert!(
                ticket.hmac.is_empty(),
                "keys in the NULL hierarchy get NULL tickets"
            );
            let mu = external_mu(&pk_bytes, b"", &message);
            client::parse_verify(&exec(
                &mut sim,
                &client::verify_digest_signature(loaded.handle, b"", &mu, &sig),
            ))
            .unwrap();
            let mut bad = sig.bytes().to_vec();
            bad[7] ^= 4;
            let response = exec(
                &mut sim,
                &client::verify_signature(loaded.handle, &message, &Signature::MlDsa(bad)),
            );
            assert_eq!(rc(&response), ResponseCode::SIGNATURE.with_parameter(2));
            // Signing needs the private key, which an external public key lacks.
            let response = exec(&mut sim, &client::sign(loaded.handle, b"", &message));
            assert_eq!(rc(&response), ResponseCode::AUTH_UNAVAILABLE);
            flush(&mut sim, loaded.handle);
        }};
    }
    check!(ml_dsa_44, MlDsaParameterSet::MlDsa44);
    check!(ml_dsa_65, MlDsaParameterSet::MlDsa65);
    check!(ml_dsa_87, MlDsaParameterSet::MlDsa87);
}

#[test]
fn signing_keys_follow_their_scheme_rules() {
    let mut sim = started();
    let plain = primary(
        &mut sim,
        &PublicArea::mldsa(MlDsaParameterSet::MlDsa44),
        b"",
    );
    // No allowExternalMu: SignDigest is refused with vtpm_wire::ResponseCode::EXT_MU.
    let response = exec(
        &mut sim,
        &client::sign_digest(plain.handle, b"", b"", &[0; 64]),
    );
    assert_eq!(
        rc(&response),
        vtpm_wire::ResponseCode::EXT_MU.with_handle(1)
    );
    let ext = primary(
        &mut sim,
        &PublicArea::mldsa(MlDsaParameterSet::MlDsa44).with_external_mu(),
        b"",
    );
    // μ is 64 bytes.
    let response = exec(
        &mut sim,
        &client::sign_digest(ext.handle, b"", b"", &[0; 32]),
    );
    assert_eq!(rc(&response), ResponseCode::SIZE.with_parameter(2));
    // μ already holds the context.
    let response = exec(
        &mut sim,
        &client::sign_digest(ext.handle, b"", b"c", &[0; 64]),
    );
    assert_eq!(rc(&response), ResponseCode::VALUE.with_parameter(1));
    // HashML-DSA: the digest must match the pre-hash.
    let hashed = primary(
        &mut sim,
        &PublicArea::hash_mldsa(MlDsaParameterSet::MlDsa44, TPM_ALG_SHA384),
        b"",
    );
    let response = exec(&mut sim, &client::sign(hashed.handle, b"", &[0; 32]));
    assert_eq!(rc(&response), ResponseCode::SIZE.with_parameter(1));
    // A pure signature offered to a HashML-DSA key is the wrong scheme.
    let response = exec(
        &mut sim,
        &client::verify_signature(hashed.handle, &[0; 48], &Signature::MlDsa(vec![0; 2420])),
    );
    assert_eq!(rc(&response), ResponseCode::SCHEME.with_parameter(2));
    // A context longer than 255 bytes does not fit TPM2B_SIGNATURE_CTX.
    let response = exec(
        &mut sim,
        &client::sign_digest(hashed.handle, b"", &[1; 256], &[0; 48]),
    );
    assert_eq!(rc(&response), ResponseCode::SIZE.with_parameter(1));
}

#[test]
fn mldsa_87_sign_digest_response_needs_more_than_4096_bytes() {
    let mut sim = started();
    let key = primary(
        &mut sim,
        &PublicArea::mldsa(MlDsaParameterSet::MlDsa87).with_external_mu(),
        b"",
    );
    let command = client::sign_digest(key.handle, b"", b"", &[3; 64]);
    let response = exec(&mut sim, &command);
    assert_eq!(response.len(), 4650);
    let sig = client::parse_sign(&response).unwrap();
    let verify = client::verify_digest_signature(key.handle, b"", &[3; 64], &sig);
    assert_eq!(verify.len(), 4713);
    client::parse_verify(&exec(&mut sim, &verify)).unwrap();

    // With the classic 4096-byte buffer the signature cannot be returned
    // and the verify command cannot be sent.
    let mut small = vtpm_sim::Sim::new(vtpm_sim::SimConfig {
        buffer_size: 4096,
        rng_seed: Some([1; 32]),
        ..vtpm_sim::SimConfig::default()
    })
    .unwrap();
    exec(&mut small, &vtpm_client::startup(0));
    let key = primary(
        &mut small,
        &PublicArea::mldsa(MlDsaParameterSet::MlDsa87).with_external_mu(),
        b"",
    );
    let response = exec(
        &mut small,
        &client::sign_digest(key.handle, b"", b"", &[3; 64]),
    );
    assert_eq!(rc(&response), ResponseCode::SIZE);
    let response = exec(
        &mut small,
        &client::verify_digest_signature(key.handle, b"", &[3; 64], &sig),
    );
    assert_eq!(rc(&response), ResponseCode::COMMAND_SIZE);
}
