//! Saving and restoring the simulator state.

mod common;

use common::{exec, primary, rc, sim_with_seed, started};
use vtpm_sim::{Sim, SimConfig, StateError};
use vtpm_wire::commands::{parse_pcr_read, pcr_extend_sha256, pcr_read, startup};
use vtpm_wire::consts::{TPM_ALG_SHA256, TPM_RH_OWNER};
use vtpm_wire::pqc::{self, MlDsaParameterSet, MlKemParameterSet, PublicArea};
use vtpm_wire::ResponseCode;

#[test]
fn restore_keeps_pcrs_seeds_objects_and_passwords() {
    let mut sim = started();
    exec(&mut sim, &pcr_extend_sha256(9, &[9; 32]));
    exec(
        &mut sim,
        &pqc::hierarchy_change_auth(TPM_RH_OWNER, b"", b"owner"),
    );
    let template = PublicArea::mldsa(MlDsaParameterSet::MlDsa65);
    let key = pqc::parse_create_primary(&exec(
        &mut sim,
        &pqc::create_primary(TPM_RH_OWNER, b"owner", &template, b"k"),
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
    let sig = pqc::parse_sign(&exec(&mut other, &pqc::sign(key.handle, b"k", &[1; 32]))).unwrap();
    pqc::parse_verify(&exec(
        &mut other,
        &pqc::verify_signature(key.handle, &[1; 32], &sig),
    ))
    .unwrap();
    // The owner seed and password came along: the same primary key.
    pqc::parse_empty(&exec(&mut other, &pqc::flush_context(key.handle))).unwrap();
    let again = pqc::parse_create_primary(&exec(
        &mut other,
        &pqc::create_primary(TPM_RH_OWNER, b"owner", &template, b""),
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
        rc(&exec(&mut other, &vtpm_wire::commands::get_random(4))),
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

    let mut flipped = blob.clone();
    flipped[blob.len() / 2] ^= 0x01;
    assert_eq!(sim.restore_state(&flipped), Err(StateError::Checksum));
    assert_eq!(
        sim.restore_state(&blob[..blob.len() - 10]),
        Err(StateError::Truncated)
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
    exec(&mut sim, &vtpm_wire::commands::shutdown(1));
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
