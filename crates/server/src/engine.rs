//! The TPM behind every channel: a backend plus the power, locality,
//! buffer and state rules both protocols share.
//!
//! Every channel thread locks one [`Tpm`] for the length of one request, so
//! a command runs to completion before the next control request or signal
//! is looked at (cancel excepted: it goes through the backend's
//! [`Cancel`] handle without the lock).

use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use vtpm_backend::{Backend, BackendError, Cancel};
use vtpm_wire::{error_response, ResponseCode, HEADER_SIZE};
use zeroize::Zeroizing;

use crate::store::{Slot, Store};
use crate::ServerError;

/// Opens a fresh backend with the given buffer size (SET_BUFFERSIZE).
pub type Reopen = Box<dyn FnMut(usize) -> Result<Box<dyn Backend>, BackendError> + Send>;

/// The largest measurement buffered between HASH_START and HASH_END; more
/// data fails the sequence (a DRTM measurement is a few hundred KiB at most).
pub const MAX_HASH_DATA: usize = 1 << 20;

/// Buffer sizes a client may choose with SET_BUFFERSIZE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferLimits {
    /// The smallest size granted.
    pub min: usize,
    /// The largest size granted.
    pub max: usize,
}

/// The largest command and response seen since the last query
/// (mssim's GET_COMMAND_RESPONSE_SIZES).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LargestSeen {
    /// Size of the largest command.
    pub command_size: u32,
    /// Its command code.
    pub command_code: u32,
    /// Size of the largest response.
    pub response_size: u32,
    /// The command code that produced it.
    pub response_code: u32,
}

/// Why a control operation failed; each maps to a swtpm result code.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Not allowed in the TPM's current state (TPM_BAD_ORDINAL).
    #[error("not allowed while the TPM is {0}")]
    WrongState(&'static str),
    /// A bad parameter (TPM_BAD_PARAMETER).
    #[error("bad parameter: {0}")]
    BadParameter(&'static str),
    /// A locality out of range (TPM_BAD_LOCALITY).
    #[error("locality {0} is out of range or not allowed")]
    BadLocality(u8),
    /// The backend failed (TPM_FAIL).
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The state directory failed (TPM_IOERROR).
    #[error(transparent)]
    Store(#[from] ServerError),
}

/// Options of a [`Tpm`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TpmOptions {
    /// Send TPM2_Startup(CLEAR) after the power-on at start.
    pub startup_clear: bool,
}

/// A TPM behind the protocol channels.
pub struct Tpm {
    backend: Box<dyn Backend>,
    reopen: Option<Reopen>,
    limits: BufferLimits,
    canceller: Option<Arc<dyn Cancel>>,
    powered: bool,
    failure_mode: bool,
    locality: u8,
    /// State saved by STORE_VOLATILE or set with SET_STATEBLOB(VOLATILE),
    /// resumed by the next INIT.
    volatile: Option<Zeroizing<Vec<u8>>>,
    store: Option<Store>,
    /// SHA-256 of the state last written to the store.
    persisted: Option<[u8; 32]>,
    hash: Option<Zeroizing<Vec<u8>>>,
    largest: LargestSeen,
    options: TpmOptions,
}

impl std::fmt::Debug for Tpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tpm")
            .field("backend", &self.backend.name())
            .field("buffer_size", &self.backend.buffer_size())
            .field("powered", &self.powered)
            .field("locality", &self.locality)
            .field("volatile_len", &self.volatile.as_ref().map(|v| v.len()))
            .finish_non_exhaustive()
    }
}

fn failure() -> [u8; HEADER_SIZE] {
    error_response(ResponseCode::FAILURE)
}

