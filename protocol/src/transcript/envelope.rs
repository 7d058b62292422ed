//! Signed, hash-chained envelopes for protocol messages (PROTOCOLS.md,
//! "Transcripts"). Every message a node sends in a session is sealed in an
//! envelope `{session, seq, step, from, to, payload_sha256, prev_hash}` signed
//! with the sender's Ed25519 identity key. Each direction of a session is its
//! own chain: the two nodes send concurrently, so no single order exists across
//! directions; the co-signed session summary binds both chain heads.
//!
//! What the chain catches, and how it names it: a changed payload (its hash no
//! longer matches), a changed header or a key swap (the signature fails), a
//! dropped or reordered message (sequence number and previous hash), a message
//! replayed from another session or direction (the session and parties are
//! signed).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

const DOMAIN: &[u8] = b"JOINTLY-V1-ENVELOPE";
const GENESIS_DOMAIN: &[u8] = b"JOINTLY-V1-CHAIN-START";

/// The signed part of an envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub session_id: String,
    /// Position in this direction's chain, from 0.
    pub seq: u64,
    /// Protocol step the payload belongs to, e.g. "O.1".
    pub step: String,
    pub from: String,
    pub to: String,
    pub payload_sha256: [u8; 32],
    /// Link of the previous envelope in this direction (the genesis link for seq 0).
    pub prev_hash: [u8; 32],
}

/// A header and its sender's signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub header: Header,
    pub signature: [u8; 64],
}

/// What is wrong with an envelope; each names the message by its position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    #[error(
        "message {seq} ({step}): belongs to session '{got}', not '{expected}' (replayed from another session)"
    )]
    WrongSession {
        seq: u64,
        step: String,
        expected: String,
        got: String,
    },
    /// `expected` and `got` read "from -> to".
    #[error("message {seq} ({step}): sent {got}, expected {expected}")]
    WrongParties {
        seq: u64,
        step: String,
        expected: String,
        got: String,
    },
    #[error("message {got} ({step}): expected message {expected} next (a message was dropped or reordered)")]
    OutOfOrder { expected: u64, got: u64, step: String },
    #[error("message {seq} ({step}): does not follow the previous message (the chain is broken)")]
    BrokenChain { seq: u64, step: String },
    #[error("message {seq} ({step}): the payload was changed after it was signed")]
    PayloadChanged { seq: u64, step: String },
    #[error("message {seq} ({step}): the signature does not verify under {from}'s registered key")]
    BadSignature { seq: u64, step: String, from: String },
}

fn put(buf: &mut Vec<u8>, field: &[u8]) {
    buf.extend_from_slice(&(field.len() as u64).to_be_bytes());
    buf.extend_from_slice(field);
}

impl Header {
    /// Length-prefixed fields after a domain tag: no two headers share an encoding.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(160 + self.session_id.len() + self.step.len());
        put(&mut b, DOMAIN);
        put(&mut b, self.session_id.as_bytes());
        b.extend_from_slice(&self.seq.to_be_bytes());
        put(&mut b, self.step.as_bytes());
        put(&mut b, self.from.as_bytes());
        put(&mut b, self.to.as_bytes());
        b.extend_from_slice(&self.payload_sha256);
        b.extend_from_slice(&self.prev_hash);
        b
    }
}

impl Sealed {
    /// The chain link the next envelope points back to: it covers the
    /// signature too, so a re-signed message breaks the chain.
    pub fn link(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.header.signing_bytes());
        h.update(self.signature);
        h.finalize().into()
    }
}

/// The link before the first message of one direction of a session.
pub fn genesis(session_id: &str, from: &str, to: &str) -> [u8; 32] {
    let mut b = Vec::new();
    put(&mut b, GENESIS_DOMAIN);
    put(&mut b, session_id.as_bytes());
    put(&mut b, from.as_bytes());
    put(&mut b, to.as_bytes());
    Sha256::digest(&b).into()
}

pub fn payload_hash(payload: &[u8]) -> [u8; 32] {
    Sha256::digest(payload).into()
}

/// One direction of a session, as its sender sees it.
#[derive(Debug)]
pub struct ChainWriter {
    session_id: String,
    from: String,
    to: String,
    next_seq: u64,
    prev: [u8; 32],
}

