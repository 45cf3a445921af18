//! Step-by-step transcripts of the chunking behaviour QEMU merged (PTP
//! v1.07), and of the places where this device deliberately differs.

mod common;
use common::*;
use vtpm_crb::{BackendFailed, ChunkPolicy, Completion, CrbConfig, CrbDevice};

fn device(window: usize, buffer: usize, chunking: ChunkPolicy) -> CrbDevice {
    let mut d = CrbDevice::new(CrbConfig {
        window_size: window,
        backend_buffer: buffer,
        chunking,
        ..CrbConfig::default()
    })
    .unwrap();
    take_locality(&mut d, 0);
    w32(&mut d, CTRL_REQ, 1);
    d
}

/// Sends `cmd` in window pieces with nextChunk, then Start; returns the action.
fn send(d: &mut CrbDevice, cmd: &[u8]) -> Option<OwnedAction> {
    let window = d.config().window_size;
    let pieces: Vec<&[u8]> = cmd.chunks(window).collect();
    for (i, piece) in pieces.iter().enumerate() {
        window_write(d, 0, piece);
        if i + 1 < pieces.len() {
            assert_eq!(w32(d, CTRL_START, NEXT_CHUNK), None);
            assert_eq!(r32(d, CTRL_START), 0, "nextChunk reads back 0 at once");
        } else {
            return w32(d, CTRL_START, START);
        }
    }
    None
}

fn execute(action: Option<OwnedAction>) -> (vtpm_crb::ExecToken, u8, Vec<u8>) {
    match action {
        Some(OwnedAction::Execute {
            token,
            locality,
            command,
        }) => (token, locality, command),
        other => panic!("expected Execute, got {other:?}"),
    }
}

#[test]
fn command_sent_in_four_pieces_arrives_whole() {
    let mut d = device(256, 4096, ChunkPolicy::Auto);
    let cmd = command(1000, 3);
    let (_, locality, got) = execute(send(&mut d, &cmd));
    assert_eq!(locality, 0);
    assert_eq!(got, cmd);
    assert_eq!(
        r32(&mut d, CTRL_START),
        START,
        "Start reads 1 while executing"
    );
    assert_eq!(d.stats().command_pieces, 4);
}

#[test]
fn response_served_in_pieces_then_released() {
    let mut d = device(256, 4096, ChunkPolicy::Auto);
    let (token, _, _) = execute(send(&mut d, &command(20, 0)));
    let rsp = patterned(700, 9);
    assert_eq!(d.complete(token, Ok(&rsp)), Completion::Delivered);
    assert_eq!(r32(&mut d, CTRL_START), 0);
    let mut got = Vec::new();
    for piece in 0..3 {
        if piece > 0 {
            assert_eq!(w32(&mut d, CTRL_START, NEXT_CHUNK), None);
            assert_eq!(r32(&mut d, CTRL_START), 0);
        }
        let n = (700 - got.len()).min(256);
        got.extend(window_read(&mut d, 0, n));
    }
    assert_eq!(got, rsp);
    assert_eq!(d.held_bytes(), 0, "fully read: released");
    assert!(
        window_read(&mut d, 0, 256).iter().all(|&b| b == 0),
        "no old bytes remain"
    );
}

#[test]
fn rsp_retry_rewinds_to_the_first_byte() {
    let mut d = device(256, 4096, ChunkPolicy::Auto);
    let (token, _, _) = execute(send(&mut d, &command(20, 0)));
    let rsp = patterned(600, 1);
    d.complete(token, Ok(&rsp));
    assert_eq!(window_read(&mut d, 0, 256), rsp[..256]);
    w32(&mut d, CTRL_START, NEXT_CHUNK);
    assert_eq!(window_read(&mut d, 0, 256), rsp[256..512]);
    w32(&mut d, CTRL_START, RSP_RETRY);
    assert_eq!(
        r32(&mut d, CTRL_START),
        0,
        "crbRspRetry reads back 0 at once"
    );
    assert_eq!(window_read(&mut d, 0, 256), rsp[..256]);
    w32(&mut d, CTRL_START, NEXT_CHUNK);
    w32(&mut d, CTRL_START, NEXT_CHUNK);
    assert_eq!(window_read(&mut d, 0, 88), rsp[512..]);
}

#[test]
fn start_wins_over_next_chunk() {
    let mut d = device(256, 4096, ChunkPolicy::Auto);
    let cmd = command(100, 5);
    window_write(&mut d, 0, &cmd);
    let (_, _, got) = execute(w32(&mut d, CTRL_START, START | NEXT_CHUNK));
    assert_eq!(got, cmd);
    assert_eq!(d.stats().command_pieces, 1);
}

