//! The data window in guest RAM: the guest reads and writes plain memory,
//! only register accesses reach the device, and the device copies each
//! command piece once.

mod common;
use common::*;
use proptest::prelude::*;
use vtpm_crb::{Action, ChunkPolicy, CrbConfig, CrbDevice};
use vtpm_guest::{CrbDriver, Mmio, TransmitOptions};

type Backend = Box<dyn FnMut(&[u8]) -> Vec<u8>>;
type Meddle = Box<dyn FnMut(&mut [u8])>;

/// A VMM that maps the window as RAM (the same memory behind every
/// locality's window) and traps only registers. With `migrate`, the
/// device is snapshotted and restored into a fresh one after every access;
/// the RAM stays, as a VMM migrates guest memory itself.
struct RamBus {
    device: CrbDevice,
    config: CrbConfig,
    ram: Vec<u8>,
    backend: Backend,
    /// What the backend received.
    commands: Vec<Vec<u8>>,
    /// Register accesses: the exits a VMM takes.
    traps: usize,
    /// Called between Start and completion: the guest's hostile write.
    meddle: Option<Meddle>,
    migrate: bool,
}

impl RamBus {
    fn new(config: CrbConfig, backend: Backend) -> Self {
        Self {
            device: CrbDevice::new(config.clone()).unwrap(),
            ram: vec![0; config.window_size],
            config,
            backend,
            commands: Vec::new(),
            traps: 0,
            meddle: None,
            migrate: false,
        }
    }

    fn window_offset(&self, offset: u64) -> Option<usize> {
        let page_off = offset % 0x1000;
        (page_off >= WINDOW).then(|| (page_off - WINDOW) as usize)
    }

    fn migrate(&mut self) {
        if self.migrate {
            let saved = self.device.snapshot();
            self.device = CrbDevice::restore(self.config.clone(), &saved).expect("restores");
        }
    }
}

impl Mmio for RamBus {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match self.window_offset(offset) {
            Some(at) => data.copy_from_slice(&self.ram[at..at + data.len()]),
            None => {
                self.traps += 1;
                self.device.read(offset, data);
            }
        }
        self.migrate();
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let Some(at) = self.window_offset(offset) {
            self.ram[at..at + data.len()].copy_from_slice(data);
            self.migrate();
            return;
        }
        self.traps += 1;
        let run = match self.device.write_in_ram(offset, data, &mut self.ram) {
            Some(Action::Execute { token, command, .. }) => Some((token, command.to_vec())),
            _ => None,
        };
        self.migrate();
        if let Some((token, command)) = run {
            if let Some(meddle) = self.meddle.as_mut() {
                meddle(&mut self.ram);
            }
            let mut response = (self.backend)(&command);
            self.commands.push(command);
            self.device
                .complete_in_ram(token, Ok(&mut response), &mut self.ram);
            self.migrate();
        }
    }
}

fn config(window: usize, buffer: usize) -> CrbConfig {
    CrbConfig {
        window_size: window,
        backend_buffer: buffer,
        chunking: ChunkPolicy::Auto,
        ..CrbConfig::default()
    }
}

