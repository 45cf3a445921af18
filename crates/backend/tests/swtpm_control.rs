//! The control-channel client against a real swtpm: every command vtpm
//! uses, including the replies that report failure.

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use vtpm_backend::swtpm::ctrl::{blob, cap, init, result, ControlChannel};
use vtpm_backend::swtpm::{
    DataChannel, DataConnection, SwtpmConfig, SwtpmProcess, REQUIRED_CAPABILITIES,
};
use vtpm_backend::BackendError;
use vtpm_client as client;
use vtpm_wire::{consts, ResponseCode};

/// A swtpm process that has not been initialised, and its control channel.
fn raw_swtpm() -> (SwtpmProcess, ControlChannel) {
    let process = SwtpmProcess::spawn(&SwtpmConfig::default()).expect("swtpm starts");
    let ctrl = process.control().expect("control channel");
    (process, ctrl)
}

/// Hands a socketpair to swtpm and returns our end as a data connection.
fn hand_over_data(ctrl: &mut ControlChannel) -> DataConnection {
    let (ours, theirs) = UnixStream::pair().unwrap();
    ctrl.set_data_fd(theirs.as_fd()).expect("SET_DATAFD");
    drop(theirs);
    DataConnection::from_unix(ours).unwrap()
}

fn rc(response: &[u8]) -> ResponseCode {
    vtpm_wire::Header::parse(response)
        .expect("response header")
        .response_code()
}

fn assert_control_error(e: BackendError, command: &str, expected: u32) {
    match e {
        BackendError::Control { command: c, result } => {
            assert_eq!(c, command);
            assert_eq!(result, expected, "{command} result {result:#x}");
        }
        other => panic!("expected a {command} control error, got {other:?}"),
    }
}

#[test]
fn capabilities_hold_every_required_bit() {
    let (_process, mut ctrl) = raw_swtpm();
    let caps = ctrl.get_capability().unwrap();
    for bit in REQUIRED_CAPABILITIES {
        assert!(caps.contains(bit), "missing {:?}", cap::name(bit));
    }
    assert!(caps.contains(cap::SET_DATAFD));
    assert!(caps.contains(cap::GET_STATEBLOB | cap::SET_STATEBLOB));
    let names = caps.names();
    assert!(names.contains(&"INIT") && names.contains(&"SET_BUFFERSIZE"));
    // The reply has no result field: a second request still lines up.
    assert_eq!(ctrl.get_capability().unwrap(), caps);
}

#[test]
fn buffer_size_query_clamp_and_refusal_while_running() {
    let (_process, mut ctrl) = raw_swtpm();
    let sizes = ctrl.set_buffer_size(0).unwrap();
    assert!(sizes.in_use <= sizes.max, "{sizes:?}");
    assert!(sizes.min <= sizes.max, "{sizes:?}");
    // swtpm 0.7.1 / libtpms 0.9 on this project's machines.
    assert_eq!(sizes.max, 4096, "{sizes:?}");

    ctrl.stop().unwrap();
    assert_eq!(ctrl.set_buffer_size(1).unwrap().in_use, sizes.min);
    assert_eq!(ctrl.set_buffer_size(u32::MAX).unwrap().in_use, sizes.max);
    assert_eq!(ctrl.set_buffer_size(3000).unwrap().in_use, 3000);

    ctrl.init(0).unwrap();
    // A new size needs the TPM stopped; the query still works.
    assert_control_error(
        ctrl.set_buffer_size(2048).unwrap_err(),
        "SET_BUFFERSIZE",
        result::BAD_ORDINAL,
    );
    assert_eq!(ctrl.set_buffer_size(0).unwrap().in_use, 3000);
}

#[test]
fn state_blob_and_established_are_refused_before_init() {
    let (_process, mut ctrl) = raw_swtpm();
    assert_control_error(
        ctrl.get_state_blob(blob::PERMANENT, blob::FLAG_DECRYPTED)
            .unwrap_err(),
        "GET_STATEBLOB",
        result::BAD_ORDINAL,
    );
    assert_control_error(
        ctrl.get_tpm_established().unwrap_err(),
        "GET_TPMESTABLISHED",
        result::BAD_ORDINAL,
    );
    assert_control_error(
        ctrl.cancel_tpm_cmd().unwrap_err(),
        "CANCEL_TPM_CMD",
        result::BAD_ORDINAL,
    );
    assert_control_error(
        ctrl.store_volatile().unwrap_err(),
        "STORE_VOLATILE",
        result::BAD_ORDINAL,
    );
    // The failures were only results: the channel is still in step.
    assert!(ctrl.is_usable());
    ctrl.init(0).unwrap();
    assert!(!ctrl.get_tpm_established().unwrap());
}

