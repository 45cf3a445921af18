//! The corpus: command sequences for everything vtpm-sim and libtpms both
//! implement, with their error paths. Each sequence starts from a freshly
//! manufactured TPM that is powered on and waiting for TPM2_Startup.

use vtpm_wire::consts::{
    TPM_ALG_AES, TPM_ALG_CFB, TPM_ALG_NULL, TPM_ALG_SHA1, TPM_ALG_SHA256, TPM_ALG_SHA384,
    TPM_ALG_SHA512, TPM_ALG_SYMCIPHER, TPM_RH_ENDORSEMENT, TPM_RH_NULL, TPM_RH_OWNER,
    TPM_RH_PLATFORM, TPM_RS_PW, TPM_ST_NO_SESSIONS, TPM_ST_SESSIONS, TPM_SU_CLEAR, TPM_SU_STATE,
};
use vtpm_wire::{cc, CommandBuilder};

/// TPM_RH_LOCKOUT.
pub const TPM_RH_LOCKOUT: u32 = 0x4000_000A;
/// TPM_CC_HierarchyChangeAuth.
pub const HIERARCHY_CHANGE_AUTH: u32 = 0x129;
/// The first transient handle both TPMs hand out.
pub const TRANSIENT: u32 = 0x8000_0000;

/// How much of a successful response must agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Every byte.
    Exact,
    /// Random bytes: the same structure and lengths.
    Random,
    /// TPMS_CAPABILITY_DATA, compared where both can agree.
    Capability,
    /// Only the response code (generated mutations).
    Code,
    /// A key's creation or public area: the same handle, lengths and
    /// public-area fields, apart from the unique field that depends on
    /// each TPM's seeds.
    Key,
}

/// One step of a sequence.
#[derive(Debug, Clone)]
pub enum Step {
    /// A command at a locality.
    Command {
        label: String,
        locality: u8,
        bytes: Vec<u8>,
        body: Body,
    },
    /// _TPM_Init on both TPMs.
    PowerCycle,
    /// A dynamic launch (_TPM_Hash_Start, _TPM_Hash_Data with these bytes,
    /// _TPM_Hash_End) on both TPMs.
    DynamicLaunch(Vec<u8>),
}

/// A named list of steps run on fresh TPMs.
#[derive(Debug, Clone)]
pub struct Sequence {
    pub name: String,
    pub steps: Vec<Step>,
}

struct Builder {
    name: String,
    steps: Vec<Step>,
}

impl Builder {
    fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            steps: Vec::new(),
        }
    }

    fn at(mut self, locality: u8, label: impl Into<String>, bytes: Vec<u8>, body: Body) -> Self {
        self.steps.push(Step::Command {
            label: label.into(),
            locality,
            bytes,
            body,
        });
        self
    }

    fn cmd(self, label: impl Into<String>, bytes: Vec<u8>) -> Self {
        self.at(0, label, bytes, Body::Exact)
    }

    fn started(self) -> Self {
        self.cmd("Startup(CLEAR)", startup(TPM_SU_CLEAR))
    }

    fn power_cycle(mut self) -> Self {
        self.steps.push(Step::PowerCycle);
        self
    }

    fn dynamic_launch(mut self, measurement: &[u8]) -> Self {
        self.steps.push(Step::DynamicLaunch(measurement.to_vec()));
        self
    }

    fn done(self) -> Sequence {
        Sequence {
            name: self.name,
            steps: self.steps,
        }
    }
}

// ----- command bytes -------------------------------------------------------

pub fn startup(su: u16) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::STARTUP).u16(su).finish()
}

pub fn shutdown(su: u16) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::SHUTDOWN).u16(su).finish()
}

pub fn self_test(full: u8) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::SELF_TEST).u8(full).finish()
}

pub fn get_random(n: u16) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::GET_RANDOM).u16(n).finish()
}

pub fn get_capability(capability: u32, property: u32, count: u32) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::GET_CAPABILITY)
        .u32(capability)
        .u32(property)
        .u32(count)
        .finish()
}

/// One TPMS_PCR_SELECTION: a hash and its bitmap.
type Bank = (u16, Vec<u8>);

/// A TPML_PCR_SELECTION of `(hash, bitmap)` entries.
fn selection(mut b: CommandBuilder, banks: &[(u16, &[u8])]) -> CommandBuilder {
    b = b.u32(banks.len() as u32);
    for (hash, bitmap) in banks {
        b = b.u16(*hash).u8(bitmap.len() as u8).bytes(bitmap);
    }
    b
}

pub fn pcr_read(banks: &[(u16, &[u8])]) -> Vec<u8> {
    selection(CommandBuilder::no_sessions(cc::PCR_READ), banks).finish()
}

/// A 3-byte bitmap with `pcrs` set.
pub fn bitmap(pcrs: &[u32]) -> Vec<u8> {
    let mut b = vec![0u8; 3];
    for &p in pcrs {
        b[(p / 8) as usize] |= 1 << (p % 8);
    }
    b
}

fn digest_size(hash: u16) -> usize {
    match hash {
        TPM_ALG_SHA1 => 20,
        TPM_ALG_SHA256 => 32,
        TPM_ALG_SHA384 => 48,
        TPM_ALG_SHA512 => 64,
        _ => 32,
    }
}

pub fn pcr_extend(pcr: u32, password: &[u8], hashes: &[u16]) -> Vec<u8> {
    let mut b = CommandBuilder::with_sessions(cc::PCR_EXTEND)
        .u32(pcr)
        .password_session(password)
        .u32(hashes.len() as u32);
    for &h in hashes {
        b = b.u16(h).bytes(&vec![0xA5; digest_size(h)]);
    }
    b.finish()
}

