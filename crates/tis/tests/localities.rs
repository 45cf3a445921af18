//! Locality arbitration (PTP): request, pending requests, relinquish,
//! seize and beenSeized; a locality without access sees STS as all ones
//! and cannot touch the FIFO; no byte crosses localities.

mod common;

use common::*;
use vtpm_tis::{Completion, TisConfig, TisDevice};

const STARTUP: [u8; 12] = [0x80, 0x01, 0, 0, 0, 0x0C, 0, 0, 0x01, 0x44, 0, 0];

fn device() -> TisDevice {
    TisDevice::new(TisConfig::default()).unwrap()
}

fn access(d: &mut TisDevice, l: u8) -> u8 {
    r8(d, page(l) + ACCESS)
}

#[test]
fn a_locality_without_access_reads_sts_as_all_ones_and_cannot_touch_the_fifo() {
    let mut d = device();
    take_locality(&mut d, 0);
    w8(&mut d, STS, STS_READY);
    for width in [1usize, 2, 4, 8] {
        let mut b = vec![0u8; width];
        d.read(page(1) + STS, &mut b);
        assert!(b.iter().all(|&x| x == 0xFF), "width {width}: {b:?}");
    }
    assert!(d.write(page(1) + FIFO, &STARTUP[..4]).is_none());
    assert!(d.write(page(1) + XFIFO, &STARTUP).is_none());
    assert_eq!(d.held_bytes(), 0, "the bytes were dropped");
    assert_eq!(w8(&mut d, page(1) + STS, STS_GO), None);
    assert_eq!(
        r8(&mut d, STS),
        STS_READY,
        "locality 1's STS writes are ignored"
    );
    let c = command(64, 7);
    let token = start(&mut d, 0, &c);
    d.complete(token, Ok(&c));
    assert_eq!(
        fifo_read(&mut d, 1, 64),
        vec![0xFF; 64],
        "no byte of locality 0's response"
    );
    assert_eq!(fifo_read(&mut d, 0, 64), c, "and none was consumed");
}

#[test]
fn a_request_while_another_locality_is_active_waits_and_shows_pending() {
    let mut d = device();
    take_locality(&mut d, 0);
    w8(&mut d, page(2) + ACCESS, ACCESS_REQUEST_USE);
    assert_eq!(
        access(&mut d, 2),
        ACCESS_VALID | ACCESS_REQUEST_USE | ACCESS_ESTABLISHMENT
    );
    assert_eq!(access(&mut d, 0) & ACCESS_PENDING, ACCESS_PENDING);
    assert_eq!(
        access(&mut d, 2) & ACCESS_PENDING,
        0,
        "its own request is not 'another'"
    );
    w8(&mut d, ACCESS, ACCESS_ACTIVE);
    assert_eq!(d.active_locality(), Some(2));
    assert_eq!(
        access(&mut d, 2),
        ACCESS_VALID | ACCESS_ACTIVE | ACCESS_ESTABLISHMENT
    );
    assert_eq!(access(&mut d, 0), ACCESS_VALID | ACCESS_ESTABLISHMENT);
}

#[test]
fn relinquish_grants_the_highest_pending_request() {
    let mut d = device();
    take_locality(&mut d, 0);
    for l in [1, 3, 2] {
        w8(&mut d, page(l) + ACCESS, ACCESS_REQUEST_USE);
    }
    w8(&mut d, ACCESS, ACCESS_ACTIVE);
    assert_eq!(d.active_locality(), Some(3));
    w8(&mut d, page(3) + ACCESS, ACCESS_ACTIVE);
    assert_eq!(d.active_locality(), Some(2));
    // A waiting locality may withdraw its request.
    w8(&mut d, page(1) + ACCESS, ACCESS_ACTIVE);
    w8(&mut d, page(2) + ACCESS, ACCESS_ACTIVE);
    assert_eq!(d.active_locality(), None);
}

