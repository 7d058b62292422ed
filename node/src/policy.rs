//! The node's own decision on a job offer. The coordinator proposes; only the
//! node's policy disposes, and a refusal says which key refused and why.

use std::collections::BTreeMap;

use jointly_protocol::{
    attribution,
    attribution_query::{
        attribution_noise, attribution_plan, attribution_terms, lift_noise, lift_plan, lift_sums_fit,
    },
    breakdown_plan::{BreakdownPlan, Side, SideSchema},
    ids::{IdKind, match_kind},
    lift::LiftPlan,
    overlap::Terms,
    request,
    terms::{job_terms, with_requester},
    wire::{self, DatasetRef, Filter, JobOffer, Requester, Role, SubmitQueryRequest, query_spec::Query},
};
use prost::Message;

use crate::{
    config::{ColumnUse, EventKind, NodeLimits, Policy},
    dataset::LoadedDataset,
    events::LoadedEvents,
    privacy::{LaneCover, NoisePlan, QueryShape, plan},
};

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
        plan: attribution::Plan,
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

fn side_of(node: &str, left: Option<&DatasetRef>, right: Option<&DatasetRef>) -> Result<Side, String> {
    match (left.map(|d| d.node.as_str()), right.map(|d| d.node.as_str())) {
        (Some(l), Some(r)) if l == node && r != node => Ok(Side::Left),
        (Some(l), Some(r)) if r == node && l != node => Ok(Side::Right),
        _ => Err(format!(
            "node '{node}' received an offer whose query does not name it on exactly one side"
        )),
    }
}

/// Checks that every column the query uses on this node's side exists in the
/// dataset and that the policy allows that use.
fn check_columns<'a>(
    node: &str,
    dataset: &LoadedDataset,
    uses: impl IntoIterator<Item = (&'a str, ColumnUse)>,
) -> Result<(), String> {
    for (name, use_) in uses {
        let Some(c) = dataset.columns.iter().find(|c| c.name == name) else {
            return Err(format!(
                "node '{node}' refuses: dataset '{}' has no column '{name}' in its configuration",
                dataset.name
            ));
        };
        if !c.allows(use_) {
            return Err(format!(
                "node '{node}' refuses: its policy does not allow column '{name}' of dataset '{}' as a {} (columns.uses)",
                dataset.name,
                use_.label()
            ));
        }
    }
    Ok(())
}

fn filter_uses(filters: &[Filter]) -> impl Iterator<Item = (&str, ColumnUse)> {
    filters.iter().map(|f| (f.column.as_str(), ColumnUse::Filter))
}

