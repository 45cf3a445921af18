//! The standard ACPI table header, shared by the TPM2 table and the SSDT.

use acpi_tables::sdt::Sdt;
use alloc::vec::Vec;

/// Creator ID written into every table vtpm builds ("Asl Compiler ID" in
/// ACPICA's listing).
pub const CREATOR_ID: [u8; 4] = *b"VTPM";
/// Creator revision written into every table vtpm builds.
pub const CREATOR_REVISION: u32 = 1;

/// Offset of the Creator ID in the standard table header.
const CREATOR_ID_OFFSET: usize = 28;
/// Offset of the Creator Revision in the standard table header.
const CREATOR_REVISION_OFFSET: usize = 32;
/// Bytes of the standard table header.
pub(crate) const HEADER_LENGTH: u32 = 36;

/// The OEM fields of a table header. A VMM usually sets them to its own
/// identity so all of its tables agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OemIds {
    /// OEM ID (6 bytes, space-padded by convention).
    pub oem_id: [u8; 6],
    /// OEM Table ID (8 bytes); names this table among the OEM's tables.
    pub oem_table_id: [u8; 8],
    /// OEM Revision.
    pub oem_revision: u32,
}

impl OemIds {
    /// vtpm's own identity with the given table ID.
    pub const fn vtpm(oem_table_id: [u8; 8]) -> Self {
        Self {
            oem_id: *b"VTPM  ",
            oem_table_id,
            oem_revision: 1,
        }
    }
}

/// A complete table: header (length and checksum filled in) then `body`.
pub(crate) fn build(signature: [u8; 4], revision: u8, oem: &OemIds, body: &[u8]) -> Vec<u8> {
    // acpi_tables keeps the length and the checksum right as bytes go in.
    let mut table = Sdt::new(
        signature,
        HEADER_LENGTH,
        revision,
        oem.oem_id,
        oem.oem_table_id,
        oem.oem_revision,
    );
    table.write_bytes(CREATOR_ID_OFFSET, &CREATOR_ID);
    table.write_u32(CREATOR_REVISION_OFFSET, CREATOR_REVISION);
    table.append_slice(body);
    table.as_slice().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_table_sums_to_zero_and_states_its_length() {
        let body = [0xA5u8; 13];
        let table = build(*b"TEST", 3, &OemIds::vtpm(*b"TESTTEST"), &body);
        assert_eq!(table.len(), 36 + 13);
        assert_eq!(&table[0..4], b"TEST");
        assert_eq!(u32::from_le_bytes(table[4..8].try_into().unwrap()), 49);
        assert_eq!(table[8], 3);
        assert_eq!(&table[10..16], b"VTPM  ");
        assert_eq!(&table[16..24], b"TESTTEST");
        assert_eq!(&table[28..32], b"VTPM");
        assert_eq!(u32::from_le_bytes(table[32..36].try_into().unwrap()), 1);
        assert_eq!(table.iter().fold(0u8, |sum, b| sum.wrapping_add(*b)), 0);
    }
}
