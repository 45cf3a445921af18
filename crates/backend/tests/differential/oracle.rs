//! The two TPMs under comparison: vtpm-sim behind `SimBackend`, and libtpms
//! inside a swtpm process driven over its control channel and a raw data
//! channel.
//!
//! The swtpm side deliberately bypasses `SwtpmBackend::execute`, which
//! answers a command whose header size disagrees with its length itself
//! (to keep the stream in step). Here every command is written in one
//! piece, so swtpm's single read hands libtpms exactly those bytes and a
//! lying size field reaches libtpms' own checks.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vtpm_backend::sim::{SimBackend, SimConfig};
use vtpm_backend::swtpm::{ControlChannel, DataChannel, DataConnection, SwtpmConfig, SwtpmProcess};
use vtpm_backend::Backend;

/// The buffer both TPMs run with: swtpm 0.7.1's largest, the sim's smallest.
pub const BUFFER_SIZE: usize = 4096;

/// libtpms 0.9.2 inside a private swtpm 0.7.1.
pub struct Libtpms {
    ctrl: ControlChannel,
    data: DataConnection,
    locality: Option<u8>,
    state_dir: PathBuf,
    // Last: the process stops after the channels above have closed.
    process: SwtpmProcess,
}

impl Libtpms {
    /// Starts swtpm with its data server on a Unix socket, a 4096-byte
    /// buffer, and a freshly manufactured TPM waiting for TPM2_Startup.
    pub fn spawn() -> Self {
        let config = SwtpmConfig {
            data: DataChannel::Unix(None),
            buffer_size: Some(BUFFER_SIZE as u32),
            ..SwtpmConfig::default()
        };
        let process = SwtpmProcess::spawn(&config).expect("swtpm starts (is swtpm installed?)");
        let mut ctrl = process.control().expect("swtpm control channel");
        let path = match process.data_channel() {
            DataChannel::Unix(Some(path)) => path.clone(),
            other => panic!("unexpected data channel {other:?}"),
        };
        let data = connect(&path);
        ctrl.stop().expect("STOP");
        let sizes = ctrl
            .set_buffer_size(BUFFER_SIZE as u32)
            .expect("SET_BUFFERSIZE");
        assert_eq!(
            sizes.in_use as usize, BUFFER_SIZE,
            "swtpm grants 4096 bytes"
        );
        ctrl.init(0).expect("INIT");
        let state_dir = process.state_dir().to_path_buf();
        Self {
            ctrl,
            data,
            locality: None,
            state_dir,
            process,
        }
    }

    /// A newly manufactured TPM (new seeds, empty authorization values),
    /// powered on and waiting for TPM2_Startup: STOP, remove the state
    /// file, INIT.
    pub fn manufacture(&mut self) {
        self.ctrl.stop().expect("STOP");
        for entry in std::fs::read_dir(&self.state_dir).expect("state directory") {
            let path = entry.expect("state entry").path();
            std::fs::remove_file(&path).expect("state file removed");
        }
        self.ctrl.init(0).expect("INIT");
        // swtpm 0.7.1 keeps tpmEstablished across a new state file
        // (measured): clear it as a newly manufactured TPM has it.
        self.ctrl
            .reset_tpm_established(3)
            .expect("RESET_TPMESTABLISHED");
        self.locality = None;
    }

    /// A power cycle (_TPM_Init): volatile state is lost, NV stays.
    pub fn power_cycle(&mut self) {
        self.ctrl.init(0).expect("INIT");
        self.locality = None;
    }

    /// A dynamic launch: HASH_START, HASH_DATA, HASH_END.
    pub fn dynamic_launch(&mut self, measurement: &[u8]) {
        self.ctrl.hash_start().expect("HASH_START");
        self.ctrl.hash_data(measurement).expect("HASH_DATA");
        self.ctrl.hash_end().expect("HASH_END");
        self.locality = None;
    }

    /// The tpmEstablished flag.
    pub fn established(&mut self) -> bool {
        self.ctrl.get_tpm_established().expect("GET_TPMESTABLISHED")
    }

    /// Runs one command at `locality` and returns the whole response.
    pub fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        if self.locality != Some(locality) {
            self.ctrl.set_locality(locality).expect("SET_LOCALITY");
            self.locality = Some(locality);
        }
        let mut response = Vec::new();
        self.data
            .transact(command, &mut response, BUFFER_SIZE)
            .unwrap_or_else(|e| {
                panic!(
                    "swtpm failed on {}: {e}\n{}",
                    hex(command),
                    self.process.log_tail()
                )
            });
        response
    }
}

fn connect(path: &Path) -> DataConnection {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match DataConnection::connect_unix(path) {
            Ok(data) => return data,
            Err(e) if Instant::now() > deadline => panic!("swtpm data socket: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// vtpm-sim through the backend adapter, with the same buffer as libtpms.
pub struct Simulator {
    backend: SimBackend,
}

impl Simulator {
    /// A freshly manufactured simulator, powered on.
    pub fn new() -> Self {
        let backend = SimBackend::new(SimConfig {
            buffer_size: BUFFER_SIZE,
            rng_seed: Some([0x5D; 32]),
            ..SimConfig::default()
        })
        .expect("valid sim configuration");
        Self { backend }
    }

    /// A power cycle.
    pub fn power_cycle(&mut self) {
        self.backend.reset().expect("sim reset");
    }

    /// A dynamic launch measuring `measurement`.
    pub fn dynamic_launch(&mut self, measurement: &[u8]) {
        self.backend
            .sim_mut()
            .dynamic_launch(measurement)
            .expect("a started sim launches");
    }

    /// The tpmEstablished flag.
    pub fn established(&mut self) -> bool {
        self.backend.established().expect("sim established flag")
    }

    /// Runs one command at `locality`.
    pub fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        let mut response = Vec::new();
        self.backend
            .execute(locality, command, &mut response)
            .expect("sim executes");
        response
    }
}

/// Lower-case hex of `bytes`, for messages.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
