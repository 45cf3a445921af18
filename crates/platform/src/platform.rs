//! Platform: device + backend worker + MMIO bus.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vtpm_backend::{Backend, BackendError, Cancel};
use vtpm_crb::{
    Action, BackendFailed, ChunkPolicy, ConfigError, CrbConfig, CrbDevice, ExecToken, SnapshotError,
};
use vtpm_guest::{CrbDriver, Mmio};

/// Where backend commands run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Execution {
    /// On a worker thread; MMIO never waits for the backend, as in a VMM.
    #[default]
    Worker,
    /// On the thread that wrote Start, before the write returns: no thread
    /// handoff, for measuring the transport itself.
    Inline,
}

/// The device-side settings of a [`Platform`]; the backend supplies the
/// buffer size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformConfig {
    /// Data window bytes (64..=3968).
    pub window_size: usize,
    /// CapCRBChunk policy.
    pub chunking: ChunkPolicy,
    /// Locality pages (1..=5).
    pub localities: u8,
    /// Where commands run.
    pub execution: Execution,
}

impl Default for PlatformConfig {
    fn default() -> Self {
        let crb = CrbConfig::default();
        Self {
            window_size: crb.window_size,
            chunking: crb.chunking,
            localities: crb.localities,
            execution: Execution::Worker,
        }
    }
}

