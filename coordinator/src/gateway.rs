//! The node-facing service: the control stream (`Attach`) with its identity
//! check, and the session streams (`Session`) whose frames are relayed between
//! the two nodes of a job with bounded buffers.

use std::{pin::Pin, sync::Arc, time::Duration};

use jointly_protocol::access::attach::verify_attach;
use jointly_protocol::wire::{
    Challenge, CoordinatorMessage, NodeMessage, SessionFrame, TranscriptPart, TranscriptReceipt, Welcome,
    coordinator_message::Body as ToNode, node_gateway_server::NodeGateway, node_message::Body as FromNode,
    session_frame,
};
use rand::RngCore;
use tokio::sync::mpsc;
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

use crate::{
    job_event::JobEvent,
    state::{AttachedNode, Coordinator},
    store::TranscriptEntry,
};

/// Time a connecting node has to identify itself.
const HANDSHAKE: Duration = Duration::from_secs(10);

pub struct Gateway {
    coord: Arc<Coordinator>,
}

impl Gateway {
    pub fn new(coord: Arc<Coordinator>) -> Self {
        Self { coord }
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

async fn next_body(inbound: &mut Streaming<NodeMessage>) -> Result<FromNode, Status> {
    match tokio::time::timeout(HANDSHAKE, inbound.message()).await {
        Ok(Ok(Some(NodeMessage { body: Some(b) }))) => Ok(b),
        Ok(Ok(_)) => Err(Status::invalid_argument(
            "expected a message during the attach handshake",
        )),
        Ok(Err(s)) => Err(s),
        Err(_) => Err(Status::deadline_exceeded("attach handshake timed out")),
    }
}

#[tonic::async_trait]
impl NodeGateway for Gateway {
    type AttachStream = BoxStream<CoordinatorMessage>;
    type SessionStream = BoxStream<SessionFrame>;

    async fn attach(
        &self,
        request: Request<Streaming<NodeMessage>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let mut inbound = request.into_inner();
        let FromNode::Hello(hello) = next_body(&mut inbound).await? else {
            return Err(Status::invalid_argument("the first message must be Hello"));
        };
        let name = hello.node_name.clone();
        let registered = self
            .coord
            .config
            .nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| {
                Status::permission_denied(format!(
                    "node '{name}' is not registered at this coordinator (add it under [[nodes]])"
                ))
            })?;
        let key = registered.key()?;
        if hello.public_key != key.as_bytes() {
            return Err(Status::permission_denied(format!(
                "node '{name}' presented a different public key than the one registered; update [[nodes]] if the key was rotated"
            )));
        }
        let (to_node, outbox) = mpsc::channel(64);
        let mut nonce = [0u8; 32];
        rand::rng().fill_bytes(&mut nonce);
        let challenge = Challenge {
            nonce: nonce.to_vec(),
            coordinator_id: self.coord.config.id.clone(),
        };
        // The channel is fresh and empty: this send cannot wait.
        let _ = to_node
            .send(Ok(CoordinatorMessage {
                body: Some(ToNode::Challenge(challenge)),
            }))
            .await;
        let coord = Arc::clone(&self.coord);
        let to_node_task = to_node.clone();
        tokio::spawn(async move {
            let proof = match next_body(&mut inbound).await {
                Ok(FromNode::Proof(p)) => p,
                Ok(_) => {
                    let _ = to_node_task
                        .send(Err(Status::invalid_argument("expected Proof")))
                        .await;
                    return;
                }
                Err(s) => {
                    let _ = to_node_task.send(Err(s)).await;
                    return;
                }
            };
            let valid = verify_attach(&key, &coord.config.id, &name, &nonce, &proof.signature);
            if !valid {
                warn!(node = %name, "attach proof did not verify");
                let _ = to_node_task
                    .send(Err(Status::unauthenticated(
                        "the attach proof does not verify with the registered key",
                    )))
                    .await;
                return;
            }
            let connection = coord.next_connection();
            coord.attach(
                &name,
                AttachedNode {
                    connection,
                    to_node: to_node_task.clone(),
                    datasets: hello.datasets,
                },
            );
            let _ = to_node_task
                .send(Ok(CoordinatorMessage {
                    body: Some(ToNode::Welcome(Welcome {})),
                }))
                .await;
            info!(node = %name, "node attached");
            control_loop(&coord, &name, &mut inbound).await;
            for job in coord.detach(&name, connection) {
                let _ = job.send(JobEvent::NodeDetached { node: name.clone() }).await;
            }
            info!(node = %name, "node detached");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(outbox))))
    }

    async fn session(
        &self,
        request: Request<Streaming<SessionFrame>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let mut inbound = request.into_inner();
        let join = match tokio::time::timeout(HANDSHAKE, inbound.message()).await {
            Ok(Ok(Some(SessionFrame {
                body: Some(session_frame::Body::Join(j)),
            }))) => j,
            Ok(Err(s)) => return Err(s),
            _ => {
                return Err(Status::invalid_argument(
                    "the first frame of a session must be Join",
                ));
            }
        };
        let (job_id, node, inbox, peer, events) = self.coord.join_session(&join.session_id, &join.token)?;
        tokio::spawn(async move {
            let mut relayed = Relayed::default();
            let stopped = pump(&mut inbound, &peer, &mut relayed).await;
            // Sizes only: what operators size links and the benchmark counts by.
            info!(job = %job_id, from = %node, frames = relayed.frames, bytes = relayed.bytes, "session relay finished");
            if let Some(reason) = stopped {
                warn!(job = %job_id, node = %node, reason = %reason, "session relay stopped");
                let _ = events.send(JobEvent::SessionFailed { node, reason }).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(inbox))))
    }

