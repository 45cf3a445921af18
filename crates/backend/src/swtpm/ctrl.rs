//! The swtpm control channel (socket form): a typed client for every
//! control command.
//!
//! A request is a big-endian `u32` command code followed by the command's
//! body; the reply is the response body only, without any framing. Three
//! rules keep client and server in step:
//!
//! - The `u32` result is read first. A failed command's reply is only that
//!   result, so nothing more is read (and nothing more is waited for).
//! - GET_CAPABILITY is the exception with no result field: its reply is a
//!   bare 8-byte bitmask.
//! - GET_STATEBLOB, once the TPM runs, answers its 16-byte header even when
//!   the result is not zero (0x800, "non-fatal", marks an empty blob). The
//!   client reads that header for non-fatal results and discards any bytes
//!   the server already queued after other failures, so the next request
//!   starts on a clean stream.
//!
//! swtpm serves one request at a time and gives up on a request whose bytes
//! do not all arrive within about 500 ms, so every request goes out as one
//! buffer. Every method takes `&mut self`: one request is in flight at a
//! time. A reply that does not arrive within the reply timeout is a
//! [`BackendError::Timeout`]; after a timeout or a protocol violation the
//! stream may hold a late or partial reply, so the channel refuses further
//! requests instead of misreading them.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::deadline::Deadline;

use rustix::net::{RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

use crate::BackendError;

/// Control command codes (the `u32` that starts every request).
pub mod cmd {
    /// Query the capability bitmask.
    pub const GET_CAPABILITY: u32 = 1;
    /// (Re)initialise the TPM: the power-on of the emulated chip.
    pub const INIT: u32 = 2;
    /// Stop the TPM and end the swtpm process.
    pub const SHUTDOWN: u32 = 3;
    /// Read the tpmEstablished flag.
    pub const GET_TPMESTABLISHED: u32 = 4;
    /// Set the locality of the following TPM commands.
    pub const SET_LOCALITY: u32 = 5;
    /// Start an H-CRTM hash sequence.
    pub const HASH_START: u32 = 6;
    /// Feed data into the H-CRTM hash sequence.
    pub const HASH_DATA: u32 = 7;
    /// End the H-CRTM hash sequence (extends PCR 0 or 17).
    pub const HASH_END: u32 = 8;
    /// Ask the TPM to cancel the command it is executing.
    pub const CANCEL_TPM_CMD: u32 = 9;
    /// Write the volatile state to the state directory.
    pub const STORE_VOLATILE: u32 = 10;
    /// Clear the tpmEstablished flag on behalf of a locality.
    pub const RESET_TPMESTABLISHED: u32 = 11;
    /// Read one state blob.
    pub const GET_STATEBLOB: u32 = 12;
    /// Write one state blob (TPM stopped).
    pub const SET_STATEBLOB: u32 = 13;
    /// Stop the TPM without ending the process.
    pub const STOP: u32 = 14;
    /// Read runtime configuration flags.
    pub const GET_CONFIG: u32 = 15;
    /// Hand over the data channel's file descriptor.
    pub const SET_DATAFD: u32 = 16;
    /// Query or set the TPM's I/O buffer size.
    pub const SET_BUFFERSIZE: u32 = 17;
    /// Read implementation information as JSON.
    pub const GET_INFO: u32 = 18;
    /// Take the lock on the state storage again (after a failed migration).
    pub const LOCK_STORAGE: u32 = 19;

    /// The symbolic name of a control command, for messages.
    pub fn name(command: u32) -> &'static str {
        match command {
            GET_CAPABILITY => "GET_CAPABILITY",
            INIT => "INIT",
            SHUTDOWN => "SHUTDOWN",
            GET_TPMESTABLISHED => "GET_TPMESTABLISHED",
            SET_LOCALITY => "SET_LOCALITY",
            HASH_START => "HASH_START",
            HASH_DATA => "HASH_DATA",
            HASH_END => "HASH_END",
            CANCEL_TPM_CMD => "CANCEL_TPM_CMD",
            STORE_VOLATILE => "STORE_VOLATILE",
            RESET_TPMESTABLISHED => "RESET_TPMESTABLISHED",
            GET_STATEBLOB => "GET_STATEBLOB",
            SET_STATEBLOB => "SET_STATEBLOB",
            STOP => "STOP",
            GET_CONFIG => "GET_CONFIG",
            SET_DATAFD => "SET_DATAFD",
            SET_BUFFERSIZE => "SET_BUFFERSIZE",
            GET_INFO => "GET_INFO",
            LOCK_STORAGE => "LOCK_STORAGE",
            _ => "UNKNOWN",
        }
    }
}

