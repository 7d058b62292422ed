use curve25519_dalek::traits::Identity;
use proptest::prelude::*;
use rand::{Rng, SeedableRng, rngs::StdRng};

use super::*;
use crate::{crypto::bsgs::BsgsTable, crypto::group::BadPoint};

const CONTEXT: &[u8] = b"session 0f3a/breakdown";

/// Small enough to build in milliseconds; the bound keeps each solve at a few
/// hundred giant steps at most.
const BSGS_K: u32 = 12;
const BOUND: u64 = 1 << 22;

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn keys(slots: usize, seed: u64) -> (SlotShares, SlotShares, JointKeys) {
    two_party_keys(slots, CONTEXT, &mut rng(seed)).expect("honest exchange")
}

fn bsgs() -> BsgsTable {
    BsgsTable::build(BSGS_K).expect("supported size")
}

/// Both shares, combined and solved: what the coordinator does.
fn decrypt(r: &SlotShares, s: &SlotShares, ct: &Ciphertext, table: &BsgsTable) -> Vec<Option<i64>> {
    let a = r.decryption_share(ct).expect("same slots");
    let b = s.decryption_share(ct).expect("same slots");
    ct.decrypt_to_points(&a, &b)
        .expect("same slots")
        .iter()
        .map(|p| table.vartime_solve(p, BOUND))
        .collect()
}

fn value(plain: Plain) -> i64 {
    match plain {
        Plain::Bit(bit) => i64::from(bit),
        Plain::Int(v) => v,
    }
}

fn random_row(rng: &mut StdRng, slots: usize) -> Vec<Plain> {
    (0..slots)
        .map(|k| {
            if k % 2 == 0 {
                Plain::Bit(rng.random())
            } else {
                Plain::Int(rng.random_range(-50_000..=50_000))
            }
        })
        .collect()
}

#[test]
fn signed_scalars_match_negation() {
    for v in [0i64, 1, -1, 42, -42, i64::MAX, i64::MIN, i64::MIN + 1] {
        let magnitude = Scalar::from(v.unsigned_abs());
        let want = if v < 0 { -magnitude } else { magnitude };
        assert_eq!(scalar_from_i64(v), want, "v = {v}");
    }
}

#[test]
fn point_if_selects() {
    let p = RistrettoPoint::mul_base(&Scalar::from(9u8));
    assert_eq!(point_if(true, &p), p);
    assert_eq!(point_if(false, &p), RistrettoPoint::identity());
}

#[test]
fn vectors_with_signed_values_round_trip() {
    let (r, s, keys) = keys(4, 1);
    let table = bsgs();
    let row = [
        Plain::Bit(true),
        Plain::Int(-1_234_567),
        Plain::Bit(false),
        Plain::Int(987_654),
    ];
    let ct = keys.encrypt(&row, &mut rng(2)).expect("4 slots");
    assert_eq!(
        decrypt(&r, &s, &ct, &table),
        vec![Some(1), Some(-1_234_567), Some(0), Some(987_654)]
    );
    let parsed = Ciphertext::from_bytes(&ct.to_bytes(), 4).expect("own encoding");
    assert_eq!(parsed, ct);
}

#[test]
fn one_share_is_not_enough() {
    let (r, s, keys) = keys(2, 3);
    let ct = keys
        .encrypt(&[Plain::Int(5), Plain::Int(-5)], &mut rng(4))
        .expect("2 slots");
    let a = r.decryption_share(&ct).expect("same slots");
    let b = s.decryption_share(&ct).expect("same slots");
    let want: Vec<RistrettoPoint> = [5, -5]
        .map(|m| RistrettoPoint::mul_base(&scalar_from_i64(m)))
        .to_vec();
    assert_eq!(ct.decrypt_to_points(&a, &b).expect("same slots"), want);
    assert_ne!(ct.decrypt_to_points(&a, &a).expect("same slots"), want);
    assert_ne!(ct.decrypt_to_points(&b, &b).expect("same slots"), want);
}