fn ram_case(
    cmd_size: usize,
    rsp_size: usize,
    window: usize,
    migrate: bool,
) -> Result<(), TestCaseError> {
    let buffer = cmd_size.max(rsp_size).max(window);
    let cmd = command(cmd_size, cmd_size as u8);
    let rsp = patterned(rsp_size, rsp_size as u8);
    let answer = rsp.clone();
    let mut bus = RamBus::new(config(window, buffer), Box::new(move |_| answer.clone()));
    bus.migrate = migrate;
    let mut driver = CrbDriver::new(bus);
    let mut out = Vec::new();
    let options = TransmitOptions {
        max_response: 1 << 20,
        retry_response_after: None,
    };
    let t = driver
        .transmit_with(0, &cmd, &mut out, options)
        .expect("transfer succeeds");
    prop_assert_eq!(&out, &rsp);
    prop_assert_eq!(t.chunks_sent, cmd_size.div_ceil(window));
    prop_assert_eq!(t.chunks_received, rsp_size.div_ceil(window));
    let bus = driver.mmio();
    prop_assert_eq!(&bus.commands, &vec![cmd]);
    // Reads of RAM are invisible; the driver's closing goIdle released it.
    prop_assert_eq!(bus.device.held_bytes(), 0);
    prop_assert!(
        bus.ram.iter().all(|&b| b == 0),
        "goIdle zeroes the RAM window"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn guest_receives_exactly_what_the_backend_produced_through_a_ram_window(
        cmd_size in 10usize..=16384,
        rsp_size in 10usize..=16384,
        window in 64usize..=3968,
    ) {
        ram_case(cmd_size, rsp_size, window, false)?;
    }
}

#[test]
fn a_ram_window_transfer_survives_a_migration_after_every_access() {
    for (c, r, w) in [
        (12, 10, 3968),
        (8192, 8192, 3968),
        (300, 700, 64),
        (3968, 3969, 3968),
    ] {
        ram_case(c, r, w, true).unwrap();
    }
}

#[test]
fn an_8k_round_trip_through_a_ram_window_traps_only_registers() {
    let mut bus = RamBus::new(config(3968, 8192), Box::new(|_| patterned(8192, 7)));
    bus.migrate = false;
    let mut driver = CrbDriver::new(bus);
    driver.transmit(0, &command(8192, 1)).unwrap();
    let traps = driver.mmio().traps;
    // probe, locality, cmdReady, three pieces' handshakes, Start and its
    // wait, three response pieces' handshakes: a few dozen, not thousands.
    assert!(traps < 60, "{traps} register accesses");
    assert!(traps > 5, "{traps} register accesses");
}

#[test]
fn the_guest_changing_the_ram_window_after_start_changes_nothing_the_backend_receives() {
    let cmd = command(9000, 3);
    let mut bus = RamBus::new(config(3968, 16384), Box::new(|_| patterned(10, 0)));
    bus.meddle = Some(Box::new(|ram: &mut [u8]| ram.fill(0xAB)));
    let mut driver = CrbDriver::new(bus);
    driver.transmit(0, &cmd).unwrap();
    assert_eq!(driver.mmio().commands, vec![cmd]);
}

#[test]
fn a_piece_is_copied_once_at_next_chunk_and_later_ram_writes_do_not_reach_it() {
    let window = 64;
    let mut d = CrbDevice::new(config(window, 4096)).unwrap();
    let mut ram = vec![0u8; window];
    let cmd = command(100, 9);
    d.write_in_ram(LOC_CTRL, &1u32.to_le_bytes(), &mut ram);
    d.write_in_ram(CTRL_REQ, &1u32.to_le_bytes(), &mut ram);
    ram.copy_from_slice(&cmd[..64]);
    assert!(d
        .write_in_ram(CTRL_START, &NEXT_CHUNK.to_le_bytes(), &mut ram)
        .is_none());
    // The guest rewrites the first piece's bytes after handing them over.
    ram.fill(0xEE);
    ram[..36].copy_from_slice(&cmd[64..]);
    let command = match d.write_in_ram(CTRL_START, &START.to_le_bytes(), &mut ram) {
        Some(Action::Execute { command, .. }) => command.to_vec(),
        other => panic!("{other:?}"),
    };
    ram.fill(0x55);
    assert_eq!(command, cmd);
    let Some(Action::Execute { command, .. }) = d.executing_command() else {
        panic!("executing");
    };
    assert_eq!(command, &cmd[..]);
}

#[test]
fn a_locality_change_zeroes_the_ram_window_before_the_next_locality_gets_it() {
    let mut d = CrbDevice::new(config(3968, 4096)).unwrap();
    let mut ram = vec![0u8; 3968];
    d.write_in_ram(LOC_CTRL, &1u32.to_le_bytes(), &mut ram);
    d.write_in_ram(CTRL_REQ, &1u32.to_le_bytes(), &mut ram);
    ram[..12].copy_from_slice(&command(12, 1));
    let token = match d.write_in_ram(CTRL_START, &START.to_le_bytes(), &mut ram) {
        Some(Action::Execute { token, .. }) => token,
        other => panic!("{other:?}"),
    };
    let mut rsp = patterned(40, 2);
    d.complete_in_ram(token, Ok(&mut rsp), &mut ram);
    assert_eq!(&ram[..40], &patterned(40, 2)[..]);
    // Locality 0 relinquishes (bit 1), locality 2 requests and is granted.
    d.write_in_ram(LOC_CTRL, &2u32.to_le_bytes(), &mut ram);
    assert!(
        ram.iter().all(|&b| b == 0),
        "relinquish zeroes the RAM window"
    );
    ram[..5].copy_from_slice(b"guest");
    d.write_in_ram(0x2000 + LOC_CTRL, &1u32.to_le_bytes(), &mut ram);
    assert_eq!(d.active_locality(), Some(2));
    assert!(ram.iter().all(|&b| b == 0), "a grant zeroes the RAM window");
}

#[test]
fn a_response_read_whole_from_ram_is_held_until_go_idle() {
    let mut d = CrbDevice::new(config(3968, 4096)).unwrap();
    let mut ram = vec![0u8; 3968];
    d.write_in_ram(LOC_CTRL, &1u32.to_le_bytes(), &mut ram);
    d.write_in_ram(CTRL_REQ, &1u32.to_le_bytes(), &mut ram);
    ram[..12].copy_from_slice(&command(12, 1));
    let token = match d.write_in_ram(CTRL_START, &START.to_le_bytes(), &mut ram) {
        Some(Action::Execute { token, .. }) => token,
        other => panic!("{other:?}"),
    };
    d.complete_in_ram(token, Ok(&mut patterned(40, 2)), &mut ram);
    let read = ram[..40].to_vec();
    assert_eq!(read, patterned(40, 2));
    assert_eq!(d.held_bytes(), 40, "a RAM read is not seen");
    d.write_in_ram(CTRL_REQ, &2u32.to_le_bytes(), &mut ram);
    assert_eq!(d.held_bytes(), 0);
    assert!(ram.iter().all(|&b| b == 0), "goIdle zeroes the RAM window");
}

#[test]
fn reset_and_cmd_ready_zero_the_ram_window_and_register_writes_leave_guest_bytes_alone() {
    let mut d = CrbDevice::new(config(3968, 4096)).unwrap();
    let mut ram = vec![0u8; 3968];
    d.write_in_ram(LOC_CTRL, &1u32.to_le_bytes(), &mut ram);
    ram[..12].copy_from_slice(&command(12, 1));
    // A register write that releases nothing keeps the guest's command.
    d.write_in_ram(INT_ENABLE, &0u32.to_le_bytes(), &mut ram);
    assert_eq!(&ram[..12], &command(12, 1)[..]);
    d.write_in_ram(CTRL_REQ, &1u32.to_le_bytes(), &mut ram);
    assert!(
        ram.iter().all(|&b| b == 0),
        "cmdReady zeroes the RAM window"
    );
    ram[..4].fill(9);
    d.reset_in_ram(&mut ram);
    assert!(ram.iter().all(|&b| b == 0), "reset zeroes the RAM window");
}
