//! Two recorded parties run against each other in memory: the in-process form
//! of a recorded session, for tests and the audit benchmark.

use super::{Recorder, TranscriptError};
use crate::{session::outcome::Outcome, session::party::Party, wire::TranscriptRecord};

pub struct Recorded {
    pub outcome: Outcome,
    pub records: Vec<TranscriptRecord>,
}

fn fail(who: &str, e: impl std::fmt::Display) -> String {
    format!("{who}: {e}")
}

/// Runs the protocol, then the closing exchange. Each side's "report" is its
/// exact count (receiver) or nothing (sender), as bytes.
pub fn run_recorded_pair(
    (mut r, mut r_rec): (Box<dyn Party>, Recorder),
    (mut s, mut s_rec): (Box<dyn Party>, Recorder),
) -> Result<(Recorded, Recorded), String> {
    let (mut r_file, mut s_file) = (Vec::new(), Vec::new());
    while !(r.is_done() && s.is_done()) {
        let mut moved = false;
        if let Some(m) = r.poll_transmit() {
            let m = s_rec.open(r_rec.seal(&m)).map_err(|e| fail("sender", e))?;
            s.handle(m).map_err(|e| fail("sender", e))?;
            moved = true;
        }
        if let Some(m) = s.poll_transmit() {
            let m = r_rec.open(s_rec.seal(&m)).map_err(|e| fail("receiver", e))?;
            r.handle(m).map_err(|e| fail("receiver", e))?;
            moved = true;
        }
        r_file.extend(r_rec.drain());
        s_file.extend(s_rec.drain());
        if !moved {
            return Err("the session stalled".into());
        }
    }
    let r_att = r.attest().map_err(|e| fail("receiver", e))?;
    let s_att = s.attest().map_err(|e| fail("sender", e))?;
    let r_out = r.finish().map_err(|e| fail("receiver", e))?;
    let s_out = s.finish().map_err(|e| fail("sender", e))?;
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
    step(&mut r_rec, &mut s_rec, r_close).map_err(|e| fail("sender", e))?;
    step(&mut s_rec, &mut r_rec, s_close).map_err(|e| fail("receiver", e))?;
    let r_cosign = r_rec.cosign().map_err(|e| fail("receiver", e))?;
    let s_cosign = s_rec.cosign().map_err(|e| fail("sender", e))?;
    step(&mut r_rec, &mut s_rec, r_cosign).map_err(|e| fail("sender", e))?;
    step(&mut s_rec, &mut r_rec, s_cosign).map_err(|e| fail("receiver", e))?;
    r_rec.finish().map_err(|e| fail("receiver", e))?;
    s_rec.finish().map_err(|e| fail("sender", e))?;
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
