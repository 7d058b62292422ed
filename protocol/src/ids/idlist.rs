//! The de-duplicated, normalized identifiers of one dataset, packed into one
//! buffer: a million phone numbers take about 20 MB instead of the 50 MB that a
//! `Vec<String>` would.

use crate::ids::normalize::{IdKind, convert};

/// Normalized identifiers of one kind, sorted and de-duplicated. Its `Debug`
/// shows the kind and the count only.
#[derive(Clone, PartialEq, Eq)]
pub struct IdList {
    kind: IdKind,
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl std::fmt::Debug for IdList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdList")
            .field("kind", &self.kind)
            .field("len", &self.len())
            .finish()
    }
}

impl IdList {
    /// Sorts and de-duplicates `values` (already normalized for `kind`).
    pub fn from_normalized(kind: IdKind, mut values: Vec<String>) -> Self {
        values.sort_unstable();
        values.dedup();
        let total = values.iter().map(String::len).sum();
        let mut bytes = Vec::with_capacity(total);
        let mut ends = Vec::with_capacity(values.len());
        for v in values {
            bytes.extend_from_slice(v.as_bytes());
            ends.push(bytes.len());
        }
        Self { kind, bytes, ends }
    }

    /// Sorts and de-duplicates identifiers gathered in packed chunks (as
    /// parallel normalization produces them) without ever holding one `String`
    /// per identifier: about 2.2 times the packed size at the peak.
    pub fn from_packed(kind: IdKind, chunks: Vec<PackedIds>) -> Self {
        Self::sort_packed(kind, chunks, false).0
    }

    /// As [`IdList::from_packed`], and also the position in the result of each
    /// input identifier (chunks concatenated in order), so that a caller can
    /// attach per-row data to the de-duplicated list without normalizing again.
    /// Costs 4 more bytes per input identifier.
    pub fn from_packed_with_positions(kind: IdKind, chunks: Vec<PackedIds>) -> (Self, Vec<u32>) {
        let (list, positions) = Self::sort_packed(kind, chunks, true);
        (list, positions.unwrap_or_default())
    }

    fn sort_packed(kind: IdKind, chunks: Vec<PackedIds>, with_positions: bool) -> (Self, Option<Vec<u32>>) {
        use rayon::slice::ParallelSliceMut;
        let total: usize = chunks.iter().map(|c| c.bytes.len()).sum();
        let count: usize = chunks.iter().map(|c| c.ends.len()).sum();
        let mut unsorted = Self {
            kind,
            bytes: Vec::with_capacity(total),
            ends: Vec::with_capacity(count),
        };
        for chunk in chunks {
            let base = unsorted.bytes.len();
            unsorted.bytes.extend_from_slice(&chunk.bytes);
            unsorted
                .ends
                .extend(chunk.ends.iter().map(|&e| base + e as usize));
        }
        // Datasets are bounded far below 2^32 rows by the node's limits.
        let mut order: Vec<u32> = (0..count as u32).collect();
        order.par_sort_unstable_by(|&a, &b| unsorted.get(a as usize).cmp(unsorted.get(b as usize)));
        let positions = with_positions.then(|| {
            // Equal identifiers are adjacent after sorting, so each run of
            // equals gets the index the run's first member keeps after dedup.
            let mut positions = vec![0u32; count];
            let mut distinct = 0u32;
            for (k, &i) in order.iter().enumerate() {
                if k > 0 && unsorted.get(order[k - 1] as usize) != unsorted.get(i as usize) {
                    distinct += 1;
                }
                positions[i as usize] = distinct;
            }
            positions
        });
        order.dedup_by(|a, b| unsorted.get(*a as usize) == unsorted.get(*b as usize));
        let mut sorted = Self {
            kind,
            bytes: Vec::with_capacity(total),
            ends: Vec::with_capacity(order.len()),
        };
        for i in order {
            sorted.bytes.extend_from_slice(unsorted.get(i as usize));
            sorted.ends.push(sorted.bytes.len());
        }
        sorted.bytes.shrink_to_fit();
        (sorted, positions)
    }

    /// The identifiers at `positions` (ascending, each below `len()`), still
    /// sorted and distinct because the positions are.
    ///
    /// # Panics
    /// If a position is out of range.
    pub fn subset(&self, positions: &[u32]) -> IdList {
        debug_assert!(positions.windows(2).all(|w| w[0] < w[1]), "positions must ascend");
        let total = positions.iter().map(|&p| self.get(p as usize).len()).sum();
        let mut out = Self {
            kind: self.kind,
            bytes: Vec::with_capacity(total),
            ends: Vec::with_capacity(positions.len()),
        };
        for &p in positions {
            out.bytes.extend_from_slice(self.get(p as usize));
            out.ends.push(out.bytes.len());
        }
        out
    }

