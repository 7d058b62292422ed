use rand::{Rng, SeedableRng, rngs::StdRng};

use super::*;

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Five standard errors: a correct sampler fails a check with probability
/// below 1e-6, and every seed is fixed, so a failure is a real change.
const Z: f64 = 5.0;

/// Normalized pmf on [−bound, bound] from unnormalized weights; the mass left
/// outside is below e^(−400) for the bounds used here.
fn pmf(bound: i64, weight: impl Fn(i64) -> f64) -> Vec<(i64, f64)> {
    let raw: Vec<(i64, f64)> = (-bound..=bound).map(|x| (x, weight(x))).collect();
    let total: f64 = raw.iter().map(|(_, w)| w).sum();
    raw.into_iter().map(|(x, w)| (x, w / total)).collect()
}

fn gaussian_pmf(sigma2: f64) -> Vec<(i64, f64)> {
    let bound = (30.0 * sigma2.sqrt()).ceil() as i64 + 30;
    pmf(bound, |x| (-((x * x) as f64) / (2.0 * sigma2)).exp())
}

fn laplace_pmf(scale: f64) -> Vec<(i64, f64)> {
    let bound = (450.0 * scale).ceil() as i64 + 450;
    pmf(bound, |x| (-(x.unsigned_abs() as f64) / scale).exp())
}

/// E[X²] and E[X⁴] under a pmf.
fn moments(pmf: &[(i64, f64)]) -> (f64, f64) {
    pmf.iter().fold((0.0, 0.0), |(m2, m4), &(x, p)| {
        let x2 = (x * x) as f64;
        (m2 + p * x2, m4 + p * x2 * x2)
    })
}

/// Checks the sample mean against 0 and the sample second moment against the
/// pmf's variance, each within Z standard errors.
fn assert_moments(samples: &[i64], pmf: &[(i64, f64)], what: &str) {
    let n = samples.len() as f64;
    let (var, m4) = moments(pmf);
    let mean = samples.iter().map(|&x| x as f64).sum::<f64>() / n;
    let second = samples.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>() / n;
    let mean_bound = Z * (var / n).sqrt();
    let second_bound = Z * ((m4 - var * var) / n).sqrt();
    assert!(
        mean.abs() <= mean_bound,
        "{what}: mean {mean} beyond ±{mean_bound}"
    );
    assert!(
        (second - var).abs() <= second_bound,
        "{what}: E[X²] {second} vs exact variance {var}, allowed ±{second_bound}"
    );
}

/// Pearson's statistic and its degrees of freedom. Bins are formed left to
/// right, each closed once its expected count reaches 5; a last short bin is
/// merged into the one before. The outermost bins also take every sample
/// beyond the pmf's range.
fn chi_square(samples: &[i64], pmf: &[(i64, f64)]) -> (f64, usize) {
    let n = samples.len() as f64;
    let mut upper_ends = Vec::new();
    let mut expected = Vec::new();
    let mut pending = 0.0;
    for &(x, p) in pmf {
        pending += n * p;
        if pending >= 5.0 {
            upper_ends.push(x);
            expected.push(pending);
            pending = 0.0;
        }
    }
    let last = expected.len() - 1;
    expected[last] += pending;
    upper_ends[last] = i64::MAX;
    let mut observed = vec![0.0; expected.len()];
    for &s in samples {
        observed[upper_ends.partition_point(|&end| end < s)] += 1.0;
    }
    let statistic = observed
        .iter()
        .zip(&expected)
        .map(|(o, e)| (o - e) * (o - e) / e)
        .sum();
    (statistic, expected.len() - 1)
}

/// The 0.999 quantile of chi-square with k degrees of freedom, by
/// Wilson–Hilferty. Against exact quantiles (mpmath `gammainc`, bisected) it
/// errs high, by 1.2% at k = 5, 0.6% at k = 10 and 0.3% at k = 20: slightly
/// lenient, never strict.
fn chi_square_999(k: usize) -> f64 {
    let k = k as f64;
    let z = 3.090_232_306_167_813;
    let h = 2.0 / (9.0 * k);
    k * (1.0 - h + z * h.sqrt()).powi(3)
}

