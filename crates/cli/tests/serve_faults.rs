//! `vtpm serve` under faults: clients that leave mid-command, garbage on
//! every channel, oversize frames, two servers on one state directory,
//! SIGTERM, and restarts that must keep the state.

mod serve_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serve_common::*;

const DIGEST: &str = "0x2222222222222222222222222222222222222222222222222222222222222222";

fn connect(endpoint: &str) -> TcpStream {
    let addr = endpoint.strip_prefix("tcp:").unwrap();
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn both() -> Serve {
    Serve::start(&["--mssim", "tcp:127.0.0.1:0", "--server", "tcp:127.0.0.1:0"])
}

#[test]
fn a_client_gone_mid_command_leaves_the_server_ready_on_every_channel() {
    let mut serve = both();
    // mssim: SEND_COMMAND announcing 22 bytes, 5 sent.
    let mut s = connect(&serve.endpoint("mssim"));
    s.write_all(&[0, 0, 0, 8, 0, 0, 0, 0, 22, 0x80, 1, 0, 0, 0])
        .unwrap();
    drop(s);
    // swtpm data: a header announcing 64 bytes, 10 sent.
    let mut s = connect(&serve.endpoint("server"));
    s.write_all(&[0x80, 1, 0, 0, 0, 64, 0, 0, 1, 0x7b]).unwrap();
    drop(s);
    // swtpm control: SET_STATEBLOB announcing 1000 bytes, none sent.
    let mut s = connect(&serve.endpoint("ctrl"));
    s.write_all(&[0, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 3, 0xe8])
        .unwrap();
    drop(s);
    assert!(serve.is_running());
    tool_ok("tpm2_getrandom", &["8", "--hex"], &mssim_tcti(&serve));
    tool_ok("tpm2_getrandom", &["8", "--hex"], &swtpm_tcti(&serve));
}

#[test]
fn garbage_on_every_channel_never_stops_the_server() {
    let mut serve = both();
    let mut seed = 0x9e37_79b9u32;
    for round in 0..25 {
        let mut junk = vec![0u8; 3 + round * 13];
        for b in &mut junk {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            *b = seed as u8;
        }
        for key in ["mssim", "platform", "ctrl", "server"] {
            let mut s = connect(&serve.endpoint(key));
            let _ = s.write_all(&junk);
            drop(s);
        }
    }
    assert!(serve.is_running());
    tool_ok("tpm2_pcrread", &["sha256:0"], &mssim_tcti(&serve));
    tool_ok("tpm2_pcrread", &["sha256:0"], &swtpm_tcti(&serve));
}

#[test]
fn an_oversize_frame_gets_command_size_and_the_next_command_on_the_stream_works() {
    let serve = both();
    let mut s = connect(&serve.endpoint("server"));
    let mut big = vec![0u8; 20000];
    big[..10].copy_from_slice(&[0x80, 1, 0, 0, 0x4e, 0x20, 0, 0, 1, 0x7b]);
    s.write_all(&big).unwrap();
    let mut rsp = [0u8; 10];
    s.read_exact(&mut rsp).unwrap();
    assert_eq!(rsp, [0x80, 1, 0, 0, 0, 10, 0, 0, 1, 0x42]);
    s.write_all(&[0x80, 1, 0, 0, 0, 12, 0, 0, 1, 0x7b, 0, 4])
        .unwrap();
    let mut rsp = [0u8; 16];
    s.read_exact(&mut rsp).unwrap();
    assert_eq!(&rsp[..10], &[0x80, 1, 0, 0, 0, 16, 0, 0, 0, 0]);
}

#[test]
fn two_servers_on_one_state_directory_fail_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().display().to_string();
    let first = Serve::start(&["--mssim", "tcp:127.0.0.1:0", "--state", &state]);
    let err = Serve::try_start(&["--mssim", "tcp:127.0.0.1:0", "--state", &state])
        .err()
        .expect("the second server must refuse");
    assert!(
        err.contains(&format!("in use by process {}", first.pid())),
        "{err}"
    );
}

#[test]
fn sigterm_stores_the_state_and_a_restart_resumes_the_pcrs_of_shutdown_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").display().to_string();
    let serve = Serve::start(&["--server", "tcp:127.0.0.1:0", "--state", &state]);
    let tcti = swtpm_tcti(&serve);
    tool_ok("tpm2_pcrextend", &[&format!("8:sha256={DIGEST}")], &tcti);
    let before = tool_ok("tpm2_pcrread", &["sha256:8"], &tcti);
    tool_ok("tpm2_shutdown", &[], &tcti);
    let out = serve.terminate();
    assert!(out.status.success(), "{out:?}");

    let serve = Serve::start(&[
        "--server",
        "tcp:127.0.0.1:0",
        "--state",
        &state,
        "--no-startup",
    ]);
    let tcti = swtpm_tcti(&serve);
    tool_ok("tpm2_startup", &[], &tcti);
    assert_eq!(tool_ok("tpm2_pcrread", &["sha256:8"], &tcti), before);
}

#[test]
fn encrypted_state_needs_its_key_file_to_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").display().to_string();
    let key = dir.path().join("key");
    std::fs::write(&key, "42".repeat(32)).unwrap();
    let key = key.display().to_string();
    let serve = Serve::start(&[
        "--mssim",
        "tcp:127.0.0.1:0",
        "--state",
        &state,
        "--key-file",
        &key,
    ]);
    tool_ok(
        "tpm2_pcrextend",
        &[&format!("16:sha256={DIGEST}")],
        &mssim_tcti(&serve),
    );
    assert!(serve.terminate().status.success());
    let err = Serve::try_start(&["--mssim", "tcp:127.0.0.1:0", "--state", &state])
        .err()
        .expect("no key: refused");
    assert!(err.contains("encrypted"), "{err}");
    let serve = Serve::start(&[
        "--mssim",
        "tcp:127.0.0.1:0",
        "--state",
        &state,
        "--key-file",
        &key,
    ]);
    tool_ok("tpm2_getrandom", &["8", "--hex"], &mssim_tcti(&serve));
}

#[test]
fn serve_help_explains_the_protocols_with_examples() {
    let out = vtpm(&["serve", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--mssim",
        "--ctrl",
        "--server",
        "--state",
        "--key-file",
        "Examples:",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}

#[test]
fn a_client_process_killed_mid_command_leaves_the_server_ready() {
    use std::io::BufRead;
    let mut serve = both();
    // A partial SEND_COMMAND (mssim) and a partial TPM command (swtpm data),
    // each written by a process that then hangs and is SIGKILLed.
    let cases = [
        (
            serve.port("mssim"),
            r"\x00\x00\x00\x08\x00\x00\x00\x00\x16\x80\x01",
        ),
        (serve.port("server"), r"\x80\x01\x00\x00\x00\x40\x00\x00"),
    ];
    for (port, bytes) in cases {
        let script = format!(
            "exec 3<>/dev/tcp/127.0.0.1/{port}; printf '{bytes}' >&3; echo sent; exec sleep 60"
        );
        let mut child = std::process::Command::new("bash")
            .args(["-c", &script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "sent");
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(serve.is_running());
    tool_ok("tpm2_getrandom", &["8", "--hex"], &mssim_tcti(&serve));
    tool_ok("tpm2_getrandom", &["8", "--hex"], &swtpm_tcti(&serve));
}
