//! The swtpm backend: a TPM 2.0 emulated by swtpm, reached over its control
//! channel and its data channel, as QEMU reaches it.
//!
//! - [`ctrl`]: a typed client for every control command.
//! - [`data`]: the data channel (raw TPM commands and responses).
//! - [`process`]: starting, watching and stopping a swtpm child process.
//! - [`state`]: the framed blob of a saved TPM state.
//!
//! [`SwtpmBackend::spawn`] starts a private swtpm and brings it up the way
//! QEMU does; [`SwtpmBackend::attach`] takes over one that someone else
//! started (as libvirt does).
//!
//! ```no_run
//! use vtpm_backend::swtpm::{SwtpmBackend, SwtpmConfig};
//! use vtpm_backend::Backend;
//! use vtpm_client as client;
//! use vtpm_wire::consts;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut tpm = SwtpmBackend::spawn(SwtpmConfig::default())?;
//! let mut response = Vec::new();
//! tpm.execute(0, &client::startup(consts::TPM_SU_CLEAR), &mut response)?;
//! tpm.execute(0, &client::get_random(16), &mut response)?;
//! assert_eq!(client::parse_get_random(&response)?.len(), 16);
//! # Ok(()) }
//! ```

pub mod ctrl;
pub mod data;
mod deadline;
pub mod process;
pub mod state;

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use deadline::Deadline;

use vtpm_wire::{error_response, Header, ResponseCode, HEADER_SIZE};

use crate::{Backend, BackendError, Cancel};
pub use ctrl::{BufferSizes, Capabilities, ControlChannel, StateBlob};
pub use data::DataConnection;
pub use process::SwtpmProcess;
pub use state::SavedState;

/// The environment variable that names the swtpm binary to run.
pub const SWTPM_BINARY_ENV: &str = "VTPM_SWTPM";

/// The capabilities vtpm needs from every swtpm (SET_DATAFD is needed as
/// well when the data channel is a socketpair).
pub const REQUIRED_CAPABILITIES: [u64; 8] = [
    ctrl::cap::INIT,
    ctrl::cap::SHUTDOWN,
    ctrl::cap::GET_TPMESTABLISHED,
    ctrl::cap::SET_LOCALITY,
    ctrl::cap::CANCEL_TPM_CMD,
    ctrl::cap::RESET_TPMESTABLISHED,
    ctrl::cap::STOP,
    ctrl::cap::SET_BUFFERSIZE,
];

/// The GET_INFO classes [`SwtpmBackend::info`] asks for.
const INFO_CLASSES: u64 =
    ctrl::info::TPM_SPECIFICATION | ctrl::info::TPM_ATTRIBUTES | ctrl::info::TPM_FEATURES;

/// Where TPM commands travel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DataChannel {
    /// A socketpair whose other end is handed to swtpm with SET_DATAFD, as
    /// QEMU does. swtpm then runs without a data server of its own.
    #[default]
    SocketPair,
    /// swtpm's data server on a Unix socket (`--server type=unixio`). When
    /// spawning, `None` puts the socket in swtpm's private directory;
    /// attaching needs the path.
    Unix(Option<PathBuf>),
    /// swtpm's data server on TCP (`--server type=tcp`).
    Tcp(SocketAddr),
}

/// Time bounds of the swtpm backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A control-channel reply (swtpm answers within about 500 ms).
    pub control_reply: Duration,
    /// One TPM command, from sending it to its whole response. Long: RSA
    /// key generation takes seconds; the bound only turns a hung swtpm into
    /// an error. It also bounds the reply to CANCEL_TPM_CMD, which swtpm
    /// may hold back until the running command ends.
    pub command: Duration,
    /// A spawned swtpm's control socket accepting.
    pub start: Duration,
    /// A spawned swtpm exiting after SHUTDOWN, before it is killed.
    pub stop: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            control_reply: ControlChannel::DEFAULT_REPLY_TIMEOUT,
            command: DataConnection::DEFAULT_COMMAND_TIMEOUT,
            start: Duration::from_secs(5),
            stop: Duration::from_secs(5),
        }
    }
}

