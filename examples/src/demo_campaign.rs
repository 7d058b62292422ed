//! The demo's campaign part: a breakdown of the shared customers by bank AUM
//! tier and partner interest with the average partner spend and bank
//! deposit, exact and noised, and a co-marketing segment sized and
//! activated for the bank; every exact answer checked against the plaintext.

use jointly_protocol::{
    ids::normalize::IdKind,
    wire::{
        BreakdownQuery, DatasetRef, Filter, Job, JobState, Measure, Privacy, QuerySpec, Range, SegmentQuery,
        filter::Test, query_result, query_spec::Query,
    },
};

use crate::{
    cluster::{Cluster, exact, noised},
    datagen::GeneratedData,
    deploy::declared_columns,
    plaintext::{self, PlainSide},
};

fn refs() -> (Option<DatasetRef>, Option<DatasetRef>) {
    let r = |node: &str, dataset: &str| {
        Some(DatasetRef {
            node: node.into(),
            dataset: dataset.into(),
        })
    };
    (r("bank", "customers"), r("partner", "users"))
}

fn spec(query: Query, privacy: Privacy) -> QuerySpec {
    QuerySpec {
        query: Some(query),
        privacy: Some(privacy),
    }
}

/// Prints why a job failed, if it did.
pub(crate) fn failed(job: &Job) -> bool {
    if job.state != JobState::Succeeded as i32 {
        println!("  job {} failed: {}", job.job_id, job.error);
        return true;
    }
    false
}

