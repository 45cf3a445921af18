//! Running swtpm as a child process.
//!
//! [`SwtpmProcess::spawn`] starts `swtpm socket --tpm2` with its control
//! socket, log, pid file (and, when asked, its data socket) in a fresh
//! private directory, and returns once the control socket accepts a
//! connection. Dropping it stops swtpm cleanly (SHUTDOWN), waits a bounded
//! time, then kills it; the child is always reaped.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::Duration;

use super::deadline::Deadline;

use super::ctrl::ControlChannel;
use super::{DataChannel, SwtpmConfig};
use crate::BackendError;

/// How to install swtpm, for [`BackendError::NotInstalled`] messages.
pub const INSTALL_HINT: &str = "install it with `apt-get install swtpm swtpm-tools` \
     (Debian/Ubuntu) or `dnf install swtpm swtpm-tools` (Fedora), or set VTPM_SWTPM \
     to the path of the swtpm binary";

/// Interval between checks while waiting for swtpm to start or exit.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How much of the end of the log files goes into an error message.
const LOG_TAIL_BYTES: u64 = 2048;
/// Bound on the reply to the SHUTDOWN sent while stopping the process.
const SHUTDOWN_REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// A swtpm child process and the private directory that holds its sockets,
/// log and (unless a state directory was given) its state.
#[derive(Debug)]
pub struct SwtpmProcess {
    child: Child,
    exit_status: Option<ExitStatus>,
    binary: PathBuf,
    ctrl_path: PathBuf,
    log_path: PathBuf,
    stderr_path: PathBuf,
    pid_path: PathBuf,
    state_dir: PathBuf,
    data: DataChannel,
    stop_timeout: Duration,
    // Last: removed after everything that lives in it is closed.
    run_dir: tempfile::TempDir,
}

