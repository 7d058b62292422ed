//! The configuration's parsing and checks, against the documented example.

use super::*;
use jointly_protocol::ids::normalize::IdKind;

const EXAMPLE: &str = include_str!("../../../examples/configs/node.toml");

/// What is wrong with this configuration text, which must not parse.
fn problem(text: &str) -> ConfigError {
    match NodeConfig::parse(text, Path::new(".")) {
        Err(NodeError::ConfigInvalid { problem, .. }) => problem,
        Err(other) => panic!("not a configuration problem: {other}"),
        Ok(_) => panic!("the configuration parsed"),
    }
}

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
    let cases: &[(&str, EventsProblem)] = &[
        (
            "channels = [\"sms\"]\ncampaigns = [\"C1\"]\n",
            EventsProblem::ExposuresNeedColumns,
        ),
        (
            "channel_column = \"c\"\ncampaign_column = \"d\"\nchannels = []\ncampaigns = [\"C1\"]\n",
            EventsProblem::NoLabels { key: "channels" },
        ),
        (
            "channel_column = \"c\"\ncampaign_column = \"d\"\nchannels = [\"a\", \"a\"]\ncampaigns = [\"C1\"]\n",
            EventsProblem::BadLabel {
                key: "channels",
                entry: 2,
            },
        ),
        (
            "channel_column = \"c\"\ncampaign_column = \"d\"\nchannels = [\" a\"]\ncampaigns = [\"C1\"]\n",
            EventsProblem::BadLabel {
                key: "channels",
                entry: 1,
            },
        ),
        (
            &format!("{full}value_column = \"v\"\n"),
            EventsProblem::ValueColumnForConversions,
        ),
    ];
    for (extra, want) in cases {
        let e = problem(&exposures(extra));
        assert!(
            matches!(&e, ConfigError::Events { name, problem } if name == "exposures" && problem == want),
            "{e}"
        );
        assert!(e.to_string().contains("events 'exposures'"), "{e}");
    }
    let clash = EXAMPLE.replace("name = \"conversions\"", "name = \"customers\"");
    let e = problem(&clash);
    assert!(
        matches!(&e, ConfigError::EventsNameTwice { name } if name == "customers"),
        "{e}"
    );
    assert!(e.to_string().contains("appears twice"), "{e}");
    let no_value = EXAMPLE.replace("value_column = \"value\"", "");
    let e = problem(&no_value);
    assert!(
        matches!(
            &e,
            ConfigError::Events {
                problem: EventsProblem::ConversionsNeedValue,
                ..
            }
        ),
        "{e}"
    );
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
    let err = problem(&text);
    assert!(
        matches!(&err, ConfigError::ActivationNotPartner { partner } if partner == "stranger"),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("policy.allow_activation")
            && text.contains("'stranger'")
            && text.contains("policy.partners"),
        "{text}"
    );
}

/// The error for the example with its `columns` list replaced by `columns`.
fn column_error(columns: &str) -> ConfigError {
    let start = EXAMPLE.find("columns = [").expect("example has columns");
    problem(&format!("{}columns = [\n{columns}\n]\n", &EXAMPLE[..start]))
}

