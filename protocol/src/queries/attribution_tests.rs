use std::collections::BTreeMap;

use rand::{Rng, SeedableRng, rngs::StdRng};

use super::*;
use crate::{
    crypto::bsgs::BsgsTable,
    ids::normalize::IdKind,
    protocols::breakdown::open_lane,
    session::outcome::Outcome,
    session::party::run_pair,
    session::stream::{Limits, Terms},
};

const T: Terms = [5; 32];
const DAY: i64 = 86_400;
const START: i64 = 20_000 * DAY;
/// Whole CNY; its buckets' bounds include 100, 1,000 and 10,000 CNY.
const CLIP: u64 = 10_000;

fn plan(model: Model, by_campaign: bool) -> Plan {
    Plan {
        period: Period {
            start: START,
            end: START + 5 * DAY,
            window: Window::Day,
            max_conversions: 2,
        },
        lookback_days: 2,
        model,
        buckets: ValueBuckets { clip: CLIP },
        channels: 3,
        campaigns: 2,
        by_campaign,
    }
}

const MODELS: [Model; 6] = [
    Model::LastTouch,
    Model::FirstTouch,
    Model::Linear,
    Model::TimeDecay { half_life_days: 1 },
    Model::TimeDecay { half_life_days: 7 },
    Model::PositionBased,
];

fn name(i: u32) -> String {
    format!("person{i:04}@example.com")
}

/// A person's generated rows, keyed by identifier text.
struct Data {
    exposures: BTreeMap<String, Vec<Touch>>,
    conversions: BTreeMap<String, Vec<Conversion>>,
}

/// Exposures for persons `s`, conversions for persons `r`, with the messy
/// cases the semantics name: touches after the conversion's window start or
/// outside the lookback, ties in time, several conversions per person (some in
/// one window, some beyond the cap), conversions outside the period, and
/// values on bucket bounds.
fn data(r: std::ops::Range<u32>, s: std::ops::Range<u32>, seed: u64) -> Data {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut exposures = BTreeMap::new();
    for i in s {
        let n = rng.random_range(0..6);
        let mut touches: Vec<Touch> = (0..n)
            .map(|_| Touch {
                ts: START - 3 * DAY + rng.random_range(0..9 * DAY),
                channel: rng.random_range(0..3),
                campaign: rng.random_range(0..2),
            })
            .collect();
        if n > 0 && rng.random_bool(0.3) {
            // A tie in time on another channel.
            let mut twin = touches[0];
            twin.channel = (twin.channel + 1) % 3;
            touches.push(twin);
        }
        touches.sort_unstable_by_key(|t| (t.ts, t.channel, t.campaign));
        exposures.insert(name(i), touches);
    }
    let mut conversions = BTreeMap::new();
    let values = [
        0u64,
        1,
        10_000,
        10_001,
        99_999,
        100_000,
        100_001,
        999_999,
        1_000_000,
        1_000_001,
        5_000_000_000,
    ];
    for i in r {
        let n = rng.random_range(0..5);
        let rows: Vec<Conversion> = (0..n)
            .map(|_| Conversion {
                ts: START - DAY + rng.random_range(0..7 * DAY),
                fen: values[rng.random_range(0..values.len())],
            })
            .collect();
        conversions.insert(name(i), rows);
    }
    Data {
        exposures,
        conversions,
    }
}

fn ids(names: &[String]) -> Arc<IdList> {
    Arc::new(IdList::from_normalized(IdKind::Email, names.to_vec()))
}

/// The identifier list a side builds, and its rows in that list's order.
fn side<T: Clone>(rows: &BTreeMap<String, Vec<T>>) -> (Arc<IdList>, Vec<Vec<T>>) {
    let list = ids(&rows.keys().cloned().collect::<Vec<_>>());
    let by_position = (0..list.len())
        .map(|i| {
            let key = String::from_utf8(list.get(i).to_vec()).expect("utf-8");
            rows[&key].clone()
        })
        .collect();
    (list, by_position)
}

