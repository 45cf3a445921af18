//! Object commands: CreatePrimary, Create, Load, LoadExternal, ReadPublic,
//! FlushContext and HierarchyChangeAuth.

use vtpm_wire::structures::{PublicArea, Ticket};
use vtpm_wire::{cc, CommandBuilder, WireError, HEADER_SIZE};

use crate::response::{read_digest, read_public_2b, split, Split};

fn sensitive_create(b: CommandBuilder, user_auth: &[u8]) -> CommandBuilder {
    // TPM2B_SENSITIVE_CREATE { userAuth TPM2B_AUTH, data TPM2B (empty) }
    let inner = CommandBuilder::new(0, 0)
        .tpm2b(user_auth)
        .tpm2b(&[])
        .finish();
    b.tpm2b(&inner[HEADER_SIZE..])
}

fn object_creation(
    code: u32,
    parent: u32,
    parent_auth: &[u8],
    template: &PublicArea,
    key_auth: &[u8],
) -> Vec<u8> {
    let b = CommandBuilder::with_sessions(code)
        .u32(parent)
        .password_session(parent_auth);
    sensitive_create(b, key_auth)
        .tpm2b(&template.to_bytes())
        .tpm2b(&[]) // outsideInfo
        .u32(0) // creationPCR: no banks
        .finish()
}

/// TPM2_CreatePrimary in `hierarchy` (TPM_RH_OWNER, ...; password
/// `hierarchy_auth`) from `template`, giving the key the password `key_auth`.
pub fn create_primary(
    hierarchy: u32,
    hierarchy_auth: &[u8],
    template: &PublicArea,
    key_auth: &[u8],
) -> Vec<u8> {
    object_creation(
        cc::CREATE_PRIMARY,
        hierarchy,
        hierarchy_auth,
        template,
        key_auth,
    )
}

/// TPM2_Create of a child of the storage parent `parent` from `template`.
pub fn create(parent: u32, parent_auth: &[u8], template: &PublicArea, key_auth: &[u8]) -> Vec<u8> {
    object_creation(cc::CREATE, parent, parent_auth, template, key_auth)
}

/// TPM2_Load of a child of `parent`: `private` is the TPM2B_PRIVATE content
/// and `public` the TPMT_PUBLIC bytes, both as TPM2_Create returned them.
pub fn load(parent: u32, parent_auth: &[u8], private: &[u8], public: &[u8]) -> Vec<u8> {
    CommandBuilder::with_sessions(cc::LOAD)
        .u32(parent)
        .password_session(parent_auth)
        .tpm2b(private)
        .tpm2b(public)
        .finish()
}

/// TPM2_LoadExternal of only a public area (TPMT_PUBLIC bytes) into `hierarchy`.
pub fn load_external_public(public: &[u8], hierarchy: u32) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::LOAD_EXTERNAL)
        .tpm2b(&[]) // inPrivate: absent
        .tpm2b(public)
        .u32(hierarchy)
        .finish()
}

/// TPM2_ReadPublic of `handle`.
pub fn read_public(handle: u32) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::READ_PUBLIC)
        .u32(handle)
        .finish()
}

/// TPM2_FlushContext of `handle`.
pub fn flush_context(handle: u32) -> Vec<u8> {
    CommandBuilder::no_sessions(cc::FLUSH_CONTEXT)
        .u32(handle)
        .finish()
}

/// TPM2_HierarchyChangeAuth of `hierarchy` (TPM_RH_OWNER, TPM_RH_ENDORSEMENT,
/// TPM_RH_PLATFORM or TPM_RH_LOCKOUT) from `current_auth` to `new_auth`.
pub fn hierarchy_change_auth(hierarchy: u32, current_auth: &[u8], new_auth: &[u8]) -> Vec<u8> {
    CommandBuilder::with_sessions(cc::HIERARCHY_CHANGE_AUTH)
        .u32(hierarchy)
        .password_session(current_auth)
        .tpm2b(new_auth)
        .finish()
}

