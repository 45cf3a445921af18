//! The saved-platform blob (on vtpm-frame) and its optional sealing with
//! AES-256-GCM.

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use vtpm_frame::{Frame, FrameWriter, PREAMBLE_LEN};
use zeroize::Zeroizing;

use crate::{Interface, PlatformError};

/// First bytes of a saved platform.
pub const PLATFORM_MAGIC: [u8; 8] = *b"VTPMPLAT";
/// Version of the saved-platform format written now. Version 3 adds the
/// interface section; versions 2 and 1 (before vtpm-frame) hold a CRB
/// device and still load.
pub const PLATFORM_VERSION: u16 = 3;
/// First bytes of a sealed saved platform.
pub const SEALED_MAGIC: [u8; 8] = *b"VTPMSEAL";
/// Version of the sealed format.
pub const SEALED_VERSION: u16 = 1;

/// Section tags of a saved platform.
mod tag {
    pub const DEVICE: u16 = 1;
    pub const BACKEND_NAME: u16 = 2;
    pub const BACKEND_STATE: u16 = 3;
    pub const INTERFACE: u16 = 4;
    /// The window's guest RAM, when the platform maps it (version 3,
    /// optional).
    pub const WINDOW_RAM: u16 = 5;
}

/// The interface section's byte.
fn interface_code(interface: Interface) -> u8 {
    match interface {
        Interface::Crb => 0,
        Interface::Tis => 1,
    }
}

/// Section tags of a sealed platform.
mod sealed_tag {
    pub const NONCE: u16 = 1;
    pub const CIPHERTEXT: u16 = 2;
}

const NONCE_LEN: usize = 12;

/// The parts of a saved platform.
pub(crate) struct SavedPlatform<'a> {
    /// The device's interface.
    pub(crate) interface: Interface,
    /// The device snapshot (of `interface`).
    pub(crate) device: &'a [u8],
    /// [`vtpm_backend::Backend::name`] of the backend saved.
    pub(crate) backend: &'a str,
    /// The backend's state blob.
    pub(crate) backend_state: &'a [u8],
    /// The window's guest RAM, for a platform that maps it.
    pub(crate) window_ram: Option<&'a [u8]>,
}

impl<'a> SavedPlatform<'a> {
    /// The blob, zeroed on drop: it carries the TPM's state.
    pub(crate) fn write(&self) -> Result<Zeroizing<Vec<u8>>, PlatformError> {
        let Self {
            interface,
            device,
            backend,
            backend_state,
            window_ram,
        } = self;
        let ram_len = window_ram.map_or(0, <[u8]>::len);
        let size = device.len() + backend.len() + backend_state.len() + ram_len + 4 * 10;
        let mut w = FrameWriter::with_capacity(PLATFORM_MAGIC, PLATFORM_VERSION, size);
        w.section(tag::INTERFACE, |s| s.u8(interface_code(*interface)))?;
        w.section(tag::DEVICE, |s| s.raw(device))?;
        w.section(tag::BACKEND_NAME, |s| s.raw(backend.as_bytes()))?;
        w.section(tag::BACKEND_STATE, |s| s.raw(backend_state))?;
        if let Some(ram) = window_ram {
            w.section(tag::WINDOW_RAM, |s| s.raw(ram))?;
        }
        Ok(w.finish())
    }