/// Capability bits of the GET_CAPABILITY bitmask.
pub mod cap {
    /// INIT is supported.
    pub const INIT: u64 = 1 << 0;
    /// SHUTDOWN is supported.
    pub const SHUTDOWN: u64 = 1 << 1;
    /// GET_TPMESTABLISHED is supported.
    pub const GET_TPMESTABLISHED: u64 = 1 << 2;
    /// SET_LOCALITY is supported.
    pub const SET_LOCALITY: u64 = 1 << 3;
    /// HASH_START, HASH_DATA and HASH_END are supported.
    pub const HASHING: u64 = 1 << 4;
    /// CANCEL_TPM_CMD is supported.
    pub const CANCEL_TPM_CMD: u64 = 1 << 5;
    /// STORE_VOLATILE is supported.
    pub const STORE_VOLATILE: u64 = 1 << 6;
    /// RESET_TPMESTABLISHED is supported.
    pub const RESET_TPMESTABLISHED: u64 = 1 << 7;
    /// GET_STATEBLOB is supported.
    pub const GET_STATEBLOB: u64 = 1 << 8;
    /// SET_STATEBLOB is supported.
    pub const SET_STATEBLOB: u64 = 1 << 9;
    /// STOP is supported.
    pub const STOP: u64 = 1 << 10;
    /// GET_CONFIG is supported.
    pub const GET_CONFIG: u64 = 1 << 11;
    /// SET_DATAFD is supported.
    pub const SET_DATAFD: u64 = 1 << 12;
    /// SET_BUFFERSIZE is supported.
    pub const SET_BUFFERSIZE: u64 = 1 << 13;
    /// GET_INFO is supported.
    pub const GET_INFO: u64 = 1 << 14;
    /// The data channel accepts commands behind a send-command prefix
    /// header (vtpm sends bare commands and does not use it).
    pub const SEND_COMMAND_HEADER: u64 = 1 << 15;
    /// LOCK_STORAGE is supported.
    pub const LOCK_STORAGE: u64 = 1 << 16;

    /// Every capability bit with its name, in bit order.
    pub const ALL: [(u64, &str); 17] = [
        (INIT, "INIT"),
        (SHUTDOWN, "SHUTDOWN"),
        (GET_TPMESTABLISHED, "GET_TPMESTABLISHED"),
        (SET_LOCALITY, "SET_LOCALITY"),
        (HASHING, "HASHING"),
        (CANCEL_TPM_CMD, "CANCEL_TPM_CMD"),
        (STORE_VOLATILE, "STORE_VOLATILE"),
        (RESET_TPMESTABLISHED, "RESET_TPMESTABLISHED"),
        (GET_STATEBLOB, "GET_STATEBLOB"),
        (SET_STATEBLOB, "SET_STATEBLOB"),
        (STOP, "STOP"),
        (GET_CONFIG, "GET_CONFIG"),
        (SET_DATAFD, "SET_DATAFD"),
        (SET_BUFFERSIZE, "SET_BUFFERSIZE"),
        (GET_INFO, "GET_INFO"),
        (SEND_COMMAND_HEADER, "SEND_COMMAND_HEADER"),
        (LOCK_STORAGE, "LOCK_STORAGE"),
    ];

    /// The name of one capability bit, or `None` for a bit this crate does
    /// not know.
    pub fn name(bit: u64) -> Option<&'static str> {
        ALL.iter().find(|(b, _)| *b == bit).map(|(_, n)| *n)
    }

    /// The names of the known capabilities set in `bits`, in bit order.
    pub fn names(bits: u64) -> Vec<&'static str> {
        ALL.iter()
            .filter(|(b, _)| bits & b != 0)
            .map(|(_, n)| *n)
            .collect()
    }

    /// The bits of `bits` that this crate has no name for.
    pub fn unknown(bits: u64) -> u64 {
        let known = ALL.iter().fold(0, |acc, (b, _)| acc | b);
        bits & !known
    }
}

/// Result codes of control commands (TPM 1.2-style codes, as swtpm uses them).
pub mod result {
    /// Success.
    pub const SUCCESS: u32 = 0;
    /// A parameter is bad (also: a request of the wrong length).
    pub const BAD_PARAMETER: u32 = 0x03;
    /// The operation failed.
    pub const FAIL: u32 = 0x09;
    /// Unknown command, or a command not allowed in the TPM's current state
    /// (for example SET_BUFFERSIZE while the TPM runs, or GET_STATEBLOB
    /// before INIT).
    pub const BAD_ORDINAL: u32 = 0x0A;
    /// Not enough space.
    pub const SIZE: u32 = 0x17;
    /// An I/O error (also: SET_DATAFD when a data channel is already set).
    pub const IOERROR: u32 = 0x1F;
    /// A locality out of range, or not allowed for the operation.
    pub const BAD_LOCALITY: u32 = 0x3D;
    /// The non-fatal bit: set in GET_STATEBLOB's result when the blob is empty.
    pub const NON_FATAL: u32 = 0x800;

