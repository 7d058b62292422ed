//! Additive ("exponential") ElGamal on ristretto255 under a key that two nodes
//! share (PROTOCOLS.md, section B).
//!
//! Each node holds one secret share per slot ([`SlotShares`]) and proves
//! knowledge of it ([`KeyProof`]), so that neither can choose its public share
//! as a function of the other's (a rogue key would let it decrypt alone). The
//! joint key of slot `k` is `J_k = pk_R,k + pk_S,k` ([`JointKeys`]).
//!
//! A vector `m_1..m_n` is encrypted with one randomness `p` for all slots,
//! `(p*B, m_1*B + p*J_1, ..., m_n*B + p*J_n)` ([`Ciphertext`]): the slots' keys
//! are independent, so this is multi-recipient ElGamal and stays semantically
//! secure under DDH while costing `n + 1` fixed-base multiplications instead of
//! `2n`. Every multiplication by `B` or by a `J_k` goes through a precomputed
//! table.
//!
//! Decryption needs both nodes: each sends `sk_k * c1` ([`DecryptionShare`]) to
//! the coordinator, which computes `m_k*B = c2_k - share_R,k - share_S,k` and
//! recovers `m_k` with [`crate::crypto::bsgs`].
//!
//! Scalars derived from secrets or plaintexts are computed in constant time;
//! parsing and proof verification, which handle public data, are not.
//!
//! Wire layout (all points compressed, 32 bytes): a ciphertext is `c1` then
//! `c2_1..c2_n`; a decryption share is `d_1..d_n`; a key offer is, per slot,
//! the public share, the proof's commitment and the proof's response.

mod cipher;
mod keys;

use curve25519_dalek::{constants::RISTRETTO_BASEPOINT_TABLE, ristretto::RistrettoPoint, scalar::Scalar};
use rand::CryptoRng;
use zeroize::Zeroize;

use crate::crypto::group::BadPoint;

pub use cipher::{
    Ciphertext, DecryptionShare, OneHot, ZERO_ROW, decode_ciphertexts, decode_decryption_shares,
    encode_ciphertexts,
};
pub use keys::{
    JointKey, JointKeys, KeyOffer, KeyProof, KeyShare, PublicShare, SlotShares, VerifiedShare,
    VerifiedShares, two_party_keys,
};

/// Why an ElGamal value cannot be built, parsed or combined.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ElGamalError {
    /// A key set, ciphertext or share needs at least one slot.
    #[error("{what}: at least one slot is needed")]
    NoSlots { what: &'static str },
    /// Two values that must have the same number of slots do not.
    #[error("{what}: expected {expected} slots, got {got}")]
    SlotMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A slot index past the last slot.
    #[error("slot {slot} does not exist: there are {slots} slots")]
    NoSuchSlot { slot: usize, slots: usize },
    /// A measure declared small is not in `0..SMALL_MEASURE_LIMIT` (its
    /// position among the measures, never its value).
    #[error("measure {index} is not in the small range the layout declares")]
    NotSmall { index: usize },
    /// A dummy row ([`ZERO_ROW`]) given a measure other than 0 (its
    /// position, never the value).
    #[error("payload row {row} belongs to no group but carries a measure")]
    ZeroRowMeasures { row: usize },
    /// A flat list of plaintexts that is not a whole number of rows.
    #[error("{values} plaintexts are not a whole number of rows of {slots} slots")]
    RaggedRows { values: usize, slots: usize },
    /// Bytes of the wrong length for the announced number of slots or items.
    #[error("{what}: expected {unit} bytes per item ({slots} slots), got {got}")]
    Length {
        what: &'static str,
        unit: usize,
        slots: usize,
        got: usize,
    },
    /// A point that is not canonically encoded, or is the identity. The index
    /// counts points from the start of the decoded bytes.
    #[error("{what}: {bad}")]
    BadPoint { what: &'static str, bad: BadPoint },
    /// A proof response that is not a canonical scalar.
    #[error("key slot {slot}: the proof's response is not a canonical scalar")]
    NonCanonicalScalar { slot: usize },
    /// A proof of knowledge that does not verify for this key and context.
    #[error("key slot {slot}: the proof of knowledge of the secret share does not verify")]
    BadProof { slot: usize },
    /// The peer's public share equals this node's own: with it the joint key
    /// would be `2*pk`, which this node alone could decrypt.
    #[error("key slot {slot}: the peer's public share equals this node's own")]
    EchoedShare { slot: usize },
    /// The two shares cancel out.
    #[error("key slot {slot}: the joint key is the identity")]
    IdentityJointKey { slot: usize },
}

/// The plaintext of one slot.
///
/// Which slots hold indicators is public (it follows from the query), their
/// values are not: `Bit` costs no multiplication, `Int` costs one fixed-base
/// multiplication, and neither branches on the value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Plain {
    /// 0 or 1, e.g. one component of a one-hot group indicator.
    Bit(bool),
    /// A signed integer, e.g. a clipped measure or a noise share.
    Int(i64),
}

impl std::fmt::Debug for Plain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Plain(<redacted>)")
    }
}

impl From<bool> for Plain {
    fn from(bit: bool) -> Self {
        Plain::Bit(bit)
    }
}

impl From<i64> for Plain {
    fn from(value: i64) -> Self {
        Plain::Int(value)
    }
}

/// `value` as a scalar, negative values as `l - |value|`, without a branch on
/// the sign: `value as u64` is `value + 2^64` for negative values, so the
/// borrow bit times 2^64 is subtracted back.
pub(crate) fn scalar_from_i64(value: i64) -> Scalar {
    let bits = value as u64;
    let two_64 = Scalar::from(u64::MAX) + Scalar::ONE;
    Scalar::from(bits) - Scalar::from(bits >> 63) * two_64
}

/// `point` if `bit`, else the identity, in constant time.
///
/// The crate has no direct dependency on `subtle`; `CtOption::unwrap_or` is
/// its constant-time select. `[0x00; 32]` is a canonical scalar and
/// `[0xff; 32]` is not, so canonicity carries the bit.
fn point_if(bit: bool, point: &RistrettoPoint) -> RistrettoPoint {
    let byte = u8::from(bit).wrapping_sub(1);
    Scalar::from_canonical_bytes([byte; 32])
        .map(|_| *point)
        .unwrap_or(RistrettoPoint::default())
}

/// `m*B`, or `(m/2)*B` when `halved` (for `double_and_compress_batch`).
fn plain_point(
    plain: Plain,
    halved: bool,
    base: &RistrettoPoint,
    half_base: &RistrettoPoint,
) -> RistrettoPoint {
    match plain {
        Plain::Bit(bit) => point_if(bit, if halved { half_base } else { base }),
        Plain::Int(value) => {
            let mut m = scalar_from_i64(value);
            if halved {
                m = m.div_by_2();
            }
            let point = &m * RISTRETTO_BASEPOINT_TABLE;
            m.zeroize();
            point
        }
    }
}

/// A uniformly random non-zero scalar.
fn random_scalar<R: CryptoRng + ?Sized>(rng: &mut R) -> Scalar {
    loop {
        let mut wide = [0u8; 64];
        rng.fill_bytes(&mut wide);
        let scalar = Scalar::from_bytes_mod_order_wide(&wide);
        wide.zeroize();
        if scalar != Scalar::ZERO {
            return scalar;
        }
    }
}

#[cfg(test)]
#[path = "elgamal_tests.rs"]
mod tests;
