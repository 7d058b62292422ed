//! The plaintext answer: what a trusted party holding both tables would compute.
//! Demo, tests and benchmark check every protocol result against it. It reads
//! the files with polars, normalizes with the same rules as the nodes, and joins.

use std::path::Path;

use anyhow::Context;
use jointly_protocol::ids::{IdKind, Normalizer};
use polars::prelude::*;

/// Distinct normalized identifiers of one file's column, as a one-column frame `id`.
pub fn normalized_ids(path: &Path, column: &str, kind: IdKind) -> anyhow::Result<DataFrame> {
    let df = if path.extension().is_some_and(|e| e == "parquet") {
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        ParquetReader::new(file)
            .with_columns(Some(vec![column.to_string()]))
            .finish()?
    } else {
        CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .with_columns(Some(Arc::from([PlSmallStr::from(column)])))
            .try_into_reader_with_file_path(Some(path.to_path_buf()))?
            .finish()?
    };
    let normalizer = Normalizer::default();
    let raw = df.column(column)?.cast(&DataType::String)?;
    let ids: Vec<String> = raw
        .str()?
        .iter()
        .filter_map(|v| normalizer.normalize(kind, v.unwrap_or("")).ok())
        .collect();
    let height = ids.len();
    let frame = DataFrame::new(height, vec![Column::new("id".into(), ids)])?;
    Ok(frame.lazy().unique(None, UniqueKeepStrategy::Any).collect()?)
}

/// `|X ∩ Y|` by an inner join of the two files' distinct normalized identifiers.
pub fn overlap(left: (&Path, &str), right: (&Path, &str), kind: IdKind) -> anyhow::Result<u64> {
    let l = normalized_ids(left.0, left.1, kind)?;
    let r = normalized_ids(right.0, right.1, kind)?;
    let joined = l
        .lazy()
        .join(r.lazy(), [col("id")], [col("id")], JoinArgs::new(JoinType::Inner))
        .collect()?;
    Ok(joined.height() as u64)
}
