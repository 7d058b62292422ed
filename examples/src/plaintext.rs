//! The plaintext answer: what a trusted party holding both tables would compute.
//! Demo, tests and benchmark check every protocol result against it. It reads
//! the files with polars, normalizes with the same rules as the nodes, and joins.
//!
//! Breakdowns and segments follow `notes/semantics.md` point by point. This
//! module shares nothing with the node's own implementation on purpose: an
//! oracle that reused the node's code would agree with the node's bugs.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use jointly_protocol::ids::normalize::{self, IdKind, Normalizer};
use jointly_protocol::wire::{BreakdownQuery, Filter, SegmentQuery, Side, filter::Test};
use polars::prelude::*;

/// The label of every group value outside a column's declared values.
pub const OTHER: &str = "(other)";

/// Distinct normalized identifiers of one file's column, as a one-column frame `id`.
pub fn normalized_ids(path: &Path, column: &str, kind: IdKind) -> anyhow::Result<DataFrame> {
    let df = read_text(path, &[column])?;
    let ids = normalize(df.column(column)?.str()?, kind, "id");
    let distinct = ids.into_column().drop_nulls().unique()?;
    Ok(DataFrame::new(distinct.len(), vec![distinct])?)
}

/// `|X ∩ Y|` by an inner join of the two files' distinct normalized identifiers.
pub fn overlap(left: (&Path, &str), right: (&Path, &str), kind: IdKind) -> anyhow::Result<u64> {
    let l = normalized_ids(left.0, left.1, kind)?;
    let r = normalized_ids(right.0, right.1, kind)?;
    Ok(inner_join(&l, &r, "id")?.height() as u64)
}

/// One side's file and what its node declares about its columns.
#[derive(Clone, Copy, Debug)]
pub struct PlainSide<'a> {
    /// CSV, or Parquet when the extension is `parquet`.
    pub path: &'a Path,
    pub id_column: &'a str,
    pub kind: IdKind,
    pub columns: &'a [PlainColumn],
}

/// A column as its node declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct PlainColumn {
    pub name: String,
    /// Group domain, without [`OTHER`]; required to group by the column.
    pub values: Option<Vec<String>>,
    /// Measure bounds `(lo, hi)`; required to measure the column.
    pub clip: Option<(f64, f64)>,
}

/// One (left group, right group) cell of a breakdown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlainCell {
    pub left_group: Vec<String>,
    pub right_group: Vec<String>,
    pub count: u64,
    /// One per query measure, in query order.
    pub sums: Vec<i64>,
}

/// The persons in both filtered sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlainSegment {
    pub size: u64,
    /// The left side's normalized identifiers of the members, sorted.
    pub left_members: Vec<String>,
    /// The right side's normalized identifiers of the members, sorted.
    pub right_members: Vec<String>,
}

/// Every cell of the breakdown, left group index major (semantics.md point 7).
pub fn breakdown(q: &BreakdownQuery, left: &PlainSide, right: &PlainSide) -> anyhow::Result<Vec<PlainCell>> {
    let key_kind = key_kind(left, right)?;
    // Each measure becomes a column of its side's persons frame; `named`
    // keeps the query order across both sides.
    let (mut lm, mut rm, mut named) = (Vec::new(), Vec::new(), Vec::new());
    for m in &q.measures {
        match Side::try_from(m.side) {
            Ok(Side::Left) => {
                named.push(format!("lm{}", lm.len()));
                lm.push(m.column.as_str());
            }
            Ok(Side::Right) => {
                named.push(format!("rm{}", rm.len()));
                rm.push(m.column.as_str());
            }
            _ => bail!("measure '{}' names no side (left or right)", m.column),
        }
    }
    let l = persons(left, &q.left_group_by, &q.left_filters, &lm, 'l', key_kind)?;
    let r = persons(right, &q.right_group_by, &q.right_filters, &rm, 'r', key_kind)?;

    let (gl, gr) = (l.domains.count()?, r.domains.count()?);
    let joined = inner_join(&l.frame, &r.frame, "key")?;
    let total = gl
        .checked_mul(gr)
        .and_then(|n| usize::try_from(n).ok())
        .context("the breakdown has more cells than can be listed")?;
    // The join did the matching; each joined row is one person in both
    // sides, added to its (left group, right group) cell.
    let mut counts = vec![0u64; total];
    let mut sums = vec![0i64; total * named.len()];
    let lg = joined.column("lg")?.u64()?;
    let rg = joined.column("rg")?.u64()?;
    let measure_cols = named
        .iter()
        .map(|n| joined.column(n).and_then(|c| c.i64().cloned()))
        .collect::<PolarsResult<Vec<_>>>()?;
    for row in 0..joined.height() {
        // Every person has a group index, so these are never null.
        let (Some(l_idx), Some(r_idx)) = (lg.get(row), rg.get(row)) else {
            bail!("internal error: a null group index after the join");
        };
        let cell = usize::try_from(l_idx * gr + r_idx)?;
        counts[cell] += 1;
        for (i, m) in measure_cols.iter().enumerate() {
            let sum = &mut sums[cell * named.len() + i];
            *sum = sum
                .checked_add(m.get(row).unwrap_or(0))
                .with_context(|| format!("the sum of measure '{}' overflows", q.measures[i].column))?;
        }
    }

    let mut cells = Vec::with_capacity(total);
    for l_idx in 0..gl {
        let left_group = l.domains.labels(l_idx);
        for r_idx in 0..gr {
            let cell = usize::try_from(l_idx * gr + r_idx)?;
            cells.push(PlainCell {
                left_group: left_group.clone(),
                right_group: r.domains.labels(r_idx),
                count: counts[cell],
                sums: sums[cell * named.len()..(cell + 1) * named.len()].to_vec(),
            });
        }
    }
    Ok(cells)
}

