//! Why a node does not take part in a job: one variant per reason, carrying
//! the names its message gives (node, partner, dataset, column, planner,
//! epsilon asked and left), rendered to the planner's message here and only
//! here. The coordinator relays the rendered text; the node's own code and
//! tests look at the variant.
//!
//! A top-level module, not part of `decision`: the privacy plan and the
//! budget ledger's answer refuse too, and `decision` builds on `privacy`.

use jointly_protocol::{
    access::request::RequestError, ids::normalize::IdKind, privacy::accounting::AccountingError,
    queries::attribution_query::QueryError,
};

use crate::{
    config::{ColumnUse, EventKind},
    error::NodeError,
    period::Period,
};

/// A node's refusal of a job offer, in the words of its policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    // The offer itself.
    #[error("node '{node}' received an offer without a query")]
    NoQuery { node: String },
    #[error("node '{node}' does not support this query kind")]
    UnsupportedQuery { node: String },
    #[error("node '{node}' received an offer without a valid role")]
    NoRole { node: String },
    #[error("node '{node}' refuses a query without privacy terms")]
    NoPrivacyTerms { node: String },
    #[error("node '{node}' received an offer whose query does not name it on exactly one side")]
    NotOnOneSide { node: String },
    #[error(
        "node '{node}' refuses: the offer names dataset '{dataset}', which is not the one the query names for this node"
    )]
    DatasetNotNamed { node: String, dataset: String },

    // Partners and identifiers.
    #[error("node '{node}' refuses: '{partner}' is not listed in its policy.partners")]
    PartnerNotAllowed { node: String, partner: String },
    #[error("node '{node}' does not know the peer's identifier kind '{kind}'")]
    UnknownPeerKind { node: String, kind: String },
    #[error("identifier kinds cannot match: '{dataset}' holds {own} and '{partner}' holds {peer}")]
    KindsCannotMatch {
        dataset: String,
        own: IdKind,
        partner: String,
        peer: IdKind,
    },

    // Datasets, event tables and columns.
    #[error("node '{node}' has no dataset '{dataset}'")]
    NoDataset { node: String, dataset: String },
    #[error("node '{node}' has no event table '{name}' in its [[events]]")]
    NoEventTable { node: String, name: String },
    #[error("node '{node}' refuses: '{name}' holds {}, not {}", .holds.label(), .wanted.label())]
    WrongEventKind {
        node: String,
        name: String,
        holds: EventKind,
        wanted: EventKind,
    },
    #[error("node '{node}' refuses: dataset '{dataset}' has no column '{column}' in its configuration")]
    NoSuchColumn {
        node: String,
        dataset: String,
        column: String,
    },
    #[error(
        "node '{node}' refuses: its policy does not allow column '{column}' of dataset '{dataset}' as a {} (columns.uses)", .use_.label()
    )]
    ColumnUseNotAllowed {
        node: String,
        dataset: String,
        column: String,
        use_: ColumnUse,
    },

    // Limits.
    #[error(
        "node '{node}' is busy: {running} sessions running (limits.max_sessions = {max}); run the query again later"
    )]
    Busy {
        node: String,
        running: usize,
        max: usize,
    },
    #[error(
        "node '{node}' refuses: the job needs {values} noise values and cover counts, above limits.max_job_values = {max}; group by fewer columns or ask for a shorter period"
    )]
    TooManyValues { node: String, values: usize, max: usize },

    // Who asked.
    #[error("node '{node}' refuses: the offer names no planner (a coordinator without access control?)")]
    NoPlanner { node: String },
    #[error(
        "node '{node}' refuses: the request planner '{planner}' is said to have signed fails its check ({reason}); the coordinator may have altered or forged it"
    )]
    BadSignature {
        node: String,
        planner: String,
        reason: RequestError,
    },
    #[error("node '{node}' refuses: the signed request is not a query submission")]
    NotAQuerySubmission { node: String },
    #[error("node '{node}' refuses: the offered query is not the one planner '{planner}' signed")]
    QueryNotSigned { node: String, planner: String },
    #[error(
        "node '{node}' refuses: planner '{planner}' signed this request {age_s} s from now, beyond {max_s} s: a replayed request, or clocks out of step"
    )]
    StaleRequest {
        node: String,
        planner: String,
        /// Signing time less now, in seconds (negative: in the past).
        age_s: i64,
        max_s: i64,
    },
    #[error("node '{node}' refuses: '{principal}' has role '{role}'; only planners submit queries")]
    NotAPlanner {
        node: String,
        principal: String,
        role: String,
    },
    #[error(
        "node '{node}' refuses: planner '{planner}' signed with another key than the one pinned in policy.planner_keys; the coordinator may be standing in for her"
    )]
    PlannerKeyMismatch { node: String, planner: String },
    #[error(
        "node '{node}' refuses: no [[policy.planners]] entry lets planner '{planner}' (organisation '{organisation}') run a {kind} query over dataset '{dataset}'; add one naming the planner or her organisation"
    )]
    NoPlannerRule {
        node: String,
        planner: String,
        organisation: String,
        kind: String,
        dataset: String,
    },
    #[error(
        "node '{node}' refuses: planner '{planner}''s signed request already created a job here; a replayed request gets none"
    )]
    ReplayedRequest { node: String, planner: String },

    // Segments and breakdowns.
    #[error(
        "node '{node}' refuses to let '{partner}' receive the members of this segment: '{partner}' is not listed in its policy.allow_activation"
    )]
    ActivationNotAllowed { node: String, partner: String },
    #[error(
        "node '{node}' refuses: the segment names '{named}' to receive its members, which is neither this job's receiver nor its peer"
    )]
    ActivationNotInJob { node: String, named: String },
    #[error("node '{node}' refuses: a measure names no side")]
    MeasureWithoutSide { node: String },
    #[error("node '{node}' refuses: the offer does not describe the peer's groups and measures")]
    PeerShapeMissing { node: String },
    #[error("node '{node}' refuses: the offer's role does not fit the breakdown's measures")]
    BreakdownRole { node: String },
    #[error(
        "node '{node}' refuses: sums of column '{column}' over {customers} customers could exceed what a release can decrypt; declare a narrower clip range for it"
    )]
    SumsTooLarge {
        node: String,
        column: String,
        customers: u64,
    },
    /// The query's plan is beyond what the protocol runs (its shape, its
    /// windows, its models), as the protocol crate says.
    #[error("node '{node}' refuses: {reason}")]
    Plan { node: String, reason: String },
    /// The attribution or lift query cannot be planned (no model, no
    /// period, no window, ...).
    #[error("node '{node}' refuses: {reason}")]
    Query { node: String, reason: QueryError },

    // Attribution and lift.
    #[error("node '{node}' received an attribution offer that does not name its dataset '{dataset}'")]
    AttributionDatasetNotNamed { node: String, dataset: String },
    #[error(
        "node '{node}' refuses: in attribution the conversions' node receives and the exposures' node sends"
    )]
    AttributionRole { node: String },
    #[error("node '{node}' refuses: the offer misstates the channels and campaigns of '{dataset}'")]
    ChannelsMisstated { node: String, dataset: String },
    #[error(
        "node '{node}' refuses: value sums of {customers} customers clipped at {clip} CNY could exceed what a release can decrypt; ask for a lower value clip"
    )]
    LiftSumsTooLarge { node: String, customers: u64, clip: u64 },
    #[error(
        "node '{node}' refuses: {persons} persons with up to {max_conversions} conversion windows each could overflow the attribution's pooled value totals; lower --max-conversions or split the period"
    )]
    AttributionSumsTooLarge {
        node: String,
        persons: u64,
        max_conversions: u32,
    },
    #[error(
        "node '{node}' refuses: the test and control values must be two different declared values of column '{column}'"
    )]
    LiftValues { node: String, column: String },
    #[error("node '{node}' received a lift offer that does not name its dataset '{dataset}'")]
    LiftDatasetNotNamed { node: String, dataset: String },
    #[error("node '{node}' refuses: in a lift the groups' node receives and the customers' node sends")]
    LiftRole { node: String },

    // Privacy and budget.
    #[error(
        "node '{node}' has no privacy budget for dataset '{dataset}' with partner '{partner}': add a [[policy.budgets]] entry"
    )]
    NoBudget {
        node: String,
        dataset: String,
        partner: String,
    },
    #[error("node '{node}': policy.budgets for '{dataset}': {reason}")]
    BudgetInvalid {
        node: String,
        dataset: String,
        reason: AccountingError,
    },
    #[error(
        "node '{node}' refuses an exact result: its policy sets allow_exact = false (exact results need allow_exact = true on both nodes)"
    )]
    ExactNotAllowed { node: String },
    #[error("node '{node}' refuses: {reason}; ask for an epsilon up to policy.max_epsilon = {max}")]
    InvalidEpsilon {
        node: String,
        reason: AccountingError,
        max: f64,
    },
    #[error("node '{node}' refuses: epsilon = {asked} is above its policy.max_epsilon = {max}; ask for less")]
    EpsilonAboveMax { node: String, asked: f64, max: f64 },
    #[error("node '{node}': {reason}")]
    Accounting { node: String, reason: AccountingError },
    #[error("node '{node}' cannot noise this query: {reason}")]
    CannotNoise { node: String, reason: String },
    /// Budget and spending as epsilon at the policy's delta (composed, so
    /// they do not simply add up).
    #[error(
        "node '{node}' refuses: the privacy budget of dataset '{dataset}' {} for {period} is epsilon {budget:.3}; {spent:.3} is spent and this query (epsilon {asked}) does not fit. Ask for a smaller epsilon or wait for the next {}",
        whose(.partner),
        .next.label()
    )]
    BudgetExhausted {
        node: String,
        dataset: String,
        /// The budget's partner: a partner's own entry, or "*" for the pool.
        partner: String,
        /// The period's key ("2026-12").
        period: String,
        budget: f64,
        spent: f64,
        asked: f64,
        /// The budget's period, as in "wait for the next month".
        next: Period,
    },
    #[error(
        "node '{node}' already has job '{job_id}' on its budget ledger; submit the query again as a new job"
    )]
    DuplicateJob { node: String, job_id: String },

    // This node's own state.
    #[error("node '{node}' cannot record the request: {reason}")]
    CannotRecordRequest { node: String, reason: Box<NodeError> },
    #[error("node '{node}' cannot reserve budget: {reason}")]
    CannotReserve { node: String, reason: Box<NodeError> },
    #[error("internal error while deciding: {reason}")]
    Internal { reason: String },
}

