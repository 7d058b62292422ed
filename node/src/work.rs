//! Turns an accepted job into the protocol party this node runs: selects
//! the rows the query's filters keep, groups them, attaches measures, and
//! puts the identifiers in the kind both sides hash under. Blocking (polars
//! filters, conversions over all rows): run it off the async workers.

use std::sync::Arc;

use jointly_protocol::{
    activation::{ActivationReceiver, ActivationSender},
    breakdown::{Breakdown, BreakdownReceiver, BreakdownSender, Lane, LaneRows},
    idlist::IdList,
    ids::{IdKind, convert},
    overlap::{Limits, OverlapReceiver, OverlapSender},
    party::Party,
    wire::Role,
};

use crate::{
    dataset::LoadedDataset,
    policy::{Accepted, Activation, Work},
};

/// The identifiers a session masks, and for each of its positions the
/// position of the same person in the dataset (to find a member again).
pub struct Selection {
    pub ids: Arc<IdList>,
    pub origin: Vec<u32>,
}

impl std::fmt::Debug for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selection")
            .field("rows", &self.origin.len())
            .finish()
    }
}

/// The dataset's persons at `positions` (ascending), as identifiers of
/// `kind`. Converting (say phones to SHA-256 of phones) reorders the list,
/// so `origin` keeps track of who is where.
pub fn select(
    dataset: &LoadedDataset,
    positions: Option<Vec<u32>>,
    kind: IdKind,
) -> Result<Selection, String> {
    let all = &dataset.ids;
    if all.kind() == kind {
        return Ok(match positions {
            None => Selection {
                ids: Arc::clone(all),
                origin: (0..all.len() as u32).collect(),
            },
            Some(p) => Selection {
                ids: Arc::new(all.subset(&p)),
                origin: p,
            },
        });
    }
    let positions = positions.unwrap_or_else(|| (0..all.len() as u32).collect());
    let mut converted = positions
        .iter()
        .map(|&p| {
            let value = std::str::from_utf8(all.get(p as usize)).ok()?;
            convert(all.kind(), kind, value).map(|c| (c, p))
        })
        .collect::<Option<Vec<(String, u32)>>>()
        .ok_or("identifiers cannot be converted to the kind the peer holds")?;
    converted.sort_unstable();
    let origin: Vec<u32> = converted.iter().map(|(_, p)| *p).collect();
    let ids = IdList::from_normalized(kind, converted.into_iter().map(|(c, _)| c).collect());
    if ids.len() != origin.len() {
        return Err(
            "two identifiers convert to the same value; the dataset cannot be matched in this kind".into(),
        );
    }
    Ok(Selection {
        ids: Arc::new(ids),
        origin,
    })
}

/// Builds this node's party for the session.
pub fn build(
    dataset: &LoadedDataset,
    accepted: &Accepted,
    limits: Limits,
) -> Result<(Box<dyn Party>, Selection), String> {
    let (kind, role, terms) = (accepted.hash_kind, accepted.role, accepted.terms);
    match &accepted.work {
        Work::Overlap => {
            let sel = select(dataset, None, kind)?;
            let ids = Arc::clone(&sel.ids);
            let party: Box<dyn Party> = match role {
                Role::Sender => Box::new(OverlapSender::new(ids, limits, terms)),
                _ => Box::new(OverlapReceiver::new(ids, limits, terms)),
            };
            Ok((party, sel))
        }
        Work::Segment { filters, activation } => {
            let positions = dataset.attributes.select(filters)?;
            let sel = select(dataset, Some(positions), kind)?;
            let ids = Arc::clone(&sel.ids);
            let party: Box<dyn Party> = match (activation, role) {
                (Activation::None, Role::Sender) => Box::new(OverlapSender::new(ids, limits, terms)),
                (Activation::None, _) => Box::new(OverlapReceiver::new(ids, limits, terms)),
                (Activation::Receive { .. }, _) => Box::new(ActivationReceiver::new(ids, limits, terms)),
                (Activation::Allow { min_activation }, _) => {
                    Box::new(ActivationSender::new(ids, limits, terms, *min_activation))
                }
            };
            Ok((party, sel))
        }
        Work::Breakdown {
            side,
            plan,
            group_by,
            measures,
            filters,
        } => {
            let a = &dataset.attributes;
            let positions = a.select(filters)?;
            let sel = select(dataset, Some(positions), kind)?;
            let grouping = a.groups(group_by)?;
            let groups: Vec<u32> = sel.origin.iter().map(|&p| grouping.codes[p as usize]).collect();
            let columns = measures
                .iter()
                .map(|m| a.measure(m).map(|v| v.values))
                .collect::<Result<Vec<_>, _>>()?;
            let values: Vec<i64> = sel
                .origin
                .iter()
                .flat_map(|&p| columns.iter().map(move |c| c[p as usize]))
                .collect();
            let rows = LaneRows {
                ids: Arc::clone(&sel.ids),
                rows: (0..sel.origin.len() as u32).collect(),
                groups,
                measures: values,
            };
            let shares = accepted.noise.shares();
            let mut offset = 0;
            let mut lanes = Vec::with_capacity(plan.lanes.len());
            for (i, lane) in plan.lanes.iter().enumerate() {
                let n = lane.shape.released_values();
                let noise = shares
                    .get(offset..offset + n)
                    .ok_or("noise shares missing")?
                    .to_vec();
                offset += n;
                let number = i as u32;
                let built = if lane.receiver == *side {
                    let rows = LaneRows {
                        measures: Vec::new(),
                        ..rows.clone()
                    };
                    BreakdownReceiver::new(number, lane.shape, rows, noise, limits, terms)
                        .map(|r| Lane::Receiver(Box::new(r)))
                } else {
                    BreakdownSender::new(number, lane.shape, rows.clone(), noise, limits, terms)
                        .map(|s| Lane::Sender(Box::new(s)))
                };
                lanes.push(built.map_err(|e| e.to_string())?);
            }
            Ok((Box::new(Breakdown::new(lanes)), sel))
        }
    }
}
