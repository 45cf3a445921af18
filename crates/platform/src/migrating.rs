//! A bus that migrates the whole platform after every MMIO access.

use std::time::Duration;

use vtpm_backend::{Backend, BackendError};
use vtpm_guest::Mmio;

use crate::{CrbBus, MmioExits, Platform, PlatformConfig, PlatformError};

/// Makes the fresh backend each migration restores into.
pub type BackendFactory = Box<dyn FnMut() -> Result<Box<dyn Backend>, BackendError>>;

/// An [`Mmio`] that, after every access, saves the platform, drops its
/// device and backend, and restores into a fresh device and a fresh
/// backend from `factory`: a live migration at every step of the guest's
/// transfers. The guest driver notices nothing, or the migration is broken.
///
/// The source is dropped before the destination is built, as in a real
/// migration. A migration that fails stops the migrations and is reported
/// by [`MigratingBus::error`]: if saving failed the bus keeps the source;
/// if restoring failed there is no platform left, reads return all ones
/// and writes are dropped (the guest driver then times out).
pub struct MigratingBus {
    platform: Option<Platform>,
    bus: Option<CrbBus>,
    config: PlatformConfig,
    factory: BackendFactory,
    save_bound: Duration,
    migrations: u64,
    error: Option<PlatformError>,
    /// Exits counted by the platforms already migrated away from.
    earlier_exits: MmioExits,
}

impl MigratingBus {
    /// Wraps `platform`; `factory` makes the backend of each destination.
    pub fn new(platform: Platform, factory: BackendFactory) -> Self {
        Self {
            bus: Some(platform.bus()),
            config: platform.config().clone(),
            platform: Some(platform),
            factory,
            save_bound: Duration::from_secs(60),
            migrations: 0,
            error: None,
            earlier_exits: MmioExits::default(),
        }
    }

    /// Migrations completed so far.
    pub fn migrations(&self) -> u64 {
        self.migrations
    }

    /// The accesses a VMM would have trapped, over every platform so far.
    pub fn mmio_exits(&self) -> MmioExits {
        let now = self.platform.as_ref().map(Platform::mmio_exits);
        self.earlier_exits + now.unwrap_or_default()
    }

    /// The error that stopped migrations, if any.
    pub fn error(&self) -> Option<&PlatformError> {
        self.error.as_ref()
    }

    /// The current platform.
    pub fn platform(&self) -> Option<&Platform> {
        self.platform.as_ref()
    }

    fn migrate(&mut self) {
        if self.error.is_some() {
            return;
        }
        let Some(source) = self.platform.as_ref() else {
            return;
        };
        let exits = source.mmio_exits();
        let outcome = source.save(self.save_bound).and_then(|saved| {
            let backend = (self.factory)()?;
            // The source goes away before the destination starts, as in a
            // real migration: nothing of it may survive but the bytes.
            self.bus = None;
            self.platform = None;
            Platform::restore(&saved, backend, self.config.clone())
        });
        match outcome {
            Ok(destination) => {
                self.earlier_exits = self.earlier_exits + exits;
                self.bus = Some(destination.bus());
                self.platform = Some(destination);
                self.migrations += 1;
            }
            Err(e) => {
                tracing::error!(error = %e, "migration failed");
                self.error = Some(e);
            }
        }
    }
}

impl Mmio for MigratingBus {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match self.bus.as_mut() {
            Some(bus) => bus.read(offset, data),
            None => data.fill(0xFF),
        }
        self.migrate();
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let Some(bus) = self.bus.as_mut() {
            bus.write(offset, data);
        }
        self.migrate();
    }
}
