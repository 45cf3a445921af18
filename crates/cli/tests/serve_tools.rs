//! `vtpm serve` against real clients: tpm2-tools through tpm2-tss's mssim
//! and swtpm TCTIs, compared with what the same tools print against a real
//! swtpm, and vtpm's own swtpm backend attached to it.

mod serve_common;

use serde_json::Value;
use serve_common::*;

const DIGEST: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

#[test]
fn tpm2_getrandom_and_pcrread_succeed_over_mssim_and_swtpm() {
    let serve = Serve::start(&["--mssim", "tcp:127.0.0.1:0", "--server", "tcp:127.0.0.1:0"]);
    for tcti in [mssim_tcti(&serve), swtpm_tcti(&serve)] {
        let hex = tool_ok("tpm2_getrandom", &["8", "--hex"], &tcti);
        assert_eq!(hex.trim().len(), 16, "{tcti}: {hex:?}");
        assert!(hex.trim().chars().all(|c| c.is_ascii_hexdigit()));
        let pcrs = tool_ok("tpm2_pcrread", &["sha256:0"], &tcti);
        assert!(pcrs.contains("0 : 0x0000000000000000"), "{tcti}: {pcrs}");
    }
}

#[test]
fn tpm2_tools_reach_a_unix_socket_server_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tpm");
    let ctrl = dir.path().join("tpm.ctrl");
    let serve = Serve::start(&[
        "--server",
        &format!("unix:{}", data.display()),
        "--ctrl",
        &format!("unix:{}", ctrl.display()),
    ]);
    let tcti = format!("swtpm:path={}", data.display());
    let hex = tool_ok("tpm2_getrandom", &["4", "--hex"], &tcti);
    assert_eq!(hex.trim().len(), 8);
    drop(serve);
}

#[test]
fn pcrextend_then_pcrread_print_what_they_print_against_a_real_swtpm() {
    let serve = Serve::start(&["--mssim", "tcp:127.0.0.1:0", "--server", "tcp:127.0.0.1:0"]);
    let real = RealSwtpm::start();
    let run = |tcti: &str| {
        tool_ok("tpm2_pcrextend", &[&format!("16:sha256={DIGEST}")], tcti);
        tool_ok("tpm2_pcrread", &["sha256:0,16"], tcti)
    };
    let expected = run(&real.tcti());
    assert!(
        expected.contains("16: 0x") || expected.contains("16 : 0x"),
        "{expected}"
    );
    assert_eq!(run(&swtpm_tcti(&serve)), expected, "over the swtpm TCTI");
    // The same PCR extended a second time through the other protocol.
    let twice = run(&real.tcti());
    assert_eq!(run(&mssim_tcti(&serve)), twice, "over the mssim TCTI");
}

#[test]
fn getcap_properties_and_algorithms_succeed_and_report_the_8_kib_buffer() {
    let serve = Serve::start(&["--mssim", "tcp:127.0.0.1:0"]);
    let real = RealSwtpm::start();
    let ours = tool_ok("tpm2_getcap", &["properties-fixed"], &mssim_tcti(&serve));
    let theirs = tool_ok("tpm2_getcap", &["properties-fixed"], &real.tcti());
    for property in ["TPM2_PT_FAMILY_INDICATOR", "TPM2_PT_MAX_COMMAND_SIZE"] {
        assert!(ours.contains(property), "{ours}");
        assert!(theirs.contains(property), "{theirs}");
    }
    let max = ours
        .split("TPM2_PT_MAX_COMMAND_SIZE:")
        .nth(1)
        .and_then(|rest| rest.lines().nth(1))
        .unwrap();
    assert!(max.contains("0x2000"), "{max}");
    let algorithms = tool_ok("tpm2_getcap", &["algorithms"], &mssim_tcti(&serve));
    assert!(algorithms.contains("sha256:"), "{algorithms}");
    assert!(tool_ok("tpm2_getcap", &["algorithms"], &real.tcti()).contains("sha256:"));
}

#[test]
fn startup_and_shutdown_exit_as_they_do_against_a_real_swtpm() {
    let serve = Serve::start(&["--server", "tcp:127.0.0.1:0"]);
    let real = RealSwtpm::start();
    let sequence = |tcti: &str| {
        [
            (&["-c"][..], "tpm2_startup"),
            (&["-c"][..], "tpm2_shutdown"),
            (&["-c"][..], "tpm2_startup"),
            (&[][..], "tpm2_shutdown"),
        ]
        .iter()
        .map(|(args, program)| tool(program, args, tcti).status.code())
        .collect::<Vec<_>>()
    };
    let expected = sequence(&real.tcti());
    assert_eq!(sequence(&swtpm_tcti(&serve)), expected);
}

#[test]
fn vtpm_swtpm_backend_attached_to_vtpm_serve_runs_the_pqc_workload() {
    let dir = tempfile::tempdir().unwrap();
    for with_data_socket in [true, false] {
        let ctrl = dir.path().join(format!("ctrl{with_data_socket}"));
        let data = dir.path().join(format!("data{with_data_socket}"));
        let mut args = vec!["--ctrl".to_string(), format!("unix:{}", ctrl.display())];
        if with_data_socket {
            args.extend(["--server".to_string(), format!("unix:{}", data.display())]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let _serve = Serve::start(&args);
        let ctrl_s = ctrl.display().to_string();
        let data_s = data.display().to_string();
        let mut ex = vec![
            "exercise",
            "--backend",
            "swtpm",
            "--swtpm-ctrl",
            &ctrl_s,
            "--json",
        ];
        if with_data_socket {
            ex.extend(["--swtpm-data", &data_s]);
        }
        let out = vtpm(&ex);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        check_pqc_steps(&out.stdout);
    }
}

/// Every step passed, and the post-quantum steps moved more than 4096 bytes.
pub fn check_pqc_steps(stdout: &[u8]) {
    let lines: Vec<Value> = String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(summary["backend_buffer"], 8192);
    let big: Vec<&str> = lines
        .iter()
        .filter(|l| {
            l["request_bytes"].as_u64().unwrap_or(0) > 4096
                || l["response_bytes"].as_u64().unwrap_or(0) > 4096
        })
        .filter_map(|l| l["step"].as_str())
        .filter(|s| s.starts_with("mldsa") || s.starts_with("hash_mldsa"))
        .collect();
    assert!(big.len() >= 3, "PQC steps over 4096 bytes: {big:?}");
}

#[test]
fn vtpm_mssim_backend_against_vtpm_serve_runs_the_pqc_workload_probe_and_replay() {
    let serve = Serve::start(&["--mssim", "tcp:127.0.0.1:0"]);
    let endpoint = serve.endpoint("mssim");
    let out = vtpm(&[
        "exercise",
        "--backend",
        "mssim",
        "--mssim",
        &endpoint,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_pqc_steps(&out.stdout);
    let out = vtpm(&[
        "probe",
        "--backend",
        "mssim",
        "--mssim",
        &endpoint,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let probe: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(probe["backend_buffer"], 8192);
    let transcript = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../transcripts/startup.jsonl"
    );
    let out = vtpm(&[
        "replay",
        transcript,
        "--backend",
        "mssim",
        "--mssim",
        &endpoint,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
