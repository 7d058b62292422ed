//! Per-person attributes of a dataset, aligned with its sorted identifier list:
//! position `i` describes the person `ids.get(i)`. Built once at load from the
//! declared columns (semantics: `notes/semantics.md`), then queried by filters,
//! group-bys and measures, each checked against the column's declared uses.
//!
//! Every error names the dataset and the column and says what to do; none
//! quotes a cell or a value a query compared cells with.

use std::collections::{HashMap, HashSet};

use jointly_protocol::wire::{Filter, Range, filter::Test};
use polars::prelude::*;

use crate::config::{ColumnConfig, ColumnUse};

/// Marks a row whose identifier was rejected in a row-to-person mapping.
pub const NO_PERSON: u32 = u32::MAX;

/// Most groups one side of a breakdown may have (the product of its group-by
/// columns' domain sizes): beyond this the cells are too small to release
/// anything anyway, and the label table would only cost memory.
pub const MAX_GROUPS: usize = 1 << 20;

/// Why a query's filters, group-bys or measures cannot be applied to a
/// dataset. Names the dataset and the column, never a cell or a value the
/// query compared cells with.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AttributeError {
    #[error("dataset '{dataset}': column '{column}': the filter has no test; set equals, one_of or range")]
    NoTest { dataset: String, column: String },
    #[error(
        "dataset '{dataset}': column '{column}': the one_of filter lists no values and would match no one; list at least one"
    )]
    EmptyOneOf { dataset: String, column: String },
    #[error("dataset '{dataset}': column '{column}': {problem}")]
    Range {
        dataset: String,
        column: String,
        problem: RangeProblem,
    },
    #[error("dataset '{dataset}': column '{column}': named twice in the group-by columns; name it once")]
    GroupedTwice { dataset: String, column: String },
    #[error(
        "dataset '{dataset}': grouping by {columns} gives more than {max} groups; group by fewer columns"
    )]
    TooManyGroups {
        dataset: String,
        /// The group-by columns up to the one that overflowed, comma-separated.
        columns: String,
        max: usize,
    },
    #[error(
        "dataset '{dataset}': column '{column}' is not declared in this node's configuration (columns); declared columns: {declared}. Choose one of them"
    )]
    NotDeclared {
        dataset: String,
        column: String,
        /// The declared columns, comma-separated ("none" without any).
        declared: String,
    },
    #[error(
        "dataset '{dataset}': column '{column}' is not allowed as a {use_} by this node's policy (columns.uses); ask the node's operator or choose another column"
    )]
    NotAllowed {
        dataset: String,
        column: String,
        use_: ColumnUse,
    },
    /// A bug, not a user's mistake; polars' own message is not passed on, as
    /// it may quote a value.
    #[error("dataset '{dataset}': internal error in the attribute table; report this to the node's operator")]
    Internal { dataset: String },
}

/// What is wrong with a range filter's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeProblem {
    #[error("a range bound is not a finite number; use finite bounds or leave one out")]
    NotFinite,
    #[error("the range's min is above its max; swap them")]
    Inverted,
}

/// The attributes of every person of a dataset.
pub struct Attributes {
    dataset: String,
    columns: Vec<ColumnConfig>,
    len: usize,
    /// Text form at the person's first row of each group or filter column.
    first: DataFrame,
    /// Per measure column: its name, the clipped rounded per-person sums, and
    /// the bound on their magnitude.
    measures: Vec<(String, Vec<i64>, u64)>,
}

impl std::fmt::Debug for Attributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attributes")
            .field("dataset", &self.dataset)
            .field(
                "columns",
                &self.columns.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
            .field("len", &self.len)
            .finish()
    }
}

/// Each person's group for some group-by columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grouping {
    /// Group index of every person, in identifier order.
    pub codes: Vec<u32>,
    /// Number of groups, empty ones included.
    pub count: usize,
    /// The labels (one per group-by column) of each group index.
    pub labels: Vec<Vec<String>>,
}

/// One measure column's per-person values.
#[derive(Clone, Copy, Debug)]
pub struct MeasureValues<'a> {
    /// Clipped and rounded, in identifier order.
    pub values: &'a [i64],
    /// No value exceeds this in magnitude: max(|lo|, |hi|) rounded up.
    pub bound: u64,
}

impl Attributes {
    /// `len` persons and no declared columns.
    pub fn without_columns(dataset: &str, len: usize) -> Self {
        Self {
            dataset: dataset.to_string(),
            columns: Vec::new(),
            len,
            first: DataFrame::empty(),
            measures: Vec::new(),
        }
    }

