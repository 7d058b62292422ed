use std::path::PathBuf;

use jointly_protocol::wire::{Measure, Range, StringSet};

use super::*;
use crate::datagen::{DataFormat, DatagenSpec, generate};

// Expected values below are worked out by hand from these two files; the
// comments next to each row give the person it belongs to.
const BANK: &str = "\
email,city,tier,balance,age
A@x.com,Beijing,T1,100.4,30
b@x.com,Shanghai,T2,50,40
not-an-email,Beijing,T1,999,50
a@x.com,Shanghai,T3,0.2,31
c@x.com,Paris,T1,,25
d@x.com,,T2,abc,60
 B@X.com ,Beijing,T1,2000,41
e@x.com,Beijing,T2,7.5, 70
";
// Persons (first valid row's attributes; balance clipped to [0, 1000]):
//   a: Beijing T1 age 30, balance 100.4 + 0.2 -> 101
//   b: Shanghai T2 age 40, balance 50 + 2000 -> clamped 1000
//   c: Paris T1 age 25, balance missing -> 0
//   d: (no city) T2 age 60, balance "abc" -> 0
//   e: Beijing T2 age " 70", balance 7.5 -> 8 (ties away from zero); left only

const PARTNER: &str = "\
mail,interest,spend
a@x.com,travel,10.5
b@x.com,auto,-2.5
c@x.com,travel,20
d@x.com,dining,30.49
x@x.com,travel,1
d@x.com,travel,0.02
,travel,5
";
// Persons (spend clipped to [-100, 100]):
//   a: travel 11; b: auto -3; c: travel 20; d: dining 30.51 -> 31; x: travel 1 (right only)

struct Files {
    _dir: tempfile::TempDir,
    bank: PathBuf,
    partner: PathBuf,
    bank_columns: Vec<PlainColumn>,
    partner_columns: Vec<PlainColumn>,
}

impl Files {
    fn new(bank: &str, partner: &str) -> Files {
        let dir = tempfile::tempdir().expect("tempdir");
        let (b, p) = (dir.path().join("bank.csv"), dir.path().join("partner.csv"));
        std::fs::write(&b, bank).expect("write bank");
        std::fs::write(&p, partner).expect("write partner");
        Files {
            _dir: dir,
            bank: b,
            partner: p,
            bank_columns: vec![
                declare("city", Some(&["Beijing", "Shanghai"]), None),
                declare("tier", Some(&["T1", "T2"]), None),
                declare("balance", None, Some((0.0, 1000.0))),
                declare("age", None, None),
            ],
            partner_columns: vec![
                declare("interest", Some(&["travel", "auto"]), None),
                declare("spend", None, Some((-100.0, 100.0))),
            ],
        }
    }

    fn left(&self) -> PlainSide<'_> {
        PlainSide {
            path: &self.bank,
            id_column: "email",
            kind: IdKind::Email,
            columns: &self.bank_columns,
        }
    }

    fn right(&self) -> PlainSide<'_> {
        PlainSide {
            path: &self.partner,
            id_column: "mail",
            kind: IdKind::Email,
            columns: &self.partner_columns,
        }
    }

    fn breakdown(&self, q: &BreakdownQuery) -> Vec<PlainCell> {
        breakdown(q, &self.left(), &self.right()).expect("breakdown")
    }

    fn segment(&self, left_filters: Vec<Filter>, right_filters: Vec<Filter>) -> PlainSegment {
        let q = SegmentQuery {
            left_filters,
            right_filters,
            ..Default::default()
        };
        segment(&q, &self.left(), &self.right()).expect("segment")
    }
}

