//! What the simulator answers to bad input: the codes a real TPM gives.

mod common;

use common::{exec, exec_at, rc, sim_with_seed, started};
use vtpm_client as client;
use vtpm_client::{get_capability, get_random, padded_get_random, startup};
use vtpm_sim::{ConfigError, Sim, SimConfig};
use vtpm_wire::consts::{TPM_RH_OWNER, TPM_SU_CLEAR};
use vtpm_wire::structures::PublicArea;
use vtpm_wire::{cc, CommandBuilder, ResponseCode};

#[test]
fn startup_is_required_first_and_only_once() {
    let mut sim = sim_with_seed(3);
    assert_eq!(
        rc(&exec(&mut sim, &get_random(8))),
        ResponseCode::INITIALIZE
    );
    assert_eq!(
        exec(&mut sim, &startup(TPM_SU_CLEAR)),
        [0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0, 0]
    );
    assert_eq!(
        rc(&exec(&mut sim, &startup(TPM_SU_CLEAR))),
        ResponseCode::INITIALIZE
    );
    assert_eq!(rc(&exec(&mut sim, &get_random(8))), ResponseCode::SUCCESS);
    // A power cycle needs Startup again.
    sim.reset();
    assert_eq!(
        rc(&exec(&mut sim, &get_random(8))),
        ResponseCode::INITIALIZE
    );
    // A bad startup type is TPM_RC_VALUE for parameter 1 and starts nothing.
    assert_eq!(
        rc(&exec(&mut sim, &startup(7))),
        ResponseCode::VALUE.with_parameter(1)
    );
    assert_eq!(
        rc(&exec(&mut sim, &get_random(8))),
        ResponseCode::INITIALIZE
    );
}

#[test]
fn padded_get_random_answers_size_not_command_size() {
    let mut sim = started();
    let response = exec(&mut sim, &padded_get_random(8192));
    assert_eq!(response, [0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0x00, 0x95]);
    assert_eq!(rc(&exec(&mut sim, &padded_get_random(4097))).0, 0x095);
    // One byte more than the buffer is TPM_RC_COMMAND_SIZE.
    assert_eq!(
        rc(&exec(&mut sim, &padded_get_random(8193))),
        ResponseCode::COMMAND_SIZE
    );
}

#[test]
fn size_and_tag_errors() {
    let mut sim = started();
    let good = get_random(8);
    // Header size disagrees with the bytes.
    let mut lying = good.clone();
    lying[5] += 1;
    assert_eq!(rc(&exec(&mut sim, &lying)), ResponseCode::COMMAND_SIZE);
    assert_eq!(
        rc(&exec(&mut sim, &good[..good.len() - 1])),
        ResponseCode::COMMAND_SIZE
    );
    // Shorter than a header.
    assert_eq!(rc(&exec(&mut sim, &good[..9])), ResponseCode::COMMAND_SIZE);
    assert_eq!(rc(&exec(&mut sim, &[])), ResponseCode::COMMAND_SIZE);
    // Not a TPM_ST at all (a TPM 1.2 tag): TPM_RC_VALUE, as libtpms.
    let mut tagged = good.clone();
    tagged[0..2].copy_from_slice(&0x00C1u16.to_be_bytes());
    assert_eq!(rc(&exec(&mut sim, &tagged)), ResponseCode::VALUE);
    // A structure tag where a command tag belongs: TPM_RC_BAD_TAG.
    tagged[0..2].copy_from_slice(&0x8000u16.to_be_bytes());
    assert_eq!(rc(&exec(&mut sim, &tagged)), ResponseCode::BAD_TAG);
    // Parameters cut short.
    let short = CommandBuilder::no_sessions(cc::GET_CAPABILITY)
        .u32(6)
        .u32(0x100)
        .finish();
    assert_eq!(
        rc(&exec(&mut sim, &short)),
        ResponseCode::INSUFFICIENT.with_parameter(3)
    );
}