    /// Reads a blob of version 1, 2 or 3. A sealed blob is
    /// [`PlatformError::Sealed`].
    pub(crate) fn parse(saved: &'a [u8]) -> Result<Self, PlatformError> {
        if saved.starts_with(&SEALED_MAGIC) {
            return Err(PlatformError::Sealed);
        }
        let frame = Frame::parse(&PLATFORM_MAGIC, saved)?;
        match frame.version() {
            1 => Self::parse_v1(&saved[PREAMBLE_LEN..saved.len() - vtpm_frame::CHECKSUM_LEN]),
            version @ (2 | 3) => {
                let [interface, device, name, state, ram] = frame.known_sections([
                    tag::INTERFACE,
                    tag::DEVICE,
                    tag::BACKEND_NAME,
                    tag::BACKEND_STATE,
                    tag::WINDOW_RAM,
                ])?;
                let interface = match (version, interface) {
                    (2, None) => Interface::Crb,
                    (2, Some(_)) => {
                        return Err(PlatformError::Format("interface section in version 2"))
                    }
                    (_, None) => return Err(PlatformError::Format("no interface section")),
                    (_, Some(mut s)) => {
                        let code = s.u8()?;
                        s.finish()?;
                        match code {
                            0 => Interface::Crb,
                            1 => Interface::Tis,
                            _ => return Err(PlatformError::Format("unknown interface")),
                        }
                    }
                };
                let whole = |s: Option<vtpm_frame::SectionReader<'a>>, what| {
                    let mut s = s.ok_or(PlatformError::Format(what))?;
                    Ok::<_, PlatformError>(s.take(s.remaining())?)
                };
                let device = whole(device, "no device section")?;
                let name = whole(name, "no backend name section")?;
                let backend_state = whole(state, "no backend state section")?;
                let window_ram = ram.map(|r| whole(Some(r), "")).transpose()?;
                Ok(Self {
                    interface,
                    device,
                    backend: std::str::from_utf8(name)
                        .map_err(|_| PlatformError::Format("backend name is not UTF-8"))?,
                    backend_state,
                    window_ram,
                })
            }
            _ => Err(PlatformError::Format("unsupported version")),
        }
    }

    /// Version 1: `u32 len | device | u8 len | name | u32 len | state`,
    /// between the preamble and the CRC (both checked by the caller).
    fn parse_v1(mut rest: &'a [u8]) -> Result<Self, PlatformError> {
        let mut take = |n: usize| -> Result<&'a [u8], PlatformError> {
            if rest.len() < n {
                return Err(PlatformError::Format("truncated"));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let len = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let n = len(take(4)?);
        let device = take(n)?;
        let n = usize::from(take(1)?[0]);
        let name = take(n)?;
        let n = len(take(4)?);
        let backend_state = take(n)?;
        if !rest.is_empty() {
            return Err(PlatformError::Format("trailing bytes"));
        }
        Ok(Self {
            interface: Interface::Crb,
            device,
            backend: std::str::from_utf8(name)
                .map_err(|_| PlatformError::Format("backend name is not UTF-8"))?,
            backend_state,
            window_ram: None,
        })
    }
}

/// A caller's 256-bit key for sealing saved platforms (AES-256-GCM).
/// Zeroed on drop; `Debug` never shows it.
pub struct SealingKey(Zeroizing<[u8; 32]>);

impl SealingKey {
    /// A key from its 32 bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

/// The magic and version that open a sealed blob: authenticated as the
/// associated data, so neither can be changed.
fn sealed_header() -> [u8; PREAMBLE_LEN] {
    let mut h = [0u8; PREAMBLE_LEN];
    h[..8].copy_from_slice(&SEALED_MAGIC);
    h[8..].copy_from_slice(&SEALED_VERSION.to_le_bytes());
    h
}

/// Encrypts and authenticates `plain` under `key` with a fresh random
/// nonce.
pub(crate) fn seal(plain: &[u8], key: &SealingKey) -> Result<Zeroizing<Vec<u8>>, PlatformError> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0[..]));
    let mut nonce = [0u8; NONCE_LEN];
    OsRng
        .try_fill_bytes(&mut nonce)
        .map_err(|e| PlatformError::Seal(e.to_string()))?;
    let header = sealed_header();
    let ciphertext = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: &header,
            },
        )
        .map_err(|_| PlatformError::Seal("the platform blob is too large".into()))?;
    let mut w = FrameWriter::with_capacity(SEALED_MAGIC, SEALED_VERSION, ciphertext.len() + 32);
    w.section(sealed_tag::NONCE, |s| s.raw(&nonce))?;
    w.section(sealed_tag::CIPHERTEXT, |s| s.raw(&ciphertext))?;
    Ok(w.finish())
}

/// Checks and decrypts a blob from [`seal`].
pub(crate) fn unseal(sealed: &[u8], key: &SealingKey) -> Result<Zeroizing<Vec<u8>>, PlatformError> {
    if !sealed.starts_with(&SEALED_MAGIC) {
        return Err(PlatformError::NotSealed);
    }
    let frame = Frame::parse(&SEALED_MAGIC, sealed)?;
    if frame.version() != SEALED_VERSION {
        return Err(PlatformError::Format("unsupported sealed version"));
    }
    let [nonce, ciphertext] = frame.known_sections([sealed_tag::NONCE, sealed_tag::CIPHERTEXT])?;
    let mut nonce = nonce.ok_or(PlatformError::Format("no nonce section"))?;
    let nonce_bytes = nonce.take(NONCE_LEN)?;
    nonce.finish()?;
    let mut ciphertext = ciphertext.ok_or(PlatformError::Format("no ciphertext section"))?;
    let ciphertext = ciphertext.take(ciphertext.remaining())?;
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0[..]));
    let header = sealed_header();
    let plain = cipher
        .decrypt(
            Nonce::from_slice(nonce_bytes),
            Payload {
                msg: ciphertext,
                aad: &header,
            },
        )
        .map_err(|_| PlatformError::Unseal)?;
    Ok(Zeroizing::new(plain))
}
