use jointly_protocol::wire::{AttributionRow, NodeTerms};

use super::*;

fn release(exact: bool) -> Release {
    Release {
        exact,
        epsilon: if exact { 0.0 } else { 1.0 },
        noise_stddev: if exact { 0.0 } else { 4.0 },
        threshold: 10,
        nodes: vec![NodeTerms::default()],
    }
}

fn count(value: i64, below_threshold: bool) -> Option<ReleasedCount> {
    Some(ReleasedCount {
        value,
        below_threshold,
    })
}

fn attribution() -> AttributionResult {
    let row = |channel: &str, campaign: &str, milli: i64, below: bool| AttributionRow {
        channel: channel.into(),
        campaign: campaign.into(),
        milli_conversions: milli,
        milli_value: milli * 50,
        below_threshold: below,
        conversions_not_significant: false,
        value_not_significant: false,
    };
    AttributionResult {
        model: "linear".into(),
        lookback_days: 7,
        window: "day".into(),
        windows: 30,
        rows: vec![row("sms", "spring", 12_345, false), row("app", "spring", 0, true)],
        conversions: count(40, false),
        attributed: count(12, false),
        unattributed: count(28, false),
        row_conversions_stddev: 10.0,
        row_value_stddev: 500.0,
        conversions_stddev: 3.0,
    }
}

#[test]
fn attribution_table_shows_rows_totals_and_error_bars() {
    let a = attribution();
    let exact = attribution_table(&a, Some(&release(true)));
    assert!(exact.contains("campaign"), "{exact}");
    assert!(exact.contains("12.3") && exact.contains("617"), "{exact}");
    assert!(exact.contains("<10"), "{exact}");
    assert!(exact.contains("unattributed") && exact.contains("28"), "{exact}");
    assert!(!exact.contains('±'), "{exact}");
    let noised = attribution_table(&a, Some(&release(false)));
    // 1.96 x 10 per row; attributed sums two rows' noise.
    assert!(noised.contains("12.3 ± 20"), "{noised}");
    assert!(noised.contains("12 ± 28"), "{noised}");
    let v = attribution_json(&a, Some(&release(false)));
    assert_eq!(v["rows"][0]["milli_conversions"], 12_345);
    assert_eq!(v["rows"][1]["below_threshold"], true);
    assert!(v["rows"][1].get("milli_conversions").is_none());
    assert_eq!(v["unattributed"]["value"], 28);
    assert!(!noised.contains("n.s."), "{noised}");

    // A row whose interval is wider than itself is marked, and the mark
    // explained.
    let mut weak = attribution();
    weak.rows[0].value_not_significant = true;
    let text = attribution_table(&weak, Some(&release(false)));
    assert!(text.contains("617 ± 980 n.s."), "{text}");
    assert!(text.contains("cannot be told apart from noise"), "{text}");
    let v = attribution_json(&weak, Some(&release(false)));
    assert_eq!(v["rows"][0]["value_not_significant"], true);
}

#[test]
fn lift_table_shows_arms_and_lift() {
    let interval = |estimate: f64| {
        Some(Interval {
            estimate,
            low: estimate - 0.01,
            high: estimate + 0.01,
        })
    };
    let arm = |n: i64, c: i64, rate: f64| {
        Some(LiftArm {
            persons: count(n, false),
            converters: count(c, false),
            value: 1_000,
            rate: interval(rate),
            value_per_person: interval(2.5),
        })
    };
    let l = LiftResult {
        test: arm(400, 48, 0.12),
        control: Some(LiftArm {
            persons: count(0, true),
            converters: count(0, true),
            value: 0,
            rate: None,
            value_per_person: None,
        }),
        absolute: interval(0.02),
        relative: None,
        count_stddev: 0.0,
        value_stddev: 0.0,
    };
    let t = lift_table(&l, Some(&release(true)));
    assert!(t.contains("12.00% [11.00%, 13.00%]"), "{t}");
    assert!(t.contains("<10"), "{t}");
    assert!(t.contains("+2.00 points [+1.00, +3.00]"), "{t}");
    assert!(t.contains("no control conversions"), "{t}");
    let v = lift_json(&l, None);
    assert_eq!(v["test"]["customers"]["value"], 400);
    assert!(v["relative"].is_null());
}
