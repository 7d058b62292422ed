//! Attributes loaded from small files; every expected value is worked out by
//! hand from the rows in the comments, following `notes/semantics.md`.

use std::path::Path;

use jointly_protocol::{
    ids::normalize::{IdKind, Normalizer},
    wire::{Filter, Range, StringSet, filter::Test},
};
use polars::prelude::*;

use crate::{
    attributes::{AttributeError, RangeProblem},
    config::{ColumnConfig, ColumnUse, DatasetConfig},
    dataset::{LoadedDataset, load},
    error::NodeError,
};

fn column(name: &str, uses: &[ColumnUse], values: &[&str], clip: Option<[f64; 2]>) -> ColumnConfig {
    ColumnConfig {
        name: name.into(),
        uses: uses.to_vec(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        clip,
    }
}

use ColumnUse::{Filter as F, Group as G, Measure as M};

/// tier: group and filter; city: group only; age: filter only; bal: measure only.
fn csv_columns() -> Vec<ColumnConfig> {
    vec![
        column("tier", &[G, F], &["T1", "T2", "T3"], None),
        column("city", &[G], &["Beijing", "Shanghai"], None),
        column("age", &[F], &[], None),
        column("bal", &[M], &[], Some([-10.5, 999.5])),
    ]
}

fn load_file(path: &Path, columns: Vec<ColumnConfig>) -> Result<LoadedDataset, NodeError> {
    let config = DatasetConfig {
        name: "customers".into(),
        path: path.to_path_buf(),
        format: None,
        id_column: "id".into(),
        id_kind: IdKind::Custom,
        columns,
    };
    load(&config, &Normalizer::default())
}

fn load_csv(text: &str, columns: Vec<ColumnConfig>) -> LoadedDataset {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("customers.csv");
    std::fs::write(&path, text).expect("write csv");
    load_file(&path, columns).expect("loads")
}

/// Persons in identifier order: a(0), b(1), c(2), d(3), e(4).
///
/// - a: rows 1 and 5 (" a " trims to "a"); first row 1. bal 50 + 1000 = 1050,
///   clipped to 999.5, rounded away from zero to 1000.
/// - b: rows 0 and 2; first row 0 (tier T2, not T3). bal 100.4 + 200.2 = 300.6 -> 301.
/// - c: row 4, every attribute cell empty (missing); bal 0.
/// - d: row 6; bal -5.5 -> -6 (ties away from zero).
/// - e: row 7; tier T5 is not declared -> "(other)"; bal "inf" counts 0.
/// - row 3 has an empty identifier and is dropped with its attributes.
const CSV: &str = "id,tier,city,age,bal,unused
b,T2,Beijing, 30,100.4,x
a,T1,Shanghai,abc,50,x
b,T3,Wuhan,40,200.2,x
,T1,Beijing,20,999,x
c,,,,,x
 a ,T9,Beijing,25,1e3,x
d,T1,,17.5,-5.5,x
e,T5,Nanjing,NaN,inf,x
";

fn equals(column: &str, value: &str) -> Filter {
    Filter {
        column: column.into(),
        test: Some(Test::Equals(value.into())),
    }
}

fn one_of(column: &str, values: &[&str]) -> Filter {
    Filter {
        column: column.into(),
        test: Some(Test::OneOf(StringSet {
            values: values.iter().map(|v| v.to_string()).collect(),
        })),
    }
}

fn range(column: &str, min: Option<f64>, max: Option<f64>) -> Filter {
    Filter {
        column: column.into(),
        test: Some(Test::Range(Range { min, max })),
    }
}

fn names(labels: &[&str]) -> Vec<String> {
    labels.iter().map(|l| l.to_string()).collect()
}

#[test]
fn csv_rows_become_persons_aligned_with_the_ids() {
    let d = load_csv(CSV, csv_columns());
    let ids: Vec<&[u8]> = (0..d.ids.len()).map(|i| d.ids.get(i)).collect();
    assert_eq!(ids, [&b"a"[..], b"b", b"c", b"d", b"e"]);
    assert_eq!(d.report.rows, 8);
    assert_eq!(d.report.duplicate_rows, 2);
    assert_eq!(d.report.rejected_total(), 1);
    let a = &d.attributes;
    assert_eq!(a.len(), 5);
    let bal = a.measure("bal").expect("bal is a measure");
    assert_eq!(bal.values, &[1000, 301, 0, -6, 0]);
    assert_eq!(bal.bound, 1000);
    // Column names and the count only; no cell.
    let debug = format!("{a:?}");
    assert!(debug.contains("tier") && debug.contains("len: 5"), "{debug}");
    assert!(!debug.contains("Shanghai") && !debug.contains("T1"), "{debug}");
}

#[test]
fn filters_of_each_kind() {
    let d = load_csv(CSV, csv_columns());
    let a = &d.attributes;
    let select = |filters: &[Filter]| a.select(filters).expect("valid filters");
    assert_eq!(select(&[]), vec![0, 1, 2, 3, 4]);
    // First row wins: b's first tier is T2, a's later T9 is ignored.
    assert_eq!(select(&[equals("tier", "T1")]), vec![0, 3]);
    assert_eq!(select(&[equals("tier", "T2")]), vec![1]);
    assert_eq!(select(&[equals("tier", "T3")]), Vec::<u32>::new());
    // Exact text: no trimming, case-sensitive; a missing value equals nothing.
    assert_eq!(select(&[equals("tier", "t1")]), Vec::<u32>::new());
    assert_eq!(select(&[equals("tier", "")]), Vec::<u32>::new());
    assert_eq!(select(&[equals("age", "30")]), Vec::<u32>::new());
    assert_eq!(select(&[equals("age", " 30")]), vec![1]);
    assert_eq!(select(&[one_of("tier", &["T2", "T5"])]), vec![1, 4]);
    assert_eq!(select(&[one_of("tier", &["T1 ", "T9"])]), Vec::<u32>::new());
    // Ranges read the trimmed text as a finite number: b " 30" is 30, d 17.5;
    // a "abc", e "NaN" and c (missing) fail every range.
    assert_eq!(select(&[range("age", None, None)]), vec![1, 3]);
    assert_eq!(select(&[range("age", Some(18.0), None)]), vec![1]);
    assert_eq!(select(&[range("age", None, Some(20.0))]), vec![3]);
    assert_eq!(select(&[range("age", Some(17.5), Some(17.5))]), vec![3]);
    assert_eq!(select(&[range("age", Some(17.5), Some(30.0))]), vec![1, 3]);
    assert_eq!(select(&[range("age", Some(30.5), None)]), Vec::<u32>::new());
    // A person passes when it passes every filter.
    assert_eq!(
        select(&[equals("tier", "T1"), range("age", None, Some(20.0))]),
        vec![3]
    );
    assert_eq!(
        select(&[one_of("tier", &["T1", "T2"]), range("age", Some(18.0), None)]),
        vec![1]
    );
}

#[test]
fn invalid_filters_are_refused_with_what_to_do() {
    let d = load_csv(CSV, csv_columns());
    let a = &d.attributes;
    let err = |f: Filter| a.select(&[f]).expect_err("refused");
    assert_eq!(
        err(equals("city", "Beijing")).to_string(),
        "dataset 'customers': column 'city' is not allowed as a filter by this node's policy (columns.uses); ask the node's operator or choose another column"
    );
    assert_eq!(
        err(equals("unused", "x")).to_string(),
        "dataset 'customers': column 'unused' is not declared in this node's configuration (columns); declared columns: tier, city, age, bal. Choose one of them"
    );
    let e = err(one_of("tier", &[]));
    assert!(
        matches!(&e, AttributeError::EmptyOneOf { column, .. } if column == "tier"),
        "{e}"
    );
    let e = err(range("age", Some(2.0), Some(1.0)));
    assert!(
        matches!(&e, AttributeError::Range { column, problem: RangeProblem::Inverted, .. } if column == "age"),
        "{e}"
    );
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for (lo, hi) in [(Some(bad), None), (None, Some(bad))] {
            let e = err(range("age", lo, hi));
            assert!(
                matches!(
                    e,
                    AttributeError::Range {
                        problem: RangeProblem::NotFinite,
                        ..
                    }
                ),
                "{e}"
            );
        }
    }
    let e = err(Filter {
        column: "tier".into(),
        test: None,
    });
    assert!(
        matches!(&e, AttributeError::NoTest { column, .. } if column == "tier"),
        "{e}"
    );
    // The compared value is not echoed.
    let text = err(equals("city", "Secret-Value-42")).to_string();
    assert!(!text.contains("Secret-Value-42"), "{text}");
}

