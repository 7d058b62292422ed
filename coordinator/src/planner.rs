//! The planner API: validates queries against what nodes advertise, creates
//! jobs, and serves their status and results from the store.

use std::sync::Arc;

use jointly_protocol::{
    accounting::check_epsilon,
    breakdown_plan::Side,
    ids::{IdKind, match_kind},
    wire,
    wire::{
        CoordinatorMessage, DatasetInfo, DatasetRef, DatasetSummary, FetchTranscriptRequest, GetJobRequest,
        Job, ListJobsRequest, ListJobsResponse, ListNodesRequest, ListNodesResponse, NodeStatus, QuerySpec,
        SubmitQueryRequest, TranscriptChunk, TranscriptRequest, coordinator_message, planner_server::Planner,
        query_spec::Query,
    },
};
use tonic::{Request, Response, Status};
use tracing::info;

use crate::{
    attributions::{plan_attribution, plan_lift},
    breakdowns::{check_filters, plan as plan_breakdown},
    error::CoordinatorError,
    jobs::{self, JobKind, Parties},
    state::Coordinator,
};

pub struct PlannerApi {
    coord: Arc<Coordinator>,
}

impl PlannerApi {
    pub fn new(coord: Arc<Coordinator>) -> Self {
        Self { coord }
    }

