//! Saving and restoring the whole simulator state as a versioned blob.
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! magic "vTPMsim\0" (8) | version u16 | body length u32 | body | SHA-256 of everything before (32)
//! ```
//!
//! Body, version 1: flags u8 (started, established, Shutdown(STATE) record
//! present), the four hierarchy seeds (endorsement, owner, platform, NULL;
//! 64 bytes each), the owner, endorsement, lockout and platform
//! authorization values (TPM2B each), the PCRs, the recorded PCRs when
//! present, then the loaded objects: a count u8 and per object its slot u8,
//! hierarchy u32, TPMT_PUBLIC (TPM2B), qualified name (TPM2B), and a
//! TPMT_SENSITIVE (TPM2B, empty for a public key loaded alone).
//!
//! The blob holds the seeds in the clear: store it as carefully as the
//! TPM's non-volatile memory.

use sha2::{Digest, Sha256};
use vtpm_wire::Reader;

use crate::crypto::constant_time_eq;
use crate::object::{Object, Public, Sensitive};
use crate::pcr::Pcrs;
use crate::unmarshal::{In, Out};
use crate::{Permanent, Sim, SEED_SIZE, TRANSIENT_SLOTS};

/// The first bytes of every state blob.
pub(crate) const MAGIC: [u8; 8] = *b"vTPMsim\0";
/// The version this build writes and reads.
pub(crate) const VERSION: u16 = 1;
const CHECKSUM_SIZE: usize = 32;
const PREFIX_SIZE: usize = 8 + 2 + 4;

const FLAG_STARTED: u8 = 1 << 0;
const FLAG_ESTABLISHED: u8 = 1 << 1;
const FLAG_SAVED_PCRS: u8 = 1 << 2;

/// A state blob that cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The blob does not start with the simulator's magic.
    #[error("not a vtpm-sim state blob (bad magic)")]
    BadMagic,
    /// The blob was written by a version this build does not read.
    #[error("state blob version {0} is not supported (this build reads version 1)")]
    UnsupportedVersion(u16),
    /// The blob is shorter than its own header says.
    #[error("state blob is truncated")]
    Truncated,
    /// The blob's length disagrees with its header.
    #[error("state blob declares a {declared}-byte body but holds {actual} bytes")]
    LengthMismatch {
        /// Body length from the header.
        declared: usize,
        /// Bytes present for the body and checksum.
        actual: usize,
    },
    /// The checksum does not match: the blob is corrupted.
    #[error("state blob checksum mismatch (corrupted)")]
    Checksum,
    /// The body is inconsistent.
    #[error("malformed state blob: {0}")]
    Malformed(&'static str),
}

pub(crate) fn save(sim: &Sim) -> Vec<u8> {
    let mut body = Vec::with_capacity(4096);
    let mut flags = 0;
    if sim.started {
        flags |= FLAG_STARTED;
    }
    if sim.permanent.established {
        flags |= FLAG_ESTABLISHED;
    }
    if sim.saved_pcrs.is_some() {
        flags |= FLAG_SAVED_PCRS;
    }
    body.put_u8(flags);
    body.extend_from_slice(&sim.permanent.endorsement_seed);
    body.extend_from_slice(&sim.permanent.owner_seed);
    body.extend_from_slice(&sim.permanent.platform_seed);
    body.extend_from_slice(&sim.null_seed);
    body.put_tpm2b(&sim.permanent.owner_auth);
    body.put_tpm2b(&sim.permanent.endorsement_auth);
    body.put_tpm2b(&sim.permanent.lockout_auth);
    body.put_tpm2b(&sim.platform_auth);
    body.extend_from_slice(&sim.pcrs.to_bytes());
    if let Some(saved) = &sim.saved_pcrs {
        body.extend_from_slice(&saved.to_bytes());
    }
    let loaded: Vec<(usize, &Object)> = sim
        .objects
        .iter()
        .enumerate()
        .filter_map(|(slot, o)| o.as_ref().map(|o| (slot, o)))
        .collect();
    body.put_u8(loaded.len() as u8);
    for (slot, object) in loaded {
        body.put_u8(slot as u8);
        body.put_u32(object.hierarchy);
        body.put_tpm2b(&object.public.to_bytes());
        body.put_tpm2b(&object.qualified_name);
        match &object.sensitive {
            Some(s) => body.put_tpm2b(&s.to_bytes(object.public.kind.type_alg())),
            None => body.put_tpm2b(&[]),
        }
    }

    let mut blob = Vec::with_capacity(PREFIX_SIZE + body.len() + CHECKSUM_SIZE);
    blob.extend_from_slice(&MAGIC);
    blob.put_u16(VERSION);
    blob.put_u32(body.len() as u32);
    blob.extend_from_slice(&body);
    zeroize::Zeroize::zeroize(&mut body);
    let checksum = Sha256::digest(&blob);
    blob.extend_from_slice(&checksum);
    blob
}

