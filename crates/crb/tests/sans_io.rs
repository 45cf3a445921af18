//! The device model stays sans-I/O: no sockets, threads, files, processes
//! or clocks in its sources, and unsafe code is forbidden.

#[test]
fn sources_use_no_io_threads_or_clocks() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for banned in [
            "std::net",
            "std::thread",
            "std::fs",
            "std::process",
            "std::time",
            "Instant",
        ] {
            assert!(!text.contains(banned), "{} uses {banned}", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 3);
    let lib = std::fs::read_to_string(format!("{dir}/lib.rs")).unwrap();
    assert!(lib.contains("#![forbid(unsafe_code)]"));
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
        ["vtpm-wire", "thiserror", "crc32fast"],
        "runtime dependencies"
    );
}
