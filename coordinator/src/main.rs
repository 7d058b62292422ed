//! `jointly-coordinator --config coordinator.toml`

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use jointly_coordinator::CoordinatorConfig;

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
