//! Attribution (PROTOCOLS.md, section A) as pooled breakdown lanes, one per
//! conversion window; the exact semantics are `examples/ATTRIBUTION.md`.
//!
//! The bank R is every lane's receiver: its batch for window `w` is the set of
//! its conversion elements in `w`, batched by value bucket. The partner S is
//! every lane's sender: its table for `w` holds each person with at least one
//! exposure in `[start(w) - L, start(w))`, with the model's credits for a
//! conversion in `w` as the payload's measures, one per channel (or channel x
//! campaign), summing to 1000. Each lane draws its own masking scalars, so the
//! tables of different windows cannot be linked.
//!
//! The lanes share one pair of joint keys ([`Pooled`]): R sums the matched
//! payloads per bucket in every window, adds the windows up under
//! encryption, and releases per slot two values, the credits and the credits
//! weighted by each bucket's representative (per mille of the value clip).
//! The coordinator opens those two cells and [`combine`] turns them into
//! milli-conversions and milli-CNY per slot. One noised value per slot and
//! statistic, instead of one per window, bucket and slot, is what makes the
//! error bars usable (README, "Attribution noise").
//!
//! This module only turns each side's rows into lanes and the opened lanes
//! into totals; it never sees the other side's rows.

use std::sync::Arc;

use crate::{
    crypto::elgamal::OneHot,
    error::ProtocolError,
    ids::idlist::IdList,
    protocols::breakdown::{LaneRows, LaneShape, POOLED_CELLS, Pooled},
    queries::attribution_model::{CREDITS_PER_ELEMENT, CreditError, Model, Window, credits},
    session::stream::Setup,
};

const SECONDS_PER_DAY: i64 = 86_400;

/// Most windows one query may have: a lane each.
pub const MAX_WINDOWS: usize = 24 * 31;

/// Upper bounds of the value buckets, per mille of the value clip: finer
/// at the low end, where most conversions are (ATTRIBUTION.md, C4).
pub const BUCKET_BOUNDS_PERMILLE: [u64; 8] = [0, 10, 20, 50, 100, 200, 500, 1000];

/// Each bucket's representative, per mille of the clip: the middle of the
/// bucket, then the clip itself for values above it (they are clipped).
pub const BUCKET_REPRESENTATIVES_PERMILLE: [u64; 9] = [0, 5, 15, 35, 75, 150, 350, 750, 1000];

/// Most weighted credit one conversion element adds to a slot: 1000 credits
/// at the top representative.
pub const MAX_WEIGHTED_PER_ELEMENT: u64 = CREDITS_PER_ELEMENT as u64 * 1000;

/// The value buckets of a query's clip, in whole CNY (at least 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueBuckets {
    pub clip: u64,
}

impl ValueBuckets {
    /// The bucket of a value in fen: the first whose bound it does not
    /// exceed (`fen / 100 <= bound / 1000 * clip`), or the last.
    pub fn bucket(&self, fen: u64) -> usize {
        let clip = u128::from(self.clip);
        BUCKET_BOUNDS_PERMILLE
            .iter()
            .position(|&b| u128::from(fen) * 10 <= u128::from(b) * clip)
            .unwrap_or(BUCKET_BOUNDS_PERMILLE.len())
    }

    pub fn len(&self) -> usize {
        BUCKET_REPRESENTATIVES_PERMILLE.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The weight of each bucket in the pooled release.
    pub fn weights(&self) -> Vec<u64> {
        BUCKET_REPRESENTATIVES_PERMILLE.to_vec()
    }

    /// A released weighted total (credits x per-mille representatives) in
    /// thousandths of a CNY, rounded down.
    pub fn milli_cny(&self, weighted: i64) -> Option<i64> {
        let v = (i128::from(weighted) * i128::from(self.clip)).div_euclid(1000);
        i64::try_from(v).ok()
    }
}

/// Conversion windows: the period `[start, end)` in Unix seconds, on window
/// boundaries, and K, the windows kept per person (the earliest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub start: i64,
    pub end: i64,
    pub window: Window,
    pub max_conversions: u32,
}

