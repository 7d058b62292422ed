use super::*;
use crate::crypto::group::{PointBytes, SessionKey};
use crate::privacy::cover::random_point;

const STEP: &str = "a test step";

fn points(n: usize) -> Vec<PointBytes> {
    (0..n).map(|_| random_point().compress().to_bytes()).collect()
}

fn limits(max_chunk_points: usize) -> Limits {
    Limits {
        max_chunk_points,
        ..Limits::default()
    }
}

#[test]
fn a_list_takes_chunks_up_to_its_announced_length_then_its_end() {
    let key = SessionKey::random();
    let mut list = InboundList::waiting(STEP, Treat::MaskKeepingOriginals);
    assert_eq!(list.chunk(points(1), &key, &limits(8)), Err(NOT_OPEN));
    list.open(5);
    let sent = points(5);
    list.chunk(sent[..3].to_vec(), &key, &limits(8))
        .expect("first chunk");
    list.chunk(sent[3..].to_vec(), &key, &limits(8))
        .expect("second chunk");
    assert_eq!(list.received(), 5);
    list.end(5).expect("end");
    assert!(list.is_closed() && !list.is_open());
    assert_eq!(list.received(), 5);
    assert_eq!(list.points().len(), 5);
    assert_eq!(list.take_originals(), sent);
    // Closed means closed: neither more points nor a second end.
    assert_eq!(list.chunk(points(1), &key, &limits(8)), Err(NOT_OPEN));
    assert_eq!(list.end(5), Err(NOT_OPEN));
}

#[test]
fn chunks_beyond_the_bounds_are_refused_by_step() {
    let key = SessionKey::random();
    let mut list = InboundList::opened(STEP, Treat::Check, 4);
    assert_eq!(
        list.chunk(points(3), &key, &limits(2)),
        Err(ProtocolError::OversizedChunk {
            step: STEP,
            points: 3,
            max: 2,
        })
    );
    list.chunk(points(2), &key, &limits(2)).expect("within bounds");
    list.chunk(points(2), &key, &limits(2))
        .expect("up to the announced length");
    assert_eq!(
        list.chunk(points(1), &key, &limits(2)),
        Err(ProtocolError::CountMismatch {
            step: STEP,
            announced: 4,
            received: 5,
        })
    );
}

#[test]
fn an_end_before_the_announced_length_or_with_another_count_is_refused() {
    let key = SessionKey::random();
    let mut list = InboundList::opened(STEP, Treat::Mask, 3);
    let passed = list.pass(&points(2), &key, &limits(8)).expect("passed on");
    assert_eq!(passed.len(), 2);
    assert!(list.points().is_empty(), "a passed list keeps nothing");
    let early = ProtocolError::CountMismatch {
        step: STEP,
        announced: 3,
        received: 2,
    };
    assert_eq!(list.end(3), Err(early.clone()));
    assert_eq!(list.end(2), Err(early));
    list.pass(&points(1), &key, &limits(8)).expect("the last point");
    assert_eq!(
        list.end(4),
        Err(ProtocolError::CountMismatch {
            step: STEP,
            announced: 3,
            received: 3,
        })
    );
    list.end(3).expect("end");
}

#[test]
fn invalid_points_are_refused_by_step() {
    let key = SessionKey::random();
    let mut bad = points(2);
    bad[1] = [0xff; 32];
    for treat in [Treat::Check, Treat::Mask, Treat::MaskKeepingOriginals] {
        let mut list = InboundList::opened(STEP, treat, 2);
        let e = list
            .chunk(bad.clone(), &key, &limits(8))
            .expect_err("invalid point");
        assert!(matches!(e, ProtocolError::BadPoint { step: STEP, .. }), "{e}");
        assert_eq!(list.received(), 0, "nothing of a refused chunk counts");
    }
}

#[test]
fn a_ready_list_waits_then_leaves_in_chunks_and_ends_once() {
    let mut list = ReadyList::new(List::V);
    assert_eq!(list.poll(2), None);
    let all = points(3);
    list.ready(all.clone());
    assert_eq!(
        list.poll(2),
        Some(ListMessage::Points {
            list: List::V,
            points: all[..2].to_vec(),
        })
    );
    assert_eq!(
        list.poll(2),
        Some(ListMessage::Points {
            list: List::V,
            points: all[2..].to_vec(),
        })
    );
    assert_eq!(
        list.poll(2),
        Some(ListMessage::End {
            list: List::V,
            count: 3
        })
    );
    assert!(list.is_ended());
    assert_eq!(list.poll(2), None);
    assert_eq!(list.sent(), 3);
    assert!(list.points().is_empty(), "freed once sent");
    let mut kept = ReadyList::kept(List::V);
    kept.ready(all.clone());
    while kept.poll(8).is_some() {}
    assert_eq!(kept.points(), &all[..]);
}
