//! `jointly`: the planner's and auditor's command line: queries, jobs, results,
//! synthetic data, the demo and the benchmark.

mod audit;
mod bench;
mod campaign_queries;
mod filters;
mod output;
mod signin;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use jointly_coordinator::client;
use jointly_examples::{
    campaign_data::{CampaignSpec, People, generate_campaign},
    datagen::{DataFormat, DatagenSpec, generate},
    demo::{self, DemoOptions},
    deploy::{self, CampaignFiles, DeploymentSpec, PolicySpec},
};
use jointly_protocol::wire::{
    BreakdownQuery, CancelJobRequest, DatasetRef, GetJobRequest, ListJobsRequest, ListNodesRequest, Measure,
    OverlapQuery, Privacy, QuerySpec, SegmentQuery, SubmitQueryRequest, query_spec::Query,
};

use crate::{
    filters::{Column, Side, SideFilter, parse_where, split_by_side},
    output::Mode,
};

#[derive(Parser)]
#[command(
    name = "jointly",
    version,
    about = "Jointly: privacy-preserving joint analytics for a bank and its partners"
)]
struct Cli {
    /// Coordinator planner API (default: the URL in the credential, else
    /// http://127.0.0.1:7700).
    #[arg(long, global = true, env = "JOINTLY_COORDINATOR")]
    coordinator: Option<String>,
    /// Credential to sign calls with (default: the one `jointly login` stored).
    #[arg(long, global = true, env = "JOINTLY_CREDENTIAL")]
    credential: Option<PathBuf>,
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
        /// The workspace the job belongs to (default: your only one).
        #[arg(long, global = true)]
        workspace: Option<String>,
    },
    /// Check a credential from the coordinator's operator and store it for
    /// later calls.
    Login { file: PathBuf },
    /// Who the coordinator takes you for: name, role, organisation, workspaces.
    Whoami,
    /// Stop a job that has not finished; both nodes give back what it had not spent.
    Cancel { job: String },
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
        /// Campaign: the partner's ad exposures (default: 4 per partner row).
        #[arg(long)]
        exposures: Option<usize>,
        /// Campaign: the bank's conversions (default: one per 8 bank rows).
        #[arg(long)]
        conversions: Option<usize>,
        /// Campaign: days of conversions (daily windows).
        #[arg(long, default_value_t = 30)]
        campaign_days: u32,
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
    /// Compliance: fetch and verify signed session transcripts.
    Audit {
        #[command(subcommand)]
        what: AuditCommand,
    },
    /// Measure throughput and memory.
    Bench {
        #[command(subcommand)]
        what: bench::BenchKind,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check a transcript file alone: envelopes, chains, the co-signed summary,
    /// the result commitment and the masking proofs. Exits non-zero on any failure.
    Verify { file: PathBuf },
    /// Fetch one node's shared transcript of a job through the coordinator.
    Fetch {
        job: String,
        /// The node whose copy to fetch (default: the node that received in the session).
        #[arg(long)]
        node: Option<String>,
        /// Where to write it (default: JOB.jtx in the current directory).
        #[arg(long)]
        out: Option<PathBuf>,
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
    /// Count the shared customers per left group x right group, with the sum and
    /// mean of measures per cell.
    Breakdown {
        /// Left dataset, NODE/DATASET.
        #[arg(long)]
        left: String,
        /// Right dataset, NODE/DATASET.
        #[arg(long)]
        right: String,
        /// Group by this column (repeatable): left.COL or right.COL.
        #[arg(long = "group-by", value_name = "SIDE.COL", value_parser = Column::parse)]
        group_by: Vec<Column>,
        /// Sum and average this column, clipped to its declared range, per cell
        /// (repeatable): left.COL or right.COL.
        #[arg(long, value_name = "SIDE.COL", value_parser = Column::parse)]
        measure: Vec<Column>,
        #[command(flatten)]
        filters: Where,
        /// Print the cells as CSV (header row, one row per cell).
        #[arg(long)]
        csv: bool,
    },
    /// Size a co-marketing segment: shared customers passing every test, and
    /// optionally deliver its members to one of the two nodes.
    Segment {
        /// Left dataset, NODE/DATASET.
        #[arg(long)]
        left: String,
        /// Right dataset, NODE/DATASET.
        #[arg(long)]
        right: String,
        #[command(flatten)]
        filters: Where,
        /// Deliver the members, as its own identifiers in its data directory, to
        /// this node: the left or the right dataset's.
        #[arg(long, value_name = "NODE")]
        activate: Option<String>,
    },
    /// Which of the partner's channels (and campaigns) drove the bank's
    /// conversions, and how much value, under an attribution model; plus the
    /// conversions no exposure explains.
    Attribution(campaign_queries::AttributionArgs),
    /// Did the campaign lift conversions? Conversion rate and value per person
    /// in the partner's test and control groups, and the lift with its 95%
    /// interval (noise included).
    Lift(campaign_queries::LiftArgs),
}

#[derive(clap::Args)]
struct Where {
    /// A test each row of one side must pass (repeatable, all apply):
    /// 'left.COL=VALUE', 'right.COL in A,B,C', 'left.COL between 25 and 35',
    /// 'left.COL>=25', 'left.COL<=35'.
    #[arg(long = "where", value_name = "TEST", value_parser = parse_where)]
    filters: Vec<SideFilter>,
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

/// Checked here rather than with clap's `conflicts_with`, which misses a global
/// flag given before the subcommand (`jointly --json query breakdown --csv`).
fn query_mode(json: bool, csv: bool, no_wait: bool) -> anyhow::Result<Mode> {
    match (json, csv, no_wait) {
        (true, true, _) => bail!("--csv and --json: choose one"),
        (_, true, true) => bail!("--csv prints the cells, which --no-wait does not wait for"),
        (true, false, _) => Ok(Mode::Json),
        (false, true, false) => Ok(Mode::Csv),
        (false, false, _) => Ok(Mode::Text),
    }
}

/// Refuses a column named twice in one list: the nodes would compute the same
/// thing twice, and likely a different column was meant.
fn no_repeats(flag: &str, columns: &[Column]) -> anyhow::Result<()> {
    for (i, c) in columns.iter().enumerate() {
        if columns[..i].contains(c) {
            bail!("{flag} {c} is given twice");
        }
    }
    Ok(())
}

fn breakdown_query(
    left: &str,
    right: &str,
    group_by: Vec<Column>,
    measures: Vec<Column>,
    filters: Vec<SideFilter>,
) -> anyhow::Result<BreakdownQuery> {
    no_repeats("--group-by", &group_by)?;
    no_repeats("--measure", &measures)?;
    let (left_filters, right_filters) = split_by_side(filters);
    let (left_group_by, right_group_by): (Vec<Column>, Vec<Column>) =
        group_by.into_iter().partition(|c| c.side == Side::Left);
    Ok(BreakdownQuery {
        left: Some(dataset_ref(left)?),
        right: Some(dataset_ref(right)?),
        left_group_by: left_group_by.into_iter().map(|c| c.name).collect(),
        right_group_by: right_group_by.into_iter().map(|c| c.name).collect(),
        measures: measures
            .into_iter()
            .map(|c| Measure {
                side: c.side.wire().into(),
                column: c.name,
            })
            .collect(),
        left_filters,
        right_filters,
    })
}

fn segment_query(
    left: &str,
    right: &str,
    filters: Vec<SideFilter>,
    activate: Option<String>,
) -> anyhow::Result<SegmentQuery> {
    let (left, right) = (dataset_ref(left)?, dataset_ref(right)?);
    if let Some(node) = &activate
        && *node != left.node
        && *node != right.node
    {
        bail!(
            "--activate {node}: only the left node '{}' or the right node '{}' can receive the members",
            left.node,
            right.node
        );
    }
    let (left_filters, right_filters) = split_by_side(filters);
    Ok(SegmentQuery {
        left: Some(left),
        right: Some(right),
        left_filters,
        right_filters,
        activate: activate.unwrap_or_default(),
    })
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let outcome = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(cli)));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The message and its causes, never a backtrace: a planner reads
        // this, and RUST_BACKTRACE is often set on developers' machines.
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let connect = || async {
        let credential = signin::credential(cli.credential.as_deref())?;
        let url = signin::coordinator_url(cli.coordinator.as_deref(), &credential);
        client::connect(
            &url,
            cli.ca_cert.as_deref(),
            cli.tls_domain.as_deref(),
            credential,
        )
        .await
        .map_err(anyhow::Error::msg)
    };
    let status = |s: tonic::Status| anyhow::anyhow!("{}", s.message());
    match cli.command {
        Command::Query {
            kind,
            no_wait,
            epsilon,
            exact,
            workspace,
        } => {
            let csv = matches!(kind, QueryKind::Breakdown { csv: true, .. });
            let mode = query_mode(cli.json, csv, no_wait)?;
            let query = match kind {
                QueryKind::Overlap { left, right } => Query::Overlap(OverlapQuery {
                    left: Some(dataset_ref(&left)?),
                    right: Some(dataset_ref(&right)?),
                }),
                QueryKind::Breakdown {
                    left,
                    right,
                    group_by,
                    measure,
                    filters,
                    csv: _,
                } => Query::Breakdown(breakdown_query(
                    &left,
                    &right,
                    group_by,
                    measure,
                    filters.filters,
                )?),
                QueryKind::Segment {
                    left,
                    right,
                    filters,
                    activate,
                } => Query::Segment(segment_query(&left, &right, filters.filters, activate)?),
                QueryKind::Attribution(a) => Query::Attribution(campaign_queries::attribution_query(&a)?),
                QueryKind::Lift(a) => Query::Lift(campaign_queries::lift_query(&a)?),
            };
            let spec = QuerySpec {
                query: Some(query),
                privacy: Some(Privacy { epsilon, exact }),
            };
            let mut planner = connect().await?;
            let job = planner
                .submit_query(SubmitQueryRequest {
                    spec: Some(spec),
                    workspace: workspace.unwrap_or_default(),
                })
                .await
                .map_err(status)?
                .into_inner();
            if no_wait {
                output::job(&job, mode);
                return Ok(());
            }
            let show_progress = mode == Mode::Text;
            let job = client::wait(&mut planner, &job.job_id, |j| {
                if show_progress {
                    output::progress(j);
                }
            })
            .await
            .map_err(status)?;
            output::job(&job, mode);
            if !job.error.is_empty() {
                std::process::exit(1);
            }
        }
        Command::Jobs { limit } => {
            let mut planner = connect().await?;
            let jobs = planner
                .list_jobs(ListJobsRequest { limit })
                .await
                .map_err(status)?
                .into_inner()
                .jobs;
            output::jobs(&jobs, cli.json);
        }
        Command::Result { job } => {
            let mut planner = connect().await?;
            let job = planner
                .get_job(GetJobRequest { job_id: job })
                .await
                .map_err(status)?
                .into_inner();
            output::job(&job, if cli.json { Mode::Json } else { Mode::Text });
        }
        Command::Login { file } => {
            let (me, stored) = signin::login(
                &file,
                cli.coordinator.as_deref(),
                cli.ca_cert.as_deref(),
                cli.tls_domain.as_deref(),
            )
            .await?;
            println!("signed in as {}", signin::describe(&me));
            println!("credential stored at {} (mode 0600)", stored.display());
        }
        Command::Whoami => {
            let mut planner = connect().await?;
            let me = planner.who_am_i().await.map_err(status)?.into_inner();
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "name": me.name,
                        "organisation": me.organisation,
                        "role": signin::role_name(me.role),
                        "workspaces": me.workspaces,
                        "public_key": hex::encode(&me.public_key),
                        "expires_unix_ms": me.expires_unix_ms,
                    })
                );
            } else {
                println!("{}", signin::describe(&me));
            }
        }
        Command::Cancel { job } => {
            let mut planner = connect().await?;
            let job = planner
                .cancel_job(CancelJobRequest { job_id: job })
                .await
                .map_err(status)?
                .into_inner();
            output::job(&job, if cli.json { Mode::Json } else { Mode::Text });
        }
        Command::Nodes => {
            let mut planner = connect().await?;
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
            exposures,
            conversions,
            campaign_days,
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
            let campaign = generate_campaign(
                &CampaignSpec {
                    people: People::from(&data.truth),
                    exposures: exposures.unwrap_or(partner_rows * 4),
                    conversions: conversions.unwrap_or(bank_rows / 8),
                    windows: campaign_days,
                    seed,
                    messy: !clean,
                },
                &out,
            )?;
            let files = CampaignFiles::canonical(&campaign)?;
            let d = deploy::write(
                &out,
                &DeploymentSpec {
                    bank_data: data.bank_path.canonicalize()?,
                    partner_data: data.partner_path.canonicalize()?,
                    listen,
                    policy: PolicySpec::demo(),
                    tls: None,
                    campaign: Some(files),
                },
            )?;
            let from = jointly_protocol::ids::timestamp::utc(campaign.truth.period_start);
            let from = from.get(..10).unwrap_or_default();
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "bank": data.bank_path,
                        "partner": data.partner_path,
                        "truth": data.truth,
                        "exposures": campaign.exposures_path,
                        "conversions": campaign.conversions_path,
                        "groups": campaign.groups_path,
                        "campaign_truth": campaign.truth,
                    })
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
                println!(
                    "  jointly login {}   # the planner's credential (auditor and operator beside it)",
                    d.credentials.planner.display()
                );
                println!("  jointly query overlap --left bank/customers --right partner/users");
                println!(
                    "  jointly query attribution --conversions bank/conversions --exposures partner/exposures --from {from} --days {campaign_days} --model linear --lookback 7"
                );
                println!(
                    "  jointly query lift --customers bank/customers --groups partner/groups --from {from} --days {campaign_days}"
                );
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
        Command::Audit { what } => match what {
            AuditCommand::Verify { file } => audit::verify_file(&file, cli.json)?,
            AuditCommand::Fetch { job, node, out } => {
                let out = out.unwrap_or_else(|| PathBuf::from(format!("{job}.jtx")));
                let client = connect().await?;
                let bytes = audit::fetch(client, &job, node, &out).await?;
                println!(
                    "wrote {} ({bytes} bytes); check it with `jointly audit verify {}`",
                    out.display(),
                    out.display()
                );
            }
        },
        Command::Bench { what } => bench::run(what).await?,
    }
    Ok(())
}

#[cfg(test)]
#[path = "main_tests.rs"]
mod tests;
