//! Privacy accounting: the one place where a privacy cost is computed, added
//! up and converted. Nothing else in the workspace does arithmetic on ε, δ or
//! ρ.
//!
//! # Design
//!
//! Each node adds its own discrete Gaussian share ([`crate::privacy::noise`]) to every
//! number it helps release, sized so that its share alone gives the query's
//! guarantee. A node never counts on its peer's noise: the peer may be the
//! party trying to learn something, knows its own share, and could add none.
//! The price is a released value carrying twice the variance needed, error
//! bars √2 wider than a trusted single share would give.
//!
//! Costs are kept in zero-concentrated DP (zCDP, Bun and Steinke, TCC 2016),
//! where composition is addition: [`Rho`] implements `Add` and `Sum`. An
//! integer-valued query of L2 sensitivity Δ answered with discrete Gaussian
//! noise of variance σ² is Δ²/(2σ²)-zCDP (Canonne, Kamath and Steinke 2020,
//! Theorem 4; the same as the continuous Gaussian). Only the total ρ is turned
//! into (ε, δ), with CKS 2020 Corollary 13, which is tighter than Bun and
//! Steinke's ρ + 2√(ρ·ln(1/δ)).
//!
//! Floating point is fine here: nothing is sampled from these numbers. Where
//! rounding could matter, results lean towards privacy: ρ and σ² are rounded
//! up, and [`rho_for_epsilon`] returns a ρ whose computed ε is at most the
//! target.

use std::{iter::Sum, ops::Add};

/// Why a privacy parameter is rejected. Each message names the parameter.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AccountingError {
    /// ε must be finite and positive.
    #[error("epsilon must be a finite number above 0, got {value}")]
    Epsilon { value: f64 },
    /// δ must lie strictly between 0 and 1.
    #[error("delta must be strictly between 0 and 1, got {value}")]
    Delta { value: f64 },
    /// ρ must be non-negative and not NaN.
    #[error("rho must be a number of at least 0, got {value}")]
    Rho { value: f64 },
    /// Sizing noise needs a finite, positive ρ.
    #[error("rho must be a finite number above 0 to size noise for it, got {value}")]
    RhoForNoise { value: f64 },
    /// The squared L2 sensitivity must be finite and positive.
    #[error("the squared L2 sensitivity must be a finite number above 0, got {value}")]
    Sensitivity { value: f64 },
    /// σ² must be finite and positive.
    #[error("the noise variance must be a finite number above 0, got {value}")]
    Variance { value: f64 },
}

/// A zCDP cost ρ: never negative or NaN. A sum of many may overflow to
/// infinity, which converts to ε = ∞, a true if useless statement.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
pub struct Rho(f64);

impl Rho {
    pub const ZERO: Rho = Rho(0.0);

    pub fn new(value: f64) -> Result<Self, AccountingError> {
        if value >= 0.0 {
            Ok(Rho(value))
        } else {
            Err(AccountingError::Rho { value })
        }
    }

    pub fn value(self) -> f64 {
        self.0
    }
}

impl Add for Rho {
    type Output = Rho;

    fn add(self, other: Rho) -> Rho {
        Rho(self.0 + other.0)
    }
}

impl Sum for Rho {
    fn sum<I: Iterator<Item = Rho>>(iter: I) -> Rho {
        iter.fold(Rho::ZERO, Add::add)
    }
}

/// ε, if finite and positive.
pub fn check_epsilon(epsilon: f64) -> Result<f64, AccountingError> {
    if epsilon.is_finite() && epsilon > 0.0 {
        Ok(epsilon)
    } else {
        Err(AccountingError::Epsilon { value: epsilon })
    }
}

/// δ, if strictly between 0 and 1.
pub fn check_delta(delta: f64) -> Result<f64, AccountingError> {
    if delta > 0.0 && delta < 1.0 {
        Ok(delta)
    } else {
        Err(AccountingError::Delta { value: delta })
    }
}

fn check_positive(value: f64, error: fn(f64) -> AccountingError) -> Result<f64, AccountingError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(error(value))
    }
}

/// ρ = Δ²/(2σ²) of one discrete Gaussian share, rounded up.
pub fn discrete_gaussian_rho(sensitivity_l2_squared: f64, variance: f64) -> Result<Rho, AccountingError> {
    let s = check_positive(sensitivity_l2_squared, |value| AccountingError::Sensitivity {
        value,
    })?;
    let v = check_positive(variance, |value| AccountingError::Variance { value })?;
    // The quotient is correctly rounded, so one step up is at least the exact value.
    Rho::new((s / (2.0 * v)).next_up())
}

/// σ² = Δ²/(2ρ), the variance at which one share costs ρ, rounded up.
pub fn variance_for(rho: Rho, sensitivity_l2_squared: f64) -> Result<f64, AccountingError> {
    let r = check_positive(rho.0, |value| AccountingError::RhoForNoise { value })?;
    let s = check_positive(sensitivity_l2_squared, |value| AccountingError::Sensitivity {
        value,
    })?;
    // As in discrete_gaussian_rho: one step up is at least the exact value.
    Ok((s / (2.0 * r)).next_up())
}

