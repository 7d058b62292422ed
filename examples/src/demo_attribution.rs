//! The demo's attribution and lift part, and the query specs the tests and
//! the benchmark share: credit per channel for the partner's exposures
//! against the bank's conversions (exact, checked against the polars
//! reference, then noised), and the campaign's lift from its test/control
//! split.

use jointly_protocol::{
    queries::attribution_model::{Model, Window},
    wire::{
        AttributionModel, AttributionQuery, AttributionResult, ConversionPeriod, ConversionWindow,
        DatasetRef, Job, LiftQuery, LiftResult, Privacy, QuerySpec, query_result, query_spec::Query,
    },
};

use crate::{
    campaign_data::CampaignData,
    cluster::{Cluster, exact, noised},
    datagen::GeneratedData,
    demo_campaign::failed,
    plaintext_attribution::{self, AttributionParams, AttributionTable, LiftParams, Period},
};

/// K in every query here, as in the reference's defaults.
pub const MAX_CONVERSIONS: u32 = 3;
pub const VALUE_CLIP: u64 = 20_000;

fn reference(node: &str, dataset: &str) -> Option<DatasetRef> {
    Some(DatasetRef {
        node: node.into(),
        dataset: dataset.into(),
    })
}

fn conversion_period(period: &Period) -> Option<ConversionPeriod> {
    Some(ConversionPeriod {
        start: period.start,
        end: period.end,
        window: match period.window {
            Window::Day => ConversionWindow::Day,
            Window::Hour => ConversionWindow::Hour,
        }
        .into(),
        max_conversions: MAX_CONVERSIONS,
    })
}

/// bank/conversions attributed to partner/exposures with a 7-day lookback.
pub fn attribution_spec(period: &Period, model: Model, by_campaign: bool, privacy: Privacy) -> QuerySpec {
    let (model, half_life_days) = match model {
        Model::LastTouch => (AttributionModel::LastTouch, 0),
        Model::FirstTouch => (AttributionModel::FirstTouch, 0),
        Model::Linear => (AttributionModel::Linear, 0),
        Model::TimeDecay { half_life_days } => (AttributionModel::TimeDecay, half_life_days),
        Model::PositionBased => (AttributionModel::PositionBased, 0),
        // `Model` may grow; a model the wire cannot name asks for none, which
        // the coordinator refuses by name.
        _ => (AttributionModel::Unspecified, 0),
    };
    QuerySpec {
        query: Some(Query::Attribution(AttributionQuery {
            conversions: reference("bank", "conversions"),
            exposures: reference("partner", "exposures"),
            model: model.into(),
            half_life_days,
            lookback_days: 7,
            period: conversion_period(period),
            by_campaign,
            value_clip: VALUE_CLIP,
        })),
        privacy: Some(privacy),
    }
}

/// The lift of partner/groups' campaign_group split on bank/customers.
pub fn lift_spec(period: &Period, privacy: Privacy) -> QuerySpec {
    QuerySpec {
        query: Some(Query::Lift(LiftQuery {
            customers: reference("bank", "customers"),
            conversions: "conversions".into(),
            groups: reference("partner", "groups"),
            group_column: "campaign_group".into(),
            test_value: "test".into(),
            control_value: "control".into(),
            period: conversion_period(period),
            value_clip: VALUE_CLIP,
        })),
        privacy: Some(privacy),
    }
}

pub fn attribution_of(job: &Job) -> Option<AttributionResult> {
    match job.result.as_ref()?.result.clone()? {
        query_result::Result::Attribution(a) => Some(a),
        _ => None,
    }
}

pub fn lift_of(job: &Job) -> Option<LiftResult> {
    match job.result.as_ref()?.result.clone()? {
        query_result::Result::Lift(l) => Some(l),
        _ => None,
    }
}

/// Whether an exact attribution result equals the reference table: every
/// row's milli-conversions and value, the elements, attributed and
/// unattributed.
pub fn equals_reference(got: &AttributionResult, want: &AttributionTable, by_campaign: bool) -> bool {
    let want_rows: Vec<(i64, i64)> = if by_campaign {
        want.by_channel_campaign
            .iter()
            .map(|c| (c.credit.milli_conversions as i64, c.credit.value as i64))
            .collect()
    } else {
        want.by_channel
            .iter()
            .map(|c| (c.credit.milli_conversions as i64, c.credit.value as i64))
            .collect()
    };
    let got_rows: Vec<(i64, i64)> = got
        .rows
        .iter()
        .map(|r| (r.milli_conversions, r.milli_value))
        .collect();
    let count = |c: Option<jointly_protocol::wire::ReleasedCount>| c.map_or(-1, |c| c.value);
    got_rows == want_rows
        && count(got.conversions) == want.elements as i64
        && count(got.attributed) == want.attributed as i64
        && count(got.unattributed) == want.unattributed as i64
}

