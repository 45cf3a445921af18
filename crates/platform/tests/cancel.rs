//! A guest's CTRL_CANCEL reaches the embedded simulator and the command it
//! cancels answers TPM_RC_CANCELED — deterministically.
//!
//! The backend is the real simulator inside a test double that holds the
//! command to cancel until the cancel has reached the simulator's cancel
//! line, so the simulator certainly sees the request when it checks for it.
//! Only the public guest and platform API is used: the driver transmits,
//! and the cancel is a register write through a bus.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use vtpm_backend::sim::{SimBackend, SimConfig};
use vtpm_backend::{Backend, BackendError, Cancel};
use vtpm_client as client;
use vtpm_guest::Mmio;
use vtpm_platform::{Platform, PlatformConfig};
use vtpm_wire::consts::{TPM_RH_OWNER, TPM_SU_CLEAR};
use vtpm_wire::structures::{MlDsaParameterSet, PublicArea};
use vtpm_wire::{cc, Header, ResponseCode};

/// CTRL_CANCEL in locality 0's page.
const CTRL_CANCEL: u64 = 0x48;
/// How long the double waits for a cancel before failing the test (a
/// guard against a hang, not part of what passes).
const CANCEL_GUARD: Duration = Duration::from_secs(30);

/// Opened once a cancel has been delivered to the simulator.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    fn wait(&self) -> bool {
        let open = self.open.lock().unwrap();
        let (open, _) = self
            .opened
            .wait_timeout_while(open, CANCEL_GUARD, |open| !*open)
            .unwrap();
        *open
    }
}

/// The simulator, holding every `held` command until a cancel has reached
/// it and reporting when such a command has arrived.
struct CancelGatedSim {
    sim: SimBackend,
    held: u32,
    arrived: Sender<()>,
    gate: Arc<Gate>,
}

/// Forwards a cancel to the simulator, then opens the gate.
struct GateOpeningCanceller {
    sim: Arc<dyn Cancel>,
    gate: Arc<Gate>,
}

impl Cancel for GateOpeningCanceller {
    fn cancel(&self) -> Result<(), BackendError> {
        self.sim.cancel()?;
        self.gate.open();
        Ok(())
    }
}

impl Backend for CancelGatedSim {
    fn name(&self) -> &'static str {
        self.sim.name()
    }
    fn buffer_size(&self) -> usize {
        self.sim.buffer_size()
    }
    fn execute(
        &mut self,
        locality: u8,
        command: &[u8],
        response: &mut Vec<u8>,
    ) -> Result<(), BackendError> {
        if Header::parse(command).is_ok_and(|h| h.code == self.held) {
            self.arrived.send(()).expect("the test is waiting");
            assert!(
                self.gate.wait(),
                "no cancel arrived within {CANCEL_GUARD:?}"
            );
        }
        self.sim.execute(locality, command, response)
    }
    fn canceller(&self) -> Option<Arc<dyn Cancel>> {
        Some(Arc::new(GateOpeningCanceller {
            sim: self.sim.canceller()?,
            gate: self.gate.clone(),
        }))
    }
    fn established(&mut self) -> Result<bool, BackendError> {
        self.sim.established()
    }
    fn reset_established(&mut self, locality: u8) -> Result<(), BackendError> {
        self.sim.reset_established(locality)
    }
    fn reset(&mut self) -> Result<(), BackendError> {
        self.sim.reset()
    }
    fn save_state(&mut self) -> Result<Vec<u8>, BackendError> {
        self.sim.save_state()
    }
    fn restore_state(&mut self, state: &[u8]) -> Result<(), BackendError> {
        self.sim.restore_state(state)
    }
}

/// A platform on the gated simulator, which holds CreatePrimary.
fn platform() -> (Platform, Receiver<()>) {
    let (arrived, arrivals) = mpsc::channel();
    let sim = SimBackend::new(SimConfig {
        rng_seed: Some([9; 32]),
        ..SimConfig::default()
    })
    .expect("simulator");
    let backend = CancelGatedSim {
        sim,
        held: cc::CREATE_PRIMARY,
        arrived,
        gate: Arc::default(),
    };
    let platform =
        Platform::new(Box::new(backend), PlatformConfig::default()).expect("platform on the sim");
    (platform, arrivals)
}

fn rc(response: &[u8]) -> ResponseCode {
    Header::parse_exact(response)
        .expect("a well-formed response")
        .response_code()
}

#[test]
fn a_guest_cancel_of_a_long_sim_command_answers_tpm_rc_canceled() {
    let (p, arrivals) = platform();
    let mut driver = p.driver();
    let started = driver.transmit(0, &client::startup(TPM_SU_CLEAR)).unwrap();
    assert_eq!(rc(&started), ResponseCode::SUCCESS);

    // ML-DSA-87 key generation: the longest command the simulator runs.
    let template = PublicArea::mldsa(MlDsaParameterSet::MlDsa87);
    let create = client::create_primary(TPM_RH_OWNER, b"", &template, b"");
    let guest = {
        let create = create.clone();
        thread::spawn(move || {
            let result = driver.transmit(0, &create);
            (driver, result)
        })
    };
    // The command is with the backend (START is set); the guest cancels it
    // through another vCPU's view of the device.
    arrivals.recv().expect("CreatePrimary reaches the backend");
    let mut other = p.bus();
    other.write_u32(CTRL_CANCEL, 1);

    let (mut driver, result) = guest.join().expect("guest thread");
    let response = result.expect("the cancelled command completes");
    assert_eq!(rc(&response), ResponseCode::CANCELED);
    other.write_u32(CTRL_CANCEL, 0);
    assert!(p.take_backend_error().is_none());

    // The cancelled command loaded nothing and the request is used up: the
    // same command again (the gate stays open now) succeeds into the first
    // slot.
    let created = driver.transmit(0, &create).unwrap();
    let key = client::parse_create_primary(&created).expect("CreatePrimary succeeds");
    assert_eq!(key.handle, 0x8000_0000);
}
