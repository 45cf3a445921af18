//! An embedded software TPM 2.0 subset with ML-DSA and ML-KEM.
//!
//! `vtpm-sim` speaks the TPM 2.0 wire format (Parts 2 and 3) with the
//! post-quantum additions of library version 1.85 (TPM_ALG_MLDSA,
//! TPM_ALG_HASH_MLDSA, TPM_ALG_MLKEM). It is pure Rust, executes each
//! command synchronously, and is meant to sit behind a virtual TPM device
//! (through `vtpm_backend::sim::SimBackend`) or to be driven directly by
//! tests.
//!
//! Commands: Startup, Shutdown, SelfTest, GetRandom, GetCapability,
//! PCR_Read, PCR_Extend, PCR_Reset, HierarchyChangeAuth, CreatePrimary,
//! Create, Load, LoadExternal (public part), ReadPublic, FlushContext, Sign,
//! VerifySignature, SignDigest, VerifyDigestSignature, Encapsulate,
//! Decapsulate, the v1.85 sign and verify sequences (SignSequenceStart,
//! SignSequenceComplete, VerifySequenceStart, VerifySequenceComplete,
//! SequenceUpdate) and TestParms. The crate README lists every assumption made about the
//! v1.85 structures, and every deliberate simplification.
//!
//! ```
//! use vtpm_sim::{Sim, SimConfig};
//! use vtpm_client::{get_random, parse_get_random, startup};
//! use vtpm_wire::consts::TPM_SU_CLEAR;
//!
//! let mut sim = Sim::new(SimConfig::default())?;
//! let mut response = Vec::new();
//! sim.execute(0, &startup(TPM_SU_CLEAR), &mut response);
//! assert_eq!(response, [0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0, 0]);
//! sim.execute(0, &get_random(16), &mut response);
//! assert_eq!(parse_get_random(&response)?.len(), 16);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cancel;
mod command;
mod crypto;
mod dispatch;
mod object;
mod pcr;
mod pq;
mod rc;
mod state;
mod unmarshal;

use vtpm_wire::consts::{TPM_RH_ENDORSEMENT, TPM_RH_OWNER, TPM_RH_PLATFORM};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::crypto::{Drbg, HashAlg};
use crate::object::Object;
use crate::pcr::Pcrs;

pub use crate::cancel::CancelHandle;
pub use crate::state::{StateError, StateKey};

/// The buffer size a PQC-capable TPM needs (spec-notes §5): the default.
pub const DEFAULT_BUFFER_SIZE: usize = 8192;
/// The smallest buffer accepted: the classic TPM 2.0 4 KiB buffer.
pub const MIN_BUFFER_SIZE: usize = 4096;
/// The largest buffer accepted. Commands are bounded by the buffer, so this
/// bounds the memory one command can make the simulator hold.
pub const MAX_BUFFER_SIZE: usize = 65536;
/// Number of transient object slots; a full table answers
/// TPM_RC_OBJECT_MEMORY.
pub const TRANSIENT_SLOTS: usize = 8;
/// The first transient handle; slot `n` has handle `TRANSIENT_FIRST + n`.
pub const TRANSIENT_FIRST: u32 = 0x8000_0000;
/// Size of each hierarchy's primary seed.
const SEED_SIZE: usize = 64;

/// Configuration of a [`Sim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// The largest command and the largest response, in bytes
    /// (TPM_PT_MAX_COMMAND_SIZE and TPM_PT_MAX_RESPONSE_SIZE).
    pub buffer_size: usize,
    /// Seed for the random bit generator. `None` (the default) seeds it from
    /// the operating system; a fixed seed makes a simulator whose primary
    /// seeds, and therefore primary keys, are reproducible (tests, fuzzing).
    pub rng_seed: Option<[u8; 32]>,
    /// The key that authenticates state blobs (HMAC-SHA-256): blobs this
    /// simulator saves carry its MAC, and it restores only blobs with a
    /// valid one. `None` uses the built-in default key, which detects
    /// corruption but not tampering; see the README's "State blob".
    pub state_key: Option<StateKey>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            buffer_size: DEFAULT_BUFFER_SIZE,
            rng_seed: None,
            state_key: None,
        }
    }
}

/// A configuration the simulator cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The buffer is smaller than [`MIN_BUFFER_SIZE`].
    #[error("buffer size {requested} is below the minimum of {minimum} bytes")]
    BufferTooSmall {
        /// The size asked for.
        requested: usize,
        /// The minimum.
        minimum: usize,
    },
    /// The buffer is larger than [`MAX_BUFFER_SIZE`].
    #[error("buffer size {requested} is above the maximum of {maximum} bytes")]
    BufferTooLarge {
        /// The size asked for.
        requested: usize,
        /// The maximum.
        maximum: usize,
    },
    /// The operating system could not provide entropy.
    #[error("no entropy from the operating system: {0}")]
    Entropy(String),
}

