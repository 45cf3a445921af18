//! Builders and parsers for the post-quantum commands of TPM 2.0 library
//! v1.85 (ML-DSA, HashML-DSA, ML-KEM) and the object commands around them.
//!
//! The v1.85 structures are not final (see spec-notes §5); the layouts here
//! follow the v1.85 release candidate as documented in `vtpm-sim`'s README,
//! which lists every assumption. In short:
//!
//! - `TPMS_MLDSA_PARMS = { parameterSet u16, allowExternalMu u8 }`,
//!   `TPMS_HASH_MLDSA_PARMS = { parameterSet u16, hashAlg u16 }`,
//!   `TPMS_MLKEM_PARMS = { symmetric TPMT_SYM_DEF_OBJECT+, parameterSet u16 }`.
//! - `TPMU_PUBLIC_ID` of all three is a TPM2B holding the FIPS-encoded
//!   public key.
//! - `TPMT_SIGNATURE` is `{ TPM_ALG_MLDSA, TPM2B sig }` or
//!   `{ TPM_ALG_HASH_MLDSA, hash u16, TPM2B sig }`.
//! - TPM2_SignDigest: `@key | context TPM2B | digest TPM2B | TPMT_TK_HASHCHECK`;
//!   TPM2_VerifyDigestSignature: `key | context TPM2B | digest TPM2B | TPMT_SIGNATURE`
//!   answering a `TPM_ST_DIGEST_VERIFIED` ticket with a hash-algorithm field;
//!   TPM2_Encapsulate: `key` answering `sharedSecret TPM2B | ciphertext TPM2B`;
//!   TPM2_Decapsulate: `@key | ciphertext TPM2B` answering `sharedSecret TPM2B`.
//!
//! Every parser is bounds-checked and returns [`WireError`], never panics.
//!
//! ```
//! use vtpm_wire::pqc::{self, MlDsaParameterSet, PublicArea};
//! use vtpm_wire::consts::TPM_RH_OWNER;
//!
//! let template = PublicArea::mldsa(MlDsaParameterSet::MlDsa87).with_external_mu();
//! let command = pqc::create_primary(TPM_RH_OWNER, b"", &template, b"key auth");
//! assert_eq!(&command[6..10], &0x131u32.to_be_bytes());
//! // A TPM answers with the handle, the public area (whose unique field is
//! // the 2592-byte public key), creation data and the name:
//! // let out = pqc::parse_create_primary(&response)?;
//! // let public_key = out.public.public_key();
//! ```

use crate::consts::{
    TPM_ALG_AES, TPM_ALG_CFB, TPM_ALG_HASH_MLDSA, TPM_ALG_MLDSA, TPM_ALG_MLKEM, TPM_ALG_NULL,
    TPM_ALG_SHA256, TPM_ALG_SYMCIPHER, TPM_RH_NULL, TPM_ST_SESSIONS,
};
use crate::{cc, CommandBuilder, Reader, ResponseCode, WireError};

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
/// was an ML-DSA external μ (an assumption of this project, see the module docs).
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
/// TPM_CC_HierarchyChangeAuth.
pub const TPM_CC_HIERARCHY_CHANGE_AUTH: u32 = 0x129;
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

/// TPM_RC_PARMS (v1.85): the parameter set is not supported.
pub const TPM_RC_PARMS: ResponseCode = ResponseCode(0x0AA);
/// TPM_RC_EXT_MU (v1.85): the key does not allow an external μ.
pub const TPM_RC_EXT_MU: ResponseCode = ResponseCode(0x0AB);
/// TPM_RC_ONE_SHOT_SIGNATURE (v1.85): the whole message must arrive in one buffer.
pub const TPM_RC_ONE_SHOT_SIGNATURE: ResponseCode = ResponseCode(0x0AC);
/// TPM_RC_SIGN_CONTEXT_KEY (v1.85): a sequence finished with another key.
pub const TPM_RC_SIGN_CONTEXT_KEY: ResponseCode = ResponseCode(0x0AD);

/// Largest TPM2B_DIGEST (SHA-512).
const MAX_DIGEST: usize = 64;

/// An ML-DSA parameter set (FIPS 204).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MlDsaParameterSet {
    /// ML-DSA-44.
    MlDsa44,
    /// ML-DSA-65.
    MlDsa65,
    /// ML-DSA-87.
    MlDsa87,
}

impl MlDsaParameterSet {
    /// All three, smallest first.
    pub const ALL: [Self; 3] = [Self::MlDsa44, Self::MlDsa65, Self::MlDsa87];

    /// The TPMI_MLDSA_PARMS value.
    pub fn id(self) -> u16 {
        match self {
            Self::MlDsa44 => TPM_MLDSA_44,
            Self::MlDsa65 => TPM_MLDSA_65,
            Self::MlDsa87 => TPM_MLDSA_87,
        }
    }

    /// The set with TPMI_MLDSA_PARMS value `id`.
    pub fn from_id(id: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.id() == id)
    }

    /// Size of an encoded public key.
    pub fn public_key_size(self) -> usize {
        match self {
            Self::MlDsa44 => 1312,
            Self::MlDsa65 => 1952,
            Self::MlDsa87 => 2592,
        }
    }

    /// Size of a signature.
    pub fn signature_size(self) -> usize {
        match self {
            Self::MlDsa44 => 2420,
            Self::MlDsa65 => 3309,
            Self::MlDsa87 => 4627,
        }
    }
}

