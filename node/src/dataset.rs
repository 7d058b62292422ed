//! Loads a dataset as exported (CSV or Parquet) with polars, normalizes and
//! de-duplicates its identifiers, and counts rejected rows per reason. Only the
//! declared columns are read, and the table is dropped once the identifiers are
//! packed and the per-person attributes taken, so a node holds about 20 bytes
//! per customer between sessions, plus its declared columns.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use jointly_protocol::{
    ids::idlist::{IdList, PackedIds},
    ids::normalize::{IdKind, Normalizer, RejectReason},
};
use polars::prelude::*;
use rayon::prelude::*;

use crate::{
    attributes::{Attributes, NO_PERSON},
    config::{ColumnConfig, DatasetConfig, FileFormat},
    error::NodeError,
};

/// A dataset ready for protocol sessions.
#[derive(Debug)]
pub struct LoadedDataset {
    pub name: String,
    pub kind: IdKind,
    pub ids: Arc<IdList>,
    pub columns: Vec<ColumnConfig>,
    /// Per-person values of the declared columns, aligned with `ids`.
    pub attributes: Attributes,
    pub report: LoadReport,
}

/// What loading found, in counts only.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadReport {
    pub rows: u64,
    pub distinct: u64,
    pub duplicate_rows: u64,
    /// Rejected rows per reason code.
    pub rejected: BTreeMap<String, u64>,
}

