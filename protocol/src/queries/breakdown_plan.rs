//! How a breakdown query maps onto lanes, slots and cells. Both nodes and the
//! coordinator derive the same plan from the query and the two sides'
//! schemas, so the coordinator can read the cells the nodes release.
//!
//! Only a lane's sender contributes measures (PROTOCOLS.md B: "measures of R
//! are summed by running the query with the roles swapped"). Lane 0 carries
//! the counts; its sender is the right side unless only the left side has
//! measures. Lane 1 exists when lane 0's receiver has measures too: the same
//! cells, roles swapped, measures only.

use crate::{crypto::elgamal::OneHot, error::ProtocolError, protocols::breakdown::LaneShape};

/// Largest decrypted value the release step searches for (both signs).
pub const MAX_ABS_VALUE: u64 = 1 << 42;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }
}

/// Largest possible sum of one measure the plan admits: a quarter of the
/// decryptable range is left for the noise.
const SUM_LIMIT: u64 = MAX_ABS_VALUE / 4 * 3;

/// What a plan needs of one side: its number of groups (the product of its
/// group-by columns' domain sizes) and, per measure of that side in query
/// order, its clipping bound `max(|lo|, |hi|)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SideSchema {
    pub groups: usize,
    pub measure_bounds: Vec<u64>,
}

/// One lane of the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedLane {
    pub receiver: Side,
    pub shape: LaneShape,
    /// The sender's measures' bounds, in the order of its slots.
    pub measure_bounds: Vec<u64>,
}

impl PlannedLane {
    pub fn sender(&self) -> Side {
        self.receiver.other()
    }

    /// The noise scale of every released value of the lane, cell-major: 1
    /// for a count, the measure's bound for a sum, so that every statistic
    /// costs the same privacy (see [`BreakdownPlan::statistics`]).
    pub fn noise_scales(&self) -> Vec<u64> {
        let p = self.shape.payload;
        let per_cell: Vec<u64> = (0..p.slots())
            .map(|slot| {
                let stat = slot / p.groups;
                match (p.count, stat) {
                    (true, 0) => 1,
                    (true, s) => self.measure_bounds[s - 1],
                    (false, s) => self.measure_bounds[s],
                }
            })
            .collect();
        per_cell.repeat(self.shape.cells())
    }
}

/// The lanes of one breakdown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakdownPlan {
    pub lanes: Vec<PlannedLane>,
    pub left: SideSchema,
    pub right: SideSchema,
}

impl BreakdownPlan {
    pub fn new(left: SideSchema, right: SideSchema) -> Result<Self, ProtocolError> {
        if left.groups == 0 || right.groups == 0 {
            return Err(ProtocolError::Shape {
                what: "each side of a breakdown has at least one group",
            });
        }
        let first_receiver = if right.measure_bounds.is_empty() && !left.measure_bounds.is_empty() {
            Side::Right
        } else {
            Side::Left
        };
        let schema = |side: Side| match side {
            Side::Left => &left,
            Side::Right => &right,
        };
        let lane = |receiver: Side, count: bool| {
            let sender = schema(receiver.other());
            PlannedLane {
                receiver,
                shape: LaneShape {
                    receiver_groups: schema(receiver).groups,
                    payload: OneHot {
                        groups: sender.groups,
                        count,
                        measures: sender.measure_bounds.len(),
                        small_measures: false,
                    },
                },
                measure_bounds: sender.measure_bounds.clone(),
            }
        };
        let mut lanes = vec![lane(first_receiver, true)];
        if !schema(first_receiver).measure_bounds.is_empty() {
            lanes.push(lane(first_receiver.other(), false));
        }
        Ok(Self { lanes, left, right })
    }

    /// Checks every lane against the protocol's limits (slots, cells).
    pub fn check(&self) -> Result<(), ProtocolError> {
        self.lanes.iter().try_for_each(|l| l.shape.check())
    }

    /// Which side receives in lane 0 (the job's "receiver").
    pub fn first_receiver(&self) -> Side {
        self.lanes[0].receiver
    }