impl SimConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.buffer_size < MIN_BUFFER_SIZE {
            return Err(ConfigError::BufferTooSmall {
                requested: self.buffer_size,
                minimum: MIN_BUFFER_SIZE,
            });
        }
        if self.buffer_size > MAX_BUFFER_SIZE {
            return Err(ConfigError::BufferTooLarge {
                requested: self.buffer_size,
                maximum: MAX_BUFFER_SIZE,
            });
        }
        Ok(())
    }
}

/// A request the simulator refuses outside the command stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// The established flag can only be reset from locality 3 or 4.
    #[error("locality {0} may not reset the established flag (3 or 4 only)")]
    Locality(u8),
    /// A dynamic launch needs a started TPM.
    #[error("the TPM has not received TPM2_Startup")]
    NotStarted,
}

/// The primary seeds and authorization values that survive power cycles;
/// wiped when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Permanent {
    pub(crate) endorsement_seed: [u8; SEED_SIZE],
    pub(crate) owner_seed: [u8; SEED_SIZE],
    pub(crate) platform_seed: [u8; SEED_SIZE],
    pub(crate) owner_auth: Vec<u8>,
    pub(crate) endorsement_auth: Vec<u8>,
    pub(crate) lockout_auth: Vec<u8>,
    /// tpmEstablished: a dynamic launch happened since the last reset of the flag.
    pub(crate) established: bool,
}

/// The embedded TPM.
///
/// [`Sim::execute`] runs one whole command and always writes a well-formed
/// response: a TPM error response for bad input, never a panic.
pub struct Sim {
    pub(crate) buffer_size: usize,
    pub(crate) rng: Drbg,
    pub(crate) permanent: Permanent,
    /// The NULL hierarchy's seed: new on every TPM Reset.
    pub(crate) null_seed: [u8; SEED_SIZE],
    /// platformAuth: emptied by every Startup(CLEAR).
    pub(crate) platform_auth: Vec<u8>,
    /// TPM2_Startup has run since the last power-on.
    pub(crate) started: bool,
    /// PCRs recorded by Shutdown(STATE), consumed by the next Startup.
    pub(crate) saved_pcrs: Option<Pcrs>,
    pub(crate) pcrs: Pcrs,
    pub(crate) objects: Vec<Option<Object>>,
    /// Open signature sequences (not part of the state blob).
    pub(crate) sequences: Vec<Option<command::sequence::Sequence>>,
    /// Expanded ML-DSA signing keys of recent signatures (volatile).
    pub(crate) signing_keys: pq::SigningKeyCache,
    /// The cancel line, shared with every [`CancelHandle`] handed out.
    pub(crate) cancel: CancelHandle,
    /// Authenticates state blobs; `None` means the default key.
    pub(crate) state_key: Option<StateKey>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("buffer_size", &self.buffer_size)
            .field("started", &self.started)
            .field("loaded_objects", &self.objects.iter().flatten().count())
            .finish_non_exhaustive()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.null_seed.zeroize();
        self.platform_auth.zeroize();
    }
}

impl Sim {
    /// A freshly manufactured TPM: new primary seeds, empty authorization
    /// values, powered on and waiting for TPM2_Startup.
    pub fn new(config: SimConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut rng = match config.rng_seed {
            Some(seed) => Drbg::new(&seed),
            None => Drbg::from_os().map_err(|e| ConfigError::Entropy(e.to_string()))?,
        };
        let permanent = Permanent {
            endorsement_seed: rng.array(),
            owner_seed: rng.array(),
            platform_seed: rng.array(),
            owner_auth: Vec::new(),
            endorsement_auth: Vec::new(),
            lockout_auth: Vec::new(),
            established: false,
        };
        let null_seed = rng.array();
        Ok(Self {
            buffer_size: config.buffer_size,
            rng,
            permanent,
            null_seed,
            platform_auth: Vec::new(),
            started: false,
            saved_pcrs: None,
            pcrs: Pcrs::after_reset(0),
            objects: vec![None; TRANSIENT_SLOTS],
            sequences: (0..command::sequence::SEQUENCE_SLOTS)
                .map(|_| None)
                .collect(),
            signing_keys: pq::SigningKeyCache::default(),
            cancel: CancelHandle::default(),
            state_key: config.state_key,
        })
    }

    /// A simulator restored from a blob made by [`Sim::save_state`].
    pub fn from_state(config: SimConfig, state: &[u8]) -> Result<Self, FromStateError> {
        let mut sim = Self::new(config)?;
        sim.restore_state(state)?;
        Ok(sim)
    }

