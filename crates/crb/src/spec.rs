//! The CRB register map of the TCG PC Client Platform TPM Profile (PTP),
//! declared once: offsets, fields and reset values. Behaviour lives in
//! `device.rs`; it reaches fields only through the accessors here.

/// Guest-physical base of locality 0 in the PC memory map.
pub const DEFAULT_BASE_ADDRESS: u64 = 0xFED4_0000;
/// Each locality owns one 4 KiB page.
pub const LOCALITY_PAGE_SIZE: u64 = 0x1000;
/// The PTP defines five localities.
pub const MAX_LOCALITIES: u8 = 5;
/// Offset of the data window inside a locality page.
pub const DATA_WINDOW_OFFSET: u64 = 0x80;
/// The largest window a 4 KiB page can hold (0x1000 - 0x80).
pub const MAX_WINDOW_SIZE: usize = (LOCALITY_PAGE_SIZE - DATA_WINDOW_OFFSET) as usize;
/// The smallest window vtpm accepts: one 64-byte transfer.
pub const MIN_WINDOW_SIZE: usize = 64;

/// Register offsets inside a locality page.
pub mod reg {
    /// TPM_LOC_STATE.
    pub const LOC_STATE: u64 = 0x00;
    /// TPM_LOC_CTRL (write only).
    pub const LOC_CTRL: u64 = 0x08;
    /// TPM_LOC_STS.
    pub const LOC_STS: u64 = 0x0C;
    /// TPM_CRB_INTF_ID, low dword.
    pub const INTF_ID_LO: u64 = 0x30;
    /// TPM_CRB_INTF_ID, high dword (VID, DID).
    pub const INTF_ID_HI: u64 = 0x34;
    /// TPM_CRB_CTRL_EXT, low dword (64-bit register).
    pub const CTRL_EXT_LO: u64 = 0x38;
    /// TPM_CRB_CTRL_EXT, high dword.
    pub const CTRL_EXT_HI: u64 = 0x3C;
    /// TPM_CRB_CTRL_REQ.
    pub const CTRL_REQ: u64 = 0x40;
    /// TPM_CRB_CTRL_STS.
    pub const CTRL_STS: u64 = 0x44;
    /// TPM_CRB_CTRL_CANCEL.
    pub const CTRL_CANCEL: u64 = 0x48;
    /// TPM_CRB_CTRL_START.
    pub const CTRL_START: u64 = 0x4C;
    /// TPM_CRB_INT_ENABLE.
    pub const INT_ENABLE: u64 = 0x50;
    /// TPM_CRB_INT_STS (write 1 to clear).
    pub const INT_STS: u64 = 0x54;
    /// TPM_CRB_CTRL_CMD_SIZE.
    pub const CTRL_CMD_SIZE: u64 = 0x58;
    /// TPM_CRB_CTRL_CMD_LADDR.
    pub const CTRL_CMD_LADDR: u64 = 0x5C;
    /// TPM_CRB_CTRL_CMD_HADDR.
    pub const CTRL_CMD_HADDR: u64 = 0x60;
    /// TPM_CRB_CTRL_RSP_SIZE.
    pub const CTRL_RSP_SIZE: u64 = 0x64;
    /// TPM_CRB_CTRL_RSP_ADDR, low dword (64-bit register).
    pub const CTRL_RSP_ADDR_LO: u64 = 0x68;
    /// TPM_CRB_CTRL_RSP_ADDR, high dword.
    pub const CTRL_RSP_ADDR_HI: u64 = 0x6C;
}

use vtpm_mmio::fields;
pub use vtpm_mmio::Field;

/// TPM_LOC_STATE fields.
pub struct LocState;
fields!(LocState {
    /// Reads 1 when the TPM is NOT established (inverted sense).
    TPM_ESTABLISHED: 0..=0,
    /// A locality is assigned.
    LOC_ASSIGNED: 1..=1,
    /// The assigned locality.
    ACTIVE_LOCALITY: 2..=4,
    /// The register contents are valid.
    TPM_REG_VALID_STS: 7..=7,
});

/// TPM_LOC_CTRL fields.
pub struct LocCtrl;
fields!(LocCtrl {
    /// Request this locality.
    REQUEST_ACCESS: 0..=0,
    /// Give this locality up.
    RELINQUISH: 1..=1,
    /// Take the TPM from a lower locality.
    SEIZE: 2..=2,
    /// Clear the established flag (localities 3 and 4 only).
    RESET_ESTABLISHMENT_BIT: 3..=3,
});

/// TPM_LOC_STS fields.
pub struct LocSts;
fields!(LocSts {
    /// The reading locality is the active one.
    GRANTED: 0..=0,
    /// The reading locality lost the TPM to a seize.
    BEEN_SEIZED: 1..=1,
});

/// TPM_CRB_INTF_ID (low dword) fields.
pub struct IntfId;
fields!(IntfId {
    /// 1 = CRB.
    INTERFACE_TYPE: 0..=3,
    /// 1 = CRB.
    INTERFACE_VERSION: 4..=7,
    /// 1 = five localities.
    CAP_LOCALITY: 8..=8,
    /// Idle bypass (not offered).
    CAP_CRB_IDLE_BYPASS: 9..=9,
    /// Chunked transfers (PTP v1.07).
    CAP_CRB_CHUNK: 10..=10,
    /// 3 = 64-byte transfers.
    CAP_DATA_XFER_SIZE_SUPPORT: 11..=12,
    /// FIFO interface offered.
    CAP_FIFO: 13..=13,
    /// CRB interface offered.
    CAP_CRB: 14..=14,
    /// 1 = CRB selected.
    INTERFACE_SELECTOR: 17..=18,
    /// The selector is locked.
    INTF_SEL_LOCK: 19..=19,
    /// Revision ID.
    RID: 24..=31,
});

