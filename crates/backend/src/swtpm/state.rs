//! The framed, versioned blob that [`SwtpmBackend::save_state`] returns and
//! [`SwtpmBackend::restore_state`] takes.
//!
//! Format version 1, all integers big-endian:
//!
//! | field   | size | meaning |
//! |---------|------|---------|
//! | magic   | 8    | `b"VTPMSWST"` |
//! | version | u32  | 1 |
//! | count   | u32  | number of entries, at most 3 |
//!
//! then `count` entries, each:
//!
//! | field  | size   | meaning |
//! |--------|--------|---------|
//! | type   | u32    | 1 permanent, 2 volatile, 3 savestate (swtpm's blob types) |
//! | flags  | u32    | swtpm's state flags of the blob (2 = still encrypted) |
//! | length | u32    | bytes of data |
//! | data   | length | the blob exactly as GET_STATEBLOB returned it |
//!
//! Each type appears at most once; an empty blob is stored with length 0
//! and skipped on restore. Nothing may follow the last entry. The blobs
//! themselves are swtpm's, so a state saved here restores into any swtpm
//! that accepts those blobs.
//!
//! [`SwtpmBackend::save_state`]: super::SwtpmBackend
//! [`SwtpmBackend::restore_state`]: super::SwtpmBackend

use super::ctrl::{blob, StateBlob, MAX_STATE_BLOB};
use crate::BackendError;

/// The first 8 bytes of a saved state.
pub const MAGIC: [u8; 8] = *b"VTPMSWST";
/// The format version this crate writes and reads.
pub const VERSION: u32 = 1;
/// Bytes before the first entry.
const PREFIX_SIZE: usize = 16;
/// Bytes before an entry's data.
const ENTRY_HEADER_SIZE: usize = 12;

/// The blobs of one saved swtpm state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SavedState {
    /// The blobs, in save order (permanent, volatile, savestate).
    pub blobs: Vec<StateBlob>,
}

impl SavedState {
    /// The blob of `blob_type`, if present.
    pub fn blob(&self, blob_type: u32) -> Option<&StateBlob> {
        self.blobs.iter().find(|b| b.blob_type == blob_type)
    }

    /// The framed bytes (see the module documentation).
    pub fn encode(&self) -> Result<Vec<u8>, BackendError> {
        let data_len: usize = self.blobs.iter().map(|b| b.data.len()).sum();
        let mut out =
            Vec::with_capacity(PREFIX_SIZE + self.blobs.len() * ENTRY_HEADER_SIZE + data_len);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&(self.blobs.len() as u32).to_be_bytes());
        for b in &self.blobs {
            let length = u32::try_from(b.data.len())
                .ok()
                .filter(|&n| n <= MAX_STATE_BLOB)
                .ok_or_else(|| {
                    BackendError::State(format!(
                        "{}-byte state blob exceeds the limit",
                        b.data.len()
                    ))
                })?;
            out.extend_from_slice(&b.blob_type.to_be_bytes());
            out.extend_from_slice(&b.flags.to_be_bytes());
            out.extend_from_slice(&length.to_be_bytes());
            out.extend_from_slice(&b.data);
        }
        Ok(out)
    }

    /// Parses framed bytes, checking every field; a malformed blob is
    /// [`BackendError::State`].
    pub fn decode(bytes: &[u8]) -> Result<Self, BackendError> {
        let bad = |what: String| BackendError::State(what);
        let prefix = bytes.get(..PREFIX_SIZE).ok_or_else(|| {
            bad(format!(
                "{} bytes is too short for a saved state",
                bytes.len()
            ))
        })?;
        if prefix[0..8] != MAGIC {
            return Err(bad("not a vtpm swtpm state (bad magic)".into()));
        }
        let version = be32(&prefix[8..12]);
        if version != VERSION {
            return Err(bad(format!(
                "saved state format version {version} is not supported (this build reads {VERSION})"
            )));
        }
        let count = be32(&prefix[12..16]);
        if count as usize > blob::ALL.len() {
            return Err(bad(format!("{count} entries; at most 3 are possible")));
        }
        let mut rest = &bytes[PREFIX_SIZE..];
        let mut blobs: Vec<StateBlob> = Vec::with_capacity(count as usize);
        for index in 0..count {
            let header = rest
                .get(..ENTRY_HEADER_SIZE)
                .ok_or_else(|| bad(format!("entry {index} is truncated in its header")))?;
            let blob_type = be32(&header[0..4]);
            let flags = be32(&header[4..8]);
            let length = be32(&header[8..12]);
            if blob::name(blob_type).is_none() {
                return Err(bad(format!(
                    "entry {index} has unknown blob type {blob_type}"
                )));
            }
            if blobs.iter().any(|b| b.blob_type == blob_type) {
                return Err(bad(format!("blob type {blob_type} appears twice")));
            }
            if length > MAX_STATE_BLOB {
                return Err(bad(format!("entry {index} declares {length} bytes")));
            }
            rest = &rest[ENTRY_HEADER_SIZE..];
            let data = rest.get(..length as usize).ok_or_else(|| {
                bad(format!(
                    "entry {index} declares {length} bytes but {} remain",
                    rest.len()
                ))
            })?;
            blobs.push(StateBlob {
                blob_type,
                flags,
                data: data.to_vec(),
            });
            rest = &rest[length as usize..];
        }
        if !rest.is_empty() {
            return Err(bad(format!("{} bytes follow the last entry", rest.len())));
        }
        Ok(Self { blobs })
    }
}

fn be32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SavedState {
        SavedState {
            blobs: vec![
                StateBlob {
                    blob_type: blob::PERMANENT,
                    flags: 0,
                    data: vec![1, 2, 3],
                },
                StateBlob {
                    blob_type: blob::VOLATILE,
                    flags: blob::FLAG_ENCRYPTED,
                    data: vec![4; 100],
                },
                StateBlob {
                    blob_type: blob::SAVESTATE,
                    flags: 0,
                    data: vec![],
                },
            ],
        }
    }

    #[test]
    fn round_trip() {
        let s = sample();
        let bytes = s.encode().unwrap();
        assert_eq!(&bytes[..8], b"VTPMSWST");
        assert_eq!(bytes.len(), 16 + 3 * 12 + 103);
        assert_eq!(SavedState::decode(&bytes).unwrap(), s);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().encode().unwrap();
        for n in 0..bytes.len() {
            assert!(
                matches!(SavedState::decode(&bytes[..n]), Err(BackendError::State(_))),
                "prefix of {n} bytes accepted"
            );
        }
    }

    #[test]
    fn malformed_fields_are_errors() {
        let good = sample().encode().unwrap();
        let mut trailing = good.clone();
        trailing.push(0);
        let mut magic = good.clone();
        magic[0] ^= 1;
        let mut version = good.clone();
        version[11] = 2;
        let mut count = good.clone();
        count[15] = 4;
        let mut kind = good.clone();
        kind[19] = 9;
        let mut twice = good.clone();
        twice[16 + 12 + 3 + 3] = 1; // second entry claims type 1 as well
        let mut huge = good.clone();
        huge[24..28].copy_from_slice(&u32::MAX.to_be_bytes());
        for (name, bytes) in [
            ("trailing", trailing),
            ("magic", magic),
            ("version", version),
            ("count", count),
            ("type", kind),
            ("duplicate", twice),
            ("length", huge),
        ] {
            assert!(
                matches!(SavedState::decode(&bytes), Err(BackendError::State(_))),
                "{name} accepted"
            );
        }
    }
}
