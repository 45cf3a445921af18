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
fn vtpm_swtpm_backend_attached_to_vtpm_serve_runs_the_pqc_workload_over_crb_and_tis() {
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
        // Over CRB and TIS in turn, on the same server.
        for interface in ["crb", "tis"] {
            let mut ex = vec![
                "exercise",
                "--backend",
                "swtpm",
                "--swtpm-ctrl",
                &ctrl_s,
                "--interface",
                interface,
                "--json",
            ];
            if with_data_socket {
                ex.extend(["--swtpm-data", &data_s]);
            }
            let out = vtpm(&ex);
            assert!(
                out.status.success(),
                "{interface}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            check_pqc_steps(&out.stdout);
        }
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
fn vtpm_mssim_backend_against_vtpm_serve_runs_the_pqc_workload_over_crb_and_tis_probe_and_replay() {
    let serve = Serve::start(&["--mssim", "tcp:127.0.0.1:0"]);
    let endpoint = serve.endpoint("mssim");
    for interface in ["crb", "tis"] {
        let out = vtpm(&[
            "exercise",
            "--backend",
            "mssim",
            "--mssim",
            &endpoint,
            "--interface",
            interface,
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{interface}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        check_pqc_steps(&out.stdout);
    }
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

/// One control request on a fresh TCP connection; the reply of `len` bytes.
fn control(port: u16, request: &[u8], len: usize) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(request).unwrap();
    let mut reply = vec![0u8; len];
    s.read_exact(&mut reply).unwrap();
    reply
}

#[test]
fn control_replies_are_byte_for_byte_those_of_a_real_swtpm() {
    let serve = Serve::start(&["--server", "tcp:127.0.0.1:0"]);
    let real = RealSwtpm::start();
    let r = |cmd: u32, body: &[u8]| {
        let mut v = cmd.to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    };
    // (request, reply length) in an order that walks the state rules.
    let requests = [
        (r(5, &[5, 0, 0, 0]), 4),           // SET_LOCALITY 5: bad locality
        (r(5, &[2]), 4),                    // SET_LOCALITY 2, unpadded
        (r(5, &[0, 0, 0, 0]), 4),           // back to 0
        (r(11, &[0, 0, 0, 0]), 4),          // RESET_TPMESTABLISHED from 0
        (r(0x99, &[]), 4),                  // unknown command
        (r(17, &8192u32.to_be_bytes()), 4), // SET_BUFFERSIZE while running
        (r(4, &[]), 8),                     // GET_TPMESTABLISHED
        (r(15, &[]), 8),                    // GET_CONFIG
        (r(12, &[0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0]), 16), // empty savestate blob
        (r(9, &[]), 4),                     // CANCEL_TPM_CMD
        (r(14, &[]), 4),                    // STOP
        (r(12, &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]), 4), // GET_STATEBLOB stopped
        (r(4, &[]), 4),                     // GET_TPMESTABLISHED stopped
        (r(10, &[]), 4),                    // STORE_VOLATILE stopped
        (r(13, &[0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0]), 4), // SET_STATEBLOB, empty
        (r(2, &[0, 0, 0, 0]), 4),           // INIT
        (r(13, &[0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0]), 4), // SET_STATEBLOB running
    ];
    let ours = serve.port("ctrl");
    let theirs = real.port + 1;
    for (request, len) in &requests {
        assert_eq!(
            control(ours, request, *len),
            control(theirs, request, *len),
            "request {request:02x?}"
        );
    }
}
