//! The swtpm check that stops `cargo test` with one message when swtpm is
//! missing (crates/swtpm-check, outside the workspace so a plain build
//! never needs swtpm): its search and its message.

#[path = "../../swtpm-check/src/find.rs"]
mod find;

use find::{find_swtpm, MISSING};
use std::ffi::OsStr;

#[test]
fn the_message_names_the_install_step() {
    assert!(MISSING.contains("./scripts/test.sh"));
    assert!(MISSING.contains("apt-get install swtpm swtpm-tools"));
}

#[test]
fn swtpm_is_missing_from_an_empty_path_and_found_where_it_is() {
    let dir = std::env::temp_dir().join(format!("vtpm-swtpm-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(find_swtpm(None, Some(dir.as_os_str())), None);
    assert_eq!(find_swtpm(None, None), None);
    std::fs::write(dir.join("swtpm"), b"").unwrap();
    assert_eq!(
        find_swtpm(None, Some(dir.as_os_str())),
        Some(dir.join("swtpm"))
    );
    let explicit = dir.join("swtpm");
    assert_eq!(
        find_swtpm(Some(explicit.as_os_str()), None),
        Some(explicit.clone())
    );
    assert_eq!(
        find_swtpm(
            Some(OsStr::new("/nonexistent/swtpm")),
            Some(dir.as_os_str())
        ),
        None
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_build_of_the_backend_tests_without_swtpm_stops_with_that_message() {
    // The same check the build script runs, with no swtpm anywhere.
    let missing = find_swtpm(Some(OsStr::new("/nonexistent/swtpm")), Some(OsStr::new("")));
    assert!(missing.is_none());
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../swtpm-check/build.rs"
    ))
    .unwrap();
    assert!(script.contains("find::MISSING") && script.contains("exit(1)"));
    let backend = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../backend/Cargo.toml"
    ))
    .unwrap();
    assert!(backend.contains("vtpm-swtpm-check.workspace = true"));
}