/// The persons in both filtered sides (semantics.md point 8).
pub fn segment(q: &SegmentQuery, left: &PlainSide, right: &PlainSide) -> anyhow::Result<PlainSegment> {
    let key_kind = key_kind(left, right)?;
    let l = persons(left, &[], &q.left_filters, &[], 'l', key_kind)?;
    let r = persons(right, &[], &q.right_filters, &[], 'r', key_kind)?;
    let joined = inner_join(&l.frame, &r.frame, "key")?;
    let members = |name: &str| -> anyhow::Result<Vec<String>> {
        let mut ids: Vec<String> = joined
            .column(name)?
            .str()?
            .iter()
            .flatten()
            .map(str::to_owned)
            .collect();
        ids.sort_unstable();
        Ok(ids)
    };
    Ok(PlainSegment {
        size: joined.height() as u64,
        left_members: members("lid")?,
        right_members: members("rid")?,
    })
}

/// The kind both sides' identifiers are compared under, as the nodes hash
/// them: a side holding phones meets a side holding their SHA-256 as hashes.
fn key_kind(left: &PlainSide, right: &PlainSide) -> anyhow::Result<IdKind> {
    normalize::match_kind(left.kind, right.kind).with_context(|| {
        format!(
            "identifiers of kinds {} and {} can never match",
            left.kind, right.kind
        )
    })
}

/// One side's filtered persons, one row each: `key` (the identifier in the
/// kind both sides compare), `{p}id` (the side's normalized identifier),
/// `{p}g` (the mixed-radix group index) and `{p}m0..` (measure values).
struct Persons {
    frame: DataFrame,
    domains: Domains,
}

/// Each group-by column's domain: its declared values, then [`OTHER`].
struct Domains(Vec<Vec<String>>);

impl Domains {
    /// The number of groups of the side; 1 without group-by columns.
    fn count(&self) -> anyhow::Result<u64> {
        self.0
            .iter()
            .try_fold(1u64, |n, d| n.checked_mul(d.len() as u64))
            .context("too many groups on one side")
    }

    /// The labels of group `index`, first column most significant.
    fn labels(&self, mut index: u64) -> Vec<String> {
        let mut labels = vec![String::new(); self.0.len()];
        for (label, domain) in labels.iter_mut().zip(&self.0).rev() {
            let n = domain.len() as u64;
            label.clone_from(&domain[(index % n) as usize]);
            index /= n;
        }
        labels
    }
}