/// An ML-KEM parameter set (FIPS 203).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MlKemParameterSet {
    /// ML-KEM-512.
    MlKem512,
    /// ML-KEM-768.
    MlKem768,
    /// ML-KEM-1024.
    MlKem1024,
}

impl MlKemParameterSet {
    /// All three, smallest first.
    pub const ALL: [Self; 3] = [Self::MlKem512, Self::MlKem768, Self::MlKem1024];

    /// The TPMI_MLKEM_PARMS value.
    pub fn id(self) -> u16 {
        match self {
            Self::MlKem512 => TPM_MLKEM_512,
            Self::MlKem768 => TPM_MLKEM_768,
            Self::MlKem1024 => TPM_MLKEM_1024,
        }
    }

    /// The set with TPMI_MLKEM_PARMS value `id`.
    pub fn from_id(id: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.id() == id)
    }

    /// Size of an encapsulation (public) key.
    pub fn public_key_size(self) -> usize {
        match self {
            Self::MlKem512 => 800,
            Self::MlKem768 => 1184,
            Self::MlKem1024 => 1568,
        }
    }

    /// Size of a ciphertext.
    pub fn ciphertext_size(self) -> usize {
        match self {
            Self::MlKem512 => 768,
            Self::MlKem768 => 1088,
            Self::MlKem1024 => 1568,
        }
    }
}

/// A TPMT_SYM_DEF_OBJECT that is not TPM_ALG_NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymmetricDefinition {
    /// The block cipher (TPM_ALG_AES).
    pub algorithm: u16,
    /// Key size in bits.
    pub key_bits: u16,
    /// Mode (TPM_ALG_CFB for parents).
    pub mode: u16,
}

impl SymmetricDefinition {
    /// AES-128 in CFB mode, the usual parent protection.
    pub const AES_128_CFB: Self = Self {
        algorithm: TPM_ALG_AES,
        key_bits: 128,
        mode: TPM_ALG_CFB,
    };
}

/// The type-specific parameters of a public area (TPMU_PUBLIC_PARMS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyParameters {
    /// TPM_ALG_MLDSA: TPMS_MLDSA_PARMS.
    MlDsa {
        /// The parameter set.
        parameter_set: MlDsaParameterSet,
        /// allowExternalMu: TPM2_SignDigest takes a 64-byte μ.
        allow_external_mu: bool,
    },
    /// TPM_ALG_HASH_MLDSA: TPMS_HASH_MLDSA_PARMS.
    HashMlDsa {
        /// The parameter set.
        parameter_set: MlDsaParameterSet,
        /// The pre-hash (TPM_ALG_SHA256, ...).
        hash_alg: u16,
    },
    /// TPM_ALG_MLKEM: TPMS_MLKEM_PARMS.
    MlKem {
        /// Protection of children (restricted decryption keys), or `None` (TPM_ALG_NULL).
        symmetric: Option<SymmetricDefinition>,
        /// The parameter set.
        parameter_set: MlKemParameterSet,
    },
    /// TPM_ALG_SYMCIPHER: TPMS_SYMCIPHER_PARMS.
    SymCipher {
        /// The cipher of the key.
        symmetric: SymmetricDefinition,
    },
}

impl KeyParameters {
    /// The TPMI_ALG_PUBLIC this parameter block belongs to.
    pub fn object_type(&self) -> u16 {
        match self {
            Self::MlDsa { .. } => TPM_ALG_MLDSA,
            Self::HashMlDsa { .. } => TPM_ALG_HASH_MLDSA,
            Self::MlKem { .. } => TPM_ALG_MLKEM,
            Self::SymCipher { .. } => TPM_ALG_SYMCIPHER,
        }
    }
}

/// A TPMT_PUBLIC: a key template or a key's public area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicArea {
    /// nameAlg.
    pub name_alg: u16,
    /// objectAttributes (TPMA_OBJECT_* bits).
    pub attributes: u32,
    /// authPolicy (empty when the key has no policy).
    pub auth_policy: Vec<u8>,
    /// The type and its parameters.
    pub parameters: KeyParameters,
    /// unique: the public key of an asymmetric key; empty in templates.
    pub unique: Vec<u8>,
}

/// Attributes every template here starts from.
const BASE_ATTRIBUTES: u32 = TPMA_OBJECT_FIXED_TPM
    | TPMA_OBJECT_FIXED_PARENT
    | TPMA_OBJECT_SENSITIVE_DATA_ORIGIN
    | TPMA_OBJECT_USER_WITH_AUTH;

impl PublicArea {
    fn template(attributes: u32, parameters: KeyParameters) -> Self {
        Self {
            name_alg: TPM_ALG_SHA256,
            attributes,
            auth_policy: Vec::new(),
            parameters,
            unique: Vec::new(),
        }
    }

    /// An unrestricted ML-DSA signing key (no external μ).
    pub fn mldsa(parameter_set: MlDsaParameterSet) -> Self {
        Self::template(
            BASE_ATTRIBUTES | TPMA_OBJECT_SIGN,
            KeyParameters::MlDsa {
                parameter_set,
                allow_external_mu: false,
            },
        )
    }

    /// An unrestricted HashML-DSA signing key with pre-hash `hash_alg`.
    pub fn hash_mldsa(parameter_set: MlDsaParameterSet, hash_alg: u16) -> Self {
        Self::template(
            BASE_ATTRIBUTES | TPMA_OBJECT_SIGN,
            KeyParameters::HashMlDsa {
                parameter_set,
                hash_alg,
            },
        )
    }