pub fn pcr_reset(pcr: u32) -> Vec<u8> {
    CommandBuilder::with_sessions(cc::PCR_RESET)
        .u32(pcr)
        .password_session(&[])
        .finish()
}

pub fn flush_context(handle: u32) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::FLUSH_CONTEXT)
        .u32(handle)
        .finish()
}

pub fn read_public(handle: u32) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::READ_PUBLIC)
        .u32(handle)
        .finish()
}

pub fn hierarchy_change_auth(hierarchy: u32, password: &[u8], new_auth: &[u8]) -> Vec<u8> {
    CommandBuilder::with_sessions(HIERARCHY_CHANGE_AUTH)
        .u32(hierarchy)
        .password_session(password)
        .tpm2b(new_auth)
        .finish()
}

/// A raw authorization area holding one session.
pub fn session(handle: u32, nonce: &[u8], attributes: u8, hmac: &[u8]) -> Vec<u8> {
    let mut area = Vec::new();
    area.extend_from_slice(&handle.to_be_bytes());
    area.extend_from_slice(&(nonce.len() as u16).to_be_bytes());
    area.extend_from_slice(nonce);
    area.push(attributes);
    area.extend_from_slice(&(hmac.len() as u16).to_be_bytes());
    area.extend_from_slice(hmac);
    let mut out = (area.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&area);
    out
}

/// TPMT_PUBLIC of an AES-128-CFB storage key (restricted decrypt
/// SYMCIPHER): an object type both TPMs implement.
pub fn symcipher_template() -> Vec<u8> {
    CommandBuilder::new(0, 0)
        .u16(TPM_ALG_SYMCIPHER)
        .u16(TPM_ALG_SHA256)
        // fixedTPM | fixedParent | sensitiveDataOrigin | userWithAuth |
        // restricted | decrypt
        .u32(0x0003_0072)
        .tpm2b(&[])
        .u16(TPM_ALG_AES)
        .u16(128)
        .u16(TPM_ALG_CFB)
        .tpm2b(&[])
        .finish()[10..]
        .to_vec()
}

pub fn create_primary(hierarchy: u32, password: &[u8]) -> Vec<u8> {
    CommandBuilder::with_sessions(cc::CREATE_PRIMARY)
        .u32(hierarchy)
        .password_session(password)
        .tpm2b(&[0, 0, 0, 0])
        .tpm2b(&symcipher_template())
        .tpm2b(&[])
        .u32(0)
        .finish()
}

/// `command` with its header size field replaced.
pub fn with_size(mut command: Vec<u8>, size: u32) -> Vec<u8> {
    command[2..6].copy_from_slice(&size.to_be_bytes());
    command
}

/// `command` with its tag replaced.
pub fn with_tag(mut command: Vec<u8>, tag: u16) -> Vec<u8> {
    command[0..2].copy_from_slice(&tag.to_be_bytes());
    command
}

/// The first `len` bytes of `command`, with the size field telling the truth.
pub fn truncated(command: &[u8], len: usize) -> Vec<u8> {
    with_size(command[..len].to_vec(), len as u32)
}

/// A command with a raw body.
pub fn raw(tag: u16, code: u32, body: &[u8]) -> Vec<u8> {
    CommandBuilder::new(tag, code).bytes(body).finish()
}

// ----- sequences -----------------------------------------------------------

/// Every sequence of the corpus.
pub fn all() -> Vec<Sequence> {
    let mut out = Vec::new();
    out.extend(startup_rules());
    out.extend(before_startup());
    out.extend(shutdown_and_resume());
    out.push(self_test_cases());
    out.push(get_random_cases());
    out.extend(get_capability_cases());
    out.extend(pcr_cases());
    out.push(object_cases());
    out.extend(hierarchy_auth_cases());
    out.push(header_cases());
    out
}

fn startup_rules() -> Vec<Sequence> {
    let mut out = Vec::new();
    for locality in 0..=4u8 {
        out.push(
            Builder::new(format!("Startup(CLEAR) from locality {locality}"))
                .at(
                    locality,
                    "Startup(CLEAR)",
                    startup(TPM_SU_CLEAR),
                    Body::Exact,
                )
                .at(locality, "GetRandom(8)", get_random(8), Body::Random)
                // PCR 0 records a locality-3 start-up.
                .cmd(
                    "PCR_Read(SHA256, 0)",
                    pcr_read(&[(TPM_ALG_SHA256, &bitmap(&[0]))]),
                )
                .at(
                    locality,
                    "Startup(CLEAR) again",
                    startup(TPM_SU_CLEAR),
                    Body::Exact,
                )
                .done(),
        );
    }
    for locality in [1u8, 2, 4] {
        out.push(
            Builder::new(format!("parameters before locality at {locality}"))
                .at(locality, "Startup(5)", startup(5), Body::Exact)
                .at(
                    locality,
                    "Startup()",
                    raw(TPM_ST_NO_SESSIONS, cc::STARTUP, &[]),
                    Body::Exact,
                )
                .at(
                    locality,
                    "Startup(STATE) without Shutdown",
                    startup(TPM_SU_STATE),
                    Body::Exact,
                )
                .at(
                    locality,
                    "Startup(CLEAR, pad)",
                    raw(TPM_ST_NO_SESSIONS, cc::STARTUP, &[0, 0, 0]),
                    Body::Exact,
                )
                .cmd("Startup(CLEAR) at 0", startup(TPM_SU_CLEAR))
                .done(),
        );
    }
    out
}

