//! The planner API: validates queries against what nodes advertise, creates
//! jobs, and serves their status and results from the store.

use std::sync::Arc;

use jointly_protocol::{
    ids::normalize::{IdKind, match_kind},
    privacy::accounting::check_epsilon,
    queries::breakdown_plan::Side,
    wire,
    wire::{
        AddPrincipalRequest, CancelJobRequest, CoordinatorMessage, DatasetInfo, DatasetRef, DatasetSummary,
        FetchTranscriptRequest, GetJobRequest, IssuedCredential, Job, ListJobsRequest, ListJobsResponse,
        ListNodesRequest, ListNodesResponse, ListPrincipalsRequest, ListPrincipalsResponse, NodeStatus,
        QuerySpec, Requester, RevokePrincipalRequest, SubmitQueryRequest, TranscriptChunk, TranscriptRequest,
        WhoAmIRequest, coordinator_message, planner_server::Planner, query_spec::Query,
    },
};
use prost::Message;
use tonic::{Request, Response, Status};
use tracing::info;

use crate::{
    attributions::{plan_attribution, plan_lift},
    auth::{Caller, authenticate, method},
    breakdowns::{check_filters, plan as plan_breakdown},
    credential::Credential,
    error::{CoordinatorError, Holding, PlanError},
    jobs::{self, JobKind, Parties, PartyRef},
    registry::{self, ALL_WORKSPACES, NewPrincipal, Role},
    state::Coordinator,
    store::{Owner, Workspaces, now_ms},
};

pub struct PlannerApi {
    coord: Arc<Coordinator>,
}

impl PlannerApi {
    pub fn new(coord: Arc<Coordinator>) -> Self {
        Self { coord }
    }

