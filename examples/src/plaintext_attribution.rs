//! The plaintext answer to attribution and lift (`ATTRIBUTION.md`): what a
//! trusted party holding the partner's exposures and groups and the bank's
//! conversions and customers would compute. Files are read with polars and
//! identifiers normalized exactly as [`crate::plaintext`] does; the
//! per-person work is plain Rust, which follows the semantics step by step
//! where frame expressions would not.
//!
//! Credits come from [`reference_credits`], written from the semantics and
//! not from `jointly_protocol::queries::attribution_model`, which nodes use: the tests
//! check the two agree, and an oracle sharing the node's code would share its
//! bugs.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use jointly_protocol::ids::normalize::IdKind;
use jointly_protocol::queries::attribution_model::{Model, Window};
use polars::prelude::DataFrame;

use crate::campaign_data::{CAMPAIGNS, CHANNELS};
use crate::plaintext::{normalize, normalized_ids, read_text};
use crate::timestamp;

const DAY: i64 = 86_400;

/// Whole windows from `start` (inclusive) to `end` (exclusive), Unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub start: i64,
    pub end: i64,
    pub window: Window,
}

impl Period {
    /// `days` daily windows from `start`.
    pub fn days(start: i64, days: u32) -> Period {
        Period {
            start,
            end: start + i64::from(days) * DAY,
            window: Window::Day,
        }
    }

    fn check(&self) -> Result<()> {
        let len = self.window.seconds();
        ensure!(
            self.start.rem_euclid(len) == 0 && self.end.rem_euclid(len) == 0,
            "the period must start and end on window boundaries (UTC midnight for daily, a full hour for hourly windows)"
        );
        ensure!(self.end > self.start, "the period must end after it starts");
        Ok(())
    }

    /// The index of the window holding `t`, if `t` is in the period.
    fn window_of(&self, t: i64) -> Option<i64> {
        (self.start..self.end)
            .contains(&t)
            .then(|| (t - self.start) / self.window.seconds())
    }

    fn window_start(&self, w: i64) -> i64 {
        self.start + w * self.window.seconds()
    }
}

/// Value buckets of a clip in whole CNY: a value falls in the first bucket
/// whose upper bound, a percentage of the clip (0, 1, 2, 5, 10, 20, 50 and
/// 100%), it does not exceed; above the clip, in the last. Each bucket's
/// representative is its middle and, above the clip, the clip itself, in
/// tenths of a percent of the clip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueBuckets {
    /// At least 1.
    pub clip: u64,
}

const BOUND_PERCENTS: [u64; 8] = [0, 1, 2, 5, 10, 20, 50, 100];
const REPRESENTATIVE_TENTHS_OF_PERCENT: [u64; 9] = [0, 5, 15, 35, 75, 150, 350, 750, 1000];

impl ValueBuckets {
    fn check(&self) -> Result<()> {
        ensure!(self.clip >= 1, "the value clip must be at least 1 CNY");
        Ok(())
    }

    /// The representative of a value in fen, in tenths of a percent of the
    /// clip (`pct` percent of the clip in CNY is `pct * clip` fen).
    fn representative(&self, fen: u64) -> u64 {
        let bucket = BOUND_PERCENTS
            .iter()
            .position(|&pct| u128::from(fen) <= u128::from(pct) * u128::from(self.clip))
            .unwrap_or(BOUND_PERCENTS.len());
        REPRESENTATIVE_TENTHS_OF_PERCENT[bucket]
    }

