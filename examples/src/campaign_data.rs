//! Synthetic campaign data with a known answer (`ATTRIBUTION.md`): the
//! partner's ad exposures and test/control groups, and the bank's
//! conversions, for the persons [`crate::datagen::generate`] lays out.
//!
//! Conversions come from two sources. Baseline conversions fall on any bank
//! customer at a uniform time. Caused conversions follow one exposure of a
//! test-group person who is also a bank customer, with a per-channel
//! probability and delay ([`ChannelEffect`]). The control group sees no
//! exposure, so the gap between the groups' conversion rates is the
//! campaign's lift. The generator's parameters and the counts they produced
//! come back in [`CampaignTruth`].
//!
//! Exposure rows stream to disk as they are drawn. Conversions, far fewer in
//! practice, are held in memory so they can be shuffled before writing.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::datagen::{
    BANK, GroundTruth, INVALID_PHONES, PARTNER, mix, national_digits, weighted, write_phone,
};
use crate::timestamp::{self, NOVEMBER_2026};

mod exposures;
use exposures::write_exposures;

pub const CHANNELS: [&str; 6] = [
    "app_push",
    "sms",
    "wechat",
    "short_video",
    "search",
    "instore_screen",
];
pub const CAMPAIGNS: [&str; 4] = ["C1", "C2", "C3", "C4"];
pub const CONVERSION_TYPES: [&str; 3] = ["account_open", "card_apply", "wealth_purchase"];
pub const EXPOSURES_FILE: &str = "partner_exposures.csv";
pub const CONVERSIONS_FILE: &str = "bank_conversions.csv";
pub const GROUPS_FILE: &str = "partner_groups.csv";

const DAY: i64 = 86_400;
/// Exposures start this many days before the period, inside early lookbacks.
const PRE_PERIOD_DAYS: i64 = 3;
/// Per channel (in [`CHANNELS`] order): share of exposures, relative effect
/// of one exposure on conversion, mean delay to the conversion in hours.
const EFFECTS: [(u32, f64, f64); 6] = [
    (30, 1.0, 10.0),
    (15, 0.5, 20.0),
    (20, 1.5, 30.0),
    (15, 0.8, 48.0),
    (15, 6.0, 30.0),
    (5, 1.0, 3.0),
];
/// Per campaign: share of exposures and effect multiplier.
const CAMPAIGN_MIX: [(u32, f64); 4] = [(40, 1.0), (30, 1.5), (20, 0.7), (10, 1.0)];
const TEST_PERCENT: u64 = 80;
/// The share of conversion rows meant to be caused by exposures.
const CAUSED_SHARE: f64 = 0.5;
/// Genuine rows that repeat the previous row's person and time.
const TIE_RATE: f64 = 0.04;
const BAD_TIMESTAMPS: [&str; 5] = [
    "",
    "2026-11-31T08:00:00Z",
    "11/05/2026 10:00",
    "2026-11-05 10:00:00",
    "yesterday",
];
// The last one is quoted: its comma is not a separator.
const BAD_VALUES: [&str; 4] = ["", "N/A", "-120.00", "\"1,250.00\""];
const UNKNOWN_CHANNELS: [&str; 2] = ["tv", "SMS"];
const GROUP_SALT: u64 = 0x6A0C_0000_0000_0003;
const RNG_SALT: u64 = 0xCA3F_0000_0000_0004;

/// Which global person numbers each side holds, as `datagen::generate`
/// numbers them: `0..overlap` on both sides, bank-only persons up to `bank`,
/// partner-only persons after that.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct People {
    pub bank: usize,
    pub partner: usize,
    pub overlap: usize,
}

impl People {
    fn partner_person(&self, k: u64) -> u64 {
        let (overlap, bank) = (self.overlap as u64, self.bank as u64);
        if k < overlap { k } else { bank + (k - overlap) }
    }
}

impl From<&GroundTruth> for People {
    fn from(t: &GroundTruth) -> People {
        People {
            bank: t.bank_distinct,
            partner: t.partner_distinct,
            overlap: t.overlap,
        }
    }
}

