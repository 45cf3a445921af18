//! The TPM simulator protocol of the Microsoft reference simulator
//! ("mssim"), as tpm2-tss's mssim TCTI speaks it. All integers big-endian.
//!
//! Command port:
//!
//! - `8 SEND_COMMAND | u8 locality | u32 n | n bytes` → `u32 m | m bytes | u32 0`
//! - `5 HASH_START`, `6 HASH_DATA | u32 n | n bytes`, `7 HASH_END` → `u32 0`
//! - `15 REMOTE_HANDSHAKE | u32 client version` → `u32 1 | u32 flags | u32 0`
//! - `20 SESSION_END`: the connection ends, no reply; `21 STOP`: the server
//!   stores its state and stops.
//! - a bare TPM command (its first bytes `80 01` or `80 02`) → the bare response.
//!
//! Platform port: a `u32` signal → `u32 0` (see [`signal`]).
//!
//! Deviations from the reference simulator: a command larger than the
//! buffer is read and dropped and answered TPM_RC_COMMAND_SIZE (the
//! reference closes the connection); an unknown request on either port
//! closes the connection without a reply (the reference answers an unknown
//! platform signal `u32 1` first); NV_ON/NV_OFF, PHYS_PRES_ON/OFF and
//! KEY_CACHE_ON/OFF are acknowledged and change nothing (the backend's NV is
//! always available and it has no physical-presence gated commands).

use std::io::{Read, Write};
use std::sync::Arc;

use vtpm_wire::{error_response, ResponseCode, HEADER_SIZE};
use zeroize::Zeroizing;

use crate::net::{discard, read_request_start, Conn};
use crate::server::{Shared, StopReason};

/// Request codes of both ports (the reference simulator's `TpmTcpProtocol.h`).
pub mod signal {
    /// Power the TPM on (nothing when it is on).
    pub const POWER_ON: u32 = 1;
    /// Power the TPM off.
    pub const POWER_OFF: u32 = 2;
    /// Assert physical presence.
    pub const PHYS_PRES_ON: u32 = 3;
    /// Deassert physical presence.
    pub const PHYS_PRES_OFF: u32 = 4;
    /// _TPM_Hash_Start.
    pub const HASH_START: u32 = 5;
    /// _TPM_Hash_Data: `u32 n | n bytes`.
    pub const HASH_DATA: u32 = 6;
    /// _TPM_Hash_End.
    pub const HASH_END: u32 = 7;
    /// A TPM command (command port).
    pub const SEND_COMMAND: u32 = 8;
    /// Cancel the running command.
    pub const CANCEL_ON: u32 = 9;
    /// End of cancel.
    pub const CANCEL_OFF: u32 = 10;
    /// NV available.
    pub const NV_ON: u32 = 11;
    /// NV unavailable.
    pub const NV_OFF: u32 = 12;
    /// Key cache on.
    pub const KEY_CACHE_ON: u32 = 13;
    /// Key cache off.
    pub const KEY_CACHE_OFF: u32 = 14;
    /// Version handshake (command port).
    pub const REMOTE_HANDSHAKE: u32 = 15;
    /// Reference-simulator test hook; not supported.
    pub const SET_ALTERNATIVE_RESULT: u32 = 16;
    /// TPM reset (power cycle of a powered TPM).
    pub const RESET: u32 = 17;
    /// TPM restart.
    pub const RESTART: u32 = 18;
    /// End of the client's session: the connection closes, no reply.
    pub const SESSION_END: u32 = 20;
    /// Stop the server.
    pub const STOP: u32 = 21;
    /// The largest command and response since the last query (platform port).
    pub const GET_COMMAND_RESPONSE_SIZES: u32 = 25;
    /// Whether an authenticated countdown timer signalled (platform port).
    pub const ACT_GET_SIGNALED: u32 = 26;
    /// Put the TPM into failure mode (platform port).
    pub const TEST_FAILURE_MODE: u32 = 30;
}

