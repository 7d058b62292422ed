//! Both sides of a session driven in one process, through the in-memory pair:
//! the recorders, aborts and closing exchange that run over the coordinator
//! in service.

use std::{path::Path, sync::Arc};

use ed25519_dalek::SigningKey;
use jointly_protocol::{
    ids::{idlist::IdList, normalize::IdKind},
    protocols::overlap::{OverlapReceiver, OverlapSender},
    session::stream::{Limits, Setup},
    transcript::{Seat, SessionInfo},
    wire::{self, Privacy, QuerySpec},
};

use super::*;

const TERMS: [u8; 32] = [5; 32];
const JOB: &str = "job-1";
const EVERY: Duration = Duration::from_secs(60);
const IDLE: Duration = Duration::from_secs(30);

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn ids(range: std::ops::Range<u32>) -> Arc<IdList> {
    Arc::new(IdList::from_normalized(
        IdKind::Email,
        range.map(|i| format!("user{i}@example.com")).collect(),
    ))
}

fn spec() -> QuerySpec {
    let dataset = |node: &str, dataset: &str| wire::DatasetRef {
        node: node.into(),
        dataset: dataset.into(),
    };
    QuerySpec {
        query: Some(wire::query_spec::Query::Overlap(wire::OverlapQuery {
            left: Some(dataset("bank", "customers")),
            right: Some(dataset("shop", "members")),
        })),
        privacy: Some(Privacy {
            epsilon: 0.0,
            exact: true,
        }),
    }
}

fn transcript(
    dir: &Path,
    node: &str,
    peer: &str,
    seat: Seat,
    own: &SigningKey,
    peer_key: &SigningKey,
) -> Transcript {
    let info = SessionInfo {
        job_id: JOB.into(),
        session_id: "session-1".into(),
        node: node.into(),
        peer: peer.into(),
        seat,
        spec: spec(),
        terms: TERMS,
        requester: None,
    };
    Transcript {
        recorder: Recorder::new(info, own.clone(), peer_key.verifying_key()),
        files: TranscriptFiles::create(dir, JOB).expect("transcript files"),
    }
}

fn limits() -> Limits {
    Limits {
        chunk_points: 7,
        ..Limits::default()
    }
}

/// The bank (receiver, rows 0..40) and the shop (sender, rows 25..55).
fn parties(receiver_limits: Limits) -> (Box<dyn Party>, Box<dyn Party>) {
    let r = OverlapReceiver::new(ids(0..40), Setup::exact(receiver_limits, TERMS, 1, 0)).expect("receiver");
    let s = OverlapSender::new(ids(25..55), Setup::exact(limits(), TERMS, 1, 1)).expect("sender");
    (Box::new(r), Box::new(s))
}

struct Dirs {
    bank: tempfile::TempDir,
    shop: tempfile::TempDir,
}

fn dirs() -> Dirs {
    Dirs {
        bank: tempfile::tempdir().expect("bank dir"),
        shop: tempfile::tempdir().expect("shop dir"),
    }
}

type Driven = Result<Finished<mpsc::Receiver<SessionFrame>>, SessionFailure>;

async fn drive_both(receiver_limits: Limits, dirs: &Dirs) -> (Driven, Driven) {
    let (bank, shop) = (key(1), key(2));
    let (r, s) = parties(receiver_limits);
    let r_t = transcript(dirs.bank.path(), "bank", "shop", Seat::Receiver, &bank, &shop);
    let s_t = transcript(dirs.shop.path(), "shop", "bank", Seat::Sender, &shop, &bank);
    let ((r_out, r_in), (s_out, s_in)) = memory_pair();
    tokio::join!(
        drive(r, r_t, r_out, r_in, EVERY, IDLE, |_| {}),
        drive(s, s_t, s_out, s_in, EVERY, IDLE, |_| {}),
    )
}

fn closing(exact_count: Option<u64>) -> Closing {
    Closing {
        policy_checks: vec!["in-memory session".into()],
        report: exact_count.unwrap_or(0).to_be_bytes().to_vec(),
        exact_count,
        epsilon: 0.0,
    }
}

#[tokio::test]
async fn an_honest_session_finishes_and_closes_on_both_sides() {
    let dirs = dirs();
    let (r, s) = drive_both(limits(), &dirs).await;
    let (r, s) = (r.expect("receiver done"), s.expect("sender done"));
    let Outcome::Overlap(overlap) = &r.outcome else {
        panic!("the receiver learns the overlap");
    };
    assert_eq!(overlap.intersection, 15);
    assert!(matches!(s.outcome, Outcome::Completed));
    assert!(!r.attestations.is_empty() && !s.attestations.is_empty());
    let (r_written, s_written) = tokio::join!(
        r.link.close(closing(Some(15)), r.attestations),
        s.link.close(closing(None), s.attestations),
    );
    let (r_written, s_written) = (
        r_written.expect("receiver closed"),
        s_written.expect("sender closed"),
    );
    // Both co-signed the same summary, and both files are complete.
    assert_eq!(r_written.summary_sha256, s_written.summary_sha256);
    for written in [&r_written, &s_written] {
        assert!(written.path.exists(), "{}", written.path.display());
        assert!(written.shared_bytes > 0);
    }
}

#[tokio::test]
async fn a_refusal_on_one_side_aborts_the_other() {
    let dirs = dirs();
    let strict = Limits {
        min_peer_set: 1000,
        ..limits()
    };
    let (r, s) = drive_both(strict, &dirs).await;
    let Err(SessionFailure::Local(local)) = r else {
        panic!("the receiver refuses the sender's small list");
    };
    assert!(local.contains("min_set_size"), "{local}");
    let Err(SessionFailure::Remote(remote)) = s else {
        panic!("the sender learns of the abort");
    };
    assert!(remote.starts_with("the session was aborted: "), "{remote}");
    assert!(remote.contains("min_set_size"), "{remote}");
}

#[tokio::test]
async fn a_frame_the_recorder_rejects_ends_the_session_with_an_abort() {
    let dirs = dirs();
    let (bank, shop, impostor) = (key(1), key(2), key(3));
    let (_, s) = parties(limits());
    let s_t = transcript(dirs.shop.path(), "shop", "bank", Seat::Sender, &shop, &bank);
    // A frame signed by a key other than the bank's registered one.
    let mut forger = transcript(dirs.bank.path(), "bank", "shop", Seat::Receiver, &impostor, &shop).recorder;
    let forged = forger.seal(&ProtocolMessage::default());
    let (to_shop, s_in) = mpsc::channel(OUTBOUND_FRAMES);
    let (s_out, mut from_shop) = mpsc::channel(OUTBOUND_FRAMES);
    to_shop
        .send(SessionFrame {
            body: Some(Body::Sealed(forged)),
        })
        .await
        .expect("queued");
    let failure = drive(s, s_t, s_out, s_in, EVERY, IDLE, |_| {})
        .await
        .err()
        .expect("the forged frame is refused");
    let SessionFailure::Local(local) = failure else {
        panic!("the refusal is this node's own");
    };
    assert!(local.contains("failed its transcript check"), "{local}");
    let mut reasons = Vec::new();
    while let Some(frame) = from_shop.recv().await {
        if let Some(Body::Abort(abort)) = frame.body {
            reasons.push(abort.reason);
        }
    }
    assert_eq!(reasons, vec![local]);
}
