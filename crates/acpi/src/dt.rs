//! The device-tree node of a TIS device, for machines booted with a
//! flattened device tree (ARM): `tpm@<base> { compatible =
//! "tcg,tpm-tis-mmio"; reg = <...>; }`, the binding Linux's `tpm_tis`
//! driver matches. CRB has no such binding.

use crate::error::FirmwareError;
use crate::layout::{Interface, TpmLayout};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The generic TIS-over-MMIO compatible string.
pub const TIS_COMPATIBLE: &str = "tcg,tpm-tis-mmio";

/// The parent node's `#address-cells` and `#size-cells`, which decide how
/// `reg` is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CellSizes {
    address: u32,
    size: u32,
}

impl CellSizes {
    /// Two cells each, as at the root of QEMU's ARM `virt` machine.
    pub const TWO: Self = Self {
        address: 2,
        size: 2,
    };
    /// One cell each (a 32-bit bus).
    pub const ONE: Self = Self {
        address: 1,
        size: 1,
    };

    /// Cell counts of 1 or 2 each.
    pub fn new(address_cells: u32, size_cells: u32) -> Result<Self, FirmwareError> {
        for (property, cells) in [
            ("#address-cells", address_cells),
            ("#size-cells", size_cells),
        ] {
            if !(1..=2).contains(&cells) {
                return Err(FirmwareError::UnsupportedCells { property, cells });
            }
        }
        Ok(Self {
            address: address_cells,
            size: size_cells,
        })
    }

    /// `#address-cells`.
    pub const fn address_cells(&self) -> u32 {
        self.address
    }

    /// `#size-cells`.
    pub const fn size_cells(&self) -> u32 {
        self.size
    }
}

/// The `tpm@...` node of one TIS device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TisNode {
    base: u64,
    size: u64,
    cells: CellSizes,
}

impl TisNode {
    /// The node for `layout` under a parent with `cells`; `reg` spans all
    /// locality pages (the binding asks for at least 0x5000 bytes, which
    /// five localities give).
    pub fn new(layout: &TpmLayout, cells: CellSizes) -> Result<Self, FirmwareError> {
        if layout.interface() != Interface::Tis {
            return Err(FirmwareError::NoDeviceTreeBinding {
                interface: layout.interface(),
            });
        }
        let (base, size) = (layout.base(), layout.size());
        // With one address cell the whole range must be 32-bit addressable.
        let fits_address = cells.address == 2 || (size <= 1 << 32 && base <= (1 << 32) - size);
        let fits_size = cells.size == 2 || size <= u64::from(u32::MAX);
        if !(fits_address && fits_size) {
            return Err(FirmwareError::RangeExceedsCells {
                base,
                size,
                address_cells: cells.address,
                size_cells: cells.size,
            });
        }
        Ok(Self { base, size, cells })
    }

    /// The node name, `tpm@<base in hex>`.
    pub fn name(&self) -> String {
        format!("tpm@{:x}", self.base)
    }

    /// The `reg` cells: base then size, each in as many big-endian 32-bit
    /// cells as the parent declares.
    pub fn reg(&self) -> Vec<u32> {
        let mut cells = Vec::with_capacity(4);
        push_cells(&mut cells, self.base, self.cells.address);
        push_cells(&mut cells, self.size, self.cells.size);
        cells
    }

    /// The node as DTS source, one tab of indentation per level, for
    /// documentation or for a VMM that builds its tree from text.
    pub fn to_dts(&self) -> String {
        let reg: Vec<String> = self.reg().iter().map(|c| format!("{c:#x}")).collect();
        format!(
            "{} {{\n\tcompatible = \"{}\";\n\treg = <{}>;\n}};\n",
            self.name(),
            TIS_COMPATIBLE,
            reg.join(" ")
        )
    }

    /// Writes the node into `fdt` as a child of the node currently open
    /// there (which must declare the [`CellSizes`] given to [`TisNode::new`]).
    #[cfg(feature = "fdt")]
    pub fn write_to(&self, fdt: &mut vm_fdt::FdtWriter) -> Result<(), FirmwareError> {
        let node = fdt.begin_node(&self.name()).map_err(FirmwareError::Fdt)?;
        fdt.property_string("compatible", TIS_COMPATIBLE)
            .map_err(FirmwareError::Fdt)?;
        fdt.property_array_u32("reg", &self.reg())
            .map_err(FirmwareError::Fdt)?;
        fdt.end_node(node).map_err(FirmwareError::Fdt)
    }
}

fn push_cells(cells: &mut Vec<u32>, value: u64, count: u32) {
    if count == 2 {
        cells.push((value >> 32) as u32);
    }
    cells.push(value as u32);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::DEFAULT_BASE_ADDRESS;

    #[test]
    fn reg_uses_the_parents_cell_sizes() {
        let layout = TpmLayout::pc(Interface::Tis);
        let two = TisNode::new(&layout, CellSizes::TWO).unwrap();
        assert_eq!(two.reg(), [0, 0xFED4_0000, 0, 0x5000]);
        let one = TisNode::new(&layout, CellSizes::ONE).unwrap();
        assert_eq!(one.reg(), [0xFED4_0000, 0x5000]);
        let high = TpmLayout::new(Interface::Tis, 0x9_0000_0000, 1).unwrap();
        let mixed = TisNode::new(&high, CellSizes::new(2, 1).unwrap()).unwrap();
        assert_eq!(mixed.reg(), [9, 0, 0x1000]);
        assert_eq!(mixed.name(), "tpm@900000000");
    }

    #[test]
    fn a_range_above_four_gib_needs_two_address_cells() {
        let high = TpmLayout::new(Interface::Tis, 0x1_0000_0000, 1).unwrap();
        assert!(matches!(
            TisNode::new(&high, CellSizes::ONE),
            Err(FirmwareError::RangeExceedsCells {
                address_cells: 1,
                ..
            })
        ));
    }

    #[test]
    fn cell_counts_other_than_one_or_two_are_refused() {
        assert!(matches!(
            CellSizes::new(3, 2),
            Err(FirmwareError::UnsupportedCells {
                property: "#address-cells",
                cells: 3
            })
        ));
        assert!(matches!(
            CellSizes::new(2, 0),
            Err(FirmwareError::UnsupportedCells {
                property: "#size-cells",
                cells: 0
            })
        ));
    }

    #[test]
    fn a_crb_device_gets_no_device_tree_node() {
        let crb = TpmLayout::new(Interface::Crb, DEFAULT_BASE_ADDRESS, 1).unwrap();
        assert!(matches!(
            TisNode::new(&crb, CellSizes::TWO),
            Err(FirmwareError::NoDeviceTreeBinding {
                interface: Interface::Crb
            })
        ));
    }

    #[test]
    fn the_dts_text_names_the_node_compatible_and_reg() {
        let node = TisNode::new(&TpmLayout::pc(Interface::Tis), CellSizes::TWO).unwrap();
        assert_eq!(
            node.to_dts(),
            "tpm@fed40000 {\n\tcompatible = \"tcg,tpm-tis-mmio\";\n\treg = <0x0 0xfed40000 0x0 0x5000>;\n};\n"
        );
    }
}
