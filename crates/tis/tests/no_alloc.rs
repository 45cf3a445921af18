//! Once warm, a command through the device (and the guest driver) makes no
//! heap allocation: measured with a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use vtpm_guest::{Mmio, TisDriver, TisTransmitOptions};
use vtpm_tis::{Action, TisConfig, TisDevice};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// wrapper only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs each command at once as an echo, through a buffer made before
/// the measurement, completing by copy or by swap.
struct EchoBus {
    device: TisDevice,
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

#[test]
fn a_warm_8k_round_trip_allocates_nothing() {
    for swap in [false, true] {
        let device = TisDevice::new(TisConfig {
            backend_buffer: 8192,
            ..TisConfig::default()
        })
        .unwrap();
        let bus = EchoBus {
            device,
            scratch: Vec::with_capacity(8192),
            swap,
        };
        let mut driver = TisDriver::new(bus);
        let command = vtpm_client::padded_get_random(8192);
        let mut response = Vec::with_capacity(8192);
        // Warm up: the driver probes once.
        driver
            .transmit_with(0, &command, &mut response, TisTransmitOptions::default())
            .unwrap();
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        for _ in 0..100 {
            let t = driver
                .transmit_with(0, &command, &mut response, TisTransmitOptions::default())
                .unwrap();
            assert_eq!((t.bursts_sent, t.bursts_received), (2, 2));
        }
        let after = ALLOCATIONS.load(Ordering::SeqCst);
        assert_eq!(response, command);
        assert_eq!(
            after - before,
            0,
            "allocations during 100 warm round trips (swap {swap})"
        );
    }
}
