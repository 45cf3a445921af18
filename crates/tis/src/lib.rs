//! A sans-I/O TPM 2.0 TIS/FIFO device model (TCG PC Client Platform TPM
//! Profile): five localities with the PTP arbitration, a FIFO buffer sized
//! by the backend (so post-quantum commands and responses pass whole),
//! asynchronous execution and snapshot at any step.
//!
//! The device is a deterministic state machine. A VMM forwards MMIO
//! accesses to [`TisDevice::read`] and [`TisDevice::write`], runs the
//! [`Action`]s the writes return on a backend, and reports each result with
//! [`TisDevice::complete`]. See the crate README for the differences from
//! QEMU's TIS.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod config;
mod device;
mod snapshot;
pub mod spec;

pub use config::{ConfigError, TisConfig, MAX_BACKEND_BUFFER};
pub use device::{Action, BackendFailed, Completion, DeviceStats, ExecToken, TisDevice};
pub use snapshot::{SnapshotError, SNAPSHOT_MAGIC, SNAPSHOT_VERSION};

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
