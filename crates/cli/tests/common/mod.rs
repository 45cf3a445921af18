//! Helpers shared by the tests that run the `vtpm` binary.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::process::{Command, Output};

use serde_json::Value;

/// Runs the `vtpm` binary with `args` from the repository root (where the
/// shipped transcripts are), and returns what it did.
pub fn vtpm<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vtpm"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("run vtpm")
}

/// Asserts that the run exited 0, showing both streams otherwise.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Parses `exercise --json` output into (steps, summary).
pub fn json_lines(out: &Output) -> (Vec<Value>, Value) {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut steps = Vec::new();
    let mut summary = Value::Null;
    for line in text.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
        match v.get("summary") {
            Some(s) => summary = s.clone(),
            None => steps.push(v),
        }
    }
    (steps, summary)
}

/// The step called `name`.
pub fn step<'a>(steps: &'a [Value], name: &str) -> &'a Value {
    steps
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name}"))
}
