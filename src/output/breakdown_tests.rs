use jointly_protocol::wire::NodeTerms;

use super::*;

fn count(value: i64) -> Option<ReleasedCount> {
    Some(ReleasedCount {
        value,
        below_threshold: false,
    })
}

fn cell(left: &str, right: &str, n: i64, sum: i64, mean: f64) -> BreakdownCell {
    BreakdownCell {
        left_group: vec![left.into()],
        right_group: vec![right.into()],
        count: count(n),
        sums: vec![ReleasedSum {
            sum,
            mean,
            below_threshold: false,
        }],
    }
}

/// As the nodes release a cell below the threshold: zeros that mean nothing.
fn withheld_cell(left: &str, right: &str) -> BreakdownCell {
    BreakdownCell {
        left_group: vec![left.into()],
        right_group: vec![right.into()],
        count: Some(ReleasedCount {
            value: 0,
            below_threshold: true,
        }),
        sums: vec![ReleasedSum {
            sum: 0,
            mean: 0.0,
            below_threshold: true,
        }],
    }
}

fn result() -> BreakdownResult {
    BreakdownResult {
        left_group_by: vec!["aum_tier".into()],
        right_group_by: vec!["interest".into()],
        measures: vec!["left.deposit_balance".into()],
        cells: vec![
            cell("mass", "travel", 1234, 12_345_678, 10_004.601),
            withheld_cell("mass", "(other)"),
            cell("affluent", "travel", 87, 4_350_000, 50_000.0),
        ],
    }
}

fn exact() -> Release {
    Release {
        exact: true,
        epsilon: 0.0,
        noise_stddev: 0.0,
        threshold: 10,
        nodes: Vec::new(),
    }
}

fn noised() -> Release {
    Release {
        exact: false,
        epsilon: 1.0,
        // 1.96 x 6.5 = 12.74: "± 13".
        noise_stddev: 6.5,
        threshold: 10,
        nodes: vec![NodeTerms {
            node: "bank".into(),
            sigma: 4.6,
            delta: 1e-9,
            min_aggregation: 10,
        }],
    }
}

#[test]
fn table_exact() {
    assert_eq!(
        table(&result(), Some(&exact())),
        "\
left.aum_tier  right.interest  count  sum(left.deposit_balance)  mean(left.deposit_balance)
mass           travel           1234                   12345678                    10004.60
mass           (other)           <10                          -                           -
affluent       travel             87                    4350000                    50000.00
"
    );
}

#[test]
fn table_noised() {
    assert_eq!(
        table(&result(), Some(&noised())),
        "\
left.aum_tier  right.interest      count  sum(left.deposit_balance)  mean(left.deposit_balance)
mass           travel          1234 ± 13                   12345678                    10004.60
mass           (other)               <10                          -                           -
affluent       travel            87 ± 13                    4350000                    50000.00
"
    );
}

#[test]
fn table_without_groups_or_measures() {
    let b = BreakdownResult {
        cells: vec![BreakdownCell {
            count: count(6000),
            ..BreakdownCell::default()
        }],
        ..BreakdownResult::default()
    };
    assert_eq!(table(&b, Some(&exact())), "count\n 6000\n");
}

#[test]
fn csv_fields_are_quoted_as_rfc_4180_says() {
    assert_eq!(csv_field("plain"), "plain");
    assert_eq!(csv_field(""), "");
    assert_eq!(csv_field("a,b"), "\"a,b\"");
    assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    assert_eq!(csv_field("cr\r"), "\"cr\r\"");
}

#[test]
fn csv_cells() {
    let mut b = result();
    b.cells[0].left_group = vec!["mass, retail".into()];
    b.cells[2].right_group = vec!["\"luxury\"".into()];
    assert_eq!(
        csv(&b),
        "\
left.aum_tier,right.interest,count,below_threshold,sum(left.deposit_balance),mean(left.deposit_balance)
\"mass, retail\",travel,1234,false,12345678,10004.601
mass,(other),,true,,
affluent,\"\"\"luxury\"\"\",87,false,4350000,50000
"
    );
}

#[test]
fn json_cells() {
    let v = json(&result(), Some(&noised()));
    assert_eq!(v["kind"], "breakdown");
    assert_eq!(
        v["group_by"],
        serde_json::json!(["left.aum_tier", "right.interest"])
    );
    assert_eq!(v["measures"], serde_json::json!(["left.deposit_balance"]));
    assert_eq!(
        v["cells"][0],
        serde_json::json!({
            "labels": {"left.aum_tier": "mass", "right.interest": "travel"},
            "count": {"value": 1234, "below_threshold": false},
            "sums": {"left.deposit_balance": 12_345_678},
            "means": {"left.deposit_balance": 10_004.601},
            "below_threshold": false,
        })
    );
    assert_eq!(
        v["cells"][1],
        serde_json::json!({
            "labels": {"left.aum_tier": "mass", "right.interest": "(other)"},
            "count": {"below_threshold": true},
            "sums": {"left.deposit_balance": null},
            "means": {"left.deposit_balance": null},
            "below_threshold": true,
        })
    );
    assert_eq!(v["release"]["threshold"], 10);
    assert_eq!(v["release"]["noise_stddev"], 6.5);
}

#[test]
fn summaries() {
    assert_eq!(summary(&result()), "3 cells, 1 below threshold");
    assert_eq!(summary(&BreakdownResult::default()), "0 cells");
}
