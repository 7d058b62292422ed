//! The overlap protocol (PROTOCOLS.md, section O) as two sans-I/O state
//! machines. Each consumes the peer's messages (`handle`) and produces its own
//! (`poll_transmit`); the node moves the bytes. Lists stream in chunks: U and W
//! leave as they are computed (inputs are shuffled before hashing, which is the
//! same as shuffling the outputs), V leaves after all of U has arrived, since
//! S must shuffle it as a whole.
//!
//! ```text
//! R -> S  Announce |X| + terms, U = r*H(x) (chunks), End U
//! S -> R  Announce |Y| + terms, W = s*H(y) (chunks), End W
//! S -> R  V = shuffle(s*u) (chunks), End V        (after End U)
//! R       |X ∩ Y| = |V ∩ r*W|
//! ```

use std::sync::Arc;

use crate::{
    attest::{self, Attestation},
    error::ProtocolError,
    group::{PointBytes, SessionKey, decode_and_mask, mask_each, validate_points},
    hash::{HashToGroup, ID_DST},
    idlist::IdList,
    party::{Outcome, Party, Progress},
    shuffle,
};

/// The three masked lists of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum List {
    U,
    V,
    W,
    /// Segment activation only: W masked again by R.
    Z,
}

impl List {
    /// The step that produces this list, as errors and logs name it.
    pub fn step(self) -> &'static str {
        match self {
            List::U => "overlap step O.1 (list U, the receiver's masked identifiers)",
            List::V => "overlap step O.2 (list V, U masked again by the sender)",
            List::W => "overlap step O.3 (list W, the sender's masked identifiers)",
            List::Z => "activation step (list Z, W masked again by the receiver)",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            List::U => "U",
            List::V => "V",
            List::W => "W",
            List::Z => "Z",
        }
    }
}

/// A message of the overlap protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OverlapMessage {
    /// `terms` binds the job and the query spec as this party received them;
    /// the peer refuses to go on unless they equal its own.
    Announce {
        set_size: u64,
        terms: Terms,
        /// The sender's masking key `k*B`, committed before any masked point
        /// (the transcript's DLEQ proofs refer to it).
        key: Option<PointBytes>,
    },
    Points {
        list: List,
        points: Vec<PointBytes>,
    },
    End {
        list: List,
        count: u64,
    },
}

impl OverlapMessage {
    pub fn describe(&self) -> &'static str {
        match self {
            OverlapMessage::Announce { .. } => "a set-size announcement",
            OverlapMessage::Points { list: List::U, .. } => "points of list U",
            OverlapMessage::Points { list: List::V, .. } => "points of list V",
            OverlapMessage::Points { list: List::W, .. } => "points of list W",
            OverlapMessage::Points { list: List::Z, .. } => "points of list Z",
            OverlapMessage::End { list: List::U, .. } => "the end of list U",
            OverlapMessage::End { list: List::V, .. } => "the end of list V",
            OverlapMessage::End { list: List::W, .. } => "the end of list W",
            OverlapMessage::End { list: List::Z, .. } => "the end of list Z",
        }
    }
}

/// Digest of the job's terms (job, query, privacy parameters) as a party
/// received them from the coordinator; see `jointly_protocol::terms`.
pub type Terms = [u8; 32];

/// Sizes that bound what a peer can make this node compute or hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Points per chunk this node sends.
    pub chunk_points: usize,
    /// Largest chunk accepted from the peer.
    pub max_chunk_points: usize,
    /// Largest set the peer may announce.
    pub max_peer_set: u64,
}

/// Largest chunk on the wire (256 KiB of points), fixed by the wire API.
pub const MAX_CHUNK_POINTS: usize = 8192;

impl Default for Limits {
    fn default() -> Self {
        Self {
            chunk_points: 4096,
            max_chunk_points: MAX_CHUNK_POINTS,
            max_peer_set: 50_000_000,
        }
    }
}

/// What the receiver learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverlapOutcome {
    pub intersection: u64,
    pub own_set_size: u64,
    pub peer_set_size: u64,
}