#[test]
fn sums_of_many_rows_decrypt_to_the_sums() {
    let (r, s, keys) = keys(3, 5);
    let table = bsgs();
    let mut data = rng(6);
    let mut cts = Vec::new();
    let mut want = [0i64; 3];
    for _ in 0..60 {
        let row = random_row(&mut data, 3);
        for (w, p) in want.iter_mut().zip(&row) {
            *w += value(*p);
        }
        cts.push(keys.encrypt(&row, &mut data).expect("3 slots"));
    }
    let total = Ciphertext::sum(3, &cts).expect("same slots");
    assert_eq!(decrypt(&r, &s, &total, &table), want.map(Some).to_vec());

    let mut acc = cts[0].clone();
    acc.accumulate(&cts[1]).expect("same slots");
    assert_eq!(acc, Ciphertext::sum(3, &cts[..2]).expect("same slots"));
}

#[test]
fn noise_shares_add_to_slots() {
    let (r, s, keys) = keys(2, 7);
    let table = bsgs();
    let mut ct = keys
        .encrypt(&[Plain::Int(100), Plain::Bit(true)], &mut rng(8))
        .expect("2 slots");
    ct.add_plaintexts(&[-3_000, 77]).expect("2 slots");
    ct.add_plaintext(1, -1).expect("slot 1 exists");
    assert_eq!(decrypt(&r, &s, &ct, &table), vec![Some(-2_900), Some(77)]);
    assert_eq!(
        ct.add_plaintext(2, 1),
        Err(ElGamalError::NoSuchSlot { slot: 2, slots: 2 })
    );
    assert!(matches!(
        ct.add_plaintexts(&[1]),
        Err(ElGamalError::SlotMismatch {
            expected: 2,
            got: 1,
            ..
        })
    ));
}

#[test]
fn rerandomized_ciphertexts_differ_but_decrypt_the_same() {
    let (r, s, keys) = keys(3, 9);
    let table = bsgs();
    let row = [Plain::Int(-42), Plain::Bit(true), Plain::Int(0)];
    let ct = keys.encrypt(&row, &mut rng(10)).expect("3 slots");
    let fresh = keys.rerandomize(&ct, &mut rng(11)).expect("3 slots");
    let original = ct.to_bytes();
    let rerandomized = fresh.to_bytes();
    for (a, b) in original.chunks(32).zip(rerandomized.chunks(32)) {
        assert_ne!(a, b, "every point must change");
    }
    assert_eq!(decrypt(&r, &s, &fresh, &table), vec![Some(-42), Some(1), Some(0)]);

    let zero = keys.encrypt_zero(&mut rng(12));
    assert_eq!(decrypt(&r, &s, &zero, &table), vec![Some(0); 3]);
}

#[test]
fn an_empty_sum_must_be_rerandomized_before_it_is_sent() {
    let (r, s, keys) = keys(2, 13);
    let empty = Ciphertext::sum(2, []).expect("no operands");
    assert!(matches!(
        Ciphertext::from_bytes(&empty.to_bytes(), 2),
        Err(ElGamalError::BadPoint {
            bad: BadPoint::Identity { index: 0 },
            ..
        })
    ));
    let sent = keys.rerandomize(&empty, &mut rng(14)).expect("2 slots");
    let parsed = Ciphertext::from_bytes(&sent.to_bytes(), 2).expect("valid now");
    assert_eq!(decrypt(&r, &s, &parsed, &bsgs()), vec![Some(0), Some(0)]);
}