#[test]
fn header_below_ten_is_fatal_and_empties_buffers() {
    for size in [0u32, 9] {
        let mut d = device(256, 4096, ChunkPolicy::Auto);
        // A first piece of a real command, then a second piece whose header lies.
        let mut bad = command(300, 0);
        bad[2..6].copy_from_slice(&size.to_be_bytes());
        window_write(&mut d, 0, &bad[..256]);
        assert_eq!(w32(&mut d, CTRL_START, NEXT_CHUNK), None);
        assert_eq!(r32(&mut d, CTRL_STS) & 1, 1, "tpmSts");
        assert_eq!(r32(&mut d, CTRL_START), 0, "Start and nextChunk clear");
        assert_eq!(d.held_bytes(), 0);
        // Start is refused while fatal.
        window_write(&mut d, 0, &command(12, 0));
        assert_eq!(w32(&mut d, CTRL_START, START), None);
        d.reset();
        assert_eq!(r32(&mut d, CTRL_STS), 2, "reset clears tpmSts");
    }
}

#[test]
fn start_from_a_locality_that_is_not_active_is_ignored() {
    let mut d = device(256, 4096, ChunkPolicy::Auto);
    window_write(&mut d, 0, &command(12, 0));
    assert_eq!(w32(&mut d, 0x1000 + CTRL_START, START), None);
    assert_eq!(w32(&mut d, 0x1000 + CTRL_START, NEXT_CHUNK), None);
    assert_eq!(r32(&mut d, CTRL_START), 0);
    assert_eq!(d.stats().command_pieces, 0);
    // Writes to the window from another locality are dropped, reads see zeros.
    d.write(0x1000 + WINDOW, &[0xFF; 4]);
    assert_eq!(window_read(&mut d, 0, 4), command(12, 0)[..4]);
    assert_eq!(window_read(&mut d, 1, 4), [0; 4]);
    let (_, locality, _) = execute(w32(&mut d, CTRL_START, START));
    assert_eq!(locality, 0);
}

#[test]
fn start_while_executing_is_ignored() {
    let mut d = device(256, 4096, ChunkPolicy::Auto);
    let (token, _, _) = execute(send(&mut d, &command(12, 0)));
    assert_eq!(w32(&mut d, CTRL_START, START), None);
    assert_eq!(w32(&mut d, CTRL_START, NEXT_CHUNK), None);
    assert_eq!(w32(&mut d, CTRL_REQ, 2), None);
    assert_eq!(r32(&mut d, CTRL_STS), 0, "goIdle waits for the command");
    assert_eq!(
        d.complete(token, Ok(&patterned(10, 0))),
        Completion::Delivered
    );
}

#[test]
fn chunk_bits_are_ignored_when_the_capability_is_off() {
    let mut d = device(256, 4096, ChunkPolicy::Off);
    assert_eq!(r32(&mut d, INTF_ID) & (1 << 10), 0);
    let cmd = command(300, 0);
    window_write(&mut d, 0, &cmd[..256]);
    assert_eq!(w32(&mut d, CTRL_START, NEXT_CHUNK), None);
    assert_eq!(d.stats().command_pieces, 0, "nextChunk ignored");
    // Start with a header larger than the window: the device answers COMMAND_SIZE.
    assert_eq!(w32(&mut d, CTRL_START, START), None);
    assert_eq!(
        window_read(&mut d, 0, 10),
        vtpm_wire::error_response(vtpm_wire::ResponseCode::COMMAND_SIZE)
    );
    assert_eq!(w32(&mut d, CTRL_START, RSP_RETRY), None);
    assert_eq!(d.stats().response_pieces, 1, "crbRspRetry ignored");
}

#[test]
fn oversize_command_is_answered_by_the_device_without_holding_it() {
    let mut d = device(256, 1024, ChunkPolicy::On);
    let cmd = command(5000, 0);
    assert_eq!(send(&mut d, &cmd), None, "never forwarded");
    assert_eq!(d.stats().commands_refused, 1);
    assert!(d.held_bytes() <= 1024);
    let answer = window_read(&mut d, 0, 10);
    assert_eq!(answer, [0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0x01, 0x42]);
    // The next command goes through normally.
    w32(&mut d, CTRL_REQ, 1);
    let (_, _, got) = execute(send(&mut d, &command(500, 2)));
    assert_eq!(got.len(), 500);
}

