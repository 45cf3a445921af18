//! ML-KEM through TPM2_Encapsulate / TPM2_Decapsulate, cross-checked with
//! an independent implementation (the `fips203` crate) for every
//! parameter set.

mod common;

use common::{exec, flush, primary, rc, started};
use fips203::traits::{Decaps, Encaps, KeyGen, SerDes};
use fips203::{ml_kem_1024, ml_kem_512, ml_kem_768};
use vtpm_client as client;
use vtpm_sim::Sim;
use vtpm_wire::consts::TPM_RH_OWNER;
use vtpm_wire::structures::{MlKemParameterSet, PublicArea};
use vtpm_wire::ResponseCode;

/// fips203 encapsulation to `ek` with randomness `seed`: (secret, ciphertext).
fn fips_encapsulate(set: MlKemParameterSet, ek: &[u8], seed: [u8; 32]) -> (Vec<u8>, Vec<u8>) {
    macro_rules! run {
        ($m:ident) => {{
            let ek = <[u8; $m::EK_LEN]>::try_from(ek).expect("encapsulation key size");
            let ek = $m::EncapsKey::try_from_bytes(ek).expect("valid encapsulation key");
            let (ss, ct) = ek.encaps_from_seed(&seed);
            (ss.into_bytes().to_vec(), ct.into_bytes().to_vec())
        }};
    }
    match set {
        MlKemParameterSet::MlKem512 => run!(ml_kem_512),
        MlKemParameterSet::MlKem768 => run!(ml_kem_768),
        MlKemParameterSet::MlKem1024 => run!(ml_kem_1024),
    }
}

fn decapsulate(sim: &mut Sim, key: u32, auth: &[u8], ciphertext: &[u8]) -> client::SharedSecret {
    client::parse_decapsulate(&exec(sim, &client::decapsulate(key, auth, ciphertext))).unwrap()
}

#[test]
fn sim_encapsulation_round_trips_for_every_set() {
    let mut sim = started();
    for set in MlKemParameterSet::ALL {
        let key = primary(&mut sim, &PublicArea::mlkem(set), b"kem");
        assert_eq!(key.public.public_key().len(), set.public_key_size());
        let out =
            client::parse_encapsulate(&exec(&mut sim, &client::encapsulate(key.handle))).unwrap();
        assert_eq!(out.shared_secret.len(), 32);
        assert_eq!(out.ciphertext.len(), set.ciphertext_size());
        assert_eq!(
            decapsulate(&mut sim, key.handle, b"kem", &out.ciphertext),
            out.shared_secret
        );
        // Each encapsulation is fresh.
        let again =
            client::parse_encapsulate(&exec(&mut sim, &client::encapsulate(key.handle))).unwrap();
        assert_ne!(again.shared_secret, out.shared_secret);
        flush(&mut sim, key.handle);
    }
}

#[test]
fn fips203_encapsulation_to_the_sim_key_decapsulates_in_the_sim() {
    let mut sim = started();
    for set in MlKemParameterSet::ALL {
        let key = primary(&mut sim, &PublicArea::mlkem(set), b"");
        let read =
            client::parse_read_public(&exec(&mut sim, &client::read_public(key.handle))).unwrap();
        let ek = read.public.public_key().to_vec();
        let (secret, ciphertext) = fips_encapsulate(set, &ek, [5; 32]);
        assert_eq!(
            decapsulate(&mut sim, key.handle, b"", &ciphertext),
            secret,
            "{set:?}"
        );

        // A corrupted ciphertext gives a different (implicitly rejected) secret.
        let mut bad = ciphertext.clone();
        bad[17] ^= 0x10;
        assert_ne!(decapsulate(&mut sim, key.handle, b"", &bad), secret);
        // Encapsulating to a corrupted public key gives a ciphertext whose
        // secret the sim's key does not recover.
        let mut bad_ek = ek.clone();
        bad_ek[3] ^= 0x01;
        let (other_secret, other_ct) = fips_encapsulate(set, &bad_ek, [5; 32]);
        assert_ne!(
            decapsulate(&mut sim, key.handle, b"", &other_ct),
            other_secret
        );
        // A wrong-length ciphertext is refused.
        let response = exec(
            &mut sim,
            &client::decapsulate(key.handle, b"", &ciphertext[1..]),
        );
        assert_eq!(rc(&response), ResponseCode::SIZE.with_parameter(1));
        flush(&mut sim, key.handle);
    }
}

#[test]
fn sim_encapsulation_to_a_fips203_key_decapsulates_in_fips203() {
    let mut sim = started();
    macro_rules! check {
        ($m:ident, $set:expr) => {{
            let (ek, dk) = $m::KG::keygen_from_seed([1; 32], [2; 32]);
            let ek_bytes = ek.into_bytes();
            let area = PublicArea::mlkem($set).with_unique(&ek_bytes);
            let loaded = client::parse_load(&exec(
                &mut sim,
                &client::load_external_public(&area.to_bytes(), TPM_RH_OWNER),
            ))
            .unwrap();
            let out =
                client::parse_encapsulate(&exec(&mut sim, &client::encapsulate(loaded.handle)))
                    .unwrap();
            let ct =
                $m::CipherText::try_from_bytes(out.ciphertext.clone().try_into().unwrap()).unwrap();
            let secret = dk.try_decaps(&ct).unwrap();
            assert_eq!(secret.into_bytes().to_vec(), out.shared_secret);
            // Decapsulation needs the private key.
            let response = exec(
                &mut sim,
                &client::decapsulate(loaded.handle, b"", &out.ciphertext),
            );
            assert_eq!(rc(&response), ResponseCode::AUTH_UNAVAILABLE);
            flush(&mut sim, loaded.handle);
        }};
    }
    check!(ml_kem_512, MlKemParameterSet::MlKem512);
    check!(ml_kem_768, MlKemParameterSet::MlKem768);
    check!(ml_kem_1024, MlKemParameterSet::MlKem1024);
}

#[test]
fn kem_commands_check_the_key() {
    let mut sim = started();
    let signer = primary(
        &mut sim,
        &PublicArea::mldsa(vtpm_wire::structures::MlDsaParameterSet::MlDsa44),
        b"",
    );
    let response = exec(&mut sim, &client::encapsulate(signer.handle));
    assert_eq!(rc(&response), ResponseCode::KEY.with_handle(1));
    let parent = primary(
        &mut sim,
        &PublicArea::mlkem_storage_parent(MlKemParameterSet::MlKem768),
        b"",
    );
    // "The TPM does not verify the objectAttributes of the key" (Part 3
    // §14.10.1): a restricted storage key encapsulates too, but only an
    // unrestricted decryption key decapsulates.
    let response = exec(&mut sim, &client::encapsulate(parent.handle));
    let sent = client::parse_encapsulate(&response).expect("a storage key encapsulates");
    assert_eq!(
        sent.ciphertext.len(),
        MlKemParameterSet::MlKem768.ciphertext_size()
    );
    let response = exec(
        &mut sim,
        &client::decapsulate(parent.handle, b"", &sent.ciphertext),
    );
    assert_eq!(
        rc(&response),
        ResponseCode::ATTRIBUTES.with_handle(1),
        "restricted keys do not decapsulate"
    );
    // An external public key that fails the FIPS 203 modulus check is TPM_RC_KEY.
    let area = PublicArea::mlkem(MlKemParameterSet::MlKem512).with_unique(&[0xFF; 800]);
    let response = exec(
        &mut sim,
        &client::load_external_public(&area.to_bytes(), TPM_RH_OWNER),
    );
    assert_eq!(rc(&response), ResponseCode::KEY.with_parameter(2));
}
