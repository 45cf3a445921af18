//! ML-DSA and ML-KEM end to end: guest CRB driver → CRB device with PTP
//! v1.07 chunking → backend worker → embedded simulator, at the smallest
//! window (64), a middle one (512) and the largest (3968).
//!
//! Everything the checks use comes back through that path: public keys,
//! signatures, ciphertexts and secrets. Signatures are verified by the
//! simulator and by an independent ML-DSA implementation (`fips204`); KEM
//! secrets are checked against an independent ML-KEM (`fips203`). A test
//! double that flips one byte of one response piece shows that these checks
//! catch a transport that corrupts data.

use fips203::traits::{Encaps, SerDes as _};
use fips203::{ml_kem_1024, ml_kem_512, ml_kem_768};
use fips204::traits::{SerDes as _, Verifier};
use fips204::{ml_dsa_44, ml_dsa_65, ml_dsa_87, pre_hash};
use sha2::{Digest, Sha256, Sha384, Sha512};
use vtpm_backend::sim::{SimBackend, SimConfig};
use vtpm_client as client;
use vtpm_client::{startup, Response};
use vtpm_crb::ChunkPolicy;
use vtpm_guest::{CrbDriver, Mmio, Transfer};
use vtpm_platform::{CrbBus, Execution, Platform, PlatformConfig};
use vtpm_wire::consts::{
    TPM_ALG_SHA256, TPM_ALG_SHA384, TPM_ALG_SHA512, TPM_RH_OWNER, TPM_SU_CLEAR,
};
use vtpm_wire::consts::{TPM_ST_DIGEST_VERIFIED, TPM_ST_MESSAGE_VERIFIED};
use vtpm_wire::structures::{MlDsaParameterSet, MlKemParameterSet, PublicArea, Signature};
use vtpm_wire::{ResponseCode, HEADER_SIZE};

/// The smallest window the device allows, a middle one, and the largest
/// (one 4 KiB page less the 128 bytes of registers before the window).
const WINDOWS: [usize; 3] = [64, 512, 3968];

/// The classic TPM buffer: ML-DSA-87 signatures and their verify commands
/// are larger, so they cannot cross a 3968-byte window in one piece.
const CLASSIC_BUFFER: usize = 4096;

const KEY_AUTH: &[u8] = b"key password";

/// A started simulator behind a CRB device with the given window, and a
/// guest driver on its bus (or on a wrapper around that bus).
struct TpmPath<M: Mmio = CrbBus> {
    driver: CrbDriver<M>,
    window: usize,
    /// Declared after the driver so it is dropped last: it owns the device
    /// and the backend worker the driver talks to.
    _platform: Platform,
}

fn sim_platform(window: usize) -> Platform {
    // A fixed generator seed makes the primary keys, and so any failure,
    // reproducible.
    let sim = SimBackend::new(SimConfig {
        rng_seed: Some([0x5A; 32]),
        ..SimConfig::default()
    })
    .expect("simulator configuration");
    Platform::new(
        Box::new(sim),
        PlatformConfig {
            window_size: window,
            chunking: ChunkPolicy::Auto,
            execution: Execution::Worker,
            ..PlatformConfig::default()
        },
    )
    .expect("platform")
}

impl TpmPath<CrbBus> {
    fn new(window: usize) -> Self {
        Self::with_bus(window, |bus| bus)
    }
}

impl<M: Mmio> TpmPath<M> {
    /// Builds the path with the driver on `wrap(bus)` and runs TPM2_Startup.
    fn with_bus(window: usize, wrap: impl FnOnce(CrbBus) -> M) -> Self {
        let platform = sim_platform(window);
        let mut driver = CrbDriver::new(wrap(platform.bus()));
        let info = driver.probe().expect("probe");
        // The simulator's 8192-byte buffer exceeds every window, so the
        // device must offer chunking and the driver must use it.
        assert!(info.chunking, "CapCRBChunk advertised at window {window}");
        assert_eq!(info.window_size, window);
        assert_eq!(info.response_window_size, window);
        let mut path = Self {
            driver,
            window,
            _platform: platform,
        };
        let (response, _) = path.transmit(&startup(TPM_SU_CLEAR));
        assert_eq!(rc(&response), ResponseCode::SUCCESS, "Startup");
        path
    }

