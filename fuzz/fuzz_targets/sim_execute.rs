//! Raw command bytes against the embedded simulator, as a guest could send
//! them through a device. The input is cut into a sequence of commands
//! where each header says it ends, so one input can load a key and then use
//! it. Every answer must be a well-formed response no larger than the
//! buffer; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vtpm_sim::{Sim, SimConfig};
use vtpm_client::startup;
use vtpm_wire::consts::TPM_SU_CLEAR;
use vtpm_wire::Header;

fuzz_target!(|data: &[u8]| {
    let Some((&locality, mut rest)) = data.split_first() else {
        return;
    };
    // A fixed generator seed keeps every run reproducible.
    let config = SimConfig {
        rng_seed: Some([0; 32]),
        ..SimConfig::default()
    };
    let Ok(mut sim) = Sim::new(config) else {
        return;
    };
    let mut response = Vec::new();
    // With the first byte's high bit set the TPM is started first; without
    // it the pre-Startup paths are reached too.
    if locality & 0x80 != 0 {
        sim.execute(0, &startup(TPM_SU_CLEAR), &mut response);
    }
    while !rest.is_empty() {
        let declared = Header::peek_size(rest).map_or(rest.len(), |n| n as usize);
        let (command, tail) = rest.split_at(declared.clamp(1, rest.len()));
        // Localities 5 and 6 exercise the refusal of invalid localities.
        sim.execute(locality % 7, command, &mut response);
        let header = Header::parse_exact(&response).expect("a well-formed response");
        assert!(response.len() <= sim.buffer_size());
        if header.code != 0 {
            assert_eq!(response.len(), 10, "error responses are headers only");
        }
        rest = tail;
    }
});
