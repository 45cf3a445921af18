//! Primary keys, Create/Load, protected private areas, names, passwords
//! and the transient object table.

mod common;

use common::{exec, flush, primary, rc, sequence_sign, sequence_verify, sim_with_seed, started};
use sha2::{Digest, Sha256};
use vtpm_client as client;
use vtpm_client::startup;
use vtpm_wire::consts::{
    TPMA_OBJECT_DECRYPT, TPMA_OBJECT_FIXED_PARENT, TPMA_OBJECT_FIXED_TPM, TPMA_OBJECT_NO_DA,
    TPMA_OBJECT_SENSITIVE_DATA_ORIGIN, TPMA_OBJECT_SIGN, TPMA_OBJECT_USER_WITH_AUTH,
    TPM_RH_LOCKOUT,
};
use vtpm_wire::consts::{
    TPM_ALG_SHA256, TPM_RH_ENDORSEMENT, TPM_RH_NULL, TPM_RH_OWNER, TPM_RH_PLATFORM,
};
use vtpm_wire::structures::{MlDsaParameterSet, MlKemParameterSet, PublicArea};
use vtpm_wire::ResponseCode;

#[test]
fn create_primary_is_deterministic_for_seed_and_template() {
    let template = PublicArea::mldsa(MlDsaParameterSet::MlDsa65);
    let mut sim = started();
    let a = primary(&mut sim, &template, b"one password");
    flush(&mut sim, a.handle);
    // The key depends on the seed and the template, not on the password.
    let b = primary(&mut sim, &template, b"another password");
    assert_eq!(a.public, b.public);
    assert_eq!(a.name, b.name);

    // Another simulator manufactured from the same generator seed has the
    // same primary seeds.
    let mut twin = started();
    assert_eq!(primary(&mut twin, &template, b"").public, a.public);

    // A different template (here only its unique field) or hierarchy or
    // simulator gives a different key.
    let salted = primary(&mut sim, &template.clone().with_unique(b"salt"), b"");
    assert_ne!(salted.public.public_key(), a.public.public_key());
    let endorsement = client::parse_create_primary(&exec(
        &mut sim,
        &client::create_primary(TPM_RH_ENDORSEMENT, b"", &template, b""),
    ))
    .unwrap();
    assert_ne!(endorsement.public.public_key(), a.public.public_key());
    let mut stranger = sim_with_seed(99);
    exec(&mut stranger, &startup(0));
    assert_ne!(primary(&mut stranger, &template, b"").public, a.public);
}

#[test]
fn null_hierarchy_keys_change_on_every_tpm_reset() {
    let template = PublicArea::mlkem(MlKemParameterSet::MlKem512);
    let mut sim = started();
    let create = client::create_primary(TPM_RH_NULL, b"", &template, b"");
    let first = client::parse_create_primary(&exec(&mut sim, &create)).unwrap();
    sim.reset();
    exec(&mut sim, &startup(0));
    let second = client::parse_create_primary(&exec(&mut sim, &create)).unwrap();
    assert_ne!(first.public, second.public);
    // Owner keys survive the reset.
    let owner_a = primary(&mut sim, &template, b"");
    sim.reset();
    exec(&mut sim, &startup(0));
    assert_eq!(primary(&mut sim, &template, b"").public, owner_a.public);
}

#[test]
fn names_follow_the_public_area() {
    let mut sim = started();
    let key = primary(
        &mut sim,
        &PublicArea::mldsa(MlDsaParameterSet::MlDsa44),
        b"",
    );
    let mut expected = vec![0x00, 0x0B];
    expected.extend(Sha256::digest(&key.public_bytes));
    assert_eq!(key.name, expected);
    let read =
        client::parse_read_public(&exec(&mut sim, &client::read_public(key.handle))).unwrap();
    assert_eq!(read.name, key.name);
    assert_eq!(read.public_bytes, key.public_bytes);
    let mut qn_input = TPM_RH_OWNER.to_be_bytes().to_vec();
    qn_input.extend(&key.name);
    let mut qn = vec![0x00, 0x0B];
    qn.extend(Sha256::digest(&qn_input));
    assert_eq!(read.qualified_name, qn);
    assert_eq!(
        key.creation_hash,
        Sha256::digest(&key.creation_data).to_vec()
    );
    assert_eq!(key.creation_ticket.hierarchy, TPM_RH_OWNER);
    assert_eq!(key.creation_ticket.digest.len(), 32);
}