impl ChainWriter {
    pub fn new(session_id: &str, from: &str, to: &str) -> Self {
        Self {
            session_id: session_id.to_string(),
            from: from.to_string(),
            to: to.to_string(),
            next_seq: 0,
            prev: genesis(session_id, from, to),
        }
    }

    /// Seals the next message of this direction.
    pub fn seal(&mut self, step: &str, payload: &[u8], key: &SigningKey) -> Sealed {
        let header = Header {
            session_id: self.session_id.clone(),
            seq: self.next_seq,
            step: step.to_string(),
            from: self.from.clone(),
            to: self.to.clone(),
            payload_sha256: payload_hash(payload),
            prev_hash: self.prev,
        };
        let signature = key.sign(&header.signing_bytes()).to_bytes();
        let sealed = Sealed { header, signature };
        self.prev = sealed.link();
        self.next_seq += 1;
        sealed
    }

    /// Messages sealed so far.
    pub fn count(&self) -> u64 {
        self.next_seq
    }

    /// The link of the last sealed message (the genesis link before any).
    pub fn head(&self) -> [u8; 32] {
        self.prev
    }
}

/// One direction of a session, as its receiver (or an auditor) checks it.
#[derive(Debug)]
pub struct ChainReader {
    session_id: String,
    from: String,
    to: String,
    key: VerifyingKey,
    next_seq: u64,
    prev: [u8; 32],
}

impl ChainReader {
    /// `key` is the sender's registered identity key.
    pub fn new(session_id: &str, from: &str, to: &str, key: VerifyingKey) -> Self {
        Self {
            session_id: session_id.to_string(),
            from: from.to_string(),
            to: to.to_string(),
            key,
            next_seq: 0,
            prev: genesis(session_id, from, to),
        }
    }

    /// Checks the next envelope and its payload; advances only if all is well.
    pub fn open(&mut self, sealed: &Sealed, payload: &[u8]) -> Result<(), EnvelopeError> {
        let hash = payload_hash(payload);
        self.check(sealed, |h| h == &hash)
    }

    fn check(
        &mut self,
        sealed: &Sealed,
        payload_matches: impl Fn(&[u8; 32]) -> bool,
    ) -> Result<(), EnvelopeError> {
        let h = &sealed.header;
        let (seq, step) = (h.seq, h.step.clone());
        // The signature first: until it verifies, nothing in the header can be
        // trusted enough to name the fault precisely.
        let signature = Signature::from_bytes(&sealed.signature);
        if self.key.verify_strict(&h.signing_bytes(), &signature).is_err() {
            return Err(EnvelopeError::BadSignature {
                seq,
                step,
                from: self.from.clone(),
            });
        }
        if h.session_id != self.session_id {
            return Err(EnvelopeError::WrongSession {
                seq,
                step,
                expected: self.session_id.clone(),
                got: h.session_id.clone(),
            });
        }
        if h.from != self.from || h.to != self.to {
            return Err(EnvelopeError::WrongParties {
                seq,
                step,
                expected: format!("'{}' -> '{}'", self.from, self.to),
                got: format!("'{}' -> '{}'", h.from, h.to),
            });
        }
        if seq != self.next_seq {
            return Err(EnvelopeError::OutOfOrder {
                expected: self.next_seq,
                got: seq,
                step,
            });
        }
        if h.prev_hash != self.prev {
            return Err(EnvelopeError::BrokenChain { seq, step });
        }
        if !payload_matches(&h.payload_sha256) {
            return Err(EnvelopeError::PayloadChanged { seq, step });
        }
        self.prev = sealed.link();
        self.next_seq += 1;
        Ok(())
    }

    /// Checks an envelope whose payload was not kept (breakdown ciphertexts in
    /// a transcript file): everything but the payload hash.
    pub fn open_elided(&mut self, sealed: &Sealed) -> Result<(), EnvelopeError> {
        let payload_hash = sealed.header.payload_sha256;
        self.check(sealed, |h| h == &payload_hash)
    }

    pub fn head(&self) -> [u8; 32] {
        self.prev
    }

