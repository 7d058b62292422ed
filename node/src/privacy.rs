//! How this node protects one job: the noise it adds to what is released,
//! the cover it puts on the lists its peer sees, the threshold it applies and
//! the budget it charges, all from its own policy and the planner's epsilon.
//! The privacy arithmetic itself lives in `jointly_protocol::privacy::accounting`;
//! this module only applies it.
//!
//! One epsilon covers everything a query reveals about this node's data, to
//! anyone: the node sums the squared sensitivities of the released values
//! and of the cover counts its peer sees (pads on its lists, and as a sender
//! the dummy matches), and draws all of them with one discrete Gaussian
//! variance per unit of scale, so the whole job is rho-zCDP for the rho of
//! the planner's epsilon. Each node sizes its noise alone: it never relies on
//! its peer (or the coordinator) for the guarantee it states.

use jointly_protocol::{
    privacy::accounting::{self, Rho},
    privacy::cover::Cover,
    privacy::noise::{Variance, sample_cover, sample_discrete_gaussian},
    wire::{NodeTerms, Privacy},
};

use crate::{
    config::Policy,
    ledger::{Charge, Entry},
    period::{Period, now_unix_seconds},
    refusal::Refusal,
};

/// The cover one lane of a session needs from this node: how many pads
/// (one per batch it sends) and how many batches of dummies (one per
/// receiver batch, as a sender that hides the receiver's match counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneCover {
    pub pads: usize,
    pub dummies: usize,
}

/// What one job costs and how its result is protected, as this node decided.
/// Its Debug output leaves the noise shares and cover draws out: knowing
/// them would undo them.
#[derive(Clone)]
pub struct NoisePlan {
    pub exact: bool,
    pub epsilon: f64,
    pub delta: f64,
    /// Per unit of scale, for every released value and cover count; None
    /// when exact.
    variance: Option<Variance>,
    /// This node's noise, one share per released value, drawn when the job is
    /// accepted: the sampler's running time depends on the value drawn, so it
    /// runs before the session, not while the peer can time it.
    shares: Vec<i64>,
    /// The cover of every lane, drawn alike.
    covers: Vec<Cover>,
    pub min_aggregation: u64,
    pub min_set_size: u64,
    /// One charge per dataset the job reads.
    pub charges: Vec<Charge>,
    /// The budget each charge was checked against, in rho millionths.
    pub budgets_micro: Vec<u64>,
    pub period: Period,
}

impl std::fmt::Debug for NoisePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoisePlan")
            .field("exact", &self.exact)
            .field("epsilon", &self.epsilon)
            .field("delta", &self.delta)
            .field("sigma", &self.sigma())
            .field("shares", &format_args!("<{} redacted>", self.shares.len()))
            .field("covers", &format_args!("<{} lanes redacted>", self.covers.len()))
            .field("min_aggregation", &self.min_aggregation)
            .field("charges", &self.charges)
            .finish()
    }
}

/// One query on this node's datasets with one partner.
#[derive(Clone, Copy, Debug)]
pub struct QueryShape<'a> {
    pub job_id: &'a str,
    /// Every dataset of this node the job reads; each is charged.
    pub datasets: &'a [&'a str],
    pub partner: &'a str,
    /// "overlap", "breakdown", ...
    pub kind: &'a str,
    /// Squared L2 sensitivity of the released vector when one person joins or
    /// leaves this node's data, in units of each value's noise scale (1 for
    /// a count; a breakdown's number of statistics).
    pub sensitivity_sq: f64,
    /// Per released value, the factor its noise's standard deviation is
    /// scaled by: 1 for a count, a measure's clipping bound for a sum. One
    /// entry per value the job releases.
    pub noise_scales: &'a [u64],
    /// Squared L2 sensitivity of the cover counts the peer sees (every pad
    /// and dummy count hides a count that one person moves by at most 1).
    pub cover_sensitivity_sq: f64,
    /// The cover of each lane.
    pub cover: &'a [LaneCover],
}

