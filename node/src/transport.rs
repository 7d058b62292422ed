//! The node's connection to the coordinator: one HTTP/2 connection (TLS when the
//! URL is https) that carries the control stream and every session stream.

use std::time::Duration;

use jointly_protocol::wire::{MAX_FRAME_BYTES, node_gateway_client::NodeGatewayClient};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::{config::CoordinatorLink, error::NodeError};

pub type GatewayClient = NodeGatewayClient<Channel>;

pub async fn connect(link: &CoordinatorLink) -> Result<GatewayClient, NodeError> {
    let fail = |message: String| NodeError::Coordinator {
        url: link.url.clone(),
        message,
    };
    let mut endpoint = Endpoint::from_shared(link.url.clone())
        .map_err(|e| fail(format!("not a valid URL: {e}")))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        // Large windows keep a 256 KiB chunk per round trip flowing on loopback
        // and LAN; the bounded channels on both ends still cap memory.
        .initial_stream_window_size(Some(4 << 20))
        .initial_connection_window_size(Some(16 << 20))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    if link.url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        let Some(ca) = &link.ca_cert else {
            return Err(fail(
                "an https URL needs coordinator.ca_cert (the CA that signed the coordinator's certificate)"
                    .into(),
            ));
        };
        let pem =
            std::fs::read(ca).map_err(|e| fail(format!("cannot read ca_cert {}: {e}", ca.display())))?;
        tls = tls.ca_certificate(Certificate::from_pem(pem));
        if let Some(domain) = &link.tls_domain {
            tls = tls.domain_name(domain.clone());
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| fail(format!("TLS configuration: {e}")))?;
    }
    let channel = endpoint.connect().await.map_err(|e| {
        fail(format!(
            "cannot connect: {e}; check coordinator.url and that the coordinator runs"
        ))
    })?;
    Ok(NodeGatewayClient::new(channel)
        .max_decoding_message_size(MAX_FRAME_BYTES)
        .max_encoding_message_size(MAX_FRAME_BYTES))
}
