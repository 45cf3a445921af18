//! One client's whole byte stream on one channel of `vtpm serve` (the mssim
//! command or platform port, the swtpm control or data channel), chosen by
//! the first byte. Whatever arrives, the handler must neither panic nor
//! hang, and must finish when the stream ends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vtpm_backend::sim::{SimBackend, SimConfig};
use vtpm_server::engine::{Tpm, TpmOptions};
use vtpm_server::fuzzing::{run_stream, Channel};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let channel = match selector & 3 {
        0 => Channel::MssimCommand,
        1 => Channel::MssimPlatform,
        2 => Channel::SwtpmCtrl,
        _ => Channel::SwtpmData,
    };
    // A fixed generator seed keeps every run reproducible.
    let config = SimConfig {
        rng_seed: Some([0; 32]),
        ..SimConfig::default()
    };
    let Ok(backend) = SimBackend::new(config) else {
        return;
    };
    let Ok(mut tpm) = Tpm::new(Box::new(backend), None, None, TpmOptions { startup_clear: selector & 4 != 0 }) else {
        return;
    };
    // With bit 3 the TPM is powered on first; without it the "before INIT"
    // paths are reached too.
    if selector & 8 != 0 && tpm.power_on_at_start().is_err() {
        return;
    }
    let _ = run_stream(tpm, channel, stream);
});
