//! Transcripts end to end: after real sessions over loopback gRPC, each node
//! keeps a full transcript (with its masking proofs) and a shared copy; an
//! auditor fetches the shared copy through the coordinator, and
//! `jointly audit verify` passes both and fails a tampered file with a
//! non-zero exit.

use crate::support::*;
use jointly_examples::{
    cluster::{Cluster, exact, overlap_spec},
    datagen::{DataFormat, DatagenSpec, generate},
    deploy::PolicySpec,
};
use jointly_protocol::{
    transcript::{CheckStatus, parse_file, verify},
    wire::{FetchTranscriptRequest, JobState},
};

fn jointly(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_jointly"))
        .args(args)
        .output()
        .expect("run jointly")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_are_kept_fetched_and_verified() {
    let dir = tempdir();
    let spec = DatagenSpec {
        // Large enough that the shared copy travels in several parts.
        bank_rows: 8000,
        partner_rows: 6000,
        overlap: 3000,
        seed: 5,
        messy: true,
        format: DataFormat::Csv,
    };
    let data = generate(&spec, dir.path()).expect("datagen");
    let cluster = Cluster::start(
        dir.path(),
        &data.bank_path,
        &data.partner_path,
        PolicySpec::testing(),
    )
    .await
    .expect("cluster");
    let job = cluster.run(overlap_spec(exact())).await.expect("job");
    assert_eq!(job.state, JobState::Succeeded as i32, "{}", job.error);
    let count = intersection(&job);

    // Each node's full copy verifies, masking proofs included; the bank's
    // recount equals the released exact count.
    for node in ["bank", "partner"] {
        let path = dir
            .path()
            .join(format!("{node}-data/transcripts/{}.jtx", job.job_id));
        let records = parse_file(&std::fs::read(&path).expect("full transcript")).expect("parses");
        let report = verify(&records);
        assert!(report.verified, "{node}: {:?}", report.checks);
        let proof = report
            .checks
            .iter()
            .find(|c| c.name == "masking proofs")
            .expect("proof check");
        assert_eq!(proof.status, CheckStatus::Passed, "{node}: {}", proof.detail);
        if node == "bank" {
            assert!(
                proof.detail.contains(&format!("= {count} is the count")),
                "{}",
                proof.detail
            );
        }
        assert!(report.parties.iter().all(|p| !p.policy_checks.is_empty()));
        let bytes = std::fs::read(&path).expect("read");
        for i in 0..50 {
            let phone = jointly_examples::datagen::person_phone(i);
            let digits = phone.trim_start_matches("+86").as_bytes();
            assert!(
                !bytes.windows(digits.len()).any(|w| w == digits),
                "no raw identifier in a transcript"
            );
        }
    }

    // The auditor's copy comes through the coordinator and holds no proofs.
    let mut planner = cluster.auditor().await.expect("auditor");
    let mut stream = planner
        .fetch_transcript(FetchTranscriptRequest {
            job_id: job.job_id.clone(),
            node: "partner".into(),
        })
        .await
        .expect("fetch")
        .into_inner();
    let mut fetched = Vec::new();
    while let Some(chunk) = stream.message().await.expect("chunk") {
        fetched.extend_from_slice(&chunk.data);
    }
    let records = parse_file(&fetched).expect("parses");
    let report = verify(&records);
    assert!(report.verified, "{:?}", report.checks);
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.name == "masking proofs" && c.status == CheckStatus::NotChecked)
    );
    assert!(fetched.len() > 512 << 10, "the fetch spans several parts");

    // An unknown job is named.
    let missing = planner
        .fetch_transcript(FetchTranscriptRequest {
            job_id: "job-none".into(),
            node: "bank".into(),
        })
        .await;
    assert!(missing.is_err());

    // The command line: exit 0 and JSON for a good file, non-zero for a flipped byte.
    let good = dir.path().join("fetched.jtx");
    std::fs::write(&good, &fetched).expect("write");
    let out = jointly(&["--json", "audit", "verify", good.to_str().expect("path")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(json["verified"], true);
    assert_eq!(json["job_id"], job.job_id.as_str());
    let mut bad = fetched.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x40;
    let tampered = dir.path().join("tampered.jtx");
    std::fs::write(&tampered, &bad).expect("write");
    let out = jointly(&["audit", "verify", tampered.to_str().expect("path")]);
    assert!(!out.status.success(), "a tampered transcript must fail");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("FAIL"), "{text}");
    cluster.shutdown().await;
}
