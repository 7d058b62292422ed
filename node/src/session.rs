//! Drives one protocol party over a session stream: feeds it the peer's frames,
//! sends what it produces when the stream has room (back-pressure), and runs its
//! point arithmetic on blocking threads so the async runtime stays responsive.
//!
//! Every frame goes through the session's transcript recorder: what this node
//! sends is sealed in a signed envelope, what it receives is checked against
//! the peer's registered key before a byte of it is decoded, and both are
//! appended to the transcript files as they pass.
//!
//! What this node sends goes into a bounded channel (the coordinator's stream
//! reads it); what the peer sends arrives through a [`FrameSource`]: the
//! coordinator's stream in service, the other end of an in-memory pair
//! ([`memory_pair`]) in tests, so both sides of a session, their recorders,
//! aborts and closing run in one process.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use jointly_protocol::{
    session::attest::Attestation,
    session::outcome::Outcome,
    session::party::{Party, Progress},
    transcript::{Recorder, TranscriptError},
    wire::{Abort, ProtocolMessage, Sealed, SessionFrame, protocol_message::Kind, session_frame::Body},
};
use tokio::sync::mpsc;
use tonic::Streaming;

use crate::transcripts::{TranscriptFiles, Written};

/// Frames this node may have in flight towards the coordinator per session.
pub const OUTBOUND_FRAMES: usize = 4;

/// How a session ended badly, as the planner will read it.
#[derive(Debug)]
pub enum SessionFailure {
    /// This node found the peer's messages wrong (or its own state broken).
    Local(String),
    /// The peer or the coordinator ended the session.
    Remote(String),
}

impl std::fmt::Display for SessionFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionFailure::Local(m) | SessionFailure::Remote(m) => f.write_str(m),
        }
    }
}

/// Why the transport under a session failed, in the transport's words (a
/// gRPC status message; never a frame's contents).
#[derive(Debug)]
pub struct TransportError(pub String);

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The frames the peer's side of a session delivers to this node.
pub trait FrameSource: Send + 'static {
    /// The next frame; `Ok(None)` once the stream has ended, `Err` with the
    /// transport's reason when it failed.
    fn next_frame(&mut self) -> impl Future<Output = Result<Option<SessionFrame>, TransportError>> + Send;
}

impl FrameSource for Streaming<SessionFrame> {
    async fn next_frame(&mut self) -> Result<Option<SessionFrame>, TransportError> {
        self.message()
            .await
            .map_err(|status| TransportError(status.message().to_string()))
    }
}

impl FrameSource for mpsc::Receiver<SessionFrame> {
    async fn next_frame(&mut self) -> Result<Option<SessionFrame>, TransportError> {
        Ok(self.recv().await)
    }
}

/// One side's ends of a session: where it sends, what it receives.
pub type MemoryEnd = (mpsc::Sender<SessionFrame>, mpsc::Receiver<SessionFrame>);

/// Two sides of a session joined in memory, each receiving what the other
/// sends, with the same room for frames in flight as over the coordinator.
pub fn memory_pair() -> (MemoryEnd, MemoryEnd) {
    let (a_out, b_in) = mpsc::channel(OUTBOUND_FRAMES);
    let (b_out, a_in) = mpsc::channel(OUTBOUND_FRAMES);
    ((a_out, a_in), (b_out, b_in))
}

/// Runs `f` on a blocking thread (rayon inside spreads it over the cores).
async fn cpu<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, SessionFailure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SessionFailure::Local(format!("internal error in protocol computation: {e}")))
}

/// The session's transcript: the recorder and the files it feeds.
pub struct Transcript {
    pub recorder: Recorder,
    pub files: TranscriptFiles,
}

impl Transcript {
    fn flush(&mut self) -> Result<(), SessionFailure> {
        self.files
            .write_records(self.recorder.drain())
            .map_err(|e| SessionFailure::Local(e.to_string()))
    }

    fn seal(&mut self, msg: &ProtocolMessage) -> Result<SessionFrame, SessionFailure> {
        let sealed = self.recorder.seal(msg);
        self.flush()?;
        Ok(SessionFrame {
            body: Some(Body::Sealed(sealed)),
        })
    }
}

/// A party whose protocol is done, with the session still open for closing.
pub struct Finished<S = Streaming<SessionFrame>> {
    pub outcome: Outcome,
    pub attestations: Vec<Attestation>,
    pub link: Link<S>,
}

/// The open session after the protocol: its streams and its transcript.
pub struct Link<S = Streaming<SessionFrame>> {
    out: mpsc::Sender<SessionFrame>,
    inbound: S,
    transcript: Box<Transcript>,
    idle: Duration,
}