/// Everything a blob restores, parsed in full before anything changes.
struct Restored {
    started: bool,
    permanent: Permanent,
    null_seed: [u8; SEED_SIZE],
    platform_auth: Vec<u8>,
    pcrs: Pcrs,
    saved_pcrs: Option<Pcrs>,
    objects: Vec<Option<Object>>,
}

pub(crate) fn restore(sim: &mut Sim, blob: &[u8]) -> Result<(), StateError> {
    let body = check_envelope(blob)?;
    let r = parse_body(body)?;
    sim.started = r.started;
    sim.permanent = r.permanent;
    sim.null_seed = r.null_seed;
    sim.platform_auth = r.platform_auth;
    sim.pcrs = r.pcrs;
    sim.saved_pcrs = r.saved_pcrs;
    sim.objects = r.objects;
    Ok(())
}

/// Checks magic, version, length and checksum; returns the body.
fn check_envelope(blob: &[u8]) -> Result<&[u8], StateError> {
    let mut r = Reader::new(blob);
    let magic = r.bytes(MAGIC.len()).map_err(|_| StateError::Truncated)?;
    if magic != MAGIC {
        return Err(StateError::BadMagic);
    }
    let version = r.u16().map_err(|_| StateError::Truncated)?;
    if version != VERSION {
        return Err(StateError::UnsupportedVersion(version));
    }
    let declared = r.u32().map_err(|_| StateError::Truncated)? as usize;
    let actual = r.remaining();
    if declared.checked_add(CHECKSUM_SIZE) != Some(actual) {
        return Err(if actual < declared.saturating_add(CHECKSUM_SIZE) {
            StateError::Truncated
        } else {
            StateError::LengthMismatch { declared, actual }
        });
    }
    let (covered, checksum) = blob.split_at(PREFIX_SIZE + declared);
    if !constant_time_eq(&Sha256::digest(covered), checksum) {
        return Err(StateError::Checksum);
    }
    Ok(&covered[PREFIX_SIZE..])
}

fn malformed(what: &'static str) -> impl Fn(vtpm_wire::ResponseCode) -> StateError {
    move |_| StateError::Malformed(what)
}

fn seed(r: &mut In<'_>) -> Result<[u8; SEED_SIZE], StateError> {
    let bytes = r.bytes(SEED_SIZE).map_err(malformed("seed"))?;
    let mut out = [0u8; SEED_SIZE];
    out.copy_from_slice(bytes);
    Ok(out)
}

