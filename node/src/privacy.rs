//! How this node protects one job's result: the noise it adds, the threshold it
//! applies and the budget it charges, all from its own policy and the
//! planner's epsilon. The privacy arithmetic itself lives in
//! `jointly_protocol::accounting`; this module only applies it.
//!
//! Each node's own noise share is sized to give the query's epsilon on its own,
//! so a node never relies on its peer (or the coordinator) for the guarantee it
//! states; the released noise is the sum of both shares.

use jointly_protocol::{
    accounting::{self, Rho},
    noise::{Variance, sample_discrete_gaussian},
    wire::{NodeTerms, Privacy},
};

use crate::{
    config::Policy,
    ledger::{Charge, Entry},
    period::{Period, now_unix_seconds},
};

/// What one job costs and how its result is protected, as this node decided.
/// Its Debug output leaves the noise shares out: knowing them would undo them.
#[derive(Clone)]
pub struct NoisePlan {
    pub exact: bool,
    pub epsilon: f64,
    pub delta: f64,
    /// None when exact.
    variance: Option<Variance>,
    /// This node's noise, one share per released value, drawn when the job is
    /// accepted: the sampler's running time depends on the value drawn, so it
    /// runs before the session, not just before the release where its timing
    /// could be watched.
    shares: Vec<i64>,
    pub min_aggregation: u64,
    pub charge: Charge,
    /// The budget the charge was checked against, in rho millionths.
    pub budget_micro: u64,
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
            .field("min_aggregation", &self.min_aggregation)
            .field("charge", &self.charge)
            .finish()
    }
}

/// One query on one dataset with one partner.
#[derive(Clone, Copy, Debug)]
pub struct QueryShape<'a> {
    pub job_id: &'a str,
    pub dataset: &'a str,
    pub partner: &'a str,
    /// "overlap", "breakdown", ...
    pub kind: &'a str,
    /// Squared L2 sensitivity of the released vector when one person joins or
    /// leaves either dataset, in units of each value's noise scale (1 for a
    /// count; a breakdown's number of statistics).
    pub sensitivity_sq: f64,
    /// Per released value, the factor its noise's standard deviation is
    /// scaled by: 1 for a count, a measure's clipping bound for a sum. One
    /// entry per value the job releases.
    pub noise_scales: &'a [u64],
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

/// Decides the noise, threshold and charge for a job, or says which policy key
/// refuses it.
pub fn plan(node: &str, policy: &Policy, privacy: &Privacy, q: QueryShape<'_>) -> Result<NoisePlan, String> {
    let budget = policy.budget(q.dataset, q.partner).ok_or_else(|| {
        format!(
            "node '{node}' has no privacy budget for dataset '{}' with partner '{}': add a [[policy.budgets]] entry",
            q.dataset, q.partner
        )
    })?;
    let period = budget.period;
    let budget_rho = accounting::rho_for_epsilon(budget.epsilon, policy.delta)
        .map_err(|e| format!("node '{node}': policy.budgets for '{}': {e}", q.dataset))?;
    let charge = |exact: bool, epsilon: f64, rho_micro: u64| Charge {
        job_id: q.job_id.to_string(),
        dataset: q.dataset.to_string(),
        partner: q.partner.to_string(),
        period: period.key(now_unix_seconds()),
        query: q.kind.to_string(),
        exact,
        epsilon,
        delta: policy.delta,
        rho_micro,
    };
    if privacy.exact {
        if !policy.allow_exact {
            return Err(format!(
                "node '{node}' refuses an exact result: its policy sets allow_exact = false (exact results need allow_exact = true on both nodes)"
            ));
        }
        return Ok(NoisePlan {
            exact: true,
            epsilon: 0.0,
            delta: policy.delta,
            variance: None,
            shares: vec![0; q.noise_scales.len()],
            min_aggregation: policy.min_aggregation,
            charge: charge(true, 0.0, 0),
            budget_micro: micro_down(budget_rho),
            period,
        });
    }
    let epsilon = privacy.epsilon;
    accounting::check_epsilon(epsilon).map_err(|e| {
        format!(
            "node '{node}' refuses: {e}; ask for an epsilon up to policy.max_epsilon = {}",
            policy.max_epsilon
        )
    })?;
    if epsilon > policy.max_epsilon {
        return Err(format!(
            "node '{node}' refuses: epsilon = {epsilon} is above its policy.max_epsilon = {}; ask for less",
            policy.max_epsilon
        ));
    }
    let rho =
        accounting::rho_for_epsilon(epsilon, policy.delta).map_err(|e| format!("node '{node}': {e}"))?;
    let variance = accounting::variance_for(rho, q.sensitivity_sq)
        .map_err(|e| e.to_string())
        .and_then(|v| Variance::at_least(v).map_err(|e| e.to_string()))
        .map_err(|e| format!("node '{node}' cannot noise this query: {e}"))?;
    let mut rng = rand::rng();
    let mut scaled: std::collections::BTreeMap<u64, Variance> = Default::default();
    let mut shares = Vec::with_capacity(q.noise_scales.len());
    for &scale in q.noise_scales {
        let v = match scaled.get(&scale) {
            Some(v) => *v,
            None => {
                let s = scale as f64;
                let v = Variance::at_least(variance.as_f64() * s * s)
                    .map_err(|e| format!("node '{node}' cannot noise this query: {e}"))?;
                scaled.insert(scale, v);
                v
            }
        };
        shares.push(sample_discrete_gaussian(&v, &mut rng));
    }
    Ok(NoisePlan {
        exact: false,
        epsilon,
        delta: policy.delta,
        variance: Some(variance),
        shares,
        min_aggregation: policy.min_aggregation,
        charge: charge(false, epsilon, micro_up(rho)),
        budget_micro: micro_down(budget_rho),
        period,
    })
}