impl Tpm {
    /// A powered-off TPM around `backend`. With `reopen`, SET_BUFFERSIZE
    /// may choose any size in `limits` (the backend is reopened and its
    /// state carried over); without it the backend's size is the only one.
    /// With a `store`, the state found there is loaded (a power cycle
    /// follows, so only what survives one is kept) and every change is
    /// written back.
    pub fn new(
        backend: Box<dyn Backend>,
        reopen: Option<(Reopen, BufferLimits)>,
        store: Option<Store>,
        options: TpmOptions,
    ) -> Result<Self, ServerError> {
        let size = backend.buffer_size();
        let (reopen, limits) = match reopen {
            Some((r, l)) => (Some(r), l),
            None => (
                None,
                BufferLimits {
                    min: size,
                    max: size,
                },
            ),
        };
        let canceller = backend.canceller();
        let mut tpm = Self {
            backend,
            reopen,
            limits,
            canceller,
            powered: false,
            failure_mode: false,
            locality: 0,
            volatile: None,
            store,
            persisted: None,
            hash: None,
            largest: LargestSeen::default(),
            options,
        };
        if let Some(store) = &tpm.store {
            if let Some(state) = store.load(Slot::Permanent)? {
                tpm.backend
                    .restore_state(&state)
                    .map_err(ServerError::Backend)?;
                tpm.backend.reset().map_err(ServerError::Backend)?;
                tpm.persisted = Some(Sha256::digest(&state[..]).into());
            }
            tpm.volatile = store.load(Slot::Volatile)?;
        }
        Ok(tpm)
    }

    /// The backend's name.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// The buffer size in use.
    pub fn buffer_size(&self) -> usize {
        self.backend.buffer_size()
    }

    /// The sizes SET_BUFFERSIZE may choose from.
    pub fn limits(&self) -> BufferLimits {
        self.limits
    }

    /// True between power-on (INIT) and power-off (STOP).
    pub fn is_powered(&self) -> bool {
        self.powered
    }

    /// True when the state is kept in a directory.
    pub fn has_store(&self) -> bool {
        self.store.is_some()
    }

    /// True when the store encrypts.
    pub fn encrypts_state(&self) -> bool {
        self.store.as_ref().is_some_and(Store::encrypts)
    }

    /// True when the backend runs dynamic launches (HASH_START/DATA/END).
    pub fn can_hash(&self) -> bool {
        self.backend.can_dynamic_launch()
    }

    /// The handle that cancels the running command, if the backend has one.
    pub fn canceller(&self) -> Option<Arc<dyn Cancel>> {
        self.canceller.clone()
    }

    /// The locality of the data channel's commands.
    pub fn locality(&self) -> u8 {
        self.locality
    }

