//! The device model stays sans-I/O. `#![no_std]` makes the compiler refuse
//! threads, files, sockets, processes and clocks in the crate itself; this
//! test keeps that attribute (and `forbid(unsafe_code)`) from being
//! dropped, keeps `std` from being brought back in, and pins the runtime
//! dependencies to crates that need no operating system.

#[test]
fn the_crate_is_no_std_forbids_unsafe_and_depends_only_on_no_std_crates() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let lib = std::fs::read_to_string(format!("{dir}/lib.rs")).unwrap();
    assert!(lib.contains("#![no_std]"));
    assert!(lib.contains("#![forbid(unsafe_code)]"));
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("extern crate std"),
            "{} brings std back",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 5);
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap()
        .split("[dev-dependencies]")
        .next()
        .unwrap();
    let names: Vec<&str> = deps
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split(['.', '=', ' ']).next())
        .collect();
    assert_eq!(
        names,
        ["vtpm-mmio", "vtpm-frame", "thiserror", "zeroize", "subtle"],
        "runtime dependencies"
    );
}
