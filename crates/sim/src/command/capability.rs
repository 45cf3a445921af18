//! TPM2_GetCapability.

use vtpm_wire::consts::TPM_RH_LOCKOUT;
use vtpm_wire::consts::{
    TPM_ALG_AES, TPM_ALG_CFB, TPM_ALG_HASH_MLDSA, TPM_ALG_MLDSA, TPM_ALG_MLKEM, TPM_ALG_NULL,
    TPM_ALG_SHA256, TPM_ALG_SHA384, TPM_ALG_SHA512, TPM_ALG_SYMCIPHER, TPM_CAP_ALGS,
    TPM_CAP_COMMANDS, TPM_CAP_HANDLES, TPM_CAP_PCRS, TPM_CAP_TPM_PROPERTIES, TPM_RH_ENDORSEMENT,
    TPM_RH_NULL, TPM_RH_OWNER, TPM_RH_PLATFORM, TPM_RS_PW,
};
use vtpm_wire::ResponseCode;

use super::{write_pcr_selection, PcrSelection};
use crate::dispatch::{command_attributes, Command, Reply, COMMANDS};
use crate::pcr::{BANKS, PCR_ATTRIBUTES, PCR_COUNT, PCR_SELECT_SIZE};
use crate::rc::{AtNumber, TpmResult};
use crate::unmarshal::Out;
use crate::{Sim, TRANSIENT_FIRST, TRANSIENT_SLOTS};

/// TPM_CAP_PP_COMMANDS.
const CAP_PP_COMMANDS: u32 = 3;
/// TPM_CAP_AUDIT_COMMANDS.
const CAP_AUDIT_COMMANDS: u32 = 4;
/// TPM_CAP_PCR_PROPERTIES.
const CAP_PCR_PROPERTIES: u32 = 7;
/// TPM_CAP_ECC_CURVES.
const CAP_ECC_CURVES: u32 = 8;
/// TPM_CAP_AUTH_POLICIES.
const CAP_AUTH_POLICIES: u32 = 9;
/// TPM_CAP_ACT.
const CAP_ACT: u32 = 10;

/// TPM_CAP_VENDOR_PROPERTY.
const CAP_VENDOR_PROPERTY: u32 = 0x100;
/// PT_VAR: the first variable property.
const PT_VAR: u32 = 0x200;
/// TPM_RH_ACT_0 and TPM_RH_ACT_F: the range TPM_CAP_ACT reads.
const ACT_FIRST: u32 = 0x4000_0110;
const ACT_LAST: u32 = 0x4000_011F;
/// The hierarchies TPM_CAP_AUTH_POLICIES reports, sorted.
const POLICY_HIERARCHIES: [u32; 4] = [
    TPM_RH_OWNER,
    TPM_RH_LOCKOUT,
    TPM_RH_ENDORSEMENT,
    TPM_RH_PLATFORM,
];

/// MAX_CAP_BUFFER: capability data is bounded like a reference TPM's.
const MAX_CAP_BUFFER: usize = 1024;
/// Room for list entries after moreData, capability and count.
const MAX_CAP_DATA: usize = MAX_CAP_BUFFER - 1 - 4 - 4;

/// TPMA_ALGORITHM bits.
const ASYMMETRIC: u32 = 1 << 0;
const SYMMETRIC: u32 = 1 << 1;
const HASH: u32 = 1 << 2;
const OBJECT: u32 = 1 << 3;
const SIGNING: u32 = 1 << 8;
const ENCRYPTING: u32 = 1 << 9;
const METHOD: u32 = 1 << 10;

/// TPM_ALG_KDF1_SP800_108: KDFa, used for every derived key.
const TPM_ALG_KDF1_SP800_108: u16 = 0x0022;

