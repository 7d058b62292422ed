//! Who is calling: every planner API call carries its caller's signature
//! (planner.proto says how), checked here against the registry before the
//! call does anything. A call that passes returns the [`Caller`]; roles and
//! workspaces are checked by the call itself with [`Caller::require`] and
//! [`Caller::can_read`].

use std::sync::Arc;

use jointly_protocol::access::request::{self, NONCE_BYTES, RequestHeader};
use prost::Message;
use tonic::{Request, Status, metadata::MetadataMap};

use crate::{
    registry::{Principal, Role},
    state::Coordinator,
    store::now_ms,
};

/// gRPC metadata keys of a signed call.
pub const PRINCIPAL: &str = "jointly-principal";
pub const TIMESTAMP: &str = "jointly-timestamp";
pub const NONCE: &str = "jointly-nonce";
pub const SIGNATURE: &str = "jointly-signature";

/// The planner API's method paths, as gRPC names them: each signature
/// covers one, so a signed read cannot be turned into another call.
pub mod method {
    pub const SUBMIT_QUERY: &str = jointly_protocol::access::request::SUBMIT_QUERY;
    pub const GET_JOB: &str = "/jointly.v1.Planner/GetJob";
    pub const LIST_JOBS: &str = "/jointly.v1.Planner/ListJobs";
    pub const CANCEL_JOB: &str = "/jointly.v1.Planner/CancelJob";
    pub const LIST_NODES: &str = "/jointly.v1.Planner/ListNodes";
    pub const WHO_AM_I: &str = "/jointly.v1.Planner/WhoAmI";
    pub const FETCH_TRANSCRIPT: &str = "/jointly.v1.Planner/FetchTranscript";
    pub const LIST_PRINCIPALS: &str = "/jointly.v1.Planner/ListPrincipals";
    pub const ADD_PRINCIPAL: &str = "/jointly.v1.Planner/AddPrincipal";
    pub const REVOKE_PRINCIPAL: &str = "/jointly.v1.Planner/RevokePrincipal";
}

/// An authenticated caller and the signed parts of her request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    pub timestamp_ms: i64,
    pub nonce: Vec<u8>,
    pub signature: Vec<u8>,
}

impl Caller {
    /// Refuses the call unless her role is one of `roles`.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<(), Status> {
        if roles.contains(&self.principal.role) {
            return Ok(());
        }
        let allowed = roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(" or ");
        Err(Status::permission_denied(format!(
            "'{}' has role {}; {what} needs role {allowed}. Ask the coordinator's operator for a credential with that role",
            self.principal.name, self.principal.role
        )))
    }

    /// Whether she may read jobs of `workspace`.
    pub fn can_read(&self, workspace: &str) -> bool {
        self.principal.in_workspace(workspace)
    }
}

fn unauthenticated(why: impl std::fmt::Display) -> Status {
    Status::unauthenticated(format!(
        "{why}. Sign in with a credential from the coordinator's operator: `jointly login FILE`, --credential FILE or JOINTLY_CREDENTIAL"
    ))
}

fn text<'a>(metadata: &'a MetadataMap, key: &str) -> Result<&'a str, Status> {
    metadata
        .get(key)
        .ok_or_else(|| unauthenticated(format!("the call is not signed (no {key} header)")))?
        .to_str()
        .map_err(|_| unauthenticated(format!("the {key} header is not text")))
}

fn hex_bytes(metadata: &MetadataMap, key: &str, len: usize) -> Result<Vec<u8>, Status> {
    let value = text(metadata, key)?;
    let mut out = vec![0u8; len];
    hex::decode_to_slice(value, &mut out)
        .map_err(|_| unauthenticated(format!("the {key} header is not {len} bytes of hex")))?;
    Ok(out)
}

/// Checks the call's signature, the signer's standing in the registry, the
/// time and that the nonce is new; then the call may look at its role.
pub async fn authenticate<T: Message>(
    coord: &Arc<Coordinator>,
    request: &Request<T>,
    method: &str,
) -> Result<Caller, Status> {
    let metadata = request.metadata();
    let name = text(metadata, PRINCIPAL)?.to_string();
    let timestamp_ms: i64 = text(metadata, TIMESTAMP)?
        .parse()
        .map_err(|_| unauthenticated(format!("the {TIMESTAMP} header is not a number of milliseconds")))?;
    let nonce = hex_bytes(metadata, NONCE, NONCE_BYTES)?;
    let signature = hex_bytes(metadata, SIGNATURE, 64)?;
    let principal = coord
        .store
        .principal(&name)
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .ok_or_else(|| {
            unauthenticated(format!(
                "no one named '{name}' is registered at coordinator '{}'",
                coord.config.id
            ))
        })?;
    let now = now_ms();
    if principal.revoked_ms != 0 {
        return Err(unauthenticated(format!(
            "the credential of '{name}' was revoked; ask the operator for a new one"
        )));
    }
    if principal.expires_ms <= now {
        return Err(unauthenticated(format!(
            "the credential of '{name}' has expired; ask the operator to rotate it"
        )));
    }
    let key = ed25519_dalek::VerifyingKey::from_bytes(&principal.public_key)
        .map_err(|_| Status::internal(format!("the registry holds an invalid key for '{name}'")))?;
    let header = RequestHeader {
        coordinator_id: &coord.config.id,
        method,
        principal: &name,
        timestamp_ms,
        nonce: &nonce,
    };
    let body = request.get_ref().encode_to_vec();
    request::verify(&key, &header, &body, &signature, now).map_err(|e| match e {
        request::RequestError::Signature => unauthenticated(format!(
            "the signature does not verify under the current key of '{name}' for this call at coordinator '{}' (an old or rotated credential, another coordinator's, or an altered request)",
            coord.config.id
        )),
        other => unauthenticated(other),
    })?;
    let fresh = coord
        .store
        .record_nonce(&name, &nonce, now)
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
    if !fresh {
        return Err(unauthenticated(
            "this signed request was received before: a replay is refused",
        ));
    }
    Ok(Caller {
        principal,
        timestamp_ms,
        nonce,
        signature,
    })
}