    /// Credits x representatives (tenths of a percent) as thousandths of a
    /// CNY, rounded down.
    fn milli_cny(&self, weighted: u64) -> Result<u64> {
        u64::try_from(u128::from(weighted) * u128::from(self.clip) / 1000)
            .context("a value total overflows 64 bits; lower the value clip")
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AttributionParams {
    pub period: Period,
    /// At least 1.
    pub lookback_days: u32,
    pub model: Model,
    /// K: conversion windows kept per person, the earliest first; at least 1.
    pub max_conversions: u32,
    pub value_buckets: ValueBuckets,
    /// The declared channels, in report order; other values are dropped.
    pub channels: Vec<String>,
    /// The declared campaigns, in report order; other values are dropped.
    pub campaigns: Vec<String>,
}

impl AttributionParams {
    /// A 7-day lookback, K = 3, the buckets of `value_clip` (whole CNY)
    /// and the generated channels and campaigns.
    pub fn new(period: Period, model: Model, value_clip: u64) -> AttributionParams {
        AttributionParams {
            period,
            lookback_days: 7,
            model,
            max_conversions: 3,
            value_buckets: ValueBuckets { clip: value_clip },
            channels: CHANNELS.iter().map(|c| (*c).to_owned()).collect(),
            campaigns: CAMPAIGNS.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    fn check(&self) -> Result<()> {
        self.period.check()?;
        ensure!(self.lookback_days >= 1, "lookback_days must be at least 1");
        ensure!(self.max_conversions >= 1, "max_conversions must be at least 1");
        if let Model::TimeDecay { half_life_days: 0 } = self.model {
            bail!("the time-decay half life must be at least 1 day");
        }
        self.value_buckets.check()?;
        for (what, names) in [("channels", &self.channels), ("campaigns", &self.campaigns)] {
            let distinct: HashSet<&String> = names.iter().collect();
            ensure!(
                !names.is_empty() && distinct.len() == names.len(),
                "declare at least one of the {what}, each once"
            );
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LiftParams {
    pub period: Period,
    /// K, as in [`AttributionParams::max_conversions`].
    pub max_conversions: u32,
    /// Each person's total value is clipped to this many CNY.
    pub value_clip: u64,
}

impl LiftParams {
    /// K = 3.
    pub fn new(period: Period, value_clip: u64) -> LiftParams {
        LiftParams {
            period,
            max_conversions: 3,
            value_clip,
        }
    }
}

/// Credit summed over elements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Credit {
    /// Credits in thousandths of a conversion.
    pub milli_conversions: u64,
    /// Credit times the element's bucket representative: thousandths of CNY.
    pub value: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelCredit {
    pub channel: String,
    pub credit: Credit,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellCredit {
    pub channel: String,
    pub campaign: String,
    pub credit: Credit,
}

/// What became of the conversion file's rows. A dropped row is counted once,
/// under the first of these reasons that applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConversionRows {
    pub rows: u64,
    pub invalid_id: u64,
    pub invalid_ts: u64,
    pub outside_period: u64,
    /// Kept rows whose value was missing, unparseable or negative (counted 0).
    pub bad_values: u64,
}

/// What became of the exposure file's rows, as [`ConversionRows`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExposureRows {
    pub rows: u64,
    pub invalid_id: u64,
    pub invalid_ts: u64,
    /// Channel or campaign not declared.
    pub unknown_label: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributionTable {
    pub model: Model,
    /// In declared channel order.
    pub by_channel: Vec<ChannelCredit>,
    /// Channel major, campaign minor, in declared orders.
    pub by_channel_campaign: Vec<CellCredit>,
    /// Conversion elements after the cap.
    pub elements: u64,
    pub attributed: u64,
    pub unattributed: u64,
    /// Elements left out by the cap K.
    pub capped: u64,
    pub conversion_rows: ConversionRows,
    pub exposure_rows: ExposureRows,
}

impl AttributionTable {
    pub fn channel(&self, channel: &str) -> Option<Credit> {
        self.by_channel
            .iter()
            .find(|c| c.channel == channel)
            .map(|c| c.credit)
    }
}

/// One campaign group's persons, converters and clipped value.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GroupOutcome {
    pub persons: u64,
    pub converters: u64,
    /// Whole CNY.
    pub value: u64,
    /// converters / persons; none without persons.
    pub rate: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LiftTable {
    pub test: GroupOutcome,
    pub control: GroupOutcome,
    /// rate(test) − rate(control).
    pub lift_abs: Option<f64>,
    /// lift_abs / rate(control); none when the control rate is 0.
    pub lift_rel: Option<f64>,
    pub conversion_rows: ConversionRows,
}

/// Per channel and per channel x campaign credits of `params.model`.
pub fn attribution(
    exposures: &Path,
    conversions: &Path,
    params: &AttributionParams,
) -> Result<AttributionTable> {
    params.check()?;
    let elements = conversion_elements(conversions, &params.period, params.max_conversions)?;
    let (touches, exposure_rows) = person_touches(exposures, params, &elements.by_person)?;
    let campaigns = params.campaigns.len();
    let mut by_channel = vec![Credit::default(); params.channels.len()];
    let mut cells = vec![Credit::default(); params.channels.len() * campaigns];
    let lookback = i64::from(params.lookback_days) * DAY;
    let (mut count, mut attributed) = (0, 0);
    for (id, person_elements) in &elements.by_person {
        let all = touches.get(id).map_or(&[][..], Vec::as_slice);
        for &(w, fen) in person_elements {
            count += 1;
            let start = params.period.window_start(w);
            let considered: Vec<&Touch> = all
                .iter()
                .filter(|t| start - lookback <= t.ts && t.ts < start)
                .collect();
            if considered.is_empty() {
                continue;
            }
            attributed += 1;
            let times: Vec<i64> = considered.iter().map(|t| t.ts).collect();
            let credits = reference_credits(params.model, start, &times)?;
            let representative = params.value_buckets.representative(fen);
            for (t, credit) in considered.iter().zip(credits) {
                add(&mut by_channel[t.channel], credit, representative)?;
                add(
                    &mut cells[t.channel * campaigns + t.campaign],
                    credit,
                    representative,
                )?;
            }
        }
    }
    // The sums so far weigh by representatives in tenths of a percent of
    // the clip; a value in thousandths of a CNY is that times clip / 1000.
    for credit in by_channel.iter_mut().chain(cells.iter_mut()) {
        credit.value = params.value_buckets.milli_cny(credit.value)?;
    }
    let by_channel_campaign = cells
        .into_iter()
        .enumerate()
        .map(|(i, credit)| CellCredit {
            channel: params.channels[i / campaigns].clone(),
            campaign: params.campaigns[i % campaigns].clone(),
            credit,
        })
        .collect();
    Ok(AttributionTable {
        model: params.model,
        by_channel: params
            .channels
            .iter()
            .zip(by_channel)
            .map(|(channel, credit)| ChannelCredit {
                channel: channel.clone(),
                credit,
            })
            .collect(),
        by_channel_campaign,
        elements: count,
        attributed,
        unattributed: count - attributed,
        capped: elements.capped,
        conversion_rows: elements.rows,
        exposure_rows,
    })
}

fn add(total: &mut Credit, credit: u32, representative: u64) -> Result<()> {
    let value = u64::from(credit).checked_mul(representative);
    match (
        total.milli_conversions.checked_add(u64::from(credit)),
        value.and_then(|v| total.value.checked_add(v)),
    ) {
        (Some(m), Some(v)) => {
            (total.milli_conversions, total.value) = (m, v);
            Ok(())
        }
        _ => bail!("a credit sum overflows 64 bits; lower the value clip"),
    }
}

/// Persons, converters and clipped value per campaign group, over the
/// partner's grouped persons who are also bank customers.
pub fn lift(
    groups: &Path,
    conversions: &Path,
    bank_customers: &Path,
    params: &LiftParams,
) -> Result<LiftTable> {
    params.period.check()?;
    ensure!(params.max_conversions >= 1, "max_conversions must be at least 1");
    let customers = normalized_ids(bank_customers, "phone", IdKind::Phone).with_context(|| {
        format!(
            "{} needs a header with the column phone (the bank's customers); check the file and its column names",
            bank_customers.display()
        )
    })?;
    let customers: HashSet<String> = customers
        .column("id")?
        .str()?
        .iter()
        .flatten()
        .map(str::to_owned)
        .collect();
    let group_of = person_groups(groups)?;
    let elements = conversion_elements(conversions, &params.period, params.max_conversions)?;
    let (mut test, mut control) = (GroupOutcome::default(), GroupOutcome::default());
    let clip = params.value_clip.saturating_mul(100);
    for (id, group) in &group_of {
        let Some(is_test) = *group else { continue };
        if !customers.contains(id) {
            continue;
        }
        let outcome = if is_test { &mut test } else { &mut control };
        outcome.persons += 1;
        if let Some(person_elements) = elements.by_person.get(id) {
            outcome.converters += 1;
            let total = person_elements
                .iter()
                .fold(0u64, |sum, &(_, fen)| sum.saturating_add(fen));
            let clipped = total.min(clip);
            // Whole CNY, half a yuan rounding up.
            let yuan = clipped / 100 + u64::from(clipped % 100 >= 50);
            outcome.value = outcome
                .value
                .checked_add(yuan)
                .context("a group's value overflows 64 bits; lower value_clip")?;
        }
    }
    for outcome in [&mut test, &mut control] {
        outcome.rate = (outcome.persons > 0).then(|| outcome.converters as f64 / outcome.persons as f64);
    }
    let lift_abs = test.rate.zip(control.rate).map(|(t, c)| t - c);
    let lift_rel = lift_abs
        .zip(control.rate.filter(|&c| c > 0.0))
        .map(|(l, c)| l / c);
    Ok(LiftTable {
        test,
        control,
        lift_abs,
        lift_rel,
        conversion_rows: elements.rows,
    })
}

/// Each person's group from their first row with a valid identifier: true
/// for `test`, false for `control`, none for anything else.
fn person_groups(path: &Path) -> Result<HashMap<String, Option<bool>>> {
    let text = read_columns(path, &["mobile", "campaign_group"])?;
    let ids = normalize(text.column("mobile")?.str()?, IdKind::Phone, "id");
    let mut groups = HashMap::new();
    for (id, group) in ids.iter().zip(text.column("campaign_group")?.str()?.iter()) {
        let Some(id) = id else { continue };
        groups.entry(id.to_owned()).or_insert(match group.map(str::trim) {
            Some("test") => Some(true),
            Some("control") => Some(false),
            _ => None,
        });
    }
    Ok(groups)
}

/// Conversion elements by person: (window, value in fen), earliest window
/// first, at most K of them.
struct Elements {
    by_person: HashMap<String, Vec<(i64, u64)>>,
    rows: ConversionRows,
    capped: u64,
}

fn conversion_elements(path: &Path, period: &Period, max_conversions: u32) -> Result<Elements> {
    let text = read_columns(path, &["phone", "ts", "value"])?;
    let ids = normalize(text.column("phone")?.str()?, IdKind::Phone, "id");
    let times = text.column("ts")?.str()?;
    let values = text.column("value")?.str()?;
    let mut rows = ConversionRows::default();
    let mut windows: HashMap<String, HashMap<i64, u64>> = HashMap::new();
    for ((id, ts), value) in ids.iter().zip(times.iter()).zip(values.iter()) {
        rows.rows += 1;
        let Some(id) = id else {
            rows.invalid_id += 1;
            continue;
        };
        let Some(t) = ts.and_then(timestamp::parse) else {
            rows.invalid_ts += 1;
            continue;
        };
        let Some(w) = period.window_of(t) else {
            rows.outside_period += 1;
            continue;
        };
        let fen = value.and_then(jointly_protocol::ids::amount::parse);
        rows.bad_values += u64::from(fen.is_none());
        let sum = windows.entry(id.to_owned()).or_default().entry(w).or_insert(0);
        *sum = sum.saturating_add(fen.unwrap_or(0));
    }
    let mut capped = 0;
    let by_person = windows
        .into_iter()
        .map(|(id, person_windows)| {
            let mut list: Vec<(i64, u64)> = person_windows.into_iter().collect();
            list.sort_unstable();
            capped += list.len().saturating_sub(max_conversions as usize) as u64;
            list.truncate(max_conversions as usize);
            (id, list)
        })
        .collect();
    Ok(Elements {
        by_person,
        rows,
        capped,
    })
}

/// One exposure of a converting person, labels as declared indices.
struct Touch {
    ts: i64,
    channel: usize,
    campaign: usize,
}

/// The exposures of the persons in `wanted`, each person's in attribution
/// order: time, then channel name, then campaign name.
fn person_touches(
    path: &Path,
    params: &AttributionParams,
    wanted: &HashMap<String, Vec<(i64, u64)>>,
) -> Result<(HashMap<String, Vec<Touch>>, ExposureRows)> {
    let text = read_columns(path, &["mobile", "channel", "campaign", "ts"])?;
    let ids = normalize(text.column("mobile")?.str()?, IdKind::Phone, "id");
    let channels = text.column("channel")?.str()?;
    let campaigns = text.column("campaign")?.str()?;
    let times = text.column("ts")?.str()?;
    let find = |names: &[String], v: Option<&str>| v.and_then(|v| names.iter().position(|n| n == v.trim()));
    let mut rows = ExposureRows::default();
    let mut touches: HashMap<String, Vec<Touch>> = HashMap::new();
    for (((id, channel), campaign), ts) in ids
        .iter()
        .zip(channels.iter())
        .zip(campaigns.iter())
        .zip(times.iter())
    {
        rows.rows += 1;
        let Some(id) = id else {
            rows.invalid_id += 1;
            continue;
        };
        let Some(ts) = ts.and_then(timestamp::parse) else {
            rows.invalid_ts += 1;
            continue;
        };
        let (Some(channel), Some(campaign)) =
            (find(&params.channels, channel), find(&params.campaigns, campaign))
        else {
            rows.unknown_label += 1;
            continue;
        };
        if wanted.contains_key(id) {
            touches.entry(id.to_owned()).or_default().push(Touch {
                ts,
                channel,
                campaign,
            });
        }
    }
    for list in touches.values_mut() {
        list.sort_by(|a, b| {
            (a.ts, &params.channels[a.channel], &params.campaigns[a.campaign]).cmp(&(
                b.ts,
                &params.channels[b.channel],
                &params.campaigns[b.campaign],
            ))
        });
    }
    Ok((touches, rows))
}

/// An element's credits as ATTRIBUTION.md states them, one per touch;
/// `touches` are times in attribution order, all before `window_start`.
fn reference_credits(model: Model, window_start: i64, touches: &[i64]) -> Result<Vec<u32>> {
    let n = touches.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    // Each touch's weight, over the sum of all of them.
    let weights: Vec<u128> = match model {
        Model::LastTouch => (0..n).map(|i| u128::from(i == n - 1)).collect(),
        Model::FirstTouch => (0..n).map(|i| u128::from(i == 0)).collect(),
        Model::Linear => vec![1; n],
        Model::PositionBased if n <= 2 => vec![1; n],
        // 0.4 = 2(n−2) / 5(n−2) at both ends, 0.2/(n−2) = 1 / 5(n−2) between.
        Model::PositionBased => (0..n)
            .map(|i| {
                if i == 0 || i == n - 1 {
                    2 * (n as u128 - 2)
                } else {
                    1
                }
            })
            .collect(),
        Model::TimeDecay { half_life_days } => {
            let half_life = f64::from(half_life_days) * DAY as f64;
            // In attribution order the newest touch comes last.
            let newest_age = window_start - touches[n - 1];
            touches
                .iter()
                .map(|&t| {
                    let extra_age = (window_start - t - newest_age) as f64;
                    ((-extra_age / half_life).exp2() * 4_294_967_296.0).round() as u128
                })
                .collect()
        }
        other => bail!("the plaintext reference has no rule for the model {other}"),
    };
    let total: u128 = weights.iter().sum();
    let mut credits: Vec<u32> = weights.iter().map(|w| (w * 1000 / total) as u32).collect();
    let remainders: Vec<u128> = weights.iter().map(|w| w * 1000 % total).collect();
    let mut taken = vec![false; n];
    for _ in credits.iter().sum::<u32>()..1000 {
        // The largest remainder not yet served; `>` keeps the earliest of equals.
        let mut best: Option<usize> = None;
        for i in (0..n).filter(|&i| !taken[i]) {
            if best.is_none_or(|b| remainders[i] > remainders[b]) {
                best = Some(i);
            }
        }
        let best = best.context("internal error: more leftover credit units than touches")?;
        taken[best] = true;
        credits[best] += 1;
    }
    Ok(credits)
}

/// The named columns as text, with an error that says which file needs them.
fn read_columns(path: &Path, columns: &[&str]) -> Result<DataFrame> {
    read_text(path, columns).with_context(|| {
        format!(
            "{} needs a header with the columns {}; check the file and its column names",
            path.display(),
            columns.join(", ")
        )
    })
}

#[cfg(test)]
#[path = "plaintext_attribution_tests.rs"]
mod tests;
