//! What the auditor reads: one check per concern, the parties as the
//! co-signed summary names them, and who asked for the job.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Passed,
    Failed,
    /// Not possible with this copy (a shared copy holds no attestations).
    NotChecked,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub status: CheckStatus,
    pub detail: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PartyReport {
    pub node: String,
    pub role: String,
    pub identity_key: String,
    pub session_key: String,
    pub set_size: u64,
    pub messages_sent: u64,
    pub policy_checks: Vec<String>,
    pub epsilon: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DisclosureReport {
    pub party: String,
    pub learns: String,
}

/// Who asked for the job, as the planner signed it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RequesterReport {
    pub principal: String,
    pub organisation: String,
    pub workspace: String,
    pub public_key: String,
    pub coordinator_id: String,
    pub signed_unix_ms: i64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct AuditReport {
    /// True when no check failed.
    pub verified: bool,
    pub job_id: String,
    pub session_id: String,
    /// The node whose file this is.
    pub kept_by: String,
    pub query_kind: String,
    pub query: String,
    pub parties: Vec<PartyReport>,
    pub disclosures: Vec<DisclosureReport>,
    /// The planner who asked, when the file records one.
    pub requester: Option<RequesterReport>,
    pub checks: Vec<Check>,
}

impl AuditReport {
    pub(super) fn pass(&mut self, name: &str, detail: impl Into<String>) {
        self.add(name, CheckStatus::Passed, detail.into());
    }
    pub(super) fn fail(&mut self, name: &str, detail: impl Into<String>) {
        self.add(name, CheckStatus::Failed, detail.into());
    }
    pub(super) fn add(&mut self, name: &str, status: CheckStatus, detail: String) {
        self.checks.push(Check {
            name: name.to_string(),
            status,
            detail,
        });
    }
    pub(super) fn finish(mut self) -> Self {
        self.verified = !self.checks.iter().any(|c| c.status == CheckStatus::Failed);
        self
    }
}
