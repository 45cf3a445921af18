//! The framing every vtpm saved-state blob shares (device snapshots, the
//! platform blob, the simulator's state):
//!
//! ```text
//! magic (8) | version u16 | { tag u16 | length u32 | body }* | CRC-32 u32
//! ```
//!
//! All integers are little-endian; the CRC-32 covers every byte before it.
//! Readers skip sections whose tag they do not know, so a newer writer can
//! add sections without breaking older readers; a known tag that appears
//! twice is an error. The CRC detects corruption, not tampering: a format
//! that needs authenticity adds its own MAC or encryption inside.
//!
//! ```
//! use vtpm_frame::{FrameWriter, Frame};
//!
//! let mut w = FrameWriter::new(*b"EXAMPLE\0", 1);
//! w.section(1, |s| { s.u32(7); s.bytes(b"abc"); })?;
//! let blob = w.finish();
//!
//! let frame = Frame::parse(b"EXAMPLE\0", &blob)?;
//! assert_eq!(frame.version(), 1);
//! let [first] = frame.known_sections([1])?;
//! let mut s = first.expect("section 1");
//! assert_eq!(s.u32()?, 7);
//! assert_eq!(s.bytes()?, b"abc");
//! s.finish()?;
//! # Ok::<(), vtpm_frame::FrameError>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::vec::Vec;
use zeroize::Zeroizing;

/// Bytes of the magic that opens every blob.
pub const MAGIC_LEN: usize = 8;
/// Bytes before the first section: magic and version.
pub const PREAMBLE_LEN: usize = MAGIC_LEN + 2;
/// Bytes of the CRC-32 that closes every blob.
pub const CHECKSUM_LEN: usize = 4;

/// A blob that is not a well-formed frame, or a value too large to frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The blob does not start with the expected magic.
    #[error("bad magic: not this kind of saved state")]
    BadMagic,
    /// The bytes end before the structure does.
    #[error("truncated in {0}")]
    Truncated(&'static str),
    /// The checksum does not match: the bytes were altered.
    #[error("checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum {
        /// CRC-32 stored in the blob.
        stored: u32,
        /// CRC-32 of the bytes read.
        computed: u32,
    },
    /// A section this reader knows appears more than once.
    #[error("section {0} appears twice")]
    DuplicateSection(u16),
    /// A section holds bytes after its last field.
    #[error("trailing bytes in section {0}")]
    TrailingBytes(u16),
    /// A boolean field holds a value other than 0 or 1.
    #[error("section {section}: flag value {value}")]
    BadFlag {
        /// The section's tag.
        section: u16,
        /// The value read.
        value: u8,
    },
    /// A length or section does not fit the format's 32-bit length fields.
    #[error("a value of {0} bytes does not fit a 32-bit length")]
    TooLarge(usize),
}

/// Builds a framed blob. The buffer is zeroed on drop and whenever it
/// grows, since saved state may hold TPM traffic or keys.
pub struct FrameWriter {
    out: Zeroizing<Vec<u8>>,
}

impl FrameWriter {
    /// Starts a blob with `magic` and `version`.
    pub fn new(magic: [u8; MAGIC_LEN], version: u16) -> Self {
        Self::with_capacity(magic, version, 0)
    }

    /// Starts a blob whose sections are expected to take about `capacity`
    /// bytes, so the buffer need not grow.
    pub fn with_capacity(magic: [u8; MAGIC_LEN], version: u16, capacity: usize) -> Self {
        let mut out = Zeroizing::new(Vec::with_capacity(
            PREAMBLE_LEN + capacity.saturating_add(CHECKSUM_LEN),
        ));
        out.extend_from_slice(&magic);
        out.extend_from_slice(&version.to_le_bytes());
        Self { out }
    }

