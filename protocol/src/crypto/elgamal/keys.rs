//! Key shares, their Schnorr proofs of knowledge, and the joint keys.
//!
//! Proof format (64 bytes): commitment `T = t*B` (compressed) then response
//! `s = t + c*sk` (canonical scalar, little-endian), with the challenge
//! `c = SHA-512(POK_TAG || len(context) as u64 BE || context || pk || T)`
//! reduced modulo `l`. The caller's context names the session, the prover's
//! role and the slot, so a proof cannot be replayed in another session, by the
//! other party, or for another slot.

use curve25519_dalek::{
    ristretto::{RistrettoBasepointTable, RistrettoPoint},
    scalar::Scalar,
};
use rand::CryptoRng;
use rayon::prelude::*;
use sha2::{Digest, Sha512};
use zeroize::Zeroize;

use super::{ElGamalError, random_scalar};
use crate::crypto::group::{PointBytes, decode_point};

/// Domain tag of the proof's challenge.
const POK_TAG: &[u8] = b"JOINTLY-V1-ELGAMAL-KEY-POK";
/// Domain tag of the proof's nonce derivation.
const NONCE_TAG: &[u8] = b"JOINTLY-V1-ELGAMAL-KEY-POK-NONCE";
/// Bytes of one slot in a [`KeyOffer`]: public share, commitment, response.
const OFFER_SLOT_BYTES: usize = 96;

/// One node's secret share of one slot's key. Zeroized on drop, never
/// printed, cloned or serialized.
pub struct KeyShare {
    pub(super) secret: Scalar,
    /// `secret / 2`, so that decryption shares of many ciphertexts can go
    /// through `double_and_compress_batch`.
    pub(super) half: Scalar,
    public: PublicShare,
}

impl Drop for KeyShare {
    fn drop(&mut self) {
        self.secret.zeroize();
        self.half.zeroize();
    }
}

impl std::fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyShare(<redacted>)")
    }
}

impl KeyShare {
    /// A fresh uniformly random non-zero secret.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::from_scalar(random_scalar(rng))
    }

    fn from_scalar(secret: Scalar) -> Self {
        let public = PublicShare::from_point(RistrettoPoint::mul_base(&secret));
        Self {
            secret,
            half: secret.div_by_2(),
            public,
        }
    }

    /// `sk*B`, to send to the peer with [`KeyShare::prove`]'s proof.
    pub fn public(&self) -> PublicShare {
        self.public
    }

    /// A Schnorr proof of knowledge of the secret, bound to `context`, which
    /// must name the session, this party's role and the slot.
    ///
    /// The nonce hashes the secret with fresh randomness (hedged, as in RFC
    /// 6979 with added entropy): a weak `rng` alone cannot leak the secret
    /// through two proofs sharing a nonce.
    pub fn prove<R: CryptoRng + ?Sized>(&self, context: &[u8], rng: &mut R) -> KeyProof {
        let mut fresh = [0u8; 32];
        rng.fill_bytes(&mut fresh);
        let mut h = Sha512::new();
        h.update(NONCE_TAG);
        h.update(self.secret.as_bytes());
        h.update(fresh);
        h.update((context.len() as u64).to_be_bytes());
        h.update(context);
        h.update(self.public.bytes);
        let mut wide = [0u8; 64];
        wide.copy_from_slice(&h.finalize());
        let mut nonce = Scalar::from_bytes_mod_order_wide(&wide);
        wide.zeroize();
        fresh.zeroize();

        let commitment = RistrettoPoint::mul_base(&nonce);
        let commitment_bytes = commitment.compress().to_bytes();
        let c = challenge(context, &self.public.bytes, &commitment_bytes);
        let response = nonce + c * self.secret;
        nonce.zeroize();
        KeyProof {
            commitment,
            commitment_bytes,
            response,
        }
    }
}