/// This party's identifiers, hashed and masked in a shuffled order, chunk by chunk.
pub(crate) struct MaskedStream {
    ids: Arc<IdList>,
    /// Position in `ids` of each point sent, in sending order.
    pub(crate) order: Vec<u32>,
    pub(crate) next: usize,
    pub(crate) closed: bool,
}

impl MaskedStream {
    pub(crate) fn new(ids: Arc<IdList>) -> Self {
        let order = shuffle::permutation(ids.len());
        Self {
            ids,
            order,
            next: 0,
            closed: false,
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.order.len() as u64
    }

    pub(crate) fn poll(
        &mut self,
        list: List,
        key: &SessionKey,
        hasher: &HashToGroup,
        chunk: usize,
    ) -> Option<OverlapMessage> {
        if self.next < self.order.len() {
            let end = (self.next + chunk.max(1)).min(self.order.len());
            let slice = &self.order[self.next..end];
            let ids = &self.ids;
            let points = mask_each(key, slice.len(), |i| {
                hasher.hash(&ids.hash_parts(slice[i] as usize))
            });
            self.next = end;
            return Some(OverlapMessage::Points { list, points });
        }
        if !self.closed {
            self.closed = true;
            return Some(OverlapMessage::End {
                list,
                count: self.len(),
            });
        }
        None
    }
}

/// The next chunk of a ready-made list from `*next` on, advancing `*next`;
/// `None` once every point was taken.
pub(crate) fn next_chunk(points: &[PointBytes], next: &mut usize, chunk: usize) -> Option<Vec<PointBytes>> {
    if *next >= points.len() {
        return None;
    }
    let end = (*next + chunk.max(1)).min(points.len());
    let out = points[*next..end].to_vec();
    *next = end;
    Some(out)
}

/// Checks a chunk of `got` points against the announced total and the chunk bound.
pub(crate) fn check_chunk(
    step: &'static str,
    got: usize,
    have: usize,
    announced: u64,
    limits: &Limits,
) -> Result<(), ProtocolError> {
    if got > limits.max_chunk_points {
        return Err(ProtocolError::OversizedChunk {
            step,
            points: got,
            max: limits.max_chunk_points,
        });
    }
    let received = (have + got) as u64;
    if received > announced {
        return Err(ProtocolError::CountMismatch {
            step,
            announced,
            received,
        });
    }
    Ok(())
}

pub(crate) fn check_end(
    step: &'static str,
    count: u64,
    have: usize,
    announced: u64,
) -> Result<(), ProtocolError> {
    if count != announced || have as u64 != announced {
        return Err(ProtocolError::CountMismatch {
            step,
            announced,
            received: have as u64,
        });
    }
    Ok(())
}

pub(crate) fn check_announce(
    set_size: u64,
    terms: &Terms,
    own: &Terms,
    limits: &Limits,
) -> Result<(), ProtocolError> {
    if terms != own {
        return Err(ProtocolError::TermsMismatch);
    }
    if set_size > limits.max_peer_set {
        return Err(ProtocolError::PeerSetTooLarge {
            announced: set_size,
            limit: limits.max_peer_set,
        });
    }
    Ok(())
}

/// Points in both sorted lists, by merging: the receiver's count, and the
/// auditor's recount of it.
pub(crate) fn count_common(a: &[PointBytes], b: &[PointBytes]) -> u64 {
    let (mut i, mut j, mut count) = (0, 0, 0u64);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                count += 1;
                i += 1;
                j += 1;
            }
        }
    }
    count
}

/// Preallocation is bounded so a peer's announcement alone cannot reserve much.
pub(crate) fn capacity_for(announced: u64) -> usize {
    announced.min(1 << 20) as usize
}

