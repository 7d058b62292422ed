//! A node refuses to start on bad input, naming the file and column and what to do.

use crate::support::*;
use jointly_examples::deploy::{self, DeploymentSpec};
use jointly_node::{Node, NodeConfig};

fn deployment(dir: &std::path::Path, bank: std::path::PathBuf) -> std::path::PathBuf {
    let partner = partner_csv(dir, "partner.csv", &["13812345678"]);
    let d = deploy::write(
        dir,
        &DeploymentSpec {
            bank_data: bank,
            partner_data: partner,
            listen: "127.0.0.1:1".into(),
            policy: jointly_examples::deploy::PolicySpec::testing(),
            tls: None,
            campaign: None,
        },
    )
    .expect("deployment");
    d.bank_config
}

#[test]
fn missing_file_is_named() {
    let dir = tempdir();
    let config = deployment(dir.path(), dir.path().join("nowhere.csv"));
    let err = Node::load(NodeConfig::load(&config).expect("config")).expect_err("missing file");
    let text = err.to_string();
    assert!(
        text.contains("nowhere.csv") && text.contains("file not found"),
        "{text}"
    );
}

#[test]
fn missing_column_is_named_with_the_columns_present() {
    let dir = tempdir();
    let bank = dir.path().join("bank.csv");
    std::fs::write(
        &bank,
        "customer_id,telephone,aum_tier,deposit_balance\nC1,13812345678,T1,3.5\n",
    )
    .expect("write");
    let config = deployment(dir.path(), bank);
    let err = Node::load(NodeConfig::load(&config).expect("config")).expect_err("missing column");
    let text = err.to_string();
    assert!(
        text.contains("column 'phone'") && text.contains("telephone") && text.contains("bank.csv"),
        "{text}"
    );
    assert!(!text.contains("13812345678"), "no row values in errors: {text}");
}

#[test]
fn unknown_config_key_is_named() {
    let dir = tempdir();
    let config = deployment(dir.path(), bank_csv(dir.path(), "bank.csv", &["13812345678"]));
    let text = std::fs::read_to_string(&config)
        .expect("read")
        .replace("allow_exact", "allow_exakt");
    std::fs::write(&config, text).expect("write");
    let err = NodeConfig::load(&config).expect_err("typo");
    assert!(
        err.to_string().contains("allow_exakt") && err.to_string().contains("bank.toml"),
        "{err}"
    );
}
