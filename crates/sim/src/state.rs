//! Saving and restoring the whole simulator state as an authenticated blob.
//!
//! Version 2 (written now) is two nested `vtpm-frame` frames:
//!
//! ```text
//! outer frame "vTPMsim\0", version 2
//!   section 1 SEALED: the inner frame (bytes)
//!   section 2 MAC:    key kind u8 (0 default key, 1 caller's key) | HMAC-SHA-256 (32)
//! inner frame "vTPMsimS", version 2
//!   section 1 FLAGS:   started, established (flags)
//!   section 2 SEEDS:   endorsement, owner, platform, NULL seeds (64 bytes each)
//!   section 3 AUTH:    owner, endorsement, lockout, platform authValues (bytes)
//!   section 4 PCRS:    current PCRs (bytes) | Shutdown(STATE) record present (flag) [| record (bytes)]
//!   section 5 OBJECTS: count u8 | per object: slot u8, hierarchy u32,
//!                      TPMT_PUBLIC (bytes), qualified name (bytes),
//!                      TPMT_SENSITIVE (bytes, empty for a public key loaded alone)
//!   section 6 SEQUENCES (optional; absent in blobs written before it):
//!                      count u8 | per sequence: slot u8, verify flag,
//!                      one-shot flag, key handle u32, key name (bytes),
//!                      authValue (bytes), context (bytes), message (bytes)
//!   section 7 STARTUP (optional; absent in blobs written before it, which
//!                      restore as start-ups from locality 0):
//!                      current start-up came from locality 3 (flag) |
//!                      the Shutdown(STATE) record's start-up did (flag;
//!                      false without a record)
//! ```
//!
//! The MAC is `HMAC-SHA-256(key, "vtpm-sim state" ‖ version u16 LE ‖ key kind ‖ inner)`.
//! It is checked before anything inside is parsed; then every loaded
//! object's private area must produce its public key (TPM2_Load's
//! TPM_RC_BINDING check), whatever key sealed the blob.
//!
//! Version 1 (read only): `"vTPMsim\0" | version u16 BE (1) | body length
//! u32 | body | SHA-256 of all before`, with the same fields in a single
//! big-endian body; see [`parse_v1_body`].

use sha2::{Digest, Sha256};
use vtpm_frame::{Frame, FrameError, FrameWriter, SectionReader};
use vtpm_wire::{Reader, ResponseCode};
use zeroize::Zeroizing;

use crate::command::sequence::{Sequence, SEQUENCE_SLOTS};
use crate::crypto::{secrets_equal, HashAlg};
use crate::object::{Object, Public, Sensitive, MAX_DIGEST, MAX_PUBLIC};
use crate::pcr::Pcrs;
use crate::unmarshal::In;
use crate::{Permanent, Sim, SEED_SIZE, TRANSIENT_SLOTS};

/// The first bytes of every state blob, both versions.
pub(crate) const MAGIC: [u8; 8] = *b"vTPMsim\0";
/// The magic of the inner (sealed) frame of version 2.
const INNER_MAGIC: [u8; 8] = *b"vTPMsimS";
/// The version this build writes.
pub(crate) const VERSION: u16 = 2;
/// Version 1 stored its version big-endian right after the magic.
const V1_VERSION_BYTES: [u8; 2] = [0, 1];

/// The key used when the configuration supplies none. It is public (it is
/// this constant), so it makes the MAC a checksum against accidents, not a
/// proof against tampering; a fixed value keeps blobs portable between
/// processes and hosts without any configuration.
const DEFAULT_KEY: [u8; 32] = *b"vtpm-sim: no state key supplied!";
/// Domain separation of the MAC input.
const MAC_LABEL: &[u8] = b"vtpm-sim state";
const MAC_SIZE: usize = 32;

const KIND_DEFAULT_KEY: u8 = 0;
const KIND_CALLER_KEY: u8 = 1;

mod outer {
    pub(super) const SEALED: u16 = 1;
    pub(super) const MAC: u16 = 2;
}
mod inner {
    pub(super) const FLAGS: u16 = 1;
    pub(super) const SEEDS: u16 = 2;
    pub(super) const AUTH: u16 = 3;
    pub(super) const PCRS: u16 = 4;
    pub(super) const OBJECTS: u16 = 5;
    pub(super) const SEQUENCES: u16 = 6;
    pub(super) const STARTUP: u16 = 7;
}

