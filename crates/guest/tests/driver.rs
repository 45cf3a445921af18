//! The guest driver's own behaviour: timeouts through an injected clock,
//! typed errors, and refusals made before anything is written.

use std::time::Duration;

use vtpm_backend::testing::FnBackend;
use vtpm_guest::{Clock, CrbDriver, DriverError, Mmio, TransmitOptions};
use vtpm_platform::{ChunkPolicy, Execution, Platform, PlatformConfig};

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

/// A test double standing in for a device that never finishes anything:
/// registers read as fixed values, writes are counted.
struct StuckDevice {
    intf_id: u32,
    loc_state: u32,
    loc_sts: u32,
    ctrl_req: u32,
    start: u32,
    writes: usize,
}

impl StuckDevice {
    fn crb() -> Self {
        Self {
            intf_id: 0x0002_5C11,
            loc_state: 0x82,
            loc_sts: 1,
            ctrl_req: 0,
            start: 0,
            writes: 0,
        }
    }
}

impl Mmio for StuckDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let value: u32 = match offset & 0xFFF {
            0x00 => self.loc_state,
            0x0C => self.loc_sts,
            0x30 => self.intf_id,
            0x40 => self.ctrl_req,
            0x4C => self.start,
            0x58 | 0x64 => 3968,
            _ => 0,
        };
        let bytes = value.to_le_bytes();
        for (i, b) in data.iter_mut().enumerate() {
            *b = bytes.get(i).copied().unwrap_or(0);
        }
    }
    fn write(&mut self, _offset: u64, _data: &[u8]) {
        self.writes += 1;
    }
}

fn stuck_driver(device: StuckDevice) -> CrbDriver<StuckDevice, SteppingClock> {
    CrbDriver::with_clock(device, SteppingClock::default())
}

#[test]
fn locality_that_is_never_granted_times_out_after_timeout_a() {
    let mut dev = StuckDevice::crb();
    dev.loc_state = 0x80;
    dev.loc_sts = 0;
    let mut driver = stuck_driver(dev);
    match driver.request_locality(2) {
        Err(DriverError::Timeout {
            register,
            bit,
            waited,
        }) => {
            assert_eq!((register, bit), ("LOC_STATE", "locAssigned"));
            assert_eq!(waited, Duration::from_millis(750));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn cmd_ready_that_never_clears_times_out_after_timeout_c() {
    let mut dev = StuckDevice::crb();
    dev.ctrl_req = 1;
    let mut driver = stuck_driver(dev);
    assert_eq!(
        driver.cmd_ready(0),
        Err(DriverError::Timeout {
            register: "CTRL_REQ",
            bit: "cmdReady",
            waited: Duration::from_millis(200)
        })
    );
}

#[test]
fn start_that_never_clears_times_out_after_the_command_timeout() {
    let mut dev = StuckDevice::crb();
    dev.start = 1;
    let mut driver = stuck_driver(dev);
    driver.set_timeouts(vtpm_guest::Timeouts {
        command: Duration::from_secs(2),
        ..Default::default()
    });
    match driver.transmit(0, &vtpm_client::get_random(8)) {
        Err(DriverError::Timeout {
            register: "CTRL_START",
            bit: "Start",
            waited,
        }) => {
            assert_eq!(waited, Duration::from_secs(2));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn next_chunk_that_never_clears_names_the_bit() {
    let mut dev = StuckDevice::crb();
    dev.start = 4;
    let mut driver = stuck_driver(dev);
    let err = driver
        .transmit(0, &vtpm_client::padded_get_random(5000))
        .unwrap_err();
    assert_eq!(
        err,
        DriverError::Timeout {
            register: "CTRL_START",
            bit: "nextChunk",
            waited: Duration::from_millis(200)
        }
    );
}

#[test]
fn a_large_command_without_chunking_is_refused_before_any_write() {
    let mut dev = StuckDevice::crb();
    dev.intf_id = 0x0002_5811;
    let mut driver = stuck_driver(dev);
    assert!(!driver.probe().unwrap().chunking);
    let err = driver
        .transmit(0, &vtpm_client::padded_get_random(4000))
        .unwrap_err();
    assert_eq!(
        err,
        DriverError::CommandTooLarge {
            size: 4000,
            window: 3968
        }
    );
    assert_eq!(driver.mmio().writes, 0);
}

#[test]
fn a_tis_interface_is_not_a_crb() {
    let mut dev = StuckDevice::crb();
    dev.intf_id = 0x0000_2000;
    assert_eq!(stuck_driver(dev).probe(), Err(DriverError::NotCrb(0x2000)));
}

#[test]
fn malformed_commands_and_bad_localities_are_refused() {
    let mut driver = stuck_driver(StuckDevice::crb());
    let mut lying = vtpm_client::get_random(8);
    lying[5] += 1;
    assert!(matches!(
        driver.transmit(0, &lying),
        Err(DriverError::MalformedCommand(_))
    ));
    assert!(matches!(
        driver.transmit(0, &[0x80, 0x01]),
        Err(DriverError::MalformedCommand(_))
    ));
    assert_eq!(
        driver.transmit(5, &vtpm_client::get_random(8)),
        Err(DriverError::BadLocality(5))
    );
    assert_eq!(driver.mmio().writes, 0);
}

fn echo_platform(window: usize, chunking: ChunkPolicy) -> Platform {
    Platform::new(
        Box::new(FnBackend::echo(8192)),
        PlatformConfig {
            window_size: window,
            chunking,
            execution: Execution::Inline,
            ..PlatformConfig::default()
        },
    )
    .unwrap()
}

#[test]
fn a_response_larger_than_the_caller_allows_is_refused() {
    let p = echo_platform(256, ChunkPolicy::Auto);
    let mut driver = p.driver();
    let cmd = vtpm_client::padded_get_random(3000);
    let mut out = Vec::new();
    let options = TransmitOptions {
        max_response: 1000,
        retry_response_after: None,
    };
    assert_eq!(
        driver.transmit_with(0, &cmd, &mut out, options),
        Err(DriverError::ResponseTooLarge {
            size: 3000,
            max: 1000
        })
    );
    // The driver put the TPM back to idle: the next command works.
    assert_eq!(driver.transmit(0, &cmd).unwrap(), cmd);
}

#[test]
fn rsp_retry_rereads_the_whole_response_and_needs_chunking() {
    let p = echo_platform(256, ChunkPolicy::Auto);
    let mut driver = p.driver();
    let cmd = vtpm_client::padded_get_random(1000);
    let mut out = Vec::new();
    let options = TransmitOptions {
        max_response: 8192,
        retry_response_after: Some(2),
    };
    let t = driver.transmit_with(0, &cmd, &mut out, options).unwrap();
    assert_eq!(out, cmd);
    assert_eq!((t.chunks_received, t.response_retries), (2 + 4, 1));

    let off = echo_platform(256, ChunkPolicy::Off);
    let mut driver = off.driver();
    let small = vtpm_client::get_random(8);
    assert_eq!(
        driver.transmit_with(0, &small, &mut out, options),
        Err(DriverError::RetryUnsupported)
    );
}

#[test]
fn probe_reads_the_interface() {
    let p = echo_platform(512, ChunkPolicy::Auto);
    let info = p.driver().probe().unwrap();
    assert!(info.chunking && info.five_localities);
    assert_eq!((info.window_size, info.response_window_size), (512, 512));
    assert_eq!((info.vendor_id, info.device_id), (0x1014, 0));
}
