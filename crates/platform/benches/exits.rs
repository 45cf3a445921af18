//! VM exits and host cost of a round trip, trapped window against window in
//! guest RAM, and host memory of idle devices.
//!
//! `cargo bench -p vtpm-platform --bench exits`
//!
//! For an 8 KiB command and an 8 KiB response at window 3968 (echo
//! backend, inline, so Start is polled once and the exits repeat exactly):
//! exits per round trip by kind (QEMU maps the window as RAM: its figure
//! is the register exits alone), the median host time per round trip,
//! and that time with a modelled 2 µs per exit. Host instructions per round
//! trip come from `scripts/callgrind-roundtrip.sh`. Then 1,000 idle
//! devices (backend buffer 8192) in one process, bytes per device from a
//! counting allocator, against window + command buffer + response buffer.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use vtpm_backend::testing::FnBackend;
use vtpm_crb::{CrbConfig, CrbDevice};
use vtpm_platform::{Execution, MmioExits, Platform, PlatformConfig};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const EXIT_COST: Duration = Duration::from_micros(2);
const WINDOW: usize = 3968;
const BUFFER: usize = 8192;
const TRIPS: usize = 2000;

fn round_trips(window_in_ram: bool) -> (MmioExits, Duration) {
    let config = PlatformConfig {
        window_size: WINDOW,
        execution: Execution::Inline,
        window_in_ram,
        ..PlatformConfig::default()
    };
    let platform = Platform::new(Box::new(FnBackend::echo(BUFFER)), config).unwrap();
    let mut driver = platform.driver();
    let command = vtpm_client::padded_get_random(BUFFER);
    let mut response = Vec::with_capacity(BUFFER);
    for _ in 0..200 {
        driver
            .transmit_with(0, &command, &mut response, Default::default())
            .unwrap();
    }
    assert_eq!(response, command);
    let before = platform.mmio_exits();
    driver
        .transmit_with(0, &command, &mut response, Default::default())
        .unwrap();
    let exits = platform.mmio_exits() - before;
    let mut times: Vec<Duration> = (0..TRIPS)
        .map(|_| {
            let started = Instant::now();
            driver
                .transmit_with(0, &command, &mut response, Default::default())
                .unwrap();
            let took = started.elapsed();
            assert_eq!(response.len(), BUFFER);
            took
        })
        .collect();
    times.sort();
    (exits, times[TRIPS / 2])
}

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn per_device(mut make: impl FnMut() -> Box<dyn std::any::Any>) -> isize {
    const DEVICES: isize = 1000;
    let start = live();
    let devices: Vec<_> = (0..DEVICES).map(|_| make()).collect();
    let bytes = (live() - start) / DEVICES;
    drop(devices);
    bytes
}

fn main() {
    println!("8 KiB command + 8 KiB response, window {WINDOW}, echo backend inline");
    println!(
        "{:<9} {:>10} {:>8} {:>7} {:>12} {:>22}",
        "window", "registers", "window", "total", "host median", "host + 2 µs per exit"
    );
    let mut totals = Vec::new();
    for (name, in_ram) in [("trapped", false), ("RAM", true)] {
        let (exits, host) = round_trips(in_ram);
        let modelled = host + EXIT_COST * exits.total() as u32;
        println!(
            "{name:<9} {:>10} {:>8} {:>7} {:>9.1} µs {:>19.1} µs",
            exits.registers,
            exits.window,
            exits.total(),
            host.as_secs_f64() * 1e6,
            modelled.as_secs_f64() * 1e6
        );
        totals.push(exits);
    }
    println!(
        "QEMU (window mapped as RAM) exits on register accesses only: {} here",
        totals[1].registers
    );
    assert_eq!(totals[1].window, 0);

    let bound = (WINDOW + 2 * BUFFER) as isize;
    let device = per_device(|| {
        Box::new(
            CrbDevice::new(CrbConfig {
                window_size: WINDOW,
                backend_buffer: BUFFER,
                ..CrbConfig::default()
            })
            .unwrap(),
        )
    });
    let platform = per_device(|| {
        Box::new(
            Platform::new(
                Box::new(FnBackend::echo(BUFFER)),
                PlatformConfig {
                    execution: Execution::Inline,
                    ..PlatformConfig::default()
                },
            )
            .unwrap(),
        )
    });
    println!("1,000 idle devices, backend buffer {BUFFER}: window + both buffers = {bound} B");
    println!(
        "  CrbDevice: {device} B per device ({:.2}x)",
        device as f64 / bound as f64
    );
    println!(
        "  Platform (inline, echo double; adds the host's command and response buffers): \
         {platform} B per device ({:.2}x)",
        platform as f64 / bound as f64
    );
    assert!(device <= 2 * bound, "a device takes {device} B");
}