fn before_startup() -> Vec<Sequence> {
    let pcr0 = bitmap(&[0]);
    vec![Builder::new("commands before Startup")
        .cmd("GetRandom", get_random(8))
        .cmd("GetCapability", get_capability(6, 0x100, 1))
        .cmd("PCR_Read", pcr_read(&[(TPM_ALG_SHA256, &pcr0)]))
        .cmd("PCR_Extend", pcr_extend(0, &[], &[TPM_ALG_SHA256]))
        .cmd("Shutdown(CLEAR)", shutdown(TPM_SU_CLEAR))
        .cmd("SelfTest", self_test(1))
        .cmd("FlushContext", flush_context(TRANSIENT))
        .cmd("ReadPublic", read_public(TRANSIENT))
        .cmd(
            "HierarchyChangeAuth",
            hierarchy_change_auth(TPM_RH_OWNER, &[], b"x"),
        )
        .cmd("unknown command code", raw(TPM_ST_NO_SESSIONS, 0x1FF, &[]))
        .cmd("bad tag", with_tag(get_random(8), 0x8003))
        .cmd("size lie", with_size(get_random(8), 13))
        .cmd("Startup(STATE) without Shutdown", startup(TPM_SU_STATE))
        .cmd("Startup(2)", startup(2))
        .cmd(
            "Startup() truncated",
            raw(TPM_ST_NO_SESSIONS, cc::STARTUP, &[0]),
        )
        .cmd(
            "Startup with sessions tag",
            raw(TPM_ST_SESSIONS, cc::STARTUP, &[0, 0]),
        )
        .started()
        .cmd("Startup(CLEAR) again", startup(TPM_SU_CLEAR))
        .cmd("Startup(STATE) after start", startup(TPM_SU_STATE))
        .done()]
}

fn shutdown_and_resume() -> Vec<Sequence> {
    let read = |pcrs: &[u32]| pcr_read(&[(TPM_ALG_SHA256, &bitmap(pcrs))]);
    let saved = [0, 7, 16, 17, 20, 23];
    let mut out = vec![
        Builder::new("Shutdown(STATE) then Resume")
            .started()
            .cmd("PCR_Extend(0)", pcr_extend(0, &[], &[TPM_ALG_SHA256]))
            .cmd("PCR_Extend(16)", pcr_extend(16, &[], &[TPM_ALG_SHA256]))
            .cmd("PCR_Extend(23)", pcr_extend(23, &[], &[TPM_ALG_SHA256]))
            .cmd("Shutdown(5)", shutdown(5))
            .cmd(
                "Shutdown() truncated",
                raw(TPM_ST_NO_SESSIONS, cc::SHUTDOWN, &[]),
            )
            .cmd("Shutdown(STATE)", shutdown(TPM_SU_STATE))
            .power_cycle()
            .cmd("Startup(STATE)", startup(TPM_SU_STATE))
            .cmd("PCR_Read after Resume", read(&saved))
            .cmd("Shutdown(CLEAR)", shutdown(TPM_SU_CLEAR))
            .power_cycle()
            .cmd(
                "Startup(STATE) after Shutdown(CLEAR)",
                startup(TPM_SU_STATE),
            )
            .started()
            .cmd("PCR_Read after Reset", read(&saved))
            .done(),
        Builder::new("Shutdown(STATE) then Restart")
            .started()
            .cmd("PCR_Extend(0)", pcr_extend(0, &[], &[TPM_ALG_SHA256]))
            .cmd("Shutdown(STATE)", shutdown(TPM_SU_STATE))
            .power_cycle()
            .started()
            .cmd("PCR_Read after Restart", read(&saved))
            .power_cycle()
            .cmd(
                "Startup(STATE) without a new Shutdown",
                startup(TPM_SU_STATE),
            )
            .started()
            .cmd("PCR_Read after Reset", read(&saved))
            .done(),
        Builder::new("power cycle without Shutdown")
            .started()
            .cmd("PCR_Extend(0)", pcr_extend(0, &[], &[TPM_ALG_SHA256]))
            .power_cycle()
            .cmd("Startup(STATE)", startup(TPM_SU_STATE))
            .started()
            .cmd("PCR_Read", read(&saved))
            .done(),
    ];
    // Commands between Shutdown(STATE) and the power cycle: some make the
    // saved state stale.
    let after_shutdown: Vec<(&str, Vec<u8>)> = vec![
        ("PCR_Extend(0)", pcr_extend(0, &[], &[TPM_ALG_SHA256])),
        ("PCR_Extend(16)", pcr_extend(16, &[], &[TPM_ALG_SHA256])),
        ("PCR_Reset(16)", pcr_reset(16)),
        ("GetRandom", get_random(8)),
        (
            "HierarchyChangeAuth",
            hierarchy_change_auth(TPM_RH_OWNER, &[], b"x"),
        ),
        ("CreatePrimary", create_primary(TPM_RH_NULL, &[])),
        ("SelfTest", self_test(1)),
        ("Shutdown(CLEAR)", shutdown(TPM_SU_CLEAR)),
    ];
    for (label, command) in after_shutdown {
        let body = if label == "GetRandom" {
            Body::Random
        } else if label == "CreatePrimary" {
            Body::Key
        } else {
            Body::Exact
        };
        out.push(
            Builder::new(format!("{label} after Shutdown(STATE)"))
                .started()
                .cmd("Shutdown(STATE)", shutdown(TPM_SU_STATE))
                .at(0, label, command, body)
                .power_cycle()
                .cmd("Startup(STATE)", startup(TPM_SU_STATE))
                .cmd("Startup(CLEAR)", startup(TPM_SU_CLEAR))
                .cmd("PCR_Read", read(&saved))
                .done(),
        );
    }
    for (start, resume) in [(3u8, 0u8), (0, 3), (3, 3), (0, 4)] {
        out.push(
            Builder::new(format!("Startup at {start}, Resume at {resume}"))
                .at(start, "Startup(CLEAR)", startup(TPM_SU_CLEAR), Body::Exact)
                .cmd("Shutdown(STATE)", shutdown(TPM_SU_STATE))
                .power_cycle()
                .at(resume, "Startup(STATE)", startup(TPM_SU_STATE), Body::Exact)
                .at(resume, "Startup(CLEAR)", startup(TPM_SU_CLEAR), Body::Exact)
                .cmd("PCR_Read", read(&saved))
                .done(),
        );
    }
    out
}

