//! Segment activation (PROTOCOLS.md, section S): the receiver R learns which
//! of its own (filtered) rows are in the segment, so it can contact them.
//!
//! The design's activation is ECDH PSI with V in R's order. One step is
//! added so that the sender S can enforce its `min_activation` itself rather
//! than trust R or the coordinator with the size: R masks S's list again
//! (Z), S counts `|s*U ∩ Z|` and answers U in order only when the count is
//! large enough. S thereby learns the segment's size, which R learns anyway.
//!
//! ```text
//! R -> S  Announce |U| + terms, U = r*H(x), r*t_j*B, pads, in R's (random) order, End U
//! S -> R  Announce |W| + terms, W = shuffle(s*H(y), pads), End W
//! R -> S  Z = shuffle(r*w for w in W, r*t_j*K_S, random up to 2*offset), End Z
//! S       count = |s*U ∩ Z|: the segment plus R's dummies; with its own
//!         noise added and R's mean taken off, refused below min_activation
//! S -> R  V = s*u in U's order (not shuffled), End V
//! R       members = { x_i : V_i ∈ r*W }
//! ```
//!
//! The cover runs the other way round from the overlap's: here S counts, so
//! R adds the matching dummies ([`crate::privacy::cover`]) and S none. S's own
//! dummies would make R deliver people who are not members.

use std::sync::Arc;

use crate::{
    crypto::group::{PointBytes, SessionKey, mask_each},
    crypto::hash::{HashToGroup, ID_DST},
    crypto::shuffle,
    error::ProtocolError,
    ids::idlist::IdList,
    privacy::cover::{Dummies, Entry},
    session::attest::{self, Attestation},
    session::lists::{InboundList, ReadyList, Treat},
    session::outcome::{ActivationOutcome, Outcome},
    session::party::{Progress, Protocol},
    session::stream::{Announce, List, ListMessage, MaskedStream, Setup, check_announce, peer_key_point},
};

fn sorted_unique(mut points: Vec<PointBytes>, list: List) -> Result<Vec<PointBytes>, ProtocolError> {
    use rayon::slice::ParallelSliceMut;
    points.par_sort_unstable();
    if points.windows(2).any(|w| w[0] == w[1]) {
        return Err(ProtocolError::DuplicatePoints { step: list.step() });
    }
    Ok(points)
}

/// R: learns its members.
pub struct ActivationReceiver {
    key: SessionKey,
    setup: Setup,
    hasher: HashToGroup,
    announced: bool,
    u: MaskedStream,
    peer: Option<Announce>,
    /// `r*W`, and W as received for the attestation of `r*W` (A.Z).
    w: InboundList,
    z: ReadyList,
    v: InboundList,
}

impl std::fmt::Debug for ActivationReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivationReceiver")
            .field("progress", &self.progress())
            .finish()
    }
}

impl ActivationReceiver {
    /// The cover has one pad (U) and one dummy count: the dummies S counts.
    pub fn new(ids: Arc<IdList>, setup: Setup) -> Result<Self, ProtocolError> {
        setup.cover.check(1, 1)?;
        let dummies = Dummies::new(&setup.cover.dummies, setup.cover.dummy_width());
        let pads = setup.cover.pads[0];
        let u = MaskedStream::new(ids, dummies, pads);
        Ok(Self {
            key: SessionKey::random(),
            hasher: HashToGroup::new(ID_DST),
            announced: false,
            peer: None,
            w: InboundList::waiting(List::W.step(), Treat::MaskKeepingOriginals),
            z: ReadyList::new(List::Z),
            // V answers U point for point, whatever S announced.
            v: InboundList::opened(List::V.step(), Treat::Check, u.len()),
            u,
            setup,
        })
    }

    /// The members: the rows of U whose answer in V is among `r*W`. This
    /// node's dummies and pads are not rows, so they are never members.
    pub fn finish(mut self) -> Result<ActivationOutcome, ProtocolError> {
        if !self.is_done() {
            return Err(ProtocolError::Unexpected {
                expected: "all of lists U, W, Z and V before matching",
                got: "an early end of the session",
            });
        }
        let rw = sorted_unique(self.w.take_points(), List::W)?;
        let v = self.v.take_points();
        sorted_unique(v.clone(), List::V)?;
        let mut members: Vec<u32> = v
            .iter()
            .enumerate()
            .filter(|(_, v)| rw.binary_search(v).is_ok())
            .filter_map(|(i, _)| match self.u.entry(i) {
                Entry::Row(row) => Some(row as u32),
                Entry::Dummy(_) | Entry::Pad => None,
            })
            .collect();
        members.sort_unstable();
        Ok(ActivationOutcome {
            members,
            own_set_size: self.u.len(),
            peer_set_size: self.peer.map_or(0, |p| p.set_size),
        })
    }
}

