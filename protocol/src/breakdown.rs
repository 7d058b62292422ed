//! The breakdown protocol (PROTOCOLS.md, section B) as sans-I/O state
//! machines: counts and sums over the intersection, per receiver group ×
//! sender group, without either side learning an attribute of the other's
//! customers.
//!
//! One *lane* is one direction of matching. Its receiver R partitions its
//! rows by its own group into batches (each with its random cover points)
//! and learns only how many rows of each batch matched, plus the sender's
//! dummies ([`crate::cover`]); its sender S attaches to each of
//! its rows an encrypted one-hot payload of its own group and measures; R
//! sums the payloads of matched rows per batch. A breakdown with measures on
//! both sides runs two lanes in one session ([`Breakdown`]), the second with
//! the roles swapped, since only a lane's sender can contribute measures.
//!
//! ```text
//! R -> S  Announce |U| + terms + K_R, KeyOffer, Batches [sizes], U (batch by batch), End U
//! S -> R  Announce |W| + terms, KeyOffer, W = s*H(y), dummies, pads (shuffled), End W
//! S -> R  V: per batch, s*u and 2*offset dummy answers, shuffled within the batch, End V
//! S -> R  Payloads: Enc(one-hot of g_S(y), clipped measures) in W's order,
//!         Enc(0) for dummies and pads
//! R -> S  Release: per batch, re-randomized sum of matched payloads + R's noise
//! R, S    to the coordinator only: decryption shares (S also the ciphertexts
//!         with its own noise added)
//! ```
//!
//! R never decrypts anything: it computes decryption shares only of the sums
//! it produced itself, and S only of the ciphertexts R hands it in the
//! release step, exactly once, one per announced batch.

use std::sync::Arc;

use curve25519_dalek::ristretto::RistrettoPoint;
use rayon::prelude::*;

use crate::{
    bsgs::BsgsTable,
    cover::{Dummies, Entry, Layout, random_point},
    elgamal::{
        Ciphertext, ElGamalError, JointKeys, KeyOffer, OneHot, SlotShares, ZERO_ROW, decode_ciphertexts,
        decode_decryption_shares,
    },
    error::ProtocolError,
    group::{PointBytes, SessionKey, decode_and_mask, mask_each, validate_points},
    hash::{HashToGroup, ID_DST},
    idlist::IdList,
    overlap::{
        Announce, Limits, List, Setup, Terms, capacity_for, check_announce, check_chunk, check_end,
        next_chunk, peer_key_point,
    },
    party::{Outcome, Party, Progress},
    shuffle,
};

/// Largest payload or release message, in points (about 960 KiB), so every
/// frame stays under the transport's 1 MiB limit.
pub const MAX_MESSAGE_POINTS: usize = 30_000;

/// Largest number of slots in one payload (sender groups × statistics).
pub const MAX_SLOTS: usize = 4096;

/// The shape of one lane, which both parties derive from the query spec and
/// their schemas: R's groups are the batches, S's groups and statistics the
/// payload slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneShape {
    pub receiver_groups: usize,
    pub payload: OneHot,
}

impl LaneShape {
    pub fn cells(&self) -> usize {
        self.receiver_groups
    }

    pub fn slots(&self) -> usize {
        self.payload.slots()
    }

    /// Values released by this lane: one per slot per batch (saturating;
    /// `check` refuses any shape where it would be large).
    pub fn released_values(&self) -> usize {
        self.cells().saturating_mul(self.slots())
    }

    pub fn check(&self) -> Result<(), ProtocolError> {
        let slots = self.slots();
        if self.receiver_groups == 0 || slots == 0 {
            return Err(ProtocolError::Shape {
                what: "a breakdown lane needs at least one group on each side and one statistic",
            });
        }
        if slots > MAX_SLOTS {
            return Err(ProtocolError::Shape {
                what: "too many sender groups × statistics for one payload (at most 4096)",
            });
        }
        // Checked: a peer's or planner's group counts can be near usize::MAX.
        if self
            .cells()
            .checked_mul(slots + 1)
            .is_none_or(|points| points > MAX_MESSAGE_POINTS)
        {
            return Err(ProtocolError::Shape {
                what: "too many cells × statistics to release in one message (at most 30000 points)",
            });
        }
        Ok(())
    }
}

/// The rows one party brings to a lane: positions into its identifier list
/// (after its filters), the group of each, and for a sender its measures
/// (`measures.len() == rows.len() * shape.payload.measures`, row-major,
/// already clipped).
#[derive(Clone)]
pub struct LaneRows {
    pub ids: Arc<IdList>,
    pub rows: Vec<u32>,
    pub groups: Vec<u32>,
    pub measures: Vec<i64>,
}

impl LaneRows {
    /// No rows yet, over `ids`.
    pub fn empty(ids: &Arc<IdList>) -> Self {
        Self {
            ids: Arc::clone(ids),
            rows: Vec::new(),
            groups: Vec::new(),
            measures: Vec::new(),
        }
    }
}

impl std::fmt::Debug for LaneRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneRows")
            .field("rows", &self.rows.len())
            .finish()
    }
}

