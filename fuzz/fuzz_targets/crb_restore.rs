//! Arbitrary bytes as a device snapshot: restore must return a device or a
//! typed error, never panic, and a restored device must stay within its
//! limits under further MMIO.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vtpm_crb::{CrbConfig, CrbDevice};

fuzz_target!(|data: &[u8]| {
    let config = CrbConfig {
        window_size: 256,
        backend_buffer: 8192,
        ..CrbConfig::default()
    };
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
        data
    };
    if let Ok(mut device) = CrbDevice::restore(config, input) {
        assert!(device.held_bytes() <= device.transfer_limit());
        let mut word = [0u8; 4];
        device.read(0x4C, &mut word);
        device.write(0x4C, &1u32.to_le_bytes());
        device.write(0x4C, &4u32.to_le_bytes());
        device.read(0x80, &mut word);
        assert!(device.held_bytes() <= device.transfer_limit());
    }
});
