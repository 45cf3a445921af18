//! Transcripts: every state transition of the FIFO interface, and the
//! exact access sequence of Linux's tpm_tis_core.

mod common;

use common::*;
use vtpm_tis::{BackendFailed, Completion, TisConfig, TisDevice};

const STARTUP: [u8; 12] = [0x80, 0x01, 0, 0, 0, 0x0C, 0, 0, 0x01, 0x44, 0, 0];
const STARTUP_OK: [u8; 10] = [0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0, 0];

fn device(buffer: usize) -> TisDevice {
    TisDevice::new(TisConfig {
        backend_buffer: buffer,
        ..TisConfig::default()
    })
    .unwrap()
}

fn sts(d: &mut TisDevice, l: u8) -> u8 {
    r8(d, page(l) + STS)
}

#[test]
fn idle_ready_reception_execution_completion_ready() {
    let mut d = device(4096);
    take_locality(&mut d, 0);
    assert_eq!(sts(&mut d, 0), 0, "idle");
    assert_eq!(burst(&mut d, 0), 0, "idle takes no bytes");

    assert_eq!(w8(&mut d, STS, STS_READY), None);
    assert_eq!(sts(&mut d, 0), STS_READY, "ready");
    assert_eq!(burst(&mut d, 0), 4096, "the whole buffer is free");

    assert!(d.write(FIFO, &STARTUP[..1]).is_none());
    assert_eq!(
        sts(&mut d, 0),
        STS_VALID | STS_EXPECT,
        "reception, header incomplete"
    );
    assert_eq!(burst(&mut d, 0), 4095);
    assert!(d.write(FIFO, &STARTUP[1..5]).is_none());
    assert!(d.write(XFIFO, &STARTUP[5..11]).is_none());
    assert_eq!(sts(&mut d, 0), STS_VALID | STS_EXPECT, "one byte still due");
    assert_eq!(burst(&mut d, 0), 4096 - 11);
    assert!(d.write(FIFO, &STARTUP[11..]).is_none());
    assert_eq!(
        sts(&mut d, 0),
        STS_VALID,
        "Expect clears with the last byte"
    );
    assert_eq!(burst(&mut d, 0), 0);

    let token = match w8(&mut d, STS, STS_GO) {
        Some(OwnedAction::Execute {
            token,
            locality: 0,
            command,
        }) => {
            assert_eq!(command, STARTUP);
            token
        }
        other => panic!("{other:?}"),
    };
    assert!(d.is_executing());
    assert_eq!(sts(&mut d, 0), STS_VALID, "execution");
    assert_eq!(burst(&mut d, 0), 0);
    assert_eq!(r8(&mut d, FIFO), 0xFF, "nothing to read yet");
    assert!(d.write(FIFO, &[1, 2, 3]).is_none(), "writes are dropped");

    assert_eq!(d.complete(token, Ok(&STARTUP_OK)), Completion::Delivered);
    assert_eq!(sts(&mut d, 0), STS_VALID | STS_DATA_AVAIL, "completion");
    assert_eq!(burst(&mut d, 0), 10);
    assert_eq!(fifo_read(&mut d, 0, 4), STARTUP_OK[..4]);
    assert_eq!(burst(&mut d, 0), 6, "burstCount counts down");
    assert_eq!(fifo_read(&mut d, 0, 6), STARTUP_OK[4..]);
    assert_eq!(
        sts(&mut d, 0),
        STS_VALID,
        "dataAvail clears after the last byte"
    );
    assert_eq!(r8(&mut d, FIFO), 0xFF);

    assert_eq!(w8(&mut d, STS, STS_RETRY), None);
    assert_eq!(
        sts(&mut d, 0),
        STS_VALID | STS_DATA_AVAIL,
        "responseRetry rewinds"
    );
    assert_eq!(fifo_read(&mut d, 0, 10), STARTUP_OK);

    assert_eq!(d.held_bytes(), 10, "the response stays until commandReady");
    assert_eq!(w8(&mut d, STS, STS_READY), None);
    assert_eq!(sts(&mut d, 0), STS_READY);
    assert_eq!(d.held_bytes(), 0, "commandReady ends the transaction");
}

