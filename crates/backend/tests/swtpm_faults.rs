//! Failures of swtpm and of its peers end as typed errors, promptly: a
//! killed swtpm, closed sockets, and test doubles that answer garbage, too
//! little, or nothing. After each fault a new backend works.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};
use vtpm_backend::swtpm::ctrl::{blob, ControlChannel};
use vtpm_backend::swtpm::{DataChannel, DataConnection, SwtpmBackend, SwtpmConfig, Timeouts};
use vtpm_backend::{Backend, BackendError};
use vtpm_client as client;
use vtpm_wire::{cc, consts, error_response, CommandBuilder, Header, ResponseCode};

fn rc(response: &[u8]) -> ResponseCode {
    Header::parse_exact(response)
        .expect("well-formed response")
        .response_code()
}

fn started() -> SwtpmBackend {
    let mut tpm = SwtpmBackend::spawn(SwtpmConfig::default()).expect("swtpm backend starts");
    let mut rsp = Vec::new();
    tpm.execute(0, &client::startup(consts::TPM_SU_CLEAR), &mut rsp)
        .expect("startup");
    assert_eq!(rc(&rsp), ResponseCode::SUCCESS);
    tpm
}

/// The recovery check every fault test ends with.
fn a_new_backend_works() {
    let mut tpm = started();
    let mut rsp = Vec::new();
    tpm.execute(0, &client::get_random(16), &mut rsp)
        .expect("get random");
    assert_eq!(client::parse_get_random(&rsp).unwrap().len(), 16);
}

/// TPM2_CreatePrimary of an RSA-3072 signing key in the null hierarchy:
/// a command that keeps swtpm busy for a while.
fn create_primary_rsa_3072() -> Vec<u8> {
    let mut public = Vec::new();
    public.extend_from_slice(&consts::TPM_ALG_RSA.to_be_bytes());
    public.extend_from_slice(&consts::TPM_ALG_SHA256.to_be_bytes());
    public.extend_from_slice(&0x0004_0072u32.to_be_bytes());
    public.extend_from_slice(&0u16.to_be_bytes());
    public.extend_from_slice(&consts::TPM_ALG_NULL.to_be_bytes());
    public.extend_from_slice(&consts::TPM_ALG_NULL.to_be_bytes());
    public.extend_from_slice(&3072u16.to_be_bytes());
    public.extend_from_slice(&0u32.to_be_bytes());
    public.extend_from_slice(&0u16.to_be_bytes());
    CommandBuilder::with_sessions(cc::CREATE_PRIMARY)
        .u32(consts::TPM_RH_NULL)
        .password_session(&[])
        .tpm2b(&[0, 0, 0, 0])
        .tpm2b(&public)
        .tpm2b(&[])
        .u32(0)
        .finish()
}

fn sigkill(pid: u32) {
    let pid = Pid::from_raw(pid as i32).expect("a real pid");
    kill_process(pid, Signal::KILL).expect("SIGKILL delivered");
}

#[test]
fn swtpm_killed_mid_command_is_a_typed_error() {
    let mut tpm = started();
    let pid = tpm.pid().expect("spawned");
    let killer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        sigkill(pid);
    });
    let start = Instant::now();
    let mut rsp = Vec::new();
    let mut completed = 0;
    // Key generation keeps swtpm busy; the kill lands in one of these
    // commands (or between two, which the next command finds).
    let error = loop {
        match tpm.execute(0, &create_primary_rsa_3072(), &mut rsp) {
            Ok(()) => {
                completed += 1;
                assert!(completed < 200, "swtpm survived SIGKILL");
                let handle = u32::from_be_bytes([rsp[10], rsp[11], rsp[12], rsp[13]]);
                let flush = CommandBuilder::no_sessions(cc::FLUSH_CONTEXT)
                    .u32(handle)
                    .finish();
                if let Err(e) = tpm.execute(0, &flush, &mut rsp) {
                    break e;
                }
            }
            Err(e) => break e,
        }
    };
    killer.join().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    match &error {
        BackendError::ChannelClosed(text) => assert!(text.contains("exited"), "{text}"),
        other => panic!("expected ChannelClosed, got {other:?}"),
    }
    assert!(rsp.is_empty(), "no partial response is left behind");

    // Everything after that fails fast as well, and drop does not hang.
    let again = Instant::now();
    assert!(tpm.execute(0, &client::get_random(8), &mut rsp).is_err());
    assert!(matches!(
        tpm.established(),
        Err(BackendError::ChannelClosed(_))
    ));
    let canceller = tpm.canceller().unwrap();
    assert!(canceller.cancel().is_err());
    drop(tpm);
    assert!(
        again.elapsed() < Duration::from_secs(5),
        "took {:?}",
        again.elapsed()
    );
    a_new_backend_works();
}