/// ε such that ρ-zCDP implies (ε, δ)-DP, by CKS 2020 Corollary 13:
/// δ = exp((α−1)(αρ−ε))/(α−1)·(1−1/α)^α for every α > 1, that is
/// ε(α) = αρ + (α·ln(1−1/α) − ln(α−1) − ln δ)/(α−1), minimized over α.
///
/// Every α gives a valid ε, so an imprecise minimum only costs tightness.
pub fn epsilon_for(rho: Rho, delta: f64) -> Result<f64, AccountingError> {
    let delta = check_delta(delta)?;
    Ok(epsilon_unchecked(rho.0, -delta.ln()))
}

/// Bun and Steinke 2016, Proposition 1.3: ε = ρ + 2√(ρ·ln(1/δ)). Looser than
/// [`epsilon_for`]; kept as a cross-check.
pub fn epsilon_bun_steinke(rho: Rho, delta: f64) -> Result<f64, AccountingError> {
    let delta = check_delta(delta)?;
    Ok(rho.0 + 2.0 * (rho.0 * -delta.ln()).sqrt())
}

/// The largest ρ (to about 1e−13 relative) whose [`epsilon_for`] is at most
/// `epsilon`. The answer is always on the side of less ρ, more privacy.
pub fn rho_for_epsilon(epsilon: f64, delta: f64) -> Result<Rho, AccountingError> {
    let epsilon = check_epsilon(epsilon)?;
    let ln_inv_delta = -check_delta(delta)?.ln();
    let fits = |rho: f64| epsilon_unchecked(rho, ln_inv_delta) <= epsilon;
    let mut high = epsilon;
    while fits(high) {
        high *= 2.0;
    }
    // Invariant: fits(low), !fits(high).
    let mut low = 0.0;
    while high - low > 1e-13 * high {
        let mid = 0.5 * (low + high);
        if fits(mid) {
            low = mid;
        } else {
            high = mid;
        }
    }
    Rho::new(low)
}

/// ε(α) minimized by golden-section search on x = ln(α−1), where ε is
/// unimodal. The bracket α−1 ∈ [1e−9, 1e15] holds the optimum, about
/// 1 + √(ln(1/δ)/ρ), for ρ from 1e−28 to 1e18; outside it the answer is
/// still valid, only looser.
fn epsilon_unchecked(rho: f64, ln_inv_delta: f64) -> f64 {
    if rho == 0.0 {
        return 0.0;
    }
    if rho.is_infinite() {
        return f64::INFINITY;
    }
    let at = |x: f64| {
        let alpha_minus_one = x.exp();
        let alpha = 1.0 + alpha_minus_one;
        alpha * rho + (alpha * (-1.0 / alpha).ln_1p() - x + ln_inv_delta) / alpha_minus_one
    };
    let inv_phi = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (1e-9f64.ln(), 1e15f64.ln());
    let mut c = b - inv_phi * (b - a);
    let mut d = a + inv_phi * (b - a);
    let (mut fc, mut fd) = (at(c), at(d));
    while b - a > 1e-10 {
        if fc < fd {
            (b, d, fd) = (d, c, fc);
            c = b - inv_phi * (b - a);
            fc = at(c);
        } else {
            (a, c, fc) = (c, d, fd);
            d = a + inv_phi * (b - a);
            fd = at(d);
        }
    }
    // An ε below 0 still implies (0, δ)-DP, and 0 is the meaningful floor.
    fc.min(fd).max(0.0)
}

/// Per cover count, the largest probability its truncation may cut: 2^-100.
///
/// A node hides its list sizes, and a sender the receiver's match counts,
/// with counts `offset + Z`, Z ~ N_Z(0, σ²) conditioned on |Z| ≤ offset, so
/// that a count is never negative and a batch's dummies fit a public number
/// of points (README, "Leakage"). Conditioning moves each count's law by
/// P(|Z| > offset) in total variation, so a query with k such counts is
/// (ε, δ + (1 + e^ε)·k·2^-100)-DP where the untruncated one is (ε, δ): see
/// [`truncation_delta`].
pub const COVER_TAIL: f64 = 7.888_609_052_210_118e-31;

/// The offset of a cover count drawn with variance σ²: the smallest integer
/// m with 2·exp(−m²/(2σ²)) ≤ [`COVER_TAIL`], about 11.8σ.
///
/// For Z ~ N_Z(0, σ²) with normaliser S = Σ_k exp(−k²/(2σ²)):
/// P(|Z| > m) = 2·Σ_{k>m} exp(−k²/(2σ²))/S ≤ 2·∫_m^∞ exp(−x²/(2σ²))dx/S
/// ≤ σ·√(2π)·exp(−m²/(2σ²))/S, and S ≥ max(1, σ·√(2π) − 1) (a sum over
/// the integers of a unimodal function is within its peak of its integral),
/// so σ·√(2π)/S ≤ 2 and P(|Z| > m) ≤ 2·exp(−m²/(2σ²)).
pub fn cover_offset(variance: f64) -> Result<u64, AccountingError> {
    let v = check_positive(variance, |value| AccountingError::Variance { value })?;
    let m = (2.0 * v * (2.0 / COVER_TAIL).ln()).sqrt().ceil();
    // One more than the float gives, so rounding can only add margin.
    Ok(m as u64 + 1)
}

/// What truncating `counts` cover counts adds to δ for a query stated at ε.
pub fn truncation_delta(counts: usize, epsilon: f64) -> f64 {
    (1.0 + epsilon.exp()) * counts as f64 * COVER_TAIL
}

#[cfg(test)]
#[path = "accounting_tests.rs"]
mod tests;