#[test]
fn batch_encryption_matches_and_is_reproducible() {
    let (r, s, keys) = keys(3, 15);
    let table = bsgs();
    let mut data = rng(16);
    // 200 rows: several parallel tasks, the last one partial.
    let rows: Vec<Plain> = (0..200).flat_map(|_| random_row(&mut data, 3)).collect();
    let bytes = keys.encrypt_rows(&rows, &mut rng(17)).expect("whole rows");
    assert_eq!(bytes, keys.encrypt_rows(&rows, &mut rng(17)).expect("whole rows"));
    assert_ne!(bytes, keys.encrypt_rows(&rows, &mut rng(18)).expect("whole rows"));

    let cts = decode_ciphertexts(&bytes, 3).expect("own encoding");
    assert_eq!(cts.len(), 200);
    assert_eq!(encode_ciphertexts(&cts), bytes);
    for (ct, row) in cts.iter().zip(rows.chunks(3)) {
        let want: Vec<Option<i64>> = row.iter().map(|p| Some(value(*p))).collect();
        assert_eq!(decrypt(&r, &s, ct, &table), want);
    }
    assert_eq!(
        keys.encrypt_rows(&rows[..7], &mut rng(19)),
        Err(ElGamalError::RaggedRows { values: 7, slots: 3 })
    );
    assert_eq!(keys.encrypt_rows(&[], &mut rng(19)), Ok(Vec::new()));
}

#[test]
fn batched_decryption_shares_equal_single_ones() {
    // 90 ciphertexts span several parallel tasks, the last one partial.
    for slots in [2, 5] {
        let (r, _, keys) = keys(slots, 20 + slots as u64);
        let mut data = rng(21);
        let cts: Vec<Ciphertext> = (0..90)
            .map(|_| {
                keys.encrypt(&random_row(&mut data, slots), &mut data)
                    .expect("right width")
            })
            .collect();
        let batched = r.encoded_decryption_shares(&cts).expect("same slots");
        let single: Vec<u8> = cts
            .iter()
            .flat_map(|ct| r.decryption_share(ct).expect("same slots").to_bytes())
            .collect();
        assert_eq!(batched, single, "{slots} slots");
        let decoded = decode_decryption_shares(&batched, slots).expect("own encoding");
        assert_eq!(decoded.len(), cts.len());
        assert_eq!(
            DecryptionShare::from_bytes(&batched[..32 * slots], slots).expect("own encoding"),
            decoded[0]
        );
    }
}

#[test]
fn mismatched_slot_counts_are_refused() {
    let (r, _, keys) = keys(2, 22);
    let (_, _, wider) = keys_3();
    let ct = keys
        .encrypt(&[Plain::Int(1), Plain::Int(2)], &mut rng(23))
        .expect("2 slots");
    let wide = wider.encrypt(&[Plain::Int(1); 3], &mut rng(24)).expect("3 slots");
    assert!(matches!(
        keys.encrypt(&[Plain::Int(1)], &mut rng(25)),
        Err(ElGamalError::SlotMismatch { .. })
    ));
    assert!(matches!(
        ct.clone().accumulate(&wide),
        Err(ElGamalError::SlotMismatch { .. })
    ));
    assert!(matches!(
        Ciphertext::sum(2, [&ct, &wide]),
        Err(ElGamalError::SlotMismatch { .. })
    ));
    assert!(matches!(
        keys.rerandomize(&wide, &mut rng(26)),
        Err(ElGamalError::SlotMismatch { .. })
    ));
    assert!(matches!(
        r.decryption_share(&wide),
        Err(ElGamalError::SlotMismatch { .. })
    ));
    assert!(matches!(
        r.encoded_decryption_shares(&[wide]),
        Err(ElGamalError::SlotMismatch { .. })
    ));
    let share = r.decryption_share(&ct).expect("2 slots");
    let other =
        DecryptionShare::from_bytes(&[share.to_bytes(), share.to_bytes()].concat(), 4).expect("valid points");
    assert!(matches!(
        ct.decrypt_to_points(&share, &other),
        Err(ElGamalError::SlotMismatch { .. })
    ));
    assert!(matches!(
        SlotShares::generate(0, &mut rng(27)),
        Err(ElGamalError::NoSlots { .. })
    ));
}

fn keys_3() -> (SlotShares, SlotShares, JointKeys) {
    keys(3, 28)
}

