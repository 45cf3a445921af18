//! Properties: any command and response size up to the buffer moves whole
//! with any burst sizes; arbitrary MMIO never panics, never holds more
//! than the buffer, never shows one locality's bytes to another, and never
//! leaves the device stuck.

mod common;

use common::*;
use proptest::prelude::*;
use vtpm_guest::{FifoAccess, TisDriver};
use vtpm_tis::{BackendFailed, Completion, ExecToken, TisConfig, TisDevice};

/// Writes or reads `n` FIFO bytes in one access: DATA_FIFO takes up to 4,
/// XDATA_FIFO up to 64.
fn fifo_register(n: usize) -> u64 {
    if n <= 4 {
        FIFO
    } else {
        XFIFO
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_size_up_to_the_buffer_moves_whole_in_any_bursts(
        buffer in prop::sample::select(vec![4096usize, 8192]),
        cmd_frac in 0.0f64..=1.0,
        rsp_frac in 0.0f64..=1.0,
        pieces in prop::collection::vec(1usize..=64, 1..64),
        seed in any::<u8>(),
    ) {
        let cmd_size = 10 + ((buffer - 10) as f64 * cmd_frac) as usize;
        let rsp_size = 10 + ((buffer - 10) as f64 * rsp_frac) as usize;
        let mut d = TisDevice::new(TisConfig { backend_buffer: buffer, ..TisConfig::default() }).unwrap();
        take_locality(&mut d, 0);
        w8(&mut d, STS, STS_READY);
        let c = command(cmd_size, seed);
        let mut sent = 0;
        let mut i = 0;
        while sent < c.len() {
            let free = burst(&mut d, 0);
            prop_assert_eq!(free, buffer - sent, "burstCount is the space left");
            let n = pieces[i % pieces.len()].min(free).min(c.len() - sent);
            i += 1;
            prop_assert!(d.write(fifo_register(n), &c[sent..sent + n]).is_none());
            sent += n;
            let sts = r8(&mut d, STS);
            prop_assert_eq!(sts & STS_VALID, STS_VALID);
            prop_assert_eq!(sts & STS_EXPECT != 0, sent < c.len(), "Expect while bytes are due");
        }
        let token = match w8(&mut d, STS, STS_GO) {
            Some(OwnedAction::Execute { token, command, .. }) => {
                prop_assert_eq!(&command, &c);
                token
            }
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        };
        let r = patterned(rsp_size, seed ^ 0x5A);
        prop_assert_eq!(d.complete(token, Ok(&r)), Completion::Delivered);
        let mut got = Vec::new();
        while got.len() < r.len() {
            prop_assert_eq!(burst(&mut d, 0), r.len() - got.len());
            let n = pieces[i % pieces.len()].min(r.len() - got.len());
            i += 1;
            let mut b = vec![0u8; n];
            d.read(fifo_register(n), &mut b);
            got.extend_from_slice(&b);
        }
        prop_assert_eq!(&got, &r);
        prop_assert_eq!(r8(&mut d, STS), STS_VALID);
    }

    #[test]
    fn the_driver_moves_any_size_up_to_the_buffer(
        buffer in prop::sample::select(vec![4096usize, 8192]),
        frac in 0.0f64..=1.0,
        bytes in any::<bool>(),
        seed in any::<u8>(),
    ) {
        let size = 10 + ((buffer - 10) as f64 * frac) as usize;
        let mut bus = InlineBus::new(TisConfig { backend_buffer: buffer, ..TisConfig::default() }, echo);
        let mut driver = TisDriver::new(&mut bus);
        driver.set_fifo_access(if bytes { FifoAccess::Bytes } else { FifoAccess::Wide });
        let c = command(size, seed);
        prop_assert_eq!(driver.transmit(0, &c).unwrap(), c);
        let t = driver.last_transfer();
        // One burst for all but the last byte (the buffer is free), then
        // the last byte; the header, then the rest.
        prop_assert_eq!(t.bursts_sent, 2);
        prop_assert_eq!(t.bursts_received, if size > 10 { 2 } else { 1 });
        prop_assert!(bus.max_held <= buffer);
        prop_assert_eq!(bus.device.held_bytes(), 0);
    }
}

/// One random operation on the device.
#[derive(Debug, Clone)]
enum Op {
    Read {
        offset: u64,
        len: usize,
    },
    Write {
        offset: u64,
        bytes: Vec<u8>,
    },
    /// Completes the oldest execution with a response of this fraction of
    /// the buffer (a failure when `fail`; above 1.0 it does not fit).
    Complete {
        frac: f64,
        fail: bool,
    },
    /// requestUse, commandReady, a whole command and tpmGo from one
    /// locality: a shortcut deep into the state machine.
    Transact {
        locality: u8,
        size: usize,
    },
    Reset,
    SetEstablished(bool),
}

/// Mostly two localities, so that transactions get far often.
fn locality() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..2, 1 => 0u64..5]
}