/// Largest authValue in a blob: a SHA-512 digest.
const MAX_AUTH: usize = MAX_DIGEST;
/// Largest TPMT_SENSITIVE a blob may hold.
const MAX_SENSITIVE: usize = 1024;

/// The 32-byte key that authenticates state blobs (see
/// [`SimConfig::state_key`](crate::SimConfig::state_key)). Wiped when
/// dropped, compared in constant time, never printed.
#[derive(Clone)]
pub struct StateKey(Zeroizing<[u8; 32]>);

impl StateKey {
    /// A key from its 32 bytes.
    pub fn new(key: [u8; 32]) -> Self {
        Self(Zeroizing::new(key))
    }
}

impl PartialEq for StateKey {
    fn eq(&self, other: &Self) -> bool {
        secrets_equal(&*self.0, &*other.0)
    }
}

impl Eq for StateKey {}

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(..)")
    }
}

/// A state blob that cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The blob does not start with the simulator's magic.
    #[error("not a vtpm-sim state blob (bad magic)")]
    BadMagic,
    /// The blob was written by a version this build does not read.
    #[error("state blob version {0} is not supported (this build reads versions 1 and 2)")]
    UnsupportedVersion(u16),
    /// The blob is shorter than its own header says.
    #[error("state blob is truncated")]
    Truncated,
    /// A version-1 blob's length disagrees with its header.
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
    /// The framing is broken in another way.
    #[error("state blob framing is broken")]
    Frame(#[source] FrameError),
    /// The MAC does not match: the blob was altered, or sealed with another key.
    #[error("state blob authentication failed (altered, or sealed with another state key)")]
    Authentication,
    /// The blob was sealed with a state key and this simulator has none.
    #[error("state blob was sealed with a state key; configure the same key to restore it")]
    StateKeyRequired,
    /// This simulator has a state key and the blob was sealed without one
    /// (or is a version-1 blob, which has no MAC at all).
    #[error("state blob is not sealed with this simulator's state key")]
    NotSealedWithStateKey,
    /// A loaded object's private area does not produce its public key
    /// (what TPM2_Load answers with TPM_RC_BINDING).
    #[error(
        "object in slot {slot}: its private area does not match its public area (TPM_RC_BINDING)"
    )]
    Binding {
        /// The object's slot.
        slot: u8,
    },
    /// A loaded object's public area is not one the simulator accepts.
    #[error("object in slot {slot}: invalid public area ({code})")]
    InvalidObject {
        /// The object's slot.
        slot: u8,
        /// What TPM2_Load or TPM2_LoadExternal would answer.
        code: ResponseCode,
    },
    /// The body is inconsistent.
    #[error("malformed state blob: {0}")]
    Malformed(&'static str),
}

impl From<FrameError> for StateError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::BadMagic => Self::BadMagic,
            FrameError::Checksum { .. } => Self::Checksum,
            FrameError::Truncated(_) => Self::Truncated,
            other => Self::Frame(other),
        }
    }
}

fn mac(key: &[u8], kind: u8, sealed: &[u8]) -> Zeroizing<Vec<u8>> {
    HashAlg::Sha256.hmac(key, &[MAC_LABEL, &VERSION.to_le_bytes(), &[kind], sealed])
}

/// The key and its kind that seal and open blobs for `sim`.
fn sealing_key(state_key: &Option<StateKey>) -> (&[u8], u8) {
    match state_key {
        Some(key) => (&*key.0, KIND_CALLER_KEY),
        None => (&DEFAULT_KEY, KIND_DEFAULT_KEY),
    }
}