#[test]
fn proofs_verify_only_for_their_key_and_context() {
    let mut r = rng(30);
    let share = KeyShare::generate(&mut r);
    let other = KeyShare::generate(&mut r);
    let proof = share.prove(b"session A/R/slot 0", &mut r);
    assert!(proof.verify(&share.public(), b"session A/R/slot 0").is_ok());
    assert_eq!(
        proof.verify(&share.public(), b"session B/R/slot 0"),
        Err(ElGamalError::BadProof { slot: 0 })
    );
    assert_eq!(
        proof.verify(&other.public(), b"session A/R/slot 0"),
        Err(ElGamalError::BadProof { slot: 0 })
    );
    let parsed = KeyProof::from_bytes(&proof.to_bytes()).expect("own encoding");
    assert_eq!(parsed, proof);
}

#[test]
fn every_tampered_proof_byte_is_caught() {
    let mut r = rng(31);
    let share = KeyShare::generate(&mut r);
    let bytes = share.prove(CONTEXT, &mut r).to_bytes();
    for at in 0..64 {
        for bit in [0, 3, 7] {
            let mut tampered = bytes;
            tampered[at] ^= 1 << bit;
            let verified = KeyProof::from_bytes(&tampered).and_then(|p| p.verify(&share.public(), CONTEXT));
            assert!(verified.is_err(), "byte {at} bit {bit}");
        }
    }
}

#[test]
fn offers_bind_session_role_and_slot() {
    let mut r = rng(32);
    let shares = SlotShares::generate(3, &mut r).expect("3 slots");
    let offer = shares.offer(b"session A/S", &mut r);
    let bytes = offer.to_bytes();
    assert_eq!(bytes.len(), 3 * 96);
    let parsed = KeyOffer::from_bytes(&bytes, 3).expect("own encoding");
    assert_eq!(parsed, offer);
    assert_eq!(parsed.verify(b"session A/S").map(|v| v.slots()), Ok(3));
    assert!(matches!(
        parsed.verify(b"session A/R"),
        Err(ElGamalError::BadProof { slot: 0 })
    ));
    assert!(matches!(
        parsed.verify(b"session B/S"),
        Err(ElGamalError::BadProof { .. })
    ));

    // Slots 0 and 1 swapped, each with its own proof: the proofs name the slot.
    let mut swapped = bytes.clone();
    swapped[..96].copy_from_slice(&bytes[96..192]);
    swapped[96..192].copy_from_slice(&bytes[..96]);
    let swapped = KeyOffer::from_bytes(&swapped, 3).expect("valid points");
    assert_eq!(
        swapped.verify(b"session A/S"),
        Err(ElGamalError::BadProof { slot: 0 })
    );
}

#[test]
fn an_echoed_share_is_refused() {
    let mut r = rng(33);
    let own = SlotShares::generate(2, &mut r).expect("2 slots");
    let echoed = own.offer(b"s/R", &mut r).verify(b"s/R").expect("valid");
    assert!(matches!(
        JointKeys::combine(&own, &echoed),
        Err(ElGamalError::EchoedShare { slot: 0 })
    ));
    let single = KeyShare::generate(&mut r);
    let proof = single.prove(b"s/R", &mut r);
    let echoed = proof.verify(&single.public(), b"s/R").expect("valid");
    assert_eq!(
        JointKey::combine(&single, &echoed),
        Err(ElGamalError::EchoedShare { slot: 0 })
    );
}

#[test]
fn joint_keys_agree_from_every_side() {
    let mut r = rng(34);
    let (a, b) = (
        SlotShares::generate(2, &mut r).expect("2 slots"),
        SlotShares::generate(2, &mut r).expect("2 slots"),
    );
    let from_a = a.offer(b"s/R", &mut r).verify(b"s/R").expect("valid");
    let from_b = b.offer(b"s/S", &mut r).verify(b"s/S").expect("valid");
    let at_a = JointKeys::combine(&a, &from_b).expect("distinct shares");
    let at_b = JointKeys::combine(&b, &from_a).expect("distinct shares");
    let auditor = JointKeys::from_verified(&from_a, &from_b).expect("distinct shares");
    assert_eq!(at_a.to_bytes(), at_b.to_bytes());
    assert_eq!(at_a.to_bytes(), auditor.to_bytes());
    let single = JointKey::from_verified(&from_a.shares()[1], &from_b.shares()[1]).expect("distinct");
    assert_eq!(single, at_a.keys()[1]);
}