/// A message of one breakdown lane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BreakdownMessage {
    Announce(Announce),
    KeyOffer {
        slots: usize,
        offer: Vec<u8>,
    },
    Batches {
        sizes: Vec<u64>,
    },
    Points {
        list: List,
        points: Vec<PointBytes>,
    },
    End {
        list: List,
        count: u64,
    },
    /// Raw ciphertexts: R decodes only those of matched rows.
    Payloads {
        slots: usize,
        ciphertexts: Vec<u8>,
    },
    Release {
        slots: usize,
        ciphertexts: Vec<u8>,
    },
}

impl BreakdownMessage {
    pub fn describe(&self) -> &'static str {
        match self {
            BreakdownMessage::Announce(_) => "a set-size announcement",
            BreakdownMessage::KeyOffer { .. } => "a key offer",
            BreakdownMessage::Batches { .. } => "the batch sizes",
            BreakdownMessage::Points { list: List::U, .. } => "points of list U",
            BreakdownMessage::Points { list: List::V, .. } => "points of list V",
            BreakdownMessage::Points { list: List::W, .. } => "points of list W",
            BreakdownMessage::Points { list: List::Z, .. } => "points of list Z",
            BreakdownMessage::End { .. } => "the end of a list",
            BreakdownMessage::Payloads { .. } => "payload ciphertexts",
            BreakdownMessage::Release { .. } => "the release ciphertexts",
        }
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

const STEP_KEYS: &str = "breakdown step B.0 (joint keys)";
const STEP_PAYLOADS: &str = "breakdown step B.2 (payloads)";
const STEP_RELEASE: &str = "breakdown step B.4 (release)";

fn step_of(list: List) -> &'static str {
    match list {
        List::U => "breakdown step B.1 (list U, the receiver's batched masked identifiers)",
        List::V => "breakdown step B.1 (list V, U masked again by the sender, shuffled per batch)",
        List::W => "breakdown step B.2 (list W, the sender's masked identifiers)",
        List::Z => "breakdown (list Z, not part of this protocol)",
    }
}

fn elgamal(step: &'static str) -> impl Fn(ElGamalError) -> ProtocolError {
    move |error| ProtocolError::Crypto { step, error }
}

/// The context a party's key proofs are bound to: the job's terms, the lane
/// and the party's role in it, so a proof cannot be replayed elsewhere.
fn key_context(terms: &Terms, lane: u32, role: &[u8]) -> Vec<u8> {
    let mut c = b"JOINTLY-V1-BREAKDOWN-KEYS".to_vec();
    c.extend_from_slice(terms);
    c.extend_from_slice(&lane.to_be_bytes());
    c.extend_from_slice(role);
    c
}

/// Rows of `slots` slots per message, within [`MAX_MESSAGE_POINTS`].
fn rows_per_message(slots: usize, limits: &Limits) -> usize {
    (MAX_MESSAGE_POINTS / (slots + 1)).min(limits.chunk_points).max(1)
}

/// Adds `noise` (one value per slot per cell) to `cts` in place.
fn add_noise(cts: &mut [Ciphertext], noise: &[i64], slots: usize) -> Result<(), ProtocolError> {
    cts.par_iter_mut()
        .zip(noise.par_chunks(slots))
        .try_for_each(|(ct, shares)| ct.add_plaintexts(shares))
        .map_err(elgamal(STEP_RELEASE))
}

fn check_noise(shape: &LaneShape, noise: &[i64]) -> Result<(), ProtocolError> {
    if noise.len() != shape.released_values() {
        return Err(ProtocolError::Shape {
            what: "the noise shares do not cover every released value of the lane",
        });
    }
    Ok(())
}

/// The receiver's list U: every batch's rows and `pads[b]` random points,
/// shuffled within the batch. `None` marks a pad.
fn plan_batches(
    rows: &LaneRows,
    batches: usize,
    pads: &[u64],
) -> Result<(Vec<u64>, Vec<Option<u32>>), ProtocolError> {
    if rows.groups.len() != rows.rows.len() {
        return Err(ProtocolError::Shape {
            what: "every receiver row needs a group",
        });
    }
    let mut members: Vec<Vec<Option<u32>>> = vec![Vec::new(); batches];
    for (&row, &group) in rows.rows.iter().zip(&rows.groups) {
        let batch = members.get_mut(group as usize).ok_or(ProtocolError::Shape {
            what: "a receiver row's group is outside the lane's groups",
        })?;
        batch.push(Some(row));
    }
    let mut sizes = Vec::with_capacity(batches);
    let mut order = Vec::new();
    for (mut batch, &pad) in members.into_iter().zip(pads) {
        batch.resize(batch.len() + pad as usize, None);
        shuffle::shuffle(&mut batch);
        sizes.push(batch.len() as u64);
        order.extend(batch);
    }
    Ok((sizes, order))
}

/// R of one lane.
pub struct BreakdownReceiver {
    lane: u32,
    shape: LaneShape,
    setup: Setup,
    key: SessionKey,
    hasher: HashToGroup,
    shares: SlotShares,
    noise: Vec<i64>,
    ids: Arc<IdList>,
    sent: SentStage,
    batch_sizes: Vec<u64>,
    u_plan: Vec<Option<u32>>,
    u_next: usize,
    peer: Option<Announce>,
    joint: Option<JointKeys>,
    rw: Vec<PointBytes>,
    w_closed: bool,
    v: Vec<PointBytes>,
    v_closed: bool,
    /// Per row of W: the batch it matched, or `u32::MAX`.
    matched: Option<Vec<u32>>,
    payload_rows: u64,
    sums: Vec<Ciphertext>,
    release: Option<Vec<u8>>,
    outcome: Option<LaneOutcome>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SentStage {
    Nothing,
    Announce,
    KeyOffer,
    Batches,
    ListEnd,
    Release,
}

impl std::fmt::Debug for BreakdownReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakdownReceiver")
            .field("lane", &self.lane)
            .field("progress", &self.progress())
            .finish()
    }
}

