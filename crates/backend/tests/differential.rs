//! Differential tests: vtpm-sim against libtpms 0.9.2 (in swtpm 0.7.1).
//!
//! A corpus of command sequences, and generated mutations of valid
//! commands, run on a fresh simulator and a fresh swtpm. Response codes
//! must agree, and successful bodies where they are deterministic. Every
//! remaining difference is a documented deviation (`differential/
//! deviations.rs`, listed in crates/sim/README.md); anything else fails.

#[path = "differential/compare.rs"]
mod compare;
#[path = "differential/corpus.rs"]
mod corpus;
#[path = "differential/deviations.rs"]
mod deviations;
#[path = "differential/oracle.rs"]
mod oracle;

use std::cell::RefCell;
use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use compare::{judge, Exchange, Verdict};
use corpus::{Body, Sequence, Step};
use deviations::DEVIATIONS;
use oracle::{hex, Libtpms, Simulator};

/// What a run compared.
#[derive(Default)]
struct Tally {
    compared: usize,
    codes_agreed: usize,
    deviations: BTreeMap<&'static str, usize>,
    disagreements: Vec<String>,
}

impl Tally {
    fn record(&mut self, x: &Exchange<'_>) -> bool {
        self.compared += 1;
        if x.sim_rc() == x.tpm_rc() {
            self.codes_agreed += 1;
        }
        match judge(x, DEVIATIONS) {
            Verdict::Agree => false,
            Verdict::Deviation(d) => {
                *self.deviations.entry(d.id).or_default() += 1;
                true
            }
            Verdict::Disagree(why) => {
                self.disagreements.push(format!(
                    "[{}] {} at locality {}: {why}\n    command {}\n    sim     {}\n    libtpms {}",
                    x.sequence,
                    x.label,
                    x.locality,
                    hex(x.command),
                    hex(x.sim),
                    hex(x.tpm)
                ));
                false
            }
        }
    }

    fn deviation_count(&self) -> usize {
        self.deviations.values().sum()
    }

    fn summary(&self, what: &str) -> String {
        format!(
            "differential: compared {} commands, {} response codes agreed, {} documented deviations ({what}; {:?})",
            self.compared,
            self.codes_agreed,
            self.deviation_count(),
            self.deviations
        )
    }

    fn assert_clean(&self) {
        assert!(
            self.disagreements.is_empty(),
            "{} undocumented disagreements with libtpms:\n{}",
            self.disagreements.len(),
            self.disagreements.join("\n")
        );
    }
}

/// Runs `sequence` on a fresh simulator and a freshly manufactured libtpms.
fn run_sequence(sequence: &Sequence, tpm: &mut Libtpms, tally: &mut Tally) {
    let mut sim = Simulator::new();
    tpm.manufacture();
    for step in &sequence.steps {
        match step {
            Step::PowerCycle => {
                sim.power_cycle();
                tpm.power_cycle();
            }
            Step::DynamicLaunch(measurement) => {
                assert_eq!(sim.established(), tpm.established(), "before the launch");
                sim.dynamic_launch(measurement);
                tpm.dynamic_launch(measurement);
                assert!(sim.established() && tpm.established(), "after the launch");
            }
            Step::Command {
                label,
                locality,
                bytes,
                body,
            } => {
                let s = sim.execute(*locality, bytes);
                let t = tpm.execute(*locality, bytes);
                tally.record(&Exchange {
                    sequence: &sequence.name,
                    label,
                    locality: *locality,
                    command: bytes,
                    body: *body,
                    sim: &s,
                    tpm: &t,
                });
            }
        }
    }
}

#[test]
fn the_corpus_agrees_with_libtpms_apart_from_documented_deviations() {
    let mut tpm = Libtpms::spawn();
    let mut tally = Tally::default();
    for sequence in corpus::all() {
        run_sequence(&sequence, &mut tpm, &mut tally);
    }
    eprintln!("{}", tally.summary("corpus"));
    tally.assert_clean();
    assert!(
        tally.compared > 1000,
        "the corpus shrank to {} commands",
        tally.compared
    );
}

