//! Recovery of a signed integer `m` from `m*B`, the last step of a joint
//! decryption (PROTOCOLS.md B.4), by baby-step giant-step.
//!
//! The table holds the baby steps `j*B` for `j` in `[0, 2^k)`. A search for
//! `|m| <= bound` tries the windows `[i*2^k, (i+1)*2^k)` for `i = 0, -1, 1,
//! -2, ...`, outward from 0, by looking `P - i*2^k*B` up in the table. Small
//! values, which most released counts are, are found in the first windows; a
//! value near the bound costs about `bound / 2^(k-1)` giant steps.
//!
//! Giant steps are computed on halved points (`P/2 - i*2^(k-1)*B`) so that a
//! batch of them compresses with one field inversion
//! (`RistrettoPoint::double_and_compress_batch`): compression, not the point
//! addition or the lookup, is what a giant step would otherwise cost.
//!
//! Layout: a baby step's key is the first 8 bytes of its encoding, read as a
//! little-endian `u64`. Each entry keeps the key's top `64 - k` bits above the
//! index `j` (the low `k` bits), and the entries are sorted, which groups them
//! into `2^(k-2)` buckets by the key's top `k - 2` bits; the bucket offsets are
//! recomputed on load. That is 8 bytes per baby step on disk and 9 in memory,
//! built in place, one or two cache lines per lookup. A key match is only a
//! candidate: the solver recomputes `j*B` and compares all 32 bytes before
//! answering, so neither a collision on the stored bits nor a corrupted
//! table can produce a wrong value, only a miss.
//!
//! The crate does not touch files: [`BsgsTable::to_bytes`] and
//! [`BsgsTable::from_bytes`] let the caller cache a table, with a header
//! (magic, format version, k) and a SHA-256 checksum that detects corruption.

use curve25519_dalek::{
    ristretto::{CompressedRistretto, RistrettoPoint},
    scalar::Scalar,
};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

/// Default table size: 2^24 baby steps, 144 MiB in memory and 128 MiB
/// cached, built in about 8 s on two cores. The cost of a search is about
/// `|m| / 2^(k-1)` giant steps of under a microsecond each: at the edge of
/// `±2^40` that is 2^17 steps, about 0.1 s, where k = 22 (36 MiB) would take
/// 0.4 s and k = 20 (9 MiB) 1.8 s. Sums of clipped measures over many people
/// do reach 2^35..2^40 and a release solves every cell, so the memory buys
/// real time; k = 26 (576 MiB) would not fit a small coordinator.
pub const DEFAULT_K: u32 = 24;

/// Smallest supported k: buckets take the top `k - 2` bits, and smaller
/// tables would save nothing.
pub const MIN_K: u32 = 4;

/// Largest supported k: `j` and the bucket offsets fit a `u32`, and 2^28 baby
/// steps already take 2.3 GiB.
pub const MAX_K: u32 = 28;

/// Bounds above this are treated as this: `m` must fit an `i64` with room for
/// a window, and a search that long would not finish anyway.
pub const MAX_BOUND: u64 = 1 << 62;

const MAGIC: [u8; 8] = *b"JNTBSGS\0";
/// Version of the byte layout written by [`BsgsTable::to_bytes`].
pub const FORMAT_VERSION: u32 = 1;
/// Magic, version, k.
const HEADER_BYTES: usize = 16;
const CHECKSUM_BYTES: usize = 32;

/// Baby steps per parallel task while building: amortizes the batched
/// compression's inversion.
const BUILD_CHUNK: usize = 4096;
/// Giant steps in the first batch of a search, growing fourfold up to
/// `MAX_BATCH`: a small value costs little, a large one amortizes the
/// inversion.
const FIRST_BATCH: usize = 8;
const MAX_BATCH: usize = 512;

/// Why a cached table cannot be used (the caller then rebuilds it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BsgsError {
    /// k outside `MIN_K..=MAX_K`.
    #[error("a baby-step table of 2^{k} entries is outside the supported range 2^{MIN_K}..=2^{MAX_K}")]
    UnsupportedSize { k: u32 },
    /// Shorter than a header and a checksum.
    #[error("a baby-step table of {got} bytes is truncated")]
    Truncated { got: usize },
    /// Not written by [`BsgsTable::to_bytes`].
    #[error("not a baby-step table (bad magic bytes)")]
    BadMagic,
    /// Written by another version of this crate.
    #[error("baby-step table format version {found}, this build reads version {FORMAT_VERSION}")]
    UnsupportedVersion { found: u32 },
    /// Wrong length for the k in the header.
    #[error("a baby-step table of 2^{k} entries takes {expected} bytes, got {got}")]
    Length { k: u32, expected: usize, got: usize },
    /// The content does not match its checksum.
    #[error("baby-step table checksum mismatch: the cached copy is corrupted")]
    Checksum,
    /// A valid checksum over an invalid table: not written by this crate.
    #[error("baby-step table is inconsistent ({what})")]
    Inconsistent { what: &'static str },
}

