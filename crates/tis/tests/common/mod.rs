//! Test harness: a TIS device driven inline, with a closure as backend.
#![allow(dead_code)]

use vtpm_guest::Mmio;
use vtpm_tis::{Action, BackendFailed, ExecToken, TisConfig, TisDevice};

/// What an inline backend answers: the response, or a failure.
pub type Answer = Result<Vec<u8>, BackendFailed>;

/// A device whose Execute actions run at once on a closure (a test double
/// standing in for a backend), so a guest driver can run the whole path
/// on one thread.
pub struct InlineBus<F: FnMut(u8, &[u8]) -> Answer> {
    pub device: TisDevice,
    pub backend: F,
    pub cancels: Vec<ExecToken>,
    pub reset_established: Vec<u8>,
    pub max_held: usize,
    pub accesses: usize,
}

impl<F: FnMut(u8, &[u8]) -> Answer> InlineBus<F> {
    pub fn new(config: TisConfig, backend: F) -> Self {
        Self {
            device: TisDevice::new(config).expect("valid config"),
            backend,
            cancels: Vec::new(),
            reset_established: Vec::new(),
            max_held: 0,
            accesses: 0,
        }
    }
}

impl<F: FnMut(u8, &[u8]) -> Answer> Mmio for InlineBus<F> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.accesses += 1;
        self.device.read(offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        self.accesses += 1;
        let mut run = None;
        match self.device.write(offset, data) {
            Some(Action::Execute {
                token,
                locality,
                command,
            }) => run = Some((token, (self.backend)(locality, command))),
            Some(Action::Cancel { token }) => self.cancels.push(token),
            Some(Action::ResetEstablished { locality }) => self.reset_established.push(locality),
            None => {}
        }
        self.max_held = self.max_held.max(self.device.held_bytes());
        if let Some((token, answer)) = run {
            self.device
                .complete(token, answer.as_ref().map(|r| r.as_slice()).map_err(|e| *e));
            self.max_held = self.max_held.max(self.device.held_bytes());
        }
    }
}

/// An echo backend: answers each command with its own bytes.
pub fn echo(_locality: u8, command: &[u8]) -> Answer {
    Ok(command.to_vec())
}

/// A response of exactly `size` bytes with a valid header and a pattern.
pub fn patterned(size: usize, seed: u8) -> Vec<u8> {
    let size = size.max(10);
    let mut out: Vec<u8> = (0..size)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect();
    out[0..2].copy_from_slice(&0x8001u16.to_be_bytes());
    out[2..6].copy_from_slice(&(size as u32).to_be_bytes());
    out[6..10].copy_from_slice(&0u32.to_be_bytes());
    out
}

/// A command of exactly `size` bytes with a valid header and a pattern.
pub fn command(size: usize, seed: u8) -> Vec<u8> {
    let mut c = patterned(size, seed);
    c[6..10].copy_from_slice(&0x17Bu32.to_be_bytes());
    c
}

// Register offsets and bits, spelled out so the tests do not trust the
// crate's map.
pub const ACCESS: u64 = 0x00;
pub const INT_ENABLE: u64 = 0x08;
pub const INT_VECTOR: u64 = 0x0C;
pub const INT_STATUS: u64 = 0x10;
pub const INTF_CAPABILITY: u64 = 0x14;
pub const STS: u64 = 0x18;
pub const FIFO: u64 = 0x24;
pub const INTERFACE_ID: u64 = 0x30;
pub const XFIFO: u64 = 0x80;
pub const DID_VID: u64 = 0xF00;
pub const RID: u64 = 0xF04;

pub const ACCESS_ESTABLISHMENT: u8 = 0x01;
pub const ACCESS_REQUEST_USE: u8 = 0x02;
pub const ACCESS_PENDING: u8 = 0x04;
pub const ACCESS_SEIZE: u8 = 0x08;
pub const ACCESS_BEEN_SEIZED: u8 = 0x10;
pub const ACCESS_ACTIVE: u8 = 0x20;
pub const ACCESS_VALID: u8 = 0x80;

