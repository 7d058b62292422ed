//! Points and scalars of ristretto255 as the protocols use them: secret session
//! keys, batched masking (`k * P` then compression), and strict decoding of
//! points received from a peer.

use curve25519_dalek::{
    ristretto::{CompressedRistretto, RistrettoPoint},
    scalar::Scalar,
};
use rand::RngCore;
use rayon::prelude::*;
use zeroize::Zeroize;

/// A compressed ristretto255 point as it travels: 32 bytes.
pub type PointBytes = [u8; 32];

/// Points per unit of parallel work: large enough to amortize the batched
/// compression's single inversion, small enough to spread over both cores.
const PAR_GRAIN: usize = 256;

/// A secret scalar that masks points for one session (or one window). Never
/// printed, serialized or cloned by accident; zeroized on drop.
pub struct SessionKey {
    scalar: Scalar,
    /// `scalar / 2`: multiplying by it and then using `double_and_compress_batch`
    /// yields `compress(scalar * P)` at a fraction of the cost of compressing
    /// each point on its own.
    half: Scalar,
}

impl Drop for SessionKey {
    fn drop(&mut self) {
        self.scalar.zeroize();
        self.half.zeroize();
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(<redacted>)")
    }
}

impl SessionKey {
    /// A fresh uniformly random non-zero scalar from a CSPRNG (ChaCha12, seeded and
    /// periodically reseeded by the operating system).
    pub fn random() -> Self {
        loop {
            let mut wide = [0u8; 64];
            rand::rng().fill_bytes(&mut wide);
            let scalar = Scalar::from_bytes_mod_order_wide(&wide);
            wide.zeroize();
            if scalar != Scalar::ZERO {
                return Self::from_scalar(scalar);
            }
        }
    }

    /// For the known-answer tests (RFC 9497 vectors) and the transcript checks.
    pub fn from_scalar(scalar: Scalar) -> Self {
        let half = scalar * Scalar::from(2u8).invert();
        Self { scalar, half }
    }

    /// For the masking proofs (`dleq`), which need the bare scalar.
    pub(crate) fn scalar(&self) -> &Scalar {
        &self.scalar
    }

    /// The committed public key `scalar * B`.
    pub fn public(&self) -> PointBytes {
        RistrettoPoint::mul_base(&self.scalar).compress().to_bytes()
    }

    /// `scalar * P`, for single points (tests, proofs).
    pub fn mul(&self, point: &RistrettoPoint) -> RistrettoPoint {
        self.scalar * point
    }
}

/// Why a received point was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadPoint {
    /// Not the canonical encoding of a ristretto255 point.
    NotCanonical { index: usize },
    /// The identity element: masking it reveals nothing and it cannot come from
    /// hashing an identifier, so it marks a broken or malicious peer.
    Identity { index: usize },
}

impl BadPoint {
    pub fn index(self) -> usize {
        match self {
            BadPoint::NotCanonical { index } | BadPoint::Identity { index } => index,
        }
    }
}

impl std::fmt::Display for BadPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadPoint::NotCanonical { index } => {
                write!(f, "point #{index} is not a canonical ristretto255 encoding")
            }
            BadPoint::Identity { index } => write!(f, "point #{index} is the identity"),
        }
    }
}

/// Decodes one received point strictly.
pub fn decode_point(bytes: &PointBytes, index: usize) -> Result<RistrettoPoint, BadPoint> {
    let point = CompressedRistretto(*bytes)
        .decompress()
        .ok_or(BadPoint::NotCanonical { index })?;
    if point == RistrettoPoint::default() {
        return Err(BadPoint::Identity { index });
    }
    Ok(point)
}

/// Reinterprets a peer's byte string as points. `None` if the length is not a
/// multiple of 32.
pub fn split_points(bytes: &[u8]) -> Option<Vec<PointBytes>> {
    if !bytes.len().is_multiple_of(32) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(32)
            .map(|c| {
                let mut p = [0u8; 32];
                p.copy_from_slice(c);
                p
            })
            .collect(),
    )
}

