//! The state directory: a lock so that one server at a time owns it, and
//! the TPM's state files, optionally encrypted with AES-256-GCM.
//!
//! Files (each one blob in the vtpm-frame framing, magic `vTPMsrv\0`):
//!
//! - `permanent`: the backend's whole state as of its last change. A server
//!   that starts from it power-cycles the TPM, so only what survives a
//!   power cycle (seeds, authorization values, a Shutdown(STATE) record)
//!   is used.
//! - `volatile`: the state written by STORE_VOLATILE, resumed by INIT.
//! - `lock`: holds the pid of the server that owns the directory, under an
//!   exclusive `flock` that the kernel releases when that server exits.
//!
//! Writes go to a temporary file that is synced and renamed over the old
//! one, so a crash leaves either the old or the new state.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rustix::fs::{flock, FlockOperation};
use vtpm_frame::{Frame, FrameWriter};
use zeroize::Zeroizing;

use crate::ServerError;

const MAGIC: [u8; 8] = *b"vTPMsrv\0";
const VERSION: u16 = 1;
/// Section: the state in the clear.
const TAG_PLAIN: u16 = 1;
/// Section: nonce (12) then AES-256-GCM ciphertext and tag.
const TAG_SEALED: u16 = 2;
const NONCE_LEN: usize = 12;
/// The largest state file read back; a larger one is refused, not loaded.
pub const MAX_STATE_FILE: u64 = 16 << 20;

/// Which state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The TPM's state as of its last change.
    Permanent,
    /// The state saved by STORE_VOLATILE.
    Volatile,
}

impl Slot {
    fn file_name(self) -> &'static str {
        match self {
            Self::Permanent => "permanent",
            Self::Volatile => "volatile",
        }
    }
}

/// A 256-bit key for the state at rest.
pub struct StateKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(32 bytes)")
    }
}

impl StateKey {
    /// A key from 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Reads a key file: exactly 32 raw bytes, or 64 hexadecimal digits
    /// (surrounding whitespace ignored).
    pub fn from_file(path: &Path) -> Result<Self, ServerError> {
        let mut text = Zeroizing::new(Vec::new());
        File::open(path)
            .and_then(|f| f.take(256).read_to_end(&mut text))
            .map_err(|e| ServerError::io(format!("reading the key file {}", path.display()), e))?;
        let mut key = Zeroizing::new([0u8; 32]);
        if text.len() == 32 {
            key.copy_from_slice(&text);
            return Ok(Self(key));
        }
        let trimmed = text.trim_ascii();
        if trimmed.len() == 64 {
            for (i, pair) in trimmed.chunks(2).enumerate() {
                let hi = hex_digit(pair[0]);
                let lo = hex_digit(pair[1]);
                match (hi, lo) {
                    (Some(h), Some(l)) => key[i] = h << 4 | l,
                    _ => return Err(ServerError::KeyFile(path.to_path_buf())),
                }
            }
            return Ok(Self(key));
        }
        Err(ServerError::KeyFile(path.to_path_buf()))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// An owned state directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    key: Option<StateKey>,
    /// Held for the store's lifetime: the flock lives as long as the file.
    _lock: File,
}

impl Store {
    /// Takes the directory (creating it when missing). Fails with
    /// [`ServerError::StateDirInUse`] naming the holder's pid when another
    /// server owns it.
    pub fn open(dir: &Path, key: Option<StateKey>) -> Result<Self, ServerError> {
        // The state holds the TPM's seeds: owner-only, like swtpm's.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| ServerError::io(format!("creating {}", dir.display()), e))?;
        let lock_path = dir.join("lock");
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| ServerError::io(format!("opening {}", lock_path.display()), e))?;
        if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_err() {
            let mut holder = String::new();
            let _ = lock.take(32).read_to_string(&mut holder);
            return Err(ServerError::StateDirInUse {
                dir: dir.to_path_buf(),
                holder: holder.trim().to_string(),
            });
        }
        lock.set_len(0)
            .and_then(|()| lock.write_all(format!("{}\n", std::process::id()).as_bytes()))
            .and_then(|()| lock.sync_all())
            .map_err(|e| ServerError::io(format!("writing {}", lock_path.display()), e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            key,
            _lock: lock,
        })
    }

