//! Attribution from the generated campaign files to the combined table:
//! the node's event loaders, the lanes of every window run between the bank
//! and the partner in memory (through the wire encoding), the coordinator's
//! opening of each lane, and the combination, against the polars reference
//! (`jointly_examples::plaintext_attribution`) on the same messy files. Every
//! model, per channel and per channel x campaign, daily and hourly windows.

use jointly_examples::{
    campaign_data::{CAMPAIGNS, CHANNELS, CampaignData, CampaignSpec, People, generate_campaign},
    demo_attribution::VALUE_CLIP,
    plaintext_attribution::{AttributionParams, AttributionTable, Period, attribution},
};
use jointly_protocol::{
    crypto::bsgs::BsgsTable,
    ids::normalize::{IdKind, Normalizer},
    protocols::breakdown::{Breakdown, BreakdownReceiver, BreakdownSender, Lane, open_lane},
    queries::attribution::{
        self, Plan, Totals, ValueBuckets, bank_party, combine, partner_party, receiver_lanes,
        released_values, sender_lanes,
    },
    queries::attribution_model::{Model, Window},
    session::outcome::Outcome,
    session::party::run_pair,
    session::stream::{Limits, Setup},
};

const TERMS: [u8; 32] = [3; 32];

fn campaign(dir: &std::path::Path) -> CampaignData {
    let spec = CampaignSpec {
        people: People {
            bank: 260,
            partner: 300,
            overlap: 180,
        },
        exposures: 1_500,
        conversions: 320,
        windows: 6,
        seed: 11,
        messy: true,
    };
    generate_campaign(&spec, dir).expect("generate the campaign")
}

/// The private computation: both sides load their own file, build their
/// lanes, run them, and the lanes are opened and combined.
fn private(data: &CampaignData, plan: &Plan, table: &BsgsTable) -> (Totals, u64) {
    let normalizer = Normalizer::default();
    let exposures = data
        .load_exposures(&normalizer)
        .expect("partner loads its exposures");
    let conversions = data
        .load_conversions(&normalizer)
        .expect("bank loads its conversions");
    assert!(
        exposures.report.rejected_ids.values().sum::<u64>() > 0,
        "messy ids"
    );
    assert!(
        exposures.report.invalid_ts + conversions.report.invalid_ts > 0,
        "messy times"
    );
    let (bank_lanes, elements) =
        receiver_lanes(plan, &conversions.ids, &conversions.rows).expect("bank lanes");
    let partner_lanes = sender_lanes(plan, &exposures.ids, &exposures.touches).expect("partner lanes");
    let shape = plan.lane_shape();
    let limits = Limits {
        chunk_points: 64,
        ..Limits::default()
    };
    let noise = || vec![0; released_values(plan)];
    let buckets = shape.receiver_groups;
    let bank_setups = vec![Setup::exact(limits, TERMS, buckets, 0); plan.windows()];
    let partner_setups = vec![Setup::exact(limits, TERMS, 1, buckets); plan.windows()];
    let bank = bank_party(plan, bank_lanes, noise(), bank_setups).expect("bank party");
    let partner = partner_party(plan, partner_lanes, noise(), partner_setups).expect("partner party");
    let (Outcome::Breakdown(bank), Outcome::Breakdown(partner)) =
        run_pair(Box::new(bank), Box::new(partner)).expect("an honest session")
    else {
        panic!("not breakdown outcomes")
    };
    let ([partner], [bank]) = (&partner[..], &bank[..]) else {
        panic!("one pooled release per party")
    };
    let opened = open_lane(partner, bank, table, 1 << 40).expect("open the pooled release");
    (combine(plan, &opened).expect("combine"), elements.elements)
}

