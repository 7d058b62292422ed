//! `[policy]`: what this node agrees to (partners, privacy, planners), and
//! the checks that keep a policy consistent with the node's datasets.

use std::collections::{BTreeMap, BTreeSet};

use jointly_protocol::privacy::accounting::{check_delta, check_epsilon};
use serde::Deserialize;

use crate::{
    config::defaults::*,
    error::{ConfigError, PlannerRuleProblem},
    period::Period,
};

/// What this node agrees to. The coordinator cannot override any of it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Names of the nodes this node will run protocols with. Empty: none.
    #[serde(default)]
    pub partners: Vec<String>,
    /// Release results without noise. For test deployments only; a result is
    /// exact only when both nodes allow it.
    #[serde(default)]
    pub allow_exact: bool,
    /// Smallest count released; a noised count below it is reported as "below
    /// threshold", and so is everything computed from it.
    #[serde(default = "default_min_aggregation")]
    pub min_aggregation: u64,
    /// Largest epsilon a single query may ask of this node.
    #[serde(default = "default_max_epsilon")]
    pub max_epsilon: f64,
    /// The delta at which this node states every epsilon (per query and budget).
    #[serde(default = "default_delta")]
    pub delta: f64,
    /// Privacy budgets per dataset and partner per period. A noised query on a
    /// dataset with no budget for its partner is refused.
    #[serde(default)]
    pub budgets: Vec<BudgetConfig>,
    /// Smallest segment whose members this node delivers, or lets be
    /// delivered to a partner.
    #[serde(default = "default_min_activation")]
    pub min_activation: u64,
    /// Partner nodes that may receive the members of segments over this node's
    /// data. Empty: none. Each must also be in `partners`.
    #[serde(default)]
    pub allow_activation: Vec<String>,
    /// Partners' Ed25519 identity keys (64 hex characters each), pinned: a
    /// session whose peer key from the coordinator differs is refused, so a
    /// coordinator cannot stand in for a partner. Partners not listed are
    /// trusted under the key the coordinator registered.
    #[serde(default, deserialize_with = "hex_keys")]
    pub partner_keys: BTreeMap<String, [u8; 32]>,
    /// Smallest list this node works with, its own filtered list or the
    /// peer's, judged on the noised size (a list's length less its cover's
    /// mean). Default: `min_aggregation`.
    pub min_set_size: Option<u64>,
    /// Which planners (by name or organisation) may query which datasets, and
    /// with which query kinds. A job no rule allows is refused.
    #[serde(default)]
    pub planners: Vec<PlannerRule>,
    /// Planners' Ed25519 public keys (64 hex characters each), pinned: a job
    /// whose request the coordinator says a listed planner signed with
    /// another key is refused, so a coordinator cannot stand in for her.
    #[serde(default, deserialize_with = "hex_keys")]
    pub planner_keys: BTreeMap<String, [u8; 32]>,
}

/// One `[[policy.planners]]` entry: who may query which of this node's
/// datasets, and how.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannerRule {
    /// Datasets (or event tables) of this node; "*" for all.
    pub datasets: Vec<String>,
    /// Planners by registered name.
    #[serde(default)]
    pub planners: Vec<String>,
    /// Planners by organisation.
    #[serde(default)]
    pub organisations: Vec<String>,
    /// Query kinds allowed (overlap, segment, breakdown, attribution, lift);
    /// empty for all.
    #[serde(default)]
    pub kinds: Vec<String>,
}

/// The query kinds a `[[policy.planners]]` rule may name.
pub const QUERY_KINDS: [&str; 5] = ["overlap", "segment", "breakdown", "attribution", "lift"];

impl PlannerRule {
    /// Whether the rule lets `planner` of `organisation` run a `kind` query
    /// over `dataset`.
    pub fn allows(&self, dataset: &str, planner: &str, organisation: &str, kind: &str) -> bool {
        self.datasets.iter().any(|d| d == "*" || d == dataset)
            && (self.planners.iter().any(|p| p == planner)
                || self.organisations.iter().any(|o| o == organisation))
            && (self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind))
    }
}

