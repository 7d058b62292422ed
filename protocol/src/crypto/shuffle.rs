//! Uniformly random permutations from a CSPRNG (ChaCha12 seeded by the OS), so a
//! peer cannot map positions in a list back to rows.

use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};

/// A random permutation of `0..n`.
pub fn permutation(n: usize) -> Vec<u32> {
    // Datasets are bounded far below 2^32 rows by the node's limits.
    let mut order: Vec<u32> = (0..n as u32).collect();
    shuffle(&mut order);
    order
}

/// Shuffles in place (Fisher-Yates).
pub fn shuffle<T>(items: &mut [T]) {
    let mut rng = StdRng::from_os_rng();
    items.shuffle(&mut rng);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = permutation(1000);
        assert_ne!(p, (0..1000).collect::<Vec<u32>>(), "1/1000! chance of identity");
        p.sort_unstable();
        assert_eq!(p, (0..1000).collect::<Vec<u32>>());
        assert!(permutation(0).is_empty());
    }
}