/// The version this server answers REMOTE_HANDSHAKE with.
pub const SERVER_VERSION: u32 = 1;
/// REMOTE_HANDSHAKE flags: tpmPlayAvailable | tpmSupportsPP (as the
/// reference simulator reports them).
pub const HANDSHAKE_FLAGS: u32 = 0x1 | 0x8;
/// The largest HASH_DATA piece accepted; a larger one closes the connection.
pub const MAX_HASH_PIECE: u32 = 64 << 10;

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn read_u32(conn: &mut Conn) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    conn.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn ack(conn: &mut Conn) -> std::io::Result<()> {
    conn.write_all(&0u32.to_be_bytes())
}

/// Serves one client of the command port until it leaves.
pub(crate) fn serve_command(mut conn: Conn, shared: &Arc<Shared>) {
    let mut command = Zeroizing::new(Vec::new());
    let mut response = Zeroizing::new(Vec::new());
    let mut out = Zeroizing::new(Vec::new());
    loop {
        let mut code = [0u8; 4];
        match read_request_start(&mut conn, &mut code) {
            Ok(true) => {}
            Ok(false) | Err(_) => return,
        }
        let code = be32(&code);
        let done = match code {
            signal::SEND_COMMAND => {
                send_command(&mut conn, shared, &mut command, &mut response, &mut out)
            }
            signal::HASH_START | signal::HASH_DATA | signal::HASH_END => {
                hash_signal(&mut conn, shared, code)
            }
            signal::REMOTE_HANDSHAKE => handshake(&mut conn),
            signal::SESSION_END => return,
            signal::STOP => {
                shared.request_stop(StopReason::MssimStop);
                return;
            }
            _ if code >> 16 == 0x8001 || code >> 16 == 0x8002 => {
                bare_command(&mut conn, shared, code, &mut command, &mut response)
            }
            other => {
                tracing::warn!(
                    code = other,
                    "unknown mssim request; closing the connection"
                );
                return;
            }
        };
        if done.is_err() {
            return;
        }
    }
}

fn send_command(
    conn: &mut Conn,
    shared: &Arc<Shared>,
    command: &mut Vec<u8>,
    response: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    let mut head = [0u8; 5];
    conn.read_exact(&mut head)?;
    let locality = head[0];
    let len = be32(&head[1..5]);
    let limit = shared.tpm().buffer_size();
    if len as usize > limit {
        discard(conn, u64::from(len))?;
        response.clear();
        response.extend_from_slice(&error_response(ResponseCode::COMMAND_SIZE));
    } else {
        command.clear();
        command.resize(len as usize, 0);
        conn.read_exact(command)?;
        shared.execute_cancellable(&mut shared.tpm(), locality, command, response);
    }
    out.clear();
    out.extend_from_slice(&(response.len() as u32).to_be_bytes());
    out.extend_from_slice(response);
    out.extend_from_slice(&0u32.to_be_bytes());
    conn.write_all(out)
}

/// A TPM command without the mssim envelope: `code` holds its first four
/// bytes.
fn bare_command(
    conn: &mut Conn,
    shared: &Arc<Shared>,
    code: u32,
    command: &mut Vec<u8>,
    response: &mut Vec<u8>,
) -> std::io::Result<()> {
    let mut header = [0u8; HEADER_SIZE];
    header[..4].copy_from_slice(&code.to_be_bytes());
    conn.read_exact(&mut header[4..])?;
    let size = be32(&header[2..6]) as usize;
    let limit = shared.tpm().buffer_size();
    if size < HEADER_SIZE || size > limit {
        if size > HEADER_SIZE {
            discard(conn, (size - HEADER_SIZE) as u64)?;
        }
        return conn.write_all(&error_response(ResponseCode::COMMAND_SIZE));
    }
    command.clear();
    command.extend_from_slice(&header);
    command.resize(size, 0);
    conn.read_exact(&mut command[HEADER_SIZE..])?;
    let mut tpm = shared.tpm();
    let locality = tpm.locality();
    shared.execute_cancellable(&mut tpm, locality, command, response);
    drop(tpm);
    conn.write_all(response)
}

