//! The attacks of the privacy review, run end to end against a coordinator
//! and two nodes with production policies: each must now learn only noised
//! numbers. Every check would fail on a design where the receiving node
//! matches in the clear, lists go out at their exact size, shared
//! transcripts carry decryption shares, or activation compares an exact
//! size (see README, "Leakage").

use std::path::{Path, PathBuf};

use crate::support::*;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use jointly_examples::{
    cluster::{Cluster, noised},
    datagen::{DataFormat, DatagenSpec, generate, person_phone},
    deploy::PolicySpec,
};
use jointly_protocol::{
    crypto::bsgs::BsgsTable,
    queries::breakdown_plan::MAX_ABS_VALUE,
    transcript::parse_file,
    wire::{
        BreakdownQuery, CipherList, DatasetRef, Filter, Job, JobState, OverlapQuery, QuerySpec, Range,
        SegmentQuery, SessionReport, TranscriptRecord, filter::Test, protocol_message::Kind, query_result,
        query_spec::Query, session_report::Outcome as ReportOutcome, transcript_record::Record,
    },
};
use prost::Message;

fn refs() -> (Option<DatasetRef>, Option<DatasetRef>) {
    let r = |node: &str, dataset: &str| {
        Some(DatasetRef {
            node: node.into(),
            dataset: dataset.into(),
        })
    };
    (r("bank", "customers"), r("partner", "users"))
}

/// A bank with persons `bank` (deposit balance = the person's number) and a
/// partner with persons `partner`, in the columns the generated deployment
/// declares.
fn people(dir: &Path, bank: std::ops::Range<u64>, partner: std::ops::Range<u64>) -> (PathBuf, PathBuf) {
    let mut b = String::from("customer_id,phone,email,age,aum_tier,has_credit_card,deposit_balance,city\n");
    for i in bank {
        b.push_str(&format!(
            "C{i},{},c{i}@example.com,40,T2,true,{i},Beijing\n",
            person_phone(i)
        ));
    }
    let mut p = String::from("user_id,mobile,email,interest,spend_band,annual_spend,signup_channel\n");
    for i in partner {
        p.push_str(&format!(
            "U{i},{},u{i}@example.com,travel,mid,500.0,app\n",
            person_phone(i)
        ));
    }
    let (bp, pp) = (dir.join("bank.csv"), dir.join("partner.csv"));
    std::fs::write(&bp, b).expect("bank csv");
    std::fs::write(&pp, p).expect("partner csv");
    (bp, pp)
}

fn range(column: &str, min: Option<f64>, max: Option<f64>) -> Filter {
    Filter {
        column: column.into(),
        test: Some(Test::Range(Range { min, max })),
    }
}

fn segment(left_filters: Vec<Filter>, right_filters: Vec<Filter>, activate: &str, epsilon: f64) -> QuerySpec {
    let (left, right) = refs();
    QuerySpec {
        query: Some(Query::Segment(SegmentQuery {
            left,
            right,
            left_filters,
            right_filters,
            activate: activate.into(),
        })),
        privacy: Some(noised(epsilon)),
    }
}

fn records(path: &Path) -> Vec<TranscriptRecord> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_file(&bytes).expect("a transcript")
}

fn transcript(dir: &Path, node: &str, job: &Job, shared: bool) -> PathBuf {
    let name = if shared {
        format!("{}.shared.jtx", job.job_id)
    } else {
        format!("{}.jtx", job.job_id)
    };
    dir.join(format!("{node}-data/transcripts/{name}"))
}

/// The count the receiving node saw when it matched (its full copy keeps it).
fn receivers_view(dir: &Path, job: &Job) -> i64 {
    records(&transcript(dir, "bank", job, false))
        .iter()
        .find_map(|r| match &r.record {
            Some(Record::Release(rel)) => rel.exact_count,
            _ => None,
        })
        .expect("the receiver recorded what it matched") as i64
}