#[test]
fn swtpm_killed_while_idle_fails_every_channel() {
    let mut tpm = started();
    sigkill(tpm.pid().unwrap());
    let mut rsp = Vec::new();
    match tpm.execute(0, &client::get_random(8), &mut rsp) {
        Err(BackendError::ChannelClosed(_)) => {}
        other => panic!("expected ChannelClosed, got {other:?}"),
    }
    match tpm.save_state() {
        Err(BackendError::ChannelClosed(_)) => {}
        other => panic!("expected ChannelClosed, got {other:?}"),
    }
    a_new_backend_works();
}

#[test]
fn a_data_socket_closed_by_swtpm_is_channel_closed() {
    let mut tpm = started();
    // SHUTDOWN makes swtpm exit, closing its end of the socketpair.
    tpm.with_control(|ctrl| ctrl.shutdown()).unwrap();
    let mut rsp = Vec::new();
    match tpm.execute(0, &client::get_random(8), &mut rsp) {
        Err(BackendError::ChannelClosed(_)) => {}
        other => panic!("expected ChannelClosed, got {other:?}"),
    }
    // The connection stays refused without touching the socket.
    assert!(matches!(
        tpm.execute(0, &client::get_random(8), &mut rsp),
        Err(BackendError::ChannelClosed(_))
    ));
    a_new_backend_works();
}

// ----- data-channel test doubles -----

/// A data-channel test double: `peer` plays swtpm on the other end of a
/// socketpair.
fn data_double(
    peer: impl FnOnce(UnixStream) + Send + 'static,
    timeout: Duration,
) -> (DataConnection, JoinHandle<()>) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let handle = thread::spawn(move || peer(theirs));
    let mut connection = DataConnection::from_unix(ours).unwrap();
    connection.set_command_timeout(timeout).unwrap();
    (connection, handle)
}

/// Reads one whole command, as swtpm would.
fn read_command(stream: &mut UnixStream) -> Vec<u8> {
    let mut header = [0u8; 10];
    stream.read_exact(&mut header).unwrap();
    let size = Header::peek_size(&header).unwrap() as usize;
    let mut command = header.to_vec();
    command.resize(size, 0);
    stream.read_exact(&mut command[10..]).unwrap();
    command
}

fn data_fault(peer: impl FnOnce(UnixStream) + Send + 'static, timeout: Duration) -> BackendError {
    let (mut data, peer) = data_double(peer, timeout);
    let mut rsp = vec![0xEE; 3];
    let start = Instant::now();
    let error = data
        .transact(&client::get_random(8), &mut rsp, 4096)
        .expect_err("the double misbehaves");
    assert!(start.elapsed() < timeout + Duration::from_secs(2));
    assert!(rsp.is_empty(), "no partial response is left behind");
    // Out of step: the connection refuses further commands.
    assert!(!data.is_usable());
    assert!(data
        .transact(&client::get_random(8), &mut rsp, 4096)
        .is_err());
    drop(data);
    peer.join().unwrap();
    error
}

#[test]
fn data_double_closing_at_once_is_channel_closed() {
    let e = data_fault(drop, Duration::from_secs(5));
    assert!(matches!(e, BackendError::ChannelClosed(_)), "{e:?}");
    a_new_backend_works();
}

#[test]
fn data_double_closing_mid_response_is_channel_closed() {
    let e = data_fault(
        |mut s| {
            read_command(&mut s);
            // A header promising 30 bytes, then only 5 of the 20 after it.
            s.write_all(&[0x80, 0x01, 0, 0, 0, 30, 0, 0, 0, 0, 1, 2, 3, 4, 5])
                .unwrap();
        },
        Duration::from_secs(5),
    );
    assert!(matches!(e, BackendError::ChannelClosed(_)), "{e:?}");
    a_new_backend_works();
}

#[test]
fn data_double_with_impossible_sizes_is_a_protocol_error() {
    for size in [4u32, 4097, u32::MAX] {
        let e = data_fault(
            move |mut s| {
                read_command(&mut s);
                let mut header = vec![0x80, 0x01];
                header.extend_from_slice(&size.to_be_bytes());
                header.extend_from_slice(&[0, 0, 0, 0]);
                s.write_all(&header).unwrap();
                // Hold the socket open: the error must not depend on EOF.
                let mut sink = [0u8; 16];
                let _ = s.read(&mut sink);
            },
            Duration::from_secs(5),
        );
        assert!(matches!(e, BackendError::Protocol(_)), "size {size}: {e:?}");
    }
    a_new_backend_works();
}

