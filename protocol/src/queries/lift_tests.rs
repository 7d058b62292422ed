use rand::{Rng, SeedableRng, rngs::StdRng};

use super::*;
use crate::{
    crypto::bsgs::BsgsTable,
    ids::normalize::IdKind,
    protocols::breakdown::{Breakdown, BreakdownReceiver, BreakdownSender, Lane, open_lane},
    queries::attribution_model::Window,
    session::outcome::Outcome,
    session::party::run_pair,
    session::stream::{Limits, Setup},
};

const DAY: i64 = 86_400;
const START: i64 = 20_000 * DAY;

fn plan(value_clip: u64) -> LiftPlan {
    LiftPlan {
        period: Period {
            start: START,
            end: START + 4 * DAY,
            window: Window::Day,
            max_conversions: 2,
        },
        value_clip,
    }
}

fn name(i: u32) -> String {
    format!("person{i:04}@example.com")
}

fn ids(range: impl Iterator<Item = u32>) -> Arc<IdList> {
    Arc::new(IdList::from_normalized(IdKind::Email, range.map(name).collect()))
}

fn position(list: &IdList, i: u32) -> Option<usize> {
    (0..list.len()).find(|&k| list.get(k) == name(i).as_bytes())
}

#[test]
fn bank_rows_cap_clip_round_and_ignore_non_customers() {
    let p = plan(100);
    let customers = ids([1, 2, 3, 5].into_iter());
    let converting = ids([2, 3, 4, 5].into_iter());
    let mut rows = vec![Vec::new(); converting.len()];
    let at = |i| position(&converting, i).expect("listed");
    // Person 2: three windows, the cap keeps two: 10.00 + 20.49 = 30.49 -> 30.
    rows[at(2)] = vec![
        Conversion {
            ts: START + 5,
            fen: 1_000,
        },
        Conversion {
            ts: START + DAY,
            fen: 2_049,
        },
        Conversion {
            ts: START + 2 * DAY,
            fen: 99_999,
        },
    ];
    // Person 3: clipped to 100 CNY.
    rows[at(3)] = vec![Conversion {
        ts: START + 3 * DAY,
        fen: 50_000,
    }];
    // Person 4 is not a customer; person 5 converted only outside the period.
    rows[at(4)] = vec![Conversion { ts: START, fen: 100 }];
    rows[at(5)] = vec![Conversion {
        ts: START - 1,
        fen: 100,
    }];
    let lane = bank_rows(&p, &customers, &converting, &rows).expect("rows");
    assert_eq!(lane.rows, vec![0, 1, 2, 3]);
    let by_customer = |i| {
        let c = position(&customers, i).expect("customer");
        (lane.measures[2 * c], lane.measures[2 * c + 1])
    };
    assert_eq!(by_customer(1), (0, 0));
    assert_eq!(by_customer(2), (1, 30));
    assert_eq!(by_customer(3), (1, 100));
    assert_eq!(by_customer(5), (0, 0));
    // Half a yuan rounds up.
    rows[at(2)] = vec![Conversion {
        ts: START,
        fen: 1_050,
    }];
    let lane = bank_rows(&p, &customers, &converting, &rows).expect("rows");
    assert_eq!(lane.measures[2 * position(&customers, 2).unwrap() + 1], 11);
    assert!(bank_rows(&p, &customers, &converting, &rows[..1]).is_err());
}