/// The implemented algorithms and their TPMA_ALGORITHM, sorted by ID.
const ALGORITHMS: &[(u16, u32)] = &[
    (TPM_ALG_AES, SYMMETRIC),
    (TPM_ALG_SHA256, HASH),
    (TPM_ALG_SHA384, HASH),
    (TPM_ALG_SHA512, HASH),
    // TPM_ALG_NULL is not listed (libtpms and the reference code do not).
    (TPM_ALG_KDF1_SP800_108, HASH | METHOD),
    (TPM_ALG_SYMCIPHER, OBJECT),
    (TPM_ALG_CFB, SYMMETRIC | ENCRYPTING),
    (TPM_ALG_MLKEM, ASYMMETRIC | OBJECT | ENCRYPTING),
    (TPM_ALG_MLDSA, ASYMMETRIC | OBJECT | SIGNING),
    (TPM_ALG_HASH_MLDSA, ASYMMETRIC | OBJECT | SIGNING),
];

/// Permanent handles that exist here, sorted.
const PERMANENT_HANDLES: &[u32] = &[
    TPM_RH_OWNER,
    TPM_RH_NULL,
    TPM_RS_PW,
    TPM_RH_LOCKOUT,
    TPM_RH_ENDORSEMENT,
    TPM_RH_PLATFORM,
];

/// "VTPM" in ASCII: the TPM_PT_MANUFACTURER this simulator reports. It is
/// not a registered TCG vendor ID.
pub(crate) const MANUFACTURER: u32 = u32::from_be_bytes(*b"VTPM");

fn ascii(s: &[u8; 4]) -> u32 {
    u32::from_be_bytes(*s)
}

