//! Privacy controls end to end: noised results with their error bars, the
//! budget ledger at both nodes (refusal, crash between reserve and commit),
//! thresholds, and a planner trying to get an un-noised number out.

use crate::support::*;
use jointly_examples::{
    cluster::{Cluster, exact, noised, overlap_spec},
    datagen::{DataFormat, DatagenSpec, GeneratedData, generate},
    deploy::PolicySpec,
};
use jointly_node::{
    NodeConfig,
    ledger::{EntryState, Ledger},
    privacy::standings,
};
use jointly_protocol::wire::{Privacy, QuerySpec};

fn data(dir: &std::path::Path, rows: usize, overlap: usize) -> GeneratedData {
    let spec = DatagenSpec {
        bank_rows: rows,
        partner_rows: rows,
        overlap,
        seed: 21,
        messy: false,
        format: DataFormat::Csv,
    };
    generate(&spec, dir).expect("datagen")
}

async fn cluster(dir: &std::path::Path, data: &GeneratedData, policy: PolicySpec) -> Cluster {
    Cluster::start(dir, &data.bank_path, &data.partner_path, policy)
        .await
        .expect("cluster")
}

fn ledger(cluster: &Cluster, node: &str) -> Ledger {
    Ledger::open(&cluster.deployment.dir.join(format!("{node}-data"))).expect("ledger")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noised_results_carry_error_bars_and_are_charged_at_both_nodes() {
    let dir = tempdir();
    let data = data(dir.path(), 600, 300);
    let truth = data.truth.overlap as i64;
    let cluster = cluster(dir.path(), &data, PolicySpec::production()).await;
    let mut values = Vec::new();
    for _ in 0..3 {
        let job = cluster.run(overlap_spec(noised(0.1))).await.expect("job");
        let (count, release) = released(&job);
        assert!(!release.exact && !count.below_threshold);
        assert_eq!(release.epsilon, 0.1);
        assert_eq!(release.threshold, 10);
        // Two shares, each alone sized for epsilon 0.1 at delta 1e-6.
        let sigmas: Vec<f64> = release.nodes.iter().map(|n| n.sigma).collect();
        assert_eq!(release.nodes.len(), 2);
        assert!(sigmas.iter().all(|s| *s > 20.0), "{sigmas:?}");
        let combined = sigmas.iter().map(|s| s * s).sum::<f64>().sqrt();
        assert!((release.noise_stddev - combined).abs() < 1e-9);
        assert!(
            (count.value - truth).abs() as f64 <= 6.0 * release.noise_stddev,
            "{} is implausibly far from {truth}",
            count.value
        );
        values.push(count.value);
    }
    // With a standard deviation near 60 the chance that all three equal the
    // truth is below one in a million.
    assert!(values.iter().any(|v| *v != truth), "{values:?} all exact");

    for node in ["bank", "partner"] {
        let entries = ledger(&cluster, node).entries().expect("entries");
        assert_eq!(entries.len(), 3, "{node}");
        for e in &entries {
            assert_eq!(e.state, EntryState::Committed, "{node}");
            assert_eq!(
                (e.charge.epsilon, e.charge.exact, e.charge.query.as_str()),
                (0.1, false, "overlap")
            );
            assert!(e.charge.rho_micro > 0);
        }
        let config_path = if node == "bank" {
            &cluster.deployment.bank_config
        } else {
            &cluster.deployment.partner_config
        };
        let config = NodeConfig::load(config_path).expect("config");
        let s = standings(&entries, &config.policy);
        assert_eq!(s.len(), 1);
        // Composition under zCDP costs less than adding the epsilons.
        assert!(s[0].epsilon_spent > 0.1 && s[0].epsilon_spent < 0.3, "{:?}", s[0]);
        assert_eq!(s[0].queries, 3);
        let left = s[0].epsilon_left.expect("a budget");
        // Spending 0.18 or so of 8 leaves more than 8 - 0.18 for one query.
        assert!(left > 8.0 - s[0].epsilon_spent && left < 8.0, "{left}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_would_overspend_is_refused_with_the_budget_named() {
    let dir = tempdir();
    let data = data(dir.path(), 300, 150);
    let policy = PolicySpec {
        budget_epsilon: 1.0,
        ..PolicySpec::production()
    };
    let cluster = cluster(dir.path(), &data, policy).await;
    released(&cluster.run(overlap_spec(noised(0.8))).await.expect("first"));
    let refused = cluster.run(overlap_spec(noised(0.8))).await.expect("second");
    failed_with(&refused, "privacy budget");
    assert!(refused.error.contains("customers") || refused.error.contains("users"));
    assert!(!refused.retryable);
    // A smaller query still fits, and the refused one charged nothing.
    released(&cluster.run(overlap_spec(noised(0.1))).await.expect("third"));
    for node in ["bank", "partner"] {
        let entries = ledger(&cluster, node).entries().expect("entries");
        let states: Vec<_> = entries.iter().map(|e| (e.charge.epsilon, e.state)).collect();
        assert!(
            entries.iter().filter(|e| e.spent_micro() > 0).count() == 2,
            "{node}: {states:?}"
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_counts_are_withheld() {
    let dir = tempdir();
    // Lists large enough for policy.min_set_size (the threshold, 50), one
    // person shared.
    let bank: Vec<String> = (0..120).map(|i| format!("138{:08}", 10_000_000 + i)).collect();
    let mut partner: Vec<String> = (0..120).map(|i| format!("139{:08}", 10_000_000 + i)).collect();
    partner[0] = bank[0].clone();
    let bank_refs: Vec<&str> = bank.iter().map(String::as_str).collect();
    let partner_refs: Vec<&str> = partner.iter().map(String::as_str).collect();
    let b = bank_csv(dir.path(), "bank.csv", &bank_refs);
    let p = partner_csv(dir.path(), "partner.csv", &partner_refs);
    let policy = PolicySpec {
        allow_exact: true,
        min_aggregation: 50,
        ..PolicySpec::production()
    };
    let cluster = Cluster::start(dir.path(), &b, &p, policy).await.expect("cluster");
    // True count 1: exact or noised (standard deviation about 6), below 50.
    for privacy in [exact(), noised(1.0)] {
        let (count, release) = released(&cluster.run(overlap_spec(privacy)).await.expect("job"));
        assert!(count.below_threshold, "{count:?}");
        assert_eq!(count.value, 0, "a withheld count carries no value");
        assert_eq!(release.threshold, 50);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_planner_cannot_get_an_unnoised_result_past_the_policies() {
    let dir = tempdir();
    let data = data(dir.path(), 200, 100);
    let mut cluster = cluster(dir.path(), &data, PolicySpec::production()).await;
    let mut planner = cluster.planner().await.expect("planner");

    // Asking outright.
    let job = cluster.run(overlap_spec(exact())).await.expect("job");
    failed_with(&job, "allow_exact");
    assert!(job.result.is_none());
    // Buying near-exactness with a huge epsilon.
    let job = cluster.run(overlap_spec(noised(1e9))).await.expect("job");
    failed_with(&job, "max_epsilon");
    // Degenerate epsilons never reach the nodes.
    for epsilon in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = planner
            .submit_query(jointly_examples::cluster::submission(overlap_spec(noised(
                epsilon,
            ))))
            .await
            .expect_err("invalid epsilon");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{epsilon}");
    }
    let err = planner
        .submit_query(jointly_examples::cluster::submission(QuerySpec {
            privacy: None,
            ..overlap_spec(exact())
        }))
        .await
        .expect_err("no privacy terms");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    // An "exact" flag with an epsilon attached is still an exact request.
    let job = cluster
        .run(overlap_spec(Privacy {
            epsilon: 1.0,
            exact: true,
        }))
        .await
        .expect("job");
    failed_with(&job, "allow_exact");

    // One node allowing exact results is not enough: the other refuses.
    cluster.kill_node("partner").await;
    let config = std::fs::read_to_string(&cluster.deployment.partner_config).expect("read");
    std::fs::write(
        &cluster.deployment.partner_config,
        config.replace("allow_exact = false", "allow_exact = true"),
    )
    .expect("write");
    cluster.start_node("partner").await.expect("restart");
    cluster
        .wait_attached(&["bank", "partner"])
        .await
        .expect("attached");
    let job = cluster.run(overlap_spec(exact())).await.expect("job");
    failed_with(&job, "node 'bank' refuses an exact result");
    // Nothing was charged or released for any of the refused jobs. The node
    // that accepted gives its reservation back when the coordinator's cancel
    // reaches it, which may be just after the job is recorded as failed.
    for node in ["bank", "partner"] {
        let spent = || {
            ledger(&cluster, node)
                .entries()
                .expect("entries")
                .iter()
                .filter(|e| e.spent_micro() > 0)
                .count()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while spent() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(spent(), 0, "{node}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_between_reserve_and_commit_keeps_the_spend_on_its_ledger() {
    let dir = tempdir();
    let data = data(dir.path(), 40_000, 15_000);
    let mut cluster = cluster(dir.path(), &data, PolicySpec::production()).await;
    let mut planner = cluster.planner().await.expect("planner");
    let job = planner
        .submit_query(jointly_examples::cluster::submission(overlap_spec(noised(0.5))))
        .await
        .expect("submit")
        .into_inner();
    wait_under_way(&mut planner, &job.job_id).await;
    cluster.kill_node("bank").await;
    let failed = jointly_coordinator::client::wait(&mut planner, &job.job_id, |_| {})
        .await
        .expect("wait");
    failed_with(&failed, "bank");
    assert!(failed.result.is_none());

    cluster.start_node("bank").await.expect("restart bank");
    let entries = ledger(&cluster, "bank").entries().expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].charge.job_id, job.job_id);
    assert_eq!(
        entries[0].state,
        EntryState::Started,
        "the crash left it started (its session had sent its first message)"
    );
    let config = NodeConfig::load(&cluster.deployment.bank_config).expect("config");
    let s = standings(&entries, &config.policy);
    assert!(
        s[0].epsilon_spent > 0.49,
        "a reserved entry counts as spent: {:?}",
        s[0]
    );
    // The partner saw a clean failure before releasing anything: its
    // session had started, so what the bank could have seen of its cover
    // stays spent (for a sender, its whole charge) and nothing more.
    let partner = ledger(&cluster, "partner").entries().expect("entries");
    assert_eq!(partner[0].state, EntryState::Partial);
    assert_eq!(partner[0].spent_micro(), partner[0].charge.view_micro);
    cluster.shutdown().await;
}
