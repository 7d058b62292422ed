//! The fast path of masking-proof checks: decoding ristretto255 points with a
//! hint, and summing them with public weights.
//!
//! Decoding a compressed point costs an inverse square root, some 250 field
//! squarings, and checking a proof over a million masked points decodes two
//! million of them: that was nine tenths of an audit. The prover has the
//! points anyway, so it stores each one's inverse square root (RFC 9496,
//! section 4.3.1, step 4) next to its proof; checking that a hint squares to
//! the right value takes ten multiplications.
//!
//! A hint claims nothing. It is not part of what a party commits to, and a
//! hint that does not check sends its point to curve25519-dalek's ordinary
//! decoding, so a wrong or missing hint costs time, never a verdict; a point
//! dalek refuses is refused either way. A hint that checks fixes the decoded
//! point exactly, because only one non-negative root exists.
//!
//! dalek cannot take points it did not decode, so the weighted sum of the
//! hinted points is a bucket method (Pippenger) written here, variable-time:
//! the weights are public and so are the points. Only the final sum goes back
//! to dalek, by one encoding and decoding.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use rayon::prelude::*;

use crate::{crypto::field25519::Fe, crypto::group::PointBytes};

/// Bytes per hint: one field element.
pub const HINT_LEN: usize = 32;

/// Points per unit of parallel work when computing hints.
const HINT_CHUNK: usize = 1 << 12;

/// A decoded point in the form the mixed addition takes: `(y+x, y-x, 2dxy)`.
#[derive(Clone, Copy)]
pub(crate) struct Affine {
    y_plus_x: Fe,
    y_minus_x: Fe,
    xy2d: Fe,
}

/// Extended coordinates `(X:Y:Z:T)` with `x = X/Z`, `y = Y/Z`, `xy = T/Z`.
#[derive(Clone, Copy)]
pub(crate) struct Extended {
    x: Fe,
    y: Fe,
    z: Fe,
    t: Fe,
}

/// The output of the addition formulas before the last four products:
/// `x = X/Z`, `y = Y/T`.
struct Completed {
    x: Fe,
    y: Fe,
    z: Fe,
    t: Fe,
}

/// The values steps 1 to 3 of the decoding compute from `s`, and what step 4
/// takes the inverse square root of.
struct Decoding {
    s: Fe,
    u1: Fe,
    u2: Fe,
    v: Fe,
    radicand: Fe,
}

impl Decoding {
    /// `None` unless `s` is canonical and non-negative.
    fn start(point: &PointBytes) -> Option<Decoding> {
        let s = Fe::from_canonical(point)?;
        if s.is_negative() {
            return None;
        }
        let ss = s.square();
        let u1 = Fe::ONE - ss;
        let u2 = Fe::ONE + ss;
        let u2_sqr = u2.square();
        let v = -(Fe::D * u1.square()) - u2_sqr;
        Some(Decoding {
            s,
            u1,
            u2,
            v,
            radicand: v * u2_sqr,
        })
    }

    /// Steps 5 to 7, given the inverse square root of `radicand`.
    fn finish(&self, invsqrt: Fe) -> Option<Affine> {
        let den_x = invsqrt * self.u2;
        let den_y = invsqrt * den_x * self.v;
        let x = ((self.s + self.s) * den_x).abs();
        let y = self.u1 * den_y;
        let t = x * y;
        if t.is_negative() || y.is_zero() {
            return None;
        }
        Some(Affine {
            y_plus_x: y + x,
            y_minus_x: y - x,
            xy2d: t * Fe::D2,
        })
    }
}

/// The hint for one compressed point: the non-negative inverse square root
/// its decoding takes. `None` if the bytes are not a point.
pub fn hint(point: &PointBytes) -> Option<[u8; HINT_LEN]> {
    let d = Decoding::start(point)?;
    let (was_square, invsqrt) = Fe::sqrt_ratio_m1(Fe::ONE, d.radicand);
    // The last checks of the decoding follow the root.
    (was_square && d.finish(invsqrt).is_some()).then(|| invsqrt.to_bytes())
}