/// The TPM properties, sorted by property tag.
fn properties(sim: &Sim) -> Vec<(u32, u32)> {
    let version = |s: &str| s.parse::<u32>().unwrap_or(0);
    let major = version(env!("CARGO_PKG_VERSION_MAJOR"));
    let minor = version(env!("CARGO_PKG_VERSION_MINOR"));
    let patch = version(env!("CARGO_PKG_VERSION_PATCH"));
    let commands = COMMANDS.len() as u32;
    let free_slots = sim.objects.iter().filter(|o| o.is_none()).count() as u32;
    let buffer = sim.buffer_size as u32;
    let permanent = u32::from(!sim.permanent.owner_auth.is_empty())
        | u32::from(!sim.permanent.endorsement_auth.is_empty()) << 1
        | u32::from(!sim.permanent.lockout_auth.is_empty()) << 2
        | 1 << 10; // tpmGeneratedEPS
    vec![
        (0x100, ascii(b"2.0\0")),           // TPM_PT_FAMILY_INDICATOR
        (0x101, 0),                         // TPM_PT_LEVEL
        (0x102, 185),                       // TPM_PT_REVISION: library 1.85
        (0x103, 0),                         // TPM_PT_ERRATA in v1.85 (0 for rc4)
        (0x104, 0),                         // TPM_PT_YEAR: "shall be zero" in v1.85
        (0x105, MANUFACTURER),              // TPM_PT_MANUFACTURER
        (0x106, ascii(b"vtpm")),            // TPM_PT_VENDOR_STRING_1
        (0x107, ascii(b"-sim")),            // TPM_PT_VENDOR_STRING_2
        (0x108, 0),                         // TPM_PT_VENDOR_STRING_3
        (0x109, 0),                         // TPM_PT_VENDOR_STRING_4
        (0x10A, 0),                         // TPM_PT_VENDOR_TPM_TYPE
        (0x10B, major << 16 | minor),       // TPM_PT_FIRMWARE_VERSION_1
        (0x10C, patch << 16),               // TPM_PT_FIRMWARE_VERSION_2
        (0x10D, 1024),                      // TPM_PT_INPUT_BUFFER
        (0x10E, TRANSIENT_SLOTS as u32),    // TPM_PT_HR_TRANSIENT_MIN
        (0x10F, 0),                         // TPM_PT_HR_PERSISTENT_MIN
        (0x110, 0),                         // TPM_PT_HR_LOADED_MIN
        (0x111, 0),                         // TPM_PT_ACTIVE_SESSIONS_MAX
        (0x112, PCR_COUNT as u32),          // TPM_PT_PCR_COUNT
        (0x113, PCR_SELECT_SIZE as u32),    // TPM_PT_PCR_SELECT_MIN
        (0x114, 0),                         // TPM_PT_CONTEXT_GAP_MAX
        (0x116, 0),                         // TPM_PT_NV_COUNTERS_MAX
        (0x117, 0),                         // TPM_PT_NV_INDEX_MAX
        (0x118, 0),                         // TPM_PT_MEMORY
        (0x119, 0),                         // TPM_PT_CLOCK_UPDATE
        (0x11A, u32::from(TPM_ALG_SHA256)), // TPM_PT_CONTEXT_HASH
        (0x11B, u32::from(TPM_ALG_AES)),    // TPM_PT_CONTEXT_SYM
        (0x11C, 128),                       // TPM_PT_CONTEXT_SYM_SIZE
        (0x11D, 0),                         // TPM_PT_ORDERLY_COUNT
        (0x11E, buffer),                    // TPM_PT_MAX_COMMAND_SIZE
        (0x11F, buffer),                    // TPM_PT_MAX_RESPONSE_SIZE
        (0x120, 64),                        // TPM_PT_MAX_DIGEST
        (0x121, 0),                         // TPM_PT_MAX_OBJECT_CONTEXT
        (0x122, 0),                         // TPM_PT_MAX_SESSION_CONTEXT
        (0x123, 1),                         // TPM_PT_PS_FAMILY_INDICATOR: PC Client
        (0x124, 0),                         // TPM_PT_PS_LEVEL
        (0x125, 0),                         // TPM_PT_PS_REVISION
        (0x126, 0),                         // TPM_PT_PS_DAY_OF_YEAR
        (0x127, 0),                         // TPM_PT_PS_YEAR
        (0x128, 0),                         // TPM_PT_SPLIT_MAX
        (0x129, commands),                  // TPM_PT_TOTAL_COMMANDS
        (0x12A, commands),                  // TPM_PT_LIBRARY_COMMANDS
        (0x12B, 0),                         // TPM_PT_VENDOR_COMMANDS
        (0x12C, 0),                         // TPM_PT_NV_BUFFER_MAX
        (0x12D, 0),                         // TPM_PT_MODES
        (0x12E, MAX_CAP_BUFFER as u32),     // TPM_PT_MAX_CAP_BUFFER
        (0x12F, 0),                         // TPM_PT_FIRMWARE_SVN
        (0x130, 0),                         // TPM_PT_FIRMWARE_MAX_SVN
        // TPM_PT_ML_PARAMETER_SETS: ML-KEM-512/768/1024, ML-DSA-44/65/87
        // and allowExternalMu.
        (vtpm_wire::consts::TPM_PT_ML_PARAMETER_SETS, 0x7F),
        (0x200, permanent),   // TPM_PT_PERMANENT
        (0x201, 0x0000_000F), // TPM_PT_STARTUP_CLEAR: all hierarchies enabled
        (0x202, 0),           // TPM_PT_HR_NV_INDEX
        (0x203, 0),           // TPM_PT_HR_LOADED
        (0x204, 0),           // TPM_PT_HR_LOADED_AVAIL
        (0x205, 0),           // TPM_PT_HR_ACTIVE
        (0x206, 0),           // TPM_PT_HR_ACTIVE_AVAIL
        (0x207, free_slots),  // TPM_PT_HR_TRANSIENT_AVAIL
        (0x208, 0),           // TPM_PT_HR_PERSISTENT
        (0x209, 0),           // TPM_PT_HR_PERSISTENT_AVAIL
        (0x20A, 0),           // TPM_PT_NV_COUNTERS
        (0x20B, 0),           // TPM_PT_NV_COUNTERS_AVAIL
        (0x20C, 0),           // TPM_PT_ALGORITHM_SET
        (0x20D, 0),           // TPM_PT_LOADED_CURVES
        (0x20E, 0),           // TPM_PT_LOCKOUT_COUNTER
        (0x20F, 0),           // TPM_PT_MAX_AUTH_FAIL
        (0x210, 0),           // TPM_PT_LOCKOUT_INTERVAL
        (0x211, 0),           // TPM_PT_LOCKOUT_RECOVERY
        (0x212, 0),           // TPM_PT_NV_WRITE_RECOVERY
        (0x213, 0),           // TPM_PT_AUDIT_COUNTER_0
        (0x214, 0),           // TPM_PT_AUDIT_COUNTER_1
    ]
}

