//! The node's life: load datasets, attach to the coordinator (dialling out, so
//! the node needs no inbound port), prove its identity, answer job offers by
//! its own policy, and run the sessions it accepted. Reconnects when the
//! coordinator goes away.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use jointly_protocol::{
    ProtocolError,
    ids::normalize::Normalizer,
    session::outcome::Outcome,
    session::stream::Limits,
    transcript::{Recorder, Seat, SessionInfo},
    wire::{
        ColumnInfo, DatasetInfo, Hello, JobDecision, JobOffer, Join, NodeMessage, Proof, Role, SessionFrame,
        SessionProgress, SessionReport, StartSession, TranscriptIndex,
        coordinator_message::Body as FromCoordinator, node_message::Body as ToCoordinator, session_frame,
        session_report::Outcome as ReportOutcome,
    },
};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{info, warn};

use crate::{
    config::{ColumnUse, NodeConfig},
    dataset::{self, LoadedDataset, round_count},
    decision::{Accepted, Holdings, decide},
    error::NodeError,
    events::LoadedEvents,
    identity::{Identity, attach_message},
    ledger::{self, Ledger},
    refusal::Refusal,
    session::{Closing, Finished, OUTBOUND_FRAMES, SessionFailure, Transcript, drive},
    slots::Slots,
    transcripts::TranscriptFiles,
    transport::{GatewayClient, connect},
    work::{self, BuildError, Selection},
};

