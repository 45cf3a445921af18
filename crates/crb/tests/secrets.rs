//! The device's buffers hold TPM traffic: every heap block it frees is
//! zero (wiped, not merely emptied), its Debug output carries no traffic,
//! and its snapshots are wiped when dropped.
//!
//! A test allocator hands out zeroed blocks and, while armed on the test
//! thread, checks each block freed there.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

mod common;
use common::*;
use vtpm_crb::{ChunkPolicy, CrbConfig, CrbDevice};

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static FREED: Cell<usize> = const { Cell::new(0) };
    static DIRTY: Cell<usize> = const { Cell::new(0) };
}

/// Notes a block about to be freed: counted, and counted as dirty when a
/// byte is not zero.
fn inspect(block: &[u8]) {
    if ARMED.try_with(Cell::get).unwrap_or(false) {
        let _ = FREED.try_with(|n| n.set(n.get() + 1));
        if block.iter().any(|&b| b != 0) {
            let _ = DIRTY.try_with(|n| n.set(n.get() + 1));
        }
    }
}

struct Inspecting;

// SAFETY: blocks come from the system allocator, zeroed, so every byte is
// initialised when `inspect` reads it; realloc is alloc + copy + free with
// the same contracts.
unsafe impl GlobalAlloc for Inspecting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` is a live, zero-initialised block of `layout.size()`.
        inspect(unsafe { std::slice::from_raw_parts(ptr, layout.size()) });
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `new_size` is non-zero and fits `layout.align()` (the
        // caller's contract), so this layout is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as for alloc.
        let new = unsafe { System.alloc_zeroed(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live and at least this long.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: the old block is freed once, as the caller expects.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Inspecting = Inspecting;

/// (blocks freed, blocks freed with a non-zero byte) while `f` runs.
fn frees_in(f: impl FnOnce()) -> (usize, usize) {
    FREED.with(|n| n.set(0));
    DIRTY.with(|n| n.set(0));
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    (FREED.with(Cell::get), DIRTY.with(Cell::get))
}

fn config() -> CrbConfig {
    CrbConfig {
        window_size: 256,
        backend_buffer: 8192,
        chunking: ChunkPolicy::Auto,
        ..CrbConfig::default()
    }
}

/// A device in each phase that holds traffic: receiving, executing,
/// responding (with a piece in the window).
fn devices_holding_traffic() -> Vec<(&'static str, CrbDevice)> {
    let mut out = Vec::new();
    let cmd = command(700, 0x5C);

    let mut d = CrbDevice::new(config()).unwrap();
    take_locality(&mut d, 0);
    window_write(&mut d, 0, &cmd[..256]);
    w32(&mut d, CTRL_START, NEXT_CHUNK);
    out.push(("receiving", d));

    let mut d = CrbDevice::new(config()).unwrap();
    take_locality(&mut d, 0);
    window_write(&mut d, 0, &cmd[..256]);
    w32(&mut d, CTRL_START, NEXT_CHUNK);
    window_write(&mut d, 0, &cmd[256..512]);
    w32(&mut d, CTRL_START, NEXT_CHUNK);
    window_write(&mut d, 0, &cmd[512..]);
    assert!(w32(&mut d, CTRL_START, START).is_some());
    out.push(("executing", d));

    let mut d = CrbDevice::new(config()).unwrap();
    take_locality(&mut d, 0);
    window_write(&mut d, 0, &command(40, 1));
    let token = match w32(&mut d, CTRL_START, START) {
        Some(OwnedAction::Execute { token, .. }) => token,
        other => panic!("{other:?}"),
    };
    d.complete(token, Ok(&patterned(900, 0x77)));
    window_read(&mut d, 0, 100);
    out.push(("responding", d));
    out
}

#[test]
fn a_dropped_device_frees_only_zeroed_blocks_in_every_phase() {
    for (phase, d) in devices_holding_traffic() {
        assert!(d.held_bytes() > 0, "{phase}");
        let (freed, dirty) = frees_in(|| drop(d));
        assert!(
            freed >= 3,
            "{phase}: window, command and response blocks freed"
        );
        assert_eq!(
            dirty, 0,
            "{phase}: {dirty} of {freed} freed blocks were not zero"
        );
    }
}

#[test]
fn a_restored_device_and_the_snapshot_it_came_from_free_only_zeroed_blocks() {
    for (phase, d) in devices_holding_traffic() {
        let snap = d.snapshot();
        let restored = CrbDevice::restore(config(), &snap).unwrap();
        drop(d);
        let (freed, dirty) = frees_in(|| {
            drop(restored);
            drop(snap);
        });
        assert!(freed >= 4, "{phase}");
        assert_eq!(
            dirty, 0,
            "{phase}: {dirty} of {freed} freed blocks were not zero"
        );
    }
}

#[test]
fn a_swapped_out_response_buffer_comes_back_zeroed() {
    let mut d = CrbDevice::new(config()).unwrap();
    take_locality(&mut d, 0);
    window_write(&mut d, 0, &command(40, 1));
    let token = match w32(&mut d, CTRL_START, START) {
        Some(OwnedAction::Execute { token, .. }) => token,
        other => panic!("{other:?}"),
    };
    let mut answer = patterned(900, 0x42);
    d.complete_swap(token, Ok(&mut answer));
    assert!(answer.is_empty());
    let (freed, dirty) = frees_in(|| drop(answer));
    assert_eq!((freed, dirty), (1, 0));
}

#[test]
fn debug_output_shows_lengths_not_traffic() {
    for (phase, d) in devices_holding_traffic() {
        let text = format!("{d:?}");
        assert!(text.contains("held_bytes"), "{phase}: {text}");
        // The patterned bytes would print as long runs of numbers.
        let numbers = text
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty());
        assert!(numbers.count() < 40, "{phase}: {text}");
    }
    let cmd = command(300, 9);
    let action = vtpm_crb::Action::Execute {
        token: vtpm_crb::ExecToken(5),
        locality: 0,
        command: &cmd,
    };
    assert_eq!(
        format!("{action:?}"),
        "Execute { token: ExecToken(5), locality: 0, command_len: 300 }"
    );
}

#[test]
fn the_inspector_catches_a_block_freed_with_bytes_in_it() {
    let plain = std::hint::black_box(patterned(900, 0x42));
    assert_eq!(frees_in(|| drop(plain)), (1, 1));
}
