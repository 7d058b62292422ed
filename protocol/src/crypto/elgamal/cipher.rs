//! Ciphertexts: encryption, homomorphic addition, re-randomization,
//! decryption shares and their combination, and the wire encodings.

use curve25519_dalek::{
    constants::{RISTRETTO_BASEPOINT_POINT, RISTRETTO_BASEPOINT_TABLE},
    ristretto::RistrettoPoint,
    scalar::Scalar,
};
use rand::{CryptoRng, SeedableRng, rngs::StdRng};
use rayon::prelude::*;
use zeroize::Zeroize;

use super::{
    ElGamalError, Plain,
    keys::{JointKeys, SlotShares},
    plain_point, random_scalar, scalar_from_i64,
};
use crate::crypto::group::decode_point;

/// Points per parallel task when encrypting rows or computing decryption
/// shares: enough to amortize the single field inversion of
/// `double_and_compress_batch`, small enough to spread over the cores.
const POINTS_PER_TASK: usize = 256;

/// Writes `compress(2*P)` of every halved point into `out`, 32 bytes each,
/// with one field inversion for the whole batch.
fn write_doubled(halves: &[RistrettoPoint], out: &mut [u8]) {
    for (dst, c) in out
        .chunks_exact_mut(32)
        .zip(RistrettoPoint::double_and_compress_batch(halves))
    {
        dst.copy_from_slice(c.as_bytes());
    }
}

/// One seed per parallel task, drawn from `rng`, so that the output depends
/// on `rng` alone and not on the thread schedule.
fn task_seeds<R: CryptoRng + ?Sized>(tasks: usize, rng: &mut R) -> Vec<[u8; 32]> {
    (0..tasks)
        .map(|_| {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            seed
        })
        .collect()
}

/// `(c1, c2_1..c2_n) = (p*B, m_1*B + p*J_1, ..., m_n*B + p*J_n)`.
///
/// A sum of no ciphertexts has the identity as `c1`: it must be
/// re-randomized before it is sent, or the peer will refuse it.
#[derive(Clone, PartialEq, Eq)]
pub struct Ciphertext {
    c1: RistrettoPoint,
    c2: Vec<RistrettoPoint>,
}

impl std::fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ciphertext")
            .field("slots", &self.c2.len())
            .finish()
    }
}

fn check_slots(what: &'static str, expected: usize, got: usize) -> Result<(), ElGamalError> {
    if expected == got {
        Ok(())
    } else {
        Err(ElGamalError::SlotMismatch { what, expected, got })
    }
}

/// Strictly decodes consecutive points; `first` is the index of the first
/// one in the whole input, for errors.
fn decode_points(
    bytes: &[u8],
    first: usize,
    what: &'static str,
) -> Result<Vec<RistrettoPoint>, ElGamalError> {
    bytes
        .chunks_exact(32)
        .enumerate()
        .map(|(i, chunk)| {
            let mut point = [0u8; 32];
            point.copy_from_slice(chunk);
            decode_point(&point, first + i).map_err(|bad| ElGamalError::BadPoint { what, bad })
        })
        .collect()
}

/// A list of items of `unit` bytes each, or with `one`, a single item.
fn check_length(
    what: &'static str,
    len: usize,
    unit: usize,
    slots: usize,
    one: bool,
) -> Result<(), ElGamalError> {
    if slots == 0 {
        return Err(ElGamalError::NoSlots { what });
    }
    if !len.is_multiple_of(unit) || (one && len != unit) {
        return Err(ElGamalError::Length {
            what,
            unit,
            slots,
            got: len,
        });
    }
    Ok(())
}

impl Ciphertext {
    /// The neutral element of addition (not a valid encryption on its own).
    pub(crate) fn zero(slots: usize) -> Self {
        Self {
            c1: RistrettoPoint::default(),
            c2: vec![RistrettoPoint::default(); slots],
        }
    }

    pub fn slots(&self) -> usize {
        self.c2.len()
    }

    /// Homomorphic addition: afterwards `self` encrypts the slot-wise sum.
    pub fn accumulate(&mut self, other: &Ciphertext) -> Result<(), ElGamalError> {
        check_slots("ciphertext addition", self.slots(), other.slots())?;
        self.c1 += other.c1;
        for (a, b) in self.c2.iter_mut().zip(&other.c2) {
            *a += b;
        }
        Ok(())
    }

    /// The slot-wise sum of `cts`, each of `slots` slots.
    pub fn sum<'a, I>(slots: usize, cts: I) -> Result<Ciphertext, ElGamalError>
    where
        I: IntoIterator<Item = &'a Ciphertext>,
    {
        let mut total = Self::zero(slots);
        for ct in cts {
            total.accumulate(ct)?;
        }
        Ok(total)
    }

