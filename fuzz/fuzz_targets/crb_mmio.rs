//! Arbitrary MMIO sequences against the CRB device: reads, writes of any
//! width at any offset and locality, completions of any size, resets. The
//! device must never panic and must never hold more than its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vtpm_crb::{Action, BackendFailed, ChunkPolicy, CrbConfig, CrbDevice, ExecToken};

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let (Some(w), Some(b), Some(c)) = (next(), next(), next()) else {
        return;
    };
    let config = CrbConfig {
        window_size: 64 + usize::from(w) * 15,
        backend_buffer: 10 + usize::from(b) * 64,
        chunking: [ChunkPolicy::Auto, ChunkPolicy::On, ChunkPolicy::Off][usize::from(c % 3)],
        ..CrbConfig::default()
    };
    let Ok(mut device) = CrbDevice::new(config) else {
        return;
    };
    let limit = device.transfer_limit();
    let mut pending: Vec<ExecToken> = Vec::new();
    let mut response = Vec::new();
    while let (Some(op), Some(lo), Some(hi)) = (next(), next(), next()) {
        let offset = u64::from(u16::from_le_bytes([lo, hi])) % 0x5000;
        match op % 6 {
            0 => {
                let mut buf = vec![0u8; usize::from(op >> 3)];
                device.read(offset, &mut buf);
            }
            1 | 2 => {
                // Register-sized writes, or any length up to 31 bytes (a
                // window copy, or an odd access to a register).
                let len = if op % 6 == 1 {
                    [1usize, 2, 4, 8][usize::from(op >> 6)]
                } else {
                    usize::from(op >> 3)
                };
                let value: Vec<u8> = (0..len).map(|_| next().unwrap_or(0)).collect();
                match device.write(offset, &value) {
                    Some(Action::Execute { token, command, .. }) => {
                        assert!(command.len() >= 10 && command.len() <= limit);
                        let declared =
                            u32::from_be_bytes([command[2], command[3], command[4], command[5]]);
                        assert_eq!(declared as usize, command.len());
                        pending.push(token);
                    }
                    // A cancel names the execution in flight.
                    Some(Action::Cancel { token }) => assert!(pending.contains(&token)),
                    _ => {}
                }
            }
            3 => {
                if let Some(token) = pending.pop() {
                    let size = usize::from(lo) * 40 + usize::from(hi);
                    response.clear();
                    response.resize(size, hi);
                    if size >= 6 {
                        response[2..6].copy_from_slice(&(size as u32).to_be_bytes());
                    }
                    let result = if op & 0x80 != 0 { Err(BackendFailed) } else { Ok(response.as_slice()) };
                    device.complete(token, result);
                }
            }
            4 => device.reset(),
            _ => device.set_established(op & 0x10 != 0),
        }
        assert!(device.held_bytes() <= limit);
    }
});