#[test]
fn groups_are_mixed_radix_first_column_major() {
    let d = load_csv(CSV, csv_columns());
    let a = &d.attributes;
    // tier domain [T1, T2, T3, (other)], city domain [Beijing, Shanghai, (other)].
    // tier: a T1=0, b T2=1, c missing=3, d T1=0, e T5=3.
    let tier = a.groups(&names(&["tier"])).expect("tier groups");
    assert_eq!(tier.codes, vec![0, 1, 3, 0, 3]);
    assert_eq!(tier.count, 4);
    assert_eq!(
        tier.labels,
        vec![
            names(&["T1"]),
            names(&["T2"]),
            names(&["T3"]),
            names(&["(other)"])
        ]
    );
    // city: a Shanghai=1, b Beijing=0 (not Wuhan), c missing=2, d missing=2, e Nanjing=2.
    // (tier, city): tier * 3 + city.
    let both = a.groups(&names(&["tier", "city"])).expect("two columns");
    assert_eq!(both.codes, vec![1, 3, 11, 2, 11]);
    assert_eq!(both.count, 12);
    assert_eq!(both.labels.len(), 12);
    assert_eq!(both.labels[0], names(&["T1", "Beijing"]));
    assert_eq!(both.labels[1], names(&["T1", "Shanghai"]));
    assert_eq!(both.labels[5], names(&["T2", "(other)"]));
    assert_eq!(both.labels[9], names(&["(other)", "Beijing"]));
    assert_eq!(both.labels[11], names(&["(other)", "(other)"]));
    // (city, tier): city * 4 + tier.
    let swapped = a.groups(&names(&["city", "tier"])).expect("two columns");
    assert_eq!(swapped.codes, vec![4, 1, 11, 8, 11]);
    assert_eq!(swapped.labels[4], names(&["Shanghai", "T1"]));
    let none = a.groups(&[]).expect("no columns");
    assert_eq!(none.codes, vec![0; 5]);
    assert_eq!(none.count, 1);
    assert_eq!(none.labels, vec![Vec::<String>::new()]);
}

