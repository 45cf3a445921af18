//! The swtpm backend through the `Backend` trait, against a real swtpm.

use std::net::TcpListener;
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use vtpm_backend::swtpm::ctrl::cap;
use vtpm_backend::swtpm::{DataChannel, SavedState, SwtpmBackend, SwtpmConfig, SwtpmProcess};
use vtpm_backend::{Backend, BackendError};
use vtpm_client as client;
use vtpm_wire::{cc, consts, CommandBuilder, Header, ResponseCode};

fn spawn() -> SwtpmBackend {
    SwtpmBackend::spawn(SwtpmConfig::default()).expect("swtpm backend starts")
}

fn rc(response: &[u8]) -> ResponseCode {
    Header::parse_exact(response)
        .expect("well-formed response")
        .response_code()
}

fn run(tpm: &mut SwtpmBackend, locality: u8, command: &[u8]) -> Vec<u8> {
    let mut rsp = Vec::new();
    tpm.execute(locality, command, &mut rsp).expect("execute");
    rsp
}

fn started() -> SwtpmBackend {
    let mut tpm = spawn();
    let rsp = run(&mut tpm, 0, &client::startup(consts::TPM_SU_CLEAR));
    assert_eq!(rsp, [0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0, 0]);
    tpm
}

/// TPM2_CreatePrimary of an RSA signing key of `bits` in the null
/// hierarchy, empty password.
fn create_primary_rsa(bits: u16) -> Vec<u8> {
    let mut public = Vec::new();
    public.extend_from_slice(&consts::TPM_ALG_RSA.to_be_bytes());
    public.extend_from_slice(&consts::TPM_ALG_SHA256.to_be_bytes());
    // fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | sign
    public.extend_from_slice(&0x0004_0072u32.to_be_bytes());
    public.extend_from_slice(&0u16.to_be_bytes()); // authPolicy
    public.extend_from_slice(&consts::TPM_ALG_NULL.to_be_bytes()); // symmetric
    public.extend_from_slice(&consts::TPM_ALG_NULL.to_be_bytes()); // scheme
    public.extend_from_slice(&bits.to_be_bytes());
    public.extend_from_slice(&0u32.to_be_bytes()); // default exponent
    public.extend_from_slice(&0u16.to_be_bytes()); // unique
    CommandBuilder::with_sessions(cc::CREATE_PRIMARY)
        .u32(consts::TPM_RH_NULL)
        .password_session(&[])
        .tpm2b(&[0, 0, 0, 0]) // inSensitive: empty userAuth and data
        .tpm2b(&public)
        .tpm2b(&[]) // outsideInfo
        .u32(0) // creationPCR: no banks
        .finish()
}

fn flush(handle: u32) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::FLUSH_CONTEXT)
        .u32(handle)
        .finish()
}

fn pcr16(tpm: &mut SwtpmBackend) -> Vec<u8> {
    let rsp = run(tpm, 0, &client::pcr_read(consts::TPM_ALG_SHA256, &[16]));
    let out = client::parse_pcr_read(&rsp).expect("PCR_Read answer");
    out.digests.into_iter().next().expect("one digest")
}

#[test]
fn startup_then_get_random() {
    let mut tpm = started();
    assert_eq!(tpm.name(), "swtpm");
    assert_eq!(tpm.buffer_size(), 4096);
    let sizes = tpm.buffer_sizes();
    assert!(sizes.min <= sizes.max && sizes.in_use <= sizes.max);
    let rsp = run(&mut tpm, 0, &client::get_random(16));
    assert_eq!(client::parse_get_random(&rsp).unwrap().len(), 16);
}

#[test]
fn a_full_buffer_command_arrives_whole() {
    let mut tpm = started();
    // Trailing bytes are TPM_RC_SIZE; a truncated command would be
    // TPM_RC_COMMAND_SIZE.
    for size in [3969, 4096] {
        let rsp = run(&mut tpm, 0, &client::padded_get_random(size));
        assert_eq!(rsp.len(), 10);
        assert_eq!(rc(&rsp).0, 0x095, "size {size}");
    }
    // One byte more is refused before anything is sent...
    let mut rsp = Vec::new();
    match tpm.execute(0, &client::padded_get_random(4097), &mut rsp) {
        Err(BackendError::CommandTooLarge {
            size: 4097,
            max: 4096,
        }) => {}
        other => panic!("expected CommandTooLarge, got {other:?}"),
    }
    // ... so the stream is still in step.
    let rsp = run(&mut tpm, 0, &client::get_random(8));
    assert_eq!(client::parse_get_random(&rsp).unwrap().len(), 8);
}

