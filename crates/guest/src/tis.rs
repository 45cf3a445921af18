//! The TIS/FIFO driver.

use std::time::Duration;

use vtpm_wire::{Header, HEADER_SIZE};

use crate::crb::Timeouts;
use crate::mmio::{Clock, Mmio, SystemClock};

// The TIS register map as a driver sees it (PTP, FIFO interface). The
// driver keeps its own copy so it shares nothing with the device model it
// tests.
const PAGE: u64 = 0x1000;
const ACCESS: u64 = 0x00;
const INTF_CAPABILITY: u64 = 0x14;
const STS: u64 = 0x18;
const DATA_FIFO: u64 = 0x24;
const INTERFACE_ID: u64 = 0x30;
const XDATA_FIFO: u64 = 0x80;
const DID_VID: u64 = 0xF00;
const RID: u64 = 0xF04;

const ACCESS_REQUEST_USE: u8 = 1 << 1;
const ACCESS_BEEN_SEIZED: u8 = 1 << 4;
const ACCESS_ACTIVE_LOCALITY: u8 = 1 << 5;
const ACCESS_VALID: u8 = 1 << 7;
const STS_RESPONSE_RETRY: u8 = 1 << 1;
const STS_EXPECT: u8 = 1 << 3;
const STS_DATA_AVAIL: u8 = 1 << 4;
const STS_GO: u8 = 1 << 5;
const STS_COMMAND_READY: u8 = 1 << 6;
const STS_VALID: u8 = 1 << 7;
/// Bits that read 0 on a working TPM; a status with any set is not valid
/// (a locality without access reads all ones), as Linux treats it.
const STS_READ_ZERO: u8 = 0x23;
const BURST_COUNT_SHIFT: u32 = 8;
const INTERFACE_TYPE_FIFO: u32 = 0x0;
const INTERFACE_TYPE_TIS13: u32 = 0xF;
const INTERFACE_CAP_LOCALITY: u32 = 1 << 8;
const CAP_XFER_SHIFT: u32 = 9;

/// What the driver learnt from the interface registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TisInfo {
    /// TPM_INTERFACE_ID as read.
    pub interface_id: u32,
    /// TPM_INTF_CAPABILITY as read.
    pub intf_capability: u32,
    /// CapLocality: five localities.
    pub five_localities: bool,
    /// The largest FIFO access the device takes (INTF_CAPABILITY
    /// DataTransferSizeSupport: 4 legacy, 8, 32 or 64 bytes).
    pub max_access: usize,
    /// Vendor ID.
    pub vendor_id: u16,
    /// Device ID.
    pub device_id: u16,
    /// Revision ID.
    pub revision: u8,
}

/// How the driver moves FIFO bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FifoAccess {
    /// One byte per access at DATA_FIFO, as Linux's tpm_tis does.
    Bytes,
    /// Up to the device's transfer size per access, through XDATA_FIFO
    /// (DATA_FIFO with 4-byte accesses on a legacy device).
    #[default]
    Wide,
}

/// Options of one [`TisDriver::transmit_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TisTransmitOptions {
    /// The largest response the caller accepts.
    pub max_response: usize,
    /// After reading this many response bursts, ask for the response again
    /// from its first byte (responseRetry) and read it whole.
    pub retry_response_after: Option<usize>,
}

impl Default for TisTransmitOptions {
    fn default() -> Self {
        Self {
            max_response: 64 * 1024,
            retry_response_after: None,
        }
    }
}

/// What one transmit moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TisTransfer {
    /// Command bytes.
    pub request_bytes: usize,
    /// Response bytes.
    pub response_bytes: usize,
    /// Bursts written: each a burstCount read followed by up to that many
    /// command bytes (the last byte, written alone, counts as one).
    pub bursts_sent: usize,
    /// Bursts read, counting a re-read after responseRetry.
    pub bursts_received: usize,
    /// responseRetry requests made.
    pub response_retries: usize,
}

