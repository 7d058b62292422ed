//! Who may ask, end to end (README, "Access"): every planner API call is
//! signed and checked against the coordinator's registry; roles and
//! workspaces bound what each person reads, submits and cancels; the nodes
//! check the planner's signature and their own `[[policy.planners]]`, and
//! both transcripts record who asked.

use std::time::Duration;

use crate::support::*;
use jointly_coordinator::{
    auth::method,
    client::{self, ConnectError, Planner, signed},
    credential::Credential,
};
use jointly_examples::{
    cluster::{Cluster, exact, noised, overlap_spec, submission},
    datagen::{DataFormat, DatagenSpec, GeneratedData, generate},
    deploy::PolicySpec,
};
use jointly_node::{
    ledger::{EntryState, Ledger},
    transcripts::full_path,
};
use jointly_protocol::{
    transcript::{parse_file, verify},
    wire::{
        AddPrincipalRequest, CancelJobRequest, FetchTranscriptRequest, JobState, ListJobsRequest,
        PrincipalRole, RevokePrincipalRequest, SubmitQueryRequest,
    },
};
use tonic::{Code, Request};

mod calls;
use calls::{assert_all, every_call, job_of, metadata_signed, now_ms};

fn data(dir: &std::path::Path, rows: usize, overlap: usize) -> GeneratedData {
    let spec = DatagenSpec {
        bank_rows: rows,
        partner_rows: rows,
        overlap,
        seed: 5,
        messy: false,
        format: DataFormat::Csv,
    };
    generate(&spec, dir).expect("datagen")
}

async fn cluster(dir: &std::path::Path, rows: usize, policy: PolicySpec) -> Cluster {
    let d = data(dir, rows, rows / 3);
    Cluster::start(dir, &d.bank_path, &d.partner_path, policy)
        .await
        .expect("cluster")
}

