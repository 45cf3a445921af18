//! The TIS/FIFO register map of the TCG PC Client Platform TPM Profile
//! (PTP), declared once: offsets, fields and reset values. Behaviour lives
//! in `device.rs`; it reaches fields only through the accessors here.

/// Each locality owns one 4 KiB page.
pub const LOCALITY_PAGE_SIZE: u64 = 0x1000;
/// The PTP defines five localities.
pub const MAX_LOCALITIES: u8 = 5;

/// Register offsets inside a locality page.
pub mod reg {
    /// TPM_ACCESS (8 bits).
    pub const ACCESS: u64 = 0x00;
    /// TPM_INT_ENABLE.
    pub const INT_ENABLE: u64 = 0x08;
    /// TPM_INT_VECTOR (8 bits).
    pub const INT_VECTOR: u64 = 0x0C;
    /// TPM_INT_STATUS (write 1 to clear).
    pub const INT_STATUS: u64 = 0x10;
    /// TPM_INTF_CAPABILITY.
    pub const INTF_CAPABILITY: u64 = 0x14;
    /// TPM_STS.
    pub const STS: u64 = 0x18;
    /// TPM_DATA_FIFO: each byte of an access in 0x24..0x28 moves one FIFO byte.
    pub const DATA_FIFO: u64 = 0x24;
    /// TPM_INTERFACE_ID.
    pub const INTERFACE_ID: u64 = 0x30;
    /// TPM_XDATA_FIFO: 0x80..0xC0, up to 64 FIFO bytes per access.
    pub const XDATA_FIFO: u64 = 0x80;
    /// TPM_DID_VID.
    pub const DID_VID: u64 = 0xF00;
    /// TPM_RID (8 bits).
    pub const RID: u64 = 0xF04;
}

/// Bytes of TPM_DATA_FIFO.
pub const DATA_FIFO_LEN: u64 = 4;
/// Bytes of TPM_XDATA_FIFO.
pub const XDATA_FIFO_LEN: u64 = 64;
/// What a FIFO read gives when no response byte is available, and what
/// reserved space and a locality without access read.
pub const NO_DATA_BYTE: u8 = 0xFF;

use vtpm_mmio::fields;
pub use vtpm_mmio::Field;

/// TPM_ACCESS fields.
pub struct Access;
fields!(Access {
    /// Reads 1 when the TPM is NOT established (inverted sense).
    TPM_ESTABLISHMENT: 0..=0,
    /// Read: this locality waits for the TPM. Write 1: ask for it.
    REQUEST_USE: 1..=1,
    /// Another locality waits for the TPM (read only).
    PENDING_REQUEST: 2..=2,
    /// Write 1: take the TPM from a lower locality. Reads 0.
    SEIZE: 3..=3,
    /// This locality lost the TPM to a seize; write 1 to clear.
    BEEN_SEIZED: 4..=4,
    /// Read: this locality owns the TPM. Write 1: give it up.
    ACTIVE_LOCALITY: 5..=5,
    /// The other bits are valid.
    TPM_REG_VALID_STS: 7..=7,
});

/// TPM_INT_ENABLE / TPM_INT_STATUS fields.
pub struct Int;
fields!(Int {
    /// dataAvail became set.
    DATA_AVAIL: 0..=0,
    /// stsValid became set.
    STS_VALID: 1..=1,
    /// The active locality changed.
    LOCALITY_CHANGE: 2..=2,
    /// Interrupt polarity and type (INT_ENABLE only): 1 = low level.
    TYPE_POLARITY: 3..=4,
    /// commandReady became set.
    COMMAND_READY: 7..=7,
    /// Global interrupt enable (INT_ENABLE only).
    GLOBAL_ENABLE: 31..=31,
});

/// TPM_INT_VECTOR fields.
pub struct IntVector;
fields!(IntVector {
    /// SERIRQ vector.
    SIRQ_VEC: 0..=3,
});

