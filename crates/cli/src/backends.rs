//! Choosing and opening a backend from the command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use vtpm_backend::swtpm::{DataChannel, SwtpmBackend, SwtpmConfig};
use vtpm_backend::{Backend, BackendError};

use crate::watch::{Monitor, Watched};

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

impl BackendKind {
    /// The name the command line uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sim => "sim",
            Self::Swtpm => "swtpm",
            Self::Mssim => "mssim",
        }
    }
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
    /// How long one TPM command may take before it fails (e.g. 2s, 500ms,
    /// 1m; a bare number is seconds). Bounds the guest driver's wait and
    /// swtpm's command and control replies. Default 300s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// swtpm binary (default: $VTPM_SWTPM, else `swtpm` on PATH).
    #[arg(long, value_name = "PATH")]
    pub swtpm_binary: Option<PathBuf>,
    /// swtpm state directory to use instead of a fresh temporary one; its
    /// parent must exist.
    #[arg(long, value_name = "DIR")]
    pub swtpm_state_dir: Option<PathBuf>,
    /// Attach to a running swtpm's control socket instead of spawning one.
    /// The swtpm keeps running afterwards unless --shutdown is given.
    #[arg(long, value_name = "SOCKET")]
    pub swtpm_ctrl: Option<PathBuf>,
    /// With --swtpm-ctrl: swtpm's data socket (default: a socketpair handed
    /// over with SET_DATAFD, for a swtpm started without --server).
    #[arg(long, value_name = "SOCKET", requires = "swtpm_ctrl")]
    pub swtpm_data: Option<PathBuf>,
    /// With --swtpm-ctrl: send SHUTDOWN when done, so the attached swtpm exits.
    #[arg(long, requires = "swtpm_ctrl")]
    pub shutdown: bool,
    /// With --backend mssim: the simulator's command port, tcp:HOST:PORT (platform port PORT+1).
    #[arg(long, value_name = "ENDPOINT")]
    pub mssim: Option<String>,
}

/// Why the backend options cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OptionError {
    /// A swtpm option was given with another backend.
    #[error("{option} is a swtpm option, but the backend is {backend}; add --backend swtpm")]
    SwtpmOptionWithoutSwtpm {
        /// The option.
        option: &'static str,
        /// The backend chosen.
        backend: &'static str,
    },
    /// --mssim was given with another backend.
    #[error("--mssim names an mssim simulator, but the backend is {backend}; add --backend mssim")]
    MssimOptionWithoutMssim {
        /// The backend chosen.
        backend: &'static str,
    },
    /// --backend mssim without the simulator's address.
    #[error("--backend mssim needs --mssim tcp:HOST:PORT (the simulator's command port)")]
    MssimEndpointMissing,
    /// Both spawning and attaching options were given.
    #[error(
        "--{option} applies to a swtpm that vtpm starts, not to one attached with --swtpm-ctrl"
    )]
    SpawnOptionWhileAttaching {
        /// The option.
        option: &'static str,
    },
    /// The state directory's parent does not exist.
    #[error("--swtpm-state-dir {dir}: its parent directory {parent} does not exist (only the last component is created)")]
    StateDirParentMissing {
        /// The directory asked for.
        dir: String,
        /// Its missing parent.
        parent: String,
    },
    /// The state directory could not be created.
    #[error("--swtpm-state-dir {dir}: cannot create it")]
    StateDir {
        /// The directory asked for.
        dir: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The backend failed to open.
    #[error("cannot open the {backend} backend: {source}{hint}")]
    Open {
        /// The backend.
        backend: &'static str,
        /// Why.
        #[source]
        source: BackendError,
        /// What to try instead ("" when nothing better is known).
        hint: &'static str,
    },
}