    /// Multiplies every slot's plaintext by the public `k` (a value
    /// bucket's weight): `k*c1, k*c2_i`, so `Enc(m)` becomes `Enc(k*m)`.
    pub fn scale(&mut self, k: u64) {
        let k = Scalar::from(k);
        self.c1 *= k;
        for c2 in &mut self.c2 {
            *c2 *= k;
        }
    }

    /// Adds a plaintext (e.g. a noise share) to one slot: `c2_slot += value*B`.
    pub fn add_plaintext(&mut self, slot: usize, value: i64) -> Result<(), ElGamalError> {
        let slots = self.slots();
        let c2 = self
            .c2
            .get_mut(slot)
            .ok_or(ElGamalError::NoSuchSlot { slot, slots })?;
        let mut m = scalar_from_i64(value);
        *c2 += &m * RISTRETTO_BASEPOINT_TABLE;
        m.zeroize();
        Ok(())
    }

    /// Adds one plaintext per slot.
    pub fn add_plaintexts(&mut self, values: &[i64]) -> Result<(), ElGamalError> {
        check_slots("plaintexts added to a ciphertext", self.slots(), values.len())?;
        for (slot, value) in values.iter().enumerate() {
            self.add_plaintext(slot, *value)?;
        }
        Ok(())
    }

    /// `m_k*B = c2_k - share_a,k - share_b,k` for every slot; recover `m_k`
    /// with [`crate::crypto::bsgs::BsgsTable::vartime_solve`].
    pub fn decrypt_to_points(
        &self,
        a: &DecryptionShare,
        b: &DecryptionShare,
    ) -> Result<Vec<RistrettoPoint>, ElGamalError> {
        check_slots("decryption share", self.slots(), a.slots())?;
        check_slots("decryption share", self.slots(), b.slots())?;
        Ok(self
            .c2
            .iter()
            .zip(&a.points)
            .zip(&b.points)
            .map(|((c2, x), y)| c2 - x - y)
            .collect())
    }

    /// `c1` then `c2_1..c2_n`, compressed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 * (self.slots() + 1));
        out.extend_from_slice(self.c1.compress().as_bytes());
        for c2 in &self.c2 {
            out.extend_from_slice(c2.compress().as_bytes());
        }
        out
    }

    /// Strict decoding of one ciphertext of `slots` slots: every point must be
    /// canonical and not the identity (PROTOCOLS.md, Notation).
    pub fn from_bytes(bytes: &[u8], slots: usize) -> Result<Self, ElGamalError> {
        check_length("ciphertext", bytes.len(), 32 * (slots + 1), slots, true)?;
        Self::parse(bytes, 0)
    }

    fn parse(bytes: &[u8], first: usize) -> Result<Self, ElGamalError> {
        let mut points = decode_points(bytes, first, "ciphertext")?;
        let c2 = points.split_off(1);
        Ok(Self { c1: points[0], c2 })
    }
}

/// Concatenated encodings of `cts`.
pub fn encode_ciphertexts(cts: &[Ciphertext]) -> Vec<u8> {
    cts.par_iter().flat_map_iter(|ct| ct.to_bytes()).collect()
}

/// Strict decoding of concatenated ciphertexts of `slots` slots each, in
/// parallel. A bad point's index counts points from the start of `bytes`.
pub fn decode_ciphertexts(bytes: &[u8], slots: usize) -> Result<Vec<Ciphertext>, ElGamalError> {
    let unit = 32 * (slots + 1);
    check_length("ciphertexts", bytes.len(), unit, slots, false)?;
    bytes
        .par_chunks_exact(unit)
        .enumerate()
        .map(|(i, chunk)| Ciphertext::parse(chunk, i * (slots + 1)))
        .collect()
}

/// One node's `sk_k * c1` for every slot of one ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct DecryptionShare {
    points: Vec<RistrettoPoint>,
}

impl std::fmt::Debug for DecryptionShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptionShare")
            .field("slots", &self.points.len())
            .finish()
    }
}

impl DecryptionShare {
    pub fn slots(&self) -> usize {
        self.points.len()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.points.iter().flat_map(|p| p.compress().to_bytes()).collect()
    }

    /// Strict decoding of one share of `slots` slots.
    pub fn from_bytes(bytes: &[u8], slots: usize) -> Result<Self, ElGamalError> {
        check_length("decryption share", bytes.len(), 32 * slots, slots, true)?;
        Ok(Self {
            points: decode_points(bytes, 0, "decryption share")?,
        })
    }
}

