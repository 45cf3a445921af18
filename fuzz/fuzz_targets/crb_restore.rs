//! Arbitrary bytes as a device snapshot: restore must return a device or a
//! typed error, never panic. A restored device must then keep the
//! device's promises: its own snapshot loads back to the same bytes, and
//! whatever it forwards to a backend (re-delivered or newly started) is a
//! whole command whose header size equals its length, within the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vtpm_crb::{Action, CrbConfig, CrbDevice};

const CTRL_START: u64 = 0x4C;
const WINDOW: u64 = 0x80;
const START: u32 = 1;
const RSP_RETRY: u32 = 2;
const NEXT_CHUNK: u32 = 4;
/// A well-formed 12-byte response.
const RESPONSE: [u8; 12] = [0x80, 0x01, 0, 0, 0, 12, 0, 0, 0, 0, 0xAB, 0xCD];

fn config() -> CrbConfig {
    CrbConfig {
        window_size: 256,
        backend_buffer: 8192,
        ..CrbConfig::default()
    }
}

/// The forwarding invariant: a whole command, within the limit.
fn check_forwarded(command: &[u8], limit: usize) {
    assert!(command.len() >= 10, "forwarded {} bytes", command.len());
    assert!(command.len() <= limit, "forwarded {} > {limit}", command.len());
    let declared = u32::from_be_bytes([command[2], command[3], command[4], command[5]]);
    assert_eq!(declared as usize, command.len(), "header disagrees with length");
}

/// Checks and completes an execution a write just handed out.
fn start_bits(device: &mut CrbDevice, offset: u64, bits: u32, limit: usize) {
    let token = match device.write(offset, &bits.to_le_bytes()) {
        Some(Action::Execute { token, command, .. }) => {
            check_forwarded(command, limit);
            Some(token)
        }
        _ => None,
    };
    if let Some(token) = token {
        device.complete(token, Ok(&RESPONSE));
    }
}

fn round_trips(device: &CrbDevice) {
    let snap = device.snapshot();
    let again = CrbDevice::restore(config(), &snap).expect("own snapshot loads");
    assert_eq!(again.snapshot()[..], snap[..], "snapshot round trip differs");
}

fn drive(device: &mut CrbDevice) {
    let limit = device.transfer_limit();
    assert!(device.held_bytes() <= limit);
    round_trips(device);
    // The host re-delivers a command that was executing at save time.
    let redelivered = device.executing_command().map(|a| match a {
        Action::Execute { token, command, .. } => {
            check_forwarded(command, limit);
            token
        }
        _ => unreachable!("executing_command returns Execute only"),
    });
    if let Some(token) = redelivered {
        device.complete(token, Ok(&RESPONSE));
    }
    // From every locality: read what the window shows, continue a command
    // (nextChunk), start one, retry a response; then once more after a
    // short command is written.
    for round in 0..2 {
        for locality in 0..5u64 {
            let page = locality * 0x1000;
            for bits in [NEXT_CHUNK, NEXT_CHUNK, START, RSP_RETRY, NEXT_CHUNK] {
                let mut seen = [0u8; 32];
                device.read(page + WINDOW, &mut seen);
                start_bits(device, page + CTRL_START, bits, limit);
                assert!(device.held_bytes() <= limit);
            }
            if round == 1 {
                let _ = device.write(page + WINDOW, &RESPONSE);
            }
        }
    }
    round_trips(device);
}

fuzz_target!(|data: &[u8]| {
    // Seal the input with a valid checksum half of the time, so the fuzzer
    // reaches the section parser rather than stopping at the CRC.
    let mut sealed;
    let input = if data.first().is_some_and(|b| b & 1 == 1) {
        sealed = b"VTPMCRB\0".to_vec();
        sealed.extend_from_slice(&data[1..]);
        let crc = crc32fast::hash(&sealed);
        sealed.extend_from_slice(&crc.to_le_bytes());
        &sealed[..]
    } else {
        data.get(1..).unwrap_or_default()
    };
    if let Ok(mut device) = CrbDevice::restore(config(), input) {
        drive(&mut device);
    }
});