fn self_test_cases() -> Sequence {
    Builder::new("SelfTest")
        .started()
        .cmd("SelfTest(YES)", self_test(1))
        .cmd("SelfTest(NO)", self_test(0))
        .cmd("SelfTest(2)", self_test(2))
        .cmd("SelfTest()", raw(TPM_ST_NO_SESSIONS, cc::SELF_TEST, &[]))
        .cmd(
            "SelfTest(YES, pad)",
            raw(TPM_ST_NO_SESSIONS, cc::SELF_TEST, &[1, 0]),
        )
        .done()
}

fn get_random_cases() -> Sequence {
    let mut b = Builder::new("GetRandom").started();
    for n in (0..=72u16).chain([100, 128, 1000, 4096, 0x7FFF, 0xFFFF]) {
        b = b.at(0, format!("GetRandom({n})"), get_random(n), Body::Random);
    }
    b.cmd("GetRandom()", raw(TPM_ST_NO_SESSIONS, cc::GET_RANDOM, &[]))
        .cmd(
            "GetRandom(1 byte)",
            raw(TPM_ST_NO_SESSIONS, cc::GET_RANDOM, &[0]),
        )
        .cmd(
            "GetRandom(8, pad)",
            raw(TPM_ST_NO_SESSIONS, cc::GET_RANDOM, &[0, 8, 0]),
        )
        .cmd(
            "GetRandom padded to the buffer",
            raw(
                TPM_ST_NO_SESSIONS,
                cc::GET_RANDOM,
                &[[0, 8].as_slice(), &[0; 4084]].concat(),
            ),
        )
        .cmd(
            "GetRandom with a sessions tag and no area",
            with_tag(get_random(8), TPM_ST_SESSIONS),
        )
        .cmd(
            "GetRandom with a password session",
            raw(
                TPM_ST_SESSIONS,
                cc::GET_RANDOM,
                &[session(TPM_RS_PW, &[], 0, &[]), vec![0, 8]].concat(),
            ),
        )
        .done()
}

fn get_capability_cases() -> Vec<Sequence> {
    let counts = [0u32, 1, 2, 7, 64, 1000, u32::MAX];
    let ranges: &[(u32, &[u32])] = &[
        (
            0,
            &[
                0, 1, 6, 0x0B, 0x10, 0x22, 0x25, 0x43, 0x44, 0xA0, 0xFFFF, 0x1_0000,
            ],
        ),
        (
            1,
            &[
                0,
                5,
                23,
                24,
                0x0100_0000,
                0x0200_0000,
                0x0300_0000,
                0x4000_0000,
                0x4000_0001,
                0x4000_000C,
                0x4000_000D,
                0x8000_0000,
                0x8000_0001,
                0x8100_0000,
                0x0500_0000,
                0xFF00_0000,
            ],
        ),
        (
            2,
            &[
                0,
                0x11F,
                0x129,
                0x131,
                0x144,
                0x17A,
                0x182,
                0x1A0,
                0x2000_0000,
            ],
        ),
        (3, &[0, 0x12D]),
        (4, &[0, 0x140]),
        (5, &[0, 0xFFFF_FFFF]),
        (
            6,
            &[
                0,
                0x100,
                0x101,
                0x105,
                0x112,
                0x11E,
                0x12E,
                0x12F,
                0x131,
                0x200,
                0x201,
                0x207,
                0x214,
                0x215,
                0x300,
                0xFFFF_FFFF,
            ],
        ),
        (7, &[0, 1, 0x0A, 0x11, 0x14, 0x15, 0xFFFF]),
        (8, &[0, 0x10]),
        (9, &[0, 0x4000_0001]),
        (10, &[0, 0x4000_0110]),
        (11, &[0]),
        (0x100, &[0]),
        (0xFFFF_FFFF, &[0]),
    ];
    let mut out = Vec::new();
    for &(capability, properties) in ranges {
        let mut b = Builder::new(format!("GetCapability({capability:#x})")).started();
        for &property in properties {
            for &count in &counts {
                b = b.at(
                    0,
                    format!("GetCapability({capability:#x}, {property:#x}, {count})"),
                    get_capability(capability, property, count),
                    Body::Capability,
                );
            }
        }
        out.push(b.done());
    }
    out.push(
        Builder::new("GetCapability parameter errors")
            .started()
            .cmd(
                "GetCapability()",
                raw(TPM_ST_NO_SESSIONS, cc::GET_CAPABILITY, &[]),
            )
            .cmd(
                "GetCapability(6)",
                raw(TPM_ST_NO_SESSIONS, cc::GET_CAPABILITY, &[0, 0, 0, 6]),
            )
            .cmd(
                "GetCapability(6, 0x100)",
                raw(
                    TPM_ST_NO_SESSIONS,
                    cc::GET_CAPABILITY,
                    &[0, 0, 0, 6, 0, 0, 1, 0],
                ),
            )
            .cmd(
                "GetCapability(6, 0x100, 1, pad)",
                [get_capability(6, 0x100, 1), vec![0]].concat(),
            )
            .done(),
    );
    out.push({
        // A loaded object shows up in the transient handle list and the
        // free-slot count.
        Builder::new("GetCapability with an object loaded")
            .started()
            .at(
                0,
                "CreatePrimary",
                create_primary(TPM_RH_OWNER, &[]),
                Body::Key,
            )
            .at(
                0,
                "transient handles",
                get_capability(1, TRANSIENT, 8),
                Body::Capability,
            )
            .at(
                0,
                "PT_HR_TRANSIENT",
                get_capability(6, 0x207, 1),
                Body::Capability,
            )
            .done()
    });
    out
}

