//! CreatePrimary, Create, Load, LoadExternal, ReadPublic, FlushContext and
//! HierarchyChangeAuth.

use vtpm_wire::consts::{
    TPMA_OBJECT_FIXED_TPM, TPMA_OBJECT_SENSITIVE_DATA_ORIGIN, TPM_RH_LOCKOUT, TPM_ST_CREATION,
};
use vtpm_wire::consts::{TPM_ALG_NULL, TPM_RH_ENDORSEMENT, TPM_RH_OWNER, TPM_RH_PLATFORM};
use vtpm_wire::ResponseCode;
use zeroize::Zeroizing;

use super::{is_hierarchy, read_pcr_selection, write_pcr_selection, PcrSelection};
use crate::crypto::{Drbg, HashAlg};
use crate::dispatch::{object, slot_of, Command, Reply};
use crate::object::{
    generate, trim_auth, unwrap_private, wrap_private, KeySource, Object, Public, MAX_DIGEST,
    MAX_PRIVATE, MAX_PUBLIC,
};
use crate::rc::{AtNumber, TpmResult};
use crate::unmarshal::{In, Out};
use crate::{Sim, TRANSIENT_FIRST};

/// Largest TPM2B_SENSITIVE_DATA accepted in a TPMS_SENSITIVE_CREATE.
const MAX_SENSITIVE_DATA: usize = 128;
/// Largest TPM2B_DATA (outsideInfo): the size of a TPMT_HA.
const MAX_DATA: usize = 2 + MAX_DIGEST;
/// Largest new hierarchy authValue: the size of the SHA-256 proof hash.
const MAX_HIERARCHY_AUTH: usize = 32;

/// The parameters TPM2_CreatePrimary and TPM2_Create share.
struct CreationInput<'a> {
    auth: Zeroizing<Vec<u8>>,
    data: &'a [u8],
    template: Public,
    template_bytes: &'a [u8],
    outside_info: &'a [u8],
    creation_pcr: Vec<PcrSelection>,
}

fn read_creation_input<'a>(p: &mut In<'a>) -> TpmResult<CreationInput<'a>> {
    let ((auth, data), _) = p
        .sized(2 + MAX_DIGEST + 2 + MAX_SENSITIVE_DATA, |s| {
            let auth = s.tpm2b(MAX_DIGEST)?;
            let data = s.tpm2b(MAX_SENSITIVE_DATA)?;
            Ok((auth, data))
        })
        .param(1)?;
    let (template, template_bytes) = p.sized(MAX_PUBLIC, Public::read).param(2)?;
    let outside_info = p.tpm2b(MAX_DATA).param(3)?;
    let creation_pcr = read_pcr_selection(p).param(4)?;
    p.done()?;
    let input = CreationInput {
        auth: trim_auth(auth),
        data,
        template,
        template_bytes,
        outside_info,
        creation_pcr,
    };
    input.template.check_attributes().param(2)?;
    // The simulator always generates the key material itself.
    if !input.template.has(TPMA_OBJECT_SENSITIVE_DATA_ORIGIN) || !input.data.is_empty() {
        return Err(ResponseCode::ATTRIBUTES.with_parameter(2));
    }
    if input.auth.len() > input.template.name_alg.size() {
        return Err(ResponseCode::SIZE.with_parameter(1));
    }
    Ok(input)
}

/// Key material of a primary object: KDFa(nameAlg, hierarchy seed, label,
/// H(template)), so the same seed and template give the same key.
struct PrimaryDerivation<'a> {
    hash: HashAlg,
    seed: &'a [u8],
    template_digest: Vec<u8>,
}

impl KeySource for PrimaryDerivation<'_> {
    fn take(&mut self, label: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
        self.hash.kdfa(
            self.seed,
            label,
            &self.template_digest,
            b"",
            (len * 8) as u32,
        )
    }
}

impl KeySource for Drbg {
    fn take(&mut self, _label: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
        self.bytes(len)
    }
}

