//! `[[datasets]]` and `[[events]]`: the tables a node loads, their columns
//! and the uses it allows for each, and the checks on their declarations.

use std::path::{Path, PathBuf};

use jointly_protocol::ids::normalize::IdKind;
use serde::Deserialize;

use crate::error::{ColumnProblem, ConfigError, EventsProblem, NodeError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Csv,
    Parquet,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// Name planners use (`NODE/DATASET`).
    pub name: String,
    /// CSV or Parquet file as exported.
    pub path: PathBuf,
    /// Inferred from the extension when absent.
    pub format: Option<FileFormat>,
    /// Column holding the identifier.
    pub id_column: String,
    /// phone, email, cn_id, sha256_phone, sha256_email or custom.
    pub id_kind: IdKind,
    /// Other columns and the uses this node allows for them.
    #[serde(default)]
    pub columns: Vec<ColumnConfig>,
}

/// What an event table holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// Who saw which ad, on which channel, in which campaign, when.
    Exposures,
    /// Who converted, when, for how much.
    Conversions,
}

impl EventKind {
    pub fn label(self) -> &'static str {
        match self {
            EventKind::Exposures => "exposures",
            EventKind::Conversions => "conversions",
        }
    }
}

/// An event table (`examples/ATTRIBUTION.md` gives the row contract). Only
/// the identifier, the timestamp and the columns named here are read.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    pub name: String,
    pub kind: EventKind,
    pub path: PathBuf,
    pub format: Option<FileFormat>,
    pub id_column: String,
    pub id_kind: IdKind,
    /// RFC 3339 timestamps with an offset ("2026-03-01T09:30:00+08:00").
    pub ts_column: String,
    /// Exposures: the channel and campaign columns, and their declared values
    /// in the order results list them. A row with another label is dropped.
    pub channel_column: Option<String>,
    pub campaign_column: Option<String>,
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub campaigns: Vec<String>,
    /// Conversions: the value in CNY ("129.90"); a value that does not parse
    /// counts as 0.
    pub value_column: Option<String>,
}

impl EventsConfig {
    pub fn format(&self) -> Result<FileFormat, NodeError> {
        format_of(&self.name, &self.path, self.format)
    }

    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let refuse = |problem| ConfigError::Events {
            name: self.name.clone(),
            problem,
        };
        let distinct = |list: &[String], key: &'static str| {
            if list.is_empty() {
                return Err(refuse(EventsProblem::NoLabels { key }));
            }
            if list.len() > MAX_GROUP_VALUES {
                return Err(refuse(EventsProblem::TooManyLabels {
                    key,
                    max: MAX_GROUP_VALUES,
                }));
            }
            for (i, v) in list.iter().enumerate() {
                if v.trim() != v || v.is_empty() || list[..i].contains(v) {
                    return Err(refuse(EventsProblem::BadLabel { key, entry: i + 1 }));
                }
            }
            Ok(())
        };
        match self.kind {
            EventKind::Exposures => {
                if self.channel_column.is_none() || self.campaign_column.is_none() {
                    return Err(refuse(EventsProblem::ExposuresNeedColumns));
                }
                if self.value_column.is_some() {
                    return Err(refuse(EventsProblem::ValueColumnForConversions));
                }
                distinct(&self.channels, "channels")?;
                distinct(&self.campaigns, "campaigns")
            }
            EventKind::Conversions => {
                if self.value_column.is_none() {
                    return Err(refuse(EventsProblem::ConversionsNeedValue));
                }
                if self.channel_column.is_some()
                    || self.campaign_column.is_some()
                    || !self.channels.is_empty()
                    || !self.campaigns.is_empty()
                {
                    return Err(refuse(EventsProblem::ChannelsForExposures));
                }
                Ok(())
            }
        }
    }
}

/// A column of a dataset other than the identifier, and what this node lets
/// planners do with it. Every use is advertised; anything not listed is refused.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnConfig {
    pub name: String,
    /// What queries may do with the column.
    pub uses: Vec<ColumnUse>,
    /// Group columns: the labels results are broken down by; every other value
    /// (and a missing one) counts as "(other)". At most [`MAX_GROUP_VALUES`].
    pub values: Option<Vec<String>>,
    /// Measure columns: `[lo, hi]` each person's sum is clipped to, which
    /// bounds what one person can change a released sum by.
    pub clip: Option<[f64; 2]>,
}

/// What a query may do with a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnUse {
    /// Break results down by the column's declared values.
    Group,
    /// Sum the column (clipped) per result cell.
    Measure,
    /// Keep only the rows passing a test on the column.
    Filter,
}

impl ColumnUse {
    pub fn label(self) -> &'static str {
        match self {
            ColumnUse::Group => "group",
            ColumnUse::Measure => "measure",
            ColumnUse::Filter => "filter",
        }
    }
}