impl SwtpmProcess {
    /// Starts swtpm as `config` says and waits (at most
    /// `config.timeouts.start`) until its control socket accepts. The TPM
    /// is not initialised: that is the job of the control channel (or of
    /// `config.not_need_init`).
    pub fn spawn(config: &SwtpmConfig) -> Result<Self, BackendError> {
        let run_dir = tempfile::Builder::new()
            .prefix("vtpm-swtpm-")
            .tempdir()
            .map_err(|e| BackendError::io("creating a directory for swtpm", e))?;
        let state_dir = match &config.state_dir {
            Some(dir) => dir.clone(),
            None => run_dir.path().join("state"),
        };
        std::fs::create_dir_all(&state_dir).map_err(|e| {
            BackendError::io(
                format!("creating the swtpm state directory {}", state_dir.display()),
                e,
            )
        })?;
        let ctrl_path = run_dir.path().join("ctrl.sock");
        let log_path = run_dir.path().join("swtpm.log");
        let stderr_path = run_dir.path().join("stderr.log");
        let pid_path = run_dir.path().join("swtpm.pid");
        let data = match &config.data {
            DataChannel::Unix(None) => DataChannel::Unix(Some(run_dir.path().join("data.sock"))),
            other => other.clone(),
        };

        let mut command = Command::new(&config.binary);
        command
            .arg("socket")
            .arg("--tpm2")
            .arg("--tpmstate")
            .arg(format!("dir={}", option_path(&state_dir)?))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", option_path(&ctrl_path)?))
            .arg("--log")
            .arg(format!(
                "file={},level={}",
                option_path(&log_path)?,
                config.log_level
            ))
            .arg("--pid")
            .arg(format!("file={}", option_path(&pid_path)?));
        match &data {
            DataChannel::SocketPair => {}
            DataChannel::Unix(Some(path)) => {
                command
                    .arg("--server")
                    .arg(format!("type=unixio,path={}", option_path(path)?));
            }
            DataChannel::Unix(None) => {}
            DataChannel::Tcp(addr) => {
                command.arg("--server").arg(format!(
                    "type=tcp,port={},bindaddr={}",
                    addr.port(),
                    addr.ip()
                ));
            }
        }
        if config.not_need_init {
            command.arg("--flags").arg("not-need-init");
        }
        // swtpm reports bad options on stderr before its log exists.
        let stderr = File::create(&stderr_path)
            .map_err(|e| BackendError::io("creating swtpm's stderr file", e))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr));
        tracing::debug!(?command, "starting swtpm");
        let child = command
            .spawn()
            .map_err(|e| spawn_error(&config.binary, e))?;

        let mut process = Self {
            child,
            exit_status: None,
            binary: config.binary.clone(),
            ctrl_path,
            log_path,
            stderr_path,
            pid_path,
            state_dir,
            data,
            stop_timeout: config.timeouts.stop,
            run_dir,
        };
        process.wait_for_control(config.timeouts.start)?;
        Ok(process)
    }

    /// Polls until the control socket accepts, the child exits, or
    /// `within` passes.
    fn wait_for_control(&mut self, within: Duration) -> Result<(), BackendError> {
        let deadline = Deadline::after(within);
        loop {
            if let Some(status) = self.try_wait()? {
                return Err(BackendError::Process(format!(
                    "swtpm exited during start ({status}){}",
                    self.log_tail_suffix()
                )));
            }
            // The probe connection closes at once: swtpm serves one
            // control client at a time, and the real client comes next.
            if UnixStream::connect(&self.ctrl_path).is_ok() {
                return Ok(());
            }
            if deadline.passed() {
                let tail = self.log_tail_suffix();
                let _ = self.kill();
                return Err(BackendError::Timeout(format!(
                    "swtpm's control socket {} did not accept within {within:?}{tail}",
                    self.ctrl_path.display()
                )));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// A new connection to this swtpm's control socket. swtpm serves one
    /// control client at a time: a second connection is answered only once
    /// the first has closed.
    pub fn control(&self) -> Result<ControlChannel, BackendError> {
        ControlChannel::connect(&self.ctrl_path)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The binary that was started.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The control socket's path.
    pub fn ctrl_path(&self) -> &Path {
        &self.ctrl_path
    }

    /// The TPM state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// swtpm's log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The pid file swtpm writes.
    pub fn pid_path(&self) -> &Path {
        &self.pid_path
    }

    /// The private directory holding the sockets and logs.
    pub fn run_dir(&self) -> &Path {
        self.run_dir.path()
    }

    /// The data channel swtpm was started with; a Unix socket path chosen
    /// for it is filled in.
    pub fn data_channel(&self) -> &DataChannel {
        &self.data
    }

    /// The last lines of swtpm's log and stderr.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for path in [&self.stderr_path, &self.log_path] {
            let tail = file_tail(path, LOG_TAIL_BYTES);
            let tail = tail.trim();
            if !tail.is_empty() {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(tail);
            }
        }
        out
    }

    fn log_tail_suffix(&self) -> String {
        let tail = self.log_tail();
        if tail.is_empty() {
            String::new()
        } else {
            format!("; swtpm log ends with:\n{tail}")
        }
    }

    /// The exit status, once swtpm has exited (reaping it).
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, BackendError> {
        if self.exit_status.is_none() {
            self.exit_status = self
                .child
                .try_wait()
                .map_err(|e| BackendError::io("checking on swtpm", e))?;
        }
        Ok(self.exit_status)
    }

    /// Waits at most `within` for swtpm to exit.
    pub fn wait_exit(&mut self, within: Duration) -> Result<Option<ExitStatus>, BackendError> {
        let deadline = Deadline::after(within);
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if deadline.passed() {
                return Ok(None);
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Kills swtpm (SIGKILL) and reaps it.
    pub fn kill(&mut self) -> Result<ExitStatus, BackendError> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        // Fails only when the child has exited meanwhile; wait() tells.
        let _ = self.child.kill();
        let status = self
            .child
            .wait()
            .map_err(|e| BackendError::io("reaping swtpm", e))?;
        self.exit_status = Some(status);
        Ok(status)
    }

    /// Stops swtpm: SHUTDOWN on the control channel, a bounded wait, then
    /// SIGKILL. Returns the exit status.
    pub fn shutdown(&mut self) -> Result<ExitStatus, BackendError> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        // A new connection is served only when no other client holds the
        // control socket; the short bound keeps that case from stalling.
        let sent = self.control().and_then(|mut ctrl| {
            ctrl.set_reply_timeout(SHUTDOWN_REPLY_TIMEOUT)?;
            ctrl.shutdown()
        });
        if let Err(e) = sent {
            tracing::debug!(error = %e, "SHUTDOWN while stopping swtpm failed");
        }
        match self.wait_exit(self.stop_timeout)? {
            Some(status) => Ok(status),
            None => {
                tracing::warn!(
                    pid = self.pid(),
                    "swtpm did not exit after SHUTDOWN; killing it"
                );
                self.kill()
            }
        }
    }
}

impl Drop for SwtpmProcess {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(error = %e, "stopping swtpm failed");
            let _ = self.kill();
        }
    }
}

