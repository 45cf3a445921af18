//! A sans-I/O TPM 2.0 CRB (Command Response Buffer) device model with the
//! chunking of the TCG PC Client Platform TPM Profile v1.07.
//!
//! The device is a deterministic state machine. A VMM forwards MMIO
//! accesses to [`CrbDevice::read`] and [`CrbDevice::write`], runs the
//! [`Action`]s the writes return on a backend, and reports each result with
//! [`CrbDevice::complete`]. See the crate README for the differences from
//! QEMU's CRB.
//!
//! `no_std` + `alloc`: the crate cannot reach threads, files, sockets or
//! clocks, so sans-I/O is enforced by the compiler.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod config;
mod device;
mod ram;
mod snapshot;
pub mod spec;
mod tpm;

pub use config::{ChunkPolicy, ConfigError, CrbConfig, MAX_BACKEND_BUFFER};
pub use device::{Action, BackendFailed, Completion, CrbDevice, DeviceStats, ExecToken};
pub use snapshot::{SnapshotError, SNAPSHOT_MAGIC, SNAPSHOT_VERSION};

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