fn pcr_cases() -> Vec<Sequence> {
    let mut out = Vec::new();
    let all24: Vec<u32> = (0..24).collect();
    let sha256 = TPM_ALG_SHA256;
    let mut read = Builder::new("PCR_Read selections").started();
    let selections: Vec<(&str, Vec<Bank>)> = vec![
        ("SHA256 PCR 0", vec![(sha256, bitmap(&[0]))]),
        (
            "SHA256 PCRs 0-7",
            vec![(sha256, bitmap(&(0..8).collect::<Vec<_>>()))],
        ),
        ("SHA256 all 24", vec![(sha256, bitmap(&all24))]),
        (
            "SHA384 PCRs 16-23",
            vec![(TPM_ALG_SHA384, bitmap(&(16..24).collect::<Vec<_>>()))],
        ),
        (
            "SHA256 + SHA384",
            vec![
                (sha256, bitmap(&[1, 2, 3])),
                (TPM_ALG_SHA384, bitmap(&[17, 23])),
            ],
        ),
        (
            "SHA256 6 then SHA384 6",
            vec![
                (sha256, bitmap(&[0, 1, 2, 3, 4, 5])),
                (TPM_ALG_SHA384, bitmap(&[0, 1, 2, 3, 4, 5])),
            ],
        ),
        (
            "SHA256 twice",
            vec![(sha256, bitmap(&[0])), (sha256, bitmap(&[0]))],
        ),
        ("empty bitmap", vec![(sha256, bitmap(&[]))]),
        ("no banks", vec![]),
        ("sizeofSelect 0", vec![(sha256, vec![])]),
        ("sizeofSelect 1", vec![(sha256, vec![1])]),
        ("sizeofSelect 2", vec![(sha256, vec![1, 0])]),
        ("sizeofSelect 4", vec![(sha256, vec![1, 0, 0, 0])]),
        ("SHA1 bank", vec![(TPM_ALG_SHA1, bitmap(&[0]))]),
        ("SHA512 bank", vec![(TPM_ALG_SHA512, bitmap(&[0]))]),
        ("hash TPM_ALG_NULL", vec![(TPM_ALG_NULL, bitmap(&[0]))]),
        ("hash 0x0012 (SM3)", vec![(0x0012, bitmap(&[0]))]),
        ("hash AES", vec![(TPM_ALG_AES, bitmap(&[0]))]),
        (
            "three banks",
            vec![
                (sha256, bitmap(&[0])),
                (TPM_ALG_SHA384, bitmap(&[0])),
                (sha256, bitmap(&[1])),
            ],
        ),
    ];
    for (label, banks) in &selections {
        let refs: Vec<(u16, &[u8])> = banks.iter().map(|(h, b)| (*h, b.as_slice())).collect();
        read = read.cmd(format!("PCR_Read({label})"), pcr_read(&refs));
    }
    let one = pcr_read(&[(sha256, &bitmap(&[0]))]);
    for len in 10..one.len() {
        read = read.cmd(format!("PCR_Read truncated to {len}"), truncated(&one, len));
    }
    read = read
        .cmd(
            "PCR_Read count 5",
            raw(TPM_ST_NO_SESSIONS, cc::PCR_READ, &[0, 0, 0, 5]),
        )
        .cmd(
            "PCR_Read count 0xFFFFFFFF",
            raw(TPM_ST_NO_SESSIONS, cc::PCR_READ, &[0xFF; 4]),
        )
        .cmd("PCR_Read padded", [one.clone(), vec![0]].concat());
    out.push(read.done());

    for locality in 0..=4u8 {
        let mut b =
            Builder::new(format!("PCR_Extend and PCR_Reset at locality {locality}")).started();
        for pcr in [
            0u32,
            15,
            16,
            17,
            18,
            19,
            20,
            21,
            22,
            23,
            24,
            0x7F,
            TPM_RH_NULL,
            TPM_RH_OWNER,
        ] {
            b = b
                .at(
                    locality,
                    format!("PCR_Extend({pcr:#x})"),
                    pcr_extend(pcr, &[], &[sha256]),
                    Body::Exact,
                )
                .at(
                    locality,
                    format!("PCR_Reset({pcr:#x})"),
                    pcr_reset(pcr),
                    Body::Exact,
                );
        }
        b = b
            .cmd(
                "PCR_Read all SHA256",
                pcr_read(&[(sha256, &bitmap(&(16..24).collect::<Vec<_>>()))]),
            )
            .cmd(
                "PCR_Read SHA256 0-7",
                pcr_read(&[(sha256, &bitmap(&(0..8).collect::<Vec<_>>()))]),
            );
        out.push(b.done());
    }

    out.push(
        Builder::new("PCR_Extend counts each digest")
            .started()
            .cmd("two digests", pcr_extend(0, &[], &[sha256, TPM_ALG_SHA384]))
            .cmd("no digests", pcr_extend(0, &[], &[]))
            .cmd("SHA256 twice", pcr_extend(1, &[], &[sha256, sha256]))
            .cmd(
                "PCR_Read",
                pcr_read(&[(sha256, &bitmap(&[0, 1])), (TPM_ALG_SHA384, &bitmap(&[0]))]),
            )
            .done(),
    );
    for locality in [0u8, 2, 3] {
        out.push(
            Builder::new(format!("dynamic launch, then locality {locality}"))
                .started()
                .dynamic_launch(b"measured launch environment")
                .at(
                    locality,
                    "PCR_Read DRTM SHA256",
                    pcr_read(&[(sha256, &bitmap(&(17..23).collect::<Vec<_>>()))]),
                    Body::Exact,
                )
                .at(
                    locality,
                    "PCR_Read DRTM SHA384",
                    pcr_read(&[(TPM_ALG_SHA384, &bitmap(&(17..23).collect::<Vec<_>>()))]),
                    Body::Exact,
                )
                .at(
                    locality,
                    "PCR_Extend(17)",
                    pcr_extend(17, &[], &[sha256]),
                    Body::Exact,
                )
                .at(
                    locality,
                    "PCR_Extend(22)",
                    pcr_extend(22, &[], &[sha256]),
                    Body::Exact,
                )
                .at(locality, "PCR_Reset(20)", pcr_reset(20), Body::Exact)
                .at(
                    locality,
                    "PCR_Read DRTM SHA256 again",
                    pcr_read(&[(sha256, &bitmap(&(17..23).collect::<Vec<_>>()))]),
                    Body::Exact,
                )
                .done(),
        );
    }
    let ext = pcr_extend(16, &[], &[sha256]);
    let mut e = Builder::new("PCR_Extend parameters and authorization")
        .started()
        .cmd(
            "SHA256 + SHA384",
            pcr_extend(16, &[], &[sha256, TPM_ALG_SHA384]),
        )
        .cmd("no digests", pcr_extend(16, &[], &[]))
        .cmd(
            "SHA384 twice",
            pcr_extend(16, &[], &[TPM_ALG_SHA384, TPM_ALG_SHA384]),
        )
        .cmd("SHA512 digest", pcr_extend(16, &[], &[TPM_ALG_SHA512]))
        .cmd(
            "five digests",
            pcr_extend(16, &[], &[sha256, sha256, sha256, sha256, sha256]),
        )
        .cmd("wrong password", pcr_extend(16, b"nope", &[sha256]))
        .cmd(
            "no session (NO_SESSIONS tag)",
            with_tag(
                raw(
                    TPM_ST_NO_SESSIONS,
                    cc::PCR_EXTEND,
                    &[&16u32.to_be_bytes()[..], &[0, 0, 0, 0]].concat(),
                ),
                TPM_ST_NO_SESSIONS,
            ),
        )
        .cmd(
            "authorization size 8",
            raw(
                TPM_ST_SESSIONS,
                cc::PCR_EXTEND,
                &[
                    &16u32.to_be_bytes()[..],
                    &[0, 0, 0, 8],
                    &[0x40, 0, 0, 9, 0, 0, 0, 0, 0],
                ]
                .concat(),
            ),
        )
        .cmd(
            "authorization size too large",
            raw(
                TPM_ST_SESSIONS,
                cc::PCR_EXTEND,
                &[
                    &16u32.to_be_bytes()[..],
                    &[0, 0, 0, 80],
                    &[0x40, 0, 0, 9, 0, 0, 0, 0, 0],
                ]
                .concat(),
            ),
        )
        .cmd(
            "HMAC session handle",
            raw(
                TPM_ST_SESSIONS,
                cc::PCR_EXTEND,
                &[
                    &16u32.to_be_bytes()[..],
                    &session(0x0200_0000, &[], 0, &[]),
                    &[0, 0, 0, 0],
                ]
                .concat(),
            ),
        )
        .cmd(
            "policy session handle",
            raw(
                TPM_ST_SESSIONS,
                cc::PCR_EXTEND,
                &[
                    &16u32.to_be_bytes()[..],
                    &session(0x0300_0000, &[], 0, &[]),
                    &[0, 0, 0, 0],
                ]
                .concat(),
            ),
        )
        .cmd(
            "owner as session handle",
            raw(
                TPM_ST_SESSIONS,
                cc::PCR_EXTEND,
                &[
                    &16u32.to_be_bytes()[..],
                    &session(TPM_RH_OWNER, &[], 0, &[]),
                    &[0, 0, 0, 0],
                ]
                .concat(),
            ),
        )
        .cmd(
            "password session with a nonce",
            raw(
                TPM_ST_SESSIONS,
                cc::PCR_EXTEND,
                &[
                    &16u32.to_be_bytes()[..],
                    &session(TPM_RS_PW, &[1, 2], 0, &[]),
                    &[0, 0, 0, 0],
                ]
                .concat(),
            ),
        )
        .cmd(
            "password session attributes 0x01",
            raw(
                TPM_ST_SESSIONS,
                cc::PCR_EXTEND,
                &[
                    &16u32.to_be_bytes()[..],
                    &session(TPM_RS_PW, &[], 1, &[]),
                    &[0, 0, 0, 0],
                ]
                .concat(),
            ),
        )
        .cmd(
            "password session attributes 0x20",
            raw(
                TPM_ST_SESSIONS,
                cc::PCR_EXTEND,
                &[
                    &16u32.to_be_bytes()[..],
                    &session(TPM_RS_PW, &[], 0x20, &[]),
                    &[0, 0, 0, 0],
                ]
                .concat(),
            ),
        )
        .cmd(
            "password session attributes 0x40",
            raw(
                TPM_ST_SESSIONS,
                cc::PCR_EXTEND,
                &[
                    &16u32.to_be_bytes()[..],
                    &session(TPM_RS_PW, &[], 0x40, &[]),
                    &[0, 0, 0, 0],
                ]
                .concat(),
            ),
        )
        .cmd(
            "two password sessions",
            raw(
                TPM_ST_SESSIONS,
                cc::PCR_EXTEND,
                &[
                    &16u32.to_be_bytes()[..],
                    &[0, 0, 0, 18],
                    &session(TPM_RS_PW, &[], 0, &[])[4..],
                    &session(TPM_RS_PW, &[], 0, &[])[4..],
                    &[0, 0, 0, 0],
                ]
                .concat(),
            ),
        )
        .cmd(
            "four password sessions",
            raw(
                TPM_ST_SESSIONS,
                cc::PCR_EXTEND,
                &[
                    &16u32.to_be_bytes()[..],
                    &[0, 0, 0, 36],
                    &session(TPM_RS_PW, &[], 0, &[])[4..],
                    &session(TPM_RS_PW, &[], 0, &[])[4..],
                    &session(TPM_RS_PW, &[], 0, &[])[4..],
                    &session(TPM_RS_PW, &[], 0, &[])[4..],
                    &[0, 0, 0, 0],
                ]
                .concat(),
            ),
        )
        .cmd(
            "hash TPM_ALG_NULL",
            raw(
                TPM_ST_SESSIONS,
                cc::PCR_EXTEND,
                &[
                    &16u32.to_be_bytes()[..],
                    &session(TPM_RS_PW, &[], 0, &[]),
                    &[0, 0, 0, 1, 0, 0x10],
                ]
                .concat(),
            ),
        )
        .cmd(
            "digest cut short",
            raw(
                TPM_ST_SESSIONS,
                cc::PCR_EXTEND,
                &[
                    &16u32.to_be_bytes()[..],
                    &session(TPM_RS_PW, &[], 0, &[]),
                    &[0, 0, 0, 1, 0, 0x0B, 1, 2, 3],
                ]
                .concat(),
            ),
        )
        .cmd("padded", [ext.clone(), vec![0]].concat());
    for len in 10..ext.len() {
        e = e.cmd(
            format!("PCR_Extend truncated to {len}"),
            truncated(&ext, len),
        );
    }
    // Banks libtpms allocates and the sim does not implement: each in a
    // sequence of its own, since libtpms' PCRs change where the sim's do not.
    out.push(
        Builder::new("PCR_Extend of a SHA-1 digest")
            .started()
            .cmd("SHA1 digest", pcr_extend(16, &[], &[TPM_ALG_SHA1]))
            .done(),
    );
    out.push(
        Builder::new("PCR_Extend of four digests")
            .started()
            .cmd(
                "four digests",
                pcr_extend(16, &[], &[sha256, sha256, sha256, sha256]),
            )
            .done(),
    );
    e = e.cmd(
        "PCR_Read 16",
        pcr_read(&[(sha256, &bitmap(&[16])), (TPM_ALG_SHA384, &bitmap(&[16]))]),
    );
    out.push(e.done());
    out
}

