//! Saving and restoring the simulator state.

mod common;

use common::{exec, primary, rc, sequence_sign, sequence_verify, sim_with_seed, started};
use vtpm_client as client;
use vtpm_client::{parse_pcr_read, pcr_extend_sha256, pcr_read, startup};
use vtpm_sim::{Sim, SimConfig, StateError, StateKey};
use vtpm_wire::consts::{TPM_ALG_SHA256, TPM_RH_OWNER};
use vtpm_wire::structures::{MlDsaParameterSet, MlKemParameterSet, PublicArea};
use vtpm_wire::ResponseCode;

#[test]
fn restore_keeps_pcrs_seeds_objects_and_passwords() {
    let mut sim = started();
    exec(&mut sim, &pcr_extend_sha256(9, &[9; 32]));
    exec(
        &mut sim,
        &client::hierarchy_change_auth(TPM_RH_OWNER, b"", b"owner"),
    );
    let template = PublicArea::mldsa(MlDsaParameterSet::MlDsa65);
    let key = client::parse_create_primary(&exec(
        &mut sim,
        &client::create_primary(TPM_RH_OWNER, b"owner", &template, b"k"),
    ))
    .unwrap();
    sim.dynamic_launch(b"x").unwrap();
    let pcrs = exec(&mut sim, &pcr_read(TPM_ALG_SHA256, &[9]));
    let blob = sim.save_state();

    // A simulator with other seeds becomes the saved one.
    let mut other = sim_with_seed(200);
    other.restore_state(&blob).unwrap();
    assert!(other.established());
    assert_eq!(exec(&mut other, &pcr_read(TPM_ALG_SHA256, &[9])), pcrs);
    // The loaded key is still there and signs under its password.
    let sig = sequence_sign(&mut other, key.handle, b"k", b"", &[1; 32]);
    client::parse_verify(&sequence_verify(
        &mut other,
        key.handle,
        b"",
        &[&[1; 32]],
        &sig,
    ))
    .unwrap();
    // The owner seed and password came along: the same primary key.
    client::parse_empty(&exec(&mut other, &client::flush_context(key.handle))).unwrap();
    let again = client::parse_create_primary(&exec(
        &mut other,
        &client::create_primary(TPM_RH_OWNER, b"owner", &template, b""),
    ))
    .unwrap();
    assert_eq!(again.public, key.public);

    // from_state gives the same result.
    let mut fresh = Sim::from_state(SimConfig::default(), &blob).unwrap();
    assert_eq!(exec(&mut fresh, &pcr_read(TPM_ALG_SHA256, &[9])), pcrs);
}

#[test]
fn a_state_saved_before_startup_restores_unstarted() {
    let sim = sim_with_seed(5);
    let blob = sim.save_state();
    let mut other = started();
    other.restore_state(&blob).unwrap();
    assert_eq!(
        rc(&exec(&mut other, &vtpm_client::get_random(4))),
        ResponseCode::INITIALIZE
    );
    exec(&mut other, &startup(0));
    // Seeds came from the blob: sim_with_seed(5) and other agree on keys.
    let mut reference = sim_with_seed(5);
    exec(&mut reference, &startup(0));
    let template = PublicArea::mlkem(MlKemParameterSet::MlKem768);
    assert_eq!(
        primary(&mut other, &template, b"").public,
        primary(&mut reference, &template, b"").public
    );
}

#[test]
fn corrupted_blobs_are_errors_and_change_nothing() {
    let mut sim = started();
    exec(&mut sim, &pcr_extend_sha256(3, &[3; 32]));
    let blob = sim.save_state();
    let before = parse_pcr_read(&exec(&mut sim, &pcr_read(TPM_ALG_SHA256, &[3]))).unwrap();

    let mut flipped = blob.to_vec();
    flipped[blob.len() / 2] ^= 0x01;
    assert_eq!(sim.restore_state(&flipped), Err(StateError::Checksum));
    // The framing's CRC-32 covers the whole blob, so a cut blob fails it.
    assert_eq!(
        sim.restore_state(&blob[..blob.len() - 10]),
        Err(StateError::Checksum)
    );
    assert_eq!(
        sim.restore_state(b"not a blob at all"),
        Err(StateError::BadMagic)
    );
    assert_eq!(sim.restore_state(&[]), Err(StateError::Truncated));
    let after = parse_pcr_read(&exec(&mut sim, &pcr_read(TPM_ALG_SHA256, &[3]))).unwrap();
    assert_eq!(before, after);
    assert!(StateError::Checksum.to_string().contains("corrupted"));
}

#[test]
fn a_shutdown_state_record_survives_save_and_restore() {
    let mut sim = started();
    exec(&mut sim, &pcr_extend_sha256(2, &[2; 32]));
    let pcr2 = exec(&mut sim, &pcr_read(TPM_ALG_SHA256, &[2]));
    exec(&mut sim, &vtpm_client::shutdown(1));
    let blob = sim.save_state();
    let mut other = sim_with_seed(9);
    other.restore_state(&blob).unwrap();
    other.reset();
    assert_eq!(rc(&exec(&mut other, &startup(1))), ResponseCode::SUCCESS);
    let before = parse_pcr_read(&pcr2).unwrap();
    let after = parse_pcr_read(&exec(&mut other, &pcr_read(TPM_ALG_SHA256, &[2]))).unwrap();
    assert_eq!(after.digests, before.digests);
    // The Resume re-initialised PCRs 17-20, as libtpms counts them.
    assert_eq!(after.update_counter, before.update_counter + 4);
}

