//! Attribution and lift: the exposure or conversion events this node
//! sends, and the lanes it runs.

use jointly_protocol::queries::attribution_query::{
    attribution_noise, attribution_plan, attribution_sums_fit, attribution_terms, lift_noise, lift_plan,
    lift_sums_fit,
};
use jointly_protocol::queries::terms::job_terms;
use jointly_protocol::wire;
use jointly_protocol::wire::{DatasetRef, JobOffer, Role};

use crate::config::{ColumnUse, EventKind};
use crate::events::LoadedEvents;
use crate::privacy::LaneCover;
use crate::refusal::Refusal;

use super::common::{Planned, check_columns};
use super::{Holdings, LiftSide, Work};

pub(super) fn events<'a>(
    node: &str,
    holdings: Holdings<'a>,
    name: &str,
    kind: EventKind,
) -> Result<&'a LoadedEvents, Refusal> {
    let e = holdings.events.get(name).ok_or_else(|| Refusal::NoEventTable {
        node: node.to_string(),
        name: name.to_string(),
    })?;
    if e.config().kind != kind {
        return Err(Refusal::WrongEventKind {
            node: node.to_string(),
            name: name.to_string(),
            holds: e.config().kind,
            wanted: kind,
        });
    }
    Ok(e)
}

pub(super) fn attribution_work(
    node: &str,
    holdings: Holdings<'_>,
    offer: &JobOffer,
    spec: &wire::QuerySpec,
    q: &wire::AttributionQuery,
    role: Role,
) -> Result<Planned, Refusal> {
    let node_name = || node.to_string();
    let named = |d: Option<&DatasetRef>| d.is_some_and(|d| d.node == node && d.dataset == offer.dataset);
    let (kind, expected_role) = if named(q.conversions.as_ref()) {
        (EventKind::Conversions, Role::Receiver)
    } else if named(q.exposures.as_ref()) {
        (EventKind::Exposures, Role::Sender)
    } else {
        return Err(Refusal::AttributionDatasetNotNamed {
            node: node_name(),
            dataset: offer.dataset.clone(),
        });
    };
    if role != expected_role {
        return Err(Refusal::AttributionRole { node: node_name() });
    }
    let table = events(node, holdings, &offer.dataset, kind)?;
    let (channels, campaigns) = match kind {
        EventKind::Exposures => {
            let c = table.config();
            if (c.channels.len(), c.campaigns.len())
                != (offer.peer_channels as usize, offer.peer_campaigns as usize)
            {
                return Err(Refusal::ChannelsMisstated {
                    node: node_name(),
                    dataset: offer.dataset.clone(),
                });
            }
            (c.channels.len(), c.campaigns.len())
        }
        EventKind::Conversions => (offer.peer_channels as usize, offer.peer_campaigns as usize),
    };
    let plan = attribution_plan(q, channels, campaigns).map_err(|reason| Refusal::Query {
        node: node_name(),
        reason,
    })?;
    let bank = kind == EventKind::Conversions;
    let persons = table.ids().len() as u64;
    if bank && !attribution_sums_fit(&plan, persons) {
        return Err(Refusal::AttributionSumsTooLarge {
            node: node_name(),
            persons,
            max_conversions: plan.period.max_conversions,
        });
    }
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

pub(super) fn lift_work(
    node: &str,
    holdings: Holdings<'_>,
    offer: &JobOffer,
    spec: &wire::QuerySpec,
    q: &wire::LiftQuery,
    role: Role,
) -> Result<Planned, Refusal> {
    let node_name = || node.to_string();
    let named = |d: Option<&DatasetRef>| d.is_some_and(|d| d.node == node && d.dataset == offer.dataset);
    let plan = lift_plan(q).map_err(|reason| Refusal::Query {
        node: node_name(),
        reason,
    })?;
    let dataset = holdings
        .datasets
        .get(&offer.dataset)
        .ok_or_else(|| Refusal::NoDataset {
            node: node_name(),
            dataset: offer.dataset.clone(),
        })?;
    let (side, expected_role) = if named(q.customers.as_ref()) {
        events(node, holdings, &q.conversions, EventKind::Conversions)?;
        if !lift_sums_fit(&plan, dataset.report.distinct) {
            return Err(Refusal::LiftSumsTooLarge {
                node: node_name(),
                customers: dataset.report.distinct,
                clip: plan.value_clip,
            });
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
            return Err(Refusal::LiftValues {
                node: node_name(),
                column: q.group_column.clone(),
            });
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
        return Err(Refusal::LiftDatasetNotNamed {
            node: node_name(),
            dataset: offer.dataset.clone(),
        });
    };
    if role != expected_role {
        return Err(Refusal::LiftRole { node: node_name() });
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
