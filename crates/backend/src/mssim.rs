//! A TPM simulator that speaks the Microsoft reference simulator's TCP
//! protocol ("mssim"): the reference simulator itself, `vtpm serve
//! --mssim`, or any other server of that protocol.
//!
//! - On open: POWER_OFF, POWER_ON and NV_ON on the platform port (the
//!   reference simulator needs power and NV before commands), then
//!   TPM2_Startup(CLEAR) and the buffer size from
//!   TPM2_GetCapability(TPM_PT_MAX_COMMAND_SIZE, TPM_PT_MAX_RESPONSE_SIZE)
//!   (the smaller of the two), then POWER_OFF and POWER_ON again: like every
//!   vtpm backend, it hands over a TPM that has just been powered on and
//!   waits for TPM2_Startup (a machine that boots).
//! - Each command: `u32 8 | u8 locality | u32 n | command` in one write,
//!   `u32 m | response | u32 0` back, within the command timeout.
//! - Cancel: CANCEL_ON on the platform port from any thread; CANCEL_OFF
//!   after the cancelled command's response.
//! - Reset: POWER_OFF then POWER_ON.
//!
//! The protocol carries neither tpmEstablished nor the TPM's state:
//! [`Backend::established`] reports `false`, resetting it is a no-op, and
//! saving or restoring state is [`BackendError::Unsupported`].
//!
//! After a timeout or a protocol violation the command stream may hold a
//! late reply, so the backend refuses further commands.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vtpm_client::{get_capability, parse_tpm_properties, startup};
use vtpm_wire::consts::{
    TPM_CAP_TPM_PROPERTIES, TPM_PT_MAX_COMMAND_SIZE, TPM_PT_MAX_RESPONSE_SIZE, TPM_SU_CLEAR,
};
use vtpm_wire::{Header, ResponseCode, HEADER_SIZE};

use crate::{Backend, BackendError, Cancel};

/// Request codes (the reference simulator's `TpmTcpProtocol.h`).
pub mod signal {
    /// Power on.
    pub const POWER_ON: u32 = 1;
    /// Power off.
    pub const POWER_OFF: u32 = 2;
    /// A TPM command on the command port.
    pub const SEND_COMMAND: u32 = 8;
    /// Cancel on.
    pub const CANCEL_ON: u32 = 9;
    /// Cancel off.
    pub const CANCEL_OFF: u32 = 10;
    /// NV available.
    pub const NV_ON: u32 = 11;
    /// End of session (no reply).
    pub const SESSION_END: u32 = 20;
}

/// The largest buffer size believed from a TPM's properties.
pub const MAX_BUFFER_SIZE: usize = 1 << 20;

/// Timeouts of an [`MssimBackend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MssimTimeouts {
    /// Connecting each port.
    pub connect: Duration,
    /// One platform signal's acknowledgement.
    pub signal: Duration,
    /// One command's whole response (key generation can take seconds).
    pub command: Duration,
}

impl Default for MssimTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            signal: Duration::from_secs(10),
            command: Duration::from_secs(300),
        }
    }
}

/// Where the simulator listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MssimConfig {
    /// The command port, `host:port`.
    pub command: String,
    /// The platform port, `host:port` (default: the command port + 1).
    pub platform: Option<String>,
    /// Timeouts.
    pub timeouts: MssimTimeouts,
}

impl MssimConfig {
    /// A configuration for the command port at `command` (`host:port`).
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            platform: None,
            timeouts: MssimTimeouts::default(),
        }
    }

    fn platform_addr(&self) -> Result<String, BackendError> {
        if let Some(p) = &self.platform {
            return Ok(p.clone());
        }
        let (host, port) = self
            .command
            .rsplit_once(':')
            .ok_or_else(|| BackendError::Config(format!("{}: expected host:port", self.command)))?;
        let port: u16 = port
            .parse()
            .map_err(|_| BackendError::Config(format!("{}: bad port", self.command)))?;
        let next = port.checked_add(1).ok_or_else(|| {
            BackendError::Config(format!("{}: no platform port after it", self.command))
        })?;
        Ok(format!("{host}:{next}"))
    }
}

fn resolve(addr: &str) -> Result<SocketAddr, BackendError> {
    addr.to_socket_addrs()
        .map_err(|e| BackendError::io(format!("resolving {addr}"), e))?
        .next()
        .ok_or_else(|| BackendError::Config(format!("{addr} resolves to no address")))
}

fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, BackendError> {
    let stream = TcpStream::connect_timeout(&resolve(addr)?, timeout)
        .map_err(|e| BackendError::io(format!("connecting to the simulator at {addr}"), e))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

fn deadline_after(timeout: Duration, what: &str) -> Result<Instant, BackendError> {
    Instant::now()
        .checked_add(timeout)
        .ok_or_else(|| BackendError::Config(format!("the {what} timeout is too long")))
}

/// Reads exactly `buf.len()` bytes before `deadline`.
fn read_by(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
    what: &str,
) -> Result<(), BackendError> {
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(BackendError::Timeout(what.to_string()));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| BackendError::io(what.to_string(), e))?;
        match stream.read(&mut buf[got..]) {
            Ok(0) => return Err(BackendError::ChannelClosed(what.to_string())),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(BackendError::Timeout(what.to_string()))
            }
            Err(e) => return Err(BackendError::io(what.to_string(), e)),
        }
    }
    Ok(())
}

