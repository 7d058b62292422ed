//! One direction of the session as the file shows it: each message's
//! envelope opened in chain order, its step label checked against its
//! payload, and what the later checks need kept (the announcement, the
//! closing with its chain head, the co-signature, the masked lists).

use prost::Message;

use crate::{
    crypto::group::{PointBytes, split_points},
    transcript::{
        envelope::{ChainReader, EnvelopeError},
        recorder::{elide, from_wire},
        summary::step_of,
    },
    wire::{self, ChainHead, Closing, MaskedList, ProtocolMessage, protocol_message::Kind},
};
use ed25519_dalek::VerifyingKey;

/// Why a direction's chain stops being checked, at the record that broke it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("record {record}: {fault}")]
pub(super) struct ChainError {
    record: usize,
    fault: ChainFault,
}

/// What is wrong with the message. Step labels are the file's own text; no
/// variant carries a point or a payload.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
enum ChainFault {
    #[error("a message without its envelope")]
    NoEnvelope,
    #[error("an envelope field of the wrong length")]
    FieldLength,
    #[error("{0}")]
    Envelope(EnvelopeError),
    #[error("message {seq} ({label}): the payload is not a protocol message")]
    NotAProtocolMessage { seq: u64, label: String },
    #[error("message {seq} is labelled '{label}' but carries '{actual}'")]
    Mislabelled { seq: u64, label: String, actual: String },
    #[error(
        "message {seq} ({label}) follows this side's closing, after which only its co-signature may come"
    )]
    AfterClosing { seq: u64, label: String },
    #[error("message {seq} ({label}) follows the co-signature")]
    AfterCosign { seq: u64, label: String },
    #[error("message {seq}: a second closing")]
    SecondClosing { seq: u64 },
    #[error("message {seq}: a co-signature before this side's closing")]
    CosignBeforeClosing { seq: u64 },
}

/// One direction of the session as the file shows it.
pub(super) struct Direction {
    pub(super) name: String,
    pub(super) reader: ChainReader,
    pub(super) failed: bool,
    pub(super) elided: u64,
    pub(super) announce: Option<wire::Announce>,
    pub(super) closing: Option<(Closing, ChainHead)>,
    pub(super) cosign: Option<Vec<u8>>,
    after_cosign: bool,
    /// Lists U, V, W, Z, concatenated in chain order.
    pub(super) lists: [Vec<PointBytes>; 4],
}

fn list_slot(list: i32) -> Option<usize> {
    match MaskedList::try_from(list) {
        Ok(MaskedList::U) => Some(0),
        Ok(MaskedList::V) => Some(1),
        Ok(MaskedList::W) => Some(2),
        Ok(MaskedList::Z) => Some(3),
        _ => None,
    }
}

impl Direction {
    pub(super) fn new(session: &str, from: &str, to: &str, key: VerifyingKey) -> Self {
        Self {
            name: format!("{from} -> {to}"),
            reader: ChainReader::new(session, from, to, key),
            failed: false,
            elided: 0,
            announce: None,
            closing: None,
            cosign: None,
            after_cosign: false,
            lists: Default::default(),
        }
    }

    /// Checks one message; the first failure stops this direction (later
    /// messages cannot be trusted to follow a broken chain).
    pub(super) fn accept(&mut self, index: usize, m: &wire::TranscriptMessage) -> Result<(), ChainError> {
        let at = |fault: ChainFault| ChainError { record: index, fault };
        let sealed = m.sealed.as_ref().ok_or_else(|| at(ChainFault::NoEnvelope))?;
        let envelope = sealed
            .envelope
            .as_ref()
            .ok_or_else(|| at(ChainFault::NoEnvelope))?;
        let header = from_wire(envelope).ok_or_else(|| at(ChainFault::FieldLength))?;
        let (seq, label) = (header.header.seq, header.header.step.clone());
        if m.payload_elided {
            self.reader
                .open_elided(&header)
                .map_err(|e| at(ChainFault::Envelope(e)))?;
            self.elided += 1;
            return Ok(());
        }
        self.reader
            .open(&header, &sealed.payload)
            .map_err(|e| at(ChainFault::Envelope(e)))?;
        let msg = ProtocolMessage::decode(sealed.payload.as_slice()).map_err(|_| {
            at(ChainFault::NotAProtocolMessage {
                seq,
                label: label.clone(),
            })
        })?;
        let actual = step_of(&msg);
        if actual != label {
            return Err(at(ChainFault::Mislabelled { seq, label, actual }));
        }
        if elide(&msg) {
            return Ok(());
        }
        if self.closing.is_some() && !matches!(msg.kind, Some(Kind::Cosign(_))) {
            return Err(at(ChainFault::AfterClosing { seq, label }));
        }
        if self.after_cosign {
            return Err(at(ChainFault::AfterCosign { seq, label }));
        }
        match msg.kind {
            Some(Kind::Announce(a)) if self.announce.is_none() => {
                self.announce = Some(a);
            }
            Some(Kind::Points(p)) if msg.lane == 0 => {
                if let (Some(slot), Some(points)) = (list_slot(p.list), split_points(&p.points)) {
                    self.lists[slot].extend_from_slice(&points);
                }
            }
            Some(Kind::Closing(c)) => {
                if self.closing.is_some() {
                    return Err(at(ChainFault::SecondClosing { seq }));
                }
                let head = ChainHead {
                    messages: seq + 1,
                    head: self.reader.head().to_vec(),
                };
                self.closing = Some((c, head));
            }
            Some(Kind::Cosign(c)) => {
                if self.closing.is_none() {
                    return Err(at(ChainFault::CosignBeforeClosing { seq }));
                }
                self.cosign = Some(c.signature);
                self.after_cosign = true;
            }
            _ => {}
        }
        Ok(())
    }
}

impl Direction {
    pub(super) fn reader_from(&self) -> String {
        self.name.split(" -> ").next().unwrap_or_default().to_string()
    }
}
