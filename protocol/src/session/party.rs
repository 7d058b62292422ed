//! What every protocol party has in common, so the node drives any protocol the
//! same way: feed it the peer's messages, send what it produces, report progress.

use crate::{
    error::ProtocolError,
    session::{attest::Attestation, outcome::Outcome},
    wire::ProtocolMessage,
};

/// Work done and total, in protocol-specific units (points processed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// One side of one protocol session, as a sans-I/O state machine.
///
/// `poll_transmit` and `handle` may do heavy point arithmetic (spread over the
/// cores with rayon): callers keep them off async worker threads.
pub trait Party: Send {
    /// The next message to send, if one is ready. Called whenever the transport
    /// has room; `None` means "nothing until the peer says more".
    fn poll_transmit(&mut self) -> Option<ProtocolMessage>;
    /// Consumes one message from the peer.
    fn handle(&mut self, msg: ProtocolMessage) -> Result<(), ProtocolError>;
    /// Everything sent and received.
    fn is_done(&self) -> bool;
    fn progress(&self) -> Progress;
    /// Proofs of this party's masking for its own transcript, once `is_done`
    /// and before `finish` (see [`crate::session::attest`]). Protocols whose masking is
    /// not attested return none.
    fn attest(&mut self) -> Result<Vec<Attestation>, ProtocolError> {
        Ok(Vec::new())
    }
    /// The result, once `is_done`.
    fn finish(self: Box<Self>) -> Result<Outcome, ProtocolError>;
}

/// One side of one protocol, as the protocol states it: its own messages
/// (converted to and from the wire with the protocol) and its outcome. Every
/// protocol is a [`Party`] through this, so they forward to the node alike.
pub trait Protocol: Send {
    type Message: Into<ProtocolMessage> + TryFrom<ProtocolMessage, Error = ProtocolError>;
    /// The next message to send, if one is ready.
    fn poll(&mut self) -> Option<Self::Message>;
    /// Consumes one message from the peer.
    fn receive(&mut self, msg: Self::Message) -> Result<(), ProtocolError>;
    fn is_done(&self) -> bool;
    fn progress(&self) -> Progress;
    /// See [`Party::attest`].
    fn attest(&mut self) -> Result<Vec<Attestation>, ProtocolError> {
        Ok(Vec::new())
    }
    /// The result, once `is_done`.
    fn outcome(self) -> Result<Outcome, ProtocolError>;
}

impl<P: Protocol> Party for P {
    fn poll_transmit(&mut self) -> Option<ProtocolMessage> {
        Protocol::poll(self).map(Into::into)
    }

    fn handle(&mut self, msg: ProtocolMessage) -> Result<(), ProtocolError> {
        Protocol::receive(self, P::Message::try_from(msg)?)
    }

    fn is_done(&self) -> bool {
        Protocol::is_done(self)
    }

    fn progress(&self) -> Progress {
        Protocol::progress(self)
    }

    fn attest(&mut self) -> Result<Vec<Attestation>, ProtocolError> {
        Protocol::attest(self)
    }

    fn finish(self: Box<Self>) -> Result<Outcome, ProtocolError> {
        Protocol::outcome(*self)
    }
}

/// Runs two parties against each other in memory, through the wire encoding.
/// The in-process form of a session: tests and the in-process benchmark use it.
pub fn run_pair(a: Box<dyn Party>, b: Box<dyn Party>) -> Result<(Outcome, Outcome), (char, ProtocolError)> {
    run_pair_counted(a, b).map(|(outcomes, _)| outcomes)
}

/// Both outcomes, and the encoded bytes each party sent (`a`'s, then `b`'s).
pub type CountedOutcomes = ((Outcome, Outcome), [u64; 2]);

/// [`run_pair`], also counting what crosses the wire, before transport
/// framing.
pub fn run_pair_counted(
    mut a: Box<dyn Party>,
    mut b: Box<dyn Party>,
) -> Result<CountedOutcomes, (char, ProtocolError)> {
    let mut wire = Encoded { sent: [0; 2] };
    let side = |to: usize| if to == 0 { 'a' } else { 'b' };
    exchange(a.as_mut(), b.as_mut(), &mut wire).map_err(|(to, e)| match e {
        Exchange::Carry(never) => match never {},
        Exchange::Handle(e) => (side(to), e),
        Exchange::Stalled => (
            'a',
            ProtocolError::Unexpected {
                expected: "a message from either party",
                got: "a stalled session",
            },
        ),
    })?;
    let a = a.finish().map_err(|e| ('a', e))?;
    let b = b.finish().map_err(|e| ('b', e))?;
    Ok(((a, b), wire.sent))
}

/// How an in-memory session moves a message from one party to the other.
pub(crate) trait Carrier {
    type Error;
    /// Carries `msg`, sent by party `from` (0 or 1), to the other party.
    fn carry(&mut self, from: usize, msg: ProtocolMessage) -> Result<ProtocolMessage, Self::Error>;
    /// Called after every round of the exchange.
    fn round(&mut self) {}
}

/// Why [`exchange`] stopped short.
pub(crate) enum Exchange<E> {
    Carry(E),
    Handle(ProtocolError),
    Stalled,
}

/// Through the wire encoding, counting the bytes each party sent.
struct Encoded {
    sent: [u64; 2],
}

impl Carrier for Encoded {
    type Error = std::convert::Infallible;

    fn carry(&mut self, from: usize, msg: ProtocolMessage) -> Result<ProtocolMessage, Self::Error> {
        use prost::Message;
        let bytes = msg.encode_to_vec();
        self.sent[from] += bytes.len() as u64;
        // Encoding and decoding our own message cannot fail.
        Ok(ProtocolMessage::decode(bytes.as_slice()).unwrap_or_default())
    }
}

/// The in-memory session loop: each party in turn sends what it has ready,
/// until both are done. An error names the party (0 or 1) it arose at, the
/// one receiving; a stall names none.
pub(crate) fn exchange<C: Carrier>(
    a: &mut dyn Party,
    b: &mut dyn Party,
    carrier: &mut C,
) -> Result<(), (usize, Exchange<C::Error>)> {
    while !(a.is_done() && b.is_done()) {
        let mut moved = false;
        if let Some(m) = a.poll_transmit() {
            let m = carrier.carry(0, m).map_err(|e| (1, Exchange::Carry(e)))?;
            b.handle(m).map_err(|e| (1, Exchange::Handle(e)))?;
            moved = true;
        }
        if let Some(m) = b.poll_transmit() {
            let m = carrier.carry(1, m).map_err(|e| (0, Exchange::Carry(e)))?;
            a.handle(m).map_err(|e| (0, Exchange::Handle(e)))?;
            moved = true;
        }
        carrier.round();
        if !moved {
            return Err((0, Exchange::Stalled));
        }
    }
    Ok(())
}
