//! One long-lived canceller per platform: the guest's cancel requests go
//! to the current backend's [`Cancel`] handle from a thread of their own,
//! merged, and only while the command they name is still executing. The
//! worker marks the start and end of each command on a [`BackendGate`], so
//! a request reaches the command it names or nobody: one that comes before
//! the backend starts the command goes out at its start, and one the
//! command ended without seeing is withdrawn ([`Cancel::withdraw`]).

use std::sync::Arc;
use std::thread::JoinHandle;

use vtpm_backend::Cancel;

use crate::device::{Action, Device, Token};
use crate::jobs::{guarded, Shared, State};

/// The canceller's part of the shared state.
#[derive(Default)]
pub(crate) struct CancelState {
    /// The current backend's handle; replaced with the backend, so every
    /// bus reaches the backend in use.
    pub(crate) handle: Option<Arc<dyn Cancel>>,
    /// The command to cancel next. A newer request replaces one not sent
    /// yet: the device asks once per command, and only the command still
    /// executing can be cancelled.
    pub(crate) pending: Option<Token>,
    /// The canceller thread, started at the first request.
    pub(crate) thread: Option<JoinHandle<()>>,
}

/// Which command the worker's backend is running, and what became of a
/// cancel for it. Its own lock, apart from the state's: the backend's
/// cancel may wait (swtpm answers CANCEL_TPM_CMD when the command ends),
/// and no vCPU may wait with it. The worker takes it to start and to end a
/// command, so a cancel reaches the command it names or nobody.
#[derive(Default)]
pub(crate) struct BackendGate {
    /// The command the backend is executing now.
    running: Option<Token>,
    /// A cancel for a command queued but not started yet: sent when it
    /// starts, dropped when another does.
    early: Option<Token>,
    /// A cancel was sent for `running`.
    sent: bool,
}

impl BackendGate {
    /// The backend starts the command `token`: an early cancel for it goes
    /// out now, one for another command is dropped.
    pub(crate) fn start(&mut self, token: Token, handle: Option<&Arc<dyn Cancel>>) {
        self.running = Some(token);
        self.sent = false;
        if self.early.take() == Some(token) {
            if let Some(handle) = handle {
                self.send(handle);
            }
        }
    }

    /// The backend finished its command: a cancel sent for it is withdrawn
    /// in case the command ended without seeing it.
    pub(crate) fn finish(&mut self, handle: Option<&Arc<dyn Cancel>>) {
        self.running = None;
        if std::mem::take(&mut self.sent) {
            if let Some(handle) = handle {
                if let Err(e) = guarded("withdraw", || {
                    handle.withdraw();
                    Ok(())
                }) {
                    tracing::warn!(error = %e, "withdrawing a cancel failed");
                }
            }
        }
    }

    /// A cancel for the command `token`, which the device still executes:
    /// sent if the backend runs it, kept for its start if not yet.
    fn request(&mut self, token: Token, handle: &Arc<dyn Cancel>) {
        if self.running == Some(token) {
            self.send(handle);
        } else {
            self.early = Some(token);
        }
    }

    fn send(&mut self, handle: &Arc<dyn Cancel>) {
        match guarded("cancel", || handle.cancel()) {
            Ok(()) => self.sent = true,
            Err(e) => tracing::warn!(error = %e, "cancel failed"),
        }
    }
}

/// Asks for the command `token` to be cancelled. Never waits for the
/// backend: swtpm may answer CANCEL_TPM_CMD only once the command ends,
/// and no vCPU should wait for that.
pub(crate) fn request(shared: &Arc<Shared>, state: &mut State, token: Token) {
    if state.cancel.handle.is_none() {
        return;
    }
    state.cancel.pending = Some(token);
    if state.cancel.thread.is_none() {
        let for_thread = shared.clone();
        match std::thread::Builder::new()
            .name("vtpm-cancel".into())
            .spawn(move || canceller(for_thread))
        {
            Ok(thread) => state.cancel.thread = Some(thread),
            Err(e) => {
                state.cancel.pending = None;
                tracing::warn!(error = %e, "cannot start the cancel thread; cancel dropped");
                return;
            }
        }
    }
    shared.cancel.notify_one();
}

/// Whether `token` names the command the device is executing.
fn executing(device: &Device, token: Token) -> bool {
    matches!(device.executing_command(), Some(Action::Execute { token: t, .. }) if t == token)
}

fn canceller(shared: Arc<Shared>) {
    let mut state = shared.lock();
    loop {
        if state.shutdown {
            return;
        }
        let Some(token) = state.cancel.pending.take() else {
            state = shared.cancel.wait(state).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        // A request whose command already completed would land on the
        // next one: drop it.
        if !executing(&state.device, token) {
            continue;
        }
        let Some(handle) = state.cancel.handle.clone() else {
            continue;
        };
        drop(state);
        // Inline, the backend runs under the state lock, so a command never
        // shows as executing here; the gate then keeps the request for a
        // start that never comes, which cancels nothing.
        shared.backend_gate().request(token, &handle);
        state = shared.lock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vtpm_backend::testing::CancelCounter;

    fn handle() -> (Arc<CancelCounter>, Arc<dyn Cancel>) {
        let counter = Arc::new(CancelCounter::default());
        let handle: Arc<dyn Cancel> = counter.clone();
        (counter, handle)
    }

    #[test]
    fn a_cancel_for_the_running_command_is_sent_and_withdrawn_when_it_ends() {
        let (counter, handle) = handle();
        let mut gate = BackendGate::default();
        gate.start(Token(1), Some(&handle));
        gate.request(Token(1), &handle);
        assert_eq!(counter.count(), 1);
        gate.finish(Some(&handle));
        assert_eq!(counter.withdrawals(), 1);
        // The next command starts clean.
        gate.start(Token(2), Some(&handle));
        gate.finish(Some(&handle));
        assert_eq!((counter.count(), counter.withdrawals()), (1, 1));
    }

    #[test]
    fn a_cancel_before_the_backend_starts_goes_out_at_the_start() {
        let (counter, handle) = handle();
        let mut gate = BackendGate::default();
        gate.request(Token(7), &handle);
        assert_eq!(counter.count(), 0, "nothing runs yet");
        gate.start(Token(7), Some(&handle));
        assert_eq!(counter.count(), 1);
        gate.finish(Some(&handle));
        assert_eq!(counter.withdrawals(), 1);
    }

    #[test]
    fn a_cancel_for_a_command_that_ended_reaches_nobody() {
        let (counter, handle) = handle();
        let mut gate = BackendGate::default();
        gate.start(Token(1), Some(&handle));
        gate.finish(Some(&handle));
        // The device still showed command 1 executing when the request
        // was taken; the backend is done with it.
        gate.request(Token(1), &handle);
        gate.start(Token(2), Some(&handle));
        gate.finish(Some(&handle));
        assert_eq!((counter.count(), counter.withdrawals()), (0, 0));
    }
}
