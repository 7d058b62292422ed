//! One task per job: offer it to both nodes, wait for their decisions, start
//! the session, follow progress and reports, and record the outcome. Every way
//! a job can end is recorded in the store with a reason the planner can act on.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use jointly_protocol::{
    protocols::breakdown::open_lane,
    queries::breakdown_plan::{MAX_ABS_VALUE, Side},
    session::outcome::LaneOutcome,
    wire::{
        BreakdownRelease, CancelSession, CoordinatorMessage, JobOffer, NodeTerms, Privacy, QueryResult,
        QuerySpec, Requester, Role, SegmentResult, StartSession, coordinator_message::Body, query_result,
        session_report::Outcome as ReportOutcome,
    },
};
use rand::RngCore;
use tokio::sync::mpsc;
use tonic::Status;
use tracing::{info, warn};

use crate::{
    attributions::{AttributionJob, LiftJob},
    breakdowns::BreakdownJob,
    error::ReleaseError,
    job_event::JobEvent,
    release::combine,
    state::{ActiveJob, Coordinator, RELAY_FRAMES, SessionSide, SessionSlot},
};

/// The two parties of a job: receiver first.
#[derive(Clone, Debug)]
pub struct Parties {
    pub receiver: PartyRef,
    pub sender: PartyRef,
    pub kind: JobKind,
}

/// One party of a job: the node, the dataset it runs on, and the label of
/// that dataset's identifier kind (what its peer's offer names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartyRef {
    pub node: String,
    pub dataset: String,
    pub id_kind: String,
}

/// What the job computes, as far as the coordinator must know to offer it
/// and to read its release.
#[derive(Clone, Debug)]
pub enum JobKind {
    Overlap,
    /// `activated`: the node that receives the members (the receiver).
    Segment {
        activated: Option<String>,
    },
    Breakdown(Box<BreakdownJob>),
    /// The bank (conversions) receives, the partner (exposures) sends.
    Attribution(Box<AttributionJob>),
    /// The partner (groups) receives, the bank (customers) sends.
    Lift(Box<LiftJob>),
}

/// What the nodes reported at the end of the session.
enum Reports {
    /// The receiver's partially noised count and the sender's noise shares.
    Count(Box<QueryResult>, Vec<i64>),
    /// Receiver's and sender's breakdown releases.
    Breakdown(Box<[BreakdownRelease; 2]>),
}

struct Failure {
    message: String,
    retryable: bool,
}

fn cancelled(reason: String) -> Failure {
    Failure {
        message: reason,
        retryable: false,
    }
}

fn retryable(message: String) -> Failure {
    Failure {
        message,
        retryable: true,
    }
}

/// How a segment too small to activate is reported, whichever node found
/// it so (`ProtocolError::BelowMinActivation`'s text).
pub const BELOW_MIN_ACTIVATION: &str = "the segment is too small to activate: its noised size is below a node's policy.min_activation; nothing was delivered";

pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}-{}", hex::encode(bytes))
}

/// How long the coordinator keeps trying to tell a node a job ended before
/// giving up; the node's own offer and session timeouts cover the rest.
const CANCEL_SEND: Duration = Duration::from_secs(10);

/// Tells both nodes a job is over, waiting for room on their streams rather
/// than dropping the message: a lost cancel would hold a node's session slot
/// and budget reservation until its own timeouts.
fn cancel_at_nodes(coord: &Arc<Coordinator>, job_id: &str, nodes: [&str; 2], reason: &str) {
    for node in nodes {
        let Some(tx) = coord.node_channel(node) else {
            continue;
        };
        let message = CoordinatorMessage {
            body: Some(Body::Cancel(CancelSession {
                job_id: job_id.to_string(),
                reason: reason.to_string(),
            })),
        };
        let (job, node) = (job_id.to_string(), node.to_string());
        tokio::spawn(async move {
            if !matches!(
                tokio::time::timeout(CANCEL_SEND, tx.send(Ok(message))).await,
                Ok(Ok(()))
            ) {
                warn!(job = %job, node = %node, "could not deliver the cancel; the node's own timeouts end its session");
            }
        });
    }
}