    async fn transcript(
        &self,
        request: Request<Streaming<TranscriptPart>>,
    ) -> Result<Response<TranscriptReceipt>, Status> {
        let mut inbound = request.into_inner();
        upload(&self.coord, &mut inbound).await?;
        Ok(Response::new(TranscriptReceipt {}))
    }
}

/// Reads a node's transcript upload: the first part names the fetch and its
/// token; every part then goes to the auditor's stream as it is read. A slow
/// auditor holds back this stream only (HTTP/2 flow control), never the
/// node's control stream.
async fn upload(coord: &Coordinator, inbound: &mut Streaming<TranscriptPart>) -> Result<(), Status> {
    let first = match tokio::time::timeout(HANDSHAKE, inbound.message()).await {
        Ok(Ok(Some(p))) => p,
        Ok(Err(s)) => return Err(s),
        _ => return Err(Status::invalid_argument("a transcript upload starts with a part")),
    };
    let (node, parts) = coord.take_fetch(first.request_id, &first.token).ok_or_else(|| {
        Status::permission_denied("no transcript fetch waits for this upload (wrong or used token)")
    })?;
    let stall = Duration::from_secs(coord.config.timeouts.stall_seconds.max(1));
    let mut part = Some(first);
    loop {
        let Some(p) = part.take() else {
            return Err(Status::invalid_argument("the upload ended before its last part"));
        };
        let last = p.last || !p.error.is_empty();
        // Waits while the auditor's stream is full, up to the stall timeout.
        match tokio::time::timeout(stall, parts.send(p)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Ok(()),
            Err(_) => {
                warn!(node = %node, "transcript fetch dropped: the auditor stopped reading");
                return Err(Status::deadline_exceeded(
                    "the auditor stopped reading the transcript",
                ));
            }
        }
        if last {
            return Ok(());
        }
        part = match tokio::time::timeout(stall, inbound.message()).await {
            Ok(Ok(Some(p))) => Some(p),
            Ok(Ok(None)) => None,
            Ok(Err(s)) => return Err(s),
            Err(_) => {
                return Err(Status::deadline_exceeded(
                    "the node stalled while sending the transcript",
                ));
            }
        };
    }
}

/// Frames and their encoded bytes relayed from one node to its peer.
#[derive(Default)]
struct Relayed {
    frames: u64,
    bytes: u64,
}

/// Relays one node's frames to its peer until the node closes its stream.
/// Returns why the session must fail, if it must.
async fn pump(
    inbound: &mut Streaming<SessionFrame>,
    peer: &mpsc::Sender<Result<SessionFrame, Status>>,
    relayed: &mut Relayed,
) -> Option<String> {
    loop {
        match inbound.message().await {
            Ok(Some(
                frame @ SessionFrame {
                    body: Some(session_frame::Body::Sealed(_)),
                },
            )) => {
                relayed.frames += 1;
                relayed.bytes += prost::Message::encoded_len(&frame) as u64;
                // Waits while the peer's buffer is full: back-pressure reaches
                // the sending node through HTTP/2 flow control.
                if peer.send(Ok(frame)).await.is_err() {
                    return None;
                }
            }
            Ok(Some(SessionFrame {
                body: Some(session_frame::Body::Abort(a)),
            })) => {
                let reason = format!("aborted the session: {}", a.reason);
                let _ = peer.send(Err(Status::aborted(reason.clone()))).await;
                return Some(reason);
            }
            Ok(Some(_)) => return Some("sent a frame that is not a sealed protocol message".into()),
            Ok(None) => {
                // Queued after every frame already relayed: a peer that still
                // needs frames learns the stream is over instead of waiting;
                // a peer that has everything is done before it reads this.
                let _ = peer
                    .send(Err(Status::cancelled("the peer node closed its session stream")))
                    .await;
                return None;
            }
            Err(status) => return Some(format!("session stream broke: {}", status.message())),
        }
    }
}

/// Routes a node's control messages to the jobs they belong to.
async fn control_loop(coord: &Coordinator, name: &str, inbound: &mut Streaming<NodeMessage>) {
    loop {
        let body = match inbound.message().await {
            Ok(Some(NodeMessage { body: Some(b) })) => b,
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return,
        };
        let (job_id, event) = match body {
            FromNode::Decision(d) => (
                d.job_id,
                JobEvent::Decision {
                    node: name.to_string(),
                    accept: d.accept,
                    reason: d.reason,
                    terms: d.terms,
                },
            ),
            FromNode::Progress(p) => (
                p.job_id,
                JobEvent::Progress {
                    node: name.to_string(),
                    permille: p.permille.min(1000),
                },
            ),
            FromNode::Report(r) => {
                // Only a node of the job, while it runs, indexes its copy:
                // another node cannot plant a transcript under this job.
                let of_the_job = coord.job_events(&r.job_id, name).is_some();
                if let Some(t) = r.transcript.filter(|_| of_the_job) {
                    let entry = TranscriptEntry {
                        session_id: t.session_id,
                        shared_sha256: t.shared_sha256,
                        shared_bytes: t.shared_bytes,
                        summary_sha256: t.summary_sha256,
                    };
                    if let Err(e) = coord.store.index_transcript(&r.job_id, name, entry).await {
                        tracing::warn!(job = %r.job_id, node = %name, error = %e, "cannot index the transcript");
                    }
                }
                let Some(outcome) = r.outcome else { continue };
                (
                    r.job_id,
                    JobEvent::Report {
                        node: name.to_string(),
                        outcome: Box::new(outcome),
                    },
                )
            }
            FromNode::Hello(_) | FromNode::Proof(_) => continue,
        };
        // Only jobs this node takes part in accept its events.
        if let Some(events) = coord.job_events(&job_id, name) {
            let _ = events.send(event).await;
        }
    }
}
