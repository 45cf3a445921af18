//! The CRB state machine: MMIO reads and writes in, register values,
//! window bytes and [`Action`]s out.

use core::fmt;
use core::mem;

use alloc::vec;
use alloc::vec::Vec;
use zeroize::{Zeroize, Zeroizing};

use crate::config::{ConfigError, CrbConfig};
use crate::spec::{self, reg, CtrlCancel, CtrlReq, CtrlStart, CtrlSts, IntBits, LocCtrl};
use crate::spec::{IntfIdHi, LocState, LocSts, DATA_WINDOW_OFFSET, LOCALITY_PAGE_SIZE};
use crate::tpm::{self, HEADER_SIZE};

pub use vtpm_mmio::{Action, BackendFailed, ExecToken};

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

/// Counters of what moved through the device. They saturate rather than
/// wrap: a restored snapshot may start them anywhere.
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

/// A buffer of TPM traffic: wiped (capacity included) when released and
/// on drop.
pub(crate) type Traffic = Zeroizing<Vec<u8>>;

/// Where a transaction is. Each phase owns exactly the state that exists
/// in it, buffers included, so a snapshot cannot describe (and the device
/// cannot reach) response bytes while receiving, or a piece offset while
/// executing.
// The device holds one Phase; boxing the responding state (its read
// coverage) would allocate per response.
#[allow(clippy::large_enum_variant)]
#[derive(Default)]
pub(crate) enum Phase {
    /// No transaction data held.
    #[default]
    Idle,
    /// Command pieces are being assembled.
    Receiving(Receiving),
    /// The backend is running the command.
    Executing(Executing),
    /// A response is held and served piece by piece.
    Responding(Responding),
}

/// A command arriving piece by piece.
pub(crate) struct Receiving {
    /// The pieces so far (empty when `oversize`).
    pub(crate) command: Traffic,
    /// The size its first piece's header declares.
    pub(crate) total: usize,
    /// `total` exceeds the transfer limit: pieces are counted, not kept,
    /// and Start answers TPM_RC_COMMAND_SIZE.
    pub(crate) oversize: bool,
}

/// A whole command with the backend.
pub(crate) struct Executing {
    /// The command, kept for re-delivery after a restore.
    pub(crate) command: Traffic,
    pub(crate) token: ExecToken,
    pub(crate) locality: u8,
    /// Action::Cancel was already returned for this execution.
    pub(crate) cancel_requested: bool,
    /// The locality changed: the response will be discarded.
    pub(crate) orphaned: bool,
}

/// A response served through the window.
pub(crate) struct Responding {
    pub(crate) response: Traffic,
    /// Where the piece in the window starts in the response.
    pub(crate) piece_offset: usize,
    /// Bytes of the piece in the window.
    pub(crate) piece_len: usize,
    /// Which bytes of the piece the guest has read.
    pub(crate) coverage: ReadCoverage,
    /// The window may hold bytes the guest wrote since the piece was
    /// served (a VMM wrote through [`CrbDevice::window_mut`]), so Start or
    /// nextChunk past the last piece takes it as a new command.
    pub(crate) window_written: bool,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Self::Idle => "Idle",
            Self::Receiving(_) => "Receiving",
            Self::Executing(_) => "Executing",
            Self::Responding(_) => "Responding",
        }
    }
}

