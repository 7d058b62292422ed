//! Attribution tables and lift results: aligned text for people, JSON for
//! programs. Error bars are 95% intervals of the noise (1.96 standard
//! deviations), shown only for noised releases.

use jointly_protocol::wire::{AttributionResult, Interval, LiftArm, LiftResult, Release, ReleasedCount};
use serde_json::{Value, json};

use super::{count_json, release_json};

#[cfg(test)]
#[path = "campaign_tests.rs"]
mod tests;

const Z95: f64 = 1.96;

fn noised(release: Option<&Release>) -> bool {
    release.is_some_and(|r| !r.exact)
}

fn thousandths(v: i64) -> String {
    format!("{:.1}", v as f64 / 1000.0)
}

fn plus_minus(text: String, stddev: f64, release: Option<&Release>) -> String {
    if noised(release) {
        format!("{text} ± {:.0}", Z95 * stddev)
    } else {
        text
    }
}

fn count_cell(c: Option<&ReleasedCount>, stddev: f64, release: Option<&Release>) -> String {
    match c {
        None => "-".into(),
        Some(c) if c.below_threshold => format!("<{}", release.map_or(0, |r| r.threshold)),
        Some(c) => plus_minus(c.value.to_string(), stddev, release),
    }
}

/// Aligns columns: the first `left` columns to the left, the rest right.
fn aligned(rows: &[Vec<String>], left: usize) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i < left {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        out += cells.join("  ").trim_end();
        out.push('\n');
    }
    out
}

/// The attributed totals' noise: every row's, added up.
fn attributed_stddev(a: &AttributionResult) -> f64 {
    a.row_conversions_stddev * (a.rows.len() as f64).sqrt()
}

/// Marks a number whose 95% interval is wider than itself.
fn marked(text: String, not_significant: bool) -> String {
    if not_significant {
        format!("{text} n.s.")
    } else {
        text
    }
}

pub fn attribution_table(a: &AttributionResult, release: Option<&Release>) -> String {
    let by_campaign = a.rows.iter().any(|r| !r.campaign.is_empty());
    let mut header = vec!["channel".to_string()];
    if by_campaign {
        header.push("campaign".into());
    }
    header.extend(["conversions".into(), "value (CNY)".into()]);
    let mut rows = vec![header];
    for r in &a.rows {
        let mut row = vec![r.channel.clone()];
        if by_campaign {
            row.push(r.campaign.clone());
        }
        if r.below_threshold {
            let below = format!("<{}", release.map_or(0, |r| r.threshold));
            row.extend([below, "-".into()]);
        } else {
            row.push(marked(
                plus_minus(
                    thousandths(r.milli_conversions),
                    a.row_conversions_stddev,
                    release,
                ),
                r.conversions_not_significant,
            ));
            row.push(marked(
                plus_minus(
                    format!("{:.0}", r.milli_value as f64 / 1000.0),
                    a.row_value_stddev,
                    release,
                ),
                r.value_not_significant,
            ));
        }
        rows.push(row);
    }
    let labels = if by_campaign { 2 } else { 1 };
    let mut text = aligned(&rows, labels);
    let unattributed_stddev = (a.conversions_stddev.powi(2) + attributed_stddev(a).powi(2)).sqrt();
    let totals = vec![
        vec![
            "conversions".to_string(),
            count_cell(a.conversions.as_ref(), a.conversions_stddev, release),
        ],
        vec![
            "attributed".to_string(),
            count_cell(a.attributed.as_ref(), attributed_stddev(a), release),
        ],
        vec![
            "unattributed".to_string(),
            count_cell(a.unattributed.as_ref(), unattributed_stddev, release),
        ],
    ];
    text.push('\n');
    text += &aligned(&totals, 1);
    if a.rows
        .iter()
        .any(|r| r.conversions_not_significant || r.value_not_significant)
    {
        text +=
            "\nn.s.: the 95% interval is wider than the number itself; it cannot be told apart from noise.\n";
    }
    text
}

pub fn attribution_json(a: &AttributionResult, release: Option<&Release>) -> Value {
    json!({
        "kind": "attribution",
        "model": a.model,
        "lookback_days": a.lookback_days,
        "window": a.window,
        "windows": a.windows,
        "rows": a.rows.iter().map(|r| if r.below_threshold {
            json!({"channel": r.channel, "campaign": r.campaign, "below_threshold": true})
        } else {
            json!({
                "channel": r.channel,
                "campaign": r.campaign,
                "conversions": r.milli_conversions as f64 / 1000.0,
                "milli_conversions": r.milli_conversions,
                "value_cny": r.milli_value as f64 / 1000.0,
                "below_threshold": false,
                "conversions_not_significant": r.conversions_not_significant,
                "value_not_significant": r.value_not_significant,
            })
        }).collect::<Vec<_>>(),
        "conversions": count_json(a.conversions.as_ref()),
        "attributed": count_json(a.attributed.as_ref()),
        "unattributed": count_json(a.unattributed.as_ref()),
        "noise_stddev": {
            "row_conversions": a.row_conversions_stddev,
            "row_value_cny": a.row_value_stddev,
            "conversions": a.conversions_stddev,
            "attributed": attributed_stddev(a),
        },
        "release": release_json(release),
    })
}

