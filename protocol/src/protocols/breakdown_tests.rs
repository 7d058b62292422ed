use std::{collections::BTreeMap, sync::Arc};

use rand::{Rng, SeedableRng, rngs::StdRng};

use super::*;
use crate::session::{outcome::*, stream::*};
use crate::{
    ids::normalize::IdKind,
    privacy::cover::Cover,
    session::party::{Party, run_pair},
    wire::ProtocolMessage,
};

const T: Terms = [9; 32];

fn emails(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("user{i:05}@example.com")).collect()
}

fn ids(range: std::ops::Range<u32>) -> Arc<IdList> {
    Arc::new(IdList::from_normalized(IdKind::Email, emails(range)))
}

fn small() -> Limits {
    Limits {
        chunk_points: 37,
        ..Limits::default()
    }
}

/// One side's rows: every identifier of `range`, a group and measures each
/// drawn from `seed`.
struct Side {
    ids: Arc<IdList>,
    groups: usize,
    measures: usize,
    /// Per identifier (by its text): group and measures.
    attrs: BTreeMap<String, (u32, Vec<i64>)>,
}

fn side(range: std::ops::Range<u32>, groups: usize, measures: usize, seed: u64) -> Side {
    let mut rng = StdRng::seed_from_u64(seed);
    let ids = ids(range);
    let attrs = (0..ids.len())
        .map(|i| {
            let key = String::from_utf8(ids.get(i).to_vec()).unwrap();
            let g = rng.random_range(0..groups as u32);
            let m = (0..measures).map(|_| rng.random_range(-50..1000)).collect();
            (key, (g, m))
        })
        .collect();
    Side {
        ids,
        groups,
        measures,
        attrs,
    }
}

impl Side {
    fn rows(&self) -> LaneRows {
        let n = self.ids.len();
        let mut groups = Vec::new();
        let mut measures = Vec::new();
        for i in 0..n {
            let (g, m) = &self.attrs[std::str::from_utf8(self.ids.get(i)).unwrap()];
            groups.push(*g);
            measures.extend(m);
        }
        LaneRows {
            ids: Arc::clone(&self.ids),
            rows: (0..n as u32).collect(),
            groups,
            measures,
        }
    }

    fn receiver_rows(&self) -> LaneRows {
        LaneRows {
            measures: Vec::new(),
            ..self.rows()
        }
    }
}

fn shape(r: &Side, s: &Side, count: bool) -> LaneShape {
    LaneShape {
        receiver_groups: r.groups,
        payload: OneHot {
            groups: s.groups,
            count,
            measures: s.measures,
            small_measures: false,
        },
    }
}

/// The plaintext answer, cell-major like `open_lane`.
fn expected(r: &Side, s: &Side, shape: &LaneShape) -> Vec<i64> {
    let mut out = vec![0i64; shape.released_values()];
    for (id, (gr, _)) in &r.attrs {
        if let Some((gs, m)) = s.attrs.get(id) {
            let base = *gr as usize * shape.slots();
            let mut stat = 0;
            if shape.payload.count {
                out[base + shape.payload.slot(0, *gs as usize)] += 1;
                stat = 1;
            }
            for (k, v) in m.iter().enumerate() {
                out[base + shape.payload.slot(stat + k, *gs as usize)] += v;
            }
        }
    }
    out
}

/// A receiver's exact setup: a pad per batch, all zero.
fn rset(shape: &LaneShape) -> Setup {
    Setup::exact(small(), T, shape.receiver_groups, 0)
}

/// A sender's exact setup: one pad, no dummy in any receiver batch.
fn sset(shape: &LaneShape) -> Setup {
    Setup::exact(small(), T, 1, shape.receiver_groups)
}

fn table() -> BsgsTable {
    BsgsTable::build(12).unwrap()
}

