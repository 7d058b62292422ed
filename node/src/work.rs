//! Turns an accepted job into the protocol party this node runs: selects
//! the rows the query's filters keep, groups them, attaches measures, and
//! puts the identifiers in the kind both sides hash under. Blocking (polars
//! filters, conversions over all rows): run it off the async workers.

use std::sync::Arc;

use jointly_protocol::{
    activation::{ActivationReceiver, ActivationSender},
    attribution,
    breakdown::{Breakdown, BreakdownReceiver, BreakdownSender, Lane, LaneRows},
    idlist::IdList,
    ids::{IdKind, convert},
    lift::{self, LiftPlan},
    overlap::{Limits, OverlapReceiver, OverlapSender},
    party::Party,
    wire::Role,
};

use crate::{
    dataset::LoadedDataset,
    events::LoadedEvents,
    policy::{Accepted, Activation, Holdings, LiftSide, Work},
};

/// The identifiers a session masks, and for each of its positions the
/// position of the same person in the dataset (to find a member again).
pub struct Selection {
    pub ids: Arc<IdList>,
    pub origin: Vec<u32>,
    /// Attribution, at the bank: its conversion elements, which it releases
    /// with its own noise.
    pub conversions: Option<u64>,
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
    select_ids(&dataset.ids, positions, kind)
}

/// As [`select`], from any list of identifiers.
pub fn select_ids(all: &Arc<IdList>, positions: Option<Vec<u32>>, kind: IdKind) -> Result<Selection, String> {
    if all.kind() == kind {
        return Ok(match positions {
            None => Selection {
                ids: Arc::clone(all),
                origin: (0..all.len() as u32).collect(),
                conversions: None,
            },
            Some(p) => Selection {
                ids: Arc::new(all.subset(&p)),
                origin: p,
                conversions: None,
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
        conversions: None,
    })
}

/// Per-person rows in the order of a selection of all persons: borrowed
/// when the selection kept the order, reordered otherwise.
fn in_selection_order<'a, T: Clone>(rows: &'a [Vec<T>], sel: &Selection) -> std::borrow::Cow<'a, [Vec<T>]> {
    if sel.origin.iter().enumerate().all(|(i, &p)| i == p as usize) {
        std::borrow::Cow::Borrowed(rows)
    } else {
        std::borrow::Cow::Owned(sel.origin.iter().map(|&p| rows[p as usize].clone()).collect())
    }
}

/// Splits this node's noise shares into one set per lane of `per_lane`
/// values; what remains follows the lanes.
fn lane_shares(shares: &[i64], lanes: usize, per_lane: usize) -> Result<(Vec<Vec<i64>>, &[i64]), String> {
    let (lane_part, rest) = shares
        .split_at_checked(lanes * per_lane)
        .ok_or("noise shares missing")?;
    let per = lane_part.chunks(per_lane.max(1)).map(<[i64]>::to_vec).collect();
    Ok((per, rest))
}

/// Attribution: the bank's receiving lanes from its conversions, or the
/// partner's sending lanes from its exposures, one per window.
fn attribution(
    events: &LoadedEvents,
    accepted: &Accepted,
    plan: &attribution::Plan,
    limits: Limits,
) -> Result<(Box<dyn Party>, Selection), String> {
    let (kind, terms) = (accepted.hash_kind, accepted.terms);
    let mut sel = select_ids(events.ids(), None, kind)?;
    let per_lane = plan.lane_shape().released_values();
    let (noise, rest) = lane_shares(accepted.noise.shares(), plan.windows(), per_lane)?;
    let party = match events {
        LoadedEvents::Conversions { data, .. } => {
            let rows = in_selection_order(&data.rows, &sel);
            let (lanes, elements) =
                attribution::receiver_lanes(plan, &sel.ids, &rows).map_err(|e| e.to_string())?;
            if rest.len() != 1 {
                return Err("noise share for the conversion count missing".into());
            }
            sel.conversions = Some(elements.elements);
            attribution::bank_party(plan, lanes, noise, limits, terms)
        }
        LoadedEvents::Exposures { data, .. } => {
            let touches = in_selection_order(&data.touches, &sel);
            let lanes = attribution::sender_lanes(plan, &sel.ids, &touches).map_err(|e| e.to_string())?;
            attribution::partner_party(plan, lanes, noise, limits, terms)
        }
    }
    .map_err(|e| e.to_string())?;
    Ok((Box::new(party), sel))
}

