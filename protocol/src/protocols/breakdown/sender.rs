//! A lane's sender S (PROTOCOLS.md B.1 to B.4): masks the receiver's
//! batches and its own list, sends encrypted payloads, adds its noise to the
//! release.

use std::sync::Arc;

use curve25519_dalek::ristretto::RistrettoPoint;

use crate::crypto::elgamal::{ElGamalError, JointKeys, SlotShares, ZERO_ROW, decode_ciphertexts};
use crate::crypto::group::{PointBytes, SessionKey, mask_each};
use crate::crypto::hash::{HashToGroup, ID_DST};
use crate::crypto::shuffle;
use crate::error::ProtocolError;
use crate::privacy::cover::{Dummies, Entry, Layout, random_point};
use crate::session::lists::{InboundList, Treat};
use crate::session::outcome::LaneOutcome;
use crate::session::party::Progress;
use crate::session::stream::{Announce, List, Setup, check_announce, next_chunk, peer_key_point};

use super::messages::BreakdownMessage;
use super::{
    LaneKeys, LaneRows, LaneShape, STEP_KEYS, STEP_RELEASE, SentStage, add_noise, check_noise, elgamal,
    key_context, peer_keys, rows_per_message, step_of,
};

/// S of one lane.
pub struct BreakdownSender {
    lane: u32,
    shape: LaneShape,
    setup: Setup,
    key: SessionKey,
    hasher: HashToGroup,
    keys: LaneKeys,
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
    joint: Option<Arc<JointKeys>>,
    batch_sizes: Option<Vec<u64>>,
    batch: usize,
    batch_points: Vec<PointBytes>,
    /// `s*U`, answered batch by batch as it arrives rather than kept.
    u: InboundList,
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
        let shares = SlotShares::generate(shape.slots(), &mut rand::rng()).map_err(elgamal(STEP_KEYS))?;
        Self::build(lane, shape, rows, noise, setup, LaneKeys::Own(shares))
    }

    /// A lane of a pooled session ([`super::Pooled`]): it encrypts under the
    /// session's joint keys, handed in, and expects no release of its own.
    pub fn pooled(lane: u32, shape: LaneShape, rows: LaneRows, setup: Setup) -> Result<Self, ProtocolError> {
        shape.check()?;
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
        setup.cover.check(1, shape.receiver_groups)?;
        if rows.groups.len() != rows.rows.len()
            || rows.measures.len() != rows.rows.len() * shape.payload.measures
            || rows.groups.iter().any(|&g| g as usize >= shape.payload.groups)
        {
            return Err(ProtocolError::Shape {
                what: "the sender's rows do not fit the lane's groups and measures",
            });
        }
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
            keys,
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
            u: InboundList::waiting(step_of(List::U), Treat::Mask),
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
                // A pooled lane's keys were offered once for the session.
                if let LaneKeys::Own(shares) = &self.keys {
                    let context = key_context(&self.setup.terms, self.lane, b"S");
                    return Some(BreakdownMessage::KeyOffer {
                        slots: shares.slots(),
                        offer: shares.offer(&context, &mut rand::rng()).to_bytes(),
                    });
                }
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
        if self.u.is_closed() && !self.v_closed {
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
                self.u.open(a.set_size);
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
                    b"R",
                )?));
                Ok(())
            }
            BreakdownMessage::Batches { sizes } if self.joint.is_some() && self.batch_sizes.is_none() => {
                self.batches(sizes)
            }
            BreakdownMessage::Points {
                list: List::U,
                points,
            } if self.batch_sizes.is_some() && self.u.is_open() => {
                let masked = self.u.pass(&points, &self.key, &self.setup.limits)?;
                self.answer_batches(&masked);
                Ok(())
            }
            BreakdownMessage::End { list: List::U, count }
                if self.batch_sizes.is_some() && self.u.is_open() =>
            {
                self.u.end(count)?;
                // Batches after the last point are empty: answer them too.
                self.answer_batches(&[]);
                Ok(())
            }
            BreakdownMessage::Release { slots, ciphertexts }
                if self.payloads_sent()
                    && self.outcome.is_none()
                    && matches!(self.keys, LaneKeys::Own(_)) =>
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

    /// Fills batches from U as masked, in order: each batch, once complete,
    /// gets its dummies' answers, is shuffled on its own and is queued as V.
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
        let LaneKeys::Own(shares) = &self.keys else {
            return Err(ProtocolError::Unexpected {
                expected: "the session's release, not a pooled lane's",
                got: "a release for a pooled lane",
            });
        };
        let decryption_shares = shares
            .encoded_decryption_shares(&cts)
            .map_err(elgamal(STEP_RELEASE))?;
        self.outcome = Some(LaneOutcome {
            lane: self.lane,
            cells: cts.len(),
            slots,
            ciphertexts: crate::crypto::elgamal::encode_ciphertexts(&cts),
            decryption_shares,
        });
        Ok(())
    }

    pub fn is_done(&self) -> bool {
        match self.keys {
            LaneKeys::Own(_) => self.outcome.is_some(),
            LaneKeys::Pooled => self.payloads_sent(),
        }
    }

    /// Every payload has left, after both of this lane's lists.
    fn payloads_sent(&self) -> bool {
        self.payload_next == self.w_order.len() && self.v_closed && self.w_closed
    }

    /// A pooled lane: the session's joint keys, once both offers are in.
    pub(super) fn set_joint(&mut self, joint: Arc<JointKeys>) {
        self.joint.get_or_insert(joint);
    }

    pub fn progress(&self) -> Progress {
        let peer = self.peer_size();
        let answers = self.setup.cover.dummy_width() * self.shape.receiver_groups as u64;
        Progress {
            done: self.w_next as u64 + self.u.received() + self.v_sent + self.payload_next as u64,
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
