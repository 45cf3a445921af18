//! The mssim command and platform ports, byte for byte, as tpm2-tss's
//! mssim TCTI and the reference simulator exchange them.

mod common;

use std::io::Write;

use common::*;
use vtpm_client::{get_random, pcr_extend_sha256, startup};
use vtpm_server::mssim::signal;
use vtpm_wire::consts::TPM_SU_CLEAR;

#[test]
fn power_on_and_nv_on_are_acknowledged_and_commands_come_back_framed() {
    let server = start(Options {
        powered: false,
        ..Options::default()
    });
    let (command, platform) = server.mssim.clone().unwrap();
    let mut plat = tcp(&platform);
    let mut cmd = tcp(&command);
    assert_eq!(
        rc(&mssim_send(&mut cmd, 0, &get_random(8))),
        0x101,
        "off: failure"
    );
    assert_eq!(signal(&mut plat, signal::POWER_ON), 0);
    assert_eq!(signal(&mut plat, signal::NV_ON), 0);
    assert_eq!(rc(&mssim_send(&mut cmd, 0, &startup(TPM_SU_CLEAR))), 0);
    assert_eq!(
        signal(&mut plat, signal::POWER_ON),
        0,
        "a second power-on changes nothing"
    );
    let rsp = mssim_send(&mut cmd, 0, &get_random(8));
    assert_eq!((rc(&rsp), rsp.len()), (0, 20));
    assert_eq!(
        rc(&mssim_send(&mut cmd, 5, &get_random(8))),
        0x907,
        "locality 5: TPM_RC_LOCALITY"
    );
    assert_eq!(signal(&mut plat, signal::RESET), 0);
    assert_eq!(
        rc(&mssim_send(&mut cmd, 0, &get_random(8))),
        0x100,
        "reset: Startup again"
    );
    assert_eq!(signal(&mut plat, signal::POWER_OFF), 0);
    assert_eq!(rc(&mssim_send(&mut cmd, 0, &get_random(8))), 0x101);
}

#[test]
fn session_end_closes_the_connection_without_a_reply_and_the_next_client_is_served() {
    let server = start(Options::default());
    let (command, platform) = server.mssim.clone().unwrap();
    let mut cmd = tcp(&command);
    cmd.write_all(&signal::SESSION_END.to_be_bytes()).unwrap();
    assert!(closed(&mut cmd));
    let mut plat = tcp(&platform);
    plat.write_all(&signal::SESSION_END.to_be_bytes()).unwrap();
    assert!(closed(&mut plat));
    let mut cmd = tcp(&command);
    assert_eq!(rc(&mssim_send(&mut cmd, 0, &get_random(8))), 0);
}

#[test]
fn an_oversize_command_answers_command_size_and_the_stream_stays_in_step() {
    let server = start(Options::default());
    let (command, _) = server.mssim.clone().unwrap();
    let mut cmd = tcp(&command);
    let mut big = vec![0u8; 9000];
    big[..10].copy_from_slice(&[0x80, 0x01, 0, 0, 0x23, 0x28, 0, 0, 1, 0x7b]);
    assert_eq!(rc(&mssim_send(&mut cmd, 0, &big)), 0x142);
    assert_eq!(rc(&mssim_send(&mut cmd, 0, &get_random(8))), 0);
}

#[test]
fn get_command_response_sizes_reports_the_largest_since_the_last_query() {
    let server = start(Options::default());
    let (command, platform) = server.mssim.clone().unwrap();
    let mut cmd = tcp(&command);
    let mut plat = tcp(&platform);
    signal(&mut plat, signal::GET_COMMAND_RESPONSE_SIZES);
    let mut rest = [0u8; 20];
    std::io::Read::read_exact(&mut plat, &mut rest).unwrap();
    mssim_send(&mut cmd, 0, &pcr_extend_sha256(0, &[1; 32]));
    mssim_send(&mut cmd, 0, &get_random(32));
    assert_eq!(signal(&mut plat, signal::GET_COMMAND_RESPONSE_SIZES), 16);
    std::io::Read::read_exact(&mut plat, &mut rest).unwrap();
    let le = |i: usize| u32::from_le_bytes(rest[i..i + 4].try_into().unwrap());
    let extend_len = pcr_extend_sha256(0, &[1; 32]).len() as u32;
    assert_eq!(
        (le(0), le(4)),
        (extend_len, 0x182),
        "largest command: PCR_Extend"
    );
    assert_eq!(
        (le(8), le(12)),
        (10 + 2 + 32, 0x17b),
        "largest response: GetRandom"
    );
    assert_eq!(&rest[16..], &[0; 4]);
}