#[derive(Clone, Debug)]
pub struct CampaignSpec {
    pub people: People,
    /// Genuine exposure rows, all of test-group partner persons.
    pub exposures: usize,
    /// Genuine conversion rows, all of bank customers.
    pub conversions: usize,
    /// Daily windows of the period, which starts 2026-11-01T00:00:00Z.
    pub windows: u32,
    /// Same seed -> byte-identical files.
    pub seed: u64,
    /// Formatting variants, duplicates, invalid rows.
    pub messy: bool,
}

#[derive(Debug)]
pub struct CampaignData {
    pub exposures_path: PathBuf,
    pub conversions_path: PathBuf,
    pub groups_path: PathBuf,
    pub truth: CampaignTruth,
}

impl CampaignData {
    /// The partner's exposures, loaded as its node loads them (columns as
    /// written here, the declared channels and campaigns).
    pub fn load_exposures(
        &self,
        normalizer: &jointly_protocol::ids::normalize::Normalizer,
    ) -> Result<jointly_node::events::Exposures, jointly_node::NodeError> {
        use jointly_node::events::{EventSource, load_exposures};
        let names = |list: &[&str]| list.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
        load_exposures(
            &EventSource::csv(
                "exposures",
                &self.exposures_path,
                "mobile",
                jointly_protocol::ids::normalize::IdKind::Phone,
                "ts",
            ),
            "channel",
            "campaign",
            &names(&CHANNELS),
            &names(&CAMPAIGNS),
            normalizer,
        )
    }

    /// The bank's conversions, loaded as its node loads them.
    pub fn load_conversions(
        &self,
        normalizer: &jointly_protocol::ids::normalize::Normalizer,
    ) -> Result<jointly_node::events::Conversions, jointly_node::NodeError> {
        use jointly_node::events::{EventSource, load_conversions};
        load_conversions(
            &EventSource::csv(
                "conversions",
                &self.conversions_path,
                "phone",
                jointly_protocol::ids::normalize::IdKind::Phone,
                "ts",
            ),
            "value",
            normalizer,
        )
    }
}

/// How one channel moves conversions in the generated data.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ChannelEffect {
    pub channel: &'static str,
    /// Share of genuine exposure rows on this channel.
    pub exposure_share: f64,
    /// Probability that one exposure of a bank customer causes a conversion
    /// (before the campaign's multiplier; capped at 1).
    pub conversion_probability: f64,
    /// Mean of the exponential delay from exposure to caused conversion,
    /// added to one minute.
    pub mean_delay_hours: f64,
}

/// The generator's parameters and what they produced.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CampaignTruth {
    pub period_start: i64,
    pub period_end: i64,
    pub channel_effects: Vec<ChannelEffect>,
    /// Per campaign: (name, multiplier on the conversion probability).
    pub campaign_multipliers: Vec<(&'static str, f64)>,
    /// Probability that a partner person is in the test group.
    pub test_share: f64,
    pub exposures_by_channel: Vec<u64>,
    /// In-period conversions caused by an exposure, per channel.
    pub caused_conversions: Vec<u64>,
    /// In-period conversions not caused by any exposure.
    pub baseline_conversions: u64,
    /// Persons in both bank and partner tables, per group.
    pub overlap_test: u64,
    pub overlap_control: u64,
    /// Of those, the persons with a conversion in the period.
    pub converters_test: u64,
    pub converters_control: u64,
    /// converters_test/overlap_test − converters_control/overlap_control.
    pub lift_abs: f64,
    pub exposure_rows: u64,
    /// Invalid phone, unparseable timestamp or unknown channel.
    pub exposure_invalid_rows: u64,
    /// Repeats of the previous genuine row (same person, time, channel, campaign).
    pub exposure_duplicate_rows: u64,
    /// Genuine rows with the same person and time as the row before.
    pub exposure_tied_rows: u64,
    pub conversion_rows: u64,
    /// Invalid phone or unparseable timestamp.
    pub conversion_invalid_rows: u64,
    /// Genuine rows in the period whose value is missing, negative or
    /// unparseable (rows outside the period are dropped before their value
    /// is read).
    pub conversion_bad_values: u64,
    /// Genuine rows dated outside the period.
    pub conversions_outside_period: u64,
    pub conversion_tied_rows: u64,
    pub group_rows: u64,
    pub group_invalid_rows: u64,
    pub group_duplicate_rows: u64,
}