/// How to run (or reach) swtpm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwtpmConfig {
    /// The swtpm binary. Default: `$VTPM_SWTPM` if set, else `swtpm` from
    /// `PATH`.
    pub binary: PathBuf,
    /// The TPM state directory. `None`: a fresh temporary directory,
    /// removed when the backend is dropped.
    pub state_dir: Option<PathBuf>,
    /// The buffer size to ask for. `None` (or 0): the largest swtpm offers.
    /// swtpm clamps the request to its range; the size it grants is used.
    pub buffer_size: Option<u32>,
    /// The data channel.
    pub data: DataChannel,
    /// Time bounds.
    pub timeouts: Timeouts,
    /// swtpm's log level (`--log level=N`; 5 and above add libtpms's log).
    pub log_level: u32,
    /// Start swtpm with `--flags not-need-init` (the TPM runs before INIT).
    pub not_need_init: bool,
}

/// The binary named by the value of [`SWTPM_BINARY_ENV`], or `swtpm`.
fn binary_from_env(value: Option<std::ffi::OsString>) -> PathBuf {
    value
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("swtpm"))
}

impl Default for SwtpmConfig {
    fn default() -> Self {
        Self {
            binary: binary_from_env(std::env::var_os(SWTPM_BINARY_ENV)),
            state_dir: None,
            buffer_size: None,
            data: DataChannel::default(),
            timeouts: Timeouts::default(),
            log_level: 1,
            not_need_init: false,
        }
    }
}

/// What `vtpm probe` reports about a swtpm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwtpmInfo {
    /// swtpm's version (`swtpm --version`), when vtpm started the process.
    pub version: Option<String>,
    /// The GET_CAPABILITY bitmask.
    pub capabilities: Capabilities,
    /// The buffer sizes (in use, min, max).
    pub buffer: BufferSizes,
    /// GET_INFO's JSON (TPM specification, attributes, features); `None`
    /// when swtpm lacks GET_INFO or it failed.
    pub tpm_info_json: Option<String>,
}

impl SwtpmInfo {
    /// The names of the capabilities swtpm reports.
    pub fn capability_names(&self) -> Vec<&'static str> {
        self.capabilities.names()
    }
}

impl fmt::Display for SwtpmInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(v) = &self.version {
            writeln!(f, "swtpm version:  {v}")?;
        }
        writeln!(
            f,
            "capabilities:   {:#x} ({})",
            self.capabilities.bits(),
            self.capability_names().join(", ")
        )?;
        writeln!(
            f,
            "buffer size:    {} in use (min {}, max {})",
            self.buffer.in_use, self.buffer.min, self.buffer.max
        )?;
        match &self.tpm_info_json {
            Some(json) => write!(f, "TPM info:       {json}"),
            None => write!(f, "TPM info:       (not available)"),
        }
    }
}

/// Starts a swtpm with `config`, reports what it offers, and stops it.
pub fn probe(config: SwtpmConfig) -> Result<SwtpmInfo, BackendError> {
    let mut backend = SwtpmBackend::spawn(config)?;
    backend.info()
}

/// The [`Cancel`] handle of a [`SwtpmBackend`]: sends CANCEL_TPM_CMD on the
/// shared control channel, which the worker thread does not hold while it
/// waits for a response.
struct SwtpmCanceller {
    ctrl: Arc<Mutex<ControlChannel>>,
}

impl Cancel for SwtpmCanceller {
    fn cancel(&self) -> Result<(), BackendError> {
        lock(&self.ctrl).cancel_tpm_cmd()
    }
}

/// The control channel is shared with cancellers. Nothing panics while
/// holding it, but a poisoned lock still guards a usable channel (it
/// tracks its own broken state), so poisoning is ignored.
fn lock(ctrl: &Mutex<ControlChannel>) -> MutexGuard<'_, ControlChannel> {
    ctrl.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A TPM 2.0 backed by swtpm.
#[derive(Debug)]
pub struct SwtpmBackend {
    ctrl: Arc<Mutex<ControlChannel>>,
    data: DataConnection,
    capabilities: Capabilities,
    buffer: BufferSizes,
    /// The locality swtpm was last told; `None` forces the next SET_LOCALITY.
    locality: Option<u8>,
    /// Cached tpmEstablished; refreshed after anything that can change it.
    established: Option<bool>,
    timeouts: Timeouts,
    shutdown_on_drop: bool,
    // Last: the process (and its directory) go after the channels close.
    process: Option<SwtpmProcess>,
}