/// R: learns `|X ∩ Y|` and `|Y|`.
pub struct OverlapReceiver {
    key: SessionKey,
    terms: Terms,
    hasher: HashToGroup,
    limits: Limits,
    announced: bool,
    u: MaskedStream,
    peer_size: Option<u64>,
    rw: Vec<PointBytes>,
    /// W as received, kept for the attestation of `rw` (O.4).
    w: Vec<PointBytes>,
    w_closed: bool,
    v: Vec<PointBytes>,
    v_closed: bool,
}

impl std::fmt::Debug for OverlapReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverlapReceiver")
            .field("progress", &self.progress())
            .finish()
    }
}

impl OverlapReceiver {
    /// `ids` must already be of the kind both parties hash under.
    pub fn new(ids: Arc<IdList>, limits: Limits, terms: Terms) -> Self {
        Self::with_key(ids, limits, terms, SessionKey::random())
    }

    pub(crate) fn with_key(ids: Arc<IdList>, limits: Limits, terms: Terms, key: SessionKey) -> Self {
        Self {
            key,
            terms,
            hasher: HashToGroup::new(ID_DST),
            limits,
            announced: false,
            u: MaskedStream::new(ids),
            peer_size: None,
            rw: Vec::new(),
            w: Vec::new(),
            w_closed: false,
            v: Vec::new(),
            v_closed: false,
        }
    }

    pub fn poll(&mut self) -> Option<OverlapMessage> {
        if !self.announced {
            self.announced = true;
            return Some(OverlapMessage::Announce {
                set_size: self.u.len(),
                terms: self.terms,
                key: Some(self.key.public()),
            });
        }
        self.u
            .poll(List::U, &self.key, &self.hasher, self.limits.chunk_points)
    }

    pub fn receive(&mut self, msg: OverlapMessage) -> Result<(), ProtocolError> {
        let unexpected = |got: &OverlapMessage| ProtocolError::Unexpected {
            expected: "the sender's announcement, list W or list V",
            got: got.describe(),
        };
        match (msg, self.peer_size) {
            (OverlapMessage::Announce { set_size, terms, .. }, None) => {
                check_announce(set_size, &terms, &self.terms, &self.limits)?;
                self.peer_size = Some(set_size);
                self.rw.reserve(capacity_for(set_size));
                Ok(())
            }
            (
                OverlapMessage::Points {
                    list: List::W,
                    points,
                },
                Some(peer),
            ) if !self.w_closed => {
                check_chunk(List::W.step(), points.len(), self.rw.len(), peer, &self.limits)?;
                let masked = decode_and_mask(&self.key, &points).map_err(|bad| ProtocolError::BadPoint {
                    step: List::W.step(),
                    bad,
                })?;
                self.rw.extend_from_slice(&masked);
                self.w.extend_from_slice(&points);
                Ok(())
            }
            (OverlapMessage::End { list: List::W, count }, Some(peer)) if !self.w_closed => {
                check_end(List::W.step(), count, self.rw.len(), peer)?;
                self.w_closed = true;
                Ok(())
            }
            // V answers U, so it can only start once U is complete.
            (
                OverlapMessage::Points {
                    list: List::V,
                    points,
                },
                _,
            ) if self.u.closed && !self.v_closed => {
                check_chunk(
                    List::V.step(),
                    points.len(),
                    self.v.len(),
                    self.u.len(),
                    &self.limits,
                )?;
                // V is only compared with points R computed itself, but a bad
                // encoding still marks a deviating peer: refuse it by name.
                validate_points(&points).map_err(|bad| ProtocolError::BadPoint {
                    step: List::V.step(),
                    bad,
                })?;
                if self.v.is_empty() {
                    self.v.reserve(capacity_for(self.u.len()));
                }
                self.v.extend_from_slice(&points);
                Ok(())
            }
            (OverlapMessage::End { list: List::V, count }, _) if self.u.closed && !self.v_closed => {
                check_end(List::V.step(), count, self.v.len(), self.u.len())?;
                self.v_closed = true;
                Ok(())
            }
            (other, _) => Err(unexpected(&other)),
        }
    }

    pub fn is_done(&self) -> bool {
        self.u.closed && self.w_closed && self.v_closed
    }