impl BreakdownReceiver {
    /// `noise`: this node's share per slot per batch (zeros when exact); the
    /// cover has one pad per batch and no dummies.
    pub fn new(
        lane: u32,
        shape: LaneShape,
        rows: LaneRows,
        noise: Vec<i64>,
        setup: Setup,
    ) -> Result<Self, ProtocolError> {
        shape.check()?;
        check_noise(&shape, &noise)?;
        setup.cover.check(shape.receiver_groups, 0)?;
        let (batch_sizes, u_plan) = plan_batches(&rows, shape.receiver_groups, &setup.cover.pads)?;
        let shares = SlotShares::generate(shape.slots(), &mut rand::rng()).map_err(elgamal(STEP_KEYS))?;
        Ok(Self {
            lane,
            shape,
            setup,
            key: SessionKey::random(),
            hasher: HashToGroup::new(ID_DST),
            shares,
            noise,
            ids: rows.ids,
            sent: SentStage::Nothing,
            batch_sizes,
            u_plan,
            u_next: 0,
            peer: None,
            joint: None,
            rw: Vec::new(),
            w_closed: false,
            v: Vec::new(),
            v_closed: false,
            matched: None,
            payload_rows: 0,
            sums: Vec::new(),
            release: None,
            outcome: None,
        })
    }

    fn u_total(&self) -> u64 {
        self.u_plan.len() as u64
    }

    /// Points the sender answers each batch with besides U's.
    fn width(&self) -> u64 {
        self.peer.map_or(0, |p| p.dummy_offset.saturating_mul(2))
    }

    /// V: every batch of U answered, with the sender's dummy width each.
    fn v_total(&self) -> u64 {
        let batches = self.batch_sizes.len() as u64;
        self.u_total()
            .saturating_add(self.width().saturating_mul(batches))
    }

    pub fn poll(&mut self) -> Option<BreakdownMessage> {
        match self.sent {
            SentStage::Nothing => {
                self.sent = SentStage::Announce;
                return Some(BreakdownMessage::Announce(
                    self.setup.announce(self.u_total(), Some(self.key.public())),
                ));
            }
            SentStage::Announce => {
                self.sent = SentStage::KeyOffer;
                let context = key_context(&self.setup.terms, self.lane, b"R");
                return Some(BreakdownMessage::KeyOffer {
                    slots: self.shares.slots(),
                    offer: self.shares.offer(&context, &mut rand::rng()).to_bytes(),
                });
            }
            SentStage::KeyOffer => {
                self.sent = SentStage::Batches;
                return Some(BreakdownMessage::Batches {
                    sizes: self.batch_sizes.clone(),
                });
            }
            SentStage::Batches => {
                if self.u_next < self.u_plan.len() {
                    let end = (self.u_next + self.setup.limits.chunk_points.max(1)).min(self.u_plan.len());
                    let slice = &self.u_plan[self.u_next..end];
                    let (ids, hasher) = (&self.ids, &self.hasher);
                    // Padding points are uniformly random, like masked points.
                    let points = mask_each(&self.key, slice.len(), |i| match slice[i] {
                        Some(row) => hasher.hash(&ids.hash_parts(row as usize)),
                        None => random_point(),
                    });
                    self.u_next = end;
                    return Some(BreakdownMessage::Points {
                        list: List::U,
                        points,
                    });
                }
                self.sent = SentStage::ListEnd;
                return Some(BreakdownMessage::End {
                    list: List::U,
                    count: self.u_total(),
                });
            }
            SentStage::ListEnd => {
                if let Some(ciphertexts) = self.release.take() {
                    self.sent = SentStage::Release;
                    return Some(BreakdownMessage::Release {
                        slots: self.shape.slots(),
                        ciphertexts,
                    });
                }
            }
            SentStage::Release => {}
        }
        None
    }

