//! One node's side of a session's transcript: seals what it sends, checks
//! what it receives, and builds and co-signs the summary.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use prost::Message;
use rand::RngCore;
use sha2::Digest;

use super::summary::{SUMMARY_TAG, disclosures, query_kind, result_commitment, spec_sha256, step_of};
use crate::{
    session::attest::Attestation,
    session::stream::Terms,
    transcript::envelope::{ChainReader, ChainWriter, EnvelopeError, Header, Sealed as SealedHeader},
    wire::{
        self, ChainHead, CipherList, Closing, Cosign, CosignedSummary, Envelope, OwnRelease, ProtocolMessage,
        QuerySpec, SessionSummary, SummaryParty, TranscriptHead, TranscriptMessage, TranscriptRecord,
        protocol_message::Kind, transcript_record::Record,
    },
};

/// This node's seat in the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seat {
    Receiver,
    Sender,
}

impl Seat {
    pub fn name(self) -> &'static str {
        match self {
            Seat::Receiver => "receiver",
            Seat::Sender => "sender",
        }
    }
}

#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub job_id: String,
    pub session_id: String,
    pub node: String,
    pub peer: String,
    pub seat: Seat,
    pub spec: QuerySpec,
    pub terms: Terms,
    /// The planner who asked, as the offer carried it.
    pub requester: Option<wire::Requester>,
}

/// What is wrong with a received frame or with the closing of a session.
#[derive(Debug, thiserror::Error)]
pub enum TranscriptError {
    #[error("envelope check failed: {0}")]
    Envelope(#[from] EnvelopeError),
    #[error("message {seq}: {what}")]
    Malformed { seq: u64, what: String },
    #[error("message {seq} is labelled step '{label}' but carries step '{actual}'")]
    Mislabelled { seq: u64, label: String, actual: String },
    #[error("the session summary cannot be built yet: {0}")]
    Incomplete(&'static str),
    #[error(
        "the peer's signature does not cover the summary this node built (the two sides saw different sessions)"
    )]
    SummaryMismatch,
}

/// A chain head with its message count, captured at a party's `Closing`.
#[derive(Clone, Debug)]
struct Head {
    messages: u64,
    link: [u8; 32],
}

/// What a party's first announcement committed to.
#[derive(Clone, Debug, Default)]
struct Announced {
    set_size: u64,
    session_key: Vec<u8>,
}

pub struct Recorder {
    info: SessionInfo,
    key: SigningKey,
    peer_key: VerifyingKey,
    out: ChainWriter,
    inbound: ChainReader,
    own: Option<Announced>,
    peer: Option<Announced>,
    own_closing: Option<(Closing, Head)>,
    peer_closing: Option<(Closing, Head)>,
    peer_cosign: Option<Vec<u8>>,
    summary: Option<Vec<u8>>,
    records: Vec<TranscriptRecord>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("session", &self.info.session_id)
            .field("sent", &self.out.count())
            .field("received", &self.inbound.count())
            .finish_non_exhaustive()
    }
}

fn record(r: Record) -> TranscriptRecord {
    TranscriptRecord { record: Some(r) }
}

/// An envelope as the wire carries it.
pub fn envelope_to_wire(sealed: &SealedHeader) -> Envelope {
    let h = &sealed.header;
    Envelope {
        session_id: h.session_id.clone(),
        seq: h.seq,
        step: h.step.clone(),
        from: h.from.clone(),
        to: h.to.clone(),
        payload_sha256: h.payload_sha256.to_vec(),
        prev_hash: h.prev_hash.to_vec(),
        signature: sealed.signature.to_vec(),
    }
}

/// The envelope as the chain checks it; `None` when a hash or signature has
/// the wrong length (which no honest sender produces).
pub(crate) fn from_wire(e: &Envelope) -> Option<SealedHeader> {
    Some(SealedHeader {
        header: Header {
            session_id: e.session_id.clone(),
            seq: e.seq,
            step: e.step.clone(),
            from: e.from.clone(),
            to: e.to.clone(),
            payload_sha256: e.payload_sha256.as_slice().try_into().ok()?,
            prev_hash: e.prev_hash.as_slice().try_into().ok()?,
        },
        signature: e.signature.as_slice().try_into().ok()?,
    })
}

/// Breakdown payload ciphertexts are by far the bulk of a session and are
/// not what any proof refers to: the file keeps their envelopes only.
pub(crate) fn elide(msg: &ProtocolMessage) -> bool {
    matches!(&msg.kind, Some(Kind::Ciphers(c)) if c.list == CipherList::Payloads as i32)
}

impl Recorder {
    pub fn new(info: SessionInfo, key: SigningKey, peer_key: VerifyingKey) -> Self {
        let head = TranscriptHead {
            format: super::FORMAT,
            job_id: info.job_id.clone(),
            session_id: info.session_id.clone(),
            node: info.node.clone(),
            peer: info.peer.clone(),
            role: info.seat.name().to_string(),
            node_key: key.verifying_key().to_bytes().to_vec(),
            peer_key: peer_key.to_bytes().to_vec(),
            spec: Some(info.spec.clone()),
            terms: info.terms.to_vec(),
            requester: info.requester.clone(),
        };
        let out = ChainWriter::new(&info.session_id, &info.node, &info.peer);
        let inbound = ChainReader::new(&info.session_id, &info.peer, &info.node, peer_key);
        Self {
            info,
            key,
            peer_key,
            out,
            inbound,
            own: None,
            peer: None,
            own_closing: None,
            peer_closing: None,
            peer_cosign: None,
            summary: None,
            records: vec![record(Record::Head(head))],
        }
    }