#[test]
fn uses_not_allowed_are_refused() {
    let d = load_csv(CSV, csv_columns());
    let a = &d.attributes;
    let text = a.groups(&names(&["age"])).expect_err("age is no group");
    assert_eq!(
        text.to_string(),
        "dataset 'customers': column 'age' is not allowed as a group by this node's policy (columns.uses); ask the node's operator or choose another column"
    );
    let e = a.groups(&names(&["tier", "bal"])).expect_err("bal is no group");
    assert!(
        matches!(&e, AttributeError::NotAllowed { column, use_: ColumnUse::Group, .. } if column == "bal"),
        "{e}"
    );
    let e = a.groups(&names(&["tier", "tier"])).expect_err("twice");
    assert!(
        matches!(&e, AttributeError::GroupedTwice { column, .. } if column == "tier"),
        "{e}"
    );
    let e = a.groups(&names(&["nowhere"])).expect_err("unknown");
    assert!(
        matches!(&e, AttributeError::NotDeclared { column, .. } if column == "nowhere"),
        "{e}"
    );
    let text = a.measure("tier").expect_err("tier is no measure");
    assert_eq!(
        text.to_string(),
        "dataset 'customers': column 'tier' is not allowed as a measure by this node's policy (columns.uses); ask the node's operator or choose another column"
    );
    assert!(a.measure("nowhere").is_err());
    let e = a
        .select(&[range("bal", Some(0.0), None)])
        .expect_err("bal is no filter");
    assert!(
        matches!(&e, AttributeError::NotAllowed { column, use_: ColumnUse::Filter, .. } if column == "bal"),
        "{e}"
    );
}

