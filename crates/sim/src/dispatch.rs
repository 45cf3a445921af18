//! From command bytes to response bytes: header checks, the command table,
//! handle checks, the authorization area and password authorization.
//!
//! The order of checks follows the TPM reference implementation, so that
//! bad input answers what a real TPM answers: size and tag first, then the
//! command code, then TPM_RC_INITIALIZE, then handles, sessions,
//! authorization and finally the command's own parameters (with
//! TPM_RC_SIZE for bytes left over).

use vtpm_wire::consts::{TPMA_OBJECT_NO_DA, TPMA_OBJECT_USER_WITH_AUTH, TPM_RH_LOCKOUT};
use vtpm_wire::consts::{
    TPM_RH_ENDORSEMENT, TPM_RH_NULL, TPM_RH_OWNER, TPM_RH_PLATFORM, TPM_RS_PW, TPM_ST_NO_SESSIONS,
    TPM_ST_SESSIONS,
};
use vtpm_wire::{cc, error_response, Header, ResponseCode, HEADER_SIZE};
use zeroize::{Zeroize, Zeroizing};

use crate::command;
use crate::crypto::secrets_equal;
use crate::object::{trim_auth, Object, MAX_DIGEST};
use crate::pcr::PCR_COUNT;
use crate::rc::{at_handle, at_session, AtNumber, TpmResult};
use crate::unmarshal::{In, Out};
use crate::{Sim, TRANSIENT_FIRST, TRANSIENT_SLOTS};

/// What a handle in a command's handle area must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandleKind {
    /// TPMI_DH_OBJECT: a loaded transient object.
    Object,
    /// TPMI_DH_PCR+: PCR 0..23 or TPM_RH_NULL.
    PcrOrNull,
    /// TPMI_DH_PCR: PCR 0..23.
    Pcr,
    /// TPMI_RH_HIERARCHY+: owner, endorsement, platform or NULL.
    Hierarchy,
    /// TPMI_RH_HIERARCHY_AUTH: lockout, endorsement, owner or platform.
    HierarchyAuth,
    /// TPMI_DH_OBJECT naming an open signature sequence.
    Sequence,
}

/// A command being executed: its locality, handles and parameters.
pub(crate) struct Command<'a> {
    pub(crate) locality: u8,
    pub(crate) handles: [u32; 2],
    pub(crate) params: In<'a>,
}

/// What a handler answers: an optional handle and the parameter bytes
/// (which may carry a shared secret or random bytes: wiped when dropped).
pub(crate) struct Reply {
    pub(crate) handle: Option<u32>,
    pub(crate) params: Zeroizing<Vec<u8>>,
}

