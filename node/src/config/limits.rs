//! `[limits]`: what one node spends on sessions, offers and peers.

use serde::Deserialize;

use crate::config::defaults::*;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeLimits {
    /// Largest identifier set a peer may announce (bounds memory).
    #[serde(default = "default_max_peer_set")]
    pub max_peer_set_size: u64,
    /// Points per chunk sent to the peer (at most 8192).
    #[serde(default = "default_chunk_points")]
    pub chunk_points: usize,
    /// Protocol sessions run at once; further offers are refused as busy.
    #[serde(default = "default_max_sessions")]
    pub max_sessions: usize,
    /// Values (noise shares and cover counts) one job may make this node
    /// draw; an offer asking for more is refused before anything is drawn.
    #[serde(default = "default_max_job_values")]
    pub max_job_values: usize,
    /// An accepted offer whose session has not started after this long is
    /// dropped and its budget given back (a lost start or cancel).
    #[serde(default = "default_offer_start_seconds")]
    pub offer_start_seconds: u64,
    /// A session with no message from the peer for this long is ended by
    /// this node, whatever the coordinator does.
    #[serde(default = "default_session_idle_seconds")]
    pub session_idle_seconds: u64,
}

impl Default for NodeLimits {
    fn default() -> Self {
        Self {
            max_peer_set_size: default_max_peer_set(),
            chunk_points: default_chunk_points(),
            max_sessions: default_max_sessions(),
            max_job_values: default_max_job_values(),
            offer_start_seconds: default_offer_start_seconds(),
            session_idle_seconds: default_session_idle_seconds(),
        }
    }
}