/// A node with its datasets loaded, ready to attach.
pub struct Node {
    pub(crate) config: NodeConfig,
    identity: Identity,
    pub(crate) datasets: BTreeMap<String, LoadedDataset>,
    events: BTreeMap<String, LoadedEvents>,
    pub(crate) ledger: Ledger,
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
        if config.test_deployment {
            warn!(
                node = %config.name,
                "test deployment (test_deployment = true): partners' keys need not be pinned, so the coordinator's registry is trusted for them; never load real customers' data like this"
            );
        }
        let normalizer = Normalizer::new(&config.default_country).map_err(|e| NodeError::ConfigInvalid {
            path: "default_country".into(),
            problem: crate::error::ConfigError::DefaultCountry(e.to_string()),
        })?;
        crate::dirs::private_dir(&config.data_dir).map_err(|e| NodeError::DataDir {
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

    /// Decides an offer by policy and, when accepting, reserves its budget
    /// and records the planner's signed request (a replay gets no second
    /// job). Blocking: noise is drawn and the ledger written.
    fn answer(&self, offer: &JobOffer, running: usize) -> Result<Accepted, Refusal> {
        let node = &self.config.name;
        let accepted = decide(
            node,
            &self.config.policy,
            &self.config.limits,
            offer,
            self.holdings(),
            running,
        )?;
        let r = &accepted.requester;
        match self.ledger.record_request(&r.principal, &r.nonce, &offer.job_id) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Refusal::ReplayedRequest {
                    node: node.clone(),
                    planner: r.principal.clone(),
                });
            }
            Err(reason) => {
                return Err(Refusal::CannotRecordRequest {
                    node: node.clone(),
                    reason: Box::new(reason),
                });
            }
        }
        let plan = &accepted.noise;
        match self.ledger.reserve(&plan.charges, &plan.budgets_micro) {
            Ok(Ok(())) => Ok(accepted),
            Ok(Err(ledger::ReserveDenied::OverBudget {
                dataset, spent_micro, ..
            })) => Err(plan.over_budget(node, &dataset, spent_micro)),
            Ok(Err(ledger::ReserveDenied::Duplicate)) => Err(Refusal::DuplicateJob {
                node: node.clone(),
                job_id: offer.job_id.clone(),
            }),
            Err(reason) => Err(Refusal::CannotReserve {
                node: node.clone(),
                reason: Box::new(reason),
            }),
        }
    }

    /// Gives back what a job that ended had not spent (see
    /// [`Ledger::release`]; a no-op once committed).
    fn release_budget(&self, job_id: &str) {
        match self.ledger.release(job_id) {
            Ok(true) => info!(node = %self.config.name, job = %job_id, "unspent budget given back"),
            Ok(false) => {}
            Err(e) => {
                warn!(node = %self.config.name, job = %job_id, error = %e, "could not give back a budget reservation; it stays counted as spent")
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

        let slots: Arc<Mutex<Slots>> = Arc::default();
        let limits = &self.config.limits;
        let offer_age = Duration::from_secs(limits.offer_start_seconds.max(1));
        let mut sweep = tokio::time::interval(Duration::from_secs(1).min(offer_age));
        let result = loop {
            let message = tokio::select! {
                () = shutdown.as_mut() => break Ok(Detach::Shutdown),
                _ = sweep.tick() => {
                    // A start or cancel that never came: the slot and the
                    // reservation would otherwise be held for ever.
                    for job_id in lock(&slots).expire(offer_age) {
                        warn!(node = %self.config.name, job = %job_id, "accepted job never started (limits.offer_start_seconds); dropped");
                        self.release_budget(&job_id);
                    }
                    continue;
                }
                m = inbound.message() => match next(m) {
                    Ok(m) => m,
                    Err(e) => break Err(e),
                },
            };
            match message {
                FromCoordinator::Offer(offer) => {
                    let running = {
                        let mut s = lock(&slots);
                        let running = s.busy();
                        if !s.decide(&offer.job_id) {
                            warn!(job = %offer.job_id, "an offer for a job this node already has; ignored");
                            continue;
                        }
                        running
                    };
                    // Deciding draws noise and writes the ledger: off the
                    // control loop, which keeps answering meanwhile.
                    let (node, slots, control) = (Arc::clone(self), Arc::clone(&slots), control.clone());
                    tokio::spawn(async move {
                        let job_id = offer.job_id.clone();
                        let decided = {
                            let node = Arc::clone(&node);
                            let offer = offer.clone();
                            tokio::task::spawn_blocking(move || node.answer(&offer, running))
                                .await
                                .unwrap_or_else(|e| {
                                    Err(Refusal::Internal {
                                        reason: e.to_string(),
                                    })
                                })
                        };
                        let (accept, reason, terms) = match &decided {
                            Ok(a) => (true, String::new(), Some(a.noise.terms(&node.config.name))),
                            Err(refusal) => (false, refusal.to_string(), None),
                        };
                        info!(node = %node.config.name, job = %job_id, accept, reason = %reason, "job offer");
                        if let Ok(a) = decided
                            && !lock(&slots).decided(&job_id, Some((offer, a)))
                        {
                            // Cancelled while it was being decided.
                            node.release_budget(&job_id);
                            return;
                        }
                        if !accept {
                            lock(&slots).decided(&job_id, None);
                        }
                        let _ = control
                            .send(NodeMessage {
                                body: Some(ToCoordinator::Decision(JobDecision {
                                    job_id,
                                    accept,
                                    reason,
                                    terms,
                                })),
                            })
                            .await;
                    });
                }
                FromCoordinator::Start(start) => {
                    let pending = lock(&slots).start(&start.job_id);
                    let Some(pending) = pending else {
                        warn!(job = %start.job_id, "start for a job this node did not accept (or dropped); ignored");
                        continue;
                    };
                    let job_id = start.job_id.clone();
                    let task = tokio::spawn(Arc::clone(self).session(
                        client.clone(),
                        control.clone(),
                        pending.offer,
                        pending.accepted,
                        start,
                    ));
                    lock(&slots).running(&job_id, task);
                }
                FromCoordinator::Cancel(cancel) => {
                    let task = lock(&slots).cancel(&cancel.job_id);
                    if let Some(task) = task {
                        task.abort();
                        let _ = task.await;
                        warn!(job = %cancel.job_id, reason = %cancel.reason, "session cancelled by the coordinator");
                    }
                    self.release_budget(&cancel.job_id);
                }
                FromCoordinator::FetchTranscript(request) => {
                    let (client, node, dir) = (
                        client.clone(),
                        self.config.name.clone(),
                        self.config.data_dir.clone(),
                    );
                    tokio::spawn(async move { crate::uploads::serve(client, node, &dir, request).await });
                }
                FromCoordinator::Challenge(_) | FromCoordinator::Welcome(_) => {}
            }
        };
        // Sessions ride this connection: without it they cannot finish. What
        // they had not spent goes back to the budget.
        let (sessions, accepted) = lock(&slots).drain();
        for (job_id, task) in sessions {
            task.abort();
            let _ = task.await;
            self.release_budget(&job_id);
        }
        for job_id in accepted {
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
                            epsilon: accepted.noise.charged_epsilon(),
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
                    Err(not_released) => {
                        let (message, give_back) = not_released.into_failure();
                        self.failed(&job_id, &message, give_back)
                    }
                }
            }
            Err(SessionFailure::Local(message)) if message.ends_with(&BELOW_MIN_ACTIVATION.to_string()) => {
                // This node's own decision on a noised count, drawn with its
                // release share: what it tells is spent.
                if let Err(e) = self.commit_budget(&job_id) {
                    warn!(node = %self.config.name, job = %job_id, error = %e, "could not commit the budget of a refused activation");
                }
                self.failed(&job_id, &message, false)
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
            max_chunk_points: jointly_protocol::session::stream::MAX_CHUNK_POINTS,
            max_peer_set: self.config.limits.max_peer_set_size,
            min_peer_set: accepted.noise.min_set_size,
        };
        let (node, plan) = (Arc::clone(self), accepted.clone());
        let built = tokio::task::spawn_blocking(move || work::build(node.holdings(), &plan, limits))
            .await
            .map_err(|e| SessionFailure::Local(format!("internal error: {e}")))?;
        let (party, selection) = match built {
            Ok(b) => b,
            Err(BuildError::TooSmall(message)) => {
                // The refusal follows from the noised size: the peer-view
                // part of the charge is spent, as if the list had gone out.
                let _ = self.ledger.start(&offer.job_id);
                return Err(SessionFailure::Local(message));
            }
            Err(other) => return Err(SessionFailure::Local(other.to_string())),
        };
        // From the first message on, the cover on this node's lists is out.
        match self.ledger.start(&offer.job_id) {
            Ok(true) => {}
            Ok(false) => {
                return Err(SessionFailure::Local(
                    "its budget reservation for this job is gone (expired or cancelled); nothing was sent"
                        .into(),
                ));
            }
            Err(e) => return Err(SessionFailure::Local(format!("cannot record its budget: {e}"))),
        }

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
            Duration::from_secs(self.config.limits.session_idle_seconds.max(1)),
            move |p| {
                // A fraction only: counts of points would give list sizes.
                let permille = (p.done.saturating_mul(1000) / p.total.max(1)).min(1000) as u32;
                // Progress is advisory: drop it rather than wait when the control
                // stream is busy.
                let _ = control.try_send(NodeMessage {
                    body: Some(ToCoordinator::Progress(SessionProgress {
                        job_id: job_id.clone(),
                        permille,
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
            requester: Some(accepted.requester.clone()),
        };
        let files = TranscriptFiles::create(&self.config.data_dir, &offer.job_id)
            .map_err(|e| local(e.to_string()))?;
        Ok(Transcript {
            recorder: Recorder::new(info, self.identity.signing_key(), peer_key),
            files,
        })
    }
}

/// The protocol's refusal of a segment too small to activate.
const BELOW_MIN_ACTIVATION: ProtocolError = ProtocolError::BelowMinActivation;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves a plain map behind; keep going.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
