//! Two recorded parties run against each other in memory: the in-process form
//! of a recorded session, for tests and the audit benchmark.

use super::{Recorder, Seat, TranscriptError};
use crate::{
    error::ProtocolError,
    session::outcome::Outcome,
    session::party::{Carrier, Exchange, Party, exchange},
    wire::{ProtocolMessage, TranscriptRecord},
};

pub struct Recorded {
    pub outcome: Outcome,
    pub records: Vec<TranscriptRecord>,
}

/// Why an in-process recorded session failed, and at which party.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PairError {
    #[error("{}: {error}", seat.name())]
    Protocol { seat: Seat, error: ProtocolError },
    #[error("{}: {error}", seat.name())]
    Transcript { seat: Seat, error: TranscriptError },
    #[error("the session stalled")]
    Stalled,
}

fn protocol(seat: Seat) -> impl FnOnce(ProtocolError) -> PairError {
    move |error| PairError::Protocol { seat, error }
}

fn transcript(seat: Seat) -> impl FnOnce(TranscriptError) -> PairError {
    move |error| PairError::Transcript { seat, error }
}

/// Every message sealed by its sender's recorder and opened by the other's,
/// the records of both collected as they are made.
struct Sealing<'a> {
    recorders: [&'a mut Recorder; 2],
    files: [Vec<TranscriptRecord>; 2],
}

impl Carrier for Sealing<'_> {
    type Error = TranscriptError;

    fn carry(&mut self, from: usize, msg: ProtocolMessage) -> Result<ProtocolMessage, TranscriptError> {
        let sealed = self.recorders[from].seal(&msg);
        self.recorders[1 - from].open(sealed)
    }

    fn round(&mut self) {
        for (file, recorder) in self.files.iter_mut().zip(&mut self.recorders) {
            file.extend(recorder.drain());
        }
    }
}

/// Runs the protocol, then the closing exchange. Each side's "report" is its
/// exact count (receiver) or nothing (sender), as bytes.
pub fn run_recorded_pair(
    (mut r, mut r_rec): (Box<dyn Party>, Recorder),
    (mut s, mut s_rec): (Box<dyn Party>, Recorder),
) -> Result<(Recorded, Recorded), PairError> {
    let seat = |i: usize| if i == 0 { Seat::Receiver } else { Seat::Sender };
    let mut sealing = Sealing {
        recorders: [&mut r_rec, &mut s_rec],
        files: [Vec::new(), Vec::new()],
    };
    exchange(r.as_mut(), s.as_mut(), &mut sealing).map_err(|(at, e)| match e {
        Exchange::Carry(error) => transcript(seat(at))(error),
        Exchange::Handle(error) => protocol(seat(at))(error),
        Exchange::Stalled => PairError::Stalled,
    })?;
    let [mut r_file, mut s_file] = sealing.files;
    let r_att = r.attest().map_err(protocol(Seat::Receiver))?;
    let s_att = s.attest().map_err(protocol(Seat::Sender))?;
    let r_out = r.finish().map_err(protocol(Seat::Receiver))?;
    let s_out = s.finish().map_err(protocol(Seat::Sender))?;
    let exact = match &r_out {
        Outcome::Overlap(o) => Some(o.intersection),
        Outcome::Activation(a) => Some(a.members.len() as u64),
        _ => None,
    };
    let report = exact.unwrap_or(0).to_be_bytes().to_vec();
    let r_close = r_rec.closing(vec!["in-process run".into()], report, exact, r_att, 0.0);
    let s_close = s_rec.closing(vec!["in-process run".into()], Vec::new(), None, s_att, 0.0);
    let step = |from: &mut Recorder, to: &mut Recorder, m| -> Result<(), TranscriptError> {
        to.open(from.seal(&m)).map(|_| ())
    };
    step(&mut r_rec, &mut s_rec, r_close).map_err(transcript(Seat::Sender))?;
    step(&mut s_rec, &mut r_rec, s_close).map_err(transcript(Seat::Receiver))?;
    let r_cosign = r_rec.cosign().map_err(transcript(Seat::Receiver))?;
    let s_cosign = s_rec.cosign().map_err(transcript(Seat::Sender))?;
    step(&mut r_rec, &mut s_rec, r_cosign).map_err(transcript(Seat::Sender))?;
    step(&mut s_rec, &mut r_rec, s_cosign).map_err(transcript(Seat::Receiver))?;
    r_rec.finish().map_err(transcript(Seat::Receiver))?;
    s_rec.finish().map_err(transcript(Seat::Sender))?;
    r_file.extend(r_rec.drain());
    s_file.extend(s_rec.drain());
    Ok((
        Recorded {
            outcome: r_out,
            records: r_file,
        },
        Recorded {
            outcome: s_out,
            records: s_file,
        },
    ))
}