impl Period {
    pub fn check(&self) -> Result<(), AttributionError> {
        let len = self.window.seconds();
        let plan = |what| Err(AttributionError::Plan(what));
        if self.start.rem_euclid(len) != 0 || self.end.rem_euclid(len) != 0 {
            return plan("the period must start and end on window boundaries");
        }
        if self.end <= self.start {
            return plan("the period must end after it starts");
        }
        // A span past i64 (a hostile or mistyped period) must be refused, not
        // wrapped round to a short one.
        if self.end.checked_sub(self.start).is_none() {
            return plan("the period is too long to represent");
        }
        if self.windows() > MAX_WINDOWS {
            return plan("too many windows (at most 744, a month of hours)");
        }
        if self.max_conversions == 0 {
            return plan("the per-person cap must be at least 1");
        }
        Ok(())
    }

    pub fn windows(&self) -> usize {
        self.end
            .checked_sub(self.start)
            .and_then(|span| usize::try_from(span / self.window.seconds()).ok())
            .unwrap_or(usize::MAX)
    }

    pub fn window_start(&self, w: usize) -> i64 {
        self.start + w as i64 * self.window.seconds()
    }

    /// The window holding `t`, if `t` is in the period.
    pub fn window_of(&self, t: i64) -> Option<usize> {
        (self.start..self.end)
            .contains(&t)
            .then(|| ((t - self.start) / self.window.seconds()) as usize)
    }

    /// One person's conversion elements (C8) into `out`: one per window of
    /// the period, its value the saturating sum of the window's rows, the
    /// first K windows kept. Returns how many were left out by the cap.
    pub fn elements(&self, rows: &[Conversion], out: &mut Vec<(usize, u64)>) -> u64 {
        out.clear();
        let mut by_window: Vec<(usize, u64)> = rows
            .iter()
            .filter_map(|c| self.window_of(c.ts).map(|w| (w, c.fen)))
            .collect();
        by_window.sort_unstable_by_key(|&(w, _)| w);
        for (w, fen) in by_window {
            match out.last_mut() {
                Some((last, sum)) if *last == w => *sum = sum.saturating_add(fen),
                _ => out.push((w, fen)),
            }
        }
        let keep = out.len().min(self.max_conversions as usize);
        let capped = (out.len() - keep) as u64;
        out.truncate(keep);
        capped
    }
}

/// What both nodes derive from the query spec and their declared channel and
/// campaign lists; it must be the same on both sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub period: Period,
    pub lookback_days: u32,
    pub model: Model,
    pub buckets: ValueBuckets,
    pub channels: usize,
    pub campaigns: usize,
    /// Credit per channel x campaign (channel-major) instead of per channel.
    pub by_campaign: bool,
}

/// Why a plan or a side's rows cannot make lanes. No message carries a time,
/// a value or an identifier.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttributionError {
    #[error("attribution plan: {0}")]
    Plan(&'static str),
    #[error("person {person}: {error}")]
    Credit { person: usize, error: CreditError },
    #[error("person {person}: a touch names channel or campaign {index}, beyond the declared lists")]
    UnknownLabel { person: usize, index: usize },
    #[error("window {window}: {what}")]
    Lane { window: usize, what: &'static str },
    #[error("the opened lanes do not fit the plan: {0}")]
    Opened(&'static str),
}

impl Plan {
    pub fn check(&self) -> Result<(), AttributionError> {
        self.period.check()?;
        let plan = |what| Err(AttributionError::Plan(what));
        if self.lookback_days == 0 {
            return plan("the lookback must be at least 1 day");
        }
        if self.buckets.clip == 0 {
            return plan("the value clip must be at least 1 CNY");
        }
        if self.channels == 0 || self.campaigns == 0 {
            return plan("at least one channel and one campaign must be declared");
        }
        self.lane_shape()
            .check()
            .map_err(|_| AttributionError::Plan("too many buckets x slots for one lane"))
    }

    pub fn windows(&self) -> usize {
        self.period.windows()
    }

    /// Credit slots per payload: channels, or channels x campaigns.
    pub fn slots(&self) -> usize {
        if self.by_campaign {
            self.channels * self.campaigns
        } else {
            self.channels
        }
    }

    fn slot(&self, channel: usize, campaign: usize) -> usize {
        if self.by_campaign {
            channel * self.campaigns + campaign
        } else {
            channel
        }
    }

    /// Every lane's shape: R's groups are the value buckets; S's payload is
    /// one credit measure per slot, with no count (the credits of a matched
    /// element sum to 1000, which counts it).
    pub fn lane_shape(&self) -> LaneShape {
        LaneShape {
            receiver_groups: self.buckets.len(),
            payload: OneHot {
                groups: 1,
                count: false,
                measures: self.slots(),
                small_measures: true,
            },
        }
    }
}

/// One exposure of a person. Its `Debug` shows no field: these are row values.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Touch {
    pub ts: i64,
    /// Index into the declared channels.
    pub channel: u16,
    /// Index into the declared campaigns.
    pub campaign: u16,
}

/// One conversion row of a person. Its `Debug` shows no field.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Conversion {
    pub ts: i64,
    /// Value in fen; 0 when the row's value did not parse (ATTRIBUTION.md, C3).
    pub fen: u64,
}

