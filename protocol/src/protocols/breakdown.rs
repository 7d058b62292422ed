//! The breakdown protocol (PROTOCOLS.md, section B) as sans-I/O state
//! machines: counts and sums over the intersection, per receiver group ×
//! sender group, without either side learning an attribute of the other's
//! customers.
//!
//! One *lane* is one direction of matching. Its receiver R partitions its
//! rows by its own group into batches (each with its random cover points)
//! and learns only how many rows of each batch matched, plus the sender's
//! dummies ([`crate::privacy::cover`]); its sender S attaches to each of
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

use rayon::prelude::*;

use crate::{
    crypto::bsgs::BsgsTable,
    crypto::elgamal::{
        Ciphertext, ElGamalError, JointKeys, KeyOffer, OneHot, SlotShares, decode_ciphertexts,
        decode_decryption_shares,
    },
    crypto::shuffle,
    error::ProtocolError,
    ids::idlist::IdList,
    session::outcome::{LaneOutcome, Outcome},
    session::party::{Progress, Protocol},
    session::stream::{Limits, List, Terms},
};

mod messages;
mod pooled;
mod receiver;
mod sender;

pub use messages::{BreakdownMessage, LaneMessage, lane_message, parse_lane_message};
pub use pooled::{POOLED_CELLS, Pooled};
pub use receiver::BreakdownReceiver;
pub use sender::BreakdownSender;

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

/// Where a lane's joint keys come from, and so who releases its sums.
enum LaneKeys {
    /// Its own key shares, offered in the lane: it releases its own sums.
    Own(SlotShares),
    /// The pooled session's keys, handed in ([`Pooled`]): its sums go back
    /// to the session unreleased.
    Pooled,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SentStage {
    Nothing,
    Announce,
    KeyOffer,
    Batches,
    ListEnd,
    Release,
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
            table
                .vartime_solve(p, bound)
                .ok_or(ProtocolError::ValueOutOfRange {
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

impl Protocol for Breakdown {
    type Message = LaneMessage;

    fn poll(&mut self) -> Option<LaneMessage> {
        let n = self.lanes.len();
        let first = if self.in_order { 0 } else { self.next };
        for k in 0..n {
            let i = (first + k) % n;
            if let Some(msg) = self.lanes[i].poll() {
                self.next = (i + 1) % n;
                return Some(LaneMessage { lane: i as u32, msg });
            }
        }
        None
    }

    fn receive(&mut self, LaneMessage { lane, msg }: LaneMessage) -> Result<(), ProtocolError> {
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

    fn outcome(self) -> Result<Outcome, ProtocolError> {
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
