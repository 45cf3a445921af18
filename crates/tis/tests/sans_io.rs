//! The device model stays sans-I/O and `no_std`: no standard library in
//! its sources (so no sockets, threads, files, processes or clocks), unsafe
//! code forbidden, and only the dependencies it needs.

#[test]
fn sources_use_no_std_io_threads_or_clocks() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for banned in ["std::", "Instant", "SystemTime"] {
            let uses = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .any(|l| {
                    l.replace("core::", "")
                        .replace("alloc::", "")
                        .contains(banned)
                });
            assert!(!uses, "{} uses {banned}", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 4);
    let lib = std::fs::read_to_string(format!("{dir}/lib.rs")).unwrap();
    assert!(lib.contains("#![no_std]"));
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
        [
            "vtpm-mmio",
            "vtpm-wire",
            "vtpm-frame",
            "thiserror",
            "zeroize"
        ],
        "runtime dependencies"
    );
}
