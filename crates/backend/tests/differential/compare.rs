//! Comparing two responses to the same command.
//!
//! Response codes must be equal. Successful bodies must be equal byte for
//! byte, except where a TPM legitimately answers with its own secrets or
//! random numbers (masked here), and for TPM_CAP_* data, where only what
//! the simulator claims is held against libtpms.

use super::corpus::Body;
use super::deviations::Deviation;

/// TPM_RC of a response.
pub fn rc(response: &[u8]) -> u32 {
    response
        .get(6..10)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(u32::MAX)
}

/// The result of comparing one command's two responses.
#[derive(Debug)]
pub enum Verdict {
    /// Both TPMs answered alike.
    Agree,
    /// They differ in a way the deviation list explains.
    Deviation(&'static Deviation),
    /// They differ and nothing explains it.
    Disagree(String),
}

/// One command as both TPMs answered it.
pub struct Exchange<'a> {
    pub sequence: &'a str,
    pub label: &'a str,
    pub locality: u8,
    pub command: &'a [u8],
    pub body: Body,
    pub sim: &'a [u8],
    pub tpm: &'a [u8],
}

impl Exchange<'_> {
    pub fn code(&self) -> u32 {
        self.command
            .get(6..10)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0)
    }

    pub fn sim_rc(&self) -> u32 {
        rc(self.sim)
    }

    pub fn tpm_rc(&self) -> u32 {
        rc(self.tpm)
    }
}

/// Compares one exchange, consulting `deviations` for any difference.
pub fn judge(x: &Exchange<'_>, deviations: &'static [Deviation]) -> Verdict {
    let difference = difference(x);
    match difference {
        None => Verdict::Agree,
        Some(why) => match deviations.iter().find(|d| (d.applies)(x)) {
            Some(d) => Verdict::Deviation(d),
            None => Verdict::Disagree(why),
        },
    }
}

/// What differs between the two responses, if anything.
pub fn difference(x: &Exchange<'_>) -> Option<String> {
    let (sim_rc, tpm_rc) = (x.sim_rc(), x.tpm_rc());
    if sim_rc != tpm_rc {
        return Some(format!(
            "response code: sim {sim_rc:#x}, libtpms {tpm_rc:#x}"
        ));
    }
    if sim_rc != 0 {
        return (x.sim != x.tpm).then(|| "error responses differ".to_string());
    }
    match x.body {
        Body::Code => None,
        Body::Exact => (x.sim != x.tpm).then(|| "bodies differ".to_string()),
        Body::Random | Body::Key => {
            let sim = masked(x.code(), x.sim);
            let tpm = masked(x.code(), x.tpm);
            match (sim, tpm) {
                (Some(s), Some(t)) if s == t => None,
                (Some(_), Some(_)) => Some("bodies differ outside the masked fields".into()),
                _ => Some("a body does not parse".into()),
            }
        }
        Body::Capability => capability::compare(x.command, x.sim, x.tpm).err(),
    }
}

/// A little cursor that records which byte ranges to mask.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    mask: Vec<(usize, usize)>,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], at: usize) -> Self {
        Self {
            bytes,
            at,
            mask: Vec::new(),
        }
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.bytes.get(self.at..self.at + 2)?;
        self.at += 2;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.bytes.get(self.at..self.at + 4)?;
        self.at += 4;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.bytes.get(self.at..self.at + n)?;
        self.at += n;
        Some(())
    }
    /// A TPM2B whose contents are kept.
    fn tpm2b(&mut self) -> Option<()> {
        let n = usize::from(self.u16()?);
        self.skip(n)
    }
    /// A TPM2B whose contents differ between TPMs (its size does not).
    fn secret_tpm2b(&mut self) -> Option<()> {
        let n = usize::from(self.u16()?);
        self.mask.push((self.at, n));
        self.skip(n)
    }
    /// A TPM2B_NAME: the algorithm is kept, the digest masked.
    fn name(&mut self) -> Option<()> {
        let n = usize::from(self.u16()?);
        if n >= 2 {
            self.mask.push((self.at + 2, n - 2));
        }
        self.skip(n)
    }
    /// A TPM2B_PUBLIC of a SYMCIPHER key: the unique field is masked.
    fn public(&mut self) -> Option<()> {
        let n = usize::from(self.u16()?);
        let end = self.at + n;
        self.u16()?; // type
        self.u16()?; // nameAlg
        self.u32()?; // objectAttributes
        self.tpm2b()?; // authPolicy
        if self.u16()? != 0x0010 {
            self.u16()?; // keyBits
            self.u16()?; // mode
        }
        self.secret_tpm2b()?; // unique
        (self.at == end).then_some(())
    }
    fn finish(self) -> Option<Vec<u8>> {
        let mut out = self.bytes.to_vec();
        for (start, len) in self.mask {
            out[start..start + len].iter_mut().for_each(|b| *b = 0);
        }
        Some(out)
    }
}