/// The platform port.
#[derive(Debug)]
struct Platform {
    stream: TcpStream,
    timeout: Duration,
}

impl Platform {
    fn signal(&mut self, code: u32, name: &'static str) -> Result<(), BackendError> {
        let deadline = deadline_after(self.timeout, "signal")?;
        self.stream
            .write_all(&code.to_be_bytes())
            .map_err(|e| BackendError::io(format!("sending {name}"), e))?;
        let mut ack = [0u8; 4];
        read_by(&mut self.stream, &mut ack, deadline, name)?;
        match u32::from_be_bytes(ack) {
            0 => Ok(()),
            result => Err(BackendError::Control {
                command: name,
                result,
            }),
        }
    }
}

/// Cancels through the platform port.
#[derive(Debug)]
struct MssimCancel {
    platform: Arc<Mutex<Platform>>,
    /// CANCEL_ON was sent; CANCEL_OFF follows the response.
    raised: AtomicBool,
    /// A command is on the wire. Changed, like `raised`, only under the
    /// platform lock, so a cancel and the end of a command never cross.
    executing: AtomicBool,
}

impl Cancel for MssimCancel {
    /// Raises the simulator's cancel line for the command on the wire. With
    /// no command executing there is nothing to cancel and the request is
    /// dropped: a cancel never reaches a later command.
    fn cancel(&self) -> Result<(), BackendError> {
        let mut platform = self.platform.lock().unwrap_or_else(|e| e.into_inner());
        if !self.executing.load(Ordering::SeqCst) {
            return Ok(());
        }
        platform.signal(signal::CANCEL_ON, "CANCEL_ON")?;
        self.raised.store(true, Ordering::SeqCst);
        Ok(())
    }
}

impl MssimCancel {
    fn set_executing(&self, executing: bool) {
        let _platform = self.platform.lock().unwrap_or_else(|e| e.into_inner());
        self.executing.store(executing, Ordering::SeqCst);
    }
}

/// A [`Backend`] that is an mssim server.
#[derive(Debug)]
pub struct MssimBackend {
    command: TcpStream,
    platform: Arc<Mutex<Platform>>,
    cancel: Arc<MssimCancel>,
    buffer_size: usize,
    timeouts: MssimTimeouts,
    /// Set after a timeout or protocol violation.
    broken: Option<String>,
}

impl MssimBackend {
    /// Connects both ports, powers the TPM on, makes NV available and
    /// reads the buffer size.
    pub fn connect(config: &MssimConfig) -> Result<Self, BackendError> {
        let platform_addr = config.platform_addr()?;
        let command = connect(&config.command, config.timeouts.connect)?;
        let platform = Platform {
            stream: connect(&platform_addr, config.timeouts.connect)?,
            timeout: config.timeouts.signal,
        };
        let platform = Arc::new(Mutex::new(platform));
        {
            let mut p = platform.lock().unwrap_or_else(|e| e.into_inner());
            p.signal(signal::POWER_OFF, "POWER_OFF")?;
            p.signal(signal::POWER_ON, "POWER_ON")?;
            p.signal(signal::NV_ON, "NV_ON")?;
        }
        let cancel = Arc::new(MssimCancel {
            platform: Arc::clone(&platform),
            raised: AtomicBool::new(false),
            executing: AtomicBool::new(false),
        });
        let mut backend = Self {
            command,
            platform,
            cancel,
            // Enough for the capability query; replaced below.
            buffer_size: 4096,
            timeouts: config.timeouts,
            broken: None,
        };
        backend.buffer_size = backend.discover_buffer_size()?;
        backend.reset()?;
        tracing::debug!(buffer = backend.buffer_size, "mssim simulator is up");
        Ok(backend)
    }

    fn discover_buffer_size(&mut self) -> Result<usize, BackendError> {
        let query = get_capability(TPM_CAP_TPM_PROPERTIES, TPM_PT_MAX_COMMAND_SIZE, 2);
        let mut response = Vec::new();
        self.execute(0, &startup(TPM_SU_CLEAR), &mut response)?;
        let rc = Header::parse(&response).map(|h| h.response_code());
        if rc != Ok(ResponseCode::SUCCESS) {
            return Err(BackendError::Protocol(format!(
                "TPM2_Startup(CLEAR) after power-on answered {rc:?}"
            )));
        }
        self.execute(0, &query, &mut response)?;
        let properties = parse_tpm_properties(&response).map_err(|e| {
            BackendError::Protocol(format!("GetCapability(TPM properties) answer: {e}"))
        })?;
        let find = |p: u32| {
            properties
                .iter()
                .find(|(k, _)| *k == p)
                .map(|(_, v)| *v as usize)
        };
        let (Some(command), Some(response)) = (
            find(TPM_PT_MAX_COMMAND_SIZE),
            find(TPM_PT_MAX_RESPONSE_SIZE),
        ) else {
            return Err(BackendError::MissingCapability(
                "TPM_PT_MAX_COMMAND_SIZE and TPM_PT_MAX_RESPONSE_SIZE",
            ));
        };
        let size = command.min(response);
        if !(HEADER_SIZE..=MAX_BUFFER_SIZE).contains(&size) {
            return Err(BackendError::Protocol(format!(
                "the TPM reports a {size}-byte buffer"
            )));
        }
        Ok(size)
    }

