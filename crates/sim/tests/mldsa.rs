//! ML-DSA and HashML-DSA signatures made by the simulator verify under an
//! independent implementation (the `fips204` crate), with the public key
//! read back from the simulator; signatures made by `fips204` verify in the
//! simulator. Corrupting a signature or a public key breaks verification.

mod common;

use common::{exec, flush, primary, rc, sequence_sign, sequence_verify, started};
use fips204::traits::{KeyGen, SerDes, Signer, Verifier};
use fips204::{ml_dsa_44, ml_dsa_65, ml_dsa_87, pre_hash};
use sha2::{Digest, Sha256, Sha384, Sha512};
use shake::{ExtendableOutput, Shake256, Update, XofReader};
use vtpm_client as client;
use vtpm_sim::Sim;
use vtpm_wire::consts::{TPM_ALG_SHA256, TPM_ALG_SHA384, TPM_ALG_SHA512, TPM_RH_OWNER};
use vtpm_wire::consts::{TPM_ST_DIGEST_VERIFIED, TPM_ST_MESSAGE_VERIFIED};
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
fn sign_and_verify_signature_refuse_every_mldsa_and_hash_mldsa_key_as_v185_says() {
    // v1.85 Part 3 Table 115: TPM2_Sign and TPM2_VerifySignature do not
    // support ML-DSA or HashML-DSA keys; a valid signature made through the
    // sequence commands is still refused by VerifySignature.
    let mut sim = started();
    for set in MlDsaParameterSet::ALL {
        for template in [
            PublicArea::mldsa(set),
            PublicArea::hash_mldsa(set, TPM_ALG_SHA256),
        ] {
            let key = primary(&mut sim, &template, b"pw");
            let pk = read_public_key(&mut sim, key.handle);
            assert_eq!(
                pk,
                key.public.public_key(),
                "ReadPublic and CreatePrimary agree"
            );
            let digest = Sha256::digest(b"a message for TPM2_Sign");
            let response = exec(&mut sim, &client::sign(key.handle, b"pw", &digest));
            assert_eq!(rc(&response), ResponseCode::SCHEME.with_parameter(2));

            let sig = sequence_sign(&mut sim, key.handle, b"pw", b"", &digest);
            let response = exec(
                &mut sim,
                &client::verify_signature(key.handle, &digest, &sig),
            );
            assert_eq!(rc(&response), ResponseCode::SCHEME.with_parameter(2));
            // The refusal comes after the authorization: a wrong password
            // is still a wrong password.
            let response = exec(&mut sim, &client::sign(key.handle, b"wrong", &digest));
            assert_eq!(
                rc(&response),
                ResponseCode::AUTH_FAIL.with_session(1),
                "{set:?}"
            );
            flush(&mut sim, key.handle);
        }
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
        // External-μ tickets name TPM_ALG_NULL (spec-notes §5.1).
        assert_eq!(ticket.metadata, Some(vtpm_wire::consts::TPM_ALG_NULL));
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
            let response = sequence_verify(&mut sim, loaded.handle, b"", &[&message], &sig);
            let ticket = client::parse_verify(&response).unwrap();
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
            let response = sequence_verify(
                &mut sim,
                loaded.handle,
                b"",
                &[&message],
                &Signature::MlDsa(bad),
            );
            assert_eq!(rc(&response), ResponseCode::SIGNATURE.with_parameter(1));
            // Signing needs the private key, which an external public key lacks.
            let response = exec(&mut sim, &client::sign_digest(loaded.handle, b"", b"", &mu));
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
    // No allowExternalMu: SignDigest is refused with TPM_RC_ATTRIBUTES, as
    // the shipped v1.85 implementations answer (spec-notes §5.1).
    let response = exec(
        &mut sim,
        &client::sign_digest(plain.handle, b"", b"", &[0; 64]),
    );
    assert_eq!(rc(&response), ResponseCode::ATTRIBUTES.with_handle(1));
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
    let response = exec(
        &mut sim,
        &client::sign_digest(hashed.handle, b"", b"", &[0; 32]),
    );
    assert_eq!(rc(&response), ResponseCode::SIZE.with_parameter(2));
    // A pure signature offered to a HashML-DSA key is the wrong scheme.
    let response = exec(
        &mut sim,
        &client::verify_digest_signature(
            hashed.handle,
            b"",
            &[0; 48],
            &Signature::MlDsa(vec![0; 2420]),
        ),
    );
    assert_eq!(rc(&response), ResponseCode::SCHEME.with_parameter(3));
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

#[test]
fn sign_sequences_make_pure_mldsa_signatures_that_fips204_and_verify_sequences_accept() {
    let mut sim = started();
    let message = b"a message signed through the v1.85 sequence commands";
    for set in [
        MlDsaParameterSet::MlDsa44,
        MlDsaParameterSet::MlDsa65,
        MlDsaParameterSet::MlDsa87,
    ] {
        let key = primary(&mut sim, &PublicArea::mldsa(set), b"pw");
        let pk = key.public.public_key().to_vec();
        for ctx in [&b""[..], b"vtpm context"] {
            let sig = sequence_sign(&mut sim, key.handle, b"pw", ctx, message);
            assert!(matches!(sig, Signature::MlDsa(_)));
            assert_independently_valid(set, &pk, sig.bytes(), ctx, message, None);
            // The message arrives in three pieces and verifies.
            let (a, rest) = message.split_at(5);
            let (b, c) = rest.split_at(20);
            let response = sequence_verify(&mut sim, key.handle, ctx, &[a, b, c], &sig);
            let ticket = client::parse_verify(&response).expect("VerifySequenceComplete succeeds");
            assert_eq!(ticket.tag, TPM_ST_MESSAGE_VERIFIED);
            assert_eq!(ticket.hierarchy, TPM_RH_OWNER);
            assert_eq!(ticket.metadata, None);
            assert_eq!(ticket.hmac.len(), 32, "SHA-256, the context-integrity hash");
            // Another message, a flipped bit or another context is refused.
            let response = sequence_verify(&mut sim, key.handle, ctx, &[b"other"], &sig);
            assert_eq!(rc(&response), ResponseCode::SIGNATURE.with_parameter(1));
            let mut bad = sig.bytes().to_vec();
            bad[100] ^= 1;
            let response = sequence_verify(
                &mut sim,
                key.handle,
                ctx,
                &[message],
                &Signature::MlDsa(bad),
            );
            assert_eq!(rc(&response), ResponseCode::SIGNATURE.with_parameter(1));
            let response = sequence_verify(&mut sim, key.handle, b"x", &[message], &sig);
            assert_eq!(rc(&response), ResponseCode::SIGNATURE.with_parameter(1));
        }
        flush(&mut sim, key.handle);
    }
}

#[test]
fn hash_mldsa_sign_sequences_accept_updates_and_fips204_checks_the_signature() {
    let mut sim = started();
    let set = MlDsaParameterSet::MlDsa65;
    let key = primary(&mut sim, &PublicArea::hash_mldsa(set, TPM_ALG_SHA384), b"");
    let pk = key.public.public_key().to_vec();
    let seq = client::parse_sequence_start(&exec(
        &mut sim,
        &client::sign_sequence_start(key.handle, b"", b"ctx"),
    ))
    .unwrap();
    client::parse_empty(&exec(
        &mut sim,
        &client::sequence_update(seq, b"", b"first "),
    ))
    .unwrap();
    let response = exec(
        &mut sim,
        &client::sign_sequence_complete(seq, b"", key.handle, b"", b"second"),
    );
    let sig = client::parse_sign(&response).unwrap();
    assert!(matches!(
        sig,
        Signature::HashMlDsa {
            hash_alg: TPM_ALG_SHA384,
            ..
        }
    ));
    let digest = Sha384::digest(b"first second");
    assert_independently_valid(
        set,
        &pk,
        sig.bytes(),
        b"ctx",
        &digest,
        Some(&pre_hash::SHA2_384),
    );
    // The sequence is gone once it completed.
    let response = exec(&mut sim, &client::sequence_update(seq, b"", b"more"));
    assert_eq!(rc(&response), ResponseCode::REFERENCE_H0);
    let response = sequence_verify(&mut sim, key.handle, b"ctx", &[b"first ", b"second"], &sig);
    assert_eq!(
        client::parse_verify(&response).unwrap().tag,
        TPM_ST_MESSAGE_VERIFIED
    );
}

#[test]
fn a_pure_mldsa_sign_sequence_refuses_sequence_update_as_one_shot() {
    let mut sim = started();
    let key = primary(
        &mut sim,
        &PublicArea::mldsa(MlDsaParameterSet::MlDsa44),
        b"",
    );
    let seq = client::parse_sequence_start(&exec(
        &mut sim,
        &client::sign_sequence_start(key.handle, b"", b""),
    ))
    .unwrap();
    let response = exec(&mut sim, &client::sequence_update(seq, b"", b"part"));
    assert_eq!(rc(&response), ResponseCode::ONE_SHOT_SIGNATURE);
    // The sequence survives and still signs the whole message at once.
    let response = exec(
        &mut sim,
        &client::sign_sequence_complete(seq, b"", key.handle, b"", b"whole"),
    );
    assert!(client::parse_sign(&response).is_ok());
}

#[test]
fn sequence_commands_refuse_wrong_handles_keys_and_passwords() {
    let mut sim = started();
    let set = MlDsaParameterSet::MlDsa44;
    let key = primary(&mut sim, &PublicArea::mldsa(set), b"");
    let other = primary(&mut sim, &PublicArea::mldsa(set).with_external_mu(), b"");
    let kem = primary(
        &mut sim,
        &PublicArea::mlkem(vtpm_wire::structures::MlKemParameterSet::MlKem512),
        b"",
    );
    // A KEM key cannot sign or verify.
    let response = exec(&mut sim, &client::sign_sequence_start(kem.handle, b"", b""));
    assert_eq!(rc(&response), ResponseCode::KEY.with_handle(1));
    let response = exec(
        &mut sim,
        &client::verify_sequence_start(kem.handle, b"", b"", b""),
    );
    assert_eq!(rc(&response), ResponseCode::ATTRIBUTES.with_handle(1));
    // ML-DSA takes no hint.
    let response = exec(
        &mut sim,
        &client::verify_sequence_start(key.handle, b"", b"R", b""),
    );
    assert_eq!(rc(&response), ResponseCode::SIZE.with_parameter(2));

    let seq = client::parse_sequence_start(&exec(
        &mut sim,
        &client::sign_sequence_start(key.handle, b"seq pw", b""),
    ))
    .unwrap();
    // A key handle where a sequence belongs is TPM_RC_MODE; an empty
    // transient handle is not loaded; a PCR is not an object.
    let response = exec(&mut sim, &client::sequence_update(key.handle, b"", b"x"));
    assert_eq!(rc(&response), ResponseCode::MODE.with_handle(1));
    let response = exec(&mut sim, &client::sequence_update(0x8000_0102, b"", b"x"));
    assert_eq!(rc(&response), ResponseCode::REFERENCE_H0);
    let response = exec(&mut sim, &client::sequence_update(7, b"", b"x"));
    assert_eq!(rc(&response), ResponseCode::VALUE.with_handle(1));
    // The sequence's own password, not the key's.
    let response = exec(
        &mut sim,
        &client::sign_sequence_complete(seq, b"wrong", key.handle, b"", b"m"),
    );
    assert_eq!(
        rc(&response),
        ResponseCode(0x9A2),
        "TPM_RC_BAD_AUTH, session 1"
    );
    // Another key than the one the sequence started with.
    let response = exec(
        &mut sim,
        &client::sign_sequence_complete(seq, b"seq pw", other.handle, b"", b"m"),
    );
    assert_eq!(rc(&response), ResponseCode::SIGN_CONTEXT_KEY.with_handle(2));
    // A sign sequence cannot complete as a verify sequence.
    let sig = Signature::MlDsa(vec![0; set.signature_size()]);
    let response = exec(
        &mut sim,
        &client::verify_sequence_complete(seq, b"seq pw", key.handle, &sig),
    );
    assert_eq!(rc(&response), ResponseCode::MODE.with_handle(1));
    // A HashML-DSA signature does not fit an ML-DSA key.
    let vseq = client::parse_sequence_start(&exec(
        &mut sim,
        &client::verify_sequence_start(key.handle, b"", b"", b""),
    ))
    .unwrap();
    let wrong = Signature::HashMlDsa {
        hash_alg: TPM_ALG_SHA256,
        signature: vec![0; set.signature_size()],
    };
    let response = exec(
        &mut sim,
        &client::verify_sequence_complete(vseq, b"", key.handle, &wrong),
    );
    assert_eq!(rc(&response), ResponseCode::SCHEME.with_parameter(1));
    // FlushContext ends a sequence; three are open at most.
    flush(&mut sim, vseq);
    flush(&mut sim, seq);
    let response = exec(&mut sim, &client::flush_context(seq));
    assert_eq!(rc(&response), ResponseCode::HANDLE.with_parameter(1));
    for _ in 0..3 {
        let response = exec(&mut sim, &client::sign_sequence_start(key.handle, b"", b""));
        assert!(client::parse_sequence_start(&response).is_ok());
    }
    let response = exec(&mut sim, &client::sign_sequence_start(key.handle, b"", b""));
    assert_eq!(rc(&response), ResponseCode::OBJECT_MEMORY);
}

#[test]
fn a_null_hierarchy_verify_sequence_answers_a_null_message_ticket() {
    let mut sim = started();
    let set = MlDsaParameterSet::MlDsa44;
    let response = exec(
        &mut sim,
        &client::create_primary(
            vtpm_wire::consts::TPM_RH_NULL,
            b"",
            &PublicArea::mldsa(set),
            b"",
        ),
    );
    let key = client::parse_create_primary(&response).unwrap();
    let sig = sequence_sign(&mut sim, key.handle, b"", b"", b"m");
    let response = sequence_verify(&mut sim, key.handle, b"", &[b"m"], &sig);
    let ticket = client::parse_verify(&response).unwrap();
    assert_eq!(ticket.tag, TPM_ST_MESSAGE_VERIFIED);
    assert_eq!(ticket.hierarchy, vtpm_wire::consts::TPM_RH_NULL);
    assert!(ticket.hmac.is_empty());
}

#[test]
fn test_parms_accepts_every_pqc_parameter_set_and_refuses_unknown_ones() {
    let mut sim = started();
    for id in 1..=3u16 {
        let mut mldsa = id.to_be_bytes().to_vec();
        mldsa.push(0);
        let response = exec(
            &mut sim,
            &client::test_parms(vtpm_wire::consts::TPM_ALG_MLDSA, &mldsa),
        );
        assert_eq!(rc(&response), ResponseCode::SUCCESS, "ML-DSA set {id}");
        let mut hashed = id.to_be_bytes().to_vec();
        hashed.extend_from_slice(&TPM_ALG_SHA512.to_be_bytes());
        let response = exec(
            &mut sim,
            &client::test_parms(vtpm_wire::consts::TPM_ALG_HASH_MLDSA, &hashed),
        );
        assert_eq!(rc(&response), ResponseCode::SUCCESS, "HashML-DSA set {id}");
        let mut kem = vtpm_wire::consts::TPM_ALG_NULL.to_be_bytes().to_vec();
        kem.extend_from_slice(&id.to_be_bytes());
        let response = exec(
            &mut sim,
            &client::test_parms(vtpm_wire::consts::TPM_ALG_MLKEM, &kem),
        );
        assert_eq!(rc(&response), ResponseCode::SUCCESS, "ML-KEM set {id}");
    }
    let response = exec(
        &mut sim,
        &client::test_parms(vtpm_wire::consts::TPM_ALG_MLDSA, &[0, 4, 0]),
    );
    assert_eq!(rc(&response), ResponseCode::PARMS.with_parameter(1));
    let response = exec(&mut sim, &client::test_parms(0x0001, &[]));
    assert_eq!(rc(&response), ResponseCode::TYPE.with_parameter(1));
    let response = exec(
        &mut sim,
        &client::test_parms(vtpm_wire::consts::TPM_ALG_HASH_MLDSA, &[0, 1, 0, 0x04]),
    );
    assert_eq!(rc(&response), ResponseCode::HASH.with_parameter(1));
}
