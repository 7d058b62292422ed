//! Wire messages generated from `proto/` (documented there), and their
//! conversion to and from the protocol's own message types. Conversions from
//! the wire parse strictly: a peer's bytes become typed values or an error.

#[allow(clippy::all, clippy::unwrap_used, clippy::pedantic, missing_docs)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/jointly.v1.rs"));
}
pub use generated::*;

use crate::{
    breakdown::BreakdownMessage,
    error::ProtocolError,
    group::{PointBytes, split_points},
    overlap::{List, MAX_CHUNK_POINTS, OverlapMessage},
};

pub(crate) fn list_to_wire(list: List) -> MaskedList {
    match list {
        List::U => MaskedList::U,
        List::V => MaskedList::V,
        List::W => MaskedList::W,
        List::Z => MaskedList::Z,
    }
}

pub(crate) fn list_from_wire(value: i32) -> Result<List, ProtocolError> {
    match MaskedList::try_from(value) {
        Ok(MaskedList::U) => Ok(List::U),
        Ok(MaskedList::V) => Ok(List::V),
        Ok(MaskedList::W) => Ok(List::W),
        Ok(MaskedList::Z) => Ok(List::Z),
        _ => Err(ProtocolError::Malformed {
            what: "a point chunk names no known list",
        }),
    }
}

impl From<OverlapMessage> for ProtocolMessage {
    fn from(msg: OverlapMessage) -> Self {
        let kind = match msg {
            OverlapMessage::Announce(a) => protocol_message::Kind::Announce(announce_to_wire(&a)),
            OverlapMessage::Points { list, points } => protocol_message::Kind::Points(PointChunk {
                list: list_to_wire(list).into(),
                points: points.as_flattened().to_vec(),
            }),
            OverlapMessage::End { list, count } => protocol_message::Kind::ListEnd(ListEnd {
                list: list_to_wire(list).into(),
                count,
            }),
        };
        ProtocolMessage {
            kind: Some(kind),
            lane: 0,
        }
    }
}

impl TryFrom<ProtocolMessage> for OverlapMessage {
    type Error = ProtocolError;

    fn try_from(msg: ProtocolMessage) -> Result<Self, Self::Error> {
        match msg.kind {
            Some(protocol_message::Kind::Announce(a)) => Ok(OverlapMessage::Announce(announce_from_wire(a)?)),
            Some(protocol_message::Kind::Points(chunk)) => {
                let (list, points) = parse_points(&chunk)?;
                Ok(OverlapMessage::Points { list, points })
            }
            Some(protocol_message::Kind::ListEnd(end)) => Ok(OverlapMessage::End {
                list: list_from_wire(end.list)?,
                count: end.count,
            }),
            None => Err(ProtocolError::Malformed {
                what: "an empty protocol message",
            }),
            Some(_) => Err(ProtocolError::Malformed {
                what: "a message of another protocol in an overlap session",
            }),
        }
    }
}

fn announce_to_wire(a: &crate::overlap::Announce) -> Announce {
    Announce {
        set_size: a.set_size,
        terms: a.terms.to_vec(),
        session_key: a.key.map(|k| k.to_vec()).unwrap_or_default(),
        pad_offset: a.pad_offset,
        dummy_offset: a.dummy_offset,
        min_aggregation: a.min_aggregation,
    }
}

fn announce_from_wire(a: Announce) -> Result<crate::overlap::Announce, ProtocolError> {
    Ok(crate::overlap::Announce {
        set_size: a.set_size,
        key: session_key_of(&a.session_key)?,
        terms: terms_of(a.terms)?,
        pad_offset: a.pad_offset,
        dummy_offset: a.dummy_offset,
        min_aggregation: a.min_aggregation,
    })
}

fn parse_points(chunk: &PointChunk) -> Result<(List, Vec<PointBytes>), ProtocolError> {
    let list = list_from_wire(chunk.list)?;
    // Checked before splitting, so an oversized chunk costs no copy.
    if chunk.points.len() > MAX_CHUNK_POINTS * 32 {
        return Err(ProtocolError::OversizedChunk {
            step: list.step(),
            points: chunk.points.len() / 32,
            max: MAX_CHUNK_POINTS,
        });
    }
    let points = split_points(&chunk.points).ok_or(ProtocolError::RaggedChunk {
        step: list.step(),
        len: chunk.points.len(),
    })?;
    Ok((list, points))
}

/// An announced session key: absent, or a valid non-identity point.
fn session_key_of(bytes: &[u8]) -> Result<Option<PointBytes>, ProtocolError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let key: PointBytes = bytes.try_into().map_err(|_| ProtocolError::Malformed {
        what: "an announcement whose session key is not 32 bytes",
    })?;
    crate::group::decode_point(&key, 0).map_err(|_| ProtocolError::Malformed {
        what: "an announcement whose session key is not a valid point",
    })?;
    Ok(Some(key))
}

fn terms_of(bytes: Vec<u8>) -> Result<[u8; 32], ProtocolError> {
    bytes.try_into().map_err(|_| ProtocolError::Malformed {
        what: "an announcement whose terms digest is not 32 bytes",
    })
}

/// A breakdown lane's message on the wire.
pub fn lane_message(lane: u32, msg: BreakdownMessage) -> ProtocolMessage {
    use protocol_message::Kind;
    let slots32 = |slots: usize| u32::try_from(slots).unwrap_or(u32::MAX);
    let kind = match msg {
        BreakdownMessage::Announce(a) => Kind::Announce(announce_to_wire(&a)),
        BreakdownMessage::KeyOffer { slots, offer } => Kind::KeyOffer(KeyOffer {
            slots: slots32(slots),
            offer,
        }),
        BreakdownMessage::Batches { sizes } => Kind::Batches(Batches { sizes }),
        BreakdownMessage::Points { list, points } => Kind::Points(PointChunk {
            list: list_to_wire(list).into(),
            points: points.as_flattened().to_vec(),
        }),
        BreakdownMessage::End { list, count } => Kind::ListEnd(ListEnd {
            list: list_to_wire(list).into(),
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
        Some(Kind::Announce(a)) => BreakdownMessage::Announce(announce_from_wire(a)?),
        Some(Kind::KeyOffer(k)) => BreakdownMessage::KeyOffer {
            slots: k.slots as usize,
            offer: k.offer,
        },
        Some(Kind::Batches(b)) => BreakdownMessage::Batches { sizes: b.sizes },
        Some(Kind::Points(chunk)) => {
            let (list, points) = parse_points(&chunk)?;
            BreakdownMessage::Points { list, points }
        }
        Some(Kind::ListEnd(end)) => BreakdownMessage::End {
            list: list_from_wire(end.list)?,
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

/// Largest encoded frame either side accepts on any stream (a full chunk of
/// points is 256 KiB); larger frames are refused by the transport.
pub const MAX_FRAME_BYTES: usize = 1 << 20;
