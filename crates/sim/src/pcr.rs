//! Platform Configuration Registers: 24 PCRs in a SHA-256 and a SHA-384
//! bank, with the PC Client locality rules.

use crate::crypto::HashAlg;

/// Number of PCRs in each bank.
pub(crate) const PCR_COUNT: usize = 24;
/// Bytes of a PCR selection bitmap for 24 PCRs (TPM_PT_PCR_SELECT_MIN).
pub(crate) const PCR_SELECT_SIZE: usize = 3;
/// The allocated banks, in TPM_ALG_ID order.
pub(crate) const BANKS: [HashAlg; 2] = [HashAlg::Sha256, HashAlg::Sha384];

/// What a PCR allows, as bit masks over localities (bit n = locality n).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PcrAttributes {
    /// Localities from which TPM2_PCR_Reset may reset the PCR.
    pub(crate) reset: u8,
    /// Localities from which TPM2_PCR_Extend may extend the PCR.
    pub(crate) extend: u8,
    /// Preserved across Shutdown(STATE) / Startup(STATE).
    pub(crate) saved: bool,
    /// Changes do not increment pcrUpdateCounter (the debug PCR).
    pub(crate) no_increment: bool,
    /// Starts as all ones after a TPM Reset (the DRTM PCRs, reset to zero
    /// only by a dynamic launch).
    pub(crate) starts_as_ones: bool,
}

const fn static_rtm() -> PcrAttributes {
    PcrAttributes {
        reset: 0,
        extend: 0x1F,
        saved: true,
        no_increment: false,
        starts_as_ones: false,
    }
}

const fn resettable(reset: u8, extend: u8, starts_as_ones: bool) -> PcrAttributes {
    PcrAttributes {
        reset,
        extend,
        saved: false,
        no_increment: false,
        starts_as_ones,
    }
}

/// The PCR attribute table of the TCG PC Client Platform TPM Profile, as
/// the TCG reference implementation encodes it:
///
/// | PCR | reset from | extend from | after TPM Reset | counted |
/// |---|---|---|---|---|
/// | 0–15 | never | 0–4 | zeros (PCR 0: 3 when Startup came from locality 3) | yes |
/// | 16 (debug) | 0–3 | 0–4 | zeros | no |
/// | 17, 18 | 4 | 2–4 | ones | yes |
/// | 19 | 4 | 2–3 | ones | yes |
/// | 20 | 2, 4 | 1–3 | ones | yes |
/// | 21, 22 | 2, 4 | 2 | ones | no |
/// | 23 (application) | 0–3 | 0–4 | zeros | no |
///
/// "Reset from 4" is what TPM_PT_PCR_RESET_L4 reports, and what a dynamic
/// launch does; TPM2_PCR_Reset itself is refused at locality 4 (see
/// [`PCR_RESET_LOCALITY_4`]).
pub(crate) const PCR_ATTRIBUTES: [PcrAttributes; PCR_COUNT] = {
    let mut t = [static_rtm(); PCR_COUNT];
    t[16] = PcrAttributes {
        no_increment: true,
        ..resettable(0x0F, 0x1F, false)
    };
    // libtpms 0.9 leaves pcrUpdateCounter alone for 21-23 as for 16
    // (TPM_PT_PCR_NO_INCREMENT 16, 21, 22, 23).
    t[17] = resettable(0x10, 0x1C, true);
    t[18] = resettable(0x10, 0x1C, true);
    t[19] = resettable(0x10, 0x0C, true);
    t[20] = resettable(0x14, 0x0E, true);
    t[21] = PcrAttributes {
        no_increment: true,
        ..resettable(0x14, 0x04, true)
    };
    t[22] = PcrAttributes {
        no_increment: true,
        ..resettable(0x14, 0x04, true)
    };
    t[23] = PcrAttributes {
        no_increment: true,
        ..resettable(0x0F, 0x1F, false)
    };
    t
};

