use super::*;

// Reference values, computed independently with mpmath 1.3 at 50 digits:
//
//   from mpmath import mp, mpf, log, log1p, exp, sqrt, ncdf, findroot, diff
//   mp.dps = 50
//   def cks(r, d):    # CKS Corollary 13, minimised where its derivative vanishes
//       r, d = mpf(r), mpf(d)
//       f = lambda a: a*r + (a*log1p(-1/a) - log(a-1) - log(d))/(a-1)
//       return f(findroot(lambda a: diff(f, a), 1 + sqrt(log(1/d)/r)))
//   def gauss(r, d):  # Balle & Wang 2018: exact ε of the Gaussian, Δ = 1, σ = 1/√(2ρ)
//       r, d = mpf(r), mpf(d); s = 1/sqrt(2*r)
//       dl = lambda e: ncdf(1/(2*s) - e*s) - exp(e)*ncdf(-1/(2*s) - e*s)
//       lo, hi = mpf(0), 4*sqrt(r*log(1/d)) + 4*r     # dl decreases in e
//       for _ in range(200):
//           mid = (lo + hi)/2; lo, hi = (mid, hi) if dl(mid) > d else (lo, mid)
//       return hi
//   def inverse(e, d):  # the ρ at which cks(ρ, d) = e
//       lo, hi = mpf(0), mpf(e)
//       for _ in range(200):
//           mid = (lo + hi)/2; lo, hi = (mid, hi) if cks(mid, d) < e else (lo, mid)
//       return lo
//
// The cks values also agree to 1e−9 with a brute-force minimum over a grid of
// 120,000 values of α.

/// (ρ, δ, cks(ρ, δ), gauss(ρ, δ)).
const REFERENCES: [(f64, f64, f64, f64); 6] = [
    (0.5, 1e-6, 5.221_534_444_530_169, 4.886_554_117_462_212),
    (0.01, 1e-6, 0.621_692_654_559_602_5, 0.575_055_185_779_997_3),
    (1.0, 1e-5, 7.077_196_695_806_34, 6.572_970_067_030_332),
    (0.1, 1e-9, 2.715_481_886_730_502, 2.582_872_834_784_193),
    (5.0, 1e-3, 15.458_183_166_005_558, 14.079_350_588_903_318),
    (1e-4, 1e-10, 0.080_143_698_441_725_97, 0.075_974_349_099_969_28),
];

/// (ε, δ, inverse(ε, δ)).
const INVERSE_REFERENCES: [(f64, f64, f64); 3] = [
    (1.0, 1e-6, 0.024_355_970_359_538_373),
    (0.1, 1e-9, 0.000_177_138_447_185_020_9),
    (8.0, 1e-5, 1.229_714_525_761_431_2),
];

fn rho(value: f64) -> Rho {
    Rho::new(value).expect("valid rho")
}

fn relative_error(got: f64, want: f64) -> f64 {
    (got - want).abs() / want
}

#[test]
fn epsilon_for_matches_mpmath() {
    for (r, d, want, _) in REFERENCES {
        let got = epsilon_for(rho(r), d).expect("valid");
        assert!(
            relative_error(got, want) < 1e-6,
            "ρ = {r}, δ = {d}: {got} vs {want}"
        );
    }
}

#[test]
fn epsilon_for_lies_between_the_gaussian_curve_and_bun_steinke() {
    // No conversion from zCDP can beat the exact curve of the continuous
    // Gaussian, which is itself ρ-zCDP; the classic bound is looser.
    for (r, d, _, gauss) in REFERENCES {
        let eps = epsilon_for(rho(r), d).expect("valid");
        let classic = epsilon_bun_steinke(rho(r), d).expect("valid");
        assert!(
            gauss < eps && eps < classic,
            "ρ = {r}, δ = {d}: {gauss} < {eps} < {classic}?"
        );
    }
    for r in [1e-6, 1e-3, 0.05, 0.3, 2.0, 20.0, 500.0] {
        for d in [1e-2, 1e-6, 1e-12] {
            let eps = epsilon_for(rho(r), d).expect("valid");
            let classic = epsilon_bun_steinke(rho(r), d).expect("valid");
            assert!(eps <= classic, "ρ = {r}, δ = {d}: {eps} > {classic}");
        }
    }
}

