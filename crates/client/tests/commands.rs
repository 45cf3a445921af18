//! The object, signature and KEM builders and parsers against known
//! layouts and hostile input.

use proptest::prelude::*;
use vtpm_client::*;
use vtpm_wire::consts::{
    TPM_ALG_SHA256, TPM_ALG_SHA384, TPM_RH_OWNER, TPM_ST_CREATION, TPM_ST_NO_SESSIONS,
    TPM_ST_SESSIONS, TPM_ST_VERIFIED,
};
use vtpm_wire::structures::{MlDsaParameterSet, PublicArea, Signature};
use vtpm_wire::{cc, CommandBuilder, Header, Reader, ResponseCode, WireError};

/// A response with `tag`, success, and `body`.
fn response(tag: u16, body: &[u8]) -> Vec<u8> {
    let mut out = CommandBuilder::new(tag, 0).bytes(body).finish();
    out[0..2].copy_from_slice(&tag.to_be_bytes());
    out
}

/// A sessions response body: optional handle, parameterSize, parameters,
/// and one password session answer.
fn session_body(handle: Option<u32>, params: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    if let Some(h) = handle {
        b.extend_from_slice(&h.to_be_bytes());
    }
    b.extend_from_slice(&(params.len() as u32).to_be_bytes());
    b.extend_from_slice(params);
    b.extend_from_slice(&[0, 0, 1, 0, 0]);
    b
}

fn tpm2b(v: &[u8]) -> Vec<u8> {
    let mut out = (v.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(v);
    out
}

#[test]
fn create_primary_command_layout() {
    let t = PublicArea::storage_parent();
    let c = create_primary(TPM_RH_OWNER, b"pw", &t, b"ka");
    let h = Header::parse_exact(&c).unwrap();
    assert_eq!(h.code, cc::CREATE_PRIMARY);
    assert_eq!(h.tag, TPM_ST_SESSIONS);
    let mut r = Reader::new(&c[10..]);
    assert_eq!(r.u32().unwrap(), TPM_RH_OWNER);
    let auth_size = r.u32().unwrap();
    assert_eq!(auth_size, 11);
    r.bytes(auth_size as usize).unwrap();
    // inSensitive: size 6 = userAuth(2+2) + data(2)
    assert_eq!(r.tpm2b().unwrap(), &[0, 2, b'k', b'a', 0, 0]);
    assert_eq!(PublicArea::parse(r.tpm2b().unwrap()).unwrap(), t);
    assert_eq!(r.tpm2b().unwrap(), &[] as &[u8]);
    assert_eq!(r.u32().unwrap(), 0);
    r.finish().unwrap();
}

#[test]
fn sign_digest_and_verify_layouts() {
    let c = sign_digest(0x8000_0001, b"", b"ctx", &[1; 64]);
    // header 10, handle 4, auth size 4 + 9, context 2+3, digest 2+64, ticket 2+4+2
    assert_eq!(c.len(), 10 + 4 + 4 + 9 + 5 + 66 + 8);
    assert_eq!(&c[c.len() - 8..], &[0x80, 0x24, 0x40, 0, 0, 7, 0, 0]);
    let sig = Signature::MlDsa(vec![5; 4627]);
    let v = verify_digest_signature(0x8000_0001, b"", &[1; 64], &sig);
    assert_eq!(v.len(), 4713);
    let hs = Signature::HashMlDsa {
        hash_alg: TPM_ALG_SHA256,
        signature: vec![1, 2],
    };
    assert_eq!(hs.to_bytes(), [0, 0xA2, 0, 0x0B, 0, 2, 1, 2]);
    assert_eq!(
        Signature::read(&mut Reader::new(&hs.to_bytes())).unwrap(),
        hs
    );
}

#[test]
fn parses_create_primary_response() {
    let area = PublicArea::mldsa(MlDsaParameterSet::MlDsa44).with_unique(&[3; 1312]);
    let mut params = tpm2b(&area.to_bytes());
    params.extend(tpm2b(b"creation data"));
    params.extend(tpm2b(&[9; 32]));
    params.extend_from_slice(&[0x80, 0x21, 0x40, 0, 0, 1]);
    params.extend(tpm2b(&[8; 32]));
    params.extend(tpm2b(&[0, 0x0B, 1, 2]));
    let resp = response(TPM_ST_SESSIONS, &session_body(Some(0x8000_0000), &params));
    let out = parse_create_primary(&resp).unwrap();
    assert_eq!(out.handle, 0x8000_0000);
    assert_eq!(out.public.public_key(), &[3; 1312]);
    assert_eq!(out.public_bytes, area.to_bytes());
    assert_eq!(out.creation_ticket.tag, TPM_ST_CREATION);
    assert_eq!(out.name, [0, 0x0B, 1, 2]);

    // parameterSize larger than the body is an error, not a panic.
    let mut lying = resp.clone();
    lying[14..18].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        parse_create_primary(&lying),
        Err(WireError::Truncated { .. })
    ));
}

