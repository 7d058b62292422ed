//! `jointly audit`: fetch a job's transcript through the coordinator, and
//! verify a transcript file with no secret and no data.

use std::{io::Write, path::Path};

use anyhow::{Context, bail};
use jointly_protocol::{
    transcript::{AuditReport, CheckStatus, parse_file, verify},
    wire::FetchTranscriptRequest,
};

/// Verifies `path` and prints the report. Fails (non-zero exit) when any
/// check fails or the file cannot be read.
pub fn verify_file(path: &Path, json: bool) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read the transcript {}", path.display()))?;
    let records = parse_file(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not a readable transcript: {e}; fetch it again with `jointly audit fetch`",
            path.display()
        )
    })?;
    let report = verify(&records);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    if !report.verified {
        bail!(
            "transcript {} FAILED verification (see the failed checks above)",
            path.display()
        );
    }
    Ok(())
}

/// The report as a compliance officer reads it.
pub fn render(r: &AuditReport) -> String {
    let mut s = String::new();
    let verdict = if r.verified { "VERIFIED" } else { "FAILED" };
    s += &format!(
        "Transcript of job {} (session {}), kept by node '{}': {verdict}\n\n",
        r.job_id, r.session_id, r.kept_by
    );
    s += &format!("Asked:   {}\n", r.query);
    s += "\nWho took part:\n";
    for p in &r.parties {
        s += &format!(
            "  {} ({}): identity key {}…, {} distinct identifiers, {} messages sent, epsilon charged {}\n",
            p.node,
            p.role,
            p.identity_key.get(..16).unwrap_or(&p.identity_key),
            p.set_size,
            p.messages_sent,
            p.epsilon
        );
    }
    s += "\nPolicies checked and passed:\n";
    for p in &r.parties {
        for c in &p.policy_checks {
            s += &format!("  [{}] {c}\n", p.node);
        }
    }
    s += "\nWhat each party learned (disclosure manifest):\n";
    for d in &r.disclosures {
        s += &format!("  {}: {}\n", d.party, d.learns);
    }
    s += "\nChecks:\n";
    for c in &r.checks {
        let mark = match c.status {
            CheckStatus::Passed => "ok  ",
            CheckStatus::Failed => "FAIL",
            CheckStatus::NotChecked => "n/a ",
        };
        s += &format!("  {mark} {}: {}\n", c.name, c.detail);
    }
    s
}

/// Streams one node's shared transcript of `job` into `out`.
pub async fn fetch(
    mut client: jointly_coordinator::client::Planner,
    job: &str,
    node: Option<String>,
    out: &Path,
) -> anyhow::Result<u64> {
    let mut stream = client
        .fetch_transcript(FetchTranscriptRequest {
            job_id: job.to_string(),
            node: node.unwrap_or_default(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    let partial = out.with_extension("partial");
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?,
    );
    let mut bytes = 0u64;
    while let Some(chunk) = stream
        .message()
        .await
        .map_err(|s| anyhow::anyhow!("fetching the transcript of job {job}: {}", s.message()))?
    {
        file.write_all(&chunk.data)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        bytes += chunk.data.len() as u64;
    }
    file.flush()
        .with_context(|| format!("cannot write {}", partial.display()))?;
    drop(file);
    std::fs::rename(&partial, out).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(bytes)
}
