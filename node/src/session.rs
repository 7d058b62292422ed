//! Drives one protocol party over a session stream: feeds it the peer's frames,
//! sends what it produces when the stream has room (back-pressure), and runs its
//! point arithmetic on blocking threads so the async runtime stays responsive.

use std::time::{Duration, Instant};

use jointly_protocol::{
    party::{Outcome, Party, Progress},
    wire::{Abort, SessionFrame, session_frame::Body},
};
use tokio::sync::mpsc;
use tonic::Streaming;

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

/// Runs `f` on a blocking thread (rayon inside spreads it over the cores).
async fn cpu<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, SessionFailure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SessionFailure::Local(format!("internal error in protocol computation: {e}")))
}

/// Runs `party` to completion. `report` is called with progress at most every
/// `every`. On a local protocol error an `Abort` naming the step is sent so the
/// coordinator and the peer learn why.
pub async fn drive(
    party: Box<dyn Party>,
    out: mpsc::Sender<SessionFrame>,
    mut inbound: Streaming<SessionFrame>,
    every: Duration,
    mut report: impl FnMut(Progress) + Send,
) -> Result<Outcome, SessionFailure> {
    let mut party = Some(party);
    let mut may_transmit = true;
    let mut last_report = Instant::now();
    loop {
        let Some(current) = party.take() else {
            return Err(SessionFailure::Local("internal error: party lost".into()));
        };
        if current.is_done() {
            report(current.progress());
            let outcome = cpu(move || current.finish())
                .await?
                .map_err(|e| SessionFailure::Local(e.to_string()))?;
            close(out, inbound).await;
            return Ok(outcome);
        }
        if last_report.elapsed() >= every {
            report(current.progress());
            last_report = Instant::now();
        }
        tokio::select! {
            // The peer's frames first: handling them frees the coordinator's
            // buffers and may unblock what this party sends next.
            biased;
            frame = inbound.message() => {
                let message = match frame {
                    Ok(Some(SessionFrame { body: Some(Body::Message(m)) })) => m,
                    Ok(Some(SessionFrame { body: Some(Body::Abort(a)) })) => {
                        return Err(SessionFailure::Remote(format!("the session was aborted: {}", a.reason)));
                    }
                    Ok(Some(_)) => {
                        let failure = "the coordinator relayed a frame that is not a protocol message".to_string();
                        abort(&out, &failure).await;
                        return Err(SessionFailure::Local(failure));
                    }
                    Ok(None) => {
                        return Err(SessionFailure::Remote("the session stream closed before the protocol finished".into()));
                    }
                    Err(status) => {
                        return Err(SessionFailure::Remote(format!("the session stream failed: {}", status.message())));
                    }
                };
                let (back, result) = cpu(move || {
                    let mut p = current;
                    let r = p.handle(message);
                    (p, r)
                })
                .await?;
                if let Err(e) = result {
                    let failure = e.to_string();
                    abort(&out, &failure).await;
                    return Err(SessionFailure::Local(failure));
                }
                party = Some(back);
                may_transmit = true;
            }
            permit = out.reserve(), if may_transmit => {
                let Ok(permit) = permit else {
                    return Err(SessionFailure::Remote("the session stream closed while sending".into()));
                };
                let (back, message) = cpu(move || {
                    let mut p = current;
                    let m = p.poll_transmit();
                    (p, m)
                })
                .await?;
                match message {
                    Some(m) => permit.send(SessionFrame { body: Some(Body::Message(m)) }),
                    None => may_transmit = false,
                }
                party = Some(back);
            }
            // Neither branch can fire only when the peer stream is gone, which
            // the first branch reports; this guards against a silent hang.
            else => return Err(SessionFailure::Local("internal error: session stalled".into())),
        }
    }
}

/// Ends this side of the stream and waits for the coordinator to end the other.
/// Dropping the call at once would reset the HTTP/2 stream and could discard
/// the last frames still queued for the peer.
async fn close(out: mpsc::Sender<SessionFrame>, mut inbound: Streaming<SessionFrame>) {
    drop(out);
    let drain = async { while let Ok(Some(_)) = inbound.message().await {} };
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