#[test]
fn startup_is_allowed_from_localities_0_and_3_only_as_in_libtpms() {
    let mut tpm = Libtpms::spawn();
    let mut tally = Tally::default();
    let mut codes = Vec::new();
    for locality in 0..=4u8 {
        let mut sim = Simulator::new();
        tpm.manufacture();
        let command = corpus::startup(0);
        let s = sim.execute(locality, &command);
        let t = tpm.execute(locality, &command);
        codes.push((compare::rc(&s), compare::rc(&t)));
        let sequence = corpus::all()
            .into_iter()
            .find(|q| q.name == format!("Startup(CLEAR) from locality {locality}"))
            .expect("corpus has the start-up sequence");
        run_sequence(&sequence, &mut tpm, &mut tally);
    }
    tally.assert_clean();
    // TPM_RC_LOCALITY from 1, 2 and 4 on both.
    let expected: Vec<(u32, u32)> = [0, 0x907, 0x907, 0, 0x907]
        .iter()
        .map(|&c| (c, c))
        .collect();
    assert_eq!(codes, expected);
}

#[test]
fn every_deviation_is_listed_with_its_reason_in_the_sim_readme() {
    let readme = include_str!("../../sim/README.md");
    let table = readme
        .split("## Deviations from libtpms")
        .nth(1)
        .expect("the sim README has a deviations section");
    for d in DEVIATIONS {
        assert!(
            table.contains(&format!("`{}`", d.id)),
            "deviation {} is missing from crates/sim/README.md",
            d.id
        );
        assert!(!d.reason.is_empty());
    }
}

/// A change made to a valid command.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit {
        at: usize,
        bit: u8,
    },
    SetByte {
        at: usize,
        value: u8,
    },
    /// Cut to `len` bytes (at least the header), size field fixed up.
    Truncate {
        len: usize,
    },
    /// A size field that lies.
    Size(u32),
    Tag(u16),
    /// Replace the first handle.
    Handle(u32),
    /// Append bytes, size field fixed up.
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let handles = prop::sample::select(vec![
        0u32,
        16,
        23,
        24,
        0x7F,
        0x4000_0001,
        0x4000_0007,
        0x4000_0009,
        0x4000_000A,
        0x4000_000B,
        0x4000_000C,
        0x4000_000D,
        0x8000_0000,
        0x8000_0001,
        0x8100_0000,
        0x0100_0000,
        0x0200_0000,
        0x0300_0000,
        0xFFFF_FFFF,
    ]);
    let tags = prop::sample::select(vec![0x8001u16, 0x8002, 0x8000, 0x8003, 0x00C1, 0x8022, 0]);
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::SetByte { at, value }),
        any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        prop_oneof![any::<u32>(), 0u32..64].prop_map(Mutation::Size),
        tags.prop_map(Mutation::Tag),
        handles.prop_map(Mutation::Handle),
        prop::collection::vec(any::<u8>(), 1..8).prop_map(Mutation::Append),
    ]
}

fn apply(command: &mut Vec<u8>, m: &Mutation) {
    let fix = |c: &mut Vec<u8>| {
        let n = c.len() as u32;
        c[2..6].copy_from_slice(&n.to_be_bytes());
    };
    match m {
        Mutation::FlipBit { at, bit } => {
            let i = at % command.len();
            command[i] ^= 1 << bit;
        }
        Mutation::SetByte { at, value } => {
            let i = at % command.len();
            command[i] = *value;
        }
        Mutation::Truncate { len } => {
            let keep = 10 + len % (command.len() - 9);
            command.truncate(keep);
            fix(command);
        }
        Mutation::Size(size) => command[2..6].copy_from_slice(&size.to_be_bytes()),
        Mutation::Tag(tag) => command[0..2].copy_from_slice(&tag.to_be_bytes()),
        Mutation::Handle(h) => {
            if command.len() >= 14 {
                command[10..14].copy_from_slice(&h.to_be_bytes());
            }
        }
        Mutation::Append(bytes) => {
            command.extend_from_slice(bytes);
            fix(command);
        }
    }
}

