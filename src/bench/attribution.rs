//! `jointly bench attribution`: generated campaign files of the given size,
//! then, in one process on all cores, (a) both nodes' event loaders, (b) the
//! lanes (the partner's credits per window, the bank's elements), (c) the
//! floor of the payload encryption, (d) the session (every window's lane,
//! through the wire encoding, bytes counted), (e) the opening and
//! combination, and with `--check` (f) the polars reference on the same files.

use std::{path::Path, time::Instant};

use curve25519_dalek::{ristretto::RistrettoBasepointTable, scalar::Scalar};
use jointly_examples::{
    campaign_data::{CAMPAIGNS, CHANNELS, CampaignSpec, People, generate_campaign},
    plaintext_attribution::{AttributionParams, Period, attribution},
};
use jointly_node::events::{EventSource, load_conversions, load_exposures};
use jointly_protocol::{
    attribution::{
        self, Plan, ValueBuckets, bank_party, combine, partner_party, receiver_lanes, sender_lanes,
    },
    attribution_model::{Model, Window},
    breakdown::open_lane,
    breakdown_plan::MAX_ABS_VALUE,
    ids::{IdKind, Normalizer},
    overlap::Limits,
    party::{Outcome, run_pair_counted},
};
use rayon::prelude::*;

use super::breakdown::{load_or_build, peak_mib};

