//! A peer that deviates (garbage points, the identity, an oversized chunk, a
//! frame above the transport limit, a truncated stream) gets a session error
//! that names the step, and the honest node keeps serving other sessions.

use crate::support::*;
use ed25519_dalek::SigningKey;
use jointly_examples::{
    cluster::{Cluster, exact, overlap_spec},
    deploy::PolicySpec,
};
use jointly_node::{
    config::CoordinatorLink,
    identity::{Identity, attach_message},
    transport::connect,
};
use jointly_protocol::{
    crypto::hash::HashToGroup,
    queries::terms::{job_terms, with_requester},
    transcript::envelope::ChainWriter,
    transcript::{envelope_to_wire, step_of},
    wire::{
        Announce, DatasetInfo, Hello, JobDecision, Join, MaskedList, NodeMessage, NodeTerms, PointChunk,
        Proof, ProtocolMessage, Sealed, SessionFrame, coordinator_message::Body as FromCoordinator,
        node_message::Body as ToCoordinator, protocol_message::Kind, session_frame::Body,
    },
};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    GarbagePoints,
    IdentityPoint,
    OversizedChunk,
    FrameAboveTransportLimit,
    TruncatedStream,
    ForgedEnvelope,
}

fn valid_points(n: usize) -> Vec<u8> {
    let h = HashToGroup::new(b"test");
    (0..n as u32)
        .flat_map(|i| h.hash(&[&i.to_le_bytes()]).compress().to_bytes())
        .collect()
}

/// Seals a message as the hostile node: a valid envelope under `key` (the
/// partner's real key, or a forger's).
fn frame(chain: &mut ChainWriter, key: &SigningKey, kind: Kind) -> SessionFrame {
    let msg = ProtocolMessage {
        kind: Some(kind),
        lane: 0,
    };
    let payload = msg.encode_to_vec();
    let sealed = chain.seal(&step_of(&msg), &payload, key);
    SessionFrame {
        body: Some(Body::Sealed(Sealed {
            envelope: Some(envelope_to_wire(&sealed)),
            payload,
        })),
    }
}

fn partner_signing_key(cluster: &Cluster) -> SigningKey {
    let text = std::fs::read_to_string(cluster.deployment.dir.join("partner.key")).expect("partner key");
    let mut secret = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut secret).expect("hex key");
    SigningKey::from_bytes(&secret)
}

type Attached = (
    jointly_protocol::wire::node_gateway_client::NodeGatewayClient<tonic::transport::Channel>,
    mpsc::Sender<NodeMessage>,
    tonic::Streaming<jointly_protocol::wire::CoordinatorMessage>,
);

/// Attaches as "partner" with the partner's real key.
async fn attach_as_partner(cluster: &Cluster) -> Attached {
    let id = Identity::load(&cluster.deployment.dir.join("partner.key")).expect("partner key");
    let link = CoordinatorLink {
        url: cluster.url.clone(),
        ca_cert: None,
        tls_domain: None,
        reconnect_seconds: 1,
    };
    let mut client = connect(&link).await.expect("connect");
    let (tx, rx) = mpsc::channel(16);
    let msg = |b| NodeMessage { body: Some(b) };
    tx.send(msg(ToCoordinator::Hello(Hello {
        node_name: "partner".into(),
        public_key: id.public_key().to_bytes().to_vec(),
        software_version: "hostile".into(),
        datasets: vec![DatasetInfo {
            name: "users".into(),
            id_kind: "phone".into(),
            rows_rounded: 10,
            columns: vec![],
            kind: "table".into(),
            channels: vec![],
            campaigns: vec![],
        }],
    })))
    .await
    .expect("hello");
    let mut inbound = client
        .attach(ReceiverStream::new(rx))
        .await
        .expect("attach")
        .into_inner();
    let Some(FromCoordinator::Challenge(c)) =
        inbound.message().await.expect("challenge").and_then(|m| m.body)
    else {
        panic!("expected a challenge");
    };
    let signature = id
        .sign(&attach_message(&c.coordinator_id, "partner", &c.nonce))
        .to_vec();
    tx.send(msg(ToCoordinator::Proof(Proof { signature })))
        .await
        .expect("proof");
    (client, tx, inbound)
}

