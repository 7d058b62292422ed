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

pub fn intersection(job: &Job) -> u64 {
    assert_eq!(
        job.state,
        JobState::Succeeded as i32,
        "job {} failed: {}",
        job.job_id,
        job.error
    );
    match job.result.as_ref().and_then(|r| r.result.as_ref()) {
        Some(query_result::Result::Overlap(o)) => {
            assert!(o.exact);
            o.intersection
        }
        other => panic!("no overlap result: {other:?}"),
    }
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
