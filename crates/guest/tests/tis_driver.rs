//! The TIS driver's own behaviour: timeouts through an injected clock,
//! typed errors, burst counting, responseRetry, and the check that it
//! still holds its locality after a transfer.

use std::time::Duration;

use vtpm_guest::{Clock, FifoAccess, Mmio, Timeouts, TisDriver, TisError, TisTransmitOptions};
use vtpm_tis::{Action, TisConfig, TisDevice};

/// A clock that advances 1 ms per poll: timeouts fire at once in real time.
#[derive(Default)]
struct SteppingClock {
    now: Duration,
}

impl Clock for SteppingClock {
    fn now(&mut self) -> Duration {
        self.now
    }
    fn pause(&mut self) {
        self.now += Duration::from_millis(1);
    }
}

/// A TIS device run inline with an echo backend, with hooks that alter
/// what the driver sees (test doubles for misbehaving hardware).
struct Bus {
    device: TisDevice,
    /// burstCount is shown as at most this (a TPM with a small FIFO).
    max_burst: u32,
    /// STS always shows Expect.
    stuck_expect: bool,
    /// The response's header size is shown one byte short.
    short_header: bool,
    /// After this many FIFO accesses, locality 4 seizes the TPM.
    seize_after: Option<usize>,
    fifo_accesses: usize,
    writes: usize,
    /// The backend never answers.
    hold: bool,
    cancels: usize,
}

impl Bus {
    fn new(buffer: usize) -> Self {
        Self {
            device: TisDevice::new(TisConfig {
                backend_buffer: buffer,
                ..TisConfig::default()
            })
            .unwrap(),
            max_burst: u32::MAX,
            stuck_expect: false,
            short_header: false,
            seize_after: None,
            fifo_accesses: 0,
            writes: 0,
            hold: false,
            cancels: 0,
        }
    }

    fn note_fifo(&mut self, offset: u64) {
        let reg = offset & 0xFFF;
        if reg == 0x24 || reg == 0x80 {
            self.fifo_accesses += 1;
            if Some(self.fifo_accesses) == self.seize_after {
                self.device.write(0x4000, &[0x08]);
            }
        }
    }
}

impl Mmio for Bus {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.note_fifo(offset);
        let reading_header = self.device.held_bytes() > 0 && offset & 0xFFF == 0x80;
        self.device.read(offset, data);
        if offset & 0xFFF == 0x18 {
            if data.len() == 4 {
                let mut v = u32::from_le_bytes(data.try_into().unwrap());
                let burst = ((v >> 8) & 0xFFFF).min(self.max_burst);
                v = (v & !0x00FF_FF00) | (burst << 8);
                data.copy_from_slice(&v.to_le_bytes());
            }
            if self.stuck_expect && data[0] & 0x80 != 0 {
                data[0] |= 0x08;
            }
        }
        if self.short_header && reading_header && data.len() >= 6 && data[0] == 0x80 {
            data[5] = data[5].wrapping_sub(1);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        self.writes += 1;
        self.note_fifo(offset);
        let token = match self.device.write(offset, data) {
            Some(Action::Execute { token, .. }) if !self.hold => token,
            Some(Action::Cancel { .. }) => {
                self.cancels += 1;
                return;
            }
            _ => return,
        };
        let echo = match self.device.executing_command() {
            Some(Action::Execute { command, .. }) => command.to_vec(),
            _ => unreachable!("executing"),
        };
        self.device.complete(token, Ok(&echo));
    }
}

fn command(size: usize) -> Vec<u8> {
    vtpm_client::padded_get_random(size)
}

fn driver(bus: &mut Bus) -> TisDriver<&mut Bus, SteppingClock> {
    TisDriver::with_clock(bus, SteppingClock::default())
}

#[test]
fn probe_reads_a_fifo_interface_with_five_localities_and_64_byte_transfers() {
    let mut bus = Bus::new(4096);
    let info = driver(&mut bus).probe().unwrap();
    assert!(info.five_localities);
    assert_eq!(info.max_access, 64);
    assert_eq!(
        (info.vendor_id, info.device_id, info.revision),
        (0x1014, 0x0001, 1)
    );
}

#[test]
fn bursts_are_counted_and_never_exceed_burst_count() {
    let mut bus = Bus::new(4096);
    bus.max_burst = 100;
    let c = command(1000);
    let mut d = driver(&mut bus);
    assert_eq!(d.transmit(0, &c).unwrap(), c);
    let t = d.last_transfer();
    // 999 bytes in bursts of 100, then the last byte alone.
    assert_eq!(t.bursts_sent, 10 + 1);
    // The 10-byte header, then 990 bytes in bursts of 100.
    assert_eq!(t.bursts_received, 1 + 10);
    assert_eq!(
        (t.request_bytes, t.response_bytes, t.response_retries),
        (1000, 1000, 0)
    );
}

