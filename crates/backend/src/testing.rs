//! Test doubles: in-process backends for tests, benchmarks and fuzzing.
//!
//! They stand in where a real TPM cannot do what a test needs (an instant
//! echo for transport benchmarks, arbitrary response sizes, injected
//! faults, panics). Product code never uses them; the `testing` feature
//! gates them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::{Backend, BackendError, Cancel};

/// The behaviour of a [`FnBackend`]: `(locality, command, response)`.
pub type Handler = Box<dyn FnMut(u8, &[u8], &mut Vec<u8>) -> Result<(), BackendError> + Send>;

/// A backend whose answers come from a closure.
pub struct FnBackend {
    name: &'static str,
    buffer_size: usize,
    handler: Handler,
    established: bool,
    cancels: Arc<CancelCounter>,
    save_gate: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// Counts cancel requests and withdrawals, so tests can see that one
/// arrived.
#[derive(Debug, Default)]
pub struct CancelCounter {
    cancels: AtomicUsize,
    withdrawals: AtomicUsize,
}

impl CancelCounter {
    /// Cancels requested so far.
    pub fn count(&self) -> usize {
        self.cancels.load(Ordering::SeqCst)
    }

    /// [`Cancel::withdraw`] calls so far.
    pub fn withdrawals(&self) -> usize {
        self.withdrawals.load(Ordering::SeqCst)
    }
}

impl Cancel for CancelCounter {
    fn cancel(&self) -> Result<(), BackendError> {
        self.cancels.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn withdraw(&self) {
        self.withdrawals.fetch_add(1, Ordering::SeqCst);
    }
}

impl FnBackend {
    /// A backend with `buffer_size` that answers through `handler`.
    pub fn new(
        buffer_size: usize,
        handler: impl FnMut(u8, &[u8], &mut Vec<u8>) -> Result<(), BackendError> + Send + 'static,
    ) -> Self {
        Self {
            name: "test-double",
            buffer_size,
            handler: Box::new(handler),
            established: false,
            cancels: Arc::default(),
            save_gate: None,
        }
    }

    /// The same double under another [`Backend::name`].
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// The same double counting its cancels on `cancels`, which a handler
    /// made before the backend can already watch.
    pub fn with_cancels(mut self, cancels: Arc<CancelCounter>) -> Self {
        self.cancels = cancels;
        self
    }

    /// The same double whose [`Backend::save_state`] waits until `open` is
    /// true: a backend slow, or hung, in producing its state.
    pub fn gate_save_state(mut self, open: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.save_gate = Some(open);
        self
    }

    /// An instant echo: the response is the command, byte for byte.
    pub fn echo(buffer_size: usize) -> Self {
        Self::new(buffer_size, |_, cmd, rsp| {
            rsp.extend_from_slice(cmd);
            Ok(())
        })
    }

    /// An echo that holds each command until `open` is true: a backend
    /// that is slow, or hung, for as long as a test wants.
    pub fn gated_echo(buffer_size: usize, open: Arc<std::sync::atomic::AtomicBool>) -> Self {
        Self::new(buffer_size, move |_, cmd, rsp| {
            while !open.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            rsp.extend_from_slice(cmd);
            Ok(())
        })
    }

