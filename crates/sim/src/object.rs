//! Objects: public areas (TPMT_PUBLIC), sensitive areas (TPMT_SENSITIVE),
//! names, key generation and the protection of a child's private area by
//! its parent (TPM 2.0 Part 1 "Protected Storage").

use vtpm_wire::consts::{
    TPMA_OBJECT_DECRYPT, TPMA_OBJECT_FIXED_PARENT, TPMA_OBJECT_FIXED_TPM, TPMA_OBJECT_RESTRICTED,
    TPMA_OBJECT_SIGN, TPMA_OBJECT_X509_SIGN,
};
use vtpm_wire::consts::{
    TPM_ALG_AES, TPM_ALG_CFB, TPM_ALG_HASH_MLDSA, TPM_ALG_MLDSA, TPM_ALG_MLKEM, TPM_ALG_NULL,
    TPM_ALG_SYMCIPHER,
};
use vtpm_wire::ResponseCode;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::cancel::CancelHandle;
use crate::crypto::{aes_cfb, secrets_equal, HashAlg};
use crate::pq::{MlDsa, MlKem, MLDSA_SEED_SIZE, MLKEM_SEED_SIZE};
use crate::rc::TpmResult;
use crate::unmarshal::{In, Out};
use vtpm_wire::structures::{MlDsaParameterSet, MlKemParameterSet};

/// Largest TPM2B_DIGEST (and TPM2B_AUTH): a SHA-512 digest.
pub(crate) const MAX_DIGEST: usize = 64;
/// Largest ML-DSA public key (ML-DSA-87).
pub(crate) const MAX_MLDSA_PUBLIC: usize = MlDsaParameterSet::MlDsa87.public_key_size();
/// Largest ML-KEM encapsulation key (ML-KEM-1024).
pub(crate) const MAX_MLKEM_PUBLIC: usize = MlKemParameterSet::MlKem1024.public_key_size();
/// Largest TPM2B_PUBLIC content this simulator can produce or accept.
pub(crate) const MAX_PUBLIC: usize = 2 + 2 + 4 + 2 + MAX_DIGEST + 8 + 2 + MAX_MLDSA_PUBLIC;
/// Largest TPM2B_PRIVATE: integrity HMAC plus an encrypted TPM2B_SENSITIVE.
pub(crate) const MAX_PRIVATE: usize = 2 + MAX_DIGEST + 2 + 2 + (2 + MAX_DIGEST) * 2 + 2 + 64;

/// TPMA_OBJECT bits that are reserved (or, like firmwareLimited and
/// svnLimited, not supported here).
const RESERVED_ATTRIBUTES: u32 =
    0x0000_0001 | 0x0000_0008 | 0x0000_0300 | 0x0000_F000 | 0xFFF0_0000;

/// AES in CFB mode, the only symmetric definition supported
/// (TPMT_SYM_DEF_OBJECT with algorithm TPM_ALG_AES, mode TPM_ALG_CFB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AesCfb {
    pub(crate) key_bits: u16,
}

impl AesCfb {
    pub(crate) fn key_bytes(self) -> usize {
        usize::from(self.key_bits / 8)
    }

    fn read(r: &mut In<'_>, allow_null: bool) -> TpmResult<Option<Self>> {
        let algorithm = r.u16()?;
        if algorithm == TPM_ALG_NULL && allow_null {
            return Ok(None);
        }
        if algorithm != TPM_ALG_AES {
            return Err(ResponseCode::SYMMETRIC);
        }
        let key_bits = r.u16()?;
        if key_bits != 128 && key_bits != 256 {
            return Err(ResponseCode::KEY_SIZE);
        }
        if r.u16()? != TPM_ALG_CFB {
            return Err(ResponseCode::MODE);
        }
        Ok(Some(Self { key_bits }))
    }

    fn write(sym: Option<Self>, out: &mut Vec<u8>) {
        match sym {
            Some(s) => {
                out.put_u16(TPM_ALG_AES);
                out.put_u16(s.key_bits);
                out.put_u16(TPM_ALG_CFB);
            }
            None => out.put_u16(TPM_ALG_NULL),
        }
    }
}

