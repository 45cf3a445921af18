//! The swtpm protocol: the control channel (`tpm_ioctl.h` in its socket
//! form) and the data channel (bare TPM commands).
//!
//! A control request is `u32 command` then its body; the reply is the
//! body of the response. A failed command's reply is only its 4-byte
//! result, GET_CAPABILITY's reply is a bare 8-byte bitmask. The body of a
//! request arrives with its command code (clients write a request with one
//! write); optional padding, such as the three bytes after SET_LOCALITY's
//! locality, is taken when it has arrived and not waited for.
//!
//! State rules (as swtpm's): before INIT and after STOP the data channel
//! answers TPM_RC_FAILURE; GET_STATEBLOB needs a running TPM, SET_STATEBLOB
//! and a non-zero SET_BUFFERSIZE a stopped one (TPM_BAD_ORDINAL otherwise).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use vtpm_backend::swtpm::ctrl::{cap, cmd, config, info, result};
use vtpm_wire::{error_response, ResponseCode, HEADER_SIZE};
use zeroize::Zeroizing;

use crate::engine::ControlError;
use crate::net::{discard, read_request_start, Conn};
use crate::server::CancelOutcome;
use crate::server::{Shared, StopReason};

/// The largest SET_STATEBLOB blob accepted; a larger request is answered
/// TPM_BAD_PARAMETER and the connection closed (its bytes are not read).
pub const MAX_STATE_BLOB: u32 = 4 << 20;
/// The HASH_DATA request holds at most this many bytes (swtpm's structure).
pub const HASH_DATA_MAX: u32 = 4096;

