//! A backend that panics, hangs or is replaced, and callers that race: the
//! platform stays usable and every caller gets its own, honest answer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use vtpm_backend::testing::{FnBackend, Operation, PanicPlan, PanickingDouble};
use vtpm_backend::BackendError;
use vtpm_guest::{DriverError, Mmio, Timeouts};
use vtpm_platform::{Execution, Platform, PlatformConfig, PlatformError};

const CTRL_STS: u64 = 0x44;
const CTRL_CANCEL: u64 = 0x48;
const CTRL_START: u64 = 0x4C;

fn config(execution: Execution) -> PlatformConfig {
    PlatformConfig {
        execution,
        ..PlatformConfig::default()
    }
}

/// Polls `done` for up to five seconds; the answer is deterministic, the
/// bound only keeps a broken platform from hanging the test.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    done()
}

#[test]
fn a_panicking_backend_sets_tpmsts_and_the_next_command_runs() {
    for execution in [Execution::Worker, Execution::Inline] {
        let plan = Arc::new(PanicPlan::default());
        let p = Platform::new(
            Box::new(PanickingDouble::echo(4096, plan.clone())),
            config(execution),
        )
        .unwrap();
        let mut driver = p.driver();
        driver.set_timeouts(Timeouts {
            command: Duration::from_secs(5),
            ..Timeouts::default()
        });
        let cmd = vtpm_client::get_random(8);
        plan.arm(Operation::Execute);
        assert_eq!(
            driver.transmit(0, &cmd),
            Err(DriverError::Fatal),
            "{execution:?}"
        );
        assert!(!plan.is_armed(Operation::Execute), "the backend did panic");
        assert_eq!(p.bus().read_u32(CTRL_STS) & 1, 1, "tpmSts is set");
        assert!(matches!(
            p.take_backend_error(),
            Some(BackendError::Panicked {
                operation: "execute",
                ..
            })
        ));
        assert!(
            p.save(Duration::from_secs(5)).is_ok(),
            "{execution:?}: save is not busy forever"
        );
        p.reset();
        let mut driver = p.driver();
        assert_eq!(
            driver.transmit(0, &cmd).unwrap(),
            cmd,
            "{execution:?}: the same worker serves the next command"
        );
    }
}

#[test]
fn a_backend_that_panics_in_save_or_reset_leaves_the_platform_working() {
    for execution in [Execution::Worker, Execution::Inline] {
        let plan = Arc::new(PanicPlan::default());
        let p = Platform::new(
            Box::new(PanickingDouble::echo(4096, plan.clone())),
            config(execution),
        )
        .unwrap();
        plan.arm(Operation::SaveState);
        assert!(matches!(
            p.save(Duration::from_secs(5)),
            Err(PlatformError::Backend(BackendError::Panicked {
                operation: "save_state",
                ..
            }))
        ));
        plan.arm(Operation::Reset);
        p.reset();
        assert!(eventually(|| !plan.is_armed(Operation::Reset)));
        assert!(eventually(|| matches!(
            p.take_backend_error(),
            Some(BackendError::Panicked {
                operation: "reset",
                ..
            })
        )));
        let cmd = vtpm_client::get_random(3);
        assert_eq!(p.driver().transmit(0, &cmd).unwrap(), cmd, "{execution:?}");
        assert!(p.save(Duration::from_secs(5)).is_ok(), "{execution:?}");
    }
}

#[test]
fn replace_backend_after_a_panic_serves_the_new_backend() {
    let plan = Arc::new(PanicPlan::default());
    let mut p = Platform::new(
        Box::new(PanickingDouble::echo(4096, plan.clone())),
        PlatformConfig::default(),
    )
    .unwrap();
    plan.arm(Operation::Execute);
    let cmd = vtpm_client::get_random(8);
    assert_eq!(p.driver().transmit(0, &cmd), Err(DriverError::Fatal));
    p.replace_backend(Box::new(FnBackend::echo(4096))).unwrap();
    assert_eq!(p.driver().transmit(0, &cmd).unwrap(), cmd);
}

#[test]
fn two_concurrent_saves_on_an_idle_platform_both_succeed() {
    let p = Platform::new(Box::new(FnBackend::echo(4096)), PlatformConfig::default()).unwrap();
    // Which save's answer arrives while the other waits varies from round
    // to round; every round must give both callers their own answer.
    for _ in 0..100 {
        two_concurrent_saves(&p);
    }
}

fn two_concurrent_saves(p: &Platform) {
    let start = Barrier::new(2);
    let saves: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    p.save(Duration::from_secs(5))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for saved in saves {
        let saved = saved.expect("each save gets its own answer");
        Platform::restore(
            &saved,
            Box::new(FnBackend::echo(4096)),
            PlatformConfig::default(),
        )
        .expect("and it restores");
    }
}

