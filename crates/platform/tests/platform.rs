//! The whole path across threads: guest driver → CRB bus → device →
//! backend worker → device → guest driver, with in-process test doubles
//! standing in for the TPM (echo, slow, failing).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vtpm_backend::testing::{patterned_response, FnBackend};
use vtpm_backend::BackendError;
use vtpm_guest::{DriverError, Mmio, TransmitOptions};
use vtpm_platform::{Execution, Platform, PlatformConfig};

fn config(window_size: usize, execution: Execution) -> PlatformConfig {
    PlatformConfig {
        window_size,
        execution,
        ..PlatformConfig::default()
    }
}

#[test]
fn echo_of_every_size_class_in_both_modes() {
    for execution in [Execution::Worker, Execution::Inline] {
        for window in [64, 256, 3968] {
            let p =
                Platform::new(Box::new(FnBackend::echo(16384)), config(window, execution)).unwrap();
            let mut driver = p.driver();
            for size in [10, 64, 65, 3968, 3969, 8192, 16384] {
                let cmd = vtpm_client::padded_get_random(size);
                let mut out = Vec::new();
                let t = driver
                    .transmit_with(0, &cmd, &mut out, TransmitOptions::default())
                    .unwrap();
                assert_eq!(out, cmd, "{execution:?} window {window} size {size}");
                assert_eq!(t.chunks_sent, size.div_ceil(window));
                assert_eq!(t.chunks_received, size.div_ceil(window));
            }
        }
    }
}

#[test]
fn each_locality_reaches_the_backend() {
    let p = Platform::new(
        Box::new(FnBackend::new(4096, |locality, _, rsp| {
            rsp.extend_from_slice(&patterned_response(10 + usize::from(locality), locality));
            Ok(())
        })),
        PlatformConfig::default(),
    )
    .unwrap();
    let mut driver = p.driver();
    for locality in 0..5u8 {
        let out = driver
            .transmit(locality, &vtpm_client::get_random(1))
            .unwrap();
        assert_eq!(out.len(), 10 + usize::from(locality));
        driver.relinquish_locality(locality).unwrap();
    }
}

#[test]
fn backend_failure_reaches_the_guest_then_a_new_backend_works() {
    let mut p = Platform::new(
        Box::new(FnBackend::new(4096, |_, _, _| {
            Err(BackendError::ChannelClosed("data channel".into()))
        })),
        PlatformConfig::default(),
    )
    .unwrap();
    let mut driver = p.driver();
    let cmd = vtpm_client::get_random(8);
    assert_eq!(driver.transmit(0, &cmd), Err(DriverError::Fatal));
    assert!(matches!(
        p.take_backend_error(),
        Some(BackendError::ChannelClosed(_))
    ));
    p.replace_backend(Box::new(FnBackend::echo(4096))).unwrap();
    let mut driver = p.driver();
    assert_eq!(driver.transmit(0, &cmd).unwrap(), cmd);
}

#[test]
fn cancel_goes_to_the_backend_while_the_worker_is_busy() {
    let release = Arc::new(AtomicBool::new(false));
    let gate = release.clone();
    let backend = FnBackend::new(4096, move |_, _, rsp| {
        while !gate.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        rsp.extend_from_slice(&vtpm_wire::error_response(
            vtpm_wire::ResponseCode::CANCELED,
        ));
        Ok(())
    });
    let cancels = backend.cancel_counter();
    let p = Platform::new(Box::new(backend), PlatformConfig::default()).unwrap();
    let mut other = p.bus();
    let guest = {
        let mut driver = p.driver();
        std::thread::spawn(move || driver.transmit(0, &vtpm_client::get_random(8)))
    };
    while !p.with_device(|d| d.is_executing()) {
        std::thread::sleep(Duration::from_millis(1));
    }
    other.write_u32(0x48, 1);
    // The cancel goes out from a thread of its own; the write did not wait.
    for _ in 0..1000 {
        if cancels.count() > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(cancels.count(), 1);
    other.write_u32(0x48, 1);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(cancels.count(), 1, "one cancel per command");
    release.store(true, Ordering::SeqCst);
    let out = guest.join().unwrap().unwrap();
    assert_eq!(
        &out[6..10],
        &[0, 0, 0x09, 0x09],
        "TPM_RC_CANCELED came back"
    );
}

#[test]
fn a_reset_during_execution_drops_the_late_answer() {
    let slow = Arc::new(AtomicBool::new(true));
    let flag = slow.clone();
    let p = Platform::new(
        Box::new(FnBackend::new(4096, move |_, cmd, rsp| {
            if flag.swap(false, Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
            }
            rsp.extend_from_slice(cmd);
            Ok(())
        })),
        PlatformConfig::default(),
    )
    .unwrap();
    let mut bus = p.bus();
    let first = vtpm_client::get_random(1);
    bus.write_u32(0x08, 1);
    bus.write(0x80, &first);
    bus.write_u32(0x4C, 1);
    assert!(p.with_device(|d| d.is_executing()));
    p.reset();
    let mut driver = p.driver();
    let second = vtpm_client::get_random(2);
    assert_eq!(
        driver.transmit(0, &second).unwrap(),
        second,
        "the old answer was not delivered"
    );
}

#[test]
fn reset_establishment_reaches_the_backend() {
    let p = Platform::new(Box::new(FnBackend::echo(4096)), PlatformConfig::default()).unwrap();
    p.with_device(|d| d.set_established(true));
    let mut bus = p.bus();
    bus.write_u32(0x3000 + 0x08, 8);
    for _ in 0..1000 {
        if bus.read_u32(0) & 1 == 1 {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("established flag never cleared");
}

#[test]
fn after_a_command_timeout_the_next_command_gets_its_own_answer() {
    let first = Arc::new(AtomicBool::new(true));
    let slow = first.clone();
    let p = Platform::new(
        Box::new(FnBackend::new(4096, move |_, cmd, rsp| {
            if slow.swap(false, Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(300));
            }
            rsp.extend_from_slice(cmd);
            Ok(())
        })),
        PlatformConfig::default(),
    )
    .unwrap();
    let mut driver = p.driver();
    driver.set_timeouts(vtpm_guest::Timeouts {
        command: Duration::from_millis(100),
        ..Default::default()
    });
    let one = vtpm_client::get_random(1);
    assert!(matches!(
        driver.transmit(0, &one),
        Err(DriverError::Timeout {
            register: "CTRL_START",
            bit: "Start",
            ..
        })
    ));
    let two = vtpm_client::get_random(2);
    assert_eq!(
        driver.transmit(0, &two).unwrap(),
        two,
        "not the first command's late answer"
    );
}

#[test]
fn save_after_replacing_a_hung_backend_is_not_busy() {
    let release = Arc::new(AtomicBool::new(false));
    let mut p = Platform::new(
        Box::new(FnBackend::gated_echo(4096, release.clone())),
        PlatformConfig::default(),
    )
    .unwrap();
    let mut bus = p.bus();
    bus.write_u32(0x08, 1);
    bus.write(0x80, &vtpm_client::get_random(1));
    bus.write_u32(0x4C, 1);
    std::thread::sleep(Duration::from_millis(20));
    p.replace_backend(Box::new(FnBackend::echo(4096))).unwrap();
    assert!(
        p.save(Duration::from_millis(300)).is_ok(),
        "the hung worker is not this platform's"
    );
    release.store(true, Ordering::SeqCst);
}
