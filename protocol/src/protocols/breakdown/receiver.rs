//! A lane's receiver R (PROTOCOLS.md B.1 to B.4): sends its batches of
//! masked identifiers, counts matches per batch and sums the matched payloads.

use std::sync::Arc;

use rayon::prelude::*;

use crate::crypto::elgamal::{Ciphertext, ElGamalError, JointKeys, SlotShares};
use crate::crypto::group::{PointBytes, SessionKey, mask_each};
use crate::crypto::hash::{HashToGroup, ID_DST};
use crate::error::ProtocolError;
use crate::ids::idlist::IdList;
use crate::privacy::cover::random_point;
use crate::session::lists::{InboundList, Treat};
use crate::session::outcome::LaneOutcome;
use crate::session::party::Progress;
use crate::session::stream::{Announce, List, Setup, check_announce};

use super::messages::BreakdownMessage;
use super::{
    LaneKeys, LaneRows, LaneShape, MAX_MESSAGE_POINTS, STEP_KEYS, STEP_PAYLOADS, STEP_RELEASE, SentStage,
    add_noise, check_noise, elgamal, key_context, peer_keys, plan_batches, step_of,
};

/// R of one lane.
pub struct BreakdownReceiver {
    lane: u32,
    shape: LaneShape,
    setup: Setup,
    key: SessionKey,
    hasher: HashToGroup,
    keys: LaneKeys,
    noise: Vec<i64>,
    ids: Arc<IdList>,
    sent: SentStage,
    batch_sizes: Vec<u64>,
    u_plan: Vec<Option<u32>>,
    u_next: usize,
    peer: Option<Announce>,
    joint: Option<Arc<JointKeys>>,
    /// `r*W`.
    w: InboundList,
    v: InboundList,
    phase: Phase,
    payload_rows: u64,
}

