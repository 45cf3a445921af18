//! The whole path against a real TPM: guest CRB driver → CRB bus → device
//! → backend worker → swtpm → and back. Each test spawns its own swtpm with
//! a fresh state directory (swtpm 0.7.1 / libtpms 0.9: a 4096-byte buffer).
//!
//! Every test body runs under a wall-clock bound as well as the driver's
//! own timeouts, so a wedged path fails the test instead of hanging it.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};
use sha2::{Digest, Sha256};
use vtpm_backend::swtpm::{SwtpmBackend, SwtpmConfig};
use vtpm_backend::BackendError;
use vtpm_client as client;
use vtpm_client::Response;
use vtpm_crb::ChunkPolicy;
use vtpm_guest::{CrbDriver, DriverError, Mmio, Timeouts, Transfer};
use vtpm_platform::{CrbBus, Execution, Platform, PlatformConfig};
use vtpm_wire::{cc, consts, CommandBuilder, Header, Reader, ResponseCode};

/// swtpm 0.7.1's largest (and default) buffer.
const SWTPM_BUFFER: usize = 4096;
/// QEMU's CRB data window: 4 KiB page minus the 0x80 bytes of registers.
const QEMU_WINDOW: usize = 3968;
/// TPM_RC_SIZE: a command with trailing bytes, so every byte arrived
/// (a truncated one answers TPM_RC_COMMAND_SIZE).
const RC_SIZE: ResponseCode = ResponseCode(0x095);
/// INTF_ID (low) and its CapCRBChunk bit.
const INTF_ID_LO: u64 = 0x30;
const INTF_ID_CAP_CRB_CHUNK: u32 = 1 << 10;
/// CTRL_STS and its tpmSts (fatal error) bit, in locality 0's page.
const CTRL_STS: u64 = 0x44;
const CTRL_STS_TPM_STS: u32 = 1 << 0;
/// CTRL_CANCEL in locality 0's page.
const CTRL_CANCEL: u64 = 0x48;
/// TPM_PT_FAMILY_INDICATOR's value on a TPM 2.0: "2.0\0".
const FAMILY_2_0: u32 = 0x322E_3000;

/// Runs `body` on its own thread and fails the test if it takes longer
/// than `limit`. A panic in `body` is re-raised here unchanged.
fn bounded<T: Send + 'static>(limit: Duration, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, finished) = mpsc::channel();
    let worker = thread::spawn(move || {
        // The receiver may be gone after a timeout; nothing to tell then.
        let _ = done.send(body());
    });
    match finished.recv_timeout(limit) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the body ended without a result or a panic"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test still running after {limit:?}"),
    }
}

fn swtpm() -> SwtpmBackend {
    let tpm = SwtpmBackend::spawn(SwtpmConfig::default()).expect("swtpm starts");
    assert_eq!(tpm.buffer_sizes().in_use as usize, SWTPM_BUFFER);
    tpm
}

/// A platform on a new swtpm; see [`platform_on`].
fn platform(window_size: usize) -> Platform {
    platform_on(swtpm(), window_size)
}

/// A platform on `tpm`, run as a VMM would: commands on the worker
/// thread, CapCRBChunk when the buffer exceeds the window.
fn platform_on(tpm: SwtpmBackend, window_size: usize) -> Platform {
    Platform::new(
        Box::new(tpm),
        PlatformConfig {
            window_size,
            chunking: ChunkPolicy::Auto,
            localities: 5,
            execution: Execution::Worker,
            ..PlatformConfig::default()
        },
    )
    .expect("platform on swtpm")
}

/// A driver whose command bound is `command` rather than five minutes, so
/// a lost completion fails fast.
fn driver_with_command_bound(platform: &Platform, command: Duration) -> CrbDriver<CrbBus> {
    let mut driver = platform.driver();
    driver.set_timeouts(Timeouts {
        command,
        ..Timeouts::default()
    });
    driver
}

fn driver(platform: &Platform) -> CrbDriver<CrbBus> {
    driver_with_command_bound(platform, Duration::from_secs(30))
}

fn rc(response: &[u8]) -> ResponseCode {
    Header::parse_exact(response)
        .expect("a well-formed response")
        .response_code()
}

fn transmit(driver: &mut CrbDriver<CrbBus>, locality: u8, command: &[u8]) -> Vec<u8> {
    driver
        .transmit(locality, command)
        .unwrap_or_else(|e| panic!("command {:#x}: {e}", code_of(command)))
}

