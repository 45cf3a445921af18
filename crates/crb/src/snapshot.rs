//! Snapshot and restore of a [`CrbDevice`] at any step, chunked transfers
//! included, framed by `vtpm-frame`. The format is documented in the crate
//! README.
//!
//! Both versions are read into one [`Saved`] description, and one function
//! checks every invariant of the device and of its phase before building
//! it, so a version-1 blob passes exactly the checks a version-2 one does.

use core::mem;

use subtle::ConstantTimeEq;
use vtpm_frame::{Frame, FrameError, FrameWriter, SectionReader, SectionWriter};
use zeroize::Zeroizing;

use alloc::vec::Vec;

use crate::config::{ConfigError, CrbConfig};
use crate::device::{
    CrbDevice, DeviceStats, ExecToken, Executing, Phase, ReadCoverage, Receiving, Responding,
    Spare, Window, COVERAGE_WORDS,
};
use crate::spec::{CtrlCancel, CtrlReq, CtrlSts, INT_ENABLE_WRITABLE, INT_STS_BITS};
use crate::tpm::{self, HEADER_SIZE};

/// First bytes of every device snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"VTPMCRB\0";
/// The format version this crate writes (and the newest it reads).
pub const SNAPSHOT_VERSION: u16 = 2;
/// Section: registers, localities, window (both versions; the layout is
/// the version's).
pub const SECTION_BASE: u16 = 1;
/// Section (version 1 only): command and response bytes of a transaction
/// the base could not rebuild.
pub const SECTION_TRANSACTION: u16 = 2;
/// Section: a command being received.
pub const SECTION_RECEIVING: u16 = 3;
/// Section: a command with the backend.
pub const SECTION_EXECUTING: u16 = 4;
/// Section: a response being served.
pub const SECTION_RESPONDING: u16 = 5;

const V1_PHASE_IDLE: u8 = 0;
const V1_PHASE_RECEIVING: u8 = 1;
const V1_PHASE_EXECUTING: u8 = 2;
const V1_PHASE_RESPONDING: u8 = 3;
const NO_LOCALITY: u8 = 0xFF;

/// A snapshot that cannot be restored into this device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Not a vtpm CRB snapshot.
    #[error("not a vtpm CRB snapshot (bad magic)")]
    BadMagic,
    /// Written by a newer format version.
    #[error("snapshot version {0} is not one of 1..={SNAPSHOT_VERSION}")]
    UnsupportedVersion(u16),
    /// The bytes end early.
    #[error("snapshot truncated in {0}")]
    Truncated(&'static str),
    /// The checksum does not match: the bytes were altered.
    #[error("snapshot checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum {
        /// CRC-32 stored in the snapshot.
        stored: u32,
        /// CRC-32 of the bytes read.
        computed: u32,
    },
    /// The framing is intact but a section is malformed (duplicated,
    /// trailing bytes, a flag other than 0 or 1).
    #[error("snapshot framing")]
    Malformed(#[source] FrameError),
    /// A field holds a value the device cannot reach.
    #[error("snapshot is inconsistent: {0}")]
    Corrupt(&'static str),
    /// The base section is missing.
    #[error("snapshot has no base section")]
    MissingBase,
    /// The destination's window differs from the source's.
    #[error("snapshot window is {snapshot} bytes, this device's is {device}")]
    WindowMismatch {
        /// Window of the source.
        snapshot: usize,
        /// Window of the destination.
        device: usize,
    },
    /// The destination has fewer localities than the snapshot uses.
    #[error("snapshot uses locality {locality}, this device has {device} localities")]
    LocalityMismatch {
        /// A locality the snapshot refers to.
        locality: u8,
        /// Localities of the destination.
        device: u8,
    },
    /// The transaction holds more bytes than the destination's backend buffer.
    #[error("transaction of {size} bytes exceeds this device's {limit}-byte limit")]
    TransactionTooLarge {
        /// Bytes in flight.
        size: usize,
        /// Destination transfer limit.
        limit: usize,
    },
    /// A chunked transaction is in flight but the destination does not
    /// advertise CapCRBChunk.
    #[error("a chunked transaction is in flight but this device does not advertise CapCRBChunk")]
    ChunkingDisabled,
    /// The phase needs transaction bytes the snapshot does not carry.
    #[error("snapshot is mid-transaction but has no transaction section")]
    MissingTransaction,
    /// The destination configuration is invalid.
    #[error("destination configuration")]
    Config(#[from] ConfigError),
}

impl From<FrameError> for SnapshotError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::BadMagic => Self::BadMagic,
            FrameError::Truncated(what) => Self::Truncated(what),
            FrameError::Checksum { stored, computed } => Self::Checksum { stored, computed },
            other => Self::Malformed(other),
        }
    }
}