fn parse_body(body: &[u8]) -> Result<Restored, StateError> {
    let mut r = In::new(body);
    let flags = r.u8().map_err(malformed("flags"))?;
    if flags & !(FLAG_STARTED | FLAG_ESTABLISHED | FLAG_SAVED_PCRS) != 0 {
        return Err(StateError::Malformed("unknown flags"));
    }
    let endorsement_seed = seed(&mut r)?;
    let owner_seed = seed(&mut r)?;
    let platform_seed = seed(&mut r)?;
    let null_seed = seed(&mut r)?;
    let mut auth = || -> Result<Vec<u8>, StateError> {
        Ok(r.tpm2b(64)
            .map_err(malformed("authorization value"))?
            .to_vec())
    };
    let owner_auth = auth()?;
    let endorsement_auth = auth()?;
    let lockout_auth = auth()?;
    let platform_auth = auth()?;
    let mut pcrs = || -> Result<Pcrs, StateError> {
        let bytes = r.bytes(Pcrs::SERIALIZED_SIZE).map_err(malformed("PCRs"))?;
        Pcrs::from_bytes(bytes).ok_or(StateError::Malformed("PCRs"))
    };
    let current = pcrs()?;
    let saved_pcrs = if flags & FLAG_SAVED_PCRS != 0 {
        Some(pcrs()?)
    } else {
        None
    };
    let count = usize::from(r.u8().map_err(malformed("object count"))?);
    if count > TRANSIENT_SLOTS {
        return Err(StateError::Malformed("too many objects"));
    }
    let mut objects: Vec<Option<Object>> = vec![None; TRANSIENT_SLOTS];
    for _ in 0..count {
        let slot = usize::from(r.u8().map_err(malformed("object slot"))?);
        if slot >= TRANSIENT_SLOTS || objects[slot].is_some() {
            return Err(StateError::Malformed("object slot"));
        }
        let hierarchy = r.u32().map_err(malformed("object hierarchy"))?;
        if !crate::command::is_hierarchy(hierarchy) {
            return Err(StateError::Malformed("object hierarchy"));
        }
        let (public, _) = r
            .sized(crate::object::MAX_PUBLIC, Public::read)
            .map_err(malformed("public area"))?;
        let qualified_name = r
            .tpm2b(2 + crate::object::MAX_DIGEST)
            .map_err(malformed("qualified name"))?
            .to_vec();
        let sensitive_bytes = r.tpm2b(1024).map_err(malformed("sensitive area"))?;
        let sensitive = if sensitive_bytes.is_empty() {
            None
        } else {
            let mut s = In::new(sensitive_bytes);
            let sensitive =
                Sensitive::read(&mut s, &public).map_err(malformed("sensitive area"))?;
            s.done().map_err(malformed("sensitive area"))?;
            Some(sensitive)
        };
        let name = public.name();
        objects[slot] = Some(Object {
            public,
            name,
            qualified_name,
            hierarchy,
            sensitive,
        });
    }
    r.done().map_err(malformed("trailing bytes"))?;
    Ok(Restored {
        started: flags & FLAG_STARTED != 0,
        permanent: Permanent {
            endorsement_seed,
            owner_seed,
            platform_seed,
            owner_auth,
            endorsement_auth,
            lockout_auth,
            established: flags & FLAG_ESTABLISHED != 0,
        },
        null_seed,
        platform_auth,
        pcrs: current,
        saved_pcrs,
        objects,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimConfig;

    fn sim() -> Sim {
        Sim::new(SimConfig {
            rng_seed: Some([1; 32]),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn envelope_errors_are_typed() {
        let s = sim();
        let blob = s.save_state();
        let mut t = sim();
        assert_eq!(t.restore_state(&blob[..5]), Err(StateError::Truncated));
        assert_eq!(
            t.restore_state(&blob[..blob.len() - 1]),
            Err(StateError::Truncated)
        );
        let mut longer = blob.clone();
        longer.push(0);
        assert!(matches!(
            t.restore_state(&longer),
            Err(StateError::LengthMismatch { .. })
        ));
        let mut bad = blob.clone();
        bad[0] ^= 1;
        assert_eq!(t.restore_state(&bad), Err(StateError::BadMagic));
        let mut bad = blob.clone();
        bad[9] = 2;
        assert_eq!(
            t.restore_state(&bad),
            Err(StateError::UnsupportedVersion(2))
        );
        let mut bad = blob.clone();
        bad[20] ^= 0x40;
        assert_eq!(t.restore_state(&bad), Err(StateError::Checksum));
        assert!(t.restore_state(&blob).is_ok());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let blob = sim().save_state();
        let mut t = sim();
        for n in 0..blob.len() {
            assert!(t.restore_state(&blob[..n]).is_err(), "prefix of {n} bytes");
        }
    }

    #[test]
    fn a_well_sealed_but_malformed_body_is_rejected() {
        let mut body = vec![0xF0u8];
        body.extend_from_slice(&[0; 10]);
        let mut blob = MAGIC.to_vec();
        blob.put_u16(VERSION);
        blob.put_u32(body.len() as u32);
        blob.extend_from_slice(&body);
        let checksum = Sha256::digest(&blob);
        blob.extend_from_slice(&checksum);
        assert_eq!(
            sim().restore_state(&blob),
            Err(StateError::Malformed("unknown flags"))
        );
    }
}
