//! The guest's initramfs: static busybox, links for the applets `init.sh`
//! uses, and `init.sh` as `/init`; packed by cpio (newc) and gzip.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::host::Host;

/// PID 1 of the guest.
const INIT: &str = include_str!("init.sh");

/// Every command `init.sh` runs, as a link to busybox.
const APPLETS: &[&str] = &[
    "sh", "mount", "cat", "echo", "dmesg", "basename", "readlink", "od", "grep", "poweroff",
];

/// Builds `initramfs.cpio.gz` in `dir` and returns its path.
pub fn build(host: &Host, dir: &Path) -> PathBuf {
    let root = dir.join("initramfs");
    let mut entries: Vec<String> = vec![".".into()];
    for sub in ["bin", "dev", "proc", "sys"] {
        mkdir(&root.join(sub));
        entries.push(sub.into());
    }
    copy(&host.busybox, &root.join("bin/busybox"), 0o755);
    entries.push("bin/busybox".into());
    for applet in APPLETS {
        let link = root.join("bin").join(applet);
        symlink("busybox", &link).unwrap_or_else(|e| panic!("cannot link {}: {e}", link.display()));
        entries.push(format!("bin/{applet}"));
    }
    write(&root.join("init"), INIT.as_bytes(), 0o755);
    entries.push("init".into());

    let archive = dir.join("initramfs.cpio");
    let out = fs::File::create(&archive)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", archive.display()));
    // Owned by root in the guest whoever runs the test.
    let mut cpio = Command::new(&host.cpio)
        .args(["--create", "--format=newc", "--owner=0:0", "--quiet"])
        .current_dir(&root)
        .stdin(Stdio::piped())
        .stdout(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", host.cpio.display()));
    let list = entries.join("\n") + "\n";
    cpio.stdin
        .take()
        .expect("cpio stdin is piped")
        .write_all(list.as_bytes())
        .expect("write the file list to cpio");
    let status = cpio.wait().expect("wait for cpio");
    assert!(status.success(), "cpio failed: {status}");

    let status = Command::new(&host.gzip)
        .args(["-n", "-f"])
        .arg(&archive)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", host.gzip.display()));
    assert!(status.success(), "gzip failed: {status}");
    dir.join("initramfs.cpio.gz")
}

fn mkdir(path: &Path) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
}

fn copy(from: &Path, to: &Path, mode: u32) {
    fs::copy(from, to)
        .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", from.display(), to.display()));
    chmod(to, mode);
}

fn write(path: &Path, bytes: &[u8], mode: u32) {
    fs::write(path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    chmod(path, mode);
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}
