//! `jointly bench overlap --rows N`: in one run on one machine, (a) the
//! primitive floor (hash, decompress, two multiplications, two batched
//! compressions per element and party, over all cores), (b) the overlap in
//! process, (c) the overlap through a coordinator and two node processes on
//! loopback, with each process's peak RSS.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Subcommand;
use jointly_coordinator::client;
use jointly_examples::{
    cluster::{exact, overlap_spec},
    datagen::{DataFormat, DatagenSpec, generate},
    deploy::{self, DeploymentSpec, PolicySpec},
};
use jointly_protocol::{
    crypto::group::{SessionKey, decode_and_mask, mask_each},
    crypto::hash::{HashToGroup, ID_DST},
    ids::idlist::IdList,
    ids::normalize::IdKind,
    protocols::overlap::{OverlapReceiver, OverlapSender},
    session::outcome::Outcome,
    session::party::run_pair,
    session::stream::{Limits, Setup},
    wire::{JobState, ListNodesRequest, query_result},
};

mod attribution;
mod audit;
mod breakdown;

#[derive(Subcommand)]
pub enum BenchKind {
    /// Attribution over generated campaign files: loading, lanes, the session
    /// of every window in process (bytes counted), opening and combining.
    Attribution {
        #[arg(long, default_value_t = 100_000)]
        partner: usize,
        /// Bank customers (default: as many as partner persons; half shared).
        #[arg(long)]
        bank: Option<usize>,
        #[arg(long, default_value_t = 500_000)]
        exposures: usize,
        #[arg(long, default_value_t = 20_000)]
        conversions: usize,
        #[arg(long, default_value_t = 30)]
        windows: u32,
        #[arg(long, default_value_t = 7)]
        lookback: u32,
        /// last_touch, first_touch, linear, time_decay or position_based.
        #[arg(long, default_value = "linear")]
        model: String,
        /// Compare with the polars reference on the same files.
        #[arg(long)]
        check: bool,
        /// Cache file of the decryption table (default: in the temporary directory).
        #[arg(long)]
        table: Option<PathBuf>,
        /// Run the query as a job through a coordinator and two node
        /// processes instead (bytes relayed, CPU time and peak RSS per process).
        #[arg(long)]
        processes: bool,
        /// Where --processes writes its data, configurations and logs
        /// (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// A recorded overlap of N x N rows in process, then `audit verify` of
    /// each node's transcript file.
    Audit {
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
    },
    /// Breakdown of two sets of N rows each (half shared): 10 x 10 groups,
    /// two measures; encryption against its floor, the protocol in process,
    /// and the decryption of every cell with the cached table.
    Breakdown {
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Cache file of the decryption table (default: in the temporary directory).
        #[arg(long)]
        table: Option<PathBuf>,
    },
    /// Overlap of two sets of N rows each (half of them shared).
    Overlap {
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Skip (c), the run through separate processes.
        #[arg(long)]
        in_process_only: bool,
        /// Where (c) writes its data and configurations (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

pub async fn run(kind: BenchKind) -> anyhow::Result<()> {
    let (rows, in_process_only, dir) = match kind {
        BenchKind::Attribution {
            partner,
            bank,
            exposures,
            conversions,
            windows,
            lookback,
            model,
            check,
            table,
            processes,
            dir,
        } => {
            let model = jointly_protocol::queries::attribution_model::Model::from_label(&model).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown model '{model}': use last_touch, first_touch, linear, time_decay or position_based"
                )
            })?;
            let size = attribution::Size {
                partner,
                bank: bank.unwrap_or(partner),
                exposures,
                conversions,
                windows,
                lookback_days: lookback,
                model,
            };
            let table = table.unwrap_or_else(breakdown::default_table_path);
            if processes {
                let temp = tempfile::tempdir()?;
                let dir = dir.unwrap_or_else(|| temp.path().to_path_buf());
                std::fs::create_dir_all(&dir)?;
                return attribution::through_processes(&size, check, &table, &dir).await;
            }
            return tokio::task::spawn_blocking(move || {
                let dir = tempfile::tempdir()?;
                attribution::run(&size, check, &table, dir.path())
            })
            .await?;
        }
        BenchKind::Audit { rows } => {
            return tokio::task::spawn_blocking(move || audit::run(rows)).await?;
        }
        BenchKind::Breakdown { rows, table } => {
            let table = table.unwrap_or_else(breakdown::default_table_path);
            return tokio::task::spawn_blocking(move || breakdown::run(rows, &table)).await?;
        }
        BenchKind::Overlap {
            rows,
            in_process_only,
            dir,
        } => (rows, in_process_only, dir),
    };
    println!(
        "jointly bench overlap: {rows} x {rows} rows, {} cores",
        rayon::current_num_threads()
    );
    let floor = tokio::task::spawn_blocking(move || primitive_floor(rows)).await??;
    let in_process = tokio::task::spawn_blocking(move || in_process(rows)).await??;
    println!(
        "(b) in-process overlap: {in_process:.2} s, {:.0} rows/s ({:.0}% of the floor's throughput)",
        rows as f64 / in_process,
        100.0 * floor / in_process
    );
    if !in_process_only {
        let temp;
        let dir = match dir {
            Some(d) => d,
            None => {
                temp = tempfile::tempdir()?;
                temp.path().to_path_buf()
            }
        };
        let secs = through_processes(rows, &dir).await?;
        println!(
            "(c) through coordinator and two node processes: {secs:.2} s, {:.0} rows/s ({:.0}% of the floor's throughput)",
            rows as f64 / secs,
            100.0 * floor / secs
        );
    }
    Ok(())
}

