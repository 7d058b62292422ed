//! Batched Chaum-Pedersen (DLEQ) proofs that a party masked every point of a
//! list with the scalar `k` behind its session public key `K = k*B`
//! (PROTOCOLS.md, Transcripts).
//!
//! # Statement and construction
//!
//! Public: a caller-chosen `context` (it must bind the session id, the step and
//! the transcript's hash chain, so a proof cannot be replayed elsewhere), the key
//! `K`, inputs `P_1..P_n` and outputs `Q_1..Q_n`, all as canonical 32-byte
//! encodings. Claim: `Q_i = k*P_i` for every `i`, where `k = log_B K`.
//!
//! 1. `seed = SHA-512(tag, context, K, digest(P), digest(Q))`; each digest covers
//!    `n` and every encoding, so the seed commits to the whole statement,
//!    outputs included.
//! 2. Weights `w_i` are 128-bit integers read from `SHA-512(tag, seed, j)` for
//!    `j = 0, 1, ...`, four weights per hash call.
//! 3. `M = sum w_i*P_i`, `Z = sum w_i*Q_i` (variable-time multiscalar
//!    multiplications: every operand is public).
//! 4. A Chaum-Pedersen proof that `log_B K = log_M Z`: nonce `t`, commitments
//!    `A1 = t*B`, `A2 = t*M`, challenge `c = SHA-512(tag, seed, M, Z, A1, A2) mod l`,
//!    response `s = t - c*k`. The proof is `c || s`, 64 bytes, both canonical.
//!    The verifier recomputes `A1 = s*B + c*K`, `A2 = s*M + c*Z` and `c`.
//!
//! The prover derives `t` from a hash of `k`, the seed and fresh randomness, so a
//! weak or repeated random source alone does not leak `k`.
//!
//! Without hints, cost is dominated by strict decompression of the points
//! (the verifier decodes both lists, the prover only the inputs), an inverse
//! square root each; the multiscalar multiplications with 128-bit weights come
//! to about a sixth of it. With [`Hints`] (the `_hinted` functions) a point
//! whose stored inverse square root checks is decoded with a few
//! multiplications and summed by [`crate::crypto::hinted`], which halves a check; the
//! verdict is the same either way. Chunks of points are processed in parallel.
//!
//! # Soundness (SHA-512 modelled as a random oracle)
//!
//! ristretto255 has prime order `l` (about 2^252), so every point other than
//! the identity has order `l`, and strict decoding makes each accepted encoding
//! stand for exactly one point: what is hashed is what is multiplied.
//!
//! Let `D_i = Q_i - k*P_i`. If some `D_j` is not the identity, then
//! `Z - k*M = sum w_i*D_i`. Fix every weight but `w_j`: as `D_j` has order
//! `l`, at most one value of `w_j` modulo `l` cancels the sum, and the `2^128`
//! possible weights are distinct modulo `l`. Because the seed hashes the outputs too, the prover
//! cannot choose `D` after seeing the weights; each statement it tries costs
//! one hash evaluation and succeeds with probability at most `2^-128`. If
//! `Z != k*M`, then for any commitments at most one challenge modulo `l`
//! admits a valid response (standard special soundness), so each challenge
//! query succeeds with probability about `1/l`. A prover that evaluates the
//! hash `q` times gets a false proof accepted with probability at most about
//! `q * 2^-128`, in line with the group's own security level.
//!
//! The proof is honest-verifier zero-knowledge (simulatable in the random
//! oracle model): it reveals nothing about `k` beyond `K`.
//!
//! Empty lists (`n = 0`) are accepted: then `M = Z = 0`, the claim about the
//! lists is vacuous, and the proof only shows that the prover knows `k`, bound
//! to `context`. Lists of different lengths are refused before any work.
//!
//! # What the overlap (section O) can and cannot prove
//!
//! - **U = shuffle(r*H(x)) and W = shuffle(s*H(y))**: the inputs `H(x)`, `H(y)`
//!   are the parties' secrets, and any list of points is `k*P` for some `P`
//!   (`P = k^-1 * Q`), so without the inputs there is no statement to prove.
//!   Nothing here shows that U or W come from hashing real identifiers, nor that
//!   W uses the same scalar as V. Informally, this gives a deviating sender no
//!   more than choosing its set Y (input substitution, which no PSI protocol
//!   prevents, and whose effect the privacy controls bound): a point of W
//!   counts only if `r` times it lands in V, and making `s*H(x)` for an `x` of
//!   R's without knowing `x` means computing it from `r*H(x)`, a
//!   Diffie-Hellman problem. Masking W with another scalar just makes its
//!   points match nothing. Only an auditor allowed to see
//!   the identifiers (a party's own auditor) can check U or W, with an aligned
//!   proof over the hashed identifiers in the order the party shuffled them.
//! - **V = shuffle(s*U)**: the inputs U are public (signed in the transcript),
//!   but V is a permutation of `s*U` and a batched DLEQ pairs weights by
//!   position. Two tempting shortcuts are unsound:
//!   - equal weights prove only `sum V = s * sum U`; the prover can move mass
//!     between elements (`V_1 = s*U_1 + D`, `V_2 = s*U_2 - D`) and so plant any
//!     point it likes in V while the sums still agree;
//!   - weights bound to the points themselves (a hash of each encoding, or of
//!     its rank in the sorted list) do not help: the weight of an output would
//!     have to equal the weight of its input, and telling which `V_j` equals
//!     `s*U_i`, given only `K = s*B`, is the decisional Diffie-Hellman
//!     problem, which is hard in this group.
//!
//!   A sound proof that hides the permutation is a verifiable shuffle argument
//!   (Neff 2001; Terelius-Wikström 2010; Bayer-Groth 2012), several times the
//!   cost and code of this module, not implemented here. What is implemented
//!   ([`verify_shuffled`]) is sound but does not hide the permutation: S keeps
//!   its list before shuffling, `V° = s*U` in the order of U, and proves it with
//!   [`prove_aligned`]; an auditor checks that proof and that V is a
//!   permutation of `V°` (equal multisets). Anyone holding `V°` next to U
//!   learns the permutation, and R, who knows which `x` is behind each `U_i`,
//!   could then compare `V°_i = rs*H(x_i)` with `r*W` and learn which of its
//!   identifiers are in Y. So `V°` must never reach R nor anyone who may share
//!   it with R: it belongs in S's own audit record (`n * 32` bytes plus the
//!   64-byte proof), not in the chain both nodes keep. The shared chain holds
//!   U, V and `K_S`, and the context's inputs (session, step, chain hash).
//! - **R's own step, `r*W`**, never leaves R. R can likewise keep `r*W` in W's
//!   order with an aligned proof over (W, `r*W`, `K_R`); an auditor can then
//!   recompute `|V ∩ r*W|`. It must never reach S, who knows which `y` is
//!   behind each `W_j` and would learn which of its identifiers are in X.

