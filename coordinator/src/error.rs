//! Errors of the coordinator, and the one place they become gRPC statuses.

use std::path::PathBuf;

/// What went wrong, with the node, dataset, job or file it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinatorError {
    /// The configuration file cannot be read or is invalid.
    #[error("coordinator configuration {path}: {message}")]
    Config { path: PathBuf, message: String },
    /// The database cannot be opened or written.
    #[error("database {path}: {message}")]
    Database { path: PathBuf, message: String },
    /// A node name that is not in the registry.
    #[error("unknown node '{node}'; registered nodes: {known}")]
    UnknownNode { node: String, known: String },
    /// A registered node that is not attached now.
    #[error(
        "node '{node}' is not attached; start it (jointly-node --config ...) or check its coordinator.url"
    )]
    NodeOffline { node: String },
    /// A dataset the node does not advertise.
    #[error("node '{node}' has no dataset '{dataset}'; it advertises: {known}")]
    UnknownDataset {
        node: String,
        dataset: String,
        known: String,
    },
    /// A query that cannot run as asked.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// A job id that does not exist.
    #[error("no job '{0}'")]
    UnknownJob(String),
    /// A node reported a second transcript for a job; the first stands.
    #[error("node '{node}' already indexed a transcript of job {job}; the first one stands")]
    AlreadyIndexed { job: String, node: String },
    /// The registry of people refused a change, or cannot be read.
    #[error("{0}")]
    Registry(#[from] crate::registry::RegistryError),
    /// Listening or TLS setup failed.
    #[error("transport: {0}")]
    Transport(String),
}

impl From<CoordinatorError> for tonic::Status {
    fn from(e: CoordinatorError) -> Self {
        let message = e.to_string();
        match e {
            CoordinatorError::UnknownNode { .. }
            | CoordinatorError::UnknownDataset { .. }
            | CoordinatorError::UnknownJob(_) => tonic::Status::not_found(message),
            CoordinatorError::NodeOffline { .. } => tonic::Status::failed_precondition(message),
            CoordinatorError::InvalidQuery(_) => tonic::Status::invalid_argument(message),
            CoordinatorError::AlreadyIndexed { .. } => tonic::Status::already_exists(message),
            CoordinatorError::Registry(r) => {
                use crate::registry::RegistryError as R;
                match r {
                    R::BadName(_) | R::Invalid(_) => tonic::Status::invalid_argument(message),
                    R::Exists(_) => tonic::Status::already_exists(message),
                    R::Unknown(_) => tonic::Status::not_found(message),
                    _ => tonic::Status::internal(message),
                }
            }
            CoordinatorError::Config { .. }
            | CoordinatorError::Database { .. }
            | CoordinatorError::Transport(_) => tonic::Status::internal(message),
        }
    }
}
