//! Building commands (and responses) byte by byte.

use crate::consts::{TPM_RS_PW, TPM_ST_NO_SESSIONS, TPM_ST_SESSIONS};
use crate::HEADER_SIZE;

/// Builds a TPM 2.0 command: header first, size patched in by [`CommandBuilder::finish`].
///
/// ```
/// use vtpm_wire::{cc, consts, CommandBuilder};
/// let startup = CommandBuilder::new(consts::TPM_ST_NO_SESSIONS, cc::STARTUP)
///     .u16(consts::TPM_SU_CLEAR)
///     .finish();
/// assert_eq!(startup, [0x80, 0x01, 0, 0, 0, 0x0C, 0, 0, 0x01, 0x44, 0, 0]);
/// ```
#[derive(Debug, Clone)]
pub struct CommandBuilder {
    bytes: Vec<u8>,
}

impl CommandBuilder {
    /// Starts a command (or response) with `tag` and `code`.
    pub fn new(tag: u16, code: u32) -> Self {
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(&tag.to_be_bytes());
        bytes.extend_from_slice(&[0; 4]);
        bytes.extend_from_slice(&code.to_be_bytes());
        Self { bytes }
    }

    /// Starts a command without sessions.
    pub fn no_sessions(code: u32) -> Self {
        Self::new(TPM_ST_NO_SESSIONS, code)
    }

    /// Starts a command with sessions.
    pub fn with_sessions(code: u32) -> Self {
        Self::new(TPM_ST_SESSIONS, code)
    }

    /// Appends a u8.
    pub fn u8(mut self, v: u8) -> Self {
        self.bytes.push(v);
        self
    }

    /// Appends a big-endian u16.
    pub fn u16(mut self, v: u16) -> Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian u32.
    pub fn u32(mut self, v: u32) -> Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian u64.
    pub fn u64(mut self, v: u64) -> Self {
        self.bytes.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends raw bytes.
    pub fn bytes(mut self, v: &[u8]) -> Self {
        self.bytes.extend_from_slice(v);
        self
    }

    /// Appends a TPM2B (u16 size, then the bytes). Panics never: a slice
    /// longer than 65535 bytes is truncated to the u16 range by design of
    /// the format, so callers pass only what fits.
    pub fn tpm2b(mut self, v: &[u8]) -> Self {
        let n = v.len().min(usize::from(u16::MAX));
        self.bytes.extend_from_slice(&(n as u16).to_be_bytes());
        self.bytes.extend_from_slice(&v[..n]);
        self
    }

    /// Appends an authorization area holding one password session (TPM_RS_PW)
    /// with `password` as its HMAC field.
    pub fn password_session(self, password: &[u8]) -> Self {
        let area = 4 + 2 + 1 + 2 + password.len().min(usize::from(u16::MAX));
        self.u32(area as u32)
            .u32(TPM_RS_PW)
            .tpm2b(&[])
            .u8(0)
            .tpm2b(password)
    }

    /// Current length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when only the header has been written (never: the header is always there).
    pub fn is_empty(&self) -> bool {
        self.bytes.len() <= HEADER_SIZE
    }

    /// Patches the size field and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let size = self.bytes.len() as u32;
        self.bytes[2..6].copy_from_slice(&size.to_be_bytes());
        self.bytes
    }
}