/// What the closing exchange needs from the node.
pub struct Closing {
    pub policy_checks: Vec<String>,
    /// The encoded report outcome this node hands the coordinator.
    pub report: Vec<u8>,
    pub exact_count: Option<u64>,
    pub epsilon: f64,
}

/// Reads the next frame; anything but a sealed message ends the session.
async fn next_frame(
    out: &mpsc::Sender<SessionFrame>,
    inbound: &mut impl FrameSource,
) -> Result<Sealed, SessionFailure> {
    match inbound.next_frame().await {
        Ok(Some(SessionFrame {
            body: Some(Body::Sealed(s)),
        })) => Ok(s),
        Ok(Some(SessionFrame {
            body: Some(Body::Abort(a)),
        })) => Err(SessionFailure::Remote(format!(
            "the session was aborted: {}",
            a.reason
        ))),
        Ok(Some(_)) => {
            let failure = "the coordinator relayed a frame that is not a sealed protocol message".to_string();
            abort(out, &failure).await;
            Err(SessionFailure::Local(failure))
        }
        Ok(None) => Err(SessionFailure::Remote(
            "the session stream closed before the session finished".into(),
        )),
        Err(reason) => Err(SessionFailure::Remote(format!(
            "the session stream failed: {reason}"
        ))),
    }
}

fn transcript_check(e: TranscriptError) -> SessionFailure {
    SessionFailure::Local(format!(
        "a message from the peer failed its transcript check: {e}"
    ))
}

fn is_closing(msg: &ProtocolMessage) -> bool {
    matches!(msg.kind, Some(Kind::Closing(_) | Kind::Cosign(_)))
}

/// The failure of a session whose peer went silent.
fn idle_failure(idle: Duration) -> SessionFailure {
    SessionFailure::Local(format!(
        "no message from the peer for {} s (limits.session_idle_seconds); this node ended the session",
        idle.as_secs()
    ))
}

/// Runs `party` until its side of the protocol is done. `report` is called
/// with progress at most every `every`; a peer silent for `idle` ends the
/// session. On a local protocol error an `Abort` naming the step is sent so
/// the coordinator and the peer learn why.
pub async fn drive<S: FrameSource>(
    party: Box<dyn Party>,
    transcript: Transcript,
    out: mpsc::Sender<SessionFrame>,
    mut inbound: S,
    every: Duration,
    idle: Duration,
    mut report: impl FnMut(Progress) + Send,
) -> Result<Finished<S>, SessionFailure> {
    let mut side = Some((party, Box::new(transcript)));
    let mut may_transmit = true;
    let mut last_report = Instant::now();
    let mut quiet_until = tokio::time::Instant::now() + idle;
    loop {
        let Some((mut current, transcript)) = side.take() else {
            return Err(SessionFailure::Local("internal error: party lost".into()));
        };
        if current.is_done() {
            report(current.progress());
            let (done, transcript) = cpu(move || {
                let done = current
                    .attest()
                    .and_then(|attestations| current.finish().map(|outcome| (outcome, attestations)));
                (done, transcript)
            })
            .await?;
            let (outcome, attestations) = match done {
                Ok(d) => d,
                Err(e) => {
                    let failure = e.to_string();
                    abort(&out, &failure).await;
                    return Err(SessionFailure::Local(failure));
                }
            };
            return Ok(Finished {
                outcome,
                attestations,
                link: Link {
                    out,
                    inbound,
                    transcript,
                    idle,
                },
            });
        }
        if last_report.elapsed() >= every {
            report(current.progress());
            last_report = Instant::now();
        }
        tokio::select! {
            // The peer's frames first: handling them frees the coordinator's
            // buffers and may unblock what this party sends next.
            biased;
            frame = next_frame(&out, &mut inbound) => {
                let sealed = frame?;
                quiet_until = tokio::time::Instant::now() + idle;
                let (back, result) = cpu(move || {
                    let (mut p, mut t) = (current, transcript);
                    let r = t
                        .recorder
                        .open(sealed)
                        .map_err(transcript_check)
                        .and_then(|m| {
                            // A peer that finished first may already close;
                            // the recorder keeps its closing for later.
                            if is_closing(&m) {
                                Ok(())
                            } else {
                                p.handle(m).map_err(|e| SessionFailure::Local(e.to_string()))
                            }
                        })
                        .and_then(|()| t.flush());
                    ((p, t), r)
                })
                .await?;
                if let Err(failure) = result {
                    abort(&out, &failure.to_string()).await;
                    return Err(failure);
                }
                side = Some(back);
                may_transmit = true;
            }
            permit = out.reserve(), if may_transmit => {
                let Ok(permit) = permit else {
                    return Err(SessionFailure::Remote("the session stream closed while sending".into()));
                };
                let (back, frame) = cpu(move || {
                    let (mut p, mut t) = (current, transcript);
                    let frame = p.poll_transmit().map(|m| t.seal(&m));
                    ((p, t), frame)
                })
                .await?;
                match frame {
                    Some(Ok(frame)) => permit.send(frame),
                    Some(Err(failure)) => {
                        abort(&out, &failure.to_string()).await;
                        return Err(failure);
                    }
                    None => may_transmit = false,
                }
                side = Some(back);
            }
            () = tokio::time::sleep_until(quiet_until) => {
                let failure = idle_failure(idle);
                abort(&out, &failure.to_string()).await;
                return Err(failure);
            }
        }
    }
}