fn code_of(command: &[u8]) -> u32 {
    Header::parse(command).map(|h| h.code).unwrap_or(0)
}

fn startup(driver: &mut CrbDriver<CrbBus>) {
    let rsp = transmit(driver, 0, &client::startup(consts::TPM_SU_CLEAR));
    assert_eq!(rsp, [0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0, 0]);
}

/// The number of window pieces `bytes` take.
fn pieces(bytes: usize, window: usize) -> usize {
    bytes.div_ceil(window)
}

/// Checks the piece counts of the last transfer against its sizes.
fn assert_pieces(transfer: Transfer, window: usize, what: &str) {
    assert_eq!(
        transfer.chunks_sent,
        pieces(transfer.request_bytes, window),
        "{what}: command pieces"
    );
    assert_eq!(
        transfer.chunks_received,
        pieces(transfer.response_bytes, window),
        "{what}: response pieces"
    );
}

/// A PCR value after extending `old` with `digest` in the SHA-256 bank.
fn extended(old: &[u8; 32], digest: &[u8; 32]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(old);
    hash.update(digest);
    hash.finalize().into()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn read_pcr(driver: &mut CrbDriver<CrbBus>, pcr: u8) -> [u8; 32] {
    let rsp = transmit(driver, 0, &client::pcr_read(consts::TPM_ALG_SHA256, &[pcr]));
    let out = client::parse_pcr_read(&rsp).expect("a PCR_Read answer");
    let mut bitmap = vec![0u8; 3];
    bitmap[usize::from(pcr / 8)] = 1 << (pcr % 8);
    assert_eq!(out.selection, [(consts::TPM_ALG_SHA256, bitmap)]);
    assert_eq!(out.digests.len(), 1, "one digest for PCR {pcr}");
    out.digests[0]
        .as_slice()
        .try_into()
        .expect("a 32-byte SHA-256 PCR")
}

fn extend_pcr(driver: &mut CrbDriver<CrbBus>, locality: u8, pcr: u8, digest: &[u8; 32]) {
    let rsp = transmit(
        driver,
        locality,
        &client::pcr_extend_sha256(u32::from(pcr), digest),
    );
    assert_eq!(rc(&rsp), ResponseCode::SUCCESS, "PCR_Extend of PCR {pcr}");
}

/// TPM2_CreatePrimary in the owner hierarchy (empty password) of an
/// RSA-3072 restricted decryption key, the usual storage root. Its key
/// generation keeps swtpm busy for tens to hundreds of milliseconds (the
/// prime search varies). A primary key is derived from the hierarchy seed
/// and the template, so each `variant` (put in the template's `unique`
/// field) is a different key with its own generation time.
fn create_primary_rsa_3072_storage_key(variant: u8) -> Vec<u8> {
    // fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | noDA |
    // restricted | decrypt.
    const STORAGE_KEY_ATTRIBUTES: u32 =
        (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 10) | (1 << 16) | (1 << 17);
    let public = CommandBuilder::no_sessions(0)
        .u16(consts::TPM_ALG_RSA)
        .u16(consts::TPM_ALG_SHA256)
        .u32(STORAGE_KEY_ATTRIBUTES)
        .tpm2b(&[]) // authPolicy
        .u16(consts::TPM_ALG_AES) // symmetric: AES-128-CFB, as a storage key needs
        .u16(128)
        .u16(consts::TPM_ALG_CFB)
        .u16(consts::TPM_ALG_NULL) // scheme
        .u16(3072)
        .u32(0) // default exponent
        .tpm2b(&[variant]) // unique
        .finish();
    // The builder starts every buffer with a 10-byte header; a TPMT_PUBLIC
    // has none.
    let public = &public[vtpm_wire::HEADER_SIZE..];
    CommandBuilder::with_sessions(cc::CREATE_PRIMARY)
        .u32(consts::TPM_RH_OWNER)
        .password_session(&[])
        .tpm2b(&[0, 0, 0, 0]) // inSensitive: empty userAuth and data
        .tpm2b(public)
        .tpm2b(&[]) // outsideInfo
        .u32(0) // creationPCR: no banks
        .finish()
}

/// The handle and RSA modulus of a successful CreatePrimary answer.
fn created_rsa_key(response: &[u8]) -> (u32, Vec<u8>) {
    let body = Response::parse(response)
        .expect("a whole response")
        .success_body()
        .expect("CreatePrimary succeeded");
    let mut r = Reader::new(body);
    let handle = r.u32().expect("objectHandle");
    let _parameter_size = r.u32().expect("parameterSize");
    let mut public = Reader::new(r.tpm2b().expect("outPublic"));
    assert_eq!(public.u16().unwrap(), consts::TPM_ALG_RSA);
    assert_eq!(public.u16().unwrap(), consts::TPM_ALG_SHA256);
    let _attributes = public.u32().unwrap();
    let _auth_policy = public.tpm2b().unwrap();
    assert_eq!(public.u16().unwrap(), consts::TPM_ALG_AES);
    let _aes_bits = public.u16().unwrap();
    let _aes_mode = public.u16().unwrap();
    assert_eq!(public.u16().unwrap(), consts::TPM_ALG_NULL);
    assert_eq!(public.u16().unwrap(), 3072, "keyBits");
    let _exponent = public.u32().unwrap();
    let modulus = public.tpm2b().unwrap().to_vec();
    public.finish().expect("nothing after the modulus");
    (handle, modulus)
}

fn flush(driver: &mut CrbDriver<CrbBus>, handle: u32) {
    let command = CommandBuilder::no_sessions(cc::FLUSH_CONTEXT)
        .u32(handle)
        .finish();
    assert_eq!(rc(&transmit(driver, 0, &command)), ResponseCode::SUCCESS);
}

/// The check every recovery ends with: the TPM answers a GetRandom.
fn get_random_works(driver: &mut CrbDriver<CrbBus>) {
    let rsp = transmit(driver, 0, &client::get_random(16));
    assert_eq!(client::parse_get_random(&rsp).unwrap().len(), 16);
}

fn sigkill(pid: u32) {
    let pid = Pid::from_raw(pid as i32).expect("a real pid");
    kill_process(pid, Signal::KILL).expect("SIGKILL delivered");
}

/// Polls until the device has a command with the backend.
fn wait_until_executing(platform: &Platform) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !platform.with_device(|d| d.is_executing()) {
        assert!(Instant::now() < deadline, "the command never started");
        thread::sleep(Duration::from_micros(200));
    }
}

