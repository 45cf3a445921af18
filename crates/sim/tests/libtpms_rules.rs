//! Regression tests for the differences the differential suite against
//! libtpms 0.9.2 (crates/backend/tests/differential.rs) found: each test
//! pins the answer libtpms gives. Commands are built byte by byte.

mod common;

use common::{exec, exec_at, rc, sim_with_seed, started};
use vtpm_sim::Sim;
use vtpm_wire::{cc, CommandBuilder, ResponseCode};

const SHA256: u16 = 0x000B;
const OWNER: u32 = 0x4000_0001;

fn startup(su: u16) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::STARTUP).u16(su).finish()
}

fn shutdown(su: u16) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::SHUTDOWN).u16(su).finish()
}

fn get_capability(capability: u32, property: u32, count: u32) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::GET_CAPABILITY)
        .u32(capability)
        .u32(property)
        .u32(count)
        .finish()
}

fn pcr_extend(pcr: u32) -> Vec<u8> {
    CommandBuilder::with_sessions(cc::PCR_EXTEND)
        .u32(pcr)
        .password_session(&[])
        .u32(1)
        .u16(SHA256)
        .bytes(&[0xA5; 32])
        .finish()
}

fn pcr_reset(pcr: u32) -> Vec<u8> {
    CommandBuilder::with_sessions(cc::PCR_RESET)
        .u32(pcr)
        .password_session(&[])
        .finish()
}

/// pcrUpdateCounter from a PCR_Read of SHA-256 PCR 0.
fn update_counter(sim: &mut Sim) -> u32 {
    let command = CommandBuilder::no_sessions(cc::PCR_READ)
        .u32(1)
        .u16(SHA256)
        .u8(3)
        .bytes(&[1, 0, 0])
        .finish();
    let response = exec(sim, &command);
    assert_eq!(rc(&response), ResponseCode::SUCCESS);
    u32::from_be_bytes(response[10..14].try_into().unwrap())
}

/// The capability data after moreData and the capability.
fn capability_data(response: &[u8]) -> (bool, Vec<u8>) {
    assert_eq!(rc(response), ResponseCode::SUCCESS);
    (response[10] != 0, response[15..].to_vec())
}

#[test]
fn startup_is_refused_from_localities_1_2_and_4() {
    for locality in 0..=4u8 {
        let mut sim = sim_with_seed(1);
        let expected = if matches!(locality, 0 | 3) {
            ResponseCode::SUCCESS
        } else {
            ResponseCode::LOCALITY
        };
        let answer = rc(&exec_at(&mut sim, locality, &startup(0)));
        assert_eq!(answer, expected, "Startup(CLEAR) at locality {locality}");
    }
}

#[test]
fn startup_reads_its_parameter_before_checking_the_locality() {
    let mut sim = sim_with_seed(1);
    assert_eq!(
        rc(&exec_at(&mut sim, 4, &startup(5))),
        ResponseCode::VALUE.with_parameter(1)
    );
    assert_eq!(
        rc(&exec_at(&mut sim, 4, &startup(1))),
        ResponseCode::LOCALITY
    );
    // A bad TPM_SU is found before the bytes left over.
    let padded = CommandBuilder::no_sessions(cc::SHUTDOWN)
        .u16(2)
        .u8(0)
        .finish();
    let mut sim = started();
    assert_eq!(
        rc(&exec(&mut sim, &padded)),
        ResponseCode::VALUE.with_parameter(1)
    );
}

#[test]
fn a_resume_must_come_from_the_locality_class_of_the_startup_it_resumes() {
    let mut sim = sim_with_seed(1);
    exec_at(&mut sim, 3, &startup(0));
    exec(&mut sim, &shutdown(1));
    sim.reset();
    assert_eq!(
        rc(&exec_at(&mut sim, 0, &startup(1))),
        ResponseCode::LOCALITY
    );
    // The refused Resume leaves the saved state: Startup(CLEAR) is now a
    // Restart, which keeps pcrUpdateCounter (20) and adds 20.
    assert_eq!(
        rc(&exec_at(&mut sim, 0, &startup(0))),
        ResponseCode::SUCCESS
    );
    assert_eq!(update_counter(&mut sim), 40);
    let mut sim2 = sim_with_seed(1);
    exec_at(&mut sim2, 3, &startup(0));
    exec(&mut sim2, &shutdown(1));
    sim2.reset();
    assert_eq!(
        rc(&exec_at(&mut sim2, 3, &startup(1))),
        ResponseCode::SUCCESS
    );

    let mut sim3 = started();
    exec(&mut sim3, &shutdown(1));
    sim3.reset();
    assert_eq!(
        rc(&exec_at(&mut sim3, 3, &startup(1))),
        ResponseCode::LOCALITY
    );
    assert_eq!(
        rc(&exec_at(&mut sim3, 0, &startup(1))),
        ResponseCode::SUCCESS
    );
}

