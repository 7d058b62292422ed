//! A breakdown's cells: an aligned table for people, CSV and JSON for programs.
//!
//! Only counts get error bars. The noise on a measure's sum has standard
//! deviation `noise_stddev * bound`, with `bound` the measure's clipping bound,
//! and `Release` carries no per-measure bound: sums and means are shown as
//! released, and JSON gives `noise_stddev` (in the release block) for counts only.

use std::borrow::Cow;

use jointly_protocol::wire::{BreakdownCell, BreakdownResult, Release, ReleasedCount, ReleasedSum};
use serde_json::{Map, Value, json};

use super::{ci95, count_json, release_json};

#[cfg(test)]
#[path = "breakdown_tests.rs"]
mod tests;

/// The group-by columns with their side, as the planner named them.
fn group_columns(b: &BreakdownResult) -> Vec<String> {
    let left = b.left_group_by.iter().map(|c| format!("left.{c}"));
    left.chain(b.right_group_by.iter().map(|c| format!("right.{c}")))
        .collect()
}

/// One label per group-by column. A cell short of labels is a malformed
/// result; it is still shown, with empty labels, rather than hiding the rest.
fn labels(b: &BreakdownResult, cell: &BreakdownCell) -> Vec<String> {
    let side = |columns: &[String], labels: &[String]| {
        (0..columns.len())
            .map(|i| labels.get(i).cloned().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    let mut out = side(&b.left_group_by, &cell.left_group);
    out.extend(side(&b.right_group_by, &cell.right_group));
    out
}

fn withheld(cell: &BreakdownCell) -> bool {
    cell.count.as_ref().is_some_and(|c| c.below_threshold)
}

/// The cell's sum of measure `i`, unless withheld.
fn sum(cell: &BreakdownCell, i: usize) -> Option<&ReleasedSum> {
    cell.sums.get(i).filter(|s| !s.below_threshold && !withheld(cell))
}

/// A mean is undefined for an empty cell of an exact release.
fn mean(cell: &BreakdownCell, i: usize) -> Option<f64> {
    sum(cell, i).map(|s| s.mean).filter(|m| m.is_finite())
}

fn count_cell(count: Option<&ReleasedCount>, release: Option<&Release>) -> String {
    let Some(c) = count else { return "-".into() };
    if c.below_threshold {
        return format!("<{}", release.map_or(0, |r| r.threshold));
    }
    match release {
        Some(r) if !r.exact => format!("{} ± {:.0}", c.value, ci95(r)),
        _ => c.value.to_string(),
    }
}

fn headers(b: &BreakdownResult) -> Vec<String> {
    let mut headers = group_columns(b);
    headers.push("count".into());
    for m in &b.measures {
        headers.push(format!("sum({m})"));
        headers.push(format!("mean({m})"));
    }
    headers
}

/// The cells as an aligned table: labels to the left, numbers to the right.
pub fn table(b: &BreakdownResult, release: Option<&Release>) -> String {
    let rows: Vec<Vec<String>> = b
        .cells
        .iter()
        .map(|cell| {
            let mut row = labels(b, cell);
            row.push(count_cell(cell.count.as_ref(), release));
            for i in 0..b.measures.len() {
                row.push(sum(cell, i).map_or("-".into(), |s| s.sum.to_string()));
                row.push(mean(cell, i).map_or("-".into(), |m| format!("{m:.2}")));
            }
            row
        })
        .collect();
    aligned(&headers(b), group_columns(b).len(), &rows)
}

/// Columns before `text_columns` are left-aligned, the rest right-aligned.
fn aligned(headers: &[String], text_columns: usize, rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            std::iter::once(&headers[i])
                .chain(rows.iter().filter_map(|r| r.get(i)))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in std::iter::once(headers).chain(rows.iter().map(Vec::as_slice)) {
        let fields: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (s, &w))| {
                if i < text_columns {
                    format!("{s:<w$}")
                } else {
                    format!("{s:>w$}")
                }
            })
            .collect();
        out.push_str(fields.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A field quoted as RFC 4180 requires: when it holds a comma, a quote or a
/// line break, with quotes doubled.
fn csv_field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\r', '\n']) {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(s)
    }
}

/// One record. Lines end in `\n`, not RFC 4180's CRLF: what Unix tools expect,
/// and every CSV reader accepts both.
fn csv_record(fields: &[String]) -> String {
    let fields: Vec<Cow<'_, str>> = fields.iter().map(|f| csv_field(f)).collect();
    format!("{}\n", fields.join(","))
}

/// A header and one record per cell; withheld values are empty fields.
pub fn csv(b: &BreakdownResult) -> String {
    let mut header = group_columns(b);
    header.push("count".into());
    header.push("below_threshold".into());
    for m in &b.measures {
        header.push(format!("sum({m})"));
        header.push(format!("mean({m})"));
    }
    let mut out = csv_record(&header);
    for cell in &b.cells {
        let mut record = labels(b, cell);
        let count = cell.count.as_ref().filter(|c| !c.below_threshold);
        record.push(count.map(|c| c.value.to_string()).unwrap_or_default());
        record.push(withheld(cell).to_string());
        for i in 0..b.measures.len() {
            record.push(sum(cell, i).map(|s| s.sum.to_string()).unwrap_or_default());
            record.push(mean(cell, i).map(|m| m.to_string()).unwrap_or_default());
        }
        out.push_str(&csv_record(&record));
    }
    out
}

/// Labels keyed by column and values keyed by measure ("left.deposit_balance"),
/// null when withheld.
pub fn json(b: &BreakdownResult, release: Option<&Release>) -> Value {
    let cells: Vec<Value> = b
        .cells
        .iter()
        .map(|cell| {
            let named: Map<String, Value> = group_columns(b)
                .into_iter()
                .zip(labels(b, cell).into_iter().map(Value::from))
                .collect();
            let per_measure = |value: &dyn Fn(usize) -> Value| -> Map<String, Value> {
                b.measures
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (m.clone(), value(i)))
                    .collect()
            };
            json!({
                "labels": named,
                "count": count_json(cell.count.as_ref()),
                "sums": per_measure(&|i| sum(cell, i).map_or(Value::Null, |s| json!(s.sum))),
                "means": per_measure(&|i| mean(cell, i).map_or(Value::Null, |m| json!(m))),
                "below_threshold": withheld(cell),
            })
        })
        .collect();
    json!({
        "kind": "breakdown",
        "group_by": group_columns(b),
        "measures": b.measures,
        "cells": cells,
        "release": release_json(release),
    })
}

/// For the job list: how many cells, and how many were withheld.
pub fn summary(b: &BreakdownResult) -> String {
    let withheld = b.cells.iter().filter(|c| withheld(c)).count();
    match withheld {
        0 => format!("{} cells", b.cells.len()),
        n => format!("{} cells, {n} below threshold", b.cells.len()),
    }
}
