//! Exact sampling of the noise added to released numbers: the discrete
//! Gaussian N_Z(0, σ²), after Canonne, Kamath and Steinke, "The Discrete
//! Gaussian for Differential Privacy" (NeurIPS 2020), Algorithms 1 to 3.
//!
//! The sampling path uses only integers: exact rationals compared against
//! uniform integers. Floating-point samplers leak the true value through their
//! rounding pattern (Mironov, CCS 2012), and the zCDP cost computed in
//! [`crate::privacy::accounting`] holds for the exact distribution only.
//!
//! One departure from Algorithm 3. It proposes from a discrete Laplace of scale
//! ⌊σ⌋+1, which puts 2p·q·(⌊σ⌋+1)² (for σ² = p/q) in the denominator of the
//! acceptance exponent: at σ = 2^36 that is over 2^144, beyond u128. The
//! algorithm is correct for any proposal scale τ, because its acceptance
//! probability exp(−(|y| − σ²/τ)²/(2σ²)) is the target over the proposal times
//! a constant whatever τ is. This module takes τ = σ²/⌊σ⌋, between σ and 2σ,
//! so that the centre σ²/τ = ⌊σ⌋ is an integer and the exponent
//! (|y| − ⌊σ⌋)²·q/(2p) has denominator 2p. Below σ = 1 it keeps τ = 1, as
//! Algorithm 3 does there.
//!
//! Bounds: [`Variance`] holds σ² ≤ 2^80 (σ ≤ 2^40) with a denominator of at
//! most 2^20, so p ≤ 2^100. A product can then overflow u128, or a sample leave
//! i64, only in a tail of probability below e^(−2^22); such a draw is rejected
//! and drawn again, which moves the output distribution by less than e^(−2^21)
//! in total variation (each such place says which tail it cuts).
//!
//! Running time depends on the sample drawn, so the time taken hints at the
//! noise's magnitude: callers should draw noise before talking to the peer,
//! not while the peer can time them.

use std::num::NonZeroU32;

use rand::{CryptoRng, RngCore};

/// Largest accepted denominator of σ². It keeps q·⌊σ⌋ and 2p·q below u128 for
/// every accepted σ².
pub const MAX_VARIANCE_DEN: u64 = 1 << 20;

/// σ² may be at most 2^MAX_VARIANCE_LOG2 (σ at most 2^40).
pub const MAX_VARIANCE_LOG2: u32 = 80;

/// The grid on which [`Variance::at_least`] rounds: fine enough that rounding
/// up costs at most 1/1024 of variance, coarse enough to stay exact.
const AT_LEAST_DEN: u64 = 1024;

/// Why a variance cannot be used for sampling.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum NoiseError {
    /// σ² = 0 would release the exact value.
    #[error("the noise variance must be positive, got 0")]
    ZeroVariance,
    /// A rational with denominator 0.
    #[error("the noise variance {num}/0 has a zero denominator")]
    ZeroDenominator { num: u128 },
    /// A denominator the sampler's u128 arithmetic does not cover.
    #[error("the noise variance {num}/{den} has a denominator above the limit of 2^20")]
    DenominatorTooLarge { num: u128, den: u64 },
    /// σ² above 2^80.
    #[error("the noise variance {num}/{den} is above the limit of 2^80")]
    VarianceTooLarge { num: u128, den: u64 },
    /// A floating-point variance that is NaN, infinite, zero or negative.
    #[error("the noise variance must be a finite positive number, got {value}")]
    NotPositive { value: f64 },
    /// A floating-point variance above 2^80.
    #[error("the noise variance {value} is above the limit of 2^80")]
    FloatTooLarge { value: f64 },
}

/// σ² as an exact, reduced rational num/den, within the bounds above.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Variance {
    num: u128,
    den: u64,
}

impl Variance {
    /// σ² = num/den, reduced to lowest terms so that equal variances compare
    /// equal.
    pub fn new(num: u128, den: u64) -> Result<Self, NoiseError> {
        if num == 0 {
            return Err(NoiseError::ZeroVariance);
        }
        if den == 0 {
            return Err(NoiseError::ZeroDenominator { num });
        }
        if den > MAX_VARIANCE_DEN {
            return Err(NoiseError::DenominatorTooLarge { num, den });
        }
        // den ≤ 2^20, so the shift cannot overflow.
        if num > u128::from(den) << MAX_VARIANCE_LOG2 {
            return Err(NoiseError::VarianceTooLarge { num, den });
        }
        let g = gcd(num, u128::from(den));
        Ok(Self {
            num: num / g,
            // g divides den, so the quotient fits where den did.
            den: (u128::from(den) / g) as u64,
        })
    }

