//! Event tables for attribution (`examples/ATTRIBUTION.md`): the partner's
//! exposures and the bank's conversions, loaded with polars and grouped by
//! person, the person being the normalized identifier exactly as for
//! datasets.
//!
//! A row is dropped for the first of its faults (C6) and counted under it;
//! nothing a row holds reaches a message. Timestamps follow the contract's
//! strict RFC 3339 grammar (C2), amounts its fen rule (C3), and labels must be
//! one of the declared channels and campaigns, exactly, after trimming (C7).

use std::{collections::BTreeMap, path::Path, sync::Arc};

use jointly_protocol::{
    ids::amount,
    ids::idlist::IdList,
    ids::normalize::{IdKind, Normalizer},
    ids::timestamp,
    queries::attribution::{Conversion, Touch},
};
use polars::prelude::*;

use crate::{
    attributes::NO_PERSON,
    config::{EventKind, EventsConfig, FileFormat},
    dataset::{id_text, normalize_all_with_positions, open_table, redact},
    error::NodeError,
};

/// Where an event table is and how to read it.
#[derive(Clone, Debug)]
pub struct EventSource<'a> {
    /// The dataset's name, for messages.
    pub dataset: &'a str,
    pub path: &'a Path,
    pub format: FileFormat,
    pub id_column: &'a str,
    pub id_kind: IdKind,
    pub ts_column: &'a str,
}

impl EventSource<'_> {
    /// A CSV file, its identifier column and kind, and its timestamp column.
    pub fn csv<'a>(
        dataset: &'a str,
        path: &'a Path,
        id_column: &'a str,
        id_kind: IdKind,
        ts_column: &'a str,
    ) -> EventSource<'a> {
        EventSource {
            dataset,
            path,
            format: FileFormat::Csv,
            id_column,
            id_kind,
            ts_column,
        }
    }

    fn error(&self, message: String) -> NodeError {
        NodeError::Dataset {
            dataset: self.dataset.to_string(),
            path: self.path.to_path_buf(),
            message,
        }
    }
}

/// What loading an event table found, in counts only.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct EventReport {
    pub rows: u64,
    /// Rows kept.
    pub events: u64,
    /// Distinct persons among the rows with a valid identifier.
    pub persons: u64,
    /// Rows dropped for their identifier, per reason code.
    pub rejected_ids: BTreeMap<String, u64>,
    /// Rows dropped for a timestamp outside the grammar.
    pub invalid_ts: u64,
    /// Exposure rows dropped for a channel or campaign not declared.
    pub unknown_label: u64,
    /// Conversion rows kept with value 0 because the value did not parse.
    pub bad_values: u64,
}

/// A partner's exposures by person: `touches[p]` for person `p` of `ids`, in
/// attribution order (time, then channel name, then campaign name). Its
/// `Debug` shows the report only.
pub struct Exposures {
    pub ids: Arc<IdList>,
    pub touches: Vec<Vec<Touch>>,
    pub report: EventReport,
}

/// A bank's conversion rows by person, in file order. Its `Debug` shows the
/// report only.
pub struct Conversions {
    pub ids: Arc<IdList>,
    pub rows: Vec<Vec<Conversion>>,
    pub report: EventReport,
}

impl std::fmt::Debug for Exposures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exposures")
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Conversions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversions")
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

/// Reads the columns, normalizes the identifiers, and hands each row with a
/// valid identifier and timestamp to `keep(other, row, person, ts, report)`,
/// where `other` are `other_columns` as text.
fn load_rows<F>(
    source: &EventSource<'_>,
    other_columns: &[&str],
    normalizer: &Normalizer,
    mut keep: F,
) -> Result<(Arc<IdList>, EventReport), NodeError>
where
    F: FnMut(&[StringChunked], usize, usize, i64, &mut EventReport),
{
    let fail = |message: String| source.error(message);
    let names: Vec<&str> = [source.id_column, source.ts_column]
        .into_iter()
        .chain(other_columns.iter().copied())
        .collect();
    let table = open_table(source.dataset, source.path, source.format, &names)?;
    let text = |column: &str| id_text(&table, column).map_err(|e| fail(redact(&e.to_string())));
    let id = text(source.id_column)?;
    let (ids, loaded, person_of_row) =
        normalize_all_with_positions(id.len(), |i| id.get(i), source.id_kind, normalizer);
    drop(id);
    let ts = text(source.ts_column)?;
    let other = other_columns
        .iter()
        .map(|c| text(c))
        .collect::<Result<Vec<_>, _>>()?;
    drop(table);
    let mut report = EventReport {
        rows: loaded.rows,
        persons: loaded.distinct,
        rejected_ids: loaded.rejected,
        ..EventReport::default()
    };
    for (row, &person) in person_of_row.iter().enumerate() {
        if person == NO_PERSON {
            continue;
        }
        let Some(t) = ts.get(row).and_then(timestamp::parse) else {
            report.invalid_ts += 1;
            continue;
        };
        keep(&other, row, person as usize, t, &mut report);
    }
    Ok((Arc::new(ids), report))
}