impl<S: FrameSource> Link<S> {
    /// The closing exchange (PROTOCOLS.md, Transcripts): this node's closing,
    /// the peer's, then both co-signatures over the summary. Completes the
    /// transcript files and ends the session stream.
    pub async fn close(
        self,
        closing: Closing,
        attestations: Vec<Attestation>,
    ) -> Result<Written, SessionFailure> {
        let Link {
            out,
            mut inbound,
            transcript,
            idle,
        } = self;
        let (frame, mut transcript) = cpu(move || {
            let mut t = transcript;
            let msg = t.recorder.closing(
                closing.policy_checks,
                closing.report,
                closing.exact_count,
                attestations,
                closing.epsilon,
            );
            (t.seal(&msg), t)
        })
        .await?;
        send(&out, frame?).await?;
        while !transcript.recorder.peer_closed() {
            receive_closing(&out, &mut inbound, &mut transcript, idle).await?;
        }
        let cosign = transcript
            .recorder
            .cosign()
            .map_err(|e| SessionFailure::Local(e.to_string()))?;
        send(&out, transcript.seal(&cosign)?).await?;
        while !transcript.recorder.peer_cosigned() {
            receive_closing(&out, &mut inbound, &mut transcript, idle).await?;
        }
        let summary = match transcript.recorder.finish() {
            Ok(digest) => digest,
            Err(e) => {
                let failure = e.to_string();
                abort(&out, &failure).await;
                return Err(SessionFailure::Local(failure));
            }
        };
        transcript.flush()?;
        let Transcript { files, .. } = *transcript;
        let written = cpu(move || files.finish(summary))
            .await?
            .map_err(|e| SessionFailure::Local(e.to_string()))?;
        finish_stream(out, inbound).await;
        Ok(written)
    }
}

async fn send(out: &mpsc::Sender<SessionFrame>, frame: SessionFrame) -> Result<(), SessionFailure> {
    out.send(frame)
        .await
        .map_err(|_| SessionFailure::Remote("the session stream closed while closing".into()))
}

async fn receive_closing(
    out: &mpsc::Sender<SessionFrame>,
    inbound: &mut impl FrameSource,
    transcript: &mut Transcript,
    idle: Duration,
) -> Result<(), SessionFailure> {
    let sealed = tokio::time::timeout(idle, next_frame(out, inbound))
        .await
        .map_err(|_| idle_failure(idle))??;
    let result = transcript
        .recorder
        .open(sealed)
        .map_err(transcript_check)
        .and_then(|m| {
            if is_closing(&m) {
                Ok(())
            } else {
                Err(SessionFailure::Local(
                    "the peer sent a protocol message after the protocol finished".into(),
                ))
            }
        })
        .and_then(|()| transcript.flush());
    if let Err(failure) = result {
        abort(out, &failure.to_string()).await;
        return Err(failure);
    }
    Ok(())
}

/// Ends this side of the stream and waits for the coordinator to end the other.
/// Dropping the call at once would reset the HTTP/2 stream and could discard
/// the last frames still queued for the peer.
async fn finish_stream(out: mpsc::Sender<SessionFrame>, mut inbound: impl FrameSource) {
    drop(out);
    let drain = async { while let Ok(Some(_)) = inbound.next_frame().await {} };
    // The peer finishes within moments of this side; past that, give up waiting.
    let _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
}

/// How long a finished party waits for its peer to finish too.
const CLOSE_GRACE: Duration = Duration::from_secs(30);

async fn abort(out: &mpsc::Sender<SessionFrame>, reason: &str) {
    // Best effort: the stream may already be gone, and the report on the
    // control stream carries the same reason.
    let _ = out
        .send(SessionFrame {
            body: Some(Body::Abort(Abort {
                reason: reason.to_string(),
            })),
        })
        .await;
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
