//! Errors of the coordinator, and the one place they become gRPC statuses:
//! the service's own (`CoordinatorError`), why a query cannot be planned
//! (`PlanError`), why the nodes' releases cannot be read (`ReleaseError`,
//! `TableError`) and what is wrong with the configuration (`ConfigError`,
//! `KeyError`). Messages name the node, dataset, column or file, never a
//! row's value or a key.

use std::path::PathBuf;

use jointly_protocol::{
    ProtocolError,
    crypto::bsgs::BsgsError,
    privacy::accounting::AccountingError,
    queries::{attribution::AttributionError, attribution_query::QueryError, breakdown_plan::Side},
};

/// What went wrong, with the node, dataset, job or file it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinatorError {
    /// The configuration file cannot be read or is invalid.
    #[error("coordinator configuration {path}: {error}")]
    Config { path: PathBuf, error: ConfigError },
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
    /// A query that cannot run as asked: what is wrong with the request
    /// itself, or with the two datasets' advertised schemas.
    #[error("invalid query: {0}")]
    Plan(#[from] PlanError),
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
            CoordinatorError::Plan(_) => tonic::Status::invalid_argument(message),
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

/// A registered node's key that does not parse is the operator's to fix;
/// the node attaching can do nothing about it.
impl From<KeyError> for tonic::Status {
    fn from(e: KeyError) -> Self {
        tonic::Status::internal(e.to_string())
    }
}

/// Why a query cannot be planned against the datasets its nodes advertise.
/// The nodes check again; this refuses early, with what to change.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    #[error("no query kind given")]
    NoQueryKind,
    #[error("the {side} dataset is missing")]
    NoDataset { side: &'static str },
    #[error("node '{node}' advertises an unknown identifier kind")]
    UnknownIdKind { node: String },
    #[error("the query states no privacy terms: give an epsilon, or ask for an exact result")]
    NoPrivacyTerms,
    #[error(transparent)]
    Epsilon(#[from] AccountingError),
    #[error("both datasets are on node '{node}'; a query runs between two nodes")]
    OneNode { node: String },
    /// Boxed: the sides' names would make every `PlanError` large.
    #[error("identifier kinds cannot match: {left} and {right}")]
    KindsCannotMatch { left: Box<Holding>, right: Box<Holding> },
    #[error(
        "--activate names '{named}', which is neither the left node '{left}' nor the right node '{right}'"
    )]
    ActivateNeither {
        named: String,
        left: String,
        right: String,
    },
    #[error(
        "the {} dataset '{dataset}' advertises no column '{column}'; its columns are: {known}",
        .side.label()
    )]
    NoColumn {
        side: Side,
        dataset: String,
        column: String,
        known: String,
    },
    #[error(
        "column '{column}' of the {} dataset '{dataset}' is not allowed as a {use_} by its node's policy",
        .side.label()
    )]
    NotAllowed {
        side: Side,
        dataset: String,
        column: String,
        use_: &'static str,
    },
    #[error("the filter on {}.{column} has no test", .side.label())]
    FilterWithoutTest { side: Side, column: String },
    #[error("group column {}.{column} advertises no values", .side.label())]
    NoGroupValues { side: Side, column: String },
    #[error("measure '{column}' names no side (left or right)")]
    MeasureWithoutSide { column: String },
    #[error("measure {}.{column} advertises no clipping range", .side.label())]
    NoClipRange { side: Side, column: String },
    /// The breakdown's sides make no plan.
    #[error("{0}")]
    Breakdown(ProtocolError),
    /// The plan is larger than one lane holds.
    #[error("{0}: group by fewer columns or ask for fewer measures")]
    TooLarge(ProtocolError),
    #[error(
        "{node}/{dataset} holds {held}, but the query needs {needed} there; `jointly nodes` lists each dataset's kind"
    )]
    WrongKind {
        node: String,
        dataset: String,
        held: String,
        needed: &'static str,
    },
    #[error("{node}/{dataset} holds {held}, but the lift needs the bank's customers table there")]
    NotCustomers {
        node: String,
        dataset: String,
        held: String,
    },
    #[error("node '{node}' advertises no event table '{table}'")]
    NoEventTable { node: String, table: String },
    #[error("{node}/{dataset} advertises no column '{column}' to split test and control")]
    NoSplitColumn {
        node: String,
        dataset: String,
        column: String,
    },
    #[error("column '{column}' of {node}/{dataset} is not allowed as a group by its node's policy")]
    NotAGroup {
        node: String,
        dataset: String,
        column: String,
    },
    #[error("'{value}' is not a declared value of {node}/{dataset}.{column}; its values are: {declared}")]
    Undeclared {
        value: String,
        node: String,
        dataset: String,
        column: String,
        declared: String,
    },
    #[error("the test and control values must differ")]
    SameArms,
    /// The attribution or lift query itself names no runnable plan.
    #[error(transparent)]
    Query(#[from] QueryError),
}