/// The baby steps `j*B`, `j` in `[0, 2^k)`, indexed by their encodings.
#[derive(Clone, PartialEq, Eq)]
pub struct BsgsTable {
    k: u32,
    /// `key & !(2^k - 1) | j`, sorted.
    entries: Vec<u64>,
    /// Bucket `b` holds `entries[offsets[b]..offsets[b + 1]]`: `2^(k-2) + 1`
    /// offsets, derived from `entries`.
    offsets: Vec<u32>,
    /// `2^(k-1) * B`, a giant step between halved points.
    half_giant: RistrettoPoint,
}

impl std::fmt::Debug for BsgsTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BsgsTable").field("k", &self.k).finish()
    }
}

fn check_k(k: u32) -> Result<(), BsgsError> {
    if (MIN_K..=MAX_K).contains(&k) {
        Ok(())
    } else {
        Err(BsgsError::UnsupportedSize { k })
    }
}

/// The first 8 bytes of an encoding. Encodings are field elements, so these
/// bits are uniform but for the lowest, which is always 0 and which no
/// entry keeps.
fn key_of(encoding: &[u8; 32]) -> u64 {
    let mut key = [0u8; 8];
    key.copy_from_slice(&encoding[..8]);
    u64::from_le_bytes(key)
}

fn index_mask(k: u32) -> u64 {
    (1u64 << k) - 1
}

/// The top `k - 2` bits of a key or an entry.
fn bucket_of(key: u64, k: u32) -> usize {
    (key >> (64 - (k - 2))) as usize
}

fn offsets_of(entries: &[u64], k: u32) -> Vec<u32> {
    let mut offsets = vec![0u32; (1usize << (k - 2)) + 1];
    for entry in entries {
        offsets[bucket_of(*entry, k) + 1] += 1;
    }
    for b in 1..offsets.len() {
        offsets[b] += offsets[b - 1];
    }
    offsets
}

fn encoded_len(k: u32) -> usize {
    HEADER_BYTES + 8 * (1usize << k) + CHECKSUM_BYTES
}

impl BsgsTable {
    /// Computes the `2^k` baby steps, in parallel.
    pub fn build(k: u32) -> Result<Self, BsgsError> {
        check_k(k)?;
        let half_base = RistrettoPoint::mul_base(&Scalar::ONE.div_by_2());
        let mask = index_mask(k);
        let mut entries = vec![0u64; 1usize << k];
        entries
            .par_chunks_mut(BUILD_CHUNK)
            .enumerate()
            .for_each(|(chunk, out)| {
                let first = (chunk * BUILD_CHUNK) as u64;
                let mut point = RistrettoPoint::mul_base(&Scalar::from(first).div_by_2());
                let mut halves = Vec::with_capacity(out.len());
                for _ in 0..out.len() {
                    halves.push(point);
                    point += half_base;
                }
                let encodings = RistrettoPoint::double_and_compress_batch(&halves);
                for ((dst, c), j) in out.iter_mut().zip(encodings).zip(first..) {
                    *dst = (key_of(c.as_bytes()) & !mask) | j;
                }
            });
        // Entries are distinct (their low bits are j), so the sorted order,
        // and with it the table's bytes, is a function of k alone.
        entries.par_sort_unstable();
        Ok(Self::from_entries(k, entries))
    }

    fn from_entries(k: u32, entries: Vec<u64>) -> Self {
        Self {
            k,
            offsets: offsets_of(&entries, k),
            entries,
            half_giant: RistrettoPoint::mul_base(&Scalar::from(1u64 << (k - 1))),
        }
    }

    /// The table holds `2^k` baby steps.
    pub fn k(&self) -> u32 {
        self.k
    }

