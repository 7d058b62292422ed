//! `jointly demo`: a coordinator and two nodes on loopback over freshly
//! generated messy data, running the sample queries and printing each answer
//! beside the plaintext answer.

use std::path::Path;

use jointly_protocol::{
    ids::normalize::IdKind,
    wire::{Job, JobState, Release, ReleasedCount, query_result},
};

use crate::{
    campaign_data::{CampaignSpec, People, generate_campaign},
    cluster::{Cluster, exact, noised, overlap_spec},
    datagen::{DataFormat, DatagenSpec, generate},
    deploy::CampaignFiles,
    deploy::PolicySpec,
    plaintext,
};

/// Days of conversions the demo's campaign spans (daily windows).
const CAMPAIGN_DAYS: u32 = 14;

pub struct DemoOptions {
    pub bank_rows: usize,
    pub partner_rows: usize,
    pub overlap: usize,
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            bank_rows: 20_000,
            partner_rows: 15_000,
            overlap: 6_000,
            seed: 7,
        }
    }
}

/// Runs the demo in `dir`; returns whether every answer matched.
pub async fn run(dir: &Path, options: &DemoOptions) -> anyhow::Result<bool> {
    println!("Jointly demo: a bank and a partner find how many customers they share,");
    println!("without either one sending an identifier the other could read.\n");
    let spec = DatagenSpec {
        bank_rows: options.bank_rows,
        partner_rows: options.partner_rows,
        overlap: options.overlap,
        seed: options.seed,
        messy: true,
        format: DataFormat::Csv,
    };
    let data = tokio::task::spawn_blocking({
        let dir = dir.to_path_buf();
        move || generate(&spec, &dir)
    })
    .await??;
    let t = &data.truth;
    println!(
        "generated  bank.csv: {} customers (+{} duplicate rows, +{} invalid rows, phones in mixed formats)",
        t.bank_distinct, t.bank_duplicate_rows, t.bank_invalid_rows
    );
    println!(
        "           partner.csv: {} users (+{} duplicate rows, +{} invalid rows)",
        t.partner_distinct, t.partner_duplicate_rows, t.partner_invalid_rows
    );
    println!(
        "starting   coordinator and nodes 'bank' and 'partner' on loopback (files in {})",
        dir.display()
    );
    let campaign_spec = CampaignSpec {
        people: People::from(&data.truth),
        exposures: options.partner_rows * 4,
        conversions: options.bank_rows / 8,
        windows: CAMPAIGN_DAYS,
        seed: options.seed,
        messy: true,
    };
    let campaign = tokio::task::spawn_blocking({
        let dir = dir.to_path_buf();
        move || generate_campaign(&campaign_spec, &dir)
    })
    .await??;
    println!(
        "           {}: {} ad exposures over {} channels; {}: {} conversions; {}: the campaign's test/control split",
        crate::campaign_data::EXPOSURES_FILE,
        campaign.truth.exposure_rows,
        crate::campaign_data::CHANNELS.len(),
        crate::campaign_data::CONVERSIONS_FILE,
        campaign.truth.conversion_rows,
        crate::campaign_data::GROUPS_FILE
    );
    let cluster = Cluster::start_with_campaign(
        dir,
        &data.bank_path,
        &data.partner_path,
        CampaignFiles::from(&campaign),
        PolicySpec::demo(),
    )
    .await?;
    let (bank, partner) = (data.bank_path.clone(), data.partner_path.clone());
    let expected = tokio::task::spawn_blocking(move || {
        plaintext::overlap((&bank, "phone"), (&partner, "mobile"), IdKind::Phone)
    })
    .await??;
    println!(
        "running    overlap bank/customers x partner/users: exact, then noised at epsilon 1 and 0.25 ..."
    );
    let started = std::time::Instant::now();
    let mut rows = Vec::new();
    for (label, privacy) in [
        ("exact (test deployments only)", exact()),
        ("noised, epsilon 1", noised(1.0)),
        ("noised, epsilon 0.25", noised(0.25)),
    ] {
        rows.push((label, cluster.run(overlap_spec(privacy)).await?));
    }
    let seconds = started.elapsed().as_secs_f64();
    let bank = jointly_node::NodeConfig::load(&cluster.deployment.bank_config)?;
    let standings = jointly_node::privacy::standings(
        &jointly_node::ledger::Ledger::open(&bank.data_dir)?.entries()?,
        &bank.policy,
    );

    println!();
    println!("  shared customers (overlap)       private (Jointly)          plaintext join");
    let mut ok = true;
    for (label, job) in &rows {
        let Some((count, release)) = overlap_count(job) else {
            println!("  {label:<32} job {} failed: {}", job.job_id, job.error);
            ok = false;
            continue;
        };
        let (text, verdict) = if count.below_threshold {
            (
                format!("below threshold (< {})", release.threshold),
                "withheld".to_string(),
            )
        } else if release.exact {
            let equal = u64::try_from(count.value).ok() == Some(expected);
            ok &= equal;
            (
                count.value.to_string(),
                if equal { "equal" } else { "DIFFERENT" }.to_string(),
            )
        } else {
            let half = 1.96 * release.noise_stddev;
            let off = (count.value as f64 - expected as f64).abs();
            // Six standard deviations: a false alarm about once in 500 million runs.
            let plausible = off <= 6.0 * release.noise_stddev;
            ok &= plausible;
            (
                format!("{} ± {half:.0} (95%)", count.value),
                format!(
                    "{} by {off:.0}",
                    if plausible { "off" } else { "IMPLAUSIBLY off" }
                ),
            )
        };
        println!("  {label:<32} {text:>24}   {expected:>14}   {verdict}");
    }
    println!();
    println!("3 jobs took {seconds:.2} s. Each node adds its own noise share, sized so that its share alone");
    println!("gives the stated epsilon (at delta 1e-6); counts below 10 would be withheld.");
    if let Some(b) = standings.first() {
        println!(
            "The bank's ledger for {}: {} queries, epsilon {:.2} spent of its budget of {} with '{}'",
            b.period,
            b.queries,
            b.epsilon_spent,
            b.epsilon_budget.map_or("-".into(), |e| e.to_string()),
            b.partner
        );
        println!("(composed under zCDP, so less than the sum); see `jointly-node budget`.");
    }
    let campaign_ok = crate::demo_campaign::run(&cluster, &data).await?;
    let attribution_ok = crate::demo_attribution::run(&cluster, &data, &campaign, CAMPAIGN_DAYS).await?;
    let audit_ok = match rows.first() {
        Some((_, job)) => audit(&cluster, &job.job_id).await?,
        None => false,
    };
    cluster.shutdown().await;
    Ok(ok && campaign_ok && attribution_ok && audit_ok)
}

