//! The node's configuration file (`node.toml`). Every key has a default except
//! the node's name, its coordinator and its datasets; unknown keys are errors, so
//! a typo never silently falls back to a default. Relative paths are resolved
//! against the directory of the configuration file.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use jointly_protocol::{
    ids::normalize::IdKind,
    privacy::accounting::{check_delta, check_epsilon},
};
use serde::Deserialize;

use crate::{error::NodeError, period::Period};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The name this node is registered under at the coordinator.
    pub name: String,
    /// Ed25519 identity key (hex of the 32-byte secret), created with
    /// `jointly-node keygen`. Its public half is registered at the coordinator.
    pub identity_key: PathBuf,
    /// Where the node keeps its state (ledgers, transcripts).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Default country for phone numbers written without a country code: an ISO
    /// 3166 region ("CN") or a calling code ("+86").
    #[serde(default = "default_country")]
    pub default_country: String,
    pub coordinator: CoordinatorLink,
    #[serde(default)]
    pub policy: Policy,
    #[serde(default)]
    pub limits: NodeLimits,
    #[serde(default, rename = "datasets")]
    pub datasets: Vec<DatasetConfig>,
    /// Event tables for attribution and lift: a partner's exposures, a bank's
    /// conversions. Their names share one namespace with `datasets`.
    #[serde(default)]
    pub events: Vec<EventsConfig>,
    /// A test deployment: partners' keys need not be pinned (the node then
    /// trusts the coordinator's registry for them) and says so at start-up.
    /// Never set it where real customers' data is loaded.
    #[serde(default)]
    pub test_deployment: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorLink {
    /// `http://host:port` (loopback demos) or `https://host:port` (TLS).
    pub url: String,
    /// PEM file of the CA that signed the coordinator's certificate; required
    /// for `https` URLs.
    pub ca_cert: Option<PathBuf>,
    /// Name to check in the coordinator's certificate, if not the URL's host.
    pub tls_domain: Option<String>,
    /// Seconds between reconnection attempts after the coordinator goes away.
    #[serde(default = "default_reconnect_seconds")]
    pub reconnect_seconds: u64,
}

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

    fn check(&self, datasets: &std::collections::BTreeSet<&str>) -> Result<(), String> {
        check_epsilon(self.max_epsilon).map_err(|e| format!("policy.max_epsilon: {e}"))?;
        for (i, rule) in self.planners.iter().enumerate() {
            let at = format!("[[policy.planners]] entry {}", i + 1);
            if rule.datasets.is_empty() {
                return Err(format!("{at}: `datasets` is empty; name datasets or \"*\""));
            }
            if let Some(d) = rule
                .datasets
                .iter()
                .find(|d| *d != "*" && !datasets.contains(d.as_str()))
            {
                return Err(format!(
                    "{at}: dataset '{d}' is not among [[datasets]] or [[events]]"
                ));
            }
            if rule.planners.is_empty() && rule.organisations.is_empty() {
                return Err(format!(
                    "{at}: name `planners` or `organisations`, or the entry allows nobody"
                ));
            }
            if let Some(k) = rule.kinds.iter().find(|k| !QUERY_KINDS.contains(&k.as_str())) {
                return Err(format!(
                    "{at}: `kinds` names '{k}'; use {}",
                    QUERY_KINDS.join(", ")
                ));
            }
        }
        check_delta(self.delta).map_err(|e| format!("policy.delta: {e} (1e-6 is usual)"))?;
        for a in &self.allow_activation {
            if !self.partners.contains(a) {
                return Err(format!(
                    "policy.allow_activation names '{a}', which is not in policy.partners; add it there or remove it"
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for b in &self.budgets {
            if !datasets.contains(b.dataset.as_str()) {
                return Err(format!(
                    "policy.budgets names dataset '{}', which is not among [[datasets]] or [[events]]",
                    b.dataset
                ));
            }
            check_epsilon(b.epsilon)
                .map_err(|e| format!("policy.budgets for '{}' with '{}': {e}", b.dataset, b.partner))?;
            if !seen.insert((b.dataset.as_str(), b.partner.as_str())) {
                return Err(format!(
                    "policy.budgets has two entries for dataset '{}' with partner '{}'",
                    b.dataset, b.partner
                ));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeLimits {
    /// Largest identifier set a peer may announce (bounds memory).
    #[serde(default = "default_max_peer_set")]
    pub max_peer_set_size: u64,
    /// Points per chunk sent to the peer (at most 8192).
    #[serde(default = "default_chunk_points")]
    pub chunk_points: usize,
    /// Protocol sessions run at once; further offers are refused as busy.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Values (noise shares and cover counts) one job may make this node
    /// draw; an offer asking for more is refused before anything is drawn.
    #[serde(default = "default_max_job_values")]
    pub max_job_values: usize,
    /// An accepted offer whose session has not started after this long is
    /// dropped and its budget given back (a lost start or cancel).
    #[serde(default = "default_offer_start_seconds")]
    pub offer_start_seconds: u64,
    /// A session with no message from the peer for this long is ended by
    /// this node, whatever the coordinator does.
    #[serde(default = "default_session_idle_seconds")]
    pub session_idle_seconds: u64,
}

impl Default for NodeLimits {
    fn default() -> Self {
        Self {
            max_peer_set_size: default_max_peer_set(),
            chunk_points: default_chunk_points(),
            max_sessions: default_max_sessions(),
            max_job_values: default_max_job_values(),
            offer_start_seconds: default_offer_start_seconds(),
            session_idle_seconds: default_session_idle_seconds(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Csv,
    Parquet,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// Name planners use (`NODE/DATASET`).
    pub name: String,
    /// CSV or Parquet file as exported.
    pub path: PathBuf,
    /// Inferred from the extension when absent.
    pub format: Option<FileFormat>,
    /// Column holding the identifier.
    pub id_column: String,
    /// phone, email, cn_id, sha256_phone, sha256_email or custom.
    pub id_kind: IdKind,
    /// Other columns and the uses this node allows for them.
    #[serde(default)]
    pub columns: Vec<ColumnConfig>,
}

/// What an event table holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// Who saw which ad, on which channel, in which campaign, when.
    Exposures,
    /// Who converted, when, for how much.
    Conversions,
}

impl EventKind {
    pub fn label(self) -> &'static str {
        match self {
            EventKind::Exposures => "exposures",
            EventKind::Conversions => "conversions",
        }
    }
}

/// An event table (`examples/ATTRIBUTION.md` gives the row contract). Only
/// the identifier, the timestamp and the columns named here are read.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    pub name: String,
    pub kind: EventKind,
    pub path: PathBuf,
    pub format: Option<FileFormat>,
    pub id_column: String,
    pub id_kind: IdKind,
    /// RFC 3339 timestamps with an offset ("2026-03-01T09:30:00+08:00").
    pub ts_column: String,
    /// Exposures: the channel and campaign columns, and their declared values
    /// in the order results list them. A row with another label is dropped.
    pub channel_column: Option<String>,
    pub campaign_column: Option<String>,
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub campaigns: Vec<String>,
    /// Conversions: the value in CNY ("129.90"); a value that does not parse
    /// counts as 0.
    pub value_column: Option<String>,
}

impl EventsConfig {
    pub fn format(&self) -> Result<FileFormat, NodeError> {
        format_of(&self.name, &self.path, self.format)
    }

    fn check(&self) -> Result<(), String> {
        let named = |what: &str| format!("events '{}': {what}", self.name);
        let distinct = |list: &[String], key: &str| -> Result<(), String> {
            if list.is_empty() {
                return Err(named(&format!(
                    "`{key}` is empty; declare the labels results list"
                )));
            }
            if list.len() > MAX_GROUP_VALUES {
                return Err(named(&format!(
                    "`{key}` declares more than {MAX_GROUP_VALUES} labels"
                )));
            }
            for (i, v) in list.iter().enumerate() {
                if v.trim() != v || v.is_empty() || list[..i].contains(v) {
                    return Err(named(&format!(
                        "`{key}` entry {} is empty, padded with spaces, or repeated",
                        i + 1
                    )));
                }
            }
            Ok(())
        };
        match self.kind {
            EventKind::Exposures => {
                if self.channel_column.is_none() || self.campaign_column.is_none() {
                    return Err(named("exposures need `channel_column` and `campaign_column`"));
                }
                if self.value_column.is_some() {
                    return Err(named("`value_column` is for conversions; remove it"));
                }
                distinct(&self.channels, "channels")?;
                distinct(&self.campaigns, "campaigns")
            }
            EventKind::Conversions => {
                if self.value_column.is_none() {
                    return Err(named("conversions need `value_column`"));
                }
                if self.channel_column.is_some()
                    || self.campaign_column.is_some()
                    || !self.channels.is_empty()
                    || !self.campaigns.is_empty()
                {
                    return Err(named("channels and campaigns are for exposures; remove them"));
                }
                Ok(())
            }
        }
    }
}

/// A column of a dataset other than the identifier, and what this node lets
/// planners do with it. Every use is advertised; anything not listed is refused.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnConfig {
    pub name: String,
    /// What queries may do with the column.
    pub uses: Vec<ColumnUse>,
    /// Group columns: the labels results are broken down by; every other value
    /// (and a missing one) counts as "(other)". At most [`MAX_GROUP_VALUES`].
    pub values: Option<Vec<String>>,
    /// Measure columns: `[lo, hi]` each person's sum is clipped to, which
    /// bounds what one person can change a released sum by.
    pub clip: Option<[f64; 2]>,
}

/// What a query may do with a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnUse {
    /// Break results down by the column's declared values.
    Group,
    /// Sum the column (clipped) per result cell.
    Measure,
    /// Keep only the rows passing a test on the column.
    Filter,
}

impl ColumnUse {
    pub fn label(self) -> &'static str {
        match self {
            ColumnUse::Group => "group",
            ColumnUse::Measure => "measure",
            ColumnUse::Filter => "filter",
        }
    }
}

impl std::fmt::Display for ColumnUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// The label of every value of a group column outside its declared `values`.
pub const OTHER_LABEL: &str = "(other)";
/// Most declared `values` of one group column: cells multiply across columns.
pub const MAX_GROUP_VALUES: usize = 64;
/// Largest clipping bound in magnitude, so that sums over any dataset stay
/// far inside an i64 and exact in the protocol's plaintext space.
pub const MAX_CLIP: f64 = 1e12;

impl ColumnConfig {
    pub fn allows(&self, what: ColumnUse) -> bool {
        self.uses.contains(&what)
    }

    /// The labels of a group column in cell order: the declared values, then
    /// "(other)". Empty for a column without `values`.
    pub fn domain(&self) -> Vec<String> {
        match &self.values {
            Some(values) => values
                .iter()
                .cloned()
                .chain(std::iter::once(OTHER_LABEL.to_string()))
                .collect(),
            None => Vec::new(),
        }
    }

    /// A measure's clipping bound `max(|lo|, |hi|)` rounded up (0 without a
    /// clip): the scale of its noise and the coordinator's too (it computes
    /// the same from the advertised range).
    pub fn bound(&self) -> u64 {
        self.clip
            .map_or(0, |[lo, hi]| lo.abs().max(hi.abs()).ceil() as u64)
    }

    fn check(&self, dataset: &str) -> Result<(), String> {
        let at = format!("dataset '{dataset}', column '{}'", self.name);
        if self.uses.is_empty() {
            return Err(format!(
                "{at}: `uses` is empty; list at least one of \"group\", \"measure\", \"filter\", or remove the column"
            ));
        }
        for (i, u) in self.uses.iter().enumerate() {
            if self.uses[..i].contains(u) {
                return Err(format!("{at}: `uses` lists \"{u}\" twice; list each use once"));
            }
        }
        match (&self.values, self.allows(ColumnUse::Group)) {
            (None, true) => {
                return Err(format!(
                    "{at}: a group column needs `values`, the labels to break results down by"
                ));
            }
            (Some(_), false) => {
                return Err(format!(
                    "{at}: `values` is set but `uses` does not include \"group\"; add it or remove `values`"
                ));
            }
            (Some(values), true) => {
                if values.is_empty() || values.len() > MAX_GROUP_VALUES {
                    return Err(format!(
                        "{at}: `values` has {} entries; list between 1 and {MAX_GROUP_VALUES}",
                        values.len()
                    ));
                }
                // Indices, not the values: a label could be a customer's data.
                for (i, v) in values.iter().enumerate() {
                    if v == OTHER_LABEL {
                        return Err(format!(
                            "{at}: `values` entry {} is \"{OTHER_LABEL}\", which is reserved for values outside the list; remove it",
                            i + 1
                        ));
                    }
                    if let Some(j) = values[..i].iter().position(|w| w == v) {
                        return Err(format!(
                            "{at}: `values` entries {} and {} are equal; list each value once",
                            j + 1,
                            i + 1
                        ));
                    }
                }
            }
            (None, false) => {}
        }
        match (self.clip, self.allows(ColumnUse::Measure)) {
            (None, true) => Err(format!(
                "{at}: a measure column needs `clip = [lo, hi]`, the range each person's value is clipped to"
            )),
            (Some(_), false) => Err(format!(
                "{at}: `clip` is set but `uses` does not include \"measure\"; add it or remove `clip`"
            )),
            (Some([lo, hi]), true) => {
                if !lo.is_finite() || !hi.is_finite() || lo > hi {
                    Err(format!(
                        "{at}: `clip` must be two finite numbers [lo, hi] with lo <= hi"
                    ))
                } else if lo.abs().max(hi.abs()) > MAX_CLIP {
                    Err(format!("{at}: `clip` bounds must lie within ±{MAX_CLIP:e}"))
                } else {
                    Ok(())
                }
            }
            (None, false) => Ok(()),
        }
    }
}

impl DatasetConfig {
    fn check(&self) -> Result<(), String> {
        for (i, c) in self.columns.iter().enumerate() {
            if c.name == self.id_column {
                return Err(format!(
                    "dataset '{}', column '{}': it is the `id_column`; remove it from `columns`",
                    self.name, c.name
                ));
            }
            if self.columns[..i].iter().any(|d| d.name == c.name) {
                return Err(format!(
                    "dataset '{}', column '{}': named twice in `columns`; merge the entries",
                    self.name, c.name
                ));
            }
            c.check(&self.name)?;
        }
        Ok(())
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("jointly-data")
}
fn default_country() -> String {
    "CN".into()
}
fn default_reconnect_seconds() -> u64 {
    2
}
fn default_max_peer_set() -> u64 {
    50_000_000
}
fn default_chunk_points() -> usize {
    4096
}
fn default_max_sessions() -> usize {
    4
}
fn default_max_job_values() -> usize {
    2_000_000
}
fn default_offer_start_seconds() -> u64 {
    120
}
fn default_session_idle_seconds() -> u64 {
    300
}
fn default_min_aggregation() -> u64 {
    10
}
fn default_max_epsilon() -> f64 {
    1.0
}
fn default_delta() -> f64 {
    1e-6
}
fn default_min_activation() -> u64 {
    100
}

impl NodeConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, NodeError> {
        let text = std::fs::read_to_string(path).map_err(|source| NodeError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| match e {
            NodeError::ConfigInvalid { message, .. } => NodeError::ConfigInvalid {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses configuration text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, NodeError> {
        let invalid = |message: String| NodeError::ConfigInvalid {
            path: PathBuf::from("<config>"),
            message,
        };
        let mut config: NodeConfig = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut config.identity_key);
        resolve(&mut config.data_dir);
        if let Some(ca) = config.coordinator.ca_cert.as_mut() {
            resolve(ca);
        }
        for d in &mut config.datasets {
            resolve(&mut d.path);
        }
        for e in &mut config.events {
            resolve(&mut e.path);
        }
        if config.name.trim().is_empty() {
            return Err(invalid(
                "`name` is empty: set the name this node is registered under".into(),
            ));
        }
        if !(1..=jointly_protocol::session::stream::MAX_CHUNK_POINTS).contains(&config.limits.chunk_points) {
            return Err(invalid(format!(
                "limits.chunk_points = {} is outside 1..={}",
                config.limits.chunk_points,
                jointly_protocol::session::stream::MAX_CHUNK_POINTS
            )));
        }
        let mut names = std::collections::BTreeSet::new();
        for d in &config.datasets {
            if !names.insert(d.name.as_str()) {
                return Err(invalid(format!("dataset name '{}' appears twice", d.name)));
            }
            d.check().map_err(invalid)?;
        }
        for e in &config.events {
            if !names.insert(e.name.as_str()) {
                return Err(invalid(format!(
                    "dataset name '{}' appears twice (datasets and events share names)",
                    e.name
                )));
            }
            e.check().map_err(invalid)?;
        }
        config.policy.check(&names).map_err(invalid)?;
        if !config.test_deployment
            && let Some(p) = config
                .policy
                .partners
                .iter()
                .find(|p| !config.policy.partner_keys.contains_key(*p))
        {
            return Err(invalid(format!(
                "partner '{p}' has no pinned key in policy.partner_keys: without it the coordinator could stand in for '{p}'. Add its public key (from `jointly-node keygen`), or set test_deployment = true for a test deployment"
            )));
        }
        check_plain_http(&config.coordinator.url).map_err(invalid)?;
        Ok(config)
    }
}

/// Plain HTTP carries the node's session frames unencrypted: allowed to a
/// loopback coordinator only.
fn check_plain_http(url: &str) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Ok(());
    };
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "coordinator.url = {url:?} is plain HTTP to a host other than loopback; use https:// with coordinator.ca_cert"
        ))
    }
}

impl DatasetConfig {
    pub fn format(&self) -> Result<FileFormat, NodeError> {
        format_of(&self.name, &self.path, self.format)
    }
}

/// The declared format, or the one the file's extension names.
fn format_of(name: &str, path: &Path, format: Option<FileFormat>) -> Result<FileFormat, NodeError> {
    if let Some(f) = format {
        return Ok(f);
    }
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") | Some("txt") => Ok(FileFormat::Csv),
        Some("parquet") | Some("pq") => Ok(FileFormat::Parquet),
        _ => Err(NodeError::Dataset {
            dataset: name.to_string(),
            path: path.to_path_buf(),
            message: "cannot tell the file format from its extension: set format = \"csv\" or \"parquet\""
                .into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../examples/configs/node.toml");

    #[test]
    fn documented_example_parses() {
        let c = NodeConfig::parse(EXAMPLE, Path::new("/etc/jointly")).expect("example parses");
        assert_eq!(c.name, "bank");
        assert_eq!(c.identity_key, Path::new("/etc/jointly/bank.key"));
        assert_eq!(c.datasets[0].id_kind, IdKind::Phone);
        assert!(c.policy.partners.contains(&"partner".to_string()));
        assert_eq!(c.policy.min_activation, 100);
        assert_eq!(c.policy.allow_activation, vec!["partner".to_string()]);
        let columns = &c.datasets[0].columns;
        assert_eq!(columns[0].uses, vec![ColumnUse::Group, ColumnUse::Filter]);
        assert_eq!(columns[0].domain(), vec!["T1", "T2", "T3", "T4", "T5", "(other)"]);
        assert!(columns[0].allows(ColumnUse::Filter) && !columns[0].allows(ColumnUse::Measure));
        assert_eq!(columns[1].clip, Some([0.0, 1_000_000.0]));
        assert!(columns[1].domain().is_empty());
        assert_eq!(columns[2].uses, vec![ColumnUse::Filter]);
    }

    #[test]
    fn event_tables_are_declared_and_checked() {
        let c = NodeConfig::parse(EXAMPLE, Path::new("/etc/jointly")).expect("example parses");
        let e = &c.events[0];
        assert_eq!((e.name.as_str(), e.kind), ("conversions", EventKind::Conversions));
        assert_eq!(e.path, Path::new("/etc/jointly/bank_conversions.csv"));
        assert_eq!(e.value_column.as_deref(), Some("value"));
        let exposures = |extra: &str| {
            format!(
                "{EXAMPLE}\n[[events]]\nname = \"exposures\"\nkind = \"exposures\"\npath = \"e.csv\"\n\
                 id_column = \"mobile\"\nid_kind = \"phone\"\nts_column = \"ts\"\n{extra}"
            )
        };
        let full = "channel_column = \"channel\"\ncampaign_column = \"campaign\"\n\
                    channels = [\"sms\", \"app\"]\ncampaigns = [\"C1\"]\n";
        let c = NodeConfig::parse(&exposures(full), Path::new(".")).expect("exposures parse");
        assert_eq!(c.events[1].channels, vec!["sms", "app"]);
        let cases: &[(&str, &str)] = &[
            (
                "channels = [\"sms\"]\ncampaigns = [\"C1\"]\n",
                "need `channel_column`",
            ),
            (
                "channel_column = \"c\"\ncampaign_column = \"d\"\nchannels = []\ncampaigns = [\"C1\"]\n",
                "`channels` is empty",
            ),
            (
                "channel_column = \"c\"\ncampaign_column = \"d\"\nchannels = [\"a\", \"a\"]\ncampaigns = [\"C1\"]\n",
                "repeated",
            ),
            (
                "channel_column = \"c\"\ncampaign_column = \"d\"\nchannels = [\" a\"]\ncampaigns = [\"C1\"]\n",
                "padded",
            ),
            (
                &format!("{full}value_column = \"v\"\n"),
                "`value_column` is for conversions",
            ),
        ];
        for (extra, want) in cases {
            let e = NodeConfig::parse(&exposures(extra), Path::new("."))
                .expect_err("invalid exposures")
                .to_string();
            assert!(e.contains("events 'exposures'") && e.contains(want), "{e}");
        }
        let clash = EXAMPLE.replace("name = \"conversions\"", "name = \"customers\"");
        let e = NodeConfig::parse(&clash, Path::new("."))
            .expect_err("clash")
            .to_string();
        assert!(e.contains("appears twice"), "{e}");
        let no_value = EXAMPLE.replace("value_column = \"value\"", "");
        let e = NodeConfig::parse(&no_value, Path::new("."))
            .expect_err("value")
            .to_string();
        assert!(e.contains("conversions need `value_column`"), "{e}");
    }

    #[test]
    fn policy_defaults_for_activation() {
        let text = EXAMPLE
            .replace("min_activation = 100", "")
            .replace("allow_activation = [\"partner\"]", "");
        let c = NodeConfig::parse(&text, Path::new(".")).expect("parses");
        assert_eq!(c.policy.min_activation, 100);
        assert!(c.policy.allow_activation.is_empty());
    }

    #[test]
    fn activation_only_for_partners() {
        let text = EXAMPLE.replace(
            "allow_activation = [\"partner\"]",
            "allow_activation = [\"stranger\"]",
        );
        let err = NodeConfig::parse(&text, Path::new(".")).expect_err("not a partner");
        let text = err.to_string();
        assert!(
            text.contains("policy.allow_activation")
                && text.contains("'stranger'")
                && text.contains("policy.partners"),
            "{text}"
        );
    }

    /// The error for the example with its `columns` list replaced by `columns`.
    fn column_error(columns: &str) -> String {
        let start = EXAMPLE.find("columns = [").expect("example has columns");
        let text = format!("{}columns = [\n{columns}\n]\n", &EXAMPLE[..start]);
        NodeConfig::parse(&text, Path::new("."))
            .expect_err("invalid columns")
            .to_string()
    }

    #[test]
    fn column_declarations_are_checked() {
        let cases: &[(&str, &[&str])] = &[
            (r#"{ name = "c", uses = [] }"#, &["column 'c'", "`uses` is empty"]),
            (
                r#"{ name = "c", uses = ["filter", "filter"] }"#,
                &["column 'c'", "\"filter\" twice"],
            ),
            (
                r#"{ name = "c", uses = ["group"] }"#,
                &["column 'c'", "needs `values`"],
            ),
            (
                r#"{ name = "c", uses = ["filter"], values = ["a"] }"#,
                &["column 'c'", "`values` is set"],
            ),
            (
                r#"{ name = "c", uses = ["group"], values = [] }"#,
                &["column 'c'", "`values` has 0 entries"],
            ),
            (
                r#"{ name = "c", uses = ["group"], values = ["a", "(other)"] }"#,
                &["column 'c'", "entry 2", "reserved"],
            ),
            (
                r#"{ name = "c", uses = ["group"], values = ["a", "b", "a"] }"#,
                &["column 'c'", "entries 1 and 3"],
            ),
            (
                r#"{ name = "c", uses = ["measure"] }"#,
                &["column 'c'", "needs `clip"],
            ),
            (
                r#"{ name = "c", uses = ["filter"], clip = [0, 1] }"#,
                &["column 'c'", "`clip` is set"],
            ),
            (
                r#"{ name = "c", uses = ["measure"], clip = [2, 1] }"#,
                &["column 'c'", "lo <= hi"],
            ),
            (
                r#"{ name = "c", uses = ["measure"], clip = [0, inf] }"#,
                &["column 'c'", "finite"],
            ),
            (
                r#"{ name = "c", uses = ["measure"], clip = [0, nan] }"#,
                &["column 'c'", "finite"],
            ),
            (
                r#"{ name = "c", uses = ["measure"], clip = [-2e12, 0] }"#,
                &["column 'c'", "within"],
            ),
            (
                r#"{ name = "c", uses = ["filter"] }, { name = "c", uses = ["group"], values = ["x"] }"#,
                &["column 'c'", "named twice"],
            ),
            (
                r#"{ name = "phone", uses = ["filter"] }"#,
                &["column 'phone'", "`id_column`"],
            ),
            (r#"{ name = "c", uses = ["sort"] }"#, &["sort"]),
        ];
        for (columns, wanted) in cases {
            let text = column_error(columns);
            for w in *wanted {
                assert!(text.contains(w), "{columns}: {text} lacks {w}");
            }
            if wanted.len() > 1 {
                assert!(text.contains("dataset 'customers'"), "{text}");
            }
        }
        let values: Vec<String> = (0..=MAX_GROUP_VALUES).map(|i| format!("\"v{i}\"")).collect();
        let text = column_error(&format!(
            r#"{{ name = "c", uses = ["group"], values = [{}] }}"#,
            values.join(",")
        ));
        assert!(text.contains("`values` has 65 entries"), "{text}");
        // The largest allowed list and bound pass.
        let start = EXAMPLE.find("columns = [").expect("example has columns");
        let ok = format!(
            "{}columns = [{{ name = \"c\", uses = [\"group\", \"measure\"], values = [{}], clip = [-1e12, 1e12] }}]\n",
            &EXAMPLE[..start],
            values[..MAX_GROUP_VALUES].join(",")
        );
        let c = NodeConfig::parse(&ok, Path::new(".")).expect("limits are inclusive");
        assert_eq!(c.datasets[0].columns[0].domain().len(), MAX_GROUP_VALUES + 1);
    }

    #[test]
    fn production_needs_pinned_partners_and_tls_off_loopback() {
        let c = NodeConfig::parse(EXAMPLE, Path::new(".")).expect("example parses");
        assert!(c.policy.partner_keys.contains_key("partner") && !c.test_deployment);
        assert_eq!(c.policy.min_set_size(), 10);
        let unpinned = EXAMPLE.replace("partner_keys = { partner =", "# partner_keys = { partner =");
        let e = NodeConfig::parse(&unpinned, Path::new("."))
            .expect_err("unpinned")
            .to_string();
        assert!(
            e.contains("partner 'partner'") && e.contains("policy.partner_keys"),
            "{e}"
        );
        let test = format!(
            "test_deployment = true
{unpinned}"
        );
        assert!(
            NodeConfig::parse(&test, Path::new("."))
                .expect("test")
                .test_deployment
        );
        for url in ["http://10.0.0.5:7700", "http://coordinator.bank.cn:7700"] {
            let remote = EXAMPLE.replace("http://127.0.0.1:7700", url);
            let e = NodeConfig::parse(&remote, Path::new("."))
                .expect_err("plain http")
                .to_string();
            assert!(e.contains("plain HTTP") && e.contains("https://"), "{e}");
        }
        for url in [
            "http://localhost:7700",
            "http://[::1]:7700",
            "https://coordinator.bank.cn:7700",
        ] {
            let ok = EXAMPLE.replace("http://127.0.0.1:7700", url);
            NodeConfig::parse(&ok, Path::new(".")).expect(url);
        }
    }

    #[test]
    fn planner_rules_are_checked_and_matched() {
        let c = NodeConfig::parse(EXAMPLE, Path::new(".")).expect("example parses");
        let p = &c.policy;
        assert_eq!(p.planner_rule("customers", "ana", "bank", "breakdown"), Some(0));
        assert_eq!(
            p.planner_rule("customers", "lina.partner", "partner", "overlap"),
            Some(1)
        );
        assert_eq!(
            p.planner_rule("customers", "lina.partner", "partner", "breakdown"),
            None
        );
        assert_eq!(
            p.planner_rule("conversions", "lina.partner", "partner", "overlap"),
            None
        );
        assert_eq!(p.planner_rule("customers", "eve", "elsewhere", "overlap"), None);
        for (rule, want) in [
            ("datasets = []\norganisations = [\"bank\"]", "`datasets` is empty"),
            (
                "datasets = [\"nope\"]\norganisations = [\"bank\"]",
                "dataset 'nope'",
            ),
            ("datasets = [\"*\"]", "allows nobody"),
            (
                "datasets = [\"*\"]\nplanners = [\"a\"]\nkinds = [\"sort\"]",
                "'sort'",
            ),
        ] {
            let text = format!("{EXAMPLE}\n[[policy.planners]]\n{rule}\n");
            let e = NodeConfig::parse(&text, Path::new("."))
                .expect_err(rule)
                .to_string();
            assert!(
                e.contains("[[policy.planners]] entry 3") && e.contains(want),
                "{e}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = EXAMPLE.replace("allow_exact", "allow_exakt");
        let err = NodeConfig::parse(&text, Path::new(".")).expect_err("typo");
        assert!(err.to_string().contains("allow_exakt"), "{err}");
    }
}