pub(crate) fn save(sim: &Sim) -> Zeroizing<Vec<u8>> {
    // Every field named: a new one must be saved here or explicitly skipped.
    let Sim {
        buffer_size: _,
        rng: _,
        permanent,
        null_seed,
        platform_auth,
        started,
        saved_pcrs,
        pcrs,
        objects,
        sequences,
        signing_keys: _,
        cancel: _,
        state_key,
    } = sim;
    let Permanent {
        endorsement_seed,
        owner_seed,
        platform_seed,
        owner_auth,
        endorsement_auth,
        lockout_auth,
        established,
    } = permanent;

    let mut w = FrameWriter::with_capacity(INNER_MAGIC, VERSION, 4096);
    // Section bodies are far below 4 GiB (the buffer bounds every object),
    // so the framing cannot refuse them.
    let current = pcrs.to_saved();
    let record = saved_pcrs.as_ref().map(Pcrs::to_saved);
    let sections: [Result<(), FrameError>; 7] = [
        w.section(inner::FLAGS, |s| {
            s.flag(*started);
            s.flag(*established);
        }),
        w.section(inner::SEEDS, |s| {
            s.raw(endorsement_seed);
            s.raw(owner_seed);
            s.raw(platform_seed);
            s.raw(null_seed);
        }),
        w.section(inner::AUTH, |s| {
            s.bytes(owner_auth);
            s.bytes(endorsement_auth);
            s.bytes(lockout_auth);
            s.bytes(platform_auth);
        }),
        w.section(inner::PCRS, |s| {
            s.bytes(&current.values);
            s.flag(record.is_some());
            if let Some(record) = &record {
                s.bytes(&record.values);
            }
        }),
        w.section(inner::STARTUP, |s| {
            s.flag(current.startup_locality3);
            s.flag(record.as_ref().is_some_and(|r| r.startup_locality3));
        }),
        w.section(inner::OBJECTS, |s| {
            let loaded: Vec<(usize, &Object)> = objects
                .iter()
                .enumerate()
                .filter_map(|(slot, o)| o.as_ref().map(|o| (slot, o)))
                .collect();
            s.u8(loaded.len() as u8);
            for (slot, object) in loaded {
                s.u8(slot as u8);
                s.u32(object.hierarchy);
                s.bytes(&object.public.to_bytes());
                s.bytes(&object.qualified_name);
                match &object.sensitive {
                    Some(sensitive) => s.bytes(&sensitive.to_bytes(object.public.kind.type_alg())),
                    None => s.bytes(&[]),
                }
            }
        }),
        w.section(inner::SEQUENCES, |s| {
            let open: Vec<(usize, &Sequence)> = sequences
                .iter()
                .enumerate()
                .filter_map(|(slot, q)| q.as_ref().map(|q| (slot, q)))
                .collect();
            s.u8(open.len() as u8);
            for (slot, sequence) in open {
                let Sequence {
                    verify,
                    one_shot,
                    key_handle,
                    key_name,
                    auth,
                    context,
                    message,
                } = sequence;
                s.u8(slot as u8);
                s.flag(*verify);
                s.flag(*one_shot);
                s.u32(*key_handle);
                s.bytes(key_name);
                s.bytes(auth);
                s.bytes(context);
                s.bytes(message);
            }
        }),
    ];
    debug_assert!(sections.iter().all(Result::is_ok));
    let sealed = w.finish();

    let (key, kind) = sealing_key(state_key);
    let tag = mac(key, kind, &sealed);
    let mut outer = FrameWriter::with_capacity(MAGIC, VERSION, sealed.len() + 64);
    let framed = [
        outer.section(outer::SEALED, |s| s.bytes(&sealed)),
        outer.section(outer::MAC, |s| {
            s.u8(kind);
            s.raw(&tag);
        }),
    ];
    debug_assert!(framed.iter().all(Result::is_ok));
    outer.finish()
}

/// Everything a blob restores, parsed and checked in full before anything
/// changes.
struct Restored {
    started: bool,
    permanent: Permanent,
    null_seed: Zeroizing<[u8; SEED_SIZE]>,
    platform_auth: Zeroizing<Vec<u8>>,
    pcrs: Pcrs,
    saved_pcrs: Option<Pcrs>,
    objects: Vec<Option<Object>>,
    sequences: Vec<Option<Sequence>>,
}

pub(crate) fn restore(sim: &mut Sim, blob: &[u8]) -> Result<(), StateError> {
    let restored = if blob.len() >= 10 && blob[..8] == MAGIC && blob[8..10] == V1_VERSION_BYTES {
        // Version 1 has no MAC: accepting it under a state key would let
        // anyone who can write the blob bypass the key.
        if sim.state_key.is_some() {
            return Err(StateError::NotSealedWithStateKey);
        }
        parse_v1_body(check_v1_envelope(blob)?)?
    } else {
        let sealed = open_v2(blob, &sim.state_key)?;
        parse_v2_inner(sealed)?
    };
    let Restored {
        started,
        permanent,
        null_seed,
        mut platform_auth,
        pcrs,
        saved_pcrs,
        objects,
        sequences,
    } = restored;
    sim.started = started;
    sim.permanent = permanent;
    sim.null_seed = *null_seed;
    sim.platform_auth = std::mem::take(&mut *platform_auth);
    sim.pcrs = pcrs;
    sim.saved_pcrs = saved_pcrs;
    sim.objects = objects;
    sim.sequences = sequences;
    Ok(())
}

