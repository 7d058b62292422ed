//! How jobs, results and nodes are shown: aligned text for people, JSON (and
//! CSV for a breakdown's cells) for programs.

mod breakdown;
mod campaign;

use std::io::Write;

use jointly_protocol::wire::{
    self, DatasetRef, Filter, Job, JobState, NodeStatus, QueryResult, QuerySpec, Release, ReleasedCount,
    query_result, query_spec::Query,
};
use serde_json::{Value, json};

use crate::filters::{Side, filter_text};

/// How a job is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Text,
    Json,
    /// A breakdown's cells as CSV; any other job as text, on stderr.
    Csv,
}

fn state(job: &Job) -> &'static str {
    match JobState::try_from(job.state) {
        Ok(JobState::Pending) => "pending",
        Ok(JobState::Running) => "running",
        Ok(JobState::Succeeded) => "succeeded",
        Ok(JobState::Failed) => "failed",
        Ok(JobState::Cancelled) => "cancelled",
        _ => "unknown",
    }
}

fn dataset(d: Option<&DatasetRef>) -> String {
    d.map(|d| format!("{}/{}", d.node, d.dataset)).unwrap_or_default()
}

/// The query in one line: kind, datasets and, for a breakdown, its groups.
/// Measures, filters and activation are in `spec_details`.
fn spec_text(spec: Option<&QuerySpec>) -> String {
    match spec.and_then(|s| s.query.as_ref()) {
        Some(Query::Overlap(q)) => {
            format!(
                "overlap {} x {}",
                dataset(q.left.as_ref()),
                dataset(q.right.as_ref())
            )
        }
        Some(Query::Breakdown(q)) => {
            let by: Vec<String> = q
                .left_group_by
                .iter()
                .map(|c| format!("left.{c}"))
                .chain(q.right_group_by.iter().map(|c| format!("right.{c}")))
                .collect();
            let datasets = format!("{} x {}", dataset(q.left.as_ref()), dataset(q.right.as_ref()));
            if by.is_empty() {
                format!("breakdown {datasets}")
            } else {
                format!("breakdown {datasets} by {}", by.join(", "))
            }
        }
        Some(Query::Segment(q)) => {
            format!(
                "segment {} x {}",
                dataset(q.left.as_ref()),
                dataset(q.right.as_ref())
            )
        }
        Some(Query::Attribution(q)) => format!(
            "attribution {} x {}",
            dataset(q.conversions.as_ref()),
            dataset(q.exposures.as_ref())
        ),
        Some(Query::Lift(q)) => format!(
            "lift {}.{} x {}",
            dataset(q.groups.as_ref()),
            q.group_column,
            dataset(q.customers.as_ref())
        ),
        None => "-".into(),
    }
}

/// An attribution's or a lift's terms, as a line for the job view.
fn campaign_details(query: &Query) -> Option<(&'static str, String)> {
    use jointly_protocol::queries::attribution_query::{describe_period as period_text, model};
    match query {
        Query::Attribution(q) => Some((
            "terms",
            format!(
                "{}, {}-day lookback, {}, values clipped at {} CNY{}",
                model(q).map_or_else(|e| e.to_string(), |m| m.to_string()),
                q.lookback_days,
                period_text(q.period.as_ref()),
                q.value_clip,
                if q.by_campaign { ", by campaign" } else { "" }
            ),
        )),
        Query::Lift(q) => Some((
            "terms",
            format!(
                "'{}' vs '{}', conversions in {}/{}, {}, values clipped at {} CNY",
                q.test_value,
                q.control_value,
                q.customers.as_ref().map_or("?", |d| d.node.as_str()),
                q.conversions,
                period_text(q.period.as_ref()),
                q.value_clip
            ),
        )),
        _ => None,
    }
}