    /// The symbolic name of a result code, or `None` for one this crate
    /// does not name.
    pub fn name(result: u32) -> Option<&'static str> {
        Some(match result {
            SUCCESS => "TPM_SUCCESS",
            BAD_PARAMETER => "TPM_BAD_PARAMETER",
            FAIL => "TPM_FAIL",
            BAD_ORDINAL => "TPM_BAD_ORDINAL",
            SIZE => "TPM_SIZE",
            IOERROR => "TPM_IOERROR",
            BAD_LOCALITY => "TPM_BAD_LOCALITY",
            NON_FATAL => "TPM_RETRY (non-fatal)",
            _ => return None,
        })
    }
}

/// State blob types and flags of GET_STATEBLOB / SET_STATEBLOB.
pub mod blob {
    /// The permanent state (NV, seeds, hierarchy settings).
    pub const PERMANENT: u32 = 1;
    /// The volatile state (loaded objects, sessions, PCRs).
    pub const VOLATILE: u32 = 2;
    /// The state saved by TPM2_Shutdown(STATE).
    pub const SAVESTATE: u32 = 3;
    /// The three types, in the order they are saved and restored.
    pub const ALL: [u32; 3] = [PERMANENT, VOLATILE, SAVESTATE];

    /// Request flag of GET_STATEBLOB: return the blob decrypted (when
    /// swtpm encrypts its state files with a key it knows).
    pub const FLAG_DECRYPTED: u32 = 1;
    /// Reply flag of GET_STATEBLOB / request flag of SET_STATEBLOB: the
    /// blob is encrypted (with a migration key).
    pub const FLAG_ENCRYPTED: u32 = 2;

    /// The name of a blob type, or `None` for an unknown type.
    pub fn name(blob_type: u32) -> Option<&'static str> {
        Some(match blob_type {
            PERMANENT => "permanent",
            VOLATILE => "volatile",
            SAVESTATE => "savestate",
            _ => return None,
        })
    }
}

/// Flags of INIT.
pub mod init {
    /// Delete the volatile state file after loading it.
    pub const DELETE_VOLATILE: u32 = 1;
}

/// Flags of GET_INFO (libtpms's information classes).
pub mod info {
    /// `{"TPMSpecification": {family, level, revision}}`.
    pub const TPM_SPECIFICATION: u64 = 1 << 0;
    /// `{"TPMAttributes": {manufacturer, version, model}}`.
    pub const TPM_ATTRIBUTES: u64 = 1 << 1;
    /// `{"TPMFeatures": {RSAKeySizes, ...}}` (libtpms 0.9 and later; older
    /// versions ignore the bit).
    pub const TPM_FEATURES: u64 = 1 << 2;
}

/// Flags of GET_CONFIG.
pub mod config {
    /// swtpm encrypts its state files with a key.
    pub const FILE_KEY: u32 = 1;
    /// swtpm encrypts state blobs for migration with a key.
    pub const MIGRATION_KEY: u32 = 2;
}

/// Largest state blob accepted in a reply; a larger length is treated as
/// garbage rather than allocated. libtpms 0.9 blobs are a few KiB.
pub const MAX_STATE_BLOB: u32 = 16 << 20;
/// Largest GET_INFO text accepted in a reply.
pub const MAX_INFO_TEXT: u32 = 64 << 10;
/// Largest buffer size accepted from SET_BUFFERSIZE, a guard on host memory
/// (libtpms 0.9 reports 4096, PQC builds 8192).
pub const MAX_BUFFER_SIZE: u32 = 1 << 20;
/// The data sent in one HASH_DATA request (swtpm's request structure holds
/// this much).
pub const HASH_DATA_CHUNK: usize = 4096;

/// The GET_CAPABILITY bitmask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities(pub u64);

impl Capabilities {
    /// The raw bitmask.
    pub fn bits(self) -> u64 {
        self.0
    }

    /// True when every bit of `bits` is set.
    pub fn contains(self, bits: u64) -> bool {
        self.0 & bits == bits
    }

    /// The names of the known capabilities that are set.
    pub fn names(self) -> Vec<&'static str> {
        cap::names(self.0)
    }

    /// `Ok` when `bit` is set, else [`BackendError::MissingCapability`]
    /// naming it.
    pub fn require(self, bit: u64) -> Result<(), BackendError> {
        if self.contains(bit) {
            Ok(())
        } else {
            Err(BackendError::MissingCapability(
                cap::name(bit).unwrap_or("UNKNOWN"),
            ))
        }
    }
}

/// The buffer sizes SET_BUFFERSIZE reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferSizes {
    /// The size in use: the largest command and response.
    pub in_use: u32,
    /// The smallest size the TPM accepts.
    pub min: u32,
    /// The largest size the TPM accepts.
    pub max: u32,
}

/// One state blob as GET_STATEBLOB returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateBlob {
    /// [`blob::PERMANENT`], [`blob::VOLATILE`] or [`blob::SAVESTATE`].
    pub blob_type: u32,
    /// The reply's state flags ([`blob::FLAG_ENCRYPTED`] when the blob is
    /// still encrypted).
    pub flags: u32,
    /// The blob; empty when swtpm has none of this type.
    pub data: Vec<u8>,
}

