//! Breakdowns and segments: the lanes this node runs and what it may
//! activate.

use jointly_protocol::queries::breakdown_plan::{BreakdownPlan, Side, SideSchema};
use jointly_protocol::wire;
use jointly_protocol::wire::{JobOffer, Role};

use crate::config::{ColumnUse, Policy};
use crate::dataset::LoadedDataset;
use crate::privacy::LaneCover;
use crate::refusal::Refusal;

use super::common::{Planned, check_columns, filter_uses, own_schema, side_of};
use super::{Activation, Work};

/// Who may receive a segment's members, by this node's policy.
pub(super) fn segment_activation(
    node: &str,
    policy: &Policy,
    offer: &JobOffer,
    activate: &str,
    role: Role,
) -> Result<Activation, Refusal> {
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
            return Err(Refusal::ActivationNotAllowed {
                node: node.to_string(),
                partner: activate.to_string(),
            });
        }
        return Ok(Activation::Allow {
            min_activation: policy.min_activation,
        });
    }
    Err(Refusal::ActivationNotInJob {
        node: node.to_string(),
        named: activate.to_string(),
    })
}

pub(super) fn breakdown_work(
    node: &str,
    dataset: &LoadedDataset,
    offer: &JobOffer,
    spec: &wire::QuerySpec,
    q: &wire::BreakdownQuery,
    role: Role,
) -> Result<Planned, Refusal> {
    let node_name = || node.to_string();
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
            _ => return Err(Refusal::MeasureWithoutSide { node: node_name() }),
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
        return Err(Refusal::PeerShapeMissing { node: node_name() });
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
    let bad_plan = |e: jointly_protocol::ProtocolError| Refusal::Plan {
        node: node_name(),
        reason: e.to_string(),
    };
    let plan = BreakdownPlan::new(left, right).map_err(bad_plan)?;
    // The peer's groups come from the coordinator: a plan beyond the
    // protocol's limits is refused before any noise is drawn for it.
    plan.check().map_err(bad_plan)?;
    let expected_role = if plan.first_receiver() == side {
        Role::Receiver
    } else {
        Role::Sender
    };
    if role != expected_role {
        return Err(Refusal::BreakdownRole { node: node_name() });
    }
    if let Err(i) = plan.check_sums(side, dataset.report.distinct) {
        return Err(Refusal::SumsTooLarge {
            node: node_name(),
            column: measures[i].clone(),
            customers: dataset.report.distinct,
        });
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