#[test]
fn data_double_that_never_answers_times_out() {
    let e = data_fault(
        |mut s| {
            read_command(&mut s);
            // Silent until the client gives up and closes.
            let mut sink = [0u8; 16];
            let _ = s.read(&mut sink);
        },
        Duration::from_millis(300),
    );
    assert!(matches!(e, BackendError::Timeout(_)), "{e:?}");
    a_new_backend_works();
}

// ----- control-channel test doubles -----

/// A control-channel test double listening on a Unix socket: `peer`
/// serves the one connection it accepts.
struct ControlDouble {
    _dir: tempfile::TempDir,
    path: PathBuf,
    thread: Option<JoinHandle<()>>,
}

impl ControlDouble {
    fn new(peer: impl FnOnce(UnixStream) + Send + 'static) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctrl.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let thread = thread::spawn(move || {
            if let Ok((stream, _)) = listener.accept() {
                peer(stream);
            }
        });
        Self {
            _dir: dir,
            path,
            thread: Some(thread),
        }
    }

    fn connect(&self, reply_timeout: Duration) -> ControlChannel {
        let mut ctrl = ControlChannel::connect(&self.path).unwrap();
        ctrl.set_reply_timeout(reply_timeout).unwrap();
        ctrl
    }

    fn join(mut self) {
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// Reads one request (requests are small and sent whole) and returns its
/// command code, or `None` at end of stream.
fn read_request(stream: &mut UnixStream) -> Option<u32> {
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).ok()?;
    (n >= 4).then(|| u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]))
}

/// Runs one control request against a double answering `reply` (then
/// closing, or staying silent when `hold` is set) and returns the error.
fn control_fault(
    reply: &'static [u8],
    hold: bool,
    request: impl FnOnce(&mut ControlChannel) -> Result<(), BackendError>,
) -> BackendError {
    let double = ControlDouble::new(move |mut s| {
        read_request(&mut s);
        s.write_all(reply).unwrap();
        if hold {
            let _ = read_request(&mut s);
        }
    });
    let mut ctrl = double.connect(Duration::from_millis(300));
    let start = Instant::now();
    let error = request(&mut ctrl).expect_err("the double misbehaves");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}",
        start.elapsed()
    );
    drop(ctrl);
    double.join();
    error
}

#[test]
fn control_double_truncated_reply_is_a_protocol_error() {
    // Two bytes of a four-byte result, then the end of the stream.
    let e = control_fault(&[0, 0], false, |c| c.init(0));
    assert!(matches!(e, BackendError::Protocol(_)), "{e:?}");
    // Half of SET_BUFFERSIZE's sizes.
    let e = control_fault(&[0, 0, 0, 0, 0, 0, 0x10, 0], false, |c| {
        c.set_buffer_size(0).map(drop)
    });
    assert!(matches!(e, BackendError::Protocol(_)), "{e:?}");
    a_new_backend_works();
}

#[test]
fn control_double_closing_without_reply_is_channel_closed() {
    let e = control_fault(&[], false, |c| c.stop());
    assert!(matches!(e, BackendError::ChannelClosed(_)), "{e:?}");
    a_new_backend_works();
}

#[test]
fn control_double_that_stays_silent_times_out() {
    let e = control_fault(&[0, 0], true, |c| c.get_tpm_established().map(drop));
    assert!(matches!(e, BackendError::Timeout(_)), "{e:?}");
    a_new_backend_works();
}

#[test]
fn control_double_garbage_replies_are_protocol_errors() {
    // Buffer sizes with min above max.
    let sizes: &'static [u8] = &[0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x20, 0, 0, 0, 0x10, 0];
    let e = control_fault(sizes, true, |c| c.set_buffer_size(0).map(drop));
    assert!(matches!(e, BackendError::Protocol(_)), "{e:?}");
    // A state blob whose length disagrees with its total.
    let blob_reply: &'static [u8] = &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 3, 1, 2, 3];
    let e = control_fault(blob_reply, true, |c| {
        c.get_state_blob(blob::PERMANENT, blob::FLAG_DECRYPTED)
            .map(drop)
    });
    assert!(matches!(e, BackendError::Protocol(_)), "{e:?}");
    // A state blob of 4 GiB.
    let huge: &'static [u8] = &[
        0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    ];
    let e = control_fault(huge, true, |c| {
        c.get_state_blob(blob::VOLATILE, blob::FLAG_DECRYPTED)
            .map(drop)
    });
    assert!(matches!(e, BackendError::Protocol(_)), "{e:?}");
    // GET_INFO text that is not UTF-8.
    let info: &'static [u8] = &[0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2, 0xFF, 0xFE];
    let e = control_fault(info, true, |c| c.get_info(1).map(drop));
    assert!(matches!(e, BackendError::Protocol(_)), "{e:?}");
    // More bytes than a successful INIT reply has.
    let e = control_fault(&[0, 0, 0, 0, 0, 0, 0, 0], true, |c| c.init(0));
    assert!(matches!(e, BackendError::Protocol(_)), "{e:?}");
    a_new_backend_works();
}

