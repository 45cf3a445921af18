//! The client side of TPM 2.0 commands: builders of the commands vtpm sends
//! and bounds-checked parsers of their answers — a small TSS for the CLI,
//! guest tests and benches. Byte formats and constants live in `vtpm-wire`;
//! this crate only puts them together into whole commands.
//!
//! Every builder returns the complete command bytes (header size patched
//! in); every parser takes a whole response, turns a non-success code into
//! [`WireError::Tpm`] and never panics on malformed input.
//!
//! ```
//! use vtpm_client as client;
//! use vtpm_wire::consts::{TPM_RH_OWNER, TPM_SU_CLEAR};
//! use vtpm_wire::structures::{MlDsaParameterSet, PublicArea};
//!
//! assert_eq!(
//!     client::startup(TPM_SU_CLEAR),
//!     [0x80, 0x01, 0, 0, 0, 0x0C, 0, 0, 0x01, 0x44, 0, 0]
//! );
//! let template = PublicArea::mldsa(MlDsaParameterSet::MlDsa87).with_external_mu();
//! let command = client::create_primary(TPM_RH_OWNER, b"", &template, b"key auth");
//! assert_eq!(&command[6..10], &0x131u32.to_be_bytes());
//! // A TPM answers with the handle, the public area (whose unique field is
//! // the 2592-byte public key), creation data and the name:
//! let error = vtpm_wire::error_response(vtpm_wire::ResponseCode::AUTH_FAIL);
//! assert!(client::parse_create_primary(&error).is_err());
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod basic;
pub mod kem;
pub mod object;
pub mod pcr;
pub mod response;
pub mod signature;

pub use basic::*;
pub use kem::*;
pub use object::*;
pub use pcr::*;
pub use response::{parse_empty, Response};
pub use signature::*;

#[doc(no_inline)]
pub use vtpm_wire::WireError;

/// The README's examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
