//! The node's life: load datasets, attach to the coordinator (dialling out, so
//! the node needs no inbound port), prove its identity, answer job offers by
//! its own policy, and run the sessions it accepted. Reconnects when the
//! coordinator goes away.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use jointly_protocol::{
    ids::Normalizer,
    overlap::Limits,
    party::Outcome,
    transcript::{Recorder, Seat, SessionInfo},
    wire::{
        BreakdownRelease, ColumnInfo, Completed, DatasetInfo, Hello, JobDecision, JobOffer, Join,
        LaneRelease, NodeMessage, OverlapResult, Proof, QueryResult, ReleasedCount, Role, SessionFrame,
        SessionProgress, SessionReport, StartSession, TranscriptIndex, TranscriptPart, TranscriptRequest,
        coordinator_message::Body as FromCoordinator, node_message::Body as ToCoordinator, query_result,
        session_frame, session_report::Outcome as ReportOutcome,
    },
};
use prost::Message;
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{info, warn};

use crate::{
    config::{ColumnUse, NodeConfig},
    dataset::{self, LoadedDataset, round_count},
    error::NodeError,
    events::LoadedEvents,
    identity::{Identity, attach_message},
    ledger::{Ledger, Refusal},
    policy::{Accepted, Activation, Holdings, Work, decide},
    session::{Closing, Finished, OUTBOUND_FRAMES, SessionFailure, Transcript, drive},
    transcripts::{self, TranscriptFiles},
    transport::{GatewayClient, connect},
    work::{self, Selection},
};