/// `tests/data/state-v1.bin` was saved by the version-1 format (a
/// SHA-256-sealed blob, before the move onto vtpm-frame) from `started()`
/// after: PCR 9 extended with [9; 32]; owner password "owner"; CreatePrimary
/// of an ML-DSA-44 external-μ key (password "k", 0x80000000) and of a
/// storage parent (0x80000001); Create and Load of a HashML-DSA-44/SHA-256
/// child (password "child", 0x80000002); CreatePrimary ML-KEM-512
/// (0x80000003); LoadExternal of the first key's public area into the NULL
/// hierarchy (0x80000004); a dynamic launch; Shutdown(STATE).
const STATE_V1: &[u8] = include_bytes!("data/state-v1.bin");

#[test]
fn a_version_1_blob_still_loads_with_its_keys_pcrs_and_passwords() {
    let mut sim = sim_with_seed(99);
    sim.restore_state(STATE_V1).unwrap();
    assert!(sim.established());

    // The external-μ key signs and its public copy verifies.
    let mu = [5u8; 64];
    let sig = client::parse_sign(&exec(
        &mut sim,
        &client::sign_digest(0x8000_0000, b"k", b"", &mu),
    ))
    .unwrap();
    client::parse_verify(&exec(
        &mut sim,
        &client::verify_digest_signature(0x8000_0004, b"", &mu, &sig),
    ))
    .unwrap();
    // The loaded child signs under its own password.
    let sig = sequence_sign(&mut sim, 0x8000_0002, b"child", b"", &[1; 32]);
    client::parse_verify(&sequence_verify(
        &mut sim,
        0x8000_0002,
        b"",
        &[&[1; 32]],
        &sig,
    ))
    .unwrap();
    // The ML-KEM key decapsulates what is encapsulated to it.
    let sent =
        client::parse_encapsulate(&exec(&mut sim, &client::encapsulate(0x8000_0003))).unwrap();
    let got = client::parse_decapsulate(&exec(
        &mut sim,
        &client::decapsulate(0x8000_0003, b"", &sent.ciphertext),
    ))
    .unwrap();
    assert_eq!(got, sent.shared_secret);
    // Seeds and the owner password came along: the same primary again.
    let first =
        client::parse_read_public(&exec(&mut sim, &client::read_public(0x8000_0000))).unwrap();
    client::parse_empty(&exec(&mut sim, &client::flush_context(0x8000_0001))).unwrap();
    let template = PublicArea::mldsa(MlDsaParameterSet::MlDsa44).with_external_mu();
    let again = client::parse_create_primary(&exec(
        &mut sim,
        &client::create_primary(TPM_RH_OWNER, b"owner", &template, b""),
    ))
    .unwrap();
    assert_eq!(again.public, first.public);
    // The Shutdown(STATE) record resumes PCR 9 after a power cycle.
    let pcr9 = parse_pcr_read(&exec(&mut sim, &pcr_read(TPM_ALG_SHA256, &[9]))).unwrap();
    sim.reset();
    assert_eq!(rc(&exec(&mut sim, &startup(1))), ResponseCode::SUCCESS);
    let resumed = parse_pcr_read(&exec(&mut sim, &pcr_read(TPM_ALG_SHA256, &[9]))).unwrap();
    assert_eq!(resumed.digests, pcr9.digests);
    assert_ne!(pcr9.digests[0], [0; 32]);
}

/// Defect 12: a blob whose ML-DSA seed was altered and which was then
/// sealed again (here a version-1 blob, whose SHA-256 anyone can
/// recompute) used to restore, sign, and fail every verification.
#[test]
fn a_resealed_blob_whose_private_key_does_not_match_its_public_area_is_refused() {
    use sha2::{Digest, Sha256};
    // The first object's TPMT_SENSITIVE: TPM_ALG_MLDSA, authValue "k", no
    // seedValue, then the 32-byte ξ.
    let marker = [0x00, 0xA1, 0x00, 0x01, b'k', 0x00, 0x00, 0x00, 0x20];
    let at = STATE_V1
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the first key's sensitive area")
        + marker.len();
    let mut forged = STATE_V1.to_vec();
    forged[at] ^= 0x01;
    let end = forged.len() - 32;
    let checksum = Sha256::digest(&forged[..end]);
    forged[end..].copy_from_slice(&checksum);

    let mut sim = sim_with_seed(3);
    let before = sim.save_state();
    assert_eq!(
        sim.restore_state(&forged),
        Err(StateError::Binding { slot: 0 })
    );
    assert!(StateError::Binding { slot: 0 }
        .to_string()
        .contains("TPM_RC_BINDING"));
    // Nothing changed.
    assert_eq!(sim.save_state(), before);
}

