//! A breakdown whose lanes pool their sums (attribution's lane per window):
//! one pair of joint keys for the session, every lane's matched sums added
//! up under encryption by the receiver, and one release for the session.
//!
//! Each lane still draws its own masking keys, so no party can link a
//! person's rows across lanes. The joint keys need not be fresh per lane:
//! ciphertexts under one key with fresh randomness are indistinguishable,
//! neither party can decrypt alone, and only the pooled release is ever
//! decrypted. The release holds two cells of every slot: the total over all
//! lanes and receiver groups, and the same total with each receiver group
//! weighted by a public weight (a value bucket's representative). That is
//! one noised value per cell and slot instead of one per lane, group and
//! slot.
//!
//! ```text
//! R, S    KeyOffer on the session lane (its number: the number of lanes)
//! ...     every lane as in a breakdown, with no key offer and no release
//! R -> S  Release on the session lane: both totals re-randomized, plus R's noise
//! R, S    to the coordinator only: decryption shares (S also the
//!         ciphertexts with its own noise added)
//! ```

use std::sync::Arc;

use crate::{
    crypto::elgamal::{
        Ciphertext, ElGamalError, JointKeys, SlotShares, decode_ciphertexts, encode_ciphertexts,
    },
    error::ProtocolError,
    session::outcome::{LaneOutcome, Outcome},
    session::party::{Progress, Protocol},
    session::stream::{Setup, Terms},
};

use super::{
    Breakdown, BreakdownMessage, BreakdownReceiver, BreakdownSender, Lane, LaneMessage, LaneRows, LaneShape,
    STEP_KEYS, STEP_RELEASE, add_noise, elgamal, key_context, peer_keys,
};

/// Cells of the pooled release: the plain total, then the weighted total.
pub const POOLED_CELLS: usize = 2;

enum Side {
    /// R, with a weight per receiver group, and its release until sent.
    Receiver {
        weights: Vec<u64>,
        release: Option<Vec<u8>>,
    },
    Sender,
}

/// One node's side of a pooled breakdown session.
pub struct Pooled {
    lanes: Breakdown,
    side: Side,
    shares: SlotShares,
    terms: Terms,
    slots: usize,
    noise: Vec<i64>,
    offered: bool,
    joint: Option<Arc<JointKeys>>,
    outcome: Option<LaneOutcome>,
}

impl std::fmt::Debug for Pooled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pooled")
            .field("lanes", &self.lanes.lanes.len())
            .field("progress", &self.progress())
            .finish()
    }
}

fn check(shape: &LaneShape, lanes: usize, noise: &[i64]) -> Result<(), ProtocolError> {
    shape.check()?;
    if lanes == 0 || lanes >= u32::MAX as usize {
        return Err(ProtocolError::Shape {
            what: "a pooled breakdown needs at least one lane",
        });
    }
    if noise.len() != POOLED_CELLS * shape.slots() {
        return Err(ProtocolError::Shape {
            what: "the noise shares do not cover every value of the pooled release",
        });
    }
    Ok(())
}

