//! The library every Jointly party links: identifier normalization, hashing to
//! ristretto255, masking, the protocol state machines and the wire messages.
//!
//! This crate is pure: no sockets, no files, no async runtime. Protocols are
//! state machines that consume messages and produce messages
//! ([`session::party::Party`]); the node and the coordinator only move and
//! store bytes.
//!
//! Its folders, from the bottom up; each imports only folders listed before
//! it (checked by `tests/module_graph.rs`, which fails on any import circle):
//!
//! | folder | owns |
//! |---|---|
//! | [`wire`] | the generated protobuf messages and the frame bound |
//! | [`crypto`] | the group, hashing to it, ElGamal, DLEQ, hinted decoding, BSGS, shuffles |
//! | [`ids`] | normalization, identifier lists, amounts, timestamps |
//! | [`error`] | the one error a peer's bytes can cause, [`ProtocolError`] |
//! | [`access`] | the node's attach proof and a person's signed request |
//! | [`privacy`] | noise, accounting, the cover |
//! | [`session`] | the `Party` trait, outcomes, the list-streaming kernel, attestations |
//! | [`protocols`] | overlap, activation, breakdown |
//! | [`queries`] | terms, breakdown plans, attribution, lift |
//! | [`transcript`] | recorder, envelopes, files, the auditor's verification |

pub mod access;
pub mod crypto;
pub mod error;
pub mod ids;
pub mod privacy;
pub mod protocols;
pub mod queries;
pub mod session;
pub mod transcript;
pub mod wire;

pub use error::ProtocolError;
