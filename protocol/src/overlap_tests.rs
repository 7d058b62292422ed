use std::sync::Arc;

use super::*;
use crate::{ids::IdKind, party::run_pair, wire::ProtocolMessage};

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

fn run(x: Arc<IdList>, y: Arc<IdList>, limits: Limits) -> OverlapOutcome {
    let (a, b) = run_pair(
        Box::new(OverlapReceiver::new(x, limits, T)),
        Box::new(OverlapSender::new(y, limits, T)),
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
            peer_set_size: 250
        }
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
    let mut r = OverlapReceiver::new(list(&["a@b.cn"]), Limits::default(), T);
    while r.poll().is_some() {}
    r.receive(OverlapMessage::Announce {
        set_size: peer,
        terms: T,
        key: None,
    })
    .expect("announce");
    r
}

#[test]
fn garbage_points_are_refused_by_step() {
    let mut r = receiver_expecting_w(2);
    let mut bad = [0xffu8; 32];
    bad[31] = 0x7f;
    let err = r
        .receive(OverlapMessage::Points {
            list: List::W,
            points: vec![bad],
        })
        .expect_err("garbage");
    assert!(matches!(err, ProtocolError::BadPoint { step, .. } if step == List::W.step()));
    assert!(err.to_string().contains("O.3"), "{err}");

    let mut r = receiver_expecting_w(2);
    let err = r
        .receive(OverlapMessage::Points {
            list: List::W,
            points: vec![[0u8; 32]],
        })
        .expect_err("identity");
    assert!(err.to_string().contains("identity"), "{err}");
}

#[test]
fn counts_and_sizes_are_enforced() {
    let mut r = receiver_expecting_w(1);
    let p = crate::hash::HashToGroup::new(b"t")
        .hash(&[b"x"])
        .compress()
        .to_bytes();
    let err = r
        .receive(OverlapMessage::Points {
            list: List::W,
            points: vec![p, p],
        })
        .expect_err("more than announced");
    assert!(matches!(err, ProtocolError::CountMismatch { .. }));

    let mut r = receiver_expecting_w(1);
    let err = r
        .receive(OverlapMessage::End {
            list: List::W,
            count: 0,
        })
        .expect_err("short list");
    assert!(matches!(err, ProtocolError::CountMismatch { .. }));

    let mut r = OverlapReceiver::new(list(&["a@b.cn"]), Limits::default(), T);
    let err = r
        .receive(OverlapMessage::Announce {
            set_size: u64::MAX,
            terms: T,
            key: None,
        })
        .expect_err("huge");
    assert!(matches!(err, ProtocolError::PeerSetTooLarge { .. }));

    let huge = ProtocolMessage::from(OverlapMessage::Points {
        list: List::W,
        points: vec![p; MAX_CHUNK_POINTS + 1],
    });
    assert!(matches!(
        OverlapMessage::try_from(huge),
        Err(ProtocolError::OversizedChunk { .. })
    ));
}

#[test]
fn out_of_order_messages_are_refused() {
    let mut r = OverlapReceiver::new(list(&["a@b.cn"]), Limits::default(), T);
    // W before the sender announced its size.
    let err = r
        .receive(OverlapMessage::End {
            list: List::W,
            count: 0,
        })
        .expect_err("no announce");
    assert!(matches!(err, ProtocolError::Unexpected { .. }));
    // V before U was sent in full.
    let mut r = receiver_expecting_w(0);
    let mut fresh = OverlapReceiver::new(list(&["a@b.cn"]), Limits::default(), T);
    fresh
        .receive(OverlapMessage::Announce {
            set_size: 0,
            terms: T,
            key: None,
        })
        .expect("announce");
    let err = fresh
        .receive(OverlapMessage::End {
            list: List::V,
            count: 1,
        })
        .expect_err("V before U");
    assert!(matches!(err, ProtocolError::Unexpected { .. }));
    // A sender never accepts W or V.
    let mut s = OverlapSender::new(list(&["a@b.cn"]), Limits::default(), T);
    assert!(
        s.receive(OverlapMessage::End {
            list: List::W,
            count: 0
        })
        .is_err()
    );
    r.receive(OverlapMessage::End {
        list: List::W,
        count: 0,
    })
    .expect("empty W");
}

#[test]
fn duplicate_points_in_v_are_refused() {
    // A sender that repeats a point of V would inflate the count.
    let x = list(&["a@b.cn", "c@d.cn"]);
    let mut r = OverlapReceiver::new(x, Limits::default(), T);
    let mut u = Vec::new();
    while let Some(m) = r.poll() {
        if let OverlapMessage::Points { points, .. } = m {
            u.extend(points);
        }
    }
    r.receive(OverlapMessage::Announce {
        set_size: 0,
        terms: T,
        key: None,
    })
    .expect("announce");
    r.receive(OverlapMessage::End {
        list: List::W,
        count: 0,
    })
    .expect("W");
    r.receive(OverlapMessage::Points {
        list: List::V,
        points: vec![u[0], u[0]],
    })
    .expect("valid points");
    r.receive(OverlapMessage::End {
        list: List::V,
        count: 2,
    })
    .expect("V");
    assert!(matches!(r.finish(), Err(ProtocolError::DuplicatePoints { .. })));
}

#[test]
fn progress_reaches_total() {
    let x = Arc::new(IdList::from_normalized(IdKind::Email, emails(0..50)));
    let mut r = OverlapReceiver::new(x.clone(), Limits::default(), T);
    let mut s = OverlapSender::new(x, Limits::default(), T);
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
    let mut r = OverlapReceiver::new(list(&["a@b.cn"]), Limits::default(), T);
    let mut s = OverlapSender::new(list(&["a@b.cn"]), Limits::default(), [8; 32]);
    let announce = r.poll().expect("announce");
    assert!(matches!(s.receive(announce), Err(ProtocolError::TermsMismatch)));
    let announce = s.poll().expect("announce");
    assert!(matches!(r.receive(announce), Err(ProtocolError::TermsMismatch)));
}