/// Lift: the bank's payload per customer, or the partner's test and control
/// batches, in one lane.
fn lift(
    holdings: Holdings<'_>,
    accepted: &Accepted,
    plan: &LiftPlan,
    side: &LiftSide,
    limits: Limits,
) -> Result<(Box<dyn Party>, Selection), String> {
    let (kind, terms) = (accepted.hash_kind, accepted.terms);
    let dataset = holdings
        .datasets
        .get(&accepted.dataset)
        .ok_or("the job's dataset is gone")?;
    let sel = select(dataset, None, kind)?;
    let shape = plan.lane_shape();
    let noise = accepted.noise.shares().to_vec();
    let lane = match side {
        LiftSide::Bank { conversions } => {
            let Some(LoadedEvents::Conversions { data, .. }) = holdings.events.get(conversions) else {
                return Err(format!("the conversions table '{conversions}' is gone"));
            };
            let converting = select_ids(&data.ids, None, kind)?;
            let rows = in_selection_order(&data.rows, &converting);
            let payload =
                lift::bank_rows(plan, &sel.ids, &converting.ids, &rows).map_err(|e| e.to_string())?;
            BreakdownSender::new(0, shape, payload, noise, limits, terms).map(|s| Lane::Sender(Box::new(s)))
        }
        LiftSide::Partner {
            column,
            test,
            control,
        } => {
            let grouping = dataset.attributes.groups(std::slice::from_ref(column))?;
            let domain = dataset
                .columns
                .iter()
                .find(|c| &c.name == column)
                .map(|c| c.domain())
                .ok_or("the group column is gone")?;
            let code = |v: &str| domain.iter().position(|d| d == v).map(|i| i as u32);
            let (test, control) = (code(test), code(control));
            let group_of: Vec<Option<u32>> = sel
                .origin
                .iter()
                .map(|&p| {
                    let g = Some(grouping.codes[p as usize]);
                    if g == test {
                        Some(lift::TEST)
                    } else if g == control {
                        Some(lift::CONTROL)
                    } else {
                        None
                    }
                })
                .collect();
            let rows = lift::partner_rows(&sel.ids, &group_of).map_err(|e| e.to_string())?;
            BreakdownReceiver::new(0, shape, rows, noise, limits, terms).map(|r| Lane::Receiver(Box::new(r)))
        }
    }
    .map_err(|e| e.to_string())?;
    Ok((Box::new(Breakdown::new(vec![lane])), sel))
}

/// Builds this node's party for the session.
pub fn build(
    holdings: Holdings<'_>,
    accepted: &Accepted,
    limits: Limits,
) -> Result<(Box<dyn Party>, Selection), String> {
    let (kind, role, terms) = (accepted.hash_kind, accepted.role, accepted.terms);
    let gone = || format!("dataset '{}' is gone", accepted.dataset);
    match &accepted.work {
        Work::Attribution { plan } => {
            let events = holdings.events.get(&accepted.dataset).ok_or_else(gone)?;
            return attribution(events, accepted, plan, limits);
        }
        Work::Lift { plan, side } => return lift(holdings, accepted, plan, side, limits),
        _ => {}
    }
    let dataset = holdings.datasets.get(&accepted.dataset).ok_or_else(gone)?;
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
        Work::Attribution { .. } | Work::Lift { .. } => Err("internal error: event work".into()),
    }
}