#[test]
fn a_backend_slow_to_save_is_a_backend_timeout_not_busy() {
    let open = Arc::new(AtomicBool::new(false));
    let p = Platform::new(
        Box::new(FnBackend::echo(4096).gate_save_state(open.clone())),
        PlatformConfig {
            control_timeout: Duration::from_millis(50),
            ..PlatformConfig::default()
        },
    )
    .unwrap();
    assert!(matches!(
        p.save(Duration::from_secs(5)),
        Err(PlatformError::BackendTimeout {
            operation: "save_state",
            after,
        }) if after == Duration::from_millis(50)
    ));
    open.store(true, Ordering::SeqCst);
    assert!(
        p.save(Duration::from_secs(5)).is_ok(),
        "the late answer went to no one"
    );
}

#[test]
fn a_save_bound_too_large_for_the_clock_means_no_bound() {
    for execution in [Execution::Worker, Execution::Inline] {
        let p = Platform::new(
            Box::new(FnBackend::echo(4096)),
            PlatformConfig {
                control_timeout: Duration::MAX,
                ..config(execution)
            },
        )
        .unwrap();
        assert!(p.save(Duration::MAX).is_ok(), "{execution:?}");
    }
}

#[test]
fn a_bus_made_before_replace_backend_cancels_the_new_backend() {
    let old = FnBackend::echo(4096);
    let old_cancels = old.cancel_counter();
    let mut p = Platform::new(Box::new(old), PlatformConfig::default()).unwrap();
    let mut bus = p.bus();

    let open = Arc::new(AtomicBool::new(false));
    let new = FnBackend::gated_echo(4096, open.clone());
    let new_cancels = new.cancel_counter();
    p.replace_backend(Box::new(new)).unwrap();

    bus.write_u32(0x08, 1); // LOC_CTRL.requestAccess
    bus.write(0x80, &vtpm_client::get_random(1));
    bus.write_u32(CTRL_START, 1);
    assert!(p.with_device(|d| d.is_executing()));
    bus.write_u32(CTRL_CANCEL, 1);
    assert!(
        eventually(|| new_cancels.count() == 1),
        "the cancel reached the backend in use"
    );
    assert_eq!(old_cancels.count(), 0, "not the replaced one");
    open.store(true, Ordering::SeqCst);
    assert!(eventually(|| bus.read_u32(CTRL_START) == 0));
}

#[test]
fn a_backend_name_longer_than_255_bytes_survives_a_save() {
    const LONG: &str = concat!(
        "a-backend-whose-name-is-far-longer-than-one-length-byte-can-count-",
        "a-backend-whose-name-is-far-longer-than-one-length-byte-can-count-",
        "a-backend-whose-name-is-far-longer-than-one-length-byte-can-count-",
        "a-backend-whose-name-is-far-longer-than-one-length-byte-can-count-",
    );
    assert!(LONG.len() > 255);
    let p = Platform::new(
        Box::new(FnBackend::echo(4096).named(LONG)),
        PlatformConfig::default(),
    )
    .unwrap();
    let saved = p.save(Duration::from_secs(5)).unwrap();
    let q = Platform::restore(
        &saved,
        Box::new(FnBackend::echo(4096).named(LONG)),
        PlatformConfig::default(),
    )
    .unwrap();
    assert_eq!(q.backend_name(), LONG);
    assert!(matches!(
        Platform::restore(&saved, Box::new(FnBackend::echo(4096)), PlatformConfig::default()),
        Err(PlatformError::BackendMismatch { snapshot, .. }) if snapshot == LONG
    ));
}

#[test]
fn an_unbounded_save_waits_for_the_running_command() {
    let open = Arc::new(AtomicBool::new(false));
    let p = Platform::new(
        Box::new(FnBackend::gated_echo(4096, open.clone())),
        PlatformConfig::default(),
    )
    .unwrap();
    let mut bus = p.bus();
    let cmd = vtpm_client::get_random(2);
    bus.write_u32(0x08, 1); // LOC_CTRL.requestAccess
    bus.write(0x80, &cmd);
    bus.write_u32(CTRL_START, 1);
    let saved = std::thread::scope(|s| {
        let save = s.spawn(|| p.save(Duration::MAX));
        open.store(true, Ordering::SeqCst);
        save.join().unwrap()
    })
    .unwrap();
    let q = Platform::restore(
        &saved,
        Box::new(FnBackend::echo(4096)),
        PlatformConfig::default(),
    )
    .unwrap();
    let mut response = [0u8; 12];
    q.bus().read(0x80, &mut response);
    assert_eq!(response, *cmd, "the save holds the command's response");
}