    /// True when the state is encrypted at rest.
    pub fn encrypts(&self) -> bool {
        self.key.is_some()
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The contents of `slot`, or `None` when it has never been written.
    pub fn load(&self, slot: Slot) -> Result<Option<Zeroizing<Vec<u8>>>, ServerError> {
        let path = self.dir.join(slot.file_name());
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ServerError::io(format!("opening {}", path.display()), e)),
        };
        let mut blob = Zeroizing::new(Vec::new());
        file.take(MAX_STATE_FILE + 1)
            .read_to_end(&mut blob)
            .map_err(|e| ServerError::io(format!("reading {}", path.display()), e))?;
        if blob.len() as u64 > MAX_STATE_FILE {
            return Err(ServerError::StateFile {
                path,
                reason: format!("larger than {MAX_STATE_FILE} bytes"),
            });
        }
        self.decode(slot, &blob)
            .map(Some)
            .map_err(|reason| ServerError::StateFile { path, reason })
    }

    /// Replaces `slot` with `state`.
    pub fn save(&self, slot: Slot, state: &[u8]) -> Result<(), ServerError> {
        let blob = self.encode(slot, state)?;
        let path = self.dir.join(slot.file_name());
        let tmp = self.dir.join(format!(".{}.tmp", slot.file_name()));
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&blob)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| ServerError::io(format!("writing {}", path.display()), e))
    }

    /// Deletes `slot` (nothing to do when it is absent).
    pub fn remove(&self, slot: Slot) -> Result<(), ServerError> {
        let path = self.dir.join(slot.file_name());
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ServerError::io(format!("removing {}", path.display()), e)),
        }
    }

    fn encode(&self, slot: Slot, state: &[u8]) -> Result<Zeroizing<Vec<u8>>, ServerError> {
        let mut w = FrameWriter::with_capacity(MAGIC, VERSION, state.len() + 64);
        let framed = match &self.key {
            None => w.section(TAG_PLAIN, |s| s.bytes(state)),
            Some(key) => {
                let mut nonce = [0u8; NONCE_LEN];
                getrandom::fill(&mut nonce).map_err(|e| {
                    ServerError::io("drawing a nonce", std::io::Error::other(e.to_string()))
                })?;
                let cipher = Aes256Gcm::new_from_slice(&key.0[..]).expect("32-byte key");
                let sealed = cipher
                    .encrypt(
                        Nonce::from_slice(&nonce),
                        Payload {
                            msg: state,
                            aad: slot.file_name().as_bytes(),
                        },
                    )
                    .map_err(|_| ServerError::Encryption)?;
                w.section(TAG_SEALED, |s| {
                    s.raw(&nonce);
                    s.bytes(&sealed);
                })
            }
        };
        framed.map_err(|e| ServerError::Frame(e.to_string()))?;
        Ok(w.finish())
    }

    fn decode(&self, slot: Slot, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
        let frame = Frame::parse(&MAGIC, blob).map_err(|e| e.to_string())?;
        if frame.version() != VERSION {
            return Err(format!("version {} is not supported", frame.version()));
        }
        let [plain, sealed] = frame
            .known_sections([TAG_PLAIN, TAG_SEALED])
            .map_err(|e| e.to_string())?;
        match (&self.key, plain, sealed) {
            (None, Some(mut s), None) => {
                let state = Zeroizing::new(s.bytes().map_err(|e| e.to_string())?.to_vec());
                s.finish().map_err(|e| e.to_string())?;
                Ok(state)
            }
            (Some(key), None, Some(mut s)) => {
                let nonce = s.take(NONCE_LEN).map_err(|e| e.to_string())?;
                let sealed = s.bytes().map_err(|e| e.to_string())?;
                s.finish().map_err(|e| e.to_string())?;
                let cipher = Aes256Gcm::new_from_slice(&key.0[..]).expect("32-byte key");
                cipher
                    .decrypt(
                        Nonce::from_slice(nonce),
                        Payload {
                            msg: sealed,
                            aad: slot.file_name().as_bytes(),
                        },
                    )
                    .map(Zeroizing::new)
                    .map_err(|_| "cannot be decrypted with this key (wrong key or tampered)".into())
            }
            (None, None, Some(_)) => {
                Err("is encrypted; give the --key-file it was written with".into())
            }
            (Some(_), Some(_), None) => Err("is not encrypted but a key was given".into()),
            _ => Err("holds no state section".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_slot_loads_back_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), None).unwrap();
        assert!(store.load(Slot::Volatile).unwrap().is_none());
        store.save(Slot::Volatile, b"state").unwrap();
        assert_eq!(&store.load(Slot::Volatile).unwrap().unwrap()[..], b"state");
        store.remove(Slot::Volatile).unwrap();
        assert!(store.load(Slot::Volatile).unwrap().is_none());
    }

    #[test]
    fn encrypted_state_needs_the_same_key_and_is_not_stored_in_the_clear() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Some(StateKey::from_bytes([7; 32]))).unwrap();
        store.save(Slot::Permanent, b"secret seeds here").unwrap();
        let raw = std::fs::read(dir.path().join("permanent")).unwrap();
        assert!(!raw.windows(12).any(|w| w == b"secret seeds"));
        assert_eq!(
            &store.load(Slot::Permanent).unwrap().unwrap()[..],
            b"secret seeds here"
        );
        drop(store);
        let wrong = Store::open(dir.path(), Some(StateKey::from_bytes([8; 32]))).unwrap();
        let err = wrong.load(Slot::Permanent).unwrap_err().to_string();
        assert!(err.contains("wrong key"), "{err}");
        drop(wrong);
        let clear = Store::open(dir.path(), None).unwrap();
        assert!(clear.load(Slot::Permanent).is_err());
    }

    #[test]
    fn a_blob_saved_as_one_slot_does_not_decrypt_as_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Some(StateKey::from_bytes([1; 32]))).unwrap();
        store.save(Slot::Volatile, b"v").unwrap();
        std::fs::copy(dir.path().join("volatile"), dir.path().join("permanent")).unwrap();
        assert!(store.load(Slot::Permanent).is_err());
    }

    #[test]
    fn state_files_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let store = Store::open(&state, None).unwrap();
        store.save(Slot::Permanent, b"seeds").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join("permanent")), 0o600);
        assert_eq!(mode(&state.join("lock")), 0o600);
    }

    #[test]
    fn a_second_store_on_one_directory_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path(), None).unwrap();
        let err = Store::open(dir.path(), None).unwrap_err();
        match &err {
            ServerError::StateDirInUse { holder, .. } => {
                assert_eq!(holder, &std::process::id().to_string())
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn a_hex_key_file_and_a_raw_key_file_give_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        let hex = dir.path().join("hex");
        std::fs::write(&raw, [0xab; 32]).unwrap();
        std::fs::write(&hex, format!("{}\n", "ab".repeat(32))).unwrap();
        let a = StateKey::from_file(&raw).unwrap();
        let b = StateKey::from_file(&hex).unwrap();
        assert_eq!(*a.0, *b.0);
        std::fs::write(&hex, "short").unwrap();
        assert!(StateKey::from_file(&hex).is_err());
    }
}
