//! The overlap protocol (PROTOCOLS.md, section O) as two sans-I/O state
//! machines. Each consumes the peer's messages (`handle`) and produces its own
//! (`poll_transmit`); the node moves the bytes. Lists stream in chunks: U and W
//! leave as they are computed (inputs are shuffled before hashing, which is the
//! same as shuffling the outputs), V leaves after all of U has arrived, since
//! S must shuffle it as a whole.
//!
//! ```text
//! R -> S  Announce |X|+p_R + terms, U = r*H(x) and p_R random points (chunks), End U
//! S -> R  Announce |Y|+c+p_S + terms, W = s*H(y), s*t_j*B (c dummies), p_S random, End W
//! S -> R  V = shuffle(s*u, s*t_j*K_R, random up to 2*offset), End V   (after End U)
//! R       |X ∩ Y| + c = |V ∩ r*W|
//! ```
//!
//! The pads `p_R`, `p_S` and the dummy count `c` are each party's cover
//! ([`crate::cover`]): R sees the intersection plus `c`, drawn by S, and
//! neither side sees the other's exact size.

use std::sync::Arc;

use curve25519_dalek::ristretto::RistrettoPoint;

use crate::{
    attest::{self, Attestation},
    cover::{Cover, Dummies, Entry, Layout, random_point},
    error::ProtocolError,
    group::{PointBytes, SessionKey, decode_and_mask, decode_point, mask_each, validate_points},
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

/// A party's first message in every protocol (session.proto, `Announce`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announce {
    /// Points in the list (or all batches) this party will send.
    pub set_size: u64,
    /// Binds the job and the query spec as this party received them; the
    /// peer refuses to go on unless they equal its own.
    pub terms: Terms,
    /// The party's masking key `k*B`, committed before any masked point:
    /// the transcript's DLEQ proofs refer to it, and a sender builds its
    /// dummies' answers on the receiver's.
    pub key: Option<PointBytes>,
    /// The mean of the random points added to each list or batch.
    pub pad_offset: u64,
    /// A sender's mean number of matching dummies per receiver batch.
    pub dummy_offset: u64,
    /// The party's policy.min_aggregation.
    pub min_aggregation: u64,
}

impl Announce {
    /// The announced size less the cover's means: the noised number of rows
    /// behind a list with `pads` pads and dummies for `dummy_batches`
    /// receiver batches.
    pub fn noised_size(&self, pads: u64, dummy_batches: u64) -> u64 {
        self.set_size
            .saturating_sub(self.pad_offset.saturating_mul(pads))
            .saturating_sub(self.dummy_offset.saturating_mul(dummy_batches))
    }
}

/// What a party needs besides its rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setup {
    pub limits: Limits,
    pub terms: Terms,
    pub cover: Cover,
    /// Announced to the peer (see [`Announce::min_aggregation`]).
    pub min_aggregation: u64,
}

impl Setup {
    /// No cover and no threshold: exact sizes, for tests and exact runs.
    pub fn exact(limits: Limits, terms: Terms, pad_batches: usize, dummy_batches: usize) -> Self {
        Self {
            limits,
            terms,
            cover: Cover::none(pad_batches, dummy_batches),
            min_aggregation: 0,
        }
    }

    pub(crate) fn announce(&self, set_size: u64, key: Option<PointBytes>) -> Announce {
        Announce {
            set_size,
            terms: self.terms,
            key,
            pad_offset: self.cover.pad_offset,
            dummy_offset: self.cover.dummy_offset,
            min_aggregation: self.min_aggregation,
        }
    }
}

/// A message of the overlap protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OverlapMessage {
    Announce(Announce),
    Points { list: List, points: Vec<PointBytes> },
    End { list: List, count: u64 },
}

