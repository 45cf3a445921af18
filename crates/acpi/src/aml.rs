//! The ACPI namespace device of the TPM: `Device (TPM)` with `_HID
//! "MSFT0101"`, `_UID`, `_STA` and `_CRS`, as QEMU declares it. Guests bind
//! their CRB or TIS driver to `MSFT0101` and read the start method from the
//! TPM2 table.

use crate::error::FirmwareError;
use crate::layout::TpmLayout;
use crate::table::{self, OemIds};
use acpi_tables::aml::{self, Path};
use acpi_tables::{Aml, AmlSink};
use alloc::vec;
use alloc::vec::Vec;

/// The device's NameSeg (`TPM` in ASL, padded to four characters).
pub const DEVICE_NAME: &str = "TPM_";
/// `_HID`: the TCG's ACPI ID for a TPM 2.0 device.
pub const DEVICE_HID: &str = "MSFT0101";
/// `_UID`, as QEMU's PC machines declare it.
pub const DEVICE_UID: u8 = 1;
/// `_STA`: present, enabled, shown in the UI, functioning.
pub const DEVICE_STA: u8 = 0x0F;

/// SSDT revision 2: integers are 64 bits wide.
const SSDT_REVISION: u8 = 2;

/// The `\_SB.TPM` device of one vtpm device.
///
/// It implements [`acpi_tables::Aml`], so a VMM that builds its DSDT with
/// `acpi_tables` adds it as a child of its `\_SB` scope; others take
/// [`AcpiDevice::to_aml`] or the complete [`AcpiDevice::ssdt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AcpiDevice {
    base: u32,
    length: u32,
}

impl AcpiDevice {
    /// The device for `layout`; `_CRS` spans all of its locality pages.
    ///
    /// Fails when the pages end above 4 GiB: `Memory32Fixed`, the
    /// descriptor QEMU uses and guests expect, has 32-bit fields.
    pub fn new(layout: &TpmLayout) -> Result<Self, FirmwareError> {
        let (base, size) = (layout.base(), layout.size());
        let above = || FirmwareError::AboveFourGib { base, size };
        let end = base.checked_add(size).ok_or_else(above)?;
        if end > 1 << 32 {
            return Err(above());
        }
        Ok(Self {
            base: u32::try_from(base).map_err(|_| above())?,
            length: u32::try_from(size).map_err(|_| above())?,
        })
    }

    /// `_CRS`'s Memory32Fixed base.
    pub const fn base(&self) -> u32 {
        self.base
    }

    /// `_CRS`'s Memory32Fixed length (`0x1000` per locality).
    pub const fn length(&self) -> u32 {
        self.length
    }

    /// The bare `Device (TPM) {...}` term, to place inside a `\_SB` scope.
    pub fn to_aml(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.to_aml_bytes(&mut bytes);
        bytes
    }

    /// A complete SSDT holding `Scope (\_SB) { Device (TPM) {...} }`, for a
    /// VMM that adds tables rather than editing its DSDT.
    pub fn ssdt(&self, oem: &OemIds) -> Vec<u8> {
        let scope = aml::Scope::new(Path::new("\\_SB_"), vec![self as &dyn Aml]);
        let mut body = Vec::new();
        scope.to_aml_bytes(&mut body);
        table::build(*b"SSDT", SSDT_REVISION, oem, &body)
    }
}

impl Aml for AcpiDevice {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        let hid = aml::Name::new(Path::new("_HID"), &DEVICE_HID);
        let uid = aml::Name::new(Path::new("_UID"), &DEVICE_UID);
        let sta = aml::Name::new(Path::new("_STA"), &DEVICE_STA);
        let registers = aml::Memory32Fixed::new(true, self.base, self.length);
        let crs = aml::Name::new(
            Path::new("_CRS"),
            &aml::ResourceTemplate::new(vec![&registers]),
        );
        aml::Device::new(Path::new(DEVICE_NAME), vec![&hid, &uid, &sta, &crs]).to_aml_bytes(sink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{Interface, DEFAULT_BASE_ADDRESS};

    #[test]
    fn the_resource_range_covers_one_page_per_locality() {
        for localities in 1..=5u8 {
            let layout = TpmLayout::new(Interface::Crb, DEFAULT_BASE_ADDRESS, localities).unwrap();
            let device = AcpiDevice::new(&layout).unwrap();
            assert_eq!(device.base(), 0xFED4_0000);
            assert_eq!(device.length(), u32::from(localities) * 0x1000);
        }
    }

    #[test]
    fn a_device_ending_above_four_gib_is_refused() {
        let straddles = TpmLayout::new(Interface::Tis, 0xFFFF_F000, 2).unwrap();
        assert!(matches!(
            AcpiDevice::new(&straddles),
            Err(FirmwareError::AboveFourGib {
                base: 0xFFFF_F000,
                size: 0x2000
            })
        ));
        let last_page = TpmLayout::new(Interface::Tis, 0xFFFF_F000, 1).unwrap();
        assert_eq!(AcpiDevice::new(&last_page).unwrap().length(), 0x1000);
    }

    #[test]
    fn the_ssdt_wraps_exactly_the_bare_device_term() {
        let device = AcpiDevice::new(&TpmLayout::pc(Interface::Crb)).unwrap();
        let term = device.to_aml();
        let ssdt = device.ssdt(&OemIds::vtpm(*b"VTPMSSDT"));
        assert_eq!(&ssdt[0..4], b"SSDT");
        assert!(ssdt.ends_with(&term));
        assert_eq!(ssdt.iter().fold(0u8, |s, b| s.wrapping_add(*b)), 0);
    }
}
