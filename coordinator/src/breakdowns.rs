//! Breakdowns at the coordinator: checks a query against the two datasets'
//! advertised schemas, derives the plan the nodes will run (the same
//! `BreakdownPlan` they derive), and turns the decrypted lanes into labelled,
//! thresholded cells.

use jointly_protocol::{
    queries::breakdown_plan::{BreakdownPlan, Side, SideSchema},
    wire::{
        self, BreakdownCell, BreakdownQuery, BreakdownResult, ColumnInfo, DatasetInfo, Filter, ReleasedCount,
        ReleasedSum,
    },
};

use crate::error::{PlanError, ReleaseError};

/// Everything needed to read a breakdown's release.
#[derive(Clone, Debug)]
pub struct BreakdownJob {
    pub plan: BreakdownPlan,
    /// Per group-by column of each side, its domain (declared values, then
    /// "(other)").
    pub left_domains: Vec<Vec<String>>,
    pub right_domains: Vec<Vec<String>>,
    pub left_group_by: Vec<String>,
    pub right_group_by: Vec<String>,
    /// Per query measure: its side, its index among that side's measures,
    /// and its display name.
    pub measures: Vec<(Side, usize, String)>,
}

/// A measure's bound as the nodes compute it (see the node's `ColumnConfig::bound`).
pub fn clip_bound(lo: f64, hi: f64) -> u64 {
    lo.abs().max(hi.abs()).ceil() as u64
}

fn column<'a>(
    d: &'a DatasetInfo,
    name: &str,
    use_: &'static str,
    side: Side,
) -> Result<&'a ColumnInfo, PlanError> {
    let c = d
        .columns
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| PlanError::NoColumn {
            side,
            dataset: d.name.clone(),
            column: name.to_string(),
            known: d
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    if !c.uses.iter().any(|u| u == use_) {
        return Err(PlanError::NotAllowed {
            side,
            dataset: d.name.clone(),
            column: name.to_string(),
            use_,
        });
    }
    Ok(c)
}

/// Checks filters' columns; the node checks again, this only fails early.
pub fn check_filters(d: &DatasetInfo, filters: &[Filter], side: Side) -> Result<(), PlanError> {
    for f in filters {
        column(d, &f.column, "filter", side)?;
        if f.test.is_none() {
            return Err(PlanError::FilterWithoutTest {
                side,
                column: f.column.clone(),
            });
        }
    }
    Ok(())
}

pub fn plan(q: &BreakdownQuery, left: &DatasetInfo, right: &DatasetInfo) -> Result<BreakdownJob, PlanError> {
    check_filters(left, &q.left_filters, Side::Left)?;
    check_filters(right, &q.right_filters, Side::Right)?;
    let domains = |d: &DatasetInfo, group_by: &[String], side: Side| {
        group_by
            .iter()
            .map(|g| {
                let c = column(d, g, "group", side)?;
                if c.values.is_empty() {
                    return Err(PlanError::NoGroupValues {
                        side,
                        column: g.clone(),
                    });
                }
                Ok(c.values.clone())
            })
            .collect::<Result<Vec<_>, PlanError>>()
    };
    let left_domains = domains(left, &q.left_group_by, Side::Left)?;
    let right_domains = domains(right, &q.right_group_by, Side::Right)?;
    let mut bounds = (Vec::new(), Vec::new());
    let mut measures = Vec::new();
    for m in &q.measures {
        let (side, d, list) = match wire::Side::try_from(m.side) {
            Ok(wire::Side::Left) => (Side::Left, left, &mut bounds.0),
            Ok(wire::Side::Right) => (Side::Right, right, &mut bounds.1),
            _ => {
                return Err(PlanError::MeasureWithoutSide {
                    column: m.column.clone(),
                });
            }
        };
        let c = column(d, &m.column, "measure", side)?;
        let (Some(lo), Some(hi)) = (c.clip_min, c.clip_max) else {
            return Err(PlanError::NoClipRange {
                side,
                column: m.column.clone(),
            });
        };
        measures.push((side, list.len(), format!("{}.{}", side.label(), m.column)));
        list.push(clip_bound(lo, hi));
    }
    // Saturating: a product past usize fails the plan's check below instead
    // of wrapping round to a plan of few cells.
    let schema = |domains: &[Vec<String>], measure_bounds: Vec<u64>| SideSchema {
        groups: domains.iter().map(Vec::len).fold(1usize, usize::saturating_mul),
        measure_bounds,
    };
    let plan = BreakdownPlan::new(schema(&left_domains, bounds.0), schema(&right_domains, bounds.1))
        .map_err(PlanError::Breakdown)?;
    plan.check().map_err(PlanError::TooLarge)?;
    Ok(BreakdownJob {
        plan,
        left_domains,
        right_domains,
        left_group_by: q.left_group_by.clone(),
        right_group_by: q.right_group_by.clone(),
        measures,
    })
}

