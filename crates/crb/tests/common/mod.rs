//! Test harness: a CRB device driven inline, with a closure as backend.
#![allow(dead_code)]

use vtpm_crb::{Action, BackendFailed, CrbConfig, CrbDevice};
use vtpm_guest::Mmio;

/// What an inline backend answers: the response, or a failure.
pub type Answer = Result<Vec<u8>, BackendFailed>;

/// A device whose Execute actions run at once on a closure (a test double
/// standing in for a backend), so a guest driver can run the whole path
/// on one thread.
pub struct InlineBus<F: FnMut(u8, &[u8]) -> Answer> {
    pub device: CrbDevice,
    pub backend: F,
    pub cancels: usize,
    pub reset_established: Vec<u8>,
    pub max_held: usize,
}

impl<F: FnMut(u8, &[u8]) -> Answer> InlineBus<F> {
    pub fn new(config: CrbConfig, backend: F) -> Self {
        Self {
            device: CrbDevice::new(config).expect("valid config"),
            backend,
            cancels: 0,
            reset_established: Vec::new(),
            max_held: 0,
        }
    }
}

impl<F: FnMut(u8, &[u8]) -> Answer> Mmio for InlineBus<F> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.device.read(offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let mut run = None;
        match self.device.write(offset, data) {
            Some(Action::Execute {
                token,
                locality,
                command,
            }) => run = Some((token, (self.backend)(locality, command))),
            Some(Action::Cancel { .. }) => self.cancels += 1,
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

// Register offsets, spelled out so the tests do not trust the crate's map.
pub const LOC_STATE: u64 = 0x00;
pub const LOC_CTRL: u64 = 0x08;
pub const LOC_STS: u64 = 0x0C;
pub const INTF_ID: u64 = 0x30;
pub const INTF_ID_HI: u64 = 0x34;
pub const CTRL_EXT: u64 = 0x38;
pub const CTRL_REQ: u64 = 0x40;
pub const CTRL_STS: u64 = 0x44;
pub const CTRL_CANCEL: u64 = 0x48;
pub const CTRL_START: u64 = 0x4C;
pub const INT_ENABLE: u64 = 0x50;
pub const INT_STS: u64 = 0x54;
pub const CMD_SIZE: u64 = 0x58;
pub const CMD_LADDR: u64 = 0x5C;
pub const CMD_HADDR: u64 = 0x60;
pub const RSP_SIZE: u64 = 0x64;
pub const RSP_ADDR: u64 = 0x68;
pub const WINDOW: u64 = 0x80;
pub const START: u32 = 1;
pub const RSP_RETRY: u32 = 2;
pub const NEXT_CHUNK: u32 = 4;

pub fn r32(d: &mut CrbDevice, off: u64) -> u32 {
    let mut b = [0u8; 4];
    d.read(off, &mut b);
    u32::from_le_bytes(b)
}

pub fn w32(d: &mut CrbDevice, off: u64, v: u32) -> Option<OwnedAction> {
    d.write(off, &v.to_le_bytes()).map(OwnedAction::from)
}

/// An action detached from the device's borrow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedAction {
    Execute {
        token: vtpm_crb::ExecToken,
        locality: u8,
        command: Vec<u8>,
    },
    Cancel(vtpm_crb::ExecToken),
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

pub fn window_read(d: &mut CrbDevice, locality: u8, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    d.read(u64::from(locality) * 0x1000 + WINDOW, &mut b);
    b
}

pub fn window_write(d: &mut CrbDevice, locality: u8, bytes: &[u8]) {
    assert!(d
        .write(u64::from(locality) * 0x1000 + WINDOW, bytes)
        .is_none());
}

/// Requests locality `l` on a fresh device and checks it was granted.
pub fn take_locality(d: &mut CrbDevice, l: u8) {
    let page = u64::from(l) * 0x1000;
    assert_eq!(w32(d, page + LOC_CTRL, 1), None);
    assert_eq!(r32(d, page + LOC_STS) & 1, 1, "locality {l} granted");
}