    /// The `j` in `[0, 2^k)` with `j*B` encoded as `encoding`, checked on the
    /// full encoding.
    fn lookup(&self, encoding: &CompressedRistretto) -> Option<u64> {
        let key = key_of(encoding.as_bytes());
        let bucket = bucket_of(key, self.k);
        // In range: `bucket < 2^(k-2)`, and the offsets count the entries.
        let candidates = &self.entries[self.offsets[bucket] as usize..self.offsets[bucket + 1] as usize];
        let mask = index_mask(self.k);
        candidates
            .iter()
            .filter(|entry| *entry & !mask == key & !mask)
            .map(|entry| entry & mask)
            .find(|j| RistrettoPoint::mul_base(&Scalar::from(*j)).compress() == *encoding)
    }

    /// The `m` with `|m| <= bound` and `point = m*B`, if there is one. Bounds
    /// above [`MAX_BOUND`] count as `MAX_BOUND`.
    ///
    /// Variable time: the time taken reveals about how large `|m|` is.
    pub fn vartime_solve(&self, point: &RistrettoPoint, bound: u64) -> Option<i64> {
        let bound = bound.min(MAX_BOUND);
        let step = 1u64 << self.k;
        // Windows 0..up_end cover [0, bound]; windows -1..=-down_last cover
        // [-bound, -1]. All sit within ±2^63, far below the group order, so a
        // hit in any window is the only discrete logarithm in the range.
        let up_end = bound / step + 1;
        let down_last = bound.div_ceil(step);
        let mut up = point * Scalar::ONE.div_by_2();
        let mut down = up + self.half_giant;
        let (mut next_up, mut next_down) = (0u64, 1u64);
        let mut batch = FIRST_BATCH;
        let mut halves = Vec::with_capacity(MAX_BATCH + 1);
        let mut windows: Vec<i64> = Vec::with_capacity(MAX_BATCH + 1);
        while next_up < up_end || next_down <= down_last {
            halves.clear();
            windows.clear();
            while halves.len() < batch && (next_up < up_end || next_down <= down_last) {
                if next_up < up_end {
                    halves.push(up);
                    windows.push(next_up as i64);
                    up -= self.half_giant;
                    next_up += 1;
                }
                if next_down <= down_last {
                    halves.push(down);
                    windows.push(-(next_down as i64));
                    down += self.half_giant;
                    next_down += 1;
                }
            }
            for (window, encoding) in windows
                .iter()
                .zip(RistrettoPoint::double_and_compress_batch(&halves))
            {
                if let Some(j) = self.lookup(&encoding) {
                    let m = window * step as i64 + j as i64;
                    return (m.unsigned_abs() <= bound).then_some(m);
                }
            }
            batch = (batch * 4).min(MAX_BATCH);
        }
        None
    }

    /// Header (magic, format version, k as little-endian u32s), the sorted
    /// entries (little-endian u64s), then SHA-256 of all of it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(encoded_len(self.k));
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.k.to_le_bytes());
        for entry in &self.entries {
            out.extend_from_slice(&entry.to_le_bytes());
        }
        let checksum = Sha256::digest(&out);
        out.extend_from_slice(&checksum);
        out
    }

    /// Parses [`BsgsTable::to_bytes`]'s output, refusing anything corrupted.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BsgsError> {
        if bytes.len() < HEADER_BYTES + CHECKSUM_BYTES {
            return Err(BsgsError::Truncated { got: bytes.len() });
        }
        if bytes[..8] != MAGIC {
            return Err(BsgsError::BadMagic);
        }
        let word = |at: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&bytes[at..at + 4]);
            u32::from_le_bytes(w)
        };
        let version = word(8);
        if version != FORMAT_VERSION {
            return Err(BsgsError::UnsupportedVersion { found: version });
        }
        let k = word(12);
        check_k(k)?;
        let expected = encoded_len(k);
        if bytes.len() != expected {
            return Err(BsgsError::Length {
                k,
                expected,
                got: bytes.len(),
            });
        }
        let (body, checksum) = bytes.split_at(expected - CHECKSUM_BYTES);
        if Sha256::digest(body).as_slice() != checksum {
            return Err(BsgsError::Checksum);
        }
        let entries: Vec<u64> = body[HEADER_BYTES..]
            .chunks_exact(8)
            .map(|c| {
                let mut e = [0u8; 8];
                e.copy_from_slice(c);
                u64::from_le_bytes(e)
            })
            .collect();
        // Out of order, lookups would land in the wrong buckets.
        if entries.windows(2).any(|w| w[0] >= w[1]) {
            return Err(BsgsError::Inconsistent {
                what: "entries out of order",
            });
        }
        Ok(Self::from_entries(k, entries))
    }
}

#[cfg(test)]
#[path = "bsgs_tests.rs"]
mod tests;
