//! The host programs and files the guest test needs, found up front so a
//! missing one is named with the Debian package that provides it.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

/// Debian's packages for everything below, for the install hint.
const INSTALL_HINT: &str =
    "apt-get install qemu-system-x86 linux-image-amd64 busybox-static cpio gzip swtpm";

/// Environment variable naming a kernel image other than the newest
/// `/boot/vmlinuz-*`.
pub const KERNEL_VAR: &str = "VTPM_QEMU_KERNEL";

/// What booting a guest needs on the host.
#[derive(Debug)]
pub struct Host {
    pub qemu: PathBuf,
    pub kernel: PathBuf,
    pub busybox: PathBuf,
    pub cpio: PathBuf,
    pub gzip: PathBuf,
}

impl Host {
    /// Finds every tool, or panics listing all that are missing at once.
    pub fn find() -> Host {
        let mut missing = Vec::new();
        let mut need = |program: &str, package: &str| {
            let found = in_path(program);
            if found.is_none() {
                missing.push(format!("{program} (Debian package {package})"));
            }
            found.unwrap_or_default()
        };
        let qemu = need("qemu-system-x86_64", "qemu-system-x86");
        let cpio = need("cpio", "cpio");
        let gzip = need("gzip", "gzip");
        let busybox = static_busybox().unwrap_or_else(|why| {
            missing.push(why);
            PathBuf::new()
        });
        let kernel = kernel().unwrap_or_else(|why| {
            missing.push(why);
            PathBuf::new()
        });
        assert!(
            missing.is_empty(),
            "the QEMU guest test cannot run; missing:\n  {}\ninstall with: {INSTALL_HINT}",
            missing.join("\n  ")
        );
        Host {
            qemu,
            kernel,
            busybox,
            cpio,
            gzip,
        }
    }
}

/// The first `program` on `PATH`, like the shell would run it.
pub fn in_path(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// busybox as PID 1 of a bare initramfs must not need a dynamic loader.
fn static_busybox() -> Result<PathBuf, String> {
    let path = in_path("busybox").ok_or("busybox (Debian package busybox-static)")?;
    let elf = fs::read(&path).map_err(|e| format!("{} unreadable: {e}", path.display()))?;
    match has_interpreter(&elf) {
        Some(false) => Ok(path),
        Some(true) => Err(format!(
            "a static busybox: {} is dynamically linked (Debian package busybox-static)",
            path.display()
        )),
        None => Err(format!(
            "a static busybox: {} is not a 64-bit ELF file",
            path.display()
        )),
    }
}

/// Whether a little-endian ELF64 file has a PT_INTERP segment; `None` when
/// the bytes are not such a file.
fn has_interpreter(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let phoff = usize::try_from(u64::from_le_bytes(elf.get(0x20..0x28)?.try_into().ok()?)).ok()?;
    let entry_size = usize::from(u16_at(0x36)?);
    let entries = usize::from(u16_at(0x38)?);
    for i in 0..entries {
        let at = phoff.checked_add(i.checked_mul(entry_size)?)?;
        let p_type = u32::from_le_bytes(elf.get(at..at.checked_add(4)?)?.try_into().ok()?);
        if p_type == PT_INTERP {
            return Some(true);
        }
    }
    Some(false)
}

/// `$VTPM_QEMU_KERNEL`, or the newest `/boot/vmlinuz-*`; readable, and with
/// the TPM drivers built in when its `/boot/config-*` is there to say so.
fn kernel() -> Result<PathBuf, String> {
    let path = match env::var_os(KERNEL_VAR) {
        Some(path) => PathBuf::from(path),
        None => newest_boot_kernel().ok_or(
            "a kernel at /boot/vmlinuz-* (Debian package linux-image-amd64), \
             or one named by VTPM_QEMU_KERNEL",
        )?,
    };
    fs::File::open(&path).map_err(|e| format!("a readable kernel: {}: {e}", path.display()))?;
    check_tpm_drivers_built_in(&path)?;
    Ok(path)
}

fn newest_boot_kernel() -> Option<PathBuf> {
    let mut kernels: Vec<PathBuf> = fs::read_dir("/boot")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .collect();
    kernels.sort_by(|a, b| compare_versions(a, b));
    kernels.pop()
}

/// Orders `vmlinuz-6.1.0-9` before `vmlinuz-6.1.0-10`: digit runs compare
/// as numbers.
fn compare_versions(a: &Path, b: &Path) -> std::cmp::Ordering {
    /// Digit runs become numbers, everything between them stays text.
    fn key(p: &Path) -> Vec<Result<u64, String>> {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let mut parts: Vec<Result<u64, String>> = Vec::new();
        let mut run = String::new();
        for c in name.chars() {
            if !run.is_empty()
                && run.starts_with(|r: char| r.is_ascii_digit()) != c.is_ascii_digit()
            {
                parts.push(run.parse().map_err(|_| run.clone()));
                run.clear();
            }
            run.push(c);
        }
        if !run.is_empty() {
            parts.push(run.parse().map_err(|_| run.clone()));
        }
        parts
    }
    key(a).cmp(&key(b))
}

/// The guest finds the TPM only if tpm_crb and tpm_tis are built in: the
/// test's initramfs carries no modules.
fn check_tpm_drivers_built_in(kernel: &Path) -> Result<(), String> {
    let Some(version) = kernel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
    else {
        return Ok(());
    };
    let config_path = kernel.with_file_name(format!("config-{version}"));
    let Ok(config) = fs::read_to_string(&config_path) else {
        return Ok(());
    };
    let absent: Vec<&str> = ["CONFIG_TCG_TPM", "CONFIG_TCG_CRB", "CONFIG_TCG_TIS"]
        .into_iter()
        .filter(|option| !config.lines().any(|l| l == format!("{option}=y")))
        .collect();
    if absent.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "a kernel with the TPM drivers built in: {} does not set {} =y",
            config_path.display(),
            absent.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF64 header whose program headers (56 bytes each, at 64) have
    /// the given types.
    fn elf_with_segments(types: &[u32]) -> Vec<u8> {
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3A].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for t in types {
            let mut header = vec![0u8; 56];
            header[..4].copy_from_slice(&t.to_le_bytes());
            elf.extend_from_slice(&header);
        }
        elf
    }

    #[test]
    fn a_pt_interp_segment_marks_a_dynamically_linked_program() {
        assert_eq!(has_interpreter(&elf_with_segments(&[6, 3, 1])), Some(true));
        assert_eq!(has_interpreter(&elf_with_segments(&[1, 1, 4])), Some(false));
        assert_eq!(has_interpreter(b"#!/bin/sh\n"), None);
        // Program headers promised past the end of the file.
        let mut short = elf_with_segments(&[1]);
        short[0x38] = 9;
        assert_eq!(has_interpreter(&short), None);
    }

    #[test]
    fn kernel_versions_compare_their_numbers_as_numbers() {
        let order = |a: &str, b: &str| compare_versions(Path::new(a), Path::new(b));
        assert!(order(
            "/boot/vmlinuz-6.1.0-9-amd64",
            "/boot/vmlinuz-6.1.0-10-amd64"
        )
        .is_lt());
        assert!(order("/boot/vmlinuz-6.10.0-1", "/boot/vmlinuz-6.9.0-1").is_gt());
        assert!(order("/boot/vmlinuz-6.1.0-9", "/boot/vmlinuz-6.1.0-9").is_eq());
    }
}
