//! `vtpm`: run TPM traffic through a guest CRB or TIS driver, the vtpm CRB
//! or TIS device and a backend, and report what moved.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use vtpm_backend::Backend;
use vtpm_crb::ChunkPolicy;
use vtpm_guest::{CrbDriver, Timeouts, TisDriver};
use vtpm_platform::{CrbBus, Device, Execution, Interface, MigratingBus, Platform, PlatformConfig};

mod backends;
mod exercise;
mod output;
mod properties;
mod replay;
mod report;
mod serve;
mod watch;

use backends::{BackendArgs, BackendKind};
use exercise::{Stop, Transport, Watch};
use report::Summary;
use watch::{Monitor, Watched};

const EXAMPLES: &str = "\
Examples:
  vtpm exercise                               # embedded sim, 3968-byte window, table
  vtpm exercise --window 256 --json           # many pieces each way, JSON lines
  vtpm exercise --backend swtpm               # a fresh swtpm process
  vtpm exercise --interface tis --json        # the same workload over TIS/FIFO
  vtpm probe --backend swtpm --json           # swtpm's capabilities and buffer sizes
  vtpm replay transcripts/startup.jsonl       # check a register sequence against the model";

/// Run TPM 2.0 traffic through a guest CRB or TIS driver, the vtpm CRB
/// device model (with PTP v1.07 chunking) or TIS/FIFO device model, and a
/// backend, and report what moved.
#[derive(Debug, Parser)]
#[command(
    name = "vtpm",
    version,
    after_help = EXAMPLES,
    disable_help_subcommand = true
)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, clap::Args)]
struct DeviceArgs {
    /// The interface the guest driver sees: crb, or tis (TIS/FIFO, whose
    /// FIFO buffer is the backend buffer; --window and --chunking do not
    /// apply).
    #[arg(long, value_name = "INTERFACE", default_value = "crb", value_parser = parse_interface)]
    interface: Interface,
    /// Bytes of the CRB data window (64..=3968); smaller windows force more pieces.
    #[arg(long, value_name = "BYTES", default_value_t = 3968)]
    window: usize,
    /// When the device advertises CapCRBChunk: auto (only when the backend
    /// buffer exceeds the window), on, off.
    #[arg(long, value_name = "POLICY", default_value = "auto", value_parser = parse_chunking)]
    chunking: ChunkPolicy,
    /// Map the data window as guest RAM, as QEMU does: window accesses
    /// cause no MMIO exits; only register accesses reach the device.
    #[arg(long)]
    window_in_ram: bool,
    /// Run backend commands on the thread that writes Start (a VMM's vCPU
    /// thread) instead of a worker: no polling of Start, so exit counts
    /// repeat exactly from run to run.
    #[arg(long)]
    inline: bool,
}

fn parse_chunking(s: &str) -> Result<ChunkPolicy, String> {
    s.parse()
}

