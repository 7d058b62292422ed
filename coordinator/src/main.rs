//! `jointly-coordinator --config coordinator.toml` serves;
//! `jointly-coordinator --config coordinator.toml principal ...` manages the
//! registry of planners, auditors and operators.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use jointly_coordinator::{
    CoordinatorConfig, operator,
    registry::{NewPrincipal, Role},
};

#[derive(Parser)]
#[command(
    name = "jointly-coordinator",
    version,
    about = "Jointly coordinator: registry, jobs, relay, planner API"
)]
struct Cli {
    /// Coordinator configuration file (see README, "Coordinator configuration").
    #[arg(long)]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve nodes and planners (the default).
    Serve,
    /// The registry of people who use the planner API (README, "Access").
    #[command(subcommand)]
    Principal(PrincipalCommand),
}

#[derive(Subcommand)]
enum PrincipalCommand {
    /// Register a person and issue her credential (shown once).
    Add {
        name: String,
        #[arg(long)]
        organisation: String,
        /// planner, auditor or operator.
        #[arg(long)]
        role: Role,
        /// A workspace she belongs to (repeat for several; "*" for all).
        #[arg(long = "workspace", required = true)]
        workspaces: Vec<String>,
        /// Days until the credential expires (default 90).
        #[arg(long, default_value_t = 0)]
        valid_days: u32,
        /// Write the credential here (mode 0600) instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Issue a person a new credential; her old one stops working at once.
    Rotate {
        name: String,
        #[arg(long, default_value_t = 0)]
        valid_days: u32,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Revoke a person's credential at once.
    Revoke { name: String },
    /// Everyone registered, with role, organisation, workspaces and status.
    List,
}

fn hand_out(
    principal: &jointly_coordinator::registry::Principal,
    credential: &jointly_coordinator::credential::Credential,
    text: &str,
    out: Option<PathBuf>,
    verb: &str,
) -> anyhow::Result<()> {
    eprintln!("{verb}: {}", operator::describe(principal));
    match out {
        Some(path) => {
            credential.save(&path, text).map_err(anyhow::Error::msg)?;
            eprintln!(
                "credential written to {} (mode 0600): hand it to {} over a trusted channel; she runs `jointly login {}`",
                path.display(),
                principal.name,
                path.display()
            );
        }
        None => {
            eprintln!(
                "the credential follows; it is shown this once and the coordinator keeps only its public key:"
            );
            print!("{text}");
        }
    }
    Ok(())
}

fn principal(config: &CoordinatorConfig, command: PrincipalCommand) -> anyhow::Result<()> {
    match command {
        PrincipalCommand::Add {
            name,
            organisation,
            role,
            workspaces,
            valid_days,
            out,
        } => {
            let new = NewPrincipal {
                name,
                organisation,
                role,
                workspaces,
                valid_days,
            };
            let (p, c, text) = operator::issue(config, &new, false)?;
            hand_out(&p, &c, &text, out, "registered")
        }
        PrincipalCommand::Rotate {
            name,
            valid_days,
            out,
        } => {
            let (p, c, text) = operator::rotate(config, &name, valid_days)?;
            hand_out(&p, &c, &text, out, "rotated")
        }
        PrincipalCommand::Revoke { name } => {
            let p = operator::revoke(config, &name)?;
            println!("revoked: {}", operator::describe(&p));
            Ok(())
        }
        PrincipalCommand::List => {
            let all = operator::list(config)?;
            if all.is_empty() {
                println!(
                    "no one is registered; add the first operator with `jointly-coordinator --config ... principal add NAME --organisation ORG --role operator --workspace '*'`"
                );
            }
            for p in all {
                println!("{}", operator::describe(&p));
            }
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: logs written to files stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let config = CoordinatorConfig::load(&cli.config)?;
    if let Some(Command::Principal(command)) = cli.command {
        return principal(&config, command).with_context(|| {
            format!(
                "registry of the coordinator configured in {}",
                cli.config.display()
            )
        });
    }
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (key `listen` in {})",
                config.listen,
                cli.config.display()
            )
        })?;
    tracing::info!(address = %config.listen, tls = config.tls.is_some(), "coordinator listening");
    jointly_coordinator::serve(config, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
