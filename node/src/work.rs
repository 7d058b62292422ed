//! Turns an accepted job into the protocol party this node runs: selects
//! the rows the query's filters keep, groups them, attaches measures, and
//! puts the identifiers in the kind both sides hash under. Blocking (polars
//! filters, conversions over all rows): run it off the async workers.

use std::sync::Arc;

use jointly_protocol::{
    ids::idlist::IdList,
    ids::normalize::{IdKind, convert},
    privacy::cover::Cover,
    protocols::activation::{ActivationReceiver, ActivationSender},
    protocols::breakdown::{Breakdown, BreakdownReceiver, BreakdownSender, Lane, LaneRows},
    protocols::overlap::{OverlapReceiver, OverlapSender},
    queries::attribution,
    queries::lift::{self, LiftPlan},
    session::party::Party,
    session::stream::{Announce, Limits, Setup},
    wire::Role,
};

use crate::{
    attributes::AttributeError,
    dataset::LoadedDataset,
    decision::{Accepted, Activation, Holdings, LiftSide, Work},
    events::LoadedEvents,
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
) -> Result<Selection, SelectError> {
    select_ids(&dataset.ids, positions, kind)
}

/// Why a list of identifiers cannot be put in the kind both sides hash under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("identifiers cannot be converted to the kind the peer holds")]
    NotConvertible,
    #[error("two identifiers convert to the same value; the dataset cannot be matched in this kind")]
    Collision,
}

/// As [`select`], from any list of identifiers.
pub fn select_ids(
    all: &Arc<IdList>,
    positions: Option<Vec<u32>>,
    kind: IdKind,
) -> Result<Selection, SelectError> {
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
        .ok_or(SelectError::NotConvertible)?;
    converted.sort_unstable();
    let origin: Vec<u32> = converted.iter().map(|(_, p)| *p).collect();
    let ids = IdList::from_normalized(kind, converted.into_iter().map(|(c, _)| c).collect());
    if ids.len() != origin.len() {
        return Err(SelectError::Collision);
    }
    Ok(Selection {
        ids: Arc::new(ids),
        origin,
        conversions: None,
    })
}

