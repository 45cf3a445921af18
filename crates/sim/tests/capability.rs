//! TPM2_GetCapability answers.

mod common;

use common::{exec, started};
use vtpm_client::{get_capability, parse_tpm_properties, Response};
use vtpm_wire::consts::{
    TPM_ALG_HASH_MLDSA, TPM_ALG_MLDSA, TPM_ALG_MLKEM, TPM_CAP_ALGS, TPM_CAP_COMMANDS, TPM_CAP_PCRS,
    TPM_CAP_TPM_PROPERTIES, TPM_PT_MANUFACTURER, TPM_PT_MAX_COMMAND_SIZE, TPM_PT_MAX_RESPONSE_SIZE,
    TPM_PT_PCR_COUNT,
};
use vtpm_wire::{cc, Reader};

#[test]
fn properties_report_the_buffer_and_the_platform() {
    let mut sim = started();
    let props = parse_tpm_properties(&exec(
        &mut sim,
        &get_capability(TPM_CAP_TPM_PROPERTIES, 0x100, 200),
    ))
    .unwrap();
    let get = |p: u32| props.iter().find(|(tag, _)| *tag == p).map(|(_, v)| *v);
    assert_eq!(get(TPM_PT_MAX_COMMAND_SIZE), Some(8192));
    assert_eq!(get(TPM_PT_MAX_RESPONSE_SIZE), Some(8192));
    assert_eq!(get(TPM_PT_PCR_COUNT), Some(24));
    assert_eq!(get(TPM_PT_MANUFACTURER), Some(u32::from_be_bytes(*b"VTPM")));
    assert_eq!(get(0x100), Some(0x322E_3000));
    assert_eq!(get(vtpm_wire::consts::TPM_PT_ML_PARAMETER_SETS), Some(0x7F));
    // Starting in the middle and asking for one entry.
    let one = parse_tpm_properties(&exec(
        &mut sim,
        &get_capability(TPM_CAP_TPM_PROPERTIES, TPM_PT_MAX_COMMAND_SIZE, 1),
    ))
    .unwrap();
    assert_eq!(one, vec![(TPM_PT_MAX_COMMAND_SIZE, 8192)]);
}

/// The list entries of a capability answer: (moreData, count, entry bytes).
fn entries(response: &[u8], cap: u32) -> (u8, u32, Vec<u8>) {
    let body = Response::parse(response)
        .unwrap()
        .success_body()
        .unwrap()
        .to_vec();
    let mut r = Reader::new(&body);
    let more = r.u8().unwrap();
    assert_eq!(r.u32().unwrap(), cap);
    let count = r.u32().unwrap();
    (more, count, r.rest().to_vec())
}

#[test]
fn algorithms_include_the_post_quantum_ones() {
    let mut sim = started();
    let (more, count, data) = entries(
        &exec(&mut sim, &get_capability(TPM_CAP_ALGS, 0, 100)),
        TPM_CAP_ALGS,
    );
    assert_eq!(more, 0);
    let algs: Vec<(u16, u32)> = data
        .chunks_exact(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect();
    assert_eq!(algs.len(), count as usize);
    assert!(algs.contains(&(TPM_ALG_MLKEM, 0x0209)));
    assert!(algs.contains(&(TPM_ALG_MLDSA, 0x0109)));
    assert!(algs.contains(&(TPM_ALG_HASH_MLDSA, 0x0109)));
    let (more, count, _) = entries(
        &exec(&mut sim, &get_capability(TPM_CAP_ALGS, 0, 2)),
        TPM_CAP_ALGS,
    );
    assert_eq!((more, count), (1, 2));
}

#[test]
fn commands_and_pcr_banks() {
    let mut sim = started();
    let (_, count, data) = entries(
        &exec(&mut sim, &get_capability(TPM_CAP_COMMANDS, 0, 100)),
        TPM_CAP_COMMANDS,
    );
    let codes: Vec<u32> = data
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) & 0xFFFF)
        .collect();
    assert_eq!(codes.len(), count as usize);
    for code in [
        cc::STARTUP,
        cc::CREATE_PRIMARY,
        cc::SIGN_DIGEST,
        cc::VERIFY_DIGEST_SIGNATURE,
        cc::ENCAPSULATE,
        cc::DECAPSULATE,
    ] {
        assert!(codes.contains(&code), "{code:#x}");
    }
    // The count bounds the banks listed, as in libtpms.
    let (more, count, data) = entries(
        &exec(&mut sim, &get_capability(TPM_CAP_PCRS, 0, 1)),
        TPM_CAP_PCRS,
    );
    assert_eq!(more, 1);
    assert_eq!(count, 1);
    assert_eq!(data, [0, 0x0B, 3, 0xFF, 0xFF, 0xFF]);
    let (_, count, data) = entries(
        &exec(&mut sim, &get_capability(TPM_CAP_PCRS, 0, 8)),
        TPM_CAP_PCRS,
    );
    assert_eq!(count, 2);
    assert_eq!(
        data,
        [0, 0x0B, 3, 0xFF, 0xFF, 0xFF, 0, 0x0C, 3, 0xFF, 0xFF, 0xFF]
    );
}