#[test]
fn control_failure_with_queued_bytes_keeps_the_channel_in_step() {
    // Like swtpm's GET_STATEBLOB failure: result, then a 12-byte header.
    // The client must drop the header so the next reply lines up.
    let double = ControlDouble::new(|mut s| {
        read_request(&mut s);
        s.write_all(&[0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
            .unwrap();
        read_request(&mut s);
        s.write_all(&[0, 0, 0, 0, 0, 0, 0xFF, 0xFF]).unwrap();
        let _ = read_request(&mut s);
    });
    let mut ctrl = double.connect(Duration::from_secs(2));
    match ctrl.get_state_blob(blob::PERMANENT, blob::FLAG_DECRYPTED) {
        Err(BackendError::Control {
            command: "GET_STATEBLOB",
            result: 9,
        }) => {}
        other => panic!("expected a GET_STATEBLOB control error, got {other:?}"),
    }
    assert_eq!(ctrl.get_capability().unwrap().bits(), 0xFFFF);
    drop(ctrl);
    double.join();
}

/// A control-channel test double that answers like a complete swtpm
/// (capabilities `caps`, buffer 4096) until the client closes, and reports
/// each CANCEL_TPM_CMD on `cancelled`.
fn fake_swtpm_control(caps: u64, cancelled: Option<mpsc::Sender<()>>) -> ControlDouble {
    ControlDouble::new(move |mut s| {
        while let Some(command) = read_request(&mut s) {
            let reply: Vec<u8> = match command {
                1 => caps.to_be_bytes().to_vec(),
                17 => [0u32, 4096, 2808, 4096]
                    .iter()
                    .flat_map(|v| v.to_be_bytes())
                    .collect(),
                4 => vec![0, 0, 0, 0, 0, 0, 0, 0],
                9 => {
                    if let Some(tx) = &cancelled {
                        let _ = tx.send(());
                    }
                    vec![0, 0, 0, 0]
                }
                _ => vec![0, 0, 0, 0],
            };
            if s.write_all(&reply).is_err() {
                break;
            }
        }
    })
}

#[test]
fn start_up_against_a_double_names_the_missing_capability() {
    let double = fake_swtpm_control(0, None);
    match SwtpmBackend::attach(&double.path, DataChannel::SocketPair) {
        Err(BackendError::MissingCapability("INIT")) => {}
        other => panic!("expected MissingCapability(INIT), got {other:?}"),
    }
    double.join();
    // Everything but SET_DATAFD: fine for a data socket, not for a socketpair.
    let double = fake_swtpm_control(0xFFFF & !(1 << 12), None);
    match SwtpmBackend::attach(&double.path, DataChannel::SocketPair) {
        Err(BackendError::MissingCapability("SET_DATAFD")) => {}
        other => panic!("expected MissingCapability(SET_DATAFD), got {other:?}"),
    }
    double.join();
    a_new_backend_works();
}

#[test]
fn cancel_reaches_swtpm_while_execute_waits_for_the_response() {
    // The data double answers only after the control double has seen a
    // cancel. If execute held the control channel while waiting, the
    // cancel could not be sent and the answer would be SUCCESS after 5 s.
    let (cancel_tx, cancel_rx) = mpsc::channel();
    let control = fake_swtpm_control(0xFFFF, Some(cancel_tx));
    let data_dir = tempfile::tempdir().unwrap();
    let data_path = data_dir.path().join("data.sock");
    let listener = UnixListener::bind(&data_path).unwrap();
    let data_peer = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        read_command(&mut s);
        let answer = match cancel_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(()) => error_response(ResponseCode::CANCELED),
            Err(_) => error_response(ResponseCode::SUCCESS),
        };
        s.write_all(&answer).unwrap();
        let _ = s.read(&mut [0u8; 16]);
    });
    let config = SwtpmConfig {
        data: DataChannel::Unix(Some(data_path)),
        timeouts: Timeouts {
            command: Duration::from_secs(10),
            ..Timeouts::default()
        },
        ..SwtpmConfig::default()
    };
    let mut tpm = SwtpmBackend::attach_with_config(&control.path, &config).unwrap();
    let canceller = tpm.canceller().unwrap();
    let cancel = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        canceller.cancel()
    });
    let mut rsp = Vec::new();
    tpm.execute(0, &create_primary_rsa_3072(), &mut rsp)
        .unwrap();
    assert_eq!(rc(&rsp), ResponseCode::CANCELED);
    cancel.join().unwrap().unwrap();
    drop(tpm);
    data_peer.join().unwrap();
    control.join();
}