/// A node with its datasets loaded, ready to attach.
pub struct Node {
    config: NodeConfig,
    identity: Identity,
    datasets: BTreeMap<String, LoadedDataset>,
    events: BTreeMap<String, LoadedEvents>,
    ledger: Ledger,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.config.name)
            .field("datasets", &self.datasets.keys().collect::<Vec<_>>())
            .field("events", &self.events.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why `attach_once` returned.
enum Detach {
    Shutdown,
}

impl Node {
    /// Loads the identity key and every dataset. Blocking (file reads, polars,
    /// normalization over all cores): call it before starting the runtime or
    /// from a blocking thread.
    pub fn load(config: NodeConfig) -> Result<Self, NodeError> {
        let identity = Identity::load(&config.identity_key)?;
        let normalizer = Normalizer::new(&config.default_country).map_err(|e| NodeError::ConfigInvalid {
            path: "default_country".into(),
            message: e.to_string(),
        })?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| NodeError::DataDir {
            path: config.data_dir.clone(),
            message: format!("cannot create it: {e}"),
        })?;
        let ledger = Ledger::open(&config.data_dir)?;
        let mut datasets = BTreeMap::new();
        for d in &config.datasets {
            let loaded = dataset::load(d, &normalizer)?;
            let r = &loaded.report;
            info!(
                node = %config.name,
                dataset = %d.name,
                rows = r.rows,
                distinct = r.distinct,
                duplicate_rows = r.duplicate_rows,
                rejected = r.rejected_total(),
                rejected_by_reason = ?r.rejected,
                "dataset loaded"
            );
            datasets.insert(d.name.clone(), loaded);
        }
        let mut events = BTreeMap::new();
        for e in &config.events {
            let loaded = crate::events::load(e, &normalizer)?;
            let r = loaded.report();
            info!(
                node = %config.name,
                dataset = %e.name,
                kind = e.kind.label(),
                rows = r.rows,
                events = r.events,
                persons = r.persons,
                rejected_ids = r.rejected_ids.values().sum::<u64>(),
                invalid_ts = r.invalid_ts,
                unknown_label = r.unknown_label,
                bad_values = r.bad_values,
                "event table loaded"
            );
            events.insert(e.name.clone(), loaded);
        }
        Ok(Self {
            config,
            identity,
            datasets,
            events,
            ledger,
        })
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Decides an offer by policy and, when accepting, reserves its budget.
    fn answer(&self, offer: &JobOffer, running: usize) -> Result<Accepted, String> {
        let node = &self.config.name;
        let accepted = decide(
            node,
            &self.config.policy,
            offer,
            self.holdings(),
            running,
            self.config.limits.max_sessions,
        )?;
        let plan = &accepted.noise;
        match self.ledger.reserve(&plan.charge, plan.budget_micro) {
            Ok(Ok(())) => Ok(accepted),
            Ok(Err(Refusal::OverBudget { spent_micro, .. })) => Err(plan.over_budget(node, spent_micro)),
            Ok(Err(Refusal::Duplicate)) => Err(format!(
                "node '{node}' already has job '{}' on its budget ledger; submit the query again as a new job",
                offer.job_id
            )),
            Err(e) => Err(format!("node '{node}' cannot reserve budget: {e}")),
        }
    }

    /// Gives back the budget of a job that ended before this node released
    /// anything (a no-op once committed).
    fn release_budget(&self, job_id: &str) {
        match self.ledger.release(job_id) {
            Ok(true) => info!(node = %self.config.name, job = %job_id, "budget reservation released"),
            Ok(false) => {}
            Err(e) => {
                warn!(node = %self.config.name, job = %job_id, error = %e, "could not release a budget reservation; it stays counted as spent")
            }
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn datasets(&self) -> impl Iterator<Item = &LoadedDataset> {
        self.datasets.values()
    }

    pub fn events(&self) -> impl Iterator<Item = &LoadedEvents> {
        self.events.values()
    }

    fn holdings(&self) -> Holdings<'_> {
        Holdings {
            datasets: &self.datasets,
            events: &self.events,
        }
    }

    /// Stays attached until `shutdown` completes, reconnecting after failures.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
        tokio::pin!(shutdown);
        let pause = Duration::from_secs(self.config.coordinator.reconnect_seconds.max(1));
        loop {
            match self.attach_once(&mut shutdown).await {
                Ok(Detach::Shutdown) => return Ok(()),
                Err(e) => {
                    warn!(node = %self.config.name, error = %e, "not attached to the coordinator; retrying")
                }
            }
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    fn hello(&self) -> Hello {
        Hello {
            node_name: self.config.name.clone(),
            public_key: self.identity.public_key().to_bytes().to_vec(),
            software_version: env!("CARGO_PKG_VERSION").into(),
            datasets: self
                .datasets
                .values()
                .map(|d| DatasetInfo {
                    name: d.name.clone(),
                    id_kind: d.kind.label().into(),
                    rows_rounded: round_count(d.report.distinct),
                    columns: d
                        .columns
                        .iter()
                        .map(|c| {
                            let clip = c.clip.filter(|_| c.allows(ColumnUse::Measure));
                            ColumnInfo {
                                name: c.name.clone(),
                                uses: c.uses.iter().map(|u| u.label().to_string()).collect(),
                                values: if c.allows(ColumnUse::Group) {
                                    c.domain()
                                } else {
                                    Vec::new()
                                },
                                clip_min: clip.map(|[lo, _]| lo),
                                clip_max: clip.map(|[_, hi]| hi),
                            }
                        })
                        .collect(),
                    kind: "table".into(),
                    channels: Vec::new(),
                    campaigns: Vec::new(),
                })
                .chain(self.events.values().map(|e| {
                    let c = e.config();
                    DatasetInfo {
                        name: c.name.clone(),
                        id_kind: c.id_kind.label().into(),
                        rows_rounded: round_count(e.report().persons),
                        columns: Vec::new(),
                        kind: c.kind.label().into(),
                        channels: c.channels.clone(),
                        campaigns: c.campaigns.clone(),
                    }
                }))
                .collect(),
        }
    }

    async fn attach_once(
        self: &Arc<Self>,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<Detach, NodeError> {
        let link = &self.config.coordinator;
        let lost = |message: String| NodeError::Coordinator {
            url: link.url.clone(),
            message,
        };
        let mut client = connect(link).await?;
        let (control, outgoing) = mpsc::channel::<NodeMessage>(64);
        let send = |body| NodeMessage { body: Some(body) };
        control
            .send(send(ToCoordinator::Hello(self.hello())))
            .await
            .map_err(|_| lost("control stream closed".into()))?;
        let mut inbound = client
            .attach(ReceiverStream::new(outgoing))
            .await
            .map_err(|s| lost(format!("attach refused: {}", s.message())))?
            .into_inner();
        let next = |m: Result<Option<jointly_protocol::wire::CoordinatorMessage>, tonic::Status>| match m {
            Ok(Some(m)) => m
                .body
                .ok_or_else(|| lost("empty message from the coordinator".into())),
            Ok(None) => Err(lost("the coordinator closed the control stream".into())),
            Err(s) => Err(lost(format!("control stream: {}", s.message()))),
        };
        let FromCoordinator::Challenge(challenge) = next(inbound.message().await)? else {
            return Err(lost("expected a challenge from the coordinator".into()));
        };
        let signature = self.identity.sign(&attach_message(
            &challenge.coordinator_id,
            &self.config.name,
            &challenge.nonce,
        ));
        control
            .send(send(ToCoordinator::Proof(Proof {
                signature: signature.to_vec(),
            })))
            .await
            .map_err(|_| lost("control stream closed".into()))?;
        let FromCoordinator::Welcome(_) = next(inbound.message().await)? else {
            return Err(lost("the coordinator did not accept this node's identity".into()));
        };
        info!(node = %self.config.name, coordinator = %link.url, "attached");

        let sessions: Arc<Mutex<HashMap<String, JoinHandle<()>>>> = Arc::default();
        let mut accepted: HashMap<String, (JobOffer, Accepted)> = HashMap::new();
        let result = loop {
            let message = tokio::select! {
                () = shutdown.as_mut() => break Ok(Detach::Shutdown),
                m = inbound.message() => match next(m) {
                    Ok(m) => m,
                    Err(e) => break Err(e),
                },
            };
            match message {
                FromCoordinator::Offer(offer) => {
                    let running = lock(&sessions).values().filter(|h| !h.is_finished()).count();
                    let decision = self.answer(&offer, running + accepted.len());
                    let (accept, reason, terms) = match &decision {
                        Ok(a) => (true, String::new(), Some(a.noise.terms(&self.config.name))),
                        Err(reason) => (false, reason.clone(), None),
                    };
                    info!(node = %self.config.name, job = %offer.job_id, accept, reason = %reason, "job offer");
                    let job_id = offer.job_id.clone();
                    if let Ok(a) = decision {
                        accepted.insert(job_id.clone(), (offer, a));
                    }
                    let _ = control
                        .send(send(ToCoordinator::Decision(JobDecision {
                            job_id,
                            accept,
                            reason,
                            terms,
                        })))
                        .await;
                }
                FromCoordinator::Start(start) => {
                    let Some((offer, a)) = accepted.remove(&start.job_id) else {
                        warn!(job = %start.job_id, "start for a job this node did not accept; ignored");
                        continue;
                    };
                    let job_id = start.job_id.clone();
                    let task = tokio::spawn(Arc::clone(self).session(
                        client.clone(),
                        control.clone(),
                        offer,
                        a,
                        start,
                    ));
                    let mut map = lock(&sessions);
                    map.retain(|_, h| !h.is_finished());
                    map.insert(job_id, task);
                }
                FromCoordinator::Cancel(cancel) => {
                    accepted.remove(&cancel.job_id);
                    if let Some(task) = lock(&sessions).remove(&cancel.job_id) {
                        task.abort();
                        warn!(job = %cancel.job_id, reason = %cancel.reason, "session cancelled by the coordinator");
                    }
                    self.release_budget(&cancel.job_id);
                }
                FromCoordinator::FetchTranscript(request) => {
                    tokio::spawn(Arc::clone(self).serve_transcript(control.clone(), request));
                }
                FromCoordinator::Challenge(_) | FromCoordinator::Welcome(_) => {}
            }
        };
        // Sessions ride this connection: without it they cannot finish. What
        // they had not committed never left this node, so its budget returns.
        let ended: Vec<(String, JoinHandle<()>)> = lock(&sessions).drain().collect();
        for (job_id, task) in ended {
            task.abort();
            let _ = task.await;
            self.release_budget(&job_id);
        }
        for job_id in accepted.into_keys() {
            self.release_budget(&job_id);
        }
        result
    }

    /// Runs one accepted session and reports its outcome on the control stream.
    async fn session(
        self: Arc<Self>,
        client: GatewayClient,
        control: mpsc::Sender<NodeMessage>,
        offer: JobOffer,
        accepted: Accepted,
        start: StartSession,
    ) {
        let job_id = offer.job_id.clone();
        let session_id = start.session_id.clone();
        info!(node = %self.config.name, job = %job_id, role = ?accepted.role, dataset = %accepted.dataset, "session starting");
        let began = std::time::Instant::now();
        let mut transcript = None;
        let outcome = match self.run_session(client, &control, &offer, &accepted, start).await {
            Ok((finished, selection)) => {
                let exact_count = match &finished.outcome {
                    Outcome::Overlap(o) => Some(o.intersection),
                    Outcome::Activation(a) => Some(a.members.len() as u64),
                    _ => None,
                };
                match self.release(&offer.job_id, &accepted, finished.outcome, &selection) {
                    Ok(outcome) => {
                        let closing = Closing {
                            policy_checks: accepted.checks.clone(),
                            report: SessionReport {
                                job_id: job_id.clone(),
                                outcome: Some(outcome.clone()),
                                transcript: None,
                            }
                            .encode_to_vec(),
                            exact_count,
                            epsilon: accepted.noise.charge.epsilon,
                        };
                        match finished.link.close(closing, finished.attestations).await {
                            Ok(written) => {
                                info!(node = %self.config.name, job = %job_id, seconds = began.elapsed().as_secs_f64(), transcript = %written.path.display(), "session finished");
                                transcript = Some(TranscriptIndex {
                                    session_id,
                                    shared_sha256: written.shared_sha256.to_vec(),
                                    shared_bytes: written.shared_bytes,
                                    summary_sha256: written.summary_sha256.to_vec(),
                                });
                                outcome
                            }
                            // The budget stays committed: the result may already be
                            // known to the peer's side of the release.
                            Err(failure) => self.failed(&job_id, &failure.to_string(), false),
                        }
                    }
                    Err(message) => self.failed(&job_id, &message, true),
                }
            }
            Err(SessionFailure::Local(message) | SessionFailure::Remote(message)) => {
                self.failed(&job_id, &message, true)
            }
        };
        let _ = control
            .send(NodeMessage {
                body: Some(ToCoordinator::Report(SessionReport {
                    job_id,
                    outcome: Some(outcome),
                    transcript,
                })),
            })
            .await;
    }

    fn failed(&self, job_id: &str, message: &str, release_budget: bool) -> ReportOutcome {
        warn!(node = %self.config.name, job = %job_id, error = %message, "session failed");
        if release_budget {
            self.release_budget(job_id);
        }
        ReportOutcome::Error(format!("node '{}': {message}", self.config.name))
    }

    /// Serves an auditor's fetch: the shared copy of a job's transcript, in
    /// parts on the control stream.
    async fn serve_transcript(
        self: Arc<Self>,
        control: mpsc::Sender<NodeMessage>,
        request: TranscriptRequest,
    ) {
        let part = |data: Vec<u8>, last: bool, error: String| NodeMessage {
            body: Some(ToCoordinator::Transcript(TranscriptPart {
                request_id: request.request_id,
                data,
                last,
                error,
            })),
        };
        if let Err(e) = transcripts::check_job_id(&request.job_id) {
            let _ = control.send(part(Vec::new(), true, e)).await;
            return;
        }
        let path = transcripts::shared_path(&self.config.data_dir, &request.job_id);
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) => {
                let error = format!(
                    "node '{}' has no transcript of job {} ({e})",
                    self.config.name, request.job_id
                );
                let _ = control.send(part(Vec::new(), true, error)).await;
                return;
            }
        };
        use tokio::io::AsyncReadExt;
        let mut reader = tokio::io::BufReader::new(file);
        loop {
            let mut data = Vec::with_capacity(TRANSCRIPT_PART);
            match (&mut reader)
                .take(TRANSCRIPT_PART as u64)
                .read_to_end(&mut data)
                .await
            {
                Ok(n) => {
                    let last = n < TRANSCRIPT_PART;
                    if control.send(part(data, last, String::new())).await.is_err() || last {
                        return;
                    }
                }
                Err(e) => {
                    let error = format!("node '{}' cannot read {}: {e}", self.config.name, path.display());
                    let _ = control.send(part(Vec::new(), true, error)).await;
                    return;
                }
            }
        }
    }

    /// Turns a finished protocol into what this node releases: the receiver's
    /// count with its own noise share added and its threshold applied, the
    /// sender's noise shares, or a breakdown's decryption shares. The budget
    /// is committed first, so nothing noise-bearing leaves the node
    /// unrecorded. An activation's members are written only after that.
    fn release(
        &self,
        job_id: &str,
        accepted: &Accepted,
        outcome: Outcome,
        selection: &Selection,
    ) -> Result<ReportOutcome, String> {
        let plan = &accepted.noise;
        let mut members = None;
        let report = match outcome {
            Outcome::Overlap(o) => self.released_count(accepted, o.intersection),
            Outcome::Activation(a) => {
                if let Work::Segment {
                    activation: Activation::Receive { min_activation },
                    ..
                } = accepted.work
                    && (a.members.len() as u64) < min_activation
                {
                    return Err(format!(
                        "the segment has fewer members than this node's policy.min_activation = {min_activation}; no members were written"
                    ));
                }
                let report = self.released_count(accepted, a.members.len() as u64);
                members = Some(a.members);
                report
            }
            Outcome::Breakdown(lanes) => ReportOutcome::Breakdown(BreakdownRelease {
                // The bank's own count: only its share of noise is on it, and
                // that share alone gives the job's epsilon.
                conversions: selection.conversions.map(|n| {
                    i64::try_from(n)
                        .unwrap_or(i64::MAX)
                        .saturating_add(plan.shares().last().copied().unwrap_or(0))
                }),
                lanes: lanes
                    .into_iter()
                    .map(|l| LaneRelease {
                        lane: l.lane,
                        cells: l.cells as u32,
                        slots: l.slots as u32,
                        ciphertexts: l.ciphertexts,
                        decryption_shares: l.decryption_shares,
                    })
                    .collect(),
            }),
            _ => ReportOutcome::Completed(Completed {
                noise_shares: if plan.exact {
                    Vec::new()
                } else {
                    plan.shares().to_vec()
                },
            }),
        };
        match self.ledger.commit(&plan.charge.job_id) {
            Ok(true) => {}
            Ok(false) => {
                return Err("its budget reservation for this job is gone; nothing was released".into());
            }
            Err(e) => return Err(format!("cannot commit its budget, so nothing was released: {e}")),
        }
        if let Some(members) = members {
            let dataset = &self.datasets[&accepted.dataset];
            let path = crate::members::write(&self.config.data_dir, job_id, dataset, selection, &members)?;
            info!(node = %self.config.name, job = %job_id, members = members.len(), file = %path.display(), "segment members written");
        }
        Ok(report)
    }

    /// The receiver's count with its noise share, thresholded here as well
    /// as at the coordinator: this node alone knows its partial sum, and a
    /// coordinator cannot skip the check.
    fn released_count(&self, accepted: &Accepted, count: u64) -> ReportOutcome {
        let plan = &accepted.noise;
        let noised = i64::try_from(count)
            .unwrap_or(i64::MAX)
            .saturating_add(plan.shares().first().copied().unwrap_or(0));
        let below = noised < i64::try_from(plan.min_aggregation).unwrap_or(i64::MAX);
        ReportOutcome::Result(QueryResult {
            result: Some(query_result::Result::Overlap(OverlapResult {
                intersection: Some(ReleasedCount {
                    value: if below { 0 } else { noised },
                    below_threshold: below,
                }),
            })),
            release: None,
        })
    }

    async fn run_session(
        self: &Arc<Self>,
        mut client: GatewayClient,
        control: &mpsc::Sender<NodeMessage>,
        offer: &JobOffer,
        accepted: &Accepted,
        start: StartSession,
    ) -> Result<(Finished, Selection), SessionFailure> {
        let limits = Limits {
            chunk_points: self.config.limits.chunk_points,
            max_chunk_points: jointly_protocol::overlap::MAX_CHUNK_POINTS,
            max_peer_set: self.config.limits.max_peer_set_size,
        };
        let (node, plan) = (Arc::clone(self), accepted.clone());
        let (party, selection) =
            tokio::task::spawn_blocking(move || work::build(node.holdings(), &plan, limits))
                .await
                .map_err(|e| SessionFailure::Local(format!("internal error: {e}")))?
                .map_err(SessionFailure::Local)?;

        let transcript = self.transcript(offer, accepted, &start)?;
        let (out, frames) = mpsc::channel::<SessionFrame>(OUTBOUND_FRAMES);
        let join = SessionFrame {
            body: Some(session_frame::Body::Join(Join {
                session_id: start.session_id,
                token: start.token,
            })),
        };
        out.send(join)
            .await
            .map_err(|_| SessionFailure::Local("internal error: session channel closed".into()))?;
        let inbound = client
            .session(ReceiverStream::new(frames))
            .await
            .map_err(|s| {
                SessionFailure::Remote(format!(
                    "the coordinator refused the session stream: {}",
                    s.message()
                ))
            })?
            .into_inner();
        let job_id = offer.job_id.clone();
        let control = control.clone();
        drive(
            party,
            transcript,
            out,
            inbound,
            Duration::from_millis(500),
            move |p| {
                // Progress is advisory: drop it rather than wait when the control
                // stream is busy.
                let _ = control.try_send(NodeMessage {
                    body: Some(ToCoordinator::Progress(SessionProgress {
                        job_id: job_id.clone(),
                        done: p.done,
                        total: p.total,
                    })),
                });
            },
        )
        .await
        .map(|finished| (finished, selection))
    }

    /// The session's transcript recorder and files. The peer's key is the one
    /// the coordinator's registry holds, unless this node pins its own.
    fn transcript(
        &self,
        offer: &JobOffer,
        accepted: &Accepted,
        start: &StartSession,
    ) -> Result<Transcript, SessionFailure> {
        let local = SessionFailure::Local;
        let peer_key = <[u8; 32]>::try_from(start.peer_key.as_slice())
            .ok()
            .and_then(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).ok())
            .ok_or_else(|| {
                local(format!(
                    "the coordinator gave no valid identity key for peer '{}'",
                    offer.peer_node
                ))
            })?;
        if let Some(pinned) = self.config.policy.partner_keys.get(&offer.peer_node)
            && pinned.as_slice() != peer_key.as_bytes()
        {
            return Err(local(format!(
                "the coordinator's key for peer '{}' differs from the one pinned in policy.partner_keys; refusing the session",
                offer.peer_node
            )));
        }
        let info = SessionInfo {
            job_id: offer.job_id.clone(),
            session_id: start.session_id.clone(),
            node: self.config.name.clone(),
            peer: offer.peer_node.clone(),
            seat: if accepted.role == Role::Receiver {
                Seat::Receiver
            } else {
                Seat::Sender
            },
            spec: offer.spec.clone().unwrap_or_default(),
            terms: accepted.terms,
        };
        let files = TranscriptFiles::create(&self.config.data_dir, &offer.job_id).map_err(local)?;
        Ok(Transcript {
            recorder: Recorder::new(info, self.identity.signing_key(), peer_key),
            files,
        })
    }
}

/// Bytes per transcript part sent to the coordinator: well inside the
/// transport's frame limit (`MAX_FRAME_BYTES`) with the message around it.
const TRANSCRIPT_PART: usize = 512 << 10;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves a plain map behind; keep going.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