/// Why a channel refuses further requests.
#[derive(Debug, Clone)]
struct Broken {
    closed: bool,
    reason: String,
}

/// The outcome of a bounded read that did not fill its buffer.
enum ReadFailure {
    /// End of stream after `got` bytes of this piece.
    Eof { got: usize },
    /// The deadline passed.
    Timeout,
    /// Another I/O error.
    Io(io::Error),
}

/// Reads exactly `buf.len()` bytes from `stream` before `deadline`.
fn read_exact_by(
    stream: &mut UnixStream,
    buf: &mut [u8],
    deadline: Deadline,
) -> Result<(), ReadFailure> {
    let mut got = 0;
    while got < buf.len() {
        let remaining = deadline.remaining();
        if remaining.is_zero() {
            return Err(ReadFailure::Timeout);
        }
        stream
            .set_read_timeout(Some(remaining))
            .map_err(ReadFailure::Io)?;
        match stream.read(&mut buf[got..]) {
            Ok(0) => return Err(ReadFailure::Eof { got }),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Err(ReadFailure::Timeout),
            Err(e) => return Err(ReadFailure::Io(e)),
        }
    }
    Ok(())
}

/// True for the errors a socket timeout produces.
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// True for the errors a peer that went away produces.
pub(crate) fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::UnexpectedEof
    )
}

/// Sends all of `bytes` on a socket. `MSG_NOSIGNAL` keeps a closed peer
/// from raising SIGPIPE in a host process that has not ignored it; the
/// socket's send timeout bounds each call.
pub(crate) fn send_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::net::send(fd, bytes, SendFlags::NOSIGNAL) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A connection to swtpm's control socket.
///
/// ```no_run
/// use vtpm_backend::swtpm::ctrl::{cap, ControlChannel};
/// # fn main() -> Result<(), vtpm_backend::BackendError> {
/// let mut ctrl = ControlChannel::connect("/run/swtpm/ctrl.sock")?;
/// let caps = ctrl.get_capability()?;
/// println!("{:?}", caps.names());
/// caps.require(cap::SET_BUFFERSIZE)?;
/// let sizes = ctrl.set_buffer_size(0)?;
/// println!("buffer {} (min {}, max {})", sizes.in_use, sizes.min, sizes.max);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ControlChannel {
    stream: UnixStream,
    reply_timeout: Duration,
    cancel_reply_timeout: Duration,
    broken: Option<Broken>,
}

impl ControlChannel {
    /// Default bound on a reply. swtpm answers within about 500 ms; the
    /// margin covers a loaded host.
    pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default bound on the reply to CANCEL_TPM_CMD. swtpm 0.7.1 answers a
    /// cancel sent during a TPM command only when that command has
    /// finished (measured), so this matches the command bound.
    pub const DEFAULT_CANCEL_REPLY_TIMEOUT: Duration = Duration::from_secs(300);

