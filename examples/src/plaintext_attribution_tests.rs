use std::path::PathBuf;

use jointly_protocol::queries::attribution_model::credits;
use proptest::prelude::*;

use super::*;
use crate::campaign_data::{CampaignData, CampaignSpec, ChannelEffect, People, generate_campaign};
use crate::datagen::{DataFormat, DatagenSpec, generate};
use crate::timestamp::NOVEMBER_2026;

// Five daily windows, 2026-11-01 (w0) to 2026-11-05 (w4); lookback 3 days;
// K = 2. Persons are phones 138000000PP; the comments give each row's
// person and what becomes of it.
const CONVERSIONS: &str = "\
phone,ts,type,value
13800000002,2026-11-05T09:00:00Z,wealth_purchase,999999
138 0000 0001,2026-11-04T10:00:00Z,wealth_purchase,2500.00
+86 138-0000-0002,2026-11-02T08:00:00Z,card_apply,60.00
13800000002,2026-11-02T20:00:00Z,card_apply,40.00
13800000002,2026-11-03T09:00:00Z,wealth_purchase,100.01
13800000003,2026-11-03T12:00:00Z,wealth_purchase,250000
13800000004,2026-11-05T01:00:00Z,card_apply,0.495
0086 138 0000 0005,2026-11-01T15:00:00Z,card_apply,-5.00
13800000006,2026-11-03T00:00:00Z,card_apply,1e3
N/A,2026-11-03T10:00:00Z,card_apply,10.00
13800000001,2026-11-31T10:00:00Z,card_apply,10.00
13800000001,2026-11-06T00:00:00Z,card_apply,10.00
13800000001,2026-10-31T23:59:59Z,card_apply,10.00
+8613800000001,2026-11-04T11:00:00+08:00,card_apply,30
";
// Elements (person, window: value -> bucket representative, clip 10,000):
//   A w3: 2500.00 + 30 (11:00+08:00 is 03:00Z, same day) -> 3500
//   B w1: 60.00 + 40.00 = 100.00, on the bound -> 50
//   B w2: 100.01 -> 150
//   B w4: capped away (K = 2), although written first
//   C w2: 250000 -> 10000 (clipped)
//   D w4: 0.495 -> 0.50 -> 50 (never attributed)
//   E w0: -5.00 counts 0 -> 0
//   F w2: "1e3" is no decimal -> 0 (never attributed)
// Dropped: an invalid phone, 2026-11-31, the period end, a second before
// the period.

const EXPOSURES: &str = "\
mobile,channel,campaign,ts
13800000001,app_push,C1,2026-10-31T23:59:59Z
+86 (138) 0000 0001,app_push,C1,2026-11-01T00:00:00Z
13800000001,sms,C1,2026-11-02T08:00:00+08:00
13800000001,search,C2,2026-11-03T00:00:00Z
13800000001,wechat,C3,2026-11-04T00:00:00Z
13800000001,app_push,C2,2026-11-04T09:00:00Z
13800000001,short_video,C1,2026-11-05T10:00:00Z
13800000001,tv,C1,2026-11-02T10:00:00Z
13800000001,sms,C9,2026-11-02T10:00:00Z
13800000001,sms,C1,2026-11-02 10:00:00
12345,sms,C1,2026-11-02T10:00:00Z
13800000002,wechat,C1,2026-11-01T10:00:00Z
13800000002,short_video,C2,2026-11-02T10:00:00Z
13800000002,instore_screen,C1,2026-11-04T10:00:00Z
13800000003,wechat,C1,2026-11-02T08:00:00Z
13800000003,sms,C3,2026-11-02T08:00:00Z
13800000003,sms,C3,2026-11-02T08:00:00Z
13800000003,sms,C1,2026-11-02T08:00:00Z
13800000004,app_push,C1,2026-11-01T23:59:59Z
13800000004,sms,C1,2026-11-05T00:00:00Z
13800000004,search,C1,2026-11-05T00:30:00Z
13800000004,wechat,C1,2026-11-05T05:00:00Z
13800000005,wechat,C4,2026-10-29T00:00:00Z
13800000005,search,C4,2026-10-31T12:00:00Z
13800000009,search,C1,2026-11-02T00:00:00Z
";
// Touches in each element's lookback [window start − 3 days, window start):
//   A w3 [11-01, 11-04): app_push C1 (at the lookback's first second),
//     sms C1 (00:00Z), search C2; not the one a second earlier, nor those
//     on 11-04 (same window) or later, nor the rows with channel "tv",
//     campaign "C9", a bad time or an invalid phone.
//   B w1 [10-29, 11-02): wechat C1.
//   B w2 [10-31, 11-03): wechat C1, short_video C2. instore_screen on 11-04
//     would only count for the capped w4.
//   C w2: four touches at one time, ordered by channel then campaign:
//     sms C1, sms C3, sms C3 (exact duplicates both count), wechat C1.
//   D w4 [11-02, 11-05): none (one second early, then same window, later).
//   E w0 [10-29, 11-01): wechat C4 (on the boundary), search C4.
//   Person 9 never converts.

