//! What a party holds when its side of a session is complete, per protocol:
//! plain data the node reads, defined here so that the `Party` trait names it
//! without knowing the protocols that produce it.

/// What a party holds when its side of a session is complete.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The overlap receiver's result.
    Overlap(OverlapOutcome),
    /// A party that learns no result (the sender).
    Completed,
    /// A breakdown party's part of the release, per lane (for the coordinator).
    Breakdown(Vec<LaneOutcome>),
    /// The activation receiver's members and count.
    Activation(ActivationOutcome),
}

/// What the overlap receiver learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverlapOutcome {
    /// `|V ∩ r*W|`: the intersection plus the sender's dummies.
    pub intersection: u64,
    /// Announced list lengths (cover included).
    pub own_set_size: u64,
    pub peer_set_size: u64,
    /// The mean of the sender's dummies, to subtract from a released count.
    pub peer_dummy_mean: u64,
    /// The sender's policy.min_aggregation, as it announced it.
    pub peer_min_aggregation: u64,
}

impl OverlapOutcome {
    /// The intersection with the sender's dummy noise, centred: what the
    /// receiver releases before its own noise.
    pub fn centred(&self) -> i64 {
        i64::try_from(self.intersection).unwrap_or(i64::MAX)
            - i64::try_from(self.peer_dummy_mean).unwrap_or(0)
    }
}

/// What the activation receiver learns.
#[derive(Clone, PartialEq, Eq)]
pub struct ActivationOutcome {
    /// Positions, ascending, in R's identifier list of the segment's members.
    pub members: Vec<u32>,
    pub own_set_size: u64,
    pub peer_set_size: u64,
}

impl std::fmt::Debug for ActivationOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivationOutcome")
            .field("members", &self.members.len())
            .finish()
    }
}

/// What one party of one lane hands the coordinator (PROTOCOLS.md B.4).
#[derive(Clone, PartialEq, Eq)]
pub struct LaneOutcome {
    pub lane: u32,
    pub cells: usize,
    pub slots: usize,
    /// The sender's final ciphertexts (empty for the receiver).
    pub ciphertexts: Vec<u8>,
    pub decryption_shares: Vec<u8>,
}

impl std::fmt::Debug for LaneOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneOutcome")
            .field("lane", &self.lane)
            .field("cells", &self.cells)
            .field("slots", &self.slots)
            .finish()
    }
}