/// The type of an object with its type-specific parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    MlDsa {
        set: MlDsaParameterSet,
        external_mu: bool,
    },
    HashMlDsa {
        set: MlDsaParameterSet,
        hash: HashAlg,
    },
    MlKem {
        set: MlKemParameterSet,
        symmetric: Option<AesCfb>,
    },
    SymCipher {
        aes: AesCfb,
    },
}

impl Kind {
    pub(crate) fn type_alg(&self) -> u16 {
        match self {
            Self::MlDsa { .. } => TPM_ALG_MLDSA,
            Self::HashMlDsa { .. } => TPM_ALG_HASH_MLDSA,
            Self::MlKem { .. } => TPM_ALG_MLKEM,
            Self::SymCipher { .. } => TPM_ALG_SYMCIPHER,
        }
    }

    /// The ML-DSA parameter set of a signing key.
    pub(crate) fn mldsa_set(&self) -> Option<MlDsaParameterSet> {
        match self {
            Self::MlDsa { set, .. } | Self::HashMlDsa { set, .. } => Some(*set),
            _ => None,
        }
    }

    /// Reads the type-specific parameters (TPMU_PUBLIC_PARMS) of an object of
    /// type `type_alg`, one of the four types [`Public::read`] accepts.
    pub(crate) fn read_parameters(type_alg: u16, r: &mut In<'_>) -> TpmResult<Self> {
        let kind = match type_alg {
            TPM_ALG_MLDSA => {
                let set =
                    MlDsaParameterSet::from_id(r.u16()?).ok_or(vtpm_wire::ResponseCode::PARMS)?;
                Kind::MlDsa {
                    set,
                    external_mu: r.yes_no()?,
                }
            }
            TPM_ALG_HASH_MLDSA => {
                let set =
                    MlDsaParameterSet::from_id(r.u16()?).ok_or(vtpm_wire::ResponseCode::PARMS)?;
                let hash = HashAlg::from_alg(r.u16()?).ok_or(ResponseCode::HASH)?;
                Kind::HashMlDsa { set, hash }
            }
            TPM_ALG_MLKEM => {
                let symmetric = AesCfb::read(r, true)?;
                let set =
                    MlKemParameterSet::from_id(r.u16()?).ok_or(vtpm_wire::ResponseCode::PARMS)?;
                Kind::MlKem { set, symmetric }
            }
            _ => Kind::SymCipher {
                aes: AesCfb::read(r, false)?.ok_or(ResponseCode::SYMMETRIC)?,
            },
        };
        Ok(kind)
    }

    fn max_unique(&self) -> usize {
        match self {
            Self::MlDsa { .. } | Self::HashMlDsa { .. } => MAX_MLDSA_PUBLIC,
            Self::MlKem { .. } => MAX_MLKEM_PUBLIC,
            Self::SymCipher { .. } => MAX_DIGEST,
        }
    }
}

/// A TPMT_PUBLIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Public {
    pub(crate) name_alg: HashAlg,
    pub(crate) attributes: u32,
    pub(crate) auth_policy: Vec<u8>,
    pub(crate) kind: Kind,
    pub(crate) unique: Vec<u8>,
}

impl Public {
    /// Reads a TPMT_PUBLIC. Codes come back without a parameter number.
    pub(crate) fn read(r: &mut In<'_>) -> TpmResult<Self> {
        let type_alg = r.u16()?;
        if !matches!(
            type_alg,
            TPM_ALG_MLDSA | TPM_ALG_HASH_MLDSA | TPM_ALG_MLKEM | TPM_ALG_SYMCIPHER
        ) {
            return Err(ResponseCode::TYPE);
        }
        let name_alg = HashAlg::from_alg(r.u16()?).ok_or(ResponseCode::HASH)?;
        let attributes = r.u32()?;
        if attributes & RESERVED_ATTRIBUTES != 0 {
            return Err(ResponseCode::RESERVED_BITS);
        }
        let auth_policy = r.tpm2b(MAX_DIGEST)?.to_vec();
        let kind = Kind::read_parameters(type_alg, r)?;
        let unique = r.tpm2b(kind.max_unique())?.to_vec();
        Ok(Self {
            name_alg,
            attributes,
            auth_policy,
            kind,
            unique,
        })
    }

