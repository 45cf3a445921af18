//! Replays the firmware's TPM 2.0 event log (TCG PC Client PFP, the
//! crypto-agile format SeaBIOS writes and Linux exposes as
//! `binary_bios_measurements`) to the value a PCR must hold.

use sha2::{Digest, Sha256};

const EV_NO_ACTION: u32 = 3;
const TPM_ALG_SHA256: u16 = 0x000B;
const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";
const STARTUP_LOCALITY_SIGNATURE: &[u8; 16] = b"StartupLocality\0";

/// What replaying one PCR's SHA-256 bank gave.
#[derive(Debug, PartialEq, Eq)]
pub struct Replay {
    pub pcr: [u8; 32],
    /// Measurements extended into the PCR.
    pub extends: usize,
}

/// Bounds-checked little-endian reads over the log.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| {
            format!(
                "event log truncated: {n} bytes wanted at offset {} of {}",
                self.at,
                self.bytes.len()
            )
        })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn sized(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()?;
        self.take(usize::try_from(n).map_err(|_| format!("event size {n} too large"))?)
    }

    fn rest_is_empty(&self) -> bool {
        self.bytes[self.at..].iter().all(|&b| b == 0)
    }
}

/// Replays the SHA-256 bank of PCR `index`: starts from zero (or from the
/// locality a StartupLocality event names) and extends every measured
/// digest in log order.
pub fn replay_sha256(log: &[u8], index: u32) -> Result<Replay, String> {
    let mut log = Cursor { bytes: log, at: 0 };
    let digest_sizes = spec_id_event(&mut log)?;
    let mut pcr = [0u8; 32];
    let mut extends = 0;
    while !log.rest_is_empty() {
        let pcr_index = log.u32()?;
        let event_type = log.u32()?;
        let count = log.u32()?;
        let mut sha256 = None;
        for _ in 0..count {
            let alg = log.u16()?;
            let size = digest_sizes
                .iter()
                .find(|(a, _)| *a == alg)
                .map(|(_, size)| *size)
                .ok_or_else(|| {
                    format!("digest of algorithm {alg:#06x} not in the Spec ID event")
                })?;
            let digest = log.take(usize::from(size))?;
            if alg == TPM_ALG_SHA256 {
                sha256 = Some(digest);
            }
        }
        let data = log.sized()?;
        if pcr_index != index {
            continue;
        }
        if event_type == EV_NO_ACTION {
            if let Some(locality) = data
                .strip_prefix(STARTUP_LOCALITY_SIGNATURE)
                .and_then(|rest| rest.first())
            {
                pcr = [0; 32];
                pcr[31] = *locality;
            }
            continue;
        }
        let digest = sha256.ok_or_else(|| {
            format!("an event for PCR {index} has no SHA-256 digest: the bank is not active")
        })?;
        pcr = Sha256::new()
            .chain_update(pcr)
            .chain_update(digest)
            .finalize()
            .into();
        extends += 1;
    }
    Ok(Replay { pcr, extends })
}