impl QueryShape<'_> {
    /// Values this job makes the node draw: noise shares and cover counts.
    pub fn values(&self) -> usize {
        self.noise_scales.len()
            + self
                .cover
                .iter()
                .map(|c| c.pads.saturating_add(c.dummies))
                .fold(0usize, usize::saturating_add)
    }
}

/// Rho millionths, rounded up: the ledger never records less than was spent.
fn micro_up(rho: Rho) -> u64 {
    (rho.value() * 1e6).ceil() as u64
}

/// Rho millionths, rounded down: a budget never grows by rounding.
fn micro_down(rho: Rho) -> u64 {
    (rho.value() * 1e6).floor() as u64
}

/// Rho millionths as epsilon at `delta`, for people to read.
pub fn epsilon_of_micro(micro: u64, delta: f64) -> f64 {
    Rho::new(micro as f64 / 1e6)
        .and_then(|rho| accounting::epsilon_for(rho, delta))
        .unwrap_or(f64::NAN)
}

/// Decides the noise, cover, threshold and charges for a job, or says which
/// policy key refuses it. Draws every noise value and cover count: callers
/// run it off the async workers.
pub fn plan(node: &str, policy: &Policy, privacy: &Privacy, q: QueryShape<'_>) -> Result<NoisePlan, Refusal> {
    let node_name = || node.to_string();
    let period_key = now_unix_seconds();
    let mut budgets = Vec::with_capacity(q.datasets.len());
    for dataset in q.datasets {
        // The ledger charges the entry's own key: the partner, or "*" for
        // the pool.
        let budget = policy
            .budget(dataset, q.partner)
            .ok_or_else(|| Refusal::NoBudget {
                node: node_name(),
                dataset: dataset.to_string(),
                partner: q.partner.to_string(),
            })?;
        let rho = accounting::rho_for_epsilon(budget.epsilon, policy.delta).map_err(|reason| {
            Refusal::BudgetInvalid {
                node: node_name(),
                dataset: dataset.to_string(),
                reason,
            }
        })?;
        budgets.push((
            dataset.to_string(),
            budget.partner.clone(),
            budget.period,
            micro_down(rho),
        ));
    }
    let period = budgets.first().map_or(Period::Month, |b| b.2);
    let charges = |exact: bool, epsilon: f64, rho_micro: u64, view_micro: u64, delta_tail: f64| {
        budgets
            .iter()
            .map(|(dataset, budget_partner, period, _)| Charge {
                job_id: q.job_id.to_string(),
                dataset: dataset.clone(),
                partner: q.partner.to_string(),
                budget_partner: budget_partner.clone(),
                period: period.key(period_key),
                query: q.kind.to_string(),
                exact,
                epsilon,
                delta: policy.delta,
                delta_tail,
                rho_micro,
                view_micro,
            })
            .collect::<Vec<_>>()
    };
    let budgets_micro: Vec<u64> = budgets.iter().map(|b| b.3).collect();
    let no_cover = || {
        q.cover
            .iter()
            .map(|c| Cover::none(c.pads, c.dummies))
            .collect::<Vec<_>>()
    };
    if privacy.exact {
        if !policy.allow_exact {
            return Err(Refusal::ExactNotAllowed { node: node_name() });
        }
        return Ok(NoisePlan {
            exact: true,
            epsilon: 0.0,
            delta: policy.delta,
            variance: None,
            shares: vec![0; q.noise_scales.len()],
            covers: no_cover(),
            min_aggregation: policy.min_aggregation,
            min_set_size: policy.min_set_size(),
            charges: charges(true, 0.0, 0, 0, 0.0),
            budgets_micro,
            period,
        });
    }
    let epsilon = privacy.epsilon;
    accounting::check_epsilon(epsilon).map_err(|reason| Refusal::InvalidEpsilon {
        node: node_name(),
        reason,
        max: policy.max_epsilon,
    })?;
    if epsilon > policy.max_epsilon {
        return Err(Refusal::EpsilonAboveMax {
            node: node_name(),
            asked: epsilon,
            max: policy.max_epsilon,
        });
    }
    let rho = accounting::rho_for_epsilon(epsilon, policy.delta).map_err(|reason| Refusal::Accounting {
        node: node_name(),
        reason,
    })?;
    let total_sq = q.sensitivity_sq + q.cover_sensitivity_sq;
    let cannot = |reason: String| Refusal::CannotNoise {
        node: node_name(),
        reason,
    };
    let variance = accounting::variance_for(rho, total_sq)
        .map_err(|e| e.to_string())
        .and_then(|v| Variance::at_least(v).map_err(|e| e.to_string()))
        .map_err(cannot)?;
    let mut rng = rand::rng();
    let mut scaled: std::collections::BTreeMap<u64, Variance> = Default::default();
    let mut shares = Vec::with_capacity(q.noise_scales.len());
    for &scale in q.noise_scales {
        let v = match scaled.get(&scale) {
            Some(v) => *v,
            None => {
                let s = scale as f64;
                let v = Variance::at_least(variance.as_f64() * s * s).map_err(|e| cannot(e.to_string()))?;
                scaled.insert(scale, v);
                v
            }
        };
        shares.push(sample_discrete_gaussian(&v, &mut rng));
    }
    let offset = accounting::cover_offset(variance.as_f64()).map_err(|e| cannot(e.to_string()))?;
    let mut counts = 0usize;
    let covers = q
        .cover
        .iter()
        .map(|c| {
            counts += c.pads + c.dummies;
            let mut draw = |n: usize| {
                (0..n)
                    .map(|_| sample_cover(&variance, offset, &mut rng))
                    .collect::<Vec<u64>>()
            };
            Cover {
                pads: draw(c.pads),
                pad_offset: offset,
                dummies: draw(c.dummies),
                dummy_offset: if c.dummies > 0 { offset } else { 0 },
            }
        })
        .collect();
    let rho_micro = micro_up(rho);
    // The peer-view part of the charge leaves with the first message.
    let view_micro = if total_sq > 0.0 {
        (rho_micro as f64 * q.cover_sensitivity_sq / total_sq).ceil() as u64
    } else {
        0
    };
    let delta_tail = accounting::truncation_delta(counts, epsilon);
    Ok(NoisePlan {
        exact: false,
        epsilon,
        delta: policy.delta,
        variance: Some(variance),
        shares,
        covers,
        min_aggregation: policy.min_aggregation,
        min_set_size: policy.min_set_size(),
        charges: charges(false, epsilon, rho_micro, view_micro, delta_tail),
        budgets_micro,
        period,
    })
}