#[test]
fn create_and_load_round_trip_under_both_parent_kinds() {
    let mut sim = started();
    for parent_template in [
        PublicArea::storage_parent(),
        PublicArea::mlkem_storage_parent(MlKemParameterSet::MlKem768),
    ] {
        let parent = primary(&mut sim, &parent_template, b"parent");
        let child_template = PublicArea::mldsa(MlDsaParameterSet::MlDsa87);
        let created = client::parse_create(&exec(
            &mut sim,
            &client::create(parent.handle, b"parent", &child_template, b"child"),
        ))
        .unwrap();
        assert_eq!(created.public.public_key().len(), 2592);
        let loaded = client::parse_load(&exec(
            &mut sim,
            &client::load(
                parent.handle,
                b"parent",
                &created.private,
                &created.public_bytes,
            ),
        ))
        .unwrap();
        assert_eq!(
            loaded.name,
            created
                .public
                .name_alg
                .to_be_bytes()
                .iter()
                .copied()
                .chain(Sha256::digest(&created.public_bytes))
                .collect::<Vec<_>>()
        );
        // The loaded key signs with the child's password, and the signature
        // verifies under the public key Create returned.
        let digest = [0x5A; 32];
        let sig = sequence_sign(&mut sim, loaded.handle, b"child", b"", &digest);
        client::parse_verify(&sequence_verify(
            &mut sim,
            loaded.handle,
            b"",
            &[&digest],
            &sig,
        ))
        .unwrap();
        // Ordinary objects are random: a second Create differs.
        let again = client::parse_create(&exec(
            &mut sim,
            &client::create(parent.handle, b"parent", &child_template, b"child"),
        ))
        .unwrap();
        assert_ne!(again.public, created.public);
        flush(&mut sim, loaded.handle);
        flush(&mut sim, parent.handle);
    }
}

#[test]
fn tampered_private_or_public_areas_fail_load_with_integrity() {
    let mut sim = started();
    let parent = primary(&mut sim, &PublicArea::storage_parent(), b"");
    let created = client::parse_create(&exec(
        &mut sim,
        &client::create(
            parent.handle,
            b"",
            &PublicArea::mlkem(MlKemParameterSet::MlKem512),
            b"",
        ),
    ))
    .unwrap();
    let integrity_p1 = ResponseCode::INTEGRITY.with_parameter(1);
    assert_eq!(integrity_p1.0, 0x1DF);
    for position in [0, 2, 10, created.private.len() - 1] {
        let mut private = created.private.clone();
        private[position] ^= 0x01;
        let response = exec(
            &mut sim,
            &client::load(parent.handle, b"", &private, &created.public_bytes),
        );
        assert_eq!(
            rc(&response),
            integrity_p1,
            "byte {position} of the private area"
        );
    }
    let mut public = created.public_bytes.clone();
    let last = public.len() - 1;
    public[last] ^= 0x01; // a byte of the public key
    let response = exec(
        &mut sim,
        &client::load(parent.handle, b"", &created.private, &public),
    );
    assert_eq!(
        rc(&response),
        integrity_p1,
        "a changed public area changes the name"
    );
    // Another parent cannot load it either.
    let other = primary(
        &mut sim,
        &PublicArea::storage_parent().with_unique(b"other"),
        b"",
    );
    let response = exec(
        &mut sim,
        &client::load(other.handle, b"", &created.private, &created.public_bytes),
    );
    assert_eq!(rc(&response), integrity_p1);
    // The genuine blob still loads.
    client::parse_load(&exec(
        &mut sim,
        &client::load(parent.handle, b"", &created.private, &created.public_bytes),
    ))
    .unwrap();
}