/// TPM_PT_PCR tags of TPM_CAP_PCR_PROPERTIES with the PCRs each applies to.
fn pcr_properties() -> Vec<(u32, [u8; PCR_SELECT_SIZE])> {
    let bitmap = |f: &dyn Fn(usize) -> bool| {
        let mut b = [0u8; PCR_SELECT_SIZE];
        for i in (0..PCR_COUNT).filter(|&i| f(i)) {
            b[i / 8] |= 1 << (i % 8);
        }
        b
    };
    let mut out = vec![(0x00, bitmap(&|i| PCR_ATTRIBUTES[i].saved))]; // TPM_PT_PCR_SAVE
    for locality in 0..5u32 {
        let bit = 1u8 << locality;
        out.push((
            1 + 2 * locality,
            bitmap(&|i| PCR_ATTRIBUTES[i].extend & bit != 0),
        ));
        out.push((
            2 + 2 * locality,
            bitmap(&|i| PCR_ATTRIBUTES[i].reset & bit != 0),
        ));
    }
    out.push((0x11, bitmap(&|i| PCR_ATTRIBUTES[i].no_increment))); // NO_INCREMENT
    out.push((0x12, bitmap(&|i| (17..=22).contains(&i)))); // DRTM_RESET
                                                           // The reference code's PC Client groups: PCRs 20-22 may be authorized
                                                           // by policy or by an authValue. Here both stay empty (there is no
                                                           // TPM2_PCR_SetAuthPolicy or TPM2_PCR_SetAuthValue), which is their
                                                           // initial value on any TPM.
    out.push((0x13, bitmap(&|i| (20..=22).contains(&i)))); // POLICY
    out.push((0x14, bitmap(&|i| (20..=22).contains(&i)))); // AUTH
    out
}

/// Writes up to `count` entries from `first` on (each `entry_size` bytes)
/// and returns moreData.
fn write_list<T: Copy>(
    out: &mut Vec<u8>,
    entries: &[T],
    count: usize,
    entry_size: usize,
    write: impl Fn(&mut Vec<u8>, T),
) -> bool {
    let limit = count.min(MAX_CAP_DATA / entry_size);
    let taken = entries.len().min(limit);
    out.put_u32(taken as u32);
    for &e in &entries[..taken] {
        write(out, e);
    }
    entries.len() > taken
}

