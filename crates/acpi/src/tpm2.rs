//! The ACPI `TPM2` table, TCG ACPI Specification table revision 4.
//!
//! Layout after the 36-byte header: Platform Class (u16), Reserved (u16),
//! Address of Control Area (u64), Start Method (u32), Start Method Specific
//! Parameters (12 bytes, zero for CRB and TIS), then optionally Log Area
//! Minimum Length (u32) and Log Area Start Address (u64). Little-endian.

use crate::layout::TpmLayout;
use crate::table::{self, OemIds};
use alloc::vec::Vec;

/// The table revision vtpm writes (the TCG ACPI Specification's current
/// layout, which QEMU also writes).
pub const TPM2_REVISION: u8 = 4;
/// Table length without a log area: header, 16 fixed bytes, 12 parameter
/// bytes.
pub const TPM2_LENGTH: usize = 64;
/// Table length with LAML and LASA.
pub const TPM2_LENGTH_WITH_LOG_AREA: usize = 76;

/// Bytes of Start Method Specific Parameters. The TCG ACPI Specification
/// sizes them per start method; for CRB and TIS they are reserved zeroes,
/// and 12 bytes put LAML/LASA where Linux and ACPICA read them.
const START_METHOD_PARAMETERS: usize = 12;

/// The platform the TPM is described for (TCG ACPI "Platform Class").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum PlatformClass {
    /// 0: PC Client.
    #[default]
    Client = 0,
    /// 1: Server.
    Server = 1,
}

/// Where the firmware keeps the TCG event log: Log Area Minimum Length
/// (LAML) and Log Area Start Address (LASA).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LogArea {
    /// LAML: bytes reserved for the log.
    pub minimum_length: u32,
    /// LASA: guest-physical address of the log.
    pub start_address: u64,
}

/// Builder of the `TPM2` table for one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tpm2Table {
    layout: TpmLayout,
    platform_class: PlatformClass,
    log_area: Option<LogArea>,
    oem: OemIds,
}

impl Tpm2Table {
    /// A PC Client table without a log area, OEM Table ID "VTPMTPM2".
    pub const fn new(layout: TpmLayout) -> Self {
        Self {
            layout,
            platform_class: PlatformClass::Client,
            log_area: None,
            oem: OemIds::vtpm(*b"VTPMTPM2"),
        }
    }

    /// Sets the Platform Class.
    pub const fn platform_class(mut self, class: PlatformClass) -> Self {
        self.platform_class = class;
        self
    }

    /// Adds LAML and LASA (the table grows from 64 to 76 bytes).
    pub const fn log_area(mut self, log_area: LogArea) -> Self {
        self.log_area = Some(log_area);
        self
    }

    /// Sets the header's OEM fields.
    pub const fn oem(mut self, oem: OemIds) -> Self {
        self.oem = oem;
        self
    }

    /// The complete table, checksummed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let Self {
            layout,
            platform_class,
            log_area,
            oem,
        } = self;
        let mut body = Vec::with_capacity(TPM2_LENGTH_WITH_LOG_AREA - 36);
        body.extend_from_slice(&(*platform_class as u16).to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes()); // Reserved
        body.extend_from_slice(&layout.control_area_address().to_le_bytes());
        body.extend_from_slice(&layout.interface().start_method().value().to_le_bytes());
        body.extend_from_slice(&[0; START_METHOD_PARAMETERS]);
        if let Some(LogArea {
            minimum_length,
            start_address,
        }) = log_area
        {
            body.extend_from_slice(&minimum_length.to_le_bytes());
            body.extend_from_slice(&start_address.to_le_bytes());
        }
        table::build(*b"TPM2", TPM2_REVISION, oem, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Interface;

    fn u32_at(t: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(t[at..at + 4].try_into().unwrap())
    }
    fn u64_at(t: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(t[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn a_crb_table_carries_ctrl_req_and_start_method_seven_at_the_spec_offsets() {
        let t = Tpm2Table::new(TpmLayout::pc(Interface::Crb)).to_bytes();
        assert_eq!(t.len(), TPM2_LENGTH);
        assert_eq!(&t[0..4], b"TPM2");
        assert_eq!(u32_at(&t, 4) as usize, TPM2_LENGTH);
        assert_eq!(t[8], 4);
        assert_eq!(u16::from_le_bytes([t[36], t[37]]), 0);
        assert_eq!(u64_at(&t, 40), 0xFED4_0040);
        assert_eq!(u32_at(&t, 48), 7);
        assert!(t[52..64].iter().all(|b| *b == 0));
    }

    #[test]
    fn a_log_area_appends_laml_then_lasa() {
        let t = Tpm2Table::new(TpmLayout::pc(Interface::Tis))
            .platform_class(PlatformClass::Server)
            .log_area(LogArea {
                minimum_length: 0x1_0000,
                start_address: 0x1234_5678_9ABC_D000,
            })
            .to_bytes();
        assert_eq!(t.len(), TPM2_LENGTH_WITH_LOG_AREA);
        assert_eq!(u16::from_le_bytes([t[36], t[37]]), 1);
        assert_eq!(u64_at(&t, 40), 0);
        assert_eq!(u32_at(&t, 48), 6);
        assert_eq!(u32_at(&t, 64), 0x1_0000);
        assert_eq!(u64_at(&t, 68), 0x1234_5678_9ABC_D000);
        assert_eq!(t.iter().fold(0u8, |s, b| s.wrapping_add(*b)), 0);
    }
}
