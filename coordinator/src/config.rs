//! The coordinator's configuration file (`coordinator.toml`). Unknown keys are
//! errors; relative paths are resolved against the file's directory.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{ConfigError, CoordinatorError, KeyError};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// Name nodes sign into their attach proof, so a proof made for one
    /// coordinator cannot be replayed to another.
    #[serde(default = "default_id")]
    pub id: String,
    /// Address to listen on for nodes and planners.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// SQLite database: jobs, results, their state.
    #[serde(default = "default_database")]
    pub database: PathBuf,
    /// TLS certificate and key (PEM). Without them the coordinator speaks plain
    /// HTTP/2: for loopback demos only.
    pub tls: Option<TlsFiles>,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub decryption: Decryption,
    /// The registry: nodes allowed to attach, with their Ed25519 public keys.
    #[serde(default, rename = "nodes")]
    pub nodes: Vec<RegisteredNode>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// How long nodes have to accept or refuse a job.
    #[serde(default = "default_offer")]
    pub offer_seconds: u64,
    /// A running job with no message from either node for this long fails.
    #[serde(default = "default_stall")]
    pub stall_seconds: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            offer_seconds: default_offer(),
            stall_seconds: default_stall(),
        }
    }
}

/// The baby-step giant-step table that recovers breakdown cells (PROTOCOLS.md
/// B.4). Built once (about 8 s on two cores at the default size) and cached.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decryption {
    /// The table holds 2^table_bits baby steps: 24 takes 128 MiB on disk and
    /// answers any cell within ±2^40 in about 0.1 s; 16 (1 MiB) suits tests.
    #[serde(default = "default_table_bits")]
    pub table_bits: u32,
    /// Where the table is cached.
    #[serde(default = "default_table_path")]
    pub table: PathBuf,
}

impl Default for Decryption {
    fn default() -> Self {
        Self {
            table_bits: default_table_bits(),
            table: default_table_path(),
        }
    }
}

fn default_table_bits() -> u32 {
    jointly_protocol::crypto::bsgs::DEFAULT_K
}
fn default_table_path() -> PathBuf {
    PathBuf::from("bsgs-table.bin")
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisteredNode {
    pub name: String,
    /// Hex of the node's 32-byte Ed25519 public key (`jointly-node keygen` prints it).
    pub public_key: String,
}

fn default_id() -> String {
    "jointly-coordinator".into()
}
fn default_listen() -> String {
    "127.0.0.1:7700".into()
}
fn default_database() -> PathBuf {
    PathBuf::from("coordinator.db")
}
fn default_offer() -> u64 {
    30
}
fn default_stall() -> u64 {
    120
}

impl CoordinatorConfig {
    pub fn load(path: &Path) -> Result<Self, CoordinatorError> {
        let in_file = |error| CoordinatorError::Config {
            path: path.to_path_buf(),
            error,
        };
        let text = std::fs::read_to_string(path).map_err(|e| in_file(ConfigError::Read(e)))?;
        Self::parse(&text, path.parent().unwrap_or(Path::new("."))).map_err(in_file)
    }

    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let mut c: CoordinatorConfig = toml::from_str(text).map_err(ConfigError::Syntax)?;
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut c.database);
        resolve(&mut c.decryption.table);
        let bits = c.decryption.table_bits;
        let (min, max) = (
            jointly_protocol::crypto::bsgs::MIN_K,
            jointly_protocol::crypto::bsgs::MAX_K,
        );
        if !(min..=max).contains(&bits) {
            return Err(ConfigError::TableBits { bits, min, max });
        }
        if let Some(tls) = c.tls.as_mut() {
            resolve(&mut tls.cert);
            resolve(&mut tls.key);
        }
        let mut seen = std::collections::BTreeSet::new();
        for n in &c.nodes {
            if !seen.insert(n.name.as_str()) {
                return Err(ConfigError::DuplicateNode { node: n.name.clone() });
            }
            n.key().map_err(|error| ConfigError::NodeKey {
                node: n.name.clone(),
                error,
            })?;
        }
        Ok(c)
    }
}

impl RegisteredNode {
    pub fn key(&self) -> Result<ed25519_dalek::VerifyingKey, KeyError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(self.public_key.trim(), &mut bytes).map_err(|_| KeyError::NotHex)?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::NotEd25519)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_parses() {
        let text = include_str!("../../examples/configs/coordinator.toml");
        let c = CoordinatorConfig::parse(text, Path::new("/srv")).expect("example parses");
        assert_eq!(c.nodes.len(), 2);
        assert_eq!(c.database, Path::new("/srv/coordinator.db"));
        let bad = text.replace("stall_seconds", "stall_secs");
        let e = CoordinatorConfig::parse(&bad, Path::new("/srv")).unwrap_err();
        assert!(matches!(e, ConfigError::Syntax(_)), "{e:?}");
        assert!(e.to_string().contains("stall_secs"), "{e}");
    }

    #[test]
    fn refusals_name_the_field_and_the_node() {
        let parse = |text: &str| CoordinatorConfig::parse(text, Path::new("/srv")).unwrap_err();
        let e = parse("[decryption]\ntable_bits = 2\n");
        assert!(matches!(e, ConfigError::TableBits { bits: 2, .. }), "{e:?}");
        assert!(
            e.to_string().starts_with("decryption.table_bits = 2 is outside"),
            "{e}"
        );
        let key = hex::encode(
            ed25519_dalek::SigningKey::from_bytes(&[7; 32])
                .verifying_key()
                .to_bytes(),
        );
        let node = |name: &str, key: &str| format!("[[nodes]]\nname = \"{name}\"\npublic_key = \"{key}\"\n");
        let e = parse(&format!("{}{}", node("bank", &key), node("bank", &key)));
        assert!(
            matches!(&e, ConfigError::DuplicateNode { node } if node == "bank"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "node 'bank' is registered twice");
        let e = parse(&node("bank", "zz"));
        assert!(
            matches!(&e, ConfigError::NodeKey { node, error: KeyError::NotHex } if node == "bank"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "node 'bank': public_key must be 64 hex characters");
    }
}