/// Hints for a list, concatenated, computed on all cores. Bytes that are not a
/// point get zeros, which never check.
pub fn hints(points: &[PointBytes]) -> Vec<u8> {
    let mut out = vec![0u8; points.len() * HINT_LEN];
    out.par_chunks_mut(HINT_CHUNK * HINT_LEN)
        .zip(points.par_chunks(HINT_CHUNK))
        .for_each(|(out, points)| {
            for (slot, p) in out.chunks_exact_mut(HINT_LEN).zip(points) {
                if let Some(h) = hint(p) {
                    slot.copy_from_slice(&h);
                }
            }
        });
    out
}

/// Decodes `point` with its hint. `None` when the hint does not check, and for
/// the identity and anything dalek would refuse: the caller then decodes the
/// ordinary way, which names the fault.
pub(crate) fn decode(point: &PointBytes, hint: &[u8]) -> Option<Affine> {
    let hint: &[u8; HINT_LEN] = hint.try_into().ok()?;
    let d = Decoding::start(point)?;
    if d.s.is_zero() {
        return None;
    }
    let invsqrt = Fe::from_canonical(hint)?;
    if invsqrt.is_negative() || invsqrt.square() * d.radicand != Fe::ONE {
        return None;
    }
    d.finish(invsqrt)
}

impl Completed {
    fn extended(self) -> Extended {
        Extended {
            x: self.x * self.t,
            y: self.y * self.z,
            z: self.z * self.t,
            t: self.x * self.y,
        }
    }
}

impl Extended {
    pub(crate) const IDENTITY: Extended = Extended {
        x: Fe::ZERO,
        y: Fe::ONE,
        z: Fe::ONE,
        t: Fe::ZERO,
    };

    fn add_affine(&self, q: &Affine) -> Extended {
        let pp = (self.y + self.x) * q.y_plus_x;
        let mm = (self.y - self.x) * q.y_minus_x;
        let tt2d = self.t * q.xy2d;
        let z2 = self.z + self.z;
        Completed {
            x: pp - mm,
            y: pp + mm,
            z: z2 + tt2d,
            t: z2 - tt2d,
        }
        .extended()
    }

    fn sub_affine(&self, q: &Affine) -> Extended {
        let pp = (self.y + self.x) * q.y_minus_x;
        let mm = (self.y - self.x) * q.y_plus_x;
        let tt2d = self.t * q.xy2d;
        let z2 = self.z + self.z;
        Completed {
            x: pp - mm,
            y: pp + mm,
            z: z2 - tt2d,
            t: z2 + tt2d,
        }
        .extended()
    }

    fn add(&self, q: &Extended) -> Extended {
        let pp = (self.y + self.x) * (q.y + q.x);
        let mm = (self.y - self.x) * (q.y - q.x);
        let tt2d = self.t * (q.t * Fe::D2);
        let zz = self.z * q.z;
        let z2 = zz + zz;
        Completed {
            x: pp - mm,
            y: pp + mm,
            z: z2 + tt2d,
            t: z2 - tt2d,
        }
        .extended()
    }

    fn double(&self) -> Extended {
        let xx = self.x.square();
        let yy = self.y.square();
        let zz = self.z.square();
        let x_plus_y_sq = (self.x + self.y).square();
        let yy_plus_xx = yy + xx;
        let yy_minus_xx = yy - xx;
        Completed {
            x: x_plus_y_sq - yy_plus_xx,
            y: yy_plus_xx,
            z: yy_minus_xx,
            t: (zz + zz) - yy_minus_xx,
        }
        .extended()
    }

