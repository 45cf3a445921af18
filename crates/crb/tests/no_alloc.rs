//! Once warm, a command through the device (and the guest driver) makes no
//! heap allocation, with either completion path. The counting allocator
//! counts only on the thread that armed it, so allocations by the test
//! harness or by other tests' threads cannot be charged to the device.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use vtpm_crb::{Action, CrbConfig, CrbDevice};
use vtpm_guest::{CrbDriver, Mmio, TransmitOptions};

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    // try_with: the allocator also runs while thread-locals are torn down.
    let armed = ARMED.try_with(Cell::get).unwrap_or(false);
    if armed {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

/// Allocations made by this thread while `f` runs.
fn allocations_in(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|n| n.set(0));
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    ALLOCATIONS.with(Cell::get)
}

struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator; the
// wrapper only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs each command at once as an echo, through a buffer made before the
/// measurement: copied with `complete`, or handed over with `complete_swap`.
struct EchoBus {
    device: CrbDevice,
    scratch: Vec<u8>,
    swap: bool,
}

impl Mmio for EchoBus {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.device.read(offset, data);
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        let token = match self.device.write(offset, data) {
            Some(Action::Execute { token, command, .. }) => {
                self.scratch.clear();
                self.scratch.extend_from_slice(command);
                token
            }
            _ => return,
        };
        if self.swap {
            self.device.complete_swap(token, Ok(&mut self.scratch));
        } else {
            self.device.complete(token, Ok(&self.scratch));
        }
    }
}

fn warm_round_trips(swap: bool) -> usize {
    let device = CrbDevice::new(CrbConfig {
        backend_buffer: 8192,
        ..CrbConfig::default()
    })
    .unwrap();
    let bus = EchoBus {
        device,
        scratch: Vec::with_capacity(8192),
        swap,
    };
    let mut driver = CrbDriver::new(bus);
    let mut command = vec![0x5Au8; 8192];
    command[0..2].copy_from_slice(&0x8001u16.to_be_bytes());
    command[2..6].copy_from_slice(&8192u32.to_be_bytes());
    let mut response = Vec::with_capacity(8192);
    // Warm up: the driver probes once, and with swapping both buffers
    // change hands once.
    for _ in 0..2 {
        driver
            .transmit_with(0, &command, &mut response, TransmitOptions::default())
            .unwrap();
    }
    let allocations = allocations_in(|| {
        for _ in 0..100 {
            let t = driver
                .transmit_with(0, &command, &mut response, TransmitOptions::default())
                .unwrap();
            assert_eq!(t.chunks_sent, 3);
            assert_eq!(t.chunks_received, 3);
        }
    });
    assert_eq!(response, command);
    allocations
}

#[test]
fn a_warm_8k_round_trip_allocates_nothing() {
    assert_eq!(warm_round_trips(false), 0, "allocations in 100 round trips");
}

#[test]
fn a_warm_8k_round_trip_completed_by_swapping_allocates_nothing() {
    assert_eq!(warm_round_trips(true), 0, "allocations in 100 round trips");
}

#[test]
fn the_counter_ignores_other_threads_allocating_meanwhile() {
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                drop(std::hint::black_box(vec![1u8; 64]));
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
        let mine = allocations_in(|| {
            let from = done.load(Ordering::Relaxed);
            // The other thread allocates a hundred times while armed here.
            while done.load(Ordering::Relaxed) < from + 100 {
                std::hint::spin_loop();
            }
            drop(std::hint::black_box(vec![1u8; 64]));
        });
        stop.store(true, Ordering::Relaxed);
        assert_eq!(mine, 1, "only this thread's one allocation counts");
    });
}
