//! The planner API: validates queries against what nodes advertise, creates
//! jobs, and serves their status and results from the store.

use std::sync::Arc;

use jointly_protocol::{
    accounting::check_epsilon,
    ids::{IdKind, match_kind},
    wire::{
        DatasetRef, DatasetSummary, GetJobRequest, Job, ListJobsRequest, ListJobsResponse, ListNodesRequest,
        ListNodesResponse, NodeStatus, QuerySpec, planner_server::Planner, query_spec::Query,
    },
};
use tonic::{Request, Response, Status};
use tracing::info;

use crate::{
    error::CoordinatorError,
    jobs::{self, Parties},
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

    fn parties(&self, spec: &QuerySpec) -> Result<Parties, CoordinatorError> {
        let Some(Query::Overlap(q)) = &spec.query else {
            return Err(CoordinatorError::InvalidQuery("no query kind given".into()));
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
        let left = self.resolve("left", q.left.as_ref())?;
        let right = self.resolve("right", q.right.as_ref())?;
        if left.0 == right.0 {
            return Err(CoordinatorError::InvalidQuery(format!(
                "both datasets are on node '{}'; an overlap runs between two nodes",
                left.0
            )));
        }
        if match_kind(left.2, right.2).is_none() {
            return Err(CoordinatorError::InvalidQuery(format!(
                "identifier kinds cannot match: {}/{} holds {} and {}/{} holds {}",
                left.0, left.1, left.2, right.0, right.1, right.2
            )));
        }
        let label = |(n, d, k): (String, String, IdKind)| (n, d, k.label().to_string());
        Ok(Parties {
            receiver: label(left),
            sender: label(right),
        })
    }
}

#[tonic::async_trait]
impl Planner for PlannerApi {
    async fn submit_query(&self, request: Request<QuerySpec>) -> Result<Response<Job>, Status> {
        let spec = request.into_inner();
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
                        })
                        .collect(),
                }
            })
            .collect();
        Ok(Response::new(ListNodesResponse { nodes }))
    }
}