impl std::fmt::Debug for Touch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Touch(..)")
    }
}

impl std::fmt::Debug for Conversion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Conversion(..)")
    }
}

/// S's lanes: for each window, the persons with a touch in its lookback and
/// their credits. `touches[p]` are the touches of person `p` of `ids`, in
/// attribution order (by time, then channel name, then campaign name: the
/// caller knows the names).
pub fn sender_lanes(
    plan: &Plan,
    ids: &Arc<IdList>,
    touches: &[Vec<Touch>],
) -> Result<Vec<LaneRows>, AttributionError> {
    plan.check()?;
    if touches.len() != ids.len() {
        return Err(AttributionError::Plan("one touch list per identifier is needed"));
    }
    for (person, list) in touches.iter().enumerate() {
        if let Some(t) = list
            .iter()
            .find(|t| usize::from(t.channel) >= plan.channels || usize::from(t.campaign) >= plan.campaigns)
        {
            let index = usize::from(t.channel).max(usize::from(t.campaign));
            return Err(AttributionError::UnknownLabel { person, index });
        }
        if let Some(i) = list.windows(2).position(|p| p[1].ts < p[0].ts) {
            return Err(AttributionError::Credit {
                person,
                error: CreditError::TouchesOutOfOrder { index: i + 1 },
            });
        }
    }
    let lookback = i64::from(plan.lookback_days) * SECONDS_PER_DAY;
    let slots = plan.slots();
    let mut times = Vec::new();
    (0..plan.windows())
        .map(|w| {
            let start = plan.period.window_start(w);
            let mut rows = LaneRows::empty(ids);
            for (person, list) in touches.iter().enumerate() {
                let from = list.partition_point(|t| t.ts < start - lookback);
                let to = list.partition_point(|t| t.ts < start);
                let window = &list[from..to];
                if window.is_empty() {
                    continue;
                }
                times.clear();
                times.extend(window.iter().map(|t| t.ts));
                let credit = credits(plan.model, start, &times)
                    .map_err(|error| AttributionError::Credit { person, error })?;
                let first = rows.measures.len();
                rows.measures.resize(first + slots, 0);
                for (t, c) in window.iter().zip(credit) {
                    rows.measures[first + plan.slot(usize::from(t.channel), usize::from(t.campaign))] +=
                        i64::from(c);
                }
                rows.rows.push(person as u32);
                rows.groups.push(0);
            }
            Ok(rows)
        })
        .collect()
}

/// The bank's side of the session: a receiving lane per window, pooled.
/// `noise` is its share for every value of the pooled release (two per
/// slot), `setups[w]` window `w`'s cover (a pad per value bucket).
pub fn bank_party(
    plan: &Plan,
    lanes: Vec<LaneRows>,
    noise: Vec<i64>,
    setups: Vec<Setup>,
) -> Result<Pooled, ProtocolError> {
    let lanes = paired(plan, lanes, setups)?;
    Pooled::receiver(plan.lane_shape(), lanes, plan.buckets.weights(), noise)
}