    /// An unrestricted ML-KEM key for TPM2_Encapsulate / TPM2_Decapsulate.
    pub fn mlkem(parameter_set: MlKemParameterSet) -> Self {
        Self::template(
            BASE_ATTRIBUTES | TPMA_OBJECT_DECRYPT,
            KeyParameters::MlKem {
                symmetric: None,
                parameter_set,
            },
        )
    }

    /// A storage parent: a restricted AES-128-CFB SYMCIPHER decryption key,
    /// the parent TPM2_Create and TPM2_Load need.
    pub fn storage_parent() -> Self {
        Self::template(
            BASE_ATTRIBUTES | TPMA_OBJECT_NO_DA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
            KeyParameters::SymCipher {
                symmetric: SymmetricDefinition::AES_128_CFB,
            },
        )
    }

    /// A storage parent that is an ML-KEM restricted decryption key whose
    /// children are protected with AES-128-CFB.
    pub fn mlkem_storage_parent(parameter_set: MlKemParameterSet) -> Self {
        Self::template(
            BASE_ATTRIBUTES | TPMA_OBJECT_NO_DA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
            KeyParameters::MlKem {
                symmetric: Some(SymmetricDefinition::AES_128_CFB),
                parameter_set,
            },
        )
    }

    /// The same template with allowExternalMu set (ML-DSA only), so that
    /// TPM2_SignDigest and TPM2_VerifyDigestSignature accept a 64-byte μ.
    pub fn with_external_mu(mut self) -> Self {
        if let KeyParameters::MlDsa {
            allow_external_mu, ..
        } = &mut self.parameters
        {
            *allow_external_mu = true;
        }
        self
    }

    /// The same template with `attributes` replaced.
    pub fn with_attributes(mut self, attributes: u32) -> Self {
        self.attributes = attributes;
        self
    }

    /// The same template with nameAlg `name_alg`.
    pub fn with_name_alg(mut self, name_alg: u16) -> Self {
        self.name_alg = name_alg;
        self
    }

    /// The same template with `unique` (a caller-chosen value that makes a
    /// primary key different, or a public key for TPM2_LoadExternal).
    pub fn with_unique(mut self, unique: &[u8]) -> Self {
        self.unique = unique.to_vec();
        self
    }

    /// The type (TPM_ALG_MLDSA, ...).
    pub fn object_type(&self) -> u16 {
        self.parameters.object_type()
    }

    /// The public key bytes (the unique field).
    pub fn public_key(&self) -> &[u8] {
        &self.unique
    }

    /// The marshalled TPMT_PUBLIC.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = CommandBuilder::new(0, 0)
            .u16(self.object_type())
            .u16(self.name_alg)
            .u32(self.attributes)
            .tpm2b(&self.auth_policy);
        b = match &self.parameters {
            KeyParameters::MlDsa {
                parameter_set,
                allow_external_mu,
            } => b.u16(parameter_set.id()).u8(u8::from(*allow_external_mu)),
            KeyParameters::HashMlDsa {
                parameter_set,
                hash_alg,
            } => b.u16(parameter_set.id()).u16(*hash_alg),
            KeyParameters::MlKem {
                symmetric,
                parameter_set,
            } => sym_def(b, *symmetric).u16(parameter_set.id()),
            KeyParameters::SymCipher { symmetric } => sym_def(b, Some(*symmetric)),
        };
        let mut bytes = b.tpm2b(&self.unique).finish();
        bytes.drain(..crate::HEADER_SIZE);
        bytes
    }

    /// Parses exactly one TPMT_PUBLIC.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let out = Self::read(&mut r)?;
        r.finish()?;
        Ok(out)
    }

    /// Reads a TPMT_PUBLIC from `r`.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let object_type = r.u16()?;
        let name_alg = r.u16()?;
        let attributes = r.u32()?;
        let auth_policy = r.tpm2b()?.to_vec();
        let parameters = match object_type {
            TPM_ALG_MLDSA => {
                let parameter_set = read_mldsa_set(r)?;
                let allow = r.u8()?;
                if allow > 1 {
                    return Err(bad("allowExternalMu", allow));
                }
                KeyParameters::MlDsa {
                    parameter_set,
                    allow_external_mu: allow == 1,
                }
            }
            TPM_ALG_HASH_MLDSA => KeyParameters::HashMlDsa {
                parameter_set: read_mldsa_set(r)?,
                hash_alg: r.u16()?,
            },
            TPM_ALG_MLKEM => {
                let symmetric = read_sym_def(r)?;
                let id = r.u16()?;
                KeyParameters::MlKem {
                    symmetric,
                    parameter_set: MlKemParameterSet::from_id(id)
                        .ok_or_else(|| bad("ML-KEM parameterSet", id))?,
                }
            }
            TPM_ALG_SYMCIPHER => KeyParameters::SymCipher {
                symmetric: read_sym_def(r)?.ok_or_else(|| bad("symmetric", TPM_ALG_NULL))?,
            },
            other => return Err(bad("type", other)),
        };
        let unique = r.tpm2b()?.to_vec();
        Ok(Self {
            name_alg,
            attributes,
            auth_policy,
            parameters,
            unique,
        })
    }
}