impl SwtpmBackend {
    /// Starts a private swtpm (see [`SwtpmProcess::spawn`]) and brings it
    /// up: capabilities, data channel, buffer size, INIT.
    pub fn spawn(config: SwtpmConfig) -> Result<Self, BackendError> {
        let process = SwtpmProcess::spawn(&config)?;
        let deadline = Deadline::after(config.timeouts.start);
        let data_channel = process.data_channel().clone();
        let started = process.control().and_then(|mut ctrl| {
            let data = connect_data(&data_channel, deadline)?;
            let (capabilities, buffer, data) = start(&mut ctrl, data, &data_channel, &config)?;
            Ok((ctrl, capabilities, buffer, data))
        });
        match started {
            Ok((ctrl, capabilities, buffer, data)) => Ok(Self::new(
                ctrl,
                data,
                capabilities,
                buffer,
                &config,
                Some(process),
            )),
            Err(e) => {
                // The control channel is closed by now, so dropping the
                // process can still send SHUTDOWN.
                let log = process.log_tail();
                tracing::warn!(error = %e, log = %log, "swtpm start-up failed");
                Err(start_failure(e, &log))
            }
        }
    }

    /// Takes over a swtpm someone else started, whose control socket is at
    /// `ctrl_path`, with default timeouts and the largest buffer.
    pub fn attach(ctrl_path: impl AsRef<Path>, data: DataChannel) -> Result<Self, BackendError> {
        let config = SwtpmConfig {
            data,
            ..SwtpmConfig::default()
        };
        Self::attach_with_config(ctrl_path, &config)
    }

    /// Like [`SwtpmBackend::attach`], with the data channel, buffer size
    /// and timeouts of `config` (its process settings are not used).
    pub fn attach_with_config(
        ctrl_path: impl AsRef<Path>,
        config: &SwtpmConfig,
    ) -> Result<Self, BackendError> {
        let mut ctrl = ControlChannel::connect(ctrl_path)?;
        let deadline = Deadline::after(config.timeouts.start);
        let data = connect_data(&config.data, deadline)?;
        let (capabilities, buffer, data) = start(&mut ctrl, data, &config.data, config)?;
        Ok(Self::new(ctrl, data, capabilities, buffer, config, None))
    }

    fn new(
        ctrl: ControlChannel,
        data: DataConnection,
        capabilities: Capabilities,
        buffer: BufferSizes,
        config: &SwtpmConfig,
        process: Option<SwtpmProcess>,
    ) -> Self {
        Self {
            ctrl: Arc::new(Mutex::new(ctrl)),
            data,
            capabilities,
            buffer,
            locality: None,
            established: None,
            timeouts: config.timeouts,
            shutdown_on_drop: true,
            process,
        }
    }

    /// The capabilities swtpm reported.
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// The buffer sizes negotiated at start (in use, min, max).
    pub fn buffer_sizes(&self) -> BufferSizes {
        self.buffer
    }

    /// The time bounds in force.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The swtpm process, when this backend started it.
    pub fn process(&self) -> Option<&SwtpmProcess> {
        self.process.as_ref()
    }