/// The partner's side of the session: a sending lane per window, pooled;
/// `setups[w]` holds window `w`'s pad and its dummies per value bucket.
pub fn partner_party(
    plan: &Plan,
    lanes: Vec<LaneRows>,
    noise: Vec<i64>,
    setups: Vec<Setup>,
) -> Result<Pooled, ProtocolError> {
    let lanes = paired(plan, lanes, setups)?;
    Pooled::sender(plan.lane_shape(), lanes, noise)
}

fn paired(
    plan: &Plan,
    lanes: Vec<LaneRows>,
    setups: Vec<Setup>,
) -> Result<Vec<(LaneRows, Setup)>, ProtocolError> {
    if lanes.len() != plan.windows() || setups.len() != lanes.len() {
        return Err(ProtocolError::Shape {
            what: "attribution needs one lane and one cover per window",
        });
    }
    Ok(lanes.into_iter().zip(setups).collect())
}

/// Values of the pooled release: two per slot.
pub fn released_values(plan: &Plan) -> usize {
    POOLED_CELLS * plan.slots()
}

/// What R's conversion rows came to (ATTRIBUTION.md, C8 and C11).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Elements {
    /// Conversion elements after the cap.
    pub elements: u64,
    /// Elements beyond a person's first K windows, dropped.
    pub capped: u64,
}

/// R's lanes: for each window, its conversion elements (one per person),
/// batched by value bucket, after the per-person cap. `conversions[p]` are the
/// rows of person `p` of `ids`, in any order; rows outside the period are
/// skipped.
pub fn receiver_lanes(
    plan: &Plan,
    ids: &Arc<IdList>,
    conversions: &[Vec<Conversion>],
) -> Result<(Vec<LaneRows>, Elements), AttributionError> {
    plan.check()?;
    if conversions.len() != ids.len() {
        return Err(AttributionError::Plan(
            "one conversion list per identifier is needed",
        ));
    }
    let mut lanes: Vec<LaneRows> = (0..plan.windows()).map(|_| LaneRows::empty(ids)).collect();
    let mut counts = Elements::default();
    let mut elements = Vec::new();
    for (person, rows) in conversions.iter().enumerate() {
        counts.capped += plan.period.elements(rows, &mut elements);
        counts.elements += elements.len() as u64;
        for &(w, fen) in &elements {
            let lane = &mut lanes[w];
            lane.rows.push(person as u32);
            lane.groups.push(plan.buckets.bucket(fen) as u32);
        }
    }
    Ok((lanes, counts))
}

/// The attribution table before noise is judged: per slot, in plan order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Summed credits (thousandths of a conversion).
    pub milli_conversions: Vec<i64>,
    /// Summed credit x representative (thousandths of a CNY).
    pub value: Vec<i64>,
}

impl Totals {
    /// Attributed elements: every one hands out exactly 1000 credits. With
    /// noise this is an estimate, rounded to the nearest element.
    pub fn attributed(&self) -> i64 {
        let sum: i64 = self.milli_conversions.iter().sum();
        (sum + i64::from(CREDITS_PER_ELEMENT) / 2).div_euclid(i64::from(CREDITS_PER_ELEMENT))
    }
}

/// Reads the opened pooled release (cell-major, as
/// [`crate::protocols::breakdown::open_lane`] returns it: the credits of
/// every slot, then the weighted credits).
pub fn combine(plan: &Plan, opened: &[i64]) -> Result<Totals, AttributionError> {
    let slots = plan.slots();
    if opened.len() != released_values(plan) {
        return Err(AttributionError::Opened(
            "the release does not hold two values per slot",
        ));
    }
    let (milli, weighted) = opened.split_at(slots);
    let value = weighted
        .iter()
        .map(|&w| plan.buckets.milli_cny(w))
        .collect::<Option<Vec<_>>>()
        .ok_or(AttributionError::Opened("a value total overflows"))?;
    Ok(Totals {
        milli_conversions: milli.to_vec(),
        value,
    })
}

#[cfg(test)]
#[path = "attribution_tests.rs"]
mod tests;