fn parse_interface(s: &str) -> Result<Interface, String> {
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
        With --interface tis, chunks_sent/chunks_received (sent/recv) count the FIFO bursts the\n\
        TIS driver moved: each a burstCount read followed by up to that many bytes.\n\
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
    /// would advertise CapCRBChunk (CRB) or its interface registers (TIS).
    Probe {
        #[command(flatten)]
        backend: BackendArgs,
        #[command(flatten)]
        device: DeviceArgs,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Run an MMIO transcript (JSON lines) against a CRB or TIS device
    /// whose backend is fresh and not yet started, and check every
    /// expectation.
    #[command(
        after_help = "Transcript lines (offsets relative to the locality's page; numbers as integers or \"0x...\"):\n\
  {\"config\": {\"window\": 256, \"chunking\": \"auto\"}}            optional, first line only\n\
  {\"config\": {\"interface\": \"tis\"}}                            a TIS device (default \"crb\")\n\
  {\"write\": {\"locality\": 0, \"offset\": 76, \"size\": 4, \"value\": 1}}\n\
  {\"read\": {\"locality\": 0, \"offset\": 0, \"size\": 4, \"expect\": 130, \"mask\": 255}}\n\
  {\"window_write\": {\"locality\": 0, \"offset\": 0, \"hex\": \"8001...\"}}\n\
  {\"window_read\": {\"locality\": 0, \"offset\": 0, \"len\": 10, \"expect_hex\": \"8001xxxxxxxx00000000\"}}\n\
  {\"wait\": {\"locality\": 0, \"offset\": 76, \"mask\": 1, \"value\": 0, \"timeout_ms\": 2000}}\n\
  {\"fifo_write\": {\"locality\": 0, \"hex\": \"8001...\"}}                TIS: one byte per TPM_DATA_FIFO write\n\
  {\"fifo_read\": {\"locality\": 0, \"len\": 10, \"expect_hex\": \"8001xx...\"}}  TIS: one byte per TPM_DATA_FIFO read\n\
Register offsets stay inside the locality's 4 KiB page, window accesses inside the window;\n\
window steps need CRB, fifo steps TIS.\n\
Exits 0 when every expectation holds; 1 naming the first line that failed; 2 naming the line\n\
that cannot be run (not JSON, unknown step or key, a number out of range, an access outside\n\
the device, a wait over 600000 ms, or no step at all)."
    )]
    Replay {
        /// The transcript file.
        file: PathBuf,
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Print the help of vtpm or of one of its commands.
    Help {
        /// The command to explain (exercise, probe, replay).
        command: Option<String>,
    },
    /// Serve the embedded PQC simulator over the swtpm
    /// protocol (control and data channels) and/or the TPM simulator
    /// protocol (mssim), for tpm2-tools, tpm2-tss, QEMU and vtpm's backends.
    #[command(after_help = serve::EXAMPLES)]
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vtpm: error: {}", watch::chain(e.as_ref()));
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr, coloured only when stderr is a terminal; `VTPM_LOG`
/// (a tracing filter) overrides `-v`.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VTPM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

type AnyError = Box<dyn std::error::Error>;

/// The platform of `device` over the backend `backend` opens, whose
/// commands `monitor` watches.
fn platform(
    backend: &BackendArgs,
    device: &DeviceArgs,
    monitor: &Monitor,
) -> Result<Platform, AnyError> {
    backend.validate()?;
    let opened = backend.open_watched(monitor)?;
    let platform = Platform::new(
        opened,
        PlatformConfig {
            interface: device.interface,
            window_size: device.window,
            chunking: device.chunking,
            window_in_ram: device.window_in_ram,
            execution: if device.inline {
                Execution::Inline
            } else {
                Execution::Worker
            },
            ..PlatformConfig::default()
        },
    )?;
    tracing::info!(
        interface = device.interface.name(),
        window = device.window,
        chunking = ?device.chunking,
        "platform ready"
    );
    Ok(platform)
}

/// What the device is: its backend buffer, and for CRB its window and
/// whether it advertises CapCRBChunk.
#[derive(Debug, Clone, Copy)]
struct Facts {
    buffer: usize,
    crb: Option<(usize, bool)>,
}

fn facts(platform: &Platform) -> Facts {
    platform.with_device(|d| match d {
        Device::Crb(c) => Facts {
            buffer: c.config().backend_buffer,
            crb: Some((c.config().window_size, c.chunking_advertised())),
        },
        Device::Tis(t) => Facts {
            buffer: t.config().backend_buffer,
            crb: None,
        },
    })
}

/// What the runner needs to explain failures on `platform`.
fn watch(platform: &Platform, monitor: &Monitor) -> Watch {
    let (window, chunking) = facts(platform).crb.unwrap_or((0, false));
    Watch {
        monitor: monitor.clone(),
        window,
        chunking,
    }
}

/// The driver's timeouts under `--timeout`. The driver waits longer than
/// the backend, so a hung backend is reported with the backend's own cause
/// before the driver gives up.
fn driver_timeouts(timeout: Option<Duration>) -> Timeouts {
    let mut timeouts = Timeouts::default();
    if let Some(t) = timeout {
        timeouts.command = t + t.max(Duration::from_secs(1));
    }
    timeouts
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
        Command::Help { command } => run_help(command.as_deref()),
        Command::Serve(args) => serve::run(&args),
    }
}

fn run_help(command: Option<&str>) -> Result<ExitCode, AnyError> {
    let mut cli = Cli::command();
    cli.build();
    let help = match command {
        None => cli.render_long_help(),
        Some(name) => match cli.find_subcommand_mut(name) {
            Some(sub) => sub.render_long_help(),
            None => {
                return Err(format!(
                    "no command {name:?}; the commands are exercise, probe, replay and help"
                )
                .into())
            }
        },
    };
    output::line(help.to_string().trim_end());
    Ok(ExitCode::SUCCESS)
}

