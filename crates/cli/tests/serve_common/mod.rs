//! `vtpm serve` and a real swtpm as child processes, and tpm2-tools runs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `vtpm serve`, killed on drop.
pub struct Serve {
    pub child: Child,
    /// The line it printed at start.
    pub line: String,
}

impl Serve {
    pub fn start(args: &[&str]) -> Self {
        Self::try_start(args).unwrap_or_else(|e| panic!("vtpm serve {args:?}: {e}"))
    }

    /// Starts it; an error carries its stderr when it exits instead.
    pub fn try_start(args: &[&str]) -> Result<Self, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vtpm"))
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vtpm serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.is_empty() {
            let out = child.wait_with_output().unwrap();
            return Err(format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(Self { child, line })
    }

    /// The value of `key=` in the start line (`tcp:H:P` or `unix:PATH`).
    pub fn endpoint(&self, key: &str) -> String {
        self.line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in {:?}", self.line))
            .to_string()
    }

    pub fn port(&self, key: &str) -> u16 {
        self.endpoint(key)
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(mut self) -> Output {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        wait_with_deadline(&mut self.child, Duration::from_secs(30))
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

fn wait_with_deadline(child: &mut Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the process did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        e.read_to_string(&mut stderr).unwrap();
    }
    Output {
        status: child.wait().unwrap(),
        stdout: Vec::new(),
        stderr: stderr.into_bytes(),
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real swtpm on TCP ports `port` (data) and `port + 1` (control),
/// killed on drop.
pub struct RealSwtpm {
    pub child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RealSwtpm {
    pub fn start() -> Self {
        for _ in 0..20 {
            let port = free_port_pair();
            let dir = tempfile::tempdir().unwrap();
            let mut child = Command::new("swtpm")
                .args(["socket", "--tpm2", "--tpmstate"])
                .arg(format!("dir={}", dir.path().display()))
                .arg("--server")
                .arg(format!("type=tcp,port={port}"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={}", port + 1))
                .args(["--flags", "not-need-init,startup-clear"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("swtpm is installed");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port + 1)).is_ok() {
                    return Self {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("swtpm did not start on any port pair");
    }

    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }
}

impl Drop for RealSwtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two consecutive free ports (the first returned).
fn free_port_pair() -> u16 {
    loop {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// Runs a tpm2-tools program with `-T tcti`, with a 60 s limit.
pub fn tool(program: &str, args: &[&str], tcti: &str) -> Output {
    Command::new("timeout")
        .arg("60")
        .arg(program)
        .args(args)
        .args(["-T", tcti])
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (apt-get install tpm2-tools)"))
}

/// Like [`tool`], and the run must succeed; returns stdout.
pub fn tool_ok(program: &str, args: &[&str], tcti: &str) -> String {
    let out = tool(program, args, tcti);
    assert!(
        out.status.success(),
        "{program} {args:?} -T {tcti}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn mssim_tcti(serve: &Serve) -> String {
    format!("mssim:host=127.0.0.1,port={}", serve.port("mssim"))
}

pub fn swtpm_tcti(serve: &Serve) -> String {
    format!("swtpm:host=127.0.0.1,port={}", serve.port("server"))
}

pub fn vtpm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vtpm"))
        .args(args)
        .output()
        .unwrap()
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
