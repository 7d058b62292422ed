//! The partner's exposure rows: drawn per test-group person, streamed to disk,
//! with the conversions they cause handed back.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use rand::Rng;
use rand::rngs::StdRng;

use crate::datagen::{INVALID_PHONES, weighted};
use crate::timestamp;

use super::{
    BAD_TIMESTAMPS, CAMPAIGN_MIX, CAMPAIGNS, CAUSED_SHARE, CHANNELS, CampaignSpec, CampaignTruth,
    ChannelEffect, Conversion, CsvOut, DAY, EFFECTS, EXPOSURES_FILE, PRE_PERIOD_DAYS, TIE_RATE,
    UNKNOWN_CHANNELS, delay, draw_value, is_test, push_phone,
};

/// One exposure to be written.
#[derive(Clone, Copy)]
pub(super) struct Exposure {
    person: u64,
    ts: i64,
    channel: usize,
    campaign: usize,
}

/// Streams the exposures of test-group persons; returns the conversions
/// they caused.
pub(super) fn write_exposures(
    spec: &CampaignSpec,
    dir: &Path,
    rng: &mut StdRng,
    truth: &mut CampaignTruth,
) -> Result<(PathBuf, Vec<Conversion>)> {
    let mut out = CsvOut::create(dir.join(EXPOSURES_FILE), "mobile,channel,campaign,ts")?;
    let test: Vec<u64> = (0..spec.people.partner as u64)
        .map(|k| spec.people.partner_person(k))
        .filter(|&person| is_test(person, spec.seed))
        .collect();
    let customers = test.iter().filter(|&&p| p < spec.people.overlap as u64).count();
    let channel_weights = EFFECTS.map(|(share, _, _)| share);
    let campaign_weights = CAMPAIGN_MIX.map(|(share, _)| share);
    // Scale relative effects so caused conversions come to about
    // CAUSED_SHARE of all conversions.
    let share = |w: u32, all: &[u32]| f64::from(w) / f64::from(all.iter().sum::<u32>());
    let mean_effect: f64 = EFFECTS
        .iter()
        .map(|e| share(e.0, &channel_weights) * e.1)
        .sum::<f64>()
        * CAMPAIGN_MIX
            .iter()
            .map(|c| share(c.0, &campaign_weights) * c.1)
            .sum::<f64>();
    let expected = spec.exposures as f64 * customers as f64 / test.len().max(1) as f64 * mean_effect;
    let scale = if expected > 0.0 {
        CAUSED_SHARE * spec.conversions as f64 / expected
    } else {
        0.0
    };
    truth.channel_effects = CHANNELS
        .iter()
        .zip(EFFECTS)
        .map(|(&channel, (s, effect, mean_delay_hours))| ChannelEffect {
            channel,
            exposure_share: share(s, &channel_weights),
            conversion_probability: (effect * scale).min(1.0),
            mean_delay_hours,
        })
        .collect();

    let (start, end) = (truth.period_start - PRE_PERIOD_DAYS * DAY, truth.period_end);
    let mut caused = Vec::new();
    let mut previous: Option<Exposure> = None;
    let count = if test.is_empty() { 0 } else { spec.exposures };
    for _ in 0..count {
        let channel = weighted(&channel_weights, rng.random());
        let campaign = weighted(&campaign_weights, rng.random());
        let e = match previous {
            Some(p) if rng.random_bool(TIE_RATE) => {
                truth.exposure_tied_rows += 1;
                Exposure {
                    channel,
                    campaign,
                    ..p
                }
            }
            _ => {
                let mut ts = rng.random_range(start..end);
                // Some exposures sit exactly on a window boundary.
                if rng.random_bool(0.01) {
                    ts -= ts.rem_euclid(DAY);
                }
                Exposure {
                    person: test[rng.random_range(0..test.len())],
                    ts,
                    channel,
                    campaign,
                }
            }
        };
        write_exposure(&mut out, spec, rng, &e)?;
        truth.exposures_by_channel[channel] += 1;
        previous = Some(e);
        let probability = (EFFECTS[channel].1 * CAMPAIGN_MIX[campaign].1 * scale).min(1.0);
        if e.person < spec.people.overlap as u64
            && caused.len() < spec.conversions
            && rng.random_bool(probability)
        {
            let kind = weighted(&[35, 35, 30], rng.random());
            caused.push(Conversion {
                person: e.person,
                ts: e.ts + delay(rng, EFFECTS[channel].2),
                kind,
                fen: draw_value(rng, kind),
                cause: Some(channel),
                broken: None,
            });
        }
        if spec.messy && rng.random_bool(0.02) {
            write_exposure(&mut out, spec, rng, &e)?;
            truth.exposure_duplicate_rows += 1;
        }
        if spec.messy && rng.random_bool(0.01) {
            write_broken_exposure(&mut out, spec, rng, &e)?;
            truth.exposure_invalid_rows += 1;
        }
    }
    let (path, rows) = out.finish()?;
    truth.exposure_rows = rows;
    Ok((path, caused))
}

fn write_exposure(out: &mut CsvOut, spec: &CampaignSpec, rng: &mut StdRng, e: &Exposure) -> Result<()> {
    push_phone(&mut out.line, false, e.person, spec, rng, 0.05);
    let _ = write!(out.line, ",{},{},", CHANNELS[e.channel], CAMPAIGNS[e.campaign]);
    timestamp::write_utc(&mut out.line, e.ts);
    out.end_row()
}

/// A row the semantics drop: invalid phone, bad timestamp or unknown channel.
fn write_broken_exposure(
    out: &mut CsvOut,
    spec: &CampaignSpec,
    rng: &mut StdRng,
    e: &Exposure,
) -> Result<()> {
    let campaign = CAMPAIGNS[e.campaign];
    match rng.random_range(0..3) {
        0 => {
            let bad = INVALID_PHONES[rng.random_range(0..INVALID_PHONES.len())];
            let _ = write!(out.line, "{bad},{},{campaign},", CHANNELS[e.channel]);
            timestamp::write_utc(&mut out.line, e.ts);
        }
        1 => {
            push_phone(&mut out.line, false, e.person, spec, rng, 0.05);
            let bad = BAD_TIMESTAMPS[rng.random_range(0..BAD_TIMESTAMPS.len())];
            let _ = write!(out.line, ",{},{campaign},{bad}", CHANNELS[e.channel]);
        }
        _ => {
            push_phone(&mut out.line, false, e.person, spec, rng, 0.05);
            let channel = UNKNOWN_CHANNELS[rng.random_range(0..UNKNOWN_CHANNELS.len())];
            let _ = write!(out.line, ",{channel},{campaign},");
            timestamp::write_utc(&mut out.line, e.ts);
        }
    }
    out.end_row()
}
