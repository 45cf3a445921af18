//! The MMIO accesses a VMM would trap: each one is a VM exit, which costs
//! microseconds on real hardware and dwarfs the device's own work.

use std::ops::{Add, Sub};

/// Trapped MMIO accesses, by kind. In a VMM each is one VM exit.
///
/// The guest drivers of vtpm-guest move a window piece in one bulk
/// access; the bus counts it as the accesses Linux's `memcpy_toio` /
/// `memcpy_fromio` make for it (the generic implementation, used on arm64
/// and others): single bytes up to an 8-byte boundary, 8-byte accesses
/// while 8 bytes remain, single bytes for the tail. Register accesses
/// count one each, whatever their width. With the window in guest RAM
/// ([`PlatformConfig::window_in_ram`](crate::PlatformConfig::window_in_ram))
/// window accesses are memory, not exits, and are not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MmioExits {
    /// Register reads and writes (everything outside the data window).
    pub registers: u64,
    /// Data-window reads and writes, trapped.
    pub window: u64,
}

impl MmioExits {
    /// All exits.
    pub fn total(&self) -> u64 {
        self.registers.saturating_add(self.window)
    }

    /// Counts a trapped window access of `len` bytes at `offset`.
    pub(crate) fn count_window(&mut self, offset: u64, len: usize) {
        self.window = self.window.saturating_add(io_copy_accesses(offset, len));
    }

    /// Counts a register access.
    pub(crate) fn count_register(&mut self) {
        self.registers = self.registers.saturating_add(1);
    }
}

impl Add for MmioExits {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self {
            registers: self.registers.saturating_add(other.registers),
            window: self.window.saturating_add(other.window),
        }
    }
}

impl Sub for MmioExits {
    type Output = Self;
    fn sub(self, other: Self) -> Self {
        Self {
            registers: self.registers.saturating_sub(other.registers),
            window: self.window.saturating_sub(other.window),
        }
    }
}

/// The accesses of a generic `memcpy_{to,from}io` of `len` bytes at
/// `offset`: bytes to 8-byte alignment, 8-byte words, trailing bytes.
pub fn io_copy_accesses(offset: u64, len: usize) -> u64 {
    let len = len as u64;
    let head = ((8 - offset % 8) % 8).min(len);
    let words = (len - head) / 8;
    head + words + (len - head - 8 * words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aligned_copy_is_one_access_per_eight_bytes_and_edges_go_byte_by_byte() {
        assert_eq!(io_copy_accesses(0x80, 3968), 496);
        assert_eq!(io_copy_accesses(0x80, 10), 1 + 2);
        // From byte 10 of the window: 6 bytes to alignment, then words.
        assert_eq!(io_copy_accesses(0x8A, 3958), 6 + 494);
        assert_eq!(io_copy_accesses(0x81, 3), 3);
        assert_eq!(io_copy_accesses(0x80, 0), 0);
    }
}
