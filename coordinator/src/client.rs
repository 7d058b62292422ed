//! A planner's connection to the coordinator, shared by the `jointly` CLI, the
//! demo and the tests.

use std::{path::Path, time::Duration};

use jointly_protocol::wire::{GetJobRequest, Job, JobState, planner_client::PlannerClient};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

pub type Planner = PlannerClient<Channel>;

/// Connects to the planner API at `url` (https needs `ca_cert`; `tls_domain`
/// is the name to check in the certificate when it is not the URL's host).
pub async fn connect(url: &str, ca_cert: Option<&Path>, tls_domain: Option<&str>) -> Result<Planner, String> {
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| format!("'{url}' is not a valid coordinator URL: {e}"))?
        .connect_timeout(Duration::from_secs(5));
    if let Some(ca) = ca_cert {
        let pem =
            std::fs::read(ca).map_err(|e| format!("cannot read CA certificate {}: {e}", ca.display()))?;
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
        if let Some(domain) = tls_domain {
            tls = tls.domain_name(domain);
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| format!("TLS configuration: {e}"))?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot reach the coordinator at {url}: {e}; is it running? (set --coordinator or JOINTLY_COORDINATOR)"))?;
    Ok(PlannerClient::new(channel))
}

pub fn is_finished(job: &Job) -> bool {
    matches!(
        JobState::try_from(job.state),
        Ok(JobState::Succeeded | JobState::Failed)
    )
}

/// Polls a job until it succeeds or fails, calling `progress` on every poll.
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