#[test]
fn the_linux_byte_by_byte_mode_moves_the_same_bytes() {
    let mut bus = Bus::new(4096);
    let c = command(777);
    let mut d = driver(&mut bus);
    d.set_fifo_access(FifoAccess::Bytes);
    assert_eq!(d.transmit(1, &c).unwrap(), c);
    assert!(bus.fifo_accesses >= 2 * 777, "one access per byte");
}

#[test]
fn response_retry_on_demand_rereads_the_whole_response() {
    let mut bus = Bus::new(4096);
    bus.max_burst = 64;
    let c = command(1000);
    let mut rsp = Vec::new();
    let mut d = driver(&mut bus);
    let options = TisTransmitOptions {
        retry_response_after: Some(3),
        ..TisTransmitOptions::default()
    };
    let t = d.transmit_with(0, &c, &mut rsp, options).unwrap();
    assert_eq!(rsp, c);
    assert_eq!(t.response_retries, 1);
    // Three bursts, then the header and 990 bytes in bursts of 64.
    assert_eq!(t.bursts_received, 3 + 1 + 16);
}

#[test]
fn a_command_larger_than_the_device_buffer_fails_when_expect_drops() {
    let mut bus = Bus::new(4096);
    bus.max_burst = 64;
    let mut d = driver(&mut bus);
    assert_eq!(
        d.transmit(0, &command(5000)),
        Err(TisError::ExpectDropped {
            sent: 64,
            size: 5000
        })
    );
    // The driver left the TPM ready; the next command passes.
    let c = command(300);
    assert_eq!(d.transmit(0, &c).unwrap(), c);
}

#[test]
fn expect_still_set_after_the_last_byte_is_an_error() {
    let mut bus = Bus::new(4096);
    bus.stuck_expect = true;
    assert_eq!(
        driver(&mut bus).transmit(0, &command(50)),
        Err(TisError::ExpectStillSet { size: 50 })
    );
}

#[test]
fn data_left_after_the_declared_response_is_an_error() {
    let mut bus = Bus::new(4096);
    bus.short_header = true;
    assert_eq!(
        driver(&mut bus).transmit(0, &command(50)),
        Err(TisError::LeftoverData { size: 49 })
    );
}

#[test]
fn a_seize_during_the_transfer_is_reported_as_a_lost_locality() {
    for after in [3, 20, 40] {
        let mut bus = Bus::new(4096);
        bus.max_burst = 16;
        bus.seize_after = Some(after);
        let mut rsp = vec![1, 2, 3];
        let r = driver(&mut bus).transmit_with(
            0,
            &command(300),
            &mut rsp,
            TisTransmitOptions::default(),
        );
        assert_eq!(
            r,
            Err(TisError::LocalityLost {
                locality: 0,
                access: 0x91
            }),
            "seized after {after} FIFO accesses"
        );
        assert!(rsp.is_empty(), "nothing read is handed out");
    }
}

#[test]
fn a_locality_that_is_never_granted_times_out_after_timeout_a() {
    let mut bus = Bus::new(4096);
    bus.device.write(0x1000, &[0x02]);
    match driver(&mut bus).request_locality(0) {
        Err(TisError::Timeout {
            register,
            bit,
            waited,
        }) => {
            assert_eq!((register, bit), ("TPM_ACCESS", "activeLocality"));
            assert_eq!(waited, Duration::from_millis(750));
        }
        other => panic!("{other:?}"),
    }
}

/// A device that answers every register with a fixed value and counts
/// writes: a test double for hardware that never progresses.
struct Fixed {
    interface_id: u32,
    access: u8,
    sts: u32,
    writes: usize,
}

impl Mmio for Fixed {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let v: u32 = match offset & 0xFFF {
            0x00 => u32::from(self.access),
            0x14 => 0x3000_0697,
            0x18 => self.sts,
            0x30 => self.interface_id,
            _ => 0,
        };
        let bytes = v.to_le_bytes();
        for (i, b) in data.iter_mut().enumerate() {
            *b = bytes.get(i).copied().unwrap_or(0);
        }
    }
    fn write(&mut self, _offset: u64, _data: &[u8]) {
        self.writes += 1;
    }
}

fn fixed(sts: u32) -> TisDriver<Fixed, SteppingClock> {
    TisDriver::with_clock(
        Fixed {
            interface_id: 0x3900,
            access: 0xA1,
            sts,
            writes: 0,
        },
        SteppingClock::default(),
    )
}

#[test]
fn command_ready_that_never_shows_times_out_after_timeout_b() {
    assert_eq!(
        fixed(0).command_ready(0),
        Err(TisError::Timeout {
            register: "TPM_STS",
            bit: "commandReady",
            waited: Duration::from_secs(2)
        })
    );
}