fn object_cases() -> Sequence {
    Builder::new("FlushContext and ReadPublic")
        .started()
        .cmd("ReadPublic(nothing loaded)", read_public(TRANSIENT))
        .cmd("ReadPublic(PCR 0)", read_public(0))
        .cmd("ReadPublic(owner)", read_public(TPM_RH_OWNER))
        .cmd("ReadPublic(persistent)", read_public(0x8100_0000))
        .cmd("ReadPublic(NV index)", read_public(0x0100_0000))
        .cmd(
            "ReadPublic()",
            raw(TPM_ST_NO_SESSIONS, cc::READ_PUBLIC, &[]),
        )
        .cmd("FlushContext(nothing loaded)", flush_context(TRANSIENT))
        .cmd("FlushContext(PCR 0)", flush_context(0))
        .cmd("FlushContext(owner)", flush_context(TPM_RH_OWNER))
        .cmd("FlushContext(persistent)", flush_context(0x8100_0000))
        .cmd("FlushContext(HMAC session)", flush_context(0x0200_0000))
        .cmd("FlushContext(policy session)", flush_context(0x0300_0000))
        .cmd(
            "FlushContext()",
            raw(TPM_ST_NO_SESSIONS, cc::FLUSH_CONTEXT, &[]),
        )
        .at(
            0,
            "CreatePrimary(owner)",
            create_primary(TPM_RH_OWNER, &[]),
            Body::Key,
        )
        .at(0, "ReadPublic", read_public(TRANSIENT), Body::Key)
        .cmd("ReadPublic(next slot)", read_public(TRANSIENT + 1))
        .cmd(
            "ReadPublic with a password session",
            raw(
                TPM_ST_SESSIONS,
                cc::READ_PUBLIC,
                &[
                    &TRANSIENT.to_be_bytes()[..],
                    &session(TPM_RS_PW, &[], 0, &[]),
                ]
                .concat(),
            ),
        )
        .cmd(
            "ReadPublic padded",
            [read_public(TRANSIENT), vec![0]].concat(),
        )
        .cmd(
            "FlushContext padded",
            [flush_context(TRANSIENT), vec![0]].concat(),
        )
        .cmd("FlushContext", flush_context(TRANSIENT))
        .cmd("FlushContext again", flush_context(TRANSIENT))
        .cmd("ReadPublic after flush", read_public(TRANSIENT))
        .at(
            0,
            "CreatePrimary(NULL)",
            create_primary(TPM_RH_NULL, &[]),
            Body::Key,
        )
        .at(
            0,
            "CreatePrimary(endorsement)",
            create_primary(TPM_RH_ENDORSEMENT, &[]),
            Body::Key,
        )
        .at(
            0,
            "CreatePrimary(platform)",
            create_primary(TPM_RH_PLATFORM, &[]),
            Body::Key,
        )
        .cmd(
            "CreatePrimary(owner, wrong password)",
            create_primary(TPM_RH_OWNER, b"x"),
        )
        .at(
            0,
            "ReadPublic(second)",
            read_public(TRANSIENT + 1),
            Body::Key,
        )
        .power_cycle()
        .started()
        .cmd("ReadPublic after power cycle", read_public(TRANSIENT))
        .done()
}

