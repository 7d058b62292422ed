//! Attribution credits: how one conversion element's 1000 milli-conversions
//! are shared among the exposures that preceded its window
//! (`examples/ATTRIBUTION.md`, "Credits").
//!
//! Every model is a list of non-negative integer weights, one per touch, and
//! one exact largest-remainder rounding turns weights into credits. Only the
//! time-decay weights touch floating point, once each, and are then fixed to
//! integers, so whoever computes credits for the same touches gets the same
//! integers.

use std::fmt;

/// The credit one attributed conversion element hands out.
pub const CREDITS_PER_ELEMENT: u32 = 1000;

/// Time-decay weights are fixed point with this scale: the newest touch
/// weighs exactly 2^32.
pub const TIME_DECAY_SCALE: f64 = 4_294_967_296.0;

const SECONDS_PER_DAY: i64 = 86_400;

/// How credit is shared among an element's touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Model {
    /// All credit to the last touch.
    LastTouch,
    /// All credit to the first touch.
    FirstTouch,
    /// Equal shares.
    Linear,
    /// A touch's weight halves every `half_life_days` before the window start.
    TimeDecay { half_life_days: u32 },
    /// 40% to the first touch, 40% to the last, 20% shared by those between.
    PositionBased,
}

impl Model {
    /// The half life of [`Model::TimeDecay`] when none is given.
    pub const DEFAULT_HALF_LIFE_DAYS: u32 = 7;

    /// The name used in configurations and reports.
    pub fn label(self) -> &'static str {
        match self {
            Model::LastTouch => "last_touch",
            Model::FirstTouch => "first_touch",
            Model::Linear => "linear",
            Model::TimeDecay { .. } => "time_decay",
            Model::PositionBased => "position_based",
        }
    }

    /// Parses a label; time decay takes the default half life.
    pub fn from_label(label: &str) -> Option<Model> {
        Some(match label {
            "last_touch" => Model::LastTouch,
            "first_touch" => Model::FirstTouch,
            "linear" => Model::Linear,
            "time_decay" => Model::TimeDecay {
                half_life_days: Self::DEFAULT_HALF_LIFE_DAYS,
            },
            "position_based" => Model::PositionBased,
            _ => return None,
        })
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Model::TimeDecay { half_life_days } => write!(f, "time_decay({half_life_days}d)"),
            other => f.write_str(other.label()),
        }
    }
}

/// The length of the conversion windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// A UTC calendar day.
    Day,
    Hour,
}

impl Window {
    pub fn seconds(self) -> i64 {
        match self {
            Window::Day => SECONDS_PER_DAY,
            Window::Hour => 3_600,
        }
    }
}

/// Why credits cannot be computed. Messages carry positions, never times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CreditError {
    /// A half life of zero days has no meaning.
    #[error("the time-decay half life must be at least 1 day")]
    ZeroHalfLife,
    /// Only touches strictly before the window start may be credited.
    #[error("touch {index} is not before the start of the conversion's window")]
    TouchNotBeforeWindow { index: usize },
    /// Touches must come in attribution order, oldest first.
    #[error("touch {index} is older than the touch before it; order touches by (ts, channel, campaign)")]
    TouchesOutOfOrder { index: usize },
}

/// The credits of one element's touches, in touch order, summing to
/// [`CREDITS_PER_ELEMENT`]; empty when there is no touch.
///
/// `touches` are the touch times in Unix seconds, already in attribution
/// order (by time, then channel name, then campaign name) and all before
/// `window_start`; selecting them from the lookback is the caller's part.
pub fn credits(model: Model, window_start: i64, touches: &[i64]) -> Result<Vec<u32>, CreditError> {
    if let Model::TimeDecay { half_life_days: 0 } = model {
        return Err(CreditError::ZeroHalfLife);
    }
    for (index, pair) in touches.windows(2).enumerate() {
        if pair[1] < pair[0] {
            return Err(CreditError::TouchesOutOfOrder { index: index + 1 });
        }
    }
    if let Some(index) = touches.iter().position(|&t| t >= window_start) {
        return Err(CreditError::TouchNotBeforeWindow { index });
    }
    let n = touches.len();
    let mut out = vec![0; n];
    match (model, n) {
        (_, 0) => {}
        (Model::LastTouch, _) => out[n - 1] = CREDITS_PER_ELEMENT,
        (Model::FirstTouch, _) => out[0] = CREDITS_PER_ELEMENT,
        (Model::Linear, _) => largest_remainder(&vec![1; n], &mut out),
        (Model::PositionBased, 1 | 2) => largest_remainder(&vec![1; n], &mut out),
        (Model::PositionBased, _) => {
            // 0.4 and 0.2/(n-2) over the common denominator 5(n-2).
            let ends = 2 * (n as u64 - 2);
            let mut weights = vec![1; n];
            weights[0] = ends;
            weights[n - 1] = ends;
            largest_remainder(&weights, &mut out);
        }
        (Model::TimeDecay { half_life_days }, _) => {
            largest_remainder(&time_decay_weights(half_life_days, touches), &mut out);
        }
    }
    Ok(out)
}

/// `round(2^32 · 2^(−(t_newest − t_i) / half life))`: the weight
/// 2^(−(window_start − t_i) / half life) divided by the newest touch's, which
/// leaves the shares unchanged and keeps the newest weight at 2^32 however
/// old the touches are, so the total is never zero.
fn time_decay_weights(half_life_days: u32, touches: &[i64]) -> Vec<u64> {
    let half_life = f64::from(half_life_days) * SECONDS_PER_DAY as f64;
    let newest = touches.iter().copied().max().unwrap_or_default();
    touches
        .iter()
        .map(|&t| {
            let age = newest.abs_diff(t) as f64;
            // In [0, 2^32]: the cast neither truncates nor saturates.
            ((-age / half_life).exp2() * TIME_DECAY_SCALE).round() as u64
        })
        .collect()
}

/// Shares [`CREDITS_PER_ELEMENT`] in proportion to `weights` (not all zero):
/// each touch gets the floor of its exact share, and the units left go one
/// each to the largest remainders, the earlier touch first on equal ones.
fn largest_remainder(weights: &[u64], out: &mut [u32]) {
    let total: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    let mut remainders = Vec::with_capacity(weights.len());
    let mut given = 0;
    for (i, (&w, credit)) in weights.iter().zip(out.iter_mut()).enumerate() {
        let scaled = u128::from(w) * u128::from(CREDITS_PER_ELEMENT);
        // A share of at most the whole: fits u32.
        *credit = (scaled / total) as u32;
        given += *credit;
        // Remainders over one common total compare as the fractions do.
        remainders.push((scaled % total, i));
    }
    remainders.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    // Fewer units are left than there are touches: each floor loses less than one.
    for &(_, i) in remainders.iter().take((CREDITS_PER_ELEMENT - given) as usize) {
        out[i] += 1;
    }
}

#[cfg(test)]
#[path = "attribution_model_tests.rs"]
mod tests;
