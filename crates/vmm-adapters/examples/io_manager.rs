//! Registers vtpm's CRB device (with its backend on a worker thread) and
//! its TIS device (backend inline) on a rust-vmm `IoManager`, then runs a
//! workload through the manager's MMIO dispatch with vtpm's guest drivers:
//! the path a VM exit takes in a rust-vmm VMM.
//!
//! `cargo run -p vtpm-vmm-adapters --example io_manager`

use std::error::Error;
use std::sync::{Arc, Mutex};

use vm_device::bus::{MmioAddress, MmioRange};
use vm_device::device_manager::{IoManager, MmioManager};
use vtpm_backend::sim::{SimBackend, SimConfig};
use vtpm_client as commands;
use vtpm_guest::{CrbDriver, TisDriver};
use vtpm_platform::{Platform, PlatformConfig};
use vtpm_tis::TisConfig;
use vtpm_vmm_adapters::{InlineTis, IoManagerMmio, VmDevice};
use vtpm_wire::consts::TPM_SU_CLEAR;

/// Locality 0's page of the CRB TPM (the PC address).
const CRB_BASE: u64 = 0xFED4_0000;
/// Where this example puts the TIS TPM (a second device, for the demo).
const TIS_BASE: u64 = 0xFED5_0000;
/// Five locality pages.
const TPM_SIZE: u64 = 0x5000;

/// What the workload saw on one device.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Response codes of Startup, GetRandom and the full-frame command.
    pub codes: [u32; 3],
    /// Random bytes returned.
    pub random_bytes: usize,
}

fn sim() -> Result<Box<SimBackend>, Box<dyn Error>> {
    Ok(Box::new(SimBackend::new(SimConfig::default())?))
}

fn code(response: &[u8]) -> Result<u32, Box<dyn Error>> {
    Ok(vtpm_wire::Header::parse(response)?.code)
}

/// Startup, GetRandom(32), and a command of exactly the backend buffer
/// (answered TPM_RC_SIZE when every byte arrived).
fn workload(
    mut transmit: impl FnMut(&[u8]) -> Result<Vec<u8>, Box<dyn Error>>,
    buffer: usize,
) -> Result<Outcome, Box<dyn Error>> {
    let startup = transmit(&commands::startup(TPM_SU_CLEAR))?;
    let random = transmit(&commands::get_random(32))?;
    let full = transmit(&commands::padded_get_random(buffer))?;
    Ok(Outcome {
        codes: [code(&startup)?, code(&random)?, code(&full)?],
        random_bytes: commands::parse_get_random(&random)?.len(),
    })
}

/// Builds the manager, runs the workload on both devices.
pub fn run() -> Result<(Outcome, Outcome), Box<dyn Error>> {
    let mut manager = IoManager::new();

    let platform = Platform::new(sim()?, PlatformConfig::default())?;
    let buffer = platform.with_device(|d| d.transfer_limit());
    manager.register_mmio(
        MmioRange::new(MmioAddress(CRB_BASE), TPM_SIZE)?,
        Arc::new(Mutex::new(VmDevice(platform.bus()))),
    )?;
    let tis = InlineTis::new(sim()?, TisConfig::default())?;
    manager.register_mmio(
        MmioRange::new(MmioAddress(TIS_BASE), TPM_SIZE)?,
        Arc::new(Mutex::new(VmDevice(tis))),
    )?;

    let mut crb = CrbDriver::new(IoManagerMmio {
        manager: &manager,
        base: CRB_BASE,
    });
    let crb_outcome = workload(|c| Ok(crb.transmit(0, c)?), buffer)?;
    let mut tis = TisDriver::new(IoManagerMmio {
        manager: &manager,
        base: TIS_BASE,
    });
    let tis_outcome = workload(|c| Ok(tis.transmit(0, c)?), buffer)?;
    Ok((crb_outcome, tis_outcome))
}

#[allow(dead_code)] // run() is what the test calls
fn main() -> Result<(), Box<dyn Error>> {
    let (crb, tis) = run()?;
    println!("CRB through IoManager: {crb:?}");
    println!("TIS through IoManager: {tis:?}");
    Ok(())
}
