//! The platform hosting the TIS/FIFO interface: the same backends, worker,
//! saving and migration as CRB, driven by the guest TIS driver.

use std::time::Duration;

use sha2::{Digest, Sha256};
use vtpm_backend::sim::SimBackend;
use vtpm_backend::swtpm::{SwtpmBackend, SwtpmConfig};
use vtpm_backend::testing::FnBackend;
use vtpm_backend::Backend;
use vtpm_client as pqc;
use vtpm_client::{self as commands, Response};
use vtpm_guest::{Mmio, TisDriver, TisTransmitOptions};
use vtpm_platform::{Execution, Interface, MigratingBus, Platform, PlatformConfig, PlatformError};
use vtpm_sim::SimConfig;
use vtpm_wire::consts::*;
use vtpm_wire::structures::{MlDsaParameterSet, PublicArea};
use vtpm_wire::ResponseCode;

fn tis(execution: Execution) -> PlatformConfig {
    PlatformConfig {
        interface: Interface::Tis,
        execution,
        ..PlatformConfig::default()
    }
}

fn echo() -> Box<dyn Backend> {
    Box::new(FnBackend::echo(8192))
}

fn sim() -> Box<dyn Backend> {
    Box::new(
        SimBackend::new(SimConfig {
            rng_seed: Some([9; 32]),
            ..SimConfig::default()
        })
        .unwrap(),
    )
}

fn swtpm() -> Box<dyn Backend> {
    Box::new(SwtpmBackend::spawn(SwtpmConfig::default()).expect("spawn swtpm"))
}

fn rc(response: &[u8]) -> ResponseCode {
    Response::parse(response)
        .expect("well-formed response")
        .rc()
}

#[test]
fn a_tis_platform_moves_8k_commands_and_responses_whole_on_worker_and_inline() {
    for execution in [Execution::Worker, Execution::Inline] {
        let p = Platform::new(echo(), tis(execution)).unwrap();
        assert_eq!(p.with_device(|d| d.interface()), Interface::Tis);
        let mut driver = p.tis_driver();
        for size in [10, 4097, 8192] {
            let cmd = commands::padded_get_random(size);
            let mut out = Vec::new();
            let moved = driver
                .transmit_with(0, &cmd, &mut out, TisTransmitOptions::default())
                .unwrap();
            assert_eq!(out, cmd, "{execution:?} {size}");
            assert!(moved.bursts_sent >= 1 && moved.bursts_received >= 1);
        }
        assert_eq!(p.with_device(|d| d.tis().unwrap().held_bytes()), 0);
    }
}

#[test]
fn every_access_migrates_over_tis_and_the_guest_sees_the_same_bytes() {
    for execution in [Execution::Worker, Execution::Inline] {
        let platform = Platform::new(echo(), tis(execution)).unwrap();
        let bus = MigratingBus::new(platform, Box::new(|| Ok(echo())));
        let mut driver = TisDriver::new(bus);
        for size in [10, 300, 5000] {
            let cmd = commands::padded_get_random(size);
            assert_eq!(driver.transmit(0, &cmd).unwrap(), cmd, "{execution:?}");
        }
        let bus = driver.mmio();
        assert!(bus.error().is_none(), "{:?}", bus.error());
        assert!(bus.migrations() > 100, "{} migrations", bus.migrations());
    }
}

#[test]
fn a_tis_save_records_its_interface_and_does_not_restore_as_crb() {
    let p = Platform::new(echo(), tis(Execution::Worker)).unwrap();
    let mut bus = p.bus();
    bus.write(0x00, &[0x02]); // TPM_ACCESS.requestUse
    bus.write(0x18, &[0x40]); // TPM_STS.commandReady
    let cmd = commands::get_random(4);
    bus.write(0x80, &cmd[..5]); // XDATA_FIFO: mid-reception
    let saved = p.save(Duration::from_secs(5)).unwrap();
    drop(p);
    let wrong = Platform::restore(&saved, echo(), PlatformConfig::default());
    assert!(matches!(
        wrong,
        Err(PlatformError::InterfaceMismatch {
            snapshot: Interface::Tis,
            config: Interface::Crb
        })
    ));
    let q = Platform::restore(&saved, echo(), tis(Execution::Worker)).unwrap();
    let mut bus = q.bus();
    bus.write(0x80, &cmd[5..]);
    bus.write(0x18, &[0x20]); // tpmGo
    let mut driver = TisDriver::new(bus);
    // The driver's next transmit starts over; first read the echo back.
    let mut sts = [0u8; 1];
    while sts[0] & 0x10 == 0 {
        // dataAvail; the worker answers at once (the echo double).
        driver.mmio().read(0x18, &mut sts);
        std::thread::yield_now();
    }
    let mut rsp = vec![0u8; cmd.len()];
    driver.mmio().read(0x80, &mut rsp);
    assert_eq!(rsp, cmd[..], "the command received across the restore");
}

