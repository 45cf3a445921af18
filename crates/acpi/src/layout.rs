//! Where the device sits in guest-physical memory and which interface it
//! presents: the facts every firmware description is derived from.

use crate::error::FirmwareError;

/// Guest-physical base of locality 0 in the PC memory map (PTP).
pub const DEFAULT_BASE_ADDRESS: u64 = 0xFED4_0000;
/// Each locality owns one 4 KiB page.
pub const LOCALITY_PAGE_SIZE: u64 = 0x1000;
/// The PTP defines five localities (0 to 4).
pub const MAX_LOCALITIES: u8 = 5;
/// Offset of TPM_CRB_CTRL_REQ in locality 0's page: the start of the CRB
/// control area, whose address the TPM2 table carries (as QEMU does).
pub const CRB_CONTROL_AREA_OFFSET: u64 = 0x40;

/// The register interface the device presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interface {
    /// Command Response Buffer (TPM_CRB_*): `vtpm-crb`.
    Crb,
    /// FIFO / TIS (TPM_ACCESS, TPM_STS, TPM_DATA_FIFO ...).
    Tis,
}

impl Interface {
    /// The TPM2 table start method that tells the guest how to drive this
    /// interface.
    pub const fn start_method(self) -> StartMethod {
        match self {
            Interface::Crb => StartMethod::Crb,
            Interface::Tis => StartMethod::Tis,
        }
    }
}

/// TPM2 table start methods vtpm produces (TCG ACPI Specification,
/// "Start Method" values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum StartMethod {
    /// 6: the FIFO/TIS interface, driven through memory-mapped registers.
    Tis = 6,
    /// 7: the Command Response Buffer interface.
    Crb = 7,
}

impl StartMethod {
    /// The value written into the table.
    pub const fn value(self) -> u32 {
        self as u32
    }
}

/// The device's place in guest-physical memory: the interface, the base of
/// locality 0 and how many consecutive locality pages it serves.
///
/// Construction validates everything the descriptions depend on, so the
/// builders that take a layout cannot fail on it afterwards (except where a
/// format is narrower, such as ACPI's 32-bit `Memory32Fixed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TpmLayout {
    interface: Interface,
    base: u64,
    localities: u8,
}

impl TpmLayout {
    /// A device at `base` serving localities `0..localities`.
    pub fn new(interface: Interface, base: u64, localities: u8) -> Result<Self, FirmwareError> {
        if localities == 0 || localities > MAX_LOCALITIES {
            return Err(FirmwareError::LocalityCount { count: localities });
        }
        if !base.is_multiple_of(LOCALITY_PAGE_SIZE) {
            return Err(FirmwareError::UnalignedBase { base });
        }
        let size = u64::from(localities) * LOCALITY_PAGE_SIZE;
        // The last byte must be addressable: base + size may equal 2^64
        // only if it does not wrap, which `checked_add` on size - 1 allows.
        if base.checked_add(size - 1).is_none() {
            return Err(FirmwareError::RangeOverflow { base, size });
        }
        Ok(Self {
            interface,
            base,
            localities,
        })
    }

    /// The PC layout: locality 0 at 0xFED40000 and all five localities.
    pub const fn pc(interface: Interface) -> Self {
        Self {
            interface,
            base: DEFAULT_BASE_ADDRESS,
            localities: MAX_LOCALITIES,
        }
    }

    /// The register interface.
    pub const fn interface(&self) -> Interface {
        self.interface
    }

    /// Guest-physical base of locality 0.
    pub const fn base(&self) -> u64 {
        self.base
    }

    /// Number of locality pages served, from locality 0 up.
    pub const fn localities(&self) -> u8 {
        self.localities
    }

    /// Bytes the locality pages span (`0x1000` per locality).
    pub const fn size(&self) -> u64 {
        self.localities as u64 * LOCALITY_PAGE_SIZE
    }

    /// The TPM2 table's "Address of Control Area": locality 0's
    /// TPM_CRB_CTRL_REQ for CRB, 0 for TIS (whose registers the guest finds
    /// through `_CRS`).
    pub const fn control_area_address(&self) -> u64 {
        match self.interface {
            Interface::Crb => self.base + CRB_CONTROL_AREA_OFFSET,
            Interface::Tis => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_refuses_zero_or_more_than_five_localities() {
        for count in [0, 6, 255] {
            let err = TpmLayout::new(Interface::Crb, DEFAULT_BASE_ADDRESS, count).unwrap_err();
            assert!(matches!(err, FirmwareError::LocalityCount { count: c } if c == count));
        }
        for count in 1..=5 {
            let layout = TpmLayout::new(Interface::Crb, DEFAULT_BASE_ADDRESS, count).unwrap();
            assert_eq!(layout.size(), u64::from(count) * 0x1000);
        }
    }

    #[test]
    fn a_layout_refuses_a_base_inside_a_page() {
        let err = TpmLayout::new(Interface::Tis, DEFAULT_BASE_ADDRESS + 0x40, 1).unwrap_err();
        assert!(matches!(err, FirmwareError::UnalignedBase { base } if base == 0xFED4_0040));
    }

    #[test]
    fn a_layout_refuses_pages_past_the_end_of_the_address_space() {
        let last_page = u64::MAX - 0xFFF;
        assert!(TpmLayout::new(Interface::Tis, last_page, 1).is_ok());
        let err = TpmLayout::new(Interface::Tis, last_page, 2).unwrap_err();
        assert!(matches!(
            err,
            FirmwareError::RangeOverflow { size: 0x2000, .. }
        ));
    }

    #[test]
    fn the_control_area_is_ctrl_req_for_crb_and_zero_for_tis() {
        let crb = TpmLayout::new(Interface::Crb, 0x1_0000_0000, 1).unwrap();
        assert_eq!(crb.control_area_address(), 0x1_0000_0040);
        assert_eq!(TpmLayout::pc(Interface::Tis).control_area_address(), 0);
        assert_eq!(Interface::Crb.start_method().value(), 7);
        assert_eq!(Interface::Tis.start_method().value(), 6);
    }
}