/// `response` with the fields that legitimately differ between two TPMs
/// zeroed: random bytes, key material, names and ticket HMACs.
fn masked(code: u32, response: &[u8]) -> Option<Vec<u8>> {
    let mut c = Cursor::new(response, 10);
    match code {
        // GetRandom: TPM2B_DIGEST randomBytes.
        0x17B => c.secret_tpm2b()?,
        // CreatePrimary: handle, parameterSize, outPublic, creationData,
        // creationHash, creationTicket, name.
        0x131 => {
            c.u32()?;
            c.u32()?;
            c.public()?;
            c.tpm2b()?;
            c.tpm2b()?;
            c.u16()?;
            c.u32()?;
            c.secret_tpm2b()?;
            c.name()?;
        }
        // ReadPublic: outPublic, name, qualifiedName.
        0x173 => {
            c.public()?;
            c.name()?;
            c.name()?;
        }
        _ => return None,
    }
    c.finish()
}

/// TPMS_CAPABILITY_DATA.
pub mod capability {
    /// Properties added after libtpms 0.9's library version (1.59): the
    /// firmware SVNs (1.83) and TPM_PT_ML_PARAMETER_SETS (1.85).
    const NEWER_PROPERTIES: [u32; 3] = [0x12F, 0x130, 0x131];
    /// Properties whose values both TPMs must share at a 4096-byte buffer:
    /// family, level, input buffer, PCR count and select size, command and
    /// response size, largest digest, capability buffer.
    const SHARED_VALUES: [u32; 9] = [
        0x100, 0x101, 0x10D, 0x112, 0x113, 0x11E, 0x11F, 0x120, 0x12E,
    ];
    /// v1.85 algorithms and commands libtpms 0.9 cannot know.
    const PQC_ALGORITHMS: [u32; 3] = [0xA0, 0xA1, 0xA2];
    fn pqc_command(code: u32) -> bool {
        (0x1A3..=0x1AA).contains(&code)
    }

    struct Data {
        more: bool,
        capability: u32,
        rest: Vec<u8>,
    }

    fn parse(response: &[u8]) -> Result<Data, String> {
        let b = response.get(10..).ok_or("short response")?;
        if b.len() < 5 {
            return Err("short capability data".into());
        }
        Ok(Data {
            more: b[0] != 0,
            capability: u32::from_be_bytes([b[1], b[2], b[3], b[4]]),
            rest: b[5..].to_vec(),
        })
    }

    fn words(rest: &[u8], width: usize) -> Result<Vec<Vec<u8>>, String> {
        let count =
            u32::from_be_bytes(rest.get(..4).ok_or("no count")?.try_into().unwrap()) as usize;
        let body = &rest[4..];
        if body.len() != count * width {
            return Err(format!(
                "{count} entries of {width} bytes in {} bytes",
                body.len()
            ));
        }
        Ok(body.chunks(width).map(<[u8]>::to_vec).collect())
    }

    fn be(b: &[u8]) -> u32 {
        b.iter().fold(0u32, |a, &x| a << 8 | u32::from(x))
    }