#[test]
fn a_lying_header_is_answered_without_reaching_swtpm() {
    let mut tpm = started();
    let mut lying = client::get_random(8);
    lying[5] += 4; // claims 4 bytes that are not there
    let rsp = run(&mut tpm, 0, &lying);
    assert_eq!(rc(&rsp), ResponseCode::COMMAND_SIZE);
    let mut short = client::get_random(8);
    short.truncate(6);
    assert_eq!(rc(&run(&mut tpm, 0, &short)), ResponseCode::COMMAND_SIZE);
    let rsp = run(&mut tpm, 0, &client::get_random(8));
    assert_eq!(client::parse_get_random(&rsp).unwrap().len(), 8);
}

#[test]
fn every_locality_reaches_swtpm() {
    // PCRs 16..=23 that PCR_Extend accepts from each locality (PC Client
    // profile as libtpms implements it): a different set for each.
    let expected: [&[u32]; 5] = [
        &[16, 23],
        &[16, 20, 23],
        &[16, 17, 18, 19, 20, 21, 22, 23],
        &[16, 17, 18, 19, 20, 23],
        &[16, 17, 18, 23],
    ];
    let mut tpm = started();
    for (locality, allowed) in expected.iter().enumerate() {
        let locality = locality as u8;
        let mut accepted = Vec::new();
        for pcr in 16..=23 {
            let rsp = run(
                &mut tpm,
                locality,
                &client::pcr_extend_sha256(pcr, &[0xAA; 32]),
            );
            match rc(&rsp) {
                ResponseCode::SUCCESS => accepted.push(pcr),
                ResponseCode::LOCALITY => {}
                other => panic!("PCR {pcr} at locality {locality}: {other}"),
            }
        }
        assert_eq!(&accepted, allowed, "locality {locality}");
    }
    // Back to locality 0 after 4: the cached locality must not skip it.
    let rsp = run(&mut tpm, 0, &client::pcr_extend_sha256(17, &[0xAA; 32]));
    assert_eq!(rc(&rsp), ResponseCode::LOCALITY);
}

#[test]
fn rsa_3072_create_primary_completes() {
    let mut tpm = started();
    let start = Instant::now();
    let rsp = run(&mut tpm, 0, &create_primary_rsa(3072));
    assert_eq!(rc(&rsp), ResponseCode::SUCCESS);
    eprintln!(
        "CreatePrimary RSA-3072: {} bytes in {:?}",
        rsp.len(),
        start.elapsed()
    );
    // The public area carries the 384-byte modulus.
    assert!(rsp.len() > 10 + 4 + 384);
    let handle = u32::from_be_bytes([rsp[10], rsp[11], rsp[12], rsp[13]]);
    assert_eq!(handle >> 24, 0x80, "transient handle {handle:#x}");
    assert_eq!(rc(&run(&mut tpm, 0, &flush(handle))), ResponseCode::SUCCESS);
}

#[test]
fn cancel_from_another_thread_during_a_slow_command() {
    let mut tpm = started();
    let canceller = tpm.canceller().expect("swtpm can cancel");
    let barrier = Arc::new(Barrier::new(2));
    let cancel_thread = {
        let barrier = Arc::clone(&barrier);
        thread::spawn(move || {
            barrier.wait();
            thread::sleep(Duration::from_millis(20));
            canceller.cancel()
        })
    };
    barrier.wait();
    let rsp = run(&mut tpm, 0, &create_primary_rsa(3072));
    let code = rc(&rsp);
    assert!(
        code == ResponseCode::SUCCESS || code == ResponseCode::CANCELED,
        "CreatePrimary answered {code}"
    );
    cancel_thread
        .join()
        .expect("cancel thread")
        .expect("cancel succeeds");
    if code == ResponseCode::SUCCESS {
        let handle = u32::from_be_bytes([rsp[10], rsp[11], rsp[12], rsp[13]]);
        assert_eq!(rc(&run(&mut tpm, 0, &flush(handle))), ResponseCode::SUCCESS);
    }
    // Both channels are still in step.
    let rsp = run(&mut tpm, 0, &client::get_random(8));
    assert_eq!(client::parse_get_random(&rsp).unwrap().len(), 8);
}

