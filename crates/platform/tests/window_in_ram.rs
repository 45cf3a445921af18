//! The platform with its data window in guest RAM: exits, TOCTOU safety
//! and migration at every access.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vtpm_backend::testing::FnBackend;
use vtpm_backend::Backend;
use vtpm_guest::{CrbDriver, Mmio};
use vtpm_platform::{Execution, MigratingBus, MmioExits, Platform, PlatformConfig};

fn config(window_in_ram: bool, execution: Execution) -> PlatformConfig {
    PlatformConfig {
        window_size: 3968,
        execution,
        window_in_ram,
        ..PlatformConfig::default()
    }
}

/// Exits of one 8 KiB command and 8 KiB response.
fn round_trip_exits(window_in_ram: bool) -> MmioExits {
    let platform = Platform::new(
        Box::new(FnBackend::echo(8192)),
        config(window_in_ram, Execution::Inline),
    )
    .unwrap();
    let mut driver = platform.driver();
    let cmd = vtpm_client::padded_get_random(8192);
    // The probe and locality request happen once per driver, not per command.
    driver
        .transmit(0, &vtpm_client::padded_get_random(10))
        .unwrap();
    let before = platform.mmio_exits();
    assert_eq!(driver.transmit(0, &cmd).unwrap(), cmd);
    platform.mmio_exits() - before
}

#[test]
fn a_ram_window_takes_no_window_exits_and_under_five_percent_of_the_trapped_total() {
    let ram = round_trip_exits(true);
    let trapped = round_trip_exits(false);
    assert_eq!(ram.window, 0);
    assert!(ram.registers > 0);
    // 8 KiB each way in 8-byte accesses: at least 2,000 window exits.
    assert!(trapped.window >= 2048, "{trapped:?}");
    assert_eq!(
        ram.registers, trapped.registers,
        "the same register traffic"
    );
    assert!(
        ram.total() * 20 <= trapped.total(),
        "{ram:?} vs {trapped:?}"
    );
}

#[test]
fn the_guest_rewriting_the_ram_window_while_the_backend_runs_changes_nothing_it_receives() {
    let open = Arc::new(AtomicBool::new(false));
    let platform = Platform::new(
        Box::new(FnBackend::gated_echo(4096, open.clone())),
        config(true, Execution::Worker),
    )
    .unwrap();
    let mut bus = platform.bus();
    let cmd = vtpm_client::padded_get_random(300);
    bus.write_u32(0x08, 1); // requestAccess
    bus.write_u32(0x40, 1); // cmdReady
    bus.write(0x80, &cmd);
    bus.write_u32(0x4C, 1); // Start
    assert_eq!(bus.read_u32(0x4C), 1, "the backend holds the command");
    let exits = platform.mmio_exits();
    bus.write(0x80, &[0xAB; 3968]);
    assert_eq!(platform.mmio_exits(), exits, "RAM writes are not exits");
    open.store(true, Ordering::SeqCst);
    while bus.read_u32(0x4C) & 1 != 0 {
        std::thread::yield_now();
    }
    let mut echoed = vec![0; cmd.len()];
    bus.read(0x80, &mut echoed);
    assert_eq!(
        echoed, cmd,
        "the backend saw the command as it was at Start"
    );
    bus.write_u32(0x40, 2); // goIdle releases it
    let mut window = vec![0xFF; 3968];
    bus.read(0x80, &mut window);
    assert!(window.iter().all(|&b| b == 0));
}

#[test]
fn a_ram_window_platform_migrates_at_every_access_and_the_guest_sees_the_same_bytes() {
    for execution in [Execution::Worker, Execution::Inline] {
        let platform =
            Platform::new(Box::new(FnBackend::echo(8192)), config(true, execution)).unwrap();
        let bus = MigratingBus::new(
            platform,
            Box::new(|| Ok(Box::new(FnBackend::echo(8192)) as Box<dyn Backend>)),
        );
        let mut driver = CrbDriver::new(bus);
        for size in [10, 4000, 8192] {
            let cmd = vtpm_client::padded_get_random(size);
            assert_eq!(
                driver.transmit(0, &cmd).unwrap(),
                cmd,
                "{execution:?} {size}"
            );
        }
        let bus = driver.mmio();
        assert!(bus.error().is_none());
        assert!(bus.migrations() > 20);
        assert_eq!(bus.mmio_exits().window, 0);
    }
}

#[test]
fn a_saved_ram_window_holds_the_guests_unstarted_command_and_restores_it() {
    let platform = Platform::new(
        Box::new(FnBackend::echo(4096)),
        config(true, Execution::Inline),
    )
    .unwrap();
    let mut bus = platform.bus();
    let cmd = vtpm_client::padded_get_random(100);
    bus.write_u32(0x08, 1);
    bus.write_u32(0x40, 1);
    bus.write(0x80, &cmd);
    let saved = platform.save(std::time::Duration::from_secs(5)).unwrap();
    drop(bus);
    drop(platform);
    let restored = Platform::restore(
        &saved,
        Box::new(FnBackend::echo(4096)),
        config(true, Execution::Inline),
    )
    .unwrap();
    let mut bus = restored.bus();
    bus.write_u32(0x4C, 1);
    let mut echoed = vec![0; cmd.len()];
    bus.read(0x80, &mut echoed);
    assert_eq!(echoed, cmd);
}