impl LoadReport {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// Rounds to two significant digits: what a node advertises of its size.
pub fn round_count(n: u64) -> u64 {
    if n < 100 {
        return n;
    }
    let mut scale = 1u64;
    while n / scale >= 100 {
        scale *= 10;
    }
    ((n + scale / 2) / scale) * scale
}

/// Polars' messages may quote cell contents; keep the message, drop the quotes'
/// contents, so no row value reaches a log or an error.
pub(crate) fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quote: Option<char> = None;
    for c in message.chars() {
        match quote {
            Some(q) if c == q => {
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None => {
                if matches!(c, '`' | '"' | '\'') {
                    quote = Some(c);
                    out.push(c);
                    out.push('…');
                } else {
                    out.push(c);
                }
            }
        }
    }
    out.lines().next().unwrap_or("").chars().take(300).collect()
}

pub fn load(config: &DatasetConfig, normalizer: &Normalizer) -> Result<LoadedDataset, NodeError> {
    let fail = |message: String| NodeError::Dataset {
        dataset: config.name.clone(),
        path: config.path.clone(),
        message,
    };
    let names: Vec<&str> = std::iter::once(config.id_column.as_str())
        .chain(config.columns.iter().map(|c| c.name.as_str()))
        .collect();
    let mut table = open_table(&config.name, &config.path, config.format()?, &names)?;
    let id = id_text(&table, &config.id_column).map_err(|e| fail(redact(&e.to_string())))?;
    let (ids, report, attributes) = if config.columns.is_empty() {
        drop(table);
        let (ids, report) = normalize_all(id.len(), |i| id.get(i), config.id_kind, normalizer);
        let attributes = Attributes::without_columns(&config.name, ids.len());
        (ids, report, attributes)
    } else {
        let (ids, report, person_of_row) =
            normalize_all_with_positions(id.len(), |i| id.get(i), config.id_kind, normalizer);
        drop(id);
        let _ = table.drop_in_place(&config.id_column);
        let attributes = Attributes::build(&config.name, &config.columns, &table, &person_of_row, ids.len())
            .map_err(|e| {
                fail(format!(
                    "cannot read the declared columns as text: {}",
                    redact(&e.to_string())
                ))
            })?;
        (ids, report, attributes)
    };
    Ok(LoadedDataset {
        name: config.name.clone(),
        kind: config.id_kind,
        ids: Arc::new(ids),
        columns: config.columns.clone(),
        attributes,
        report,
    })
}

/// Reads `names` (the identifier column first) of a dataset's file, after
/// checking the file and the columns exist; messages name the dataset, the
/// file and the column, never a cell. A CSV is read as text throughout
/// (numbers stay as written: a phone number must never pass through an
/// integer); Parquet columns keep their stored types.
pub(crate) fn open_table(
    dataset: &str,
    path: &Path,
    format: FileFormat,
    names: &[&str],
) -> Result<DataFrame, NodeError> {
    let fail = |message: String| NodeError::Dataset {
        dataset: dataset.to_string(),
        path: path.to_path_buf(),
        message,
    };
    if !path.is_file() {
        return Err(fail(
            "file not found; check `path` in this dataset's entry of the node configuration".into(),
        ));
    }
    let available = column_names(path, format).map_err(|e| fail(redact(&e.to_string())))?;
    for column in names {
        if !available.iter().any(|a| a == column) {
            return Err(NodeError::MissingColumn {
                dataset: dataset.to_string(),
                path: path.to_path_buf(),
                column: column.to_string(),
                available: available.join(", "),
            });
        }
    }
    let table = read_columns(path, format, names).map_err(|e| fail(redact(&e.to_string())))?;
    // Persons and rows are indexed in u32 (and polars' IdxSize).
    if table.height() >= u32::MAX as usize {
        return Err(fail(format!(
            "the file has more than {} rows; split it into several datasets",
            u32::MAX - 1
        )));
    }
    Ok(table)
}

fn column_names(path: &Path, format: FileFormat) -> PolarsResult<Vec<String>> {
    match format {
        FileFormat::Csv => {
            let header = CsvReadOptions::default()
                .with_has_header(true)
                .with_infer_schema_length(Some(0))
                .with_n_rows(Some(0))
                .try_into_reader_with_file_path(Some(path.to_path_buf()))?
                .finish()?;
            Ok(header.get_column_names().iter().map(|n| n.to_string()).collect())
        }
        FileFormat::Parquet => {
            let file = std::fs::File::open(path)?;
            let schema = ParquetReader::new(file).schema()?;
            Ok(schema.iter_names().map(|n| n.to_string()).collect())
        }
    }
}

fn read_columns(path: &Path, format: FileFormat, names: &[&str]) -> PolarsResult<DataFrame> {
    match format {
        FileFormat::Csv => CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .with_columns(Some(names.iter().map(|&n| PlSmallStr::from(n)).collect()))
            .try_into_reader_with_file_path(Some(path.to_path_buf()))?
            .finish(),
        FileFormat::Parquet => {
            let file = std::fs::File::open(path)?;
            ParquetReader::new(file)
                .with_columns(Some(names.iter().map(|n| n.to_string()).collect()))
                .finish()
        }
    }
}

/// A column as text, in one chunk for random access.
pub(crate) fn id_text(table: &DataFrame, column: &str) -> PolarsResult<StringChunked> {
    let series = table.column(column)?.cast(&DataType::String)?;
    Ok(series.str()?.rechunk().into_owned())
}

/// Normalizes rows `value(0..rows)` in parallel, then sorts and de-duplicates.
/// Each worker packs what it keeps, so no `String` per row is ever held.
pub fn normalize_all<'a, F>(
    rows: usize,
    value: F,
    kind: IdKind,
    normalizer: &Normalizer,
) -> (IdList, LoadReport)
where
    F: Fn(usize) -> Option<&'a str> + Sync,
{
    let normalized = normalize_rows(rows, value, kind, normalizer, false);
    let valid_rows: usize = normalized.kept.iter().map(PackedIds::len).sum();
    let ids = IdList::from_packed(kind, normalized.kept);
    let report = report(rows, valid_rows, &ids, normalized.rejected);
    (ids, report)
}

/// As [`normalize_all`], and also the position in the list of each row's
/// identifier, or [`NO_PERSON`] for a rejected row: how per-row attributes
/// find their person without normalizing a second time.
pub fn normalize_all_with_positions<'a, F>(
    rows: usize,
    value: F,
    kind: IdKind,
    normalizer: &Normalizer,
) -> (IdList, LoadReport, Vec<u32>)
where
    F: Fn(usize) -> Option<&'a str> + Sync,
{
    let normalized = normalize_rows(rows, value, kind, normalizer, true);
    let valid_rows: usize = normalized.kept.iter().map(PackedIds::len).sum();
    let (ids, kept_positions) = IdList::from_packed_with_positions(kind, normalized.kept);
    // Kept identifiers are packed in row order, so the k-th kept row is the
    // k-th row not rejected.
    let mut rejected_rows = normalized.rejected_rows.into_iter().peekable();
    let mut kept = kept_positions.into_iter();
    let person_of_row = (0..rows as u32)
        .map(|row| {
            if rejected_rows.next_if_eq(&row).is_some() {
                NO_PERSON
            } else {
                kept.next().unwrap_or(NO_PERSON)
            }
        })
        .collect();
    let report = report(rows, valid_rows, &ids, normalized.rejected);
    (ids, report, person_of_row)
}

