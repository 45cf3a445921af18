//! The MMIO bus a guest driver runs on.

use std::sync::Arc;

use vtpm_guest::Mmio;

use crate::cancel;
use crate::device::Action;
use crate::jobs::{execute, finish_job, run_inline_jobs, Job, Outcome, Shared};

/// MMIO access to the platform's device (CRB or TIS, despite the name,
/// kept for its users), as a guest sees it. Every clone,
/// and every bus of one platform, reaches the same device and the backend
/// in use now (also after [`Platform::replace_backend`](crate::Platform::replace_backend)).
#[derive(Clone)]
pub struct CrbBus {
    pub(crate) shared: Arc<Shared>,
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
            Some(Action::Cancel { token }) => {
                cancel::request(&self.shared, state, token);
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
                    let result = execute(
                        &mut *inline.backend,
                        locality,
                        command,
                        &mut inline.response,
                    );
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
