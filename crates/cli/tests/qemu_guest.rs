//! QEMU with a real Linux guest: Debian's own kernel boots under QEMU (TCG)
//! with a `tpm-crb` or `tpm-tis` device whose `-tpmdev emulator` backend is
//! a TPM server, from a busybox initramfs the test builds. The guest kernel
//! must find the TPM (`/dev/tpm0`, `/dev/tpmrm0`, the expected driver,
//! `tpm_version_major` = 2) and read PCR 0 through sysfs, and that value
//! must be what replaying SeaBIOS's event log (read by the same guest) gives.
//!
//! swtpm is the reference; the same checks run against `vtpm serve`.
//! Needs qemu-system-x86, linux-image-amd64, busybox-static, cpio and swtpm
//! (the test names whichever is missing). Boots take half a minute or more
//! each, so they run one at a time.

mod qemu;

use std::sync::{Mutex, PoisonError};

use qemu::eventlog::replay_sha256;
use qemu::host::Host;
use qemu::process::Scratch;
use qemu::serial::{decode_hex, encode_hex, GuestReport};
use qemu::server::TpmServer;
use qemu::{boot, boot_limit, initramfs, Boot, Device};

/// One boot at a time: two TCG guests on a small machine would each take
/// twice as long and only make a timeout likelier.
static ONE_BOOT_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Boots a guest with `device` in front of `server` and checks what its
/// kernel saw.
fn guest_finds_the_tpm_and_reads_the_pcr0_seabios_measured(server: TpmServer, device: Device) {
    let _turn = ONE_BOOT_AT_A_TIME
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let host = Host::find();
    let scratch = Scratch::new();
    let initrd = initramfs::build(&host, scratch.path());
    let running = server.start(scratch.path());
    let boot = boot(
        &host,
        &initrd,
        device,
        &running,
        scratch.path(),
        boot_limit(),
    );
    eprintln!(
        "{} behind {device:?}: the guest booted and powered off in {:.1} s",
        server.name,
        boot.took.as_secs_f64()
    );
    let context = |what: &str| -> String {
        format!(
            "{what} ({} behind {device:?})\nserial:\n{}\n{} log:\n{}",
            server.name,
            boot.serial,
            server.name,
            running.log()
        )
    };
    let report = GuestReport::parse(&boot.serial).unwrap_or_else(|e| panic!("{}", context(&e)));
    assert!(
        report.done,
        "{}",
        context("the guest's init did not finish")
    );
    print_tpm_lines(&boot, &report);

    assert_eq!(
        report.dev_tpm0.as_deref(),
        Some("present"),
        "{}",
        context("/dev/tpm0")
    );
    assert_eq!(
        report.dev_tpmrm0.as_deref(),
        Some("present"),
        "{}",
        context("/dev/tpmrm0 (TPM 2.0 only)")
    );
    assert_eq!(
        report.driver.as_deref(),
        Some(device.linux_driver()),
        "{}",
        context("driver bound to tpm0")
    );
    assert_eq!(
        report.tpm_version_major.as_deref(),
        Some("2"),
        "{}",
        context("tpm_version_major")
    );

    let pcr0_text = report.pcr_sha256_0.as_deref().unwrap_or_default();
    let pcr0 = decode_hex(pcr0_text)
        .filter(|bytes| bytes.len() == 32)
        .unwrap_or_else(|| panic!("{}", context("PCR 0 is not 64 hex digits")));
    assert!(
        pcr0.iter().any(|&b| b != 0),
        "{}",
        context("PCR 0 is all zero: SeaBIOS measured nothing")
    );

    let replay = replay_sha256(&report.event_log, 0).unwrap_or_else(|e| panic!("{}", context(&e)));
    assert!(
        replay.extends > 0,
        "{}",
        context("SeaBIOS's event log has no PCR 0 measurement")
    );
    assert_eq!(
        encode_hex(&replay.pcr),
        encode_hex(&pcr0),
        "{}",
        context(&format!(
            "PCR 0 read by the guest differs from the replay of {} logged measurements",
            replay.extends
        ))
    );
}

/// The lines worth reading in a passing run (`--nocapture`).
fn print_tpm_lines(boot: &Boot, report: &GuestReport) {
    for line in boot.serial.lines().filter(|l| {
        l.contains("vtpm-guest: ") && !l.contains("vtpm-guest: log ") || l.contains("reboot:")
    }) {
        eprintln!("  {}", line.trim_end());
    }
    eprintln!("  ({} bytes of event log)", report.event_log.len());
}

#[test]
fn a_linux_guest_finds_swtpm_behind_tpm_crb_and_reads_the_pcr0_seabios_measured() {
    guest_finds_the_tpm_and_reads_the_pcr0_seabios_measured(TpmServer::swtpm(), Device::Crb);
}

#[test]
fn a_linux_guest_finds_swtpm_behind_tpm_tis_and_reads_the_pcr0_seabios_measured() {
    guest_finds_the_tpm_and_reads_the_pcr0_seabios_measured(TpmServer::swtpm(), Device::Tis);
}

#[test]
fn a_linux_guest_finds_vtpm_serve_behind_tpm_crb_and_reads_the_pcr0_seabios_measured() {
    guest_finds_the_tpm_and_reads_the_pcr0_seabios_measured(TpmServer::vtpm_serve(), Device::Crb);
}

#[test]
fn a_linux_guest_finds_vtpm_serve_behind_tpm_tis_and_reads_the_pcr0_seabios_measured() {
    guest_finds_the_tpm_and_reads_the_pcr0_seabios_measured(TpmServer::vtpm_serve(), Device::Tis);
}