struct Normalized {
    /// Kept identifiers, chunks in row order.
    kept: Vec<PackedIds>,
    rejected: BTreeMap<RejectReason, u64>,
    /// Indices of the rejected rows, ascending; only when asked for.
    rejected_rows: Vec<u32>,
}

fn normalize_rows<'a, F>(
    rows: usize,
    value: F,
    kind: IdKind,
    normalizer: &Normalizer,
    track_rows: bool,
) -> Normalized
where
    F: Fn(usize) -> Option<&'a str> + Sync,
{
    const GRAIN: usize = 16_384;
    let parts: Vec<(PackedIds, BTreeMap<RejectReason, u64>, Vec<u32>)> = (0..rows.div_ceil(GRAIN))
        .into_par_iter()
        .map(|chunk| {
            let mut kept = PackedIds::default();
            let mut rejected: BTreeMap<RejectReason, u64> = BTreeMap::new();
            let mut rejected_rows = Vec::new();
            for i in chunk * GRAIN..((chunk + 1) * GRAIN).min(rows) {
                match normalizer.normalize(kind, value(i).unwrap_or("")) {
                    Ok(v) => kept.push(&v),
                    Err(reason) => {
                        *rejected.entry(reason).or_default() += 1;
                        if track_rows {
                            // The caller keeps rows below u32::MAX.
                            rejected_rows.push(i as u32);
                        }
                    }
                }
            }
            (kept, rejected, rejected_rows)
        })
        .collect();
    let mut out = Normalized {
        kept: Vec::with_capacity(parts.len()),
        rejected: BTreeMap::new(),
        rejected_rows: Vec::new(),
    };
    for (kept, rejected, rows) in parts {
        for (k, n) in rejected {
            *out.rejected.entry(k).or_default() += n;
        }
        out.kept.push(kept);
        out.rejected_rows.extend(rows);
    }
    out
}

fn report(rows: usize, valid_rows: usize, ids: &IdList, rejected: BTreeMap<RejectReason, u64>) -> LoadReport {
    LoadReport {
        rows: rows as u64,
        distinct: ids.len() as u64,
        duplicate_rows: (valid_rows - ids.len()) as u64,
        rejected: rejected
            .into_iter()
            .map(|(k, n)| (k.code().to_string(), n))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_keeps_two_digits() {
        assert_eq!(round_count(0), 0);
        assert_eq!(round_count(99), 99);
        assert_eq!(round_count(123), 120);
        assert_eq!(round_count(1_049_999), 1_000_000);
        assert_eq!(round_count(1_050_000), 1_100_000);
    }

    #[test]
    fn redaction_drops_quoted_values() {
        let m = redact("could not parse `13812345678` as i64 in \"phone\"\nmore");
        assert!(!m.contains("1381"), "{m}");
        assert!(!m.contains("more"));
    }

    #[test]
    fn counts_rejections_and_duplicates() {
        let raw: Vec<Option<String>> = vec![
            Some("+86 138 1234 5678".into()),
            Some("13812345678".into()),
            Some("N/A".into()),
            None,
            Some("+86 139 0000 1111".into()),
        ];
        let (ids, report) = normalize_all(
            raw.len(),
            |i| raw[i].as_deref(),
            IdKind::Phone,
            &Normalizer::default(),
        );
        assert_eq!(ids.len(), 2);
        assert_eq!(report.rows, 5);
        assert_eq!(report.distinct, 2);
        assert_eq!(report.duplicate_rows, 1);
        assert_eq!(report.rejected_total(), 2);
        assert_eq!(report.rejected.get("empty"), Some(&1));
    }

    #[test]
    fn positions_map_rows_to_persons() {
        let raw: Vec<Option<&str>> = vec![
            Some("b"),
            None,
            Some(" a"),
            Some("b"),
            Some(" "),
            Some("c"),
            Some("a"),
        ];
        let (ids, report, person_of_row) =
            normalize_all_with_positions(raw.len(), |i| raw[i], IdKind::Custom, &Normalizer::default());
        let (plain, plain_report) =
            normalize_all(raw.len(), |i| raw[i], IdKind::Custom, &Normalizer::default());
        assert_eq!(ids, plain);
        assert_eq!(report, plain_report);
        // Sorted persons: a, b, c.
        assert_eq!(person_of_row, vec![1, NO_PERSON, 0, 1, NO_PERSON, 2, 0]);
        assert_eq!(report.duplicate_rows, 2);
        assert_eq!(report.rejected_total(), 2);
    }
}