#[test]
fn parses_kem_and_ticket_responses() {
    let mut params = tpm2b(&[1; 32]);
    params.extend(tpm2b(&[2; 1568]));
    let out = parse_encapsulate(&response(TPM_ST_NO_SESSIONS, &params)).unwrap();
    assert_eq!(out.shared_secret, [1; 32]);
    assert_eq!(out.ciphertext.len(), 1568);
    let resp = response(TPM_ST_SESSIONS, &session_body(None, &tpm2b(&[4; 32])));
    assert_eq!(parse_decapsulate(&resp).unwrap(), [4; 32]);

    let mut ticket = vec![0x80, 0x27, 0x40, 0, 0, 1, 0, 0x0C];
    ticket.extend(tpm2b(&[6; 48]));
    let t = parse_verify(&response(TPM_ST_NO_SESSIONS, &ticket)).unwrap();
    assert_eq!(t.metadata, Some(TPM_ALG_SHA384));
    assert_eq!(t.hmac, [6; 48]);
    let null = [0x80, 0x22, 0x40, 0, 0, 7, 0, 0];
    let t = parse_verify(&response(TPM_ST_NO_SESSIONS, &null)).unwrap();
    assert_eq!(
        (t.tag, t.metadata, t.hmac.len()),
        (TPM_ST_VERIFIED, None, 0)
    );
    let bogus = [0x12, 0x34, 0x40, 0, 0, 7, 0, 0];
    assert!(parse_verify(&response(TPM_ST_NO_SESSIONS, &bogus)).is_err());
}

#[test]
fn null_digest_verified_tickets_parse_with_and_without_metadata() {
    // <tag, TPM_RH_NULL, 0x0000>, as shipped v1.85 TPMs write it.
    let bare = [0x80, 0x27, 0x40, 0, 0, 7, 0, 0];
    let t = parse_verify(&response(TPM_ST_NO_SESSIONS, &bare)).unwrap();
    assert_eq!((t.tag, t.metadata, t.hmac.len()), (0x8027, None, 0));
    // The same ticket with its metadata.
    let with = [0x80, 0x27, 0x40, 0, 0, 7, 0, 0x0D, 0, 0];
    let t = parse_verify(&response(TPM_ST_NO_SESSIONS, &with)).unwrap();
    assert_eq!((t.metadata, t.hmac.len()), (Some(0x000D), 0));
    // Outside the NULL hierarchy the metadata is required.
    let owner = [0x80, 0x27, 0x40, 0, 0, 1, 0, 0];
    assert!(parse_verify(&response(TPM_ST_NO_SESSIONS, &owner)).is_err());
}

#[test]
fn sequence_command_layouts() {
    let start = verify_sequence_start(0x8000_0001, b"pw", b"", b"ctx");
    assert_eq!(
        Header::parse(&start).unwrap().code,
        cc::VERIFY_SEQUENCE_START
    );
    assert_eq!(
        &start[10..],
        [0x80, 0, 0, 1, 0, 2, b'p', b'w', 0, 0, 0, 3, b'c', b't', b'x']
    );
    let complete = sign_sequence_complete(0x8000_0100, b"s", 0x8000_0001, b"k", b"m");
    let mut r = Reader::new(&complete[10..]);
    assert_eq!(
        (r.u32().unwrap(), r.u32().unwrap()),
        (0x8000_0100, 0x8000_0001)
    );
    // Two password sessions, 10 bytes each with a 1-byte password.
    assert_eq!(r.u32().unwrap(), 20);
    let area = r.bytes(20).unwrap();
    assert_eq!(area[..10], [0x40, 0, 0, 9, 0, 0, 0, 0, 1, b's']);
    assert_eq!(area[10..], [0x40, 0, 0, 9, 0, 0, 0, 0, 1, b'k']);
    assert_eq!(r.rest(), [0, 1, b'm']);
    let handle = response(TPM_ST_NO_SESSIONS, &[0x80, 0, 1, 2]);
    assert_eq!(parse_sequence_start(&handle).unwrap(), 0x8000_0102);
}

#[test]
fn error_responses_become_tpm_errors() {
    let err = vtpm_wire::error_response(ResponseCode::INTEGRITY.with_parameter(1));
    assert_eq!(parse_load(&err), Err(WireError::Tpm(ResponseCode(0x1DF))));
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut framed = bytes.clone();
        if framed.len() >= 10 {
            let n = framed.len() as u32;
            framed[2..6].copy_from_slice(&n.to_be_bytes());
            framed[6..10].copy_from_slice(&[0; 4]);
        }
        for b in [&bytes, &framed] {
            let _ = parse_create_primary(b);
            let _ = parse_create(b);
            let _ = parse_load(b);
            let _ = parse_read_public(b);
            let _ = parse_sign(b);
            let _ = parse_verify(b);
            let _ = parse_sequence_start(b);
            let _ = parse_encapsulate(b);
            let _ = parse_decapsulate(b);
            let _ = parse_empty(b);
            let _ = PublicArea::parse(b);
        }
    }
}