use curve25519_dalek::{
    ristretto::RistrettoPoint,
    scalar::Scalar,
    traits::{Identity, VartimeMultiscalarMul},
};
use rand::CryptoRng;
use rayon::prelude::*;
use sha2::{Digest, Sha512};
use zeroize::Zeroize;

use crate::{
    crypto::group::{BadPoint, PointBytes, decode_point},
    crypto::hinted::{self, HINT_LEN},
};

const SEED_TAG: &[u8] = b"JOINTLY-V1-DLEQ-SEED";
const LIST_TAG: &[u8] = b"JOINTLY-V1-DLEQ-LIST";
/// Short enough that tag, seed and counter fit one SHA-512 block: one
/// compression per four weights.
const WEIGHT_TAG: &[u8] = b"JOINTLY-V1-DLEQ-W";
const CHALLENGE_TAG: &[u8] = b"JOINTLY-V1-DLEQ-CHALLENGE";
const NONCE_TAG: &[u8] = b"JOINTLY-V1-DLEQ-NONCE";

/// 64 bytes of SHA-512 output, 16 bytes per weight.
const WEIGHTS_PER_BLOCK: usize = 4;

/// Points per unit of parallel work. Splitting costs only the per-chunk bucket
/// sums (a few percent at this size), and chunks bound the memory of decoded
/// points to about 20 MB per core instead of 320 bytes per point of both lists.
/// A multiple of `WEIGHTS_PER_BLOCK`, so chunks start on a block.
const CHUNK: usize = 1 << 16;