fn hierarchy_auth_cases() -> Vec<Sequence> {
    let mut out = Vec::new();
    for hierarchy in [
        TPM_RH_OWNER,
        TPM_RH_ENDORSEMENT,
        TPM_RH_PLATFORM,
        TPM_RH_LOCKOUT,
    ] {
        out.push(
            Builder::new(format!("HierarchyChangeAuth({hierarchy:#x})"))
                .started()
                .cmd("set", hierarchy_change_auth(hierarchy, &[], b"first"))
                .cmd("old password", hierarchy_change_auth(hierarchy, &[], b"x"))
                .cmd(
                    "wrong password",
                    hierarchy_change_auth(hierarchy, b"firsT", b"x"),
                )
                .cmd(
                    "trailing zeros",
                    hierarchy_change_auth(hierarchy, b"first\0\0", b"second"),
                )
                .cmd(
                    "new password",
                    hierarchy_change_auth(hierarchy, b"second", &[0x55; 32]),
                )
                .cmd(
                    "65-byte password",
                    hierarchy_change_auth(hierarchy, &[0x55; 32], &[0x66; 65]),
                )
                .at(
                    0,
                    "CreatePrimary with it",
                    create_primary(
                        if hierarchy == TPM_RH_LOCKOUT {
                            TPM_RH_OWNER
                        } else {
                            hierarchy
                        },
                        &[0x55; 32],
                    ),
                    Body::Key,
                )
                .power_cycle()
                .started()
                .cmd(
                    "after a Reset",
                    hierarchy_change_auth(hierarchy, &[0x55; 32], &[]),
                )
                .cmd("cleared", hierarchy_change_auth(hierarchy, &[], &[]))
                .done(),
        );
    }
    for len in [32usize, 33, 48, 64, 65] {
        out.push(
            Builder::new(format!("HierarchyChangeAuth to {len} bytes"))
                .started()
                .cmd(
                    "set",
                    hierarchy_change_auth(TPM_RH_OWNER, &[], &vec![0x77; len]),
                )
                .done(),
        );
    }
    out.push(
        Builder::new("HierarchyChangeAuth errors")
            .started()
            .cmd(
                "NULL hierarchy",
                hierarchy_change_auth(TPM_RH_NULL, &[], b"x"),
            )
            .cmd("PCR handle", hierarchy_change_auth(0, &[], b"x"))
            .cmd(
                "transient handle",
                hierarchy_change_auth(TRANSIENT, &[], b"x"),
            )
            .cmd(
                "no session",
                raw(
                    TPM_ST_NO_SESSIONS,
                    HIERARCHY_CHANGE_AUTH,
                    &[&TPM_RH_OWNER.to_be_bytes()[..], &[0, 0]].concat(),
                ),
            )
            .cmd(
                "newAuth cut short",
                raw(
                    TPM_ST_SESSIONS,
                    HIERARCHY_CHANGE_AUTH,
                    &[
                        &TPM_RH_OWNER.to_be_bytes()[..],
                        &session(TPM_RS_PW, &[], 0, &[]),
                        &[0, 4, 1],
                    ]
                    .concat(),
                ),
            )
            .cmd(
                "newAuth missing",
                raw(
                    TPM_ST_SESSIONS,
                    HIERARCHY_CHANGE_AUTH,
                    &[
                        &TPM_RH_OWNER.to_be_bytes()[..],
                        &session(TPM_RS_PW, &[], 0, &[]),
                    ]
                    .concat(),
                ),
            )
            .cmd(
                "padded",
                [hierarchy_change_auth(TPM_RH_OWNER, &[], b"x"), vec![0]].concat(),
            )
            .cmd(
                "platform after padded",
                hierarchy_change_auth(TPM_RH_PLATFORM, &[], b"p"),
            )
            .power_cycle()
            .started()
            .cmd(
                "platformAuth cleared by Startup(CLEAR)",
                hierarchy_change_auth(TPM_RH_PLATFORM, &[], b"q"),
            )
            .done(),
    );
    out
}

