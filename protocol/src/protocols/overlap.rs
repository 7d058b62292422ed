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
//! ([`crate::privacy::cover`]): R sees the intersection plus `c`, drawn by S, and
//! neither side sees the other's exact size.

use std::sync::Arc;

use crate::{
    crypto::group::{PointBytes, SessionKey, mask_each},
    crypto::hash::{HashToGroup, ID_DST},
    crypto::shuffle,
    error::ProtocolError,
    ids::idlist::IdList,
    privacy::cover::Dummies,
    session::attest::{self, Attestation},
    session::lists::{InboundList, ReadyList, Treat},
    session::outcome::{Outcome, OverlapOutcome},
    session::party::{Progress, Protocol},
    session::stream::{
        Announce, List, ListMessage, MaskedStream, Setup, check_announce, count_common, peer_key_point,
    },
};

/// R: learns `|X ∩ Y|` plus the sender's dummies, and `|W|`.
pub struct OverlapReceiver {
    key: SessionKey,
    setup: Setup,
    hasher: HashToGroup,
    announced: bool,
    u: MaskedStream,
    peer: Option<Announce>,
    /// `r*W`, and W as received for the attestation of `r*W` (O.4).
    w: InboundList,
    v: InboundList,
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
            w: InboundList::waiting(List::W.step(), Treat::MaskKeepingOriginals),
            v: InboundList::waiting(List::V.step(), Treat::Check),
            setup,
        })
    }

    /// V answers every point of U, plus the sender's dummy batch.
    fn v_len(&self) -> u64 {
        let width = self.peer.map_or(0, |p| p.dummy_offset.saturating_mul(2));
        self.u.len().saturating_add(width)
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
        let (mut v, mut rw) = (self.v.take_points(), self.w.take_points());
        v.par_sort_unstable();
        rw.par_sort_unstable();
        for (list, points) in [(List::V, &v), (List::W, &rw)] {
            if points.windows(2).any(|w| w[0] == w[1]) {
                return Err(ProtocolError::DuplicatePoints { step: list.step() });
            }
        }
        let peer = self.peer.unwrap_or(self.setup.announce(0, None));
        Ok(OverlapOutcome {
            intersection: count_common(&v, &rw),
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
    /// `s*U`, and U as received for the attestation (O.2).
    u: InboundList,
    /// `s*U` in U's order, kept for the attestation when V is shuffled.
    v_aligned: Vec<PointBytes>,
    v: ReadyList,
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
            u: InboundList::waiting(List::U.step(), Treat::MaskKeepingOriginals),
            v_aligned: Vec::new(),
            v: ReadyList::new(List::V),
            setup,
        })
    }
}

impl Protocol for OverlapReceiver {
    type Message = ListMessage;

    fn poll(&mut self) -> Option<ListMessage> {
        if !self.announced {
            self.announced = true;
            return Some(ListMessage::Announce(
                self.setup.announce(self.u.len(), Some(self.key.public())),
            ));
        }
        self.u
            .poll(List::U, &self.key, &self.hasher, self.setup.limits.chunk_points)
    }

    fn receive(&mut self, msg: ListMessage) -> Result<(), ProtocolError> {
        let unexpected = |got: &ListMessage| ProtocolError::Unexpected {
            expected: "the sender's announcement, list W or list V",
            got: got.describe(),
        };
        let limits = self.setup.limits;
        match msg {
            ListMessage::Announce(a) if self.peer.is_none() => {
                check_announce(&a, &self.setup.terms, &limits, 1, 1)?;
                self.peer = Some(a);
                self.w.open(a.set_size);
                self.v.open(self.v_len());
                Ok(())
            }
            ListMessage::Points {
                list: List::W,
                points,
            } if self.w.is_open() => self.w.chunk(points, &self.key, &limits),
            ListMessage::End { list: List::W, count } if self.w.is_open() => self.w.end(count),
            // V answers U, so it can only start once U is complete.
            ListMessage::Points {
                list: List::V,
                points,
            } if self.u.closed && self.v.is_open() => self.v.chunk(points, &self.key, &limits),
            ListMessage::End { list: List::V, count } if self.u.closed && self.v.is_open() => {
                self.v.end(count)
            }
            other => Err(unexpected(&other)),
        }
    }

