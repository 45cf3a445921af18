//! Processes and files that never outlive the test: a child is killed and
//! reaped on drop, a scratch directory removed.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A child process that is killed and reaped when dropped, so a failing
/// assertion or a timeout leaves no QEMU or TPM server behind.
#[derive(Debug)]
pub struct Reaper {
    child: Child,
    name: String,
}

impl Reaper {
    pub fn spawn(name: &str, command: &mut Command) -> Reaper {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        Reaper {
            child,
            name: name.to_owned(),
        }
    }

    /// The exit status if the process has ended (and is now reaped).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|e| panic!("cannot wait for {}: {e}", self.name))
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process (if it still runs) and reaps it.
    pub fn stop(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        // Killing a process that exits at this very moment fails harmlessly;
        // `wait` below still reaps it.
        let _ = self.child.kill();
        self.child.wait()
    }

    /// Takes the child's stdout, for a reader thread.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("could not stop {} (pid {}): {e}", self.name, self.id());
        }
    }
}

/// A fresh directory under the system temp dir, removed on drop. Short, so
/// a unix socket path inside it stays under the 108-byte limit.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new() -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("vtpm-qemu-{}-{n}", std::process::id()));
        // A directory left by a killed earlier run with the same pid.
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Scratch(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_a_reaper_kills_and_reaps_its_process() {
        let reaper = Reaper::spawn("sleep", Command::new("sleep").arg("600"));
        let proc_entry = PathBuf::from(format!("/proc/{}", reaper.id()));
        assert!(proc_entry.exists());
        drop(reaper);
        // Reaped: not even a zombie entry is left.
        assert!(!proc_entry.exists());
    }

    #[test]
    fn dropping_a_scratch_directory_removes_it_and_its_contents() {
        let scratch = Scratch::new();
        let path = scratch.path().to_path_buf();
        fs::write(path.join("file"), b"x").unwrap();
        drop(scratch);
        assert!(!path.exists());
    }
}
