//! An 8 KiB command and an 8 KiB response through guest driver → CRB
//! (window 3968) → an instant in-process echo backend (a test double),
//! against a plain memcpy of the same 32 KiB. Prints the ratio of medians,
//! inline and on the worker thread with the idle spin off (the default)
//! and on (`PlatformConfig::idle_spin` = 50 µs). The same 8 KiB each way
//! through the guest TIS driver → TIS (XDATA_FIFO, 64 bytes per access)
//! → the echo, inline, is reported beside them against the same baseline.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use vtpm_backend::testing::FnBackend;
use vtpm_guest::{CrbDriver, TisDriver, TisTransmitOptions, TransmitOptions};
use vtpm_platform::{CrbBus, Execution, Interface, Platform, PlatformConfig};

const SIZE: usize = 8192;
/// The idle spin of the "spin on" rows.
const SPIN: Duration = Duration::from_micros(50);

/// The paths measured: name, where commands run, idle spin.
const PATHS: [(&str, Execution, Duration); 3] = [
    ("inline", Execution::Inline, Duration::ZERO),
    ("worker, spin off", Execution::Worker, Duration::ZERO),
    ("worker, spin on", Execution::Worker, SPIN),
];

fn platform(execution: Execution, idle_spin: Duration) -> Platform {
    Platform::new(
        Box::new(FnBackend::echo(SIZE)),
        PlatformConfig {
            execution,
            idle_spin,
            ..PlatformConfig::default()
        },
    )
    .expect("platform")
}

fn tis_platform() -> Platform {
    Platform::new(
        Box::new(FnBackend::echo(SIZE)),
        PlatformConfig {
            interface: Interface::Tis,
            execution: Execution::Inline,
            ..PlatformConfig::default()
        },
    )
    .expect("TIS platform")
}

/// One TIS round trip, checked like [`round_trip`]: the command in one
/// burst plus its last byte, the response as header and rest.
fn tis_round_trip(driver: &mut TisDriver<CrbBus>, cmd: &[u8], rsp: &mut Vec<u8>) {
    let t = driver
        .transmit_with(0, cmd, rsp, TisTransmitOptions::default())
        .expect("TIS round trip");
    assert_eq!((t.bursts_sent, t.bursts_received), (2, 2));
    assert_eq!(rsp.len(), cmd.len());
    assert_eq!(rsp[..10], cmd[..10]);
}

fn tis_checked_warm_up(driver: &mut TisDriver<CrbBus>, cmd: &[u8], rsp: &mut Vec<u8>) {
    for _ in 0..100 {
        tis_round_trip(driver, cmd, rsp);
        assert!(rsp[..] == cmd[..], "the echo came back byte for byte");
    }
}

fn command() -> Vec<u8> {
    vtpm_client::padded_get_random(SIZE)
}

/// One round trip, checked in every build (a benchmark that measures a
/// broken path measures nothing): three pieces each way, and the echo's
/// size and header. The whole echo is compared in [`checked_warm_up`].
fn round_trip(driver: &mut CrbDriver<CrbBus>, cmd: &[u8], rsp: &mut Vec<u8>) {
    let t = driver
        .transmit_with(0, cmd, rsp, TransmitOptions::default())
        .expect("round trip");
    assert_eq!((t.chunks_sent, t.chunks_received), (3, 3));
    assert_eq!(rsp.len(), cmd.len());
    assert_eq!(rsp[..10], cmd[..10]);
}

/// Round trips whose whole echo is compared with the command.
fn checked_warm_up(driver: &mut CrbDriver<CrbBus>, cmd: &[u8], rsp: &mut Vec<u8>) {
    for _ in 0..100 {
        round_trip(driver, cmd, rsp);
        assert!(rsp[..] == cmd[..], "the echo came back byte for byte");
    }
}

fn memcpy_32k(src: &[u8; 4 * SIZE], dst: &mut [u8; 4 * SIZE]) {
    dst.copy_from_slice(black_box(src));
    black_box(dst);
}

fn benches(c: &mut Criterion) {
    let cmd = command();
    let mut rsp = Vec::with_capacity(SIZE);
    for (name, execution, spin) in PATHS {
        let p = platform(execution, spin);
        let mut driver = p.driver();
        checked_warm_up(&mut driver, &cmd, &mut rsp);
        let id = name.replace(", ", "_").replace(' ', "_");
        c.bench_function(&format!("crb_8k_round_trip_{id}"), |b| {
            b.iter(|| round_trip(&mut driver, &cmd, &mut rsp))
        });
    }
    let p = tis_platform();
    let mut driver = p.tis_driver();
    tis_checked_warm_up(&mut driver, &cmd, &mut rsp);
    c.bench_function("tis_8k_round_trip_inline", |b| {
        b.iter(|| tis_round_trip(&mut driver, &cmd, &mut rsp))
    });
    let src = Box::new([0xA5u8; 4 * SIZE]);
    let mut dst = Box::new([0u8; 4 * SIZE]);
    c.bench_function("memcpy_32k", |b| b.iter(|| memcpy_32k(&src, &mut dst)));
}

/// Median of `runs` batches of `batch` calls, per call.
fn median(runs: usize, batch: u32, mut f: impl FnMut()) -> Duration {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..batch {
                f();
            }
            t.elapsed() / batch
        })
        .collect();
    samples.sort();
    samples[runs / 2]
}

fn ratio() {
    let cmd = command();
    let mut rsp = Vec::with_capacity(SIZE);
    let src = Box::new([0xA5u8; 4 * SIZE]);
    let mut dst = Box::new([0u8; 4 * SIZE]);
    let copy = median(201, 200, || memcpy_32k(&src, &mut dst));
    println!("\nratio report (median per call, one run)");
    println!("  memcpy 32 KiB:                           {copy:>10.2?}");
    for (name, execution, spin) in PATHS {
        let p = platform(execution, spin);
        let mut driver = p.driver();
        checked_warm_up(&mut driver, &cmd, &mut rsp);
        let path = median(101, 50, || round_trip(&mut driver, &cmd, &mut rsp));
        println!(
            "  8 KiB + 8 KiB via CRB, {name:<16}: {path:>10.2?}  ratio {:.2}",
            path.as_secs_f64() / copy.as_secs_f64()
        );
    }
    let p = tis_platform();
    let mut driver = p.tis_driver();
    tis_checked_warm_up(&mut driver, &cmd, &mut rsp);
    let path = median(101, 50, || tis_round_trip(&mut driver, &cmd, &mut rsp));
    println!(
        "  8 KiB + 8 KiB via TIS, {:<16}: {path:>10.2?}  ratio {:.2}",
        "inline",
        path.as_secs_f64() / copy.as_secs_f64()
    );
}

criterion_group!(transport, benches);

fn main() {
    transport();
    ratio();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