    pub fn receive(&mut self, msg: BreakdownMessage) -> Result<(), ProtocolError> {
        let unexpected = |got: &BreakdownMessage| ProtocolError::Unexpected {
            expected: "the sender's announcement, key offer, lists W and V, or payloads",
            got: got.describe(),
        };
        let limits = self.setup.limits;
        match msg {
            BreakdownMessage::Announce(a) if self.peer.is_none() => {
                let batches = self.batch_sizes.len() as u64;
                check_announce(&a, &self.setup.terms, &limits, 1, batches)?;
                self.peer = Some(a);
                self.rw.reserve(capacity_for(a.set_size));
                Ok(())
            }
            BreakdownMessage::KeyOffer { slots, offer } if self.peer.is_some() && self.joint.is_none() => {
                self.joint = Some(peer_keys(
                    &self.shares,
                    slots,
                    &offer,
                    &self.setup.terms,
                    self.lane,
                    b"S",
                )?);
                Ok(())
            }
            BreakdownMessage::Points {
                list: List::W,
                points,
            } if self.joint.is_some() && !self.w_closed => {
                let peer = self.peer_size();
                check_chunk(step_of(List::W), points.len(), self.rw.len(), peer, &limits)?;
                let masked = decode_and_mask(&self.key, &points).map_err(|bad| ProtocolError::BadPoint {
                    step: step_of(List::W),
                    bad,
                })?;
                self.rw.extend_from_slice(&masked);
                Ok(())
            }
            BreakdownMessage::End { list: List::W, count } if self.joint.is_some() && !self.w_closed => {
                check_end(step_of(List::W), count, self.rw.len(), self.peer_size())?;
                self.w_closed = true;
                self.lists_complete()
            }
            // S answers each batch of U as soon as it is complete.
            BreakdownMessage::Points {
                list: List::V,
                points,
            } if self.sent >= SentStage::Batches && self.peer.is_some() && !self.v_closed => {
                check_chunk(
                    step_of(List::V),
                    points.len(),
                    self.v.len(),
                    self.v_total(),
                    &limits,
                )?;
                validate_points(&points).map_err(|bad| ProtocolError::BadPoint {
                    step: step_of(List::V),
                    bad,
                })?;
                if self.v.is_empty() {
                    self.v.reserve(capacity_for(self.v_total()));
                }
                self.v.extend_from_slice(&points);
                Ok(())
            }
            BreakdownMessage::End { list: List::V, count }
                if self.sent >= SentStage::ListEnd && self.peer.is_some() && !self.v_closed =>
            {
                check_end(step_of(List::V), count, self.v.len(), self.v_total())?;
                self.v_closed = true;
                self.lists_complete()
            }
            BreakdownMessage::Payloads { slots, ciphertexts }
                if self.matched.is_some() && self.outcome.is_none() =>
            {
                self.payloads(slots, &ciphertexts)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Once W and V are complete: match, and wait for the payloads (none
    /// come from an empty sender, so release at once).
    fn lists_complete(&mut self) -> Result<(), ProtocolError> {
        if !(self.w_closed && self.v_closed) {
            return Ok(());
        }
        self.matched = Some(self.match_rows()?);
        self.sums = vec![Ciphertext::zero(self.shape.slots()); self.shape.cells()];
        if self.peer_size() == 0 {
            self.prepare_release()?;
        }
        Ok(())
    }

    fn peer_size(&self) -> u64 {
        self.peer.map_or(0, |p| p.set_size)
    }

    /// Matches every row of W to the batch whose V point equals its `r*w`.
    fn match_rows(&mut self) -> Result<Vec<u32>, ProtocolError> {
        let mut tagged: Vec<(PointBytes, u32)> = Vec::with_capacity(self.v.len());
        let mut points = std::mem::take(&mut self.v).into_iter();
        let width = self.width();
        for (batch, &size) in self.batch_sizes.iter().enumerate() {
            let answered = (size + width) as usize;
            tagged.extend(points.by_ref().take(answered).map(|p| (p, batch as u32)));
        }
        tagged.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if tagged.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(ProtocolError::DuplicatePoints {
                step: step_of(List::V),
            });
        }
        let rw = std::mem::take(&mut self.rw);
        let mut sorted = rw.clone();
        sorted.par_sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(ProtocolError::DuplicatePoints {
                step: step_of(List::W),
            });
        }
        drop(sorted);
        Ok(rw
            .par_iter()
            .map(|p| match tagged.binary_search_by(|t| t.0.cmp(p)) {
                Ok(i) => tagged[i].1,
                Err(_) => u32::MAX,
            })
            .collect())
    }

    fn payloads(&mut self, slots: usize, bytes: &[u8]) -> Result<(), ProtocolError> {
        if slots != self.shape.slots() {
            return Err(ProtocolError::Crypto {
                step: STEP_PAYLOADS,
                error: ElGamalError::SlotMismatch {
                    what: "payload",
                    expected: self.shape.slots(),
                    got: slots,
                },
            });
        }
        let unit = 32 * (slots + 1);
        if !bytes.len().is_multiple_of(unit) || bytes.len() / unit > (MAX_MESSAGE_POINTS / (slots + 1)).max(1)
        {
            return Err(ProtocolError::Malformed {
                what: "a payload chunk that is not a whole number of ciphertexts or is too large",
            });
        }
        let rows = (bytes.len() / unit) as u64;
        let peer = self.peer_size();
        if self.payload_rows + rows > peer {
            return Err(ProtocolError::CountMismatch {
                step: STEP_PAYLOADS,
                announced: peer,
                received: self.payload_rows + rows,
            });
        }
        let matched = self.matched.as_deref().unwrap_or(&[]);
        let first = self.payload_rows as usize;
        let cells = self.shape.cells();
        // Only matched rows are decoded: R never needs the others.
        let partial = bytes
            .par_chunks_exact(unit)
            .enumerate()
            .filter(|(i, _)| matched[first + i] != u32::MAX)
            .try_fold(
                || vec![Ciphertext::zero(slots); cells],
                |mut acc, (i, ct)| {
                    let ct = Ciphertext::from_bytes(ct, slots)?;
                    acc[matched[first + i] as usize].accumulate(&ct)?;
                    Ok::<_, ElGamalError>(acc)
                },
            )
            .try_reduce(
                || vec![Ciphertext::zero(slots); cells],
                |mut a, b| {
                    for (x, y) in a.iter_mut().zip(&b) {
                        x.accumulate(y)?;
                    }
                    Ok(a)
                },
            )
            .map_err(elgamal(STEP_PAYLOADS))?;
        for (sum, part) in self.sums.iter_mut().zip(&partial) {
            sum.accumulate(part).map_err(elgamal(STEP_PAYLOADS))?;
        }
        self.payload_rows += rows;
        if self.payload_rows == peer {
            self.prepare_release()?;
        }
        Ok(())
    }

    /// B.4: re-randomize (S knows its payloads' randomness and could
    /// otherwise recognise a sum of few of them), add this node's noise, and
    /// compute this node's decryption shares of exactly what it sends.
    fn prepare_release(&mut self) -> Result<(), ProtocolError> {
        let joint = self.joint.as_ref().ok_or(ProtocolError::Unexpected {
            expected: "the sender's key offer",
            got: "payloads",
        })?;
        let mut rng = rand::rng();
        let mut released = std::mem::take(&mut self.sums)
            .iter()
            .map(|ct| joint.rerandomize(ct, &mut rng))
            .collect::<Result<Vec<_>, _>>()
            .map_err(elgamal(STEP_RELEASE))?;
        let slots = self.shape.slots();
        add_noise(&mut released, &self.noise, slots)?;
        let decryption_shares = self
            .shares
            .encoded_decryption_shares(&released)
            .map_err(elgamal(STEP_RELEASE))?;
        self.release = Some(crate::elgamal::encode_ciphertexts(&released));
        self.outcome = Some(LaneOutcome {
            lane: self.lane,
            cells: self.shape.cells(),
            slots,
            ciphertexts: Vec::new(),
            decryption_shares,
        });
        Ok(())
    }

    pub fn is_done(&self) -> bool {
        self.sent == SentStage::Release
    }

    pub fn progress(&self) -> Progress {
        let peer = self.peer_size();
        Progress {
            done: self.u_next as u64 + self.rw.len() as u64 + self.v.len() as u64 + self.payload_rows,
            total: self.u_total() + self.v_total() + 2 * peer,
        }
    }

    pub fn finish(self) -> Result<LaneOutcome, ProtocolError> {
        match (self.is_done(), self.outcome) {
            (true, Some(o)) => Ok(o),
            _ => Err(ProtocolError::Unexpected {
                expected: "every payload before the release",
                got: "an early end of the session",
            }),
        }
    }
}

/// Parses and verifies the peer's key offer and combines the joint keys.
fn peer_keys(
    own: &SlotShares,
    slots: usize,
    offer: &[u8],
    terms: &Terms,
    lane: u32,
    peer_role: &[u8],
) -> Result<JointKeys, ProtocolError> {
    if slots != own.slots() {
        return Err(ProtocolError::Crypto {
            step: STEP_KEYS,
            error: ElGamalError::SlotMismatch {
                what: "the peer's key offer",
                expected: own.slots(),
                got: slots,
            },
        });
    }
    let verified = KeyOffer::from_bytes(offer, slots)
        .and_then(|o| o.verify(&key_context(terms, lane, peer_role)))
        .map_err(elgamal(STEP_KEYS))?;
    JointKeys::combine(own, &verified).map_err(elgamal(STEP_KEYS))
}

/// S of one lane.
pub struct BreakdownSender {
    lane: u32,
    shape: LaneShape,
    setup: Setup,
    key: SessionKey,
    hasher: HashToGroup,
    shares: SlotShares,
    noise: Vec<i64>,
    rows: LaneRows,
    sent: SentStage,
    /// W: rows, then dummies, then pads ([`Layout`]).
    layout: Layout,
    dummies: Dummies,
    /// W's order: indices into `layout`, shuffled.
    w_order: Vec<u32>,
    w_next: usize,
    w_closed: bool,
    peer: Option<Announce>,
    joint: Option<JointKeys>,
    batch_sizes: Option<Vec<u64>>,
    batch: usize,
    batch_points: Vec<PointBytes>,
    u_received: u64,
    u_closed: bool,
    v_ready: Vec<PointBytes>,
    v_next: usize,
    v_sent: u64,
    v_closed: bool,
    payload_next: usize,
    outcome: Option<LaneOutcome>,
    /// The receiver's session key, once announced, when there are dummies.
    peer_key: Option<RistrettoPoint>,
}

impl std::fmt::Debug for BreakdownSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakdownSender")
            .field("lane", &self.lane)
            .field("progress", &self.progress())
            .finish()
    }
}