#[test]
fn a_burst_count_that_stays_zero_times_out_after_timeout_a() {
    assert_eq!(
        fixed(0x40).transmit(0, &command(20)),
        Err(TisError::Timeout {
            register: "TPM_STS",
            bit: "burstCount",
            waited: Duration::from_millis(750)
        })
    );
}

#[test]
fn data_avail_that_never_shows_times_out_after_the_command_timeout() {
    let mut bus = Bus::new(4096);
    bus.hold = true;
    let mut d = driver(&mut bus);
    d.set_timeouts(Timeouts {
        command: Duration::from_secs(3),
        ..Timeouts::default()
    });
    assert_eq!(
        d.transmit(0, &command(20)),
        Err(TisError::Timeout {
            register: "TPM_STS",
            bit: "dataAvail",
            waited: Duration::from_secs(3)
        })
    );
    assert!(bus.device.is_executing(), "the backend still has it");
    assert_eq!(bus.cancels, 1, "the driver's commandReady aborted it");
}

#[test]
fn malformed_commands_and_bad_localities_are_refused_before_any_write() {
    let mut d = fixed(0x40);
    let mut c = command(20);
    c[5] = 21;
    assert_eq!(
        d.transmit(0, &c),
        Err(TisError::MalformedCommand {
            len: 20,
            declared: Some(21)
        })
    );
    assert_eq!(
        d.transmit(0, &[0x80, 0x01]),
        Err(TisError::MalformedCommand {
            len: 2,
            declared: None
        })
    );
    assert_eq!(d.transmit(5, &command(20)), Err(TisError::BadLocality(5)));
    assert_eq!(d.mmio().writes, 0);
}

#[test]
fn an_interface_that_is_not_fifo_is_refused() {
    let mut d = TisDriver::with_clock(
        Fixed {
            interface_id: 0x0002_5C11,
            access: 0xA1,
            sts: 0,
            writes: 0,
        },
        SteppingClock::default(),
    );
    assert_eq!(d.probe(), Err(TisError::NotFifo(0x0002_5C11)));
}

/// One MMIO access as a recorder saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Access {
    R(u64, Vec<u8>),
    W(u64, Vec<u8>),
}

/// Records every access on the way to the inner bus.
struct Recorder<'a> {
    inner: &'a mut Bus,
    log: Vec<Access>,
}

impl Mmio for Recorder<'_> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.inner.read(offset, data);
        self.log.push(Access::R(offset, data.to_vec()));
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        self.inner.write(offset, data);
        self.log.push(Access::W(offset, data.to_vec()));
    }
}

/// In byte mode the driver makes exactly the accesses Linux's
/// tpm_tis_core makes for one command on a polled device (request_locality,
/// tpm_tis_send_data, tpmGo, tpm_transmit's status poll, tpm_tis_recv,
/// tpm_tis_ready), plus one TPM_ACCESS read at the end: the check that it
/// still holds the locality.
#[test]
fn byte_mode_makes_linux_tpm_tis_core_accesses() {
    use Access::{R, W};
    let mut bus = Bus::new(4096);
    let startup = vec![0x80, 0x01, 0, 0, 0, 0x0C, 0, 0, 0x01, 0x44, 0, 0];
    let mut rec = Recorder {
        inner: &mut bus,
        log: Vec::new(),
    };
    let mut d = TisDriver::with_clock(&mut rec, SteppingClock::default());
    d.set_fifo_access(FifoAccess::Bytes);
    d.probe().unwrap();
    d.mmio().log.clear();
    assert_eq!(d.transmit(0, &startup).unwrap(), startup);
    let mut want = vec![
        R(0x00, vec![0x81]),
        W(0x00, vec![0x02]),
        R(0x00, vec![0xA1]),
        R(0x18, vec![0x00]),
        W(0x18, vec![0x40]),
        R(0x18, vec![0x40]),
        R(0x18, vec![0x40, 0x00, 0x10, 0x04]),
    ];
    want.extend(startup[..11].iter().map(|&b| W(0x24, vec![b])));
    want.extend([R(0x18, vec![0x88]), R(0x18, vec![0x88])]);
    want.push(W(0x24, vec![startup[11]]));
    want.extend([
        R(0x18, vec![0x80]),
        R(0x18, vec![0x80]),
        W(0x18, vec![0x20]),
        R(0x18, vec![0x90]),
        R(0x18, vec![0x90]),
        R(0x18, vec![0x90, 0x0C, 0x00, 0x04]),
    ]);
    want.extend(startup.iter().take(10).map(|&b| R(0x24, vec![b])));
    want.extend([R(0x18, vec![0x90]), R(0x18, vec![0x90, 0x02, 0x00, 0x04])]);
    want.extend(startup[10..].iter().map(|&b| R(0x24, vec![b])));
    want.extend([
        R(0x18, vec![0x80]),
        R(0x18, vec![0x80]),
        W(0x18, vec![0x40]),
        R(0x00, vec![0xA1]),
    ]);
    assert_eq!(rec.log, want);
}
