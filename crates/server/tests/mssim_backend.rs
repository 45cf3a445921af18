//! vtpm-backend's mssim client against this crate's mssim server (and
//! against a listener that never answers).

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::*;
use vtpm_backend::mssim::{MssimBackend, MssimConfig, MssimTimeouts};
use vtpm_backend::{Backend, BackendError};
use vtpm_client::{get_random, startup};
use vtpm_server::Endpoint;
use vtpm_wire::consts::TPM_SU_CLEAR;

fn config(server: &Running) -> MssimConfig {
    let (Endpoint::Tcp(command), Endpoint::Tcp(platform)) = server.mssim.clone().unwrap() else {
        panic!("tcp")
    };
    let mut config = MssimConfig::new(command);
    config.platform = Some(platform);
    config
}

#[test]
fn the_backend_reads_the_buffer_size_and_hands_over_a_tpm_waiting_for_startup() {
    let server = start(Options::default());
    let mut backend = MssimBackend::connect(&config(&server)).unwrap();
    assert_eq!(backend.buffer_size(), 8192);
    let mut rsp = Vec::new();
    backend.execute(0, &get_random(8), &mut rsp).unwrap();
    assert_eq!(rc(&rsp), 0x100);
    backend
        .execute(0, &startup(TPM_SU_CLEAR), &mut rsp)
        .unwrap();
    assert_eq!(rc(&rsp), 0);
    backend.execute(3, &get_random(8), &mut rsp).unwrap();
    assert_eq!((rc(&rsp), rsp.len()), (0, 20));
    backend.execute(5, &get_random(8), &mut rsp).unwrap();
    assert_eq!(rc(&rsp), 0x907, "the locality travels with each command");
    backend.reset().unwrap();
    backend.execute(0, &get_random(8), &mut rsp).unwrap();
    assert_eq!(rc(&rsp), 0x100, "a reset power-cycles");
}

#[test]
fn a_command_above_the_buffer_is_refused_before_it_is_sent() {
    let server = start(Options::default());
    let mut backend = MssimBackend::connect(&config(&server)).unwrap();
    let err = backend
        .execute(0, &vec![0u8; 8193], &mut Vec::new())
        .unwrap_err();
    assert!(matches!(
        err,
        BackendError::CommandTooLarge {
            size: 8193,
            max: 8192
        }
    ));
    let mut rsp = Vec::new();
    backend
        .execute(0, &startup(TPM_SU_CLEAR), &mut rsp)
        .unwrap();
    assert_eq!(rc(&rsp), 0);
}

#[test]
fn cancel_goes_through_the_platform_port_and_commands_go_on() {
    let server = start(Options::default());
    let mut backend = MssimBackend::connect(&config(&server)).unwrap();
    let cancel = backend.canceller().expect("cancel via CANCEL_ON");
    cancel.cancel().unwrap();
    let mut rsp = Vec::new();
    backend
        .execute(0, &startup(TPM_SU_CLEAR), &mut rsp)
        .unwrap();
    assert_eq!(rc(&rsp), 0);
    backend.execute(0, &get_random(8), &mut rsp).unwrap();
    assert_eq!(rc(&rsp), 0);
}

#[test]
fn a_simulator_that_never_answers_is_a_typed_timeout() {
    let command = TcpListener::bind("127.0.0.1:0").unwrap();
    let platform = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = MssimConfig::new(command.local_addr().unwrap().to_string());
    config.platform = Some(platform.local_addr().unwrap().to_string());
    config.timeouts = MssimTimeouts {
        signal: Duration::from_millis(200),
        ..MssimTimeouts::default()
    };
    let err = MssimBackend::connect(&config).unwrap_err();
    assert!(matches!(err, BackendError::Timeout(_)), "{err}");
}

#[test]
fn nothing_listening_is_an_io_error_naming_the_address() {
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap().to_string();
    drop(free);
    let err = MssimBackend::connect(&MssimConfig::new(addr.clone())).unwrap_err();
    assert!(err.to_string().contains(&addr), "{err}");
}