fn bad(field: &'static str, value: impl Into<u64>) -> WireError {
    WireError::BadValue {
        field,
        value: value.into(),
    }
}

fn sym_def(b: CommandBuilder, sym: Option<SymmetricDefinition>) -> CommandBuilder {
    match sym {
        Some(s) => b.u16(s.algorithm).u16(s.key_bits).u16(s.mode),
        None => b.u16(TPM_ALG_NULL),
    }
}

fn read_sym_def(r: &mut Reader<'_>) -> Result<Option<SymmetricDefinition>, WireError> {
    let algorithm = r.u16()?;
    if algorithm == TPM_ALG_NULL {
        return Ok(None);
    }
    Ok(Some(SymmetricDefinition {
        algorithm,
        key_bits: r.u16()?,
        mode: r.u16()?,
    }))
}

fn read_mldsa_set(r: &mut Reader<'_>) -> Result<MlDsaParameterSet, WireError> {
    let id = r.u16()?;
    MlDsaParameterSet::from_id(id).ok_or_else(|| bad("ML-DSA parameterSet", id))
}

/// A TPMT_SIGNATURE made with ML-DSA or HashML-DSA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// `TPM_ALG_MLDSA`: a TPM2B_SIGNATURE_MLDSA.
    MlDsa(Vec<u8>),
    /// `TPM_ALG_HASH_MLDSA`: TPMS_SIGNATURE_HASH_MLDSA.
    HashMlDsa {
        /// The pre-hash algorithm.
        hash_alg: u16,
        /// The FIPS 204 signature.
        signature: Vec<u8>,
    },
}

impl Signature {
    /// The FIPS 204 signature bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::MlDsa(s) => s,
            Self::HashMlDsa { signature, .. } => signature,
        }
    }

    /// The sigAlg selector.
    pub fn algorithm(&self) -> u16 {
        match self {
            Self::MlDsa(_) => TPM_ALG_MLDSA,
            Self::HashMlDsa { .. } => TPM_ALG_HASH_MLDSA,
        }
    }

    /// The marshalled TPMT_SIGNATURE.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes().len() + 6);
        out.extend_from_slice(&self.algorithm().to_be_bytes());
        if let Self::HashMlDsa { hash_alg, .. } = self {
            out.extend_from_slice(&hash_alg.to_be_bytes());
        }
        let sig = self.bytes();
        let n = sig.len().min(usize::from(u16::MAX));
        out.extend_from_slice(&(n as u16).to_be_bytes());
        out.extend_from_slice(&sig[..n]);
        out
    }

    /// Reads a TPMT_SIGNATURE; other signature algorithms are
    /// [`WireError::BadValue`].
    pub fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        match r.u16()? {
            TPM_ALG_MLDSA => Ok(Self::MlDsa(r.tpm2b()?.to_vec())),
            TPM_ALG_HASH_MLDSA => Ok(Self::HashMlDsa {
                hash_alg: r.u16()?,
                signature: r.tpm2b()?.to_vec(),
            }),
            other => Err(bad("sigAlg", other)),
        }
    }
}

/// A TPMT_TK_VERIFIED (with the v1.85 metadata field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTicket {
    /// TPM_ST_VERIFIED or TPM_ST_DIGEST_VERIFIED.
    pub tag: u16,
    /// The hierarchy of the key that verified.
    pub hierarchy: u32,
    /// For TPM_ST_DIGEST_VERIFIED: the hash algorithm that made the digest.
    pub metadata: Option<u16>,
    /// The ticket HMAC (empty for a NULL ticket).
    pub hmac: Vec<u8>,
}

/// A creation or hash-check ticket: `tag | hierarchy | TPM2B_DIGEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The ticket tag.
    pub tag: u16,
    /// The hierarchy.
    pub hierarchy: u32,
    /// The ticket HMAC (empty for a NULL ticket).
    pub digest: Vec<u8>,
}

impl Ticket {
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            tag: r.u16()?,
            hierarchy: r.u32()?,
            digest: r.tpm2b()?.to_vec(),
        })
    }
}

// ---------------------------------------------------------------- builders

fn sensitive_create(b: CommandBuilder, user_auth: &[u8]) -> CommandBuilder {
    // TPM2B_SENSITIVE_CREATE { userAuth TPM2B_AUTH, data TPM2B (empty) }
    let inner = CommandBuilder::new(0, 0)
        .tpm2b(user_auth)
        .tpm2b(&[])
        .finish();
    b.tpm2b(&inner[crate::HEADER_SIZE..])
}

fn object_creation(
    code: u32,
    parent: u32,
    parent_auth: &[u8],
    template: &PublicArea,
    key_auth: &[u8],
) -> Vec<u8> {
    let b = CommandBuilder::with_sessions(code)
        .u32(parent)
        .password_session(parent_auth);
    sensitive_create(b, key_auth)
        .tpm2b(&template.to_bytes())
        .tpm2b(&[]) // outsideInfo
        .u32(0) // creationPCR: no banks
        .finish()
}

/// TPM2_CreatePrimary in `hierarchy` (TPM_RH_OWNER, ...; password
/// `hierarchy_auth`) from `template`, giving the key the password `key_auth`.
pub fn create_primary(
    hierarchy: u32,
    hierarchy_auth: &[u8],
    template: &PublicArea,
    key_auth: &[u8],
) -> Vec<u8> {
    object_creation(
        cc::CREATE_PRIMARY,
        hierarchy,
        hierarchy_auth,
        template,
        key_auth,
    )
}

