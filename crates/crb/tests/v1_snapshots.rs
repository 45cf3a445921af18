//! Snapshots written by the version-1 writer (committed under tests/data)
//! still load, and the restored device behaves exactly like a twin that
//! reached the same state without a snapshot.
//!
//! The blobs were written by the version-1 `snapshot()` from the states
//! the functions below build (`idle`, `receiving`, `executing`,
//! `responding`), so the bytes and the twins describe the same devices.

mod common;
use common::*;
use vtpm_crb::{Action, ChunkPolicy, Completion, CrbConfig, CrbDevice, ExecToken};

/// The configuration every committed version-1 blob was written with.
fn config() -> CrbConfig {
    CrbConfig {
        window_size: 256,
        backend_buffer: 8192,
        chunking: ChunkPolicy::Auto,
        ..CrbConfig::default()
    }
}

fn blob(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn execute(action: Option<OwnedAction>) -> (ExecToken, Vec<u8>) {
    match action {
        Some(OwnedAction::Execute { token, command, .. }) => (token, command),
        other => panic!("expected Execute, got {other:?}"),
    }
}

/// Locality 2 holds the interface, interrupts are enabled, one 600-byte
/// command was sent in three pieces and its 700-byte response read to the
/// last byte.
fn idle() -> CrbDevice {
    let mut d = CrbDevice::new(config()).unwrap();
    take_locality(&mut d, 2);
    w32(&mut d, 0x2000 + INT_ENABLE, 0x8000_000F);
    w32(&mut d, 0x2000 + CTRL_REQ, 1);
    let cmd = command(600, 0x11);
    for piece in cmd[..512].chunks(256) {
        window_write(&mut d, 2, piece);
        assert_eq!(w32(&mut d, 0x2000 + CTRL_START, NEXT_CHUNK), None);
    }
    window_write(&mut d, 2, &cmd[512..]);
    let (token, _) = execute(w32(&mut d, 0x2000 + CTRL_START, START));
    assert_eq!(
        d.complete(token, Ok(&patterned(700, 0x22))),
        Completion::Delivered
    );
    for _ in 0..2 {
        window_read(&mut d, 2, 256);
        w32(&mut d, 0x2000 + CTRL_START, NEXT_CHUNK);
    }
    window_read(&mut d, 2, 700 - 512);
    assert_eq!(d.held_bytes(), 0);
    d
}

/// Locality 0 has sent two 256-byte pieces of a 600-byte command.
fn receiving() -> CrbDevice {
    let mut d = CrbDevice::new(config()).unwrap();
    take_locality(&mut d, 0);
    let cmd = command(600, 0x33);
    for piece in cmd[..512].chunks(256) {
        window_write(&mut d, 0, piece);
        assert_eq!(w32(&mut d, CTRL_START, NEXT_CHUNK), None);
    }
    d
}

/// Locality 3 started a 600-byte command, the backend has it; a
/// cmdReady waits for it.
fn executing() -> CrbDevice {
    let mut d = CrbDevice::new(config()).unwrap();
    take_locality(&mut d, 3);
    let cmd = command(600, 0x44);
    for piece in cmd[..512].chunks(256) {
        window_write(&mut d, 3, piece);
        assert_eq!(w32(&mut d, 0x3000 + CTRL_START, NEXT_CHUNK), None);
    }
    window_write(&mut d, 3, &cmd[512..]);
    let (_, got) = execute(w32(&mut d, 0x3000 + CTRL_START, START));
    assert_eq!(got, cmd);
    w32(&mut d, 0x3000 + CTRL_REQ, 1);
    d
}

/// Locality 0 has read the first piece of a 700-byte response and asked
/// for the second, and read half of it.
fn responding() -> CrbDevice {
    let mut d = CrbDevice::new(config()).unwrap();
    take_locality(&mut d, 0);
    window_write(&mut d, 0, &command(40, 0x55));
    let (token, _) = execute(w32(&mut d, CTRL_START, START));
    assert_eq!(
        d.complete(token, Ok(&patterned(700, 0x66))),
        Completion::Delivered
    );
    window_read(&mut d, 0, 256);
    w32(&mut d, CTRL_START, NEXT_CHUNK);
    window_read(&mut d, 0, 128);
    d
}

/// Every register a driver can read, from every locality.
fn registers(d: &mut CrbDevice) -> Vec<u32> {
    let mut out = Vec::new();
    for l in 0..5u64 {
        for reg in [
            LOC_STATE,
            LOC_STS,
            INTF_ID,
            CTRL_REQ,
            CTRL_STS,
            CTRL_CANCEL,
            CTRL_START,
            INT_ENABLE,
            INT_STS,
        ] {
            out.push(r32(d, l * 0x1000 + reg));
        }
    }
    out
}

fn load(name: &str) -> CrbDevice {
    let bytes = blob(name);
    assert_eq!(&bytes[..8], b"VTPMCRB\0");
    assert_eq!(&bytes[8..10], &[1, 0], "{name} is a version-1 blob");
    CrbDevice::restore(config(), &bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn a_version_1_idle_snapshot_loads_and_runs_the_next_command() {
    let mut twin = idle();
    let mut restored = load("v1_idle.bin");
    assert_eq!(registers(&mut restored), registers(&mut twin));
    assert_eq!(restored.stats(), twin.stats());
    assert_eq!(restored.active_locality(), Some(2));
    for d in [&mut twin, &mut restored] {
        window_write(d, 2, &command(30, 0x77));
        let (token, got) = execute(w32(d, 0x2000 + CTRL_START, START));
        assert_eq!(got, command(30, 0x77));
        assert_eq!(
            d.complete(token, Ok(&patterned(12, 1))),
            Completion::Delivered
        );
        assert_eq!(window_read(d, 2, 12), patterned(12, 1));
    }
    assert_eq!(restored.stats(), twin.stats());
}

#[test]
fn a_version_1_mid_receive_snapshot_takes_the_rest_of_the_command() {
    let mut twin = receiving();
    let mut restored = load("v1_receiving.bin");
    assert_eq!(registers(&mut restored), registers(&mut twin));
    assert_eq!(restored.held_bytes(), 512);
    let cmd = command(600, 0x33);
    for d in [&mut twin, &mut restored] {
        window_write(d, 0, &cmd[512..]);
        let (_, got) = execute(w32(d, CTRL_START, START));
        assert_eq!(got, cmd);
    }
}

#[test]
fn a_version_1_executing_snapshot_offers_the_command_again_and_completes() {
    let twin = executing();
    let mut restored = load("v1_executing.bin");
    let cmd = command(600, 0x44);
    let token = match (twin.executing_command(), restored.executing_command()) {
        (
            Some(Action::Execute {
                token: a,
                locality: 3,
                command: ca,
            }),
            Some(Action::Execute {
                token: b,
                locality: 3,
                command: cb,
            }),
        ) => {
            assert_eq!((a, ca), (b, cb));
            assert_eq!(cb, &cmd[..]);
            b
        }
        other => panic!("{other:?}"),
    };
    let mut twin = twin;
    for d in [&mut twin, &mut restored] {
        assert_eq!(r32(d, 0x3000 + CTRL_REQ), 1, "the cmdReady still waits");
        assert_eq!(
            d.complete(token, Ok(&patterned(300, 2))),
            Completion::Delivered
        );
        // The deferred cmdReady released the response at completion.
        assert_eq!(r32(d, 0x3000 + CTRL_REQ), 0);
        assert_eq!(d.held_bytes(), 0);
    }
    assert_eq!(registers(&mut restored), registers(&mut twin));
}

#[test]
fn a_version_1_mid_response_snapshot_serves_the_rest_of_the_response() {
    let mut twin = responding();
    let mut restored = load("v1_responding.bin");
    assert_eq!(registers(&mut restored), registers(&mut twin));
    let rsp = patterned(700, 0x66);
    for d in [&mut twin, &mut restored] {
        assert_eq!(window_read(d, 0, 256), rsp[256..512]);
        w32(d, CTRL_START, NEXT_CHUNK);
        assert_eq!(window_read(d, 0, 700 - 512), rsp[512..]);
        assert_eq!(d.held_bytes(), 0, "released after the last byte");
        w32(d, CTRL_START, RSP_RETRY);
        assert!(window_read(d, 0, 256).iter().all(|&b| b == 0));
    }
}
