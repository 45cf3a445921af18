//! `vtpm serve`: the embedded PQC simulator served over the swtpm and mssim
//! protocols.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use vtpm_server::engine::{BufferLimits, Reopen, Tpm, TpmOptions};
use vtpm_server::store::{StateKey, Store};
use vtpm_server::{Channels, Endpoint, Server};

/// Examples shown under `vtpm serve --help`.
pub const EXAMPLES: &str = "\
Examples:
  vtpm serve --mssim tcp:127.0.0.1:2321
      tpm2_getrandom 8 --hex -T mssim:host=127.0.0.1,port=2321
  vtpm serve --server tcp:127.0.0.1:2321              # control channel on 2322
      tpm2_pcrread sha256:0 -T swtpm:host=127.0.0.1,port=2321
  vtpm serve --ctrl unix:/run/vtpm/ctrl --state /var/lib/vtpm --key-file key --need-init
      qemu-system-x86_64 -chardev socket,id=chr,path=/run/vtpm/ctrl \\
        -tpmdev emulator,id=tpm0,chardev=chr -device tpm-crb,tpmdev=tpm0 ...
  vtpm exercise --backend swtpm --swtpm-ctrl /run/vtpm/ctrl   # vtpm's own client

Port 0 picks free ports; the line printed on stdout at start names the real ones.
SIGTERM or SIGINT, swtpm's SHUTDOWN and mssim's TPM_STOP store the state and exit 0.";

/// Options of `vtpm serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// mssim command port (tcp:HOST:PORT); the platform port is PORT+1.
    #[arg(long, value_name = "ENDPOINT", value_parser = parse_endpoint)]
    pub mssim: Option<Endpoint>,
    /// mssim platform port instead of the command port + 1.
    #[arg(long, value_name = "ENDPOINT", value_parser = parse_endpoint, requires = "mssim")]
    pub mssim_platform: Option<Endpoint>,
    /// swtpm control channel (unix:PATH or tcp:HOST:PORT). On a Unix socket,
    /// clients may hand over their data channel with SET_DATAFD.
    #[arg(long, value_name = "ENDPOINT", value_parser = parse_endpoint)]
    pub ctrl: Option<Endpoint>,
    /// swtpm data channel (unix:PATH or tcp:HOST:PORT). Over TCP without
    /// --ctrl, the control channel listens on PORT+1 (tpm2-tss's swtpm TCTI).
    #[arg(long, value_name = "ENDPOINT", value_parser = parse_endpoint)]
    pub server: Option<Endpoint>,
    /// Keep the TPM's state in DIR across restarts (locked: one server per DIR).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Encrypt the state files with AES-256-GCM under this key (32 raw
    /// bytes or 64 hex digits). Needs --state.
    #[arg(long, value_name = "FILE", requires = "state")]
    pub key_file: Option<PathBuf>,
    /// Start powered off, as swtpm without `--flags not-need-init` and the
    /// reference simulator do: swtpm clients send INIT (QEMU does), mssim
    /// clients POWER_ON (tpm2-tss does). Default: powered on.
    #[arg(long)]
    pub need_init: bool,
    /// Do not send TPM2_Startup(CLEAR) after the power-on at start (the
    /// client sends TPM2_Startup itself, e.g. to resume a Shutdown(STATE)).
    #[arg(long)]
    pub no_startup: bool,
    /// Buffer size of the simulator at start, and the largest SET_BUFFERSIZE
    /// grants (min 4096).
    #[arg(long, value_name = "BYTES", default_value_t = vtpm_sim::DEFAULT_BUFFER_SIZE)]
    pub buffer_size: usize,
}

fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    s.parse()
        .map_err(|e: vtpm_server::ServerError| e.to_string())
}

type AnyError = Box<dyn std::error::Error>;

/// Runs the server until it is told to stop.
pub fn run(args: &ServeArgs) -> Result<ExitCode, AnyError> {
    if args.mssim.is_none() && args.ctrl.is_none() && args.server.is_none() {
        return Err("nothing to serve: give --mssim, --ctrl and/or --server".into());
    }
    let store = match &args.state {
        Some(dir) => {
            let key = args
                .key_file
                .as_deref()
                .map(StateKey::from_file)
                .transpose()?;
            Some(Store::open(dir, key)?)
        }
        None => None,
    };
    let open = |size: usize| {
        let config = vtpm_backend::sim::SimConfig {
            buffer_size: size,
            ..Default::default()
        };
        vtpm_backend::sim::SimBackend::new(config)
            .map(|b| Box::new(b) as Box<dyn vtpm_backend::Backend>)
            .map_err(|e| vtpm_backend::BackendError::Config(e.to_string()))
    };
    let backend = open(args.buffer_size)?;
    let reopen: Reopen = Box::new(open);
    let limits = BufferLimits {
        min: vtpm_sim::MIN_BUFFER_SIZE,
        max: args.buffer_size,
    };
    let reopen = Some((reopen, limits));
    let mut tpm = Tpm::new(
        backend,
        reopen,
        store,
        TpmOptions {
            startup_clear: !args.no_startup,
        },
    )?;
    if !args.need_init {
        tpm.power_on_at_start()?;
    }
    let mut channels = Channels::default();
    if let Some(mssim) = &args.mssim {
        channels.bind_mssim(mssim, args.mssim_platform.as_ref())?;
    }
    channels.bind_swtpm(args.ctrl.as_ref(), args.server.as_ref())?;
    let mut line = String::from("vtpm serve: listening");
    if let Some((command, platform)) = &channels.mssim {
        line += &format!(
            " mssim={} platform={}",
            command.endpoint(),
            platform.endpoint()
        );
    }
    if let Some(ctrl) = &channels.ctrl {
        line += &format!(" ctrl={}", ctrl.endpoint());
    }
    if let Some(server) = &channels.server {
        line += &format!(" server={}", server.endpoint());
    }
    let server = Server::new(tpm, channels)?;
    let stop = server.stop_handle();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    std::thread::Builder::new()
        .name("vtpm-serve-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                tracing::info!(signal, "stopping on a signal");
                stop.stop();
            }
        })?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    let reason = server.run()?;
    eprintln!("vtpm serve: stopped ({reason:?}); state stored");
    Ok(ExitCode::SUCCESS)
}