    /// Connects to the control socket at `path` with the default timeouts.
    pub fn connect(path: impl AsRef<Path>) -> Result<Self, BackendError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path).map_err(|e| {
            BackendError::io(
                format!("connecting to the swtpm control socket {}", path.display()),
                e,
            )
        })?;
        Self::from_stream(stream)
    }

    /// Wraps an already connected control socket.
    pub fn from_stream(stream: UnixStream) -> Result<Self, BackendError> {
        let mut channel = Self {
            stream,
            reply_timeout: Self::DEFAULT_REPLY_TIMEOUT,
            cancel_reply_timeout: Self::DEFAULT_CANCEL_REPLY_TIMEOUT,
            broken: None,
        };
        channel.set_reply_timeout(Self::DEFAULT_REPLY_TIMEOUT)?;
        Ok(channel)
    }

    /// Sets the bound on a reply (and on sending a request).
    pub fn set_reply_timeout(&mut self, timeout: Duration) -> Result<(), BackendError> {
        let timeout = nonzero(timeout);
        self.reply_timeout = timeout;
        self.stream
            .set_write_timeout(Some(timeout))
            .map_err(|e| BackendError::io("setting the control channel's send timeout", e))
    }

    /// Sets the bound on the reply to CANCEL_TPM_CMD, which swtpm may hold
    /// back until the running TPM command ends (use the command timeout).
    pub fn set_cancel_reply_timeout(&mut self, timeout: Duration) {
        self.cancel_reply_timeout = nonzero(timeout);
    }

    /// The bound on a reply.
    pub fn reply_timeout(&self) -> Duration {
        self.reply_timeout
    }

    /// False once a timeout, a protocol violation or a closed socket has
    /// made the channel refuse further requests.
    pub fn is_usable(&self) -> bool {
        self.broken.is_none()
    }

    /// GET_CAPABILITY: the bitmask of supported control commands.
    pub fn get_capability(&mut self) -> Result<Capabilities, BackendError> {
        let mut exchange = self.begin(cmd::GET_CAPABILITY, &[])?;
        // The one reply without a result field.
        let mut caps = [0u8; 8];
        exchange.read(self, &mut caps)?;
        self.finish_reply(cmd::GET_CAPABILITY)?;
        Ok(Capabilities(u64::from_be_bytes(caps)))
    }

    /// INIT: (re)starts the TPM. `flags` is 0 or [`init::DELETE_VOLATILE`].
    pub fn init(&mut self, flags: u32) -> Result<(), BackendError> {
        // swtpm rejects an INIT whose body is not exactly 4 bytes.
        self.simple(cmd::INIT, &flags.to_be_bytes())
    }

    /// SHUTDOWN: stops the TPM; the swtpm process then exits.
    pub fn shutdown(&mut self) -> Result<(), BackendError> {
        self.simple(cmd::SHUTDOWN, &[])
    }

    /// GET_TPMESTABLISHED: the tpmEstablished flag.
    pub fn get_tpm_established(&mut self) -> Result<bool, BackendError> {
        let mut exchange = self.begin(cmd::GET_TPMESTABLISHED, &[])?;
        exchange.result(self)?;
        // One flag byte and three bytes of padding.
        let mut rest = [0u8; 4];
        exchange.read(self, &mut rest)?;
        self.finish_reply(cmd::GET_TPMESTABLISHED)?;
        Ok(rest[0] != 0)
    }

    /// SET_LOCALITY: the locality (0..=4) of the following TPM commands.
    pub fn set_locality(&mut self, locality: u8) -> Result<(), BackendError> {
        // One byte is enough for swtpm; padded to 4 like QEMU's request.
        self.simple(cmd::SET_LOCALITY, &[locality, 0, 0, 0])
    }

    /// HASH_START: starts an H-CRTM hash sequence.
    pub fn hash_start(&mut self) -> Result<(), BackendError> {
        self.simple(cmd::HASH_START, &[])
    }

    /// HASH_DATA: hashes `data`, sent in requests of at most
    /// [`HASH_DATA_CHUNK`] bytes.
    pub fn hash_data(&mut self, data: &[u8]) -> Result<(), BackendError> {
        for chunk in data.chunks(HASH_DATA_CHUNK) {
            let mut body = Vec::with_capacity(4 + chunk.len());
            body.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
            body.extend_from_slice(chunk);
            self.simple(cmd::HASH_DATA, &body)?;
        }
        Ok(())
    }

    /// HASH_END: ends the H-CRTM hash sequence.
    pub fn hash_end(&mut self) -> Result<(), BackendError> {
        self.simple(cmd::HASH_END, &[])
    }

    /// CANCEL_TPM_CMD: asks the TPM to cancel the running command. The reply
    /// may come only after that command ends; see
    /// [`ControlChannel::set_cancel_reply_timeout`].
    pub fn cancel_tpm_cmd(&mut self) -> Result<(), BackendError> {
        let mut exchange = self.begin(cmd::CANCEL_TPM_CMD, &[])?;
        exchange.deadline = Deadline::after(self.cancel_reply_timeout);
        exchange.result(self)?;
        self.finish_reply(cmd::CANCEL_TPM_CMD)
    }

    /// STORE_VOLATILE: writes the volatile state into the state directory;
    /// the next INIT(0) resumes it.
    pub fn store_volatile(&mut self) -> Result<(), BackendError> {
        self.simple(cmd::STORE_VOLATILE, &[])
    }

    /// RESET_TPMESTABLISHED: clears the tpmEstablished flag on behalf of
    /// `locality` (swtpm accepts 3 and 4).
    pub fn reset_tpm_established(&mut self, locality: u8) -> Result<(), BackendError> {
        self.simple(cmd::RESET_TPMESTABLISHED, &[locality, 0, 0, 0])
    }

    /// GET_STATEBLOB: one state blob of `blob_type` (see [`blob`]), with
    /// request `flags` (usually [`blob::FLAG_DECRYPTED`]). An empty blob
    /// (result with [`result::NON_FATAL`]) is `Ok` with empty data.
    pub fn get_state_blob(
        &mut self,
        blob_type: u32,
        flags: u32,
    ) -> Result<StateBlob, BackendError> {
        let command = cmd::GET_STATEBLOB;
        let mut body = [0u8; 12];
        body[0..4].copy_from_slice(&flags.to_be_bytes());
        body[4..8].copy_from_slice(&blob_type.to_be_bytes());
        // Offset 0: on a socket swtpm returns the whole blob in one reply.
        let mut exchange = self.begin(command, &body)?;
        let result = exchange.raw_result(self)?;
        if result != result::SUCCESS && result & result::NON_FATAL == 0 {
            return Err(self.failed(command, result));
        }
        let mut header = [0u8; 12];
        exchange.read(self, &mut header)?;
        let reply_flags = be32(&header[0..4]);
        let total = be32(&header[4..8]);
        let length = be32(&header[8..12]);
        if result != result::SUCCESS {
            // Non-fatal: nothing of this type; swtpm sends no data.
            self.finish_reply(command)?;
            return Ok(StateBlob {
                blob_type,
                flags: reply_flags,
                data: Vec::new(),
            });
        }
        if length != total {
            return Err(self.protocol(format!(
                "GET_STATEBLOB reply carries {length} of {total} bytes; \
                 a socket reply must hold the whole blob"
            )));
        }
        if length > MAX_STATE_BLOB {
            return Err(self.protocol(format!(
                "GET_STATEBLOB reply announces {length} bytes, above the \
                 {MAX_STATE_BLOB}-byte limit"
            )));
        }
        let mut data = vec![0u8; length as usize];
        exchange.read(self, &mut data)?;
        self.finish_reply(command)?;
        Ok(StateBlob {
            blob_type,
            flags: reply_flags,
            data,
        })
    }

    /// SET_STATEBLOB: replaces the blob of `blob_type` with `data`; the TPM
    /// must be stopped. `flags` is 0 or [`blob::FLAG_ENCRYPTED`].
    pub fn set_state_blob(
        &mut self,
        blob_type: u32,
        flags: u32,
        data: &[u8],
    ) -> Result<(), BackendError> {
        let length = u32::try_from(data.len())
            .ok()
            .filter(|&n| n <= MAX_STATE_BLOB)
            .ok_or_else(|| {
                BackendError::State(format!(
                    "a {}-byte state blob exceeds the {MAX_STATE_BLOB}-byte limit",
                    data.len()
                ))
            })?;
        let mut body = Vec::with_capacity(12 + data.len());
        body.extend_from_slice(&flags.to_be_bytes());
        body.extend_from_slice(&blob_type.to_be_bytes());
        body.extend_from_slice(&length.to_be_bytes());
        body.extend_from_slice(data);
        self.simple(cmd::SET_STATEBLOB, &body)
    }

    /// STOP: stops the TPM; the process keeps running and answers data
    /// commands with TPM_RC_FAILURE until the next INIT.
    pub fn stop(&mut self) -> Result<(), BackendError> {
        self.simple(cmd::STOP, &[])
    }

    /// GET_CONFIG: runtime configuration flags (see [`config`]).
    pub fn get_config(&mut self) -> Result<u32, BackendError> {
        let mut exchange = self.begin(cmd::GET_CONFIG, &[])?;
        exchange.result(self)?;
        let mut flags = [0u8; 4];
        exchange.read(self, &mut flags)?;
        self.finish_reply(cmd::GET_CONFIG)?;
        Ok(u32::from_be_bytes(flags))
    }

    /// SET_DATAFD: hands `fd` (one end of a stream socket) to swtpm as its
    /// data channel, passed with SCM_RIGHTS. swtpm answers IOERROR when it
    /// already has a data channel.
    pub fn set_data_fd(&mut self, fd: BorrowedFd<'_>) -> Result<(), BackendError> {
        let command = cmd::SET_DATAFD;
        self.check_usable()?;
        let request = command.to_be_bytes();
        let fds = [fd];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(BackendError::io(
                "SET_DATAFD",
                io::Error::other("no room for the descriptor in the control message"),
            ));
        }
        let sent = loop {
            match rustix::net::sendmsg(
                self.stream.as_fd(),
                &[io::IoSlice::new(&request)],
                &mut control,
                SendFlags::NOSIGNAL,
            ) {
                Err(rustix::io::Errno::INTR) => continue,
                other => break other,
            }
        };
        match sent {
            Ok(n) if n == request.len() => {}
            Ok(n) => {
                // The descriptor went with the first byte; the rest of the
                // command code must follow in the same request.
                if let Err(e) = send_all(self.stream.as_fd(), &request[n..]) {
                    return Err(self.io_failure(command, "sending the request", e));
                }
            }
            Err(e) => return Err(self.io_failure(command, "sending the request", e.into())),
        }
        let mut exchange = Exchange {
            command,
            deadline: Deadline::after(self.reply_timeout),
            got: 0,
        };
        exchange.result(self)?;
        self.finish_reply(command)
    }

    /// SET_BUFFERSIZE: `size` 0 queries; another size needs the TPM stopped,
    /// is clamped by swtpm to `[min, max]`, and the size in use is returned.
    pub fn set_buffer_size(&mut self, size: u32) -> Result<BufferSizes, BackendError> {
        let command = cmd::SET_BUFFERSIZE;
        let mut exchange = self.begin(command, &size.to_be_bytes())?;
        exchange.result(self)?;
        let mut sizes = [0u8; 12];
        exchange.read(self, &mut sizes)?;
        self.finish_reply(command)?;
        let sizes = BufferSizes {
            in_use: be32(&sizes[0..4]),
            min: be32(&sizes[4..8]),
            max: be32(&sizes[8..12]),
        };
        let header = vtpm_wire::HEADER_SIZE as u32;
        if sizes.min > sizes.max
            || sizes.in_use > sizes.max
            || sizes.in_use < header
            || sizes.max > MAX_BUFFER_SIZE
        {
            return Err(self.protocol(format!(
                "SET_BUFFERSIZE reply is inconsistent: in use {}, min {}, max {} \
                 (expected {header} <= in use <= max <= {MAX_BUFFER_SIZE}, min <= max)",
                sizes.in_use, sizes.min, sizes.max
            )));
        }
        Ok(sizes)
    }

    /// GET_INFO: implementation information for the classes in `flags`
    /// (see [`info`]) as JSON text.
    pub fn get_info(&mut self, flags: u64) -> Result<String, BackendError> {
        let command = cmd::GET_INFO;
        let mut text: Vec<u8> = Vec::new();
        loop {
            let offset = text.len() as u32;
            let mut body = [0u8; 16];
            body[0..8].copy_from_slice(&flags.to_be_bytes());
            body[8..12].copy_from_slice(&offset.to_be_bytes());
            let mut exchange = self.begin(command, &body)?;
            exchange.result(self)?;
            let mut lengths = [0u8; 8];
            exchange.read(self, &mut lengths)?;
            let total = be32(&lengths[0..4]);
            let length = be32(&lengths[4..8]);
            if total > MAX_INFO_TEXT || length > MAX_INFO_TEXT {
                return Err(self.protocol(format!(
                    "GET_INFO reply announces {length} of {total} bytes, above \
                     the {MAX_INFO_TEXT}-byte limit"
                )));
            }
            let start = text.len();
            text.resize(start + length as usize, 0);
            exchange.read(self, &mut text[start..])?;
            self.finish_reply(command)?;
            if text.len() >= total as usize {
                break;
            }
            if length == 0 {
                return Err(self.protocol(format!(
                    "GET_INFO reply stalled at {} of {total} bytes",
                    text.len()
                )));
            }
        }
        // libtpms terminates the text with a NUL byte.
        while text.last() == Some(&0) {
            text.pop();
        }
        String::from_utf8(text)
            .map_err(|_| BackendError::Protocol("GET_INFO reply is not UTF-8 text".into()))
    }

    /// LOCK_STORAGE: takes the storage lock again, trying `retries` more
    /// times (10 ms apart in swtpm) while another process holds it. Not in
    /// swtpm 0.7 (its capability bit is clear there).
    pub fn lock_storage(&mut self, retries: u32) -> Result<(), BackendError> {
        self.simple(cmd::LOCK_STORAGE, &retries.to_be_bytes())
    }

    // ----- request/reply machinery -----

    /// A command whose successful reply is only the result.
    fn simple(&mut self, command: u32, body: &[u8]) -> Result<(), BackendError> {
        let mut exchange = self.begin(command, body)?;
        exchange.result(self)?;
        self.finish_reply(command)
    }

    /// Sends one request as a single buffer and starts its reply deadline.
    fn begin(&mut self, command: u32, body: &[u8]) -> Result<Exchange, BackendError> {
        self.check_usable()?;
        let mut request = Vec::with_capacity(4 + body.len());
        request.extend_from_slice(&command.to_be_bytes());
        request.extend_from_slice(body);
        if let Err(e) = send_all(self.stream.as_fd(), &request) {
            return Err(self.io_failure(command, "sending the request", e));
        }
        Ok(Exchange {
            command,
            deadline: Deadline::after(self.reply_timeout),
            got: 0,
        })
    }

    /// Refuses a request on a broken channel.
    fn check_usable(&self) -> Result<(), BackendError> {
        match &self.broken {
            None => Ok(()),
            Some(b) if b.closed => Err(BackendError::ChannelClosed(format!(
                "swtpm control channel ({})",
                b.reason
            ))),
            Some(b) => Err(BackendError::Protocol(format!(
                "swtpm control channel unusable after an earlier failure: {}",
                b.reason
            ))),
        }
    }

    /// After a complete successful reply: more bytes already waiting mean
    /// the peer does not speak this protocol.
    fn finish_reply(&mut self, command: u32) -> Result<(), BackendError> {
        let extra = self.discard_pending();
        if extra > 0 {
            return Err(self.protocol(format!(
                "{extra} unexpected bytes after the reply to {}",
                cmd::name(command)
            )));
        }
        Ok(())
    }

    /// A failed command: drops whatever the server queued after the result
    /// (GET_STATEBLOB's header) and reports the result.
    fn failed(&mut self, command: u32, result: u32) -> BackendError {
        self.discard_pending();
        BackendError::Control {
            command: cmd::name(command),
            result,
        }
    }

    /// Reads and drops the bytes already queued on the socket, without
    /// waiting for more. Returns how many there were.
    fn discard_pending(&mut self) -> usize {
        let mut scratch = [0u8; 256];
        let mut total = 0;
        // Bounded: a peer cannot keep this loop going for long.
        for _ in 0..64 {
            match rustix::net::recv(self.stream.as_fd(), &mut scratch[..], RecvFlags::DONTWAIT) {
                Ok((0, _)) => break,
                Ok((n, _)) => total += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => break,
            }
        }
        total
    }

    /// Marks the channel broken by a protocol violation.
    fn protocol(&mut self, what: String) -> BackendError {
        self.broken = Some(Broken {
            closed: false,
            reason: what.clone(),
        });
        BackendError::Protocol(what)
    }

    /// Maps an I/O error while sending or reading, marking the channel broken.
    fn io_failure(&mut self, command: u32, doing: &str, e: io::Error) -> BackendError {
        let context = format!("swtpm control channel: {doing} of {}", cmd::name(command));
        if is_timeout(&e) {
            self.broken = Some(Broken {
                closed: false,
                reason: format!("timed out {doing} of {}", cmd::name(command)),
            });
            BackendError::Timeout(context)
        } else if is_disconnect(&e) {
            self.broken = Some(Broken {
                closed: true,
                reason: format!("closed while {doing} of {}", cmd::name(command)),
            });
            BackendError::ChannelClosed(context)
        } else {
            self.broken = Some(Broken {
                closed: false,
                reason: format!("{doing} of {}: {e}", cmd::name(command)),
            });
            BackendError::io(context, e)
        }
    }
}