/// The labels of group `index` of a side: mixed radix over its columns'
/// domains, the first column most significant.
fn labels(domains: &[Vec<String>], mut index: usize) -> Vec<String> {
    let mut out = vec![String::new(); domains.len()];
    for (slot, domain) in out.iter_mut().zip(domains).rev() {
        *slot = domain[index % domain.len()].clone();
        index /= domain.len();
    }
    out
}

impl BreakdownJob {
    /// Reads every cell from the decrypted lanes (`values[lane]`, cell-major
    /// as `open_lane` returns them), applying `threshold` to counts: a
    /// withheld count withholds its cell's sums and means too.
    pub fn cells(&self, values: &[Vec<i64>], threshold: u64) -> Result<BreakdownResult, ReleaseError> {
        let lanes = &self.plan.lanes;
        if values.len() != lanes.len()
            || values
                .iter()
                .zip(lanes)
                .any(|(v, l)| v.len() != l.shape.released_values())
        {
            return Err(ReleaseError::DoesNotFitPlan);
        }
        let value = |lane: usize, left: usize, right: usize, stat: usize| {
            let l = &lanes[lane];
            let (batch, group) = match l.receiver {
                Side::Left => (left, right),
                Side::Right => (right, left),
            };
            values[lane][batch * l.shape.slots() + l.shape.payload.slot(stat, group)]
        };
        let threshold = i64::try_from(threshold).unwrap_or(i64::MAX);
        let mut cells = Vec::with_capacity(self.plan.left.groups * self.plan.right.groups);
        for l in 0..self.plan.left.groups {
            for r in 0..self.plan.right.groups {
                let count = value(0, l, r, 0);
                let below = count < threshold;
                let sums = self
                    .measures
                    .iter()
                    .map(|&(side, k, _)| {
                        let sum = if side == lanes[0].sender() {
                            value(0, l, r, 1 + k)
                        } else {
                            value(1, l, r, k)
                        };
                        if below {
                            ReleasedSum {
                                sum: 0,
                                mean: 0.0,
                                below_threshold: true,
                            }
                        } else {
                            ReleasedSum {
                                sum,
                                mean: if count > 0 { sum as f64 / count as f64 } else { 0.0 },
                                below_threshold: false,
                            }
                        }
                    })
                    .collect();
                cells.push(BreakdownCell {
                    left_group: labels(&self.left_domains, l),
                    right_group: labels(&self.right_domains, r),
                    count: Some(ReleasedCount {
                        value: if below { 0 } else { count },
                        below_threshold: below,
                    }),
                    sums,
                });
            }
        }
        Ok(BreakdownResult {
            left_group_by: self.left_group_by.clone(),
            right_group_by: self.right_group_by.clone(),
            measures: self.measures.iter().map(|m| m.2.clone()).collect(),
            cells,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jointly_protocol::wire::{DatasetRef, Measure};

    fn info(name: &str, columns: Vec<ColumnInfo>) -> DatasetInfo {
        DatasetInfo {
            name: name.into(),
            id_kind: "phone".into(),
            rows_rounded: 1000,
            columns,
            ..Default::default()
        }
    }

    fn group(name: &str, values: &[&str]) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            uses: vec!["group".into(), "filter".into()],
            values: values
                .iter()
                .map(|v| v.to_string())
                .chain(["(other)".into()])
                .collect(),
            clip_min: None,
            clip_max: None,
        }
    }

    fn measure(name: &str, lo: f64, hi: f64) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            uses: vec!["measure".into()],
            values: vec![],
            clip_min: Some(lo),
            clip_max: Some(hi),
        }
    }

    fn query(measures: &[(i32, &str)]) -> BreakdownQuery {
        BreakdownQuery {
            left: Some(DatasetRef::default()),
            right: Some(DatasetRef::default()),
            left_group_by: vec!["tier".into()],
            right_group_by: vec!["interest".into(), "band".into()],
            measures: measures
                .iter()
                .map(|(side, c)| Measure {
                    side: *side,
                    column: c.to_string(),
                })
                .collect(),
            left_filters: vec![],
            right_filters: vec![],
        }
    }

    #[test]
    fn cells_are_read_from_both_lanes_and_thresholded() {
        let left = info(
            "customers",
            vec![group("tier", &["T1"]), measure("deposit", 0.0, 99.5)],
        );
        let right = info(
            "users",
            vec![
                group("interest", &["travel"]),
                group("band", &["low", "high"]),
                measure("spend", -5.0, 3.0),
            ],
        );
        let job = plan(&query(&[(2, "spend"), (1, "deposit")]), &left, &right).unwrap();
        assert_eq!((job.plan.left.groups, job.plan.right.groups), (2, 6));
        assert_eq!(job.plan.left.measure_bounds, vec![100]);
        assert_eq!(job.plan.lanes.len(), 2);
        // Lane 0: left receives; 6 groups × (count, spend) slots per batch.
        let mut lane0 = vec![0i64; 2 * 12];
        let mut lane1 = vec![0i64; 6 * 2];
        // Cell (left 1, right 4): count 20, spend 7, deposit 300.
        lane0[12 + 4] = 20;
        lane0[12 + 6 + 4] = 7;
        lane1[4 * 2 + 1] = 300;
        // Cell (left 0, right 0): count 3, below a threshold of 10.
        lane0[0] = 3;
        lane0[6] = 999;
        let r = job.cells(&[lane0, lane1], 10).unwrap();
        assert_eq!(r.cells.len(), 12);
        assert_eq!(r.measures, vec!["right.spend", "left.deposit"]);
        let c = &r.cells[6 + 4];
        assert_eq!(c.left_group, vec!["(other)"]);
        assert_eq!(c.right_group, vec!["(other)", "high"]);
        assert_eq!(c.count.unwrap().value, 20);
        assert_eq!((c.sums[0].sum, c.sums[1].sum, c.sums[1].mean), (7, 300, 15.0));
        let c = &r.cells[0];
        assert_eq!(
            (c.left_group[0].as_str(), c.right_group[1].as_str()),
            ("T1", "low")
        );
        assert!(c.count.unwrap().below_threshold && c.sums.iter().all(|s| s.below_threshold && s.sum == 0));
    }

    #[test]
    fn schemas_refuse_what_the_policy_does_not_allow() {
        let left = info(
            "customers",
            vec![group("tier", &["T1"]), measure("deposit", 0.0, 1.0)],
        );
        let right = info("users", vec![group("interest", &["a"]), group("band", &["b"])]);
        let e = plan(&query(&[(2, "spend")]), &left, &right).unwrap_err();
        assert!(
            matches!(&e, PlanError::NoColumn { side: Side::Right, column, .. } if column == "spend"),
            "{e:?}"
        );
        assert!(e.to_string().contains("no column 'spend'"), "{e}");
        let e = plan(&query(&[(1, "tier")]), &left, &right).unwrap_err();
        assert!(
            matches!(&e, PlanError::NotAllowed { use_: "measure", column, .. } if column == "tier"),
            "{e:?}"
        );
        assert!(e.to_string().contains("not allowed as a measure"), "{e}");
        let mut q = query(&[]);
        q.left_filters.push(Filter {
            column: "deposit".into(),
            test: Some(wire::filter::Test::Equals("x".into())),
        });
        let e = plan(&q, &left, &right).unwrap_err();
        assert!(
            matches!(
                &e,
                PlanError::NotAllowed {
                    side: Side::Left,
                    use_: "filter",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("not allowed as a filter"), "{e}");
    }

    #[test]
    fn a_group_product_past_the_machine_word_is_refused_not_wrapped() {
        // Twelve columns of 64 labels (65 with "(other)") have 65^12 > 2^64
        // cells: the product saturates and the plan's size check refuses it.
        let labels: Vec<String> = (0..64).map(|i| format!("v{i}")).collect();
        let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
        let columns: Vec<ColumnInfo> = (0..12).map(|i| group(&format!("g{i}"), &refs)).collect();
        let left = info("customers", columns);
        let right = info("users", vec![group("interest", &["a"])]);
        let mut q = query(&[]);
        q.left_group_by = (0..12).map(|i| format!("g{i}")).collect();
        q.right_group_by = vec!["interest".into()];
        let e = plan(&q, &left, &right).unwrap_err();
        assert!(matches!(e, PlanError::TooLarge(_)), "{e:?}");
        assert!(e.to_string().contains("group by fewer columns"), "{e}");
    }
}
