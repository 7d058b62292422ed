use curve25519_dalek::{
    ristretto::{CompressedRistretto, RistrettoPoint},
    scalar::Scalar,
    traits::{Identity, VartimeMultiscalarMul},
};
use proptest::prelude::*;

use super::*;

fn unhex(s: &str) -> PointBytes {
    hex::decode(s).expect("hex").try_into().expect("32 bytes")
}

/// RFC 9496, appendix A.1: `[0]B .. [15]B`.
const SMALL_MULTIPLES: [&str; 16] = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76",
    "6a493210f7499cd17fecb510ae0cea23a110e8d5b901f8acadd3095c73a3b919",
    "94741f5d5d52755ece4f23f044ee27d5d1ea1e2bd196b462166b16152a9d0259",
    "da80862773358b466ffadfe0b3293ab3d9fd53c5ea6c955358f568322daf6a57",
    "e882b131016b52c1d3337080187cf768423efccbb517bb495ab812c4160ff44e",
    "f64746d3c92b13050ed8d80236a7f0007c3b3f962f5ba793d19a601ebb1df403",
    "44f53520926ec81fbd5a387845beb7df85a96a24ece18738bdcfa6a7822a176d",
    "903293d8f2287ebe10e2374dc1a53e0bc887e592699f02d077d5263cdd55601c",
    "02622ace8f7303a31cafc63f8fc48fdc16e1c8c8d234b2f0d6685282a9076031",
    "20706fd788b2720a1ed2a5dad4952b01f413bcf0e7564de8cdc816689e2db95f",
    "bce83f8ba5dd2fa572864c24ba1810f9522bc6004afe95877ac73241cafdab42",
    "e4549ee16b9aa03099ca208c67adafcafa4c3f3e4e5303de6026e3ca8ff84460",
    "aa52e000df2e16f55fb1032fc33bc42742dad6bd5a8fc0be0167436c5948501f",
    "46376b80f409b29dc2b5f6f0c52591990896e5716f41477cd30085ab7f10301e",
    "e0c418f7c8d9c4cdd7395b93ea124f3ad99021bb681dfc3302a9d99a2e53e64e",
];

/// RFC 9496, appendix A.2: non-canonical, negative, non-square, negative
/// `xy`, and `s = -1`.
const BAD_ENCODINGS: [&str; 29] = [
    "00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "f3ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "ed57ffd8c914fb201471d1c3d245ce3c746fcbe63a3679d51b6a516ebebe0e20",
    "c34c4e1826e5d403b78e246e88aa051c36ccf0aafebffe137d148a2bf9104562",
    "c940e5a4404157cfb1628b108db051a8d439e1a421394ec4ebccb9ec92a8ac78",
    "47cfc5497c53dc8e61c91d17fd626ffb1c49e2bca94eed052281b510b1117a24",
    "f1c6165d33367351b0da8f6e4511010c68174a03b6581212c71c0e1d026c3c72",
    "87260f7a2f12495118360f02c26a470f450dadf34a413d21042b43b9d93e1309",
    "26948d35ca62e643e26a83177332e6b6afeb9d08e4268b650f1f5bbd8d81d371",
    "4eac077a713c57b4f4397629a4145982c661f48044dd3f96427d40b147d9742f",
    "de6a7b00deadc788eb6b6c8d20c0ae96c2f2019078fa604fee5b87d6e989ad7b",
    "bcab477be20861e01e4a0e295284146a510150d9817763caf1a6f4b422d67042",
    "2a292df7e32cababbd9de088d1d1abec9fc0440f637ed2fba145094dc14bea08",
    "f4a9e534fc0d216c44b218fa0c42d99635a0127ee2e53c712f70609649fdff22",
    "8268436f8c4126196cf64b3c7ddbda90746a378625f9813dd9b8457077256731",
    "2810e5cbc2cc4d4eece54f61c6f69758e289aa7ab440b3cbeaa21995c2f4232b",
    "3eb858e78f5a7254d8c9731174a94f76755fd3941c0ac93735c07ba14579630e",
    "a45fdc55c76448c049a1ab33f17023edfb2be3581e9c7aade8a6125215e04220",
    "d483fe813c6ba647ebbfd3ec41adca1c6130c2beeee9d9bf065c8d151c5f396e",
    "8a2e1d30050198c65a54483123960ccc38aef6848e1ec8f5f780e8523769ba32",
    "32888462f8b486c68ad7dd9610be5192bbeaf3b443951ac1a8118419d9fa097b",
    "227142501b9d4355ccba290404bde41575b037693cef1f438c47f8fbf35d1165",
    "5c37cc491da847cfeb9281d407efc41e15144c876e0170b499a96a22ed31e01e",
    "445425117cb8c90edcbc7c1cc0e74f747f2c1efa5630a967c64f287792a48a4b",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];

