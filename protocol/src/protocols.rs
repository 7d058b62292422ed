//! The protocols as sans-I/O state machines, each with its messages and
//! their wire conversion: the overlap (PROTOCOLS.md section O), segment
//! activation (section A) and breakdowns (section B).
//!
//! May import: `session` and everything below it. Knows no query: a
//! protocol is given its rows, its terms digest and its cover.

pub mod activation;
pub mod breakdown;
pub mod overlap;
