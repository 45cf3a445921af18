//! The `vtpm` binary end to end: the embedded sim and a real swtpm.

use std::process::{Command, Output};

use serde_json::Value;

fn vtpm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vtpm"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("run vtpm")
}

/// Parses `exercise --json` output into (steps, summary).
fn json_lines(out: &Output) -> (Vec<Value>, Value) {
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

fn step<'a>(steps: &'a [Value], name: &str) -> &'a Value {
    steps
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name}"))
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn swtpm_at_window_256_moves_pieces_both_ways() {
    let out = vtpm(&[
        "exercise",
        "--backend",
        "swtpm",
        "--window",
        "256",
        "--json",
    ]);
    assert_ok(&out);
    let (steps, summary) = json_lines(&out);
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["backend"], "swtpm");
    assert_eq!(summary["chunking_advertised"], true);
    assert!(steps.iter().any(|s| s["chunks_sent"].as_u64() > Some(1)));
    assert!(steps
        .iter()
        .any(|s| s["chunks_received"].as_u64() > Some(1)));
    for s in &steps {
        for key in [
            "step",
            "command",
            "request_bytes",
            "response_bytes",
            "chunks_sent",
            "chunks_received",
            "rc",
            "ok",
            "micros",
        ] {
            assert!(s.get(key).is_some(), "{key} missing in {s}");
        }
    }
}

#[test]
fn swtpm_full_frame_is_two_pieces_at_the_full_window() {
    let out = vtpm(&["exercise", "--backend", "swtpm", "--json"]);
    assert_ok(&out);
    let (steps, summary) = json_lines(&out);
    let full = step(&steps, "full_frame");
    assert_eq!(full["request_bytes"], summary["backend_buffer"]);
    assert_eq!(full["chunks_sent"], 2);
    assert_eq!(full["rc"], "0x095");
    assert_eq!(summary["window"], 3968);
}

#[test]
fn swtpm_probe_reports_buffer_sizes() {
    let out = vtpm(&["probe", "--backend", "swtpm", "--json"]);
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sizes = &v["swtpm"]["buffer_size"];
    let (in_use, min, max) = (
        sizes["in_use"].as_u64().unwrap(),
        sizes["min"].as_u64().unwrap(),
        sizes["max"].as_u64().unwrap(),
    );
    assert!(min <= in_use && in_use <= max, "{sizes}");
    assert_eq!(v["backend_buffer"].as_u64(), Some(in_use));
    assert_eq!(v["chunking_advertised"], in_use > 3968);
    assert!(v["swtpm"]["capability_names"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n == "SET_BUFFERSIZE"));
}

#[test]
fn replay_passes_shipped_transcripts_on_both_backends() {
    for backend in ["sim", "swtpm"] {
        for t in ["transcripts/startup.jsonl", "transcripts/chunked.jsonl"] {
            let out = vtpm(&["replay", t, "--backend", backend]);
            assert_ok(&out);
        }
    }
}

#[test]
fn replay_names_the_failing_line() {
    for backend in ["sim", "swtpm"] {
        let out = vtpm(&[
            "replay",
            "crates/cli/tests/data/wrong_expectation.jsonl",
            "--backend",
            backend,
        ]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("line 8: expected 80010000000a00000101, saw 80010000000a00000000"),
            "{err}"
        );
    }
}

#[test]
fn bad_arguments_are_clear_errors() {
    let out = vtpm(&["exercise", "--window", "10"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("window size 10 is outside 64..=3968"));
    let out = vtpm(&[
        "exercise",
        "--backend",
        "swtpm",
        "--swtpm-binary",
        "/nonexistent/swtpm",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("apt-get install swtpm"));
    let out = vtpm(&["replay", "/nonexistent.jsonl"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent.jsonl"));
}

#[test]
fn help_explains_with_examples() {
    let out = vtpm(&["--help"]);
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Examples:") && text.contains("vtpm exercise --window 256 --json"));
    let out = vtpm(&["replay", "--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("window_read"));
}

/// `exercise --json` on the embedded sim at `window`: every step passes and
/// the post-quantum steps move more than 4096 bytes each way.
fn sim_exercise(window: &str) -> (Vec<Value>, Value) {
    let out = vtpm(&["exercise", "--window", window, "--json"]);
    assert_ok(&out);
    let (steps, summary) = json_lines(&out);
    assert_eq!(summary["backend"], "sim");
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["backend_buffer"], 8192);
    assert!(steps.iter().all(|s| s["ok"] == true));
    let big_response = steps.iter().find(|s| {
        s["response_bytes"].as_u64() > Some(4096) && s["chunks_received"].as_u64() >= Some(2)
    });
    let big_request = steps
        .iter()
        .find(|s| s["request_bytes"].as_u64() > Some(4096) && s["chunks_sent"].as_u64() >= Some(2));
    assert!(
        big_response.is_some(),
        "no step received over 4096 bytes in pieces"
    );
    assert!(
        big_request.is_some(),
        "no step sent over 4096 bytes in pieces"
    );
    let full = step(&steps, "full_frame");
    assert_eq!(
        (full["request_bytes"].as_u64(), full["rc"].as_str()),
        (Some(8192), Some("0x095"))
    );
    assert_eq!(
        step(&steps, "mlkem1024_decapsulate")["detail"],
        "shared secrets equal"
    );
    (steps, summary)
}

#[test]
fn sim_is_the_default_and_moves_pqc_sizes_at_window_3968() {
    let (steps, summary) = sim_exercise("3968");
    assert_eq!(summary["window"], 3968);
    assert_eq!(step(&steps, "mldsa87_sign")["chunks_received"], 2);
    assert_eq!(step(&steps, "mldsa87_verify")["chunks_sent"], 2);
}

#[test]
fn sim_workload_at_windows_64_and_512() {
    for window in ["64", "512"] {
        let (steps, _) = sim_exercise(window);
        let w: u64 = window.parse().unwrap();
        let sign = step(&steps, "mldsa87_sign");
        assert_eq!(
            sign["chunks_received"].as_u64(),
            Some(sign["response_bytes"].as_u64().unwrap().div_ceil(w))
        );
    }
}

#[test]
fn migrate_every_step_with_the_sim_and_with_swtpm() {
    for backend in ["sim", "swtpm"] {
        let out = vtpm(&[
            "exercise",
            "--backend",
            backend,
            "--window",
            "256",
            "--migrate-every-step",
            "--json",
        ]);
        assert_ok(&out);
        let (steps, summary) = json_lines(&out);
        assert_eq!(summary["failed"], 0, "{backend}");
        assert!(
            summary["migrations"].as_u64() > Some(100),
            "{backend}: {summary}"
        );
        assert!(steps.iter().any(|s| s["chunks_sent"].as_u64() > Some(1)));
        assert!(steps
            .iter()
            .any(|s| s["chunks_received"].as_u64() > Some(1)));
    }
}