fn emails(range: std::ops::Range<usize>) -> Arc<IdList> {
    Arc::new(IdList::from_normalized(
        IdKind::Email,
        range.map(|i| format!("user{i}@example.com")).collect(),
    ))
}

/// Seconds both parties' primitive work for an N x N overlap takes on all cores.
fn primitive_floor(rows: usize) -> anyhow::Result<f64> {
    let ids = emails(0..rows);
    let hasher = HashToGroup::new(ID_DST);
    let key = SessionKey::random();
    let started = Instant::now();
    // hash_to_group + one variable-base multiplication + batched compression
    let masked = mask_each(&key, ids.len(), |i| hasher.hash(&ids.hash_parts(i)));
    let first = started.elapsed().as_secs_f64();
    // decompression + one variable-base multiplication + batched compression
    let started = Instant::now();
    let again = decode_and_mask(&SessionKey::random(), &masked).map_err(|e| anyhow::anyhow!("{e}"))?;
    let second = started.elapsed().as_secs_f64();
    anyhow::ensure!(again.len() == rows);
    let per_party = first + second;
    let per_element = per_party / rows as f64 * rayon::current_num_threads() as f64;
    println!(
        "(a) primitive floor: {:.1} core-us per element and party (hash+mul+compress {:.1}, decompress+mul+compress {:.1});",
        per_element * 1e6,
        first / rows as f64 * rayon::current_num_threads() as f64 * 1e6,
        second / rows as f64 * rayon::current_num_threads() as f64 * 1e6
    );
    let floor = 2.0 * per_party;
    println!(
        "    both parties on this machine: {floor:.2} s, {:.0} rows/s",
        rows as f64 / floor
    );
    Ok(floor)
}

fn in_process(rows: usize) -> anyhow::Result<f64> {
    let x = emails(0..rows);
    let y = emails(rows / 2..rows / 2 + rows);
    // Any digest does, as long as both parties hold the same one.
    let terms = [0u8; 32];
    let started = Instant::now();
    let (r, _) = run_pair(
        Box::new(OverlapReceiver::new(
            x,
            Setup::exact(Limits::default(), terms, 1, 0),
        )?),
        Box::new(OverlapSender::new(
            y,
            Setup::exact(Limits::default(), terms, 1, 1),
        )?),
    )
    .map_err(|(side, e)| anyhow::anyhow!("party {side}: {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    let Outcome::Overlap(o) = r else {
        bail!("no overlap outcome")
    };
    anyhow::ensure!(
        o.intersection as usize == rows - rows / 2,
        "in-process count {} is wrong",
        o.intersection
    );
    Ok(secs)
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    anyhow::ensure!(
        path.exists(),
        "{} not found next to {}: build all binaries (cargo build --release)",
        name,
        exe.display()
    );
    Ok(path)
}

/// Peak resident set of a running process, in bytes (Linux).
fn peak_rss(child: &Child) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub(crate) struct Procs(Vec<(String, Child)>);

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(exe: &Path, config: &Path, log: &Path) -> anyhow::Result<Child> {
    let log = std::fs::File::create(log)?;
    Command::new(exe)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))
}

