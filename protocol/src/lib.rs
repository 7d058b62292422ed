//! The library every Jointly party links: identifier normalization, hashing to
//! ristretto255, masking, the protocol state machines and the wire messages.
//!
//! This crate is pure: no sockets, no files, no async runtime. Protocols are
//! state machines that consume messages and produce messages
//! ([`party::Party`]); the node and the coordinator only move and store bytes.

pub mod accounting;
pub mod activation;
pub mod attach;
pub mod attest;
pub mod attribution;
pub mod attribution_model;
pub mod attribution_query;
pub mod breakdown;
pub mod breakdown_plan;
pub mod bsgs;
pub mod cover;
pub mod dleq;
pub mod elgamal;
pub mod envelope;
pub mod error;
pub mod fen;
mod field25519;
pub mod group;
pub mod hash;
pub mod hinted;
pub mod idlist;
pub mod ids;
pub mod lift;
pub mod noise;
pub mod overlap;
pub mod party;
pub mod request;
pub mod shuffle;
pub mod terms;
pub mod timestamp;
pub mod transcript;
pub mod wire;

pub use error::ProtocolError;
