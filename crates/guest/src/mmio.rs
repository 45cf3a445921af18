//! The MMIO access a driver needs, and the clock it waits with.

use std::time::{Duration, Instant};

/// MMIO access to a TPM's locality pages. Offsets are relative to the
/// page of locality 0 (0xFED40000 on a PC).
///
/// Register accesses are 1, 2, 4 or 8 bytes; accesses inside a data
/// window may be of any length.
pub trait Mmio {
    /// Reads `data.len()` bytes at `offset`.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// Writes `data` at `offset`.
    fn write(&mut self, offset: u64, data: &[u8]);

    /// Reads a little-endian u32 register.
    fn read_u32(&mut self, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        self.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    /// Writes a little-endian u32 register.
    fn write_u32(&mut self, offset: u64, value: u32) {
        self.write(offset, &value.to_le_bytes());
    }

    /// Reads a little-endian u64 register.
    fn read_u64(&mut self, offset: u64) -> u64 {
        let mut b = [0u8; 8];
        self.read(offset, &mut b);
        u64::from_le_bytes(b)
    }
}

impl<T: Mmio + ?Sized> Mmio for &mut T {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        (**self).read(offset, data)
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        (**self).write(offset, data)
    }
}

/// Time as the driver sees it, injectable so tests control timeouts.
pub trait Clock {
    /// Time elapsed since an arbitrary fixed point.
    fn now(&mut self) -> Duration;
    /// Called between two polls of a register: sleep, yield or advance.
    fn pause(&mut self);
    /// Called when a new wait begins, before its first poll.
    fn begin_wait(&mut self) {}
}

/// Wall-clock time. A wait spins for its first polls, then yields the CPU
/// for up to [`SystemClock::YIELD_FOR`], then sleeps briefly between
/// polls: fast devices answer fast, and a slow command (key generation)
/// does not burn a core.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
    wait_started: Instant,
    polls: u32,
}

impl SystemClock {
    /// Polls that only spin.
    pub const SPIN_POLLS: u32 = 64;
    /// How long a wait yields between polls before it starts sleeping.
    pub const YIELD_FOR: Duration = Duration::from_micros(200);
    /// The sleep between polls after that: short, so a command that ends
    /// during it is noticed within about this long.
    pub const SLEEP: Duration = Duration::from_micros(50);
}

impl Default for SystemClock {
    fn default() -> Self {
        let now = Instant::now();
        Self {
            origin: now,
            wait_started: now,
            polls: 0,
        }
    }
}

impl Clock for SystemClock {
    fn now(&mut self) -> Duration {
        self.origin.elapsed()
    }
    fn pause(&mut self) {
        self.polls = self.polls.saturating_add(1);
        if self.polls <= Self::SPIN_POLLS {
            std::hint::spin_loop();
        } else if self.wait_started.elapsed() < Self::YIELD_FOR {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Self::SLEEP);
        }
    }
    fn begin_wait(&mut self) {
        self.polls = 0;
        self.wait_started = Instant::now();
    }
}