    pub fn progress(&self) -> Progress {
        let own = self.u.len();
        Progress {
            done: self.u.next as u64 + self.rw.len() as u64 + self.v.len() as u64,
            total: 2 * own + self.peer_size.unwrap_or(0),
        }
    }

    /// Proves `r*W` (in W's order) for this party's own transcript. Call
    /// once, when done and before `finish`.
    pub fn attest(&mut self) -> Result<Vec<Attestation>, ProtocolError> {
        let w = std::mem::take(&mut self.w);
        let proof = Attestation::make(
            &self.key,
            &self.terms,
            attest::RECEIVER_STEP,
            (List::W, &w),
            self.rw.clone(),
        )?;
        Ok(vec![proof])
    }

    /// Counts `|V ∩ r*W|`. Both lists are sorted and merged: no hash set, so
    /// memory stays at the two lists themselves.
    pub fn finish(mut self) -> Result<OverlapOutcome, ProtocolError> {
        if !self.is_done() {
            return Err(ProtocolError::Unexpected {
                expected: "all of lists U, V and W before counting",
                got: "an early end of the session",
            });
        }
        use rayon::slice::ParallelSliceMut;
        self.v.par_sort_unstable();
        self.rw.par_sort_unstable();
        for (list, points) in [(List::V, &self.v), (List::W, &self.rw)] {
            if points.windows(2).any(|w| w[0] == w[1]) {
                return Err(ProtocolError::DuplicatePoints { step: list.step() });
            }
        }
        Ok(OverlapOutcome {
            intersection: count_common(&self.v, &self.rw),
            own_set_size: self.u.len(),
            peer_set_size: self.peer_size.unwrap_or(0),
        })
    }
}

/// S: learns `|X|` only.
pub struct OverlapSender {
    key: SessionKey,
    terms: Terms,
    hasher: HashToGroup,
    limits: Limits,
    announced: bool,
    w: MaskedStream,
    peer_size: Option<u64>,
    v: Vec<PointBytes>,
    /// U as received and `s*U` in U's order, for the attestation (O.2).
    u: Vec<PointBytes>,
    v_aligned: Vec<PointBytes>,
    u_closed: bool,
    v_next: usize,
    v_closed: bool,
}

impl std::fmt::Debug for OverlapSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OverlapSender")
            .field("progress", &self.progress())
            .finish()
    }
}

impl OverlapSender {
    pub fn new(ids: Arc<IdList>, limits: Limits, terms: Terms) -> Self {
        Self::with_key(ids, limits, terms, SessionKey::random())
    }

    pub(crate) fn with_key(ids: Arc<IdList>, limits: Limits, terms: Terms, key: SessionKey) -> Self {
        Self {
            key,
            terms,
            hasher: HashToGroup::new(ID_DST),
            limits,
            announced: false,
            w: MaskedStream::new(ids),
            peer_size: None,
            v: Vec::new(),
            u: Vec::new(),
            v_aligned: Vec::new(),
            u_closed: false,
            v_next: 0,
            v_closed: false,
        }
    }

    pub fn poll(&mut self) -> Option<OverlapMessage> {
        if !self.announced {
            self.announced = true;
            return Some(OverlapMessage::Announce {
                set_size: self.w.len(),
                terms: self.terms,
                key: Some(self.key.public()),
            });
        }
        // V first: it is ready-made, and R cannot finish without it.
        if self.u_closed && !self.v_closed {
            if let Some(points) = next_chunk(&self.v, &mut self.v_next, self.limits.chunk_points) {
                return Some(OverlapMessage::Points {
                    list: List::V,
                    points,
                });
            }
            self.v_closed = true;
            let count = self.v.len() as u64;
            self.v = Vec::new();
            return Some(OverlapMessage::End { list: List::V, count });
        }
        self.w
            .poll(List::W, &self.key, &self.hasher, self.limits.chunk_points)
    }