/// ML-DSA-87: a signature response of 4655 bytes and a verify
/// command of about 4.7 KB, both over TIS's 4096-byte limit in QEMU.
fn mldsa87_sign_and_verify(driver: &mut TisDriver<impl Mmio>) {
    let set = MlDsaParameterSet::MlDsa87;
    assert_eq!(
        rc(&driver
            .transmit(0, &commands::startup(TPM_SU_CLEAR))
            .unwrap()),
        ResponseCode::SUCCESS
    );
    let created = driver
        .transmit(
            0,
            &pqc::create_primary(TPM_RH_OWNER, b"", &PublicArea::mldsa(set), b""),
        )
        .unwrap();
    let handle = pqc::parse_create_primary(&created).unwrap().handle;
    let message: [u8; 32] = Sha256::digest(b"over tis").into();
    // The v1.85 sign sequence: the whole message in SignSequenceComplete.
    let started = driver
        .transmit(0, &pqc::sign_sequence_start(handle, b"", b""))
        .unwrap();
    let sequence = pqc::parse_sequence_start(&started).unwrap();
    let signed = driver
        .transmit(
            0,
            &pqc::sign_sequence_complete(sequence, b"", handle, b"", &message),
        )
        .unwrap();
    assert!(signed.len() >= 4650, "{}-byte response", signed.len());
    assert_eq!(driver.last_transfer().response_bytes, signed.len());
    let sig = pqc::parse_sign(&signed).unwrap();
    assert_eq!(sig.bytes().len(), set.signature_size());
    // The verify sequence: the message through SequenceUpdate, then the
    // signature in VerifySequenceComplete.
    let started = driver
        .transmit(0, &pqc::verify_sequence_start(handle, b"", b"", b""))
        .unwrap();
    let sequence = pqc::parse_sequence_start(&started).unwrap();
    let updated = driver
        .transmit(0, &pqc::sequence_update(sequence, b"", &message))
        .unwrap();
    pqc::parse_empty(&updated).unwrap();
    let verify = pqc::verify_sequence_complete(sequence, b"", handle, &sig);
    assert!(verify.len() > 4096, "{}-byte command", verify.len());
    let verified = driver.transmit(0, &verify).unwrap();
    assert_eq!(rc(&verified), ResponseCode::SUCCESS);
    pqc::parse_verify(&verified).unwrap();
    assert_eq!(driver.last_transfer().request_bytes, verify.len());
}

#[test]
fn mldsa87_sign_and_verify_pass_whole_over_tis_with_the_sim() {
    let p = Platform::new(sim(), tis(Execution::Worker)).unwrap();
    mldsa87_sign_and_verify(&mut p.tis_driver());
}

#[test]
fn mldsa87_sign_and_verify_pass_over_tis_migrated_at_every_access_with_the_sim() {
    let p = Platform::new(sim(), tis(Execution::Inline)).unwrap();
    let bus = MigratingBus::new(p, Box::new(|| Ok(sim())));
    let mut driver = TisDriver::new(bus);
    mldsa87_sign_and_verify(&mut driver);
    let bus = driver.mmio();
    assert!(bus.error().is_none(), "{:?}", bus.error());
    // At least one per 64-byte XDATA_FIFO access of the two large transfers.
    assert!(
        bus.migrations() > 2 * 4650 / 64,
        "{} migrations",
        bus.migrations()
    );
}

