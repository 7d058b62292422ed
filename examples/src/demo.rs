//! `jointly demo`: a coordinator and two nodes on loopback over freshly
//! generated messy data, running the sample queries and printing each answer
//! beside the plaintext answer.

use std::path::Path;

use jointly_protocol::{
    ids::IdKind,
    wire::{JobState, query_result},
};

use crate::{
    cluster::{Cluster, overlap_spec},
    datagen::{DataFormat, DatagenSpec, generate},
    plaintext,
};

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
    let cluster = Cluster::start(dir, &data.bank_path, &data.partner_path, true).await?;
    println!("running    overlap query bank/customers x partner/users ...");
    let started = std::time::Instant::now();
    let job = cluster.run(overlap_spec()).await?;
    let seconds = started.elapsed().as_secs_f64();
    let (bank, partner) = (data.bank_path.clone(), data.partner_path.clone());
    let expected = tokio::task::spawn_blocking(move || {
        plaintext::overlap((&bank, "phone"), (&partner, "mobile"), IdKind::Phone)
    })
    .await??;
    cluster.shutdown().await;

    if job.state != JobState::Succeeded as i32 {
        println!("\njob {} failed: {}", job.job_id, job.error);
        return Ok(false);
    }
    let Some(query_result::Result::Overlap(result)) = job.result.and_then(|r| r.result) else {
        println!("\njob {} returned no overlap result", job.job_id);
        return Ok(false);
    };
    let ok = result.intersection == expected;
    println!();
    println!("  query                          private (Jointly)   plaintext join");
    println!(
        "  shared customers (overlap)     {:>17}   {:>14}   {}",
        result.intersection,
        expected,
        if ok { "equal" } else { "DIFFERENT" }
    );
    println!();
    println!(
        "job {} took {seconds:.2} s; result is {}.",
        job.job_id,
        if result.exact {
            "exact (both policies allow_exact = true)"
        } else {
            "noised"
        }
    );
    Ok(ok)
}
