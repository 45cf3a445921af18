//! The CRB driver.

use std::time::Duration;

use vtpm_wire::{Header, HEADER_SIZE};

use crate::mmio::{Clock, Mmio, SystemClock};

// The CRB register map as a driver sees it (PTP, CRB interface). The driver
// keeps its own copy so it shares nothing with the device model it tests.
const PAGE: u64 = 0x1000;
const LOC_STATE: u64 = 0x00;
const LOC_CTRL: u64 = 0x08;
const LOC_STS: u64 = 0x0C;
const INTF_ID_LO: u64 = 0x30;
const INTF_ID_HI: u64 = 0x34;
const CTRL_REQ: u64 = 0x40;
const CTRL_STS: u64 = 0x44;
const CTRL_CANCEL: u64 = 0x48;
const CTRL_START: u64 = 0x4C;
const CTRL_CMD_SIZE: u64 = 0x58;
const CTRL_RSP_SIZE: u64 = 0x64;
const WINDOW: u64 = 0x80;

const LOC_STATE_ASSIGNED: u32 = 1 << 1;
const LOC_STATE_ACTIVE_SHIFT: u32 = 2;
const LOC_STATE_VALID: u32 = 1 << 7;
const LOC_CTRL_REQUEST: u32 = 1 << 0;
const LOC_CTRL_RELINQUISH: u32 = 1 << 1;
const LOC_STS_GRANTED: u32 = 1 << 0;
const LOC_STS_BEEN_SEIZED: u32 = 1 << 1;
const REQ_CMD_READY: u32 = 1 << 0;
const REQ_GO_IDLE: u32 = 1 << 1;
const STS_FATAL: u32 = 1 << 0;
const START_START: u32 = 1 << 0;
const START_RSP_RETRY: u32 = 1 << 1;
const START_NEXT_CHUNK: u32 = 1 << 2;
const INTF_TYPE_CRB: u32 = 1;
const INTF_CAP_LOCALITY: u32 = 1 << 8;
const INTF_CAP_CHUNK: u32 = 1 << 10;

/// The PTP timeouts a driver waits with. The CRB driver waits with A
/// (locality), C (cmdReady, goIdle, each chunk handshake), `command`, and B
/// for a cancelled command to stop; D belongs to the FIFO (TIS) flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TIMEOUT_A (750 ms): locality requests.
    pub a: Duration,
    /// TIMEOUT_B (2 s): state changes of the whole interface.
    pub b: Duration,
    /// TIMEOUT_C (200 ms): cmdReady, goIdle, and each chunk handshake.
    pub c: Duration,
    /// TIMEOUT_D (30 ms): short status reads.
    pub d: Duration,
    /// Bound on one command's execution (key generation can take seconds).
    pub command: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            a: Duration::from_millis(750),
            b: Duration::from_secs(2),
            c: Duration::from_millis(200),
            d: Duration::from_millis(30),
            command: Duration::from_secs(300),
        }
    }
}

/// What the driver learnt from the interface registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceInfo {
    /// INTF_ID low dword as read.
    pub intf_id: u32,
    /// CapCRBChunk: the device moves commands and responses in pieces.
    pub chunking: bool,
    /// CapLocality: five localities.
    pub five_localities: bool,
    /// CTRL_CMD_SIZE: bytes of the command window.
    pub window_size: usize,
    /// CTRL_RSP_SIZE: bytes of the response window.
    pub response_window_size: usize,
    /// Vendor ID.
    pub vendor_id: u16,
    /// Device ID.
    pub device_id: u16,
    /// Revision ID.
    pub revision: u8,
}

/// Options of one [`CrbDriver::transmit_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransmitOptions {
    /// The largest response the caller accepts.
    pub max_response: usize,
    /// After reading this many response pieces, ask for the response again
    /// from its first byte (crbRspRetry) and read it whole. Needs chunking.
    pub retry_response_after: Option<usize>,
}