    /// The marshalled TPMT_PUBLIC.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.unique.len());
        out.put_u16(self.kind.type_alg());
        out.put_u16(self.name_alg.alg());
        out.put_u32(self.attributes);
        out.put_tpm2b(&self.auth_policy);
        match &self.kind {
            Kind::MlDsa { set, external_mu } => {
                out.put_u16(set.id());
                out.put_u8(u8::from(*external_mu));
            }
            Kind::HashMlDsa { set, hash } => {
                out.put_u16(set.id());
                out.put_u16(hash.alg());
            }
            Kind::MlKem { set, symmetric } => {
                AesCfb::write(*symmetric, &mut out);
                out.put_u16(set.id());
            }
            Kind::SymCipher { aes } => AesCfb::write(Some(*aes), &mut out),
        }
        out.put_tpm2b(&self.unique);
        out
    }

    /// The name: nameAlg ‖ H_nameAlg(TPMT_PUBLIC).
    pub(crate) fn name(&self) -> Vec<u8> {
        let mut name = self.name_alg.alg().to_be_bytes().to_vec();
        name.extend(self.name_alg.digest(&[&self.to_bytes()]));
        name
    }

    pub(crate) fn has(&self, attribute: u32) -> bool {
        self.attributes & attribute != 0
    }

    /// The cipher that protects this object's children, when it is a
    /// storage parent (restricted decryption key with a symmetric definition).
    pub(crate) fn child_protection(&self) -> Option<AesCfb> {
        if !self.has(TPMA_OBJECT_RESTRICTED)
            || !self.has(TPMA_OBJECT_DECRYPT)
            || self.has(TPMA_OBJECT_SIGN)
        {
            return None;
        }
        match self.kind {
            Kind::SymCipher { aes } => Some(aes),
            Kind::MlKem { symmetric, .. } => symmetric,
            _ => None,
        }
    }

    /// The attribute rules of TPM 2.0 Part 1 for the object types
    /// implemented here. Codes come back without a parameter number.
    pub(crate) fn check_attributes(&self) -> TpmResult<()> {
        let restricted = self.has(TPMA_OBJECT_RESTRICTED);
        let sign = self.has(TPMA_OBJECT_SIGN);
        let decrypt = self.has(TPMA_OBJECT_DECRYPT);
        if self.has(TPMA_OBJECT_FIXED_TPM) && !self.has(TPMA_OBJECT_FIXED_PARENT) {
            return Err(ResponseCode::ATTRIBUTES);
        }
        if self.has(TPMA_OBJECT_X509_SIGN) {
            return Err(ResponseCode::ATTRIBUTES);
        }
        if !self.auth_policy.is_empty() && self.auth_policy.len() != self.name_alg.size() {
            return Err(ResponseCode::SIZE);
        }
        match &self.kind {
            Kind::MlDsa { external_mu, .. } => {
                // A restricted key signs only what the TPM vouches for; an
                // external μ would bypass that.
                if !sign || decrypt || (restricted && *external_mu) {
                    return Err(ResponseCode::ATTRIBUTES);
                }
            }
            Kind::HashMlDsa { .. } => {
                if !sign || decrypt {
                    return Err(ResponseCode::ATTRIBUTES);
                }
            }
            Kind::MlKem { symmetric, .. } => {
                if !decrypt || sign {
                    return Err(ResponseCode::ATTRIBUTES);
                }
                if restricted != symmetric.is_some() {
                    return Err(ResponseCode::SYMMETRIC);
                }
            }
            Kind::SymCipher { .. } => {
                if !decrypt || sign {
                    return Err(ResponseCode::ATTRIBUTES);
                }
            }
        }
        Ok(())
    }

    /// Checks that `unique` is a public key of the declared type, as an
    /// object loaded from outside must have. TPM_RC_KEY otherwise.
    pub(crate) fn check_public_key(&self) -> TpmResult<()> {
        let ok = match &self.kind {
            Kind::MlDsa { set, .. } | Kind::HashMlDsa { set, .. } => {
                self.unique.len() == set.public_key_size()
            }
            Kind::MlKem { set, .. } => {
                self.unique.len() == set.public_key_size() && set.public_key_is_valid(&self.unique)
            }
            Kind::SymCipher { .. } => self.unique.len() == self.name_alg.size(),
        };
        if ok {
            Ok(())
        } else {
            Err(ResponseCode::KEY)
        }
    }
}

