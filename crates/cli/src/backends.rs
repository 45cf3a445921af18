//! Choosing and opening a backend from the command line.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use vtpm_backend::swtpm::{DataChannel, SwtpmBackend, SwtpmConfig};
use vtpm_backend::{Backend, BackendError};

/// Which TPM answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// The embedded software TPM (ML-DSA, ML-KEM, 8 KiB buffer); needs nothing installed.
    Sim,
    /// A swtpm process (libtpms), spawned with a fresh state directory or attached to.
    Swtpm,
    /// A TPM simulator speaking the mssim protocol (the reference simulator, `vtpm serve --mssim`); needs --mssim.
    Mssim,
}

/// Backend options shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct BackendArgs {
    /// The TPM behind the device.
    #[arg(long, value_enum, default_value_t = BackendKind::Sim)]
    pub backend: BackendKind,
    /// Buffer size to ask the backend for (sim: default 8192, min 4096;
    /// swtpm: default the largest it offers, clamped to its range).
    #[arg(long, value_name = "BYTES")]
    pub buffer_size: Option<u32>,
    /// swtpm binary (default: $VTPM_SWTPM, else `swtpm` on PATH).
    #[arg(long, value_name = "PATH")]
    pub swtpm_binary: Option<PathBuf>,
    /// swtpm state directory to use instead of a fresh temporary one.
    #[arg(long, value_name = "DIR")]
    pub swtpm_state_dir: Option<PathBuf>,
    /// Attach to a running swtpm's control socket instead of spawning one.
    #[arg(long, value_name = "SOCKET")]
    pub swtpm_ctrl: Option<PathBuf>,
    /// With --swtpm-ctrl: swtpm's data socket (default: a socketpair handed over with SET_DATAFD).
    #[arg(long, value_name = "SOCKET", requires = "swtpm_ctrl")]
    pub swtpm_data: Option<PathBuf>,
    /// With --backend mssim: the simulator's command port, tcp:HOST:PORT (platform port PORT+1).
    #[arg(long, value_name = "ENDPOINT")]
    pub mssim: Option<String>,
}

impl BackendArgs {
    /// The swtpm configuration these options describe.
    pub fn swtpm_config(&self) -> SwtpmConfig {
        let mut config = SwtpmConfig::default();
        if let Some(b) = &self.swtpm_binary {
            config.binary = b.clone();
        }
        config.state_dir = self.swtpm_state_dir.clone();
        config.buffer_size = self.buffer_size;
        config
    }

    /// Opens the backend.
    pub fn open(&self) -> Result<Box<dyn Backend>, BackendError> {
        match self.backend {
            BackendKind::Sim => {
                let mut config = vtpm_backend::sim::SimConfig::default();
                if let Some(size) = self.buffer_size {
                    config.buffer_size = size as usize;
                }
                let sim = vtpm_backend::sim::SimBackend::new(config)
                    .map_err(|e| BackendError::Config(e.to_string()))?;
                Ok(Box::new(sim))
            }
            BackendKind::Swtpm => match &self.swtpm_ctrl {
                Some(ctrl) => {
                    let data = match &self.swtpm_data {
                        Some(path) => DataChannel::Unix(Some(path.clone())),
                        None => DataChannel::SocketPair,
                    };
                    let mut config = self.swtpm_config();
                    config.data = data;
                    Ok(Box::new(SwtpmBackend::attach_with_config(ctrl, &config)?))
                }
                None => Ok(Box::new(SwtpmBackend::spawn(self.swtpm_config())?)),
            },
            BackendKind::Mssim => {
                let endpoint = self.mssim.as_deref().ok_or(BackendError::Config(
                    "--backend mssim needs --mssim tcp:HOST:PORT".into(),
                ))?;
                let addr = endpoint.strip_prefix("tcp:").ok_or_else(|| {
                    BackendError::Config(format!("{endpoint}: expected tcp:HOST:PORT"))
                })?;
                let config = vtpm_backend::mssim::MssimConfig::new(addr);
                Ok(Box::new(vtpm_backend::mssim::MssimBackend::connect(
                    &config,
                )?))
            }
        }
    }
}
