//! The cover each party puts on what it sends, so that no list length and no
//! match count its peer (or the relay, or a transcript reader) sees is exact
//! (PROTOCOLS.md, threat model v2; README, "Leakage").
//!
//! - **Pads.** Every list or batch a party sends carries `pad` random points
//!   beyond its rows. The node draws `pad = offset + Z`, Z a discrete
//!   Gaussian conditioned on |Z| ≤ offset, so `length − offset` is the
//!   list's size with noise the node chose.
//! - **Dummies** (a sender, for the receiver's match counts). Dummy `j` is
//!   `t_j·B` in W and `t_j·K_R` in one batch of V, `K_R = r·B` being the
//!   receiver's announced session key: the receiver's masking turns the
//!   first into the second, so it counts as a match. Batch `b` of V gets
//!   `c_b` such partners (the sender's noise draw) and `2·offset − c_b`
//!   random points, so V's length says nothing of `c_b`, and the receiver
//!   sees each batch's matches plus a number it cannot tell from real ones.
//!   Their payloads encrypt zeros, so released sums are untouched; the
//!   receiver subtracts the known mean `offset` from a count it releases.
//!
//! Both kinds of point pass through the owner's masking like any other, so
//! they are uniformly random to whoever does not know the scalars.
//!
//! This module only places points; the node draws the counts (with the
//! exact sampler, before the session) and charges them to its ledger.

use curve25519_dalek::{constants::RISTRETTO_BASEPOINT_TABLE, ristretto::RistrettoPoint, scalar::Scalar};
use rand::RngCore;
use zeroize::Zeroize;

use crate::error::ProtocolError;

/// What one party adds to its lists in one lane, as its node drew it.
#[derive(Clone, PartialEq, Eq)]
pub struct Cover {
    /// Random points added to each batch this party sends: a receiver's
    /// batches of U, in batch order, or a sender's one list W.
    pub pads: Vec<u64>,
    /// The mean of each pad, announced so the peer can compute noised sizes.
    pub pad_offset: u64,
    /// A sender's matching dummies per receiver batch, each at most
    /// `2 * dummy_offset`. Empty for a receiver.
    pub dummies: Vec<u64>,
    pub dummy_offset: u64,
}

impl std::fmt::Debug for Cover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The draws are noise: whoever knew them could take them off again.
        f.debug_struct("Cover")
            .field("batches", &self.pads.len())
            .field("pad_offset", &self.pad_offset)
            .field("dummy_batches", &self.dummies.len())
            .field("dummy_offset", &self.dummy_offset)
            .finish_non_exhaustive()
    }
}

impl Cover {
    /// No cover: exact sizes and counts (test deployments' exact runs only).
    pub fn none(pad_batches: usize, dummy_batches: usize) -> Self {
        Self {
            pads: vec![0; pad_batches],
            pad_offset: 0,
            dummies: vec![0; dummy_batches],
            dummy_offset: 0,
        }
    }

    /// Random points in V per receiver batch, besides the answers to U.
    pub fn dummy_width(&self) -> u64 {
        self.dummy_offset.saturating_mul(2)
    }

    /// Checks the shape against the lane: `pad_batches` pads, and for a
    /// sender one dummy count per receiver batch within the width.
    pub fn check(&self, pad_batches: usize, dummy_batches: usize) -> Result<(), ProtocolError> {
        let shape = |what| Err(ProtocolError::Shape { what });
        if self.pads.len() != pad_batches {
            return shape("the cover does not give one pad per batch this party sends");
        }
        if self.dummies.len() != dummy_batches {
            return shape("the cover does not give one dummy count per receiver batch");
        }
        if self.dummies.iter().any(|&c| c > self.dummy_width()) {
            return shape("a batch has more dummies than its announced width");
        }
        let points = self
            .pads
            .iter()
            .chain(&self.dummies)
            .try_fold(0u64, |a, &c| a.checked_add(c));
        if points.is_none_or(|p| p > u64::from(u32::MAX) / 2) {
            return shape("the cover adds more points than a list can hold");
        }
        Ok(())
    }

    pub fn total_pads(&self) -> u64 {
        self.pads.iter().sum()
    }

    pub fn total_dummies(&self) -> u64 {
        self.dummies.iter().sum()
    }
}

/// A uniformly random point: a pad, or a filler among a batch's dummies.
pub(crate) fn random_point() -> RistrettoPoint {
    let mut wide = [0u8; 64];
    rand::rng().fill_bytes(&mut wide);
    RistrettoPoint::from_uniform_bytes(&wide)
}

fn random_scalar() -> Scalar {
    let mut wide = [0u8; 64];
    rand::rng().fill_bytes(&mut wide);
    let s = Scalar::from_bytes_mod_order_wide(&wide);
    wide.zeroize();
    s
}

/// One party's matching dummies: their secret scalars, by batch of the
/// list they answer. Zeroized on drop: a scalar tells its dummy apart.
pub(crate) struct Dummies {
    scalars: Vec<Scalar>,
    /// `starts[b]..starts[b + 1]` are batch `b`'s dummies.
    starts: Vec<usize>,
    width: usize,
}

