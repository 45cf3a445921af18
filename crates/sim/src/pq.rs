//! ML-DSA (FIPS 204) and ML-KEM (FIPS 203) keyed by the TPM parameter-set
//! identifiers of TPM 2.0 library v1.85.
//!
//! Private keys are always carried as seeds (ML-DSA: the 32-byte ξ,
//! ML-KEM: the 64-byte d‖z) and expanded only for the operation that
//! needs them; the last expanded ML-DSA signing key is kept, so a run of
//! signatures with one key expands it once.

use ml_dsa::{
    EncodedVerifyingKey, ExpandedSigningKey, Keypair, MlDsaParams, SigningKey, VerifyingKey,
};
use ml_kem::{Decapsulate, DecapsulationKey, EncapsulationKey, KeyExport};
use shake::{ExtendableOutput, Shake256, Update, XofReader};
use vtpm_wire::structures::{MlDsaParameterSet, MlKemParameterSet};
use zeroize::Zeroizing;

use vtpm_wire::ResponseCode;

use crate::cancel::CancelHandle;
use crate::crypto::{Drbg, HashAlg};
use crate::rc::TpmResult;

/// The last expanded ML-DSA signing key of each parameter set, with the
/// seed it came from. Expanding ξ costs about a third of an ML-DSA-87
/// signature; one entry per set serves the common run of signatures with
/// one key and bounds the cache to three keys (≤ 10 KB).
#[derive(Default)]
pub(crate) struct SigningKeyCache {
    mldsa44: CacheSlot<ml_dsa::MlDsa44>,
    mldsa65: CacheSlot<ml_dsa::MlDsa65>,
    mldsa87: CacheSlot<ml_dsa::MlDsa87>,
}

type CacheSlot<P> = Option<([u8; MLDSA_SEED_SIZE], Box<ExpandedSigningKey<P>>)>;

/// The parameter sets the cache has a slot for.
pub(crate) trait CachedParams: MlDsaParams + Sized {
    fn slot(cache: &mut SigningKeyCache) -> &mut CacheSlot<Self>;
}

impl CachedParams for ml_dsa::MlDsa44 {
    fn slot(cache: &mut SigningKeyCache) -> &mut CacheSlot<Self> {
        &mut cache.mldsa44
    }
}

impl CachedParams for ml_dsa::MlDsa65 {
    fn slot(cache: &mut SigningKeyCache) -> &mut CacheSlot<Self> {
        &mut cache.mldsa65
    }
}

impl CachedParams for ml_dsa::MlDsa87 {
    fn slot(cache: &mut SigningKeyCache) -> &mut CacheSlot<Self> {
        &mut cache.mldsa87
    }
}

impl SigningKeyCache {
    /// The expanded key of `xi`, expanding it only when the slot holds
    /// another key.
    fn expanded<P: CachedParams>(&mut self, xi: &[u8; MLDSA_SEED_SIZE]) -> &ExpandedSigningKey<P> {
        let slot = P::slot(self);
        if slot.as_ref().is_some_and(|(seed, _)| seed != xi) {
            forget(slot);
        }
        &slot
            .get_or_insert_with(|| {
                (
                    *xi,
                    Box::new(ExpandedSigningKey::<P>::from_seed(&(*xi).into())),
                )
            })
            .1
    }

    /// Forgets every cached key (on TPM reset and state restore).
    pub(crate) fn clear(&mut self) {
        forget(&mut self.mldsa44);
        forget(&mut self.mldsa65);
        forget(&mut self.mldsa87);
    }
}

/// Empties a slot, wiping its seed (the expanded key wipes itself on drop).
fn forget<P: MlDsaParams>(slot: &mut CacheSlot<P>) {
    if let Some((seed, _)) = slot.as_mut() {
        zeroize::Zeroize::zeroize(seed);
    }
    *slot = None;
}

/// Length of an ML-DSA private seed ξ.
pub(crate) const MLDSA_SEED_SIZE: usize = 32;
/// Length of an ML-KEM private seed d‖z.
pub(crate) const MLKEM_SEED_SIZE: usize = 64;
/// Length of an ML-DSA message representative μ (the "external mu").
pub(crate) const MLDSA_MU_SIZE: usize = 64;
/// Largest ML-DSA context string (FIPS 204 §5.2).
pub(crate) const MLDSA_MAX_CONTEXT: usize = 255;