pub(crate) type Handler = fn(&mut Sim, &mut Command<'_>, &mut Reply) -> TpmResult<()>;

/// One implemented command.
pub(crate) struct Spec {
    pub(crate) code: u32,
    pub(crate) handles: &'static [HandleKind],
    /// The first `auth` handles need authorization (USER role).
    pub(crate) auth: usize,
    /// The response carries a handle.
    pub(crate) returns_handle: bool,
    /// TPMA_CC.nv: the command may write NV memory.
    pub(crate) nv: bool,
    pub(crate) handler: Handler,
}

use HandleKind as H;

/// Every implemented command, sorted by command code.
pub(crate) const COMMANDS: &[Spec] = &[
    Spec {
        code: vtpm_wire::cc::HIERARCHY_CHANGE_AUTH,
        handles: &[H::HierarchyAuth],
        auth: 1,
        returns_handle: false,
        nv: true,
        handler: command::object::hierarchy_change_auth,
    },
    Spec {
        code: cc::CREATE_PRIMARY,
        handles: &[H::Hierarchy],
        auth: 1,
        returns_handle: true,
        nv: false,
        handler: command::object::create_primary,
    },
    Spec {
        code: cc::PCR_RESET,
        handles: &[H::Pcr],
        auth: 1,
        returns_handle: false,
        nv: true,
        handler: command::pcr::pcr_reset,
    },
    Spec {
        code: cc::SELF_TEST,
        handles: &[],
        auth: 0,
        returns_handle: false,
        // Self-test results are kept in NV (TPMA_CC.nv, as libtpms reports).
        nv: true,
        handler: command::basic::self_test,
    },
    Spec {
        code: cc::STARTUP,
        handles: &[],
        auth: 0,
        returns_handle: false,
        nv: true,
        handler: command::basic::startup,
    },
    Spec {
        code: cc::SHUTDOWN,
        handles: &[],
        auth: 0,
        returns_handle: false,
        nv: true,
        handler: command::basic::shutdown,
    },
    Spec {
        code: cc::STIR_RANDOM,
        handles: &[],
        auth: 0,
        returns_handle: false,
        nv: true,
        handler: command::basic::stir_random,
    },
    Spec {
        code: cc::CREATE,
        handles: &[H::Object],
        auth: 1,
        returns_handle: false,
        nv: false,
        handler: command::object::create,
    },
    Spec {
        code: cc::LOAD,
        handles: &[H::Object],
        auth: 1,
        returns_handle: true,
        nv: false,
        handler: command::object::load,
    },
    Spec {
        code: cc::SEQUENCE_UPDATE,
        handles: &[H::Sequence],
        auth: 1,
        returns_handle: false,
        nv: false,
        handler: command::sequence::sequence_update,
    },
    Spec {
        code: cc::SIGN,
        handles: &[H::Object],
        auth: 1,
        returns_handle: false,
        nv: false,
        handler: command::signature::sign,
    },
    Spec {
        code: cc::FLUSH_CONTEXT,
        handles: &[],
        auth: 0,
        returns_handle: false,
        nv: false,
        handler: command::object::flush_context,
    },
    Spec {
        code: cc::LOAD_EXTERNAL,
        handles: &[],
        auth: 0,
        returns_handle: true,
        nv: false,
        handler: command::object::load_external,
    },
    Spec {
        code: cc::READ_PUBLIC,
        handles: &[H::Object],
        auth: 0,
        returns_handle: false,
        nv: false,
        handler: command::object::read_public,
    },
    Spec {
        code: cc::VERIFY_SIGNATURE,
        handles: &[H::Object],
        auth: 0,
        returns_handle: false,
        nv: false,
        handler: command::signature::verify_signature,
    },
    Spec {
        code: cc::GET_CAPABILITY,
        handles: &[],
        auth: 0,
        returns_handle: false,
        nv: false,
        handler: command::capability::get_capability,
    },
    Spec {
        code: cc::GET_RANDOM,
        handles: &[],
        auth: 0,
        returns_handle: false,
        nv: false,
        handler: command::basic::get_random,
    },
    Spec {
        code: cc::PCR_READ,
        handles: &[],
        auth: 0,
        returns_handle: false,
        nv: false,
        handler: command::pcr::pcr_read,
    },
    Spec {
        code: cc::PCR_EXTEND,
        handles: &[H::PcrOrNull],
        auth: 1,
        returns_handle: false,
        nv: true,
        handler: command::pcr::pcr_extend,
    },
    Spec {
        code: cc::TEST_PARMS,
        handles: &[],
        auth: 0,
        returns_handle: false,
        nv: false,
        handler: command::sequence::test_parms,
    },
    Spec {
        code: cc::VERIFY_SEQUENCE_COMPLETE,
        handles: &[H::Sequence, H::Object],
        auth: 1,
        returns_handle: false,
        nv: false,
        handler: command::sequence::verify_sequence_complete,
    },
    Spec {
        code: cc::SIGN_SEQUENCE_COMPLETE,
        handles: &[H::Sequence, H::Object],
        auth: 2,
        returns_handle: false,
        nv: false,
        handler: command::sequence::sign_sequence_complete,
    },
    Spec {
        code: cc::VERIFY_DIGEST_SIGNATURE,
        handles: &[H::Object],
        auth: 0,
        returns_handle: false,
        nv: false,
        handler: command::signature::verify_digest_signature,
    },
    Spec {
        code: cc::SIGN_DIGEST,
        handles: &[H::Object],
        auth: 1,
        returns_handle: false,
        nv: false,
        handler: command::signature::sign_digest,
    },
    Spec {
        code: cc::ENCAPSULATE,
        handles: &[H::Object],
        auth: 0,
        returns_handle: false,
        nv: false,
        handler: command::kem::encapsulate,
    },
    Spec {
        code: cc::DECAPSULATE,
        handles: &[H::Object],
        auth: 1,
        returns_handle: false,
        nv: false,
        handler: command::kem::decapsulate,
    },
    Spec {
        code: cc::VERIFY_SEQUENCE_START,
        handles: &[H::Object],
        auth: 0,
        returns_handle: true,
        nv: false,
        handler: command::sequence::verify_sequence_start,
    },
    Spec {
        code: cc::SIGN_SEQUENCE_START,
        handles: &[H::Object],
        auth: 0,
        returns_handle: true,
        nv: false,
        handler: command::sequence::sign_sequence_start,
    },
];

/// The TPM_ST values other than the two command tags (Part 2, Table 19, up
/// to v1.85: ATTEST_NV_DIGEST, MESSAGE_VERIFIED, DIGEST_VERIFIED and
/// FU_MANIFEST included).
const STRUCTURE_TAGS: &[u16] = &[
    0x00C4, 0x8000, 0x8014, 0x8015, 0x8016, 0x8017, 0x8018, 0x8019, 0x801A, 0x801C, 0x8021, 0x8022,
    0x8023, 0x8024, 0x8025, 0x8026, 0x8027, 0x8029,
];

/// At most three sessions fit an authorization area.
const MAX_SESSIONS: usize = 3;
/// The smallest session: handle, empty nonce, attributes, empty HMAC.
const MIN_SESSION_SIZE: usize = 9;
/// The reserved bits of TPMA_SESSION.
const SESSION_RESERVED: u8 = 0x18;
/// TPMA_SESSION continueSession, the only attribute a password session may carry.
const CONTINUE_SESSION: u8 = 0x01;

/// A password session from the authorization area; the password is wiped
/// when the command ends.
struct PasswordSession {
    password: Zeroizing<Vec<u8>>,
}

pub(crate) fn execute(sim: &mut Sim, locality: u8, command: &[u8], response: &mut Vec<u8>) {
    // Wipes the whole capacity, not only the length: an earlier response
    // (a shared secret, say) must not survive in a reallocation's old block.
    response.zeroize();
    if let Err(code) = run(sim, locality, command, response) {
        response.zeroize();
        response.extend_from_slice(&error_response(code));
    }
    // A cancel request belongs to the command it met (or, when none was
    // running, to this one): it ends with it.
    sim.cancel.clear();
}

fn run(sim: &mut Sim, locality: u8, command: &[u8], response: &mut Vec<u8>) -> TpmResult<()> {
    if command.len() < HEADER_SIZE {
        return Err(ResponseCode::COMMAND_SIZE);
    }
    let header = Header::parse(command).map_err(|_| ResponseCode::COMMAND_SIZE)?;
    // The tag is unmarshalled before the size is looked at, as a TPM_ST:
    // a structure tag in the wrong place is TPM_RC_BAD_TAG, a value that
    // is no TPM_ST at all TPM_RC_VALUE (libtpms and the reference code).
    if header.tag != TPM_ST_NO_SESSIONS && header.tag != TPM_ST_SESSIONS {
        return Err(if STRUCTURE_TAGS.contains(&header.tag) {
            ResponseCode::BAD_TAG
        } else {
            ResponseCode::VALUE
        });
    }
    if header.size as usize != command.len() || command.len() > sim.buffer_size {
        return Err(ResponseCode::COMMAND_SIZE);
    }
    let spec = COMMANDS
        .iter()
        .find(|s| s.code == header.code)
        .ok_or(ResponseCode::COMMAND_CODE)?;
    if locality > 4 {
        return Err(ResponseCode::LOCALITY);
    }
    // Before Startup only Startup runs; after it, a second Startup is refused.
    if sim.started == (spec.code == cc::STARTUP) {
        return Err(ResponseCode::INITIALIZE);
    }

    let mut body = In::new(&command[HEADER_SIZE..]);
    let mut handles = [0u32; 2];
    for (i, slot) in handles.iter_mut().take(spec.handles.len()).enumerate() {
        *slot = body.u32().handle(i as u8 + 1)?;
    }
    // Every handle must name something loaded before sessions are read.
    for (i, kind) in spec.handles.iter().enumerate() {
        check_handle(sim, *kind, handles[i], i)?;
    }
    let sessions = if header.tag == TPM_ST_SESSIONS {
        parse_sessions(&mut body)?
    } else {
        Vec::new()
    };
    authorize(sim, spec, &handles, header.tag, &sessions)?;
    sim.cancel.check()?;

    let mut cmd = Command {
        locality,
        handles,
        params: body,
    };
    let mut reply = Reply {
        handle: None,
        // Sized for the largest answer, so it never reallocates and leaves
        // no unwiped copy of a secret it carried.
        params: Zeroizing::new(Vec::with_capacity(sim.buffer_size)),
    };
    (spec.handler)(sim, &mut cmd, &mut reply)?;
    // Handlers check for leftover parameters before acting; this is the
    // backstop for a handler that takes no parameters at all.
    cmd.params.done()?;

    response.put_u16(header.tag);
    response.put_u32(0);
    response.put_u32(ResponseCode::SUCCESS.0);
    if spec.returns_handle {
        response.put_u32(reply.handle.unwrap_or_default());
    }
    if header.tag == TPM_ST_SESSIONS {
        response.put_u32(reply.params.len() as u32);
        response.extend_from_slice(&reply.params);
        for _ in &sessions {
            // nonceTPM empty, continueSession, empty HMAC.
            response.put_u16(0);
            response.put_u8(CONTINUE_SESSION);
            response.put_u16(0);
        }
    } else {
        response.extend_from_slice(&reply.params);
    }
    if response.len() > sim.buffer_size {
        // Only an ML-DSA-87 signature with a 4096-byte buffer gets here;
        // such commands have no side effects to undo.
        return Err(ResponseCode::SIZE);
    }
    let size = (response.len() as u32).to_be_bytes();
    response[2..6].copy_from_slice(&size);
    Ok(())
}

/// Reads the authorization area. Only password sessions exist here: an HMAC
/// or policy session handle references a session that is not loaded
/// (TPM_RC_REFERENCE_S0 + n), any other handle is TPM_RC_VALUE for that
/// session.
fn parse_sessions(body: &mut In<'_>) -> TpmResult<Vec<PasswordSession>> {
    // A missing authorizationSize is TPM_RC_INSUFFICIENT and one that
    // cannot hold a session or overruns the command TPM_RC_SIZE, both
    // without a number (libtpms 0.9, ExecuteCommand).
    let size = body.u32()? as usize;
    if size < MIN_SESSION_SIZE || size > body.remaining() {
        return Err(ResponseCode::SIZE);
    }
    let mut area = In::new(body.bytes(size)?);
    let mut sessions = Vec::new();
    while area.remaining() > 0 {
        let n = sessions.len() as u8 + 1;
        // A fourth session is TPM_RC_SIZE for that session (libtpms).
        if sessions.len() == MAX_SESSIONS {
            return Err(at_session(ResponseCode::SIZE, n));
        }
        let handle = area.u32().session(n)?;
        // TPMI_SH_AUTH_SESSION: the password handle or a session slot;
        // anything else is refused as it is unmarshalled.
        let session_slot = matches!(handle >> 24, 0x02 | 0x03) && handle & 0x00FF_FFFF < 64;
        if handle != TPM_RS_PW && !session_slot {
            return Err(at_session(ResponseCode::VALUE, n));
        }
        let nonce = area.tpm2b(MAX_DIGEST).session(n)?;
        let attributes = area.u8().session(n)?;
        // TPMA_SESSION bits 3 and 4 are reserved: refused as unmarshalled.
        if attributes & SESSION_RESERVED != 0 {
            return Err(at_session(ResponseCode::RESERVED_BITS, n));
        }
        let hmac = area.tpm2b(MAX_DIGEST).session(n)?;
        match handle {
            TPM_RS_PW => {
                if !nonce.is_empty() {
                    return Err(at_session(ResponseCode::NONCE, n));
                }
                if attributes & !CONTINUE_SESSION != 0 {
                    return Err(at_session(ResponseCode::ATTRIBUTES, n));
                }
            }
            // A session slot: no session is ever loaded.
            _ => {
                return Err(ResponseCode(
                    ResponseCode::REFERENCE_S0.0 + u32::from(n - 1),
                ))
            }
        }
        sessions.push(PasswordSession {
            password: trim_auth(hmac),
        });
    }
    Ok(sessions)
}

/// The object slot a transient handle names, if it is one.
pub(crate) fn slot_of(handle: u32) -> Option<usize> {
    let slot = handle.checked_sub(TRANSIENT_FIRST)? as usize;
    (slot < TRANSIENT_SLOTS).then_some(slot)
}

/// The loaded object `handle` names.
pub(crate) fn object(sim: &Sim, handle: u32) -> Option<&Object> {
    sim.objects.get(slot_of(handle)?)?.as_ref()
}

fn check_handle(sim: &Sim, kind: HandleKind, handle: u32, index: usize) -> TpmResult<()> {
    let n = index as u8 + 1;
    let valid = match kind {
        HandleKind::Object => match handle >> 24 {
            // Beyond the transient slots is out of TPMI_DH_OBJECT's range
            // (TPM_RC_VALUE); an empty slot is not loaded.
            0x80 if slot_of(handle).is_none() => false,
            0x80 => {
                if object(sim, handle).is_none() {
                    return Err(ResponseCode(ResponseCode::REFERENCE_H0.0 + index as u32));
                }
                true
            }
            // No persistent objects exist here.
            0x81 => return Err(at_handle(ResponseCode::HANDLE, n)),
            _ => false,
        },
        HandleKind::Sequence => match handle >> 24 {
            0x80 if command::sequence::sequence(sim, handle).is_some() => true,
            // A loaded object that is not a sequence (Part 3: TPM_RC_MODE).
            0x80 if object(sim, handle).is_some() => {
                return Err(at_handle(ResponseCode::MODE, n));
            }
            0x80 => return Err(ResponseCode(ResponseCode::REFERENCE_H0.0 + index as u32)),
            0x81 => return Err(at_handle(ResponseCode::HANDLE, n)),
            _ => false,
        },
        HandleKind::PcrOrNull => (handle as usize) < PCR_COUNT || handle == TPM_RH_NULL,
        HandleKind::Pcr => (handle as usize) < PCR_COUNT,
        HandleKind::Hierarchy => matches!(
            handle,
            TPM_RH_OWNER | TPM_RH_ENDORSEMENT | TPM_RH_PLATFORM | TPM_RH_NULL
        ),
        HandleKind::HierarchyAuth => matches!(
            handle,
            TPM_RH_OWNER | TPM_RH_ENDORSEMENT | TPM_RH_PLATFORM | TPM_RH_LOCKOUT
        ),
    };
    if valid {
        Ok(())
    } else {
        Err(at_handle(ResponseCode::VALUE, n))
    }
}

/// How an entity is authorized with a password.
struct AuthValue<'a> {
    value: &'a [u8],
    /// Failures count against dictionary-attack protection
    /// (TPM_RC_AUTH_FAIL rather than TPM_RC_BAD_AUTH).
    dictionary_protected: bool,
}

