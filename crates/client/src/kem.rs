//! ML-KEM commands (v1.85): Encapsulate and Decapsulate.

use subtle::ConstantTimeEq;
use vtpm_wire::{cc, CommandBuilder, WireError};
use zeroize::Zeroizing;

use crate::response::split;

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

/// An ML-KEM shared secret as a TPM answered it: wiped when dropped,
/// compared in constant time, and shown by `Debug` as its length only.
#[derive(Clone, Default)]
pub struct SharedSecret(Zeroizing<Vec<u8>>);

impl SharedSecret {
    /// Wraps `bytes` (copied; the caller wipes its own copy).
    pub fn new(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(bytes.to_vec()))
    }

    /// The secret's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Its length (32 for ML-KEM).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty secret.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialEq for SharedSecret {
    /// Constant time in the contents (lengths are public).
    fn eq(&self, other: &Self) -> bool {
        secret_eq(self, &other.0)
    }
}

impl Eq for SharedSecret {}

/// Constant time in the contents, as `SharedSecret == SharedSecret`.
fn secret_eq(secret: &SharedSecret, other: &[u8]) -> bool {
    secret.0.len() == other.len() && bool::from(secret.0.as_slice().ct_eq(other))
}

impl PartialEq<[u8]> for SharedSecret {
    fn eq(&self, other: &[u8]) -> bool {
        secret_eq(self, other)
    }
}

impl<const N: usize> PartialEq<[u8; N]> for SharedSecret {
    fn eq(&self, other: &[u8; N]) -> bool {
        secret_eq(self, other)
    }
}

impl PartialEq<Vec<u8>> for SharedSecret {
    fn eq(&self, other: &Vec<u8>) -> bool {
        secret_eq(self, other)
    }
}

impl PartialEq<SharedSecret> for Vec<u8> {
    fn eq(&self, other: &SharedSecret) -> bool {
        secret_eq(other, self)
    }
}

impl std::fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedSecret({} bytes)", self.0.len())
    }
}

/// The answer to TPM2_Encapsulate. `Debug` shows the secret's length only.
#[derive(Clone, PartialEq, Eq)]
pub struct EncapsulateResponse {
    /// The shared secret (32 bytes for ML-KEM).
    pub shared_secret: SharedSecret,
    /// The ciphertext for the key holder's TPM2_Decapsulate.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for EncapsulateResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncapsulateResponse")
            .field("shared_secret_len", &self.shared_secret.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// Parses a TPM2_Encapsulate response.
pub fn parse_encapsulate(bytes: &[u8]) -> Result<EncapsulateResponse, WireError> {
    let mut r = split(bytes, false)?.parameters;
    let shared_secret = SharedSecret::new(r.tpm2b()?);
    let ciphertext = r.tpm2b()?.to_vec();
    r.finish()?;
    Ok(EncapsulateResponse {
        shared_secret,
        ciphertext,
    })
}

/// The shared secret of a TPM2_Decapsulate response.
pub fn parse_decapsulate(bytes: &[u8]) -> Result<SharedSecret, WireError> {
    let mut r = split(bytes, false)?.parameters;
    let shared_secret = SharedSecret::new(r.tpm2b()?);
    r.finish()?;
    Ok(shared_secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_secret_shows_its_length_only_and_compares_by_contents() {
        let secret = SharedSecret::new(&[0xAB; 32]);
        let shown = format!("{secret:?}");
        assert_eq!(shown, "SharedSecret(32 bytes)");
        assert!(!shown.to_lowercase().contains("ab,"));
        assert_eq!(secret, [0xAB; 32]);
        assert_eq!(secret, SharedSecret::new(&[0xAB; 32]));
        assert_ne!(secret, SharedSecret::new(&[0xAB; 31]));
        let mut other = [0xAB; 32];
        other[31] = 0;
        assert_ne!(secret, other);
        assert_eq!(vec![0xAB; 32], secret);
        assert_eq!(secret.len(), 32);
        assert!(!secret.is_empty());
    }
}
