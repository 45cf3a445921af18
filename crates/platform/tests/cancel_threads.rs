//! A guest looping Start/Cancel costs the host no thread per cancel. Alone
//! in its test binary, because it counts the process's threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use vtpm_backend::testing::{CancelCounter, FnBackend};
use vtpm_guest::Mmio;
use vtpm_platform::{Platform, PlatformConfig};

const CTRL_CANCEL: u64 = 0x48;
const CTRL_START: u64 = 0x4C;
const ROUNDS: usize = 10_000;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn ten_thousand_start_cancel_rounds_keep_the_thread_count_constant() {
    let cancels = Arc::new(CancelCounter::default());
    let most_threads = Arc::new(AtomicUsize::new(0));
    let executed = AtomicUsize::new(0);
    let (seen, most) = (cancels.clone(), most_threads.clone());
    // Each command waits for its own cancel, so every round's cancel
    // reaches the backend while the command runs, and counts the threads
    // while whoever delivered that cancel is still about.
    let backend = FnBackend::new(4096, move |_, _, rsp| {
        let round = executed.fetch_add(1, Ordering::SeqCst) + 1;
        while seen.count() < round {
            std::thread::yield_now();
        }
        most.fetch_max(threads(), Ordering::SeqCst);
        rsp.extend_from_slice(&vtpm_wire::error_response(
            vtpm_wire::ResponseCode::CANCELED,
        ));
        Ok(())
    })
    .with_cancels(cancels.clone());
    let p = Platform::new(Box::new(backend), PlatformConfig::default()).unwrap();
    let mut bus = p.bus();
    bus.write_u32(0x08, 1); // LOC_CTRL.requestAccess
    let command = vtpm_client::get_random(1);
    let round = |bus: &mut vtpm_platform::CrbBus| {
        bus.write(0x80, &command);
        bus.write_u32(CTRL_START, 1);
        bus.write_u32(CTRL_CANCEL, 1);
        while bus.read_u32(CTRL_START) != 0 {
            std::thread::yield_now();
        }
        bus.write_u32(CTRL_CANCEL, 0);
        let mut code = [0u8; 4];
        bus.read(0x80 + 6, &mut code);
        assert_eq!(code, [0, 0, 0x09, 0x09], "TPM_RC_CANCELED");
    };
    // The first round starts whatever the platform keeps for cancels.
    round(&mut bus);
    let before = threads();
    most_threads.store(0, Ordering::SeqCst);
    for _ in 1..ROUNDS {
        round(&mut bus);
    }
    assert_eq!(cancels.count(), ROUNDS, "every cancel was delivered");
    assert_eq!(threads(), before);
    assert_eq!(
        most_threads.load(Ordering::SeqCst),
        before,
        "no thread was started for a cancel"
    );
}
