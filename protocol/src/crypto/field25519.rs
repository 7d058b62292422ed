//! Arithmetic modulo `p = 2^255 - 19`, for [`crate::crypto::hinted`]: the auditor's
//! decoding of points with a hint and its weighted sums. curve25519-dalek keeps
//! its field private, so this wraps fiat-crypto's formally verified code; the
//! only thing written here is which operation follows which.
//!
//! Every value is kept in fiat's tight form; each addition and subtraction is
//! carried at once, which costs a little more than juggling loose values but
//! keeps every formula readable.

use std::ops::{Add, Mul, Neg, Sub};

use fiat_crypto::curve25519_64::{
    fiat_25519_add, fiat_25519_carry, fiat_25519_carry_mul, fiat_25519_carry_square, fiat_25519_from_bytes,
    fiat_25519_loose_field_element as Loose, fiat_25519_opp, fiat_25519_relax, fiat_25519_sub,
    fiat_25519_tight_field_element as Tight, fiat_25519_to_bytes,
};

#[derive(Clone, Copy)]
pub(crate) struct Fe(Tight);

/// `bytes` little-endian with the top bit clear, as fiat requires.
const fn from_le(bytes: [u8; 32]) -> Fe {
    let mut out = Tight([0; 5]);
    fiat_25519_from_bytes(&mut out, &bytes);
    Fe(out)
}

impl Fe {
    pub const ZERO: Fe = Fe(Tight([0; 5]));
    pub const ONE: Fe = Fe(Tight([1, 0, 0, 0, 0]));
    /// Edwards `d = -121665/121666`.
    pub const D: Fe = from_le([
        0xa3, 0x78, 0x59, 0x13, 0xca, 0x4d, 0xeb, 0x75, 0xab, 0xd8, 0x41, 0x41, 0x4d, 0x0a, 0x70, 0x00, 0x98,
        0xe8, 0x79, 0x77, 0x79, 0x40, 0xc7, 0x8c, 0x73, 0xfe, 0x6f, 0x2b, 0xee, 0x6c, 0x03, 0x52,
    ]);
    /// `2d`, the constant of the addition formulas.
    pub const D2: Fe = from_le([
        0x59, 0xf1, 0xb2, 0x26, 0x94, 0x9b, 0xd6, 0xeb, 0x56, 0xb1, 0x83, 0x82, 0x9a, 0x14, 0xe0, 0x00, 0x30,
        0xd1, 0xf3, 0xee, 0xf2, 0x80, 0x8e, 0x19, 0xe7, 0xfc, 0xdf, 0x56, 0xdc, 0xd9, 0x06, 0x24,
    ]);
    /// The even square root of -1.
    pub const SQRT_M1: Fe = from_le([
        0xb0, 0xa0, 0x0e, 0x4a, 0x27, 0x1b, 0xee, 0xc4, 0x78, 0xe4, 0x2f, 0xad, 0x06, 0x18, 0x43, 0x2f, 0xa7,
        0xd7, 0xfb, 0x3d, 0x99, 0x00, 0x4d, 0x2b, 0x0b, 0xdf, 0xc1, 0x4f, 0x80, 0x24, 0x83, 0x2b,
    ]);
    /// `1/sqrt(a - d)` with `a = -1` (RFC 9496, section 4.1).
    pub const INVSQRT_A_MINUS_D: Fe = from_le([
        0xea, 0x40, 0x5d, 0x80, 0xaa, 0xfd, 0xc8, 0x99, 0xbe, 0x72, 0x41, 0x5a, 0x17, 0x16, 0x2f, 0x9d, 0x40,
        0xd8, 0x01, 0xfe, 0x91, 0x7b, 0xc2, 0x16, 0xa2, 0xfc, 0xaf, 0xcf, 0x05, 0x89, 0x6c, 0x78,
    ]);

    /// Only the canonical encoding of a value below `p`.
    pub fn from_canonical(bytes: &[u8; 32]) -> Option<Fe> {
        if bytes[31] & 0x80 != 0 {
            return None;
        }
        let fe = from_le(*bytes);
        (fe.to_bytes() == *bytes).then_some(fe)
    }

