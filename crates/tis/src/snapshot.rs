//! Snapshot and restore of a [`TisDevice`] at any step, in the vtpm-frame
//! framing. The format is documented in the crate README.

use alloc::vec::Vec;

use vtpm_frame::{Frame, FrameError, FrameWriter, SectionReader, SectionWriter};
use vtpm_wire::{Header, HEADER_SIZE};
use zeroize::Zeroizing;

use crate::config::{ConfigError, TisConfig};
use crate::device::TisDevice;
use crate::device::{AfterExecution, DeviceStats, ExecToken, LocalityRegs, Phase};
use crate::spec::{self, MAX_LOCALITIES};

/// First bytes of every device snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"VTPMTIS\0";
/// The format version this crate writes (and the newest it reads).
pub const SNAPSHOT_VERSION: u16 = 1;
/// Section: registers, localities, phase.
pub const SECTION_BASE: u16 = 1;
/// Section: the FIFO bytes of a transaction in flight.
pub const SECTION_TRANSACTION: u16 = 2;

const NO_LOCALITY: u8 = 0xFF;
const PHASE_IDLE: u8 = 0;
const PHASE_READY: u8 = 1;
const PHASE_RECEPTION: u8 = 2;
const PHASE_EXECUTION: u8 = 3;
const PHASE_COMPLETION: u8 = 4;
const AFTER_DELIVER: u8 = 0;
const AFTER_DISCARD_TO_IDLE: u8 = 1;
const AFTER_DISCARD_TO_READY: u8 = 2;

