//! Hashes, HMAC, the TPM key derivation function, AES-CFB and the random
//! bit generator the simulator draws every secret from.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha384, Sha512};
use vtpm_wire::consts::{TPM_ALG_SHA256, TPM_ALG_SHA384, TPM_ALG_SHA512};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// A hash algorithm the simulator implements (TPMI_ALG_HASH without NULL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    /// Every implemented hash, in TPM_ALG_ID order.
    pub(crate) const ALL: [HashAlg; 3] = [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512];

    pub(crate) fn from_alg(alg: u16) -> Option<Self> {
        match alg {
            TPM_ALG_SHA256 => Some(Self::Sha256),
            TPM_ALG_SHA384 => Some(Self::Sha384),
            TPM_ALG_SHA512 => Some(Self::Sha512),
            _ => None,
        }
    }

    pub(crate) fn alg(self) -> u16 {
        match self {
            Self::Sha256 => TPM_ALG_SHA256,
            Self::Sha384 => TPM_ALG_SHA384,
            Self::Sha512 => TPM_ALG_SHA512,
        }
    }

    pub(crate) fn size(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    /// The DER encoding of the hash's object identifier, as HashML-DSA puts
    /// it into the signed message (FIPS 204, Algorithm 4).
    pub(crate) fn der_oid(self) -> [u8; 11] {
        let last = match self {
            Self::Sha256 => 0x01,
            Self::Sha384 => 0x02,
            Self::Sha512 => 0x03,
        };
        [
            0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, last,
        ]
    }

    /// The hash of the concatenation of `parts`.
    pub(crate) fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut h = D::new();
            for p in parts {
                h.update(p);
            }
            h.finalize().to_vec()
        }
        match self {
            Self::Sha256 => run::<Sha256>(parts),
            Self::Sha384 => run::<Sha384>(parts),
            Self::Sha512 => run::<Sha512>(parts),
        }
    }

    /// HMAC keyed with `key` over the concatenation of `parts`. The output
    /// may be key material (KDFa blocks, the generator's K and V), so it is
    /// wiped when dropped.
    pub(crate) fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
        fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
            // HMAC accepts keys of any length, so this never fails.
            let Ok(mut m) = <M as KeyInit>::new_from_slice(key) else {
                return Zeroizing::new(Vec::new());
            };
            for p in parts {
                m.update(p);
            }
            let mut tag = m.finalize().into_bytes();
            let out = Zeroizing::new(tag.to_vec());
            tag.zeroize();
            out
        }
        match self {
            Self::Sha256 => run::<Hmac<Sha256>>(key, parts),
            Self::Sha384 => run::<Hmac<Sha384>>(key, parts),
            Self::Sha512 => run::<Hmac<Sha512>>(key, parts),
        }
    }

    /// KDFa of TPM 2.0 Part 1 §11.4.10.2: SP 800-108 counter mode with this
    /// hash's HMAC. `label` is used with a terminating zero byte (added
    /// here when absent). The output is `bits` long, rounded up to whole
    /// bytes with the excess high bits of the first byte cleared.
    pub(crate) fn kdfa(
        self,
        key: &[u8],
        label: &[u8],
        context_u: &[u8],
        context_v: &[u8],
        bits: u32,
    ) -> Zeroizing<Vec<u8>> {
        let bytes = bits.div_ceil(8) as usize;
        let label_nul: &[u8] = if label.last() == Some(&0) { &[] } else { &[0] };
        // Sized for every block up front, so it never reallocates and leaves
        // no unwiped copy behind.
        let mut out = Zeroizing::new(Vec::with_capacity(bytes + self.size()));
        let mut counter: u32 = 1;
        while out.len() < bytes {
            let block = self.hmac(
                key,
                &[
                    &counter.to_be_bytes(),
                    label,
                    label_nul,
                    context_u,
                    context_v,
                    &bits.to_be_bytes(),
                ],
            );
            out.extend_from_slice(&block);
            counter = counter.wrapping_add(1);
        }
        out.truncate(bytes);
        if !bits.is_multiple_of(8) {
            if let Some(first) = out.first_mut() {
                *first &= 0xFF >> (8 - bits % 8);
            }
        }
        out
    }
}

/// Compares two byte strings in time that depends only on their lengths
/// (which are not secret here: sizes of HMACs and authorization values).
pub(crate) fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}

/// AES in CFB mode with a zero IV, the TPM's parent protection of a child's
/// sensitive area. `key` must be 16 or 32 bytes; other lengths leave the data
/// untouched and return false.
pub(crate) fn aes_cfb(key: &[u8], data: &mut [u8], encrypt: bool) -> bool {
    use cfb_mode::cipher::KeyIvInit;
    let iv = [0u8; 16];
    macro_rules! run {
        ($aes:ty) => {{
            if encrypt {
                match cfb_mode::Encryptor::<$aes>::new_from_slices(key, &iv) {
                    Ok(c) => c.encrypt(data),
                    Err(_) => return false,
                }
            } else {
                match cfb_mode::Decryptor::<$aes>::new_from_slices(key, &iv) {
                    Ok(c) => c.decrypt(data),
                    Err(_) => return false,
                }
            }
            true
        }};
    }
    match key.len() {
        16 => run!(aes::Aes128),
        32 => run!(aes::Aes256),
        _ => false,
    }
}