impl BreakdownSender {
    /// `noise`: this node's share per slot per receiver batch (zeros when
    /// exact); the cover has one pad (W) and a dummy count per receiver batch.
    pub fn new(
        lane: u32,
        shape: LaneShape,
        rows: LaneRows,
        noise: Vec<i64>,
        setup: Setup,
    ) -> Result<Self, ProtocolError> {
        shape.check()?;
        check_noise(&shape, &noise)?;
        setup.cover.check(1, shape.receiver_groups)?;
        if rows.groups.len() != rows.rows.len()
            || rows.measures.len() != rows.rows.len() * shape.payload.measures
            || rows.groups.iter().any(|&g| g as usize >= shape.payload.groups)
        {
            return Err(ProtocolError::Shape {
                what: "the sender's rows do not fit the lane's groups and measures",
            });
        }
        let shares = SlotShares::generate(shape.slots(), &mut rand::rng()).map_err(elgamal(STEP_KEYS))?;
        let dummies = Dummies::new(&setup.cover.dummies, setup.cover.dummy_width());
        let layout = Layout {
            rows: rows.rows.len(),
            dummies: dummies.len(),
            pads: setup.cover.pads[0] as usize,
        };
        Ok(Self {
            lane,
            shape,
            setup,
            key: SessionKey::random(),
            hasher: HashToGroup::new(ID_DST),
            shares,
            noise,
            w_order: shuffle::permutation(layout.len()),
            layout,
            dummies,
            rows,
            sent: SentStage::Nothing,
            w_next: 0,
            w_closed: false,
            peer: None,
            joint: None,
            batch_sizes: None,
            batch: 0,
            batch_points: Vec::new(),
            u_received: 0,
            u_closed: false,
            v_ready: Vec::new(),
            v_next: 0,
            v_sent: 0,
            v_closed: false,
            payload_next: 0,
            outcome: None,
            peer_key: None,
        })
    }

