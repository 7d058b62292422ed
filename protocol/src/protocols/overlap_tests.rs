use std::sync::Arc;

use super::*;
use crate::session::{outcome::*, stream::*};
use crate::{ids::normalize::IdKind, privacy::cover::Cover, session::party::run_pair, wire::ProtocolMessage};

/// The job terms both parties of an honest session share.
const T: Terms = [7; 32];

fn list(values: &[&str]) -> Arc<IdList> {
    Arc::new(IdList::from_normalized(
        IdKind::Email,
        values.iter().map(|s| s.to_string()).collect(),
    ))
}

fn emails(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("user{i}@example.com")).collect()
}

fn receiver(x: Arc<IdList>, limits: Limits) -> OverlapReceiver {
    OverlapReceiver::new(x, Setup::exact(limits, T, 1, 0)).expect("receiver")
}

fn sender(y: Arc<IdList>, limits: Limits) -> OverlapSender {
    OverlapSender::new(y, Setup::exact(limits, T, 1, 1)).expect("sender")
}

/// An announcement with no cover, as an exact peer makes it.
fn announce(set_size: u64) -> ListMessage {
    ListMessage::Announce(Announce {
        set_size,
        terms: T,
        key: None,
        pad_offset: 0,
        dummy_offset: 0,
        min_aggregation: 0,
    })
}

fn run(x: Arc<IdList>, y: Arc<IdList>, limits: Limits) -> OverlapOutcome {
    run_setups(x, y, Setup::exact(limits, T, 1, 0), Setup::exact(limits, T, 1, 1))
}

fn run_setups(x: Arc<IdList>, y: Arc<IdList>, r: Setup, s: Setup) -> OverlapOutcome {
    let (a, b) = run_pair(
        Box::new(OverlapReceiver::new(x, r).expect("receiver")),
        Box::new(OverlapSender::new(y, s).expect("sender")),
    )
    .expect("honest session succeeds");
    assert_eq!(b, Outcome::Completed);
    match a {
        Outcome::Overlap(o) => o,
        other => panic!("unexpected outcome {other:?}"),
    }
}

#[test]
fn counts_the_intersection() {
    let x = Arc::new(IdList::from_normalized(IdKind::Email, emails(0..300)));
    let y = Arc::new(IdList::from_normalized(IdKind::Email, emails(200..450)));
    let small = Limits {
        chunk_points: 7,
        ..Limits::default()
    };
    let out = run(x, y, small);
    assert_eq!(
        out,
        OverlapOutcome {
            intersection: 100,
            own_set_size: 300,
            peer_set_size: 250,
            peer_dummy_mean: 0,
            peer_min_aggregation: 0,
        }
    );
}

fn cover(pad: u64, pad_offset: u64, dummies: Option<(u64, u64)>) -> Cover {
    Cover {
        pads: vec![pad],
        pad_offset,
        dummies: dummies.map(|(c, _)| vec![c]).unwrap_or_default(),
        dummy_offset: dummies.map_or(0, |(_, o)| o),
    }
}

#[test]
fn covered_lists_hide_sizes_and_the_sender_adds_matches() {
    let x = Arc::new(IdList::from_normalized(IdKind::Email, emails(0..300)));
    let y = Arc::new(IdList::from_normalized(IdKind::Email, emails(200..450)));
    let limits = Limits {
        chunk_points: 64,
        ..Limits::default()
    };
    // R pads U with 37 points (offset 30); S adds 23 matching dummies of a
    // width of 2 * 20 and pads W with 11 points (offset 15).
    let r = Setup {
        cover: cover(37, 30, None),
        min_aggregation: 10,
        ..Setup::exact(limits, T, 1, 0)
    };
    let s = Setup {
        cover: cover(11, 15, Some((23, 20))),
        min_aggregation: 25,
        ..Setup::exact(limits, T, 1, 1)
    };
    let out = run_setups(x, y, r, s);
    assert_eq!(
        out,
        OverlapOutcome {
            intersection: 100 + 23,
            own_set_size: 300 + 37,
            peer_set_size: 250 + 23 + 11,
            peer_dummy_mean: 20,
            peer_min_aggregation: 25,
        }
    );
    assert_eq!(out.centred(), 103);
}

