//! `vtpm exercise`: a standard workload through guest driver → CRB or
//! TIS → backend, checking every answer.

use std::time::Instant;

use sha2::{Digest, Sha256, Sha512};
use vtpm_client as client;
use vtpm_client::Response;
use vtpm_guest::{
    CrbDriver, DriverError, Mmio, TisDriver, TisError, TisTransmitOptions, TransmitOptions,
};
use vtpm_wire::consts::*;
use vtpm_wire::structures::{MlDsaParameterSet, MlKemParameterSet, PublicArea};
use vtpm_wire::{cc, ResponseCode};

use crate::report::{rc_string, StepReport};
use crate::watch::{Monitor, Outcome};

/// The PCR the workload extends: the debug PCR, which every locality may
/// extend and reset under the PC Client profile.
pub const WORKLOAD_PCR: u8 = 16;

/// What one transmit moved.
#[derive(Debug, Clone, Copy, Default)]
pub struct Moved {
    /// Response bytes.
    pub response_bytes: usize,
    /// CRB: window pieces written; TIS: FIFO bursts written.
    pub sent: usize,
    /// CRB: window pieces read; TIS: FIFO bursts read.
    pub received: usize,
}

/// A failed transmit, of either driver.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The CRB driver's error.
    #[error(transparent)]
    Crb(#[from] DriverError),
    /// The TIS driver's error.
    #[error(transparent)]
    Tis(#[from] TisError),
}

/// A guest driver the workload runs on: CRB or TIS.
pub trait Transport {
    /// Sends `command` from `locality`; the response goes into `response`.
    fn send(
        &mut self,
        locality: u8,
        command: &[u8],
        response: &mut Vec<u8>,
        max_response: usize,
    ) -> Result<(), TransportError>;

    /// What the last send moved (also when it failed).
    fn moved(&self) -> Moved;

    /// The MMIO bus under the driver (for its exit counters).
    type Bus;

    /// The bus the driver writes to.
    fn bus(&mut self) -> &Self::Bus;

    /// Gives `locality` up, so another can be granted the interface.
    fn relinquish(&mut self, locality: u8) -> Result<(), TransportError>;
}

impl<M: Mmio> Transport for CrbDriver<M> {
    type Bus = M;

    fn bus(&mut self) -> &M {
        self.mmio()
    }

    fn relinquish(&mut self, locality: u8) -> Result<(), TransportError> {
        self.relinquish_locality(locality)?;
        Ok(())
    }

    fn send(
        &mut self,
        locality: u8,
        command: &[u8],
        response: &mut Vec<u8>,
        max_response: usize,
    ) -> Result<(), TransportError> {
        let options = TransmitOptions {
            max_response,
            retry_response_after: None,
        };
        self.transmit_with(locality, command, response, options)?;
        Ok(())
    }

    fn moved(&self) -> Moved {
        let t = self.last_transfer();
        Moved {
            response_bytes: t.response_bytes,
            sent: t.chunks_sent,
            received: t.chunks_received,
        }
    }
}

impl<M: Mmio> Transport for TisDriver<M> {
    type Bus = M;

    fn bus(&mut self) -> &M {
        self.mmio()
    }

    fn relinquish(&mut self, locality: u8) -> Result<(), TransportError> {
        self.relinquish_locality(locality)?;
        Ok(())
    }

    fn send(
        &mut self,
        locality: u8,
        command: &[u8],
        response: &mut Vec<u8>,
        max_response: usize,
    ) -> Result<(), TransportError> {
        let options = TisTransmitOptions {
            max_response,
            retry_response_after: None,
        };
        self.transmit_with(locality, command, response, options)?;
        Ok(())
    }

    fn moved(&self) -> Moved {
        let t = self.last_transfer();
        Moved {
            response_bytes: t.response_bytes,
            sent: t.bursts_sent,
            received: t.bursts_received,
        }
    }
}

/// Runs steps through a driver and records what moved.
pub struct Runner<'a, T: Transport> {
    driver: &'a mut T,
    locality: u8,
    response: Vec<u8>,
    /// Every step so far.
    pub steps: Vec<StepReport>,
    /// Called after each step (for live output); returns false when the
    /// output is gone (a closed pipe), which ends the run quietly.
    pub on_step: Box<dyn FnMut(&StepReport) -> bool + 'a>,
    /// Why the run stopped early, if it did: later steps are not run.
    pub stopped: Option<Stop>,
    watch: Option<Watch>,
    /// Reads the bus's exit count, so each step reports its `mmio_exits`.
    pub exits: Option<fn(&T::Bus) -> u64>,
}