    /// Sends `command` from locality 0 and returns the response and what
    /// moved. Every piece but the last fills the window, so the piece counts
    /// follow from the sizes; checking them shows the transfer really was
    /// chunked as the window demands.
    fn transmit(&mut self, command: &[u8]) -> (Vec<u8>, Transfer) {
        let response = self
            .driver
            .transmit(0, command)
            .unwrap_or_else(|e| panic!("transfer at window {}: {e}", self.window));
        let transfer = self.driver.last_transfer();
        assert_eq!(
            transfer.chunks_sent,
            command.len().div_ceil(self.window),
            "command pieces for {} bytes at window {}",
            command.len(),
            self.window
        );
        assert_eq!(
            transfer.chunks_received,
            response.len().div_ceil(self.window),
            "response pieces for {} bytes at window {}",
            response.len(),
            self.window
        );
        (response, transfer)
    }

    fn create_primary(&mut self, template: &PublicArea) -> client::CreatePrimaryResponse {
        let command = client::create_primary(TPM_RH_OWNER, b"", template, KEY_AUTH);
        client::parse_create_primary(&self.transmit(&command).0).expect("CreatePrimary succeeds")
    }

    /// The key's public area as TPM2_ReadPublic returns it.
    fn read_public(&mut self, handle: u32) -> client::ReadPublicResponse {
        client::parse_read_public(&self.transmit(&client::read_public(handle)).0)
            .expect("ReadPublic succeeds")
    }

    /// Creates a primary key and returns its handle and its public key,
    /// after checking that ReadPublic returns the same public area.
    fn primary_with_public_key(&mut self, template: &PublicArea) -> (u32, Vec<u8>) {
        let created = self.create_primary(template);
        let read = self.read_public(created.handle);
        assert_eq!(
            read.public_bytes, created.public_bytes,
            "ReadPublic and CreatePrimary return the same public area"
        );
        (created.handle, created.public.public_key().to_vec())
    }

    fn decapsulate(&mut self, handle: u32, ciphertext: &[u8]) -> client::SharedSecret {
        let command = client::decapsulate(handle, KEY_AUTH, ciphertext);
        client::parse_decapsulate(&self.transmit(&command).0).expect("Decapsulate succeeds")
    }

    fn flush(&mut self, handle: u32) {
        client::parse_empty(&self.transmit(&client::flush_context(handle)).0)
            .expect("FlushContext succeeds");
    }
}

fn rc(response: &[u8]) -> ResponseCode {
    Response::parse(response).expect("response header").rc()
}

/// Verifies an ML-DSA signature with `fips204`: pure ML-DSA over `message`
/// with context `ctx`, or HashML-DSA over the pre-hashed `message` with the
/// pre-hash `oid`. Malformed keys and signatures are simply invalid.
fn fips204_verifies(
    set: MlDsaParameterSet,
    public_key: &[u8],
    signature: &[u8],
    ctx: &[u8],
    message: &[u8],
    oid: Option<&[u8; 11]>,
) -> bool {
    macro_rules! verify {
        ($m:ident) => {{
            let Ok(pk) = <[u8; $m::PK_LEN]>::try_from(public_key) else {
                return false;
            };
            let Ok(sig) = <[u8; $m::SIG_LEN]>::try_from(signature) else {
                return false;
            };
            let Ok(pk) = $m::PublicKey::try_from_bytes(pk) else {
                return false;
            };
            match oid {
                None => pk.verify(message, &sig, ctx),
                Some(oid) => pk.hash_verify(message, &sig, ctx, oid),
            }
        }};
    }
    match set {
        MlDsaParameterSet::MlDsa44 => verify!(ml_dsa_44),
        MlDsaParameterSet::MlDsa65 => verify!(ml_dsa_65),
        MlDsaParameterSet::MlDsa87 => verify!(ml_dsa_87),
    }
}

/// Encapsulates to `public_key` with `fips203` and the randomness `seed`:
/// (shared secret, ciphertext).
fn fips203_encapsulate(
    set: MlKemParameterSet,
    public_key: &[u8],
    seed: [u8; 32],
) -> (Vec<u8>, Vec<u8>) {
    macro_rules! encapsulate {
        ($m:ident) => {{
            let ek = <[u8; $m::EK_LEN]>::try_from(public_key).expect("encapsulation key size");
            let ek = $m::EncapsKey::try_from_bytes(ek).expect("valid encapsulation key");
            let (secret, ciphertext) = ek.encaps_from_seed(&seed);
            (
                secret.into_bytes().to_vec(),
                ciphertext.into_bytes().to_vec(),
            )
        }};
    }
    match set {
        MlKemParameterSet::MlKem512 => encapsulate!(ml_kem_512),
        MlKemParameterSet::MlKem768 => encapsulate!(ml_kem_768),
        MlKemParameterSet::MlKem1024 => encapsulate!(ml_kem_1024),
    }
}

