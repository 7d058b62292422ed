//! Attribution and lift at the coordinator: checks a query against the
//! advertised event tables and columns, derives the plan the nodes derive,
//! and turns the opened lanes into the planner's tables with their noise.

use jointly_protocol::{
    queries::attribution::{self, Plan},
    queries::attribution_query::{attribution_plan, attribution_stddevs, lift_plan, window_label},
    queries::lift::{self, GroupCounts, LiftPlan, Noise},
    wire::{
        self, AttributionResult, AttributionRow, DatasetInfo, LiftArm, LiftResult, NodeTerms, ReleasedCount,
    },
};

use crate::error::{PlanError, ReleaseError};

/// Everything needed to read an attribution's release.
#[derive(Clone, Debug)]
pub struct AttributionJob {
    pub plan: Plan,
    pub channels: Vec<String>,
    pub campaigns: Vec<String>,
}

/// Everything needed to read a lift's release.
#[derive(Clone, Debug)]
pub struct LiftJob {
    pub plan: LiftPlan,
}

fn expect_kind(d: &DatasetInfo, kind: &'static str, node: &str) -> Result<(), PlanError> {
    if d.kind != kind {
        let held = if d.kind.is_empty() {
            "table"
        } else {
            d.kind.as_str()
        };
        return Err(PlanError::WrongKind {
            node: node.to_string(),
            dataset: d.name.clone(),
            held: held.to_string(),
            needed: kind,
        });
    }
    Ok(())
}

/// `conversions` and `exposures` are the two datasets the query names, as
/// their nodes advertise them.
pub fn plan_attribution(
    q: &wire::AttributionQuery,
    conversions: (&str, &DatasetInfo),
    exposures: (&str, &DatasetInfo),
) -> Result<AttributionJob, PlanError> {
    expect_kind(conversions.1, "conversions", conversions.0)?;
    expect_kind(exposures.1, "exposures", exposures.0)?;
    let e = exposures.1;
    let plan = attribution_plan(q, e.channels.len(), e.campaigns.len())?;
    Ok(AttributionJob {
        plan,
        channels: e.channels.clone(),
        campaigns: e.campaigns.clone(),
    })
}

/// `customers` (with `conversions` on the same node) and `groups`.
pub fn plan_lift(
    q: &wire::LiftQuery,
    customers: (&str, &DatasetInfo),
    conversions: Option<&DatasetInfo>,
    groups: (&str, &DatasetInfo),
) -> Result<LiftJob, PlanError> {
    if !matches!(customers.1.kind.as_str(), "" | "table") {
        return Err(PlanError::NotCustomers {
            node: customers.0.to_string(),
            dataset: customers.1.name.clone(),
            held: customers.1.kind.clone(),
        });
    }
    let conversions = conversions.ok_or_else(|| PlanError::NoEventTable {
        node: customers.0.to_string(),
        table: q.conversions.clone(),
    })?;
    expect_kind(conversions, "conversions", customers.0)?;
    let (node, g) = groups;
    let column = g
        .columns
        .iter()
        .find(|c| c.name == q.group_column)
        .ok_or_else(|| PlanError::NoSplitColumn {
            node: node.to_string(),
            dataset: g.name.clone(),
            column: q.group_column.clone(),
        })?;
    if !column.uses.iter().any(|u| u == "group") {
        return Err(PlanError::NotAGroup {
            node: node.to_string(),
            dataset: g.name.clone(),
            column: q.group_column.clone(),
        });
    }
    let declared = &column.values[..column.values.len().saturating_sub(1)];
    for v in [&q.test_value, &q.control_value] {
        if !declared.contains(v) {
            return Err(PlanError::Undeclared {
                value: v.clone(),
                node: node.to_string(),
                dataset: g.name.clone(),
                column: q.group_column.clone(),
                declared: declared.join(", "),
            });
        }
    }
    if q.test_value == q.control_value {
        return Err(PlanError::SameArms);
    }
    Ok(LiftJob { plan: lift_plan(q)? })
}

