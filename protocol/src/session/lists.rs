//! The lists of a session as states: a list the peer streams to this party,
//! open with its announced length until its end matches it, and a list this
//! party sends once it holds all of it. Every protocol checks, treats and
//! keeps a peer's chunks here, so the bounds are enforced in one place.

use crate::{
    crypto::group::{PointBytes, SessionKey, decode_and_mask, validate_points},
    error::ProtocolError,
    session::stream::{Limits, List, ListMessage, capacity_for, next_chunk},
};

/// What a party does with the points of a list the peer streams to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Treat {
    /// Masked again with this party's key.
    Mask,
    /// Masked again, and kept as received too: this party's attestation
    /// proves the masking against the list as the peer sent it.
    MaskKeepingOriginals,
    /// Only checked: the list is compared with points this party computed
    /// itself, but a bad encoding still marks a deviating peer.
    Check,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Its length comes with the peer's announcement, not yet received.
    Waiting,
    Open {
        announced: u64,
        received: u64,
    },
    Closed {
        count: u64,
    },
}

/// A list the peer streams to this party, as it arrives.
pub(crate) struct InboundList {
    /// The step errors name.
    step: &'static str,
    treat: Treat,
    state: State,
    /// The points as treated, in the order received; empty for a list
    /// passed on chunk by chunk ([`InboundList::pass`]).
    points: Vec<PointBytes>,
    /// The points as received, for [`Treat::MaskKeepingOriginals`].
    originals: Vec<PointBytes>,
}

/// The refusal of a chunk or an end of a list that is not open: the
/// protocols' own state checks come first and name the message, so this
/// only guards the kernel against a protocol's bug.
const NOT_OPEN: ProtocolError = ProtocolError::Unexpected {
    expected: "a list's points or end while the list is open",
    got: "points or the end of a list that is not open",
};

impl InboundList {
    /// A list whose length the peer's announcement will give.
    pub(crate) fn waiting(step: &'static str, treat: Treat) -> Self {
        Self {
            step,
            treat,
            state: State::Waiting,
            points: Vec::new(),
            originals: Vec::new(),
        }
    }

    /// A list of `announced` points, open from the start.
    pub(crate) fn opened(step: &'static str, treat: Treat, announced: u64) -> Self {
        let mut list = Self::waiting(step, treat);
        list.open(announced);
        list
    }

    /// Opens a waiting list for `announced` points (a list already open or
    /// closed stays as it is).
    pub(crate) fn open(&mut self, announced: u64) {
        if self.state == State::Waiting {
            self.state = State::Open {
                announced,
                received: 0,
            };
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed { .. })
    }

    /// Points received so far: all of them once closed.
    pub(crate) fn received(&self) -> u64 {
        match self.state {
            State::Waiting => 0,
            State::Open { received, .. } => received,
            State::Closed { count } => count,
        }
    }

    /// Checks a chunk of `got` points against the chunk bound and the
    /// announced length; returns the announced length.
    fn admit(&self, got: usize, limits: &Limits) -> Result<u64, ProtocolError> {
        let State::Open { announced, received } = self.state else {
            return Err(NOT_OPEN);
        };
        if got > limits.max_chunk_points {
            return Err(ProtocolError::OversizedChunk {
                step: self.step,
                points: got,
                max: limits.max_chunk_points,
            });
        }
        let after = received.saturating_add(got as u64);
        if after > announced {
            return Err(ProtocolError::CountMismatch {
                step: self.step,
                announced,
                received: after,
            });
        }
        Ok(announced)
    }

    fn count(&mut self, got: usize) {
        if let State::Open { received, .. } = &mut self.state {
            *received += got as u64;
        }
    }

    fn masked(&self, key: &SessionKey, points: &[PointBytes]) -> Result<Vec<PointBytes>, ProtocolError> {
        decode_and_mask(key, points).map_err(|bad| ProtocolError::BadPoint { step: self.step, bad })
    }

    fn checked(&self, points: &[PointBytes]) -> Result<(), ProtocolError> {
        validate_points(points).map_err(|bad| ProtocolError::BadPoint { step: self.step, bad })
    }