/// The ML-DSA operations of a parameter set; the set's identifiers and sizes
/// are wire's table ([`MlDsaParameterSet`]).
pub(crate) trait MlDsa: Copy {
    /// The encoded public key (pkEncode) generated from seed ξ.
    fn public_key(self, xi: &[u8; MLDSA_SEED_SIZE]) -> Vec<u8>;
    /// A hedged signature over the message representative `mu`.
    /// TPM_RC_CANCELED when `cancel` is requested between expanding the key
    /// and signing; TPM_RC_FAILURE only if rejection sampling gives up,
    /// which FIPS 204's bound makes practically impossible.
    fn sign_mu(
        self,
        xi: &[u8; MLDSA_SEED_SIZE],
        mu: &[u8; MLDSA_MU_SIZE],
        rng: &mut Drbg,
        cache: &mut SigningKeyCache,
        cancel: &CancelHandle,
    ) -> TpmResult<Vec<u8>>;
    /// Verifies `signature` over `mu` under the encoded public key `pk`.
    fn verify_mu(self, pk: &[u8], mu: &[u8; MLDSA_MU_SIZE], signature: &[u8]) -> bool;
}

impl MlDsa for MlDsaParameterSet {
    /// The encoded public key (pkEncode) generated from seed ξ.
    fn public_key(self, xi: &[u8; MLDSA_SEED_SIZE]) -> Vec<u8> {
        fn run<P: MlDsaParams>(xi: &[u8; MLDSA_SEED_SIZE]) -> Vec<u8> {
            let sk = SigningKey::<P>::from_seed(&(*xi).into());
            sk.verifying_key().encode().to_vec()
        }
        match self {
            Self::MlDsa44 => run::<ml_dsa::MlDsa44>(xi),
            Self::MlDsa65 => run::<ml_dsa::MlDsa65>(xi),
            Self::MlDsa87 => run::<ml_dsa::MlDsa87>(xi),
        }
    }

    fn sign_mu(
        self,
        xi: &[u8; MLDSA_SEED_SIZE],
        mu: &[u8; MLDSA_MU_SIZE],
        rng: &mut Drbg,
        cache: &mut SigningKeyCache,
        cancel: &CancelHandle,
    ) -> TpmResult<Vec<u8>> {
        fn run<P: CachedParams>(
            xi: &[u8; MLDSA_SEED_SIZE],
            mu: &[u8; MLDSA_MU_SIZE],
            rng: &mut Drbg,
            cache: &mut SigningKeyCache,
            cancel: &CancelHandle,
        ) -> TpmResult<Vec<u8>> {
            let sk = cache.expanded::<P>(xi);
            cancel.check()?;
            let sig = sk
                .sign_mu_randomized(&(*mu).into(), rng)
                .map_err(|_| ResponseCode::FAILURE)?;
            Ok(sig.encode().to_vec())
        }
        match self {
            Self::MlDsa44 => run::<ml_dsa::MlDsa44>(xi, mu, rng, cache, cancel),
            Self::MlDsa65 => run::<ml_dsa::MlDsa65>(xi, mu, rng, cache, cancel),
            Self::MlDsa87 => run::<ml_dsa::MlDsa87>(xi, mu, rng, cache, cancel),
        }
    }

    fn verify_mu(self, pk: &[u8], mu: &[u8; MLDSA_MU_SIZE], signature: &[u8]) -> bool {
        fn run<P: MlDsaParams>(pk: &[u8], mu: &[u8; MLDSA_MU_SIZE], signature: &[u8]) -> bool {
            let Ok(encoded) = EncodedVerifyingKey::<P>::try_from(pk) else {
                return false;
            };
            let vk = VerifyingKey::<P>::decode(&encoded);
            let Ok(sig) = ml_dsa::Signature::<P>::try_from(signature) else {
                return false;
            };
            vk.verify_mu(&(*mu).into(), &sig)
        }
        match self {
            Self::MlDsa44 => run::<ml_dsa::MlDsa44>(pk, mu, signature),
            Self::MlDsa65 => run::<ml_dsa::MlDsa65>(pk, mu, signature),
            Self::MlDsa87 => run::<ml_dsa::MlDsa87>(pk, mu, signature),
        }
    }
}

/// How the message representative μ is formed (FIPS 204 Algorithms 2 and 4).
pub(crate) enum MlDsaMessage<'a> {
    /// Pure ML-DSA: M' = 0 ‖ |ctx| ‖ ctx ‖ M.
    Pure {
        context: &'a [u8],
        message: &'a [u8],
    },
    /// HashML-DSA: M' = 1 ‖ |ctx| ‖ ctx ‖ OID(PH) ‖ PH(M).
    PreHashed {
        context: &'a [u8],
        hash: HashAlg,
        digest: &'a [u8],
    },
}

