//! Property tests: whole transfers through the guest driver, and random
//! MMIO sequences that must never break the device's invariants.

mod common;
use common::*;
use proptest::prelude::*;
use vtpm_crb::{BackendFailed, ChunkPolicy, CrbConfig, CrbDevice, ExecToken};
use vtpm_guest::{CrbDriver, DriverError, TransmitOptions};

fn transfer_case(
    cmd_size: usize,
    rsp_size: usize,
    window: usize,
    buffer: usize,
    retry: Option<usize>,
) -> Result<(), TestCaseError> {
    let config = CrbConfig {
        window_size: window,
        backend_buffer: buffer,
        chunking: ChunkPolicy::Auto,
        ..CrbConfig::default()
    };
    let limit = config.transfer_limit();
    let chunking = config.chunking_advertised();
    let cmd = command(cmd_size, cmd_size as u8);
    let rsp = patterned(rsp_size, rsp_size as u8);
    let seen = std::cell::RefCell::new(Vec::new());
    let bus = InlineBus::new(config, |_, c: &[u8]| {
        *seen.borrow_mut() = c.to_vec();
        Ok(rsp.clone())
    });
    let mut driver = CrbDriver::new(bus);
    let mut out = Vec::new();
    let options = TransmitOptions {
        max_response: 1 << 20,
        retry_response_after: retry.filter(|_| chunking),
    };
    let result = driver.transmit_with(0, &cmd, &mut out, options);
    let max_held = driver.mmio().max_held;
    prop_assert!(max_held <= buffer, "held {} > buffer {}", max_held, buffer);
    let pieces = |n: usize| n.div_ceil(window);
    if cmd_size > window && !chunking {
        prop_assert_eq!(
            result,
            Err(DriverError::CommandTooLarge {
                size: cmd_size,
                window
            })
        );
    } else if cmd_size > limit {
        let t = result.expect("device answers oversize commands itself");
        prop_assert_eq!(&out[6..10], &[0u8, 0, 1, 0x42][..]);
        prop_assert_eq!(t.chunks_sent, pieces(cmd_size));
        prop_assert_eq!(t.chunks_received, 1);
    } else if rsp_size > limit {
        prop_assert_eq!(result, Err(DriverError::Fatal));
        prop_assert_eq!(&*seen.borrow(), &cmd);
    } else {
        let t = result.expect("transfer succeeds");
        prop_assert_eq!(&*seen.borrow(), &cmd);
        prop_assert_eq!(&out, &rsp);
        prop_assert_eq!(t.chunks_sent, pieces(cmd_size));
        let rewound = match options.retry_response_after {
            Some(after) if after < pieces(rsp_size) => after,
            _ => 0,
        };
        prop_assert_eq!(t.chunks_received, pieces(rsp_size) + rewound);
        prop_assert_eq!(t.response_retries, usize::from(rewound > 0));
        prop_assert_eq!(
            driver.mmio().device.held_bytes(),
            0,
            "released after the read"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn guest_receives_exactly_what_the_backend_produced(
        cmd_size in 10usize..=16384,
        rsp_size in 10usize..=16384,
        window in 64usize..=3968,
        buffer in 2808usize..=16384,
        retry in proptest::option::of(1usize..4),
    ) {
        transfer_case(cmd_size, rsp_size, window, buffer, retry)?;
    }
}

#[test]
fn transfer_edges() {
    for (c, r, w, b) in [
        (3968, 3968, 3968, 4096),
        (3969, 3969, 3968, 4096),
        (4096, 4096, 3968, 4096),
        (4097, 10, 3968, 4096),
        (8192, 8192, 3968, 8192),
        (16384, 16384, 64, 16384),
        (10, 10, 64, 2808),
        (3968, 10, 3968, 3968),
    ] {
        transfer_case(c, r, w, b, None).unwrap();
        transfer_case(c, r, w, b, Some(1)).unwrap();
    }
}

#[derive(Debug, Clone)]
enum Op {
    Read {
        locality: u8,
        offset: u16,
        width: u8,
    },
    Write {
        locality: u8,
        offset: u16,
        width: u8,
        value: u64,
    },
    Window {
        locality: u8,
        offset: u16,
        bytes: Vec<u8>,
    },
    Command {
        locality: u8,
        size: u16,
        start_bits: u8,
    },
    Complete {
        size: u16,
        fail: bool,
        lie: bool,
    },
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    let locality = 0u8..6;
    let width = prop_oneof![Just(1u8), Just(2), Just(4), Just(8), 0u8..16];
    prop_oneof![
        (locality.clone(), 0u16..0x1000, width.clone()).prop_map(|(locality, offset, width)| {
            Op::Read {
                locality,
                offset,
                width,
            }
        }),
        (
            locality.clone(),
            prop_oneof![0u16..0x80, Just(0x4C), Just(0x40), Just(0x08), Just(0x48)],
            width,
            any::<u64>()
        )
            .prop_map(|(locality, offset, width, value)| Op::Write {
                locality,
                offset,
                width,
                value
            }),
        (
            locality.clone(),
            0x80u16..0x1000,
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(locality, offset, bytes)| Op::Window {
                locality,
                offset,
                bytes
            }),
        (locality, 0u16..9000, 0u8..8).prop_map(|(locality, size, start_bits)| Op::Command {
            locality,
            size,
            start_bits
        }),
        (0u16..9000, any::<bool>(), any::<bool>()).prop_map(|(size, fail, lie)| Op::Complete {
            size,
            fail,
            lie
        }),
        Just(Op::Reset),
    ]
}

/// A forwarded command is whole: its header declares exactly its length,
/// within the limit.
fn check_forwarded(command: &[u8], limit: usize) -> Result<(), TestCaseError> {
    prop_assert!(command.len() >= 10 && command.len() <= limit);
    let declared = u32::from_be_bytes([command[2], command[3], command[4], command[5]]);
    prop_assert_eq!(declared as usize, command.len());
    Ok(())
}

/// Runs `ops` on a device, checking the invariants after every step. After
/// each step the device is snapshotted and replaced by its restored twin,
/// whose own snapshot must be the same bytes.
fn run_ops(
    window: usize,
    buffer: usize,
    chunking: ChunkPolicy,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let mut d = CrbDevice::new(CrbConfig {
        window_size: window,
        backend_buffer: buffer,
        chunking,
        ..CrbConfig::default()
    })
    .unwrap();
    let config = d.config().clone();
    let mut outstanding: Vec<ExecToken> = Vec::new();
    let limit = d.transfer_limit();
    for op in ops {
        match op {
            Op::Read {
                locality,
                offset,
                width,
            } => {
                let mut buf = vec![0u8; usize::from(*width)];
                let off = u64::from(*locality) * 0x1000 + u64::from(*offset);
                d.read(off, &mut buf);
                let in_window = *offset >= 0x80;
                if in_window && d.active_locality() != Some(*locality) {
                    prop_assert!(
                        buf.iter().all(|&b| b == 0),
                        "window bytes visible from locality {}",
                        locality
                    );
                }
            }
            Op::Write {
                locality,
                offset,
                width,
                value,
            } => {
                let bytes = value.to_le_bytes();
                let n = usize::from(*width).min(8);
                let off = u64::from(*locality) * 0x1000 + u64::from(*offset);
                if let Some(vtpm_crb::Action::Execute { token, command, .. }) =
                    d.write(off, &bytes[..n])
                {
                    check_forwarded(command, limit)?;
                    outstanding.push(token);
                }
            }
            Op::Window {
                locality,
                offset,
                bytes,
            } => {
                d.write(u64::from(*locality) * 0x1000 + u64::from(*offset), bytes);
            }
            Op::Command {
                locality,
                size,
                start_bits,
            } => {
                let cmd = command(usize::from(*size).max(10), 1);
                let mut cmd = cmd;
                if *size < 10 {
                    cmd[2..6].copy_from_slice(&u32::from(*size).to_be_bytes());
                }
                let page = u64::from(*locality) * 0x1000;
                let piece = &cmd[..cmd.len().min(window)];
                d.write(page + 0x80, piece);
                if let Some(vtpm_crb::Action::Execute { token, command, .. }) =
                    d.write(page + 0x4C, &u32::from(*start_bits).to_le_bytes())
                {
                    check_forwarded(command, limit)?;
                    outstanding.push(token);
                }
            }
            Op::Complete { size, fail, lie } => {
                if let Some(token) = outstanding.pop() {
                    let mut rsp = patterned(usize::from(*size), 3);
                    if *lie {
                        rsp.truncate(rsp.len() / 2);
                    }
                    let result = if *fail {
                        Err(BackendFailed)
                    } else {
                        Ok(rsp.as_slice())
                    };
                    d.complete(token, result);
                }
            }
            Op::Reset => d.reset(),
        }
        prop_assert!(
            d.held_bytes() <= limit,
            "held {} > limit {}",
            d.held_bytes(),
            limit
        );
        if let Some(vtpm_crb::Action::Execute { token, .. }) = d.executing_command() {
            prop_assert!(
                outstanding.contains(&token),
                "executing without a pending action"
            );
        }
        let snap = d.snapshot();
        d = CrbDevice::restore(config.clone(), &snap)
            .map_err(|e| TestCaseError::fail(format!("own snapshot refused after {op:?}: {e}")))?;
        prop_assert_eq!(
            &d.snapshot()[..],
            &snap[..],
            "snapshot, restore, snapshot differs after {:?}",
            op
        );
    }
    // Once every completion is delivered, Start is not stuck.
    while let Some(token) = outstanding.pop() {
        d.complete(token, Ok(&patterned(10, 0)));
    }
    prop_assert!(!d.is_executing());
    for l in 0..5u64 {
        prop_assert_eq!(r32(&mut d, l * 0x1000 + CTRL_START) & 1, 0);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_mmio_never_breaks_invariants_and_every_step_round_trips(
        window in prop_oneof![Just(64usize), Just(256), Just(3968), 64usize..=3968],
        buffer in prop_oneof![Just(4096usize), Just(8192), 10usize..=16384],
        chunking in prop_oneof![Just(ChunkPolicy::Auto), Just(ChunkPolicy::On), Just(ChunkPolicy::Off)],
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        run_ops(window, buffer, chunking, &ops)?;
    }
}