/// Bank customers: A to F, J, K, L and I (bank only).
const BANK: &str = "\
customer_id,phone
C1,13800000001
C2,138 0000 0002
C3,13800000003
C4,13800000004
C5,13800000005
C6,13800000006
C7,13800000010
C8,13800000011
C9,13800000012
C10,13800000009
";

const GROUPS: &str = "\
mobile,campaign_group
13800000001,test
13800000002,test
13800000003,control
+86 138 0000 0003,test
13800000004,control
13800000005,test
N/A,test
13800000006,control
13800000007,test
13800000008,Test
13800000010,test
13800000011, control
13800000012,control
";
// Test: A, B, E, J (G is no customer); control: C (its first row counts),
// D, F, K (trimmed), L. H's "Test" is no group.

struct Files {
    _dir: tempfile::TempDir,
    exposures: PathBuf,
    conversions: PathBuf,
    bank: PathBuf,
    groups: PathBuf,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            path
        };
        Files {
            exposures: write("partner_exposures.csv", EXPOSURES),
            conversions: write("bank_conversions.csv", CONVERSIONS),
            bank: write("bank.csv", BANK),
            groups: write("partner_groups.csv", GROUPS),
            _dir: dir,
        }
    }

    fn attribution(&self, model: Model) -> AttributionTable {
        attribution(&self.exposures, &self.conversions, &params(model)).expect("attribution")
    }
}

fn params(model: Model) -> AttributionParams {
    AttributionParams {
        lookback_days: 3,
        max_conversions: 2,
        ..AttributionParams::new(Period::days(NOVEMBER_2026, 5), model, 10_000)
    }
}

/// Per channel in declared order (app_push, sms, wechat, short_video,
/// search, instore_screen): (milli-conversions, credit value).
fn per_channel(t: &AttributionTable) -> Vec<(u64, u64)> {
    t.by_channel
        .iter()
        .map(|c| (c.credit.milli_conversions, c.credit.value))
        .collect()
}

fn cell(t: &AttributionTable, channel: &str, campaign: &str) -> u64 {
    t.by_channel_campaign
        .iter()
        .find(|c| c.channel == channel && c.campaign == campaign)
        .map(|c| c.credit.milli_conversions)
        .expect("declared cell")
}

#[test]
fn rows_and_elements_are_counted() {
    let t = Files::new().attribution(Model::LastTouch);
    assert_eq!(
        t.conversion_rows,
        ConversionRows {
            rows: 14,
            invalid_id: 1,
            invalid_ts: 1,
            outside_period: 2,
            bad_values: 2,
        }
    );
    assert_eq!(
        t.exposure_rows,
        ExposureRows {
            rows: 25,
            invalid_id: 1,
            invalid_ts: 1,
            unknown_label: 2,
        }
    );
    // A w3, B w1, B w2, C w2, D w4, E w0, F w2.
    assert_eq!((t.elements, t.attributed, t.unattributed, t.capped), (7, 5, 2, 1));
}