fn challenge(context: &[u8], public: &PointBytes, commitment: &PointBytes) -> Scalar {
    let mut h = Sha512::new();
    h.update(POK_TAG);
    h.update((context.len() as u64).to_be_bytes());
    h.update(context);
    h.update(public);
    h.update(commitment);
    let mut wide = [0u8; 64];
    wide.copy_from_slice(&h.finalize());
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// A public key share `pk = sk*B`, not yet known to come with a valid proof.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicShare {
    point: RistrettoPoint,
    bytes: PointBytes,
}

impl std::fmt::Debug for PublicShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicShare({})", hex::encode(self.bytes))
    }
}

impl PublicShare {
    fn from_point(point: RistrettoPoint) -> Self {
        Self {
            point,
            bytes: point.compress().to_bytes(),
        }
    }

    /// Strict decoding: non-canonical encodings and the identity are refused.
    pub fn from_bytes(bytes: &PointBytes) -> Result<Self, ElGamalError> {
        let point = decode_point(bytes, 0).map_err(|bad| ElGamalError::BadPoint {
            what: "public key share",
            bad,
        })?;
        Ok(Self { point, bytes: *bytes })
    }

    pub fn to_bytes(&self) -> PointBytes {
        self.bytes
    }
}

/// A Schnorr proof of knowledge of a key share's secret (format in the module
/// documentation).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyProof {
    commitment: RistrettoPoint,
    commitment_bytes: PointBytes,
    response: Scalar,
}

impl std::fmt::Debug for KeyProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyProof({})", hex::encode(self.to_bytes()))
    }
}

impl KeyProof {
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.commitment_bytes);
        out[32..].copy_from_slice(self.response.as_bytes());
        out
    }

    /// Strict decoding: the commitment must be a canonical non-identity point
    /// and the response a canonical scalar.
    pub fn from_bytes(bytes: &[u8; 64]) -> Result<Self, ElGamalError> {
        Self::parse(bytes, 0, 0)
    }

    /// `slot` goes into errors; `first_point` is the index of the commitment
    /// among the points of the bytes being decoded.
    fn parse(bytes: &[u8], slot: usize, first_point: usize) -> Result<Self, ElGamalError> {
        let mut commitment_bytes = [0u8; 32];
        commitment_bytes.copy_from_slice(&bytes[..32]);
        let commitment =
            decode_point(&commitment_bytes, first_point).map_err(|bad| ElGamalError::BadPoint {
                what: "key proof commitment",
                bad,
            })?;
        let mut response = [0u8; 32];
        response.copy_from_slice(&bytes[32..64]);
        let response = Option::<Scalar>::from(Scalar::from_canonical_bytes(response))
            .ok_or(ElGamalError::NonCanonicalScalar { slot })?;
        Ok(Self {
            commitment,
            commitment_bytes,
            response,
        })
    }

    /// Checks the proof for `public` under `context` (the prover's context:
    /// its session, role and slot).
    pub fn verify(&self, public: &PublicShare, context: &[u8]) -> Result<VerifiedShare, ElGamalError> {
        self.verify_slot(public, context, 0)
    }

    fn verify_slot(
        &self,
        public: &PublicShare,
        context: &[u8],
        slot: usize,
    ) -> Result<VerifiedShare, ElGamalError> {
        let c = challenge(context, &public.bytes, &self.commitment_bytes);
        // Public values only, so variable time is fine: s*B - c*pk == T.
        let expected =
            RistrettoPoint::vartime_double_scalar_mul_basepoint(&-c, &public.point, &self.response);
        if expected == self.commitment {
            Ok(VerifiedShare(*public))
        } else {
            Err(ElGamalError::BadProof { slot })
        }
    }
}

/// A peer's public share whose proof of knowledge verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedShare(PublicShare);

impl VerifiedShare {
    pub fn public(&self) -> PublicShare {
        self.0
    }
}

/// One slot's joint public key `J = pk_R + pk_S`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct JointKey(RistrettoPoint);

impl std::fmt::Debug for JointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JointKey({})", hex::encode(self.to_bytes()))
    }
}

impl JointKey {
    /// This node's share plus the peer's verified share.
    pub fn combine(own: &KeyShare, peer: &VerifiedShare) -> Result<Self, ElGamalError> {
        Self::sum(&own.public, &peer.0, 0)
    }

