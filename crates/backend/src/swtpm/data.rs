//! The swtpm data channel: raw TPM commands in, raw responses out.
//!
//! swtpm reads a command's 10-byte header and then the rest with a single
//! read, so each command leaves in one buffer; a command split across
//! writes would reach the TPM truncated. The response is read as its
//! header, then exactly `size - 10` more bytes. A header whose size is
//! below 10 or above the negotiated buffer means the stream is out of step,
//! and the connection refuses further commands rather than misread them.
//!
//! There is no short timeout here: a 3072-bit RSA key generation takes
//! seconds. The bound is long (five minutes by default) so that a hung
//! swtpm still ends in [`BackendError::Timeout`] instead of a hang.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::deadline::Deadline;

use vtpm_wire::{Header, HEADER_SIZE};

use super::ctrl::{is_disconnect, is_timeout, send_all};
use crate::BackendError;

/// The socket under a [`DataConnection`].
#[derive(Debug)]
enum Socket {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Socket {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Socket::Unix(s) => s.as_fd(),
            Socket::Tcp(s) => s.as_fd(),
        }
    }

    fn set_timeouts(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Socket::Unix(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))
            }
            Socket::Tcp(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))
            }
        }
    }

    fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Socket::Unix(s) => s.set_read_timeout(Some(timeout)),
            Socket::Tcp(s) => s.set_read_timeout(Some(timeout)),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Unix(s) => s.read(buf),
            Socket::Tcp(s) => s.read(buf),
        }
    }
}

/// How far one read may overrun a command's deadline before the socket's
/// read timeout is re-set.
const READ_TIMEOUT_SLACK: Duration = Duration::from_millis(50);

/// A connected swtpm data channel (one end of a socketpair, a Unix socket
/// or a TCP connection).
#[derive(Debug)]
pub struct DataConnection {
    socket: Socket,
    command_timeout: Duration,
    /// The read timeout the socket has now; re-set only when the time left
    /// for a command falls well below it, so a command usually costs no
    /// timeout syscalls at all.
    read_timeout: Duration,
    broken: Option<Broken>,
}

/// Why a connection refuses further commands.
#[derive(Debug, Clone)]
struct Broken {
    closed: bool,
    reason: String,
}

impl DataConnection {
    /// Default bound on one command, from sending it to the last byte of
    /// its response.
    pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

    /// Wraps a connected Unix stream socket (for example our end of the
    /// socketpair handed to swtpm with SET_DATAFD).
    pub fn from_unix(stream: UnixStream) -> Result<Self, BackendError> {
        Self::new(Socket::Unix(stream))
    }

