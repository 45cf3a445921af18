//! Tags, handles, algorithm identifiers, parameter sets, object attributes,
//! capabilities and properties.

/// TPM_ST_NO_SESSIONS.
pub const TPM_ST_NO_SESSIONS: u16 = 0x8001;
/// TPM_ST_SESSIONS.
pub const TPM_ST_SESSIONS: u16 = 0x8002;

/// TPM_SU_CLEAR: Startup/Shutdown type "clear".
pub const TPM_SU_CLEAR: u16 = 0;
/// TPM_SU_STATE: Startup/Shutdown type "state".
pub const TPM_SU_STATE: u16 = 1;

/// TPM_RS_PW: the password authorization session handle.
pub const TPM_RS_PW: u32 = 0x4000_0009;
/// TPM_RH_OWNER.
pub const TPM_RH_OWNER: u32 = 0x4000_0001;
/// TPM_RH_NULL.
pub const TPM_RH_NULL: u32 = 0x4000_0007;
/// TPM_RH_ENDORSEMENT.
pub const TPM_RH_ENDORSEMENT: u32 = 0x4000_000B;
/// TPM_RH_PLATFORM.
pub const TPM_RH_PLATFORM: u32 = 0x4000_000C;

/// TPM_ALG_RSA.
pub const TPM_ALG_RSA: u16 = 0x0001;
/// TPM_ALG_SHA1.
pub const TPM_ALG_SHA1: u16 = 0x0004;
/// TPM_ALG_HMAC.
pub const TPM_ALG_HMAC: u16 = 0x0005;
/// TPM_ALG_AES.
pub const TPM_ALG_AES: u16 = 0x0006;
/// TPM_ALG_KEYEDHASH.
pub const TPM_ALG_KEYEDHASH: u16 = 0x0008;
/// TPM_ALG_SHA256.
pub const TPM_ALG_SHA256: u16 = 0x000B;
/// TPM_ALG_SHA384.
pub const TPM_ALG_SHA384: u16 = 0x000C;
/// TPM_ALG_SHA512.
pub const TPM_ALG_SHA512: u16 = 0x000D;
/// TPM_ALG_NULL.
pub const TPM_ALG_NULL: u16 = 0x0010;
/// TPM_ALG_RSASSA.
pub const TPM_ALG_RSASSA: u16 = 0x0014;
/// TPM_ALG_ECC.
pub const TPM_ALG_ECC: u16 = 0x0023;
/// TPM_ALG_SYMCIPHER.
pub const TPM_ALG_SYMCIPHER: u16 = 0x0025;
/// TPM_ALG_CFB.
pub const TPM_ALG_CFB: u16 = 0x0043;
/// TPM_ALG_MLKEM (TPM 2.0 library v1.85; see spec-notes §5, unverified).
pub const TPM_ALG_MLKEM: u16 = 0x00A0;
/// TPM_ALG_MLDSA (v1.85, unverified).
pub const TPM_ALG_MLDSA: u16 = 0x00A1;
/// TPM_ALG_HASH_MLDSA (v1.85, unverified).
pub const TPM_ALG_HASH_MLDSA: u16 = 0x00A2;

/// TPM_CAP_ALGS.
pub const TPM_CAP_ALGS: u32 = 0;
/// TPM_CAP_HANDLES.
pub const TPM_CAP_HANDLES: u32 = 1;
/// TPM_CAP_COMMANDS.
pub const TPM_CAP_COMMANDS: u32 = 2;
/// TPM_CAP_PCRS.
pub const TPM_CAP_PCRS: u32 = 5;
/// TPM_CAP_TPM_PROPERTIES.
pub const TPM_CAP_TPM_PROPERTIES: u32 = 6;

/// PT_FIXED base (TPM_PT_FAMILY_INDICATOR).
pub const TPM_PT_FAMILY_INDICATOR: u32 = 0x100;
/// TPM_PT_MANUFACTURER.
pub const TPM_PT_MANUFACTURER: u32 = 0x105;
/// TPM_PT_PCR_COUNT.
pub const TPM_PT_PCR_COUNT: u32 = 0x112;
/// TPM_PT_MAX_COMMAND_SIZE.
pub const TPM_PT_MAX_COMMAND_SIZE: u32 = 0x11E;
/// TPM_PT_MAX_RESPONSE_SIZE.
pub const TPM_PT_MAX_RESPONSE_SIZE: u32 = 0x11F;