#[test]
fn last_touch() {
    // A: search 1000 x 3500; B w1: wechat x 50; B w2: short_video x 150;
    // C: wechat (last of the tie) x 10000; E: search x 0.
    let t = Files::new().attribution(Model::LastTouch);
    assert_eq!(
        per_channel(&t),
        vec![
            (0, 0),
            (0, 0),
            (2000, 50_000 + 10_000_000),
            (1000, 150_000),
            (2000, 3_500_000),
            (0, 0),
        ]
    );
    assert_eq!(cell(&t, "wechat", "C1"), 2000);
    assert_eq!(cell(&t, "search", "C2"), 1000);
    assert_eq!(cell(&t, "search", "C4"), 1000);
    assert_eq!(cell(&t, "short_video", "C2"), 1000);
    let cells: u64 = t
        .by_channel_campaign
        .iter()
        .map(|c| c.credit.milli_conversions)
        .sum();
    assert_eq!(cells, 5000);
}

#[test]
fn first_touch() {
    // A: app_push; B w1, B w2: wechat; C: sms C1 (first of the tie); E: wechat.
    let t = Files::new().attribution(Model::FirstTouch);
    assert_eq!(
        per_channel(&t),
        vec![
            (1000, 3_500_000),
            (1000, 10_000_000),
            (3000, 50_000 + 150_000),
            (0, 0),
            (0, 0),
            (0, 0),
        ]
    );
    assert_eq!(cell(&t, "sms", "C1"), 1000);
    assert_eq!(cell(&t, "wechat", "C4"), 1000);
}

#[test]
fn linear() {
    // A: 334 app_push, 333 sms, 333 search (the leftover unit to the first);
    // B w1: wechat 1000; B w2: 500 each; C: 250 each; E: 500 each.
    let t = Files::new().attribution(Model::Linear);
    assert_eq!(
        per_channel(&t),
        vec![
            (334, 334 * 3500),
            (333 + 750, 333 * 3500 + 750 * 10_000),
            (1000 + 500 + 250 + 500, 1000 * 50 + 500 * 150 + 250 * 10_000),
            (500, 500 * 150),
            (333 + 500, 333 * 3500),
            (0, 0),
        ]
    );
    assert_eq!(cell(&t, "sms", "C1"), 333 + 250);
    assert_eq!(cell(&t, "sms", "C3"), 500);
    assert_eq!(cell(&t, "wechat", "C1"), 1000 + 500 + 250);
    assert_eq!(cell(&t, "wechat", "C4"), 500);
}

#[test]
fn position_based() {
    // A: 400, 200, 400; B w2 and E: two touches, 500 each; C: 400 sms C1,
    // 100 and 100 sms C3, 400 wechat C1.
    let t = Files::new().attribution(Model::PositionBased);
    assert_eq!(
        per_channel(&t),
        vec![
            (400, 400 * 3500),
            (200 + 600, 200 * 3500 + 600 * 10_000),
            (1000 + 500 + 400 + 500, 1000 * 50 + 500 * 150 + 400 * 10_000),
            (500, 500 * 150),
            (400 + 500, 400 * 3500),
            (0, 0),
        ]
    );
    assert_eq!(cell(&t, "sms", "C1"), 200 + 400);
    assert_eq!(cell(&t, "sms", "C3"), 200);
}

#[test]
fn time_decay_one_day_half_life() {
    // A: ages 3, 2, 1 days -> weights 1/4, 1/2, 1 -> 142.86, 285.71, 571.43
    //   -> 143, 286, 571. B w2: wechat a day older -> 333, 667.
    // C: equal times -> 250 each. E: wechat 2.5 days older -> 150.22, 849.78
    //   -> 150, 850.
    let t = Files::new().attribution(Model::TimeDecay { half_life_days: 1 });
    assert_eq!(
        per_channel(&t),
        vec![
            (143, 143 * 3500),
            (286 + 750, 286 * 3500 + 750 * 10_000),
            (1000 + 333 + 250 + 150, 1000 * 50 + 333 * 150 + 250 * 10_000),
            (667, 667 * 150),
            (571 + 850, 571 * 3500),
            (0, 0),
        ]
    );
}