/// What `spec_text` leaves out, as labelled lines for the job view.
fn spec_details(spec: Option<&QuerySpec>) -> Vec<(&'static str, String)> {
    let (measures, left, right, activate): (Vec<String>, &[Filter], &[Filter], &str) =
        match spec.and_then(|s| s.query.as_ref()) {
            Some(Query::Breakdown(q)) => (
                q.measures
                    .iter()
                    .map(|m| {
                        let side = match wire::Side::try_from(m.side) {
                            Ok(wire::Side::Left) => "left",
                            Ok(wire::Side::Right) => "right",
                            _ => "?",
                        };
                        format!("{side}.{}", m.column)
                    })
                    .collect(),
                &q.left_filters,
                &q.right_filters,
                "",
            ),
            Some(Query::Segment(q)) => (Vec::new(), &q.left_filters, &q.right_filters, &q.activate),
            Some(q @ (Query::Attribution(_) | Query::Lift(_))) => {
                return campaign_details(q).into_iter().collect();
            }
            Some(Query::Overlap(_)) | None => return Vec::new(),
        };
    let filters: Vec<String> = left
        .iter()
        .map(|f| filter_text(Side::Left, f))
        .chain(right.iter().map(|f| filter_text(Side::Right, f)))
        .collect();
    let mut details = Vec::new();
    if !measures.is_empty() {
        details.push(("measures", measures.join(", ")));
    }
    if !filters.is_empty() {
        details.push(("where", filters.join("; ")));
    }
    if !activate.is_empty() {
        details.push(("activate", format!("members to node '{activate}'")));
    }
    details
}

/// Half-width of the 95% interval of a released count: the summed noise shares
/// are close to normal at the scales policies allow.
pub fn ci95(release: &Release) -> f64 {
    1.96 * release.noise_stddev
}

/// A released count as people read it: "5,987 ± 12 (95%)", "6,000 (exact)" or
/// "below threshold (< 10)".
pub fn count_text(count: Option<&ReleasedCount>, release: Option<&Release>) -> String {
    let Some(c) = count else { return "-".into() };
    let threshold = release.map_or(0, |r| r.threshold);
    if c.below_threshold {
        return format!("below threshold (< {threshold})");
    }
    match release {
        Some(r) if !r.exact => format!("{} ± {:.0} (95%)", c.value, ci95(r)),
        _ => format!("{} (exact)", c.value),
    }
}

fn release_json(release: Option<&Release>) -> Value {
    let Some(r) = release else { return Value::Null };
    json!({
        "exact": r.exact,
        "epsilon": r.epsilon,
        "noise_stddev": r.noise_stddev,
        "ci95_halfwidth": ci95(r),
        "threshold": r.threshold,
        "nodes": r.nodes.iter().map(|n| json!({
            "node": n.node, "sigma": n.sigma, "delta": n.delta, "min_aggregation": n.min_aggregation
        })).collect::<Vec<_>>(),
    })
}

fn count_json(c: Option<&ReleasedCount>) -> Value {
    match c {
        None => Value::Null,
        Some(c) if c.below_threshold => json!({"below_threshold": true}),
        Some(c) => json!({"value": c.value, "below_threshold": false}),
    }
}

fn result_json(r: Option<&QueryResult>) -> Value {
    let Some(r) = r else { return Value::Null };
    let release = r.release.as_ref();
    match r.result.as_ref() {
        Some(query_result::Result::Overlap(o)) => json!({
            "kind": "overlap",
            "intersection": count_json(o.intersection.as_ref()),
            "release": release_json(release),
        }),
        Some(query_result::Result::Breakdown(b)) => breakdown::json(b, release),
        Some(query_result::Result::Segment(s)) => json!({
            "kind": "segment",
            "size": count_json(s.size.as_ref()),
            "activated_node": if s.activated_node.is_empty() { Value::Null } else { json!(s.activated_node) },
            "release": release_json(release),
        }),
        Some(query_result::Result::Attribution(a)) => campaign::attribution_json(a, release),
        Some(query_result::Result::Lift(l)) => campaign::lift_json(l, release),
        None => Value::Null,
    }
}