    /// Records to append to the file, in order, since the last call.
    pub fn drain(&mut self) -> Vec<TranscriptRecord> {
        std::mem::take(&mut self.records)
    }

    /// Seals a message this node sends.
    pub fn seal(&mut self, msg: &ProtocolMessage) -> wire::Sealed {
        let payload = msg.encode_to_vec();
        let header = self.out.seal(&step_of(msg), &payload, &self.key);
        match &msg.kind {
            Some(Kind::Announce(a)) if self.own.is_none() => {
                self.own = Some(Announced {
                    set_size: a.set_size,
                    session_key: a.session_key.clone(),
                });
            }
            Some(Kind::Closing(c)) => {
                let head = Head {
                    messages: header.header.seq + 1,
                    link: self.out.head(),
                };
                self.own_closing = Some((c.clone(), head));
            }
            _ => {}
        }
        let sealed = wire::Sealed {
            envelope: Some(envelope_to_wire(&header)),
            payload,
        };
        self.records.push(record(Record::Message(TranscriptMessage {
            sealed: Some(if elide(msg) {
                wire::Sealed {
                    envelope: sealed.envelope.clone(),
                    payload: Vec::new(),
                }
            } else {
                sealed.clone()
            }),
            payload_elided: elide(msg),
        })));
        sealed
    }

    /// Checks a frame from the peer (signature, session, order, chain, payload
    /// hash, label) and decodes it.
    pub fn open(&mut self, sealed: wire::Sealed) -> Result<ProtocolMessage, TranscriptError> {
        let seq = self.inbound.count();
        let malformed = |what: &str| TranscriptError::Malformed {
            seq,
            what: what.to_string(),
        };
        let envelope = sealed
            .envelope
            .as_ref()
            .ok_or_else(|| malformed("has no envelope"))?;
        let header =
            from_wire(envelope).ok_or_else(|| malformed("has an envelope field of the wrong length"))?;
        self.inbound.open(&header, &sealed.payload)?;
        let msg = ProtocolMessage::decode(sealed.payload.as_slice())
            .map_err(|_| malformed("carries a payload that is not a protocol message"))?;
        let actual = step_of(&msg);
        if actual != header.header.step {
            return Err(TranscriptError::Mislabelled {
                seq,
                label: header.header.step,
                actual,
            });
        }
        if self.peer_closing.is_some() && !matches!(msg.kind, Some(Kind::Cosign(_))) {
            return Err(malformed(
                "follows the peer's closing, after which only its co-signature may come",
            ));
        }
        match &msg.kind {
            Some(Kind::Announce(a)) if self.peer.is_none() => {
                self.peer = Some(Announced {
                    set_size: a.set_size,
                    session_key: a.session_key.clone(),
                });
            }
            Some(Kind::Closing(c)) => {
                if self.peer_closing.is_some() {
                    return Err(malformed("is a second closing message"));
                }
                let head = Head {
                    messages: seq + 1,
                    link: self.inbound.head(),
                };
                self.peer_closing = Some((c.clone(), head));
            }
            Some(Kind::Cosign(c)) => {
                if self.peer_closing.is_none() || self.peer_cosign.is_some() {
                    return Err(malformed("is a co-signature out of place"));
                }
                self.peer_cosign = Some(c.signature.clone());
            }
            _ => {}
        }
        let elided = elide(&msg);
        self.records.push(record(Record::Message(TranscriptMessage {
            sealed: Some(if elided {
                wire::Sealed {
                    envelope: sealed.envelope,
                    payload: Vec::new(),
                }
            } else {
                sealed
            }),
            payload_elided: elided,
        })));
        Ok(msg)
    }

    /// This node's `Closing`, to seal and send once its release is ready.
    /// Records the attestations and the release (with its salt) in the file.
    pub fn closing(
        &mut self,
        policy_checks: Vec<String>,
        report: Vec<u8>,
        exact_count: Option<u64>,
        attestations: Vec<Attestation>,
        epsilon: f64,
    ) -> ProtocolMessage {
        let mut salt = vec![0u8; 32];
        rand::rng().fill_bytes(&mut salt);
        let commitment = result_commitment(&salt, &report);
        let mut digests = Vec::with_capacity(attestations.len());
        for a in attestations {
            digests.push(a.digest().to_vec());
            self.records.push(record(Record::Attestation(wire::Attestation {
                step: a.step.to_string(),
                inputs: crate::session::stream::list_to_wire(a.inputs) as i32,
                // Moved, not copied: a million-point list is 32 MiB.
                outputs: a.outputs.into_flattened(),
                proof: a.proof.to_bytes().to_vec(),
                input_hints: a.input_hints,
                output_hints: a.output_hints,
            })));
        }
        self.records.push(record(Record::Release(OwnRelease {
            salt,
            report,
            exact_count,
        })));
        ProtocolMessage {
            kind: Some(Kind::Closing(Closing {
                policy_checks,
                result_commitment: commitment.to_vec(),
                attestations: digests,
                epsilon,
            })),
            lane: 0,
        }
    }