/// The reply side of one request in flight.
struct Exchange {
    command: u32,
    deadline: Deadline,
    /// Reply bytes read so far.
    got: usize,
}

impl Exchange {
    /// Reads the next `buf.len()` bytes of the reply.
    fn read(&mut self, channel: &mut ControlChannel, buf: &mut [u8]) -> Result<(), BackendError> {
        let name = cmd::name(self.command);
        match read_exact_by(&mut channel.stream, buf, self.deadline) {
            Ok(()) => {
                self.got += buf.len();
                Ok(())
            }
            Err(ReadFailure::Eof { got }) if self.got + got == 0 => {
                channel.broken = Some(Broken {
                    closed: true,
                    reason: format!("closed by swtpm before the reply to {name}"),
                });
                Err(BackendError::ChannelClosed(format!(
                    "swtpm control channel: waiting for the reply to {name}"
                )))
            }
            Err(ReadFailure::Eof { got }) => Err(channel.protocol(format!(
                "truncated reply to {name}: the stream ended after {} bytes, {} expected",
                self.got + got,
                self.got + buf.len()
            ))),
            Err(ReadFailure::Timeout) => {
                channel.broken = Some(Broken {
                    closed: false,
                    reason: format!("no complete reply to {name} in time"),
                });
                Err(BackendError::Timeout(format!(
                    "swtpm did not complete its reply to {name} within {:?}",
                    if self.command == cmd::CANCEL_TPM_CMD {
                        channel.cancel_reply_timeout
                    } else {
                        channel.reply_timeout
                    }
                )))
            }
            Err(ReadFailure::Io(e)) => {
                Err(channel.io_failure(self.command, "reading the reply", e))
            }
        }
    }

