//! Saved platforms written by earlier versions still restore.

use vtpm_backend::testing::FnBackend;
use vtpm_guest::Mmio;
use vtpm_platform::{Platform, PlatformConfig};

/// Written by the version-1 format (hand-written framing, before
/// vtpm-frame): an echo test double whose established flag was set, saved
/// after it answered GetRandom(4) at locality 0 and before the guest read
/// the response.
const V1_TEST_DOUBLE: &[u8] = include_bytes!("data/platform-v1-test-double.bin");

#[test]
fn a_version_1_blob_restores_with_its_response_and_backend_state() {
    let p = Platform::restore(
        V1_TEST_DOUBLE,
        Box::new(FnBackend::echo(4096)),
        PlatformConfig::default(),
    )
    .unwrap();
    let mut bus = p.bus();
    // LOC_STATE bit 0 reads 0 while the backend's established flag is set.
    assert_eq!(bus.read_u32(0) & 1, 0, "the backend took the saved flag");
    let mut response = [0u8; 12];
    bus.read(0x80, &mut response);
    assert_eq!(response, *vtpm_wire::commands::get_random(4));
    assert_eq!(
        bus.read_u32(0x0C) & 1,
        1,
        "locality 0 is still active (LOC_STS.Granted)"
    );
}
