//! Migration with a real swtpm: TPM state (PCRs, a loaded key) moves to a
//! fresh swtpm process, and a transfer migrated at every MMIO access, in
//! the middle of multi-piece sends and receives, completes correctly.

use std::time::Duration;

use vtpm_backend::swtpm::{SwtpmBackend, SwtpmConfig};
use vtpm_backend::Backend;
use vtpm_client as client;
use vtpm_client::Response;
use vtpm_guest::{CrbDriver, TransmitOptions};
use vtpm_platform::{MigratingBus, Platform, PlatformConfig};
use vtpm_wire::consts::*;
use vtpm_wire::{cc, CommandBuilder, ResponseCode};

fn swtpm() -> Box<dyn Backend> {
    Box::new(SwtpmBackend::spawn(SwtpmConfig::default()).expect("spawn swtpm"))
}

fn config() -> PlatformConfig {
    PlatformConfig {
        window_size: 256,
        ..PlatformConfig::default()
    }
}

/// TPM2_CreatePrimary of an ECC P-256 signing key in the owner hierarchy.
fn create_ecc_primary() -> Vec<u8> {
    let template = CommandBuilder::new(0, 0)
        .u16(TPM_ALG_ECC)
        .u16(TPM_ALG_SHA256)
        .u32(0x0004_0072) // fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth | sign
        .tpm2b(&[])
        .u16(TPM_ALG_NULL) // symmetric
        .u16(0x0018) // TPM_ALG_ECDSA
        .u16(TPM_ALG_SHA256)
        .u16(0x0003) // TPM_ECC_NIST_P256
        .u16(TPM_ALG_NULL) // kdf
        .tpm2b(&[])
        .tpm2b(&[])
        .finish();
    CommandBuilder::with_sessions(cc::CREATE_PRIMARY)
        .u32(TPM_RH_OWNER)
        .password_session(&[])
        .tpm2b(&[0, 0, 0, 0])
        .tpm2b(&template[10..])
        .tpm2b(&[])
        .u32(0)
        .finish()
}

fn read_public(handle: u32) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::READ_PUBLIC)
        .u32(handle)
        .finish()
}

fn ok(response: &[u8]) -> &[u8] {
    let r = Response::parse(response).expect("well-formed response");
    assert_eq!(r.rc(), ResponseCode::SUCCESS);
    r.body
}

#[test]
fn pcrs_and_a_loaded_key_survive_a_move_to_a_fresh_swtpm() {
    let source = Platform::new(swtpm(), config()).unwrap();
    let mut driver = source.driver();
    ok(&driver.transmit(0, &client::startup(TPM_SU_CLEAR)).unwrap());
    ok(&driver
        .transmit(0, &client::pcr_extend_sha256(16, &[0x42; 32]))
        .unwrap());
    let pcr_before = driver
        .transmit(0, &client::pcr_read(TPM_ALG_SHA256, &[16]))
        .unwrap();
    let created = driver.transmit(0, &create_ecc_primary()).unwrap();
    let handle = u32::from_be_bytes(ok(&created)[..4].try_into().unwrap());
    let public_before = driver.transmit(0, &read_public(handle)).unwrap();
    ok(&public_before);

    let saved = source.save(Duration::from_secs(10)).unwrap();
    drop(driver);
    drop(source);
    let destination = Platform::restore(&saved, swtpm(), config()).unwrap();
    let mut driver = destination.driver();
    assert_eq!(
        driver
            .transmit(0, &client::pcr_read(TPM_ALG_SHA256, &[16]))
            .unwrap(),
        pcr_before
    );
    assert_eq!(
        driver.transmit(0, &read_public(handle)).unwrap(),
        public_before
    );
    // The TPM is started already: a second Startup is refused as on any TPM.
    let again = driver.transmit(0, &client::startup(TPM_SU_CLEAR)).unwrap();
    assert_eq!(
        Response::parse(&again).unwrap().rc(),
        ResponseCode::INITIALIZE
    );
    println!("saved platform with swtpm: {} bytes", saved.len());
}

#[test]
fn migrating_at_every_access_mid_send_and_mid_receive() {
    let platform = Platform::new(swtpm(), config()).unwrap();
    let bus = MigratingBus::new(platform, Box::new(|| Ok(swtpm())));
    let mut driver = CrbDriver::new(bus);
    let mut out = Vec::new();
    let options = TransmitOptions::default();
    driver
        .transmit_with(0, &client::startup(TPM_SU_CLEAR), &mut out, options)
        .unwrap();
    ok(&out);
    // 4096 bytes out in 16 pieces, a migration after each MMIO access.
    let sent = driver
        .transmit_with(0, &client::padded_get_random(4096), &mut out, options)
        .unwrap();
    assert_eq!(sent.chunks_sent, 16);
    assert_eq!(
        Response::parse(&out).unwrap().rc(),
        ResponseCode::SIZE,
        "every byte arrived"
    );
    // A response of several pieces in.
    let fixed = client::get_capability(TPM_CAP_TPM_PROPERTIES, TPM_PT_FAMILY_INDICATOR, 64);
    let received = driver.transmit_with(0, &fixed, &mut out, options).unwrap();
    assert!(received.chunks_received >= 2);
    let props = client::parse_tpm_properties(&out).unwrap();
    assert_eq!(
        props[0],
        (TPM_PT_FAMILY_INDICATOR, u32::from_be_bytes(*b"2.0\0"))
    );
    let bus = driver.mmio();
    assert!(bus.error().is_none(), "{:?}", bus.error());
    assert!(bus.migrations() > 50, "{} migrations", bus.migrations());
}

#[test]
fn a_source_that_resumes_after_a_failed_migration_keeps_working() {
    let source = Platform::new(swtpm(), config()).unwrap();
    let mut driver = source.driver();
    ok(&driver.transmit(0, &client::startup(TPM_SU_CLEAR)).unwrap());
    let _saved = source.save(Duration::from_secs(10)).unwrap();
    // The destination failed; the source runs on.
    source.resume_after_failed_migration().unwrap();
    ok(&driver.transmit(0, &client::get_random(8)).unwrap());
}