/// A device as a snapshot describes it, before any check.
struct Saved<'a> {
    window_size: usize,
    source_chunking: bool,
    active: u8,
    pending_requests: u8,
    been_seized: u8,
    established: bool,
    reset_established_pending: bool,
    ctrl_sts: u32,
    deferred_req: u32,
    cancel: u32,
    int_enable: u32,
    int_sts: u32,
    ctrl_ext: u64,
    next_token: u64,
    stats: DeviceStats,
    window: &'a [u8],
    phase: SavedPhase<'a>,
}

// Transient, on the stack of one restore.
#[allow(clippy::large_enum_variant)]
enum SavedPhase<'a> {
    Idle,
    Receiving {
        total: usize,
        oversize: bool,
        command: &'a [u8],
    },
    Executing {
        token: u64,
        locality: u8,
        cancel_requested: bool,
        orphaned: bool,
        command: &'a [u8],
    },
    Responding {
        piece_offset: usize,
        piece_len: usize,
        window_written: bool,
        coverage: [u64; COVERAGE_WORDS],
        coverage_words: usize,
        response: &'a [u8],
    },
}

impl CrbDevice {
    /// A self-describing snapshot of the whole device (version 2): the
    /// base section always, plus the section of the phase in flight.
    /// Between commands it holds no command or response bytes. The blob
    /// is wiped when dropped, since it may hold TPM traffic.
    pub fn snapshot(&self) -> Zeroizing<Vec<u8>> {
        // Every field is named: a field added to the device and not to the
        // snapshot fails to compile here.
        let CrbDevice {
            config,
            chunking,
            // Derived from the configuration the destination supplies.
            limit: _,
            intf_id_low: _,
            active,
            pending_requests,
            been_seized,
            established,
            reset_established_pending,
            ctrl_sts,
            deferred_req,
            cancel,
            int_enable,
            int_sts,
            ctrl_ext,
            window:
                Window {
                    bytes: window,
                    dirty,
                    // Only tells a guest-RAM copy when to be rewritten.
                    changes: _,
                },
            phase,
            // Empty, wiped buffers kept for the next command.
            spare: Spare {
                command: _,
                response: _,
            },
            next_token,
            stats:
                DeviceStats {
                    commands_executed,
                    commands_refused,
                    command_pieces,
                    response_pieces,
                    fatal_errors,
                },
        } = self;
        let mut w = FrameWriter::with_capacity(
            SNAPSHOT_MAGIC,
            SNAPSHOT_VERSION,
            160 + dirty + self.held_bytes(),
        );
        let framed = w.section(SECTION_BASE, |s| {
            s.len32(window.len());
            s.u8(config.localities);
            s.flag(*chunking);
            s.len32(config.backend_buffer);
            s.u8(active.unwrap_or(NO_LOCALITY));
            s.u8(*pending_requests);
            s.u8(*been_seized);
            s.flag(*established);
            s.flag(*reset_established_pending);
            s.u32(*ctrl_sts);
            s.u32(*deferred_req);
            s.u32(*cancel);
            s.u32(*int_enable);
            s.u32(*int_sts);
            s.u64(*ctrl_ext);
            s.u64(*next_token);
            for v in [
                commands_executed,
                commands_refused,
                command_pieces,
                response_pieces,
                fatal_errors,
            ] {
                s.u64(*v);
            }
            s.bytes(&window[..*dirty]);
        });
        let framed = framed.and_then(|()| match phase {
            Phase::Idle => Ok(()),
            Phase::Receiving(Receiving {
                command,
                total,
                oversize,
            }) => w.section(SECTION_RECEIVING, |s| {
                s.len32(*total);
                s.flag(*oversize);
                s.bytes(command);
            }),
            Phase::Executing(Executing {
                command,
                token,
                locality,
                cancel_requested,
                orphaned,
            }) => w.section(SECTION_EXECUTING, |s| {
                s.u64(token.0);
                s.u8(*locality);
                s.flag(*cancel_requested);
                s.flag(*orphaned);
                s.bytes(command);
            }),
            Phase::Responding(Responding {
                response,
                piece_offset,
                piece_len,
                coverage: ReadCoverage { bits, covered: _ },
                window_written,
            }) => w.section(SECTION_RESPONDING, |s| {
                s.len32(*piece_offset);
                s.len32(*piece_len);
                s.flag(*window_written);
                write_coverage(s, &bits[..piece_len.div_ceil(64)]);
                s.bytes(response);
            }),
        });
        // Every length is bounded by the 1 MiB transfer limit or the
        // window, far below the format's 32-bit fields.
        debug_assert!(framed.is_ok(), "snapshot field exceeds 32 bits");
        w.finish()
    }

