//! The CRB state machine: MMIO reads and writes in, register values,
//! window bytes and [`Action`]s out.

use vtpm_wire::{Header, ResponseCode, HEADER_SIZE};

use crate::config::{ConfigError, CrbConfig};
use crate::spec::{self, reg, CtrlCancel, CtrlReq, CtrlStart, CtrlSts, IntBits, LocCtrl};
use crate::spec::{IntfIdHi, LocState, LocSts, DATA_WINDOW_OFFSET, LOCALITY_PAGE_SIZE};

/// Identifies one execution, so a completion that outlived a reset or a
/// locality change is recognised and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExecToken(pub u64);

/// Work the device hands to its host after an MMIO write.
#[derive(Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// Run `command` on the backend at `locality`, then call
    /// [`CrbDevice::complete`] with `token`.
    Execute {
        /// Pass back to [`CrbDevice::complete`].
        token: ExecToken,
        /// Locality the command was started from.
        locality: u8,
        /// The whole command, as assembled from one or more window pieces.
        command: &'a [u8],
    },
    /// Ask the backend to cancel the executing command `token`. It still
    /// completes; a cancel that arrives after it did is to be dropped.
    Cancel {
        /// The execution to cancel.
        token: ExecToken,
    },
    /// Clear the backend's established flag on behalf of `locality` (3 or 4),
    /// then report the new flag with [`CrbDevice::set_established`].
    ResetEstablished {
        /// The locality that asked.
        locality: u8,
    },
}

/// The backend could not produce a response; the device enters the fatal
/// error state (CTRL_STS.tpmSts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendFailed;

/// What [`CrbDevice::complete`] did with a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The response is in the window.
    Delivered,
    /// The backend failed, or answered something that is not a deliverable
    /// response; tpmSts is set.
    Fatal,
    /// The locality changed while the command ran; the response was zeroed
    /// and dropped so no other locality can read it.
    Discarded,
    /// No execution with this token is in flight (a reset came first).
    Stale,
}

/// Counters of what moved through the device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Commands handed to the backend.
    pub commands_executed: u64,
    /// Commands the device answered itself (oversize or incomplete).
    pub commands_refused: u64,
    /// Command pieces taken from the window (each nextChunk or Start).
    pub command_pieces: u64,
    /// Response pieces placed in the window.
    pub response_pieces: u64,
    /// Entries into the fatal error state.
    pub fatal_errors: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No transaction data held.
    Idle,
    /// Command pieces are being assembled.
    Receiving,
    /// The backend is running the command.
    Executing {
        token: ExecToken,
        locality: u8,
        cancel_requested: bool,
        orphaned: bool,
    },
    /// A response is held and served piece by piece.
    Responding,
}

/// Which bytes of the current window piece the guest has read, so the
/// device knows when a response has been fully consumed.
#[derive(Debug, Clone)]
pub(crate) struct ReadCoverage {
    pub(crate) bits: [u64; COVERAGE_WORDS],
    pub(crate) covered: usize,
}

/// Words of the read-coverage bitmap.
pub(crate) const COVERAGE_WORDS: usize = spec::MAX_WINDOW_SIZE.div_ceil(64);

impl ReadCoverage {
    pub(crate) fn new() -> Self {
        Self {
            bits: [0; COVERAGE_WORDS],
            covered: 0,
        }
    }

    /// Coverage rebuilt from saved bitmap words, counting only bits below `len`.
    pub(crate) fn from_words(words: &[u64], len: usize) -> Self {
        let mut c = Self::new();
        for (i, w) in words.iter().take(COVERAGE_WORDS).enumerate() {
            let valid = len.saturating_sub(i * 64).min(64);
            let mask = if valid == 64 {
                u64::MAX
            } else {
                (1u64 << valid) - 1
            };
            c.bits[i] = w & mask;
            c.covered += (w & mask).count_ones() as usize;
        }
        c
    }

    fn clear(&mut self) {
        self.bits = [0; COVERAGE_WORDS];
        self.covered = 0;
    }