#[test]
fn unknown_commands_and_localities() {
    let mut sim = started();
    let unknown = CommandBuilder::no_sessions(0x0000_0199).finish();
    assert_eq!(rc(&exec(&mut sim, &unknown)), ResponseCode::COMMAND_CODE);
    let vendor = CommandBuilder::no_sessions(0x2000_0001).finish();
    assert_eq!(rc(&exec(&mut sim, &vendor)), ResponseCode::COMMAND_CODE);
    assert_eq!(
        rc(&exec_at(&mut sim, 5, &get_random(8))),
        ResponseCode::LOCALITY
    );
    assert_eq!(
        rc(&exec_at(&mut sim, 4, &get_random(8))),
        ResponseCode::SUCCESS
    );
}

#[test]
fn value_and_handle_errors() {
    let mut sim = started();
    assert_eq!(
        rc(&exec(&mut sim, &get_capability(0x55, 0, 1))),
        ResponseCode::VALUE.with_parameter(1)
    );
    // A transient handle with nothing loaded.
    assert_eq!(
        rc(&exec(&mut sim, &client::read_public(0x8000_0003))).0,
        0x910
    );
    // Not an object handle at all.
    assert_eq!(
        rc(&exec(&mut sim, &client::read_public(0x4000_0001))),
        ResponseCode::VALUE.with_handle(1)
    );
    // No persistent objects exist.
    assert_eq!(
        rc(&exec(&mut sim, &client::read_public(0x8100_0001))),
        ResponseCode::HANDLE.with_handle(1)
    );
    // CreatePrimary needs a hierarchy.
    let template = PublicArea::storage_parent();
    let response = exec(
        &mut sim,
        &client::create_primary(0x4000_0009, b"", &template, b""),
    );
    assert_eq!(rc(&response), ResponseCode::VALUE.with_handle(1));
    // SelfTest takes a TPMI_YES_NO.
    let command = CommandBuilder::no_sessions(cc::SELF_TEST).u8(2).finish();
    assert_eq!(
        rc(&exec(&mut sim, &command)),
        ResponseCode::VALUE.with_parameter(1)
    );
}

#[test]
fn authorization_area_errors() {
    let mut sim = started();
    let template = PublicArea::storage_parent();
    // An authorized command without sessions.
    let bare = CommandBuilder::no_sessions(cc::PCR_RESET).u32(16).finish();
    assert_eq!(rc(&exec(&mut sim, &bare)), ResponseCode::AUTH_MISSING);
    // An authorization size larger than what follows: TPM_RC_SIZE without
    // a number, as libtpms answers.
    let command = CommandBuilder::with_sessions(cc::PCR_RESET)
        .u32(16)
        .u32(100)
        .finish();
    assert_eq!(rc(&exec(&mut sim, &command)), ResponseCode::SIZE);
    // An HMAC session handle: no such session is loaded.
    let command = CommandBuilder::with_sessions(cc::PCR_RESET)
        .u32(16)
        .u32(9)
        .u32(0x0200_0000)
        .u16(0)
        .u8(1)
        .u16(0)
        .finish();
    assert_eq!(
        rc(&exec(&mut sim, &command)).0,
        0x918,
        "TPM_RC_REFERENCE_S0"
    );
    // Not a session handle at all.
    let command = CommandBuilder::with_sessions(cc::PCR_RESET)
        .u32(16)
        .u32(9)
        .u32(TPM_RH_OWNER)
        .u16(0)
        .u8(1)
        .u16(0)
        .finish();
    assert_eq!(
        rc(&exec(&mut sim, &command)).0,
        0x984,
        "TPM_RC_VALUE for session 1"
    );
    // A password session carries no nonce.
    let command = CommandBuilder::with_sessions(cc::PCR_RESET)
        .u32(16)
        .u32(11)
        .u32(0x4000_0009)
        .tpm2b(&[1, 2])
        .u8(1)
        .u16(0)
        .finish();
    assert_eq!(
        rc(&exec(&mut sim, &command)).0,
        0x98F,
        "TPM_RC_NONCE for session 1"
    );
    // A password session with no handle to authorize.
    let command = CommandBuilder::with_sessions(cc::GET_RANDOM)
        .password_session(b"")
        .u16(8)
        .finish();
    assert_eq!(
        rc(&exec(&mut sim, &command)).0,
        0x98B,
        "TPM_RC_HANDLE for session 1"
    );
    // The right command still works.
    let response = exec(
        &mut sim,
        &client::create_primary(TPM_RH_OWNER, b"", &template, b""),
    );
    assert_eq!(rc(&response), ResponseCode::SUCCESS);
}