/// Reads one side and reduces it to its persons (semantics.md points 1 to 6).
fn persons(
    side: &PlainSide,
    group_by: &[String],
    filters: &[Filter],
    measures: &[&str],
    prefix: char,
    key_kind: IdKind,
) -> anyhow::Result<Persons> {
    let declared = |name: &str| {
        side.columns
            .iter()
            .find(|c| c.name == name)
            .with_context(|| format!("column '{name}' is not declared for {}", side.path.display()))
    };
    let mut domains = Vec::with_capacity(group_by.len());
    for name in group_by {
        let values = declared(name)?
            .values
            .as_ref()
            .with_context(|| format!("group column '{name}' declares no values"))?;
        domains.push(
            values
                .iter()
                .cloned()
                .chain([OTHER.to_owned()])
                .collect::<Vec<_>>(),
        );
    }
    let domains = Domains(domains);
    // Also bounds the mixed-radix indices computed below.
    domains.count()?;
    let mut clips = Vec::with_capacity(measures.len());
    for &name in measures {
        let (lo, hi) = declared(name)?
            .clip
            .with_context(|| format!("measure column '{name}' declares no clip range"))?;
        // f64::clamp panics on these.
        if lo.is_nan() || hi.is_nan() || lo > hi {
            bail!("measure column '{name}' has an empty clip range [{lo}, {hi}]");
        }
        clips.push((lo, hi));
    }

    // Columns whose per-person value is the first valid row's text form.
    let mut firsts: Vec<&str> = Vec::new();
    for name in group_by
        .iter()
        .map(String::as_str)
        .chain(filters.iter().map(|f| f.column.as_str()))
    {
        if !firsts.contains(&name) {
            firsts.push(name);
        }
    }
    let mut wanted = vec![side.id_column];
    for &name in firsts.iter().chain(measures) {
        if !wanted.contains(&name) {
            wanted.push(name);
        }
    }
    let text = read_text(side.path, &wanted)?;

    // Rows with an invalid identifier get a null `id` and are dropped below,
    // before any per-person value is taken.
    let mut rows = vec![normalize(text.column(side.id_column)?.str()?, side.kind, "id").into_column()];
    for (i, &name) in firsts.iter().enumerate() {
        rows.push(text.column(name)?.clone().with_name(format!("a{i}").into()));
    }
    for (i, &name) in measures.iter().enumerate() {
        rows.push(Column::new(
            format!("n{i}").into(),
            numbers(text.column(name)?.str()?),
        ));
    }
    drop(text);
    let per_person = per_person(DataFrame::new(rows[0].len(), rows)?, firsts.len(), measures.len())?;

    let height = per_person.height();
    let values = (0..firsts.len())
        .map(|i| per_person.column(&format!("a{i}")).and_then(|c| c.str().cloned()))
        .collect::<PolarsResult<Vec<_>>>()?;
    let value_of = |name: &str| firsts.iter().position(|f| *f == name).map(|i| &values[i]);

    let mut keep = vec![true; height];
    for f in filters {
        let test = f
            .test
            .as_ref()
            .with_context(|| format!("the filter on '{}' has no test", f.column))?;
        let Some(column) = value_of(&f.column) else {
            bail!("internal error: filter column '{}' was not read", f.column);
        };
        for (k, v) in keep.iter_mut().zip(column.iter()) {
            *k = *k && passes(test, v);
        }
    }

    let mut group = vec![0u64; height];
    for (name, domain) in group_by.iter().zip(&domains.0) {
        let Some(column) = value_of(name) else {
            bail!("internal error: group column '{name}' was not read");
        };
        // The first occurrence wins should a value be declared twice.
        let mut position: HashMap<&str, u64> = HashMap::with_capacity(domain.len());
        for (i, v) in domain[..domain.len() - 1].iter().enumerate() {
            position.entry(v.as_str()).or_insert(i as u64);
        }
        let other = (domain.len() - 1) as u64;
        let n = domain.len() as u64;
        for (g, v) in group.iter_mut().zip(column.iter()) {
            let i = v.and_then(|v| position.get(v).copied()).unwrap_or(other);
            *g = *g * n + i;
        }
    }

    let ids = per_person.column("id")?.str()?;
    let key = if side.kind == key_kind {
        ids.clone().with_name("key".into())
    } else {
        let mut b = StringChunkedBuilder::new("key".into(), height);
        for id in ids.iter() {
            b.append_option(id.and_then(|id| normalize::convert(side.kind, key_kind, id)));
        }
        b.finish()
    };
    let mut out = vec![
        key.into_column(),
        ids.clone().with_name(format!("{prefix}id").into()).into_column(),
        Column::new(format!("{prefix}g").into(), group),
    ];
    for (i, &(lo, hi)) in clips.iter().enumerate() {
        let sums = per_person.column(&format!("n{i}"))?.f64()?;
        // Rounding after clamping keeps values at the bounds' own rounding.
        let measured: Vec<i64> = sums
            .iter()
            .map(|s| s.unwrap_or(0.0).clamp(lo, hi).round() as i64)
            .collect();
        out.push(Column::new(format!("{prefix}m{i}").into(), measured));
    }
    let frame = DataFrame::new(height, out)?.filter(&BooleanChunked::from_slice("keep".into(), &keep))?;
    Ok(Persons { frame, domains })
}

/// The rows of `left` and `right` whose `key` is equal and not null, with
/// both frames' other columns.
fn inner_join(left: &DataFrame, right: &DataFrame, key: &str) -> PolarsResult<DataFrame> {
    left.join(right, [key], [key], JoinArgs::new(JoinType::Inner), None)
}