/// A message that differs per parameter set and window, so no two checks
/// could pass by reusing one signature.
fn message_for(set: MlDsaParameterSet, window: usize) -> Vec<u8> {
    format!("a v1.85 sign sequence with {set:?} through a {window}-byte window").into_bytes()
}

/// The FIPS 204 context the sequence tests sign with.
const SEQUENCE_CTX: &[u8] = b"vtpm sequence";

/// Signs `message` with SignSequenceStart/SignSequenceComplete (the whole
/// message in the final buffer); returns the response and its transfer.
fn sequence_sign(path: &mut TpmPath, key: u32, message: &[u8]) -> (Vec<u8>, vtpm_guest::Transfer) {
    let (response, _) = path.transmit(&client::sign_sequence_start(key, b"", SEQUENCE_CTX));
    let sequence = client::parse_sequence_start(&response).expect("SignSequenceStart succeeds");
    path.transmit(&client::sign_sequence_complete(
        sequence, b"", key, KEY_AUTH, message,
    ))
}

/// Verifies with VerifySequenceStart/SequenceUpdate/VerifySequenceComplete;
/// returns the completion command, its response and its transfer.
fn sequence_verify(
    path: &mut TpmPath,
    key: u32,
    message: &[u8],
    signature: &Signature,
) -> (Vec<u8>, Vec<u8>, vtpm_guest::Transfer) {
    let (response, _) = path.transmit(&client::verify_sequence_start(key, b"", b"", SEQUENCE_CTX));
    let sequence = client::parse_sequence_start(&response).expect("VerifySequenceStart succeeds");
    let (response, _) = path.transmit(&client::sequence_update(sequence, b"", message));
    client::parse_empty(&response).expect("SequenceUpdate succeeds");
    let complete = client::verify_sequence_complete(sequence, b"", key, signature);
    let (response, transfer) = path.transmit(&complete);
    (complete, response, transfer)
}

#[test]
fn mldsa_sequence_signatures_through_the_crb_path_verify_in_the_sim_and_under_fips204() {
    for window in WINDOWS {
        let mut path = TpmPath::new(window);
        for set in MlDsaParameterSet::ALL {
            let (key, public_key) = path.primary_with_public_key(&PublicArea::mldsa(set));
            assert_eq!(public_key.len(), set.public_key_size());

            // Pure ML-DSA over the message with the sequence's context, as
            // FIPS 204 ML-DSA.Sign defines it.
            let message = message_for(set, window);
            let (response, signed) = sequence_sign(&mut path, key, &message);
            let signature = client::parse_sign(&response).expect("SignSequenceComplete succeeds");
            assert!(matches!(signature, Signature::MlDsa(_)));
            assert_eq!(signature.bytes().len(), set.signature_size());
            assert!(
                fips204_verifies(
                    set,
                    &public_key,
                    signature.bytes(),
                    SEQUENCE_CTX,
                    &message,
                    None
                ),
                "{set:?} at window {window}: fips204 rejects the signature"
            );

            let (verify, response, verified) =
                sequence_verify(&mut path, key, &message, &signature);
            let ticket = client::parse_verify(&response).expect("VerifySequenceComplete succeeds");
            assert_eq!(ticket.tag, TPM_ST_MESSAGE_VERIFIED);
            assert_eq!(ticket.hierarchy, TPM_RH_OWNER);

            if set == MlDsaParameterSet::MlDsa87 {
                // Neither fits a 4 KiB buffer, let alone one window.
                assert!(verify.len() > CLASSIC_BUFFER, "{} bytes", verify.len());
                assert!(signed.response_bytes > CLASSIC_BUFFER);
                assert!(signed.chunks_received >= 2, "{signed:?}");
                assert!(verified.chunks_sent >= 2, "{verified:?}");
            }
            path.flush(key);
        }
    }
}

