//! The data window in guest RAM: a VMM maps the window as memory, so the
//! guest's window accesses cause no exits, and hands that memory to the
//! device with each register write and completion.
//!
//! The device keeps its own copy of the window. It takes the guest's bytes
//! from RAM once, when a write of CTRL_START asks for Start or nextChunk,
//! and assembles the command from that copy only, so a guest that changes
//! the RAM afterwards changes nothing the backend receives. Whenever the
//! device changes its copy (a response piece served, the window released
//! or zeroed), it writes the copy back over the RAM: a locality change,
//! goIdle, cmdReady, reset and every released transaction leave the RAM
//! zeroed. Reads of RAM cannot be tracked, so a response is released at
//! goIdle, cmdReady or the next Start, not after its last byte is read.

use crate::device::{Action, BackendFailed, Completion, CrbDevice, ExecToken};
use crate::spec::{reg, CtrlStart, DATA_WINDOW_OFFSET, LOCALITY_PAGE_SIZE};

impl CrbDevice {
    /// A register write for a VMM that maps the data window as guest RAM:
    /// `ram` is that memory (the window's bytes, [`CrbConfig::window_size`]
    /// of them; a shorter slice is filled up to its length). Window offsets
    /// are not expected here (they are RAM, not traps) and are ignored.
    ///
    /// [`CrbConfig::window_size`]: crate::CrbConfig::window_size
    pub fn write_in_ram(&mut self, offset: u64, data: &[u8], ram: &mut [u8]) -> Option<Action<'_>> {
        let page_off = offset % LOCALITY_PAGE_SIZE;
        if page_off >= DATA_WINDOW_OFFSET {
            return None;
        }
        let locality = offset / LOCALITY_PAGE_SIZE;
        if self.asks_for_piece(page_off, data) && self.active.map(u64::from) == Some(locality) {
            // The one read of guest memory for this piece.
            let n = ram.len().min(self.window.len());
            self.window_mut()[..n].copy_from_slice(&ram[..n]);
        }
        let before = self.window.changes;
        let decided = self.write_decide(offset, data);
        self.mirror_if_changed(before, ram);
        self.action_for(decided?)
    }

    /// [`CrbDevice::complete_swap`] for a window in guest RAM: the first
    /// response piece (or the zeroed window) is written into `ram`.
    pub fn complete_in_ram(
        &mut self,
        token: ExecToken,
        result: Result<&mut alloc::vec::Vec<u8>, BackendFailed>,
        ram: &mut [u8],
    ) -> Completion {
        let before = self.window.changes;
        let outcome = self.complete_swap(token, result);
        self.mirror_if_changed(before, ram);
        outcome
    }

    /// [`CrbDevice::reset`] for a window in guest RAM: `ram` is zeroed too.
    pub fn reset_in_ram(&mut self, ram: &mut [u8]) {
        self.reset();
        self.mirror_to(ram);
    }

    /// Writes the device's window over `ram`: what a VMM does after
    /// restoring a device whose guest RAM it did not migrate.
    pub fn mirror_to(&self, ram: &mut [u8]) {
        let n = ram.len().min(self.window.len());
        ram[..n].copy_from_slice(&self.window.bytes[..n]);
    }

    fn mirror_if_changed(&self, before: u64, ram: &mut [u8]) {
        if self.window.changes != before {
            self.mirror_to(ram);
        }
    }

    /// Whether a register write sets Start or nextChunk in CTRL_START.
    fn asks_for_piece(&self, page_off: u64, data: &[u8]) -> bool {
        let bits = CtrlStart::START.mask() | CtrlStart::NEXT_CHUNK.mask();
        data.iter().enumerate().any(|(i, byte)| {
            let at = page_off + i as u64;
            at & !3 == reg::CTRL_START && u32::from(*byte) << (8 * (at & 3)) & bits != 0
        })
    }
}