#[test]
fn command_ready_during_reception_drops_the_bytes() {
    let mut d = device(4096);
    take_locality(&mut d, 0);
    w8(&mut d, STS, STS_READY);
    fifo_write(&mut d, 0, &STARTUP[..7]);
    assert_eq!(d.held_bytes(), 7);
    w8(&mut d, STS, STS_READY);
    assert_eq!(d.held_bytes(), 0);
    assert_eq!(sts(&mut d, 0), STS_READY);
    assert_eq!(burst(&mut d, 0), 4096);
}

#[test]
fn tpm_go_while_expect_is_set_is_ignored() {
    let mut d = device(4096);
    take_locality(&mut d, 0);
    w8(&mut d, STS, STS_READY);
    fifo_write(&mut d, 0, &STARTUP[..11]);
    assert_eq!(w8(&mut d, STS, STS_GO), None);
    assert!(!d.is_executing());
    assert_eq!(sts(&mut d, 0), STS_VALID | STS_EXPECT);
}

#[test]
fn fifo_writes_before_command_ready_are_dropped() {
    let mut d = device(4096);
    take_locality(&mut d, 0);
    fifo_write(&mut d, 0, &STARTUP);
    assert_eq!(d.held_bytes(), 0);
    assert_eq!(sts(&mut d, 0), 0);
}

#[test]
fn a_command_larger_than_the_buffer_drops_expect_and_is_answered_command_size() {
    let mut d = device(4096);
    take_locality(&mut d, 0);
    w8(&mut d, STS, STS_READY);
    let big = command(5000, 1);
    fifo_write(&mut d, 0, &big[..64]);
    assert_eq!(
        sts(&mut d, 0),
        STS_VALID,
        "Expect drops once the size is known"
    );
    assert_eq!(burst(&mut d, 0), 0, "nothing more is promised");
    assert_eq!(d.held_bytes(), 6, "bytes after the size field are not kept");
    fifo_write(&mut d, 0, &big[64..]);
    assert_eq!(d.held_bytes(), 6);
    assert_eq!(w8(&mut d, STS, STS_GO), None, "nothing is forwarded");
    assert_eq!(sts(&mut d, 0), STS_VALID | STS_DATA_AVAIL);
    assert_eq!(
        fifo_read(&mut d, 0, 10),
        [0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0x01, 0x42]
    );
    assert_eq!(d.stats().commands_refused, 1);
    assert_eq!(d.stats().commands_executed, 0);
}

#[test]
fn a_header_size_below_ten_is_answered_command_size() {
    let mut d = device(4096);
    take_locality(&mut d, 0);
    w8(&mut d, STS, STS_READY);
    fifo_write(&mut d, 0, &[0x80, 0x01, 0, 0, 0, 0x04]);
    assert_eq!(sts(&mut d, 0), STS_VALID);
    assert_eq!(w8(&mut d, STS, STS_GO), None);
    assert_eq!(fifo_read(&mut d, 0, 10)[6..], [0, 0, 0x01, 0x42]);
}

#[test]
fn a_command_that_fills_the_buffer_exactly_is_forwarded() {
    let mut d = device(4096);
    let c = command(4096, 3);
    let token = start(&mut d, 0, &c);
    assert_eq!(d.complete(token, Ok(&c)), Completion::Delivered);
    assert_eq!(burst(&mut d, 0), 4096);
    assert_eq!(fifo_read(&mut d, 0, 4096), c);
}

#[test]
fn command_ready_during_execution_cancels_and_discards_the_response() {
    let mut d = device(4096);
    let token = start(&mut d, 0, &STARTUP);
    assert_eq!(w8(&mut d, STS, STS_READY), Some(OwnedAction::Cancel(token)));
    assert_eq!(w8(&mut d, STS, STS_READY), None, "one cancel per execution");
    assert_eq!(
        sts(&mut d, 0),
        STS_VALID,
        "not ready until the command ends"
    );
    assert_eq!(d.complete(token, Ok(&STARTUP_OK)), Completion::Discarded);
    assert_eq!(sts(&mut d, 0), STS_READY);
    assert_eq!(d.held_bytes(), 0);
    assert_eq!(r8(&mut d, FIFO), 0xFF);
}

