//! Snapshot and restore of a [`CrbDevice`] at any step, chunked transfers
//! included. The format is documented in the crate README.

use crate::config::{ConfigError, CrbConfig};
use crate::device::{CrbDevice, DeviceStats, ExecToken, Phase, ReadCoverage, COVERAGE_WORDS};

/// First bytes of every device snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"VTPMCRB\0";
/// The format version this crate writes (and the newest it reads).
pub const SNAPSHOT_VERSION: u16 = 1;
/// Section: registers, localities, window, phase.
pub const SECTION_BASE: u16 = 1;
/// Section: command and response bytes of a transaction the base cannot rebuild.
pub const SECTION_TRANSACTION: u16 = 2;

const PHASE_IDLE: u8 = 0;
const PHASE_RECEIVING: u8 = 1;
const PHASE_EXECUTING: u8 = 2;
const PHASE_RESPONDING: u8 = 3;

/// A snapshot that cannot be restored into this device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Not a vtpm CRB snapshot.
    #[error("not a vtpm CRB snapshot (bad magic)")]
    BadMagic,
    /// Written by a newer format version.
    #[error("snapshot version {0} is newer than the supported {SNAPSHOT_VERSION}")]
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
    /// A field holds a value that cannot occur.
    #[error("snapshot is inconsistent: {0}")]
    Corrupt(String),
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
    /// The phase needs the transaction section, which is absent.
    #[error("snapshot is mid-transaction but has no transaction section")]
    MissingTransaction,
    /// The destination configuration is invalid.
    #[error("destination configuration: {0}")]
    Config(#[from] ConfigError),
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    /// Writes a section: tag, length, then what `body` writes.
    fn section(&mut self, tag: u16, body: impl FnOnce(&mut Writer)) {
        self.u16(tag);
        let at = self.0.len();
        self.u32(0);
        body(self);
        let len = (self.0.len() - at - 4) as u32;
        self.0[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        if self.bytes.len() < n {
            return Err(SnapshotError::Truncated(self.what));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, SnapshotError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn usize(&mut self) -> Result<usize, SnapshotError> {
        Ok(self.u32()? as usize)
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn bytes(&mut self) -> Result<&'a [u8], SnapshotError> {
        let n = self.usize()?;
        self.take(n)
    }
    fn flag(&mut self) -> Result<bool, SnapshotError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(SnapshotError::Corrupt(format!("{} flag {v}", self.what))),
        }
    }
}

/// The transaction bytes of a snapshot, when present.
struct Transaction<'a> {
    command_total: usize,
    command_oversize: bool,
    command: &'a [u8],
    response: &'a [u8],
}

impl CrbDevice {
    /// True when the transaction in flight cannot be rebuilt from the
    /// window alone: it moved (or will move) in more than one piece, or the
    /// window no longer holds its bytes.
    fn needs_transaction_section(&self) -> bool {
        match self.phase {
            Phase::Idle => false,
            Phase::Receiving => true,
            // Bytes past `window_dirty` are not saved (they are zero), so
            // the window rebuilds the command only within that prefix.
            Phase::Executing { .. } => {
                self.command.len() > self.window_dirty
                    || self.window[..self.command.len()] != self.command[..]
            }
            Phase::Responding => {
                self.piece_offset != 0
                    || self.piece_len != self.response.len()
                    || self.window[..self.piece_len] != self.response[..]
            }
        }
    }