    /// Builds a device from `config` and the state in `snapshot` (version 1
    /// or 2). Every inconsistency is a [`SnapshotError`]; nothing in the
    /// input can make this panic or allocate beyond the destination's
    /// limits.
    pub fn restore(config: CrbConfig, snapshot: &[u8]) -> Result<Self, SnapshotError> {
        let device = CrbDevice::new(config)?;
        let frame = Frame::parse(&SNAPSHOT_MAGIC, snapshot)?;
        let saved = match frame.version() {
            1 => parse_v1(&frame)?,
            2 => parse_v2(&frame)?,
            v => return Err(SnapshotError::UnsupportedVersion(v)),
        };
        device.load(saved)
    }

    /// Checks `saved` against this (fresh) device and every invariant of
    /// its phase, then takes it over.
    fn load(mut self, saved: Saved<'_>) -> Result<Self, SnapshotError> {
        let Saved {
            window_size,
            source_chunking,
            active,
            pending_requests,
            been_seized,
            established,
            reset_established_pending,
            ctrl_sts,
            deferred_req,
            cancel,
            int_enable,
            int_sts,
            ctrl_ext,
            next_token,
            stats,
            window,
            phase,
        } = saved;
        if window_size != self.window.len() {
            return Err(SnapshotError::WindowMismatch {
                snapshot: window_size,
                device: self.window.len(),
            });
        }
        let active = match active {
            NO_LOCALITY => None,
            l => Some(self.check_locality(l)?),
        };
        for mask in [pending_requests, been_seized] {
            if mask >> self.config.localities != 0 {
                return Err(SnapshotError::LocalityMismatch {
                    locality: 7 - mask.leading_zeros() as u8,
                    device: self.config.localities,
                });
            }
        }
        if window.len() > self.window.len() {
            return Err(SnapshotError::Corrupt("window contents exceed the window"));
        }
        if active.is_none() && !matches!(phase, SavedPhase::Idle | SavedPhase::Executing { .. }) {
            // A locality change ends any transaction but an execution.
            return Err(SnapshotError::Corrupt(
                "a transaction with no active locality",
            ));
        }
        let deferred_req = deferred_req & (CtrlReq::CMD_READY.mask() | CtrlReq::GO_IDLE.mask());
        if deferred_req != 0 && !matches!(phase, SavedPhase::Executing { .. }) {
            return Err(SnapshotError::Corrupt(
                "a deferred cmdReady/goIdle with no command executing",
            ));
        }
        self.active = active;
        self.pending_requests = pending_requests;
        self.been_seized = been_seized;
        self.established = established;
        self.reset_established_pending = reset_established_pending;
        self.ctrl_sts = ctrl_sts & (CtrlSts::TPM_STS.mask() | CtrlSts::TPM_IDLE.mask());
        self.deferred_req = deferred_req;
        self.cancel = cancel & CtrlCancel::CANCEL.mask();
        self.int_enable = int_enable & INT_ENABLE_WRITABLE;
        self.int_sts = int_sts & INT_STS_BITS;
        self.ctrl_ext = ctrl_ext;
        self.next_token = next_token;
        self.stats = stats;
        self.window.bytes[..window.len()].copy_from_slice(window);
        self.window.dirty = window.len();
        self.phase = match phase {
            SavedPhase::Idle => Phase::Idle,
            SavedPhase::Receiving {
                total,
                oversize,
                command,
            } => {
                self.require_chunking(source_chunking)?;
                self.check_receiving(total, oversize, command)?;
                let mut buffer = mem::take(&mut self.spare.command);
                buffer.extend_from_slice(command);
                Phase::Receiving(Receiving {
                    command: buffer,
                    total,
                    oversize,
                })
            }
            SavedPhase::Executing {
                token,
                locality,
                cancel_requested,
                orphaned,
                command,
            } => {
                let locality = self.check_locality(locality)?;
                self.check_whole(command, "executing command")?;
                if command.len() > self.window.len() {
                    self.require_chunking(source_chunking)?;
                }
                // The device hands out tokens in order and runs one at a
                // time, so the one executing is the last handed out.
                if token.wrapping_add(1) != next_token {
                    return Err(SnapshotError::Corrupt(
                        "executing token is not the last one handed out",
                    ));
                }
                if !orphaned && active != Some(locality) {
                    return Err(SnapshotError::Corrupt(
                        "executing for a locality that is not active",
                    ));
                }
                let mut buffer = mem::take(&mut self.spare.command);
                buffer.extend_from_slice(command);
                Phase::Executing(Executing {
                    command: buffer,
                    token: ExecToken(token),
                    locality,
                    cancel_requested,
                    orphaned,
                })
            }
            SavedPhase::Responding {
                piece_offset,
                piece_len,
                window_written,
                coverage,
                coverage_words,
                response,
            } => {
                self.check_whole(response, "response")?;
                if response.len() > self.window.len() {
                    self.require_chunking(source_chunking)?;
                }
                let coverage = self.check_responding(
                    response,
                    piece_offset,
                    piece_len,
                    window_written,
                    &coverage[..coverage_words.min(COVERAGE_WORDS)],
                    coverage_words,
                )?;
                let mut buffer = mem::take(&mut self.spare.response);
                buffer.extend_from_slice(response);
                Phase::Responding(Responding {
                    response: buffer,
                    piece_offset,
                    piece_len,
                    coverage,
                    window_written,
                })
            }
        };
        Ok(self)
    }