/// Why a run stopped before its last step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// A step failed in a way every later step would repeat (the backend
    /// failed, or the device is in its fatal error state).
    Failure {
        /// The step that failed.
        step: String,
        /// Why.
        cause: String,
    },
    /// Standard output was closed (e.g. `| head -1`).
    OutputClosed,
}

/// What the runner needs to explain a failure the device only signals.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Sees each backend command's outcome.
    pub monitor: Monitor,
    /// The CRB data window (0 for TIS).
    pub window: usize,
    /// Whether the device advertises CapCRBChunk (false for TIS).
    pub chunking: bool,
}

impl Watch {
    /// The cause of a failed transmit, and whether it ends the run.
    fn explain(&self, e: &TransportError) -> (String, bool) {
        let last = self.monitor.last();
        if let Some(failure) = last.as_ref().and_then(Outcome::failure) {
            return (failure, true);
        }
        let e = match e {
            TransportError::Crb(e) => e,
            // TIS has no fatal state (a failed backend is answered with
            // TPM_RC_FAILURE); a device that stops answering ends the run.
            TransportError::Tis(e @ TisError::Timeout { .. }) => {
                return (format!("transport: {e}"), true)
            }
            TransportError::Tis(e) => return (format!("transport: {e}"), false),
        };
        match (e, last) {
            (DriverError::Fatal, Some(Outcome::Answered { bytes, .. }))
                if !self.chunking && bytes > self.window =>
            {
                (
                    format!(
                        "the {bytes}-byte response exceeds the {}-byte window and the device \
                         does not advertise CapCRBChunk; the device is now in \
                         its fatal error state",
                        self.window
                    ),
                    true,
                )
            }
            (DriverError::Fatal | DriverError::Timeout { .. }, _) => {
                (format!("transport: {e}"), true)
            }
            _ => (format!("transport: {e}"), false),
        }
    }
}

/// The answer a step's check sees.
pub struct Answer<'r> {
    /// The whole response.
    pub bytes: &'r [u8],
    /// Its response code.
    pub rc: ResponseCode,
}

impl<'a, T: Transport> Runner<'a, T> {
    /// A runner on `driver` at `locality`.
    pub fn new(driver: &'a mut T, locality: u8) -> Self {
        Self {
            driver,
            locality,
            response: Vec::new(),
            steps: Vec::new(),
            on_step: Box::new(|_| true),
            stopped: None,
            watch: None,
            exits: None,
        }
    }

    /// Explains failed steps with what `watch` saw, and stops the run after
    /// a failure that every later step would repeat.
    pub fn watch(&mut self, watch: Watch) {
        self.watch = Some(watch);
    }