/// Registers a person through the operator's API and connects as her.
async fn register(
    cluster: &Cluster,
    name: &str,
    organisation: &str,
    role: PrincipalRole,
    workspace: &str,
) -> Planner {
    let mut operator = cluster.operator().await.expect("operator");
    let issued = operator
        .add_principal(AddPrincipalRequest {
            name: name.into(),
            organisation: organisation.into(),
            role: role.into(),
            workspaces: vec![workspace.into()],
            valid_days: 0,
            rotate: false,
        })
        .await
        .expect("add principal")
        .into_inner();
    let credential = Credential::parse(&issued.credential).expect("issued credential parses");
    assert_eq!(issued.principal.expect("principal").name, name);
    cluster.connect_with(credential).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_refuses_the_unsigned_revoked_expired_stale_replayed_and_relayed() {
    let dir = tempdir();
    let cluster = cluster(dir.path(), 300, PolicySpec::testing()).await;
    let done = cluster.run(overlap_spec(exact())).await.expect("a job");
    let planner = cluster.planner().await.expect("planner");
    let credential = planner.credential().clone();
    let mut raw = planner.raw();

    let unsigned = every_call(&mut raw, |_, _| tonic::metadata::MetadataMap::new(), &done.job_id).await;
    assert_all(&unsigned, Code::Unauthenticated, "without a signature");

    // Signed for another coordinator: a relay cannot carry it here.
    let elsewhere = every_call(
        &mut raw,
        |m, body| metadata_signed(&credential, "another-coordinator", m, now_ms(), &body()),
        &done.job_id,
    )
    .await;
    assert_all(
        &elsewhere,
        Code::Unauthenticated,
        "signed for another coordinator",
    );

    // Signed ten minutes ago: stale.
    let stale = every_call(
        &mut raw,
        |m, body| metadata_signed(&credential, "jointly-coordinator", m, now_ms() - 600_000, &body()),
        &done.job_id,
    )
    .await;
    assert_all(&stale, Code::Unauthenticated, "with a stale signature");

    // A signature over one call does not carry another.
    let swapped = every_call(
        &mut raw,
        |m, body| {
            let other = if m == method::GET_JOB {
                method::LIST_JOBS
            } else {
                method::GET_JOB
            };
            metadata_signed(&credential, "jointly-coordinator", other, now_ms(), &body())
        },
        &done.job_id,
    )
    .await;
    assert_all(&swapped, Code::Unauthenticated, "signed for another method");

    // A replayed request: the first copy passes, the second is refused.
    let signed_once = signed(&credential, method::GET_JOB, job_of(&done.job_id));
    let (metadata, body) = (signed_once.metadata().clone(), signed_once.get_ref().clone());
    let replay = || {
        let mut r = Request::new(body.clone());
        *r.metadata_mut() = metadata.clone();
        r
    };
    raw.get_job(replay()).await.expect("the first copy");
    let again = raw.get_job(replay()).await.expect_err("the replay");
    assert_eq!(again.code(), Code::Unauthenticated);
    assert!(again.message().contains("replay"), "{}", again.message());
    // An altered body under a good signature.
    let mut altered = Request::new(job_of("job-other"));
    *altered.metadata_mut() = signed(&credential, method::GET_JOB, job_of(&done.job_id))
        .metadata()
        .clone();
    assert_eq!(
        raw.get_job(altered).await.expect_err("altered").code(),
        Code::Unauthenticated
    );

    // Revoked: refused on every call, with the reason.
    let bob = register(&cluster, "bob", "bank", PrincipalRole::Planner, "risk").await;
    let bob_credential = bob.credential().clone();
    let mut operator = cluster.operator().await.expect("operator");
    operator
        .revoke_principal(RevokePrincipalRequest { name: "bob".into() })
        .await
        .expect("revoke");
    let revoked = every_call(
        &mut raw,
        |m, body| metadata_signed(&bob_credential, "jointly-coordinator", m, now_ms(), &body()),
        &done.job_id,
    )
    .await;
    assert_all(&revoked, Code::Unauthenticated, "for a revoked credential");
    let message = bob
        .clone()
        .who_am_i()
        .await
        .expect_err("revoked")
        .message()
        .to_string();
    assert!(message.contains("revoked"), "{message}");

    // Expired: the registry says so.
    let dora = register(&cluster, "dora", "bank", PrincipalRole::Auditor, "campaigns").await;
    let db = jointly_coordinator::store::open_connection(&cluster.deployment.dir.join("coordinator.db"))
        .expect("registry");
    db.execute("UPDATE principals SET expires_ms = 1 WHERE name = 'dora'", [])
        .expect("expire dora");
    let dora_credential = dora.credential().clone();
    let expired = every_call(
        &mut raw,
        |m, body| metadata_signed(&dora_credential, "jointly-coordinator", m, now_ms(), &body()),
        &done.job_id,
    )
    .await;
    assert_all(&expired, Code::Unauthenticated, "for an expired credential");

    // Rotation: the old key stops working, the new one works.
    let issued = operator
        .add_principal(AddPrincipalRequest {
            name: "bob".into(),
            organisation: "bank".into(),
            role: PrincipalRole::Planner.into(),
            workspaces: vec!["risk".into()],
            valid_days: 30,
            rotate: true,
        })
        .await
        .expect("rotate")
        .into_inner();
    let rotated = cluster
        .connect_with(Credential::parse(&issued.credential).expect("parses"))
        .await
        .expect("connect");
    assert_eq!(
        rotated
            .clone()
            .who_am_i()
            .await
            .expect("new key")
            .into_inner()
            .name,
        "bob"
    );
    assert_eq!(
        bob.clone().who_am_i().await.expect_err("old key").code(),
        Code::Unauthenticated
    );

    // Plain HTTP leaves this machine for no one.
    let refused = client::connect("http://10.0.0.1:7700", None, None, credential.clone())
        .await
        .expect_err("plain http off loopback");
    assert!(
        matches!(&refused, ConnectError::PlainHttp { url } if url == "http://10.0.0.1:7700"),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("refusing plain HTTP"), "{refused}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_workspaces_and_the_nodes_policy_decide_who_may_do_what() {
    let dir = tempdir();
    let cluster = cluster(dir.path(), 400, PolicySpec::testing()).await;
    let mut alice = cluster.planner().await.expect("the deployment's planner");
    let mut bob = register(&cluster, "bob", "bank", PrincipalRole::Planner, "risk").await;
    let mut auditor = register(&cluster, "erin", "bank", PrincipalRole::Auditor, "campaigns").await;

    let job = alice
        .submit_query(submission(overlap_spec(exact())))
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(
        (job.owner.as_str(), job.workspace.as_str()),
        ("planner", "campaigns")
    );
    let job = client::wait(&mut alice, &job.job_id, |_| {}).await.expect("wait");
    assert_eq!(job.state, JobState::Succeeded as i32, "{}", job.error);

    // Planner B of another workspace: cannot read, list or cancel A's job.
    let read = bob.get_job(job_of(&job.job_id)).await.expect_err("bob reads");
    assert_eq!(read.code(), Code::PermissionDenied);
    let listed = bob
        .list_jobs(ListJobsRequest { limit: 50 })
        .await
        .expect("list")
        .into_inner();
    assert!(
        listed.jobs.iter().all(|j| j.workspace == "risk"),
        "bob lists only his workspace"
    );
    assert!(!listed.jobs.iter().any(|j| j.job_id == job.job_id));
    let cancel = bob
        .cancel_job(CancelJobRequest {
            job_id: job.job_id.clone(),
        })
        .await
        .expect_err("bob cancels");
    assert_eq!(cancel.code(), Code::PermissionDenied);
    let elsewhere = bob
        .submit_query(SubmitQueryRequest {
            spec: Some(overlap_spec(exact())),
            workspace: "campaigns".into(),
        })
        .await
        .expect_err("bob submits into A's workspace");
    assert_eq!(elsewhere.code(), Code::PermissionDenied);
    assert!(
        elsewhere.message().contains("workspace 'campaigns'"),
        "{}",
        elsewhere.message()
    );

    // The auditor reads and fetches, but submits nothing.
    let submitted = auditor
        .submit_query(submission(overlap_spec(exact())))
        .await
        .expect_err("auditor submits");
    assert_eq!(submitted.code(), Code::PermissionDenied);
    assert!(
        submitted.message().contains("role planner"),
        "{}",
        submitted.message()
    );
    auditor.get_job(job_of(&job.job_id)).await.expect("auditor reads");
    let mut stream = auditor
        .fetch_transcript(FetchTranscriptRequest {
            job_id: job.job_id.clone(),
            node: "partner".into(),
        })
        .await
        .expect("auditor fetches")
        .into_inner();
    let mut fetched = Vec::new();
    while let Some(chunk) = stream.message().await.expect("chunk") {
        fetched.extend_from_slice(&chunk.data);
    }
    // A planner does not fetch transcripts, nor touch the registry.
    let fetch = alice
        .fetch_transcript(FetchTranscriptRequest {
            job_id: job.job_id.clone(),
            node: String::new(),
        })
        .await
        .expect_err("planner fetches");
    assert_eq!(fetch.code(), Code::PermissionDenied);
    assert_eq!(
        alice
            .list_principals()
            .await
            .expect_err("planner reads registry")
            .code(),
        Code::PermissionDenied
    );

    // Both transcripts name the planner; the auditor's report prints her.
    for node in ["bank", "partner"] {
        let data_dir = cluster.deployment.dir.join(format!("{node}-data"));
        let bytes = std::fs::read(full_path(&data_dir, &job.job_id)).expect("transcript");
        let report = verify(&parse_file(&bytes).expect("parses"));
        assert!(report.verified, "{node}: {:?}", report.checks);
        let who = report.requester.expect("the requester is recorded");
        assert_eq!(
            (
                who.principal.as_str(),
                who.organisation.as_str(),
                who.workspace.as_str()
            ),
            ("planner", "bank", "campaigns"),
            "{node}"
        );
    }
    let file = dir.path().join("partner.jtx");
    std::fs::write(&file, &fetched).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jointly"))
        .args(["audit", "verify", file.to_str().expect("path")])
        .output()
        .expect("run jointly");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("By:      planner 'planner' of organisation 'bank', workspace 'campaigns'"),
        "{text}"
    );

    // A planner whose organisation no node's policy names: the node refuses,
    // naming the policy key to change.
    let mut carol = register(&cluster, "carol", "agency", PrincipalRole::Planner, "campaigns").await;
    let refused = carol
        .submit_query(submission(overlap_spec(exact())))
        .await
        .expect("the coordinator accepts it")
        .into_inner();
    let refused = client::wait(&mut carol, &refused.job_id, |_| {})
        .await
        .expect("wait");
    failed_with(&refused, "[[policy.planners]]");
    assert!(
        refused.error.contains("'carol'") && refused.error.contains("'agency'"),
        "{}",
        refused.error
    );
    assert!(!refused.retryable);

    // The CLI signs in with a credential and says who you are.
    let home = dir.path().join("home");
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_jointly"))
            .env("XDG_CONFIG_HOME", &home)
            .env_remove("JOINTLY_CREDENTIAL")
            .args(["--coordinator", &cluster.url])
            .args(args)
            .output()
            .expect("run jointly")
    };
    let before = cli(&["whoami"]);
    assert!(!before.status.success());
    assert!(String::from_utf8_lossy(&before.stderr).contains("jointly login"));
    let login = cli(&[
        "login",
        cluster.deployment.credentials.planner.to_str().expect("path"),
    ]);
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let stored = home.join("jointly/credential.toml");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&stored).expect("stored").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let me = cli(&["whoami"]);
    let me = String::from_utf8_lossy(&me.stdout);
    assert!(me.contains("planner (planner, organisation bank)"), "{me}");
    cluster.shutdown().await;
}