#[test]
fn loading_needs_a_storage_parent() {
    let mut sim = started();
    let signer = primary(
        &mut sim,
        &PublicArea::mldsa(MlDsaParameterSet::MlDsa44),
        b"",
    );
    let response = exec(
        &mut sim,
        &client::create(
            signer.handle,
            b"",
            &PublicArea::mldsa(MlDsaParameterSet::MlDsa44),
            b"",
        ),
    );
    assert_eq!(rc(&response), ResponseCode::TYPE.with_handle(1));
}

#[test]
fn wrong_passwords_are_rejected_with_the_session_number() {
    // HashML-DSA keys, so TPM2_SignDigest with a SHA-256 digest succeeds
    // once the authorization does.
    let mut sim = started();
    let da_key = primary(
        &mut sim,
        &PublicArea::hash_mldsa(MlDsaParameterSet::MlDsa44, TPM_ALG_SHA256),
        b"right",
    );
    let response = exec(
        &mut sim,
        &client::sign_digest(da_key.handle, b"wrong", b"", &[0; 32]),
    );
    assert_eq!(rc(&response).0, 0x98E, "TPM_RC_AUTH_FAIL for session 1");
    // Trailing zeros do not count.
    let response = exec(
        &mut sim,
        &client::sign_digest(da_key.handle, b"right\0\0", b"", &[0; 32]),
    );
    assert_eq!(rc(&response), ResponseCode::SUCCESS);

    let no_da = PublicArea::hash_mldsa(MlDsaParameterSet::MlDsa44, TPM_ALG_SHA256).with_attributes(
        TPMA_OBJECT_FIXED_TPM
            | TPMA_OBJECT_FIXED_PARENT
            | TPMA_OBJECT_SENSITIVE_DATA_ORIGIN
            | TPMA_OBJECT_USER_WITH_AUTH
            | TPMA_OBJECT_NO_DA
            | TPMA_OBJECT_SIGN,
    );
    let key = primary(&mut sim, &no_da, b"right");
    let response = exec(
        &mut sim,
        &client::sign_digest(key.handle, b"", b"", &[0; 32]),
    );
    assert_eq!(rc(&response).0, 0x9A2, "TPM_RC_BAD_AUTH for session 1");

    // Without userWithAuth a password cannot authorize the USER role.
    let policy_only = no_da
        .clone()
        .with_attributes(no_da.attributes & !TPMA_OBJECT_USER_WITH_AUTH);
    let key = primary(&mut sim, &policy_only, b"");
    let response = exec(
        &mut sim,
        &client::sign_digest(key.handle, b"", b"", &[0; 32]),
    );
    assert_eq!(rc(&response), ResponseCode::AUTH_UNAVAILABLE);

    // Hierarchy passwords.
    exec(
        &mut sim,
        &client::hierarchy_change_auth(TPM_RH_OWNER, b"", b"owner"),
    );
    let template = PublicArea::mlkem(MlKemParameterSet::MlKem512);
    let response = exec(
        &mut sim,
        &client::create_primary(TPM_RH_OWNER, b"", &template, b""),
    );
    assert_eq!(rc(&response).0, 0x9A2);
    let response = exec(
        &mut sim,
        &client::create_primary(TPM_RH_OWNER, b"owner", &template, b""),
    );
    assert_eq!(rc(&response), ResponseCode::SUCCESS);
    let response = exec(
        &mut sim,
        &client::hierarchy_change_auth(TPM_RH_LOCKOUT, b"x", b""),
    );
    assert_eq!(
        rc(&response).0,
        0x98E,
        "lockoutAuth is dictionary-attack protected"
    );
    // platformAuth is emptied by Startup(CLEAR); ownerAuth is not.
    exec(
        &mut sim,
        &client::hierarchy_change_auth(TPM_RH_PLATFORM, b"", b"platform"),
    );
    sim.reset();
    exec(&mut sim, &startup(0));
    client::parse_empty(&exec(
        &mut sim,
        &client::hierarchy_change_auth(TPM_RH_PLATFORM, b"", b""),
    ))
    .unwrap();
    let response = exec(
        &mut sim,
        &client::create_primary(TPM_RH_OWNER, b"", &template, b""),
    );
    assert_eq!(rc(&response).0, 0x9A2);
}

