//! Attribution and lift end to end: a coordinator and two nodes on loopback
//! with the generated campaign files declared as event tables, every model's
//! exact result (per channel and per channel x campaign, daily and hourly
//! windows) and the lift checked against the polars reference on the same
//! messy files; a noised run; and the queries the planner or a node refuses.

use crate::support::*;
use jointly_examples::{
    campaign_data::{CampaignData, CampaignSpec, People, generate_campaign},
    cluster::{Cluster, exact, noised},
    datagen::{DataFormat, DatagenSpec, GeneratedData, generate},
    demo_attribution::{
        MAX_CONVERSIONS, VALUE_CLIP, attribution_of, attribution_spec, equals_reference, lift_of, lift_spec,
    },
    deploy::{CampaignFiles, PolicySpec},
    plaintext_attribution::{AttributionParams, LiftParams, Period, attribution, lift},
};
use jointly_protocol::{
    queries::attribution_model::{Model, Window},
    wire::{JobState, query_spec::Query},
};

const DAYS: u32 = 6;

fn generated(dir: &std::path::Path) -> (GeneratedData, CampaignData) {
    let base = generate(
        &DatagenSpec {
            bank_rows: 400,
            partner_rows: 500,
            overlap: 250,
            seed: 21,
            messy: true,
            format: DataFormat::Csv,
        },
        dir,
    )
    .expect("datagen");
    let campaign = generate_campaign(
        &CampaignSpec {
            people: People::from(&base.truth),
            exposures: 2_500,
            conversions: 500,
            windows: DAYS,
            seed: 21,
            messy: true,
        },
        dir,
    )
    .expect("campaign data");
    (base, campaign)
}