fn free_slot(sim: &Sim) -> TpmResult<usize> {
    sim.objects
        .iter()
        .position(Option::is_none)
        .ok_or(ResponseCode::OBJECT_MEMORY)
}

/// Loads `object` into `slot` (found free by [`free_slot`] before any
/// work was done) and answers its handle.
fn insert(sim: &mut Sim, slot: usize, object: Object, reply: &mut Reply) {
    sim.objects[slot] = Some(object);
    reply.handle = Some(TRANSIENT_FIRST + slot as u32);
}

/// Who created an object, for its creation data.
struct Creator<'a> {
    hierarchy: u32,
    parent_name_alg: u16,
    parent_name: &'a [u8],
    parent_qualified_name: &'a [u8],
}

/// Appends TPM2B_CREATION_DATA, TPM2B_DIGEST creationHash and
/// TPMT_TK_CREATION for a new object named `name`.
fn write_creation(
    sim: &Sim,
    out: &mut Vec<u8>,
    input: &CreationInput<'_>,
    locality: u8,
    creator: &Creator<'_>,
    name: &[u8],
) {
    let hash = input.template.name_alg;
    let mut selected = Vec::with_capacity(input.creation_pcr.len());
    let mut values: Vec<&[u8]> = Vec::new();
    for s in &input.creation_pcr {
        if s.allocated() {
            values.extend(s.selected().filter_map(|i| sim.pcrs.value(s.hash, i)));
            selected.push(*s);
        } else {
            selected.push(PcrSelection {
                hash: s.hash,
                bitmap: [0; 3],
            });
        }
    }
    let mut data = Vec::with_capacity(256);
    write_pcr_selection(&mut data, &selected);
    data.put_tpm2b(&hash.digest(&values));
    data.put_u8(1 << locality);
    data.put_u16(creator.parent_name_alg);
    data.put_tpm2b(creator.parent_name);
    data.put_tpm2b(creator.parent_qualified_name);
    data.put_tpm2b(input.outside_info);
    let creation_hash = hash.digest(&[&data]);
    // Part 1 Eq. 5: tickets use the context-integrity hash.
    let ticket = super::TICKET_HASH.hmac(
        &sim.proof(creator.hierarchy),
        &[&TPM_ST_CREATION.to_be_bytes(), name, &creation_hash],
    );
    out.put_tpm2b(&data);
    out.put_tpm2b(&creation_hash);
    out.put_u16(TPM_ST_CREATION);
    out.put_u32(creator.hierarchy);
    out.put_tpm2b(&ticket);
}

/// TPM2_CreatePrimary: a key derived from the hierarchy's seed and the
/// template, loaded into a transient slot.
pub(crate) fn create_primary(
    sim: &mut Sim,
    cmd: &mut Command<'_>,
    reply: &mut Reply,
) -> TpmResult<()> {
    let hierarchy = cmd.handles[0];
    let input = read_creation_input(&mut cmd.params)?;
    let slot = free_slot(sim)?;
    let seed = Zeroizing::new(
        *sim.hierarchy_seed(hierarchy)
            .ok_or(ResponseCode::VALUE.with_handle(1))?,
    );
    let mut public = input.template.clone();
    let mut derivation = PrimaryDerivation {
        hash: public.name_alg,
        seed: &*seed,
        template_digest: public.name_alg.digest(&[input.template_bytes]),
    };
    let sensitive = generate(
        &mut public,
        input.auth.clone(),
        &mut derivation,
        &sim.cancel,
    )?;
    let parent = hierarchy.to_be_bytes();
    let object = Object::new(public, &parent, hierarchy, Some(sensitive));

    let out = &mut reply.params;
    out.put_tpm2b(&object.public.to_bytes());
    let creator = Creator {
        hierarchy,
        parent_name_alg: TPM_ALG_NULL,
        parent_name: &parent,
        parent_qualified_name: &parent,
    };
    write_creation(sim, out, &input, cmd.locality, &creator, &object.name);
    out.put_tpm2b(&object.name);
    insert(sim, slot, object, reply);
    Ok(())
}