    /// Sends `command`; `check` judges the answer and returns a detail for
    /// the report (or the reason it failed) and a value for later steps.
    pub fn step<V>(
        &mut self,
        name: &str,
        command: &[u8],
        check: impl FnOnce(&Answer<'_>) -> Result<(String, V), String>,
    ) -> Option<V> {
        if self.stopped.is_some() {
            return None;
        }
        let code = vtpm_wire::Header::parse(command)
            .map(|h| h.code)
            .unwrap_or(0);
        if let Some(w) = &self.watch {
            w.monitor.clear();
        }
        tracing::debug!(
            step = name,
            command = cc::name(code),
            bytes = command.len(),
            "step starts"
        );
        let exits_before = self.exits.map(|count| count(self.driver.bus()));
        let started = Instant::now();
        let result = self
            .driver
            .send(self.locality, command, &mut self.response, 1 << 20);
        let micros = started.elapsed().as_micros() as u64;
        let mmio_exits = self
            .exits
            .zip(exits_before)
            .map(|(count, before)| count(self.driver.bus()).saturating_sub(before));
        let moved = self.driver.moved();
        let mut report = StepReport {
            step: name.to_string(),
            command: cc::name(code),
            request_bytes: command.len(),
            response_bytes: moved.response_bytes,
            chunks_sent: moved.sent,
            chunks_received: moved.received,
            rc: None,
            ok: false,
            micros,
            mmio_exits,
            detail: String::new(),
        };
        let mut value = None;
        match result {
            Err(e) => {
                let (detail, fatal) = match &self.watch {
                    Some(w) => w.explain(&e),
                    None => (format!("transport: {e}"), false),
                };
                if fatal {
                    self.stopped = Some(Stop::Failure {
                        step: name.to_string(),
                        cause: detail.clone(),
                    });
                }
                report.detail = detail;
            }
            Ok(_) => {
                let rc = ResponseCode(
                    vtpm_wire::Header::parse(&self.response)
                        .map(|h| h.code)
                        .unwrap_or(u32::MAX),
                );
                report.rc = Some(rc_string(rc.0));
                match check(&Answer {
                    bytes: &self.response,
                    rc,
                }) {
                    Ok((detail, v)) => {
                        report.ok = true;
                        report.detail = detail;
                        value = Some(v);
                    }
                    Err(why) => report.detail = why,
                }
            }
        }
        tracing::info!(
            step = name,
            rc = report.rc.as_deref().unwrap_or("-"),
            ok = report.ok,
            sent = report.chunks_sent,
            received = report.chunks_received,
            micros = report.micros,
            "{}",
            report.detail
        );
        if !(self.on_step)(&report) && self.stopped.is_none() {
            self.stopped = Some(Stop::OutputClosed);
        }
        self.steps.push(report);
        value
    }
}

/// Fails unless the answer is TPM_RC_SUCCESS.
pub fn success(a: &Answer<'_>) -> Result<(), String> {
    if a.rc.is_success() {
        Ok(())
    } else {
        Err(format!("TPM answered {}", a.rc))
    }
}

/// TPM2_Startup(CLEAR), tolerating a TPM that is already started.
/// TPM2_Startup from locality 0, where a platform's firmware starts the TPM
/// (TPM2_Startup is refused from localities 1, 2 and 4, as in libtpms),
/// whatever locality the rest of the workload runs at.
fn startup<T: Transport>(r: &mut Runner<'_, T>) {
    let workload_locality = std::mem::replace(&mut r.locality, STARTUP_LOCALITY);
    r.step("startup", &client::startup(TPM_SU_CLEAR), |a| {
        if a.rc.is_success() {
            Ok(("started".into(), ()))
        } else if a.rc == ResponseCode::INITIALIZE {
            Ok(("already started (TPM_RC_INITIALIZE)".into(), ()))
        } else {
            Err(format!("TPM answered {}", a.rc))
        }
    });
    r.locality = workload_locality;
    if workload_locality != STARTUP_LOCALITY {
        if let Err(e) = r.driver.relinquish(STARTUP_LOCALITY) {
            r.stopped = Some(Stop::Failure {
                step: "startup".into(),
                cause: format!("cannot relinquish locality {STARTUP_LOCALITY}: {e}"),
            });
        }
    }
}

/// The locality a platform starts the TPM from.
const STARTUP_LOCALITY: u8 = 0;

/// What the classic steps learnt that later steps need.
#[derive(Debug, Clone, Copy, Default)]
pub struct Learnt {
    /// TPM_PT_MAX_COMMAND_SIZE.
    pub max_command: Option<u32>,
    /// TPM_PT_MAX_RESPONSE_SIZE.
    pub max_response: Option<u32>,
}

/// The classic steps every TPM 2.0 answers: Startup, GetRandom,
/// PCR_Extend/PCR_Read checked against SHA-256 on the host, the buffer
/// properties, the fixed properties (a multi-piece response on small
/// windows), and `full_frame`.
pub fn classic_steps<T: Transport>(r: &mut Runner<'_, T>, backend_buffer: usize) -> Learnt {
    startup(r);
    r.step("get_random", &client::get_random(32), |a| {
        let bytes = client::parse_get_random(a.bytes).map_err(|e| e.to_string())?;
        if bytes.len() == 32 {
            Ok(("32 random bytes".into(), ()))
        } else {
            Err(format!("{} bytes instead of 32", bytes.len()))
        }
    });
    let read_pcr = |a: &Answer<'_>| -> Result<(String, Vec<u8>), String> {
        let out = client::parse_pcr_read(a.bytes).map_err(|e| e.to_string())?;
        match out.digests.as_slice() {
            [d] if d.len() == 32 => {
                Ok((format!("PCR {WORKLOAD_PCR} = {}", hex(&d[..8])), d.clone()))
            }
            other => Err(format!("expected one SHA-256 digest, got {}", other.len())),
        }
    };
    let before = r.step(
        "pcr_read_before",
        &client::pcr_read(TPM_ALG_SHA256, &[WORKLOAD_PCR]),
        read_pcr,
    );
    let event: [u8; 32] = Sha256::digest(b"vtpm exercise").into();
    r.step(
        "pcr_extend",
        &client::pcr_extend_sha256(u32::from(WORKLOAD_PCR), &event),
        |a| {
            success(a).map(|()| {
                (
                    format!("PCR {WORKLOAD_PCR} += sha256(\"vtpm exercise\")"),
                    (),
                )
            })
        },
    );
    r.step(
        "pcr_read",
        &client::pcr_read(TPM_ALG_SHA256, &[WORKLOAD_PCR]),
        |a| {
            let (_, after) = read_pcr(a)?;
            let before = before.as_ref().ok_or("no value from pcr_read_before")?;
            let mut h = Sha256::new();
            h.update(before);
            h.update(event);
            let expected: [u8; 32] = h.finalize().into();
            if after == expected {
                Ok(("matches SHA-256 computed on the host".into(), ()))
            } else {
                Err(format!(
                    "PCR {} but host computed {}",
                    hex(&after),
                    hex(&expected)
                ))
            }
        },
    );
    let mut learnt = Learnt::default();
    if let Some((cmd, rsp)) = r.step(
        "buffer_properties",
        &client::get_capability(TPM_CAP_TPM_PROPERTIES, TPM_PT_MAX_COMMAND_SIZE, 2),
        |a| {
            let props = client::parse_tpm_properties(a.bytes).map_err(|e| e.to_string())?;
            let get = |p| props.iter().find(|(k, _)| *k == p).map(|(_, v)| *v);
            let (cmd, rsp) = (get(TPM_PT_MAX_COMMAND_SIZE), get(TPM_PT_MAX_RESPONSE_SIZE));
            match (cmd, rsp) {
                (Some(c), Some(s)) if c as usize == backend_buffer && s as usize == backend_buffer => {
                    Ok((format!("MAX_COMMAND_SIZE {c}, MAX_RESPONSE_SIZE {s}"), (c, s)))
                }
                (Some(c), Some(s)) => Err(format!(
                    "MAX_COMMAND_SIZE {c}, MAX_RESPONSE_SIZE {s}, but the backend buffer is {backend_buffer}"
                )),
                _ => Err("properties missing from the answer".into()),
            }
        },
    ) {
        learnt.max_command = Some(cmd);
        learnt.max_response = Some(rsp);
    }
    r.step(
        "fixed_properties",
        &client::get_capability(TPM_CAP_TPM_PROPERTIES, TPM_PT_FAMILY_INDICATOR, 64),
        |a| {
            let props = client::parse_tpm_properties(a.bytes).map_err(|e| e.to_string())?;
            let family = props
                .iter()
                .find(|(k, _)| *k == TPM_PT_FAMILY_INDICATOR)
                .map(|(_, v)| *v);
            if family == Some(u32::from_be_bytes(*b"2.0\0")) {
                Ok((format!("{} properties, family \"2.0\"", props.len()), ()))
            } else {
                Err(format!("family indicator {family:?}"))
            }
        },
    );
    r.step(
        "full_frame",
        &client::padded_get_random(backend_buffer),
        |a| {
            if a.rc == ResponseCode::SIZE {
                Ok((
                    format!("all {backend_buffer} bytes arrived (trailing bytes: TPM_RC_SIZE)"),
                    (),
                ))
            } else {
                Err(format!("expected TPM_RC_SIZE, TPM answered {}", a.rc))
            }
        },
    );
    learnt
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts the TPM (tolerating an earlier Startup) and reads its fixed
/// properties, for `vtpm probe`; fails with the failing step's cause.
pub fn properties<T: Transport>(r: &mut Runner<'_, T>) -> Result<Vec<(u32, u32)>, String> {
    startup(r);
    let properties = r.step(
        "fixed_properties",
        &client::get_capability(TPM_CAP_TPM_PROPERTIES, TPM_PT_FAMILY_INDICATOR, 64),
        |a| {
            success(a)?;
            client::parse_tpm_properties(a.bytes)
                .map(|p| (String::new(), p))
                .map_err(|e| e.to_string())
        },
    );
    match r.steps.iter().find(|s| !s.ok) {
        Some(failed) => Err(format!("{} failed: {}", failed.step, failed.detail)),
        None => properties.ok_or_else(|| "no properties were read".to_string()),
    }
}

/// The algorithms a TPM lists in GetCapability(TPM_CAP_ALGS).
fn parse_algorithms(bytes: &[u8]) -> Result<Vec<u16>, String> {
    let body = Response::parse(bytes)
        .and_then(|r| r.success_body())
        .map_err(|e| e.to_string())?;
    let mut r = vtpm_wire::Reader::new(body);
    let read = |r: &mut vtpm_wire::Reader<'_>| -> Result<Vec<u16>, vtpm_wire::WireError> {
        let _more = r.u8()?;
        let _cap = r.u32()?;
        let count = r.u32()?;
        let mut algs = Vec::new();
        for _ in 0..count.min(512) {
            algs.push(r.u16()?);
            let _attributes = r.u32()?;
        }
        r.finish()?;
        Ok(algs)
    };
    read(&mut r).map_err(|e| e.to_string())
}

