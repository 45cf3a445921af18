//! What vtpm's sans-I/O TPM device models (`vtpm-crb`, `vtpm-tis`) share:
//! the bit fields of their 32-bit registers, the token that names one
//! execution, and the [`Action`] a device hands its host after an MMIO
//! write. Both devices return these very types, so a host serves either
//! with one vocabulary.
//!
//! ```
//! use vtpm_mmio::{fields, Action, ExecToken, Field};
//!
//! /// A status register.
//! pub struct Status;
//! fields!(Status {
//!     /// The device is ready.
//!     READY: 0..=0,
//!     /// A 3-bit locality number.
//!     LOCALITY: 2..=4,
//! });
//! let reg = Status::LOCALITY.with(Status::READY.with_flag(0, true), 3);
//! assert_eq!(reg, 0b0_1101);
//! assert_eq!(Status::LOCALITY.get(reg), 3);
//!
//! let action = Action::Execute { token: ExecToken(7), locality: 0, command: &[0x80, 0x01] };
//! // Debug shows the command's length, never its bytes.
//! assert!(format!("{action:?}").contains("command_len: 2"));
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use core::fmt;

/// A bit field `lo..=hi` of a 32-bit register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Lowest bit.
    pub lo: u32,
    /// Highest bit.
    pub hi: u32,
}

impl Field {
    /// The field's mask in place.
    pub const fn mask(self) -> u32 {
        let width = self.hi - self.lo + 1;
        let ones = if width == 32 {
            u32::MAX
        } else {
            (1u32 << width) - 1
        };
        ones << self.lo
    }

    /// Extracts the field from `reg`.
    pub const fn get(self, reg: u32) -> u32 {
        (reg & self.mask()) >> self.lo
    }

    /// True when a one-bit field is set in `reg`.
    pub const fn is_set(self, reg: u32) -> bool {
        self.get(reg) != 0
    }

    /// `reg` with the field replaced by `value` (excess bits dropped).
    pub const fn with(self, reg: u32, value: u32) -> u32 {
        (reg & !self.mask()) | ((value << self.lo) & self.mask())
    }

    /// `reg` with a one-bit field set or cleared.
    pub const fn with_flag(self, reg: u32, on: bool) -> u32 {
        self.with(reg, on as u32)
    }
}

/// Declares the bit fields of a 32-bit register as associated [`Field`]
/// constants of a marker type.
#[macro_export]
macro_rules! fields {
    ($reg:ident { $($(#[$doc:meta])* $name:ident : $lo:literal ..= $hi:literal),* $(,)? }) => {
        impl $reg {
            $(
                $(#[$doc])*
                pub const $name: $crate::Field = $crate::Field { lo: $lo, hi: $hi };
            )*
        }
    };
}

/// Identifies one execution, so a completion that outlived a reset or a
/// locality change is recognised and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExecToken(pub u64);

/// Work a device hands to its host after an MMIO write.
#[derive(PartialEq, Eq)]
pub enum Action<'a> {
    /// Run `command` on the backend at `locality`, then hand the response
    /// to the device's `complete` with `token`.
    Execute {
        /// Pass back to the device's `complete`.
        token: ExecToken,
        /// Locality the command came from.
        locality: u8,
        /// The whole command, as the guest wrote it.
        command: &'a [u8],
    },
    /// Ask the backend to cancel the execution `token`. It still completes;
    /// a cancel for a token that has already completed is moot.
    Cancel {
        /// The execution to cancel.
        token: ExecToken,
    },
    /// Clear the backend's established flag on behalf of `locality` (3 or
    /// 4), then report the new flag with the device's `set_established`.
    ResetEstablished {
        /// The locality that asked.
        locality: u8,
    },
}

/// Prints the command's length, never its bytes (they are TPM traffic).
impl fmt::Debug for Action<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Execute {
                token,
                locality,
                command,
            } => f
                .debug_struct("Execute")
                .field("token", token)
                .field("locality", locality)
                .field("command_len", &command.len())
                .finish(),
            Self::Cancel { token } => f.debug_struct("Cancel").field("token", token).finish(),
            Self::ResetEstablished { locality } => f
                .debug_struct("ResetEstablished")
                .field("locality", locality)
                .finish(),
        }
    }
}

/// The backend could not produce a response. What the device does then is
/// its interface's rule: CRB enters the fatal error state (CTRL_STS.tpmSts),
/// TIS answers the command with TPM_RC_FAILURE itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendFailed;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_mask_get_and_set_within_their_bits() {
        let wide = Field { lo: 0, hi: 31 };
        assert_eq!(wide.mask(), u32::MAX);
        let mid = Field { lo: 2, hi: 4 };
        assert_eq!(mid.mask(), 0b1_1100);
        assert_eq!(mid.with(u32::MAX, 0), !0b1_1100);
        assert_eq!(mid.with(0, 0xFF), 0b1_1100, "excess bits dropped");
        assert_eq!(mid.get(0b0_1000), 2);
        let flag = Field { lo: 31, hi: 31 };
        assert!(flag.is_set(flag.with_flag(0, true)));
        assert!(!flag.is_set(flag.with_flag(u32::MAX, false)));
    }
}
