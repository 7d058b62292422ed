//! Wire messages generated from `proto/` (documented there), and their
//! conversion to and from the protocol's own message types. Conversions from
//! the wire parse strictly: a peer's bytes become typed values or an error.

#[allow(clippy::all, clippy::unwrap_used, clippy::pedantic, missing_docs)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/jointly.v1.rs"));
}
pub use generated::*;

use crate::{
    error::ProtocolError,
    group::split_points,
    overlap::{List, MAX_CHUNK_POINTS, OverlapMessage},
};

fn list_to_wire(list: List) -> MaskedList {
    match list {
        List::U => MaskedList::U,
        List::V => MaskedList::V,
        List::W => MaskedList::W,
    }
}

fn list_from_wire(value: i32) -> Result<List, ProtocolError> {
    match MaskedList::try_from(value) {
        Ok(MaskedList::U) => Ok(List::U),
        Ok(MaskedList::V) => Ok(List::V),
        Ok(MaskedList::W) => Ok(List::W),
        _ => Err(ProtocolError::Malformed {
            what: "a point chunk names no known list",
        }),
    }
}

impl From<OverlapMessage> for ProtocolMessage {
    fn from(msg: OverlapMessage) -> Self {
        let kind = match msg {
            OverlapMessage::Announce { set_size, terms } => protocol_message::Kind::Announce(Announce {
                set_size,
                terms: terms.to_vec(),
            }),
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
            Some(protocol_message::Kind::Announce(a)) => Ok(OverlapMessage::Announce {
                set_size: a.set_size,
                terms: a.terms.try_into().map_err(|_| ProtocolError::Malformed {
                    what: "an announcement whose terms digest is not 32 bytes",
                })?,
            }),
            Some(protocol_message::Kind::Points(chunk)) => {
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
                what: "a breakdown message in an overlap session",
            }),
        }
    }
}

/// Largest encoded frame either side accepts on any stream (a full chunk of
/// points is 256 KiB); larger frames are refused by the transport.
pub const MAX_FRAME_BYTES: usize = 1 << 20;