impl Default for TransmitOptions {
    fn default() -> Self {
        Self {
            max_response: 64 * 1024,
            retry_response_after: None,
        }
    }
}

/// What one transmit moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transfer {
    /// Command bytes.
    pub request_bytes: usize,
    /// Response bytes.
    pub response_bytes: usize,
    /// Window pieces written (each followed by nextChunk or Start).
    pub chunks_sent: usize,
    /// Window pieces read, counting a re-read after crbRspRetry.
    pub chunks_received: usize,
    /// crbRspRetry requests made.
    pub response_retries: usize,
}

/// A failed driver operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// A register bit did not reach its expected value in time.
    #[error("timeout after {waited:?} waiting for {register}.{bit}")]
    Timeout {
        /// The register polled.
        register: &'static str,
        /// The bit (or condition) awaited.
        bit: &'static str,
        /// How long the driver waited.
        waited: Duration,
    },
    /// CTRL_STS.tpmSts: the TPM reported a fatal error.
    #[error("the TPM reports a fatal error (CTRL_STS.tpmSts)")]
    Fatal,
    /// INTF_ID does not describe a CRB interface.
    #[error("not a CRB interface (INTF_ID {0:#010x})")]
    NotCrb(u32),
    /// The window is too small for a header.
    #[error("CTRL_CMD_SIZE {0} is too small for a TPM header")]
    BadWindow(usize),
    /// Locality outside 0..=4.
    #[error("locality {0} does not exist")]
    BadLocality(u8),
    /// The command does not fit the window and the device cannot chunk.
    #[error("command of {size} bytes exceeds the {window}-byte window and the device does not advertise CapCRBChunk")]
    CommandTooLarge {
        /// Command size.
        size: usize,
        /// Window size.
        window: usize,
    },
    /// The command's header is malformed (its size field disagrees with its length).
    #[error("malformed command: {0}")]
    MalformedCommand(String),
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
    /// crbRspRetry was asked for on a device without chunking.
    #[error("crbRspRetry needs CapCRBChunk")]
    RetryUnsupported,
    /// The locality was lost during the transfer (a higher locality seized
    /// the TPM, or the grant went away): what was read may not be what the
    /// TPM sent, so it is not returned.
    #[error("locality {locality} lost the TPM during the transfer (LOC_STS {loc_sts:#x})")]
    LocalityLost {
        /// The locality the transfer ran at.
        locality: u8,
        /// LOC_STS as read after the transfer.
        loc_sts: u32,
    },
}

/// A TPM CRB driver with PTP v1.07 chunking.
///
/// Each [`CrbDriver::transmit`] follows the sequence of the Linux driver:
/// request the locality, cmdReady, write the command (in pieces, each
/// acknowledged by nextChunk, when it exceeds the window), Start, wait,
/// read the response (in pieces), goIdle. The locality stays held until
/// [`CrbDriver::relinquish_locality`].
pub struct CrbDriver<M: Mmio, C: Clock = SystemClock> {
    mmio: M,
    clock: C,
    timeouts: Timeouts,
    info: Option<DeviceInfo>,
    last: Transfer,
}

impl<M: Mmio> CrbDriver<M, SystemClock> {
    /// A driver on `mmio` with the wall clock and the PTP timeouts.
    pub fn new(mmio: M) -> Self {
        Self::with_clock(mmio, SystemClock::default())
    }
}

impl<M: Mmio, C: Clock> CrbDriver<M, C> {
    /// A driver with an injected clock.
    pub fn with_clock(mmio: M, clock: C) -> Self {
        Self {
            mmio,
            clock,
            timeouts: Timeouts::default(),
            info: None,
            last: Transfer::default(),
        }
    }