fn auth_value(sim: &Sim, handle: u32) -> TpmResult<AuthValue<'_>> {
    let plain = |value| {
        Ok(AuthValue {
            value,
            dictionary_protected: false,
        })
    };
    match handle {
        TPM_RH_OWNER => plain(&sim.permanent.owner_auth),
        TPM_RH_ENDORSEMENT => plain(&sim.permanent.endorsement_auth),
        TPM_RH_PLATFORM => plain(&sim.platform_auth),
        TPM_RH_NULL => plain(&[]),
        TPM_RH_LOCKOUT => Ok(AuthValue {
            value: &sim.permanent.lockout_auth,
            dictionary_protected: true,
        }),
        h if (h as usize) < PCR_COUNT => plain(&[]),
        // Sequences are not protected against dictionary attacks: the
        // reference implementation creates them with noDA.
        h if command::sequence::sequence(sim, h).is_some() => {
            plain(command::sequence::sequence(sim, h).map_or(&[][..], |s| &s.auth))
        }
        h => {
            let object = object(sim, h).ok_or(ResponseCode::HANDLE)?;
            // The USER role with a password needs userWithAuth; a public
            // key loaded alone has no authValue at all.
            let sensitive = match &object.sensitive {
                Some(s) if object.public.has(TPMA_OBJECT_USER_WITH_AUTH) => s,
                _ => return Err(ResponseCode::AUTH_UNAVAILABLE),
            };
            Ok(AuthValue {
                value: &sensitive.auth,
                dictionary_protected: !object.public.has(TPMA_OBJECT_NO_DA),
            })
        }
    }
}