/// Decoding hints ([`crate::crypto::hinted`]) for the two lists of a statement,
/// `HINT_LEN` bytes per point, as the prover stores them. A hint speeds up the
/// check of its point and decides nothing: a missing, short or wrong one
/// only sends points to the ordinary decoding.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hints<'a> {
    pub inputs: Option<&'a [u8]>,
    pub outputs: Option<&'a [u8]>,
}

/// Why a proof could not be made or was refused. Every refusal names what
/// failed; none carries a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DleqError {
    /// The two lists of the statement differ in length.
    #[error("the statement has {inputs} input points but {outputs} output points")]
    LengthMismatch { inputs: usize, outputs: usize },
    /// The session public key failed strict decoding or is the identity.
    #[error("the session public key is invalid ({0})")]
    BadKey(BadPoint),
    /// An input point failed strict decoding or is the identity.
    #[error("input point rejected: {0}")]
    BadInput(BadPoint),
    /// An output point failed strict decoding or is the identity.
    #[error("output point rejected: {0}")]
    BadOutput(BadPoint),
    /// Proof bytes of the wrong length.
    #[error("a proof is {expected} bytes, got {len}", expected = Proof::LEN)]
    ProofLength { len: usize },
    /// A proof scalar at or above the group order: a canonical encoder never
    /// produces it, so it marks tampering.
    #[error("the proof's {part} is not a canonical scalar")]
    NonCanonicalScalar { part: &'static str },
    /// A zero secret key, whose public key would be the identity.
    #[error("the secret key is zero")]
    ZeroKey,
    /// The shuffled list is not a permutation of the proven list.
    #[error("the shuffled list is not a permutation of the proven list")]
    NotAPermutation,
    /// The list in the chain is not the proven list plus exactly the
    /// announced number of dummy answers.
    #[error(
        "the list in the chain is not the proven list plus exactly the announced number of dummy answers"
    )]
    NotContained,
    /// Well-formed, but the proof does not hold for this statement (another
    /// key, context or list, or a point not masked with the key).
    #[error("the masking proof does not hold for this key, context and lists")]
    Invalid,
}

/// A batched DLEQ proof: challenge and response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proof {
    challenge: Scalar,
    response: Scalar,
}

impl Proof {
    /// Encoded length: `c || s`.
    pub const LEN: usize = 64;

    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..32].copy_from_slice(self.challenge.as_bytes());
        out[32..].copy_from_slice(self.response.as_bytes());
        out
    }

    /// Strict: exactly 64 bytes, both scalars canonical (below `l`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DleqError> {
        if bytes.len() != Self::LEN {
            return Err(DleqError::ProofLength { len: bytes.len() });
        }
        let scalar = |range: std::ops::Range<usize>, part| {
            let mut b = [0u8; 32];
            b.copy_from_slice(&bytes[range]);
            Option::<Scalar>::from(Scalar::from_canonical_bytes(b))
                .ok_or(DleqError::NonCanonicalScalar { part })
        };
        Ok(Self {
            challenge: scalar(0..32, "challenge")?,
            response: scalar(32..64, "response")?,
        })
    }
}

/// The session public key `K = k*B` the proofs refer to.
pub fn public_key(secret: &Scalar) -> PointBytes {
    RistrettoPoint::mul_base(secret).compress().to_bytes()
}

/// Proves that `outputs[i] = k*inputs[i]` for every `i`, where `k = secret`.
/// Takes the bare scalar because `group::SessionKey` keeps its own private to
/// `group`.
///
/// Inputs are decoded strictly; outputs are only hashed, since the prover's
/// `Z` is `k*M`: a wrong output list yields a proof that fails verification.
/// For a list sent shuffled, prove the list before shuffling and see
/// [`verify_shuffled`].
pub fn prove_aligned<R: CryptoRng + ?Sized>(
    secret: &Scalar,
    context: &[u8],
    inputs: &[PointBytes],
    outputs: &[PointBytes],
    rng: &mut R,
) -> Result<Proof, DleqError> {
    prove_aligned_hinted(secret, context, inputs, None, outputs, rng)
}