/// How long a key generation runs before a test acts on it: the worker
/// hands the command to swtpm within microseconds, and swtpm 0.7.1 needed
/// 35 ms or more for an RSA-3072 key in every run seen.
const SETTLE: Duration = Duration::from_millis(5);
/// Keys tried before giving up on finding one that outlasts [`SETTLE`].
const KEY_GENERATION_ATTEMPTS: u8 = 5;

/// What a guest thread's transmit gave back, with its driver.
type GuestOutcome = (CrbDriver<CrbBus>, Result<Vec<u8>, DriverError>);

/// Sends CreatePrimary of RSA-3072 key `variant` from a guest thread and
/// returns once the device has had it for [`SETTLE`].
fn start_key_generation(
    p: &Platform,
    mut driver: CrbDriver<CrbBus>,
    variant: u8,
) -> thread::JoinHandle<GuestOutcome> {
    let guest = thread::spawn(move || {
        let result = driver.transmit(0, &create_primary_rsa_3072_storage_key(variant));
        (driver, result)
    });
    wait_until_executing(p);
    thread::sleep(SETTLE);
    guest
}

/// QEMU's swtpm golden check (tests/qtest/tpm-util.c, tpm-tests.c): the
/// digest it extends PCR 10 with ("test", zero-padded) ...
const QEMU_DIGEST: [u8; 32] = *b"test\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
/// ... the PCR_Extend answer it expects ...
const QEMU_EXTEND_RESPONSE: [u8; 19] = [
    0x80, 0x02, 0, 0, 0, 0x13, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0,
];
/// ... and PCR 10 afterwards, which it reads back.
const QEMU_PCR10: [u8; 32] = [
    0xf6, 0x85, 0x98, 0xe5, 0x86, 0x8d, 0xe6, 0x8b, 0x97, 0x29, 0x99, 0x60, 0xf2, 0x71, 0x7d, 0x17,
    0x67, 0x89, 0xa4, 0x2f, 0x9a, 0xae, 0xa8, 0xc7, 0xb7, 0xaa, 0x79, 0xa8, 0x62, 0x56, 0xc1, 0xde,
];

