//! `jointly bench breakdown --rows N`: an N x N breakdown with 10 x 10 groups
//! and two measures, in one process on all cores: (a) payload encryption
//! against its floor of fixed-base multiplications, (b) the whole protocol,
//! (c) the coordinator's decryption of every cell with the cached table.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Instant,
};

use anyhow::Context;
use curve25519_dalek::{
    constants::RISTRETTO_BASEPOINT_TABLE, ristretto::RistrettoBasepointTable, scalar::Scalar,
};
use jointly_protocol::{
    crypto::bsgs::{BsgsTable, DEFAULT_K},
    crypto::elgamal::{OneHot, two_party_keys},
    ids::idlist::IdList,
    ids::normalize::IdKind,
    protocols::breakdown::{
        Breakdown, BreakdownReceiver, BreakdownSender, Lane, LaneRows, LaneShape, open_lane,
    },
    queries::breakdown_plan::MAX_ABS_VALUE,
    session::outcome::Outcome,
    session::party::run_pair,
    session::stream::{Limits, Setup},
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rayon::prelude::*;

const GROUPS: usize = 10;
const MEASURE_BOUND: i64 = 100_000;

fn emails(range: std::ops::Range<usize>) -> Arc<IdList> {
    Arc::new(IdList::from_normalized(
        IdKind::Email,
        range.map(|i| format!("user{i}@example.com")).collect(),
    ))
}

fn shape() -> LaneShape {
    LaneShape {
        receiver_groups: GROUPS,
        payload: OneHot {
            groups: GROUPS,
            count: true,
            measures: 2,
            small_measures: false,
        },
    }
}

/// Rows with seeded random groups (and measures, for a sender).
fn lane_rows(ids: Arc<IdList>, measures: usize, seed: u64) -> LaneRows {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = ids.len();
    LaneRows {
        rows: (0..n as u32).collect(),
        groups: (0..n).map(|_| rng.random_range(0..GROUPS as u32)).collect(),
        measures: (0..n * measures)
            .map(|_| rng.random_range(0..=MEASURE_BOUND))
            .collect(),
        ids,
    }
}

/// Peak resident memory of this process so far, in MiB.
pub(super) fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub fn run(rows: usize, table_path: &Path) -> anyhow::Result<()> {
    let threads = rayon::current_num_threads();
    let shape = shape();
    println!(
        "jointly bench breakdown: {rows} x {rows} rows, half shared, {GROUPS} x {GROUPS} groups, 2 measures (one lane, {} slots per payload), {threads} cores",
        shape.slots()
    );

    // (a) Payload encryption against its floor, on a sample of rows.
    let sample = rows.clamp(1, 50_000);
    let (_, _, keys) = two_party_keys(shape.slots(), b"bench", &mut rand::rng())?;
    let per_row = shape.payload.multiplications_per_row();
    let tables: Vec<RistrettoBasepointTable> = (0..shape.slots())
        .map(|k| RistrettoBasepointTable::create(&(&Scalar::from(k as u64 + 2) * RISTRETTO_BASEPOINT_TABLE)))
        .collect();
    let scalars: Vec<Scalar> = (0..sample as u64)
        .map(|i| Scalar::from(i + 1) * Scalar::from(0x9e37_79b9_u64))
        .collect();
    let started = Instant::now();
    let checksum: u8 = scalars
        .par_iter()
        .map(|q| {
            let mut acc = q * RISTRETTO_BASEPOINT_TABLE;
            for t in &tables {
                acc += q * t;
            }
            for _ in 0..2 {
                acc += q * RISTRETTO_BASEPOINT_TABLE;
            }
            acc.compress().as_bytes()[0]
        })
        .reduce(|| 0, |a, b| a ^ b);
    let floor = started.elapsed().as_secs_f64();
    std::hint::black_box(checksum);
    let sample_rows = lane_rows(emails(0..sample), 2, 3);
    let started = Instant::now();
    let bytes = keys.encrypt_one_hot(
        shape.payload,
        &sample_rows.groups,
        &sample_rows.measures,
        &mut rand::rng(),
    )?;
    let encryption = started.elapsed().as_secs_f64();
    anyhow::ensure!(bytes.len() == sample * (shape.slots() + 1) * 32);
    println!(
        "(a) payload encryption of {sample} rows: {encryption:.2} s; floor ({per_row} fixed-base multiplications per row on all cores): {floor:.2} s; ratio {:.2} (target <= 1.5)",
        encryption / floor
    );
    println!(
        "    per row: {:.0} core-us encryption, {:.0} core-us floor, {:.1} core-us per fixed-base multiplication",
        encryption / sample as f64 * threads as f64 * 1e6,
        floor / sample as f64 * threads as f64 * 1e6,
        floor / (sample * per_row) as f64 * threads as f64 * 1e6
    );

    // (b) The whole protocol, in process.
    let x = emails(0..rows);
    let y = emails(rows / 2..rows + rows / 2);
    let r_rows = LaneRows {
        measures: Vec::new(),
        ..lane_rows(Arc::clone(&x), 0, 1)
    };
    let s_rows = lane_rows(Arc::clone(&y), 2, 2);
    let limits = Limits::default();
    let zeros = vec![0; shape.released_values()];
    let terms = [0u8; 32];
    let r_setup = Setup::exact(limits, terms, shape.receiver_groups, 0);
    let s_setup = Setup::exact(limits, terms, 1, shape.receiver_groups);
    let r = BreakdownReceiver::new(0, shape, r_rows.clone(), zeros.clone(), r_setup)?;
    let s = BreakdownSender::new(0, shape, s_rows.clone(), zeros, s_setup)?;
    let started = Instant::now();
    let (a, b) = run_pair(
        Box::new(Breakdown::new(vec![Lane::Receiver(Box::new(r))])),
        Box::new(Breakdown::new(vec![Lane::Sender(Box::new(s))])),
    )
    .map_err(|(side, e)| anyhow::anyhow!("party {side}: {e}"))?;
    let protocol = started.elapsed().as_secs_f64();
    let (Outcome::Breakdown(a), Outcome::Breakdown(b)) = (a, b) else {
        anyhow::bail!("the parties did not end as breakdown parties")
    };
    println!(
        "(b) breakdown in process: {protocol:.2} s, {:.0} rows/s; payload bytes {:.0} MiB; peak memory (both parties) {:.0} MiB",
        rows as f64 / protocol,
        (rows * (shape.slots() + 1) * 32) as f64 / (1 << 20) as f64,
        peak_mib().unwrap_or(f64::NAN)
    );

    // (c) Decryption at the coordinator with the cached table.
    let started = Instant::now();
    let table = load_or_build(table_path)?;
    let loading = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let values = open_lane(&b[0], &a[0], &table, MAX_ABS_VALUE)?;
    let decrypt = started.elapsed().as_secs_f64();
    println!(
        "(c) decryption of {} cells ({} values): {decrypt:.2} s (target < 5 s) with the table (k = {DEFAULT_K}) from {} in {loading:.2} s",
        GROUPS * GROUPS,
        values.len(),
        table_path.display()
    );

    // Every cell against the plaintext join.
    let mut want = vec![0i64; values.len()];
    let of_y: std::collections::HashMap<&[u8], usize> = (0..y.len()).map(|i| (y.get(i), i)).collect();
    for i in 0..x.len() {
        if let Some(&j) = of_y.get(x.get(i)) {
            let base = r_rows.groups[i] as usize * shape.slots();
            let g = s_rows.groups[j] as usize;
            want[base + shape.payload.slot(0, g)] += 1;
            for m in 0..2 {
                want[base + shape.payload.slot(1 + m, g)] += s_rows.measures[j * 2 + m];
            }
        }
    }
    anyhow::ensure!(values == want, "decrypted cells differ from the plaintext join");
    let shared: i64 = (0..GROUPS)
        .flat_map(|b| (0..GROUPS).map(move |g| (b, g)))
        .map(|(b, g)| values[b * shape.slots() + g])
        .sum();
    println!("    every cell equals the plaintext join; shared customers: {shared}");
    Ok(())
}

pub(super) fn load_or_build(path: &Path) -> anyhow::Result<BsgsTable> {
    if let Ok(bytes) = std::fs::read(path)
        && let Ok(table) = BsgsTable::from_bytes(&bytes)
        && table.k() == DEFAULT_K
    {
        return Ok(table);
    }
    println!("    building the decryption table (k = {DEFAULT_K}) once; later runs load it");
    let table = BsgsTable::build(DEFAULT_K)?;
    std::fs::write(path, table.to_bytes())
        .with_context(|| format!("cannot cache the table at {}", path.display()))?;
    Ok(table)
}

/// The default cache path of the table: next to the system's temporary files.
pub fn default_table_path() -> PathBuf {
    std::env::temp_dir().join(format!("jointly-bsgs-k{DEFAULT_K}.bin"))
}
