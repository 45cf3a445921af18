//! Helpers shared by the integration tests.
#![allow(dead_code)]

use vtpm_client as client;
use vtpm_client::CreatePrimaryResponse;
use vtpm_client::{startup, Response};
use vtpm_sim::{Sim, SimConfig};
use vtpm_wire::consts::{TPM_RH_OWNER, TPM_SU_CLEAR};
use vtpm_wire::structures::{PublicArea, Signature};
use vtpm_wire::{Header, ResponseCode};

/// A simulator with a fixed generator seed, not yet started.
pub fn sim_with_seed(seed: u8) -> Sim {
    Sim::new(SimConfig {
        rng_seed: Some([seed; 32]),
        ..SimConfig::default()
    })
    .expect("valid configuration")
}

/// A started simulator with a fixed generator seed.
pub fn started() -> Sim {
    let mut sim = sim_with_seed(7);
    assert_eq!(
        rc(&exec(&mut sim, &startup(TPM_SU_CLEAR))),
        ResponseCode::SUCCESS
    );
    sim
}

/// Runs `command` at locality 0 and checks the response is well formed.
pub fn exec(sim: &mut Sim, command: &[u8]) -> Vec<u8> {
    exec_at(sim, 0, command)
}

/// Runs `command` at `locality` and checks the response is well formed.
pub fn exec_at(sim: &mut Sim, locality: u8, command: &[u8]) -> Vec<u8> {
    let mut response = Vec::new();
    sim.execute(locality, command, &mut response);
    assert_well_formed(sim, &response);
    response
}

/// Header size equals length, length within the buffer, error responses
/// are exactly 10 bytes.
pub fn assert_well_formed(sim: &Sim, response: &[u8]) {
    let header = Header::parse_exact(response).expect("well-formed response header");
    assert!(response.len() <= sim.buffer_size());
    if header.code != 0 {
        assert_eq!(response.len(), 10, "error responses are headers only");
        assert_eq!(header.tag, vtpm_wire::consts::TPM_ST_NO_SESSIONS);
    }
}

/// The response code of a response.
pub fn rc(response: &[u8]) -> ResponseCode {
    Response::parse(response).expect("response parses").rc()
}

/// Creates a primary key in the owner hierarchy and returns its parsed answer.
pub fn primary(sim: &mut Sim, template: &PublicArea, auth: &[u8]) -> CreatePrimaryResponse {
    let response = exec(
        sim,
        &client::create_primary(TPM_RH_OWNER, b"", template, auth),
    );
    client::parse_create_primary(&response).expect("CreatePrimary succeeds")
}

/// Flushes a transient handle.
pub fn flush(sim: &mut Sim, handle: u32) {
    let response = exec(sim, &client::flush_context(handle));
    client::parse_empty(&response).expect("FlushContext succeeds");
}

/// Signs `message` with a sign sequence (the whole message in
/// SignSequenceComplete's buffer) and returns the signature.
pub fn sequence_sign(
    sim: &mut Sim,
    key: u32,
    key_auth: &[u8],
    ctx: &[u8],
    message: &[u8],
) -> Signature {
    let seq =
        client::parse_sequence_start(&exec(sim, &client::sign_sequence_start(key, b"seq", ctx)))
            .expect("SignSequenceStart succeeds");
    assert_eq!(seq >> 24, 0x80, "a sequence handle is transient");
    let response = exec(
        sim,
        &client::sign_sequence_complete(seq, b"seq", key, key_auth, message),
    );
    client::parse_sign(&response).expect("SignSequenceComplete succeeds")
}

/// Verifies with a verify sequence fed through SequenceUpdate in `parts`.
pub fn sequence_verify(
    sim: &mut Sim,
    key: u32,
    ctx: &[u8],
    parts: &[&[u8]],
    signature: &Signature,
) -> Vec<u8> {
    let seq = client::parse_sequence_start(&exec(
        sim,
        &client::verify_sequence_start(key, b"", b"", ctx),
    ))
    .expect("VerifySequenceStart succeeds");
    for part in parts {
        let response = exec(sim, &client::sequence_update(seq, b"", part));
        client::parse_empty(&response).expect("SequenceUpdate on a verify sequence succeeds");
    }
    let response = exec(
        sim,
        &client::verify_sequence_complete(seq, b"", key, signature),
    );
    if rc(&response) != ResponseCode::SUCCESS {
        // A refused signature leaves the sequence open, as a failed
        // command changes nothing.
        flush(sim, seq);
    }
    response
}
