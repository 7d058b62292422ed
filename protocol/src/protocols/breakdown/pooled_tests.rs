use std::sync::Arc;

use super::*;
use crate::{
    crypto::{bsgs::BsgsTable, elgamal::OneHot},
    ids::{idlist::IdList, normalize::IdKind},
    protocols::breakdown::open_lane,
    session::{
        party::run_pair,
        stream::{Limits, Terms},
    },
};

const T: Terms = [3; 32];
const GROUPS: usize = 3;
const WEIGHTS: [u64; GROUPS] = [0, 10, 1000];

fn ids(range: std::ops::Range<u32>) -> Arc<IdList> {
    Arc::new(IdList::from_normalized(
        IdKind::Email,
        range.map(|i| format!("p{i:04}@example.com")).collect(),
    ))
}

fn shape() -> LaneShape {
    LaneShape {
        receiver_groups: GROUPS,
        payload: OneHot {
            groups: 1,
            count: false,
            measures: 2,
            small_measures: true,
        },
    }
}

fn limits() -> Limits {
    Limits {
        chunk_points: 29,
        ..Limits::default()
    }
}

/// Lane `w`: R holds persons `10w..10w+40`, person `p` in group `p % 3`;
/// S holds persons `10w+20..10w+70` with measures `(p % 7, 1)`.
/// Each side's lanes, and the pooled release they should open to.
type Lanes = (Vec<(LaneRows, Setup)>, Vec<(LaneRows, Setup)>, Vec<i64>);

fn lanes(windows: u32) -> Lanes {
    let all = ids(0..200);
    let position = |p: u32| {
        let text = format!("p{p:04}@example.com");
        (0..all.len())
            .find(|&i| all.get(i) == text.as_bytes())
            .expect("listed") as u32
    };
    let mut expected = vec![0i64; POOLED_CELLS * 2];
    let (mut r, mut s) = (Vec::new(), Vec::new());
    for w in 0..windows {
        let mine: Vec<u32> = (10 * w..10 * w + 40).collect();
        let theirs: Vec<u32> = (10 * w + 20..10 * w + 70).collect();
        let receiver = LaneRows {
            ids: Arc::clone(&all),
            rows: mine.iter().map(|&p| position(p)).collect(),
            groups: mine.iter().map(|p| p % 3).collect(),
            measures: Vec::new(),
        };
        let sender = LaneRows {
            ids: Arc::clone(&all),
            rows: theirs.iter().map(|&p| position(p)).collect(),
            groups: vec![0; theirs.len()],
            measures: theirs.iter().flat_map(|&p| [i64::from(p % 7), 1]).collect(),
        };
        for p in mine.iter().filter(|p| theirs.contains(p)) {
            let w = WEIGHTS[(p % 3) as usize] as i64;
            let m = [i64::from(p % 7), 1];
            for (slot, v) in m.iter().enumerate() {
                expected[slot] += v;
                expected[2 + slot] += v * w;
            }
        }
        r.push((receiver, Setup::exact(limits(), T, GROUPS, 0)));
        s.push((sender, Setup::exact(limits(), T, 1, GROUPS)));
    }
    (r, s, expected)
}

fn parties(windows: u32, noise: (Vec<i64>, Vec<i64>)) -> (Pooled, Pooled, Vec<i64>) {
    let (r, s, expected) = lanes(windows);
    let rx = Pooled::receiver(shape(), r, WEIGHTS.to_vec(), noise.0).expect("receiver");
    let sx = Pooled::sender(shape(), s, noise.1).expect("sender");
    (rx, sx, expected)
}

#[test]
fn pooled_lanes_release_the_totals_and_the_weighted_totals_once() {
    let zeros = || vec![0; POOLED_CELLS * 2];
    for windows in [1, 4] {
        let (rx, sx, expected) = parties(windows, (zeros(), zeros()));
        let (Outcome::Breakdown(r), Outcome::Breakdown(s)) =
            run_pair(Box::new(rx), Box::new(sx)).expect("honest session")
        else {
            panic!("not breakdown outcomes")
        };
        assert_eq!((r.len(), s.len()), (1, 1), "one release for the session");
        assert_eq!(s[0].lane, windows, "numbered after the windows");
        let table = BsgsTable::build(12).expect("table");
        assert_eq!(open_lane(&s[0], &r[0], &table, 1 << 30).expect("open"), expected);
    }
    // Both nodes' noise lands in every value, once.
    let (rx, sx, expected) = parties(3, (vec![1, 2, 3, 4], vec![10, 20, 30, 40]));
    let (Outcome::Breakdown(r), Outcome::Breakdown(s)) =
        run_pair(Box::new(rx), Box::new(sx)).expect("session")
    else {
        panic!("not breakdown outcomes")
    };
    let got = open_lane(&s[0], &r[0], &BsgsTable::build(12).expect("table"), 1 << 30).expect("open");
    let want: Vec<i64> = expected
        .iter()
        .zip([11, 22, 33, 44])
        .map(|(e, n)| e + n)
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_pooled_session_takes_one_key_offer_and_no_early_release() {
    let zeros = || vec![0; POOLED_CELLS * 2];
    let (mut rx, mut sx, _) = parties(2, (zeros(), zeros()));
    let offer = rx.poll().expect("the receiver's key offer");
    assert_eq!(offer.lane, 2, "on the session lane");
    sx.receive(offer.clone()).expect("first offer");
    let e = sx.receive(offer).expect_err("a second offer");
    assert!(matches!(e, ProtocolError::Unexpected { .. }), "{e}");
    // A release before any lane is done, and a release sent to the receiver.
    let release = LaneMessage {
        lane: 2,
        msg: BreakdownMessage::Release {
            slots: 2,
            ciphertexts: vec![0; 2 * 32 * 3],
        },
    };
    let e = sx.receive(release.clone()).expect_err("early release");
    assert!(matches!(e, ProtocolError::Unexpected { .. }), "{e}");
    let e = rx.receive(release).expect_err("the receiver takes no release");
    assert!(matches!(e, ProtocolError::Unexpected { .. }), "{e}");
    // A lane of a pooled session takes no key offer of its own.
    let own = LaneMessage {
        lane: 0,
        msg: BreakdownMessage::KeyOffer {
            slots: 2,
            offer: vec![0; 2 * 96],
        },
    };
    assert!(sx.receive(own).is_err());
}

#[test]
fn shapes_that_do_not_fit_are_refused() {
    let (r, s, _) = lanes(1);
    assert!(Pooled::receiver(shape(), r.clone(), vec![1, 2], vec![0; 4]).is_err());
    assert!(Pooled::receiver(shape(), r, WEIGHTS.to_vec(), vec![0; 3]).is_err());
    assert!(Pooled::sender(shape(), Vec::new(), vec![0; 4]).is_err());
    assert!(Pooled::sender(shape(), s, vec![0; 2]).is_err());
}