#[test]
fn pcr_update_counter_counts_the_pcrs_each_startup_initialises() {
    let mut sim = started();
    // A TPM Reset initialises all 24 PCRs; 16 and 21-23 are not counted.
    assert_eq!(update_counter(&mut sim), 20);
    exec(&mut sim, &pcr_extend(0));
    assert_eq!(update_counter(&mut sim), 21);
    // A Resume re-initialises PCRs 16-23, of which 17-20 count.
    exec(&mut sim, &shutdown(1));
    sim.reset();
    exec(&mut sim, &startup(1));
    assert_eq!(update_counter(&mut sim), 25);
    // A Restart keeps the counter and re-initialises all 24.
    exec(&mut sim, &shutdown(1));
    sim.reset();
    exec(&mut sim, &startup(0));
    assert_eq!(update_counter(&mut sim), 45);
    // Without Shutdown(STATE) it is a Reset again.
    sim.reset();
    exec(&mut sim, &startup(0));
    assert_eq!(update_counter(&mut sim), 20);
}

#[test]
fn extending_a_saved_pcr_after_shutdown_state_makes_the_next_startup_a_reset() {
    let mut sim = started();
    exec(&mut sim, &shutdown(1));
    exec(&mut sim, &pcr_extend(16));
    sim.reset();
    // PCR 16 is not saved: the record stands.
    assert_eq!(rc(&exec(&mut sim, &startup(1))), ResponseCode::SUCCESS);
    exec(&mut sim, &shutdown(1));
    exec(&mut sim, &pcr_extend(0));
    sim.reset();
    assert_eq!(
        rc(&exec(&mut sim, &startup(1))),
        ResponseCode::VALUE.with_parameter(1)
    );
    assert_eq!(rc(&exec(&mut sim, &startup(0))), ResponseCode::SUCCESS);
    assert_eq!(update_counter(&mut sim), 20, "a Reset, not a Restart");
}

#[test]
fn pcr_update_counter_counts_each_digest_extended() {
    let mut sim = started();
    let two = CommandBuilder::with_sessions(cc::PCR_EXTEND)
        .u32(0)
        .password_session(&[])
        .u32(2)
        .u16(SHA256)
        .bytes(&[1; 32])
        .u16(0x000C)
        .bytes(&[1; 48])
        .finish();
    assert_eq!(rc(&exec(&mut sim, &two)), ResponseCode::SUCCESS);
    assert_eq!(update_counter(&mut sim), 22);
    let none = CommandBuilder::with_sessions(cc::PCR_EXTEND)
        .u32(0)
        .password_session(&[])
        .u32(0)
        .finish();
    assert_eq!(rc(&exec(&mut sim, &none)), ResponseCode::SUCCESS);
    assert_eq!(update_counter(&mut sim), 22);
}

#[test]
fn pcrs_16_and_21_to_23_do_not_change_the_update_counter() {
    let mut sim = started();
    for (pcr, locality, counted) in [
        (15u32, 0u8, true),
        (16, 0, false),
        (17, 2, true),
        (20, 1, true),
        (21, 2, false),
        (22, 2, false),
        (23, 0, false),
    ] {
        let before = update_counter(&mut sim);
        assert_eq!(
            rc(&exec_at(&mut sim, locality, &pcr_extend(pcr))),
            ResponseCode::SUCCESS
        );
        let after = update_counter(&mut sim);
        assert_eq!(after - before, u32::from(counted), "PCR {pcr}");
    }
}

#[test]
fn pcr_reset_is_refused_at_locality_4_even_for_the_drtm_pcrs() {
    let mut sim = started();
    for pcr in 16..=23 {
        assert_eq!(
            rc(&exec_at(&mut sim, 4, &pcr_reset(pcr))),
            ResponseCode::LOCALITY,
            "PCR {pcr}"
        );
    }
    assert_eq!(
        rc(&exec_at(&mut sim, 2, &pcr_reset(20))),
        ResponseCode::SUCCESS
    );
}