/// The compliance view of the first job: the partner's shared copy fetched
/// through the coordinator, and the bank's own copy with its masking proof.
async fn audit(cluster: &Cluster, job_id: &str) -> anyhow::Result<bool> {
    use jointly_protocol::transcript::{CheckStatus, parse_file, verify};
    println!();
    println!(
        "audit      the transcripts of the exact overlap job {job_id}, checked with no secret and no data:"
    );
    // Fetching transcripts is the auditor's right, not the planner's.
    let mut auditor = cluster.auditor().await?;
    let mut stream = auditor
        .fetch_transcript(jointly_protocol::wire::FetchTranscriptRequest {
            job_id: job_id.to_string(),
            node: "partner".into(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("fetching the transcript: {}", s.message()))?
        .into_inner();
    let mut fetched = Vec::new();
    while let Some(chunk) = stream
        .message()
        .await
        .map_err(|s| anyhow::anyhow!("fetching the transcript: {}", s.message()))?
    {
        fetched.extend_from_slice(&chunk.data);
    }
    let bank = jointly_node::NodeConfig::load(&cluster.deployment.bank_config)?;
    let own = std::fs::read(jointly_node::transcripts::full_path(&bank.data_dir, job_id))?;
    let mut ok = true;
    for (label, bytes) in [
        ("partner's shared copy, fetched through the coordinator", fetched),
        ("bank's own copy, with its masking proof", own),
    ] {
        let report = verify(&parse_file(&bytes)?);
        ok &= report.verified;
        println!(
            "  {label} ({} KiB): {}",
            bytes.len() / 1024,
            if report.verified { "VERIFIED" } else { "FAILED" }
        );
        for c in &report.checks {
            let mark = match c.status {
                CheckStatus::Passed => "ok",
                CheckStatus::Failed => "FAIL",
                CheckStatus::NotChecked => "n/a",
            };
            println!("    {mark:<4} {}: {}", c.name, c.detail);
        }
    }
    println!(
        "  (`jointly audit fetch JOB` and `jointly audit verify FILE` do the same from the command line)"
    );
    Ok(ok)
}

fn overlap_count(job: &Job) -> Option<(ReleasedCount, Release)> {
    if job.state != JobState::Succeeded as i32 {
        return None;
    }
    let result = job.result.as_ref()?;
    match (result.result.as_ref()?, result.release.as_ref()?) {
        (query_result::Result::Overlap(o), release) => Some((o.intersection?, release.clone())),
        _ => None,
    }
}