/// The loaded storage parent `handle` names, or TPM_RC_TYPE for handle 1.
fn storage_parent(sim: &Sim, handle: u32) -> TpmResult<&Object> {
    match object(sim, handle) {
        Some(o) if o.public.child_protection().is_some() && o.sensitive.is_some() => Ok(o),
        _ => Err(ResponseCode::TYPE.with_handle(1)),
    }
}

/// TPM2_Create: a new random key wrapped for its parent.
pub(crate) fn create(sim: &mut Sim, cmd: &mut Command<'_>, reply: &mut Reply) -> TpmResult<()> {
    let input = read_creation_input(&mut cmd.params)?;
    let parent = storage_parent(sim, cmd.handles[0])?.clone();
    if input.template.has(TPMA_OBJECT_FIXED_TPM) && !parent.public.has(TPMA_OBJECT_FIXED_TPM) {
        return Err(ResponseCode::ATTRIBUTES.with_parameter(2));
    }
    let mut public = input.template.clone();
    let sensitive = generate(&mut public, input.auth.clone(), &mut sim.rng, &sim.cancel)?;
    let private = wrap_private(&parent, &public, &sensitive).ok_or(ResponseCode::FAILURE)?;
    let name = public.name();

    let out = &mut reply.params;
    out.put_tpm2b(&private);
    out.put_tpm2b(&public.to_bytes());
    let creator = Creator {
        hierarchy: parent.hierarchy,
        parent_name_alg: parent.public.name_alg.alg(),
        parent_name: &parent.name,
        parent_qualified_name: &parent.qualified_name,
    };
    write_creation(sim, out, &input, cmd.locality, &creator, &name);
    Ok(())
}

/// TPM2_Load: unwraps a private area made by TPM2_Create under the same
/// parent. A modified private or public area is TPM_RC_INTEGRITY for
/// parameter 1.
pub(crate) fn load(sim: &mut Sim, cmd: &mut Command<'_>, reply: &mut Reply) -> TpmResult<()> {
    let p = &mut cmd.params;
    let private = p.tpm2b(MAX_PRIVATE).param(1)?;
    if private.is_empty() {
        return Err(ResponseCode::SIZE.with_parameter(1));
    }
    let (public, _) = p.sized(MAX_PUBLIC, Public::read).param(2)?;
    p.done()?;
    let parent = storage_parent(sim, cmd.handles[0])?;
    public.check_attributes().param(2)?;
    if public.has(TPMA_OBJECT_FIXED_TPM) && !parent.public.has(TPMA_OBJECT_FIXED_TPM) {
        return Err(ResponseCode::ATTRIBUTES.with_parameter(2));
    }
    let sensitive = unwrap_private(parent, &public, private).param(1)?;
    if !sensitive.is_bound_to(&public) {
        return Err(ResponseCode::BINDING.with_parameter(2));
    }
    let object = Object::new(
        public,
        &parent.qualified_name,
        parent.hierarchy,
        Some(sensitive),
    );
    let slot = free_slot(sim)?;
    reply.params.put_tpm2b(&object.name);
    insert(sim, slot, object, reply);
    Ok(())
}

/// TPM2_LoadExternal of a public area only (an inPrivate is answered
/// TPM_RC_SIZE for parameter 1: loading outside private keys is not
/// supported).
pub(crate) fn load_external(
    sim: &mut Sim,
    cmd: &mut Command<'_>,
    reply: &mut Reply,
) -> TpmResult<()> {
    let p = &mut cmd.params;
    let private = p.tpm2b(MAX_PRIVATE).param(1)?;
    let (public, _) = p.sized(MAX_PUBLIC, Public::read).param(2)?;
    let hierarchy = p.u32().param(3)?;
    p.done()?;
    if !private.is_empty() {
        return Err(ResponseCode::SIZE.with_parameter(1));
    }
    if !is_hierarchy(hierarchy) {
        return Err(ResponseCode::VALUE.with_parameter(3));
    }
    public.check_attributes().param(2)?;
    public.check_public_key().param(2)?;
    let slot = free_slot(sim)?;
    let object = Object::new(public, &hierarchy.to_be_bytes(), hierarchy, None);
    reply.params.put_tpm2b(&object.name);
    insert(sim, slot, object, reply);
    Ok(())
}