/// Attaches as "partner", accepts one job and misbehaves in its session.
/// Returns the session's sender to keep it open.
async fn hostile_partner(cluster: &Cluster, how: Misbehaviour) -> tokio::task::JoinHandle<()> {
    let signing = partner_signing_key(cluster);
    let (mut client, tx, mut inbound) = attach_as_partner(cluster).await;
    let msg = |b| NodeMessage { body: Some(b) };
    tokio::spawn(async move {
        // Streams held open until the coordinator ends them.
        let (mut senders, mut responses) = (Vec::new(), Vec::new());
        let mut terms = std::collections::HashMap::new();
        while let Ok(Some(m)) = inbound.message().await {
            match m.body {
                Some(FromCoordinator::Offer(o)) => {
                    // Honest about the terms, so the deviation reaches the points.
                    terms.insert(
                        o.job_id.clone(),
                        with_requester(
                            job_terms(&o.job_id, &o.spec.clone().unwrap_or_default()),
                            o.requester.as_ref(),
                        ),
                    );
                    let d = JobDecision {
                        job_id: o.job_id,
                        accept: true,
                        reason: String::new(),
                        terms: Some(NodeTerms {
                            node: "partner".into(),
                            sigma: 0.0,
                            delta: 1e-6,
                            min_aggregation: 0,
                        }),
                    };
                    let _ = tx.send(msg(ToCoordinator::Decision(d))).await;
                }
                Some(FromCoordinator::Start(s)) => {
                    let (out, frames) = mpsc::channel(8);
                    let mut chain = ChainWriter::new(&s.session_id, "partner", "bank");
                    let key = match how {
                        Misbehaviour::ForgedEnvelope => SigningKey::from_bytes(&[7; 32]),
                        _ => signing.clone(),
                    };
                    let join = Join {
                        session_id: s.session_id,
                        token: s.token,
                    };
                    out.send(SessionFrame {
                        body: Some(Body::Join(join)),
                    })
                    .await
                    .expect("join");
                    let response = client
                        .session(ReceiverStream::new(frames))
                        .await
                        .expect("session");
                    let (announce, points) = match how {
                        Misbehaviour::GarbagePoints => (5, vec![0xffu8; 5 * 32]),
                        Misbehaviour::IdentityPoint => (1, vec![0u8; 32]),
                        Misbehaviour::OversizedChunk => (9000, valid_points(9000)),
                        Misbehaviour::FrameAboveTransportLimit => (40_000, valid_points(40_000)),
                        Misbehaviour::TruncatedStream => (100, valid_points(10)),
                        Misbehaviour::ForgedEnvelope => (3, valid_points(3)),
                    };
                    let terms = terms.get(&s.job_id).copied().unwrap_or_default();
                    let _ = out
                        .send(frame(
                            &mut chain,
                            &key,
                            Kind::Announce(Announce {
                                set_size: announce,
                                terms: terms.to_vec(),
                                session_key: Vec::new(),
                                ..Default::default()
                            }),
                        ))
                        .await;
                    let _ = out
                        .send(frame(
                            &mut chain,
                            &key,
                            Kind::Points(PointChunk {
                                list: MaskedList::W.into(),
                                points,
                            }),
                        ))
                        .await;
                    if !matches!(how, Misbehaviour::TruncatedStream) {
                        senders.push(out);
                    }
                    responses.push(response);
                }
                _ => {}
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deviating_peer_gets_named_errors_and_the_node_keeps_serving() {
    let dir = tempdir();
    let phones = ["13812345678", "13912345678", "15012345678"];
    let b = bank_csv(dir.path(), "bank.csv", &phones);
    let p = partner_csv(dir.path(), "partner.csv", &phones[1..]);
    let mut cluster = Cluster::start(dir.path(), &b, &p, PolicySpec::testing())
        .await
        .expect("cluster");
    cluster.kill_node("partner").await;

    let cases = [
        (Misbehaviour::GarbagePoints, "O.3"),
        (Misbehaviour::IdentityPoint, "identity"),
        (Misbehaviour::OversizedChunk, "above the limit"),
        (Misbehaviour::FrameAboveTransportLimit, "partner"),
        (Misbehaviour::TruncatedStream, "closed its session stream"),
        (
            Misbehaviour::ForgedEnvelope,
            "does not verify under partner's registered key",
        ),
    ];
    for (how, needle) in cases {
        let hostile = hostile_partner(&cluster, how).await;
        cluster
            .wait_attached(&["bank", "partner"])
            .await
            .expect("hostile attached");
        let job = cluster.run(overlap_spec(exact())).await.expect("job");
        failed_with(&job, needle);
        assert!(
            !job.error.contains("1381"),
            "no identifier in errors: {}",
            job.error
        );
        hostile.abort();
        let _ = hostile.await;
    }

    // The bank node served all of that and still runs an honest session.
    cluster.start_node("partner").await.expect("honest partner");
    cluster
        .wait_attached(&["bank", "partner"])
        .await
        .expect("attached");
    let job = cluster.run(overlap_spec(exact())).await.expect("job");
    assert_eq!(intersection(&job), 2);
    cluster.shutdown().await;
}

/// A node's report indexes a transcript only for a job it is running now:
/// not for a finished job (whose entry stays the first one) and not for a
/// job id it made up, so no copy can be planted for auditors to fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cannot_plant_a_transcript_in_the_index() {
    use jointly_protocol::wire::{SessionReport, TranscriptIndex};
    let dir = tempdir();
    let phones = ["13812345678", "13912345678", "15012345678"];
    let b = bank_csv(dir.path(), "bank.csv", &phones);
    let p = partner_csv(dir.path(), "partner.csv", &phones[1..]);
    let mut cluster = Cluster::start(dir.path(), &b, &p, PolicySpec::testing())
        .await
        .expect("cluster");
    let done = cluster.run(overlap_spec(exact())).await.expect("job");
    assert_eq!(intersection(&done), 2);
    let db = jointly_coordinator::store::open_connection(&dir.path().join("coordinator.db")).expect("db");
    let indexed = |job: &str| -> Option<Vec<u8>> {
        db.query_row(
            "SELECT shared_sha256 FROM transcripts WHERE job_id = ?1 AND node = 'partner'",
            [job],
            |r| r.get(0),
        )
        .ok()
    };
    let honest = indexed(&done.job_id).expect("the honest partner indexed its copy");

    cluster.kill_node("partner").await;
    let (_client, tx, _inbound) = attach_as_partner(&cluster).await;
    cluster
        .wait_attached(&["bank", "partner"])
        .await
        .expect("hostile attached");
    for job in [done.job_id.as_str(), "job-planted"] {
        let report = SessionReport {
            job_id: job.into(),
            outcome: None,
            transcript: Some(TranscriptIndex {
                session_id: "session-planted".into(),
                shared_sha256: vec![7; 32],
                shared_bytes: 99,
                summary_sha256: vec![7; 32],
            }),
        };
        tx.send(NodeMessage {
            body: Some(ToCoordinator::Report(report)),
        })
        .await
        .expect("report");
    }
    // Give the coordinator time to handle both reports.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(indexed(&done.job_id), Some(honest), "the first entry stands");
    assert_eq!(
        indexed("job-planted"),
        None,
        "nothing indexed for a job it is not running"
    );
    drop(tx);
    cluster.shutdown().await;
}
