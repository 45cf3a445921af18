//! Sealed saves: AES-256-GCM under a caller's key, since a saved platform
//! carries the TPM's state in the clear.

use std::time::Duration;

use vtpm_backend::sim::SimBackend;
use vtpm_backend::testing::FnBackend;
use vtpm_client::{parse_pcr_read, pcr_extend_sha256, pcr_read, startup};
use vtpm_frame::FrameError;
use vtpm_platform::{Platform, PlatformConfig, PlatformError, SealingKey, SEALED_MAGIC};
use vtpm_sim::SimConfig;
use vtpm_wire::consts::TPM_ALG_SHA256;

const KEY: [u8; 32] = [0x42; 32];

fn echo() -> Box<FnBackend> {
    Box::new(FnBackend::echo(4096))
}

fn sealed_echo_platform() -> Vec<u8> {
    let p = Platform::new(echo(), PlatformConfig::default()).unwrap();
    p.save_sealed(Duration::from_secs(5), &SealingKey::new(KEY))
        .unwrap()
        .to_vec()
}

/// The blob with its CRC-32 recomputed, as a deliberate forger would.
fn recrc(blob: &mut [u8]) {
    let n = blob.len() - 4;
    let crc = crc32(&blob[..n]);
    blob[n..].copy_from_slice(&crc.to_le_bytes());
}

fn crc32(bytes: &[u8]) -> u32 {
    // Plain reflected CRC-32 (IEEE), as vtpm-frame writes it.
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_sealed_save_restores_with_its_key_and_hides_the_plain_blob() {
    let sealed = sealed_echo_platform();
    assert_eq!(&sealed[..8], &SEALED_MAGIC);
    assert!(
        !sealed.windows(11).any(|w| w == b"test-double"),
        "the backend name is not readable in the sealed blob"
    );
    let p = Platform::restore_sealed(
        &sealed,
        &SealingKey::new(KEY),
        echo(),
        PlatformConfig::default(),
    )
    .unwrap();
    let cmd = vtpm_client::get_random(4);
    assert_eq!(p.driver().transmit(0, &cmd).unwrap(), cmd);
}

#[test]
fn two_sealed_saves_of_the_same_state_differ_by_their_nonce() {
    assert_ne!(sealed_echo_platform(), sealed_echo_platform());
}

#[test]
fn a_wrong_key_or_an_altered_byte_does_not_unseal() {
    let sealed = sealed_echo_platform();
    let restore = |blob: &[u8], key: [u8; 32]| {
        Platform::restore_sealed(
            blob,
            &SealingKey::new(key),
            echo(),
            PlatformConfig::default(),
        )
    };
    let mut wrong = KEY;
    wrong[31] ^= 1;
    assert!(matches!(
        restore(&sealed, wrong),
        Err(PlatformError::Unseal)
    ));
    // Every byte after the preamble, altered with a matching checksum.
    for at in 10..sealed.len() - 4 {
        let mut forged = sealed.clone();
        forged[at] ^= 0x01;
        recrc(&mut forged);
        assert!(restore(&forged, KEY).is_err(), "byte {at}");
    }
    let mut forged = sealed.clone();
    let last_ciphertext = sealed.len() - 5;
    forged[last_ciphertext] ^= 0x80;
    recrc(&mut forged);
    assert!(matches!(restore(&forged, KEY), Err(PlatformError::Unseal)));
    // A version changed with a matching checksum: the version is
    // authenticated too (and this one is unknown besides).
    let mut forged = sealed.clone();
    forged[8] = 1;
    forged[9] = 1;
    recrc(&mut forged);
    assert!(restore(&forged, KEY).is_err());
    // Without a matching checksum the framing already refuses it.
    let mut flipped = sealed.clone();
    flipped[last_ciphertext] ^= 0x80;
    assert!(matches!(
        restore(&flipped, KEY),
        Err(PlatformError::Frame(FrameError::Checksum { .. }))
    ));
}

#[test]
fn sealed_and_plain_blobs_are_not_mistaken_for_each_other() {
    let sealed = sealed_echo_platform();
    assert!(matches!(
        Platform::restore(&sealed, echo(), PlatformConfig::default()),
        Err(PlatformError::Sealed)
    ));
    let p = Platform::new(echo(), PlatformConfig::default()).unwrap();
    let plain = p.save(Duration::from_secs(5)).unwrap();
    assert!(matches!(
        Platform::restore_sealed(
            &plain,
            &SealingKey::new(KEY),
            echo(),
            PlatformConfig::default()
        ),
        Err(PlatformError::NotSealed)
    ));
}

#[test]
fn a_sealed_save_carries_the_sims_state() {
    let sim = || {
        Box::new(
            SimBackend::new(SimConfig {
                rng_seed: Some([7; 32]),
                ..SimConfig::default()
            })
            .unwrap(),
        )
    };
    let p = Platform::new(sim(), PlatformConfig::default()).unwrap();
    let mut driver = p.driver();
    driver.transmit(0, &startup(0)).unwrap();
    driver
        .transmit(0, &pcr_extend_sha256(12, &[0x5A; 32]))
        .unwrap();
    let read = pcr_read(TPM_ALG_SHA256, &[12]);
    let before = parse_pcr_read(&driver.transmit(0, &read).unwrap()).unwrap();
    let sealed = p
        .save_sealed(Duration::from_secs(5), &SealingKey::new(KEY))
        .unwrap();
    drop(driver);
    drop(p);
    let q = Platform::restore_sealed(
        &sealed,
        &SealingKey::new(KEY),
        sim(),
        PlatformConfig::default(),
    )
    .unwrap();
    let after = parse_pcr_read(&q.driver().transmit(0, &read).unwrap()).unwrap();
    assert_eq!(after, before, "PCR 12 came across, no Startup needed");
}

#[test]
fn a_sealing_key_never_prints_its_bytes() {
    assert_eq!(format!("{:?}", SealingKey::new(KEY)), "SealingKey(..)");
}