/// μ = SHAKE256(tr ‖ M', 64) with tr = SHAKE256(pk, 64). `None` when the
/// context is longer than FIPS 204 allows.
pub(crate) fn mldsa_mu(
    public_key: &[u8],
    message: &MlDsaMessage<'_>,
) -> Option<[u8; MLDSA_MU_SIZE]> {
    let mut tr = [0u8; 64];
    let mut h = Shake256::default();
    h.update(public_key);
    h.finalize_xof().read(&mut tr);

    let mut h = Shake256::default();
    h.update(&tr);
    match message {
        MlDsaMessage::Pure { context, message } => {
            let len = u8::try_from(context.len()).ok()?;
            h.update(&[0, len]);
            h.update(context);
            h.update(message);
        }
        MlDsaMessage::PreHashed {
            context,
            hash,
            digest,
        } => {
            let len = u8::try_from(context.len()).ok()?;
            h.update(&[1, len]);
            h.update(context);
            h.update(&hash.der_oid());
            h.update(digest);
        }
    }
    let mut mu = [0u8; MLDSA_MU_SIZE];
    h.finalize_xof().read(&mut mu);
    Some(mu)
}

/// Runs `$body` with `$p` bound to the ml-kem type of `$set`. A macro
/// rather than a generic function: ml-kem's parameter bounds cannot be
/// named from outside the crate.
macro_rules! with_kem {
    ($set:expr, $p:ident => $body:block) => {
        match $set {
            MlKemParameterSet::MlKem512 => {
                type $p = ml_kem::MlKem512;
                $body
            }
            MlKemParameterSet::MlKem768 => {
                type $p = ml_kem::MlKem768;
                $body
            }
            MlKemParameterSet::MlKem1024 => {
                type $p = ml_kem::MlKem1024;
                $body
            }
        }
    };
}

/// The ML-KEM operations of a parameter set; identifiers and sizes are
/// wire's table ([`MlKemParameterSet`]).
pub(crate) trait MlKem: Copy {
    /// The encapsulation key generated from seed d‖z.
    fn public_key(self, seed: &[u8; MLKEM_SEED_SIZE]) -> Vec<u8>;
    /// True when `ek` passes the FIPS 203 encapsulation-key check.
    fn public_key_is_valid(self, ek: &[u8]) -> bool;
    /// Encapsulates to `ek` with randomness `m`: (shared secret, ciphertext).
    fn encapsulate(self, ek: &[u8], m: &[u8; 32]) -> Option<(Zeroizing<Vec<u8>>, Vec<u8>)>;
    /// Decapsulates `ciphertext` with the key from `seed`.
    fn decapsulate(
        self,
        seed: &[u8; MLKEM_SEED_SIZE],
        ciphertext: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>>;
}

impl MlKem for MlKemParameterSet {
    /// The encapsulation key generated from seed d‖z.
    fn public_key(self, seed: &[u8; MLKEM_SEED_SIZE]) -> Vec<u8> {
        with_kem!(self, P => {
            let dk = DecapsulationKey::<P>::from_seed((*seed).into());
            dk.encapsulation_key().to_bytes().to_vec()
        })
    }

    /// True when `ek` passes the FIPS 203 encapsulation-key check (length
    /// and modulus).
    fn public_key_is_valid(self, ek: &[u8]) -> bool {
        self.encapsulate(ek, &[0; 32]).is_some()
    }

    /// Encapsulates to `ek` with randomness `m`: (shared secret, ciphertext),
    /// or `None` for an invalid key.
    fn encapsulate(self, ek: &[u8], m: &[u8; 32]) -> Option<(Zeroizing<Vec<u8>>, Vec<u8>)> {
        with_kem!(self, P => {
            let key = ml_kem::Key::<EncapsulationKey<P>>::try_from(ek).ok()?;
            let ek = EncapsulationKey::<P>::new(&key).ok()?;
            let (ct, ss) = ek.encapsulate_deterministic(&(*m).into());
            Some((Zeroizing::new(ss.to_vec()), ct.to_vec()))
        })
    }

