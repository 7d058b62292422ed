//! The planner API called every way a caller could get it wrong: unsigned,
//! signed for another coordinator or method, stale, replayed, revoked.

use jointly_coordinator::{
    auth::{NONCE, PRINCIPAL, SIGNATURE, TIMESTAMP, method},
    credential::Credential,
};
use jointly_examples::cluster::{exact, overlap_spec, submission};
use jointly_protocol::{
    access::request::{self, RequestHeader},
    wire::{
        AddPrincipalRequest, CancelJobRequest, FetchTranscriptRequest, GetJobRequest, ListJobsRequest,
        ListNodesRequest, ListPrincipalsRequest, PrincipalRole, RevokePrincipalRequest, WhoAmIRequest,
        planner_client::PlannerClient,
    },
};
use tonic::{Code, Request, Status, transport::Channel};

pub(super) fn job_of(id: &str) -> GetJobRequest {
    GetJobRequest { job_id: id.into() }
}

/// Every planner API call, made through `raw` with `sign` deciding what
/// metadata each carries; returns each call's status code.
pub(super) async fn every_call(
    raw: &mut PlannerClient<Channel>,
    sign: impl Fn(&str, &dyn Fn() -> Vec<u8>) -> tonic::metadata::MetadataMap,
    job_id: &str,
) -> Vec<(&'static str, Code)> {
    use prost::Message;
    fn with<T>(metadata: tonic::metadata::MetadataMap, body: T) -> Request<T> {
        let mut r = Request::new(body);
        *r.metadata_mut() = metadata;
        r
    }
    let submit = submission(overlap_spec(exact()));
    let get = job_of(job_id);
    let list = ListJobsRequest { limit: 5 };
    let cancel = CancelJobRequest {
        job_id: job_id.into(),
    };
    let fetch = FetchTranscriptRequest {
        job_id: job_id.into(),
        node: String::new(),
    };
    let add = AddPrincipalRequest {
        name: "mallory".into(),
        organisation: "bank".into(),
        role: PrincipalRole::Operator.into(),
        workspaces: vec!["*".into()],
        valid_days: 0,
        rotate: false,
    };
    let revoke = RevokePrincipalRequest {
        name: "planner".into(),
    };
    let code = |r: Result<(), Status>| r.err().map_or(Code::Ok, |s| s.code());
    vec![
        (
            "SubmitQuery",
            code(
                raw.submit_query(with(
                    sign(method::SUBMIT_QUERY, &|| submit.encode_to_vec()),
                    submit.clone(),
                ))
                .await
                .map(drop),
            ),
        ),
        (
            "GetJob",
            code(
                raw.get_job(with(sign(method::GET_JOB, &|| get.encode_to_vec()), get.clone()))
                    .await
                    .map(drop),
            ),
        ),
        (
            "ListJobs",
            code(
                raw.list_jobs(with(sign(method::LIST_JOBS, &|| list.encode_to_vec()), list))
                    .await
                    .map(drop),
            ),
        ),
        (
            "CancelJob",
            code(
                raw.cancel_job(with(
                    sign(method::CANCEL_JOB, &|| cancel.encode_to_vec()),
                    cancel.clone(),
                ))
                .await
                .map(drop),
            ),
        ),
        (
            "ListNodes",
            code(
                raw.list_nodes(with(
                    sign(method::LIST_NODES, &|| ListNodesRequest {}.encode_to_vec()),
                    ListNodesRequest {},
                ))
                .await
                .map(drop),
            ),
        ),
        (
            "WhoAmI",
            code(
                raw.who_am_i(with(
                    sign(method::WHO_AM_I, &|| WhoAmIRequest {}.encode_to_vec()),
                    WhoAmIRequest {},
                ))
                .await
                .map(drop),
            ),
        ),
        (
            "FetchTranscript",
            code(
                raw.fetch_transcript(with(
                    sign(method::FETCH_TRANSCRIPT, &|| fetch.encode_to_vec()),
                    fetch.clone(),
                ))
                .await
                .map(drop),
            ),
        ),
        (
            "ListPrincipals",
            code(
                raw.list_principals(with(
                    sign(method::LIST_PRINCIPALS, &|| {
                        ListPrincipalsRequest {}.encode_to_vec()
                    }),
                    ListPrincipalsRequest {},
                ))
                .await
                .map(drop),
            ),
        ),
        (
            "AddPrincipal",
            code(
                raw.add_principal(with(
                    sign(method::ADD_PRINCIPAL, &|| add.encode_to_vec()),
                    add.clone(),
                ))
                .await
                .map(drop),
            ),
        ),
        (
            "RevokePrincipal",
            code(
                raw.revoke_principal(with(
                    sign(method::REVOKE_PRINCIPAL, &|| revoke.encode_to_vec()),
                    revoke.clone(),
                ))
                .await
                .map(drop),
            ),
        ),
    ]
}

/// Metadata signed by `credential`, as its owner's client would sign, but
/// with the coordinator id, time and method given.
pub(super) fn metadata_signed(
    credential: &Credential,
    coordinator_id: &str,
    method: &str,
    timestamp_ms: i64,
    body: &[u8],
) -> tonic::metadata::MetadataMap {
    let nonce = rand::random::<[u8; 16]>();
    let header = RequestHeader {
        coordinator_id,
        method,
        principal: &credential.principal,
        timestamp_ms,
        nonce: &nonce,
    };
    let signature = request::sign(&credential.key, &header, body);
    let mut m = tonic::metadata::MetadataMap::new();
    for (k, v) in [
        (PRINCIPAL, credential.principal.clone()),
        (TIMESTAMP, timestamp_ms.to_string()),
        (NONCE, hex::encode(nonce)),
        (SIGNATURE, hex::encode(signature)),
    ] {
        m.insert(k, v.parse().expect("metadata"));
    }
    m
}

pub(super) fn now_ms() -> i64 {
    jointly_coordinator::store::now_ms()
}

pub(super) fn assert_all(codes: &[(&str, Code)], expected: Code, why: &str) {
    assert_eq!(codes.len(), 10, "every planner RPC is tried");
    for (call, code) in codes {
        assert_eq!(*code, expected, "{call} {why}");
    }
}
