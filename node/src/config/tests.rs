//! The configuration's parsing and checks, against the documented example.

use super::*;
use jointly_protocol::ids::normalize::IdKind;

const EXAMPLE: &str = include_str!("../../../examples/configs/node.toml");

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