/// A failed TIS driver operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TisError {
    /// A register did not reach its expected value in time.
    #[error("timeout after {waited:?} waiting for {register}.{bit}")]
    Timeout {
        /// The register polled.
        register: &'static str,
        /// The bit (or condition) awaited.
        bit: &'static str,
        /// How long the driver waited.
        waited: Duration,
    },
    /// TPM_INTERFACE_ID does not describe a FIFO interface.
    #[error("not a FIFO/TIS interface (INTERFACE_ID {0:#010x})")]
    NotFifo(u32),
    /// Locality outside 0..=4.
    #[error("locality {0} does not exist")]
    BadLocality(u8),
    /// The command's header size disagrees with its length.
    #[error("malformed command: {len} bytes with header size {declared:?}")]
    MalformedCommand {
        /// Bytes given.
        len: usize,
        /// Size from the header, if it has one.
        declared: Option<u32>,
    },
    /// The device stopped expecting command bytes before the last one (it
    /// refuses the command, for one larger than its buffer).
    #[error("the TPM stopped expecting data after {sent} of {size} command bytes")]
    ExpectDropped {
        /// Bytes written.
        sent: usize,
        /// Command size.
        size: usize,
    },
    /// The device still expects bytes after the whole command.
    #[error("the TPM still expects data after all {size} command bytes")]
    ExpectStillSet {
        /// Command size.
        size: usize,
    },
    /// The response header is malformed.
    #[error("malformed response: header size {0}")]
    MalformedResponse(u32),
    /// The response is larger than the caller allows.
    #[error("response of {size} bytes exceeds the {max} bytes allowed")]
    ResponseTooLarge {
        /// Size from the response header.
        size: usize,
        /// The caller's bound.
        max: usize,
    },
    /// dataAvail stayed set after the whole response was read.
    #[error("dataAvail still set after the {size}-byte response")]
    LeftoverData {
        /// Response size.
        size: usize,
    },
    /// The locality was lost during the transfer (seized or released).
    #[error("locality {locality} lost during the transfer (TPM_ACCESS {access:#04x})")]
    LocalityLost {
        /// The locality used.
        locality: u8,
        /// TPM_ACCESS as read afterwards.
        access: u8,
    },
}

/// A TPM TIS/FIFO driver following Linux's tpm_tis_core.
///
/// Each [`TisDriver::transmit`] requests the locality, makes the TPM ready
/// (commandReady), writes the command in bursts of at most burstCount
/// bytes while checking Expect (with stsValid) after each, writes the last
/// byte alone and checks Expect is clear, sets tpmGo, waits for dataAvail,
/// reads the 10-byte header and then the rest in bursts, checks that no
/// data is left, and writes commandReady again. Afterwards it checks it
/// still holds the locality. The locality stays held until
/// [`TisDriver::relinquish_locality`].
pub struct TisDriver<M: Mmio, C: Clock = SystemClock> {
    mmio: M,
    clock: C,
    timeouts: Timeouts,
    access: FifoAccess,
    info: Option<TisInfo>,
    last: TisTransfer,
}

impl<M: Mmio> TisDriver<M, SystemClock> {
    /// A driver on `mmio` with the wall clock and the PTP timeouts.
    pub fn new(mmio: M) -> Self {
        Self::with_clock(mmio, SystemClock::default())
    }
}

impl<M: Mmio, C: Clock> TisDriver<M, C> {
    /// A driver with an injected clock.
    pub fn with_clock(mmio: M, clock: C) -> Self {
        Self {
            mmio,
            clock,
            timeouts: Timeouts::default(),
            access: FifoAccess::default(),
            info: None,
            last: TisTransfer::default(),
        }
    }