#[test]
fn noised_sizes_below_the_minimum_are_refused() {
    let limits = Limits {
        min_peer_set: 10,
        ..Limits::default()
    };
    // 12 points of which 5 are the pad's mean: about 7 rows.
    let mut r = receiver(list(&["a@b.cn"]), limits);
    let small = ListMessage::Announce(Announce {
        pad_offset: 5,
        ..match announce(12) {
            ListMessage::Announce(a) => a,
            _ => unreachable!(),
        }
    });
    let err = r.receive(small).expect_err("too small");
    assert_eq!(
        err,
        ProtocolError::PeerSetTooSmall {
            noised: 7,
            minimum: 10
        }
    );
    assert!(err.to_string().contains("policy.min_set_size"), "{err}");
    // A one-element peer set, exact: refused as well.
    let mut s = sender(list(&["a@b.cn"]), limits);
    assert!(matches!(
        s.receive(announce(1)),
        Err(ProtocolError::PeerSetTooSmall { noised: 1, .. })
    ));
    let mut r = receiver(list(&["a@b.cn"]), limits);
    assert!(r.receive(announce(10)).is_ok());
}

#[test]
fn v_must_carry_exactly_the_dummy_width() {
    // S announces an offset of 2: V must answer U with 4 more points.
    let mut r = receiver(list(&["a@b.cn"]), Limits::default());
    let mut u = Vec::new();
    while let Some(m) = r.poll() {
        if let ListMessage::Points { points, .. } = m {
            u.extend(points);
        }
    }
    let ListMessage::Announce(a) = announce(0) else {
        unreachable!()
    };
    r.receive(ListMessage::Announce(Announce { dummy_offset: 2, ..a }))
        .expect("announce");
    r.receive(ListMessage::End {
        list: List::W,
        count: 0,
    })
    .expect("W");
    let err = r
        .receive(ListMessage::End {
            list: List::V,
            count: 0,
        })
        .expect_err("V without the dummy width");
    assert!(
        matches!(err, ProtocolError::CountMismatch { announced: 5, .. }),
        "{err}"
    );
}

#[test]
fn empty_and_single_sets() {
    let limits = Limits::default();
    assert_eq!(run(list(&[]), list(&["a@b.cn"]), limits).intersection, 0);
    assert_eq!(run(list(&["a@b.cn"]), list(&[]), limits).intersection, 0);
    assert_eq!(run(list(&[]), list(&[]), limits).intersection, 0);
    assert_eq!(run(list(&["a@b.cn"]), list(&["a@b.cn"]), limits).intersection, 1);
}

#[test]
fn kinds_separate_domains() {
    // The same bytes under another kind must not match: the kind is hashed too.
    let x = Arc::new(IdList::from_normalized(IdKind::Custom, vec!["a@b.cn".into()]));
    assert_eq!(run(x, list(&["a@b.cn"]), Limits::default()).intersection, 0);
}

/// Drives a receiver through an announcement from the "sender" and returns it
/// ready to take list W.
fn receiver_expecting_w(peer: u64) -> OverlapReceiver {
    let mut r = receiver(list(&["a@b.cn"]), Limits::default());
    while r.poll().is_some() {}
    r.receive(announce(peer)).expect("announce");
    r
}

#[test]
fn garbage_points_are_refused_by_step() {
    let mut r = receiver_expecting_w(2);
    let mut bad = [0xffu8; 32];
    bad[31] = 0x7f;
    let err = r
        .receive(ListMessage::Points {
            list: List::W,
            points: vec![bad],
        })
        .expect_err("garbage");
    assert!(matches!(err, ProtocolError::BadPoint { step, .. } if step == List::W.step()));
    assert!(err.to_string().contains("O.3"), "{err}");

    let mut r = receiver_expecting_w(2);
    let err = r
        .receive(ListMessage::Points {
            list: List::W,
            points: vec![[0u8; 32]],
        })
        .expect_err("identity");
    assert!(err.to_string().contains("identity"), "{err}");
}

