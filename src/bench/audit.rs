//! `jointly bench audit`: a recorded N x N overlap in process (both parties
//! sealing, checking and attesting), the transcript files written, then
//! `verify` timed on each node's full file, the way `jointly audit verify`
//! reads it.

use std::{sync::Arc, time::Instant};

use ed25519_dalek::SigningKey;
use jointly_protocol::{
    ids::idlist::IdList,
    ids::normalize::IdKind,
    protocols::overlap::{OverlapReceiver, OverlapSender},
    session::stream::{Limits, Setup},
    transcript::{
        Recorder, Seat, SessionInfo, encode_record, parse_file, run_recorded_pair, shared_copy, verify,
    },
    wire::{DatasetRef, OverlapQuery, Privacy, QuerySpec, query_spec::Query},
};

fn emails(range: std::ops::Range<usize>) -> Arc<IdList> {
    Arc::new(IdList::from_normalized(
        IdKind::Email,
        range.map(|i| format!("user{i}@example.com")).collect(),
    ))
}

fn info(node: &str, peer: &str, seat: Seat) -> SessionInfo {
    let at = |node: &str| {
        Some(DatasetRef {
            node: node.into(),
            dataset: "people".into(),
        })
    };
    SessionInfo {
        job_id: "job-bench".into(),
        session_id: "session-bench".into(),
        node: node.into(),
        peer: peer.into(),
        seat,
        spec: QuerySpec {
            query: Some(Query::Overlap(OverlapQuery {
                left: at("bank"),
                right: at("partner"),
            })),
            privacy: Some(Privacy {
                epsilon: 0.0,
                exact: true,
            }),
        },
        terms: [1; 32],
        requester: None,
    }
}

pub fn run(rows: usize) -> anyhow::Result<()> {
    println!(
        "jointly bench audit: {rows} x {rows} rows (half shared), {} cores",
        rayon::current_num_threads()
    );
    let (bank, partner) = (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]));
    let limits = Limits::default();
    let r = Recorder::new(
        info("bank", "partner", Seat::Receiver),
        bank.clone(),
        partner.verifying_key(),
    );
    let s = Recorder::new(
        info("partner", "bank", Seat::Sender),
        partner,
        bank.verifying_key(),
    );
    let x = emails(0..rows);
    let y = emails(rows / 2..rows / 2 + rows);
    let started = Instant::now();
    let (r, s) = run_recorded_pair(
        (
            Box::new(OverlapReceiver::new(x, Setup::exact(limits, [1; 32], 1, 0))?),
            r,
        ),
        (
            Box::new(OverlapSender::new(y, Setup::exact(limits, [1; 32], 1, 1))?),
            s,
        ),
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let session = started.elapsed().as_secs_f64();
    println!("(a) recorded overlap in process (sealing, checking, attesting): {session:.2} s");
    let dir = tempfile::tempdir()?;
    for (name, records) in [("bank (receiver)", r.records), ("partner (sender)", s.records)] {
        let path = dir.path().join("t.jtx");
        let bytes: Vec<u8> = records.iter().flat_map(encode_record).collect();
        std::fs::write(&path, &bytes)?;
        drop(records);
        let started = Instant::now();
        let read = std::fs::read(&path)?;
        let parsed = parse_file(&read).map_err(|e| anyhow::anyhow!("{e}"))?;
        let report = verify(&parsed);
        let secs = started.elapsed().as_secs_f64();
        anyhow::ensure!(
            report.verified,
            "the honest transcript failed: {:?}",
            report.checks
        );
        println!(
            "(b) verify {name}'s full transcript ({:.1} MiB, {} records): {secs:.2} s = {:.1}% of the recorded session",
            bytes.len() as f64 / (1 << 20) as f64,
            parsed.len(),
            100.0 * secs / session
        );
        // Where the time goes: reading alone, then everything but the proof.
        let started = Instant::now();
        let reparsed = parse_file(&std::fs::read(&path)?).map_err(|e| anyhow::anyhow!("{e}"))?;
        let read_secs = started.elapsed().as_secs_f64();
        let shared: Vec<_> = reparsed.iter().filter_map(shared_copy).collect();
        let started = Instant::now();
        let _ = verify(&shared);
        let chains = started.elapsed().as_secs_f64();
        println!(
            "    of which reading and parsing {read_secs:.2} s, chains and summary {chains:.2} s, the masking proof {:.2} s",
            (secs - read_secs - chains).max(0.0)
        );
    }
    Ok(())
}