#[test]
fn trailing_bytes_inside_structures_are_size_errors() {
    let mut sim = started();
    let mut public = PublicArea::storage_parent().to_bytes();
    public.push(0);
    let command = CommandBuilder::with_sessions(cc::CREATE_PRIMARY)
        .u32(TPM_RH_OWNER)
        .password_session(b"")
        .tpm2b(&[0, 0, 0, 0])
        .tpm2b(&public)
        .tpm2b(&[])
        .u32(0)
        .finish();
    assert_eq!(
        rc(&exec(&mut sim, &command)),
        ResponseCode::SIZE.with_parameter(2)
    );
    // Trailing bytes after the last parameter.
    let mut command = client::read_public(0x8000_0000);
    command.push(0);
    let n = command.len() as u32;
    command[2..6].copy_from_slice(&n.to_be_bytes());
    let response = exec(
        &mut sim,
        &client::create_primary(TPM_RH_OWNER, b"", &PublicArea::storage_parent(), b""),
    );
    assert_eq!(rc(&response), ResponseCode::SUCCESS);
    assert_eq!(rc(&exec(&mut sim, &command)), ResponseCode::SIZE);
}

#[test]
fn buffer_size_is_validated() {
    assert_eq!(
        Sim::new(SimConfig {
            buffer_size: 4095,
            ..SimConfig::default()
        })
        .unwrap_err(),
        ConfigError::BufferTooSmall {
            requested: 4095,
            minimum: 4096
        }
    );
    assert!(matches!(
        Sim::new(SimConfig {
            buffer_size: 1 << 20,
            ..SimConfig::default()
        }),
        Err(ConfigError::BufferTooLarge { .. })
    ));
    let sim = Sim::new(SimConfig {
        buffer_size: 4096,
        ..SimConfig::default()
    })
    .unwrap();
    assert_eq!(sim.buffer_size(), 4096);
    assert_eq!(
        ConfigError::BufferTooSmall {
            requested: 1,
            minimum: 4096
        }
        .to_string(),
        "buffer size 1 is below the minimum of 4096 bytes"
    );
}

/// TPM2_StirRandom, which SeaBIOS sends before boot (it marks a TPM that
/// refuses it as failed and measures nothing more): up to 128 bytes are
/// accepted and change what GetRandom answers; more is TPM_RC_SIZE.
#[test]
fn stir_random_takes_up_to_128_bytes_and_changes_the_generator() {
    let stir = |data: &[u8]| {
        CommandBuilder::new(vtpm_wire::consts::TPM_ST_NO_SESSIONS, cc::STIR_RANDOM)
            .tpm2b(data)
            .finish()
    };
    let mut stirred = started();
    let mut plain = started();
    assert_eq!(
        rc(&exec(&mut stirred, &stir(&[0x5A; 128]))),
        ResponseCode::SUCCESS
    );
    assert_ne!(
        exec(&mut stirred, &get_random(32)),
        exec(&mut plain, &get_random(32)),
        "the stirred generator answers differently from its twin"
    );
    assert_eq!(
        rc(&exec(&mut stirred, &stir(&[0; 129]))),
        ResponseCode(ResponseCode::SIZE.0 + 0x40 + 0x100)
    );
}