impl NoisePlan {
    /// Standard deviation of this node's noise per unit of scale, on every
    /// released value and cover count (0 when exact).
    pub fn sigma(&self) -> f64 {
        self.variance.map_or(0.0, |v| v.as_f64().sqrt())
    }

    /// What this node tells the coordinator it will apply.
    pub fn terms(&self, node: &str) -> NodeTerms {
        NodeTerms {
            node: node.to_string(),
            sigma: self.sigma(),
            delta: self.delta,
            min_aggregation: self.min_aggregation,
        }
    }

    /// This node's noise shares, one per released value (zeros when exact),
    /// drawn from the thread's CSPRNG when the plan was made.
    pub fn shares(&self) -> &[i64] {
        &self.shares
    }

    /// The cover of every lane, in lane order.
    pub fn covers(&self) -> &[Cover] {
        &self.covers
    }

    pub fn job_id(&self) -> &str {
        self.charges.first().map_or("", |c| c.job_id.as_str())
    }

    /// The epsilon this node charged (0 when exact).
    pub fn charged_epsilon(&self) -> f64 {
        self.charges.first().map_or(0.0, |c| c.epsilon)
    }

    /// A refusal in the words of the policy: budget and spending as epsilon
    /// at the policy's delta (composed, so they do not simply add up).
    pub fn over_budget(&self, node: &str, dataset: &str, spent_micro: u64) -> Refusal {
        let as_epsilon = |micro: u64| epsilon_of_micro(micro, self.delta);
        let (charge, budget) = self
            .charges
            .iter()
            .zip(&self.budgets_micro)
            .find(|(c, _)| c.dataset == dataset)
            .map_or((None, 0), |(c, b)| (Some(c), *b));
        let (partner, period) = charge.map_or(("?", "?"), |c| (c.budget_partner.as_str(), c.period.as_str()));
        Refusal::BudgetExhausted {
            node: node.to_string(),
            dataset: dataset.to_string(),
            partner: partner.to_string(),
            period: period.to_string(),
            budget: as_epsilon(budget),
            spent: as_epsilon(spent_micro),
            asked: self.epsilon,
            next: self.period,
        }
    }
}