/// The plaintext answer, written from the semantics with none of the lane
/// code: per person and window, filter, cap, credit, weigh.
fn naive(plan: &Plan, d: &Data) -> (Totals, Elements) {
    let slots = plan.slots();
    let mut totals = Totals {
        milli_conversions: vec![0; slots],
        value: vec![0; slots],
    };
    let mut counts = Elements::default();
    // Credits x representative per mille of the clip, per slot.
    let mut weighted = vec![0i64; slots];
    for (person, rows) in &d.conversions {
        let mut per_window: BTreeMap<i64, u64> = BTreeMap::new();
        for c in rows {
            if c.ts >= plan.period.start && c.ts < plan.period.end {
                let w = (c.ts - plan.period.start) / DAY;
                let v = per_window.entry(w).or_default();
                *v = v.saturating_add(c.fen);
            }
        }
        for (k, (&w, &fen)) in per_window.iter().enumerate() {
            if k >= plan.period.max_conversions as usize {
                counts.capped += 1;
                continue;
            }
            counts.elements += 1;
            let start = plan.period.start + w * DAY;
            let touches: Vec<Touch> = d
                .exposures
                .get(person)
                .map(|t| {
                    t.iter()
                        .filter(|t| t.ts >= start - i64::from(plan.lookback_days) * DAY && t.ts < start)
                        .copied()
                        .collect()
                })
                .unwrap_or_default();
            let times: Vec<i64> = touches.iter().map(|t| t.ts).collect();
            let credit = credits(plan.model, start, &times).expect("ordered touches");
            // Bounds 0, 1%, 2%, 5%, 10%, 20%, 50% and 100% of the clip, in fen;
            // representatives the middles, and the clip above it.
            let bounds_fen = [0, 1, 2, 5, 10, 20, 50, 100].map(|pct: u64| pct * CLIP);
            let middles = [0, 5, 15, 35, 75, 150, 350, 750, 1000];
            let bucket = bounds_fen.iter().position(|&b| fen <= b).unwrap_or(8);
            let representative = middles[bucket];
            for (t, c) in touches.iter().zip(credit) {
                let slot = if plan.by_campaign {
                    t.channel as usize * plan.campaigns + t.campaign as usize
                } else {
                    t.channel as usize
                };
                totals.milli_conversions[slot] += i64::from(c);
                weighted[slot] += i64::from(c) * representative;
            }
        }
    }
    totals.value = weighted.iter().map(|w| w * CLIP as i64 / 1000).collect();
    (totals, counts)
}

fn limits() -> Limits {
    Limits {
        chunk_points: 23,
        ..Limits::default()
    }
}

/// Runs every window's lane between the bank (receiver) and the partner
/// (sender) in one session, opens the lanes and combines them.
fn run(plan: &Plan, d: &Data) -> (Totals, Elements) {
    let (r_ids, r_rows) = side(&d.conversions);
    let (s_ids, s_rows) = side(&d.exposures);
    let (r_lanes, counts) = receiver_lanes(plan, &r_ids, &r_rows).expect("bank lanes");
    let s_lanes = sender_lanes(plan, &s_ids, &s_rows).expect("partner lanes");
    let shape = plan.lane_shape();
    let noise = || vec![0; released_values(plan)];
    let buckets = shape.receiver_groups;
    let bank_setups = vec![Setup::exact(limits(), T, buckets, 0); plan.windows()];
    let partner_setups = vec![Setup::exact(limits(), T, 1, buckets); plan.windows()];
    let bank = bank_party(plan, r_lanes, noise(), bank_setups).expect("bank party");
    let partner = partner_party(plan, s_lanes, noise(), partner_setups).expect("partner party");
    let (Outcome::Breakdown(bank), Outcome::Breakdown(partner)) =
        run_pair(Box::new(bank), Box::new(partner)).expect("honest session")
    else {
        panic!("not breakdown outcomes")
    };
    let table = BsgsTable::build(12).expect("table");
    let ([partner], [bank]) = (&partner[..], &bank[..]) else {
        panic!("one pooled release on each side")
    };
    assert_eq!(partner.lane as usize, plan.windows(), "the session's lane");
    let opened = open_lane(partner, bank, &table, 1 << 40).expect("open");
    (combine(plan, &opened).expect("combine"), counts)
}