/// A snapshot that cannot be restored into this device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The framing is broken: bad magic, truncation, checksum, duplicates.
    #[error("snapshot framing: {0}")]
    Frame(#[from] FrameError),
    /// Written by a newer (or no) format version.
    #[error("snapshot version {0} is not supported (newest: {SNAPSHOT_VERSION})")]
    UnsupportedVersion(u16),
    /// The base section is missing.
    #[error("snapshot has no base section")]
    MissingBase,
    /// A field holds a value that cannot occur, or two fields disagree.
    #[error("snapshot is inconsistent: {0}")]
    Corrupt(&'static str),
    /// The destination has fewer localities than the snapshot uses.
    #[error("snapshot uses locality {locality}, this device has {device} localities")]
    LocalityMismatch {
        /// A locality the snapshot refers to.
        locality: u8,
        /// Localities of the destination.
        device: u8,
    },
    /// The transaction does not fit the destination's backend buffer.
    #[error("transaction of {size} bytes exceeds this device's {limit}-byte buffer")]
    TransactionTooLarge {
        /// Bytes the transaction holds or declares.
        size: usize,
        /// Destination backend buffer.
        limit: usize,
    },
    /// The phase needs the transaction section, which is absent.
    #[error("snapshot is mid-transaction but has no transaction section")]
    MissingTransaction,
    /// The phase holds no bytes, yet a transaction section is present.
    #[error("snapshot is between transactions but carries a transaction section")]
    UnexpectedTransaction,
    /// The destination configuration is invalid.
    #[error("destination configuration: {0}")]
    Config(#[from] ConfigError),
}

impl TisDevice {
    /// A self-describing snapshot of the whole device: the base section
    /// always, the transaction section only while the FIFO holds a command
    /// or response. Between transactions (Idle, Ready) it holds no command
    /// or response bytes. The blob is zeroed when dropped.
    pub fn snapshot(&self) -> Zeroizing<Vec<u8>> {
        // Every field is named, so a field added to the device and not
        // saved here fails to compile.
        let Self {
            config,
            active,
            localities,
            established,
            self_test_done,
            reset_established_pending,
            interface_locked,
            phase,
            fifo,
            next_token,
            stats,
        } = self;
        let mut w = FrameWriter::with_capacity(SNAPSHOT_MAGIC, SNAPSHOT_VERSION, 128 + fifo.len());
        let base = w.section(SECTION_BASE, |s| {
            s.u8(config.localities);
            s.len32(config.backend_buffer);
            s.u8(active.unwrap_or(NO_LOCALITY));
            for regs in localities {
                let LocalityRegs {
                    request_use,
                    been_seized,
                    int_enable,
                    int_status,
                } = regs;
                s.flag(*request_use);
                s.flag(*been_seized);
                s.u32(*int_enable);
                s.u32(*int_status);
            }
            s.flag(*established);
            s.flag(*self_test_done);
            s.flag(*reset_established_pending);
            s.flag(*interface_locked);
            s.u64(*next_token);
            write_stats(s, stats);
            write_phase(s, phase);
        });
        // Lengths are bounded by MAX_BACKEND_BUFFER, far below 32 bits.
        base.expect("base section fits 32-bit lengths");
        if holds_bytes(phase) {
            w.section(SECTION_TRANSACTION, |s| s.bytes(fifo))
                .expect("the FIFO is bounded by MAX_BACKEND_BUFFER");
        }
        w.finish()
    }

    /// Builds a device from `config` and the state in `snapshot`. Every
    /// inconsistency is a [`SnapshotError`]; nothing in the input can make
    /// this panic or allocate beyond the destination's buffer.
    pub fn restore(config: TisConfig, snapshot: &[u8]) -> Result<Self, SnapshotError> {
        let mut device = TisDevice::new(config)?;
        let frame = Frame::parse(&SNAPSHOT_MAGIC, snapshot)?;
        if frame.version() == 0 || frame.version() > SNAPSHOT_VERSION {
            return Err(SnapshotError::UnsupportedVersion(frame.version()));
        }
        let [base, transaction] = frame.known_sections([SECTION_BASE, SECTION_TRANSACTION])?;
        let mut base = base.ok_or(SnapshotError::MissingBase)?;
        let bytes = match transaction {
            Some(mut t) => {
                let b = t.bytes()?;
                t.finish()?;
                Some(b)
            }
            None => None,
        };
        device.load(&mut base, bytes)?;
        base.finish()?;
        Ok(device)
    }

    fn load(
        &mut self,
        r: &mut SectionReader<'_>,
        bytes: Option<&[u8]>,
    ) -> Result<(), SnapshotError> {
        let count = self.config.localities;
        let _source_localities = r.u8()?;
        let source_buffer = r.len32()?;
        let active = match r.u8()? {
            NO_LOCALITY => None,
            l => Some(check_locality(l, count)?),
        };
        let mut localities = [LocalityRegs::default(); MAX_LOCALITIES as usize];
        for (l, regs) in localities.iter_mut().enumerate() {
            *regs = LocalityRegs {
                request_use: r.flag()?,
                been_seized: r.flag()?,
                int_enable: r.u32()?,
                int_status: r.u32()?,
            };
            if regs.int_enable & !spec::INT_ENABLE_WRITABLE != 0
                || regs.int_status & !spec::INT_SOURCES != 0
            {
                return Err(SnapshotError::Corrupt(
                    "interrupt bits outside the register map",
                ));
            }
            let used = regs.request_use
                || regs.been_seized
                || regs.int_status != 0
                || regs.int_enable != spec::INT_ENABLE_RESET;
            if l >= usize::from(count) && used {
                return Err(SnapshotError::LocalityMismatch {
                    locality: l as u8,
                    device: count,
                });
            }
        }
        if let Some(a) = active {
            if localities[usize::from(a)].request_use {
                return Err(SnapshotError::Corrupt(
                    "the active locality also waits for access",
                ));
            }
        }
        let established = r.flag()?;
        let self_test_done = r.flag()?;
        let reset_established_pending = r.flag()?;
        let interface_locked = r.flag()?;
        let next_token = r.u64()?;
        let stats = read_stats(r)?;
        let phase = read_phase(r)?;
        // Every phase invariant, against the destination's buffer.
        let limit = self.config.backend_buffer;
        match (holds_bytes(&phase), bytes) {
            (false, Some(_)) => return Err(SnapshotError::UnexpectedTransaction),
            (true, None) => return Err(SnapshotError::MissingTransaction),
            _ => {}
        }
        let bytes = bytes.unwrap_or(&[]);
        if bytes.len() > limit {
            return Err(SnapshotError::TransactionTooLarge {
                size: bytes.len(),
                limit,
            });
        }
        if holds_bytes(&phase) && active.is_none() && !matches!(phase, Phase::Execution { .. }) {
            return Err(SnapshotError::Corrupt(
                "a transaction without an active locality",
            ));
        }
        match phase {
            Phase::Idle | Phase::Ready => {}
            Phase::Reception => {
                if bytes.is_empty() {
                    return Err(SnapshotError::Corrupt("reception with no byte received"));
                }
                if let Some(declared) = Header::peek_size(bytes) {
                    let declared = declared as usize;
                    let accepted_by_source = (HEADER_SIZE..=source_buffer).contains(&declared);
                    if accepted_by_source && declared > limit {
                        return Err(SnapshotError::TransactionTooLarge {
                            size: declared,
                            limit,
                        });
                    }
                    let over = if accepted_by_source {
                        bytes.len() > declared
                    } else {
                        // A refused header stops intake at its size field.
                        bytes.len() > 6
                    };
                    if over {
                        return Err(SnapshotError::Corrupt("more bytes received than declared"));
                    }
                }
            }
            Phase::Execution {
                token,
                locality,
                after,
                ..
            } => {
                check_locality(locality, count)?;
                if !whole_message(bytes) {
                    return Err(SnapshotError::Corrupt(
                        "executing command is not a whole command",
                    ));
                }
                if token.0 >= next_token {
                    return Err(SnapshotError::Corrupt(
                        "execution token not below the next token",
                    ));
                }
                if after == AfterExecution::Deliver && active != Some(locality) {
                    return Err(SnapshotError::Corrupt(
                        "a command to deliver belongs to a locality without access",
                    ));
                }
                if after == AfterExecution::DiscardToReady && active.is_none() {
                    return Err(SnapshotError::Corrupt(
                        "an abort to Ready with no active locality",
                    ));
                }
            }
            Phase::Completion { read } => {
                if !whole_message(bytes) {
                    return Err(SnapshotError::Corrupt("response is not a whole response"));
                }
                if read > bytes.len() {
                    return Err(SnapshotError::Corrupt("more response bytes read than held"));
                }
            }
        }
        // Exhaustive: a new device field must be restored here too.
        let Self {
            config: _,
            active: d_active,
            localities: d_localities,
            established: d_established,
            self_test_done: d_self_test_done,
            reset_established_pending: d_reset_pending,
            interface_locked: d_locked,
            phase: d_phase,
            fifo: d_fifo,
            next_token: d_next_token,
            stats: d_stats,
        } = self;
        *d_active = active;
        *d_localities = localities;
        *d_established = established;
        *d_self_test_done = self_test_done;
        *d_reset_pending = reset_established_pending;
        *d_locked = interface_locked;
        *d_phase = phase;
        d_fifo.extend_from_slice(bytes);
        *d_next_token = next_token;
        *d_stats = stats;
        Ok(())
    }
}

fn holds_bytes(phase: &Phase) -> bool {
    matches!(
        phase,
        Phase::Reception | Phase::Execution { .. } | Phase::Completion { .. }
    )
}

fn whole_message(bytes: &[u8]) -> bool {
    bytes.len() >= HEADER_SIZE && Header::peek_size(bytes) == Some(bytes.len() as u32)
}

fn check_locality(locality: u8, count: u8) -> Result<u8, SnapshotError> {
    if locality < count {
        Ok(locality)
    } else {
        Err(SnapshotError::LocalityMismatch {
            locality,
            device: count,
        })
    }
}

fn write_stats(s: &mut SectionWriter<'_>, stats: &DeviceStats) {
    let DeviceStats {
        commands_executed,
        commands_refused,
        backend_failures,
        fifo_bytes_written,
        fifo_bytes_read,
    } = stats;
    for v in [
        commands_executed,
        commands_refused,
        backend_failures,
        fifo_bytes_written,
        fifo_bytes_read,
    ] {
        s.u64(*v);
    }
}

fn read_stats(r: &mut SectionReader<'_>) -> Result<DeviceStats, FrameError> {
    Ok(DeviceStats {
        commands_executed: r.u64()?,
        commands_refused: r.u64()?,
        backend_failures: r.u64()?,
        fifo_bytes_written: r.u64()?,
        fifo_bytes_read: r.u64()?,
    })
}

fn write_phase(s: &mut SectionWriter<'_>, phase: &Phase) {
    match *phase {
        Phase::Idle => s.u8(PHASE_IDLE),
        Phase::Ready => s.u8(PHASE_READY),
        Phase::Reception => s.u8(PHASE_RECEPTION),
        Phase::Execution {
            token,
            locality,
            cancel_requested,
            after,
            self_test,
        } => {
            s.u8(PHASE_EXECUTION);
            s.u64(token.0);
            s.u8(locality);
            s.flag(cancel_requested);
            s.u8(match after {
                AfterExecution::Deliver => AFTER_DELIVER,
                AfterExecution::DiscardToIdle => AFTER_DISCARD_TO_IDLE,
                AfterExecution::DiscardToReady => AFTER_DISCARD_TO_READY,
            });
            s.flag(self_test);
        }
        Phase::Completion { read } => {
            s.u8(PHASE_COMPLETION);
            s.len32(read);
        }
    }
}

fn read_phase(r: &mut SectionReader<'_>) -> Result<Phase, SnapshotError> {
    Ok(match r.u8()? {
        PHASE_IDLE => Phase::Idle,
        PHASE_READY => Phase::Ready,
        PHASE_RECEPTION => Phase::Reception,
        PHASE_EXECUTION => Phase::Execution {
            token: ExecToken(r.u64()?),
            locality: r.u8()?,
            cancel_requested: r.flag()?,
            after: match r.u8()? {
                AFTER_DELIVER => AfterExecution::Deliver,
                AFTER_DISCARD_TO_IDLE => AfterExecution::DiscardToIdle,
                AFTER_DISCARD_TO_READY => AfterExecution::DiscardToReady,
                _ => return Err(SnapshotError::Corrupt("unknown post-execution step")),
            },
            self_test: r.flag()?,
        },
        PHASE_COMPLETION => Phase::Completion { read: r.len32()? },
        _ => return Err(SnapshotError::Corrupt("unknown phase")),
    })
}