    /// What the device keeps of a command arriving in pieces: its first
    /// piece's header declares `total`, each piece adds a window (the last
    /// one the rest), and an oversize command keeps no bytes.
    fn check_receiving(
        &self,
        total: usize,
        oversize: bool,
        command: &[u8],
    ) -> Result<(), SnapshotError> {
        if total < HEADER_SIZE {
            return Err(SnapshotError::Corrupt("command header below ten bytes"));
        }
        if oversize {
            // Refused where the source refused it, whatever this limit.
            if !command.is_empty() {
                return Err(SnapshotError::Corrupt("oversize command with bytes"));
            }
            return Ok(());
        }
        if total > self.limit {
            return Err(SnapshotError::TransactionTooLarge {
                size: total,
                limit: self.limit,
            });
        }
        let window = self.window.len();
        let pieces_fit = command.len() == total || command.len().is_multiple_of(window);
        if command.len() > total || command.len() < total.min(window) || !pieces_fit {
            return Err(SnapshotError::Corrupt(
                "received bytes are not whole pieces of the command",
            ));
        }
        if tpm::declared_size(command) != Some(total) {
            return Err(SnapshotError::Corrupt(
                "command header disagrees with the recorded size",
            ));
        }
        Ok(())
    }

    /// A whole command or response: a header that declares exactly its
    /// length, within the transfer limit.
    fn check_whole(&self, bytes: &[u8], what: &'static str) -> Result<(), SnapshotError> {
        if bytes.len() > self.limit {
            return Err(SnapshotError::TransactionTooLarge {
                size: bytes.len(),
                limit: self.limit,
            });
        }
        if bytes.len() < HEADER_SIZE || tpm::declared_size(bytes) != Some(bytes.len()) {
            return Err(SnapshotError::Corrupt(match what {
                "response" => "response is not a whole response",
                _ => "executing command is not a whole command",
            }));
        }
        Ok(())
    }

    /// A piece the device could have served (window-aligned, as long as
    /// the window or the rest), coverage of bytes inside it only, a last
    /// piece not yet read whole (it would have been released), and a
    /// window that holds the piece unless the guest wrote it since.
    fn check_responding(
        &self,
        response: &[u8],
        piece_offset: usize,
        piece_len: usize,
        window_written: bool,
        words: &[u64],
        coverage_words: usize,
    ) -> Result<ReadCoverage, SnapshotError> {
        let window = self.window.len();
        let aligned = piece_offset.is_multiple_of(window) && piece_offset < response.len();
        if !aligned || piece_len != (response.len() - piece_offset).min(window) {
            return Err(SnapshotError::Corrupt(
                "response piece outside the response",
            ));
        }
        let coverage = (coverage_words == piece_len.div_ceil(64))
            .then(|| ReadCoverage::from_words(words, piece_len))
            .flatten()
            .ok_or(SnapshotError::Corrupt(
                "read coverage does not match the piece",
            ))?;
        if piece_offset + piece_len == response.len() && coverage.covered == piece_len {
            return Err(SnapshotError::Corrupt(
                "a response read to its last byte is still held",
            ));
        }
        let in_window = &self.window.bytes[..self.window.dirty];
        let piece = &response[piece_offset..piece_offset + piece_len];
        if !window_written && !bool::from(in_window.ct_eq(piece)) {
            return Err(SnapshotError::Corrupt(
                "the window does not hold the response piece",
            ));
        }
        Ok(coverage)
    }

