//! A breakdown lane's messages and their wire form.

use crate::crypto::group::PointBytes;
use crate::error::ProtocolError;
use crate::session::stream;
use crate::session::stream::{Announce, List};
use crate::wire::{Batches, CipherChunk, CipherList, ListEnd, PointChunk, ProtocolMessage, protocol_message};

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

/// A message of a breakdown session: one lane's, with its lane number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaneMessage {
    pub lane: u32,
    pub msg: BreakdownMessage,
}

impl From<LaneMessage> for ProtocolMessage {
    fn from(m: LaneMessage) -> Self {
        lane_message(m.lane, m.msg)
    }
}

impl TryFrom<ProtocolMessage> for LaneMessage {
    type Error = ProtocolError;

    fn try_from(msg: ProtocolMessage) -> Result<Self, Self::Error> {
        parse_lane_message(msg).map(|(lane, msg)| LaneMessage { lane, msg })
    }
}

/// A breakdown lane's message on the wire.
pub fn lane_message(lane: u32, msg: BreakdownMessage) -> ProtocolMessage {
    use protocol_message::Kind;
    let slots32 = |slots: usize| u32::try_from(slots).unwrap_or(u32::MAX);
    let kind = match msg {
        BreakdownMessage::Announce(a) => Kind::Announce(stream::announce_to_wire(&a)),
        BreakdownMessage::KeyOffer { slots, offer } => Kind::KeyOffer(crate::wire::KeyOffer {
            slots: slots32(slots),
            offer,
        }),
        BreakdownMessage::Batches { sizes } => Kind::Batches(Batches { sizes }),
        BreakdownMessage::Points { list, points } => Kind::Points(PointChunk {
            list: stream::list_to_wire(list).into(),
            points: points.as_flattened().to_vec(),
        }),
        BreakdownMessage::End { list, count } => Kind::ListEnd(ListEnd {
            list: stream::list_to_wire(list).into(),
            count,
        }),
        BreakdownMessage::Payloads { slots, ciphertexts } => Kind::Ciphers(CipherChunk {
            list: CipherList::Payloads.into(),
            slots: slots32(slots),
            ciphertexts,
        }),
        BreakdownMessage::Release { slots, ciphertexts } => Kind::Ciphers(CipherChunk {
            list: CipherList::Release.into(),
            slots: slots32(slots),
            ciphertexts,
        }),
    };
    ProtocolMessage {
        kind: Some(kind),
        lane,
    }
}

/// Parses a breakdown lane's message; sizes are bounded by the frame limit
/// and checked against the lane's state by the state machine.
pub fn parse_lane_message(msg: ProtocolMessage) -> Result<(u32, BreakdownMessage), ProtocolError> {
    use protocol_message::Kind;
    let parsed = match msg.kind {
        Some(Kind::Announce(a)) => BreakdownMessage::Announce(stream::announce_from_wire(a)?),
        Some(Kind::KeyOffer(k)) => BreakdownMessage::KeyOffer {
            slots: k.slots as usize,
            offer: k.offer,
        },
        Some(Kind::Batches(b)) => BreakdownMessage::Batches { sizes: b.sizes },
        Some(Kind::Points(chunk)) => {
            let (list, points) = stream::parse_points(&chunk)?;
            BreakdownMessage::Points { list, points }
        }
        Some(Kind::ListEnd(end)) => BreakdownMessage::End {
            list: stream::list_from_wire(end.list)?,
            count: end.count,
        },
        Some(Kind::Ciphers(c)) => match CipherList::try_from(c.list) {
            Ok(CipherList::Payloads) => BreakdownMessage::Payloads {
                slots: c.slots as usize,
                ciphertexts: c.ciphertexts,
            },
            Ok(CipherList::Release) => BreakdownMessage::Release {
                slots: c.slots as usize,
                ciphertexts: c.ciphertexts,
            },
            _ => {
                return Err(ProtocolError::Malformed {
                    what: "a ciphertext chunk names no known list",
                });
            }
        },
        Some(Kind::Closing(_) | Kind::Cosign(_)) => {
            return Err(ProtocolError::Malformed {
                what: "a closing message before the protocol finished",
            });
        }
        None => {
            return Err(ProtocolError::Malformed {
                what: "an empty protocol message",
            });
        }
    };
    Ok((msg.lane, parsed))
}