    /// The smallest multiple of 1/1024 that is at least `sigma2`. Rounding up
    /// only adds noise, so the privacy computed for `sigma2` still holds.
    pub fn at_least(sigma2: f64) -> Result<Self, NoiseError> {
        if !(sigma2.is_finite() && sigma2 > 0.0) {
            return Err(NoiseError::NotPositive { value: sigma2 });
        }
        if sigma2 > f64::from(MAX_VARIANCE_LOG2).exp2() {
            return Err(NoiseError::FloatTooLarge { value: sigma2 });
        }
        // Scaling by a power of two and taking the ceiling are both exact in
        // f64, and the result (at most 2^90) converts to u128 exactly.
        let scaled = (sigma2 * AT_LEAST_DEN as f64).ceil();
        Self::new(scaled as u128, AT_LEAST_DEN)
    }

    /// σ² to the nearest f64, for display and accounting; never for sampling.
    pub fn as_f64(&self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// Numerator of σ² in lowest terms.
    pub fn num(&self) -> u128 {
        self.num
    }

    /// Denominator of σ² in lowest terms.
    pub fn den(&self) -> u64 {
        self.den
    }
}

/// One draw from the discrete Gaussian N_Z(0, σ²): P(x) ∝ exp(−x²/(2σ²)).
pub fn sample_discrete_gaussian<R: RngCore + CryptoRng + ?Sized>(variance: &Variance, rng: &mut R) -> i64 {
    let proposal = Proposal::new(variance);
    loop {
        let y = laplace(proposal.scale_num, proposal.scale_den, rng);
        if let Some((num, den)) = proposal.exponent(y)
            && bernoulli_exp_neg(num, den, rng)
        {
            return y;
        }
    }
}

/// One cover count: `offset + Z` for Z ~ N_Z(0, σ²) conditioned on
/// |Z| ≤ offset (drawn again until it is), so the count lies in
/// `0..=2*offset`. [`crate::privacy::accounting::cover_offset`] picks offsets whose
/// cut tail is below 2^-100, so the loop almost never runs twice.
pub fn sample_cover<R: RngCore + CryptoRng + ?Sized>(variance: &Variance, offset: u64, rng: &mut R) -> u64 {
    loop {
        let z = sample_discrete_gaussian(variance, rng);
        if z.unsigned_abs() <= offset {
            return offset.saturating_add_signed(z);
        }
    }
}

/// One draw from the discrete Laplace of integer scale t: P(x) ∝ exp(−|x|/t).
/// Scales up to 2^32 keep samples within i64 but for a tail below e^(−2^31).
pub fn sample_discrete_laplace<R: RngCore + CryptoRng + ?Sized>(scale: NonZeroU32, rng: &mut R) -> i64 {
    laplace(u128::from(scale.get()), 1, rng)
}

/// The Laplace proposal of Algorithm 3 for one σ² = p/q, and the pieces of its
/// acceptance exponent γ(y) = (|y|·centre_den − centre_num)²·weight / gamma_den,
/// which is (|y| − σ²/τ)²/(2σ²) written over integers.
#[derive(Debug)]
struct Proposal {
    scale_num: u128,
    scale_den: u128,
    centre_num: u128,
    centre_den: u128,
    weight: u128,
    gamma_den: u128,
}

impl Proposal {
    fn new(variance: &Variance) -> Self {
        let (p, q) = (variance.num, u128::from(variance.den));
        if p >= q {
            // ⌊σ⌋ = ⌊√⌊p/q⌋⌋ since flooring inside a square root does not
            // change the floor of the result. With p ≤ 2^100 and q ≤ 2^20:
            // q·⌊σ⌋ ≤ 2^60 and 2p ≤ 2^101.
            let floor_sigma = (p / q).isqrt();
            Self {
                scale_num: p,
                scale_den: q * floor_sigma,
                centre_num: floor_sigma,
                centre_den: 1,
                weight: q,
                gamma_den: 2 * p,
            }
        } else {
            // τ = 1, centre σ² = p/q: γ = (|y|·q − p)²/(2pq), with 2pq < 2^41.
            Self {
                scale_num: 1,
                scale_den: 1,
                centre_num: p,
                centre_den: q,
                weight: 1,
                gamma_den: 2 * p * q,
            }
        }
    }