/// The capabilities this server implements. SEND_COMMAND_HEADER is not
/// among them; SET_DATAFD only on a Unix control socket, HASHING only when
/// the backend runs dynamic launches.
pub fn capabilities(unix_ctrl: bool, hashing: bool) -> u64 {
    let mut caps = cap::INIT
        | cap::SHUTDOWN
        | cap::GET_TPMESTABLISHED
        | cap::SET_LOCALITY
        | cap::CANCEL_TPM_CMD
        | cap::STORE_VOLATILE
        | cap::RESET_TPMESTABLISHED
        | cap::GET_STATEBLOB
        | cap::SET_STATEBLOB
        | cap::STOP
        | cap::GET_CONFIG
        | cap::SET_BUFFERSIZE
        | cap::GET_INFO
        | cap::LOCK_STORAGE;
    if unix_ctrl {
        caps |= cap::SET_DATAFD;
    }
    if hashing {
        caps |= cap::HASHING;
    }
    caps
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn code_of(e: &ControlError) -> u32 {
    match e {
        ControlError::WrongState(_) => result::BAD_ORDINAL,
        ControlError::BadParameter(_) => result::BAD_PARAMETER,
        ControlError::BadLocality(_) => result::BAD_LOCALITY,
        ControlError::Backend(_) => result::FAIL,
        ControlError::Store(_) => result::IOERROR,
    }
}

/// What to do after a reply.
enum After {
    Continue,
    Close,
    Shutdown,
}

/// Serves one client of the control channel until it leaves.
pub(crate) fn serve_ctrl(mut conn: Conn, shared: &Arc<Shared>) {
    loop {
        let mut code = [0u8; 4];
        // The first read takes the descriptor of SET_DATAFD with it.
        conn.set_read_timeout(None).ok();
        let (got, fds) = match conn.recv_with_fds(&mut code) {
            Ok((0, _)) | Err(_) => return,
            Ok(read) => read,
        };
        if got < 4 {
            conn.set_read_timeout(Some(crate::net::REQUEST_TIMEOUT))
                .ok();
            if conn.read_exact(&mut code[got..]).is_err() {
                return;
            }
        }
        conn.set_read_timeout(Some(crate::net::REQUEST_TIMEOUT))
            .ok();
        let command = be32(&code);
        let mut reply = Zeroizing::new(Vec::with_capacity(64));
        let after = match handle(&mut conn, shared, command, fds, &mut reply) {
            Ok(after) => after,
            Err(_) => return,
        };
        if conn.write_all(&reply).is_err() {
            return;
        }
        match after {
            After::Continue => {}
            After::Close => return,
            After::Shutdown => {
                shared.request_stop(StopReason::ControlShutdown);
                return;
            }
        }
    }
}

fn result_only(reply: &mut Vec<u8>, code: u32) {
    reply.clear();
    reply.extend_from_slice(&code.to_be_bytes());
}

fn simple(reply: &mut Vec<u8>, outcome: Result<(), ControlError>, command: u32) {
    match outcome {
        Ok(()) => result_only(reply, result::SUCCESS),
        Err(e) => {
            tracing::info!(command = cmd::name(command), error = %e, "control command refused");
            result_only(reply, code_of(&e));
        }
    }
}

/// One byte (a locality) and up to three bytes of padding already sent.
fn read_padded_u8(conn: &mut Conn) -> std::io::Result<u8> {
    let mut b = [0u8; 1];
    conn.read_exact(&mut b)?;
    let mut pad = [0u8; 3];
    let _ = conn.read_available(&mut pad);
    Ok(b[0])
}

fn handle(
    conn: &mut Conn,
    shared: &Arc<Shared>,
    command: u32,
    fds: Vec<OwnedFd>,
    reply: &mut Vec<u8>,
) -> std::io::Result<After> {
    let mut fds = fds.into_iter();
    let mut after = After::Continue;
    match command {
        cmd::GET_CAPABILITY => {
            let hashing = shared.tpm().can_hash();
            reply.extend_from_slice(&capabilities(conn.is_unix(), hashing).to_be_bytes());
        }
        cmd::INIT => {
            let mut flags = [0u8; 4];
            conn.read_exact(&mut flags)?;
            let delete = be32(&flags) & vtpm_backend::swtpm::ctrl::init::DELETE_VOLATILE != 0;
            let outcome = shared.tpm().init(delete);
            simple(reply, outcome, command);
        }
        cmd::SHUTDOWN => {
            let outcome = shared.tpm().power_off();
            simple(reply, outcome, command);
            after = After::Shutdown;
        }
        cmd::GET_TPMESTABLISHED => match shared.tpm().established() {
            Ok(bit) => {
                reply.extend_from_slice(&result::SUCCESS.to_be_bytes());
                reply.extend_from_slice(&[u8::from(bit), 0, 0, 0]);
            }
            Err(e) => result_only(reply, code_of(&e)),
        },
        cmd::SET_LOCALITY => {
            let locality = read_padded_u8(conn)?;
            let outcome = shared.tpm().set_locality(locality);
            simple(reply, outcome, command);
        }
        cmd::HASH_START => {
            let outcome = shared.tpm().hash_start();
            simple(reply, outcome, command);
        }
        cmd::HASH_DATA => {
            let mut len = [0u8; 4];
            conn.read_exact(&mut len)?;
            let len = be32(&len);
            if len > HASH_DATA_MAX {
                result_only(reply, result::BAD_PARAMETER);
                return Ok(After::Close);
            }
            let mut data = Zeroizing::new(vec![0u8; len as usize]);
            conn.read_exact(&mut data)?;
            let outcome = shared.tpm().hash_data(&data);
            simple(reply, outcome, command);
        }
        cmd::HASH_END => {
            let outcome = shared.tpm().hash_end();
            simple(reply, outcome, command);
        }
        cmd::CANCEL_TPM_CMD => {
            // Only the command executing now is cancelled; with none, the
            // request succeeds and changes nothing, as it would on swtpm.
            let outcome = match shared.cancel_running() {
                Ok(CancelOutcome::Sent) => Ok(()),
                Ok(CancelOutcome::Idle) => {
                    tracing::debug!("CANCEL_TPM_CMD with no command executing: nothing to cancel");
                    Ok(())
                }
                Err(e) => Err(ControlError::from(e)),
            };
            simple(reply, outcome, command);
        }
        cmd::STORE_VOLATILE => {
            let outcome = shared.tpm().store_volatile();
            simple(reply, outcome, command);
        }
        cmd::RESET_TPMESTABLISHED => {
            let locality = read_padded_u8(conn)?;
            let outcome = shared.tpm().reset_established(locality);
            simple(reply, outcome, command);
        }
        cmd::GET_STATEBLOB => {
            let mut body = [0u8; 12];
            conn.read_exact(&mut body)?;
            let kind = be32(&body[4..8]);
            let offset = be32(&body[8..12]) as usize;
            match shared.tpm().state_blob(kind) {
                Ok(blob) if blob.is_empty() => {
                    // swtpm's answer for an empty blob: non-fatal result, empty header.
                    reply.extend_from_slice(&result::NON_FATAL.to_be_bytes());
                    reply.extend_from_slice(&[0u8; 12]);
                }
                Ok(blob) => {
                    let start = offset.min(blob.len());
                    let part = &blob[start..];
                    reply.extend_from_slice(&result::SUCCESS.to_be_bytes());
                    reply.extend_from_slice(&0u32.to_be_bytes());
                    reply.extend_from_slice(&(blob.len() as u32).to_be_bytes());
                    reply.extend_from_slice(&(part.len() as u32).to_be_bytes());
                    reply.extend_from_slice(part);
                }
                Err(e) => result_only(reply, code_of(&e)),
            }
        }
        cmd::SET_STATEBLOB => {
            let mut head = [0u8; 12];
            conn.read_exact(&mut head)?;
            let flags = be32(&head[0..4]);
            let kind = be32(&head[4..8]);
            let len = be32(&head[8..12]);
            if len > MAX_STATE_BLOB {
                result_only(reply, result::BAD_PARAMETER);
                return Ok(After::Close);
            }
            let mut blob = Zeroizing::new(vec![0u8; len as usize]);
            conn.read_exact(&mut blob)?;
            let outcome = if flags & vtpm_backend::swtpm::ctrl::blob::FLAG_ENCRYPTED != 0 {
                Err(ControlError::BadParameter(
                    "blobs encrypted with a migration key are not supported",
                ))
            } else {
                shared.tpm().set_state_blob(kind, &blob)
            };
            simple(reply, outcome, command);
        }
        cmd::STOP => {
            let outcome = shared.tpm().power_off();
            simple(reply, outcome, command);
        }
        cmd::GET_CONFIG => {
            let flags = if shared.tpm().encrypts_state() {
                config::FILE_KEY
            } else {
                0
            };
            reply.extend_from_slice(&result::SUCCESS.to_be_bytes());
            reply.extend_from_slice(&flags.to_be_bytes());
        }
        cmd::SET_DATAFD => {
            let code = set_data_fd(conn, shared, fds.next());
            result_only(reply, code);
        }
        cmd::SET_BUFFERSIZE => {
            let mut size = [0u8; 4];
            conn.read_exact(&mut size)?;
            let mut tpm = shared.tpm();
            match tpm.set_buffer_size(be32(&size)) {
                Ok(in_use) => {
                    let limits = tpm.limits();
                    shared.set_canceller(tpm.canceller());
                    reply.extend_from_slice(&result::SUCCESS.to_be_bytes());
                    reply.extend_from_slice(&(in_use as u32).to_be_bytes());
                    reply.extend_from_slice(&(limits.min as u32).to_be_bytes());
                    reply.extend_from_slice(&(limits.max as u32).to_be_bytes());
                }
                Err(e) => result_only(reply, code_of(&e)),
            }
        }
        cmd::GET_INFO => {
            let mut body = [0u8; 16];
            conn.read_exact(&mut body)?;
            let flags = u64::from_be_bytes(body[0..8].try_into().expect("8 bytes"));
            let offset = be32(&body[8..12]) as usize;
            // libtpms's text ends with a NUL, counted in the length.
            let text = info_json(flags, shared.tpm().buffer_size()) + "\0";
            let bytes = text.as_bytes();
            let part = &bytes[offset.min(bytes.len())..];
            reply.extend_from_slice(&result::SUCCESS.to_be_bytes());
            reply.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            reply.extend_from_slice(&(part.len() as u32).to_be_bytes());
            reply.extend_from_slice(part);
        }
        cmd::LOCK_STORAGE => {
            let mut retries = [0u8; 4];
            conn.read_exact(&mut retries)?;
            // The state directory's lock is held for the server's lifetime.
            result_only(reply, result::SUCCESS);
        }
        _ => {
            // Whatever body it had is not ours to guess: drop what arrived.
            let mut sink = [0u8; 256];
            while conn.read_available(&mut sink) == sink.len() {}
            result_only(reply, result::BAD_ORDINAL);
        }
    }
    Ok(after)
}

fn set_data_fd(conn: &Conn, shared: &Arc<Shared>, fd: Option<OwnedFd>) -> u32 {
    let Some(fd) = fd else {
        return if conn.is_unix() {
            result::BAD_PARAMETER
        } else {
            result::BAD_ORDINAL
        };
    };
    // Only a stream socket can carry the data channel.
    if rustix::net::sockopt::socket_type(&fd) != Ok(rustix::net::SocketType::STREAM) {
        return result::BAD_PARAMETER;
    }
    if shared
        .datafd_busy
        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return result::IOERROR;
    }
    let stream = UnixStream::from(fd);
    let _ = stream.set_write_timeout(Some(crate::net::REQUEST_TIMEOUT));
    shared.spawn_conn(Conn::Unix(stream), serve_datafd);
    result::SUCCESS
}

