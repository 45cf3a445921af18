//! Save/restore of the whole platform, and migration at every MMIO access,
//! with in-process test doubles standing in for the TPM.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use vtpm_backend::testing::FnBackend;
use vtpm_backend::Backend;
use vtpm_frame::FrameError;
use vtpm_guest::{CrbDriver, Mmio, TransmitOptions};
use vtpm_platform::{Execution, MigratingBus, Platform, PlatformConfig, PlatformError};

fn config(window_size: usize, execution: Execution) -> PlatformConfig {
    PlatformConfig {
        window_size,
        execution,
        ..PlatformConfig::default()
    }
}

#[test]
fn every_access_migrates_and_the_guest_sees_the_same_bytes() {
    for execution in [Execution::Worker, Execution::Inline] {
        let platform =
            Platform::new(Box::new(FnBackend::echo(8192)), config(256, execution)).unwrap();
        let bus = MigratingBus::new(
            platform,
            Box::new(|| Ok(Box::new(FnBackend::echo(8192)) as Box<dyn Backend>)),
        );
        let mut driver = CrbDriver::new(bus);
        for size in [10, 300, 5000] {
            let cmd = vtpm_client::padded_get_random(size);
            let mut out = Vec::new();
            let t = driver
                .transmit_with(0, &cmd, &mut out, TransmitOptions::default())
                .unwrap();
            assert_eq!(out, cmd, "{execution:?} {size}");
            assert_eq!(t.chunks_sent, size.div_ceil(256));
        }
        let bus = driver.mmio();
        assert!(bus.error().is_none(), "{:?}", bus.error());
        assert!(bus.migrations() > 100, "{} migrations", bus.migrations());
    }
}

#[test]
fn backend_state_moves_with_the_device() {
    // The test double's whole state is its established flag.
    let mut source = FnBackend::echo(4096);
    source.restore_state(&[1]).unwrap();
    let p = Platform::new(Box::new(source), PlatformConfig::default()).unwrap();
    assert_eq!(p.bus().read_u32(0) & 1, 0, "established reads 0");
    let saved = p.save(Duration::from_secs(5)).unwrap();
    drop(p);
    let fresh = FnBackend::echo(4096);
    let q = Platform::restore(&saved, Box::new(fresh), PlatformConfig::default()).unwrap();
    assert_eq!(
        q.bus().read_u32(0) & 1,
        0,
        "the fresh backend took the saved flag"
    );
}

#[test]
fn save_waits_for_a_running_command_within_its_bound() {
    let gate = Arc::new(AtomicBool::new(false));
    let p = Platform::new(
        Box::new(FnBackend::gated_echo(4096, gate.clone())),
        PlatformConfig::default(),
    )
    .unwrap();
    let mut bus = p.bus();
    let cmd = vtpm_client::get_random(4);
    bus.write_u32(0x08, 1);
    bus.write(0x80, &cmd);
    bus.write_u32(0x4C, 1);
    assert!(matches!(
        p.save(Duration::from_millis(50)),
        Err(PlatformError::Busy(_))
    ));
    assert!(
        p.with_device(|d| d.is_executing()),
        "a failed save changes nothing"
    );
    gate.store(true, Ordering::SeqCst);
    let saved = p.save(Duration::from_secs(5)).unwrap();
    let q = Platform::restore(
        &saved,
        Box::new(FnBackend::echo(4096)),
        PlatformConfig::default(),
    )
    .unwrap();
    let mut out = [0u8; 14];
    q.bus().read(0x80, &mut out[..12]);
    assert_eq!(
        &out[..12],
        &cmd[..],
        "the response taken at save time is there"
    );
}

#[test]
fn restore_refuses_bad_bytes_and_other_backends() {
    let p = Platform::new(Box::new(FnBackend::echo(4096)), PlatformConfig::default()).unwrap();
    let saved = p.save(Duration::from_secs(1)).unwrap();
    let mut flipped = saved.clone();
    flipped[20] ^= 1;
    let fresh = || Box::new(FnBackend::echo(4096));
    assert!(matches!(
        Platform::restore(&flipped, fresh(), PlatformConfig::default()),
        Err(PlatformError::Frame(FrameError::Checksum { .. }))
    ));
    assert!(matches!(
        Platform::restore(&saved[..10], fresh(), PlatformConfig::default()),
        Err(PlatformError::Frame(FrameError::Truncated(_)))
    ));
    let narrow = PlatformConfig {
        window_size: 256,
        ..PlatformConfig::default()
    };
    assert!(matches!(
        Platform::restore(&saved, fresh(), narrow),
        Err(PlatformError::Snapshot(
            vtpm_crb::SnapshotError::WindowMismatch { .. }
        ))
    ));
}
