//! Snapshot and restore at every step of chunked transfers, compatibility
//! between configurations, size, and refusal of bad input.

mod common;
use common::*;
use proptest::prelude::*;
use vtpm_crb::{Action, ChunkPolicy, Completion, CrbConfig, CrbDevice, ExecToken, SnapshotError};
use vtpm_guest::{CrbDriver, Mmio, TransmitOptions};

/// A bus that snapshots the device after every access and continues on a
/// fresh device restored from it, as a live migration at every step would.
/// Commands run on a closure (a test double for the backend) and complete
/// one access later, so snapshots also land while a command executes.
struct MigratingBus<F: FnMut(&[u8]) -> Vec<u8>> {
    config: CrbConfig,
    device: CrbDevice,
    backend: F,
    pending: Option<(ExecToken, Vec<u8>)>,
    migrations: usize,
    largest_idle_snapshot: usize,
}

impl<F: FnMut(&[u8]) -> Vec<u8>> MigratingBus<F> {
    fn migrate(&mut self) {
        let snapshot = self.device.snapshot();
        if self.device.held_bytes() == 0 && self.device.window().iter().all(|&b| b == 0) {
            self.largest_idle_snapshot = self.largest_idle_snapshot.max(snapshot.len());
        }
        self.device = CrbDevice::restore(self.config.clone(), &snapshot).expect("restore");
        self.migrations += 1;
    }

    fn deliver(&mut self) {
        if let Some((token, response)) = self.pending.take() {
            self.device.complete(token, Ok(&response));
            self.migrate();
        }
    }
}

impl<F: FnMut(&[u8]) -> Vec<u8>> Mmio for MigratingBus<F> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.deliver();
        self.device.read(offset, data);
        self.migrate();
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        self.deliver();
        if let Some(Action::Execute { token, command, .. }) = self.device.write(offset, data) {
            let command = command.to_vec();
            self.migrate();
            // The restored device must offer the same command for re-delivery.
            match self.device.executing_command() {
                Some(Action::Execute {
                    token: t,
                    command: c,
                    ..
                }) => {
                    assert_eq!(t, token);
                    assert_eq!(c, &command[..]);
                }
                other => panic!("restored device lost the executing command: {other:?}"),
            }
            self.pending = Some((token, (self.backend)(&command)));
        }
        self.migrate();
    }
}

/// Bytes of a snapshot between commands with a zeroed window, whatever
/// the window size: preamble 10, base section header 6 and body 95, CRC 4
/// (crates/crb/README.md, "Snapshot format").
const IDLE_SNAPSHOT_LEN: usize = 115;

fn migrating_case(
    cmd_size: usize,
    rsp_size: usize,
    window: usize,
    retry: Option<usize>,
) -> Result<(), TestCaseError> {
    let config = CrbConfig {
        window_size: window,
        backend_buffer: 16384,
        ..CrbConfig::default()
    };
    let cmd = command(cmd_size, 7);
    let rsp = patterned(rsp_size, 9);
    let options = TransmitOptions {
        max_response: 1 << 20,
        retry_response_after: retry,
    };
    // The uninterrupted run.
    let mut plain = CrbDriver::new(InlineBus::new(
        config.clone(),
        |_, _: &[u8]| Ok(rsp.clone()),
    ));
    let mut expected = Vec::new();
    let plain_transfer = plain
        .transmit_with(0, &cmd, &mut expected, options)
        .unwrap();
    // The same with a migration after every access.
    let mut seen = Vec::new();
    let bus = MigratingBus {
        device: CrbDevice::new(config.clone()).unwrap(),
        config,
        backend: |c: &[u8]| {
            seen = c.to_vec();
            rsp.clone()
        },
        pending: None,
        migrations: 0,
        largest_idle_snapshot: 0,
    };
    let mut driver = CrbDriver::new(bus);
    let mut got = Vec::new();
    let transfer = driver.transmit_with(0, &cmd, &mut got, options).unwrap();
    prop_assert_eq!(&got, &expected);
    prop_assert_eq!(&got, &rsp);
    prop_assert_eq!(transfer, plain_transfer);
    prop_assert!(driver.mmio().migrations > 10);
    prop_assert_eq!(driver.mmio().largest_idle_snapshot, IDLE_SNAPSHOT_LEN);
    drop(driver);
    prop_assert_eq!(&seen, &cmd);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn migration_at_every_step_changes_nothing(
        cmd_size in 10usize..=16384,
        rsp_size in 10usize..=16384,
        window in 64usize..=3968,
        retry in proptest::option::of(1usize..3),
    ) {
        migrating_case(cmd_size, rsp_size, window, retry)?;
    }
}

