//! `vtpm`: run TPM traffic through a guest CRB driver, the vtpm CRB device
//! and a backend, and report what moved.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vtpm_crb::ChunkPolicy;
use vtpm_guest::CrbDriver;
use vtpm_platform::{MigratingBus, Platform, PlatformConfig};

mod backends;
mod exercise;
mod replay;
mod report;
mod serve;

use backends::{BackendArgs, BackendKind};
use report::Summary;

const EXAMPLES: &str = "\
Examples:
  vtpm exercise                               # embedded sim, 3968-byte window, table
  vtpm exercise --window 256 --json           # many pieces each way, JSON lines
  vtpm exercise --backend swtpm               # a fresh swtpm process
  vtpm probe --backend swtpm --json           # swtpm's capabilities and buffer sizes
  vtpm replay transcripts/startup.jsonl       # check a register sequence against the model";

/// Run TPM 2.0 traffic through a guest CRB driver, the vtpm CRB device
/// model (with PTP v1.07 chunking) and a backend, and report what moved.
#[derive(Debug, Parser)]
#[command(name = "vtpm", version, after_help = EXAMPLES)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, clap::Args)]
struct DeviceArgs {
    /// Bytes of the CRB data window (64..=3968); smaller windows force more pieces.
    #[arg(long, value_name = "BYTES", default_value_t = 3968)]
    window: usize,
    /// When the device advertises CapCRBChunk: auto (only when the backend
    /// buffer exceeds the window), on, off.
    #[arg(long, value_name = "POLICY", default_value = "auto", value_parser = parse_chunking)]
    chunking: ChunkPolicy,
}

fn parse_chunking(s: &str) -> Result<ChunkPolicy, String> {
    s.parse()
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the standard workload (Startup, GetRandom, PCR_Extend/PCR_Read
    /// checked on the host, buffer properties, full_frame, and the
    /// post-quantum steps when the TPM offers ML-DSA and ML-KEM) and report
    /// each step. Exits non-zero if any step fails.
    #[command(
        after_help = "Each step reports the pieces the guest driver really moved through the window.\n\
        full_frame sends a padded command of exactly the backend buffer size: TPM_RC_SIZE (0x095)\n\
        proves every byte arrived; TPM_RC_COMMAND_SIZE (0x142) would mean truncation."
    )]
    Exercise {
        #[command(flatten)]
        backend: BackendArgs,
        #[command(flatten)]
        device: DeviceArgs,
        /// Locality the guest driver uses (0..=4).
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=4))]
        locality: u8,
        /// One JSON object per line: each step, then {"summary": ...}.
        #[arg(long)]
        json: bool,
        /// After every MMIO access of the guest driver, save device and
        /// backend, drop them, and restore into fresh ones (a fresh swtpm
        /// process with its own state directory, for swtpm), then go on.
        #[arg(long)]
        migrate_every_step: bool,
    },
    /// Report what the backend offers (for swtpm: capabilities and buffer
    /// sizes in use/min/max), its TPM properties, and whether the device
    /// would advertise CapCRBChunk.
    Probe {
        #[command(flatten)]
        backend: BackendArgs,
        #[command(flatten)]
        device: DeviceArgs,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Run an MMIO transcript (JSON lines) against a CRB device whose
    /// backend is fresh and not yet started, and check every expectation.
    #[command(
        after_help = "Transcript lines (offsets relative to the locality's page; numbers as integers or \"0x...\"):\n\
  {\"config\": {\"window\": 256, \"chunking\": \"auto\"}}            optional, first line only\n\
  {\"write\": {\"locality\": 0, \"offset\": 76, \"size\": 4, \"value\": 1}}\n\
  {\"read\": {\"locality\": 0, \"offset\": 0, \"size\": 4, \"expect\": 130, \"mask\": 255}}\n\
  {\"window_write\": {\"locality\": 0, \"offset\": 0, \"hex\": \"8001...\"}}\n\
  {\"window_read\": {\"locality\": 0, \"offset\": 0, \"len\": 10, \"expect_hex\": \"8001xxxxxxxx00000000\"}}\n\
  {\"wait\": {\"locality\": 0, \"offset\": 76, \"mask\": 1, \"value\": 0, \"timeout_ms\": 2000}}\n\
Exits 0 when every expectation holds; otherwise names the first line that failed."
    )]
    Replay {
        /// The transcript file.
        file: PathBuf,
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Serve the embedded PQC simulator over the swtpm
    /// protocol (control and data channels) and/or the TPM simulator
    /// protocol (mssim), for tpm2-tools, tpm2-tss, QEMU and vtpm's backends.
    #[command(after_help = serve::EXAMPLES)]
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VTPM_LOG")
                .unwrap_or_else(|_| level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vtpm: error: {e}");
            ExitCode::from(2)
        }
    }
}

type AnyError = Box<dyn std::error::Error>;

fn platform(backend: &BackendArgs, device: &DeviceArgs) -> Result<Platform, AnyError> {
    let opened = backend.open().map_err(|e| {
        format!(
            "cannot open the {} backend: {e}",
            format!("{:?}", backend.backend).to_lowercase()
        )
    })?;
    Ok(Platform::new(
        opened,
        PlatformConfig {
            window_size: device.window,
            chunking: device.chunking,
            ..PlatformConfig::default()
        },
    )?)
}