#[test]
fn time_decay_seven_day_half_life() {
    // A: 2^(−2/7), 2^(−1/7), 1 -> 300.92, 332.25, 366.83 -> 301, 332, 367.
    // B w2: 475.27, 524.73 -> 475, 525. E: 438.43, 561.57 -> 438, 562.
    let t = Files::new().attribution(Model::TimeDecay { half_life_days: 7 });
    assert_eq!(
        per_channel(&t),
        vec![
            (301, 301 * 3500),
            (332 + 750, 332 * 3500 + 750 * 10_000),
            (1000 + 475 + 250 + 438, 1000 * 50 + 475 * 150 + 250 * 10_000),
            (525, 525 * 150),
            (367 + 562, 367 * 3500),
            (0, 0),
        ]
    );
}

#[test]
fn every_model_hands_out_a_thousand_per_attributed_element() {
    let f = Files::new();
    for model in [
        Model::LastTouch,
        Model::FirstTouch,
        Model::Linear,
        Model::PositionBased,
        Model::TimeDecay { half_life_days: 3 },
    ] {
        let t = f.attribution(model);
        let total: u64 = t.by_channel.iter().map(|c| c.credit.milli_conversions).sum();
        assert_eq!(total, 1000 * t.attributed, "{model}");
        // instore_screen's only touch precedes B's capped element.
        assert_eq!(t.channel("instore_screen"), Some(Credit::default()), "{model}");
    }
}

#[test]
fn a_larger_cap_and_hourly_windows_change_the_answer() {
    let f = Files::new();
    let mut p = params(Model::LastTouch);
    p.max_conversions = 3;
    let t = attribution(&f.exposures, &f.conversions, &p).expect("attribution");
    // B w4 [11-02, 11-05) comes back: instore_screen, last, with 999999 -> 10000.
    assert_eq!((t.elements, t.capped), (8, 0));
    assert_eq!(
        t.channel("instore_screen"),
        Some(Credit {
            milli_conversions: 1000,
            value: 10_000_000
        })
    );

    // Hourly windows: A's 03:00Z and 10:00Z conversions are two elements,
    // and the 09:00 app_push touch now precedes the 10:00 one.
    let mut p = params(Model::LastTouch);
    p.period.window = Window::Hour;
    p.max_conversions = 10;
    let t = attribution(&f.exposures, &f.conversions, &p).expect("attribution");
    assert_eq!(t.elements, 10);
    assert_eq!(cell(&t, "app_push", "C2"), 1000);
}

#[test]
fn bad_parameters_are_refused() {
    let f = Files::new();
    let run = |p: &AttributionParams| {
        attribution(&f.exposures, &f.conversions, p)
            .expect_err("refused")
            .to_string()
    };
    let mut p = params(Model::Linear);
    p.period.start += 3_600;
    assert!(run(&p).contains("window boundaries"));
    let p = params(Model::TimeDecay { half_life_days: 0 });
    assert!(run(&p).contains("half life"));
    let mut p = params(Model::Linear);
    p.lookback_days = 0;
    assert!(run(&p).contains("lookback_days"));
    let mut p = params(Model::Linear);
    p.value_buckets.clip = 0;
    assert!(run(&p).contains("value clip"));
    let mut p = params(Model::Linear);
    p.channels.push("sms".into());
    assert!(run(&p).contains("channels"));

    let missing = attribution(&f.exposures, &f.bank, &params(Model::Linear)).expect_err("no ts column");
    assert!(missing.to_string().contains("phone, ts, value"), "{missing}");
    assert!(!format!("{missing:#}").contains("13800000001"), "{missing:#}");
}