    /// Resolves `node/dataset` to (node, dataset, identifier kind), or says what
    /// is wrong with it.
    fn resolve(
        &self,
        side: &str,
        r: Option<&DatasetRef>,
    ) -> Result<(String, String, IdKind), CoordinatorError> {
        let r = r.ok_or_else(|| CoordinatorError::InvalidQuery(format!("the {side} dataset is missing")))?;
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
        let kind = d.id_kind.parse::<IdKind>().map_err(|_| {
            CoordinatorError::InvalidQuery(format!("node '{}' advertises an unknown identifier kind", r.node))
        })?;
        Ok((r.node.clone(), r.dataset.clone(), kind))
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
        let invalid = CoordinatorError::InvalidQuery;
        let (left, right) = match &spec.query {
            Some(Query::Overlap(q)) => (q.left.as_ref(), q.right.as_ref()),
            Some(Query::Segment(q)) => (q.left.as_ref(), q.right.as_ref()),
            Some(Query::Breakdown(q)) => (q.left.as_ref(), q.right.as_ref()),
            // Receiver first, as the job runs.
            Some(Query::Attribution(q)) => (q.conversions.as_ref(), q.exposures.as_ref()),
            Some(Query::Lift(q)) => (q.groups.as_ref(), q.customers.as_ref()),
            None => return Err(invalid("no query kind given".into())),
        };
        // The nodes judge the terms against their policies; this only turns
        // away what no policy could accept.
        match spec.privacy {
            None => {
                return Err(CoordinatorError::InvalidQuery(
                    "the query states no privacy terms: give an epsilon, or ask for an exact result".into(),
                ));
            }
            Some(p) if !p.exact => {
                check_epsilon(p.epsilon).map_err(|e| CoordinatorError::InvalidQuery(e.to_string()))?;
            }
            Some(_) => {}
        }
        let left = self.resolve("left", left)?;
        let right = self.resolve("right", right)?;
        if left.0 == right.0 {
            return Err(CoordinatorError::InvalidQuery(format!(
                "both datasets are on node '{}'; a query runs between two nodes",
                left.0
            )));
        }
        if match_kind(left.2, right.2).is_none() {
            return Err(CoordinatorError::InvalidQuery(format!(
                "identifier kinds cannot match: {}/{} holds {} and {}/{} holds {}",
                left.0, left.1, left.2, right.0, right.1, right.2
            )));
        }
        let label = |(n, d, k): &(String, String, IdKind)| (n.clone(), d.clone(), k.label().to_string());
        let (l, r) = (label(&left), label(&right));
        let (receiver, sender, kind) = match &spec.query {
            Some(Query::Segment(q)) => {
                let schema = |p: &(String, String, String)| self.dataset_info(&p.0, &p.1);
                check_filters(&schema(&l)?, &q.left_filters, Side::Left).map_err(invalid)?;
                check_filters(&schema(&r)?, &q.right_filters, Side::Right).map_err(invalid)?;
                let activated = (!q.activate.is_empty()).then(|| q.activate.clone());
                match activated.as_deref() {
                    // The node that receives the members must be the receiver.
                    Some(a) if a == r.0 => (r, l, JobKind::Segment { activated }),
                    Some(a) if a != l.0 => {
                        return Err(invalid(format!(
                            "--activate names '{a}', which is neither the left node '{}' nor the right node '{}'",
                            l.0, r.0
                        )));
                    }
                    _ => (l, r, JobKind::Segment { activated }),
                }
            }
            Some(Query::Breakdown(q)) => {
                let job = plan_breakdown(
                    q,
                    &self.dataset_info(&l.0, &l.1)?,
                    &self.dataset_info(&r.0, &r.1)?,
                )
                .map_err(invalid)?;
                match job.plan.first_receiver() {
                    Side::Left => (l, r, JobKind::Breakdown(Box::new(job))),
                    Side::Right => (r, l, JobKind::Breakdown(Box::new(job))),
                }
            }
            Some(Query::Attribution(q)) => {
                let job = plan_attribution(
                    q,
                    (&l.0, &self.dataset_info(&l.0, &l.1)?),
                    (&r.0, &self.dataset_info(&r.0, &r.1)?),
                )
                .map_err(invalid)?;
                (l, r, JobKind::Attribution(Box::new(job)))
            }
            Some(Query::Lift(q)) => {
                let conversions = self
                    .coord
                    .node_datasets(&r.0)
                    .and_then(|ds| ds.into_iter().find(|d| d.name == q.conversions));
                if let Some(c) = &conversions {
                    let kind = c.id_kind.parse::<IdKind>().ok();
                    if kind.and_then(|k| match_kind(k, left.2)).is_none() {
                        return Err(invalid(format!(
                            "identifier kinds cannot match: {}/{} holds {} and {}/{} holds {}",
                            r.0, c.name, c.id_kind, l.0, l.1, left.2
                        )));
                    }
                }
                let job = plan_lift(
                    q,
                    (&r.0, &self.dataset_info(&r.0, &r.1)?),
                    conversions.as_ref(),
                    (&l.0, &self.dataset_info(&l.0, &l.1)?),
                )
                .map_err(invalid)?;
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

#[tonic::async_trait]
impl Planner for PlannerApi {
    async fn submit_query(&self, request: Request<SubmitQueryRequest>) -> Result<Response<Job>, Status> {
        let spec = request.into_inner().spec.unwrap_or_default();
        let parties = self.parties(&spec)?;
        let job_id = jobs::new_id("job");
        // Persisted before anything runs: a crash from here on leaves a record.
        let job = self.coord.store.insert(&job_id, &spec).await?;
        info!(job = %job_id, receiver = %parties.receiver.0, sender = %parties.sender.0, "job submitted");
        jobs::spawn(Arc::clone(&self.coord), job_id, spec, parties);
        Ok(Response::new(job))
    }

    async fn get_job(&self, request: Request<GetJobRequest>) -> Result<Response<Job>, Status> {
        Ok(Response::new(
            self.coord.store.get(&request.into_inner().job_id).await?,
        ))
    }

    async fn list_jobs(
        &self,
        request: Request<ListJobsRequest>,
    ) -> Result<Response<ListJobsResponse>, Status> {
        let limit = match request.into_inner().limit {
            0 => 50,
            n => n.min(1000),
        };
        let jobs = self.coord.store.list(limit).await?;
        Ok(Response::new(ListJobsResponse { jobs }))
    }

    async fn list_nodes(
        &self,
        _request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
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

    // PENDING(access): the access work implements these before anything lands.
    async fn cancel_job(
        &self,
        _request: Request<jointly_protocol::wire::CancelJobRequest>,
    ) -> Result<Response<Job>, Status> {
        Err(Status::unimplemented("cancel is not implemented yet"))
    }

    async fn who_am_i(
        &self,
        _request: Request<jointly_protocol::wire::WhoAmIRequest>,
    ) -> Result<Response<jointly_protocol::wire::Principal>, Status> {
        Err(Status::unimplemented("whoami is not implemented yet"))
    }

    async fn list_principals(
        &self,
        _request: Request<jointly_protocol::wire::ListPrincipalsRequest>,
    ) -> Result<Response<jointly_protocol::wire::ListPrincipalsResponse>, Status> {
        Err(Status::unimplemented("the registry is not implemented yet"))
    }

    async fn add_principal(
        &self,
        _request: Request<jointly_protocol::wire::AddPrincipalRequest>,
    ) -> Result<Response<jointly_protocol::wire::IssuedCredential>, Status> {
        Err(Status::unimplemented("the registry is not implemented yet"))
    }

    async fn revoke_principal(
        &self,
        _request: Request<jointly_protocol::wire::RevokePrincipalRequest>,
    ) -> Result<Response<jointly_protocol::wire::Principal>, Status> {
        Err(Status::unimplemented("the registry is not implemented yet"))
    }

    type FetchTranscriptStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<TranscriptChunk, Status>> + Send>>;

    async fn fetch_transcript(
        &self,
        request: Request<FetchTranscriptRequest>,
    ) -> Result<Response<Self::FetchTranscriptStream>, Status> {
        let FetchTranscriptRequest { job_id, node } = request.into_inner();
        let node = if node.is_empty() {
            receiver_node(&self.coord.store.get(&job_id).await?.spec.unwrap_or_default())
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