    /// Appends a section: its tag, its length, then what `body` writes.
    /// Fails when a length inside, or the section itself, exceeds 32 bits.
    pub fn section(
        &mut self,
        tag: u16,
        body: impl FnOnce(&mut SectionWriter<'_>),
    ) -> Result<(), FrameError> {
        put(&mut self.out, &tag.to_le_bytes());
        let at = self.out.len();
        put(&mut self.out, &[0; 4]);
        let mut section = SectionWriter {
            out: &mut self.out,
            too_large: None,
        };
        body(&mut section);
        if let Some(len) = section.too_large {
            return Err(FrameError::TooLarge(len));
        }
        let len = self.out.len() - at - 4;
        let len32 = u32::try_from(len).map_err(|_| FrameError::TooLarge(len))?;
        self.out[at..at + 4].copy_from_slice(&len32.to_le_bytes());
        Ok(())
    }

    /// Closes the blob with its CRC-32.
    pub fn finish(mut self) -> Zeroizing<Vec<u8>> {
        let crc = crc32fast::hash(&self.out);
        put(&mut self.out, &crc.to_le_bytes());
        self.out
    }
}

/// Appends to a zeroizing buffer; when it must grow, the old allocation is
/// wiped before it is freed.
fn put(out: &mut Zeroizing<Vec<u8>>, bytes: &[u8]) {
    let needed = out.len() + bytes.len();
    if needed > out.capacity() {
        let mut grown = Zeroizing::new(Vec::with_capacity(needed.max(out.capacity() * 2)));
        grown.extend_from_slice(out);
        // The old buffer is dropped as Zeroizing: wiped, then freed.
        *out = grown;
    }
    out.extend_from_slice(bytes);
}

/// Writes the fields of one section.
pub struct SectionWriter<'a> {
    out: &'a mut Zeroizing<Vec<u8>>,
    too_large: Option<usize>,
}

impl SectionWriter<'_> {
    /// A byte.
    pub fn u8(&mut self, v: u8) {
        put(self.out, &[v]);
    }
    /// A boolean as 0 or 1.
    pub fn flag(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    /// A little-endian u16.
    pub fn u16(&mut self, v: u16) {
        put(self.out, &v.to_le_bytes());
    }
    /// A little-endian u32.
    pub fn u32(&mut self, v: u32) {
        put(self.out, &v.to_le_bytes());
    }
    /// A little-endian u64.
    pub fn u64(&mut self, v: u64) {
        put(self.out, &v.to_le_bytes());
    }
    /// A length or count as a u32; one that does not fit fails the section.
    pub fn len32(&mut self, v: usize) {
        match u32::try_from(v) {
            Ok(v) => self.u32(v),
            Err(_) => {
                self.too_large.get_or_insert(v);
                self.u32(u32::MAX);
            }
        }
    }
    /// A u32 length, then the bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.len32(b.len());
        put(self.out, b);
    }
    /// Bytes with no length in front (a fixed-size field).
    pub fn raw(&mut self, b: &[u8]) {
        put(self.out, b);
    }
}

/// A parsed blob: magic and checksum verified, sections not yet read.
#[derive(Clone, Copy)]
pub struct Frame<'a> {
    version: u16,
    sections: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Checks `magic`, then the CRC-32, and reads the version. The caller
    /// decides which versions it accepts.
    pub fn parse(magic: &[u8; MAGIC_LEN], blob: &'a [u8]) -> Result<Self, FrameError> {
        if blob.len() >= MAGIC_LEN && blob[..MAGIC_LEN] != magic[..] {
            return Err(FrameError::BadMagic);
        }
        if blob.len() < PREAMBLE_LEN + CHECKSUM_LEN {
            return Err(FrameError::Truncated("header"));
        }
        let (body, crc) = blob.split_at(blob.len() - CHECKSUM_LEN);
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let computed = crc32fast::hash(body);
        if stored != computed {
            return Err(FrameError::Checksum { stored, computed });
        }
        Ok(Self {
            version: u16::from_le_bytes([body[MAGIC_LEN], body[MAGIC_LEN + 1]]),
            sections: &body[PREAMBLE_LEN..],
        })
    }

    /// The format version the writer recorded.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// Every section in order, known or not.
    pub fn sections(&self) -> Sections<'a> {
        Sections {
            rest: self.sections,
        }
    }

    /// The sections whose tags are listed, in the order listed; `None` for
    /// one that is absent. Unknown tags are skipped; a listed tag that
    /// appears twice is [`FrameError::DuplicateSection`].
    pub fn known_sections<const N: usize>(
        &self,
        tags: [u16; N],
    ) -> Result<[Option<SectionReader<'a>>; N], FrameError> {
        let mut found: [Option<SectionReader<'a>>; N] = [None; N];
        for section in self.sections() {
            let section = section?;
            if let Some(i) = tags.iter().position(|&t| t == section.tag) {
                if found[i].is_some() {
                    return Err(FrameError::DuplicateSection(section.tag));
                }
                found[i] = Some(section);
            }
        }
        Ok(found)
    }
}