fn authorize(
    sim: &Sim,
    spec: &Spec,
    handles: &[u32; 2],
    tag: u16,
    sessions: &[PasswordSession],
) -> TpmResult<()> {
    if spec.auth > 0 && (tag == TPM_ST_NO_SESSIONS || sessions.len() < spec.auth) {
        return Err(ResponseCode::AUTH_MISSING);
    }
    for (i, session) in sessions.iter().enumerate() {
        let n = i as u8 + 1;
        // A password session authorizes a handle; one left over (for a
        // command with fewer authorized handles) names no entity:
        // TPM_RC_HANDLE for that session, as libtpms answers.
        if i >= spec.auth {
            return Err(at_session(ResponseCode::HANDLE, n));
        }
        let entity = auth_value(sim, handles[i])?;
        if !secrets_equal(&session.password, entity.value) {
            let code = if entity.dictionary_protected {
                ResponseCode::AUTH_FAIL
            } else {
                ResponseCode::BAD_AUTH
            };
            return Err(at_session(code, n));
        }
    }
    Ok(())
}

/// TPMA_CC of a command for TPM_CAP_COMMANDS.
pub(crate) fn command_attributes(spec: &Spec) -> u32 {
    let mut a = spec.code & 0xFFFF;
    if spec.nv {
        a |= 1 << 22;
    }
    a |= (spec.handles.len() as u32 & 0x7) << 25;
    if spec.returns_handle {
        a |= 1 << 28;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_table_is_sorted_and_unique() {
        for pair in COMMANDS.windows(2) {
            assert!(pair[0].code < pair[1].code, "{:#x}", pair[1].code);
        }
    }
}
