//! Endpoints, listeners and connections over Unix and TCP sockets.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendFlags};

use crate::ServerError;

/// Where a channel listens: `unix:PATH` or `tcp:HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix stream socket at this path.
    Unix(PathBuf),
    /// A TCP socket; `host:port`.
    Tcp(String),
}

impl FromStr for Endpoint {
    type Err = ServerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(ServerError::Endpoint(s.into()));
            }
            return Ok(Self::Unix(path.into()));
        }
        if let Some(addr) = s.strip_prefix("tcp:") {
            match addr.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    return Ok(Self::Tcp(addr.into()));
                }
                _ => return Err(ServerError::Endpoint(s.into())),
            }
        }
        Err(ServerError::Endpoint(s.into()))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

impl Endpoint {
    /// The same host with port `port + 1` (the mssim platform port).
    pub fn next_port(&self) -> Result<Self, ServerError> {
        match self {
            Self::Tcp(addr) => {
                let (host, port) = addr
                    .rsplit_once(':')
                    .ok_or_else(|| ServerError::Endpoint(addr.clone()))?;
                let port: u16 = port
                    .parse()
                    .map_err(|_| ServerError::Endpoint(addr.clone()))?;
                let next = port
                    .checked_add(1)
                    .ok_or_else(|| ServerError::Endpoint(format!("{addr}: no port after it")))?;
                Ok(Self::Tcp(format!("{host}:{next}")))
            }
            Self::Unix(_) => Err(ServerError::Endpoint(format!(
                "{self}: the mssim protocol runs over TCP"
            ))),
        }
    }
}

/// A bound listening socket.
#[derive(Debug)]
pub enum Listener {
    /// Unix; the path is removed again on drop.
    Unix(UnixListener, PathBuf),
    /// TCP.
    Tcp(TcpListener),
}

impl Listener {
    /// Binds `endpoint`. A Unix socket file left behind by a dead server is
    /// replaced; one a live server answers on is not.
    pub fn bind(endpoint: &Endpoint) -> Result<Self, ServerError> {
        let bound = match endpoint {
            Endpoint::Unix(path) => {
                if path.exists() && UnixStream::connect(path).is_err() {
                    let _ = std::fs::remove_file(path);
                }
                UnixListener::bind(path).map(|l| Self::Unix(l, path.clone()))
            }
            Endpoint::Tcp(addr) => addr
                .to_socket_addrs()
                .and_then(|mut a| {
                    a.next()
                        .ok_or_else(|| io::Error::other("the host resolves to no address"))
                })
                .and_then(TcpListener::bind)
                .map(Self::Tcp),
        };
        bound.map_err(|e| ServerError::io(format!("listening on {endpoint}"), e))
    }

    /// Where it listens (with the real port of a `tcp:HOST:0` endpoint).
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Self::Unix(_, p) => Endpoint::Unix(p.clone()),
            Self::Tcp(l) => Endpoint::Tcp(
                l.local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|_| "?".into()),
            ),
        }
    }

    pub(crate) fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Self::Unix(l, _) => l.set_nonblocking(on),
            Self::Tcp(l) => l.set_nonblocking(on),
        }
    }

    pub(crate) fn accept(&self) -> io::Result<Conn> {
        match self {
            Self::Unix(l, _) => l.accept().map(|(s, _)| Conn::Unix(s)),
            Self::Tcp(l) => l.accept().map(|(s, _)| {
                let _ = s.set_nodelay(true);
                Conn::Tcp(s)
            }),
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Self::Unix(l, _) => l.as_fd(),
            Self::Tcp(l) => l.as_fd(),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Self::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// One accepted connection.
#[derive(Debug)]
pub enum Conn {
    /// Unix stream.
    Unix(UnixStream),
    /// TCP stream.
    Tcp(TcpStream),
}

impl Conn {
    pub(crate) fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Unix(s) => s.set_read_timeout(t),
            Self::Tcp(s) => s.set_read_timeout(t),
        }
    }

    pub(crate) fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Self::Unix(s) => s.set_nonblocking(on),
            Self::Tcp(s) => s.set_nonblocking(on),
        }
    }

    /// A client that stops reading its replies cannot hold the channel
    /// for longer than this per write.
    pub(crate) fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Unix(s) => s.set_write_timeout(t),
            Self::Tcp(s) => s.set_write_timeout(t),
        }
    }

    pub(crate) fn try_clone(&self) -> io::Result<Self> {
        match self {
            Self::Unix(s) => s.try_clone().map(Self::Unix),
            Self::Tcp(s) => s.try_clone().map(Self::Tcp),
        }
    }

    pub(crate) fn shutdown(&self) {
        let _ = match self {
            Self::Unix(s) => s.shutdown(std::net::Shutdown::Both),
            Self::Tcp(s) => s.shutdown(std::net::Shutdown::Both),
        };
    }

    pub(crate) fn is_unix(&self) -> bool {
        matches!(self, Self::Unix(_))
    }

    /// Reads into `buf` once, taking any descriptors passed with
    /// SCM_RIGHTS (Unix sockets only; TCP reads plainly). 0 is end of
    /// stream.
    pub(crate) fn recv_with_fds(&mut self, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
        if let Self::Tcp(s) = self {
            return s.read(buf).map(|n| (n, Vec::new()));
        }
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received = loop {
            match rustix::net::recvmsg(
                self.as_fd(),
                &mut [io::IoSliceMut::new(buf)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Err(rustix::io::Errno::INTR) => continue,
                other => break other,
            }
        };
        let msg = received.map_err(io::Error::from)?;
        let mut fds = Vec::new();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = message {
                fds.extend(rights);
            }
        }
        Ok((msg.bytes, fds))
    }

    /// Up to `buf.len()` bytes that have already arrived, without waiting.
    pub(crate) fn read_available(&mut self, buf: &mut [u8]) -> usize {
        match rustix::net::recv(self.as_fd(), buf, RecvFlags::DONTWAIT) {
            Ok((n, _)) => n,
            Err(_) => 0,
        }
    }
}

impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Self::Unix(s) => s.as_fd(),
            Self::Tcp(s) => s.as_fd(),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Unix(s) => s.read(buf),
            Self::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    /// MSG_NOSIGNAL: a client gone mid-reply is an error, never SIGPIPE.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match rustix::net::send(self.as_fd(), buf, SendFlags::NOSIGNAL) {
                Err(rustix::io::Errno::INTR) => continue,
                other => return other.map_err(io::Error::from),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How long the rest of a request may take once its first byte arrived;
/// a client that stalls longer is disconnected.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads exactly `buf.len()` bytes: the first waits as long as the client
/// idles, the rest within [`REQUEST_TIMEOUT`]. `Ok(false)` is a clean end
/// of stream before the first byte.
pub(crate) fn read_request_start(conn: &mut Conn, buf: &mut [u8]) -> io::Result<bool> {
    conn.set_read_timeout(None)?;
    let first = loop {
        match conn.read(&mut buf[..1]) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    };
    if first == 0 {
        return Ok(false);
    }
    conn.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    conn.read_exact(&mut buf[1..])?;
    Ok(true)
}

/// Reads and drops `n` bytes in small pieces (bounded memory).
pub(crate) fn discard(conn: &mut Conn, mut n: u64) -> io::Result<()> {
    let mut sink = [0u8; 4096];
    while n > 0 {
        let want = n.min(sink.len() as u64) as usize;
        let got = conn.read(&mut sink[..want])?;
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        n -= got as u64;
    }
    Ok(())
}