/// What R holds past its lists: their match while the payloads arrive, then
/// the release.
enum Phase {
    /// W and V are still arriving.
    Lists,
    Payloads {
        /// Per row of W: the batch it matched, or `u32::MAX`.
        matched: Vec<u32>,
        /// The matched payloads summed per batch so far.
        sums: Vec<Ciphertext>,
    },
    Released {
        /// The release's ciphertexts, until sent.
        release: Option<Vec<u8>>,
        outcome: LaneOutcome,
    },
    /// A pooled lane's sums, unreleased, until its session takes them.
    Held { sums: Option<Vec<Ciphertext>> },
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
        let shares = SlotShares::generate(shape.slots(), &mut rand::rng()).map_err(elgamal(STEP_KEYS))?;
        Self::build(lane, shape, rows, noise, setup, LaneKeys::Own(shares))
    }

    /// A lane of a pooled session ([`super::Pooled`]): the session's joint
    /// keys are handed in, and the sums are handed back unreleased, with no
    /// noise of their own.
    pub fn pooled(lane: u32, shape: LaneShape, rows: LaneRows, setup: Setup) -> Result<Self, ProtocolError> {
        shape.check()?;
        setup.cover.check(shape.receiver_groups, 0)?;
        Self::build(lane, shape, rows, Vec::new(), setup, LaneKeys::Pooled)
    }

    fn build(
        lane: u32,
        shape: LaneShape,
        rows: LaneRows,
        noise: Vec<i64>,
        setup: Setup,
        keys: LaneKeys,
    ) -> Result<Self, ProtocolError> {
        let (batch_sizes, u_plan) = plan_batches(&rows, shape.receiver_groups, &setup.cover.pads)?;
        Ok(Self {
            lane,
            shape,
            setup,
            key: SessionKey::random(),
            hasher: HashToGroup::new(ID_DST),
            keys,
            noise,
            ids: rows.ids,
            sent: SentStage::Nothing,
            batch_sizes,
            u_plan,
            u_next: 0,
            peer: None,
            joint: None,
            w: InboundList::waiting(step_of(List::W), Treat::Mask),
            v: InboundList::waiting(step_of(List::V), Treat::Check),
            phase: Phase::Lists,
            payload_rows: 0,
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
                if let LaneKeys::Own(shares) = &self.keys {
                    let context = key_context(&self.setup.terms, self.lane, b"R");
                    return Some(BreakdownMessage::KeyOffer {
                        slots: shares.slots(),
                        offer: shares.offer(&context, &mut rand::rng()).to_bytes(),
                    });
                }
                // A pooled lane's keys were offered once for the session.
                self.sent = SentStage::Batches;
                return Some(BreakdownMessage::Batches {
                    sizes: self.batch_sizes.clone(),
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
                if let Phase::Released { release, .. } = &mut self.phase
                    && let Some(ciphertexts) = release.take()
                {
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
                self.w.open(a.set_size);
                self.v.open(self.v_total());
                Ok(())
            }
            BreakdownMessage::KeyOffer { slots, offer }
                if self.peer.is_some() && self.joint.is_none() && matches!(self.keys, LaneKeys::Own(_)) =>
            {
                let LaneKeys::Own(shares) = &self.keys else {
                    return Err(unexpected(&BreakdownMessage::KeyOffer { slots, offer }));
                };
                self.joint = Some(Arc::new(peer_keys(
                    shares,
                    slots,
                    &offer,
                    &self.setup.terms,
                    self.lane,
                    b"S",
                )?));
                Ok(())
            }
            BreakdownMessage::Points {
                list: List::W,
                points,
            } if self.joint.is_some() && self.w.is_open() => self.w.chunk(points, &self.key, &limits),
            BreakdownMessage::End { list: List::W, count } if self.joint.is_some() && self.w.is_open() => {
                self.w.end(count)?;
                self.lists_complete()
            }
            // S answers each batch of U as soon as it is complete.
            BreakdownMessage::Points {
                list: List::V,
                points,
            } if self.sent >= SentStage::Batches && self.v.is_open() => {
                self.v.chunk(points, &self.key, &limits)
            }
            BreakdownMessage::End { list: List::V, count }
                if self.sent >= SentStage::ListEnd && self.v.is_open() =>
            {
                self.v.end(count)?;
                self.lists_complete()
            }
            BreakdownMessage::Payloads { slots, ciphertexts }
                if matches!(self.phase, Phase::Payloads { .. }) =>
            {
                self.payloads(slots, &ciphertexts)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Once W and V are complete: match, and wait for the payloads (none
    /// come from an empty sender, so release at once).
    fn lists_complete(&mut self) -> Result<(), ProtocolError> {
        if !(self.w.is_closed() && self.v.is_closed()) {
            return Ok(());
        }
        let matched = self.match_rows()?;
        self.phase = Phase::Payloads {
            matched,
            sums: vec![Ciphertext::zero(self.shape.slots()); self.shape.cells()],
        };
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
        let v = self.v.take_points();
        let mut tagged: Vec<(PointBytes, u32)> = Vec::with_capacity(v.len());
        let mut points = v.into_iter();
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
        let rw = self.w.take_points();
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
        let Phase::Payloads { matched, sums } = &mut self.phase else {
            return Err(ProtocolError::Unexpected {
                expected: "the sender's lists W and V before its payloads",
                got: "payload ciphertexts",
            });
        };
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
        for (sum, part) in sums.iter_mut().zip(&partial) {
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
        let LaneKeys::Own(shares) = &self.keys else {
            let sums = match &mut self.phase {
                Phase::Payloads { sums, .. } => std::mem::take(sums),
                _ => Vec::new(),
            };
            self.phase = Phase::Held { sums: Some(sums) };
            return Ok(());
        };
        let joint = self.joint.as_ref().ok_or(ProtocolError::Unexpected {
            expected: "the sender's key offer",
            got: "payloads",
        })?;
        let mut rng = rand::rng();
        let sums = match &mut self.phase {
            Phase::Payloads { sums, .. } => std::mem::take(sums),
            _ => Vec::new(),
        };
        let mut released = sums
            .iter()
            .map(|ct| joint.rerandomize(ct, &mut rng))
            .collect::<Result<Vec<_>, _>>()
            .map_err(elgamal(STEP_RELEASE))?;
        let slots = self.shape.slots();
        add_noise(&mut released, &self.noise, slots)?;
        let decryption_shares = shares
            .encoded_decryption_shares(&released)
            .map_err(elgamal(STEP_RELEASE))?;
        let release = Some(crate::crypto::elgamal::encode_ciphertexts(&released));
        let outcome = LaneOutcome {
            lane: self.lane,
            cells: self.shape.cells(),
            slots,
            ciphertexts: Vec::new(),
            decryption_shares,
        };
        self.phase = Phase::Released { release, outcome };
        Ok(())
    }

    pub fn is_done(&self) -> bool {
        self.sent == SentStage::Release || matches!(self.phase, Phase::Held { .. })
    }

    /// A pooled lane: the session's joint keys, once both offers are in.
    pub(super) fn set_joint(&mut self, joint: Arc<JointKeys>) {
        self.joint.get_or_insert(joint);
    }

    /// A pooled lane's sums per batch, once every payload is in (once).
    pub(super) fn take_sums(&mut self) -> Option<Vec<Ciphertext>> {
        match &mut self.phase {
            Phase::Held { sums } => sums.take(),
            _ => None,
        }
    }

    /// Per row of W, the batch it matched (`u32::MAX` for none), while the
    /// payloads arrive.
    #[cfg(test)]
    pub(super) fn matched(&self) -> Option<&[u32]> {
        match &self.phase {
            Phase::Payloads { matched, .. } => Some(matched),
            _ => None,
        }
    }

    pub fn progress(&self) -> Progress {
        let peer = self.peer_size();
        Progress {
            done: self.u_next as u64 + self.w.received() + self.v.received() + self.payload_rows,
            total: self.u_total() + self.v_total() + 2 * peer,
        }
    }

    pub fn finish(self) -> Result<LaneOutcome, ProtocolError> {
        match (self.is_done(), self.phase) {
            (true, Phase::Released { outcome, .. }) => Ok(outcome),
            _ => Err(ProtocolError::Unexpected {
                expected: "every payload before the release",
                got: "an early end of the session",
            }),
        }
    }
}