fn header_cases() -> Sequence {
    let rnd = get_random(8);
    let mut b = Builder::new("headers").started();
    for tag in [
        0x0000u16, 0x00C1, 0x00C4, 0x8000, 0x8003, 0x8014, 0x801A, 0x801B, 0x801C, 0x8021, 0x8022,
        0x8023, 0x8024, 0x8025, 0x8026, 0x8027, 0x8028, 0x8029, 0xFFFF,
    ] {
        b = b.cmd(format!("tag {tag:#06x}"), with_tag(rnd.clone(), tag));
    }
    b = b.cmd(
        "bad tag and size lie",
        with_size(with_tag(rnd.clone(), 0x8003), 40),
    );
    b = b.cmd(
        "tag 0x8000 and size lie",
        with_size(with_tag(rnd.clone(), 0x8000), 40),
    );
    for size in [0u32, 9, 10, 11, 13, 100, 4096, 4097, u32::MAX] {
        b = b.cmd(format!("size field {size}"), with_size(rnd.clone(), size));
    }
    for code in [
        0u32,
        0x11E,
        0x1FF,
        0x1A0,
        0x2000_0000,
        0x2000_0144,
        0xFFFF_FFFF,
        0x0000_0144 | 0x8000_0000,
    ] {
        b = b.cmd(
            format!("command code {code:#x}"),
            raw(TPM_ST_NO_SESSIONS, code, &[0, 8]),
        );
    }
    b.cmd(
        "unknown code and size lie",
        with_size(raw(TPM_ST_NO_SESSIONS, 0x1FF, &[0, 8]), 40),
    )
    .cmd("header only", raw(TPM_ST_NO_SESSIONS, cc::GET_RANDOM, &[]))
    .cmd(
        "ReadClock (libtpms only)",
        raw(TPM_ST_NO_SESSIONS, cc::READ_CLOCK, &[]),
    )
    .done()
}