/// Checks the outer frame and the MAC; returns the sealed inner frame.
fn open_v2<'a>(blob: &'a [u8], state_key: &Option<StateKey>) -> Result<&'a [u8], StateError> {
    let frame = Frame::parse(&MAGIC, blob)?;
    if frame.version() != VERSION {
        return Err(StateError::UnsupportedVersion(frame.version()));
    }
    let [sealed, tag] = frame.known_sections([outer::SEALED, outer::MAC])?;
    let mut sealed = sealed.ok_or(StateError::Malformed("no sealed state"))?;
    let mut tag = tag.ok_or(StateError::Malformed("no MAC"))?;
    let inner = sealed.bytes()?;
    sealed.finish()?;
    let kind = tag.u8()?;
    let stored = tag.take(MAC_SIZE)?;
    tag.finish()?;
    let (key, expected_kind) = sealing_key(state_key);
    match (kind, expected_kind) {
        (KIND_DEFAULT_KEY, KIND_CALLER_KEY) => return Err(StateError::NotSealedWithStateKey),
        (KIND_CALLER_KEY, KIND_DEFAULT_KEY) => return Err(StateError::StateKeyRequired),
        (k, _) if k != expected_kind => return Err(StateError::Malformed("MAC key kind")),
        _ => {}
    }
    if !secrets_equal(&mac(key, kind, inner), stored) {
        return Err(StateError::Authentication);
    }
    Ok(inner)
}

fn section<'a>(
    found: Option<SectionReader<'a>>,
    what: &'static str,
) -> Result<SectionReader<'a>, StateError> {
    found.ok_or(StateError::Malformed(what))
}

fn seed_from(bytes: &[u8]) -> Zeroizing<[u8; SEED_SIZE]> {
    let mut seed = Zeroizing::new([0u8; SEED_SIZE]);
    seed.copy_from_slice(bytes);
    seed
}