/// [`prove_aligned`], decoding the inputs with their hints where they check.
pub fn prove_aligned_hinted<R: CryptoRng + ?Sized>(
    secret: &Scalar,
    context: &[u8],
    inputs: &[PointBytes],
    input_hints: Option<&[u8]>,
    outputs: &[PointBytes],
    rng: &mut R,
) -> Result<Proof, DleqError> {
    check_lengths(inputs, outputs)?;
    if *secret == Scalar::ZERO {
        return Err(DleqError::ZeroKey);
    }
    let key = public_key(secret);
    let seed = statement_seed(context, &key, inputs, outputs);
    let [m] = vartime_weighted_sums(
        &seed,
        [(inputs, usable(input_hints, inputs), DleqError::BadInput)],
        CHUNK,
    )?;
    let z = secret * m;

    let mut t = nonce(secret, &seed, rng);
    let a1 = RistrettoPoint::mul_base(&t);
    let a2 = t * m;
    let challenge = challenge(&seed, &m, &z, &a1, &a2);
    let response = t - challenge * secret;
    t.zeroize();
    Ok(Proof { challenge, response })
}

/// Checks that `outputs[i] = k*inputs[i]` for every `i`, where `K = k*B` is
/// `key`. Every point is decoded strictly; the identity is refused.
pub fn verify_aligned(
    context: &[u8],
    key: &PointBytes,
    inputs: &[PointBytes],
    outputs: &[PointBytes],
    proof: &Proof,
) -> Result<(), DleqError> {
    verify_aligned_hinted(context, key, inputs, outputs, Hints::default(), proof)
}

/// [`verify_aligned`], decoding points with their hints where they check.
pub fn verify_aligned_hinted(
    context: &[u8],
    key: &PointBytes,
    inputs: &[PointBytes],
    outputs: &[PointBytes],
    hints: Hints<'_>,
    proof: &Proof,
) -> Result<(), DleqError> {
    check_lengths(inputs, outputs)?;
    let k = decode_point(key, 0).map_err(DleqError::BadKey)?;
    let seed = statement_seed(context, key, inputs, outputs);
    let [m, z] = vartime_weighted_sums(
        &seed,
        [
            (inputs, usable(hints.inputs, inputs), DleqError::BadInput),
            (outputs, usable(hints.outputs, outputs), DleqError::BadOutput),
        ],
        CHUNK,
    )?;
    let Proof {
        challenge: c,
        response: s,
    } = *proof;
    let a1 = RistrettoPoint::vartime_double_scalar_mul_basepoint(&c, &k, &s);
    let a2 = RistrettoPoint::vartime_multiscalar_mul([s, c], [m, z]);
    if challenge(&seed, &m, &z, &a1, &a2) == c {
        Ok(())
    } else {
        Err(DleqError::Invalid)
    }
}

/// For a list sent shuffled (V in the overlap): checks the aligned proof over
/// `aligned_outputs` (the prover's list before shuffling, `k*inputs[i]` in
/// input order) and that `shuffled_outputs` holds the same points with the same
/// multiplicities. Sound, but whoever runs it learns the permutation: see the
/// module documentation for who may hold `aligned_outputs`.
pub fn verify_shuffled(
    context: &[u8],
    key: &PointBytes,
    inputs: &[PointBytes],
    aligned_outputs: &[PointBytes],
    shuffled_outputs: &[PointBytes],
    proof: &Proof,
) -> Result<(), DleqError> {
    verify_shuffled_hinted(
        context,
        key,
        inputs,
        aligned_outputs,
        shuffled_outputs,
        Hints::default(),
        proof,
    )
}

/// [`verify_shuffled`], decoding points with their hints where they check;
/// `hints.outputs` are those of `aligned_outputs`.
pub fn verify_shuffled_hinted(
    context: &[u8],
    key: &PointBytes,
    inputs: &[PointBytes],
    aligned_outputs: &[PointBytes],
    shuffled_outputs: &[PointBytes],
    hints: Hints<'_>,
    proof: &Proof,
) -> Result<(), DleqError> {
    if !same_multiset(aligned_outputs, shuffled_outputs) {
        return Err(DleqError::NotAPermutation);
    }
    verify_aligned_hinted(context, key, inputs, aligned_outputs, hints, proof)
}