#[test]
fn test_failure_mode_fails_commands_until_the_next_power_cycle() {
    let server = start(Options::default());
    let (command, platform) = server.mssim.clone().unwrap();
    let mut cmd = tcp(&command);
    let mut plat = tcp(&platform);
    assert_eq!(signal(&mut plat, signal::TEST_FAILURE_MODE), 0);
    assert_eq!(rc(&mssim_send(&mut cmd, 0, &get_random(8))), 0x101);
    signal(&mut plat, signal::POWER_OFF);
    signal(&mut plat, signal::POWER_ON);
    assert_eq!(rc(&mssim_send(&mut cmd, 0, &get_random(8))), 0x100);
}

#[test]
fn a_client_that_leaves_mid_command_leaves_the_server_ready() {
    let server = start(Options::default());
    let (command, _) = server.mssim.clone().unwrap();
    let mut cmd = tcp(&command);
    let whole = {
        let c = get_random(8);
        let mut r = 8u32.to_be_bytes().to_vec();
        r.push(0);
        r.extend_from_slice(&(c.len() as u32).to_be_bytes());
        r.extend_from_slice(&c);
        r
    };
    cmd.write_all(&whole[..whole.len() - 3]).unwrap();
    drop(cmd);
    let mut cmd = tcp(&command);
    assert_eq!(rc(&mssim_send(&mut cmd, 0, &get_random(8))), 0);
}

#[test]
fn garbage_and_unknown_requests_close_the_connection_and_the_server_serves_on() {
    let server = start(Options::default());
    let (command, platform) = server.mssim.clone().unwrap();
    for junk in [
        &[0xde, 0xad, 0xbe, 0xef][..],
        &[0, 0, 0, 99],
        &[0, 0, 0, 8, 0, 0xff, 0xff],
    ] {
        for port in [&command, &platform] {
            let mut s = tcp(port);
            s.write_all(junk).unwrap();
            drop(s);
        }
    }
    let mut plat = tcp(&platform);
    plat.write_all(&99u32.to_be_bytes()).unwrap();
    assert!(closed(&mut plat));
    let mut cmd = tcp(&command);
    assert_eq!(rc(&mssim_send(&mut cmd, 0, &get_random(8))), 0);
}

#[test]
fn tpm_stop_stops_the_server() {
    let server = start(Options::default());
    let (command, _) = server.mssim.clone().unwrap();
    let mut cmd = tcp(&command);
    cmd.write_all(&signal::STOP.to_be_bytes()).unwrap();
    assert_eq!(server.join().unwrap(), vtpm_server::StopReason::MssimStop);
}

#[test]
fn a_bare_tpm_command_on_the_command_port_gets_a_bare_response() {
    let server = start(Options::default());
    let (command, _) = server.mssim.clone().unwrap();
    let mut cmd = tcp(&command);
    let rsp = transact(&mut cmd, &get_random(8));
    assert_eq!((rc(&rsp), rsp.len()), (0, 20));
}

#[test]
fn cancel_on_is_a_line_that_cancels_the_next_command_until_cancel_off_lowers_it() {
    let server = start(Options::default());
    let (command, platform) = server.mssim.clone().unwrap();
    let mut plat = tcp(&platform);
    let mut cmd = tcp(&command);
    // Raised while idle, as the reference simulator's: the next command
    // sees it (the sim answers TPM_RC_CANCELED before running it).
    assert_eq!(signal(&mut plat, signal::CANCEL_ON), 0);
    assert_eq!(rc(&mssim_send(&mut cmd, 0, &get_random(8))), 0x909);
    // Raised and lowered before a command: nothing is cancelled.
    assert_eq!(signal(&mut plat, signal::CANCEL_ON), 0);
    assert_eq!(signal(&mut plat, signal::CANCEL_OFF), 0);
    assert_eq!(rc(&mssim_send(&mut cmd, 0, &get_random(8))), 0);
}