pub const STS_RETRY: u8 = 0x02;
pub const STS_SELF_TEST_DONE: u8 = 0x04;
pub const STS_EXPECT: u8 = 0x08;
pub const STS_DATA_AVAIL: u8 = 0x10;
pub const STS_GO: u8 = 0x20;
pub const STS_READY: u8 = 0x40;
pub const STS_VALID: u8 = 0x80;
pub const STS_CANCEL: u32 = 1 << 24;
pub const STS_RESET_ESTABLISHMENT: u32 = 1 << 25;
pub const FAMILY_TPM2: u32 = 1 << 26;

pub fn page(l: u8) -> u64 {
    u64::from(l) * 0x1000
}

pub fn r8(d: &mut TisDevice, off: u64) -> u8 {
    let mut b = [0u8; 1];
    d.read(off, &mut b);
    b[0]
}

pub fn r32(d: &mut TisDevice, off: u64) -> u32 {
    let mut b = [0u8; 4];
    d.read(off, &mut b);
    u32::from_le_bytes(b)
}

pub fn w8(d: &mut TisDevice, off: u64, v: u8) -> Option<OwnedAction> {
    d.write(off, &[v]).map(OwnedAction::from)
}

pub fn w32(d: &mut TisDevice, off: u64, v: u32) -> Option<OwnedAction> {
    d.write(off, &v.to_le_bytes()).map(OwnedAction::from)
}

/// burstCount as a 4-byte STS read shows it.
pub fn burst(d: &mut TisDevice, l: u8) -> usize {
    ((r32(d, page(l) + STS) >> 8) & 0xFFFF) as usize
}

/// An action detached from the device's borrow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedAction {
    Execute {
        token: ExecToken,
        locality: u8,
        command: Vec<u8>,
    },
    Cancel(ExecToken),
    ResetEstablished(u8),
}

impl From<Action<'_>> for OwnedAction {
    fn from(a: Action<'_>) -> Self {
        match a {
            Action::Execute {
                token,
                locality,
                command,
            } => Self::Execute {
                token,
                locality,
                command: command.to_vec(),
            },
            Action::Cancel { token } => Self::Cancel(token),
            Action::ResetEstablished { locality } => Self::ResetEstablished(locality),
        }
    }
}

/// Requests locality `l` and checks it was granted.
pub fn take_locality(d: &mut TisDevice, l: u8) {
    assert_eq!(w8(d, page(l) + ACCESS, ACCESS_REQUEST_USE), None);
    assert_eq!(
        r8(d, page(l) + ACCESS) & ACCESS_ACTIVE,
        ACCESS_ACTIVE,
        "locality {l} granted"
    );
}

/// Writes `bytes` to locality `l`'s XDATA_FIFO in pieces of up to 64.
pub fn fifo_write(d: &mut TisDevice, l: u8, bytes: &[u8]) {
    for piece in bytes.chunks(64) {
        assert!(d.write(page(l) + XFIFO, piece).is_none());
    }
}

/// Reads `len` bytes from locality `l`'s XDATA_FIFO in pieces of up to 64.
pub fn fifo_read(d: &mut TisDevice, l: u8, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    for piece in out.chunks_mut(64) {
        d.read(page(l) + XFIFO, piece);
    }
    out
}

/// Takes locality `l`, makes the device ready, writes `command` whole and
/// sets tpmGo; returns the token of the execution it starts.
pub fn start(d: &mut TisDevice, l: u8, command: &[u8]) -> ExecToken {
    take_locality(d, l);
    assert_eq!(w8(d, page(l) + STS, STS_READY), None);
    fifo_write(d, l, command);
    match w8(d, page(l) + STS, STS_GO) {
        Some(OwnedAction::Execute {
            token,
            locality,
            command: sent,
        }) => {
            assert_eq!(locality, l);
            assert_eq!(sent, command);
            token
        }
        other => panic!("tpmGo gave {other:?}"),
    }
}
