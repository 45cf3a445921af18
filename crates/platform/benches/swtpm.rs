//! Round trip of TPM2_GetRandom(32) through guest CRB driver → CRB device
//! → swtpm, against the same command written straight to a swtpm data
//! socket. Prints the medians and their ratio.
//!
//! Paths (each swtpm 0.7.1 gets its data socket as QEMU hands it over: one
//! end of a socketpair, with SET_DATAFD):
//! - `raw socket`: one `write` of the command and two `read`s of the
//!   response on the data socket; the floor every path pays.
//! - `backend`: `SwtpmBackend::execute`, the backend alone.
//! - `crb inline`: the guest driver on the platform bus, the backend
//!   called on the thread that writes Start.
//! - `crb worker`: the same with the backend on its worker thread, the
//!   path a VMM takes, with the idle spin off (the default).
//! - `crb worker spin`: the same with `PlatformConfig::idle_spin` at 50 µs:
//!   the worker watches for the next job before it sleeps. It only watches
//!   with a CPU to spare, so pinned to one CPU it equals `crb worker`.
//!
//! Where the time goes:
//! - `spin only` and `yield only` share `crb worker`'s platform and swtpm
//!   and differ only in how the guest driver waits between polls of
//!   CTRL_START: the first never gives the CPU up, the second always does.
//!   They show how much of the gap is the driver's backoff.
//! - `echo inline` and `echo worker` replace swtpm with an in-process
//!   double that answers at once with a canned GetRandom response: what is
//!   left is the driver, the device, and (worker) the thread handoff;
//!   `echo worker spin` with the idle spin on.
//!
//! The paths take turns in blocks of rounds, so drift in the machine's
//! speed lands on all of them alike while each block keeps its own swtpm
//! warm (switching swtpm processes on every command measures cache and
//! scheduler misses, not the path).
//!
//! Where the scheduler puts each swtpm matters more than any path: on a
//! virtual machine, a round trip whose peer sits on another, idle vCPU
//! pays that vCPU's wake-up twice (4–6× a same-CPU round trip on a 2-vCPU
//! Firecracker guest), and which case each path gets is luck, so the ratio
//! swings either way from run to run. The benchmark therefore pins itself,
//! its threads and the swtpm processes it starts to one CPU (the last one
//! it may use), which gives repeatable figures; `--unpinned` leaves
//! placement to the scheduler.
//!
//! `cargo bench -p vtpm-platform --bench swtpm [-- --unpinned]`

use std::error::Error;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};
use vtpm_backend::swtpm::{ControlChannel, SwtpmBackend, SwtpmConfig, SwtpmProcess};
use vtpm_backend::testing::FnBackend;
use vtpm_backend::Backend;
use vtpm_client as client;
use vtpm_guest::{Clock, CrbDriver, TransmitOptions};
use vtpm_platform::{CrbBus, Execution, Platform, PlatformConfig};
use vtpm_wire::{consts, Header, HEADER_SIZE};

/// Round trips per path before measuring.
const WARM_UP: usize = 200;
/// Measured round trips per path.
const SAMPLES: usize = 2000;
/// Consecutive round trips of one path before the next path's turn.
const BLOCK: usize = 50;
/// The ratio of medians (CRB worker / raw socket) the project aims at.
const TARGET_RATIO: f64 = 1.10;
/// The idle spin of the "spin" rows.
const SPIN: Duration = Duration::from_micros(50);
/// Random bytes asked for: a small, fast command, so the transport's share
/// of the round trip is as large as it gets.
const RANDOM_BYTES: u16 = 32;

type BenchResult<T> = Result<T, Box<dyn Error>>;

/// A swtpm reached through nothing but its data socket.
struct RawSwtpm {
    data: UnixStream,
    // Held, as a VMM holds it, and closed before the process is stopped
    // (swtpm serves one control client at a time).
    _ctrl: ControlChannel,
    // Dropped last: stops swtpm.
    _process: SwtpmProcess,
}

impl RawSwtpm {
    /// Starts swtpm, hands it a socketpair (as `SwtpmBackend` and QEMU do)
    /// and initialises the TPM; the buffer stays at swtpm's default.
    fn spawn() -> BenchResult<Self> {
        let process = SwtpmProcess::spawn(&SwtpmConfig::default())?;
        let mut ctrl = process.control()?;
        let (data, theirs) = UnixStream::pair()?;
        ctrl.set_data_fd(theirs.as_fd())?;
        drop(theirs);
        ctrl.init(0)?;
        Ok(Self {
            data,
            _ctrl: ctrl,
            _process: process,
        })
    }

