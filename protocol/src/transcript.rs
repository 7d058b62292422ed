//! Session transcripts (PROTOCOLS.md, "Transcripts"): the node's recorder,
//! which seals what it sends and checks what it receives, the co-signed
//! session summary, the file format, and the auditor's verification.
//!
//! The recorder is pure like the rest of this crate: it hands back the records
//! to store ([`Recorder::drain`]) and the frames to send; the node writes and
//! sends them. The signed envelope every transcript record and shared
//! file is wrapped in is [`envelope`].
//!
//! May import: everything else of this crate but `access`; nothing imports it
//! but the node and the coordinator.

pub mod envelope;
mod file;
mod pair;
mod recorder;
mod summary;
mod verify;

pub use file::{FileError, encode_record, has_private_part, parse_file, shared_copy};
pub use pair::{PairError, Recorded, run_recorded_pair};
pub use recorder::{Recorder, Seat, SessionInfo, TranscriptError, envelope_to_wire};
pub use summary::{describe_query, query_kind, result_commitment, step_of};
pub use verify::{AuditReport, Check, CheckStatus, PartyReport, RequesterReport, verify};

/// Layout version of [`crate::wire::TranscriptHead`].
pub const FORMAT: u32 = 1;

#[cfg(test)]
#[path = "transcript/tests.rs"]
mod tests;