#[test]
fn mldsa_verify_sequence_through_the_crb_path_rejects_a_tampered_signature() {
    // The sim's own verdict must depend on the signature bytes that crossed
    // the window, or the success above would prove nothing.
    let mut path = TpmPath::new(3968);
    let set = MlDsaParameterSet::MlDsa87;
    let (key, _) = path.primary_with_public_key(&PublicArea::mldsa(set));
    let message = message_for(set, 3968);
    let signature = client::parse_sign(&sequence_sign(&mut path, key, &message).0)
        .expect("SignSequenceComplete succeeds");
    let mut tampered = signature.bytes().to_vec();
    // A byte in the part of the signature that travels in the second piece.
    tampered[4200] ^= 0x01;
    let (_, response, transfer) =
        sequence_verify(&mut path, key, &message, &Signature::MlDsa(tampered));
    assert_eq!(transfer.chunks_sent, 2);
    assert_eq!(rc(&response), ResponseCode::SIGNATURE.with_parameter(1));
}

#[test]
fn hash_mldsa_sign_digest_through_the_crb_path_verifies_in_the_sim_and_under_fips204() {
    let ctx = b"vtpm pqc e2e";
    let message = b"a message hashed by the caller; only its digest reaches the TPM";
    let pre_hashes = [
        (
            MlDsaParameterSet::MlDsa44,
            TPM_ALG_SHA256,
            Sha256::digest(message).to_vec(),
            pre_hash::SHA2_256,
        ),
        (
            MlDsaParameterSet::MlDsa65,
            TPM_ALG_SHA384,
            Sha384::digest(message).to_vec(),
            pre_hash::SHA2_384,
        ),
        (
            MlDsaParameterSet::MlDsa87,
            TPM_ALG_SHA512,
            Sha512::digest(message).to_vec(),
            pre_hash::SHA2_512,
        ),
    ];
    for window in WINDOWS {
        let mut path = TpmPath::new(window);
        for (set, hash_alg, digest, oid) in &pre_hashes {
            let (set, hash_alg) = (*set, *hash_alg);
            let template = PublicArea::hash_mldsa(set, hash_alg);
            let (key, public_key) = path.primary_with_public_key(&template);

            // HashML-DSA: `digest` is PH(M) and `context` the FIPS 204 ctx.
            let command = client::sign_digest(key, KEY_AUTH, ctx, digest);
            let (response, signed) = path.transmit(&command);
            let signature = client::parse_sign(&response).expect("SignDigest succeeds");
            assert_eq!(
                signature,
                Signature::HashMlDsa {
                    hash_alg,
                    signature: signature.bytes().to_vec()
                }
            );
            assert!(
                fips204_verifies(set, &public_key, signature.bytes(), ctx, digest, Some(oid)),
                "{set:?} at window {window}: fips204 rejects the HashML-DSA signature"
            );

            let verify = client::verify_digest_signature(key, ctx, digest, &signature);
            let (response, verified) = path.transmit(&verify);
            let ticket = client::parse_verify(&response).expect("VerifyDigestSignature succeeds");
            assert_eq!(ticket.tag, TPM_ST_DIGEST_VERIFIED);
            assert_eq!(ticket.metadata, Some(hash_alg));

            if set == MlDsaParameterSet::MlDsa87 {
                assert!(signed.response_bytes > CLASSIC_BUFFER);
                assert!(verify.len() > CLASSIC_BUFFER);
                assert!(signed.chunks_received >= 2, "{signed:?}");
                assert!(verified.chunks_sent >= 2, "{verified:?}");
            }
            path.flush(key);
        }
    }
}

#[test]
fn mlkem_secrets_through_the_crb_path_agree_in_the_sim_and_with_fips203() {
    for window in WINDOWS {
        let mut path = TpmPath::new(window);
        for set in MlKemParameterSet::ALL {
            let (key, public_key) = path.primary_with_public_key(&PublicArea::mlkem(set));
            assert_eq!(public_key.len(), set.public_key_size());

            let (response, _) = path.transmit(&client::encapsulate(key));
            let sent = client::parse_encapsulate(&response).expect("Encapsulate succeeds");
            assert_eq!(sent.shared_secret.len(), 32);
            assert_eq!(sent.ciphertext.len(), set.ciphertext_size());
            assert_eq!(
                path.decapsulate(key, &sent.ciphertext),
                sent.shared_secret,
                "{set:?} at window {window}: the sim's own encapsulation"
            );

            let (secret, ciphertext) = fips203_encapsulate(set, &public_key, [window as u8; 32]);
            assert_eq!(
                path.decapsulate(key, &ciphertext).as_bytes(),
                &secret[..],
                "{set:?} at window {window}: fips203's encapsulation to the key read back"
            );
            assert_ne!(
                &secret[..],
                sent.shared_secret.as_bytes(),
                "independent encapsulations"
            );
            path.flush(key);
        }
    }
}

