//! Reading command parameters with the TPM's own error codes: a short
//! buffer is TPM_RC_INSUFFICIENT, an oversized TPM2B is TPM_RC_SIZE. The
//! codes come back bare; the caller attaches the parameter number.

use vtpm_wire::{Reader, ResponseCode};

use crate::rc::TpmResult;

/// A bounded reader over command parameters.
pub(crate) struct In<'a> {
    r: Reader<'a>,
}

impl<'a> In<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self {
            r: Reader::new(bytes),
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.r.remaining()
    }

    pub(crate) fn bytes(&mut self, n: usize) -> TpmResult<&'a [u8]> {
        self.r.bytes(n).map_err(|_| ResponseCode::INSUFFICIENT)
    }

    pub(crate) fn u8(&mut self) -> TpmResult<u8> {
        self.r.u8().map_err(|_| ResponseCode::INSUFFICIENT)
    }

    pub(crate) fn u16(&mut self) -> TpmResult<u16> {
        self.r.u16().map_err(|_| ResponseCode::INSUFFICIENT)
    }

    pub(crate) fn u32(&mut self) -> TpmResult<u32> {
        self.r.u32().map_err(|_| ResponseCode::INSUFFICIENT)
    }

    /// A TPM2B whose buffer may hold at most `max` bytes.
    pub(crate) fn tpm2b(&mut self, max: usize) -> TpmResult<&'a [u8]> {
        let n = usize::from(self.u16()?);
        if n > max {
            return Err(ResponseCode::SIZE);
        }
        self.bytes(n)
    }

    /// A TPMI_YES_NO.
    pub(crate) fn yes_no(&mut self) -> TpmResult<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(ResponseCode::VALUE),
        }
    }

    /// A TPM2B that must contain exactly one structure read by `f`; bytes
    /// left inside it are TPM_RC_SIZE.
    pub(crate) fn sized<T>(
        &mut self,
        max: usize,
        f: impl FnOnce(&mut In<'a>) -> TpmResult<T>,
    ) -> TpmResult<(T, &'a [u8])> {
        let raw = self.tpm2b(max)?;
        if raw.is_empty() {
            return Err(ResponseCode::SIZE);
        }
        let mut inner = In::new(raw);
        let value = f(&mut inner)?;
        if inner.remaining() != 0 {
            return Err(ResponseCode::SIZE);
        }
        Ok((value, raw))
    }

    /// Fails with TPM_RC_SIZE (no parameter number, as a TPM reports it)
    /// when parameter bytes are left over.
    pub(crate) fn done(&self) -> TpmResult<()> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(ResponseCode::SIZE)
        }
    }
}

/// Appending TPM structures to a response.
pub(crate) trait Out {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    /// A TPM2B; callers only pass buffers that fit the u16 size.
    fn put_tpm2b(&mut self, v: &[u8]);
}

impl Out for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_tpm2b(&mut self, v: &[u8]) {
        let n = v.len().min(usize::from(u16::MAX));
        self.put_u16(n as u16);
        self.extend_from_slice(&v[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_for_short_and_oversized_input() {
        let mut i = In::new(&[0, 5, 1, 2]);
        assert_eq!(i.tpm2b(4), Err(ResponseCode::SIZE));
        let mut i = In::new(&[0, 3, 1, 2]);
        assert_eq!(i.tpm2b(4), Err(ResponseCode::INSUFFICIENT));
        let mut i = In::new(&[2]);
        assert_eq!(i.yes_no(), Err(ResponseCode::VALUE));
        let mut i = In::new(&[0, 2, 0, 1, 9]);
        let (v, _) = i.sized(8, |s| s.u16()).unwrap();
        assert_eq!(v, 1);
        assert_eq!(i.done(), Err(ResponseCode::SIZE));
        let mut i = In::new(&[0, 3, 0, 1, 9]);
        assert_eq!(
            i.sized(8, |s| s.u16()).map(|x| x.0),
            Err(ResponseCode::SIZE)
        );
    }
}
