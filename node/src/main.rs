//! `jointly-node`: run a node, create its identity key, or check its datasets.

use std::{path::PathBuf, sync::Arc};

use anyhow::Context;
use clap::{Parser, Subcommand};
use jointly_node::{Node, NodeConfig, budget, identity::Identity};

#[derive(Parser)]
#[command(
    name = "jointly-node",
    version,
    about = "Jointly node: runs next to one party's data"
)]
struct Cli {
    /// Node configuration file (see README, "Node configuration").
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Attach to the coordinator and serve jobs (the default).
    Run,
    /// Create an Ed25519 identity key; prints the public key to register at the coordinator.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// List the privacy budget ledger: every job's charge, and spending per
    /// dataset, partner and period against the policy's budgets.
    Budget {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Load every dataset and report rows, distinct identifiers and rejected rows per reason.
    Check {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

fn config(path: Option<PathBuf>) -> anyhow::Result<NodeConfig> {
    let path = path.context("--config FILE is required (see README, \"Node configuration\")")?;
    Ok(NodeConfig::load(&path)?)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: logs written to files stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Keygen { out } => {
            let id = Identity::generate();
            id.save(&out)?;
            println!("{}", hex::encode(id.public_key().as_bytes()));
        }
        Command::Budget { json } => {
            let config = config(cli.config)?;
            budget::print(&config, json)?;
        }
        Command::Check { json } => {
            let node = Node::load(config(cli.config)?)?;
            for d in node.datasets() {
                if json {
                    println!("{}", serde_json::json!({"dataset": d.name, "report": d.report}));
                } else {
                    let r = &d.report;
                    println!(
                        "{}: {} rows, {} distinct identifiers, {} duplicate rows, {} rejected {:?}",
                        d.name,
                        r.rows,
                        r.distinct,
                        r.duplicate_rows,
                        r.rejected_total(),
                        r.rejected
                    );
                }
            }
            for e in node.events() {
                let (name, r) = (&e.config().name, e.report());
                if json {
                    println!("{}", serde_json::json!({"events": name, "report": r}));
                } else {
                    println!(
                        "{name} ({}): {} rows, {} kept for {} persons; dropped: identifiers {:?}, timestamps {}, undeclared labels {}; values read as 0: {}",
                        e.config().kind.label(),
                        r.rows,
                        r.events,
                        r.persons,
                        r.rejected_ids,
                        r.invalid_ts,
                        r.unknown_label,
                        r.bad_values
                    );
                }
            }
        }
        Command::Run => {
            let node = Arc::new(Node::load(config(cli.config)?)?);
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(node.run(async {
                let _ = tokio::signal::ctrl_c().await;
            }))?;
        }
    }
    Ok(())
}
