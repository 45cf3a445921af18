//! `vtpm --interface tis` end to end: the same workload, probe and replay
//! over the TIS/FIFO device, with the embedded sim and a real swtpm.

mod common;

use std::process::Output;

use common::{assert_ok, json_lines, step, vtpm};
use serde_json::Value;

/// Runs `exercise --interface tis --json` with `extra` and returns (steps,
/// summary) after checking it passed.
fn tis_exercise(extra: &[&str]) -> (Vec<Value>, Value) {
    let mut args = vec!["exercise", "--interface", "tis", "--json"];
    args.extend_from_slice(extra);
    let out = vtpm(&args);
    assert_ok(&out);
    let (steps, summary) = json_lines(&out);
    assert_eq!(summary["interface"], "tis", "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
    assert!(summary.get("window").is_none(), "no window over TIS");
    assert!(steps.iter().all(|s| s["ok"] == true));
    (steps, summary)
}

#[test]
fn tis_with_the_sim_moves_mldsa87_sign_and_verify_whole_and_counts_bursts() {
    let (steps, summary) = tis_exercise(&[]);
    assert_eq!(summary["backend_buffer"], 8192);
    let sign = step(&steps, "mldsa87_sign");
    // SignSequenceComplete: the 4627-byte signature, its TPMT header and
    // the session area.
    assert_eq!(sign["response_bytes"], 4655);
    // The TIS driver reads the header, then the rest in one burst of up to
    // burstCount bytes (the whole FIFO buffer).
    assert_eq!(sign["chunks_received"], 2);
    let verify = step(&steps, "mldsa87_verify");
    assert!(verify["request_bytes"].as_u64() > Some(4096), "{verify}");
    // All but the last byte in one burst, then the last byte alone.
    assert_eq!(verify["chunks_sent"], 2);
    let full = step(&steps, "full_frame");
    assert_eq!(
        (full["request_bytes"].as_u64(), full["rc"].as_str()),
        (Some(8192), Some("0x095"))
    );
    assert_eq!(
        step(&steps, "mlkem1024_decapsulate")["detail"],
        "shared secrets equal"
    );
}

#[test]
fn tis_with_swtpm_passes_the_classic_workload_at_its_4096_byte_buffer() {
    let (steps, summary) = tis_exercise(&["--backend", "swtpm"]);
    assert_eq!(summary["backend"], "swtpm");
    assert_eq!(summary["backend_buffer"], 4096);
    let full = step(&steps, "full_frame");
    assert_eq!(
        (full["request_bytes"].as_u64(), full["rc"].as_str()),
        (Some(4096), Some("0x095"))
    );
    assert_eq!(
        step(&steps, "pcr_read")["detail"],
        "matches SHA-256 computed on the host"
    );
}

#[test]
fn tis_migrating_at_every_access_passes_with_the_sim_and_with_swtpm() {
    for backend in ["sim", "swtpm"] {
        let (steps, summary) = tis_exercise(&["--backend", backend, "--migrate-every-step"]);
        assert!(
            summary["migrations"].as_u64() > Some(100),
            "{backend}: {summary}"
        );
        assert!(steps
            .iter()
            .any(|s| s["request_bytes"].as_u64() >= Some(4096)));
    }
}

#[test]
fn tis_probe_reports_the_fifo_interface_in_json_and_text() {
    let out = vtpm(&["probe", "--interface", "tis", "--json"]);
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["interface"], "tis");
    assert_eq!(v["backend_buffer"], 8192);
    assert_eq!(v["max_access"], 64);
    assert_eq!(v["intf_capability"], "0x30000697");
    assert!(v.get("window").is_none());
    assert!(v["tpm_properties"].as_object().unwrap().len() > 10);
    let out = vtpm(&["probe", "--interface", "tis"]);
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("INTERFACE_ID:"), "{text}");
}

/// The shipped TIS transcript, with its burstCount line made exact for a
/// backend buffer of `buffer` bytes.
fn tis_transcript_for(buffer: u32) -> String {
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../transcripts/tis-startup.jsonl"
    ))
    .unwrap();
    let loose = r#"{"read": {"locality": 0, "offset": "0x19", "size": 2, "expect": "0x0", "mask": "0xfff"}}"#;
    assert!(shipped.contains(loose));
    let exact = format!(
        r#"{{"read": {{"locality": 0, "offset": "0x19", "size": 2, "expect": {buffer}}}}}"#
    );
    shipped.replace(loose, &exact)
}

fn replay_text(name: &str, text: &str, backend: &str) -> Output {
    let path = std::env::temp_dir().join(format!("vtpm-tis-{}-{name}.jsonl", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let out = vtpm(&["replay", path.to_str().unwrap(), "--backend", backend]);
    std::fs::remove_file(&path).unwrap();
    out
}

#[test]
fn the_tis_transcript_replays_on_both_backends_with_their_exact_burst_count() {
    for backend in ["sim", "swtpm"] {
        assert_ok(&vtpm(&[
            "replay",
            "transcripts/tis-startup.jsonl",
            "--backend",
            backend,
        ]));
    }
    assert_ok(&replay_text("sim", &tis_transcript_for(8192), "sim"));
    assert_ok(&replay_text("swtpm", &tis_transcript_for(4096), "swtpm"));
    let wrong = replay_text("wrong", &tis_transcript_for(4096), "sim");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("line 16"));
}

#[test]
fn fifo_steps_need_tis_and_window_steps_need_crb() {
    let cases = [
        (
            "{\"fifo_write\": {\"locality\": 0, \"hex\": \"00\"}}\n",
            "fifo_write needs the TIS interface",
        ),
        (
            "{\"config\": {\"interface\": \"tis\"}}\n{\"window_write\": {\"locality\": 0, \"offset\": 0, \"hex\": \"00\"}}\n",
            "window_write needs the CRB interface",
        ),
        (
            "{\"config\": {\"interface\": \"tis\", \"window\": 256}}\n",
            "CRB interface only",
        ),
        (
            "{\"config\": {\"interface\": \"fifo\"}}\n",
            "expected crb or tis",
        ),
    ];
    for (i, (text, cause)) in cases.iter().enumerate() {
        let out = replay_text(&format!("bad{i}"), text, "sim");
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(cause), "{text}: {err}");
    }
}

#[test]
fn an_unknown_interface_is_a_clear_error_and_help_documents_bursts() {
    let out = vtpm(&["exercise", "--interface", "fifo"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected crb or tis"));
    let help = vtpm(&["help", "exercise"]);
    assert_ok(&help);
    assert!(String::from_utf8_lossy(&help.stdout).contains("FIFO bursts"));
}