#[test]
fn counts_and_sizes_are_enforced() {
    let mut r = receiver_expecting_w(1);
    let p = crate::crypto::hash::HashToGroup::new(b"t")
        .hash(&[b"x"])
        .compress()
        .to_bytes();
    let err = r
        .receive(ListMessage::Points {
            list: List::W,
            points: vec![p, p],
        })
        .expect_err("more than announced");
    assert!(matches!(err, ProtocolError::CountMismatch { .. }));

    let mut r = receiver_expecting_w(1);
    let err = r
        .receive(ListMessage::End {
            list: List::W,
            count: 0,
        })
        .expect_err("short list");
    assert!(matches!(err, ProtocolError::CountMismatch { .. }));

    let mut r = receiver(list(&["a@b.cn"]), Limits::default());
    let err = r.receive(announce(u64::MAX)).expect_err("huge");
    assert!(matches!(err, ProtocolError::PeerSetTooLarge { .. }));

    let huge = ProtocolMessage::from(ListMessage::Points {
        list: List::W,
        points: vec![p; MAX_CHUNK_POINTS + 1],
    });
    assert!(matches!(
        ListMessage::try_from(huge),
        Err(ProtocolError::OversizedChunk { .. })
    ));
}

#[test]
fn out_of_order_messages_are_refused() {
    let mut r = receiver(list(&["a@b.cn"]), Limits::default());
    // W before the sender announced its size.
    let err = r
        .receive(ListMessage::End {
            list: List::W,
            count: 0,
        })
        .expect_err("no announce");
    assert!(matches!(err, ProtocolError::Unexpected { .. }));
    // V before U was sent in full.
    let mut r = receiver_expecting_w(0);
    let mut fresh = receiver(list(&["a@b.cn"]), Limits::default());
    fresh.receive(announce(0)).expect("announce");
    let err = fresh
        .receive(ListMessage::End {
            list: List::V,
            count: 1,
        })
        .expect_err("V before U");
    assert!(matches!(err, ProtocolError::Unexpected { .. }));
    // A sender never accepts W or V.
    let mut s = sender(list(&["a@b.cn"]), Limits::default());
    assert!(
        s.receive(ListMessage::End {
            list: List::W,
            count: 0
        })
        .is_err()
    );
    r.receive(ListMessage::End {
        list: List::W,
        count: 0,
    })
    .expect("empty W");
}

#[test]
fn duplicate_points_in_v_are_refused() {
    // A sender that repeats a point of V would inflate the count.
    let x = list(&["a@b.cn", "c@d.cn"]);
    let mut r = receiver(x, Limits::default());
    let mut u = Vec::new();
    while let Some(m) = r.poll() {
        if let ListMessage::Points { points, .. } = m {
            u.extend(points);
        }
    }
    r.receive(announce(0)).expect("announce");
    r.receive(ListMessage::End {
        list: List::W,
        count: 0,
    })
    .expect("W");
    r.receive(ListMessage::Points {
        list: List::V,
        points: vec![u[0], u[0]],
    })
    .expect("valid points");
    r.receive(ListMessage::End {
        list: List::V,
        count: 2,
    })
    .expect("V");
    assert!(matches!(r.finish(), Err(ProtocolError::DuplicatePoints { .. })));
}

#[test]
fn progress_reaches_total() {
    let x = Arc::new(IdList::from_normalized(IdKind::Email, emails(0..50)));
    let mut r = receiver(x.clone(), Limits::default());
    let mut s = sender(x, Limits::default());
    while !(r.is_done() && s.is_done()) {
        if let Some(m) = r.poll() {
            s.receive(m).expect("honest");
        }
        if let Some(m) = s.poll() {
            r.receive(m).expect("honest");
        }
    }
    let (pr, ps) = (r.progress(), s.progress());
    assert_eq!((pr.done, pr.total), (150, 150));
    assert_eq!((ps.done, ps.total), (150, 150));
    assert_eq!(r.finish().expect("done").intersection, 50);
}

#[test]
fn different_terms_are_refused_before_any_point() {
    // The coordinator offered the two parties different terms (say, exact to
    // one): the first announcement exposes it.
    let mut r = receiver(list(&["a@b.cn"]), Limits::default());
    let mut s = OverlapSender::new(list(&["a@b.cn"]), Setup::exact(Limits::default(), [8; 32], 1, 1))
        .expect("sender");
    let announce = r.poll().expect("announce");
    assert!(matches!(s.receive(announce), Err(ProtocolError::TermsMismatch)));
    let announce = s.poll().expect("announce");
    assert!(matches!(r.receive(announce), Err(ProtocolError::TermsMismatch)));
}