async fn cluster(dir: &std::path::Path, base: &GeneratedData, campaign: &CampaignData) -> Cluster {
    Cluster::start_with_campaign(
        dir,
        &base.bank_path,
        &base.partner_path,
        CampaignFiles::from(campaign),
        PolicySpec::testing(),
    )
    .await
    .expect("cluster")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_model_equals_the_reference_through_the_coordinator() {
    let dir = tempdir();
    let (base, campaign) = generated(dir.path());
    let cluster = cluster(dir.path(), &base, &campaign).await;
    let daily = Period::days(campaign.truth.period_start, DAYS);
    // The third day by the hour: the days before are in every window's lookback.
    let start = campaign.truth.period_start + 2 * 86_400;
    let hourly = Period {
        start,
        end: start + 24 * 3_600,
        window: Window::Hour,
    };
    let runs = [
        (daily, Model::LastTouch, false),
        (daily, Model::FirstTouch, false),
        (daily, Model::Linear, false),
        (daily, Model::TimeDecay { half_life_days: 7 }, false),
        (daily, Model::TimeDecay { half_life_days: 1 }, true),
        (daily, Model::PositionBased, true),
        (daily, Model::Linear, true),
        (hourly, Model::PositionBased, false),
    ];
    for (period, model, by_campaign) in runs {
        let want = attribution(
            &campaign.exposures_path,
            &campaign.conversions_path,
            &AttributionParams::new(period, model, VALUE_CLIP),
        )
        .expect("reference");
        // The generated files hold the cases the models must get right.
        assert!(want.attributed > 0 && want.unattributed > 0, "{model}");
        if period.window == Window::Day {
            assert!(want.capped > 0, "several conversions beyond the cap");
        }
        let job = cluster
            .run(attribution_spec(&period, model, by_campaign, exact()))
            .await
            .expect("job");
        assert_eq!(job.state, JobState::Succeeded as i32, "{model}: {}", job.error);
        let got = attribution_of(&job).expect("an attribution result");
        assert!(
            equals_reference(&got, &want, by_campaign),
            "{model}, by campaign {by_campaign}, {:?} windows: {got:?}\nwant {want:?}",
            period.window
        );
        assert_eq!(got.rows.len(), if by_campaign { 24 } else { 6 });
        assert_eq!(got.model, model.to_string());
        let release = job.result.and_then(|r| r.release).expect("release");
        assert!(release.exact && got.row_conversions_stddev == 0.0);
    }
    let truth = &campaign.truth;
    assert!(
        truth.exposure_tied_rows > 0 && truth.conversion_tied_rows > 0,
        "ties in time"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lift_and_noised_attribution() {
    let dir = tempdir();
    let (base, campaign) = generated(dir.path());
    let cluster = cluster(dir.path(), &base, &campaign).await;
    let period = Period::days(campaign.truth.period_start, DAYS);

    let want = lift(
        &campaign.groups_path,
        &campaign.conversions_path,
        &base.bank_path,
        &LiftParams {
            period,
            max_conversions: MAX_CONVERSIONS,
            value_clip: VALUE_CLIP,
        },
    )
    .expect("reference");
    let job = cluster.run(lift_spec(&period, exact())).await.expect("lift job");
    assert_eq!(job.state, JobState::Succeeded as i32, "{}", job.error);
    let got = lift_of(&job).expect("a lift result");
    for (arm, want) in [(&got.test, want.test), (&got.control, want.control)] {
        let arm = arm.as_ref().expect("arm");
        assert_eq!(arm.persons.expect("persons").value as u64, want.persons);
        assert_eq!(arm.converters.expect("converters").value as u64, want.converters);
        assert_eq!(arm.value as u64, want.value);
        let rate = arm.rate.expect("rate");
        assert!((rate.estimate - want.rate.expect("rate")).abs() < 1e-12);
        assert!(rate.low <= rate.estimate && rate.estimate <= rate.high);
    }
    let absolute = got.absolute.expect("absolute lift");
    assert!((absolute.estimate - want.lift_abs.expect("lift")).abs() < 1e-12);
    assert!(absolute.low < absolute.estimate && absolute.estimate < absolute.high);
    if let (Some(r), Some(w)) = (got.relative, want.lift_rel) {
        assert!((r.estimate - w).abs() < 1e-9);
    }

    // Noised: every released number within six standard deviations of the
    // exact one, and the intervals wider than without noise.
    let model = Model::Linear;
    let exact_job = cluster
        .run(attribution_spec(&period, model, false, exact()))
        .await
        .expect("exact job");
    let noised_job = cluster
        .run(attribution_spec(&period, model, false, noised(1.0)))
        .await
        .expect("noised job");
    assert_eq!(
        noised_job.state,
        JobState::Succeeded as i32,
        "{}",
        noised_job.error
    );
    let (e, n) = (
        attribution_of(&exact_job).expect("exact"),
        attribution_of(&noised_job).expect("noised"),
    );
    assert!(n.row_conversions_stddev > 0.0 && n.conversions_stddev > 0.0);
    for (x, y) in e.rows.iter().zip(&n.rows) {
        if !y.below_threshold {
            let off = (x.milli_conversions - y.milli_conversions).abs() as f64 / 1000.0;
            assert!(off <= 6.0 * n.row_conversions_stddev, "{off}");
        }
    }
    let count = |c: Option<jointly_protocol::wire::ReleasedCount>| c.expect("count").value as f64;
    assert!((count(e.conversions) - count(n.conversions)).abs() <= 6.0 * n.conversions_stddev);
    let noised_lift = cluster
        .run(lift_spec(&period, noised(1.0)))
        .await
        .expect("noised lift");
    let nl = lift_of(&noised_lift).expect("noised lift result");
    assert!(nl.count_stddev > 0.0);
    if let Some(i) = nl.absolute {
        assert!(i.high - i.low > absolute.high - absolute.low);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_what_is_wrong() {
    let dir = tempdir();
    let (base, campaign) = generated(dir.path());
    let cluster = cluster(dir.path(), &base, &campaign).await;
    let period = Period::days(campaign.truth.period_start, DAYS);
    let expect_refusal = |spec, what: &'static str| {
        let cluster = &cluster;
        async move {
            let e = cluster.run(spec).await.expect_err("refused");
            assert!(e.to_string().contains(what), "{e}");
        }
    };

    // The datasets swapped: conversions named where exposures belong.
    let mut spec = attribution_spec(&period, Model::Linear, false, exact());
    if let Some(Query::Attribution(q)) = spec.query.as_mut() {
        std::mem::swap(&mut q.conversions, &mut q.exposures);
    }
    expect_refusal(spec, "needs conversions").await;
    // A period not on window boundaries.
    let mut spec = attribution_spec(&period, Model::Linear, false, exact());
    if let Some(Query::Attribution(q)) = spec.query.as_mut() {
        q.period.as_mut().expect("period").start += 60;
    }
    expect_refusal(spec, "window boundaries").await;
    // No model.
    let mut spec = attribution_spec(&period, Model::Linear, false, exact());
    if let Some(Query::Attribution(q)) = spec.query.as_mut() {
        q.model = 0;
    }
    expect_refusal(spec, "no model").await;
    // A lift arm that is not a declared value.
    let mut spec = lift_spec(&period, exact());
    if let Some(Query::Lift(q)) = spec.query.as_mut() {
        q.control_value = "holdout".into();
    }
    expect_refusal(spec, "not a declared value").await;
    // Conversions that are not an event table of the customers' node.
    let mut spec = lift_spec(&period, exact());
    if let Some(Query::Lift(q)) = spec.query.as_mut() {
        q.conversions = "purchases".into();
    }
    expect_refusal(spec, "no event table 'purchases'").await;
    cluster.shutdown().await;
}
