//! How jobs, results and nodes are shown: aligned text for people, JSON for programs.

use std::io::Write;

use jointly_protocol::wire::{
    Job, JobState, NodeStatus, QueryResult, QuerySpec, Release, ReleasedCount, query_result,
    query_spec::Query,
};
use serde_json::{Value, json};

fn state(job: &Job) -> &'static str {
    match JobState::try_from(job.state) {
        Ok(JobState::Pending) => "pending",
        Ok(JobState::Running) => "running",
        Ok(JobState::Succeeded) => "succeeded",
        Ok(JobState::Failed) => "failed",
        _ => "unknown",
    }
}

fn spec_text(spec: Option<&QuerySpec>) -> String {
    match spec.and_then(|s| s.query.as_ref()) {
        Some(Query::Overlap(q)) => {
            let r = |d: &Option<jointly_protocol::wire::DatasetRef>| {
                d.as_ref()
                    .map(|d| format!("{}/{}", d.node, d.dataset))
                    .unwrap_or_default()
            };
            format!("overlap {} x {}", r(&q.left), r(&q.right))
        }
        Some(_) => "breakdown or segment".into(),
        None => "-".into(),
    }
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
    match r.result.as_ref() {
        Some(query_result::Result::Overlap(o)) => json!({
            "kind": "overlap",
            "intersection": count_json(o.intersection.as_ref()),
            "release": release_json(r.release.as_ref()),
        }),
        _ => Value::Null,
    }
}

fn job_json(job: &Job) -> Value {
    json!({
        "job_id": job.job_id,
        "state": state(job),
        "query": spec_text(job.spec.as_ref()),
        "error": if job.error.is_empty() { Value::Null } else { json!(job.error) },
        "retryable": job.retryable,
        "progress": {"done": job.progress_done, "total": job.progress_total},
        "result": result_json(job.result.as_ref()),
        "created_unix_ms": job.created_unix_ms,
        "finished_unix_ms": if job.finished_unix_ms == 0 { Value::Null } else { json!(job.finished_unix_ms) },
    })
}

pub fn progress(job: &Job) {
    let pct = if job.progress_total > 0 {
        100.0 * job.progress_done as f64 / job.progress_total as f64
    } else {
        0.0
    };
    eprint!("\r{} {:<9} {:>5.1}%  ", job.job_id, state(job), pct);
    let _ = std::io::stderr().flush();
    if matches!(
        JobState::try_from(job.state),
        Ok(JobState::Succeeded | JobState::Failed)
    ) {
        eprintln!();
    }
}

pub fn job(job: &Job, as_json: bool) {
    if as_json {
        println!("{}", job_json(job));
        return;
    }
    println!("job      {}", job.job_id);
    println!("query    {}", spec_text(job.spec.as_ref()));
    println!("state    {}", state(job));
    if !job.error.is_empty() {
        println!("error    {}", job.error);
        println!(
            "retry    {}",
            if job.retryable {
                "yes: run the query again"
            } else {
                "no: change the query or the policy"
            }
        );
    }
    let Some(result) = job.result.as_ref() else { return };
    if let Some(query_result::Result::Overlap(o)) = result.result.as_ref() {
        println!(
            "overlap  {} shared customers",
            count_text(o.intersection.as_ref(), result.release.as_ref())
        );
    }
    if let Some(r) = result.release.as_ref() {
        if r.exact {
            println!("privacy  exact: no noise (both nodes' policies set allow_exact)");
        } else {
            let nodes: Vec<String> = r
                .nodes
                .iter()
                .map(|n| format!("{} sigma {:.1} at delta {:e}", n.node, n.sigma, n.delta))
                .collect();
            println!(
                "privacy  epsilon {} per node; noise std. dev. {:.1} ({}); counts below {} withheld",
                r.epsilon,
                r.noise_stddev,
                nodes.join(", "),
                r.threshold
            );
        }
    }
}

pub fn jobs(jobs: &[Job], as_json: bool) {
    if as_json {
        println!("{}", Value::Array(jobs.iter().map(job_json).collect()));
        return;
    }
    println!("{:<22} {:<10} {:<44} result", "job", "state", "query");
    for j in jobs {
        let result = match j.result.as_ref().and_then(|r| r.result.as_ref()) {
            Some(query_result::Result::Overlap(o)) => count_text(
                o.intersection.as_ref(),
                j.result.as_ref().and_then(|r| r.release.as_ref()),
            ),
            None if !j.error.is_empty() => j.error.chars().take(60).collect(),
            _ => String::new(),
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
                json!({"name": n.name, "attached": n.attached, "datasets": n.datasets.iter().map(|d| json!({"name": d.name, "id_kind": d.id_kind, "rows_rounded": d.rows_rounded})).collect::<Vec<_>>()})
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
            println!(
                "  {}/{}  {}  ~{} identifiers",
                n.name, d.name, d.id_kind, d.rows_rounded
            );
        }
    }
}
