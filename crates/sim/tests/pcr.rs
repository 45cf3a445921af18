//! PCR_Extend, PCR_Read and PCR_Reset with values checked against sha2,
//! and the PC Client locality rules for PCRs 16–23.

mod common;

use common::{exec, exec_at, rc, sim_with_seed, started};
use sha2::{Digest, Sha256, Sha384};
use vtpm_client as client;
use vtpm_client::{parse_pcr_read, pcr_extend_sha256, pcr_read, pcr_reset, shutdown, startup};
use vtpm_wire::consts::{
    TPM_ALG_SHA256, TPM_ALG_SHA384, TPM_ALG_SHA512, TPM_RH_NULL, TPM_SU_CLEAR, TPM_SU_STATE,
};
use vtpm_wire::{cc, CommandBuilder, ResponseCode};

fn read(sim: &mut vtpm_sim::Sim, hash: u16, pcr: u8) -> Vec<u8> {
    let out = parse_pcr_read(&exec(sim, &pcr_read(hash, &[pcr]))).unwrap();
    out.digests.into_iter().next().unwrap_or_default()
}

fn extend_both(pcr: u32, d256: &[u8; 32], d384: &[u8; 48]) -> Vec<u8> {
    CommandBuilder::with_sessions(cc::PCR_EXTEND)
        .u32(pcr)
        .password_session(&[])
        .u32(2)
        .u16(TPM_ALG_SHA256)
        .bytes(d256)
        .u16(TPM_ALG_SHA384)
        .bytes(d384)
        .finish()
}

#[test]
fn extend_matches_sha2_in_both_banks() {
    let mut sim = started();
    assert_eq!(read(&mut sim, TPM_ALG_SHA256, 10), [0; 32]);
    let d256: [u8; 32] = Sha256::digest(b"event one").into();
    let d384: [u8; 48] = Sha384::digest(b"event one").into();
    assert_eq!(
        rc(&exec(&mut sim, &extend_both(10, &d256, &d384))),
        ResponseCode::SUCCESS
    );
    let expected256 = Sha256::digest([[0u8; 32].as_slice(), &d256].concat());
    let expected384 = Sha384::digest([[0u8; 48].as_slice(), &d384].concat());
    assert_eq!(read(&mut sim, TPM_ALG_SHA256, 10), expected256.to_vec());
    assert_eq!(read(&mut sim, TPM_ALG_SHA384, 10), expected384.to_vec());

    let d2: [u8; 32] = Sha256::digest(b"event two").into();
    exec(&mut sim, &pcr_extend_sha256(10, &d2));
    let expected = Sha256::digest([expected256.as_slice(), &d2].concat());
    assert_eq!(read(&mut sim, TPM_ALG_SHA256, 10), expected.to_vec());
    assert_eq!(
        read(&mut sim, TPM_ALG_SHA384, 10),
        expected384.to_vec(),
        "SHA-384 bank untouched"
    );
}

#[test]
fn pcr_read_reports_the_counter_and_at_most_eight_values() {
    let mut sim = started();
    let before = parse_pcr_read(&exec(&mut sim, &pcr_read(TPM_ALG_SHA256, &[0]))).unwrap();
    exec(&mut sim, &pcr_extend_sha256(1, &[1; 32]));
    let all: Vec<u8> = (0..24).collect();
    let out = parse_pcr_read(&exec(&mut sim, &pcr_read(TPM_ALG_SHA256, &all))).unwrap();
    assert_eq!(out.update_counter, before.update_counter + 1);
    assert_eq!(out.digests.len(), 8);
    assert_eq!(out.selection, vec![(TPM_ALG_SHA256, vec![0xFF, 0, 0])]);
    // A bank that is not allocated reads nothing.
    let out = parse_pcr_read(&exec(&mut sim, &pcr_read(TPM_ALG_SHA512, &[0]))).unwrap();
    assert!(out.digests.is_empty());
    assert_eq!(out.selection, vec![(TPM_ALG_SHA512, vec![0, 0, 0])]);
    // The known-good 62-byte answer of spec-notes §1.
    assert_eq!(exec(&mut sim, &pcr_read(TPM_ALG_SHA256, &[0])).len(), 62);
}

/// The PC Client table: (PCR, reset localities, extend localities).
const TABLE: [(u32, u8, u8); 8] = [
    (16, 0x0F, 0x1F),
    (17, 0x10, 0x1C),
    (18, 0x10, 0x1C),
    (19, 0x10, 0x0C),
    (20, 0x14, 0x0E),
    (21, 0x14, 0x04),
    (22, 0x14, 0x04),
    (23, 0x0F, 0x1F),
];

