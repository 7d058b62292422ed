//! Turns a finished protocol into what this node releases: the receiver's
//! count with the sender's dummy mean taken off, its own noise share added
//! and the larger threshold applied; the sender's noise shares; or a
//! breakdown's decryption shares. The budget is committed first, so nothing
//! noise-bearing leaves the node unrecorded. An activation's members are
//! written only after that, and only if the segment's noised size passes.

use jointly_protocol::{
    ProtocolError,
    session::outcome::Outcome,
    wire::{
        BreakdownRelease, Completed, LaneRelease, OverlapResult, QueryResult, ReleasedCount, query_result,
        session_report::Outcome as ReportOutcome,
    },
};
use tracing::info;

use crate::{
    agent::Node,
    decision::{Accepted, Activation, Work},
    error::NodeError,
    work::Selection,
};

/// Why a release did not happen.
pub enum NotReleased {
    /// The budget was committed: the failure itself follows from noised
    /// data (a segment too small to activate).
    Committed(String),
    /// Nothing noise-bearing beyond the session's lists left the node.
    Withheld(String),
}

/// Why a job's budget could not be committed, so nothing was released.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Expired or cancelled meanwhile.
    #[error("its budget reservation for this job is gone; nothing was released")]
    Gone,
    #[error("cannot commit its budget, so nothing was released: {0}")]
    Ledger(NodeError),
}

impl NotReleased {
    /// The failure's message, and whether the job's budget goes back.
    pub fn into_failure(self) -> (String, bool) {
        match self {
            NotReleased::Committed(message) => (message, false),
            NotReleased::Withheld(message) => (message, true),
        }
    }
}

impl Node {
    pub(crate) fn release(
        &self,
        job_id: &str,
        accepted: &Accepted,
        outcome: Outcome,
        selection: &Selection,
    ) -> Result<ReportOutcome, NotReleased> {
        let plan = &accepted.noise;
        let own_share = plan.shares().first().copied().unwrap_or(0);
        let mut members = None;
        let report = match outcome {
            Outcome::Overlap(o) => {
                let threshold = plan.min_aggregation.max(o.peer_min_aggregation);
                released_count(o.centred().saturating_add(own_share), threshold)
            }
            Outcome::Activation(a) => {
                // This node's own check, on its noised count: the same noise
                // as its release, so the decision costs nothing more, and a
                // segment just above or below the minimum fails alike.
                let noised = (a.members.len() as i64).saturating_add(own_share);
                if let Work::Segment {
                    activation: Activation::Receive { min_activation },
                    ..
                } = accepted.work
                    && noised < i64::try_from(min_activation).unwrap_or(i64::MAX)
                {
                    self.commit_budget(job_id)
                        .map_err(|e| NotReleased::Withheld(e.to_string()))?;
                    return Err(NotReleased::Committed(
                        ProtocolError::BelowMinActivation.to_string(),
                    ));
                }
                let report = released_count(noised, plan.min_aggregation);
                members = Some(a.members);
                report
            }
            Outcome::Breakdown(lanes) => ReportOutcome::Breakdown(BreakdownRelease {
                // The bank's own count: only its share of noise is on it, and
                // that share alone gives the job's epsilon.
                conversions: selection.conversions.map(|n| {
                    i64::try_from(n)
                        .unwrap_or(i64::MAX)
                        .saturating_add(plan.shares().last().copied().unwrap_or(0))
                }),
                lanes: lanes
                    .into_iter()
                    .map(|l| LaneRelease {
                        lane: l.lane,
                        cells: l.cells as u32,
                        slots: l.slots as u32,
                        ciphertexts: l.ciphertexts,
                        decryption_shares: l.decryption_shares,
                    })
                    .collect(),
            }),
            _ => ReportOutcome::Completed(Completed {
                noise_shares: if plan.exact {
                    Vec::new()
                } else {
                    plan.shares().to_vec()
                },
            }),
        };
        self.commit_budget(job_id)
            .map_err(|e| NotReleased::Withheld(e.to_string()))?;
        if let Some(members) = members {
            let dataset = self
                .datasets
                .get(&accepted.dataset)
                .ok_or_else(|| NotReleased::Committed(format!("dataset '{}' is gone", accepted.dataset)))?;
            let path = crate::members::write(&self.config.data_dir, job_id, dataset, selection, &members)
                .map_err(|e| NotReleased::Committed(e.to_string()))?;
            info!(node = %self.config.name, job = %job_id, file = %path.display(), "segment members written");
        }
        Ok(report)
    }

    /// Commits the job's whole charge: called before anything beyond the
    /// session's lists leaves the node.
    pub(crate) fn commit_budget(&self, job_id: &str) -> Result<(), CommitError> {
        match self.ledger.commit(job_id) {
            Ok(true) => Ok(()),
            Ok(false) => Err(CommitError::Gone),
            Err(e) => Err(CommitError::Ledger(e)),
        }
    }
}

/// A count as the receiver reports it, withheld below `threshold`: the
/// larger of this node's and its peer's min_aggregation, so that this node's
/// own transcript never keeps a value the planner is not shown.
fn released_count(noised: i64, threshold: u64) -> ReportOutcome {
    let below = noised < i64::try_from(threshold).unwrap_or(i64::MAX);
    ReportOutcome::Result(QueryResult {
        result: Some(query_result::Result::Overlap(OverlapResult {
            intersection: Some(ReleasedCount {
                value: if below { 0 } else { noised },
                below_threshold: below,
            }),
        })),
        release: None,
    })
}