/// Whether TPM2_PCR_Reset works at locality 4. It does not: a TPM that
/// supports DRTM resets PCRs 17–22 at locality 4 only through the
/// _TPM_Hash_Start sequence (reference code `PCRIsResetAllowed`, libtpms).
pub(crate) const PCR_RESET_LOCALITY_4: bool = false;

/// What a state blob keeps of [`Pcrs`].
pub(crate) struct SavedPcrs {
    /// Every value of both banks, then pcrUpdateCounter (big-endian).
    pub(crate) values: Vec<u8>,
    /// [`Pcrs::startup_locality3`].
    pub(crate) startup_locality3: bool,
}

/// The PCR values of both banks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pcrs {
    sha256: [[u8; 32]; PCR_COUNT],
    sha384: [[u8; 48]; PCR_COUNT],
    /// pcrUpdateCounter.
    pub(crate) update_counter: u32,
    /// TPM2_Startup came from locality 3; a Resume must then come from
    /// locality 3 as well (the reference code keeps it in orderlyState
    /// across Shutdown(STATE)). The state blob carries it.
    pub(crate) startup_locality3: bool,
}

impl Pcrs {
    /// PCRs as a TPM Reset leaves them when Startup came from `locality`.
    pub(crate) fn after_reset(locality: u8) -> Self {
        let mut p = Self {
            sha256: [[0; 32]; PCR_COUNT],
            sha384: [[0; 48]; PCR_COUNT],
            update_counter: 0,
            startup_locality3: locality == 3,
        };
        for (i, attributes) in PCR_ATTRIBUTES.iter().enumerate() {
            if attributes.starts_as_ones {
                p.sha256[i] = [0xFF; 32];
                p.sha384[i] = [0xFF; 48];
            }
        }
        // PC Client: a Startup from locality 3 (an H-CRTM-less platform
        // that started at locality 3) leaves 3 in PCR 0.
        if locality == 3 {
            p.sha256[0][31] = 3;
            p.sha384[0][47] = 3;
        }
        p
    }

    /// The value of PCR `index` in `bank`, or `None` for a bank that is not
    /// allocated.
    pub(crate) fn value(&self, bank: HashAlg, index: usize) -> Option<&[u8]> {
        match bank {
            HashAlg::Sha256 => self.sha256.get(index).map(|v| &v[..]),
            HashAlg::Sha384 => self.sha384.get(index).map(|v| &v[..]),
            HashAlg::Sha512 => None,
        }
    }

    fn slot(&mut self, bank: HashAlg, index: usize) -> Option<&mut [u8]> {
        match bank {
            HashAlg::Sha256 => self.sha256.get_mut(index).map(|v| &mut v[..]),
            HashAlg::Sha384 => self.sha384.get_mut(index).map(|v| &mut v[..]),
            HashAlg::Sha512 => None,
        }
    }

    /// PCR[index] = H(PCR[index] ‖ digest) in `bank`; digests for banks
    /// that are not allocated are ignored, as a TPM does. Each extended
    /// bank is one change of pcrUpdateCounter (reference code `PCRExtend`).
    pub(crate) fn extend(&mut self, index: usize, bank: HashAlg, digest: &[u8]) {
        let Some(slot) = self.slot(bank, index) else {
            return;
        };
        let new = bank.digest(&[slot, digest]);
        slot.copy_from_slice(&new);
        self.count_change(index);
    }

    /// Sets PCR `index` to zero in every bank.
    pub(crate) fn reset(&mut self, index: usize) {
        for bank in BANKS {
            if let Some(slot) = self.slot(bank, index) {
                slot.fill(0);
            }
        }
    }

    /// Counts a change of PCR `index`.
    pub(crate) fn count_change(&mut self, index: usize) {
        if !PCR_ATTRIBUTES.get(index).is_some_and(|a| a.no_increment) {
            self.update_counter = self.update_counter.wrapping_add(1);
        }
    }