#[test]
fn start_before_the_last_piece_is_answered_command_size() {
    let mut d = device(256, 4096, ChunkPolicy::On);
    window_write(&mut d, 0, &command(600, 0)[..256]);
    assert_eq!(w32(&mut d, CTRL_START, START), None);
    assert_eq!(window_read(&mut d, 0, 10)[6..], [0, 0, 0x01, 0x42]);
}

#[test]
fn backend_failure_sets_tpm_sts() {
    let mut d = device(256, 4096, ChunkPolicy::Auto);
    let (token, _, _) = execute(send(&mut d, &command(12, 0)));
    assert_eq!(d.complete(token, Err(BackendFailed)), Completion::Fatal);
    assert_eq!(r32(&mut d, CTRL_STS) & 1, 1);
    assert_eq!(r32(&mut d, CTRL_START), 0);
    assert_eq!(d.held_bytes(), 0);
}

#[test]
fn undeliverable_responses_are_backend_failures() {
    for bad in [vec![0x80, 0x01, 0, 0], patterned(5000, 0), {
        let mut r = patterned(40, 0);
        r[5] = 41;
        r
    }] {
        let mut d = device(256, 4096, ChunkPolicy::Auto);
        let (token, _, _) = execute(send(&mut d, &command(12, 0)));
        assert_eq!(
            d.complete(token, Ok(&bad)),
            Completion::Fatal,
            "{} bytes",
            bad.len()
        );
    }
}

#[test]
fn stale_completion_after_reset_is_dropped() {
    let mut d = device(256, 4096, ChunkPolicy::Auto);
    let (old, _, _) = execute(send(&mut d, &command(12, 0)));
    d.reset();
    take_locality(&mut d, 0);
    let (new, _, _) = execute(send(&mut d, &command(12, 1)));
    assert_ne!(old, new);
    assert_eq!(d.complete(old, Ok(&patterned(10, 0))), Completion::Stale);
    assert_eq!(r32(&mut d, CTRL_START), START, "the new command still runs");
    assert_eq!(
        d.complete(new, Ok(&patterned(12, 0))),
        Completion::Delivered
    );
    assert_eq!(
        d.complete(new, Ok(&patterned(12, 0))),
        Completion::Stale,
        "only once"
    );
}

#[test]
fn cancel_is_requested_once_and_the_command_still_completes() {
    let mut d = device(256, 4096, ChunkPolicy::Auto);
    assert_eq!(w32(&mut d, CTRL_CANCEL, 1), None, "nothing to cancel");
    w32(&mut d, CTRL_CANCEL, 0);
    let (token, _, _) = execute(send(&mut d, &command(12, 0)));
    assert_eq!(
        w32(&mut d, 0x1000 + CTRL_CANCEL, 1),
        None,
        "not from another locality"
    );
    assert_eq!(
        w32(&mut d, CTRL_CANCEL, 1),
        Some(OwnedAction::Cancel(token)),
        "the cancel names the execution it is for"
    );
    assert_eq!(w32(&mut d, CTRL_CANCEL, 1), None);
    assert_eq!(r32(&mut d, CTRL_CANCEL), 1);
    let canceled = vtpm_wire::error_response(vtpm_wire::ResponseCode::CANCELED);
    assert_eq!(d.complete(token, Ok(&canceled)), Completion::Delivered);
    assert_eq!(window_read(&mut d, 0, 10), canceled);
    assert_eq!(r32(&mut d, CTRL_CANCEL), 0);
}

#[test]
fn response_is_never_visible_to_another_locality() {
    let mut d = device(256, 4096, ChunkPolicy::Auto);
    let (token, _, _) = execute(send(&mut d, &command(12, 0)));
    // Locality 4 seizes while the command runs: the response is dropped.
    w32(&mut d, 0x4000 + LOC_CTRL, 4);
    assert_eq!(
        d.complete(token, Ok(&patterned(100, 7))),
        Completion::Discarded
    );
    assert!(window_read(&mut d, 4, 256).iter().all(|&b| b == 0));
    assert_eq!(d.held_bytes(), 0);
    // A delivered response is zeroed when the locality changes.
    let (token, _, _) = {
        let cmd = command(12, 0);
        window_write(&mut d, 4, &cmd);
        execute(w32(&mut d, 0x4000 + CTRL_START, START))
    };
    d.complete(token, Ok(&patterned(100, 7)));
    w32(&mut d, 0x4000 + LOC_CTRL, 2);
    take_locality(&mut d, 1);
    assert!(window_read(&mut d, 1, 256).iter().all(|&b| b == 0));
    assert_eq!(d.held_bytes(), 0);
}

