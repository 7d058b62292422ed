//! Masking attestations: a party's proof, for its own transcript, that it
//! masked a list with the scalar behind the session key it announced
//! (PROTOCOLS.md, Transcripts; the statements and why they stay private are
//! in [`crate::crypto::dleq`]).
//!
//! - S, step O.2: `V° = s*U` in U's order, before the shuffle that made V.
//!   An auditor checks the proof against U from the chain and that V from
//!   the chain is a permutation of `V°`.
//! - R, step O.4: `r*W` in W's order. An auditor checks the proof against W
//!   from the chain and recounts `|V ∩ r*W|`.
//! - Segment activation, S, step A.V: V = s*U as sent, in U's order.
//! - Segment activation, R, step A.Z: `r*W` in W's order, of which Z in the
//!   chain must be a permutation; the auditor recounts the members `|V ∩ r*W|`.

use sha2::{Digest, Sha256};

use crate::{
    ProtocolError,
    crypto::dleq::{self, Proof},
    crypto::group::{PointBytes, SessionKey},
    crypto::hinted,
    session::stream::{List, Terms},
};

const CONTEXT_TAG: &[u8] = b"JOINTLY-V1-ATTESTATION-CONTEXT";
const DIGEST_TAG: &[u8] = b"JOINTLY-V1-ATTESTATION";

/// The sender's masking of U (O.2).
pub const SENDER_STEP: &str = "O.2";
/// The receiver's masking of W (O.4).
pub const RECEIVER_STEP: &str = "O.4";
/// Activation, S: V = s*U, sent in U's order.
pub const ACTIVATION_SENDER_STEP: &str = "A.V";
/// Activation, R: Z before its shuffle, r*W in W's order.
pub const ACTIVATION_RECEIVER_STEP: &str = "A.Z";

#[derive(Clone, PartialEq, Eq)]
pub struct Attestation {
    pub step: &'static str,
    /// The chain list the outputs answer, point for point.
    pub inputs: List,
    pub outputs: Vec<PointBytes>,
    pub proof: Proof,
    /// Decoding hints for the input list and the outputs ([`crate::crypto::hinted`]):
    /// stored so the auditor need not take two million square roots per
    /// million points. Not in the digest: they claim nothing.
    pub input_hints: Vec<u8>,
    pub output_hints: Vec<u8>,
}

impl std::fmt::Debug for Attestation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attestation")
            .field("step", &self.step)
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs.len())
            .finish_non_exhaustive()
    }
}

/// What a proof is bound to: the job's terms, the step and the committed key.
/// The key is fresh per session, so a proof cannot be carried to another one.
pub fn context(terms: &Terms, step: &str, key: &PointBytes) -> Vec<u8> {
    let mut c = Vec::with_capacity(CONTEXT_TAG.len() + 32 + step.len() + 32 + 2);
    c.extend_from_slice(CONTEXT_TAG);
    c.extend_from_slice(terms);
    c.push(step.len() as u8);
    c.extend_from_slice(step.as_bytes());
    c.extend_from_slice(key);
    c
}

impl Attestation {
    pub(crate) fn make(
        key: &SessionKey,
        terms: &Terms,
        step: &'static str,
        inputs: (List, &[PointBytes]),
        outputs: Vec<PointBytes>,
    ) -> Result<Self, ProtocolError> {
        let context = context(terms, step, &key.public());
        let (input_hints, output_hints) = rayon::join(|| hinted::hints(inputs.1), || hinted::hints(&outputs));
        let proof = dleq::prove_aligned_hinted(
            key.scalar(),
            &context,
            inputs.1,
            Some(&input_hints),
            &outputs,
            &mut rand::rng(),
        )
        .map_err(|error| ProtocolError::Attestation { step, error })?;
        Ok(Self {
            step,
            inputs: inputs.0,
            outputs,
            proof,
            input_hints,
            output_hints,
        })
    }

    /// The digest a party lists in its `Closing`, so the co-signed summary
    /// binds the attestations its own file holds.
    pub fn digest(&self) -> [u8; 32] {
        digest(
            self.step,
            self.inputs.name(),
            self.outputs.as_flattened(),
            &self.proof.to_bytes(),
        )
    }
}

/// The digest over an attestation's parts as a transcript file stores them.
pub fn digest(step: &str, inputs: &str, outputs: &[u8], proof: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [DIGEST_TAG, step.as_bytes(), inputs.as_bytes()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.update((outputs.len() as u64).to_be_bytes());
    h.update(outputs);
    h.update(proof);
    h.finalize().into()
}