/// S: learns the segment's size plus R's dummies, and answers in R's order
/// only when that, with its own noise and R's mean taken off, reaches its
/// `min_activation`.
pub struct ActivationSender {
    key: SessionKey,
    setup: Setup,
    hasher: HashToGroup,
    min_activation: u64,
    /// This node's noise on the count it decides on (its release share, so
    /// the decision costs nothing beyond the release).
    decision_noise: i64,
    announced: bool,
    w: MaskedStream,
    peer: Option<Announce>,
    /// `s*U` in R's order (V), and U as received for the attestation of V (A.V).
    u: InboundList,
    z: InboundList,
    /// V, ready once the segment is counted and large enough.
    v: ReadyList,
}

impl std::fmt::Debug for ActivationSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivationSender")
            .field("progress", &self.progress())
            .finish()
    }
}

impl ActivationSender {
    /// The cover has one pad (W) and no dummies.
    pub fn new(
        ids: Arc<IdList>,
        setup: Setup,
        min_activation: u64,
        decision_noise: i64,
    ) -> Result<Self, ProtocolError> {
        setup.cover.check(1, 0)?;
        let pads = setup.cover.pads[0];
        Ok(Self {
            key: SessionKey::random(),
            hasher: HashToGroup::new(ID_DST),
            min_activation,
            decision_noise,
            announced: false,
            w: MaskedStream::new(ids, Dummies::none(), pads),
            peer: None,
            u: InboundList::waiting(List::U.step(), Treat::MaskKeepingOriginals),
            z: InboundList::waiting(List::Z.step(), Treat::Check),
            v: ReadyList::kept(List::V),
            setup,
        })
    }

    fn z_len(&self) -> u64 {
        let width = self.peer.map_or(0, |p| p.dummy_offset.saturating_mul(2));
        self.w.len().saturating_add(width)
    }

    /// Counts the segment once U and Z are complete, and approves answering
    /// in order only if its noised size is large enough.
    fn decide(&mut self) -> Result<(), ProtocolError> {
        if !(self.u.is_closed() && self.z.is_closed()) {
            return Ok(());
        }
        let z = sorted_unique(self.z.take_points(), List::Z)?;
        let v = self.u.take_points();
        sorted_unique(v.clone(), List::U)?;
        let count = v.iter().filter(|v| z.binary_search(v).is_ok()).count() as i64;
        let mean = self.peer.map_or(0, |p| p.dummy_offset) as i64;
        let noised = count - mean + self.decision_noise;
        if noised < i64::try_from(self.min_activation).unwrap_or(i64::MAX) {
            return Err(ProtocolError::BelowMinActivation);
        }
        self.v.ready(v);
        Ok(())
    }
}

impl Protocol for ActivationReceiver {
    type Message = ListMessage;

    fn poll(&mut self) -> Option<ListMessage> {
        if !self.announced {
            self.announced = true;
            return Some(ListMessage::Announce(
                self.setup.announce(self.u.len(), Some(self.key.public())),
            ));
        }
        let chunk = self.setup.limits.chunk_points;
        if let Some(m) = self.u.poll(List::U, &self.key, &self.hasher, chunk) {
            return Some(m);
        }
        self.z.poll(chunk)
    }

    fn receive(&mut self, msg: ListMessage) -> Result<(), ProtocolError> {
        let limits = self.setup.limits;
        match (msg, self.peer) {
            (ListMessage::Announce(a), None) => {
                check_announce(&a, &self.setup.terms, &limits, 1, 0)?;
                if a.dummy_offset != 0 {
                    // Dummies in W would be delivered as members.
                    return Err(ProtocolError::Shape {
                        what: "the sender announced matching dummies in a segment activation",
                    });
                }
                self.peer = Some(a);
                self.w.open(a.set_size);
                Ok(())
            }
            (
                ListMessage::Points {
                    list: List::W,
                    points,
                },
                Some(_),
            ) if self.w.is_open() => self.w.chunk(points, &self.key, &limits),
            (ListMessage::End { list: List::W, count }, Some(peer)) if self.w.is_open() => {
                self.w.end(count)?;
                // Z is r*W with this node's dummies' answers, shuffled: S must
                // not tell which of its rows matched, nor which are dummies.
                let key_s = peer_key_point(peer.key, List::Z.step())?;
                let extra = self.u.dummies().answers(0, &key_s);
                let mut z = self.w.points().to_vec();
                z.extend(mask_each(&self.key, extra.len(), |i| extra[i]));
                shuffle::shuffle(&mut z);
                self.z.ready(z);
                Ok(())
            }
            (
                ListMessage::Points {
                    list: List::V,
                    points,
                },
                _,
            ) if self.u.closed && self.v.is_open() => self.v.chunk(points, &self.key, &limits),
            (ListMessage::End { list: List::V, count }, _) if self.u.closed && self.v.is_open() => {
                self.v.end(count)
            }
            (other, _) => Err(ProtocolError::Unexpected {
                expected: "the sender's announcement, list W or list V in order",
                got: other.describe(),
            }),
        }
    }