#[test]
fn go_idle_and_cmd_ready_zero_the_buffers() {
    for req in [1u32, 2] {
        let mut d = device(256, 4096, ChunkPolicy::Auto);
        let (token, _, _) = execute(send(&mut d, &command(12, 0)));
        d.complete(token, Ok(&patterned(600, 7)));
        assert_eq!(d.held_bytes(), 600);
        w32(&mut d, CTRL_REQ, req);
        assert_eq!(d.held_bytes(), 0);
        assert!(window_read(&mut d, 0, 256).iter().all(|&b| b == 0));
    }
}

#[test]
fn a_new_command_may_follow_a_fully_served_response_without_cmd_ready() {
    let mut d = device(256, 4096, ChunkPolicy::Auto);
    let (token, _, _) = execute(send(&mut d, &command(12, 0)));
    d.complete(token, Ok(&patterned(300, 1)));
    w32(&mut d, CTRL_START, NEXT_CHUNK);
    // The response is fully served (not yet read); nextChunk now starts a command.
    let cmd = command(400, 4);
    let (_, _, got) = execute(send(&mut d, &cmd));
    assert_eq!(got, cmd);
}

#[test]
fn next_chunk_after_the_last_response_piece_takes_no_response_byte_as_a_command() {
    let mut d = device(256, 4096, ChunkPolicy::Auto);
    let (token, _, _) = execute(send(&mut d, &command(12, 0)));
    // A one-piece response whose header declares 200 bytes: read as a
    // command header it would start a 200-byte command.
    let rsp = patterned(200, 5);
    d.complete(token, Ok(&rsp));
    window_read(&mut d, 0, 100);
    assert_eq!(w32(&mut d, CTRL_START, NEXT_CHUNK), None);
    assert_eq!(
        d.held_bytes(),
        0,
        "the response is released, nothing received"
    );
    assert!(
        window_read(&mut d, 0, 256).iter().all(|&b| b == 0),
        "the window is zeroed with the response"
    );
    // Start now finds an empty window: a malformed header, not the response.
    assert_eq!(w32(&mut d, CTRL_START, START), None);
    assert_eq!(r32(&mut d, CTRL_STS) & 1, 1);
    assert_eq!(d.stats().commands_executed, 1);
}

#[test]
fn start_under_an_unread_response_never_forwards_response_bytes() {
    let mut d = device(256, 4096, ChunkPolicy::Auto);
    let (token, _, _) = execute(send(&mut d, &command(12, 0)));
    d.complete(token, Ok(&patterned(60, 5)));
    window_read(&mut d, 0, 10);
    assert_eq!(w32(&mut d, CTRL_START, START), None, "nothing is forwarded");
    assert_eq!(d.stats().commands_executed, 1);
    assert_eq!(d.held_bytes(), 0);
}

#[test]
fn a_command_written_under_an_unread_response_picks_up_none_of_its_bytes() {
    let mut d = device(256, 4096, ChunkPolicy::Auto);
    let (token, _, _) = execute(send(&mut d, &command(12, 0)));
    let rsp = patterned(250, 5);
    d.complete(token, Ok(&rsp));
    window_read(&mut d, 0, 10);
    // The guest gives up on the response and writes 40 bytes of a command
    // whose header says 100: the other 60 come from the window.
    let mut cmd = command(40, 6);
    cmd[2..6].copy_from_slice(&100u32.to_be_bytes());
    window_write(&mut d, 0, &cmd);
    let (_, _, got) = execute(w32(&mut d, CTRL_START, START));
    assert_eq!(got.len(), 100);
    assert_eq!(got[..40], cmd[..]);
    assert!(
        got[40..].iter().all(|&b| b == 0),
        "response bytes joined the command"
    );
}

#[test]
fn one_access_over_cancel_and_start_yields_one_action() {
    let mut d = device(256, 4096, ChunkPolicy::Auto);
    window_write(&mut d, 0, &command(12, 1));
    // CANCEL=1 and START=1 in one 8-byte write while idle: the cancel has
    // nothing to cancel, the Start runs.
    let both = 1u64 | (1u64 << 32);
    let action = d
        .write(CTRL_CANCEL, &both.to_le_bytes())
        .map(OwnedAction::from);
    let (token, _, got) = execute(action);
    assert_eq!(got, command(12, 1));
    w32(&mut d, CTRL_CANCEL, 0);
    // The same write while executing: only the cancel, for that execution.
    let action = d
        .write(CTRL_CANCEL, &both.to_le_bytes())
        .map(OwnedAction::from);
    assert_eq!(action, Some(OwnedAction::Cancel(token)));
    assert_eq!(d.stats().commands_executed, 1);
}