#[test]
fn every_model_equals_the_plaintext_answer() {
    let d = data(0..60, 25..90, 1);
    for model in MODELS {
        for by_campaign in [false, true] {
            let plan = plan(model, by_campaign);
            let (got, counts) = run(&plan, &d);
            let (want, want_counts) = naive(&plan, &d);
            assert_eq!(got, want, "{model} by campaign: {by_campaign}");
            assert_eq!(counts, want_counts);
            assert!(
                counts.capped > 0 && counts.elements > 0,
                "the data exercises the cap"
            );
            let attributed = got.attributed();
            assert!(
                attributed > 0 && (attributed as u64) < counts.elements,
                "some elements are unattributed"
            );
            assert_eq!(
                got.milli_conversions.iter().sum::<i64>(),
                1000 * attributed,
                "credits sum to 1000 per attributed element"
            );
        }
    }
}

#[test]
fn empty_and_one_person_sides() {
    let p = plan(Model::Linear, false);
    for (r, s) in [
        (0..0, 0..10),
        (0..10, 0..0),
        (0..0, 0..0),
        (3..4, 3..4),
        (3..4, 0..10),
    ] {
        let d = data(r.clone(), s.clone(), 7);
        let (got, counts) = run(&p, &d);
        assert_eq!((got, counts), naive(&p, &d), "{r:?} {s:?}");
    }
}

#[test]
fn exposures_at_or_after_the_window_start_never_count() {
    let p = plan(Model::LastTouch, false);
    let mut d = data(0..0, 0..0, 0);
    let (w, start) = (2, START + 2 * DAY);
    d.conversions.insert(
        name(1),
        vec![Conversion {
            ts: start + 10,
            fen: 0,
        }],
    );
    d.exposures.insert(
        name(1),
        vec![
            Touch {
                ts: start - 2 * DAY - 1,
                channel: 2,
                campaign: 0,
            }, // before the lookback
            Touch {
                ts: start - 2 * DAY,
                channel: 0,
                campaign: 0,
            }, // first second of it
            Touch {
                ts: start,
                channel: 1,
                campaign: 0,
            }, // the window itself
            Touch {
                ts: start + 5,
                channel: 2,
                campaign: 1,
            }, // before the conversion, same window
        ],
    );
    let (got, counts) = run(&p, &d);
    assert_eq!(counts.elements, 1);
    assert_eq!(
        got.milli_conversions,
        vec![1000, 0, 0],
        "window {w}: only the touch in the lookback"
    );
    assert_eq!(got.value, vec![0, 0, 0], "a zero value is in the zero bucket");
}

#[test]
fn a_tie_in_time_goes_by_channel_then_campaign() {
    let p = plan(Model::LastTouch, true);
    let mut d = data(0..0, 0..0, 0);
    let start = START + DAY;
    d.conversions.insert(
        name(1),
        vec![Conversion {
            ts: start,
            fen: 10_000,
        }],
    );
    d.exposures.insert(
        name(1),
        vec![
            Touch {
                ts: start - 100,
                channel: 0,
                campaign: 1,
            },
            Touch {
                ts: start - 100,
                channel: 2,
                campaign: 0,
            },
            Touch {
                ts: start - 100,
                channel: 2,
                campaign: 1,
            },
        ],
    );
    let (got, _) = run(&p, &d);
    let mut want = vec![0; 6];
    want[2 * 2 + 1] = 1000;
    assert_eq!(got.milli_conversions, want);
    assert_eq!(got.value[5], 1000 * 50, "100.00 CNY is in the (0, 100] bucket");
}

#[test]
fn lanes_refuse_bad_input_by_person_and_window_counts_are_checked() {
    let p = plan(Model::Linear, false);
    let list = ids(&[name(1)]);
    let unordered = vec![vec![
        Touch {
            ts: START,
            channel: 0,
            campaign: 0,
        },
        Touch {
            ts: START - 1,
            channel: 0,
            campaign: 0,
        },
    ]];
    assert!(matches!(
        sender_lanes(&p, &list, &unordered),
        Err(AttributionError::Credit { person: 0, .. })
    ));
    let unknown = vec![vec![Touch {
        ts: START,
        channel: 3,
        campaign: 0,
    }]];
    assert!(matches!(
        sender_lanes(&p, &list, &unknown),
        Err(AttributionError::UnknownLabel { person: 0, .. })
    ));
    assert!(sender_lanes(&p, &list, &[]).is_err());
    let mut bad = p.clone();
    bad.period.end = bad.period.start + 3;
    assert!(bad.check().is_err());
    let mut bad = p.clone();
    bad.buckets.clip = 0;
    assert!(bad.check().is_err());
    assert!(combine(&p, &[]).is_err());
    assert!(combine(&p, &vec![0; p.slots()]).is_err());
    assert!(combine(&p, &vec![0; 2 * p.slots()]).is_ok());
}