/// The private key of an object, always as the seed it is expanded from;
/// wiped when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) enum Secret {
    MlDsa([u8; MLDSA_SEED_SIZE]),
    MlKem([u8; MLKEM_SEED_SIZE]),
    Aes(Vec<u8>),
}

impl Secret {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::MlDsa(s) => s,
            Self::MlKem(s) => s,
            Self::Aes(k) => k,
        }
    }
}

/// A TPMT_SENSITIVE; every field is wiped when it is dropped, and `Debug`
/// prints nothing of it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Sensitive {
    /// authValue, trailing zeros removed.
    pub(crate) auth: Vec<u8>,
    /// seedValue: for a storage parent the seed that protects its children.
    pub(crate) seed_value: Vec<u8>,
    pub(crate) secret: Secret,
}

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sensitive(..)")
    }
}

impl Sensitive {
    /// The marshalled TPMT_SENSITIVE of an object of type `type_alg`, in a
    /// buffer sized so that it never reallocates and wiped when dropped.
    pub(crate) fn to_bytes(&self, type_alg: u16) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(
            8 + self.auth.len() + self.seed_value.len() + self.secret.bytes().len(),
        ));
        out.put_u16(type_alg);
        out.put_tpm2b(&self.auth);
        out.put_tpm2b(&self.seed_value);
        out.put_tpm2b(self.secret.bytes());
        out
    }

    /// Reads a TPMT_SENSITIVE that must belong to `public`; any mismatch is
    /// TPM_RC_BINDING or a size code.
    pub(crate) fn read(r: &mut In<'_>, public: &Public) -> TpmResult<Self> {
        if r.u16()? != public.kind.type_alg() {
            return Err(ResponseCode::BINDING);
        }
        let auth = Zeroizing::new(r.tpm2b(public.name_alg.size())?.to_vec());
        let seed_value = Zeroizing::new(r.tpm2b(MAX_DIGEST)?.to_vec());
        let key = r.tpm2b(MLKEM_SEED_SIZE)?;
        let secret = match &public.kind {
            Kind::MlDsa { .. } | Kind::HashMlDsa { .. } => {
                Secret::MlDsa(key.try_into().map_err(|_| ResponseCode::KEY_SIZE)?)
            }
            Kind::MlKem { .. } => {
                Secret::MlKem(key.try_into().map_err(|_| ResponseCode::KEY_SIZE)?)
            }
            Kind::SymCipher { aes } => {
                if key.len() != aes.key_bytes() {
                    return Err(ResponseCode::KEY_SIZE);
                }
                Secret::Aes(key.to_vec())
            }
        };
        if public.child_protection().is_some() && seed_value.len() != public.name_alg.size() {
            return Err(ResponseCode::BINDING);
        }
        Ok(Self {
            auth: take(auth),
            seed_value: take(seed_value),
            secret,
        })
    }
}

/// Moves a buffer out of its wrapper without copying its bytes (the
/// wrapper is left empty).
fn take(mut buffer: Zeroizing<Vec<u8>>) -> Vec<u8> {
    std::mem::take(&mut *buffer)
}

impl Sensitive {
    /// True when the secret produces the public key in `public`, the
    /// binding TPM2_Load checks (TPM_RC_BINDING otherwise).
    pub(crate) fn is_bound_to(&self, public: &Public) -> bool {
        match (&public.kind, &self.secret) {
            (Kind::MlDsa { set, .. } | Kind::HashMlDsa { set, .. }, Secret::MlDsa(xi)) => {
                set.public_key(xi) == public.unique
            }
            (Kind::MlKem { set, .. }, Secret::MlKem(seed)) => set.public_key(seed) == public.unique,
            (Kind::SymCipher { .. }, Secret::Aes(key)) => {
                public.name_alg.digest(&[&self.seed_value, key]) == public.unique
            }
            _ => false,
        }
    }
}

