//! The TPM server QEMU's `-tpmdev emulator` talks to: any program that
//! serves the swtpm control protocol on a unix socket.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::host::in_path;
use super::process::Reaper;

/// How long a server may take to start listening. Generous: the machine may
/// be busy compiling; a healthy server is listening within milliseconds.
const LISTEN_LIMIT: Duration = Duration::from_secs(60);

/// A way to start a TPM server on a given control socket.
#[derive(Clone, Copy, Debug)]
pub struct TpmServer {
    /// Named in messages.
    pub name: &'static str,
    /// The program, found when the server starts (so a missing one is
    /// reported as such).
    program: fn() -> Result<PathBuf, String>,
    /// Arguments given the control socket path and a fresh state directory.
    args: fn(ctrl: &Path, state: &Path) -> Vec<String>,
}

impl TpmServer {
    /// Debian's swtpm, the reference. No `--flags startup-*`: QEMU sends
    /// INIT and SeaBIOS sends TPM2_Startup itself; no `--server`: QEMU
    /// hands over the data channel with SET_DATAFD.
    pub fn swtpm() -> TpmServer {
        TpmServer {
            name: "swtpm",
            program: || {
                in_path("swtpm").ok_or_else(|| {
                    "swtpm (Debian package swtpm); install with: apt-get install swtpm".into()
                })
            },
            args: |ctrl, state| {
                vec![
                    "socket".into(),
                    "--tpm2".into(),
                    "--tpmstate".into(),
                    format!("dir={}", state.display()),
                    "--ctrl".into(),
                    format!("type=unixio,path={}", ctrl.display()),
                ]
            },
        }
    }

    /// This crate's `vtpm serve`, the swtpm-protocol server over vtpm-sim.
    pub fn vtpm_serve() -> TpmServer {
        TpmServer {
            name: "vtpm serve",
            program: || Ok(PathBuf::from(env!("CARGO_BIN_EXE_vtpm"))),
            args: |ctrl, _state| {
                vec![
                    "serve".into(),
                    "--ctrl".into(),
                    format!("unix:{}", ctrl.display()),
                ]
            },
        }
    }

    /// Starts the server in `dir` and returns once its control socket
    /// listens. Its output goes to a log file kept for failure messages.
    pub fn start(&self, dir: &Path) -> RunningServer {
        let program = (self.program)().unwrap_or_else(|why| panic!("missing: {why}"));
        let ctrl = dir.join("ctrl.sock");
        let state = dir.join("state");
        fs::create_dir(&state).unwrap_or_else(|e| panic!("cannot create {}: {e}", state.display()));
        let log = dir.join("server.log");
        let out = fs::File::create(&log).expect("create the server log");
        let err = out.try_clone().expect("share the server log");
        let mut command = Command::new(&program);
        command
            .args((self.args)(&ctrl, &state))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let mut process = Reaper::spawn(self.name, &mut command);
        let since = Instant::now();
        // Waiting for the socket to be in the listening state, rather than
        // connecting to try it, leaves the server's one control connection
        // to QEMU.
        while !listening(&ctrl) {
            if let Some(status) = process.exited() {
                panic!(
                    "{} exited ({status}) before listening on {}:\n{}",
                    self.name,
                    ctrl.display(),
                    read_log(&log)
                );
            }
            assert!(
                since.elapsed() < LISTEN_LIMIT,
                "{} is not listening on {} after {LISTEN_LIMIT:?}:\n{}",
                self.name,
                ctrl.display(),
                read_log(&log)
            );
            thread::sleep(Duration::from_millis(20));
        }
        RunningServer {
            name: self.name,
            ctrl,
            log,
            _process: process,
        }
    }
}

/// A started server; stopped (killed and reaped) on drop.
#[derive(Debug)]
pub struct RunningServer {
    pub name: &'static str,
    pub ctrl: PathBuf,
    log: PathBuf,
    _process: Reaper,
}

impl RunningServer {
    /// What the server has printed so far.
    pub fn log(&self) -> String {
        read_log(&self.log)
    }
}

fn read_log(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| format!("(no log at {}: {e})", path.display()))
}

/// Whether a unix socket bound to `path` is listening, from the kernel's
/// table in /proc/net/unix (flag __SO_ACCEPTCON, 0x10000).
fn listening(path: &Path) -> bool {
    const ACCEPTING: u32 = 0x1_0000;
    let Ok(table) = fs::read_to_string("/proc/net/unix") else {
        return false;
    };
    let wanted = path.to_string_lossy();
    table.lines().skip(1).any(|line| {
        // Num RefCount Protocol Flags Type St Inode Path
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(7).is_some_and(|p| *p == wanted)
            && fields
                .get(3)
                .and_then(|f| u32::from_str_radix(f, 16).ok())
                .is_some_and(|flags| flags & ACCEPTING != 0)
    })
}