/// Runs the attribution and the lift; returns whether every exact answer
/// equals the reference and every noised one lies within six standard
/// deviations of it.
pub async fn run(
    cluster: &Cluster,
    base: &GeneratedData,
    campaign: &CampaignData,
    days: u32,
) -> anyhow::Result<bool> {
    let period = Period::days(campaign.truth.period_start, days);
    let model = Model::Linear;
    let (exposures, conversions) = (campaign.exposures_path.clone(), campaign.conversions_path.clone());
    let want = tokio::task::spawn_blocking(move || {
        plaintext_attribution::attribution(
            &exposures,
            &conversions,
            &AttributionParams::new(period, model, VALUE_CLIP),
        )
    })
    .await??;
    println!();
    println!(
        "running    attribution: the bank's conversions credited to the partner's ad exposures per channel,"
    );
    println!("           linear model, 7-day lookback, {days} daily windows (exact, then epsilon 1) ...");
    let started = std::time::Instant::now();
    let exact_job = cluster
        .run(attribution_spec(&period, model, false, exact()))
        .await?;
    let noised_job = cluster
        .run(attribution_spec(&period, model, false, noised(1.0)))
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    if failed(&exact_job) || failed(&noised_job) {
        return Ok(false);
    }
    let (Some(e), Some(n)) = (attribution_of(&exact_job), attribution_of(&noised_job)) else {
        return Ok(false);
    };
    let equal = equals_reference(&e, &want, false);
    let mut ok = equal;
    println!(
        "  exact result {} the polars reference; {seconds:.2} s for both jobs",
        if equal { "equals" } else { "DIFFERS FROM" }
    );
    println!(
        "  channel        conversions exact | noised (±{:.0})     value CNY exact | noised (±{:.0})",
        1.96 * n.row_conversions_stddev,
        1.96 * n.row_value_stddev
    );
    for (x, y) in e.rows.iter().zip(&n.rows) {
        let ns = |weak: bool| if weak { " n.s." } else { "" };
        let conv = |r: &jointly_protocol::wire::AttributionRow| {
            if r.below_threshold {
                "withheld".to_string()
            } else {
                format!(
                    "{:.1}{}",
                    r.milli_conversions as f64 / 1000.0,
                    ns(r.conversions_not_significant)
                )
            }
        };
        let value = |r: &jointly_protocol::wire::AttributionRow| {
            if r.below_threshold {
                "withheld".to_string()
            } else {
                format!(
                    "{:.0}{}",
                    r.milli_value as f64 / 1000.0,
                    ns(r.value_not_significant)
                )
            }
        };
        println!(
            "  {:<14} {:>17} | {:<18} {:>15} | {}",
            x.channel,
            conv(x),
            conv(y),
            value(x),
            value(y)
        );
        if !y.below_threshold {
            ok &= (y.milli_conversions - x.milli_conversions).abs() as f64 / 1000.0
                <= 6.0 * n.row_conversions_stddev;
        }
    }
    let count = |c: Option<jointly_protocol::wire::ReleasedCount>| {
        c.map_or("-".into(), |c| {
            if c.below_threshold {
                "withheld".to_string()
            } else {
                c.value.to_string()
            }
        })
    };
    println!(
        "  conversions {} | {} (±{:.0}); attributed {} | {}; unattributed (no exposure in the lookback) {} | {}",
        count(e.conversions),
        count(n.conversions),
        1.96 * n.conversions_stddev,
        count(e.attributed),
        count(n.attributed),
        count(e.unattributed),
        count(n.unattributed)
    );
    if n.rows
        .iter()
        .any(|r| r.conversions_not_significant || r.value_not_significant)
    {
        println!(
            "  n.s.: the 95% interval is wider than the number itself; it cannot be told apart from noise (a value clip nearer the typical conversion value, --value-clip, narrows the value's)"
        );
    }
    println!(
        "  (`jointly query attribution --model M --lookback D --window day|hour --max-conversions K --value-clip CNY [--by-campaign]` for the others; the noise grows with K)"
    );

    let (groups, conversions, customers) = (
        campaign.groups_path.clone(),
        campaign.conversions_path.clone(),
        base.bank_path.clone(),
    );
    let want = tokio::task::spawn_blocking(move || {
        plaintext_attribution::lift(
            &groups,
            &conversions,
            &customers,
            &LiftParams {
                period,
                max_conversions: MAX_CONVERSIONS,
                value_clip: VALUE_CLIP,
            },
        )
    })
    .await??;
    println!();
    println!("running    lift: conversion rate of the partner's test group against its control group,");
    println!("           among bank customers (exact, then epsilon 1) ...");
    let exact_job = cluster.run(lift_spec(&period, exact())).await?;
    let noised_job = cluster.run(lift_spec(&period, noised(1.0))).await?;
    if failed(&exact_job) || failed(&noised_job) {
        return Ok(false);
    }
    let (Some(e), Some(n)) = (lift_of(&exact_job), lift_of(&noised_job)) else {
        return Ok(false);
    };
    let arm = |a: &Option<jointly_protocol::wire::LiftArm>| {
        a.as_ref().map_or((-1, -1, -1), |a| {
            (
                a.persons.map_or(-1, |c| c.value),
                a.converters.map_or(-1, |c| c.value),
                a.value,
            )
        })
    };
    let same = arm(&e.test)
        == (
            want.test.persons as i64,
            want.test.converters as i64,
            want.test.value as i64,
        )
        && arm(&e.control)
            == (
                want.control.persons as i64,
                want.control.converters as i64,
                want.control.value as i64,
            );
    ok &= same;
    let rate = |a: &Option<jointly_protocol::wire::LiftArm>| {
        a.as_ref()
            .and_then(|a| a.rate)
            .map_or("-".into(), |r| format!("{:.2}%", 100.0 * r.estimate))
    };
    println!(
        "  exact per arm (customers, converters, value) {} the polars reference",
        if same { "equal" } else { "DIFFER FROM" }
    );
    println!(
        "  conversion rate  test {} control {} (exact) | test {} control {} (noised)",
        rate(&e.test),
        rate(&e.control),
        rate(&n.test),
        rate(&n.control)
    );
    let lift_text = |l: &LiftResult| {
        l.absolute.map_or("-".into(), |i| {
            format!(
                "{:+.2} points [{:+.2}, {:+.2}]",
                100.0 * i.estimate,
                100.0 * i.low,
                100.0 * i.high
            )
        })
    };
    println!(
        "  lift             exact {}; noised {} (95%, noise included); generated true lift {:+.2} points",
        lift_text(&e),
        lift_text(&n),
        100.0 * campaign.truth.lift_abs
    );
    Ok(ok)
}