    fn platform(&self) -> std::sync::MutexGuard<'_, Platform> {
        self.platform.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn broken(&mut self, e: BackendError) -> BackendError {
        if matches!(
            e,
            BackendError::Timeout(_) | BackendError::Protocol(_) | BackendError::ChannelClosed(_)
        ) {
            self.broken = Some(e.to_string());
        }
        e
    }

    fn exchange(
        &mut self,
        locality: u8,
        command: &[u8],
        response: &mut Vec<u8>,
    ) -> Result<(), BackendError> {
        let deadline = deadline_after(self.timeouts.command, "command")?;
        // The envelope and the command go out back to back (no copy of the
        // command is kept); the server reads them as one stream.
        let mut envelope = [0u8; 9];
        envelope[..4].copy_from_slice(&signal::SEND_COMMAND.to_be_bytes());
        envelope[4] = locality;
        envelope[5..].copy_from_slice(&(command.len() as u32).to_be_bytes());
        self.command
            .write_all(&envelope)
            .and_then(|()| self.command.write_all(command))
            .map_err(|e| BackendError::io("sending a command to the simulator", e))?;
        let mut len = [0u8; 4];
        read_by(&mut self.command, &mut len, deadline, "the response size")?;
        let len = u32::from_be_bytes(len) as usize;
        if len > self.buffer_size.max(MAX_BUFFER_SIZE) || len < HEADER_SIZE {
            return Err(BackendError::Protocol(format!(
                "the simulator announces a {len}-byte response"
            )));
        }
        response.resize(len, 0);
        read_by(&mut self.command, response, deadline, "the response")?;
        let mut trailer = [0u8; 4];
        read_by(
            &mut self.command,
            &mut trailer,
            deadline,
            "the response trailer",
        )?;
        if trailer != [0; 4] {
            return Err(BackendError::Protocol(format!(
                "the response ends with {trailer:02x?}, not u32 0"
            )));
        }
        Header::parse_exact(response)
            .map_err(|e| BackendError::Protocol(format!("response header: {e}")))?;
        Ok(())
    }
}

impl Backend for MssimBackend {
    fn name(&self) -> &'static str {
        "mssim"
    }

    fn buffer_size(&self) -> usize {
        self.buffer_size
    }

    fn execute(
        &mut self,
        locality: u8,
        command: &[u8],
        response: &mut Vec<u8>,
    ) -> Result<(), BackendError> {
        response.clear();
        if let Some(why) = &self.broken {
            return Err(BackendError::ChannelClosed(format!(
                "the command port is out of step after: {why}"
            )));
        }
        if command.len() > self.buffer_size {
            return Err(BackendError::CommandTooLarge {
                size: command.len(),
                max: self.buffer_size,
            });
        }
        self.cancel.set_executing(true);
        let outcome = self
            .exchange(locality, command, response)
            .map_err(|e| self.broken(e));
        let mut platform = self.platform();
        self.cancel.executing.store(false, Ordering::SeqCst);
        if self.cancel.raised.swap(false, Ordering::SeqCst) {
            platform.signal(signal::CANCEL_OFF, "CANCEL_OFF")?;
        }
        drop(platform);
        outcome
    }

    fn canceller(&self) -> Option<Arc<dyn Cancel>> {
        Some(Arc::clone(&self.cancel) as Arc<dyn Cancel>)
    }

    /// Always `false`: the protocol does not carry the flag.
    fn established(&mut self) -> Result<bool, BackendError> {
        Ok(false)
    }

    /// Nothing to do: the protocol does not carry the flag.
    fn reset_established(&mut self, _locality: u8) -> Result<(), BackendError> {
        Ok(())
    }

    fn reset(&mut self) -> Result<(), BackendError> {
        let mut platform = self.platform();
        platform.signal(signal::POWER_OFF, "POWER_OFF")?;
        platform.signal(signal::POWER_ON, "POWER_ON")
    }

    fn save_state(&mut self) -> Result<Vec<u8>, BackendError> {
        Err(BackendError::Unsupported(
            "saving the TPM state over the mssim protocol",
        ))
    }

    fn restore_state(&mut self, _state: &[u8]) -> Result<(), BackendError> {
        Err(BackendError::Unsupported(
            "restoring the TPM state over the mssim protocol",
        ))
    }
}

impl Drop for MssimBackend {
    fn drop(&mut self) {
        // Polite end of both sessions; the server does not answer.
        let end = signal::SESSION_END.to_be_bytes();
        let _ = self.command.write_all(&end);
        let _ = self.platform().stream.write_all(&end);
    }
}