/// Strict decoding of concatenated decryption shares of `slots` slots each.
pub fn decode_decryption_shares(bytes: &[u8], slots: usize) -> Result<Vec<DecryptionShare>, ElGamalError> {
    check_length("decryption shares", bytes.len(), 32 * slots, slots, false)?;
    bytes
        .par_chunks_exact(32 * slots)
        .enumerate()
        .map(|(i, chunk)| {
            decode_points(chunk, i * slots, "decryption shares").map(|points| DecryptionShare { points })
        })
        .collect()
}

impl JointKeys {
    /// Appends `c1 = q*B` and `c2_k = q*J_k + m_k*B`, with every plaintext
    /// point halved if `halved`.
    fn push_points(&self, q: &Scalar, row: &[Plain], halved: bool, out: &mut Vec<RistrettoPoint>) {
        out.push(q * RISTRETTO_BASEPOINT_TABLE);
        for (plain, table) in row.iter().zip(&self.tables) {
            out.push(q * table + plain_point(*plain, halved, &RISTRETTO_BASEPOINT_POINT, &self.half_base));
        }
    }

    /// Encrypts one row of `slots` plaintexts with one fresh randomness.
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &self,
        row: &[Plain],
        rng: &mut R,
    ) -> Result<Ciphertext, ElGamalError> {
        check_slots("plaintext row", self.slots(), row.len())?;
        let mut p = random_scalar(rng);
        let mut points = Vec::with_capacity(row.len() + 1);
        self.push_points(&p, row, false, &mut points);
        p.zeroize();
        let c2 = points.split_off(1);
        Ok(Ciphertext { c1: points[0], c2 })
    }

    /// A fresh encryption of zero in every slot.
    pub fn encrypt_zero<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> Ciphertext {
        let mut p = random_scalar(rng);
        let ct = Ciphertext {
            c1: &p * RISTRETTO_BASEPOINT_TABLE,
            c2: self.tables.iter().map(|table| &p * table).collect(),
        };
        p.zeroize();
        ct
    }

    /// `ct + Enc(0)` with fresh randomness: the same plaintexts, unlinkable to
    /// `ct` for whoever knows `ct`'s randomness.
    pub fn rerandomize<R: CryptoRng + ?Sized>(
        &self,
        ct: &Ciphertext,
        rng: &mut R,
    ) -> Result<Ciphertext, ElGamalError> {
        check_slots("re-randomized ciphertext", self.slots(), ct.slots())?;
        let mut out = self.encrypt_zero(rng);
        out.accumulate(ct)?;
        Ok(out)
    }

    /// Encrypts consecutive rows of `slots` plaintexts each (row-major) and
    /// returns their concatenated wire encodings, in parallel.
    ///
    /// Each task draws its randomness from a ChaCha12 stream seeded by `rng`,
    /// so the output depends on `rng` alone, not on the thread schedule.
    pub fn encrypt_rows<R: CryptoRng + ?Sized>(
        &self,
        rows: &[Plain],
        rng: &mut R,
    ) -> Result<Vec<u8>, ElGamalError> {
        let n = self.slots();
        if !rows.len().is_multiple_of(n) {
            return Err(ElGamalError::RaggedRows {
                values: rows.len(),
                slots: n,
            });
        }
        let width = n + 1;
        let rows_per_task = (POINTS_PER_TASK / width).max(1);
        let tasks = (rows.len() / n).div_ceil(rows_per_task);
        let mut seeds = task_seeds(tasks, rng);
        let mut out = vec![0u8; rows.len() / n * width * 32];
        out.par_chunks_mut(rows_per_task * width * 32)
            .zip(rows.par_chunks(rows_per_task * n))
            .zip(seeds.par_iter())
            .for_each(|((out, rows), seed)| {
                let mut task_rng = StdRng::from_seed(*seed);
                let mut halves = Vec::with_capacity(out.len() / 32);
                for row in rows.chunks_exact(n) {
                    // The halved points use q = p/2 as randomness; p = 2q is
                    // as uniform as q since the group order is odd.
                    let mut q = random_scalar(&mut task_rng);
                    self.push_points(&q, row, true, &mut halves);
                    q.zeroize();
                }
                write_doubled(&halves, out);
            });
        seeds.zeroize();
        Ok(out)
    }
}