/// The answer to TPM2_CreatePrimary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePrimaryResponse {
    /// The transient handle of the new key.
    pub handle: u32,
    /// The public area (its `public_key()` is the key).
    pub public: PublicArea,
    /// The TPMT_PUBLIC bytes as the TPM sent them.
    pub public_bytes: Vec<u8>,
    /// The TPMS_CREATION_DATA bytes.
    pub creation_data: Vec<u8>,
    /// The hash of the creation data.
    pub creation_hash: Vec<u8>,
    /// The creation ticket.
    pub creation_ticket: Ticket,
    /// The key's name.
    pub name: Vec<u8>,
}

/// Parses a TPM2_CreatePrimary response.
pub fn parse_create_primary(bytes: &[u8]) -> Result<CreatePrimaryResponse, WireError> {
    let Split {
        handle,
        parameters: mut r,
    } = split(bytes, true)?;
    let (public_bytes, public) = read_public_2b(&mut r)?;
    let creation_data = r.tpm2b()?.to_vec();
    let creation_hash = read_digest(&mut r)?;
    let creation_ticket = Ticket::read(&mut r)?;
    let name = r.tpm2b()?.to_vec();
    r.finish()?;
    Ok(CreatePrimaryResponse {
        handle: handle.unwrap_or_default(),
        public,
        public_bytes,
        creation_data,
        creation_hash,
        creation_ticket,
        name,
    })
}

/// The answer to TPM2_Create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateResponse {
    /// The protected private area (TPM2B_PRIVATE content) for TPM2_Load.
    pub private: Vec<u8>,
    /// The public area.
    pub public: PublicArea,
    /// The TPMT_PUBLIC bytes for TPM2_Load.
    pub public_bytes: Vec<u8>,
    /// The TPMS_CREATION_DATA bytes.
    pub creation_data: Vec<u8>,
    /// The hash of the creation data.
    pub creation_hash: Vec<u8>,
    /// The creation ticket.
    pub creation_ticket: Ticket,
}

/// Parses a TPM2_Create response.
pub fn parse_create(bytes: &[u8]) -> Result<CreateResponse, WireError> {
    let mut r = split(bytes, false)?.parameters;
    let private = r.tpm2b()?.to_vec();
    let (public_bytes, public) = read_public_2b(&mut r)?;
    let creation_data = r.tpm2b()?.to_vec();
    let creation_hash = read_digest(&mut r)?;
    let creation_ticket = Ticket::read(&mut r)?;
    r.finish()?;
    Ok(CreateResponse {
        private,
        public,
        public_bytes,
        creation_data,
        creation_hash,
        creation_ticket,
    })
}

/// The answer to TPM2_Load or TPM2_LoadExternal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadResponse {
    /// The transient handle.
    pub handle: u32,
    /// The object's name.
    pub name: Vec<u8>,
}

/// Parses a TPM2_Load or TPM2_LoadExternal response.
pub fn parse_load(bytes: &[u8]) -> Result<LoadResponse, WireError> {
    let Split {
        handle,
        parameters: mut r,
    } = split(bytes, true)?;
    let name = r.tpm2b()?.to_vec();
    r.finish()?;
    Ok(LoadResponse {
        handle: handle.unwrap_or_default(),
        name,
    })
}

/// The answer to TPM2_ReadPublic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadPublicResponse {
    /// The public area.
    pub public: PublicArea,
    /// The TPMT_PUBLIC bytes.
    pub public_bytes: Vec<u8>,
    /// The name.
    pub name: Vec<u8>,
    /// The qualified name.
    pub qualified_name: Vec<u8>,
}

/// Parses a TPM2_ReadPublic response.
pub fn parse_read_public(bytes: &[u8]) -> Result<ReadPublicResponse, WireError> {
    let mut r = split(bytes, false)?.parameters;
    let (public_bytes, public) = read_public_2b(&mut r)?;
    let name = r.tpm2b()?.to_vec();
    let qualified_name = r.tpm2b()?.to_vec();
    r.finish()?;
    Ok(ReadPublicResponse {
        public,
        public_bytes,
        name,
        qualified_name,
    })
}