/// `compress(k * P_i)` for the points `point_of(0..count)`, computed in
/// parallel; hashing to the group happens inside `point_of`, so it is spread
/// over the cores too.
pub fn mask_each<F>(key: &SessionKey, count: usize, point_of: F) -> Vec<PointBytes>
where
    F: Fn(usize) -> RistrettoPoint + Sync,
{
    let mut out = vec![[0u8; 32]; count];
    out.par_chunks_mut(PAR_GRAIN)
        .enumerate()
        .for_each(|(chunk, slots)| {
            let start = chunk * PAR_GRAIN;
            let halves: Vec<RistrettoPoint> =
                (0..slots.len()).map(|j| key.half * point_of(start + j)).collect();
            for (slot, c) in slots
                .iter_mut()
                .zip(RistrettoPoint::double_and_compress_batch(&halves))
            {
                *slot = c.to_bytes();
            }
        });
    out
}

/// Decodes received points strictly and masks them: `compress(k * P_i)`.
/// Fails on the first bad point (by index within `points`).
pub fn decode_and_mask(key: &SessionKey, points: &[PointBytes]) -> Result<Vec<PointBytes>, BadPoint> {
    let decoded: Vec<RistrettoPoint> = points
        .par_iter()
        .enumerate()
        .map(|(i, p)| decode_point(p, i))
        .collect::<Result<_, _>>()?;
    Ok(mask_each(key, decoded.len(), |i| decoded[i]))
}

/// Checks that every point decodes strictly, without masking.
pub fn validate_points(points: &[PointBytes]) -> Result<(), BadPoint> {
    points
        .par_iter()
        .enumerate()
        .try_for_each(|(i, p)| decode_point(p, i).map(|_| ()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hash::{HashToGroup, ID_DST};
    use proptest::prelude::*;

    #[test]
    fn batched_masking_equals_plain_multiplication() {
        let key = SessionKey::random();
        let h = HashToGroup::new(ID_DST);
        let msgs: Vec<Vec<u8>> = (0..700u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let masked = mask_each(&key, msgs.len(), |i| h.hash(&[&msgs[i]]));
        for (m, got) in msgs.iter().zip(&masked) {
            let want = (key.scalar() * h.hash(&[m])).compress().to_bytes();
            assert_eq!(*got, want);
        }
    }

    #[test]
    fn masking_commutes() {
        let (r, s) = (SessionKey::random(), SessionKey::random());
        let h = HashToGroup::new(ID_DST);
        let x: Vec<Vec<u8>> = (0..50u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let u = mask_each(&r, x.len(), |i| h.hash(&[&x[i]]));
        let w = mask_each(&s, x.len(), |i| h.hash(&[&x[i]]));
        let v = decode_and_mask(&s, &u).expect("own points decode");
        let rw = decode_and_mask(&r, &w).expect("own points decode");
        assert_eq!(v, rw);
    }

    #[test]
    fn identity_and_garbage_are_refused() {
        let key = SessionKey::random();
        let good = (RistrettoPoint::mul_base(&Scalar::from(7u8)))
            .compress()
            .to_bytes();
        assert_eq!(
            decode_and_mask(&key, &[good, [0u8; 32]]),
            Err(BadPoint::Identity { index: 1 })
        );
        let mut non_canonical = [0xffu8; 32];
        non_canonical[31] = 0x7f;
        assert_eq!(
            validate_points(&[good, good, non_canonical]),
            Err(BadPoint::NotCanonical { index: 2 })
        );
    }

    #[test]
    fn split_points_rejects_ragged_lengths() {
        assert!(split_points(&[0u8; 33]).is_none());
        assert_eq!(split_points(&[1u8; 64]).map(|p| p.len()), Some(2));
    }

    #[test]
    fn key_debug_is_redacted() {
        assert_eq!(format!("{:?}", SessionKey::random()), "SessionKey(<redacted>)");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Some(points) = split_points(&bytes) {
                let _ = decode_and_mask(&SessionKey::random(), &points);
            }
        }

        #[test]
        fn mask_then_unmask_roundtrips(seed in any::<[u8; 32]>()) {
            let key = SessionKey::random();
            let p = HashToGroup::new(ID_DST).hash(&[&seed]);
            let masked = decode_and_mask(&key, &[p.compress().to_bytes()]).expect("valid");
            let back = decode_point(&masked[0], 0).expect("valid") * key.scalar().invert();
            prop_assert_eq!(back, p);
        }
    }
}
