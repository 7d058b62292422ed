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
    demo_attribution::VALUE_CLIP,
    plaintext_attribution::{AttributionParams, Period, attribution},
};
use jointly_protocol::{
    ids::normalize::{IdKind, Normalizer},
    privacy::accounting,
    protocols::breakdown::open_lane,
    queries::attribution::{
        self, Plan, ValueBuckets, bank_party, combine, partner_party, receiver_lanes, released_values,
        sender_lanes,
    },
    queries::attribution_model::{Model, Window},
    queries::breakdown_plan::MAX_ABS_VALUE,
    session::outcome::Outcome,
    session::party::run_pair_counted,
    session::stream::{Limits, Setup},
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

impl Size {
    fn describe(&self) -> String {
        format!(
            "{} partner persons with {} exposures over {} channels x {} campaigns, {} bank customers with {} conversions, {} daily windows, {}-day lookback, {}",
            self.partner,
            self.exposures,
            CHANNELS.len(),
            CAMPAIGNS.len(),
            self.bank,
            self.conversions,
            self.windows,
            self.lookback_days,
            self.model
        )
    }
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
        crypto::group::{SessionKey, decode_and_mask, mask_each},
        crypto::hash::{HashToGroup, ID_DST},
        ids::idlist::IdList,
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

/// The polars reference on the generated files, with the bench's lookback.
fn reference(
    data: &jointly_examples::campaign_data::CampaignData,
    size: &Size,
    period: Period,
) -> anyhow::Result<jointly_examples::plaintext_attribution::AttributionTable> {
    attribution(
        &data.exposures_path,
        &data.conversions_path,
        &AttributionParams {
            lookback_days: size.lookback_days,
            ..AttributionParams::new(period, size.model, VALUE_CLIP)
        },
    )
}

pub fn run(size: &Size, check: bool, table_path: &Path, dir: &Path) -> anyhow::Result<()> {
    let threads = rayon::current_num_threads();
    println!("jointly bench attribution: {}; {threads} cores", size.describe());
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
    let exposures = data.load_exposures(&normalizer)?;
    let load_partner = secs(started);
    let started = Instant::now();
    let conversions = data.load_conversions(&normalizer)?;
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
        buckets: ValueBuckets { clip: VALUE_CLIP },
        channels: CHANNELS.len(),
        campaigns: CAMPAIGNS.len(),
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
    let terms = [0u8; 32];
    let noise = || vec![0; released_values(&plan)];
    let buckets = shape.receiver_groups;
    let bank_setups = vec![Setup::exact(limits, terms, buckets, 0); plan.windows()];
    let partner_setups = vec![Setup::exact(limits, terms, 1, buckets); plan.windows()];
    let bank = bank_party(&plan, bank_lanes, noise(), bank_setups)?;
    let partner = partner_party(&plan, partner_lanes, noise(), partner_setups)?;
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
    let ([partner], [bank]) = (&partner[..], &bank[..]) else {
        anyhow::bail!("the session did not end in one pooled release per party");
    };
    let opened = open_lane(partner, bank, &table, MAX_ABS_VALUE)?;
    let totals = combine(&plan, &opened)?;
    println!(
        "(e) opening the pooled release ({} values) and combining: {:.2} s (table loaded in {loaded:.2} s); {} elements, {} attributed",
        opened.len(),
        secs(started),
        elements.elements,
        totals.attributed()
    );

    // (f) The reference.
    if check {
        let started = Instant::now();
        let want = reference(&data, size, period)?;
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
    let (before, after) = channel_noise(&plan, 1.0, 1e-6)?;
    println!(
        "(g) noise at epsilon 1 (delta 1e-6), standard deviation of one channel's conversions: {:.1} released per window, {:.1} pooled ({:.1}x smaller); of its value: {:.0} CNY per window, {:.0} CNY pooled",
        before.0,
        after.0,
        before.0 / after.0,
        before.1,
        after.1
    );
    Ok(())
}

/// One channel's noise (conversions, value in CNY) at `epsilon`, with both
/// nodes' shares: as released per window before (a value per window and
/// bucket, the default buckets of 0, 50, 500, 5,000, 50,000 and 100,000
/// CNY, a person moving each window's values by at most 1 in L2 norm), and
/// pooled as now. The cover's part of each node's charge is the same.
fn channel_noise(plan: &Plan, epsilon: f64, delta: f64) -> anyhow::Result<((f64, f64), (f64, f64))> {
    let rho = accounting::rho_for_epsilon(epsilon, delta)?;
    let k = f64::from(plan.period.max_conversions);
    // Squared sensitivities, release and cover, bank then partner.
    let per_window = [k + 1.0 + k, k + k + 1.0];
    let pooled = [2.0 * k * k + 1.0 + k, 2.0 * k * k + k + 1.0];
    let sigma = |sq: [f64; 2]| -> anyhow::Result<f64> {
        Ok((accounting::variance_for(rho, sq[0])? + accounting::variance_for(rho, sq[1])?).sqrt())
    };
    let windows = plan.windows() as f64;
    let old_representatives: f64 = [0f64, 50.0, 500.0, 5_000.0, 50_000.0, 100_000.0]
        .iter()
        .map(|r| r * r)
        .sum();
    let before = sigma(per_window)?;
    let after = sigma(pooled)?;
    Ok((
        (
            before * (windows * 6.0).sqrt(),
            before * (windows * old_representatives).sqrt(),
        ),
        (after, after * plan.buckets.clip as f64),
    ))
}

/// CPU seconds a process has used so far (user and system, Linux).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// The relayed bytes per sending node of `job`, from the coordinator's log.
fn relayed_bytes(log: &Path, job: &str) -> Vec<(String, u64)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("session relay finished") && l.contains(job))
        .filter_map(|l| {
            let field = |key: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .map(|v| v.trim_matches('"').to_string())
            };
            Some((field("from=")?, field("bytes=")?.parse().ok()?))
        })
        .collect()
}