/// HMAC_DRBG with SHA-256 (NIST SP 800-90A §10.1.2), the simulator's only
/// source of secrets after construction.
///
/// It is seeded from the operating system, or from a fixed seed when a test
/// or a fuzzer needs a reproducible simulator. Its state K and V is wiped
/// when it is dropped.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct Drbg {
    key: [u8; 32],
    value: [u8; 32],
}

impl Drbg {
    /// Instantiates the generator from `seed_material`.
    pub(crate) fn new(seed_material: &[u8]) -> Self {
        let mut d = Self {
            key: [0; 32],
            value: [1; 32],
        };
        d.update(seed_material);
        d
    }

    /// A generator seeded with 48 bytes from the operating system.
    pub(crate) fn from_os() -> Result<Self, getrandom::Error> {
        let mut seed = [0u8; 48];
        getrandom::fill(&mut seed)?;
        let d = Self::new(&seed);
        seed.zeroize();
        Ok(d)
    }

    fn hmac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&HashAlg::Sha256.hmac(&self.key, parts));
        out
    }

    fn update(&mut self, provided: &[u8]) {
        self.key = self.hmac(&[&self.value, &[0], provided]);
        self.value = self.hmac(&[&self.value]);
        if !provided.is_empty() {
            self.key = self.hmac(&[&self.value, &[1], provided]);
            self.value = self.hmac(&[&self.value]);
        }
    }

    /// Mixes caller-supplied data into the state (TPM2_StirRandom: the
    /// additional input of an HMAC_DRBG update, SP 800-90A).
    pub(crate) fn stir(&mut self, additional: &[u8]) {
        self.update(additional);
    }

    /// Fills `out` with generator output.
    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(32) {
            self.value = self.hmac(&[&self.value]);
            chunk.copy_from_slice(&self.value[..chunk.len()]);
        }
        self.update(&[]);
    }

    /// `n` bytes of generator output, wiped when dropped.
    pub(crate) fn bytes(&mut self, n: usize) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(vec![0u8; n]);
        self.fill(&mut v);
        v
    }

    /// A fixed-size array of generator output.
    pub(crate) fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        self.fill(&mut a);
        a
    }
}

impl rand_core::TryRng for Drbg {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(u32::from_be_bytes(self.array()))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(u64::from_be_bytes(self.array()))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.fill(dst);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for Drbg {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdfa_is_deterministic_and_sized() {
        let a = HashAlg::Sha256.kdfa(b"key", b"STORAGE", b"u", b"v", 128);
        let b = HashAlg::Sha256.kdfa(b"key", b"STORAGE\0", b"u", b"v", 128);
        assert_eq!(a.len(), 16);
        assert_eq!(a, b, "an explicit terminating zero changes nothing");
        let c = HashAlg::Sha256.kdfa(b"key", b"INTEGRITY", b"u", b"v", 128);
        assert_ne!(a, c);
        let long = HashAlg::Sha384.kdfa(b"key", b"X", b"", b"", 1000);
        assert_eq!(long.len(), 125);
        let odd = HashAlg::Sha256.kdfa(b"key", b"X", b"", b"", 12);
        assert_eq!(odd.len(), 2);
        assert_eq!(odd[0] & 0xF0, 0);
    }

    #[test]
    fn kdfa_first_block_matches_its_definition() {
        let out = HashAlg::Sha256.kdfa(b"k", b"L", b"U", b"V", 256);
        let expected = HashAlg::Sha256.hmac(
            b"k",
            &[
                &1u32.to_be_bytes(),
                b"L",
                &[0],
                b"U",
                b"V",
                &256u32.to_be_bytes(),
            ],
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn cfb_round_trips_and_changes_bytes() {
        let key = [7u8; 16];
        let mut data = b"seventeen bytes!!".to_vec();
        assert!(aes_cfb(&key, &mut data, true));
        assert_ne!(&data, b"seventeen bytes!!");
        assert!(aes_cfb(&key, &mut data, false));
        assert_eq!(&data, b"seventeen bytes!!");
        assert!(!aes_cfb(&[0; 5], &mut data, true));
    }

    #[test]
    fn drbg_is_reproducible_from_a_seed() {
        let mut a = Drbg::new(b"seed");
        let mut b = Drbg::new(b"seed");
        let mut c = Drbg::new(b"other");
        let x: [u8; 40] = a.array();
        assert_eq!(x, b.array::<40>());
        assert_ne!(x, c.array::<40>());
        assert_ne!(x, a.array::<40>());
    }

    #[test]
    fn secrets_equal_compares_contents_and_lengths() {
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abc", b"abd"));
        assert!(!secrets_equal(b"abc", b"ab"));
    }
}
