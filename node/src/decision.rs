//! The node's own decision on a job offer. The coordinator proposes; only the
//! node's policy disposes, and a refusal says which key refused and why.
//! The checks every query kind makes are in `decision/common.rs`, each kind's
//! plan in `decision/breakdown.rs` (breakdowns, segments) and
//! `decision/attribution.rs` (attribution, lift).

use std::collections::BTreeMap;

use jointly_protocol::{
    ids::normalize::{IdKind, match_kind},
    queries::breakdown_plan::{BreakdownPlan, Side},
    queries::lift::LiftPlan,
    queries::terms::{job_terms, with_requester},
    session::stream::Terms,
    wire::{Filter, JobOffer, Requester, Role, query_spec::Query},
};

use crate::{
    config::{NodeLimits, Policy},
    dataset::LoadedDataset,
    events::LoadedEvents,
    privacy::{LaneCover, NoisePlan, QueryShape, plan},
};

/// Why this node refuses an offer; rendered in `refusal.rs`.
pub use crate::refusal::Refusal;

/// What the node will run for an accepted offer.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub role: Role,
    pub dataset: String,
    /// The identifier kind both sides hash under.
    pub hash_kind: IdKind,
    /// Noise, threshold and budget charge; the caller reserves the charge.
    pub noise: NoisePlan,
    /// The digest both parties must agree on before exchanging anything.
    pub terms: Terms,
    pub work: Work,
    /// The checks this node made, in plain language, for the transcript.
    pub checks: Vec<String>,
    /// The planner who asked, as the offer carried it (her signature checked).
    pub requester: Requester,
}

/// The protocol a job runs on this node, with this node's part of the query.
#[derive(Clone, Debug)]
pub enum Work {
    Overlap,
    Segment {
        filters: Vec<Filter>,
        activation: Activation,
    },
    Breakdown {
        side: Side,
        plan: BreakdownPlan,
        group_by: Vec<String>,
        /// This side's measures, in query order.
        measures: Vec<String>,
        filters: Vec<Filter>,
    },
    /// The bank receives every window's lane; the partner sends. The job's
    /// dataset is the node's event table.
    Attribution {
        plan: jointly_protocol::queries::attribution::Plan,
    },
    Lift {
        plan: LiftPlan,
        side: LiftSide,
    },
}

/// This node's part of a lift.
#[derive(Clone, Debug)]
pub enum LiftSide {
    /// The bank: the job's dataset holds its customers; these are their
    /// conversions.
    Bank { conversions: String },
    /// The partner: the job's dataset holds the split in `column`.
    Partner {
        column: String,
        test: String,
        control: String,
    },
}

/// What a node holds, by name: tables and event tables.
#[derive(Clone, Copy, Debug)]
pub struct Holdings<'a> {
    pub datasets: &'a BTreeMap<String, LoadedDataset>,
    pub events: &'a BTreeMap<String, LoadedEvents>,
}

/// A segment's activation, from this node's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Size only.
    None,
    /// This node receives its own members, if there are at least this many.
    Receive { min_activation: u64 },
    /// The peer receives its members; this node answers in order only for a
    /// segment of at least this many.
    Allow { min_activation: u64 },
}

mod attribution;
mod breakdown;
mod common;

use attribution::*;
use breakdown::*;
use common::*;