/// The same attribution as a job: generated files declared in a deployment,
/// a coordinator and two node processes on loopback, the query submitted as
/// a planner would. Reports the loading, the job's time, the bytes the
/// coordinator relayed each way, each process's CPU time and peak RSS.
pub async fn through_processes(size: &Size, check: bool, table: &Path, dir: &Path) -> anyhow::Result<()> {
    use jointly_examples::{
        cluster::exact,
        datagen::{DataFormat, DatagenSpec, generate},
        demo_attribution::{attribution_of, attribution_spec, equals_reference},
    };
    use jointly_protocol::wire::{JobState, query_spec::Query};

    println!("jointly bench attribution --processes: {}", size.describe());
    let started = Instant::now();
    let (base, campaign) = {
        let (size, dir) = (size.clone(), dir.to_path_buf());
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let base = generate(
                &DatagenSpec {
                    bank_rows: size.bank,
                    partner_rows: size.partner,
                    overlap: size.bank.min(size.partner) / 2,
                    seed: 2026,
                    messy: false,
                    format: DataFormat::Csv,
                },
                &dir,
            )?;
            let campaign = generate_campaign(
                &CampaignSpec {
                    people: People::from(&base.truth),
                    exposures: size.exposures,
                    conversions: size.conversions,
                    windows: size.windows,
                    seed: 2026,
                    messy: true,
                },
                &dir,
            )?;
            Ok((base, campaign))
        })
        .await??
    };
    println!(
        "    generated the files in {:.2} s (not counted below)",
        secs(started)
    );
    let (d, listen) = super::loopback_deployment(dir, &base, Some(&campaign))?;
    // The coordinator builds its decryption table on first use: cache it
    // beforehand, so the job's time is the protocol's.
    let table = table.to_path_buf();
    tokio::task::spawn_blocking({
        let table = table.clone();
        move || load_or_build(&table)
    })
    .await??;
    let mut coordinator = std::fs::read_to_string(&d.coordinator_config)?;
    coordinator.push_str(&format!(
        "\n[decryption]\ntable = \"{}\"\n",
        table
            .display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
    ));
    std::fs::write(&d.coordinator_config, coordinator)?;
    let (procs, mut planner, loaded) = super::start_processes(dir, &d, &listen).await?;
    println!("(a) both nodes loaded their tables and event tables and attached in {loaded:.2} s");
    let period = Period::days(campaign.truth.period_start, size.windows);
    let mut spec = attribution_spec(&period, size.model, false, exact());
    if let Some(Query::Attribution(q)) = spec.query.as_mut() {
        q.lookback_days = size.lookback_days;
    }
    let cpu_before: Vec<Option<f64>> = procs.0.iter().map(|(_, c)| cpu_seconds(c.id())).collect();
    let started = Instant::now();
    let job = planner
        .submit_query(jointly_examples::cluster::submission(spec))
        .await?
        .into_inner();
    let job = jointly_coordinator::client::wait(&mut planner, &job.job_id, |_| {}).await?;
    let total = secs(started);
    anyhow::ensure!(
        job.state == JobState::Succeeded as i32,
        "job failed: {}",
        job.error
    );
    println!(
        "(b) the job through the coordinator and two node processes: {total:.2} s ({} lanes)",
        size.windows
    );
    for ((name, child), before) in procs.0.iter().zip(cpu_before) {
        if let (Some(b), Some(a)) = (before, cpu_seconds(child.id())) {
            println!(
                "    CPU {name:<12} {:>8.1} s ({:.0}% of the job's wall time on one core)",
                a - b,
                100.0 * (a - b) / total
            );
        }
    }
    // The relay logs its count when each node closes its session stream,
    // which may come just after the job's end.
    let log = dir.join("coordinator.log");
    let mut relayed = Vec::new();
    for _ in 0..100 {
        relayed = relayed_bytes(&log, &job.job_id);
        if relayed.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for (from, bytes) in &relayed {
        println!("    bytes relayed from {from:<8} {:>10.2} MiB", mib(*bytes));
    }
    super::print_peak_rss(&procs, None);
    let got = attribution_of(&job).ok_or_else(|| anyhow::anyhow!("the job returned no attribution"))?;
    println!(
        "    {} conversions, {} attributed",
        got.conversions.map_or(-1, |c| c.value),
        got.attributed.map_or(-1, |c| c.value)
    );
    if check {
        let started = Instant::now();
        let want = reference(&campaign, size, period)?;
        anyhow::ensure!(
            equals_reference(&got, &want, false),
            "the private result differs from the reference"
        );
        println!(
            "(c) equals the polars reference (computed in {:.2} s)",
            secs(started)
        );
    }
    Ok(())
}