    /// Replaces the timeouts.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.timeouts = timeouts;
    }

    /// Chooses how FIFO bytes move (default [`FifoAccess::Wide`]).
    pub fn set_fifo_access(&mut self, access: FifoAccess) {
        self.access = access;
    }

    /// The MMIO the driver uses.
    pub fn mmio(&mut self) -> &mut M {
        &mut self.mmio
    }

    /// What the last transmit moved (also after a failed one, up to the failure).
    pub fn last_transfer(&self) -> TisTransfer {
        self.last
    }

    /// Reads the interface registers; a transmit probes on first use.
    pub fn probe(&mut self) -> Result<TisInfo, TisError> {
        let interface_id = self.mmio.read_u32(INTERFACE_ID);
        if !matches!(
            interface_id & 0xF,
            INTERFACE_TYPE_FIFO | INTERFACE_TYPE_TIS13
        ) {
            return Err(TisError::NotFifo(interface_id));
        }
        let intf_capability = self.mmio.read_u32(INTF_CAPABILITY);
        let did_vid = self.mmio.read_u32(DID_VID);
        let revision = self.read8(RID);
        let max_access = match (intf_capability >> CAP_XFER_SHIFT) & 0b11 {
            1 => 8,
            2 => 32,
            3 => 64,
            _ => 4,
        };
        let info = TisInfo {
            interface_id,
            intf_capability,
            five_localities: interface_id & INTERFACE_CAP_LOCALITY != 0,
            max_access,
            vendor_id: did_vid as u16,
            device_id: (did_vid >> 16) as u16,
            revision,
        };
        self.info = Some(info);
        Ok(info)
    }

    fn info(&mut self) -> Result<TisInfo, TisError> {
        match self.info {
            Some(i) => Ok(i),
            None => self.probe(),
        }
    }

    fn read8(&mut self, offset: u64) -> u8 {
        let mut b = [0u8; 1];
        self.mmio.read(offset, &mut b);
        b[0]
    }

    fn write8(&mut self, offset: u64, value: u8) {
        self.mmio.write(offset, &[value]);
    }

    /// True when `locality` is active with valid registers and no request
    /// of its own pending (Linux's check_locality).
    fn holds(&mut self, base: u64) -> bool {
        let access = self.read8(base + ACCESS);
        access & (ACCESS_ACTIVE_LOCALITY | ACCESS_VALID | ACCESS_REQUEST_USE)
            == ACCESS_ACTIVE_LOCALITY | ACCESS_VALID
    }

    /// Requests `locality` and waits (TIMEOUT_A) until it is granted.
    pub fn request_locality(&mut self, locality: u8) -> Result<(), TisError> {
        let base = page(locality)?;
        if self.holds(base) {
            return Ok(());
        }
        self.write8(base + ACCESS, ACCESS_REQUEST_USE);
        if self.holds(base) {
            return Ok(());
        }
        self.clock.begin_wait();
        let start = self.clock.now();
        loop {
            if self.holds(base) {
                return Ok(());
            }
            let waited = self.clock.now().saturating_sub(start);
            if waited >= self.timeouts.a {
                return Err(TisError::Timeout {
                    register: "TPM_ACCESS",
                    bit: "activeLocality",
                    waited,
                });
            }
            self.clock.pause();
        }
    }

    /// Gives `locality` up (writes activeLocality).
    pub fn relinquish_locality(&mut self, locality: u8) -> Result<(), TisError> {
        let base = page(locality)?;
        self.write8(base + ACCESS, ACCESS_ACTIVE_LOCALITY);
        Ok(())
    }

    /// Makes the TPM ready for a command: writes commandReady unless it
    /// reads set already, and waits (TIMEOUT_B) for it.
    pub fn command_ready(&mut self, locality: u8) -> Result<(), TisError> {
        let base = page(locality)?;
        if self.status(base) & STS_COMMAND_READY != 0 {
            return Ok(());
        }
        self.write8(base + STS, STS_COMMAND_READY);
        self.wait_status(base, STS_COMMAND_READY, self.timeouts.b, "commandReady")
    }

    /// Sends `command` from `locality` and returns the response.
    pub fn transmit(&mut self, locality: u8, command: &[u8]) -> Result<Vec<u8>, TisError> {
        let mut response = Vec::new();
        self.transmit_with(
            locality,
            command,
            &mut response,
            TisTransmitOptions::default(),
        )?;
        Ok(response)
    }

    /// Sends `command` from `locality`, writes the response into `response`
    /// (cleared first; its capacity is reused), and reports what moved.
    pub fn transmit_with(
        &mut self,
        locality: u8,
        command: &[u8],
        response: &mut Vec<u8>,
        options: TisTransmitOptions,
    ) -> Result<TisTransfer, TisError> {
        self.last = TisTransfer {
            request_bytes: command.len(),
            ..TisTransfer::default()
        };
        response.clear();
        let base = page(locality)?;
        let declared = Header::peek_size(command);
        if command.len() < HEADER_SIZE || declared != Some(command.len() as u32) {
            return Err(TisError::MalformedCommand {
                len: command.len(),
                declared,
            });
        }
        let info = self.info()?;
        self.request_locality(locality)?;
        let result = self
            .command_ready(locality)
            .and_then(|()| self.send(base, info, command))
            .and_then(|()| self.receive_all(base, info, response, options));
        // The TPM goes back to Ready whatever happened, as Linux does; that
        // also releases the response held in the device.
        self.write8(base + STS, STS_COMMAND_READY);
        // A transfer whose locality was taken away moved bytes of (or to)
        // someone else's transaction: whatever it read is not trusted.
        let access = self.read8(base + ACCESS);
        let held = access & (ACCESS_ACTIVE_LOCALITY | ACCESS_VALID)
            == ACCESS_ACTIVE_LOCALITY | ACCESS_VALID
            && access & ACCESS_BEEN_SEIZED == 0;
        if !held {
            response.clear();
            return Err(TisError::LocalityLost { locality, access });
        }
        result?;
        Ok(self.last)
    }

    /// Writes the command: all but the last byte in bursts with Expect
    /// checked after each, then the last byte alone, then tpmGo.
    fn send(&mut self, base: u64, info: TisInfo, command: &[u8]) -> Result<(), TisError> {
        let size = command.len();
        let mut sent = 0;
        while sent < size - 1 {
            let burst = self.burst_count(base)?.min(size - 1 - sent);
            self.write_fifo(base, info, &command[sent..sent + burst]);
            sent += burst;
            self.last.bursts_sent += 1;
            self.wait_status(base, STS_VALID, self.timeouts.c, "stsValid")?;
            if self.status(base) & STS_EXPECT == 0 {
                return Err(TisError::ExpectDropped { sent, size });
            }
        }
        self.write8(base + DATA_FIFO, command[size - 1]);
        self.last.bursts_sent += 1;
        self.wait_status(base, STS_VALID, self.timeouts.c, "stsValid")?;
        if self.status(base) & STS_EXPECT != 0 {
            return Err(TisError::ExpectStillSet { size });
        }
        self.write8(base + STS, STS_GO);
        Ok(())
    }

    /// Waits for the response and reads it, rewinding with responseRetry
    /// when the caller asked for it.
    fn receive_all(
        &mut self,
        base: u64,
        info: TisInfo,
        response: &mut Vec<u8>,
        options: TisTransmitOptions,
    ) -> Result<(), TisError> {
        self.wait_status(
            base,
            STS_DATA_AVAIL | STS_VALID,
            self.timeouts.command,
            "dataAvail",
        )?;
        if !self.receive(base, info, response, options)? {
            self.write8(base + STS, STS_RESPONSE_RETRY);
            self.last.response_retries += 1;
            let whole = TisTransmitOptions {
                retry_response_after: None,
                ..options
            };
            self.receive(base, info, response, whole)?;
        }
        Ok(())
    }

    /// Reads a whole response: the header, then the rest, in bursts. With
    /// `retry_response_after`, stops after that many bursts (if more
    /// remain) so the caller can rewind; returns whether it read it whole.
    fn receive(
        &mut self,
        base: u64,
        info: TisInfo,
        response: &mut Vec<u8>,
        options: TisTransmitOptions,
    ) -> Result<bool, TisError> {
        response.clear();
        response.resize(HEADER_SIZE, 0);
        let mut bursts = 0;
        if !self.read_bursts(base, info, response, 0, &mut bursts, options)? {
            return Ok(false);
        }
        let size = Header::peek_size(response).unwrap_or(0) as usize;
        if size < HEADER_SIZE {
            return Err(TisError::MalformedResponse(size as u32));
        }
        if size > options.max_response {
            return Err(TisError::ResponseTooLarge {
                size,
                max: options.max_response,
            });
        }
        response.resize(size, 0);
        if !self.read_bursts(base, info, response, HEADER_SIZE, &mut bursts, options)? {
            return Ok(false);
        }
        self.wait_status(base, STS_VALID, self.timeouts.c, "stsValid")?;
        if self.status(base) & STS_DATA_AVAIL != 0 {
            return Err(TisError::LeftoverData { size });
        }
        self.last.response_bytes = size;
        Ok(true)
    }

    /// Fills `response[from..]` burst by burst; false when it stopped early
    /// for a responseRetry.
    fn read_bursts(
        &mut self,
        base: u64,
        info: TisInfo,
        response: &mut [u8],
        from: usize,
        bursts: &mut usize,
        options: TisTransmitOptions,
    ) -> Result<bool, TisError> {
        let mut got = from;
        while got < response.len() {
            self.wait_status(
                base,
                STS_DATA_AVAIL | STS_VALID,
                self.timeouts.c,
                "dataAvail",
            )?;
            let burst = self.burst_count(base)?.min(response.len() - got);
            self.read_fifo(base, info, &mut response[got..got + burst]);
            got += burst;
            *bursts += 1;
            self.last.bursts_received += 1;
            if options.retry_response_after == Some(*bursts) && got < response.len() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn write_fifo(&mut self, base: u64, info: TisInfo, bytes: &[u8]) {
        match self.access {
            FifoAccess::Bytes => {
                for &b in bytes {
                    self.write8(base + DATA_FIFO, b);
                }
            }
            FifoAccess::Wide => {
                let (at, width) = self.wide(info);
                for piece in bytes.chunks(width) {
                    self.mmio.write(base + at, piece);
                }
            }
        }
    }

    fn read_fifo(&mut self, base: u64, info: TisInfo, bytes: &mut [u8]) {
        match self.access {
            FifoAccess::Bytes => {
                for b in bytes.iter_mut() {
                    *b = self.read8(base + DATA_FIFO);
                }
            }
            FifoAccess::Wide => {
                let (at, width) = self.wide(info);
                for piece in bytes.chunks_mut(width) {
                    self.mmio.read(base + at, piece);
                }
            }
        }
    }

    /// The FIFO register and access width of a wide transfer.
    fn wide(&self, info: TisInfo) -> (u64, usize) {
        if info.max_access > 4 {
            (XDATA_FIFO, info.max_access)
        } else {
            (DATA_FIFO, 4)
        }
    }

    /// TPM_STS low byte, as 0 when it is not valid (Linux's tpm_tis_status).
    fn status(&mut self, base: u64) -> u8 {
        let s = self.read8(base + STS);
        if s & STS_READ_ZERO != 0 {
            0
        } else {
            s
        }
    }

    /// Waits (TIMEOUT_A, as Linux does for a TPM 2.0) for a non-zero burstCount.
    fn burst_count(&mut self, base: u64) -> Result<usize, TisError> {
        let read =
            |d: &mut Self| ((d.mmio.read_u32(base + STS) >> BURST_COUNT_SHIFT) & 0xFFFF) as usize;
        let burst = read(self);
        if burst != 0 {
            return Ok(burst);
        }
        self.clock.begin_wait();
        let start = self.clock.now();
        loop {
            let burst = read(self);
            if burst != 0 {
                return Ok(burst);
            }
            let waited = self.clock.now().saturating_sub(start);
            if waited >= self.timeouts.a {
                return Err(TisError::Timeout {
                    register: "TPM_STS",
                    bit: "burstCount",
                    waited,
                });
            }
            self.clock.pause();
        }
    }

    /// Polls TPM_STS until every bit of `mask` is set, or fails after `limit`.
    fn wait_status(
        &mut self,
        base: u64,
        mask: u8,
        limit: Duration,
        bit: &'static str,
    ) -> Result<(), TisError> {
        if self.status(base) & mask == mask {
            return Ok(());
        }
        self.clock.begin_wait();
        let start = self.clock.now();
        loop {
            if self.status(base) & mask == mask {
                return Ok(());
            }
            let waited = self.clock.now().saturating_sub(start);
            if waited >= limit {
                return Err(TisError::Timeout {
                    register: "TPM_STS",
                    bit,
                    waited,
                });
            }
            self.clock.pause();
        }
    }
}

fn page(locality: u8) -> Result<u64, TisError> {
    if locality > 4 {
        return Err(TisError::BadLocality(locality));
    }
    Ok(u64::from(locality) * PAGE)
}