    pub fn receive(&mut self, msg: OverlapMessage) -> Result<(), ProtocolError> {
        match (msg, self.peer_size) {
            (OverlapMessage::Announce { set_size, terms, .. }, None) => {
                check_announce(set_size, &terms, &self.terms, &self.limits)?;
                self.peer_size = Some(set_size);
                self.v.reserve(capacity_for(set_size));
                Ok(())
            }
            (
                OverlapMessage::Points {
                    list: List::U,
                    points,
                },
                Some(peer),
            ) if !self.u_closed => {
                check_chunk(List::U.step(), points.len(), self.v.len(), peer, &self.limits)?;
                let masked = decode_and_mask(&self.key, &points).map_err(|bad| ProtocolError::BadPoint {
                    step: List::U.step(),
                    bad,
                })?;
                self.v.extend_from_slice(&masked);
                self.u.extend_from_slice(&points);
                Ok(())
            }
            (OverlapMessage::End { list: List::U, count }, Some(peer)) if !self.u_closed => {
                check_end(List::U.step(), count, self.v.len(), peer)?;
                self.v_aligned = self.v.clone();
                // The shuffle hides which of R's points became which of V's.
                shuffle::shuffle(&mut self.v);
                self.u_closed = true;
                Ok(())
            }
            (other, _) => Err(ProtocolError::Unexpected {
                expected: "the receiver's announcement or list U",
                got: other.describe(),
            }),
        }
    }

    pub fn is_done(&self) -> bool {
        self.announced && self.w.closed && self.v_closed
    }

    /// Proves `V° = s*U` (V before the shuffle) for this party's own
    /// transcript. Call once, when done.
    pub fn attest(&mut self) -> Result<Vec<Attestation>, ProtocolError> {
        let u = std::mem::take(&mut self.u);
        let aligned = std::mem::take(&mut self.v_aligned);
        Ok(vec![Attestation::make(
            &self.key,
            &self.terms,
            attest::SENDER_STEP,
            (List::U, &u),
            aligned,
        )?])
    }

    pub fn progress(&self) -> Progress {
        let peer = self.peer_size.unwrap_or(0);
        let received_u = if self.u_closed { peer } else { self.v.len() as u64 };
        Progress {
            done: self.w.next as u64 + received_u + self.v_next as u64,
            total: self.w.len() + 2 * peer,
        }
    }
}

impl Party for OverlapReceiver {
    fn poll_transmit(&mut self) -> Option<crate::wire::ProtocolMessage> {
        self.poll().map(Into::into)
    }

    fn handle(&mut self, msg: crate::wire::ProtocolMessage) -> Result<(), ProtocolError> {
        self.receive(OverlapMessage::try_from(msg)?)
    }

    fn is_done(&self) -> bool {
        OverlapReceiver::is_done(self)
    }

    fn progress(&self) -> Progress {
        OverlapReceiver::progress(self)
    }

    fn attest(&mut self) -> Result<Vec<Attestation>, ProtocolError> {
        OverlapReceiver::attest(self)
    }

    fn finish(self: Box<Self>) -> Result<Outcome, ProtocolError> {
        (*self).finish().map(Outcome::Overlap)
    }
}

impl Party for OverlapSender {
    fn poll_transmit(&mut self) -> Option<crate::wire::ProtocolMessage> {
        self.poll().map(Into::into)
    }

    fn handle(&mut self, msg: crate::wire::ProtocolMessage) -> Result<(), ProtocolError> {
        self.receive(OverlapMessage::try_from(msg)?)
    }

    fn is_done(&self) -> bool {
        OverlapSender::is_done(self)
    }

    fn progress(&self) -> Progress {
        OverlapSender::progress(self)
    }

    fn attest(&mut self) -> Result<Vec<Attestation>, ProtocolError> {
        OverlapSender::attest(self)
    }

    fn finish(self: Box<Self>) -> Result<Outcome, ProtocolError> {
        Ok(Outcome::Completed)
    }
}

#[cfg(test)]
#[path = "overlap_tests.rs"]
mod tests;
