use crate::layout::Interface;

/// Why a firmware description cannot be produced.
#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    /// The PTP defines localities 0 to 4; a device serves at least one.
    #[error("a TPM serves 1 to 5 localities, not {count}")]
    LocalityCount {
        /// The number asked for.
        count: u8,
    },
    /// Each locality is one 4 KiB page, so the base must start a page.
    #[error("base address {base:#x} does not start a 4 KiB locality page")]
    UnalignedBase {
        /// The base asked for.
        base: u64,
    },
    /// The locality pages would run past the end of the address space.
    #[error(
        "the register range at {base:#x} ({size:#x} bytes) runs past the end of the address space"
    )]
    RangeOverflow {
        /// Base of locality 0.
        base: u64,
        /// Bytes the locality pages span.
        size: u64,
    },
    /// `Memory32Fixed`, the descriptor guests expect for a TPM, has 32-bit
    /// base and length.
    #[error("the register range at {base:#x} ({size:#x} bytes) ends above 4 GiB, which an ACPI Memory32Fixed descriptor cannot describe")]
    AboveFourGib {
        /// Base of locality 0.
        base: u64,
        /// Bytes the locality pages span.
        size: u64,
    },
    /// A `reg` entry is built from one or two 32-bit cells per number.
    #[error("{property} = <{cells}> is not supported: vtpm writes reg entries of 1 or 2 cells per number")]
    UnsupportedCells {
        /// `#address-cells` or `#size-cells`.
        property: &'static str,
        /// The cell count asked for.
        cells: u32,
    },
    /// The range does not fit the parent bus's cell sizes.
    #[error("the register range at {base:#x} ({size:#x} bytes) does not fit {address_cells} address cell(s) and {size_cells} size cell(s)")]
    RangeExceedsCells {
        /// Base of locality 0.
        base: u64,
        /// Bytes the locality pages span.
        size: u64,
        /// The parent's `#address-cells`.
        address_cells: u32,
        /// The parent's `#size-cells`.
        size_cells: u32,
    },
    /// Only TIS has a device-tree binding (`tcg,tpm-tis-mmio`).
    #[error(
        "the {interface:?} interface has no device-tree binding; describe it with ACPI, or use TIS"
    )]
    NoDeviceTreeBinding {
        /// The interface asked for.
        interface: Interface,
    },
    /// vm-fdt refused a node or property (for example, properties after a
    /// child node of the parent).
    #[cfg(feature = "fdt")]
    #[error("vm-fdt refused the TPM node")]
    Fdt(#[source] vm_fdt::Error),
}
