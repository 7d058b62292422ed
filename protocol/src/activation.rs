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
//! R -> S  Announce |X| + terms, U = r*H(x) in R's (random) order, End U
//! S -> R  Announce |Y| + terms, W = shuffle(s*H(y)), End W
//! R -> S  Z = shuffle(r*w for w in W), End Z
//! S       count = |s*U ∩ Z|; refuses below its min_activation
//! S -> R  V = s*u in U's order (not shuffled), End V
//! R       members = { x_i : V_i ∈ r*W }
//! ```

use std::sync::Arc;

use crate::{
    attest::{self, Attestation},
    error::ProtocolError,
    group::{PointBytes, SessionKey, decode_and_mask, validate_points},
    hash::{HashToGroup, ID_DST},
    idlist::IdList,
    overlap::{
        Limits, List, MaskedStream, OverlapMessage, Terms, capacity_for, check_announce, check_chunk,
        check_end, next_chunk,
    },
    party::{Outcome, Party, Progress},
    shuffle,
};

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
    terms: Terms,
    hasher: HashToGroup,
    limits: Limits,
    announced: bool,
    u: MaskedStream,
    peer_size: Option<u64>,
    rw: Vec<PointBytes>,
    /// W as received, for the attestation of `rw` (A.Z).
    w: Vec<PointBytes>,
    w_closed: bool,
    z: Vec<PointBytes>,
    z_next: usize,
    z_closed: bool,
    v: Vec<PointBytes>,
    v_closed: bool,
}

impl std::fmt::Debug for ActivationReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivationReceiver")
            .field("progress", &self.progress())
            .finish()
    }
}

impl ActivationReceiver {
    pub fn new(ids: Arc<IdList>, limits: Limits, terms: Terms) -> Self {
        Self {
            key: SessionKey::random(),
            terms,
            hasher: HashToGroup::new(ID_DST),
            limits,
            announced: false,
            u: MaskedStream::new(ids),
            peer_size: None,
            rw: Vec::new(),
            w: Vec::new(),
            w_closed: false,
            z: Vec::new(),
            z_next: 0,
            z_closed: false,
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
        if let Some(m) = self
            .u
            .poll(List::U, &self.key, &self.hasher, self.limits.chunk_points)
        {
            return Some(m);
        }
        if self.w_closed && !self.z_closed {
            if let Some(points) = next_chunk(&self.z, &mut self.z_next, self.limits.chunk_points) {
                return Some(OverlapMessage::Points {
                    list: List::Z,
                    points,
                });
            }
            self.z_closed = true;
            let count = self.z.len() as u64;
            self.z = Vec::new();
            return Some(OverlapMessage::End { list: List::Z, count });
        }
        None
    }

    pub fn receive(&mut self, msg: OverlapMessage) -> Result<(), ProtocolError> {
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
                // Z is r*W shuffled: S must not tell which of its rows matched.
                let mut z = self.rw.clone();
                shuffle::shuffle(&mut z);
                self.z = z;
                Ok(())
            }
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
                validate_points(&points).map_err(|bad| ProtocolError::BadPoint {
                    step: List::V.step(),
                    bad,
                })?;
                self.v.extend_from_slice(&points);
                Ok(())
            }
            (OverlapMessage::End { list: List::V, count }, _) if self.u.closed && !self.v_closed => {
                check_end(List::V.step(), count, self.v.len(), self.u.len())?;
                self.v_closed = true;
                Ok(())
            }
            (other, _) => Err(ProtocolError::Unexpected {
                expected: "the sender's announcement, list W or list V in order",
                got: other.describe(),
            }),
        }
    }

    pub fn is_done(&self) -> bool {
        self.u.closed && self.z_closed && self.v_closed
    }

    pub fn progress(&self) -> Progress {
        let own = self.u.len();
        let peer = self.peer_size.unwrap_or(0);
        Progress {
            done: self.u.next as u64 + self.rw.len() as u64 + self.z_next as u64 + self.v.len() as u64,
            total: 2 * own + 2 * peer,
        }
    }

    /// The members: the rows of U whose answer in V is among `r*W`.
    pub fn finish(self) -> Result<ActivationOutcome, ProtocolError> {
        if !self.is_done() {
            return Err(ProtocolError::Unexpected {
                expected: "all of lists U, W, Z and V before matching",
                got: "an early end of the session",
            });
        }
        let rw = sorted_unique(self.rw, List::W)?;
        sorted_unique(self.v.clone(), List::V)?;
        let mut members: Vec<u32> = self
            .v
            .iter()
            .zip(&self.u.order)
            .filter(|(v, _)| rw.binary_search(v).is_ok())
            .map(|(_, &position)| position)
            .collect();
        members.sort_unstable();
        Ok(ActivationOutcome {
            members,
            own_set_size: self.u.len(),
            peer_set_size: self.peer_size.unwrap_or(0),
        })
    }
}

/// S: learns the segment's size, and answers in R's order only above its
/// `min_activation`.
pub struct ActivationSender {
    key: SessionKey,
    terms: Terms,
    hasher: HashToGroup,
    limits: Limits,
    min_activation: u64,
    announced: bool,
    w: MaskedStream,
    peer_size: Option<u64>,
    v: Vec<PointBytes>,
    /// U as received, for the attestation of V (A.V).
    u: Vec<PointBytes>,
    u_closed: bool,
    z: Vec<PointBytes>,
    z_closed: bool,
    approved: bool,
    v_next: usize,
    v_closed: bool,
}

impl std::fmt::Debug for ActivationSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivationSender")
            .field("progress", &self.progress())
            .finish()
    }
}

