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
    /// Credentials of the people the deployment registers.
    pub credentials: Credentials,
}

/// Credential files of a written deployment (mode 0600): a planner of
/// workspace [`WORKSPACE`], an auditor and an operator of every workspace.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub planner: PathBuf,
    pub auditor: PathBuf,
    pub operator: PathBuf,
}

/// The workspace the deployment's planner works in.
pub const WORKSPACE: &str = "campaigns";
/// The organisation everyone the deployment registers belongs to; the
/// nodes' `[[policy.planners]]` name it.
pub const ORGANISATION: &str = "bank";

/// Registers the deployment's people at its coordinator (a new key for
/// anyone already there) and writes their credentials.
pub fn register_people(coordinator_config: &Path, dir: &Path) -> anyhow::Result<Credentials> {
    use jointly_coordinator::{
        CoordinatorConfig, operator,
        registry::{self, NewPrincipal, Role},
    };
    let config = CoordinatorConfig::load(coordinator_config)?;
    let existing: Vec<String> = operator::list(&config)?.into_iter().map(|p| p.name).collect();
    let people = [
        ("planner", Role::Planner, WORKSPACE),
        ("auditor", Role::Auditor, registry::ALL_WORKSPACES),
        ("operator", Role::Operator, registry::ALL_WORKSPACES),
    ];
    let mut paths = Vec::new();
    for (name, role, workspace) in people {
        let new = NewPrincipal {
            name: name.into(),
            organisation: ORGANISATION.into(),
            role,
            workspaces: vec![workspace.into()],
            valid_days: 0,
        };
        let rotate = existing.iter().any(|e| e == name);
        let (_, credential, text) = operator::issue(&config, &new, rotate)?;
        let path = dir.join("credentials").join(format!("{name}.toml"));
        credential.save(&path, &text).map_err(anyhow::Error::msg)?;
        paths.push(path);
    }
    let [planner, auditor, operator]: [PathBuf; 3] = paths
        .try_into()
        .map_err(|_| anyhow::anyhow!("internal error: three credentials expected"))?;
    Ok(Credentials {
        planner,
        auditor,
        operator,
    })
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
    /// Campaign event tables: the bank also declares its conversions, the
    /// partner its exposures and its test/control split.
    pub campaign: Option<CampaignFiles>,
}

/// The files `campaign_data::generate_campaign` writes.
#[derive(Clone, Debug)]
pub struct CampaignFiles {
    pub exposures: PathBuf,
    pub conversions: PathBuf,
    pub groups: PathBuf,
}

impl CampaignFiles {
    /// The files as absolute paths, for configurations read from elsewhere.
    pub fn canonical(d: &crate::campaign_data::CampaignData) -> std::io::Result<Self> {
        Ok(CampaignFiles {
            exposures: d.exposures_path.canonicalize()?,
            conversions: d.conversions_path.canonicalize()?,
            groups: d.groups_path.canonicalize()?,
        })
    }
}

impl From<&crate::campaign_data::CampaignData> for CampaignFiles {
    fn from(d: &crate::campaign_data::CampaignData) -> Self {
        CampaignFiles {
            exposures: d.exposures_path.clone(),
            conversions: d.conversions_path.clone(),
            groups: d.groups_path.clone(),
        }
    }
}