    /// The swtpm process id, when this backend started it.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(SwtpmProcess::pid)
    }

    /// Whether dropping the backend sends SHUTDOWN to an attached swtpm
    /// (default: yes, as QEMU does). A swtpm this backend spawned is always
    /// stopped with it.
    pub fn set_shutdown_on_drop(&mut self, shutdown: bool) {
        self.shutdown_on_drop = shutdown;
    }

    /// Runs `f` on the control channel, for commands the [`Backend`] trait
    /// does not cover. Cached locality and established flag are dropped
    /// afterwards, since `f` may change them.
    pub fn with_control<R>(
        &mut self,
        f: impl FnOnce(&mut ControlChannel) -> Result<R, BackendError>,
    ) -> Result<R, BackendError> {
        let result = f(&mut lock(&self.ctrl));
        self.locality = None;
        self.established = None;
        result
    }

    /// What swtpm offers: capabilities, buffer sizes (queried afresh) and
    /// GET_INFO's JSON when available.
    pub fn info(&mut self) -> Result<SwtpmInfo, BackendError> {
        let capabilities = self.capabilities;
        let (buffer, tpm_info_json) = {
            let mut ctrl = lock(&self.ctrl);
            let buffer = ctrl.set_buffer_size(0)?;
            let json = if capabilities.contains(ctrl::cap::GET_INFO) {
                match ctrl.get_info(INFO_CLASSES) {
                    Ok(json) => Some(json),
                    // An answered refusal leaves the channel usable: report
                    // the rest without the JSON.
                    Err(e @ BackendError::Control { .. }) => {
                        tracing::debug!(error = %e, "GET_INFO refused");
                        None
                    }
                    Err(e) => return Err(e),
                }
            } else {
                None
            };
            (buffer, json)
        };
        let version = match &self.process {
            Some(p) => process::version(p.binary()).ok(),
            None => None,
        };
        Ok(SwtpmInfo {
            version,
            capabilities,
            buffer,
            tpm_info_json,
        })
    }

    /// LOCK_STORAGE: takes the state storage lock again, retrying `retries`
    /// times; for a migration source that resumes after a failed migration.
    pub fn lock_storage(&mut self, retries: u32) -> Result<(), BackendError> {
        self.capabilities.require(ctrl::cap::LOCK_STORAGE)?;
        lock(&self.ctrl).lock_storage(retries)
    }

    /// The state as its separate blobs (see [`SavedState`]).
    pub fn save_blobs(&mut self) -> Result<SavedState, BackendError> {
        self.capabilities.require(ctrl::cap::GET_STATEBLOB)?;
        let mut ctrl = lock(&self.ctrl);
        let mut blobs = Vec::with_capacity(ctrl::blob::ALL.len());
        for blob_type in ctrl::blob::ALL {
            blobs.push(ctrl.get_state_blob(blob_type, ctrl::blob::FLAG_DECRYPTED)?);
        }
        Ok(SavedState { blobs })
    }

    /// Restores `state`: STOP, SET_STATEBLOB for each non-empty blob, then
    /// INIT with "delete volatile" so the restored volatile state is used
    /// once. If a step fails the TPM stays stopped, since a half-restored
    /// TPM must not run; a later restore or [`Backend::reset`] starts it
    /// again.
    pub fn restore_blobs(&mut self, state: &SavedState) -> Result<(), BackendError> {
        self.capabilities.require(ctrl::cap::SET_STATEBLOB)?;
        self.established = None;
        let mut ctrl = lock(&self.ctrl);
        ctrl.stop()?;
        for blob in state.blobs.iter().filter(|b| !b.data.is_empty()) {
            let flags = blob.flags & ctrl::blob::FLAG_ENCRYPTED;
            ctrl.set_state_blob(blob.blob_type, flags, &blob.data)?;
        }
        ctrl.init(ctrl::init::DELETE_VOLATILE)
    }

    /// Adds the process's fate to a closed-channel error: a dead swtpm is
    /// the usual cause.
    fn explain(&mut self, e: BackendError) -> BackendError {
        match e {
            BackendError::ChannelClosed(context) => {
                let status = self
                    .process
                    .as_mut()
                    .and_then(|p| p.wait_exit(Duration::from_millis(100)).ok().flatten());
                match status {
                    Some(status) => {
                        BackendError::ChannelClosed(format!("{context} (swtpm exited: {status})"))
                    }
                    None => BackendError::ChannelClosed(context),
                }
            }
            other => other,
        }
    }
}

/// swtpm's log line when another process holds the state directory's lock.
const LOCKED_STATE_DIR: &str = "Could not lock access to lockfile";

/// A start-up failure with the cause swtpm only wrote to its log: a state
/// directory another swtpm holds makes INIT fail with a bare result code.
fn start_failure(e: BackendError, log: &str) -> BackendError {
    match log.lines().find(|l| l.contains(LOCKED_STATE_DIR)) {
        Some(line) => BackendError::Process(format!(
            "the state directory is in use by another swtpm (swtpm: \"{}\"); {e}",
            line.trim()
        )),
        None => e,
    }
}