/// One conversion row before it is written.
struct Conversion {
    person: u64,
    ts: i64,
    kind: usize,
    fen: u64,
    /// The channel of the exposure that caused it.
    cause: Option<usize>,
    /// Written with an invalid phone or timestamp: not a genuine conversion.
    broken: Option<Broken>,
}

#[derive(Clone, Copy)]
enum Broken {
    Phone(usize),
    Timestamp(usize),
}

/// A CSV file written one line at a time.
struct CsvOut {
    w: BufWriter<File>,
    line: String,
    path: PathBuf,
    rows: u64,
}

impl CsvOut {
    fn create(path: PathBuf, header: &str) -> Result<CsvOut> {
        let file = File::create(&path).with_context(|| {
            format!(
                "cannot create {}; check that the output directory is writable",
                path.display()
            )
        })?;
        let mut out = CsvOut {
            w: BufWriter::with_capacity(1 << 20, file),
            line: String::with_capacity(128),
            path,
            rows: 0,
        };
        out.line.push_str(header);
        out.end_row()?;
        out.rows = 0;
        Ok(out)
    }

    fn end_row(&mut self) -> Result<()> {
        self.line.push('\n');
        self.w
            .write_all(self.line.as_bytes())
            .with_context(|| write_err(&self.path))?;
        self.line.clear();
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<(PathBuf, u64)> {
        self.w.flush().with_context(|| write_err(&self.path))?;
        Ok((self.path, self.rows))
    }
}

fn write_err(path: &Path) -> String {
    format!(
        "cannot write {}; check free disk space and that the output directory is writable",
        path.display()
    )
}

/// Writes `person`'s phone: the person's usual format on the side, or with
/// probability `other` (messy data only) another one.
fn push_phone(
    out: &mut String,
    side_bank: bool,
    person: u64,
    spec: &CampaignSpec,
    rng: &mut StdRng,
    other: f64,
) {
    let side = if side_bank { &BANK } else { &PARTNER };
    let variant = if !spec.messy {
        1
    } else if rng.random_bool(other) {
        (side.phone_variant(person, spec.seed) + rng.random_range(1..6)) % 6
    } else {
        side.phone_variant(person, spec.seed)
    };
    write_phone(out, &national_digits(person), variant);
}

fn is_test(person: u64, seed: u64) -> bool {
    mix(person ^ seed ^ GROUP_SALT) % 100 < TEST_PERCENT
}

/// Exponential delay in seconds with the given mean in hours, plus a minute.
fn delay(rng: &mut StdRng, mean_hours: f64) -> i64 {
    let u = 1.0 - rng.random::<f64>();
    60 + (-u.ln() * mean_hours * 3_600.0) as i64
}

/// A value in fen, log-uniform between two amounts in CNY.
fn log_uniform_fen(rng: &mut StdRng, lo: f64, hi: f64) -> u64 {
    let x = (lo.ln() + rng.random::<f64>() * (hi.ln() - lo.ln())).exp();
    (x * 100.0).round() as u64
}

fn draw_value(rng: &mut StdRng, kind: usize) -> u64 {
    match kind {
        0 => 0,
        1 => log_uniform_fen(rng, 10.0, 3_000.0),
        _ => log_uniform_fen(rng, 1_000.0, 300_000.0),
    }
}

/// Writes `partner_exposures.csv`, `bank_conversions.csv` and
/// `partner_groups.csv` into `out_dir` (created if missing).
pub fn generate_campaign(spec: &CampaignSpec, out_dir: &Path) -> Result<CampaignData> {
    let p = spec.people;
    if p.overlap > p.bank.min(p.partner) {
        bail!(
            "overlap {} exceeds the smaller side ({} bank, {} partner persons); choose overlap <= {}",
            p.overlap,
            p.bank,
            p.partner,
            p.bank.min(p.partner)
        );
    }
    if spec.windows == 0 {
        bail!("a campaign period needs at least 1 daily window");
    }
    // As in datagen: phones repeat beyond 10^9 persons.
    let persons = (p.bank + p.partner - p.overlap) as u64;
    if persons > 1_000_000_000 {
        bail!(
            "{persons} distinct persons requested, but only 10^9 distinct phone numbers exist; reduce the counts"
        );
    }
    std::fs::create_dir_all(out_dir).with_context(|| {
        format!(
            "cannot create output directory {}; check the path and its permissions",
            out_dir.display()
        )
    })?;
    let period_start = NOVEMBER_2026;
    let period_end = period_start + i64::from(spec.windows) * DAY;
    let mut rng = StdRng::seed_from_u64(mix(spec.seed ^ RNG_SALT));
    let mut truth = CampaignTruth {
        period_start,
        period_end,
        channel_effects: Vec::new(),
        campaign_multipliers: CAMPAIGNS
            .iter()
            .zip(CAMPAIGN_MIX)
            .map(|(c, (_, m))| (*c, m))
            .collect(),
        test_share: TEST_PERCENT as f64 / 100.0,
        exposures_by_channel: vec![0; CHANNELS.len()],
        caused_conversions: vec![0; CHANNELS.len()],
        ..CampaignTruth::default()
    };

    let groups_path = write_groups(spec, out_dir, &mut rng, &mut truth)?;
    let (exposures_path, caused) = write_exposures(spec, out_dir, &mut rng, &mut truth)?;
    let mut conversions = baseline(spec, caused, &mut rng, &mut truth);
    count_outcomes(spec, &conversions, &mut truth);
    let conversions_path = write_conversions(spec, out_dir, &mut conversions, &mut rng, &mut truth)?;
    Ok(CampaignData {
        exposures_path,
        conversions_path,
        groups_path,
        truth,
    })
}

/// One row per partner person (`mobile`, `campaign_group`), in person order.
fn write_groups(
    spec: &CampaignSpec,
    dir: &Path,
    rng: &mut StdRng,
    truth: &mut CampaignTruth,
) -> Result<PathBuf> {
    let mut out = CsvOut::create(dir.join(GROUPS_FILE), "mobile,campaign_group")?;
    let label = |person: u64| {
        if is_test(person, spec.seed) {
            "test"
        } else {
            "control"
        }
    };
    for k in 0..spec.people.partner as u64 {
        if spec.messy && k > 0 && rng.random_bool(0.03) {
            let earlier = spec.people.partner_person(rng.random_range(0..k));
            push_phone(&mut out.line, false, earlier, spec, rng, 1.0);
            let _ = write!(out.line, ",{}", label(earlier));
            out.end_row()?;
            truth.group_duplicate_rows += 1;
        }
        if spec.messy && rng.random_bool(0.01) {
            let bad = INVALID_PHONES[rng.random_range(0..INVALID_PHONES.len())];
            let group = if rng.random_bool(0.5) { "test" } else { "control" };
            let _ = write!(out.line, "{bad},{group}");
            out.end_row()?;
            truth.group_invalid_rows += 1;
        }
        let person = spec.people.partner_person(k);
        push_phone(&mut out.line, false, person, spec, rng, 0.0);
        let _ = write!(out.line, ",{}", label(person));
        out.end_row()?;
    }
    let (path, rows) = out.finish()?;
    truth.group_rows = rows;
    Ok(path)
}

/// Adds baseline conversions to the caused ones up to the requested count,
/// then the broken rows of messy data.
fn baseline(
    spec: &CampaignSpec,
    mut rows: Vec<Conversion>,
    rng: &mut StdRng,
    truth: &mut CampaignTruth,
) -> Vec<Conversion> {
    let (start, end) = (truth.period_start, truth.period_end);
    let bank = spec.people.bank as u64;
    let caused = rows.len();
    let wanted = if bank == 0 { caused } else { spec.conversions };
    while rows.len() < wanted {
        let kind = weighted(&[35, 35, 30], rng.random());
        let (person, ts) = match rows.last() {
            Some(last) if rows.len() > caused && rng.random_bool(TIE_RATE) => {
                truth.conversion_tied_rows += 1;
                (last.person, last.ts)
            }
            _ => {
                // Returning customers convert again at another time.
                let person = if !rows.is_empty() && rng.random_bool(0.15) {
                    rows[rng.random_range(0..rows.len())].person
                } else {
                    rng.random_range(0..bank)
                };
                let ts = if spec.messy && rng.random_bool(0.02) {
                    if rng.random_bool(0.5) {
                        rng.random_range(start - 5 * DAY..start)
                    } else {
                        rng.random_range(end..end + 5 * DAY)
                    }
                } else {
                    rng.random_range(start..end)
                };
                (person, ts)
            }
        };
        rows.push(Conversion {
            person,
            ts,
            kind,
            fen: draw_value(rng, kind),
            cause: None,
            broken: None,
        });
    }
    if spec.messy && bank > 0 {
        let n = rows.len();
        for i in 0..(n + 50) / 100 + (n + 100) / 200 {
            let broken = if i < (n + 50) / 100 {
                Broken::Phone(rng.random_range(0..INVALID_PHONES.len()))
            } else {
                Broken::Timestamp(rng.random_range(0..BAD_TIMESTAMPS.len()))
            };
            rows.push(Conversion {
                person: rng.random_range(0..bank),
                ts: rng.random_range(start..end),
                kind: 0,
                fen: 0,
                cause: None,
                broken: Some(broken),
            });
        }
    }
    rows
}

/// Fills in the truth's conversion counts, converters and lift.
fn count_outcomes(spec: &CampaignSpec, rows: &[Conversion], truth: &mut CampaignTruth) {
    let overlap = spec.people.overlap as u64;
    let mut converters = HashSet::new();
    for c in rows.iter().filter(|c| c.broken.is_none()) {
        if !(truth.period_start..truth.period_end).contains(&c.ts) {
            truth.conversions_outside_period += 1;
            continue;
        }
        match c.cause {
            Some(channel) => truth.caused_conversions[channel] += 1,
            None => truth.baseline_conversions += 1,
        }
        if c.person < overlap {
            converters.insert(c.person);
        }
    }
    for person in 0..overlap {
        let test = is_test(person, spec.seed);
        let converted = u64::from(converters.contains(&person));
        if test {
            truth.overlap_test += 1;
            truth.converters_test += converted;
        } else {
            truth.overlap_control += 1;
            truth.converters_control += converted;
        }
    }
    let rate = |c: u64, n: u64| if n == 0 { 0.0 } else { c as f64 / n as f64 };
    truth.lift_abs = rate(truth.converters_test, truth.overlap_test)
        - rate(truth.converters_control, truth.overlap_control);
}

fn write_conversions(
    spec: &CampaignSpec,
    dir: &Path,
    rows: &mut [Conversion],
    rng: &mut StdRng,
    truth: &mut CampaignTruth,
) -> Result<PathBuf> {
    // Caused conversions were drawn in exposure order, baseline ones after.
    rows.shuffle(rng);
    let mut out = CsvOut::create(dir.join(CONVERSIONS_FILE), "phone,ts,type,value")?;
    for c in rows.iter() {
        match c.broken {
            Some(Broken::Phone(i)) => {
                let _ = write!(out.line, "{},", INVALID_PHONES[i]);
                timestamp::write_utc(&mut out.line, c.ts);
            }
            Some(Broken::Timestamp(i)) => {
                push_phone(&mut out.line, true, c.person, spec, rng, 0.1);
                let _ = write!(out.line, ",{}", BAD_TIMESTAMPS[i]);
            }
            None => {
                push_phone(&mut out.line, true, c.person, spec, rng, 0.1);
                out.line.push(',');
                timestamp::write_utc(&mut out.line, c.ts);
            }
        }
        let _ = write!(out.line, ",{},", CONVERSION_TYPES[c.kind]);
        if c.broken.is_none() && spec.messy && rng.random_bool(0.01) {
            out.line
                .push_str(BAD_VALUES[rng.random_range(0..BAD_VALUES.len())]);
            truth.conversion_bad_values += u64::from((truth.period_start..truth.period_end).contains(&c.ts));
        } else {
            let _ = write!(out.line, "{}.{:02}", c.fen / 100, c.fen % 100);
        }
        out.end_row()?;
    }
    truth.conversion_invalid_rows = rows.iter().filter(|c| c.broken.is_some()).count() as u64;
    let (path, n) = out.finish()?;
    truth.conversion_rows = n;
    Ok(path)
}

#[cfg(test)]
#[path = "campaign_data_tests.rs"]
mod tests;