    /// Decapsulates `ciphertext` with the key from `seed`; `None` when the
    /// ciphertext has the wrong length.
    fn decapsulate(
        self,
        seed: &[u8; MLKEM_SEED_SIZE],
        ciphertext: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        with_kem!(self, P => {
            let ct = ml_kem::Ciphertext::<P>::try_from(ciphertext).ok()?;
            let dk = DecapsulationKey::<P>::from_seed((*seed).into());
            Some(Zeroizing::new(dk.decapsulate(&ct).to_vec()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mldsa_sign_verify_round_trip_and_sizes() {
        let mut rng = Drbg::new(b"t");
        for set in [
            MlDsaParameterSet::MlDsa44,
            MlDsaParameterSet::MlDsa65,
            MlDsaParameterSet::MlDsa87,
        ] {
            let xi = [set.id() as u8; 32];
            let pk = set.public_key(&xi);
            assert_eq!(pk.len(), set.public_key_size());
            let mu = mldsa_mu(
                &pk,
                &MlDsaMessage::Pure {
                    context: b"",
                    message: b"m",
                },
            )
            .unwrap();
            let sig = set
                .sign_mu(
                    &xi,
                    &mu,
                    &mut rng,
                    &mut SigningKeyCache::default(),
                    &CancelHandle::default(),
                )
                .unwrap();
            assert_eq!(sig.len(), set.signature_size());
            assert!(set.verify_mu(&pk, &mu, &sig));
            let mut bad = sig.clone();
            bad[10] ^= 1;
            assert!(!set.verify_mu(&pk, &mu, &bad));
            assert!(!set.verify_mu(&pk[1..], &mu, &sig));
        }
    }

    #[test]
    fn one_cache_serves_interleaved_keys_and_sets() {
        let mut rng = Drbg::new(b"c");
        let mut cache = SigningKeyCache::default();
        let keys = [
            (MlDsaParameterSet::MlDsa87, [1u8; 32]),
            (MlDsaParameterSet::MlDsa87, [2u8; 32]),
            (MlDsaParameterSet::MlDsa44, [1u8; 32]),
            (MlDsaParameterSet::MlDsa87, [1u8; 32]),
        ];
        for round in 0..2 {
            for (set, xi) in keys {
                let pk = set.public_key(&xi);
                let message = MlDsaMessage::Pure {
                    context: b"",
                    message: &[round],
                };
                let mu = mldsa_mu(&pk, &message).unwrap();
                let sig = set
                    .sign_mu(&xi, &mu, &mut rng, &mut cache, &CancelHandle::default())
                    .unwrap();
                assert!(
                    set.verify_mu(&pk, &mu, &sig),
                    "{set:?} {xi:?} round {round}"
                );
            }
        }
        cache.clear();
        assert!(cache.mldsa87.is_none() && cache.mldsa44.is_none());
    }

    #[test]
    fn a_cancel_request_stops_signing_after_the_key_expansion() {
        let mut rng = Drbg::new(b"x");
        let mut cache = SigningKeyCache::default();
        let set = MlDsaParameterSet::MlDsa87;
        let xi = [3u8; 32];
        let cancel = CancelHandle::default();
        cancel.cancel();
        let result = set.sign_mu(&xi, &[0; 64], &mut rng, &mut cache, &cancel);
        assert_eq!(result, Err(ResponseCode::CANCELED));
        assert!(cache.mldsa87.is_some(), "the key was expanded first");
    }

    #[test]
    fn mlkem_round_trip_and_sizes() {
        for set in [
            MlKemParameterSet::MlKem512,
            MlKemParameterSet::MlKem768,
            MlKemParameterSet::MlKem1024,
        ] {
            let seed = [set.id() as u8; 64];
            let ek = set.public_key(&seed);
            assert_eq!(ek.len(), set.public_key_size());
            assert!(set.public_key_is_valid(&ek));
            let (ss, ct) = set.encapsulate(&ek, &[9; 32]).unwrap();
            assert_eq!(ct.len(), set.ciphertext_size());
            assert_eq!(set.decapsulate(&seed, &ct).unwrap(), ss);
            assert!(set.decapsulate(&seed, &ct[1..]).is_none());
            assert!(!set.public_key_is_valid(&[0xFF; 3]));
        }
    }

    #[test]
    fn overlong_context_has_no_mu() {
        let ctx = [0u8; 256];
        assert!(mldsa_mu(
            b"pk",
            &MlDsaMessage::Pure {
                context: &ctx,
                message: b""
            }
        )
        .is_none());
    }
}