fn point(seed: u64) -> RistrettoPoint {
    RistrettoPoint::mul_base(&Scalar::from(seed).invert())
}

/// Decodes with the hint and encodes again through a weight-one sum, which
/// exercises the decoding, the additions and the encoding together.
fn roundtrip(bytes: &PointBytes) -> Option<PointBytes> {
    let h = hint(bytes)?;
    let a = decode(bytes, &h)?;
    Some(vartime_weighted_sum(&[1], &[a]).encode())
}

#[test]
fn small_multiples_decode_and_encode_as_published() {
    for (i, s) in SMALL_MULTIPLES.iter().enumerate() {
        let bytes = unhex(s);
        assert_eq!(
            RistrettoPoint::mul_base(&Scalar::from(i as u64))
                .compress()
                .to_bytes(),
            bytes,
            "vector {i}"
        );
        if i == 0 {
            // The identity has a hint but is left to the ordinary decoding,
            // which names it.
            assert!(hint(&bytes).is_some());
            assert!(decode(&bytes, &hint(&bytes).unwrap()).is_none());
            assert_eq!(Extended::IDENTITY.encode(), bytes);
        } else {
            assert_eq!(roundtrip(&bytes), Some(bytes), "vector {i}");
        }
    }
}

#[test]
fn published_bad_encodings_get_no_hint_and_never_decode() {
    for s in BAD_ENCODINGS {
        let bytes = unhex(s);
        assert!(CompressedRistretto(bytes).decompress().is_none(), "{s}");
        assert!(hint(&bytes).is_none(), "{s}");
        // No hint makes them decode either: not zeros, not a good point's.
        assert!(decode(&bytes, &[0; 32]).is_none(), "{s}");
        let other = hint(&unhex(SMALL_MULTIPLES[3])).unwrap();
        assert!(decode(&bytes, &other).is_none(), "{s}");
    }
}

#[test]
fn a_wrong_hint_never_checks() {
    let bytes = point(5).compress().to_bytes();
    let good = hint(&bytes).unwrap();
    assert!(decode(&bytes, &good).is_some());
    // The other root, -h, is negative.
    let negated = (-Fe::from_canonical(&good).unwrap()).to_bytes();
    assert!(decode(&bytes, &negated).is_none());
    // Another point's hint, a flipped bit, a short hint, a non-canonical one.
    let other = hint(&point(6).compress().to_bytes()).unwrap();
    assert!(decode(&bytes, &other).is_none());
    let mut flipped = good;
    flipped[7] ^= 4;
    assert!(decode(&bytes, &flipped).is_none());
    assert!(decode(&bytes, &good[..31]).is_none());
    assert!(decode(&bytes, &[0xff; 32]).is_none());
}

#[test]
fn hints_for_a_list_mark_garbage_with_zeros() {
    let good = point(9).compress().to_bytes();
    let bad = unhex(BAD_ENCODINGS[12]);
    let all = hints(&[good, bad, good]);
    assert_eq!(all.len(), 3 * HINT_LEN);
    assert_eq!(&all[..32], &hint(&good).unwrap());
    assert_eq!(&all[32..64], &[0u8; 32]);
    assert_eq!(&all[64..], &hint(&good).unwrap());
    assert!(hints(&[]).is_empty());
}