/// Whose budget: a partner's own, or the pool of every partner without one.
fn whose(partner: &str) -> String {
    if partner == "*" {
        "shared by every partner without its own entry (\"*\")".to_string()
    } else {
        format!("with partner '{partner}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The planner reads these words through the coordinator: they stay as
    /// they were when each refusal was a string.
    #[test]
    fn refusals_render_in_the_words_of_the_policy() {
        let node = || "bank".to_string();
        let cases: Vec<(Refusal, &str)> = vec![
            (
                Refusal::PartnerNotAllowed {
                    node: node(),
                    partner: "stranger".into(),
                },
                "node 'bank' refuses: 'stranger' is not listed in its policy.partners",
            ),
            (
                Refusal::KindsCannotMatch {
                    dataset: "customers".into(),
                    own: IdKind::Phone,
                    partner: "partner".into(),
                    peer: IdKind::Email,
                },
                "identifier kinds cannot match: 'customers' holds phone and 'partner' holds email",
            ),
            (
                Refusal::ColumnUseNotAllowed {
                    node: node(),
                    dataset: "customers".into(),
                    column: "tier".into(),
                    use_: ColumnUse::Measure,
                },
                "node 'bank' refuses: its policy does not allow column 'tier' of dataset 'customers' as a measure (columns.uses)",
            ),
            (
                Refusal::WrongEventKind {
                    node: node(),
                    name: "exposures".into(),
                    holds: EventKind::Exposures,
                    wanted: EventKind::Conversions,
                },
                "node 'bank' refuses: 'exposures' holds exposures, not conversions",
            ),
            (
                Refusal::BudgetExhausted {
                    node: node(),
                    dataset: "customers".into(),
                    partner: "*".into(),
                    period: "2026-12".into(),
                    budget: 4.0,
                    spent: 3.9876,
                    asked: 0.5,
                    next: Period::Month,
                },
                "node 'bank' refuses: the privacy budget of dataset 'customers' shared by every partner without its own entry (\"*\") for 2026-12 is epsilon 4.000; 3.988 is spent and this query (epsilon 0.5) does not fit. Ask for a smaller epsilon or wait for the next month",
            ),
            (
                Refusal::BudgetExhausted {
                    node: node(),
                    dataset: "customers".into(),
                    partner: "partner".into(),
                    period: "2026-12".into(),
                    budget: 1.0,
                    spent: 1.0,
                    asked: 1.0,
                    next: Period::Day,
                },
                "node 'bank' refuses: the privacy budget of dataset 'customers' with partner 'partner' for 2026-12 is epsilon 1.000; 1.000 is spent and this query (epsilon 1) does not fit. Ask for a smaller epsilon or wait for the next day",
            ),
            (
                Refusal::StaleRequest {
                    node: node(),
                    planner: "alice".into(),
                    age_s: -3600,
                    max_s: 600,
                },
                "node 'bank' refuses: planner 'alice' signed this request -3600 s from now, beyond 600 s: a replayed request, or clocks out of step",
            ),
            (
                Refusal::ReplayedRequest {
                    node: node(),
                    planner: "alice".into(),
                },
                "node 'bank' refuses: planner 'alice''s signed request already created a job here; a replayed request gets none",
            ),
        ];
        for (refusal, text) in cases {
            assert_eq!(refusal.to_string(), text);
        }
    }
}