/// The version swtpm reports (`swtpm --version`), e.g. "0.7.1".
pub fn version(binary: impl AsRef<Path>) -> Result<String, BackendError> {
    let binary = binary.as_ref();
    let output = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| spawn_error(binary, e))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Err(BackendError::Process(format!(
            "{} --version printed nothing ({})",
            binary.display(),
            output.status
        )));
    }
    Ok(parse_version(line).unwrap_or(line).to_string())
}

/// "TPM emulator version 0.7.1, Copyright ..." → "0.7.1".
fn parse_version(line: &str) -> Option<&str> {
    let rest = &line[line.find("version ")? + "version ".len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        .unwrap_or(rest.len());
    Some(&rest[..end]).filter(|v| !v.is_empty())
}

/// A failed spawn: a missing binary gets an installation hint.
fn spawn_error(binary: &Path, e: io::Error) -> BackendError {
    if e.kind() == io::ErrorKind::NotFound {
        BackendError::NotInstalled(format!(
            "swtpm binary {} not found; {INSTALL_HINT}",
            binary.display()
        ))
    } else {
        BackendError::io(format!("starting {}", binary.display()), e)
    }
}

/// A path as swtpm's `key=value,key=value` options take it. A comma would
/// split the option, so such paths are refused.
fn option_path(path: &Path) -> Result<String, BackendError> {
    let text = path.to_str().ok_or_else(|| {
        BackendError::io(
            format!("path {} for swtpm", path.display()),
            io::Error::new(io::ErrorKind::InvalidInput, "not valid UTF-8"),
        )
    })?;
    if text.contains(',') {
        return Err(BackendError::io(
            format!("path {text} for swtpm"),
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "swtpm options cannot carry a path containing ','",
            ),
        ));
    }
    Ok(text.to_string())
}

/// The last `max` bytes of a file as text ("" when it cannot be read),
/// starting at a line boundary.
fn file_tail(path: &Path, max: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(max);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    if file.take(max).read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if start > 0 {
        // Drop the partial first line.
        match text.find('\n') {
            Some(i) => text[i + 1..].to_string(),
            None => text,
        }
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_line_parses() {
        assert_eq!(
            parse_version("TPM emulator version 0.7.1, Copyright (c) 2014-2021 IBM Corp."),
            Some("0.7.1")
        );
        assert_eq!(parse_version("something else"), None);
    }

    #[test]
    fn paths_with_commas_are_refused() {
        assert!(option_path(Path::new("/tmp/a,b")).is_err());
        assert_eq!(option_path(Path::new("/tmp/ab")).unwrap(), "/tmp/ab");
    }

    #[test]
    fn missing_binary_says_how_to_install() {
        let e = spawn_error(
            Path::new("/nonexistent/swtpm"),
            io::Error::from(io::ErrorKind::NotFound),
        );
        assert!(
            matches!(&e, BackendError::NotInstalled(m) if m.contains("apt-get install swtpm swtpm-tools"))
        );
    }
}