fn interesting_offset() -> impl Strategy<Value = u64> {
    let reg = prop::sample::select(vec![
        0x00u64, 0x01, 0x08, 0x0C, 0x10, 0x14, 0x18, 0x19, 0x1A, 0x1B, 0x24, 0x25, 0x27, 0x30,
        0x80, 0x90, 0xBC, 0xBF, 0xF00, 0xF04, 0xFFE,
    ]);
    prop_oneof![
        4 => (locality(), reg).prop_map(|(l, r)| l * 0x1000 + r),
        1 => 0u64..0x5100,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (interesting_offset(), prop::sample::select(vec![1usize, 2, 3, 4, 8, 16, 64, 65]))
            .prop_map(|(offset, len)| Op::Read { offset, len }),
        3 => (interesting_offset(), prop::collection::vec(any::<u8>(), 1..70))
            .prop_map(|(offset, bytes)| Op::Write { offset, bytes }),
        // Writes that drive the state machine: requestUse, commandReady,
        // tpmGo, responseRetry, cancel, seize, relinquish, headers.
        10 => (locality(), prop::sample::select(vec![
                (0x00u64, vec![0x02u8]), (0x00, vec![0x08]), (0x00, vec![0x20]), (0x00, vec![0x10]),
                (0x18, vec![0x40]), (0x18, vec![0x20]), (0x18, vec![0x02]), (0x1B, vec![0x01]),
                (0x1B, vec![0x02]), (0x08, vec![0x87, 0, 0, 0x80]), (0x10, vec![0xFF]),
                (0x80, vec![0x80, 0x01, 0, 0, 0, 0x0C, 0, 0, 0x01, 0x7B, 0, 8]),
                (0x80, vec![0x80, 0x01, 0, 0, 0x10, 0x00, 0, 0]),
                (0x24, vec![0x80, 0x01, 0, 0]), (0x24, vec![0, 0x0A, 0, 0]),
            ]))
            .prop_map(|(l, (r, bytes))| Op::Write { offset: l * 0x1000 + r, bytes }),
        3 => (locality(), 1usize..=4).prop_map(|(l, len)| Op::Read { offset: l * 0x1000 + 0x24, len }),
        3 => (locality(), 1usize..=64).prop_map(|(l, len)| Op::Read { offset: l * 0x1000 + 0x80, len }),
        3 => (0.0f64..1.1, prop::bool::weighted(0.1)).prop_map(|(frac, fail)| Op::Complete { frac, fail }),
        4 => (locality(), 10usize..200).prop_map(|(l, size)| Op::Transact { locality: l as u8, size }),
        1 => Just(Op::Reset),
        1 => any::<bool>().prop_map(Op::SetEstablished),
    ]
}

/// A response for `locality` whose body bytes all carry its mark.
fn marked(size: usize, locality: u8) -> Vec<u8> {
    let mut size = size.max(10);
    if (0xC0..=0xC4).contains(&(size & 0xFF)) {
        // The header's size field must not look like a mark.
        size -= 8;
    }
    let mut r = vec![mark(locality); size];
    r[0..2].copy_from_slice(&[0x80, 0x01]);
    r[2..6].copy_from_slice(&(size as u32).to_be_bytes());
    r[6..10].copy_from_slice(&[0; 4]);
    r
}

fn mark(locality: u8) -> u8 {
    0xC0 + locality
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_mmio_never_panics_leaks_or_sticks(
        buffer in prop::sample::select(vec![16usize, 100, 4096]),
        ops in prop::collection::vec(op(), 0..200),
    ) {
        let mut d = TisDevice::new(TisConfig { backend_buffer: buffer, ..TisConfig::default() }).unwrap();
        let mut running: Vec<(ExecToken, u8)> = Vec::new();
        for op in ops {
            match op {
                Op::Read { offset, len } => {
                    let mut b = vec![0u8; len];
                    d.read(offset, &mut b);
                    let locality = (offset / 0x1000) as u8;
                    let in_page = offset % 0x1000;
                    let fifo = (0x24..0x28).contains(&in_page) || (0x80..0xC0).contains(&in_page);
                    if fifo && locality < 5 {
                        for &byte in &b {
                            // A marked byte read by a locality is its own.
                            prop_assert!(!(0xC0..=0xC4).contains(&byte) || byte == mark(locality),
                                "locality {locality} read {byte:#x}");
                        }
                    }
                }
                Op::Write { offset, bytes } => {
                    match d.write(offset, &bytes).map(OwnedAction::from) {
                        Some(OwnedAction::Execute { token, locality, command }) => {
                            prop_assert!(command.len() <= buffer);
                            running.push((token, locality));
                        }
                        Some(OwnedAction::ResetEstablished(l)) => prop_assert!(l >= 3),
                        _ => {}
                    }
                }
                Op::Complete { frac, fail } => {
                    let size = (buffer as f64 * frac) as usize;
                    if let Some((token, locality)) = running.first().copied() {
                        running.remove(0);
                        let r = marked(size, locality);
                        let result = if fail { Err(BackendFailed) } else { Ok(r.as_slice()) };
                        d.complete(token, result);
                    }
                }
                Op::Transact { locality, size } => {
                    let p = page(locality);
                    w8(&mut d, p + ACCESS, ACCESS_REQUEST_USE);
                    w8(&mut d, p + STS, STS_READY);
                    for piece in command(size, locality).chunks(64) {
                        d.write(p + XFIFO, piece);
                    }
                    if let Some(OwnedAction::Execute { token, locality, command }) = w8(&mut d, p + STS, STS_GO) {
                        prop_assert!(command.len() <= buffer);
                        running.push((token, locality));
                    }
                }
                Op::Reset => d.reset(),
                Op::SetEstablished(e) => d.set_established(e),
            }
            prop_assert!(d.held_bytes() <= buffer);
        }
        // Never stuck: the backend answers what is still running, every
        // locality gives up or withdraws, and a driver then gets through.
        for (token, locality) in running {
            d.complete(token, Ok(&marked(10, locality)));
        }
        for _ in 0..6 {
            for l in 0..5 {
                w8(&mut d, page(l) + ACCESS, ACCESS_ACTIVE);
            }
        }
        prop_assert_eq!(d.active_locality(), None);
        let mut bus = InlineBus { device: d, ..InlineBus::new(TisConfig::default(), echo) };
        let mut driver = TisDriver::new(&mut bus);
        let c = command(10.max(buffer.min(64)), 1);
        prop_assert_eq!(driver.transmit(2, &c).unwrap(), c);
    }
}