/// The combined noise of both nodes' shares, per unit scale.
fn sigmas(terms: &[NodeTerms; 2]) -> f64 {
    terms.iter().map(|t| t.sigma * t.sigma).sum::<f64>().sqrt()
}

fn released(value: i64, threshold: i64) -> ReleasedCount {
    let below = value < threshold;
    ReleasedCount {
        value: if below { 0 } else { value },
        below_threshold: below,
    }
}

/// Two-sided 95% normal quantile.
const Z95: f64 = 1.959_963_985;

/// Whether a released number's 95% interval is wider than the number.
fn not_significant(value: f64, stddev: f64) -> bool {
    stddev > 0.0 && 2.0 * Z95 * stddev > value
}

impl AttributionJob {
    /// The table from the opened pooled release and the bank's noised
    /// conversion count; `terms[0]` is the bank's.
    ///
    /// Post-processing, which costs no privacy: no row has negative credit
    /// or more value than its credited conversions at the clip; the
    /// attributed total is the rows' sum; the conversions are at least the
    /// attributed, so attributed + unattributed = conversions.
    pub fn result(
        &self,
        opened: &[i64],
        conversions: i64,
        terms: &[NodeTerms; 2],
        threshold: u64,
    ) -> Result<AttributionResult, ReleaseError> {
        let plan = &self.plan;
        let totals = attribution::combine(plan, opened).map_err(ReleaseError::Read)?;
        let threshold = i64::try_from(threshold).unwrap_or(i64::MAX);
        let sigma = sigmas(terms);
        let (row_sd, value_sd, _) = attribution_stddevs(plan, sigma);
        let clip = i64::try_from(plan.buckets.clip).unwrap_or(i64::MAX);
        let clamped: Vec<(i64, i64)> = totals
            .milli_conversions
            .iter()
            .zip(&totals.value)
            .map(|(&milli, &value)| {
                let milli = milli.max(0);
                (milli, value.clamp(0, milli.saturating_mul(clip)))
            })
            .collect();
        let rows = clamped
            .iter()
            .enumerate()
            .map(|(slot, &(milli, value))| {
                let (channel, campaign) = if plan.by_campaign {
                    (
                        &self.channels[slot / plan.campaigns],
                        self.campaigns[slot % plan.campaigns].clone(),
                    )
                } else {
                    (&self.channels[slot], String::new())
                };
                let below = milli.div_euclid(1000) < threshold;
                AttributionRow {
                    channel: channel.clone(),
                    campaign,
                    milli_conversions: if below { 0 } else { milli },
                    milli_value: if below { 0 } else { value },
                    below_threshold: below,
                    conversions_not_significant: !below && not_significant(milli as f64 / 1000.0, row_sd),
                    value_not_significant: !below && not_significant(value as f64 / 1000.0, value_sd),
                }
            })
            .collect();
        let milli_attributed: i64 = clamped.iter().map(|r| r.0).sum();
        let attributed = (milli_attributed + 500).div_euclid(1000);
        let conversions = conversions.max(attributed);
        Ok(AttributionResult {
            model: plan.model.to_string(),
            lookback_days: plan.lookback_days,
            window: window_label(plan.period.window).into(),
            windows: plan.windows() as u32,
            rows,
            conversions: Some(released(conversions, threshold)),
            attributed: Some(released(attributed, threshold)),
            unattributed: Some(released(conversions - attributed, threshold)),
            row_conversions_stddev: row_sd,
            row_value_stddev: value_sd,
            conversions_stddev: terms[0].sigma * f64::from(plan.period.max_conversions),
        })
    }
}

