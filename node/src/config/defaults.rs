//! Every configuration key's default, in one place: what a node runs with
//! when its file leaves a key out.

use std::path::PathBuf;

pub(super) fn default_data_dir() -> PathBuf {
    PathBuf::from("jointly-data")
}
pub(super) fn default_country() -> String {
    "CN".into()
}
pub(super) fn default_reconnect_seconds() -> u64 {
    2
}
pub(super) fn default_max_peer_set() -> u64 {
    50_000_000
}
pub(super) fn default_chunk_points() -> usize {
    4096
}
pub(super) fn default_max_sessions() -> usize {
    4
}
pub(super) fn default_max_job_values() -> usize {
    2_000_000
}
pub(super) fn default_offer_start_seconds() -> u64 {
    120
}
pub(super) fn default_session_idle_seconds() -> u64 {
    300
}
pub(super) fn default_min_aggregation() -> u64 {
    10
}
pub(super) fn default_max_epsilon() -> f64 {
    1.0
}
pub(super) fn default_delta() -> f64 {
    1e-6
}
pub(super) fn default_min_activation() -> u64 {
    100
}