fn auth_from(bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>, StateError> {
    if bytes.len() > MAX_AUTH {
        return Err(StateError::Malformed("authorization value"));
    }
    Ok(Zeroizing::new(bytes.to_vec()))
}

fn pcrs_from(bytes: &[u8]) -> Result<Pcrs, StateError> {
    Pcrs::from_bytes(bytes).ok_or(StateError::Malformed("PCRs"))
}

fn parse_v2_inner(sealed: &[u8]) -> Result<Restored, StateError> {
    let frame = Frame::parse(&INNER_MAGIC, sealed)?;
    if frame.version() != VERSION {
        return Err(StateError::UnsupportedVersion(frame.version()));
    }
    let [flags, seeds, auth, pcrs, objects, sequences, startup] = frame.known_sections([
        inner::FLAGS,
        inner::SEEDS,
        inner::AUTH,
        inner::PCRS,
        inner::OBJECTS,
        inner::SEQUENCES,
        inner::STARTUP,
    ])?;

    let mut flags = section(flags, "no flags section")?;
    let started = flags.flag()?;
    let established = flags.flag()?;
    flags.finish()?;

    let mut seeds = section(seeds, "no seeds section")?;
    let endorsement_seed = seed_from(seeds.take(SEED_SIZE)?);
    let owner_seed = seed_from(seeds.take(SEED_SIZE)?);
    let platform_seed = seed_from(seeds.take(SEED_SIZE)?);
    let null_seed = seed_from(seeds.take(SEED_SIZE)?);
    seeds.finish()?;

    let mut auth = section(auth, "no authorization section")?;
    let owner_auth = auth_from(auth.bytes()?)?;
    let endorsement_auth = auth_from(auth.bytes()?)?;
    let lockout_auth = auth_from(auth.bytes()?)?;
    let platform_auth = auth_from(auth.bytes()?)?;
    auth.finish()?;

    let mut pcr_section = section(pcrs, "no PCR section")?;
    let mut current = pcrs_from(pcr_section.bytes()?)?;
    let mut saved_pcrs = if pcr_section.flag()? {
        Some(pcrs_from(pcr_section.bytes()?)?)
    } else {
        None
    };
    pcr_section.finish()?;
    if let Some(mut startup) = startup {
        current.startup_locality3 = startup.flag()?;
        let record_locality3 = startup.flag()?;
        startup.finish()?;
        match &mut saved_pcrs {
            Some(record) => record.startup_locality3 = record_locality3,
            None if record_locality3 => {
                return Err(StateError::Malformed("start-up locality of no record"))
            }
            None => {}
        }
    }

    let mut list = section(objects, "no objects section")?;
    let count = usize::from(list.u8()?);
    if count > TRANSIENT_SLOTS {
        return Err(StateError::Malformed("too many objects"));
    }
    let mut loaded = Vec::with_capacity(count);
    for _ in 0..count {
        loaded.push(ObjectParts {
            slot: list.u8()?,
            hierarchy: list.u32()?,
            public: list.bytes()?,
            qualified_name: list.bytes()?,
            sensitive: list.bytes()?,
        });
    }
    list.finish()?;
    let objects = objects_from(loaded)?;
    let sequences = match sequences {
        Some(section) => sequences_from(section)?,
        None => empty_sequences(),
    };

    Ok(Restored {
        started,
        permanent: permanent(
            [&endorsement_seed, &owner_seed, &platform_seed],
            [owner_auth, endorsement_auth, lockout_auth],
            established,
        ),
        null_seed,
        platform_auth,
        pcrs: current,
        saved_pcrs,
        objects,
        sequences,
    })
}

fn empty_sequences() -> Vec<Option<Sequence>> {
    (0..SEQUENCE_SLOTS).map(|_| None).collect()
}

/// The open sequences of a blob, each within the bounds the commands keep.
fn sequences_from(mut list: SectionReader<'_>) -> Result<Vec<Option<Sequence>>, StateError> {
    let count = usize::from(list.u8()?);
    if count > SEQUENCE_SLOTS {
        return Err(StateError::Malformed("too many sequences"));
    }
    let mut sequences = empty_sequences();
    for _ in 0..count {
        let slot = usize::from(list.u8()?);
        let sequence = Sequence {
            verify: list.flag()?,
            one_shot: list.flag()?,
            key_handle: list.u32()?,
            key_name: list.bytes()?.to_vec(),
            auth: Zeroizing::new(list.bytes()?.to_vec()),
            context: list.bytes()?.to_vec(),
            message: Zeroizing::new(list.bytes()?.to_vec()),
        };
        if slot >= SEQUENCE_SLOTS || sequences[slot].is_some() || !sequence.is_well_formed() {
            return Err(StateError::Malformed("sequence"));
        }
        sequences[slot] = Some(sequence);
    }
    list.finish()?;
    Ok(sequences)
}

fn permanent(
    [endorsement, owner, platform]: [&[u8; SEED_SIZE]; 3],
    [mut owner_auth, mut endorsement_auth, mut lockout_auth]: [Zeroizing<Vec<u8>>; 3],
    established: bool,
) -> Permanent {
    Permanent {
        endorsement_seed: *endorsement,
        owner_seed: *owner,
        platform_seed: *platform,
        owner_auth: std::mem::take(&mut *owner_auth),
        endorsement_auth: std::mem::take(&mut *endorsement_auth),
        lockout_auth: std::mem::take(&mut *lockout_auth),
        established,
    }
}

/// One saved object, as the blob holds it.
struct ObjectParts<'a> {
    slot: u8,
    hierarchy: u32,
    public: &'a [u8],
    qualified_name: &'a [u8],
    sensitive: &'a [u8],
}

/// The object table from saved objects, each checked as TPM2_Load and
/// TPM2_LoadExternal check theirs.
fn objects_from(parts: Vec<ObjectParts<'_>>) -> Result<Vec<Option<Object>>, StateError> {
    let mut objects: Vec<Option<Object>> = vec![None; TRANSIENT_SLOTS];
    for part in parts {
        let index = usize::from(part.slot);
        if index >= TRANSIENT_SLOTS || objects[index].is_some() {
            return Err(StateError::Malformed("object slot"));
        }
        objects[index] = Some(object_from(part)?);
    }
    Ok(objects)
}