/// Checks an offer against the policy and the loaded datasets. Draws the
/// job's noise and cover when accepting: callers run it off the async
/// workers.
pub fn decide(
    node: &str,
    policy: &Policy,
    limits: &NodeLimits,
    offer: &JobOffer,
    holdings: Holdings<'_>,
    running_sessions: usize,
) -> Result<Accepted, Refusal> {
    let node_name = || node.to_string();
    let Some(spec) = offer.spec.as_ref() else {
        return Err(Refusal::NoQuery { node: node_name() });
    };
    let Some(query) = spec.query.as_ref() else {
        return Err(Refusal::UnsupportedQuery { node: node_name() });
    };
    if !policy.partners.iter().any(|p| p == &offer.peer_node) {
        return Err(Refusal::PartnerNotAllowed {
            node: node_name(),
            partner: offer.peer_node.clone(),
        });
    }
    named_dataset(node, query, offer)?;
    let no_dataset = || Refusal::NoDataset {
        node: node_name(),
        dataset: offer.dataset.clone(),
    };
    let own_kind = match query {
        Query::Attribution(_) => holdings.events.get(&offer.dataset).map(|e| e.config().id_kind),
        _ => holdings.datasets.get(&offer.dataset).map(|d| d.kind),
    }
    .ok_or_else(no_dataset)?;
    let table = || holdings.datasets.get(&offer.dataset).ok_or_else(no_dataset);
    let role = match Role::try_from(offer.role) {
        Ok(r @ (Role::Receiver | Role::Sender)) => r,
        _ => return Err(Refusal::NoRole { node: node_name() }),
    };
    let peer_kind: IdKind = offer.peer_id_kind.parse().map_err(|_| Refusal::UnknownPeerKind {
        node: node_name(),
        kind: offer.peer_id_kind.clone(),
    })?;
    let hash_kind = match_kind(own_kind, peer_kind).ok_or_else(|| Refusal::KindsCannotMatch {
        dataset: offer.dataset.clone(),
        own: own_kind,
        partner: offer.peer_node.clone(),
        peer: peer_kind,
    })?;
    if running_sessions >= limits.max_sessions {
        return Err(Refusal::Busy {
            node: node_name(),
            running: running_sessions,
            max: limits.max_sessions,
        });
    }
    let privacy = spec
        .privacy
        .as_ref()
        .ok_or_else(|| Refusal::NoPrivacyTerms { node: node_name() })?;
    let own = vec![offer.dataset.clone()];
    let planned = match query {
        Query::Overlap(_) => Planned {
            kind: "overlap",
            work: Work::Overlap,
            terms: job_terms(&offer.job_id, spec),
            scales: if role == Role::Sender { vec![] } else { vec![1] },
            sensitivity_sq: if role == Role::Sender { 0.0 } else { 1.0 },
            cover_sensitivity_sq: 1.0,
            cover: count_cover(role),
            datasets: own,
        },
        Query::Segment(q) => {
            let dataset = table()?;
            let side = side_of(node, q.left.as_ref(), q.right.as_ref())?;
            let filters = match side {
                Side::Left => &q.left_filters,
                Side::Right => &q.right_filters,
            };
            check_columns(node, dataset, filter_uses(filters))?;
            let activation = segment_activation(node, policy, offer, &q.activate, role)?;
            // An activation's receiver sees its members exactly, by the
            // sender's consent: there the sender noises what is released and
            // the receiver adds the dummies (for the sender's count).
            let (scales, sensitivity_sq, cover) = match activation {
                Activation::None => (
                    if role == Role::Sender { vec![] } else { vec![1] },
                    if role == Role::Sender { 0.0 } else { 1.0 },
                    count_cover(role),
                ),
                Activation::Receive { .. } => (vec![1], 1.0, vec![LaneCover { pads: 1, dummies: 1 }]),
                Activation::Allow { .. } => (vec![1], 1.0, vec![LaneCover { pads: 1, dummies: 0 }]),
            };
            Planned {
                kind: "segment",
                work: Work::Segment {
                    filters: filters.clone(),
                    activation,
                },
                terms: job_terms(&offer.job_id, spec),
                scales,
                sensitivity_sq,
                cover_sensitivity_sq: 1.0,
                cover,
                datasets: own,
            }
        }
        Query::Breakdown(q) => breakdown_work(node, table()?, offer, spec, q, role)?,
        Query::Attribution(q) => attribution_work(node, holdings, offer, spec, q, role)?,
        Query::Lift(q) => lift_work(node, holdings, offer, spec, q, role)?,
    };
    let shape = QueryShape {
        job_id: &offer.job_id,
        datasets: &planned.datasets.iter().map(String::as_str).collect::<Vec<_>>(),
        partner: &offer.peer_node,
        kind: planned.kind,
        sensitivity_sq: planned.sensitivity_sq,
        noise_scales: &planned.scales,
        cover_sensitivity_sq: planned.cover_sensitivity_sq,
        cover: &planned.cover,
    };
    // Bounded before anything is drawn: a coordinator's offer cannot make
    // this node sample (and hold) billions of values.
    if shape.values() > limits.max_job_values {
        return Err(Refusal::TooManyValues {
            node: node_name(),
            values: shape.values(),
            max: limits.max_job_values,
        });
    }
    let (requester, planner_check) =
        check_requester(node, policy, offer, planned.kind, &planned.datasets, now_ms())?;
    let noise = plan(node, policy, privacy, shape)?;
    let mut checks = checks_made(policy, offer, &offer.dataset, hash_kind, &noise, &planned.work);
    checks.insert(0, planner_check);
    Ok(Accepted {
        role,
        dataset: offer.dataset.clone(),
        hash_kind,
        noise,
        terms: with_requester(planned.terms, Some(&requester)),
        work: planned.work,
        checks,
        requester,
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What `decide` checked before accepting, as the transcript's summary states it.
fn checks_made(
    policy: &Policy,
    offer: &JobOffer,
    dataset: &str,
    hash_kind: IdKind,
    noise: &crate::privacy::NoisePlan,
    work: &Work,
) -> Vec<String> {
    let peer = &offer.peer_node;
    let mut checks = vec![
        format!("partner '{peer}' is listed in policy.partners"),
        format!("dataset '{dataset}' matches the peer's identifiers as {hash_kind}"),
    ];
    if noise.exact {
        checks.push(
            "an exact result is allowed by policy.allow_exact: no noise and no cover on the lists".into(),
        );
    } else {
        checks.push(format!(
            "epsilon {} is within policy.max_epsilon = {}; it covers this node's noise on what is released and the cover on what its peer sees (dummies and random points), all with sigma {:.3} per unit",
            noise.epsilon,
            policy.max_epsilon,
            noise.sigma()
        ));
    }
    for c in &noise.charges {
        let budget = if c.budget_partner == "*" {
            "the pool shared by partners without their own entry".to_string()
        } else {
            format!("'{peer}'")
        };
        checks.push(format!(
            "budget for dataset '{}' with {budget} in period {}: this job charged epsilon {} (reserved; the peer-view part spent when the session starts, the rest at release)",
            c.dataset, c.period, c.epsilon
        ));
    }
    checks.push(format!(
        "released values below policy.min_aggregation = {} are withheld; lists below policy.min_set_size = {} (noised) are refused",
        noise.min_aggregation, noise.min_set_size
    ));
    match work {
        Work::Overlap => {}
        Work::Segment { filters, activation } => {
            if !filters.is_empty() {
                checks.push(format!(
                    "{} filter column(s) allowed for use \"filter\"",
                    filters.len()
                ));
            }
            match activation {
                Activation::None => checks.push("no activation: the segment is sized only".into()),
                Activation::Receive { min_activation } => checks.push(format!(
                    "this node receives its own members only if there are at least policy.min_activation = {min_activation}"
                )),
                Activation::Allow { min_activation } => checks.push(format!(
                    "'{peer}' may receive its members (policy.allow_activation), at least policy.min_activation = {min_activation}"
                )),
            }
        }
        Work::Breakdown {
            group_by,
            measures,
            filters,
            ..
        } => checks.push(format!(
            "columns allowed for their use: group by [{}], measures [{}], {} filter(s)",
            group_by.join(", "),
            measures.join(", "),
            filters.len()
        )),
        Work::Attribution { plan } => checks.push(format!(
            "attribution by {} over {} {} windows, {}-day lookback, at most {} conversion windows per person; {} credit slots",
            plan.model,
            plan.windows(),
            jointly_protocol::queries::attribution_query::window_label(plan.period.window),
            plan.lookback_days,
            plan.period.max_conversions,
            plan.slots()
        )),
        Work::Lift { plan, side } => {
            checks.push(format!(
                "lift over {} windows, at most {} per person, values clipped at {} CNY",
                plan.period.windows(),
                plan.period.max_conversions,
                plan.value_clip
            ));
            if let LiftSide::Partner { column, .. } = side {
                checks.push(format!("column '{column}' allowed for use \"group\""));
            }
        }
    }
    checks
}

#[cfg(test)]
mod tests;