/// Commands the sim implements beyond the compared set (keys, signatures,
/// KEM): a mutation that lands on one is not compared, since their
/// parameter checks are the object commands' own concern.
fn outside_scope(command: &[u8]) -> bool {
    const OBJECT_COMMANDS: [u32; 10] = [
        0x131, 0x153, 0x157, 0x15D, 0x167, 0x177, 0x1A5, 0x1A6, 0x1A7, 0x1A8,
    ];
    let code = u32::from_be_bytes([command[6], command[7], command[8], command[9]]);
    OBJECT_COMMANDS.contains(&code)
}

/// swtpm takes a data-channel message that starts `00 00 00 08` for the TPM
/// simulator protocol's TPM_SEND_COMMAND and answers in that framing: such
/// bytes never reach libtpms as a command.
fn mssim_framed(command: &[u8]) -> bool {
    command.starts_with(&[0, 0, 0, 8])
}

/// The valid commands the mutations start from.
fn seeds() -> Vec<Vec<u8>> {
    use corpus::*;
    use vtpm_wire::consts::{TPM_ALG_SHA256, TPM_ALG_SHA384, TPM_RH_OWNER};
    vec![
        get_random(16),
        get_capability(6, 0x100, 8),
        get_capability(1, 0, 4),
        get_capability(0, 0, 4),
        pcr_read(&[(TPM_ALG_SHA256, &bitmap(&[0, 1, 2]))]),
        pcr_read(&[
            (TPM_ALG_SHA256, &bitmap(&[16])),
            (TPM_ALG_SHA384, &bitmap(&[23])),
        ]),
        pcr_extend(16, &[], &[TPM_ALG_SHA256]),
        pcr_extend(23, &[], &[TPM_ALG_SHA256, TPM_ALG_SHA384]),
        pcr_reset(16),
        self_test(1),
        shutdown(0),
        startup(0),
        flush_context(TRANSIENT),
        read_public(TRANSIENT),
        hierarchy_change_auth(TPM_RH_OWNER, &[], &[]),
        hierarchy_change_auth(TPM_RH_LOCKOUT, &[], &[]),
    ]
}

#[test]
fn mutated_commands_answer_the_response_codes_libtpms_answers() {
    struct State {
        sim: Simulator,
        tpm: Libtpms,
        tally: Tally,
    }
    let state = RefCell::new(State {
        sim: Simulator::new(),
        tpm: Libtpms::spawn(),
        tally: Tally::default(),
    });
    state.borrow_mut().tpm.manufacture();
    let seeds = seeds();
    let strategy = (
        0..seeds.len(),
        prop::collection::vec(mutation(), 1..4),
        0u8..=4,
        prop::bool::weighted(0.9),
    );
    let config = Config {
        cases: 4000,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let result = runner.run(&strategy, |(seed, mutations, locality, started)| {
        let mut st = state.borrow_mut();
        let State { sim, tpm, tally } = &mut *st;
        sim.power_cycle();
        tpm.power_cycle();
        let mut command = seeds[seed].clone();
        for m in &mutations {
            apply(&mut command, m);
        }
        let label = format!("{mutations:?} of seed {seed}");
        if started {
            let startup = corpus::startup(0);
            let s = sim.execute(0, &startup);
            let t = tpm.execute(0, &startup);
            prop_assert_eq!(compare::rc(&s), compare::rc(&t), "Startup");
        }
        if outside_scope(&command) || mssim_framed(&command) {
            return Ok(());
        }
        let s = sim.execute(locality, &command);
        let t = tpm.execute(locality, &command);
        let before = tally.disagreements.len();
        let deviated = tally.record(&Exchange {
            sequence: "mutations",
            label: &label,
            locality,
            command: &command,
            body: Body::Code,
            sim: &s,
            tpm: &t,
        });
        if deviated {
            // A tolerated difference may leave the two TPMs in different
            // states: start the next case from fresh ones.
            *sim = Simulator::new();
            tpm.manufacture();
        }
        let disagreed = tally.disagreements.len() > before;
        prop_assert!(
            !disagreed,
            "{}",
            tally.disagreements.last().cloned().unwrap_or_default()
        );
        Ok(())
    });
    let st = state.borrow();
    eprintln!("{}", st.tally.summary("mutations"));
    if let Err(e) = result {
        panic!("{e}");
    }
}