/// Starts the job's task, for `parties` in their roles; `requester` is the
/// signed request both nodes check.
pub fn spawn(
    coord: Arc<Coordinator>,
    job_id: String,
    spec: QuerySpec,
    parties: Parties,
    requester: Requester,
) {
    let (events, inbox) = mpsc::channel(256);
    coord.add_job(
        &job_id,
        ActiveJob {
            nodes: [parties.receiver.node.clone(), parties.sender.node.clone()],
            events: events.clone(),
        },
    );
    tokio::spawn(async move {
        let outcome = run(&coord, &job_id, &spec, &parties, &requester, events, inbox).await;
        let stored = match &outcome {
            Ok(result) => {
                info!(job = %job_id, "job succeeded");
                coord.store.succeed(&job_id, result).await
            }
            Err(f) => {
                warn!(job = %job_id, error = %f.message, "job failed");
                cancel_at_nodes(
                    &coord,
                    &job_id,
                    [&parties.receiver.node, &parties.sender.node],
                    &f.message,
                );
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
    requester: &Requester,
    events: mpsc::Sender<JobEvent>,
    mut inbox: mpsc::Receiver<JobEvent>,
) -> Result<QueryResult, Failure> {
    let (r, s) = (&parties.receiver, &parties.sender);
    for (party, role, peer) in [(r, Role::Receiver, s), (s, Role::Sender, r)] {
        let (peer_groups, peer_measure_bounds) = match &parties.kind {
            JobKind::Breakdown(job) => {
                let first = job.plan.first_receiver();
                let peer_side = if role == Role::Receiver {
                    first.other()
                } else {
                    first
                };
                let schema = job.plan.side(peer_side);
                (schema.groups as u32, schema.measure_bounds.clone())
            }
            _ => (0, Vec::new()),
        };
        let (peer_channels, peer_campaigns) = match &parties.kind {
            JobKind::Attribution(job) => (job.channels.len() as u32, job.campaigns.len() as u32),
            _ => (0, 0),
        };
        let offer = JobOffer {
            requester: Some(requester.clone()),
            job_id: job_id.to_string(),
            spec: Some(spec.clone()),
            role: role.into(),
            dataset: party.dataset.clone(),
            peer_node: peer.node.clone(),
            peer_id_kind: peer.id_kind.clone(),
            peer_groups,
            peer_measure_bounds,
            peer_channels,
            peer_campaigns,
        };
        send(coord, &party.node, Body::Offer(offer)).await?;
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
                let side = usize::from(node != r.node);
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
            Some(JobEvent::Cancelled { reason }) => return Err(cancelled(reason)),
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
                    node: r.node.clone(),
                    token: tokens[0],
                    inbox: Some(rx0),
                },
                SessionSide {
                    node: s.node.clone(),
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
    let fatal = |e: ReleaseError| Failure {
        message: e.to_string(),
        retryable: false,
    };
    let outcome = match follow(coord, job_id, &session_id, parties, tokens, &mut inbox).await {
        Err(f) => Err(f),
        Ok(Reports::Count(result, shares)) => {
            // The sender's dummies noise a count the receiver sees, so it
            // adds no share of its own; only an activation's receiver sees
            // the members exactly, and there the sender adds one.
            let sender_shares = match &parties.kind {
                JobKind::Segment { activated: Some(_) } => 1,
                _ => 0,
            };
            combine(spec, *result, &shares, sender_shares, [r_terms, s_terms])
                .map(|r| match &parties.kind {
                    JobKind::Segment { activated } => as_segment(r, activated.clone()),
                    _ => r,
                })
                .map_err(fatal)
        }
        Ok(Reports::Breakdown(releases)) => match &parties.kind {
            JobKind::Breakdown(job) => open_breakdown(coord, spec, job, &releases, [r_terms, s_terms])
                .await
                .map_err(fatal),
            JobKind::Attribution(job) => open_attribution(coord, spec, job, &releases, [r_terms, s_terms])
                .await
                .map_err(fatal),
            JobKind::Lift(job) => open_lift(coord, spec, job, &releases, [r_terms, s_terms])
                .await
                .map_err(fatal),
            _ => Err(fatal(ReleaseError::NotABreakdown)),
        },
    };
    coord.remove_session(&session_id);
    if let Err(f) = &outcome {
        // End both session streams now, so neither node keeps computing.
        for tx in [tx0, tx1] {
            let _ = tx.try_send(Err(Status::aborted(f.message.clone())));
        }
    }
    outcome
}

/// A segment's released size, from the count the nodes report as for an overlap.
fn as_segment(r: QueryResult, activated: Option<String>) -> QueryResult {
    let size = match r.result {
        Some(query_result::Result::Overlap(o)) => o.intersection,
        _ => None,
    };
    QueryResult {
        result: Some(query_result::Result::Segment(SegmentResult {
            size,
            activated_node: activated.unwrap_or_default(),
        })),
        release: r.release,
    }
}

fn lane_outcome(l: &jointly_protocol::wire::LaneRelease) -> LaneOutcome {
    LaneOutcome {
        lane: l.lane,
        cells: l.cells as usize,
        slots: l.slots as usize,
        ciphertexts: l.ciphertexts.clone(),
        decryption_shares: l.decryption_shares.clone(),
    }
}

/// The release's terms, after checking the nodes' noise fits the query.
fn checked_release(spec: &QuerySpec, terms: &[NodeTerms; 2]) -> Result<(Privacy, u64), ReleaseError> {
    let privacy = spec.privacy.unwrap_or_default();
    if privacy.exact != terms.iter().all(|t| t.sigma == 0.0) {
        return Err(ReleaseError::TermsDoNotFit);
    }
    Ok((privacy, terms[0].min_aggregation.max(terms[1].min_aggregation)))
}

/// Lanes `lanes` where the job's sender (`releases[1]`) sends and its
/// receiver (`releases[0]`) receives, decrypted on all cores.
async fn open_lanes(
    coord: &Arc<Coordinator>,
    releases: &[BreakdownRelease; 2],
    lanes: std::ops::Range<usize>,
    terms: &[NodeTerms; 2],
) -> Result<Vec<Vec<i64>>, ReleaseError> {
    let of = |node: usize, i: usize| lane_of(&releases[node], i, &terms[node]);
    let pairs = lanes
        .map(|i| Ok((of(1, i)?, of(0, i)?)))
        .collect::<Result<Vec<_>, ReleaseError>>()?;
    decrypt_pairs(coord, pairs).await
}

/// Lane `lane` of one node's release, `terms` naming the node.
fn lane_of(release: &BreakdownRelease, lane: usize, terms: &NodeTerms) -> Result<LaneOutcome, ReleaseError> {
    release
        .lanes
        .iter()
        .find(|l| l.lane as usize == lane)
        .map(lane_outcome)
        .ok_or_else(|| ReleaseError::NoLane {
            node: terms.node.clone(),
            lane,
        })
}

async fn decrypt_pairs(
    coord: &Arc<Coordinator>,
    pairs: Vec<(LaneOutcome, LaneOutcome)>,
) -> Result<Vec<Vec<i64>>, ReleaseError> {
    let table = coord.tables.get(&coord.config.decryption).await?;
    tokio::task::spawn_blocking(move || {
        pairs
            .iter()
            .map(|(s, r)| open_lane(s, r, &table, MAX_ABS_VALUE))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(ReleaseError::Decrypting)?
    .map_err(ReleaseError::Open)
}

/// Section A at the coordinator: the job's lanes opened (attribution's
/// pooled release, numbered after its windows; lift's one lane), then read
/// by `read` with the threshold.
async fn open_event_lanes(
    coord: &Arc<Coordinator>,
    spec: &QuerySpec,
    releases: &[BreakdownRelease; 2],
    terms: [NodeTerms; 2],
    lanes: std::ops::Range<usize>,
    read: impl FnOnce(&[Vec<i64>], &[NodeTerms; 2], u64) -> Result<query_result::Result, ReleaseError>,
) -> Result<QueryResult, ReleaseError> {
    let (privacy, threshold) = checked_release(spec, &terms)?;
    let opened = open_lanes(coord, releases, lanes, &terms).await?;
    let result = read(&opened, &terms, threshold)?;
    Ok(QueryResult {
        result: Some(result),
        release: Some(crate::release::release_terms(&privacy, threshold, terms)),
    })
}

async fn open_attribution(
    coord: &Arc<Coordinator>,
    spec: &QuerySpec,
    job: &AttributionJob,
    releases: &[BreakdownRelease; 2],
    terms: [NodeTerms; 2],
) -> Result<QueryResult, ReleaseError> {
    // The bank (the receiver) reports its noised conversion count.
    let conversions = releases[0]
        .conversions
        .ok_or_else(|| ReleaseError::NoConversions {
            node: terms[0].node.clone(),
        })?;
    open_event_lanes(
        coord,
        spec,
        releases,
        terms,
        job.plan.windows()..job.plan.windows() + 1,
        |opened, terms, threshold| {
            let pooled = opened.first().ok_or(ReleaseError::Read(
                jointly_protocol::queries::attribution::AttributionError::Opened("no pooled release"),
            ))?;
            job.result(pooled, conversions, terms, threshold)
                .map(query_result::Result::Attribution)
        },
    )
    .await
}

async fn open_lift(
    coord: &Arc<Coordinator>,
    spec: &QuerySpec,
    job: &LiftJob,
    releases: &[BreakdownRelease; 2],
    terms: [NodeTerms; 2],
) -> Result<QueryResult, ReleaseError> {
    open_event_lanes(coord, spec, releases, terms, 0..1, |opened, terms, threshold| {
        let lane = opened.first().ok_or(ReleaseError::LiftLaneNotOpened)?;
        job.result(lane, terms, threshold).map(query_result::Result::Lift)
    })
    .await
}

/// B.4 at the coordinator: per lane, the lane's sender's ciphertexts with
/// both nodes' decryption shares, solved on all cores, then the cells.
async fn open_breakdown(
    coord: &Arc<Coordinator>,
    spec: &QuerySpec,
    job: &BreakdownJob,
    releases: &[BreakdownRelease; 2],
    terms: [NodeTerms; 2],
) -> Result<QueryResult, ReleaseError> {
    let (privacy, threshold) = checked_release(spec, &terms)?;
    // releases[0] is the job's receiver (lane 0's receiver).
    let first = job.plan.first_receiver();
    let mut pairs = Vec::new();
    for (i, lane) in job.plan.lanes.iter().enumerate() {
        let of = |side: Side| {
            let node = usize::from(side != first);
            lane_of(&releases[node], i, &terms[node])
        };
        pairs.push((of(lane.sender())?, of(lane.receiver)?));
    }
    let values = decrypt_pairs(coord, pairs).await?;
    let cells = job.cells(&values, threshold)?;
    Ok(QueryResult {
        result: Some(query_result::Result::Breakdown(cells)),
        release: Some(crate::release::release_terms(&privacy, threshold, terms)),
    })
}

/// How long an activation's failure waits for the other node's word.
const ACTIVATION_GRACE: Duration = Duration::from_secs(3);

/// When a node refuses an activation as too small it ends its session, and
/// its peer may report the broken stream first; the planner must read the
/// same refusal whichever node made it, so the peer's report waits briefly
/// for the refusal.
async fn activation_refusal_first(
    parties: &Parties,
    inbox: &mut mpsc::Receiver<JobEvent>,
    failure: Failure,
) -> Failure {
    if !matches!(parties.kind, JobKind::Segment { activated: Some(_) }) {
        return failure;
    }
    let deadline = tokio::time::Instant::now() + ACTIVATION_GRACE;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, inbox.recv()).await {
        let refusal = match &event {
            JobEvent::Report { outcome, .. } => {
                matches!(&**outcome, ReportOutcome::Error(m) if m.ends_with(BELOW_MIN_ACTIVATION))
            }
            JobEvent::SessionFailed { reason, .. } => reason.ends_with(BELOW_MIN_ACTIVATION),
            _ => false,
        };
        if refusal {
            return Failure {
                message: BELOW_MIN_ACTIVATION.to_string(),
                retryable: false,
            };
        }
    }
    failure
}

async fn follow(
    coord: &Arc<Coordinator>,
    job_id: &str,
    session_id: &str,
    parties: &Parties,
    tokens: [[u8; 32]; 2],
    inbox: &mut mpsc::Receiver<JobEvent>,
) -> Result<Reports, Failure> {
    let names = [&parties.receiver.node, &parties.sender.node];
    for (i, (node, token)) in names.iter().zip(tokens).enumerate() {
        let start = StartSession {
            job_id: job_id.to_string(),
            session_id: session_id.to_string(),
            token: token.to_vec(),
            peer_key: coord.registered_key(names[1 - i]).unwrap_or_default(),
        };
        send(coord, node, Body::Start(start)).await?;
    }
    let stall = Duration::from_secs(coord.config.timeouts.stall_seconds.max(1));
    let mut progress = [0u32; 2];
    let mut last_saved = Instant::now();
    let mut result: Option<QueryResult> = None;
    let mut sender_shares: Option<Vec<i64>> = None;
    let mut breakdown: [Option<BreakdownRelease>; 2] = [None, None];
    loop {
        if let (Some(r), Some(shares)) = (&result, &sender_shares) {
            return Ok(Reports::Count(Box::new(r.clone()), shares.clone()));
        }
        if let [Some(a), Some(b)] = &breakdown {
            return Ok(Reports::Breakdown(Box::new([a.clone(), b.clone()])));
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
            JobEvent::Progress { node, permille } => {
                progress[usize::from(&node != names[0])] = permille;
                if last_saved.elapsed() >= Duration::from_millis(500) {
                    // The mean of two fractions: it tells the planner how far
                    // along the job is, and no list's size.
                    let _ = coord
                        .store
                        .set_progress(job_id, (progress[0] + progress[1]) / 2)
                        .await;
                    last_saved = Instant::now();
                }
            }
            JobEvent::Report { node, outcome } => match *outcome {
                ReportOutcome::Result(r) if &node == names[0] => result = Some(r),
                ReportOutcome::Completed(c) if &node == names[1] => sender_shares = Some(c.noise_shares),
                ReportOutcome::Breakdown(b) => breakdown[usize::from(&node != names[0])] = Some(b),
                // A segment too small to activate fails alike whichever
                // node decided it: the planner learns one noised bit.
                ReportOutcome::Error(message) if message.ends_with(BELOW_MIN_ACTIVATION) => {
                    return Err(Failure {
                        message: BELOW_MIN_ACTIVATION.to_string(),
                        retryable: false,
                    });
                }
                ReportOutcome::Error(message) => {
                    return Err(activation_refusal_first(parties, inbox, retryable(message)).await);
                }
                _ => {
                    return Err(Failure {
                        message: format!("node '{node}' reported an outcome that does not fit its role"),
                        retryable: false,
                    });
                }
            },
            JobEvent::SessionFailed { reason, .. } if reason.ends_with(BELOW_MIN_ACTIVATION) => {
                return Err(Failure {
                    message: BELOW_MIN_ACTIVATION.to_string(),
                    retryable: false,
                });
            }
            JobEvent::SessionFailed { node, reason } => {
                let failure = retryable(format!("session failed at node '{node}': {reason}"));
                return Err(activation_refusal_first(parties, inbox, failure).await);
            }
            JobEvent::NodeDetached { node } => {
                return Err(retryable(format!(
                    "node '{node}' disconnected during the session; run the query again once it is back"
                )));
            }
            JobEvent::Cancelled { reason } => return Err(cancelled(reason)),
            JobEvent::Decision { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_activation_refusal_is_the_protocols_text() {
        assert_eq!(
            jointly_protocol::ProtocolError::BelowMinActivation.to_string(),
            super::BELOW_MIN_ACTIVATION
        );
    }
}