fn run_lane(r: &Side, s: &Side, count: bool, noise: (Vec<i64>, Vec<i64>)) -> Vec<i64> {
    let shape = shape(r, s, count);
    run_covered(r, s, shape, noise, (rset(&shape), sset(&shape)))
}

fn run_covered(
    r: &Side,
    s: &Side,
    shape: LaneShape,
    noise: (Vec<i64>, Vec<i64>),
    setups: (Setup, Setup),
) -> Vec<i64> {
    let rx = BreakdownReceiver::new(0, shape, r.receiver_rows(), noise.0, setups.0).unwrap();
    let sx = BreakdownSender::new(0, shape, s.rows(), noise.1, setups.1).unwrap();
    let (a, b) = run_pair(
        Box::new(Breakdown::new(vec![Lane::Receiver(Box::new(rx))])),
        Box::new(Breakdown::new(vec![Lane::Sender(Box::new(sx))])),
    )
    .expect("honest session");
    let (Outcome::Breakdown(a), Outcome::Breakdown(b)) = (a, b) else {
        panic!("not breakdown outcomes")
    };
    assert!(
        a[0].ciphertexts.is_empty(),
        "the receiver hands over no ciphertexts"
    );
    open_lane(&b[0], &a[0], &table(), 1 << 30).unwrap()
}

#[test]
fn cover_points_change_no_cell() {
    // R pads each of its 3 batches; S pads W and puts dummies in each batch
    // (one batch has none, one the full width): every cell still equals the
    // plaintext join, because dummies and pads carry zeros.
    let r = side(0..300, 3, 0, 31);
    let s = side(180..420, 4, 2, 32);
    let shape = shape(&r, &s, true);
    let zeros = vec![0; shape.released_values()];
    let r_setup = Setup {
        cover: Cover {
            pads: vec![7, 0, 25],
            pad_offset: 12,
            dummies: vec![],
            dummy_offset: 0,
        },
        ..rset(&shape)
    };
    let s_setup = Setup {
        cover: Cover {
            pads: vec![9],
            pad_offset: 9,
            dummies: vec![0, 6, 12],
            dummy_offset: 6,
        },
        ..sset(&shape)
    };
    let got = run_covered(&r, &s, shape, (zeros.clone(), zeros), (r_setup, s_setup));
    assert_eq!(got, expected(&r, &s, &shape));
}

#[test]
fn the_receiver_matches_its_real_rows_plus_the_dummies() {
    // Drive the lane by hand to see what R matched per batch.
    let r = side(0..50, 2, 0, 33);
    let s = side(25..90, 1, 0, 34);
    let shape = shape(&r, &s, true);
    let zeros = vec![0; shape.released_values()];
    let s_setup = Setup {
        cover: Cover {
            pads: vec![5],
            pad_offset: 4,
            dummies: vec![3, 8],
            dummy_offset: 4,
        },
        ..sset(&shape)
    };
    let mut rx = BreakdownReceiver::new(0, shape, r.receiver_rows(), zeros.clone(), rset(&shape)).unwrap();
    let mut sx = BreakdownSender::new(0, shape, s.rows(), zeros, s_setup).unwrap();
    while rx.matched().is_none() {
        let mut moved = false;
        if let Some(m) = rx.poll() {
            sx.receive(m).unwrap();
            moved = true;
        }
        if let Some(m) = sx.poll() {
            rx.receive(m).unwrap();
            moved = true;
        }
        assert!(moved, "stalled before matching");
    }
    let mut per_batch = [0u64; 2];
    for &b in rx.matched().unwrap_or(&[]) {
        if b != u32::MAX {
            per_batch[b as usize] += 1;
        }
    }
    let real = |g: u32| {
        r.attrs
            .iter()
            .filter(|(id, (grp, _))| *grp == g && s.attrs.contains_key(*id))
            .count() as u64
    };
    assert_eq!(per_batch, [real(0) + 3, real(1) + 8]);
}