#[test]
fn data_commands_follow_stop_and_init() {
    let (_process, mut ctrl) = raw_swtpm();
    let mut data = hand_over_data(&mut ctrl);
    let mut rsp = Vec::new();
    // Before INIT the TPM is not running.
    data.transact(&client::get_random(8), &mut rsp, 4096)
        .unwrap();
    assert_eq!(rc(&rsp), ResponseCode::FAILURE);
    ctrl.init(0).unwrap();
    data.transact(&client::get_random(8), &mut rsp, 4096)
        .unwrap();
    assert_eq!(rc(&rsp), ResponseCode::INITIALIZE);
    data.transact(&client::startup(consts::TPM_SU_CLEAR), &mut rsp, 4096)
        .unwrap();
    assert_eq!(rsp, [0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0, 0]);
    ctrl.stop().unwrap();
    data.transact(&client::get_random(8), &mut rsp, 4096)
        .unwrap();
    assert_eq!(rc(&rsp), ResponseCode::FAILURE);
}

#[test]
fn set_data_fd_twice_is_refused() {
    let (_process, mut ctrl) = raw_swtpm();
    let _data = hand_over_data(&mut ctrl);
    let (_ours, theirs) = UnixStream::pair().unwrap();
    assert_control_error(
        ctrl.set_data_fd(theirs.as_fd()).unwrap_err(),
        "SET_DATAFD",
        result::IOERROR,
    );
}

#[test]
fn locality_range_is_checked_by_swtpm() {
    let (_process, mut ctrl) = raw_swtpm();
    for locality in 0..=4 {
        ctrl.set_locality(locality).unwrap();
    }
    assert_control_error(
        ctrl.set_locality(5).unwrap_err(),
        "SET_LOCALITY",
        result::BAD_LOCALITY,
    );
}

#[test]
fn hash_sequence_sets_established_and_locality_3_resets_it() {
    let (_process, mut ctrl) = raw_swtpm();
    let mut data = hand_over_data(&mut ctrl);
    ctrl.init(0).unwrap();
    let mut rsp = Vec::new();
    data.transact(&client::startup(consts::TPM_SU_CLEAR), &mut rsp, 4096)
        .unwrap();
    assert!(!ctrl.get_tpm_established().unwrap());

    ctrl.hash_start().unwrap();
    // More than one HASH_DATA request's worth.
    ctrl.hash_data(&[0x5A; 5000]).unwrap();
    ctrl.hash_end().unwrap();
    assert!(ctrl.get_tpm_established().unwrap());

    assert_control_error(
        ctrl.reset_tpm_established(0).unwrap_err(),
        "RESET_TPMESTABLISHED",
        result::BAD_LOCALITY,
    );
    assert!(ctrl.get_tpm_established().unwrap());
    ctrl.reset_tpm_established(3).unwrap();
    assert!(!ctrl.get_tpm_established().unwrap());
}