fn keyed(key: u8) -> SimConfig {
    SimConfig {
        rng_seed: Some([key; 32]),
        state_key: Some(StateKey::new([key; 32])),
        ..SimConfig::default()
    }
}

#[test]
fn a_blob_sealed_with_a_state_key_restores_only_under_that_key() {
    let mut source = Sim::new(keyed(1)).unwrap();
    exec(&mut source, &startup(0));
    exec(&mut source, &pcr_extend_sha256(4, &[4; 32]));
    let blob = source.save_state();

    let mut same_key = Sim::new(keyed(1)).unwrap();
    same_key.restore_state(&blob).unwrap();
    assert_eq!(
        exec(&mut same_key, &pcr_read(TPM_ALG_SHA256, &[4])),
        exec(&mut source, &pcr_read(TPM_ALG_SHA256, &[4]))
    );
    let mut other_key = Sim::new(keyed(2)).unwrap();
    assert_eq!(
        other_key.restore_state(&blob),
        Err(StateError::Authentication)
    );
    assert_eq!(
        sim_with_seed(1).restore_state(&blob),
        Err(StateError::StateKeyRequired)
    );
    // Blobs made without the key (the default key, or version 1 with no
    // MAC at all) could be forged by anyone who can write them.
    let unkeyed = sim_with_seed(1).save_state();
    assert_eq!(
        same_key.restore_state(&unkeyed),
        Err(StateError::NotSealedWithStateKey)
    );
    assert_eq!(
        same_key.restore_state(STATE_V1),
        Err(StateError::NotSealedWithStateKey)
    );
}

#[test]
fn a_blob_saved_and_restored_under_the_default_key_moves_between_simulators() {
    let mut source = started();
    exec(&mut source, &pcr_extend_sha256(5, &[5; 32]));
    let blob = source.save_state();
    let mut destination = Sim::new(SimConfig::default()).unwrap();
    destination.restore_state(&blob).unwrap();
    assert_eq!(destination.save_state(), blob);
}

/// A version-2 blob written before open sequences joined the state (no
/// SEQUENCES section): a started simulator with an ML-DSA-44 key (password
/// "k") in slot 0, whose public key is `state-v2.pub`.
const STATE_V2_WITHOUT_SEQUENCES: &[u8] = include_bytes!("data/state-v2.bin");

#[test]
fn a_version_2_blob_from_before_sequences_restores_and_its_key_signs_in_a_sequence() {
    let mut sim = sim_with_seed(9);
    sim.restore_state(STATE_V2_WITHOUT_SEQUENCES).unwrap();
    let read =
        client::parse_read_public(&exec(&mut sim, &client::read_public(0x8000_0000))).unwrap();
    assert_eq!(
        read.public.public_key(),
        include_bytes!("data/state-v2.pub")
    );
    let seq = client::parse_sequence_start(&exec(
        &mut sim,
        &client::sign_sequence_start(0x8000_0000, b"", b""),
    ))
    .unwrap();
    let sig = client::parse_sign(&exec(
        &mut sim,
        &client::sign_sequence_complete(seq, b"", 0x8000_0000, b"k", b"old key"),
    ))
    .unwrap();
    assert_eq!(
        sig.bytes().len(),
        MlDsaParameterSet::MlDsa44.signature_size()
    );
}

#[test]
fn open_sequences_survive_a_save_and_restore_with_their_message_and_password() {
    let mut sim = started();
    let set = MlDsaParameterSet::MlDsa44;
    let key = primary(&mut sim, &PublicArea::hash_mldsa(set, TPM_ALG_SHA256), b"k");
    let sign = client::parse_sequence_start(&exec(
        &mut sim,
        &client::sign_sequence_start(key.handle, b"s", b"ctx"),
    ))
    .unwrap();
    client::parse_empty(&exec(
        &mut sim,
        &client::sequence_update(sign, b"s", b"part one, "),
    ))
    .unwrap();
    let blob = sim.save_state();

    let mut other = sim_with_seed(77);
    other.restore_state(&blob).unwrap();
    // The password came along: a wrong one is refused, the right one signs.
    let response = exec(
        &mut other,
        &client::sign_sequence_complete(sign, b"wrong", key.handle, b"k", b"part two"),
    );
    assert_eq!(rc(&response), ResponseCode(0x9A2));
    let sig = client::parse_sign(&exec(
        &mut other,
        &client::sign_sequence_complete(sign, b"s", key.handle, b"k", b"part two"),
    ))
    .unwrap();
    // The message came along: the signature covers both parts.
    let verify = client::parse_sequence_start(&exec(
        &mut other,
        &client::verify_sequence_start(key.handle, b"", b"", b"ctx"),
    ))
    .unwrap();
    client::parse_empty(&exec(
        &mut other,
        &client::sequence_update(verify, b"", b"part one, part two"),
    ))
    .unwrap();
    let ticket = client::parse_verify(&exec(
        &mut other,
        &client::verify_sequence_complete(verify, b"", key.handle, &sig),
    ))
    .unwrap();
    assert_eq!(ticket.tag, vtpm_wire::consts::TPM_ST_MESSAGE_VERIFIED);
}