#[test]
fn cells_equal_the_plaintext_join() {
    let r = side(0..300, 3, 0, 1);
    let s = side(180..420, 4, 2, 2);
    let shape = shape(&r, &s, true);
    let zeros = vec![0; shape.released_values()];
    let got = run_lane(&r, &s, true, (zeros.clone(), zeros));
    let want = expected(&r, &s, &shape);
    assert_eq!(got, want);
    let total: i64 = (0..3)
        .map(|g| (0..4).map(|h| got[g * shape.slots() + h]).sum::<i64>())
        .sum();
    assert_eq!(total, 120, "counts add up to the overlap");
}

#[test]
fn both_noise_shares_land_in_every_value() {
    let r = side(0..100, 2, 0, 3);
    let s = side(50..160, 2, 1, 4);
    let shape = shape(&r, &s, true);
    let n = shape.released_values();
    let nr: Vec<i64> = (0..n as i64).map(|i| i * 3 - 7).collect();
    let ns: Vec<i64> = (0..n as i64).map(|i| 100 - i * i).collect();
    let got = run_lane(&r, &s, true, (nr.clone(), ns.clone()));
    let want = expected(&r, &s, &shape);
    for i in 0..n {
        assert_eq!(got[i], want[i] + nr[i] + ns[i], "value {i}");
    }
}

#[test]
fn empty_one_row_and_single_group_sides() {
    for (r, s) in [
        (side(0..0, 2, 0, 5), side(0..10, 2, 1, 6)),
        (side(0..10, 2, 0, 7), side(0..0, 3, 1, 8)),
        (side(5..6, 1, 0, 9), side(5..6, 1, 1, 10)),
        (side(5..6, 1, 0, 11), side(7..8, 1, 0, 12)),
    ] {
        let shape = shape(&r, &s, true);
        let zeros = vec![0; shape.released_values()];
        assert_eq!(
            run_lane(&r, &s, true, (zeros.clone(), zeros)),
            expected(&r, &s, &shape)
        );
    }
}

#[test]
fn two_lanes_run_in_one_session() {
    // Lane 0: left receives, right sends counts and its measure; lane 1: the
    // roles swapped, left sends its measures only.
    let left = side(0..200, 2, 2, 13);
    let right = side(120..260, 3, 1, 14);
    let s0 = shape(&left, &right, true);
    let s1 = shape(&right, &left, false);
    let z = |s: &LaneShape| vec![0; s.released_values()];
    let left_party = Breakdown::new(vec![
        Lane::Receiver(Box::new(
            BreakdownReceiver::new(0, s0, left.receiver_rows(), z(&s0), rset(&s0)).unwrap(),
        )),
        Lane::Sender(Box::new(
            BreakdownSender::new(1, s1, left.rows(), z(&s1), sset(&s1)).unwrap(),
        )),
    ]);
    let right_party = Breakdown::new(vec![
        Lane::Sender(Box::new(
            BreakdownSender::new(0, s0, right.rows(), z(&s0), sset(&s0)).unwrap(),
        )),
        Lane::Receiver(Box::new(
            BreakdownReceiver::new(1, s1, right.receiver_rows(), z(&s1), rset(&s1)).unwrap(),
        )),
    ]);
    let (Outcome::Breakdown(a), Outcome::Breakdown(b)) =
        run_pair(Box::new(left_party), Box::new(right_party)).expect("honest session")
    else {
        panic!("not breakdown outcomes")
    };
    let t = table();
    assert_eq!(
        open_lane(&b[0], &a[0], &t, 1 << 30).unwrap(),
        expected(&left, &right, &s0)
    );
    assert_eq!(
        open_lane(&a[1], &b[1], &t, 1 << 30).unwrap(),
        expected(&right, &left, &s1)
    );
    // The receiver's shares do not open the other lane.
    assert!(open_lane(&b[0], &b[1], &t, 1 << 30).is_err());
}

