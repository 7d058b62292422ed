//! Errors of the protocol crate. Messages name the protocol step and what is
//! wrong; they never carry an identifier, a point or a secret.

use crate::crypto::group::BadPoint;

/// Why a protocol session cannot go on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A received point failed strict decoding.
    #[error("{step}: the peer sent an invalid point ({bad})")]
    BadPoint { step: &'static str, bad: BadPoint },
    /// A chunk larger than the agreed bound.
    #[error("{step}: the peer sent a chunk of {points} points, above the limit of {max}")]
    OversizedChunk {
        step: &'static str,
        points: usize,
        max: usize,
    },
    /// A chunk whose length is not a whole number of points.
    #[error("{step}: the peer sent a chunk of {len} bytes, not a whole number of 32-byte points")]
    RaggedChunk { step: &'static str, len: usize },
    /// A message that does not fit the current state.
    #[error("the peer sent {got} while this node expected {expected}")]
    Unexpected {
        expected: &'static str,
        got: &'static str,
    },
    /// A list longer or shorter than announced.
    #[error("{step}: the peer announced {announced} points but sent {received}")]
    CountMismatch {
        step: &'static str,
        announced: u64,
        received: u64,
    },
    /// The peer's set is larger than this node accepts to hold.
    #[error(
        "the peer announced {announced} identifiers, above this node's limit of {limit} (raise max_peer_set_size in the node config to allow it)"
    )]
    PeerSetTooLarge { announced: u64, limit: u64 },
    /// The peer's list, less its cover's means, is below this node's minimum.
    #[error(
        "the peer's list holds about {noised} rows (its length less its noise offsets), below this node's policy.min_set_size = {minimum}; a list this small would single people out"
    )]
    PeerSetTooSmall { noised: u64, minimum: u64 },
    /// The same masked point twice in one list: identifiers are de-duplicated,
    /// so an honest peer never does this, and it would inflate the count.
    #[error("{step}: the peer sent the same masked point more than once")]
    DuplicatePoints { step: &'static str },
    /// The peer received different job terms from the coordinator.
    #[error(
        "the peer runs this job under different terms (query or privacy parameters) than this node accepted; the session is refused"
    )]
    TermsMismatch,
    /// A query shape or a peer's announced shape that the protocol cannot run.
    #[error("{what}")]
    Shape { what: &'static str },
    /// The party could not prove its own masking (a bug, not the peer).
    #[error("attestation of {step}: {error}")]
    Attestation {
        step: &'static str,
        error: crate::crypto::dleq::DleqError,
    },
    /// A key offer, ciphertext or release that fails its checks.
    #[error("{step}: {error}")]
    Crypto {
        step: &'static str,
        error: crate::crypto::elgamal::ElGamalError,
    },
    /// The segment's noised size is below a node's policy.min_activation.
    /// The message is the same whichever node decided and by how much: the
    /// planner and the peer learn one noised bit, nothing more.
    #[error(
        "the segment is too small to activate: its noised size is below a node's policy.min_activation; nothing was delivered"
    )]
    BelowMinActivation,
    /// A decrypted value outside the range the release step searches: the
    /// shares do not belong together, or a sum exceeds what clipping allows.
    #[error(
        "breakdown release: cell {cell}, slot {slot} does not decrypt to a value within ±{bound}; the nodes' releases do not fit together"
    )]
    ValueOutOfRange { cell: usize, slot: usize, bound: u64 },
    /// A message that could not be parsed at all.
    #[error("malformed message from the peer: {what}")]
    Malformed { what: &'static str },
}