    /// Marks bytes `start..end` as read.
    fn mark(&mut self, start: usize, end: usize) {
        let mut pos = start;
        while pos < end {
            let word = pos / 64;
            let lo = pos % 64;
            let hi = (end - word * 64).min(64);
            let mask = if hi - lo == 64 {
                u64::MAX
            } else {
                ((1u64 << (hi - lo)) - 1) << lo
            };
            let fresh = mask & !self.bits[word];
            self.covered += fresh.count_ones() as usize;
            self.bits[word] |= mask;
            pos = word * 64 + hi;
        }
    }
}

/// A TPM CRB device model: five locality pages, a data window, chunked
/// transfers in both directions, asynchronous execution.
///
/// It is pure state: no threads, no I/O, no clock. Feed it MMIO accesses
/// with [`CrbDevice::read`] and [`CrbDevice::write`], run the [`Action`]s
/// it returns, and report results with [`CrbDevice::complete`].
#[derive(Debug, Clone)]
pub struct CrbDevice {
    pub(crate) config: CrbConfig,
    pub(crate) chunking: bool,
    pub(crate) limit: usize,
    pub(crate) intf_id_low: u32,

    pub(crate) active: Option<u8>,
    pub(crate) pending_requests: u8,
    pub(crate) been_seized: u8,
    pub(crate) established: bool,

    pub(crate) ctrl_sts: u32,
    /// cmdReady/goIdle written while a command executes: they read back 1
    /// and take effect when it completes.
    pub(crate) deferred_req: u32,
    /// A ResetEstablished action is out and not yet answered with
    /// [`CrbDevice::set_established`]; repeats are not asked again.
    pub(crate) reset_established_pending: bool,
    pub(crate) cancel: u32,
    pub(crate) int_enable: u32,
    pub(crate) int_sts: u32,
    pub(crate) ctrl_ext: u64,
    pub(crate) window: Vec<u8>,
    /// `window[window_dirty..]` is known to be zero.
    pub(crate) window_dirty: usize,

    pub(crate) phase: Phase,
    pub(crate) command: Vec<u8>,
    pub(crate) command_total: usize,
    pub(crate) command_oversize: bool,
    pub(crate) response: Vec<u8>,
    pub(crate) piece_offset: usize,
    pub(crate) piece_len: usize,
    pub(crate) coverage: ReadCoverage,
    pub(crate) next_token: u64,
    pub(crate) stats: DeviceStats,
}

/// An action decided inside the register logic, before it borrows the
/// command buffer.
enum Decided {
    Execute(ExecToken, u8),
    Cancel(ExecToken),
    ResetEstablished(u8),
}

impl CrbDevice {
    /// A device in its reset state. Buffers for one command and one
    /// response are allocated here, once; commands never allocate.
    pub fn new(config: CrbConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let limit = config.transfer_limit();
        Ok(Self::power_on(
            vec![0; config.window_size],
            Vec::with_capacity(limit),
            Vec::with_capacity(limit),
            config,
        ))
    }

    /// The power-on state around the given (zeroed) buffers.
    fn power_on(window: Vec<u8>, command: Vec<u8>, response: Vec<u8>, config: CrbConfig) -> Self {
        let chunking = config.chunking_advertised();
        Self {
            window,
            window_dirty: 0,
            command,
            response,
            chunking,
            limit: config.transfer_limit(),
            intf_id_low: spec::intf_id_low(
                config.localities == spec::MAX_LOCALITIES,
                chunking,
                config.revision,
            ),
            config,
            active: None,
            pending_requests: 0,
            been_seized: 0,
            established: false,
            ctrl_sts: spec::CTRL_STS_RESET,
            deferred_req: 0,
            reset_established_pending: false,
            cancel: 0,
            int_enable: 0,
            int_sts: 0,
            ctrl_ext: 0,
            phase: Phase::Idle,
            command_total: 0,
            command_oversize: false,
            piece_offset: 0,
            piece_len: 0,
            coverage: ReadCoverage::new(),
            next_token: 1,
            stats: DeviceStats::default(),
        }
    }

