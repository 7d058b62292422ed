use std::sync::Arc;

use ed25519_dalek::SigningKey;

use super::*;
use crate::{
    ids::idlist::IdList,
    ids::normalize::IdKind,
    protocols::overlap::{OverlapReceiver, OverlapSender},
    session::outcome::Outcome,
    session::stream::{Limits, Setup},
    wire::{self, Privacy, QuerySpec, TranscriptRecord, transcript_record::Record},
};

const TERMS: [u8; 32] = [5; 32];

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
    QuerySpec {
        query: Some(wire::query_spec::Query::Overlap(wire::OverlapQuery {
            left: Some(wire::DatasetRef {
                node: "bank".into(),
                dataset: "customers".into(),
            }),
            right: Some(wire::DatasetRef {
                node: "shop".into(),
                dataset: "members".into(),
            }),
        })),
        privacy: Some(Privacy {
            epsilon: 0.0,
            exact: true,
        }),
    }
}

fn info(session: &str, node: &str, peer: &str, seat: Seat) -> SessionInfo {
    SessionInfo {
        job_id: "job-1".into(),
        session_id: session.into(),
        node: node.into(),
        peer: peer.into(),
        seat,
        spec: spec(),
        terms: TERMS,
        requester: None,
    }
}

fn covered(limits: Limits, pads: u64, dummies: Option<u64>) -> Setup {
    let mut setup = Setup::exact(limits, TERMS, 1, usize::from(dummies.is_some()));
    setup.cover = crate::privacy::cover::Cover {
        pads: vec![pads],
        pad_offset: 2,
        dummies: dummies.into_iter().collect(),
        dummy_offset: if dummies.is_some() { 3 } else { 0 },
    };
    setup
}

/// The bank's and the shop's files of one honest overlap session.
fn session(id: &str) -> (Vec<TranscriptRecord>, Vec<TranscriptRecord>) {
    let limits = Limits {
        chunk_points: 7,
        ..Limits::default()
    };
    let (bank, shop) = (key(1), key(2));
    let r = Recorder::new(
        info(id, "bank", "shop", Seat::Receiver),
        bank.clone(),
        shop.verifying_key(),
    );
    let s = Recorder::new(info(id, "shop", "bank", Seat::Sender), shop, bank.verifying_key());
    let (r, s) = run_recorded_pair(
        (
            Box::new(OverlapReceiver::new(ids(0..40), covered(limits, 3, None)).expect("receiver")),
            r,
        ),
        (
            Box::new(OverlapSender::new(ids(25..55), covered(limits, 2, Some(4))).expect("sender")),
            s,
        ),
    )
    .expect("honest session");
    match r.outcome {
        // 15 in common, and the sender's 4 dummies.
        Outcome::Overlap(o) => assert_eq!(o.intersection, 19),
        other => panic!("{other:?}"),
    }
    (r.records, s.records)
}

fn failures(report: &AuditReport) -> Vec<String> {
    report
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Failed)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect()
}

fn message_indices(file: &[TranscriptRecord]) -> Vec<usize> {
    file.iter()
        .enumerate()
        .filter(|(_, r)| matches!(r.record, Some(Record::Message(_))))
        .map(|(i, _)| i)
        .collect()
}

fn sealed(record: &mut TranscriptRecord) -> &mut wire::Sealed {
    match &mut record.record {
        Some(Record::Message(m)) => m.sealed.as_mut().expect("sealed"),
        _ => panic!("not a message"),
    }
}

fn step_of_record(record: &TranscriptRecord) -> (String, String, u64) {
    match &record.record {
        Some(Record::Message(m)) => {
            let e = m
                .sealed
                .as_ref()
                .and_then(|s| s.envelope.as_ref())
                .expect("envelope");
            (e.from.clone(), e.step.clone(), e.seq)
        }
        _ => panic!("not a message"),
    }
}