    /// Checks a chunk, treats it and keeps it (and its originals when the
    /// list keeps them).
    pub(crate) fn chunk(
        &mut self,
        points: Vec<PointBytes>,
        key: &SessionKey,
        limits: &Limits,
    ) -> Result<(), ProtocolError> {
        let announced = self.admit(points.len(), limits)?;
        let got = points.len();
        // Reserved at the first chunk, so an announcement alone costs nothing.
        if self.points.is_empty() {
            self.points.reserve(capacity_for(announced));
        }
        match self.treat {
            Treat::Check => {
                self.checked(&points)?;
                self.points.extend_from_slice(&points);
            }
            Treat::Mask => {
                let masked = self.masked(key, &points)?;
                self.points.extend_from_slice(&masked);
            }
            Treat::MaskKeepingOriginals => {
                let masked = self.masked(key, &points)?;
                self.points.extend_from_slice(&masked);
                if self.originals.is_empty() {
                    self.originals.reserve(capacity_for(announced));
                }
                self.originals.extend_from_slice(&points);
            }
        }
        self.count(got);
        Ok(())
    }

    /// Checks a chunk and treats it, returning it rather than keeping it:
    /// for a list this party answers as it arrives.
    pub(crate) fn pass(
        &mut self,
        points: &[PointBytes],
        key: &SessionKey,
        limits: &Limits,
    ) -> Result<Vec<PointBytes>, ProtocolError> {
        self.admit(points.len(), limits)?;
        let treated = match self.treat {
            Treat::Check => {
                self.checked(points)?;
                points.to_vec()
            }
            Treat::Mask | Treat::MaskKeepingOriginals => self.masked(key, points)?,
        };
        self.count(points.len());
        Ok(treated)
    }

    /// Closes the list at the peer's end: its count and the points received
    /// must both be the announced length.
    pub(crate) fn end(&mut self, count: u64) -> Result<(), ProtocolError> {
        let State::Open { announced, received } = self.state else {
            return Err(NOT_OPEN);
        };
        if count != announced || received != announced {
            return Err(ProtocolError::CountMismatch {
                step: self.step,
                announced,
                received,
            });
        }
        self.state = State::Closed { count };
        Ok(())
    }

    /// The points as treated, in the order received.
    pub(crate) fn points(&self) -> &[PointBytes] {
        &self.points
    }

    pub(crate) fn take_points(&mut self) -> Vec<PointBytes> {
        std::mem::take(&mut self.points)
    }

    pub(crate) fn take_originals(&mut self) -> Vec<PointBytes> {
        std::mem::take(&mut self.originals)
    }
}

/// A list this party sends only once it holds all of it (an answer to the
/// peer's whole list, shuffled or decided on as a whole): waiting, then
/// sent chunk by chunk, then ended.
pub(crate) struct ReadyList {
    list: List,
    points: Vec<PointBytes>,
    next: usize,
    state: Ready,
    /// Whether the points stay after the end (for an attestation over them).
    keep: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ready {
    Waiting,
    Sending,
    Ended,
}

impl ReadyList {
    /// A list that frees its points once sent.
    pub(crate) fn new(list: List) -> Self {
        Self {
            list,
            points: Vec::new(),
            next: 0,
            state: Ready::Waiting,
            keep: false,
        }
    }

    /// A list whose points stay after its end.
    pub(crate) fn kept(list: List) -> Self {
        Self {
            keep: true,
            ..Self::new(list)
        }
    }

    /// Hands over the whole list; it leaves from the next poll on.
    pub(crate) fn ready(&mut self, points: Vec<PointBytes>) {
        if self.state == Ready::Waiting {
            self.points = points;
            self.state = Ready::Sending;
        }
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.state == Ready::Ended
    }

    /// Points sent so far.
    pub(crate) fn sent(&self) -> u64 {
        self.next as u64
    }

    /// The points, while sending and, for a kept list, after.
    pub(crate) fn points(&self) -> &[PointBytes] {
        &self.points
    }

    /// The next chunk, then the end; `None` while waiting and once ended.
    pub(crate) fn poll(&mut self, chunk: usize) -> Option<ListMessage> {
        if self.state != Ready::Sending {
            return None;
        }
        if let Some(points) = next_chunk(&self.points, &mut self.next, chunk) {
            return Some(ListMessage::Points {
                list: self.list,
                points,
            });
        }
        self.state = Ready::Ended;
        let count = self.points.len() as u64;
        if !self.keep {
            self.points = Vec::new();
        }
        Some(ListMessage::End {
            list: self.list,
            count,
        })
    }
}

#[cfg(test)]
#[path = "lists_tests.rs"]
mod tests;