/// TPM2_Create of a child of the storage parent `parent` from `template`.
pub fn create(parent: u32, parent_auth: &[u8], template: &PublicArea, key_auth: &[u8]) -> Vec<u8> {
    object_creation(cc::CREATE, parent, parent_auth, template, key_auth)
}

/// TPM2_Load of a child of `parent`: `private` is the TPM2B_PRIVATE content
/// and `public` the TPMT_PUBLIC bytes, both as TPM2_Create returned them.
pub fn load(parent: u32, parent_auth: &[u8], private: &[u8], public: &[u8]) -> Vec<u8> {
    CommandBuilder::with_sessions(cc::LOAD)
        .u32(parent)
        .password_session(parent_auth)
        .tpm2b(private)
        .tpm2b(public)
        .finish()
}

/// TPM2_LoadExternal of only a public area (TPMT_PUBLIC bytes) into `hierarchy`.
pub fn load_external_public(public: &[u8], hierarchy: u32) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::LOAD_EXTERNAL)
        .tpm2b(&[]) // inPrivate: absent
        .tpm2b(public)
        .u32(hierarchy)
        .finish()
}

/// TPM2_ReadPublic of `handle`.
pub fn read_public(handle: u32) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::READ_PUBLIC)
        .u32(handle)
        .finish()
}

/// TPM2_FlushContext of `handle`.
pub fn flush_context(handle: u32) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::FLUSH_CONTEXT)
        .u32(handle)
        .finish()
}

/// A NULL TPMT_TK_HASHCHECK: the caller vouches for the digest (enough for
/// unrestricted keys).
fn null_hashcheck(b: CommandBuilder) -> CommandBuilder {
    b.u16(TPM_ST_HASHCHECK).u32(TPM_RH_NULL).tpm2b(&[])
}

/// TPM2_Sign of `digest` with the key's own scheme (inScheme TPM_ALG_NULL)
/// and a NULL hash-check ticket. For a HashML-DSA key `digest` is PH(M); for
/// an ML-DSA key it is signed as the message itself.
pub fn sign(key: u32, key_auth: &[u8], digest: &[u8]) -> Vec<u8> {
    let b = CommandBuilder::with_sessions(cc::SIGN)
        .u32(key)
        .password_session(key_auth)
        .tpm2b(digest)
        .u16(TPM_ALG_NULL);
    null_hashcheck(b).finish()
}

/// TPM2_SignDigest (v1.85) with a NULL hash-check ticket. For an ML-DSA key
/// with allowExternalMu, `digest` is the 64-byte μ and `context` must be
/// empty; for a HashML-DSA key it is PH(M) and `context` the FIPS 204
/// context string (at most 255 bytes).
pub fn sign_digest(key: u32, key_auth: &[u8], context: &[u8], digest: &[u8]) -> Vec<u8> {
    let b = CommandBuilder::with_sessions(cc::SIGN_DIGEST)
        .u32(key)
        .password_session(key_auth)
        .tpm2b(context)
        .tpm2b(digest);
    null_hashcheck(b).finish()
}

/// TPM2_VerifySignature of `signature` over `digest`.
pub fn verify_signature(key: u32, digest: &[u8], signature: &Signature) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::VERIFY_SIGNATURE)
        .u32(key)
        .tpm2b(digest)
        .bytes(&signature.to_bytes())
        .finish()
}

/// TPM2_VerifyDigestSignature (v1.85) of `signature` over `digest` (μ or
/// PH(M), as for [`sign_digest`]) with `context`.
pub fn verify_digest_signature(
    key: u32,
    context: &[u8],
    digest: &[u8],
    signature: &Signature,
) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::VERIFY_DIGEST_SIGNATURE)
        .u32(key)
        .tpm2b(context)
        .tpm2b(digest)
        .bytes(&signature.to_bytes())
        .finish()
}

/// TPM2_Encapsulate (v1.85) to the ML-KEM key `key`.
pub fn encapsulate(key: u32) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::ENCAPSULATE)
        .u32(key)
        .finish()
}

/// TPM2_Decapsulate (v1.85) of `ciphertext` with the ML-KEM key `key`.
pub fn decapsulate(key: u32, key_auth: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    CommandBuilder::with_sessions(cc::DECAPSULATE)
        .u32(key)
        .password_session(key_auth)
        .tpm2b(ciphertext)
        .finish()
}

/// TPM2_HierarchyChangeAuth of `hierarchy` (TPM_RH_OWNER, TPM_RH_ENDORSEMENT,
/// TPM_RH_PLATFORM or TPM_RH_LOCKOUT) from `current_auth` to `new_auth`.
pub fn hierarchy_change_auth(hierarchy: u32, current_auth: &[u8], new_auth: &[u8]) -> Vec<u8> {
    CommandBuilder::with_sessions(TPM_CC_HIERARCHY_CHANGE_AUTH)
        .u32(hierarchy)
        .password_session(current_auth)
        .tpm2b(new_auth)
        .finish()
}

// ----------------------------------------------------------------- parsers

/// A successful response split into its handle and its parameters.
struct Split<'a> {
    handle: Option<u32>,
    parameters: Reader<'a>,
}

