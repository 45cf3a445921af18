//! Guest-side TPM drivers over an [`Mmio`] trait: the reference client of
//! vtpm's device models.
//!
//! [`CrbDriver`] probes a CRB interface, manages localities and the
//! Idle/Ready states, and moves commands and responses through the data
//! window, in pieces when the device advertises CapCRBChunk (PTP v1.07).
//! [`TisDriver`] does the same through a TIS/FIFO interface, in bursts of
//! at most burstCount bytes, as Linux's tpm_tis_core does.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod crb;
mod mmio;
mod tis;

pub use crb::{CrbDriver, DeviceInfo, DriverError, Timeouts, Transfer, TransmitOptions};
pub use mmio::{Clock, Mmio, SystemClock};
pub use tis::{FifoAccess, TisDriver, TisError, TisInfo, TisTransfer, TisTransmitOptions};

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
