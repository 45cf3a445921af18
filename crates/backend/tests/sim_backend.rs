//! The embedded simulator behind the Backend trait.

use vtpm_backend::sim::SimBackend;
use vtpm_backend::{Backend, BackendError};
use vtpm_client as client;
use vtpm_client::{
    padded_get_random, parse_pcr_read, pcr_extend_sha256, pcr_read, startup, Response,
};
use vtpm_sim::SimConfig;
use vtpm_wire::consts::{TPM_ALG_SHA256, TPM_RH_OWNER};
use vtpm_wire::structures::{MlDsaParameterSet, MlKemParameterSet, PublicArea};
use vtpm_wire::ResponseCode;

fn backend() -> Box<dyn Backend> {
    Box::new(
        SimBackend::new(SimConfig {
            rng_seed: Some([4; 32]),
            ..SimConfig::default()
        })
        .unwrap(),
    )
}

fn run(b: &mut dyn Backend, command: &[u8]) -> Vec<u8> {
    let mut response = vec![0xEE; 3]; // stale bytes the backend must clear
    b.execute(0, command, &mut response).unwrap();
    let header = vtpm_wire::Header::parse_exact(&response).unwrap();
    assert!(response.len() <= b.buffer_size());
    assert_eq!(header.size as usize, response.len());
    response
}

fn rc(response: &[u8]) -> ResponseCode {
    Response::parse(response).unwrap().rc()
}

#[test]
fn identity_and_buffer_size() {
    let b = backend();
    assert_eq!(b.name(), "sim");
    assert_eq!(b.buffer_size(), 8192);
    assert!(matches!(
        SimBackend::new(SimConfig {
            buffer_size: 1024,
            ..SimConfig::default()
        }),
        Err(vtpm_sim::ConfigError::BufferTooSmall { .. })
    ));
}

#[test]
fn commands_up_to_the_buffer_are_answered_and_larger_ones_refused() {
    let mut b = backend();
    assert_eq!(rc(&run(b.as_mut(), &startup(0))), ResponseCode::SUCCESS);
    // Every byte of an 8192-byte command arrives: TPM_RC_SIZE, not COMMAND_SIZE.
    assert_eq!(rc(&run(b.as_mut(), &padded_get_random(8192))).0, 0x095);
    // The caller's check (the platform runs it) refuses one byte more...
    let err = b.check_command(&padded_get_random(8193)).unwrap_err();
    assert!(matches!(
        err,
        BackendError::CommandTooLarge {
            size: 8193,
            max: 8192
        }
    ));
    // ... and should it reach the simulator anyway, it is a TPM error.
    assert_eq!(
        rc(&run(b.as_mut(), &padded_get_random(8193))),
        ResponseCode::COMMAND_SIZE
    );
}

#[test]
fn pqc_workload_through_the_backend() {
    let mut b = backend();
    run(b.as_mut(), &startup(0));
    let key = client::parse_create_primary(&run(
        b.as_mut(),
        &client::create_primary(
            TPM_RH_OWNER,
            b"",
            &PublicArea::mldsa(MlDsaParameterSet::MlDsa87).with_external_mu(),
            b"",
        ),
    ))
    .unwrap();
    let response = run(
        b.as_mut(),
        &client::sign_digest(key.handle, b"", b"", &[7; 64]),
    );
    assert_eq!(response.len(), 4650, "larger than a 4 KiB CRB window");
    let signature = client::parse_sign(&response).unwrap();
    client::parse_verify(&run(
        b.as_mut(),
        &client::verify_digest_signature(key.handle, b"", &[7; 64], &signature),
    ))
    .unwrap();

    let kem = client::parse_create_primary(&run(
        b.as_mut(),
        &client::create_primary(
            TPM_RH_OWNER,
            b"",
            &PublicArea::mlkem(MlKemParameterSet::MlKem1024),
            b"",
        ),
    ))
    .unwrap();
    let out =
        client::parse_encapsulate(&run(b.as_mut(), &client::encapsulate(kem.handle))).unwrap();
    let secret = client::parse_decapsulate(&run(
        b.as_mut(),
        &client::decapsulate(kem.handle, b"", &out.ciphertext),
    ))
    .unwrap();
    assert_eq!(secret, out.shared_secret);
}

#[test]
fn established_flag_and_reset() {
    let mut sim = SimBackend::new(SimConfig {
        rng_seed: Some([4; 32]),
        ..SimConfig::default()
    })
    .unwrap();
    assert!(!sim.established().unwrap());
    run(&mut sim, &startup(0));
    sim.sim_mut().dynamic_launch(b"measured launch").unwrap();
    assert!(sim.established().unwrap());
    assert!(matches!(
        sim.reset_established(2),
        Err(BackendError::Unsupported(_))
    ));
    assert!(sim.established().unwrap());
    sim.reset_established(4).unwrap();
    assert!(!sim.established().unwrap());

    sim.reset().unwrap();
    assert_eq!(
        rc(&run(&mut sim, &padded_get_random(12))),
        ResponseCode::INITIALIZE
    );
    assert_eq!(rc(&run(&mut sim, &startup(0))), ResponseCode::SUCCESS);
}

#[test]
fn state_round_trips_and_corruption_is_a_state_error() {
    let mut a = backend();
    run(a.as_mut(), &startup(0));
    run(a.as_mut(), &pcr_extend_sha256(12, &[0x12; 32]));
    let pcr = parse_pcr_read(&run(a.as_mut(), &pcr_read(TPM_ALG_SHA256, &[12]))).unwrap();
    let state = a.save_state().unwrap();

    let mut b = Box::new(SimBackend::new(SimConfig::default()).unwrap());
    b.restore_state(&state).unwrap();
    assert_eq!(
        parse_pcr_read(&run(b.as_mut(), &pcr_read(TPM_ALG_SHA256, &[12]))).unwrap(),
        pcr
    );

    let mut corrupted = state.clone();
    corrupted[40] ^= 0xFF;
    let err = b.restore_state(&corrupted).unwrap_err();
    assert!(
        matches!(&err, BackendError::State(m) if m.contains("corrupted")),
        "{err}"
    );
    assert!(matches!(
        b.restore_state(&state[..20]),
        Err(BackendError::State(_))
    ));
}

#[test]
fn a_cancel_from_another_thread_makes_the_sim_command_answer_canceled_once() {
    let mut b = backend();
    run(b.as_mut(), &startup(0));
    let canceller = b.canceller().expect("the simulator can cancel");
    std::thread::spawn(move || canceller.cancel())
        .join()
        .unwrap()
        .unwrap();
    let template = PublicArea::mldsa(MlDsaParameterSet::MlDsa87);
    let create = client::create_primary(TPM_RH_OWNER, b"", &template, b"");
    assert_eq!(rc(&run(b.as_mut(), &create)), ResponseCode::CANCELED);
    // The cancelled command loaded nothing, and the request is used up.
    let key = client::parse_create_primary(&run(b.as_mut(), &create)).unwrap();
    assert_eq!(key.handle, 0x8000_0000);
}