fn gaussian_samples(variance: &Variance, n: usize, seed: u64) -> Vec<i64> {
    let mut rng = rng(seed);
    (0..n)
        .map(|_| sample_discrete_gaussian(variance, &mut rng))
        .collect()
}

#[test]
fn bernoulli_exp_neg_matches_exp() {
    let mut rng = rng(1);
    let n = 100_000;
    let cases: [(u128, u128); 5] = [(3, 10), (1, 1), (27, 10), (5, 2), ((5 << 98) + 1, 1 << 100)];
    for (num, den) in cases {
        let p = (-(num as f64) / (den as f64)).exp();
        let hits = (0..n).filter(|_| bernoulli_exp_neg(num, den, &mut rng)).count();
        let freq = hits as f64 / n as f64;
        let bound = Z * (p * (1.0 - p) / n as f64).sqrt();
        assert!(
            (freq - p).abs() <= bound,
            "γ = {num}/{den}: {freq} vs {p} ± {bound}"
        );
    }
}

#[test]
fn bernoulli_exp_neg_of_zero_always_succeeds() {
    let mut rng = rng(2);
    assert!((0..10_000).all(|_| bernoulli_exp_neg(0, 7, &mut rng)));
}

#[test]
fn uniform_below_is_uniform_and_in_range() {
    let mut rng = rng(3);
    let n = 60_000;
    let mut counts = [0usize; 6];
    for _ in 0..n {
        counts[uniform_below(6, &mut rng) as usize] += 1;
    }
    let expected = n as f64 / 6.0;
    let statistic: f64 = counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum();
    assert!(statistic < chi_square_999(5), "counts {counts:?}");

    // A bound just above 2^127 needs the 128-bit path and rejects often.
    let bound = (1u128 << 127) + 3;
    let high = (0..n)
        .filter(|_| uniform_below(bound, &mut rng) >= 1 << 126)
        .count();
    let freq = high as f64 / n as f64;
    assert!((freq - 0.5).abs() <= Z * (0.25 / n as f64).sqrt(), "{freq}");
}

#[test]
fn discrete_gaussian_moments() {
    let cases: [(u128, u64); 3] = [(1, 2), (4, 1), (1_000_000, 1)];
    for (seed, (num, den)) in (10..).zip(cases) {
        let variance = Variance::new(num, den).expect("valid variance");
        let samples = gaussian_samples(&variance, 200_000, seed);
        assert_moments(
            &samples,
            &gaussian_pmf(variance.as_f64()),
            &format!("σ² = {num}/{den}"),
        );
    }
}

#[test]
fn discrete_gaussian_fits_its_pmf() {
    for (seed, (num, den)) in (20..).zip([(3u128, 4u64), (3, 1)]) {
        let variance = Variance::new(num, den).expect("valid variance");
        let samples = gaussian_samples(&variance, 100_000, seed);
        let (statistic, df) = chi_square(&samples, &gaussian_pmf(variance.as_f64()));
        let limit = chi_square_999(df);
        assert!(
            statistic < limit,
            "σ² = {num}/{den}: χ² = {statistic} with {df} df, limit {limit}"
        );
    }
}

#[test]
fn chi_square_detects_a_wrong_variance() {
    let variance = Variance::new(3, 1).expect("valid variance");
    let samples = gaussian_samples(&variance, 100_000, 30);
    let (statistic, df) = chi_square(&samples, &gaussian_pmf(3.3));
    assert!(statistic > chi_square_999(df), "χ² = {statistic} with {df} df");
}