fn object_from(part: ObjectParts<'_>) -> Result<Object, StateError> {
    let slot = part.slot;
    if !crate::command::is_hierarchy(part.hierarchy) {
        return Err(StateError::Malformed("object hierarchy"));
    }
    if part.public.len() > MAX_PUBLIC {
        return Err(StateError::Malformed("public area"));
    }
    let public = {
        let mut r = In::new(part.public);
        let public = Public::read(&mut r).map_err(|_| StateError::Malformed("public area"))?;
        r.done().map_err(|_| StateError::Malformed("public area"))?;
        public
    };
    public
        .check_attributes()
        .map_err(|code| StateError::InvalidObject { slot, code })?;
    if part.qualified_name.len() > 2 + MAX_DIGEST {
        return Err(StateError::Malformed("qualified name"));
    }
    if part.sensitive.len() > MAX_SENSITIVE {
        return Err(StateError::Malformed("sensitive area"));
    }
    let sensitive = if part.sensitive.is_empty() {
        public
            .check_public_key()
            .map_err(|code| StateError::InvalidObject { slot, code })?;
        None
    } else {
        let mut r = In::new(part.sensitive);
        let sensitive = Sensitive::read(&mut r, &public).map_err(|code| {
            if code == ResponseCode::BINDING {
                StateError::Binding { slot }
            } else {
                StateError::Malformed("sensitive area")
            }
        })?;
        r.done()
            .map_err(|_| StateError::Malformed("sensitive area"))?;
        // What TPM2_Load checks: the secret must produce the public key.
        if !sensitive.is_bound_to(&public) {
            return Err(StateError::Binding { slot });
        }
        Some(sensitive)
    };
    let name = public.name();
    Ok(Object {
        public,
        name,
        qualified_name: part.qualified_name.to_vec(),
        hierarchy: part.hierarchy,
        sensitive,
    })
}

// ------------------------------------------------------------- version 1

const V1_CHECKSUM_SIZE: usize = 32;
const V1_PREFIX_SIZE: usize = 8 + 2 + 4;
const V1_FLAG_STARTED: u8 = 1 << 0;
const V1_FLAG_ESTABLISHED: u8 = 1 << 1;
const V1_FLAG_SAVED_PCRS: u8 = 1 << 2;

/// Checks a version-1 blob's length and SHA-256; returns the body.
fn check_v1_envelope(blob: &[u8]) -> Result<&[u8], StateError> {
    let mut r = Reader::new(&blob[V1_PREFIX_SIZE - 4..]);
    let declared = r.u32().map_err(|_| StateError::Truncated)? as usize;
    let actual = r.remaining();
    if declared.checked_add(V1_CHECKSUM_SIZE) != Some(actual) {
        return Err(if actual < declared.saturating_add(V1_CHECKSUM_SIZE) {
            StateError::Truncated
        } else {
            StateError::LengthMismatch { declared, actual }
        });
    }
    let (covered, checksum) = blob.split_at(V1_PREFIX_SIZE + declared);
    if Sha256::digest(covered).as_slice() != checksum {
        return Err(StateError::Checksum);
    }
    Ok(&covered[V1_PREFIX_SIZE..])
}

fn malformed(what: &'static str) -> impl Fn(ResponseCode) -> StateError {
    move |_| StateError::Malformed(what)
}

