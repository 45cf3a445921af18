//! TPM 2.0 command codes (TPM_CC) used by vtpm.

/// TPM2_HierarchyChangeAuth.
pub const HIERARCHY_CHANGE_AUTH: u32 = 0x129;
/// TPM2_CreatePrimary.
pub const CREATE_PRIMARY: u32 = 0x131;
/// TPM2_SelfTest.
pub const SELF_TEST: u32 = 0x143;
/// TPM2_Startup.
pub const STARTUP: u32 = 0x144;
/// TPM2_Shutdown.
pub const SHUTDOWN: u32 = 0x145;
/// TPM2_PCR_Reset.
pub const PCR_RESET: u32 = 0x13D;
/// TPM2_Create.
pub const CREATE: u32 = 0x153;
/// TPM2_Load.
pub const LOAD: u32 = 0x157;
/// TPM2_SequenceUpdate.
pub const SEQUENCE_UPDATE: u32 = 0x15C;
/// TPM2_Sign.
pub const SIGN: u32 = 0x15D;
/// TPM2_ContextLoad.
pub const CONTEXT_LOAD: u32 = 0x161;
/// TPM2_ContextSave.
pub const CONTEXT_SAVE: u32 = 0x162;
/// TPM2_FlushContext.
pub const FLUSH_CONTEXT: u32 = 0x165;
/// TPM2_LoadExternal.
pub const LOAD_EXTERNAL: u32 = 0x167;
/// TPM2_ReadPublic.
pub const READ_PUBLIC: u32 = 0x173;
/// TPM2_VerifySignature.
pub const VERIFY_SIGNATURE: u32 = 0x177;
/// TPM2_GetCapability.
pub const GET_CAPABILITY: u32 = 0x17A;
/// TPM2_GetRandom.
pub const GET_RANDOM: u32 = 0x17B;
/// TPM2_StirRandom.
pub const STIR_RANDOM: u32 = 0x146;
/// TPM2_PCR_Read.
pub const PCR_READ: u32 = 0x17E;
/// TPM2_ReadClock.
pub const READ_CLOCK: u32 = 0x181;
/// TPM2_PCR_Extend.
pub const PCR_EXTEND: u32 = 0x182;
/// TPM2_TestParms.
pub const TEST_PARMS: u32 = 0x18A;
/// TPM2_VerifySequenceComplete (v1.85, unverified).
pub const VERIFY_SEQUENCE_COMPLETE: u32 = 0x1A3;
/// TPM2_SignSequenceComplete (v1.85, unverified).
pub const SIGN_SEQUENCE_COMPLETE: u32 = 0x1A4;
/// TPM2_VerifyDigestSignature (v1.85, unverified).
pub const VERIFY_DIGEST_SIGNATURE: u32 = 0x1A5;
/// TPM2_SignDigest (v1.85, unverified).
pub const SIGN_DIGEST: u32 = 0x1A6;
/// TPM2_Encapsulate (v1.85, unverified).
pub const ENCAPSULATE: u32 = 0x1A7;
/// TPM2_Decapsulate (v1.85, unverified).
pub const DECAPSULATE: u32 = 0x1A8;
/// TPM2_VerifySequenceStart (v1.85, unverified).
pub const VERIFY_SEQUENCE_START: u32 = 0x1A9;
/// TPM2_SignSequenceStart (v1.85, unverified).
pub const SIGN_SEQUENCE_START: u32 = 0x1AA;

/// A short human name for a command code, for reports and logs.
pub fn name(code: u32) -> &'static str {
    match code {
        HIERARCHY_CHANGE_AUTH => "HierarchyChangeAuth",
        CREATE_PRIMARY => "CreatePrimary",
        SELF_TEST => "SelfTest",
        STARTUP => "Startup",
        SHUTDOWN => "Shutdown",
        PCR_RESET => "PCR_Reset",
        CREATE => "Create",
        LOAD => "Load",
        SEQUENCE_UPDATE => "SequenceUpdate",
        SIGN => "Sign",
        CONTEXT_LOAD => "ContextLoad",
        CONTEXT_SAVE => "ContextSave",
        FLUSH_CONTEXT => "FlushContext",
        LOAD_EXTERNAL => "LoadExternal",
        READ_PUBLIC => "ReadPublic",
        VERIFY_SIGNATURE => "VerifySignature",
        GET_CAPABILITY => "GetCapability",
        GET_RANDOM => "GetRandom",
        STIR_RANDOM => "StirRandom",
        PCR_READ => "PCR_Read",
        READ_CLOCK => "ReadClock",
        PCR_EXTEND => "PCR_Extend",
        TEST_PARMS => "TestParms",
        VERIFY_SEQUENCE_COMPLETE => "VerifySequenceComplete",
        SIGN_SEQUENCE_COMPLETE => "SignSequenceComplete",
        VERIFY_DIGEST_SIGNATURE => "VerifyDigestSignature",
        SIGN_DIGEST => "SignDigest",
        ENCAPSULATE => "Encapsulate",
        DECAPSULATE => "Decapsulate",
        VERIFY_SEQUENCE_START => "VerifySequenceStart",
        SIGN_SEQUENCE_START => "SignSequenceStart",
        _ => "unknown",
    }
}
