//! The TIS/FIFO state machine: MMIO reads and writes in, register values,
//! FIFO bytes and [`Action`]s out.

use alloc::vec::Vec;
use core::fmt;

use vtpm_wire::{Header, ResponseCode, HEADER_SIZE};
use zeroize::{Zeroize, Zeroizing};

use crate::config::{ConfigError, TisConfig};
use crate::spec::{self, reg, Access, DidVid, Int, IntVector, Sts};
use crate::spec::{
    DATA_FIFO_LEN, LOCALITY_PAGE_SIZE, MAX_LOCALITIES, NO_DATA_BYTE, XDATA_FIFO_LEN,
};

pub use vtpm_mmio::{Action, BackendFailed, ExecToken};

/// What [`TisDevice::complete`] did with a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The response is in the FIFO (dataAvail).
    Delivered,
    /// The backend failed, or answered something that is not a deliverable
    /// response; the FIFO holds a TPM_RC_FAILURE response instead.
    Failed,
    /// The command was aborted (commandReady) or its locality lost the
    /// interface while it ran; the response was zeroed and dropped.
    Discarded,
    /// No execution with this token is in flight (a reset came first).
    Stale,
}

/// Counters of what moved through the device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Commands handed to the backend.
    pub commands_executed: u64,
    /// Commands the device answered itself (TPM_RC_COMMAND_SIZE).
    pub commands_refused: u64,
    /// Completions that failed and were answered with TPM_RC_FAILURE.
    pub backend_failures: u64,
    /// Command bytes taken from the FIFO.
    pub fifo_bytes_written: u64,
    /// Response bytes served through the FIFO (a re-read counts again).
    pub fifo_bytes_read: u64,
}

/// What happens when the executing command completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterExecution {
    /// Serve the response (dataAvail).
    Deliver,
    /// The locality changed: drop the response, stay Idle.
    DiscardToIdle,
    /// commandReady aborted the command: drop the response, go Ready.
    DiscardToReady,
}

/// The interface state of the active locality (PTP: Idle, Ready,
/// Reception, Execution, Completion). The FIFO buffer holds the command
/// during Reception and Execution, the response during Completion, and
/// nothing otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Idle,
    Ready,
    Reception,
    Execution {
        token: ExecToken,
        locality: u8,
        cancel_requested: bool,
        after: AfterExecution,
        /// The command is TPM2_SelfTest: success sets selfTestDone.
        self_test: bool,
    },
    Completion {
        /// Response bytes the guest has read.
        read: usize,
    },
}

/// How far the command in the FIFO is, read from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intake {
    /// Expect: more bytes are due.
    NeedMore,
    /// Every declared byte is in.
    Complete,
    /// The header declares a size below a header or above the buffer: no
    /// more bytes are taken and tpmGo answers TPM_RC_COMMAND_SIZE.
    Refused,
}

/// The registers each locality has of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalityRegs {
    pub(crate) request_use: bool,
    pub(crate) been_seized: bool,
    pub(crate) int_enable: u32,
    pub(crate) int_status: u32,
}

impl Default for LocalityRegs {
    fn default() -> Self {
        Self {
            request_use: false,
            been_seized: false,
            int_enable: spec::INT_ENABLE_RESET,
            int_status: 0,
        }
    }
}

/// A TPM TIS/FIFO device model: five locality pages, PTP arbitration, one
/// FIFO buffer of the backend's size, asynchronous execution.
///
/// It is pure state: no threads, no I/O, no clock. Feed it MMIO accesses
/// with [`TisDevice::read`] and [`TisDevice::write`], run the [`Action`]s
/// it returns, and report results with [`TisDevice::complete`]. It is not
/// `Clone` (it holds TPM traffic) and its buffer is zeroed on drop.
pub struct TisDevice {
    pub(crate) config: TisConfig,
    pub(crate) active: Option<u8>,
    pub(crate) localities: [LocalityRegs; MAX_LOCALITIES as usize],
    pub(crate) established: bool,
    pub(crate) self_test_done: bool,
    /// A ResetEstablished action is out and not yet answered with
    /// [`TisDevice::set_established`]; repeats are not asked again.
    pub(crate) reset_established_pending: bool,
    pub(crate) interface_locked: bool,
    pub(crate) phase: Phase,
    pub(crate) fifo: Zeroizing<Vec<u8>>,
    pub(crate) next_token: u64,
    pub(crate) stats: DeviceStats,
}