/// TPM2_ReadPublic: public area, name and qualified name.
pub(crate) fn read_public(
    sim: &mut Sim,
    cmd: &mut Command<'_>,
    reply: &mut Reply,
) -> TpmResult<()> {
    cmd.params.done()?;
    let object = object(sim, cmd.handles[0]).ok_or(ResponseCode::HANDLE.with_handle(1))?;
    let out = &mut reply.params;
    out.put_tpm2b(&object.public.to_bytes());
    out.put_tpm2b(&object.name);
    out.put_tpm2b(&object.qualified_name);
    Ok(())
}

/// TPM2_FlushContext. The handle is a parameter: an unloaded transient
/// object or any session handle (none exist) is TPM_RC_HANDLE, any other
/// kind of handle TPM_RC_VALUE.
pub(crate) fn flush_context(
    sim: &mut Sim,
    cmd: &mut Command<'_>,
    _reply: &mut Reply,
) -> TpmResult<()> {
    let handle = cmd.params.u32().param(1)?;
    // TPMI_DH_CONTEXT: a handle outside the transient slots (objects and
    // sequences) or the session ranges is TPM_RC_VALUE as it is
    // unmarshalled; one inside that names nothing is TPM_RC_HANDLE
    // (libtpms, with its 64 session slots).
    let sequence = super::sequence::sequence_slot(handle);
    let in_range = match handle >> 24 {
        0x80 => slot_of(handle).is_some() || sequence.is_some(),
        0x02 | 0x03 => handle & 0x00FF_FFFF < SESSION_SLOTS,
        _ => false,
    };
    if !in_range {
        return Err(ResponseCode::VALUE.with_parameter(1));
    }
    cmd.params.done()?;
    if let Some(slot) = sequence {
        let slot = Some(slot)
            .filter(|&s| sim.sequences[s].is_some())
            .ok_or(ResponseCode::HANDLE.with_parameter(1))?;
        sim.sequences[slot] = None;
        return Ok(());
    }
    let slot = slot_of(handle)
        .filter(|&s| sim.objects[s].is_some())
        .ok_or(ResponseCode::HANDLE.with_parameter(1))?;
    sim.objects[slot] = None;
    Ok(())
}

/// Session handles a TPMI_DH_CONTEXT accepts per session type; no session
/// is ever loaded here.
const SESSION_SLOTS: u32 = 64;

/// TPM2_HierarchyChangeAuth.
pub(crate) fn hierarchy_change_auth(
    sim: &mut Sim,
    cmd: &mut Command<'_>,
    _reply: &mut Reply,
) -> TpmResult<()> {
    let mut new_auth = trim_auth(cmd.params.tpm2b(MAX_DIGEST).param(1)?);
    cmd.params.done()?;
    if new_auth.len() > MAX_HIERARCHY_AUTH {
        return Err(ResponseCode::SIZE.with_parameter(1));
    }
    let target = match cmd.handles[0] {
        TPM_RH_OWNER => &mut sim.permanent.owner_auth,
        TPM_RH_ENDORSEMENT => &mut sim.permanent.endorsement_auth,
        TPM_RH_PLATFORM => &mut sim.platform_auth,
        TPM_RH_LOCKOUT => &mut sim.permanent.lockout_auth,
        _ => return Err(ResponseCode::VALUE.with_handle(1)),
    };
    zeroize::Zeroize::zeroize(target);
    // Moved, not copied: the old value is wiped and the new one has a
    // single home.
    *target = std::mem::take(&mut *new_auth);
    Ok(())
}