#[test]
fn lift_by_group() {
    let f = Files::new();
    let mut p = LiftParams::new(Period::days(NOVEMBER_2026, 5), 1000);
    p.max_conversions = 2;
    let t = lift(&f.groups, &f.conversions, &f.bank, &p).expect("lift");
    // Test: A (2530 -> clipped 1000), B (100.00 + 100.01 = 200.01 -> 200,
    // its third element capped), E (0), J (no conversion).
    assert_eq!((t.test.persons, t.test.converters, t.test.value), (4, 3, 1200));
    // Control: C (250000 -> 1000), D (0.50 -> 1, half up), F (0), K, L.
    assert_eq!(
        (t.control.persons, t.control.converters, t.control.value),
        (5, 3, 1001)
    );
    assert_eq!((t.test.rate, t.control.rate), (Some(0.75), Some(0.6)));
    let abs = t.lift_abs.expect("both rates");
    assert!((abs - 0.15).abs() < 1e-12);
    assert!((t.lift_rel.expect("control rate above 0") - 0.25).abs() < 1e-12);

    p.max_conversions = 1;
    let t = lift(&f.groups, &f.conversions, &f.bank, &p).expect("lift");
    assert_eq!(t.test.value, 1000 + 100);
}

#[test]
fn lift_without_control_converters_has_no_relative_lift() {
    let f = Files::new();
    std::fs::write(
        &f.groups,
        "mobile,campaign_group\n13800000001,test\n13800000010,control\n",
    )
    .expect("write");
    let p = LiftParams::new(Period::days(NOVEMBER_2026, 5), 1000);
    let t = lift(&f.groups, &f.conversions, &f.bank, &p).expect("lift");
    assert_eq!((t.test.rate, t.control.rate), (Some(1.0), Some(0.0)));
    assert_eq!((t.lift_abs, t.lift_rel), (Some(1.0), None));
}

#[test]
fn buckets_include_their_bound() {
    // A clip of 10,000 CNY: bounds 0, 100, 200, 500, 1,000, 2,000, 5,000 and
    // 10,000 CNY; representatives in tenths of a percent of the clip.
    let b = ValueBuckets { clip: 10_000 };
    for (fen, representative) in [
        (0, 0),
        (1, 5),
        (10_000, 5),
        (10_001, 15),
        (253_000, 350),
        (1_000_000, 750),
        (1_000_001, 1000),
        (u64::MAX, 1000),
    ] {
        assert_eq!(b.representative(fen), representative, "{fen}");
    }
    assert_eq!(b.milli_cny(1000 * 750).expect("fits"), 7_500_000);
}

#[test]
fn reference_credits_by_hand() {
    let ws = NOVEMBER_2026;
    let hours = |n: i64| (0..n).map(|i| ws - 3_600 * (n - i)).collect::<Vec<_>>();
    let c = |m: Model, t: &[i64]| reference_credits(m, ws, t).expect("credits");
    assert_eq!(
        c(Model::Linear, &hours(7)),
        vec![143, 143, 143, 143, 143, 143, 142]
    );
    assert_eq!(c(Model::PositionBased, &hours(5)), vec![400, 67, 67, 66, 400]);
    assert_eq!(c(Model::PositionBased, &hours(1)), vec![1000]);
    assert_eq!(c(Model::LastTouch, &[ws - 9, ws - 9]), vec![0, 1000]);
    assert_eq!(c(Model::Linear, &[]), Vec::<u32>::new());
}

