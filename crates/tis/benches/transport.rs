//! An 8 KiB command and an 8 KiB response through TisDriver → TisDevice
//! (buffer 8192) → an instant in-process echo, against a plain memcpy of
//! the same bytes (16 KiB: the command once, the response once) and of 32
//! KiB (the baseline the CRB transport benchmark uses). Prints the ratio
//! of medians.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use vtpm_guest::{FifoAccess, Mmio, TisDriver, TisTransmitOptions};
use vtpm_tis::{Action, TisConfig, TisDevice};

const SIZE: usize = 8192;

/// The device with an echo backend run inline: each command is answered
/// with its own bytes, swapped in without allocating.
struct EchoBus {
    device: TisDevice,
    scratch: Vec<u8>,
}

impl Mmio for EchoBus {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.device.read(offset, data);
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        let token = match self.device.write(offset, data) {
            Some(Action::Execute { token, command, .. }) => {
                self.scratch.clear();
                self.scratch.extend_from_slice(command);
                token
            }
            _ => return,
        };
        self.device.complete_swap(token, Ok(&mut self.scratch));
    }
}

fn driver(access: FifoAccess) -> TisDriver<EchoBus> {
    let device = TisDevice::new(TisConfig {
        backend_buffer: SIZE,
        ..TisConfig::default()
    })
    .expect("device");
    let mut d = TisDriver::new(EchoBus {
        device,
        scratch: Vec::with_capacity(SIZE),
    });
    d.set_fifo_access(access);
    d
}

fn round_trip(driver: &mut TisDriver<EchoBus>, cmd: &[u8], rsp: &mut Vec<u8>) {
    let t = driver
        .transmit_with(0, cmd, rsp, TisTransmitOptions::default())
        .expect("round trip");
    debug_assert_eq!((t.bursts_sent, t.bursts_received), (2, 2));
}

fn memcpy<const N: usize>(src: &[u8; N], dst: &mut [u8; N]) {
    dst.copy_from_slice(black_box(src));
    black_box(dst);
}

const ACCESSES: [(&str, FifoAccess); 2] =
    [("xfifo64", FifoAccess::Wide), ("bytes", FifoAccess::Bytes)];

fn benches(c: &mut Criterion) {
    let cmd = vtpm_client::padded_get_random(SIZE);
    let mut rsp = Vec::with_capacity(SIZE);
    for (name, access) in ACCESSES {
        let mut d = driver(access);
        c.bench_function(&format!("tis_8k_round_trip_{name}"), |b| {
            b.iter(|| round_trip(&mut d, &cmd, &mut rsp))
        });
    }
    let src = Box::new([0xA5u8; 2 * SIZE]);
    let mut dst = Box::new([0u8; 2 * SIZE]);
    c.bench_function("memcpy_16k", |b| b.iter(|| memcpy(&src, &mut dst)));
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
    let cmd = vtpm_client::padded_get_random(SIZE);
    let mut rsp = Vec::with_capacity(SIZE);
    let src16 = Box::new([0xA5u8; 2 * SIZE]);
    let mut dst16 = Box::new([0u8; 2 * SIZE]);
    let src32 = Box::new([0xA5u8; 4 * SIZE]);
    let mut dst32 = Box::new([0u8; 4 * SIZE]);
    let copy16 = median(201, 200, || memcpy(&src16, &mut dst16));
    let copy32 = median(201, 200, || memcpy(&src32, &mut dst32));
    println!("\nratio report (median per call, one run)");
    println!("  memcpy 16 KiB:                 {copy16:>10.2?}");
    println!("  memcpy 32 KiB:                 {copy32:>10.2?}");
    for (name, access) in ACCESSES {
        let mut d = driver(access);
        for _ in 0..100 {
            round_trip(&mut d, &cmd, &mut rsp);
        }
        let path = median(101, 50, || round_trip(&mut d, &cmd, &mut rsp));
        println!(
            "  8 KiB + 8 KiB via TIS, {name:<7}: {path:>10.2?}  ratio {:.1} (16 KiB), {:.1} (32 KiB)",
            path.as_secs_f64() / copy16.as_secs_f64(),
            path.as_secs_f64() / copy32.as_secs_f64()
        );
    }
}

criterion_group!(transport, benches);

fn main() {
    transport();
    ratio();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
