//! One task per job: offer it to both nodes, wait for their decisions, start
//! the session, follow progress and reports, and record the outcome. Every way
//! a job can end is recorded in the store with a reason the planner can act on.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use jointly_protocol::wire::{
    CancelSession, CoordinatorMessage, JobOffer, NodeTerms, QueryResult, QuerySpec, Role, StartSession,
    coordinator_message::Body, session_report::Outcome as ReportOutcome,
};
use rand::RngCore;
use tokio::sync::mpsc;
use tonic::Status;
use tracing::{info, warn};

use crate::{
    release::combine,
    state::{ActiveJob, Coordinator, RELAY_FRAMES, SessionSide, SessionSlot},
};

/// What reaches a job's task from nodes and session relays.
#[derive(Debug)]
pub enum JobEvent {
    Decision {
        node: String,
        accept: bool,
        reason: String,
        /// The noise and threshold the node commits to when accepting.
        terms: Option<NodeTerms>,
    },
    Progress {
        node: String,
        done: u64,
        total: u64,
    },
    Report {
        node: String,
        outcome: ReportOutcome,
    },
    /// A session stream broke or a node aborted the session.
    SessionFailed {
        node: String,
        reason: String,
    },
    NodeDetached {
        node: String,
    },
}

/// The two parties of a job: receiver first.
#[derive(Clone, Debug)]
pub struct Parties {
    pub receiver: (String, String, String),
    pub sender: (String, String, String),
}

struct Failure {
    message: String,
    retryable: bool,
}

fn retryable(message: String) -> Failure {
    Failure {
        message,
        retryable: true,
    }
}

pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}-{}", hex::encode(bytes))
}

/// Starts the job's task. `parties` hold (node, dataset, id_kind) per role.
pub fn spawn(coord: Arc<Coordinator>, job_id: String, spec: QuerySpec, parties: Parties) {
    let (events, inbox) = mpsc::channel(256);
    coord.add_job(
        &job_id,
        ActiveJob {
            nodes: [parties.receiver.0.clone(), parties.sender.0.clone()],
            events: events.clone(),
        },
    );
    tokio::spawn(async move {
        let outcome = run(&coord, &job_id, &spec, &parties, events, inbox).await;
        let stored = match &outcome {
            Ok(result) => {
                info!(job = %job_id, "job succeeded");
                coord.store.succeed(&job_id, result).await
            }
            Err(f) => {
                warn!(job = %job_id, error = %f.message, "job failed");
                for node in [&parties.receiver.0, &parties.sender.0] {
                    if let Some(tx) = coord.node_channel(node) {
                        let _ = tx.try_send(Ok(CoordinatorMessage {
                            body: Some(Body::Cancel(CancelSession {
                                job_id: job_id.clone(),
                                reason: f.message.clone(),
                            })),
                        }));
                    }
                }
                coord.store.fail(&job_id, &f.message, f.retryable).await
            }
        };
        if let Err(e) = stored {
            warn!(job = %job_id, error = %e, "could not record the job's outcome");
        }
        coord.remove_job(&job_id);
    });
}

async fn send(coord: &Coordinator, node: &str, body: Body) -> Result<(), Failure> {
    let tx = coord.node_channel(node).ok_or_else(|| {
        retryable(format!(
            "node '{node}' detached before the job could start; run the query again"
        ))
    })?;
    tx.send(Ok(CoordinatorMessage { body: Some(body) }))
        .await
        .map_err(|_| retryable(format!("node '{node}' detached; run the query again")))
}