/// The policy keys a generated deployment sets (see README, "Node policy").
#[derive(Clone, Copy, Debug)]
pub struct PolicySpec {
    pub allow_exact: bool,
    pub min_aggregation: u64,
    pub max_epsilon: f64,
    /// Monthly budget per dataset and partner.
    pub budget_epsilon: f64,
    /// Smallest segment whose members a node delivers.
    pub min_activation: u64,
    /// Each node lists its peer in `allow_activation`, so either may receive
    /// the members of a segment.
    pub allow_activation: bool,
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
            min_activation: 1,
            allow_activation: true,
        }
    }

    /// What a bank would run: noise only, small counts withheld.
    pub fn production() -> Self {
        Self {
            allow_exact: false,
            min_aggregation: 10,
            max_epsilon: 1.0,
            budget_epsilon: 8.0,
            min_activation: 100,
            allow_activation: false,
        }
    }

    /// The demo and `jointly datagen`: production thresholds and budgets,
    /// exact results allowed so the noised ones can be compared with them, and
    /// segments activated at either node.
    pub fn demo() -> Self {
        Self {
            allow_exact: true,
            allow_activation: true,
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

/// A column of a generated dataset as the node declares it: every column is a
/// filter; a group column lists its values, a measure column its clip range.
struct ColumnSpec {
    name: &'static str,
    values: &'static [&'static str],
    clip: Option<[f64; 2]>,
}

const fn group(name: &'static str, values: &'static [&'static str]) -> ColumnSpec {
    ColumnSpec {
        name,
        values,
        clip: None,
    }
}

const fn measure(name: &'static str, lo: f64, hi: f64) -> ColumnSpec {
    ColumnSpec {
        name,
        values: &[],
        clip: Some([lo, hi]),
    }
}

/// The bank's columns (see `datagen::fill_bank` for their values).
const BANK_COLUMNS: &[ColumnSpec] = &[
    measure("age", 18.0, 100.0),
    group("aum_tier", &["T1", "T2", "T3", "T4", "T5"]),
    group("has_credit_card", &["true", "false"]),
    measure("deposit_balance", 0.0, 1_000_000.0),
    group("city", &crate::datagen::CITIES),
];

/// The partner's columns (see `datagen::fill_partner`).
const PARTNER_COLUMNS: &[ColumnSpec] = &[
    group("interest", &crate::datagen::INTERESTS),
    group("spend_band", &["low", "mid", "high"]),
    measure("annual_spend", 0.0, 250_000.0),
    group("signup_channel", &["app", "web", "store"]),
];

/// What the generated deployments declare of each side's columns, as the
/// plaintext oracle takes it: the tests and the demo check against these.
pub struct DeclaredColumns {
    pub bank: Vec<crate::plaintext::PlainColumn>,
    pub partner: Vec<crate::plaintext::PlainColumn>,
}

pub fn declared_columns() -> DeclaredColumns {
    let plain = |columns: &[ColumnSpec]| {
        columns
            .iter()
            .map(|c| crate::plaintext::PlainColumn {
                name: c.name.to_string(),
                values: (!c.values.is_empty()).then(|| c.values.iter().map(|v| v.to_string()).collect()),
                clip: c.clip.map(|[lo, hi]| (lo, hi)),
            })
            .collect()
    };
    DeclaredColumns {
        bank: plain(BANK_COLUMNS),
        partner: plain(PARTNER_COLUMNS),
    }
}

fn column_toml(c: &ColumnSpec) -> String {
    let mut uses = Vec::new();
    let mut rest = String::new();
    if !c.values.is_empty() {
        uses.push("\"group\"");
        let values: Vec<String> = c.values.iter().map(|v| format!("\"{v}\"")).collect();
        rest.push_str(&format!(", values = [{}]", values.join(", ")));
    }
    if let Some([lo, hi]) = c.clip {
        uses.push("\"measure\"");
        rest.push_str(&format!(", clip = [{lo:?}, {hi:?}]"));
    }
    uses.push("\"filter\"");
    format!(
        "  {{ name = \"{}\", uses = [{}]{rest} }},\n",
        c.name,
        uses.join(", ")
    )
}

/// The organisations whose planners a generated deployment lets query
/// every dataset: the joint campaign's two parties.
pub const PLANNER_ORGANISATIONS: [&str; 2] = ["bank", "partner"];

#[allow(clippy::too_many_arguments)]
fn node_config(
    name: &str,
    peer: &str,
    peer_key: &str,
    link: &str,
    data: &Path,
    dataset: &str,
    id_column: &str,
    columns: &[ColumnSpec],
    policy: &PolicySpec,
) -> String {
    let columns = columns.iter().map(column_toml).collect::<String>();
    let PolicySpec {
        allow_exact,
        min_aggregation,
        max_epsilon,
        budget_epsilon,
        min_activation,
        allow_activation,
    } = policy;
    let organisations = labels(&PLANNER_ORGANISATIONS);
    let activation = if *allow_activation {
        format!("[\"{peer}\"]")
    } else {
        "[]".into()
    };
    format!(
        "name = \"{name}\"\nidentity_key = \"{name}.key\"\ndata_dir = \"{name}-data\"\ndefault_country = \"CN\"\n\n\
         [coordinator]\n{link}\n[policy]\npartners = [\"{peer}\"]\nallow_exact = {allow_exact}\n\
         min_aggregation = {min_aggregation}\nmax_epsilon = {max_epsilon:?}\ndelta = 1e-6\n\
         min_activation = {min_activation}\nallow_activation = {activation}\n\
         partner_keys = {{ {peer} = \"{peer_key}\" }}\n\n\
         [[policy.planners]]\ndatasets = [\"*\"]\norganisations = [{organisations}]\n\n\
         [[policy.budgets]]\ndataset = \"{dataset}\"\npartner = \"{peer}\"\nepsilon = {budget_epsilon:?}\nperiod = \"month\"\n\n\
         [[datasets]]\nname = \"{dataset}\"\npath = \"{}\"\nid_column = \"{id_column}\"\nid_kind = \"phone\"\ncolumns = [\n{columns}]\n",
        toml_str(data)
    )
}

fn labels(list: &[&str]) -> String {
    list.iter()
        .map(|l| format!("\"{l}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn budget(dataset: &str, peer: &str, policy: &PolicySpec) -> String {
    format!(
        "\n[[policy.budgets]]\ndataset = \"{dataset}\"\npartner = \"{peer}\"\nepsilon = {:?}\nperiod = \"month\"\n",
        policy.budget_epsilon
    )
}

/// The bank's conversions (columns as `campaign_data` writes them).
fn bank_campaign(files: &CampaignFiles, policy: &PolicySpec) -> String {
    budget("conversions", "partner", policy)
        + &format!(
            "\n[[events]]\nname = \"conversions\"\nkind = \"conversions\"\npath = \"{}\"\n\
             id_column = \"phone\"\nid_kind = \"phone\"\nts_column = \"ts\"\nvalue_column = \"value\"\n",
            toml_str(&files.conversions)
        )
}

/// The partner's exposures and its campaign's test/control split.
fn partner_campaign(files: &CampaignFiles, policy: &PolicySpec) -> String {
    use crate::campaign_data::{CAMPAIGNS, CHANNELS};
    budget("exposures", "bank", policy)
        + &budget("groups", "bank", policy)
        + &format!(
            "\n[[events]]\nname = \"exposures\"\nkind = \"exposures\"\npath = \"{}\"\n\
             id_column = \"mobile\"\nid_kind = \"phone\"\nts_column = \"ts\"\n\
             channel_column = \"channel\"\ncampaign_column = \"campaign\"\n\
             channels = [{}]\ncampaigns = [{}]\n\n\
             [[datasets]]\nname = \"groups\"\npath = \"{}\"\nid_column = \"mobile\"\nid_kind = \"phone\"\n\
             columns = [{{ name = \"campaign_group\", uses = [\"group\"], values = [\"test\", \"control\"] }}]\n",
            toml_str(&files.exposures),
            labels(&CHANNELS),
            labels(&CAMPAIGNS),
            toml_str(&files.groups)
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
        &partner_key,
        &url,
        &spec.bank_data,
        "customers",
        "phone",
        BANK_COLUMNS,
        &spec.policy,
    );
    let partner = node_config(
        "partner",
        "bank",
        &bank_key,
        &url,
        &spec.partner_data,
        "users",
        "mobile",
        PARTNER_COLUMNS,
        &spec.policy,
    );
    let coordinator_config = dir.join("coordinator.toml");
    let credentials = Credentials {
        planner: PathBuf::new(),
        auditor: PathBuf::new(),
        operator: PathBuf::new(),
    };
    let mut d = Deployment {
        dir: dir.to_path_buf(),
        coordinator_config,
        bank_config: dir.join("bank.toml"),
        partner_config: dir.join("partner.toml"),
        credentials,
    };
    let (bank, partner) = match &spec.campaign {
        Some(files) => (
            bank + &bank_campaign(files, &spec.policy),
            partner + &partner_campaign(files, &spec.policy),
        ),
        None => (bank, partner),
    };
    for (path, text) in [
        (&d.coordinator_config, coordinator),
        (&d.bank_config, bank),
        (&d.partner_config, partner),
    ] {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    d.credentials = register_people(&d.coordinator_config, dir)?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use jointly_node::{
        NodeConfig,
        config::ColumnUse,
        dataset::{LoadedDataset, load},
    };
    use jointly_protocol::ids::normalize::Normalizer;

    use super::*;
    use crate::datagen::{DataFormat, DatagenSpec, generate};

    fn loaded(config: &Path) -> (NodeConfig, LoadedDataset) {
        let c = NodeConfig::load(config).expect("generated config parses");
        let d = load(&c.datasets[0], &Normalizer::default()).expect("declared columns load");
        (c, d)
    }

    /// Generated configurations declare every generated column, and the
    /// declared group values are the ones the generator writes.
    #[test]
    fn generated_configs_load_their_data() {
        for (format, policy) in [
            (DataFormat::Csv, PolicySpec::testing()),
            (DataFormat::Parquet, PolicySpec::production()),
        ] {
            let dir = std::env::temp_dir().join(format!("jointly-deploy-{}-{format:?}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let spec = DatagenSpec {
                bank_rows: 300,
                partner_rows: 200,
                overlap: 100,
                seed: 3,
                messy: false,
                format,
            };
            let data = generate(&spec, &dir).expect("datagen");
            let d = write(
                &dir,
                &DeploymentSpec {
                    bank_data: data.bank_path.clone(),
                    partner_data: data.partner_path.clone(),
                    listen: "127.0.0.1:1".into(),
                    policy,
                    tls: None,
                    campaign: None,
                },
            )
            .expect("deployment");
            let (bank, customers) = loaded(&d.bank_config);
            let (partner, users) = loaded(&d.partner_config);
            assert_eq!(bank.policy.min_activation, policy.min_activation);
            let expected: Vec<String> = if policy.allow_activation {
                vec!["partner".into()]
            } else {
                vec![]
            };
            assert_eq!(bank.policy.allow_activation, expected);
            // Production-like: the peer's key pinned, planners named.
            assert_eq!(
                bank.policy.partner_keys.get("partner").map(hex::encode),
                Some(key(&dir, "partner").expect("key"))
            );
            assert!(!bank.test_deployment && !partner.test_deployment);
            assert_eq!(
                partner.policy.planner_rule("users", "ana", "bank", "segment"),
                Some(0)
            );
            assert_eq!(partner.datasets[0].columns.len(), 4);
            for (data, columns) in [(&customers, BANK_COLUMNS), (&users, PARTNER_COLUMNS)] {
                let attributes = &data.attributes;
                assert_eq!(attributes.len(), data.ids.len());
                for c in columns {
                    assert!(attributes.select(&[]).is_ok());
                    if c.clip.is_some() {
                        assert!(attributes.measure(c.name).is_ok(), "{}", c.name);
                    }
                    if !c.values.is_empty() {
                        let g = attributes.groups(&[c.name.to_string()]).expect("group column");
                        // Clean data: no value outside the declared ones.
                        let other = (g.count - 1) as u32;
                        assert!(!g.codes.contains(&other), "{} has undeclared values", c.name);
                    }
                }
                for c in data.attributes.columns() {
                    assert!(c.allows(ColumnUse::Filter));
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
