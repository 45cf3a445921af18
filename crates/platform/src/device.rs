//! The device a platform hosts: a CRB or a TIS/FIFO interface. Both
//! crates have the same sans-I/O shape; this enum gives the platform one
//! vocabulary for them, so the bus, the worker and the canceller do not
//! care which interface the guest sees.

use vtpm_crb::CrbDevice;
use vtpm_tis::TisDevice;
use zeroize::Zeroizing;

use crate::{Interface, PlatformError};

/// Both devices hand over the same [`vtpm_mmio::Action`], naming an
/// execution by its [`vtpm_mmio::ExecToken`].
pub(crate) use vtpm_mmio::{Action, BackendFailed, ExecToken as Token};

/// The device model a [`Platform`](crate::Platform) hosts, reached with
/// [`Platform::with_device`](crate::Platform::with_device).
// One device per platform, inside its shared state: boxing the larger
// variant would only add an indirection to every MMIO access.
#[allow(clippy::large_enum_variant)]
pub enum Device {
    /// A CRB interface ([`Interface::Crb`]).
    Crb(CrbDevice),
    /// A TIS/FIFO interface ([`Interface::Tis`]).
    Tis(TisDevice),
}

/// Prints the interface and lengths, never bytes (both devices' `Debug`
/// show lengths only).
impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Crb(d) => f.debug_tuple("Crb").field(d).finish(),
            Self::Tis(d) => f.debug_tuple("Tis").field(d).finish(),
        }
    }
}

impl Device {
    /// Which interface this is.
    pub fn interface(&self) -> Interface {
        match self {
            Self::Crb(_) => Interface::Crb,
            Self::Tis(_) => Interface::Tis,
        }
    }

    /// The CRB device, if this is one.
    pub fn crb(&mut self) -> Option<&mut CrbDevice> {
        match self {
            Self::Crb(d) => Some(d),
            Self::Tis(_) => None,
        }
    }

    /// The TIS device, if this is one.
    pub fn tis(&mut self) -> Option<&mut TisDevice> {
        match self {
            Self::Crb(_) => None,
            Self::Tis(d) => Some(d),
        }
    }

    /// The largest command or response the device carries (the backend
    /// buffer).
    pub fn transfer_limit(&self) -> usize {
        match self {
            Self::Crb(d) => d.transfer_limit(),
            Self::Tis(d) => d.transfer_limit(),
        }
    }

    /// The locality that holds the interface, if any.
    pub fn active_locality(&self) -> Option<u8> {
        match self {
            Self::Crb(d) => d.active_locality(),
            Self::Tis(d) => d.active_locality(),
        }
    }

    /// Whether a command is executing.
    pub fn is_executing(&self) -> bool {
        match self {
            Self::Crb(d) => d.is_executing(),
            Self::Tis(d) => d.is_executing(),
        }
    }

    /// The established flag the device shows.
    pub fn established(&self) -> bool {
        match self {
            Self::Crb(d) => d.established(),
            Self::Tis(d) => d.established(),
        }
    }

    /// Sets the established flag from the backend.
    pub fn set_established(&mut self, established: bool) {
        match self {
            Self::Crb(d) => d.set_established(established),
            Self::Tis(d) => d.set_established(established),
        }
    }

    /// Whether the interrupt line is raised.
    pub fn interrupt_pending(&self) -> bool {
        match self {
            Self::Crb(d) => d.interrupt_pending(),
            Self::Tis(d) => d.interrupt_pending(),
        }
    }

    /// Returns the device to its power-on state.
    pub fn reset(&mut self) {
        match self {
            Self::Crb(d) => d.reset(),
            Self::Tis(d) => d.reset(),
        }
    }