/// TPM_CRB_INTF_ID (high dword) fields.
pub struct IntfIdHi;
fields!(IntfIdHi {
    /// Vendor ID.
    VID: 0..=15,
    /// Device ID.
    DID: 16..=31,
});

/// TPM_CRB_CTRL_REQ fields.
pub struct CtrlReq;
fields!(CtrlReq {
    /// Move to the Ready state.
    CMD_READY: 0..=0,
    /// Move to the Idle state.
    GO_IDLE: 1..=1,
});

/// TPM_CRB_CTRL_STS fields.
pub struct CtrlSts;
fields!(CtrlSts {
    /// Fatal error: the TPM needs a reset.
    TPM_STS: 0..=0,
    /// The TPM is idle.
    TPM_IDLE: 1..=1,
});

/// TPM_CRB_CTRL_CANCEL fields.
pub struct CtrlCancel;
fields!(CtrlCancel {
    /// Cancel the executing command.
    CANCEL: 0..=0,
});

/// TPM_CRB_CTRL_START fields.
pub struct CtrlStart;
fields!(CtrlStart {
    /// Execute the command in the window (reads 1 until done).
    START: 0..=0,
    /// Restart the response from its first byte (PTP v1.07).
    CRB_RSP_RETRY: 1..=1,
    /// Take the next command piece, or give the next response piece (PTP v1.07).
    NEXT_CHUNK: 2..=2,
});

/// TPM_CRB_INT_ENABLE / TPM_CRB_INT_STS fields.
pub struct IntBits;
fields!(IntBits {
    /// A command completed (Start cleared).
    START: 0..=0,
    /// cmdReady completed.
    CMD_READY: 1..=1,
    /// The established flag was cleared.
    ESTABLISHMENT_CLEAR: 2..=2,
    /// The active locality changed.
    LOCALITY_CHANGE: 3..=3,
    /// Global interrupt enable (INT_ENABLE only).
    GLOBAL_ENABLE: 31..=31,
});

/// Writable bits of INT_ENABLE.
pub const INT_ENABLE_WRITABLE: u32 = IntBits::START.mask()
    | IntBits::CMD_READY.mask()
    | IntBits::ESTABLISHMENT_CLEAR.mask()
    | IntBits::LOCALITY_CHANGE.mask()
    | IntBits::GLOBAL_ENABLE.mask();
/// Bits of INT_STS that events set and writes of 1 clear.
pub const INT_STS_BITS: u32 = IntBits::START.mask()
    | IntBits::CMD_READY.mask()
    | IntBits::ESTABLISHMENT_CLEAR.mask()
    | IntBits::LOCALITY_CHANGE.mask();

/// Reset value of CTRL_STS: idle, no fatal error.
pub const CTRL_STS_RESET: u32 = CtrlSts::TPM_IDLE.mask();
/// INTERFACE_TYPE / INTERFACE_VERSION / INTERFACE_SELECTOR value for CRB.
pub const INTERFACE_CRB: u32 = 1;
/// CAP_DATA_XFER_SIZE_SUPPORT value for 64-byte transfers.
pub const XFER_SIZE_64: u32 = 3;
/// Default vendor ID (IBM, as QEMU reports).
pub const DEFAULT_VENDOR_ID: u16 = 0x1014;
/// Default device ID.
pub const DEFAULT_DEVICE_ID: u16 = 0x0000;

/// The INTF_ID low dword for the given capabilities.
pub const fn intf_id_low(five_localities: bool, chunking: bool, revision: u8) -> u32 {
    let mut v = 0;
    v = IntfId::INTERFACE_TYPE.with(v, INTERFACE_CRB);
    v = IntfId::INTERFACE_VERSION.with(v, INTERFACE_CRB);
    v = IntfId::CAP_LOCALITY.with_flag(v, five_localities);
    v = IntfId::CAP_CRB_CHUNK.with_flag(v, chunking);
    v = IntfId::CAP_DATA_XFER_SIZE_SUPPORT.with(v, XFER_SIZE_64);
    v = IntfId::CAP_CRB.with_flag(v, true);
    v = IntfId::INTERFACE_SELECTOR.with(v, INTERFACE_CRB);
    IntfId::RID.with(v, revision as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intf_id_matches_qemu_reset_values() {
        assert_eq!(intf_id_low(false, true, 0), 0x0002_5C11);
        assert_eq!(intf_id_low(false, false, 0), 0x0002_5811);
        assert_eq!(intf_id_low(true, true, 0), 0x0002_5D11);
    }

    #[test]
    fn field_accessors() {
        assert_eq!(LocState::ACTIVE_LOCALITY.mask(), 0b11100);
        assert_eq!(LocState::ACTIVE_LOCALITY.with(0x80, 3), 0x8C);
        assert_eq!(LocState::ACTIVE_LOCALITY.get(0x8C), 3);
        assert_eq!(IntBits::GLOBAL_ENABLE.mask(), 0x8000_0000);
        assert_eq!(IntfId::RID.with(0, 0x1FF), 0xFF00_0000);
    }
}