    /// Connects to swtpm's data socket at `path` (`--server type=unixio`).
    pub fn connect_unix(path: impl AsRef<Path>) -> Result<Self, BackendError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path).map_err(|e| {
            BackendError::io(
                format!("connecting to the swtpm data socket {}", path.display()),
                e,
            )
        })?;
        Self::from_unix(stream)
    }

    /// Connects to swtpm's data port at `addr` (`--server type=tcp`).
    pub fn connect_tcp(addr: SocketAddr) -> Result<Self, BackendError> {
        let stream = TcpStream::connect(addr)
            .map_err(|e| BackendError::io(format!("connecting to swtpm at {addr}"), e))?;
        // Commands are small request/response exchanges: send at once.
        stream
            .set_nodelay(true)
            .map_err(|e| BackendError::io("setting TCP_NODELAY on the data channel", e))?;
        Self::new(Socket::Tcp(stream))
    }

    fn new(socket: Socket) -> Result<Self, BackendError> {
        let connection = Self {
            socket,
            command_timeout: Self::DEFAULT_COMMAND_TIMEOUT,
            read_timeout: Self::DEFAULT_COMMAND_TIMEOUT,
            broken: None,
        };
        connection
            .socket
            .set_timeouts(connection.command_timeout)
            .map_err(|e| BackendError::io("setting the data channel's timeouts", e))?;
        Ok(connection)
    }

    /// Sets the bound on one command.
    pub fn set_command_timeout(&mut self, timeout: Duration) -> Result<(), BackendError> {
        self.command_timeout = timeout.max(Duration::from_millis(1));
        self.read_timeout = self.command_timeout;
        self.socket
            .set_timeouts(self.command_timeout)
            .map_err(|e| BackendError::io("setting the data channel's timeouts", e))
    }

    /// The bound on one command.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// False once a failure has left the stream out of step.
    pub fn is_usable(&self) -> bool {
        self.broken.is_none()
    }

    /// Sends `command` and reads its whole response into `response`
    /// (cleared first). `buffer_size` is the negotiated buffer: a larger
    /// command is refused before anything is sent, a larger response is a
    /// protocol violation.
    pub fn transact(
        &mut self,
        command: &[u8],
        response: &mut Vec<u8>,
        buffer_size: usize,
    ) -> Result<(), BackendError> {
        response.clear();
        match &self.broken {
            None => {}
            Some(b) if b.closed => {
                return Err(BackendError::ChannelClosed(format!(
                    "swtpm data channel ({})",
                    b.reason
                )))
            }
            Some(b) => {
                return Err(BackendError::Protocol(format!(
                    "swtpm data channel unusable after an earlier failure: {}",
                    b.reason
                )))
            }
        }
        crate::check_command_size(command, buffer_size)?;
        let code = Header::parse(command).map(|h| h.code).unwrap_or(0);
        let deadline = Deadline::after(self.command_timeout);
        if self.read_timeout != self.command_timeout {
            if let Err(e) = self.socket.set_read_timeout(self.command_timeout) {
                return Err(self.io_failure(code, "preparing to wait for", e));
            }
            self.read_timeout = self.command_timeout;
        }
        if let Err(e) = send_all(self.socket.fd(), command) {
            return Err(self.io_failure(code, "sending command", e));
        }
        let result = self.read_response(code, response, buffer_size, deadline);
        if result.is_err() {
            response.clear();
        }
        result
    }

    fn read_response(
        &mut self,
        code: u32,
        response: &mut Vec<u8>,
        buffer_size: usize,
        deadline: Deadline,
    ) -> Result<(), BackendError> {
        let mut header = [0u8; HEADER_SIZE];
        self.read_exact_by(code, &mut header, deadline)?;
        let size = Header::peek_size(&header).unwrap_or(0) as usize;
        if !(HEADER_SIZE..=buffer_size).contains(&size) {
            let what = format!(
                "response to command {code:#x} declares {size} bytes, outside \
                 {HEADER_SIZE}..={buffer_size}; the data stream is out of step"
            );
            self.broken = Some(Broken {
                closed: false,
                reason: what.clone(),
            });
            return Err(BackendError::Protocol(what));
        }
        response.reserve(size);
        response.extend_from_slice(&header);
        response.resize(size, 0);
        self.read_exact_by(code, &mut response[HEADER_SIZE..], deadline)
    }

    fn read_exact_by(
        &mut self,
        code: u32,
        buf: &mut [u8],
        deadline: Deadline,
    ) -> Result<(), BackendError> {
        let mut got = 0;
        while got < buf.len() {
            let remaining = deadline.remaining();
            if remaining.is_zero() {
                return Err(self.timed_out(code));
            }
            // A read may overrun the deadline by at most this slack.
            if remaining.saturating_add(READ_TIMEOUT_SLACK) < self.read_timeout {
                if let Err(e) = self.socket.set_read_timeout(remaining) {
                    return Err(self.io_failure(code, "waiting for the response to", e));
                }
                self.read_timeout = remaining;
            }
            match self.socket.read(&mut buf[got..]) {
                Ok(0) => {
                    let what = format!(
                        "swtpm data channel: the stream ended while waiting for the \
                         response to command {code:#x}"
                    );
                    self.broken = Some(Broken {
                        closed: true,
                        reason: "closed by swtpm".into(),
                    });
                    return Err(BackendError::ChannelClosed(what));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_failure(code, "waiting for the response to", e)),
            }
        }
        Ok(())
    }

    fn timed_out(&mut self, code: u32) -> BackendError {
        self.broken = Some(Broken {
            closed: false,
            reason: format!("command {code:#x} timed out"),
        });
        BackendError::Timeout(format!(
            "swtpm did not answer command {code:#x} within {:?}",
            self.command_timeout
        ))
    }

    fn io_failure(&mut self, code: u32, doing: &str, e: io::Error) -> BackendError {
        if is_timeout(&e) {
            return self.timed_out(code);
        }
        let context = format!("swtpm data channel: {doing} command {code:#x}");
        if is_disconnect(&e) {
            self.broken = Some(Broken {
                closed: true,
                reason: "closed by swtpm".into(),
            });
            BackendError::ChannelClosed(context)
        } else {
            self.broken = Some(Broken {
                closed: false,
                reason: format!("{doing} command {code:#x}: {e}"),
            });
            BackendError::io(context, e)
        }
    }
}