fn run(command: Command) -> Result<ExitCode, AnyError> {
    match command {
        Command::Exercise {
            backend,
            device,
            locality,
            json,
            migrate_every_step,
        } => run_exercise(&backend, &device, locality, json, migrate_every_step),
        Command::Probe {
            backend,
            device,
            json,
        } => run_probe(&backend, &device, json),
        Command::Replay { file, backend } => run_replay(&file, &backend),
        Command::Serve(args) => serve::run(&args),
    }
}

fn run_exercise(
    backend: &BackendArgs,
    device: &DeviceArgs,
    locality: u8,
    json: bool,
    migrate: bool,
) -> Result<ExitCode, AnyError> {
    let platform = platform(backend, device)?;
    let (buffer, chunking) =
        platform.with_device(|d| (d.config().backend_buffer, d.chunking_advertised()));
    let backend_name = platform.backend_name().to_string();
    if !json {
        println!("{}", report::table_header());
    }
    let print = move |s: &report::StepReport| {
        if json {
            println!("{}", report::json_line(s));
        } else {
            println!("{}", report::table_row(s));
        }
    };
    let (steps, migrations) = if migrate {
        let args = backend.clone();
        let bus = MigratingBus::new(platform, Box::new(move || args.open()));
        let mut driver = CrbDriver::new(bus);
        let steps = workload(&mut driver, locality, buffer, print);
        let bus = driver.mmio();
        if let Some(e) = bus.error() {
            return Err(format!(
                "migration failed after {} migrations: {e}",
                bus.migrations()
            )
            .into());
        }
        (steps, Some(bus.migrations()))
    } else {
        let mut driver = platform.driver();
        (workload(&mut driver, locality, buffer, print), None)
    };
    let failed = steps.iter().filter(|s| !s.ok).count();
    let summary = Summary {
        backend: backend_name,
        backend_buffer: buffer,
        window: device.window,
        chunking_advertised: chunking,
        steps: steps.len(),
        failed,
        migrations,
    };
    if json {
        println!("{}", report::json_summary(&summary));
    } else {
        println!("{}", report::table_summary(&summary));
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The whole workload on `driver`; prints each step as it ends.
fn workload<M: vtpm_guest::Mmio>(
    driver: &mut CrbDriver<M>,
    locality: u8,
    buffer: usize,
    print: impl Fn(&report::StepReport) + 'static,
) -> Vec<report::StepReport> {
    let mut runner = exercise::Runner::new(driver, locality);
    runner.on_step = Box::new(print);
    exercise::classic_steps(&mut runner, buffer);
    exercise::pqc_steps(&mut runner);
    runner.steps
}

fn run_probe(backend: &BackendArgs, device: &DeviceArgs, json: bool) -> Result<ExitCode, AnyError> {
    let mut out = serde_json::Map::new();
    out.insert(
        "backend".into(),
        format!("{:?}", backend.backend).to_lowercase().into(),
    );
    if backend.backend == BackendKind::Swtpm && backend.swtpm_ctrl.is_none() {
        let info = vtpm_backend::swtpm::probe(backend.swtpm_config())?;
        out.insert(
            "swtpm".into(),
            serde_json::json!({
                "version": info.version,
                "capabilities": format!("{:#x}", info.capabilities.bits()),
                "capability_names": info.capability_names(),
                "buffer_size": {
                    "in_use": info.buffer.in_use,
                    "min": info.buffer.min,
                    "max": info.buffer.max,
                },
                "tpm_info": info.tpm_info_json.as_deref().and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok()),
            }),
        );
        if !json {
            println!("{info}");
        }
    }
    let platform = platform(backend, device)?;
    let (buffer, chunking, window) = platform.with_device(|d| {
        (
            d.config().backend_buffer,
            d.chunking_advertised(),
            d.config().window_size,
        )
    });
    let mut driver = platform.driver();
    let info = driver.probe()?;
    let mut runner = exercise::Runner::new(&mut driver, 0);
    let properties = exercise::properties(&mut runner);
    out.insert("backend_buffer".into(), buffer.into());
    out.insert("window".into(), window.into());
    out.insert("chunking_advertised".into(), chunking.into());
    out.insert("intf_id".into(), format!("{:#010x}", info.intf_id).into());
    out.insert(
        "tpm_properties".into(),
        properties
            .iter()
            .map(|(k, v)| (format!("{k:#x}"), serde_json::Value::from(*v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    );
    if json {
        println!("{}", serde_json::Value::Object(out));
    } else {
        println!(
            "backend buffer: {buffer} B; window {window} B; CapCRBChunk {}",
            if chunking {
                "advertised"
            } else {
                "not advertised"
            }
        );
        println!("INTF_ID:        {:#010x}", info.intf_id);
        for (k, v) in &properties {
            println!("  TPM property {k:#x} = {v:#x}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_replay(file: &PathBuf, backend: &BackendArgs) -> Result<ExitCode, AnyError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let transcript = replay::Transcript::parse(&text)?;
    let device = DeviceArgs {
        window: transcript.config.window.unwrap_or(3968),
        chunking: transcript.config.chunking.unwrap_or_default(),
    };
    let platform = platform(backend, &device)?;
    let mut bus = platform.bus();
    match replay::run(&transcript, &mut bus) {
        Ok(n) => {
            println!("{}: {n} steps, all expectations hold", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            Ok(ExitCode::FAILURE)
        }
    }
}