#[test]
fn identity_and_non_canonical_encodings_are_refused() {
    let (r, _, keys) = keys(2, 35);
    let good = keys
        .encrypt(&[Plain::Int(1), Plain::Int(2)], &mut rng(36))
        .expect("2 slots")
        .to_bytes();
    let mut non_canonical = [0xffu8; 32];
    non_canonical[31] = 0x7f;

    let mut identity_c1 = good.clone();
    identity_c1[..32].fill(0);
    assert!(matches!(
        Ciphertext::from_bytes(&identity_c1, 2),
        Err(ElGamalError::BadPoint {
            bad: BadPoint::Identity { index: 0 },
            ..
        })
    ));
    let mut bad_c2 = good.clone();
    bad_c2[64..].copy_from_slice(&non_canonical);
    assert!(matches!(
        Ciphertext::from_bytes(&bad_c2, 2),
        Err(ElGamalError::BadPoint {
            bad: BadPoint::NotCanonical { index: 2 },
            ..
        })
    ));
    assert!(matches!(
        Ciphertext::from_bytes(&good[..64], 2),
        Err(ElGamalError::Length { .. })
    ));
    assert!(matches!(
        Ciphertext::from_bytes(&good, 0),
        Err(ElGamalError::NoSlots { .. })
    ));

    let list = [good.clone(), bad_c2].concat();
    assert!(matches!(
        decode_ciphertexts(&list, 2),
        Err(ElGamalError::BadPoint {
            bad: BadPoint::NotCanonical { index: 5 },
            ..
        })
    ));
    assert!(matches!(
        decode_ciphertexts(&list[1..], 2),
        Err(ElGamalError::Length { .. })
    ));

    let share = r
        .decryption_share(&Ciphertext::from_bytes(&good, 2).expect("valid"))
        .expect("2 slots")
        .to_bytes();
    let mut identity_share = share.clone();
    identity_share[32..].fill(0);
    assert!(matches!(
        DecryptionShare::from_bytes(&identity_share, 2),
        Err(ElGamalError::BadPoint {
            bad: BadPoint::Identity { index: 1 },
            ..
        })
    ));
    assert!(matches!(
        decode_decryption_shares(&[share.clone(), identity_share].concat(), 2),
        Err(ElGamalError::BadPoint {
            bad: BadPoint::Identity { index: 3 },
            ..
        })
    ));

    assert!(matches!(
        PublicShare::from_bytes(&[0u8; 32]),
        Err(ElGamalError::BadPoint { .. })
    ));
    assert!(matches!(
        PublicShare::from_bytes(&non_canonical),
        Err(ElGamalError::BadPoint { .. })
    ));
}

#[test]
fn offers_with_bad_encodings_are_refused() {
    let mut r = rng(37);
    let shares = SlotShares::generate(2, &mut r).expect("2 slots");
    let bytes = shares.offer(CONTEXT, &mut r).to_bytes();

    let mut identity_key = bytes.clone();
    identity_key[96..128].fill(0);
    assert!(matches!(
        KeyOffer::from_bytes(&identity_key, 2),
        Err(ElGamalError::BadPoint {
            bad: BadPoint::Identity { index: 2 },
            ..
        })
    ));
    let mut identity_commitment = bytes.clone();
    identity_commitment[32..64].fill(0);
    assert!(matches!(
        KeyOffer::from_bytes(&identity_commitment, 2),
        Err(ElGamalError::BadPoint {
            bad: BadPoint::Identity { index: 1 },
            ..
        })
    ));
    // The response plus the group order: the same value mod l, not canonical.
    let mut unreduced = bytes.clone();
    let response =
        Scalar::from_canonical_bytes(unreduced[160..192].try_into().expect("32 bytes")).expect("canonical");
    let mut plus_l = [0u8; 32];
    // l = 2^252 + 27742317777372353535851937790883648493, little-endian.
    let l = hex::decode("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010").expect("hex");
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(response.as_bytes()[i]) + u16::from(l[i]) + carry;
        plus_l[i] = sum as u8;
        carry = sum >> 8;
    }
    unreduced[160..192].copy_from_slice(&plus_l);
    assert!(matches!(
        KeyOffer::from_bytes(&unreduced, 2),
        Err(ElGamalError::NonCanonicalScalar { slot: 1 })
    ));
    assert!(matches!(
        KeyOffer::from_bytes(&bytes[..100], 2),
        Err(ElGamalError::Length { .. })
    ));
    assert!(matches!(
        KeyOffer::from_bytes(&bytes, 0),
        Err(ElGamalError::NoSlots { .. })
    ));
}