fn hash_signal(conn: &mut Conn, shared: &Arc<Shared>, code: u32) -> std::io::Result<()> {
    let outcome = match code {
        signal::HASH_START => shared.tpm().hash_start(),
        signal::HASH_DATA => {
            let len = read_u32(conn)?;
            if len > MAX_HASH_PIECE {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
            let mut data = Zeroizing::new(vec![0u8; len as usize]);
            conn.read_exact(&mut data)?;
            shared.tpm().hash_data(&data)
        }
        _ => shared.tpm().hash_end(),
    };
    if let Err(e) = outcome {
        // The reference simulator acknowledges these signals regardless.
        tracing::warn!(error = %e, "hash signal failed");
    }
    ack(conn)
}

fn handshake(conn: &mut Conn) -> std::io::Result<()> {
    let client = read_u32(conn)?;
    if client == 0 {
        return Err(std::io::ErrorKind::InvalidData.into());
    }
    let mut reply = [0u8; 12];
    reply[0..4].copy_from_slice(&SERVER_VERSION.to_be_bytes());
    reply[4..8].copy_from_slice(&HANDSHAKE_FLAGS.to_be_bytes());
    conn.write_all(&reply)
}

/// Serves one client of the platform port until it leaves.
pub(crate) fn serve_platform(mut conn: Conn, shared: &Arc<Shared>) {
    loop {
        let mut code = [0u8; 4];
        match read_request_start(&mut conn, &mut code) {
            Ok(true) => {}
            Ok(false) | Err(_) => return,
        }
        let code = be32(&code);
        let outcome: Result<(), String> = match code {
            signal::POWER_ON => shared.tpm().power_on().map_err(|e| e.to_string()),
            signal::POWER_OFF => shared.tpm().power_off().map_err(|e| e.to_string()),
            signal::RESET | signal::RESTART => shared.tpm().reset().map_err(|e| e.to_string()),
            signal::CANCEL_ON => {
                // Without the TPM lock: the command to cancel holds it.
                let canceller = shared.canceller();
                match canceller {
                    Some(c) => c.cancel().map_err(|e| e.to_string()),
                    None => Ok(()),
                }
            }
            signal::CANCEL_OFF => {
                // Lowers the line: a request no command saw is taken back.
                if let Some(c) = shared.canceller() {
                    c.withdraw();
                }
                Ok(())
            }
            signal::NV_ON
            | signal::NV_OFF
            | signal::PHYS_PRES_ON
            | signal::PHYS_PRES_OFF
            | signal::KEY_CACHE_ON
            | signal::KEY_CACHE_OFF => Ok(()),
            signal::HASH_START | signal::HASH_DATA | signal::HASH_END => {
                if hash_signal(&mut conn, shared, code).is_err() {
                    return;
                }
                continue;
            }
            signal::TEST_FAILURE_MODE => {
                shared.tpm().force_failure_mode();
                Ok(())
            }
            signal::GET_COMMAND_RESPONSE_SIZES => {
                let seen = shared.tpm().take_largest();
                // The reference sends its in-memory structure: four u32 in
                // the host's (little-endian) order, as a u32-sized buffer.
                let mut reply = [0u8; 24];
                reply[0..4].copy_from_slice(&16u32.to_be_bytes());
                reply[4..8].copy_from_slice(&seen.command_size.to_le_bytes());
                reply[8..12].copy_from_slice(&seen.command_code.to_le_bytes());
                reply[12..16].copy_from_slice(&seen.response_size.to_le_bytes());
                reply[16..20].copy_from_slice(&seen.response_code.to_le_bytes());
                if conn.write_all(&reply).is_err() {
                    return;
                }
                continue;
            }
            signal::ACT_GET_SIGNALED => {
                // No authenticated countdown timers: never signalled.
                if read_u32(&mut conn).is_err() || conn.write_all(&[0u8; 8]).is_err() {
                    return;
                }
                continue;
            }
            signal::SESSION_END => return,
            signal::STOP => {
                shared.request_stop(StopReason::MssimStop);
                return;
            }
            other => {
                tracing::warn!(code = other, "unknown mssim platform signal; closing");
                return;
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(signal = code, error = %e, "platform signal failed");
        }
        if ack(&mut conn).is_err() {
            return;
        }
    }
}
