//! A person's connection to the planner API, shared by the `jointly` CLI, the
//! demo and the tests. Every call is signed with her credential (planner.proto
//! says how); the methods mirror the generated client's, so callers read the
//! same either way.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use jointly_protocol::{
    access::request::{self, NONCE_BYTES, RequestHeader},
    wire::{
        AddPrincipalRequest, CancelJobRequest, FetchTranscriptRequest, GetJobRequest, IssuedCredential, Job,
        JobState, ListJobsRequest, ListJobsResponse, ListNodesRequest, ListNodesResponse,
        ListPrincipalsRequest, ListPrincipalsResponse, Principal, RevokePrincipalRequest, SubmitQueryRequest,
        TranscriptChunk, WhoAmIRequest, planner_client::PlannerClient,
    },
};
use prost::Message;
use tonic::{
    Request, Response, Status, Streaming,
    metadata::MetadataValue,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};

use crate::{
    auth::{NONCE, PRINCIPAL, SIGNATURE, TIMESTAMP, method},
    credential::Credential,
    store::now_ms,
};

/// A signed connection to the planner API.
#[derive(Clone, Debug)]
pub struct Planner {
    inner: PlannerClient<Channel>,
    credential: Credential,
}

/// Why no connection to the planner API was made; each says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    #[error(
        "refusing plain HTTP to {url}: use an https:// URL with --ca-cert (plain HTTP is for a coordinator on this machine only)"
    )]
    PlainHttp { url: String },
    #[error("'{url}' is not a valid coordinator URL: {error}")]
    BadUrl {
        url: String,
        error: tonic::transport::Error,
    },
    #[error("cannot read CA certificate {path}: {error}")]
    CaCert { path: PathBuf, error: std::io::Error },
    #[error("TLS configuration: {0}")]
    Tls(tonic::transport::Error),
    #[error(
        "cannot reach the coordinator at {url}: {error}; is it running? (set --coordinator or JOINTLY_COORDINATOR)"
    )]
    Unreachable {
        url: String,
        error: tonic::transport::Error,
    },
}

/// Whether a URL's host is this machine: the only place plain HTTP may go.
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Connects to the planner API at `url` as the credential's owner (https
/// needs `ca_cert`; `tls_domain` is the name to check in the certificate
/// when it is not the URL's host). Plain HTTP goes to loopback only: a
/// signature stops a relay from altering or replaying a call, not from
/// reading its results.
pub async fn connect(
    url: &str,
    ca_cert: Option<&Path>,
    tls_domain: Option<&str>,
    credential: Credential,
) -> Result<Planner, ConnectError> {
    if url.starts_with("http://") && !is_loopback_url(url) {
        return Err(ConnectError::PlainHttp { url: url.to_string() });
    }
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|error| ConnectError::BadUrl {
            url: url.to_string(),
            error,
        })?
        .connect_timeout(Duration::from_secs(5));
    if let Some(ca) = ca_cert {
        let pem = std::fs::read(ca).map_err(|error| ConnectError::CaCert {
            path: ca.to_path_buf(),
            error,
        })?;
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
        if let Some(domain) = tls_domain {
            tls = tls.domain_name(domain);
        }
        endpoint = endpoint.tls_config(tls).map_err(ConnectError::Tls)?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|error| ConnectError::Unreachable {
            url: url.to_string(),
            error,
        })?;
    Ok(Planner {
        inner: PlannerClient::new(channel),
        credential,
    })
}

/// A request with the credential's signature over `method` and `body`.
pub fn signed<T: Message>(credential: &Credential, method: &str, body: T) -> Request<T> {
    use rand::RngCore;
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rng().fill_bytes(&mut nonce);
    let timestamp_ms = now_ms();
    let header = RequestHeader {
        coordinator_id: &credential.coordinator_id,
        method,
        principal: &credential.principal,
        timestamp_ms,
        nonce: &nonce,
    };
    let signature = request::sign(&credential.key, &header, &body.encode_to_vec());
    let mut request = Request::new(body);
    let metadata = request.metadata_mut();
    // Names are checked at registration to be plain ASCII, and the rest is
    // digits and hex, so every value is valid metadata.
    for (key, value) in [
        (PRINCIPAL, credential.principal.clone()),
        (TIMESTAMP, timestamp_ms.to_string()),
        (NONCE, hex::encode(nonce)),
        (SIGNATURE, hex::encode(signature)),
    ] {
        if let Ok(v) = MetadataValue::try_from(value) {
            metadata.insert(key, v);
        }
    }
    request
}