#[test]
fn epsilon_for_grows_with_rho_and_shrinks_with_delta() {
    let mut last = 0.0;
    for i in 0..200 {
        let eps = epsilon_for(rho(1e-6 * 1.1f64.powi(i)), 1e-6).expect("valid");
        assert!(eps > last, "step {i}: {eps} after {last}");
        last = eps;
    }
    let loose = epsilon_for(rho(0.5), 1e-3).expect("valid");
    let strict = epsilon_for(rho(0.5), 1e-9).expect("valid");
    assert!(loose < strict);
}

#[test]
fn zero_rho_costs_nothing() {
    assert_eq!(epsilon_for(Rho::ZERO, 1e-6), Ok(0.0));
    assert_eq!(epsilon_bun_steinke(Rho::ZERO, 1e-6), Ok(0.0));
    let tiny = epsilon_for(rho(1e-30), 1e-6).expect("valid");
    assert!((0.0..1e-12).contains(&tiny), "{tiny}");
}

#[test]
fn rho_for_epsilon_matches_mpmath() {
    for (e, d, want) in INVERSE_REFERENCES {
        let got = rho_for_epsilon(e, d).expect("valid").value();
        assert!(
            relative_error(got, want) < 1e-6,
            "ε = {e}, δ = {d}: {got} vs {want}"
        );
    }
}

#[test]
fn rho_for_epsilon_inverts_epsilon_for_from_below() {
    let mut last = 0.0;
    for e in [0.01, 0.1, 0.5, 1.0, 2.0, 4.0, 10.0, 50.0] {
        for d in [1e-4, 1e-8] {
            let r = rho_for_epsilon(e, d).expect("valid");
            let back = epsilon_for(r, d).expect("valid");
            assert!(back <= e, "ε = {e}, δ = {d}: ρ = {r:?} gives {back}");
            assert!(
                back > e * (1.0 - 1e-9),
                "ε = {e}, δ = {d}: ρ = {r:?} gives only {back}"
            );
            let wider = rho_for_epsilon(e, d * 10.0).expect("valid");
            assert!(wider > r, "a larger δ must allow more ρ");
        }
        let r = rho_for_epsilon(e, 1e-6).expect("valid").value();
        assert!(r > last, "ρ must grow with ε");
        last = r;
    }
}

#[test]
fn rho_composes_by_addition() {
    assert_eq!(rho(0.25) + rho(0.5), rho(0.75));
    let total: Rho = [0.125, 0.25, 0.5].into_iter().map(rho).sum();
    assert_eq!(total, rho(0.875));
    assert_eq!(std::iter::empty::<Rho>().sum::<Rho>(), Rho::ZERO);
    // Two queries at ρ each cost more ε than one, less than twice as much.
    let one = epsilon_for(rho(0.1), 1e-6).expect("valid");
    let two = epsilon_for(rho(0.1) + rho(0.1), 1e-6).expect("valid");
    assert!(one < two && two < 2.0 * one);
}

#[test]
fn gaussian_rho_and_variance_round_towards_privacy() {
    let r = discrete_gaussian_rho(1.0, 2.0).expect("valid");
    assert!(r.value() > 0.25 && r.value() <= 0.25 * (1.0 + 2.0 * f64::EPSILON));
    let v = variance_for(rho(0.25), 1.0).expect("valid");
    assert!(v > 2.0 && v <= 2.0 * (1.0 + 2.0 * f64::EPSILON));

    // A count (Δ = 1) released at ε = 1, δ = 1e−6: the sampled variance,
    // rounded up onto the noise grid, still meets the target.
    let target = rho_for_epsilon(1.0, 1e-6).expect("valid");
    let sigma2 = variance_for(target, 1.0).expect("valid");
    let sampled = crate::privacy::noise::Variance::at_least(sigma2).expect("in range");
    assert!(sampled.as_f64() >= sigma2);
    let spent = discrete_gaussian_rho(1.0, sampled.as_f64()).expect("valid");
    assert!(spent <= target, "{spent:?} > {target:?}");
    assert!(epsilon_for(spent, 1e-6).expect("valid") <= 1.0);
}