/// The version-1 body, big-endian: flags u8 (started, established,
/// Shutdown(STATE) record present), the four seeds (endorsement, owner,
/// platform, NULL; 64 bytes each), the owner, endorsement, lockout and
/// platform authValues (TPM2B each), the PCRs, the recorded PCRs when
/// present, then a count u8 and per object its slot u8, hierarchy u32,
/// TPMT_PUBLIC (TPM2B), qualified name (TPM2B) and TPMT_SENSITIVE (TPM2B,
/// empty for a public key loaded alone).
fn parse_v1_body(body: &[u8]) -> Result<Restored, StateError> {
    let mut r = In::new(body);
    let flags = r.u8().map_err(malformed("flags"))?;
    if flags & !(V1_FLAG_STARTED | V1_FLAG_ESTABLISHED | V1_FLAG_SAVED_PCRS) != 0 {
        return Err(StateError::Malformed("unknown flags"));
    }
    let mut seed = || -> Result<Zeroizing<[u8; SEED_SIZE]>, StateError> {
        Ok(seed_from(r.bytes(SEED_SIZE).map_err(malformed("seed"))?))
    };
    let endorsement_seed = seed()?;
    let owner_seed = seed()?;
    let platform_seed = seed()?;
    let null_seed = seed()?;
    let mut auth = || -> Result<Zeroizing<Vec<u8>>, StateError> {
        auth_from(
            r.tpm2b(MAX_AUTH)
                .map_err(malformed("authorization value"))?,
        )
    };
    let owner_auth = auth()?;
    let endorsement_auth = auth()?;
    let lockout_auth = auth()?;
    let platform_auth = auth()?;
    let mut pcrs = || -> Result<Pcrs, StateError> {
        pcrs_from(r.bytes(Pcrs::SERIALIZED_SIZE).map_err(malformed("PCRs"))?)
    };
    let current = pcrs()?;
    let saved_pcrs = if flags & V1_FLAG_SAVED_PCRS != 0 {
        Some(pcrs()?)
    } else {
        None
    };
    let count = usize::from(r.u8().map_err(malformed("object count"))?);
    if count > TRANSIENT_SLOTS {
        return Err(StateError::Malformed("too many objects"));
    }
    let mut parts = Vec::with_capacity(count);
    for _ in 0..count {
        parts.push(ObjectParts {
            slot: r.u8().map_err(malformed("object slot"))?,
            hierarchy: r.u32().map_err(malformed("object hierarchy"))?,
            public: r.tpm2b(MAX_PUBLIC).map_err(malformed("public area"))?,
            qualified_name: r
                .tpm2b(2 + MAX_DIGEST)
                .map_err(malformed("qualified name"))?,
            sensitive: r
                .tpm2b(MAX_SENSITIVE)
                .map_err(malformed("sensitive area"))?,
        });
    }
    r.done().map_err(malformed("trailing bytes"))?;
    let objects = objects_from(parts)?;
    Ok(Restored {
        started: flags & V1_FLAG_STARTED != 0,
        permanent: permanent(
            [&endorsement_seed, &owner_seed, &platform_seed],
            [owner_auth, endorsement_auth, lockout_auth],
            flags & V1_FLAG_ESTABLISHED != 0,
        ),
        null_seed,
        platform_auth,
        pcrs: current,
        saved_pcrs,
        objects,
        // Version 1 predates the sequence commands.
        sequences: empty_sequences(),
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
    fn framing_errors_are_typed() {
        let s = sim();
        let blob = s.save_state();
        let mut t = sim();
        assert_eq!(t.restore_state(&blob[..5]), Err(StateError::Truncated));
        assert_eq!(
            t.restore_state(&blob[..blob.len() - 1]),
            Err(StateError::Checksum)
        );
        let mut bad = blob.to_vec();
        bad[0] ^= 1;
        assert_eq!(t.restore_state(&bad), Err(StateError::BadMagic));
        let mut bad = blob.to_vec();
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

    /// A blob sealing `inner_blob` with a correct MAC under
    /// the default key: what someone who can write blobs can make.
    fn sealed_with_default_key(inner_blob: &[u8]) -> Zeroizing<Vec<u8>> {
        let tag = mac(&DEFAULT_KEY, KIND_DEFAULT_KEY, inner_blob);
        let mut outer = FrameWriter::new(MAGIC, VERSION);
        outer
            .section(outer::SEALED, |s| s.bytes(inner_blob))
            .unwrap();
        outer
            .section(outer::MAC, |s| {
                s.u8(KIND_DEFAULT_KEY);
                s.raw(&tag);
            })
            .unwrap();
        outer.finish()
    }

    #[test]
    fn a_well_sealed_but_incomplete_body_is_rejected() {
        let mut w = FrameWriter::new(INNER_MAGIC, VERSION);
        w.section(inner::FLAGS, |s| {
            s.flag(true);
            s.flag(false);
        })
        .unwrap();
        let blob = sealed_with_default_key(&w.finish());
        assert_eq!(
            sim().restore_state(&blob),
            Err(StateError::Malformed("no seeds section"))
        );
    }

    #[test]
    fn a_well_sealed_version_1_body_with_unknown_flags_is_rejected() {
        let mut body = vec![0xF0u8];
        body.extend_from_slice(&[0; 10]);
        let mut blob = MAGIC.to_vec();
        blob.extend_from_slice(&V1_VERSION_BYTES);
        blob.extend_from_slice(&(body.len() as u32).to_be_bytes());
        blob.extend_from_slice(&body);
        let checksum = Sha256::digest(&blob);
        blob.extend_from_slice(&checksum);
        assert_eq!(
            sim().restore_state(&blob),
            Err(StateError::Malformed("unknown flags"))
        );
    }

    /// A started simulator with an ML-DSA-44 key in slot 0 and its public
    /// area alone in slot 1.
    fn with_keys() -> Sim {
        use vtpm_wire::structures::{MlDsaParameterSet, PublicArea};
        let mut s = sim();
        let mut rsp = Vec::new();
        s.execute(0, &vtpm_client::startup(0), &mut rsp);
        let template = PublicArea::mldsa(MlDsaParameterSet::MlDsa44);
        let create =
            vtpm_client::create_primary(vtpm_wire::consts::TPM_RH_OWNER, b"", &template, b"");
        s.execute(0, &create, &mut rsp);
        let key = vtpm_client::parse_create_primary(&rsp).unwrap();
        let load =
            vtpm_client::load_external_public(&key.public_bytes, vtpm_wire::consts::TPM_RH_OWNER);
        s.execute(0, &load, &mut rsp);
        vtpm_client::parse_load(&rsp).unwrap();
        s
    }

    #[test]
    fn a_sealed_blob_whose_seed_was_altered_fails_the_binding_check() {
        let mut s = with_keys();
        if let Some(Object {
            sensitive:
                Some(Sensitive {
                    secret: crate::object::Secret::MlDsa(xi),
                    ..
                }),
            ..
        }) = s.objects[0].as_mut()
        {
            xi[0] ^= 1;
        }
        let forged = s.save_state();
        assert_eq!(
            sim().restore_state(&forged),
            Err(StateError::Binding { slot: 0 })
        );
    }

    #[test]
    fn a_public_key_of_the_wrong_size_is_an_invalid_object() {
        let mut s = with_keys();
        if let Some(object) = s.objects[1].as_mut() {
            object.public.unique.truncate(100);
        }
        assert_eq!(
            sim().restore_state(&s.save_state()),
            Err(StateError::InvalidObject {
                slot: 1,
                code: ResponseCode::KEY
            })
        );
    }

    #[test]
    fn altered_sealed_bytes_under_the_old_mac_fail_authentication() {
        let blob = with_keys().save_state();
        let frame = Frame::parse(&MAGIC, &blob).unwrap();
        let [sealed, tag] = frame.known_sections([outer::SEALED, outer::MAC]).unwrap();
        let mut inner_bytes = sealed.unwrap().bytes().unwrap().to_vec();
        let mut tag = tag.unwrap();
        let kind = tag.u8().unwrap();
        let old_mac = tag.take(MAC_SIZE).unwrap().to_vec();
        // A started flag flipped, inner CRC recomputed by re-framing.
        let inner_frame = Frame::parse(&INNER_MAGIC, &inner_bytes).unwrap();
        let mut w = FrameWriter::new(INNER_MAGIC, VERSION);
        for section in inner_frame.sections() {
            let mut section = section.unwrap();
            let mut body = section.take(section.remaining()).unwrap().to_vec();
            if section.tag() == inner::FLAGS {
                body[0] ^= 1;
            }
            w.section(section.tag(), |s| s.raw(&body)).unwrap();
        }
        inner_bytes = w.finish().to_vec();
        let mut outer = FrameWriter::new(MAGIC, VERSION);
        outer
            .section(outer::SEALED, |s| s.bytes(&inner_bytes))
            .unwrap();
        outer
            .section(outer::MAC, |s| {
                s.u8(kind);
                s.raw(&old_mac);
            })
            .unwrap();
        assert_eq!(
            sim().restore_state(&outer.finish()),
            Err(StateError::Authentication)
        );
    }

    #[test]
    fn a_state_key_never_prints_its_bytes() {
        let key = StateKey::new([0xAB; 32]);
        let shown = format!(
            "{key:?} {:?}",
            SimConfig {
                state_key: Some(key.clone()),
                ..SimConfig::default()
            }
        );
        assert!(!shown.contains("171") && !shown.to_lowercase().contains("ab, "));
        assert!(shown.contains("StateKey(..)"));
    }
}