    fn is_done(&self) -> bool {
        self.u.closed && self.z.is_ended() && self.v.is_closed()
    }

    fn progress(&self) -> Progress {
        let own = self.u.len();
        let peer = self.peer.map_or(0, |p| p.set_size);
        let width = self.setup.cover.dummy_width();
        Progress {
            done: self.u.next as u64 + self.w.received() + self.z.sent() + self.v.received(),
            total: 2 * own + 2 * peer + width,
        }
    }

    fn attest(&mut self) -> Result<Vec<Attestation>, ProtocolError> {
        let w = self.w.take_originals();
        Ok(vec![Attestation::make(
            &self.key,
            &self.setup.terms,
            attest::ACTIVATION_RECEIVER_STEP,
            (List::W, &w),
            self.w.points().to_vec(),
        )?])
    }

    fn outcome(self) -> Result<Outcome, ProtocolError> {
        self.finish().map(Outcome::Activation)
    }
}

impl Protocol for ActivationSender {
    type Message = ListMessage;

    fn poll(&mut self) -> Option<ListMessage> {
        if !self.announced {
            self.announced = true;
            return Some(ListMessage::Announce(
                self.setup.announce(self.w.len(), Some(self.key.public())),
            ));
        }
        let chunk = self.setup.limits.chunk_points;
        if let Some(m) = self.w.poll(List::W, &self.key, &self.hasher, chunk) {
            return Some(m);
        }
        self.v.poll(chunk)
    }

    fn receive(&mut self, msg: ListMessage) -> Result<(), ProtocolError> {
        let limits = self.setup.limits;
        match (msg, self.peer) {
            (ListMessage::Announce(a), None) => {
                // R's list holds its dummies besides its pad.
                check_announce(&a, &self.setup.terms, &limits, 1, 1)?;
                self.peer = Some(a);
                self.u.open(a.set_size);
                self.z.open(self.z_len());
                Ok(())
            }
            // V is U masked in R's order: that is what lets R find its members.
            (
                ListMessage::Points {
                    list: List::U,
                    points,
                },
                Some(_),
            ) if self.u.is_open() => self.u.chunk(points, &self.key, &limits),
            (ListMessage::End { list: List::U, count }, Some(_)) if self.u.is_open() => {
                self.u.end(count)?;
                self.decide()
            }
            (
                ListMessage::Points {
                    list: List::Z,
                    points,
                },
                Some(_),
            ) if self.w.closed && self.z.is_open() => self.z.chunk(points, &self.key, &limits),
            (ListMessage::End { list: List::Z, count }, Some(_)) if self.w.closed && self.z.is_open() => {
                self.z.end(count)?;
                self.decide()
            }
            (other, _) => Err(ProtocolError::Unexpected {
                expected: "the receiver's announcement, list U or list Z",
                got: other.describe(),
            }),
        }
    }

    fn is_done(&self) -> bool {
        self.w.closed && self.v.is_ended()
    }

    fn progress(&self) -> Progress {
        let peer = self.peer.map_or(0, |p| p.set_size);
        Progress {
            done: self.w.next as u64 + self.u.received() + self.z.received() + self.v.sent(),
            total: self.w.len() + self.z_len() + 2 * peer,
        }
    }

    fn attest(&mut self) -> Result<Vec<Attestation>, ProtocolError> {
        let u = self.u.take_originals();
        Ok(vec![Attestation::make(
            &self.key,
            &self.setup.terms,
            attest::ACTIVATION_SENDER_STEP,
            (List::U, &u),
            self.v.points().to_vec(),
        )?])
    }

    fn outcome(self) -> Result<Outcome, ProtocolError> {
        Ok(Outcome::Completed)
    }
}

#[cfg(test)]
#[path = "activation_tests.rs"]
mod tests;