#[test]
fn buckets_follow_the_bounds_in_fen() {
    // A clip of 10,000 CNY: bounds 0, 100, 200, 500, 1,000, 2,000, 5,000
    // and 10,000 CNY.
    let b = ValueBuckets { clip: 10_000 };
    assert_eq!(b.bucket(0), 0);
    assert_eq!(b.bucket(1), 1);
    assert_eq!(b.bucket(10_000), 1);
    assert_eq!(b.bucket(10_001), 2);
    assert_eq!(b.bucket(50_000), 3);
    assert_eq!(b.bucket(1_000_000), 7);
    assert_eq!(b.bucket(1_000_001), 8);
    assert_eq!(b.bucket(u64::MAX), 8);
    // A clip that is not a multiple of 1,000: 1% of 150 CNY is 1.50 CNY.
    let odd = ValueBuckets { clip: 150 };
    assert_eq!((odd.bucket(150), odd.bucket(151)), (1, 2));
    assert_eq!(odd.milli_cny(1000 * 1000), Some(150_000));
    assert_eq!(odd.milli_cny(-7), Some(-2));
}

/// The pooled release's sensitivity: whatever a person's K elements are
/// (windows, buckets, channels, credit splits), they move the scaled
/// release by at most `sensitivity_sq` in squared L2 norm, and the worst
/// case (every element's credit on one slot, in the top bucket) reaches it.
#[test]
fn one_persons_elements_move_the_pooled_release_within_its_sensitivity() {
    use crate::queries::attribution_query::attribution_noise;
    let mut rng = StdRng::seed_from_u64(17);
    let weights = ValueBuckets { clip: CLIP }.weights();
    for k in 1..=4u32 {
        let mut p = plan(Model::Linear, true);
        p.period.max_conversions = k;
        let noise = attribution_noise(&p, false);
        let slots = p.slots();
        let norm = |elements: &[(usize, Vec<u32>)]| {
            let mut moved = vec![0f64; 2 * slots];
            for (bucket, credits) in elements {
                for (slot, &c) in credits.iter().enumerate() {
                    moved[slot] += f64::from(c);
                    moved[slots + slot] += f64::from(c) * weights[*bucket] as f64;
                }
            }
            moved
                .iter()
                .zip(&noise.scales)
                .map(|(m, &s)| (m / s as f64).powi(2))
                .sum::<f64>()
        };
        for _ in 0..200 {
            let elements: Vec<(usize, Vec<u32>)> = (0..rng.random_range(1..=k))
                .map(|_| {
                    // 1000 credits split at random over the slots.
                    let mut credits = vec![0u32; slots];
                    for _ in 0..1000 {
                        credits[rng.random_range(0..slots)] += 1;
                    }
                    (rng.random_range(0..weights.len()), credits)
                })
                .collect();
            assert!(norm(&elements) <= noise.sensitivity_sq + 1e-9, "K = {k}");
        }
        let mut one_slot = vec![0u32; slots];
        one_slot[0] = 1000;
        let worst: Vec<(usize, Vec<u32>)> = (0..k).map(|_| (weights.len() - 1, one_slot.clone())).collect();
        assert!((norm(&worst) - noise.sensitivity_sq).abs() < 1e-9, "K = {k}");
    }
}

#[test]
fn debug_output_shows_no_row_value() {
    let t = Touch {
        ts: START + 12_345,
        channel: 2,
        campaign: 1,
    };
    let c = Conversion {
        ts: START + 678,
        fen: 987_654,
    };
    let text = format!("{t:?} {c:?} {:?}", vec![t]);
    assert_eq!(text, "Touch(..) Conversion(..) [Touch(..)]");
}

#[test]
fn a_period_spanning_past_i64_is_refused_not_wrapped() {
    // From near i64::MIN to near i64::MAX: the span does not fit an i64, and
    // a wrapped subtraction would have made it a short, valid period.
    let period = Period {
        start: (i64::MIN / DAY) * DAY,
        end: (i64::MAX / DAY) * DAY,
        window: Window::Day,
        max_conversions: 1,
    };
    assert_eq!(
        period.check(),
        Err(AttributionError::Plan("the period is too long to represent"))
    );
    assert_eq!(period.windows(), usize::MAX);
}