#[test]
fn the_tag_is_checked_before_the_size_and_an_unknown_value_is_tpm_rc_value() {
    let mut sim = sim_with_seed(1);
    let mut command = CommandBuilder::no_sessions(cc::GET_RANDOM).u16(8).finish();
    command[0..2].copy_from_slice(&0x8003u16.to_be_bytes());
    command[5] = 40; // the size lies too
    assert_eq!(rc(&exec(&mut sim, &command)), ResponseCode::VALUE);
    for (tag, expected) in [
        (0x8022u16, ResponseCode::BAD_TAG),
        (0x8023, ResponseCode::BAD_TAG),
        (0x8027, ResponseCode::BAD_TAG),
        (0x801B, ResponseCode::VALUE),
        (0x8028, ResponseCode::VALUE),
    ] {
        command[0..2].copy_from_slice(&tag.to_be_bytes());
        assert_eq!(rc(&exec(&mut sim, &command)), expected, "tag {tag:#x}");
    }
}

#[test]
fn authorization_area_size_errors_carry_no_number() {
    let mut sim = started();
    // No authorizationSize at all.
    let command = CommandBuilder::with_sessions(cc::GET_RANDOM)
        .u16(8)
        .finish();
    assert_eq!(rc(&exec(&mut sim, &command)), ResponseCode::INSUFFICIENT);
    // One too small for a session.
    let command = CommandBuilder::with_sessions(cc::PCR_EXTEND)
        .u32(16)
        .u32(8)
        .bytes(&[0x40, 0, 0, 9, 0, 0, 0, 0, 0])
        .finish();
    assert_eq!(rc(&exec(&mut sim, &command)), ResponseCode::SIZE);
}

#[test]
fn handles_are_checked_before_the_sessions() {
    let mut sim = started();
    // PCR 30 and a session handle that is no session: the handle wins.
    let command = CommandBuilder::with_sessions(cc::PCR_EXTEND)
        .u32(30)
        .u32(9)
        .bytes(&[0x41, 0, 0, 9, 0, 0, 0, 0, 0])
        .u32(0)
        .finish();
    assert_eq!(
        rc(&exec(&mut sim, &command)),
        ResponseCode::VALUE.with_handle(1)
    );
}

#[test]
fn a_password_session_with_nothing_to_authorize_is_a_handle_error() {
    let mut sim = started();
    let command = CommandBuilder::with_sessions(cc::GET_RANDOM)
        .password_session(&[])
        .u16(8)
        .finish();
    assert_eq!(rc(&exec(&mut sim, &command)).0, 0x98B);
}

#[test]
fn tpm_properties_come_from_one_group_per_request() {
    let mut sim = started();
    let (more, data) = capability_data(&exec(&mut sim, &get_capability(6, 0x100, 1000)));
    assert!(!more);
    let last = u32::from_be_bytes(data[data.len() - 8..data.len() - 4].try_into().unwrap());
    assert!(last < 0x200, "PT_FIXED only, ended at {last:#x}");
    let (_, data) = capability_data(&exec(&mut sim, &get_capability(6, 0x200, 1)));
    assert_eq!(&data[4..8], &0x200u32.to_be_bytes());
    let (more, data) = capability_data(&exec(&mut sim, &get_capability(6, 0x132, 8)));
    assert!(!more);
    assert_eq!(data, [0, 0, 0, 0]);
}

#[test]
fn algorithm_list_matches_libtpms_for_null_and_kdf() {
    let mut sim = started();
    let (_, data) = capability_data(&exec(&mut sim, &get_capability(0, 0x10, 1)));
    // TPM_ALG_NULL is not listed; KDF1_SP800_108 is a hash method.
    assert_eq!(data, [0, 0, 0, 1, 0, 0x22, 0, 0, 0x04, 0x04]);
}

#[test]
fn capability_argument_errors_match_libtpms() {
    let mut sim = started();
    // An unknown handle type.
    assert_eq!(
        rc(&exec(&mut sim, &get_capability(1, 0x0500_0000, 1))),
        ResponseCode::HANDLE.with_parameter(2)
    );
    // TPM_CAP_PCRS takes property 0 only.
    assert_eq!(
        rc(&exec(&mut sim, &get_capability(5, 1, 1))),
        ResponseCode::VALUE.with_parameter(2)
    );
    // AUTH_POLICIES needs a permanent handle, ACT an ACT handle.
    assert_eq!(
        rc(&exec(&mut sim, &get_capability(9, 0, 1))),
        ResponseCode::VALUE.with_parameter(2)
    );
    assert_eq!(
        rc(&exec(&mut sim, &get_capability(10, 0, 1))),
        ResponseCode::VALUE.with_parameter(2)
    );
    // An unknown capability is refused before a missing property.
    let command = CommandBuilder::no_sessions(cc::GET_CAPABILITY)
        .u32(16)
        .finish();
    assert_eq!(
        rc(&exec(&mut sim, &command)),
        ResponseCode::VALUE.with_parameter(1)
    );
}

