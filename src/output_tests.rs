use jointly_protocol::wire::{
    BreakdownCell, BreakdownQuery, BreakdownResult, Measure, Range, ReleasedSum, SegmentQuery, SegmentResult,
    StringSet, filter::Test,
};

use super::*;

fn datasets() -> (Option<DatasetRef>, Option<DatasetRef>) {
    let d = |node: &str, dataset: &str| {
        Some(DatasetRef {
            node: node.into(),
            dataset: dataset.into(),
        })
    };
    (d("bank", "customers"), d("partner", "users"))
}

fn noised() -> Release {
    Release {
        exact: false,
        epsilon: 1.0,
        noise_stddev: 6.5,
        threshold: 10,
        nodes: Vec::new(),
    }
}

fn succeeded(query: Query, result: query_result::Result) -> Job {
    Job {
        job_id: "j1".into(),
        state: JobState::Succeeded.into(),
        spec: Some(QuerySpec {
            query: Some(query),
            privacy: None,
        }),
        result: Some(QueryResult {
            result: Some(result),
            release: Some(noised()),
        }),
        ..Job::default()
    }
}

fn segment_job(activate: &str, activated: &str) -> Job {
    let (left, right) = datasets();
    succeeded(
        Query::Segment(SegmentQuery {
            left,
            right,
            left_filters: vec![Filter {
                column: "age".into(),
                test: Some(Test::Range(Range {
                    min: Some(25.0),
                    max: None,
                })),
            }],
            right_filters: vec![Filter {
                column: "interest".into(),
                test: Some(Test::OneOf(StringSet {
                    values: vec!["travel".into(), "dining".into()],
                })),
            }],
            activate: activate.into(),
        }),
        query_result::Result::Segment(SegmentResult {
            size: Some(ReleasedCount {
                value: 1234,
                below_threshold: false,
            }),
            activated_node: activated.into(),
        }),
    )
}

const PRIVACY: &str = "privacy  epsilon 1 per node; noise std. dev. 6.5 (); counts below 10 withheld";

#[test]
fn segment_delivered() {
    assert_eq!(
        job_text(&segment_job("bank", "bank")),
        format!(
            "\
job      j1
query    segment bank/customers x partner/users
where    left.age>=25; right.interest in travel,dining
activate members to node 'bank'
state    succeeded
segment  size 1234 ± 13 (95%)
members  delivered to node 'bank' (in its data directory)
{PRIVACY}
"
        )
    );
}

#[test]
fn segment_size_only() {
    let text = job_text(&segment_job("", ""));
    assert!(text.contains("segment  size 1234 ± 13 (95%)\n"));
    assert!(!text.contains("members"));
    assert!(!text.contains("activate"));
}

#[test]
fn breakdown_job() {
    let (left, right) = datasets();
    let job = succeeded(
        Query::Breakdown(BreakdownQuery {
            left,
            right,
            left_group_by: vec!["aum_tier".into()],
            right_group_by: vec!["interest".into()],
            measures: vec![Measure {
                side: wire::Side::Left.into(),
                column: "deposit_balance".into(),
            }],
            ..BreakdownQuery::default()
        }),
        query_result::Result::Breakdown(BreakdownResult {
            left_group_by: vec!["aum_tier".into()],
            right_group_by: vec!["interest".into()],
            measures: vec!["left.deposit_balance".into()],
            cells: vec![BreakdownCell {
                left_group: vec!["T1".into()],
                right_group: vec!["travel".into()],
                count: Some(ReleasedCount {
                    value: 120,
                    below_threshold: false,
                }),
                sums: vec![ReleasedSum {
                    sum: 600_000,
                    mean: 5000.0,
                    below_threshold: false,
                }],
            }],
        }),
    );
    assert_eq!(
        job_text(&job),
        format!(
            "\
job      j1
query    breakdown bank/customers x partner/users by left.aum_tier, right.interest
measures left.deposit_balance
state    succeeded

left.aum_tier  right.interest     count  sum(left.deposit_balance)  mean(left.deposit_balance)
T1             travel          120 ± 13                     600000                     5000.00

note     ± is the 95% interval of a count; sums and means are noised too, shown without error bars
{PRIVACY}
"
        )
    );
    let v = job_json(&job);
    assert_eq!(v["result"]["kind"], "breakdown");
    assert_eq!(v["result"]["cells"][0]["count"]["value"], 120);
}

#[test]
fn segment_json() {
    let v = job_json(&segment_job("bank", "bank"));
    assert_eq!(v["query"], "segment bank/customers x partner/users");
    assert_eq!(v["result"]["kind"], "segment");
    assert_eq!(
        v["result"]["size"],
        json!({"value": 1234, "below_threshold": false})
    );
    assert_eq!(v["result"]["activated_node"], "bank");
    assert_eq!(v["result"]["release"]["ci95_halfwidth"], 1.96 * 6.5);
}
