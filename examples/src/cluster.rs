//! A coordinator and two nodes in one process, on an OS-chosen loopback port:
//! the real services (gRPC over TCP, SQLite, polars), started and stopped as a
//! unit. The demo and the end-to-end tests run on it.

use std::{collections::HashMap, path::Path, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use jointly_coordinator::{
    CoordinatorConfig,
    client::{self, Planner},
    credential::Credential,
};
use jointly_node::{Node, NodeConfig};
use jointly_protocol::wire::{
    DatasetRef, Job, ListNodesRequest, OverlapQuery, Privacy, QuerySpec, query_spec::Query,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::deploy::{self, CampaignFiles, Deployment, DeploymentSpec, PolicySpec, TlsPaths};

/// A service on its own runtime, so that killing it ends every task and
/// connection it has, as killing a process would.
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    runtime: tokio::runtime::Runtime,
}

impl Running {
    fn spawn(
        future: impl std::future::Future<Output = ()> + Send + 'static,
        stop: oneshot::Sender<()>,
    ) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start a runtime")?;
        let task = runtime.spawn(future);
        Ok(Self { stop, task, runtime })
    }

    /// Ends everything at once: no goodbye on any stream.
    fn kill(self) {
        self.runtime.shutdown_background();
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
        self.runtime.shutdown_background();
    }
}

pub struct Cluster {
    pub deployment: Deployment,
    pub url: String,
    listen: String,
    tls: Option<TlsPaths>,
    coordinator: Option<Running>,
    nodes: HashMap<String, Running>,
}

/// Ask for an un-noised result (test deployments).
pub fn exact() -> Privacy {
    Privacy {
        epsilon: 0.0,
        exact: true,
    }
}

/// Ask for a result noised at `epsilon` per node.
pub fn noised(epsilon: f64) -> Privacy {
    Privacy {
        epsilon,
        exact: false,
    }
}

/// The overlap query between the bank's customers and the partner's users.
pub fn overlap_spec(privacy: Privacy) -> QuerySpec {
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
        privacy: Some(privacy),
    }
}

/// A submission of `spec` to the planner's only workspace.
pub fn submission(spec: QuerySpec) -> jointly_protocol::wire::SubmitQueryRequest {
    jointly_protocol::wire::SubmitQueryRequest {
        spec: Some(spec),
        workspace: String::new(),
    }
}

/// Binds a loopback port below Linux's ephemeral range. A port the OS hands
/// out for binding is also one it hands out as the source of outgoing
/// connections, so after the coordinator is killed a node's reconnection
/// attempt could take its port and keep the restarted coordinator out.
async fn bind_outside_ephemeral_range() -> anyhow::Result<TcpListener> {
    use rand::Rng;
    for _ in 0..200 {
        let port = rand::rng().random_range(20_000..32_000);
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)).await {
            return Ok(l);
        }
    }
    bail!("no free loopback port found in 20000..32000")
}

impl Cluster {
    /// Writes a deployment into `dir` for the two data files and starts the
    /// coordinator and both nodes (plain HTTP/2 on loopback).
    pub async fn start(
        dir: &Path,
        bank_data: &Path,
        partner_data: &Path,
        policy: PolicySpec,
    ) -> anyhow::Result<Self> {
        Self::launch(dir, bank_data, partner_data, policy, None, None).await
    }

    /// As `start`, with the campaign's event tables and split declared too.
    pub async fn start_with_campaign(
        dir: &Path,
        bank_data: &Path,
        partner_data: &Path,
        campaign: CampaignFiles,
        policy: PolicySpec,
    ) -> anyhow::Result<Self> {
        Self::launch(dir, bank_data, partner_data, policy, None, Some(campaign)).await
    }

    /// As `start`, with the coordinator serving TLS and everyone checking it.
    pub async fn start_tls(
        dir: &Path,
        bank_data: &Path,
        partner_data: &Path,
        tls: TlsPaths,
    ) -> anyhow::Result<Self> {
        Self::launch(
            dir,
            bank_data,
            partner_data,
            PolicySpec::testing(),
            Some(tls),
            None,
        )
        .await
    }