impl Drop for Dummies {
    fn drop(&mut self) {
        self.scalars.zeroize();
    }
}

impl Dummies {
    /// Fresh scalars for `per_batch[b]` dummies in each batch; every batch
    /// of answers is padded to `width` points.
    pub(crate) fn new(per_batch: &[u64], width: u64) -> Self {
        let mut starts = Vec::with_capacity(per_batch.len() + 1);
        let mut total = 0usize;
        starts.push(0);
        for &c in per_batch {
            total += c as usize;
            starts.push(total);
        }
        Self {
            scalars: (0..total).map(|_| random_scalar()).collect(),
            starts,
            width: width as usize,
        }
    }

    pub(crate) fn none() -> Self {
        Self::new(&[], 0)
    }

    pub(crate) fn len(&self) -> usize {
        self.scalars.len()
    }

    /// Dummy `j`'s point in this party's own list: `t_j·B`.
    pub(crate) fn base(&self, j: usize) -> RistrettoPoint {
        &self.scalars[j] * RISTRETTO_BASEPOINT_TABLE
    }

    /// The points that answer batch `b` besides the peer's own: `t_j·K` for
    /// the batch's dummies, `K` the peer's session key, then random points
    /// up to the width. The caller masks them with its own key, as it masks
    /// the peer's points, and shuffles them in.
    pub(crate) fn answers(&self, batch: usize, peer_key: &RistrettoPoint) -> Vec<RistrettoPoint> {
        let (from, to) = match (self.starts.get(batch), self.starts.get(batch + 1)) {
            (Some(&a), Some(&b)) => (a, b),
            _ => (0, 0),
        };
        let mut out: Vec<RistrettoPoint> = self.scalars[from..to].iter().map(|t| t * peer_key).collect();
        while out.len() < self.width {
            out.push(random_point());
        }
        out
    }
}

/// What one position of a party's list holds: rows first, then dummies,
/// then pads, as indices `0..rows + dummies + pads` that the party shuffles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    Row(usize),
    Dummy(usize),
    Pad,
}

/// How many of each a list holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) rows: usize,
    pub(crate) dummies: usize,
    pub(crate) pads: usize,
}

impl Layout {
    pub(crate) fn len(&self) -> usize {
        self.rows + self.dummies + self.pads
    }

    pub(crate) fn entry(&self, index: u32) -> Entry {
        let i = index as usize;
        if i < self.rows {
            Entry::Row(i)
        } else if i < self.rows + self.dummies {
            Entry::Dummy(i - self.rows)
        } else {
            Entry::Pad
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::group::SessionKey;

    #[test]
    fn a_dummy_matches_through_the_receivers_masking() {
        let r = SessionKey::random();
        let s = SessionKey::random();
        let key_r = r.mul(&curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT);
        let dummies = Dummies::new(&[2, 0, 1], 4);
        assert_eq!(dummies.len(), 3);
        // Batch 0: two partners and two fillers; batch 1: four fillers.
        let answers = dummies.answers(0, &key_r);
        assert_eq!(answers.len(), 4);
        for j in 0..2 {
            // W holds s*(t_j*B); R masks it: r*s*t_j*B.
            let in_w = s.mul(&dummies.base(j));
            let seen_by_r = r.mul(&in_w);
            // V holds s*(t_j*K_R).
            assert_eq!(seen_by_r, s.mul(&answers[j]));
            assert!(answers[2..].iter().all(|f| s.mul(f) != seen_by_r));
        }
        assert_eq!(dummies.answers(1, &key_r).len(), 4);
        assert_eq!(dummies.answers(2, &key_r)[0], dummies.base(2) * r_scalar(&r));
    }

    fn r_scalar(r: &SessionKey) -> Scalar {
        *r.scalar()
    }

    #[test]
    fn covers_are_checked_against_the_lane() {
        let mut c = Cover::none(2, 3);
        assert!(c.check(2, 3).is_ok());
        assert!(c.check(1, 3).is_err());
        assert!(c.check(2, 2).is_err());
        c.dummy_offset = 2;
        c.dummies = vec![4, 0, 5];
        assert!(c.check(2, 3).is_err(), "5 dummies exceed a width of 4");
        c.dummies = vec![4, 0, 1];
        assert!(c.check(2, 3).is_ok());
        c.pads = vec![u64::MAX, 1];
        assert!(c.check(2, 3).is_err());
    }

    #[test]
    fn layouts_number_rows_then_dummies_then_pads() {
        let l = Layout {
            rows: 2,
            dummies: 1,
            pads: 2,
        };
        let entries: Vec<Entry> = (0..l.len() as u32).map(|i| l.entry(i)).collect();
        assert_eq!(
            entries,
            vec![
                Entry::Row(0),
                Entry::Row(1),
                Entry::Dummy(0),
                Entry::Pad,
                Entry::Pad
            ]
        );
    }
}