    /// Released statistics per cell: the count and every measure. One person
    /// changes each by at most its scale in one cell, so with noise scaled per
    /// statistic the squared sensitivity, in units of the scale, is this.
    pub fn statistics(&self) -> usize {
        1 + self.left.measure_bounds.len() + self.right.measure_bounds.len()
    }

    pub fn released_values(&self) -> usize {
        self.lanes.iter().map(|l| l.shape.released_values()).sum()
    }

    /// Noise scales of every released value, lane after lane.
    pub fn noise_scales(&self) -> Vec<u64> {
        self.lanes.iter().flat_map(PlannedLane::noise_scales).collect()
    }

    /// Checks that no sum of `side`'s measures over at most `rows` people
    /// can leave the decryptable range; names the offending measure.
    pub fn check_sums(&self, side: Side, rows: u64) -> Result<(), usize> {
        self.side(side)
            .measure_bounds
            .iter()
            .position(|&b| rows.saturating_mul(b) > SUM_LIMIT)
            .map_or(Ok(()), Err)
    }

    pub fn side(&self, side: Side) -> &SideSchema {
        match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }

    /// Binds the schema both nodes planned with into the session's terms:
    /// groups and bounds of each side reach a node partly through the
    /// coordinator, and a mismatch must stop the session, not skew it.
    pub fn terms(&self, job_id: &str, spec: &crate::wire::QuerySpec) -> crate::session::stream::Terms {
        let mut extra = Vec::new();
        for s in [&self.left, &self.right] {
            extra.push(s.groups as u64);
            extra.push(s.measure_bounds.len() as u64);
            extra.extend(&s.measure_bounds);
        }
        crate::queries::terms::job_terms_with(job_id, spec, &extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(groups: usize, bounds: &[u64]) -> SideSchema {
        SideSchema {
            groups,
            measure_bounds: bounds.to_vec(),
        }
    }

    #[test]
    fn lanes_follow_the_measures() {
        let p = BreakdownPlan::new(side(3, &[]), side(4, &[100])).unwrap();
        assert_eq!(p.lanes.len(), 1);
        assert_eq!(p.first_receiver(), Side::Left);
        assert_eq!(p.lanes[0].shape.slots(), 8);
        assert_eq!(p.released_values(), 24);
        assert_eq!(p.statistics(), 2);
        assert_eq!(&p.noise_scales()[..8], &[1, 1, 1, 1, 100, 100, 100, 100]);

        let p = BreakdownPlan::new(side(3, &[7, 9]), side(4, &[])).unwrap();
        assert_eq!(p.lanes.len(), 1);
        assert_eq!(p.first_receiver(), Side::Right);
        assert_eq!(p.lanes[0].shape.receiver_groups, 4);
        assert_eq!(p.lanes[0].shape.slots(), 9);

        let p = BreakdownPlan::new(side(2, &[5]), side(3, &[100, 1000])).unwrap();
        assert_eq!(p.lanes.len(), 2);
        assert_eq!(p.lanes[1].receiver, Side::Right);
        assert_eq!(p.lanes[1].shape.receiver_groups, 3);
        assert!(!p.lanes[1].shape.payload.count);
        assert_eq!(p.lanes[1].noise_scales(), vec![5; 6]);
        assert_eq!(p.statistics(), 4);
        assert_eq!(p.released_values(), 2 * 9 + 3 * 2);

        let p = BreakdownPlan::new(side(1, &[]), side(1, &[])).unwrap();
        assert_eq!((p.lanes.len(), p.released_values()), (1, 1));
        assert!(BreakdownPlan::new(side(0, &[]), side(1, &[])).is_err());
    }

    #[test]
    fn sums_must_stay_decryptable() {
        let p = BreakdownPlan::new(side(1, &[1_000_000]), side(1, &[250_000, 1])).unwrap();
        assert_eq!(p.check_sums(Side::Left, 4_000_000), Err(0));
        assert_eq!(p.check_sums(Side::Left, 1_000_000), Ok(()));
        assert_eq!(p.check_sums(Side::Right, 10_000_000), Ok(()));
        assert_eq!(p.check_sums(Side::Right, 20_000_000), Err(0));
    }
}
