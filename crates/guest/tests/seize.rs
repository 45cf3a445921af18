//! A higher locality that seizes the TPM in the middle of a transfer makes
//! the transfer fail with `LocalityLost`, never return bytes the TPM did
//! not send. The seize is injected deterministically by a bus wrapper
//! after a given number of window accesses from locality 0.

use vtpm_crb::{Action, ChunkPolicy, CrbConfig, CrbDevice};
use vtpm_guest::{CrbDriver, DriverError, Mmio, TransmitOptions};

const WINDOW: u64 = 0x80;
const LOC_CTRL_4: u64 = 0x4000 + 0x08;
const SEIZE: u32 = 1 << 2;

/// A CRB device whose commands run at once on an echo, and which makes
/// locality 4 seize the TPM right after locality 0's `seize_after`-th
/// window access.
struct SeizingBus {
    device: CrbDevice,
    window_accesses: usize,
    seize_after: usize,
    seized: bool,
}

impl SeizingBus {
    fn new(window: usize, seize_after: usize) -> Self {
        Self {
            device: CrbDevice::new(CrbConfig {
                window_size: window,
                backend_buffer: 8192,
                chunking: ChunkPolicy::Auto,
                ..CrbConfig::default()
            })
            .unwrap(),
            window_accesses: 0,
            seize_after,
            seized: false,
        }
    }

    fn count_window_access(&mut self, offset: u64) {
        if (WINDOW..0x1000).contains(&offset) {
            self.window_accesses += 1;
            if self.window_accesses == self.seize_after {
                assert!(self
                    .device
                    .write(LOC_CTRL_4, &SEIZE.to_le_bytes())
                    .is_none());
                self.seized = true;
            }
        }
    }
}

impl Mmio for SeizingBus {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.device.read(offset, data);
        self.count_window_access(offset);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let echo = match self.device.write(offset, data) {
            Some(Action::Execute { token, command, .. }) => Some((token, command.to_vec())),
            _ => None,
        };
        if let Some((token, command)) = echo {
            self.device.complete(token, Ok(&command));
        }
        self.count_window_access(offset);
    }
}

fn get_random_padded(size: usize) -> Vec<u8> {
    let mut c = vec![0x33u8; size];
    c[..10].copy_from_slice(&[0x80, 0x01, 0, 0, 0, 0, 0, 0, 0x01, 0x7B]);
    c[2..6].copy_from_slice(&(size as u32).to_be_bytes());
    c
}

#[test]
fn a_seize_between_the_response_header_and_body_fails_the_transmit() {
    // One piece each way: the command write is access 1, the header read
    // access 2, the body read access 3.
    let mut driver = CrbDriver::new(SeizingBus::new(3968, 2));
    let command = get_random_padded(200);
    let mut response = Vec::new();
    let result = driver.transmit_with(0, &command, &mut response, TransmitOptions::default());
    assert!(driver.mmio().seized, "the seize was injected");
    match result {
        Err(DriverError::LocalityLost {
            locality: 0,
            loc_sts,
        }) => {
            assert_eq!(loc_sts & 0b11, 0b10, "not granted, beenSeized");
        }
        other => panic!("expected LocalityLost, got {other:?}"),
    }
    assert!(response.is_empty(), "no partial response is handed out");
}

#[test]
fn a_seize_between_response_pieces_fails_the_transmit() {
    // Window 256, 600 bytes: three command pieces (accesses 1-3), then the
    // header (4), the rest of piece one (5) and piece two (6).
    let mut driver = CrbDriver::new(SeizingBus::new(256, 5));
    let command = get_random_padded(600);
    let result = driver.transmit(0, &command);
    assert!(driver.mmio().seized);
    assert!(
        matches!(result, Err(DriverError::LocalityLost { locality: 0, .. })),
        "{result:?}"
    );
}

#[test]
fn a_seize_between_command_pieces_fails_the_transmit() {
    let mut driver = CrbDriver::new(SeizingBus::new(256, 1));
    let command = get_random_padded(600);
    let result = driver.transmit(0, &command);
    assert!(driver.mmio().seized);
    assert!(
        matches!(result, Err(DriverError::LocalityLost { locality: 0, .. })),
        "{result:?}"
    );
}

#[test]
fn without_a_seize_the_same_transfers_succeed() {
    for (window, size) in [(3968, 200), (256, 600)] {
        let mut driver = CrbDriver::new(SeizingBus::new(window, usize::MAX));
        let command = get_random_padded(size);
        assert_eq!(driver.transmit(0, &command).unwrap(), command);
    }
}