/// TPM2_GetCapability.
pub(crate) fn get_capability(
    sim: &mut Sim,
    cmd: &mut Command<'_>,
    reply: &mut Reply,
) -> TpmResult<()> {
    let p = &mut cmd.params;
    let capability = p.u32().param(1)?;
    // TPM_CAP is checked as it is unmarshalled, before the property is
    // read (TPM_CAP_VENDOR_PROPERTY is a TPM_CAP value, refused later).
    if capability > CAP_ACT && capability != CAP_VENDOR_PROPERTY {
        return Err(ResponseCode::VALUE.with_parameter(1));
    }
    let property = p.u32().param(2)?;
    let count = p.u32().param(3)? as usize;
    p.done()?;

    let mut data = Vec::with_capacity(256);
    data.put_u32(capability);
    let more = match capability {
        TPM_CAP_ALGS => {
            let from: Vec<_> = ALGORITHMS
                .iter()
                .copied()
                .filter(|(alg, _)| u32::from(*alg) >= property)
                .collect();
            write_list(&mut data, &from, count, 6, |o, (alg, attributes)| {
                o.put_u16(alg);
                o.put_u32(attributes);
            })
        }
        TPM_CAP_HANDLES => {
            let handles: Vec<u32> = match property >> 24 {
                0x00 => (0..PCR_COUNT as u32).collect(),
                0x40 => PERMANENT_HANDLES.to_vec(),
                0x80 => (0..TRANSIENT_SLOTS)
                    .filter(|&s| sim.objects[s].is_some())
                    .map(|s| TRANSIENT_FIRST + s as u32)
                    .collect(),
                // NV indices, sessions and persistent objects: none exist.
                0x01 | 0x02 | 0x03 | 0x81 => Vec::new(),
                _ => return Err(ResponseCode::HANDLE.with_parameter(2)),
            };
            let from: Vec<u32> = handles.into_iter().filter(|&h| h >= property).collect();
            write_list(&mut data, &from, count, 4, |o, h| o.put_u32(h))
        }
        TPM_CAP_COMMANDS => {
            let from: Vec<u32> = COMMANDS
                .iter()
                .filter(|s| s.code >= property)
                .map(command_attributes)
                .collect();
            write_list(&mut data, &from, count, 4, |o, a| o.put_u32(a))
        }
        CAP_PP_COMMANDS | CAP_AUDIT_COMMANDS | CAP_ECC_CURVES => {
            data.put_u32(0);
            false
        }
        CAP_AUTH_POLICIES => {
            if property >> 24 != 0x40 {
                return Err(ResponseCode::VALUE.with_parameter(2));
            }
            // No hierarchy has an authorization policy: each reports a
            // TPMT_HA of TPM_ALG_NULL.
            let from: Vec<u32> = POLICY_HIERARCHIES
                .iter()
                .copied()
                .filter(|&h| h >= property)
                .collect();
            write_list(&mut data, &from, count, 6, |o, h| {
                o.put_u32(h);
                o.put_u16(TPM_ALG_NULL);
            })
        }
        CAP_ACT => {
            if !(ACT_FIRST..=ACT_LAST).contains(&property) {
                return Err(ResponseCode::VALUE.with_parameter(2));
            }
            data.put_u32(0);
            false
        }
        TPM_CAP_PCRS => {
            if property != 0 {
                return Err(ResponseCode::VALUE.with_parameter(2));
            }
            let banks: Vec<PcrSelection> = BANKS
                .iter()
                .map(|&hash| PcrSelection {
                    hash,
                    bitmap: [0xFF; PCR_SELECT_SIZE],
                })
                .collect();
            let taken = banks.len().min(count);
            write_pcr_selection(&mut data, &banks[..taken]);
            taken < banks.len()
        }
        TPM_CAP_TPM_PROPERTIES => {
            // A request answers from one group only: PT_FIXED (below
            // PT_VAR) or PT_VAR, as libtpms and the reference code do.
            let group = if property < PT_VAR {
                0..PT_VAR
            } else {
                PT_VAR..u32::MAX
            };
            let from: Vec<(u32, u32)> = properties(sim)
                .into_iter()
                .filter(|(tag, _)| *tag >= property && group.contains(tag))
                .collect();
            write_list(&mut data, &from, count, 8, |o, (tag, value)| {
                o.put_u32(tag);
                o.put_u32(value);
            })
        }
        CAP_PCR_PROPERTIES => {
            let from: Vec<_> = pcr_properties()
                .into_iter()
                .filter(|(tag, _)| *tag >= property)
                .collect();
            write_list(&mut data, &from, count, 8, |o, (tag, bitmap)| {
                o.put_u32(tag);
                o.put_u8(PCR_SELECT_SIZE as u8);
                o.extend_from_slice(&bitmap);
            })
        }
        _ => return Err(ResponseCode::VALUE.with_parameter(1)),
    };
    reply.params.put_u8(u8::from(more));
    reply.params.extend_from_slice(&data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_table_is_sorted() {
        for pair in ALGORITHMS.windows(2) {
            assert!(pair[0].0 < pair[1].0);
        }
        for pair in PERMANENT_HANDLES.windows(2) {
            assert!(pair[0] < pair[1]);
        }
    }

    #[test]
    fn property_table_is_sorted() {
        let sim = Sim::new(crate::SimConfig {
            rng_seed: Some([0; 32]),
            ..Default::default()
        })
        .unwrap();
        let props = properties(&sim);
        for pair in props.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{:#x}", pair[1].0);
        }
    }
}