/// One budget's standing, as `jointly-node budget` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BudgetStanding {
    pub dataset: String,
    /// A partner's own budget, or "*" for the pool of every other partner.
    pub partner: String,
    pub period: String,
    pub queries: usize,
    /// Spent (committed or reserved), composed and stated at `delta`.
    pub epsilon_spent: f64,
    /// None when the policy no longer has a budget for this pair.
    pub epsilon_budget: Option<f64>,
    /// The largest epsilon one more query could still spend in this period.
    /// Not budget minus spent: epsilons compose, they do not add.
    pub epsilon_left: Option<f64>,
    pub delta: f64,
    /// What truncated cover counts add to `delta` over these queries.
    pub delta_tail: f64,
}

/// Spending per dataset, budget and period, composed under zCDP and stated
/// as epsilon at the policy's delta.
pub fn standings(entries: &[Entry], policy: &Policy) -> Vec<BudgetStanding> {
    let mut by_budget: std::collections::BTreeMap<(&str, &str, &str), (usize, u64, f64)> = Default::default();
    for e in entries.iter().filter(|e| e.spent_micro() > 0 || e.charge.exact) {
        let c = &e.charge;
        let slot = by_budget
            .entry((c.dataset.as_str(), c.budget_partner.as_str(), c.period.as_str()))
            .or_default();
        slot.0 += 1;
        slot.1 += e.spent_micro();
        slot.2 += c.delta_tail;
    }
    by_budget
        .into_iter()
        .map(|((dataset, partner, period), (queries, micro, tail))| {
            let budget = policy
                .budgets
                .iter()
                .find(|b| b.dataset == dataset && b.partner == partner);
            BudgetStanding {
                dataset: dataset.to_string(),
                partner: partner.to_string(),
                period: period.to_string(),
                queries,
                epsilon_spent: epsilon_of_micro(micro, policy.delta),
                epsilon_budget: budget.map(|b| b.epsilon),
                epsilon_left: budget.map(|b| {
                    let budget = accounting::rho_for_epsilon(b.epsilon, policy.delta).map_or(0, micro_down);
                    epsilon_of_micro(budget.saturating_sub(micro), policy.delta)
                }),
                delta: policy.delta,
                delta_tail: tail,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BudgetConfig;

    fn policy() -> Policy {
        Policy {
            partners: vec!["partner".into()],
            budgets: ["customers", "conversions"]
                .into_iter()
                .map(|d| BudgetConfig {
                    dataset: d.into(),
                    partner: "*".into(),
                    epsilon: 4.0,
                    period: Period::Month,
                })
                .collect(),
            ..Policy::default()
        }
    }

    fn shape<'a>(
        datasets: &'a [&'a str],
        scales: &'a [u64],
        release_sq: f64,
        cover: &'a [LaneCover],
    ) -> QueryShape<'a> {
        QueryShape {
            job_id: "j",
            datasets,
            partner: "partner",
            kind: "overlap",
            sensitivity_sq: release_sq,
            noise_scales: scales,
            cover_sensitivity_sq: 1.0,
            cover,
        }
    }

    #[test]
    fn one_sigma_covers_release_and_cover_at_the_queries_rho() {
        let privacy = Privacy {
            epsilon: 1.0,
            exact: false,
        };
        let lanes = [LaneCover { pads: 3, dummies: 2 }];
        let plan = plan(
            "bank",
            &policy(),
            &privacy,
            shape(&["customers"], &[1], 1.0, &lanes),
        )
        .expect("plan");
        // rho(1, 1e-6) = 0.024356 (accounting_tests' reference): with a
        // release and a cover each of squared sensitivity 1, sigma^2 = 2/(2 rho).
        let rho = 0.024_355_970_359_538_373;
        let want = 2.0 / (2.0 * rho);
        assert!((plan.sigma().powi(2) - want).abs() < 1e-2, "{}", plan.sigma());
        let cover = &plan.covers()[0];
        let offset = accounting::cover_offset(plan.sigma().powi(2)).expect("offset");
        assert_eq!((cover.pads.len(), cover.dummies.len()), (3, 2));
        assert_eq!((cover.pad_offset, cover.dummy_offset), (offset, offset));
        assert!(cover.pads.iter().chain(&cover.dummies).all(|&c| c <= 2 * offset));
        // The whole job costs the query's rho; half of it is the peer's view.
        let c = &plan.charges[0];
        assert_eq!(c.rho_micro, (rho * 1e6).ceil() as u64);
        assert_eq!(c.view_micro, (c.rho_micro as f64 / 2.0).ceil() as u64);
        assert!(c.delta_tail > 0.0 && c.delta_tail < 1e-20);
    }

    #[test]
    fn a_sender_with_nothing_to_release_puts_all_on_the_cover() {
        let privacy = Privacy {
            epsilon: 1.0,
            exact: false,
        };
        let lanes = [LaneCover { pads: 1, dummies: 1 }];
        let plan = plan(
            "partner",
            &policy(),
            &privacy,
            shape(&["customers"], &[], 0.0, &lanes),
        )
        .expect("plan");
        assert!(plan.shares().is_empty());
        let c = &plan.charges[0];
        assert_eq!(c.view_micro, c.rho_micro);
        let rho = 0.024_355_970_359_538_373;
        assert!((plan.sigma().powi(2) - 1.0 / (2.0 * rho)).abs() < 1e-2);
    }

    #[test]
    fn every_dataset_read_is_charged_and_exact_runs_have_no_cover() {
        let two = ["customers", "conversions"];
        let lanes = [LaneCover { pads: 1, dummies: 2 }];
        let noised = Privacy {
            epsilon: 0.5,
            exact: false,
        };
        let plan = plan("bank", &policy(), &noised, shape(&two, &[1, 1, 5], 3.0, &lanes)).expect("plan");
        assert_eq!(plan.charges.len(), 2);
        assert_eq!(plan.charges[1].dataset, "conversions");
        assert!(
            plan.charges
                .iter()
                .all(|c| c.budget_partner == "*" && c.rho_micro > 0)
        );
        let exact_policy = Policy {
            allow_exact: true,
            ..policy()
        };
        let exact = Privacy {
            epsilon: 0.0,
            exact: true,
        };
        let plan = super::plan(
            "bank",
            &exact_policy,
            &exact,
            shape(&two, &[1, 1, 5], 3.0, &lanes),
        )
        .expect("exact");
        assert_eq!(plan.covers()[0], Cover::none(1, 2));
        assert!(plan.charges.iter().all(|c| c.exact && c.rho_micro == 0));
        let missing = plan_err(&["customers", "other"]);
        assert!(
            matches!(&missing, Refusal::NoBudget { dataset, .. } if dataset == "other"),
            "{missing}"
        );
        assert!(missing.to_string().contains("dataset 'other'"), "{missing}");
    }

    fn plan_err(datasets: &[&str]) -> Refusal {
        let privacy = Privacy {
            epsilon: 0.5,
            exact: false,
        };
        plan("bank", &policy(), &privacy, shape(datasets, &[1], 1.0, &[])).expect_err("no budget")
    }
}
