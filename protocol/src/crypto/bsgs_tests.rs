use rand::{Rng, SeedableRng, rngs::StdRng};

use super::*;
use crate::{
    crypto::elgamal::scalar_from_i64,
    crypto::hash::{HashToGroup, ID_DST},
};

/// 2^12 baby steps: built in milliseconds, and a bound of 2^20 takes at most
/// 2^9 giant steps.
const K: u32 = 12;
const BOUND: u64 = 1 << 20;

fn times_b(m: i64) -> RistrettoPoint {
    RistrettoPoint::mul_base(&scalar_from_i64(m))
}

fn table() -> BsgsTable {
    BsgsTable::build(K).expect("supported size")
}

#[test]
fn every_baby_step_is_found() {
    let t = BsgsTable::build(8).expect("supported size");
    for j in 0..256u64 {
        let encoding = RistrettoPoint::mul_base(&Scalar::from(j)).compress();
        assert_eq!(t.lookup(&encoding), Some(j), "j = {j}");
    }
    assert_eq!(t.lookup(&times_b(256).compress()), None);
}

#[test]
fn solves_edges_and_random_values_in_range() {
    let t = table();
    let b = BOUND as i64;
    let step = 1i64 << K;
    let mut values = vec![
        0,
        1,
        -1,
        b,
        -b,
        b - 1,
        -b + 1,
        step,
        step - 1,
        -step,
        -step - 1,
        3 * step + 7,
    ];
    let mut rng = StdRng::seed_from_u64(7);
    values.extend((0..150).map(|_| rng.random_range(-b..=b)));
    for m in values {
        assert_eq!(t.vartime_solve(&times_b(m), BOUND), Some(m), "m = {m}");
    }
}

#[test]
fn values_beyond_the_bound_are_not_found() {
    let t = table();
    let b = BOUND as i64;
    for m in [
        b + 1,
        -b - 1,
        b + (1 << K),
        1 << 30,
        -(1 << 30),
        i64::MAX,
        i64::MIN,
    ] {
        assert_eq!(t.vartime_solve(&times_b(m), BOUND), None, "m = {m}");
    }
    let unrelated = HashToGroup::new(ID_DST).hash(&[b"not a small multiple"]);
    assert_eq!(t.vartime_solve(&unrelated, BOUND), None);
}

#[test]
fn bounds_smaller_than_a_window_are_exact() {
    let t = table();
    for (m, want) in [
        (100, Some(100)),
        (-100, Some(-100)),
        (101, None),
        (-101, None),
        (4000, None),
        (-4000, None),
    ] {
        assert_eq!(t.vartime_solve(&times_b(m), 100), want, "m = {m}");
    }
    assert_eq!(t.vartime_solve(&times_b(0), 0), Some(0));
    assert_eq!(t.vartime_solve(&times_b(1), 0), None);
}

#[test]
fn build_rejects_unsupported_sizes() {
    assert_eq!(
        BsgsTable::build(MIN_K - 1),
        Err(BsgsError::UnsupportedSize { k: MIN_K - 1 })
    );
    assert_eq!(
        BsgsTable::build(MAX_K + 1),
        Err(BsgsError::UnsupportedSize { k: MAX_K + 1 })
    );
}

#[test]
fn serialization_round_trips() {
    let t = table();
    let bytes = t.to_bytes();
    assert_eq!(bytes.len(), encoded_len(K));
    let back = BsgsTable::from_bytes(&bytes).expect("own encoding");
    assert_eq!(back, t);
    assert_eq!(back.vartime_solve(&times_b(-123_456), BOUND), Some(-123_456));
}

#[test]
fn corrupted_bytes_are_rejected() {
    let bytes = table().to_bytes();

    let mut rng = StdRng::seed_from_u64(11);
    for _ in 0..20 {
        let mut flipped = bytes.clone();
        let at = rng.random_range(HEADER_BYTES..bytes.len());
        flipped[at] ^= 1 << rng.random_range(0..8);
        assert_eq!(
            BsgsTable::from_bytes(&flipped),
            Err(BsgsError::Checksum),
            "byte {at}"
        );
    }

    let mut magic = bytes.clone();
    magic[0] ^= 0x20;
    assert_eq!(BsgsTable::from_bytes(&magic), Err(BsgsError::BadMagic));

    let mut version = bytes.clone();
    version[8] = 2;
    assert_eq!(
        BsgsTable::from_bytes(&version),
        Err(BsgsError::UnsupportedVersion { found: 2 })
    );

    let mut other_k = bytes.clone();
    other_k[12] = (K + 1) as u8;
    assert!(matches!(
        BsgsTable::from_bytes(&other_k),
        Err(BsgsError::Length { k, .. }) if k == K + 1
    ));

    let mut huge_k = bytes.clone();
    huge_k[12] = 200;
    assert_eq!(
        BsgsTable::from_bytes(&huge_k),
        Err(BsgsError::UnsupportedSize { k: 200 })
    );

    assert!(matches!(
        BsgsTable::from_bytes(&bytes[..bytes.len() - 1]),
        Err(BsgsError::Length { .. })
    ));
    assert_eq!(BsgsTable::from_bytes(&[]), Err(BsgsError::Truncated { got: 0 }));
}

/// Re-signs a modified table so that only the structural checks can catch it.
fn with_checksum(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.truncate(bytes.len() - CHECKSUM_BYTES);
    let checksum = Sha256::digest(&bytes);
    bytes.extend_from_slice(&checksum);
    bytes
}

#[test]
fn unsorted_tables_with_valid_checksums_are_rejected() {
    let mut t = table();
    t.entries.swap(10, 11);
    assert_eq!(
        BsgsTable::from_bytes(&with_checksum(t.to_bytes())),
        Err(BsgsError::Inconsistent {
            what: "entries out of order"
        })
    );
}

#[test]
fn a_wrong_entry_gives_a_miss_not_a_wrong_value() {
    let mut t = table();
    let target = t
        .entries
        .iter()
        .position(|e| e & index_mask(K) == 5)
        .expect("every j is present");
    t.entries[target] = (t.entries[target] & !index_mask(K)) | 6;
    assert_eq!(t.vartime_solve(&times_b(5), BOUND), None);
    assert_eq!(t.vartime_solve(&times_b(6), BOUND), Some(6));
}

#[test]
fn build_is_deterministic() {
    assert_eq!(table().to_bytes(), table().to_bytes());
}