/// Loads exposures. `channels` and `campaigns` are the declared lists, in
/// report order; a touch holds indices into them.
pub fn load_exposures(
    source: &EventSource<'_>,
    channel_column: &str,
    campaign_column: &str,
    channels: &[String],
    campaigns: &[String],
    normalizer: &Normalizer,
) -> Result<Exposures, NodeError> {
    let fail = |message: String| source.error(message);
    let too_many = channels.len() > usize::from(u16::MAX) || campaigns.len() > usize::from(u16::MAX);
    if too_many {
        return Err(fail(
            "too many channels or campaigns declared (at most 65535 each)".into(),
        ));
    }
    let mut by_row: Vec<(u32, Touch)> = Vec::new();
    let find = |list: &[String], cell: Option<&str>| {
        let cell = cell.unwrap_or("").trim();
        list.iter().position(|l| l == cell)
    };
    let (ids, mut report) = load_rows(
        source,
        &[channel_column, campaign_column],
        normalizer,
        |labels, row, person, ts, report| match (
            find(channels, labels[0].get(row)),
            find(campaigns, labels[1].get(row)),
        ) {
            (Some(ch), Some(ca)) => by_row.push((
                person as u32,
                Touch {
                    ts,
                    channel: ch as u16,
                    campaign: ca as u16,
                },
            )),
            _ => report.unknown_label += 1,
        },
    )?;
    report.events = by_row.len() as u64;
    // Ties in time go by label name as bytes, not by declaration order (C9).
    let rank = |list: &[String]| {
        let mut order: Vec<usize> = (0..list.len()).collect();
        order.sort_by(|&a, &b| list[a].as_bytes().cmp(list[b].as_bytes()));
        let mut rank = vec![0usize; list.len()];
        for (r, i) in order.into_iter().enumerate() {
            rank[i] = r;
        }
        rank
    };
    let (channel_rank, campaign_rank) = (rank(channels), rank(campaigns));
    let mut touches = vec![Vec::new(); ids.len()];
    for (person, touch) in by_row {
        touches[person as usize].push(touch);
    }
    for list in &mut touches {
        list.sort_by_key(|t| {
            (
                t.ts,
                channel_rank[usize::from(t.channel)],
                campaign_rank[usize::from(t.campaign)],
            )
        });
    }
    Ok(Exposures { ids, touches, report })
}

/// Loads conversions; a value that does not parse counts 0 and is counted.
pub fn load_conversions(
    source: &EventSource<'_>,
    value_column: &str,
    normalizer: &Normalizer,
) -> Result<Conversions, NodeError> {
    let mut by_row: Vec<(u32, Conversion)> = Vec::new();
    let (ids, mut report) = load_rows(
        source,
        &[value_column],
        normalizer,
        |values, row, person, ts, report| {
            let fen = values[0].get(row).and_then(amount::parse);
            report.bad_values += u64::from(fen.is_none());
            by_row.push((
                person as u32,
                Conversion {
                    ts,
                    fen: fen.unwrap_or(0),
                },
            ));
        },
    )?;
    report.events = by_row.len() as u64;
    let mut rows = vec![Vec::new(); ids.len()];
    for (person, conversion) in by_row {
        rows[person as usize].push(conversion);
    }
    Ok(Conversions { ids, rows, report })
}

/// An event table as configured and loaded at start.
pub enum LoadedEvents {
    Exposures { config: EventsConfig, data: Exposures },
    Conversions { config: EventsConfig, data: Conversions },
}

impl std::fmt::Debug for LoadedEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedEvents")
            .field("name", &self.config().name)
            .field("report", self.report())
            .finish_non_exhaustive()
    }
}

impl LoadedEvents {
    pub fn config(&self) -> &EventsConfig {
        match self {
            LoadedEvents::Exposures { config, .. } | LoadedEvents::Conversions { config, .. } => config,
        }
    }

    pub fn report(&self) -> &EventReport {
        match self {
            LoadedEvents::Exposures { data, .. } => &data.report,
            LoadedEvents::Conversions { data, .. } => &data.report,
        }
    }

    pub fn ids(&self) -> &Arc<IdList> {
        match self {
            LoadedEvents::Exposures { data, .. } => &data.ids,
            LoadedEvents::Conversions { data, .. } => &data.ids,
        }
    }
}

/// Loads an event table as its configuration says.
pub fn load(config: &EventsConfig, normalizer: &Normalizer) -> Result<LoadedEvents, NodeError> {
    let source = EventSource {
        dataset: &config.name,
        path: &config.path,
        format: config.format()?,
        id_column: &config.id_column,
        id_kind: config.id_kind,
        ts_column: &config.ts_column,
    };
    let missing = |key: &str| source.error(format!("its configuration lacks `{key}`"));
    Ok(match config.kind {
        EventKind::Exposures => LoadedEvents::Exposures {
            data: load_exposures(
                &source,
                config
                    .channel_column
                    .as_deref()
                    .ok_or_else(|| missing("channel_column"))?,
                config
                    .campaign_column
                    .as_deref()
                    .ok_or_else(|| missing("campaign_column"))?,
                &config.channels,
                &config.campaigns,
                normalizer,
            )?,
            config: config.clone(),
        },
        EventKind::Conversions => LoadedEvents::Conversions {
            data: load_conversions(
                &source,
                config
                    .value_column
                    .as_deref()
                    .ok_or_else(|| missing("value_column"))?,
                normalizer,
            )?,
            config: config.clone(),
        },
    })
}