/// As [`verify_shuffled_hinted`], for a list that holds the proven outputs
/// and `extra` points more (a party's dummy answers, which no proof can
/// cover: their base points are the party's secret): `containing` must be
/// exactly the outputs plus `extra` other points, as multisets.
#[allow(clippy::too_many_arguments)]
pub fn verify_contained_hinted(
    context: &[u8],
    key: &PointBytes,
    inputs: &[PointBytes],
    aligned_outputs: &[PointBytes],
    containing: &[PointBytes],
    extra: usize,
    hints: Hints<'_>,
    proof: &Proof,
) -> Result<(), DleqError> {
    if aligned_outputs.len().checked_add(extra) != Some(containing.len())
        || !contains_multiset(containing, aligned_outputs)
    {
        return Err(DleqError::NotContained);
    }
    verify_aligned_hinted(context, key, inputs, aligned_outputs, hints, proof)
}

/// Whether every point of `part` is in `whole`, counted with multiplicity.
fn contains_multiset(whole: &[PointBytes], part: &[PointBytes]) -> bool {
    let (mut a, mut b) = (whole.to_vec(), part.to_vec());
    rayon::join(|| a.par_sort_unstable(), || b.par_sort_unstable());
    let mut i = 0;
    for p in &b {
        while i < a.len() && a[i] < *p {
            i += 1;
        }
        if i == a.len() || a[i] != *p {
            return false;
        }
        i += 1;
    }
    true
}

/// Hints of the wrong length for their list are ignored whole.
fn usable<'a>(hints: Option<&'a [u8]>, points: &[PointBytes]) -> Option<&'a [u8]> {
    hints.filter(|h| h.len() == points.len() * HINT_LEN)
}

fn check_lengths(inputs: &[PointBytes], outputs: &[PointBytes]) -> Result<(), DleqError> {
    if inputs.len() != outputs.len() {
        return Err(DleqError::LengthMismatch {
            inputs: inputs.len(),
            outputs: outputs.len(),
        });
    }
    Ok(())
}

fn same_multiset(a: &[PointBytes], b: &[PointBytes]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    rayon::join(|| a.par_sort_unstable(), || b.par_sort_unstable());
    a == b
}

/// SHA-512 with a length-prefixed domain tag, so no tag is a prefix of another.
fn tagged(tag: &[u8]) -> Sha512 {
    let mut h = Sha512::new();
    // Tags are short constants.
    h.update([tag.len() as u8]);
    h.update(tag);
    h
}

fn list_digest(points: &[PointBytes]) -> [u8; 64] {
    let mut h = tagged(LIST_TAG);
    h.update((points.len() as u64).to_le_bytes());
    for p in points {
        h.update(p);
    }
    h.finalize().into()
}

fn statement_seed(
    context: &[u8],
    key: &PointBytes,
    inputs: &[PointBytes],
    outputs: &[PointBytes],
) -> [u8; 64] {
    let (di, dq) = rayon::join(|| list_digest(inputs), || list_digest(outputs));
    let mut h = tagged(SEED_TAG);
    h.update((context.len() as u64).to_le_bytes());
    h.update(context);
    h.update(key);
    h.update(di);
    h.update(dq);
    h.finalize().into()
}

/// Weights `first .. first + out.len()`; `first` must be a multiple of
/// `WEIGHTS_PER_BLOCK`. 128 bits each: enough for `2^-128` soundness, and half
/// the additions of full-size scalars in the multiscalar multiplication.
fn weights_into(seed: &[u8; 64], first: usize, out: &mut [u128]) {
    debug_assert!(first.is_multiple_of(WEIGHTS_PER_BLOCK));
    let mut base = tagged(WEIGHT_TAG);
    base.update(seed);
    let first_block = (first / WEIGHTS_PER_BLOCK) as u64;
    for (j, lanes) in out.chunks_mut(WEIGHTS_PER_BLOCK).enumerate() {
        let mut h = base.clone();
        h.update((first_block + j as u64).to_le_bytes());
        let block = h.finalize();
        for (w, bytes) in lanes.iter_mut().zip(block.chunks_exact(16)) {
            let mut le = [0u8; 16];
            le.copy_from_slice(bytes);
            *w = u128::from_le_bytes(le);
        }
    }
}

type Rejection = fn(BadPoint) -> DleqError;

/// A list to sum, its hints if usable, and the error its bad points get.
type SumInput<'a> = (&'a [PointBytes], Option<&'a [u8]>, Rejection);

