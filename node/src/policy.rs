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
    terms::job_terms,
    wire::{self, DatasetRef, Filter, JobOffer, Role, query_spec::Query},
};

use crate::{
    config::{ColumnUse, EventKind, Policy},
    dataset::LoadedDataset,
    events::LoadedEvents,
    privacy::{NoisePlan, QueryShape, plan},
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
        groups: group_by
            .iter()
            .map(|g| column(g).map_or(1, |c| c.domain().len()))
            .product(),
        measure_bounds: measures
            .iter()
            .map(|m| column(m).map_or(0, |c| c.bound()))
            .collect(),
    }
}

/// Checks an offer against the policy and the loaded datasets.
pub fn decide(
    node: &str,
    policy: &Policy,
    offer: &JobOffer,
    holdings: Holdings<'_>,
    running_sessions: usize,
    max_sessions: usize,
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
    if running_sessions >= max_sessions {
        return Err(format!(
            "node '{node}' is busy: {running_sessions} sessions running (limits.max_sessions = {max_sessions}); run the query again later"
        ));
    }
    let privacy = spec
        .privacy
        .as_ref()
        .ok_or_else(|| format!("node '{node}' refuses a query without privacy terms"))?;
    let (kind, work, terms, scales, sensitivity_sq) = match query {
        Query::Overlap(_) => (
            "overlap",
            Work::Overlap,
            job_terms(&offer.job_id, spec),
            vec![1],
            1.0,
        ),
        Query::Segment(q) => {
            let dataset = table()?;
            let side = side_of(node, q.left.as_ref(), q.right.as_ref())?;
            let filters = match side {
                Side::Left => &q.left_filters,
                Side::Right => &q.right_filters,
            };
            check_columns(node, dataset, filter_uses(filters))?;
            let activation = segment_activation(node, policy, offer, &q.activate, role)?;
            let work = Work::Segment {
                filters: filters.clone(),
                activation,
            };
            ("segment", work, job_terms(&offer.job_id, spec), vec![1], 1.0)
        }
        Query::Breakdown(q) => breakdown_work(node, table()?, offer, spec, q, role)?,
        Query::Attribution(q) => attribution_work(node, holdings, offer, spec, q, role)?,
        Query::Lift(q) => lift_work(node, holdings, offer, spec, q, role)?,
    };
    let noise = plan(
        node,
        policy,
        privacy,
        QueryShape {
            job_id: &offer.job_id,
            dataset: &offer.dataset,
            partner: &offer.peer_node,
            kind,
            sensitivity_sq,
            noise_scales: &scales,
        },
    )?;
    let checks = checks_made(policy, offer, &offer.dataset, hash_kind, &noise, &work);
    Ok(Accepted {
        role,
        dataset: offer.dataset.clone(),
        hash_kind,
        noise,
        terms,
        work,
        checks,
    })
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
        checks.push("an exact result is allowed by policy.allow_exact".into());
    } else {
        checks.push(format!(
            "epsilon {} is within policy.max_epsilon = {}; this node's noise share has sigma {:.3}",
            noise.epsilon,
            policy.max_epsilon,
            noise.sigma()
        ));
    }
    checks.push(format!(
        "budget for dataset '{dataset}' with '{peer}' in period {}: this job charged epsilon {} (reserved, committed at release)",
        noise.charge.period, noise.charge.epsilon
    ));
    checks.push(format!(
        "released values below policy.min_aggregation = {} are withheld",
        noise.min_aggregation
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

type Planned = (&'static str, Work, Terms, Vec<u64>, f64);

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
    let work = Work::Breakdown {
        side,
        plan,
        group_by: group_by.clone(),
        measures,
        filters: filters.clone(),
    };
    Ok(("breakdown", work, terms, scales, sensitivity_sq))
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
    let noise = attribution_noise(&plan, kind == EventKind::Conversions);
    let terms = attribution_terms(&offer.job_id, spec, &plan);
    Ok((
        "attribution",
        Work::Attribution { plan },
        terms,
        noise.scales,
        noise.sensitivity_sq,
    ))
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
    Ok((
        "lift",
        Work::Lift { plan, side },
        job_terms(&offer.job_id, spec),
        noise.scales,
        noise.sensitivity_sq,
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use jointly_protocol::{
        idlist::IdList,
        wire::{DatasetRef, OverlapQuery, Privacy, QuerySpec},
    };

    use super::*;
    use crate::{attributes::Attributes, config::BudgetConfig, dataset::LoadReport, period::Period};

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
                    left: Some(DatasetRef::default()),
                    right: Some(DatasetRef::default()),
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
        let ok = decide("bank", &policy, &offer("partner", "sha256_phone", true), d, 0, 4).expect("accept");
        assert_eq!(ok.hash_kind, IdKind::Sha256Phone);
        let e = decide("bank", &policy, &offer("stranger", "phone", true), d, 0, 4).expect_err("partner");
        assert!(e.contains("policy.partners"), "{e}");
        let e = decide("bank", &policy, &offer("partner", "email", true), d, 0, 4).expect_err("kinds");
        assert!(e.contains("cannot match"), "{e}");
        let e = decide("bank", &policy, &offer("partner", "phone", true), none, 0, 4).expect_err("dataset");
        assert!(e.contains("no dataset"), "{e}");
        let e = decide("bank", &policy, &offer("partner", "phone", true), d, 4, 4).expect_err("busy");
        assert!(e.contains("busy"), "{e}");
        let noised = decide("bank", &policy, &offer("partner", "phone", false), d, 0, 4).expect("noised");
        assert!(!noised.noise.exact && noised.noise.sigma() > 0.5);
        assert_eq!(noised.noise.charge.partner, "partner");
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
            let e = decide("bank", &policy, &o, d, 0, 4).expect_err("epsilon");
            assert!(e.contains("epsilon"), "{e}");
        }
        let strict = Policy {
            allow_exact: false,
            ..policy.clone()
        };
        let e = decide("bank", &strict, &offer("partner", "phone", true), d, 0, 4).expect_err("exact");
        assert!(e.contains("allow_exact"), "{e}");
        let no_budget = Policy {
            budgets: vec![],
            ..policy
        };
        let e = decide("bank", &no_budget, &offer("partner", "phone", false), d, 0, 4).expect_err("budget");
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
        let ok = decide("partner", &partner_policy, &offer, h, 0, 4).expect("partner accepts");
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
        let e = decide("partner", &partner_policy, &misstated, h, 0, 4).expect_err("misstated");
        assert!(e.contains("misstates the channels"), "{e}");
        let wrong_role = JobOffer {
            role: Role::Receiver.into(),
            ..offer.clone()
        };
        let e = decide("partner", &partner_policy, &wrong_role, h, 0, 4).expect_err("role");
        assert!(e.contains("exposures' node sends"), "{e}");

        let bank_policy = policy("partner", "conversions");
        let bank_offer = attribution_offer(Role::Receiver, "conversions", 2);
        let ok = decide("bank", &bank_policy, &bank_offer, h, 0, 4).expect("bank accepts");
        // The bank also noises its conversion count.
        assert_eq!(ok.noise.shares().len(), 3 * 6 * 2 + 1);
        assert_eq!(ok.terms, {
            let p = decide("partner", &partner_policy, &offer, h, 0, 4).expect("partner");
            p.terms
        });
        // A table of the wrong kind under the offered name.
        let e = decide(
            "bank",
            &bank_policy,
            &attribution_offer(Role::Receiver, "exposures", 2),
            h,
            0,
            4,
        )
        .expect_err("not named");
        assert!(e.contains("does not name its dataset"), "{e}");
    }
}