    /// Resolves `node/dataset` to the party and its identifier kind, or says
    /// what is wrong with it.
    fn resolve(
        &self,
        side: &'static str,
        r: Option<&DatasetRef>,
    ) -> Result<(PartyRef, IdKind), CoordinatorError> {
        let r = r.ok_or(PlanError::NoDataset { side })?;
        let registry = &self.coord.config.nodes;
        if !registry.iter().any(|n| n.name == r.node) {
            return Err(CoordinatorError::UnknownNode {
                node: r.node.clone(),
                known: registry
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let datasets = self
            .coord
            .node_datasets(&r.node)
            .ok_or_else(|| CoordinatorError::NodeOffline { node: r.node.clone() })?;
        let d = datasets.iter().find(|d| d.name == r.dataset).ok_or_else(|| {
            CoordinatorError::UnknownDataset {
                node: r.node.clone(),
                dataset: r.dataset.clone(),
                known: datasets
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })?;
        let kind = d
            .id_kind
            .parse::<IdKind>()
            .map_err(|_| PlanError::UnknownIdKind { node: r.node.clone() })?;
        let party = PartyRef {
            node: r.node.clone(),
            dataset: r.dataset.clone(),
            id_kind: kind.label().to_string(),
        };
        Ok((party, kind))
    }

    fn dataset_info(&self, node: &str, dataset: &str) -> Result<DatasetInfo, CoordinatorError> {
        self.coord
            .node_datasets(node)
            .and_then(|ds| ds.into_iter().find(|d| d.name == dataset))
            .ok_or_else(|| CoordinatorError::NodeOffline {
                node: node.to_string(),
            })
    }

    fn parties(&self, spec: &QuerySpec) -> Result<Parties, CoordinatorError> {
        let (left, right) = match &spec.query {
            Some(Query::Overlap(q)) => (q.left.as_ref(), q.right.as_ref()),
            Some(Query::Segment(q)) => (q.left.as_ref(), q.right.as_ref()),
            Some(Query::Breakdown(q)) => (q.left.as_ref(), q.right.as_ref()),
            // Receiver first, as the job runs.
            Some(Query::Attribution(q)) => (q.conversions.as_ref(), q.exposures.as_ref()),
            Some(Query::Lift(q)) => (q.groups.as_ref(), q.customers.as_ref()),
            None => return Err(PlanError::NoQueryKind.into()),
        };
        // The nodes judge the terms against their policies; this only turns
        // away what no policy could accept.
        match spec.privacy {
            None => return Err(PlanError::NoPrivacyTerms.into()),
            Some(p) if !p.exact => {
                check_epsilon(p.epsilon).map_err(PlanError::from)?;
            }
            Some(_) => {}
        }
        let (l, left_kind) = self.resolve("left", left)?;
        let (r, right_kind) = self.resolve("right", right)?;
        if l.node == r.node {
            return Err(PlanError::OneNode { node: l.node }.into());
        }
        if match_kind(left_kind, right_kind).is_none() {
            return Err(PlanError::KindsCannotMatch {
                left: Box::new(Holding {
                    node: l.node,
                    dataset: l.dataset,
                    kind: left_kind.to_string(),
                }),
                right: Box::new(Holding {
                    node: r.node,
                    dataset: r.dataset,
                    kind: right_kind.to_string(),
                }),
            }
            .into());
        }
        let schema = |p: &PartyRef| self.dataset_info(&p.node, &p.dataset);
        let (receiver, sender, kind) = match &spec.query {
            Some(Query::Segment(q)) => {
                check_filters(&schema(&l)?, &q.left_filters, Side::Left)?;
                check_filters(&schema(&r)?, &q.right_filters, Side::Right)?;
                let activated = (!q.activate.is_empty()).then(|| q.activate.clone());
                match activated.as_deref() {
                    // The node that receives the members must be the receiver.
                    Some(a) if a == r.node => (r, l, JobKind::Segment { activated }),
                    Some(a) if a != l.node => {
                        return Err(PlanError::ActivateNeither {
                            named: a.to_string(),
                            left: l.node,
                            right: r.node,
                        }
                        .into());
                    }
                    _ => (l, r, JobKind::Segment { activated }),
                }
            }
            Some(Query::Breakdown(q)) => {
                let job = plan_breakdown(q, &schema(&l)?, &schema(&r)?)?;
                match job.plan.first_receiver() {
                    Side::Left => (l, r, JobKind::Breakdown(Box::new(job))),
                    Side::Right => (r, l, JobKind::Breakdown(Box::new(job))),
                }
            }
            Some(Query::Attribution(q)) => {
                let job = plan_attribution(q, (&l.node, &schema(&l)?), (&r.node, &schema(&r)?))?;
                (l, r, JobKind::Attribution(Box::new(job)))
            }
            Some(Query::Lift(q)) => {
                let conversions = self
                    .coord
                    .node_datasets(&r.node)
                    .and_then(|ds| ds.into_iter().find(|d| d.name == q.conversions));
                if let Some(c) = &conversions {
                    let kind = c.id_kind.parse::<IdKind>().ok();
                    if kind.and_then(|k| match_kind(k, left_kind)).is_none() {
                        return Err(PlanError::KindsCannotMatch {
                            left: Box::new(Holding {
                                node: r.node,
                                dataset: c.name.clone(),
                                kind: c.id_kind.clone(),
                            }),
                            right: Box::new(Holding {
                                node: l.node,
                                dataset: l.dataset,
                                kind: left_kind.to_string(),
                            }),
                        }
                        .into());
                    }
                }
                let job = plan_lift(
                    q,
                    (&r.node, &schema(&r)?),
                    conversions.as_ref(),
                    (&l.node, &schema(&l)?),
                )?;
                (l, r, JobKind::Lift(Box::new(job)))
            }
            _ => (l, r, JobKind::Overlap),
        };
        Ok(Parties {
            receiver,
            sender,
            kind,
        })
    }
}

impl PlannerApi {
    /// The job, if the caller may read it.
    async fn readable_job(&self, caller: &Caller, job_id: &str) -> Result<Job, Status> {
        let job = self.coord.store.get(job_id).await?;
        if !caller.can_read(&job.workspace) {
            return Err(Status::permission_denied(format!(
                "job {job_id} is not in the workspaces of '{}' ({}); ask the operator to add her to its workspace",
                caller.principal.name,
                caller.principal.workspaces.join(", ")
            )));
        }
        Ok(job)
    }

    /// The workspace a submission goes to: the one named, which must be
    /// hers, or her only one.
    fn workspace_of(caller: &Caller, asked: &str) -> Result<String, Status> {
        let p = &caller.principal;
        if asked.is_empty() {
            return match p.workspaces.as_slice() {
                [only] if only != ALL_WORKSPACES => Ok(only.clone()),
                _ => Err(Status::invalid_argument(format!(
                    "'{}' belongs to several workspaces ({}): name one with --workspace",
                    p.name,
                    p.workspaces.join(", ")
                ))),
            };
        }
        if asked == ALL_WORKSPACES || !p.in_workspace(asked) {
            return Err(Status::permission_denied(format!(
                "'{}' is not a member of workspace '{asked}' (hers: {}); ask the operator to add her",
                p.name,
                p.workspaces.join(", ")
            )));
        }
        Ok(asked.to_string())
    }
}

/// What the nodes get of the request that created a job: enough to check
/// the planner's signature themselves and to record who asked.
fn requester(
    coord: &Coordinator,
    caller: &Caller,
    workspace: &str,
    request: &SubmitQueryRequest,
) -> Requester {
    let p = &caller.principal;
    Requester {
        principal: p.name.clone(),
        organisation: p.organisation.clone(),
        role: p.role.as_str().to_string(),
        workspace: workspace.to_string(),
        public_key: p.public_key.to_vec(),
        request: request.encode_to_vec(),
        timestamp_ms: caller.timestamp_ms,
        nonce: caller.nonce.clone(),
        signature: caller.signature.clone(),
        coordinator_id: coord.config.id.clone(),
    }
}

#[tonic::async_trait]
impl Planner for PlannerApi {
    async fn submit_query(&self, request: Request<SubmitQueryRequest>) -> Result<Response<Job>, Status> {
        let caller = authenticate(&self.coord, &request, method::SUBMIT_QUERY).await?;
        caller.require(&[Role::Planner], "submitting a query")?;
        let submitted = request.into_inner();
        let workspace = Self::workspace_of(&caller, &submitted.workspace)?;
        let spec = submitted.spec.clone().unwrap_or_default();
        let parties = self.parties(&spec)?;
        let job_id = jobs::new_id("job");
        let owner = Owner {
            principal: caller.principal.name.clone(),
            organisation: caller.principal.organisation.clone(),
            workspace: workspace.clone(),
        };
        // Persisted before anything runs: a crash from here on leaves a record.
        let job = self.coord.store.insert(&job_id, &spec, &owner).await?;
        info!(job = %job_id, planner = %owner.principal, workspace = %owner.workspace, receiver = %parties.receiver.node, sender = %parties.sender.node, "job submitted");
        let requester = requester(&self.coord, &caller, &workspace, &submitted);
        jobs::spawn(Arc::clone(&self.coord), job_id, spec, parties, requester);
        Ok(Response::new(job))
    }

    async fn get_job(&self, request: Request<GetJobRequest>) -> Result<Response<Job>, Status> {
        let caller = authenticate(&self.coord, &request, method::GET_JOB).await?;
        let job = self.readable_job(&caller, &request.get_ref().job_id).await?;
        Ok(Response::new(job))
    }

    async fn list_jobs(
        &self,
        request: Request<ListJobsRequest>,
    ) -> Result<Response<ListJobsResponse>, Status> {
        let caller = authenticate(&self.coord, &request, method::LIST_JOBS).await?;
        let limit = match request.into_inner().limit {
            0 => 50,
            n => n.min(1000),
        };
        let workspaces = if caller.principal.all_workspaces() {
            Workspaces::All
        } else {
            Workspaces::Only(caller.principal.workspaces.clone())
        };
        let jobs = self.coord.store.list(limit, workspaces).await?;
        Ok(Response::new(ListJobsResponse { jobs }))
    }

    async fn list_nodes(
        &self,
        request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        authenticate(&self.coord, &request, method::LIST_NODES).await?;
        let nodes = self
            .coord
            .config
            .nodes
            .iter()
            .map(|n| {
                let datasets = self.coord.node_datasets(&n.name);
                NodeStatus {
                    name: n.name.clone(),
                    attached: datasets.is_some(),
                    datasets: datasets
                        .unwrap_or_default()
                        .into_iter()
                        .map(|d| DatasetSummary {
                            name: d.name,
                            id_kind: d.id_kind,
                            rows_rounded: d.rows_rounded,
                            kind: d.kind,
                            channels: d.channels,
                            campaigns: d.campaigns,
                        })
                        .collect(),
                }
            })
            .collect();
        Ok(Response::new(ListNodesResponse { nodes }))
    }

    async fn cancel_job(&self, request: Request<CancelJobRequest>) -> Result<Response<Job>, Status> {
        let caller = authenticate(&self.coord, &request, method::CANCEL_JOB).await?;
        caller.require(&[Role::Planner, Role::Operator], "cancelling a job")?;
        let job_id = request.into_inner().job_id;
        let job = self.readable_job(&caller, &job_id).await?;
        let name = &caller.principal.name;
        if caller.principal.role == Role::Planner && &job.owner != name {
            return Err(Status::permission_denied(format!(
                "job {job_id} was submitted by '{}'; a planner cancels only her own jobs (an operator may cancel any)",
                job.owner
            )));
        }
        let reason = format!("cancelled by {} '{name}'", caller.principal.role);
        if !self.coord.cancel_job(&job_id, &reason).await? {
            return Err(Status::failed_precondition(format!(
                "job {job_id} has already finished; there is nothing to cancel"
            )));
        }
        info!(job = %job_id, by = %name, "job cancelled");
        Ok(Response::new(self.coord.store.get(&job_id).await?))
    }

    async fn who_am_i(&self, request: Request<WhoAmIRequest>) -> Result<Response<wire::Principal>, Status> {
        let caller = authenticate(&self.coord, &request, method::WHO_AM_I).await?;
        Ok(Response::new(caller.principal.to_wire()))
    }

    async fn list_principals(
        &self,
        request: Request<ListPrincipalsRequest>,
    ) -> Result<Response<ListPrincipalsResponse>, Status> {
        let caller = authenticate(&self.coord, &request, method::LIST_PRINCIPALS).await?;
        caller.require(&[Role::Operator], "reading the registry")?;
        let principals = self.coord.store.registry(registry::list).await?;
        Ok(Response::new(ListPrincipalsResponse {
            principals: principals.iter().map(registry::Principal::to_wire).collect(),
        }))
    }

    async fn add_principal(
        &self,
        request: Request<AddPrincipalRequest>,
    ) -> Result<Response<IssuedCredential>, Status> {
        let caller = authenticate(&self.coord, &request, method::ADD_PRINCIPAL).await?;
        caller.require(&[Role::Operator], "changing the registry")?;
        let r = request.into_inner();
        let role = registry::Role::from_wire(r.role)
            .ok_or_else(|| Status::invalid_argument("give a role: planner, auditor or operator"))?;
        let new = NewPrincipal {
            name: r.name,
            organisation: r.organisation,
            role,
            workspaces: r.workspaces,
            valid_days: r.valid_days,
        };
        let rotate = r.rotate;
        let (principal, key) = self
            .coord
            .store
            .registry(move |c| registry::add(c, &new, rotate, now_ms()))
            .await?;
        info!(principal = %principal.name, role = %principal.role, by = %caller.principal.name, rotate, "credential issued");
        let credential = Credential {
            coordinator_id: self.coord.config.id.clone(),
            coordinator_url: None,
            principal: principal.name.clone(),
            key,
        };
        let text = credential.to_text(
            principal.role.as_str(),
            &principal.organisation,
            &format_ms(principal.expires_ms),
        );
        Ok(Response::new(IssuedCredential {
            principal: Some(principal.to_wire()),
            credential: text.to_string(),
        }))
    }

    async fn revoke_principal(
        &self,
        request: Request<RevokePrincipalRequest>,
    ) -> Result<Response<wire::Principal>, Status> {
        let caller = authenticate(&self.coord, &request, method::REVOKE_PRINCIPAL).await?;
        caller.require(&[Role::Operator], "changing the registry")?;
        let name = request.into_inner().name;
        let revoked = self
            .coord
            .store
            .registry(move |c| registry::revoke(c, &name, now_ms()))
            .await?;
        info!(principal = %revoked.name, by = %caller.principal.name, "credential revoked");
        Ok(Response::new(revoked.to_wire()))
    }

    type FetchTranscriptStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<TranscriptChunk, Status>> + Send>>;

    async fn fetch_transcript(
        &self,
        request: Request<FetchTranscriptRequest>,
    ) -> Result<Response<Self::FetchTranscriptStream>, Status> {
        let caller = authenticate(&self.coord, &request, method::FETCH_TRANSCRIPT).await?;
        caller.require(&[Role::Auditor], "fetching a transcript")?;
        let FetchTranscriptRequest { job_id, node } = request.into_inner();
        let job = self.readable_job(&caller, &job_id).await?;
        let node = if node.is_empty() {
            receiver_node(&job.spec.unwrap_or_default())
        } else {
            node
        };
        let entry = self.coord.store.transcript(&job_id, &node).await?.ok_or_else(|| {
            Status::not_found(format!(
                "no transcript of job {job_id} from node '{node}' is indexed (the job may not have finished, or the node is not part of it)"
            ))
        })?;
        let to_node = self.coord.node_channel(&node).ok_or_else(|| {
            Status::failed_precondition(format!(
                "node '{node}' keeps the transcript but is not attached; fetch again when it is"
            ))
        })?;
        let (request_id, token, mut parts) = self.coord.open_fetch(&node);
        let ask = CoordinatorMessage {
            body: Some(coordinator_message::Body::FetchTranscript(TranscriptRequest {
                request_id,
                job_id: job_id.clone(),
                token: token.to_vec(),
            })),
        };
        if to_node.send(Ok(ask)).await.is_err() {
            self.coord.close_fetch(request_id);
            return Err(Status::failed_precondition(format!("node '{node}' detached")));
        }
        info!(job = %job_id, node = %node, bytes = entry.shared_bytes, "transcript fetch");
        let coord = Arc::clone(&self.coord);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            use sha2::Digest;
            let mut sha = sha2::Sha256::new();
            let mut bytes = 0u64;
            let stall = std::time::Duration::from_secs(coord.config.timeouts.stall_seconds.max(1));
            let outcome = loop {
                let part = match tokio::time::timeout(stall, parts.recv()).await {
                    Ok(Some(p)) => p,
                    Ok(None) => break Err(Status::unavailable(format!("node '{node}' stopped sending"))),
                    Err(_) => {
                        break Err(Status::deadline_exceeded(format!(
                            "node '{node}' stalled while sending the transcript"
                        )));
                    }
                };
                if !part.error.is_empty() {
                    break Err(Status::not_found(part.error));
                }
                sha.update(&part.data);
                bytes += part.data.len() as u64;
                if bytes > entry.shared_bytes {
                    break Err(Status::data_loss(format!(
                        "node '{node}' sent more than the indexed transcript"
                    )));
                }
                // An auditor who stops reading loses the fetch after the stall
                // timeout; the node's upload stream then ends too.
                if !part.data.is_empty() {
                    match tokio::time::timeout(stall, tx.send(Ok(TranscriptChunk { data: part.data }))).await
                    {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) | Err(_) => break Ok(()),
                    }
                }
                if part.last {
                    let digest: [u8; 32] = sha.finalize().into();
                    break if digest.as_slice() == entry.shared_sha256.as_slice()
                        && bytes == entry.shared_bytes
                    {
                        Ok(())
                    } else {
                        Err(Status::data_loss(format!(
                            "the transcript node '{node}' sent differs from the one it indexed when the job ended"
                        )))
                    };
                }
            };
            coord.close_fetch(request_id);
            if let Err(status) = outcome {
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// A time as people read it in credentials and listings: UTC to the minute.
pub fn format_ms(ms: i64) -> String {
    let full = jointly_protocol::ids::timestamp::utc(ms.div_euclid(1000));
    format!("{} UTC", full.get(..16).unwrap_or(&full).replace('T', " "))
}

/// The node that received in a job's session, as `parties` chose it: the
/// node an auditor's fetch without a node name goes to.
pub fn receiver_node(spec: &QuerySpec) -> String {
    let node = |d: &Option<DatasetRef>| d.as_ref().map(|d| d.node.clone()).unwrap_or_default();
    match &spec.query {
        Some(Query::Overlap(q)) => node(&q.left),
        Some(Query::Segment(q)) => {
            // An activation's receiver is the node that gets the members.
            if !q.activate.is_empty() && q.activate == node(&q.right) {
                node(&q.right)
            } else {
                node(&q.left)
            }
        }
        Some(Query::Breakdown(q)) => {
            // Lane 0's receiver: the right side only when the left alone has
            // measures (breakdown_plan::BreakdownPlan::new).
            let has = |side: wire::Side| q.measures.iter().any(|m| m.side == side as i32);
            if has(wire::Side::Left) && !has(wire::Side::Right) {
                node(&q.right)
            } else {
                node(&q.left)
            }
        }
        Some(Query::Attribution(q)) => node(&q.conversions),
        Some(Query::Lift(q)) => node(&q.groups),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use jointly_protocol::wire::{BreakdownQuery, LiftQuery, Measure, SegmentQuery};

    use super::*;

    fn at(node: &str) -> Option<DatasetRef> {
        Some(DatasetRef {
            node: node.into(),
            dataset: "d".into(),
        })
    }

    fn spec(query: Query) -> QuerySpec {
        QuerySpec {
            query: Some(query),
            privacy: None,
        }
    }

    #[test]
    fn times_read_as_dates() {
        assert_eq!(format_ms(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_ms(1_796_256_000_000), "2026-12-03 00:00 UTC");
        assert_eq!(format_ms(951_782_400_000 + 61_000), "2000-02-29 00:01 UTC");
    }

    #[test]
    fn a_fetch_without_a_node_goes_to_the_receiver() {
        let lift = spec(Query::Lift(LiftQuery {
            customers: at("bank"),
            groups: at("partner"),
            ..Default::default()
        }));
        assert_eq!(receiver_node(&lift), "partner");
        let left_measures = spec(Query::Breakdown(BreakdownQuery {
            left: at("bank"),
            right: at("partner"),
            measures: vec![Measure {
                side: wire::Side::Left.into(),
                column: "balance".into(),
            }],
            ..Default::default()
        }));
        assert_eq!(receiver_node(&left_measures), "partner");
        let activated_right = spec(Query::Segment(SegmentQuery {
            left: at("bank"),
            right: at("partner"),
            activate: "partner".into(),
            ..Default::default()
        }));
        assert_eq!(receiver_node(&activated_right), "partner");
        let plain = spec(Query::Segment(SegmentQuery {
            left: at("bank"),
            right: at("partner"),
            ..Default::default()
        }));
        assert_eq!(receiver_node(&plain), "bank");
    }
}