fn hex_keys<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, [u8; 32]>, D::Error> {
    let text: BTreeMap<String, String> = serde::Deserialize::deserialize(d)?;
    text.into_iter()
        .map(|(partner, hex_key)| {
            let mut key = [0u8; 32];
            hex::decode_to_slice(hex_key.trim(), &mut key).map_err(|_| {
                serde::de::Error::custom(format!(
                    "policy.partner_keys.{partner}: expected 64 hex characters (the key `jointly-node keygen` printed)"
                ))
            })?;
            Ok((partner, key))
        })
        .collect()
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            partners: Vec::new(),
            allow_exact: false,
            min_aggregation: default_min_aggregation(),
            max_epsilon: default_max_epsilon(),
            delta: default_delta(),
            budgets: Vec::new(),
            min_activation: default_min_activation(),
            allow_activation: Vec::new(),
            partner_keys: BTreeMap::new(),
            min_set_size: None,
            planners: Vec::new(),
            planner_keys: BTreeMap::new(),
        }
    }
}

/// Total epsilon (at the policy's delta) that queries on `dataset` with
/// `partner` may spend per `period`; spending composes under zCDP.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    pub dataset: String,
    /// A partner's node name, or "*" for any partner without its own entry.
    pub partner: String,
    pub epsilon: f64,
    pub period: Period,
}

impl Policy {
    /// The budget that applies to `dataset` with `partner`: its own entry, else
    /// the dataset's "*" entry, which every partner without its own shares as
    /// one pool (so colluding partners cannot multiply it).
    pub fn budget(&self, dataset: &str, partner: &str) -> Option<&BudgetConfig> {
        let of = |p: &str| {
            self.budgets
                .iter()
                .find(|b| b.dataset == dataset && b.partner == p)
        };
        of(partner).or_else(|| of("*"))
    }

    /// The smallest noised list size this node works with.
    pub fn min_set_size(&self) -> u64 {
        self.min_set_size.unwrap_or(self.min_aggregation)
    }

    /// The first rule letting this planner run this query, if any.
    pub fn planner_rule(
        &self,
        dataset: &str,
        planner: &str,
        organisation: &str,
        kind: &str,
    ) -> Option<usize> {
        self.planners
            .iter()
            .position(|r| r.allows(dataset, planner, organisation, kind))
    }

    pub(super) fn check(&self, datasets: &BTreeSet<&str>) -> Result<(), ConfigError> {
        check_epsilon(self.max_epsilon).map_err(ConfigError::MaxEpsilon)?;
        for (i, rule) in self.planners.iter().enumerate() {
            let refuse = |problem| ConfigError::PlannerRule {
                entry: i + 1,
                problem,
            };
            if rule.datasets.is_empty() {
                return Err(refuse(PlannerRuleProblem::NoDatasets));
            }
            if let Some(d) = rule
                .datasets
                .iter()
                .find(|d| *d != "*" && !datasets.contains(d.as_str()))
            {
                return Err(refuse(PlannerRuleProblem::UnknownDataset(d.clone())));
            }
            if rule.planners.is_empty() && rule.organisations.is_empty() {
                return Err(refuse(PlannerRuleProblem::AllowsNobody));
            }
            if let Some(k) = rule.kinds.iter().find(|k| !QUERY_KINDS.contains(&k.as_str())) {
                return Err(refuse(PlannerRuleProblem::UnknownKind {
                    kind: k.clone(),
                    allowed: QUERY_KINDS.join(", "),
                }));
            }
        }
        check_delta(self.delta).map_err(ConfigError::Delta)?;
        if let Some(a) = self.allow_activation.iter().find(|a| !self.partners.contains(a)) {
            return Err(ConfigError::ActivationNotPartner { partner: a.clone() });
        }
        let mut seen = BTreeSet::new();
        for b in &self.budgets {
            if !datasets.contains(b.dataset.as_str()) {
                return Err(ConfigError::BudgetUnknownDataset {
                    dataset: b.dataset.clone(),
                });
            }
            check_epsilon(b.epsilon).map_err(|reason| ConfigError::BudgetEpsilon {
                dataset: b.dataset.clone(),
                partner: b.partner.clone(),
                reason,
            })?;
            if !seen.insert((b.dataset.as_str(), b.partner.as_str())) {
                return Err(ConfigError::BudgetTwice {
                    dataset: b.dataset.clone(),
                    partner: b.partner.clone(),
                });
            }
        }
        Ok(())
    }
}