/// Parses "2s", "500ms", "1.5s", "2m" or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 2s, 500ms or 1m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use ms, s or m)"
            ))
        }
    };
    if !(0.001..=3600.0).contains(&seconds) {
        return Err(format!("{text:?} is outside 1ms..=1h"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

impl BackendArgs {
    /// Refuses options that the chosen backend would ignore, and creates
    /// the swtpm state directory's last component when it is missing.
    pub fn validate(&self) -> Result<(), OptionError> {
        let swtpm_options = [
            ("--swtpm-binary", self.swtpm_binary.is_some()),
            ("--swtpm-state-dir", self.swtpm_state_dir.is_some()),
            ("--swtpm-ctrl", self.swtpm_ctrl.is_some()),
            ("--swtpm-data", self.swtpm_data.is_some()),
            ("--shutdown", self.shutdown),
        ];
        match (self.backend, &self.mssim) {
            (BackendKind::Mssim, None) => return Err(OptionError::MssimEndpointMissing),
            (BackendKind::Mssim, Some(_)) | (_, None) => {}
            (backend, Some(_)) => {
                return Err(OptionError::MssimOptionWithoutMssim {
                    backend: backend.name(),
                })
            }
        }
        if self.backend != BackendKind::Swtpm {
            if let Some((option, _)) = swtpm_options.iter().find(|(_, given)| *given) {
                return Err(OptionError::SwtpmOptionWithoutSwtpm {
                    option,
                    backend: self.backend.name(),
                });
            }
            return Ok(());
        }
        if self.swtpm_ctrl.is_some() {
            if self.swtpm_binary.is_some() {
                return Err(OptionError::SpawnOptionWhileAttaching {
                    option: "swtpm-binary",
                });
            }
            if self.swtpm_state_dir.is_some() {
                return Err(OptionError::SpawnOptionWhileAttaching {
                    option: "swtpm-state-dir",
                });
            }
        }
        if let Some(dir) = &self.swtpm_state_dir {
            prepare_state_dir(dir)?;
        }
        Ok(())
    }

    /// The swtpm configuration these options describe.
    pub fn swtpm_config(&self) -> SwtpmConfig {
        let mut config = SwtpmConfig::default();
        if let Some(b) = &self.swtpm_binary {
            config.binary = b.clone();
        }
        config.state_dir = self.swtpm_state_dir.clone();
        config.buffer_size = self.buffer_size;
        if let Some(timeout) = self.timeout {
            config.timeouts.command = timeout;
            config.timeouts.control_reply = config.timeouts.control_reply.min(timeout);
        }
        config
    }

    /// Opens the backend, wrapped so that `monitor` sees each command's
    /// outcome.
    pub fn open_watched(&self, monitor: &Monitor) -> Result<Box<dyn Backend>, OptionError> {
        let backend = self.open().map_err(|source| {
            let hint = match (&source, &self.swtpm_ctrl, &self.swtpm_data) {
                // swtpm refuses a data socket from its client when it
                // serves one of its own (started with --server).
                (BackendError::Control { command, .. }, Some(_), None)
                    if *command == "SET_DATAFD" =>
                {
                    "; if that swtpm was started with --server, pass its data socket with --swtpm-data"
                }
                _ => "",
            };
            OptionError::Open {
                backend: self.backend.name(),
                source,
                hint,
            }
        })?;
        tracing::info!(
            backend = backend.name(),
            buffer = backend.buffer_size(),
            "backend open"
        );
        Ok(Box::new(Watched::new(backend, monitor.clone())))
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
                    let mut backend = SwtpmBackend::attach_with_config(ctrl, &config)?;
                    // Someone else's process: it keeps running unless asked.
                    backend.set_shutdown_on_drop(self.shutdown);
                    Ok(Box::new(backend))
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

/// Creates `dir` when missing, but not its parents: a mistyped path should
/// fail rather than grow a tree of directories.
fn prepare_state_dir(dir: &Path) -> Result<(), OptionError> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = match dir.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => Path::new("/"),
    };
    if !parent.is_dir() {
        return Err(OptionError::StateDirParentMissing {
            dir: dir.display().to_string(),
            parent: parent.display().to_string(),
        });
    }
    std::fs::create_dir(dir).map_err(|source| OptionError::StateDir {
        dir: dir.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("").is_err());
    }
}