#[test]
fn tiny_variance_gives_zero() {
    // P(±1) is about exp(−2^19).
    let variance = Variance::new(1, MAX_VARIANCE_DEN).expect("valid variance");
    assert!(gaussian_samples(&variance, 10_000, 40).iter().all(|&x| x == 0));
}

#[test]
fn huge_variance_samples_are_sane() {
    // σ ≈ 2^36 and σ ≈ 2^40 with the finest denominator (odd numerators stay
    // unreduced), and σ = 2^40 exactly.
    let cases: [(u128, u64, usize); 3] = [
        ((1 << 92) + 1, 1 << 20, 4_000),
        (1 << 80, 1, 500),
        ((1 << 100) - 1, 1 << 20, 500),
    ];
    for (seed, (num, den, n)) in (50..).zip(cases) {
        let variance = Variance::new(num, den).expect("valid variance");
        let sigma2 = variance.as_f64();
        let samples = gaussian_samples(&variance, n, seed);
        let nf = n as f64;
        let mean = samples.iter().map(|&x| x as f64).sum::<f64>() / nf;
        let second = samples.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / nf;
        let positives = samples.iter().filter(|&&x| x > 0).count() as f64;
        assert!(
            mean.abs() <= Z * (sigma2 / nf).sqrt(),
            "σ² = {sigma2}: mean {mean}"
        );
        assert!(
            (second / sigma2 - 1.0).abs() <= Z * (2.0 / nf).sqrt(),
            "σ² = {sigma2}: {second}"
        );
        assert!(
            (positives / nf - 0.5).abs() <= Z * (0.25 / nf).sqrt(),
            "σ² = {sigma2}: {positives}"
        );
    }
}

#[test]
fn discrete_laplace_moments() {
    let n = 100_000;
    let mut rng = rng(60);
    for t in [1u32, 3, 40] {
        let scale = NonZeroU32::new(t).expect("non-zero");
        let samples: Vec<i64> = (0..n).map(|_| sample_discrete_laplace(scale, &mut rng)).collect();
        let pmf = laplace_pmf(f64::from(t));
        let e = (-1.0 / f64::from(t)).exp();
        let closed_form = 2.0 * e / (1.0 - e).powi(2);
        let (var, _) = moments(&pmf);
        assert!(
            (var / closed_form - 1.0).abs() < 1e-9,
            "t = {t}: {var} vs {closed_form}"
        );
        assert_moments(&samples, &pmf, &format!("DLap({t})"));
    }
}

#[test]
fn discrete_laplace_with_rational_scale() {
    // The Gaussian's proposal scale σ²/⌊σ⌋ is rarely an integer, which
    // leaves the ⌊X/s⌋ step to check.
    let mut rng = rng(70);
    let samples: Vec<i64> = (0..100_000).map(|_| laplace(7, 3, &mut rng)).collect();
    let pmf = laplace_pmf(7.0 / 3.0);
    assert_moments(&samples, &pmf, "DLap(7/3)");
    let (statistic, df) = chi_square(&samples, &pmf);
    assert!(statistic < chi_square_999(df), "χ² = {statistic} with {df} df");
}

#[test]
fn variance_bounds() {
    assert_eq!(Variance::new(0, 1), Err(NoiseError::ZeroVariance));
    assert_eq!(Variance::new(1, 0), Err(NoiseError::ZeroDenominator { num: 1 }));
    assert!(Variance::new(1, MAX_VARIANCE_DEN).is_ok());
    assert_eq!(
        Variance::new(1, MAX_VARIANCE_DEN + 1),
        Err(NoiseError::DenominatorTooLarge {
            num: 1,
            den: MAX_VARIANCE_DEN + 1
        })
    );
    assert!(Variance::new(1 << 80, 1).is_ok());
    assert!(Variance::new(1 << 100, 1 << 20).is_ok());
    assert_eq!(
        Variance::new((1 << 80) + 1, 1),
        Err(NoiseError::VarianceTooLarge {
            num: (1 << 80) + 1,
            den: 1
        })
    );
    assert!(Variance::new((1 << 100) + 1, 1 << 20).is_err());
    let message = Variance::new(1, 1 << 21).expect_err("too fine").to_string();
    assert!(message.contains("2^20"), "{message}");
}