#[test]
fn command_cancel_asks_the_backend_once_and_the_response_still_arrives() {
    let mut d = device(4096);
    let token = start(&mut d, 0, &STARTUP);
    assert_eq!(
        w32(&mut d, STS, STS_CANCEL),
        Some(OwnedAction::Cancel(token))
    );
    assert_eq!(w32(&mut d, STS, STS_CANCEL), None);
    let canceled = [0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0x09, 0x09];
    assert_eq!(d.complete(token, Ok(&canceled)), Completion::Delivered);
    assert_eq!(fifo_read(&mut d, 0, 10), canceled);
}

#[test]
fn command_cancel_outside_execution_does_nothing() {
    let mut d = device(4096);
    take_locality(&mut d, 0);
    w8(&mut d, STS, STS_READY);
    assert_eq!(w32(&mut d, STS, STS_CANCEL), None);
    assert_eq!(sts(&mut d, 0), STS_READY);
}

#[test]
fn a_backend_failure_is_answered_with_tpm_rc_failure() {
    let mut d = device(4096);
    let token = start(&mut d, 0, &STARTUP);
    assert_eq!(d.complete(token, Err(BackendFailed)), Completion::Failed);
    assert_eq!(
        fifo_read(&mut d, 0, 10),
        [0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0x01, 0x01]
    );
    assert_eq!(d.stats().backend_failures, 1);
}

#[test]
fn an_undeliverable_response_is_answered_with_tpm_rc_failure() {
    for bad in [vec![0x80, 0x01, 0, 0], patterned(5000, 1), {
        let mut lying = patterned(64, 2);
        lying[5] = 63;
        lying
    }] {
        let mut d = device(4096);
        let token = start(&mut d, 0, &STARTUP);
        assert_eq!(d.complete(token, Ok(&bad)), Completion::Failed);
        assert_eq!(burst(&mut d, 0), 10);
    }
}

#[test]
fn a_completion_after_reset_is_stale_and_the_device_is_idle() {
    let mut d = device(4096);
    let token = start(&mut d, 0, &STARTUP);
    d.reset();
    assert_eq!(d.complete(token, Ok(&STARTUP_OK)), Completion::Stale);
    assert_eq!(d.active_locality(), None);
    assert_eq!(d.held_bytes(), 0);
    let again = start(&mut d, 0, &STARTUP);
    assert_ne!(again, token, "tokens keep counting across a reset");
}

#[test]
fn complete_swap_takes_the_buffer_and_hands_back_an_empty_one() {
    let mut d = device(4096);
    let token = start(&mut d, 0, &STARTUP);
    let mut rsp = STARTUP_OK.to_vec();
    assert_eq!(d.complete_swap(token, Ok(&mut rsp)), Completion::Delivered);
    assert!(rsp.is_empty());
    assert_eq!(fifo_read(&mut d, 0, 10), STARTUP_OK);
    w8(&mut d, STS, STS_READY);
    // The swapped-in buffer was small; the next command still fits whole.
    let c = command(4096, 9);
    let token = start(&mut d, 0, &c);
    assert_eq!(
        d.executing_command().map(|a| format!("{a:?}")).unwrap(),
        format!("Execute {{ token: {token:?}, locality: 0, command_len: 4096 }}")
    );
}

#[test]
fn reset_establishment_is_honoured_from_localities_3_and_4_once_at_a_time() {
    let mut d = device(4096);
    take_locality(&mut d, 0);
    assert_eq!(w32(&mut d, STS, STS_RESET_ESTABLISHMENT), None);
    w8(&mut d, ACCESS, ACCESS_ACTIVE);
    take_locality(&mut d, 3);
    assert_eq!(
        w32(&mut d, page(3) + STS, STS_RESET_ESTABLISHMENT),
        Some(OwnedAction::ResetEstablished(3))
    );
    assert_eq!(
        w32(&mut d, page(3) + STS, STS_RESET_ESTABLISHMENT),
        None,
        "one at a time"
    );
    d.set_established(false);
    assert_eq!(
        w32(&mut d, page(3) + STS, STS_RESET_ESTABLISHMENT),
        Some(OwnedAction::ResetEstablished(3))
    );
}