impl LiftJob {
    /// The arms and the lift from the opened lane; an arm whose persons fall
    /// below the threshold is withheld whole.
    pub fn result(
        &self,
        opened: &[i64],
        terms: &[NodeTerms; 2],
        threshold: u64,
    ) -> Result<LiftResult, ReleaseError> {
        let [test, control] = lift::groups(opened).map_err(ReleaseError::Read)?;
        let threshold = i64::try_from(threshold).unwrap_or(i64::MAX);
        let kept = |g: GroupCounts| {
            if g.persons < threshold {
                GroupCounts::default()
            } else {
                g
            }
        };
        let sigma = sigmas(terms);
        let noise = Noise {
            count: sigma,
            value: sigma * self.plan.value_clip as f64,
        };
        let estimate = lift::estimate([kept(test), kept(control)], noise);
        let interval = |i: lift::Interval| wire::Interval {
            estimate: i.estimate,
            low: i.low,
            high: i.high,
        };
        let arm = |raw: GroupCounts, e: lift::GroupEstimate| {
            let below = raw.persons < threshold;
            let withheld = ReleasedCount {
                value: 0,
                below_threshold: true,
            };
            LiftArm {
                persons: Some(released(raw.persons, threshold)),
                converters: Some(if below {
                    withheld
                } else {
                    ReleasedCount {
                        value: raw.converters,
                        below_threshold: false,
                    }
                }),
                value: if below { 0 } else { raw.value },
                rate: e.rate.map(interval),
                value_per_person: e.value_per_person.map(interval),
            }
        };
        Ok(LiftResult {
            test: Some(arm(test, estimate.test)),
            control: Some(arm(control, estimate.control)),
            absolute: estimate.absolute.map(interval),
            relative: estimate.relative.map(interval),
            count_stddev: noise.count,
            value_stddev: noise.value,
        })
    }
}

#[cfg(test)]
mod tests {
    use jointly_protocol::wire::{ColumnInfo, ConversionPeriod, ConversionWindow, LiftQuery};

    use super::*;

    fn terms(sigma: f64) -> [NodeTerms; 2] {
        let t = |node: &str| NodeTerms {
            node: node.into(),
            sigma,
            delta: 1e-6,
            min_aggregation: 10,
        };
        [t("bank"), t("partner")]
    }

    fn period() -> Option<ConversionPeriod> {
        Some(ConversionPeriod {
            start: 0,
            end: 2 * 86_400,
            window: ConversionWindow::Day.into(),
            max_conversions: 2,
        })
    }

    fn exposures() -> DatasetInfo {
        DatasetInfo {
            name: "exposures".into(),
            id_kind: "phone".into(),
            kind: "exposures".into(),
            channels: vec!["sms".into(), "app".into()],
            campaigns: vec!["spring".into()],
            ..Default::default()
        }
    }

    fn conversions() -> DatasetInfo {
        DatasetInfo {
            name: "conversions".into(),
            id_kind: "phone".into(),
            kind: "conversions".into(),
            ..Default::default()
        }
    }