/// Every list length announced in a transcript copy.
fn announced(records: &[TranscriptRecord]) -> Vec<u64> {
    records
        .iter()
        .filter_map(|r| match &r.record {
            Some(Record::Message(m)) => m.sealed.as_ref(),
            _ => None,
        })
        .filter_map(|s| jointly_protocol::wire::ProtocolMessage::decode(s.payload.as_slice()).ok())
        .filter_map(|m| match m.kind {
            Some(Kind::Announce(a)) => Some(a.set_size),
            _ => None,
        })
        .collect()
}

fn released_size(job: &Job) -> Option<i64> {
    match job.result.as_ref()?.result.as_ref()? {
        query_result::Result::Segment(s) => s.size.filter(|c| !c.below_threshold).map(|c| c.value),
        _ => None,
    }
}

fn std_dev(values: &[i64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<i64>() as f64 / n;
    (values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

/// Two segments that differ by one person's predicate: the bank's balance
/// up to 150 (persons 100..=150 shared) or up to 149.5 (100..=149). On the
/// old design the receiving node saw 51 and 50, exactly, every time, and the
/// job's progress total gave the filtered sizes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_differencing_pair_of_segments_shows_only_noise() {
    let dir = tempdir();
    let (bank, partner) = people(dir.path(), 0..200, 100..300);
    let cluster = Cluster::start(dir.path(), &bank, &partner, PolicySpec::production())
        .await
        .expect("cluster");
    let runs = 15;
    let mut views = [Vec::new(), Vec::new()];
    let mut lengths = [Vec::new(), Vec::new()];
    for _ in 0..runs {
        for (arm, max) in [(0, 150.0), (1, 149.5)] {
            let spec = segment(vec![range("deposit_balance", None, Some(max))], vec![], "", 0.5);
            let job = cluster.run(spec).await.expect("job");
            assert_eq!(job.state, JobState::Succeeded as i32, "{}", job.error);
            // The job view: a fraction and a noised size, nothing else.
            assert_eq!(job.progress_permille, 1000);
            assert!(job.result.is_some());
            views[arm].push(receivers_view(dir.path(), &job));
            // Every copy of the transcript: the bank's list length.
            for (node, shared) in [
                ("bank", false),
                ("bank", true),
                ("partner", false),
                ("partner", true),
            ] {
                let sizes = announced(&records(&transcript(dir.path(), node, &job, shared)));
                assert_eq!(sizes.len(), 2, "{node} {shared}: both announcements");
                lengths[arm].push(sizes[0] as i64);
            }
        }
    }
    for arm in 0..2 {
        // What the receiving node matched is the segment plus the sender's
        // dummies: at epsilon 0.5 their standard deviation is about 9.
        let spread = std_dev(&views[arm]);
        assert!(
            spread > 2.0,
            "arm {arm}: the receiver's counts {:?} hardly vary",
            views[arm]
        );
        // Its announced length is its filtered size plus its own pad.
        let per_run: Vec<i64> = lengths[arm].iter().step_by(4).copied().collect();
        assert!(std_dev(&per_run) > 2.0, "arm {arm}: lengths {per_run:?}");
        assert!(
            !per_run.contains(&(151 - arm as i64)),
            "an exact filtered size was announced"
        );
    }
    // The two arms' views overlap: the one person is lost in the noise.
    let bounds = |v: &[i64]| (*v.iter().min().unwrap_or(&0), *v.iter().max().unwrap_or(&0));
    let ((a_lo, a_hi), (b_lo, b_hi)) = (bounds(&views[0]), bounds(&views[1]));
    assert!(a_lo <= b_hi && b_lo <= a_hi, "{views:?}");
    cluster.shutdown().await;
}

/// A right filter that matches nobody used to give the left side's filtered
/// size through the job's progress total; now the job shows a fraction, and
/// the bank's announced length is noised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_right_filter_no_longer_yields_the_left_size() {
    let dir = tempdir();
    let (bank, partner) = people(dir.path(), 0..300, 100..400);
    let cluster = Cluster::start(dir.path(), &bank, &partner, PolicySpec::production())
        .await
        .expect("cluster");
    let mut lengths = Vec::new();
    for _ in 0..8 {
        let spec = segment(
            vec![],
            vec![range("annual_spend", Some(-10.0), Some(-5.0))],
            "",
            0.5,
        );
        let job = cluster.run(spec).await.expect("job");
        assert!(job.progress_permille <= 1000);
        // No number the planner reads is the left size: not the progress
        // (a fraction), not the error, not a result.
        let numbers: Vec<u64> = job
            .error
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        assert!(
            !numbers.contains(&300),
            "the left size in the job view: {}",
            job.error
        );
        assert_ne!(job.progress_permille, 300);
        // The partner's own list, noised, is below its minimum (10) nearly
        // always; either way the bank's length went out noised, if at all.
        if let Some(path) = [false, true]
            .into_iter()
            .map(|shared| transcript(dir.path(), "bank", &job, shared))
            .chain(std::iter::once(
                dir.path()
                    .join(format!("bank-data/transcripts/{}.jtx.partial", job.job_id)),
            ))
            .find(|p| p.exists())
            && let Some(&len) = announced(&records(&path)).first()
        {
            assert_ne!(len, 300);
            lengths.push(len as i64);
        }
    }
    if lengths.len() >= 3 {
        assert!(std_dev(&lengths) > 1.0, "lengths {lengths:?}");
    }
    cluster.shutdown().await;
}

/// Opens a lane's cells with the one decryption share an attacker holds:
/// `c2 - d`. Without the other node's share every slot is a random point,
/// which the decryption table finds nowhere in the range.
fn open_with_one_share(ciphertexts: &[u8], shares: &[u8], slots: usize, table: &BsgsTable) -> usize {
    let point = |b: &[u8]| -> RistrettoPoint {
        CompressedRistretto::from_slice(b)
            .ok()
            .and_then(|c| c.decompress())
            .expect("a valid point")
    };
    let unit = 32 * (slots + 1);
    let mut opened = 0;
    for (cell, ct) in ciphertexts.chunks_exact(unit).enumerate() {
        for slot in 0..slots {
            let c2 = point(&ct[32 * (slot + 1)..32 * (slot + 2)]);
            let d = point(&shares[32 * (cell * slots + slot)..32 * (cell * slots + slot + 1)]);
            // Every true value here (counts of 400 rows, with noise) is far
            // inside ±2^24; searching all of ±2^40 for each failing cell
            // would take minutes and prove nothing more.
            if table.vartime_solve(&(c2 - d), 1 << 24).is_some() {
                opened += 1;
            }
        }
    }
    opened
}

/// What one transcript file offers an attacker: lane releases (with their
/// decryption shares) from its node's report, and the release ciphertexts
/// the receiver sent in the chain.
fn material(records: &[TranscriptRecord]) -> (Vec<jointly_protocol::wire::LaneRelease>, Vec<Vec<u8>>) {
    let mut lanes = Vec::new();
    let mut chain = Vec::new();
    for r in records {
        match &r.record {
            Some(Record::Release(rel)) => {
                if let Ok(report) = SessionReport::decode(rel.report.as_slice())
                    && let Some(ReportOutcome::Breakdown(b)) = report.outcome
                {
                    lanes.extend(b.lanes);
                }
            }
            Some(Record::Message(m)) => {
                if let Some(s) = &m.sealed
                    && let Ok(msg) = jointly_protocol::wire::ProtocolMessage::decode(s.payload.as_slice())
                    && let Some(Kind::Ciphers(c)) = msg.kind
                    && c.list == CipherList::Release as i32
                {
                    chain.push(c.ciphertexts);
                }
            }
            _ => {}
        }
    }
    (lanes, chain)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_cells_cannot_be_opened_from_transcripts() {
    let dir = tempdir();
    let data = generate(
        &DatagenSpec {
            bank_rows: 400,
            partner_rows: 400,
            overlap: 200,
            seed: 41,
            messy: false,
            format: DataFormat::Csv,
        },
        dir.path(),
    )
    .expect("datagen");
    let cluster = Cluster::start(
        dir.path(),
        &data.bank_path,
        &data.partner_path,
        PolicySpec::production(),
    )
    .await
    .expect("cluster");
    let (left, right) = refs();
    let job = cluster
        .run(QuerySpec {
            query: Some(Query::Breakdown(BreakdownQuery {
                left,
                right,
                left_group_by: vec!["city".into()],
                right_group_by: vec!["interest".into()],
                ..Default::default()
            })),
            privacy: Some(noised(1.0)),
        })
        .await
        .expect("job");
    let Some(query_result::Result::Breakdown(cells)) = job.result.as_ref().and_then(|r| r.result.clone())
    else {
        panic!("no breakdown: {}", job.error)
    };
    let withheld = cells
        .cells
        .iter()
        .filter(|c| c.count.is_some_and(|c| c.below_threshold))
        .count();
    assert!(withheld > 0, "the test needs cells below the threshold");

    let file = |node: &str, shared: bool| records(&transcript(dir.path(), node, &job, shared));
    let (bank_shared, partner_shared) = (file("bank", true), file("partner", true));
    // The shared copies hold no release at all: no share, no count.
    for shared in [&bank_shared, &partner_shared] {
        assert!(
            shared
                .iter()
                .all(|r| !matches!(r.record, Some(Record::Release(_))))
        );
        assert!(material(shared).0.is_empty());
    }
    let table = BsgsTable::build(16).expect("table");
    let (bank_lanes, chain) = material(&file("bank", false));
    let (partner_lanes, _) = material(&file("partner", false));
    assert!(!bank_lanes.is_empty() && !partner_lanes.is_empty() && !chain.is_empty());
    // Both shared copies and the bank's full copy: the bank's shares and the
    // release it sent open nothing.
    for (lane, cts) in bank_lanes.iter().zip(&chain) {
        let slots = lane.slots as usize;
        assert_eq!(
            open_with_one_share(cts, &lane.decryption_shares, slots, &table),
            0
        );
    }
    // Both shared copies and the partner's full copy: the final ciphertexts
    // and the partner's shares open nothing either.
    for lane in &partner_lanes {
        let slots = lane.slots as usize;
        assert_eq!(
            open_with_one_share(&lane.ciphertexts, &lane.decryption_shares, slots, &table),
            0
        );
    }
    // The harness is real: with both full copies (both nodes' operators
    // together) the cells do open, as they do at the coordinator.
    let sender = partner_lanes
        .iter()
        .find(|l| !l.ciphertexts.is_empty())
        .expect("sender lane");
    let receiver = bank_lanes
        .iter()
        .find(|l| l.lane == sender.lane)
        .expect("receiver lane");
    let outcome = |l: &jointly_protocol::wire::LaneRelease| jointly_protocol::session::outcome::LaneOutcome {
        lane: l.lane,
        cells: l.cells as usize,
        slots: l.slots as usize,
        ciphertexts: l.ciphertexts.clone(),
        decryption_shares: l.decryption_shares.clone(),
    };
    let opened = jointly_protocol::protocols::breakdown::open_lane(
        &outcome(sender),
        &outcome(receiver),
        &table,
        MAX_ABS_VALUE,
    )
    .expect("both shares open every cell");
    assert_eq!(opened.len(), cells.cells.len());
    cluster.shutdown().await;
}

/// A planner who tunes a segment to the activation threshold and adds one
/// target's predicate used to read membership off the error (99 vs 100
/// members), for free. Now both sides decide on noised counts, the refusal
/// reads the same whoever made it, and it is charged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_at_99_and_100_members_looks_the_same() {
    let mut outcomes = Vec::new();
    for members in [99u64, 100] {
        let dir = tempdir();
        let (bank, partner) = people(dir.path(), 0..200, (200 - members)..400);
        let policy = PolicySpec {
            allow_activation: true,
            ..PolicySpec::production()
        };
        let mut cluster = Cluster::start(dir.path(), &bank, &partner, policy)
            .await
            .expect("cluster");
        // Only the bank's check sits at the threshold, so one noise decides.
        cluster.kill_node("partner").await;
        let config = std::fs::read_to_string(&cluster.deployment.partner_config).expect("read");
        std::fs::write(
            &cluster.deployment.partner_config,
            config.replace("min_activation = 100", "min_activation = 1"),
        )
        .expect("write");
        cluster.start_node("partner").await.expect("restart");
        cluster
            .wait_attached(&["bank", "partner"])
            .await
            .expect("attached");
        let (mut passed, mut refused, mut messages) = (0, 0, std::collections::BTreeSet::new());
        for _ in 0..25 {
            let job = cluster
                .run(segment(vec![], vec![], "bank", 0.5))
                .await
                .expect("job");
            if job.state == JobState::Succeeded as i32 {
                assert!(released_size(&job).is_some(), "a noised size");
                passed += 1;
            } else {
                refused += 1;
                messages.insert(job.error.clone());
            }
        }
        // Every refusal was charged at the bank, like a release.
        let ledger = jointly_node::ledger::Ledger::open(&dir.path().join("bank-data")).expect("ledger");
        let charged = ledger
            .entries()
            .expect("entries")
            .iter()
            .filter(|e| e.spent_micro() > 0)
            .count();
        assert_eq!(charged, 25, "{members} members");
        outcomes.push((members, passed, refused, messages));
        cluster.shutdown().await;
    }
    for (members, passed, refused, _) in &outcomes {
        assert!(
            *passed > 0 && *refused > 0,
            "{members} members: {passed} passed, {refused} refused"
        );
    }
    let all: std::collections::BTreeSet<&String> = outcomes.iter().flat_map(|o| o.3.iter()).collect();
    assert_eq!(all.len(), 1, "one refusal text, whatever the size: {all:?}");
    assert!(
        all.iter()
            .all(|m| m.contains("too small to activate") && !m.contains("99") && !m.contains("100"))
    );
}

/// A coordinator playing the peer with a one-element set to test one
/// person's membership: the bank refuses the list by its noised size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_element_peer_set_is_refused() {
    let dir = tempdir();
    let (bank, partner) = people(dir.path(), 0..200, 150..151);
    let mut cluster = Cluster::start(dir.path(), &bank, &partner, PolicySpec::production())
        .await
        .expect("cluster");
    // The partner's own check is switched off, so the bank's is what stops
    // it; the bank's minimum is 50, far beyond a noised one.
    for (node, key) in [("partner", "min_set_size = 0"), ("bank", "min_set_size = 50")] {
        cluster.kill_node(node).await;
        let path = cluster.deployment.dir.join(format!("{node}.toml"));
        let config = std::fs::read_to_string(&path).expect("read");
        std::fs::write(
            &path,
            config.replace(
                "min_aggregation = 10\n",
                &format!("min_aggregation = 10\n{key}\n"),
            ),
        )
        .expect("write");
        cluster.start_node(node).await.expect("restart");
    }
    cluster
        .wait_attached(&["bank", "partner"])
        .await
        .expect("attached");
    let (left, right) = refs();
    let job = cluster
        .run(QuerySpec {
            query: Some(Query::Overlap(OverlapQuery { left, right })),
            privacy: Some(noised(1.0)),
        })
        .await
        .expect("job");
    failed_with(&job, "policy.min_set_size = 50");
    assert!(job.error.contains("peer's list"), "{}", job.error);
    cluster.shutdown().await;
}