    /// Whether the peer's closing has arrived.
    pub fn peer_closed(&self) -> bool {
        self.peer_closing.is_some()
    }

    /// Whether the peer's co-signature has arrived.
    pub fn peer_cosigned(&self) -> bool {
        self.peer_cosign.is_some()
    }

    /// The summary both nodes sign, once both closings are in the chain.
    pub fn summary(&self) -> Result<SessionSummary, TranscriptError> {
        let own = self.own.clone().unwrap_or_default();
        let peer = self.peer.clone().unwrap_or_default();
        let (own_closing, own_head) = self
            .own_closing
            .clone()
            .ok_or(TranscriptError::Incomplete("this node has not closed"))?;
        let (peer_closing, peer_head) = self
            .peer_closing
            .clone()
            .ok_or(TranscriptError::Incomplete("the peer has not closed"))?;
        let me = SummaryParty {
            node: self.info.node.clone(),
            identity_key: self.key.verifying_key().to_bytes().to_vec(),
            session_key: own.session_key,
            set_size: own.set_size,
            closing: Some(own_closing),
        };
        let them = SummaryParty {
            node: self.info.peer.clone(),
            identity_key: self.peer_key.to_bytes().to_vec(),
            session_key: peer.session_key,
            set_size: peer.set_size,
            closing: Some(peer_closing),
        };
        let head = |h: Head| ChainHead {
            messages: h.messages,
            head: h.link.to_vec(),
        };
        let (receiver, sender, r_to_s, s_to_r) = match self.info.seat {
            Seat::Receiver => (me, them, own_head, peer_head),
            Seat::Sender => (them, me, peer_head, own_head),
        };
        Ok(build_summary(
            &self.info.job_id,
            &self.info.session_id,
            &self.info.spec,
            &self.info.terms,
            self.info.requester.as_ref(),
            receiver,
            sender,
            head(r_to_s),
            head(s_to_r),
        ))
    }

    /// This node's co-signature, to seal and send after its closing and the peer's.
    pub fn cosign(&mut self) -> Result<ProtocolMessage, TranscriptError> {
        let bytes = self.summary()?.encode_to_vec();
        let signature = self.key.sign(&signing_bytes(&bytes)).to_bytes().to_vec();
        self.summary = Some(bytes);
        Ok(ProtocolMessage {
            kind: Some(Kind::Cosign(Cosign { signature })),
            lane: 0,
        })
    }

    /// Checks the peer's co-signature over the summary this node built and
    /// records the co-signed summary: the transcript is complete.
    pub fn finish(&mut self) -> Result<[u8; 32], TranscriptError> {
        let (Some(summary), Some(peer_sig)) = (self.summary.clone(), self.peer_cosign.clone()) else {
            return Err(TranscriptError::Incomplete("the co-signatures are not both in"));
        };
        let signature = Signature::from_slice(&peer_sig).map_err(|_| TranscriptError::SummaryMismatch)?;
        self.peer_key
            .verify_strict(&signing_bytes(&summary), &signature)
            .map_err(|_| TranscriptError::SummaryMismatch)?;
        let own_sig = self.key.sign(&signing_bytes(&summary)).to_bytes().to_vec();
        let (receiver_signature, sender_signature) = match self.info.seat {
            Seat::Receiver => (own_sig, peer_sig),
            Seat::Sender => (peer_sig, own_sig),
        };
        let digest: [u8; 32] = sha2::Sha256::digest(&summary).into();
        self.records.push(record(Record::Summary(CosignedSummary {
            summary,
            receiver_signature,
            sender_signature,
        })));
        Ok(digest)
    }
}

/// What a co-signature signs: a tag, then the encoded summary.
pub(crate) fn signing_bytes(summary: &[u8]) -> Vec<u8> {
    [SUMMARY_TAG, summary].concat()
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn build_summary(
    job_id: &str,
    session_id: &str,
    spec: &QuerySpec,
    terms: &Terms,
    requester: Option<&wire::Requester>,
    receiver: SummaryParty,
    sender: SummaryParty,
    receiver_to_sender: ChainHead,
    sender_to_receiver: ChainHead,
) -> SessionSummary {
    let disclosures = disclosures(
        spec,
        (&receiver.node, receiver.set_size),
        (&sender.node, sender.set_size),
    );
    SessionSummary {
        job_id: job_id.to_string(),
        session_id: session_id.to_string(),
        spec_sha256: spec_sha256(spec).to_vec(),
        terms: terms.to_vec(),
        query_kind: query_kind(spec).to_string(),
        receiver: Some(receiver),
        sender: Some(sender),
        receiver_to_sender: Some(receiver_to_sender),
        sender_to_receiver: Some(sender_to_receiver),
        disclosures,
        requester: requester.cloned(),
    }
}
