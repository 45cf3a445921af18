//! TPM 2.0 byte formats and constants shared by every vtpm crate: headers,
//! command and response codes, a bounds-checked reader, a builder, and the
//! structures vtpm exchanges as values. The client side of commands
//! (builders and parsers of whole commands) lives in `vtpm-client`.
//!
//! All multi-byte integers on the TPM wire are big-endian. Every parser here
//! is bounds-checked: a short buffer or a header that lies about its size is
//! an [`WireError`], never a panic.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod build;
pub mod cc;
pub mod consts;
pub mod header;
pub mod rc;
pub mod read;
pub mod structures;

pub use build::CommandBuilder;
pub use header::{error_response, Header, HEADER_SIZE};
pub use rc::ResponseCode;
pub use read::Reader;

/// A byte sequence that is not a well-formed TPM 2.0 structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The buffer ended before the structure did.
    #[error("truncated: needed {needed} bytes at offset {offset}, {available} available")]
    Truncated {
        /// Offset at which the read started.
        offset: usize,
        /// Bytes the read needed.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// The header's size field is below the 10-byte header itself.
    #[error("header size {0} is below the 10-byte minimum")]
    SizeBelowHeader(u32),
    /// The header's size field disagrees with the bytes present.
    #[error("header says {declared} bytes but {actual} are present")]
    SizeMismatch {
        /// Size from the header.
        declared: u32,
        /// Bytes actually present.
        actual: usize,
    },
    /// The tag is neither TPM_ST_NO_SESSIONS nor TPM_ST_SESSIONS.
    #[error("unknown tag {0:#06x}")]
    BadTag(u16),
    /// Bytes remained after the structure was fully parsed.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// A field holds a value the structure does not allow.
    #[error("invalid {field}: {value:#x}")]
    BadValue {
        /// Which field.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// The response carried a non-success code, so it has no parameters to parse.
    #[error("TPM answered {0}")]
    Tpm(ResponseCode),
}

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