/// A test deployment of generated data (and campaign files) in `dir`, its
/// coordinator on a free loopback port; returns it and that address.
pub(crate) fn loopback_deployment(
    dir: &Path,
    data: &jointly_examples::datagen::GeneratedData,
    campaign: Option<&jointly_examples::campaign_data::CampaignData>,
) -> anyhow::Result<(deploy::Deployment, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let listen = format!("127.0.0.1:{port}");
    let d = deploy::write(
        dir,
        &DeploymentSpec {
            bank_data: data.bank_path.canonicalize()?,
            partner_data: data.partner_path.canonicalize()?,
            listen: listen.clone(),
            policy: PolicySpec::testing(),
            tls: None,
            campaign: campaign.map(deploy::CampaignFiles::canonical).transpose()?,
        },
    )?;
    Ok((d, listen))
}

/// Starts the coordinator and both nodes of deployment `d` as processes
/// (binaries next to this one) and waits until both nodes attached, which
/// includes loading their data. Returns the processes, a planner client and
/// the seconds until attached.
pub(crate) async fn start_processes(
    dir: &Path,
    d: &deploy::Deployment,
    listen: &str,
) -> anyhow::Result<(Procs, client::Planner, f64)> {
    let (coordinator, node) = (sibling("jointly-coordinator")?, sibling("jointly-node")?);
    for file in ["coordinator.db", "coordinator.db-wal", "coordinator.db-shm"] {
        let _ = std::fs::remove_file(dir.join(file));
    }
    // A fresh database holds no one: register the planner again.
    let credentials = deploy::register_people(&d.coordinator_config, dir)?;
    let credential = jointly_coordinator::credential::Credential::load(&credentials.planner)
        .map_err(anyhow::Error::msg)?;
    let mut procs = Procs(Vec::new());
    procs.0.push((
        "coordinator".into(),
        spawn(&coordinator, &d.coordinator_config, &dir.join("coordinator.log"))?,
    ));
    let load_started = Instant::now();
    procs.0.push((
        "bank".into(),
        spawn(&node, &d.bank_config, &dir.join("bank.log"))?,
    ));
    procs.0.push((
        "partner".into(),
        spawn(&node, &d.partner_config, &dir.join("partner.log"))?,
    ));
    let url = format!("http://{listen}");
    let mut planner = loop {
        match client::connect(&url, None, None, credential.clone()).await {
            Ok(p) => break p,
            Err(_) if load_started.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => bail!(e),
        }
    };
    loop {
        let nodes = planner.list_nodes(ListNodesRequest {}).await?.into_inner().nodes;
        if nodes.iter().filter(|n| n.attached).count() == 2 {
            break;
        }
        // A node that stopped (say, a stale binary refusing the configuration)
        // will never attach: say so now rather than at the timeout.
        for (name, child) in &mut procs.0 {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{name} exited ({status}) before the nodes attached; see {} (stale binaries? run `cargo build --release --workspace --bins` first)",
                    dir.join(format!("{name}.log")).display()
                );
            }
        }
        anyhow::ensure!(
            load_started.elapsed() < Duration::from_secs(600),
            "nodes did not attach; see the logs in {}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok((procs, planner, load_started.elapsed().as_secs_f64()))
}

/// Prints each process's peak resident set.
pub(crate) fn print_peak_rss(procs: &Procs, per: Option<(usize, &str)>) {
    for (name, child) in &procs.0 {
        if let Some(peak) = peak_rss(child) {
            let per_row = per.map_or(String::new(), |(rows, what)| {
                format!(" ({:.0} bytes per {what})", peak as f64 / rows as f64)
            });
            println!(
                "    peak RSS {name:<12} {:>7.1} MiB{per_row}",
                peak as f64 / (1 << 20) as f64
            );
        }
    }
}

/// What one overlap job through processes took and sent.
struct ProcessRun {
    secs: f64,
    /// Bytes the coordinator relayed each way (from its log).
    relayed: u64,
    job_id: String,
}

async fn overlap_job(
    planner: &mut client::Planner,
    privacy: jointly_protocol::wire::Privacy,
    dir: &Path,
) -> anyhow::Result<(ProcessRun, i64)> {
    let before = relayed_bytes(dir);
    let started = Instant::now();
    let job = planner
        .submit_query(jointly_examples::cluster::submission(overlap_spec(privacy)))
        .await?
        .into_inner();
    let job = client::wait(planner, &job.job_id, |_| {}).await?;
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        job.state == JobState::Succeeded as i32,
        "job failed: {}",
        job.error
    );
    let Some(query_result::Result::Overlap(o)) = job.result.and_then(|r| r.result) else {
        bail!("no result")
    };
    // The relay logs once both session streams have ended.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let run = ProcessRun {
        secs,
        relayed: relayed_bytes(dir).saturating_sub(before),
        job_id: job.job_id,
    };
    Ok((run, o.intersection.unwrap_or_default().value))
}