/// How a breakdown sender's row fills the slots of its payload: per
/// statistic (the count if `count`, then each measure), one slot per sender
/// group, statistic-major. A row of group `g` puts 1 (count) or its value
/// (measure) in its group's slot of each statistic and 0 everywhere else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OneHot {
    pub groups: usize,
    pub count: bool,
    pub measures: usize,
    /// Every measure is in `0..SMALL_MEASURE_LIMIT` (attribution credits): its
    /// point is looked up in constant time instead of multiplied. Which
    /// path is taken is public (it follows from the query), so the timing
    /// says nothing about the values.
    pub small_measures: bool,
}

/// The group of a payload row that belongs to no group: a sender's dummy or
/// pad, whose payload encrypts 0 in every slot (count included) and so moves
/// no released value. Its measures must be 0.
pub const ZERO_ROW: u32 = u32::MAX;

/// Measures below this take the lookup path of [`OneHot::small_measures`].
pub const SMALL_MEASURE_LIMIT: i64 = 1 << (2 * SMALL_DIGIT_BITS);
const SMALL_DIGIT_BITS: u32 = 5;
const SMALL_DIGITS: usize = 1 << SMALL_DIGIT_BITS;

/// `(d/2)*B` and `(32*d/2)*B` for digits `d` in `0..32`: a small measure's
/// halved point is one entry of each plus one addition.
struct SmallPoints {
    low: Vec<RistrettoPoint>,
    high: Vec<RistrettoPoint>,
}

static SMALL_POINTS: std::sync::LazyLock<SmallPoints> = std::sync::LazyLock::new(|| {
    let half = |v: i64| &scalar_from_i64(v).div_by_2() * RISTRETTO_BASEPOINT_TABLE;
    SmallPoints {
        low: (0..SMALL_DIGITS as i64).map(half).collect(),
        high: (0..SMALL_DIGITS as i64)
            .map(|d| half(d * SMALL_DIGITS as i64))
            .collect(),
    }
});

/// Reads every entry, so the time does not depend on the index.
fn select(table: &[RistrettoPoint], index: usize) -> RistrettoPoint {
    use subtle::{ConditionallySelectable, ConstantTimeEq};
    let mut out = RistrettoPoint::default();
    for (i, p) in table.iter().enumerate() {
        out.conditional_assign(p, (i as u64).ct_eq(&(index as u64)));
    }
    out
}

/// `(v/2)*B` for `v` in `0..SMALL_MEASURE_LIMIT`, in constant time.
fn small_half_point(v: i64) -> RistrettoPoint {
    let v = v as usize;
    let table = &*SMALL_POINTS;
    select(&table.low, v % SMALL_DIGITS) + select(&table.high, v / SMALL_DIGITS)
}

impl OneHot {
    pub fn stats(&self) -> usize {
        usize::from(self.count) + self.measures
    }

    /// Saturating: a shape from a peer or a planner can name near
    /// usize::MAX groups; the lane's size check then refuses it.
    pub fn slots(&self) -> usize {
        self.groups.saturating_mul(self.stats())
    }

    /// The slot of statistic `stat` (0 is the count when there is one) for `group`.
    pub fn slot(&self, stat: usize, group: usize) -> usize {
        stat * self.groups + group
    }

    /// Fixed-base multiplications per row: the randomness times `B` and
    /// every joint key, plus one per measure value.
    pub fn multiplications_per_row(&self) -> usize {
        1 + self.slots() + if self.small_measures { 0 } else { self.measures }
    }
}