/// TPM_INTF_CAPABILITY fields.
pub struct IntfCapability;
fields!(IntfCapability {
    /// dataAvail interrupt supported.
    DATA_AVAIL_INT: 0..=0,
    /// stsValid interrupt supported.
    STS_VALID_INT: 1..=1,
    /// localityChange interrupt supported.
    LOCALITY_CHANGE_INT: 2..=2,
    /// High-level interrupts supported.
    INT_LEVEL_HIGH: 3..=3,
    /// Low-level interrupts supported.
    INT_LEVEL_LOW: 4..=4,
    /// Rising-edge interrupts supported.
    INT_EDGE_RISING: 5..=5,
    /// Falling-edge interrupts supported.
    INT_EDGE_FALLING: 6..=6,
    /// commandReady interrupt supported.
    COMMAND_READY_INT: 7..=7,
    /// burstCount is static (0: it changes with the free space).
    BURST_COUNT_STATIC: 8..=8,
    /// Largest transfer: 0 legacy, 1 8 B, 2 32 B, 3 64 B.
    DATA_TRANSFER_SIZE_SUPPORT: 9..=10,
    /// Interface version: 3 = TIS 1.3 for TPM 2.0.
    INTERFACE_VERSION: 28..=30,
});

/// TPM_STS fields.
pub struct Sts;
fields!(Sts {
    /// Write 1: serve the response again from its first byte. Reads 0.
    RESPONSE_RETRY: 1..=1,
    /// TPM2_SelfTest has completed successfully.
    SELF_TEST_DONE: 2..=2,
    /// The TPM expects more command bytes.
    EXPECT: 3..=3,
    /// Response bytes are available in the FIFO.
    DATA_AVAIL: 4..=4,
    /// Write 1: execute the command. Reads 0.
    TPM_GO: 5..=5,
    /// Read: the TPM is ready for a command. Write 1: abort and get ready.
    COMMAND_READY: 6..=6,
    /// Expect and dataAvail are valid.
    STS_VALID: 7..=7,
    /// Bytes the FIFO takes or gives without waiting.
    BURST_COUNT: 8..=23,
    /// Write 1: cancel the executing command.
    COMMAND_CANCEL: 24..=24,
    /// Write 1 from locality 3 or 4: clear the established flag.
    RESET_ESTABLISHMENT: 25..=25,
    /// 0 = TPM 1.2, 1 = TPM 2.0.
    TPM_FAMILY: 26..=27,
});

/// TPM_INTERFACE_ID fields.
pub struct InterfaceId;
fields!(InterfaceId {
    /// 0 = FIFO for TPM 2.0, 0xF = TIS 1.3.
    INTERFACE_TYPE: 0..=3,
    /// 0 = FIFO.
    INTERFACE_VERSION: 4..=7,
    /// 1 = five localities.
    CAP_LOCALITY: 8..=8,
    /// 3 = 64-byte transfers.
    CAP_DATA_XFER_SIZE_SUPPORT: 11..=12,
    /// FIFO interface offered.
    CAP_FIFO: 13..=13,
    /// CRB interface offered.
    CAP_CRB: 14..=14,
    /// 0 = FIFO selected.
    INTERFACE_SELECTOR: 17..=18,
    /// The selector is locked.
    INTF_SEL_LOCK: 19..=19,
    /// Revision ID.
    RID: 24..=31,
});

/// TPM_DID_VID fields.
pub struct DidVid;
fields!(DidVid {
    /// Vendor ID.
    VID: 0..=15,
    /// Device ID.
    DID: 16..=31,
});

/// INT_STATUS bits events set (and INT_ENABLE bits that enable them).
pub const INT_SOURCES: u32 = Int::DATA_AVAIL.mask()
    | Int::STS_VALID.mask()
    | Int::LOCALITY_CHANGE.mask()
    | Int::COMMAND_READY.mask();
/// Writable bits of INT_ENABLE.
pub const INT_ENABLE_WRITABLE: u32 =
    INT_SOURCES | Int::TYPE_POLARITY.mask() | Int::GLOBAL_ENABLE.mask();