fn declare(name: &str, values: Option<&[&str]>, clip: Option<(f64, f64)>) -> PlainColumn {
    PlainColumn {
        name: name.to_owned(),
        values: values.map(|v| v.iter().map(|s| (*s).to_owned()).collect()),
        clip,
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn cell(left: &[&str], right: &[&str], count: u64, sums: &[i64]) -> PlainCell {
    PlainCell {
        left_group: strings(left),
        right_group: strings(right),
        count,
        sums: sums.to_vec(),
    }
}

fn measure(side: Side, column: &str) -> Measure {
    Measure {
        side: side.into(),
        column: column.to_owned(),
    }
}

fn filter(column: &str, test: Test) -> Filter {
    Filter {
        column: column.to_owned(),
        test: Some(test),
    }
}

fn equals(column: &str, value: &str) -> Filter {
    filter(column, Test::Equals(value.to_owned()))
}

fn one_of(column: &str, values: &[&str]) -> Filter {
    filter(
        column,
        Test::OneOf(StringSet {
            values: strings(values),
        }),
    )
}

fn range(column: &str, min: Option<f64>, max: Option<f64>) -> Filter {
    filter(column, Test::Range(Range { min, max }))
}

fn both_measures() -> Vec<Measure> {
    vec![measure(Side::Left, "balance"), measure(Side::Right, "spend")]
}

#[test]
fn groups_on_both_sides_cover_every_cell_in_order() {
    let f = Files::new(BANK, PARTNER);
    let q = BreakdownQuery {
        left_group_by: strings(&["city"]),
        right_group_by: strings(&["interest"]),
        measures: both_measures(),
        ..Default::default()
    };
    // a: Beijing x travel; b: Shanghai x auto; c: Paris -> (other) x travel;
    // d: missing city -> (other) x dining -> (other). Duplicate rows of a and b
    // with other cities do not move them.
    let expected = vec![
        cell(&["Beijing"], &["travel"], 1, &[101, 11]),
        cell(&["Beijing"], &["auto"], 0, &[0, 0]),
        cell(&["Beijing"], &[OTHER], 0, &[0, 0]),
        cell(&["Shanghai"], &["travel"], 0, &[0, 0]),
        cell(&["Shanghai"], &["auto"], 1, &[1000, -3]),
        cell(&["Shanghai"], &[OTHER], 0, &[0, 0]),
        cell(&[OTHER], &["travel"], 1, &[0, 20]),
        cell(&[OTHER], &["auto"], 0, &[0, 0]),
        cell(&[OTHER], &[OTHER], 1, &[0, 31]),
    ];
    assert_eq!(f.breakdown(&q), expected);
}

#[test]
fn two_group_columns_on_one_side_use_mixed_radix() {
    let f = Files::new(BANK, PARTNER);
    let q = BreakdownQuery {
        left_group_by: strings(&["city", "tier"]),
        measures: vec![measure(Side::Right, "spend")],
        ..Default::default()
    };
    let cells = f.breakdown(&q);
    let mut expected = Vec::new();
    for city in ["Beijing", "Shanghai", OTHER] {
        for tier in ["T1", "T2", OTHER] {
            expected.push(cell(&[city, tier], &[], 0, &[0]));
        }
    }
    // index = city * 3 + tier
    expected[0] = cell(&["Beijing", "T1"], &[], 1, &[11]); // a
    expected[4] = cell(&["Shanghai", "T2"], &[], 1, &[-3]); // b
    expected[6] = cell(&[OTHER, "T1"], &[], 1, &[20]); // c
    expected[7] = cell(&[OTHER, "T2"], &[], 1, &[31]); // d
    assert_eq!(cells, expected);
}

#[test]
fn no_groups_give_one_cell() {
    let f = Files::new(BANK, PARTNER);
    let q = BreakdownQuery {
        measures: both_measures(),
        ..Default::default()
    };
    assert_eq!(
        f.breakdown(&q),
        vec![cell(&[], &[], 4, &[101 + 1000, 11 - 3 + 20 + 31])]
    );
    assert_eq!(f.segment(vec![], vec![]).size, 4);
}

#[test]
fn measures_keep_query_order_and_may_repeat() {
    let f = Files::new(BANK, PARTNER);
    let q = BreakdownQuery {
        measures: vec![
            measure(Side::Right, "spend"),
            measure(Side::Left, "balance"),
            measure(Side::Right, "spend"),
        ],
        ..Default::default()
    };
    assert_eq!(f.breakdown(&q), vec![cell(&[], &[], 4, &[59, 1101, 59])]);
}

#[test]
fn equals_is_exact_and_uses_the_first_row() {
    let f = Files::new(BANK, PARTNER);
    // a's first city is Beijing (its later row says Shanghai); b's first is
    // Shanghai (its later row says Beijing); e is Beijing but left only.
    let s = f.segment(vec![equals("city", "Beijing")], vec![]);
    assert_eq!(
        s,
        PlainSegment {
            size: 1,
            left_members: strings(&["a@x.com"]),
            right_members: strings(&["a@x.com"]),
        }
    );
    assert_eq!(f.segment(vec![equals("city", "beijing")], vec![]).size, 0);
    assert_eq!(f.segment(vec![equals("city", "Paris")], vec![]).size, 1);

    // A one-member cell, with its measures.
    let q = BreakdownQuery {
        right_group_by: strings(&["interest"]),
        measures: both_measures(),
        left_filters: vec![equals("city", "Beijing")],
        ..Default::default()
    };
    assert_eq!(
        f.breakdown(&q),
        vec![
            cell(&[], &["travel"], 1, &[101, 11]),
            cell(&[], &["auto"], 0, &[0, 0]),
            cell(&[], &[OTHER], 0, &[0, 0]),
        ]
    );
}

#[test]
fn one_of_and_missing_values() {
    let f = Files::new(BANK, PARTNER);
    let s = f.segment(vec![], vec![one_of("interest", &["auto", "dining"])]);
    assert_eq!(s.left_members, strings(&["b@x.com", "d@x.com"]));
    assert_eq!(s.right_members, s.left_members);
    // d's city is missing: no test matches it, not even the empty string.
    assert_eq!(f.segment(vec![one_of("city", &["", "Paris"])], vec![]).size, 1);
    assert_eq!(f.segment(vec![one_of("city", &[])], vec![]).size, 0);
}

#[test]
fn range_is_inclusive_trimmed_and_numeric() {
    let f = Files::new(BANK, PARTNER);
    let members = |filters| f.segment(filters, vec![]).left_members;
    assert_eq!(
        members(vec![range("age", Some(30.0), Some(40.0))]),
        strings(&["a@x.com", "b@x.com"])
    );
    assert_eq!(
        members(vec![range("age", Some(60.0), None)]),
        strings(&["d@x.com"])
    );
    assert_eq!(
        members(vec![range("age", None, Some(25.0))]),
        strings(&["c@x.com"])
    );
    // Unbounded still needs a number: c's balance is missing, d's is "abc".
    assert_eq!(
        members(vec![range("balance", None, None)]),
        strings(&["a@x.com", "b@x.com"])
    );
    // e's age " 70" is trimmed before parsing; e is left only until the
    // right side gains a row for it.
    let q = BreakdownQuery {
        left_filters: vec![range("age", Some(70.0), Some(70.0))],
        ..Default::default()
    };
    assert_eq!(f.breakdown(&q), vec![cell(&[], &[], 0, &[])]);
    let right_has_e = format!("{PARTNER}e@x.com,auto,1\n");
    let g = Files::new(BANK, &right_has_e);
    assert_eq!(g.breakdown(&q), vec![cell(&[], &[], 1, &[])]);
}

#[test]
fn filter_reads_first_row_while_measure_sums_all_rows() {
    let f = Files::new(BANK, PARTNER);
    // b's first balance is 50 (passes), its sum 2050 (clamped to 1000);
    // a's first balance 100.4 fails.
    let q = BreakdownQuery {
        measures: both_measures(),
        left_filters: vec![range("balance", None, Some(60.0))],
        right_filters: vec![one_of("interest", &["auto", "travel"])],
        ..Default::default()
    };
    assert_eq!(f.breakdown(&q), vec![cell(&[], &[], 1, &[1000, -3])]);
}

#[test]
fn filters_on_both_sides_combine() {
    let f = Files::new(BANK, PARTNER);
    // Left T1: a, c (e is T2). Right travel: a, c, x (d's first row is dining).
    let s = f.segment(vec![equals("tier", "T1")], vec![equals("interest", "travel")]);
    assert_eq!(s.left_members, strings(&["a@x.com", "c@x.com"]));
    // Two filters on one side must both pass.
    let s = f.segment(
        vec![equals("tier", "T1"), range("age", Some(26.0), None)],
        vec![equals("interest", "travel")],
    );
    assert_eq!(s.left_members, strings(&["a@x.com"]));
}

#[test]
fn an_empty_side_gives_empty_cells() {
    for partner in [
        "mail,interest,spend\n",
        "mail,interest,spend\nnope,travel,3\n,auto,1\n",
    ] {
        let f = Files::new(BANK, partner);
        let q = BreakdownQuery {
            left_group_by: strings(&["tier"]),
            right_group_by: strings(&["interest"]),
            measures: both_measures(),
            ..Default::default()
        };
        let cells = f.breakdown(&q);
        assert_eq!(cells.len(), 9);
        assert!(cells.iter().all(|c| c.count == 0 && c.sums == [0, 0]));
        assert_eq!(cells[5], cell(&["T2"], &[OTHER], 0, &[0, 0]));
        assert_eq!(
            f.segment(vec![], vec![]),
            PlainSegment {
                size: 0,
                left_members: vec![],
                right_members: vec![],
            }
        );
    }
}

#[test]
fn undeclared_or_incomplete_columns_are_refused() {
    let f = Files::new(BANK, PARTNER);
    let refused = |q: BreakdownQuery| breakdown(&q, &f.left(), &f.right()).is_err();
    assert!(refused(BreakdownQuery {
        left_group_by: strings(&["balance"]), // no values declared
        ..Default::default()
    }));
    assert!(refused(BreakdownQuery {
        measures: vec![measure(Side::Left, "city")], // no clip declared
        ..Default::default()
    }));
    assert!(refused(BreakdownQuery {
        measures: vec![measure(Side::Unspecified, "balance")],
        ..Default::default()
    }));
    assert!(refused(BreakdownQuery {
        left_filters: vec![equals("nonexistent", "x")],
        ..Default::default()
    }));
}

#[test]
fn hashed_partner_meets_raw_emails() {
    let f = Files::new(BANK, PARTNER);
    let hash = |e: &str| normalize::convert(IdKind::Email, IdKind::Sha256Email, e).expect("hash");
    let hashed = format!(
        "h,interest\n{},travel\n{},auto\n{},auto\n",
        hash("a@x.com").to_uppercase(),
        hash("c@x.com"),
        hash("zz@x.com")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hashed.csv");
    std::fs::write(&path, hashed).expect("write");
    let right = PlainSide {
        path: &path,
        id_column: "h",
        kind: IdKind::Sha256Email,
        columns: &[],
    };
    let s = segment(&SegmentQuery::default(), &f.left(), &right).expect("segment");
    assert_eq!(s.size, 2);
    assert_eq!(s.left_members, strings(&["a@x.com", "c@x.com"]));
    let mut right_members = vec![hash("a@x.com"), hash("c@x.com")];
    right_members.sort();
    assert_eq!(s.right_members, right_members);

    let phones = PlainSide {
        kind: IdKind::Phone,
        ..right
    };
    assert!(segment(&SegmentQuery::default(), &f.left(), &phones).is_err());
}

#[test]
fn parquet_values_are_read_through_their_text_form() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("partner.parquet");
    let mut df = DataFrame::new(
        5,
        vec![
            Column::new("mail".into(), ["a@x.com", "b@x.com", "a@x.com", "c@x.com", "bad"]),
            Column::new("age".into(), [Some(57i64), Some(3), Some(99), None, Some(57)]),
            Column::new(
                "vip".into(),
                [Some(true), Some(false), Some(false), Some(true), Some(true)],
            ),
            Column::new(
                "spend".into(),
                [Some(101.95), Some(2.5), Some(0.5), None, Some(7.0)],
            ),
        ],
    )
    .expect("frame");
    let file = std::fs::File::create(&path).expect("create");
    ParquetWriter::new(file).finish(&mut df).expect("write parquet");
    // Persons: a: age 57, vip true, spend 101.95 + 0.5 -> 102;
    // b: 3, false, 2.5 -> 3; c: missing age, true, missing spend -> 0.
    let columns = vec![
        declare("age", Some(&["57", "3"]), None),
        declare("vip", Some(&["true"]), None),
        declare("spend", None, Some((0.0, 1000.0))),
    ];
    let right = PlainSide {
        path: &path,
        id_column: "mail",
        kind: IdKind::Email,
        columns: &columns,
    };
    let f = Files::new(BANK, PARTNER);
    let q = BreakdownQuery {
        right_group_by: strings(&["vip", "age"]),
        measures: vec![measure(Side::Right, "spend"), measure(Side::Left, "balance")],
        ..Default::default()
    };
    let cells = breakdown(&q, &f.left(), &right).expect("breakdown");
    let mut expected = Vec::new();
    for vip in ["true", OTHER] {
        for age in ["57", "3", OTHER] {
            expected.push(cell(&[], &[vip, age], 0, &[0, 0]));
        }
    }
    expected[0] = cell(&[], &["true", "57"], 1, &[102, 101]); // a
    expected[2] = cell(&[], &["true", OTHER], 1, &[0, 0]); // c
    expected[4] = cell(&[], &[OTHER, "3"], 1, &[3, 1000]); // b
    assert_eq!(cells, expected);

    // The float's text form is its shortest decimal.
    let q = SegmentQuery {
        right_filters: vec![equals("spend", "101.95")],
        ..Default::default()
    };
    assert_eq!(segment(&q, &f.left(), &right).expect("segment").size, 1);
}

fn messy_spec(format: DataFormat) -> DatagenSpec {
    DatagenSpec {
        bank_rows: 1500,
        partner_rows: 1000,
        overlap: 400,
        seed: 11,
        messy: true,
        format,
    }
}

fn generated_columns() -> (Vec<PlainColumn>, Vec<PlainColumn>) {
    (
        vec![
            declare("aum_tier", Some(&["T1", "T2", "T3"]), None),
            declare("city", Some(&["Beijing", "Shanghai"]), None),
            declare("deposit_balance", None, Some((0.0, 1e6))),
            declare("age", None, Some((18.0, 90.0))),
            declare("has_credit_card", None, None),
        ],
        vec![
            declare("interest", Some(&["travel", "auto"]), None),
            declare("annual_spend", None, Some((0.0, 1e5))),
        ],
    )
}

#[test]
fn generated_data_is_consistent_with_overlap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (bank_columns, partner_columns) = generated_columns();
    let mut results = Vec::new();
    for format in [DataFormat::Csv, DataFormat::Parquet] {
        let g = generate(&messy_spec(format), &dir.path().join(format.extension())).expect("generate");
        let left = PlainSide {
            path: &g.bank_path,
            id_column: "phone",
            kind: IdKind::Phone,
            columns: &bank_columns,
        };
        let right = PlainSide {
            path: &g.partner_path,
            id_column: "mobile",
            kind: IdKind::Phone,
            columns: &partner_columns,
        };
        let expected = overlap(
            (&g.bank_path, "phone"),
            (&g.partner_path, "mobile"),
            IdKind::Phone,
        )
        .expect("overlap");
        assert_eq!(expected, g.truth.overlap as u64);

        let q = BreakdownQuery {
            left_group_by: strings(&["aum_tier", "city"]),
            right_group_by: strings(&["interest"]),
            measures: vec![
                measure(Side::Left, "deposit_balance"),
                measure(Side::Right, "annual_spend"),
                measure(Side::Left, "age"),
            ],
            ..Default::default()
        };
        let cells = breakdown(&q, &left, &right).expect("breakdown");
        assert_eq!(cells.len(), 4 * 3 * 3);
        assert_eq!(cells.iter().map(|c| c.count).sum::<u64>(), expected);
        // Every matched person is at least 18.
        let ages: i64 = cells.iter().map(|c| c.sums[2]).sum();
        assert!(ages >= 18 * expected as i64);

        let s = segment(&SegmentQuery::default(), &left, &right).expect("segment");
        assert_eq!(s.size, expected);
        assert_eq!(s.left_members.len() as u64, expected);
        assert_eq!(s.left_members, s.right_members);

        // The same filters restrict a breakdown and a segment alike.
        let left_filters = vec![
            range("age", Some(30.0), Some(60.0)),
            one_of("has_credit_card", &["true"]),
        ];
        let right_filters = vec![equals("signup_channel", "app")];
        let filtered = BreakdownQuery {
            left_filters: left_filters.clone(),
            right_filters: right_filters.clone(),
            ..q.clone()
        };
        let filtered_cells = breakdown(&filtered, &left, &right).expect("breakdown");
        let s = segment(
            &SegmentQuery {
                left_filters,
                right_filters,
                ..Default::default()
            },
            &left,
            &right,
        )
        .expect("segment");
        assert_eq!(filtered_cells.iter().map(|c| c.count).sum::<u64>(), s.size);
        assert!(s.size > 0 && s.size < expected);
        results.push((cells, filtered_cells));
    }
    // Same seed, same rows: CSV text and Parquet values agree on every answer.
    assert_eq!(results[0], results[1]);
}