/// A platform that could not be built or changed.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The device configuration is invalid.
    #[error("device configuration: {0}")]
    Config(#[from] ConfigError),
    /// The backend failed.
    #[error("backend: {0}")]
    Backend(#[from] BackendError),
    /// The worker thread could not start.
    #[error("cannot start the backend worker: {0}")]
    Worker(std::io::Error),
    /// A command was still executing when the save bound ran out; nothing
    /// was saved and the platform runs on.
    #[error("a command is still executing after {0:?}; try the save again")]
    Busy(Duration),
    /// The device part of a saved platform cannot be restored here.
    #[error("device snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
    /// The saved bytes are not a platform snapshot.
    #[error("platform snapshot: {0}")]
    Format(&'static str),
    /// The snapshot was taken with another kind of backend.
    #[error("snapshot holds {snapshot} state, the new backend is {backend}")]
    BackendMismatch {
        /// Backend kind in the snapshot.
        snapshot: String,
        /// Backend kind offered for restore.
        backend: &'static str,
    },
}

/// First bytes of a saved platform.
pub const PLATFORM_MAGIC: [u8; 8] = *b"VTPMPLAT";
/// Version of the saved-platform format.
pub const PLATFORM_VERSION: u16 = 1;

enum Job {
    Execute {
        token: ExecToken,
        locality: u8,
    },
    ResetEstablished {
        locality: u8,
    },
    ResetBackend,
    /// A control job, with a sequence number so its answer is taken only
    /// by the caller that asked for it.
    Control(Control, u64),
}

/// Work on the backend whose answer a caller waits for.
#[derive(Clone, Copy)]
enum Control {
    SaveState,
    ResumeSource,
}

impl Control {
    fn run(self, backend: &mut dyn Backend) -> Result<Vec<u8>, BackendError> {
        match self {
            Self::SaveState => backend.save_state(),
            Self::ResumeSource => backend.resume_after_failed_migration().map(|()| Vec::new()),
        }
    }
}

struct State {
    device: CrbDevice,
    jobs: VecDeque<Job>,
    /// The command of the queued Execute job (one at most: the device runs
    /// one command at a time). Swapped with the worker's buffer, never
    /// reallocated.
    job_command: Vec<u8>,
    /// Bumped when the backend is replaced; a worker of an older
    /// generation stops taking jobs.
    generation: u64,
    shutdown: bool,
    /// A worker is running a job (the lock is free meanwhile).
    busy: bool,
    /// The answer to a SaveState or ResumeSource job (empty for the
    /// latter), with the job's sequence number.
    saved: Option<(u64, Result<Vec<u8>, BackendError>)>,
    /// The sequence number of the last control job.
    control_seq: u64,
    last_error: Option<BackendError>,
    /// The backend, in inline mode only.
    inline: Option<InlineBackend>,
}

struct InlineBackend {
    backend: Box<dyn Backend>,
    response: Vec<u8>,
}

impl InlineBackend {
    fn new(backend: Box<dyn Backend>) -> Self {
        let response = Vec::with_capacity(backend.buffer_size());
        Self { backend, response }
    }
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the worker: a job was queued or it must stop.
    work: Condvar,
    /// Wakes waiters: a job finished.
    done: Condvar,
    /// Counts jobs ever queued, so a worker can watch for the next one
    /// without taking the lock.
    queued: AtomicU64,
}

impl Shared {
    /// Queues a job for the worker (the caller wakes it).
    fn queue(&self, state: &mut State, job: Job) {
        state.jobs.push_back(job);
        self.queued.fetch_add(1, Ordering::Release);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not wedge the guest: the state stays usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A CRB device wired to a backend.
pub struct Platform {
    shared: Arc<Shared>,
    canceller: Option<Arc<dyn Cancel>>,
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
        device: CrbDevice,
        backend: Box<dyn Backend>,
        config: PlatformConfig,
    ) -> Result<Self, PlatformError> {
        let buffer = device.transfer_limit();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                device,
                jobs: VecDeque::with_capacity(4),
                job_command: Vec::with_capacity(buffer),
                generation: 0,
                shutdown: false,
                busy: false,
                saved: None,
                control_seq: 0,
                last_error: None,
                inline: None,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            queued: AtomicU64::new(0),
        });
        let mut platform = Self {
            shared,
            canceller: backend.canceller(),
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
    ) -> Result<CrbDevice, PlatformError> {
        let mut device = CrbDevice::new(Self::crb_config(backend, config))?;
        device.set_established(backend.established()?);
        Ok(device)
    }

    fn crb_config(backend: &dyn Backend, config: &PlatformConfig) -> CrbConfig {
        CrbConfig {
            window_size: config.window_size,
            backend_buffer: backend.buffer_size(),
            chunking: config.chunking,
            localities: config.localities,
            ..CrbConfig::default()
        }
    }

    /// Saves device and backend together, for a live migration or a
    /// snapshot. Call it with the guest's vCPUs paused.
    ///
    /// A command still executing is waited for, up to `bound`, so the
    /// snapshot holds its response. If the bound runs out the save fails
    /// with [`PlatformError::Busy`] and nothing changes: no command is lost
    /// or run twice.
    pub fn save(&self, bound: Duration) -> Result<Vec<u8>, PlatformError> {
        let deadline = Instant::now() + bound;
        let mut state = self.shared.lock();
        while state.device.is_executing() || !state.jobs.is_empty() || state.busy {
            state = self.wait_done(state, deadline, bound)?;
        }
        let device = state.device.snapshot();
        let (backend, state) = self.on_backend(state, Control::SaveState)?;
        drop(state);
        let name = self.backend_name.as_bytes();
        let mut out = Vec::with_capacity(32 + device.len() + backend.len());
        out.extend_from_slice(&PLATFORM_MAGIC);
        out.extend_from_slice(&PLATFORM_VERSION.to_le_bytes());
        out.extend_from_slice(&(device.len() as u32).to_le_bytes());
        out.extend_from_slice(&device);
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.extend_from_slice(&(backend.len() as u32).to_le_bytes());
        out.extend_from_slice(&backend);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Runs a control job on the backend (inline, or on the worker with a
    /// bounded wait) and returns its answer.
    fn on_backend<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        control: Control,
    ) -> Result<(Vec<u8>, MutexGuard<'a, State>), PlatformError> {
        if let Some(i) = state.inline.as_mut() {
            let answer = control.run(&mut *i.backend)?;
            return Ok((answer, state));
        }
        state.control_seq += 1;
        let seq = state.control_seq;
        self.shared.queue(&mut state, Job::Control(control, seq));
        self.shared.work.notify_all();
        // This is the backend's own work (a state blob can take a while);
        // it gets a bound of its own.
        let deadline = Instant::now() + SAVE_STATE_BOUND;
        loop {
            match state.saved.take() {
                Some((answered, result)) if answered == seq => return Ok((result?, state)),
                // An answer for a caller that gave up waiting: drop it.
                Some(_) | None => {}
            }
            state = self.wait_done(state, deadline, SAVE_STATE_BOUND)?;
        }
    }

    /// For a migration source that runs on after the migration failed:
    /// lets the backend take back what the destination may have taken
    /// (swtpm's storage lock, with LOCK_STORAGE, when it has the
    /// capability).
    pub fn resume_after_failed_migration(&self) -> Result<(), PlatformError> {
        let state = self.shared.lock();
        let (_, _state) = self.on_backend(state, Control::ResumeSource)?;
        Ok(())
    }

    fn wait_done<'a>(
        &'a self,
        state: MutexGuard<'a, State>,
        deadline: Instant,
        bound: Duration,
    ) -> Result<MutexGuard<'a, State>, PlatformError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(PlatformError::Busy(bound));
        }
        Ok(self
            .shared
            .done
            .wait_timeout(state, left)
            .map(|(guard, _)| guard)
            .unwrap_or_else(|p| p.into_inner().0))
    }

    /// Builds a platform from [`Platform::save`] bytes. `backend`, a fresh
    /// one of the same kind, takes the saved TPM state; the device resumes
    /// exactly where it was. Should the snapshot hold a command still
    /// executing (a device snapshot taken outside [`Platform::save`]), it is
    /// delivered to the new backend.
    pub fn restore(
        saved: &[u8],
        mut backend: Box<dyn Backend>,
        config: PlatformConfig,
    ) -> Result<Self, PlatformError> {
        let parts = SavedPlatform::parse(saved)?;
        if parts.backend != backend.name() {
            return Err(PlatformError::BackendMismatch {
                snapshot: parts.backend,
                backend: backend.name(),
            });
        }
        backend.restore_state(parts.backend_state)?;
        let mut device = CrbDevice::restore(Self::crb_config(&*backend, &config), parts.device)?;
        device.set_established(backend.established()?);
        let redeliver = match device.executing_command() {
            Some(Action::Execute {
                token,
                locality,
                command,
            }) => Some((token, locality, command.to_vec())),
            _ => None,
        };
        let platform = Self::assemble(device, backend, config)?;
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

    fn attach(&mut self, backend: Box<dyn Backend>, generation: u64) -> Result<(), PlatformError> {
        match self.config.execution {
            Execution::Inline => {
                self.shared.lock().inline = Some(InlineBackend::new(backend));
            }
            Execution::Worker => {
                let shared = self.shared.clone();
                let handle = std::thread::Builder::new()
                    .name(format!("vtpm-backend-{generation}"))
                    .spawn(move || worker(shared, backend, generation))
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
            canceller: self.canceller.clone(),
        }
    }

    /// A guest CRB driver on a new bus.
    pub fn driver(&self) -> CrbDriver<CrbBus> {
        CrbDriver::new(self.bus())
    }

    /// Runs `f` on the device, under the platform's lock.
    pub fn with_device<R>(&self, f: impl FnOnce(&mut CrbDevice) -> R) -> R {
        f(&mut self.shared.lock().device)
    }

    /// The backend's name.
    pub fn backend_name(&self) -> &'static str {
        self.backend_name
    }

    /// The platform's device settings.
    pub fn config(&self) -> &PlatformConfig {
        &self.config
    }

    /// The last backend failure, taken (the device shows it as tpmSts).
    pub fn take_backend_error(&self) -> Option<BackendError> {
        self.shared.lock().last_error.take()
    }

    /// Resets the platform: the device returns to its power-on state and
    /// the backend is power-cycled (the next command must be Startup).
    pub fn reset(&self) {
        let mut state = self.shared.lock();
        state.device.reset();
        // Commands die with the reset; a save or resume in progress does not.
        state.jobs.retain(|j| matches!(j, Job::Control(..)));
        state.job_command.fill(0);
        state.job_command.clear();
        self.shared.queue(&mut state, Job::ResetBackend);
        run_inline_jobs(&mut state);
        drop(state);
        self.shared.work.notify_all();
    }

    /// Replaces a failed backend: the device is reset and a new worker
    /// serves `backend`. A worker still blocked in the old backend finishes
    /// on its own; its late answer is dropped as stale.
    pub fn replace_backend(&mut self, mut backend: Box<dyn Backend>) -> Result<(), PlatformError> {
        let fresh = Self::device_for(&mut *backend, &self.config)?;
        self.canceller = backend.canceller();
        self.backend_name = backend.name();
        let mut for_worker = Some(backend);
        let generation = {
            let mut state = self.shared.lock();
            state.generation += 1;
            state.jobs.clear();
            state.device = fresh;
            let capacity = state.device.transfer_limit();
            state.job_command.fill(0);
            state.job_command = Vec::with_capacity(capacity);
            state.last_error = None;
            // The old worker may still be inside the old backend; it is no
            // longer this platform's business.
            state.busy = false;
            state.inline = match (self.config.execution, for_worker.take()) {
                // Installed under the same lock, so no Start can slip in
                // between and find no backend.
                (Execution::Inline, Some(backend)) => Some(InlineBackend::new(backend)),
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
        self.shared.lock().shutdown = true;
        self.shared.work.notify_all();
        // A worker stuck in a hung backend is left to finish on its own
        // rather than hanging the VMM's teardown.
        let deadline = Instant::now() + Duration::from_secs(10);
        for worker in self.workers.drain(..) {
            while !worker.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if worker.is_finished() {
                let _ = worker.join();
            } else {
                tracing::warn!("backend worker still busy at shutdown; detaching it");
            }
        }
    }
}

fn worker(shared: Arc<Shared>, mut backend: Box<dyn Backend>, generation: u64) {
    let buffer = backend.buffer_size();
    let mut command = Vec::with_capacity(buffer);
    let mut response = Vec::with_capacity(buffer);
    // With a CPU to spare, the worker watches for the next job a little
    // before it sleeps: waking a sleeping thread costs several microseconds
    // (more when the vCPU under it was halted), and guests send commands
    // back to back. On a single CPU watching would only steal its time.
    let watch = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    loop {
        let job = {
            let mut state = shared.lock();
            let mut watched = !watch;
            loop {
                if state.shutdown || state.generation != generation {
                    return;
                }
                if let Some(job) = state.jobs.pop_front() {
                    if matches!(job, Job::Execute { .. }) {
                        std::mem::swap(&mut command, &mut state.job_command);
                    }
                    state.busy = true;
                    break job;
                }
                if !watched {
                    watched = true;
                    let seen = shared.queued.load(Ordering::Acquire);
                    drop(state);
                    let since = Instant::now();
                    while shared.queued.load(Ordering::Acquire) == seen
                        && since.elapsed() < WORKER_WATCH
                    {
                        std::hint::spin_loop();
                    }
                    state = shared.lock();
                    continue;
                }
                state = shared.work.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        };
        let outcome = run_job(&mut *backend, &job, &command, &mut response);
        command.fill(0);
        command.clear();
        let mut state = shared.lock();
        if state.generation != generation {
            response.fill(0);
            return;
        }
        state.busy = false;
        finish_job(&mut state, job, outcome, &mut response);
        drop(state);
        shared.done.notify_all();
    }
}

/// What a job produced, before the device hears of it.
enum Outcome {
    Executed(Result<(), BackendError>),
    Established(Result<bool, BackendError>),
    Reset(Result<bool, BackendError>),
    Saved(u64, Result<Vec<u8>, BackendError>),
}

fn run_job(
    backend: &mut dyn Backend,
    job: &Job,
    command: &[u8],
    response: &mut Vec<u8>,
) -> Outcome {
    match *job {
        Job::Execute { locality, .. } => {
            Outcome::Executed(backend.execute(locality, command, response))
        }
        Job::ResetEstablished { locality } => Outcome::Established(
            backend
                .reset_established(locality)
                .and_then(|()| backend.established()),
        ),
        Job::ResetBackend => Outcome::Reset(backend.reset().and_then(|()| backend.established())),
        Job::Control(control, seq) => Outcome::Saved(seq, control.run(backend)),
    }
}

/// Tells the device how a job ended. `response` comes back empty and
/// zeroed (the device swaps it for its own buffer).
fn finish_job(state: &mut State, job: Job, outcome: Outcome, response: &mut Vec<u8>) {
    let failed = |state: &mut State, e: BackendError| {
        tracing::warn!(error = %e, "backend failure");
        state.last_error = Some(e);
    };
    match (job, outcome) {
        (Job::Execute { token, .. }, Outcome::Executed(result)) => {
            let answer = match result {
                Ok(()) => Ok(&mut *response),
                Err(e) => {
                    failed(state, e);
                    Err(BackendFailed)
                }
            };
            state.device.complete_swap(token, answer);
        }
        (_, Outcome::Established(Ok(flag)) | Outcome::Reset(Ok(flag))) => {
            state.device.set_established(flag)
        }
        (_, Outcome::Established(Err(e)) | Outcome::Reset(Err(e))) => {
            // The flag is unchanged; this also lets the guest ask again.
            let flag = state.device.established();
            state.device.set_established(flag);
            failed(state, e);
        }
        (_, Outcome::Saved(seq, result)) => state.saved = Some((seq, result)),
        (_, Outcome::Executed(_)) => {}
    }
    response.fill(0);
    response.clear();
}

/// Runs queued jobs on the inline backend, if there is one.
fn run_inline_jobs(state: &mut State) {
    let Some(mut inline) = state.inline.take() else {
        return;
    };
    while let Some(job) = state.jobs.pop_front() {
        let outcome = run_job(
            &mut *inline.backend,
            &job,
            &state.job_command,
            &mut inline.response,
        );
        state.job_command.fill(0);
        state.job_command.clear();
        finish_job(state, job, outcome, &mut inline.response);
    }
    state.inline = Some(inline);
}

/// How long an idle worker watches for the next job before it sleeps.
const WORKER_WATCH: Duration = Duration::from_micros(50);

/// How long a backend may take to produce its state for [`Platform::save`].
const SAVE_STATE_BOUND: Duration = Duration::from_secs(30);

/// The parts of a [`Platform::save`] blob.
struct SavedPlatform<'a> {
    device: &'a [u8],
    backend: String,
    backend_state: &'a [u8],
}

impl<'a> SavedPlatform<'a> {
    fn parse(saved: &'a [u8]) -> Result<Self, PlatformError> {
        if saved.len() < PLATFORM_MAGIC.len() + 2 + 4 || saved[..8] != PLATFORM_MAGIC {
            return Err(PlatformError::Format("not a vtpm platform snapshot"));
        }
        let (body, crc) = saved.split_at(saved.len() - 4);
        if crc32fast::hash(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(PlatformError::Format("checksum mismatch"));
        }
        let mut rest = &body[8..];
        let mut take = |n: usize| -> Result<&'a [u8], PlatformError> {
            if rest.len() < n {
                return Err(PlatformError::Format("truncated"));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let version = take(2)?;
        if u16::from_le_bytes([version[0], version[1]]) != PLATFORM_VERSION {
            return Err(PlatformError::Format("unsupported version"));
        }
        let len = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let n = len(take(4)?);
        let device = take(n)?;
        let n = usize::from(take(1)?[0]);
        let backend = String::from_utf8_lossy(take(n)?).into_owned();
        let n = len(take(4)?);
        let backend_state = take(n)?;
        if !rest.is_empty() {
            return Err(PlatformError::Format("trailing bytes"));
        }
        Ok(Self {
            device,
            backend,
            backend_state,
        })
    }
}

/// MMIO access to the platform's device, as a guest sees it.
#[derive(Clone)]
pub struct CrbBus {
    shared: Arc<Shared>,
    canceller: Option<Arc<dyn Cancel>>,
}

impl Mmio for CrbBus {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.shared.lock().device.read(offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let mut guard = self.shared.lock();
        let state = &mut *guard;
        let job = match state.device.write(offset, data) {
            None => return,
            Some(Action::Cancel { .. }) => {
                drop(guard);
                self.cancel();
                return;
            }
            Some(Action::ResetEstablished { locality }) => Job::ResetEstablished { locality },
            Some(Action::Execute {
                token,
                locality,
                command,
            }) => {
                if let Some(mut inline) = state.inline.take() {
                    // Inline: the backend reads the device's own buffer.
                    let result = inline
                        .backend
                        .execute(locality, command, &mut inline.response);
                    let job = Job::Execute { token, locality };
                    finish_job(state, job, Outcome::Executed(result), &mut inline.response);
                    state.inline = Some(inline);
                    return;
                }
                state.job_command.clear();
                state.job_command.extend_from_slice(command);
                Job::Execute { token, locality }
            }
        };
        self.shared.queue(state, job);
        run_inline_jobs(state);
        // Wake the worker only once the lock is free, or it wakes just to
        // block on the lock again.
        drop(guard);
        self.shared.work.notify_one();
    }
}

impl CrbBus {
    /// Sends a cancel to the backend, which is busy on the worker, from a
    /// thread of its own: swtpm may answer CANCEL_TPM_CMD only once the
    /// command ends, and no vCPU should wait for that. The device asks for
    /// at most one cancel per command, so these threads stay few.
    fn cancel(&self) {
        let Some(canceller) = self.canceller.clone() else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("vtpm-cancel".into())
            .spawn(move || {
                if let Err(e) = canceller.cancel() {
                    tracing::warn!(error = %e, "cancel failed");
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the cancel thread");
        }
    }
}