    fn own_size(&self) -> u64 {
        self.layout.len() as u64
    }

    fn peer_size(&self) -> u64 {
        self.peer.map_or(0, |p| p.set_size)
    }

    pub fn poll(&mut self) -> Option<BreakdownMessage> {
        match self.sent {
            SentStage::Nothing => {
                self.sent = SentStage::Announce;
                return Some(BreakdownMessage::Announce(
                    self.setup.announce(self.own_size(), Some(self.key.public())),
                ));
            }
            SentStage::Announce => {
                self.sent = SentStage::KeyOffer;
                let context = key_context(&self.setup.terms, self.lane, b"S");
                return Some(BreakdownMessage::KeyOffer {
                    slots: self.shares.slots(),
                    offer: self.shares.offer(&context, &mut rand::rng()).to_bytes(),
                });
            }
            _ => {}
        }
        let chunk = self.setup.limits.chunk_points.max(1);
        // V first: it is ready-made and R cannot match without it.
        if let Some(points) = next_chunk(&self.v_ready, &mut self.v_next, chunk) {
            self.v_sent += points.len() as u64;
            if self.v_next == self.v_ready.len() {
                self.v_ready.clear();
                self.v_next = 0;
            }
            return Some(BreakdownMessage::Points {
                list: List::V,
                points,
            });
        }
        if self.u_closed && !self.v_closed {
            self.v_closed = true;
            return Some(BreakdownMessage::End {
                list: List::V,
                count: self.v_sent,
            });
        }
        if self.w_next < self.w_order.len() {
            let end = (self.w_next + chunk).min(self.w_order.len());
            let slice = &self.w_order[self.w_next..end];
            let (rows, ids, hasher) = (&self.rows.rows, &self.rows.ids, &self.hasher);
            let (layout, dummies) = (self.layout, &self.dummies);
            let points = mask_each(&self.key, slice.len(), |i| match layout.entry(slice[i]) {
                Entry::Row(row) => hasher.hash(&ids.hash_parts(rows[row] as usize)),
                Entry::Dummy(j) => dummies.base(j),
                Entry::Pad => random_point(),
            });
            self.w_next = end;
            return Some(BreakdownMessage::Points {
                list: List::W,
                points,
            });
        }
        if !self.w_closed {
            self.w_closed = true;
            return Some(BreakdownMessage::End {
                list: List::W,
                count: self.own_size(),
            });
        }
        // Payloads once R holds all of W and V, so it can match as they come.
        if self.v_closed && self.payload_next < self.w_order.len() {
            let joint = self.joint.as_ref()?;
            let end = (self.payload_next + rows_per_message(self.shape.slots(), &self.setup.limits))
                .min(self.w_order.len());
            let m = self.shape.payload.measures;
            let slice = &self.w_order[self.payload_next..end];
            // Dummies and pads carry zeros, so no released sum moves.
            let zeros = vec![0i64; m];
            let row_of = |i: u32| match self.layout.entry(i) {
                Entry::Row(row) => Some(row),
                Entry::Dummy(_) | Entry::Pad => None,
            };
            let groups: Vec<u32> = slice
                .iter()
                .map(|&i| row_of(i).map_or(ZERO_ROW, |r| self.rows.groups[r]))
                .collect();
            let measures: Vec<i64> = slice
                .iter()
                .flat_map(|&i| match row_of(i) {
                    Some(r) => &self.rows.measures[r * m..(r + 1) * m],
                    None => &zeros[..],
                })
                .copied()
                .collect();
            // Shapes were checked at construction; an error here is a bug, and
            // stalling the session (None) makes it visible as one.
            let ciphertexts = joint
                .encrypt_one_hot(self.shape.payload, &groups, &measures, &mut rand::rng())
                .ok()?;
            self.payload_next = end;
            return Some(BreakdownMessage::Payloads {
                slots: self.shape.slots(),
                ciphertexts,
            });
        }
        None
    }