impl Pooled {
    /// R's side: a receiving lane per `(rows, setup)`, in order, all of
    /// `shape`; `weights[g]` weighs receiver group `g` in the second cell;
    /// `noise`: this node's share per cell and slot.
    pub fn receiver(
        shape: LaneShape,
        lanes: Vec<(LaneRows, Setup)>,
        weights: Vec<u64>,
        noise: Vec<i64>,
    ) -> Result<Self, ProtocolError> {
        check(&shape, lanes.len(), &noise)?;
        if weights.len() != shape.receiver_groups {
            return Err(ProtocolError::Shape {
                what: "a pooled breakdown needs one weight per receiver group",
            });
        }
        let terms = lanes[0].1.terms;
        let built = lanes
            .into_iter()
            .enumerate()
            .map(|(i, (rows, setup))| {
                BreakdownReceiver::pooled(i as u32, shape, rows, setup).map(|r| Lane::Receiver(Box::new(r)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::build(
            shape,
            built,
            Side::Receiver {
                weights,
                release: None,
            },
            noise,
            terms,
        )
    }

    /// S's side: a sending lane per `(rows, setup)`, in order.
    pub fn sender(
        shape: LaneShape,
        lanes: Vec<(LaneRows, Setup)>,
        noise: Vec<i64>,
    ) -> Result<Self, ProtocolError> {
        check(&shape, lanes.len(), &noise)?;
        let terms = lanes[0].1.terms;
        let built = lanes
            .into_iter()
            .enumerate()
            .map(|(i, (rows, setup))| {
                BreakdownSender::pooled(i as u32, shape, rows, setup).map(|s| Lane::Sender(Box::new(s)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::build(shape, built, Side::Sender, noise, terms)
    }

    fn build(
        shape: LaneShape,
        lanes: Vec<Lane>,
        side: Side,
        noise: Vec<i64>,
        terms: Terms,
    ) -> Result<Self, ProtocolError> {
        let shares = SlotShares::generate(shape.slots(), &mut rand::rng()).map_err(elgamal(STEP_KEYS))?;
        Ok(Self {
            lanes: Breakdown::in_order(lanes),
            side,
            shares,
            terms,
            slots: shape.slots(),
            noise,
            offered: false,
            joint: None,
            outcome: None,
        })
    }

    /// The number the session's own messages carry: one past the last lane.
    fn session_lane(&self) -> u32 {
        self.lanes.lanes.len() as u32
    }

    fn roles(&self) -> (&'static [u8], &'static [u8]) {
        match self.side {
            Side::Receiver { .. } => (b"R", b"S"),
            Side::Sender => (b"S", b"R"),
        }
    }

    fn lanes_done(&self) -> bool {
        self.lanes.lanes.iter().all(Lane::is_done)
    }

    fn keys(&mut self, slots: usize, offer: &[u8]) -> Result<(), ProtocolError> {
        let lane = self.session_lane();
        let joint = Arc::new(peer_keys(
            &self.shares,
            slots,
            offer,
            &self.terms,
            lane,
            self.roles().1,
        )?);
        for l in &mut self.lanes.lanes {
            match l {
                Lane::Receiver(r) => r.set_joint(Arc::clone(&joint)),
                Lane::Sender(s) => s.set_joint(Arc::clone(&joint)),
            }
        }
        self.joint = Some(joint);
        Ok(())
    }

    /// At R once every lane holds its sums: the two totals, re-randomized
    /// (S knows its payloads' randomness), with this node's noise, and its
    /// decryption shares of exactly what it sends.
    fn pool(&mut self) -> Result<(), ProtocolError> {
        let Side::Receiver { weights, release } = &mut self.side else {
            return Ok(());
        };
        let slots = self.slots;
        let mut per_group = vec![Ciphertext::zero(slots); weights.len()];
        for lane in &mut self.lanes.lanes {
            let sums = match lane {
                Lane::Receiver(r) => r.take_sums(),
                Lane::Sender(_) => None,
            }
            .ok_or(ProtocolError::Unexpected {
                expected: "every lane's sums before the pooled release",
                got: "a lane without sums",
            })?;
            if sums.len() != per_group.len() {
                return Err(ProtocolError::Shape {
                    what: "a lane's sums do not hold one ciphertext per receiver group",
                });
            }
            for (total, ct) in per_group.iter_mut().zip(&sums) {
                total.accumulate(ct).map_err(elgamal(STEP_RELEASE))?;
            }
        }
        let mut total = Ciphertext::zero(slots);
        let mut weighted = Ciphertext::zero(slots);
        for (ct, &w) in per_group.iter_mut().zip(weights.iter()) {
            total.accumulate(ct).map_err(elgamal(STEP_RELEASE))?;
            ct.scale(w);
            weighted.accumulate(ct).map_err(elgamal(STEP_RELEASE))?;
        }
        let joint = self.joint.as_ref().ok_or(ProtocolError::Unexpected {
            expected: "the sender's key offer",
            got: "payloads",
        })?;
        let mut rng = rand::rng();
        let mut cts = [total, weighted]
            .iter()
            .map(|ct| joint.rerandomize(ct, &mut rng))
            .collect::<Result<Vec<_>, ElGamalError>>()
            .map_err(elgamal(STEP_RELEASE))?;
        add_noise(&mut cts, &self.noise, slots)?;
        let decryption_shares = self
            .shares
            .encoded_decryption_shares(&cts)
            .map_err(elgamal(STEP_RELEASE))?;
        *release = Some(encode_ciphertexts(&cts));
        self.outcome = Some(LaneOutcome {
            lane: self.lanes.lanes.len() as u32,
            cells: POOLED_CELLS,
            slots,
            ciphertexts: Vec::new(),
            decryption_shares,
        });
        Ok(())
    }

    /// At S: exactly one release of both cells, once every lane is done.
    fn released(&mut self, slots: usize, bytes: &[u8]) -> Result<(), ProtocolError> {
        if slots != self.slots {
            return Err(ProtocolError::Crypto {
                step: STEP_RELEASE,
                error: ElGamalError::SlotMismatch {
                    what: "release",
                    expected: self.slots,
                    got: slots,
                },
            });
        }
        let mut cts = decode_ciphertexts(bytes, slots).map_err(elgamal(STEP_RELEASE))?;
        if cts.len() != POOLED_CELLS {
            return Err(ProtocolError::CountMismatch {
                step: STEP_RELEASE,
                announced: POOLED_CELLS as u64,
                received: cts.len() as u64,
            });
        }
        add_noise(&mut cts, &self.noise, slots)?;
        let decryption_shares = self
            .shares
            .encoded_decryption_shares(&cts)
            .map_err(elgamal(STEP_RELEASE))?;
        self.outcome = Some(LaneOutcome {
            lane: self.session_lane(),
            cells: POOLED_CELLS,
            slots,
            ciphertexts: encode_ciphertexts(&cts),
            decryption_shares,
        });
        Ok(())
    }
}

impl Protocol for Pooled {
    type Message = LaneMessage;

    fn poll(&mut self) -> Option<LaneMessage> {
        let lane = self.session_lane();
        if !self.offered {
            self.offered = true;
            let context = key_context(&self.terms, lane, self.roles().0);
            return Some(LaneMessage {
                lane,
                msg: BreakdownMessage::KeyOffer {
                    slots: self.shares.slots(),
                    offer: self.shares.offer(&context, &mut rand::rng()).to_bytes(),
                },
            });
        }
        if let Some(msg) = self.lanes.poll() {
            return Some(msg);
        }
        if let Side::Receiver { release, .. } = &mut self.side
            && let Some(ciphertexts) = release.take()
        {
            return Some(LaneMessage {
                lane,
                msg: BreakdownMessage::Release {
                    slots: self.slots,
                    ciphertexts,
                },
            });
        }
        None
    }

    fn receive(&mut self, LaneMessage { lane, msg }: LaneMessage) -> Result<(), ProtocolError> {
        if lane != self.session_lane() {
            self.lanes.receive(LaneMessage { lane, msg })?;
            if matches!(self.side, Side::Receiver { .. }) && self.outcome.is_none() && self.lanes_done() {
                self.pool()?;
            }
            return Ok(());
        }
        let receiver = matches!(self.side, Side::Receiver { .. });
        match msg {
            BreakdownMessage::KeyOffer { slots, offer } if self.joint.is_none() => self.keys(slots, &offer),
            BreakdownMessage::Release { slots, ciphertexts }
                if !receiver && self.outcome.is_none() && self.lanes_done() =>
            {
                self.released(slots, &ciphertexts)
            }
            other => Err(ProtocolError::Unexpected {
                expected: "the peer's key offer for the session, or the receiver's pooled release",
                got: other.describe(),
            }),
        }
    }

    fn is_done(&self) -> bool {
        match &self.side {
            Side::Receiver { release, .. } => self.outcome.is_some() && release.is_none(),
            Side::Sender => self.outcome.is_some(),
        }
    }

    fn progress(&self) -> Progress {
        self.lanes.progress()
    }

    fn outcome(self) -> Result<Outcome, ProtocolError> {
        let done = self.is_done();
        match (done, self.outcome) {
            (true, Some(outcome)) => Ok(Outcome::Breakdown(vec![outcome])),
            _ => Err(ProtocolError::Unexpected {
                expected: "the pooled release",
                got: "an early end of the session",
            }),
        }
    }
}

#[cfg(test)]
#[path = "pooled_tests.rs"]
mod tests;
