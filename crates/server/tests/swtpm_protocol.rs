//! The swtpm control and data channels, byte for byte. The expected
//! replies are what swtpm 0.7.1 answers to the same requests (measured;
//! see spec-notes §4).

mod common;

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use common::*;
use vtpm_backend::swtpm::ctrl::{cap, cmd, ControlChannel};
use vtpm_client::{get_random, pcr_extend_sha256, shutdown, startup};
use vtpm_wire::consts::{TPM_SU_CLEAR, TPM_SU_STATE};
use vtpm_wire::{cc, error_response, ResponseCode};

#[test]
fn get_capability_is_a_bare_bitmask_of_what_is_implemented() {
    let server = start(Options::default());
    let reply = ctrl(
        server.ctrl.as_ref().unwrap(),
        &req(cmd::GET_CAPABILITY, &[]),
        8,
    );
    let caps = u64::from_be_bytes(reply.try_into().unwrap());
    assert_eq!(caps, vtpm_server::swtpm::capabilities(true, true));
    assert_eq!(caps & cap::SEND_COMMAND_HEADER, 0);
    assert_ne!(caps & cap::SET_DATAFD, 0);
}

#[test]
fn before_init_data_commands_answer_failure_and_after_init_initialize() {
    let server = start(Options {
        powered: false,
        ..Options::default()
    });
    let ctrl_path = server.ctrl.clone().unwrap();
    let mut data = unix(server.data.as_ref().unwrap());
    assert_eq!(rc(&transact(&mut data, &get_random(8))), 0x101);
    assert_eq!(ctrl(&ctrl_path, &req(cmd::INIT, &[0; 4]), 4), [0; 4]);
    assert_eq!(rc(&transact(&mut data, &get_random(8))), 0x100);
    assert_eq!(rc(&transact(&mut data, &startup(TPM_SU_CLEAR))), 0);
    assert_eq!(rc(&transact(&mut data, &get_random(8))), 0);
    assert_eq!(ctrl(&ctrl_path, &req(cmd::STOP, &[]), 4), [0; 4]);
    assert_eq!(rc(&transact(&mut data, &get_random(8))), 0x101);
}

#[test]
fn error_replies_are_the_result_alone() {
    let server = start(Options::default());
    let path = server.ctrl.clone().unwrap();
    assert_eq!(
        ctrl(&path, &req(cmd::SET_LOCALITY, &[5, 0, 0, 0]), 4),
        [0, 0, 0, 0x3d]
    );
    assert_eq!(ctrl(&path, &req(cmd::SET_LOCALITY, &[2]), 4), [0; 4]);
    assert_eq!(
        ctrl(&path, &req(cmd::RESET_TPMESTABLISHED, &[0, 0, 0, 0]), 4),
        [0, 0, 0, 0x3d]
    );
    assert_eq!(ctrl(&path, &req(0x99, &[]), 4), [0, 0, 0, 0x0a]);
    assert_eq!(
        ctrl(&path, &req(cmd::SET_BUFFERSIZE, &8192u32.to_be_bytes()), 4),
        [0, 0, 0, 0x0a],
        "a size while running"
    );
    assert_eq!(ctrl(&path, &req(cmd::GET_TPMESTABLISHED, &[]), 8), [0; 8]);
    assert_eq!(ctrl(&path, &req(cmd::STOP, &[]), 4), [0; 4]);
    let blob_req = [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0];
    assert_eq!(
        ctrl(&path, &req(cmd::GET_STATEBLOB, &blob_req), 4),
        [0, 0, 0, 0x0a]
    );
    assert_eq!(
        ctrl(&path, &req(cmd::GET_TPMESTABLISHED, &[]), 4),
        [0, 0, 0, 0x0a]
    );
    assert_eq!(
        ctrl(&path, &req(cmd::STORE_VOLATILE, &[]), 4),
        [0, 0, 0, 0x0a]
    );
}