    pub fn receive(&mut self, msg: BreakdownMessage) -> Result<(), ProtocolError> {
        let unexpected = |got: &BreakdownMessage| ProtocolError::Unexpected {
            expected: "the receiver's announcement, key offer, batch sizes, list U or release",
            got: got.describe(),
        };
        match msg {
            BreakdownMessage::Announce(a) if self.peer.is_none() => {
                check_announce(
                    &a,
                    &self.setup.terms,
                    &self.setup.limits,
                    self.shape.receiver_groups as u64,
                    0,
                )?;
                if self.setup.cover.dummy_width() > 0 {
                    // The dummies' answers are built on the receiver's key.
                    self.peer_key = Some(peer_key_point(a.key, step_of(List::V))?);
                }
                self.peer = Some(a);
                Ok(())
            }
            BreakdownMessage::KeyOffer { slots, offer } if self.peer.is_some() && self.joint.is_none() => {
                self.joint = Some(peer_keys(
                    &self.shares,
                    slots,
                    &offer,
                    &self.setup.terms,
                    self.lane,
                    b"R",
                )?);
                Ok(())
            }
            BreakdownMessage::Batches { sizes } if self.joint.is_some() && self.batch_sizes.is_none() => {
                self.batches(sizes)
            }
            BreakdownMessage::Points {
                list: List::U,
                points,
            } if self.batch_sizes.is_some() && !self.u_closed => self.u_points(&points),
            BreakdownMessage::End { list: List::U, count }
                if self.batch_sizes.is_some() && !self.u_closed =>
            {
                let total = self.peer_size();
                check_end(step_of(List::U), count, self.u_received as usize, total)?;
                // Batches after the last point are empty: answer them too.
                self.answer_batches(&[]);
                self.u_closed = true;
                Ok(())
            }
            BreakdownMessage::Release { slots, ciphertexts }
                if self.payload_next == self.w_order.len() && self.v_closed && self.outcome.is_none() =>
            {
                self.release(slots, &ciphertexts)
            }
            other => Err(unexpected(&other)),
        }
    }

    fn batches(&mut self, sizes: Vec<u64>) -> Result<(), ProtocolError> {
        let announced = self.peer_size();
        let total = sizes.iter().try_fold(0u64, |a, &s| a.checked_add(s));
        if sizes.len() != self.shape.receiver_groups || total != Some(announced) {
            return Err(ProtocolError::Shape {
                what: "the receiver's batches do not match its groups or its announced size (breakdown step B.1)",
            });
        }
        self.batch_sizes = Some(sizes);
        Ok(())
    }

    /// Masks U as it arrives; each batch, once complete, gets its dummies'
    /// answers, is shuffled on its own and is queued as V.
    fn u_points(&mut self, points: &[PointBytes]) -> Result<(), ProtocolError> {
        let total = self.peer_size();
        check_chunk(
            step_of(List::U),
            points.len(),
            self.u_received as usize,
            total,
            &self.setup.limits,
        )?;
        let masked = decode_and_mask(&self.key, points).map_err(|bad| ProtocolError::BadPoint {
            step: step_of(List::U),
            bad,
        })?;
        self.u_received += masked.len() as u64;
        self.answer_batches(&masked);
        Ok(())
    }

    /// Fills batches from `masked` in order, queuing each one completed.
    fn answer_batches(&mut self, masked: &[PointBytes]) {
        let sizes = self.batch_sizes.clone().unwrap_or_default();
        let mut rest = masked;
        while let Some(&size) = sizes.get(self.batch) {
            let want = size as usize - self.batch_points.len();
            let take = want.min(rest.len());
            self.batch_points.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.batch_points.len() < size as usize {
                break;
            }
            let mut done = std::mem::take(&mut self.batch_points);
            if let Some(key_r) = &self.peer_key {
                let extra = self.dummies.answers(self.batch, key_r);
                done.extend(mask_each(&self.key, extra.len(), |i| extra[i]));
            }
            shuffle::shuffle(&mut done);
            self.v_ready.extend(done);
            self.batch += 1;
        }
    }

    /// B.4 at S: exactly one ciphertext per announced batch, once.
    fn release(&mut self, slots: usize, bytes: &[u8]) -> Result<(), ProtocolError> {
        if slots != self.shape.slots() {
            return Err(ProtocolError::Crypto {
                step: STEP_RELEASE,
                error: ElGamalError::SlotMismatch {
                    what: "release",
                    expected: self.shape.slots(),
                    got: slots,
                },
            });
        }
        let mut cts = decode_ciphertexts(bytes, slots).map_err(elgamal(STEP_RELEASE))?;
        if cts.len() != self.shape.cells() {
            return Err(ProtocolError::CountMismatch {
                step: STEP_RELEASE,
                announced: self.shape.cells() as u64,
                received: cts.len() as u64,
            });
        }
        add_noise(&mut cts, &self.noise, slots)?;
        let decryption_shares = self
            .shares
            .encoded_decryption_shares(&cts)
            .map_err(elgamal(STEP_RELEASE))?;
        self.outcome = Some(LaneOutcome {
            lane: self.lane,
            cells: cts.len(),
            slots,
            ciphertexts: crate::elgamal::encode_ciphertexts(&cts),
            decryption_shares,
        });
        Ok(())
    }

    pub fn is_done(&self) -> bool {
        self.outcome.is_some()
    }

    pub fn progress(&self) -> Progress {
        let peer = self.peer_size();
        let answers = self.setup.cover.dummy_width() * self.shape.receiver_groups as u64;
        Progress {
            done: self.w_next as u64 + self.u_received + self.v_sent + self.payload_next as u64,
            total: 2 * self.own_size() + 2 * peer + answers,
        }
    }

    pub fn finish(self) -> Result<LaneOutcome, ProtocolError> {
        self.outcome.ok_or(ProtocolError::Unexpected {
            expected: "the receiver's release",
            got: "an early end of the session",
        })
    }
}

