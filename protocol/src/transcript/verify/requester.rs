//! The planner's signed request, as the file's head records it.

use prost::Message;

use super::report::{AuditReport, CheckStatus, RequesterReport};
use crate::wire::{self, TranscriptHead};

/// The planner's signature over the request that created the job, and that
/// the request's query is the one the session ran. (The terms digest both
/// nodes announced binds the requester too: a file whose head names another
/// planner fails the co-signed summary.)
pub(super) fn check_requester(report: &mut AuditReport, head: &TranscriptHead, spec: &wire::QuerySpec) {
    const NAME: &str = "planner's request";
    let Some(r) = &head.requester else {
        report.add(
            NAME,
            CheckStatus::NotChecked,
            "the file names no planner (a job run before planners signed their requests)".into(),
        );
        return;
    };
    report.requester = Some(RequesterReport {
        principal: r.principal.clone(),
        organisation: r.organisation.clone(),
        workspace: r.workspace.clone(),
        public_key: hex::encode(&r.public_key),
        coordinator_id: r.coordinator_id.clone(),
        signed_unix_ms: r.timestamp_ms,
    });
    let signed_spec = wire::SubmitQueryRequest::decode(r.request.as_slice())
        .ok()
        .and_then(|q| q.spec)
        .map(|q| q.encode_to_vec());
    match crate::access::request::verify_requester(r) {
        Err(e) => report.fail(NAME, format!("planner '{}': {e}", r.principal)),
        Ok(()) if signed_spec != Some(spec.encode_to_vec()) => report.fail(
            NAME,
            format!("the session ran another query than the one planner '{}' signed", r.principal),
        ),
        Ok(()) => report.pass(
            NAME,
            format!(
                "planner '{}' of organisation '{}' (workspace '{}') signed this query for coordinator '{}' with key {}; check the key against the coordinator's registry of that date",
                r.principal,
                r.organisation,
                r.workspace,
                r.coordinator_id,
                hex::encode(&r.public_key)
            ),
        ),
    }
}
