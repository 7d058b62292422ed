//! The node's configuration file (`node.toml`). Every key has a default except
//! the node's name, its coordinator and its datasets; unknown keys are errors, so
//! a typo never silently falls back to a default. Relative paths are resolved
//! against the directory of the configuration file.

use std::path::{Path, PathBuf};

use jointly_protocol::{
    accounting::{check_delta, check_epsilon},
    ids::IdKind,
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
    /// the dataset's "*" entry.
    pub fn budget(&self, dataset: &str, partner: &str) -> Option<&BudgetConfig> {
        let of = |p: &str| {
            self.budgets
                .iter()
                .find(|b| b.dataset == dataset && b.partner == p)
        };
        of(partner).or_else(|| of("*"))
    }

    fn check(&self, datasets: &[DatasetConfig]) -> Result<(), String> {
        check_epsilon(self.max_epsilon).map_err(|e| format!("policy.max_epsilon: {e}"))?;
        check_delta(self.delta).map_err(|e| format!("policy.delta: {e} (1e-6 is usual)"))?;
        let mut seen = std::collections::BTreeSet::new();
        for b in &self.budgets {
            if !datasets.iter().any(|d| d.name == b.dataset) {
                return Err(format!(
                    "policy.budgets names dataset '{}', which is not among [[datasets]]",
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
}

impl Default for NodeLimits {
    fn default() -> Self {
        Self {
            max_peer_set_size: default_max_peer_set(),
            chunk_points: default_chunk_points(),
            max_sessions: default_max_sessions(),
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

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnConfig {
    pub name: String,
    /// Declared role, advertised to planners (for example "group", "measure").
    #[serde(default = "default_role")]
    pub role: String,
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
fn default_min_aggregation() -> u64 {
    10
}
fn default_max_epsilon() -> f64 {
    1.0
}
fn default_delta() -> f64 {
    1e-6
}
fn default_role() -> String {
    "attribute".into()
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
        if config.name.trim().is_empty() {
            return Err(invalid(
                "`name` is empty: set the name this node is registered under".into(),
            ));
        }
        if !(1..=jointly_protocol::overlap::MAX_CHUNK_POINTS).contains(&config.limits.chunk_points) {
            return Err(invalid(format!(
                "limits.chunk_points = {} is outside 1..={}",
                config.limits.chunk_points,
                jointly_protocol::overlap::MAX_CHUNK_POINTS
            )));
        }
        config.policy.check(&config.datasets).map_err(invalid)?;
        let mut names = std::collections::BTreeSet::new();
        for d in &config.datasets {
            if !names.insert(d.name.as_str()) {
                return Err(invalid(format!("dataset name '{}' appears twice", d.name)));
            }
        }
        Ok(config)
    }
}

impl DatasetConfig {
    pub fn format(&self) -> Result<FileFormat, NodeError> {
        if let Some(f) = self.format {
            return Ok(f);
        }
        match self
            .path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") | Some("txt") => Ok(FileFormat::Csv),
            Some("parquet") | Some("pq") => Ok(FileFormat::Parquet),
            _ => Err(NodeError::Dataset {
                dataset: self.name.clone(),
                path: self.path.clone(),
                message:
                    "cannot tell the file format from its extension: set format = \"csv\" or \"parquet\""
                        .into(),
            }),
        }
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
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = EXAMPLE.replace("allow_exact", "allow_exakt");
        let err = NodeConfig::parse(&text, Path::new(".")).expect_err("typo");
        assert!(err.to_string().contains("allow_exakt"), "{err}");
    }
}