/// QEMU's start-up sequence: GET_CAPABILITY (checking what vtpm needs),
/// SET_DATAFD for a socketpair (`data` is `None`), STOP, SET_BUFFERSIZE(0),
/// STOP, SET_BUFFERSIZE(wanted), INIT(0).
fn start(
    ctrl: &mut ControlChannel,
    data: Option<DataConnection>,
    kind: &DataChannel,
    config: &SwtpmConfig,
) -> Result<(Capabilities, BufferSizes, DataConnection), BackendError> {
    ctrl.set_reply_timeout(config.timeouts.control_reply)?;
    ctrl.set_cancel_reply_timeout(config.timeouts.command);
    let capabilities = ctrl.get_capability()?;
    for bit in REQUIRED_CAPABILITIES {
        capabilities.require(bit)?;
    }
    let mut data = match data {
        Some(data) => data,
        None => {
            capabilities.require(ctrl::cap::SET_DATAFD)?;
            let (ours, theirs) = UnixStream::pair()
                .map_err(|e| BackendError::io("creating the data socketpair", e))?;
            ctrl.set_data_fd(theirs.as_fd())?;
            // swtpm holds its own copy now; ours must close so that swtpm's
            // exit shows up as end of stream.
            drop(theirs);
            DataConnection::from_unix(ours)?
        }
    };
    data.set_command_timeout(config.timeouts.command)?;
    ctrl.stop()?;
    let offered = ctrl.set_buffer_size(0)?;
    ctrl.stop()?;
    // 0 would be a query, not a size.
    let wanted = config
        .buffer_size
        .filter(|&n| n != 0)
        .unwrap_or(offered.max);
    let buffer = ctrl.set_buffer_size(wanted)?;
    if buffer.in_use != wanted {
        tracing::info!(
            wanted,
            granted = buffer.in_use,
            "swtpm clamped the buffer size"
        );
    }
    ctrl.init(0)?;
    tracing::debug!(?buffer, caps = ?capabilities.names(), data = ?kind, "swtpm is up");
    Ok((capabilities, buffer, data))
}