/// What to generate and run.
#[derive(Clone, Debug)]
pub struct Size {
    pub partner: usize,
    pub bank: usize,
    pub exposures: usize,
    pub conversions: usize,
    pub windows: u32,
    pub lookback_days: u32,
    pub model: Model,
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Core-microseconds per point to hash and mask an identifier, and to
/// decode and mask a received point, on a sample.
fn masking_costs() -> anyhow::Result<(f64, f64)> {
    use jointly_protocol::{
        group::{SessionKey, decode_and_mask, mask_each},
        hash::{HashToGroup, ID_DST},
        idlist::IdList,
    };
    let n = 50_000usize;
    let ids = IdList::from_normalized(
        IdKind::Email,
        (0..n).map(|i| format!("p{i}@example.com")).collect(),
    );
    let hasher = HashToGroup::new(ID_DST);
    let started = Instant::now();
    let masked = mask_each(&SessionKey::random(), n, |i| hasher.hash(&ids.hash_parts(i)));
    let first = secs(started);
    let started = Instant::now();
    decode_and_mask(&SessionKey::random(), &masked).map_err(|e| anyhow::anyhow!("{e}"))?;
    let second = secs(started);
    let per = |t: f64| t * rayon::current_num_threads() as f64 / n as f64 * 1e6;
    Ok((per(first), per(second)))
}

/// Core-microseconds per fixed-base multiplication, on a sample (its output
/// is compressed in batches in the payloads, so not here).
fn fixed_base_cost() -> f64 {
    let table =
        RistrettoBasepointTable::create(&curve25519_dalek::RistrettoPoint::mul_base(&Scalar::from(7u8)));
    let n = 20_000u64;
    let scalars: Vec<Scalar> = (0..n).map(|i| Scalar::from(i + 1).invert()).collect();
    let started = Instant::now();
    scalars.par_iter().for_each(|s| {
        std::hint::black_box(s * &table);
    });
    secs(started) * rayon::current_num_threads() as f64 / n as f64 * 1e6
}

pub fn run(size: &Size, check: bool, table_path: &Path, dir: &Path) -> anyhow::Result<()> {
    let threads = rayon::current_num_threads();
    println!(
        "jointly bench attribution: {} partner persons with {} exposures over {} channels x {} campaigns, {} bank customers with {} conversions, {} daily windows, {}-day lookback, {}; {threads} cores",
        size.partner,
        size.exposures,
        CHANNELS.len(),
        CAMPAIGNS.len(),
        size.bank,
        size.conversions,
        size.windows,
        size.lookback_days,
        size.model
    );
    let started = Instant::now();
    let data = generate_campaign(
        &CampaignSpec {
            people: People {
                bank: size.bank,
                partner: size.partner,
                overlap: size.bank.min(size.partner) / 2,
            },
            exposures: size.exposures,
            conversions: size.conversions,
            windows: size.windows,
            seed: 2026,
            messy: true,
        },
        dir,
    )?;
    println!(
        "    generated the files in {:.2} s (not counted below)",
        secs(started)
    );

    // (a) Loading.
    let started = Instant::now();
    let normalizer = Normalizer::default();
    let channels: Vec<String> = CHANNELS.iter().map(|c| (*c).to_string()).collect();
    let campaigns: Vec<String> = CAMPAIGNS.iter().map(|c| (*c).to_string()).collect();
    let exposures = load_exposures(
        &EventSource::csv("exposures", &data.exposures_path, "mobile", IdKind::Phone, "ts"),
        "channel",
        "campaign",
        &channels,
        &campaigns,
        &normalizer,
    )?;
    let load_partner = secs(started);
    let started = Instant::now();
    let conversions = load_conversions(
        &EventSource::csv(
            "conversions",
            &data.conversions_path,
            "phone",
            IdKind::Phone,
            "ts",
        ),
        "value",
        &normalizer,
    )?;
    let load_bank = secs(started);
    println!(
        "(a) loading: partner {load_partner:.2} s ({} rows, {} persons), bank {load_bank:.2} s ({} rows, {} persons)",
        exposures.report.rows, exposures.report.persons, conversions.report.rows, conversions.report.persons
    );

    // (b) Lanes.
    let period = Period::days(data.truth.period_start, size.windows);
    let plan = Plan {
        period: attribution::Period {
            start: period.start,
            end: period.end,
            window: Window::Day,
            max_conversions: 3,
        },
        lookback_days: size.lookback_days,
        model: size.model,
        buckets: ValueBuckets::default(),
        channels: channels.len(),
        campaigns: campaigns.len(),
        by_campaign: false,
    };
    let started = Instant::now();
    let partner_lanes = sender_lanes(&plan, &exposures.ids, &exposures.touches)?;
    let (bank_lanes, elements) = receiver_lanes(&plan, &conversions.ids, &conversions.rows)?;
    let lanes_time = secs(started);
    let payload_rows: usize = partner_lanes.iter().map(|l| l.rows.len()).sum();
    let bank_rows: usize = bank_lanes.iter().map(|l| l.rows.len()).sum();
    println!(
        "(b) lanes: {lanes_time:.2} s; partner {payload_rows} payload rows ({:.0} per window), bank {bank_rows} elements ({} capped)",
        payload_rows as f64 / f64::from(size.windows),
        elements.capped
    );
    drop(exposures);
    drop(conversions);

    // (c) The encryption floor.
    let shape = plan.lane_shape();
    let per_row = shape.payload.multiplications_per_row();
    let cost = fixed_base_cost();
    let floor = payload_rows as f64 * per_row as f64 * cost / 1e6 / threads as f64;
    println!(
        "(c) payload floor: {per_row} fixed-base multiplications per row at {cost:.1} core-us: {floor:.2} s on {threads} cores"
    );

    let (hash_mask, remask) = masking_costs()?;
    // Every payload row is hashed and masked by the partner and masked again
    // by the bank; every element likewise the other way (before padding).
    let masking = (payload_rows + bank_rows) as f64 * (hash_mask + remask) / 1e6 / threads as f64;
    println!(
        "    masking floor: {hash_mask:.1} + {remask:.1} core-us per point and party: {masking:.2} s on {threads} cores"
    );

    // (d) The session.
    let limits = Limits::default();
    let zeros = vec![0; shape.released_values()];
    let terms = [0u8; 32];
    let noise = || vec![zeros.clone(); plan.windows()];
    let bank = bank_party(&plan, bank_lanes, noise(), limits, terms)?;
    let partner = partner_party(&plan, partner_lanes, noise(), limits, terms)?;
    let started = Instant::now();
    let ((bank, partner), [from_bank, from_partner]) = run_pair_counted(Box::new(bank), Box::new(partner))
        .map_err(|(who, e)| anyhow::anyhow!("session failed at party {who}: {e}"))?;
    let session = secs(started);
    let (Outcome::Breakdown(bank), Outcome::Breakdown(partner)) = (bank, partner) else {
        anyhow::bail!("the session did not end in breakdown outcomes");
    };
    println!(
        "(d) session, {} lanes in process: {session:.2} s (floors: encryption {:.0}%, masking {:.0}%); bytes bank -> partner {:.1} MiB, partner -> bank {:.1} MiB",
        size.windows,
        100.0 * floor / session,
        100.0 * masking / session,
        mib(from_bank),
        mib(from_partner)
    );

    // (e) Opening and combining.
    let started = Instant::now();
    let table = load_or_build(table_path)?;
    let loaded = secs(started);
    let started = Instant::now();
    let opened = partner
        .iter()
        .zip(&bank)
        .map(|(s, r)| open_lane(s, r, &table, MAX_ABS_VALUE))
        .collect::<Result<Vec<_>, _>>()?;
    let totals = combine(&plan, &opened)?;
    println!(
        "(e) opening {} lanes and combining: {:.2} s (table loaded in {loaded:.2} s); {} elements, {} attributed",
        opened.len(),
        secs(started),
        elements.elements,
        totals.attributed()
    );

    // (f) The reference.
    if check {
        let started = Instant::now();
        let want = attribution(
            &data.exposures_path,
            &data.conversions_path,
            &AttributionParams {
                lookback_days: size.lookback_days,
                ..AttributionParams::new(period, size.model)
            },
        )?;
        let milli: Vec<i64> = want
            .by_channel
            .iter()
            .map(|c| c.credit.milli_conversions as i64)
            .collect();
        let value: Vec<i64> = want.by_channel.iter().map(|c| c.credit.value as i64).collect();
        anyhow::ensure!(
            totals.milli_conversions == milli && totals.value == value && elements.elements == want.elements,
            "the private result differs from the reference"
        );
        println!(
            "(f) equals the polars reference (computed in {:.2} s)",
            secs(started)
        );
    }
    if let Some(peak) = peak_mib() {
        println!("    peak RSS of this process (both parties): {peak:.0} MiB");
    }
    Ok(())
}
