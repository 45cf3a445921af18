//! The `vtpm` binary end to end: the embedded sim and a real swtpm.

mod common;

use std::process::{Command, Output};

use common::{assert_ok, json_lines, step, vtpm};
use serde_json::Value;

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
fn sim_workload_signs_and_verifies_through_v185_sequences_and_uses_a_stored_mldsa87_key() {
    let (steps, summary) = sim_exercise("3968");
    assert_eq!(summary["failed"], 0);
    let command = |name: &str| step(&steps, name)["command"].as_str().unwrap().to_string();
    for set in ["mldsa44", "mldsa65", "mldsa87", "mldsa87_child"] {
        assert_eq!(
            command(&format!("{set}_sequence_start")),
            "SignSequenceStart"
        );
        assert_eq!(command(&format!("{set}_sign")), "SignSequenceComplete");
        assert_eq!(
            command(&format!("{set}_verify_start")),
            "VerifySequenceStart"
        );
        assert_eq!(command(&format!("{set}_verify_update")), "SequenceUpdate");
        assert_eq!(command(&format!("{set}_verify")), "VerifySequenceComplete");
        assert_eq!(
            command(&format!("{set}_verify_forged")),
            "VerifySequenceComplete"
        );
    }
    // TPM2_Sign and TPM2_VerifySignature are not v1.85 commands for ML-DSA.
    assert!(steps
        .iter()
        .all(|s| s["command"] != "Sign" && s["command"] != "VerifySignature"));
    // The stored key: Create under an ML-KEM-1024 parent, the parent
    // flushed and created again, Load of the blob, then used.
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    let at = |name: &str| names.iter().position(|n| *n == name).unwrap();
    assert!(at("storage_parent_create_primary") < at("mldsa87_child_create"));
    assert!(at("mldsa87_child_create") < at("storage_parent_flush"));
    assert!(at("storage_parent_recreate") < at("mldsa87_child_load"));
    assert!(at("mldsa87_child_load") < at("mldsa87_child_sign"));
    assert!(at("mldsa87_child_sign") < at("mldsa87_child_verify"));
    assert_eq!(command("mldsa87_child_create"), "Create");
    assert_eq!(command("mldsa87_child_load"), "Load");
    // Every ML-DSA-87 signing response is over 4096 bytes and moves in two
    // pieces at window 3968.
    let signing: Vec<_> = steps
        .iter()
        .filter(|s| {
            let name = s["step"].as_str().unwrap();
            name.starts_with("mldsa87_") && name.contains("sign")
        })
        .collect();
    assert_eq!(signing.len(), 2, "mldsa87_sign and mldsa87_child_sign");
    for s in signing {
        assert!(s["response_bytes"].as_u64() > Some(4096), "{s}");
        assert_eq!(s["chunks_received"], 2, "{s}");
    }
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

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn probe_without_chunking_at_a_64_byte_window_is_an_error_naming_the_cause() {
    let out = vtpm(&["probe", "--window", "64", "--chunking", "off"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("cannot read the TPM properties"), "{err}");
    assert!(
        err.contains("exceeds the 64-byte window and the device does not advertise CapCRBChunk"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn probe_names_the_tpm_properties_in_text_and_json() {
    let out = vtpm(&["probe", "--json"]);
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let props = &v["tpm_properties"];
    assert_eq!(props["TPM_PT_MAX_COMMAND_SIZE"], 8192);
    assert_eq!(props["TPM_PT_MAX_RESPONSE_SIZE"], 8192);
    assert_eq!(
        props["TPM_PT_FAMILY_INDICATOR"],
        u32::from_be_bytes(*b"2.0\0")
    );
    let out = vtpm(&["probe"]);
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("TPM_PT_MAX_COMMAND_SIZE") && l.contains("0x0011e = 0x2000")),
        "{text}"
    );
}

#[test]
fn without_chunking_mldsa87_sign_names_the_oversize_response_and_the_run_stops() {
    let out = vtpm(&["exercise", "--chunking", "off", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let (steps, summary) = json_lines(&out);
    let sign = step(&steps, "mldsa87_sign");
    assert_eq!(sign["ok"], false);
    let detail = sign["detail"].as_str().unwrap();
    assert!(
        detail.contains("the 4655-byte response exceeds the 3968-byte window")
            && detail.contains("does not advertise CapCRBChunk"),
        "{detail}"
    );
    // Nothing runs after the device went fatal.
    assert_eq!(steps.last().unwrap()["step"], "mldsa87_sign");
    assert!(
        summary["stopped"]
            .as_str()
            .is_some_and(|s| s.starts_with("mldsa87_sign: the 4655-byte response")),
        "{summary}"
    );
    assert_eq!(summary["steps"], steps.len());
}

/// Runs vtpm with a standard output whose reader is already gone.
fn vtpm_into_a_closed_pipe(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_vtpm"))
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run vtpm")
}

#[test]
fn a_closed_pipe_ends_exercise_quietly_with_and_without_json() {
    use std::os::unix::process::ExitStatusExt;
    for args in [&["exercise"][..], &["exercise", "--json"], &["probe"]] {
        let out = vtpm_into_a_closed_pipe(args);
        let err = stderr(&out);
        assert!(
            out.status.success() || out.status.signal() == Some(13),
            "{args:?}: {:?}\n{err}",
            out.status
        );
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn logs_are_printed_for_the_sim_without_colour_codes_off_a_terminal() {
    let out = vtpm(&["exercise", "-v"]);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("INFO") && err.contains("backend open"),
        "{err}"
    );
    assert!(err.contains("step=\"startup\""), "{err}");
    assert!(!err.contains('\u{1b}'), "ANSI escape in {err:?}");
    let out = vtpm(&["exercise", "-vvv"]);
    assert!(stderr(&out).contains("TRACE"), "{}", stderr(&out));
    let out = Command::new(env!("CARGO_BIN_EXE_vtpm"))
        .args(["probe"])
        .env("VTPM_LOG", "trace")
        .output()
        .unwrap();
    assert_ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("TRACE") && err.contains("backend executes"),
        "{err}"
    );
    assert!(!err.contains('\u{1b}'), "ANSI escape in {err:?}");
    let quiet = vtpm(&["exercise"]);
    assert!(stderr(&quiet).is_empty(), "{}", stderr(&quiet));
}

#[test]
fn swtpm_options_with_the_sim_are_refused() {
    for args in [
        &["probe", "--swtpm-ctrl", "/tmp/ctrl"][..],
        &["exercise", "--swtpm-state-dir", "/tmp/x"],
        &["exercise", "--swtpm-binary", "/usr/bin/swtpm"],
        &[
            "replay",
            "transcripts/startup.jsonl",
            "--swtpm-ctrl",
            "/tmp/c",
            "--shutdown",
        ],
    ] {
        let out = vtpm(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains("is a swtpm option, but the backend is sim; add --backend swtpm"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn the_state_dir_gets_its_last_component_created_and_no_more() {
    let base = std::env::temp_dir().join(format!("vtpm-cli-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let deep = base.join("dir/sub");
    let out = vtpm(&[
        "probe",
        "--backend",
        "swtpm",
        "--swtpm-state-dir",
        deep.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("its parent directory") && stderr(&out).contains("does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(!base.exists(), "created {}", base.display());
    std::fs::create_dir(&base).unwrap();
    let last = base.join("state");
    let out = vtpm(&[
        "probe",
        "--backend",
        "swtpm",
        "--swtpm-state-dir",
        last.to_str().unwrap(),
    ]);
    assert_ok(&out);
    assert!(last.is_dir());
    // The swtpm vtpm spawned has ended and released the state directory's
    // lock: a second run on the same directory starts.
    let out = vtpm(&[
        "probe",
        "--backend",
        "swtpm",
        "--swtpm-state-dir",
        last.to_str().unwrap(),
    ]);
    assert_ok(&out);
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn help_about_help_and_about_each_command_works() {
    let out = vtpm(&["help", "--help"]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: vtpm help"));
    let out = vtpm(&["help", "replay"]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("window_read"));
    let out = vtpm(&["help"]);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Examples:"));
    let out = vtpm(&["help", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn timeout_takes_units_and_refuses_nonsense() {
    let out = vtpm(&["probe", "--timeout", "5s"]);
    assert_ok(&out);
    let out = vtpm(&["probe", "--timeout", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a duration"), "{}", stderr(&out));
}

/// Writes `text` to a fresh transcript file and replays it on the sim.
fn replay_text(name: &str, text: &[u8]) -> Output {
    let path = std::env::temp_dir().join(format!("vtpm-cli-{}-{name}.jsonl", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let out = vtpm(&["replay", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    out
}

#[test]
fn malformed_transcripts_exit_2_with_the_line_and_the_cause() {
    let cases: &[(&str, &[u8], &str)] = &[
        ("empty", b"", "line 1: the transcript ends without a step"),
        (
            "config-only",
            b"# just settings\n{\"config\": {\"window\": 256}}\n",
            "line 2: the transcript ends without a step",
        ),
        (
            "misspelt-locality",
            b"{\"write\": {\"localty\": 0, \"offset\": 8, \"value\": 1}}\n",
            "line 1: unknown key \"localty\" in \"write\"",
        ),
        (
            "misspelt-chunking",
            b"{\"config\": {\"chunkng\": \"on\"}}\n{\"read\": {\"offset\": 0, \"expect\": 0}}\n",
            "line 1: unknown key \"chunkng\" in \"config\"",
        ),
        (
            "past-the-window",
            b"{\"config\": {\"window\": 64}}\n{\"window_write\": {\"offset\": 60, \"hex\": \"0102030405\"}}\n",
            "line 2: 5 bytes at window offset 0x3c go past the 64-byte window",
        ),
        (
            "far-outside",
            b"{\"read\": {\"offset\": \"0x100000\", \"expect\": 0}}\n",
            "line 1: offset 0x100000 with 4 bytes is outside the locality's 0x1000-byte page",
        ),
        (
            "wrapping-offset",
            b"{\"write\": {\"offset\": \"0xffffffffffffffff\", \"value\": 1}}\n",
            "line 1: offset 0xffffffffffffffff with 4 bytes is outside",
        ),
        (
            "wrapping-window-offset",
            b"{\"window_read\": {\"offset\": \"0xffffffffffffffff\", \"expect_hex\": \"00\"}}\n",
            "line 1: 1 bytes at window offset 0xffffffffffffffff go past",
        ),
        (
            "huge-number",
            b"\n{\"write\": {\"offset\": 99999999999999999999999, \"value\": 1}}\n",
            "line 2: offset 1e+23 is out of range",
        ),
        (
            "huge-string",
            b"{\"write\": {\"offset\": \"99999999999999999999999\", \"value\": 1}}\n",
            "line 1: offset \"99999999999999999999999\" is out of range",
        ),
        (
            "non-ascii-hex",
            "{\"window_write\": {\"locality\": 0, \"offset\": 0, \"hex\": \"a\u{e9}b\"}}\n".as_bytes(),
            "line 1: bad hex digit '\u{e9}'",
        ),
        (
            "value-too-wide",
            b"{\"write\": {\"offset\": 8, \"size\": 1, \"value\": 256}}\n",
            "line 1: value 0x100 does not fit 1 bytes",
        ),
        ("not-utf8", b"{\"write\": \xff}\n", "not UTF-8"),
        (
            "never-matching-read",
            b"{\"read\": {\"offset\": 0, \"size\": 1, \"expect\": 256}}\n",
            "line 1: expect 0x100 does not fit 1 bytes",
        ),
        (
            "endless-wait",
            b"{\"wait\": {\"offset\": 0, \"mask\": 1, \"value\": 2}}\n",
            "line 1: value 0x2 has bits outside the 32-bit mask 0x1",
        ),
        (
            "too-long-wait",
            b"{\"wait\": {\"offset\": 0, \"value\": 0, \"timeout_ms\": 3600000}}\n",
            "line 1: timeout_ms 3600000 is above 600000",
        ),
    ];
    for (name, text, needle) in cases {
        let out = replay_text(name, text);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(needle), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
}

/// The text of `path` under the workspace root.
fn workspace_file(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Package name → its manifest, for every crate under crates/.
fn packages() -> Vec<(String, String)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    std::fs::read_dir(root)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path().join("Cargo.toml")).ok())
        .map(|manifest| {
            let name = manifest
                .lines()
                .find_map(|l| l.strip_prefix("name = \""))
                .and_then(|l| l.strip_suffix('"'))
                .unwrap()
                .to_string();
            (name, manifest)
        })
        .collect()
}

#[test]
fn the_readme_keeps_two_set_up_commands_and_names_only_benches_that_exist() {
    let readme = workspace_file("README.md");
    let setup = &readme[readme.find("## Set-up").unwrap()..readme.find("## The tool").unwrap()];
    let commands: Vec<&str> = setup
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().trim())
        .collect();
    assert_eq!(
        commands,
        [
            "cargo run --release -p vtpm -- exercise",
            "./scripts/test.sh"
        ]
    );
    assert!(readme.contains("cargo install --path crates/cli"));
    let cli = workspace_file("crates/cli/Cargo.toml");
    assert!(cli.contains("name = \"vtpm\"\npath = \"src/main.rs\""));
    let packages = packages();
    let mut benches = 0;
    for mention in readme.split("cargo bench -p ").skip(1) {
        let words: Vec<&str> = mention
            .split(|c: char| c.is_whitespace() || c == '`')
            .take(3)
            .collect();
        let (_, manifest) = packages
            .iter()
            .find(|(name, _)| name == words[0])
            .unwrap_or_else(|| panic!("README benches package {} that does not exist", words[0]));
        assert!(manifest.contains("[[bench]]"), "{} has no bench", words[0]);
        if words.get(1) == Some(&"--bench") {
            assert!(
                manifest.contains(&format!("[[bench]]\nname = \"{}\"", words[2])),
                "{} has no bench {}",
                words[0],
                words[2]
            );
        }
        benches += 1;
    }
    assert_eq!(benches, 2);
}

#[test]
fn the_readme_says_which_examples_need_the_testing_feature() {
    let readme = workspace_file("README.md");
    assert!(readme.contains("[dependencies]"));
    for (crate_dir, dep) in [
        ("crb", "vtpm-crb"),
        ("backend", "vtpm-backend"),
        ("platform", "vtpm-platform"),
    ] {
        assert!(
            readme.contains(&format!(
                "{dep} = {{ path = \"../vtpm/crates/{crate_dir}\" }}"
            )),
            "{dep}"
        );
    }
    for example in ["crates/guest/README.md", "crates/platform/README.md"] {
        if workspace_file(example).contains("vtpm_backend::testing") {
            assert!(readme.contains(example), "{example}");
        }
    }
    assert!(readme.contains("features = [\"testing\"]"));
}

#[test]
fn window_in_ram_runs_the_workload_with_under_five_percent_of_the_trapped_exits_for_full_frame() {
    // Inline execution: Start is never polled twice, so the counts repeat.
    let ram = vtpm(&["exercise", "--json", "--inline", "--window-in-ram"]);
    assert_ok(&ram);
    let trapped = vtpm(&["exercise", "--json", "--inline"]);
    assert_ok(&trapped);
    let (ram_steps, ram_summary) = json_lines(&ram);
    let (trapped_steps, trapped_summary) = json_lines(&trapped);
    assert_eq!(ram_summary["failed"], 0);
    assert_eq!(ram_summary["window_in_ram"], true);
    assert_eq!(trapped_summary["window_in_ram"], false);
    let exits = |v: &Value| v["mmio_exits"].as_u64().expect("mmio_exits");
    assert!(exits(&ram_summary) > 0);
    assert!(exits(&ram_summary) < exits(&trapped_summary));
    let in_ram = exits(step(&ram_steps, "full_frame"));
    let trapped_frame = exits(step(&trapped_steps, "full_frame"));
    // 8 KiB written in 8-byte accesses alone is 1,024 trapped exits.
    assert!(trapped_frame >= 1024, "{trapped_frame}");
    assert!(
        in_ram * 20 <= trapped_frame,
        "{in_ram} exits in RAM mode vs {trapped_frame} trapped"
    );
    assert!(ram_steps.iter().all(|s| s.get("mmio_exits").is_some()));
    // The default worker execution passes too (its exit counts vary with
    // how often Start is polled, so only the outcome is checked).
    let worker = vtpm(&["exercise", "--json", "--window-in-ram"]);
    assert_ok(&worker);
    let (_, worker_summary) = json_lines(&worker);
    assert_eq!(worker_summary["failed"], 0);
    assert!(exits(&worker_summary) > 0);
}

#[test]
fn window_in_ram_survives_a_migration_at_every_step() {
    let out = vtpm(&[
        "exercise",
        "--window",
        "256",
        "--window-in-ram",
        "--migrate-every-step",
        "--json",
    ]);
    assert_ok(&out);
    let (steps, summary) = json_lines(&out);
    assert_eq!(summary["failed"], 0);
    assert!(summary["migrations"].as_u64() > Some(100), "{summary}");
    assert!(steps.iter().any(|s| s["chunks_sent"].as_u64() > Some(1)));
}

/// A platform starts the TPM from locality 0 (libtpms and the sim refuse
/// TPM2_Startup from 1, 2 and 4); `--locality N` then runs the workload at
/// N, on both backends and both interfaces.
#[test]
fn the_workload_runs_at_every_locality_after_a_locality_0_startup() {
    for interface in ["crb", "tis"] {
        for backend in ["swtpm", "sim"] {
            for locality in ["0", "1", "2", "3", "4"] {
                let out = vtpm(&[
                    "exercise",
                    "--json",
                    "--backend",
                    backend,
                    "--interface",
                    interface,
                    "--locality",
                    locality,
                ]);
                assert_ok(&out);
                let (steps, summary) = json_lines(&out);
                assert_eq!(
                    summary["failed"], 0,
                    "{backend} {interface} locality {locality}"
                );
                assert!(step(&steps, "startup")["ok"].as_bool().unwrap());
                assert!(
                    step(&steps, "get_random")["ok"].as_bool().unwrap(),
                    "{backend} {interface} locality {locality}"
                );
            }
        }
    }
}
