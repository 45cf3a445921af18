//! Drives one channel's request handler with a byte stream, in process:
//! the framing code paths of a real connection without a listener. For
//! the fuzz target and for tests.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use crate::engine::Tpm;
use crate::net::Conn;
use crate::server::Shared;
use crate::{mssim, swtpm};

/// Which channel's handler reads the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// mssim command port.
    MssimCommand,
    /// mssim platform port.
    MssimPlatform,
    /// swtpm control channel (on a Unix socket).
    SwtpmCtrl,
    /// swtpm data channel.
    SwtpmData,
}

/// Feeds `input` to `channel`'s handler as one client's whole stream (its
/// end of stream follows the last byte) and returns every byte the
/// handler wrote back before it finished.
pub fn run_stream(tpm: Tpm, channel: Channel, input: &[u8]) -> std::io::Result<Vec<u8>> {
    let (server, client) = UnixStream::pair()?;
    let shared = Arc::new(Shared::new(tpm));
    let reader = {
        let mut client = client.try_clone()?;
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = client.read_to_end(&mut out);
            out
        })
    };
    let writer = {
        let input = input.to_vec();
        std::thread::spawn(move || {
            let mut rest = &input[..];
            while !rest.is_empty() {
                match rustix::net::send(&client, rest, rustix::net::SendFlags::NOSIGNAL) {
                    Ok(n) => rest = &rest[n..],
                    Err(rustix::io::Errno::INTR) => {}
                    Err(_) => break,
                }
            }
            let _ = client.shutdown(std::net::Shutdown::Write);
            client
        })
    };
    let serve: fn(Conn, &Arc<Shared>) = match channel {
        Channel::MssimCommand => mssim::serve_command,
        Channel::MssimPlatform => mssim::serve_platform,
        Channel::SwtpmCtrl => swtpm::serve_ctrl,
        Channel::SwtpmData => swtpm::serve_data,
    };
    let conn = Conn::Unix(server);
    let closer = conn.try_clone()?;
    serve(conn, &shared);
    // The handler is done: end the stream so the reader sees it.
    closer.shutdown();
    drop(closer);
    let client = writer
        .join()
        .map_err(|_| std::io::Error::other("writer panicked"))?;
    let _ = client.shutdown(std::net::Shutdown::Both);
    reader
        .join()
        .map_err(|_| std::io::Error::other("reader panicked"))
}