#[test]
fn honest_files_verify_with_their_proofs() {
    let (bank, shop) = session("s-1");
    for (file, keeper) in [(&bank, "bank"), (&shop, "shop")] {
        let report = verify(file);
        assert!(report.verified, "{keeper}: {:?}", failures(&report));
        assert_eq!(report.kept_by, keeper);
        let proofs: Vec<_> = report
            .checks
            .iter()
            .filter(|c| c.name == "masking proofs")
            .collect();
        assert_eq!(proofs.len(), 1, "{keeper}");
        assert_eq!(
            proofs[0].status,
            CheckStatus::Passed,
            "{keeper}: {}",
            proofs[0].detail
        );
        assert_eq!(report.parties.len(), 2);
        // Lengths with the cover: 40 + 3 pads, 30 + 4 dummies + 2 pads.
        assert_eq!(report.parties[0].set_size, 43);
        assert_eq!(report.parties[1].set_size, 36);
        assert!(report.disclosures.iter().any(|d| d.party == "planner"));
    }
    let bank_report = verify(&bank);
    let proof = bank_report
        .checks
        .iter()
        .find(|c| c.name == "masking proofs")
        .expect("proof check");
    assert!(
        proof.detail.contains("= 19 is the count it released"),
        "{}",
        proof.detail
    );
}

#[test]
fn file_round_trip_and_shared_copy() {
    let (bank, _) = session("s-1");
    let bytes: Vec<u8> = bank.iter().flat_map(encode_record).collect();
    let parsed = parse_file(&bytes).expect("parses");
    assert_eq!(parsed, bank);
    let shared: Vec<_> = bank.iter().filter_map(shared_copy).collect();
    assert!(shared.len() < bank.len());
    // Neither the node's proofs nor its release leave it.
    assert!(
        shared
            .iter()
            .all(|r| !matches!(r.record, Some(Record::Attestation(_) | Record::Release(_))))
    );
    let report = verify(&shared);
    assert!(report.verified, "{:?}", failures(&report));
    let commitment = report
        .checks
        .iter()
        .find(|c| c.name == "result commitment")
        .expect("commitment check");
    assert_eq!(commitment.status, CheckStatus::NotChecked);
    let proof = report
        .checks
        .iter()
        .find(|c| c.name == "masking proofs")
        .expect("proof check");
    assert_eq!(proof.status, CheckStatus::NotChecked);
    assert!(
        parse_file(&bytes[..bytes.len() - 3]).is_err(),
        "a truncated file is refused"
    );
}

#[test]
fn a_flipped_byte_in_any_message_is_named() {
    let (bank, _) = session("s-1");
    for i in message_indices(&bank) {
        let (from, step, seq) = step_of_record(&bank[i]);
        for target in ["payload", "signature", "step"] {
            let mut file = bank.clone();
            let s = sealed(&mut file[i]);
            match target {
                "payload" if !s.payload.is_empty() => {
                    let at = s.payload.len() / 2;
                    s.payload[at] ^= 1;
                }
                "signature" => s.envelope.as_mut().expect("envelope").signature[5] ^= 1,
                "step" => s.envelope.as_mut().expect("envelope").step.push('x'),
                _ => continue,
            }
            let report = verify(&file);
            let failed = failures(&report);
            assert!(!report.verified, "{target} of record {i} ({step}) went unnoticed");
            let named = format!("record {i}: message {seq}");
            assert!(
                failed
                    .iter()
                    .any(|f| f.contains(&named) && f.contains(&format!("chain {from}"))),
                "{target} of record {i}: {failed:?}"
            );
            let cause = if target == "payload" {
                "payload was changed"
            } else {
                "signature does not verify"
            };
            assert!(
                failed.iter().any(|f| f.contains(cause)),
                "{target} of record {i}: {failed:?}"
            );
        }
    }
}

#[test]
fn a_dropped_message_is_named() {
    let (bank, _) = session("s-1");
    let indices = message_indices(&bank);
    for &i in &indices {
        let (from, _, seq) = step_of_record(&bank[i]);
        let mut file = bank.clone();
        file.remove(i);
        let report = verify(&file);
        let failed = failures(&report);
        assert!(!report.verified, "dropping record {i} went unnoticed");
        assert!(
            failed.iter().any(|f| f.contains(&format!("chain {from}"))
                && (f.contains(&format!("expected message {seq} next")) || f.contains("ends"))),
            "record {i}: {failed:?}"
        );
    }
}

