//! `vtpm` against a swtpm the test starts itself, as a user's swtpm would
//! run: attaching leaves it running, a locked state directory and a
//! missing `--swtpm-data` are named, and a swtpm that stops answering ends
//! the run with its cause after `--timeout`.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{assert_ok, vtpm};
use serde_json::Value;

/// A swtpm with a control socket and a Unix data server, in its own
/// directory; killed (after SIGCONT) when dropped.
struct Swtpm {
    child: Child,
    dir: PathBuf,
    state: PathBuf,
    ctrl: PathBuf,
    data: PathBuf,
}

impl Swtpm {
    fn start(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("vtpm-attach-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = dir.join("state");
        std::fs::create_dir_all(&state).unwrap();
        let ctrl = dir.join("ctrl.sock");
        let data = dir.join("data.sock");
        let child = Command::new(std::env::var_os("VTPM_SWTPM").unwrap_or_else(|| "swtpm".into()))
            .arg("socket")
            .arg("--tpm2")
            .arg("--tpmstate")
            .arg(format!("dir={}", state.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", ctrl.display()))
            .arg("--server")
            .arg(format!("type=unixio,path={}", data.display()))
            .arg("--log")
            .arg(format!("file={}", dir.join("log").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start swtpm (apt-get install swtpm swtpm-tools, or ./scripts/test.sh)");
        let mut swtpm = Self {
            child,
            dir,
            state,
            ctrl,
            data,
        };
        // Both sockets bound. No probe connection to the data socket: a
        // data client that came and went changes how swtpm answers
        // SET_DATAFD. vtpm retries its own connection until it is accepted.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(swtpm.ctrl.exists() && swtpm.data.exists()) {
            assert!(swtpm.running(), "swtpm exited during start");
            assert!(Instant::now() < deadline, "swtpm did not start listening");
            thread::sleep(Duration::from_millis(10));
        }
        swtpm
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    fn ctrl(&self) -> String {
        self.ctrl.display().to_string()
    }

    fn data(&self) -> String {
        self.data.display().to_string()
    }

    /// The options that attach vtpm to this swtpm.
    fn attach(&self, command: &str) -> Vec<String> {
        [command, "--backend", "swtpm", "--swtpm-ctrl"]
            .iter()
            .map(|s| s.to_string())
            .chain([self.ctrl(), "--swtpm-data".into(), self.data()])
            .collect()
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        if self.running() {
            self.signal("CONT");
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn attaching_leaves_the_users_swtpm_running_unless_shutdown_is_asked() {
    let mut swtpm = Swtpm::start("leave");
    assert_ok(&vtpm(&swtpm.attach("probe")));
    assert!(swtpm.running(), "probe ended the attached swtpm");
    // Still usable: the next run attaches and finds it answering.
    assert_ok(&vtpm(&swtpm.attach("exercise")));
    assert!(swtpm.running(), "exercise ended the attached swtpm");
    let mut shutdown = swtpm.attach("probe");
    shutdown.push("--shutdown".into());
    assert_ok(&vtpm(&shutdown));
    let status = swtpm.child.wait().unwrap();
    assert!(status.success(), "swtpm after SHUTDOWN: {status}");
}

#[test]
fn a_swtpm_with_its_own_data_server_gets_a_hint_to_pass_swtpm_data() {
    let mut swtpm = Swtpm::start("hint");
    let out = vtpm(&["probe", "--backend", "swtpm", "--swtpm-ctrl", &swtpm.ctrl()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("SET_DATAFD failed") && err.contains("pass its data socket with --swtpm-data"),
        "{err}"
    );
    assert!(swtpm.running());
}

#[test]
fn a_state_dir_held_by_another_swtpm_names_the_lock() {
    let swtpm = Swtpm::start("locked");
    // The running swtpm takes the lock when its TPM is initialised.
    assert_ok(&vtpm(&swtpm.attach("probe")));
    let out = vtpm(&[
        "probe",
        "--backend",
        "swtpm",
        "--swtpm-state-dir",
        swtpm.state.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("in use by another swtpm")
            && err.contains("Could not lock access to lockfile"),
        "{err}"
    );
}

/// Forwards the data channel from `listener` to swtpm's data socket and
/// SIGSTOPs swtpm just before handing it command number `stop_before`
/// (1-based): from then on swtpm does not answer.
fn stopping_proxy(listener: UnixListener, swtpm_data: &Path, pid: u32, stop_before: usize) {
    let swtpm_data = swtpm_data.to_path_buf();
    thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        let mut server = UnixStream::connect(&swtpm_data).unwrap();
        let mut client_back = client.try_clone().unwrap();
        let mut server_back = server.try_clone().unwrap();
        thread::spawn(move || {
            let _ = std::io::copy(&mut server_back, &mut client_back);
        });
        for n in 1.. {
            let mut header = [0u8; 10];
            if client.read_exact(&mut header).is_err() {
                return;
            }
            let size = u32::from_be_bytes(header[2..6].try_into().unwrap()) as usize;
            let mut body = vec![0u8; size.saturating_sub(10)];
            if client.read_exact(&mut body).is_err() {
                return;
            }
            if n == stop_before {
                let status = Command::new("kill")
                    .args(["-STOP", &pid.to_string()])
                    .status()
                    .unwrap();
                assert!(status.success());
            }
            // One write per command: swtpm takes each read as one command.
            let mut command = header.to_vec();
            command.extend_from_slice(&body);
            if server.write_all(&command).is_err() {
                return;
            }
        }
    });
}

#[test]
fn a_swtpm_that_stops_answering_fails_its_step_with_the_cause_and_ends_the_run() {
    let swtpm = Swtpm::start("hung");
    let proxy_path = swtpm.dir.join("proxy.sock");
    let listener = UnixListener::bind(&proxy_path).unwrap();
    // Startup, GetRandom, PCR_Read go through; PCR_Extend finds swtpm stopped.
    stopping_proxy(listener, &swtpm.data, swtpm.child.id(), 4);
    let out = vtpm(&[
        "exercise",
        "--backend",
        "swtpm",
        "--swtpm-ctrl",
        &swtpm.ctrl(),
        "--swtpm-data",
        proxy_path.to_str().unwrap(),
        "--timeout",
        "2s",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (summary, steps) = lines.split_last().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["startup", "get_random", "pcr_read_before", "pcr_extend"],
        "the run goes on after the failure: {steps:?}"
    );
    assert!(steps[..3].iter().all(|s| s["ok"] == true), "{steps:?}");
    let failed = &steps[3];
    assert_eq!(failed["ok"], false);
    let detail = failed["detail"].as_str().unwrap();
    assert!(
        detail.contains("the backend failed on PCR_Extend (0x182)")
            && detail.contains("swtpm did not answer command 0x182 within 2s"),
        "{detail}"
    );
    let summary = &summary["summary"];
    assert_eq!(summary["failed"], 1);
    assert!(
        summary["stopped"]
            .as_str()
            .is_some_and(|s| s.starts_with("pcr_extend: the backend failed")),
        "{summary}"
    );
}