    /// Executes `command` at `locality` and writes the response. A TPM that
    /// is off or in failure mode answers TPM_RC_FAILURE; a command larger
    /// than the buffer answers TPM_RC_COMMAND_SIZE; a backend error answers
    /// TPM_RC_FAILURE. Never fails: a response is always written.
    pub fn execute(&mut self, locality: u8, command: &[u8], response: &mut Vec<u8>) {
        response.clear();
        if !self.powered || self.failure_mode {
            response.extend_from_slice(&failure());
            return;
        }
        if command.len() > self.backend.buffer_size() {
            response.extend_from_slice(&error_response(ResponseCode::COMMAND_SIZE));
            return;
        }
        let code = command
            .get(6..10)
            .map_or(0, |c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        if let Err(e) = self.backend.execute(locality, command, response) {
            tracing::error!(error = %e, "the backend failed a command");
            response.zeroize_and_clear();
            response.extend_from_slice(&failure());
        }
        tracing::debug!(
            locality,
            command = format_args!("{code:#x}"),
            request_bytes = command.len(),
            rc = format_args!(
                "{:#x}",
                response
                    .get(6..10)
                    .map_or(0, |c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            ),
            response_bytes = response.len(),
            "command"
        );
        if command.len() as u32 > self.largest.command_size {
            self.largest.command_size = command.len() as u32;
            self.largest.command_code = code;
        }
        if response.len() as u32 > self.largest.response_size {
            self.largest.response_size = response.len() as u32;
            self.largest.response_code = code;
        }
        self.persist_logged();
    }

    /// The locality for the data channel's next commands (0..=4).
    pub fn set_locality(&mut self, locality: u8) -> Result<(), ControlError> {
        if locality > 4 {
            return Err(ControlError::BadLocality(locality));
        }
        self.locality = locality;
        Ok(())
    }

    /// Power-on with swtpm's INIT semantics: volatile state saved by
    /// STORE_VOLATILE (or set with SET_STATEBLOB) is resumed, and deleted
    /// afterwards when `delete_volatile`; otherwise the TPM comes up
    /// waiting for TPM2_Startup.
    pub fn init(&mut self, delete_volatile: bool) -> Result<(), ControlError> {
        self.powered = false;
        self.failure_mode = false;
        self.hash = None;
        match &self.volatile {
            Some(state) => self.backend.restore_state(state)?,
            None => self.backend.reset()?,
        }
        if delete_volatile && self.volatile.is_some() {
            self.volatile = None;
            if let Some(store) = &self.store {
                store.remove(Slot::Volatile)?;
            }
        }
        self.powered = true;
        self.persist()?;
        Ok(())
    }

    /// The power-on at start: INIT, then TPM2_Startup(CLEAR) when
    /// configured.
    pub fn power_on_at_start(&mut self) -> Result<(), ControlError> {
        self.init(false)?;
        if self.options.startup_clear {
            let mut response = Zeroizing::new(Vec::new());
            self.execute(
                0,
                &vtpm_client::startup(vtpm_wire::consts::TPM_SU_CLEAR),
                &mut response,
            );
            let rc = vtpm_wire::Header::parse(&response).map(|h| h.code);
            tracing::info!(?rc, "TPM2_Startup(CLEAR) at start");
        }
        Ok(())
    }

    /// mssim POWER_ON: nothing when already on, otherwise INIT.
    pub fn power_on(&mut self) -> Result<(), ControlError> {
        if self.powered {
            return Ok(());
        }
        self.init(false)
    }

    /// STOP / POWER_OFF: the TPM answers TPM_RC_FAILURE until the next
    /// power-on. Its state is written to the store first.
    pub fn power_off(&mut self) -> Result<(), ControlError> {
        if self.powered {
            self.persist()?;
        }
        self.powered = false;
        self.hash = None;
        Ok(())
    }

    /// mssim RESET / RESTART: a power cycle of a powered TPM (no volatile
    /// state resumed); nothing when off.
    pub fn reset(&mut self) -> Result<(), ControlError> {
        if !self.powered {
            return Ok(());
        }
        self.failure_mode = false;
        self.hash = None;
        self.backend.reset()?;
        self.persist()?;
        Ok(())
    }

    /// mssim TEST_FAILURE_MODE: every command answers TPM_RC_FAILURE until
    /// the next power cycle.
    pub fn force_failure_mode(&mut self) {
        self.failure_mode = true;
    }

    /// The tpmEstablished flag.
    pub fn established(&mut self) -> Result<bool, ControlError> {
        if !self.powered {
            return Err(ControlError::WrongState("not running"));
        }
        Ok(self.backend.established()?)
    }

    /// Clears tpmEstablished on behalf of `locality` (3 or 4).
    pub fn reset_established(&mut self, locality: u8) -> Result<(), ControlError> {
        if locality != 3 && locality != 4 {
            return Err(ControlError::BadLocality(locality));
        }
        self.backend.reset_established(locality)?;
        self.persist()?;
        Ok(())
    }

    /// STORE_VOLATILE: saves the running TPM's state for the next INIT.
    pub fn store_volatile(&mut self) -> Result<(), ControlError> {
        if !self.powered {
            return Err(ControlError::WrongState("not initialised"));
        }
        let state = Zeroizing::new(self.backend.save_state()?);
        if let Some(store) = &self.store {
            store.save(Slot::Volatile, &state)?;
        }
        self.volatile = Some(state);
        Ok(())
    }

    /// GET_STATEBLOB of `kind` (1 permanent, 2 volatile, 3 savestate).
    ///
    /// The backend saves its state as one blob, so the permanent and the
    /// volatile blob are both that whole blob (setting it as permanent keeps
    /// only what survives a power cycle); the savestate blob is empty
    /// because the Shutdown(STATE) record travels inside the other two.
    pub fn state_blob(&mut self, kind: u32) -> Result<Zeroizing<Vec<u8>>, ControlError> {
        if !self.powered {
            return Err(ControlError::WrongState("not running"));
        }
        match kind {
            1 | 2 => Ok(Zeroizing::new(self.backend.save_state()?)),
            3 => Ok(Zeroizing::new(Vec::new())),
            _ => Err(ControlError::BadParameter("unknown state blob type")),
        }
    }

    /// SET_STATEBLOB of `kind`; the TPM must be stopped.
    pub fn set_state_blob(&mut self, kind: u32, blob: &[u8]) -> Result<(), ControlError> {
        if self.powered {
            return Err(ControlError::WrongState("running"));
        }
        match kind {
            1 => {
                self.backend.restore_state(blob)?;
                self.backend.reset()?;
                self.persist()?;
                Ok(())
            }
            2 => {
                let state = Zeroizing::new(blob.to_vec());
                if let Some(store) = &self.store {
                    if state.is_empty() {
                        store.remove(Slot::Volatile)?;
                    } else {
                        store.save(Slot::Volatile, &state)?;
                    }
                }
                self.volatile = (!state.is_empty()).then_some(state);
                Ok(())
            }
            3 if blob.is_empty() => Ok(()),
            3 => Err(ControlError::BadParameter(
                "a savestate blob from another implementation",
            )),
            _ => Err(ControlError::BadParameter("unknown state blob type")),
        }
    }

    /// SET_BUFFERSIZE: `0` queries; another size needs the TPM stopped and
    /// is clamped to the limits. Returns the size in use.
    pub fn set_buffer_size(&mut self, wanted: u32) -> Result<usize, ControlError> {
        if wanted == 0 {
            return Ok(self.backend.buffer_size());
        }
        if self.powered {
            return Err(ControlError::WrongState("running"));
        }
        let size = (wanted as usize).clamp(self.limits.min, self.limits.max);
        if size != self.backend.buffer_size() {
            if let Some(reopen) = &mut self.reopen {
                let state = Zeroizing::new(self.backend.save_state()?);
                let mut fresh = reopen(size)?;
                fresh.restore_state(&state)?;
                self.canceller = fresh.canceller();
                self.backend = fresh;
            }
        }
        Ok(self.backend.buffer_size())
    }

    /// HASH_START: begins a dynamic-launch measurement.
    pub fn hash_start(&mut self) -> Result<(), ControlError> {
        if !self.powered {
            return Err(ControlError::WrongState("not initialised"));
        }
        if !self.backend.can_dynamic_launch() {
            return Err(ControlError::Backend(BackendError::Unsupported(
                "dynamic launch",
            )));
        }
        self.hash = Some(Zeroizing::new(Vec::new()));
        Ok(())
    }

    /// HASH_DATA: more of the measurement.
    pub fn hash_data(&mut self, data: &[u8]) -> Result<(), ControlError> {
        // As libtpms: data outside a sequence is ignored.
        let Some(buffered) = self.hash.as_mut() else {
            return Ok(());
        };
        if buffered.len() + data.len() > MAX_HASH_DATA {
            self.hash = None;
            return Err(ControlError::BadParameter("measurement above 1 MiB"));
        }
        buffered.extend_from_slice(data);
        Ok(())
    }

    /// HASH_END: extends the measurement into PCR 17 and sets
    /// tpmEstablished.
    pub fn hash_end(&mut self) -> Result<(), ControlError> {
        let Some(data) = self.hash.take() else {
            return Ok(());
        };
        self.backend.dynamic_launch(&data)?;
        self.persist()?;
        Ok(())
    }

    /// GET_COMMAND_RESPONSE_SIZES: the largest command and response since
    /// the last query, then forgets them.
    pub fn take_largest(&mut self) -> LargestSeen {
        std::mem::take(&mut self.largest)
    }

    /// Writes the state to the store when it changed since the last write.
    pub fn persist(&mut self) -> Result<(), ServerError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let state = Zeroizing::new(self.backend.save_state().map_err(ServerError::Backend)?);
        let digest: [u8; 32] = Sha256::digest(&state[..]).into();
        if let Some(old) = &self.persisted {
            if bool::from(old.ct_eq(&digest)) {
                return Ok(());
            }
        }
        store.save(Slot::Permanent, &state)?;
        self.persisted = Some(digest);
        Ok(())
    }

    fn persist_logged(&mut self) {
        if let Err(e) = self.persist() {
            tracing::error!(error = %e, "cannot write the TPM state");
        }
    }
}

/// Clearing that wipes first.
trait ZeroizeAndClear {
    fn zeroize_and_clear(&mut self);
}

impl ZeroizeAndClear for Vec<u8> {
    fn zeroize_and_clear(&mut self) {
        zeroize::Zeroize::zeroize(self);
    }
}
