//! The list-streaming kernel: the masked lists every protocol sends and
//! receives, their announcement, the bounds a peer's lists are checked
//! against, and a party's own list masked chunk by chunk.

use std::sync::Arc;

use curve25519_dalek::ristretto::RistrettoPoint;

use crate::{
    crypto::{
        group::{PointBytes, SessionKey, decode_point, mask_each, split_points},
        hash::HashToGroup,
        shuffle,
    },
    error::ProtocolError,
    ids::idlist::IdList,
    privacy::cover::{Cover, Dummies, Entry, Layout, random_point},
    wire::{self, ListEnd, MaskedList, PointChunk, ProtocolMessage, protocol_message},
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

/// A message of a protocol that streams whole masked lists (the overlap and
/// activation): an announcement, then each list in chunks and its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListMessage {
    Announce(Announce),
    Points { list: List, points: Vec<PointBytes> },
    End { list: List, count: u64 },
}

impl ListMessage {
    pub fn describe(&self) -> &'static str {
        match self {
            ListMessage::Announce(_) => "a set-size announcement",
            ListMessage::Points { list: List::U, .. } => "points of list U",
            ListMessage::Points { list: List::V, .. } => "points of list V",
            ListMessage::Points { list: List::W, .. } => "points of list W",
            ListMessage::Points { list: List::Z, .. } => "points of list Z",
            ListMessage::End { list: List::U, .. } => "the end of list U",
            ListMessage::End { list: List::V, .. } => "the end of list V",
            ListMessage::End { list: List::W, .. } => "the end of list W",
            ListMessage::End { list: List::Z, .. } => "the end of list Z",
        }
    }
}

/// Digest of the job's terms (job, query, privacy parameters) as a party
/// received them from the coordinator; see `jointly_protocol::queries::terms`.
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

/// This party's list, hashed and masked in a shuffled order, chunk by chunk:
/// its identifiers, then its dummies' points, then its pads
/// ([`crate::privacy::cover::Layout`]).
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
    ) -> Option<ListMessage> {
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
            return Some(ListMessage::Points { list, points });
        }
        if !self.closed {
            self.closed = true;
            return Some(ListMessage::End {
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

// Conversion to and from the wire, strict on what a peer sent.

pub(crate) fn list_to_wire(list: List) -> MaskedList {
    match list {
        List::U => MaskedList::U,
        List::V => MaskedList::V,
        List::W => MaskedList::W,
        List::Z => MaskedList::Z,
    }
}

pub(crate) fn list_from_wire(value: i32) -> Result<List, ProtocolError> {
    match MaskedList::try_from(value) {
        Ok(MaskedList::U) => Ok(List::U),
        Ok(MaskedList::V) => Ok(List::V),
        Ok(MaskedList::W) => Ok(List::W),
        Ok(MaskedList::Z) => Ok(List::Z),
        _ => Err(ProtocolError::Malformed {
            what: "a point chunk names no known list",
        }),
    }
}

impl From<ListMessage> for ProtocolMessage {
    fn from(msg: ListMessage) -> Self {
        let kind = match msg {
            ListMessage::Announce(a) => protocol_message::Kind::Announce(announce_to_wire(&a)),
            ListMessage::Points { list, points } => protocol_message::Kind::Points(PointChunk {
                list: list_to_wire(list).into(),
                points: points.as_flattened().to_vec(),
            }),
            ListMessage::End { list, count } => protocol_message::Kind::ListEnd(ListEnd {
                list: list_to_wire(list).into(),
                count,
            }),
        };
        ProtocolMessage {
            kind: Some(kind),
            lane: 0,
        }
    }
}

impl TryFrom<ProtocolMessage> for ListMessage {
    type Error = ProtocolError;

    fn try_from(msg: ProtocolMessage) -> Result<Self, Self::Error> {
        match msg.kind {
            Some(protocol_message::Kind::Announce(a)) => Ok(ListMessage::Announce(announce_from_wire(a)?)),
            Some(protocol_message::Kind::Points(chunk)) => {
                let (list, points) = parse_points(&chunk)?;
                Ok(ListMessage::Points { list, points })
            }
            Some(protocol_message::Kind::ListEnd(end)) => Ok(ListMessage::End {
                list: list_from_wire(end.list)?,
                count: end.count,
            }),
            None => Err(ProtocolError::Malformed {
                what: "an empty protocol message",
            }),
            Some(_) => Err(ProtocolError::Malformed {
                what: "a message of another protocol in an overlap session",
            }),
        }
    }
}

pub(crate) fn announce_to_wire(a: &Announce) -> wire::Announce {
    wire::Announce {
        set_size: a.set_size,
        terms: a.terms.to_vec(),
        session_key: a.key.map(|k| k.to_vec()).unwrap_or_default(),
        pad_offset: a.pad_offset,
        dummy_offset: a.dummy_offset,
        min_aggregation: a.min_aggregation,
    }
}

pub(crate) fn announce_from_wire(a: wire::Announce) -> Result<Announce, ProtocolError> {
    Ok(Announce {
        set_size: a.set_size,
        key: session_key_of(&a.session_key)?,
        terms: terms_of(a.terms)?,
        pad_offset: a.pad_offset,
        dummy_offset: a.dummy_offset,
        min_aggregation: a.min_aggregation,
    })
}

pub(crate) fn parse_points(chunk: &PointChunk) -> Result<(List, Vec<PointBytes>), ProtocolError> {
    let list = list_from_wire(chunk.list)?;
    // Checked before splitting, so an oversized chunk costs no copy.
    if chunk.points.len() > MAX_CHUNK_POINTS * 32 {
        return Err(ProtocolError::OversizedChunk {
            step: list.step(),
            points: chunk.points.len() / 32,
            max: MAX_CHUNK_POINTS,
        });
    }
    let points = split_points(&chunk.points).ok_or(ProtocolError::RaggedChunk {
        step: list.step(),
        len: chunk.points.len(),
    })?;
    Ok((list, points))
}

/// An announced session key: absent, or a valid non-identity point.
fn session_key_of(bytes: &[u8]) -> Result<Option<PointBytes>, ProtocolError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let key: PointBytes = bytes.try_into().map_err(|_| ProtocolError::Malformed {
        what: "an announcement whose session key is not 32 bytes",
    })?;
    crate::crypto::group::decode_point(&key, 0).map_err(|_| ProtocolError::Malformed {
        what: "an announcement whose session key is not a valid point",
    })?;
    Ok(Some(key))
}

fn terms_of(bytes: Vec<u8>) -> Result<[u8; 32], ProtocolError> {
    bytes.try_into().map_err(|_| ProtocolError::Malformed {
        what: "an announcement whose terms digest is not 32 bytes",
    })
}