    async fn launch(
        dir: &Path,
        bank_data: &Path,
        partner_data: &Path,
        policy: PolicySpec,
        tls: Option<TlsPaths>,
        campaign: Option<CampaignFiles>,
    ) -> anyhow::Result<Self> {
        let listener = bind_outside_ephemeral_range().await?;
        let listen = listener.local_addr()?.to_string();
        let spec = DeploymentSpec {
            bank_data: bank_data.to_path_buf(),
            partner_data: partner_data.to_path_buf(),
            listen: listen.clone(),
            policy,
            tls,
            campaign,
        };
        let deployment = deploy::write(dir, &spec)?;
        // The data here is small: a 1 MiB decryption table, built in
        // milliseconds, finds its sums at once (production keeps the default).
        let mut coordinator = std::fs::read_to_string(&deployment.coordinator_config)?;
        coordinator.push_str("\n[decryption]\ntable_bits = 16\n");
        std::fs::write(&deployment.coordinator_config, coordinator)?;
        let mut cluster = Self {
            url: spec.url(),
            tls: spec.tls.clone(),
            listen,
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
        // A listener belongs to the runtime that created it: move its socket.
        let listener = listener.into_std()?;
        let serve = async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            let listener = match TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => return tracing::error!(error = %e, "coordinator cannot listen"),
            };
            if let Err(e) = jointly_coordinator::serve(config, listener, shutdown).await {
                tracing::error!(error = %e, "coordinator stopped");
            }
        };
        self.coordinator = Some(Running::spawn(serve, stop)?);
        Ok(())
    }

    /// Stops the coordinator abruptly (as a crash would) and starts it again on
    /// the same port and database.
    pub async fn restart_coordinator(&mut self) -> anyhow::Result<()> {
        if let Some(c) = self.coordinator.take() {
            c.kill();
        }
        let addr = self.listen.clone();
        // The killed runtime releases its socket asynchronously.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(&addr).await {
                Ok(l) => break l,
                Err(e) if tokio::time::Instant::now() > deadline => {
                    return Err(e).context("cannot rebind the coordinator port");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
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
        let run = async move {
            let _ = Arc::new(node)
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        };
        self.nodes.insert(name.to_string(), Running::spawn(run, stop)?);
        Ok(())
    }

    /// Ends a node at once, mid-whatever, as a killed process would.
    pub async fn kill_node(&mut self, name: &str) {
        if let Some(n) = self.nodes.remove(name) {
            n.kill();
        }
    }

    /// The deployment's planner (workspace `deploy::WORKSPACE`).
    pub async fn planner(&self) -> anyhow::Result<Planner> {
        self.connect_as(&self.deployment.credentials.planner).await
    }

    /// The deployment's auditor (every workspace).
    pub async fn auditor(&self) -> anyhow::Result<Planner> {
        self.connect_as(&self.deployment.credentials.auditor).await
    }

    /// The deployment's operator.
    pub async fn operator(&self) -> anyhow::Result<Planner> {
        self.connect_as(&self.deployment.credentials.operator).await
    }

    /// A connection signed with the credential in `path`.
    pub async fn connect_as(&self, path: &Path) -> anyhow::Result<Planner> {
        let credential = Credential::load(path).map_err(anyhow::Error::msg)?;
        self.connect_with(credential).await
    }

    pub async fn connect_with(&self, credential: Credential) -> anyhow::Result<Planner> {
        client::connect(
            &self.url,
            self.tls.as_ref().map(|t| t.ca_cert.as_path()),
            self.tls.as_ref().map(|t| t.domain.as_str()),
            credential,
        )
        .await
        .map_err(anyhow::Error::msg)
    }

    /// Waits until the coordinator lists the nodes as attached.
    pub async fn wait_attached(&self, names: &[&str]) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut planner) = self.planner().await
                && let Ok(r) = planner.list_nodes(ListNodesRequest {}).await
            {
                let attached = r.into_inner().nodes;
                if names
                    .iter()
                    .all(|n| attached.iter().any(|a| a.name == *n && a.attached))
                {
                    return Ok(());
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
        let job = planner
            .submit_query(submission(spec))
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))?
            .into_inner();
        client::wait(&mut planner, &job.job_id, |_| {})
            .await
            .map_err(|s| anyhow::anyhow!("{}", s.message()))
    }

    pub async fn shutdown(mut self) {
        for (_, n) in self.nodes.drain() {
            n.stop().await;
        }
        if let Some(c) = self.coordinator.take() {
            c.stop().await;
        }
    }
}