impl fmt::Debug for TisDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TisDevice")
            .field("backend_buffer", &self.config.backend_buffer)
            .field("active", &self.active)
            .field("phase", &self.phase)
            .field("held_bytes", &self.fifo.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// An action decided inside the register logic, before it borrows the FIFO.
enum Decided {
    Execute(ExecToken, u8),
    Cancel(ExecToken),
    ResetEstablished(u8),
}

impl TisDevice {
    /// A device in its reset state. The FIFO buffer (the backend buffer's
    /// size) is allocated here, once.
    pub fn new(config: TisConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let fifo = Zeroizing::new(Vec::with_capacity(config.backend_buffer));
        Ok(Self::power_on(fifo, config))
    }

    /// The power-on state around the given (empty, zeroed) buffer.
    fn power_on(fifo: Zeroizing<Vec<u8>>, config: TisConfig) -> Self {
        Self {
            config,
            active: None,
            localities: [LocalityRegs::default(); MAX_LOCALITIES as usize],
            established: false,
            self_test_done: false,
            reset_established_pending: false,
            interface_locked: false,
            phase: Phase::Idle,
            fifo,
            next_token: 1,
            stats: DeviceStats::default(),
        }
    }

    /// The configuration the device was built with.
    pub fn config(&self) -> &TisConfig {
        &self.config
    }

    /// The largest command or response the device moves: the backend buffer.
    pub fn transfer_limit(&self) -> usize {
        self.config.backend_buffer
    }

    /// Counters of what moved.
    pub fn stats(&self) -> DeviceStats {
        self.stats
    }

    /// The locality that owns the interface, if any.
    pub fn active_locality(&self) -> Option<u8> {
        self.active
    }

    /// Bytes of command or response data the device holds right now.
    pub fn held_bytes(&self) -> usize {
        self.fifo.len()
    }

    /// True while a command is with the backend.
    pub fn is_executing(&self) -> bool {
        matches!(self.phase, Phase::Execution { .. })
    }

    /// The command with the backend, if any: for a host that must deliver
    /// it again (after restoring a snapshot, for example).
    pub fn executing_command(&self) -> Option<Action<'_>> {
        match self.phase {
            Phase::Execution {
                token, locality, ..
            } => Some(Action::Execute {
                token,
                locality,
                command: &self.fifo,
            }),
            _ => None,
        }
    }

    /// The interrupt line: true when some locality has an enabled
    /// INT_STATUS bit set under its global enable. A VMM wires this to the
    /// TPM's interrupt (low level, as INTF_CAPABILITY says).
    pub fn interrupt_pending(&self) -> bool {
        self.localities[..usize::from(self.config.localities)]
            .iter()
            .any(|l| {
                Int::GLOBAL_ENABLE.is_set(l.int_enable)
                    && l.int_status & l.int_enable & spec::INT_SOURCES != 0
            })
    }

    /// Reports the backend's tpmEstablished flag (ACCESS.tpmEstablishment
    /// reads its inverse).
    pub fn set_established(&mut self, established: bool) {
        self.established = established;
        self.reset_established_pending = false;
    }

    /// The established flag last reported with [`TisDevice::set_established`].
    pub fn established(&self) -> bool {
        self.established
    }

    /// Returns the device to its power-on state. Any completion still on
    /// its way becomes [`Completion::Stale`]; the buffer is zeroed. The
    /// established flag is the backend's and is kept.
    pub fn reset(&mut self) {
        let mut fifo = core::mem::take(&mut self.fifo);
        wipe(&mut fifo);
        let fresh = Self::power_on(fifo, self.config.clone());
        let kept = core::mem::replace(self, fresh);
        // Tokens keep counting so a completion from before the reset can
        // never match a command started after it.
        self.next_token = kept.next_token;
        self.established = kept.established;
        self.stats = kept.stats;
    }

    /// Finishes the execution identified by `token` with the backend's
    /// answer. A response must be a whole TPM response no larger than the
    /// transfer limit; anything else is answered with TPM_RC_FAILURE.
    pub fn complete(
        &mut self,
        token: ExecToken,
        result: Result<&[u8], BackendFailed>,
    ) -> Completion {
        let (locality, self_test) = match self.finish_execution(token) {
            Err(done) => return done,
            Ok(running) => running,
        };
        match result {
            Ok(r) if self.deliverable(r) => {
                self.ensure_capacity();
                self.fifo.extend_from_slice(r);
                self.deliver(locality, self_test)
            }
            _ => self.fail(locality),
        }
    }

    /// Like [`TisDevice::complete`], but takes the response buffer instead
    /// of copying it. On return `response` is always empty and zeroed, and
    /// holds a buffer the caller may reuse for the next response.
    pub fn complete_swap(
        &mut self,
        token: ExecToken,
        result: Result<&mut Vec<u8>, BackendFailed>,
    ) -> Completion {
        let mut result = result;
        let outcome = match self.finish_execution(token) {
            Err(done) => done,
            Ok((locality, self_test)) => match result {
                Ok(ref mut r) if self.deliverable(r) => {
                    // The FIFO is empty (wiped) once execution finishes.
                    core::mem::swap(&mut *self.fifo, *r);
                    self.deliver(locality, self_test)
                }
                _ => self.fail(locality),
            },
        };
        if let Ok(r) = result {
            wipe(r);
        }
        outcome
    }

    /// The common start of a completion: `Err` when it ends here (stale or
    /// discarded), else the locality and whether the command was SelfTest.
    fn finish_execution(&mut self, token: ExecToken) -> Result<(u8, bool), Completion> {
        let (locality, after, self_test) = match self.phase {
            Phase::Execution {
                token: running,
                locality,
                after,
                self_test,
                ..
            } if running == token => (locality, after, self_test),
            _ => return Err(Completion::Stale),
        };
        wipe(&mut self.fifo);
        match after {
            AfterExecution::Deliver => Ok((locality, self_test)),
            AfterExecution::DiscardToIdle => {
                self.phase = Phase::Idle;
                Err(Completion::Discarded)
            }
            AfterExecution::DiscardToReady => {
                self.phase = Phase::Ready;
                if let Some(active) = self.active {
                    self.raise(active, Int::COMMAND_READY.mask());
                }
                Err(Completion::Discarded)
            }
        }
    }

    fn deliver(&mut self, locality: u8, self_test: bool) -> Completion {
        if self_test && Header::parse(&self.fifo).map(|h| h.code) == Ok(ResponseCode::SUCCESS.0) {
            self.self_test_done = true;
        }
        self.phase = Phase::Completion { read: 0 };
        self.raise(locality, Int::DATA_AVAIL.mask() | Int::STS_VALID.mask());
        Completion::Delivered
    }

    fn fail(&mut self, locality: u8) -> Completion {
        self.stats.backend_failures += 1;
        self.answer_locally(ResponseCode::FAILURE);
        self.raise(locality, Int::DATA_AVAIL.mask() | Int::STS_VALID.mask());
        Completion::Failed
    }

    /// Replaces whatever the FIFO holds with a 10-byte error response and
    /// serves it.
    fn answer_locally(&mut self, rc: ResponseCode) {
        wipe(&mut self.fifo);
        self.ensure_capacity();
        self.fifo.extend_from_slice(&vtpm_wire::error_response(rc));
        self.phase = Phase::Completion { read: 0 };
    }

    fn deliverable(&self, response: &[u8]) -> bool {
        response.len() >= HEADER_SIZE
            && response.len() <= self.config.backend_buffer
            && Header::peek_size(response) == Some(response.len() as u32)
    }

    /// The FIFO buffer must never grow by reallocation while it holds
    /// bytes (the old allocation would be freed unwiped); a buffer swapped
    /// in by `complete_swap` may be smaller, so it is replaced while empty.
    fn ensure_capacity(&mut self) {
        if self.fifo.capacity() < self.config.backend_buffer {
            debug_assert!(self.fifo.is_empty());
            self.fifo = Zeroizing::new(Vec::with_capacity(self.config.backend_buffer));
        }
    }

    /// An MMIO read of `data.len()` bytes at `offset` from locality 0's page.
    ///
    /// Registers serve 1, 2, 4 and 8-byte accesses at any byte lane; an
    /// access inside DATA_FIFO (0x24..0x28) or XDATA_FIFO (0x80..0xC0)
    /// reads that many FIFO bytes. Reserved space, STS of a locality that
    /// is not active, and FIFO bytes with no response to give read 0xFF.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(NO_DATA_BYTE);
        let Some((locality, page_off)) = self.decode(offset, data.len()) else {
            return;
        };
        if fifo_access(page_off, data.len()) {
            if self.active == Some(locality) {
                self.fifo_read(locality, data);
            }
            return;
        }
        if !matches!(data.len(), 1 | 2 | 4 | 8) {
            return;
        }
        let width = data.len();
        for (i, byte) in data.iter_mut().enumerate() {
            let at = page_off + i as u64;
            if in_fifo(at) {
                continue;
            }
            let dword = self.read_register(locality, at & !3, width);
            *byte = (dword >> (8 * (at & 3))) as u8;
        }
    }

    /// An MMIO write of `data` at `offset` from locality 0's page. Returns
    /// the work the host must do, if any.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Option<Action<'_>> {
        let (locality, page_off) = self.decode(offset, data.len())?;
        if fifo_access(page_off, data.len()) {
            if self.active == Some(locality) {
                self.fifo_write(locality, data);
            }
            return None;
        }
        if !matches!(data.len(), 1 | 2 | 4 | 8) {
            return None;
        }
        // Registers are 32 bits wide; a wider or unaligned access is split
        // into the dwords it touches. Only STS produces actions, so one
        // access yields at most one.
        let end = page_off + data.len() as u64;
        let mut decided = None;
        let mut at = page_off;
        while at < end {
            let dword = at & !3;
            let (mut value, mut mask) = (0u32, 0u32);
            while at < end && at & !3 == dword {
                if !in_fifo(at) {
                    let shift = 8 * (at & 3);
                    value |= u32::from(data[(at - page_off) as usize]) << shift;
                    mask |= 0xFF << shift;
                }
                at += 1;
            }
            if mask != 0 {
                if let Some(d) = self.write_register(locality, dword, value, mask) {
                    decided.get_or_insert(d);
                }
            }
        }
        decided.map(|d| match d {
            Decided::Execute(token, locality) => Action::Execute {
                token,
                locality,
                command: &self.fifo,
            },
            Decided::Cancel(token) => Action::Cancel { token },
            Decided::ResetEstablished(locality) => Action::ResetEstablished { locality },
        })
    }

    /// Splits an offset into (locality, offset in page); `None` for an
    /// access outside the configured pages or across a page boundary.
    fn decode(&self, offset: u64, len: usize) -> Option<(u8, u64)> {
        let locality = offset / LOCALITY_PAGE_SIZE;
        let page_off = offset % LOCALITY_PAGE_SIZE;
        let fits = page_off.checked_add(len as u64)? <= LOCALITY_PAGE_SIZE;
        (locality < u64::from(self.config.localities) && fits && len > 0)
            .then_some((locality as u8, page_off))
    }

    /// The value of the register dword at `dword`, as `locality` reads it
    /// with an access of `width` bytes; reserved dwords read all ones.
    fn read_register(&self, locality: u8, dword: u64, width: usize) -> u32 {
        let regs = &self.localities[usize::from(locality)];
        match dword {
            reg::ACCESS => self.access(locality),
            reg::INT_ENABLE => regs.int_enable,
            reg::INT_VECTOR => IntVector::SIRQ_VEC.with(0, u32::from(self.config.int_vector)),
            reg::INT_STATUS => regs.int_status,
            reg::INTF_CAPABILITY => spec::intf_capability(),
            reg::STS if self.active == Some(locality) => self.sts(width),
            reg::INTERFACE_ID => spec::interface_id(
                self.config.localities == MAX_LOCALITIES,
                self.interface_locked,
                self.config.revision,
            ),
            reg::DID_VID => {
                let v = DidVid::VID.with(0, u32::from(self.config.vendor_id));
                DidVid::DID.with(v, u32::from(self.config.device_id))
            }
            reg::RID => u32::from(self.config.revision),
            // STS of a locality without access, and reserved space.
            _ => u32::MAX,
        }
    }

    fn access(&self, locality: u8) -> u32 {
        let regs = &self.localities[usize::from(locality)];
        let others_waiting = self.localities[..usize::from(self.config.localities)]
            .iter()
            .enumerate()
            .any(|(l, r)| l != usize::from(locality) && r.request_use);
        let mut v = Access::TPM_ESTABLISHMENT.with_flag(0, !self.established);
        v = Access::REQUEST_USE.with_flag(v, regs.request_use);
        v = Access::PENDING_REQUEST.with_flag(v, others_waiting);
        v = Access::BEEN_SEIZED.with_flag(v, regs.been_seized);
        v = Access::ACTIVE_LOCALITY.with_flag(v, self.active == Some(locality));
        Access::TPM_REG_VALID_STS.with_flag(v, true)
    }

    /// TPM_STS of the active locality.
    fn sts(&self, width: usize) -> u32 {
        let limit = self.config.backend_buffer;
        let (command_ready, valid, expect, data_avail, burst) = match self.phase {
            Phase::Idle => (false, false, false, false, 0),
            Phase::Ready => (true, false, false, false, limit),
            Phase::Reception => match self.intake() {
                Intake::NeedMore => (false, true, true, false, limit - self.fifo.len()),
                Intake::Complete | Intake::Refused => (false, true, false, false, 0),
            },
            Phase::Execution { .. } => (false, true, false, false, 0),
            Phase::Completion { read } => {
                let left = self.fifo.len() - read;
                (false, true, false, left > 0, left)
            }
        };
        let mut burst = burst.min(spec::MAX_BURST_COUNT);
        if width == 1 {
            // A byte read of the low burstCount byte must not show 0x00
            // for 0x100 bytes; under-promising is always safe.
            burst = burst.min(0xFF);
        }
        let mut v = Sts::TPM_FAMILY.with(0, spec::FAMILY_TPM2);
        v = Sts::SELF_TEST_DONE.with_flag(v, self.self_test_done);
        v = Sts::COMMAND_READY.with_flag(v, command_ready);
        v = Sts::STS_VALID.with_flag(v, valid);
        v = Sts::EXPECT.with_flag(v, expect);
        v = Sts::DATA_AVAIL.with_flag(v, data_avail);
        Sts::BURST_COUNT.with(v, burst as u32)
    }

    pub(crate) fn intake(&self) -> Intake {
        let Some(declared) = Header::peek_size(&self.fifo) else {
            return Intake::NeedMore;
        };
        let declared = declared as usize;
        if !(HEADER_SIZE..=self.config.backend_buffer).contains(&declared) {
            Intake::Refused
        } else if self.fifo.len() < declared {
            Intake::NeedMore
        } else {
            Intake::Complete
        }
    }

    /// Serves FIFO bytes into `data`; bytes past the response (or outside
    /// Completion) stay 0xFF.
    fn fifo_read(&mut self, locality: u8, data: &mut [u8]) {
        let Phase::Completion { ref mut read } = self.phase else {
            return;
        };
        let n = data.len().min(self.fifo.len() - *read);
        if n == 0 {
            return;
        }
        data[..n].copy_from_slice(&self.fifo[*read..*read + n]);
        *read += n;
        self.stats.fifo_bytes_read += n as u64;
        if *read == self.fifo.len() {
            self.raise(locality, Int::STS_VALID.mask());
        }
    }

    fn fifo_write(&mut self, locality: u8, data: &[u8]) {
        match self.phase {
            Phase::Ready => {
                self.ensure_capacity();
                self.phase = Phase::Reception;
            }
            Phase::Reception => {}
            // Idle, Execution, Completion: the bytes are dropped.
            _ => return,
        }
        let mut data = data;
        while !data.is_empty() && self.intake() == Intake::NeedMore {
            // Up to the size field, byte by byte; then, once the size is
            // known, everything it still declares (NeedMore implies it
            // fits the buffer).
            let want = match Header::peek_size(&self.fifo) {
                None => 1,
                Some(declared) => declared as usize - self.fifo.len(),
            };
            let (now, rest) = data.split_at(want.min(data.len()));
            self.fifo.extend_from_slice(now);
            self.stats.fifo_bytes_written += now.len() as u64;
            data = rest;
            if self.intake() != Intake::NeedMore {
                self.raise(locality, Int::STS_VALID.mask());
            }
        }
    }

    fn write_register(
        &mut self,
        locality: u8,
        dword: u64,
        value: u32,
        mask: u32,
    ) -> Option<Decided> {
        let value = value & mask;
        let from_active = self.active == Some(locality);
        match dword {
            reg::ACCESS => self.write_access(locality, value),
            reg::INT_ENABLE if from_active => {
                let regs = &mut self.localities[usize::from(locality)];
                let m = mask & spec::INT_ENABLE_WRITABLE;
                regs.int_enable = (regs.int_enable & !m) | (value & m);
            }
            reg::INT_STATUS if from_active => {
                self.localities[usize::from(locality)].int_status &= !(value & spec::INT_SOURCES);
            }
            reg::STS if from_active => return self.write_sts(locality, value),
            reg::INTERFACE_ID if spec::InterfaceId::INTF_SEL_LOCK.is_set(value) => {
                self.interface_locked = true;
            }
            // INT_VECTOR is wired by the configuration; the rest is read
            // only or reserved.
            _ => {}
        }
        None
    }

    fn write_access(&mut self, locality: u8, value: u32) {
        let mut value = value;
        let l = usize::from(locality);
        if Access::SEIZE.is_set(value) {
            // A seize is the whole request.
            value = Access::REQUEST_USE.with_flag(value, false);
            value = Access::ACTIVE_LOCALITY.with_flag(value, false);
        }
        if Access::ACTIVE_LOCALITY.is_set(value) {
            if self.active == Some(locality) {
                self.active = None;
                self.drop_transaction();
                // Higher localities are more privileged and go first.
                let next = (0..self.config.localities)
                    .rev()
                    .find(|&c| self.localities[usize::from(c)].request_use);
                if let Some(next) = next {
                    self.grant(next);
                }
            } else {
                self.localities[l].request_use = false;
            }
        }
        if Access::BEEN_SEIZED.is_set(value) {
            self.localities[l].been_seized = false;
        }
        if Access::SEIZE.is_set(value) {
            match self.active {
                Some(a) if a < locality => {
                    self.localities[usize::from(a)].been_seized = true;
                    self.grant(locality);
                }
                None => self.grant(locality),
                Some(_) => {}
            }
        }
        if Access::REQUEST_USE.is_set(value) {
            match self.active {
                None => self.grant(locality),
                Some(a) if a == locality => {}
                Some(_) => self.localities[l].request_use = true,
            }
        }
    }

    fn grant(&mut self, locality: u8) {
        let regs = &mut self.localities[usize::from(locality)];
        regs.request_use = false;
        regs.been_seized = false;
        if self.active != Some(locality) {
            self.active = Some(locality);
            self.drop_transaction();
            self.raise(locality, Int::LOCALITY_CHANGE.mask());
        }
    }

    /// A locality change ends the transaction: held bytes are zeroed, and
    /// a running command's response will be discarded when it arrives.
    fn drop_transaction(&mut self) {
        if let Phase::Execution { ref mut after, .. } = self.phase {
            *after = AfterExecution::DiscardToIdle;
        } else {
            wipe(&mut self.fifo);
            self.phase = Phase::Idle;
        }
    }

    fn write_sts(&mut self, locality: u8, value: u32) -> Option<Decided> {
        let mut decided = None;
        if Sts::COMMAND_CANCEL.is_set(value) {
            decided = self.request_cancel();
        }
        // commandReady, tpmGo and responseRetry act only one at a time.
        let ready = Sts::COMMAND_READY.is_set(value);
        let go = Sts::TPM_GO.is_set(value);
        let retry = Sts::RESPONSE_RETRY.is_set(value);
        let d = match (ready, go, retry) {
            (true, false, false) => self.command_ready(locality),
            (false, true, false) => self.go(locality),
            (false, false, true) => {
                if let Phase::Completion { ref mut read } = self.phase {
                    *read = 0;
                }
                None
            }
            _ => None,
        };
        if let Some(d) = d {
            decided.get_or_insert(d);
        }
        // One request at a time: until the host answers with
        // set_established, repeats would only queue work a guest controls.
        if Sts::RESET_ESTABLISHMENT.is_set(value)
            && locality >= 3
            && !self.reset_established_pending
            && decided.is_none()
        {
            self.reset_established_pending = true;
            decided = Some(Decided::ResetEstablished(locality));
        }
        decided
    }

    /// Asks for a cancel of the running command, once per execution.
    fn request_cancel(&mut self) -> Option<Decided> {
        if let Phase::Execution {
            token,
            cancel_requested: ref mut requested @ false,
            ..
        } = self.phase
        {
            *requested = true;
            return Some(Decided::Cancel(token));
        }
        None
    }

    fn command_ready(&mut self, locality: u8) -> Option<Decided> {
        match self.phase {
            Phase::Ready => None,
            Phase::Idle | Phase::Reception | Phase::Completion { .. } => {
                wipe(&mut self.fifo);
                self.phase = Phase::Ready;
                self.raise(locality, Int::COMMAND_READY.mask());
                None
            }
            Phase::Execution { ref mut after, .. } => {
                // The command is aborted; Ready follows its completion.
                *after = AfterExecution::DiscardToReady;
                self.request_cancel()
            }
        }
    }

    fn go(&mut self, locality: u8) -> Option<Decided> {
        if self.phase != Phase::Reception {
            return None;
        }
        match self.intake() {
            Intake::NeedMore => None,
            Intake::Refused => {
                self.stats.commands_refused += 1;
                self.answer_locally(ResponseCode::COMMAND_SIZE);
                self.raise(locality, Int::DATA_AVAIL.mask() | Int::STS_VALID.mask());
                None
            }
            Intake::Complete => {
                let token = ExecToken(self.next_token);
                self.next_token = self.next_token.wrapping_add(1);
                let self_test =
                    Header::parse(&self.fifo).map(|h| h.code) == Ok(vtpm_wire::cc::SELF_TEST);
                self.phase = Phase::Execution {
                    token,
                    locality,
                    cancel_requested: false,
                    after: AfterExecution::Deliver,
                    self_test,
                };
                self.stats.commands_executed += 1;
                Some(Decided::Execute(token, locality))
            }
        }
    }

    /// Sets the enabled ones of `bits` in `locality`'s INT_STATUS, when its
    /// global enable is on.
    fn raise(&mut self, locality: u8, bits: u32) {
        let regs = &mut self.localities[usize::from(locality)];
        if Int::GLOBAL_ENABLE.is_set(regs.int_enable) {
            regs.int_status |= bits & regs.int_enable & spec::INT_SOURCES;
        }
    }
}

/// True when `len` bytes at `page_off` lie inside one of the FIFO registers.
fn fifo_access(page_off: u64, len: usize) -> bool {
    let end = page_off + len as u64;
    let inside = |start: u64, size: u64| page_off >= start && end <= start + size;
    inside(reg::DATA_FIFO, DATA_FIFO_LEN) || inside(reg::XDATA_FIFO, XDATA_FIFO_LEN)
}

/// True when the byte at `at` belongs to a FIFO register: a register-sized
/// access that straddles a FIFO and a register moves no FIFO byte.
fn in_fifo(at: u64) -> bool {
    fifo_access(at, 1)
}

/// Zeroes the bytes a buffer holds, then empties it (capacity kept). Bytes
/// past its length are zero already: they were wiped when last used.
pub(crate) fn wipe(buf: &mut Vec<u8>) {
    buf.as_mut_slice().zeroize();
    buf.clear();
}