// ------------------------------------------------------- transport faults

/// CRB register offsets within a locality page, as the PTP defines them.
const LOCALITY_PAGE: u64 = 0x1000;
const CTRL_START: u64 = 0x4C;
const DATA_WINDOW: u64 = 0x80;
const START_START: u32 = 1 << 0;
const START_RSP_RETRY: u32 = 1 << 1;
const START_NEXT_CHUNK: u32 = 1 << 2;

/// Test double: an MMIO bus that passes every access through to the
/// platform's bus, except that once armed it flips one bit of one byte the
/// guest reads from the data window, in a chosen piece of the next
/// response. It models a transport that corrupts data in flight.
struct CorruptingBusDouble {
    inner: CrbBus,
    target: Option<Corruption>,
    /// The response piece now in the window, counted from 0 when Start is
    /// written; `None` while a command is being sent.
    response_piece: Option<usize>,
    flips: usize,
}

#[derive(Clone, Copy)]
struct Corruption {
    piece: usize,
    /// Byte position within the window (so at locality-page offset
    /// 0x80 + position).
    position: usize,
}

impl CorruptingBusDouble {
    fn new(inner: CrbBus) -> Self {
        Self {
            inner,
            target: None,
            response_piece: None,
            flips: 0,
        }
    }

    /// Corrupts byte `position` of the window in response piece `piece`
    /// of the next command. The header of piece 0 is left alone so the
    /// driver still reads a whole response of the right size.
    fn arm(&mut self, piece: usize, position: usize) {
        assert!(position >= HEADER_SIZE, "the header is not a target");
        self.target = Some(Corruption { piece, position });
    }
}

impl Mmio for CorruptingBusDouble {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.inner.read(offset, data);
        let within = offset % LOCALITY_PAGE;
        let (Some(target), Some(piece)) = (self.target, self.response_piece) else {
            return;
        };
        if within < DATA_WINDOW || piece != target.piece {
            return;
        }
        let start = (within - DATA_WINDOW) as usize;
        if (start..start + data.len()).contains(&target.position) {
            data[target.position - start] ^= 0x01;
            self.target = None;
            self.flips += 1;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let within = offset % LOCALITY_PAGE;
        if within >= DATA_WINDOW {
            // The guest is writing command bytes: no response is in the window.
            self.response_piece = None;
        } else if within == CTRL_START && data.len() == 4 {
            let value = u32::from_le_bytes(data.try_into().expect("4 bytes"));
            if value & (START_START | START_RSP_RETRY) != 0 {
                self.response_piece = Some(0);
            } else if value & START_NEXT_CHUNK != 0 {
                self.response_piece = self.response_piece.map(|p| p + 1);
            }
        }
        self.inner.write(offset, data);
    }
}

/// Signs `message` through the path with a sign sequence, the double armed
/// at (`piece`, `position`) of the SignSequenceComplete response, and
/// returns the signature as the guest received it.
fn sign_with_fault(
    path: &mut TpmPath<CorruptingBusDouble>,
    key: u32,
    message: &[u8],
    fault: Option<(usize, usize)>,
) -> Signature {
    let (response, _) = path.transmit(&client::sign_sequence_start(key, b"", SEQUENCE_CTX));
    let sequence = client::parse_sequence_start(&response).expect("SignSequenceStart succeeds");
    let flips = path.driver.mmio().flips;
    if let Some((piece, position)) = fault {
        path.driver.mmio().arm(piece, position);
    }
    let (response, _) = path.transmit(&client::sign_sequence_complete(
        sequence, b"", key, KEY_AUTH, message,
    ));
    let expected = flips + usize::from(fault.is_some());
    assert_eq!(path.driver.mmio().flips, expected, "the double fired");
    // A flipped signature byte leaves the response well formed: only the
    // cryptographic checks can notice it.
    client::parse_sign(&response).expect("Sign response still parses")
}

