//! Overlap end to end: a coordinator and two nodes on loopback (real gRPC, SQLite,
//! polars), every answer checked against a plaintext polars join of the same files.

use crate::support::*;
use jointly_examples::{
    cluster::{Cluster, exact, overlap_spec},
    datagen::{DataFormat, DatagenSpec, generate},
    deploy::PolicySpec,
    plaintext,
};
use jointly_protocol::{ids::normalize::IdKind, wire::JobState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messy_generated_data_matches_the_plaintext_join() {
    let dir = tempdir();
    for format in [DataFormat::Csv, DataFormat::Parquet] {
        let spec = DatagenSpec {
            bank_rows: 3000,
            partner_rows: 2500,
            overlap: 1100,
            seed: 11,
            messy: true,
            format,
        };
        let sub = dir.path().join(format.extension());
        let data = generate(&spec, &sub).expect("datagen");
        assert!(data.truth.bank_duplicate_rows > 0 && data.truth.partner_invalid_rows > 0);
        let cluster = Cluster::start(&sub, &data.bank_path, &data.partner_path, PolicySpec::testing())
            .await
            .expect("cluster");
        let job = cluster.run(overlap_spec(exact())).await.expect("job");
        let expected = plaintext::overlap(
            (&data.bank_path, "phone"),
            (&data.partner_path, "mobile"),
            IdKind::Phone,
        )
        .expect("plaintext");
        assert_eq!(intersection(&job), expected);
        assert_eq!(expected, data.truth.overlap as u64);
        cluster.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formatting_variants_empty_and_one_row_sets() {
    let dir = tempdir();
    let cases: [(&[&str], &[&str], u64); 4] = [
        // One row each, the same person written two ways.
        (&["+86 138-1234-5678"], &["0086 13812345678"], 1),
        // Empty bank (header only) against a partner with rows.
        (&[], &["13812345678", "13912345678"], 0),
        // Duplicates and invalid rows on both sides.
        (
            &[
                "138 1234 5678",
                "+8613812345678",
                "N/A",
                "",
                "139-1234-5678",
                "12345",
            ],
            &["+86 (138) 1234 5678", "13812345678", "abc", "150 0000 0000"],
            1,
        ),
        // Both empty.
        (&[], &[], 0),
    ];
    for (i, (bank, partner, want)) in cases.into_iter().enumerate() {
        let sub = dir.path().join(format!("case{i}"));
        std::fs::create_dir_all(&sub).expect("dir");
        let b = bank_csv(&sub, "bank.csv", bank);
        let p = partner_csv(&sub, "partner.csv", partner);
        let cluster = Cluster::start(&sub, &b, &p, PolicySpec::testing())
            .await
            .expect("cluster");
        let job = cluster.run(overlap_spec(exact())).await.expect("job");
        let expected = plaintext::overlap((&b, "phone"), (&p, "mobile"), IdKind::Phone).expect("plaintext");
        assert_eq!(expected, want, "case {i}: plaintext");
        assert_eq!(intersection(&job), want, "case {i}: private");
        cluster.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planner_mistakes_and_policy_refusals_are_named() {
    let dir = tempdir();
    let b = bank_csv(dir.path(), "bank.csv", &["13812345678"]);
    let p = partner_csv(dir.path(), "partner.csv", &["13812345678"]);
    let cluster = Cluster::start(dir.path(), &b, &p, PolicySpec::production())
        .await
        .expect("cluster");
    let mut planner = cluster.planner().await.expect("planner");

    let mut spec = overlap_spec(exact());
    if let Some(jointly_protocol::wire::query_spec::Query::Overlap(q)) = spec.query.as_mut() {
        q.right.as_mut().expect("right").node = "insurer".into();
    }
    let err = planner
        .submit_query(jointly_examples::cluster::submission(spec))
        .await
        .expect_err("unknown node");
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(
        err.message().contains("insurer") && err.message().contains("partner"),
        "{}",
        err.message()
    );

    let mut spec = overlap_spec(exact());
    if let Some(jointly_protocol::wire::query_spec::Query::Overlap(q)) = spec.query.as_mut() {
        q.left.as_mut().expect("left").dataset = "prospects".into();
    }
    let err = planner
        .submit_query(jointly_examples::cluster::submission(spec))
        .await
        .expect_err("unknown dataset");
    assert!(
        err.message().contains("prospects") && err.message().contains("customers"),
        "{}",
        err.message()
    );

    // Neither policy allows exact results: refused, and not worth retrying.
    let job = cluster.run(overlap_spec(exact())).await.expect("job");
    failed_with(&job, "allow_exact");
    assert!(!job.retryable);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_fails_the_job_and_a_rerun_succeeds() {
    let dir = tempdir();
    let spec = DatagenSpec {
        bank_rows: 40_000,
        partner_rows: 40_000,
        overlap: 15_000,
        seed: 5,
        messy: false,
        format: DataFormat::Csv,
    };
    let data = generate(&spec, dir.path()).expect("datagen");
    let mut cluster = Cluster::start(
        dir.path(),
        &data.bank_path,
        &data.partner_path,
        PolicySpec::testing(),
    )
    .await
    .expect("cluster");
    let mut planner = cluster.planner().await.expect("planner");
    let job = planner
        .submit_query(jointly_examples::cluster::submission(overlap_spec(exact())))
        .await
        .expect("submit")
        .into_inner();
    // Wait until the session is under way, then kill the partner's node.
    wait_under_way(&mut planner, &job.job_id).await;
    cluster.kill_node("partner").await;
    let failed = jointly_coordinator::client::wait(&mut planner, &job.job_id, |_| {})
        .await
        .expect("wait");
    failed_with(&failed, "partner");
    assert!(failed.retryable);

    cluster.start_node("partner").await.expect("restart partner");
    cluster
        .wait_attached(&["bank", "partner"])
        .await
        .expect("attached");
    let rerun = cluster.run(overlap_spec(exact())).await.expect("rerun");
    assert_eq!(intersection(&rerun), data.truth.overlap as u64);

    // A coordinator crash loses no finished result; nodes reconnect by themselves.
    cluster.restart_coordinator().await.expect("restart coordinator");
    let mut planner = cluster.planner().await.expect("planner");
    let kept = planner
        .get_job(jointly_protocol::wire::GetJobRequest {
            job_id: rerun.job_id.clone(),
        })
        .await
        .expect("get after restart")
        .into_inner();
    assert_eq!(intersection(&kept), data.truth.overlap as u64);
    cluster
        .wait_attached(&["bank", "partner"])
        .await
        .expect("nodes reattach");
    let again = cluster.run(overlap_spec(exact())).await.expect("after restart");
    assert_eq!(intersection(&again), data.truth.overlap as u64);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_crash_mid_job_leaves_it_failed_and_retryable() {
    let dir = tempdir();
    let spec = DatagenSpec {
        bank_rows: 40_000,
        partner_rows: 40_000,
        overlap: 10_000,
        seed: 9,
        messy: false,
        format: DataFormat::Csv,
    };
    let data = generate(&spec, dir.path()).expect("datagen");
    let mut cluster = Cluster::start(
        dir.path(),
        &data.bank_path,
        &data.partner_path,
        PolicySpec::testing(),
    )
    .await
    .expect("cluster");
    let mut planner = cluster.planner().await.expect("planner");
    let job = planner
        .submit_query(jointly_examples::cluster::submission(overlap_spec(exact())))
        .await
        .expect("submit")
        .into_inner();
    wait_for(&mut planner, &job.job_id, |j| j.state == JobState::Running as i32).await;
    cluster.restart_coordinator().await.expect("restart");
    let mut planner = cluster.planner().await.expect("planner");
    let j = planner
        .get_job(jointly_protocol::wire::GetJobRequest {
            job_id: job.job_id.clone(),
        })
        .await
        .expect("get")
        .into_inner();
    failed_with(&j, "coordinator stopped");
    assert!(j.retryable);
    assert!(j.result.is_none(), "nothing half-released");
    cluster
        .wait_attached(&["bank", "partner"])
        .await
        .expect("nodes reattach");
    let rerun = cluster.run(overlap_spec(exact())).await.expect("rerun");
    assert_eq!(intersection(&rerun), data.truth.overlap as u64);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlap_over_tls_with_a_private_ca() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let dir = tempdir();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key")).expect("ca");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["coordinator.test".to_string()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("cert");
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write pem");
        path
    };
    let tls = jointly_examples::deploy::TlsPaths {
        ca_cert: write("ca.pem", ca.pem()),
        cert: write("coordinator.pem", cert.pem()),
        key: write("coordinator.key.pem", key.serialize_pem()),
        domain: "coordinator.test".into(),
    };
    let b = bank_csv(dir.path(), "bank.csv", &["13812345678", "13912345678"]);
    let p = partner_csv(dir.path(), "partner.csv", &["+86 139 1234 5678"]);
    // Nodes and planner dial 127.0.0.1 and check the certificate's name via tls_domain.
    let cluster = Cluster::start_tls(dir.path(), &b, &p, tls)
        .await
        .expect("cluster over TLS");
    assert!(cluster.url.starts_with("https://"));
    let job = cluster.run(overlap_spec(exact())).await.expect("job");
    assert_eq!(intersection(&job), 1);
    cluster.shutdown().await;
}
