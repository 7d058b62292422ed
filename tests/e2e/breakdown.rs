//! Breakdowns and segments end to end: a coordinator and two nodes on
//! loopback, messy generated data, every cell (counts, sums, means) and every
//! segment size and member checked against a plaintext polars join of the
//! same files.

use std::path::Path;

use crate::support::*;
use jointly_examples::{
    cluster::{Cluster, exact, noised},
    datagen::{DataFormat, DatagenSpec, GeneratedData, generate},
    deploy::{self, PolicySpec},
    plaintext::{self, PlainCell, PlainSide},
};
use jointly_protocol::{
    ids::normalize::IdKind,
    wire::{
        BreakdownQuery, BreakdownResult, DatasetRef, Filter, JobState, Measure, Privacy, QuerySpec, Range,
        SegmentQuery, StringSet, filter::Test, query_result, query_spec::Query,
    },
};

fn refs() -> (Option<DatasetRef>, Option<DatasetRef>) {
    (
        Some(DatasetRef {
            node: "bank".into(),
            dataset: "customers".into(),
        }),
        Some(DatasetRef {
            node: "partner".into(),
            dataset: "users".into(),
        }),
    )
}

fn breakdown(
    left_group_by: &[&str],
    right_group_by: &[&str],
    measures: &[(&str, &str)],
    left_filters: Vec<Filter>,
    right_filters: Vec<Filter>,
) -> BreakdownQuery {
    let (left, right) = refs();
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    BreakdownQuery {
        left,
        right,
        left_group_by: strings(left_group_by),
        right_group_by: strings(right_group_by),
        measures: measures
            .iter()
            .map(|(side, column)| Measure {
                side: if *side == "left" { 1 } else { 2 },
                column: column.to_string(),
            })
            .collect(),
        left_filters,
        right_filters,
    }
}

fn spec(query: Query, privacy: Privacy) -> QuerySpec {
    QuerySpec {
        query: Some(query),
        privacy: Some(privacy),
    }
}

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

fn data(dir: &Path, bank: usize, partner: usize, overlap: usize) -> GeneratedData {
    let spec = DatagenSpec {
        bank_rows: bank,
        partner_rows: partner,
        overlap,
        seed: 33,
        messy: true,
        format: DataFormat::Csv,
    };
    generate(&spec, dir).expect("datagen")
}

struct Files<'a> {
    bank: PlainSide<'a>,
    partner: PlainSide<'a>,
}

fn plain<'a>(data: &'a GeneratedData, columns: &'a deploy::DeclaredColumns) -> Files<'a> {
    Files {
        bank: PlainSide {
            path: &data.bank_path,
            id_column: "phone",
            kind: IdKind::Phone,
            columns: &columns.bank,
        },
        partner: PlainSide {
            path: &data.partner_path,
            id_column: "mobile",
            kind: IdKind::Phone,
            columns: &columns.partner,
        },
    }
}

fn breakdown_of(job: &jointly_protocol::wire::Job) -> BreakdownResult {
    assert_eq!(job.state, JobState::Succeeded as i32, "job failed: {}", job.error);
    match job.result.as_ref().and_then(|r| r.result.clone()) {
        Some(query_result::Result::Breakdown(b)) => b,
        other => panic!("not a breakdown result: {other:?}"),
    }
}