    /// The canonical ristretto255 encoding (RFC 9496, section 4.3.2).
    pub(crate) fn encode(&self) -> PointBytes {
        let Extended {
            x: x0,
            y: y0,
            z: z0,
            t: t0,
        } = *self;
        let u1 = (z0 + y0) * (z0 - y0);
        let u2 = x0 * y0;
        let (_, invsqrt) = Fe::sqrt_ratio_m1(Fe::ONE, u1 * u2.square());
        let den1 = invsqrt * u1;
        let den2 = invsqrt * u2;
        let z_inv = den1 * den2 * t0;
        let rotate = (t0 * z_inv).is_negative();
        let (x, y, den_inv) = if rotate {
            (y0 * Fe::SQRT_M1, x0 * Fe::SQRT_M1, den1 * Fe::INVSQRT_A_MINUS_D)
        } else {
            (x0, y0, den2)
        };
        let y = if (x * z_inv).is_negative() { -y } else { y };
        (den_inv * (z0 - y)).abs().to_bytes()
    }

    /// The same element as a dalek point. `None` cannot happen for a point
    /// these formulas produced; it is reported rather than trusted.
    pub(crate) fn to_dalek(self) -> Option<RistrettoPoint> {
        CompressedRistretto(self.encode()).decompress()
    }
}

/// The window that minimises the work for `n` points: each window costs one
/// mixed addition per point and two full additions per bucket.
fn window_bits(n: usize) -> usize {
    (4..=16)
        .min_by_key(|&c| windows(c) * (7 * n + 18 * (1usize << (c - 1))))
        .unwrap_or(8)
}

/// Signed digits needed for a 128-bit weight: one more bit than the weight, for
/// the carry.
fn windows(c: usize) -> usize {
    128 / c + 1
}

/// Signed radix-`2^c` digits of `w`, least significant first, each in
/// `[-2^(c-1), 2^(c-1)]`.
fn signed_digits(w: u128, c: usize, out: &mut [i32]) {
    let mask = (1u128 << c) - 1;
    let half = 1i64 << (c - 1);
    let mut carry = 0i64;
    for (j, digit) in out.iter_mut().enumerate() {
        let raw = w.checked_shr((c * j) as u32).map_or(0, |s| (s & mask) as i64);
        let v = raw + carry;
        if v > half {
            *digit = (v - (1i64 << c)) as i32;
            carry = 1;
        } else {
            *digit = v as i32;
            carry = 0;
        }
    }
    debug_assert_eq!(carry, 0, "too few windows for a 128-bit weight");
}

/// `sum w_i * P_i`, variable-time (the weights and points are public).
pub(crate) fn vartime_weighted_sum(weights: &[u128], points: &[Affine]) -> Extended {
    debug_assert_eq!(weights.len(), points.len());
    let n = points.len().min(weights.len());
    if n == 0 {
        return Extended::IDENTITY;
    }
    let c = window_bits(n);
    let count = windows(c);
    let mut digits = vec![0i32; n * count];
    for (w, out) in weights.iter().zip(digits.chunks_exact_mut(count)) {
        signed_digits(*w, c, out);
    }
    let mut buckets = vec![Extended::IDENTITY; 1 << (c - 1)];
    let mut total = Extended::IDENTITY;
    for j in (0..count).rev() {
        for _ in 0..c {
            total = total.double();
        }
        buckets.fill(Extended::IDENTITY);
        for (i, p) in points[..n].iter().enumerate() {
            let d = digits[i * count + j];
            if d > 0 {
                let b = &mut buckets[(d - 1) as usize];
                *b = b.add_affine(p);
            } else if d < 0 {
                let b = &mut buckets[(-d - 1) as usize];
                *b = b.sub_affine(p);
            }
        }
        // Bucket b holds the points of digit b + 1: summing the running sums
        // from the top weighs each bucket by its digit.
        let mut running = Extended::IDENTITY;
        let mut sum = Extended::IDENTITY;
        for b in buckets.iter().rev() {
            running = running.add(b);
            sum = sum.add(&running);
        }
        total = total.add(&sum);
    }
    total
}

#[cfg(test)]
#[path = "hinted_tests.rs"]
mod tests;