/// Drives a sender through an honest session with a receiver, up to the
/// point where the receiver's release is about to be delivered, and returns
/// the sender and the release message.
fn sender_at_release(count_cells: usize) -> (BreakdownSender, BreakdownMessage, LaneShape) {
    let r = side(0..60, count_cells, 0, 15);
    let s = side(30..90, 2, 1, 16);
    let shape = shape(&r, &s, true);
    let zeros = vec![0; shape.released_values()];
    let mut rx = BreakdownReceiver::new(0, shape, r.receiver_rows(), zeros.clone(), rset(&shape)).unwrap();
    let mut sx = BreakdownSender::new(0, shape, s.rows(), zeros, sset(&shape)).unwrap();
    loop {
        let mut moved = false;
        if let Some(m) = rx.poll() {
            if matches!(m, BreakdownMessage::Release { .. }) {
                return (sx, m, shape);
            }
            sx.receive(m).unwrap();
            moved = true;
        }
        if let Some(m) = sx.poll() {
            rx.receive(m).unwrap();
            moved = true;
        }
        assert!(moved, "stalled before the release");
    }
}

#[test]
fn the_sender_decrypts_only_the_one_release_of_its_session() {
    let (mut sx, release, shape) = sender_at_release(3);
    let BreakdownMessage::Release { slots, ciphertexts } = release.clone() else {
        unreachable!()
    };
    // One ciphertext too many, or too few: refused, no shares computed.
    let one = 32 * (slots + 1);
    let mut more = ciphertexts.clone();
    more.extend_from_slice(&ciphertexts[..one]);
    for bad in [more, ciphertexts[one..].to_vec()] {
        let e = sx
            .receive(BreakdownMessage::Release {
                slots,
                ciphertexts: bad,
            })
            .unwrap_err();
        assert!(matches!(e, ProtocolError::CountMismatch { .. }), "{e}");
        assert!(!sx.is_done());
    }
    sx.receive(release.clone()).unwrap();
    let outcome_cells = shape.cells();
    // A second release, even the same one, is refused: the shares were given.
    let e = sx.receive(release).unwrap_err();
    assert!(matches!(e, ProtocolError::Unexpected { .. }), "{e}");
    let out = sx.finish().unwrap();
    assert_eq!(out.decryption_shares.len(), outcome_cells * slots * 32);
}

#[test]
fn a_release_before_the_payloads_is_refused() {
    let r = side(0..40, 2, 0, 17);
    let s = side(20..60, 2, 1, 18);
    let shape = shape(&r, &s, true);
    let zeros = vec![0; shape.released_values()];
    let mut sx = BreakdownSender::new(0, shape, s.rows(), zeros.clone(), sset(&shape)).unwrap();
    // A well-formed release of S's own first payload, offered at the start:
    // decrypting it would reveal that row's group and measure.
    let (_, _, keys) = crate::crypto::elgamal::two_party_keys(shape.slots(), b"t", &mut rand::rng()).unwrap();
    let ct = keys
        .encrypt_one_hot(shape.payload, &[0, 1], &[5, 6], &mut rand::rng())
        .unwrap();
    for msg in [
        BreakdownMessage::Release {
            slots: shape.slots(),
            ciphertexts: ct.clone(),
        },
        BreakdownMessage::Announce(Announce {
            set_size: 32,
            terms: T,
            key: None,
            pad_offset: 0,
            dummy_offset: 0,
            min_aggregation: 0,
        }),
    ] {
        let _ = sx.receive(msg);
    }
    let e = sx
        .receive(BreakdownMessage::Release {
            slots: shape.slots(),
            ciphertexts: ct,
        })
        .unwrap_err();
    assert!(matches!(e, ProtocolError::Unexpected { .. }), "{e}");
    // The receiver never takes a release at all.
    let mut rx = BreakdownReceiver::new(0, shape, r.receiver_rows(), zeros, rset(&shape)).unwrap();
    let e = rx
        .receive(BreakdownMessage::Release {
            slots: shape.slots(),
            ciphertexts: vec![],
        })
        .unwrap_err();
    assert!(matches!(e, ProtocolError::Unexpected { .. }), "{e}");
}

