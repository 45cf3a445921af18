//! Cancelling a command from another thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vtpm_wire::ResponseCode;

use crate::rc::TpmResult;

/// Asks a [`Sim`](crate::Sim) to cancel the command it is executing, from
/// any thread (the TPM's cancel line, which a device's CANCEL register
/// drives).
///
/// The simulator checks the request before a command's handler starts and
/// between the steps of its long operations (key generation, ML-DSA key
/// expansion and signing); the command then answers TPM_RC_CANCELED and
/// changes nothing. A request stays pending until the end of the command
/// that sees it, or of the next command when none is running, so a cancel
/// racing with the start of a command is never lost; whoever drives the
/// line (a platform) decides which command a cancel belongs to.
///
/// ```
/// use vtpm_sim::{Sim, SimConfig};
/// use vtpm_client::{get_random, startup, Response};
/// use vtpm_wire::ResponseCode;
///
/// let mut sim = Sim::new(SimConfig::default())?;
/// let mut response = Vec::new();
/// sim.execute(0, &startup(0), &mut response);
/// sim.canceller().cancel();
/// sim.execute(0, &get_random(8), &mut response);
/// assert_eq!(Response::parse(&response)?.rc(), ResponseCode::CANCELED);
/// // The request was used up by that command.
/// sim.execute(0, &get_random(8), &mut response);
/// assert!(Response::parse(&response)?.rc().is_success());
/// // A request taken back before a command starts cancels nothing.
/// sim.canceller().cancel();
/// sim.canceller().withdraw();
/// sim.execute(0, &get_random(8), &mut response);
/// assert!(Response::parse(&response)?.rc().is_success());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct CancelHandle {
    requested: Arc<AtomicBool>,
}

impl CancelHandle {
    /// Requests cancellation of the running (or next) command.
    pub fn cancel(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    /// Takes back a pending request, so a command that starts later does
    /// not see it: for a caller that raised the line for a command which
    /// then finished without seeing it.
    pub fn withdraw(&self) {
        self.clear();
    }

    /// True while a request is pending.
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// TPM_RC_CANCELED when a request is pending: the command stops here.
    pub(crate) fn check(&self) -> TpmResult<()> {
        if self.is_requested() {
            Err(ResponseCode::CANCELED)
        } else {
            Ok(())
        }
    }

    /// Ends the pending request, at the end of a command.
    pub(crate) fn clear(&self) {
        self.requested.store(false, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelHandle")
            .field("requested", &self.is_requested())
            .finish()
    }
}
