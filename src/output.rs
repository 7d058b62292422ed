//! How jobs, results and nodes are shown: aligned text for people, JSON for programs.

use std::io::Write;

use jointly_protocol::wire::{
    Job, JobState, NodeStatus, QueryResult, QuerySpec, query_result, query_spec::Query,
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
        None => "-".into(),
    }
}

fn result_json(r: Option<&QueryResult>) -> Value {
    match r.and_then(|r| r.result.as_ref()) {
        Some(query_result::Result::Overlap(o)) => {
            json!({"kind": "overlap", "intersection": o.intersection, "exact": o.exact})
        }
        None => Value::Null,
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
    if let Some(query_result::Result::Overlap(o)) = job.result.as_ref().and_then(|r| r.result.as_ref()) {
        println!(
            "overlap  {} shared customers ({})",
            o.intersection,
            if o.exact { "exact" } else { "noised" }
        );
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
            Some(query_result::Result::Overlap(o)) => o.intersection.to_string(),
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