fn set_name(set: MlDsaParameterSet) -> &'static str {
    match set {
        MlDsaParameterSet::MlDsa44 => "mldsa44",
        MlDsaParameterSet::MlDsa65 => "mldsa65",
        MlDsaParameterSet::MlDsa87 => "mldsa87",
    }
}

/// Creates a primary key from `template` in the owner hierarchy; returns
/// its handle and public key.
fn create_primary<T: Transport>(
    r: &mut Runner<'_, T>,
    name: &str,
    template: &PublicArea,
    key_size: usize,
) -> Option<(u32, Vec<u8>)> {
    r.step(
        name,
        &client::create_primary(TPM_RH_OWNER, b"", template, b""),
        |a| {
            success(a)?;
            let key = client::parse_create_primary(a.bytes).map_err(|e| e.to_string())?;
            let pk = key.public.public_key().to_vec();
            if pk.len() != key_size {
                return Err(format!(
                    "public key of {} bytes, expected {key_size}",
                    pk.len()
                ));
            }
            Ok((
                format!("handle {:#010x}, {}-byte public key", key.handle, pk.len()),
                (key.handle, pk),
            ))
        },
    )
}

fn flush<T: Transport>(r: &mut Runner<'_, T>, name: &str, handle: u32) {
    r.step(name, &client::flush_context(handle), |a| {
        success(a).map(|()| (format!("flushed {handle:#010x}"), ()))
    });
}