    fn is_done(&self) -> bool {
        self.u.closed && self.w.is_closed() && self.v.is_closed()
    }

    fn progress(&self) -> Progress {
        let peer = self.peer.map_or(0, |p| p.set_size);
        Progress {
            done: self.u.next as u64 + self.w.received() + self.v.received(),
            total: self.u.len() + self.v_len() + peer,
        }
    }

    /// Proves `r*W` (in W's order) for this party's own transcript. Call
    /// once, when done and before `finish`.
    fn attest(&mut self) -> Result<Vec<Attestation>, ProtocolError> {
        let w = self.w.take_originals();
        let proof = Attestation::make(
            &self.key,
            &self.setup.terms,
            attest::RECEIVER_STEP,
            (List::W, &w),
            self.w.points().to_vec(),
        )?;
        Ok(vec![proof])
    }

    fn outcome(self) -> Result<Outcome, ProtocolError> {
        self.finish().map(Outcome::Overlap)
    }
}

impl Protocol for OverlapSender {
    type Message = ListMessage;

    fn poll(&mut self) -> Option<ListMessage> {
        if !self.announced {
            self.announced = true;
            return Some(ListMessage::Announce(
                self.setup.announce(self.w.len(), Some(self.key.public())),
            ));
        }
        let chunk = self.setup.limits.chunk_points;
        // V first: it is ready-made, and R cannot finish without it.
        if let Some(m) = self.v.poll(chunk) {
            return Some(m);
        }
        self.w.poll(List::W, &self.key, &self.hasher, chunk)
    }

    fn receive(&mut self, msg: ListMessage) -> Result<(), ProtocolError> {
        let limits = self.setup.limits;
        match (msg, self.peer) {
            (ListMessage::Announce(a), None) => {
                check_announce(&a, &self.setup.terms, &limits, 1, 0)?;
                self.peer = Some(a);
                self.u.open(a.set_size);
                Ok(())
            }
            (
                ListMessage::Points {
                    list: List::U,
                    points,
                },
                Some(_),
            ) if self.u.is_open() => self.u.chunk(points, &self.key, &limits),
            (ListMessage::End { list: List::U, count }, Some(peer)) if self.u.is_open() => {
                self.u.end(count)?;
                let mut v = self.u.take_points();
                self.v_aligned = v.clone();
                // The dummies' answers join V, masked like R's points.
                let key_r = peer_key_point(peer.key, List::V.step())?;
                let extra = self.w.dummies().answers(0, &key_r);
                v.extend(mask_each(&self.key, extra.len(), |i| extra[i]));
                // The shuffle hides which of R's points became which of V's,
                // and which of V's points answer dummies.
                shuffle::shuffle(&mut v);
                self.v.ready(v);
                Ok(())
            }
            (other, _) => Err(ProtocolError::Unexpected {
                expected: "the receiver's announcement or list U",
                got: other.describe(),
            }),
        }
    }

    fn is_done(&self) -> bool {
        self.announced && self.w.closed && self.v.is_ended()
    }

    /// Proves `V° = s*U` (the answers to U before they were shuffled into V
    /// with the dummies') for this party's own transcript. Call once, when
    /// done.
    fn attest(&mut self) -> Result<Vec<Attestation>, ProtocolError> {
        let u = self.u.take_originals();
        let aligned = std::mem::take(&mut self.v_aligned);
        Ok(vec![Attestation::make(
            &self.key,
            &self.setup.terms,
            attest::SENDER_STEP,
            (List::U, &u),
            aligned,
        )?])
    }

    fn progress(&self) -> Progress {
        let peer = self.peer.map_or(0, |p| p.set_size);
        let width = self.setup.cover.dummy_width();
        Progress {
            done: self.w.next as u64 + self.u.received() + self.v.sent(),
            total: self.w.len() + 2 * peer + width,
        }
    }

    fn outcome(self) -> Result<Outcome, ProtocolError> {
        Ok(Outcome::Completed)
    }
}

#[cfg(test)]
#[path = "overlap_tests.rs"]
mod tests;
