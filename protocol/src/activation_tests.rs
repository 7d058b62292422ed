use std::sync::Arc;

use super::*;
use crate::{ids::IdKind, party::run_pair};

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

fn run(x: Arc<IdList>, y: Arc<IdList>, min: u64) -> Result<ActivationOutcome, ProtocolError> {
    match run_pair(
        Box::new(ActivationReceiver::new(x, small(), T)),
        Box::new(ActivationSender::new(y, small(), T, min)),
    ) {
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
    assert_eq!(e, ProtocolError::BelowMinActivation { min_activation: 31 });
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
    let mut sx = ActivationSender::new(ids(0..10), small(), T, 1);
    let mut rx = ActivationReceiver::new(ids(0..10), small(), T);
    // Feed S all of U but no Z: it must not send V.
    while let Some(m) = rx.poll() {
        sx.receive(m).unwrap();
    }
    while let Some(m) = sx.poll() {
        assert!(
            !matches!(m, OverlapMessage::Points { list: List::V, .. }),
            "V before the count"
        );
        if matches!(m, OverlapMessage::End { list: List::W, .. }) {
            break;
        }
        rx.receive(m).unwrap();
    }
}
