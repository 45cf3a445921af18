//! vtpm's devices for a rust-vmm based VMM.
//!
//! - [`InlineTis`]: the TIS/FIFO device model with a backend run on the
//!   thread that writes tpmGo (the vCPU thread), as one MMIO target.
//! - With the `vm-device` feature (default): [`VmDevice`], which makes any
//!   vtpm MMIO target (the CRB platform's [`vtpm_platform::CrbBus`],
//!   [`InlineTis`]) a `vm_device::MutDeviceMmio` to register on a
//!   `vm_device::device_manager::IoManager`, and [`IoManagerMmio`], guest
//!   MMIO through such a manager, so vtpm's guest drivers run the path a
//!   VM exit takes.
//!
//! `examples/io_manager.rs` registers both devices on an `IoManager` and
//! runs a workload through it; `tests/example.rs` runs it.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod tis;
#[cfg(feature = "vm-device")]
mod vm_device_adapters;

pub use tis::{InlineTis, InlineTisError};
#[cfg(feature = "vm-device")]
pub use vm_device_adapters::{IoManagerMmio, VmDevice};

/// docs/integration.md's snippets, compiled and run as doctests.
#[doc = include_str!("../../../docs/integration.md")]
#[cfg(doctest)]
pub struct IntegrationDoctests;
