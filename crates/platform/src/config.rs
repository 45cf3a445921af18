//! What a platform is built with, and how it fails.

use std::time::Duration;

use vtpm_backend::BackendError;
use vtpm_crb::{ChunkPolicy, ConfigError, CrbConfig, SnapshotError};
use vtpm_frame::FrameError;

/// Where backend commands run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Execution {
    /// On a worker thread; MMIO never waits for the backend, as in a VMM.
    #[default]
    Worker,
    /// On the thread that wrote Start, before the write returns: no thread
    /// handoff, for measuring the transport itself.
    Inline,
}

/// The interface the guest sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interface {
    /// CRB (Command Response Buffer): [`vtpm_crb::CrbDevice`].
    #[default]
    Crb,
    /// TIS/FIFO: [`vtpm_tis::TisDevice`]; the FIFO buffer is the backend
    /// buffer, and `window_size` and `chunking` do not apply.
    Tis,
}

impl Interface {
    /// "crb" or "tis".
    pub fn name(self) -> &'static str {
        match self {
            Self::Crb => "crb",
            Self::Tis => "tis",
        }
    }
}

impl std::str::FromStr for Interface {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "crb" => Ok(Self::Crb),
            "tis" => Ok(Self::Tis),
            _ => Err(format!("interface {s:?}: expected crb or tis")),
        }
    }
}

/// The device-side settings of a [`Platform`](crate::Platform); the
/// backend supplies the buffer size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformConfig {
    /// The device's interface (CRB unless asked).
    pub interface: Interface,
    /// Data window bytes (64..=3968; CRB only).
    pub window_size: usize,
    /// CapCRBChunk policy (CRB only).
    pub chunking: ChunkPolicy,
    /// Locality pages (1..=5).
    pub localities: u8,
    /// Where commands run.
    pub execution: Execution,
    /// How long an idle worker watches for the next job before it sleeps,
    /// when it has a CPU to spare. Zero (the default) sleeps at once.
    /// Watching saves the wake-up of a sleeping thread (several µs) when a
    /// guest sends commands back to back, but it burns CPU after every job,
    /// which a VMM hosting many guests pays per device.
    pub idle_spin: Duration,
    /// How long the backend may take for work a caller waits on (its state
    /// blob for [`Platform::save`](crate::Platform::save)) before the
    /// caller gets [`PlatformError::BackendTimeout`].
    pub control_timeout: Duration,
    /// The data window is guest RAM the VMM maps (as QEMU does): window
    /// accesses are memory, not exits, and only register accesses reach
    /// the device, which copies command pieces from that memory at
    /// Start/nextChunk and writes response pieces into it. A response is
    /// then released at goIdle, cmdReady or the next Start.
    pub window_in_ram: bool,
}

impl PlatformConfig {
    /// The default bound on control work (a state blob can take a while).
    pub const DEFAULT_CONTROL_TIMEOUT: Duration = Duration::from_secs(30);
}

impl Default for PlatformConfig {
    fn default() -> Self {
        let crb = CrbConfig::default();
        Self {
            interface: Interface::Crb,
            window_size: crb.window_size,
            chunking: crb.chunking,
            localities: crb.localities,
            execution: Execution::Worker,
            idle_spin: Duration::ZERO,
            control_timeout: Self::DEFAULT_CONTROL_TIMEOUT,
            window_in_ram: false,
        }
    }
}

/// A platform that could not be built, saved, restored or changed.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The device configuration is invalid.
    #[error("device configuration: {0}")]
    Config(#[from] ConfigError),
    /// `window_in_ram` asks for a CRB data window, but the interface is TIS
    /// (whose FIFO has no window to map).
    #[error("window_in_ram needs the CRB interface: TIS has no data window to map")]
    WindowInRamNeedsCrb,
    /// The TIS device configuration is invalid.
    #[error("TIS device configuration: {0}")]
    TisConfig(#[from] vtpm_tis::ConfigError),
    /// The TIS part of a saved platform cannot be restored here.
    #[error("TIS device snapshot: {0}")]
    TisSnapshot(#[from] vtpm_tis::SnapshotError),
    /// The backend failed.
    #[error("backend: {0}")]
    Backend(#[from] BackendError),
    /// The worker thread could not start.
    #[error("cannot start the backend worker")]
    Worker(#[source] std::io::Error),
    /// A command was still executing when the save bound ran out; nothing
    /// was saved and the platform runs on.
    #[error("a command is still executing after {0:?}; try the save again")]
    Busy(Duration),
    /// The backend did not finish `operation` within `after`
    /// ([`PlatformConfig::control_timeout`]); nothing was saved.
    #[error("the backend did not finish {operation} within {after:?}")]
    BackendTimeout {
        /// The backend operation waited for.
        operation: &'static str,
        /// How long the caller waited.
        after: Duration,
    },
    /// The worker dropped a job it was asked to answer (it stopped).
    #[error("the backend worker stopped before answering {operation}")]
    WorkerStopped {
        /// The backend operation asked for.
        operation: &'static str,
    },
    /// The device part of a saved platform cannot be restored here.
    #[error("device snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
    /// The saved bytes are not a well-formed frame.
    #[error("platform snapshot framing")]
    Frame(#[from] FrameError),
    /// The saved bytes are framed but do not hold a platform.
    #[error("platform snapshot: {0}")]
    Format(&'static str),
    /// The snapshot was taken with another kind of backend.
    #[error("snapshot holds {snapshot} state, the new backend is {backend}")]
    BackendMismatch {
        /// Backend kind in the snapshot.
        snapshot: String,
        /// Backend kind offered for restore.
        backend: &'static str,
    },
    /// The snapshot holds another interface than the configuration asks.
    #[error("snapshot holds a {} device, the configuration asks for {}", snapshot.name(), config.name())]
    InterfaceMismatch {
        /// Interface in the snapshot.
        snapshot: Interface,
        /// Interface of the configuration.
        config: Interface,
    },
    /// The bytes are a sealed platform; restore them with their key.
    #[error("the saved platform is sealed: restore it with its key")]
    Sealed,
    /// A sealed platform was expected and these bytes are not sealed.
    #[error("the saved platform is not sealed, and a sealed one was expected")]
    NotSealed,
    /// The sealed platform does not open: a wrong key, or altered bytes.
    #[error("the sealed platform does not authenticate: wrong key or altered bytes")]
    Unseal,
    /// Sealing failed (no randomness from the operating system).
    #[error("cannot seal the saved platform: {0}")]
    Seal(String),
}