#[test]
fn state_blobs_store_volatile_and_config() {
    let (_process, mut ctrl) = raw_swtpm();
    let mut data = hand_over_data(&mut ctrl);
    ctrl.init(0).unwrap();
    let mut rsp = Vec::new();
    data.transact(&client::startup(consts::TPM_SU_CLEAR), &mut rsp, 4096)
        .unwrap();
    assert_eq!(ctrl.get_config().unwrap(), 0);
    ctrl.store_volatile().unwrap();

    let permanent = ctrl
        .get_state_blob(blob::PERMANENT, blob::FLAG_DECRYPTED)
        .unwrap();
    let volatile = ctrl
        .get_state_blob(blob::VOLATILE, blob::FLAG_DECRYPTED)
        .unwrap();
    // No TPM2_Shutdown(STATE) was sent: the savestate blob is empty, which
    // swtpm reports with a non-fatal result and a full header.
    let savestate = ctrl
        .get_state_blob(blob::SAVESTATE, blob::FLAG_DECRYPTED)
        .unwrap();
    eprintln!(
        "blob sizes: permanent {}, volatile {}, savestate {}",
        permanent.data.len(),
        volatile.data.len(),
        savestate.data.len()
    );
    assert!(permanent.data.len() > 100);
    assert!(volatile.data.len() > 100);
    assert!(savestate.data.is_empty());
    assert_eq!(permanent.flags & blob::FLAG_ENCRYPTED, 0);
    // The empty blob's header was consumed: the next reply lines up.
    assert!(ctrl.get_capability().unwrap().contains(cap::INIT));

    // SET_STATEBLOB needs the TPM stopped.
    assert!(matches!(
        ctrl.set_state_blob(blob::PERMANENT, 0, &permanent.data),
        Err(BackendError::Control {
            command: "SET_STATEBLOB",
            ..
        })
    ));
    ctrl.stop().unwrap();
    ctrl.set_state_blob(blob::PERMANENT, 0, &permanent.data)
        .unwrap();
    ctrl.set_state_blob(blob::VOLATILE, 0, &volatile.data)
        .unwrap();
    ctrl.init(init::DELETE_VOLATILE).unwrap();
    // The volatile state carried the completed Startup.
    data.transact(&client::get_random(8), &mut rsp, 4096)
        .unwrap();
    assert_eq!(rc(&rsp), ResponseCode::SUCCESS);
}

#[test]
fn get_info_returns_json() {
    let (_process, mut ctrl) = raw_swtpm();
    assert!(ctrl.get_capability().unwrap().contains(cap::GET_INFO));
    let spec = ctrl
        .get_info(vtpm_backend::swtpm::ctrl::info::TPM_SPECIFICATION)
        .unwrap();
    assert!(spec.starts_with("{\"TPMSpecification\""), "{spec}");
    assert!(!spec.ends_with('\0'));
    let both = ctrl
        .get_info(
            vtpm_backend::swtpm::ctrl::info::TPM_SPECIFICATION
                | vtpm_backend::swtpm::ctrl::info::TPM_ATTRIBUTES,
        )
        .unwrap();
    assert!(both.contains("TPMAttributes") && both.contains("\"family\":\"2.0\""));
}

#[test]
fn lock_storage_matches_the_capability_bit() {
    let (_process, mut ctrl) = raw_swtpm();
    let caps = ctrl.get_capability().unwrap();
    ctrl.init(0).unwrap();
    let locked = ctrl.lock_storage(0);
    if caps.contains(cap::LOCK_STORAGE) {
        locked.unwrap();
    } else {
        // swtpm 0.7 does not know the command.
        assert_control_error(locked.unwrap_err(), "LOCK_STORAGE", result::BAD_ORDINAL);
        assert!(ctrl.is_usable());
    }
}

#[test]
fn shutdown_ends_the_process_and_closes_the_channel() {
    let (mut process, mut ctrl) = raw_swtpm();
    ctrl.shutdown().unwrap();
    let status = process.wait_exit(Duration::from_secs(5)).unwrap();
    assert!(status.is_some(), "swtpm still runs after SHUTDOWN");
    match ctrl.get_capability() {
        Err(BackendError::ChannelClosed(_)) => {}
        other => panic!("expected ChannelClosed, got {other:?}"),
    }
    // And it stays refused, without touching the socket again.
    assert!(matches!(
        ctrl.get_capability(),
        Err(BackendError::ChannelClosed(_))
    ));
}

#[test]
fn a_spawned_unix_data_server_works_without_set_data_fd() {
    let config = SwtpmConfig {
        data: DataChannel::Unix(None),
        ..SwtpmConfig::default()
    };
    let process = SwtpmProcess::spawn(&config).unwrap();
    let mut ctrl = process.control().unwrap();
    let DataChannel::Unix(Some(path)) = process.data_channel().clone() else {
        panic!("no data socket path chosen");
    };
    ctrl.init(0).unwrap();
    let mut data = DataConnection::connect_unix(&path).unwrap();
    let mut rsp = Vec::new();
    data.transact(&client::startup(consts::TPM_SU_CLEAR), &mut rsp, 4096)
        .unwrap();
    assert_eq!(rc(&rsp), ResponseCode::SUCCESS);
    data.transact(&client::get_random(16), &mut rsp, 4096)
        .unwrap();
    assert_eq!(client::parse_get_random(&rsp).unwrap().len(), 16);
}