/// Removes the trailing zero bytes of an authorization value, as the TPM
/// does before storing or comparing one.
pub(crate) fn trim_auth(auth: &[u8]) -> Zeroizing<Vec<u8>> {
    let end = auth.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    Zeroizing::new(auth[..end].to_vec())
}

/// Where new key material comes from: a KDF over a primary seed (primary
/// objects are reproducible) or the random generator (ordinary objects).
pub(crate) trait KeySource {
    /// `len` bytes of key material for `label`, wiped when dropped.
    fn take(&mut self, label: &[u8], len: usize) -> Zeroizing<Vec<u8>>;
}

/// Fills in a new object's secrets from `source`, sets the public key in
/// `public.unique`, and returns the sensitive area. A cancel request stops
/// it between steps with TPM_RC_CANCELED (the expansion of the public key
/// is the long one).
pub(crate) fn generate(
    public: &mut Public,
    auth: Zeroizing<Vec<u8>>,
    source: &mut dyn KeySource,
    cancel: &CancelHandle,
) -> TpmResult<Sensitive> {
    let seed_value =
        if public.child_protection().is_some() || matches!(public.kind, Kind::SymCipher { .. }) {
            source.take(b"SEED VALUE", public.name_alg.size())
        } else {
            Zeroizing::new(Vec::new())
        };
    cancel.check()?;
    let secret = match &public.kind {
        Kind::MlDsa { set, .. } | Kind::HashMlDsa { set, .. } => {
            // Filled in place, so no copy of ξ stays behind on the stack.
            let mut secret = Secret::MlDsa([0; MLDSA_SEED_SIZE]);
            if let Secret::MlDsa(xi) = &mut secret {
                xi.copy_from_slice(&source.take(b"ML-DSA XI", MLDSA_SEED_SIZE));
                cancel.check()?;
                public.unique = set.public_key(xi);
            }
            secret
        }
        Kind::MlKem { set, .. } => {
            let mut secret = Secret::MlKem([0; MLKEM_SEED_SIZE]);
            if let Secret::MlKem(seed) = &mut secret {
                seed.copy_from_slice(&source.take(b"ML-KEM D Z", MLKEM_SEED_SIZE));
                cancel.check()?;
                public.unique = set.public_key(seed);
            }
            secret
        }
        Kind::SymCipher { aes } => {
            let key = source.take(b"AES KEY", aes.key_bytes());
            // The unique value of a symmetric key commits to the key
            // without revealing it: H(obfuscation value ‖ key).
            public.unique = public.name_alg.digest(&[&seed_value, &key]);
            Secret::Aes(take(key))
        }
    };
    cancel.check()?;
    Ok(Sensitive {
        auth: take(auth),
        seed_value: take(seed_value),
        secret,
    })
}

/// The qualified name of an object named `name` under a parent whose
/// qualified name is `parent_qualified_name`.
pub(crate) fn qualified_name(
    name_alg: HashAlg,
    parent_qualified_name: &[u8],
    name: &[u8],
) -> Vec<u8> {
    let mut qn = name_alg.alg().to_be_bytes().to_vec();
    qn.extend(name_alg.digest(&[parent_qualified_name, name]));
    qn
}

/// A loaded object.
#[derive(Debug, Clone)]
pub(crate) struct Object {
    pub(crate) public: Public,
    pub(crate) name: Vec<u8>,
    pub(crate) qualified_name: Vec<u8>,
    /// The hierarchy the object belongs to (TPM_RH_NULL for external public keys
    /// loaded there and for everything under the NULL hierarchy).
    pub(crate) hierarchy: u32,
    /// Absent for a public key loaded with TPM2_LoadExternal.
    pub(crate) sensitive: Option<Sensitive>,
}

impl Object {
    /// A loaded object: its name and, under a parent with qualified name
    /// `parent_qualified_name`, its qualified name.
    pub(crate) fn new(
        public: Public,
        parent_qualified_name: &[u8],
        hierarchy: u32,
        sensitive: Option<Sensitive>,
    ) -> Self {
        let name = public.name();
        let qualified_name = qualified_name(public.name_alg, parent_qualified_name, &name);
        Self {
            public,
            name,
            qualified_name,
            hierarchy,
            sensitive,
        }
    }
}