    /// Sends `command` in one write and reads the whole response.
    fn transact(&mut self, command: &[u8], response: &mut Vec<u8>) -> BenchResult<()> {
        self.data.write_all(command)?;
        response.clear();
        response.resize(HEADER_SIZE, 0);
        self.data.read_exact(response)?;
        let size = Header::peek_size(response).unwrap_or(0) as usize;
        if size < HEADER_SIZE {
            return Err(format!("response header declares {size} bytes").into());
        }
        response.resize(size, 0);
        self.data.read_exact(&mut response[HEADER_SIZE..])?;
        Ok(())
    }
}

/// Polls back to back, never giving the CPU up.
struct SpinClock(Instant);

impl Clock for SpinClock {
    fn now(&mut self) -> Duration {
        self.0.elapsed()
    }
    fn pause(&mut self) {
        std::hint::spin_loop();
    }
}

/// Yields the CPU between every two polls.
struct YieldClock(Instant);

impl Clock for YieldClock {
    fn now(&mut self) -> Duration {
        self.0.elapsed()
    }
    fn pause(&mut self) {
        std::thread::yield_now();
    }
}

/// One way of getting a command to swtpm and its answer back.
enum Path {
    Raw(RawSwtpm),
    Backend(Box<SwtpmBackend>),
    Crb(CrbDriver<CrbBus>),
    CrbSpin(CrbDriver<CrbBus, SpinClock>),
    CrbYield(CrbDriver<CrbBus, YieldClock>),
}

impl Path {
    fn round_trip(&mut self, command: &[u8], response: &mut Vec<u8>) -> BenchResult<()> {
        let options = TransmitOptions::default();
        match self {
            Path::Raw(raw) => raw.transact(command, response)?,
            Path::Backend(backend) => backend.execute(0, command, response)?,
            Path::Crb(driver) => {
                driver.transmit_with(0, command, response, options)?;
            }
            Path::CrbSpin(driver) => {
                driver.transmit_with(0, command, response, options)?;
            }
            Path::CrbYield(driver) => {
                driver.transmit_with(0, command, response, options)?;
            }
        }
        Ok(())
    }
}

struct Measured {
    name: &'static str,
    path: Path,
    samples: Vec<Duration>,
}

impl Measured {
    fn new(name: &'static str, path: Path) -> Self {
        Self {
            name,
            path,
            samples: Vec::with_capacity(SAMPLES),
        }
    }

    /// Times one GetRandom round trip and checks its answer.
    fn sample(&mut self, command: &[u8], response: &mut Vec<u8>) -> BenchResult<Duration> {
        let start = Instant::now();
        self.path.round_trip(command, response)?;
        let took = start.elapsed();
        let random = client::parse_get_random(response)
            .map_err(|e| format!("{}: bad GetRandom answer: {e}", self.name))?;
        if random.len() != usize::from(RANDOM_BYTES) {
            return Err(format!("{}: {} random bytes", self.name, random.len()).into());
        }
        Ok(took)
    }

    /// The `p`th percentile of the samples (50: the median).
    fn percentile(&self, p: usize) -> Duration {
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        sorted[(sorted.len() - 1) * p / 100]
    }
}

fn platform(execution: Execution, idle_spin: Duration) -> BenchResult<Platform> {
    Ok(Platform::new(
        Box::new(SwtpmBackend::spawn(SwtpmConfig::default())?),
        PlatformConfig {
            execution,
            idle_spin,
            ..PlatformConfig::default()
        },
    )?)
}

/// A platform on a double that answers every command with `answer`.
fn echo_platform(
    execution: Execution,
    idle_spin: Duration,
    answer: Vec<u8>,
) -> BenchResult<Platform> {
    let backend = FnBackend::new(4096, move |_, _, response| {
        response.extend_from_slice(&answer);
        Ok(())
    });
    Ok(Platform::new(
        Box::new(backend),
        PlatformConfig {
            execution,
            idle_spin,
            ..PlatformConfig::default()
        },
    )?)
}

/// A GetRandom response carrying `RANDOM_BYTES` bytes. A response header
/// has a command's layout: TPM_ST_NO_SESSIONS, size, and code 0 (success).
fn canned_get_random_response() -> Vec<u8> {
    vtpm_wire::CommandBuilder::no_sessions(0)
        .tpm2b(&[0x5A; RANDOM_BYTES as usize])
        .finish()
}

/// Pins the calling thread to the last CPU it may run on. Threads and
/// processes started afterwards inherit the affinity. Returns that CPU.
fn pin_to_one_cpu() -> BenchResult<usize> {
    let allowed = sched_getaffinity(None)?;
    let cpu = (0..CpuSet::MAX_CPU)
        .rev()
        .find(|&cpu| allowed.is_set(cpu))
        .ok_or("no CPU in this thread's affinity mask")?;
    let mut one = CpuSet::new();
    one.set(cpu);
    sched_setaffinity(None, &one)?;
    Ok(cpu)
}

