use std::sync::Arc;

use super::*;
use crate::session::{outcome::*, stream::*};
use crate::{
    ids::normalize::IdKind,
    privacy::cover::Cover,
    session::party::run_pair,
    session::stream::{Limits, Terms},
};

const T: Terms = [3; 32];

fn ids(range: std::ops::Range<u32>) -> Arc<IdList> {
    Arc::new(IdList::from_normalized(
        IdKind::Email,
        range.map(|i| format!("user{i:05}@example.com")).collect(),
    ))
}

fn small() -> Limits {
    Limits {
        chunk_points: 11,
        ..Limits::default()
    }
}

fn receiver(x: Arc<IdList>) -> ActivationReceiver {
    ActivationReceiver::new(x, Setup::exact(small(), T, 1, 1)).expect("receiver")
}

fn sender(y: Arc<IdList>, min: u64, noise: i64) -> ActivationSender {
    ActivationSender::new(y, Setup::exact(small(), T, 1, 0), min, noise).expect("sender")
}

fn run(x: Arc<IdList>, y: Arc<IdList>, min: u64) -> Result<ActivationOutcome, ProtocolError> {
    run_parties(receiver(x), sender(y, min, 0))
}

fn run_parties(r: ActivationReceiver, s: ActivationSender) -> Result<ActivationOutcome, ProtocolError> {
    match run_pair(Box::new(r), Box::new(s)) {
        Ok((Outcome::Activation(o), Outcome::Completed)) => Ok(o),
        Ok(other) => panic!("unexpected outcomes {other:?}"),
        Err((_, e)) => Err(e),
    }
}

#[test]
fn the_receiver_learns_exactly_its_members() {
    let x = ids(0..120);
    let y = ids(90..300);
    let out = run(Arc::clone(&x), y, 30).unwrap();
    let members: Vec<String> = out
        .members
        .iter()
        .map(|&p| String::from_utf8(x.get(p as usize).to_vec()).unwrap())
        .collect();
    let want: Vec<String> = (90..120).map(|i| format!("user{i:05}@example.com")).collect();
    assert_eq!(members, want);
    assert_eq!((out.own_set_size, out.peer_set_size), (120, 210));
}

#[test]
fn below_min_activation_nothing_is_delivered() {
    let e = run(ids(0..120), ids(90..300), 31).unwrap_err();
    assert_eq!(e, ProtocolError::BelowMinActivation);
}

#[test]
fn the_sender_decides_on_a_count_noised_by_both() {
    // 30 members. R adds 9 dummies around a mean of 5 (width 10) and pads U
    // with 4; S pads W with 3 and decides with its noise of -2: it sees
    // 30 + 9 - 5 - 2 = 32.
    let r_setup = Setup {
        cover: Cover {
            pads: vec![4],
            pad_offset: 2,
            dummies: vec![9],
            dummy_offset: 5,
        },
        ..Setup::exact(small(), T, 1, 1)
    };
    let s_setup = Setup {
        cover: Cover {
            pads: vec![3],
            pad_offset: 3,
            dummies: vec![],
            dummy_offset: 0,
        },
        ..Setup::exact(small(), T, 1, 0)
    };
    let x = ids(0..120);
    let y = ids(90..300);
    let r = || ActivationReceiver::new(Arc::clone(&x), r_setup.clone()).expect("receiver");
    let s = |min| ActivationSender::new(Arc::clone(&y), s_setup.clone(), min, -2).expect("sender");
    let out = run_parties(r(), s(32)).expect("32 reaches 32");
    // Dummies and pads are never members.
    assert_eq!(out.members, (90..120).collect::<Vec<u32>>());
    assert_eq!((out.own_set_size, out.peer_set_size), (120 + 9 + 4, 210 + 3));
    assert_eq!(
        run_parties(r(), s(33)).unwrap_err(),
        ProtocolError::BelowMinActivation
    );
}

#[test]
fn a_sender_with_dummies_is_refused() {
    // Dummies in W would come back as members of R's segment.
    let s_setup = Setup {
        cover: Cover {
            pads: vec![0],
            pad_offset: 0,
            dummies: vec![],
            dummy_offset: 3,
        },
        ..Setup::exact(small(), T, 1, 0)
    };
    let s = ActivationSender::new(ids(0..5), s_setup, 0, 0).expect("sender");
    let e = run_parties(receiver(ids(0..5)), s).unwrap_err();
    assert!(matches!(e, ProtocolError::Shape { .. }), "{e}");
}

#[test]
fn empty_and_one_member_segments() {
    assert!(run(ids(0..0), ids(0..5), 0).unwrap().members.is_empty());
    assert!(run(ids(0..5), ids(0..0), 0).unwrap().members.is_empty());
    assert_eq!(run(ids(4..5), ids(0..5), 1).unwrap().members, vec![0]);
    assert!(run(ids(0..5), ids(0..0), 1).is_err());
}

#[test]
fn the_sender_never_answers_in_order_before_counting() {
    let mut sx = sender(ids(0..10), 1, 0);
    let mut rx = receiver(ids(0..10));
    // Feed S all of U but no Z: it must not send V.
    while let Some(m) = rx.poll() {
        sx.receive(m).unwrap();
    }
    while let Some(m) = sx.poll() {
        assert!(
            !matches!(m, ListMessage::Points { list: List::V, .. }),
            "V before the count"
        );
        if matches!(m, ListMessage::End { list: List::W, .. }) {
            break;
        }
        rx.receive(m).unwrap();
    }
}
