//! A TIS device whose commands run inline, on the thread that writes
//! tpmGo.

use vtpm_backend::{Backend, BackendError};
use vtpm_guest::Mmio;
use vtpm_tis::{Action, BackendFailed, ConfigError, TisConfig, TisDevice};
use zeroize::{Zeroize, Zeroizing};

/// A TIS device could not be built for its backend.
#[derive(Debug, thiserror::Error)]
pub enum InlineTisError {
    /// The device configuration is invalid.
    #[error("TIS configuration: {0}")]
    Config(#[from] ConfigError),
    /// The backend could not report its established flag.
    #[error("backend: {0}")]
    Backend(#[from] BackendError),
}

/// A [`TisDevice`] with its backend, run inline: a write of tpmGo executes
/// the command before it returns, so the guest's next status read sees
/// dataAvail. This suits a VMM that runs device work on the vCPU thread;
/// one that must not block a vCPU on the TPM runs commands on a worker, as
/// vtpm-platform does for CRB.
pub struct InlineTis {
    device: TisDevice,
    backend: Box<dyn Backend>,
    response: Zeroizing<Vec<u8>>,
    last_error: Option<BackendError>,
}

impl InlineTis {
    /// A device sized to `backend`'s buffer (`config.backend_buffer` is
    /// replaced by it).
    pub fn new(mut backend: Box<dyn Backend>, config: TisConfig) -> Result<Self, InlineTisError> {
        let buffer = backend.buffer_size();
        let mut device = TisDevice::new(TisConfig {
            backend_buffer: buffer,
            ..config
        })?;
        device.set_established(backend.established()?);
        Ok(Self {
            device,
            backend,
            response: Zeroizing::new(Vec::with_capacity(buffer)),
            last_error: None,
        })
    }

    /// The device model.
    pub fn device(&self) -> &TisDevice {
        &self.device
    }

    /// The last backend failure, taken (the guest sees a failed command).
    pub fn take_backend_error(&mut self) -> Option<BackendError> {
        self.last_error.take()
    }
}

impl Mmio for InlineTis {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.device.read(offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let (token, outcome) = match self.device.write(offset, data) {
            Some(Action::Execute {
                token,
                locality,
                command,
            }) => {
                let result = self
                    .backend
                    .check_command(command)
                    .and_then(|()| self.backend.execute(locality, command, &mut self.response));
                (token, result)
            }
            // Inline, the command finished before the guest could cancel.
            Some(Action::Cancel { .. }) | None => return,
            Some(Action::ResetEstablished { locality }) => {
                let flag = self
                    .backend
                    .reset_established(locality)
                    .and_then(|()| self.backend.established());
                let flag = match flag {
                    Ok(flag) => flag,
                    Err(e) => {
                        self.last_error = Some(e);
                        self.device.established()
                    }
                };
                self.device.set_established(flag);
                return;
            }
        };
        let answer = match outcome {
            Ok(()) => Ok(&mut *self.response),
            Err(e) => {
                self.last_error = Some(e);
                Err(BackendFailed)
            }
        };
        self.device.complete_swap(token, answer);
        self.response.zeroize();
    }
}