    /// Compares two GetCapability answers to the same request.
    pub fn compare(command: &[u8], sim: &[u8], tpm: &[u8]) -> Result<(), String> {
        let property = command.get(14..18).map(be).unwrap_or(0);
        let s = parse(sim)?;
        let t = parse(tpm)?;
        if s.capability != t.capability {
            return Err("capability differs".into());
        }
        match s.capability {
            // TPM_CAP_ALGS / TPM_CAP_COMMANDS: every entry the sim claims,
            // apart from v1.85 additions, must be libtpms' entry.
            0 | 2 => {
                let width = if s.capability == 0 { 6 } else { 4 };
                let key = |e: &[u8]| {
                    if width == 6 {
                        be(&e[..2])
                    } else {
                        be(e) & 0xFFFF
                    }
                };
                let sim = words(&s.rest, width)?;
                let tpm = words(&t.rest, width)?;
                let last = tpm.last().map(|e| key(e));
                for e in &sim {
                    let k = key(e);
                    let newer = if width == 6 {
                        PQC_ALGORITHMS.contains(&k)
                    } else {
                        pqc_command(k)
                    };
                    if newer {
                        continue;
                    }
                    match tpm.iter().find(|x| key(x) == k) {
                        Some(x) if x == e => {}
                        Some(x) => {
                            return Err(format!(
                                "{k:#x}: sim {:#x}, libtpms {:#x}",
                                be(&e[width - 4..]),
                                be(&x[width - 4..])
                            ))
                        }
                        None if t.more && last.is_some_and(|l| k > l) => {}
                        None => return Err(format!("sim lists {k:#x}, libtpms does not")),
                    }
                }
                Ok(())
            }
            // TPM_CAP_HANDLES: permanent handles the sim lists must exist in
            // libtpms; every other range must be equal.
            1 => {
                let sim = words(&s.rest, 4)?;
                let tpm = words(&t.rest, 4)?;
                // libtpms also has TPM_RH_PLATFORM_NV (0x4000000D), a
                // hierarchy the sim, without NV indices, lacks: hold only
                // the sim's handles against it.
                if property >> 24 == 0x40 {
                    match sim.iter().find(|h| !tpm.contains(h)) {
                        Some(h) => Err(format!("sim lists {:#x}, libtpms does not", be(h))),
                        None => Ok(()),
                    }
                } else if sim != tpm || s.more != t.more {
                    Err(format!(
                        "handles: sim {sim:02x?} more {}, libtpms {tpm:02x?} more {}",
                        s.more, t.more
                    ))
                } else {
                    Ok(())
                }
            }
            // TPM_CAP_PCRS: each bank the sim allocates is allocated alike.
            5 => {
                let banks = |rest: &[u8]| -> Result<Vec<(u16, Vec<u8>)>, String> {
                    let n = be(rest.get(..4).ok_or("no count")?) as usize;
                    let mut at = 4;
                    let mut out = Vec::new();
                    for _ in 0..n {
                        let hash = be(rest.get(at..at + 2).ok_or("short")?) as u16;
                        let size = usize::from(*rest.get(at + 2).ok_or("short")?);
                        out.push((
                            hash,
                            rest.get(at + 3..at + 3 + size).ok_or("short")?.to_vec(),
                        ));
                        at += 3 + size;
                    }
                    Ok(out)
                };
                let tpm = banks(&t.rest)?;
                for bank in banks(&s.rest)? {
                    if !tpm.contains(&bank) {
                        return Err(format!("bank {:#x} differs", bank.0));
                    }
                }
                Ok(())
            }
            // TPM_CAP_TPM_PROPERTIES: the same tags (apart from newer
            // ones), and the same values where both must share them.
            6 => {
                let sim = words(&s.rest, 8)?;
                let tpm = words(&t.rest, 8)?;
                let kept: Vec<_> = sim
                    .iter()
                    .filter(|e| !NEWER_PROPERTIES.contains(&be(&e[..4])))
                    .collect();
                let filtered = kept.len() != sim.len();
                let tags = |v: &[&Vec<u8>]| v.iter().map(|e| be(&e[..4])).collect::<Vec<_>>();
                let tpm_refs: Vec<&Vec<u8>> = tpm.iter().collect();
                let (st, tt) = (tags(&kept), tags(&tpm_refs));
                // In PT_FIXED the sim's newer tags come last: they may set
                // its moreData where libtpms' list has ended.
                let fixed = property < 0x200;
                let same_tags = if filtered {
                    tt.starts_with(&st)
                } else {
                    st == tt && (fixed || s.more == t.more)
                };
                if !same_tags {
                    return Err(format!(
                        "property tags: sim {st:x?} more {}, libtpms {tt:x?} more {}",
                        s.more, t.more
                    ));
                }
                for e in kept {
                    let tag = be(&e[..4]);
                    if SHARED_VALUES.contains(&tag) {
                        let theirs = tpm.iter().find(|x| be(&x[..4]) == tag).expect("same tags");
                        if theirs != e {
                            return Err(format!(
                                "property {tag:#x}: sim {:#x}, libtpms {:#x}",
                                be(&e[4..]),
                                be(&theirs[4..])
                            ));
                        }
                    }
                }
                Ok(())
            }
            // Everything else (PCR properties, PP and audit lists, curves):
            // equal.
            _ => {
                if s.more == t.more && s.rest == t.rest {
                    Ok(())
                } else {
                    Err(format!(
                        "capability {:#x}: sim {} more {}, libtpms {} more {}",
                        s.capability,
                        super::super::oracle::hex(&s.rest),
                        s.more,
                        super::super::oracle::hex(&t.rest),
                        t.more
                    ))
                }
            }
        }
    }
}
