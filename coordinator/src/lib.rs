//! The Jointly coordinator (`jointly-coordinator`): registry of nodes, jobs and
//! their durable state, relay of protocol messages between nodes, and the
//! planner API. It sees sizes and results, never identifiers or masked lists'
//! meaning.

pub mod attributions;
pub mod auth;
pub mod breakdowns;
pub mod client;
pub mod config;
pub mod credential;
pub mod decrypt;
pub mod error;
pub mod gateway;
pub mod job_event;
pub mod jobs;
pub mod operator;
pub mod planner;
pub mod registry;
pub mod release;
pub mod state;
pub mod store;

use std::{future::Future, sync::Arc, time::Duration};

pub use config::CoordinatorConfig;
pub use error::CoordinatorError;
use jointly_protocol::wire::{
    MAX_FRAME_BYTES, node_gateway_server::NodeGatewayServer, planner_server::PlannerServer,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Identity, Server, ServerTlsConfig};

/// Serves nodes and planners on `listener` until `shutdown` completes.
pub async fn serve(
    config: CoordinatorConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), CoordinatorError> {
    // Planners' signatures stop a relay from replaying or altering their
    // calls, but not from reading them: off loopback, only TLS will do.
    if config.tls.is_none() {
        let addr = listener
            .local_addr()
            .map_err(|e| CoordinatorError::Transport(e.to_string()))?;
        if !addr.ip().is_loopback() {
            return Err(CoordinatorError::Transport(format!(
                "refusing to serve plain HTTP on {addr}: give [tls] cert and key in the configuration, or listen on 127.0.0.1 for a local demo"
            )));
        }
    }
    let store = store::Store::open(&config.database)?;
    let tls = match &config.tls {
        Some(files) => {
            let read = |p: &std::path::Path| {
                std::fs::read(p)
                    .map_err(|e| CoordinatorError::Transport(format!("cannot read {}: {e}", p.display())))
            };
            Some(ServerTlsConfig::new().identity(Identity::from_pem(read(&files.cert)?, read(&files.key)?)))
        }
        None => None,
    };
    let coord = state::Coordinator::new(config, store);
    let mut builder = Server::builder()
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(4 << 20))
        .initial_connection_window_size(Some(16 << 20))
        .http2_keepalive_interval(Some(Duration::from_secs(30)));
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| CoordinatorError::Transport(format!("TLS configuration: {e}")))?;
    }
    let gateway = NodeGatewayServer::new(gateway::Gateway::new(Arc::clone(&coord)))
        .max_decoding_message_size(MAX_FRAME_BYTES)
        .max_encoding_message_size(MAX_FRAME_BYTES);
    let planner = PlannerServer::new(planner::PlannerApi::new(coord));
    builder
        .add_service(gateway)
        .add_service(planner)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
        .map_err(|e| CoordinatorError::Transport(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_http_is_refused_off_loopback() {
        let dir = tempfile::tempdir().expect("dir");
        let config = CoordinatorConfig::parse("listen = \"0.0.0.0:0\"\n", dir.path()).expect("config");
        let listener = TcpListener::bind("0.0.0.0:0").await.expect("bind");
        let refused = serve(config, listener, async {}).await.expect_err("refused");
        assert!(matches!(refused, CoordinatorError::Transport(_)), "{refused:?}");
        assert!(
            refused.to_string().contains("refusing to serve plain HTTP"),
            "{refused}"
        );
    }
}