#[test]
fn set_buffersize_queries_at_any_time_and_clamps_a_size_set_while_stopped() {
    let server = start(Options::default());
    let path = server.ctrl.clone().unwrap();
    let sizes = |v: [u32; 3]| {
        let mut r = vec![0u8; 4];
        for x in v {
            r.extend_from_slice(&x.to_be_bytes());
        }
        r
    };
    assert_eq!(
        ctrl(&path, &req(cmd::SET_BUFFERSIZE, &[0; 4]), 16),
        sizes([8192, 4096, 8192])
    );
    ctrl(&path, &req(cmd::STOP, &[]), 4);
    assert_eq!(
        ctrl(&path, &req(cmd::SET_BUFFERSIZE, &100u32.to_be_bytes()), 16),
        sizes([4096, 4096, 8192])
    );
    ctrl(&path, &req(cmd::INIT, &[0; 4]), 4);
    let mut data = unix(server.data.as_ref().unwrap());
    assert_eq!(rc(&transact(&mut data, &startup(TPM_SU_CLEAR))), 0);
    assert_eq!(
        max_command_size(&mut data),
        4096,
        "the TPM reports the size set"
    );
    ctrl(&path, &req(cmd::STOP, &[]), 4);
    assert_eq!(
        ctrl(
            &path,
            &req(cmd::SET_BUFFERSIZE, &99999u32.to_be_bytes()),
            16
        ),
        sizes([8192, 4096, 8192])
    );
}

