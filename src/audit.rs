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

/// Text from a transcript file as it may be printed: control and bidi
/// formatting characters escaped (`\u{1b}`, `\u{202e}`), so a forged file
/// cannot move the cursor, recolour or reorder the report it is read in.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let hidden = c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}');
        if hidden {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// The report as a compliance officer reads it. Every string from the file
/// goes through [`clean`].
pub fn render(r: &AuditReport) -> String {
    let mut s = String::new();
    let verdict = if r.verified { "VERIFIED" } else { "FAILED" };
    s += &format!(
        "Transcript of job {} (session {}), kept by node '{}': {verdict}\n\n",
        clean(&r.job_id),
        clean(&r.session_id),
        clean(&r.kept_by)
    );
    s += &format!("Asked:   {}\n", clean(&r.query));
    match &r.requester {
        Some(q) => {
            s += &format!(
                "By:      planner '{}' of organisation '{}', workspace '{}' (key {}…), signed for coordinator '{}'\n",
                clean(&q.principal),
                clean(&q.organisation),
                clean(&q.workspace),
                clean(q.public_key.get(..16).unwrap_or(&q.public_key)),
                clean(&q.coordinator_id)
            );
        }
        None => s += "By:      no planner recorded\n",
    }
    s += "\nWho took part:\n";
    for p in &r.parties {
        s += &format!(
            "  {} ({}): identity key {}…, list of {} points (padded), {} messages sent, epsilon charged {}\n",
            clean(&p.node),
            clean(&p.role),
            clean(p.identity_key.get(..16).unwrap_or(&p.identity_key)),
            p.set_size,
            p.messages_sent,
            p.epsilon
        );
    }
    s += "\nPolicies checked and passed:\n";
    for p in &r.parties {
        for c in &p.policy_checks {
            s += &format!("  [{}] {}\n", clean(&p.node), clean(c));
        }
    }
    s += "\nWhat each party learned (disclosure manifest):\n";
    for d in &r.disclosures {
        s += &format!("  {}: {}\n", clean(&d.party), clean(&d.learns));
    }
    s += "\nChecks:\n";
    for c in &r.checks {
        let mark = match c.status {
            CheckStatus::Passed => "ok  ",
            CheckStatus::Failed => "FAIL",
            CheckStatus::NotChecked => "n/a ",
        };
        s += &format!("  {mark} {}: {}\n", clean(&c.name), clean(&c.detail));
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

#[cfg(test)]
mod tests {
    use jointly_protocol::transcript::PartyReport;

    use super::*;

    #[test]
    fn text_from_a_file_cannot_steer_the_terminal() {
        let report = AuditReport {
            job_id: "job\u{1b}[2J".into(),
            kept_by: "bank\r\nVERIFIED".into(),
            parties: vec![PartyReport {
                node: "bank".into(),
                policy_checks: vec!["\u{1b}[32mall fine\u{1b}[0m \u{202e}desrever".into()],
                ..PartyReport::default()
            }],
            ..AuditReport::default()
        };
        let text = render(&report);
        assert!(!text.contains('\u{1b}') && !text.contains('\u{202e}') && !text.contains('\r'));
        assert!(text.contains("\\u{1b}[32mall fine"), "{text}");
        assert!(text.contains("bank\\u{d}\\u{a}VERIFIED"), "{text}");
        // The report's own line breaks stay.
        assert!(text.lines().count() > 5);
        assert_eq!(clean("plain 中文 text"), "plain 中文 text");
    }
}
