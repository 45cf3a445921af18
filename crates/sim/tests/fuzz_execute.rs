//! Random and mutated command bytes never panic the simulator and always
//! get a well-formed response.

mod common;

use common::{assert_well_formed, started};
use proptest::prelude::*;
use vtpm_client as client;
use vtpm_client::{get_capability, get_random, pcr_extend_sha256, pcr_read, startup};
use vtpm_sim::Sim;
use vtpm_wire::consts::{TPM_ALG_SHA256, TPM_RH_OWNER};
use vtpm_wire::structures::{MlDsaParameterSet, MlKemParameterSet, PublicArea, Signature};

/// Valid commands to mutate: every command the simulator implements, with
/// handles of the objects `setup` loads.
fn seeds() -> Vec<Vec<u8>> {
    let storage = PublicArea::storage_parent();
    let signer = PublicArea::mldsa(MlDsaParameterSet::MlDsa44).with_external_mu();
    vec![
        startup(0),
        get_random(16),
        get_capability(6, 0x100, 10),
        get_capability(0, 0, 10),
        pcr_read(TPM_ALG_SHA256, &[0, 1, 16]),
        pcr_extend_sha256(16, &[1; 32]),
        vtpm_client::pcr_reset(16),
        vtpm_client::shutdown(1),
        vtpm_client::self_test(true),
        client::create_primary(TPM_RH_OWNER, b"", &storage, b""),
        client::create(
            0x8000_0000,
            b"",
            &PublicArea::mlkem(MlKemParameterSet::MlKem512),
            b"",
        ),
        client::load(0x8000_0000, b"", &[0; 80], &signer.to_bytes()),
        client::load_external_public(
            &signer.clone().with_unique(&[1; 1312]).to_bytes(),
            TPM_RH_OWNER,
        ),
        client::read_public(0x8000_0001),
        client::flush_context(0x8000_0002),
        client::sign(0x8000_0001, b"", &[2; 32]),
        client::sign_digest(0x8000_0001, b"", b"", &[2; 64]),
        client::verify_signature(0x8000_0001, &[2; 32], &Signature::MlDsa(vec![0; 2420])),
        client::verify_digest_signature(
            0x8000_0001,
            b"",
            &[2; 64],
            &Signature::MlDsa(vec![0; 2420]),
        ),
        client::encapsulate(0x8000_0002),
        client::decapsulate(0x8000_0002, b"", &[0; 768]),
        client::hierarchy_change_auth(TPM_RH_OWNER, b"", b"x"),
    ]
}

/// A started simulator with a storage parent (0x80000000), an ML-DSA-44
/// key (0x80000001) and an ML-KEM-512 key (0x80000002).
fn setup() -> Sim {
    let mut sim = started();
    let mut response = Vec::new();
    for template in [
        PublicArea::storage_parent(),
        PublicArea::mldsa(MlDsaParameterSet::MlDsa44).with_external_mu(),
        PublicArea::mlkem(MlKemParameterSet::MlKem512),
    ] {
        sim.execute(
            0,
            &client::create_primary(TPM_RH_OWNER, b"", &template, b""),
            &mut response,
        );
        client::parse_create_primary(&response).expect("setup key");
    }
    sim
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Truncate { to: usize },
    Insert { at: usize, byte: u8 },
    FixSize,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        any::<usize>().prop_map(|to| Mutation::Truncate { to }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        Just(Mutation::FixSize),
    ]
}

fn apply(command: &mut Vec<u8>, m: &Mutation) {
    match *m {
        Mutation::Flip { at, mask } if !command.is_empty() => {
            let i = at % command.len();
            command[i] ^= mask;
        }
        Mutation::Truncate { to } => command.truncate(to % (command.len() + 1)),
        Mutation::Insert { at, byte } => {
            let i = at % (command.len() + 1);
            command.insert(i, byte);
        }
        // Keep the header honest so mutations reach the parameter parsers.
        Mutation::FixSize if command.len() >= 6 => {
            let n = command.len() as u32;
            command[2..6].copy_from_slice(&n.to_be_bytes());
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_get_well_formed_answers(bytes in proptest::collection::vec(any::<u8>(), 0..600), locality in 0u8..6) {
        let mut sim = started();
        let mut response = Vec::new();
        sim.execute(locality, &bytes, &mut response);
        assert_well_formed(&sim, &response);
    }

    #[test]
    fn mutated_commands_get_well_formed_answers(
        which in any::<prop::sample::Index>(),
        mutations in proptest::collection::vec(mutation(), 1..6),
        locality in 0u8..5,
    ) {
        let seeds = seeds();
        let mut command = which.get(&seeds).clone();
        for m in &mutations {
            apply(&mut command, m);
        }
        let mut sim = setup();
        let mut response = Vec::new();
        sim.execute(locality, &command, &mut response);
        assert_well_formed(&sim, &response);
        // The simulator keeps working afterwards.
        sim.execute(0, &get_random(4), &mut response);
        assert_well_formed(&sim, &response);
    }
}

#[test]
fn every_seed_command_is_answered() {
    let mut sim = setup();
    let mut response = Vec::new();
    for command in seeds() {
        sim.execute(0, &command, &mut response);
        assert_well_formed(&sim, &response);
    }
}
