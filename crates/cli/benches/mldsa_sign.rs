//! ML-DSA-87 TPM2_SignDigest of a 64-byte external μ end to end: guest CRB
//! driver → CRB device (window 3968, chunked: the 4650-byte response takes
//! two pieces) → embedded simulator, with the backend on its worker thread
//! (as a VMM runs it) and inline (no thread handoff). SignDigest is the one
//! v1.85 command that signs in a single transfer (TPM2_Sign does not take
//! ML-DSA keys), so one signature is one chunked round trip.
//!
//! Baselines, measured in the same run:
//! - the simulator's own `Sim::execute` called in-process, no device, with
//!   the same key (same generator seed, same template);
//! - the `ml-dsa` crate the simulator signs with, called directly: hedged
//!   signing of the same μ, once from the 32-byte seed (what the simulator
//!   does when its expanded-key cache misses) and once with the key kept
//!   expanded.
//!
//! Prints medians per signature after warm-up, and each path's ratio to the
//! baselines.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use ml_dsa::{ExpandedSigningKey, MlDsa87};
use vtpm_backend::sim::{SimBackend, SimConfig};
use vtpm_client as client;
use vtpm_client::startup;
use vtpm_crb::ChunkPolicy;
use vtpm_guest::{CrbDriver, TransmitOptions};
use vtpm_platform::{CrbBus, Execution, Platform, PlatformConfig};
use vtpm_wire::consts::{TPM_RH_OWNER, TPM_SU_CLEAR};
use vtpm_wire::structures::{MlDsaParameterSet, PublicArea};

const WINDOW: usize = 3968;
/// The simulator's generator seed: equal seeds give equal primary keys.
const SIM_SEED: [u8; 32] = [0x87; 32];
/// ξ of the key the direct `ml-dsa` baselines sign with. The simulator's ξ
/// is derived inside it and never leaves it; signing time does not depend
/// on which key signs.
const XI: [u8; 32] = [0x42; 32];
/// The external μ signed: any 64 bytes.
const MU: [u8; 64] = [0xD1; 64];
const KEY_AUTH: &[u8] = b"";

fn simulator() -> SimBackend {
    SimBackend::new(SimConfig {
        rng_seed: Some(SIM_SEED),
        ..SimConfig::default()
    })
    .expect("simulator")
}

/// The ML-DSA-87 signing key, created by `execute`: (handle, public key).
fn create_key(mut execute: impl FnMut(&[u8]) -> Vec<u8>) -> (u32, Vec<u8>) {
    client::parse_empty(&execute(&startup(TPM_SU_CLEAR))).expect("Startup");
    let template = PublicArea::mldsa(MlDsaParameterSet::MlDsa87).with_external_mu();
    let command = client::create_primary(TPM_RH_OWNER, b"", &template, KEY_AUTH);
    let key = client::parse_create_primary(&execute(&command)).expect("CreatePrimary");
    (key.handle, key.public.public_key().to_vec())
}

/// The signing path through driver, device and simulator.
struct DevicePath {
    driver: CrbDriver<CrbBus>,
    command: Vec<u8>,
    response: Vec<u8>,
    public_key: Vec<u8>,
    /// Dropped after the driver: it owns the device and the worker.
    _platform: Platform,
}

impl DevicePath {
    fn new(execution: Execution) -> Self {
        let platform = Platform::new(
            Box::new(simulator()),
            PlatformConfig {
                window_size: WINDOW,
                chunking: ChunkPolicy::Auto,
                execution,
                ..PlatformConfig::default()
            },
        )
        .expect("platform");
        let mut driver = platform.driver();
        let (handle, public_key) =
            create_key(|command| driver.transmit(0, command).expect("transfer"));
        let mut path = Self {
            driver,
            command: client::sign_digest(handle, KEY_AUTH, b"", &MU),
            response: Vec::with_capacity(8192),
            public_key,
            _platform: platform,
        };
        let transfer = path.sign();
        // The measured transfer is the chunked one this benchmark is about.
        assert_eq!((transfer.chunks_sent, transfer.chunks_received), (1, 2));
        path
    }

    fn sign(&mut self) -> vtpm_guest::Transfer {
        let transfer = self
            .driver
            .transmit_with(
                0,
                &self.command,
                &mut self.response,
                TransmitOptions::default(),
            )
            .expect("transfer");
        debug_assert_eq!(self.response.len(), 4650);
        transfer
    }
}

/// The same command given to the simulator in-process.
struct InProcess {
    sim: SimBackend,
    command: Vec<u8>,
    response: Vec<u8>,
    public_key: Vec<u8>,
}

impl InProcess {
    fn new() -> Self {
        let mut sim = simulator();
        let mut response = Vec::with_capacity(8192);
        let (handle, public_key) = create_key(|command| {
            sim.sim_mut().execute(0, command, &mut response);
            response.clone()
        });
        let mut this = Self {
            sim,
            command: client::sign_digest(handle, KEY_AUTH, b"", &MU),
            response,
            public_key,
        };
        this.sign();
        client::parse_sign(&this.response).expect("SignDigest");
        this
    }