/// Startup, PCR_Extend and PCR_Read checked on the host, and a command of
/// the whole 4096-byte swtpm buffer.
fn classic_over_swtpm(driver: &mut TisDriver<impl Mmio>) {
    let started = driver
        .transmit(0, &commands::startup(TPM_SU_CLEAR))
        .unwrap();
    assert_eq!(rc(&started), ResponseCode::SUCCESS);
    let read = commands::pcr_read(TPM_ALG_SHA256, &[16]);
    let before = commands::parse_pcr_read(&driver.transmit(0, &read).unwrap()).unwrap();
    let event = [0x42; 32];
    let extended = driver
        .transmit(0, &commands::pcr_extend_sha256(16, &event))
        .unwrap();
    assert_eq!(rc(&extended), ResponseCode::SUCCESS);
    let after = commands::parse_pcr_read(&driver.transmit(0, &read).unwrap()).unwrap();
    let mut h = Sha256::new();
    h.update(&before.digests[0]);
    h.update(event);
    assert_eq!(after.digests[0], h.finalize().to_vec());
    let full = driver
        .transmit(0, &commands::padded_get_random(4096))
        .unwrap();
    assert_eq!(rc(&full), ResponseCode::SIZE, "all 4096 bytes arrived");
}

#[test]
fn the_classic_commands_pass_over_tis_with_swtpm() {
    let p = Platform::new(swtpm(), tis(Execution::Worker)).unwrap();
    assert_eq!(p.with_device(|d| d.transfer_limit()), 4096);
    classic_over_swtpm(&mut p.tis_driver());
}

#[test]
fn the_classic_commands_pass_over_tis_with_swtpm_migrated_at_every_access() {
    let p = Platform::new(swtpm(), tis(Execution::Worker)).unwrap();
    let bus = MigratingBus::new(p, Box::new(|| Ok(swtpm())));
    let mut driver = TisDriver::new(bus);
    classic_over_swtpm(&mut driver);
    let bus = driver.mmio();
    assert!(bus.error().is_none(), "{:?}", bus.error());
    assert!(bus.migrations() > 100, "{} migrations", bus.migrations());
}

/// Polls `done` for up to five seconds; the answer is deterministic, the
/// bound only keeps a broken platform from hanging the test.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < until {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    done()
}

#[test]
fn a_panicking_backend_over_tis_is_answered_tpm_rc_failure_and_the_next_command_runs() {
    use vtpm_backend::testing::{Operation, PanicPlan, PanickingDouble};
    for execution in [Execution::Worker, Execution::Inline] {
        let plan = std::sync::Arc::new(PanicPlan::default());
        let p = Platform::new(
            Box::new(PanickingDouble::echo(4096, plan.clone())),
            tis(execution),
        )
        .unwrap();
        let mut driver = p.tis_driver();
        let cmd = commands::get_random(8);
        plan.arm(Operation::Execute);
        let answer = driver.transmit(0, &cmd).unwrap();
        assert_eq!(rc(&answer), ResponseCode::FAILURE, "{execution:?}");
        assert!(!plan.is_armed(Operation::Execute), "the backend did panic");
        assert!(p.take_backend_error().is_some());
        assert_eq!(driver.transmit(0, &cmd).unwrap(), cmd, "{execution:?}");
    }
}

#[test]
fn a_tis_command_cancel_reaches_the_backend_and_the_command_still_completes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let open = std::sync::Arc::new(AtomicBool::new(false));
    let backend = FnBackend::gated_echo(4096, open.clone());
    let cancels = backend.cancel_counter();
    let p = Platform::new(Box::new(backend), tis(Execution::Worker)).unwrap();
    let mut bus = p.bus();
    let cmd = commands::get_random(4);
    bus.write(0x00, &[0x02]); // requestUse
    bus.write(0x18, &[0x40]); // commandReady
    bus.write(0x80, &cmd);
    bus.write(0x18, &[0x20]); // tpmGo: the gated backend holds it
    assert!(p.with_device(|d| d.is_executing()));
    bus.write_u32(0x18, 1 << 24); // commandCancel
    assert!(
        eventually(|| cancels.count() == 1),
        "the cancel reached the backend"
    );
    open.store(true, Ordering::SeqCst);
    assert!(
        eventually(|| bus.read_u32(0x18) & 0x90 == 0x90),
        "dataAvail"
    );
    let mut rsp = vec![0u8; cmd.len()];
    bus.read(0x80, &mut rsp);
    assert_eq!(rsp, cmd[..]);
}
