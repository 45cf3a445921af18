// Shared by the build script and the library (for its tests).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// What to do when swtpm is missing.
pub const MISSING: &str = "\
vtpm's tests run swtpm, which was not found (no `swtpm` on PATH, or VTPM_SWTPM names no file).
Install it and run the tests again:
    ./scripts/test.sh                             # installs swtpm when missing, then runs every test
or
    sudo apt-get install swtpm swtpm-tools        # Debian/Ubuntu (dnf install swtpm swtpm-tools on Fedora)
or set VTPM_SWTPM to the path of a swtpm binary.";

/// The swtpm binary the tests will run: `vtpm_swtpm` (the value of
/// VTPM_SWTPM) when it names a file, else `swtpm` in one of `path`'s
/// directories.
pub fn find_swtpm(vtpm_swtpm: Option<&OsStr>, path: Option<&OsStr>) -> Option<PathBuf> {
    if let Some(binary) = vtpm_swtpm.filter(|v| !v.is_empty()) {
        let binary = Path::new(binary);
        if binary.components().count() > 1 {
            return binary.is_file().then(|| binary.to_path_buf());
        }
        return search(binary.as_os_str(), path);
    }
    search(OsStr::new("swtpm"), path)
}

fn search(name: &OsStr, path: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