/// Connects the data channel of `kind`, retrying until `deadline` while the
/// server is not listening yet. A socketpair is made later, during start-up.
fn connect_data(
    kind: &DataChannel,
    deadline: Deadline,
) -> Result<Option<DataConnection>, BackendError> {
    let connect = || match kind {
        DataChannel::SocketPair => Ok(None),
        DataChannel::Unix(Some(path)) => DataConnection::connect_unix(path).map(Some),
        DataChannel::Unix(None) => Err(BackendError::Unsupported(
            "attaching to a Unix data socket needs its path",
        )),
        DataChannel::Tcp(addr) => DataConnection::connect_tcp(*addr).map(Some),
    };
    loop {
        match connect() {
            Err(BackendError::Io { .. }) if !deadline.passed() => {
                thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

impl Backend for SwtpmBackend {
    fn name(&self) -> &'static str {
        "swtpm"
    }

    fn buffer_size(&self) -> usize {
        self.buffer.in_use as usize
    }

    fn execute(
        &mut self,
        locality: u8,
        command: &[u8],
        response: &mut Vec<u8>,
    ) -> Result<(), BackendError> {
        response.clear();
        // Callers check the size (check_command); the data channel refuses
        // an oversize command once more before sending, since swtpm reads a
        // command by its header's size and more bytes than its buffer would
        // put the stream out of step.
        let buffer_size = self.buffer_size();
        // swtpm frames commands by their header: one whose size field
        // disagrees with its length would split or merge commands on the
        // stream. Answer it here as a TPM does, without sending it.
        let framed = Header::parse(command)
            .map(|h| h.size as usize == command.len())
            .unwrap_or(false);
        if !framed || command.len() < HEADER_SIZE {
            response.extend_from_slice(&error_response(ResponseCode::COMMAND_SIZE));
            return Ok(());
        }
        if self.locality != Some(locality) {
            self.locality = None;
            let set = lock(&self.ctrl).set_locality(locality);
            set.map_err(|e| self.explain(e))?;
            self.locality = Some(locality);
        }
        // The control lock is not held here, so a canceller can reach swtpm
        // while this thread waits for the response.
        self.data
            .transact(command, response, buffer_size)
            .map_err(|e| self.explain(e))
    }

    fn canceller(&self) -> Option<Arc<dyn Cancel>> {
        if !self.capabilities.contains(ctrl::cap::CANCEL_TPM_CMD) {
            return None;
        }
        Some(Arc::new(SwtpmCanceller {
            ctrl: Arc::clone(&self.ctrl),
        }))
    }

    fn established(&mut self) -> Result<bool, BackendError> {
        if let Some(flag) = self.established {
            return Ok(flag);
        }
        let flag = lock(&self.ctrl).get_tpm_established()?;
        self.established = Some(flag);
        Ok(flag)
    }

    fn reset_established(&mut self, locality: u8) -> Result<(), BackendError> {
        self.established = None;
        lock(&self.ctrl).reset_tpm_established(locality)
    }

    /// A power cycle as QEMU's reset does it: STOP, SET_BUFFERSIZE (the size
    /// in use), INIT(0). The next command must be TPM2_Startup.
    fn reset(&mut self) -> Result<(), BackendError> {
        self.established = None;
        let mut ctrl = lock(&self.ctrl);
        ctrl.stop()?;
        let buffer = ctrl.set_buffer_size(self.buffer.in_use)?;
        ctrl.init(0)?;
        drop(ctrl);
        self.buffer = buffer;
        Ok(())
    }

    /// GET_STATEBLOB (decrypted) for the permanent, volatile and savestate
    /// blobs, framed as [`SavedState`] describes.
    fn save_state(&mut self) -> Result<Vec<u8>, BackendError> {
        self.save_blobs()?.encode()
    }

    /// Checks the framing first (a bad blob leaves the TPM running), then
    /// [`SwtpmBackend::restore_blobs`].
    fn restore_state(&mut self, state: &[u8]) -> Result<(), BackendError> {
        let state = SavedState::decode(state)?;
        self.restore_blobs(&state)
    }

    /// LOCK_STORAGE, as QEMU sends it when a source resumes; a swtpm
    /// without the capability (0.7.x) never gave its lock up, so there is
    /// nothing to take back.
    fn resume_after_failed_migration(&mut self) -> Result<(), BackendError> {
        if !self.capabilities.contains(ctrl::cap::LOCK_STORAGE) {
            tracing::info!("swtpm lacks LOCK_STORAGE; its storage was never unlocked");
            return Ok(());
        }
        self.lock_storage(RESUME_LOCK_RETRIES)
    }
}

/// LOCK_STORAGE retries on resume (QEMU uses 10 as well; each waits ~10 ms
/// in swtpm).
const RESUME_LOCK_RETRIES: u32 = 10;

impl Drop for SwtpmBackend {
    fn drop(&mut self) {
        if !self.shutdown_on_drop {
            // A spawned process still stops when its own handle drops.
            return;
        }
        {
            let mut ctrl = lock(&self.ctrl);
            if ctrl.is_usable() {
                // A stop should not wait out the full reply bound.
                let bound = self.timeouts.control_reply.min(Duration::from_secs(2));
                let sent = ctrl.set_reply_timeout(bound).and_then(|()| ctrl.shutdown());
                if let Err(e) = sent {
                    tracing::debug!(error = %e, "SHUTDOWN on drop failed");
                }
            }
        }
        if let Some(process) = self.process.as_mut() {
            match process.wait_exit(self.timeouts.stop) {
                Ok(Some(_)) => {}
                _ => {
                    tracing::warn!(pid = process.pid(), "swtpm did not exit; killing it");
                    let _ = process.kill();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_comes_from_the_environment_when_set() {
        assert_eq!(binary_from_env(None), PathBuf::from("swtpm"));
        assert_eq!(binary_from_env(Some("".into())), PathBuf::from("swtpm"));
        assert_eq!(
            binary_from_env(Some("/opt/swtpm/bin/swtpm".into())),
            PathBuf::from("/opt/swtpm/bin/swtpm")
        );
    }

    #[test]
    fn a_locked_state_dir_is_named_from_the_log() {
        let init = || BackendError::Control {
            command: "INIT",
            result: 9,
        };
        let log = "SWTPM_NVRAM_Lock_Dir: Could not lock access to lockfile: Resource temporarily unavailable\n\
                   Error: Could not initialize libtpms.";
        let e = start_failure(init(), log).to_string();
        assert!(e.contains("in use by another swtpm"), "{e}");
        assert!(e.contains("Could not lock access to lockfile"), "{e}");
        assert!(e.contains("INIT failed with result 0x9"), "{e}");
        assert!(matches!(
            start_failure(init(), "Error: something else"),
            BackendError::Control {
                command: "INIT",
                ..
            }
        ));
    }

    #[test]
    fn default_config_matches_qemu_and_the_documented_bounds() {
        let config = SwtpmConfig::default();
        assert_eq!(config.data, DataChannel::SocketPair);
        assert_eq!(config.buffer_size, None);
        assert_eq!(config.timeouts.control_reply, Duration::from_secs(10));
        assert_eq!(config.timeouts.command, Duration::from_secs(300));
        assert!(!config.not_need_init);
    }
}

/// The crate README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
