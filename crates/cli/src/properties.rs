//! Names of TPM properties (TPM_PT_*, TPM 2.0 Part 2, 6.13), for `vtpm probe`.

/// The fixed properties, from TPM_PT_FAMILY_INDICATOR (0x100) on; the
/// index is the offset from 0x100 ("" where the specification leaves a gap).
const FIXED: [&str; 49] = [
    "TPM_PT_FAMILY_INDICATOR",
    "TPM_PT_LEVEL",
    "TPM_PT_REVISION",
    "TPM_PT_DAY_OF_YEAR",
    "TPM_PT_YEAR",
    "TPM_PT_MANUFACTURER",
    "TPM_PT_VENDOR_STRING_1",
    "TPM_PT_VENDOR_STRING_2",
    "TPM_PT_VENDOR_STRING_3",
    "TPM_PT_VENDOR_STRING_4",
    "TPM_PT_VENDOR_TPM_TYPE",
    "TPM_PT_FIRMWARE_VERSION_1",
    "TPM_PT_FIRMWARE_VERSION_2",
    "TPM_PT_INPUT_BUFFER",
    "TPM_PT_HR_TRANSIENT_MIN",
    "TPM_PT_HR_PERSISTENT_MIN",
    "TPM_PT_HR_LOADED_MIN",
    "TPM_PT_ACTIVE_SESSIONS_MAX",
    "TPM_PT_PCR_COUNT",
    "TPM_PT_PCR_SELECT_MIN",
    "TPM_PT_CONTEXT_GAP_MAX",
    "",
    "TPM_PT_NV_COUNTERS_MAX",
    "TPM_PT_NV_INDEX_MAX",
    "TPM_PT_MEMORY",
    "TPM_PT_CLOCK_UPDATE",
    "TPM_PT_CONTEXT_HASH",
    "TPM_PT_CONTEXT_SYM",
    "TPM_PT_CONTEXT_SYM_SIZE",
    "TPM_PT_ORDERLY_COUNT",
    "TPM_PT_MAX_COMMAND_SIZE",
    "TPM_PT_MAX_RESPONSE_SIZE",
    "TPM_PT_MAX_DIGEST",
    "TPM_PT_MAX_OBJECT_CONTEXT",
    "TPM_PT_MAX_SESSION_CONTEXT",
    "TPM_PT_PS_FAMILY_INDICATOR",
    "TPM_PT_PS_LEVEL",
    "TPM_PT_PS_REVISION",
    "TPM_PT_PS_DAY_OF_YEAR",
    "TPM_PT_PS_YEAR",
    "TPM_PT_SPLIT_MAX",
    "TPM_PT_TOTAL_COMMANDS",
    "TPM_PT_LIBRARY_COMMANDS",
    "TPM_PT_VENDOR_COMMANDS",
    "TPM_PT_NV_BUFFER_MAX",
    "TPM_PT_MODES",
    "TPM_PT_MAX_CAP_BUFFER",
    "TPM_PT_FIRMWARE_SVN",
    "TPM_PT_FIRMWARE_MAX_SVN",
];

/// The variable properties, from TPM_PT_PERMANENT (0x200) on.
const VARIABLE: [&str; 21] = [
    "TPM_PT_PERMANENT",
    "TPM_PT_STARTUP_CLEAR",
    "TPM_PT_HR_NV_INDEX",
    "TPM_PT_HR_LOADED",
    "TPM_PT_HR_LOADED_AVAIL",
    "TPM_PT_HR_ACTIVE",
    "TPM_PT_HR_ACTIVE_AVAIL",
    "TPM_PT_HR_TRANSIENT_AVAIL",
    "TPM_PT_HR_PERSISTENT",
    "TPM_PT_HR_PERSISTENT_AVAIL",
    "TPM_PT_NV_COUNTERS",
    "TPM_PT_NV_COUNTERS_AVAIL",
    "TPM_PT_ALGORITHM_SET",
    "TPM_PT_LOADED_CURVES",
    "TPM_PT_LOCKOUT_COUNTER",
    "TPM_PT_MAX_AUTH_FAIL",
    "TPM_PT_LOCKOUT_INTERVAL",
    "TPM_PT_LOCKOUT_RECOVERY",
    "TPM_PT_NV_WRITE_RECOVERY",
    "TPM_PT_AUDIT_COUNTER_0",
    "TPM_PT_AUDIT_COUNTER_1",
];

/// The TPM_PT_* name of `property`, if the specification names it.
pub fn name(property: u32) -> Option<&'static str> {
    let (table, base): (&[&str], u32) = match property {
        0x100..=0x1FF => (&FIXED, 0x100),
        0x200..=0x2FF => (&VARIABLE, 0x200),
        _ => return None,
    };
    table
        .get((property - base) as usize)
        .copied()
        .filter(|n| !n.is_empty())
}

/// The name of `property`, or its number in hex when it has none.
pub fn label(property: u32) -> String {
    name(property).map_or_else(|| format!("{property:#x}"), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vtpm_wire::consts::*;

    #[test]
    fn names_agree_with_the_wire_constants() {
        assert_eq!(
            name(TPM_PT_FAMILY_INDICATOR),
            Some("TPM_PT_FAMILY_INDICATOR")
        );
        assert_eq!(name(TPM_PT_MANUFACTURER), Some("TPM_PT_MANUFACTURER"));
        assert_eq!(name(TPM_PT_PCR_COUNT), Some("TPM_PT_PCR_COUNT"));
        assert_eq!(
            name(TPM_PT_MAX_COMMAND_SIZE),
            Some("TPM_PT_MAX_COMMAND_SIZE")
        );
        assert_eq!(
            name(TPM_PT_MAX_RESPONSE_SIZE),
            Some("TPM_PT_MAX_RESPONSE_SIZE")
        );
        assert_eq!(name(0x12E), Some("TPM_PT_MAX_CAP_BUFFER"));
        assert_eq!(name(0x201), Some("TPM_PT_STARTUP_CLEAR"));
    }

    #[test]
    fn unnamed_properties_keep_their_number() {
        assert_eq!(name(0x115), None);
        assert_eq!(label(0x115), "0x115");
        assert_eq!(label(0x1FF), "0x1ff");
        assert_eq!(label(0x7), "0x7");
    }
}