/// Why this node does not run an accepted job after all.
#[derive(Debug)]
pub enum BuildError {
    /// Its own list, noised as its peer would see it, is below its
    /// policy.min_set_size. The refusal follows from the noised size, which
    /// the job's charge covers: the peer-view part counts as spent.
    TooSmall(String),
    /// The identifiers do not convert to the kind both sides hash under.
    Select(SelectError),
    /// The query's filters, groups or measures do not fit the dataset.
    Attributes(AttributeError),
    /// Anything else (a dataset gone, rows that do not fit the plan).
    Failed(String),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::TooSmall(m) | BuildError::Failed(m) => f.write_str(m),
            BuildError::Select(e) => e.fmt(f),
            BuildError::Attributes(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BuildError {}

impl From<SelectError> for BuildError {
    fn from(e: SelectError) -> Self {
        BuildError::Select(e)
    }
}

impl From<AttributeError> for BuildError {
    fn from(e: AttributeError) -> Self {
        BuildError::Attributes(e)
    }
}

impl From<String> for BuildError {
    fn from(m: String) -> Self {
        BuildError::Failed(m)
    }
}

impl From<&str> for BuildError {
    fn from(m: &str) -> Self {
        BuildError::Failed(m.to_string())
    }
}

/// The setup of lane `lane`: this node's cover for it, its limits and terms.
fn setup(accepted: &Accepted, limits: Limits, cover: Cover) -> Setup {
    Setup {
        limits: Limits {
            min_peer_set: accepted.noise.min_set_size,
            ..limits
        },
        terms: accepted.terms,
        cover,
        min_aggregation: accepted.noise.min_aggregation,
    }
}

fn lane_cover(accepted: &Accepted, lane: usize) -> Result<Cover, BuildError> {
    accepted
        .noise
        .covers()
        .get(lane)
        .cloned()
        .ok_or_else(|| BuildError::Failed("internal error: a lane has no cover".into()))
}

/// Refuses this node's own list when its noised size (what the peer will
/// compute from the announcement) is below policy.min_set_size.
fn check_own_size(
    accepted: &Accepted,
    rows: u64,
    cover: &Cover,
    dummy_batches: u64,
) -> Result<(), BuildError> {
    let announced = Announce {
        set_size: rows + cover.total_pads() + cover.total_dummies(),
        terms: accepted.terms,
        key: None,
        pad_offset: cover.pad_offset,
        dummy_offset: cover.dummy_offset,
        min_aggregation: 0,
    };
    let noised = announced.noised_size(cover.pads.len() as u64, dummy_batches);
    let minimum = accepted.noise.min_set_size;
    if noised < minimum {
        return Err(BuildError::TooSmall(format!(
            "its list for this job holds about {noised} rows (noised), below its policy.min_set_size = {minimum}; nothing was sent. Widen the filters"
        )));
    }
    Ok(())
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

/// Attribution: the bank's receiving lanes from its conversions, or the
/// partner's sending lanes from its exposures, one per window.
fn attribution(
    events: &LoadedEvents,
    accepted: &Accepted,
    plan: &attribution::Plan,
    limits: Limits,
) -> Result<(Box<dyn Party>, Selection), BuildError> {
    let kind = accepted.hash_kind;
    let mut sel = select_ids(events.ids(), None, kind)?;
    // One share per value of the pooled release, then the bank's count.
    let (noise, rest) = accepted
        .noise
        .shares()
        .split_at_checked(attribution::released_values(plan))
        .ok_or("noise shares missing")?;
    let noise = noise.to_vec();
    let covers: Vec<Cover> = (0..plan.windows())
        .map(|w| lane_cover(accepted, w))
        .collect::<Result<_, _>>()?;
    let buckets = plan.buckets.len() as u64;
    let party = match events {
        LoadedEvents::Conversions { data, .. } => {
            let rows = in_selection_order(&data.rows, &sel);
            let (lanes, elements) =
                attribution::receiver_lanes(plan, &sel.ids, &rows).map_err(|e| e.to_string())?;
            if rest.len() != 1 {
                return Err("noise share for the conversion count missing".into());
            }
            let total = lanes.iter().map(|l| l.rows.len() as u64).sum::<u64>();
            let cover = total_cover(&covers);
            check_own_size(accepted, total, &cover, 0)?;
            sel.conversions = Some(elements.elements);
            let setups = covers.into_iter().map(|c| setup(accepted, limits, c)).collect();
            attribution::bank_party(plan, lanes, noise, setups)
        }
        LoadedEvents::Exposures { data, .. } => {
            let touches = in_selection_order(&data.touches, &sel);
            let lanes = attribution::sender_lanes(plan, &sel.ids, &touches).map_err(|e| e.to_string())?;
            let sizes: Vec<u64> = lanes.iter().map(|l| l.rows.len() as u64).collect();
            let covers = if accepted.noise.exact {
                covers
            } else {
                common_length(covers, &sizes, buckets)?
            };
            // Judged on window 0's announcement, as the bank will judge it:
            // with the common length, that is the largest window's size.
            if let (Some(first), Some(&rows)) = (covers.first(), sizes.first()) {
                check_own_size(accepted, rows, first, buckets)?;
            }
            let setups = covers.into_iter().map(|c| setup(accepted, limits, c)).collect();
            attribution::partner_party(plan, lanes, noise, setups)
        }
    }
    .map_err(|e| e.to_string())?;
    Ok((Box::new(party), sel))
}

/// All of a receiver's lanes' pads as one cover, for its own size check.
fn total_cover(covers: &[Cover]) -> Cover {
    let pads: Vec<u64> = covers.iter().flat_map(|c| c.pads.iter().copied()).collect();
    Cover {
        pads,
        pad_offset: covers.first().map_or(0, |c| c.pad_offset),
        dummies: Vec::new(),
        dummy_offset: 0,
    }
}

/// The partner's windows all go out at one length: the largest window's
/// rows, every bucket's dummy width, and one pad (lane 0's draw). A
/// window's pad is what tops it up to that length, and its announced pad
/// offset is the pad's mean plus the dummies' mean, so the bank computes the
/// noised size of the largest window from any lane's announcement.
fn common_length(covers: Vec<Cover>, sizes: &[u64], buckets: u64) -> Result<Vec<Cover>, BuildError> {
    let first = covers.first().ok_or("internal error: no lanes")?;
    let (pad, pad_offset, dummy_offset) = (
        first.pads.first().copied().unwrap_or(0),
        first.pad_offset,
        first.dummy_offset,
    );
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let length = largest + buckets * 2 * dummy_offset + pad;
    covers
        .into_iter()
        .zip(sizes)
        .map(|(mut c, &rows)| {
            let used = rows + c.total_dummies();
            let fill = length
                .checked_sub(used)
                .ok_or("internal error: a window's dummies exceed their width")?;
            c.pads = vec![fill];
            c.pad_offset = pad_offset + buckets * dummy_offset;
            Ok(c)
        })
        .collect()
}

/// Lift: the bank's payload per customer, or the partner's test and control
/// batches, in one lane.
fn lift(
    holdings: Holdings<'_>,
    accepted: &Accepted,
    plan: &LiftPlan,
    side: &LiftSide,
    limits: Limits,
) -> Result<(Box<dyn Party>, Selection), BuildError> {
    let kind = accepted.hash_kind;
    let dataset = holdings
        .datasets
        .get(&accepted.dataset)
        .ok_or("the job's dataset is gone")?;
    let sel = select(dataset, None, kind)?;
    let shape = plan.lane_shape();
    let noise = accepted.noise.shares().to_vec();
    let cover = lane_cover(accepted, 0)?;
    let lane = match side {
        LiftSide::Bank { conversions } => {
            let Some(LoadedEvents::Conversions { data, .. }) = holdings.events.get(conversions) else {
                return Err(format!("the conversions table '{conversions}' is gone").into());
            };
            let converting = select_ids(&data.ids, None, kind)?;
            let rows = in_selection_order(&data.rows, &converting);
            let payload =
                lift::bank_rows(plan, &sel.ids, &converting.ids, &rows).map_err(|e| e.to_string())?;
            check_own_size(
                accepted,
                payload.rows.len() as u64,
                &cover,
                shape.receiver_groups as u64,
            )?;
            BreakdownSender::new(0, shape, payload, noise, setup(accepted, limits, cover))
                .map(|s| Lane::Sender(Box::new(s)))
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
            check_own_size(accepted, rows.rows.len() as u64, &cover, 0)?;
            BreakdownReceiver::new(0, shape, rows, noise, setup(accepted, limits, cover))
                .map(|r| Lane::Receiver(Box::new(r)))
        }
    }
    .map_err(|e| e.to_string())?;
    Ok((Box::new(Breakdown::new(vec![lane])), sel))
}

/// Builds this node's party for the session: its rows after the query's
/// filters, each lane's cover as the node drew it, and its own list checked
/// against policy.min_set_size on the size its peer will see.
pub fn build(
    holdings: Holdings<'_>,
    accepted: &Accepted,
    limits: Limits,
) -> Result<(Box<dyn Party>, Selection), BuildError> {
    let (kind, role) = (accepted.hash_kind, accepted.role);
    let gone = || BuildError::Failed(format!("dataset '{}' is gone", accepted.dataset));
    match &accepted.work {
        Work::Attribution { plan } => {
            let events = holdings.events.get(&accepted.dataset).ok_or_else(gone)?;
            return attribution(events, accepted, plan, limits);
        }
        Work::Lift { plan, side } => return lift(holdings, accepted, plan, side, limits),
        _ => {}
    }
    let dataset = holdings.datasets.get(&accepted.dataset).ok_or_else(gone)?;
    let failed = |e: jointly_protocol::ProtocolError| BuildError::Failed(e.to_string());
    match &accepted.work {
        Work::Overlap => {
            let sel = select(dataset, None, kind)?;
            let ids = Arc::clone(&sel.ids);
            let cover = lane_cover(accepted, 0)?;
            let dummy_batches = u64::from(role == Role::Sender);
            check_own_size(accepted, ids.len() as u64, &cover, dummy_batches)?;
            let setup = setup(accepted, limits, cover);
            let party: Box<dyn Party> = match role {
                Role::Sender => Box::new(OverlapSender::new(ids, setup).map_err(failed)?),
                _ => Box::new(OverlapReceiver::new(ids, setup).map_err(failed)?),
            };
            Ok((party, sel))
        }
        Work::Segment { filters, activation } => {
            let positions = dataset.attributes.select(filters)?;
            let sel = select(dataset, Some(positions), kind)?;
            let ids = Arc::clone(&sel.ids);
            let cover = lane_cover(accepted, 0)?;
            // The list's dummies: a plain segment's sender hides R's count,
            // an activation's receiver hides S's.
            let dummy_batches = cover.dummies.len() as u64;
            check_own_size(accepted, ids.len() as u64, &cover, dummy_batches)?;
            let setup = setup(accepted, limits, cover);
            let party: Box<dyn Party> = match (activation, role) {
                (Activation::None, Role::Sender) => Box::new(OverlapSender::new(ids, setup).map_err(failed)?),
                (Activation::None, _) => Box::new(OverlapReceiver::new(ids, setup).map_err(failed)?),
                (Activation::Receive { .. }, _) => {
                    Box::new(ActivationReceiver::new(ids, setup).map_err(failed)?)
                }
                (Activation::Allow { min_activation }, _) => {
                    // The sender decides on its release share's noise, so the
                    // decision costs nothing beyond the release.
                    let noise = accepted.noise.shares().first().copied().unwrap_or(0);
                    Box::new(ActivationSender::new(ids, setup, *min_activation, noise).map_err(failed)?)
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
                let cover = lane_cover(accepted, i)?;
                let receives = lane.receiver == *side;
                let dummy_batches = if receives {
                    0
                } else {
                    lane.shape.receiver_groups as u64
                };
                check_own_size(accepted, rows.rows.len() as u64, &cover, dummy_batches)?;
                let setup = setup(accepted, limits, cover);
                let built = if receives {
                    let rows = LaneRows {
                        measures: Vec::new(),
                        ..rows.clone()
                    };
                    BreakdownReceiver::new(number, lane.shape, rows, noise, setup)
                        .map(|r| Lane::Receiver(Box::new(r)))
                } else {
                    BreakdownSender::new(number, lane.shape, rows.clone(), noise, setup)
                        .map(|s| Lane::Sender(Box::new(s)))
                };
                lanes.push(built.map_err(failed)?);
            }
            Ok((Box::new(Breakdown::new(lanes)), sel))
        }
        Work::Attribution { .. } | Work::Lift { .. } => Err("internal error: event work".into()),
    }
}
