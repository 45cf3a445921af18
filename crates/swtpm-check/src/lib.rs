//! A dev-dependency of the crates whose tests run swtpm. Its build script
//! fails with [`MISSING`] when swtpm is not installed, so `cargo test
//! --workspace` on such a machine stops with one message naming the
//! install step instead of a failure in every swtpm test.

mod find;

pub use find::{find_swtpm, MISSING};

// Its tests live in crates/cli/tests/swtpm_check.rs: this crate is outside
// the workspace, so tests here would never run.
