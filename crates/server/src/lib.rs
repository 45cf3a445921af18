//! The server side of the swtpm and mssim protocols over any
//! [`vtpm_backend::Backend`]: the embedded PQC simulator (or any other
//! backend) reachable by tpm2-tss, tpm2-tools, QEMU and vtpm's own
//! backends.
//!
//! - [`mssim`]: the Microsoft reference simulator's TCP protocol (command
//!   port and platform port).
//! - [`swtpm`]: swtpm's control channel and data channel, over Unix or TCP
//!   sockets, with SET_DATAFD on Unix control sockets.
//! - [`engine::Tpm`]: the power, locality, buffer and state rules behind
//!   both; [`store::Store`]: the state directory, its lock, and optional
//!   AES-256-GCM encryption at rest.
//!
//! One client per channel at a time: a second client's connection waits in
//! the listen backlog until the first disconnects, as with swtpm.
//!
//! ```no_run
//! use vtpm_backend::sim::{SimBackend, SimConfig};
//! use vtpm_server::{engine::{Tpm, TpmOptions}, Channels, Server};
//!
//! let backend = Box::new(SimBackend::new(SimConfig::default())?);
//! let mut tpm = Tpm::new(backend, None, None, TpmOptions { startup_clear: true })?;
//! tpm.power_on_at_start()?;
//! let mut channels = Channels::default();
//! channels.bind_mssim(&"tcp:127.0.0.1:2321".parse()?, None)?;
//! let reason = Server::new(tpm, channels)?.run()?;
//! println!("stopped: {reason:?}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::PathBuf;

pub mod engine;
pub mod fuzzing;
pub mod mssim;
pub mod net;
mod server;
pub mod store;
pub mod swtpm;

pub use net::{Endpoint, Listener};
pub use server::{Channels, Server, StopHandle, StopReason};

/// A failure of the server itself (not of one request).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An endpoint that is not `unix:PATH` or `tcp:HOST:PORT`.
    #[error("invalid endpoint {0:?} (expected unix:PATH or tcp:HOST:PORT)")]
    Endpoint(String),
    /// No channel to serve.
    #[error("no channel to serve: give --mssim, --ctrl or both")]
    NoChannel,
    /// Another server owns the state directory.
    #[error("state directory {} is in use by process {holder}", dir.display())]
    StateDirInUse {
        /// The directory.
        dir: PathBuf,
        /// The pid written in its lock file.
        holder: String,
    },
    /// A state file that cannot be used.
    #[error("state file {}: {reason}", path.display())]
    StateFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A key file that is neither 32 raw bytes nor 64 hex digits.
    #[error("key file {} must hold 32 raw bytes or 64 hexadecimal digits", .0.display())]
    KeyFile(PathBuf),
    /// Encrypting the state failed.
    #[error("encrypting the state failed")]
    Encryption,
    /// Framing the state failed.
    #[error("framing the state: {0}")]
    Frame(String),
    /// The backend failed.
    #[error("backend: {0}")]
    Backend(#[source] vtpm_backend::BackendError),
    /// Power-on at start failed.
    #[error("power-on failed: {0}")]
    PowerOn(#[source] Box<engine::ControlError>),
}

impl ServerError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<engine::ControlError> for ServerError {
    fn from(e: engine::ControlError) -> Self {
        Self::PowerOn(Box::new(e))
    }
}

/// The README's example, run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