#[test]
fn column_declarations_are_checked() {
    let cases: &[(&str, &[&str], Option<ColumnProblem>)] = &[
        (
            r#"{ name = "c", uses = [] }"#,
            &["column 'c'", "`uses` is empty"],
            Some(ColumnProblem::NoUses),
        ),
        (
            r#"{ name = "c", uses = ["filter", "filter"] }"#,
            &["column 'c'", "\"filter\" twice"],
            Some(ColumnProblem::UseTwice("filter")),
        ),
        (
            r#"{ name = "c", uses = ["group"] }"#,
            &["column 'c'", "needs `values`"],
            Some(ColumnProblem::GroupNeedsValues),
        ),
        (
            r#"{ name = "c", uses = ["filter"], values = ["a"] }"#,
            &["column 'c'", "`values` is set"],
            Some(ColumnProblem::ValuesWithoutGroup),
        ),
        (
            r#"{ name = "c", uses = ["group"], values = [] }"#,
            &["column 'c'", "`values` has 0 entries"],
            Some(ColumnProblem::ValuesCount { count: 0, max: 64 }),
        ),
        (
            r#"{ name = "c", uses = ["group"], values = ["a", "(other)"] }"#,
            &["column 'c'", "entry 2", "reserved"],
            Some(ColumnProblem::ValueReserved {
                entry: 2,
                label: "(other)",
            }),
        ),
        (
            r#"{ name = "c", uses = ["group"], values = ["a", "b", "a"] }"#,
            &["column 'c'", "entries 1 and 3"],
            Some(ColumnProblem::ValuesEqual { first: 1, second: 3 }),
        ),
        (
            r#"{ name = "c", uses = ["measure"] }"#,
            &["column 'c'", "needs `clip"],
            Some(ColumnProblem::MeasureNeedsClip),
        ),
        (
            r#"{ name = "c", uses = ["filter"], clip = [0, 1] }"#,
            &["column 'c'", "`clip` is set"],
            Some(ColumnProblem::ClipWithoutMeasure),
        ),
        (
            r#"{ name = "c", uses = ["measure"], clip = [2, 1] }"#,
            &["column 'c'", "lo <= hi"],
            Some(ColumnProblem::ClipNotFinite),
        ),
        (
            r#"{ name = "c", uses = ["measure"], clip = [0, inf] }"#,
            &["column 'c'", "finite"],
            Some(ColumnProblem::ClipNotFinite),
        ),
        (
            r#"{ name = "c", uses = ["measure"], clip = [0, nan] }"#,
            &["column 'c'", "finite"],
            Some(ColumnProblem::ClipNotFinite),
        ),
        (
            r#"{ name = "c", uses = ["measure"], clip = [-2e12, 0] }"#,
            &["column 'c'", "within"],
            Some(ColumnProblem::ClipTooLarge { max: MAX_CLIP }),
        ),
        (
            r#"{ name = "c", uses = ["filter"] }, { name = "c", uses = ["group"], values = ["x"] }"#,
            &["column 'c'", "named twice"],
            Some(ColumnProblem::NamedTwice),
        ),
        (
            r#"{ name = "phone", uses = ["filter"] }"#,
            &["column 'phone'", "`id_column`"],
            Some(ColumnProblem::IsIdColumn),
        ),
        (r#"{ name = "c", uses = ["sort"] }"#, &["sort"], None),
    ];
    for (columns, wanted, want) in cases {
        let e = column_error(columns);
        if let Some(want) = want {
            assert!(
                matches!(&e, ConfigError::Column { dataset, problem, .. } if dataset == "customers" && problem == want),
                "{columns}: {e}"
            );
        }
        let text = e.to_string();
        for w in *wanted {
            assert!(text.contains(w), "{columns}: {text} lacks {w}");
        }
        if wanted.len() > 1 {
            assert!(text.contains("dataset 'customers'"), "{text}");
        }
    }
    let values: Vec<String> = (0..=MAX_GROUP_VALUES).map(|i| format!("\"v{i}\"")).collect();
    let e = column_error(&format!(
        r#"{{ name = "c", uses = ["group"], values = [{}] }}"#,
        values.join(",")
    ));
    assert!(
        matches!(
            e,
            ConfigError::Column {
                problem: ColumnProblem::ValuesCount { count: 65, .. },
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("`values` has 65 entries"), "{e}");
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
    let e = problem(&unpinned);
    assert!(
        matches!(&e, ConfigError::UnpinnedPartner { partner } if partner == "partner"),
        "{e}"
    );
    let e = e.to_string();
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
        let e = problem(&remote);
        assert!(matches!(&e, ConfigError::PlainHttp { url: u } if u == url), "{e}");
        let e = e.to_string();
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
        (
            "datasets = []\norganisations = [\"bank\"]",
            PlannerRuleProblem::NoDatasets,
        ),
        (
            "datasets = [\"nope\"]\norganisations = [\"bank\"]",
            PlannerRuleProblem::UnknownDataset("nope".into()),
        ),
        ("datasets = [\"*\"]", PlannerRuleProblem::AllowsNobody),
        (
            "datasets = [\"*\"]\nplanners = [\"a\"]\nkinds = [\"sort\"]",
            PlannerRuleProblem::UnknownKind {
                kind: "sort".into(),
                allowed: QUERY_KINDS.join(", "),
            },
        ),
    ] {
        let text = format!("{EXAMPLE}\n[[policy.planners]]\n{rule}\n");
        let e = problem(&text);
        assert!(
            matches!(&e, ConfigError::PlannerRule { entry: 3, problem } if *problem == want),
            "{e}"
        );
        assert!(e.to_string().contains("[[policy.planners]] entry 3"), "{e}");
    }
}

#[test]
fn unknown_keys_are_refused() {
    let text = EXAMPLE.replace("allow_exact", "allow_exakt");
    let err = NodeConfig::parse(&text, Path::new(".")).expect_err("typo");
    assert!(err.to_string().contains("allow_exakt"), "{err}");
}
