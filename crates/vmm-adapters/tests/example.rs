//! Runs `examples/io_manager.rs`: both devices on a rust-vmm IoManager.
#![cfg(feature = "vm-device")]

#[path = "../examples/io_manager.rs"]
mod example;

#[test]
fn the_io_manager_example_runs_the_workload_through_both_devices() {
    let (crb, tis) = example::run().expect("the example runs");
    for outcome in [crb, tis] {
        // Startup and GetRandom succeed; the full frame arrives whole
        // (TPM_RC_SIZE for its padding, not TPM_RC_COMMAND_SIZE).
        assert_eq!(outcome.codes, [0, 0, 0x095], "{outcome:?}");
        assert_eq!(outcome.random_bytes, 32);
    }
}