#[test]
fn two_reordered_messages_are_named() {
    let (_, shop) = session("s-1");
    let indices = message_indices(&shop);
    // Two consecutive messages of the same direction.
    let pair = indices
        .windows(2)
        .find(|w| step_of_record(&shop[w[0]]).0 == step_of_record(&shop[w[1]]).0)
        .expect("two messages in a row from one side");
    let mut file = shop.clone();
    file.swap(pair[0], pair[1]);
    let failed = failures(&verify(&file));
    let (_, step, seq) = step_of_record(&shop[pair[1]]);
    assert!(
        failed.iter().any(|f| f.contains(&format!(
            "message {seq} ({step}): expected message {} next",
            seq - 1
        ))),
        "{failed:?}"
    );
}

#[test]
fn a_swapped_identity_key_is_named() {
    let (bank, _) = session("s-1");
    let mut file = bank.clone();
    match &mut file[0].record {
        Some(Record::Head(h)) => h.peer_key = key(9).verifying_key().to_bytes().to_vec(),
        _ => panic!("head first"),
    }
    let failed = failures(&verify(&file));
    assert!(
        failed
            .iter()
            .any(|f| f.contains("chain shop -> bank")
                && f.contains("does not verify under shop's registered key")),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .any(|f| f.contains("sender's signature does not verify")),
        "{failed:?}"
    );
}

#[test]
fn a_masked_list_from_another_session_is_named() {
    let (bank, _) = session("s-1");
    let (other, _) = session("s-2");
    // The first chunk of U, sent by the bank in both sessions at the same place.
    let i = message_indices(&bank)
        .into_iter()
        .find(|&i| step_of_record(&bank[i]).1 == "O.1")
        .expect("a U chunk");
    assert_eq!(step_of_record(&other[i]).1, "O.1");
    let mut file = bank.clone();
    file[i] = other[i].clone();
    let failed = failures(&verify(&file));
    assert!(
        failed
            .iter()
            .any(|f| f.contains(&format!("record {i}")) && f.contains("replayed from another session")),
        "{failed:?}"
    );
}

#[test]
fn tampered_proofs_and_counts_are_named() {
    let (bank, shop) = session("s-1");
    let attestation = |file: &[TranscriptRecord]| {
        file.iter()
            .position(|r| matches!(r.record, Some(Record::Attestation(_))))
            .expect("an attestation")
    };
    // One output point changed: the proof no longer matches the committed digest.
    let mut file = shop.clone();
    let i = attestation(&file);
    if let Some(Record::Attestation(a)) = &mut file[i].record {
        a.outputs[40] ^= 1;
    }
    let failed = failures(&verify(&file));
    assert!(
        failed
            .iter()
            .any(|f| f.contains("masking proofs") && f.contains("not among the proofs")),
        "{failed:?}"
    );
    // The receiver's recorded exact count disagrees with the recount.
    let mut file = bank.clone();
    for r in &mut file {
        if let Some(Record::Release(release)) = &mut r.record {
            release.exact_count = Some(16);
        }
    }
    let failed = failures(&verify(&file));
    assert!(
        failed.iter().any(|f| f.contains("recorded an exact count of 16")),
        "{failed:?}"
    );
    // The stored report differs from the committed one.
    let mut file = bank.clone();
    for r in &mut file {
        if let Some(Record::Release(release)) = &mut r.record {
            release.report[7] ^= 1;
        }
    }
    let failed = failures(&verify(&file));
    assert!(
        failed.iter().any(|f| f.starts_with("result commitment")),
        "{failed:?}"
    );
}