/// INT_ENABLE at reset: low-level interrupts, everything disabled.
pub const INT_ENABLE_RESET: u32 = Int::TYPE_POLARITY.with(0, POLARITY_LOW_LEVEL);
/// TYPE_POLARITY value for a low-level interrupt.
pub const POLARITY_LOW_LEVEL: u32 = 1;
/// TPM_FAMILY value for TPM 2.0.
pub const FAMILY_TPM2: u32 = 1;
/// INTERFACE_TYPE value for the FIFO interface of a TPM 2.0.
pub const INTERFACE_FIFO: u32 = 0;
/// INTERFACE_TYPE value for a TIS 1.3 interface.
pub const INTERFACE_TIS13: u32 = 0xF;
/// Transfer-size value for 64 bytes (INTF_CAPABILITY and INTERFACE_ID).
pub const XFER_SIZE_64: u32 = 3;
/// INTF_CAPABILITY.INTERFACE_VERSION for TIS 1.3 on a TPM 2.0.
pub const INTF_VERSION_TIS13_TPM2: u32 = 3;
/// The largest burstCount the 16-bit field can hold.
pub const MAX_BURST_COUNT: usize = 0xFFFF;
/// Default vendor ID (IBM, as QEMU reports).
pub const DEFAULT_VENDOR_ID: u16 = 0x1014;
/// Default device ID (as QEMU reports).
pub const DEFAULT_DEVICE_ID: u16 = 0x0001;
/// Default revision ID (as QEMU reports).
pub const DEFAULT_REVISION: u8 = 0x01;

/// TPM_INTF_CAPABILITY: the interrupts the device raises, low level,
/// dynamic burstCount, 64-byte transfers, TIS 1.3 for TPM 2.0.
pub const fn intf_capability() -> u32 {
    let mut v = 0;
    v = IntfCapability::DATA_AVAIL_INT.with_flag(v, true);
    v = IntfCapability::STS_VALID_INT.with_flag(v, true);
    v = IntfCapability::LOCALITY_CHANGE_INT.with_flag(v, true);
    v = IntfCapability::INT_LEVEL_LOW.with_flag(v, true);
    v = IntfCapability::COMMAND_READY_INT.with_flag(v, true);
    v = IntfCapability::DATA_TRANSFER_SIZE_SUPPORT.with(v, XFER_SIZE_64);
    IntfCapability::INTERFACE_VERSION.with(v, INTF_VERSION_TIS13_TPM2)
}

/// TPM_INTERFACE_ID for the given capabilities.
pub const fn interface_id(five_localities: bool, locked: bool, revision: u8) -> u32 {
    let mut v = 0;
    v = InterfaceId::INTERFACE_TYPE.with(v, INTERFACE_FIFO);
    v = InterfaceId::CAP_LOCALITY.with_flag(v, five_localities);
    v = InterfaceId::CAP_DATA_XFER_SIZE_SUPPORT.with(v, XFER_SIZE_64);
    v = InterfaceId::CAP_FIFO.with_flag(v, true);
    v = InterfaceId::INTF_SEL_LOCK.with_flag(v, locked);
    InterfaceId::RID.with(v, revision as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_matches_qemu_for_tpm2() {
        // QEMU's TPM_TIS_CAPABILITIES_SUPPORTED2_0.
        assert_eq!(intf_capability(), 0x3000_0697);
    }

    #[test]
    fn interface_id_names_a_fifo_with_five_localities() {
        assert_eq!(interface_id(true, false, 0), 0x0000_3900);
        assert_eq!(interface_id(false, true, 1), 0x0108_3800);
    }

    #[test]
    fn field_accessors() {
        assert_eq!(Sts::BURST_COUNT.mask(), 0x00FF_FF00);
        assert_eq!(Sts::TPM_FAMILY.with(0, FAMILY_TPM2), 0x0400_0000);
        assert_eq!(Access::ACTIVE_LOCALITY.mask(), 0x20);
        assert_eq!(INT_ENABLE_RESET, 0x08);
    }
}
