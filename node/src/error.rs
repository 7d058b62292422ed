//! Errors of the node. Each names the file, dataset, column, peer or step
//! involved and says what to do; none carries an identifier or a row value.

use std::path::PathBuf;

use jointly_protocol::privacy::accounting::AccountingError;

/// Why the node cannot start, or why a session failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The configuration file cannot be read.
    #[error("cannot read node configuration {path}: {source}")]
    ConfigRead { path: PathBuf, source: std::io::Error },
    /// The configuration file is not valid.
    #[error("invalid node configuration {path}: {problem}")]
    ConfigInvalid { path: PathBuf, problem: ConfigError },
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

/// What is wrong in a node configuration, by the key to fix. Rendered after
/// the file's name by [`NodeError::ConfigInvalid`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not TOML, an unknown key, or a value of the wrong type.
    #[error("{0}")]
    Toml(String),
    #[error("`name` is empty: set the name this node is registered under")]
    EmptyName,
    #[error("limits.chunk_points = {value} is outside 1..={max}")]
    ChunkPoints { value: usize, max: usize },
    #[error("dataset name '{name}' appears twice")]
    DatasetTwice { name: String },
    #[error("dataset name '{name}' appears twice (datasets and events share names)")]
    EventsNameTwice { name: String },
    #[error("dataset '{dataset}', column '{column}': {problem}")]
    Column {
        dataset: String,
        column: String,
        problem: ColumnProblem,
    },
    #[error("events '{name}': {problem}")]
    Events { name: String, problem: EventsProblem },
    #[error("policy.max_epsilon: {0}")]
    MaxEpsilon(AccountingError),
    #[error("[[policy.planners]] entry {entry}: {problem}")]
    PlannerRule {
        /// 1-based, as a person counts the entries in the file.
        entry: usize,
        problem: PlannerRuleProblem,
    },
    #[error("policy.delta: {0} (1e-6 is usual)")]
    Delta(AccountingError),
    #[error(
        "policy.allow_activation names '{partner}', which is not in policy.partners; add it there or remove it"
    )]
    ActivationNotPartner { partner: String },
    #[error("policy.budgets names dataset '{dataset}', which is not among [[datasets]] or [[events]]")]
    BudgetUnknownDataset { dataset: String },
    #[error("policy.budgets for '{dataset}' with '{partner}': {reason}")]
    BudgetEpsilon {
        dataset: String,
        partner: String,
        reason: AccountingError,
    },
    #[error("policy.budgets has two entries for dataset '{dataset}' with partner '{partner}'")]
    BudgetTwice { dataset: String, partner: String },
    #[error(
        "partner '{partner}' has no pinned key in policy.partner_keys: without it the coordinator could stand in for '{partner}'. Add its public key (from `jointly-node keygen`), or set test_deployment = true for a test deployment"
    )]
    UnpinnedPartner { partner: String },
    #[error(
        "coordinator.url = {url:?} is plain HTTP to a host other than loopback; use https:// with coordinator.ca_cert"
    )]
    PlainHttp { url: String },
    /// `default_country` names no region or calling code the normalizer knows.
    #[error("{0}")]
    DefaultCountry(String),
}

/// What is wrong with one declared column of a dataset.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ColumnProblem {
    #[error("it is the `id_column`; remove it from `columns`")]
    IsIdColumn,
    #[error("named twice in `columns`; merge the entries")]
    NamedTwice,
    #[error("`uses` is empty; list at least one of \"group\", \"measure\", \"filter\", or remove the column")]
    NoUses,
    #[error("`uses` lists \"{0}\" twice; list each use once")]
    UseTwice(&'static str),
    #[error("a group column needs `values`, the labels to break results down by")]
    GroupNeedsValues,
    #[error("`values` is set but `uses` does not include \"group\"; add it or remove `values`")]
    ValuesWithoutGroup,
    #[error("`values` has {count} entries; list between 1 and {max}")]
    ValuesCount { count: usize, max: usize },
    /// Entries by their 1-based index, never by value: a label could be a
    /// customer's data.
    #[error(
        "`values` entry {entry} is \"{label}\", which is reserved for values outside the list; remove it"
    )]
    ValueReserved { entry: usize, label: &'static str },
    #[error("`values` entries {first} and {second} are equal; list each value once")]
    ValuesEqual { first: usize, second: usize },
    #[error("a measure column needs `clip = [lo, hi]`, the range each person's value is clipped to")]
    MeasureNeedsClip,
    #[error("`clip` is set but `uses` does not include \"measure\"; add it or remove `clip`")]
    ClipWithoutMeasure,
    #[error("`clip` must be two finite numbers [lo, hi] with lo <= hi")]
    ClipNotFinite,
    #[error("`clip` bounds must lie within ±{max:e}")]
    ClipTooLarge { max: f64 },
}

/// What is wrong with one `[[events]]` table.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventsProblem {
    #[error("exposures need `channel_column` and `campaign_column`")]
    ExposuresNeedColumns,
    #[error("`value_column` is for conversions; remove it")]
    ValueColumnForConversions,
    #[error("conversions need `value_column`")]
    ConversionsNeedValue,
    #[error("channels and campaigns are for exposures; remove them")]
    ChannelsForExposures,
    #[error("`{key}` is empty; declare the labels results list")]
    NoLabels { key: &'static str },
    #[error("`{key}` declares more than {max} labels")]
    TooManyLabels { key: &'static str, max: usize },
    #[error("`{key}` entry {entry} is empty, padded with spaces, or repeated")]
    BadLabel { key: &'static str, entry: usize },
}

/// What is wrong with one `[[policy.planners]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlannerRuleProblem {
    #[error("`datasets` is empty; name datasets or \"*\"")]
    NoDatasets,
    #[error("dataset '{0}' is not among [[datasets]] or [[events]]")]
    UnknownDataset(String),
    #[error("name `planners` or `organisations`, or the entry allows nobody")]
    AllowsNobody,
    #[error("`kinds` names '{kind}'; use {allowed}")]
    UnknownKind { kind: String, allowed: String },
}