    /// For a party holding neither secret (an auditor): both shares verified.
    pub fn from_verified(a: &VerifiedShare, b: &VerifiedShare) -> Result<Self, ElGamalError> {
        Self::sum(&a.0, &b.0, 0)
    }

    fn sum(a: &PublicShare, b: &PublicShare, slot: usize) -> Result<Self, ElGamalError> {
        if a == b {
            return Err(ElGamalError::EchoedShare { slot });
        }
        let joint = a.point + b.point;
        if joint == RistrettoPoint::default() {
            return Err(ElGamalError::IdentityJointKey { slot });
        }
        Ok(Self(joint))
    }

    pub fn to_bytes(&self) -> PointBytes {
        self.0.compress().to_bytes()
    }
}

/// The context of slot `k`'s proof: the caller's context and the slot index.
/// The suffix has a fixed length, so distinct (context, slot) pairs never
/// give the same bytes.
fn slot_context(context: &[u8], slot: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(context.len() + 14);
    out.extend_from_slice(context);
    out.extend_from_slice(b"/slot/");
    out.extend_from_slice(&(slot as u64).to_be_bytes());
    out
}

/// One node's secret shares of `n` independent slot keys.
#[derive(Debug)]
pub struct SlotShares {
    pub(super) shares: Vec<KeyShare>,
}

impl SlotShares {
    pub fn generate<R: CryptoRng + ?Sized>(slots: usize, rng: &mut R) -> Result<Self, ElGamalError> {
        if slots == 0 {
            return Err(ElGamalError::NoSlots {
                what: "slot key shares",
            });
        }
        Ok(Self {
            shares: (0..slots).map(|_| KeyShare::generate(rng)).collect(),
        })
    }

    pub fn slots(&self) -> usize {
        self.shares.len()
    }

    /// The public shares with their proofs; `context` names the session and
    /// this party's role, the slot index is appended per slot.
    pub fn offer<R: CryptoRng + ?Sized>(&self, context: &[u8], rng: &mut R) -> KeyOffer {
        KeyOffer {
            slots: self
                .shares
                .iter()
                .enumerate()
                .map(|(k, share)| (share.public, share.prove(&slot_context(context, k), rng)))
                .collect(),
        }
    }
}

/// A party's public shares and proofs for all slots, as sent to the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyOffer {
    slots: Vec<(PublicShare, KeyProof)>,
}

impl KeyOffer {
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.slots.len() * OFFER_SLOT_BYTES);
        for (public, proof) in &self.slots {
            out.extend_from_slice(&public.bytes);
            out.extend_from_slice(&proof.to_bytes());
        }
        out
    }

    /// Strict decoding of an offer of exactly `slots` slots.
    pub fn from_bytes(bytes: &[u8], slots: usize) -> Result<Self, ElGamalError> {
        if slots == 0 {
            return Err(ElGamalError::NoSlots { what: "key offer" });
        }
        if bytes.len() != slots * OFFER_SLOT_BYTES {
            return Err(ElGamalError::Length {
                what: "key offer",
                unit: OFFER_SLOT_BYTES,
                slots,
                got: bytes.len(),
            });
        }
        let slots = bytes
            .chunks_exact(OFFER_SLOT_BYTES)
            .enumerate()
            .map(|(k, chunk)| {
                let mut public = [0u8; 32];
                public.copy_from_slice(&chunk[..32]);
                let point = decode_point(&public, 2 * k).map_err(|bad| ElGamalError::BadPoint {
                    what: "key offer",
                    bad,
                })?;
                let proof = KeyProof::parse(&chunk[32..], k, 2 * k + 1)?;
                Ok((PublicShare { point, bytes: public }, proof))
            })
            .collect::<Result<_, ElGamalError>>()?;
        Ok(Self { slots })
    }

    /// Checks every slot's proof under the prover's `context` (the one it
    /// passed to [`SlotShares::offer`]).
    pub fn verify(&self, context: &[u8]) -> Result<VerifiedShares, ElGamalError> {
        self.slots
            .iter()
            .enumerate()
            .map(|(k, (public, proof))| proof.verify_slot(public, &slot_context(context, k), k))
            .collect::<Result<_, _>>()
            .map(VerifiedShares)
    }
}

