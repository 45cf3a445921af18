//! Splitting a response into its header, handle and parameters.

use vtpm_wire::consts::TPM_ST_SESSIONS;
use vtpm_wire::structures::{PublicArea, MAX_DIGEST};
use vtpm_wire::{Header, Reader, ResponseCode, WireError, HEADER_SIZE};

/// A parsed response: its header and the bytes after it.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    /// The response header.
    pub header: Header,
    /// Everything after the header (for a session response: parameterSize,
    /// parameters and the session area).
    pub body: &'a [u8],
}

impl<'a> Response<'a> {
    /// Parses a whole response; its size field must match the bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let header = Header::parse_exact(bytes)?;
        Ok(Self {
            header,
            body: &bytes[HEADER_SIZE..],
        })
    }

    /// The response code.
    pub fn rc(&self) -> ResponseCode {
        self.header.response_code()
    }

    /// The body, or the response code as an error when it is not success.
    pub fn success_body(&self) -> Result<&'a [u8], WireError> {
        if self.rc().is_success() {
            Ok(self.body)
        } else {
            Err(WireError::Tpm(self.rc()))
        }
    }
}

/// A successful response split into its handle and its parameters.
pub(crate) struct Split<'a> {
    pub(crate) handle: Option<u32>,
    pub(crate) parameters: Reader<'a>,
}

/// Splits a success response. `with_handle`: the command returns a handle.
/// With TPM_ST_SESSIONS the parameters are exactly parameterSize bytes and
/// the session area after them is not interpreted.
pub(crate) fn split(bytes: &[u8], with_handle: bool) -> Result<Split<'_>, WireError> {
    let response = Response::parse(bytes)?;
    let mut r = Reader::new(response.success_body()?);
    let handle = if with_handle { Some(r.u32()?) } else { None };
    let parameters = if response.header.tag == TPM_ST_SESSIONS {
        let size = r.u32()? as usize;
        Reader::new(r.bytes(size)?)
    } else {
        Reader::new(r.rest())
    };
    Ok(Split { handle, parameters })
}

/// Checks the answer of a command without response parameters
/// (TPM2_FlushContext, TPM2_HierarchyChangeAuth, TPM2_PCR_Extend, ...).
pub fn parse_empty(bytes: &[u8]) -> Result<(), WireError> {
    split(bytes, false)?.parameters.finish()
}

pub(crate) fn bad(field: &'static str, value: impl Into<u64>) -> WireError {
    WireError::BadValue {
        field,
        value: value.into(),
    }
}

pub(crate) fn read_digest(r: &mut Reader<'_>) -> Result<Vec<u8>, WireError> {
    let d = r.tpm2b()?;
    if d.len() > MAX_DIGEST {
        return Err(bad("digest size", d.len() as u64));
    }
    Ok(d.to_vec())
}

/// Reads a TPM2B_PUBLIC: its raw TPMT_PUBLIC bytes and their parse.
pub(crate) fn read_public_2b(r: &mut Reader<'_>) -> Result<(Vec<u8>, PublicArea), WireError> {
    let raw = r.tpm2b()?;
    Ok((raw.to_vec(), PublicArea::parse(raw)?))
}