#[test]
fn golden_pcr_extend_and_read_match_the_host_digest() {
    bounded(Duration::from_secs(20), || {
        let p = platform(QEMU_WINDOW);
        let mut driver = driver(&p);
        startup(&mut driver);
        // PCR 10: zero after Startup(CLEAR), extendable from locality 0.
        assert_eq!(read_pcr(&mut driver, 10), [0u8; 32]);
        let rsp = transmit(&mut driver, 0, &client::pcr_extend_sha256(10, &QEMU_DIGEST));
        assert_eq!(rsp, QEMU_EXTEND_RESPONSE);
        let expected = extended(&[0u8; 32], &QEMU_DIGEST);
        assert_eq!(
            expected, QEMU_PCR10,
            "the host's SHA-256 agrees with QEMU's value"
        );
        assert_eq!(read_pcr(&mut driver, 10), expected);
        // A second measurement chains onto the first.
        let digest = sha256(b"second measurement");
        extend_pcr(&mut driver, 0, 10, &digest);
        assert_eq!(read_pcr(&mut driver, 10), extended(&expected, &digest));
    });
}

#[test]
fn full_frame_reaches_swtpm_whole_in_two_pieces() {
    bounded(Duration::from_secs(20), || {
        let p = platform(QEMU_WINDOW);
        assert!(
            p.with_device(|d| d.crb().unwrap().chunking_advertised()),
            "swtpm's 4096-byte buffer exceeds the 3968-byte window"
        );
        assert_eq!(
            p.with_device(|d| d.crb().unwrap().config().backend_buffer),
            SWTPM_BUFFER
        );
        let intf_id = p.bus().read_u32(INTF_ID_LO);
        assert_ne!(intf_id & INTF_ID_CAP_CRB_CHUNK, 0, "INTF_ID {intf_id:#x}");
        let mut driver = driver(&p);
        startup(&mut driver);
        let rsp = transmit(&mut driver, 0, &client::padded_get_random(SWTPM_BUFFER));
        assert_eq!(rsp.len(), vtpm_wire::HEADER_SIZE);
        assert_eq!(rc(&rsp), RC_SIZE, "every one of the 4096 bytes arrived");
        let transfer = driver.last_transfer();
        assert_eq!(transfer.chunks_sent, 2);
        assert_eq!(transfer.chunks_received, 1);
        // The stream is still in step.
        get_random_works(&mut driver);
    });
}

/// Startup, GetRandom, PCR_Extend/Read, two GetCapability queries and a
/// full-buffer command through a small window: every exchange moves the
/// piece count its sizes call for.
fn workload_through_window(window: usize) {
    let p = platform(window);
    assert!(p.with_device(|d| d.crb().unwrap().chunking_advertised()));
    let mut driver = driver(&p);
    startup(&mut driver);

    let rsp = transmit(&mut driver, 0, &client::get_random(32));
    assert_eq!(client::parse_get_random(&rsp).unwrap().len(), 32);
    assert_pieces(driver.last_transfer(), window, "GetRandom");

    let digest = sha256(b"workload");
    extend_pcr(&mut driver, 0, 16, &digest);
    assert_pieces(driver.last_transfer(), window, "PCR_Extend");
    assert_eq!(read_pcr(&mut driver, 16), extended(&[0; 32], &digest));
    assert_pieces(driver.last_transfer(), window, "PCR_Read");

    let rsp = transmit(
        &mut driver,
        0,
        &client::get_capability(
            consts::TPM_CAP_TPM_PROPERTIES,
            consts::TPM_PT_MAX_COMMAND_SIZE,
            2,
        ),
    );
    assert_eq!(
        client::parse_tpm_properties(&rsp).unwrap(),
        [
            (consts::TPM_PT_MAX_COMMAND_SIZE, SWTPM_BUFFER as u32),
            (consts::TPM_PT_MAX_RESPONSE_SIZE, SWTPM_BUFFER as u32),
        ]
    );
    assert_pieces(driver.last_transfer(), window, "GetCapability (sizes)");

    let rsp = transmit(
        &mut driver,
        0,
        &client::get_capability(
            consts::TPM_CAP_TPM_PROPERTIES,
            consts::TPM_PT_FAMILY_INDICATOR,
            64,
        ),
    );
    let fixed = client::parse_tpm_properties(&rsp).unwrap();
    assert_eq!(
        fixed.first(),
        Some(&(consts::TPM_PT_FAMILY_INDICATOR, FAMILY_2_0))
    );
    assert!(fixed.contains(&(consts::TPM_PT_MAX_COMMAND_SIZE, SWTPM_BUFFER as u32)));
    let transfer = driver.last_transfer();
    assert_pieces(transfer, window, "GetCapability (fixed properties)");
    assert!(
        transfer.chunks_received > 1,
        "{} response bytes in one {window}-byte piece",
        transfer.response_bytes
    );

    let rsp = transmit(&mut driver, 0, &client::padded_get_random(SWTPM_BUFFER));
    assert_eq!(rc(&rsp), RC_SIZE, "every one of the 4096 bytes arrived");
    let transfer = driver.last_transfer();
    assert_pieces(transfer, window, "full frame");
    assert!(transfer.chunks_sent > 1);

    get_random_works(&mut driver);
}