impl Planner {
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    fn sign<T: Message>(&self, method: &str, body: T) -> Request<T> {
        signed(&self.credential, method, body)
    }

    pub async fn submit_query(&mut self, r: SubmitQueryRequest) -> Result<Response<Job>, Status> {
        let r = self.sign(method::SUBMIT_QUERY, r);
        self.inner.submit_query(r).await
    }

    pub async fn get_job(&mut self, r: GetJobRequest) -> Result<Response<Job>, Status> {
        let r = self.sign(method::GET_JOB, r);
        self.inner.get_job(r).await
    }

    pub async fn list_jobs(&mut self, r: ListJobsRequest) -> Result<Response<ListJobsResponse>, Status> {
        let r = self.sign(method::LIST_JOBS, r);
        self.inner.list_jobs(r).await
    }

    pub async fn cancel_job(&mut self, r: CancelJobRequest) -> Result<Response<Job>, Status> {
        let r = self.sign(method::CANCEL_JOB, r);
        self.inner.cancel_job(r).await
    }

    pub async fn list_nodes(&mut self, r: ListNodesRequest) -> Result<Response<ListNodesResponse>, Status> {
        let r = self.sign(method::LIST_NODES, r);
        self.inner.list_nodes(r).await
    }

    pub async fn who_am_i(&mut self) -> Result<Response<Principal>, Status> {
        let r = self.sign(method::WHO_AM_I, WhoAmIRequest {});
        self.inner.who_am_i(r).await
    }

    pub async fn fetch_transcript(
        &mut self,
        r: FetchTranscriptRequest,
    ) -> Result<Response<Streaming<TranscriptChunk>>, Status> {
        let r = self.sign(method::FETCH_TRANSCRIPT, r);
        self.inner.fetch_transcript(r).await
    }

    pub async fn list_principals(&mut self) -> Result<Response<ListPrincipalsResponse>, Status> {
        let r = self.sign(method::LIST_PRINCIPALS, ListPrincipalsRequest {});
        self.inner.list_principals(r).await
    }

    pub async fn add_principal(
        &mut self,
        r: AddPrincipalRequest,
    ) -> Result<Response<IssuedCredential>, Status> {
        let r = self.sign(method::ADD_PRINCIPAL, r);
        self.inner.add_principal(r).await
    }

    pub async fn revoke_principal(
        &mut self,
        r: RevokePrincipalRequest,
    ) -> Result<Response<Principal>, Status> {
        let r = self.sign(method::REVOKE_PRINCIPAL, r);
        self.inner.revoke_principal(r).await
    }

    /// The generated client, for tests that send what this one would not.
    pub fn raw(&self) -> PlannerClient<Channel> {
        self.inner.clone()
    }
}

pub fn is_finished(job: &Job) -> bool {
    matches!(
        JobState::try_from(job.state),
        Ok(JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    )
}

/// Polls a job until it ends, calling `progress` on every poll.
pub async fn wait(
    planner: &mut Planner,
    job_id: &str,
    mut progress: impl FnMut(&Job),
) -> Result<Job, tonic::Status> {
    loop {
        let job = planner
            .get_job(GetJobRequest {
                job_id: job_id.to_string(),
            })
            .await?
            .into_inner();
        progress(&job);
        if is_finished(&job) {
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_are_loopback() {
        for url in [
            "http://127.0.0.1:7700",
            "http://localhost:7700",
            "http://[::1]:7700",
            "http://127.8.9.1",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "http://10.0.0.1:7700",
            "http://coordinator:7700",
            "http://localhost.evil.example:7700",
            "http://[2001:db8::1]:7700",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }

    #[tokio::test]
    async fn plain_http_off_this_machine_is_refused_before_dialling() {
        let credential = Credential {
            coordinator_id: "c".into(),
            coordinator_url: None,
            principal: "alice".into(),
            key: ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
        };
        let refused = connect("http://10.0.0.1:7700", None, None, credential)
            .await
            .expect_err("refused");
        assert!(matches!(&refused, ConnectError::PlainHttp { url } if url == "http://10.0.0.1:7700"));
        assert!(
            refused
                .to_string()
                .starts_with("refusing plain HTTP to http://10.0.0.1:7700: use an https:// URL")
        );
    }
}