fn plan(period: &Period, model: Model, by_campaign: bool) -> Plan {
    let buckets = ValueBuckets { clip: VALUE_CLIP };
    Plan {
        period: attribution::Period {
            start: period.start,
            end: period.end,
            window: period.window,
            max_conversions: 3,
        },
        lookback_days: 7,
        model,
        buckets,
        channels: CHANNELS.len(),
        campaigns: CAMPAIGNS.len(),
        by_campaign,
    }
}

fn assert_equal(got: &Totals, elements: u64, want: &AttributionTable, by_campaign: bool, what: &str) {
    let (milli, value): (Vec<i64>, Vec<i64>) = if by_campaign {
        want.by_channel_campaign
            .iter()
            .map(|c| (c.credit.milli_conversions as i64, c.credit.value as i64))
            .unzip()
    } else {
        want.by_channel
            .iter()
            .map(|c| (c.credit.milli_conversions as i64, c.credit.value as i64))
            .unzip()
    };
    assert_eq!(got.milli_conversions, milli, "{what}: milli-conversions");
    assert_eq!(got.value, value, "{what}: value");
    assert_eq!(elements, want.elements, "{what}: elements");
    assert_eq!(got.attributed() as u64, want.attributed, "{what}: attributed");
    assert_eq!(
        elements - got.attributed() as u64,
        want.unattributed,
        "{what}: unattributed"
    );
}

#[test]
fn every_model_equals_the_reference_on_messy_files() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = campaign(dir.path());
    let period = Period::days(data.truth.period_start, 6);
    let table = BsgsTable::build(14).expect("table");
    for model in [
        Model::LastTouch,
        Model::FirstTouch,
        Model::Linear,
        Model::TimeDecay { half_life_days: 7 },
        Model::TimeDecay { half_life_days: 1 },
        Model::PositionBased,
    ] {
        let want = attribution(
            &data.exposures_path,
            &data.conversions_path,
            &AttributionParams::new(period, model, VALUE_CLIP),
        )
        .expect("reference");
        assert!(
            want.attributed > 0 && want.unattributed > 0 && want.capped > 0,
            "{model}"
        );
        for by_campaign in [false, true] {
            let (got, elements) = private(&data, &plan(&period, model, by_campaign), &table);
            assert_equal(
                &got,
                elements,
                &want,
                by_campaign,
                &format!("{model}, by campaign {by_campaign}"),
            );
        }
    }
}

#[test]
fn hourly_windows_equal_the_reference() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = campaign(dir.path());
    // The third day, by the hour: exposures of the days before are in the
    // lookback of every window.
    let start = data.truth.period_start + 2 * 86_400;
    let period = Period {
        start,
        end: start + 24 * 3_600,
        window: Window::Hour,
    };
    let table = BsgsTable::build(14).expect("table");
    let model = Model::Linear;
    let want = attribution(
        &data.exposures_path,
        &data.conversions_path,
        &AttributionParams::new(period, model, VALUE_CLIP),
    )
    .expect("reference");
    assert!(want.elements > 0);
    let (got, elements) = private(&data, &plan(&period, model, true), &table);
    assert_equal(&got, elements, &want, true, "hourly linear");
}