/// Splits a success response. `with_handle`: the command returns a handle.
/// With TPM_ST_SESSIONS the parameters are exactly parameterSize bytes and
/// the session area after them is not interpreted.
fn split(bytes: &[u8], with_handle: bool) -> Result<Split<'_>, WireError> {
    let response = crate::commands::Response::parse(bytes)?;
    let mut r = Reader::new(response.success_body()?);
    let handle = if with_handle { Some(r.u32()?) } else { None };
    let parameters = if response.header.tag == TPM_ST_SESSIONS {
        let size = r.u32()? as usize;
        Reader::new(r.bytes(size)?)
    } else {
        Reader::new(r.rest())
    };
    Ok(Split { handle, parameters })
}

fn read_digest(r: &mut Reader<'_>) -> Result<Vec<u8>, WireError> {
    let d = r.tpm2b()?;
    if d.len() > MAX_DIGEST {
        return Err(bad("digest size", d.len() as u64));
    }
    Ok(d.to_vec())
}

/// Reads a TPM2B_PUBLIC: its raw TPMT_PUBLIC bytes and their parse.
fn read_public_2b(r: &mut Reader<'_>) -> Result<(Vec<u8>, PublicArea), WireError> {
    let raw = r.tpm2b()?;
    Ok((raw.to_vec(), PublicArea::parse(raw)?))
}

/// The answer to TPM2_CreatePrimary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePrimaryResponse {
    /// The transient handle of the new key.
    pub handle: u32,
    /// The public area (its `public_key()` is the key).
    pub public: PublicArea,
    /// The TPMT_PUBLIC bytes as the TPM sent them.
    pub public_bytes: Vec<u8>,
    /// The TPMS_CREATION_DATA bytes.
    pub creation_data: Vec<u8>,
    /// The hash of the creation data.
    pub creation_hash: Vec<u8>,
    /// The creation ticket.
    pub creation_ticket: Ticket,
    /// The key's name.
    pub name: Vec<u8>,
}

/// Parses a TPM2_CreatePrimary response.
pub fn parse_create_primary(bytes: &[u8]) -> Result<CreatePrimaryResponse, WireError> {
    let Split {
        handle,
        parameters: mut r,
    } = split(bytes, true)?;
    let (public_bytes, public) = read_public_2b(&mut r)?;
    let creation_data = r.tpm2b()?.to_vec();
    let creation_hash = read_digest(&mut r)?;
    let creation_ticket = Ticket::read(&mut r)?;
    let name = r.tpm2b()?.to_vec();
    r.finish()?;
    Ok(CreatePrimaryResponse {
        handle: handle.unwrap_or_default(),
        public,
        public_bytes,
        creation_data,
        creation_hash,
        creation_ticket,
        name,
    })
}

/// The answer to TPM2_Create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateResponse {
    /// The protected private area (TPM2B_PRIVATE content) for TPM2_Load.
    pub private: Vec<u8>,
    /// The public area.
    pub public: PublicArea,
    /// The TPMT_PUBLIC bytes for TPM2_Load.
    pub public_bytes: Vec<u8>,
    /// The TPMS_CREATION_DATA bytes.
    pub creation_data: Vec<u8>,
    /// The hash of the creation data.
    pub creation_hash: Vec<u8>,
    /// The creation ticket.
    pub creation_ticket: Ticket,
}

/// Parses a TPM2_Create response.
pub fn parse_create(bytes: &[u8]) -> Result<CreateResponse, WireError> {
    let mut r = split(bytes, false)?.parameters;
    let private = r.tpm2b()?.to_vec();
    let (public_bytes, public) = read_public_2b(&mut r)?;
    let creation_data = r.tpm2b()?.to_vec();
    let creation_hash = read_digest(&mut r)?;
    let creation_ticket = Ticket::read(&mut r)?;
    r.finish()?;
    Ok(CreateResponse {
        private,
        public,
        public_bytes,
        creation_data,
        creation_hash,
        creation_ticket,
    })
}

/// The answer to TPM2_Load or TPM2_LoadExternal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadResponse {
    /// The transient handle.
    pub handle: u32,
    /// The object's name.
    pub name: Vec<u8>,
}

/// Parses a TPM2_Load or TPM2_LoadExternal response.
pub fn parse_load(bytes: &[u8]) -> Result<LoadResponse, WireError> {
    let Split {
        handle,
        parameters: mut r,
    } = split(bytes, true)?;
    let name = r.tpm2b()?.to_vec();
    r.finish()?;
    Ok(LoadResponse {
        handle: handle.unwrap_or_default(),
        name,
    })
}

/// The answer to TPM2_ReadPublic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPublicResponse {
    /// The public area.
    pub public: PublicArea,
    /// The TPMT_PUBLIC bytes.
    pub public_bytes: Vec<u8>,
    /// The name.
    pub name: Vec<u8>,
    /// The qualified name.
    pub qualified_name: Vec<u8>,
}

/// Parses a TPM2_ReadPublic response.
pub fn parse_read_public(bytes: &[u8]) -> Result<ReadPublicResponse, WireError> {
    let mut r = split(bytes, false)?.parameters;
    let (public_bytes, public) = read_public_2b(&mut r)?;
    let name = r.tpm2b()?.to_vec();
    let qualified_name = r.tpm2b()?.to_vec();
    r.finish()?;
    Ok(ReadPublicResponse {
        public,
        public_bytes,
        name,
        qualified_name,
    })
}

/// Checks the answer of a command without response parameters
/// (TPM2_FlushContext, TPM2_HierarchyChangeAuth).
pub fn parse_empty(bytes: &[u8]) -> Result<(), WireError> {
    split(bytes, false)?.parameters.finish()
}