/// The coordinator's part of B.4 for one lane: `m*B = c2'' - d_R - d_S` for
/// every slot of every cell, then `m` by baby-step giant-step within
/// `±bound`. Values come cell-major (`cell * slots + slot`), computed on all
/// cores.
pub fn open_lane(
    sender: &LaneOutcome,
    receiver: &LaneOutcome,
    table: &BsgsTable,
    bound: u64,
) -> Result<Vec<i64>, ProtocolError> {
    let (cells, slots) = (sender.cells, sender.slots);
    if receiver.cells != cells || receiver.slots != slots || receiver.lane != sender.lane {
        return Err(ProtocolError::Shape {
            what: "the two nodes' releases of a breakdown lane do not have the same shape",
        });
    }
    let cts = decode_ciphertexts(&sender.ciphertexts, slots).map_err(elgamal(STEP_RELEASE))?;
    let from_s = decode_decryption_shares(&sender.decryption_shares, slots).map_err(elgamal(STEP_RELEASE))?;
    let from_r =
        decode_decryption_shares(&receiver.decryption_shares, slots).map_err(elgamal(STEP_RELEASE))?;
    if cts.len() != cells || from_s.len() != cells || from_r.len() != cells {
        return Err(ProtocolError::Shape {
            what: "a breakdown release does not hold one ciphertext and one decryption share per cell",
        });
    }
    let points = cts
        .iter()
        .zip(from_r.iter().zip(&from_s))
        .map(|(ct, (r, s))| ct.decrypt_to_points(r, s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(elgamal(STEP_RELEASE))?
        .concat();
    points
        .par_iter()
        .enumerate()
        .map(|(i, p)| {
            table.solve(p, bound).ok_or(ProtocolError::ValueOutOfRange {
                cell: i / slots,
                slot: i % slots,
                bound,
            })
        })
        .collect()
}

/// One lane of a breakdown session, in either role.
#[derive(Debug)]
pub enum Lane {
    Receiver(Box<BreakdownReceiver>),
    Sender(Box<BreakdownSender>),
}

impl Lane {
    fn poll(&mut self) -> Option<BreakdownMessage> {
        match self {
            Lane::Receiver(r) => r.poll(),
            Lane::Sender(s) => s.poll(),
        }
    }

    fn receive(&mut self, msg: BreakdownMessage) -> Result<(), ProtocolError> {
        match self {
            Lane::Receiver(r) => r.receive(msg),
            Lane::Sender(s) => s.receive(msg),
        }
    }

    fn is_done(&self) -> bool {
        match self {
            Lane::Receiver(r) => r.is_done(),
            Lane::Sender(s) => s.is_done(),
        }
    }

    fn progress(&self) -> Progress {
        match self {
            Lane::Receiver(r) => r.progress(),
            Lane::Sender(s) => s.progress(),
        }
    }

    fn finish(self) -> Result<LaneOutcome, ProtocolError> {
        match self {
            Lane::Receiver(r) => r.finish(),
            Lane::Sender(s) => s.finish(),
        }
    }
}

/// One node's side of a breakdown session: its lanes, their messages
/// interleaved on one stream and told apart by lane number.
#[derive(Debug)]
pub struct Breakdown {
    lanes: Vec<Lane>,
    next: usize,
    in_order: bool,
}

impl Breakdown {
    /// `lanes[i]` is lane number `i`. Lanes take turns, so one lane's long
    /// list does not hold up the other (a breakdown's one or two lanes).
    pub fn new(lanes: Vec<Lane>) -> Self {
        Self {
            lanes,
            next: 0,
            in_order: false,
        }
    }

    /// Lanes in order: a lane sends only while every earlier lane waits for
    /// its peer, so few lanes hold their lists at once (attribution's lane
    /// per window).
    pub fn in_order(lanes: Vec<Lane>) -> Self {
        Self {
            lanes,
            next: 0,
            in_order: true,
        }
    }
}

impl Party for Breakdown {
    fn poll_transmit(&mut self) -> Option<crate::wire::ProtocolMessage> {
        let n = self.lanes.len();
        let first = if self.in_order { 0 } else { self.next };
        for k in 0..n {
            let i = (first + k) % n;
            if let Some(msg) = self.lanes[i].poll() {
                self.next = (i + 1) % n;
                return Some(crate::wire::lane_message(i as u32, msg));
            }
        }
        None
    }

    fn handle(&mut self, msg: crate::wire::ProtocolMessage) -> Result<(), ProtocolError> {
        let (lane, msg) = crate::wire::parse_lane_message(msg)?;
        let lane = self
            .lanes
            .get_mut(lane as usize)
            .ok_or(ProtocolError::Malformed {
                what: "a message for a breakdown lane that does not exist",
            })?;
        lane.receive(msg)
    }

    fn is_done(&self) -> bool {
        self.lanes.iter().all(Lane::is_done)
    }

    fn progress(&self) -> Progress {
        self.lanes
            .iter()
            .map(Lane::progress)
            .fold(Progress::default(), |a, p| Progress {
                done: a.done + p.done,
                total: a.total + p.total,
            })
    }

    fn finish(self: Box<Self>) -> Result<Outcome, ProtocolError> {
        self.lanes
            .into_iter()
            .map(Lane::finish)
            .collect::<Result<Vec<_>, _>>()
            .map(Outcome::Breakdown)
    }
}

#[cfg(test)]
#[path = "breakdown_tests.rs"]
mod tests;