#[test]
fn migration_edges() {
    for (c, r, w) in [
        (10, 10, 64),
        (3968, 3968, 3968),
        (8192, 8192, 3968),
        (100, 5000, 64),
        (5000, 100, 256),
    ] {
        migrating_case(c, r, w, None).unwrap();
        migrating_case(c, r, w, Some(1)).unwrap();
    }
}

fn chunking_device(chunking: ChunkPolicy) -> CrbConfig {
    CrbConfig {
        window_size: 256,
        backend_buffer: 8192,
        chunking,
        ..CrbConfig::default()
    }
}

#[test]
fn snapshot_between_transactions_loads_without_chunking() {
    let mut d = CrbDevice::new(chunking_device(ChunkPolicy::Auto)).unwrap();
    take_locality(&mut d, 2);
    let snap = d.snapshot();
    let off = CrbDevice::restore(chunking_device(ChunkPolicy::Off), &snap).unwrap();
    assert_eq!(off.active_locality(), Some(2));
    assert!(!off.chunking_advertised());
}

#[test]
fn mid_transaction_snapshot_is_refused_without_chunking() {
    let mut d = CrbDevice::new(chunking_device(ChunkPolicy::Auto)).unwrap();
    take_locality(&mut d, 0);
    window_write(&mut d, 0, &command(600, 1)[..256]);
    w32(&mut d, CTRL_START, NEXT_CHUNK);
    let snap = d.snapshot();
    assert_eq!(
        CrbDevice::restore(chunking_device(ChunkPolicy::Off), &snap).unwrap_err(),
        SnapshotError::ChunkingDisabled
    );
    // The same snapshot resumes on a device that chunks.
    let mut on = CrbDevice::restore(chunking_device(ChunkPolicy::On), &snap).unwrap();
    window_write(&mut on, 0, &command(600, 1)[256..512]);
    w32(&mut on, CTRL_START, NEXT_CHUNK);
    window_write(&mut on, 0, &command(600, 1)[512..]);
    match w32(&mut on, CTRL_START, START) {
        Some(OwnedAction::Execute { command: c, .. }) => assert_eq!(c, command(600, 1)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn idle_snapshot_holds_no_transaction_bytes() {
    let mut d = CrbDevice::new(chunking_device(ChunkPolicy::Auto)).unwrap();
    take_locality(&mut d, 0);
    let cmd = command(600, 0xC3);
    for piece in cmd.chunks(256).take(2) {
        window_write(&mut d, 0, piece);
        w32(&mut d, CTRL_START, NEXT_CHUNK);
    }
    window_write(&mut d, 0, &cmd[512..]);
    let token = match w32(&mut d, CTRL_START, START) {
        Some(OwnedAction::Execute { token, .. }) => token,
        other => panic!("{other:?}"),
    };
    let rsp = patterned(700, 0x5A);
    d.complete(token, Ok(&rsp));
    let busy = d.snapshot();
    for _ in 0..2 {
        window_read(&mut d, 0, 256);
        w32(&mut d, CTRL_START, NEXT_CHUNK);
    }
    window_read(&mut d, 0, 700 - 512);
    let idle = d.snapshot();
    println!(
        "snapshot sizes: idle {} bytes, mid-response {} bytes",
        idle.len(),
        busy.len()
    );
    assert!(
        busy.len() > 700,
        "mid-response snapshot carries the response"
    );
    assert_eq!(
        idle.len(),
        IDLE_SNAPSHOT_LEN,
        "the size the README documents"
    );
    assert!(!idle.windows(16).any(|w| rsp.windows(16).any(|r| r == w)));
}

#[test]
fn bad_snapshots_get_typed_errors() {
    let config = chunking_device(ChunkPolicy::Auto);
    let mut d = CrbDevice::new(config.clone()).unwrap();
    take_locality(&mut d, 4);
    window_write(&mut d, 4, &command(600, 1)[..256]);
    w32(&mut d, 0x4000 + CTRL_START, NEXT_CHUNK);
    let good = d.snapshot();
    assert!(CrbDevice::restore(config.clone(), &good).is_ok());

    let mut bad_magic = good.clone();
    bad_magic[0] ^= 1;
    assert_eq!(
        CrbDevice::restore(config.clone(), &bad_magic).unwrap_err(),
        SnapshotError::BadMagic
    );

    let mut flipped = good.clone();
    flipped[40] ^= 0x10;
    assert!(matches!(
        CrbDevice::restore(config.clone(), &flipped),
        Err(SnapshotError::Checksum { .. })
    ));

    assert!(matches!(
        CrbDevice::restore(config.clone(), &good[..good.len() - 1]),
        Err(SnapshotError::Checksum { .. })
    ));
    assert_eq!(
        CrbDevice::restore(config.clone(), &good[..5]).unwrap_err(),
        SnapshotError::Truncated("header")
    );

    let mut newer = good.clone();
    newer[8] = 9;
    reseal(&mut newer);
    assert_eq!(
        CrbDevice::restore(config.clone(), &newer).unwrap_err(),
        SnapshotError::UnsupportedVersion(9)
    );

    let wider = CrbConfig {
        window_size: 512,
        ..config.clone()
    };
    assert_eq!(
        CrbDevice::restore(wider, &good).unwrap_err(),
        SnapshotError::WindowMismatch {
            snapshot: 256,
            device: 512
        }
    );
    let fewer = CrbConfig {
        localities: 1,
        ..config.clone()
    };
    assert_eq!(
        CrbDevice::restore(fewer, &good).unwrap_err(),
        SnapshotError::LocalityMismatch {
            locality: 4,
            device: 1
        }
    );
    let smaller = CrbConfig {
        backend_buffer: 512,
        ..config.clone()
    };
    assert_eq!(
        CrbDevice::restore(smaller, &good).unwrap_err(),
        SnapshotError::TransactionTooLarge {
            size: 600,
            limit: 512
        }
    );
}

#[test]
fn unknown_sections_are_skipped() {
    let config = chunking_device(ChunkPolicy::Auto);
    let mut d = CrbDevice::new(config.clone()).unwrap();
    take_locality(&mut d, 3);
    let mut snap = d.snapshot().to_vec();
    snap.truncate(snap.len() - 4);
    snap.extend_from_slice(&77u16.to_le_bytes());
    snap.extend_from_slice(&3u32.to_le_bytes());
    snap.extend_from_slice(&[1, 2, 3]);
    reseal_unsealed(&mut snap);
    assert_eq!(
        CrbDevice::restore(config, &snap).unwrap().active_locality(),
        Some(3)
    );
}

/// Recomputes the trailing CRC-32 of an edited snapshot.
fn reseal(snap: &mut Vec<u8>) {
    snap.truncate(snap.len() - 4);
    reseal_unsealed(snap);
}

fn reseal_unsealed(snap: &mut Vec<u8>) {
    let crc = crc32(snap);
    snap.extend_from_slice(&crc.to_le_bytes());
}

/// CRC-32 (IEEE), bit by bit: an independent check of the format.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = CrbDevice::restore(chunking_device(ChunkPolicy::Auto), &bytes);
        let mut sealed = b"VTPMCRB\0".to_vec();
        sealed.extend_from_slice(&bytes);
        reseal_unsealed(&mut sealed);
        let _ = CrbDevice::restore(chunking_device(ChunkPolicy::Auto), &sealed);
    }

    #[test]
    fn mutated_snapshots_never_panic(at in 10usize..2000, value: u8, cut in 0usize..2000) {
        let config = chunking_device(ChunkPolicy::Auto);
        let mut d = CrbDevice::new(config.clone()).unwrap();
        take_locality(&mut d, 0);
        window_write(&mut d, 0, &command(600, 1)[..256]);
        w32(&mut d, CTRL_START, NEXT_CHUNK);
        let mut snap = d.snapshot().to_vec();
        snap.truncate(snap.len() - 4);
        if at < snap.len() {
            snap[at] = value;
        }
        snap.truncate(cut.max(10).min(snap.len()));
        reseal_unsealed(&mut snap);
        if let Ok(mut restored) = CrbDevice::restore(config, &snap) {
            // Whatever was accepted must still behave.
            prop_assert!(restored.held_bytes() <= restored.transfer_limit());
            let _ = r32(&mut restored, CTRL_START);
            let _ = w32(&mut restored, CTRL_START, START);
        }
    }
}

/// A snapshot with its trailing CRC recomputed after `edit`.
fn edited(snap: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut body = snap[..snap.len() - 4].to_vec();
    edit(&mut body);
    reseal_unsealed(&mut body);
    body
}

#[test]
fn an_executing_command_written_without_its_trailing_zeros_round_trips() {
    let config = chunking_device(ChunkPolicy::Auto);
    let mut d = CrbDevice::new(config.clone()).unwrap();
    take_locality(&mut d, 0);
    // Startup(CLEAR) ends in 00 00: a guest may skip writing them.
    let startup = vtpm_client::startup(0);
    window_write(&mut d, 0, &startup[..10]);
    let token = match w32(&mut d, CTRL_START, START) {
        Some(OwnedAction::Execute { token, command, .. }) => {
            assert_eq!(command, startup);
            token
        }
        other => panic!("{other:?}"),
    };
    let restored = CrbDevice::restore(config, &d.snapshot()).unwrap();
    match restored.executing_command() {
        Some(Action::Execute {
            token: t, command, ..
        }) => {
            assert_eq!(t, token);
            assert_eq!(command, &startup[..]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unreachable_executing_states_are_refused() {
    let config = chunking_device(ChunkPolicy::Auto);
    let mut d = CrbDevice::new(config.clone()).unwrap();
    take_locality(&mut d, 2);
    window_write(&mut d, 2, &command(40, 3));
    assert!(d.write(0x2000 + CTRL_START, &START.to_le_bytes()).is_some());
    let snap = d.snapshot();
    assert!(CrbDevice::restore(config.clone(), &snap).is_ok());
    // The base section starts after magic (8), version (2), tag (2), length (4);
    // the active locality is at offset 10 of the base body.
    let active_at = 8 + 2 + 2 + 4 + 10;
    assert_eq!(snap[active_at], 2);
    let other_locality = edited(&snap, |b| b[active_at] = 0);
    assert!(matches!(
        CrbDevice::restore(config.clone(), &other_locality),
        Err(SnapshotError::Corrupt(_))
    ));
    let no_locality = edited(&snap, |b| b[active_at] = 0xFF);
    assert!(CrbDevice::restore(config, &no_locality).is_err());
}

/// A device receiving a chunked 600-byte command: two pieces taken.
fn receiving_600(config: &CrbConfig) -> (CrbDevice, Vec<u8>) {
    let mut d = CrbDevice::new(config.clone()).unwrap();
    take_locality(&mut d, 0);
    let cmd = command(600, 0x3C);
    for piece in cmd[..512].chunks(256) {
        window_write(&mut d, 0, piece);
        assert_eq!(w32(&mut d, CTRL_START, NEXT_CHUNK), None);
    }
    (d, cmd)
}

#[test]
fn a_receiving_snapshot_whose_held_header_disagrees_with_the_recorded_size_is_refused() {
    let config = chunking_device(ChunkPolicy::Auto);
    let (d, cmd) = receiving_600(&config);
    let snap = d.snapshot();
    // The held command starts with its header; make it claim 49,162 bytes
    // (above the 8,192 limit) while the recorded total stays 600.
    let at = snap
        .windows(16)
        .position(|w| w == &cmd[..16])
        .expect("the held command is in the snapshot");
    let lying = edited(&snap, |b| {
        b[at + 2..at + 6].copy_from_slice(&49_162u32.to_be_bytes())
    });
    match CrbDevice::restore(config, &lying) {
        Err(SnapshotError::Corrupt(_)) => {}
        Ok(mut restored) => {
            window_write(&mut restored, 0, &cmd[512..]);
            let forwarded = w32(&mut restored, CTRL_START, START);
            panic!("accepted; then forwarded {forwarded:?}");
        }
        Err(other) => panic!("refused for the wrong reason: {other}"),
    }
}

#[test]
fn an_outstanding_reset_established_request_survives_a_round_trip() {
    let config = chunking_device(ChunkPolicy::Auto);
    let mut d = CrbDevice::new(config.clone()).unwrap();
    d.set_established(true);
    take_locality(&mut d, 3);
    assert_eq!(
        w32(&mut d, 0x3000 + LOC_CTRL, 8),
        Some(OwnedAction::ResetEstablished(3))
    );
    let mut restored = CrbDevice::restore(config, &d.snapshot()).unwrap();
    assert_eq!(
        w32(&mut restored, 0x3000 + LOC_CTRL, 8),
        None,
        "the request is still out: a repeat raises no second action"
    );
    restored.set_established(false);
    assert_eq!(
        w32(&mut restored, 0x3000 + LOC_CTRL, 8),
        Some(OwnedAction::ResetEstablished(3)),
        "once answered, a new request is raised"
    );
}

/// Overwrites the base section's next-token field (after window u32,
/// localities, chunking, buffer u32, active, pending, seized, established,
/// reset-pending, five u32 registers and CTRL_EXT u64).
fn with_next_token(snap: &[u8], token: u64) -> Vec<u8> {
    let at = 8 + 2 + 2 + 4 + (4 + 1 + 1 + 4 + 1 + 1 + 1 + 1 + 1 + 5 * 4 + 8);
    edited(snap, |b| {
        b[at..at + 8].copy_from_slice(&token.to_le_bytes())
    })
}

#[test]
fn a_snapshot_at_the_last_token_value_keeps_producing_loadable_snapshots() {
    let config = chunking_device(ChunkPolicy::Auto);
    let mut d = CrbDevice::new(config.clone()).unwrap();
    take_locality(&mut d, 0);
    let crafted = with_next_token(&d.snapshot(), u64::MAX);
    let mut d = CrbDevice::restore(config.clone(), &crafted).unwrap();
    for round in 0..3u8 {
        window_write(&mut d, 0, &command(20, round));
        let token = match w32(&mut d, CTRL_START, START) {
            Some(OwnedAction::Execute { token, .. }) => token,
            other => panic!("{other:?}"),
        };
        // Mid-execution, across the wrap of the token counter.
        let snap = d.snapshot();
        d = CrbDevice::restore(config.clone(), &snap)
            .unwrap_or_else(|e| panic!("round {round}: own snapshot refused: {e}"));
        assert_eq!(d.snapshot()[..], snap[..]);
        assert_eq!(
            d.complete(token, Ok(&patterned(10, 0))),
            Completion::Delivered
        );
        window_read(&mut d, 0, 10);
    }
}

#[test]
fn a_round_trip_after_a_refused_oversize_command_is_byte_identical() {
    let config = chunking_device(ChunkPolicy::Auto);
    let mut d = CrbDevice::new(config.clone()).unwrap();
    take_locality(&mut d, 0);
    let mut huge = command(600, 1);
    huge[2..6].copy_from_slice(&20_000u32.to_be_bytes());
    window_write(&mut d, 0, &huge[..256]);
    assert_eq!(
        w32(&mut d, CTRL_START, START),
        None,
        "refused by the device"
    );
    assert_eq!(d.stats().commands_refused, 1);
    // The guest scribbles over the window before reading the answer.
    assert!(d.write(WINDOW + 4, &[0xAA; 4]).is_none());
    for _ in 0..2 {
        let snap = d.snapshot();
        d = CrbDevice::restore(config.clone(), &snap).unwrap();
        assert_eq!(d.snapshot()[..], snap[..]);
    }
}

#[test]
fn counters_restored_at_their_maximum_saturate_instead_of_overflowing() {
    let config = chunking_device(ChunkPolicy::Auto);
    let mut d = CrbDevice::new(config.clone()).unwrap();
    take_locality(&mut d, 0);
    let snap = with_next_token(&d.snapshot(), 7);
    // The five u64 counters follow the next token.
    let stats_at = 8 + 2 + 2 + 4 + (4 + 1 + 1 + 4 + 1 + 1 + 1 + 1 + 1 + 5 * 4 + 8 + 8);
    let snap = edited(&snap, |b| b[stats_at..stats_at + 40].fill(0xFF));
    let mut d = CrbDevice::restore(config, &snap).unwrap();
    assert_eq!(d.stats().response_pieces, u64::MAX);
    // A refused command, a forwarded one, its response and a fatal error
    // touch every counter.
    let mut huge = command(100, 1);
    huge[2..6].copy_from_slice(&60_000u32.to_be_bytes());
    window_write(&mut d, 0, &huge);
    assert_eq!(w32(&mut d, CTRL_START, START), None);
    w32(&mut d, CTRL_REQ, 1);
    window_write(&mut d, 0, &command(30, 2));
    let token = match w32(&mut d, CTRL_START, START) {
        Some(OwnedAction::Execute { token, .. }) => token,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        d.complete(token, Err(vtpm_crb::BackendFailed)),
        Completion::Fatal
    );
    let s = d.stats();
    assert_eq!(
        [
            s.commands_executed,
            s.commands_refused,
            s.command_pieces,
            s.response_pieces,
            s.fatal_errors
        ],
        [u64::MAX; 5]
    );
}