    fn require_chunking(&self, source_chunking: bool) -> Result<(), SnapshotError> {
        if !self.chunking {
            return Err(SnapshotError::ChunkingDisabled);
        }
        if !source_chunking {
            return Err(SnapshotError::Corrupt(
                "chunked transaction from a device without chunking",
            ));
        }
        Ok(())
    }

    fn check_locality(&self, l: u8) -> Result<u8, SnapshotError> {
        if l >= self.config.localities {
            return Err(SnapshotError::LocalityMismatch {
                locality: l,
                device: self.config.localities,
            });
        }
        Ok(l)
    }
}

fn write_coverage(s: &mut SectionWriter<'_>, words: &[u64]) {
    // At most COVERAGE_WORDS (62) words.
    s.u16(words.len() as u16);
    for word in words {
        s.u64(*word);
    }
}

fn read_coverage(
    s: &mut SectionReader<'_>,
) -> Result<([u64; COVERAGE_WORDS], usize), SnapshotError> {
    let words = usize::from(s.u16()?);
    if words > COVERAGE_WORDS {
        return Err(SnapshotError::Corrupt(
            "read coverage does not match the piece",
        ));
    }
    let mut bits = [0u64; COVERAGE_WORDS];
    for word in bits.iter_mut().take(words) {
        *word = s.u64()?;
    }
    Ok((bits, words))
}

fn read_stats(s: &mut SectionReader<'_>) -> Result<DeviceStats, FrameError> {
    Ok(DeviceStats {
        commands_executed: s.u64()?,
        commands_refused: s.u64()?,
        command_pieces: s.u64()?,
        response_pieces: s.u64()?,
        fatal_errors: s.u64()?,
    })
}

fn parse_v2<'a>(frame: &Frame<'a>) -> Result<Saved<'a>, SnapshotError> {
    let [base, receiving, executing, responding] = frame.known_sections([
        SECTION_BASE,
        SECTION_RECEIVING,
        SECTION_EXECUTING,
        SECTION_RESPONDING,
    ])?;
    let mut s = base.ok_or(SnapshotError::MissingBase)?;
    let window_size = s.len32()?;
    let _source_localities = s.u8()?;
    let source_chunking = s.flag()?;
    let _source_buffer = s.u32()?;
    let active = s.u8()?;
    let pending_requests = s.u8()?;
    let been_seized = s.u8()?;
    let established = s.flag()?;
    let reset_established_pending = s.flag()?;
    let ctrl_sts = s.u32()?;
    let deferred_req = s.u32()?;
    let cancel = s.u32()?;
    let int_enable = s.u32()?;
    let int_sts = s.u32()?;
    let ctrl_ext = s.u64()?;
    let next_token = s.u64()?;
    let stats = read_stats(&mut s)?;
    let window = s.bytes()?;
    s.finish()?;
    let phase = match (receiving, executing, responding) {
        (None, None, None) => SavedPhase::Idle,
        (Some(mut s), None, None) => {
            let phase = SavedPhase::Receiving {
                total: s.len32()?,
                oversize: s.flag()?,
                command: s.bytes()?,
            };
            s.finish()?;
            phase
        }
        (None, Some(mut s), None) => {
            let phase = SavedPhase::Executing {
                token: s.u64()?,
                locality: s.u8()?,
                cancel_requested: s.flag()?,
                orphaned: s.flag()?,
                command: s.bytes()?,
            };
            s.finish()?;
            phase
        }
        (None, None, Some(mut s)) => {
            let piece_offset = s.len32()?;
            let piece_len = s.len32()?;
            let window_written = s.flag()?;
            let (coverage, coverage_words) = read_coverage(&mut s)?;
            let response = s.bytes()?;
            s.finish()?;
            SavedPhase::Responding {
                piece_offset,
                piece_len,
                window_written,
                coverage,
                coverage_words,
                response,
            }
        }
        _ => return Err(SnapshotError::Corrupt("more than one phase section")),
    };
    Ok(Saved {
        window_size,
        source_chunking,
        active,
        pending_requests,
        been_seized,
        established,
        reset_established_pending,
        ctrl_sts,
        deferred_req,
        cancel,
        int_enable,
        int_sts,
        ctrl_ext,
        next_token,
        stats,
        window,
        phase,
    })
}