#[test]
fn the_lane_releases_what_the_plain_join_gives() {
    let mut rng = StdRng::seed_from_u64(4);
    let p = plan(500);
    let partner = ids(0..120);
    let group_of: Vec<Option<u32>> = (0..partner.len())
        .map(|_| match rng.random_range(0..5) {
            0 => None,
            1 | 2 => Some(TEST),
            _ => Some(CONTROL),
        })
        .collect();
    let customers = ids(60..200);
    let converting = ids((40..180).step_by(2));
    let rows: Vec<Vec<Conversion>> = (0..converting.len())
        .map(|_| {
            (0..rng.random_range(0..4))
                .map(|_| Conversion {
                    ts: START - DAY + rng.random_range(0..6 * DAY),
                    fen: rng.random_range(0..80_000),
                })
                .collect()
        })
        .collect();
    let shape = p.lane_shape();
    let bank = bank_rows(&p, &customers, &converting, &rows).expect("bank rows");
    let partner_lane = partner_rows(&partner, &group_of).expect("partner rows");
    // The plain answer, person by person.
    let mut want = [GroupCounts::default(); 2];
    for (k, group) in group_of.iter().enumerate() {
        let Some(g) = group else { continue };
        let Some(c) = (0..customers.len()).find(|&c| customers.get(c) == partner.get(k)) else {
            continue;
        };
        let w = &mut want[*g as usize];
        w.persons += 1;
        w.converters += bank.measures[2 * c];
        w.value += bank.measures[2 * c + 1];
    }
    assert!(want.iter().all(|g| g.persons > 0 && g.converters > 0));
    let zeros = vec![0; shape.released_values()];
    let limits = Limits {
        chunk_points: 16,
        ..Limits::default()
    };
    // Both sides covered: dummies and pads change none of the arms.
    let r_setup = Setup {
        cover: crate::privacy::cover::Cover {
            pads: vec![3, 6],
            pad_offset: 4,
            dummies: vec![],
            dummy_offset: 0,
        },
        ..Setup::exact(limits, [8; 32], 2, 0)
    };
    let s_setup = Setup {
        cover: crate::privacy::cover::Cover {
            pads: vec![5],
            pad_offset: 5,
            dummies: vec![2, 7],
            dummy_offset: 5,
        },
        ..Setup::exact(limits, [8; 32], 1, 2)
    };
    let r = BreakdownReceiver::new(0, shape, partner_lane, zeros.clone(), r_setup).expect("receiver");
    let s = BreakdownSender::new(0, shape, bank, zeros, s_setup).expect("sender");
    let (Outcome::Breakdown(r), Outcome::Breakdown(s)) = run_pair(
        Box::new(Breakdown::new(vec![Lane::Receiver(Box::new(r))])),
        Box::new(Breakdown::new(vec![Lane::Sender(Box::new(s))])),
    )
    .expect("honest session") else {
        panic!("not breakdown outcomes")
    };
    let cells = open_lane(&s[0], &r[0], &BsgsTable::build(12).expect("table"), 1 << 30).expect("open");
    assert_eq!(groups(&cells).expect("two groups"), want);
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn exact_intervals_are_the_wald_intervals_and_noise_widens_them() {
    let counts = [
        GroupCounts {
            persons: 1000,
            converters: 120,
            value: 60_000,
        },
        GroupCounts {
            persons: 1000,
            converters: 100,
            value: 40_000,
        },
    ];
    let exact = estimate(counts, Noise::default());
    let abs = exact.absolute.expect("both groups have persons");
    let sd = (0.12f64 * 0.88 / 1000.0 + 0.1 * 0.9 / 1000.0).sqrt();
    assert!(close(abs.estimate, 0.02));
    assert!(close(abs.high - abs.estimate, Z95 * sd));
    let rel = exact.relative.expect("control converts");
    assert!(close(rel.estimate, 0.2));
    assert!(rel.low < 0.2 && rel.high > 0.2 && rel.low > -1.0);
    let value = exact.test.value_per_person.expect("persons");
    assert!(
        close(value.estimate, 60.0) && close(value.low, 60.0),
        "no noise, no noise interval"
    );
    let noised = estimate(
        counts,
        Noise {
            count: 10.0,
            value: 5_000.0,
        },
    );
    let wide = noised.absolute.expect("both groups");
    assert!(wide.high - wide.low > abs.high - abs.low);
    assert!(noised.test.value_per_person.expect("persons").low < 60.0);
}

#[test]
fn empty_groups_and_a_zero_control_rate_give_no_lift() {
    let none = GroupCounts::default();
    let some = GroupCounts {
        persons: 10,
        converters: 2,
        value: 0,
    };
    let e = estimate([some, none], Noise::default());
    assert!(e.control.rate.is_none() && e.absolute.is_none() && e.relative.is_none());
    let zero = GroupCounts {
        converters: 0,
        ..some
    };
    let e = estimate([some, zero], Noise::default());
    assert!(e.absolute.is_some() && e.relative.is_none());
    let e = estimate([zero, some], Noise::default());
    let rel = e.relative.expect("control converts");
    assert!(close(rel.estimate, -1.0) && close(rel.low, -1.0));
    assert!(groups(&[1, 2]).is_err());
    assert!(partner_rows(&ids(0..2), &[Some(7), None]).is_err());
}
