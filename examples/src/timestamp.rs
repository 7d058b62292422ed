//! The strict RFC 3339 parser and writer live in the protocol crate, where
//! nodes use them; the generator and the reference use the same grammar.

pub use jointly_protocol::ids::timestamp::*;
