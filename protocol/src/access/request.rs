//! Signed planner requests (README, "Access"). Every call to the planner API
//! carries the caller's Ed25519 signature over the bytes [`signing_bytes`]
//! builds: the coordinator it is meant for, the method, who signs, when, a
//! fresh nonce and the SHA-256 of the encoded request. The coordinator checks
//! it on every call; both nodes check it again on the request that created a
//! job, and the transcripts keep it for the auditor.
//!
//! Binding the coordinator's id stops a request made for one coordinator
//! being replayed to another; the method stops a signed read turning into a
//! submission; the time and nonce stop a relay replaying it later.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::wire::Requester;

const TAG: &[u8] = b"JOINTLY-V1-REQUEST";

/// Length of a request nonce.
pub const NONCE_BYTES: usize = 16;

/// How far a request's time may be from the checker's clock, either way.
pub const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

/// The method path of a job submission, as gRPC names it.
pub const SUBMIT_QUERY: &str = "/jointly.v1.Planner/SubmitQuery";

/// The parts of a signed request besides its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHeader<'a> {
    pub coordinator_id: &'a str,
    pub method: &'a str,
    pub principal: &'a str,
    pub timestamp_ms: i64,
    pub nonce: &'a [u8],
}

/// Why a signed request is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    #[error("the request's nonce is not {NONCE_BYTES} bytes")]
    Nonce,
    #[error("the signature is not 64 bytes")]
    SignatureLength,
    #[error("the public key is not a valid Ed25519 key")]
    Key,
    #[error("the signature does not verify under the planner's key")]
    Signature,
    #[error(
        "the request was signed at {timestamp_ms} ms, more than 5 minutes from this clock ({now_ms} ms); check the clocks"
    )]
    Stale { timestamp_ms: i64, now_ms: i64 },
}

/// What the signature covers. Every text field is length-prefixed, so no
/// two different headers give the same bytes.
pub fn signing_bytes(header: &RequestHeader<'_>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(TAG.len() + 128);
    out.extend_from_slice(TAG);
    for part in [
        header.coordinator_id.as_bytes(),
        header.method.as_bytes(),
        header.principal.as_bytes(),
    ] {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&header.timestamp_ms.to_be_bytes());
    out.extend_from_slice(&(header.nonce.len() as u64).to_be_bytes());
    out.extend_from_slice(header.nonce);
    out.extend_from_slice(&Sha256::digest(body));
    out
}

/// Signs a request.
pub fn sign(key: &SigningKey, header: &RequestHeader<'_>, body: &[u8]) -> [u8; 64] {
    key.sign(&signing_bytes(header, body)).to_bytes()
}

/// Checks a request's signature, nonce length and time against `now_ms`.
pub fn verify(
    key: &VerifyingKey,
    header: &RequestHeader<'_>,
    body: &[u8],
    signature: &[u8],
    now_ms: i64,
) -> Result<(), RequestError> {
    if header.nonce.len() != NONCE_BYTES {
        return Err(RequestError::Nonce);
    }
    let signature = Signature::from_slice(signature).map_err(|_| RequestError::SignatureLength)?;
    key.verify(&signing_bytes(header, body), &signature)
        .map_err(|_| RequestError::Signature)?;
    if header.timestamp_ms.abs_diff(now_ms) > MAX_SKEW_MS as u64 {
        return Err(RequestError::Stale {
            timestamp_ms: header.timestamp_ms,
            now_ms,
        });
    }
    Ok(())
}

/// Checks the signature of the request that created a job, as a node and the
/// auditor do: the request is a job submission for the named coordinator,
/// signed by the requester's key. Time is not checked here (an auditor
/// reads old transcripts); a node checks it with [`verify`]'s clock rule.
pub fn verify_requester(requester: &Requester) -> Result<(), RequestError> {
    let key = <[u8; 32]>::try_from(requester.public_key.as_slice())
        .ok()
        .and_then(|k| VerifyingKey::from_bytes(&k).ok())
        .ok_or(RequestError::Key)?;
    let header = requester_header(requester);
    verify(
        &key,
        &header,
        &requester.request,
        &requester.signature,
        requester.timestamp_ms,
    )
}

/// The header a requester's signature covers.
pub fn requester_header(requester: &Requester) -> RequestHeader<'_> {
    RequestHeader {
        coordinator_id: &requester.coordinator_id,
        method: SUBMIT_QUERY,
        principal: &requester.principal,
        timestamp_ms: requester.timestamp_ms,
        nonce: &requester.nonce,
    }
}

/// The requester's part of a job's terms digest: every field both nodes
/// must agree on, so a coordinator that names different planners to the two
/// nodes stops the session.
pub fn requester_digest(requester: Option<&Requester>) -> [u8; 32] {
    use prost::Message;
    let mut h = Sha256::new();
    h.update(b"JOINTLY-V1-REQUESTER");
    match requester {
        Some(r) => h.update(r.encode_to_vec()),
        None => h.update([0u8]),
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(nonce: &'a [u8], timestamp_ms: i64) -> RequestHeader<'a> {
        RequestHeader {
            coordinator_id: "coord",
            method: SUBMIT_QUERY,
            principal: "alice",
            timestamp_ms,
            nonce,
        }
    }

    #[test]
    fn a_signature_covers_every_part() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let public = key.verifying_key();
        let nonce = [1u8; NONCE_BYTES];
        let h = header(&nonce, 1_000_000);
        let sig = sign(&key, &h, b"body");
        assert_eq!(verify(&public, &h, b"body", &sig, 1_000_000), Ok(()));
        assert_eq!(
            verify(&public, &h, b"bodz", &sig, 1_000_000),
            Err(RequestError::Signature)
        );
        let other_nonce = [2u8; NONCE_BYTES];
        for changed in [
            RequestHeader {
                coordinator_id: "other",
                ..h.clone()
            },
            RequestHeader {
                method: "/jointly.v1.Planner/GetJob",
                ..h.clone()
            },
            RequestHeader {
                principal: "mallory",
                ..h.clone()
            },
            RequestHeader {
                timestamp_ms: 1_000_001,
                ..h.clone()
            },
            header(&other_nonce, 1_000_000),
        ] {
            assert_eq!(
                verify(&public, &changed, b"body", &sig, 1_000_000),
                Err(RequestError::Signature),
                "{changed:?}"
            );
        }
        let late = 1_000_000 + MAX_SKEW_MS + 1;
        assert!(matches!(
            verify(&public, &h, b"body", &sig, late),
            Err(RequestError::Stale { .. })
        ));
        assert_eq!(
            verify(&public, &header(&[1u8; 3], 1), b"", &sig, 1),
            Err(RequestError::Nonce)
        );
    }

    #[test]
    fn length_prefixes_keep_fields_apart() {
        let nonce = [0u8; NONCE_BYTES];
        let a = RequestHeader {
            coordinator_id: "ab",
            principal: "c",
            ..header(&nonce, 0)
        };
        let b = RequestHeader {
            coordinator_id: "a",
            principal: "bc",
            ..header(&nonce, 0)
        };
        assert_ne!(signing_bytes(&a, b""), signing_bytes(&b, b""));
    }
}