    fn sign(&mut self) {
        self.sim
            .sim_mut()
            .execute(0, black_box(&self.command), &mut self.response);
        black_box(&self.response);
    }
}

/// The operating system's generator, for `ml-dsa`'s hedged signing (the
/// simulator draws the same 32 bytes from its own DRBG).
struct OsRandom;

impl rand_core::TryRng for OsRandom {
    type Error = getrandom::Error;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        getrandom::u32()
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        getrandom::u64()
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        getrandom::fill(dst)
    }
}

impl rand_core::TryCryptoRng for OsRandom {}

/// `ml-dsa` directly: expand the key from ξ, then sign μ.
fn raw_sign_from_seed() {
    let key = ExpandedSigningKey::<MlDsa87>::from_seed(&black_box(XI).into());
    let signature = key
        .sign_mu_randomized(&black_box(MU).into(), &mut OsRandom)
        .expect("sign");
    black_box(signature.encode());
}

/// `ml-dsa` directly with the key kept expanded: signing alone.
fn raw_sign_expanded(key: &ExpandedSigningKey<MlDsa87>) {
    let signature = key
        .sign_mu_randomized(&black_box(MU).into(), &mut OsRandom)
        .expect("sign");
    black_box(signature.encode());
}

fn expanded_key() -> ExpandedSigningKey<MlDsa87> {
    ExpandedSigningKey::<MlDsa87>::from_seed(&XI.into())
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("mldsa87_sign");
    for (name, execution) in [("worker", Execution::Worker), ("inline", Execution::Inline)] {
        let mut path = DevicePath::new(execution);
        group.bench_function(format!("crb_{name}"), |b| b.iter(|| path.sign()));
    }
    let mut sim = InProcess::new();
    group.bench_function("sim_execute", |b| b.iter(|| sim.sign()));
    group.bench_function("ml_dsa_from_seed", |b| b.iter(raw_sign_from_seed));
    let key = expanded_key();
    group.bench_function("ml_dsa_expanded", |b| b.iter(|| raw_sign_expanded(&key)));
    group.finish();
}

/// Signatures per timed sample. ML-DSA's rejection sampling makes single
/// signatures vary several-fold; averaging a few per sample steadies the
/// median.
const BATCH: u32 = 8;
const WARM_UP_ROUNDS: usize = 15;
const ROUNDS: usize = 151;

/// One measured way to sign.
type Variant<'a> = Box<dyn FnMut() + 'a>;

fn time_batch(f: &mut dyn FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..BATCH {
        f();
    }
    start.elapsed() / BATCH
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ratio() {
    let mut worker = DevicePath::new(Execution::Worker);
    let mut inline = DevicePath::new(Execution::Inline);
    let mut sim = InProcess::new();
    // Equal seeds, equal key: the in-process baseline signs with the very
    // key the device paths use.
    assert_eq!(worker.public_key, sim.public_key);
    assert_eq!(inline.public_key, sim.public_key);
    let key = expanded_key();

    let mut variants: [(&str, Variant<'_>); 5] = [
        (
            "driver → CRB → sim, worker",
            Box::new(|| {
                black_box(worker.sign());
            }),
        ),
        (
            "driver → CRB → sim, inline",
            Box::new(|| {
                black_box(inline.sign());
            }),
        ),
        ("Sim::execute in-process", Box::new(|| sim.sign())),
        ("ml-dsa, expand seed + sign", Box::new(raw_sign_from_seed)),
        (
            "ml-dsa, sign (key expanded)",
            Box::new(|| raw_sign_expanded(&key)),
        ),
    ];
    // Round-robin, so drifts in clock speed or load hit every variant alike.
    let mut samples = vec![Vec::with_capacity(ROUNDS); variants.len()];
    for round in 0..WARM_UP_ROUNDS + ROUNDS {
        for (i, (_, f)) in variants.iter_mut().enumerate() {
            let t = time_batch(&mut **f);
            if round >= WARM_UP_ROUNDS {
                samples[i].push(t);
            }
        }
    }
    let medians: Vec<Duration> = samples.into_iter().map(median).collect();

    println!(
        "\nML-DSA-87 TPM2_SignDigest of a 64-byte μ, median per signature \
         ({ROUNDS} samples of {BATCH} after {WARM_UP_ROUNDS} warm-up rounds, one run)"
    );
    for ((name, _), median) in variants.iter().zip(&medians) {
        println!("  {name:<30} {median:>10.2?}");
    }
    let secs = |d: Duration| d.as_secs_f64();
    let (sim_baseline, from_seed, expanded) = (medians[2], medians[3], medians[4]);
    println!(
        "  ratios                          vs Sim::execute  vs ml-dsa seed+sign  vs ml-dsa sign"
    );
    for (name, median) in variants.iter().map(|v| v.0).zip(&medians).take(3) {
        println!(
            "  {name:<30} {:>14.3} {:>19.3} {:>15.3}",
            secs(*median) / secs(sim_baseline),
            secs(*median) / secs(from_seed),
            secs(*median) / secs(expanded),
        );
    }
}

criterion_group! {
    name = mldsa_sign;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(4));
    targets = benches
}

fn main() {
    mldsa_sign();
    ratio();
    Criterion::default().configure_from_args().final_summary();
}