/// TPM_MLDSA_44 (TPMI_MLDSA_PARMS).
pub const TPM_MLDSA_44: u16 = 1;
/// TPM_MLDSA_65.
pub const TPM_MLDSA_65: u16 = 2;
/// TPM_MLDSA_87.
pub const TPM_MLDSA_87: u16 = 3;
/// TPM_MLKEM_512 (TPMI_MLKEM_PARMS).
pub const TPM_MLKEM_512: u16 = 1;
/// TPM_MLKEM_768.
pub const TPM_MLKEM_768: u16 = 2;
/// TPM_MLKEM_1024.
pub const TPM_MLKEM_1024: u16 = 3;

/// TPM_ALG_SHAKE256, named by a `TPM_ST_DIGEST_VERIFIED` ticket whose digest
/// was an ML-DSA external μ (an assumption of this project, see vtpm-sim's README).
pub const TPM_ALG_SHAKE256: u16 = 0x002B;

/// TPM_ST_CREATION: tag of a creation ticket.
pub const TPM_ST_CREATION: u16 = 0x8021;
/// TPM_ST_VERIFIED: tag of a TPM2_VerifySignature ticket.
pub const TPM_ST_VERIFIED: u16 = 0x8022;
/// TPM_ST_HASHCHECK: tag of a hash-check ticket.
pub const TPM_ST_HASHCHECK: u16 = 0x8024;
/// TPM_ST_MESSAGE_VERIFIED (v1.85): tag of a TPM2_VerifySequenceComplete ticket.
pub const TPM_ST_MESSAGE_VERIFIED: u16 = 0x8026;
/// TPM_ST_DIGEST_VERIFIED (v1.85): tag of a TPM2_VerifyDigestSignature ticket.
pub const TPM_ST_DIGEST_VERIFIED: u16 = 0x8027;

/// TPM_RH_LOCKOUT.
pub const TPM_RH_LOCKOUT: u32 = 0x4000_000A;
/// TPM_PT_ML_PARAMETER_SETS (v1.85, PT_FIXED + 49): a TPMA_ML_PARAMETER_SET.
pub const TPM_PT_ML_PARAMETER_SETS: u32 = 0x131;

/// TPMA_OBJECT fixedTPM.
pub const TPMA_OBJECT_FIXED_TPM: u32 = 1 << 1;
/// TPMA_OBJECT stClear.
pub const TPMA_OBJECT_ST_CLEAR: u32 = 1 << 2;
/// TPMA_OBJECT fixedParent.
pub const TPMA_OBJECT_FIXED_PARENT: u32 = 1 << 4;
/// TPMA_OBJECT sensitiveDataOrigin.
pub const TPMA_OBJECT_SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
/// TPMA_OBJECT userWithAuth.
pub const TPMA_OBJECT_USER_WITH_AUTH: u32 = 1 << 6;
/// TPMA_OBJECT adminWithPolicy.
pub const TPMA_OBJECT_ADMIN_WITH_POLICY: u32 = 1 << 7;
/// TPMA_OBJECT noDA.
pub const TPMA_OBJECT_NO_DA: u32 = 1 << 10;
/// TPMA_OBJECT encryptedDuplication.
pub const TPMA_OBJECT_ENCRYPTED_DUPLICATION: u32 = 1 << 11;
/// TPMA_OBJECT restricted.
pub const TPMA_OBJECT_RESTRICTED: u32 = 1 << 16;
/// TPMA_OBJECT decrypt.
pub const TPMA_OBJECT_DECRYPT: u32 = 1 << 17;
/// TPMA_OBJECT sign.
pub const TPMA_OBJECT_SIGN: u32 = 1 << 18;
/// TPMA_OBJECT x509sign.
pub const TPMA_OBJECT_X509_SIGN: u32 = 1 << 19;