/// The symmetric key and HMAC key a storage parent derives from its
/// seedValue to protect a child named `child_name`.
struct ProtectionKeys {
    symmetric: Zeroizing<Vec<u8>>,
    integrity: Zeroizing<Vec<u8>>,
}

fn protection_keys(parent: &Object, child_name: &[u8]) -> Option<ProtectionKeys> {
    let aes = parent.public.child_protection()?;
    let seed = &parent.sensitive.as_ref()?.seed_value;
    let hash = parent.public.name_alg;
    Some(ProtectionKeys {
        symmetric: hash.kdfa(seed, b"STORAGE", child_name, b"", u32::from(aes.key_bits)),
        integrity: hash.kdfa(seed, b"INTEGRITY", b"", b"", (hash.size() * 8) as u32),
    })
}

/// Wraps a child's sensitive area for `parent`: the TPM2B_PRIVATE content
/// `TPM2B_DIGEST(outer HMAC) ‖ AES-CFB(TPM2B_SENSITIVE)`.
pub(crate) fn wrap_private(
    parent: &Object,
    child: &Public,
    sensitive: &Sensitive,
) -> Option<Vec<u8>> {
    let name = child.name();
    let keys = protection_keys(parent, &name)?;
    let plain = sensitive.to_bytes(child.kind.type_alg());
    // Holds the plaintext until it is encrypted in place.
    let mut encrypted = Zeroizing::new(Vec::with_capacity(plain.len() + 2));
    encrypted.put_tpm2b(&plain);
    if !aes_cfb(&keys.symmetric, &mut encrypted, true) {
        return None;
    }
    let hmac = parent
        .public
        .name_alg
        .hmac(&keys.integrity, &[&encrypted, &name]);
    let mut out = Vec::with_capacity(2 + hmac.len() + encrypted.len());
    out.put_tpm2b(&hmac);
    out.extend_from_slice(&encrypted);
    Some(out)
}