/// Hints only speed the check up: damaged or missing ones leave the verdict,
/// and with honest hints every point took the fast path (same verdict as the
/// ordinary decoding, which the dleq tests pin).
#[test]
fn decoding_hints_never_change_the_verdict() {
    let (bank, shop) = session("s-1");
    for honest in [&bank, &shop] {
        let mut damaged = honest.clone();
        let mut stripped = honest.clone();
        for (d, s) in damaged.iter_mut().zip(stripped.iter_mut()) {
            if let (Some(Record::Attestation(d)), Some(Record::Attestation(s))) =
                (&mut d.record, &mut s.record)
            {
                assert_eq!(d.input_hints.len(), d.outputs.len(), "one hint per point");
                assert_eq!(d.output_hints.len(), d.outputs.len());
                for i in (0..d.input_hints.len()).step_by(97) {
                    d.input_hints[i] ^= 0x10;
                    d.output_hints[i] ^= 0x01;
                }
                s.input_hints.clear();
                s.output_hints.clear();
            }
        }
        for file in [&damaged, &stripped] {
            let report = verify(file);
            assert!(report.verified, "{:?}", failures(&report));
            assert!(
                report
                    .checks
                    .iter()
                    .any(|c| c.name == "masking proofs" && c.status == CheckStatus::Passed)
            );
        }
    }
    // A tampered output is still caught when its hint is recomputed to match.
    let mut file = shop.clone();
    for r in &mut file {
        if let Some(Record::Attestation(a)) = &mut r.record {
            let moved = a.outputs[64..96].to_vec();
            a.outputs[32..64].copy_from_slice(&moved);
            a.output_hints = crate::crypto::hinted::hints(
                &crate::crypto::group::split_points(&a.outputs).expect("points"),
            );
        }
    }
    assert!(!verify(&file).verified);
}

#[test]
fn a_changed_summary_is_named() {
    let (bank, _) = session("s-1");
    let mut file = bank.clone();
    let last = file.len() - 1;
    if let Some(Record::Summary(s)) = &mut file[last].record {
        s.summary[3] ^= 1;
    } else {
        panic!("summary last");
    }
    let failed = failures(&verify(&file));
    assert!(
        failed.iter().any(|f| f.contains("co-signed summary")),
        "{failed:?}"
    );
}

#[test]
fn garbage_is_refused_without_panicking() {
    assert!(!verify(&[]).verified);
    let (bank, _) = session("s-1");
    let bytes: Vec<u8> = bank.iter().flat_map(encode_record).collect();
    for cut in [0, 1, 50, bytes.len() / 2] {
        if let Ok(records) = parse_file(&bytes[cut..]) {
            assert!(!verify(&records).verified || cut == 0);
        }
    }
}

#[test]
fn segment_activation_files_verify_with_their_proofs() {
    use crate::protocols::activation::{ActivationReceiver, ActivationSender};
    let limits = Limits {
        chunk_points: 5,
        ..Limits::default()
    };
    let segment = QuerySpec {
        query: Some(wire::query_spec::Query::Segment(wire::SegmentQuery {
            left: Some(wire::DatasetRef {
                node: "bank".into(),
                dataset: "customers".into(),
            }),
            right: Some(wire::DatasetRef {
                node: "shop".into(),
                dataset: "members".into(),
            }),
            activate: "bank".into(),
            ..Default::default()
        })),
        privacy: spec().privacy,
    };
    let with = |mut i: SessionInfo| {
        i.spec = segment.clone();
        i
    };
    let (bank, shop) = (key(1), key(2));
    let r = Recorder::new(
        with(info("s-9", "bank", "shop", Seat::Receiver)),
        bank.clone(),
        shop.verifying_key(),
    );
    let s = Recorder::new(
        with(info("s-9", "shop", "bank", Seat::Sender)),
        shop,
        bank.verifying_key(),
    );
    let (r, s) = run_recorded_pair(
        (
            Box::new(ActivationReceiver::new(ids(0..30), covered(limits, 2, Some(3))).expect("receiver")),
            r,
        ),
        (
            Box::new(ActivationSender::new(ids(10..50), covered(limits, 1, None), 5, 0).expect("sender")),
            s,
        ),
    )
    .expect("honest activation");
    match &r.outcome {
        Outcome::Activation(a) => assert_eq!(a.members.len(), 20),
        other => panic!("{other:?}"),
    }
    for (file, keeper, step) in [(&r.records, "bank", "A.Z"), (&s.records, "shop", "A.V")] {
        let report = verify(file);
        assert!(report.verified, "{keeper}: {:?}", failures(&report));
        let proof = report
            .checks
            .iter()
            .find(|c| c.name == "masking proofs")
            .expect("proof check");
        assert_eq!(proof.status, CheckStatus::Passed, "{keeper}");
        assert!(proof.detail.contains(step), "{}", proof.detail);
    }
    // The members count the bank recorded must be the recount.
    let mut file = r.records.clone();
    for rec in &mut file {
        if let Some(Record::Release(release)) = &mut rec.record {
            release.exact_count = Some(19);
        }
    }
    assert!(
        failures(&verify(&file))
            .iter()
            .any(|f| f.contains("exact count of 19"))
    );
}