/// Lift from generated files: the bank's customers (datagen's `bank.csv`)
/// and conversions, the partner's campaign groups, through the node's loaders,
/// one lane and the estimate, against the polars reference.
#[test]
fn lift_equals_the_reference_on_messy_files() {
    use jointly_examples::{
        datagen::{DataFormat, DatagenSpec, generate},
        plaintext_attribution::{LiftParams, lift},
    };
    use jointly_node::{
        config::{ColumnConfig, ColumnUse, DatasetConfig},
        dataset,
    };
    use jointly_protocol::queries::lift::{self, LiftPlan, Noise};

    let dir = tempfile::tempdir().expect("temporary directory");
    let base = generate(
        &DatagenSpec {
            bank_rows: 700,
            partner_rows: 900,
            overlap: 450,
            seed: 5,
            messy: true,
            format: DataFormat::Csv,
        },
        dir.path(),
    )
    .expect("datagen");
    let data = generate_campaign(
        &CampaignSpec {
            people: People::from(&base.truth),
            exposures: 2_000,
            conversions: 500,
            windows: 10,
            seed: 5,
            messy: true,
        },
        dir.path(),
    )
    .expect("campaign");
    let normalizer = Normalizer::default();
    let dataset = |name: &str, path: &std::path::Path, id: &str, columns| DatasetConfig {
        name: name.to_string(),
        path: path.to_path_buf(),
        format: None,
        id_column: id.to_string(),
        id_kind: IdKind::Phone,
        columns,
    };
    let customers = dataset::load(
        &dataset("customers", &base.bank_path, "phone", Vec::new()),
        &normalizer,
    )
    .expect("bank customers");
    let group_column = ColumnConfig {
        name: "campaign_group".into(),
        uses: vec![ColumnUse::Group],
        values: Some(vec!["test".into(), "control".into()]),
        clip: None,
    };
    let groups = dataset::load(
        &dataset("groups", &data.groups_path, "mobile", vec![group_column]),
        &normalizer,
    )
    .expect("partner groups");
    let grouping = groups
        .attributes
        .groups(&["campaign_group".to_string()])
        .expect("group column");
    // "(other)" is no group.
    let group_of: Vec<Option<u32>> = grouping.codes.iter().map(|&g| (g < 2).then_some(g)).collect();
    let conversions = data.load_conversions(&normalizer).expect("conversions");
    let period = Period::days(data.truth.period_start, 10);
    let plan = LiftPlan {
        period: attribution::Period {
            start: period.start,
            end: period.end,
            window: period.window,
            max_conversions: 3,
        },
        value_clip: 20_000,
    };
    let bank =
        lift::bank_rows(&plan, &customers.ids, &conversions.ids, &conversions.rows).expect("bank rows");
    let partner = lift::partner_rows(&groups.ids, &group_of).expect("partner rows");
    let shape = plan.lane_shape();
    let zeros = vec![0; shape.released_values()];
    let groups = shape.receiver_groups;
    let r = BreakdownReceiver::new(
        0,
        shape,
        partner,
        zeros.clone(),
        Setup::exact(Limits::default(), TERMS, groups, 0),
    )
    .expect("receiver");
    let s = BreakdownSender::new(
        0,
        shape,
        bank,
        zeros,
        Setup::exact(Limits::default(), TERMS, 1, groups),
    )
    .expect("sender");
    let (Outcome::Breakdown(r), Outcome::Breakdown(s)) = run_pair(
        Box::new(Breakdown::new(vec![Lane::Receiver(Box::new(r))])),
        Box::new(Breakdown::new(vec![Lane::Sender(Box::new(s))])),
    )
    .expect("an honest session") else {
        panic!("not breakdown outcomes")
    };
    let cells = open_lane(&s[0], &r[0], &BsgsTable::build(14).expect("table"), 1 << 40).expect("open");
    let [test, control] = lift::groups(&cells).expect("two groups");
    let want = lift(
        &data.groups_path,
        &data.conversions_path,
        &base.bank_path,
        &LiftParams {
            period,
            max_conversions: 3,
            value_clip: 20_000,
        },
    )
    .expect("reference");
    for (got, want) in [(test, want.test), (control, want.control)] {
        assert_eq!(
            (got.persons as u64, got.converters as u64, got.value as u64),
            (want.persons, want.converters, want.value)
        );
    }
    let estimate = lift::estimate([test, control], Noise::default());
    let abs = estimate.absolute.expect("both groups");
    assert!((abs.estimate - want.lift_abs.expect("both groups")).abs() < 1e-12);
    assert!(abs.low < abs.estimate && abs.estimate < abs.high);
    if let (Some(rel), Some(want_rel)) = (estimate.relative, want.lift_rel) {
        assert!((rel.estimate - want_rel).abs() < 1e-9);
    }
}
