//! Every known, reasoned difference between vtpm-sim and libtpms 0.9.2.
//!
//! Each entry matches only the exchanges it explains (by command and by
//! both response codes), so a new difference fails the suite. Each id
//! appears in the "Deviations from libtpms" table of crates/sim/README.md.

use super::compare::Exchange;

/// A documented deviation.
pub struct Deviation {
    /// Short id, as in the sim README's table.
    pub id: &'static str,
    /// Why the simulator answers differently.
    pub reason: &'static str,
    /// True for the exchanges this deviation explains.
    pub applies: fn(&Exchange<'_>) -> bool,
}

impl std::fmt::Debug for Deviation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.id)
    }
}

/// TPM_RC_LOCKOUT.
const LOCKOUT: u32 = 0x921;
/// TPM_RC_HASH + parameter 1.
const HASH_P1: u32 = 0x1C3;
/// TPM_RC_SIZE + parameter 1.
const SIZE_P1: u32 = 0x1D5;

/// The TPML count and the hash algorithms of a PCR_Read selection or a
/// PCR_Extend digest list, as far as the bytes go.
fn hash_list(x: &Exchange<'_>) -> Option<(u32, Vec<u16>)> {
    let c = x.command;
    let be16 = |at: usize| c.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let be32 = |at: usize| {
        c.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (mut at, read) = match x.code() {
        0x17E => (10, true),
        // PCR_Extend: handle, authorization area, then the list.
        0x182 => (18 + be32(14)? as usize, false),
        _ => return None,
    };
    let count = be32(at)?;
    at += 4;
    let mut hashes = Vec::new();
    while let Some(hash) = be16(at) {
        hashes.push(hash);
        at += 2 + if read {
            // A selection cut short ends the list, not the answer.
            let Some(&size) = c.get(at + 2) else {
                break;
            };
            1 + usize::from(size)
        } else {
            match hash {
                0x0004 => 20,
                0x000C => 48,
                0x000D => 64,
                _ => 32,
            }
        };
    }
    Some((count, hashes))
}

/// The list.
pub const DEVIATIONS: &[Deviation] = &[
    Deviation {
        id: "pcr-banks",
        reason: "the sim implements SHA-256, SHA-384 and SHA-512 and allocates PCR banks for \
                 SHA-256 and SHA-384; libtpms 0.9 also implements SHA-1 and allocates all four \
                 banks, so a SHA-1 algorithm is TPM_RC_HASH, a SHA-512 bank reads empty, a \
                 list of four digests is TPM_RC_SIZE here, and a dynamic launch (one PCR 17 \
                 extend per allocated bank) moves pcrUpdateCounter by 2 rather than 4",
        applies: |x| {
            let (s, t) = (x.sim_rc(), x.tpm_rc());
            let Some((count, hashes)) = hash_list(x) else {
                return false;
            };
            // SHA-1 is no hash here; four entries exceed the sim's HASH_COUNT.
            (s == HASH_P1 && hashes.contains(&0x0004))
                || (s == SIZE_P1 && count == 4)
                || (s == 0 && t == 0 && x.code() == 0x17E && hashes.contains(&0x000D))
                // A dynamic launch extends PCR 17 once per allocated bank:
                // pcrUpdateCounter moves by 2 here, by 4 in libtpms; the
                // PCR values themselves must agree.
                || (s == 0
                    && t == 0
                    && x.code() == 0x17E
                    && x.sequence.starts_with("dynamic launch")
                    && x.sim.len() == x.tpm.len()
                    && x.sim.get(14..) == x.tpm.get(14..))
        },
    },
    Deviation {
        id: "context-integrity-hash",
        reason: "the sim's context-integrity hash (TPM_PT_CONTEXT_HASH) is SHA-256, libtpms' \
                 SHA-512: an authorization value may hold 32 bytes here and 64 there, and a \
                 creation ticket's HMAC is 32 bytes here and 64 there",
        applies: |x| {
            let (s, t) = (x.sim_rc(), x.tpm_rc());
            match x.code() {
                // HierarchyChangeAuth with a newAuth of 33 to 64 bytes.
                0x129 if s == SIZE_P1 && t == 0 => true,
                0x131 if s == 0 && t == 0 => x.tpm.len() == x.sim.len() + 32,
                _ => false,
            }
        },
    },
    Deviation {
        id: "no-dictionary-lockout",
        reason: "the sim counts no authorization failures and never enters lockout; libtpms \
                 locks TPM_RH_LOCKOUT out after one failure and answers TPM_RC_LOCKOUT",
        applies: |x| x.tpm_rc() == LOCKOUT && x.sim_rc() != LOCKOUT,
    },
    Deviation {
        id: "newer-structure-tags",
        reason: "TPM_ST_ATTEST_NV_DIGEST (0x801C), TPM_ST_MESSAGE_VERIFIED (0x8026), \
                 TPM_ST_DIGEST_VERIFIED (0x8027) and TPM_ST_FU_MANIFEST (0x8029) are structure \
                 tags of later library versions: as a command tag the sim answers \
                 TPM_RC_BAD_TAG, libtpms 0.9, which does not know them, TPM_RC_VALUE",
        applies: |x| {
            matches!(x.command.get(..2), Some([0x80, 0x1C | 0x26 | 0x27 | 0x29]))
                && x.sim_rc() == 0x01E
                && x.tpm_rc() == 0x084
        },
    },
    Deviation {
        id: "transient-slots",
        reason: "the sim has eight transient object slots (0x80000000-0x80000007), libtpms \
                 three: a handle 0x80000003-0x80000007 names an empty slot here \
                 (TPM_RC_REFERENCE_H0, TPM_RC_HANDLE) and is out of range there (TPM_RC_VALUE)",
        applies: |x| {
            let first = x
                .command
                .get(10..14)
                .map(|b| u32::from_be_bytes(b.try_into().unwrap()));
            matches!(first, Some(0x8000_0003..=0x8000_0007))
                && x.tpm_rc() & 0x0BF == 0x084
                && x.sim_rc() != x.tpm_rc()
        },
    },
    Deviation {
        id: "unimplemented-commands",
        reason: "the sim implements a subset of TPM 2.0 (its README lists it): a command only \
                 libtpms implements is TPM_RC_COMMAND_CODE here and runs (or fails later) there",
        applies: |x| x.sim_rc() == 0x143 && x.tpm_rc() != 0x143,
    },
    Deviation {
        id: "v185-pqc-commands",
        reason: "libtpms 0.9 predates TPM 2.0 v1.85: the post-quantum commands the sim \
                 implements (VerifySequenceComplete 0x1A3 to SignSequenceStart 0x1AA) are \
                 TPM_RC_COMMAND_CODE there and run (or fail later, e.g. before Startup) here",
        applies: |x| {
            x.tpm_rc() == 0x143 && x.sim_rc() != 0x143 && (0x1A3..=0x1AA).contains(&x.code())
        },
    },
    Deviation {
        id: "no-ecc-audit-pp",
        reason: "the sim has no ECC, no command audit and no physical-presence commands, so \
                 TPM_CAP_ECC_CURVES, TPM_CAP_AUDIT_COMMANDS and TPM_CAP_PP_COMMANDS are empty \
                 lists where libtpms lists its curves, TPM2_SetCommandCodeAuditStatus and \
                 TPM2_PP_Commands",
        applies: |x| {
            let capability = x
                .command
                .get(10..14)
                .map(|b| u32::from_be_bytes(b.try_into().unwrap()));
            x.code() == 0x17A
                && matches!(capability, Some(3 | 4 | 8))
                && x.sim_rc() == 0
                && x.tpm_rc() == 0
                // moreData clear, the same capability, an empty list.
                && x.sim.get(10..) == Some(&[&[0u8][..], &x.command[10..14], &[0, 0, 0, 0]].concat()[..])
        },
    },
];