#[test]
fn a_higher_locality_seizes_and_the_loser_sees_been_seized_until_it_clears_it() {
    let mut d = device();
    take_locality(&mut d, 1);
    w8(&mut d, page(0) + ACCESS, ACCESS_SEIZE);
    assert_eq!(
        d.active_locality(),
        Some(1),
        "a lower locality cannot seize"
    );
    w8(&mut d, page(3) + ACCESS, ACCESS_SEIZE);
    assert_eq!(d.active_locality(), Some(3));
    assert_eq!(
        access(&mut d, 1),
        ACCESS_VALID | ACCESS_BEEN_SEIZED | ACCESS_ESTABLISHMENT
    );
    assert_eq!(access(&mut d, 3) & ACCESS_SEIZE, 0, "Seize reads 0");
    w8(&mut d, page(1) + ACCESS, ACCESS_BEEN_SEIZED);
    assert_eq!(access(&mut d, 1), ACCESS_VALID | ACCESS_ESTABLISHMENT);
}

#[test]
fn a_seize_with_request_use_in_the_same_write_is_only_a_seize() {
    let mut d = device();
    take_locality(&mut d, 2);
    w8(
        &mut d,
        page(4) + ACCESS,
        ACCESS_SEIZE | ACCESS_REQUEST_USE | ACCESS_ACTIVE,
    );
    assert_eq!(d.active_locality(), Some(4));
    assert_eq!(access(&mut d, 4) & ACCESS_REQUEST_USE, 0);
}

#[test]
fn a_seize_mid_reception_zeroes_the_command() {
    let mut d = device();
    take_locality(&mut d, 0);
    w8(&mut d, STS, STS_READY);
    fifo_write(&mut d, 0, &STARTUP[..8]);
    w8(&mut d, page(4) + ACCESS, ACCESS_SEIZE);
    assert_eq!(d.held_bytes(), 0);
    assert_eq!(r8(&mut d, page(4) + STS), 0, "the new locality starts idle");
    assert_eq!(r32(&mut d, STS), u32::MAX);
}

#[test]
fn a_response_for_a_locality_that_lost_the_interface_is_discarded() {
    let mut d = device();
    let c = command(100, 3);
    let token = start(&mut d, 0, &c);
    w8(&mut d, page(4) + ACCESS, ACCESS_SEIZE);
    assert!(d.is_executing(), "the backend still runs it");
    assert_eq!(d.complete(token, Ok(&c)), Completion::Discarded);
    assert_eq!(d.held_bytes(), 0);
    assert_eq!(r8(&mut d, page(4) + STS), 0);
    assert_eq!(fifo_read(&mut d, 4, 100), vec![0xFF; 100]);
    take_locality(&mut d, 4);
    w8(&mut d, page(4) + STS, STS_READY);
    assert_eq!(r8(&mut d, page(4) + STS), STS_READY);
}

#[test]
fn command_ready_from_the_new_locality_waits_for_the_orphaned_command() {
    let mut d = device();
    let token = start(&mut d, 1, &STARTUP);
    w8(&mut d, page(3) + ACCESS, ACCESS_SEIZE);
    assert_eq!(
        w8(&mut d, page(3) + STS, STS_READY),
        Some(OwnedAction::Cancel(token))
    );
    assert_eq!(
        r8(&mut d, page(3) + STS),
        STS_VALID,
        "busy until the command ends"
    );
    assert_eq!(
        d.complete(token, Ok(&[0x80, 1, 0, 0, 0, 10, 0, 0, 0, 0])),
        Completion::Discarded
    );
    assert_eq!(r8(&mut d, page(3) + STS), STS_READY);
}

#[test]
fn a_response_read_half_way_is_gone_after_a_locality_change() {
    let mut d = device();
    let c = command(200, 5);
    let token = start(&mut d, 2, &c);
    d.complete(token, Ok(&c));
    assert_eq!(fifo_read(&mut d, 2, 100), c[..100]);
    w8(&mut d, page(2) + ACCESS, ACCESS_ACTIVE);
    take_locality(&mut d, 1);
    assert_eq!(d.held_bytes(), 0);
    w8(&mut d, page(1) + STS, STS_RETRY);
    assert_eq!(fifo_read(&mut d, 1, 100), vec![0xFF; 100]);
    take_locality(&mut d, 1);
    assert_eq!(r8(&mut d, page(1) + STS), 0);
}
