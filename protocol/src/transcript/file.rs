//! Transcript files: length-delimited `TranscriptRecord`s (transcript.proto).

use prost::Message;

use crate::wire::{TranscriptRecord, transcript_record::Record};

/// Why a transcript file cannot be read at all.
#[derive(Debug, thiserror::Error)]
#[error("record {index} (at byte {offset}) {what}")]
pub struct FileError {
    pub index: usize,
    pub offset: usize,
    pub what: String,
}

pub fn encode_record(record: &TranscriptRecord) -> Vec<u8> {
    record.encode_length_delimited_to_vec()
}

/// Splits a whole file into its records.
pub fn parse_file(mut bytes: &[u8]) -> Result<Vec<TranscriptRecord>, FileError> {
    let total = bytes.len();
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let offset = total - bytes.len();
        let record = TranscriptRecord::decode_length_delimited(&mut bytes).map_err(|e| FileError {
            index: records.len(),
            offset,
            what: format!("is not a transcript record ({e}); the file is truncated or not a transcript"),
        })?;
        records.push(record);
    }
    Ok(records)
}

/// Whether the shared copy of `record` differs from it (withheld or
/// trimmed); every other record is shared byte for byte.
pub fn has_private_part(record: &TranscriptRecord) -> bool {
    matches!(record.record, Some(Record::Attestation(_) | Record::Release(_)))
}

/// The record as the node shares it through the coordinator, or `None` for
/// what stays in the node's own copy: its attestations (their aligned lists
/// would tell the peer which of its identifiers matched) and its release
/// (its decryption shares or partially noised count: with the peer's, they
/// would open every cell, withheld ones included, without the coordinator).
/// The co-signed summary still binds the release through its commitment.
pub fn shared_copy(record: &TranscriptRecord) -> Option<TranscriptRecord> {
    match &record.record {
        Some(Record::Attestation(_) | Record::Release(_)) => None,
        _ => Some(record.clone()),
    }
}