impl JointKeys {
    /// Encrypts one payload per row (PROTOCOLS.md B.2): row `i` is in group
    /// `groups[i]` and has measures `measures[i*M..(i+1)*M]`. Returns the
    /// concatenated ciphertexts, computed in parallel.
    ///
    /// A measure's point `v*B` is computed once per row and placed in its
    /// group's slot by a constant-time select, so a row costs `1 + slots + M`
    /// fixed-base multiplications, not `1 + slots + M*groups`, and the time
    /// does not depend on which group the row is in.
    pub fn encrypt_one_hot<R: CryptoRng + ?Sized>(
        &self,
        layout: OneHot,
        groups: &[u32],
        measures: &[i64],
        rng: &mut R,
    ) -> Result<Vec<u8>, ElGamalError> {
        check_slots("one-hot payload", self.slots(), layout.slots())?;
        let m = layout.measures;
        if measures.len() != groups.len() * m {
            return Err(ElGamalError::RaggedRows {
                values: measures.len(),
                slots: m,
            });
        }
        if let Some(&g) = groups
            .iter()
            .find(|&&g| g != ZERO_ROW && g as usize >= layout.groups)
        {
            return Err(ElGamalError::NoSuchSlot {
                slot: g as usize,
                slots: layout.groups,
            });
        }
        if let Some(row) = groups
            .iter()
            .enumerate()
            .position(|(i, &g)| g == ZERO_ROW && measures[i * m..(i + 1) * m].iter().any(|&v| v != 0))
        {
            return Err(ElGamalError::ZeroRowMeasures { row });
        }
        if layout.small_measures
            && let Some(index) = measures
                .iter()
                .position(|v| !(0..SMALL_MEASURE_LIMIT).contains(v))
        {
            return Err(ElGamalError::NotSmall { index });
        }
        let width = layout.slots() + 1;
        let rows_per_task = (POINTS_PER_TASK / width).max(1);
        let tasks = groups.len().div_ceil(rows_per_task);
        let mut seeds = task_seeds(tasks, rng);
        let mut out = vec![0u8; groups.len() * width * 32];
        let measure_chunk = rows_per_task * m;
        out.par_chunks_mut(rows_per_task * width * 32)
            .zip(groups.par_chunks(rows_per_task))
            .zip(seeds.par_iter())
            .enumerate()
            .for_each(|(task, ((out, groups), seed))| {
                let measures = &measures[(task * measure_chunk).min(measures.len())..];
                let mut task_rng = StdRng::from_seed(*seed);
                let mut halves = Vec::with_capacity(out.len() / 32);
                let mut values = Vec::with_capacity(m);
                for (i, &g) in groups.iter().enumerate() {
                    let mut q = random_scalar(&mut task_rng);
                    halves.push(&q * RISTRETTO_BASEPOINT_TABLE);
                    values.clear();
                    for v in &measures[i * m..(i + 1) * m] {
                        if layout.small_measures {
                            values.push(small_half_point(*v));
                        } else {
                            let mut half = scalar_from_i64(*v).div_by_2();
                            values.push(&half * RISTRETTO_BASEPOINT_TABLE);
                            half.zeroize();
                        }
                    }
                    let mut tables = self.tables.iter();
                    for stat in 0..layout.stats() {
                        let plain = if layout.count && stat == 0 {
                            &self.half_base
                        } else {
                            &values[stat - usize::from(layout.count)]
                        };
                        for slot_group in 0..layout.groups {
                            // Both tables and slots follow the layout's order.
                            let Some(table) = tables.next() else { break };
                            let hit = slot_group as u32 == g;
                            halves.push(&q * table + super::point_if(hit, plain));
                        }
                    }
                    q.zeroize();
                }
                write_doubled(&halves, out);
            });
        seeds.zeroize();
        Ok(out)
    }
}

impl SlotShares {
    /// Appends `sk_k * c1` (or `sk_k/2 * c1` if `halved`) for every slot.
    ///
    /// Variable-base multiplications: a table for `c1` costs about 1.5 ms to
    /// build (one field inversion per entry), some 75 multiplications.
    fn push_share(&self, c1: &RistrettoPoint, halved: bool, out: &mut Vec<RistrettoPoint>) {
        out.extend(self.shares.iter().map(|share| {
            let scalar = if halved { &share.half } else { &share.secret };
            scalar * c1
        }));
    }

    /// This node's decryption share of `ct`.
    ///
    /// Only for ciphertexts this node produced or was handed in the release
    /// step of this session (PROTOCOLS.md B.4): a share of an arbitrary
    /// ciphertext, combined with the peer's, decrypts it.
    pub fn decryption_share(&self, ct: &Ciphertext) -> Result<DecryptionShare, ElGamalError> {
        check_slots("ciphertext to decrypt", self.slots(), ct.slots())?;
        let mut points = Vec::with_capacity(self.slots());
        self.push_share(&ct.c1, false, &mut points);
        Ok(DecryptionShare { points })
    }

    /// The concatenated encodings of this node's decryption shares of `cts`,
    /// in parallel, under the same restriction as
    /// [`SlotShares::decryption_share`].
    pub fn encoded_decryption_shares(&self, cts: &[Ciphertext]) -> Result<Vec<u8>, ElGamalError> {
        let n = self.slots();
        for ct in cts {
            check_slots("ciphertext to decrypt", n, ct.slots())?;
        }
        let cts_per_task = (POINTS_PER_TASK / n).max(1);
        let mut out = vec![0u8; cts.len() * n * 32];
        out.par_chunks_mut(cts_per_task * n * 32)
            .zip(cts.par_chunks(cts_per_task))
            .for_each(|(out, cts)| {
                let mut halves = Vec::with_capacity(out.len() / 32);
                for ct in cts {
                    self.push_share(&ct.c1, true, &mut halves);
                }
                write_doubled(&halves, out);
            });
        Ok(out)
    }
}