fn interval_text(i: Option<&Interval>, percent: bool) -> String {
    match i {
        None => "-".into(),
        Some(i) if percent => format!(
            "{:.2}% [{:.2}%, {:.2}%]",
            100.0 * i.estimate,
            100.0 * i.low,
            100.0 * i.high
        ),
        Some(i) => format!("{:.2} [{:.2}, {:.2}]", i.estimate, i.low, i.high),
    }
}

fn arm_row(name: &str, arm: Option<&LiftArm>, l: &LiftResult, release: Option<&Release>) -> Vec<String> {
    let Some(arm) = arm else {
        return vec![name.into(), "-".into()];
    };
    let withheld = arm.persons.as_ref().is_some_and(|p| p.below_threshold);
    vec![
        name.into(),
        count_cell(arm.persons.as_ref(), l.count_stddev, release),
        count_cell(arm.converters.as_ref(), l.count_stddev, release),
        if withheld {
            "-".into()
        } else {
            plus_minus(arm.value.to_string(), l.value_stddev, release)
        },
        interval_text(arm.rate.as_ref(), true),
        interval_text(arm.value_per_person.as_ref(), false),
    ]
}

pub fn lift_table(l: &LiftResult, release: Option<&Release>) -> String {
    let rows = vec![
        vec![
            "arm".into(),
            "customers".into(),
            "converters".into(),
            "value (CNY)".into(),
            "conversion rate [95%]".into(),
            "value per person (CNY) [95%]".into(),
        ],
        arm_row("test", l.test.as_ref(), l, release),
        arm_row("control", l.control.as_ref(), l, release),
    ];
    let mut text = aligned(&rows, 1);
    text.push('\n');
    let points = |i: &Interval| {
        format!(
            "{:+.2} points [{:+.2}, {:+.2}]",
            100.0 * i.estimate,
            100.0 * i.low,
            100.0 * i.high
        )
    };
    let relative = |i: &Interval| {
        format!(
            "{:+.1}% [{:+.1}%, {:+.1}%]",
            100.0 * i.estimate,
            100.0 * i.low,
            100.0 * i.high
        )
    };
    text += &format!(
        "lift      absolute {}; relative {}\n",
        l.absolute
            .as_ref()
            .map_or("- (an arm has no customers)".into(), points),
        l.relative
            .as_ref()
            .map_or("- (no control conversions)".into(), relative)
    );
    text
}

fn interval_json(i: Option<&Interval>) -> Value {
    i.map_or(
        Value::Null,
        |i| json!({"estimate": i.estimate, "low95": i.low, "high95": i.high}),
    )
}

pub fn lift_json(l: &LiftResult, release: Option<&Release>) -> Value {
    let arm = |a: Option<&LiftArm>| {
        a.map_or(Value::Null, |a| {
            json!({
                "customers": count_json(a.persons.as_ref()),
                "converters": count_json(a.converters.as_ref()),
                "value_cny": a.value,
                "rate": interval_json(a.rate.as_ref()),
                "value_per_person": interval_json(a.value_per_person.as_ref()),
            })
        })
    };
    json!({
        "kind": "lift",
        "test": arm(l.test.as_ref()),
        "control": arm(l.control.as_ref()),
        "absolute": interval_json(l.absolute.as_ref()),
        "relative": interval_json(l.relative.as_ref()),
        "noise_stddev": {"count": l.count_stddev, "value_cny": l.value_stddev},
        "release": release_json(release),
    })
}

/// One line for the job list.
pub fn attribution_summary(a: &AttributionResult) -> String {
    format!(
        "{} rows, {} attributed",
        a.rows.len(),
        a.attributed
            .as_ref()
            .map_or("-".into(), |c| if c.below_threshold {
                "<threshold".into()
            } else {
                c.value.to_string()
            })
    )
}

pub fn lift_summary(l: &LiftResult) -> String {
    match &l.absolute {
        Some(i) => format!("lift {:+.2} points", 100.0 * i.estimate),
        None => "lift -".into(),
    }
}