#[test]
fn variance_is_reduced() {
    let v = Variance::new(6, 4).expect("valid variance");
    assert_eq!(v, Variance::new(3, 2).expect("valid variance"));
    assert_eq!((v.num(), v.den()), (3, 2));
    assert_eq!(v.as_f64(), 1.5);
}

#[test]
fn at_least_rounds_up_to_the_1024_grid() {
    let v = Variance::at_least(0.3).expect("valid");
    assert_eq!((v.num(), v.den()), (77, 256)); // ⌈307.2⌉ = 308 = 4·77
    assert_eq!(Variance::at_least(2.0), Variance::new(2, 1));
    assert_eq!(Variance::at_least(1e-300), Variance::new(1, 1024));
    assert!(Variance::at_least(2f64.powi(80)).is_ok());
    assert!(matches!(
        Variance::at_least(2f64.powi(80) * (1.0 + f64::EPSILON)),
        Err(NoiseError::FloatTooLarge { .. })
    ));
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(
            matches!(Variance::at_least(bad), Err(NoiseError::NotPositive { .. })),
            "{bad}"
        );
    }

    // num·1024/den stays below 2^53 here, so the f64 comparisons are exact.
    let mut rng = rng(80);
    for _ in 0..10_000 {
        let sigma2 = rng.random_range(-12.0f64..40.0).exp2();
        let v = Variance::at_least(sigma2).expect("valid");
        let grid = v.num() * u128::from(AT_LEAST_DEN / v.den());
        assert_eq!(u128::from(AT_LEAST_DEN) % u128::from(v.den()), 0);
        assert!(grid as f64 >= sigma2 * 1024.0, "{sigma2}");
        assert!(((grid - 1) as f64) < sigma2 * 1024.0, "{sigma2}");
    }
}

#[test]
fn proposal_scale_and_centre() {
    // σ² = 4: τ = 4/2 = 2, centre 2. σ² = 3/4: τ = 1, centre 3/4.
    let p = Proposal::new(&Variance::new(4, 1).expect("valid"));
    assert_eq!(
        (p.scale_num, p.scale_den, p.centre_num, p.centre_den),
        (4, 2, 2, 1)
    );
    assert_eq!(p.exponent(5), Some((9, 8))); // (5 − 2)²/(2·4)
    let p = Proposal::new(&Variance::new(3, 4).expect("valid"));
    assert_eq!((p.scale_num, p.scale_den), (1, 1));
    assert_eq!(p.exponent(-2), Some((25, 24))); // (2·4 − 3)²/(2·3·4)
    // The largest numerator and denominator: (2^63)²·2^20 overflows.
    let p = Proposal::new(&Variance::new((1 << 100) - 1, 1 << 20).expect("valid"));
    assert_eq!(p.exponent(i64::MAX), None);
}

#[test]
fn cover_counts_stay_in_range_with_the_gaussian_moments() {
    let variance = Variance::at_least(20.5).expect("valid");
    let offset = 55;
    let mut rng = rng(90);
    let samples: Vec<i64> = (0..40_000)
        .map(|_| sample_cover(&variance, offset, &mut rng) as i64 - offset as i64)
        .collect();
    assert!(samples.iter().all(|z| z.unsigned_abs() <= offset));
    assert_moments(&samples, &gaussian_pmf(variance.as_f64()), "cover count");
    // A tiny offset cuts the distribution but never leaves the range.
    let tight: Vec<u64> = (0..2_000).map(|_| sample_cover(&variance, 2, &mut rng)).collect();
    assert!(tight.iter().all(|&c| c <= 4));
    assert!(tight.contains(&0) && tight.contains(&4));
}