/// One row per valid identifier from one row per file row: `id`, then each
/// `a{i}` as the first such row's value and each `n{i}` summed over the rows,
/// in file order.
fn per_person(rows: DataFrame, firsts: usize, measures: usize) -> anyhow::Result<DataFrame> {
    let rows = rows.drop_nulls(Some(&["id"]))?;
    let ids = rows.column("id")?.str()?;
    let values = (0..firsts)
        .map(|i| rows.column(&format!("a{i}")).and_then(|c| c.str().cloned()))
        .collect::<PolarsResult<Vec<_>>>()?;
    let numbers = (0..measures)
        .map(|i| rows.column(&format!("n{i}")).and_then(|c| c.f64().cloned()))
        .collect::<PolarsResult<Vec<_>>>()?;

    let by_id = rows.group_by(["id"])?;
    let groups = by_id.get_groups();
    let mut id_out = StringChunkedBuilder::new("id".into(), groups.len());
    let mut value_out: Vec<StringChunkedBuilder> = (0..firsts)
        .map(|i| StringChunkedBuilder::new(format!("a{i}").into(), groups.len()))
        .collect();
    let mut sum_out = vec![Vec::with_capacity(groups.len()); measures];
    for group in groups.iter() {
        let mut members: Vec<usize> = match group {
            GroupsIndicator::Idx((_, idx)) => idx.iter().map(|&i| i as usize).collect(),
            GroupsIndicator::Slice([first, len]) => (first as usize..(first + len) as usize).collect(),
        };
        // File order, so that "first" and the order of summing do not
        // depend on how polars partitioned the rows.
        members.sort_unstable();
        let Some(&first) = members.first() else { continue };
        id_out.append_option(ids.get(first));
        for (out, column) in value_out.iter_mut().zip(&values) {
            out.append_option(column.get(first));
        }
        for (out, column) in sum_out.iter_mut().zip(&numbers) {
            out.push(
                members
                    .iter()
                    .map(|&row| column.get(row).unwrap_or(0.0))
                    .sum::<f64>(),
            );
        }
    }
    let mut columns = vec![id_out.finish().into_column()];
    columns.extend(value_out.into_iter().map(|b| b.finish().into_column()));
    columns.extend(
        sum_out
            .into_iter()
            .enumerate()
            .map(|(i, sums)| Column::new(format!("n{i}").into(), sums)),
    );
    Ok(DataFrame::new(groups.len(), columns)?)
}

/// Whether a person's value passes a filter test (semantics.md point 5).
fn passes(test: &Test, value: Option<&str>) -> bool {
    let Some(v) = value else { return false };
    match test {
        Test::Equals(s) => v == s,
        Test::OneOf(set) => set.values.iter().any(|s| s == v),
        Test::Range(r) => {
            number(v).is_some_and(|x| r.min.is_none_or(|min| min <= x) && r.max.is_none_or(|max| x <= max))
        }
    }
}

/// A cell's number: its text form trimmed, parsed by Rust, finite.
fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Each row's number for summing; missing and unparseable cells count 0.
fn numbers(text: &StringChunked) -> Vec<f64> {
    text.iter().map(|v| v.and_then(number).unwrap_or(0.0)).collect()
}

/// Normalized identifiers, null where the raw value is rejected.
pub(crate) fn normalize(raw: &StringChunked, kind: IdKind, name: &str) -> StringChunked {
    let normalizer = Normalizer::default();
    let mut out = StringChunkedBuilder::new(name.into(), raw.len());
    for v in raw.iter() {
        out.append_option(normalizer.normalize(kind, v.unwrap_or("")).ok());
    }
    out.finish()
}

/// The named columns of a file, each as its text form: CSV cells as written,
/// Parquet values cast to String.
pub(crate) fn read_text(path: &Path, columns: &[&str]) -> anyhow::Result<DataFrame> {
    let read = if path.extension().is_some_and(|e| e == "parquet") {
        let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        ParquetReader::new(file)
            .with_columns(Some(columns.iter().map(|c| (*c).to_owned()).collect()))
            .finish()
    } else {
        CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .with_columns(Some(columns.iter().map(|c| PlSmallStr::from(*c)).collect()))
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|r| r.finish())
    };
    // Polars' prelude brings its own `with_context`, hence the full path.
    let df = anyhow::Context::with_context(read, || {
        format!("cannot read columns {columns:?} of {}", path.display())
    })?;
    let text = columns
        .iter()
        .map(|c| df.column(c).and_then(|c| c.cast(&DataType::String)))
        .collect::<PolarsResult<Vec<_>>>()?;
    Ok(DataFrame::new(df.height(), text)?)
}

#[cfg(test)]
#[path = "plaintext_tests.rs"]
mod tests;
