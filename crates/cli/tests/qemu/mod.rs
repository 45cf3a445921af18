//! Boots Debian's own kernel under QEMU (TCG) with a TPM device whose
//! backend is a TPM server (swtpm, or `vtpm serve`), and reads back what the
//! guest kernel found.

pub mod eventlog;
pub mod host;
pub mod initramfs;
pub mod process;
pub mod serial;
pub mod server;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use host::Host;
use process::Reaper;
use server::RunningServer;

/// Environment variable overriding [`DEFAULT_BOOT_LIMIT`], in seconds.
pub const BOOT_LIMIT_VAR: &str = "VTPM_QEMU_BOOT_LIMIT_SECS";

/// A safety net, not a measurement: a boot takes about 30 s under TCG on an
/// idle machine and several times that on a busy one. Past this the guest is
/// taken to hang and the test fails with its serial log.
pub const DEFAULT_BOOT_LIMIT: Duration = Duration::from_secs(300);

/// The guest's kernel command line: serial console, and a kernel panic
/// (init failing) ends QEMU at once through `-no-reboot`.
const KERNEL_ARGS: &str = "console=ttyS0 panic=-1 quiet";

/// QEMU's TPM front ends on x86.
#[derive(Clone, Copy, Debug)]
pub enum Device {
    Crb,
    Tis,
}

impl Device {
    fn qemu_name(self) -> &'static str {
        match self {
            Device::Crb => "tpm-crb",
            Device::Tis => "tpm-tis",
        }
    }

    /// The Linux driver that must bind to it.
    pub fn linux_driver(self) -> &'static str {
        match self {
            Device::Crb => "tpm_crb",
            Device::Tis => "tpm_tis",
        }
    }
}

/// One finished boot.
#[derive(Debug)]
pub struct Boot {
    /// Everything QEMU wrote to the serial console.
    pub serial: String,
    /// From QEMU's start to its exit.
    pub took: Duration,
}

/// The boot limit, from [`BOOT_LIMIT_VAR`] when set.
pub fn boot_limit() -> Duration {
    match std::env::var(BOOT_LIMIT_VAR) {
        Ok(secs) => Duration::from_secs(
            secs.parse()
                .unwrap_or_else(|e| panic!("{BOOT_LIMIT_VAR}={secs:?}: {e}")),
        ),
        Err(_) => DEFAULT_BOOT_LIMIT,
    }
}

/// Boots the kernel with `initrd` and `device` backed by `server` until the
/// guest powers off. Past `limit` QEMU is killed and the test fails with the
/// serial log so far.
pub fn boot(
    host: &Host,
    initrd: &Path,
    device: Device,
    server: &RunningServer,
    dir: &Path,
    limit: Duration,
) -> Boot {
    let qemu_log = dir.join("qemu.stderr");
    let stderr = fs::File::create(&qemu_log).expect("create QEMU's stderr log");
    let mut command = Command::new(&host.qemu);
    command
        .args(["-accel", "tcg", "-m", "512", "-smp", "1"])
        // Serial console on stdout, no monitor, no display, no NIC (its
        // option ROM would only slow the firmware down).
        .args([
            "-nographic",
            "-monitor",
            "none",
            "-nic",
            "none",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(&host.kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", KERNEL_ARGS])
        .arg("-chardev")
        .arg(format!("socket,id=chrtpm,path={}", server.ctrl.display()))
        .args(["-tpmdev", "emulator,id=tpm0,chardev=chrtpm"])
        .args(["-device", &format!("{},tpmdev=tpm0", device.qemu_name())])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    let started = Instant::now();
    let mut qemu = Reaper::spawn("qemu-system-x86_64", &mut command);

    let serial = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = qemu.take_stdout().expect("QEMU's stdout is piped");
    let reader = {
        let serial = Arc::clone(&serial);
        thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            // Ends at EOF, when QEMU exits or is killed.
            loop {
                match stdout.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => serial
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        })
    };
    let text = |serial: &Arc<Mutex<Vec<u8>>>| {
        String::from_utf8_lossy(&serial.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    };

    let status = loop {
        if let Some(status) = qemu.exited() {
            break status;
        }
        if started.elapsed() > limit {
            let stopped = qemu.stop();
            let _ = reader.join();
            panic!(
                "the {} guest did not power off within {limit:?} (set {BOOT_LIMIT_VAR} to \
                 wait longer); QEMU killed ({stopped:?}).\nserial:\n{}\nQEMU stderr:\n{}\n{} log:\n{}",
                device.qemu_name(),
                text(&serial),
                read(&qemu_log),
                server.name,
                server.log()
            );
        }
        thread::sleep(Duration::from_millis(100));
    };
    let took = started.elapsed();
    reader.join().expect("the serial reader ends at EOF");
    let serial = text(&serial);
    assert!(
        status.success(),
        "QEMU exited with {status}\nserial:\n{serial}\nQEMU stderr:\n{}\n{} log:\n{}",
        read(&qemu_log),
        server.name,
        server.log()
    );
    Boot { serial, took }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| format!("(no log at {}: {e})", path.display()))
}
