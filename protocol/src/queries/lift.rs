//! Conversion lift (PROTOCOLS.md, section A: "a breakdown with S's group =
//! test/control"; semantics in `examples/ATTRIBUTION.md`, "Lift" and C12) as
//! one breakdown lane, and the estimate with confidence intervals that count
//! the added noise.
//!
//! The partner is the lane's receiver: its batches are its test and its
//! control persons. The bank is the sender, with one payload per customer:
//! the count, whether the customer converted in the period (a conversion
//! element, after the cap), and the customer's element values summed, clipped
//! and rounded to whole CNY. The opened cells are, per group, the persons
//! shared with the bank, the converters among them and their value.
//!
//! The partner learns how many of its test and of its control persons are bank
//! customers (a lane's match count per batch, inherent to this family, and
//! released anyway, noised); the bank learns the two batch sizes, padded.

use std::sync::Arc;

use crate::{
    crypto::elgamal::OneHot,
    ids::idlist::IdList,
    protocols::breakdown::{LaneRows, LaneShape},
    queries::attribution::{AttributionError, Conversion, Period},
};

/// The partner's batches.
pub const TEST: u32 = 0;
pub const CONTROL: u32 = 1;

/// The payload's slots: count, converters, value.
const SLOTS: usize = 3;

/// Both nodes derive it from the query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiftPlan {
    pub period: Period,
    /// Whole CNY a customer's value is clipped to.
    pub value_clip: u64,
}

impl LiftPlan {
    pub fn lane_shape(&self) -> LaneShape {
        LaneShape {
            receiver_groups: 2,
            payload: OneHot {
                groups: 1,
                count: true,
                measures: 2,
                small_measures: false,
            },
        }
    }
}

/// The partner's rows: its persons with a group (`Some(TEST)` or
/// `Some(CONTROL)`, by position in `ids`); others are left out.
pub fn partner_rows(ids: &Arc<IdList>, group_of: &[Option<u32>]) -> Result<LaneRows, AttributionError> {
    if group_of.len() != ids.len() {
        return Err(AttributionError::Plan(
            "one group (or none) per identifier is needed",
        ));
    }
    let mut rows = LaneRows::empty(ids);
    for (person, group) in group_of.iter().enumerate() {
        match *group {
            Some(g @ (TEST | CONTROL)) => {
                rows.rows.push(person as u32);
                rows.groups.push(g);
            }
            Some(_) => return Err(AttributionError::Plan("a lift group is test or control")),
            None => {}
        }
    }
    Ok(rows)
}

/// The bank's rows: every customer of `customers`, with whether they converted
/// and their clipped value in whole CNY. `conversions[p]` are the rows of
/// person `p` of `converting`; conversions of persons who are not customers
/// do not count (C12).
pub fn bank_rows(
    plan: &LiftPlan,
    customers: &Arc<IdList>,
    converting: &IdList,
    conversions: &[Vec<Conversion>],
) -> Result<LaneRows, AttributionError> {
    plan.period.check()?;
    if conversions.len() != converting.len() {
        return Err(AttributionError::Plan(
            "one conversion list per identifier is needed",
        ));
    }
    if customers.kind() != converting.kind() {
        return Err(AttributionError::Plan(
            "the customers and the conversions must have the same identifier kind",
        ));
    }
    let clip = plan.value_clip.saturating_mul(100);
    let mut measures = vec![0i64; customers.len() * 2];
    let mut elements = Vec::new();
    // Both lists are sorted and de-duplicated: merge them.
    let (mut c, mut p) = (0, 0);
    while c < customers.len() && p < converting.len() {
        match customers.get(c).cmp(converting.get(p)) {
            std::cmp::Ordering::Less => c += 1,
            std::cmp::Ordering::Greater => p += 1,
            std::cmp::Ordering::Equal => {
                plan.period.elements(&conversions[p], &mut elements);
                if !elements.is_empty() {
                    let total = elements
                        .iter()
                        .fold(0u64, |sum, &(_, fen)| sum.saturating_add(fen));
                    let clipped = total.min(clip);
                    let yuan = clipped / 100 + u64::from(clipped % 100 >= 50);
                    measures[2 * c] = 1;
                    measures[2 * c + 1] = i64::try_from(yuan)
                        .map_err(|_| AttributionError::Plan("the value clip is too large"))?;
                }
                c += 1;
                p += 1;
            }
        }
    }
    Ok(LaneRows {
        ids: Arc::clone(customers),
        rows: (0..customers.len() as u32).collect(),
        groups: vec![0; customers.len()],
        measures,
    })
}