/// The sections of a [`Frame`], in order.
pub struct Sections<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Sections<'a> {
    type Item = Result<SectionReader<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let parsed = (|| {
            let mut header = SectionReader {
                tag: 0,
                bytes: self.rest,
            };
            let tag = header
                .u16()
                .map_err(|_| FrameError::Truncated("section header"))?;
            let len = header
                .len32()
                .map_err(|_| FrameError::Truncated("section header"))?;
            let body = header
                .take(len)
                .map_err(|_| FrameError::Truncated("section"))?;
            self.rest = header.bytes;
            Ok(SectionReader { tag, bytes: body })
        })();
        if parsed.is_err() {
            self.rest = &[];
        }
        Some(parsed)
    }
}

/// Reads the fields of one section, bounds-checked.
#[derive(Clone, Copy)]
pub struct SectionReader<'a> {
    tag: u16,
    bytes: &'a [u8],
}

impl<'a> SectionReader<'a> {
    /// The section's tag.
    pub fn tag(&self) -> u16 {
        self.tag
    }
    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.bytes.len() < n {
            return Err(FrameError::Truncated("section body"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    /// A byte.
    pub fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }
    /// A boolean written by [`SectionWriter::flag`]; other values fail.
    pub fn flag(&mut self) -> Result<bool, FrameError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(FrameError::BadFlag {
                section: self.tag,
                value,
            }),
        }
    }
    /// A little-endian u16.
    pub fn u16(&mut self) -> Result<u16, FrameError> {
        self.array().map(u16::from_le_bytes)
    }
    /// A little-endian u32.
    pub fn u32(&mut self) -> Result<u32, FrameError> {
        self.array().map(u32::from_le_bytes)
    }
    /// A little-endian u64.
    pub fn u64(&mut self) -> Result<u64, FrameError> {
        self.array().map(u64::from_le_bytes)
    }
    /// A u32 length or count.
    pub fn len32(&mut self) -> Result<usize, FrameError> {
        // u32 always fits usize on the 32- and 64-bit targets vtpm supports.
        self.u32().map(|v| v as usize)
    }
    /// Bytes written by [`SectionWriter::bytes`].
    pub fn bytes(&mut self) -> Result<&'a [u8], FrameError> {
        let n = self.len32()?;
        self.take(n)
    }
    /// Succeeds only when every byte of the section was read.
    pub fn finish(self) -> Result<(), FrameError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(FrameError::TrailingBytes(self.tag))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAGIC: [u8; 8] = *b"TESTFRM\0";

    #[test]
    fn an_empty_blob_is_truncated_and_a_foreign_one_has_bad_magic() {
        assert_eq!(
            Frame::parse(&MAGIC, &[]).err(),
            Some(FrameError::Truncated("header"))
        );
        assert_eq!(
            Frame::parse(&MAGIC, b"OTHERMAG\x01\x00\0\0\0\0").err(),
            Some(FrameError::BadMagic)
        );
    }

    #[test]
    fn the_layout_is_magic_version_sections_and_crc() {
        let mut w = FrameWriter::new(MAGIC, 3);
        w.section(9, |s| s.u16(0x0102)).unwrap();
        let blob = w.finish();
        assert_eq!(&blob[..8], &MAGIC);
        assert_eq!(&blob[8..10], &[3, 0]);
        assert_eq!(&blob[10..18], &[9, 0, 2, 0, 0, 0, 2, 1]);
        let crc = crc32fast::hash(&blob[..18]).to_le_bytes();
        assert_eq!(&blob[18..], &crc);
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let mut w = FrameWriter::new(MAGIC, 1);
        w.section(1, |s| s.bytes(b"secret")).unwrap();
        let mut blob = w.finish().to_vec();
        blob[14] ^= 1;
        assert!(matches!(
            Frame::parse(&MAGIC, &blob),
            Err(FrameError::Checksum { .. })
        ));
    }

    #[test]
    fn unknown_sections_are_skipped_and_known_duplicates_refused() {
        let mut w = FrameWriter::new(MAGIC, 1);
        w.section(7, |s| s.u8(1)).unwrap();
        w.section(1, |s| s.u8(2)).unwrap();
        let blob = w.finish();
        let frame = Frame::parse(&MAGIC, &blob).unwrap();
        let [one, two] = frame.known_sections([1, 2]).unwrap();
        assert_eq!(one.unwrap().u8().unwrap(), 2);
        assert!(two.is_none());

        let mut w = FrameWriter::new(MAGIC, 1);
        w.section(1, |_| {}).unwrap();
        w.section(1, |_| {}).unwrap();
        let blob = w.finish();
        let frame = Frame::parse(&MAGIC, &blob).unwrap();
        assert_eq!(
            frame.known_sections([1]).err(),
            Some(FrameError::DuplicateSection(1))
        );
    }

    #[test]
    fn flags_other_than_zero_or_one_and_trailing_bytes_are_refused() {
        let mut w = FrameWriter::new(MAGIC, 1);
        w.section(4, |s| s.u8(2)).unwrap();
        let blob = w.finish();
        let frame = Frame::parse(&MAGIC, &blob).unwrap();
        let [s] = frame.known_sections([4]).unwrap();
        assert_eq!(
            s.unwrap().flag().err(),
            Some(FrameError::BadFlag {
                section: 4,
                value: 2
            })
        );
        assert_eq!(
            s.unwrap().finish().err(),
            Some(FrameError::TrailingBytes(4))
        );
    }

    #[test]
    fn a_section_length_past_the_end_is_truncated() {
        let mut blob = MAGIC.to_vec();
        blob.extend_from_slice(&[1, 0, 5, 0, 0xFF, 0xFF, 0xFF, 0x7F, 1]);
        let crc = crc32fast::hash(&blob);
        blob.extend_from_slice(&crc.to_le_bytes());
        let frame = Frame::parse(&MAGIC, &blob).unwrap();
        assert_eq!(
            frame.known_sections([5]).err(),
            Some(FrameError::Truncated("section"))
        );
    }

    proptest! {
        #[test]
        fn what_is_written_reads_back(
            fields in proptest::collection::vec((any::<u16>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..8),
            version in any::<u16>(),
        ) {
            let mut w = FrameWriter::new(MAGIC, version);
            for (tag, bytes) in &fields {
                w.section(*tag, |s| { s.bytes(bytes); s.u64(u64::from(*tag)); }).unwrap();
            }
            let blob = w.finish();
            let frame = Frame::parse(&MAGIC, &blob).unwrap();
            prop_assert_eq!(frame.version(), version);
            let read: Vec<_> = frame.sections().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(read.len(), fields.len());
            for (mut s, (tag, bytes)) in read.into_iter().zip(&fields) {
                prop_assert_eq!(s.tag(), *tag);
                prop_assert_eq!(s.bytes().unwrap(), &bytes[..]);
                prop_assert_eq!(s.u64().unwrap(), u64::from(*tag));
                prop_assert!(s.finish().is_ok());
            }
        }

        #[test]
        fn no_input_panics(blob in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(frame) = Frame::parse(&MAGIC, &blob) {
                for s in frame.sections() {
                    let Ok(mut s) = s else { break };
                    let _ = s.bytes();
                }
            }
        }
    }
}