#[test]
fn save_and_restore_into_a_fresh_swtpm_keeps_a_pcr() {
    let mut source = started();
    let rsp = run(&mut source, 0, &client::pcr_extend_sha256(16, &[0x42; 32]));
    assert_eq!(rc(&rsp), ResponseCode::SUCCESS);
    let extended = pcr16(&mut source);
    assert_ne!(extended, vec![0u8; 32]);
    let saved = source.save_state().unwrap();
    let blobs = SavedState::decode(&saved).unwrap();
    eprintln!(
        "saved state: {} bytes ({:?})",
        saved.len(),
        blobs
            .blobs
            .iter()
            .map(|b| (b.blob_type, b.data.len()))
            .collect::<Vec<_>>()
    );
    assert_eq!(blobs.blobs.len(), 3);
    drop(source);

    let mut target = spawn();
    // A malformed blob is refused before the TPM is touched.
    let mut broken = saved.clone();
    broken.truncate(saved.len() - 1);
    assert!(matches!(
        target.restore_state(&broken),
        Err(BackendError::State(_))
    ));
    target.restore_state(&saved).unwrap();
    // The volatile state came along: no Startup needed, PCR 16 as it was.
    assert_eq!(pcr16(&mut target), extended);
}

#[test]
fn established_flag_and_its_reset() {
    let mut tpm = started();
    assert!(!tpm.established().unwrap());
    tpm.with_control(|ctrl| {
        ctrl.hash_start()?;
        ctrl.hash_data(b"measured boot")?;
        ctrl.hash_end()
    })
    .unwrap();
    assert!(tpm.established().unwrap());
    assert!(matches!(
        tpm.reset_established(0),
        Err(BackendError::Control {
            command: "RESET_TPMESTABLISHED",
            result: 0x3D
        })
    ));
    tpm.reset_established(3).unwrap();
    assert!(!tpm.established().unwrap());
}

#[test]
fn reset_is_a_power_cycle() {
    let mut tpm = started();
    tpm.reset().unwrap();
    assert_eq!(tpm.buffer_size(), 4096);
    let rsp = run(&mut tpm, 0, &client::get_random(8));
    assert_eq!(rc(&rsp), ResponseCode::INITIALIZE);
    let rsp = run(&mut tpm, 0, &client::startup(consts::TPM_SU_CLEAR));
    assert_eq!(rc(&rsp), ResponseCode::SUCCESS);
}

#[test]
fn lock_storage_needs_its_capability() {
    let mut tpm = started();
    let result = tpm.lock_storage(0);
    if tpm.capabilities().contains(cap::LOCK_STORAGE) {
        result.unwrap();
    } else {
        // swtpm 0.7.1 has no LOCK_STORAGE.
        match result {
            Err(BackendError::MissingCapability("LOCK_STORAGE")) => {}
            other => panic!("expected MissingCapability, got {other:?}"),
        }
    }
    // Either way the backend still works.
    let rsp = run(&mut tpm, 0, &client::get_random(8));
    assert_eq!(rc(&rsp), ResponseCode::SUCCESS);
}

#[test]
fn info_reports_capabilities_sizes_and_json() {
    let mut tpm = spawn();
    let info = tpm.info().unwrap();
    assert!(info.capability_names().contains(&"SET_DATAFD"));
    assert_eq!(info.buffer.in_use, 4096);
    assert!(info.buffer.min <= info.buffer.max);
    let json = info.tpm_info_json.as_deref().expect("GET_INFO JSON");
    assert!(json.contains("TPMSpecification") && json.contains("TPMAttributes"));
    let version = info.version.as_deref().expect("version");
    assert!(
        version.starts_with(|c: char| c.is_ascii_digit()),
        "{version}"
    );
    let text = info.to_string();
    assert!(text.contains("4096 in use"), "{text}");
}

