//! No freed heap block keeps a password the simulator handled.
//!
//! A global allocator scans every block freed while the check is active for
//! a marker used as an object's authValue, as a password, as a hierarchy's
//! new authValue, and saved in and restored from a state blob. Blocks wiped
//! before they are freed (Zeroizing, ZeroizeOnDrop, a buffer that never
//! reallocates) do not contain it. This file holds a single test: the
//! allocator is process-wide.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use vtpm_client as client;
use vtpm_sim::{Sim, SimConfig};
use vtpm_wire::consts::{TPM_ALG_SHA256, TPM_RH_OWNER, TPM_SU_CLEAR};
use vtpm_wire::structures::{MlDsaParameterSet, PublicArea};
use zeroize::Zeroizing;

const MARKER: [u8; 24] = *b"wipe-me:vtpm-sim-marker!";

static SCANNING: AtomicBool = AtomicBool::new(false);
static UNWIPED: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting freed blocks that still hold [`MARKER`].
struct Scanning;

// SAFETY: every call is forwarded unchanged to the system allocator. The
// scan reads the block being freed, which is still allocated and
// `layout.size()` bytes long; bytes of it the program never wrote are read
// as whatever the allocator left there, which this test-only check
// accepts (it looks for a marker, not at values it relies on).
unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if SCANNING.load(Ordering::SeqCst) && layout.size() >= MARKER.len() {
            // SAFETY: `ptr` is a live block of `layout.size()` bytes.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if block.windows(MARKER.len()).any(|w| w == MARKER) {
                UNWIPED.fetch_add(1, Ordering::SeqCst);
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Scanning = Scanning;

fn rc_ok(response: &[u8]) {
    let header = vtpm_wire::Header::parse_exact(response).unwrap();
    assert_eq!(header.code, 0, "command failed: {:#x}", header.code);
}

#[test]
fn no_freed_block_keeps_a_password_the_simulator_handled() {
    // Commands are built before the scan starts (building them copies the
    // marker through growing buffers of the test's own), and wiped after.
    // HashML-DSA, so TPM2_SignDigest of a SHA-256 digest uses the key's
    // password and succeeds.
    let template = PublicArea::hash_mldsa(MlDsaParameterSet::MlDsa44, TPM_ALG_SHA256);
    let create = Zeroizing::new(client::create_primary(
        TPM_RH_OWNER,
        b"",
        &template,
        &MARKER,
    ));
    let handle = 0x8000_0000;
    let sign = Zeroizing::new(client::sign_digest(handle, &MARKER, b"", &[1; 32]));
    let set_owner = Zeroizing::new(client::hierarchy_change_auth(TPM_RH_OWNER, b"", &MARKER));
    let clear_owner = Zeroizing::new(client::hierarchy_change_auth(TPM_RH_OWNER, &MARKER, b""));
    let flush = client::flush_context(handle);
    let startup = client::startup(TPM_SU_CLEAR);
    let config = SimConfig {
        rng_seed: Some([5; 32]),
        ..SimConfig::default()
    };
    let mut sim = Sim::new(config.clone()).unwrap();
    let mut restored = Sim::new(config).unwrap();
    let mut response = Vec::with_capacity(8192);
    sim.execute(0, &startup, &mut response);
    rc_ok(&response);

    SCANNING.store(true, Ordering::SeqCst);
    sim.execute(0, &create, &mut response);
    rc_ok(&response);
    sim.execute(0, &sign, &mut response);
    rc_ok(&response);
    sim.execute(0, &set_owner, &mut response);
    rc_ok(&response);
    let blob = sim.save_state();
    restored.restore_state(&blob).unwrap();
    drop(blob);
    restored.execute(0, &sign, &mut response);
    rc_ok(&response);
    drop(restored);
    sim.execute(0, &clear_owner, &mut response);
    rc_ok(&response);
    sim.execute(0, &flush, &mut response);
    rc_ok(&response);
    drop(sim);
    drop((create, sign, set_owner, clear_owner));
    SCANNING.store(false, Ordering::SeqCst);

    assert_eq!(
        UNWIPED.load(Ordering::SeqCst),
        0,
        "freed blocks still holding the password"
    );
}
