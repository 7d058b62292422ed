//! Checks every query kind makes: the requester, the named dataset, the
//! columns and their allowed uses, this node's side and its cover.

use jointly_protocol::access::request;
use jointly_protocol::queries::breakdown_plan::{Side, SideSchema};
use jointly_protocol::session::stream::Terms;
use jointly_protocol::wire::query_spec::Query;
use jointly_protocol::wire::{DatasetRef, Filter, JobOffer, Requester, Role, SubmitQueryRequest};
use prost::Message;

use crate::config::{ColumnUse, Policy};
use crate::dataset::LoadedDataset;
use crate::privacy::LaneCover;
use crate::refusal::Refusal;

use super::Work;

pub(super) fn side_of(
    node: &str,
    left: Option<&DatasetRef>,
    right: Option<&DatasetRef>,
) -> Result<Side, Refusal> {
    match (left.map(|d| d.node.as_str()), right.map(|d| d.node.as_str())) {
        (Some(l), Some(r)) if l == node && r != node => Ok(Side::Left),
        (Some(l), Some(r)) if r == node && l != node => Ok(Side::Right),
        _ => Err(Refusal::NotOnOneSide {
            node: node.to_string(),
        }),
    }
}

/// Checks that every column the query uses on this node's side exists in the
/// dataset and that the policy allows that use.
pub(super) fn check_columns<'a>(
    node: &str,
    dataset: &LoadedDataset,
    uses: impl IntoIterator<Item = (&'a str, ColumnUse)>,
) -> Result<(), Refusal> {
    for (name, use_) in uses {
        let Some(c) = dataset.columns.iter().find(|c| c.name == name) else {
            return Err(Refusal::NoSuchColumn {
                node: node.to_string(),
                dataset: dataset.name.clone(),
                column: name.to_string(),
            });
        };
        if !c.allows(use_) {
            return Err(Refusal::ColumnUseNotAllowed {
                node: node.to_string(),
                dataset: dataset.name.clone(),
                column: name.to_string(),
                use_,
            });
        }
    }
    Ok(())
}

pub(super) fn filter_uses(filters: &[Filter]) -> impl Iterator<Item = (&str, ColumnUse)> {
    filters.iter().map(|f| (f.column.as_str(), ColumnUse::Filter))
}

/// This side's schema: its groups and its measures' bounds.
pub(super) fn own_schema(dataset: &LoadedDataset, group_by: &[String], measures: &[String]) -> SideSchema {
    let column = |name: &str| dataset.columns.iter().find(|c| c.name == name);
    SideSchema {
        // Saturating: a product past usize fails the plan's shape check
        // instead of wrapping round to a small number of cells.
        groups: group_by
            .iter()
            .map(|g| column(g).map_or(1, |c| c.domain().len()))
            .fold(1usize, usize::saturating_mul),
        measure_bounds: measures
            .iter()
            .map(|m| column(m).map_or(0, |c| c.bound()))
            .collect(),
    }
}

/// What a query kind asks of this node: its work, terms, the noise of what
/// it releases and the cover of what its peer sees, and the datasets it
/// reads (each charged).
pub(super) struct Planned {
    pub(super) kind: &'static str,
    pub(super) work: Work,
    pub(super) terms: Terms,
    pub(super) scales: Vec<u64>,
    pub(super) sensitivity_sq: f64,
    pub(super) cover_sensitivity_sq: f64,
    pub(super) cover: Vec<LaneCover>,
    pub(super) datasets: Vec<String>,
}

/// The cover of a count the receiver sees (overlap, segment sizing): R pads
/// U; S pads W and adds dummies for R's one batch. Either way one person
/// moves one cover-hidden count by 1 (S: R's view is the intersection plus
/// dummies and |W| less it, each moved by 1 at most and only one of them).
pub(super) fn count_cover(role: Role) -> Vec<LaneCover> {
    match role {
        Role::Sender => vec![LaneCover { pads: 1, dummies: 1 }],
        _ => vec![LaneCover { pads: 1, dummies: 0 }],
    }
}

/// How long a planner's signed request may be old when the offer comes.
pub(super) const REQUEST_MAX_AGE_MS: i64 = 2 * request::MAX_SKEW_MS;