fn model_strategy() -> impl Strategy<Value = Model> {
    prop_oneof![
        Just(Model::LastTouch),
        Just(Model::FirstTouch),
        Just(Model::Linear),
        Just(Model::PositionBased),
        (1u32..30).prop_map(|half_life_days| Model::TimeDecay { half_life_days }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// The reference and the protocol crate's credits (what nodes run) agree.
    #[test]
    fn reference_agrees_with_the_protocol_crate(
        model in model_strategy(),
        ages in proptest::collection::vec(1i64..40 * DAY, 0..30),
        ties in proptest::collection::vec(any::<bool>(), 30),
    ) {
        let ws = NOVEMBER_2026;
        let mut ages = ages;
        // Repeat some ages: ties in time are common in real exposure logs.
        for i in 1..ages.len() {
            if ties[i] {
                ages[i] = ages[i - 1];
            }
        }
        ages.sort_unstable_by(|a, b| b.cmp(a));
        let touches: Vec<i64> = ages.iter().map(|a| ws - a).collect();
        let expected = reference_credits(model, ws, &touches).expect("reference");
        prop_assert_eq!(credits(model, ws, &touches).expect("protocol"), expected);
    }
}

// Generated data: a known answer should show through the reference.

struct Generated {
    _dir: tempfile::TempDir,
    bank: PathBuf,
    data: CampaignData,
}

fn generated(messy: bool) -> Generated {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = DatagenSpec {
        bank_rows: 6_000,
        partner_rows: 8_000,
        overlap: 4_000,
        seed: 11,
        messy,
        format: DataFormat::Csv,
    };
    let base = generate(&spec, dir.path()).expect("datagen");
    let campaign = CampaignSpec {
        people: People::from(&base.truth),
        exposures: 30_000,
        conversions: 6_000,
        windows: 30,
        seed: 11,
        messy,
    };
    let data = generate_campaign(&campaign, dir.path()).expect("campaign data");
    Generated {
        bank: base.bank_path,
        data,
        _dir: dir,
    }
}

fn truth_period(g: &Generated) -> Period {
    Period {
        start: g.data.truth.period_start,
        end: g.data.truth.period_end,
        window: Window::Day,
    }
}

#[test]
fn generated_lift_matches_the_truth() {
    for messy in [true, false] {
        let g = generated(messy);
        let truth = &g.data.truth;
        let p = LiftParams::new(truth_period(&g), 100_000);
        let t = lift(&g.data.groups_path, &g.data.conversions_path, &g.bank, &p).expect("lift");
        assert_eq!(
            (t.test.persons, t.test.converters),
            (truth.overlap_test, truth.converters_test)
        );
        assert_eq!(
            (t.control.persons, t.control.converters),
            (truth.overlap_control, truth.converters_control)
        );
        let abs = t.lift_abs.expect("both groups");
        assert!((abs - truth.lift_abs).abs() < 1e-12);
        assert!(abs > 0.05, "lift {abs}");
        let rows = t.conversion_rows;
        assert_eq!(rows.rows, truth.conversion_rows);
        assert_eq!(rows.invalid_id + rows.invalid_ts, truth.conversion_invalid_rows);
        assert_eq!(rows.outside_period, truth.conversions_outside_period);
        assert_eq!(rows.bad_values, truth.conversion_bad_values);
    }
}

#[test]
fn generated_attribution_credits_the_most_effective_channel() {
    let g = generated(true);
    let truth = &g.data.truth;
    let p = AttributionParams::new(truth_period(&g), Model::LastTouch, 20_000);
    let t = attribution(&g.data.exposures_path, &g.data.conversions_path, &p).expect("attribution");
    let rows = t.exposure_rows;
    assert_eq!(rows.rows, truth.exposure_rows);
    assert_eq!(
        rows.invalid_id + rows.invalid_ts + rows.unknown_label,
        truth.exposure_invalid_rows
    );
    let total: u64 = t.by_channel.iter().map(|c| c.credit.milli_conversions).sum();
    assert_eq!(total, 1000 * t.attributed);
    assert!(t.attributed > 1_000 && t.unattributed > 1_000, "{t:?}");

    // Search has the largest effect per exposure: it leads both in total
    // credit and in credit per exposure.
    let effect = |c: &ChannelEffect| c.conversion_probability;
    let best = truth
        .channel_effects
        .iter()
        .max_by(|a, b| effect(a).total_cmp(&effect(b)))
        .expect("channels");
    let credit = |name: &str| t.channel(name).expect("declared").milli_conversions;
    let leader = CHANNELS.iter().max_by_key(|c| credit(c)).expect("channels");
    assert_eq!(*leader, best.channel);
    let per_exposure = |i: usize| credit(CHANNELS[i]) as f64 / truth.exposures_by_channel[i] as f64;
    let leader = (0..CHANNELS.len())
        .max_by(|&a, &b| per_exposure(a).total_cmp(&per_exposure(b)))
        .expect("channels");
    assert_eq!(CHANNELS[leader], best.channel);
}
