//! Platform: a device, its backend (on a worker or inline), the buses onto
//! it, and saving and restoring the whole.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vtpm_backend::{Backend, BackendError};
use vtpm_guest::{CrbDriver, TisDriver};
use zeroize::{Zeroize, Zeroizing};

use crate::cancel::CancelState;
use crate::device::{Action, Device};
use crate::jobs::{guarded, run_inline_jobs, worker, Control, InlineBackend, Job, Shared, State};
use crate::saved::{seal, unseal, SavedPlatform, SealingKey};
use crate::{CrbBus, Execution, MmioExits, PlatformConfig, PlatformError};

/// A CRB or TIS device ([`PlatformConfig::interface`]) wired to a backend.
pub struct Platform {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    backend_name: &'static str,
    config: PlatformConfig,
}

impl Platform {
    /// Builds the device for `backend`'s buffer size and starts the worker.
    pub fn new(
        mut backend: Box<dyn Backend>,
        config: PlatformConfig,
    ) -> Result<Self, PlatformError> {
        let device = Self::device_for(&mut *backend, &config)?;
        Self::assemble(device, backend, config)
    }

    fn assemble(
        device: Device,
        backend: Box<dyn Backend>,
        config: PlatformConfig,
    ) -> Result<Self, PlatformError> {
        let buffer = device.transfer_limit();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                device,
                jobs: VecDeque::with_capacity(4),
                job_command: Zeroizing::new(Vec::with_capacity(buffer)),
                generation: 0,
                shutdown: false,
                busy: false,
                last_error: None,
                inline: None,
                cancel: CancelState {
                    handle: backend.canceller(),
                    ..CancelState::default()
                },
                ram: config
                    .window_in_ram
                    .then(|| Zeroizing::new(vec![0; config.window_size])),
                exits: MmioExits::default(),
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            cancel: Condvar::new(),
            queued: AtomicU64::new(0),
            idle_spin: config.idle_spin,
            backend_gate: Mutex::default(),
        });
        let mut platform = Self {
            shared,
            workers: Vec::new(),
            backend_name: backend.name(),
            config,
        };
        platform.attach(backend, 0)?;
        Ok(platform)
    }

    fn device_for(
        backend: &mut dyn Backend,
        config: &PlatformConfig,
    ) -> Result<Device, PlatformError> {
        let mut device = Device::new(config.interface, backend.buffer_size(), config)?;
        device.set_established(guarded("established", || backend.established())?);
        Ok(device)
    }

    /// Saves device and backend together, for a live migration or a
    /// snapshot. Call it with the guest's vCPUs paused. The blob carries
    /// the TPM's state in the clear; [`Platform::save_sealed`] encrypts it.
    ///
    /// A command still executing is waited for, up to `bound` (one too
    /// large for the clock, such as `Duration::MAX`, waits without bound),
    /// so the snapshot holds its response. If the bound runs out the save
    /// fails with [`PlatformError::Busy`] and nothing changes: no command
    /// is lost or run twice. The backend then has
    /// [`PlatformConfig::control_timeout`] to produce its state, or the
    /// save fails with [`PlatformError::BackendTimeout`].
    pub fn save(&self, bound: Duration) -> Result<Zeroizing<Vec<u8>>, PlatformError> {
        let deadline = Instant::now().checked_add(bound);
        let mut state = self.shared.lock();
        while state.commands_in_flight() {
            state = self
                .shared
                .wait_done(state, deadline)
                .ok_or(PlatformError::Busy(bound))?;
        }
        let mut device = state.device.snapshot();
        // Taken with the device, under the same lock: the guest's RAM and
        // the device agree.
        let window_ram = state.ram.clone();
        let backend_state = self.on_backend(state, Control::SaveState);
        let saved = backend_state.and_then(|backend_state| {
            SavedPlatform {
                interface: self.config.interface,
                device: &device,
                backend: self.backend_name,
                backend_state: &backend_state,
                window_ram: window_ram.as_deref().map(Vec::as_slice),
            }
            .write()
        });
        device.zeroize();
        saved
    }

    /// [`Platform::save`], sealed with AES-256-GCM under `key` (a random
    /// nonce each time; the format's magic and version are authenticated
    /// too). Restore it with [`Platform::restore_sealed`].
    pub fn save_sealed(
        &self,
        bound: Duration,
        key: &SealingKey,
    ) -> Result<Zeroizing<Vec<u8>>, PlatformError> {
        seal(&self.save(bound)?, key)
    }

    /// Runs a control job on the backend (inline, or on the worker with a
    /// reply channel of its own and a bounded wait) and returns its answer.
    fn on_backend(
        &self,
        mut state: MutexGuard<'_, State>,
        control: Control,
    ) -> Result<Zeroizing<Vec<u8>>, PlatformError> {
        if let Some(inline) = state.inline.as_mut() {
            return Ok(control.run(&mut *inline.backend)?);
        }
        let (reply, answer) = sync_channel(1);
        self.shared.queue(&mut state, Job::Control(control, reply));
        drop(state);
        self.shared.work.notify_all();
        let after = self.config.control_timeout;
        // A timeout too large for the clock waits without one.
        match answer.recv_timeout(after) {
            Ok(result) => Ok(result?),
            Err(RecvTimeoutError::Timeout) => Err(PlatformError::BackendTimeout {
                operation: control.operation(),
                after,
            }),
            Err(RecvTimeoutError::Disconnected) => Err(PlatformError::WorkerStopped {
                operation: control.operation(),
            }),
        }
    }

    /// For a migration source that runs on after the migration failed:
    /// lets the backend take back what the destination may have taken
    /// (swtpm's storage lock, with LOCK_STORAGE, when it has the
    /// capability).
    pub fn resume_after_failed_migration(&self) -> Result<(), PlatformError> {
        let state = self.shared.lock();
        self.on_backend(state, Control::ResumeSource).map(drop)
    }

    /// Builds a platform from [`Platform::save`] bytes (this version's or
    /// an earlier one's, which hold a CRB device). The saved interface must
    /// be `config.interface` ([`PlatformError::InterfaceMismatch`]). `backend`, a fresh one of the same kind, takes the
    /// saved TPM state; the device resumes exactly where it was. Should the
    /// snapshot hold a command still executing (a device snapshot taken
    /// outside [`Platform::save`]), it is delivered to the new backend.
    pub fn restore(
        saved: &[u8],
        mut backend: Box<dyn Backend>,
        config: PlatformConfig,
    ) -> Result<Self, PlatformError> {
        let parts = SavedPlatform::parse(saved)?;
        if parts.backend != backend.name() {
            return Err(PlatformError::BackendMismatch {
                snapshot: parts.backend.to_string(),
                backend: backend.name(),
            });
        }
        if parts.interface != config.interface {
            return Err(PlatformError::InterfaceMismatch {
                snapshot: parts.interface,
                config: config.interface,
            });
        }
        guarded("restore_state", || {
            backend.restore_state(parts.backend_state)
        })?;
        let mut device = Device::restore(
            config.interface,
            backend.buffer_size(),
            &config,
            parts.device,
        )?;
        device.set_established(guarded("established", || backend.established())?);
        let redeliver = match device.executing_command() {
            Some(Action::Execute {
                token,
                locality,
                command,
            }) => Some((token, locality, Zeroizing::new(command.to_vec()))),
            _ => None,
        };
        let platform = Self::assemble(device, backend, config)?;
        {
            let mut guard = platform.shared.lock();
            let state = &mut *guard;
            if let Some(ram) = state.ram.as_mut() {
                // The saved guest RAM, or, from a platform that trapped the
                // window, the device's own window.
                match parts.window_ram.filter(|r| r.len() == ram.len()) {
                    Some(saved) => ram.copy_from_slice(saved),
                    None => state.device.mirror_to(ram),
                }
            }
        }
        if let Some((token, locality, command)) = redeliver {
            let mut state = platform.shared.lock();
            state.job_command.extend_from_slice(&command);
            platform
                .shared
                .queue(&mut state, Job::Execute { token, locality });
            run_inline_jobs(&mut state);
            drop(state);
            platform.shared.work.notify_all();
        }
        Ok(platform)
    }

    /// [`Platform::restore`] of a [`Platform::save_sealed`] blob. A wrong
    /// key or altered bytes are [`PlatformError::Unseal`]; bytes that are
    /// not sealed are [`PlatformError::NotSealed`].
    pub fn restore_sealed(
        sealed: &[u8],
        key: &SealingKey,
        backend: Box<dyn Backend>,
        config: PlatformConfig,
    ) -> Result<Self, PlatformError> {
        Self::restore(&unseal(sealed, key)?, backend, config)
    }

    fn attach(&mut self, backend: Box<dyn Backend>, generation: u64) -> Result<(), PlatformError> {
        let mut state = self.shared.lock();
        let capacity = state.device.transfer_limit();
        match self.config.execution {
            Execution::Inline => {
                state.inline = Some(InlineBackend::new(backend, capacity));
            }
            Execution::Worker => {
                drop(state);
                let shared = self.shared.clone();
                let handle = std::thread::Builder::new()
                    .name(format!("vtpm-backend-{generation}"))
                    .spawn(move || worker(shared, backend, generation, capacity))
                    .map_err(PlatformError::Worker)?;
                self.workers.push(handle);
            }
        }
        Ok(())
    }

    /// An MMIO bus onto the device; clones share the device.
    pub fn bus(&self) -> CrbBus {
        CrbBus {
            shared: self.shared.clone(),
        }
    }

    /// A guest CRB driver on a new bus (for [`Interface::Crb`](crate::Interface::Crb)).
    pub fn driver(&self) -> CrbDriver<CrbBus> {
        CrbDriver::new(self.bus())
    }

    /// A guest TIS driver on a new bus (for [`Interface::Tis`](crate::Interface::Tis)).
    pub fn tis_driver(&self) -> TisDriver<CrbBus> {
        TisDriver::new(self.bus())
    }

    /// Runs `f` on the device, under the platform's lock.
    pub fn with_device<R>(&self, f: impl FnOnce(&mut Device) -> R) -> R {
        f(&mut self.shared.lock().device)
    }

    /// The accesses a VMM would have trapped so far (see [`MmioExits`]).
    pub fn mmio_exits(&self) -> MmioExits {
        self.shared.lock().exits
    }

    /// The backend's name.
    pub fn backend_name(&self) -> &'static str {
        self.backend_name
    }

    /// The platform's device settings.
    pub fn config(&self) -> &PlatformConfig {
        &self.config
    }

    /// The last backend failure, taken (the device shows it as tpmSts). A
    /// backend that panicked is [`BackendError::Panicked`].
    pub fn take_backend_error(&self) -> Option<BackendError> {
        self.shared.lock().last_error.take()
    }

    /// Resets the platform: the device returns to its power-on state and
    /// the backend is power-cycled (the next command must be Startup).
    pub fn reset(&self) {
        let mut guard = self.shared.lock();
        let state = &mut *guard;
        match state.ram.as_mut() {
            Some(ram) => state.device.reset_in_ram(ram),
            None => state.device.reset(),
        }
        let mut state = guard;
        // Commands die with the reset; a save or resume in progress does not.
        state.jobs.retain(|j| matches!(j, Job::Control(..)));
        state.job_command.zeroize();
        state.cancel.pending = None;
        self.shared.queue(&mut state, Job::ResetBackend);
        run_inline_jobs(&mut state);
        drop(state);
        self.shared.work.notify_all();
    }

    /// Replaces a failed backend: the device is reset and a new worker
    /// serves `backend`; every bus, old or new, now reaches it (cancel
    /// too). A worker still blocked in the old backend finishes on its
    /// own; its late answer is dropped as stale.
    pub fn replace_backend(&mut self, mut backend: Box<dyn Backend>) -> Result<(), PlatformError> {
        let fresh = Self::device_for(&mut *backend, &self.config)?;
        self.backend_name = backend.name();
        let canceller = backend.canceller();
        let mut for_worker = Some(backend);
        let generation = {
            let mut state = self.shared.lock();
            state.generation += 1;
            state.jobs.clear();
            state.device = fresh;
            if let Some(ram) = state.ram.as_mut() {
                ram.as_mut_slice().zeroize();
            }
            let capacity = state.device.transfer_limit();
            state.job_command.zeroize();
            state.job_command = Zeroizing::new(Vec::with_capacity(capacity));
            state.last_error = None;
            state.cancel.handle = canceller;
            state.cancel.pending = None;
            // The old worker may still be inside the old backend; it is no
            // longer this platform's business.
            state.busy = false;
            state.inline = match (self.config.execution, for_worker.take()) {
                // Installed under the same lock, so no Start can slip in
                // between and find no backend.
                (Execution::Inline, Some(backend)) => Some(InlineBackend::new(backend, capacity)),
                (_, backend) => {
                    for_worker = backend;
                    None
                }
            };
            state.generation
        };
        self.shared.work.notify_all();
        self.workers.retain(|w| !w.is_finished());
        match for_worker {
            Some(backend) => self.attach(backend, generation),
            None => Ok(()),
        }
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        let canceller = {
            let mut state = self.shared.lock();
            state.shutdown = true;
            state.cancel.thread.take()
        };
        self.shared.work.notify_all();
        self.shared.cancel.notify_all();
        // A thread stuck in a hung backend is left to finish on its own
        // rather than hanging the VMM's teardown.
        let deadline = Instant::now() + Duration::from_secs(10);
        for thread in self.workers.drain(..).chain(canceller) {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                tracing::warn!("backend thread still busy at shutdown; detaching it");
            }
        }
    }
}
