//! A coordinator and two nodes in one process, on an OS-chosen loopback port:
//! the real services (gRPC over TCP, SQLite, polars), started and stopped as a
//! unit. The demo and the end-to-end tests run on it.

use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use jointly_coordinator::{
    CoordinatorConfig,
    client::{self, Planner},
};
use jointly_node::{Node, NodeConfig};
use jointly_protocol::wire::{
    DatasetRef, Job, ListNodesRequest, OverlapQuery, QuerySpec, query_spec::Query,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::deploy::{self, Deployment, DeploymentSpec};

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

pub struct Cluster {
    pub deployment: Deployment,
    pub url: String,
    coordinator: Option<Running>,
    nodes: HashMap<String, Running>,
}

/// The overlap query between the bank's customers and the partner's users.
pub fn overlap_spec() -> QuerySpec {
    QuerySpec {
        query: Some(Query::Overlap(OverlapQuery {
            left: Some(DatasetRef {
                node: "bank".into(),
                dataset: "customers".into(),
            }),
            right: Some(DatasetRef {
                node: "partner".into(),
                dataset: "users".into(),
            }),
        })),
    }
}

impl Cluster {
    /// Writes a deployment into `dir` for the two data files and starts the
    /// coordinator and both nodes.
    pub async fn start(dir: &Path, bank_data: &Path, partner_data: &Path, allow_exact: bool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("cannot bind a loopback port")?;
        let listen = listener.local_addr()?.to_string();
        let deployment = deploy::write(
            dir,
            &DeploymentSpec {
                bank_data: bank_data.to_path_buf(),
                partner_data: partner_data.to_path_buf(),
                listen: listen.clone(),
                allow_exact,
            },
        )?;
        let mut cluster = Self {
            url: format!("http://{listen}"),
            deployment,
            coordinator: None,
            nodes: HashMap::new(),
        };
        cluster.start_coordinator_on(listener).await?;
        for name in ["bank", "partner"] {
            cluster.start_node(name).await?;
        }
        cluster.wait_attached(&["bank", "partner"]).await?;
        Ok(cluster)
    }

    async fn start_coordinator_on(&mut self, listener: TcpListener) -> anyhow::Result<()> {
        let config = CoordinatorConfig::load(&self.deployment.coordinator_config)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = jointly_coordinator::serve(config, listener, shutdown).await {
                tracing::error!(error = %e, "coordinator stopped");
            }
        });
        self.coordinator = Some(Running { stop, task });
        Ok(())
    }

    /// Stops the coordinator abruptly (as a crash would) and starts it again on
    /// the same port and database.
    pub async fn restart_coordinator(&mut self) -> anyhow::Result<()> {
        if let Some(c) = self.coordinator.take() {
            c.task.abort();
            let _ = c.task.await;
        }
        let addr = self.url.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind(&addr).await.context("cannot rebind the coordinator port")?;
        self.start_coordinator_on(listener).await
    }

    /// Loads and starts a node from its configuration in the deployment.
    pub async fn start_node(&mut self, name: &str) -> anyhow::Result<()> {
        let path = self.deployment.dir.join(format!("{name}.toml"));
        let node = tokio::task::spawn_blocking(move || -> anyhow::Result<Node> {
            Ok(Node::load(NodeConfig::load(&path)?)?)
        })
        .await??;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = Arc::new(node)
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        });
        self.nodes.insert(name.to_string(), Running { stop, task });
        Ok(())
    }

    /// Ends a node at once, mid-whatever, as a killed process would.
    pub async fn kill_node(&mut self, name: &str) {
        if let Some(n) = self.nodes.remove(name) {
            n.task.abort();
            let _ = n.task.await;
        }
    }

    pub async fn planner(&self) -> anyhow::Result<Planner> {
        client::connect(&self.url, None).await.map_err(anyhow::Error::msg)
    }

    /// Waits until the coordinator lists the nodes as attached.
    pub async fn wait_attached(&self, names: &[&str]) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut planner) = self.planner().await {
                if let Ok(r) = planner.list_nodes(ListNodesRequest {}).await {
                    let attached = r.into_inner().nodes;
                    if names.iter().all(|n| attached.iter().any(|a| a.name == *n && a.attached)) {
                        return Ok(());
                    }
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("nodes {names:?} did not attach within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Submits a query and waits for its end.
    pub async fn run(&self, spec: QuerySpec) -> anyhow::Result<Job> {
        let mut planner = self.planner().await?;
        let job = planner.submit_query(spec).await.map_err(|s| anyhow::anyhow!("{}", s.message()))?.into_inner();
        client::wait(&mut planner, &job.job_id, |_| {})
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))
    }

    pub async fn shutdown(mut self) {
        for (_, n) in self.nodes.drain() {
            let _ = n.stop.send(());
            let _ = n.task.await;
        }
        if let Some(c) = self.coordinator.take() {
            let _ = c.stop.send(());
            let _ = c.task.await;
        }
    }
}