async fn run(
    coord: &Arc<Coordinator>,
    job_id: &str,
    spec: &QuerySpec,
    parties: &Parties,
    events: mpsc::Sender<JobEvent>,
    mut inbox: mpsc::Receiver<JobEvent>,
) -> Result<QueryResult, Failure> {
    let (r, s) = (&parties.receiver, &parties.sender);
    for ((node, dataset, _), role, (peer, _, peer_kind)) in [(r, Role::Receiver, s), (s, Role::Sender, r)] {
        let offer = JobOffer {
            job_id: job_id.to_string(),
            spec: Some(spec.clone()),
            role: role.into(),
            dataset: dataset.clone(),
            peer_node: peer.clone(),
            peer_id_kind: peer_kind.clone(),
            peer_groups: 0,
        };
        send(coord, node, Body::Offer(offer)).await?;
    }

    let offer_deadline =
        tokio::time::Instant::now() + Duration::from_secs(coord.config.timeouts.offer_seconds);
    let mut accepted: [Option<NodeTerms>; 2] = [None, None];
    while accepted.iter().any(Option::is_none) {
        let event = tokio::time::timeout_at(offer_deadline, inbox.recv())
            .await
            .map_err(|_| {
                retryable("the nodes did not answer the job offer in time (timeouts.offer_seconds)".into())
            })?;
        match event {
            Some(JobEvent::Decision {
                node,
                accept: true,
                terms,
                ..
            }) => {
                let Some(terms) = terms else {
                    return Err(Failure {
                        message: format!("node '{node}' accepted without stating its noise terms"),
                        retryable: false,
                    });
                };
                let side = usize::from(node != r.0);
                accepted[side] = Some(NodeTerms { node, ..terms });
            }
            Some(JobEvent::Decision { node, reason, .. }) => {
                return Err(Failure {
                    message: format!("node '{node}' refused the job: {reason}"),
                    retryable: reason.contains("busy"),
                });
            }
            Some(JobEvent::NodeDetached { node }) => {
                return Err(retryable(format!(
                    "node '{node}' detached before accepting; run the query again"
                )));
            }
            Some(_) => {}
            None => return Err(retryable("internal error: job events closed".into())),
        }
    }
    coord
        .store
        .set_running(job_id)
        .await
        .map_err(|e| retryable(e.to_string()))?;

    let session_id = new_id("session");
    let mut tokens = [[0u8; 32]; 2];
    for t in &mut tokens {
        rand::rng().fill_bytes(t);
    }
    let (tx0, rx0) = mpsc::channel(RELAY_FRAMES);
    let (tx1, rx1) = mpsc::channel(RELAY_FRAMES);
    coord.add_session(
        &session_id,
        SessionSlot {
            job_id: job_id.to_string(),
            sides: [
                SessionSide {
                    node: r.0.clone(),
                    token: tokens[0],
                    inbox: Some(rx0),
                },
                SessionSide {
                    node: s.0.clone(),
                    token: tokens[1],
                    inbox: Some(rx1),
                },
            ],
            outboxes: [tx0.clone(), tx1.clone()],
            events,
        },
    );
    let [Some(r_terms), Some(s_terms)] = accepted else {
        return Err(retryable("internal error: decisions lost".into()));
    };
    let outcome = follow(coord, job_id, &session_id, parties, tokens, &mut inbox)
        .await
        .and_then(|(result, shares)| {
            combine(spec, result, &shares, [r_terms, s_terms]).map_err(|message| Failure {
                message,
                retryable: false,
            })
        });
    coord.remove_session(&session_id);
    if let Err(f) = &outcome {
        // End both session streams now, so neither node keeps computing.
        for tx in [tx0, tx1] {
            let _ = tx.try_send(Err(Status::aborted(f.message.clone())));
        }
    }
    outcome
}

async fn follow(
    coord: &Arc<Coordinator>,
    job_id: &str,
    session_id: &str,
    parties: &Parties,
    tokens: [[u8; 32]; 2],
    inbox: &mut mpsc::Receiver<JobEvent>,
) -> Result<(QueryResult, Vec<i64>), Failure> {
    let names = [&parties.receiver.0, &parties.sender.0];
    for (node, token) in names.iter().zip(tokens) {
        let start = StartSession {
            job_id: job_id.to_string(),
            session_id: session_id.to_string(),
            token: token.to_vec(),
        };
        send(coord, node, Body::Start(start)).await?;
    }
    let stall = Duration::from_secs(coord.config.timeouts.stall_seconds.max(1));
    let mut progress = [(0u64, 0u64); 2];
    let mut last_saved = Instant::now();
    let mut result: Option<QueryResult> = None;
    let mut sender_shares: Option<Vec<i64>> = None;
    loop {
        if let (Some(r), Some(shares)) = (&result, &sender_shares) {
            return Ok((r.clone(), shares.clone()));
        }
        let event = tokio::time::timeout(stall, inbox.recv())
            .await
            .map_err(|_| {
                retryable(format!(
                    "no word from either node for {} s (timeouts.stall_seconds)",
                    stall.as_secs()
                ))
            })?
            .ok_or_else(|| retryable("internal error: job events closed".into()))?;
        match event {
            JobEvent::Progress { node, done, total } => {
                progress[usize::from(&node != names[0])] = (done, total);
                if last_saved.elapsed() >= Duration::from_millis(500) {
                    let (d, t) = (progress[0].0 + progress[1].0, progress[0].1 + progress[1].1);
                    let _ = coord.store.set_progress(job_id, d, t).await;
                    last_saved = Instant::now();
                }
            }
            JobEvent::Report { node, outcome } => match outcome {
                ReportOutcome::Result(r) if &node == names[0] => result = Some(r),
                ReportOutcome::Completed(c) if &node == names[1] => sender_shares = Some(c.noise_shares),
                ReportOutcome::Error(message) => return Err(retryable(message)),
                _ => {
                    return Err(Failure {
                        message: format!("node '{node}' reported an outcome that does not fit its role"),
                        retryable: false,
                    });
                }
            },
            JobEvent::SessionFailed { node, reason } => {
                return Err(retryable(format!("session failed at node '{node}': {reason}")));
            }
            JobEvent::NodeDetached { node } => {
                return Err(retryable(format!(
                    "node '{node}' disconnected during the session; run the query again once it is back"
                )));
            }
            JobEvent::Decision { .. } => {}
        }
    }
}