#[test]
fn secrets_and_plaintexts_print_redacted() {
    let shares = SlotShares::generate(2, &mut rng(38)).expect("2 slots");
    let shown = format!("{shares:?} {:?} {:?}", shares.shares[0], Plain::Int(123_456));
    assert!(!shown.contains("123456"), "{shown}");
    assert_eq!(shown.matches("<redacted>").count(), 4, "{shown}");
}

#[test]
fn many_random_rows_round_trip() {
    let (r, s, keys) = keys(3, 39);
    let table = bsgs();
    let mut data = rng(40);
    let b = BOUND as i64;
    for _ in 0..40 {
        let row = [
            Plain::Int(data.random_range(-b..=b)),
            Plain::Bit(data.random()),
            Plain::Int(data.random_range(-100..=100)),
        ];
        let mut ct = keys.encrypt(&row, &mut data).expect("3 slots");
        let noise = [
            data.random_range(-1000..=1000),
            0,
            data.random_range(-1000..=1000),
        ];
        ct.add_plaintexts(&noise).expect("3 slots");
        let ct = keys.rerandomize(&ct, &mut data).expect("3 slots");
        let want: Vec<Option<i64>> = row
            .iter()
            .zip(noise)
            .map(|(p, n)| {
                let m = value(*p) + n;
                (m.unsigned_abs() <= BOUND).then_some(m)
            })
            .collect();
        assert_eq!(decrypt(&r, &s, &ct, &table), want);
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), slots in 0usize..4) {
        let _ = Ciphertext::from_bytes(&bytes, slots);
        let _ = decode_ciphertexts(&bytes, slots);
        let _ = DecryptionShare::from_bytes(&bytes, slots);
        let _ = decode_decryption_shares(&bytes, slots);
        if let Ok(offer) = KeyOffer::from_bytes(&bytes, slots) {
            prop_assert!(offer.verify(CONTEXT).is_err());
        }
    }
}

/// Small measures are looked up, not multiplied: the same plaintexts at every
/// digit boundary, and a value outside the range is refused by position.
#[test]
fn small_measures_encrypt_like_multiplied_ones() {
    let values = [0i64, 1, 31, 32, 33, 999, 1000, 1023];
    let layout = |small_measures| OneHot {
        groups: 1,
        count: false,
        measures: values.len(),
        small_measures,
    };
    let (r, s, keys) = keys(values.len(), 41);
    let table = bsgs();
    for small in [true, false] {
        let bytes = keys
            .encrypt_one_hot(layout(small), &[0], &values, &mut rng(42))
            .expect("in range");
        let ct = Ciphertext::from_bytes(&bytes, values.len()).expect("one row");
        let got: Vec<i64> = decrypt(&r, &s, &ct, &table)
            .into_iter()
            .map(|v| v.expect("solved"))
            .collect();
        assert_eq!(got, values, "small: {small}");
    }
    assert_eq!(layout(true).multiplications_per_row(), 1 + values.len());
    for bad in [-1, 1024, i64::MAX] {
        let mut row = values;
        row[3] = bad;
        assert_eq!(
            keys.encrypt_one_hot(layout(true), &[0], &row, &mut rng(43)),
            Err(ElGamalError::NotSmall { index: 3 })
        );
    }
}