/// Bytes of session frames the coordinator's log says it relayed so far.
fn relayed_bytes(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("coordinator.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("session relay finished"))
        .filter_map(|l| {
            l.split("bytes=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// The cover of one job as the bank's own transcript shows it: its pad on
/// U, the partner's pad and dummies on W and its dummy answers in V.
fn cover_sent(dir: &Path, job_id: &str, rows: usize) -> anyhow::Result<String> {
    use jointly_protocol::{
        transcript::parse_file,
        wire::{ProtocolMessage, protocol_message::Kind, transcript_record::Record},
    };
    use prost::Message;
    let bytes = std::fs::read(dir.join(format!("bank-data/transcripts/{job_id}.jtx")))?;
    let records = parse_file(&bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    // By sender: the two announcements are recorded in whatever order the
    // session interleaved them.
    let (mut bank, mut partner) = (None, None);
    let mut matched = 0;
    for r in &records {
        match &r.record {
            Some(Record::Message(m)) => {
                if let Some(s) = &m.sealed
                    && let Ok(ProtocolMessage {
                        kind: Some(Kind::Announce(a)),
                        ..
                    }) = ProtocolMessage::decode(s.payload.as_slice())
                {
                    match s.envelope.as_ref().map(|e| e.from.as_str()) {
                        Some("bank") => bank = Some(a),
                        Some("partner") => partner = Some(a),
                        _ => {}
                    }
                }
            }
            Some(Record::Release(rel)) => matched = rel.exact_count.unwrap_or(0),
            _ => {}
        }
    }
    let (Some(bank), Some(partner)) = (bank, partner) else {
        bail!("the bank's transcript does not hold both announcements")
    };
    let rows = rows as u64;
    let dummies = matched.saturating_sub(rows / 2);
    let answers = 2 * partner.dummy_offset;
    let (u_extra, w_extra) = (
        bank.set_size.saturating_sub(rows),
        partner.set_size.saturating_sub(rows),
    );
    Ok(format!(
        "bank pad {u_extra} on U; partner {w_extra} on W ({dummies} matching dummies); {answers} dummy answers in V; {} extra points in all (offsets {} and {})",
        u_extra + w_extra + answers,
        bank.pad_offset,
        partner.dummy_offset
    ))
}

async fn through_processes(rows: usize, dir: &Path) -> anyhow::Result<f64> {
    let spec = DatagenSpec {
        bank_rows: rows,
        partner_rows: rows,
        overlap: rows / 2,
        seed: 3,
        messy: false,
        format: DataFormat::Csv,
    };
    let data = generate(&spec, dir)?;
    let (d, listen) = loopback_deployment(dir, &data, None)?;
    let (procs, mut planner, load_secs) = start_processes(dir, &d, &listen).await?;
    println!(
        "    nodes loaded {rows} rows each (read, normalize, de-duplicate) and attached in {load_secs:.2} s"
    );
    // Exact first: no cover, the reference for what the cover costs.
    let (plain, count) = overlap_job(&mut planner, exact(), dir).await?;
    anyhow::ensure!(
        usize::try_from(count).ok() == Some(data.truth.overlap),
        "count {count} differs from the truth {}",
        data.truth.overlap
    );
    println!(
        "    exact (no cover): {:.2} s, {:.1} MiB relayed; count {count} equals the generated truth",
        plain.secs,
        plain.relayed as f64 / (1 << 20) as f64
    );
    let (covered, noised_count) =
        overlap_job(&mut planner, jointly_examples::cluster::noised(1.0), dir).await?;
    println!(
        "    noised at epsilon 1 with the cover: {:.2} s ({:+.1}%), {:.1} MiB relayed ({:+.2}%); released {noised_count}",
        covered.secs,
        100.0 * (covered.secs / plain.secs - 1.0),
        covered.relayed as f64 / (1 << 20) as f64,
        100.0 * (covered.relayed as f64 / plain.relayed.max(1) as f64 - 1.0)
    );
    println!("    cover sent: {}", cover_sent(dir, &covered.job_id, rows)?);
    print_peak_rss(&procs, Some((rows, "input row")));
    Ok(covered.secs)
}