#[test]
fn workload_through_a_64_byte_window() {
    bounded(Duration::from_secs(20), || workload_through_window(64));
}

#[test]
fn workload_through_a_256_byte_window() {
    bounded(Duration::from_secs(20), || workload_through_window(256));
}

#[test]
fn each_locality_reaches_swtpm() {
    bounded(Duration::from_secs(20), || {
        // The PCRs among 16..=23 that PCR_Extend accepts from each locality
        // (libtpms's PC Client profile); every other one answers
        // TPM_RC_LOCALITY. Distinct per locality, so each row proves the
        // locality the guest used reached swtpm.
        let expected: [&[u8]; 5] = [
            &[16, 23],
            &[16, 20, 23],
            &[16, 17, 18, 19, 20, 21, 22, 23],
            &[16, 17, 18, 19, 20, 23],
            &[16, 17, 18, 23],
        ];
        let p = platform(QEMU_WINDOW);
        let mut driver = driver(&p);
        startup(&mut driver);
        let digest = sha256(b"locality");
        for (locality, allowed) in (0u8..).zip(expected) {
            let mut accepted = Vec::new();
            for pcr in 16..=23u8 {
                let command = client::pcr_extend_sha256(u32::from(pcr), &digest);
                let rsp = transmit(&mut driver, locality, &command);
                match rc(&rsp) {
                    ResponseCode::SUCCESS => accepted.push(pcr),
                    ResponseCode::LOCALITY => {}
                    other => panic!("PCR {pcr} from locality {locality}: {other}"),
                }
            }
            assert_eq!(accepted, allowed, "locality {locality}");
            assert_eq!(p.with_device(|d| d.active_locality()), Some(locality));
            // A locality is granted only while no other one holds the device.
            driver.relinquish_locality(locality).unwrap();
            assert_eq!(p.with_device(|d| d.active_locality()), None);
        }
        // Back at locality 0 after 4: swtpm must be told again.
        let rsp = transmit(&mut driver, 0, &client::pcr_extend_sha256(17, &digest));
        assert_eq!(rc(&rsp), ResponseCode::LOCALITY);
    });
}

#[test]
fn rsa_3072_create_primary_completes_through_a_small_window() {
    bounded(Duration::from_secs(40), || {
        // A 256-byte window makes the ~600-byte answer come in pieces.
        let window = 256;
        let p = platform(window);
        let mut driver = driver(&p);
        startup(&mut driver);
        let started = Instant::now();
        let rsp = transmit(&mut driver, 0, &create_primary_rsa_3072_storage_key(0));
        let took = started.elapsed();
        assert_eq!(rc(&rsp), ResponseCode::SUCCESS);
        let (handle, modulus) = created_rsa_key(&rsp);
        eprintln!(
            "CreatePrimary RSA-3072: {} response bytes in {took:?}",
            rsp.len()
        );
        assert_eq!(handle >> 24, 0x80, "a transient handle: {handle:#x}");
        assert_eq!(modulus.len(), 384);
        assert_ne!(modulus[0] & 0x80, 0, "a full 3072-bit modulus");
        let transfer = driver.last_transfer();
        assert_pieces(transfer, window, "CreatePrimary");
        assert!(transfer.chunks_received > 1);
        flush(&mut driver, handle);
        get_random_works(&mut driver);
    });
}