    /// A handle that cancels the command this simulator is executing, from
    /// any thread; every handle drives the same cancel line.
    pub fn canceller(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// The negotiated buffer size.
    pub fn buffer_size(&self) -> usize {
        self.buffer_size
    }

    /// Executes one command at `locality` (0..=4) and writes the whole
    /// response into `response` (cleared first; its capacity is reused).
    ///
    /// The response is always well formed: its header size equals its
    /// length, which never exceeds [`Sim::buffer_size`]. Bad input answers
    /// the TPM error a real TPM gives (TPM_RC_COMMAND_SIZE, ...); a locality
    /// above 4 answers TPM_RC_LOCALITY.
    pub fn execute(&mut self, locality: u8, command: &[u8], response: &mut Vec<u8>) {
        dispatch::execute(self, locality, command, response);
    }

    /// Power cycle (a platform reset): transient objects and every other
    /// volatile state are lost and the next command must be TPM2_Startup.
    /// Seeds, authorization values, the established flag and a
    /// Shutdown(STATE) record survive, as they would in NV memory.
    pub fn reset(&mut self) {
        self.started = false;
        self.signing_keys.clear();
        for slot in &mut self.objects {
            *slot = None;
        }
        for slot in &mut self.sequences {
            *slot = None;
        }
    }

    /// The tpmEstablished flag: true after a dynamic launch until
    /// [`Sim::reset_established`].
    pub fn established(&self) -> bool {
        self.permanent.established
    }

    /// Clears tpmEstablished on behalf of `locality`, which must be 3 or 4.
    pub fn reset_established(&mut self, locality: u8) -> Result<(), SimError> {
        if locality != 3 && locality != 4 {
            return Err(SimError::Locality(locality));
        }
        self.permanent.established = false;
        Ok(())
    }

    /// A dynamic launch (the _TPM_Hash_Start / _TPM_Hash_Data /
    /// _TPM_Hash_End sequence at locality 4): PCRs 17–22 are reset to zero,
    /// PCR 17 is extended with the hash of `measurement` in each bank, and
    /// tpmEstablished is set.
    pub fn dynamic_launch(&mut self, measurement: &[u8]) -> Result<(), SimError> {
        if !self.started {
            return Err(SimError::NotStarted);
        }
        for index in 17..=22 {
            self.pcrs.reset(index);
        }
        for bank in pcr::BANKS {
            let digest = bank.digest(&[measurement]);
            self.pcrs.extend(17, bank, &digest);
        }
        self.permanent.established = true;
        Ok(())
    }

    /// The whole state as a versioned blob: seeds, authorization values,
    /// the established flag, the Shutdown(STATE) record, the PCRs and the
    /// loaded objects, sealed with an HMAC under the configured state key
    /// (or the default key). The random generator's state is not included;
    /// a restored simulator reseeds. The buffer is wiped when dropped.
    pub fn save_state(&self) -> Zeroizing<Vec<u8>> {
        state::save(self)
    }

    /// Replaces the whole state with a blob from [`Sim::save_state`] (this
    /// version or version 1). A corrupted, truncated, foreign or
    /// unauthenticated blob, or one whose objects fail TPM2_Load's checks
    /// (a private key that does not produce its public key), is an error
    /// and leaves the simulator unchanged.
    pub fn restore_state(&mut self, blob: &[u8]) -> Result<(), StateError> {
        self.signing_keys.clear();
        state::restore(self, blob)
    }

    /// The seed of the hierarchy `handle`, or `None` for another handle.
    pub(crate) fn hierarchy_seed(&self, handle: u32) -> Option<&[u8; SEED_SIZE]> {
        match handle {
            TPM_RH_OWNER => Some(&self.permanent.owner_seed),
            TPM_RH_ENDORSEMENT => Some(&self.permanent.endorsement_seed),
            TPM_RH_PLATFORM => Some(&self.permanent.platform_seed),
            vtpm_wire::consts::TPM_RH_NULL => Some(&self.null_seed),
            _ => None,
        }
    }

    /// The secret proof value of a hierarchy, the key of its tickets. It is
    /// derived from the hierarchy's seed, so it changes exactly when the
    /// seed does.
    pub(crate) fn proof(&self, hierarchy: u32) -> Zeroizing<Vec<u8>> {
        match self.hierarchy_seed(hierarchy) {
            Some(seed) => HashAlg::Sha256.kdfa(seed, b"HIERARCHY PROOF", b"", b"", 256),
            None => Zeroizing::new(Vec::new()),
        }
    }
}

/// The README's examples, run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Why [`Sim::from_state`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FromStateError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The blob is invalid.
    #[error(transparent)]
    State(#[from] StateError),
}
