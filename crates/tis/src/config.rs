//! Device configuration, validated once at construction.

use crate::spec::{self, MAX_LOCALITIES};

/// The largest backend buffer a device accepts: a bound on host memory
/// that no guest can raise.
pub const MAX_BACKEND_BUFFER: usize = 1 << 20;

/// Configuration of a [`crate::TisDevice`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TisConfig {
    /// The backend's negotiated buffer: the largest command or response,
    /// and the size of the FIFO buffer (8192 with vtpm-sim, 4096 with
    /// swtpm 0.7.1).
    pub backend_buffer: usize,
    /// Number of locality pages, 1..=5. CapLocality is set only for 5.
    pub localities: u8,
    /// SERIRQ vector TPM_INT_VECTOR reports, 0..=15 (0: none).
    pub int_vector: u8,
    /// TPM_DID_VID vendor ID.
    pub vendor_id: u16,
    /// TPM_DID_VID device ID.
    pub device_id: u16,
    /// TPM_RID revision ID.
    pub revision: u8,
}

impl Default for TisConfig {
    fn default() -> Self {
        Self {
            backend_buffer: 4096,
            localities: MAX_LOCALITIES,
            int_vector: 0,
            vendor_id: spec::DEFAULT_VENDOR_ID,
            device_id: spec::DEFAULT_DEVICE_ID,
            revision: spec::DEFAULT_REVISION,
        }
    }
}

/// A configuration the device cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The backend buffer cannot hold a header or exceeds the host bound.
    #[error("backend buffer {0} is outside {min}..={MAX_BACKEND_BUFFER}", min = vtpm_wire::HEADER_SIZE)]
    BackendBuffer(usize),
    /// Zero or more than five localities.
    #[error("locality count {0} is outside 1..=5")]
    Localities(u8),
    /// The interrupt vector does not fit TPM_INT_VECTOR.sirqVec.
    #[error("interrupt vector {0} is outside 0..=15")]
    InterruptVector(u8),
}

impl TisConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(vtpm_wire::HEADER_SIZE..=MAX_BACKEND_BUFFER).contains(&self.backend_buffer) {
            return Err(ConfigError::BackendBuffer(self.backend_buffer));
        }
        if !(1..=MAX_LOCALITIES).contains(&self.localities) {
            return Err(ConfigError::Localities(self.localities));
        }
        if u32::from(self.int_vector) > spec::IntVector::SIRQ_VEC.get(u32::MAX) {
            return Err(ConfigError::InterruptVector(self.int_vector));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_bad_field() {
        assert_eq!(TisConfig::default().validate(), Ok(()));
        let bad = |f: fn(&mut TisConfig)| {
            let mut c = TisConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(bad(|c| c.backend_buffer = 9), ConfigError::BackendBuffer(9));
        assert_eq!(
            bad(|c| c.backend_buffer = MAX_BACKEND_BUFFER + 1),
            ConfigError::BackendBuffer(MAX_BACKEND_BUFFER + 1)
        );
        assert_eq!(bad(|c| c.localities = 0), ConfigError::Localities(0));
        assert_eq!(bad(|c| c.localities = 6), ConfigError::Localities(6));
        assert_eq!(bad(|c| c.int_vector = 16), ConfigError::InterruptVector(16));
    }
}