/// Reads the log's first event (a TCG_PCClientPCREvent holding the
/// TCG_EfiSpecIDEvent) and returns the (algorithm, digest size) table.
fn spec_id_event(log: &mut Cursor<'_>) -> Result<Vec<(u16, u16)>, String> {
    let _pcr_index = log.u32()?;
    let event_type = log.u32()?;
    let _sha1 = log.take(20)?;
    let data = log.sized()?;
    let mut event = Cursor { bytes: data, at: 0 };
    if event_type != EV_NO_ACTION || event.take(16)? != SPEC_ID_SIGNATURE {
        return Err("the event log does not start with a crypto-agile Spec ID event".into());
    }
    let _platform_class = event.u32()?;
    let _version_and_errata = event.take(3)?;
    let _uintn_size = event.u8()?;
    let algorithms = event.u32()?;
    // Each entry takes four bytes of the event, so the count cannot ask for
    // more than the event holds.
    if usize::try_from(algorithms).map_or(true, |n| n > data.len() / 4) {
        return Err(format!("Spec ID event lists {algorithms} algorithms"));
    }
    (0..algorithms)
        .map(|_| Ok((event.u16()?, event.u16()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_id(algorithms: &[(u16, u16)]) -> Vec<u8> {
        let mut data = SPEC_ID_SIGNATURE.to_vec();
        data.extend_from_slice(&0u32.to_le_bytes());
        data.extend_from_slice(&[0, 2, 0, 2]);
        data.extend_from_slice(&(algorithms.len() as u32).to_le_bytes());
        for (alg, size) in algorithms {
            data.extend_from_slice(&alg.to_le_bytes());
            data.extend_from_slice(&size.to_le_bytes());
        }
        data.push(0);
        let mut log = 0u32.to_le_bytes().to_vec();
        log.extend_from_slice(&EV_NO_ACTION.to_le_bytes());
        log.extend_from_slice(&[0; 20]);
        log.extend_from_slice(&(data.len() as u32).to_le_bytes());
        log.extend_from_slice(&data);
        log
    }

    fn event(log: &mut Vec<u8>, pcr: u32, kind: u32, digests: &[(u16, Vec<u8>)], data: &[u8]) {
        log.extend_from_slice(&pcr.to_le_bytes());
        log.extend_from_slice(&kind.to_le_bytes());
        log.extend_from_slice(&(digests.len() as u32).to_le_bytes());
        for (alg, digest) in digests {
            log.extend_from_slice(&alg.to_le_bytes());
            log.extend_from_slice(digest);
        }
        log.extend_from_slice(&(data.len() as u32).to_le_bytes());
        log.extend_from_slice(data);
    }

    #[test]
    fn replay_extends_only_the_chosen_pcr_in_log_order_and_skips_no_action_events() {
        let mut log = spec_id(&[(0x0004, 20), (TPM_ALG_SHA256, 32)]);
        let a = Sha256::digest(b"a").to_vec();
        let b = Sha256::digest(b"b").to_vec();
        event(
            &mut log,
            0,
            8,
            &[(0x0004, vec![1; 20]), (TPM_ALG_SHA256, a.clone())],
            b"x",
        );
        event(&mut log, 1, 8, &[(TPM_ALG_SHA256, vec![7; 32])], b"");
        event(
            &mut log,
            0,
            EV_NO_ACTION,
            &[(TPM_ALG_SHA256, vec![9; 32])],
            b"",
        );
        event(&mut log, 0, 4, &[(TPM_ALG_SHA256, b.clone())], b"");
        log.extend_from_slice(&[0; 64]);

        let step1: [u8; 32] = Sha256::new()
            .chain_update([0; 32])
            .chain_update(&a)
            .finalize()
            .into();
        let step2: [u8; 32] = Sha256::new()
            .chain_update(step1)
            .chain_update(&b)
            .finalize()
            .into();
        assert_eq!(
            replay_sha256(&log, 0),
            Ok(Replay {
                pcr: step2,
                extends: 2
            })
        );
    }

    #[test]
    fn a_startup_locality_event_sets_the_starting_value() {
        let mut log = spec_id(&[(TPM_ALG_SHA256, 32)]);
        event(
            &mut log,
            0,
            EV_NO_ACTION,
            &[(TPM_ALG_SHA256, vec![0; 32])],
            b"StartupLocality\0\x03",
        );
        let mut start = [0u8; 32];
        start[31] = 3;
        assert_eq!(
            replay_sha256(&log, 0),
            Ok(Replay {
                pcr: start,
                extends: 0
            })
        );
    }

    #[test]
    fn a_truncated_log_or_an_unknown_algorithm_is_an_error_not_a_panic() {
        let mut log = spec_id(&[(TPM_ALG_SHA256, 32)]);
        event(&mut log, 0, 8, &[(TPM_ALG_SHA256, vec![5; 32])], b"data");
        for cut in 0..log.len() {
            let _ = replay_sha256(&log[..cut], 0);
        }
        assert!(replay_sha256(&log[..log.len() - 1], 0).is_err());

        let mut other = spec_id(&[(TPM_ALG_SHA256, 32)]);
        event(&mut other, 0, 8, &[(0x000C, vec![5; 48])], b"");
        assert!(replay_sha256(&other, 0).unwrap_err().contains("0x000c"));
    }
}
