//! The embedded software TPM ([`vtpm_sim`]) as a backend.
//!
//! The simulator runs in the worker's thread and executes each command
//! synchronously inside [`Backend::execute`]. [`Backend::canceller`] hands
//! out the simulator's cancel line ([`vtpm_sim::CancelHandle`]): a cancel
//! from another thread makes the running command (or, when none runs, the
//! next one) answer TPM_RC_CANCELED at its next check — before its handler
//! starts, or between the steps of key generation and signing.
//!
//! ```
//! use vtpm_backend::sim::SimBackend;
//! use vtpm_backend::Backend;
//! use vtpm_sim::SimConfig;
//! use vtpm_client::startup;
//!
//! let mut backend = SimBackend::new(SimConfig::default())?;
//! let mut response = Vec::new();
//! backend.execute(0, &startup(0), &mut response)?;
//! assert_eq!(response, [0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0, 0]);
//! assert_eq!(backend.buffer_size(), 8192);
//! assert!(backend.canceller().is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;

use vtpm_sim::{CancelHandle, Sim};
pub use vtpm_sim::{ConfigError, SimConfig};

use crate::{Backend, BackendError, Cancel};

/// A [`Backend`] backed by an in-process [`Sim`].
#[derive(Debug)]
pub struct SimBackend {
    sim: Sim,
}

impl SimBackend {
    /// A backend around a freshly manufactured simulator.
    pub fn new(config: SimConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            sim: Sim::new(config)?,
        })
    }

    /// A backend around an existing simulator.
    pub fn from_sim(sim: Sim) -> Self {
        Self { sim }
    }

    /// The simulator, for platform events outside the command stream
    /// (such as [`Sim::dynamic_launch`]).
    pub fn sim_mut(&mut self) -> &mut Sim {
        &mut self.sim
    }

    /// The simulator.
    pub fn sim(&self) -> &Sim {
        &self.sim
    }
}

impl Backend for SimBackend {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn buffer_size(&self) -> usize {
        self.sim.buffer_size()
    }

    fn execute(
        &mut self,
        locality: u8,
        command: &[u8],
        response: &mut Vec<u8>,
    ) -> Result<(), BackendError> {
        // An oversize command is the caller's to refuse (check_command);
        // should one arrive, the simulator answers TPM_RC_COMMAND_SIZE.
        self.sim.execute(locality, command, response);
        Ok(())
    }

    /// The simulator's cancel line.
    fn canceller(&self) -> Option<Arc<dyn Cancel>> {
        Some(Arc::new(SimCanceller(self.sim.canceller())))
    }

    fn established(&mut self) -> Result<bool, BackendError> {
        Ok(self.sim.established())
    }

    fn reset_established(&mut self, locality: u8) -> Result<(), BackendError> {
        self.sim.reset_established(locality).map_err(|_| {
            BackendError::Unsupported("resetting tpmEstablished from a locality other than 3 or 4")
        })
    }

    fn reset(&mut self) -> Result<(), BackendError> {
        self.sim.reset();
        Ok(())
    }

    fn save_state(&mut self) -> Result<Vec<u8>, BackendError> {
        // Moved out of its wiping wrapper without a copy: the trait hands
        // the one buffer to the caller.
        Ok(std::mem::take(&mut *self.sim.save_state()))
    }

    fn restore_state(&mut self, state: &[u8]) -> Result<(), BackendError> {
        self.sim
            .restore_state(state)
            .map_err(|e| BackendError::State(e.to_string()))
    }

    fn can_dynamic_launch(&self) -> bool {
        true
    }

    fn dynamic_launch(&mut self, measurement: &[u8]) -> Result<(), BackendError> {
        self.sim
            .dynamic_launch(measurement)
            .map_err(|_| BackendError::Unsupported("a dynamic launch before TPM2_Startup"))
    }
}

/// [`Cancel`] for a [`SimBackend`]: raises the simulator's cancel line.
#[derive(Debug)]
struct SimCanceller(CancelHandle);

impl Cancel for SimCanceller {
    fn cancel(&self) -> Result<(), BackendError> {
        self.0.cancel();
        Ok(())
    }

    fn withdraw(&self) {
        self.0.withdraw();
    }
}