fn ledger(cluster: &Cluster, node: &str) -> Ledger {
    Ledger::open(&cluster.deployment.dir.join(format!("{node}-data"))).expect("ledger")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_ends_at_both_nodes_and_gives_back_what_it_had_not_spent() {
    let dir = tempdir();
    let cluster = cluster(dir.path(), 40_000, PolicySpec::production()).await;
    let mut planner = cluster.planner().await.expect("planner");
    let job = planner
        .submit_query(submission(overlap_spec(noised(0.5))))
        .await
        .expect("submit")
        .into_inner();
    wait_under_way(&mut planner, &job.job_id).await;
    let cancelled = planner
        .cancel_job(CancelJobRequest {
            job_id: job.job_id.clone(),
        })
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(cancelled.state, JobState::Cancelled as i32);
    assert!(
        cancelled.error.contains("cancelled by planner 'planner'"),
        "{}",
        cancelled.error
    );
    let again = planner
        .cancel_job(CancelJobRequest {
            job_id: job.job_id.clone(),
        })
        .await
        .expect_err("twice");
    assert_eq!(again.code(), Code::FailedPrecondition);

    // Both nodes end the session and settle the reservation: the release's
    // share is given back, only what the peer may have seen stays spent.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for node in ["bank", "partner"] {
        loop {
            let entries = ledger(&cluster, node).entries().expect("entries");
            let entry = entries
                .iter()
                .find(|e| e.charge.job_id == job.job_id)
                .expect("charged");
            if matches!(entry.state, EntryState::Partial | EntryState::Released) {
                let kept = match entry.state {
                    EntryState::Partial => entry.charge.view_micro,
                    _ => 0,
                };
                assert_eq!(entry.spent_micro(), kept, "{node}: {entry:?}");
                if node == "bank" {
                    // The receiver's release share is most of its charge;
                    // the sender's whole charge is its cover.
                    assert!(entry.spent_micro() < entry.charge.rho_micro, "{entry:?}");
                }
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{node} still holds {entry:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Neither node stays busy: the next job runs.
    let next = cluster.run(overlap_spec(noised(0.1))).await.expect("next");
    released(&next);
    let kept = planner
        .get_job(job_of(&job.job_id))
        .await
        .expect("read")
        .into_inner();
    assert_eq!(
        kept.state,
        JobState::Cancelled as i32,
        "a cancelled job stays cancelled"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_who_never_reads_does_not_hold_up_the_nodes() {
    let dir = tempdir();
    let cluster = cluster(dir.path(), 20_000, PolicySpec::testing()).await;
    let first = cluster.run(overlap_spec(exact())).await.expect("first");
    intersection(&first);
    let mut auditor = cluster.auditor().await.expect("auditor");
    // Two fetches opened and never read: their uploads wait on flow control.
    let mut held = Vec::new();
    for node in ["bank", "partner"] {
        held.push(
            auditor
                .fetch_transcript(FetchTranscriptRequest {
                    job_id: first.job_id.clone(),
                    node: node.into(),
                })
                .await
                .expect("fetch")
                .into_inner(),
        );
    }
    // The nodes still decide, run and report new jobs meanwhile.
    for _ in 0..2 {
        let job = tokio::time::timeout(Duration::from_secs(60), cluster.run(overlap_spec(exact())))
            .await
            .expect("a job finishes while the fetches wait")
            .expect("job");
        assert_eq!(intersection(&job), intersection(&first));
    }
    drop(held);
    cluster.shutdown().await;
}
