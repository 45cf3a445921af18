//! TPM backends: where a whole command goes once a device model has
//! assembled it.
//!
//! The [`Backend`] trait is deliberately small. A platform's worker thread
//! owns the backend and calls [`Backend::execute`]; the device model never
//! waits on it. Cancellation comes from another thread, so it goes through a
//! separate [`Cancel`] handle.
#![warn(missing_docs)]

use std::sync::Arc;

pub mod mssim;
#[cfg(feature = "sim")]
pub mod sim;
pub mod swtpm;
#[cfg(feature = "testing")]
pub mod testing;

/// A TPM that executes whole commands.
pub trait Backend: Send {
    /// A short name for reports ("swtpm", "sim", ...).
    fn name(&self) -> &'static str;

    /// The negotiated buffer size: the largest command and the largest
    /// response this backend accepts or produces.
    fn buffer_size(&self) -> usize;

    /// Executes one command at `locality` (0..=4) and writes the whole
    /// response into `response` (cleared first; its capacity is reused).
    ///
    /// Callers pass at most [`Backend::buffer_size`] bytes, checked with
    /// [`Backend::check_command`] (the platform does, before every
    /// command), so a backend need not check again; one whose protocol
    /// breaks on an oversize command (swtpm frames commands by their
    /// header) still refuses it rather than send it.
    fn execute(
        &mut self,
        locality: u8,
        command: &[u8],
        response: &mut Vec<u8>,
    ) -> Result<(), BackendError>;

    /// [`BackendError::CommandTooLarge`] for a command larger than
    /// [`Backend::buffer_size`]: the one check of that limit.
    fn check_command(&self, command: &[u8]) -> Result<(), BackendError> {
        check_command_size(command, self.buffer_size())
    }

    /// A handle that cancels the command currently executing, callable from
    /// any thread. `None` when the backend cannot cancel.
    fn canceller(&self) -> Option<Arc<dyn Cancel>>;

    /// The TPM's tpmEstablished flag.
    fn established(&mut self) -> Result<bool, BackendError>;

    /// Clears the established flag on behalf of `locality` (3 or 4).
    fn reset_established(&mut self, locality: u8) -> Result<(), BackendError>;

    /// Power-cycles the TPM (a platform reset): volatile state is lost, the
    /// next command must be TPM2_Startup.
    fn reset(&mut self) -> Result<(), BackendError>;

    /// The TPM's whole state (persistent and volatile) as an opaque blob.
    fn save_state(&mut self) -> Result<Vec<u8>, BackendError>;

    /// Replaces the TPM's state with a blob from [`Backend::save_state`].
    fn restore_state(&mut self, state: &[u8]) -> Result<(), BackendError>;

    /// Called on a migration source that runs on after the migration
    /// failed: take back whatever the destination may have taken (swtpm's
    /// storage lock). Nothing to do for most backends.
    fn resume_after_failed_migration(&mut self) -> Result<(), BackendError> {
        Ok(())
    }

    /// True when [`Backend::dynamic_launch`] is implemented.
    fn can_dynamic_launch(&self) -> bool {
        false
    }

    /// A dynamic launch (_TPM_Hash_Start, _TPM_Hash_Data with
    /// `measurement`, _TPM_Hash_End): PCR 17 is extended with the
    /// measurement and tpmEstablished is set.
    fn dynamic_launch(&mut self, measurement: &[u8]) -> Result<(), BackendError> {
        let _ = measurement;
        Err(BackendError::Unsupported("dynamic launch"))
    }
}

/// Cancels the command a backend is executing; see [`Backend::canceller`].
pub trait Cancel: Send + Sync {
    /// Asks the TPM to cancel. The command still completes, with whatever
    /// the TPM answers (often TPM_RC_CANCELED).
    fn cancel(&self) -> Result<(), BackendError>;

    /// Takes back a request the command it was meant for finished without
    /// seeing, so it cannot land on the next command. Backends whose cancel
    /// cannot outlive the command (swtpm, mssim) keep this default, which
    /// does nothing.
    fn withdraw(&self) {}
}

/// [`BackendError::CommandTooLarge`] when `command` exceeds `max` bytes;
/// what [`Backend::check_command`] runs, for code below the trait (a
/// protocol channel) that must refuse the same commands.
pub fn check_command_size(command: &[u8], max: usize) -> Result<(), BackendError> {
    if command.len() > max {
        return Err(BackendError::CommandTooLarge {
            size: command.len(),
            max,
        });
    }
    Ok(())
}

/// A failure of the host side: the backend, its process or its channels.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The peer closed a channel.
    #[error("{0}: channel closed by the peer")]
    ChannelClosed(String),
    /// The peer sent bytes that break the protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A control command answered a non-zero result.
    #[error("{command} failed with result {result:#x}")]
    Control {
        /// The control command.
        command: &'static str,
        /// The TPM 1.2-style result code.
        result: u32,
    },
    /// The backend lacks a capability vtpm needs.
    #[error("backend lacks the {0} capability")]
    MissingCapability(&'static str),
    /// A program the backend needs is not installed.
    #[error("{0}")]
    NotInstalled(String),
    /// A command larger than the negotiated buffer.
    #[error("command of {size} bytes exceeds the {max}-byte buffer")]
    CommandTooLarge {
        /// The command size.
        size: usize,
        /// The buffer size.
        max: usize,
    },
    /// A state blob that cannot be restored.
    #[error("invalid state: {0}")]
    State(String),
    /// The operation is not supported by this backend.
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    /// The backend timed out.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The backend's configuration is invalid.
    #[error("invalid backend configuration: {0}")]
    Config(String),
    /// The backend's process failed to start or exited unexpectedly.
    #[error("backend process: {0}")]
    Process(String),
    /// The backend panicked during `operation`; it is not used again.
    #[error("the backend panicked in {operation}: {message}")]
    Panicked {
        /// The [`Backend`] method that panicked.
        operation: &'static str,
        /// The panic's message, when it was a string.
        message: String,
    },
}

impl BackendError {
    /// An [`BackendError::Io`] with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

impl<T: Backend + ?Sized> Backend for Box<T> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn buffer_size(&self) -> usize {
        (**self).buffer_size()
    }
    fn execute(
        &mut self,
        locality: u8,
        command: &[u8],
        response: &mut Vec<u8>,
    ) -> Result<(), BackendError> {
        (**self).execute(locality, command, response)
    }
    fn canceller(&self) -> Option<Arc<dyn Cancel>> {
        (**self).canceller()
    }
    fn established(&mut self) -> Result<bool, BackendError> {
        (**self).established()
    }
    fn reset_established(&mut self, locality: u8) -> Result<(), BackendError> {
        (**self).reset_established(locality)
    }
    fn reset(&mut self) -> Result<(), BackendError> {
        (**self).reset()
    }
    fn save_state(&mut self) -> Result<Vec<u8>, BackendError> {
        (**self).save_state()
    }
    fn restore_state(&mut self, state: &[u8]) -> Result<(), BackendError> {
        (**self).restore_state(state)
    }
    fn resume_after_failed_migration(&mut self) -> Result<(), BackendError> {
        (**self).resume_after_failed_migration()
    }
    fn can_dynamic_launch(&self) -> bool {
        (**self).can_dynamic_launch()
    }
    fn dynamic_launch(&mut self, measurement: &[u8]) -> Result<(), BackendError> {
        (**self).dynamic_launch(measurement)
    }
}
