//! Writes a ready-to-run deployment: identity keys, two node configurations and
//! a coordinator configuration that registers both keys. Used by `jointly
//! datagen`, the demo, the tests and the benchmark.

use std::path::{Path, PathBuf};

use anyhow::Context;
use jointly_node::identity::Identity;

/// Paths of a written deployment.
#[derive(Clone, Debug)]
pub struct Deployment {
    pub dir: PathBuf,
    pub coordinator_config: PathBuf,
    pub bank_config: PathBuf,
    pub partner_config: PathBuf,
}

/// How the two nodes' datasets and policies are set up.
#[derive(Clone, Debug)]
pub struct DeploymentSpec {
    pub bank_data: PathBuf,
    pub partner_data: PathBuf,
    /// `host:port` the coordinator listens on; nodes dial `http://` it.
    pub listen: String,
    /// Both nodes get this policy (each naming the other as partner).
    pub policy: PolicySpec,
    /// Serve TLS: the coordinator uses `cert`/`key`; nodes dial
    /// `https://{listen}`, trust `ca_cert` and check the name `domain`.
    pub tls: Option<TlsPaths>,
}

/// The policy keys a generated deployment sets (see README, "Node policy").
#[derive(Clone, Copy, Debug)]
pub struct PolicySpec {
    pub allow_exact: bool,
    pub min_aggregation: u64,
    pub max_epsilon: f64,
    /// Monthly budget per dataset and partner.
    pub budget_epsilon: f64,
}

impl PolicySpec {
    /// A test deployment: exact results allowed, nothing withheld, a budget
    /// large enough never to be the point.
    pub fn testing() -> Self {
        Self {
            allow_exact: true,
            min_aggregation: 0,
            max_epsilon: 1.0,
            budget_epsilon: 1000.0,
        }
    }

    /// What a bank would run: noise only, small counts withheld.
    pub fn production() -> Self {
        Self {
            allow_exact: false,
            min_aggregation: 10,
            max_epsilon: 1.0,
            budget_epsilon: 8.0,
        }
    }

    /// The demo and `jointly datagen`: production thresholds and budgets, and
    /// exact results allowed so the noised ones can be compared with them.
    pub fn demo() -> Self {
        Self {
            allow_exact: true,
            ..Self::production()
        }
    }
}

#[derive(Clone, Debug)]
pub struct TlsPaths {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Name in the coordinator's certificate.
    pub domain: String,
}

impl DeploymentSpec {
    /// The URL nodes and planners use to reach the coordinator.
    pub fn url(&self) -> String {
        match &self.tls {
            Some(_) => format!("https://{}", self.listen),
            None => format!("http://{}", self.listen),
        }
    }
}

fn toml_str(p: &Path) -> String {
    // TOML basic strings: escape backslashes and quotes.
    p.display().to_string().replace('\\', "\\\\").replace('"', "\\\"")
}

fn key(dir: &Path, name: &str) -> anyhow::Result<String> {
    let path = dir.join(format!("{name}.key"));
    let id = if path.exists() {
        Identity::load(&path)?
    } else {
        let id = Identity::generate();
        id.save(&path)?;
        id
    };
    Ok(hex::encode(id.public_key().as_bytes()))
}

#[allow(clippy::too_many_arguments)]
fn node_config(
    name: &str,
    peer: &str,
    link: &str,
    data: &Path,
    dataset: &str,
    id_column: &str,
    columns: &[(&str, &str)],
    policy: &PolicySpec,
) -> String {
    let columns = columns
        .iter()
        .map(|(c, r)| format!("  {{ name = \"{c}\", role = \"{r}\" }},\n"))
        .collect::<String>();
    let PolicySpec {
        allow_exact,
        min_aggregation,
        max_epsilon,
        budget_epsilon,
    } = policy;
    format!(
        "name = \"{name}\"\nidentity_key = \"{name}.key\"\ndata_dir = \"{name}-data\"\ndefault_country = \"CN\"\n\n\
         [coordinator]\n{link}\n[policy]\npartners = [\"{peer}\"]\nallow_exact = {allow_exact}\n\
         min_aggregation = {min_aggregation}\nmax_epsilon = {max_epsilon:?}\ndelta = 1e-6\n\n\
         [[policy.budgets]]\ndataset = \"{dataset}\"\npartner = \"{peer}\"\nepsilon = {budget_epsilon:?}\nperiod = \"month\"\n\n\
         [[datasets]]\nname = \"{dataset}\"\npath = \"{}\"\nid_column = \"{id_column}\"\nid_kind = \"phone\"\ncolumns = [\n{columns}]\n",
        toml_str(data)
    )
}

/// Writes keys (kept if present) and configurations into `dir`.
pub fn write(dir: &Path, spec: &DeploymentSpec) -> anyhow::Result<Deployment> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let bank_key = key(dir, "bank")?;
    let partner_key = key(dir, "partner")?;
    let mut link = format!("url = \"{}\"\n", spec.url());
    let mut tls = String::new();
    if let Some(t) = &spec.tls {
        link.push_str(&format!(
            "ca_cert = \"{}\"\ntls_domain = \"{}\"\n",
            toml_str(&t.ca_cert),
            t.domain
        ));
        tls = format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n\n",
            toml_str(&t.cert),
            toml_str(&t.key)
        );
    }
    let url = link;
    let coordinator = format!(
        "id = \"jointly-coordinator\"\nlisten = \"{}\"\ndatabase = \"coordinator.db\"\n\n{tls}\
         [[nodes]]\nname = \"bank\"\npublic_key = \"{bank_key}\"\n\n\
         [[nodes]]\nname = \"partner\"\npublic_key = \"{partner_key}\"\n",
        spec.listen
    );
    let bank = node_config(
        "bank",
        "partner",
        &url,
        &spec.bank_data,
        "customers",
        "phone",
        &[("aum_tier", "group"), ("deposit_balance", "measure")],
        &spec.policy,
    );
    let partner = node_config(
        "partner",
        "bank",
        &url,
        &spec.partner_data,
        "users",
        "mobile",
        &[("interest", "group"), ("annual_spend", "measure")],
        &spec.policy,
    );
    let d = Deployment {
        dir: dir.to_path_buf(),
        coordinator_config: dir.join("coordinator.toml"),
        bank_config: dir.join("bank.toml"),
        partner_config: dir.join("partner.toml"),
    };
    for (path, text) in [
        (&d.coordinator_config, coordinator),
        (&d.bank_config, bank),
        (&d.partner_config, partner),
    ] {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(d)
}