    pub fn kind(&self) -> IdKind {
        self.kind
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The i-th identifier, in sorted order.
    ///
    /// # Panics
    /// If `i >= len()`; callers index with positions from `0..len()`.
    pub fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    /// The message hashed to the group for the i-th identifier:
    /// `kind || 0x00 || normalized identifier` (PROTOCOLS.md, Notation).
    pub fn hash_parts(&self, i: usize) -> [&[u8]; 3] {
        [self.kind.label().as_bytes(), &[0u8], self.get(i)]
    }

    /// The same identifiers as `to` (for example phones as `sha256_phone`, to
    /// match a partner that only holds hashes). `None` if not convertible.
    pub fn converted(&self, to: IdKind) -> Option<IdList> {
        if to == self.kind {
            return Some(self.clone());
        }
        let values = (0..self.len())
            .map(|i| {
                let s = std::str::from_utf8(self.get(i)).ok()?;
                convert(self.kind, to, s)
            })
            .collect::<Option<Vec<String>>>()?;
        Some(Self::from_normalized(to, values))
    }

    /// Approximate heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * std::mem::size_of::<usize>()
    }
}

/// Identifiers appended one after another, unsorted: what one worker of a
/// parallel normalization produces.
#[derive(Default)]
pub struct PackedIds {
    bytes: Vec<u8>,
    /// End offset of each identifier within `bytes` (a chunk stays far below 4 GiB).
    ends: Vec<u32>,
}

impl PackedIds {
    pub fn push(&mut self, id: &str) {
        self.bytes.extend_from_slice(id.as_bytes());
        self.ends.push(self.bytes.len() as u32);
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_dedups_and_hides_values() {
        let list = IdList::from_normalized(
            IdKind::Email,
            vec!["b@x.cn".into(), "a@x.cn".into(), "b@x.cn".into()],
        );
        assert_eq!(list.len(), 2);
        assert_eq!(list.get(0), b"a@x.cn");
        assert_eq!(list.get(1), b"b@x.cn");
        assert_eq!(list.hash_parts(1), [&b"email"[..], &[0u8][..], &b"b@x.cn"[..]]);
        assert!(!format!("{list:?}").contains("x.cn"));
    }

    #[test]
    fn packed_chunks_equal_the_plain_construction() {
        let values = ["c", "a", "bb", "a", "", "c", "ab"];
        let mut chunks = vec![PackedIds::default(), PackedIds::default()];
        for (i, v) in values.iter().enumerate() {
            chunks[i % 2].push(v);
        }
        let packed = IdList::from_packed(IdKind::Custom, chunks);
        let plain = IdList::from_normalized(IdKind::Custom, values.iter().map(|s| s.to_string()).collect());
        assert_eq!(packed, plain);
        assert!(IdList::from_packed(IdKind::Custom, vec![]).is_empty());
    }

    #[test]
    fn positions_point_at_each_input_identifier() {
        let values = ["c", "a", "bb", "a", "", "c", "ab"];
        let mut chunks = vec![PackedIds::default(), PackedIds::default()];
        // Chunk 0 holds inputs 0..4, chunk 1 inputs 4..7: concatenation order.
        for (i, v) in values.iter().enumerate() {
            chunks[usize::from(i >= 4)].push(v);
        }
        let (list, positions) = IdList::from_packed_with_positions(IdKind::Custom, chunks);
        // Sorted: "", "a", "ab", "bb", "c".
        assert_eq!(list.len(), 5);
        assert_eq!(positions, vec![4, 1, 3, 1, 0, 4, 2]);
        for (i, v) in values.iter().enumerate() {
            assert_eq!(list.get(positions[i] as usize), v.as_bytes());
        }
        let (empty, none) = IdList::from_packed_with_positions(IdKind::Custom, vec![]);
        assert!(empty.is_empty() && none.is_empty());
    }

    #[test]
    fn subset_keeps_the_chosen_identifiers_in_order() {
        let list = IdList::from_normalized(
            IdKind::Custom,
            ["d", "a", "c", "b"].iter().map(|s| s.to_string()).collect(),
        );
        let sub = list.subset(&[0, 2, 3]);
        assert_eq!(sub.kind(), IdKind::Custom);
        assert_eq!(sub.len(), 3);
        assert_eq!([sub.get(0), sub.get(1), sub.get(2)], [&b"a"[..], b"c", b"d"]);
        assert_eq!(
            sub,
            IdList::from_normalized(IdKind::Custom, vec!["a".into(), "c".into(), "d".into()])
        );
        assert!(list.subset(&[]).is_empty());
        assert_eq!(list.subset(&[0, 1, 2, 3]), list);
    }

    #[test]
    fn empty_and_converted() {
        let empty = IdList::from_normalized(IdKind::Phone, vec![]);
        assert!(empty.is_empty());
        let phones = IdList::from_normalized(IdKind::Phone, vec!["+8613812345678".into()]);
        let hashed = phones.converted(IdKind::Sha256Phone).expect("convertible");
        assert_eq!(hashed.kind(), IdKind::Sha256Phone);
        assert_eq!(hashed.get(0).len(), 64);
        assert!(phones.converted(IdKind::Email).is_none());
    }
}