/// Unwraps a TPM2B_PRIVATE content made by [`wrap_private`] for `child`.
/// A wrong integrity value is TPM_RC_INTEGRITY; codes come back without a
/// parameter number.
pub(crate) fn unwrap_private(
    parent: &Object,
    child: &Public,
    private: &[u8],
) -> TpmResult<Sensitive> {
    let name = child.name();
    let keys = protection_keys(parent, &name).ok_or(ResponseCode::TYPE)?;
    // A wrapper whose integrity field cannot even be read fails the
    // integrity check like any other modification.
    let mut r = In::new(private);
    let integrity = r.tpm2b(MAX_DIGEST).map_err(|_| ResponseCode::INTEGRITY)?;
    let encrypted = r.bytes(r.remaining())?;
    let expected = parent
        .public
        .name_alg
        .hmac(&keys.integrity, &[encrypted, &name]);
    if !secrets_equal(integrity, &expected) {
        return Err(ResponseCode::INTEGRITY);
    }
    let mut plain = Zeroizing::new(encrypted.to_vec());
    if !aes_cfb(&keys.symmetric, &mut plain, false) {
        return Err(ResponseCode::FAILURE);
    }
    let result = (|| {
        let mut r = In::new(&plain);
        let (sensitive, _) = r.sized(plain.len(), |s| Sensitive::read(s, child))?;
        r.done()?;
        Ok(sensitive)
    })();
    // The integrity check passed, so a malformed inside means the blob was
    // made for a different public area by someone holding the parent's keys.
    result.map_err(|_: ResponseCode| ResponseCode::BINDING)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> TpmResult<Public> {
        let mut r = In::new(bytes);
        let p = Public::read(&mut r)?;
        r.done()?;
        Ok(p)
    }

    #[test]
    fn public_area_round_trips_the_wire_templates() {
        use vtpm_wire::structures::{MlDsaParameterSet, MlKemParameterSet, PublicArea};
        let templates = [
            PublicArea::mldsa(MlDsaParameterSet::MlDsa65).with_external_mu(),
            PublicArea::hash_mldsa(
                MlDsaParameterSet::MlDsa87,
                vtpm_wire::consts::TPM_ALG_SHA512,
            ),
            PublicArea::mlkem(MlKemParameterSet::MlKem512),
            PublicArea::storage_parent(),
            PublicArea::mlkem_storage_parent(MlKemParameterSet::MlKem1024),
        ];
        for t in templates {
            let bytes = t.to_bytes();
            let p = parse(&bytes).unwrap();
            assert_eq!(p.to_bytes(), bytes);
            p.check_attributes().unwrap();
        }
    }

    #[test]
    fn bad_public_areas_get_their_codes() {
        use vtpm_wire::structures::{MlDsaParameterSet, PublicArea};
        let good = PublicArea::mldsa(MlDsaParameterSet::MlDsa44).to_bytes();
        let mut t = good.clone();
        t[1] = 0x01; // RSA
        assert_eq!(parse(&t), Err(ResponseCode::TYPE));
        let mut t = good.clone();
        t[3] = 0x99;
        assert_eq!(parse(&t), Err(ResponseCode::HASH));
        let mut t = good.clone();
        t[7] |= 1;
        assert_eq!(parse(&t), Err(ResponseCode::RESERVED_BITS));
        let mut t = good.clone();
        t[11] = 9;
        assert_eq!(parse(&t), Err(vtpm_wire::ResponseCode::PARMS));
        let mut t = good.clone();
        t[12] = 2;
        assert_eq!(parse(&t), Err(ResponseCode::VALUE));
        assert_eq!(
            parse(&good[..good.len() - 1]),
            Err(ResponseCode::INSUFFICIENT)
        );
        let decrypting = PublicArea::mldsa(MlDsaParameterSet::MlDsa44)
            .with_attributes(0x0006_0072)
            .to_bytes();
        assert_eq!(
            parse(&decrypting).unwrap().check_attributes(),
            Err(ResponseCode::ATTRIBUTES)
        );
    }

    /// Key material that raises the cancel line once `label` is drawn,
    /// as a cancel arriving in the middle of key generation would.
    struct CancelAfter<'a> {
        label: &'static [u8],
        cancel: &'a CancelHandle,
    }

    impl KeySource for CancelAfter<'_> {
        fn take(&mut self, label: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
            if label == self.label {
                self.cancel.cancel();
            }
            Zeroizing::new(vec![7; len])
        }
    }

    #[test]
    fn a_cancel_during_key_generation_stops_it_before_the_public_key() {
        use vtpm_wire::structures::{MlDsaParameterSet, MlKemParameterSet, PublicArea};
        for (template, label) in [
            (
                PublicArea::mldsa(MlDsaParameterSet::MlDsa87),
                &b"ML-DSA XI"[..],
            ),
            (
                PublicArea::mlkem(MlKemParameterSet::MlKem1024),
                b"ML-KEM D Z",
            ),
            (PublicArea::storage_parent(), b"SEED VALUE"),
        ] {
            let mut public = parse(&template.to_bytes()).unwrap();
            let cancel = CancelHandle::default();
            let mut source = CancelAfter {
                label,
                cancel: &cancel,
            };
            let result = generate(
                &mut public,
                Zeroizing::new(Vec::new()),
                &mut source,
                &cancel,
            );
            assert_eq!(result.err(), Some(ResponseCode::CANCELED));
            assert!(public.unique.is_empty(), "no public key was expanded");
            // Without a request the same generation completes.
            let idle = CancelHandle::default();
            let mut source = CancelAfter {
                label: b"none",
                cancel: &idle,
            };
            let sensitive =
                generate(&mut public, Zeroizing::new(Vec::new()), &mut source, &idle).unwrap();
            assert!(sensitive.is_bound_to(&public));
        }
    }

    #[test]
    fn debug_of_a_sensitive_area_prints_no_key_bytes() {
        let sensitive = Sensitive {
            auth: b"password".to_vec(),
            seed_value: vec![0xAB; 32],
            secret: Secret::MlDsa([0xCD; MLDSA_SEED_SIZE]),
        };
        let shown = format!("{sensitive:?}");
        assert_eq!(shown, "Sensitive(..)");
    }

    #[test]
    fn trailing_zeros_leave_auth_values() {
        assert_eq!(*trim_auth(b"ab\0\0"), b"ab");
        assert_eq!(*trim_auth(b"\0\0"), b"");
        assert_eq!(*trim_auth(b"a\0b"), b"a\0b");
    }
}