/// The signature of a TPM2_Sign or TPM2_SignDigest response.
pub fn parse_sign(bytes: &[u8]) -> Result<Signature, WireError> {
    let mut r = split(bytes, false)?.parameters;
    let signature = Signature::read(&mut r)?;
    r.finish()?;
    Ok(signature)
}

/// The ticket of a TPM2_VerifySignature or TPM2_VerifyDigestSignature response.
pub fn parse_verify(bytes: &[u8]) -> Result<VerifiedTicket, WireError> {
    let mut r = split(bytes, false)?.parameters;
    let tag = r.u16()?;
    let hierarchy = r.u32()?;
    let metadata = match tag {
        TPM_ST_DIGEST_VERIFIED => Some(r.u16()?),
        TPM_ST_VERIFIED | TPM_ST_MESSAGE_VERIFIED => None,
        other => return Err(bad("ticket tag", other)),
    };
    let hmac = read_digest(&mut r)?;
    r.finish()?;
    Ok(VerifiedTicket {
        tag,
        hierarchy,
        metadata,
        hmac,
    })
}

/// The answer to TPM2_Encapsulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncapsulateResponse {
    /// The shared secret (32 bytes for ML-KEM).
    pub shared_secret: Vec<u8>,
    /// The ciphertext for the key holder's TPM2_Decapsulate.
    pub ciphertext: Vec<u8>,
}

/// Parses a TPM2_Encapsulate response.
pub fn parse_encapsulate(bytes: &[u8]) -> Result<EncapsulateResponse, WireError> {
    let mut r = split(bytes, false)?.parameters;
    let shared_secret = r.tpm2b()?.to_vec();
    let ciphertext = r.tpm2b()?.to_vec();
    r.finish()?;
    Ok(EncapsulateResponse {
        shared_secret,
        ciphertext,
    })
}

