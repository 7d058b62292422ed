//! The node's configuration file (`node.toml`). Every key has a default except
//! the node's name, its coordinator and its datasets; unknown keys are errors, so
//! a typo never silently falls back to a default. Relative paths are resolved
//! against the directory of the configuration file.
//!
//! The file's sections are in `config/`: the policy (`policy.rs`), the
//! limits (`limits.rs`), datasets, event tables and their columns
//! (`datasets.rs`), and every key's default (`defaults.rs`). What is wrong
//! in a file is a [`ConfigError`], named by the key to fix.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::NodeError;
pub use crate::error::{ColumnProblem, ConfigError, EventsProblem, PlannerRuleProblem};

mod datasets;
mod defaults;
mod limits;
mod policy;

pub use datasets::{
    ColumnConfig, ColumnUse, DatasetConfig, EventKind, EventsConfig, FileFormat, MAX_CLIP, MAX_GROUP_VALUES,
    OTHER_LABEL,
};
use defaults::*;
pub use limits::NodeLimits;
pub use policy::{BudgetConfig, PlannerRule, Policy, QUERY_KINDS};

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

impl NodeConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, NodeError> {
        let text = std::fs::read_to_string(path).map_err(|source| NodeError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| match e {
            NodeError::ConfigInvalid { problem, .. } => NodeError::ConfigInvalid {
                path: path.to_path_buf(),
                problem,
            },
            other => other,
        })
    }

    /// Parses configuration text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, NodeError> {
        let invalid = |problem: ConfigError| NodeError::ConfigInvalid {
            path: PathBuf::from("<config>"),
            problem,
        };
        let mut config: NodeConfig =
            toml::from_str(text).map_err(|e| invalid(ConfigError::Toml(e.to_string())))?;
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
        config.check().map_err(invalid)?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.name.trim().is_empty() {
            return Err(ConfigError::EmptyName);
        }
        let max_chunk = jointly_protocol::session::stream::MAX_CHUNK_POINTS;
        if !(1..=max_chunk).contains(&self.limits.chunk_points) {
            return Err(ConfigError::ChunkPoints {
                value: self.limits.chunk_points,
                max: max_chunk,
            });
        }
        let mut names = std::collections::BTreeSet::new();
        for d in &self.datasets {
            if !names.insert(d.name.as_str()) {
                return Err(ConfigError::DatasetTwice { name: d.name.clone() });
            }
            d.check()?;
        }
        for e in &self.events {
            if !names.insert(e.name.as_str()) {
                return Err(ConfigError::EventsNameTwice { name: e.name.clone() });
            }
            e.check()?;
        }
        self.policy.check(&names)?;
        if !self.test_deployment
            && let Some(p) = self
                .policy
                .partners
                .iter()
                .find(|p| !self.policy.partner_keys.contains_key(*p))
        {
            return Err(ConfigError::UnpinnedPartner { partner: p.clone() });
        }
        check_plain_http(&self.coordinator.url)
    }
}

/// Plain HTTP carries the node's session frames unencrypted: allowed to a
/// loopback coordinator only.
fn check_plain_http(url: &str) -> Result<(), ConfigError> {
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
        Err(ConfigError::PlainHttp { url: url.to_string() })
    }
}

#[cfg(test)]
mod tests;