#[test]
fn cancel_during_a_slow_create_primary_completes_the_command() {
    bounded(Duration::from_secs(40), || {
        let p = platform(QEMU_WINDOW);
        let mut driver = driver(&p);
        startup(&mut driver);
        for variant in 0.. {
            assert!(
                variant < KEY_GENERATION_ATTEMPTS,
                "every key generation ended within {SETTLE:?}"
            );
            let guest = start_key_generation(&p, driver, variant);
            let still_running = p.with_device(|d| d.is_executing());
            let mut cancel_took = Duration::ZERO;
            if still_running {
                let mut other = p.bus();
                let cancel_write = Instant::now();
                other.write_u32(CTRL_CANCEL, 1);
                cancel_took = cancel_write.elapsed();
            }
            let (returned, result) = guest.join().expect("guest thread");
            driver = returned;
            let rsp = result.expect("the command completes");
            let code = rc(&rsp);
            if code == ResponseCode::SUCCESS {
                let (handle, _) = created_rsa_key(&rsp);
                flush(&mut driver, handle);
            }
            if !still_running {
                continue;
            }
            eprintln!(
                "CreatePrimary after CTRL_CANCEL: {code}; the cancel write took {cancel_took:?}"
            );
            // swtpm decides by itself whether the cancel came in time, so
            // either answer is right here; tests/cancel.rs checks
            // TPM_RC_CANCELED deterministically with the simulator.
            assert!(
                code == ResponseCode::SUCCESS || code == ResponseCode::CANCELED,
                "CreatePrimary answered {code}"
            );
            assert!(p.take_backend_error().is_none());
            assert_eq!(p.bus().read_u32(CTRL_STS) & CTRL_STS_TPM_STS, 0);
            break;
        }
        // Data and control channels are both still in step.
        get_random_works(&mut driver);
    });
}

#[test]
fn swtpm_killed_mid_command_is_fatal_then_a_new_swtpm_works() {
    bounded(Duration::from_secs(30), || {
        let tpm = swtpm();
        let pid = tpm.pid().expect("a spawned swtpm");
        let mut p = platform_on(tpm, QEMU_WINDOW);
        let mut driver = driver_with_command_bound(&p, Duration::from_secs(10));
        startup(&mut driver);
        for variant in 0.. {
            assert!(
                variant < KEY_GENERATION_ATTEMPTS,
                "every key generation ended within {SETTLE:?}"
            );
            let guest = start_key_generation(&p, driver, variant);
            // Under the platform lock the device cannot complete meanwhile,
            // so the kill lands while the command is with the backend.
            let killed = p.with_device(|d| {
                let executing = d.is_executing();
                if executing {
                    sigkill(pid);
                }
                executing
            });
            let killed_at = Instant::now();
            let (mut returned, result) = guest.join().expect("guest thread");
            if !killed {
                let (handle, _) = created_rsa_key(&result.expect("CreatePrimary"));
                flush(&mut returned, handle);
                driver = returned;
                continue;
            }
            assert_eq!(result, Err(DriverError::Fatal));
            assert!(
                killed_at.elapsed() < Duration::from_secs(3),
                "the guest learnt of the kill after {:?}",
                killed_at.elapsed()
            );
            break;
        }
        assert_ne!(p.bus().read_u32(CTRL_STS) & CTRL_STS_TPM_STS, 0);
        match p.take_backend_error() {
            Some(BackendError::ChannelClosed(text)) => {
                assert!(text.contains("exited"), "{text}")
            }
            other => panic!("expected ChannelClosed, got {other:?}"),
        }
        recover_with_a_new_swtpm(&mut p);
    });
}

#[test]
fn swtpm_killed_while_idle_is_fatal_promptly_then_a_new_swtpm_works() {
    bounded(Duration::from_secs(20), || {
        let tpm = swtpm();
        let pid = tpm.pid().expect("a spawned swtpm");
        let mut p = platform_on(tpm, QEMU_WINDOW);
        let mut driver = driver_with_command_bound(&p, Duration::from_secs(10));
        startup(&mut driver);
        get_random_works(&mut driver);
        sigkill(pid);
        let started = Instant::now();
        assert_eq!(
            driver.transmit(0, &client::get_random(8)),
            Err(DriverError::Fatal)
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "Fatal after {:?}",
            started.elapsed()
        );
        assert!(matches!(
            p.take_backend_error(),
            Some(BackendError::ChannelClosed(_))
        ));
        // The device stays fatal: later commands fail at once without a
        // backend round trip.
        assert_eq!(
            driver.transmit(0, &client::get_random(8)),
            Err(DriverError::Fatal)
        );
        recover_with_a_new_swtpm(&mut p);
    });
}

/// Replaces the dead swtpm and checks that the platform is usable again
/// from a fresh guest driver.
fn recover_with_a_new_swtpm(p: &mut Platform) {
    p.replace_backend(Box::new(swtpm()))
        .expect("replace backend");
    assert_eq!(p.bus().read_u32(CTRL_STS) & CTRL_STS_TPM_STS, 0);
    let mut driver = driver(p);
    startup(&mut driver);
    get_random_works(&mut driver);
    assert!(p.take_backend_error().is_none());
}