fn main() -> BenchResult<()> {
    // Before any thread or swtpm starts, so that all of them inherit it.
    let placement = if std::env::args().any(|a| a == "--unpinned") {
        "unpinned".to_string()
    } else {
        format!(
            "all threads and swtpm processes on CPU {}",
            pin_to_one_cpu()?
        )
    };
    let off = Duration::ZERO;
    let inline = platform(Execution::Inline, off)?;
    let worker = platform(Execution::Worker, off)?;
    let worker_spin = platform(Execution::Worker, SPIN)?;
    let canned = canned_get_random_response;
    let echo_inline = echo_platform(Execution::Inline, off, canned())?;
    let echo_worker = echo_platform(Execution::Worker, off, canned())?;
    let echo_worker_spin = echo_platform(Execution::Worker, SPIN, canned())?;
    let mut paths = vec![
        Measured::new("raw socket", Path::Raw(RawSwtpm::spawn()?)),
        Measured::new(
            "backend",
            Path::Backend(Box::new(SwtpmBackend::spawn(SwtpmConfig::default())?)),
        ),
        Measured::new("crb inline", Path::Crb(inline.driver())),
        Measured::new("crb worker", Path::Crb(worker.driver())),
        Measured::new("crb worker spin", Path::Crb(worker_spin.driver())),
        Measured::new(
            "  spin only",
            Path::CrbSpin(CrbDriver::with_clock(
                worker.bus(),
                SpinClock(Instant::now()),
            )),
        ),
        Measured::new(
            "  yield only",
            Path::CrbYield(CrbDriver::with_clock(
                worker.bus(),
                YieldClock(Instant::now()),
            )),
        ),
        Measured::new("echo inline", Path::Crb(echo_inline.driver())),
        Measured::new("echo worker", Path::Crb(echo_worker.driver())),
        Measured::new("echo worker spin", Path::Crb(echo_worker_spin.driver())),
    ];
    const RAW: usize = 0;
    const CRB_INLINE: usize = 2;
    const CRB_WORKER: usize = 3;
    const CRB_WORKER_SPIN: usize = 4;
    const ECHO_INLINE: usize = 7;
    const ECHO_WORKER: usize = 8;

    let mut response = Vec::with_capacity(4096);
    let startup = client::startup(consts::TPM_SU_CLEAR);
    // One Startup per swtpm: the spin-only and yield-only rows share crb
    // worker's, and the echo rows have none.
    for m in &mut paths[..=CRB_WORKER_SPIN] {
        m.path.round_trip(&startup, &mut response)?;
        if response != [0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0, 0] {
            return Err(format!("{}: Startup answered {response:02x?}", m.name).into());
        }
    }

    let command = client::get_random(RANDOM_BYTES);
    let rounds = WARM_UP + SAMPLES;
    for block_start in (0..rounds).step_by(BLOCK) {
        for m in &mut paths {
            for round in block_start..(block_start + BLOCK).min(rounds) {
                let took = m.sample(&command, &mut response)?;
                if round >= WARM_UP {
                    m.samples.push(took);
                }
            }
        }
    }

    println!(
        "\nTPM2_GetRandom({RANDOM_BYTES}) round trip: {SAMPLES} samples per path after \
         {WARM_UP} warm-up, paths alternating every {BLOCK} round trips; {placement}"
    );
    println!(
        "  {:<16} {:>10} {:>10} {:>10}  {:>6}",
        "path", "p10", "median", "p90", "/ raw"
    );
    let raw = paths[RAW].percentile(50).as_secs_f64();
    for m in &paths {
        let median = m.percentile(50);
        println!(
            "  {:<16} {:>10.2?} {:>10.2?} {:>10.2?}  {:>6.3}",
            m.name,
            m.percentile(10),
            median,
            m.percentile(90),
            median.as_secs_f64() / raw
        );
    }
    let median = |i: usize| paths[i].percentile(50);
    let handoff = median(ECHO_WORKER).saturating_sub(median(ECHO_INLINE));
    println!("  worker thread handoff (echo worker - echo inline): {handoff:.2?}");
    println!(
        "  crb inline / raw socket: {:.3}",
        median(CRB_INLINE).as_secs_f64() / raw
    );
    let ratio = median(CRB_WORKER).as_secs_f64() / raw;
    let verdict = if ratio <= TARGET_RATIO {
        "within"
    } else {
        "above"
    };
    println!(
        "  crb worker / raw socket: {ratio:.3} ({verdict} the {TARGET_RATIO:.2} target), \
         idle spin off"
    );
    println!(
        "  crb worker spin / raw socket: {:.3}, idle spin {SPIN:?}",
        median(CRB_WORKER_SPIN).as_secs_f64() / raw
    );
    Ok(())
}