    /// γ(y) as (numerator, denominator), or None when the numerator overflows.
    /// Overflow needs a numerator above 2^128 over a denominator of at most
    /// 2^101, so γ > 2^26 and the draw would be accepted with probability
    /// below e^(−2^26): rejecting it instead is a negligible change.
    fn exponent(&self, y: i64) -> Option<(u128, u128)> {
        let scaled = u128::from(y.unsigned_abs()).checked_mul(self.centre_den)?;
        let distance = scaled.abs_diff(self.centre_num);
        let num = distance.checked_mul(distance)?.checked_mul(self.weight)?;
        Some((num, self.gamma_den))
    }
}

/// Discrete Laplace of scale t/s (Algorithm 2): P(x) ∝ exp(−|x|·s/t).
///
/// X = U + t·V is geometric with P(X = x) ∝ exp(−x/t) and ⌊X/s⌋ is geometric
/// with ratio exp(−s/t); a random sign, rejecting −0, makes it two-sided. A
/// draw with t·V above u128 (V > 2^26 for t ≤ 2^101, probability e^(−2^26))
/// or a magnitude above i64 (for scales up to 2^41, probability below
/// e^(−2^22)) is rejected and drawn again.
fn laplace<R: RngCore + ?Sized>(t: u128, s: u128, rng: &mut R) -> i64 {
    loop {
        let u = uniform_below(t, rng);
        if !bernoulli_exp_neg_at_most_one(u, t, rng) {
            continue;
        }
        let mut v: u128 = 0;
        while bernoulli_exp_neg_at_most_one(1, 1, rng) {
            v += 1;
        }
        let Some(x) = t.checked_mul(v).and_then(|tv| tv.checked_add(u)) else {
            continue;
        };
        let Ok(magnitude) = i64::try_from(x / s) else {
            continue;
        };
        let negative = uniform_below(2, rng) == 1;
        if negative && magnitude == 0 {
            continue;
        }
        return if negative { -magnitude } else { magnitude };
    }
}

/// Bernoulli(exp(−num/den)) for any num/den ≥ 0 (Algorithm 1). The whole part
/// is ⌊γ⌋ independent Bernoulli(e^−1) trials; stopping at the first failure
/// keeps the expected work below 2 trials however large γ is.
fn bernoulli_exp_neg<R: RngCore + ?Sized>(num: u128, den: u128, rng: &mut R) -> bool {
    let (whole, fraction) = (num / den, num % den);
    (0..whole).all(|_| bernoulli_exp_neg_at_most_one(1, 1, rng))
        && bernoulli_exp_neg_at_most_one(fraction, den, rng)
}

/// Bernoulli(exp(−γ)) for γ = num/den in [0, 1]: K counts successes of
/// Bernoulli(γ/k) for k = 1, 2, ..., so P(K ≥ k) = γ^k/k!, and
/// P(K even) = Σ (−γ)^k/k! = e^(−γ).
///
/// Bernoulli(γ/k) is drawn as Bernoulli(γ) and Bernoulli(1/k), independent,
/// so no denominator is ever multiplied by k.
fn bernoulli_exp_neg_at_most_one<R: RngCore + ?Sized>(num: u128, den: u128, rng: &mut R) -> bool {
    debug_assert!(num <= den && den > 0);
    let mut successes: u128 = 0;
    while bernoulli(num, den, rng) && bernoulli(1, successes + 1, rng) {
        successes += 1;
    }
    successes.is_multiple_of(2)
}

/// Bernoulli(num/den) for num ≤ den, den > 0.
fn bernoulli<R: RngCore + ?Sized>(num: u128, den: u128, rng: &mut R) -> bool {
    uniform_below(den, rng) < num
}

/// Uniform on [0, bound), bound > 0. Masking to the bit length of bound − 1
/// and rejecting what is left above it keeps every value equally likely (no
/// modulo bias); each try succeeds with probability above 1/2.
fn uniform_below<R: RngCore + ?Sized>(bound: u128, rng: &mut R) -> u128 {
    debug_assert!(bound > 0);
    let max = bound - 1;
    if max == 0 {
        return 0;
    }
    let mask = u128::MAX >> max.leading_zeros();
    loop {
        let draw = if mask <= u128::from(u64::MAX) {
            u128::from(rng.next_u64())
        } else {
            (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())
        };
        let candidate = draw & mask;
        if candidate <= max {
            return candidate;
        }
    }
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
#[path = "noise_tests.rs"]
mod tests;