/// The post-quantum steps, run when the TPM lists ML-DSA and ML-KEM, all
/// with standard v1.85 commands: for ML-DSA-87, -44 and -65 a key, a
/// signature through SignSequenceStart/Complete (over 4096 bytes of
/// response for ML-DSA-87) and its verification through
/// VerifySequenceStart/SequenceUpdate/Complete (a command over 4096
/// bytes), a hash-ML-DSA-87 SignDigest/VerifyDigestSignature, an
/// ML-KEM-1024 encapsulation whose secret the TPM decapsulates again, and
/// an ML-DSA-87 key created under an ML-KEM-1024 storage parent, loaded
/// back and used.
pub fn pqc_steps<T: Transport>(r: &mut Runner<'_, T>) {
    let algorithms = r.step(
        "algorithms",
        &client::get_capability(TPM_CAP_ALGS, 0, 128),
        |a| {
            let algs = parse_algorithms(a.bytes)?;
            let pqc = algs.contains(&TPM_ALG_MLDSA) && algs.contains(&TPM_ALG_MLKEM);
            Ok((
                format!(
                    "{} algorithms{}",
                    algs.len(),
                    if pqc {
                        ", ML-DSA and ML-KEM among them"
                    } else {
                        "; no ML-DSA/ML-KEM: post-quantum steps skipped"
                    }
                ),
                pqc,
            ))
        },
    );
    if algorithms != Some(true) {
        return;
    }
    let message: [u8; 32] = Sha256::digest(b"vtpm exercise: a post-quantum signature").into();
    for set in [
        MlDsaParameterSet::MlDsa87,
        MlDsaParameterSet::MlDsa44,
        MlDsaParameterSet::MlDsa65,
    ] {
        let n = set_name(set);
        let Some((handle, _pk)) = create_primary(
            r,
            &format!("{n}_create_primary"),
            &PublicArea::mldsa(set),
            set.public_key_size(),
        ) else {
            continue;
        };
        sign_and_verify(r, n, set, handle, &message);
        flush(r, &format!("{n}_flush"), handle);
    }
    let digest: [u8; 64] = Sha512::digest(b"vtpm exercise: a pre-hashed message").into();
    let template = PublicArea::hash_mldsa(MlDsaParameterSet::MlDsa87, TPM_ALG_SHA512);
    if let Some((handle, _)) = create_primary(
        r,
        "hash_mldsa87_create_primary",
        &template,
        MlDsaParameterSet::MlDsa87.public_key_size(),
    ) {
        let signature = r.step(
            "hash_mldsa87_sign_digest",
            &client::sign_digest(handle, b"", b"vtpm", &digest),
            |a| {
                success(a)?;
                let sig = client::parse_sign(a.bytes).map_err(|e| e.to_string())?;
                Ok((
                    format!("{}-byte signature over SHA-512", sig.bytes().len()),
                    sig,
                ))
            },
        );
        if let Some(sig) = signature {
            r.step(
                "hash_mldsa87_verify_digest",
                &client::verify_digest_signature(handle, b"vtpm", &digest, &sig),
                |a| {
                    success(a)?;
                    let ticket = client::parse_verify(a.bytes).map_err(|e| e.to_string())?;
                    Ok((format!("verified (ticket tag {:#06x})", ticket.tag), ()))
                },
            );
        }
        flush(r, "hash_mldsa87_flush", handle);
    }
    let kem = MlKemParameterSet::MlKem1024;
    if let Some((handle, _)) = create_primary(
        r,
        "mlkem1024_create_primary",
        &PublicArea::mlkem(kem),
        kem.public_key_size(),
    ) {
        let encapsulated = r.step("mlkem1024_encapsulate", &client::encapsulate(handle), |a| {
            success(a)?;
            let e = client::parse_encapsulate(a.bytes).map_err(|e| e.to_string())?;
            if e.ciphertext.len() != kem.ciphertext_size() || e.shared_secret.len() != 32 {
                return Err(format!(
                    "{}-byte ciphertext, {}-byte secret",
                    e.ciphertext.len(),
                    e.shared_secret.len()
                ));
            }
            Ok((
                format!("{}-byte ciphertext, 32-byte secret", e.ciphertext.len()),
                e,
            ))
        });
        if let Some(e) = encapsulated {
            r.step(
                "mlkem1024_decapsulate",
                &client::decapsulate(handle, b"", &e.ciphertext),
                |a| {
                    success(a)?;
                    let secret = client::parse_decapsulate(a.bytes).map_err(|e| e.to_string())?;
                    if secret == e.shared_secret {
                        Ok(("shared secrets equal".into(), ()))
                    } else {
                        Err("the decapsulated secret differs from the encapsulated one".into())
                    }
                },
            );
        }
        flush(r, "mlkem1024_flush", handle);
    }
    stored_key_steps(r, &message);
}