impl ActivationSender {
    pub fn new(ids: Arc<IdList>, limits: Limits, terms: Terms, min_activation: u64) -> Self {
        Self {
            key: SessionKey::random(),
            terms,
            hasher: HashToGroup::new(ID_DST),
            limits,
            min_activation,
            announced: false,
            w: MaskedStream::new(ids),
            peer_size: None,
            v: Vec::new(),
            u: Vec::new(),
            u_closed: false,
            z: Vec::new(),
            z_closed: false,
            approved: false,
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
        if let Some(m) = self
            .w
            .poll(List::W, &self.key, &self.hasher, self.limits.chunk_points)
        {
            return Some(m);
        }
        if self.approved && !self.v_closed {
            if let Some(points) = next_chunk(&self.v, &mut self.v_next, self.limits.chunk_points) {
                return Some(OverlapMessage::Points {
                    list: List::V,
                    points,
                });
            }
            self.v_closed = true;
            return Some(OverlapMessage::End {
                list: List::V,
                count: self.v.len() as u64,
            });
        }
        None
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
                // In R's order: that is what lets R find its members.
                self.v.extend_from_slice(&masked);
                self.u.extend_from_slice(&points);
                Ok(())
            }
            (OverlapMessage::End { list: List::U, count }, Some(peer)) if !self.u_closed => {
                check_end(List::U.step(), count, self.v.len(), peer)?;
                self.u_closed = true;
                self.decide()
            }
            (
                OverlapMessage::Points {
                    list: List::Z,
                    points,
                },
                Some(_),
            ) if self.w.closed && !self.z_closed => {
                check_chunk(
                    List::Z.step(),
                    points.len(),
                    self.z.len(),
                    self.w.len(),
                    &self.limits,
                )?;
                validate_points(&points).map_err(|bad| ProtocolError::BadPoint {
                    step: List::Z.step(),
                    bad,
                })?;
                self.z.extend_from_slice(&points);
                Ok(())
            }
            (OverlapMessage::End { list: List::Z, count }, Some(_)) if self.w.closed && !self.z_closed => {
                check_end(List::Z.step(), count, self.z.len(), self.w.len())?;
                self.z_closed = true;
                self.decide()
            }
            (other, _) => Err(ProtocolError::Unexpected {
                expected: "the receiver's announcement, list U or list Z",
                got: other.describe(),
            }),
        }
    }

    /// Counts the segment once U and Z are complete, and approves answering
    /// in order only if it is large enough.
    fn decide(&mut self) -> Result<(), ProtocolError> {
        if !(self.u_closed && self.z_closed) {
            return Ok(());
        }
        let z = sorted_unique(std::mem::take(&mut self.z), List::Z)?;
        sorted_unique(self.v.clone(), List::U)?;
        let count = self.v.iter().filter(|v| z.binary_search(v).is_ok()).count() as u64;
        if count < self.min_activation {
            return Err(ProtocolError::BelowMinActivation {
                min_activation: self.min_activation,
            });
        }
        self.approved = true;
        Ok(())
    }

    pub fn is_done(&self) -> bool {
        self.w.closed && self.v_closed
    }

    pub fn progress(&self) -> Progress {
        let peer = self.peer_size.unwrap_or(0);
        Progress {
            done: self.w.next as u64 + self.v.len() as u64 + self.z.len() as u64 + self.v_next as u64,
            total: 2 * self.w.len() + 2 * peer,
        }
    }
}

impl Party for ActivationReceiver {
    fn poll_transmit(&mut self) -> Option<crate::wire::ProtocolMessage> {
        self.poll().map(Into::into)
    }

    fn handle(&mut self, msg: crate::wire::ProtocolMessage) -> Result<(), ProtocolError> {
        self.receive(OverlapMessage::try_from(msg)?)
    }

    fn is_done(&self) -> bool {
        ActivationReceiver::is_done(self)
    }

    fn progress(&self) -> Progress {
        ActivationReceiver::progress(self)
    }

    fn attest(&mut self) -> Result<Vec<Attestation>, ProtocolError> {
        let w = std::mem::take(&mut self.w);
        Ok(vec![Attestation::make(
            &self.key,
            &self.terms,
            attest::ACTIVATION_RECEIVER_STEP,
            (List::W, &w),
            self.rw.clone(),
        )?])
    }

    fn finish(self: Box<Self>) -> Result<Outcome, ProtocolError> {
        (*self).finish().map(Outcome::Activation)
    }
}

impl Party for ActivationSender {
    fn poll_transmit(&mut self) -> Option<crate::wire::ProtocolMessage> {
        self.poll().map(Into::into)
    }

    fn handle(&mut self, msg: crate::wire::ProtocolMessage) -> Result<(), ProtocolError> {
        self.receive(OverlapMessage::try_from(msg)?)
    }

    fn is_done(&self) -> bool {
        ActivationSender::is_done(self)
    }

    fn progress(&self) -> Progress {
        ActivationSender::progress(self)
    }

    fn attest(&mut self) -> Result<Vec<Attestation>, ProtocolError> {
        let u = std::mem::take(&mut self.u);
        Ok(vec![Attestation::make(
            &self.key,
            &self.terms,
            attest::ACTIVATION_SENDER_STEP,
            (List::U, &u),
            self.v.clone(),
        )?])
    }

    fn finish(self: Box<Self>) -> Result<Outcome, ProtocolError> {
        Ok(Outcome::Completed)
    }
}

#[cfg(test)]
#[path = "activation_tests.rs"]
mod tests;