#[test]
fn a_byte_flipped_in_a_signature_response_piece_fails_fips204_verification() {
    let set = MlDsaParameterSet::MlDsa87;
    // (window, response piece, position in the window): the last piece at
    // the largest window, and a middle piece at the smallest.
    for (window, piece, position) in [(3968, 1, 300), (64, 40, 33)] {
        let mut path = TpmPath::with_bus(window, CorruptingBusDouble::new);
        let (key, public_key) = path.primary_with_public_key(&PublicArea::mldsa(set));
        let message = message_for(set, window);

        // Unarmed, the double is transparent: the signature verifies.
        let clean = sign_with_fault(&mut path, key, &message, None);
        assert!(fips204_verifies(
            set,
            &public_key,
            clean.bytes(),
            SEQUENCE_CTX,
            &message,
            None
        ));

        let corrupted = sign_with_fault(&mut path, key, &message, Some((piece, position)));
        assert!(
            !fips204_verifies(
                set,
                &public_key,
                corrupted.bytes(),
                SEQUENCE_CTX,
                &message,
                None
            ),
            "window {window}: fips204 accepted a signature corrupted in transit"
        );
        // The sim, given the bytes the guest received, refuses them too.
        let (response, _) =
            path.transmit(&client::verify_sequence_start(key, b"", b"", SEQUENCE_CTX));
        let sequence =
            client::parse_sequence_start(&response).expect("VerifySequenceStart succeeds");
        let (response, _) = path.transmit(&client::sequence_update(sequence, b"", &message));
        client::parse_empty(&response).expect("SequenceUpdate succeeds");
        let verify = client::verify_sequence_complete(sequence, b"", key, &corrupted);
        let (response, _) = path.transmit(&verify);
        assert_eq!(rc(&response), ResponseCode::SIGNATURE.with_parameter(1));
    }
}

#[test]
fn a_byte_flipped_in_a_public_key_response_piece_fails_fips204_verification() {
    let set = MlDsaParameterSet::MlDsa65;
    let window = 512;
    let mut path = TpmPath::with_bus(window, CorruptingBusDouble::new);
    let created = path.create_primary(&PublicArea::mldsa(set));
    let message = message_for(set, window);
    let signature = sign_with_fault(&mut path, created.handle, &message, None);

    // The 1952-byte key spans pieces 0 to 3 of the ReadPublic response.
    path.driver.mmio().arm(2, 200);
    let read = path.read_public(created.handle);
    assert_eq!(path.driver.mmio().flips, 1, "the double fired");
    let public_key = read.public.public_key();
    assert_ne!(public_key, created.public.public_key());
    assert!(
        !fips204_verifies(
            set,
            public_key,
            signature.bytes(),
            SEQUENCE_CTX,
            &message,
            None
        ),
        "fips204 accepted a signature under a key corrupted in transit"
    );
    // The same check under the key as CreatePrimary delivered it passes, so
    // only the flipped byte made the difference.
    assert!(fips204_verifies(
        set,
        created.public.public_key(),
        signature.bytes(),
        SEQUENCE_CTX,
        &message,
        None
    ));
}

#[test]
fn a_byte_flipped_in_a_ciphertext_response_piece_breaks_the_secret_equality() {
    let set = MlKemParameterSet::MlKem1024;
    let window = 512;
    let mut path = TpmPath::with_bus(window, CorruptingBusDouble::new);
    let (key, _) = path.primary_with_public_key(&PublicArea::mlkem(set));

    // The 1614-byte Encapsulate response is four pieces; its ciphertext
    // starts at byte 46, so byte 100 of piece 2 (response byte 1124) is in it.
    path.driver.mmio().arm(2, 100);
    let (response, transfer) = path.transmit(&client::encapsulate(key));
    assert_eq!(transfer.chunks_received, 4);
    assert_eq!(path.driver.mmio().flips, 1, "the double fired");
    let sent = client::parse_encapsulate(&response).expect("Encapsulate response still parses");

    // ML-KEM's implicit rejection turns the corrupted ciphertext into an
    // unrelated secret rather than an error: only the equality check
    // notices.
    assert_ne!(
        path.decapsulate(key, &sent.ciphertext),
        sent.shared_secret,
        "a ciphertext corrupted in transit decapsulated to the same secret"
    );
}