/// Signs `message` with a v1.85 sign sequence (the whole message in
/// SignSequenceComplete's buffer: pure ML-DSA signing is one-shot), then
/// verifies it with a verify sequence fed through SequenceUpdate, and
/// checks that a signature with one flipped bit is refused. Step names
/// start with `n`; `{n}_sign` and `{n}_verify` are the two large transfers.
fn sign_and_verify<T: Transport>(
    r: &mut Runner<'_, T>,
    n: &str,
    set: MlDsaParameterSet,
    key: u32,
    message: &[u8],
) {
    let Some(sequence) = r.step(
        &format!("{n}_sequence_start"),
        &client::sign_sequence_start(key, b"", b""),
        sequence_started,
    ) else {
        return;
    };
    let signature = r.step(
        &format!("{n}_sign"),
        &client::sign_sequence_complete(sequence, b"", key, b"", message),
        |a| {
            success(a)?;
            let sig = client::parse_sign(a.bytes).map_err(|e| e.to_string())?;
            if sig.bytes().len() != set.signature_size() {
                return Err(format!(
                    "{}-byte signature, expected {}",
                    sig.bytes().len(),
                    set.signature_size()
                ));
            }
            Ok((format!("{}-byte signature", sig.bytes().len()), sig))
        },
    );
    let Some(sig) = signature else {
        return;
    };
    verify_sequence(r, &format!("{n}_verify"), key, message, &sig, |a| {
        success(a)?;
        let ticket = client::parse_verify(a.bytes).map_err(|e| e.to_string())?;
        if ticket.tag == TPM_ST_MESSAGE_VERIFIED {
            Ok(format!("verified (ticket tag {:#06x})", ticket.tag))
        } else {
            Err(format!(
                "ticket tag {:#06x}, expected MESSAGE_VERIFIED",
                ticket.tag
            ))
        }
    });
    let mut forged = sig.bytes().to_vec();
    forged[0] ^= 1;
    let forged = vtpm_wire::structures::Signature::MlDsa(forged);
    let sequence = verify_sequence(
        r,
        &format!("{n}_verify_forged"),
        key,
        message,
        &forged,
        |a| {
            if a.rc.base() == ResponseCode::SIGNATURE {
                Ok(format!("a flipped bit is refused: {}", a.rc))
            } else {
                Err(format!("a forged signature was answered {}", a.rc))
            }
        },
    );
    if let Some(sequence) = sequence {
        // A refused signature leaves the sequence open on TPMs that end
        // sequences only on success; one that ended it answers TPM_RC_HANDLE.
        r.step(
            &format!("{n}_verify_forged_flush"),
            &client::flush_context(sequence),
            |a| {
                if a.rc.is_success() {
                    Ok(("flushed the refused sequence".into(), ()))
                } else if a.rc.base() == ResponseCode::HANDLE {
                    Ok(("the TPM had already ended the sequence".into(), ()))
                } else {
                    Err(format!("TPM answered {}", a.rc))
                }
            },
        );
    }
}