    /// Replaces the timeouts.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.timeouts = timeouts;
    }

    /// The MMIO the driver uses.
    pub fn mmio(&mut self) -> &mut M {
        &mut self.mmio
    }

    /// What the last transmit moved (also after a failed one, up to the failure).
    pub fn last_transfer(&self) -> Transfer {
        self.last
    }

    /// Reads the interface registers; a transmit probes on first use.
    pub fn probe(&mut self) -> Result<DeviceInfo, DriverError> {
        let intf_id = self.mmio.read_u32(INTF_ID_LO);
        if intf_id & 0xF != INTF_TYPE_CRB {
            return Err(DriverError::NotCrb(intf_id));
        }
        let hi = self.mmio.read_u32(INTF_ID_HI);
        let window_size = self.mmio.read_u32(CTRL_CMD_SIZE) as usize;
        let response_window_size = self.mmio.read_u32(CTRL_RSP_SIZE) as usize;
        let fits_page = |n: usize| (HEADER_SIZE..=(PAGE - WINDOW) as usize).contains(&n);
        if !fits_page(window_size) {
            return Err(DriverError::BadWindow(window_size));
        }
        if !fits_page(response_window_size) {
            return Err(DriverError::BadWindow(response_window_size));
        }
        let info = DeviceInfo {
            intf_id,
            chunking: intf_id & INTF_CAP_CHUNK != 0,
            five_localities: intf_id & INTF_CAP_LOCALITY != 0,
            window_size,
            response_window_size,
            vendor_id: hi as u16,
            device_id: (hi >> 16) as u16,
            revision: (intf_id >> 24) as u8,
        };
        self.info = Some(info);
        Ok(info)
    }

    fn info(&mut self) -> Result<DeviceInfo, DriverError> {
        match self.info {
            Some(i) => Ok(i),
            None => self.probe(),
        }
    }

    /// Requests `locality` and waits (TIMEOUT_A) until it is granted.
    pub fn request_locality(&mut self, locality: u8) -> Result<(), DriverError> {
        let base = page(locality)?;
        if self.mmio.read_u32(base + LOC_STS) & LOC_STS_GRANTED != 0 {
            return Ok(());
        }
        self.mmio.write_u32(base + LOC_CTRL, LOC_CTRL_REQUEST);
        let want =
            LOC_STATE_VALID | LOC_STATE_ASSIGNED | (u32::from(locality) << LOC_STATE_ACTIVE_SHIFT);
        let mask = LOC_STATE_VALID | LOC_STATE_ASSIGNED | (0b111 << LOC_STATE_ACTIVE_SHIFT);
        self.wait(
            base + LOC_STATE,
            mask,
            want,
            self.timeouts.a,
            "LOC_STATE",
            "locAssigned",
        )
    }

    /// Gives `locality` up.
    pub fn relinquish_locality(&mut self, locality: u8) -> Result<(), DriverError> {
        let base = page(locality)?;
        self.mmio.write_u32(base + LOC_CTRL, LOC_CTRL_RELINQUISH);
        Ok(())
    }

    /// Moves the TPM to Ready and waits (TIMEOUT_C) for CTRL_REQ.cmdReady to clear.
    pub fn cmd_ready(&mut self, locality: u8) -> Result<(), DriverError> {
        let base = page(locality)?;
        self.mmio.write_u32(base + CTRL_REQ, REQ_CMD_READY);
        // A fatal error leaves Start unserved and is caught after Start.
        self.wait(
            base + CTRL_REQ,
            REQ_CMD_READY,
            0,
            self.timeouts.c,
            "CTRL_REQ",
            "cmdReady",
        )
    }

    /// Moves the TPM to Idle and waits (TIMEOUT_C) for CTRL_REQ.goIdle to clear.
    pub fn go_idle(&mut self, locality: u8) -> Result<(), DriverError> {
        let base = page(locality)?;
        self.mmio.write_u32(base + CTRL_REQ, REQ_GO_IDLE);
        self.wait(
            base + CTRL_REQ,
            REQ_GO_IDLE,
            0,
            self.timeouts.c,
            "CTRL_REQ",
            "goIdle",
        )
    }

    /// Sends `command` from `locality` and returns the response.
    pub fn transmit(&mut self, locality: u8, command: &[u8]) -> Result<Vec<u8>, DriverError> {
        let mut response = Vec::new();
        self.transmit_with(locality, command, &mut response, TransmitOptions::default())?;
        Ok(response)
    }

    /// Sends `command` from `locality`, writes the response into `response`
    /// (cleared first; its capacity is reused), and reports what moved.
    pub fn transmit_with(
        &mut self,
        locality: u8,
        command: &[u8],
        response: &mut Vec<u8>,
        options: TransmitOptions,
    ) -> Result<Transfer, DriverError> {
        self.last = Transfer {
            request_bytes: command.len(),
            ..Transfer::default()
        };
        response.clear();
        // A bad locality is refused before anything is read or written.
        page(locality)?;
        let info = self.info()?;
        let declared = Header::peek_size(command);
        if command.len() < HEADER_SIZE || declared != Some(command.len() as u32) {
            return Err(DriverError::MalformedCommand(format!(
                "{} bytes with header size {:?}",
                command.len(),
                declared
            )));
        }
        if command.len() > info.window_size && !info.chunking {
            return Err(DriverError::CommandTooLarge {
                size: command.len(),
                window: info.window_size,
            });
        }
        if options.retry_response_after.is_some() && !info.chunking {
            return Err(DriverError::RetryUnsupported);
        }
        self.request_locality(locality)?;
        self.cmd_ready(locality)?;
        let result = self.exchange(locality, info, command, response, options);
        // The TPM goes back to Idle whatever happened, as Linux does.
        let idle = self.go_idle(locality);
        result?;
        idle?;
        Ok(self.last)
    }

    fn exchange(
        &mut self,
        locality: u8,
        info: DeviceInfo,
        command: &[u8],
        response: &mut Vec<u8>,
        options: TransmitOptions,
    ) -> Result<(), DriverError> {
        let base = page(locality)?;
        self.mmio.write_u32(base + CTRL_CANCEL, 0);
        let mut pieces = command.chunks(info.window_size).peekable();
        while let Some(piece) = pieces.next() {
            self.mmio.write(base + WINDOW, piece);
            self.last.chunks_sent += 1;
            if pieces.peek().is_none() {
                self.mmio.write_u32(base + CTRL_START, START_START);
            } else {
                self.next_chunk(base)?;
            }
        }
        let started = self.wait(
            base + CTRL_START,
            START_START,
            0,
            self.timeouts.command,
            "CTRL_START",
            "Start",
        );
        if let Err(timeout) = started {
            self.abandon(base);
            return Err(timeout);
        }
        self.check_fatal(base)?;
        // A seize during the send leaves Start and nextChunk unserved,
        // which read as done from the old locality.
        self.check_still_granted(locality)?;
        let whole = self.receive(base, info, response, options)?;
        if !whole {
            self.mmio.write_u32(base + CTRL_START, START_RSP_RETRY);
            self.wait(
                base + CTRL_START,
                START_RSP_RETRY,
                0,
                self.timeouts.c,
                "CTRL_START",
                "crbRspRetry",
            )?;
            self.last.response_retries += 1;
            let rest = TransmitOptions {
                retry_response_after: None,
                ..options
            };
            self.receive(base, info, response, rest)?;
        }
        // A seize during the receive makes the rest of the window read as
        // zeros: the bytes read are not the TPM's response.
        if let Err(lost) = self.check_still_granted(locality) {
            response.clear();
            return Err(lost);
        }
        Ok(())
    }

    /// Fails unless `locality` still holds the TPM: LOC_STS.Granted set,
    /// beenSeized clear.
    fn check_still_granted(&mut self, locality: u8) -> Result<(), DriverError> {
        let loc_sts = self.mmio.read_u32(page(locality)? + LOC_STS);
        if loc_sts & LOC_STS_GRANTED == 0 || loc_sts & LOC_STS_BEEN_SEIZED != 0 {
            return Err(DriverError::LocalityLost { locality, loc_sts });
        }
        Ok(())
    }

    /// Reads a whole response, asking for each further piece with nextChunk.
    /// With `retry_response_after`, stops after that many pieces (if more
    /// remain) so the caller can rewind; returns whether it read it whole.
    fn receive(
        &mut self,
        base: u64,
        info: DeviceInfo,
        response: &mut Vec<u8>,
        options: TransmitOptions,
    ) -> Result<bool, DriverError> {
        response.clear();
        let mut header = [0u8; HEADER_SIZE];
        self.mmio.read(base + WINDOW, &mut header);
        let size = Header::peek_size(&header).unwrap_or(0) as usize;
        if size < HEADER_SIZE || (size > info.response_window_size && !info.chunking) {
            return Err(DriverError::MalformedResponse(size as u32));
        }
        if size > options.max_response {
            return Err(DriverError::ResponseTooLarge {
                size,
                max: options.max_response,
            });
        }
        response.resize(size, 0);
        let window = info.response_window_size;
        let mut got = 0;
        let mut pieces = 0;
        while got < size {
            if got > 0 {
                self.next_chunk(base)?;
            }
            let n = (size - got).min(window);
            let skip = if got == 0 { HEADER_SIZE } else { 0 };
            response[got..got + skip].copy_from_slice(&header[..skip]);
            self.mmio.read(
                base + WINDOW + skip as u64,
                &mut response[got + skip..got + n],
            );
            got += n;
            pieces += 1;
            self.last.chunks_received += 1;
            if options.retry_response_after == Some(pieces) && got < size {
                return Ok(false);
            }
        }
        self.last.response_bytes = size;
        Ok(true)
    }

    /// Gives up on a command that overran its timeout: asks the TPM to
    /// cancel it and waits (TIMEOUT_B) for Start to clear, so the window is
    /// not reused while the old command still owns it. Whatever happens,
    /// the caller reports the timeout; the goIdle that follows discards a
    /// late response.
    fn abandon(&mut self, base: u64) {
        self.mmio.write_u32(base + CTRL_CANCEL, 1);
        let _ = self.wait(
            base + CTRL_START,
            START_START,
            0,
            self.timeouts.b,
            "CTRL_START",
            "Start",
        );
        self.mmio.write_u32(base + CTRL_CANCEL, 0);
    }

    /// Hands a piece over (or asks for the next one) and waits for the
    /// device to take it. A fatal error here also leaves Start unserved, so
    /// it is caught by the check after Start rather than per piece.
    fn next_chunk(&mut self, base: u64) -> Result<(), DriverError> {
        self.mmio.write_u32(base + CTRL_START, START_NEXT_CHUNK);
        self.wait(
            base + CTRL_START,
            START_NEXT_CHUNK,
            0,
            self.timeouts.c,
            "CTRL_START",
            "nextChunk",
        )
    }

    fn check_fatal(&mut self, base: u64) -> Result<(), DriverError> {
        if self.mmio.read_u32(base + CTRL_STS) & STS_FATAL != 0 {
            return Err(DriverError::Fatal);
        }
        Ok(())
    }

    /// Polls `offset` until `(value & mask) == want`, or fails after `limit`.
    fn wait(
        &mut self,
        offset: u64,
        mask: u32,
        want: u32,
        limit: Duration,
        register: &'static str,
        bit: &'static str,
    ) -> Result<(), DriverError> {
        // Most transitions are done by the time the first read lands; the
        // clock is consulted only when they are not.
        if self.mmio.read_u32(offset) & mask == want {
            return Ok(());
        }
        self.clock.begin_wait();
        let start = self.clock.now();
        loop {
            if self.mmio.read_u32(offset) & mask == want {
                return Ok(());
            }
            let waited = self.clock.now().saturating_sub(start);
            if waited >= limit {
                return Err(DriverError::Timeout {
                    register,
                    bit,
                    waited,
                });
            }
            self.clock.pause();
        }
    }
}

fn page(locality: u8) -> Result<u64, DriverError> {
    if locality > 4 {
        return Err(DriverError::BadLocality(locality));
    }
    Ok(u64::from(locality) * PAGE)
}
