//! ML-KEM commands (v1.85): Encapsulate and Decapsulate.

use vtpm_wire::{cc, CommandBuilder, WireError};

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

/// The answer to TPM2_Encapsulate. `Debug` shows the secret's length only.
#[derive(Clone, PartialEq, Eq)]
pub struct EncapsulateResponse {
    /// The shared secret (32 bytes for ML-KEM).
    pub shared_secret: Vec<u8>,
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