    /// Builds the attributes of `persons` persons from `rows`, a table of the
    /// declared columns in file order, where `person_of_row[r]` is the
    /// position of row `r`'s person or [`NO_PERSON`].
    pub(crate) fn build(
        dataset: &str,
        columns: &[ColumnConfig],
        rows: &DataFrame,
        person_of_row: &[u32],
        persons: usize,
    ) -> PolarsResult<Self> {
        polars_ensure!(
            rows.height() == person_of_row.len(),
            ComputeError: "the attribute table and the identifier column differ in length"
        );
        let mut first_row: Vec<IdxSize> = vec![IdxSize::MAX; persons];
        for (row, &p) in person_of_row.iter().enumerate() {
            if p != NO_PERSON && first_row[p as usize] == IdxSize::MAX {
                // Rows are counted in u32 at load, so every row index fits.
                first_row[p as usize] = row as IdxSize;
            }
        }
        polars_ensure!(
            !first_row.contains(&IdxSize::MAX),
            ComputeError: "a person without a row in the attribute table"
        );
        let first_row = IdxCa::from_vec(PlSmallStr::EMPTY, first_row);
        let mut texts = Vec::new();
        let mut measures = Vec::new();
        for c in columns {
            let column = rows.column(&c.name)?;
            if c.allows(ColumnUse::Group) || c.allows(ColumnUse::Filter) {
                let taken = column.take(&first_row)?;
                texts.push(taken.cast(&DataType::String)?);
            }
            if let (true, Some([lo, hi])) = (c.allows(ColumnUse::Measure), c.clip) {
                let text = column.cast(&DataType::String)?;
                let values = person_sums(text.str()?, person_of_row, persons)
                    .into_iter()
                    // A NaN sum cannot arise (cells are finite or count 0), and
                    // `as` saturates; the config bounds the clip by 1e12.
                    .map(|s| s.clamp(lo, hi).round() as i64)
                    .collect();
                let bound = lo.abs().max(hi.abs()).ceil() as u64;
                measures.push((c.name.clone(), values, bound));
            }
        }
        Ok(Self {
            dataset: dataset.to_string(),
            columns: columns.to_vec(),
            len: persons,
            first: DataFrame::new(persons, texts)?,
            measures,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn columns(&self) -> &[ColumnConfig] {
        &self.columns
    }

    /// Ascending positions of the persons passing every filter.
    pub fn select(&self, filters: &[Filter]) -> Result<Vec<u32>, AttributeError> {
        let mut passing: Option<BooleanChunked> = None;
        for f in filters {
            let text = self.text(&f.column, ColumnUse::Filter)?;
            let (dataset, column) = (self.dataset.clone(), f.column.clone());
            let mask = match &f.test {
                None => return Err(AttributeError::NoTest { dataset, column }),
                Some(Test::Equals(value)) => text.equal(value.as_str()),
                Some(Test::OneOf(set)) => {
                    if set.values.is_empty() {
                        return Err(AttributeError::EmptyOneOf { dataset, column });
                    }
                    let set: HashSet<&str> = set.values.iter().map(String::as_str).collect();
                    text.iter().map(|v| v.map(|s| set.contains(s))).collect()
                }
                Some(Test::Range(range)) => {
                    in_range(text, range).map_err(|problem| AttributeError::Range {
                        dataset,
                        column,
                        problem,
                    })?
                }
            };
            // Missing values compare as null; they fail every test.
            let mask = mask.fill_null_with_values(false).map_err(|_| self.internal())?;
            passing = Some(match passing {
                None => mask,
                Some(before) => &before & &mask,
            });
        }
        Ok(match passing {
            None => (0..self.len as u32).collect(),
            Some(mask) => mask
                .iter()
                .enumerate()
                .filter(|(_, pass)| *pass == Some(true))
                .map(|(i, _)| i as u32)
                .collect(),
        })
    }

    /// Every person's group for these group-by columns, the first column most
    /// significant in the index. No columns: one group, with no labels.
    pub fn groups(&self, columns: &[String]) -> Result<Grouping, AttributeError> {
        let mut codes = vec![0u32; self.len];
        let mut domains: Vec<Vec<String>> = Vec::with_capacity(columns.len());
        let mut count = 1usize;
        for (k, name) in columns.iter().enumerate() {
            if columns[..k].contains(name) {
                return Err(AttributeError::GroupedTwice {
                    dataset: self.dataset.clone(),
                    column: name.clone(),
                });
            }
            let text = self.text(name, ColumnUse::Group)?;
            let domain = self.config(name).map(ColumnConfig::domain).unwrap_or_default();
            count = count.saturating_mul(domain.len());
            if count > MAX_GROUPS {
                return Err(AttributeError::TooManyGroups {
                    dataset: self.dataset.clone(),
                    columns: columns[..=k].join(", "),
                    max: MAX_GROUPS,
                });
            }
            // Declared values are distinct and exclude "(other)", checked at config parse.
            let index: HashMap<&str, u32> = domain[..domain.len() - 1]
                .iter()
                .enumerate()
                .map(|(i, v)| (v.as_str(), i as u32))
                .collect();
            let other = (domain.len() - 1) as u32;
            let radix = domain.len() as u32;
            for (code, value) in codes.iter_mut().zip(text.iter()) {
                let label = value.and_then(|v| index.get(v).copied()).unwrap_or(other);
                // count <= MAX_GROUPS < 2^32 bounds every intermediate code.
                *code = *code * radix + label;
            }
            domains.push(domain);
        }
        let labels = (0..count)
            .map(|group| {
                let mut rest = group;
                let mut tuple: Vec<String> = domains
                    .iter()
                    .rev()
                    .map(|d| {
                        let label = d[rest % d.len()].clone();
                        rest /= d.len();
                        label
                    })
                    .collect();
                tuple.reverse();
                tuple
            })
            .collect();
        Ok(Grouping { codes, count, labels })
    }

    /// Each person's clipped, rounded value of a measure column.
    pub fn measure(&self, column: &str) -> Result<MeasureValues<'_>, AttributeError> {
        self.allowed(column, ColumnUse::Measure)?;
        let (_, values, bound) = self
            .measures
            .iter()
            .find(|(name, _, _)| name == column)
            .ok_or_else(|| self.internal())?;
        Ok(MeasureValues {
            values,
            bound: *bound,
        })
    }

    fn config(&self, column: &str) -> Option<&ColumnConfig> {
        self.columns.iter().find(|c| c.name == column)
    }

    fn allowed(&self, column: &str, what: ColumnUse) -> Result<&ColumnConfig, AttributeError> {
        let Some(config) = self.config(column) else {
            let declared: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
            return Err(AttributeError::NotDeclared {
                dataset: self.dataset.clone(),
                column: column.to_string(),
                declared: if declared.is_empty() {
                    "none".to_string()
                } else {
                    declared.join(", ")
                },
            });
        };
        if !config.allows(what) {
            return Err(AttributeError::NotAllowed {
                dataset: self.dataset.clone(),
                column: column.to_string(),
                use_: what,
            });
        }
        Ok(config)
    }

    fn text(&self, column: &str, what: ColumnUse) -> Result<&StringChunked, AttributeError> {
        self.allowed(column, what)?;
        self.first
            .column(column)
            .and_then(Column::str)
            .map_err(|_| self.internal())
    }

    fn internal(&self) -> AttributeError {
        AttributeError::Internal {
            dataset: self.dataset.clone(),
        }
    }
}

/// The number a cell counts as: its text trimmed, parsed, finite.
fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Per person, the sum of the numbers of its rows (missing, unparseable and
/// non-finite cells count 0), added in file order.
fn person_sums(text: &StringChunked, person_of_row: &[u32], persons: usize) -> Vec<f64> {
    let mut sums = vec![0.0f64; persons];
    for (value, &p) in text.iter().zip(person_of_row) {
        if p != NO_PERSON
            && let Some(x) = value.and_then(number)
        {
            sums[p as usize] += x;
        }
    }
    sums
}

/// Whether each value, read as a number, lies in the range (inclusive);
/// null where the value is missing or not a finite number.
fn in_range(text: &StringChunked, range: &Range) -> Result<BooleanChunked, RangeProblem> {
    for bound in [range.min, range.max].into_iter().flatten() {
        if !bound.is_finite() {
            return Err(RangeProblem::NotFinite);
        }
    }
    if let (Some(lo), Some(hi)) = (range.min, range.max)
        && lo > hi
    {
        return Err(RangeProblem::Inverted);
    }
    let numbers: Float64Chunked = text.iter().map(|v| v.and_then(number)).collect();
    let mut mask = numbers.is_not_null();
    if let Some(lo) = range.min {
        mask = &mask & &numbers.gt_eq(lo);
    }
    if let Some(hi) = range.max {
        mask = &mask & &numbers.lt_eq(hi);
    }
    Ok(mask)
}

#[cfg(test)]
#[path = "attributes_tests.rs"]
mod tests;