impl std::fmt::Display for ColumnUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// The label of every value of a group column outside its declared `values`.
pub const OTHER_LABEL: &str = "(other)";
/// Most declared `values` of one group column: cells multiply across columns.
pub const MAX_GROUP_VALUES: usize = 64;
/// Largest clipping bound in magnitude, so that sums over any dataset stay
/// far inside an i64 and exact in the protocol's plaintext space.
pub const MAX_CLIP: f64 = 1e12;

impl ColumnConfig {
    pub fn allows(&self, what: ColumnUse) -> bool {
        self.uses.contains(&what)
    }

    /// The labels of a group column in cell order: the declared values, then
    /// "(other)". Empty for a column without `values`.
    pub fn domain(&self) -> Vec<String> {
        match &self.values {
            Some(values) => values
                .iter()
                .cloned()
                .chain(std::iter::once(OTHER_LABEL.to_string()))
                .collect(),
            None => Vec::new(),
        }
    }

    /// A measure's clipping bound `max(|lo|, |hi|)` rounded up (0 without a
    /// clip): the scale of its noise and the coordinator's too (it computes
    /// the same from the advertised range).
    pub fn bound(&self) -> u64 {
        self.clip
            .map_or(0, |[lo, hi]| lo.abs().max(hi.abs()).ceil() as u64)
    }

    /// What is wrong with the column's declaration, if anything.
    fn problem(&self) -> Option<ColumnProblem> {
        if self.uses.is_empty() {
            return Some(ColumnProblem::NoUses);
        }
        for (i, u) in self.uses.iter().enumerate() {
            if self.uses[..i].contains(u) {
                return Some(ColumnProblem::UseTwice(u.label()));
            }
        }
        match (&self.values, self.allows(ColumnUse::Group)) {
            (None, true) => return Some(ColumnProblem::GroupNeedsValues),
            (Some(_), false) => return Some(ColumnProblem::ValuesWithoutGroup),
            (Some(values), true) => {
                if values.is_empty() || values.len() > MAX_GROUP_VALUES {
                    return Some(ColumnProblem::ValuesCount {
                        count: values.len(),
                        max: MAX_GROUP_VALUES,
                    });
                }
                for (i, v) in values.iter().enumerate() {
                    if v == OTHER_LABEL {
                        return Some(ColumnProblem::ValueReserved {
                            entry: i + 1,
                            label: OTHER_LABEL,
                        });
                    }
                    if let Some(j) = values[..i].iter().position(|w| w == v) {
                        return Some(ColumnProblem::ValuesEqual {
                            first: j + 1,
                            second: i + 1,
                        });
                    }
                }
            }
            (None, false) => {}
        }
        match (self.clip, self.allows(ColumnUse::Measure)) {
            (None, true) => Some(ColumnProblem::MeasureNeedsClip),
            (Some(_), false) => Some(ColumnProblem::ClipWithoutMeasure),
            (Some([lo, hi]), true) => {
                if !lo.is_finite() || !hi.is_finite() || lo > hi {
                    Some(ColumnProblem::ClipNotFinite)
                } else if lo.abs().max(hi.abs()) > MAX_CLIP {
                    Some(ColumnProblem::ClipTooLarge { max: MAX_CLIP })
                } else {
                    None
                }
            }
            (None, false) => None,
        }
    }
}

impl DatasetConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let refuse = |column: &str, problem| ConfigError::Column {
            dataset: self.name.clone(),
            column: column.to_string(),
            problem,
        };
        for (i, c) in self.columns.iter().enumerate() {
            if c.name == self.id_column {
                return Err(refuse(&c.name, ColumnProblem::IsIdColumn));
            }
            if self.columns[..i].iter().any(|d| d.name == c.name) {
                return Err(refuse(&c.name, ColumnProblem::NamedTwice));
            }
            if let Some(problem) = c.problem() {
                return Err(refuse(&c.name, problem));
            }
        }
        Ok(())
    }

    pub fn format(&self) -> Result<FileFormat, NodeError> {
        format_of(&self.name, &self.path, self.format)
    }
}

/// The declared format, or the one the file's extension names.
fn format_of(name: &str, path: &Path, format: Option<FileFormat>) -> Result<FileFormat, NodeError> {
    if let Some(f) = format {
        return Ok(f);
    }
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") | Some("txt") => Ok(FileFormat::Csv),
        Some("parquet") | Some("pq") => Ok(FileFormat::Parquet),
        _ => Err(NodeError::Dataset {
            dataset: name.to_string(),
            path: path.to_path_buf(),
            message: "cannot tell the file format from its extension: set format = \"csv\" or \"parquet\""
                .into(),
        }),
    }
}