/// One dataset and the identifier kind it holds, as a refusal names it.
#[derive(Clone, Debug, PartialEq)]
pub struct Holding {
    pub node: String,
    pub dataset: String,
    pub kind: String,
}

impl std::fmt::Display for Holding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} holds {}", self.node, self.dataset, self.kind)
    }
}

/// Why the nodes' reports cannot be read into a result. Every one fails the
/// job: the planner reads the text as the job's reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    #[error("the nodes' noise terms do not fit the query's privacy terms")]
    TermsDoNotFit,
    #[error(
        "the nodes' noise terms do not fit the query: exact = {exact} but the nodes stated sigma {} and {}",
        .sigmas[0],
        .sigmas[1]
    )]
    SigmasDoNotFit { exact: bool, sigmas: [f64; 2] },
    #[error("node '{node}' reported a result that is not an overlap count")]
    NotACount { node: String },
    #[error("node '{node}' sent {sent} noise shares for one released count, expected {expected}")]
    Shares {
        node: String,
        sent: usize,
        expected: usize,
    },
    #[error("node '{node}' reported no release for lane {lane}")]
    NoLane { node: String, lane: usize },
    #[error("node '{node}' reported no conversion count")]
    NoConversions { node: String },
    #[error("the lift's lane was not opened")]
    LiftLaneNotOpened,
    #[error("the decrypted release does not fit the breakdown's plan")]
    DoesNotFitPlan,
    #[error("the nodes reported a breakdown for a job that is not one")]
    NotABreakdown,
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("internal error while decrypting: {0}")]
    Decrypting(tokio::task::JoinError),
    /// A lane that does not decrypt, or whose shares do not belong together.
    #[error("{0}")]
    Open(ProtocolError),
    /// Opened lanes that do not fit the attribution or lift plan.
    #[error("{0}")]
    Read(AttributionError),
}

/// Why the decryption table cannot be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    #[error("internal error while preparing the decryption table: {0}")]
    Preparing(tokio::task::JoinError),
    #[error("cannot build the decryption table: {0}")]
    Build(BsgsError),
}

/// What is wrong with the configuration file; `CoordinatorError::Config`
/// names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{0}")]
    Read(std::io::Error),
    /// Not TOML, an unknown key or a value of the wrong type; the text names
    /// the key and its line.
    #[error("{0}")]
    Syntax(toml::de::Error),
    #[error("decryption.table_bits = {bits} is outside {min}..={max} (24 is the default)")]
    TableBits { bits: u32, min: u32, max: u32 },
    #[error("node '{node}' is registered twice")]
    DuplicateNode { node: String },
    #[error("node '{node}': {error}")]
    NodeKey { node: String, error: KeyError },
}

/// Why a registered node's `public_key` is not a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("public_key must be 64 hex characters")]
    NotHex,
    #[error("public_key is not a valid Ed25519 key")]
    NotEd25519,
}