    /// The configuration the device was built with.
    pub fn config(&self) -> &CrbConfig {
        &self.config
    }

    /// Whether INTF_ID.CapCRBChunk is set.
    pub fn chunking_advertised(&self) -> bool {
        self.chunking
    }

    /// The largest command or response the device moves.
    pub fn transfer_limit(&self) -> usize {
        self.limit
    }

    /// Counters of what moved.
    pub fn stats(&self) -> DeviceStats {
        self.stats
    }

    /// The locality that owns the interface, if any.
    pub fn active_locality(&self) -> Option<u8> {
        self.active
    }

    /// Bytes of command and response data the device holds right now.
    pub fn held_bytes(&self) -> usize {
        self.command.len() + self.response.len()
    }

    /// True while a command is with the backend (START reads 1).
    pub fn is_executing(&self) -> bool {
        matches!(self.phase, Phase::Executing { .. })
    }

    /// The command with the backend, if any: for a host that must deliver
    /// it again (after restoring a snapshot, for example).
    pub fn executing_command(&self) -> Option<Action<'_>> {
        match self.phase {
            Phase::Executing {
                token, locality, ..
            } => Some(Action::Execute {
                token,
                locality,
                command: &self.command,
            }),
            _ => None,
        }
    }

    /// True when an enabled interrupt status bit is set and the global
    /// enable is on: a VMM wires this to the TPM's interrupt line.
    pub fn interrupt_pending(&self) -> bool {
        IntBits::GLOBAL_ENABLE.is_set(self.int_enable)
            && self.int_sts & self.int_enable & spec::INT_STS_BITS != 0
    }

    /// The data window, for a VMM that maps it as guest memory and sends
    /// only register accesses through the device.
    pub fn window(&self) -> &[u8] {
        &self.window
    }

    /// The data window, writable; see [`CrbDevice::window`].
    pub fn window_mut(&mut self) -> &mut [u8] {
        self.window_dirty = self.window.len();
        &mut self.window
    }

    /// Reports the backend's tpmEstablished flag (LOC_STATE bit 0 reads its
    /// inverse).
    pub fn set_established(&mut self, established: bool) {
        if self.established && !established {
            self.raise(IntBits::ESTABLISHMENT_CLEAR);
        }
        self.established = established;
        self.reset_established_pending = false;
    }

    /// The established flag last reported with [`CrbDevice::set_established`].
    pub fn established(&self) -> bool {
        self.established
    }

    /// Returns the device to its power-on state. Any completion still on
    /// its way becomes [`Completion::Stale`]; all buffers are zeroed. The
    /// established flag is the backend's and is kept.
    pub fn reset(&mut self) {
        let mut command = std::mem::take(&mut self.command);
        let mut response = std::mem::take(&mut self.response);
        let mut window = std::mem::take(&mut self.window);
        zero(&mut command);
        zero(&mut response);
        window.fill(0);
        let fresh = Self::power_on(window, command, response, self.config.clone());
        let kept = std::mem::replace(self, fresh);
        // Tokens keep counting so a completion from before the reset can
        // never match a command started after it.
        self.next_token = kept.next_token;
        self.established = kept.established;
        self.stats = kept.stats;
    }

    /// Finishes the execution identified by `token` with the backend's
    /// answer. A response must be a whole TPM response no larger than the
    /// transfer limit; anything else is treated as a backend failure.
    pub fn complete(
        &mut self,
        token: ExecToken,
        result: Result<&[u8], BackendFailed>,
    ) -> Completion {
        let outcome = match self.finish_execution(token) {
            Err(done) => done,
            Ok(()) => match result {
                Ok(r) if self.deliverable(r) => {
                    self.response.extend_from_slice(r);
                    self.deliver()
                }
                _ => self.fail_execution(),
            },
        };
        if outcome != Completion::Stale {
            self.apply_deferred_req();
        }
        outcome
    }

    /// Like [`CrbDevice::complete`], but takes the response buffer instead
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
            Ok(()) => match result {
                Ok(ref mut r) if self.deliverable(r) => {
                    // The response buffer is empty while a command executes.
                    std::mem::swap(&mut self.response, *r);
                    self.deliver()
                }
                _ => self.fail_execution(),
            },
        };
        if let Ok(r) = result {
            zero(r);
        }
        if outcome != Completion::Stale {
            self.apply_deferred_req();
        }
        outcome
    }

    /// Applies cmdReady/goIdle requests that waited for the command.
    fn apply_deferred_req(&mut self) {
        let deferred = std::mem::take(&mut self.deferred_req);
        if deferred != 0 {
            self.apply_ctrl_req(deferred);
        }
    }

    /// The common start of a completion: `Err` when it ends here (stale or
    /// discarded).
    fn finish_execution(&mut self, token: ExecToken) -> Result<(), Completion> {
        let orphaned = match self.phase {
            Phase::Executing {
                token: running,
                orphaned,
                ..
            } if running == token => orphaned,
            _ => return Err(Completion::Stale),
        };
        self.cancel = 0;
        zero(&mut self.command);
        self.command_total = 0;
        self.raise(IntBits::START);
        if orphaned {
            self.phase = Phase::Idle;
            return Err(Completion::Discarded);
        }
        Ok(())
    }

    fn deliver(&mut self) -> Completion {
        self.phase = Phase::Responding;
        self.serve_piece(0);
        Completion::Delivered
    }

    fn fail_execution(&mut self) -> Completion {
        self.enter_fatal();
        Completion::Fatal
    }

    fn deliverable(&self, response: &[u8]) -> bool {
        response.len() >= HEADER_SIZE
            && response.len() <= self.limit
            && Header::peek_size(response) == Some(response.len() as u32)
    }

    /// An MMIO read of `data.len()` bytes at `offset` from locality 0's page.
    ///
    /// Registers serve 1, 2, 4 and 8-byte accesses at any byte lane; the
    /// data window serves any length. Anything else reads as zeros.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let Some((locality, page_off)) = self.decode(offset, data.len()) else {
            return;
        };
        let win_start = DATA_WINDOW_OFFSET;
        let win_end = DATA_WINDOW_OFFSET + self.window.len() as u64;
        let end = page_off + data.len() as u64;
        if page_off >= win_start && end <= win_end {
            if self.active == Some(locality) {
                let start = (page_off - win_start) as usize;
                data.copy_from_slice(&self.window[start..start + data.len()]);
                self.note_window_read(start, start + data.len());
            }
            return;
        }
        if !matches!(data.len(), 1 | 2 | 4 | 8) || end > win_start {
            return;
        }
        for (i, byte) in data.iter_mut().enumerate() {
            let at = page_off + i as u64;
            let dword = self.read_register(locality, at & !3);
            *byte = (dword >> (8 * (at & 3))) as u8;
        }
    }

    /// An MMIO write of `data` at `offset` from locality 0's page. Returns
    /// the work the host must do, if any.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Option<Action<'_>> {
        let (locality, page_off) = self.decode(offset, data.len())?;
        let win_start = DATA_WINDOW_OFFSET;
        let win_end = DATA_WINDOW_OFFSET + self.window.len() as u64;
        let end = page_off + data.len() as u64;
        if page_off >= win_start && end <= win_end {
            if self.active == Some(locality) {
                let start = (page_off - win_start) as usize;
                self.window[start..start + data.len()].copy_from_slice(data);
                self.window_dirty = self.window_dirty.max(start + data.len());
            }
            return None;
        }
        if !matches!(data.len(), 1 | 2 | 4 | 8) || end > win_start {
            return None;
        }
        // Registers are 32 bits wide; a wider or unaligned access is split
        // into the dwords it touches. The register map makes at most one of
        // them produce an action (CANCEL acts only while executing, START
        // only while not, and CANCEL is handled first).
        let mut decided = None;
        let mut at = page_off;
        while at < end {
            let dword = at & !3;
            let (mut value, mut mask) = (0u32, 0u32);
            while at < end && at & !3 == dword {
                let shift = 8 * (at & 3);
                value |= u32::from(data[(at - page_off) as usize]) << shift;
                mask |= 0xFF << shift;
                at += 1;
            }
            if let Some(d) = self.write_register(locality, dword, value, mask) {
                decided.get_or_insert(d);
            }
        }
        decided.map(|d| match d {
            Decided::Execute(token, locality) => Action::Execute {
                token,
                locality,
                command: &self.command,
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

    fn window_address(&self, locality: u8) -> u64 {
        self.config.base_address + u64::from(locality) * LOCALITY_PAGE_SIZE + DATA_WINDOW_OFFSET
    }

    fn read_register(&self, locality: u8, dword: u64) -> u32 {
        let bit = 1u8 << locality;
        match dword {
            reg::LOC_STATE => {
                let mut v = LocState::TPM_ESTABLISHED.with_flag(0, !self.established);
                v = LocState::LOC_ASSIGNED.with_flag(v, self.active.is_some());
                v = LocState::ACTIVE_LOCALITY.with(v, u32::from(self.active.unwrap_or(0)));
                LocState::TPM_REG_VALID_STS.with_flag(v, true)
            }
            reg::LOC_STS => {
                let v = LocSts::GRANTED.with_flag(0, self.active == Some(locality));
                LocSts::BEEN_SEIZED.with_flag(v, self.been_seized & bit != 0)
            }
            reg::INTF_ID_LO => self.intf_id_low,
            reg::INTF_ID_HI => {
                let v = IntfIdHi::VID.with(0, u32::from(self.config.vendor_id));
                IntfIdHi::DID.with(v, u32::from(self.config.device_id))
            }
            reg::CTRL_EXT_LO => self.ctrl_ext as u32,
            reg::CTRL_EXT_HI => (self.ctrl_ext >> 32) as u32,
            reg::CTRL_REQ => self.deferred_req,
            reg::CTRL_STS => self.ctrl_sts,
            reg::CTRL_CANCEL => self.cancel,
            reg::CTRL_START => CtrlStart::START.with_flag(0, self.is_executing()),
            reg::INT_ENABLE => self.int_enable,
            reg::INT_STS => self.int_sts,
            reg::CTRL_CMD_SIZE | reg::CTRL_RSP_SIZE => self.window.len() as u32,
            reg::CTRL_CMD_LADDR | reg::CTRL_RSP_ADDR_LO => self.window_address(locality) as u32,
            reg::CTRL_CMD_HADDR | reg::CTRL_RSP_ADDR_HI => {
                (self.window_address(locality) >> 32) as u32
            }
            // LOC_CTRL is write-only; the rest is reserved.
            _ => 0,
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
            reg::LOC_CTRL => return self.write_loc_ctrl(locality, value),
            reg::CTRL_EXT_LO => {
                self.ctrl_ext = (self.ctrl_ext & !u64::from(mask)) | u64::from(value);
            }
            reg::CTRL_EXT_HI => {
                let m = u64::from(mask) << 32;
                self.ctrl_ext = (self.ctrl_ext & !m) | (u64::from(value) << 32);
            }
            reg::CTRL_REQ if from_active => self.write_ctrl_req(value),
            reg::CTRL_CANCEL if from_active => {
                self.cancel = (self.cancel & !mask) | (value & CtrlCancel::CANCEL.mask());
                if CtrlCancel::CANCEL.is_set(self.cancel) {
                    if let Phase::Executing {
                        token,
                        cancel_requested: ref mut requested @ false,
                        ..
                    } = self.phase
                    {
                        *requested = true;
                        return Some(Decided::Cancel(token));
                    }
                }
            }
            reg::CTRL_START if from_active => return self.write_ctrl_start(locality, value),
            reg::INT_ENABLE => {
                let m = mask & spec::INT_ENABLE_WRITABLE;
                self.int_enable = (self.int_enable & !m) | (value & m);
            }
            reg::INT_STS => self.int_sts &= !(value & spec::INT_STS_BITS),
            _ => {}
        }
        None
    }

    fn write_loc_ctrl(&mut self, locality: u8, value: u32) -> Option<Decided> {
        let bit = 1u8 << locality;
        if LocCtrl::REQUEST_ACCESS.is_set(value) {
            match self.active {
                None => self.grant(locality),
                Some(a) if a == locality => {}
                Some(_) => self.pending_requests |= bit,
            }
        }
        if LocCtrl::RELINQUISH.is_set(value) {
            self.pending_requests &= !bit;
            if self.active == Some(locality) {
                self.active = None;
                self.drop_transaction();
                self.raise(IntBits::LOCALITY_CHANGE);
                if self.pending_requests != 0 {
                    // Higher localities are more privileged and go first.
                    let next = 7 - self.pending_requests.leading_zeros() as u8;
                    self.grant(next);
                }
            }
        }
        if LocCtrl::SEIZE.is_set(value) {
            match self.active {
                Some(a) if a < locality => {
                    self.been_seized |= 1 << a;
                    self.grant(locality);
                }
                None => self.grant(locality),
                Some(_) => {}
            }
        }
        // One request at a time: until the host answers with
        // set_established, repeats would only queue work a guest controls.
        if LocCtrl::RESET_ESTABLISHMENT_BIT.is_set(value)
            && locality >= 3
            && !self.reset_established_pending
        {
            self.reset_established_pending = true;
            return Some(Decided::ResetEstablished(locality));
        }
        None
    }

    fn grant(&mut self, locality: u8) {
        let bit = 1u8 << locality;
        self.pending_requests &= !bit;
        self.been_seized &= !bit;
        if self.active != Some(locality) {
            self.active = Some(locality);
            self.drop_transaction();
            self.raise(IntBits::LOCALITY_CHANGE);
        }
    }

    /// A locality change ends the transaction: held bytes are zeroed, and
    /// a running command's response will be discarded when it arrives.
    fn drop_transaction(&mut self) {
        if let Phase::Executing {
            ref mut orphaned, ..
        } = self.phase
        {
            *orphaned = true;
            self.zero_window();
        } else {
            self.release();
        }
    }

    fn write_ctrl_req(&mut self, value: u32) {
        let value = value & (CtrlReq::CMD_READY.mask() | CtrlReq::GO_IDLE.mask());
        if self.is_executing() {
            // The transition waits for the command; until then the bits
            // read 1, so a driver sees it is not done (and times out on C).
            self.deferred_req |= value;
            return;
        }
        self.apply_ctrl_req(value);
    }

    fn apply_ctrl_req(&mut self, value: u32) {
        if CtrlReq::CMD_READY.is_set(value) {
            self.release();
            self.ctrl_sts = CtrlSts::TPM_IDLE.with_flag(self.ctrl_sts, false);
            self.raise(IntBits::CMD_READY);
        }
        if CtrlReq::GO_IDLE.is_set(value) {
            self.release();
            self.ctrl_sts = CtrlSts::TPM_IDLE.with_flag(self.ctrl_sts, true);
        }
    }

    fn write_ctrl_start(&mut self, locality: u8, value: u32) -> Option<Decided> {
        if self.is_executing() || CtrlSts::TPM_STS.is_set(self.ctrl_sts) {
            return None;
        }
        if CtrlStart::START.is_set(value) {
            return self.start(locality);
        }
        if !self.chunking {
            return None;
        }
        if CtrlStart::NEXT_CHUNK.is_set(value) {
            if self.phase == Phase::Responding
                && self.piece_offset + self.piece_len < self.response.len()
            {
                self.serve_piece(self.piece_offset + self.piece_len);
            } else {
                self.take_command_piece();
            }
        } else if CtrlStart::CRB_RSP_RETRY.is_set(value) && self.phase == Phase::Responding {
            self.serve_piece(0);
        }
        None
    }

    /// Start: take the last piece and hand the command over, or answer it
    /// here when it cannot be forwarded.
    fn start(&mut self, locality: u8) -> Option<Decided> {
        if !self.take_command_piece() {
            return None;
        }
        let short = self.command.len() < self.command_total;
        if self.command_oversize || short {
            self.stats.commands_refused += 1;
            zero(&mut self.command);
            self.command_total = 0;
            let answer = vtpm_wire::error_response(ResponseCode::COMMAND_SIZE);
            self.response.extend_from_slice(&answer);
            self.phase = Phase::Responding;
            self.raise(IntBits::START);
            self.serve_piece(0);
            return None;
        }
        let token = ExecToken(self.next_token);
        self.next_token = self.next_token.wrapping_add(1);
        self.phase = Phase::Executing {
            token,
            locality,
            cancel_requested: false,
            orphaned: false,
        };
        self.stats.commands_executed += 1;
        Some(Decided::Execute(token, locality))
    }

    /// Appends the next window piece to the command. Returns false when
    /// the first piece's header is malformed (the device is then fatal).
    fn take_command_piece(&mut self) -> bool {
        if self.phase != Phase::Receiving {
            // The window now holds the new command's first piece; only the
            // previous transaction's buffers go.
            self.clear_buffers();
            let declared = Header::peek_size(&self.window).unwrap_or(0) as usize;
            if declared < HEADER_SIZE {
                self.enter_fatal();
                return false;
            }
            self.command_total = declared;
            self.command_oversize = declared > self.limit;
            self.phase = Phase::Receiving;
        }
        self.stats.command_pieces += 1;
        if !self.command_oversize {
            let n = (self.command_total - self.command.len()).min(self.window.len());
            self.command.extend_from_slice(&self.window[..n]);
        }
        true
    }

    /// Puts the response piece starting at `offset` in the window.
    fn serve_piece(&mut self, offset: usize) {
        let len = (self.response.len() - offset).min(self.window.len());
        self.window[..len].copy_from_slice(&self.response[offset..offset + len]);
        // Stale bytes past the piece (the command, an earlier piece) must
        // not be readable.
        if self.window_dirty > len {
            self.window[len..self.window_dirty].fill(0);
        }
        self.window_dirty = len;
        self.piece_offset = offset;
        self.piece_len = len;
        self.coverage.clear();
        self.stats.response_pieces += 1;
    }

    fn note_window_read(&mut self, start: usize, end: usize) {
        if self.phase != Phase::Responding || start >= self.piece_len {
            return;
        }
        self.coverage.mark(start, end.min(self.piece_len));
        let last_piece = self.piece_offset + self.piece_len == self.response.len();
        if last_piece && self.coverage.covered == self.piece_len {
            self.release();
        }
    }

    /// Zeroes and forgets all transaction data, window included (capacity
    /// is kept).
    fn release(&mut self) {
        self.zero_window();
        self.clear_buffers();
    }

    fn zero_window(&mut self) {
        self.window[..self.window_dirty].fill(0);
        self.window_dirty = 0;
    }

    /// Zeroes and forgets the command and response buffers.
    fn clear_buffers(&mut self) {
        zero(&mut self.command);
        zero(&mut self.response);
        self.command_total = 0;
        self.command_oversize = false;
        self.piece_offset = 0;
        self.piece_len = 0;
        self.coverage.clear();
        self.phase = Phase::Idle;
    }

    fn enter_fatal(&mut self) {
        self.release();
        self.ctrl_sts = CtrlSts::TPM_STS.with_flag(self.ctrl_sts, true);
        self.stats.fatal_errors += 1;
    }

    fn raise(&mut self, bit: spec::Field) {
        self.int_sts |= bit.mask();
    }
}

fn zero(buf: &mut Vec<u8>) {
    buf.fill(0);
    buf.clear();
}