/// The handle of a sequence-start answer.
fn sequence_started(a: &Answer<'_>) -> Result<(String, u32), String> {
    success(a)?;
    let handle = client::parse_sequence_start(a.bytes).map_err(|e| e.to_string())?;
    Ok((format!("sequence {handle:#010x}"), handle))
}

/// A verify sequence over `message` (`{name}_start`, `{name}_update`) and
/// its completion with `signature` (`{name}`), judged by `check`. Returns
/// the sequence handle when the completion ran.
fn verify_sequence<T: Transport>(
    r: &mut Runner<'_, T>,
    name: &str,
    key: u32,
    message: &[u8],
    signature: &vtpm_wire::structures::Signature,
    check: impl FnOnce(&Answer<'_>) -> Result<String, String>,
) -> Option<u32> {
    let sequence = r.step(
        &format!("{name}_start"),
        &client::verify_sequence_start(key, b"", b"", b""),
        sequence_started,
    )?;
    r.step(
        &format!("{name}_update"),
        &client::sequence_update(sequence, b"", message),
        |a| success(a).map(|()| (format!("{} message bytes", message.len()), ())),
    )?;
    r.step(
        name,
        &client::verify_sequence_complete(sequence, b"", key, signature),
        |a| check(a).map(|d| (d, ())),
    )
    .map(|()| sequence)
}

/// The key QEMU's maintainers asked for: an ML-DSA-87 key created under an
/// ML-KEM-1024 storage parent (v1.85: a restricted decryption ML-KEM key
/// with an AES-CFB symmetric definition), the parent flushed and created
/// again from the same template (a primary key is a function of its seed
/// and template), the child loaded from the blob Create returned, and a
/// signature made and verified with the loaded key.
fn stored_key_steps<T: Transport>(r: &mut Runner<'_, T>, message: &[u8]) {
    let kem = MlKemParameterSet::MlKem1024;
    let parent_template = PublicArea::mlkem_storage_parent(kem);
    let Some((parent, _)) = create_primary(
        r,
        "storage_parent_create_primary",
        &parent_template,
        kem.public_key_size(),
    ) else {
        return;
    };
    let set = MlDsaParameterSet::MlDsa87;
    let created = r.step(
        "mldsa87_child_create",
        &client::create(parent, b"", &PublicArea::mldsa(set), b""),
        |a| {
            success(a)?;
            let c = client::parse_create(a.bytes).map_err(|e| e.to_string())?;
            if c.public.public_key().len() != set.public_key_size() {
                return Err(format!("{}-byte public key", c.public.public_key().len()));
            }
            Ok((
                format!(
                    "{}-byte private blob, {}-byte public area",
                    c.private.len(),
                    c.public_bytes.len()
                ),
                c,
            ))
        },
    );
    flush(r, "storage_parent_flush", parent);
    let Some(created) = created else {
        return;
    };
    let Some((parent, _)) = create_primary(
        r,
        "storage_parent_recreate",
        &parent_template,
        kem.public_key_size(),
    ) else {
        return;
    };
    let loaded = r.step(
        "mldsa87_child_load",
        &client::load(parent, b"", &created.private, &created.public_bytes),
        |a| {
            success(a)?;
            let l = client::parse_load(a.bytes).map_err(|e| e.to_string())?;
            Ok((format!("loaded as {:#010x}", l.handle), l.handle))
        },
    );
    if let Some(child) = loaded {
        sign_and_verify(r, "mldsa87_child", set, child, message);
        flush(r, "mldsa87_child_flush", child);
    }
    flush(r, "storage_parent_flush_again", parent);
}