    /// Messages accepted so far.
    pub fn count(&self) -> u64 {
        self.next_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    /// Three messages from the bank to the partner in session "s1".
    fn chain(session: &str) -> Vec<(Sealed, Vec<u8>)> {
        let mut w = ChainWriter::new(session, "bank", "partner");
        (0..3u8)
            .map(|i| {
                let payload = vec![i; 100];
                (w.seal(&format!("O.{i}"), &payload, &key(1)), payload)
            })
            .collect()
    }

    fn reader(session: &str) -> ChainReader {
        ChainReader::new(session, "bank", "partner", key(1).verifying_key())
    }

    fn check(messages: &[(Sealed, Vec<u8>)]) -> Result<(), EnvelopeError> {
        let mut r = reader("s1");
        messages.iter().try_for_each(|(s, p)| r.open(s, p))
    }

    #[test]
    fn an_honest_chain_verifies_and_both_ends_agree_on_the_head() {
        let mut w = ChainWriter::new("s1", "bank", "partner");
        let mut r = reader("s1");
        assert_eq!(w.head(), r.head());
        for i in 0..5u8 {
            let payload = vec![i; 10];
            r.open(&w.seal("O.1", &payload, &key(1)), &payload)
                .expect("honest");
        }
        assert_eq!(w.head(), r.head());
        assert_eq!(r.count(), 5);
        // Each direction starts from its own genesis link.
        assert_ne!(genesis("s1", "bank", "partner"), genesis("s1", "partner", "bank"));
    }

    #[test]
    fn a_flipped_payload_byte_is_named() {
        let mut m = chain("s1");
        m[1].1[7] ^= 1;
        assert!(matches!(
            check(&m),
            Err(EnvelopeError::PayloadChanged { seq: 1, .. })
        ));
    }

    #[test]
    fn a_flipped_header_or_signature_byte_fails_the_signature() {
        let mut m = chain("s1");
        m[2].0.header.payload_sha256[0] ^= 1;
        assert!(matches!(
            check(&m),
            Err(EnvelopeError::BadSignature { seq: 2, .. })
        ));
        let mut m = chain("s1");
        m[0].0.signature[5] ^= 1;
        assert!(matches!(
            check(&m),
            Err(EnvelopeError::BadSignature { seq: 0, .. })
        ));
        let mut m = chain("s1");
        m[1].0.header.step = "O.3".into();
        assert!(matches!(
            check(&m),
            Err(EnvelopeError::BadSignature { seq: 1, .. })
        ));
    }

    #[test]
    fn a_dropped_or_reordered_message_is_named() {
        let mut m = chain("s1");
        m.remove(1);
        assert_eq!(
            check(&m),
            Err(EnvelopeError::OutOfOrder {
                expected: 1,
                got: 2,
                step: "O.2".into()
            })
        );
        let mut m = chain("s1");
        m.swap(0, 1);
        assert!(matches!(
            check(&m),
            Err(EnvelopeError::OutOfOrder {
                expected: 0,
                got: 1,
                ..
            })
        ));
    }

    #[test]
    fn a_swapped_key_is_named() {
        let mut w = ChainWriter::new("s1", "bank", "partner");
        let sealed = w.seal("O.1", b"x", &key(2));
        assert!(matches!(
            reader("s1").open(&sealed, b"x"),
            Err(EnvelopeError::BadSignature { .. })
        ));
    }

    #[test]
    fn a_message_from_another_session_or_direction_is_named() {
        let other = chain("s2");
        assert!(matches!(
            reader("s1").open(&other[0].0, &other[0].1),
            Err(EnvelopeError::WrongSession { .. })
        ));
        let mut back = ChainWriter::new("s1", "partner", "bank");
        let sealed = back.seal("O.3", b"w", &key(1));
        assert!(matches!(
            reader("s1").open(&sealed, b"w"),
            Err(EnvelopeError::WrongParties { .. })
        ));
    }

    #[test]
    fn a_message_re_signed_in_place_breaks_the_chain() {
        // A sender that rewrites message 1 after the fact and re-signs it
        // still cannot keep message 2 pointing at it.
        let mut m = chain("s1");
        let mut header = m[1].0.header.clone();
        m[1].1 = vec![9; 100];
        header.payload_sha256 = payload_hash(&m[1].1);
        m[1].0 = Sealed {
            signature: key(1).sign(&header.signing_bytes()).to_bytes(),
            header,
        };
        assert!(matches!(
            check(&m),
            Err(EnvelopeError::BrokenChain { seq: 2, .. })
        ));
    }
}