#[test]
fn bad_parameters_are_named() {
    for e in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = rho_for_epsilon(e, 1e-6).expect_err("bad epsilon");
        assert!(matches!(err, AccountingError::Epsilon { .. }));
        assert!(err.to_string().starts_with("epsilon"), "{err}");
    }
    for d in [0.0, 1.0, -0.5, 2.0, f64::NAN] {
        let err = epsilon_for(rho(1.0), d).expect_err("bad delta");
        assert!(matches!(err, AccountingError::Delta { .. }));
        assert!(err.to_string().starts_with("delta"), "{err}");
        assert!(rho_for_epsilon(1.0, d).is_err());
        assert!(epsilon_bun_steinke(rho(1.0), d).is_err());
    }
    assert!(matches!(Rho::new(-0.1), Err(AccountingError::Rho { .. })));
    assert!(matches!(Rho::new(f64::NAN), Err(AccountingError::Rho { .. })));
    assert!(matches!(
        variance_for(Rho::ZERO, 1.0),
        Err(AccountingError::RhoForNoise { .. })
    ));
    assert!(matches!(
        variance_for(rho(f64::INFINITY), 1.0),
        Err(AccountingError::RhoForNoise { .. })
    ));
    assert!(matches!(
        variance_for(rho(1.0), 0.0),
        Err(AccountingError::Sensitivity { .. })
    ));
    assert!(matches!(
        discrete_gaussian_rho(1.0, 0.0),
        Err(AccountingError::Variance { .. })
    ));
    assert!(matches!(
        discrete_gaussian_rho(f64::NAN, 1.0),
        Err(AccountingError::Sensitivity { .. })
    ));
    assert_eq!(epsilon_for(rho(f64::INFINITY), 1e-6), Ok(f64::INFINITY));
}

/// P(|Z| > m) for Z ~ N_Z(0, σ²), summed term by term in f64 (every term
/// is far above f64's smallest normal number here).
fn discrete_gaussian_tail(sigma2: f64, m: u64) -> f64 {
    let weight = |k: f64| (-k * k / (2.0 * sigma2)).exp();
    let reach = (40.0 * sigma2.sqrt()).ceil() as u64 + m + 10;
    let total: f64 = 1.0 + 2.0 * (1..reach).map(|k| weight(k as f64)).sum::<f64>();
    let tail: f64 = 2.0 * (m + 1..reach).map(|k| weight(k as f64)).sum::<f64>();
    tail / total
}

#[test]
fn cover_offsets_cut_less_than_the_stated_tail() {
    // sqrt(2·ln(2^101)) = 11.8327...: the offset is ⌈11.8327·σ⌉ + 1.
    assert_eq!(cover_offset(1.0), Ok(13));
    assert_eq!(cover_offset(100.0), Ok(120));
    assert_eq!(cover_offset(20.5), Ok(55));
    for sigma2 in [0.01, 0.3, 1.0, 4.5, 20.5, 333.0, 10_000.0] {
        let m = cover_offset(sigma2).expect("offset");
        let tail = discrete_gaussian_tail(sigma2, m);
        assert!(tail <= COVER_TAIL, "σ² = {sigma2}: P(|Z| > {m}) = {tail:e}");
        // Not wastefully far out either: a third fewer points would not do
        // (below σ = 1 the rounding up dominates).
        if sigma2 >= 1.0 {
            assert!(
                discrete_gaussian_tail(sigma2, m * 2 / 3) > COVER_TAIL,
                "σ² = {sigma2}"
            );
        }
    }
    assert!(matches!(cover_offset(0.0), Err(AccountingError::Variance { .. })));
    assert!(matches!(
        cover_offset(f64::NAN),
        Err(AccountingError::Variance { .. })
    ));
}

#[test]
fn truncation_adds_a_negligible_delta() {
    assert_eq!(COVER_TAIL, 2f64.powi(-100));
    // 10,000 cover counts at ε = 1: (1 + e)·10^4·2^-100 ≈ 2.9e-26.
    let d = truncation_delta(10_000, 1.0);
    assert!((d - 2.933e-26).abs() < 1e-29, "{d:e}");
    assert_eq!(truncation_delta(0, 1.0), 0.0);
}
