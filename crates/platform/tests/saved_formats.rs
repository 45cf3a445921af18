//! Saved platforms written by earlier versions still restore.

use vtpm_backend::testing::FnBackend;
use vtpm_guest::Mmio;
use vtpm_platform::{Platform, PlatformConfig};

/// Written by the version-1 format (hand-written framing, before
/// vtpm-frame): an echo test double whose established flag was set, saved
/// after it answered GetRandom(4) at locality 0 and before the guest read
/// the response.
const V1_TEST_DOUBLE: &[u8] = include_bytes!("data/platform-v1-test-double.bin");

/// Written by the version-2 format (vtpm-frame, before the interface
/// section): the same scene as the version-1 blob.
const V2_TEST_DOUBLE: &[u8] = include_bytes!("data/platform-v2-test-double.bin");

#[test]
fn a_version_1_blob_restores_with_its_response_and_backend_state() {
    restores_get_random_scene(V1_TEST_DOUBLE);
}

#[test]
fn a_version_2_blob_restores_as_crb_with_its_response_and_backend_state() {
    restores_get_random_scene(V2_TEST_DOUBLE);
}

fn restores_get_random_scene(saved: &[u8]) {
    let p = Platform::restore(
        saved,
        Box::new(FnBackend::echo(4096)),
        PlatformConfig::default(),
    )
    .unwrap();
    let mut bus = p.bus();
    // LOC_STATE bit 0 reads 0 while the backend's established flag is set.
    assert_eq!(bus.read_u32(0) & 1, 0, "the backend took the saved flag");
    let mut response = [0u8; 12];
    bus.read(0x80, &mut response);
    assert_eq!(response, *vtpm_client::get_random(4));
    assert_eq!(
        bus.read_u32(0x0C) & 1,
        1,
        "locality 0 is still active (LOC_STS.Granted)"
    );
}

#[test]
fn a_save_is_a_version_3_frame_with_interface_device_name_and_state_sections() {
    let mut backend = FnBackend::echo(4096);
    vtpm_backend::Backend::restore_state(&mut backend, &[1]).unwrap();
    let p = Platform::new(Box::new(backend), PlatformConfig::default()).unwrap();
    let saved = p.save(std::time::Duration::from_secs(5)).unwrap();
    let frame = vtpm_frame::Frame::parse(&vtpm_platform::PLATFORM_MAGIC, &saved).unwrap();
    assert_eq!(frame.version(), vtpm_platform::PLATFORM_VERSION);
    assert_eq!(vtpm_platform::PLATFORM_VERSION, 3);
    let [device, name, state, interface] = frame.known_sections([1, 2, 3, 4]).unwrap();
    let mut interface = interface.unwrap();
    assert_eq!(interface.take(interface.remaining()).unwrap(), [0], "CRB");
    assert!(device.unwrap().remaining() > 0);
    let mut name = name.unwrap();
    assert_eq!(name.take(name.remaining()).unwrap(), b"test-double");
    let mut state = state.unwrap();
    assert_eq!(state.take(state.remaining()).unwrap(), [1]);
}