/// The shared secret of a TPM2_Decapsulate response.
pub fn parse_decapsulate(bytes: &[u8]) -> Result<Vec<u8>, WireError> {
    let mut r = split(bytes, false)?.parameters;
    let shared_secret = r.tpm2b()?.to_vec();
    r.finish()?;
    Ok(shared_secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::{TPM_ALG_SHA384, TPM_RH_OWNER, TPM_ST_NO_SESSIONS};
    use crate::Header;
    use proptest::prelude::*;

    /// A response with `tag`, success, and `body`.
    fn response(tag: u16, body: &[u8]) -> Vec<u8> {
        let mut out = CommandBuilder::new(tag, 0).bytes(body).finish();
        out[0..2].copy_from_slice(&tag.to_be_bytes());
        out
    }

    /// A sessions response body: optional handle, parameterSize, parameters,
    /// and one password session answer.
    fn session_body(handle: Option<u32>, params: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        if let Some(h) = handle {
            b.extend_from_slice(&h.to_be_bytes());
        }
        b.extend_from_slice(&(params.len() as u32).to_be_bytes());
        b.extend_from_slice(params);
        b.extend_from_slice(&[0, 0, 1, 0, 0]);
        b
    }

    fn tpm2b(v: &[u8]) -> Vec<u8> {
        let mut out = (v.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(v);
        out
    }

    #[test]
    fn templates_round_trip() {
        let areas = [
            PublicArea::mldsa(MlDsaParameterSet::MlDsa87).with_external_mu(),
            PublicArea::hash_mldsa(MlDsaParameterSet::MlDsa44, TPM_ALG_SHA384),
            PublicArea::mlkem(MlKemParameterSet::MlKem1024).with_unique(&[7; 1568]),
            PublicArea::storage_parent(),
            PublicArea::mlkem_storage_parent(MlKemParameterSet::MlKem768),
        ];
        for area in areas {
            assert_eq!(PublicArea::parse(&area.to_bytes()).unwrap(), area);
        }
    }

    #[test]
    fn mldsa_template_bytes_are_as_documented() {
        let t = PublicArea::mldsa(MlDsaParameterSet::MlDsa65).to_bytes();
        assert_eq!(
            t,
            [
                0x00, 0xA1, // TPM_ALG_MLDSA
                0x00, 0x0B, // SHA-256
                0x00, 0x04, 0x00,
                0x72, // sign|userWithAuth|sensitiveDataOrigin|fixedParent|fixedTPM
                0x00, 0x00, // authPolicy
                0x00, 0x02, // ML-DSA-65
                0x00, // allowExternalMu NO
                0x00, 0x00, // unique
            ]
        );
        let k = PublicArea::mlkem_storage_parent(MlKemParameterSet::MlKem512).to_bytes();
        assert_eq!(
            &k[10..18],
            &[0x00, 0x06, 0x00, 0x80, 0x00, 0x43, 0x00, 0x01]
        );
    }

    #[test]
    fn create_primary_command_layout() {
        let t = PublicArea::storage_parent();
        let c = create_primary(TPM_RH_OWNER, b"pw", &t, b"ka");
        let h = Header::parse_exact(&c).unwrap();
        assert_eq!(h.code, cc::CREATE_PRIMARY);
        assert_eq!(h.tag, TPM_ST_SESSIONS);
        let mut r = Reader::new(&c[10..]);
        assert_eq!(r.u32().unwrap(), TPM_RH_OWNER);
        let auth_size = r.u32().unwrap();
        assert_eq!(auth_size, 11);
        r.bytes(auth_size as usize).unwrap();
        // inSensitive: size 6 = userAuth(2+2) + data(2)
        assert_eq!(r.tpm2b().unwrap(), &[0, 2, b'k', b'a', 0, 0]);
        assert_eq!(PublicArea::parse(r.tpm2b().unwrap()).unwrap(), t);
        assert_eq!(r.tpm2b().unwrap(), &[] as &[u8]);
        assert_eq!(r.u32().unwrap(), 0);
        r.finish().unwrap();
    }

    #[test]
    fn sign_digest_and_verify_layouts() {
        let c = sign_digest(0x8000_0001, b"", b"ctx", &[1; 64]);
        // header 10, handle 4, auth size 4 + 9, context 2+3, digest 2+64, ticket 2+4+2
        assert_eq!(c.len(), 10 + 4 + 4 + 9 + 5 + 66 + 8);
        assert_eq!(&c[c.len() - 8..], &[0x80, 0x24, 0x40, 0, 0, 7, 0, 0]);
        let sig = Signature::MlDsa(vec![5; 4627]);
        let v = verify_digest_signature(0x8000_0001, b"", &[1; 64], &sig);
        assert_eq!(v.len(), 4713);
        let hs = Signature::HashMlDsa {
            hash_alg: TPM_ALG_SHA256,
            signature: vec![1, 2],
        };
        assert_eq!(hs.to_bytes(), [0, 0xA2, 0, 0x0B, 0, 2, 1, 2]);
        assert_eq!(
            Signature::read(&mut Reader::new(&hs.to_bytes())).unwrap(),
            hs
        );
    }

    #[test]
    fn parses_create_primary_response() {
        let area = PublicArea::mldsa(MlDsaParameterSet::MlDsa44).with_unique(&[3; 1312]);
        let mut params = tpm2b(&area.to_bytes());
        params.extend(tpm2b(b"creation data"));
        params.extend(tpm2b(&[9; 32]));
        params.extend_from_slice(&[0x80, 0x21, 0x40, 0, 0, 1]);
        params.extend(tpm2b(&[8; 32]));
        params.extend(tpm2b(&[0, 0x0B, 1, 2]));
        let resp = response(TPM_ST_SESSIONS, &session_body(Some(0x8000_0000), &params));
        let out = parse_create_primary(&resp).unwrap();
        assert_eq!(out.handle, 0x8000_0000);
        assert_eq!(out.public.public_key(), &[3; 1312]);
        assert_eq!(out.public_bytes, area.to_bytes());
        assert_eq!(out.creation_ticket.tag, TPM_ST_CREATION);
        assert_eq!(out.name, [0, 0x0B, 1, 2]);

        // parameterSize larger than the body is an error, not a panic.
        let mut lying = resp.clone();
        lying[14..18].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            parse_create_primary(&lying),
            Err(WireError::Truncated { .. })
        ));
    }

    #[test]
    fn parses_kem_and_ticket_responses() {
        let mut params = tpm2b(&[1; 32]);
        params.extend(tpm2b(&[2; 1568]));
        let out = parse_encapsulate(&response(TPM_ST_NO_SESSIONS, &params)).unwrap();
        assert_eq!(out.shared_secret, [1; 32]);
        assert_eq!(out.ciphertext.len(), 1568);
        let resp = response(TPM_ST_SESSIONS, &session_body(None, &tpm2b(&[4; 32])));
        assert_eq!(parse_decapsulate(&resp).unwrap(), [4; 32]);

        let mut ticket = vec![0x80, 0x27, 0x40, 0, 0, 1, 0, 0x0C];
        ticket.extend(tpm2b(&[6; 48]));
        let t = parse_verify(&response(TPM_ST_NO_SESSIONS, &ticket)).unwrap();
        assert_eq!(t.metadata, Some(TPM_ALG_SHA384));
        assert_eq!(t.hmac, [6; 48]);
        let null = [0x80, 0x22, 0x40, 0, 0, 7, 0, 0];
        let t = parse_verify(&response(TPM_ST_NO_SESSIONS, &null)).unwrap();
        assert_eq!(
            (t.tag, t.metadata, t.hmac.len()),
            (TPM_ST_VERIFIED, None, 0)
        );
        let bogus = [0x12, 0x34, 0x40, 0, 0, 7, 0, 0];
        assert!(parse_verify(&response(TPM_ST_NO_SESSIONS, &bogus)).is_err());
    }

    #[test]
    fn error_responses_become_tpm_errors() {
        let err = crate::error_response(ResponseCode::INTEGRITY.with_parameter(1));
        assert_eq!(parse_load(&err), Err(WireError::Tpm(ResponseCode(0x1DF))));
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut framed = bytes.clone();
            if framed.len() >= 10 {
                let n = framed.len() as u32;
                framed[2..6].copy_from_slice(&n.to_be_bytes());
                framed[6..10].copy_from_slice(&[0; 4]);
            }
            for b in [&bytes, &framed] {
                let _ = parse_create_primary(b);
                let _ = parse_create(b);
                let _ = parse_load(b);
                let _ = parse_read_public(b);
                let _ = parse_sign(b);
                let _ = parse_verify(b);
                let _ = parse_encapsulate(b);
                let _ = parse_decapsulate(b);
                let _ = parse_empty(b);
                let _ = PublicArea::parse(b);
            }
        }
    }
}