impl NoisePlan {
    /// Standard deviation of this node's share (0 when exact).
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

    /// A refusal in the words of the policy: budget and spending as epsilon
    /// at the policy's delta (composed, so they do not simply add up).
    pub fn over_budget(&self, node: &str, spent_micro: u64) -> String {
        let as_epsilon = |micro: u64| epsilon_of_micro(micro, self.delta);
        format!(
            "node '{node}' refuses: the privacy budget of dataset '{}' with partner '{}' for {} is epsilon {:.3}; {:.3} is spent and this query (epsilon {}) does not fit. Ask for a smaller epsilon or wait for the next {}",
            self.charge.dataset,
            self.charge.partner,
            self.charge.period,
            as_epsilon(self.budget_micro),
            as_epsilon(spent_micro),
            self.epsilon,
            self.period.label()
        )
    }
}

/// One budget's standing, as `jointly-node budget` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BudgetStanding {
    pub dataset: String,
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
}

/// Spending per dataset, partner and period, composed under zCDP and stated
/// as epsilon at the policy's delta.
pub fn standings(entries: &[Entry], policy: &Policy) -> Vec<BudgetStanding> {
    let mut by_budget: std::collections::BTreeMap<(&str, &str, &str), (usize, u64)> = Default::default();
    for e in entries.iter().filter(|e| e.state.counts_as_spent()) {
        let c = &e.charge;
        let slot = by_budget
            .entry((c.dataset.as_str(), c.partner.as_str(), c.period.as_str()))
            .or_default();
        slot.0 += 1;
        slot.1 += c.rho_micro;
    }
    by_budget
        .into_iter()
        .map(|((dataset, partner, period), (queries, micro))| BudgetStanding {
            dataset: dataset.to_string(),
            partner: partner.to_string(),
            period: period.to_string(),
            queries,
            epsilon_spent: epsilon_of_micro(micro, policy.delta),
            epsilon_budget: policy.budget(dataset, partner).map(|b| b.epsilon),
            epsilon_left: policy.budget(dataset, partner).map(|b| {
                let budget = accounting::rho_for_epsilon(b.epsilon, policy.delta).map_or(0, micro_down);
                epsilon_of_micro(budget.saturating_sub(micro), policy.delta)
            }),
            delta: policy.delta,
        })
        .collect()
}
