//! The glue a VMM would write: a CRB or TIS device model, a backend run on a
//! worker thread (or inline), and an MMIO bus that implements
//! [`vtpm_guest::Mmio`], so a guest driver drives the whole path.
//!
//! ```
//! use vtpm_backend::testing::FnBackend;
//! use vtpm_platform::{Platform, PlatformConfig};
//!
//! let platform = Platform::new(Box::new(FnBackend::echo(8192)), PlatformConfig::default())?;
//! let mut driver = platform.driver();
//! let command = vtpm_client::padded_get_random(6000);
//! let response = driver.transmit(0, &command)?;
//! assert_eq!(response, command); // the echo double answers with the command
//! assert_eq!(driver.last_transfer().chunks_sent, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod bus;
mod cancel;
mod config;
mod device;
mod exits;
mod jobs;
mod migrating;
mod platform;
mod saved;

pub use bus::CrbBus;
pub use config::{Execution, Interface, PlatformConfig, PlatformError};
pub use device::Device;
pub use exits::{io_copy_accesses, MmioExits};
pub use migrating::{BackendFactory, MigratingBus};
pub use platform::Platform;
pub use saved::{SealingKey, PLATFORM_MAGIC, PLATFORM_VERSION, SEALED_MAGIC, SEALED_VERSION};
pub use vtpm_crb::ChunkPolicy;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