/// Runs the breakdown and the segment; returns whether every exact answer
/// equals the plaintext one.
pub async fn run(cluster: &Cluster, data: &GeneratedData) -> anyhow::Result<bool> {
    let (left, right) = refs();
    let query = BreakdownQuery {
        left: left.clone(),
        right: right.clone(),
        left_group_by: vec!["aum_tier".into()],
        right_group_by: vec!["interest".into()],
        measures: vec![
            Measure {
                side: 2,
                column: "annual_spend".into(),
            },
            Measure {
                side: 1,
                column: "deposit_balance".into(),
            },
        ],
        left_filters: vec![],
        right_filters: vec![],
    };
    let columns = declared_columns();
    let bank = PlainSide {
        path: &data.bank_path,
        id_column: "phone",
        kind: IdKind::Phone,
        columns: &columns.bank,
    };
    let partner = PlainSide {
        path: &data.partner_path,
        id_column: "mobile",
        kind: IdKind::Phone,
        columns: &columns.partner,
    };
    let want = plaintext::breakdown(&query, &bank, &partner)?;
    println!();
    println!("running    breakdown: shared customers by bank aum_tier x partner interest, with mean");
    println!("           partner annual_spend and mean bank deposit_balance (exact, then epsilon 1) ...");
    let started = std::time::Instant::now();
    let exact_job = cluster
        .run(spec(Query::Breakdown(query.clone()), exact()))
        .await?;
    let noised_job = cluster.run(spec(Query::Breakdown(query), noised(1.0))).await?;
    let seconds = started.elapsed().as_secs_f64();
    let mut ok = true;
    let cells = |job: &Job| match job.result.as_ref().and_then(|r| r.result.clone()) {
        Some(query_result::Result::Breakdown(b)) => Some(b.cells),
        _ => None,
    };
    if failed(&exact_job) || failed(&noised_job) {
        return Ok(false);
    }
    let (Some(exact_cells), Some(noised_cells)) = (cells(&exact_job), cells(&noised_job)) else {
        return Ok(false);
    };
    let sd = noised_job
        .result
        .as_ref()
        .and_then(|r| r.release.as_ref())
        .map_or(0.0, |r| r.noise_stddev);
    let threshold = exact_job
        .result
        .as_ref()
        .and_then(|r| r.release.as_ref())
        .map_or(0, |r| r.threshold);
    let (mut equal, mut withheld) = (0, 0);
    for (g, w) in exact_cells.iter().zip(&want) {
        let Some(count) = g.count else { continue };
        if count.below_threshold {
            // Withheld exactly when the true count is below the threshold.
            withheld += usize::from(w.count < threshold);
            continue;
        }
        let same = count.value as u64 == w.count && g.sums.iter().map(|s| s.sum).eq(w.sums.iter().copied());
        equal += usize::from(same);
    }
    ok &= equal + withheld == want.len() && exact_cells.len() == want.len();
    println!(
        "  exact: {equal} cells equal the plaintext join (counts and both sums), {withheld} withheld as below {threshold},"
    );
    println!("  of {} cells; {seconds:.2} s for both jobs", want.len());
    println!(
        "  tier x interest          count exact | noised (±{:.0})   mean spend exact | noised   mean deposit exact",
        1.96 * sd
    );
    for ((e, n), _) in exact_cells
        .iter()
        .zip(&noised_cells)
        .zip(&want)
        .filter(|(_, w)| w.count > 0)
        .take(8)
    {
        let count = |c: &jointly_protocol::wire::BreakdownCell| match c.count {
            Some(c) if c.below_threshold => "withheld".to_string(),
            Some(c) => c.value.to_string(),
            None => "-".into(),
        };
        let mean = |c: &jointly_protocol::wire::BreakdownCell, i: usize| {
            c.sums.get(i).map_or("-".into(), |s| {
                if s.below_threshold {
                    "withheld".into()
                } else {
                    format!("{:.0}", s.mean)
                }
            })
        };
        println!(
            "  {:<8} x {:<12} {:>11} | {:<10} {:>16} | {:<9} {:>12}",
            e.left_group.join(","),
            e.right_group.join(","),
            count(e),
            count(n),
            mean(e, 0),
            mean(n, 0),
            mean(e, 1),
        );
    }
    println!(
        "  (first 8 non-empty cells of {}; `jointly query breakdown` prints them all)",
        want.len()
    );

    // A segment: bank customers aged 25-60 without a credit card who are
    // travel-minded, mid- or high-spending partner users; the bank receives them.
    let segment = SegmentQuery {
        left,
        right,
        left_filters: vec![
            Filter {
                column: "age".into(),
                test: Some(Test::Range(Range {
                    min: Some(25.0),
                    max: Some(60.0),
                })),
            },
            Filter {
                column: "has_credit_card".into(),
                test: Some(Test::Equals("false".into())),
            },
        ],
        right_filters: vec![
            Filter {
                column: "interest".into(),
                test: Some(Test::Equals("travel".into())),
            },
            Filter {
                column: "spend_band".into(),
                test: Some(Test::OneOf(jointly_protocol::wire::StringSet {
                    values: vec!["mid".into(), "high".into()],
                })),
            },
        ],
        activate: "bank".into(),
    };
    let truth = plaintext::segment(&segment, &bank, &partner)?;
    println!();
    println!(
        "running    segment: bank age 25-60 without a credit card AND partner travel interest, mid or high spend;"
    );
    println!("           activated for the bank (the partner's policy allows it) ...");
    let job = cluster.run(spec(Query::Segment(segment), exact())).await?;
    if failed(&job) {
        // Refusing is right only when the segment is below the policy's minimum.
        return Ok(ok && truth.size < 100);
    }
    let size = match job.result.as_ref().and_then(|r| r.result.clone()) {
        Some(query_result::Result::Segment(s)) => s.size.map_or(-1, |c| c.value),
        _ => -1,
    };
    let file = cluster
        .deployment
        .dir
        .join("bank-data")
        .join("activations")
        .join(format!("{}.csv", job.job_id));
    let mut members: Vec<String> = std::fs::read_to_string(&file)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    members.sort();
    let same = size == truth.size as i64 && members == truth.left_members;
    ok &= same;
    println!(
        "  size {size} (plaintext {}); the bank's {} members are in {} ({}); the planner saw only the size",
        truth.size,
        members.len(),
        file.display(),
        if same {
            "equal to the plaintext members"
        } else {
            "DIFFERENT from the plaintext"
        }
    );
    Ok(ok)
}