#[test]
fn locality_rules_for_pcrs_16_to_23() {
    let mut sim = started();
    for (pcr, reset, extend) in TABLE {
        for locality in 0..=4u8 {
            let bit = 1 << locality;
            let response = exec_at(&mut sim, locality, &pcr_extend_sha256(pcr, &[7; 32]));
            let expected = if extend & bit != 0 {
                ResponseCode::SUCCESS
            } else {
                ResponseCode::LOCALITY
            };
            assert_eq!(
                rc(&response),
                expected,
                "extend PCR {pcr} from locality {locality}"
            );
            // TPM2_PCR_Reset never works at locality 4, whatever the table
            // says: that locality resets PCRs through a dynamic launch.
            let resettable = reset & bit != 0 && locality != 4;
            let response = exec_at(&mut sim, locality, &pcr_reset(pcr));
            let expected = if resettable {
                ResponseCode::SUCCESS
            } else {
                ResponseCode::LOCALITY
            };
            assert_eq!(
                rc(&response),
                expected,
                "reset PCR {pcr} from locality {locality}"
            );
            if resettable {
                assert_eq!(
                    read(&mut sim, TPM_ALG_SHA256, pcr as u8),
                    [0; 32],
                    "reset sets zero"
                );
            }
        }
    }
    // PCRs 0–15 are never reset but are extended from any locality.
    for locality in 0..=4u8 {
        assert_eq!(
            rc(&exec_at(&mut sim, locality, &pcr_reset(7))),
            ResponseCode::LOCALITY
        );
        assert_eq!(
            rc(&exec_at(
                &mut sim,
                locality,
                &pcr_extend_sha256(7, &[1; 32])
            )),
            ResponseCode::SUCCESS
        );
    }
    // The locality rules are also reported through TPM_CAP_PCR_PROPERTIES:
    // TPM_PT_PCR_EXTEND_L0 lists 0–16 and 23, not 17–22.
    let response = exec(&mut sim, &client::get_capability(7, 1, 1));
    assert_eq!(
        &response[10..],
        &[1, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 1, 3, 0xFF, 0xFF, 0x81]
    );
}

#[test]
fn drtm_pcrs_start_as_ones_and_a_dynamic_launch_resets_them() {
    let mut sim = started();
    assert_eq!(read(&mut sim, TPM_ALG_SHA256, 17), [0xFF; 32]);
    assert_eq!(read(&mut sim, TPM_ALG_SHA384, 22), [0xFF; 48]);
    assert!(!sim.established());
    sim.dynamic_launch(b"launch code").unwrap();
    assert!(sim.established());
    let measurement = Sha256::digest(b"launch code");
    let expected = Sha256::digest([[0u8; 32].as_slice(), &measurement].concat());
    assert_eq!(read(&mut sim, TPM_ALG_SHA256, 17), expected.to_vec());
    assert_eq!(read(&mut sim, TPM_ALG_SHA256, 18), [0; 32]);
    assert_eq!(
        sim.reset_established(0),
        Err(vtpm_sim::SimError::Locality(0))
    );
    sim.reset_established(3).unwrap();
    assert!(!sim.established());
}

#[test]
fn startup_from_locality_3_leaves_3_in_pcr0() {
    let mut sim = sim_with_seed(1);
    exec_at(&mut sim, 3, &startup(TPM_SU_CLEAR));
    let mut expected = [0u8; 32];
    expected[31] = 3;
    assert_eq!(read(&mut sim, TPM_ALG_SHA256, 0), expected);
}

#[test]
fn shutdown_state_and_resume_keep_pcrs_0_to_15_only() {
    let mut sim = started();
    exec(&mut sim, &pcr_extend_sha256(4, &[4; 32]));
    exec(&mut sim, &pcr_extend_sha256(16, &[6; 32]));
    let pcr4 = read(&mut sim, TPM_ALG_SHA256, 4);
    exec(&mut sim, &shutdown(TPM_SU_STATE));
    sim.reset();
    assert_eq!(
        rc(&exec(&mut sim, &startup(TPM_SU_STATE))),
        ResponseCode::SUCCESS
    );
    assert_eq!(read(&mut sim, TPM_ALG_SHA256, 4), pcr4);
    assert_eq!(read(&mut sim, TPM_ALG_SHA256, 16), [0; 32]);
    // The record is consumed: another Resume has nothing to resume.
    sim.reset();
    assert_eq!(
        rc(&exec(&mut sim, &startup(TPM_SU_STATE))),
        ResponseCode::VALUE.with_parameter(1)
    );
    assert_eq!(
        rc(&exec(&mut sim, &startup(TPM_SU_CLEAR))),
        ResponseCode::SUCCESS
    );
    assert_eq!(read(&mut sim, TPM_ALG_SHA256, 4), [0; 32]);
}

#[test]
fn extend_errors() {
    let mut sim = started();
    // TPM_RH_NULL is accepted and changes nothing.
    assert_eq!(
        rc(&exec(&mut sim, &pcr_extend_sha256(TPM_RH_NULL, &[1; 32]))),
        ResponseCode::SUCCESS
    );
    // PCR 24 does not exist.
    assert_eq!(
        rc(&exec(&mut sim, &pcr_extend_sha256(24, &[1; 32]))),
        ResponseCode::VALUE.with_handle(1)
    );
    // An unknown hash algorithm.
    let command = CommandBuilder::with_sessions(cc::PCR_EXTEND)
        .u32(1)
        .password_session(&[])
        .u32(1)
        .u16(0x0099)
        .bytes(&[0; 32])
        .finish();
    assert_eq!(
        rc(&exec(&mut sim, &command)),
        ResponseCode::HASH.with_parameter(1)
    );
    // A digest cut short.
    let command = CommandBuilder::with_sessions(cc::PCR_EXTEND)
        .u32(1)
        .password_session(&[])
        .u32(1)
        .u16(TPM_ALG_SHA256)
        .bytes(&[0; 31])
        .finish();
    assert_eq!(
        rc(&exec(&mut sim, &command)),
        ResponseCode::INSUFFICIENT.with_parameter(1)
    );
    // PCRs have an empty authValue.
    let command = CommandBuilder::with_sessions(cc::PCR_EXTEND)
        .u32(1)
        .password_session(b"x")
        .u32(0)
        .finish();
    assert_eq!(rc(&exec(&mut sim, &command)).0, 0x9A2);
}
