//! The state the platform's threads share, the jobs queued for the
//! backend, and the worker that runs them.

use std::any::Any;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use vtpm_backend::{Backend, BackendError};
use zeroize::{Zeroize, Zeroizing};

use crate::cancel::CancelState;
use crate::device::{Device, Token};

/// Where a control job's answer goes: to the one caller that asked.
pub(crate) type Reply = SyncSender<Result<Zeroizing<Vec<u8>>, BackendError>>;

pub(crate) enum Job {
    Execute {
        token: Token,
        locality: u8,
    },
    ResetEstablished {
        locality: u8,
    },
    ResetBackend,
    /// Work a caller waits on, with the caller's own reply channel.
    Control(Control, Reply),
}

impl Job {
    /// A job of the guest's command stream, which a save waits for (a
    /// control job is a caller's, who waits for it on its own).
    fn is_command(&self) -> bool {
        !matches!(self, Job::Control(..))
    }
}

/// Work on the backend whose answer a caller waits for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Control {
    SaveState,
    ResumeSource,
}

impl Control {
    pub(crate) fn operation(self) -> &'static str {
        match self {
            Self::SaveState => "save_state",
            Self::ResumeSource => "resume_after_failed_migration",
        }
    }

    pub(crate) fn run(self, backend: &mut dyn Backend) -> Result<Zeroizing<Vec<u8>>, BackendError> {
        guarded(self.operation(), || match self {
            Self::SaveState => backend.save_state().map(Zeroizing::new),
            Self::ResumeSource => backend
                .resume_after_failed_migration()
                .map(|()| Zeroizing::new(Vec::new())),
        })
    }
}

/// Runs a call into a backend, whose code we do not control: a panic
/// becomes [`BackendError::Panicked`] instead of killing the thread that
/// holds the device's progress.
pub(crate) fn guarded<T>(
    operation: &'static str,
    call: impl FnOnce() -> Result<T, BackendError>,
) -> Result<T, BackendError> {
    catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|payload| {
        Err(BackendError::Panicked {
            operation,
            message: panic_message(&*payload),
        })
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

pub(crate) struct State {
    pub(crate) device: Device,
    pub(crate) jobs: VecDeque<Job>,
    /// The command of the queued Execute job (one at most: the device runs
    /// one command at a time). Swapped with the worker's buffer, never
    /// reallocated.
    pub(crate) job_command: Zeroizing<Vec<u8>>,
    /// Bumped when the backend is replaced; a worker of an older
    /// generation stops taking jobs.
    pub(crate) generation: u64,
    pub(crate) shutdown: bool,
    /// A worker is running a command job (the lock is free meanwhile).
    pub(crate) busy: bool,
    pub(crate) last_error: Option<BackendError>,
    /// The backend, in inline mode only.
    pub(crate) inline: Option<InlineBackend>,
    pub(crate) cancel: CancelState,
    /// The window's guest RAM, when the VMM maps it
    /// ([`crate::PlatformConfig::window_in_ram`]).
    pub(crate) ram: Option<Zeroizing<Vec<u8>>>,
    /// Accesses a VMM would trap.
    pub(crate) exits: crate::MmioExits,
}

impl State {
    /// The guest's command stream has work in flight: a save must wait.
    pub(crate) fn commands_in_flight(&self) -> bool {
        self.device.is_executing() || self.busy || self.jobs.iter().any(Job::is_command)
    }
}

pub(crate) struct InlineBackend {
    pub(crate) backend: Box<dyn Backend>,
    pub(crate) response: Zeroizing<Vec<u8>>,
}

impl InlineBackend {
    pub(crate) fn new(backend: Box<dyn Backend>, capacity: usize) -> Self {
        Self {
            backend,
            response: Zeroizing::new(Vec::with_capacity(capacity)),
        }
    }
}

pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Wakes the worker: a job was queued or it must stop.
    pub(crate) work: Condvar,
    /// Wakes waiters: a command job finished.
    pub(crate) done: Condvar,
    /// Wakes the canceller: a cancel was requested or it must stop.
    pub(crate) cancel: Condvar,
    /// Counts jobs ever queued, so a worker can watch for the next one
    /// without taking the lock.
    pub(crate) queued: AtomicU64,
    /// See [`crate::PlatformConfig::idle_spin`].
    pub(crate) idle_spin: Duration,
    /// Which command the worker's backend runs, for the canceller.
    pub(crate) backend_gate: Mutex<crate::cancel::BackendGate>,
}

impl Shared {
    /// Queues a job for the worker (the caller wakes it).
    pub(crate) fn queue(&self, state: &mut State, job: Job) {
        state.jobs.push_back(job);
        self.queued.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not wedge the guest: the state stays usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The canceller's view of the command the worker's backend runs.
    pub(crate) fn backend_gate(&self) -> MutexGuard<'_, crate::cancel::BackendGate> {
        self.backend_gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a command job to finish, until `deadline` (none: no
    /// bound). `None` once the deadline has passed.
    pub(crate) fn wait_done<'a>(
        &'a self,
        state: MutexGuard<'a, State>,
        deadline: Option<Instant>,
    ) -> Option<MutexGuard<'a, State>> {
        let Some(deadline) = deadline else {
            return Some(self.done.wait(state).unwrap_or_else(|p| p.into_inner()));
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        Some(
            self.done
                .wait_timeout(state, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0),
        )
    }
}

/// The worker thread: owns `backend` and runs the queued jobs until the
/// platform stops or replaces it.
pub(crate) fn worker(
    shared: Arc<Shared>,
    mut backend: Box<dyn Backend>,
    generation: u64,
    capacity: usize,
) {
    let mut command = Zeroizing::new(Vec::with_capacity(capacity));
    let mut response = Zeroizing::new(Vec::with_capacity(capacity));
    // With a CPU to spare, the worker may watch for the next job a little
    // before it sleeps: waking a sleeping thread costs several
    // microseconds. On a single CPU watching would only steal its time.
    let watch = !shared.idle_spin.is_zero()
        && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
    loop {
        let mut canceller = None;
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
                        canceller = state.cancel.handle.clone();
                    }
                    state.busy = job.is_command();
                    break job;
                }
                if !watched {
                    watched = true;
                    let seen = shared.queued.load(Ordering::Acquire);
                    drop(state);
                    let since = Instant::now();
                    while shared.queued.load(Ordering::Acquire) == seen
                        && since.elapsed() < shared.idle_spin
                    {
                        std::hint::spin_loop();
                    }
                    state = shared.lock();
                    continue;
                }
                state = shared.work.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        };
        if let Job::Control(control, reply) = job {
            // The caller may have given up waiting; its answer is dropped.
            let _ = reply.send(control.run(&mut *backend));
            continue;
        }
        if let Job::Execute { token, .. } = job {
            shared.backend_gate().start(token, canceller.as_ref());
        }
        let outcome = run_job(&mut *backend, &job, &command, &mut response);
        if matches!(job, Job::Execute { .. }) {
            shared.backend_gate().finish(canceller.as_ref());
        }
        command.zeroize();
        let mut state = shared.lock();
        if state.generation != generation {
            response.zeroize();
            return;
        }
        state.busy = false;
        finish_job(&mut state, job, outcome, &mut response);
        drop(state);
        shared.done.notify_all();
    }
}

