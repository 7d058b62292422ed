//! `jointly`: the planner's and auditor's command line: queries, jobs, results,
//! synthetic data, the demo and the benchmark.

mod bench;
mod output;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use jointly_coordinator::client;
use jointly_examples::{
    datagen::{DataFormat, DatagenSpec, generate},
    demo::{self, DemoOptions},
    deploy::{self, DeploymentSpec, PolicySpec},
};
use jointly_protocol::wire::{
    DatasetRef, GetJobRequest, ListJobsRequest, ListNodesRequest, OverlapQuery, Privacy, QuerySpec,
    query_spec::Query,
};

#[derive(Parser)]
#[command(
    name = "jointly",
    version,
    about = "Jointly: privacy-preserving joint analytics for a bank and its partners"
)]
struct Cli {
    /// Coordinator planner API.
    #[arg(
        long,
        global = true,
        env = "JOINTLY_COORDINATOR",
        default_value = "http://127.0.0.1:7700"
    )]
    coordinator: String,
    /// CA certificate (PEM) for an https coordinator.
    #[arg(long, global = true, env = "JOINTLY_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Name to check in the coordinator's certificate, if not the URL's host.
    #[arg(long, global = true, env = "JOINTLY_TLS_DOMAIN")]
    tls_domain: Option<String>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Submit a query and wait for its result.
    Query {
        #[command(subcommand)]
        kind: QueryKind,
        /// Print the job id and return without waiting.
        #[arg(long, global = true)]
        no_wait: bool,
        /// Epsilon each node spends on this query (at its policy's delta); each
        /// node refuses more than its policy.max_epsilon or its remaining budget.
        #[arg(long, global = true, default_value_t = 1.0)]
        epsilon: f64,
        /// Ask for an un-noised result: only test deployments whose two nodes both
        /// set allow_exact = true accept it.
        #[arg(long, global = true)]
        exact: bool,
    },
    /// List recent jobs.
    Jobs {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show one job and its result.
    Result { job: String },
    /// List registered nodes, whether they are attached, and their datasets.
    Nodes,
    /// Generate a synthetic bank and partner (messy CSV or Parquet) with ready configurations.
    Datagen {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        bank_rows: usize,
        #[arg(long, default_value_t = 80_000)]
        partner_rows: usize,
        #[arg(long, default_value_t = 30_000)]
        overlap: usize,
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Canonical identifiers, no duplicates or invalid rows.
        #[arg(long)]
        clean: bool,
        /// Address the generated coordinator config listens on.
        #[arg(long, default_value = "127.0.0.1:7700")]
        listen: String,
    },
    /// Run a coordinator and two nodes on loopback over generated data, with sample queries.
    Demo {
        /// Keep the generated files in this directory (default: a temporary one).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, default_value_t = 20_000)]
        bank_rows: usize,
        #[arg(long, default_value_t = 15_000)]
        partner_rows: usize,
        #[arg(long, default_value_t = 6_000)]
        overlap: usize,
    },
    /// Measure throughput and memory.
    Bench {
        #[command(subcommand)]
        what: bench::BenchKind,
    },
}