/// Version 1: one base section with the phase inside, and a transaction
/// section only when the window could not rebuild the command or
/// response. It did not record an outstanding ResetEstablished request.
fn parse_v1<'a>(frame: &Frame<'a>) -> Result<Saved<'a>, SnapshotError> {
    let [base, transaction] = frame.known_sections([SECTION_BASE, SECTION_TRANSACTION])?;
    let mut s = base.ok_or(SnapshotError::MissingBase)?;
    let window_size = s.len32()?;
    let _source_localities = s.u8()?;
    let source_chunking = s.flag()?;
    let _source_buffer = s.u32()?;
    let active = s.u8()?;
    let pending_requests = s.u8()?;
    let been_seized = s.u8()?;
    let established = s.flag()?;
    let ctrl_sts = s.u32()?;
    let deferred_req = s.u32()?;
    let cancel = s.u32()?;
    let int_enable = s.u32()?;
    let int_sts = s.u32()?;
    let ctrl_ext = s.u64()?;
    let next_token = s.u64()?;
    let stats = read_stats(&mut s)?;
    let window = s.bytes()?;
    let transaction = match transaction {
        None => None,
        Some(mut t) => {
            let parts = (t.len32()?, t.flag()?, t.bytes()?, t.bytes()?);
            t.finish()?;
            Some(parts)
        }
    };
    let phase = match s.u8()? {
        V1_PHASE_IDLE => {
            if transaction.is_some() {
                return Err(SnapshotError::Corrupt(
                    "idle device with a transaction section",
                ));
            }
            SavedPhase::Idle
        }
        V1_PHASE_RECEIVING => {
            let (total, oversize, command, response) =
                transaction.ok_or(SnapshotError::MissingTransaction)?;
            if !response.is_empty() {
                return Err(SnapshotError::Corrupt("response bytes while receiving"));
            }
            SavedPhase::Receiving {
                total,
                oversize,
                command,
            }
        }
        V1_PHASE_EXECUTING => {
            let token = s.u64()?;
            let locality = s.u8()?;
            let cancel_requested = s.flag()?;
            let orphaned = s.flag()?;
            let length = s.len32()?;
            let command = match transaction {
                Some((_, _, command, response)) => {
                    if !response.is_empty() || command.len() != length {
                        return Err(SnapshotError::Corrupt(
                            "executing command does not match its transaction",
                        ));
                    }
                    command
                }
                None => window
                    .get(..length)
                    .ok_or(SnapshotError::MissingTransaction)?,
            };
            SavedPhase::Executing {
                token,
                locality,
                cancel_requested,
                orphaned,
                command,
            }
        }
        V1_PHASE_RESPONDING => {
            let piece_offset = s.len32()?;
            let piece_len = s.len32()?;
            let (coverage, coverage_words) = read_coverage(&mut s)?;
            let response = match transaction {
                Some((_, _, command, response)) => {
                    if !command.is_empty() {
                        return Err(SnapshotError::Corrupt("command bytes while responding"));
                    }
                    response
                }
                None if piece_offset == 0 => window
                    .get(..piece_len)
                    .ok_or(SnapshotError::MissingTransaction)?,
                None => return Err(SnapshotError::MissingTransaction),
            };
            // Version 1 let a guest write the window under a response; a
            // window that no longer holds just the piece holds its bytes.
            let piece = response.get(piece_offset..piece_offset.saturating_add(piece_len));
            let window_written = match piece {
                Some(piece) => window.len() != piece.len() || !bool::from(window.ct_eq(piece)),
                None => true,
            };
            SavedPhase::Responding {
                piece_offset,
                piece_len,
                window_written,
                coverage,
                coverage_words,
                response,
            }
        }
        _ => return Err(SnapshotError::Corrupt("unknown phase")),
    };
    s.finish()?;
    Ok(Saved {
        window_size,
        source_chunking,
        active,
        pending_requests,
        been_seized,
        established,
        reset_established_pending: false,
        ctrl_sts,
        deferred_req,
        cancel,
        int_enable,
        int_sts,
        ctrl_ext,
        next_token,
        stats,
        window,
        phase,
    })
}