fn serve_datafd(conn: Conn, shared: &Arc<Shared>) {
    serve_data(conn, shared);
    shared.datafd_busy.store(false, Ordering::SeqCst);
}

/// GET_INFO's JSON for the classes in `flags`.
pub fn info_json(flags: u64, buffer_size: usize) -> String {
    let mut parts = Vec::new();
    if flags & info::TPM_SPECIFICATION != 0 {
        parts.push(r#""TPMSpecification":{"family":"2.0","level":0,"revision":185}"#.to_string());
    }
    if flags & info::TPM_ATTRIBUTES != 0 {
        parts.push(format!(
            r#""TPMAttributes":{{"manufacturer":"id:5654504D","version":"id:{:08X}","model":"vtpm-server"}}"#,
            0x0001_0000u32
        ));
    }
    if flags & info::TPM_FEATURES != 0 {
        parts.push(format!(
            r#""TPMFeatures":{{"MaxBufferSize":{buffer_size},"PQC":["ML-DSA-44","ML-DSA-65","ML-DSA-87","ML-KEM-512","ML-KEM-768","ML-KEM-1024"]}}"#
        ));
    }
    format!("{{{}}}", parts.join(","))
}

/// Serves one client of the data channel: bare TPM commands at the
/// locality SET_LOCALITY chose.
pub(crate) fn serve_data(mut conn: Conn, shared: &Arc<Shared>) {
    let mut command = Zeroizing::new(Vec::new());
    let mut response = Zeroizing::new(Vec::new());
    loop {
        let mut header = [0u8; HEADER_SIZE];
        match read_request_start(&mut conn, &mut header) {
            Ok(true) => {}
            Ok(false) | Err(_) => return,
        }
        let size = be32(&header[2..6]) as usize;
        let limit = shared.tpm().buffer_size();
        if size < HEADER_SIZE || size > limit {
            // Read what the header announces, so the stream stays in step,
            // then refuse the command as a whole.
            if size > HEADER_SIZE && discard(&mut conn, (size - HEADER_SIZE) as u64).is_err() {
                return;
            }
            if conn
                .write_all(&error_response(ResponseCode::COMMAND_SIZE))
                .is_err()
            {
                return;
            }
            continue;
        }
        command.clear();
        command.extend_from_slice(&header);
        command.resize(size, 0);
        if conn.read_exact(&mut command[HEADER_SIZE..]).is_err() {
            return;
        }
        {
            let mut tpm = shared.tpm();
            let locality = tpm.locality();
            shared.execute_cancellable(&mut tpm, locality, &command, &mut response);
        }
        if conn.write_all(&response).is_err() {
            return;
        }
    }
}