/// One group's released numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCounts {
    /// Persons of the group who are bank customers.
    pub persons: i64,
    pub converters: i64,
    /// Whole CNY.
    pub value: i64,
}

/// The groups from the opened lane (cell-major: test, then control; count,
/// converters, value).
pub fn groups(cells: &[i64]) -> Result<[GroupCounts; 2], AttributionError> {
    if cells.len() != 2 * SLOTS {
        return Err(AttributionError::Opened(
            "a lift lane holds three values per group",
        ));
    }
    let group = |g: usize| GroupCounts {
        persons: cells[g * SLOTS],
        converters: cells[g * SLOTS + 1],
        value: cells[g * SLOTS + 2],
    };
    Ok([group(TEST as usize), group(CONTROL as usize)])
}

/// Standard deviations of the total noise added to each released value.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Noise {
    /// On each count (persons, converters).
    pub count: f64,
    /// On each value sum (whole CNY).
    pub value: f64,
}

/// An estimate and its two-sided 95% confidence interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// The normal quantile of a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

impl Interval {
    fn normal(estimate: f64, variance: f64) -> Interval {
        let half = Z95 * variance.max(0.0).sqrt();
        Interval {
            estimate,
            low: estimate - half,
            high: estimate + half,
        }
    }
}

/// One group's rate and value per person.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupEstimate {
    pub counts: GroupCounts,
    /// Converters per person, with its interval; none without persons.
    pub rate: Option<Interval>,
    /// Value per person (CNY), with an interval for the noise only (the
    /// release has no second moment to estimate the spread between persons).
    pub value_per_person: Option<Interval>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LiftEstimate {
    pub test: GroupEstimate,
    pub control: GroupEstimate,
    /// rate(test) - rate(control).
    pub absolute: Option<Interval>,
    /// absolute / rate(control); none when the control rate is not positive.
    pub relative: Option<Interval>,
}

/// The variance of a rate `c/n` from sampling (binomial) and from the noise on
/// both counts (first-order delta method).
fn rate_variance(n: f64, rate: f64, noise: &Noise) -> f64 {
    let binomial = rate.clamp(0.0, 1.0) * (1.0 - rate.clamp(0.0, 1.0)) / n;
    let noise = (noise.count.powi(2) + rate.powi(2) * noise.count.powi(2)) / n.powi(2);
    binomial + noise
}

fn group_estimate(counts: GroupCounts, noise: &Noise) -> (GroupEstimate, Option<(f64, f64)>) {
    let n = counts.persons as f64;
    if counts.persons <= 0 {
        let none = GroupEstimate {
            counts,
            rate: None,
            value_per_person: None,
        };
        return (none, None);
    }
    let rate = counts.converters as f64 / n;
    let variance = rate_variance(n, rate, noise);
    let per_person = counts.value as f64 / n;
    let value_variance = (noise.value.powi(2) + per_person.powi(2) * noise.count.powi(2)) / n.powi(2);
    let estimate = GroupEstimate {
        counts,
        rate: Some(Interval::normal(rate, variance)),
        value_per_person: Some(Interval::normal(per_person, value_variance)),
    };
    (estimate, Some((rate, variance)))
}

/// Rates, values per person, and the absolute and relative lift with 95%
/// intervals that add the noise's variance to the sampling variance. With
/// no noise they are the usual Wald intervals; the relative lift's interval
/// is taken on the log of the rate ratio, so it stays above -100%.
pub fn estimate(groups: [GroupCounts; 2], noise: Noise) -> LiftEstimate {
    let (test, t) = group_estimate(groups[TEST as usize], &noise);
    let (control, c) = group_estimate(groups[CONTROL as usize], &noise);
    let absolute = t
        .zip(c)
        .map(|((pt, vt), (pc, vc))| Interval::normal(pt - pc, vt + vc));
    let relative = t.zip(c).and_then(|((pt, vt), (pc, vc))| {
        if pc <= 0.0 {
            return None;
        }
        let estimate = pt / pc - 1.0;
        if pt <= 0.0 {
            return Some(Interval {
                estimate,
                low: -1.0,
                high: estimate + Z95 * (vt.sqrt() / pc),
            });
        }
        let log_sd = (vt / pt.powi(2) + vc / pc.powi(2)).sqrt();
        let ratio = (pt / pc).ln();
        Some(Interval {
            estimate,
            low: (ratio - Z95 * log_sd).exp() - 1.0,
            high: (ratio + Z95 * log_sd).exp() - 1.0,
        })
    });
    LiftEstimate {
        test,
        control,
        absolute,
        relative,
    }
}

#[cfg(test)]
#[path = "lift_tests.rs"]
mod tests;