#[test]
fn the_sender_checks_batches_keys_and_terms() {
    let r = side(0..40, 2, 0, 19);
    let s = side(20..60, 2, 1, 20);
    let shape = shape(&r, &s, true);
    let zeros = vec![0; shape.released_values()];
    let fresh = || BreakdownSender::new(0, shape, s.rows(), zeros.clone(), sset(&shape)).unwrap();
    let mut rx = BreakdownReceiver::new(0, shape, r.receiver_rows(), zeros.clone(), rset(&shape)).unwrap();
    let announce = rx.poll().unwrap();
    let offer = rx.poll().unwrap();

    let BreakdownMessage::Announce(honest) = announce.clone() else {
        unreachable!()
    };
    let mut sx = fresh();
    let e = sx
        .receive(BreakdownMessage::Announce(Announce {
            terms: [1; 32],
            ..honest
        }))
        .unwrap_err();
    assert_eq!(e, ProtocolError::TermsMismatch);

    // A key offer made for another lane does not verify here.
    let mut other = BreakdownReceiver::new(1, shape, r.receiver_rows(), zeros.clone(), rset(&shape)).unwrap();
    other.poll();
    let foreign = other.poll().unwrap();
    let mut sx = fresh();
    sx.receive(announce.clone()).unwrap();
    let e = sx.receive(foreign).unwrap_err();
    assert!(matches!(e, ProtocolError::Crypto { .. }), "{e}");

    let set_size = honest.set_size;
    for sizes in [vec![set_size], vec![set_size - 16, 15], vec![set_size, 1]] {
        let mut sx = fresh();
        sx.receive(announce.clone()).unwrap();
        sx.receive(offer.clone()).unwrap();
        let e = sx.receive(BreakdownMessage::Batches { sizes }).unwrap_err();
        assert!(matches!(e, ProtocolError::Shape { .. }), "{e}");
    }
}

#[test]
fn lane_messages_survive_the_wire_and_bad_lanes_are_refused() {
    let msg = BreakdownMessage::Batches { sizes: vec![16, 34] };
    let wire = super::lane_message(1, msg.clone());
    let bytes = prost::Message::encode_to_vec(&wire);
    let back: ProtocolMessage = prost::Message::decode(bytes.as_slice()).unwrap();
    assert_eq!(super::parse_lane_message(back).unwrap(), (1, msg));
    let r = side(0..10, 1, 0, 21);
    let s = side(0..10, 1, 0, 22);
    let shape = shape(&r, &s, true);
    let mut party = Breakdown::new(vec![Lane::Receiver(Box::new(
        BreakdownReceiver::new(
            0,
            shape,
            r.receiver_rows(),
            vec![0; shape.released_values()],
            rset(&shape),
        )
        .unwrap(),
    ))]);
    let e = party.handle(wire).unwrap_err();
    assert!(matches!(e, ProtocolError::Malformed { .. }), "{e}");
}

#[test]
fn shapes_beyond_the_limits_are_refused() {
    let r = side(0..10, 1, 0, 23);
    let big = LaneShape {
        receiver_groups: 100,
        payload: OneHot {
            groups: 100,
            count: true,
            measures: 2,
            small_measures: false,
        },
    };
    assert!(
        BreakdownReceiver::new(
            0,
            big,
            r.receiver_rows(),
            vec![0; big.released_values()],
            rset(&big),
        )
        .is_err()
    );
    let ok = LaneShape {
        receiver_groups: 1,
        payload: OneHot {
            groups: 1,
            count: true,
            measures: 0,
            small_measures: false,
        },
    };
    assert!(
        BreakdownReceiver::new(0, ok, r.receiver_rows(), vec![0; 2], rset(&ok)).is_err(),
        "noise count"
    );
}