/// A peer's public shares for all slots, every proof verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedShares(Vec<VerifiedShare>);

impl VerifiedShares {
    pub fn slots(&self) -> usize {
        self.0.len()
    }

    pub fn shares(&self) -> &[VerifiedShare] {
        &self.0
    }
}

/// The joint keys `J_1..J_n` with a precomputed table per key, so that
/// `p*J_k` is a fixed-base multiplication. A table takes about 30 KB and 1 ms
/// to build (once per session). curve25519-dalek documents tables as about
/// four times faster than its portable variable-base multiplication; where
/// its AVX2 backend runs variable-base multiplication, we measured the two at
/// about the same cost.
pub struct JointKeys {
    pub(super) keys: Vec<JointKey>,
    pub(super) tables: Vec<RistrettoBasepointTable>,
    /// `B/2`: the halved plaintext point of `Plain::Bit(true)`.
    pub(super) half_base: RistrettoPoint,
}

impl std::fmt::Debug for JointKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JointKeys")
            .field("slots", &self.keys.len())
            .finish()
    }
}

impl JointKeys {
    /// This node's shares plus the peer's verified shares, slot by slot.
    pub fn combine(own: &SlotShares, peer: &VerifiedShares) -> Result<Self, ElGamalError> {
        let own: Vec<PublicShare> = own.shares.iter().map(|s| s.public).collect();
        Self::sum(&own, peer)
    }

    /// For a party holding neither secret: both parties' verified shares.
    pub fn from_verified(a: &VerifiedShares, b: &VerifiedShares) -> Result<Self, ElGamalError> {
        let a: Vec<PublicShare> = a.0.iter().map(|v| v.0).collect();
        Self::sum(&a, b)
    }

    fn sum(own: &[PublicShare], peer: &VerifiedShares) -> Result<Self, ElGamalError> {
        if own.len() != peer.slots() {
            return Err(ElGamalError::SlotMismatch {
                what: "joint keys",
                expected: own.len(),
                got: peer.slots(),
            });
        }
        let keys = own
            .iter()
            .zip(&peer.0)
            .enumerate()
            .map(|(k, (a, b))| JointKey::sum(a, &b.0, k))
            .collect::<Result<Vec<_>, _>>()?;
        let tables = keys
            .par_iter()
            .map(|key| RistrettoBasepointTable::create(&key.0))
            .collect();
        Ok(Self {
            keys,
            tables,
            half_base: RistrettoPoint::mul_base(&Scalar::ONE.div_by_2()),
        })
    }

    pub fn slots(&self) -> usize {
        self.keys.len()
    }

    pub fn keys(&self) -> &[JointKey] {
        &self.keys
    }

    /// The keys' compressed encodings, concatenated (for transcripts).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.keys.iter().flat_map(|k| k.to_bytes()).collect()
    }
}

/// Both parties' shares and the joint keys, exchanged and verified in one
/// process: for tests and benchmarks. `context` is suffixed with each role.
pub fn two_party_keys<R: CryptoRng + ?Sized>(
    slots: usize,
    context: &[u8],
    rng: &mut R,
) -> Result<(SlotShares, SlotShares, JointKeys), ElGamalError> {
    let r = SlotShares::generate(slots, rng)?;
    let s = SlotShares::generate(slots, rng)?;
    let r_context = [context, b"/R"].concat();
    let s_context = [context, b"/S"].concat();
    let from_s = s.offer(&s_context, rng).verify(&s_context)?;
    let from_r = r.offer(&r_context, rng).verify(&r_context)?;
    let keys = JointKeys::combine(&r, &from_s)?;
    debug_assert_eq!(keys.keys, JointKeys::combine(&s, &from_r)?.keys);
    Ok((r, s, keys))
}