/// Checks who asked: the planner's signature over the request, that the
/// request's query is the offer's, that it is recent, her pinned key if
/// this node pins one, and a `[[policy.planners]]` rule for every dataset
/// the job reads. Returns the plain-language check for the transcript.
pub(super) fn check_requester(
    node: &str,
    policy: &Policy,
    offer: &JobOffer,
    kind: &str,
    datasets: &[String],
    now_ms: i64,
) -> Result<(Requester, String), Refusal> {
    let node_name = || node.to_string();
    let r = offer
        .requester
        .clone()
        .ok_or_else(|| Refusal::NoPlanner { node: node_name() })?;
    request::verify_requester(&r).map_err(|reason| Refusal::BadSignature {
        node: node_name(),
        planner: r.principal.clone(),
        reason,
    })?;
    let signed = SubmitQueryRequest::decode(r.request.as_slice())
        .map_err(|_| Refusal::NotAQuerySubmission { node: node_name() })?;
    let offered = offer
        .spec
        .as_ref()
        .map(Message::encode_to_vec)
        .unwrap_or_default();
    if signed
        .spec
        .as_ref()
        .map(Message::encode_to_vec)
        .unwrap_or_default()
        != offered
    {
        return Err(Refusal::QueryNotSigned {
            node: node_name(),
            planner: r.principal.clone(),
        });
    }
    if r.timestamp_ms.abs_diff(now_ms) > REQUEST_MAX_AGE_MS as u64 {
        return Err(Refusal::StaleRequest {
            node: node_name(),
            planner: r.principal.clone(),
            age_s: (r.timestamp_ms - now_ms) / 1000,
            max_s: REQUEST_MAX_AGE_MS / 1000,
        });
    }
    if r.role != "planner" {
        return Err(Refusal::NotAPlanner {
            node: node_name(),
            principal: r.principal.clone(),
            role: r.role.clone(),
        });
    }
    if let Some(pinned) = policy.planner_keys.get(&r.principal)
        && pinned.as_slice() != r.public_key.as_slice()
    {
        return Err(Refusal::PlannerKeyMismatch {
            node: node_name(),
            planner: r.principal.clone(),
        });
    }
    let mut rules = Vec::new();
    for d in datasets {
        let rule = policy
            .planner_rule(d, &r.principal, &r.organisation, kind)
            .ok_or_else(|| Refusal::NoPlannerRule {
                node: node_name(),
                planner: r.principal.clone(),
                organisation: r.organisation.clone(),
                kind: kind.to_string(),
                dataset: d.clone(),
            })?;
        rules.push(format!("'{d}' by entry {}", rule + 1));
    }
    let pinned = if policy.planner_keys.contains_key(&r.principal) {
        "pinned in policy.planner_keys"
    } else {
        "as the coordinator registers it"
    };
    let check = format!(
        "planner '{}' of organisation '{}' (workspace '{}') signed this query with her key ({pinned}); [[policy.planners]] allows it on {}",
        r.principal,
        r.organisation,
        r.workspace,
        rules.join(", ")
    );
    Ok((r, check))
}

/// The dataset the query names for this node, which the offer must name too:
/// a coordinator cannot run a query on another of the node's datasets.
pub(super) fn named_dataset(node: &str, query: &Query, offer: &JobOffer) -> Result<(), Refusal> {
    let on_node = |d: &Option<DatasetRef>| d.as_ref().filter(|d| d.node == node).map(|d| d.dataset.clone());
    let named: Vec<String> = match query {
        Query::Overlap(q) => [on_node(&q.left), on_node(&q.right)]
            .into_iter()
            .flatten()
            .collect(),
        Query::Segment(q) => [on_node(&q.left), on_node(&q.right)]
            .into_iter()
            .flatten()
            .collect(),
        Query::Breakdown(q) => [on_node(&q.left), on_node(&q.right)]
            .into_iter()
            .flatten()
            .collect(),
        Query::Attribution(q) => [on_node(&q.conversions), on_node(&q.exposures)]
            .into_iter()
            .flatten()
            .collect(),
        Query::Lift(q) => [on_node(&q.customers), on_node(&q.groups)]
            .into_iter()
            .flatten()
            .collect(),
    };
    if named.len() == 1 && named[0] == offer.dataset {
        Ok(())
    } else {
        Err(Refusal::DatasetNotNamed {
            node: node.to_string(),
            dataset: offer.dataset.clone(),
        })
    }
}