    /// A self-describing snapshot of the whole device: the base section
    /// always, the transaction section only while a transaction the window
    /// cannot rebuild is in flight. Between commands it holds no command
    /// or response bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(256 + self.window_dirty));
        w.0.extend_from_slice(&SNAPSHOT_MAGIC);
        w.u16(SNAPSHOT_VERSION);
        w.section(SECTION_BASE, |w| {
            w.u32(self.window.len() as u32);
            w.u8(self.config.localities);
            w.u8(u8::from(self.chunking));
            w.u32(self.config.backend_buffer as u32);
            w.u8(self.active.unwrap_or(0xFF));
            w.u8(self.pending_requests);
            w.u8(self.been_seized);
            w.u8(u8::from(self.established));
            w.u32(self.ctrl_sts);
            w.u32(self.deferred_req);
            w.u32(self.cancel);
            w.u32(self.int_enable);
            w.u32(self.int_sts);
            w.u64(self.ctrl_ext);
            w.u64(self.next_token);
            let s = self.stats;
            for v in [
                s.commands_executed,
                s.commands_refused,
                s.command_pieces,
                s.response_pieces,
                s.fatal_errors,
            ] {
                w.u64(v);
            }
            w.bytes(&self.window[..self.window_dirty]);
            match self.phase {
                Phase::Idle => w.u8(PHASE_IDLE),
                Phase::Receiving => w.u8(PHASE_RECEIVING),
                Phase::Executing {
                    token,
                    locality,
                    cancel_requested,
                    orphaned,
                } => {
                    w.u8(PHASE_EXECUTING);
                    w.u64(token.0);
                    w.u8(locality);
                    w.u8(u8::from(cancel_requested));
                    w.u8(u8::from(orphaned));
                    w.u32(self.command.len() as u32);
                }
                Phase::Responding => {
                    w.u8(PHASE_RESPONDING);
                    w.u32(self.piece_offset as u32);
                    w.u32(self.piece_len as u32);
                    let words = self.piece_len.div_ceil(64);
                    w.u16(words as u16);
                    for word in &self.coverage.bits[..words] {
                        w.u64(*word);
                    }
                }
            }
        });
        if self.needs_transaction_section() {
            w.section(SECTION_TRANSACTION, |w| {
                w.u32(self.command_total as u32);
                w.u8(u8::from(self.command_oversize));
                w.bytes(&self.command);
                w.bytes(&self.response);
            });
        }
        let crc = crc32fast::hash(&w.0);
        w.u32(crc);
        w.0
    }

    /// Builds a device from `config` and the state in `snapshot`. Every
    /// inconsistency is a [`SnapshotError`]; nothing in the input can make
    /// this panic or allocate beyond the destination's limits.
    pub fn restore(config: CrbConfig, snapshot: &[u8]) -> Result<Self, SnapshotError> {
        let mut device = CrbDevice::new(config)?;
        if snapshot.len() < SNAPSHOT_MAGIC.len() + 2 + 4 {
            return Err(SnapshotError::Truncated("header"));
        }
        if snapshot[..8] != SNAPSHOT_MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let (body, crc) = snapshot.split_at(snapshot.len() - 4);
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let computed = crc32fast::hash(body);
        if stored != computed {
            return Err(SnapshotError::Checksum { stored, computed });
        }
        let mut r = Reader {
            bytes: &body[8..],
            what: "header",
        };
        let version = r.u16()?;
        if version > SNAPSHOT_VERSION || version == 0 {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        let mut base = None;
        let mut transaction = None;
        while !r.bytes.is_empty() {
            r.what = "section header";
            let tag = r.u16()?;
            let len = r.usize()?;
            r.what = "section";
            let mut section = Reader {
                bytes: r.take(len)?,
                what: "section",
            };
            match tag {
                SECTION_BASE if base.is_none() => base = Some(section),
                SECTION_TRANSACTION if transaction.is_none() => {
                    section.what = "transaction section";
                    let t = Transaction {
                        command_total: section.usize()?,
                        command_oversize: section.flag()?,
                        command: section.bytes()?,
                        response: section.bytes()?,
                    };
                    if !section.bytes.is_empty() {
                        return Err(SnapshotError::Corrupt(
                            "trailing bytes in the transaction section".into(),
                        ));
                    }
                    transaction = Some(t);
                }
                SECTION_BASE | SECTION_TRANSACTION => {
                    return Err(SnapshotError::Corrupt(format!(
                        "section {tag} appears twice"
                    )));
                }
                // Sections from newer writers that this reader does not know
                // are skipped: the base alone describes the registers.
                _ => {}
            }
        }
        let mut base = base.ok_or(SnapshotError::MissingBase)?;
        base.what = "base section";
        device.load_base(&mut base, transaction)?;
        Ok(device)
    }

    fn load_base(
        &mut self,
        r: &mut Reader<'_>,
        transaction: Option<Transaction<'_>>,
    ) -> Result<(), SnapshotError> {
        let window = r.usize()?;
        if window != self.window.len() {
            return Err(SnapshotError::WindowMismatch {
                snapshot: window,
                device: self.window.len(),
            });
        }
        let _source_localities = r.u8()?;
        let source_chunking = r.flag()?;
        let _source_buffer = r.u32()?;
        let active = match r.u8()? {
            0xFF => None,
            l => Some(self.check_locality(l)?),
        };
        let pending_requests = r.u8()?;
        let been_seized = r.u8()?;
        for mask in [pending_requests, been_seized] {
            if mask >> self.config.localities != 0 {
                return Err(SnapshotError::LocalityMismatch {
                    locality: 7 - mask.leading_zeros() as u8,
                    device: self.config.localities,
                });
            }
        }
        self.active = active;
        self.pending_requests = pending_requests;
        self.been_seized = been_seized;
        self.established = r.flag()?;
        self.ctrl_sts = r.u32()?
            & (crate::spec::CtrlSts::TPM_STS.mask() | crate::spec::CtrlSts::TPM_IDLE.mask());
        self.deferred_req = r.u32()?
            & (crate::spec::CtrlReq::CMD_READY.mask() | crate::spec::CtrlReq::GO_IDLE.mask());
        self.cancel = r.u32()? & crate::spec::CtrlCancel::CANCEL.mask();
        self.int_enable = r.u32()? & crate::spec::INT_ENABLE_WRITABLE;
        self.int_sts = r.u32()? & crate::spec::INT_STS_BITS;
        self.ctrl_ext = r.u64()?;
        self.next_token = r.u64()?;
        self.stats = DeviceStats {
            commands_executed: r.u64()?,
            commands_refused: r.u64()?,
            command_pieces: r.u64()?,
            response_pieces: r.u64()?,
            fatal_errors: r.u64()?,
        };
        let window_bytes = r.bytes()?;
        if window_bytes.len() > self.window.len() {
            return Err(SnapshotError::Corrupt(
                "window contents exceed the window".into(),
            ));
        }
        self.window[..window_bytes.len()].copy_from_slice(window_bytes);
        self.window_dirty = window_bytes.len();
        let phase = r.u8()?;
        match phase {
            PHASE_IDLE => {
                if transaction.is_some() {
                    return Err(SnapshotError::Corrupt(
                        "idle device with a transaction section".into(),
                    ));
                }
            }
            PHASE_RECEIVING => {
                let t = transaction.ok_or(SnapshotError::MissingTransaction)?;
                if !t.response.is_empty() {
                    return Err(SnapshotError::Corrupt(
                        "response bytes while receiving".into(),
                    ));
                }
                self.require_chunking(source_chunking)?;
                self.require_active("receiving")?;
                self.load_command(&t)?;
                self.phase = Phase::Receiving;
            }
            PHASE_EXECUTING => {
                let token = ExecToken(r.u64()?);
                let locality = self.check_locality(r.u8()?)?;
                let cancel_requested = r.flag()?;
                let orphaned = r.flag()?;
                let length = r.usize()?;
                match transaction {
                    Some(t) => {
                        if !t.response.is_empty() || t.command.len() != length {
                            return Err(SnapshotError::Corrupt(
                                "executing command does not match its transaction".into(),
                            ));
                        }
                        if t.command.len() > self.window.len() {
                            self.require_chunking(source_chunking)?;
                        }
                        self.load_command(&t)?;
                    }
                    None => {
                        if length > self.window_dirty {
                            return Err(SnapshotError::MissingTransaction);
                        }
                        self.check_size(length)?;
                        self.command.extend_from_slice(&self.window[..length]);
                        self.command_total = length;
                    }
                }
                if token.0 >= self.next_token {
                    return Err(SnapshotError::Corrupt(
                        "execution token from the future".into(),
                    ));
                }
                // What the device hands a backend is always a whole command
                // from the active locality (unless that locality has since
                // lost the interface, which orphans the command).
                let whole = !self.command_oversize
                    && self.command.len() == self.command_total
                    && vtpm_wire::Header::peek_size(&self.command)
                        == Some(self.command.len() as u32)
                    && self.command.len() >= vtpm_wire::HEADER_SIZE;
                if !whole {
                    return Err(SnapshotError::Corrupt(
                        "executing command is not a whole command".into(),
                    ));
                }
                if !orphaned && self.active != Some(locality) {
                    return Err(SnapshotError::Corrupt(
                        "executing for a locality that is not active".into(),
                    ));
                }
                self.phase = Phase::Executing {
                    token,
                    locality,
                    cancel_requested,
                    orphaned,
                };
            }
            PHASE_RESPONDING => {
                let piece_offset = r.usize()?;
                let piece_len = r.usize()?;
                let words = usize::from(r.u16()?);
                if words > COVERAGE_WORDS || words != piece_len.div_ceil(64) {
                    return Err(SnapshotError::Corrupt(
                        "read coverage does not match the piece".into(),
                    ));
                }
                let mut bits = [0u64; COVERAGE_WORDS];
                for word in bits.iter_mut().take(words) {
                    *word = r.u64()?;
                }
                match transaction {
                    Some(t) => {
                        if !t.command.is_empty() {
                            return Err(SnapshotError::Corrupt(
                                "command bytes while responding".into(),
                            ));
                        }
                        self.check_size(t.response.len())?;
                        if t.response.len() > self.window.len() {
                            self.require_chunking(source_chunking)?;
                        }
                        self.response.extend_from_slice(t.response);
                    }
                    None => {
                        if piece_offset != 0 || piece_len > self.window_dirty {
                            return Err(SnapshotError::MissingTransaction);
                        }
                        self.check_size(piece_len)?;
                        self.response.extend_from_slice(&self.window[..piece_len]);
                    }
                }
                let piece_end = piece_offset.checked_add(piece_len);
                let fits = piece_end.is_some_and(|end| end <= self.response.len());
                let whole_piece = piece_len
                    == (self.response.len() - piece_offset.min(self.response.len()))
                        .min(self.window.len());
                if !fits || !whole_piece || piece_len == 0 {
                    return Err(SnapshotError::Corrupt(
                        "response piece outside the response".into(),
                    ));
                }
                self.require_active("responding")?;
                self.piece_offset = piece_offset;
                self.piece_len = piece_len;
                self.coverage = ReadCoverage::from_words(&bits[..words], piece_len);
                self.phase = Phase::Responding;
            }
            other => return Err(SnapshotError::Corrupt(format!("phase {other}"))),
        }
        if self.deferred_req != 0 && !self.is_executing() {
            return Err(SnapshotError::Corrupt(
                "a deferred cmdReady/goIdle with no command executing".into(),
            ));
        }
        if !r.bytes.is_empty() {
            return Err(SnapshotError::Corrupt(
                "trailing bytes in the base section".into(),
            ));
        }
        Ok(())
    }

    fn load_command(&mut self, t: &Transaction<'_>) -> Result<(), SnapshotError> {
        if t.command.len() > t.command_total || t.command_total < vtpm_wire::HEADER_SIZE {
            return Err(SnapshotError::Corrupt(
                "command longer than its header says".into(),
            ));
        }
        // A command the source already refused as oversize stays refused
        // even where it would fit: the guest started it that way. One the
        // source accepted must fit here.
        if !t.command_oversize && t.command_total > self.limit {
            return Err(SnapshotError::TransactionTooLarge {
                size: t.command_total,
                limit: self.limit,
            });
        }
        if t.command_oversize && !t.command.is_empty() {
            return Err(SnapshotError::Corrupt("oversize command with bytes".into()));
        }
        self.check_size(t.command.len())?;
        self.command.extend_from_slice(t.command);
        self.command_total = t.command_total;
        self.command_oversize = t.command_oversize;
        Ok(())
    }

    fn check_size(&self, size: usize) -> Result<(), SnapshotError> {
        if size > self.limit {
            return Err(SnapshotError::TransactionTooLarge {
                size,
                limit: self.limit,
            });
        }
        Ok(())
    }

    fn require_chunking(&self, source_chunking: bool) -> Result<(), SnapshotError> {
        if !self.chunking {
            return Err(SnapshotError::ChunkingDisabled);
        }
        if !source_chunking {
            return Err(SnapshotError::Corrupt(
                "chunked transaction from a device without chunking".into(),
            ));
        }
        Ok(())
    }

    /// A locality change ends any transaction, so one in flight implies an
    /// active locality.
    fn require_active(&self, phase: &str) -> Result<(), SnapshotError> {
        if self.active.is_none() {
            return Err(SnapshotError::Corrupt(format!(
                "{phase} with no active locality"
            )));
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