    #[test]
    fn attribution_rows_are_labelled_summed_and_thresholded() {
        let q = wire::AttributionQuery {
            model: wire::AttributionModel::Linear.into(),
            lookback_days: 7,
            period: period(),
            by_campaign: false,
            value_clip: 1_000,
            ..Default::default()
        };
        let job = plan_attribution(&q, ("bank", &conversions()), ("partner", &exposures())).expect("plan");
        let e = plan_attribution(&q, ("bank", &exposures()), ("partner", &exposures())).unwrap_err();
        assert!(
            matches!(&e, PlanError::WrongKind { node, needed: "conversions", .. } if node == "bank"),
            "{e:?}"
        );
        assert!(e.to_string().contains("needs conversions"), "{e}");
        // The pooled release: credits per slot (sms, app), then credits x
        // representative per mille of the 1,000 CNY clip: 30 elements at
        // 75 per mille (75 CNY) split 20/10 between sms and app, 5 at 0 CNY
        // all sms.
        let pooled = [25_000, 10_000, 20_000 * 75, 10_000 * 75];
        let r = job.result(&pooled, 40, &terms(0.0), 10).expect("result");
        assert_eq!(r.rows.len(), 2);
        assert_eq!(
            (r.rows[0].channel.as_str(), r.rows[0].milli_conversions),
            ("sms", 25_000)
        );
        assert_eq!(r.rows[0].milli_value, 20_000 * 75);
        assert_eq!(
            (r.rows[1].milli_conversions, r.rows[1].milli_value),
            (10_000, 10_000 * 75)
        );
        assert!(r.rows.iter().all(|row| !row.conversions_not_significant));
        assert_eq!(r.attributed.expect("attributed").value, 35);
        let unattributed = r.unattributed.expect("unattributed");
        assert!(unattributed.below_threshold && unattributed.value == 0);
        assert_eq!(r.windows, 2);
        let r = job.result(&[0; 4], 40, &terms(0.0), 1).expect("r");
        assert!(r.rows.iter().all(|row| row.below_threshold));
        assert!(matches!(
            job.result(&[0; 2], 40, &terms(0.0), 1),
            Err(ReleaseError::Read(_))
        ));
        // Noise: negative credit is clamped to 0, value to the clip times
        // the credit; the conversions are at least the attributed.
        let noisy = job
            .result(&[-3_000, 9_000, 5_000, 9_000 * 2_000], 4, &terms(3.0), 1)
            .expect("r");
        assert_eq!(noisy.rows[0].milli_conversions, 0);
        assert_eq!(noisy.rows[1].milli_value, 9_000 * 1_000);
        assert!(noisy.rows[1].conversions_not_significant);
        let count = |c: Option<ReleasedCount>| c.expect("count").value;
        assert_eq!(count(noisy.attributed), 9);
        assert_eq!(count(noisy.conversions), 9);
        assert_eq!(count(noisy.unattributed), 0);
        assert!(noisy.row_conversions_stddev > 4.0 && noisy.conversions_stddev == 6.0);
        assert_eq!(noisy.row_value_stddev, noisy.row_conversions_stddev * 1_000.0);
    }

    #[test]
    fn lift_arms_and_refusals() {
        let groups = DatasetInfo {
            name: "groups".into(),
            id_kind: "phone".into(),
            kind: "table".into(),
            columns: vec![ColumnInfo {
                name: "campaign_group".into(),
                uses: vec!["group".into()],
                values: vec!["test".into(), "control".into(), "(other)".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let customers = DatasetInfo {
            name: "customers".into(),
            kind: "table".into(),
            ..Default::default()
        };
        let q = LiftQuery {
            conversions: "conversions".into(),
            group_column: "campaign_group".into(),
            test_value: "test".into(),
            control_value: "control".into(),
            period: period(),
            value_clip: 1_000,
            ..Default::default()
        };
        let conv = conversions();
        let job = plan_lift(&q, ("bank", &customers), Some(&conv), ("partner", &groups)).expect("plan");
        let bad = LiftQuery {
            control_value: "(other)".into(),
            ..q.clone()
        };
        let e = plan_lift(&bad, ("bank", &customers), Some(&conv), ("partner", &groups)).unwrap_err();
        assert!(
            matches!(&e, PlanError::Undeclared { value, .. } if value == "(other)"),
            "{e:?}"
        );
        assert!(e.to_string().contains("not a declared value"), "{e}");
        assert!(matches!(
            plan_lift(&q, ("bank", &customers), None, ("partner", &groups)),
            Err(PlanError::NoEventTable { .. })
        ));
        let r = job
            .result(&[400, 40, 4_000, 5, 1, 10], &terms(0.0), 10)
            .expect("lift");
        let test = r.test.expect("test");
        assert_eq!(
            (test.persons.expect("n").value, test.converters.expect("c").value),
            (400, 40)
        );
        assert!((test.rate.expect("rate").estimate - 0.1).abs() < 1e-12);
        let control = r.control.expect("control");
        assert!(control.persons.expect("n").below_threshold && control.rate.is_none());
        assert!(r.absolute.is_none() && r.relative.is_none());
    }
}
