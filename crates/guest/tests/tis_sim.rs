//! End to end without the platform: TisDriver → TisDevice → vtpm-sim,
//! with post-quantum traffic larger than QEMU's 4096-byte TIS buffer
//! passing whole in both directions.

use vtpm_client as pqc;
use vtpm_guest::{Mmio, TisDriver};
use vtpm_sim::{Sim, SimConfig};
use vtpm_tis::{Action, TisConfig, TisDevice};
use vtpm_wire::consts::{TPM_RH_OWNER, TPM_SU_CLEAR};
use vtpm_wire::structures::{MlDsaParameterSet, PublicArea};
use vtpm_wire::Header;

/// The device with the simulator as its backend, run inline; with
/// `migrate`, the device is snapshotted and restored before every access.
struct SimBus {
    device: TisDevice,
    config: TisConfig,
    sim: Sim,
    response: Vec<u8>,
    migrate: bool,
}

impl SimBus {
    fn new(migrate: bool) -> Self {
        let sim = Sim::new(SimConfig {
            rng_seed: Some([7; 32]),
            ..SimConfig::default()
        })
        .unwrap();
        let config = TisConfig {
            backend_buffer: sim.buffer_size(),
            ..TisConfig::default()
        };
        Self {
            device: TisDevice::new(config.clone()).unwrap(),
            config,
            sim,
            response: Vec::new(),
            migrate,
        }
    }

    fn migrate(&mut self) {
        if self.migrate {
            let blob = self.device.snapshot();
            self.device = TisDevice::restore(self.config.clone(), &blob).unwrap();
        }
    }
}

impl Mmio for SimBus {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.migrate();
        self.device.read(offset, data);
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        self.migrate();
        let token = match self.device.write(offset, data) {
            Some(Action::Execute {
                token,
                locality,
                command,
            }) => {
                self.sim.execute(locality, command, &mut self.response);
                token
            }
            _ => return,
        };
        self.device.complete_swap(token, Ok(&mut self.response));
    }
}

fn rc(response: &[u8]) -> u32 {
    Header::parse(response).unwrap().code
}

fn sign_and_verify(migrate: bool) {
    let mut bus = SimBus::new(migrate);
    let mut driver = TisDriver::new(&mut bus);
    let started = driver.transmit(0, &pqc::startup(TPM_SU_CLEAR)).unwrap();
    assert_eq!(rc(&started), 0);

    let set = MlDsaParameterSet::MlDsa87;
    let created = driver
        .transmit(
            0,
            &pqc::create_primary(TPM_RH_OWNER, b"", &PublicArea::mldsa(set), b""),
        )
        .unwrap();
    assert_eq!(rc(&created), 0);
    let key = pqc::parse_create_primary(&created).unwrap();
    assert_eq!(key.public.public_key().len(), set.public_key_size());

    // The message: fixed bytes, signed through the v1.85 sign sequence.
    let message: [u8; 32] = core::array::from_fn(|i| (i as u8).wrapping_mul(7) ^ 0x42);
    let started = driver
        .transmit(0, &pqc::sign_sequence_start(key.handle, b"", b""))
        .unwrap();
    let sequence = pqc::parse_sequence_start(&started).unwrap();
    let signed = driver
        .transmit(
            0,
            &pqc::sign_sequence_complete(sequence, b"", key.handle, b"", &message),
        )
        .unwrap();
    assert_eq!(rc(&signed), 0);
    assert!(signed.len() > 4096, "a {}-byte sign response", signed.len());
    let t = driver.last_transfer();
    assert_eq!(t.response_bytes, signed.len());
    // The FIFO holds the whole response: the header, then the rest.
    assert_eq!(t.bursts_received, 2);
    let signature = pqc::parse_sign(&signed).unwrap();
    assert_eq!(signature.bytes().len(), set.signature_size());

    let verified = verify(&mut driver, key.handle, &message, &signature);
    assert_eq!(rc(&verified), 0);
    pqc::parse_verify(&verified).unwrap();
    // All but the last byte in one burst, then the last byte.
    assert_eq!(driver.last_transfer().bursts_sent, 2);

    let mut forged = signature.bytes().to_vec();
    forged[0] ^= 1;
    let forged = vtpm_wire::structures::Signature::MlDsa(forged);
    let refused = verify(&mut driver, key.handle, &message, &forged);
    assert_ne!(rc(&refused), 0, "a forged signature is refused");
}

/// Verifies `signature` over `message` with a verify sequence and returns
/// the VerifySequenceComplete response, whose command is over 4096 bytes.
fn verify<M: Mmio>(
    driver: &mut TisDriver<M>,
    key: u32,
    message: &[u8],
    signature: &vtpm_wire::structures::Signature,
) -> Vec<u8> {
    let started = driver
        .transmit(0, &pqc::verify_sequence_start(key, b"", b"", b""))
        .unwrap();
    let sequence = pqc::parse_sequence_start(&started).unwrap();
    let updated = driver
        .transmit(0, &pqc::sequence_update(sequence, b"", message))
        .unwrap();
    pqc::parse_empty(&updated).unwrap();
    let complete = pqc::verify_sequence_complete(sequence, b"", key, signature);
    assert!(
        complete.len() > 4096,
        "a {}-byte verify command",
        complete.len()
    );
    let answer = driver.transmit(0, &complete).unwrap();
    if rc(&answer) != 0 {
        // A refused verification leaves its sequence open.
        let flushed = driver.transmit(0, &pqc::flush_context(sequence)).unwrap();
        assert_eq!(rc(&flushed), 0);
    }
    answer
}

#[test]
fn an_mldsa87_signature_and_its_verification_pass_whole_through_tis() {
    sign_and_verify(false);
}

#[test]
fn the_same_with_the_device_migrated_at_every_mmio_access() {
    sign_and_verify(true);
}