#[derive(Subcommand)]
enum QueryKind {
    /// How many customers do two datasets share?
    Overlap {
        /// Receiver's dataset, NODE/DATASET (learns the count).
        #[arg(long)]
        left: String,
        /// Sender's dataset, NODE/DATASET.
        #[arg(long)]
        right: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Csv,
    Parquet,
}

fn dataset_ref(s: &str) -> anyhow::Result<DatasetRef> {
    let Some((node, dataset)) = s.split_once('/') else {
        bail!("'{s}' is not NODE/DATASET (for example bank/customers)");
    };
    Ok(DatasetRef {
        node: node.into(),
        dataset: dataset.into(),
    })
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let connect = || {
        client::connect(
            &cli.coordinator,
            cli.ca_cert.as_deref(),
            cli.tls_domain.as_deref(),
        )
    };
    let status = |s: tonic::Status| anyhow::anyhow!("{}", s.message());
    match cli.command {
        Command::Query {
            kind,
            no_wait,
            epsilon,
            exact,
        } => {
            let privacy = Some(Privacy { epsilon, exact });
            let spec = match kind {
                QueryKind::Overlap { left, right } => QuerySpec {
                    query: Some(Query::Overlap(OverlapQuery {
                        left: Some(dataset_ref(&left)?),
                        right: Some(dataset_ref(&right)?),
                    })),
                    privacy,
                },
            };
            let mut planner = connect().await.map_err(anyhow::Error::msg)?;
            let job = planner.submit_query(spec).await.map_err(status)?.into_inner();
            if no_wait {
                output::job(&job, cli.json);
                return Ok(());
            }
            let show_progress = !cli.json;
            let job = client::wait(&mut planner, &job.job_id, |j| {
                if show_progress {
                    output::progress(j);
                }
            })
            .await
            .map_err(status)?;
            output::job(&job, cli.json);
            if !job.error.is_empty() {
                std::process::exit(1);
            }
        }
        Command::Jobs { limit } => {
            let mut planner = connect().await.map_err(anyhow::Error::msg)?;
            let jobs = planner
                .list_jobs(ListJobsRequest { limit })
                .await
                .map_err(status)?
                .into_inner()
                .jobs;
            output::jobs(&jobs, cli.json);
        }
        Command::Result { job } => {
            let mut planner = connect().await.map_err(anyhow::Error::msg)?;
            let job = planner
                .get_job(GetJobRequest { job_id: job })
                .await
                .map_err(status)?
                .into_inner();
            output::job(&job, cli.json);
        }
        Command::Nodes => {
            let mut planner = connect().await.map_err(anyhow::Error::msg)?;
            let nodes = planner
                .list_nodes(ListNodesRequest {})
                .await
                .map_err(status)?
                .into_inner()
                .nodes;
            output::nodes(&nodes, cli.json);
        }
        Command::Datagen {
            out,
            bank_rows,
            partner_rows,
            overlap,
            format,
            seed,
            clean,
            listen,
        } => {
            let spec = DatagenSpec {
                bank_rows,
                partner_rows,
                overlap,
                seed,
                messy: !clean,
                format: match format {
                    Format::Csv => DataFormat::Csv,
                    Format::Parquet => DataFormat::Parquet,
                },
            };
            let data = generate(&spec, &out)?;
            let d = deploy::write(
                &out,
                &DeploymentSpec {
                    bank_data: data.bank_path.canonicalize()?,
                    partner_data: data.partner_path.canonicalize()?,
                    listen,
                    policy: PolicySpec::demo(),
                    tls: None,
                },
            )?;
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"bank": data.bank_path, "partner": data.partner_path, "truth": data.truth})
                );
            } else {
                println!(
                    "wrote {} and {}",
                    data.bank_path.display(),
                    data.partner_path.display()
                );
                println!("true overlap: {} distinct customers", data.truth.overlap);
                println!("run it:");
                println!(
                    "  jointly-coordinator --config {}",
                    d.coordinator_config.display()
                );
                println!("  jointly-node --config {}", d.bank_config.display());
                println!("  jointly-node --config {}", d.partner_config.display());
                println!("  jointly query overlap --left bank/customers --right partner/users");
            }
        }
        Command::Demo {
            dir,
            bank_rows,
            partner_rows,
            overlap,
        } => {
            let temp;
            let dir = match dir {
                Some(d) => d,
                None => {
                    temp = tempfile::tempdir().context("cannot create a temporary directory")?;
                    temp.path().to_path_buf()
                }
            };
            let options = DemoOptions {
                bank_rows,
                partner_rows,
                overlap,
                ..DemoOptions::default()
            };
            if !demo::run(&dir, &options).await? {
                bail!("the demo's private answer differs from the plaintext answer");
            }
        }
        Command::Bench { what } => bench::run(what).await?,
    }
    Ok(())
}