fn signed_requester(spec: &QuerySpec) -> wire::Requester {
    use crate::access::request::{RequestHeader, SUBMIT_QUERY, sign};
    let planner = key(9);
    let request = prost::Message::encode_to_vec(&wire::SubmitQueryRequest {
        spec: Some(spec.clone()),
        workspace: "campaigns".into(),
    });
    let nonce = [4u8; 16];
    let header = RequestHeader {
        coordinator_id: "coord",
        method: SUBMIT_QUERY,
        principal: "alice",
        timestamp_ms: 1_700_000_000_000,
        nonce: &nonce,
    };
    wire::Requester {
        principal: "alice".into(),
        organisation: "bank".into(),
        role: "planner".into(),
        workspace: "campaigns".into(),
        public_key: planner.verifying_key().to_bytes().to_vec(),
        signature: sign(&planner, &header, &request).to_vec(),
        request,
        timestamp_ms: header.timestamp_ms,
        nonce: nonce.to_vec(),
        coordinator_id: "coord".into(),
    }
}

fn session_asked_by(requester: Option<wire::Requester>) -> Vec<TranscriptRecord> {
    let limits = Limits {
        chunk_points: 7,
        ..Limits::default()
    };
    let (bank, shop) = (key(1), key(2));
    let with = |mut i: SessionInfo| {
        i.requester = requester.clone();
        i
    };
    let r = Recorder::new(
        with(info("s-r", "bank", "shop", Seat::Receiver)),
        bank.clone(),
        shop.verifying_key(),
    );
    let s = Recorder::new(
        with(info("s-r", "shop", "bank", Seat::Sender)),
        shop,
        bank.verifying_key(),
    );
    let (r, _) = run_recorded_pair(
        (
            Box::new(OverlapReceiver::new(ids(0..10), Setup::exact(limits, TERMS, 1, 0)).expect("r")),
            r,
        ),
        (
            Box::new(OverlapSender::new(ids(5..15), Setup::exact(limits, TERMS, 1, 1)).expect("s")),
            s,
        ),
    )
    .expect("honest session");
    r.records
}

#[test]
fn the_planners_signed_request_is_checked_and_printed() {
    let requester = signed_requester(&spec());
    let file = session_asked_by(Some(requester.clone()));
    let report = verify(&file);
    assert!(report.verified, "{:?}", failures(&report));
    let who = report.requester.as_ref().expect("a requester");
    assert_eq!(
        (who.principal.as_str(), who.organisation.as_str()),
        ("alice", "bank")
    );
    let check = report
        .checks
        .iter()
        .find(|c| c.name == "planner's request")
        .expect("check");
    assert_eq!(check.status, CheckStatus::Passed, "{}", check.detail);
    // A coordinator that forged the planner, or ran another query than hers.
    let mut forged = requester.clone();
    forged.signature[3] ^= 1;
    let report = verify(&session_asked_by(Some(forged)));
    assert!(!report.verified);
    let mut other = requester;
    other.request = prost::Message::encode_to_vec(&wire::SubmitQueryRequest::default());
    assert!(!verify(&session_asked_by(Some(other))).verified);
    let none = verify(&session_asked_by(None));
    let check = none
        .checks
        .iter()
        .find(|c| c.name == "planner's request")
        .expect("check");
    assert_eq!(check.status, CheckStatus::NotChecked);
}