/// Which bytes of the current window piece the guest has read, so the
/// device knows when a response has been fully consumed.
#[derive(Clone)]
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

    /// Coverage rebuilt from saved bitmap words; `None` when a bit lies at
    /// or past `len`, which no read can set.
    pub(crate) fn from_words(words: &[u64], len: usize) -> Option<Self> {
        if words.len() > COVERAGE_WORDS {
            return None;
        }
        let mut c = Self::new();
        for (i, &w) in words.iter().enumerate() {
            let valid = len.saturating_sub(i * 64).min(64);
            let mask = if valid == 64 {
                u64::MAX
            } else {
                (1u64 << valid) - 1
            };
            if w & !mask != 0 {
                return None;
            }
            c.bits[i] = w;
            c.covered += w.count_ones() as usize;
        }
        Some(c)
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

/// The data window and how much of it may be non-zero.
#[derive(Default)]
pub(crate) struct Window {
    pub(crate) bytes: Traffic,
    /// `bytes[dirty..]` is known to be zero.
    pub(crate) dirty: usize,
    /// Bumped whenever the device changes the bytes, so a VMM-mapped copy
    /// in guest RAM is rewritten only when it must be. Not state: a
    /// restored device starts it anywhere.
    pub(crate) changes: u64,
}

impl Window {
    fn new(len: usize) -> Self {
        Self {
            bytes: Zeroizing::new(vec![0; len]),
            dirty: 0,
            changes: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    fn write(&mut self, start: usize, data: &[u8]) {
        self.bytes[start..start + data.len()].copy_from_slice(data);
        self.dirty = self.dirty.max(start + data.len());
        self.changes = self.changes.wrapping_add(1);
    }

    /// Puts a response piece at the start; stale bytes past it (the
    /// command, an earlier piece) are wiped so they cannot be read.
    fn put_piece(&mut self, piece: &[u8]) {
        self.bytes[..piece.len()].copy_from_slice(piece);
        if self.dirty > piece.len() {
            self.bytes[piece.len()..self.dirty].zeroize();
        }
        self.dirty = piece.len();
        self.changes = self.changes.wrapping_add(1);
    }

    /// Zeroes the window. Counted as a change even when it was already
    /// zero here: a guest-RAM window may still hold the guest's bytes.
    fn zero(&mut self) {
        self.bytes[..self.dirty].zeroize();
        self.dirty = 0;
        self.changes = self.changes.wrapping_add(1);
    }
}

/// Buffers not in use by the current phase, kept so that commands never
/// allocate. Always empty (and wiped).
#[derive(Default)]
pub(crate) struct Spare {
    pub(crate) command: Traffic,
    pub(crate) response: Traffic,
}

/// A TPM CRB device model: five locality pages, a data window, chunked
/// transfers in both directions, asynchronous execution.
///
/// It is pure state: no threads, no I/O, no clock. Feed it MMIO accesses
/// with [`CrbDevice::read`] and [`CrbDevice::write`], run the [`Action`]s
/// it returns, and report results with [`CrbDevice::complete`].
///
/// It is neither `Clone` nor printed byte by byte: it holds TPM traffic,
/// which is wiped when a transaction ends and when the device is dropped.
pub struct CrbDevice {
    pub(crate) config: CrbConfig,
    pub(crate) chunking: bool,
    pub(crate) limit: usize,
    pub(crate) intf_id_low: u32,

    pub(crate) active: Option<u8>,
    pub(crate) pending_requests: u8,
    pub(crate) been_seized: u8,
    pub(crate) established: bool,
    /// A ResetEstablished action is out and not yet answered with
    /// [`CrbDevice::set_established`]; repeats are not asked again.
    pub(crate) reset_established_pending: bool,

    pub(crate) ctrl_sts: u32,
    /// cmdReady/goIdle written while a command executes: they read back 1
    /// and take effect when it completes.
    pub(crate) deferred_req: u32,
    pub(crate) cancel: u32,
    pub(crate) int_enable: u32,
    pub(crate) int_sts: u32,
    pub(crate) ctrl_ext: u64,
    pub(crate) window: Window,

    pub(crate) phase: Phase,
    pub(crate) spare: Spare,
    pub(crate) next_token: u64,
    pub(crate) stats: DeviceStats,
}

/// Prints the state and the lengths of what is held, never the bytes.
impl fmt::Debug for CrbDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrbDevice")
            .field("config", &self.config)
            .field("active", &self.active)
            .field("phase", &self.phase.name())
            .field("held_bytes", &self.held_bytes())
            .field("window_dirty", &self.window.dirty)
            .field("ctrl_sts", &self.ctrl_sts)
            .field("next_token", &self.next_token)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// An action decided inside the register logic, before it borrows the
/// command buffer.
pub(crate) enum Decided {
    Execute,
    Cancel(ExecToken),
    ResetEstablished(u8),
}

/// Where an MMIO access lands.
enum Target {
    /// Inside the data window of `locality`, from byte `start`.
    Window { locality: u8, start: usize },
    /// A 1, 2, 4 or 8-byte register access in `locality`'s page.
    Registers { locality: u8, page_off: u64 },
}

// An access is at most 8 bytes, so it never reaches both LOC_CTRL and the
// CANCEL/START pair: at most one of them decides an action per access.
const _: () = assert!(reg::CTRL_CANCEL >= reg::LOC_CTRL + 4 + 8);
const _: () = assert!(reg::CTRL_START == reg::CTRL_CANCEL + 4);

/// The answer handed to a completion.
enum Answer<'a> {
    Copy(&'a [u8]),
    Swap(&'a mut Vec<u8>),
}

impl Answer<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Self::Copy(r) => r,
            Self::Swap(r) => r,
        }
    }
}

impl CrbDevice {
    /// A device in its reset state. Buffers for one command and one
    /// response are allocated here, once; commands never allocate.
    pub fn new(config: CrbConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let limit = config.transfer_limit();
        let spare = Spare {
            command: Zeroizing::new(Vec::with_capacity(limit)),
            response: Zeroizing::new(Vec::with_capacity(limit)),
        };
        Ok(Self::power_on(
            Window::new(config.window_size),
            spare,
            config,
        ))
    }

    /// The power-on state around the given (zeroed) buffers.
    fn power_on(window: Window, spare: Spare, config: CrbConfig) -> Self {
        let chunking = config.chunking_advertised();
        Self {
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
            reset_established_pending: false,
            ctrl_sts: spec::CTRL_STS_RESET,
            deferred_req: 0,
            cancel: 0,
            int_enable: 0,
            int_sts: 0,
            ctrl_ext: 0,
            window,
            phase: Phase::Idle,
            spare,
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
        match &self.phase {
            Phase::Idle => 0,
            Phase::Receiving(rx) => rx.command.len(),
            Phase::Executing(ex) => ex.command.len(),
            Phase::Responding(r) => r.response.len(),
        }
    }

    /// True while a command is with the backend (START reads 1).
    pub fn is_executing(&self) -> bool {
        matches!(self.phase, Phase::Executing(_))
    }

    /// The command with the backend, if any: for a host that must deliver
    /// it again (after restoring a snapshot, for example).
    pub fn executing_command(&self) -> Option<Action<'_>> {
        match &self.phase {
            Phase::Executing(ex) => Some(Action::Execute {
                token: ex.token,
                locality: ex.locality,
                command: &ex.command,
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
        &self.window.bytes
    }

    /// The data window, writable; see [`CrbDevice::window`]. From here on
    /// the device treats the window as holding the guest's bytes: Start or
    /// nextChunk after the last response piece takes them as a command.
    pub fn window_mut(&mut self) -> &mut [u8] {
        self.window.dirty = self.window.len();
        if let Phase::Responding(r) = &mut self.phase {
            r.window_written = true;
        }
        &mut self.window.bytes
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
        self.release();
        let window = mem::take(&mut self.window);
        let spare = mem::take(&mut self.spare);
        let fresh = Self::power_on(window, spare, self.config.clone());
        let kept = mem::replace(self, fresh);
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
        self.finish(token, result.map(Answer::Copy))
    }

    /// Like [`CrbDevice::complete`], but takes the response buffer instead
    /// of copying it. On return `response` is always empty and zeroed, and
    /// holds a buffer the caller may reuse for the next response.
    pub fn complete_swap(
        &mut self,
        token: ExecToken,
        result: Result<&mut Vec<u8>, BackendFailed>,
    ) -> Completion {
        match result {
            Ok(r) => {
                let outcome = self.finish(token, Ok(Answer::Swap(&mut *r)));
                r.zeroize();
                outcome
            }
            Err(e) => self.finish(token, Err(e)),
        }
    }

    /// The one implementation of a completion.
    fn finish(
        &mut self,
        token: ExecToken,
        answer: Result<Answer<'_>, BackendFailed>,
    ) -> Completion {
        let ex = match mem::take(&mut self.phase) {
            Phase::Executing(ex) if ex.token == token => ex,
            other => {
                self.phase = other;
                return Completion::Stale;
            }
        };
        self.cancel = 0;
        let orphaned = ex.orphaned;
        self.park(Phase::Executing(ex));
        self.raise(IntBits::START);
        let outcome = match answer {
            _ if orphaned => Completion::Discarded,
            Ok(a) if self.deliverable(a.bytes()) => {
                let mut response = mem::take(&mut self.spare.response);
                match a {
                    Answer::Copy(r) => response.extend_from_slice(r),
                    // The spare buffer is empty and wiped; the caller gets it.
                    Answer::Swap(r) => mem::swap(&mut *response, r),
                }
                self.respond(response);
                Completion::Delivered
            }
            _ => {
                self.enter_fatal();
                Completion::Fatal
            }
        };
        let deferred = mem::take(&mut self.deferred_req);
        if deferred != 0 {
            self.apply_ctrl_req(deferred);
        }
        outcome
    }

    fn deliverable(&self, response: &[u8]) -> bool {
        response.len() >= HEADER_SIZE
            && response.len() <= self.limit
            && tpm::declared_size(response) == Some(response.len())
    }

    /// An MMIO read of `data.len()` bytes at `offset` from locality 0's page.
    ///
    /// Registers serve 1, 2, 4 and 8-byte accesses at any byte lane; the
    /// data window serves any length. Anything else reads as zeros.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        match self.target(offset, data.len()) {
            Some(Target::Window { locality, start }) if self.active == Some(locality) => {
                data.copy_from_slice(&self.window.bytes[start..start + data.len()]);
                self.note_window_read(start, start + data.len());
            }
            None | Some(Target::Window { .. }) => {}
            Some(Target::Registers { locality, page_off }) => {
                for (i, byte) in data.iter_mut().enumerate() {
                    let at = page_off + i as u64;
                    let dword = self.read_register(locality, at & !3);
                    *byte = (dword >> (8 * (at & 3))) as u8;
                }
            }
        }
    }

    /// An MMIO write of `data` at `offset` from locality 0's page. Returns
    /// the work the host must do, if any.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Option<Action<'_>> {
        let decided = self.write_decide(offset, data)?;
        self.action_for(decided)
    }

    /// The state change of a write, and the action it decided.
    pub(crate) fn write_decide(&mut self, offset: u64, data: &[u8]) -> Option<Decided> {
        match self.target(offset, data.len())? {
            Target::Window { locality, start } => {
                self.write_window(locality, start, data);
                None
            }
            Target::Registers { locality, page_off } => {
                self.write_registers(locality, page_off, data)
            }
        }
    }

    /// The action a write decided, borrowing the command it names.
    pub(crate) fn action_for(&self, decided: Decided) -> Option<Action<'_>> {
        Some(match decided {
            Decided::Execute => match &self.phase {
                Phase::Executing(ex) => Action::Execute {
                    token: ex.token,
                    locality: ex.locality,
                    command: &ex.command,
                },
                // start() returns Execute only after entering Executing.
                _ => return None,
            },
            Decided::Cancel(token) => Action::Cancel { token },
            Decided::ResetEstablished(locality) => Action::ResetEstablished { locality },
        })
    }

    /// Splits an access into window or registers; `None` for one outside
    /// the configured pages, across a page boundary, straddling the window
    /// edge, or of a width registers do not serve.
    fn target(&self, offset: u64, len: usize) -> Option<Target> {
        let locality = offset / LOCALITY_PAGE_SIZE;
        let page_off = offset % LOCALITY_PAGE_SIZE;
        let end = page_off.checked_add(len as u64)?;
        if locality >= u64::from(self.config.localities) || end > LOCALITY_PAGE_SIZE || len == 0 {
            return None;
        }
        let locality = locality as u8;
        let win_end = DATA_WINDOW_OFFSET + self.window.len() as u64;
        if page_off >= DATA_WINDOW_OFFSET && end <= win_end {
            let start = (page_off - DATA_WINDOW_OFFSET) as usize;
            return Some(Target::Window { locality, start });
        }
        (matches!(len, 1 | 2 | 4 | 8) && end <= DATA_WINDOW_OFFSET)
            .then_some(Target::Registers { locality, page_off })
    }

    fn write_window(&mut self, locality: u8, start: usize, data: &[u8]) {
        if self.active != Some(locality) {
            return;
        }
        // A guest that writes the window is done with the response in it:
        // release it, so none of its bytes can become part of a command.
        if matches!(self.phase, Phase::Responding(_)) {
            self.release();
        }
        self.window.write(start, data);
    }

    /// Registers are 32 bits wide; a wider or unaligned access is split
    /// into the dwords it touches. Only LOC_CTRL, CTRL_CANCEL and
    /// CTRL_START decide actions, and one access reaches either LOC_CTRL or
    /// the CANCEL/START pair (checked at compile time above), so each
    /// access yields at most one action by construction.
    fn write_registers(&mut self, locality: u8, page_off: u64, data: &[u8]) -> Option<Decided> {
        let end = page_off + data.len() as u64;
        let mut loc_ctrl = None;
        let mut cancel = None;
        let mut start = None;
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
            let value = value & mask;
            match dword {
                reg::LOC_CTRL => loc_ctrl = Some(value),
                reg::CTRL_CANCEL => cancel = Some((value, mask)),
                reg::CTRL_START => start = Some(value),
                _ => self.write_plain_register(locality, dword, value, mask),
            }
        }
        match loc_ctrl {
            Some(value) => self.write_loc_ctrl(locality, value),
            None => self.write_cancel_start(locality, cancel, start),
        }
    }

    /// CANCEL, then START, of one access. A cancel acts only while a
    /// command executes, and START is ignored while one executes, so when
    /// the cancel decides an action the START of the same access has
    /// nothing to do.
    fn write_cancel_start(
        &mut self,
        locality: u8,
        cancel: Option<(u32, u32)>,
        start: Option<u32>,
    ) -> Option<Decided> {
        if self.active != Some(locality) {
            return None;
        }
        if let Some((value, mask)) = cancel {
            self.cancel = (self.cancel & !mask) | (value & CtrlCancel::CANCEL.mask());
            if CtrlCancel::CANCEL.is_set(self.cancel) {
                if let Phase::Executing(ex) = &mut self.phase {
                    if !ex.cancel_requested {
                        ex.cancel_requested = true;
                        return Some(Decided::Cancel(ex.token));
                    }
                    return None;
                }
            }
        }
        start.and_then(|value| self.write_ctrl_start(locality, value))
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

    /// A register write that never decides an action.
    fn write_plain_register(&mut self, locality: u8, dword: u64, value: u32, mask: u32) {
        match dword {
            reg::CTRL_EXT_LO => {
                self.ctrl_ext = (self.ctrl_ext & !u64::from(mask)) | u64::from(value);
            }
            reg::CTRL_EXT_HI => {
                let m = u64::from(mask) << 32;
                self.ctrl_ext = (self.ctrl_ext & !m) | (u64::from(value) << 32);
            }
            reg::CTRL_REQ if self.active == Some(locality) => self.write_ctrl_req(value),
            reg::INT_ENABLE => {
                let m = mask & spec::INT_ENABLE_WRITABLE;
                self.int_enable = (self.int_enable & !m) | (value & m);
            }
            reg::INT_STS => self.int_sts &= !(value & spec::INT_STS_BITS),
            _ => {}
        }
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
        if let Phase::Executing(ex) = &mut self.phase {
            ex.orphaned = true;
            self.window.zero();
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
            self.end_response_before_command();
            return self.start(locality);
        }
        if !self.chunking {
            return None;
        }
        if CtrlStart::NEXT_CHUNK.is_set(value) {
            match &self.phase {
                Phase::Responding(r) if r.piece_offset + r.piece_len < r.response.len() => {
                    let next = r.piece_offset + r.piece_len;
                    self.serve_piece(next);
                }
                Phase::Responding(r) if !r.window_written => {
                    // Past the last piece the guest is done with the
                    // response; the window holds only its bytes, not a
                    // command.
                    self.release();
                }
                _ => {
                    self.end_response_before_command();
                    if let Some(rx) = self.take_command_piece() {
                        self.phase = Phase::Receiving(rx);
                    }
                }
            }
        } else if CtrlStart::CRB_RSP_RETRY.is_set(value)
            && matches!(self.phase, Phase::Responding(_))
        {
            self.serve_piece(0);
        }
        None
    }

    /// Before the window is taken as a command: a response still held is
    /// released, and unless the guest wrote the window since its piece was
    /// served, the window goes with it (it holds response bytes, which must
    /// never be forwarded as a command).
    fn end_response_before_command(&mut self) {
        if let Phase::Responding(r) = &self.phase {
            if r.window_written {
                let phase = mem::take(&mut self.phase);
                self.park(phase);
            } else {
                self.release();
            }
        }
    }

    /// Start: take the last piece and hand the command over, or answer it
    /// here when it cannot be forwarded.
    fn start(&mut self, locality: u8) -> Option<Decided> {
        let rx = self.take_command_piece()?;
        if rx.oversize || rx.command.len() < rx.total {
            self.stats.commands_refused = self.stats.commands_refused.saturating_add(1);
            self.park(Phase::Receiving(rx));
            let mut response = mem::take(&mut self.spare.response);
            response.extend_from_slice(&tpm::COMMAND_SIZE_RESPONSE);
            self.raise(IntBits::START);
            self.respond(response);
            return None;
        }
        let token = ExecToken(self.next_token);
        // Wrapping needs 2^64 commands; restore checks the executing token
        // against this counter the same way.
        self.next_token = self.next_token.wrapping_add(1);
        self.phase = Phase::Executing(Executing {
            command: rx.command,
            token,
            locality,
            cancel_requested: false,
            orphaned: false,
        });
        self.stats.commands_executed = self.stats.commands_executed.saturating_add(1);
        Some(Decided::Execute)
    }

    /// Appends the next window piece to the command, starting one when
    /// none is being received. `None` when a first piece's header is
    /// malformed (the device is then fatal). The caller puts the result
    /// back as the phase or moves it on.
    fn take_command_piece(&mut self) -> Option<Receiving> {
        let mut rx = match mem::take(&mut self.phase) {
            Phase::Receiving(rx) => rx,
            other => {
                self.park(other);
                let declared = tpm::declared_size(&self.window.bytes).unwrap_or(0);
                if declared < HEADER_SIZE {
                    self.enter_fatal();
                    return None;
                }
                Receiving {
                    command: mem::take(&mut self.spare.command),
                    total: declared,
                    oversize: declared > self.limit,
                }
            }
        };
        self.stats.command_pieces = self.stats.command_pieces.saturating_add(1);
        if !rx.oversize {
            let n = (rx.total - rx.command.len()).min(self.window.len());
            rx.command.extend_from_slice(&self.window.bytes[..n]);
        }
        Some(rx)
    }

    /// Enters Responding with `response` and serves its first piece.
    fn respond(&mut self, response: Traffic) {
        self.phase = Phase::Responding(Responding {
            response,
            piece_offset: 0,
            piece_len: 0,
            coverage: ReadCoverage::new(),
            window_written: false,
        });
        self.serve_piece(0);
    }

    /// Puts the response piece starting at `offset` in the window.
    fn serve_piece(&mut self, offset: usize) {
        let Phase::Responding(r) = &mut self.phase else {
            return;
        };
        let len = (r.response.len() - offset).min(self.window.len());
        self.window.put_piece(&r.response[offset..offset + len]);
        r.piece_offset = offset;
        r.piece_len = len;
        r.coverage.clear();
        r.window_written = false;
        self.stats.response_pieces = self.stats.response_pieces.saturating_add(1);
    }

    fn note_window_read(&mut self, start: usize, end: usize) {
        let Phase::Responding(r) = &mut self.phase else {
            return;
        };
        if start >= r.piece_len {
            return;
        }
        r.coverage.mark(start, end.min(r.piece_len));
        let last_piece = r.piece_offset + r.piece_len == r.response.len();
        if last_piece && r.coverage.covered == r.piece_len {
            self.release();
        }
    }

    /// Zeroes and forgets all transaction data, window included (capacity
    /// is kept).
    fn release(&mut self) {
        self.window.zero();
        let phase = mem::take(&mut self.phase);
        self.park(phase);
    }

    /// Wipes the buffers a phase held and keeps them for the next command.
    fn park(&mut self, phase: Phase) {
        match phase {
            Phase::Idle => {}
            Phase::Receiving(Receiving { mut command, .. })
            | Phase::Executing(Executing { mut command, .. }) => {
                command.zeroize();
                self.spare.command = command;
            }
            Phase::Responding(Responding { mut response, .. }) => {
                response.zeroize();
                self.spare.response = response;
            }
        }
    }

    fn enter_fatal(&mut self) {
        self.release();
        self.ctrl_sts = CtrlSts::TPM_STS.with_flag(self.ctrl_sts, true);
        self.stats.fatal_errors = self.stats.fatal_errors.saturating_add(1);
    }

    fn raise(&mut self, bit: spec::Field) {
        self.int_sts |= bit.mask();
    }
}
