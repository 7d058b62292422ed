//! Shared helpers of the end-to-end tests: data files and job checks.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use jointly_protocol::wire::{Job, JobState, query_result};

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

/// Writes a bank-shaped CSV with the given phone cells.
pub fn bank_csv(dir: &Path, name: &str, phones: &[&str]) -> PathBuf {
    let mut text =
        String::from("customer_id,phone,email,age,aum_tier,has_credit_card,deposit_balance,city\n");
    for (i, p) in phones.iter().enumerate() {
        text.push_str(&format!(
            "C{i},\"{p}\",u{i}@example.com,30,T1,true,10.5,Beijing\n"
        ));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write csv");
    path
}

/// Writes a partner-shaped CSV with the given phone cells.
pub fn partner_csv(dir: &Path, name: &str, phones: &[&str]) -> PathBuf {
    let mut text = String::from("user_id,mobile,email,interest,spend_band,annual_spend,signup_channel\n");
    for (i, p) in phones.iter().enumerate() {
        text.push_str(&format!("U{i},\"{p}\",u{i}@example.com,travel,high,99.0,app\n"));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write csv");
    path
}

/// The exact overlap count of a succeeded job.
pub fn intersection(job: &Job) -> u64 {
    let (count, release) = released(job);
    assert!(release.exact && release.noise_stddev == 0.0);
    assert!(!count.below_threshold);
    u64::try_from(count.value).expect("an exact count is not negative")
}

pub fn failed_with(job: &Job, needle: &str) {
    assert_eq!(
        job.state,
        JobState::Failed as i32,
        "job {} should have failed",
        job.job_id
    );
    assert!(
        job.error.contains(needle),
        "error {:?} should mention {needle:?}",
        job.error
    );
}

/// Polls the job until `done` holds for it.
pub async fn wait_for(
    planner: &mut jointly_coordinator::client::Planner,
    job_id: &str,
    done: impl Fn(&Job) -> bool,
) {
    loop {
        let j = planner
            .get_job(jointly_protocol::wire::GetJobRequest {
                job_id: job_id.to_string(),
            })
            .await
            .expect("get")
            .into_inner();
        if done(&j) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Waits until the job's session is under way (some points processed), so a
/// node can be killed mid-session.
pub async fn wait_under_way(planner: &mut jointly_coordinator::client::Planner, job_id: &str) {
    wait_for(planner, job_id, |j| {
        assert_ne!(
            j.state,
            JobState::Succeeded as i32,
            "the session finished before the node could be killed"
        );
        assert_ne!(
            j.state,
            JobState::Failed as i32,
            "the job failed early: {}",
            j.error
        );
        j.state == JobState::Running as i32 && j.progress_permille > 0
    })
    .await;
}

/// A released overlap count and how it was protected.
pub fn released(
    job: &Job,
) -> (
    jointly_protocol::wire::ReleasedCount,
    jointly_protocol::wire::Release,
) {
    assert_eq!(
        job.state,
        JobState::Succeeded as i32,
        "job {} failed: {}",
        job.job_id,
        job.error
    );
    let result = job.result.as_ref().expect("a result");
    match result.result.as_ref() {
        Some(query_result::Result::Overlap(o)) => (
            o.intersection.expect("a count"),
            result.release.clone().expect("release terms"),
        ),
        other => panic!("no overlap result: {other:?}"),
    }
}

/// Both nodes' full transcripts of a job verify; returns the status of each
/// node's masking-proof check ("passed" or "not_checked").
pub fn transcripts_verify(dir: &Path, job_id: &str) -> Vec<String> {
    use jointly_protocol::transcript::{parse_file, verify};
    ["bank", "partner"]
        .iter()
        .map(|node| {
            let path = dir.join(format!("{node}-data/transcripts/{job_id}.jtx"));
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let report = verify(&parse_file(&bytes).expect("a transcript file"));
            assert!(
                report.verified,
                "{node}'s transcript of {job_id}: {:?}",
                report.checks
            );
            let proofs = report
                .checks
                .iter()
                .find(|c| c.name == "masking proofs")
                .expect("a masking-proof check");
            serde_json::to_value(proofs.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        })
        .collect()
}
