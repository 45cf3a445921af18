//! TPM 2.0 structures vtpm exchanges as values: public areas (TPMT_PUBLIC)
//! with their parameters, signatures (TPMT_SIGNATURE) and tickets, including
//! the post-quantum types of TPM 2.0 library v1.85 (ML-DSA, HashML-DSA,
//! ML-KEM) and the parameter-set tables every crate shares.
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
//!
//! Every parser is bounds-checked and returns [`WireError`], never panics.
//!
//! ```
//! use vtpm_wire::structures::{MlDsaParameterSet, PublicArea};
//!
//! let template = PublicArea::mldsa(MlDsaParameterSet::MlDsa87).with_external_mu();
//! let bytes = template.to_bytes();
//! assert_eq!(&bytes[..2], &[0x00, 0xA1]); // TPM_ALG_MLDSA
//! assert_eq!(PublicArea::parse(&bytes)?, template);
//! assert_eq!(MlDsaParameterSet::MlDsa87.signature_size(), 4627);
//! # Ok::<(), vtpm_wire::WireError>(())
//! ```

use crate::consts::{
    TPMA_OBJECT_DECRYPT, TPMA_OBJECT_FIXED_PARENT, TPMA_OBJECT_FIXED_TPM, TPMA_OBJECT_NO_DA,
    TPMA_OBJECT_RESTRICTED, TPMA_OBJECT_SENSITIVE_DATA_ORIGIN, TPMA_OBJECT_SIGN,
    TPMA_OBJECT_USER_WITH_AUTH, TPM_ALG_AES, TPM_ALG_CFB, TPM_ALG_HASH_MLDSA, TPM_ALG_MLDSA,
    TPM_ALG_MLKEM, TPM_ALG_NULL, TPM_ALG_SHA256, TPM_ALG_SYMCIPHER, TPM_MLDSA_44, TPM_MLDSA_65,
    TPM_MLDSA_87, TPM_MLKEM_1024, TPM_MLKEM_512, TPM_MLKEM_768,
};
use crate::{CommandBuilder, Reader, WireError};

/// Largest TPM2B_DIGEST (SHA-512).
pub const MAX_DIGEST: usize = 64;

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
    pub const fn id(self) -> u16 {
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
    pub const fn public_key_size(self) -> usize {
        match self {
            Self::MlDsa44 => 1312,
            Self::MlDsa65 => 1952,
            Self::MlDsa87 => 2592,
        }
    }

    /// Size of a signature.
    pub const fn signature_size(self) -> usize {
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
    pub const fn id(self) -> u16 {
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
    pub const fn public_key_size(self) -> usize {
        match self {
            Self::MlKem512 => 800,
            Self::MlKem768 => 1184,
            Self::MlKem1024 => 1568,
        }
    }

    /// Size of a ciphertext.
    pub const fn ciphertext_size(self) -> usize {
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

pub(crate) fn bad(field: &'static str, value: impl Into<u64>) -> WireError {
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
    /// Reads a ticket.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            tag: r.u16()?,
            hierarchy: r.u32()?,
            digest: r.tpm2b()?.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::TPM_ALG_SHA384;
    use proptest::prelude::*;

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
    fn hash_mldsa_signatures_round_trip() {
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
    fn parameter_set_tables_agree_with_their_identifiers() {
        for set in MlDsaParameterSet::ALL {
            assert_eq!(MlDsaParameterSet::from_id(set.id()), Some(set));
        }
        for set in MlKemParameterSet::ALL {
            assert_eq!(MlKemParameterSet::from_id(set.id()), Some(set));
        }
        assert_eq!(MlDsaParameterSet::from_id(0), None);
        assert_eq!(MlKemParameterSet::from_id(4), None);
    }

    proptest! {
        #[test]
        fn public_area_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = PublicArea::parse(&bytes);
            let _ = Signature::read(&mut Reader::new(&bytes));
        }
    }
}
