//! One long-lived canceller per platform: the guest's cancel requests go
//! to the current backend's [`Cancel`] handle from a thread of their own,
//! merged, and only while the command they name is still executing.

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
        if let Err(e) = guarded("cancel", || handle.cancel()) {
            tracing::warn!(error = %e, "cancel failed");
        }
        state = shared.lock();
    }
}