fn dalek_sum(weights: &[u128], points: &[RistrettoPoint]) -> RistrettoPoint {
    RistrettoPoint::vartime_multiscalar_mul(weights.iter().map(|w| Scalar::from(*w)), points)
}

fn hinted_sum(weights: &[u128], points: &[RistrettoPoint]) -> RistrettoPoint {
    let affine: Vec<Affine> = points
        .iter()
        .map(|p| {
            let b = p.compress().to_bytes();
            decode(&b, &hint(&b).unwrap()).unwrap()
        })
        .collect();
    vartime_weighted_sum(weights, &affine).to_dalek().unwrap()
}

#[test]
fn weighted_sums_equal_dalek_at_the_edges() {
    let points: Vec<RistrettoPoint> = (1..=40).map(point).collect();
    let extremes = [0, 1, 2, u128::MAX, 1 << 127, (1 << 127) - 1, 0x8000_8000_8000];
    for &w in &extremes {
        let weights = vec![w; points.len()];
        assert_eq!(
            hinted_sum(&weights, &points),
            dalek_sum(&weights, &points),
            "{w:#x}"
        );
    }
    assert_eq!(hinted_sum(&[], &[]), RistrettoPoint::identity());
    assert_eq!(hinted_sum(&[7], &points[..1]), points[0] * Scalar::from(7u64));
}

#[test]
fn weighted_sum_of_many_points_uses_a_wide_window_and_agrees() {
    let points: Vec<RistrettoPoint> = (1..=3000).map(point).collect();
    let weights: Vec<u128> = (0..3000u128)
        .map(|i| {
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
                .rotate_left(i as u32)
        })
        .collect();
    assert!(window_bits(points.len()) >= 8);
    assert_eq!(hinted_sum(&weights, &points), dalek_sum(&weights, &points));
}

#[test]
fn signed_digits_recompose_the_weight() {
    for c in 4..=16 {
        for w in [
            0u128,
            1,
            u128::MAX,
            1 << 127,
            0xdead_beef << 64,
            12345678901234567890,
        ] {
            let mut digits = vec![0i32; windows(c)];
            signed_digits(w, c, &mut digits);
            let half = 1i32 << (c - 1);
            assert!(digits.iter().all(|d| d.abs() <= half));
            // Recompose modulo 2^129 with Scalars, which cannot overflow.
            let radix = Scalar::from(1u64 << c);
            let value = digits.iter().rev().fold(Scalar::ZERO, |acc, d| {
                let d = if *d < 0 {
                    -Scalar::from((-d) as u64)
                } else {
                    Scalar::from(*d as u64)
                };
                acc * radix + d
            });
            assert_eq!(value, Scalar::from(w), "c = {c}, w = {w:#x}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The hinted decoding accepts exactly what dalek accepts (but the
    /// identity, left to dalek), and to the same point.
    #[test]
    fn hinted_decoding_agrees_with_dalek(bytes in any::<[u8; 32]>(), seed in 1u64..u64::MAX, valid in any::<bool>()) {
        let bytes = if valid { point(seed).compress().to_bytes() } else { bytes };
        let dalek = CompressedRistretto(bytes).decompress();
        match roundtrip(&bytes) {
            Some(encoded) => {
                prop_assert_eq!(encoded, bytes);
                prop_assert!(dalek.is_some());
            }
            None => prop_assert!(dalek.is_none() || bytes == [0; 32]),
        }
        prop_assert_eq!(hint(&bytes).is_some(), dalek.is_some());
    }

    #[test]
    fn weighted_sums_agree_with_dalek(weights in proptest::collection::vec(any::<u128>(), 0..70), first in 1u64..1000) {
        let points: Vec<RistrettoPoint> = (0..weights.len() as u64).map(|i| point(first + i)).collect();
        prop_assert_eq!(hinted_sum(&weights, &points), dalek_sum(&weights, &points));
    }
}