#[test]
fn get_info_answers_libtpms_style_json_ending_with_a_nul() {
    let server = start(Options::default());
    let path = server.ctrl.clone().unwrap();
    let mut s = unix(&path);
    let mut body = 3u64.to_be_bytes().to_vec();
    body.extend_from_slice(&[0; 8]);
    s.write_all(&req(cmd::GET_INFO, &body)).unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head[..4], &[0; 4]);
    let total = u32::from_be_bytes(head[4..8].try_into().unwrap()) as usize;
    let mut text = vec![0u8; total];
    s.read_exact(&mut text).unwrap();
    assert_eq!(text.pop(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(json["TPMSpecification"]["family"], "2.0");
    assert_eq!(json["TPMAttributes"]["model"], "vtpm-server");
}

#[test]
fn store_volatile_then_init_resumes_and_init_delete_volatile_forgets_afterwards() {
    let server = start(Options::default());
    let path = server.ctrl.clone().unwrap();
    let mut data = unix(server.data.as_ref().unwrap());
    assert_eq!(rc(&transact(&mut data, &pcr_extend_sha256(0, &[1; 32]))), 0);
    let stored = pcr0(&mut data);
    assert_eq!(ctrl(&path, &req(cmd::STORE_VOLATILE, &[]), 4), [0; 4]);
    assert_eq!(rc(&transact(&mut data, &pcr_extend_sha256(0, &[2; 32]))), 0);
    assert_ne!(pcr0(&mut data), stored);

    assert_eq!(ctrl(&path, &req(cmd::INIT, &[0; 4]), 4), [0; 4]);
    assert_eq!(pcr0(&mut data), stored, "INIT(0) resumes the stored state");
    assert_eq!(ctrl(&path, &req(cmd::INIT, &[0, 0, 0, 1]), 4), [0; 4]);
    assert_eq!(pcr0(&mut data), stored, "INIT(1) resumes, then deletes");
    assert_eq!(ctrl(&path, &req(cmd::INIT, &[0; 4]), 4), [0; 4]);
    assert_eq!(
        rc(&transact(&mut data, &get_random(8))),
        0x100,
        "nothing left to resume"
    );
}

#[test]
fn state_blobs_move_a_running_tpm_to_another_server_as_qemu_migrates() {
    let a = start(Options::default());
    let b = start(Options {
        powered: false,
        ..Options::default()
    });
    let mut data_a = unix(a.data.as_ref().unwrap());
    transact(&mut data_a, &pcr_extend_sha256(0, &[9; 32]));
    let expected = pcr0(&mut data_a);
    let mut source = ControlChannel::connect(a.ctrl.as_ref().unwrap()).unwrap();
    let mut dest = ControlChannel::connect(b.ctrl.as_ref().unwrap()).unwrap();
    let blobs: Vec<_> = vtpm_backend::swtpm::ctrl::blob::ALL
        .iter()
        .map(|&t| source.get_state_blob(t, 1).unwrap())
        .collect();
    assert!(blobs[2].data.is_empty(), "the savestate blob is empty");
    dest.stop().unwrap();
    for blob in blobs.iter().filter(|b| !b.data.is_empty()) {
        dest.set_state_blob(blob.blob_type, 0, &blob.data).unwrap();
    }
    dest.init(1).unwrap();
    let mut data_b = unix(b.data.as_ref().unwrap());
    assert_eq!(pcr0(&mut data_b), expected);
}

#[test]
fn a_command_larger_than_the_buffer_answers_command_size_and_the_stream_stays_in_step() {
    let server = start(Options::default());
    let mut data = unix(server.data.as_ref().unwrap());
    let mut big = vec![0u8; 9000];
    big[..10].copy_from_slice(&[0x80, 0x01, 0, 0, 0x23, 0x28, 0, 0, 1, 0x7b]);
    let rsp = transact(&mut data, &big);
    assert_eq!(rc(&rsp), 0x142);
    assert_eq!(
        rc(&transact(&mut data, &get_random(8))),
        0,
        "the next command is whole"
    );
    let mut tiny = [0x80, 0x01, 0, 0, 0, 4, 0, 0, 1, 0x7b];
    assert_eq!(rc(&transact(&mut data, &tiny)), 0x142);
    tiny[5] = 0x0a;
    assert_ne!(rc(&transact(&mut data, &tiny)), 0x142);
}

#[test]
fn set_datafd_serves_the_socket_handed_over_and_refuses_a_second_while_it_is_open() {
    let server = start(Options::default());
    let mut channel = ControlChannel::connect(server.ctrl.as_ref().unwrap()).unwrap();
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    channel.set_data_fd(theirs.as_fd()).unwrap();
    drop(theirs);
    assert_eq!(rc(&transact(&mut ours, &get_random(8))), 0);
    let (_ours2, theirs2) = UnixStream::pair().unwrap();
    let err = channel
        .set_data_fd(theirs2.as_fd())
        .unwrap_err()
        .to_string();
    assert!(err.contains("0x1f"), "{err}");
}

#[test]
fn garbage_on_the_control_and_data_channels_never_stops_the_server() {
    let server = start(Options::default());
    let path = server.ctrl.clone().unwrap();
    let mut seed = 0x1234_5678u32;
    for round in 0..40 {
        let mut junk = vec![0u8; 1 + round * 7];
        for b in &mut junk {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            *b = seed as u8;
        }
        for target in [&path, server.data.as_ref().unwrap()] {
            let mut s = unix(target);
            let _ = s.write_all(&junk);
            drop(s);
        }
    }
    let reply = ctrl(&path, &req(cmd::GET_CAPABILITY, &[]), 8);
    assert_eq!(
        u64::from_be_bytes(reply.try_into().unwrap()) & cap::INIT,
        cap::INIT
    );
    let mut data = unix(server.data.as_ref().unwrap());
    let rsp = transact(&mut data, &get_random(8));
    assert!(rc(&rsp) == 0 || rc(&rsp) == 0x100, "rc {:#x}", rc(&rsp));
}

#[test]
fn shutdown_stops_the_server_and_a_restart_resumes_a_shutdown_state() {
    let state = tempfile::tempdir().unwrap();
    let server = start(Options {
        store: Some(state.path().to_path_buf()),
        ..Options::default()
    });
    let mut data = unix(server.data.as_ref().unwrap());
    transact(&mut data, &pcr_extend_sha256(0, &[5; 32]));
    let before = pcr0(&mut data);
    assert_eq!(rc(&transact(&mut data, &shutdown(TPM_SU_STATE))), 0);
    assert_eq!(
        ctrl(server.ctrl.as_ref().unwrap(), &req(cmd::SHUTDOWN, &[]), 4),
        [0; 4]
    );
    assert_eq!(
        server.join().unwrap(),
        vtpm_server::StopReason::ControlShutdown
    );

    let again = start(Options {
        store: Some(state.path().to_path_buf()),
        startup: false,
        ..Options::default()
    });
    let mut data = unix(again.data.as_ref().unwrap());
    assert_eq!(rc(&transact(&mut data, &startup(TPM_SU_STATE))), 0);
    assert_eq!(pcr0(&mut data), before);
}

fn expected_pcr17(measurement: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update([0u8; 32]);
    h.update(Sha256::digest(measurement));
    h.finalize().to_vec()
}

fn pcr17<S: Read + Write>(s: &mut S) -> Vec<u8> {
    let rsp = transact(
        s,
        &vtpm_client::pcr_read(vtpm_wire::consts::TPM_ALG_SHA256, &[17]),
    );
    vtpm_client::parse_pcr_read(&rsp).unwrap().digests[0].clone()
}

#[test]
fn hash_start_data_end_extend_pcr_17_and_set_tpm_established_until_locality_3_resets_it() {
    let server = start(Options::default());
    let mut channel = ControlChannel::connect(server.ctrl.as_ref().unwrap()).unwrap();
    assert!(!channel.get_tpm_established().unwrap());
    channel.hash_start().unwrap();
    channel.hash_data(b"measured launch").unwrap();
    channel.hash_end().unwrap();
    let mut data = unix(server.data.as_ref().unwrap());
    assert_eq!(pcr17(&mut data), expected_pcr17(b"measured launch"));
    assert!(channel.get_tpm_established().unwrap());
    channel.reset_tpm_established(3).unwrap();
    assert!(!channel.get_tpm_established().unwrap());
}

#[test]
fn mssim_hash_signals_run_the_same_dynamic_launch() {
    let server = start(Options::default());
    let (command, _) = server.mssim.clone().unwrap();
    let mut cmd = tcp(&command);
    assert_eq!(signal(&mut cmd, vtpm_server::mssim::signal::HASH_START), 0);
    let mut piece = vtpm_server::mssim::signal::HASH_DATA.to_be_bytes().to_vec();
    piece.extend_from_slice(&4u32.to_be_bytes());
    piece.extend_from_slice(b"sinit");
    piece.truncate(12);
    cmd.write_all(&piece).unwrap();
    let mut ack = [0u8; 4];
    cmd.read_exact(&mut ack).unwrap();
    assert_eq!(ack, [0; 4]);
    assert_eq!(signal(&mut cmd, vtpm_server::mssim::signal::HASH_END), 0);
    assert_eq!(mssim_pcr17(&mut cmd), expected_pcr17(b"sini"));
}

fn mssim_pcr17(cmd: &mut std::net::TcpStream) -> Vec<u8> {
    let rsp = mssim_send(
        cmd,
        0,
        &vtpm_client::pcr_read(vtpm_wire::consts::TPM_ALG_SHA256, &[17]),
    );
    vtpm_client::parse_pcr_read(&rsp).unwrap().digests[0].clone()
}

#[test]
fn set_datafd_with_a_descriptor_that_is_not_a_stream_socket_is_a_bad_parameter() {
    let server = start(Options::default());
    let mut channel = ControlChannel::connect(server.ctrl.as_ref().unwrap()).unwrap();
    let file = std::fs::File::open("/dev/null").unwrap();
    let err = channel.set_data_fd(file.as_fd()).unwrap_err().to_string();
    assert!(err.ends_with("result 0x3"), "{err}");
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    channel.set_data_fd(theirs.as_fd()).unwrap();
    drop(theirs);
    assert_eq!(rc(&transact(&mut ours, &get_random(8))), 0);
}

#[test]
fn get_config_reports_a_file_key_only_when_the_state_is_encrypted() {
    let state = tempfile::tempdir().unwrap();
    let plain = start(Options::default());
    assert_eq!(
        ctrl(plain.ctrl.as_ref().unwrap(), &req(cmd::GET_CONFIG, &[]), 8),
        [0; 8]
    );
    let sealed = start(Options {
        store: Some(state.path().to_path_buf()),
        key: Some([1; 32]),
        ..Options::default()
    });
    assert_eq!(
        ctrl(sealed.ctrl.as_ref().unwrap(), &req(cmd::GET_CONFIG, &[]), 8),
        [0, 0, 0, 0, 0, 0, 0, 1]
    );
}

#[test]
fn cancel_tpm_cmd_with_no_command_executing_leaves_the_next_command_alone() {
    // The sim honours a raised cancel line on the next command it runs: a
    // request nobody's command was executing for must not reach it.
    let server = start(Options::default());
    let ctrl_path = server.ctrl.clone().unwrap();
    let mut data = unix(server.data.as_ref().unwrap());
    assert_eq!(
        ctrl(&ctrl_path, &req(cmd::CANCEL_TPM_CMD, &[]), 4),
        [0; 4],
        "swtpm answers success with nothing to cancel"
    );
    assert_eq!(rc(&transact(&mut data, &get_random(8))), 0);
}

#[test]
fn cancel_tpm_cmd_reaches_the_command_executing_and_is_withdrawn_after_it() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use vtpm_backend::testing::{CancelCounter, FnBackend};

    // A test double: GetRandom runs until it is cancelled (a long command
    // the test can hold open without timing); everything else succeeds.
    let cancels = Arc::new(CancelCounter::default());
    let running = Arc::new(AtomicBool::new(false));
    let backend = {
        let (seen, running) = (cancels.clone(), running.clone());
        FnBackend::new(4096, move |_, command, response| {
            let mut code = ResponseCode::CANCELED;
            if command.get(6..10) == Some(&cc::GET_RANDOM.to_be_bytes()[..]) {
                running.store(true, Ordering::SeqCst);
                while seen.count() == 0 {
                    std::thread::yield_now();
                }
            } else {
                code = ResponseCode::SUCCESS;
            }
            response.extend_from_slice(&error_response(code));
            Ok(())
        })
        .with_cancels(cancels.clone())
    };
    let server = start(Options {
        startup: false,
        backend: Some(Box::new(backend)),
        ..Options::default()
    });
    let ctrl_path = server.ctrl.clone().unwrap();
    let mut data = unix(server.data.as_ref().unwrap());

    // Idle: the request goes nowhere.
    assert_eq!(ctrl(&ctrl_path, &req(cmd::CANCEL_TPM_CMD, &[]), 4), [0; 4]);
    assert_eq!(cancels.count(), 0);

    let command = std::thread::spawn(move || transact(&mut data, &get_random(8)));
    while !running.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    assert_eq!(ctrl(&ctrl_path, &req(cmd::CANCEL_TPM_CMD, &[]), 4), [0; 4]);
    assert_eq!(rc(&command.join().unwrap()), ResponseCode::CANCELED.0);
    assert_eq!(cancels.count(), 1, "the executing command was cancelled");
    // Once the command has answered, whatever is left of the request is
    // taken back before the next command can start.
    assert_eq!(cancels.withdrawals(), 1);
}