    /// An MMIO read.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        match self {
            Self::Crb(d) => d.read(offset, data),
            Self::Tis(d) => d.read(offset, data),
        }
    }

    pub(crate) fn write(&mut self, offset: u64, data: &[u8]) -> Option<Action<'_>> {
        match self {
            Self::Crb(d) => d.write(offset, data),
            Self::Tis(d) => d.write(offset, data),
        }
    }

    pub(crate) fn executing_command(&self) -> Option<Action<'_>> {
        match self {
            Self::Crb(d) => d.executing_command(),
            Self::Tis(d) => d.executing_command(),
        }
    }

    /// Hands the backend's answer to the device (swapping buffers; `None`
    /// is a failed backend: CRB shows tpmSts, TIS answers
    /// TPM_RC_FAILURE).
    pub(crate) fn complete_swap(&mut self, token: Token, response: Option<&mut Vec<u8>>) {
        let answer = response.ok_or(BackendFailed);
        // What became of the answer shows in the device's registers.
        match self {
            Self::Crb(d) => {
                d.complete_swap(token, answer);
            }
            Self::Tis(d) => {
                d.complete_swap(token, answer);
            }
        }
    }

    /// The locality pages and the data window size of a CRB device; a TIS
    /// device has no data window.
    pub(crate) fn crb_window(&self) -> Option<(u8, usize)> {
        match self {
            Self::Crb(d) => Some((d.config().localities, d.config().window_size)),
            Self::Tis(_) => None,
        }
    }

    /// A register write with the CRB data window in guest RAM (`ram`).
    pub(crate) fn write_in_ram(
        &mut self,
        offset: u64,
        data: &[u8],
        ram: &mut [u8],
    ) -> Option<Action<'_>> {
        match self {
            Self::Crb(d) => d.write_in_ram(offset, data, ram),
            Self::Tis(d) => d.write(offset, data),
        }
    }

    /// [`Device::complete_swap`] with the CRB data window in guest RAM.
    pub(crate) fn complete_in_ram(
        &mut self,
        token: Token,
        response: Option<&mut Vec<u8>>,
        ram: &mut [u8],
    ) {
        match self {
            Self::Crb(d) => {
                d.complete_in_ram(token, response.ok_or(BackendFailed), ram);
            }
            Self::Tis(_) => self.complete_swap(token, response),
        }
    }

    /// Writes a CRB device's window over `ram` (nothing for TIS).
    pub(crate) fn mirror_to(&self, ram: &mut [u8]) {
        if let Self::Crb(d) = self {
            d.mirror_to(ram);
        }
    }

    /// [`Device::reset`] with the CRB data window in guest RAM.
    pub(crate) fn reset_in_ram(&mut self, ram: &mut [u8]) {
        match self {
            Self::Crb(d) => d.reset_in_ram(ram),
            Self::Tis(d) => d.reset(),
        }
    }

    pub(crate) fn snapshot(&self) -> Zeroizing<Vec<u8>> {
        match self {
            Self::Crb(d) => d.snapshot(),
            Self::Tis(d) => d.snapshot(),
        }
    }

    /// The device for `interface` over a backend buffer of `buffer` bytes.
    pub(crate) fn new(
        interface: Interface,
        buffer: usize,
        config: &crate::PlatformConfig,
    ) -> Result<Self, PlatformError> {
        Ok(match interface {
            Interface::Crb => Self::Crb(CrbDevice::new(crb_config(buffer, config))?),
            Interface::Tis if config.window_in_ram => {
                return Err(PlatformError::WindowInRamNeedsCrb)
            }
            Interface::Tis => Self::Tis(TisDevice::new(tis_config(buffer, config))?),
        })
    }

    pub(crate) fn restore(
        interface: Interface,
        buffer: usize,
        config: &crate::PlatformConfig,
        snapshot: &[u8],
    ) -> Result<Self, PlatformError> {
        Ok(match interface {
            Interface::Crb => Self::Crb(CrbDevice::restore(crb_config(buffer, config), snapshot)?),
            Interface::Tis if config.window_in_ram => {
                return Err(PlatformError::WindowInRamNeedsCrb)
            }
            Interface::Tis => Self::Tis(TisDevice::restore(tis_config(buffer, config), snapshot)?),
        })
    }
}

fn crb_config(buffer: usize, config: &crate::PlatformConfig) -> vtpm_crb::CrbConfig {
    vtpm_crb::CrbConfig {
        window_size: config.window_size,
        backend_buffer: buffer,
        chunking: config.chunking,
        localities: config.localities,
        ..vtpm_crb::CrbConfig::default()
    }
}

fn tis_config(buffer: usize, config: &crate::PlatformConfig) -> vtpm_tis::TisConfig {
    vtpm_tis::TisConfig {
        backend_buffer: buffer,
        localities: config.localities,
        ..vtpm_tis::TisConfig::default()
    }
}