impl OverlapMessage {
    pub fn describe(&self) -> &'static str {
        match self {
            OverlapMessage::Announce(_) => "a set-size announcement",
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
    /// Smallest noised set the peer may announce (its length less its
    /// cover's means): a node's policy.min_set_size.
    pub min_peer_set: u64,
}

/// Largest chunk on the wire (256 KiB of points), fixed by the wire API.
pub const MAX_CHUNK_POINTS: usize = 8192;

impl Default for Limits {
    fn default() -> Self {
        Self {
            chunk_points: 4096,
            max_chunk_points: MAX_CHUNK_POINTS,
            max_peer_set: 50_000_000,
            min_peer_set: 0,
        }
    }
}

/// What the receiver learns.
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

/// This party's list, hashed and masked in a shuffled order, chunk by chunk:
/// its identifiers, then its dummies' points, then its pads
/// ([`crate::cover::Layout`]).
pub(crate) struct MaskedStream {
    ids: Arc<IdList>,
    layout: Layout,
    dummies: Dummies,
    /// Index (see `layout`) of each point sent, in sending order.
    pub(crate) order: Vec<u32>,
    pub(crate) next: usize,
    pub(crate) closed: bool,
}

impl MaskedStream {
    /// `ids` with `pads` random points, and `dummies` as the party's own
    /// matching dummies (their base points `t_j*B`).
    pub(crate) fn new(ids: Arc<IdList>, dummies: Dummies, pads: u64) -> Self {
        let layout = Layout {
            rows: ids.len(),
            dummies: dummies.len(),
            pads: pads as usize,
        };
        let order = shuffle::permutation(layout.len());
        Self {
            ids,
            layout,
            dummies,
            order,
            next: 0,
            closed: false,
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.order.len() as u64
    }

    /// What the point sent at `position` stands for.
    pub(crate) fn entry(&self, position: usize) -> Entry {
        self.layout.entry(self.order[position])
    }

    pub(crate) fn dummies(&self) -> &Dummies {
        &self.dummies
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
            let (ids, layout, dummies) = (&self.ids, self.layout, &self.dummies);
            let points = mask_each(key, slice.len(), |i| match layout.entry(slice[i]) {
                Entry::Row(row) => hasher.hash(&ids.hash_parts(row)),
                Entry::Dummy(j) => dummies.base(j),
                Entry::Pad => random_point(),
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

/// Checks the peer's announcement: the same terms, a list this node will
/// hold, and a noised size (for `pads` pads and `dummy_batches` batches of
/// dummies) of at least the policy minimum.
pub(crate) fn check_announce(
    a: &Announce,
    own: &Terms,
    limits: &Limits,
    pads: u64,
    dummy_batches: u64,
) -> Result<(), ProtocolError> {
    if a.terms != *own {
        return Err(ProtocolError::TermsMismatch);
    }
    if a.set_size > limits.max_peer_set {
        return Err(ProtocolError::PeerSetTooLarge {
            announced: a.set_size,
            limit: limits.max_peer_set,
        });
    }
    // A sender's dummy width lengthens the V this node receives or sends.
    if a.dummy_offset.saturating_mul(2) > limits.max_peer_set {
        return Err(ProtocolError::PeerSetTooLarge {
            announced: a.dummy_offset.saturating_mul(2),
            limit: limits.max_peer_set,
        });
    }
    let noised = a.noised_size(pads, dummy_batches);
    if noised < limits.min_peer_set {
        return Err(ProtocolError::PeerSetTooSmall {
            noised,
            minimum: limits.min_peer_set,
        });
    }
    Ok(())
}

/// The peer's announced session key as a point, which a party that answers
/// with dummies needs.
pub(crate) fn peer_key_point(
    key: Option<PointBytes>,
    step: &'static str,
) -> Result<RistrettoPoint, ProtocolError> {
    let key = key.ok_or(ProtocolError::Shape {
        what: "the receiver announced no session key, which the sender's dummies need",
    })?;
    decode_point(&key, 0).map_err(|bad| ProtocolError::BadPoint { step, bad })
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

/// R: learns `|X ∩ Y|` plus the sender's dummies, and `|W|`.
pub struct OverlapReceiver {
    key: SessionKey,
    setup: Setup,
    hasher: HashToGroup,
    announced: bool,
    u: MaskedStream,
    peer: Option<Announce>,
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
    /// `ids` must already be of the kind both parties hash under; the cover
    /// has one pad (U) and no dummies.
    pub fn new(ids: Arc<IdList>, setup: Setup) -> Result<Self, ProtocolError> {
        Self::with_key(ids, setup, SessionKey::random())
    }

    pub(crate) fn with_key(ids: Arc<IdList>, setup: Setup, key: SessionKey) -> Result<Self, ProtocolError> {
        setup.cover.check(1, 0)?;
        let pads = setup.cover.pads[0];
        Ok(Self {
            key,
            hasher: HashToGroup::new(ID_DST),
            announced: false,
            u: MaskedStream::new(ids, Dummies::none(), pads),
            peer: None,
            rw: Vec::new(),
            w: Vec::new(),
            w_closed: false,
            v: Vec::new(),
            v_closed: false,
            setup,
        })
    }

    /// V answers every point of U, plus the sender's dummy batch.
    fn v_len(&self) -> u64 {
        let width = self.peer.map_or(0, |p| p.dummy_offset.saturating_mul(2));
        self.u.len().saturating_add(width)
    }

    pub fn poll(&mut self) -> Option<OverlapMessage> {
        if !self.announced {
            self.announced = true;
            return Some(OverlapMessage::Announce(
                self.setup.announce(self.u.len(), Some(self.key.public())),
            ));
        }
        self.u
            .poll(List::U, &self.key, &self.hasher, self.setup.limits.chunk_points)
    }

    pub fn receive(&mut self, msg: OverlapMessage) -> Result<(), ProtocolError> {
        let unexpected = |got: &OverlapMessage| ProtocolError::Unexpected {
            expected: "the sender's announcement, list W or list V",
            got: got.describe(),
        };
        let limits = self.setup.limits;
        match (msg, self.peer) {
            (OverlapMessage::Announce(a), None) => {
                check_announce(&a, &self.setup.terms, &limits, 1, 1)?;
                self.peer = Some(a);
                self.rw.reserve(capacity_for(a.set_size));
                Ok(())
            }
            (
                OverlapMessage::Points {
                    list: List::W,
                    points,
                },
                Some(peer),
            ) if !self.w_closed => {
                check_chunk(
                    List::W.step(),
                    points.len(),
                    self.rw.len(),
                    peer.set_size,
                    &limits,
                )?;
                let masked = decode_and_mask(&self.key, &points).map_err(|bad| ProtocolError::BadPoint {
                    step: List::W.step(),
                    bad,
                })?;
                self.rw.extend_from_slice(&masked);
                self.w.extend_from_slice(&points);
                Ok(())
            }
            (OverlapMessage::End { list: List::W, count }, Some(peer)) if !self.w_closed => {
                check_end(List::W.step(), count, self.rw.len(), peer.set_size)?;
                self.w_closed = true;
                Ok(())
            }
            // V answers U, so it can only start once U is complete.
            (
                OverlapMessage::Points {
                    list: List::V,
                    points,
                },
                Some(_),
            ) if self.u.closed && !self.v_closed => {
                check_chunk(List::V.step(), points.len(), self.v.len(), self.v_len(), &limits)?;
                // V is only compared with points R computed itself, but a bad
                // encoding still marks a deviating peer: refuse it by name.
                validate_points(&points).map_err(|bad| ProtocolError::BadPoint {
                    step: List::V.step(),
                    bad,
                })?;
                if self.v.is_empty() {
                    self.v.reserve(capacity_for(self.v_len()));
                }
                self.v.extend_from_slice(&points);
                Ok(())
            }
            (OverlapMessage::End { list: List::V, count }, Some(_)) if self.u.closed && !self.v_closed => {
                check_end(List::V.step(), count, self.v.len(), self.v_len())?;
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
        let peer = self.peer.map_or(0, |p| p.set_size);
        Progress {
            done: self.u.next as u64 + self.rw.len() as u64 + self.v.len() as u64,
            total: self.u.len() + self.v_len() + peer,
        }
    }

    /// Proves `r*W` (in W's order) for this party's own transcript. Call
    /// once, when done and before `finish`.
    pub fn attest(&mut self) -> Result<Vec<Attestation>, ProtocolError> {
        let w = std::mem::take(&mut self.w);
        let proof = Attestation::make(
            &self.key,
            &self.setup.terms,
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
        let peer = self.peer.unwrap_or(self.setup.announce(0, None));
        Ok(OverlapOutcome {
            intersection: count_common(&self.v, &self.rw),
            own_set_size: self.u.len(),
            peer_set_size: peer.set_size,
            peer_dummy_mean: peer.dummy_offset,
            peer_min_aggregation: peer.min_aggregation,
        })
    }
}

/// S: learns the length of U only.
pub struct OverlapSender {
    key: SessionKey,
    setup: Setup,
    hasher: HashToGroup,
    announced: bool,
    w: MaskedStream,
    peer: Option<Announce>,
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
    /// The cover has one pad (W) and one dummy count (R's one batch).
    pub fn new(ids: Arc<IdList>, setup: Setup) -> Result<Self, ProtocolError> {
        Self::with_key(ids, setup, SessionKey::random())
    }

    pub(crate) fn with_key(ids: Arc<IdList>, setup: Setup, key: SessionKey) -> Result<Self, ProtocolError> {
        setup.cover.check(1, 1)?;
        let dummies = Dummies::new(&setup.cover.dummies, setup.cover.dummy_width());
        let pads = setup.cover.pads[0];
        Ok(Self {
            key,
            hasher: HashToGroup::new(ID_DST),
            announced: false,
            w: MaskedStream::new(ids, dummies, pads),
            peer: None,
            v: Vec::new(),
            u: Vec::new(),
            v_aligned: Vec::new(),
            u_closed: false,
            v_next: 0,
            v_closed: false,
            setup,
        })
    }

    pub fn poll(&mut self) -> Option<OverlapMessage> {
        if !self.announced {
            self.announced = true;
            return Some(OverlapMessage::Announce(
                self.setup.announce(self.w.len(), Some(self.key.public())),
            ));
        }
        let chunk = self.setup.limits.chunk_points;
        // V first: it is ready-made, and R cannot finish without it.
        if self.u_closed && !self.v_closed {
            if let Some(points) = next_chunk(&self.v, &mut self.v_next, chunk) {
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
        self.w.poll(List::W, &self.key, &self.hasher, chunk)
    }

    pub fn receive(&mut self, msg: OverlapMessage) -> Result<(), ProtocolError> {
        let limits = self.setup.limits;
        match (msg, self.peer) {
            (OverlapMessage::Announce(a), None) => {
                check_announce(&a, &self.setup.terms, &limits, 1, 0)?;
                self.peer = Some(a);
                self.v.reserve(capacity_for(a.set_size));
                Ok(())
            }
            (
                OverlapMessage::Points {
                    list: List::U,
                    points,
                },
                Some(peer),
            ) if !self.u_closed => {
                check_chunk(List::U.step(), points.len(), self.v.len(), peer.set_size, &limits)?;
                let masked = decode_and_mask(&self.key, &points).map_err(|bad| ProtocolError::BadPoint {
                    step: List::U.step(),
                    bad,
                })?;
                self.v.extend_from_slice(&masked);
                self.u.extend_from_slice(&points);
                Ok(())
            }
            (OverlapMessage::End { list: List::U, count }, Some(peer)) if !self.u_closed => {
                check_end(List::U.step(), count, self.v.len(), peer.set_size)?;
                self.v_aligned = self.v.clone();
                // The dummies' answers join V, masked like R's points.
                let key_r = peer_key_point(peer.key, List::V.step())?;
                let extra = self.w.dummies().answers(0, &key_r);
                self.v.extend(mask_each(&self.key, extra.len(), |i| extra[i]));
                // The shuffle hides which of R's points became which of V's,
                // and which of V's points answer dummies.
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

    /// Proves `V° = s*U` (the answers to U before they were shuffled into V
    /// with the dummies') for this party's own transcript. Call once, when
    /// done.
    pub fn attest(&mut self) -> Result<Vec<Attestation>, ProtocolError> {
        let u = std::mem::take(&mut self.u);
        let aligned = std::mem::take(&mut self.v_aligned);
        Ok(vec![Attestation::make(
            &self.key,
            &self.setup.terms,
            attest::SENDER_STEP,
            (List::U, &u),
            aligned,
        )?])
    }

    pub fn progress(&self) -> Progress {
        let peer = self.peer.map_or(0, |p| p.set_size);
        let width = self.setup.cover.dummy_width();
        let received_u = if self.u_closed { peer } else { self.v.len() as u64 };
        Progress {
            done: self.w.next as u64 + received_u + self.v_next as u64,
            total: self.w.len() + 2 * peer + width,
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