#[test]
fn parquet_values_are_read_as_stored_and_compared_as_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("customers.parquet");
    // Persons a(0), b(1), c(2), d(3); row 3 has no identifier.
    // a: rows 1, 5 (first row's age is missing: the later 25 does not count).
    // b: rows 0, 2.   c: row 4.   d: row 6.
    let mut df = DataFrame::new_infer_height(vec![
        Column::new(
            "id".into(),
            [
                Some("b"),
                Some("a"),
                Some("b"),
                None,
                Some("c"),
                Some("a"),
                Some("d"),
            ],
        ),
        Column::new(
            "flag".into(),
            [
                Some(true),
                Some(false),
                Some(false),
                Some(true),
                None,
                Some(true),
                Some(true),
            ],
        ),
        Column::new(
            "bal".into(),
            [
                Some(100.4),
                Some(50.0),
                Some(200.2),
                Some(999.0),
                None,
                Some(1000.0),
                Some(-5.5),
            ],
        ),
        Column::new(
            "age".into(),
            [Some(30i64), None, Some(40), Some(20), None, Some(25), Some(17)],
        ),
    ])
    .expect("frame");
    let file = std::fs::File::create(&path).expect("create");
    ParquetWriter::new(file).finish(&mut df).expect("write parquet");
    let columns = vec![
        column("flag", &[G, F], &["true", "false"], None),
        column("bal", &[M, F], &[], Some([-10.5, 999.5])),
        column("age", &[F, M], &[], Some([18.0, 100.0])),
    ];
    let d = load_file(&path, columns).expect("loads");
    let a = &d.attributes;
    assert_eq!(a.len(), 4);
    // flag domain [true, false, (other)]: a false, b true, c missing, d true.
    let flag = a.groups(&names(&["flag"])).expect("flag groups");
    assert_eq!(flag.codes, vec![1, 0, 2, 0]);
    assert_eq!(a.select(&[equals("flag", "true")]).expect("ok"), vec![1, 3]);
    // bal sums: a 1050 -> 999.5 -> 1000; b 300.6 -> 301; c 0; d -5.5 -> -6.
    assert_eq!(a.measure("bal").expect("bal").values, &[1000, 301, 0, -6]);
    // As a filter bal is the first row's value: a 50, b 100.4, d -5.5.
    assert_eq!(
        a.select(&[range("bal", Some(50.0), Some(100.4))]).expect("ok"),
        vec![0, 1]
    );
    // age sums (a 0 + 25, b 30 + 40, c 0, d 17) clipped to [18, 100].
    let age = a.measure("age").expect("age");
    assert_eq!(age.values, &[25, 70, 18, 18]);
    assert_eq!(age.bound, 100);
    // As a filter: first row's text; a's is missing.
    assert_eq!(a.select(&[equals("age", "30")]).expect("ok"), vec![1]);
    assert_eq!(a.select(&[range("age", None, Some(29.0))]).expect("ok"), vec![3]);
    assert_eq!(a.select(&[range("age", None, None)]).expect("ok"), vec![1, 3]);
}

#[test]
fn empty_and_one_row_datasets() {
    let d = load_csv("id,tier,city,age,bal\n", csv_columns());
    let a = &d.attributes;
    assert!(a.is_empty() && d.ids.is_empty());
    assert_eq!(a.select(&[equals("tier", "T1")]).expect("ok"), Vec::<u32>::new());
    assert_eq!(a.select(&[]).expect("ok"), Vec::<u32>::new());
    let g = a.groups(&names(&["tier", "city"])).expect("ok");
    assert_eq!((g.codes.len(), g.count, g.labels.len()), (0, 12, 12));
    assert!(a.measure("bal").expect("ok").values.is_empty());

    // Every row rejected: no persons either.
    let d = load_csv("id,tier,city,age,bal\n ,T1,Beijing,1,1\n", csv_columns());
    assert!(d.attributes.is_empty());
    assert_eq!(d.report.rejected_total(), 1);

    let d = load_csv("id,tier,city,age,bal\nz,T3,Shanghai,18,-11\n", csv_columns());
    let a = &d.attributes;
    assert_eq!(a.len(), 1);
    assert_eq!(
        a.select(&[range("age", Some(18.0), Some(18.0))]).expect("ok"),
        vec![0]
    );
    // T3 = 2, Shanghai = 1: 2 * 3 + 1.
    assert_eq!(a.groups(&names(&["tier", "city"])).expect("ok").codes, vec![7]);
    // -11 clipped to -10.5, rounded away from zero.
    assert_eq!(a.measure("bal").expect("ok").values, &[-11]);
}

#[test]
fn no_declared_columns_reads_only_the_ids() {
    let d = load_csv(CSV, vec![]);
    assert_eq!(d.ids.len(), 5);
    assert_eq!(d.attributes.len(), 5);
    assert!(d.attributes.columns().is_empty());
    assert_eq!(d.attributes.select(&[]).expect("ok"), vec![0, 1, 2, 3, 4]);
    assert!(d.attributes.select(&[equals("tier", "T1")]).is_err());
}

#[test]
fn a_declared_column_missing_from_the_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("customers.csv");
    std::fs::write(&path, "id,tier,age,bal\na,T1,3,4\n").expect("write");
    let err = load_file(&path, csv_columns()).expect_err("city is missing");
    let text = err.to_string();
    assert!(
        text.contains("column 'city' not found") && text.contains("customers"),
        "{text}"
    );
    assert!(!text.contains("T1"), "{text}");
}