    pub fn to_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        fiat_25519_to_bytes(&mut out, &self.0);
        out
    }

    /// RFC 9496's IS_NEGATIVE: the low bit of the canonical encoding.
    pub fn is_negative(self) -> bool {
        self.to_bytes()[0] & 1 == 1
    }

    pub fn is_zero(self) -> bool {
        self.to_bytes() == [0; 32]
    }

    /// RFC 9496's CT_ABS: the non-negative one of `±self`.
    pub fn abs(self) -> Fe {
        if self.is_negative() { -self } else { self }
    }

    pub fn square(self) -> Fe {
        let mut out = Tight([0; 5]);
        fiat_25519_carry_square(&mut out, &self.loose());
        Fe(out)
    }

    fn square_times(self, k: u32) -> Fe {
        (0..k).fold(self, |x, _| x.square())
    }

    fn loose(self) -> Loose {
        let mut out = Loose([0; 5]);
        fiat_25519_relax(&mut out, &self.0);
        out
    }

    fn carried(loose: Loose) -> Fe {
        let mut out = Tight([0; 5]);
        fiat_25519_carry(&mut out, &loose);
        Fe(out)
    }

    /// `self^((p-5)/8) = self^(2^252 - 3)`, by the usual addition chain.
    fn pow_p58(self) -> Fe {
        let x = self;
        let x2 = x.square() * x;
        let x4 = x2.square_times(2) * x2;
        let x5 = x4.square() * x;
        let x10 = x5.square_times(5) * x5;
        let x20 = x10.square_times(10) * x10;
        let x25 = x20.square_times(5) * x5;
        let x50 = x25.square_times(25) * x25;
        let x100 = x50.square_times(50) * x50;
        let x125 = x100.square_times(25) * x25;
        let x250 = x125.square_times(125) * x125;
        x250.square_times(2) * x
    }

    /// RFC 9496's SQRT_RATIO_M1: `(true, sqrt(u/v))` when `u/v` is a square,
    /// else `(false, sqrt(i*u/v))`; the root returned is the non-negative one.
    pub fn sqrt_ratio_m1(u: Fe, v: Fe) -> (bool, Fe) {
        let v3 = v.square() * v;
        let v7 = v3.square() * v;
        let r = (u * v3) * (u * v7).pow_p58();
        let check = v * r.square();
        let correct_sign = check == u;
        let flipped_sign = check == -u;
        let flipped_sign_i = check == -(u * Fe::SQRT_M1);
        let r = if flipped_sign || flipped_sign_i {
            r * Fe::SQRT_M1
        } else {
            r
        };
        (correct_sign || flipped_sign, r.abs())
    }
}

impl PartialEq for Fe {
    fn eq(&self, other: &Fe) -> bool {
        self.to_bytes() == other.to_bytes()
    }
}

impl Mul for Fe {
    type Output = Fe;
    fn mul(self, rhs: Fe) -> Fe {
        let mut out = Tight([0; 5]);
        fiat_25519_carry_mul(&mut out, &self.loose(), &rhs.loose());
        Fe(out)
    }
}

impl Add for Fe {
    type Output = Fe;
    fn add(self, rhs: Fe) -> Fe {
        let mut out = Loose([0; 5]);
        fiat_25519_add(&mut out, &self.0, &rhs.0);
        Fe::carried(out)
    }
}

impl Sub for Fe {
    type Output = Fe;
    fn sub(self, rhs: Fe) -> Fe {
        let mut out = Loose([0; 5]);
        fiat_25519_sub(&mut out, &self.0, &rhs.0);
        Fe::carried(out)
    }
}

impl Neg for Fe {
    type Output = Fe;
    fn neg(self) -> Fe {
        let mut out = Loose([0; 5]);
        fiat_25519_opp(&mut out, &self.0);
        Fe::carried(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(n: u64) -> Fe {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&n.to_le_bytes());
        from_le(b)
    }

    #[test]
    fn constants_are_what_they_claim() {
        // d * 121666 = -121665
        assert!(Fe::D * small(121666) == -small(121665));
        assert!(Fe::D + Fe::D == Fe::D2);
        assert!(Fe::SQRT_M1.square() == -Fe::ONE);
        assert!(!Fe::SQRT_M1.is_negative());
        // INVSQRT_A_MINUS_D^2 * (-1 - d) = 1, non-negative.
        assert!(Fe::INVSQRT_A_MINUS_D.square() * (-Fe::ONE - Fe::D) == Fe::ONE);
        assert!(!Fe::INVSQRT_A_MINUS_D.is_negative());
    }

    #[test]
    fn canonical_encodings_only() {
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(Fe::from_canonical(&p).is_none(), "p itself is not canonical");
        let mut p_minus_1 = p;
        p_minus_1[0] = 0xec;
        assert!(Fe::from_canonical(&p_minus_1) == Some(-Fe::ONE));
        let mut high = [0u8; 32];
        high[31] = 0x80;
        assert!(Fe::from_canonical(&high).is_none());
    }

    #[test]
    fn square_roots_of_ratios() {
        // 4/1 is a square; its non-negative root is 2 or -2, whichever is even.
        let (square, r) = Fe::sqrt_ratio_m1(small(4), Fe::ONE);
        assert!(square && r.square() == small(4) && !r.is_negative());
        // 2 is not a square mod p (p = 5 mod 8).
        let (square, r) = Fe::sqrt_ratio_m1(small(2), Fe::ONE);
        assert!(!square && r.square() == small(2) * Fe::SQRT_M1);
        let (square, r) = Fe::sqrt_ratio_m1(Fe::ONE, Fe::ZERO);
        assert!(!square && r.is_zero());
        let (square, r) = Fe::sqrt_ratio_m1(Fe::ZERO, small(7));
        assert!(square && r.is_zero());
    }
}