#[test]
fn every_hierarchy_reports_an_empty_authorization_policy() {
    let mut sim = started();
    let (more, data) = capability_data(&exec(&mut sim, &get_capability(9, OWNER, 2)));
    assert!(more);
    assert_eq!(
        data,
        [0, 0, 0, 2, 0x40, 0, 0, 1, 0, 0x10, 0x40, 0, 0, 0x0A, 0, 0x10]
    );
}

#[test]
fn pcr_properties_report_the_reference_groups() {
    let mut sim = started();
    let (_, data) = capability_data(&exec(&mut sim, &get_capability(7, 0x11, 4)));
    assert_eq!(
        data,
        [
            0, 0, 0, 4, // count
            0, 0, 0, 0x11, 3, 0, 0, 0xE1, // NO_INCREMENT: 16, 21-23
            0, 0, 0, 0x12, 3, 0, 0, 0x7E, // DRTM_RESET: 17-22
            0, 0, 0, 0x13, 3, 0, 0, 0x70, // POLICY: 20-22
            0, 0, 0, 0x14, 3, 0, 0, 0x70, // AUTH: 20-22
        ]
    );
}

#[test]
fn self_test_is_reported_as_writing_nv() {
    let mut sim = started();
    let (_, data) = capability_data(&exec(&mut sim, &get_capability(2, 0x143, 1)));
    assert_eq!(data[4..8], 0x0040_0143u32.to_be_bytes());
}

#[test]
fn context_handles_outside_their_ranges_are_value_errors() {
    let mut sim = started();
    let flush = |h: u32| {
        CommandBuilder::no_sessions(cc::FLUSH_CONTEXT)
            .u32(h)
            .finish()
    };
    for (handle, expected) in [
        (0x8000_0000u32, ResponseCode::HANDLE.with_parameter(1)),
        (0x8001_0000, ResponseCode::VALUE.with_parameter(1)),
        (0x0200_003F, ResponseCode::HANDLE.with_parameter(1)),
        (0x0200_0040, ResponseCode::VALUE.with_parameter(1)),
        (0x4000_0001, ResponseCode::VALUE.with_parameter(1)),
    ] {
        assert_eq!(rc(&exec(&mut sim, &flush(handle))), expected, "{handle:#x}");
    }
    let padded = CommandBuilder::no_sessions(cc::FLUSH_CONTEXT)
        .u32(0x8001_0000)
        .u8(0)
        .finish();
    assert_eq!(
        rc(&exec(&mut sim, &padded)),
        ResponseCode::VALUE.with_parameter(1)
    );
    // An object handle beyond the slots is out of range too.
    let read_public = CommandBuilder::no_sessions(cc::READ_PUBLIC)
        .u32(0x8000_0008)
        .finish();
    assert_eq!(
        rc(&exec(&mut sim, &read_public)),
        ResponseCode::VALUE.with_handle(1)
    );
}

#[test]
fn the_startup_locality_class_survives_save_and_restore() {
    // Saved after Shutdown(STATE): the record's class comes along.
    let mut sim = sim_with_seed(1);
    exec_at(&mut sim, 3, &startup(0));
    exec(&mut sim, &shutdown(1));
    let after_shutdown = sim.save_state();
    // Saved while running: the live class comes along, and a later
    // Shutdown(STATE) records it.
    let mut sim = sim_with_seed(1);
    exec_at(&mut sim, 3, &startup(0));
    let running = sim.save_state();
    let mut restored = sim_with_seed(9);
    restored.restore_state(&running).unwrap();
    exec(&mut restored, &shutdown(1));
    let shut_after_restore = restored.save_state();

    for blob in [after_shutdown, shut_after_restore] {
        let mut sim = sim_with_seed(9);
        sim.restore_state(&blob).unwrap();
        sim.reset();
        assert_eq!(
            rc(&exec_at(&mut sim, 0, &startup(1))),
            ResponseCode::LOCALITY,
            "a start-up from locality 3 resumes only from locality 3"
        );
        assert_eq!(
            rc(&exec_at(&mut sim, 3, &startup(1))),
            ResponseCode::SUCCESS
        );
    }
}