fn job_json(job: &Job) -> Value {
    json!({
        "job_id": job.job_id,
        "state": state(job),
        "owner": job.owner,
        "organisation": job.organisation,
        "workspace": job.workspace,
        "query": spec_text(job.spec.as_ref()),
        "error": if job.error.is_empty() { Value::Null } else { json!(job.error) },
        "retryable": job.retryable,
        "progress": job.progress_permille as f64 / 1000.0,
        "result": result_json(job.result.as_ref()),
        "created_unix_ms": job.created_unix_ms,
        "finished_unix_ms": if job.finished_unix_ms == 0 { Value::Null } else { json!(job.finished_unix_ms) },
    })
}

pub fn progress(job: &Job) {
    let pct = f64::from(job.progress_permille.min(1000)) / 10.0;
    eprint!("\r{} {:<9} {:>5.1}%  ", job.job_id, state(job), pct);
    let _ = std::io::stderr().flush();
    if matches!(
        JobState::try_from(job.state),
        Ok(JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    ) {
        eprintln!();
    }
}

pub fn job(job: &Job, mode: Mode) {
    match mode {
        Mode::Json => println!("{}", job_json(job)),
        Mode::Text => print!("{}", job_text(job)),
        Mode::Csv => match job.result.as_ref().and_then(|r| r.result.as_ref()) {
            Some(query_result::Result::Breakdown(b)) => print!("{}", breakdown::csv(b)),
            // No cells (the job failed or is not done): stdout stays empty for
            // whatever reads the CSV, and the person sees why on stderr.
            _ => eprint!("{}", job_text(job)),
        },
    }
}

fn job_text(job: &Job) -> String {
    let mut lines = vec![
        format!("job      {}", job.job_id),
        format!("query    {}", spec_text(job.spec.as_ref())),
    ];
    for (label, text) in spec_details(job.spec.as_ref()) {
        lines.push(format!("{label:<8} {text}"));
    }
    if !job.owner.is_empty() {
        lines.push(format!(
            "owner    {} ({}), workspace {}",
            job.owner, job.organisation, job.workspace
        ));
    }
    lines.push(format!("state    {}", state(job)));
    if job.state == JobState::Cancelled as i32 {
        lines.push(format!("reason   {}", job.error));
    } else if !job.error.is_empty() {
        lines.push(format!("error    {}", job.error));
        lines.push(format!(
            "retry    {}",
            if job.retryable {
                "yes: run the query again"
            } else {
                "no: change the query or the policy"
            }
        ));
    }
    if let Some(result) = job.result.as_ref() {
        lines.extend(result_lines(job, result));
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn result_lines(job: &Job, result: &QueryResult) -> Vec<String> {
    let release = result.release.as_ref();
    let mut lines = Vec::new();
    match result.result.as_ref() {
        Some(query_result::Result::Overlap(o)) => lines.push(format!(
            "overlap  {} shared customers",
            count_text(o.intersection.as_ref(), release)
        )),
        Some(query_result::Result::Breakdown(b)) => {
            lines.push(String::new());
            lines.extend(breakdown::table(b, release).lines().map(String::from));
            lines.push(String::new());
            if release.is_some_and(|r| !r.exact) {
                lines.push(if b.measures.is_empty() {
                    "note     ± is the 95% interval of a count".into()
                } else {
                    "note     ± is the 95% interval of a count; sums and means are noised too, \
                     shown without error bars"
                        .into()
                });
            }
        }
        Some(query_result::Result::Segment(s)) => {
            lines.push(format!("segment  size {}", count_text(s.size.as_ref(), release)));
            let requested = matches!(
                job.spec.as_ref().and_then(|s| s.query.as_ref()),
                Some(Query::Segment(q)) if !q.activate.is_empty()
            );
            if !s.activated_node.is_empty() {
                lines.push(format!(
                    "members  delivered to node '{}' (in its data directory)",
                    s.activated_node
                ));
            } else if requested {
                lines.push("members  not delivered".into());
            }
        }
        Some(query_result::Result::Attribution(a)) => {
            lines.push(format!(
                "model    {}, {}-day lookback, {} {} windows",
                a.model, a.lookback_days, a.windows, a.window
            ));
            lines.push(String::new());
            lines.extend(campaign::attribution_table(a, release).lines().map(String::from));
            lines.push(String::new());
            if release.is_some_and(|r| !r.exact) {
                lines.push(
                    "note     ± is the 95% interval of the noise; value is credit x each conversion's value bucket representative"
                        .into(),
                );
            }
        }
        Some(query_result::Result::Lift(l)) => {
            lines.push(String::new());
            lines.extend(campaign::lift_table(l, release).lines().map(String::from));
            lines.push(String::new());
            lines.push(
                "note     intervals are 95%: sampling and the added noise for rates and lift, the noise alone for value per person"
                    .into(),
            );
        }
        None => {}
    }
    if let Some(r) = release {
        lines.push(privacy_text(r));
    }
    lines
}

fn privacy_text(r: &Release) -> String {
    if r.exact {
        return "privacy  exact: no noise (both nodes' policies set allow_exact)".into();
    }
    let nodes: Vec<String> = r
        .nodes
        .iter()
        .map(|n| format!("{} sigma {:.1} at delta {:e}", n.node, n.sigma, n.delta))
        .collect();
    format!(
        "privacy  epsilon {} per node; noise std. dev. {:.1} ({}); counts below {} withheld",
        r.epsilon,
        r.noise_stddev,
        nodes.join(", "),
        r.threshold
    )
}

pub fn jobs(jobs: &[Job], as_json: bool) {
    if as_json {
        println!("{}", Value::Array(jobs.iter().map(job_json).collect()));
        return;
    }
    println!("{:<22} {:<10} {:<44} result", "job", "state", "query");
    for j in jobs {
        let release = j.result.as_ref().and_then(|r| r.release.as_ref());
        let result = match j.result.as_ref().and_then(|r| r.result.as_ref()) {
            Some(query_result::Result::Overlap(o)) => count_text(o.intersection.as_ref(), release),
            Some(query_result::Result::Breakdown(b)) => breakdown::summary(b),
            Some(query_result::Result::Segment(s)) => {
                format!("size {}", count_text(s.size.as_ref(), release))
            }
            Some(query_result::Result::Attribution(a)) => campaign::attribution_summary(a),
            Some(query_result::Result::Lift(l)) => campaign::lift_summary(l),
            None if !j.error.is_empty() => j.error.chars().take(60).collect(),
            None => String::new(),
        };
        println!(
            "{:<22} {:<10} {:<44} {}",
            j.job_id,
            state(j),
            spec_text(j.spec.as_ref()),
            result
        );
    }
}

pub fn nodes(nodes: &[NodeStatus], as_json: bool) {
    if as_json {
        let v: Vec<Value> = nodes
            .iter()
            .map(|n| {
                json!({"name": n.name, "attached": n.attached, "datasets": n.datasets.iter().map(|d| json!({"name": d.name, "kind": d.kind, "id_kind": d.id_kind, "rows_rounded": d.rows_rounded, "channels": d.channels, "campaigns": d.campaigns})).collect::<Vec<_>>()})
            })
            .collect();
        println!("{}", Value::Array(v));
        return;
    }
    for n in nodes {
        println!(
            "{} ({})",
            n.name,
            if n.attached { "attached" } else { "not attached" }
        );
        for d in &n.datasets {
            let kind = match d.kind.as_str() {
                "" | "table" => String::new(),
                "exposures" => format!(
                    "  exposures: channels {}; campaigns {}",
                    d.channels.join(", "),
                    d.campaigns.join(", ")
                ),
                other => format!("  {other}"),
            };
            println!(
                "  {}/{}  {}  ~{} identifiers{kind}",
                n.name, d.name, d.id_kind, d.rows_rounded
            );
        }
    }
}

#[cfg(test)]
#[path = "output_tests.rs"]
mod tests;