/// Every released cell equals the plaintext cell: labels, count, sums, means.
fn assert_cells(got: &BreakdownResult, want: &[PlainCell]) {
    assert_eq!(got.cells.len(), want.len(), "number of cells");
    for (g, w) in got.cells.iter().zip(want) {
        assert_eq!((&g.left_group, &g.right_group), (&w.left_group, &w.right_group));
        let count = g.count.expect("count");
        assert!(!count.below_threshold);
        assert_eq!(
            count.value as u64, w.count,
            "count of {:?} x {:?}",
            w.left_group, w.right_group
        );
        assert_eq!(g.sums.len(), w.sums.len());
        for (s, want_sum) in g.sums.iter().zip(&w.sums) {
            assert_eq!(
                s.sum, *want_sum,
                "sum in {:?} x {:?}",
                w.left_group, w.right_group
            );
            if w.count > 0 {
                assert!((s.mean - *want_sum as f64 / w.count as f64).abs() < 1e-9);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breakdowns_equal_the_plaintext_join_cell_for_cell() {
    let dir = tempdir();
    let data = data(dir.path(), 900, 700, 400);
    let columns = deploy::declared_columns();
    let files = plain(&data, &columns);
    let cluster = Cluster::start(
        dir.path(),
        &data.bank_path,
        &data.partner_path,
        PolicySpec::testing(),
    )
    .await
    .expect("cluster");
    let cases = [
        // Groups on both sides, measures on both sides (two lanes).
        breakdown(
            &["aum_tier"],
            &["interest"],
            &[("right", "annual_spend"), ("left", "deposit_balance")],
            vec![],
            vec![],
        ),
        // Groups on one side only, a right measure, filters of every kind.
        breakdown(
            &["aum_tier", "has_credit_card"],
            &[],
            &[("right", "annual_spend")],
            vec![
                range("age", Some(25.0), Some(35.0)),
                equals("has_credit_card", "false"),
            ],
            vec![one_of("spend_band", &["mid", "high"])],
        ),
        // Only the left side has measures: the roles swap; groups on the right.
        breakdown(
            &[],
            &["spend_band", "signup_channel"],
            &[("left", "deposit_balance"), ("left", "age")],
            vec![],
            vec![equals("interest", "travel")],
        ),
        // Counts only, a filter no one passes: every cell empty.
        breakdown(
            &["city"],
            &["interest"],
            &[],
            vec![range("age", Some(200.0), None)],
            vec![],
        ),
    ];
    for q in cases {
        let want = plaintext::breakdown(&q, &files.bank, &files.partner).expect("plaintext");
        let job = cluster
            .run(spec(Query::Breakdown(q.clone()), exact()))
            .await
            .expect("job");
        assert_cells(&breakdown_of(&job), &want);
        // Sealed, chained and co-signed; breakdown masking is not attested yet.
        assert_eq!(
            transcripts_verify(dir.path(), &job.job_id),
            ["not_checked", "not_checked"]
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_with_one_member_and_an_empty_side() {
    let dir = tempdir();
    // Two shared customers; one of them alone in tier T5.
    let bank = dir.path().join("bank.csv");
    std::fs::write(
        &bank,
        "customer_id,phone,email,age,aum_tier,has_credit_card,deposit_balance,city\n\
         C1,13800000001,a@x.cn,30,T1,true,100.4,Beijing\n\
         C2,+86 138 0000 0002,b@x.cn,40,T5,false,2000000,Shanghai\n\
         C3,138-0000-0003,c@x.cn,50,T1,true,7,Beijing\n\
         C2b,8613800000002,b@x.cn,41,T1,true,5,Wuhan\n\
         C4,not a phone,d@x.cn,20,T2,true,1,Beijing\n",
    )
    .unwrap();
    let partner = dir.path().join("partner.csv");
    std::fs::write(
        &partner,
        "user_id,mobile,email,interest,spend_band,annual_spend,signup_channel\n\
         U1,13800000001,a@x.cn,travel,low,10,app\n\
         U2,13800000002,b@x.cn,dining,high,300000,web\n\
         U9,13900000009,z@x.cn,travel,low,1,app\n",
    )
    .unwrap();
    let data = GeneratedData {
        bank_path: bank,
        partner_path: partner,
        truth: data(&dir.path().join("unused"), 0, 0, 0).truth,
    };
    let columns = deploy::declared_columns();
    let files = plain(&data, &columns);
    let cluster = Cluster::start(
        dir.path(),
        &data.bank_path,
        &data.partner_path,
        PolicySpec::testing(),
    )
    .await
    .expect("cluster");
    let q = breakdown(
        &["aum_tier"],
        &["interest"],
        &[("left", "deposit_balance"), ("right", "annual_spend")],
        vec![],
        vec![],
    );
    let want = plaintext::breakdown(&q, &files.bank, &files.partner).expect("plaintext");
    // The second customer: first row wins for the tier (T5), deposits are
    // summed then clipped (2,000,005 -> 1,000,000), spend clipped to 250,000.
    let t5_dining = want
        .iter()
        .find(|c| c.left_group == ["T5"] && c.right_group == ["dining"])
        .expect("cell");
    assert_eq!((t5_dining.count, &t5_dining.sums), (1, &vec![1_000_000, 250_000]));
    let job = cluster
        .run(spec(Query::Breakdown(q), exact()))
        .await
        .expect("job");
    assert_cells(&breakdown_of(&job), &want);

    // A side with no rows after its filter.
    let q = breakdown(
        &[],
        &[],
        &[("right", "annual_spend")],
        vec![equals("city", "Lhasa")],
        vec![],
    );
    let want = plaintext::breakdown(&q, &files.bank, &files.partner).expect("plaintext");
    assert_eq!(want.len(), 1);
    assert_eq!(want[0].count, 0);
    let job = cluster
        .run(spec(Query::Breakdown(q), exact()))
        .await
        .expect("job");
    assert_cells(&breakdown_of(&job), &want);
    cluster.shutdown().await;
}

fn segment(activate: &str, left_filters: Vec<Filter>, right_filters: Vec<Filter>) -> SegmentQuery {
    let (left, right) = refs();
    SegmentQuery {
        left,
        right,
        left_filters,
        right_filters,
        activate: activate.into(),
    }
}

fn segment_size(job: &jointly_protocol::wire::Job) -> (i64, String) {
    assert_eq!(job.state, JobState::Succeeded as i32, "job failed: {}", job.error);
    match job.result.as_ref().and_then(|r| r.result.clone()) {
        Some(query_result::Result::Segment(s)) => {
            let size = s.size.expect("size");
            assert!(!size.below_threshold);
            (size.value, s.activated_node)
        }
        other => panic!("not a segment result: {other:?}"),
    }
}

fn members_file(cluster: &Cluster, node: &str, job_id: &str) -> Vec<String> {
    let path = cluster
        .deployment
        .dir
        .join(format!("{node}-data"))
        .join("activations")
        .join(format!("{job_id}.csv"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines: Vec<String> = text.lines().skip(1).map(str::to_string).collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_are_sized_and_activated_only_with_consent() {
    let dir = tempdir();
    let data = data(dir.path(), 1600, 1400, 1200);
    let columns = deploy::declared_columns();
    let files = plain(&data, &columns);
    let cluster = Cluster::start(
        dir.path(),
        &data.bank_path,
        &data.partner_path,
        PolicySpec::testing(),
    )
    .await
    .expect("cluster");
    let bank_filters = || {
        vec![
            range("age", Some(25.0), Some(60.0)),
            equals("has_credit_card", "false"),
        ]
    };
    let partner_filters = || {
        vec![
            equals("interest", "travel"),
            one_of("spend_band", &["mid", "high"]),
        ]
    };

    let q = segment("", bank_filters(), partner_filters());
    let want = plaintext::segment(&q, &files.bank, &files.partner).expect("plaintext");
    assert!(want.size > 0, "the generated data has members in this segment");
    let job = cluster.run(spec(Query::Segment(q), exact())).await.expect("job");
    assert_eq!(segment_size(&job), (want.size as i64, String::new()));
    assert_eq!(transcripts_verify(dir.path(), &job.job_id), ["passed", "passed"]);

    // The bank receives its own members; the planner sees the size only.
    let q = segment("bank", bank_filters(), partner_filters());
    let job = cluster.run(spec(Query::Segment(q), exact())).await.expect("job");
    assert_eq!(segment_size(&job), (want.size as i64, "bank".to_string()));
    assert_eq!(members_file(&cluster, "bank", &job.job_id), want.left_members);
    // Activation: the partner proves V = s*U, the bank r*W with Z its shuffle.
    assert_eq!(transcripts_verify(dir.path(), &job.job_id), ["passed", "passed"]);
    // The partner may receive its members too (the bank's testing policy allows it).
    let q = segment("partner", bank_filters(), partner_filters());
    let job = cluster.run(spec(Query::Segment(q), exact())).await.expect("job");
    assert_eq!(segment_size(&job).1, "partner");
    assert_eq!(members_file(&cluster, "partner", &job.job_id), want.right_members);

    // Empty segment: size 0, activation refused below min_activation (1 in testing).
    let q = segment("", vec![range("age", Some(500.0), None)], vec![]);
    let job = cluster.run(spec(Query::Segment(q), exact())).await.expect("job");
    assert_eq!(segment_size(&job).0, 0);
    let q = segment("bank", vec![range("age", Some(500.0), None)], vec![]);
    let job = cluster.run(spec(Query::Segment(q), exact())).await.expect("job");
    failed_with(&job, "min_activation");

    // A node not in the other's allow_activation is refused, naming the key.
    let mut strict = PolicySpec::testing();
    strict.allow_activation = false;
    cluster.shutdown().await;
    let dir2 = tempdir();
    let cluster = Cluster::start(dir2.path(), &data.bank_path, &data.partner_path, strict)
        .await
        .expect("cluster");
    let q = segment("bank", bank_filters(), partner_filters());
    let job = cluster.run(spec(Query::Segment(q), exact())).await.expect("job");
    failed_with(&job, "allow_activation");
    assert!(
        !cluster
            .deployment
            .dir
            .join("bank-data")
            .join("activations")
            .exists(),
        "nothing was delivered"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noised_breakdowns_withhold_small_cells_and_refuse_unknown_columns() {
    let dir = tempdir();
    let data = data(dir.path(), 900, 900, 600);
    let columns = deploy::declared_columns();
    let files = plain(&data, &columns);
    let cluster = Cluster::start(
        dir.path(),
        &data.bank_path,
        &data.partner_path,
        PolicySpec::production(),
    )
    .await
    .expect("cluster");
    let q = breakdown(
        &["aum_tier"],
        &["spend_band"],
        &[("right", "annual_spend")],
        vec![],
        vec![],
    );
    let want = plaintext::breakdown(&q, &files.bank, &files.partner).expect("plaintext");
    let job = cluster
        .run(spec(Query::Breakdown(q), noised(1.0)))
        .await
        .expect("job");
    let got = breakdown_of(&job);
    let release = job.result.and_then(|r| r.release).expect("release");
    assert!(!release.exact && release.threshold == 10 && release.noise_stddev > 1.0);
    let mut withheld = 0;
    for (g, w) in got.cells.iter().zip(&want) {
        let count = g.count.expect("count");
        if count.below_threshold {
            withheld += 1;
            assert!(g.sums.iter().all(|s| s.below_threshold && s.sum == 0));
            continue;
        }
        // Within 6 standard deviations of the truth.
        let sd = release.noise_stddev;
        assert!(
            (count.value - w.count as i64).abs() as f64 <= 6.0 * sd,
            "{count:?} vs {}",
            w.count
        );
        assert!(count.value >= 10);
        let spend_sd = sd * 250_000.0;
        assert!((g.sums[0].sum - w.sums[0]).abs() as f64 <= 6.0 * spend_sd);
    }
    // (other) tiers and bands are empty: their noised counts are withheld.
    assert!(withheld > 0, "some cells are small enough to be withheld");

    // Columns the policy does not allow are refused by name.
    let q = breakdown(&["deposit_balance"], &[], &[], vec![], vec![]);
    let refused = cluster
        .run(spec(Query::Breakdown(q), noised(1.0)))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("not allowed as a group"),
        "{refused}"
    );
    cluster.shutdown().await;
}
