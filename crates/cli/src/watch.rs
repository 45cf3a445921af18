//! A backend wrapper that remembers how the last command ended, so a step
//! that fails at the device (tpmSts, a timeout) can be reported with the
//! cause the backend knows: its error, or a response the window could not
//! carry.

use std::sync::{Arc, Mutex, PoisonError};

use vtpm_backend::{Backend, BackendError, Cancel};
use vtpm_wire::cc;

/// How the backend's last command ended. Holds sizes and messages only,
/// never TPM traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The backend answered with a response of `bytes` bytes.
    Answered {
        /// The command code.
        command: u32,
        /// The response size.
        bytes: usize,
    },
    /// The backend failed to produce a response.
    Failed {
        /// The command code.
        command: u32,
        /// The backend's error, with its causes.
        error: String,
    },
}

impl Outcome {
    /// The backend's failure, worded for a step report.
    pub fn failure(&self) -> Option<String> {
        match self {
            Outcome::Failed { command, error } => Some(format!(
                "the backend failed on {} ({command:#x}): {error}",
                cc::name(*command)
            )),
            Outcome::Answered { .. } => None,
        }
    }
}

/// Where a [`Watched`] backend reports; shared with the CLI (and with every
/// backend a migration opens).
#[derive(Debug, Clone, Default)]
pub struct Monitor(Arc<Mutex<Option<Outcome>>>);

impl Monitor {
    /// Forgets the last outcome (at the start of a step).
    pub fn clear(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// How the last command since [`Monitor::clear`] ended, if one ran.
    pub fn last(&self) -> Option<Outcome> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn record(&self, outcome: Outcome) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
    }
}

/// A backend that tells a [`Monitor`] how each command ended.
pub struct Watched {
    inner: Box<dyn Backend>,
    monitor: Monitor,
}

impl Watched {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn Backend>, monitor: Monitor) -> Self {
        Self { inner, monitor }
    }
}

/// The whole chain of an error, "outer: cause: cause".
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        // thiserror messages often embed their source already.
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

impl Backend for Watched {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn buffer_size(&self) -> usize {
        self.inner.buffer_size()
    }

    fn execute(
        &mut self,
        locality: u8,
        command: &[u8],
        response: &mut Vec<u8>,
    ) -> Result<(), BackendError> {
        let code = vtpm_wire::Header::parse(command)
            .map(|h| h.code)
            .unwrap_or(0);
        tracing::trace!(
            locality,
            command = cc::name(code),
            bytes = command.len(),
            "backend executes"
        );
        let result = self.inner.execute(locality, command, response);
        match &result {
            Ok(()) => {
                tracing::trace!(bytes = response.len(), "backend answered");
                self.monitor.record(Outcome::Answered {
                    command: code,
                    bytes: response.len(),
                });
            }
            Err(e) => self.monitor.record(Outcome::Failed {
                command: code,
                error: chain(e),
            }),
        }
        result
    }

    fn canceller(&self) -> Option<Arc<dyn Cancel>> {
        self.inner.canceller()
    }

    fn established(&mut self) -> Result<bool, BackendError> {
        self.inner.established()
    }

    fn reset_established(&mut self, locality: u8) -> Result<(), BackendError> {
        self.inner.reset_established(locality)
    }

    fn reset(&mut self) -> Result<(), BackendError> {
        self.inner.reset()
    }

    fn save_state(&mut self) -> Result<Vec<u8>, BackendError> {
        self.inner.save_state()
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), BackendError> {
        self.inner.restore_state(state)
    }

    fn resume_after_failed_migration(&mut self) -> Result<(), BackendError> {
        self.inner.resume_after_failed_migration()
    }
}
