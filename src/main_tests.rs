use clap::error::ErrorKind;

use super::*;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("jointly").chain(args.iter().copied()))
}

const DATASETS: [&str; 4] = ["--left", "bank/customers", "--right", "partner/users"];

fn breakdown(args: &[&str]) -> Result<Cli, clap::Error> {
    parse(&[&["query", "breakdown"], &DATASETS[..], args].concat())
}

#[test]
fn breakdown_flags_become_a_query() {
    let cli = breakdown(&[
        "--group-by",
        "left.aum_tier",
        "--group-by",
        "right.interest",
        "--measure",
        "left.deposit_balance",
        "--measure",
        "right.annual_spend",
        "--where",
        "left.age between 25 and 35",
        "--where",
        "right.spend_band=high",
    ])
    .unwrap();
    let Command::Query {
        kind:
            QueryKind::Breakdown {
                left,
                right,
                group_by,
                measure,
                filters,
                csv,
            },
        ..
    } = cli.command
    else {
        panic!("not a breakdown");
    };
    assert!(!csv);
    let q = breakdown_query(&left, &right, group_by, measure, filters.filters).unwrap();
    assert_eq!(q.left_group_by, ["aum_tier"]);
    assert_eq!(q.right_group_by, ["interest"]);
    assert_eq!(
        q.measures,
        [
            Measure {
                side: jointly_protocol::wire::Side::Left.into(),
                column: "deposit_balance".into()
            },
            Measure {
                side: jointly_protocol::wire::Side::Right.into(),
                column: "annual_spend".into()
            }
        ]
    );
    assert_eq!(q.left_filters.len(), 1);
    assert_eq!(q.right_filters.len(), 1);
}

#[test]
fn bad_columns_and_tests_are_refused_by_the_parser() {
    let e = breakdown(&["--group-by", "aum_tier"]).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::ValueValidation);
    assert!(e.to_string().contains("a column needs its side"), "{e}");
    let e = breakdown(&["--where", "left.age>twenty"]).err().unwrap();
    assert!(e.to_string().contains("bounds are inclusive"), "{e}");
}

#[test]
fn csv_excludes_json_and_no_wait() {
    assert_eq!(query_mode(false, true, false).unwrap(), Mode::Csv);
    assert_eq!(query_mode(true, false, true).unwrap(), Mode::Json);
    assert_eq!(query_mode(false, false, true).unwrap(), Mode::Text);
    assert_eq!(
        query_mode(true, true, false).unwrap_err().to_string(),
        "--csv and --json: choose one"
    );
    assert_eq!(
        query_mode(false, true, true).unwrap_err().to_string(),
        "--csv prints the cells, which --no-wait does not wait for"
    );
}

#[test]
fn repeated_columns_are_refused() {
    let age = || Column::parse("left.age").unwrap();
    let e = breakdown_query("b/c", "p/u", vec![age(), age()], vec![], vec![]).unwrap_err();
    assert_eq!(e.to_string(), "--group-by left.age is given twice");
    let e = breakdown_query("b/c", "p/u", vec![], vec![age(), age()], vec![]).unwrap_err();
    assert_eq!(e.to_string(), "--measure left.age is given twice");
}

#[test]
fn activate_names_one_of_the_two_nodes() {
    let q = segment_query("bank/customers", "partner/users", vec![], Some("partner".into())).unwrap();
    assert_eq!(q.activate, "partner");
    let q = segment_query("bank/customers", "partner/users", vec![], None).unwrap();
    assert_eq!(q.activate, "");
    let e = segment_query("bank/customers", "partner/users", vec![], Some("insurer".into())).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--activate insurer: only the left node 'bank' or the right node 'partner' can receive the members"
    );
}