    /// The counter behind this backend's canceller.
    pub fn cancel_counter(&self) -> Arc<CancelCounter> {
        self.cancels.clone()
    }
}

impl Backend for FnBackend {
    fn name(&self) -> &'static str {
        self.name
    }
    fn buffer_size(&self) -> usize {
        self.buffer_size
    }
    fn execute(
        &mut self,
        locality: u8,
        command: &[u8],
        response: &mut Vec<u8>,
    ) -> Result<(), BackendError> {
        response.clear();
        (self.handler)(locality, command, response)
    }
    fn canceller(&self) -> Option<Arc<dyn Cancel>> {
        Some(self.cancels.clone())
    }
    fn established(&mut self) -> Result<bool, BackendError> {
        Ok(self.established)
    }
    fn reset_established(&mut self, _locality: u8) -> Result<(), BackendError> {
        self.established = false;
        Ok(())
    }
    fn reset(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
    fn save_state(&mut self) -> Result<Vec<u8>, BackendError> {
        if let Some(open) = &self.save_gate {
            while !open.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        Ok(vec![u8::from(self.established)])
    }
    fn restore_state(&mut self, state: &[u8]) -> Result<(), BackendError> {
        match state {
            [b] => {
                self.established = *b != 0;
                Ok(())
            }
            _ => Err(BackendError::State("test-double state is one byte".into())),
        }
    }
}

/// A [`Backend`] method a [`PanickingDouble`] can be told to panic in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// [`Backend::execute`].
    Execute,
    /// [`Backend::established`].
    Established,
    /// [`Backend::reset_established`].
    ResetEstablished,
    /// [`Backend::reset`].
    Reset,
    /// [`Backend::save_state`].
    SaveState,
    /// [`Backend::restore_state`].
    RestoreState,
    /// [`Backend::resume_after_failed_migration`].
    Resume,
}

/// The operations a [`PanickingDouble`] will panic in next, shared with the
/// test that arms them.
#[derive(Debug, Default)]
pub struct PanicPlan(Mutex<Vec<Operation>>);

impl PanicPlan {
    /// The next call of `operation` panics (once).
    pub fn arm(&self, operation: Operation) {
        self.lock().push(operation);
    }

    /// Whether an armed panic is still waiting for its call.
    pub fn is_armed(&self, operation: Operation) -> bool {
        self.lock().contains(&operation)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Operation>> {
        // The double panics while this lock is free; a poisoned plan is
        // still a plan.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fire(&self, operation: Operation) {
        let mut armed = self.lock();
        if let Some(i) = armed.iter().position(|&o| o == operation) {
            armed.remove(i);
            drop(armed);
            panic!("test double panics in {operation:?} as armed");
        }
    }
}

/// An echo double that panics, once, in each operation its [`PanicPlan`]
/// arms: a third-party backend with a bug, for testing that a panic cannot
/// wedge the platform.
pub struct PanickingDouble {
    inner: FnBackend,
    plan: Arc<PanicPlan>,
}

impl PanickingDouble {
    /// An instant echo with `buffer_size` that panics as `plan` says.
    pub fn echo(buffer_size: usize, plan: Arc<PanicPlan>) -> Self {
        Self {
            inner: FnBackend::echo(buffer_size),
            plan,
        }
    }
}

impl Backend for PanickingDouble {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn buffer_size(&self) -> usize {
        self.inner.buffer_size()
    }
    fn execute(
        &mut self,
        locality: u8,
        command: &[u8],
        response: &mut Vec<u8>,
    ) -> Result<(), BackendError> {
        self.plan.fire(Operation::Execute);
        self.inner.execute(locality, command, response)
    }
    fn canceller(&self) -> Option<Arc<dyn Cancel>> {
        self.inner.canceller()
    }
    fn established(&mut self) -> Result<bool, BackendError> {
        self.plan.fire(Operation::Established);
        self.inner.established()
    }
    fn reset_established(&mut self, locality: u8) -> Result<(), BackendError> {
        self.plan.fire(Operation::ResetEstablished);
        self.inner.reset_established(locality)
    }
    fn reset(&mut self) -> Result<(), BackendError> {
        self.plan.fire(Operation::Reset);
        self.inner.reset()
    }
    fn save_state(&mut self) -> Result<Vec<u8>, BackendError> {
        self.plan.fire(Operation::SaveState);
        self.inner.save_state()
    }
    fn restore_state(&mut self, state: &[u8]) -> Result<(), BackendError> {
        self.plan.fire(Operation::RestoreState);
        self.inner.restore_state(state)
    }
    fn resume_after_failed_migration(&mut self) -> Result<(), BackendError> {
        self.plan.fire(Operation::Resume);
        self.inner.resume_after_failed_migration()
    }
}

/// A response of exactly `size` bytes (at least 10) with a valid header and
/// a byte pattern derived from `seed`, for transport tests.
pub fn patterned_response(size: usize, seed: u8) -> Vec<u8> {
    let size = size.max(vtpm_wire::HEADER_SIZE);
    let mut out: Vec<u8> = (0..size)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    out[0..2].copy_from_slice(&vtpm_wire::consts::TPM_ST_NO_SESSIONS.to_be_bytes());
    out[2..6].copy_from_slice(&(size as u32).to_be_bytes());
    out[6..10].copy_from_slice(&0u32.to_be_bytes());
    out
}