#[test]
fn unix_and_tcp_data_servers_work() {
    let unix = SwtpmConfig {
        data: DataChannel::Unix(None),
        ..SwtpmConfig::default()
    };
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let tcp = SwtpmConfig {
        data: DataChannel::Tcp(port),
        ..SwtpmConfig::default()
    };
    for config in [unix, tcp] {
        let kind = config.data.clone();
        let mut tpm = SwtpmBackend::spawn(config).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        let rsp = run(&mut tpm, 0, &client::startup(consts::TPM_SU_CLEAR));
        assert_eq!(rc(&rsp), ResponseCode::SUCCESS, "{kind:?}");
        let rsp = run(&mut tpm, 0, &client::padded_get_random(4096));
        assert_eq!(rc(&rsp).0, 0x095, "{kind:?}");
    }
}

#[test]
fn attach_to_a_swtpm_started_elsewhere() {
    let mut process = SwtpmProcess::spawn(&SwtpmConfig::default()).unwrap();
    let ctrl_path = process.ctrl_path().to_path_buf();
    let config = SwtpmConfig {
        buffer_size: Some(3000),
        ..SwtpmConfig::default()
    };
    {
        let mut tpm = SwtpmBackend::attach_with_config(&ctrl_path, &config).unwrap();
        assert!(tpm.pid().is_none());
        assert_eq!(tpm.buffer_size(), 3000);
        let rsp = run(&mut tpm, 0, &client::startup(consts::TPM_SU_CLEAR));
        assert_eq!(rc(&rsp), ResponseCode::SUCCESS);
        let mut rsp = Vec::new();
        assert!(matches!(
            tpm.execute(0, &client::padded_get_random(3001), &mut rsp),
            Err(BackendError::CommandTooLarge { max: 3000, .. })
        ));
    }
    // Dropping the attached backend sent SHUTDOWN, as QEMU does.
    assert!(process.wait_exit(Duration::from_secs(5)).unwrap().is_some());
}

#[test]
fn a_missing_binary_says_how_to_install_swtpm() {
    let config = SwtpmConfig {
        binary: "/nonexistent/vtpm-test/swtpm".into(),
        ..SwtpmConfig::default()
    };
    match SwtpmBackend::spawn(config) {
        Err(BackendError::NotInstalled(text)) => {
            assert!(text.contains("apt-get install swtpm swtpm-tools"), "{text}")
        }
        other => panic!("expected NotInstalled, got {other:?}"),
    }
}

#[test]
fn a_failed_start_reports_the_log() {
    // swtpm cannot bind a port that is taken: it exits during start.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = SwtpmConfig {
        data: DataChannel::Tcp(taken.local_addr().unwrap()),
        ..SwtpmConfig::default()
    };
    match SwtpmBackend::spawn(config) {
        Err(BackendError::Process(text)) => {
            assert!(text.contains("exited during start"), "{text}");
            assert!(text.contains("log ends with"), "{text}");
        }
        other => panic!("expected a Process error, got {other:?}"),
    }
}

#[test]
fn drop_stops_and_reaps_swtpm() {
    let tpm = started();
    let pid = tpm.pid().expect("spawned");
    let proc_dir = format!("/proc/{pid}");
    assert!(std::path::Path::new(&proc_dir).exists());
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        drop(tpm);
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("drop finished in time");
    assert!(
        !std::path::Path::new(&proc_dir).exists(),
        "swtpm {pid} still exists (not reaped)"
    );
}

#[test]
fn a_given_state_directory_keeps_the_tpm_state() {
    let dir = tempfile::tempdir().unwrap();
    let config = SwtpmConfig {
        state_dir: Some(dir.path().to_path_buf()),
        ..SwtpmConfig::default()
    };
    {
        let mut tpm = SwtpmBackend::spawn(config.clone()).unwrap();
        let rsp = run(&mut tpm, 0, &client::startup(consts::TPM_SU_CLEAR));
        assert_eq!(rc(&rsp), ResponseCode::SUCCESS);
    }
    // libtpms writes its permanent state when the TPM is first started.
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.iter().any(|f| f.contains("permall")),
        "state files: {files:?}"
    );
    let mut again = SwtpmBackend::spawn(config).unwrap();
    let rsp = run(&mut again, 0, &client::startup(consts::TPM_SU_CLEAR));
    assert_eq!(rc(&rsp), ResponseCode::SUCCESS);
}