fn run_exercise(
    backend: &BackendArgs,
    device: &DeviceArgs,
    locality: u8,
    json: bool,
    migrate: bool,
) -> Result<ExitCode, AnyError> {
    let monitor = Monitor::default();
    let platform = platform(backend, device, &monitor)?;
    let watch = watch(&platform, &monitor);
    let facts = facts(&platform);
    let buffer = facts.buffer;
    let backend_name = platform.backend_name().to_string();
    if !json && !output::line(&report::table_header()) {
        return Ok(ExitCode::SUCCESS);
    }
    let print = move |s: &report::StepReport| {
        if json {
            output::line(&report::json_line(s))
        } else {
            output::line(&report::table_row(s))
        }
    };
    let timeouts = driver_timeouts(backend.timeout);
    let total_exits;
    let (steps, stopped, migrations) = if migrate {
        let args = backend.clone();
        let factory_monitor = monitor.clone();
        let bus = MigratingBus::new(
            platform,
            Box::new(move || {
                args.open()
                    .map(|b| Box::new(Watched::new(b, factory_monitor.clone())) as Box<dyn Backend>)
            }),
        );
        let exits: fn(&MigratingBus) -> u64 = |b| b.mmio_exits().total();
        let (steps, stopped, migrated) = match device.interface {
            Interface::Crb => {
                let mut driver = CrbDriver::new(bus);
                driver.set_timeouts(timeouts);
                let (steps, stopped) = workload(&mut driver, locality, buffer, watch, exits, print);
                total_exits = driver.mmio().mmio_exits().total();
                (steps, stopped, migrations(driver.mmio()))
            }
            Interface::Tis => {
                let mut driver = TisDriver::new(bus);
                driver.set_timeouts(timeouts);
                let (steps, stopped) = workload(&mut driver, locality, buffer, watch, exits, print);
                total_exits = driver.mmio().mmio_exits().total();
                (steps, stopped, migrations(driver.mmio()))
            }
        };
        (steps, stopped, Some(migrated?))
    } else {
        let exits: fn(&CrbBus) -> u64 = |b| b.mmio_exits().total();
        let (steps, stopped) = match device.interface {
            Interface::Crb => {
                let mut driver = platform.driver();
                driver.set_timeouts(timeouts);
                workload(&mut driver, locality, buffer, watch, exits, print)
            }
            Interface::Tis => {
                let mut driver = platform.tis_driver();
                driver.set_timeouts(timeouts);
                workload(&mut driver, locality, buffer, watch, exits, print)
            }
        };
        total_exits = platform.mmio_exits().total();
        (steps, stopped, None)
    };
    let stopped = match stopped {
        Some(Stop::OutputClosed) => return Ok(ExitCode::SUCCESS),
        Some(Stop::Failure { step, cause }) => Some(format!("{step}: {cause}")),
        None => None,
    };
    let failed = steps.iter().filter(|s| !s.ok).count();
    let summary = Summary {
        backend: backend_name,
        interface: device.interface.name(),
        backend_buffer: buffer,
        window: facts.crb.map(|(window, _)| window),
        chunking_advertised: facts.crb.map(|(_, chunking)| chunking),
        steps: steps.len(),
        failed,
        window_in_ram: device.window_in_ram,
        mmio_exits: total_exits,
        migrations,
        stopped,
    };
    if json {
        output::line(&report::json_summary(&summary));
    } else {
        output::line(&report::table_summary(&summary));
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// How many migrations `bus` made, or why they stopped.
fn migrations(bus: &MigratingBus) -> Result<u64, AnyError> {
    match bus.error() {
        Some(e) => Err(format!(
            "migration failed after {} migrations: {e}",
            bus.migrations()
        )
        .into()),
        None => Ok(bus.migrations()),
    }
}

/// The whole workload on `driver`; prints each step as it ends. Returns
/// the steps and why the run stopped early, if it did.
fn workload<T: Transport>(
    driver: &mut T,
    locality: u8,
    buffer: usize,
    watch: Watch,
    exits: fn(&T::Bus) -> u64,
    print: impl Fn(&report::StepReport) -> bool + 'static,
) -> (Vec<report::StepReport>, Option<Stop>) {
    let mut runner = exercise::Runner::new(driver, locality);
    runner.exits = Some(exits);
    runner.on_step = Box::new(print);
    runner.watch(watch);
    exercise::classic_steps(&mut runner, buffer);
    exercise::pqc_steps(&mut runner);
    (runner.steps, runner.stopped)
}

fn run_probe(backend: &BackendArgs, device: &DeviceArgs, json: bool) -> Result<ExitCode, AnyError> {
    backend.validate()?;
    let mut out = serde_json::Map::new();
    out.insert("backend".into(), backend.backend.name().into());
    let mut text = Vec::new();
    if backend.backend == BackendKind::Swtpm && backend.swtpm_ctrl.is_none() {
        let info = vtpm_backend::swtpm::probe(backend.swtpm_config())
            .map_err(|e| format!("cannot start swtpm: {}", watch::chain(&e)))?;
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
        text.push(info.to_string());
    }
    let monitor = Monitor::default();
    let platform = platform(backend, device, &monitor)?;
    let facts = facts(&platform);
    let buffer = facts.buffer;
    let watch = watch(&platform, &monitor);
    let timeouts = driver_timeouts(backend.timeout);
    out.insert("interface".into(), device.interface.name().into());
    out.insert("backend_buffer".into(), buffer.into());
    let mut registers = Vec::new();
    let properties = match facts.crb {
        Some((window, chunking)) => {
            let mut driver = platform.driver();
            driver.set_timeouts(timeouts);
            let info = driver.probe()?;
            out.insert("window".into(), window.into());
            out.insert("chunking_advertised".into(), chunking.into());
            out.insert("intf_id".into(), format!("{:#010x}", info.intf_id).into());
            registers.push(format!(
                "backend buffer: {buffer} B; window {window} B; CapCRBChunk {}",
                if chunking {
                    "advertised"
                } else {
                    "not advertised"
                }
            ));
            registers.push(format!("INTF_ID:        {:#010x}", info.intf_id));
            let mut runner = exercise::Runner::new(&mut driver, 0);
            runner.watch(watch);
            exercise::properties(&mut runner)
        }
        None => {
            let mut driver = platform.tis_driver();
            driver.set_timeouts(timeouts);
            let info = driver.probe()?;
            let interface_id = format!("{:#010x}", info.interface_id);
            let capability = format!("{:#010x}", info.intf_capability);
            let did_vid = format!("{:#06x}:{:#06x}", info.vendor_id, info.device_id);
            registers.push(format!(
                "backend buffer: {buffer} B (the TIS FIFO buffer); {} bytes per FIFO access",
                info.max_access
            ));
            registers.push(format!("INTERFACE_ID:   {interface_id}"));
            registers.push(format!("INTF_CAPABILITY: {capability}"));
            registers.push(format!("VID:DID:        {did_vid}, RID {}", info.revision));
            out.insert("interface_id".into(), interface_id.into());
            out.insert("intf_capability".into(), capability.into());
            out.insert("max_access".into(), info.max_access.into());
            out.insert("vid_did".into(), did_vid.into());
            out.insert("rid".into(), info.revision.into());
            let mut runner = exercise::Runner::new(&mut driver, 0);
            runner.watch(watch);
            exercise::properties(&mut runner)
        }
    }
    .map_err(|cause| format!("cannot read the TPM properties: {cause}"))?;
    out.insert(
        "tpm_properties".into(),
        properties
            .iter()
            .map(|(k, v)| (properties::label(*k), serde_json::Value::from(*v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    );
    if json {
        output::line(&serde_json::Value::Object(out).to_string());
        return Ok(ExitCode::SUCCESS);
    }
    text.extend(registers);
    text.push("TPM properties:".into());
    for (k, v) in &properties {
        text.push(format!("  {:<28} {k:#07x} = {v:#x}", properties::label(*k)));
    }
    for line in text {
        if !output::line(&line) {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_replay(file: &Path, backend: &BackendArgs) -> Result<ExitCode, AnyError> {
    let text = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let text =
        String::from_utf8(text).map_err(|e| format!("{}: not UTF-8 text: {e}", file.display()))?;
    let outcome = replay::replay(&text, backend)
        .map_err(|e| format!("{}: {}", file.display(), watch::chain(e.as_ref())))?;
    match outcome {
        Ok(n) => {
            output::line(&format!(
                "{}: {n} steps, all expectations hold",
                file.display()
            ));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            Ok(ExitCode::FAILURE)
        }
    }
}
