//! The MMIO bus a guest driver runs on.

use std::sync::Arc;

use vtpm_guest::Mmio;

use vtpm_crb::spec::{DATA_WINDOW_OFFSET, LOCALITY_PAGE_SIZE};

use crate::cancel;
use crate::device::Action;
use crate::jobs::{execute, finish_job, run_inline_jobs, Job, Outcome, Shared, State};
use crate::MmioExits;

/// MMIO access to the platform's device (CRB or TIS, despite the name,
/// kept for its users), as a guest sees it. Every clone,
/// and every bus of one platform, reaches the same device and the backend
/// in use now (also after [`Platform::replace_backend`](crate::Platform::replace_backend)).
#[derive(Clone)]
pub struct CrbBus {
    pub(crate) shared: Arc<Shared>,
}

impl CrbBus {
    /// The accesses a VMM would have trapped so far, on this platform.
    pub fn mmio_exits(&self) -> MmioExits {
        self.shared.lock().exits
    }
}

/// Where `offset` falls in the data window of its locality page, if it does.
fn window_offset(state: &State, offset: u64) -> Option<usize> {
    let (localities, window_size) = state.device.crb_window()?;
    if offset / LOCALITY_PAGE_SIZE >= u64::from(localities) {
        return None;
    }
    let page_off = offset % LOCALITY_PAGE_SIZE;
    let at = page_off.checked_sub(DATA_WINDOW_OFFSET)? as usize;
    (at < window_size).then_some(at)
}

/// A window access that is guest RAM: no exit, no device.
fn ram_access(state: &mut State, offset: u64, len: usize) -> Option<&mut [u8]> {
    let at = window_offset(state, offset)?;
    let ram = state.ram.as_mut()?;
    ram.get_mut(at..at.checked_add(len)?)
}

/// Counts an access the VMM traps.
fn count_exit(state: &mut State, offset: u64, len: usize) {
    match window_offset(state, offset) {
        Some(_) => state.exits.count_window(offset, len),
        None => state.exits.count_register(),
    }
}

impl Mmio for CrbBus {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let mut guard = self.shared.lock();
        let state = &mut *guard;
        if let Some(ram) = ram_access(state, offset, data.len()) {
            data.copy_from_slice(ram);
            return;
        }
        count_exit(state, offset, data.len());
        state.device.read(offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let mut guard = self.shared.lock();
        let state = &mut *guard;
        if let Some(ram) = ram_access(state, offset, data.len()) {
            ram.copy_from_slice(data);
            return;
        }
        count_exit(state, offset, data.len());
        let action = match state.ram.as_mut() {
            Some(ram) => state.device.write_in_ram(offset, data, ram),
            None => state.device.write(offset, data),
        };
        let job = match action {
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
