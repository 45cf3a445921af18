//! A bounds-checked big-endian reader.

use crate::WireError;

/// Reads TPM structures from a byte slice; every read checks its bounds.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// The current offset from the start.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Takes the next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let out = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => Err(WireError::Truncated {
                offset: self.pos,
                needed: n,
                available: self.remaining(),
            }),
        }
    }

    /// Reads a u8.
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.bytes(1)?[0])
    }

    /// Reads a big-endian u16.
    pub fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a big-endian u32.
    pub fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a big-endian u64.
    pub fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// Reads a TPM2B: a u16 size followed by that many bytes.
    pub fn tpm2b(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.u16()?;
        self.bytes(usize::from(n))
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        out
    }

    /// Fails with [`WireError::Trailing`] unless every byte was read.
    pub fn finish(&self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(WireError::Trailing(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded() {
        let mut r = Reader::new(&[0, 3, 1, 2]);
        assert_eq!(
            r.tpm2b(),
            Err(WireError::Truncated {
                offset: 2,
                needed: 3,
                available: 2
            })
        );
        let mut r = Reader::new(&[0, 2, 1, 2, 9]);
        assert_eq!(r.tpm2b().unwrap(), &[1, 2]);
        assert_eq!(r.finish(), Err(WireError::Trailing(1)));
        assert_eq!(r.u8().unwrap(), 9);
        assert!(r.finish().is_ok());
        assert!(Reader::new(&[]).bytes(usize::MAX).is_err());
    }
}