#[test]
fn the_transient_table_is_bounded() {
    let mut sim = started();
    let template = PublicArea::mlkem(MlKemParameterSet::MlKem512);
    let mut handles = Vec::new();
    for _ in 0..vtpm_sim::TRANSIENT_SLOTS {
        handles.push(primary(&mut sim, &template, b"").handle);
    }
    let response = exec(
        &mut sim,
        &client::create_primary(TPM_RH_OWNER, b"", &template, b""),
    );
    assert_eq!(rc(&response), ResponseCode::OBJECT_MEMORY);
    flush(&mut sim, handles[3]);
    let again = primary(&mut sim, &template, b"");
    assert_eq!(again.handle, handles[3], "the freed slot is reused");
    // Flushing twice, or a handle that was never loaded, is TPM_RC_HANDLE.
    flush(&mut sim, handles[0]);
    let response = exec(&mut sim, &client::flush_context(handles[0]));
    assert_eq!(rc(&response), ResponseCode::HANDLE.with_parameter(1));
    let response = exec(&mut sim, &client::flush_context(0x4000_0001));
    assert_eq!(rc(&response), ResponseCode::VALUE.with_parameter(1));
    // The flushed handle no longer names an object.
    let response = exec(&mut sim, &client::read_public(handles[0]));
    assert_eq!(rc(&response).0, 0x910, "TPM_RC_REFERENCE_H0");
}

#[test]
fn attribute_rules_are_enforced() {
    let mut sim = started();
    let decrypting_signer = PublicArea::mldsa(MlDsaParameterSet::MlDsa44).with_attributes(
        TPMA_OBJECT_SIGN
            | TPMA_OBJECT_DECRYPT
            | TPMA_OBJECT_SENSITIVE_DATA_ORIGIN
            | TPMA_OBJECT_USER_WITH_AUTH,
    );
    let response = exec(
        &mut sim,
        &client::create_primary(TPM_RH_OWNER, b"", &decrypting_signer, b""),
    );
    assert_eq!(rc(&response), ResponseCode::ATTRIBUTES.with_parameter(2));
    let fixed_tpm_only = PublicArea::mlkem(MlKemParameterSet::MlKem512).with_attributes(
        TPMA_OBJECT_FIXED_TPM | TPMA_OBJECT_DECRYPT | TPMA_OBJECT_SENSITIVE_DATA_ORIGIN,
    );
    let response = exec(
        &mut sim,
        &client::create_primary(TPM_RH_OWNER, b"", &fixed_tpm_only, b""),
    );
    assert_eq!(rc(&response), ResponseCode::ATTRIBUTES.with_parameter(2));
    let mut bad_set = PublicArea::mldsa(MlDsaParameterSet::MlDsa44).to_bytes();
    bad_set[11] = 7;
    let command = vtpm_wire::CommandBuilder::with_sessions(vtpm_wire::cc::CREATE_PRIMARY)
        .u32(TPM_RH_OWNER)
        .password_session(b"")
        .tpm2b(&[0, 0, 0, 0])
        .tpm2b(&bad_set)
        .tpm2b(&[])
        .u32(0)
        .finish();
    assert_eq!(
        rc(&exec(&mut sim, &command)),
        vtpm_wire::ResponseCode::PARMS.with_parameter(2)
    );
}