/// This side's schema: its groups and its measures' bounds.
fn own_schema(dataset: &LoadedDataset, group_by: &[String], measures: &[String]) -> SideSchema {
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
struct Planned {
    kind: &'static str,
    work: Work,
    terms: Terms,
    scales: Vec<u64>,
    sensitivity_sq: f64,
    cover_sensitivity_sq: f64,
    cover: Vec<LaneCover>,
    datasets: Vec<String>,
}

/// The cover of a count the receiver sees (overlap, segment sizing): R pads
/// U; S pads W and adds dummies for R's one batch. Either way one person
/// moves one cover-hidden count by 1 (S: R's view is the intersection plus
/// dummies and |W| less it, each moved by 1 at most and only one of them).
fn count_cover(role: Role) -> Vec<LaneCover> {
    match role {
        Role::Sender => vec![LaneCover { pads: 1, dummies: 1 }],
        _ => vec![LaneCover { pads: 1, dummies: 0 }],
    }
}

/// How long a planner's signed request may be old when the offer comes.
const REQUEST_MAX_AGE_MS: i64 = 2 * request::MAX_SKEW_MS;

/// Checks who asked: the planner's signature over the request, that the
/// request's query is the offer's, that it is recent, her pinned key if
/// this node pins one, and a `[[policy.planners]]` rule for every dataset
/// the job reads. Returns the plain-language check for the transcript.
fn check_requester(
    node: &str,
    policy: &Policy,
    offer: &JobOffer,
    kind: &str,
    datasets: &[String],
    now_ms: i64,
) -> Result<(Requester, String), String> {
    let r = offer.requester.clone().ok_or_else(|| {
        format!("node '{node}' refuses: the offer names no planner (a coordinator without access control?)")
    })?;
    request::verify_requester(&r).map_err(|e| {
        format!(
            "node '{node}' refuses: the request planner '{}' is said to have signed fails its check ({e}); the coordinator may have altered or forged it",
            r.principal
        )
    })?;
    let signed = SubmitQueryRequest::decode(r.request.as_slice())
        .map_err(|_| format!("node '{node}' refuses: the signed request is not a query submission"))?;
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
        return Err(format!(
            "node '{node}' refuses: the offered query is not the one planner '{}' signed",
            r.principal
        ));
    }
    if r.timestamp_ms.abs_diff(now_ms) > REQUEST_MAX_AGE_MS as u64 {
        return Err(format!(
            "node '{node}' refuses: planner '{}' signed this request {} s from now, beyond {} s: a replayed request, or clocks out of step",
            r.principal,
            (r.timestamp_ms - now_ms) / 1000,
            REQUEST_MAX_AGE_MS / 1000
        ));
    }
    if r.role != "planner" {
        return Err(format!(
            "node '{node}' refuses: '{}' has role '{}'; only planners submit queries",
            r.principal, r.role
        ));
    }
    if let Some(pinned) = policy.planner_keys.get(&r.principal)
        && pinned.as_slice() != r.public_key.as_slice()
    {
        return Err(format!(
            "node '{node}' refuses: planner '{}' signed with another key than the one pinned in policy.planner_keys; the coordinator may be standing in for her",
            r.principal
        ));
    }
    let mut rules = Vec::new();
    for d in datasets {
        let rule = policy
            .planner_rule(d, &r.principal, &r.organisation, kind)
            .ok_or_else(|| {
                format!(
                    "node '{node}' refuses: no [[policy.planners]] entry lets planner '{}' (organisation '{}') run a {kind} query over dataset '{d}'; add one naming the planner or her organisation",
                    r.principal, r.organisation
                )
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
fn named_dataset(node: &str, query: &Query, offer: &JobOffer) -> Result<(), String> {
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
        Err(format!(
            "node '{node}' refuses: the offer names dataset '{}', which is not the one the query names for this node",
            offer.dataset
        ))
    }
}

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
) -> Result<Accepted, String> {
    let Some(spec) = offer.spec.as_ref() else {
        return Err(format!("node '{node}' received an offer without a query"));
    };
    let Some(query) = spec.query.as_ref() else {
        return Err(format!("node '{node}' does not support this query kind"));
    };
    if !policy.partners.iter().any(|p| p == &offer.peer_node) {
        return Err(format!(
            "node '{node}' refuses: '{}' is not listed in its policy.partners",
            offer.peer_node
        ));
    }
    named_dataset(node, query, offer)?;
    let no_dataset = || format!("node '{node}' has no dataset '{}'", offer.dataset);
    let own_kind = match query {
        Query::Attribution(_) => holdings.events.get(&offer.dataset).map(|e| e.config().id_kind),
        _ => holdings.datasets.get(&offer.dataset).map(|d| d.kind),
    }
    .ok_or_else(no_dataset)?;
    let table = || holdings.datasets.get(&offer.dataset).ok_or_else(no_dataset);
    let role = match Role::try_from(offer.role) {
        Ok(r @ (Role::Receiver | Role::Sender)) => r,
        _ => return Err(format!("node '{node}' received an offer without a valid role")),
    };
    let peer_kind: IdKind = offer.peer_id_kind.parse().map_err(|_| {
        format!(
            "node '{node}' does not know the peer's identifier kind '{}'",
            offer.peer_id_kind
        )
    })?;
    let hash_kind = match_kind(own_kind, peer_kind).ok_or_else(|| {
        format!(
            "identifier kinds cannot match: '{}' holds {own_kind} and '{}' holds {peer_kind}",
            offer.dataset, offer.peer_node
        )
    })?;
    if running_sessions >= limits.max_sessions {
        return Err(format!(
            "node '{node}' is busy: {running_sessions} sessions running (limits.max_sessions = {}); run the query again later",
            limits.max_sessions
        ));
    }
    let privacy = spec
        .privacy
        .as_ref()
        .ok_or_else(|| format!("node '{node}' refuses a query without privacy terms"))?;
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
        return Err(format!(
            "node '{node}' refuses: the job needs {} noise values and cover counts, above limits.max_job_values = {}; group by fewer columns or ask for a shorter period",
            shape.values(),
            limits.max_job_values
        ));
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
            jointly_protocol::attribution_query::window_label(plan.period.window),
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

/// Who may receive a segment's members, by this node's policy.
fn segment_activation(
    node: &str,
    policy: &Policy,
    offer: &JobOffer,
    activate: &str,
    role: Role,
) -> Result<Activation, String> {
    if activate.is_empty() {
        return Ok(Activation::None);
    }
    if activate == node && role == Role::Receiver {
        return Ok(Activation::Receive {
            min_activation: policy.min_activation,
        });
    }
    if activate == offer.peer_node && role == Role::Sender {
        if !policy.allow_activation.iter().any(|p| p == activate) {
            return Err(format!(
                "node '{node}' refuses to let '{activate}' receive the members of this segment: '{activate}' is not listed in its policy.allow_activation"
            ));
        }
        return Ok(Activation::Allow {
            min_activation: policy.min_activation,
        });
    }
    Err(format!(
        "node '{node}' refuses: the segment names '{activate}' to receive its members, which is neither this job's receiver nor its peer"
    ))
}

fn breakdown_work(
    node: &str,
    dataset: &LoadedDataset,
    offer: &JobOffer,
    spec: &wire::QuerySpec,
    q: &wire::BreakdownQuery,
    role: Role,
) -> Result<Planned, String> {
    let side = side_of(node, q.left.as_ref(), q.right.as_ref())?;
    let wire_side = match side {
        Side::Left => wire::Side::Left,
        Side::Right => wire::Side::Right,
    };
    let (group_by, filters) = match side {
        Side::Left => (&q.left_group_by, &q.left_filters),
        Side::Right => (&q.right_group_by, &q.right_filters),
    };
    let mut measures = Vec::new();
    let mut peer_measures = 0;
    for m in &q.measures {
        match wire::Side::try_from(m.side) {
            Ok(s) if s == wire_side => measures.push(m.column.clone()),
            Ok(wire::Side::Left | wire::Side::Right) => peer_measures += 1,
            _ => return Err(format!("node '{node}' refuses: a measure names no side")),
        }
    }
    check_columns(
        node,
        dataset,
        group_by
            .iter()
            .map(|g| (g.as_str(), ColumnUse::Group))
            .chain(measures.iter().map(|m| (m.as_str(), ColumnUse::Measure)))
            .chain(filter_uses(filters)),
    )?;
    if offer.peer_measure_bounds.len() != peer_measures || offer.peer_groups == 0 {
        return Err(format!(
            "node '{node}' refuses: the offer does not describe the peer's groups and measures"
        ));
    }
    let own = own_schema(dataset, group_by, &measures);
    let peer = SideSchema {
        groups: offer.peer_groups as usize,
        measure_bounds: offer.peer_measure_bounds.clone(),
    };
    let (left, right) = match side {
        Side::Left => (own, peer),
        Side::Right => (peer, own),
    };
    let plan = BreakdownPlan::new(left, right).map_err(|e| format!("node '{node}' refuses: {e}"))?;
    // The peer's groups come from the coordinator: a plan beyond the
    // protocol's limits is refused before any noise is drawn for it.
    plan.check().map_err(|e| format!("node '{node}' refuses: {e}"))?;
    let expected_role = if plan.first_receiver() == side {
        Role::Receiver
    } else {
        Role::Sender
    };
    if role != expected_role {
        return Err(format!(
            "node '{node}' refuses: the offer's role does not fit the breakdown's measures"
        ));
    }
    if let Err(i) = plan.check_sums(side, dataset.report.distinct) {
        return Err(format!(
            "node '{node}' refuses: sums of column '{}' over {} customers could exceed what a release can decrypt; declare a narrower clip range for it",
            measures[i], dataset.report.distinct
        ));
    }
    let terms = plan.terms(&offer.job_id, spec);
    let scales = plan.noise_scales();
    let sensitivity_sq = plan.statistics() as f64;
    // Each lane's receiver pads its batches, its sender pads W and answers
    // each batch with dummies; per lane one person moves one hidden count.
    let cover: Vec<LaneCover> = plan
        .lanes
        .iter()
        .map(|lane| {
            let batches = lane.shape.receiver_groups;
            if lane.receiver == side {
                LaneCover {
                    pads: batches,
                    dummies: 0,
                }
            } else {
                LaneCover {
                    pads: 1,
                    dummies: batches,
                }
            }
        })
        .collect();
    let work = Work::Breakdown {
        side,
        plan,
        group_by: group_by.clone(),
        measures,
        filters: filters.clone(),
    };
    Ok(Planned {
        kind: "breakdown",
        work,
        terms,
        scales,
        sensitivity_sq,
        cover_sensitivity_sq: cover.len() as f64,
        cover,
        datasets: vec![offer.dataset.clone()],
    })
}

fn events<'a>(
    node: &str,
    holdings: Holdings<'a>,
    name: &str,
    kind: EventKind,
) -> Result<&'a LoadedEvents, String> {
    let e = holdings
        .events
        .get(name)
        .ok_or_else(|| format!("node '{node}' has no event table '{name}' in its [[events]]"))?;
    if e.config().kind != kind {
        return Err(format!(
            "node '{node}' refuses: '{name}' holds {}, not {}",
            e.config().kind.label(),
            kind.label()
        ));
    }
    Ok(e)
}

fn attribution_work(
    node: &str,
    holdings: Holdings<'_>,
    offer: &JobOffer,
    spec: &wire::QuerySpec,
    q: &wire::AttributionQuery,
    role: Role,
) -> Result<Planned, String> {
    let named = |d: Option<&DatasetRef>| d.is_some_and(|d| d.node == node && d.dataset == offer.dataset);
    let (kind, expected_role) = if named(q.conversions.as_ref()) {
        (EventKind::Conversions, Role::Receiver)
    } else if named(q.exposures.as_ref()) {
        (EventKind::Exposures, Role::Sender)
    } else {
        return Err(format!(
            "node '{node}' received an attribution offer that does not name its dataset '{}'",
            offer.dataset
        ));
    };
    if role != expected_role {
        return Err(format!(
            "node '{node}' refuses: in attribution the conversions' node receives and the exposures' node sends"
        ));
    }
    let table = events(node, holdings, &offer.dataset, kind)?;
    let (channels, campaigns) = match kind {
        EventKind::Exposures => {
            let c = table.config();
            if (c.channels.len(), c.campaigns.len())
                != (offer.peer_channels as usize, offer.peer_campaigns as usize)
            {
                return Err(format!(
                    "node '{node}' refuses: the offer misstates the channels and campaigns of '{}'",
                    offer.dataset
                ));
            }
            (c.channels.len(), c.campaigns.len())
        }
        EventKind::Conversions => (offer.peer_channels as usize, offer.peer_campaigns as usize),
    };
    let plan = attribution_plan(q, channels, campaigns).map_err(|e| format!("node '{node}' refuses: {e}"))?;
    let bank = kind == EventKind::Conversions;
    let noise = attribution_noise(&plan, bank);
    let terms = attribution_terms(&offer.job_id, spec, &plan);
    let (buckets, k) = (plan.buckets.len(), f64::from(plan.period.max_conversions));
    // The bank pads every window's value buckets: a person has at most K
    // elements, so K batch sizes move. The partner answers every bucket
    // with dummies (a person matches in at most K of them) and sends each
    // window's W at one common length, the largest window's plus its pad,
    // which one person moves by at most 1.
    let (cover, cover_sensitivity_sq) = if bank {
        (
            vec![
                LaneCover {
                    pads: buckets,
                    dummies: 0
                };
                plan.windows()
            ],
            k,
        )
    } else {
        (
            vec![
                LaneCover {
                    pads: 1,
                    dummies: buckets
                };
                plan.windows()
            ],
            k + 1.0,
        )
    };
    Ok(Planned {
        kind: "attribution",
        work: Work::Attribution { plan },
        terms,
        scales: noise.scales,
        sensitivity_sq: noise.sensitivity_sq,
        cover_sensitivity_sq,
        cover,
        datasets: vec![offer.dataset.clone()],
    })
}

fn lift_work(
    node: &str,
    holdings: Holdings<'_>,
    offer: &JobOffer,
    spec: &wire::QuerySpec,
    q: &wire::LiftQuery,
    role: Role,
) -> Result<Planned, String> {
    let named = |d: Option<&DatasetRef>| d.is_some_and(|d| d.node == node && d.dataset == offer.dataset);
    let plan = lift_plan(q).map_err(|e| format!("node '{node}' refuses: {e}"))?;
    let dataset = holdings
        .datasets
        .get(&offer.dataset)
        .ok_or_else(|| format!("node '{node}' has no dataset '{}'", offer.dataset))?;
    let (side, expected_role) = if named(q.customers.as_ref()) {
        events(node, holdings, &q.conversions, EventKind::Conversions)?;
        if !lift_sums_fit(&plan, dataset.report.distinct) {
            return Err(format!(
                "node '{node}' refuses: value sums of {} customers clipped at {} CNY could exceed what a release can decrypt; ask for a lower value clip",
                dataset.report.distinct, plan.value_clip
            ));
        }
        (
            LiftSide::Bank {
                conversions: q.conversions.clone(),
            },
            Role::Sender,
        )
    } else if named(q.groups.as_ref()) {
        check_columns(node, dataset, [(q.group_column.as_str(), ColumnUse::Group)])?;
        let domain = dataset
            .columns
            .iter()
            .find(|c| c.name == q.group_column)
            .map(|c| c.domain())
            .unwrap_or_default();
        let declared = |v: &str| {
            domain
                .iter()
                .position(|d| d == v)
                .filter(|&i| i + 1 < domain.len())
        };
        if declared(&q.test_value).is_none()
            || declared(&q.control_value).is_none()
            || q.test_value == q.control_value
        {
            return Err(format!(
                "node '{node}' refuses: the test and control values must be two different declared values of column '{}'",
                q.group_column
            ));
        }
        (
            LiftSide::Partner {
                column: q.group_column.clone(),
                test: q.test_value.clone(),
                control: q.control_value.clone(),
            },
            Role::Receiver,
        )
    } else {
        return Err(format!(
            "node '{node}' received a lift offer that does not name its dataset '{}'",
            offer.dataset
        ));
    };
    if role != expected_role {
        return Err(format!(
            "node '{node}' refuses: in a lift the groups' node receives and the customers' node sends"
        ));
    }
    let noise = lift_noise(&plan);
    // The partner pads its two arms; the bank pads its customers and answers
    // each arm with dummies. The bank reads its customers and conversions,
    // and both budgets pay.
    let (cover, datasets) = match &side {
        LiftSide::Bank { conversions } => (
            vec![LaneCover { pads: 1, dummies: 2 }],
            vec![offer.dataset.clone(), conversions.clone()],
        ),
        LiftSide::Partner { .. } => (
            vec![LaneCover { pads: 2, dummies: 0 }],
            vec![offer.dataset.clone()],
        ),
    };
    Ok(Planned {
        kind: "lift",
        work: Work::Lift { plan, side },
        terms: job_terms(&offer.job_id, spec),
        scales: noise.scales,
        sensitivity_sq: noise.sensitivity_sq,
        cover_sensitivity_sq: 1.0,
        cover,
        datasets,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ed25519_dalek::SigningKey;
    use jointly_protocol::{
        idlist::IdList,
        request::{RequestHeader, SUBMIT_QUERY},
        wire::{DatasetRef, OverlapQuery, Privacy, QuerySpec},
    };

    use super::*;
    use crate::{
        attributes::Attributes,
        config::{BudgetConfig, PlannerRule},
        dataset::LoadReport,
        period::Period,
    };

    fn alice() -> SigningKey {
        SigningKey::from_bytes(&[5; 32])
    }

    /// The requester a coordinator puts in an offer for alice of the bank,
    /// signed by `key` over the offer's own query `age_ms` ago.
    fn requester(offer: &JobOffer, key: &SigningKey, age_ms: i64) -> Requester {
        let request = SubmitQueryRequest {
            spec: offer.spec.clone(),
            workspace: "campaigns".into(),
        }
        .encode_to_vec();
        let nonce = [9u8; 16];
        let timestamp_ms = now_ms() - age_ms;
        let header = RequestHeader {
            coordinator_id: "coord",
            method: SUBMIT_QUERY,
            principal: "alice",
            timestamp_ms,
            nonce: &nonce,
        };
        Requester {
            principal: "alice".into(),
            organisation: "bank".into(),
            role: "planner".into(),
            workspace: "campaigns".into(),
            public_key: key.verifying_key().to_bytes().to_vec(),
            signature: request::sign(key, &header, &request).to_vec(),
            request,
            timestamp_ms,
            nonce: nonce.to_vec(),
            coordinator_id: "coord".into(),
        }
    }

    fn signed(mut offer: JobOffer) -> JobOffer {
        offer.requester = Some(requester(&offer, &alice(), 0));
        offer
    }

    fn bank_planners() -> Vec<PlannerRule> {
        vec![PlannerRule {
            datasets: vec!["*".into()],
            planners: vec![],
            organisations: vec!["bank".into()],
            kinds: vec![],
        }]
    }

    fn limits() -> NodeLimits {
        NodeLimits::default()
    }

    fn at(node: &str, dataset: &str) -> Option<DatasetRef> {
        Some(DatasetRef {
            node: node.into(),
            dataset: dataset.into(),
        })
    }

    fn dataset(kind: IdKind) -> LoadedDataset {
        LoadedDataset {
            name: "customers".into(),
            kind,
            ids: Arc::new(IdList::from_normalized(kind, vec![])),
            columns: vec![],
            attributes: Attributes::without_columns("customers", 0),
            report: LoadReport::default(),
        }
    }

    fn offer_with(peer: &str, kind: &str, privacy: Privacy) -> JobOffer {
        JobOffer {
            job_id: "j".into(),
            spec: Some(QuerySpec {
                query: Some(Query::Overlap(OverlapQuery {
                    left: at("bank", "customers"),
                    right: at("partner", "users"),
                })),
                privacy: Some(privacy),
            }),
            role: Role::Receiver.into(),
            dataset: "customers".into(),
            peer_node: peer.into(),
            peer_id_kind: kind.into(),
            peer_groups: 0,
            peer_measure_bounds: vec![],
            peer_channels: 0,
            peer_campaigns: 0,
            requester: None,
        }
    }

    fn offer(peer: &str, kind: &str, exact: bool) -> JobOffer {
        offer_with(peer, kind, Privacy { epsilon: 1.0, exact })
    }

    #[test]
    fn decisions() {
        let policy = Policy {
            partners: vec!["partner".into()],
            allow_exact: true,
            budgets: vec![BudgetConfig {
                dataset: "customers".into(),
                partner: "*".into(),
                epsilon: 4.0,
                period: Period::Month,
            }],
            planners: bank_planners(),
            ..Policy::default()
        };
        let datasets = BTreeMap::from([("customers".to_string(), dataset(IdKind::Phone))]);
        let (no_datasets, events) = (BTreeMap::new(), BTreeMap::new());
        let d = Holdings {
            datasets: &datasets,
            events: &events,
        };
        let none = Holdings {
            datasets: &no_datasets,
            events: &events,
        };
        let ok = decide(
            "bank",
            &policy,
            &limits(),
            &signed(offer("partner", "sha256_phone", true)),
            d,
            0,
        )
        .expect("accept");
        assert_eq!(ok.hash_kind, IdKind::Sha256Phone);
        let e = decide(
            "bank",
            &policy,
            &limits(),
            &signed(offer("stranger", "phone", true)),
            d,
            0,
        )
        .expect_err("partner");
        assert!(e.contains("policy.partners"), "{e}");
        let e = decide(
            "bank",
            &policy,
            &limits(),
            &signed(offer("partner", "email", true)),
            d,
            0,
        )
        .expect_err("kinds");
        assert!(e.contains("cannot match"), "{e}");
        let e = decide(
            "bank",
            &policy,
            &limits(),
            &signed(offer("partner", "phone", true)),
            none,
            0,
        )
        .expect_err("dataset");
        assert!(e.contains("no dataset"), "{e}");
        let e = decide(
            "bank",
            &policy,
            &limits(),
            &signed(offer("partner", "phone", true)),
            d,
            4,
        )
        .expect_err("busy");
        assert!(e.contains("busy"), "{e}");
        let noised = decide(
            "bank",
            &policy,
            &limits(),
            &signed(offer("partner", "phone", false)),
            d,
            0,
        )
        .expect("noised");
        assert!(!noised.noise.exact && noised.noise.sigma() > 0.5);
        assert_eq!(noised.noise.charges[0].partner, "partner");
        assert_eq!(noised.noise.charges[0].budget_partner, "*");
        // The planner cannot buy precision past the policy.
        for epsilon in [1.5, 0.0, -1.0, f64::NAN, f64::INFINITY] {
            let o = offer_with(
                "partner",
                "phone",
                Privacy {
                    epsilon,
                    exact: false,
                },
            );
            let e = decide("bank", &policy, &limits(), &signed(o), d, 0).expect_err("epsilon");
            assert!(e.contains("epsilon"), "{e}");
        }
        let strict = Policy {
            allow_exact: false,
            ..policy.clone()
        };
        let e = decide(
            "bank",
            &strict,
            &limits(),
            &signed(offer("partner", "phone", true)),
            d,
            0,
        )
        .expect_err("exact");
        assert!(e.contains("allow_exact"), "{e}");
        let no_budget = Policy {
            budgets: vec![],
            ..policy
        };
        let e = decide(
            "bank",
            &no_budget,
            &limits(),
            &signed(offer("partner", "phone", false)),
            d,
            0,
        )
        .expect_err("budget");
        assert!(e.contains("[[policy.budgets]]"), "{e}");
    }

    fn event_table(kind: EventKind) -> LoadedEvents {
        use crate::{
            config::EventsConfig,
            events::{Conversions, EventReport, Exposures},
        };
        let exposures = kind == EventKind::Exposures;
        let config = EventsConfig {
            name: kind.label().into(),
            kind,
            path: "events.csv".into(),
            format: None,
            id_column: "phone".into(),
            id_kind: IdKind::Phone,
            ts_column: "ts".into(),
            channel_column: exposures.then(|| "channel".into()),
            campaign_column: exposures.then(|| "campaign".into()),
            channels: if exposures {
                vec!["sms".into(), "app".into()]
            } else {
                vec![]
            },
            campaigns: if exposures { vec!["C1".into()] } else { vec![] },
            value_column: (!exposures).then(|| "value".into()),
        };
        let ids = Arc::new(IdList::from_normalized(IdKind::Phone, vec![]));
        let report = EventReport::default();
        if exposures {
            LoadedEvents::Exposures {
                config,
                data: Exposures {
                    ids,
                    touches: vec![],
                    report,
                },
            }
        } else {
            LoadedEvents::Conversions {
                config,
                data: Conversions {
                    ids,
                    rows: vec![],
                    report,
                },
            }
        }
    }

    fn attribution_offer(role: Role, dataset: &str, channels: u32) -> JobOffer {
        use jointly_protocol::wire::{
            AttributionModel, AttributionQuery, ConversionPeriod, ConversionWindow,
        };
        let r = |node: &str, dataset: &str| {
            Some(DatasetRef {
                node: node.into(),
                dataset: dataset.into(),
            })
        };
        JobOffer {
            spec: Some(QuerySpec {
                query: Some(Query::Attribution(AttributionQuery {
                    conversions: r("bank", "conversions"),
                    exposures: r("partner", "exposures"),
                    model: AttributionModel::Linear.into(),
                    lookback_days: 7,
                    period: Some(ConversionPeriod {
                        start: 0,
                        end: 3 * 86_400,
                        window: ConversionWindow::Day.into(),
                        max_conversions: 3,
                    }),
                    ..Default::default()
                })),
                privacy: Some(Privacy {
                    epsilon: 1.0,
                    exact: false,
                }),
            }),
            role: role.into(),
            dataset: dataset.into(),
            peer_channels: channels,
            peer_campaigns: 1,
            ..offer("partner", "phone", false)
        }
    }

    #[test]
    fn attribution_decisions() {
        let policy = |peer: &str, dataset: &str| Policy {
            partners: vec![peer.into()],
            budgets: vec![BudgetConfig {
                dataset: dataset.into(),
                partner: "*".into(),
                epsilon: 4.0,
                period: Period::Month,
            }],
            planners: bank_planners(),
            ..Policy::default()
        };
        let datasets = BTreeMap::new();
        let events = BTreeMap::from([
            ("exposures".to_string(), event_table(EventKind::Exposures)),
            ("conversions".to_string(), event_table(EventKind::Conversions)),
        ]);
        let h = Holdings {
            datasets: &datasets,
            events: &events,
        };
        let partner_policy = policy("bank", "exposures");
        let mut offer = attribution_offer(Role::Sender, "exposures", 2);
        offer.peer_node = "bank".into();
        // Both nodes get the one request the planner signed.
        let offer = signed(offer);
        let ok = decide("partner", &partner_policy, &limits(), &offer, h, 0).expect("partner accepts");
        let Work::Attribution { plan } = &ok.work else {
            panic!("not attribution work")
        };
        assert_eq!((plan.slots(), plan.windows()), (2, 3));
        // Every lane value (3 windows x 6 buckets x 2 slots), no count.
        assert_eq!(ok.noise.shares().len(), 3 * 6 * 2);
        let misstated = JobOffer {
            peer_channels: 3,
            ..offer.clone()
        };
        let e = decide("partner", &partner_policy, &limits(), &misstated, h, 0).expect_err("misstated");
        assert!(e.contains("misstates the channels"), "{e}");
        let wrong_role = JobOffer {
            role: Role::Receiver.into(),
            ..offer.clone()
        };
        let e = decide("partner", &partner_policy, &limits(), &wrong_role, h, 0).expect_err("role");
        assert!(e.contains("exposures' node sends"), "{e}");

        let bank_policy = policy("partner", "conversions");
        let bank_offer = JobOffer {
            requester: offer.requester.clone(),
            ..attribution_offer(Role::Receiver, "conversions", 2)
        };
        let ok = decide("bank", &bank_policy, &limits(), &bank_offer, h, 0).expect("bank accepts");
        // The bank also noises its conversion count.
        assert_eq!(ok.noise.shares().len(), 3 * 6 * 2 + 1);
        assert_eq!(ok.terms, {
            let p = decide("partner", &partner_policy, &limits(), &offer, h, 0).expect("partner");
            p.terms
        });
        // A table of the wrong kind under the offered name.
        let e = decide(
            "bank",
            &bank_policy,
            &limits(),
            &signed(attribution_offer(Role::Receiver, "exposures", 2)),
            h,
            0,
        )
        .expect_err("not named");
        assert!(e.contains("not the one the query names"), "{e}");
    }

    fn holdings_with_customers() -> (BTreeMap<String, LoadedDataset>, BTreeMap<String, LoadedEvents>) {
        (
            BTreeMap::from([("customers".to_string(), dataset(IdKind::Phone))]),
            BTreeMap::new(),
        )
    }

    fn plain_policy() -> Policy {
        Policy {
            partners: vec!["partner".into()],
            budgets: vec![BudgetConfig {
                dataset: "customers".into(),
                partner: "partner".into(),
                epsilon: 4.0,
                period: Period::Month,
            }],
            planners: bank_planners(),
            ..Policy::default()
        }
    }

    #[test]
    fn who_asked_is_checked_before_anything_is_drawn() {
        let (datasets, events) = holdings_with_customers();
        let h = Holdings {
            datasets: &datasets,
            events: &events,
        };
        let policy = plain_policy();
        let decide_on = |policy: &Policy, o: &JobOffer| decide("bank", policy, &limits(), o, h, 0);
        let base = offer("partner", "phone", false);
        let ok = decide_on(&policy, &signed(base.clone())).expect("alice of the bank");
        assert_eq!(ok.requester.principal, "alice");
        assert!(
            ok.checks[0].contains("planner 'alice'") && ok.checks[0].contains("entry 1"),
            "{:?}",
            ok.checks
        );
        // The terms bind the requester: another request, other terms.
        let mut other = signed(base.clone());
        if let Some(r) = other.requester.as_mut() {
            r.nonce = vec![1; 16];
            let header = RequestHeader {
                nonce: &r.nonce,
                ..request::requester_header(r)
            };
            r.signature = request::sign(&alice(), &header, &r.request).to_vec();
        }
        assert_ne!(
            decide_on(&policy, &other).expect("another request").terms,
            ok.terms
        );

        let e = decide_on(&policy, &base).expect_err("no requester");
        assert!(e.contains("names no planner"), "{e}");
        // The coordinator changes the query after alice signed it.
        let mut altered = signed(base.clone());
        if let Some(Query::Overlap(q)) = altered.spec.as_mut().and_then(|s| s.query.as_mut()) {
            q.right = at("partner", "other");
        }
        let e = decide_on(&policy, &altered).expect_err("altered");
        assert!(e.contains("not the one planner 'alice' signed"), "{e}");
        // Or forges her signature with a key of its own.
        let mut forged = signed(base.clone());
        if let Some(r) = forged.requester.as_mut() {
            r.signature[0] ^= 1;
        }
        let e = decide_on(&policy, &forged).expect_err("forged");
        assert!(e.contains("fails its check"), "{e}");
        let mut stale = base.clone();
        stale.requester = Some(requester(&stale, &alice(), 3_600_000));
        let e = decide_on(&policy, &stale).expect_err("stale");
        assert!(e.contains("replayed request"), "{e}");
        // A pinned key that differs: the coordinator stands in for alice.
        let pinned = Policy {
            planner_keys: [("alice".to_string(), [7u8; 32])].into(),
            ..plain_policy()
        };
        let e = decide_on(&pinned, &signed(base.clone())).expect_err("pinned");
        assert!(e.contains("policy.planner_keys"), "{e}");
        // No rule names her organisation.
        let nobody = Policy {
            planners: vec![PlannerRule {
                datasets: vec!["customers".into()],
                planners: vec!["bob".into()],
                organisations: vec![],
                kinds: vec![],
            }],
            ..plain_policy()
        };
        let e = decide_on(&nobody, &signed(base.clone())).expect_err("not allowed");
        assert!(
            e.contains("[[policy.planners]]") && e.contains("'alice'") && e.contains("'customers'"),
            "{e}"
        );
        let wrong_kind = Policy {
            planners: vec![PlannerRule {
                kinds: vec!["breakdown".into()],
                ..bank_planners()[0].clone()
            }],
            ..plain_policy()
        };
        let e = decide_on(&wrong_kind, &signed(base)).expect_err("kind");
        assert!(e.contains("overlap query"), "{e}");
    }

    #[test]
    fn the_offer_must_name_the_dataset_the_query_names() {
        let mut datasets = BTreeMap::from([("customers".to_string(), dataset(IdKind::Phone))]);
        let mut vip = dataset(IdKind::Phone);
        vip.name = "vip".into();
        datasets.insert("vip".into(), vip);
        let events = BTreeMap::new();
        let h = Holdings {
            datasets: &datasets,
            events: &events,
        };
        let mut o = offer("partner", "phone", false);
        o.dataset = "vip".into();
        let e = decide("bank", &plain_policy(), &limits(), &signed(o), h, 0).expect_err("other dataset");
        assert!(
            e.contains("dataset 'vip'") && e.contains("not the one the query names"),
            "{e}"
        );
    }

    #[test]
    fn an_offer_cannot_make_the_node_draw_without_bound() {
        use jointly_protocol::wire::BreakdownQuery;
        let (datasets, events) = holdings_with_customers();
        let h = Holdings {
            datasets: &datasets,
            events: &events,
        };
        let breakdown = |peer_groups: u32| JobOffer {
            spec: Some(QuerySpec {
                query: Some(Query::Breakdown(BreakdownQuery {
                    left: at("bank", "customers"),
                    right: at("partner", "users"),
                    ..Default::default()
                })),
                privacy: Some(Privacy {
                    epsilon: 1.0,
                    exact: false,
                }),
            }),
            peer_groups,
            ..offer("partner", "phone", false)
        };
        let e = decide(
            "bank",
            &plain_policy(),
            &limits(),
            &signed(breakdown(u32::MAX)),
            h,
            0,
        )
        .expect_err("four billion groups");
        assert!(e.contains("at most 4096"), "{e}");
        // (Drawing noise for it first would allocate billions of shares.)
        let tight = NodeLimits {
            max_job_values: 5,
            ..NodeLimits::default()
        };
        let e = decide("bank", &plain_policy(), &tight, &signed(breakdown(10)), h, 0).expect_err("bounded");
        assert!(e.contains("limits.max_job_values = 5"), "{e}");
        assert!(decide("bank", &plain_policy(), &limits(), &signed(breakdown(10)), h, 0).is_ok());
    }
}