#[test]
fn a_backend_panic_mid_command_leaves_no_command_open_to_a_later_cancel() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use vtpm_backend::testing::{CancelCounter, FnBackend};

    // A test double that panics on its first GetRandom (a fault the real
    // TPM cannot be made to show) and answers success otherwise.
    let cancels = Arc::new(CancelCounter::default());
    let panicked = Arc::new(AtomicBool::new(false));
    let backend = {
        let panicked = panicked.clone();
        FnBackend::new(4096, move |_, command, response| {
            if command.get(6..10) == Some(&cc::GET_RANDOM.to_be_bytes()[..])
                && !panicked.swap(true, Ordering::SeqCst)
            {
                panic!("injected backend panic");
            }
            response.extend_from_slice(&error_response(ResponseCode::SUCCESS));
            Ok(())
        })
        .with_cancels(cancels.clone())
    };
    let server = start(Options {
        startup: false,
        backend: Some(Box::new(backend)),
        ..Options::default()
    });
    let ctrl_path = server.ctrl.clone().unwrap();
    let mut data = unix(server.data.as_ref().unwrap());
    data.write_all(&get_random(8)).unwrap();
    assert!(
        closed(&mut data),
        "the panicking request ends its connection"
    );
    assert!(panicked.load(Ordering::SeqCst));

    // Nothing executes now: a cancel reaches nobody, and the server serves on.
    assert_eq!(ctrl(&ctrl_path, &req(cmd::CANCEL_TPM_CMD, &[]), 4), [0; 4]);
    assert_eq!(cancels.count(), 0);
    let mut data = unix(server.data.as_ref().unwrap());
    assert_eq!(rc(&transact(&mut data, &get_random(8))), 0);
}