#[test]
fn self_test_done_is_set_by_a_successful_self_test_and_cleared_by_reset() {
    let mut d = device(4096);
    let self_test = [0x80, 0x01, 0, 0, 0, 0x0B, 0, 0, 0x01, 0x43, 1];
    let token = start(&mut d, 0, &self_test);
    d.complete(token, Ok(&[0x80, 0x01, 0, 0, 0, 0x0A, 0, 0, 0x01, 0x01]));
    assert_eq!(sts(&mut d, 0) & STS_SELF_TEST_DONE, 0, "a failed self test");
    w8(&mut d, STS, STS_READY);
    fifo_write(&mut d, 0, &self_test);
    let token = match w8(&mut d, STS, STS_GO) {
        Some(OwnedAction::Execute { token, .. }) => token,
        other => panic!("{other:?}"),
    };
    d.complete(token, Ok(&STARTUP_OK));
    assert_eq!(sts(&mut d, 0) & STS_SELF_TEST_DONE, STS_SELF_TEST_DONE);
    w8(&mut d, ACCESS, ACCESS_ACTIVE);
    take_locality(&mut d, 1);
    assert_eq!(
        sts(&mut d, 1) & STS_SELF_TEST_DONE,
        STS_SELF_TEST_DONE,
        "a TPM-wide flag"
    );
    d.reset();
    take_locality(&mut d, 1);
    assert_eq!(sts(&mut d, 1), 0);
}

#[test]
fn only_one_of_ready_go_and_retry_written_together_acts() {
    let mut d = device(4096);
    take_locality(&mut d, 0);
    assert_eq!(w8(&mut d, STS, STS_READY | STS_GO), None);
    assert_eq!(sts(&mut d, 0), 0, "a combined write is ignored");
}

#[test]
fn interrupts_follow_int_enable_and_clear_by_writing_one() {
    let mut d = device(4096);
    take_locality(&mut d, 0);
    // dataAvail, stsValid, localityChange, commandReady, global.
    w32(&mut d, INT_ENABLE, 0x8000_0087);
    assert!(!d.interrupt_pending());
    w8(&mut d, STS, STS_READY);
    assert_eq!(r32(&mut d, INT_STATUS), 0x80, "commandReady");
    assert!(d.interrupt_pending());
    w32(&mut d, INT_STATUS, 0x80);
    assert!(!d.interrupt_pending());
    fifo_write(&mut d, 0, &STARTUP);
    assert_eq!(r32(&mut d, INT_STATUS), 0x02, "stsValid when Expect drops");
    w32(&mut d, INT_STATUS, 0x02);
    let token = match w8(&mut d, STS, STS_GO) {
        Some(OwnedAction::Execute { token, .. }) => token,
        other => panic!("{other:?}"),
    };
    d.complete(token, Ok(&STARTUP_OK));
    assert_eq!(r32(&mut d, INT_STATUS), 0x03, "dataAvail and stsValid");
    w32(&mut d, INT_ENABLE, 0x87);
    assert!(!d.interrupt_pending(), "the global enable masks the line");
    w32(&mut d, INT_ENABLE, 0x8000_0087);
    assert!(d.interrupt_pending());
    w32(&mut d, INT_STATUS, 0xFFFF_FFFF);
    assert!(!d.interrupt_pending());
}

#[test]
fn events_set_no_interrupt_status_while_disabled() {
    let mut d = device(4096);
    take_locality(&mut d, 0);
    w32(&mut d, INT_ENABLE, 0x87);
    let token = start(&mut d, 0, &STARTUP);
    d.complete(token, Ok(&STARTUP_OK));
    assert_eq!(r32(&mut d, INT_STATUS), 0, "no global enable");
    w32(&mut d, INT_ENABLE, 0x8000_0001);
    w8(&mut d, STS, STS_READY);
    assert_eq!(r32(&mut d, INT_STATUS), 0, "commandReady is not enabled");
    assert!(!d.interrupt_pending());
}

#[test]
fn debug_output_shows_lengths_never_bytes() {
    let mut d = device(4096);
    let token = start(&mut d, 0, &STARTUP);
    d.complete(token, Ok(&STARTUP_OK));
    let shown = format!("{d:?}");
    assert!(shown.contains("held_bytes: 10"), "{shown}");
    assert!(!shown.contains('['), "no byte array in {shown}");
}

