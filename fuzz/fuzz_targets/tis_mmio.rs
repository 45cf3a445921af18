//! Arbitrary MMIO sequences against the TIS device: reads and writes of
//! any width at any offset and locality, FIFO traffic, completions of any
//! size, resets, snapshots restored in place. The device must never panic,
//! never hold more than its buffer, and never let a locality read FIFO
//! bytes of a response that belongs to another.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vtpm_tis::{Action, BackendFailed, ExecToken, TisConfig, TisDevice};

/// Response body bytes carry 0xC0 + the locality that sent the command.
fn marked(size: usize, locality: u8) -> Vec<u8> {
    let mut size = size.max(10);
    if (0xC0..=0xC4).contains(&(size & 0xFF)) {
        size -= 8;
    }
    let mut r = vec![0xC0 + locality; size];
    r[0..2].copy_from_slice(&[0x80, 0x01]);
    r[2..6].copy_from_slice(&(size as u32).to_be_bytes());
    r[6..10].copy_from_slice(&[0; 4]);
    r
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let (Some(b), Some(l)) = (next(), next()) else {
        return;
    };
    let config = TisConfig {
        backend_buffer: 10 + usize::from(b) * 64,
        localities: 1 + l % 5,
        ..TisConfig::default()
    };
    let Ok(mut device) = TisDevice::new(config.clone()) else {
        return;
    };
    let limit = device.transfer_limit();
    let mut pending: Vec<(ExecToken, u8)> = Vec::new();
    while let (Some(op), Some(lo), Some(hi)) = (next(), next(), next()) {
        let offset = u64::from(u16::from_le_bytes([lo, hi])) % 0x5000;
        match op % 8 {
            0 => {
                let mut buf = vec![0u8; usize::from(op >> 3)];
                device.read(offset, &mut buf);
                let page = offset % 0x1000;
                let fifo = (0x24..0x28).contains(&page) || (0x80..0xC0).contains(&page);
                if fifo {
                    let reader = (offset / 0x1000) as u8;
                    for &byte in &buf {
                        assert!(!(0xC0..=0xC4).contains(&byte) || byte == 0xC0 + reader);
                    }
                }
            }
            1 | 2 => {
                // Register-sized writes, or any length up to 31 bytes (a
                // FIFO burst, or an odd access to a register).
                let len = if op % 8 == 1 {
                    [1usize, 2, 4, 8][usize::from(op >> 6)]
                } else {
                    usize::from(op >> 3)
                };
                let value: Vec<u8> = (0..len).map(|_| next().unwrap_or(0)).collect();
                if let Some(Action::Execute {
                    token,
                    command,
                    locality,
                }) = device.write(offset, &value)
                {
                    assert!(command.len() <= limit);
                    pending.push((token, locality));
                }
            }
            3 => {
                if let Some((token, locality)) = pending.pop() {
                    let size = usize::from(lo) * 40 + usize::from(hi);
                    let response = marked(size, locality);
                    let result = if op & 0x80 != 0 {
                        Err(BackendFailed)
                    } else {
                        Ok(response.as_slice())
                    };
                    device.complete(token, result);
                }
            }
            4 => device.reset(),
            5 => {
                let blob = device.snapshot();
                device = TisDevice::restore(config.clone(), &blob).expect("a snapshot restores");
            }
            6 => {
                // Drive the state machine: requestUse, commandReady, a
                // header, tpmGo, from the locality the offset names.
                let page = offset & !0xFFF;
                device.write(page, &[0x02]);
                device.write(page + 0x18, &[0x40]);
                device.write(
                    page + 0x80,
                    &[0x80, 0x01, 0, 0, 0, 0x0C, 0, 0, 0x01, 0x7B, 0, lo],
                );
                if let Some(Action::Execute {
                    token, locality, ..
                }) = device.write(page + 0x18, &[0x20])
                {
                    pending.push((token, locality));
                }
            }
            _ => device.set_established(op & 0x10 != 0),
        }
        assert!(device.held_bytes() <= limit);
    }
});