    /// After Startup(STATE): the saved PCRs come back from `saved`, the
    /// others start as after a reset.
    pub(crate) fn resume(saved: &Pcrs, locality: u8) -> Self {
        let mut p = Self::after_reset(locality);
        for (i, attributes) in PCR_ATTRIBUTES.iter().enumerate() {
            if attributes.saved {
                p.sha256[i] = saved.sha256[i];
                p.sha384[i] = saved.sha384[i];
            }
        }
        p.update_counter = saved.update_counter;
        p.count_startup_changes(true);
        p
    }

    /// Counts, as changes, the PCRs a Startup set to their initial values:
    /// every PCR, or on a Resume those not saved (reference code
    /// `PCRStartup`; a fresh libtpms reads pcrUpdateCounter 20).
    pub(crate) fn count_startup_changes(&mut self, resumed: bool) {
        for (i, attributes) in PCR_ATTRIBUTES.iter().enumerate() {
            if !(resumed && attributes.saved) {
                self.count_change(i);
            }
        }
    }

    /// Serialised form for a state blob: every value of both banks, then
    /// the counter (what [`Pcrs::from_bytes`] reads), and the start-up locality class,
    /// which the blob keeps in a section of its own. Destructures every
    /// field, so a field added here must be saved to compile.
    pub(crate) fn to_saved(&self) -> SavedPcrs {
        let Self {
            sha256,
            sha384,
            update_counter,
            startup_locality3,
        } = self;
        let mut values = Vec::with_capacity(Self::SERIALIZED_SIZE);
        for v in sha256 {
            values.extend_from_slice(v);
        }
        for v in sha384 {
            values.extend_from_slice(v);
        }
        values.extend_from_slice(&update_counter.to_be_bytes());
        SavedPcrs {
            values,
            startup_locality3: *startup_locality3,
        }
    }

    /// Size of [`SavedPcrs::values`].
    pub(crate) const SERIALIZED_SIZE: usize = PCR_COUNT * (32 + 48) + 4;

    /// The inverse of [`SavedPcrs::values`]; `None` on a wrong length.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::SERIALIZED_SIZE {
            return None;
        }
        let mut p = Self::after_reset(0);
        let (a, rest) = bytes.split_at(PCR_COUNT * 32);
        let (b, counter) = rest.split_at(PCR_COUNT * 48);
        for (dst, src) in p.sha256.iter_mut().zip(a.chunks_exact(32)) {
            dst.copy_from_slice(src);
        }
        for (dst, src) in p.sha384.iter_mut().zip(b.chunks_exact(48)) {
            dst.copy_from_slice(src);
        }
        p.update_counter = u32::from_be_bytes(counter.try_into().ok()?);
        Some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_values_follow_the_table() {
        let p = Pcrs::after_reset(0);
        assert_eq!(p.value(HashAlg::Sha256, 0).unwrap(), &[0; 32]);
        assert_eq!(p.value(HashAlg::Sha384, 17).unwrap(), &[0xFF; 48]);
        assert_eq!(p.value(HashAlg::Sha256, 23).unwrap(), &[0; 32]);
        assert!(p.value(HashAlg::Sha512, 0).is_none());
        let p3 = Pcrs::after_reset(3);
        assert_eq!(p3.value(HashAlg::Sha256, 0).unwrap()[31], 3);
    }

    #[test]
    fn serialisation_round_trips() {
        let mut p = Pcrs::after_reset(0);
        p.extend(5, HashAlg::Sha384, &[1; 48]);
        p.count_change(5);
        let back = Pcrs::from_bytes(&p.to_saved().values).unwrap();
        assert_eq!(back, p);
        // The start-up locality class travels beside the values.
        let p3 = Pcrs::after_reset(3);
        let saved = p3.to_saved();
        assert!(saved.startup_locality3);
        let mut back = Pcrs::from_bytes(&saved.values).unwrap();
        assert!(!back.startup_locality3);
        back.startup_locality3 = saved.startup_locality3;
        assert_eq!(back, p3);
        assert!(Pcrs::from_bytes(&[0; 3]).is_none());
    }
}
