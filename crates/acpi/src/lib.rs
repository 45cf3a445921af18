//! Firmware descriptions of a vtpm device, as bytes a VMM drops into the
//! tables it gives its guest:
//!
//! - [`Tpm2Table`]: the ACPI `TPM2` table (TCG ACPI Specification, table
//!   revision 4) that tells the guest the start method (CRB or TIS/FIFO),
//!   the control area address and, optionally, the event log area;
//! - [`AcpiDevice`]: the `\_SB.TPM` device (`_HID "MSFT0101"`, `_STA`,
//!   `_CRS` over the locality pages), as bare AML to embed in a DSDT or as a
//!   complete SSDT;
//! - [`TisNode`]: the `tcg,tpm-tis-mmio` device-tree node for machines
//!   booted with a flattened device tree (ARM), as DTS text or written into
//!   a `vm_fdt::FdtWriter` (feature `fdt`, on by default).
//!
//! The crate's code uses only `core` and `alloc`; the `fdt` feature links
//! std through vm-fdt.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod aml;
mod dt;
mod error;
mod layout;
mod table;
mod tpm2;

pub use aml::{AcpiDevice, DEVICE_HID, DEVICE_NAME, DEVICE_STA, DEVICE_UID};
pub use dt::{CellSizes, TisNode, TIS_COMPATIBLE};
pub use error::FirmwareError;
pub use layout::{
    Interface, StartMethod, TpmLayout, CRB_CONTROL_AREA_OFFSET, DEFAULT_BASE_ADDRESS,
    LOCALITY_PAGE_SIZE, MAX_LOCALITIES,
};
pub use table::{OemIds, CREATOR_ID, CREATOR_REVISION};
pub use tpm2::{
    LogArea, PlatformClass, Tpm2Table, TPM2_LENGTH, TPM2_LENGTH_WITH_LOG_AREA, TPM2_REVISION,
};

/// The README's examples, compiled and run as doctests (they use vm-fdt).
#[doc = include_str!("../README.md")]
#[cfg(all(doctest, feature = "fdt"))]
pub struct ReadmeDoctests;
