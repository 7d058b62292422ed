//! Errors of the node. Each names the file, dataset, column, peer or step
//! involved and says what to do; none carries an identifier or a row value.

use std::path::PathBuf;

/// Why the node cannot start, or why a session failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The configuration file cannot be read.
    #[error("cannot read node configuration {path}: {source}")]
    ConfigRead { path: PathBuf, source: std::io::Error },
    /// The configuration file is not valid.
    #[error("invalid node configuration {path}: {message}")]
    ConfigInvalid { path: PathBuf, message: String },
    /// The identity key cannot be read or is malformed.
    #[error("identity key {path}: {message}")]
    IdentityKey { path: PathBuf, message: String },
    /// A dataset cannot be loaded.
    #[error("dataset '{dataset}' ({path}): {message}")]
    Dataset {
        dataset: String,
        path: PathBuf,
        message: String,
    },
    /// A declared column is missing from the file.
    #[error(
        "dataset '{dataset}' ({path}): column '{column}' not found; the file has columns: {available}. Fix the column name in the node configuration"
    )]
    MissingColumn {
        dataset: String,
        path: PathBuf,
        column: String,
        available: String,
    },
    /// The coordinator cannot be reached or refused this node.
    #[error("coordinator {url}: {message}")]
    Coordinator { url: String, message: String },
    /// A protocol session failed.
    #[error("job {job_id}: {message}")]
    Session { job_id: String, message: String },
    /// Local state (data directory) cannot be written.
    #[error("data directory {path}: {message}")]
    DataDir { path: PathBuf, message: String },
}