/// `sum w_i * P_i` for each list, with the same weights; chunks of `chunk`
/// points are decoded and multiplied in parallel.
fn vartime_weighted_sums<const L: usize>(
    seed: &[u8; 64],
    lists: [SumInput<'_>; L],
    chunk: usize,
) -> Result<[RistrettoPoint; L], DleqError> {
    debug_assert!(chunk.is_multiple_of(WEIGHTS_PER_BLOCK) && chunk > 0);
    let n = lists.first().map_or(0, |(l, _, _)| l.len());
    debug_assert!(lists.iter().all(|(l, _, _)| l.len() == n));
    (0..n.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            let start = c * chunk;
            let end = (start + chunk).min(n);
            let mut weights = vec![0u128; end - start];
            weights_into(seed, start, &mut weights);
            let mut sums = [RistrettoPoint::identity(); L];
            for (sum, (list, hints, reject)) in sums.iter_mut().zip(&lists) {
                let points = &list[start..end];
                *sum = match hints {
                    Some(h) => {
                        let h = &h[start * HINT_LEN..end * HINT_LEN];
                        hinted_chunk_sum(&weights, points, h, start, *reject)?
                    }
                    None => {
                        let decoded = points
                            .iter()
                            .enumerate()
                            .map(|(j, p)| decode_point(p, start + j).map_err(reject))
                            .collect::<Result<Vec<_>, _>>()?;
                        RistrettoPoint::vartime_multiscalar_mul(
                            weights.iter().map(|w| Scalar::from(*w)),
                            &decoded,
                        )
                    }
                };
            }
            Ok(sums)
        })
        .try_reduce(
            || [RistrettoPoint::identity(); L],
            |a, b| Ok(std::array::from_fn(|i| a[i] + b[i])),
        )
}

/// One chunk's weighted sum: points whose hint checks go to the hinted sum,
/// the rest to dalek's decoding, which refuses what is not a point.
fn hinted_chunk_sum(
    weights: &[u128],
    points: &[PointBytes],
    hints: &[u8],
    start: usize,
    reject: Rejection,
) -> Result<RistrettoPoint, DleqError> {
    let mut fast = (Vec::with_capacity(points.len()), Vec::with_capacity(points.len()));
    let mut slow = (Vec::new(), Vec::new());
    for (j, (p, h)) in points.iter().zip(hints.chunks_exact(HINT_LEN)).enumerate() {
        match hinted::decode(p, h) {
            Some(a) => {
                fast.0.push(weights[j]);
                fast.1.push(a);
            }
            None => {
                slow.0.push(Scalar::from(weights[j]));
                slow.1.push(decode_point(p, start + j).map_err(reject)?);
            }
        }
    }
    let fast = hinted::vartime_weighted_sum(&fast.0, &fast.1)
        .to_dalek()
        .ok_or(DleqError::Invalid)?;
    Ok(fast + RistrettoPoint::vartime_multiscalar_mul(&slow.0, &slow.1))
}

/// Hedged nonce: the secret and the statement go in, so a broken random source
/// alone cannot make `t` repeat across statements (which would reveal `k`);
/// fresh randomness goes in, so faults injected into a recomputation of the
/// same proof do not meet the same `t`.
fn nonce<R: CryptoRng + ?Sized>(secret: &Scalar, seed: &[u8; 64], rng: &mut R) -> Scalar {
    let mut fresh = [0u8; 32];
    rng.fill_bytes(&mut fresh);
    let mut h = tagged(NONCE_TAG);
    h.update(secret.as_bytes());
    h.update(seed);
    h.update(fresh);
    let mut wide: [u8; 64] = h.finalize().into();
    let t = Scalar::from_bytes_mod_order_wide(&wide);
    wide.zeroize();
    fresh.zeroize();
    t
}

fn challenge(
    seed: &[u8; 64],
    m: &RistrettoPoint,
    z: &RistrettoPoint,
    a1: &RistrettoPoint,
    a2: &RistrettoPoint,
) -> Scalar {
    let mut h = tagged(CHALLENGE_TAG);
    h.update(seed);
    for p in [m, z, a1, a2] {
        h.update(p.compress().as_bytes());
    }
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

#[cfg(test)]
#[path = "dleq_tests.rs"]
mod tests;
