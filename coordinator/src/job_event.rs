//! The events a job's task receives from the nodes and the session relays:
//! below both the job tasks (`jobs`) that consume them and the shared state
//! (`state`) and gateway that send them.

use jointly_protocol::wire::{NodeTerms, session_report::Outcome as ReportOutcome};

/// What reaches a job's task from nodes and session relays.
#[derive(Debug)]
pub enum JobEvent {
    Decision {
        node: String,
        accept: bool,
        reason: String,
        /// The noise and threshold the node commits to when accepting.
        terms: Option<NodeTerms>,
    },
    /// Thousandths of the node's own work done.
    Progress {
        node: String,
        permille: u32,
    },
    Report {
        node: String,
        // Boxed: a result is far larger than the other events.
        outcome: Box<ReportOutcome>,
    },
    /// A session stream broke or a node aborted the session.
    SessionFailed {
        node: String,
        reason: String,
    },
    NodeDetached {
        node: String,
    },
    /// A planner or operator cancelled the job (`CancelJob`).
    Cancelled {
        reason: String,
    },
}