#[test]
fn a_locality_change_raises_the_new_localitys_interrupt() {
    let mut d = device(4096);
    take_locality(&mut d, 1);
    w32(&mut d, page(1) + INT_ENABLE, 0x8000_0004);
    w8(&mut d, page(1) + ACCESS, ACCESS_ACTIVE);
    take_locality(&mut d, 1);
    assert_eq!(r32(&mut d, page(1) + INT_STATUS), 0x04);
    assert!(d.interrupt_pending());
}

/// One step of a recorded transcript: an access and what it must give.
enum Step {
    R8(u64, u8),
    R32(u64, u32),
    W8(u64, u8),
    /// Write and expect an Execute of the bytes written so far.
    Go(u64),
    Complete(&'static [u8]),
    Fifo8Write(u64, &'static [u8]),
    Fifo8Read(u64, &'static [u8]),
}

/// The accesses Linux's tpm_tis_core makes for one TPM2_Startup at
/// locality 0, on a polled (no IRQ) device: request_locality,
/// tpm_tis_send_data (status, commandReady, burstCount, bytes, the Expect
/// checks, the last byte), tpmGo, tpm_tis_recv (dataAvail, burstCount, the
/// header, the stsValid check, no data left), tpm_tis_ready and
/// release_locality. FIFO bytes move one per 8-bit access.
#[test]
fn linux_tpm_tis_core_sequence_for_one_command() {
    use Step::*;
    let transcript = [
        R8(ACCESS, 0x81),      // check_locality: not active
        W8(ACCESS, 0x02),      // requestUse
        R8(ACCESS, 0xA1),      // active | valid
        R8(STS, 0x00),         // tpm_tis_status: not commandReady
        W8(STS, 0x40),         // tpm_tis_ready
        R8(STS, 0x40),         // wait_for_tpm_stat(commandReady)
        R32(STS, 0x0410_0040), // get_burstcount: 4096 free
        Fifo8Write(FIFO, &STARTUP[..11]),
        R8(STS, 0x88), // stsValid | Expect: more is due
        R8(STS, 0x88),
        Fifo8Write(FIFO, &STARTUP[11..]),
        R8(STS, 0x80), // stsValid
        R8(STS, 0x80), // Expect clear
        Go(STS),       // tpmGo
        Complete(&STARTUP_OK),
        R8(STS, 0x90),         // wait dataAvail | stsValid
        R32(STS, 0x0400_0A90), // get_burstcount: 10
        Fifo8Read(FIFO, &STARTUP_OK),
        R8(STS, 0x80), // wait stsValid
        R8(STS, 0x80), // no data left
        W8(STS, 0x40), // tpm_tis_ready
        R8(STS, 0x40),
        W8(ACCESS, 0x20), // release_locality
        R8(ACCESS, 0x81),
    ];
    let mut d = device(4096);
    let mut token = None;
    for (i, step) in transcript.iter().enumerate() {
        match *step {
            R8(off, want) => assert_eq!(r8(&mut d, off), want, "step {i}"),
            R32(off, want) => assert_eq!(r32(&mut d, off), want, "step {i}"),
            W8(off, v) => assert_eq!(w8(&mut d, off, v), None, "step {i}"),
            Go(off) => match w8(&mut d, off, STS_GO) {
                Some(OwnedAction::Execute {
                    token: t, command, ..
                }) => {
                    assert_eq!(command, STARTUP);
                    token = Some(t);
                }
                other => panic!("step {i}: {other:?}"),
            },
            Complete(rsp) => {
                assert_eq!(
                    d.complete(token.take().unwrap(), Ok(rsp)),
                    Completion::Delivered
                )
            }
            Fifo8Write(off, bytes) => {
                for &b in bytes {
                    assert_eq!(w8(&mut d, off, b), None, "step {i}");
                }
            }
            Fifo8Read(off, bytes) => {
                for &b in bytes {
                    assert_eq!(r8(&mut d, off), b, "step {i}");
                }
            }
        }
    }
    assert_eq!(d.held_bytes(), 0);
}