/// What a job produced, before the device hears of it.
pub(crate) enum Outcome {
    Executed(Result<(), BackendError>),
    Established(Result<bool, BackendError>),
    Reset(Result<bool, BackendError>),
    Controlled,
}

/// Runs one command through the backend, size-checked and guarded.
pub(crate) fn execute(
    backend: &mut dyn Backend,
    locality: u8,
    command: &[u8],
    response: &mut Vec<u8>,
) -> Result<(), BackendError> {
    guarded("execute", || {
        backend.check_command(command)?;
        backend.execute(locality, command, response)
    })
}

fn run_job(
    backend: &mut dyn Backend,
    job: &Job,
    command: &[u8],
    response: &mut Vec<u8>,
) -> Outcome {
    match job {
        Job::Execute { locality, .. } => {
            Outcome::Executed(execute(backend, *locality, command, response))
        }
        Job::ResetEstablished { locality } => {
            Outcome::Established(guarded("reset_established", || {
                backend.reset_established(*locality)?;
                backend.established()
            }))
        }
        Job::ResetBackend => Outcome::Reset(guarded("reset", || {
            backend.reset()?;
            backend.established()
        })),
        Job::Control(..) => Outcome::Controlled,
    }
}

/// Tells the device how a job ended. `response` comes back empty and
/// zeroed (the device swaps it for its own buffer).
pub(crate) fn finish_job(state: &mut State, job: Job, outcome: Outcome, response: &mut Vec<u8>) {
    let failed = |state: &mut State, e: BackendError| {
        tracing::warn!(error = %e, "backend failure");
        state.last_error = Some(e);
    };
    match (job, outcome) {
        (Job::Execute { token, .. }, Outcome::Executed(result)) => {
            let answer = match result {
                Ok(()) => Some(&mut *response),
                Err(e) => {
                    failed(state, e);
                    None
                }
            };
            match state.ram.as_mut() {
                Some(ram) => state.device.complete_in_ram(token, answer, ram),
                None => state.device.complete_swap(token, answer),
            };
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
        (_, Outcome::Executed(_) | Outcome::Controlled) => {}
    }
    response.zeroize();
}

/// Runs queued jobs on the inline backend, if there is one.
pub(crate) fn run_inline_jobs(state: &mut State) {
    let Some(mut inline) = state.inline.take() else {
        return;
    };
    while let Some(job) = state.jobs.pop_front() {
        if let Job::Control(control, reply) = job {
            let _ = reply.send(control.run(&mut *inline.backend));
            continue;
        }
        let outcome = run_job(
            &mut *inline.backend,
            &job,
            &state.job_command,
            &mut inline.response,
        );
        state.job_command.zeroize();
        finish_job(state, job, outcome, &mut inline.response);
    }
    state.inline = Some(inline);
}