    /// Reads the `u32` result without judging it.
    fn raw_result(&mut self, channel: &mut ControlChannel) -> Result<u32, BackendError> {
        let mut result = [0u8; 4];
        self.read(channel, &mut result)?;
        Ok(u32::from_be_bytes(result))
    }

    /// Reads the result; a non-zero result ends the reply and is an error.
    fn result(&mut self, channel: &mut ControlChannel) -> Result<(), BackendError> {
        match self.raw_result(channel)? {
            result::SUCCESS => Ok(()),
            failed => Err(channel.failed(self.command, failed)),
        }
    }
}

fn be32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

/// A socket timeout of zero means "none" to the OS; keep a minimum instead.
fn nonzero(timeout: Duration) -> Duration {
    timeout.max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_follow_bit_order() {
        assert_eq!(cap::names(0), Vec::<&str>::new());
        assert_eq!(
            cap::names(cap::INIT | cap::STOP | cap::LOCK_STORAGE),
            vec!["INIT", "STOP", "LOCK_STORAGE"]
        );
        assert_eq!(cap::names(0xffff).len(), 16);
        assert_eq!(cap::unknown(0xffff | 1 << 40), 1 << 40);
        assert_eq!(
            Capabilities(cap::INIT)
                .require(cap::STOP)
                .unwrap_err()
                .to_string(),
            "backend lacks the STOP capability"
        );
    }

    #[test]
    fn command_and_result_names() {
        assert_eq!(cmd::name(cmd::SET_BUFFERSIZE), "SET_BUFFERSIZE");
        assert_eq!(cmd::name(99), "UNKNOWN");
        assert_eq!(result::name(result::BAD_ORDINAL), Some("TPM_BAD_ORDINAL"));
        assert_eq!(blob::name(blob::VOLATILE), Some("volatile"));
    }
}
