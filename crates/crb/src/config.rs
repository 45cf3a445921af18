//! Device configuration, validated once at construction.

use alloc::format;
use alloc::string::String;

use crate::spec::{self, MAX_LOCALITIES, MAX_WINDOW_SIZE, MIN_WINDOW_SIZE};
use crate::tpm::HEADER_SIZE;

/// The largest backend buffer a device accepts: a bound on host memory
/// per direction that no guest can raise.
pub const MAX_BACKEND_BUFFER: usize = 1 << 20;

/// When the device advertises CapCRBChunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChunkPolicy {
    /// Advertise only when the backend buffer exceeds the window, the only
    /// case where a guest needs chunking.
    #[default]
    Auto,
    /// Always advertise.
    On,
    /// Never advertise; commands and responses are limited to the window.
    Off,
}

impl core::str::FromStr for ChunkPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "on" => Ok(Self::On),
            "off" => Ok(Self::Off),
            other => Err(format!(
                "chunking policy must be auto, on or off, not {other:?}"
            )),
        }
    }
}

/// Configuration of a [`crate::CrbDevice`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrbConfig {
    /// Bytes of the data window (CTRL_CMD_SIZE / CTRL_RSP_SIZE), 64..=3968.
    pub window_size: usize,
    /// The backend's negotiated buffer: the largest command or response.
    pub backend_buffer: usize,
    /// When to advertise CapCRBChunk.
    pub chunking: ChunkPolicy,
    /// Number of locality pages, 1..=5. CapLocality is set only for 5.
    pub localities: u8,
    /// Guest-physical address of locality 0 (page aligned); the window
    /// address registers are derived from it.
    pub base_address: u64,
    /// INTF_ID vendor ID.
    pub vendor_id: u16,
    /// INTF_ID device ID.
    pub device_id: u16,
    /// INTF_ID revision ID.
    pub revision: u8,
}

impl Default for CrbConfig {
    fn default() -> Self {
        Self {
            window_size: MAX_WINDOW_SIZE,
            backend_buffer: 4096,
            chunking: ChunkPolicy::Auto,
            localities: MAX_LOCALITIES,
            base_address: spec::DEFAULT_BASE_ADDRESS,
            vendor_id: spec::DEFAULT_VENDOR_ID,
            device_id: spec::DEFAULT_DEVICE_ID,
            revision: 0,
        }
    }
}

/// A configuration the device cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The window does not fit a locality page or is below one transfer.
    #[error("window size {0} is outside {MIN_WINDOW_SIZE}..={MAX_WINDOW_SIZE}")]
    WindowSize(usize),
    /// The backend buffer cannot hold a header or exceeds the host bound.
    #[error("backend buffer {0} is outside {HEADER_SIZE}..={MAX_BACKEND_BUFFER}")]
    BackendBuffer(usize),
    /// Zero or more than five localities.
    #[error("locality count {0} is outside 1..=5")]
    Localities(u8),
    /// The base address is not page aligned.
    #[error("base address {0:#x} is not 4 KiB aligned, or its pages run past the end of the address space")]
    BaseAddress(u64),
}

impl CrbConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(MIN_WINDOW_SIZE..=MAX_WINDOW_SIZE).contains(&self.window_size) {
            return Err(ConfigError::WindowSize(self.window_size));
        }
        if !(HEADER_SIZE..=MAX_BACKEND_BUFFER).contains(&self.backend_buffer) {
            return Err(ConfigError::BackendBuffer(self.backend_buffer));
        }
        if !(1..=MAX_LOCALITIES).contains(&self.localities) {
            return Err(ConfigError::Localities(self.localities));
        }
        let span = u64::from(self.localities) * spec::LOCALITY_PAGE_SIZE;
        if !self.base_address.is_multiple_of(spec::LOCALITY_PAGE_SIZE)
            || self.base_address.checked_add(span).is_none()
        {
            return Err(ConfigError::BaseAddress(self.base_address));
        }
        Ok(())
    }

    /// Whether INTF_ID.CapCRBChunk is set under this configuration.
    pub fn chunking_advertised(&self) -> bool {
        match self.chunking {
            ChunkPolicy::Auto => self.backend_buffer > self.window_size,
            ChunkPolicy::On => true,
            ChunkPolicy::Off => false,
        }
    }

    /// The largest command or response the device moves: the backend
    /// buffer with chunking, otherwise what also fits the window.
    pub fn transfer_limit(&self) -> usize {
        if self.chunking_advertised() {
            self.backend_buffer
        } else {
            self.backend_buffer.min(self.window_size)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_bad_field() {
        let ok = CrbConfig::default();
        assert_eq!(ok.validate(), Ok(()));
        let bad = |f: fn(&mut CrbConfig)| {
            let mut c = CrbConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(bad(|c| c.window_size = 63), ConfigError::WindowSize(63));
        assert_eq!(bad(|c| c.window_size = 3969), ConfigError::WindowSize(3969));
        assert_eq!(bad(|c| c.backend_buffer = 9), ConfigError::BackendBuffer(9));
        assert_eq!(bad(|c| c.localities = 0), ConfigError::Localities(0));
        assert_eq!(bad(|c| c.localities = 6), ConfigError::Localities(6));
        assert_eq!(
            bad(|c| c.base_address = 0x10),
            ConfigError::BaseAddress(0x10)
        );
        assert_eq!(
            bad(|c| c.base_address = 0xFFFF_FFFF_FFFF_F000),
            ConfigError::BaseAddress(0xFFFF_FFFF_FFFF_F000)
        );
    }

    #[test]
    fn auto_advertises_only_when_needed() {
        let mut c = CrbConfig {
            backend_buffer: 3968,
            ..CrbConfig::default()
        };
        assert!(!c.chunking_advertised());
        assert_eq!(c.transfer_limit(), 3968);
        c.backend_buffer = 4096;
        assert!(c.chunking_advertised());
        assert_eq!(c.transfer_limit(), 4096);
        c.chunking = ChunkPolicy::Off;
        assert_eq!(c.transfer_limit(), 3968);
        c.chunking = ChunkPolicy::On;
        c.backend_buffer = 1024;
        assert!(c.chunking_advertised());
    }
}
